/*
 * template: parser and renderer for `{{ expr }}` value templates.
 * The grammar, the filter semantics and the bounds are in template.h.
 */
#include "template.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "buf.h"
#include "isotime.h"
#include "json.h"
#include "util.h"

/* `now` offsets beyond a century are certainly typos; bounding them keeps the sum in range. */
#define MAX_NOW_OFFSET_MS (36500LL * 86400000LL)
/* How much of an expression an error message quotes. */
#define SRC_CLIP 60

enum root {
    ROOT_RECORD,
    ROOT_CHANGES,
    ROOT_EVENT,
    ROOT_NOW,
    ROOT_STRING, /* a string literal, not a root: never reported by template_uses_root */
};

static const char *const root_names[] = {"record", "changes", "event", "now"};

enum filter_kind {
    F_DEFAULT,
    F_LOWER,
    F_UPPER,
    F_TRIM,
    F_JSON,
    F_FIRST,
    F_JOIN,
    F_DATE,
    F_NUMBER,
    F_BOOL,
    F_URLENCODE,
    F_RAW,
    F_SPLIT,
    F_PARSE_JSON,
};

static const char *const filter_names[] = {
    "default", "lower", "upper", "trim", "json", "first", "join", "date", "number", "bool",
    "urlencode", "raw", "split", "parse_json",
};

struct filter {
    enum filter_kind kind;
    cJSON *arg; /* default: the literal; join, split: the separator string (NULL = ", " / ",") */
};

struct expr {
    enum root root;
    char *path;             /* json_get_path path from the event root ("" = the event) */
    int64_t now_offset_ms;  /* ROOT_NOW */
    cJSON *literal;         /* ROOT_STRING */
    struct filter filters[TEMPLATE_MAX_FILTERS];
    size_t nfilters;
    char *src;              /* "{{...}}" as written, clipped and made printable, for messages */
};

struct part {
    char *lit;         /* literal text (NUL-terminated), or NULL for an expression */
    size_t lit_len;
    struct expr *expr; /* NULL for literal text */
};

struct template {
    struct part *parts;
    size_t nparts;
    size_t nexprs;
    bool typed;     /* exactly one expression, only white space around it */
    unsigned roots; /* bit (1 << enum root) per root used */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) ATTR_PRINTF(3, 4);

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

bool template_is_event_member(const char *name, size_t len)
{
    static const char *const members[] = {
        "id", "seq", "time", "trigger", "location", "type", "record_id",
    };
    for (size_t i = 0; i < ARRAY_SIZE(members); i++) {
        if (strlen(members[i]) == len && memcmp(members[i], name, len) == 0) {
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------ parsing */

struct parser {
    const char *s;   /* the whole template text */
    size_t pos;      /* cursor inside the current expression */
    size_t end;      /* index of the expression's closing "}}" */
    const char *src; /* the expression as quoted in messages */
    char *err;
    size_t errlen;
};

static bool is_seg_char(char c)
{
    return ascii_is_alpha(c) || ascii_is_digit(c) || c == '-';
}

static char peek(const struct parser *p)
{
    return p->pos < p->end ? p->s[p->pos] : '\0';
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->end && ascii_is_space(p->s[p->pos])) {
        p->pos++;
    }
}

/* Names the character at the cursor for a message: 'x', or "the end". */
static void describe_here(const struct parser *p, char *out, size_t size)
{
    unsigned char c = (unsigned char)peek(p);
    if (p->pos >= p->end) {
        snprintf(out, size, "the end");
    } else if (c >= 0x20 && c < 0x7f) {
        snprintf(out, size, "'%c'", c);
    } else {
        snprintf(out, size, "byte 0x%02x", c);
    }
}

/*
 * Quotes text[0..n) for a one-line message: clipped at a UTF-8 boundary,
 * control characters shown as spaces. The caller frees the result.
 */
static char *clip_source(const char *text, size_t n)
{
    bool clipped = n > SRC_CLIP;
    if (clipped) {
        n = SRC_CLIP;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    char *out = xmalloc(n + 8);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        out[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    memcpy(out + n, clipped ? "...}}" : "", clipped ? 6 : 1);
    return out;
}

/* Parses a double-quoted string at the cursor into a new cJSON string. */
static int parse_string(struct parser *p, cJSON **out)
{
    struct buf b;
    int rc = -EINVAL;

    buf_init(&b, TEMPLATE_MAX_TEXT);
    p->pos++; /* the opening quote */
    for (;;) {
        if (p->pos >= p->end) {
            set_err(p->err, p->errlen, "unterminated string in %s", p->src);
            goto done;
        }
        char c = p->s[p->pos++];
        if (c == '"') {
            break;
        }
        if (c == '\\') {
            char e = p->pos < p->end ? p->s[p->pos++] : '\0';
            switch (e) {
            case '"':
            case '\\':
                c = e;
                break;
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            default:
                set_err(p->err, p->errlen,
                        "unknown escape in a string in %s (use \\\" \\\\ \\n \\t)", p->src);
                goto done;
            }
        }
        /* The template text is at most TEMPLATE_MAX_TEXT, so this cannot overflow. */
        buf_append(&b, &c, 1);
    }
    *out = cJSON_CreateString(b.data != NULL ? b.data : "");
    rc = *out != NULL ? 0 : -ENOMEM;
done:
    buf_finish(&b);
    return rc;
}


/* Converts exactly s[0..n) (already checked by scan_json_number) to a finite double. */
static bool number_from(const char *s, size_t n, double *out)
{
    char tmp[64];
    if (n == 0 || n >= sizeof(tmp)) {
        return false;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end = NULL;
    double d = strtod(tmp, &end);
    if (end != tmp + n || !isfinite(d)) {
        return false;
    }
    *out = d;
    return true;
}

/* literal := string | number | true | false | null. Returns 0, -EINVAL (err set) or -ENOMEM. */
static int parse_literal(struct parser *p, const char *what, cJSON **out)
{
    char c = peek(p);
    char here[32];

    if (c == '"') {
        return parse_string(p, out);
    }
    if (c == '-' || ascii_is_digit(c)) {
        size_t n = json_scan_number(p->s + p->pos, p->end - p->pos);
        double d;
        if (n == 0 || !number_from(p->s + p->pos, n, &d)) {
            set_err(p->err, p->errlen, "bad number after '%s' in %s", what, p->src);
            return -EINVAL;
        }
        p->pos += n;
        *out = cJSON_CreateNumber(d);
        return *out != NULL ? 0 : -ENOMEM;
    }
    if (ascii_is_alpha(c)) {
        size_t start = p->pos;
        while (p->pos < p->end && ascii_is_alpha(p->s[p->pos])) {
            p->pos++;
        }
        size_t n = p->pos - start;
        const char *w = p->s + start;
        if (n == 4 && memcmp(w, "true", 4) == 0) {
            *out = cJSON_CreateTrue();
        } else if (n == 5 && memcmp(w, "false", 5) == 0) {
            *out = cJSON_CreateFalse();
        } else if (n == 4 && memcmp(w, "null", 4) == 0) {
            *out = cJSON_CreateNull();
        } else {
            set_err(p->err, p->errlen,
                    "'%s' needs a value (a \"string\", number, true, false or null), not '%.*s', "
                    "in %s",
                    what, (int)(n > 32 ? 32 : n), w, p->src);
            return -EINVAL;
        }
        return *out != NULL ? 0 : -ENOMEM;
    }
    describe_here(p, here, sizeof(here));
    set_err(p->err, p->errlen,
            "'%s' needs a value (a \"string\", number, true, false or null), found %s in %s", what,
            here, p->src);
    return -EINVAL;
}

/* now ( ("+"|"-") INTEGER unit )?, the cursor just past "now". */
static int parse_now(struct parser *p, struct expr *e)
{
    char here[32];

    if (peek(p) == '.') {
        set_err(p->err, p->errlen, "'now' has no members in %s (use now, now + 30m, now - 1d)",
                p->src);
        return -EINVAL;
    }
    skip_ws(p);
    char sign = peek(p);
    if (sign != '+' && sign != '-') {
        return 0;
    }
    p->pos++;
    skip_ws(p);
    size_t start = p->pos;
    while (p->pos < p->end && (ascii_is_digit(p->s[p->pos]) || ascii_is_alpha(p->s[p->pos]))) {
        p->pos++;
    }
    size_t n = p->pos - start;
    const char *d = p->s + start;
    size_t digits = 0;
    while (digits < n && ascii_is_digit(d[digits])) {
        digits++;
    }
    char tmp[32];
    uint64_t ms = 0;
    bool unit_ok = n == digits + 1 &&
                   (d[digits] == 's' || d[digits] == 'm' || d[digits] == 'h' || d[digits] == 'd');
    if (n == 0) {
        describe_here(p, here, sizeof(here));
        set_err(p->err, p->errlen, "expected a duration after 'now %c', found %s, in %s", sign,
                here, p->src);
        return -EINVAL;
    }
    if (digits == 0 || !unit_ok || n >= sizeof(tmp)) {
        set_err(p->err, p->errlen,
                "bad duration '%.*s' in %s (an integer followed by s, m, h or d, e.g. 30m)",
                (int)(n > 24 ? 24 : n), d, p->src);
        return -EINVAL;
    }
    memcpy(tmp, d, n);
    tmp[n] = '\0';
    if (util_parse_duration(tmp, &ms) != 0 || ms > (uint64_t)MAX_NOW_OFFSET_MS) {
        set_err(p->err, p->errlen, "duration '%s' is too large in %s (at most 36500d)", tmp,
                p->src);
        return -EINVAL;
    }
    e->now_offset_ms = sign == '+' ? (int64_t)ms : -(int64_t)ms;
    return 0;
}

/* record|changes|event followed by .seg parts; the cursor is at the root word. */
static int parse_path(struct parser *p, struct expr *e, size_t root_start)
{
    size_t first_seg = 0; /* where the first segment starts, for event paths */
    size_t nseg = 0;

    while (peek(p) == '.') {
        p->pos++;
        size_t start = p->pos;
        while (p->pos < p->end && is_seg_char(p->s[p->pos])) {
            p->pos++;
        }
        if (p->pos == start) {
            char here[32];
            describe_here(p, here, sizeof(here));
            set_err(p->err, p->errlen, "expected a field name after '.', found %s, in %s", here,
                    p->src);
            return -EINVAL;
        }
        if (nseg == 0) {
            first_seg = start;
        }
        if (nseg == 0 && e->root == ROOT_EVENT &&
            !template_is_event_member(p->s + start, p->pos - start)) {
            int n = (int)(p->pos - start > 32 ? 32 : p->pos - start);
            set_err(p->err, p->errlen,
                    "unknown event member '%.*s' in %s (use id, seq, time, trigger, location, "
                    "type or record_id; the record and the changes are the roots record and "
                    "changes)",
                    n, p->s + start, p->src);
            return -EINVAL;
        }
        nseg++;
    }
    if (e->root == ROOT_EVENT) {
        /* Event members are looked up from the event itself: "event.id" is path "id". */
        e->path = nseg == 0 ? xstrdup("") : xstrndup(p->s + first_seg, p->pos - first_seg);
    } else {
        e->path = xstrndup(p->s + root_start, p->pos - root_start);
    }
    return 0;
}

static int parse_filters(struct parser *p, struct expr *e)
{
    char here[32];

    while (peek(p) == '|') {
        p->pos++;
        skip_ws(p);
        size_t start = p->pos;
        while (p->pos < p->end && (ascii_is_alpha(p->s[p->pos]) || p->s[p->pos] == '_')) {
            p->pos++;
        }
        size_t n = p->pos - start;
        size_t k = 0;
        while (k < ARRAY_SIZE(filter_names) &&
               !(strlen(filter_names[k]) == n && memcmp(filter_names[k], p->s + start, n) == 0)) {
            k++;
        }
        if (n == 0) {
            describe_here(p, here, sizeof(here));
            set_err(p->err, p->errlen, "expected a filter name after '|', found %s, in %s", here,
                    p->src);
            return -EINVAL;
        }
        if (k == ARRAY_SIZE(filter_names)) {
            set_err(p->err, p->errlen,
                    "unknown filter '%.*s' in %s (known: default lower upper trim json first join "
                    "date number bool urlencode raw split parse_json)",
                    (int)(n > 32 ? 32 : n), p->s + start, p->src);
            return -EINVAL;
        }
        if (e->nfilters == TEMPLATE_MAX_FILTERS) {
            set_err(p->err, p->errlen, "more than %d filters in %s", TEMPLATE_MAX_FILTERS, p->src);
            return -EINVAL;
        }
        struct filter *f = &e->filters[e->nfilters++];
        f->kind = (enum filter_kind)k;
        skip_ws(p);
        int rc = 0;
        if (f->kind == F_DEFAULT) {
            rc = parse_literal(p, "default", &f->arg);
        } else if ((f->kind == F_JOIN || f->kind == F_SPLIT) && peek(p) == '"') {
            rc = parse_string(p, &f->arg);
        }
        if (rc != 0) {
            return rc;
        }
        if (f->kind == F_SPLIT && f->arg != NULL && f->arg->valuestring[0] == '\0') {
            set_err(p->err, p->errlen, "'split' needs a non-empty separator in %s", p->src);
            return -EINVAL;
        }
        skip_ws(p);
    }
    return 0;
}

static void expr_free(struct expr *e)
{
    if (e == NULL) {
        return;
    }
    for (size_t i = 0; i < e->nfilters; i++) {
        cJSON_Delete(e->filters[i].arg);
    }
    cJSON_Delete(e->literal);
    free(e->path);
    free(e->src);
    free(e);
}

/* Parses the expression between "{{" (at open) and "}}" (at close). */
static int parse_expr(const char *text, size_t open, size_t close, struct expr **out, char *err,
                      size_t errlen)
{
    struct expr *e = xcalloc(1, sizeof(*e));
    struct parser p = {
        .s = text,
        .pos = open + 2,
        .end = close,
        .err = err,
        .errlen = errlen,
    };
    char here[32];
    int rc = -EINVAL;

    e->src = clip_source(text + open, close + 2 - open);
    p.src = e->src;
    skip_ws(&p);
    char c = peek(&p);
    if (p.pos >= p.end) {
        set_err(err, errlen, "empty expression %s at column %zu", e->src, open + 1);
        goto fail;
    }
    if (c == '"') {
        e->root = ROOT_STRING;
        rc = parse_string(&p, &e->literal);
        if (rc != 0) {
            goto fail;
        }
    } else if (ascii_is_alpha(c)) {
        size_t start = p.pos;
        while (p.pos < p.end && (ascii_is_alpha(p.s[p.pos]) || ascii_is_digit(p.s[p.pos]))) {
            p.pos++;
        }
        size_t n = p.pos - start;
        size_t k = 0;
        while (k < ARRAY_SIZE(root_names) &&
               !(strlen(root_names[k]) == n && memcmp(root_names[k], text + start, n) == 0)) {
            k++;
        }
        if (k == ARRAY_SIZE(root_names)) {
            set_err(err, errlen, "unknown root '%.*s' in %s (use record, changes, event or now)",
                    (int)(n > 32 ? 32 : n), text + start, e->src);
            goto fail;
        }
        e->root = (enum root)k;
        rc = e->root == ROOT_NOW ? parse_now(&p, e) : parse_path(&p, e, start);
        if (rc != 0) {
            goto fail;
        }
    } else {
        describe_here(&p, here, sizeof(here));
        set_err(err, errlen,
                "expected record, changes, event, now or a \"string\", found %s, in %s", here,
                e->src);
        goto fail;
    }
    skip_ws(&p);
    rc = parse_filters(&p, e);
    if (rc != 0) {
        goto fail;
    }
    if (p.pos != p.end) {
        describe_here(&p, here, sizeof(here));
        set_err(err, errlen, "unexpected %s in %s (expected '|' or '}}')", here, e->src);
        rc = -EINVAL;
        goto fail;
    }
    *out = e;
    return 0;
fail:
    expr_free(e);
    return rc != 0 ? rc : -EINVAL;
}

size_t template_find_close(const char *s, size_t len, size_t open)
{
    bool in_string = false;
    for (size_t i = open + 2; i < len; i++) {
        if (in_string) {
            if (s[i] == '\\' && i + 1 < len) {
                i++;
            } else if (s[i] == '"') {
                in_string = false;
            }
        } else if (s[i] == '"') {
            in_string = true;
        } else if (s[i] == '}' && i + 1 < len && s[i + 1] == '}') {
            return i;
        }
    }
    return 0;
}

static void add_part(struct template *t, size_t *cap, char *lit, size_t lit_len, struct expr *e)
{
    if (t->nparts == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        t->parts = xrealloc(t->parts, *cap * sizeof(*t->parts));
    }
    t->parts[t->nparts++] = (struct part){.lit = lit, .lit_len = lit_len, .expr = e};
}

static bool all_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!ascii_is_space(s[i])) {
            return false;
        }
    }
    return true;
}

int template_parse(const char *text, struct template **out, char *err, size_t errlen)
{
    struct template *t = NULL;
    size_t cap = 0;
    size_t pos = 0;
    size_t len;
    int rc = -EINVAL;

    *out = NULL;
    if (text == NULL) {
        set_err(err, errlen, "no template text");
        return -EINVAL;
    }
    len = strnlen(text, TEMPLATE_MAX_TEXT + 1);
    if (len > TEMPLATE_MAX_TEXT) {
        set_err(err, errlen, "template longer than %d bytes", TEMPLATE_MAX_TEXT);
        return -EINVAL;
    }
    if (!utf8_valid(text, len)) {
        set_err(err, errlen, "template is not valid UTF-8");
        return -EINVAL;
    }
    t = xcalloc(1, sizeof(*t));
    while (pos < len) {
        const char *open_p = strstr(text + pos, "{{");
        size_t open = open_p != NULL ? (size_t)(open_p - text) : len;
        if (open > pos) {
            add_part(t, &cap, xstrndup(text + pos, open - pos), open - pos, NULL);
        }
        if (open == len) {
            break;
        }
        size_t close = template_find_close(text, len, open);
        if (close == 0) {
            set_err(err, errlen, "unterminated '{{' at column %zu (no matching '}}')", open + 1);
            goto fail;
        }
        if (t->nexprs == TEMPLATE_MAX_EXPRS) {
            set_err(err, errlen, "more than %d {{ }} expressions (at column %zu)",
                    TEMPLATE_MAX_EXPRS, open + 1);
            goto fail;
        }
        struct expr *e = NULL;
        rc = parse_expr(text, open, close, &e, err, errlen);
        if (rc != 0) {
            goto fail;
        }
        add_part(t, &cap, NULL, 0, e);
        t->nexprs++;
        if (e->root != ROOT_STRING) {
            t->roots |= 1u << e->root;
        }
        pos = close + 2;
    }
    if (t->nexprs == 1) {
        t->typed = true;
        for (size_t i = 0; i < t->nparts; i++) {
            if (t->parts[i].expr == NULL && !all_space(t->parts[i].lit, t->parts[i].lit_len)) {
                t->typed = false;
            }
        }
    }
    *out = t;
    return 0;
fail:
    template_free(t);
    return rc != 0 ? rc : -EINVAL;
}

void template_free(struct template *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->nparts; i++) {
        free(t->parts[i].lit);
        expr_free(t->parts[i].expr);
    }
    free(t->parts);
    free(t);
}

bool template_is_literal(const struct template *t)
{
    return t != NULL && t->nexprs == 0;
}

bool template_uses_root(const struct template *t, const char *root)
{
    if (t == NULL || root == NULL) {
        return false;
    }
    for (size_t i = 0; i < ARRAY_SIZE(root_names); i++) {
        if (strcmp(root, root_names[i]) == 0) {
            return (t->roots & (1u << i)) != 0;
        }
    }
    return false;
}

/* ---------------------------------------------------------------- rendering */

/*
 * Nodes created while rendering. Filters return borrowed pointers (into the
 * event, the template or an earlier kept node), so nothing is freed until the
 * render ends: a `first` of a created array must outlive the array's filter.
 */
struct arena {
    cJSON **v;
    size_t n;
    size_t cap;
};

static void arena_free(struct arena *a)
{
    for (size_t i = 0; i < a->n; i++) {
        cJSON_Delete(a->v[i]);
    }
    free(a->v);
}

static int keep(struct arena *a, cJSON *node, const cJSON **out)
{
    if (node == NULL) {
        return -ENOMEM;
    }
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 8;
        a->v = xrealloc(a->v, a->cap * sizeof(*a->v));
    }
    a->v[a->n++] = node;
    *out = node;
    return 0;
}

/* Missing, null, or what JSON cannot carry (Inf from 1e400, which json.h prints as null). */
static bool is_nothing(const cJSON *v)
{
    return v == NULL || cJSON_IsNull(v) || cJSON_IsInvalid(v) ||
           (cJSON_IsNumber(v) && !isfinite(v->valuedouble));
}

/* Appends the text of v (see template.h). Returns 0 or -EFBIG. */
static int append_text(struct buf *b, const cJSON *v)
{
    if (is_nothing(v)) {
        return 0;
    }
    if (cJSON_IsString(v)) {
        return v->valuestring != NULL ? buf_append_str(b, v->valuestring) : 0;
    }
    if (cJSON_IsBool(v)) {
        return buf_append_str(b, cJSON_IsTrue(v) ? "true" : "false");
    }
    char *s = json_print_canonical(v);
    int rc = buf_append_str(b, s);
    free(s);
    return rc;
}

static int too_long(const struct expr *e, char *err, size_t errlen)
{
    set_err(err, errlen, "%s: value longer than %d bytes", e->src, TEMPLATE_MAX_OUTPUT);
    return -EINVAL;
}

/* The `date` filter's input as epoch ms; false when it cannot be read as an instant. */
static bool date_ms(const cJSON *v, int64_t *out)
{
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!isfinite(d) || d < 0 || d > (double)ISOTIME_MAX_MS) {
            return false;
        }
        *out = (int64_t)d;
        return true;
    }
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        return false;
    }
    const char *s = v->valuestring;
    size_t n = strlen(s);
    if (n > 0 && n <= 15 && strspn(s, "0123456789") == n) {
        int64_t ms = 0;
        for (size_t i = 0; i < n; i++) {
            ms = ms * 10 + (s[i] - '0');
        }
        if (ms > ISOTIME_MAX_MS) {
            return false;
        }
        *out = ms;
        return true;
    }
    return isotime_parse(s, ISOTIME_LOOSE, out) == 0;
}

/* s[0..n) with ASCII white space stripped at both ends. */
static void trim_span(const char **s, size_t *n)
{
    while (*n > 0 && ascii_is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ascii_is_space((*s)[*n - 1])) {
        (*n)--;
    }
}

/*
 * Appends s[0..n) percent-encoded: every byte but A-Z a-z 0-9 - . _ ~
 * (libcurl's escaping), so the text stays one path segment or one query
 * value. Returns 0, -EFBIG (b's bound) or -ENOMEM.
 */
static int append_url_escaped(struct buf *b, const char *s, size_t n)
{
    if (n == 0) {
        return 0;
    }
    /* n <= TEMPLATE_MAX_OUTPUT, so it fits curl's int length. */
    char *esc = curl_easy_escape(NULL, s, (int)n);
    if (esc == NULL) {
        return -ENOMEM;
    }
    int rc = buf_append_str(b, esc);
    curl_free(esc);
    return rc;
}

/* `urlencode`: the value's text, percent-encoded. */
static int urlencode_value(const struct expr *e, const cJSON *v, struct arena *a,
                           const cJSON **out, char *err, size_t errlen)
{
    struct buf text;
    struct buf b;
    int rc;

    buf_init(&text, TEMPLATE_MAX_OUTPUT);
    buf_init(&b, TEMPLATE_MAX_OUTPUT);
    rc = append_text(&text, v);
    if (rc == 0) {
        rc = append_url_escaped(&b, text.data, text.len);
    }
    if (rc == 0) {
        rc = keep(a, cJSON_CreateString(b.data != NULL ? b.data : ""), out);
    } else if (rc != -ENOMEM) {
        rc = too_long(e, err, errlen);
    }
    buf_finish(&text);
    buf_finish(&b);
    return rc;
}

/* `split S`: the value's text cut at S (default ","), pieces trimmed, empty ones dropped.
 * An array is already a list and passes unchanged. */
static int split_value(const struct expr *e, const struct filter *f, const cJSON *v,
                       struct arena *a, const cJSON **out, char *err, size_t errlen)
{
    struct buf b;

    if (cJSON_IsArray(v)) {
        return 0;
    }
    buf_init(&b, TEMPLATE_MAX_OUTPUT);
    if (append_text(&b, v) != 0) {
        buf_finish(&b);
        return too_long(e, err, errlen);
    }
    const char *sep = f->arg != NULL ? f->arg->valuestring : ",";
    size_t seplen = strlen(sep);
    cJSON *arr = cJSON_CreateArray();
    int rc = arr != NULL ? 0 : -ENOMEM;
    for (const char *s = b.data != NULL ? b.data : ""; rc == 0;) {
        const char *hit = strstr(s, sep);
        const char *piece = s;
        size_t n = hit != NULL ? (size_t)(hit - s) : strlen(s);
        trim_span(&piece, &n);
        if (n > 0) {
            char *copy = xstrndup(piece, n);
            cJSON *item = cJSON_CreateString(copy);
            free(copy);
            rc = item != NULL ? 0 : -ENOMEM;
            cJSON_AddItemToArray(arr, item);
        }
        if (hit == NULL) {
            break;
        }
        s = hit + seplen;
    }
    buf_finish(&b);
    if (rc != 0) {
        cJSON_Delete(arr);
        return rc;
    }
    return keep(a, arr, out);
}

/* `parse_json`: a string holding JSON -> that value; other text -> missing. */
static int parse_json_value(const cJSON *v, struct arena *a, const cJSON **out)
{
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        return 0;
    }
    cJSON *parsed = NULL;
    size_t n = strlen(v->valuestring);
    *out = NULL;
    if (n > 0 && json_parse(v->valuestring, n, &parsed, NULL) == 0) {
        return keep(a, parsed, out);
    }
    return 0;
}

static int apply_filter(const struct expr *e, const struct filter *f, const cJSON *v,
                        struct arena *a, const cJSON **out, char *err, size_t errlen)
{
    struct buf b;
    int rc = 0;

    *out = v;
    if (f->kind == F_DEFAULT) {
        if (is_nothing(v)) {
            *out = f->arg;
        }
        return 0;
    }
    if (f->kind == F_JSON) {
        char *s = json_print_canonical(v);
        if (strlen(s) > TEMPLATE_MAX_OUTPUT) {
            free(s);
            return too_long(e, err, errlen);
        }
        rc = keep(a, cJSON_CreateString(s), out);
        free(s);
        return rc;
    }
    if (is_nothing(v)) {
        return 0; /* every other filter passes missing and null through */
    }
    switch (f->kind) {
    case F_LOWER:
    case F_UPPER:
    case F_TRIM:
        buf_init(&b, TEMPLATE_MAX_OUTPUT);
        if (append_text(&b, v) != 0) {
            buf_finish(&b);
            return too_long(e, err, errlen);
        }
        if (b.data == NULL) {
            rc = keep(a, cJSON_CreateString(""), out);
        } else if (f->kind == F_TRIM) {
            const char *s = b.data;
            size_t n = b.len;
            trim_span(&s, &n);
            char *copy = xstrndup(s, n);
            rc = keep(a, cJSON_CreateString(copy), out);
            free(copy);
        } else {
            /* ASCII only: bytes >= 0x80 (UTF-8 sequences) are never touched. */
            for (size_t i = 0; i < b.len; i++) {
                char c = b.data[i];
                if (f->kind == F_LOWER && c >= 'A' && c <= 'Z') {
                    b.data[i] = (char)(c - 'A' + 'a');
                } else if (f->kind == F_UPPER && c >= 'a' && c <= 'z') {
                    b.data[i] = (char)(c - 'a' + 'A');
                }
            }
            rc = keep(a, cJSON_CreateString(b.data), out);
        }
        buf_finish(&b);
        return rc;
    case F_FIRST:
        if (cJSON_IsArray(v)) {
            *out = v->child;
        }
        return 0;
    case F_JOIN:
        buf_init(&b, TEMPLATE_MAX_OUTPUT);
        if (cJSON_IsArray(v)) {
            const char *sep = f->arg != NULL ? f->arg->valuestring : ", ";
            for (const cJSON *c = v->child; c != NULL && rc == 0; c = c->next) {
                if (c != v->child) {
                    rc = buf_append_str(&b, sep);
                }
                if (rc == 0) {
                    rc = append_text(&b, c);
                }
            }
        } else {
            rc = append_text(&b, v);
        }
        if (rc != 0) {
            buf_finish(&b);
            return too_long(e, err, errlen);
        }
        rc = keep(a, cJSON_CreateString(b.data != NULL ? b.data : ""), out);
        buf_finish(&b);
        return rc;
    case F_DATE: {
        int64_t ms;
        char iso[ISOTIME_LEN];
        if (!date_ms(v, &ms)) {
            *out = NULL;
            return 0;
        }
        isotime_format((uint64_t)ms, iso);
        return keep(a, cJSON_CreateString(iso), out);
    }
    case F_NUMBER: {
        double d;
        if (cJSON_IsNumber(v) || cJSON_IsRaw(v)) {
            return 0; /* Raw: an integer past 2^53 (json.h), a number already */
        }
        if (cJSON_IsBool(v)) {
            return keep(a, cJSON_CreateNumber(cJSON_IsTrue(v) ? 1 : 0), out);
        }
        *out = NULL;
        if (cJSON_IsString(v) && v->valuestring != NULL) {
            const char *s = v->valuestring;
            size_t n = strlen(s);
            trim_span(&s, &n);
            if (n > 0 && json_scan_number(s, n) == n && number_from(s, n, &d)) {
                return keep(a, cJSON_CreateNumber(d), out);
            }
        }
        return 0;
    }
    case F_BOOL: {
        static const char *const yes[] = {"true", "yes", "1"};
        static const char *const no[] = {"false", "no", "0"};
        if (cJSON_IsBool(v)) {
            return 0;
        }
        *out = NULL;
        if (cJSON_IsNumber(v) && (v->valuedouble == 0 || v->valuedouble == 1)) {
            return keep(a, cJSON_CreateBool(v->valuedouble == 1), out);
        }
        if (!cJSON_IsString(v) || v->valuestring == NULL) {
            return 0;
        }
        const char *s = v->valuestring;
        size_t n = strlen(s);
        trim_span(&s, &n);
        for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
            if (strlen(yes[i]) == n && strncasecmp(s, yes[i], n) == 0) {
                return keep(a, cJSON_CreateTrue(), out);
            }
            if (strlen(no[i]) == n && strncasecmp(s, no[i], n) == 0) {
                return keep(a, cJSON_CreateFalse(), out);
            }
        }
        return 0;
    }
    case F_URLENCODE:
        return urlencode_value(e, v, a, out, err, errlen);
    case F_RAW:
        return 0; /* a marker for URL templates: the value goes in unencoded */
    case F_SPLIT:
        return split_value(e, f, v, a, out, err, errlen);
    case F_PARSE_JSON:
        return parse_json_value(v, a, out);
    case F_DEFAULT:
    case F_JSON:
        break; /* handled above */
    }
    return 0;
}

/* Evaluates e: *out is the value (borrowed from event, e or the arena) or NULL for missing. */
static int eval(const struct expr *e, const cJSON *event, uint64_t now_wall_ms, struct arena *a,
                const cJSON **out, char *err, size_t errlen)
{
    const cJSON *v = NULL;
    int rc = 0;

    switch (e->root) {
    case ROOT_STRING:
        v = e->literal;
        break;
    case ROOT_NOW: {
        char iso[ISOTIME_LEN];
        if (now_wall_ms > (uint64_t)ISOTIME_MAX_MS) {
            set_err(err, errlen, "%s: the clock is out of range", e->src);
            return -EINVAL;
        }
        int64_t t = (int64_t)now_wall_ms + e->now_offset_ms;
        if (t < 0 || t > ISOTIME_MAX_MS) {
            set_err(err, errlen, "%s: the time is out of range", e->src);
            return -EINVAL;
        }
        isotime_format((uint64_t)t, iso);
        rc = keep(a, cJSON_CreateString(iso), &v);
        break;
    }
    case ROOT_RECORD:
    case ROOT_CHANGES:
    case ROOT_EVENT:
        v = event != NULL ? json_get_path(event, e->path) : NULL;
        break;
    }
    for (size_t i = 0; i < e->nfilters && rc == 0; i++) {
        rc = apply_filter(e, &e->filters[i], v, a, &v, err, errlen);
    }
    if (rc == -ENOMEM) {
        set_err(err, errlen, "%s: out of memory", e->src);
    }
    *out = v;
    return rc;
}

/* Appends the text of e's value to b, checking size and UTF-8. */
static int render_expr_text(const struct expr *e, const cJSON *event, uint64_t now_wall_ms,
                            struct buf *b, char *err, size_t errlen)
{
    struct arena a = {0};
    const cJSON *v = NULL;
    size_t before = b->len;
    int rc = eval(e, event, now_wall_ms, &a, &v, err, errlen);
    if (rc == 0 && append_text(b, v) != 0) {
        set_err(err, errlen, "output longer than %d bytes (at %s)", TEMPLATE_MAX_OUTPUT, e->src);
        rc = -EINVAL;
    }
    if (rc == 0 && b->len > before && !utf8_valid(b->data + before, b->len - before)) {
        set_err(err, errlen, "%s produced invalid UTF-8", e->src);
        rc = -EINVAL;
    }
    arena_free(&a);
    return rc;
}

/* The string form: literal parts plus the text of each expression. */
static int render_string(const struct template *t, const cJSON *event, uint64_t now_wall_ms,
                         struct buf *b, char *err, size_t errlen)
{
    for (size_t i = 0; i < t->nparts; i++) {
        const struct part *p = &t->parts[i];
        if (p->expr == NULL) {
            if (buf_append(b, p->lit, p->lit_len) != 0) {
                set_err(err, errlen, "output longer than %d bytes", TEMPLATE_MAX_OUTPUT);
                return -EINVAL;
            }
            continue;
        }
        int rc = render_expr_text(p->expr, event, now_wall_ms, b, err, errlen);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static const struct expr *only_expr(const struct template *t)
{
    for (size_t i = 0; i < t->nparts; i++) {
        if (t->parts[i].expr != NULL) {
            return t->parts[i].expr;
        }
    }
    return NULL;
}

/* A typed result: checks the bounds of v and copies it out. */
static int render_typed(const struct expr *e, const cJSON *event, uint64_t now_wall_ms,
                        cJSON **out, char *err, size_t errlen)
{
    struct arena a = {0};
    const cJSON *v = NULL;
    cJSON *copy = NULL;
    int rc = eval(e, event, now_wall_ms, &a, &v, err, errlen);

    if (rc != 0) {
        goto done;
    }
    if (cJSON_IsString(v) || cJSON_IsArray(v) || cJSON_IsObject(v)) {
        /* The compact JSON of a container covers every string and key in it. */
        char *printed = cJSON_IsString(v) ? NULL : json_print_canonical(v);
        const char *s = printed != NULL ? printed : (v->valuestring ? v->valuestring : "");
        size_t n = strlen(s);
        if (n > TEMPLATE_MAX_OUTPUT) {
            set_err(err, errlen, "output longer than %d bytes (at %s)", TEMPLATE_MAX_OUTPUT,
                    e->src);
            rc = -EINVAL;
        } else if (!utf8_valid(s, n)) {
            set_err(err, errlen, "%s produced invalid UTF-8", e->src);
            rc = -EINVAL;
        }
        free(printed);
        if (rc != 0) {
            goto done;
        }
    }
    copy = is_nothing(v) ? cJSON_CreateNull() : cJSON_Duplicate(v, 1);
    if (copy == NULL) {
        set_err(err, errlen, "%s: out of memory", e->src);
        rc = -ENOMEM;
        goto done;
    }
    /* A copy of an object member carries the member's name; the result has none. */
    if (copy->type & cJSON_StringIsConst) {
        copy->type &= ~cJSON_StringIsConst;
    } else {
        cJSON_free(copy->string);
    }
    copy->string = NULL;
    *out = copy;
done:
    arena_free(&a);
    return rc;
}

int template_render(const struct template *t, const cJSON *event, uint64_t now_wall_ms,
                    cJSON **out, char *err, size_t errlen)
{
    struct buf b;
    int rc;

    *out = NULL;
    if (t->typed) {
        return render_typed(only_expr(t), event, now_wall_ms, out, err, errlen);
    }
    buf_init(&b, TEMPLATE_MAX_OUTPUT);
    rc = render_string(t, event, now_wall_ms, &b, err, errlen);
    if (rc == 0) {
        *out = cJSON_CreateString(b.data != NULL ? b.data : "");
        if (*out == NULL) {
            set_err(err, errlen, "out of memory");
            rc = -ENOMEM;
        }
    }
    buf_finish(&b);
    return rc;
}

int template_render_text(const struct template *t, const cJSON *event, uint64_t now_wall_ms,
                         char **out, char *err, size_t errlen)
{
    struct buf b;
    int rc;

    *out = NULL;
    buf_init(&b, TEMPLATE_MAX_OUTPUT);
    if (t->typed) {
        rc = render_expr_text(only_expr(t), event, now_wall_ms, &b, err, errlen);
    } else {
        rc = render_string(t, event, now_wall_ms, &b, err, errlen);
    }
    if (rc == 0) {
        *out = b.data != NULL ? buf_steal(&b, NULL) : xstrdup("");
    }
    buf_finish(&b);
    return rc;
}

/* Ends the list element being built in cur (if any) and appends it to arr. */
static int flush_element(cJSON *arr, struct buf *cur, bool *have)
{
    if (!*have) {
        return 0;
    }
    cJSON *item = cJSON_CreateString(cur->data != NULL ? cur->data : "");
    buf_finish(cur);
    buf_init(cur, TEMPLATE_MAX_OUTPUT);
    *have = false;
    if (item == NULL) {
        return -ENOMEM;
    }
    cJSON_AddItemToArray(arr, item);
    return 0;
}

/* The list form of text mixing literals and expressions (see template.h). */
static int render_mixed_list(const struct template *t, const cJSON *event, uint64_t now_wall_ms,
                             cJSON *arr, char *err, size_t errlen)
{
    struct buf cur;
    bool have = false;
    int rc = 0;

    buf_init(&cur, TEMPLATE_MAX_OUTPUT);
    for (size_t i = 0; i < t->nparts && rc == 0; i++) {
        const struct part *p = &t->parts[i];
        if (p->expr != NULL) {
            size_t before = cur.len;
            rc = render_expr_text(p->expr, event, now_wall_ms, &cur, err, errlen);
            have = have || cur.len > before;
            continue;
        }
        for (size_t k = 0; k < p->lit_len && rc == 0; k++) {
            char c = p->lit[k];
            if (c == ' ' || c == ',' || c == '\t') {
                rc = flush_element(arr, &cur, &have);
            } else if (buf_append(&cur, &c, 1) != 0) {
                set_err(err, errlen, "output longer than %d bytes", TEMPLATE_MAX_OUTPUT);
                rc = -EINVAL;
            } else {
                have = true;
            }
        }
    }
    if (rc == 0) {
        rc = flush_element(arr, &cur, &have);
    }
    if (rc == -ENOMEM) {
        set_err(err, errlen, "out of memory");
    }
    buf_finish(&cur);
    return rc;
}

int template_render_list(const struct template *t, const cJSON *event, uint64_t now_wall_ms,
                         cJSON **out, char *err, size_t errlen)
{
    if (t->typed || t->nexprs == 0) {
        return template_render(t, event, now_wall_ms, out, err, errlen);
    }
    *out = cJSON_CreateArray();
    if (*out == NULL) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = render_mixed_list(t, event, now_wall_ms, *out, err, errlen);
    if (rc != 0) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    return rc;
}

/* Already safe for a URL: the user asked for it raw, or encoded it with `urlencode`. */
static bool url_ready(const struct expr *e)
{
    if (e->nfilters == 0) {
        return false;
    }
    enum filter_kind last = e->filters[e->nfilters - 1].kind;
    return last == F_RAW || last == F_URLENCODE;
}

int template_render_url(const struct template *t, const cJSON *event, uint64_t now_wall_ms,
                        char **out, char *err, size_t errlen)
{
    struct buf b;
    struct buf text;
    int rc = 0;

    *out = NULL;
    buf_init(&b, TEMPLATE_MAX_OUTPUT);
    for (size_t i = 0; i < t->nparts && rc == 0; i++) {
        const struct part *p = &t->parts[i];
        if (p->expr == NULL) {
            if (buf_append(&b, p->lit, p->lit_len) != 0) {
                set_err(err, errlen, "output longer than %d bytes", TEMPLATE_MAX_OUTPUT);
                rc = -EINVAL;
            }
            continue;
        }
        if (url_ready(p->expr)) {
            rc = render_expr_text(p->expr, event, now_wall_ms, &b, err, errlen);
            continue;
        }
        buf_init(&text, TEMPLATE_MAX_OUTPUT);
        rc = render_expr_text(p->expr, event, now_wall_ms, &text, err, errlen);
        if (rc == 0 && append_url_escaped(&b, text.data, text.len) != 0) {
            set_err(err, errlen, "output longer than %d bytes (at %s)", TEMPLATE_MAX_OUTPUT,
                    p->expr->src);
            rc = -EINVAL;
        }
        buf_finish(&text);
    }
    if (rc == 0) {
        *out = b.data != NULL ? buf_steal(&b, NULL) : xstrdup("");
    }
    buf_finish(&b);
    return rc;
}

int template_expand(const char *text, const cJSON *event, uint64_t now_wall_ms, char **out,
                    char *err, size_t errlen)
{
    struct template *t = NULL;
    *out = NULL;
    int rc = template_parse(text, &t, err, errlen);
    if (rc == 0) {
        rc = template_render_text(t, event, now_wall_ms, out, err, errlen);
    }
    template_free(t);
    return rc;
}

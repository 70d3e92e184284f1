/*
 * condition: parser and evaluator of `when` expressions. The grammar and
 * the semantics are in condition.h.
 *
 * The parser is recursive descent over a one-token lookahead lexer. Only
 * "(" recurses into expr (bounded by CONDITION_MAX_DEPTH); "not" chains
 * collapse to one NOT node by parity, so no input can recurse deeply.
 * The tree lives in one node array; children are indices into it.
 */
#include "condition.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "template.h"
#include "util.h"

enum node_kind {
    N_AND,
    N_OR,
    N_NOT,
    N_EQ,
    N_NE,
    N_CONTAINS,
    N_NOT_CONTAINS,
    N_EXISTS,
    N_NOT_EXISTS,
    N_CHANGED,
};

struct node {
    enum node_kind kind;
    size_t left;  /* AND, OR, NOT */
    size_t right; /* AND, OR */
    char *path;   /* comparisons: json_get_path path from the event root ("" = the event) */
    cJSON *lit;   /* EQ, NE, CONTAINS, NOT_CONTAINS */
    char *field;  /* CHANGED: the top-level record field */
};

struct condition {
    struct node *nodes;
    size_t n;
    size_t cap;
    size_t root;
    bool uses_changes;
};

enum tok_kind {
    T_END,
    T_WORD,   /* [A-Za-z_][A-Za-z0-9_.-]*: keywords and paths */
    T_STRING,
    T_NUMBER,
    T_LPAREN,
    T_RPAREN,
    T_EQ,
    T_NE,
};

struct tok {
    enum tok_kind kind;
    size_t pos; /* byte offset in the text */
    size_t len;
};

struct parser {
    const char *s;
    size_t len;
    struct tok tok; /* the lookahead */
    struct condition *c;
    size_t terms;
    size_t depth;
    char *err;
    size_t errlen;
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

/* The 1-based column of byte offset pos, counting UTF-8 characters (the text is valid UTF-8). */
static size_t column(const struct parser *p, size_t pos)
{
    size_t col = 1;
    for (size_t i = 0; i < pos && i < p->len; i++) {
        if (((unsigned char)p->s[i] & 0xC0) != 0x80) {
            col++;
        }
    }
    return col;
}

static bool is_word_char(char c)
{
    return ascii_is_alpha(c) || ascii_is_digit(c) || c == '-' || c == '.';
}

static bool tok_is(const struct parser *p, const char *word)
{
    size_t n = strlen(word);
    return p->tok.kind == T_WORD && p->tok.len == n && memcmp(p->s + p->tok.pos, word, n) == 0;
}

/* The current token quoted for a message: 'text' (clipped) or "the end". */
static void describe_tok(const struct parser *p, char *out, size_t size)
{
    if (p->tok.kind == T_END) {
        snprintf(out, size, "the end");
        return;
    }
    size_t n = p->tok.len > 40 ? 40 : p->tok.len;
    while (n < p->tok.len && n > 0 && ((unsigned char)p->s[p->tok.pos + n] & 0xC0) == 0x80) {
        n--; /* clip at a character boundary */
    }
    snprintf(out, size, "'%.*s%s'", (int)n, p->s + p->tok.pos, n < p->tok.len ? "..." : "");
}


/* Reads the next token into p->tok. Returns 0 or -EINVAL (err set). */
static int next(struct parser *p)
{
    size_t i = p->tok.pos + p->tok.len;
    while (i < p->len && (p->s[i] == ' ' || p->s[i] == '\t')) {
        i++;
    }
    p->tok = (struct tok){.kind = T_END, .pos = i, .len = 0};
    if (i >= p->len) {
        return 0;
    }
    const char *s = p->s + i;
    size_t rest = p->len - i;
    if (ascii_is_alpha(s[0])) {
        size_t n = 1;
        while (n < rest && is_word_char(s[n])) {
            n++;
        }
        p->tok = (struct tok){.kind = T_WORD, .pos = i, .len = n};
        return 0;
    }
    if (s[0] == '-' || ascii_is_digit(s[0])) {
        size_t n = json_scan_number(s, rest);
        if (n == 0 || (n < rest && (is_word_char(s[n])))) {
            set_err(p->err, p->errlen, "bad number at column %zu", column(p, i));
            return -EINVAL;
        }
        p->tok = (struct tok){.kind = T_NUMBER, .pos = i, .len = n};
        return 0;
    }
    if (s[0] == '"') {
        size_t n = 1;
        while (n < rest && s[n] != '"') {
            n += (s[n] == '\\' && n + 1 < rest) ? 2 : 1;
        }
        if (n >= rest) {
            set_err(p->err, p->errlen, "unterminated string at column %zu", column(p, i));
            return -EINVAL;
        }
        p->tok = (struct tok){.kind = T_STRING, .pos = i, .len = n + 1};
        return 0;
    }
    if (s[0] == '(' || s[0] == ')') {
        p->tok = (struct tok){.kind = s[0] == '(' ? T_LPAREN : T_RPAREN, .pos = i, .len = 1};
        return 0;
    }
    if (rest >= 2 && (s[0] == '=' || s[0] == '!') && s[1] == '=') {
        p->tok = (struct tok){.kind = s[0] == '=' ? T_EQ : T_NE, .pos = i, .len = 2};
        return 0;
    }
    unsigned char c = (unsigned char)s[0];
    if (c == '=') {
        set_err(p->err, p->errlen, "unexpected '=' at column %zu (use == to compare)",
                column(p, i));
    } else if (c == '&' || c == '|') {
        set_err(p->err, p->errlen, "unexpected '%c' at column %zu (use and, or)", c, column(p, i));
    } else if (c >= 0x20 && c < 0x7f) {
        set_err(p->err, p->errlen, "unexpected '%c' at column %zu", c, column(p, i));
    } else {
        set_err(p->err, p->errlen, "unexpected character at column %zu", column(p, i));
    }
    return -EINVAL;
}

static size_t add_node(struct parser *p, struct node n)
{
    struct condition *c = p->c;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->nodes = xrealloc(c->nodes, c->cap * sizeof(*c->nodes));
    }
    c->nodes[c->n] = n;
    return c->n++;
}

/* Decodes the string token (quotes and escapes) into a new cJSON string. */
static int string_literal(struct parser *p, cJSON **out)
{
    const char *s = p->s + p->tok.pos + 1;
    size_t n = p->tok.len - 2;
    char *v = xmalloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '\\') {
            char e = s[++i];
            if (e == '"' || e == '\\') {
                ch = e;
            } else if (e == 'n') {
                ch = '\n';
            } else if (e == 't') {
                ch = '\t';
            } else {
                set_err(p->err, p->errlen, "unknown escape at column %zu (use \\\" \\\\ \\n \\t)",
                        column(p, p->tok.pos + 1 + i - 1));
                free(v);
                return -EINVAL;
            }
        }
        v[o++] = ch;
    }
    v[o] = '\0';
    *out = cJSON_CreateString(v);
    free(v);
    return *out != NULL ? 0 : -ENOMEM;
}

/* literal := string | number | true | false | null; the operator was `op`. */
static int parse_literal(struct parser *p, const char *op, cJSON **out)
{
    char here[64];
    int rc = 0;

    *out = NULL;
    if (p->tok.kind == T_STRING) {
        rc = string_literal(p, out);
    } else if (p->tok.kind == T_NUMBER) {
        char tmp[64];
        if (p->tok.len >= sizeof(tmp)) {
            /* Found by fuzz_template: the check below must not point past tmp. */
            set_err(p->err, p->errlen, "number too long at column %zu", column(p, p->tok.pos));
            return -EINVAL;
        }
        memcpy(tmp, p->s + p->tok.pos, p->tok.len);
        tmp[p->tok.len] = '\0';
        /* An integer past 2^53 is a Raw node with its digits, as in events. */
        *out = json_number_from_text(tmp);
        if (*out == NULL) {
            set_err(p->err, p->errlen, "bad number at column %zu", column(p, p->tok.pos));
            return -EINVAL;
        }
    } else if (tok_is(p, "true")) {
        *out = cJSON_CreateTrue();
    } else if (tok_is(p, "false")) {
        *out = cJSON_CreateFalse();
    } else if (tok_is(p, "null")) {
        *out = cJSON_CreateNull();
    } else {
        describe_tok(p, here, sizeof(here));
        set_err(p->err, p->errlen,
                "expected a value (\"string\", number, true, false or null) after '%s', found %s "
                "at column %zu",
                op, here, column(p, p->tok.pos));
        return -EINVAL;
    }
    if (rc != 0) {
        return rc;
    }
    if (*out == NULL) {
        set_err(p->err, p->errlen, "out of memory");
        return -ENOMEM;
    }
    return next(p);
}

/*
 * Checks the path token and returns its json_get_path form (new string).
 * Returns 0 or -EINVAL.
 */
static int path_of(struct parser *p, char **out)
{
    static const char *const roots[] = {"record", "changes", "event"};
    const char *s = p->s + p->tok.pos;
    size_t n = p->tok.len;
    const char *dot = memchr(s, '.', n);
    size_t rlen = dot != NULL ? (size_t)(dot - s) : n;
    size_t r = 0;

    while (r < ARRAY_SIZE(roots) && !(strlen(roots[r]) == rlen && memcmp(roots[r], s, rlen) == 0)) {
        r++;
    }
    if (r == ARRAY_SIZE(roots)) {
        set_err(p->err, p->errlen,
                "unknown root '%.*s' at column %zu (use record, changes or event)",
                (int)(rlen > 40 ? 40 : rlen), s, column(p, p->tok.pos));
        return -EINVAL;
    }
    /* Every segment is non-empty: no "a..b", no trailing dot. */
    for (size_t i = rlen; i < n; i++) {
        if (s[i] == '.' && (i + 1 == n || s[i + 1] == '.')) {
            set_err(p->err, p->errlen, "empty field name in '%.*s' at column %zu",
                    (int)(n > 60 ? 60 : n), s, column(p, p->tok.pos + i + 1));
            return -EINVAL;
        }
    }
    if (r == 2) {
        if (dot != NULL) {
            const char *m = dot + 1;
            const char *mend = memchr(m, '.', (size_t)(s + n - m));
            size_t mlen = mend != NULL ? (size_t)(mend - m) : (size_t)(s + n - m);
            if (!template_is_event_member(m, mlen)) {
                set_err(p->err, p->errlen,
                        "unknown event member '%.*s' at column %zu (use id, seq, time, trigger, "
                        "location, type or record_id; the record and the changes are the roots "
                        "record and changes)",
                        (int)(mlen > 40 ? 40 : mlen), m, column(p, p->tok.pos + rlen + 1));
                return -EINVAL;
            }
            *out = xstrndup(m, (size_t)(s + n - m));
        } else {
            *out = xstrdup("");
        }
        return 0;
    }
    if (r == 1) {
        p->c->uses_changes = true;
    }
    *out = xstrndup(s, n);
    return 0;
}

static int parse_or(struct parser *p, size_t *out);

/* changed ( field ): the lookahead is the word "changed". */
static int parse_changed(struct parser *p, size_t *out)
{
    size_t at = p->tok.pos;
    char here[64];
    int rc = next(p);
    if (rc != 0) {
        return rc;
    }
    if (p->tok.kind != T_LPAREN) {
        describe_tok(p, here, sizeof(here));
        set_err(p->err, p->errlen, "expected '(' after 'changed', found %s at column %zu", here,
                column(p, p->tok.pos));
        return -EINVAL;
    }
    rc = next(p);
    if (rc != 0) {
        return rc;
    }
    const char *f = p->s + p->tok.pos;
    size_t n = p->tok.len;
    if (p->tok.kind == T_WORD && n > 7 && memcmp(f, "record.", 7) == 0) {
        f += 7;
        n -= 7;
    }
    if (p->tok.kind != T_WORD || n == 0 || memchr(f, '.', n) != NULL) {
        describe_tok(p, here, sizeof(here));
        set_err(p->err, p->errlen,
                "changed() takes a top-level record field such as email or record.email, found %s "
                "at column %zu",
                here, column(p, p->tok.pos));
        return -EINVAL;
    }
    char *field = xstrndup(f, n);
    rc = next(p);
    if (rc == 0 && p->tok.kind != T_RPAREN) {
        describe_tok(p, here, sizeof(here));
        set_err(p->err, p->errlen,
                "expected ')' to close 'changed(' at column %zu, found %s at column %zu",
                column(p, at), here, column(p, p->tok.pos));
        rc = -EINVAL;
    }
    if (rc != 0) {
        free(field);
        return rc;
    }
    p->c->uses_changes = true;
    *out = add_node(p, (struct node){.kind = N_CHANGED, .field = field});
    return next(p);
}

/* path ( exists | not exists | op literal ): the lookahead is the path word. */
static int parse_comparison(struct parser *p, size_t *out)
{
    struct tok path_tok = p->tok;
    struct node n = {0};
    char here[64];
    const char *op = NULL;
    int rc = path_of(p, &n.path);

    if (rc == 0) {
        rc = next(p);
    }
    if (rc != 0) {
        goto fail;
    }
    if (tok_is(p, "exists")) {
        n.kind = N_EXISTS;
    } else if (tok_is(p, "contains")) {
        n.kind = N_CONTAINS;
        op = "contains";
    } else if (p->tok.kind == T_EQ || p->tok.kind == T_NE) {
        n.kind = p->tok.kind == T_EQ ? N_EQ : N_NE;
        op = p->tok.kind == T_EQ ? "==" : "!=";
    } else if (tok_is(p, "not")) {
        rc = next(p);
        if (rc != 0) {
            goto fail;
        }
        if (tok_is(p, "exists")) {
            n.kind = N_NOT_EXISTS;
        } else if (tok_is(p, "contains")) {
            n.kind = N_NOT_CONTAINS;
            op = "not contains";
        } else {
            describe_tok(p, here, sizeof(here));
            set_err(p->err, p->errlen,
                    "expected 'exists' or 'contains' after 'not', found %s at column %zu", here,
                    column(p, p->tok.pos));
            rc = -EINVAL;
            goto fail;
        }
    } else {
        set_err(p->err, p->errlen,
                "expected an operator after '%.*s' at column %zu (==, !=, contains, not contains, "
                "exists or not exists)",
                (int)(path_tok.len > 60 ? 60 : path_tok.len), p->s + path_tok.pos,
                column(p, p->tok.pos));
        rc = -EINVAL;
        goto fail;
    }
    rc = next(p);
    if (rc == 0 && op != NULL) {
        rc = parse_literal(p, op, &n.lit);
    }
    if (rc != 0) {
        goto fail;
    }
    *out = add_node(p, n);
    return 0;
fail:
    free(n.path);
    cJSON_Delete(n.lit);
    return rc;
}

static int parse_term(struct parser *p, size_t *out)
{
    bool negate = false;
    size_t at;
    char here[64];
    int rc = 0;

    while (tok_is(p, "not")) {
        negate = !negate;
        rc = next(p);
        if (rc != 0) {
            return rc;
        }
    }
    at = p->tok.pos;
    if (p->tok.kind == T_LPAREN) {
        if (p->depth == CONDITION_MAX_DEPTH) {
            set_err(p->err, p->errlen, "parentheses nested deeper than %d at column %zu",
                    CONDITION_MAX_DEPTH, column(p, at));
            return -EINVAL;
        }
        p->depth++;
        rc = next(p);
        if (rc == 0) {
            rc = parse_or(p, out);
        }
        if (rc == 0 && p->tok.kind != T_RPAREN) {
            describe_tok(p, here, sizeof(here));
            set_err(p->err, p->errlen,
                    "expected ')' to close '(' at column %zu, found %s at column %zu",
                    column(p, at), here, column(p, p->tok.pos));
            rc = -EINVAL;
        }
        p->depth--;
        if (rc == 0) {
            rc = next(p);
        }
    } else if (p->tok.kind == T_WORD && !tok_is(p, "and") && !tok_is(p, "or") &&
               !tok_is(p, "exists") && !tok_is(p, "contains")) {
        if (p->terms == CONDITION_MAX_TERMS) {
            set_err(p->err, p->errlen, "more than %d comparisons (at column %zu)",
                    CONDITION_MAX_TERMS, column(p, at));
            return -EINVAL;
        }
        p->terms++;
        rc = tok_is(p, "changed") ? parse_changed(p, out) : parse_comparison(p, out);
    } else {
        describe_tok(p, here, sizeof(here));
        set_err(p->err, p->errlen,
                "expected a condition (a path such as record.email, not, '(' or changed(...)), "
                "found %s at column %zu",
                here, column(p, at));
        return -EINVAL;
    }
    if (rc == 0 && negate) {
        *out = add_node(p, (struct node){.kind = N_NOT, .left = *out});
    }
    return rc;
}

static int parse_and(struct parser *p, size_t *out)
{
    int rc = parse_term(p, out);
    while (rc == 0 && tok_is(p, "and")) {
        size_t right;
        rc = next(p);
        if (rc == 0) {
            rc = parse_term(p, &right);
        }
        if (rc == 0) {
            *out = add_node(p, (struct node){.kind = N_AND, .left = *out, .right = right});
        }
    }
    return rc;
}

static int parse_or(struct parser *p, size_t *out)
{
    int rc = parse_and(p, out);
    while (rc == 0 && tok_is(p, "or")) {
        size_t right;
        rc = next(p);
        if (rc == 0) {
            rc = parse_and(p, &right);
        }
        if (rc == 0) {
            *out = add_node(p, (struct node){.kind = N_OR, .left = *out, .right = right});
        }
    }
    return rc;
}

/* After a complete expression: only the end may follow. */
static int expect_end(struct parser *p)
{
    char here[64];
    static const char *const keywords[] = {"and", "or", "not", "exists", "contains", "changed"};

    if (p->tok.kind == T_END) {
        return 0;
    }
    describe_tok(p, here, sizeof(here));
    if (p->tok.kind == T_RPAREN) {
        set_err(p->err, p->errlen, "unmatched ')' at column %zu", column(p, p->tok.pos));
        return -EINVAL;
    }
    for (size_t i = 0; p->tok.kind == T_WORD && i < ARRAY_SIZE(keywords); i++) {
        if (p->tok.len == strlen(keywords[i]) &&
            strncasecmp(p->s + p->tok.pos, keywords[i], p->tok.len) == 0) {
            set_err(p->err, p->errlen, "unexpected %s at column %zu (keywords are lower-case: %s)",
                    here, column(p, p->tok.pos), keywords[i]);
            return -EINVAL;
        }
    }
    set_err(p->err, p->errlen, "unexpected %s at column %zu (expected and, or or the end)", here,
            column(p, p->tok.pos));
    return -EINVAL;
}

int condition_parse(const char *text, struct condition **out, char *err, size_t errlen)
{
    struct parser p = {.err = err, .errlen = errlen};
    int rc;

    *out = NULL;
    if (text == NULL) {
        set_err(err, errlen, "no condition text");
        return -EINVAL;
    }
    p.s = text;
    p.len = strnlen(text, CONDITION_MAX_TEXT + 1);
    if (p.len > CONDITION_MAX_TEXT) {
        set_err(err, errlen, "condition longer than %d bytes", CONDITION_MAX_TEXT);
        return -EINVAL;
    }
    if (!utf8_valid(text, p.len)) {
        set_err(err, errlen, "condition is not valid UTF-8");
        return -EINVAL;
    }
    for (size_t i = 0; i < p.len; i++) {
        unsigned char ch = (unsigned char)text[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            set_err(err, errlen, "control character at column %zu", column(&p, i));
            return -EINVAL;
        }
    }
    p.c = xcalloc(1, sizeof(*p.c));
    rc = next(&p);
    if (rc == 0 && p.tok.kind == T_END) {
        set_err(err, errlen, "empty condition");
        rc = -EINVAL;
    }
    if (rc == 0) {
        rc = parse_or(&p, &p.c->root);
    }
    if (rc == 0) {
        rc = expect_end(&p);
    }
    if (rc != 0) {
        condition_free(p.c);
        return rc;
    }
    *out = p.c;
    return 0;
}

void condition_free(struct condition *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        free(c->nodes[i].path);
        free(c->nodes[i].field);
        cJSON_Delete(c->nodes[i].lit);
    }
    free(c->nodes);
    free(c);
}

bool condition_uses_changes(const struct condition *c)
{
    return c != NULL && c->uses_changes;
}

/* A Raw integer (magnitude >= 2^53, its digits as written: json.h F20)
 * against a double: equal when the double is that very integer, compared as
 * exact decimal digits (every double that large is integral, and %.0f
 * prints it exactly). */
static bool big_equals_double(const cJSON *big, double d)
{
    char digits[400];
    if (!isfinite(d) || d != floor(d)) {
        return false;
    }
    snprintf(digits, sizeof(digits), "%.0f", d);
    return strcmp(big->valuestring, digits) == 0;
}

/* json_equal, except that an integer past 2^53 (Raw) and a number compare as
 * numbers: a Raw against a Raw by its digits (exact), against a double by
 * big_equals_double, never "different types". */
static bool value_equals(const cJSON *a, const cJSON *b)
{
    if (cJSON_IsRaw(a) && cJSON_IsNumber(b)) {
        return big_equals_double(a, b->valuedouble);
    }
    if (cJSON_IsNumber(a) && cJSON_IsRaw(b)) {
        return big_equals_double(b, a->valuedouble);
    }
    return json_equal(a, b);
}

static bool equals(const cJSON *v, const cJSON *lit)
{
    if (v == NULL) {
        return cJSON_IsNull(lit); /* missing == null, and nothing else */
    }
    return value_equals(v, lit);
}

static bool contains(const cJSON *v, const cJSON *lit)
{
    if (cJSON_IsString(v)) {
        return cJSON_IsString(lit) && v->valuestring != NULL &&
               strstr(v->valuestring, lit->valuestring) != NULL;
    }
    if (cJSON_IsArray(v)) {
        for (const cJSON *e = v->child; e != NULL; e = e->next) {
            if (value_equals(e, lit)) {
                return true;
            }
        }
    }
    return false;
}

static bool eval_node(const struct condition *c, size_t i, const cJSON *event)
{
    const struct node *n = &c->nodes[i];
    const cJSON *v = NULL;

    if (n->path != NULL && event != NULL) {
        v = json_get_path(event, n->path);
    }
    switch (n->kind) {
    case N_AND:
        return eval_node(c, n->left, event) && eval_node(c, n->right, event);
    case N_OR:
        return eval_node(c, n->left, event) || eval_node(c, n->right, event);
    case N_NOT:
        return !eval_node(c, n->left, event);
    case N_EQ:
        return equals(v, n->lit);
    case N_NE:
        return !equals(v, n->lit);
    case N_CONTAINS:
        return contains(v, n->lit);
    case N_NOT_CONTAINS:
        return !contains(v, n->lit);
    case N_EXISTS:
        return v != NULL && !cJSON_IsNull(v);
    case N_NOT_EXISTS:
        return v == NULL || cJSON_IsNull(v);
    case N_CHANGED: {
        const cJSON *ch = event != NULL ? json_get_path(event, "changes") : NULL;
        return cJSON_IsObject(ch) && cJSON_GetObjectItemCaseSensitive(ch, n->field) != NULL;
    }
    }
    return false;
}

bool condition_eval(const struct condition *c, const cJSON *event)
{
    if (c == NULL || c->n == 0) {
        return false;
    }
    return eval_node(c, c->root, event);
}

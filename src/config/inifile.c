/*
 * inifile: see inifile.h. The INI reader, error lists and key-table engine
 * shared by config (the user's file) and catalog (the shipped definitions).
 */
#include "inifile.h"

#include "log.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Error lists                                                               */

static char *vformat(const char *fmt, va_list ap) ATTR_PRINTF(1, 0);

static char *vformat(const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int len = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (len < 0) {
        return xstrdup("(unprintable message)");
    }
    char *s = xmalloc((size_t)len + 1);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    return s;
}

void ini_errors_add(struct ini_errors *e, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    char *text = line > 0 ? xasprintf("%s:%d: %s", file, line, msg)
                          : xasprintf("%s: %s", file, msg);
    free(msg);
    /* Defence in depth: any registered secret that reached a message by
     * accident (a token pasted into another key) is masked here. The mask
     * is 10 bytes and secrets are at least 4, so 3x always fits. */
    size_t size = strlen(text) * 3 + 16;
    char *clean = xmalloc(size);
    log_redact(text, clean, size);
    free(text);
    e->items = xrealloc(e->items, (e->count + 1) * sizeof(*e->items));
    e->items[e->count++] = clean;
}

void ini_errors_print(const struct ini_errors *e, FILE *out)
{
    for (size_t i = 0; e != NULL && i < e->count; i++) {
        fprintf(out, "%s\n", e->items[i]);
    }
}

void ini_errors_free(struct ini_errors *e)
{
    if (e == NULL) {
        return;
    }
    for (size_t i = 0; i < e->count; i++) {
        free(e->items[i]);
    }
    free(e->items);
    e->items = NULL;
    e->count = 0;
}

void ini_diag_init(struct ini_diag *d, const char *file)
{
    memset(d, 0, sizeof(*d));
    d->file = xstrdup(file != NULL ? file : "(config)");
}

void ini_diag_add(struct ini_diag *d, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    d->items = xrealloc(d->items, (d->count + 1) * sizeof(*d->items));
    d->items[d->count].line = line;
    d->items[d->count].msg = msg;
    d->count++;
}

void ini_diag_add_once(struct ini_diag *d, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < d->count; i++) {
        if (d->items[i].line == line && strcmp(d->items[i].msg, msg) == 0) {
            free(msg);
            return;
        }
    }
    d->items = xrealloc(d->items, (d->count + 1) * sizeof(*d->items));
    d->items[d->count].line = line;
    d->items[d->count].msg = msg;
    d->count++;
}

void ini_diag_flush(struct ini_diag *d, struct ini_errors *errs)
{
    /* Insertion sort: stable, and lists are short. */
    for (size_t i = 1; i < d->count; i++) {
        struct ini_diag_item it = d->items[i];
        size_t j = i;
        while (j > 0 && d->items[j - 1].line > it.line) {
            d->items[j] = d->items[j - 1];
            j--;
        }
        d->items[j] = it;
    }
    for (size_t i = 0; i < d->count; i++) {
        if (errs != NULL) {
            ini_errors_add(errs, d->file, d->items[i].line, "%s", d->items[i].msg);
        }
        free(d->items[i].msg);
    }
    free(d->items);
    free(d->file);
    memset(d, 0, sizeof(*d));
}

/* Copies at most INI_QUOTE_MAX bytes of s for a message (never splitting a
 * UTF-8 sequence), adding "..." when cut. */
void ini_quote(const char *s, char out[INI_QUOTE_MAX + 4])
{
    size_t len = strlen(s);
    if (len <= INI_QUOTE_MAX) {
        memcpy(out, s, len + 1);
        return;
    }
    size_t cut = INI_QUOTE_MAX;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) {
        cut--;
    }
    memcpy(out, s, cut);
    memcpy(out + cut, "...", 4);
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static bool is_name_char(char c)
{
    return ascii_is_alnum(c) || c == '_' || c == '.' || c == '-';
}

/* 1..INI_NAME_MAX bytes of [A-Za-z0-9_.-]. */
bool ini_valid_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > INI_NAME_MAX) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (!is_name_char(*p)) {
            return false;
        }
    }
    return true;
}

void ini_format_duration(uint64_t ms, char *out, size_t size)
{
    static const struct {
        uint64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(out, size, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    }
    if (ms == 0) {
        snprintf(out, size, "0");
        return;
    }
    snprintf(out, size, "%llums", (unsigned long long)ms);
}

static void format_size(uint64_t bytes, char *out, size_t size)
{
    static const struct {
        uint64_t mult;
        const char *unit;
    } units[] = {
        {1ULL << 40, "TiB"}, {1ULL << 30, "GiB"}, {1ULL << 20, "MiB"}, {1ULL << 10, "KiB"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        if (bytes != 0 && bytes % units[i].mult == 0) {
            snprintf(out, size, "%llu%s", (unsigned long long)(bytes / units[i].mult),
                     units[i].unit);
            return;
        }
    }
    snprintf(out, size, "%llu", (unsigned long long)bytes);
}

/* Edit distance for short words (both at most INI_NAME_MAX), counting a
 * swap of two neighbours as one edit (optimal string alignment), so that
 * "mian" is one typo away from "main". Case-insensitive. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    if (la > INI_NAME_MAX || lb > INI_NAME_MAX) {
        return SIZE_MAX;
    }
    size_t d[INI_NAME_MAX + 1][INI_NAME_MAX + 1];
    for (size_t i = 0; i <= la; i++) {
        d[i][0] = i;
    }
    for (size_t j = 0; j <= lb; j++) {
        d[0][j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        char ca = ascii_to_lower(a[i - 1]);
        for (size_t j = 1; j <= lb; j++) {
            char cb = ascii_to_lower(b[j - 1]);
            size_t best = d[i - 1][j - 1] + (ca == cb ? 0 : 1);
            if (d[i - 1][j] + 1 < best) {
                best = d[i - 1][j] + 1;
            }
            if (d[i][j - 1] + 1 < best) {
                best = d[i][j - 1] + 1;
            }
            if (i > 1 && j > 1 && ca == ascii_to_lower(b[j - 2]) &&
                ascii_to_lower(a[i - 2]) == cb && d[i - 2][j - 2] + 1 < best) {
                best = d[i - 2][j - 2] + 1;
            }
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

const char *ini_suggest(const char *word, const char *const *candidates, size_t n)
{
    /* Short words tolerate one edit, longer ones two: enough for typos
     * without suggesting unrelated keys. */
    size_t limit = strlen(word) <= 4 ? 1 : 2;
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        if (candidates[i] == NULL) {
            continue;
        }
        size_t d = edit_distance(word, candidates[i]);
        if (d <= limit && d < best_d) {
            best = candidates[i];
            best_d = d;
        }
    }
    return best;
}

/* ------------------------------------------------------------------------ */
/* INI reader                                                                */

enum line_kind {
    LINE_BLANK,   /* empty or comment: inih ignores it */
    LINE_BAD,     /* rejected by the pre-scan: served as a blank line */
    LINE_SECTION, /* [header] */
    LINE_KEY,     /* key = value */
    LINE_CONT,    /* indented continuation of the previous key */
    LINE_ERROR,   /* a syntax error (inih flags it too) */
};

struct ini_line {
    const char *text; /* into the file copy, not NUL-terminated */
    size_t len;
    enum line_kind kind;
    int section;      /* index of the section the line belongs to, or -1 */
};

struct ini_reader {
    struct ini_doc *doc;
    struct ini_line *lines;
    size_t nlines;
    size_t served;    /* lines handed to inih so far = current line number */
    long last_sec;    /* entry that continuations extend, or -1 */
    long last_entry;
};

/* Checks one line's bytes; adds an error and returns false if it is unusable. */
static bool prescan_line(struct ini_diag *d, int lineno, const char *text, size_t len)
{
    if (len > INI_DOC_MAX_LINE) {
        ini_diag_add(d, lineno,
                     "line is %zu bytes long; the limit is %d (continue a long value on "
                     "indented lines)",
                     len, INI_DOC_MAX_LINE);
        return false;
    }
    const unsigned char *p = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        if (p[i] == 0) {
            ini_diag_add(d, lineno, "NUL byte in line (column %zu)", i + 1);
            return false;
        }
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7F) {
            ini_diag_add(d, lineno, "control character 0x%02X in line (column %zu)", p[i],
                         i + 1);
            return false;
        }
        size_t n = utf8_seq_len(text + i, len - i);
        if (n == 0) {
            ini_diag_add(d, lineno, "invalid UTF-8 in line (column %zu)", i + 1);
            return false;
        }
        i += n;
    }
    return true;
}

/*
 * inih's find_chars_or_comment (r55): the first of chars, or an inline ';'
 * that follows white space, or the end.
 */
static const char *find_chars_or_comment(const char *s, const char *end, const char *chars)
{
    bool was_space = false;
    while (s < end && (chars == NULL || strchr(chars, *s) == NULL) && !(was_space && *s == ';')) {
        was_space = ascii_is_blank(*s);
        s++;
    }
    return s;
}

static int find_section(const struct ini_doc *doc, const char *kind, const char *name)
{
    for (size_t i = 0; i < doc->nsections; i++) {
        const struct ini_section *s = &doc->sections[i];
        if (strcmp(s->kind, kind) == 0 &&
            ((s->name == NULL && name == NULL) ||
             (s->name != NULL && name != NULL && strcmp(s->name, name) == 0))) {
            return (int)i;
        }
    }
    return -1;
}

/* Parses the text between '[' and ']' and appends a section (always, so the
 * keys below it have a home; a bad header gets skip = true). */
static int add_section(struct ini_doc *doc, int lineno, const char *text, size_t len)
{
    char *copy = xstrndup(text, len);
    char *words[3] = {NULL, NULL, NULL};
    size_t nwords = 0;
    bool ok = true;
    for (char *p = copy; *p != '\0';) {
        while (ascii_is_blank(*p)) {
            *p++ = '\0';
        }
        if (*p == '\0') {
            break;
        }
        if (nwords < 3) {
            words[nwords] = p;
        }
        nwords++;
        while (*p != '\0' && !ascii_is_blank(*p)) {
            p++;
        }
    }
    if (nwords == 0) {
        ini_diag_add(&doc->diag, lineno, "empty section header");
        ok = false;
    } else if (nwords > 2) {
        ini_diag_add(&doc->diag, lineno,
                     "bad section header: expected [KIND] or [KIND NAME], got %zu words",
                     nwords);
        ok = false;
    } else {
        for (size_t i = 0; i < nwords; i++) {
            if (!ini_valid_name(words[i])) {
                char q[INI_QUOTE_MAX + 4];
                ini_quote(words[i], q);
                ini_diag_add(&doc->diag, lineno,
                             "bad section name '%s': use 1-%d characters of A-Z a-z 0-9 _ . -",
                             q, INI_NAME_MAX);
                ok = false;
                break;
            }
        }
    }
    struct ini_section sec = {
        .kind = xstrdup(nwords > 0 && words[0] != NULL ? words[0] : ""),
        .name = nwords > 1 && words[1] != NULL ? xstrdup(words[1]) : NULL,
        .line = lineno,
        .skip = !ok,
    };
    if (ok) {
        int first = find_section(doc, sec.kind, sec.name);
        if (first >= 0) {
            ini_diag_add(&doc->diag, lineno, "duplicate section [%s%s%s] (first on line %d)",
                         sec.kind, sec.name ? " " : "", sec.name ? sec.name : "",
                         doc->sections[first].line);
            sec.skip = true;
        }
    }
    free(copy);
    doc->sections = xrealloc(doc->sections, (doc->nsections + 1) * sizeof(*doc->sections));
    doc->sections[doc->nsections] = sec;
    return (int)doc->nsections++;
}

/*
 * Classifies every line exactly as inih r55 will treat it (comment, then
 * continuation, then section, then key), so the handler knows each line's
 * section and whether it continues a value, without trusting inih's
 * 49-byte section buffer.
 */
static void classify(struct ini_reader *rd)
{
    struct ini_doc *doc = rd->doc;
    bool have_prev = false; /* inih's prev_name is non-empty */
    int section = -1;
    for (size_t i = 0; i < rd->nlines; i++) {
        struct ini_line *ln = &rd->lines[i];
        int lineno = (int)i + 1;
        if (ln->kind == LINE_BAD) {
            ln->section = section;
            continue;
        }
        const char *end = ln->text + ln->len;
        const char *s = ln->text;
        while (s < end && ascii_is_blank(*s)) {
            s++;
        }
        while (end > s && ascii_is_blank(end[-1])) {
            end--;
        }
        if (s == end || *s == ';' || *s == '#') {
            ln->kind = LINE_BLANK;
        } else if (have_prev && s > ln->text) {
            ln->kind = LINE_CONT;
        } else if (*s == '[') {
            const char *close = find_chars_or_comment(s + 1, end, "]");
            if (close < end && *close == ']') {
                ln->kind = LINE_SECTION;
                have_prev = false;
                section = add_section(doc, lineno, s + 1, (size_t)(close - s - 1));
                const char *rest = close + 1;
                while (rest < end && ascii_is_blank(*rest)) {
                    rest++;
                }
                if (rest < end && *rest != ';' && *rest != '#') {
                    ini_diag_add(&doc->diag, lineno, "unexpected text after ']'");
                    doc->sections[section].skip = true;
                }
            } else {
                ln->kind = LINE_ERROR;
                ini_diag_add(&doc->diag, lineno, "missing ']' in section header");
            }
        } else {
            const char *sep = find_chars_or_comment(s, end, "=:");
            if (sep < end && (*sep == '=' || *sep == ':')) {
                ln->kind = LINE_KEY;
                have_prev = true;
            } else {
                ln->kind = LINE_ERROR;
                ini_diag_add(&doc->diag, lineno,
                             "expected 'key = value', a [section] or a comment");
            }
        }
        ln->section = section;
    }
}

static char *reader_fn(char *str, int num, void *stream)
{
    struct ini_reader *rd = stream;
    if (rd->served >= rd->nlines || num < 2) {
        return NULL;
    }
    struct ini_line *ln = &rd->lines[rd->served++];
    if (ln->kind != LINE_BAD && ln->len + 1 > (size_t)num - 1) {
        /* Only if this inih was built with a shorter line than r55's 200:
         * never let it split a line. */
        ini_diag_add(&rd->doc->diag, (int)rd->served,
                     "line is %zu bytes long; this build's INI parser takes at most %d",
                     ln->len, num - 2);
        ln->kind = LINE_BAD;
    }
    if (ln->kind == LINE_BAD) {
        memcpy(str, "\n", 2);
        return str;
    }
    memcpy(str, ln->text, ln->len);
    str[ln->len] = '\n';
    str[ln->len + 1] = '\0';
    return str;
}

static bool valid_key_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 128) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (!is_name_char(*p)) {
            return false;
        }
    }
    return true;
}

static int handler_fn(void *user, const char *section, const char *name, const char *value)
{
    (void)section; /* truncated by r55; our own scan knows the real one */
    struct ini_reader *rd = user;
    struct ini_doc *doc = rd->doc;
    int lineno = (int)rd->served;
    if (lineno < 1 || (size_t)lineno > rd->nlines) {
        ini_diag_add(&doc->diag, lineno, "INI parser called back out of sequence");
        return 0;
    }
    const struct ini_line *ln = &rd->lines[lineno - 1];
    if (ln->kind == LINE_CONT) {
        if (rd->last_sec < 0) {
            return 1; /* the key it continues was rejected and reported */
        }
        struct ini_entry *e = &doc->sections[rd->last_sec].entries[rd->last_entry];
        /* An indented `key = value` is almost always a key indented by
         * mistake, which would silently vanish into the previous value. */
        size_t klen = strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                             "0123456789_.-");
        size_t eq = klen + strspn(value + klen, " \t");
        if (klen > 0 && value[eq] == '=') {
            char q[INI_QUOTE_MAX + 4];
            ini_quote(e->key, q);
            ini_diag_add(&doc->diag, lineno,
                         "indented line looks like a key but would continue the value of '%s' "
                         "(remove the indentation)",
                         q);
            return 0;
        }
        /* r55 keeps inline comments on continuation lines; strip them so
         * that the ';' rule is the same on every line. */
        const char *end = find_chars_or_comment(value, value + strlen(value), NULL);
        while (end > value && ascii_is_blank(end[-1])) {
            end--;
        }
        size_t add = (size_t)(end - value);
        if (add == 0) {
            return 1;
        }
        size_t old = strlen(e->value);
        e->value = xrealloc(e->value, old + add + 2);
        if (old > 0) {
            e->value[old++] = ' ';
        }
        memcpy(e->value + old, value, add);
        e->value[old + add] = '\0';
        return 1;
    }
    if (ln->kind != LINE_KEY) {
        ini_diag_add(&doc->diag, lineno, "INI parser disagrees about this line");
        return 0;
    }
    rd->last_sec = -1;
    char q[INI_QUOTE_MAX + 4];
    ini_quote(name, q);
    if (ln->section < 0) {
        ini_diag_add(&doc->diag, lineno, "key '%s' is outside any [section]", q);
        return 0;
    }
    if (!valid_key_name(name)) {
        ini_diag_add(&doc->diag, lineno,
                     name[0] == '\0' ? "missing key name before '='"
                                        : "bad key name (use letters, digits, _ . -)");
        return 0;
    }
    struct ini_section *sec = &doc->sections[ln->section];
    for (size_t i = 0; i < sec->nentries; i++) {
        if (strcmp(sec->entries[i].key, name) == 0) {
            ini_diag_add(&doc->diag, lineno, "duplicate key '%s' (first set on line %d)", q,
                         sec->entries[i].line);
            return 0;
        }
    }
    sec->entries = xrealloc(sec->entries, (sec->nentries + 1) * sizeof(*sec->entries));
    sec->entries[sec->nentries].key = xstrdup(name);
    sec->entries[sec->nentries].value = xstrdup(value);
    sec->entries[sec->nentries].line = lineno;
    rd->last_sec = ln->section;
    rd->last_entry = (long)sec->nentries;
    sec->nentries++;
    return 1;
}

static bool diag_has_line(const struct ini_diag *d, int line)
{
    for (size_t i = 0; i < d->count; i++) {
        if (d->items[i].line == line) {
            return true;
        }
    }
    return false;
}

/* Absolute directory of path (realpath of its dirname), or NULL. */
static char *file_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (slash == NULL) {
        dir = xstrdup(".");
    } else if (slash == path) {
        dir = xstrdup("/");
    } else {
        dir = xstrndup(path, (size_t)(slash - path));
    }
    char *abs = realpath(dir, NULL);
    free(dir);
    if (abs == NULL) {
        return NULL;
    }
    /* realpath's buffer comes from malloc; hand out an xmalloc'ed copy so
     * ownership rules stay uniform. */
    char *copy = xstrdup(abs);
    free(abs);
    return copy;
}

int ini_load(const char *path, struct ini_doc *doc)
{
    memset(doc, 0, sizeof(*doc));
    doc->path = xstrdup(path);
    ini_diag_init(&doc->diag, path);
    char *data = NULL;
    size_t len = 0;
    int rc = util_read_file(path, INI_DOC_MAX_FILE, &data, &len);
    if (rc == -EFBIG) {
        ini_diag_add(&doc->diag, 0, "file is larger than %d bytes", INI_DOC_MAX_FILE);
        return rc;
    }
    if (rc < 0) {
        ini_diag_add(&doc->diag, 0, "cannot read: %s", strerror(-rc));
        return rc;
    }
    doc->dir = file_dir(path);
    if (doc->dir == NULL) {
        rc = -errno;
        ini_diag_add(&doc->diag, 0, "cannot resolve the file's directory: %s", strerror(errno));
        explicit_bzero(data, len);
        free(data);
        return rc;
    }

    struct ini_reader rd = {.doc = doc, .last_sec = -1};
    const char *p = data;
    const char *end = data + len;
    /* inih skips a BOM on line 1; so do we, before measuring lines. */
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
        p += 3;
    }
    size_t cap = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl != NULL ? nl : end;
        size_t l = (size_t)(stop - p);
        if (l > 0 && p[l - 1] == '\r') {
            l--;
        }
        if (rd.nlines == cap) {
            cap = cap ? cap * 2 : 64;
            rd.lines = xrealloc(rd.lines, cap * sizeof(*rd.lines));
        }
        struct ini_line *ln = &rd.lines[rd.nlines++];
        ln->text = p;
        ln->len = l;
        ln->section = -1;
        ln->kind = prescan_line(&doc->diag, (int)rd.nlines, p, l) ? LINE_BLANK : LINE_BAD;
        p = nl != NULL ? nl + 1 : end;
    }
    classify(&rd);
    int irc = ini_parse_stream(reader_fn, &rd, handler_fn, &rd);
    if (irc > 0 && !diag_has_line(&doc->diag, irc)) {
        ini_diag_add(&doc->diag, irc, "syntax error");
    } else if (irc < 0) {
        ini_diag_add(&doc->diag, 0, "INI parser failed (%d)", irc);
    }
    free(rd.lines);
    /* The file may hold a literal client_secret (accepted in a private
     * file): leave no copy of it in freed memory. */
    explicit_bzero(data, len);
    free(data);
    return 0;
}

void ini_finish(struct ini_doc *doc, struct ini_errors *errs)
{
    for (size_t i = 0; i < doc->nsections; i++) {
        struct ini_section *s = &doc->sections[i];
        for (size_t j = 0; j < s->nentries; j++) {
            free(s->entries[j].key);
            /* A value may be a literal client_secret. */
            explicit_bzero(s->entries[j].value, strlen(s->entries[j].value));
            free(s->entries[j].value);
        }
        free(s->entries);
        free(s->kind);
        free(s->name);
    }
    free(doc->sections);
    ini_diag_flush(&doc->diag, errs);
    free(doc->path);
    free(doc->dir);
    memset(doc, 0, sizeof(*doc));
}

/* ------------------------------------------------------------------------ */
/* Key tables                                                                */

static const char *const *choices_or_empty(const struct ini_key *k)
{
    static const char *const none[] = {NULL};
    return k->choices != NULL ? k->choices : none;
}

char *ini_join_choices(const char *const *choices)
{
    size_t len = 1;
    for (size_t i = 0; choices[i] != NULL; i++) {
        len += strlen(choices[i]) + 1;
    }
    char *s = xmalloc(len);
    size_t o = 0;
    for (size_t i = 0; choices[i] != NULL; i++) {
        if (i > 0) {
            s[o++] = ' ';
        }
        size_t l = strlen(choices[i]);
        memcpy(s + o, choices[i], l);
        o += l;
    }
    s[o] = '\0';
    return s;
}

static int parse_value(struct ini_doc *doc, const struct ini_key *k, const char *value,
                       int line, void *field)
{
    char q[INI_QUOTE_MAX + 4];
    ini_quote(value, q);
    switch (k->type) {
    case INI_KEY_STRING: {
        const char *const *choices = choices_or_empty(k);
        if (choices[0] != NULL) {
            bool found = false;
            for (size_t i = 0; choices[i] != NULL; i++) {
                found = found || strcmp(choices[i], value) == 0;
            }
            if (!found) {
                char *all = ini_join_choices(choices);
                ini_diag_add(&doc->diag, line, "bad value '%s' for '%s' (allowed: %s)", q,
                             k->name, all);
                free(all);
                return -EINVAL;
            }
        }
        char **dst = field;
        free(*dst);
        *dst = xstrdup(value);
        return 0;
    }
    case INI_KEY_PATH: {
        char **dst = field;
        free(*dst);
        *dst = util_resolve_path(doc->dir, value);
        return 0;
    }
    case INI_KEY_DURATION:
    case INI_KEY_SIZE: {
        bool dur = k->type == INI_KEY_DURATION;
        uint64_t v;
        int rc = dur ? util_parse_duration(value, &v) : util_parse_size(value, &v);
        if (rc != 0) {
            ini_diag_add(&doc->diag, line,
                         dur ? "bad duration '%s' for '%s' (use a whole number with ms, s, m, "
                                  "h or d, e.g. 5m)"
                         : "bad size '%s' for '%s' (use a whole number with an optional "
                                  "KiB, MiB or GiB suffix, e.g. 16MiB)",
                         q, k->name);
            return -EINVAL;
        }
        if (v < k->min || v > k->max) {
            char lo[32], hi[32];
            if (dur) {
                ini_format_duration(k->min, lo, sizeof(lo));
                ini_format_duration(k->max, hi, sizeof(hi));
            } else {
                format_size(k->min, lo, sizeof(lo));
                format_size(k->max, hi, sizeof(hi));
            }
            ini_diag_add(&doc->diag, line, "%s = %s is out of range (allowed %s..%s%s)",
                         k->name, q, lo, hi,
                         k->min == 0 ? "; 0 means unlimited" : "");
            return -EINVAL;
        }
        *(uint64_t *)field = v;
        return 0;
    }
    case INI_KEY_UINT64:
    case INI_KEY_UNSIGNED: {
        long long v;
        if (util_parse_int(value, 0, LLONG_MAX, &v) != 0 || (uint64_t)v < k->min ||
            (uint64_t)v > k->max) {
            ini_diag_add(&doc->diag, line,
                         "bad value '%s' for '%s' (expected a whole number from %llu to %llu)",
                         q, k->name, (unsigned long long)k->min, (unsigned long long)k->max);
            return -EINVAL;
        }
        if (k->type == INI_KEY_UINT64) {
            *(uint64_t *)field = (uint64_t)v;
        } else {
            *(unsigned *)field = (unsigned)v;
        }
        return 0;
    }
    case INI_KEY_DOUBLE: {
        char *end = NULL;
        errno = 0;
        double v = strtod(value, &end);
        if (errno != 0 || end == value || *end != '\0' || !isfinite(v) || v < k->dmin ||
            v > k->dmax) {
            ini_diag_add(&doc->diag, line,
                         "bad value '%s' for '%s' (expected a number from %g to %g)", q,
                         k->name, k->dmin, k->dmax);
            return -EINVAL;
        }
        *(double *)field = v;
        return 0;
    }
    case INI_KEY_BOOL:
        if (util_parse_bool(value, field) != 0) {
            ini_diag_add(&doc->diag, line, "bad value '%s' for '%s' (expected yes or no)", q,
                         k->name);
            return -EINVAL;
        }
        return 0;
    case INI_KEY_LIST: {
        size_t n = 0;
        char **v = strv_split(value, &n);
        if (n > INI_LIST_MAX) {
            ini_diag_add(&doc->diag, line, "'%s' lists %zu items; the limit is %d", k->name, n,
                         INI_LIST_MAX);
            strv_free(v);
            return -EINVAL;
        }
        char ***dst = field;
        strv_free(*dst);
        *dst = v;
        return 0;
    }
    case INI_KEY_CUSTOM:
        return k->parse(doc, k, value, line, field);
    }
    return -EINVAL;
}

size_t ini_apply(struct ini_doc *doc, const struct ini_section *sec,
                 const char *what, const struct ini_key *keys, size_t nkeys, void *obj,
                 ini_extra_fn extra, int *lines)
{
    struct ini_table t = {keys, nkeys, obj};
    return ini_apply_tables(doc, sec, what, &t, 1, extra, lines);
}

/* The table and index of key name among tables, or false. */
static bool find_key(const struct ini_table *tables, size_t ntables, const char *name,
                     size_t *table, size_t *index)
{
    for (size_t t = 0; t < ntables; t++) {
        for (size_t k = 0; k < tables[t].nkeys; k++) {
            if (strcmp(tables[t].keys[k].name, name) == 0) {
                *table = t;
                *index = k;
                return true;
            }
        }
    }
    return false;
}

size_t ini_apply_tables(struct ini_doc *doc, const struct ini_section *sec, const char *what,
                        const struct ini_table *tables, size_t ntables, ini_extra_fn extra,
                        int *lines)
{
    size_t before = doc->diag.count;
    /* Keys are numbered across the tables, in order: lines[], seen[], names[]. */
    size_t first[8];
    size_t nkeys = 0;
    for (size_t t = 0; t < ntables && t < ARRAY_SIZE(first); t++) {
        first[t] = nkeys;
        nkeys += tables[t].nkeys;
    }
    if (lines != NULL) {
        memset(lines, 0, nkeys * sizeof(*lines));
    }
    bool seen[64] = {false};
    if (nkeys > ARRAY_SIZE(seen) || ntables > ARRAY_SIZE(first)) {
        ini_diag_add(&doc->diag, sec != NULL ? sec->line : 0, "internal: key table too long");
        return 1;
    }
    void *extra_obj = ntables > 0 ? tables[0].obj : NULL;
    for (size_t i = 0; sec != NULL && i < sec->nentries; i++) {
        const struct ini_entry *e = &sec->entries[i];
        size_t t = 0;
        size_t k = 0;
        if (!find_key(tables, ntables, e->key, &t, &k)) {
            if (extra != NULL && extra(doc, e, extra_obj)) {
                continue;
            }
            const char *names[64];
            for (size_t u = 0; u < ntables; u++) {
                for (size_t j = 0; j < tables[u].nkeys; j++) {
                    names[first[u] + j] = tables[u].keys[j].name;
                }
            }
            const char *hint = ini_suggest(e->key, names, nkeys);
            ini_diag_add(&doc->diag, e->line, "unknown key '%s' in %s%s%s%s", e->key, what,
                         hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
            continue;
        }
        const struct ini_key *key = &tables[t].keys[k];
        seen[first[t] + k] = true;
        if (lines != NULL) {
            lines[first[t] + k] = e->line;
        }
        if (e->value[0] == '\0') {
            ini_diag_add(&doc->diag, e->line, "empty value for '%s'%s", e->key,
                         key->required ? "" : " (remove the line to use the default)");
            continue;
        }
        parse_value(doc, key, e->value, e->line, (char *)tables[t].obj + key->offset);
    }
    for (size_t t = 0; t < ntables; t++) {
        for (size_t k = 0; k < tables[t].nkeys; k++) {
            const struct ini_key *key = &tables[t].keys[k];
            if (seen[first[t] + k]) {
                continue;
            }
            if (key->required) {
                ini_diag_add(&doc->diag, sec != NULL ? sec->line : 0,
                             "missing required key '%s' in %s", key->name, what);
            } else if (key->def != NULL) {
                parse_value(doc, key, key->def, sec != NULL ? sec->line : 0,
                            (char *)tables[t].obj + key->offset);
            }
        }
    }
    return doc->diag.count - before;
}

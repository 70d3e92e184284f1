/*
 * config: see config.h. The INI rules and the key-table engine are in
 * inifile.c.
 */
#include "config.h"

#include "buf.h"
#include "condition.h"
#include "secret.h"
#include "template.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef POLLEN_CATALOG_DIR
#define POLLEN_CATALOG_DIR "."
#endif

/* Most exec arguments and http headers per rule. */
#define ARGS_MAX 64
#define HEADERS_MAX 32
/* Parser messages (template, condition) are cut to this size. */
#define PARSE_ERR_MAX 256

/* ------------------------------------------------------------------------ */
/* The user's file: custom parsers                                           */

struct loader {
    struct config *cfg;
    unsigned flags;
};

static int parse_log_level(struct ini_doc *doc, const struct ini_key *k, const char *value,
                           int line, void *field)
{
    enum log_level level;
    if (log_parse_level(value, &level) != 0) {
        char q[INI_QUOTE_MAX + 4];
        ini_quote(value, q);
        ini_diag_add(&doc->diag, line,
                     "bad value '%s' for '%s' (allowed: error warn info debug)", q, k->name);
        return -EINVAL;
    }
    *(enum log_level *)field = level;
    return 0;
}

/* A reference to another section: [location NAME] or [trigger NAME]. */
static int parse_name(struct ini_doc *doc, const struct ini_key *k, const char *value,
                      int line, void *field)
{
    if (!ini_valid_name(value)) {
        char q[INI_QUOTE_MAX + 4];
        ini_quote(value, q);
        ini_diag_add(&doc->diag, line,
                     "bad value '%s' for '%s' (a section name: 1-%d characters of A-Z a-z "
                     "0-9 _ . -)",
                     q, k->name, INI_NAME_MAX);
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrdup(value);
    return 0;
}

/* location = NAME, or * for every [location] (expanded after all triggers
 * are read). */
static int parse_trigger_location(struct ini_doc *doc, const struct ini_key *k,
                                  const char *value, int line, void *field)
{
    if (strcmp(value, "*") == 0) {
        char **dst = field;
        free(*dst);
        *dst = xstrdup(value);
        return 0;
    }
    return parse_name(doc, k, value, line, field);
}

/* oauth = NAME of an [oauth NAME] section (all read before [location]). */
static int parse_location_oauth(struct ini_doc *doc, const struct ini_key *k,
                                const char *value, int line, void *field)
{
    const struct loader *ld = doc->user;
    const struct config *cfg = ld->cfg;
    struct config_location *loc =
        (struct config_location *)(void *)((char *)field -
                                           offsetof(struct config_location, oauth_name));
    if (parse_name(doc, k, value, line, field) != 0) {
        return -EINVAL;
    }
    loc->oauth = config_find_oauth(cfg, value);
    if (loc->oauth == NULL) {
        const char **names = xcalloc(cfg->noauths + 1, sizeof(*names));
        for (size_t i = 0; i < cfg->noauths; i++) {
            names[i] = cfg->oauths[i].name;
        }
        const char *hint = ini_suggest(value, names, cfg->noauths);
        ini_diag_add(&doc->diag, line,
                     "unknown oauth credential '%s' (no [oauth %s] section)%s%s%s", value,
                     value, hint ? "; did you mean '" : "", hint ? hint : "",
                     hint ? "'?" : "");
        free(names);
        return -EINVAL;
    }
    return 0;
}

static bool is_local_host(const char *host, size_t len)
{
    static const char *const local[] = {"127.0.0.1", "localhost", "[::1]"};
    for (size_t i = 0; i < ARRAY_SIZE(local); i++) {
        if (strlen(local[i]) == len && memcmp(host, local[i], len) == 0) {
            return true;
        }
    }
    return false;
}

/* What check_web_url demands beyond https:// or http:// to loopback. */
enum {
    URL_LOOPBACK_PORT_PATH = 1u << 0, /* http:// needs an explicit port and a /path */
};

/*
 * An absolute URL for key k: https://HOST[:PORT][/PATH], or http:// to
 * 127.0.0.1, localhost or [::1] only; no spaces, credentials, query or
 * fragment (pollen appends its own query). Returns 0, or -EINVAL after
 * reporting at line. The value is never quoted: it is checked before it
 * can be known not to be a pasted secret.
 */
static int check_web_url(struct ini_doc *doc, const struct ini_key *k, const char *value,
                         int line, unsigned flags)
{
    const char *rest;
    bool https = str_has_prefix(value, "https://");
    if (https) {
        rest = value + 8;
    } else if (str_has_prefix(value, "http://")) {
        rest = value + 7;
    } else {
        ini_diag_add(&doc->diag, line,
                     "%s must start with https:// (http:// is allowed only for 127.0.0.1, "
                     "localhost and [::1])",
                     k->name);
        return -EINVAL;
    }
    if (strpbrk(value, " \t@?#") != NULL) {
        ini_diag_add(&doc->diag, line,
                     "%s must not contain spaces, credentials (@), a query (?) or a "
                     "fragment (#)",
                     k->name);
        return -EINVAL;
    }
    size_t authority = strcspn(rest, "/");
    size_t host = rest[0] == '[' ? strcspn(rest, "]") + 1 : strcspn(rest, ":/");
    if (host == 0 || host > authority) {
        ini_diag_add(&doc->diag, line, "%s has no host", k->name);
        return -EINVAL;
    }
    bool has_port = host < authority;
    if (has_port) {
        /* Only ":PORT" may follow the host, with PORT in 1..65535. */
        const char *port = rest + host;
        size_t plen = authority - host;
        bool ok = port[0] == ':' && plen >= 2 && plen <= 6;
        unsigned long v = 0;
        for (size_t i = 1; ok && i < plen; i++) {
            ok = isdigit((unsigned char)port[i]) != 0;
            v = v * 10 + (unsigned long)(port[i] - '0');
        }
        if (!ok || v == 0 || v > 65535) {
            ini_diag_add(&doc->diag, line, "%s has a bad port", k->name);
            return -EINVAL;
        }
    }
    if (!https && !is_local_host(rest, host)) {
        ini_diag_add(&doc->diag, line,
                     "%s must use https:// (http:// is allowed only for 127.0.0.1, "
                     "localhost and [::1])",
                     k->name);
        return -EINVAL;
    }
    if (!https && (flags & URL_LOOPBACK_PORT_PATH) != 0 &&
        (!has_port || rest[authority] != '/' || rest[authority + 1] == '\0')) {
        ini_diag_add(&doc->diag, line,
                     "%s on a loopback host needs a port and a path, e.g. "
                     "http://127.0.0.1:8976/callback",
                     k->name);
        return -EINVAL;
    }
    return 0;
}

static int parse_base_url(struct ini_doc *doc, const struct ini_key *k, const char *value,
                          int line, void *field)
{
    if (check_web_url(doc, k, value, line, 0) != 0) {
        return -EINVAL;
    }
    size_t len = strlen(value);
    while (len > 0 && value[len - 1] == '/') {
        len--;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrndup(value, len);
    return 0;
}

/* redirect_uri and authorize_url: kept exactly as written, since the
 * authorization server compares redirect_uri byte for byte. */
static int parse_oauth_url(struct ini_doc *doc, const struct ini_key *k, const char *value,
                           int line, void *field)
{
    unsigned flags = strcmp(k->name, "redirect_uri") == 0 ? URL_LOOPBACK_PORT_PATH : 0;
    if (check_web_url(doc, k, value, line, flags) != 0) {
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrdup(value);
    return 0;
}

/* [api] proxy: the only way pollen uses a proxy (the *_proxy environment
 * variables are ignored, F23). A scheme libcurl knows, a host, no spaces. */
static int parse_proxy(struct ini_doc *doc, const struct ini_key *k, const char *value,
                       int line, void *field)
{
    static const char *const schemes[] = {"http://", "https://", "socks5://", "socks5h://"};
    size_t skip = 0;
    for (size_t i = 0; i < ARRAY_SIZE(schemes) && skip == 0; i++) {
        if (strncmp(value, schemes[i], strlen(schemes[i])) == 0) {
            skip = strlen(schemes[i]);
        }
    }
    bool ok = skip > 0 && value[skip] != '\0' && value[skip] != '/';
    for (const char *p = value; ok && *p != '\0'; p++) {
        ok = isgraph((unsigned char)*p) != 0;
    }
    if (!ok) {
        ini_diag_add(&doc->diag, line,
                     "%s must be a URL such as http://HOST:PORT (schemes: http, https, "
                     "socks5, socks5h)",
                     k->name);
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrdup(value);
    return 0;
}

static int parse_ca_file(struct ini_doc *doc, const struct ini_key *k, const char *value,
                         int line, void *field)
{
    char *path = util_resolve_path(doc->dir, value);
    struct stat st;
    if (stat(path, &st) != 0) {
        ini_diag_add(&doc->diag, line, "%s '%s': %s", k->name, path, strerror(errno));
        free(path);
        return -EINVAL;
    }
    if (!S_ISREG(st.st_mode)) {
        ini_diag_add(&doc->diag, line, "%s '%s' is not a regular file", k->name, path);
        free(path);
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = path;
    return 0;
}

static int parse_location_id(struct ini_doc *doc, const struct ini_key *k,
                             const char *value, int line, void *field)
{
    size_t len = strlen(value);
    bool ok = len >= 1 && len <= 64;
    for (size_t i = 0; ok && i < len; i++) {
        ok = isalnum((unsigned char)value[i]) != 0;
    }
    if (!ok) {
        /* Not quoted: a token pasted here by mistake must not be printed. */
        ini_diag_add(&doc->diag, line,
                     "%s must be the HighLevel locationId: 1-64 letters and digits", k->name);
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrdup(value);
    return 0;
}

/*
 * A reference to a value kept outside the file: env:VAR or file:PATH
 * (must_be_private: the file must be private, as for secrets), read by
 * secret_ref_read. Returns 0 with *out set (NULL when CONFIG_SKIP_SECRETS:
 * nothing is read), -EINVAL after reporting, or 1 when value is neither
 * form (the caller decides about literals).
 */
static int read_reference(struct ini_doc *doc, const struct ini_key *k, const char *value,
                          int line, bool must_be_private, char **out)
{
    const struct loader *ld = doc->user;
    unsigned flags = (must_be_private ? SECRET_PRIVATE : 0) |
                     ((ld->flags & CONFIG_SKIP_SECRETS) ? SECRET_SKIP : 0);
    char *msg = NULL;
    int rc = secret_ref_read(value, k->name, doc->dir, flags, out, &msg);
    if (rc < 0) {
        ini_diag_add(&doc->diag, line, "%s", msg);
        free(msg);
    }
    return rc;
}

/* secret_check, reporting at line. */
static int check_secret(struct ini_doc *doc, int line, const char *what, const char *source,
                        char *secret)
{
    char *msg = NULL;
    int rc = secret_check(what, source, secret, &msg);
    if (rc != 0) {
        ini_diag_add(&doc->diag, line, "%s", msg);
        free(msg);
    }
    return rc;
}

/*
 * token = env:VAR | file:PATH. The value itself is never quoted in a
 * message: when it is not one of the two forms it is probably the secret.
 */
static int parse_token(struct ini_doc *doc, const struct ini_key *k, const char *value,
                       int line, void *field)
{
    char *secret = NULL;
    int rc = read_reference(doc, k, value, line, true, &secret);
    if (rc == 1) {
        /* Mask it too, in case it shows up anywhere else. */
        if (strlen(value) >= 8) {
            log_add_secret(value);
        }
        ini_diag_add(&doc->diag, line,
                     "%s must be env:VAR or file:PATH, never the token itself: put the token "
                     "in a file only you can read (chmod 600) and write '%s = file:/path/to/"
                     "token', or export it and write '%s = env:GHL_TOKEN'",
                     k->name, k->name, k->name);
        return -EINVAL;
    }
    if (rc != 0) {
        return rc;
    }
    log_add_secret(secret);
    char **dst = field;
    secret_wipe_free(*dst);
    *dst = secret;
    return 0;
}

/*
 * client_secret = env:VAR | file:PATH, or the secret itself when this file
 * is as private as a secret file (owned by the euid, mode 0600 or
 * stricter: reliability.md §5.1). A literal is registered with
 * log_add_secret before anything else, accepted or not.
 */
static int parse_client_secret(struct ini_doc *doc, const struct ini_key *k,
                               const char *value, int line, void *field)
{
    const struct loader *ld = doc->user;
    char *secret = NULL;
    int rc = read_reference(doc, k, value, line, true, &secret);
    if (rc == 1) {
        log_add_secret(value);
        struct stat st;
        if (stat(doc->path, &st) != 0) {
            ini_diag_add(&doc->diag, line, "%s: cannot check the permissions of '%s': %s",
                         k->name, doc->path, strerror(errno));
            return -EINVAL;
        }
        if (st.st_uid != geteuid()) {
            ini_diag_add(&doc->diag, line,
                         "%s is written in '%s', which is owned by uid %u, not by the user "
                         "running pollen (uid %u); run: chown %u %s (or write %s = env:VAR "
                         "or %s = file:PATH)",
                         k->name, doc->path, (unsigned)st.st_uid, (unsigned)geteuid(),
                         (unsigned)geteuid(), doc->path, k->name, k->name);
            return -EINVAL;
        }
        if ((st.st_mode & 077) != 0) {
            ini_diag_add(&doc->diag, line,
                         "permissions %04o for '%s' are too open for a literal %s; run: "
                         "chmod 600 %s (or write %s = env:VAR or %s = file:PATH)",
                         (unsigned)(st.st_mode & 07777), doc->path, k->name, doc->path,
                         k->name, k->name);
            return -EINVAL;
        }
        if (ld->flags & CONFIG_SKIP_SECRETS) {
            return 0;
        }
        secret = xstrdup(value);
        rc = check_secret(doc, line, k->name, "the file", secret);
        if (rc != 0) {
            secret_wipe_free(secret);
            return rc;
        }
    } else if (rc != 0) {
        return rc;
    }
    if (secret == NULL) {
        return 0; /* CONFIG_SKIP_SECRETS */
    }
    log_add_secret(secret);
    char **dst = field;
    secret_wipe_free(*dst);
    *dst = secret;
    return 0;
}

/* The longest client_id accepted (HighLevel's are about 40 bytes). */
#define CLIENT_ID_MAX 256

/* client_id: not a secret, so a literal is fine; env:VAR and file:PATH
 * (any regular file) are accepted too. Printable ASCII without spaces,
 * since it goes into URLs and form bodies. */
static int parse_client_id(struct ini_doc *doc, const struct ini_key *k, const char *value,
                           int line, void *field)
{
    char *id = NULL;
    int rc = read_reference(doc, k, value, line, false, &id);
    if (rc == 1) {
        id = xstrdup(value);
    } else if (rc != 0) {
        return rc;
    }
    if (id == NULL) {
        return 0; /* CONFIG_SKIP_SECRETS */
    }
    size_t len = strlen(id);
    bool ok = len >= 1 && len <= CLIENT_ID_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        ok = id[i] > 0x20 && id[i] < 0x7F;
    }
    if (!ok) {
        ini_diag_add(&doc->diag, line,
                     "%s must be 1-%d printable ASCII characters without spaces", k->name,
                     CLIENT_ID_MAX);
        free(id);
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = id;
    return 0;
}

/* The longest scope name accepted, and the most scopes per credential. */
#define SCOPE_MAX 128

static bool valid_scope(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > SCOPE_MAX) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-' || *p == '/')) {
            return false;
        }
    }
    return true;
}

/* scopes = contacts.readonly contacts.write ...: at least one; duplicates
 * are dropped. */
static int parse_scopes(struct ini_doc *doc, const struct ini_key *k, const char *value,
                        int line, void *field)
{
    size_t n = 0;
    char **v = strv_split(value, &n);
    if (n > INI_LIST_MAX) {
        ini_diag_add(&doc->diag, line, "'%s' lists %zu items; the limit is %d", k->name, n,
                     INI_LIST_MAX);
        strv_free(v);
        return -EINVAL;
    }
    int rc = 0;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (!valid_scope(v[i])) {
            char q[INI_QUOTE_MAX + 4];
            ini_quote(v[i], q);
            ini_diag_add(&doc->diag, line,
                         "%s: bad scope '%s' (1-%d characters of A-Z a-z 0-9 . _ - /, e.g. "
                         "contacts.readonly)",
                         k->name, q, SCOPE_MAX);
            rc = -EINVAL;
        }
        bool dup = false;
        for (size_t j = 0; j < kept && !dup; j++) {
            dup = strcmp(v[j], v[i]) == 0;
        }
        if (dup) {
            free(v[i]);
        } else {
            v[kept++] = v[i];
        }
    }
    v[kept] = NULL;
    if (rc != 0 || kept == 0) {
        if (rc == 0) {
            ini_diag_add(&doc->diag, line, "%s lists no scope", k->name);
        }
        strv_free(v);
        return -EINVAL;
    }
    char ***dst = field;
    strv_free(*dst);
    *dst = v;
    return 0;
}

/* A trigger's interval: from [engine] min_interval (parsed earlier, since
 * [engine] is processed first) to key->max. */
static int parse_every(struct ini_doc *doc, const struct ini_key *k, const char *value,
                       int line, void *field)
{
    const struct loader *ld = doc->user;
    uint64_t lo = ld->cfg->min_interval_ms > k->min ? ld->cfg->min_interval_ms : k->min;
    uint64_t v;
    char q[INI_QUOTE_MAX + 4];
    ini_quote(value, q);
    if (util_parse_duration(value, &v) != 0) {
        ini_diag_add(&doc->diag, line,
                     "bad duration '%s' for '%s' (use a whole number with ms, s, m, h or d, "
                     "e.g. 5m)",
                     q, k->name);
        return -EINVAL;
    }
    if (v < lo || v > k->max) {
        char a[32], b[32];
        ini_format_duration(lo, a, sizeof(a));
        ini_format_duration(k->max, b, sizeof(b));
        ini_diag_add(&doc->diag, line,
                     "%s = %s is out of range (allowed %s..%s; the lower bound is [engine] "
                     "min_interval)",
                     k->name, q, a, b);
        return -EINVAL;
    }
    *(uint64_t *)field = v;
    return 0;
}

static const char *const emit_names[] = {"created", "updated", "deleted", NULL};

static int parse_emit(struct ini_doc *doc, const struct ini_key *k, const char *value,
                      int line, void *field)
{
    size_t n = 0;
    char **v = strv_split(value, &n);
    unsigned bits = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (emit_names[j] != NULL && strcmp(emit_names[j], v[i]) != 0) {
            j++;
        }
        if (emit_names[j] == NULL) {
            char q[INI_QUOTE_MAX + 4];
            ini_quote(v[i], q);
            ini_diag_add(&doc->diag, line,
                         "%s: unknown event type '%s' (allowed: created updated deleted)",
                         k->name, q);
            rc = -EINVAL;
            continue;
        }
        bits |= 1u << j;
    }
    strv_free(v);
    if (rc == 0) {
        *(unsigned *)field = bits;
    }
    return rc;
}

static int parse_first_poll(struct ini_doc *doc, const struct ini_key *k,
                            const char *value, int line, void *field)
{
    if (strcmp(value, "baseline") == 0 || strcmp(value, "emit") == 0) {
        *(bool *)field = strcmp(value, "emit") == 0;
        return 0;
    }
    char q[INI_QUOTE_MAX + 4];
    ini_quote(value, q);
    ini_diag_add(&doc->diag, line, "bad value '%s' for '%s' (allowed: baseline emit)", q,
                 k->name);
    return -EINVAL;
}

/* ------------------------------------------------------------------------ */
/* The user's file: [rule] parsers                                           */

/* The rule a custom parser writes into, from the address of its member. */
#define RULE_OF(field, member) \
    ((struct config_rule *)(void *)((char *)(field) - offsetof(struct config_rule, member)))

#define EMIT_ALL (EVENT_TYPE_CREATED | EVENT_TYPE_UPDATED | EVENT_TYPE_DELETED)

static void format_emit(unsigned bits, char *out, size_t size)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t j = 0; emit_names[j] != NULL; j++) {
        if ((bits & (1u << j)) != 0 && o < size) {
            int n = snprintf(out + o, size - o, "%s%s", o > 0 ? " " : "", emit_names[j]);
            o += n > 0 ? (size_t)n : 0;
        }
    }
}

/* Parses a template for key `what`; NULL (and an error at line) if bad. */
static struct template *parse_template(struct ini_doc *doc, int line, const char *what,
                                       const char *text)
{
    char err[PARSE_ERR_MAX];
    struct template *t = NULL;
    if (template_parse(text, &t, err, sizeof(err)) != 0) {
        ini_diag_add(&doc->diag, line, "'%s': %s", what, err);
        return NULL;
    }
    return t;
}

/*
 * The index of the "}}" closing the "{{" at open, or 0 if none. Mirrors
 * template.c: a "}}" inside a double-quoted string does not close.
 */
static size_t expr_close(const char *s, size_t len, size_t open)
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

/* True when text is one {{expr}} with only white space around it: such a
 * template keeps its value's JSON type (template.h). */
static bool is_single_expr(const char *text)
{
    size_t len = strlen(text);
    size_t i = 0;
    while (i < len && ascii_is_blank(text[i])) {
        i++;
    }
    if (i + 1 >= len || text[i] != '{' || text[i + 1] != '{') {
        return false;
    }
    size_t close = expr_close(text, len, i);
    if (close == 0) {
        return false;
    }
    for (i = close + 2; i < len; i++) {
        if (!ascii_is_blank(text[i])) {
            return false;
        }
    }
    return true;
}

/*
 * Splits exec args on blanks outside {{ }}, so that
 * `{{record.name | default "a b"}}` stays one word. An unclosed {{ takes
 * the rest of the text (template_parse then reports it).
 */
static char **split_words(const char *s, size_t *count)
{
    size_t len = strlen(s);
    char **v = xcalloc(1, sizeof(*v));
    size_t n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && ascii_is_blank(s[i])) {
            i++;
        }
        if (i == len) {
            break;
        }
        size_t start = i;
        while (i < len && !ascii_is_blank(s[i])) {
            if (s[i] == '{' && i + 1 < len && s[i + 1] == '{') {
                size_t close = expr_close(s, len, i);
                i = close != 0 ? close + 2 : len;
            } else {
                i++;
            }
        }
        v = xrealloc(v, (n + 2) * sizeof(*v));
        v[n++] = xstrndup(s + start, i - start);
        v[n] = NULL;
    }
    *count = n;
    return v;
}

/* Adds (or widens) r's on-entry for trigger t. */
static void add_rule_on(struct config_rule *r, struct config_trigger *t, unsigned bits)
{
    size_t j = 0;
    while (j < r->non && r->on[j].resolved != t) {
        j++;
    }
    if (j == r->non) {
        r->on = xrealloc(r->on, (r->non + 1) * sizeof(*r->on));
        r->on[r->non++] =
            (struct config_rule_on){.trigger = xstrdup(t->name), .types = 0, .resolved = t};
    }
    r->on[j].types |= bits;
}

/* Trigger names for suggestions: the section names as written (a
 * `location = *` trigger once, by its NAME). Free the array only. */
static const char **trigger_names(const struct config *cfg, size_t *n)
{
    const char **names = xcalloc(cfg->ntriggers + 1, sizeof(*names));
    size_t k = 0;
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        const struct config_trigger *t = &cfg->triggers[i];
        if (t->base != NULL && i > 0 && cfg->triggers[i - 1].base != NULL &&
            strcmp(cfg->triggers[i - 1].base, t->base) == 0) {
            continue;
        }
        names[k++] = t->base != NULL ? t->base : t->name;
    }
    *n = k;
    return names;
}

/* The index of the first expansion of the `location = *` trigger NAME, or
 * -1 (expansions are contiguous). */
static long find_expansions(const struct config *cfg, const char *name, size_t *count)
{
    *count = 0;
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        if (cfg->triggers[i].base == NULL || strcmp(cfg->triggers[i].base, name) != 0) {
            continue;
        }
        size_t j = i;
        while (j < cfg->ntriggers && cfg->triggers[j].base != NULL &&
               strcmp(cfg->triggers[j].base, name) == 0) {
            j++;
        }
        *count = j - i;
        return (long)i;
    }
    return -1;
}

/*
 * on = TRIGGER:TYPE ... with TYPE created|updated|deleted|*. TRIGGER is a
 * [trigger] name; for a `location = *` trigger it stands for all its
 * expansions (NAME@LOCATION names one).
 */
static int parse_rule_on(struct ini_doc *doc, const struct ini_key *k, const char *value,
                         int line, void *field)
{
    const struct loader *ld = doc->user;
    struct config *cfg = ld->cfg;
    struct config_rule *r = RULE_OF(field, on);
    size_t n = 0;
    char **w = strv_split(value, &n);
    int rc = 0;
    if (n > INI_LIST_MAX) {
        ini_diag_add(&doc->diag, line, "'%s' lists %zu items; the limit is %d", k->name, n,
                     INI_LIST_MAX);
        strv_free(w);
        return -EINVAL;
    }
    /* The first trigger of each kind, for the location checks below. */
    const struct config_trigger *first_fixed = NULL;
    const char *first_star = NULL;
    for (size_t i = 0; i < n; i++) {
        char q[INI_QUOTE_MAX + 4];
        ini_quote(w[i], q);
        const char *colon = strchr(w[i], ':');
        if (colon == NULL) {
            ini_diag_add(&doc->diag, line,
                         "%s: '%s' needs an event type: TRIGGER:created, TRIGGER:updated, "
                         "TRIGGER:deleted or TRIGGER:*",
                         k->name, q);
            rc = -EINVAL;
            continue;
        }
        const char *type = colon + 1;
        unsigned bits = 0;
        if (strcmp(type, "*") == 0) {
            bits = EMIT_ALL;
        }
        for (size_t j = 0; bits == 0 && emit_names[j] != NULL; j++) {
            if (strcmp(emit_names[j], type) == 0) {
                bits = 1u << j;
            }
        }
        if (bits == 0) {
            ini_diag_add(&doc->diag, line,
                         "%s: unknown event type in '%s' (allowed: created updated deleted *)",
                         k->name, q);
            rc = -EINVAL;
        }
        char *name = xstrndup(w[i], (size_t)(colon - w[i]));
        struct config_trigger *t = config_find_trigger(cfg, name);
        size_t nexp = 1;
        if (t == NULL) {
            long first = find_expansions(cfg, name, &nexp);
            t = first >= 0 ? &cfg->triggers[first] : NULL;
        }
        if (t == NULL) {
            size_t nnames = 0;
            const char **names = trigger_names(cfg, &nnames);
            const char *hint = ini_suggest(name, names, nnames);
            char qn[INI_QUOTE_MAX + 4];
            ini_quote(name, qn);
            ini_diag_add(&doc->diag, line, "%s: no [trigger %s]%s%s%s", k->name, qn,
                         hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
            free(names);
            rc = -EINVAL;
        } else if (bits != 0 && bits != EMIT_ALL && (t->emit & bits) == 0) {
            /* Such a rule could never fire: say so instead of waiting. */
            char emitted[64];
            format_emit(t->emit, emitted, sizeof(emitted));
            ini_diag_add(&doc->diag, line,
                         "%s: [trigger %s] does not emit %s events (emit = %s)", k->name,
                         name, type, emitted);
            rc = -EINVAL;
        }
        if (t == NULL || bits == 0) {
            free(name);
            continue;
        }
        bool star = strcmp(name, t->name) != 0; /* NAME of a location = * trigger */
        free(name);
        if (star) {
            if (first_star == NULL) {
                first_star = t->base;
            }
            for (size_t j = 0; j < nexp; j++) {
                add_rule_on(r, t + j, bits);
            }
            continue;
        }
        add_rule_on(r, t, bits);
        /* The action runs with one location's token, so every trigger that
         * can fire the rule must poll that location. */
        if (t->location == NULL) {
            continue; /* already reported at the trigger */
        }
        if (first_fixed == NULL) {
            first_fixed = t;
        } else if (t->location != first_fixed->location) {
            ini_diag_add(&doc->diag, line,
                         "%s: [trigger %s] polls location '%s', but [trigger %s] polls '%s'; "
                         "a rule's triggers must share one location (its action runs with "
                         "that location's token)",
                         k->name, first_fixed->name, first_fixed->location->name, t->name,
                         t->location->name);
            rc = -EINVAL;
        }
    }
    strv_free(w);

    if (first_star != NULL && first_fixed != NULL) {
        ini_diag_add(&doc->diag, line,
                     "%s: [trigger %s] runs for every location (location = *), but [trigger "
                     "%s] polls only '%s'; a rule's triggers must all be location = * (the "
                     "action runs on each event's location) or all poll one location",
                     k->name, first_star, first_fixed->name, first_fixed->location->name);
        rc = -EINVAL;
    }
    r->location = first_star == NULL && first_fixed != NULL ? first_fixed->location : NULL;
    return rc;
}

/* do = ACTION | http | exec. The catalog lookup waits for config_resolve. */
static int parse_rule_do(struct ini_doc *doc, const struct ini_key *k, const char *value,
                         int line, void *field)
{
    struct config_rule *r = RULE_OF(field, action);
    if (!ini_valid_name(value)) {
        char q[INI_QUOTE_MAX + 4];
        ini_quote(value, q);
        ini_diag_add(&doc->diag, line,
                     "bad value '%s' for '%s' (a catalog action such as contacts.tasks.create, "
                     "or http, or exec)",
                     q, k->name);
        return -EINVAL;
    }
    free(r->action);
    r->action = xstrdup(value);
    return 0;
}

/*
 * url: a template, but the scheme and host are literal so that event data
 * can never choose where the event is sent; https://, or http:// to
 * loopback only; no credentials (user@host would also hide the real host).
 */
static int parse_rule_url(struct ini_doc *doc, const struct ini_key *k, const char *value,
                          int line, void *field)
{
    const char *rest;
    bool https = str_has_prefix(value, "https://");
    if (https) {
        rest = value + 8;
    } else if (str_has_prefix(value, "http://")) {
        rest = value + 7;
    } else {
        ini_diag_add(&doc->diag, line,
                     "%s must start with https:// (http:// is allowed only for 127.0.0.1, "
                     "localhost and [::1])",
                     k->name);
        return -EINVAL;
    }
    size_t authority = strcspn(rest, "/?#");
    for (size_t i = 0; i < authority; i++) {
        if (rest[i] == '{' || rest[i] == '}') {
            ini_diag_add(&doc->diag, line,
                         "%s: the scheme and host must be literal (templates may appear in "
                         "the path and query only)",
                         k->name);
            return -EINVAL;
        }
        if (rest[i] == '@' || ascii_is_blank(rest[i])) {
            ini_diag_add(&doc->diag, line,
                         "%s must not contain credentials (@) or spaces before the path",
                         k->name);
            return -EINVAL;
        }
    }
    size_t host = rest[0] == '[' ? strcspn(rest, "]") + 1 : strcspn(rest, ":/?#");
    if (host == 0 || host > authority) {
        ini_diag_add(&doc->diag, line, "%s has no host", k->name);
        return -EINVAL;
    }
    if (host < authority) {
        const char *port = rest + host;
        size_t plen = authority - host;
        bool ok = port[0] == ':' && plen >= 2 && plen <= 6;
        for (size_t i = 1; ok && i < plen; i++) {
            ok = isdigit((unsigned char)port[i]) != 0;
        }
        if (!ok) {
            ini_diag_add(&doc->diag, line, "%s has a bad port", k->name);
            return -EINVAL;
        }
    }
    if (!https && !is_local_host(rest, host)) {
        ini_diag_add(&doc->diag, line,
                     "%s must use https:// (http:// is allowed only for 127.0.0.1, localhost "
                     "and [::1])",
                     k->name);
        return -EINVAL;
    }
    struct template *t = parse_template(doc, line, k->name, value);
    if (t == NULL) {
        return -EINVAL;
    }
    struct template **dst = field;
    template_free(*dst);
    *dst = t;
    return 0;
}

/* command: an absolute path to an executable regular file, run without a
 * shell; checked now so that `check` catches a typo. */
static int parse_rule_command(struct ini_doc *doc, const struct ini_key *k,
                              const char *value, int line, void *field)
{
    if (value[0] != '/' || strstr(value, "{{") != NULL) {
        ini_diag_add(&doc->diag, line,
                     "%s must be the absolute path of a program (no shell, no PATH search, no "
                     "templates: put those in args), e.g. /usr/local/bin/notify",
                     k->name);
        return -EINVAL;
    }
    struct stat st;
    if (stat(value, &st) != 0) {
        ini_diag_add(&doc->diag, line, "%s '%s': %s", k->name, value, strerror(errno));
        return -EINVAL;
    }
    if (!S_ISREG(st.st_mode)) {
        ini_diag_add(&doc->diag, line, "%s '%s' is not a regular file", k->name, value);
        return -EINVAL;
    }
    if (access(value, X_OK) != 0) {
        ini_diag_add(&doc->diag, line, "%s '%s' is not executable: %s", k->name, value,
                     strerror(errno));
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrdup(value);
    return 0;
}

/* args: words, each a template that becomes exactly one argv element. */
static int parse_rule_args(struct ini_doc *doc, const struct ini_key *k, const char *value,
                           int line, void *field)
{
    struct config_rule *r = RULE_OF(field, args);
    size_t n = 0;
    char **w = split_words(value, &n);
    int rc = 0;
    if (n > ARGS_MAX) {
        ini_diag_add(&doc->diag, line, "'%s' has %zu words; the limit is %d", k->name, n,
                     ARGS_MAX);
        strv_free(w);
        return -EINVAL;
    }
    r->args = xcalloc(n > 0 ? n : 1, sizeof(*r->args));
    r->nargs = n;
    for (size_t i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof(what), "%s word %zu", k->name, i + 1);
        r->args[i] = parse_template(doc, line, what, w[i]);
        if (r->args[i] == NULL) {
            rc = -EINVAL;
        }
    }
    strv_free(w);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The user's file: key tables                                               */

#define SEC(ms) ((uint64_t)(ms) * 1000)
#define MIN(m) ((uint64_t)(m) * 60000)
#define DAY(d) ((uint64_t)(d) * 86400000)

static const struct ini_key engine_keys[] = {
    {.name = "state_dir", .type = INI_KEY_PATH, .offset = offsetof(struct config, state_dir),
     .required = true},
    {.name = "min_interval", .type = INI_KEY_DURATION,
     .offset = offsetof(struct config, min_interval_ms), .def = "1m", .min = SEC(1),
     .max = MIN(15)},
    {.name = "log_level", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config, log_level),
     .def = "info", .parse = parse_log_level},
    {.name = "catalog", .type = INI_KEY_PATH, .offset = offsetof(struct config, catalog_dir),
     .def = POLLEN_CATALOG_DIR},
    {.name = "retention_count", .type = INI_KEY_UINT64,
     .offset = offsetof(struct config, retention_count), .def = "1000000", .min = 0,
     .max = LLONG_MAX},
    {.name = "retention_age", .type = INI_KEY_DURATION,
     .offset = offsetof(struct config, retention_age_ms), .def = "30d", .min = 0,
     .max = DAY(36500)},
    {.name = "dlq_retention", .type = INI_KEY_DURATION,
     .offset = offsetof(struct config, dlq_retention_ms), .def = "30d", .min = 0,
     .max = DAY(36500)},
    /* At least the store's initial 1 GiB map (STORE_DEFAULT_MAP_SIZE, sparse on
     * disk): a smaller cap could not be honoured, and raising it silently
     * would make the setting a lie. */
    {.name = "max_db_size", .type = INI_KEY_SIZE,
     .offset = offsetof(struct config, max_db_size), .def = "8GiB", .min = 1ULL << 30,
     .max = 1ULL << 44},
    {.name = "shutdown_grace", .type = INI_KEY_DURATION,
     .offset = offsetof(struct config, shutdown_grace_ms), .def = "10s", .min = 0,
     .max = MIN(10)},
};

static const struct ini_key api_keys[] = {
    {.name = "base_url", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config, base_url),
     .def = "https://services.leadconnectorhq.com", .parse = parse_base_url},
    {.name = "timeout", .type = INI_KEY_DURATION, .offset = offsetof(struct config, timeout_ms),
     .def = "60s", .min = SEC(1), .max = MIN(10)},
    {.name = "connect_timeout", .type = INI_KEY_DURATION,
     .offset = offsetof(struct config, connect_timeout_ms), .def = "10s", .min = SEC(1),
     .max = MIN(5)},
    {.name = "max_body", .type = INI_KEY_SIZE, .offset = offsetof(struct config, max_body),
     .def = "16MiB", .min = 64ULL << 10, .max = 1ULL << 30},
    {.name = "ca_file", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config, ca_file),
     .parse = parse_ca_file},
    {.name = "proxy", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config, proxy),
     .parse = parse_proxy},
};
enum { API_TIMEOUT = 1, API_CONNECT_TIMEOUT = 2 };

static const char *const user_types[] = {"Location", "Company", NULL};

static const struct ini_key oauth_keys[] = {
    {.name = "client_id", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct config_oauth, client_id), .required = true,
     .parse = parse_client_id},
    {.name = "client_secret", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct config_oauth, client_secret), .required = true,
     .parse = parse_client_secret},
    {.name = "scopes", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config_oauth, scopes),
     .required = true, .parse = parse_scopes},
    {.name = "redirect_uri", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct config_oauth, redirect_uri),
     .def = "http://127.0.0.1:8976/callback", .parse = parse_oauth_url},
    {.name = "user_type", .type = INI_KEY_STRING,
     .offset = offsetof(struct config_oauth, user_type), .def = "Location",
     .choices = user_types},
    /* No table default: <state_dir>/oauth-NAME.json, set in finish_oauth. */
    {.name = "token_store", .type = INI_KEY_PATH,
     .offset = offsetof(struct config_oauth, token_store)},
    {.name = "authorize_url", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct config_oauth, authorize_url),
     .def = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation",
     .parse = parse_oauth_url},
    {.name = "refresh_margin", .type = INI_KEY_DURATION,
     .offset = offsetof(struct config_oauth, refresh_margin_ms), .def = "5m", .min = SEC(10),
     .max = MIN(12 * 60)},
};
enum { OAUTH_TOKEN_STORE = 5 };

static const struct ini_key location_keys[] = {
    {.name = "id", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config_location, id),
     .required = true, .parse = parse_location_id},
    /* Exactly one of token and oauth: checked by finish_location. */
    {.name = "token", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct config_location, token), .parse = parse_token},
    {.name = "oauth", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct config_location, oauth_name), .parse = parse_location_oauth},
    {.name = "rate_limit", .type = INI_KEY_UNSIGNED,
     .offset = offsetof(struct config_location, rate_limit), .def = "90", .min = 1, .max = 100},
    {.name = "rate_window", .type = INI_KEY_DURATION,
     .offset = offsetof(struct config_location, rate_window_ms), .def = "10s", .min = SEC(1),
     .max = MIN(60)},
    {.name = "daily_limit", .type = INI_KEY_UINT64,
     .offset = offsetof(struct config_location, daily_limit), .def = "200000", .min = 1,
     .max = 100000000},
    {.name = "sweep_share", .type = INI_KEY_DOUBLE,
     .offset = offsetof(struct config_location, sweep_share), .def = "0.5", .dmin = 0.05,
     .dmax = 1.0},
};
enum { LOCATION_ID = 0, LOCATION_TOKEN = 1, LOCATION_OAUTH = 2 };

static const struct ini_key trigger_keys[] = {
    {.name = "use", .type = INI_KEY_STRING, .offset = offsetof(struct config_trigger, use),
     .required = true},
    {.name = "location", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct config_trigger, location_name), .parse = parse_trigger_location},
    /* No table default: it is max(5m, min_interval), set in finish_trigger. */
    {.name = "every", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct config_trigger, every_ms), .min = SEC(1), .max = MIN(15),
     .parse = parse_every},
    {.name = "emit", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config_trigger, emit),
     .def = "created updated deleted", .parse = parse_emit},
    {.name = "first_poll", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct config_trigger, first_poll_emit), .def = "baseline",
     .parse = parse_first_poll},
    {.name = "fields", .type = INI_KEY_LIST, .offset = offsetof(struct config_trigger, fields)},
    {.name = "ignore", .type = INI_KEY_LIST, .offset = offsetof(struct config_trigger, ignore)},
    {.name = "for_each", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct config_trigger, for_each), .parse = parse_name},
    {.name = "page_size", .type = INI_KEY_UNSIGNED,
     .offset = offsetof(struct config_trigger, page_size), .min = 1, .max = 100000},
};
enum {
    TRIGGER_USE,
    TRIGGER_LOCATION,
    TRIGGER_EVERY,
    TRIGGER_EMIT,
    TRIGGER_FIRST_POLL,
    TRIGGER_FIELDS,
    TRIGGER_IGNORE,
    TRIGGER_FOR_EACH,
    TRIGGER_PAGE_SIZE,
    TRIGGER_NKEYS,
};
_Static_assert(ARRAY_SIZE(trigger_keys) == TRIGGER_NKEYS, "trigger key enum out of sync");

#define DEFAULT_EVERY MIN(5)

static const char *const http_methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};

/* The keys of every [rule], first in each form's table so that their
 * RULE_* indices hold in all three. */
#define RULE_COMMON_KEYS                                                                         \
    {.name = "on", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config_rule, on),        \
     .required = true, .parse = parse_rule_on},                                                  \
        {.name = "when", .type = INI_KEY_STRING, .offset = offsetof(struct config_rule, when)}, \
        {.name = "do", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config_rule, action), \
         .required = true, .parse = parse_rule_do},                                              \
        {.name = "confirm", .type = INI_KEY_BOOL,                                             \
         .offset = offsetof(struct config_rule, confirm), .def = "no"},                          \
        {.name = "max_attempts", .type = INI_KEY_UNSIGNED,                                    \
         .offset = offsetof(struct config_rule, max_attempts), .def = "8", .min = 1, .max = 100}, \
        {.name = "backoff", .type = INI_KEY_DURATION,                                         \
         .offset = offsetof(struct config_rule, backoff_ms), .def = "5s", .min = 100,            \
         .max = MIN(60)},                                                                        \
        {.name = "backoff_max", .type = INI_KEY_DURATION,                                     \
         .offset = offsetof(struct config_rule, backoff_max_ms), .def = "15m", .min = SEC(1),    \
         .max = DAY(1)}

#define RULE_TIMEOUT_KEY                                                                          \
    {.name = "timeout", .type = INI_KEY_DURATION,                                             \
     .offset = offsetof(struct config_rule, timeout_ms), .def = "30s", .min = SEC(1),            \
     .max = MIN(10)}

static const struct ini_key rule_catalog_keys[] = {RULE_COMMON_KEYS};
static const struct ini_key rule_http_keys[] = {
    RULE_COMMON_KEYS,
    {.name = "url", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config_rule, url),
     .required = true, .parse = parse_rule_url},
    {.name = "method", .type = INI_KEY_STRING, .offset = offsetof(struct config_rule, method),
     .def = "POST", .choices = http_methods},
    RULE_TIMEOUT_KEY,
};
static const struct ini_key rule_exec_keys[] = {
    RULE_COMMON_KEYS,
    {.name = "command", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct config_rule, command), .required = true,
     .parse = parse_rule_command},
    {.name = "args", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config_rule, args),
     .parse = parse_rule_args},
    RULE_TIMEOUT_KEY,
};
enum {
    RULE_ON,
    RULE_WHEN,
    RULE_DO,
    RULE_CONFIRM,
    RULE_MAX_ATTEMPTS,
    RULE_BACKOFF,
    RULE_BACKOFF_MAX,
    RULE_NCOMMON,
    RULE_URL = RULE_NCOMMON, /* http */
    RULE_METHOD,
    RULE_COMMAND = RULE_NCOMMON, /* exec */
    RULE_ARGS,
};
_Static_assert(ARRAY_SIZE(rule_catalog_keys) == RULE_NCOMMON, "rule key enum out of sync");
_Static_assert(ARRAY_SIZE(rule_http_keys) == RULE_NCOMMON + 3, "http key enum out of sync");
_Static_assert(ARRAY_SIZE(rule_exec_keys) == RULE_NCOMMON + 3, "exec key enum out of sync");

bool config_is_rule_key(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(rule_catalog_keys); i++) {
        if (strcmp(rule_catalog_keys[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

bool config_is_trigger_key(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(trigger_keys); i++) {
        if (strcmp(trigger_keys[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

const struct catalog_reserved config_reserved_keys = {
    .trigger_key = config_is_trigger_key,
    .rule_key = config_is_rule_key,
};

/* ------------------------------------------------------------------------ */
/* The user's file: section kinds                                            */

struct section_kind {
    const char *kind;
    bool named; /* [kind NAME] (many) rather than [kind] (one) */
    const struct ini_key *keys;
    size_t nkeys;
    /* Returns the object the keys are parsed into (valid until the next add). */
    void *(*add)(struct loader *ld, const struct ini_section *sec);
    /* Cross-key checks once the keys are parsed; lines as ini_apply. */
    void (*finish)(struct loader *ld, struct ini_doc *doc, const struct ini_section *sec,
                   void *obj, const int *lines);
    ini_extra_fn extra; /* keys outside the table, or NULL */
    /* If set, picks the key table for this section instead of keys/nkeys
     * (a [rule] by its `do` value). */
    const struct ini_key *(*keys_for)(const struct ini_section *sec, size_t *nkeys);
    /* If set, runs once after every section of this kind is applied
     * (checks and rewrites that need all of them: `location = *`). */
    void (*after)(struct loader *ld, struct ini_doc *doc);
};

static void *add_engine(struct loader *ld, const struct ini_section *sec)
{
    (void)sec;
    return ld->cfg;
}

static void finish_api(struct loader *ld, struct ini_doc *doc,
                       const struct ini_section *sec, void *obj, const int *lines)
{
    struct config *cfg = ld->cfg;
    (void)obj;
    if (cfg->timeout_ms != 0 && cfg->connect_timeout_ms > cfg->timeout_ms) {
        char a[32], b[32];
        ini_format_duration(cfg->connect_timeout_ms, a, sizeof(a));
        ini_format_duration(cfg->timeout_ms, b, sizeof(b));
        /* At the key the user wrote: connect_timeout's line, or timeout's
         * when connect_timeout is its default (both may be defaults only if
         * the table's defaults disagree, which the tests would catch). */
        int line = lines[API_CONNECT_TIMEOUT] != 0 ? lines[API_CONNECT_TIMEOUT]
                   : lines[API_TIMEOUT] != 0       ? lines[API_TIMEOUT]
                                                   : (sec != NULL ? sec->line : 0);
        ini_diag_add(&doc->diag, line, "connect_timeout = %s is longer than timeout = %s", a,
                     b);
    }
}

static void *add_oauth(struct loader *ld, const struct ini_section *sec)
{
    struct config *cfg = ld->cfg;
    cfg->oauths = xrealloc(cfg->oauths, (cfg->noauths + 1) * sizeof(*cfg->oauths));
    struct config_oauth *o = &cfg->oauths[cfg->noauths++];
    memset(o, 0, sizeof(*o));
    o->name = xstrdup(sec->name);
    o->line = sec->line;
    return o;
}

static void finish_oauth(struct loader *ld, struct ini_doc *doc,
                         const struct ini_section *sec, void *obj, const int *lines)
{
    struct config *cfg = ld->cfg;
    struct config_oauth *o = obj;
    (void)sec;
    if (o->token_store == NULL && cfg->state_dir != NULL) {
        o->token_store = xasprintf("%s%soauth-%s.json", cfg->state_dir,
                                   str_has_suffix(cfg->state_dir, "/") ? "" : "/", o->name);
    }
    /* Two credentials rotating refresh tokens in one file would destroy
     * each other's pair. */
    for (struct config_oauth *p = cfg->oauths; o->token_store != NULL && p < o; p++) {
        if (p->token_store != NULL && strcmp(p->token_store, o->token_store) == 0) {
            ini_diag_add(&doc->diag, lines[OAUTH_TOKEN_STORE] ? lines[OAUTH_TOKEN_STORE]
                                                                 : o->line,
                         "token_store '%s' is also the token store of [oauth %s] (line %d); "
                         "each credential needs its own",
                         o->token_store, p->name, p->line);
        }
    }
}

static void *add_location(struct loader *ld, const struct ini_section *sec)
{
    struct config *cfg = ld->cfg;
    cfg->locations = xrealloc(cfg->locations, (cfg->nlocations + 1) * sizeof(*cfg->locations));
    struct config_location *loc = &cfg->locations[cfg->nlocations++];
    memset(loc, 0, sizeof(*loc));
    loc->name = xstrdup(sec->name);
    loc->line = sec->line;
    return loc;
}

static void finish_location(struct loader *ld, struct ini_doc *doc,
                            const struct ini_section *sec, void *obj, const int *lines)
{
    struct config *cfg = ld->cfg;
    struct config_location *loc = obj;
    if (lines[LOCATION_TOKEN] != 0 && lines[LOCATION_OAUTH] != 0) {
        ini_diag_add(&doc->diag, lines[LOCATION_OAUTH],
                     "[location %s] sets both token (line %d) and oauth; use one: token for "
                     "a private integration token, oauth for an [oauth NAME] credential",
                     loc->name, lines[LOCATION_TOKEN]);
    } else if (lines[LOCATION_TOKEN] == 0 && lines[LOCATION_OAUTH] == 0) {
        ini_diag_add(&doc->diag, sec->line,
                     "[location %s] needs a credential: token = env:VAR or file:PATH (a "
                     "private integration token), or oauth = NAME (an [oauth NAME] section)",
                     loc->name);
    }
    /* A Location token is one sub-account's: a second location cannot use
     * it (an agency credential, user_type = Company, serves many). */
    for (struct config_location *o = cfg->locations; loc->oauth != NULL && o < loc; o++) {
        if (o->oauth == loc->oauth && loc->oauth->user_type != NULL &&
            strcmp(loc->oauth->user_type, "Location") == 0) {
            ini_diag_add(&doc->diag, lines[LOCATION_OAUTH],
                         "[oauth %s] is a Location credential (one sub-account) and is "
                         "already used by [location %s] (line %d); an agency credential "
                         "(user_type = Company) can serve several locations",
                         loc->oauth->name, o->name, o->line);
            break;
        }
    }
    for (struct config_location *o = cfg->locations; loc->id != NULL && o < loc; o++) {
        if (o->id != NULL && strcmp(o->id, loc->id) == 0) {
            ini_diag_add(&doc->diag, lines[LOCATION_ID],
                         "location id is already used by [location %s] (line %d); two "
                         "sections would split one rate limit",
                         o->name, o->line);
        }
    }
}

static void *add_trigger(struct loader *ld, const struct ini_section *sec)
{
    struct config *cfg = ld->cfg;
    cfg->triggers = xrealloc(cfg->triggers, (cfg->ntriggers + 1) * sizeof(*cfg->triggers));
    struct config_trigger *t = &cfg->triggers[cfg->ntriggers++];
    memset(t, 0, sizeof(*t));
    t->name = xstrdup(sec->name);
    t->line = sec->line;
    return t;
}

/* Every key that is not a trigger key is a parameter of the catalog
 * definition; config_resolve checks them. */
static bool trigger_param(struct ini_doc *doc, const struct ini_entry *e, void *obj)
{
    struct config_trigger *t = obj;
    (void)doc;
    t->params = xrealloc(t->params, (t->nparams + 1) * sizeof(*t->params));
    t->params[t->nparams].name = xstrdup(e->key);
    t->params[t->nparams].value = xstrdup(e->value);
    t->params[t->nparams].line = e->line;
    t->nparams++;
    return true;
}

static void finish_trigger(struct loader *ld, struct ini_doc *doc,
                           const struct ini_section *sec, void *obj, const int *lines)
{
    struct config *cfg = ld->cfg;
    struct config_trigger *t = obj;
    t->use_line = lines[TRIGGER_USE];
    t->for_each_line = lines[TRIGGER_FOR_EACH];
    t->page_size_line = lines[TRIGGER_PAGE_SIZE];

    if (lines[TRIGGER_EVERY] == 0) {
        t->every_ms = DEFAULT_EVERY > cfg->min_interval_ms ? DEFAULT_EVERY : cfg->min_interval_ms;
    }

    if (t->location_name != NULL && strcmp(t->location_name, "*") == 0) {
        /* Marked here, expanded by expand_triggers once every trigger is
         * read (a for_each may name a trigger further down). */
        t->base = xstrdup(t->name);
        if (cfg->nlocations == 0) {
            ini_diag_add(&doc->diag, lines[TRIGGER_LOCATION],
                         "location = * runs [trigger %s] for every [location], but there is "
                         "none: add a [location NAME] section",
                         t->name);
        }
    } else if (t->location_name != NULL) {
        t->location = config_find_location(cfg, t->location_name);
        if (t->location == NULL) {
            const char **names = xcalloc(cfg->nlocations + 1, sizeof(*names));
            for (size_t i = 0; i < cfg->nlocations; i++) {
                names[i] = cfg->locations[i].name;
            }
            const char *hint = ini_suggest(t->location_name, names, cfg->nlocations);
            ini_diag_add(&doc->diag, lines[TRIGGER_LOCATION],
                         "unknown location '%s' (no [location %s] section)%s%s%s",
                         t->location_name, t->location_name, hint ? "; did you mean '" : "",
                         hint ? hint : "", hint ? "'?" : "");
            free(names);
        }
    } else if (lines[TRIGGER_LOCATION] == 0) {
        if (cfg->nlocations == 1) {
            t->location = &cfg->locations[0];
            t->location_name = xstrdup(t->location->name);
        } else if (cfg->nlocations == 0) {
            ini_diag_add(&doc->diag, sec->line,
                         "[trigger %s] has no location to poll: add a [location NAME] section",
                         t->name);
        } else {
            ini_diag_add(&doc->diag, sec->line,
                         "[trigger %s] needs 'location = NAME': there are %zu [location] "
                         "sections",
                         t->name, cfg->nlocations);
        }
    }

    for (size_t i = 0; t->fields != NULL && t->ignore != NULL && t->ignore[i] != NULL; i++) {
        if (strv_contains(t->fields, t->ignore[i])) {
            char q[INI_QUOTE_MAX + 4];
            ini_quote(t->ignore[i], q);
            ini_diag_add(&doc->diag, lines[TRIGGER_IGNORE],
                         "field '%s' is in both fields and ignore", q);
        }
    }
}

static char **strv_dup(char *const *v)
{
    if (v == NULL) {
        return NULL;
    }
    size_t n = strv_len(v);
    char **copy = xcalloc(n + 1, sizeof(*copy));
    for (size_t i = 0; i < n; i++) {
        copy[i] = xstrdup(v[i]);
    }
    return copy;
}

/* Frees what a trigger owns (not the trigger itself). */
static void trigger_free(struct config_trigger *t)
{
    free(t->name);
    free(t->base);
    free(t->use);
    free(t->location_name);
    strv_free(t->fields);
    strv_free(t->ignore);
    free(t->for_each);
    for (size_t j = 0; j < t->nparams; j++) {
        free(t->params[j].name);
        free(t->params[j].value);
    }
    free(t->params);
}

/* The expansion of the `location = *` trigger t for location loc: a deep
 * copy named NAME@LOCATION. for_each is bound later. */
static void expand_one(struct config_trigger *dst, const struct config_trigger *t,
                       struct config_location *loc)
{
    *dst = *t;
    dst->name = xasprintf("%s@%s", t->name, loc->name);
    dst->base = xstrdup(t->name);
    dst->use = t->use != NULL ? xstrdup(t->use) : NULL;
    dst->location_name = xstrdup(loc->name);
    dst->location = loc;
    dst->fields = strv_dup(t->fields);
    dst->ignore = strv_dup(t->ignore);
    dst->for_each = t->for_each != NULL ? xstrdup(t->for_each) : NULL;
    dst->parent = NULL;
    dst->params = t->nparams > 0 ? xcalloc(t->nparams, sizeof(*t->params)) : NULL;
    for (size_t i = 0; i < t->nparams; i++) {
        dst->params[i].name = xstrdup(t->params[i].name);
        dst->params[i].value = xstrdup(t->params[i].value);
        dst->params[i].line = t->params[i].line;
    }
}

/*
 * Runs after every [trigger]: replaces each `location = *` trigger by one
 * trigger per [location] (in file order), then binds for_each names that
 * refer to such a trigger to the expansion of the same location. A rule
 * looks its triggers up afterwards, so it sees only the expansions.
 */
static void expand_triggers(struct loader *ld, struct ini_doc *doc)
{
    struct config *cfg = ld->cfg;
    size_t nstar = 0;
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        nstar += cfg->triggers[i].base != NULL;
    }
    if (nstar == 0) {
        return;
    }
    size_t total = cfg->ntriggers - nstar;
    if (cfg->nlocations > 0 && nstar > (CONFIG_TRIGGERS_MAX - total) / cfg->nlocations) {
        ini_diag_add(&doc->diag, 0,
                     "location = * would make %zu triggers x %zu locations; the limit is %d "
                     "triggers in all",
                     nstar, cfg->nlocations, CONFIG_TRIGGERS_MAX);
        return; /* the config is rejected; the marked triggers are freed as usual */
    }
    total += nstar * cfg->nlocations;
    /* The names of the `location = *` triggers, kept for binding for_each. */
    char **stars = xcalloc(nstar + 1, sizeof(*stars));
    size_t ns = 0;
    struct config_trigger *out = xcalloc(total > 0 ? total : 1, sizeof(*out));
    size_t k = 0;
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        struct config_trigger *t = &cfg->triggers[i];
        if (t->base == NULL) {
            out[k++] = *t; /* moved: out owns its strings now */
            continue;
        }
        for (size_t j = 0; j < cfg->nlocations; j++) {
            expand_one(&out[k++], t, &cfg->locations[j]);
        }
        stars[ns++] = xstrdup(t->name);
        trigger_free(t);
    }
    free(cfg->triggers);
    cfg->triggers = out;
    cfg->ntriggers = k;

    for (size_t i = 0; i < cfg->ntriggers; i++) {
        struct config_trigger *t = &cfg->triggers[i];
        if (t->for_each == NULL) {
            continue;
        }
        bool to_star = strv_contains(stars, t->for_each);
        if (to_star && t->location != NULL) {
            /* A sweep takes its parent's records from the same location. */
            char *bound = xasprintf("%s@%s", t->for_each, t->location->name);
            free(t->for_each);
            t->for_each = bound;
        } else if (!to_star && t->base != NULL && config_find_trigger(cfg, t->for_each) != NULL) {
            ini_diag_add_once(&doc->diag, t->for_each_line,
                              "for_each: [trigger %s] polls one location, but [trigger %s] "
                              "runs for every location (location = *); it can follow only "
                              "another location = * trigger",
                              t->for_each, t->base);
        }
    }
    strv_free(stars);
}

/* The `do` value of a section (NULL if absent), read before its keys are
 * applied because it decides which keys the section takes. */
static const char *section_do(const struct ini_section *sec)
{
    for (size_t i = 0; sec != NULL && i < sec->nentries; i++) {
        if (strcmp(sec->entries[i].key, "do") == 0) {
            return sec->entries[i].value;
        }
    }
    return NULL;
}

static enum config_rule_kind rule_kind(const struct ini_section *sec)
{
    const char *d = section_do(sec);
    if (d != NULL && strcmp(d, "http") == 0) {
        return CONFIG_RULE_HTTP;
    }
    if (d != NULL && strcmp(d, "exec") == 0) {
        return CONFIG_RULE_EXEC;
    }
    return CONFIG_RULE_CATALOG;
}

static const struct ini_key *rule_keys_for(const struct ini_section *sec,
                                           size_t *nkeys)
{
    switch (rule_kind(sec)) {
    case CONFIG_RULE_HTTP:
        *nkeys = ARRAY_SIZE(rule_http_keys);
        return rule_http_keys;
    case CONFIG_RULE_EXEC:
        *nkeys = ARRAY_SIZE(rule_exec_keys);
        return rule_exec_keys;
    case CONFIG_RULE_CATALOG:
        break;
    }
    *nkeys = ARRAY_SIZE(rule_catalog_keys);
    return rule_catalog_keys;
}

static void *add_rule(struct loader *ld, const struct ini_section *sec)
{
    struct config *cfg = ld->cfg;
    cfg->rules = xrealloc(cfg->rules, (cfg->nrules + 1) * sizeof(*cfg->rules));
    struct config_rule *r = &cfg->rules[cfg->nrules++];
    memset(r, 0, sizeof(*r));
    r->name = xstrdup(sec->name);
    r->line = sec->line;
    r->kind = rule_kind(sec);
    return r;
}

static void add_rule_param(struct ini_doc *doc, const struct ini_entry *e,
                           const char *name, struct config_rule_param **arr, size_t *n)
{
    *arr = xrealloc(*arr, (*n + 1) * sizeof(**arr));
    (*arr)[*n] = (struct config_rule_param){
        .name = xstrdup(name),
        .value = xstrdup(e->value),
        .line = e->line,
        .tmpl = parse_template(doc, e->line, e->key, e->value),
    };
    (*n)++;
}

/*
 * header.NAME = env:VAR | file:PATH: a secret such as a webhook token, read
 * now with the token's rules (the file private, clear FILE:LINE errors) and
 * kept out of every stored or printed request (see config_rule_param).
 */
static void add_secret_header(struct ini_doc *doc, const struct ini_entry *e,
                              const char *name, struct config_rule *r)
{
    struct ini_key k = {.name = e->key};
    char *secret = NULL;
    if (read_reference(doc, &k, e->value, e->line, true, &secret) != 0) {
        return;
    }
    log_add_secret(secret);
    r->headers = xrealloc(r->headers, (r->nheaders + 1) * sizeof(*r->headers));
    r->headers[r->nheaders++] = (struct config_rule_param){
        .name = xstrdup(name),
        .value = xstrdup(e->value),
        .line = e->line,
        .is_secret = true,
        .secret = secret,
    };
}

const char *config_header_secret(const struct config *cfg, const char *ref)
{
    for (size_t i = 0; cfg != NULL && ref != NULL && i < cfg->nrules; i++) {
        const struct config_rule *r = &cfg->rules[i];
        for (size_t j = 0; j < r->nheaders; j++) {
            if (r->headers[j].is_secret && r->headers[j].secret != NULL &&
                strcmp(r->headers[j].value, ref) == 0) {
                return r->headers[j].secret;
            }
        }
    }
    return NULL;
}

/* Headers pollen sets itself, or that would break the request's framing. */
static const char *const reserved_headers[] = {
    "host", "content-length", "transfer-encoding", "connection", "content-type",
    "idempotency-key", "expect", "te", "upgrade", "trailer", NULL,
};

static void add_rule_header(struct ini_doc *doc, const struct ini_entry *e,
                            struct config_rule *r)
{
    const char *name = e->key + strlen("header.");
    size_t len = strlen(name);
    bool ok = len > 0 && len <= INI_NAME_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        ok = isalnum((unsigned char)name[i]) || name[i] == '-';
    }
    if (!ok) {
        ini_diag_add(&doc->diag, e->line,
                     "'%s': a header name is 1-%d characters of A-Z a-z 0-9 -", e->key,
                     INI_NAME_MAX);
        return;
    }
    for (size_t i = 0; reserved_headers[i] != NULL; i++) {
        if (strcasecmp(reserved_headers[i], name) == 0) {
            ini_diag_add(&doc->diag, e->line,
                         "'%s': pollen sets this header itself (JSON body, Idempotency-Key, "
                         "framing)",
                         e->key);
            return;
        }
    }
    for (size_t i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0) {
            ini_diag_add(&doc->diag, e->line,
                         "header '%s' is already set on line %d (header names ignore case)",
                         name, r->headers[i].line);
            return;
        }
    }
    if (r->nheaders == HEADERS_MAX) {
        ini_diag_add(&doc->diag, e->line, "more than %d headers", HEADERS_MAX);
        return;
    }
    if (str_has_prefix(e->value, "env:") || str_has_prefix(e->value, "file:")) {
        add_secret_header(doc, e, name, r);
        return;
    }
    add_rule_param(doc, e, name, &r->headers, &r->nheaders);
}

/*
 * Keys outside the rule's table. For a catalog action every one is a path
 * parameter or body field, checked against the action by config_resolve;
 * http takes header.NAME and body.NAME; exec takes nothing else.
 */
static bool rule_extra(struct ini_doc *doc, const struct ini_entry *e, void *obj)
{
    struct config_rule *r = obj;
    if (r->kind == CONFIG_RULE_EXEC) {
        return false;
    }
    bool header = r->kind == CONFIG_RULE_HTTP && str_has_prefix(e->key, "header.");
    bool body = r->kind == CONFIG_RULE_HTTP && str_has_prefix(e->key, "body.");
    if (r->kind == CONFIG_RULE_HTTP && !header && !body) {
        return false;
    }
    if (e->value[0] == '\0') {
        ini_diag_add(&doc->diag, e->line, "empty value for '%s'", e->key);
        return true;
    }
    if (header) {
        add_rule_header(doc, e, r);
        return true;
    }
    const char *name = body ? e->key + strlen("body.") : e->key;
    if (body) {
        size_t len = strlen(name);
        bool ok = len > 0 && len <= INI_NAME_MAX;
        for (size_t i = 0; ok && i < len; i++) {
            ok = isalnum((unsigned char)name[i]) || name[i] == '_' || name[i] == '-';
        }
        if (!ok) {
            ini_diag_add(&doc->diag, e->line,
                         "'%s': the member name after 'body.' must be letters, digits, _ "
                         "and -",
                         e->key);
            return true;
        }
    }
    add_rule_param(doc, e, name, &r->params, &r->nparams);
    return true;
}

static unsigned rule_types(const struct config_rule *r)
{
    unsigned types = 0;
    for (size_t i = 0; i < r->non; i++) {
        types |= r->on[i].types;
    }
    return types;
}

static void warn_changes(const struct config *cfg, const struct config_rule *r,
                         const struct template *t, const char *what, int line)
{
    if (t != NULL && template_uses_root(t, "changes")) {
        log_warn("config",
                 "%s:%d: '%s' reads changes, but [rule %s] fires only on created/deleted "
                 "events, which carry none (it renders as missing)",
                 cfg->path, line, what, r->name);
    }
}

static void finish_rule(struct loader *ld, struct ini_doc *doc,
                        const struct ini_section *sec, void *obj, const int *lines)
{
    struct config_rule *r = obj;
    (void)sec;
    r->when_line = lines[RULE_WHEN];
    r->do_line = lines[RULE_DO];
    bool updates = r->non == 0 || (rule_types(r) & EVENT_TYPE_UPDATED) != 0;

    if (r->when != NULL) {
        char err[PARSE_ERR_MAX];
        if (condition_parse(r->when, &r->cond, err, sizeof(err)) != 0) {
            ini_diag_add(&doc->diag, r->when_line, "when: %s", err);
        } else if (!updates && condition_uses_changes(r->cond)) {
            /* It could never be true: only updated events carry changes. */
            ini_diag_add(&doc->diag, r->when_line,
                         "when uses changed() or changes, but [rule %s] fires only on "
                         "created/deleted events, which carry no changes",
                         r->name);
        }
    }
    if (lines[RULE_BACKOFF] != 0 && r->backoff_ms > r->backoff_max_ms) {
        char a[32], b[32];
        ini_format_duration(r->backoff_ms, a, sizeof(a));
        ini_format_duration(r->backoff_max_ms, b, sizeof(b));
        ini_diag_add(&doc->diag, lines[RULE_BACKOFF],
                     "backoff = %s is longer than backoff_max = %s", a, b);
    }
    if (r->kind == CONFIG_RULE_HTTP && r->method != NULL && strcmp(r->method, "GET") == 0 &&
        r->nparams > 0) {
        ini_diag_add(&doc->diag, r->params[0].line,
                     "body.%s: method = GET sends no body (use POST, PUT or PATCH)",
                     r->params[0].name);
    }
    if (!updates) {
        for (size_t i = 0; i < r->nparams; i++) {
            warn_changes(ld->cfg, r, r->params[i].tmpl, r->params[i].name, r->params[i].line);
        }
        for (size_t i = 0; i < r->nheaders; i++) {
            warn_changes(ld->cfg, r, r->headers[i].tmpl, r->headers[i].name, r->headers[i].line);
        }
        /* lines has entries only for the keys of this rule's own table. */
        if (r->kind == CONFIG_RULE_HTTP) {
            warn_changes(ld->cfg, r, r->url, "url", lines[RULE_URL]);
        }
        for (size_t i = 0; r->kind == CONFIG_RULE_EXEC && i < r->nargs; i++) {
            warn_changes(ld->cfg, r, r->args[i], "args", lines[RULE_ARGS]);
        }
    }
}

/* Processed in this order, so later kinds can rely on earlier ones
 * (triggers on min_interval and on the complete list of locations, rules
 * on the complete list of triggers). */
static const struct section_kind section_kinds[] = {
    {"engine", false, engine_keys, ARRAY_SIZE(engine_keys), add_engine, NULL, NULL, NULL, NULL},
    {"api", false, api_keys, ARRAY_SIZE(api_keys), add_engine, finish_api, NULL, NULL, NULL},
    /* Before [location], whose `oauth` names one; after [engine], whose
     * state_dir holds the default token store. */
    {"oauth", true, oauth_keys, ARRAY_SIZE(oauth_keys), add_oauth, finish_oauth, NULL, NULL,
     NULL},
    {"location", true, location_keys, ARRAY_SIZE(location_keys), add_location, finish_location,
     NULL, NULL, NULL},
    /* expand_triggers replaces `location = *` triggers by their expansions. */
    {"trigger", true, trigger_keys, ARRAY_SIZE(trigger_keys), add_trigger, finish_trigger,
     trigger_param, NULL, expand_triggers},
    /* Last: `on` looks up triggers, which must all exist (expanded) by then. */
    {"rule", true, rule_catalog_keys, ARRAY_SIZE(rule_catalog_keys), add_rule, finish_rule,
     rule_extra, rule_keys_for, NULL},
};

static const struct section_kind *find_kind(const char *kind)
{
    for (size_t i = 0; i < ARRAY_SIZE(section_kinds); i++) {
        if (strcmp(section_kinds[i].kind, kind) == 0) {
            return &section_kinds[i];
        }
    }
    return NULL;
}

static void apply_kind(struct loader *ld, struct ini_doc *doc, const struct section_kind *k)
{
    bool found = false;
    int lines[64];
    for (size_t i = 0; i < doc->nsections; i++) {
        const struct ini_section *sec = &doc->sections[i];
        if (sec->skip || strcmp(sec->kind, k->kind) != 0) {
            continue;
        }
        if (k->named && sec->name == NULL) {
            ini_diag_add(&doc->diag, sec->line, "[%s] needs a name: [%s NAME]", k->kind,
                         k->kind);
            continue;
        }
        if (!k->named && sec->name != NULL) {
            ini_diag_add(&doc->diag, sec->line, "[%s] takes no name", k->kind);
            continue;
        }
        found = true;
        char *what = sec->name ? xasprintf("[%s %s]", k->kind, sec->name)
                               : xasprintf("[%s]", k->kind);
        const struct ini_key *keys = k->keys;
        size_t nkeys = k->nkeys;
        if (k->keys_for != NULL) {
            keys = k->keys_for(sec, &nkeys);
        }
        void *obj = k->add(ld, sec);
        ini_apply(doc, sec, what, keys, nkeys, obj, k->extra, lines);
        if (k->finish != NULL) {
            k->finish(ld, doc, sec, obj, lines);
        }
        free(what);
    }
    if (!found && !k->named) {
        /* A missing singleton section still gets its defaults (and its
         * missing required keys reported). */
        char *what = xasprintf("[%s]", k->kind);
        void *obj = k->add(ld, NULL);
        ini_apply(doc, NULL, what, k->keys, k->nkeys, obj, k->extra, lines);
        if (k->finish != NULL) {
            k->finish(ld, doc, NULL, obj, lines);
        }
        free(what);
    }
    if (k->after != NULL) {
        k->after(ld, doc);
    }
}

int config_load(const char *path, unsigned flags, struct config **out,
                struct ini_errors *errs)
{
    *out = NULL;
    struct config *cfg = xcalloc(1, sizeof(*cfg));
    struct loader ld = {.cfg = cfg, .flags = flags};
    struct ini_doc doc;
    int rc = ini_load(path, &doc);
    cfg->path = xstrdup(path);
    if (rc < 0) {
        goto fail;
    }
    doc.user = &ld;
    cfg->dir = xstrdup(doc.dir);

    for (size_t i = 0; i < doc.nsections; i++) {
        const struct ini_section *sec = &doc.sections[i];
        if (!sec->skip && find_kind(sec->kind) == NULL) {
            char q[INI_QUOTE_MAX + 4];
            ini_quote(sec->kind, q);
            ini_diag_add(&doc.diag, sec->line,
                         "unknown section kind [%s] (expected [engine], [api], "
                         "[location NAME], [oauth NAME], [trigger NAME] or [rule NAME])",
                         q);
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(section_kinds); i++) {
        apply_kind(&ld, &doc, &section_kinds[i]);
    }
    if (doc.diag.count != 0) {
        rc = -EINVAL;
        goto fail;
    }
    ini_finish(&doc, errs);
    *out = cfg;
    return 0;

fail:
    ini_finish(&doc, errs);
    config_free(cfg);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Resolution against the catalog                                           */

/* How messages name a trigger: the section's NAME, so that the expansions
 * of a `location = *` trigger share one message (ini_diag_add_once). */
static const char *tlabel(const struct config_trigger *t)
{
    return t->base != NULL ? t->base : t->name;
}

static int check_param_value(struct ini_diag *d, const struct config_trigger *t,
                             const struct catalog_param *p, const struct config_param *cp)
{
    char q[INI_QUOTE_MAX + 4];
    ini_quote(cp->value, q);
    switch (p->type) {
    case CATALOG_STRING:
    case CATALOG_STRING_LIST: /* the catalog allows lists only in action fields */
        return 0;
    case CATALOG_INTEGER: {
        long long v;
        if (util_parse_int(cp->value, LLONG_MIN, LLONG_MAX, &v) == 0) {
            return 0;
        }
        break;
    }
    case CATALOG_NUMBER: {
        char *end = NULL;
        errno = 0;
        double v = strtod(cp->value, &end);
        if (errno == 0 && end != cp->value && *end == '\0' && isfinite(v)) {
            return 0;
        }
        break;
    }
    case CATALOG_BOOLEAN: {
        bool b;
        if (util_parse_bool(cp->value, &b) == 0) {
            return 0;
        }
        break;
    }
    case CATALOG_JSON: {
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithOpts(cp->value, &end, 1);
        if (j != NULL) {
            cJSON_Delete(j);
            return 0;
        }
        size_t at = end != NULL && end >= cp->value ? (size_t)(end - cp->value) + 1 : 1;
        ini_diag_add_once(d, cp->line, "'%s' is not valid JSON (error near byte %zu)", cp->name,
                          at);
        return -EINVAL;
    }
    }
    ini_diag_add_once(d, cp->line, "bad value '%s' for '%s' (%s expects %s %s)", q, cp->name,
                      t->use, p->type == CATALOG_INTEGER ? "an" : "a",
                      catalog_type_name(p->type));
    return -EINVAL;
}

static const struct config_param *find_param(const struct config_trigger *t, const char *name)
{
    for (size_t i = 0; i < t->nparams; i++) {
        if (strcmp(t->params[i].name, name) == 0) {
            return &t->params[i];
        }
    }
    return NULL;
}

static void resolve_params(struct ini_diag *d, struct config_trigger *t)
{
    const struct catalog_trigger *def = t->def;
    bool fed = t->for_each != NULL && def->fan_out != NULL;
    for (size_t i = 0; i < t->nparams; i++) {
        const struct config_param *cp = &t->params[i];
        const struct catalog_param *p = catalog_trigger_param(def, cp->name);
        if (p == NULL) {
            size_t n = TRIGGER_NKEYS + def->nparams;
            const char **names = xcalloc(n + 1, sizeof(*names));
            for (size_t j = 0; j < TRIGGER_NKEYS; j++) {
                names[j] = trigger_keys[j].name;
            }
            for (size_t j = 0; j < def->nparams; j++) {
                names[TRIGGER_NKEYS + j] = def->params[j].name;
            }
            const char *hint = ini_suggest(cp->name, names, n);
            ini_diag_add_once(d, cp->line, "unknown key '%s' in [trigger %s]%s%s%s", cp->name,
                              tlabel(t), hint ? "; did you mean '" : "", hint ? hint : "",
                              hint ? "'?" : "");
            free(names);
            continue;
        }
        if (fed && strcmp(cp->name, def->fan_out) == 0) {
            ini_diag_add_once(d, cp->line, "'%s' is fed by for_each = %s; remove this line",
                              cp->name, t->for_each);
            continue;
        }
        check_param_value(d, t, p, cp);
    }
    for (size_t i = 0; i < def->nparams; i++) {
        const struct catalog_param *p = &def->params[i];
        if (!p->required || find_param(t, p->name) != NULL) {
            continue;
        }
        if (fed && strcmp(p->name, def->fan_out) == 0) {
            continue;
        }
        ini_diag_add_once(d, t->line,
                          "[trigger %s] is missing parameter '%s' (required by %s)%s", tlabel(t),
                          p->name, def->name,
                          def->fan_out != NULL && strcmp(p->name, def->fan_out) == 0
                          ? "; or set for_each to a trigger that yields its values"
                          : "");
    }
    if (def->require_one[0] != NULL) {
        bool any = false;
        for (size_t i = 0; def->require_one[i] != NULL; i++) {
            any = any || find_param(t, def->require_one[i]) != NULL;
        }
        if (!any) {
            char *all = ini_join_choices((const char *const *)def->require_one);
            ini_diag_add_once(d, t->line, "[trigger %s] needs at least one of: %s (for %s)",
                              tlabel(t), all, def->name);
            free(all);
        }
    }
    if (t->page_size != 0) {
        if (def->pagination == CATALOG_PAGE_NONE) {
            ini_diag_add_once(d, t->page_size_line, "page_size: %s is not paginated", def->name);
        } else if (t->page_size > def->max_page_size) {
            ini_diag_add_once(d, t->page_size_line,
                              "page_size = %u is out of range (%s allows 1..%u)", t->page_size,
                              def->name, def->max_page_size);
        }
    }
}

static void resolve_for_each(struct ini_diag *d, struct config *cfg, struct config_trigger *t)
{
    if (t->for_each == NULL) {
        return;
    }
    struct config_trigger *parent = config_find_trigger(cfg, t->for_each);
    if (parent == NULL) {
        size_t nnames = 0;
        const char **names = trigger_names(cfg, &nnames);
        const char *hint = ini_suggest(t->for_each, names, nnames);
        ini_diag_add_once(d, t->for_each_line, "for_each: no [trigger %s]%s%s%s", t->for_each,
                          hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
        free(names);
        return;
    }
    t->parent = parent;
    if (t->def != NULL && t->def->fan_out == NULL) {
        ini_diag_add_once(d, t->for_each_line,
                          "for_each: %s takes no for_each (it has no fan-out parameter)",
                          t->def->name);
        return;
    }
    if (parent->location != t->location) {
        ini_diag_add_once(d, t->for_each_line,
                          "for_each: [trigger %s] polls location '%s', not '%s'", tlabel(parent),
                          parent->location_name ? parent->location_name : "?",
                          t->location_name ? t->location_name : "?");
    }
    if (t->def != NULL && parent->def != NULL &&
        strcmp(parent->def->resource, t->def->parent_resource) != 0) {
        ini_diag_add_once(
            d, t->for_each_line,
            "for_each: [trigger %s] (%s) yields '%s' records; %s needs '%s' records",
            tlabel(parent), parent->def->name, parent->def->resource, t->def->name,
            t->def->parent_resource);
    }
}

static void check_cycles(struct ini_diag *d, struct config *cfg)
{
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        struct config_trigger *t = &cfg->triggers[i];
        struct config_trigger *p = t->parent;
        size_t steps = 0;
        while (p != NULL && p != t && steps < cfg->ntriggers) {
            p = p->parent;
            steps++;
        }
        if (p != t) {
            continue;
        }
        /* Name the cycle from this trigger: a -> b -> a (cut after 8 hops). */
        struct buf b;
        buf_init(&b, 4096);
        buf_append_str(&b, tlabel(t));
        p = t->parent;
        for (size_t hop = 0; hop < 8; hop++) {
            buf_append_str(&b, " -> ");
            buf_append_str(&b, tlabel(p));
            if (p == t) {
                break;
            }
            p = p->parent;
        }
        if (p != t) {
            buf_append_str(&b, " -> ...");
        }
        ini_diag_add_once(d, t->for_each_line, "for_each cycle: %s", b.data);
        buf_finish(&b);
    }
}

/* A literal path segment: what HighLevel ids look like (reliability.md
 * §5.6), so a literal can never add a segment or a query. */
static bool valid_path_literal(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 64) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-')) {
            return false;
        }
    }
    return true;
}

static void check_rule_field(struct ini_diag *d, const struct config_rule *r,
                             const struct catalog_field *f, const struct config_rule_param *p)
{
    if (p->tmpl == NULL) {
        return;
    }
    const char *action = r->def->name;
    if (!template_is_literal(p->tmpl)) {
        /* One {{expr}} keeps its JSON type; text around it makes a string,
         * which only string fields (and lists, split on spaces) accept. */
        if (f->type != CATALOG_STRING && f->type != CATALOG_STRING_LIST &&
            !is_single_expr(p->value)) {
            ini_diag_add(d, p->line,
                         "'%s' is %s %s field of %s: give a literal or exactly one "
                         "{{expression}} (text around it would make a string)",
                         p->name, f->type == CATALOG_INTEGER ? "an" : "a",
                         catalog_type_name(f->type), action);
        }
        return;
    }
    char q[INI_QUOTE_MAX + 4];
    ini_quote(p->value, q);
    switch (f->type) {
    case CATALOG_STRING:
    case CATALOG_STRING_LIST:
        return;
    case CATALOG_INTEGER: {
        long long v;
        if (util_parse_int(p->value, LLONG_MIN, LLONG_MAX, &v) != 0) {
            ini_diag_add(d, p->line, "bad value '%s' for '%s' (%s expects an integer)", q,
                         p->name, action);
        }
        return;
    }
    case CATALOG_NUMBER: {
        char *end = NULL;
        errno = 0;
        double v = strtod(p->value, &end);
        if (errno != 0 || end == p->value || *end != '\0' || !isfinite(v)) {
            ini_diag_add(d, p->line, "bad value '%s' for '%s' (%s expects a number)", q,
                         p->name, action);
        }
        return;
    }
    case CATALOG_BOOLEAN:
        /* Exactly the JSON words: the value is sent as a JSON boolean, and
         * "yes" in an API field is more likely a mistake than a wish. */
        if (strcmp(p->value, "true") != 0 && strcmp(p->value, "false") != 0) {
            ini_diag_add(d, p->line, "bad value '%s' for '%s' (%s expects true or false)", q,
                         p->name, action);
        }
        return;
    case CATALOG_JSON: {
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithOpts(p->value, &end, 1);
        if (j != NULL) {
            cJSON_Delete(j);
            return;
        }
        size_t at = end != NULL && end >= p->value ? (size_t)(end - p->value) + 1 : 1;
        ini_diag_add(d, p->line, "'%s' is not valid JSON (error near byte %zu; %s expects JSON)",
                     p->name, at, action);
        return;
    }
    }
}

static const struct config_rule_param *find_rule_param(const struct config_rule *r,
                                                       const char *name)
{
    for (size_t i = 0; i < r->nparams; i++) {
        if (strcmp(r->params[i].name, name) == 0) {
            return &r->params[i];
        }
    }
    return NULL;
}

static void unknown_rule_key(struct ini_diag *d, const struct config_rule *r,
                             const struct config_rule_param *p)
{
    const struct catalog_action *def = r->def;
    size_t n = def->nparams + def->nfields + RULE_NCOMMON;
    const char **names = xcalloc(n + 1, sizeof(*names));
    size_t k = 0;
    for (size_t i = 0; i < def->nparams; i++) {
        names[k++] = def->params[i].name;
    }
    for (size_t i = 0; i < def->nfields; i++) {
        names[k++] = def->fields[i].name;
    }
    for (size_t i = 0; i < RULE_NCOMMON; i++) {
        names[k++] = rule_catalog_keys[i].name;
    }
    const char *hint = ini_suggest(p->name, names, k);
    ini_diag_add(d, p->line, "unknown field '%s' for %s%s%s%s", p->name, def->name,
                 hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
    free(names);
}

static void resolve_rule(struct ini_diag *d, struct config_rule *r, const struct catalog *cat,
                         const char **action_names, size_t nnames)
{
    if (r->kind != CONFIG_RULE_CATALOG || r->action == NULL) {
        return;
    }
    r->def = catalog_find_action(cat, r->action);
    if (r->def == NULL) {
        char q[INI_QUOTE_MAX + 4];
        ini_quote(r->action, q);
        const char *hint = ini_suggest(r->action, action_names, nnames);
        ini_diag_add(d, r->do_line ? r->do_line : r->line,
                     "do: unknown action '%s'%s%s%s (see pollen catalog actions; the generic "
                     "actions are http and exec)",
                     q, hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
        return;
    }
    const struct catalog_action *def = r->def;
    for (size_t i = 0; i < r->nparams; i++) {
        const struct config_rule_param *p = &r->params[i];
        const struct catalog_param *cp = catalog_action_param(def, p->name);
        const struct catalog_field *f = catalog_action_field(def, p->name);
        const struct catalog_binding *b = catalog_action_binding(def, p->name);
        if (cp != NULL) {
            if (cp->where == CATALOG_PATH && p->tmpl != NULL && template_is_literal(p->tmpl) &&
                !valid_path_literal(p->value)) {
                char q[INI_QUOTE_MAX + 4];
                ini_quote(p->value, q);
                ini_diag_add(d, p->line,
                             "bad value '%s' for '%s' (a path parameter: 1-64 letters, digits, "
                             "_ or -)",
                             q, p->name);
            }
        } else if (f != NULL) {
            check_rule_field(d, r, f, p);
        } else if (b != NULL) {
            ini_diag_add(d, p->line, "'%s' is set by %s itself (%s); remove this line",
                         p->name, def->name,
                         b->is_location ? "the location's id" : "a fixed value");
        } else {
            unknown_rule_key(d, r, p);
        }
    }
    for (size_t i = 0; i < def->nparams; i++) {
        if (def->params[i].required && find_rule_param(r, def->params[i].name) == NULL) {
            ini_diag_add(d, r->line, "[rule %s] is missing %s parameter '%s' (required by %s)",
                         r->name, catalog_where_name(def->params[i].where),
                         def->params[i].name, def->name);
        }
    }
    for (size_t i = 0; i < def->nfields; i++) {
        if (def->fields[i].required && find_rule_param(r, def->fields[i].name) == NULL) {
            ini_diag_add(d, r->line, "[rule %s] is missing field '%s' (required by %s)",
                         r->name, def->fields[i].name, def->name);
        }
    }
    if (def->destructive && !r->confirm) {
        ini_diag_add(d, r->do_line ? r->do_line : r->line,
                     "rule '%s' runs destructive action %s: add confirm = yes", r->name,
                     def->name);
    }
}

/* ------------------------------------------------------------------------ */
/* Scopes                                                                    */

/* Largest token store file read (a token pair and a few ids). */
#define TOKEN_STORE_MAX (64 * 1024)

/* Wipes every string member of a parsed token store before it is freed
 * (the access and refresh tokens are among them). */
static void wipe_json_strings(cJSON *j)
{
    for (cJSON *c = j != NULL ? j->child : NULL; c != NULL; c = c->next) {
        if (cJSON_IsString(c) && c->valuestring != NULL) {
            explicit_bzero(c->valuestring, strlen(c->valuestring));
        }
    }
}

/*
 * The scopes granted to credential o: the `scope` member of its token store
 * file. NULL when there is no store yet or it cannot be read (then the
 * configured scopes count). A store the engine would refuse (a symbolic
 * link, another owner, group/other permission bits, too big) is reported at
 * the [oauth] line; one that does not parse is only warned about, since
 * the engine reports it with more context.
 */
static char **read_granted(struct ini_diag *d, const struct config_oauth *o)
{
    if (o->token_store == NULL) {
        return NULL;
    }
    const char *path = o->token_store;
    char *data = NULL;
    size_t len = 0;
    struct secret_failure why;
    if (secret_read_file(path, TOKEN_STORE_MAX, SECRET_PRIVATE, &data, &len, &why) != 0) {
        bool missing = why.step == SECRET_OPEN && why.err != ELOOP;
        if (missing && why.err != ENOENT && why.err != EACCES) {
            log_warn("config", "token_store '%s': %s; checking scopes against [oauth %s] scopes",
                     path, strerror(why.err), o->name);
        } else if (why.step == SECRET_READ) {
            log_warn("config", "token_store '%s': %s", path, strerror(why.err));
        } else if (!missing) {
            char *msg = secret_failure_message(&why, "token_store", "token_store", path,
                                               TOKEN_STORE_MAX);
            ini_diag_add(d, o->line, "%s", msg);
            free(msg);
        }
        return NULL;
    }
    char **granted = NULL;
    cJSON *j = cJSON_ParseWithLength(data, len);
    const cJSON *scope = cJSON_GetObjectItemCaseSensitive(j, "scope");
    if (cJSON_IsString(scope) && scope->valuestring != NULL) {
        size_t n = 0;
        granted = strv_split(scope->valuestring, &n);
    } else {
        log_warn("config",
                 "token_store '%s' is not a JSON object with a \"scope\" string; checking "
                 "scopes against [oauth %s] scopes",
                 path, o->name);
    }
    wipe_json_strings(j);
    cJSON_Delete(j);
    secret_wipe_buf(data, len);
    return granted;
}

/* Reports each scope of needed (space-separated) that granted lacks. */
static void check_scope(struct ini_diag *d, int line, const char *kind, const char *name,
                        const char *needed, const struct config_oauth *o, char *const *granted,
                        bool from_store)
{
    size_t n = 0;
    char **want = strv_split(needed != NULL ? needed : "", &n);
    for (size_t i = 0; i < n; i++) {
        if (strv_contains(granted, want[i])) {
            continue;
        }
        struct buf b;
        buf_init(&b, TOKEN_STORE_MAX);
        for (size_t j = 0; granted[j] != NULL; j++) {
            buf_append_str(&b, j > 0 ? " " : "");
            buf_append_str(&b, granted[j]);
        }
        const char *list = b.data != NULL && b.data[0] != '\0' ? b.data : "none";
        if (from_store) {
            ini_diag_add_once(d, line,
                              "%s '%s' needs scope %s, which credential '%s' was not granted "
                              "(granted: %s); add %s to scopes in [oauth %s] and run "
                              "pollen auth login again",
                              kind, name, want[i], o->name, list, want[i], o->name);
        } else {
            ini_diag_add_once(d, line,
                              "%s '%s' needs scope %s, which credential '%s' was not granted "
                              "(granted: %s, as configured; not logged in yet); add %s to "
                              "scopes in [oauth %s]",
                              kind, name, want[i], o->name, list, want[i], o->name);
        }
        buf_finish(&b);
    }
    strv_free(want);
}

/*
 * Every trigger's and catalog rule's scope must be granted to the OAuth
 * credential of its location (static tokens: unknown, not checked). A rule
 * on `location = *` triggers is checked against every location it can run
 * on.
 */
static void check_scopes(struct ini_diag *d, struct config *cfg)
{
    if (cfg->noauths == 0) {
        return;
    }
    char ***granted = xcalloc(cfg->noauths, sizeof(*granted));
    bool *from_store = xcalloc(cfg->noauths, sizeof(*from_store));
    for (size_t i = 0; i < cfg->noauths; i++) {
        granted[i] = read_granted(d, &cfg->oauths[i]);
        from_store[i] = granted[i] != NULL;
        if (granted[i] == NULL) {
            granted[i] = strv_dup(cfg->oauths[i].scopes);
        }
        if (granted[i] == NULL) {
            granted[i] = xcalloc(1, sizeof(**granted));
        }
    }
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        const struct config_trigger *t = &cfg->triggers[i];
        if (t->def == NULL || t->location == NULL || t->location->oauth == NULL) {
            continue;
        }
        size_t k = (size_t)(t->location->oauth - cfg->oauths);
        check_scope(d, t->line, "trigger", tlabel(t), t->def->scope, t->location->oauth,
                    granted[k], from_store[k]);
    }
    for (size_t i = 0; i < cfg->nrules; i++) {
        const struct config_rule *r = &cfg->rules[i];
        if (r->def == NULL) {
            continue;
        }
        for (size_t j = 0; j < r->non; j++) {
            const struct config_location *loc =
                r->location != NULL ? r->location : r->on[j].resolved->location;
            if (loc == NULL || loc->oauth == NULL) {
                continue;
            }
            size_t k = (size_t)(loc->oauth - cfg->oauths);
            check_scope(d, r->line, "rule", r->name, r->def->scope, loc->oauth, granted[k],
                        from_store[k]);
        }
    }
    for (size_t i = 0; i < cfg->noauths; i++) {
        strv_free(granted[i]);
    }
    free(granted);
    free(from_store);
}

int config_resolve(struct config *cfg, const struct catalog *cat, struct ini_errors *errs)
{
    struct ini_diag d;
    ini_diag_init(&d, cfg->path);
    size_t ncat = catalog_trigger_count(cat);
    const char **names = xcalloc(ncat + 1, sizeof(*names));
    for (size_t i = 0; i < ncat; i++) {
        names[i] = catalog_trigger_at(cat, i)->name;
    }
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        struct config_trigger *t = &cfg->triggers[i];
        t->def = catalog_find_trigger(cat, t->use);
        t->parent = NULL;
        if (t->def == NULL) {
            char q[INI_QUOTE_MAX + 4];
            ini_quote(t->use, q);
            const char *hint = ini_suggest(t->use, names, ncat);
            ini_diag_add_once(&d, t->use_line ? t->use_line : t->line,
                              "use: unknown catalog trigger '%s'%s%s%s (see pollen catalog)", q,
                              hint ? "; did you mean '" : "", hint ? hint : "",
                              hint ? "'?" : "");
            continue;
        }
        resolve_params(&d, t);
    }
    free(names);
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        resolve_for_each(&d, cfg, &cfg->triggers[i]);
    }
    check_cycles(&d, cfg);
    size_t nact = catalog_action_count(cat);
    names = xcalloc(nact + 1, sizeof(*names));
    for (size_t i = 0; i < nact; i++) {
        names[i] = catalog_action_at(cat, i)->name;
    }
    for (size_t i = 0; i < cfg->nrules; i++) {
        resolve_rule(&d, &cfg->rules[i], cat, names, nact);
    }
    free(names);
    check_scopes(&d, cfg);
    if (d.count == 0) {
        ini_diag_flush(&d, errs);
        return 0;
    }
    ini_diag_flush(&d, errs);
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        cfg->triggers[i].def = NULL;
        cfg->triggers[i].parent = NULL;
    }
    for (size_t i = 0; i < cfg->nrules; i++) {
        cfg->rules[i].def = NULL;
    }
    return -EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Lookup and free                                                           */

struct config_location *config_find_location(const struct config *cfg, const char *name)
{
    for (size_t i = 0; name != NULL && i < cfg->nlocations; i++) {
        if (strcmp(cfg->locations[i].name, name) == 0) {
            return &cfg->locations[i];
        }
    }
    return NULL;
}

struct config_oauth *config_find_oauth(const struct config *cfg, const char *name)
{
    for (size_t i = 0; name != NULL && i < cfg->noauths; i++) {
        if (strcmp(cfg->oauths[i].name, name) == 0) {
            return &cfg->oauths[i];
        }
    }
    return NULL;
}

struct config_trigger *config_find_trigger(const struct config *cfg, const char *name)
{
    for (size_t i = 0; name != NULL && i < cfg->ntriggers; i++) {
        if (strcmp(cfg->triggers[i].name, name) == 0) {
            return &cfg->triggers[i];
        }
    }
    return NULL;
}

struct config_rule *config_find_rule(const struct config *cfg, const char *name)
{
    for (size_t i = 0; name != NULL && i < cfg->nrules; i++) {
        if (strcmp(cfg->rules[i].name, name) == 0) {
            return &cfg->rules[i];
        }
    }
    return NULL;
}

bool config_rule_matches(const struct config_rule *r, const struct config_trigger *t,
                         unsigned type)
{
    for (size_t i = 0; r != NULL && t != NULL && i < r->non; i++) {
        if (r->on[i].resolved == t && (r->on[i].types & type) != 0) {
            return true;
        }
    }
    return false;
}

const struct config_location *config_rule_location(const struct config *cfg,
                                                   const struct config_rule *r,
                                                   const char *event_trigger)
{
    if (r == NULL) {
        return NULL;
    }
    if (r->location != NULL) {
        return r->location;
    }
    const struct config_trigger *t = config_find_trigger(cfg, event_trigger);
    for (size_t i = 0; t != NULL && i < r->non; i++) {
        if (r->on[i].resolved == t) {
            return t->location;
        }
    }
    return NULL;
}

static void rule_params_free(struct config_rule_param *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].name);
        free(p[i].value);
        template_free(p[i].tmpl);
        secret_wipe_free(p[i].secret);
    }
    free(p);
}

static void rule_free(struct config_rule *r)
{
    free(r->name);
    for (size_t i = 0; i < r->non; i++) {
        free(r->on[i].trigger);
    }
    free(r->on);
    free(r->when);
    condition_free(r->cond);
    free(r->action);
    rule_params_free(r->params, r->nparams);
    rule_params_free(r->headers, r->nheaders);
    template_free(r->url);
    free(r->method);
    free(r->command);
    for (size_t i = 0; i < r->nargs; i++) {
        template_free(r->args[i]);
    }
    free(r->args);
}

void config_free(struct config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (size_t i = 0; i < cfg->nlocations; i++) {
        struct config_location *loc = &cfg->locations[i];
        free(loc->name);
        free(loc->id);
        secret_wipe_free(loc->token);
        free(loc->oauth_name);
    }
    free(cfg->locations);
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        trigger_free(&cfg->triggers[i]);
    }
    free(cfg->triggers);
    for (size_t i = 0; i < cfg->noauths; i++) {
        struct config_oauth *o = &cfg->oauths[i];
        free(o->name);
        free(o->client_id);
        secret_wipe_free(o->client_secret);
        strv_free(o->scopes);
        free(o->redirect_uri);
        free(o->user_type);
        free(o->token_store);
        free(o->authorize_url);
    }
    free(cfg->oauths);
    for (size_t i = 0; i < cfg->nrules; i++) {
        rule_free(&cfg->rules[i]);
    }
    free(cfg->rules);
    free(cfg->path);
    free(cfg->dir);
    free(cfg->state_dir);
    free(cfg->catalog_dir);
    free(cfg->base_url);
    free(cfg->ca_file);
    free(cfg->proxy);
    free(cfg);
}

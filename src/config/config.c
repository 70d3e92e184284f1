/*
 * config: see config.h. This file: the [engine], [api], [oauth],
 * [location] and [trigger] sections (custom parsers, key tables, section
 * kinds, `location = *` expansion) and the lookups. [rule] is in rule.c,
 * the loader in load.c, resolution against the catalog in resolve.c; the
 * INI rules and the key-table engine in inifile.c.
 */
#include "config_int.h"

#include "httpd.h"
#include "paths.h"
#include "secret.h"
#include "url.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* ------------------------------------------------------------------------ */
/* The user's file: custom parsers                                           */

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

static int parse_log_format(struct ini_doc *doc, const struct ini_key *k, const char *value,
                            int line, void *field)
{
    if (log_parse_format(value, (enum log_format *)field) != 0) {
        char q[INI_QUOTE_MAX + 4];
        ini_quote(value, q);
        ini_diag_add(&doc->diag, line, "bad value '%s' for '%s' (allowed: text json)", q, k->name);
        return -EINVAL;
    }
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

/*
 * An absolute URL for key k: https://HOST[:PORT][/PATH], or http:// to
 * 127.0.0.1, localhost or [::1] only; no spaces, credentials, query or
 * fragment (pollen appends its own query). port_path: http:// also needs
 * an explicit port and a /path (a redirect URI). The policy is net/url's,
 * the one the HTTP client applies. Returns 0, or -EINVAL after reporting at
 * line. The value is never quoted: it is checked before it can be known
 * not to be a pasted secret.
 */
static int check_web_url(struct ini_doc *doc, const struct ini_key *k, const char *value,
                         int line, bool port_path)
{
    struct url u;
    unsigned flags = URL_HTTP_LOOPBACK | URL_BARE | (port_path ? URL_PORT_PATH : 0);
    enum url_problem problem = url_parse(value, flags, &u);
    url_free(&u);
    if (problem != URL_OK) {
        ini_diag_add(&doc->diag, line, "%s %s", k->name, url_problem_text(problem));
        return -EINVAL;
    }
    return 0;
}

int config__parse_base_url(struct ini_doc *doc, const struct ini_key *k, const char *value,
                           int line, void *field)
{
    if (check_web_url(doc, k, value, line, false) != 0) {
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
    bool port_path = strcmp(k->name, "redirect_uri") == 0;
    if (check_web_url(doc, k, value, line, port_path) != 0) {
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrdup(value);
    return 0;
}

/* [engine] listen: HOST:PORT on a loopback address (the metrics and the
 * status page carry no authentication of their own). */
static int parse_listen(struct ini_doc *doc, const struct ini_key *k, const char *value,
                        int line, void *field)
{
    char host[64];
    unsigned port = 0;
    if (httpd_parse_listen(value, host, sizeof(host), &port) != 0) {
        char q[INI_QUOTE_MAX + 4];
        ini_quote(value, q);
        ini_diag_add(&doc->diag, line,
                     "bad value '%s' for '%s': expected HOST:PORT on a loopback address "
                     "(127.0.0.1, localhost or [::1]; the listener has no authentication, so "
                     "put a proxy in front to expose it)",
                     q, k->name);
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
        ok = ascii_is_graph(*p);
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
        ok = ascii_is_alnum(value[i]);
    }
    if (!ok) {
        /* Not quoted: a token pasted here by mistake must not be printed. */
        ini_diag_add(&doc->diag, line, "%s must be the HighLevel %s: 1-64 letters and digits",
                     k->name, strcmp(k->name, "id") == 0 ? "locationId" : "companyId");
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
int config__read_reference(struct ini_doc *doc, const struct ini_key *k, const char *value,
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
int config__parse_token(struct ini_doc *doc, const struct ini_key *k, const char *value,
                        int line, void *field)
{
    char *secret = NULL;
    int rc = config__read_reference(doc, k, value, line, true, &secret);
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
    int rc = config__read_reference(doc, k, value, line, true, &secret);
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
    int rc = config__read_reference(doc, k, value, line, false, &id);
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
        if (!(ascii_is_alnum(*p) || *p == '.' || *p == '_' || *p == '-' || *p == '/')) {
            return false;
        }
    }
    return true;
}

/* scopes = a.readonly a.write ...: at least one; duplicates
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
                         "%s: bad scope '%s' (1-%d characters of A-Z a-z 0-9 . _ - /, as the "
                         "scopes `pollen catalog NAME` shows)",
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

const char *const config__emit_names[] = {"created", "updated", "deleted", "touched", NULL};

static int parse_emit(struct ini_doc *doc, const struct ini_key *k, const char *value,
                      int line, void *field)
{
    size_t n = 0;
    char **v = strv_split(value, &n);
    unsigned bits = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (config__emit_names[j] != NULL && strcmp(config__emit_names[j], v[i]) != 0) {
            j++;
        }
        if (config__emit_names[j] == NULL) {
            char q[INI_QUOTE_MAX + 4];
            ini_quote(v[i], q);
            ini_diag_add(&doc->diag, line,
                         "%s: unknown event type '%s' (allowed: created updated deleted "
                         "touched)",
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

static int parse_full_round(struct ini_doc *doc, const struct ini_key *k,
                            const char *value, int line, void *field)
{
    if (strcmp(value, "batch") == 0 || strcmp(value, "each") == 0) {
        *(bool *)field = strcmp(value, "each") == 0;
        return 0;
    }
    char q[INI_QUOTE_MAX + 4];
    ini_quote(value, q);
    ini_diag_add(&doc->diag, line, "bad value '%s' for '%s' (allowed: batch each)", q, k->name);
    return -EINVAL;
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
    {.name = "log_format", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config, log_format),
     .def = "text", .parse = parse_log_format},
    /* No .def: the default is decided at run time (finish_engine). */
    {.name = "catalog", .type = INI_KEY_PATH, .offset = offsetof(struct config, catalog_dir)},
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
    {.name = "listen", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config, listen),
     .parse = parse_listen},
};

static const struct ini_key api_keys[] = {
    {.name = "base_url", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config, base_url),
     .def = "https://services.leadconnectorhq.com", .parse = config__parse_base_url},
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
     .offset = offsetof(struct config_location, token), .parse = config__parse_token},
    {.name = "oauth", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct config_location, oauth_name), .parse = parse_location_oauth},
    /* The companyId for {company} bindings (M3) when the credential has none. */
    {.name = "company_id", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct config_location, company_id), .parse = parse_location_id},
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
    {.name = "sweep_daily_share", .type = INI_KEY_DOUBLE,
     .offset = offsetof(struct config_location, sweep_daily_share), .def = "0.25", .dmin = 0.01,
     .dmax = 1.0},
};
enum { LOCATION_ID = 0, LOCATION_TOKEN = 1, LOCATION_OAUTH = 2, LOCATION_COMPANY_ID = 3 };

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
    /* An agency definition's [company NAME] (M15), instead of a location. */
    {.name = "company", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct config_trigger, company_name), .parse = parse_name},
    /* How often a full enumeration runs: an incremental definition's reconcile
     * (0s: every cycle is one), a for_each child's full sweep of its parents.
     * No table default: config_resolve applies the kind's default and refuses
     * what does not fit the kind. */
    {.name = "reconcile", .type = INI_KEY_DURATION,
     .offset = offsetof(struct config_trigger, reconcile_ms), .min = 0, .max = DAY(30)},
    {.name = "watermark_lag", .type = INI_KEY_DURATION,
     .offset = offsetof(struct config_trigger, watermark_lag_ms), .def = "2m", .min = 0,
     .max = MIN(24 * 60)},
    /* A for_each child's full rounds: through the definition's batch listing
     * (one location-wide listing; the default where there is one) or one
     * parent record at a time. */
    {.name = "full_round", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct config_trigger, full_round_each), .parse = parse_full_round},
    /* A user's own API ([api NAME]) instead of a location. */
    {.name = "api", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config_trigger, api_name),
     .parse = parse_name},
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
    TRIGGER_COMPANY,
    TRIGGER_RECONCILE,
    TRIGGER_WATERMARK_LAG,
    TRIGGER_FULL_ROUND,
    TRIGGER_API,
    TRIGGER_NKEYS,
};
_Static_assert(ARRAY_SIZE(trigger_keys) == TRIGGER_NKEYS, "trigger key enum out of sync");

#define DEFAULT_EVERY MIN(5)

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

static void *add_engine(struct loader *ld, const struct ini_section *sec)
{
    (void)sec;
    return ld->cfg;
}

/* The catalog's default depends on where the binary runs from (paths.h):
 * the installed catalog, or the source tree of an uninstalled build. */
static void finish_engine(struct loader *ld, struct ini_doc *doc,
                          const struct ini_section *sec, void *obj, const int *lines)
{
    (void)doc;
    (void)sec;
    (void)obj;
    (void)lines;
    if (ld->cfg->catalog_dir == NULL) {
        ld->cfg->catalog_dir = xstrdup(paths_catalog_dir());
    }
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

/* [company NAME] (M15): an agency, polled by agency triggers with its own
 * credential and rate budget; kept in cfg->locations after every location. */
static void *add_company(struct loader *ld, const struct ini_section *sec)
{
    struct config_location *c = add_location(ld, sec);
    c->is_company = true;
    return c;
}

static void finish_company(struct loader *ld, struct ini_doc *doc,
                           const struct ini_section *sec, void *obj, const int *lines)
{
    struct config *cfg = ld->cfg;
    struct config_location *c = obj;
    if ((lines[LOCATION_TOKEN] != 0) == (lines[LOCATION_OAUTH] != 0)) {
        ini_diag_add(&doc->diag, sec->line,
                     "[company %s] needs exactly one credential: token = env:VAR or "
                     "file:PATH (an agency token), or oauth = NAME (user_type = Company)",
                     c->name);
    }
    if (c->oauth != NULL && c->oauth->user_type != NULL &&
        strcmp(c->oauth->user_type, "Company") != 0) {
        ini_diag_add(&doc->diag, lines[LOCATION_OAUTH],
                     "[company %s] needs an agency credential: [oauth %s] has user_type = %s",
                     c->name, c->oauth->name, c->oauth->user_type);
    }
    if (lines[LOCATION_COMPANY_ID] != 0) {
        ini_diag_add(&doc->diag, lines[LOCATION_COMPANY_ID],
                     "[company %s]: the companyId is its id; company_id is a [location] key",
                     c->name);
    }
    free(c->company_id);
    c->company_id = c->id != NULL ? xstrdup(c->id) : NULL;
    for (struct config_location *o = cfg->locations; o < c; o++) {
        if (!o->is_company && strcmp(o->name, c->name) == 0) {
            /* Rules find a runtime location by name: one namespace. */
            ini_diag_add(&doc->diag, sec->line,
                         "[company %s] has the name of [location %s] (line %d); rename one",
                         c->name, o->name, o->line);
        }
    }
    for (struct config_location *o = cfg->locations; c->id != NULL && o < c; o++) {
        if (o->is_company && o->id != NULL && strcmp(o->id, c->id) == 0) {
            ini_diag_add(&doc->diag, lines[LOCATION_ID],
                         "company id is already used by [company %s] (line %d); two "
                         "sections would split one rate limit",
                         o->name, o->line);
        }
    }
}

/* The [location] sections (not the companies), counted. */
static size_t count_locations(const struct config *cfg)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->nlocations; i++) {
        n += !cfg->locations[i].is_company;
    }
    return n;
}

static struct config_location *find_company(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nlocations; i++) {
        if (cfg->locations[i].is_company && strcmp(cfg->locations[i].name, name) == 0) {
            return &cfg->locations[i];
        }
    }
    return NULL;
}

/* company = NAME: the trigger polls the agency, not a location. */
static void bind_company(const struct config *cfg, struct ini_doc *doc, struct config_trigger *t,
                         const int *lines)
{
    if (lines[TRIGGER_LOCATION] != 0) {
        ini_diag_add(&doc->diag, lines[TRIGGER_COMPANY],
                     "[trigger %s] sets both location (line %d) and company; an agency "
                     "trigger has no location",
                     t->name, lines[TRIGGER_LOCATION]);
        return;
    }
    t->location = find_company(cfg, t->company_name);
    if (t->location == NULL) {
        ini_diag_add(&doc->diag, lines[TRIGGER_COMPANY],
                     "unknown company '%s' (no [company %s] section)", t->company_name,
                     t->company_name);
        return;
    }
    t->location_name = xstrdup(t->company_name);
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
    t->reconcile_line = lines[TRIGGER_RECONCILE];
    t->watermark_lag_line = lines[TRIGGER_WATERMARK_LAG];
    t->full_round_line = lines[TRIGGER_FULL_ROUND];
    t->api_line = lines[TRIGGER_API];

    if (lines[TRIGGER_EVERY] == 0) {
        t->every_ms = DEFAULT_EVERY > cfg->min_interval_ms ? DEFAULT_EVERY : cfg->min_interval_ms;
    }

    size_t nloc = count_locations(cfg);
    if (t->api_name != NULL) {
        config__bind_api(cfg, doc, t, lines[TRIGGER_LOCATION], lines[TRIGGER_COMPANY]);
    } else if (t->company_name != NULL) {
        bind_company(cfg, doc, t, lines);
    } else if (t->location_name != NULL && strcmp(t->location_name, "*") == 0) {
        /* Marked here, expanded by expand_triggers once every trigger is
         * read (a for_each may name a trigger further down). */
        t->base = xstrdup(t->name);
        if (nloc == 0) {
            ini_diag_add(&doc->diag, lines[TRIGGER_LOCATION],
                         "location = * runs [trigger %s] for every [location], but there is "
                         "none: add a [location NAME] section",
                         t->name);
        }
    } else if (t->location_name != NULL) {
        t->location = config_find_location(cfg, t->location_name);
        if (t->location == NULL) {
            const char **names = xcalloc(cfg->nlocations + 1, sizeof(*names));
            size_t n = 0;
            for (size_t i = 0; i < cfg->nlocations; i++) {
                if (!cfg->locations[i].is_company) {
                    names[n++] = cfg->locations[i].name;
                }
            }
            const char *hint = ini_suggest(t->location_name, names, n);
            ini_diag_add(&doc->diag, lines[TRIGGER_LOCATION],
                         "unknown location '%s' (no [location %s] section)%s%s%s",
                         t->location_name, t->location_name, hint ? "; did you mean '" : "",
                         hint ? hint : "", hint ? "'?" : "");
            free(names);
        }
    } else if (lines[TRIGGER_LOCATION] == 0) {
        if (nloc == 1) {
            t->location = &cfg->locations[0]; /* locations come before companies */
            t->location_name = xstrdup(t->location->name);
        } else if (nloc == 0) {
            ini_diag_add(&doc->diag, sec->line,
                         "[trigger %s] has no location to poll: add a [location NAME] section",
                         t->name);
        } else {
            ini_diag_add(&doc->diag, sec->line,
                         "[trigger %s] needs 'location = NAME': there are %zu [location] "
                         "sections",
                         t->name, nloc);
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

/* Frees what a trigger owns (not the trigger itself). */
void config__trigger_free(struct config_trigger *t)
{
    free(t->name);
    free(t->base);
    free(t->use);
    free(t->location_name);
    free(t->company_name);
    free(t->api_name);
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
            if (!cfg->locations[j].is_company) {
                expand_one(&out[k++], t, &cfg->locations[j]);
            }
        }
        stars[ns++] = xstrdup(t->name);
        config__trigger_free(t);
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

/* The kinds of this file, in the registry of load.c. */
const struct section_kind config__engine_kind = {
    "engine", false, engine_keys, ARRAY_SIZE(engine_keys), add_engine, finish_engine, NULL, NULL,
    NULL,
};
const struct section_kind config__api_kind = {
    "api", false, api_keys, ARRAY_SIZE(api_keys), add_engine, finish_api, NULL, NULL, NULL,
};
const struct section_kind config__oauth_kind = {
    "oauth", true, oauth_keys, ARRAY_SIZE(oauth_keys), add_oauth, finish_oauth, NULL, NULL, NULL,
};
const struct section_kind config__location_kind = {
    "location", true, location_keys, ARRAY_SIZE(location_keys), add_location, finish_location,
    NULL, NULL, NULL,
};
const struct section_kind config__company_kind = {
    "company", true, location_keys, ARRAY_SIZE(location_keys), add_company, finish_company,
    NULL, NULL, NULL,
};
const struct section_kind config__trigger_kind = {
    "trigger", true, trigger_keys, ARRAY_SIZE(trigger_keys), add_trigger, finish_trigger,
    trigger_param, NULL, expand_triggers,
};

/* ------------------------------------------------------------------------ */
/* Lookup                                                                    */

struct config_location *config_find_location(const struct config *cfg, const char *name)
{
    for (size_t i = 0; name != NULL && i < cfg->nlocations; i++) {
        if (!cfg->locations[i].is_company && strcmp(cfg->locations[i].name, name) == 0) {
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

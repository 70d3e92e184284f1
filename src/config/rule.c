/*
 * rule: the [rule] sections of the user's file (see config.h): the custom
 * parsers of on, do, url, command and args, the three key tables (catalog
 * action, http, exec) and the rule section kind (params, headers, the
 * checks across keys), plus the per-event lookups. One file for now; the
 * keys of each action form are to move into their sink's descriptor.
 */
#include "config_int.h"

#include "condition.h"
#include "secret.h"
#include "template.h"
#include "url.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Most exec arguments and http headers per rule. */
#define ARGS_MAX 64
#define HEADERS_MAX 32
/* Parser messages (template, condition) are cut to this size. */
#define PARSE_ERR_MAX 256

#define SEC(ms) ((uint64_t)(ms) * 1000)
#define MIN(m) ((uint64_t)(m) * 60000)
#define DAY(d) ((uint64_t)(d) * 86400000)

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
    for (size_t j = 0; config__emit_names[j] != NULL; j++) {
        if ((bits & (1u << j)) != 0 && o < size) {
            int n = snprintf(out + o, size - o, "%s%s", o > 0 ? " " : "", config__emit_names[j]);
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
bool config__is_single_expr(const char *text)
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
const char **config__trigger_names(const struct config *cfg, size_t *n)
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
        for (size_t j = 0; bits == 0 && config__emit_names[j] != NULL; j++) {
            if (strcmp(config__emit_names[j], type) == 0) {
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
            const char **names = config__trigger_names(cfg, &nnames);
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
                     "bad value '%s' for '%s' (a catalog action: see `pollen catalog actions`; "
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
            ok = ascii_is_digit(port[i]);
        }
        if (!ok) {
            ini_diag_add(&doc->diag, line, "%s has a bad port", k->name);
            return -EINVAL;
        }
    }
    char *host_name = xstrndup(rest, host);
    bool loopback = url_is_loopback_host(host_name);
    free(host_name);
    if (!https && !loopback) {
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
/* The user's file: [rule] key tables                                        */

static const char *const http_methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};

/* The keys of every [rule], first in each form's table so that their
 * RULE_* indices hold in all three. */
#define RULE_COMMON_KEYS                                                                          \
    {.name = "on", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config_rule, on),            \
     .required = true, .parse = parse_rule_on},                                                   \
        {.name = "when", .type = INI_KEY_STRING, .offset = offsetof(struct config_rule, when)},   \
        {.name = "do", .type = INI_KEY_CUSTOM, .offset = offsetof(struct config_rule, action),    \
         .required = true, .parse = parse_rule_do},                                               \
        {.name = "confirm", .type = INI_KEY_BOOL,                                                 \
         .offset = offsetof(struct config_rule, confirm), .def = "no"},                           \
        {.name = "max_attempts", .type = INI_KEY_UNSIGNED,                                        \
         .offset = offsetof(struct config_rule, max_attempts), .def = "8", .min = 1, .max = 100}, \
        {.name = "backoff", .type = INI_KEY_DURATION,                                             \
         .offset = offsetof(struct config_rule, backoff_ms), .def = "5s", .min = 100,             \
         .max = MIN(60)},                                                                         \
        {.name = "backoff_max", .type = INI_KEY_DURATION,                                         \
         .offset = offsetof(struct config_rule, backoff_max_ms), .def = "15m", .min = SEC(1),     \
         .max = DAY(1)}

#define RULE_TIMEOUT_KEY                                                                          \
    {.name = "timeout", .type = INI_KEY_DURATION,                                                 \
     .offset = offsetof(struct config_rule, timeout_ms), .def = "30s", .min = SEC(1),             \
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

/* ------------------------------------------------------------------------ */
/* The user's file: [rule] sections                                          */

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
    if (config__read_reference(doc, &k, e->value, e->line, true, &secret) != 0) {
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
        ok = ascii_is_alnum(name[i]) || name[i] == '-';
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
            ok = ascii_is_alnum(name[i]) || name[i] == '_' || name[i] == '-';
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

/* The [rule] kind, in the registry of load.c: the key table is picked per
 * section by its `do` value. */
const struct section_kind config__rule_kind = {
    "rule", true, rule_catalog_keys, ARRAY_SIZE(rule_catalog_keys), add_rule, finish_rule,
    rule_extra, rule_keys_for, NULL,
};

/* ------------------------------------------------------------------------ */
/* Lookup and free                                                           */

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

void config__rule_free(struct config_rule *r)
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

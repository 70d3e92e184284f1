/*
 * rule: the [rule] sections of the user's file (see config.h): the custom
 * parsers of on and do, the common key table, the catalog action kind
 * (its params), the rule section kind, which also applies the keys of the
 * action kind `do` picks (rule_kind.h; the sinks define http and exec),
 * the services those kinds use, and the per-event lookups.
 */
#include "config_int.h"

#include "condition.h"
#include "secret.h"
#include "template.h"
#include "url.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

struct template *config_rule_template(struct ini_doc *doc, int line, const char *what,
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
    size_t close = template_find_close(text, len, i);
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
 * Words on blanks outside {{ }}, so that `{{record.name | default "a b"}}`
 * stays one word. An unclosed {{ takes the rest of the text
 * (template_parse then reports it).
 */
char **config_split_words(const char *s, size_t *count)
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
                size_t close = template_find_close(s, len, i);
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
                         "%s: unknown event type in '%s' (allowed: created updated deleted "
                         "touched *)",
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

/* ", or http, or exec": the kinds `do` may name besides a catalog action. */
static char *kind_names(const struct config_rule_kind *const *kinds)
{
    char *text = xstrdup("");
    for (size_t i = 0; kinds[i] != NULL; i++) {
        if (kinds[i] == &config_rule_catalog) {
            continue;
        }
        char *more = xasprintf("%s, or %s", text, kinds[i]->name);
        free(text);
        text = more;
    }
    return text;
}

/* do = ACTION | KIND (http, exec, ...). The catalog lookup waits for
 * config_resolve; the kind was picked by add_rule. */
static int parse_rule_do(struct ini_doc *doc, const struct ini_key *k, const char *value,
                         int line, void *field)
{
    const struct loader *ld = doc->user;
    struct config_rule *r = RULE_OF(field, action);
    if (!ini_valid_name(value)) {
        char q[INI_QUOTE_MAX + 4];
        ini_quote(value, q);
        char *names = kind_names(ld->rule_kinds);
        ini_diag_add(&doc->diag, line,
                     "bad value '%s' for '%s' (a catalog action: see `pollen catalog actions`%s)",
                     q, k->name, names);
        free(names);
        return -EINVAL;
    }
    free(r->action);
    r->action = xstrdup(value);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The user's file: [rule] key tables                                        */

/* The keys of every [rule]: the first table a [rule] is applied through,
 * so that their RULE_* indices hold whatever the kind. */
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

static const struct ini_key rule_common_keys[] = {RULE_COMMON_KEYS};
/* For kinds with `timeout` (rule_kind.h): the last table, after the kind's
 * own keys, so suggestions list them in the order they always had. */
static const struct ini_key rule_timeout_keys[] = {
    {.name = "timeout", .type = INI_KEY_DURATION,
     .offset = offsetof(struct config_rule, timeout_ms), .def = "30s", .min = SEC(1),
     .max = MIN(10)},
};
enum {
    RULE_ON,
    RULE_WHEN,
    RULE_DO,
    RULE_CONFIRM,
    RULE_MAX_ATTEMPTS,
    RULE_BACKOFF,
    RULE_BACKOFF_MAX,
    RULE_NCOMMON, /* the kind's keys follow */
};
_Static_assert(ARRAY_SIZE(rule_common_keys) == RULE_NCOMMON, "rule key enum out of sync");

bool config_is_rule_key(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(rule_common_keys); i++) {
        if (strcmp(rule_common_keys[i].name, name) == 0) {
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

/* The kind named by the section's `do`, else a catalog action. */
static const struct config_rule_kind *rule_kind(const struct loader *ld,
                                                const struct ini_section *sec)
{
    const char *d = section_do(sec);
    for (size_t i = 0; d != NULL && ld->rule_kinds[i] != NULL; i++) {
        if (strcmp(ld->rule_kinds[i]->name, d) == 0) {
            return ld->rule_kinds[i];
        }
    }
    return &config_rule_catalog;
}

static void *add_rule(struct loader *ld, const struct ini_section *sec)
{
    struct config *cfg = ld->cfg;
    cfg->rules = xrealloc(cfg->rules, (cfg->nrules + 1) * sizeof(*cfg->rules));
    struct config_rule *r = &cfg->rules[cfg->nrules++];
    memset(r, 0, sizeof(*r));
    r->name = xstrdup(sec->name);
    r->line = sec->line;
    r->kind = rule_kind(ld, sec);
    r->sink_conf = r->kind->conf_size > 0 ? xcalloc(1, r->kind->conf_size) : NULL;
    return r;
}

/* The common keys into the rule, the kind's into its sink_conf, then
 * `timeout` if the kind takes it (lines: RULE_* then the kind's keys). */
static size_t rule_tables(void *obj, struct ini_table *tables, size_t max)
{
    struct config_rule *r = obj;
    size_t n = 0;
    tables[n++] = (struct ini_table){rule_common_keys, ARRAY_SIZE(rule_common_keys), r};
    if (r->kind->nkeys > 0 && n < max) {
        tables[n++] = (struct ini_table){r->kind->keys, r->kind->nkeys, r->sink_conf};
    }
    if (r->kind->timeout && n < max) {
        tables[n++] = (struct ini_table){rule_timeout_keys, ARRAY_SIZE(rule_timeout_keys), r};
    }
    return n;
}

void config_rule_param_add(struct ini_doc *doc, const struct ini_entry *e, const char *name,
                           struct config_rule_param **arr, size_t *n)
{
    *arr = xrealloc(*arr, (*n + 1) * sizeof(**arr));
    (*arr)[*n] = (struct config_rule_param){
        .name = xstrdup(name),
        .value = xstrdup(e->value),
        .line = e->line,
        .tmpl = config_rule_template(doc, e->line, e->key, e->value),
    };
    (*n)++;
}

int config_rule_secret(struct ini_doc *doc, const struct ini_entry *e, char **out)
{
    struct ini_key k = {.name = e->key};
    *out = NULL;
    int rc = config__read_reference(doc, &k, e->value, e->line, true, out);
    if (rc == 0) {
        log_add_secret(*out);
    }
    return rc;
}

/* Keys outside the rule's tables go to its kind. */
static bool rule_extra(struct ini_doc *doc, const struct ini_entry *e, void *obj)
{
    struct config_rule *r = obj;
    return r->kind->extra != NULL && r->kind->extra(doc, e, r);
}

/* A catalog action's every other key is a path parameter or body field,
 * checked against the action by config_resolve. */
static bool catalog_extra(struct ini_doc *doc, const struct ini_entry *e, struct config_rule *r)
{
    if (e->value[0] == '\0') {
        ini_diag_add(&doc->diag, e->line, "empty value for '%s'", e->key);
        return true;
    }
    config_rule_param_add(doc, e, e->key, &r->params, &r->nparams);
    return true;
}

const struct config_rule_kind config_rule_catalog = {
    .name = "ghl",
    .extra = catalog_extra,
};

static unsigned rule_types(const struct config_rule *r)
{
    unsigned types = 0;
    for (size_t i = 0; i < r->non; i++) {
        types |= r->on[i].types;
    }
    return types;
}

void config_rule_warn_changes(const struct ini_doc *doc, const struct config_rule *r,
                              const struct template *t, const char *what, int line)
{
    bool updates = r->non == 0 || (rule_types(r) & EVENT_TYPE_UPDATED) != 0;
    if (!updates && t != NULL && template_uses_root(t, "changes")) {
        log_warn("config",
                 "%s:%d: '%s' reads changes, but [rule %s] fires only on created/deleted "
                 "events, which carry none (it renders as missing)",
                 doc->path, line, what, r->name);
    }
}

static void finish_rule(struct loader *ld, struct ini_doc *doc,
                        const struct ini_section *sec, void *obj, const int *lines)
{
    struct config_rule *r = obj;
    (void)ld;
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
    for (size_t i = 0; i < r->nparams; i++) {
        config_rule_warn_changes(doc, r, r->params[i].tmpl, r->params[i].name,
                                 r->params[i].line);
    }
    if (r->kind->finish != NULL) {
        /* The kind's keys follow the common ones in lines (rule_tables). */
        r->kind->finish(doc, r, lines + RULE_NCOMMON);
    }
}

/* The [rule] kind, in the registry of load.c: the kind's keys join the
 * common ones per section, by its `do` value. */
const struct section_kind config__rule_kind = {
    .kind = "rule",
    .named = true,
    .keys = rule_common_keys,
    .nkeys = ARRAY_SIZE(rule_common_keys),
    .add = add_rule,
    .finish = finish_rule,
    .extra = rule_extra,
    .tables_for = rule_tables,
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

void config_rule_params_free(struct config_rule_param *p, size_t n)
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
    config_rule_params_free(r->params, r->nparams);
    if (r->kind != NULL && r->kind->free_conf != NULL && r->sink_conf != NULL) {
        r->kind->free_conf(r->sink_conf);
    }
    free(r->sink_conf);
}

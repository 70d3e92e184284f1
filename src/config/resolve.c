/*
 * resolve: config_resolve (see config.h). Links each trigger to its
 * catalog definition and checks parameters, for_each chains and page
 * sizes; links each catalog rule to its action and checks its keys; checks
 * that every scope is granted to the location's OAuth credential.
 */
#include "config_int.h"

#include "buf.h"
#include "log.h"
#include "secret.h"
#include "template.h"

#include <cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Resolution against the catalog                                           */

/* How messages name a trigger: the section's NAME, so that the expansions
 * of a `location = *` trigger share one message (ini_diag_add_once). */
static const char *tlabel(const struct config_trigger *t)
{
    return t->base != NULL ? t->base : t->name;
}

/* Does text fit type by the rules the request will apply
 * (catalog_value_coerce)? If not, why says what is wrong. */
static bool value_fits(enum catalog_type type, const char *text, char *why, size_t whylen)
{
    cJSON *v = NULL;
    int rc = catalog_value_coerce(type, text, &v, why, whylen);
    cJSON_Delete(v);
    return rc == 0;
}

static int check_param_value(struct ini_diag *d, const struct config_trigger *t,
                             const struct catalog_param *p, const struct config_param *cp)
{
    char q[INI_QUOTE_MAX + 4];
    ini_quote(cp->value, q);
    char why[160];
    if (value_fits(p->type, cp->value, why, sizeof(why))) {
        return 0;
    }
    if (p->type == CATALOG_JSON) {
        ini_diag_add_once(d, cp->line, "'%s' is %s", cp->name, why);
        return -EINVAL;
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

/*
 * `reconcile` and `watermark_lag` by the trigger's kind: an incremental
 * definition's full enumeration (default 1h; 0s: every cycle is one), a
 * for_each child's full sweep (unset: 0, which the sweep reads as 1 day;
 * at least 1s), refused elsewhere. watermark_lag: incremental only.
 */
static void resolve_reconcile(struct ini_diag *d, struct config_trigger *t,
                              const struct catalog_trigger *def)
{
    bool child = t->for_each != NULL;
    if (t->reconcile_line != 0 && t->reconcile_ms < 1000 &&
        (child || t->reconcile_ms != 0 || !def->incremental)) {
        char text[32];
        ini_format_duration(t->reconcile_ms, text, sizeof(text));
        ini_diag_add_once(d, t->reconcile_line,
                          "reconcile = %s is out of range (allowed 1s..30d, or 0s on an "
                          "incremental definition)", text);
    } else if (!def->incremental && !child && t->reconcile_line != 0) {
        ini_diag_add_once(d, t->reconcile_line,
                          "reconcile: %s is not polled incrementally (no incremental = filter "
                          "in its definition) and is not a for_each trigger", def->name);
    }
    if (def->incremental && !child && t->reconcile_line == 0) {
        t->reconcile_ms = 3600000; /* M13: a full enumeration hourly by default */
    }
    if (t->full_round_line != 0 && (!child || def->batch_def == NULL)) {
        ini_diag_add_once(d, t->full_round_line,
                          "full_round: %s %s", def->name,
                          child ? "has no batch listing (no batch key in its definition)"
                                : "is not a for_each trigger");
    }
    if (!def->incremental && t->watermark_lag_line != 0) {
        ini_diag_add_once(d, t->watermark_lag_line,
                          "watermark_lag: %s is not polled incrementally (no incremental = "
                          "filter in its definition)", def->name);
    }
}

static void resolve_params(struct ini_diag *d, struct config_trigger *t)
{
    const struct catalog_trigger *def = t->def;
    bool fed = t->for_each != NULL && def->fan_out != NULL;
    for (size_t i = 0; i < t->nparams; i++) {
        const struct config_param *cp = &t->params[i];
        const struct catalog_param *p = catalog_trigger_param(def, cp->name);
        if (p == NULL) {
            size_t n = config__trigger_kind.nkeys + def->nparams;
            const char **names = xcalloc(n + 1, sizeof(*names));
            for (size_t j = 0; j < config__trigger_kind.nkeys; j++) {
                names[j] = config__trigger_kind.keys[j].name;
            }
            for (size_t j = 0; j < def->nparams; j++) {
                names[config__trigger_kind.nkeys + j] = def->params[j].name;
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
    resolve_reconcile(d, t, def);
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
    if (t->api != NULL) {
        ini_diag_add_once(d, t->for_each_line,
                          "for_each is not supported yet on a trigger of an [api] (api = %s)",
                          t->api->name);
        return;
    }
    struct config_trigger *parent = config_find_trigger(cfg, t->for_each);
    if (parent == NULL) {
        size_t nnames = 0;
        const char **names = config__trigger_names(cfg, &nnames);
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
        if (!(ascii_is_alnum(s[i]) || s[i] == '_' || s[i] == '-')) {
            return false;
        }
    }
    return true;
}

/*
 * A secret field (M14): the rule says where the value is (env:VAR or
 * file:PATH), never the value, which is read only when the action is sent.
 * Only the form is checked here. No message quotes what was written: a
 * value that is not a reference may be the secret itself, so it is also
 * masked in every later log line.
 */
static void check_secret_field(struct ini_diag *d, const struct config_rule *r,
                               const struct config_rule_param *p)
{
    char *out = NULL;
    char *msg = NULL;
    int rc = 1;
    if (p->tmpl != NULL && template_is_literal(p->tmpl)) {
        rc = secret_ref_read(p->value, p->name, NULL, SECRET_SKIP, &out, &msg);
    }
    if (rc == 1) {
        if (strlen(p->value) >= 4) {
            log_add_secret(p->value);
        }
        ini_diag_add(d, p->line,
                     "'%s' is a secret field of %s: give env:VAR or file:PATH (read when the "
                     "action is sent, never stored), not the value or a {{template}}",
                     p->name, r->def->name);
    } else if (rc != 0) {
        ini_diag_add(d, p->line, "%s", msg);
    }
    free(msg);
    secret_wipe_free(out);
}

static void check_rule_field(struct ini_diag *d, const struct config_rule *r,
                             const struct catalog_field *f, const struct config_rule_param *p)
{
    if (f->secret) {
        check_secret_field(d, r, p);
        return;
    }
    if (p->tmpl == NULL || (f->nullable && strcmp(p->value, "null") == 0)) {
        return; /* a nullable field's literal null is sent as JSON null */
    }
    const char *action = r->def->name;
    if (!template_is_literal(p->tmpl)) {
        /* One {{expr}} keeps its JSON type; text around it makes a string,
         * which only string fields (and lists, split on spaces) accept. */
        if (f->type != CATALOG_STRING && f->type != CATALOG_STRING_LIST &&
            !config__is_single_expr(p->value)) {
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
    char why[160];
    if (value_fits(f->type, p->value, why, sizeof(why))) {
        return;
    }
    if (f->type == CATALOG_JSON) {
        /* why ends with ')': the action goes inside the parenthesis */
        ini_diag_add(d, p->line, "'%s' is %.*s; %s expects JSON)", p->name,
                     (int)strlen(why) - 1, why, action);
    } else {
        ini_diag_add(d, p->line, "bad value '%s' for '%s' (%s expects %s)", q, p->name, action,
                     f->type == CATALOG_INTEGER   ? "an integer"
                     : f->type == CATALOG_BOOLEAN ? "true or false"
                                                  : "a number");
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
    size_t n = def->nparams + def->nfields + config__rule_kind.nkeys;
    const char **names = xcalloc(n + 1, sizeof(*names));
    size_t k = 0;
    for (size_t i = 0; i < def->nparams; i++) {
        names[k++] = def->params[i].name;
    }
    for (size_t i = 0; i < def->nfields; i++) {
        names[k++] = def->fields[i].name;
    }
    for (size_t i = 0; i < config__rule_kind.nkeys; i++) {
        names[k++] = config__rule_kind.keys[i].name;
    }
    const char *hint = ini_suggest(p->name, names, k);
    ini_diag_add(d, p->line, "unknown field '%s' for %s%s%s%s", p->name, def->name,
                 hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
    free(names);
}

static void resolve_rule(struct ini_diag *d, struct config_rule *r, const struct catalog *cat,
                         const char **action_names, size_t nnames)
{
    if (r->kind != &config_rule_catalog || r->action == NULL) {
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
    for (size_t i = 0; i < r->non; i++) {
        const struct config_trigger *t = r->on[i].resolved;
        if (t != NULL && t->api != NULL) {
            /* A HighLevel action runs with a location's token; an api trigger has none. */
            ini_diag_add(d, r->do_line ? r->do_line : r->line,
                         "rule '%s': %s is a HighLevel action, and [trigger %s] polls [api %s], "
                         "which has no location to run it with (use http or exec)",
                         r->name, def->name, t->name, t->api->name);
            break;
        }
    }
    if (def->destructive && !r->confirm) {
        ini_diag_add(d, r->do_line ? r->do_line : r->line,
                     "rule '%s' runs destructive action %s: add confirm = yes", r->name,
                     def->name);
    }
    /* destructive_when (M14): a literal null makes this rule destructive; an
     * expression that renders null without confirm is refused when sent. */
    const struct config_rule_param *cond =
        def->destructive_when != NULL && !r->confirm ? find_rule_param(r, def->destructive_when)
                                                     : NULL;
    if (cond != NULL && strcmp(cond->value, "null") == 0) {
        ini_diag_add(d, cond->line,
                     "%s = null makes %s destructive (it removes): add confirm = yes to rule "
                     "'%s'",
                     cond->name, def->name, r->name);
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

/* Is every scope of needed (space-separated) in granted? */
static bool scopes_granted(const char *needed, char *const *granted)
{
    size_t n = 0;
    char **want = strv_split(needed != NULL ? needed : "", &n);
    bool all = true;
    for (size_t i = 0; i < n && all; i++) {
        all = strv_contains(granted, want[i]);
    }
    strv_free(want);
    return all;
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
        /* A batch read is an economy, not a requirement: without its scope, no batch. */
        cfg->triggers[i].batch_off =
            t->def->batch_def != NULL && !scopes_granted(t->def->batch_def->scope, granted[k]);
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

/*
 * An agency definition (M15) runs for a [company], every other one for a
 * [location]. A trigger whose definition sends {company} (M3) needs a companyId: the
 * OAuth installation's (every token response carries one) or the
 * location's company_id. A static token carries none.
 */
static void check_company(struct ini_diag *d, const struct config *cfg)
{
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        const struct config_trigger *t = &cfg->triggers[i];
        const struct config_location *loc = t->location;
        if (t->def != NULL && loc != NULL && t->def->agency != loc->is_company) {
            ini_diag_add(d, t->line,
                         t->def->agency
                             ? "trigger '%s': %s is an agency definition (scope_level = "
                               "agency): name a [company NAME] with company = NAME, not a "
                               "location"
                             : "trigger '%s': %s polls a location; company = NAME is only for "
                               "agency definitions",
                         tlabel(t), t->def->name);
            continue;
        }
        if (t->def == NULL || loc == NULL || !catalog_trigger_uses_company(t->def) ||
            loc->company_id != NULL || loc->oauth != NULL) {
            continue;
        }
        ini_diag_add(d, t->line,
                     "trigger '%s': %s sends the companyId ({company}), and the static token "
                     "of [location %s] carries none: add company_id = <companyId> to "
                     "[location %s] (line %d)",
                     tlabel(t), t->def->name, loc->name, loc->name, loc->line);
    }
    for (size_t i = 0; i < cfg->nrules; i++) {
        const struct config_rule *r = &cfg->rules[i];
        if (r->def == NULL || !catalog_action_uses_company(r->def)) {
            continue;
        }
        for (size_t j = 0; j < r->non; j++) {
            const struct config_trigger *t = r->on[j].resolved;
            const struct config_location *loc = t != NULL ? t->location : NULL;
            if (loc == NULL || loc->company_id != NULL || loc->oauth != NULL) {
                continue;
            }
            ini_diag_add(d, r->do_line,
                         "rule '%s': %s sends the companyId ({company}), and the static token "
                         "of [location %s] carries none: add company_id = <companyId> to "
                         "[location %s] (line %d)",
                         r->name, r->def->name, loc->name, loc->name, loc->line);
            break;
        }
    }
}

/* t->def from cat (the product's catalog, or t's api's), or an unknown `use`. */
static void resolve_use(struct ini_diag *d, struct config_trigger *t, const struct catalog *cat)
{
    t->def = catalog_find_trigger(cat, t->use);
    t->parent = NULL;
    if (t->def != NULL) {
        resolve_params(d, t);
        return;
    }
    size_t ncat = catalog_trigger_count(cat);
    const char **names = xcalloc(ncat + 1, sizeof(*names));
    for (size_t i = 0; i < ncat; i++) {
        names[i] = catalog_trigger_at(cat, i)->name;
    }
    char q[INI_QUOTE_MAX + 4];
    ini_quote(t->use, q);
    const char *hint = ini_suggest(t->use, names, ncat);
    char where[INI_NAME_MAX + 64];
    if (t->api != NULL) {
        snprintf(where, sizeof(where), "the catalog of [api %s]", t->api->name);
    } else {
        snprintf(where, sizeof(where), "see pollen catalog");
    }
    ini_diag_add_once(d, t->use_line ? t->use_line : t->line,
                      "use: unknown catalog trigger '%s'%s%s%s (%s)", q,
                      hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "",
                      where);
    free(names);
}

/* Loads each [api NAME]'s catalog (its problems go to errs, at the
 * catalog's FILE:LINE). Returns 0, or -EINVAL when any failed. */
static int load_api_catalogs(struct config *cfg, struct ini_errors *errs)
{
    int rc = 0;
    for (size_t i = 0; i < cfg->napis; i++) {
        struct config_api *api = &cfg->apis[i];
        catalog_free(api->catalog);
        api->catalog = NULL;
        if (catalog_load_api(api->catalog_dir, &config_reserved_keys, &api->catalog, errs) != 0) {
            rc = -EINVAL;
        }
    }
    return rc;
}

int config_resolve(struct config *cfg, const struct catalog *cat, struct ini_errors *errs)
{
    struct ini_diag d;
    ini_diag_init(&d, cfg->path);
    int api_rc = load_api_catalogs(cfg, errs);
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        struct config_trigger *t = &cfg->triggers[i];
        const struct catalog *tcat = t->api != NULL ? t->api->catalog : cat;
        t->def = NULL;
        t->parent = NULL;
        if (tcat != NULL) { /* else the api's catalog failed to load: reported */
            resolve_use(&d, t, tcat);
        }
    }
    const char **names = NULL;
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
    check_company(&d, cfg);
    if (d.count == 0 && api_rc == 0) {
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

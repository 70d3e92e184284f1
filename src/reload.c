/*
 * reload: see reload.h.
 */
#include "reload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "catalog.h"
#include "config.h"
#include "inifile.h"
#include "log.h"
#include "registry.h"
#include "util.h"

int reload_load(const char *path, const struct config *cur, struct config **cfg,
                struct catalog **cat)
{
    struct ini_errors errs = {0};
    int rc = config_load_resolved(path, 0, sink_rule_kinds(), cfg, cat, &errs);
    if (rc == 0 && errs.count == 0 && strcmp((*cfg)->state_dir, cur->state_dir) != 0) {
        ini_errors_add(&errs, path, 0, "state_dir changed (%s to %s): restart to move it",
                       cur->state_dir, (*cfg)->state_dir);
    }
    for (size_t i = 0; i < errs.count; i++) {
        log_error("engine", "reload: %s", errs.items[i]);
    }
    bool failed = rc != 0 || errs.count > 0;
    ini_errors_free(&errs);
    if (!failed) {
        return 0;
    }
    log_error("engine", "reload refused: %s has problems; the running configuration stays", path);
    catalog_free(*cat);
    config_free(*cfg);
    *cfg = NULL;
    *cat = NULL;
    return rc != 0 ? rc : -EINVAL;
}

static const struct config_trigger *find_trigger(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        if (strcmp(cfg->triggers[i].name, name) == 0) {
            return &cfg->triggers[i];
        }
    }
    return NULL;
}

static bool same_str(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

static bool same_strv(char **a, char **b)
{
    for (; a != NULL && b != NULL && *a != NULL && *b != NULL; a++, b++) {
        if (strcmp(*a, *b) != 0) {
            return false;
        }
    }
    return (a == NULL || *a == NULL) && (b == NULL || *b == NULL);
}

/* Does any key of the trigger differ (everything its poller reads)? */
static bool trigger_changed(const struct config_trigger *a, const struct config_trigger *b)
{
    bool same = same_str(a->use, b->use) && same_str(a->location_name, b->location_name) &&
                same_str(a->company_name, b->company_name) && same_str(a->api_name, b->api_name) &&
                a->every_ms == b->every_ms &&
                a->reconcile_ms == b->reconcile_ms && a->emit == b->emit &&
                a->first_poll_emit == b->first_poll_emit && same_strv(a->fields, b->fields) &&
                same_strv(a->ignore, b->ignore) && same_str(a->for_each, b->for_each) &&
                a->page_size == b->page_size && a->watermark_lag_ms == b->watermark_lag_ms &&
                a->full_round_each == b->full_round_each && a->nparams == b->nparams;
    for (size_t i = 0; same && i < a->nparams; i++) {
        same = same_str(a->params[i].name, b->params[i].name) &&
               same_str(a->params[i].value, b->params[i].value);
    }
    return !same;
}

/* Appends " WHAT a, b" for each trigger of `of` whose fate matches. */
static size_t list_triggers(struct buf *out, const char *what, const struct config *of,
                            const struct config *other, int kind)
{
    size_t n = 0;
    for (size_t i = 0; i < of->ntriggers; i++) {
        const struct config_trigger *t = &of->triggers[i];
        const struct config_trigger *o = find_trigger(other, t->name);
        bool match = kind == 0 ? o == NULL : (o != NULL && trigger_changed(o, t));
        if (match) {
            buf_append_str(out, n++ == 0 ? what : ", ");
            buf_append_str(out, t->name);
        }
    }
    if (n > 0) {
        buf_append_str(out, ";");
    }
    return n;
}

/* Rules compared by name, condition, action and their counts of `on`
 * entries and values: enough for the summary line (the reload applies every
 * rule anew whatever this says). */
static bool rules_changed(const struct config *a, const struct config *b)
{
    if (a->nrules != b->nrules) {
        return true;
    }
    for (size_t i = 0; i < a->nrules; i++) {
        const struct config_rule *x = &a->rules[i];
        const struct config_rule *y = &b->rules[i];
        if (!same_str(x->name, y->name) || !same_str(x->when, y->when) ||
            !same_str(x->action, y->action) || x->non != y->non ||
            x->nparams != y->nparams) {
            return true;
        }
    }
    return false;
}

bool reload_summary(const struct config *cur, const struct config *next, char *out, size_t size)
{
    struct buf b;
    buf_init(&b, 4096);
    size_t n = list_triggers(&b, " triggers added: ", next, cur, 0);
    n += list_triggers(&b, " removed: ", cur, next, 0);
    n += list_triggers(&b, " changed: ", next, cur, 1);
    bool rules = rules_changed(cur, next);
    char tail[96];
    snprintf(tail, sizeof(tail), " rules: %zu -> %zu%s", cur->nrules, next->nrules,
             rules ? "" : " (same names, conditions and actions)");
    buf_append_str(&b, tail);
    /* Everything else (locations, [api], engine keys) is compared as a whole
     * by what the engine builds from it: the restart applies it anyway. */
    bool other = cur->nlocations != next->nlocations || cur->noauths != next->noauths ||
                 !same_str(cur->base_url, next->base_url) ||
                 !same_str(cur->listen, next->listen) ||
                 cur->min_interval_ms != next->min_interval_ms ||
                 cur->log_level != next->log_level;
    for (size_t i = 0; !other && i < cur->nlocations; i++) {
        other = !same_str(cur->locations[i].name, next->locations[i].name) ||
                !same_str(cur->locations[i].id, next->locations[i].id);
    }
    if (other) {
        buf_append_str(&b, "; engine, api or location settings changed");
    }
    snprintf(out, size, "%s", b.len > 0 ? b.data + 1 : "");
    buf_finish(&b);
    return n > 0 || rules || other;
}

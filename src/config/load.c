/*
 * load: config_load and config_free (see config.h). The registry of
 * section kinds, applied in a fixed order: each kind (its key table, its
 * add, finish and after steps) is defined next to its parsers, in config.c
 * and rule.c.
 */
#include "config_int.h"

#include "secret.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Section kinds                                                             */

/* Processed in this order, so later kinds can rely on earlier ones
 * (triggers on min_interval and on the complete list of locations, rules
 * on the complete list of triggers). */
static const struct section_kind *const section_kinds[] = {
    &config__engine_kind,
    &config__api_kind,
    /* [api NAME]: a user's own API (the same word as [api], with a name).
     * Before [trigger], whose `api` names one. */
    &config__user_api_kind,
    /* Before [location], whose `oauth` names one; after [engine], whose
     * state_dir holds the default token store. */
    &config__oauth_kind,
    &config__location_kind,
    /* After [location]: both live in cfg->locations, companies last. */
    &config__company_kind,
    /* expand_triggers replaces `location = *` triggers by their expansions. */
    &config__trigger_kind,
    /* Last: `on` looks up triggers, which must all exist (expanded) by then. */
    &config__rule_kind,
};

static const struct section_kind *find_kind(const char *kind)
{
    for (size_t i = 0; i < ARRAY_SIZE(section_kinds); i++) {
        if (strcmp(section_kinds[i]->kind, kind) == 0) {
            return section_kinds[i];
        }
    }
    return NULL;
}

/* Is there another kind of k's word for a section with (or without) a name? */
static bool other_variant(const struct section_kind *k, bool named)
{
    if (k->named == named) {
        return false;
    }
    for (size_t i = 0; i < ARRAY_SIZE(section_kinds); i++) {
        if (section_kinds[i] != k && section_kinds[i]->named == named &&
            strcmp(section_kinds[i]->kind, k->kind) == 0) {
            return true;
        }
    }
    return false;
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
        if (other_variant(k, sec->name != NULL)) {
            continue; /* [api] and [api NAME] are two kinds of one word */
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
        void *obj = k->add(ld, sec);
        struct ini_table tables[4] = {{k->keys, k->nkeys, obj}};
        size_t ntables = 1;
        if (k->tables_for != NULL) {
            ntables = k->tables_for(obj, tables, ARRAY_SIZE(tables));
        }
        ini_apply_tables(doc, sec, what, tables, ntables, k->extra, lines);
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

int config_load(const char *path, unsigned flags,
                const struct config_rule_kind *const *rule_kinds, struct config **out,
                struct ini_errors *errs)
{
    static const struct config_rule_kind *const no_kinds[] = {NULL};
    *out = NULL;
    struct config *cfg = xcalloc(1, sizeof(*cfg));
    struct loader ld = {.cfg = cfg, .flags = flags,
                        .rule_kinds = rule_kinds != NULL ? rule_kinds : no_kinds};
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
                         "unknown section kind [%s] (expected [engine], [api], [api NAME], "
                         "[location NAME], [company NAME], [oauth NAME], [trigger NAME] or [rule "
                         "NAME])",
                         q);
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(section_kinds); i++) {
        apply_kind(&ld, &doc, section_kinds[i]);
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
/* Free                                                                      */

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
        free(loc->company_id);
    }
    free(cfg->locations);
    for (size_t i = 0; i < cfg->napis; i++) {
        config__api_free(&cfg->apis[i]);
    }
    free(cfg->apis);
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        config__trigger_free(&cfg->triggers[i]);
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
        config__rule_free(&cfg->rules[i]);
    }
    free(cfg->rules);
    free(cfg->path);
    free(cfg->dir);
    free(cfg->state_dir);
    free(cfg->catalog_dir);
    free(cfg->base_url);
    free(cfg->ca_file);
    free(cfg->proxy);
    free(cfg->listen);
    free(cfg);
}

int config_load_resolved(const char *path, unsigned flags,
                         const struct config_rule_kind *const *rule_kinds, struct config **cfg,
                         struct catalog **cat, struct ini_errors *errs)
{
    *cat = NULL;
    int rc = config_load(path, flags, rule_kinds, cfg, errs);
    if (rc == 0) {
        rc = catalog_load((*cfg)->catalog_dir, &config_reserved_keys, cat, errs);
    }
    if (rc == 0) {
        rc = config_resolve(*cfg, *cat, errs);
    }
    return rc;
}

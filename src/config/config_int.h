/*
 * config_int: what the files of the user-configuration module share, and
 * nothing outside src/config/ may include. The module (config.h is its
 * public header) is five files:
 *   config.c   the [engine] [api] [oauth] [location] [trigger] sections:
 *              custom parsers, key tables, section kinds, `location = *`
 *              expansion; the lookups
 *   userapi.c  the [api NAME] sections (a user's own API) and `api = NAME`
 *   rule.c     the [rule] sections: parsers, the common key table, the
 *              catalog action kind, the section kind (which applies the
 *              kind's keys too, rule_kind.h) and the services for kinds;
 *              config_rule_matches, config_rule_location
 *   load.c     the registry of section kinds, config_load, config_free
 *   resolve.c  config_resolve: the catalog, for_each chains, scopes
 *
 * Owns: nothing. Functions and objects here are named config__*; the two
 * types are the loader's context and a section kind.
 * Invariants: a section kind's add/finish/after run only inside
 * config_load, with doc->user pointing at the struct loader.
 * Thread context: as config.h (startup and reload, loop thread).
 */
#ifndef POLLEN_CONFIG_INT_H
#define POLLEN_CONFIG_INT_H

#include "config.h"

/* The loader's context: doc->user while config_load applies sections. */
struct loader {
    struct config *cfg;
    unsigned flags; /* config_load's flags (CONFIG_SKIP_SECRETS) */
    const struct config_rule_kind *const *rule_kinds; /* config_load's, NULL-terminated */
};

/* One kind of section ([engine], [trigger NAME], ...): a row of load.c's
 * registry, defined next to its parsers. */
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
    /* If set, the key tables of obj (as add returned it), instead of
     * keys/nkeys alone: a [rule] adds its kind's keys, which are parsed into
     * its sink_conf. Returns how many of max it filled; tables[0] is keys
     * into obj. */
    size_t (*tables_for)(void *obj, struct ini_table *tables, size_t max);
    /* If set, runs once after every section of this kind is applied
     * (checks and rewrites that need all of them: `location = *`). */
    void (*after)(struct loader *ld, struct ini_doc *doc);
};

/* config.c */
extern const struct section_kind config__engine_kind;
extern const struct section_kind config__api_kind;
extern const struct section_kind config__oauth_kind;
extern const struct section_kind config__location_kind;
extern const struct section_kind config__company_kind;
extern const struct section_kind config__trigger_kind;
/* userapi.c */
extern const struct section_kind config__user_api_kind;
/* `api = NAME` of trigger t: links t->api, or reports an unknown api, or
 * an api named with location or company (their lines, 0 when not given). */
void config__bind_api(const struct config *cfg, struct ini_doc *doc, struct config_trigger *t,
                      int location_line, int company_line);
/* Frees what an [api NAME] owns (not the struct itself). */
void config__api_free(struct config_api *api);
/* config.c's parsers, shared with userapi.c: an https (or loopback http)
 * base URL without its trailing slashes; a secret reference (env:VAR or
 * file:PATH, a private file), registered with log_add_secret. */
int config__parse_base_url(struct ini_doc *doc, const struct ini_key *k, const char *value,
                           int line, void *field);
int config__parse_token(struct ini_doc *doc, const struct ini_key *k, const char *value,
                        int line, void *field);

/* rule.c */
extern const struct section_kind config__rule_kind;

/* "created", "updated", "deleted", NULL: bit j of a trigger's emit and of
 * a rule's on-types is EVENT type config__emit_names[j]. */
extern const char *const config__emit_names[];


/*
 * A reference to a value kept outside the file: env:VAR or file:PATH
 * (must_be_private: the file must be private, as for secrets), for key k
 * of a section being loaded. Returns 0 with *out (a new string; NULL with
 * CONFIG_SKIP_SECRETS), -EINVAL after reporting at line, or 1 when value
 * is neither form.
 */
int config__read_reference(struct ini_doc *doc, const struct ini_key *k, const char *value,
                           int line, bool must_be_private, char **out);


/* Trigger names for suggestions: the section names as written (a
 * `location = *` trigger once, by its NAME). Free the array only; the
 * names are borrowed from cfg. */
const char **config__trigger_names(const struct config *cfg, size_t *n);

/* True when text is one {{expr}} with only white space around it (such a
 * template keeps its value's JSON type). */
bool config__is_single_expr(const char *text);

/* Free what a trigger, a rule owns (not the struct itself). */
void config__trigger_free(struct config_trigger *t);
void config__rule_free(struct config_rule *r);

#endif

/*
 * config_int: what the files of the user-configuration module share, and
 * nothing outside src/config/ may include. The module (config.h is its
 * public header) is four files:
 *   config.c   the [engine] [api] [oauth] [location] [trigger] sections:
 *              custom parsers, key tables, section kinds, `location = *`
 *              expansion; the lookups
 *   rule.c     the [rule] sections: parsers, the three key tables, the
 *              section kind; config_rule_matches, config_rule_location
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
    /* If set, picks the key table for this section instead of keys/nkeys
     * (a [rule] by its `do` value). */
    const struct ini_key *(*keys_for)(const struct ini_section *sec, size_t *nkeys);
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
/* rule.c */
extern const struct section_kind config__rule_kind;

/* "created", "updated", "deleted", NULL: bit j of a trigger's emit and of
 * a rule's on-types is EVENT type config__emit_names[j]. */
extern const char *const config__emit_names[];

/* True when host (len bytes, not NUL-terminated) is 127.0.0.1, localhost
 * or [::1]: the only hosts http:// may name. */
bool config__is_local_host(const char *host, size_t len);

/*
 * A reference to a value kept outside the file: env:VAR or file:PATH
 * (must_be_private: the file must be private, as for secrets), for key k
 * of a section being loaded. Returns 0 with *out (a new string; NULL with
 * CONFIG_SKIP_SECRETS), -EINVAL after reporting at line, or 1 when value
 * is neither form.
 */
int config__read_reference(struct ini_doc *doc, const struct ini_key *k, const char *value,
                           int line, bool must_be_private, char **out);

/* A deep copy of v (free with strv_free), or NULL when v is NULL. */
char **config__strv_dup(char *const *v);

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

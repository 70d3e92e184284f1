/*
 * rule_kind: an action kind as the configuration sees it. A [rule]'s `do`
 * picks its kind: a word some kind is named ("http", "exec") or else a
 * catalog action (config_rule_catalog). Each kind brings its own [rule]
 * keys, parsed into a struct of its own that the rule owns (sink_conf);
 * the keys every rule takes (on, when, do, confirm, max_attempts, backoff,
 * backoff_max) stay in rule.c.
 *
 * The kinds are not config's: the sinks define them (sinks/registry.c
 * lists them, sink_rule_kinds()) and config_load is given the list, so the
 * config layer never includes the sinks layer and a new kind touches no
 * file of src/config/. The services below are what a kind's parsers and
 * hooks may call while config_load applies a [rule].
 *
 * Owns: nothing (kinds are static const data; a rule owns its sink_conf,
 * freed through its kind's free_conf).
 * Invariants: kinds' names are distinct; hooks run only inside
 * config_load, on the [rule] being applied, with doc->user the loader's.
 * Thread context: as config.h (startup, loop thread).
 */
#ifndef POLLEN_RULE_KIND_H
#define POLLEN_RULE_KIND_H

#include <stdbool.h>
#include <stddef.h>

#include "inifile.h"

struct config_rule;
struct config_rule_param;
struct template;

struct config_rule_kind {
    const char *name;            /* the `do` word that selects it */
    /* The kind's own keys; offsets point into its conf struct (sink_conf).
     * Their names follow the common keys in "did you mean" suggestions. */
    const struct ini_key *keys;
    size_t nkeys;
    size_t conf_size;            /* sink_conf is this many zeroed bytes; 0: NULL */
    /* Takes `timeout` (1s..10m, default 30s) into the rule's timeout_ms,
     * which the delivery loop reads (the lease) as well as the sink. */
    bool timeout;
    /*
     * Keys outside the tables (http's header.NAME, body.NAME), or NULL for
     * none. Returns true when the key is taken (even with an error, which
     * it reports), false when it is unknown (ini_extra_fn's contract).
     */
    bool (*extra)(struct ini_doc *doc, const struct ini_entry *e, struct config_rule *r);
    /*
     * Optional checks across keys once the section is applied; lines[i] is
     * the line of keys[i] as given, 0 when defaulted. The conf may be only
     * partly filled when the section had errors.
     */
    void (*finish)(struct ini_doc *doc, const struct config_rule *r, const int *lines);
    /* Frees what the conf owns (not the conf itself); NULL: nothing. Runs
     * on partly filled confs too. */
    void (*free_conf)(void *conf);
};

/*
 * The catalog actions' kind (do = orders.create, ...): any word no
 * other kind is named. Its extra keys are the action's path parameters
 * and body fields (struct config_rule's params), checked by config_resolve.
 * The ghl sink renders it; lists may name it or not (it is the fallback).
 */
extern const struct config_rule_kind config_rule_catalog;

/* ---- services for kinds (rule.c) ---------------------------------------- */

/* Parses text as a template for key `what`; NULL after an error at line. */
struct template *config_rule_template(struct ini_doc *doc, int line, const char *what,
                                      const char *text);
/* Appends entry e as a templated value named name to (*arr, *n). */
void config_rule_param_add(struct ini_doc *doc, const struct ini_entry *e, const char *name,
                           struct config_rule_param **arr, size_t *n);
/* Frees n values and the array (secrets wiped); accepts NULL. */
void config_rule_params_free(struct config_rule_param *p, size_t n);
/*
 * e's value as an env:VAR or file:PATH secret (the file private, as for a
 * token), registered with log_add_secret. Returns 0 with *out (NULL with
 * CONFIG_SKIP_SECRETS), -EINVAL after an error at e's line, or 1 when the
 * value is neither form.
 */
int config_rule_secret(struct ini_doc *doc, const struct ini_entry *e, char **out);
/* Splits s on blanks outside {{ }} (`{{x | default "a b"}}` stays one
 * word). Returns a NULL-terminated strv (free with strv_free). */
char **config_split_words(const char *s, size_t *count);
/* Logs a warning when t reads `changes` but r fires only on created or
 * deleted events (which carry none). t may be NULL. */
void config_rule_warn_changes(const struct ini_doc *doc, const struct config_rule *r,
                              const struct template *t, const char *what, int line);

#endif

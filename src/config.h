/*
 * config: the user's INI file (conf/pollen.ini documents every key).
 *
 * Sections: [engine], [api], [location NAME], [trigger NAME] and
 * [rule NAME]. Each kind has a key table (type, default, range, parser) in
 * config.c; a new kind ([oauth NAME]) is a new table row, not new control
 * flow. A [rule] picks one of three key tables by its `do` value (catalog
 * action, http or exec), each the common rule keys plus that form's own.
 *
 * config_load reads the file with the INI rules of diag.h into a scratch
 * struct config and checks everything it can without the catalog: syntax,
 * unknown sections, values, ranges, names, locations, and secrets (token =
 * env:VAR or file:PATH; a literal token is rejected; a token file must be a
 * regular file owned by the euid with mode 0600 or stricter); for rules:
 * `on` (triggers exist, emit those types, share one location), `when`
 * (condition_parse), every value template (template_parse), http URLs and
 * headers, exec commands. Every error is collected as "FILE:LINE: message",
 * sorted by line; on any error nothing is returned. config_resolve then
 * links each trigger to its catalog definition and checks parameters,
 * for_each chains and page sizes, and links each catalog rule to its action
 * and checks its keys against the action's parameters and fields.
 *
 * Secrets: each resolved token is registered with log_add_secret and is never
 * part of any message, even when rejected.
 *
 * Ownership: struct config owns every string, array, template and condition
 * below; fields are public and read-only after load (templates and
 * conditions are read-only too, so rendering them needs no lock). Pointers
 * between its parts (location, parent, resolved) point into its own arrays;
 * def points into the catalog, which must outlive the config. Thread
 * context: startup/reload on the loop thread; loading reads files
 * (blocking), so it never runs while the loop polls.
 */
#ifndef POLLEN_CONFIG_H
#define POLLEN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "catalog.h"
#include "diag.h"
#include "log.h"

enum { CONFIG_SKIP_SECRETS = 1 }; /* flag for commands like tail that need only the state dir */

enum {
    CONFIG_EMIT_CREATED = 1u << 0,
    CONFIG_EMIT_UPDATED = 1u << 1,
    CONFIG_EMIT_DELETED = 1u << 2,
};

struct config_location {
    char *name;
    int line;
    char *id;                 /* HighLevel locationId */
    char *token;              /* resolved secret, or NULL with CONFIG_SKIP_SECRETS */
    unsigned rate_limit;      /* requests per rate_window */
    uint64_t rate_window_ms, daily_limit;
    double sweep_share;       /* share of the budget for_each sweeps may use */
};

/* A catalog parameter given in a [trigger] section (checked by config_resolve). */
struct config_param {
    char *name;
    char *value;
    int line;
};

struct config_trigger {
    char *name;
    int line;                 /* the section header */
    char *use;
    const struct catalog_trigger *def; /* set by config_resolve */
    char *location_name;
    struct config_location *location;  /* set by config_load */
    uint64_t every_ms;
    unsigned emit;            /* CONFIG_EMIT_CREATED|UPDATED|DELETED bits */
    bool first_poll_emit;     /* first_poll = emit (default baseline) */
    char **fields;            /* NULL when not set */
    char **ignore;            /* NULL when not set */
    char *for_each;
    struct config_trigger *parent; /* set by config_resolve */
    unsigned page_size;       /* 0 = definition default */
    struct config_param *params;
    size_t nparams;
    /* Lines of some keys, for config_resolve's messages (0 when not given). */
    int use_line, for_each_line, page_size_line;
};

struct template;
struct condition;

/* One TRIGGER:TYPE group of a rule's `on` (one entry per trigger; repeated
 * triggers are merged). */
struct config_rule_on {
    char *trigger;
    unsigned types;                   /* CONFIG_EMIT_* bits; TRIGGER:* sets all three */
    struct config_trigger *resolved;  /* set by config_load; never NULL after it */
};

enum config_rule_kind {
    CONFIG_RULE_CATALOG, /* do = a catalog action name */
    CONFIG_RULE_HTTP,    /* do = http */
    CONFIG_RULE_EXEC,    /* do = exec */
};

/*
 * A templated value: a catalog action's path parameter or body field (the
 * key is the parameter or field name), an http body.NAME member (name
 * without "body."), or an http header.NAME (name without "header.").
 * tmpl is parsed by config_load (template syntax needs no catalog);
 * config_resolve checks names and literal types against the action.
 *
 * How values become JSON (for the renderer): a template that is one
 * {{expr}} keeps its value's JSON type; a literal becomes the field's type
 * (boolean: true/false, integer/number: the number, json: the parsed JSON,
 * string_list: the text split on spaces, string: the text); any other
 * template renders to text, which a string_list field splits on spaces.
 * config_resolve rejects literals that are not valid for their type, and
 * mixed text-and-{{}} values for integer, number, boolean and json fields.
 */
struct config_rule_param {
    char *name;
    char *value;             /* the text as written */
    int line;
    struct template *tmpl;
};

struct config_rule {
    char *name;
    int line;                 /* the section header */
    struct config_rule_on *on;
    size_t non;               /* >= 1 */
    char *when;               /* the condition text, or NULL */
    int when_line;
    struct condition *cond;   /* parsed when, or NULL */
    char *action;             /* `do` as written: an action name, "http" or "exec" */
    int do_line;
    enum config_rule_kind kind;
    const struct catalog_action *def; /* CONFIG_RULE_CATALOG: set by config_resolve */
    bool confirm;
    unsigned max_attempts;    /* 1..100, default 8 */
    uint64_t backoff_ms, backoff_max_ms; /* default 5s, 15m; backoff <= backoff_max */
    uint64_t timeout_ms;      /* http and exec (default 30s); 0 for catalog actions */
    /* Catalog: path parameters and body fields. http: the body.NAME members
     * (none: the whole event is the body). exec: none. */
    struct config_rule_param *params;
    size_t nparams;
    struct config_rule_param *headers; /* http only */
    size_t nheaders;
    struct template *url;     /* http only: scheme and host are literal */
    char *method;             /* http only: GET POST PUT PATCH DELETE (default POST) */
    char *command;            /* exec only: absolute path of an executable file */
    struct template **args;   /* exec only: one argv element each (after command) */
    size_t nargs;
    struct config_location *location; /* the location of every `on` trigger */
};

struct config {
    char *path;               /* as given */
    char *dir;                /* absolute directory of the file */
    /* [engine] */
    char *state_dir;          /* absolute */
    uint64_t min_interval_ms;
    enum log_level log_level;
    char *catalog_dir;
    uint64_t retention_count, retention_age_ms, max_db_size; /* 0 = unlimited (count, age) */
    /* [api] */
    char *base_url;           /* no trailing slash */
    uint64_t timeout_ms, connect_timeout_ms, max_body;
    char *ca_file;            /* NULL: system default */
    struct config_location *locations;
    size_t nlocations;
    struct config_trigger *triggers;
    size_t ntriggers;
    struct config_rule *rules;
    size_t nrules;
};

/*
 * Loads and checks the file at path. Returns 0 and sets *out (free with
 * config_free), -EINVAL with errs filled (nothing returned), or -errno when
 * the file cannot be read (also in errs). flags: CONFIG_SKIP_SECRETS checks
 * token syntax but reads no environment variable or file (token = NULL).
 */
int config_load(const char *path, unsigned flags, struct config **out,
                struct config_errors *errs);

/*
 * Links each trigger to its catalog definition (def, parent) and checks: use
 * names a definition; required parameters are given (except the fan_out
 * parameter when for_each is set, which then must not be given); no unknown
 * keys; values parse as the declared type (json: valid JSON); for_each names
 * a trigger on the same location whose definition's resource equals this
 * definition's parent_resource, without cycles, and only definitions with
 * fan_out accept it; one of each require_one group is given; page_size is
 * within the definition's max. Rules with a catalog action: `do` names an
 * action; every key is one of its path parameters or body fields (not a
 * body.NAME the catalog binds, such as locationId); required ones are
 * given; literals are valid for the field's type; a destructive action has
 * confirm = yes. Returns 0, or -EINVAL with errs filled (then def and
 * parent are all reset to NULL; free the config).
 */
int config_resolve(struct config *cfg, const struct catalog *cat, struct config_errors *errs);

/* Frees the config (wiping tokens first); accepts NULL. */
void config_free(struct config *cfg);

/* The location/trigger/rule named name, or NULL. */
struct config_location *config_find_location(const struct config *cfg, const char *name);
struct config_trigger *config_find_trigger(const struct config *cfg, const char *name);
struct config_rule *config_find_rule(const struct config *cfg, const char *name);

/*
 * True when rule r fires for an event of type (one CONFIG_EMIT_* bit) from
 * trigger t (a pointer into the same config). The engine loops over
 * cfg->rules with this for each event; the rules themselves stay in file
 * order, so their actions are enqueued in the order the user wrote them.
 * The `when` condition is not evaluated here (condition_eval).
 */
bool config_rule_matches(const struct config_rule *r, const struct config_trigger *t,
                         unsigned type);

#endif

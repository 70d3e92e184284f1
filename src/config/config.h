/*
 * config: the user's INI file (conf/pollen.ini documents every key).
 *
 * Sections: [engine], [api], [api NAME], [oauth NAME], [location NAME],
 * [trigger NAME] and [rule NAME]. Each kind has a key table (type, default, range, parser)
 * in config.c ([rule]: rule.c) and a row in load.c's registry of kinds; a
 * new kind is a new table and row, not new control flow. A [rule] takes
 * the common rule keys plus those of its action kind, picked by its `do`
 * value among the kinds config_load is given (rule_kind.h: the sinks
 * define them; a catalog action is the fallback). The module's files are
 * listed in config_int.h.
 *
 * config_load reads the file with the INI rules of inifile.h into a scratch
 * struct config and checks everything it can without the catalog: syntax,
 * unknown sections, values, ranges, names, locations, and secrets (token =
 * env:VAR or file:PATH; a literal token is rejected; a token file must be a
 * regular file owned by the euid with mode 0600 or stricter); for rules:
 * `on` (triggers exist, emit those types, share one location), `when`
 * (condition_parse), every value template (template_parse), and what each
 * action kind checks of its own keys (http URLs and headers, exec
 * commands). Every error is collected as "FILE:LINE: message",
 * sorted by line; on any error nothing is returned. config_resolve then
 * links each trigger to its catalog definition and checks parameters,
 * for_each chains and page sizes, links each catalog rule to its action
 * and checks its keys against the action's parameters and fields, and
 * checks scopes (below).
 *
 * Credentials. A [location] has exactly one of `token` (a private
 * integration token, env:VAR or file:PATH) or `oauth = NAME` (an [oauth
 * NAME] section: a marketplace app's client_id, client_secret, scopes,
 * redirect_uri, user_type, token_store, authorize_url, refresh_margin).
 * client_secret is env:VAR or file:PATH (a private file, as for tokens); a
 * literal is accepted only when the config file itself is owned by the
 * euid with mode 0600 or stricter. A Location credential (user_type =
 * Location) belongs to one sub-account, so at most one [location] may use
 * it; a Company (agency) credential may serve many, the engine getting each
 * one's token through /oauth/locationToken. The token store file (access
 * and refresh token, expiry, granted scope; written by the oauth module,
 * never by config) defaults to <state_dir>/oauth-NAME.json.
 *
 * Every location: `location = *` in [trigger NAME] makes config_load expand
 * the section into one struct config_trigger per [location] (file order),
 * named NAME@LOCATION (so events carry trigger "NAME@LOCATION"; each has
 * its own snapshot and uses its own location's rate budget), with base =
 * NAME. A `for_each = P` on such a trigger binds each expansion to
 * P@LOCATION (P must be a `location = *` trigger too); an ordinary
 * trigger's for_each = P, P being `location = *`, binds to P@(its
 * location). A rule whose `on` names NAME
 * gets one on-entry per expansion (trigger "NAME@LOCATION"), fires for all
 * of them, and runs its action on the event's location: its `location` is
 * NULL and config_rule_location() gives the location per event. A rule's
 * triggers are either all `location = *` ones or all poll one location.
 * `on = NAME@LOCATION` names a single expansion (an ordinary rule on that
 * location). config_find_trigger(NAME) finds no expansion: NAME itself is
 * not a trigger after loading.
 *
 * The user's own API: an [api NAME] (userapi.c) is an HTTP API of the
 * user's (base_url: https, or http to loopback; `auth = env:VAR|file:PATH`
 * sent as `auth_header: auth_scheme VALUE`; its own rate limit and
 * timeout) with its own catalog directory (`catalog = DIR`: triggers/ and
 * actions/ in the product catalog's format, loaded by config_resolve with
 * catalog_load_api: no Version header, scope, {location} or {company}). A
 * [trigger] with `api = NAME` polls it: its `use` names a definition of
 * that catalog, and it has no location (location and company are refused
 * with it). Its events carry "api": NAME instead of "location".
 *
 * Scopes (config_resolve): every trigger's catalog scope, and every catalog
 * rule action's scope, must be granted to its location's OAuth credential:
 * the `scope` of the credential's token store file when it exists (and is
 * readable), else the configured `scopes`. Static tokens are not checked
 * (their scopes are unknown). A for_each trigger whose definition names a
 * batch listing whose scope the credential lacks is not an error: it gets
 * batch_off (one parent record per request). A token store with group/other permission
 * bits, another owner or a symbolic link is an error here too (the engine
 * refuses it).
 *
 * Secrets: each resolved token and client_secret (even a rejected literal)
 * is registered with log_add_secret and is never part of any message.
 *
 * Ownership: struct config owns every string, array, template and condition
 * below; fields are public and read-only after load (templates and
 * conditions are read-only too, so rendering them needs no lock). Pointers
 * between its parts (location, oauth, parent, resolved) point into its own
 * arrays; def points into the catalog, which must outlive the config.
 * Thread context: startup/reload on the loop thread; loading reads files
 * (blocking), so it never runs while the loop polls.
 */
#ifndef POLLEN_CONFIG_H
#define POLLEN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "catalog.h"
#include "inifile.h"
#include "event.h"
#include "log.h"
#include "rule_kind.h"

/* Longest trigger name after `location = *` expansion: NAME@LOCATION. Size
 * buffers that hold a trigger name (event records, store keys) with this. */
#define CONFIG_TRIGGER_NAME_MAX (2 * INI_NAME_MAX + 1)

enum { CONFIG_SKIP_SECRETS = 1 }; /* flag for commands like tail that need only the state dir */

/* Most triggers after `location = *` expansion (triggers x locations), so a
 * small file cannot make the engine allocate millions of pollers. */
#define CONFIG_TRIGGERS_MAX 10000

/* An OAuth 2.0 marketplace app credential: [oauth NAME]. */
struct config_oauth {
    char *name;
    int line;                 /* the section header */
    char *client_id;          /* NULL with CONFIG_SKIP_SECRETS when given as env: or file: */
    char *client_secret;      /* resolved secret, or NULL with CONFIG_SKIP_SECRETS */
    char **scopes;            /* requested scopes: NULL-terminated, at least one */
    char *redirect_uri;       /* https://..., or http:// to a loopback host with a port */
    char *user_type;          /* "Location" or "Company" */
    char *token_store;        /* absolute path */
    char *authorize_url;      /* the chooselocation page, as written (no query) */
    uint64_t refresh_margin_ms; /* refresh this long before expiry (10s..12h) */
};

struct config_location {
    char *name;
    int line;
    char *id;                 /* HighLevel locationId */
    /* Exactly one of token (a static token) and oauth_name is set. */
    char *token;              /* resolved secret, or NULL with CONFIG_SKIP_SECRETS or oauth */
    char *oauth_name;         /* `oauth = NAME`, or NULL */
    struct config_oauth *oauth; /* the [oauth NAME] it names, or NULL */
    char *company_id;         /* `company_id`: the companyId {company} bindings send when
                               * the credential has none (static tokens), or NULL; a
                               * [company]'s id */
    bool is_company;          /* a [company NAME] section (M15): id is the companyId, the
                               * credential an agency one; only agency triggers use it */
    unsigned rate_limit;      /* requests per rate_window */
    uint64_t rate_window_ms, daily_limit;
    double sweep_share;       /* share of the window budget for_each sweeps may use */
    double sweep_daily_share; /* share of daily_limit for_each sweeps may use */
};

/* A user's own API: [api NAME]. */
struct config_api {
    char *name;
    int line;                 /* the section header */
    char *base_url;           /* no trailing slash */
    char *auth;               /* resolved secret, or NULL with CONFIG_SKIP_SECRETS */
    char *auth_header;        /* the header carrying it (default Authorization) */
    char *auth_scheme;        /* its prefix (default Bearer); "" for `auth_scheme = none` */
    unsigned rate_limit;      /* requests per rate_window */
    uint64_t rate_window_ms, daily_limit;
    uint64_t timeout_ms;      /* each request's total time */
    char *catalog_dir;        /* absolute */
    struct catalog *catalog;  /* loaded by config_resolve (owned), or NULL */
};

/* A catalog parameter given in a [trigger] section (checked by config_resolve). */
struct config_param {
    char *name;
    char *value;
    int line;
};

struct config_trigger {
    char *name;               /* NAME, or NAME@LOCATION for an expansion of location = * */
    char *base;               /* location = *: NAME; NULL for an ordinary trigger */
    int line;                 /* the section header */
    char *use;
    const struct catalog_trigger *def; /* set by config_resolve */
    bool batch_off;           /* set by config_resolve: the OAuth credential lacks the scope
                               * of def->batch_def, so its parents are read one at a time */
    char *location_name;      /* the [location] or, with `company = NAME`, the [company] */
    char *company_name;       /* `company = NAME` (agency definitions), or NULL */
    char *api_name;           /* `api = NAME` (a user's own API), or NULL */
    struct config_api *api;   /* the [api NAME] it names (set by config_load), or NULL;
                               * then location is NULL */
    struct config_location *location;  /* set by config_load */
    uint64_t every_ms;
    uint64_t reconcile_ms;    /* `reconcile`: full enumerations at most this often; 0 = the
                               * kind's default (a for_each child: 1 day) */
    unsigned emit;            /* EVENT_TYPE_CREATED|UPDATED|DELETED bits */
    bool first_poll_emit;     /* first_poll = emit (default baseline) */
    char **fields;            /* NULL when not set */
    char **ignore;            /* NULL when not set */
    char *for_each;           /* for an expansion: PARENT@LOCATION */
    struct config_trigger *parent; /* set by config_resolve */
    unsigned page_size;       /* 0 = definition default */
    uint64_t watermark_lag_ms; /* incremental cycles re-read this far behind the watermark */
    bool full_round_each;     /* `full_round = each`: a for_each child's full rounds read one
                               * parent record at a time even where a batch listing exists */
    struct config_param *params;
    size_t nparams;
    /* Lines of some keys, for config_resolve's messages (0 when not given). */
    int use_line, for_each_line, page_size_line, reconcile_line, watermark_lag_line;
    int full_round_line, api_line;
};

struct template;
struct condition;

/* One TRIGGER:TYPE group of a rule's `on` (one entry per trigger; repeated
 * triggers are merged; a `location = *` trigger gives one entry per
 * expansion). */
struct config_rule_on {
    char *trigger;                    /* the trigger's name (NAME@LOCATION for expansions) */
    unsigned types;                   /* EVENT_TYPE_* bits; TRIGGER:* sets all three */
    struct config_trigger *resolved;  /* set by config_load; never NULL after it */
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
 * string_list: the text split on spaces and commas, string: the text); any
 * other template renders to text, which a string_list field splits at the
 * separators of its literal text only. A value from the event is never split
 * or parsed: a string for a string_list field is one element, a string for a
 * json field stays a string (`| split`, `| parse_json` do it on purpose).
 * config_resolve rejects literals that are not valid for their type, and
 * mixed text-and-{{}} values for integer, number, boolean and json fields.
 */
struct config_rule_param {
    char *name;
    char *value;             /* the text as written */
    int line;
    struct template *tmpl;   /* NULL for a secret header */
    /* header.NAME = env:VAR | file:PATH (F16): not a template; the value is
     * read at load (file mode 0600, as for a token), registered with
     * log_add_secret, and added only when the request is sent: outbox
     * entries, dead letters and --dry-run hold "***" and the reference. */
    bool is_secret;
    char *secret;            /* the resolved value; NULL with CONFIG_SKIP_SECRETS */
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
    /* The action kind `do` picked (borrowed from config_load's list, or
     * &config_rule_catalog), and its keys' struct (kind->conf_size bytes,
     * owned; NULL when the kind has none): the sink that renders the rule
     * reads it, config never does. */
    const struct config_rule_kind *kind;
    void *sink_conf;
    const struct catalog_action *def; /* catalog actions: set by config_resolve */
    bool confirm;
    unsigned max_attempts;    /* 1..100, default 8 */
    uint64_t backoff_ms, backoff_max_ms; /* default 5s, 15m; backoff <= backoff_max */
    uint64_t timeout_ms;      /* kinds with `timeout` (default 30s); else 0 */
    /* Catalog actions: path parameters and body fields. Other kinds: none. */
    struct config_rule_param *params;
    size_t nparams;
    /* The location of every `on` trigger; NULL when they are `location = *`
     * expansions (then see config_rule_location). */
    struct config_location *location;
};

struct config {
    char *path;               /* as given */
    char *dir;                /* absolute directory of the file */
    /* [engine] */
    char *state_dir;          /* absolute */
    uint64_t min_interval_ms;
    enum log_level log_level;
    enum log_format log_format; /* text or json (log.h) */
    char *catalog_dir;
    uint64_t retention_count, retention_age_ms, max_db_size; /* 0 = unlimited (count, age) */
    uint64_t dlq_retention_ms;  /* dead letters are deleted this long after they died; 0 = never */
    uint64_t shutdown_grace_ms; /* SIGTERM/SIGINT: how long actions in flight may finish */
    char *listen;             /* HOST:PORT of /metrics and /healthz, loopback; NULL: none */
    /* [api] */
    char *base_url;           /* no trailing slash */
    uint64_t timeout_ms, connect_timeout_ms, max_body;
    char *ca_file;            /* NULL: system default */
    char *proxy;              /* NULL: no proxy (the environment's *_proxy are ignored) */
    struct config_oauth *oauths;
    size_t noauths;
    struct config_location *locations;
    size_t nlocations;
    struct config_api *apis;  /* [api NAME] sections */
    size_t napis;
    struct config_trigger *triggers;
    size_t ntriggers;
    struct config_rule *rules;
    size_t nrules;
};

/*
 * Loads and checks the file at path. rule_kinds (borrowed, NULL-terminated;
 * must outlive the config) are the action kinds a [rule]'s `do` may name
 * besides a catalog action: the engine passes sink_rule_kinds(). Returns 0 and sets *out (free with
 * config_free), -EINVAL with errs filled (nothing returned), or -errno when
 * the file cannot be read (also in errs). flags: CONFIG_SKIP_SECRETS checks
 * the syntax of token, client_secret and client_id but reads no environment
 * variable or file (token = NULL, client_secret = NULL, and client_id = NULL
 * unless written literally); a literal client_secret is still checked
 * against the file's permissions.
 */
int config_load(const char *path, unsigned flags,
                const struct config_rule_kind *const *rule_kinds, struct config **out,
                struct ini_errors *errs);

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
 * confirm = yes. Scopes: each trigger's and catalog rule's scope is granted
 * to the OAuth credential of its location (see the top of this file; reads
 * each credential's token store file, if any, with blocking calls).
 * Messages about `location = *` expansions name the section (NAME), once.
 * Returns 0, or -EINVAL with errs filled (then def and parent are all reset
 * to NULL; free the config).
 */
int config_resolve(struct config *cfg, const struct catalog *cat, struct ini_errors *errs);

/*
 * What `pollen run`, `check` and a SIGHUP reload load: config_load, then the
 * catalog its [engine] catalog names, then config_resolve. Returns 0, or
 * the first failure's code with errs filled; *cfg and *cat are set to what
 * loaded (NULL otherwise) and the caller frees both either way (a config
 * with errs->count > 0 is never to be used).
 */
int config_load_resolved(const char *path, unsigned flags,
                         const struct config_rule_kind *const *rule_kinds, struct config **cfg,
                         struct catalog **cat, struct ini_errors *errs);

/* True for the keys a [trigger] section reserves (use, every, ...); catalog
 * parameters must not take these names. */
bool config_is_trigger_key(const char *name);
/* True for the keys every [rule] section reserves (on, when, do, confirm,
 * max_attempts, backoff, backoff_max); action parameters and fields must
 * not take these names, since a rule sets them as plain keys. */
bool config_is_rule_key(const char *name);
/* Both, for catalog_load: the catalog must not define parameters or
 * fields under these names. */
extern const struct catalog_reserved config_reserved_keys;

/* Frees the config (wiping tokens first); accepts NULL. */
void config_free(struct config *cfg);

/* The location/oauth credential/trigger/rule named name, or NULL. */
struct config_location *config_find_location(const struct config *cfg, const char *name);
struct config_oauth *config_find_oauth(const struct config *cfg, const char *name);
struct config_api *config_find_api(const struct config *cfg, const char *name);
struct config_trigger *config_find_trigger(const struct config *cfg, const char *name);
struct config_rule *config_find_rule(const struct config *cfg, const char *name);

/*
 * True when rule r fires for an event of type (one EVENT_TYPE_* bit) from
 * trigger t (a pointer into the same config). The engine loops over
 * cfg->rules with this for each event; the rules themselves stay in file
 * order, so their actions are enqueued in the order the user wrote them.
 * The `when` condition is not evaluated here (condition_eval).
 */
bool config_rule_matches(const struct config_rule *r, const struct config_trigger *t,
                         unsigned type);

/*
 * The location whose token rule r's action runs with, for an event of the
 * trigger named event_trigger (the event's "trigger" member): r->location
 * for an ordinary rule; for a rule on `location = *` triggers, the location
 * of that expansion. NULL when r is NULL, or when r's location depends on
 * the event and event_trigger is not one of r's triggers. Borrowed from cfg.
 */
const struct config_location *config_rule_location(const struct config *cfg,
                                                   const struct config_rule *r,
                                                   const char *event_trigger);

#endif

/*
 * cli: see cli.h.
 *
 * Every command is a row of `commands` (at the end): its name, its --help
 * text, the options it takes and the function that does its work. The
 * options are rows too (name, short letter, what kind of value, where in
 * struct args it goes), so one parser, parse_options, serves every command
 * and a command function only takes its positional arguments, loads the
 * configuration it needs (load) and does its job.
 */
#include "cli.h"

#include <assert.h>
#include <errno.h>
#include <curl/curl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "catalog.h"
#include "catalog_show.h"
#include "config.h"
#include "engine.h"
#include "failpoint.h"
#include "json.h"
#include "orphans.h"
#include "outbox.h"
#include "paths.h"
#include "queues.h"
#include "registry.h"
#include "subproc.h"
#include "store.h"
#include "log.h"
#include "status.h"
#include "tail.h"
#include "util.h"
#include "version.h"

static const char usage_main[] =
    "usage: pollen COMMAND [options]\n"
    "\n"
    "pollen polls the HighLevel (GoHighLevel) API v2, diffs what it sees against\n"
    "snapshots, and records every created, updated and deleted record as an event.\n"
    "\n"
    "commands:\n"
    "  run      -c FILE [--once | --dry-run] [--log-level LEVEL]\n"
    "           run the engine headless in the foreground (logs on stderr)\n"
    "  check    -c FILE\n"
    "           validate the configuration and the catalog; print FILE:LINE: problem\n"
    "  tail     -c FILE [-f] [-n N] [--since TIME] [--from SEQ] [--trigger NAME]\n"
    "           [--type TYPE]... [--limit N]\n"
    "           print events as NDJSON in seq order; -f keeps following\n"
    "  catalog  [triggers|actions|NAME] [-c FILE [--api NAME] | --catalog DIR]\n"
    "           list the shipped trigger and action definitions, or show one\n"
    "  dlq      list [--json] | retry ID|--all | drop ID -c FILE\n"
    "           inspect and handle the dead-letter store of failed actions\n"
    "  outbox   list [--json] -c FILE\n"
    "           show the actions waiting to be sent: pending, retrying, in flight\n"
    "  auth     login -c FILE NAME [--code CODE] | status -c FILE\n"
    "           authorize an [oauth NAME] credential; show what each credential is\n"
    "  purge    -c FILE\n"
    "           delete the state of triggers no longer in the configuration\n"
    "  status   -c FILE [--json]\n"
    "           how each trigger, location, the outbox and the database are doing\n"
    "\n"
    "`pollen COMMAND --help` describes each command. `pollen --version` prints the version,\n"
    "the build's features and the versions of its libraries.\n"
    "exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error\n";

static const char usage_run[] =
    "usage: pollen run -c FILE [--once | --dry-run] [--log-level LEVEL]\n"
    "\n"
    "Runs the engine in the foreground until SIGINT or SIGTERM, which finish the\n"
    "page being recorded and exit 0. Logs go to stderr; events go to the event\n"
    "log in the state directory (read them with `pollen tail`).\n"
    "\n"
    "  -c, --config FILE     the configuration file (required)\n"
    "      --once            run one complete cycle of every trigger (one sweep round\n"
    "                        of every for_each trigger), give every action that\n"
    "                        became due its attempt, then exit (1 if a cycle failed)\n"
    "      --dry-run         like --once, but record nothing and send no action: print\n"
    "                        each request the rules would send as a JSON line on stdout\n"
    "      --log-level LEVEL error, warn, info or debug (overrides [engine] log_level)\n"
    "  -h, --help            this text\n"
    "\n"
    "POLLEN_LOG_FORMAT=text|json in the environment overrides [engine] log_format\n"
    "and also applies to the problems that keep the configuration from loading.\n";

static const char usage_check[] =
    "usage: pollen check -c FILE\n"
    "\n"
    "Validates the configuration (every section and key, secrets references and\n"
    "their permissions, durations, ranges) and the catalog definitions it uses.\n"
    "Prints `FILE:LINE: what is wrong` for each problem and exits 2, or prints a\n"
    "summary and exits 0, then a notice for each trigger no longer configured whose\n"
    "state the state directory still holds (see `pollen purge`). Nothing is\n"
    "contacted and nothing is written.\n"
    "\n"
    "  -c, --config FILE     the configuration file (required)\n"
    "  -h, --help            this text\n";

static const char usage_purge[] =
    "usage: pollen purge -c FILE\n"
    "\n"
    "Deletes from the state directory what it keeps for triggers that are no\n"
    "longer in the configuration (renamed or removed [trigger] sections, or a\n"
    "trigger moved to another location): their snapshots, their state and their\n"
    "fan-out queues. `pollen check` lists them. Events, the outbox and dead\n"
    "letters are kept. The engine must be stopped (exit 2 while it runs).\n"
    "\n"
    "  -c, --config FILE     the configuration file (required)\n"
    "  -h, --help            this text\n";

static const char usage_status[] =
    "usage: pollen status -c FILE [--json]\n"
    "\n"
    "Shows, beside a running engine or without one (it only reads the state\n"
    "directory, and never takes the engine's lock): per trigger its state (never\n"
    "run, baseline, running, idle, backing off, stopped by auth), its last cycle\n"
    "(when, how long, records, events, requests, outcome and error with traceId),\n"
    "next due, failures in a row, watermark and reconcile where incremental; per\n"
    "location its requests in the rate window and the last 24 h against the\n"
    "limits; the outbox, dead letters, event log, database size and open readers.\n"
    "\n"
    "  -c, --config FILE     the configuration file\n"
    "      --json            one JSON object (fields: README, `pollen status`)\n"
    "  -h, --help            this text\n"
    "\n"
    "exit codes: 0 healthy (a trigger that never ran too), 1 a trigger's last cycle\n"
    "failed or its credential was refused (or the state cannot be read), 2 usage or\n"
    "configuration error\n";

static const char usage_tail[] =
    "usage: pollen tail -c FILE [-f] [-n N] [--since TIME] [--from SEQ] [--trigger NAME]\n"
    "                   [--type TYPE]... [--limit N]\n"
    "\n"
    "Prints events from the state directory's event log as NDJSON, one object per\n"
    "line, in seq order. Works while the engine runs (a separate process). A state\n"
    "directory that does not exist yet exits 2 (with -f, tail says so and waits for\n"
    "the engine to create it); so does a --trigger that is neither configured nor\n"
    "in the log.\n"
    "\n"
    "  -c, --config FILE     the configuration file (its [engine] state_dir is read)\n"
    "  -f, --follow          keep printing new events until interrupted\n"
    "  -n, --last N          start at the last N matching events (then stop, or\n"
    "                        follow with -f)\n"
    "      --since TIME      only events at or after TIME: ISO-8601 (2026-12-07T10:00:00Z,\n"
    "                        2026-12-07; no zone means UTC) or a time ago (10m, 2h, 1d)\n"
    "      --from SEQ        start at this seq (default 1: the oldest kept event)\n"
    "      --trigger NAME    only events of this [trigger NAME]\n"
    "      --type TYPE       only events of this type (created, updated, deleted, touched,\n"
    "                        action.succeeded, action.failed, action.dead,\n"
    "                        auth.failed); repeat it for any of several\n"
    "      --limit N         stop after N events\n"
    "  -h, --help            this text\n";

static const char usage_catalog[] =
    "usage: pollen catalog [triggers|actions|NAME] [-c FILE [--api NAME] | --catalog DIR]\n"
    "\n"
    "Lists the catalog definitions (all, or only the triggers or the actions):\n"
    "name, kind, method, path, scope and title, under a header row. With NAME,\n"
    "shows that definition in detail: for a trigger its request, Version header,\n"
    "scope, parameters and fixed bindings, where the records are, id and update\n"
    "fields, pagination, confirm_delete and for_each; for an action its request,\n"
    "parameters and body fields, result, and the idempotent, destructive and\n"
    "gone_ok flags. An unknown NAME exits 2. The catalog is read from the\n"
    "configuration's [engine] catalog, from DIR, or from the installed catalog\n"
    "(" POLLEN_CATALOG_DIR "; the source tree for a binary run from its build\n"
    "directory); with --api NAME, the catalog of the configuration's [api NAME]\n"
    "(your own API's definitions).\n"
    "\n"
    "  -c, --config FILE     read the catalog location from this configuration\n"
    "      --catalog DIR     the directory holding triggers/ and actions/\n"
    "      --api NAME        the catalog of [api NAME] of the configuration (-c)\n"
    "  -h, --help            this text\n";

static const char usage_dlq[] =
    "usage: pollen dlq list [--json] -c FILE\n"
    "       pollen dlq retry ID|--all -c FILE\n"
    "       pollen dlq drop ID -c FILE\n"
    "\n"
    "The dead-letter store holds actions that failed permanently (a 4xx other\n"
    "than 408/429, or every attempt used up). `list` prints them as a table (id,\n"
    "when it died, rule, action, attempts, the error shortened), or with --json as\n"
    "stored, one JSON object per line (the rendered request, attempts, last status\n"
    "and the whole error). `retry ID` moves one back to the outbox with its\n"
    "attempts reset; the running engine sends it within a second. `retry --all`\n"
    "does so for every dead letter that has a request to send (and names those\n"
    "that have none). `drop` deletes one. Without a state directory: exit 2.\n"
    "\n"
    "  -c, --config FILE     the configuration file (its [engine] state_dir is used)\n"
    "      --json            list: the stored entries as JSON lines\n"
    "      --all             retry: every dead letter\n"
    "  -h, --help            this text\n";

static const char usage_outbox[] =
    "usage: pollen outbox list [--json] -c FILE\n"
    "\n"
    "Lists the actions in the outbox, in id order, as a table: id, state (pending:\n"
    "not tried yet; retrying: failed, waiting for its next attempt; in flight:\n"
    "being sent), rule, action, attempts made, when the next attempt is due (now\n"
    "or a time), and the last error shortened; then the count of each state. With\n"
    "--json, the entries as stored, one JSON object per line (next_at is wall ms).\n"
    "Works beside a running engine. Without a state directory: exit 2.\n"
    "\n"
    "  -c, --config FILE     the configuration file (its [engine] state_dir is used)\n"
    "      --json            the stored entries as JSON lines\n"
    "  -h, --help            this text\n";

static const char usage_auth[] =
    "usage: pollen auth login -c FILE NAME [--code CODE] [--timeout DURATION]\n"
    "       pollen auth status -c FILE\n"
    "\n"
    "login runs the OAuth authorization-code flow for [oauth NAME]: it prints the\n"
    "HighLevel chooselocation URL with the configured scopes; open it, choose the\n"
    "location (or agency) and approve. The browser is redirected to redirect_uri,\n"
    "which pollen receives on a listener bound to that loopback address only.\n"
    "On a headless machine, open the URL elsewhere and pass the code from the\n"
    "redirect with --code. The code is exchanged at POST /oauth/token and the\n"
    "token pair is stored in token_store (mode 0600, written atomically).\n"
    "status shows, per credential, its user type, location or company, scopes and\n"
    "when the access token expires. No token is ever printed.\n"
    "\n"
    "  -c, --config FILE     the configuration file\n"
    "      --code CODE       the authorization code (skips the listener)\n"
    "      --timeout DUR     how long to wait for the redirect (default 10m)\n"
    "  -h, --help            this text\n";

/*
 * What the options of a command line said, filled in by parse_options. A
 * command reads only the fields of the options it lists; the others keep
 * the defaults run_command sets.
 */
struct args {
    const struct command *cmd;
    int argc;    /* the command's own argv: argv[0] is its name, and the */
    char **argv; /* positional arguments are argv[optind..] after parsing */
    const char *config;        /* -c, --config FILE */
    struct engine_options run; /* run --once, --dry-run */
    const char *log_level;     /* run --log-level (checked after the arguments) */
    struct tail_options tail;  /* tail -f, -n, --from, --trigger, --type, --limit */
    const char *last;          /* tail -n (parsed by cmd_tail: 0 is not "no -n") */
    const char *since;         /* tail --since (parsed by cmd_tail) */
    const char *catalog_dir;   /* catalog --catalog */
    const char *api;           /* catalog --api */
    const char *code;          /* auth --code */
    bool json;                 /* dlq list, outbox list, status --json */
    bool all;                  /* dlq retry --all */
    uint64_t timeout_ms;       /* auth --timeout */
};

/* What an option's value must be; each kind has its own usage error. */
enum arg_kind {
    ARG_FLAG,       /* no value: sets a bool */
    ARG_STRING,     /* const char *: the value as given */
    ARG_NUMBER,     /* uint64_t: a whole number >= 0 */
    ARG_DURATION,   /* uint64_t: a duration other than 0, in ms */
    ARG_EVENT_TYPE, /* struct tail_types: adds one of the event types events carry */
};

struct option_spec {
    const char *name; /* the long name: --name */
    char letter;      /* the short name (-x), or 0 for none */
    enum arg_kind kind;
    size_t offset;    /* where the value goes in struct args */
    const char *noun; /* ARG_NUMBER: what the value is, for "--NAME needs NOUN" */
};

#define AT(field) offsetof(struct args, field)

struct command {
    const char *name;
    const char *usage;                 /* --help; also follows every usage error */
    const struct option_spec *options; /* ends with {0}; -h, --help is added */
    bool needs_config;                 /* without -c FILE: "NAME needs -c FILE" */
    int (*fn)(struct args *a);         /* returns the exit code */
};

/* The most options a command has, counting --help (tail: 9). */
#define MAX_OPTIONS 12

/*
 * getopt_long returns an option's short letter, or '?' for a bad option.
 * Options without a letter return ROW_BASE + their row instead: no
 * character is 256 or more, so that value cannot be taken for a letter.
 */
enum { ROW_BASE = 256 };

/* parse_options: the options were fine, the command goes on. */
enum { GO_ON = -1 };

static int usage_error(const struct args *a, const char *fmt, ...) ATTR_PRINTF(2, 3);

static int usage_error(const struct args *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pollen: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", a->cmd->usage);
    return CLI_EXIT_USAGE;
}

static int parse_u64(const char *s, uint64_t *out)
{
    long long v = 0;
    if (util_parse_int(s, 0, INT64_MAX, &v) != 0) {
        return -EINVAL;
    }
    *out = (uint64_t)v;
    return 0;
}

static bool known_event_type(const char *type)
{
    /* The usage error of ARG_EVENT_TYPE lists these too: keep both alike. */
    static const char *const types[] = {
        "created", "updated", "deleted", "touched", "action.succeeded", "action.failed",
        "action.dead", "auth.failed",
    };
    for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
        if (strcmp(type, types[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Checks one option's value and stores it. Returns 0, or the exit code. */
static int store_option(struct args *a, const struct option_spec *o, const char *value)
{
    /* void *: the offset comes from offsetof on a field of this very type. */
    void *field = (char *)a + o->offset;
    switch (o->kind) {
    case ARG_FLAG:
        *(bool *)field = true;
        return 0;
    case ARG_STRING:
        *(const char **)field = value;
        return 0;
    case ARG_NUMBER:
        if (parse_u64(value, (uint64_t *)field) != 0) {
            return usage_error(a, "--%s needs %s, not '%s'", o->name, o->noun, value);
        }
        return 0;
    case ARG_DURATION:
        if (util_parse_duration(value, (uint64_t *)field) != 0 || *(uint64_t *)field == 0) {
            return usage_error(a, "bad duration '%s' for --%s", value, o->name);
        }
        return 0;
    case ARG_EVENT_TYPE:
        if (!known_event_type(value)) {
            return usage_error(a,
                               "unknown event type '%s' (created, updated, deleted, touched, "
                               "action.succeeded, action.failed, action.dead, auth.failed)",
                               value);
        }
        return tail_types_add(field, value); /* the 8 types fit: never full */
    }
    return 0;
}

/* What getopt_long returns for the option in row `row` of opts. */
static int option_value(const struct option_spec *opts, size_t row)
{
    return opts[row].letter != 0 ? opts[row].letter : ROW_BASE + (int)row;
}

/*
 * Parses the options of a->argv into a, in the order given: a bad value
 * stops at once, as does -h (so `--help --from x` helps, `--from x --help`
 * fails). getopt_long moves the positional arguments behind the options.
 * Returns GO_ON, or the exit code: 0 after --help, 2 after a usage error.
 */
static int parse_options(struct args *a)
{
    const struct command *cmd = a->cmd;
    /* The getopt_long tables, in the order of the rows: that order shows in
     * its "is ambiguous; possibilities: ..." message. */
    struct option longopts[MAX_OPTIONS + 1];
    char shortopts[2 * MAX_OPTIONS + 1];
    size_t n = 0;
    size_t s = 0;
    for (const struct option_spec *o = cmd->options; o->name != NULL; o++, n++) {
        assert(n + 1 < MAX_OPTIONS); /* room for this row and --help */
        int has_arg = o->kind == ARG_FLAG ? no_argument : required_argument;
        longopts[n] = (struct option){o->name, has_arg, NULL, option_value(cmd->options, n)};
        if (o->letter != 0) {
            shortopts[s++] = o->letter;
            if (has_arg == required_argument) {
                shortopts[s++] = ':';
            }
        }
    }
    longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[n] = (struct option){NULL, 0, NULL, 0};
    shortopts[s++] = 'h';
    shortopts[s] = '\0';

    int c;
    while ((c = getopt_long(a->argc, a->argv, shortopts, longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(cmd->usage, stdout);
            return CLI_EXIT_OK;
        }
        size_t row = 0;
        while (cmd->options[row].name != NULL && option_value(cmd->options, row) != c) {
            row++;
        }
        if (cmd->options[row].name == NULL) {
            /* A bad option ('?'): getopt_long has said what was wrong. */
            fputs(cmd->usage, stderr);
            return CLI_EXIT_USAGE;
        }
        int rc = store_option(a, &cmd->options[row], optarg);
        if (rc != 0) {
            return rc;
        }
    }
    return GO_ON;
}

/* The next positional argument, or NULL when there is none. */
static const char *next_arg(struct args *a)
{
    return optind < a->argc ? a->argv[optind++] : NULL;
}

/*
 * After a command took the positional arguments it knows: none may be left,
 * and -c FILE must be there if the command needs it. Returns 0, or the exit
 * code.
 */
static int end_of_args(const struct args *a)
{
    if (optind < a->argc) {
        return usage_error(a, "unexpected argument '%s'", a->argv[optind]);
    }
    if (a->cmd->needs_config && a->config == NULL) {
        return usage_error(a, "%s needs -c FILE", a->cmd->name);
    }
    return 0;
}

/* How much of the configuration a command needs. */
enum load_mode {
    LOAD_NO_SECRETS,   /* the file only: state_dir, catalog, names (nothing to send) */
    LOAD_WITH_SECRETS, /* also read the tokens and client secrets it references */
    LOAD_RESOLVED,     /* also load the catalog and resolve triggers and rules on it */
};

struct loaded {
    struct config *cfg;
    struct catalog *cat;
};

/*
 * Frees what a command loaded and the process-wide leftovers (registered
 * secrets, JSON scratch space), so that a leak checker sees a clean exit.
 */
static void unload(struct loaded *l)
{
    catalog_free(l->cat);
    config_free(l->cfg);
    *l = (struct loaded){NULL, NULL};
    log_clear_secrets();
    json_scratch_release();
}

/*
 * Prints and frees the problems collected while loading. Returns 0, or 2
 * when loading failed or found any problem: a configuration with problems
 * is never used.
 */
static int report_problems(int rc, struct ini_errors *errs)
{
    bool failed = rc != 0 || errs->count > 0;
    if (failed) {
        /* run holds the loader's warnings until it knows the log format:
         * they come first, as they always did. */
        log_release();
        if (log_get_format() == LOG_FORMAT_JSON) {
            for (size_t i = 0; i < errs->count; i++) {
                log_error("config", "%s", errs->items[i]);
            }
        } else {
            ini_errors_print(errs, stderr);
        }
    }
    ini_errors_free(errs);
    return failed ? CLI_EXIT_USAGE : CLI_EXIT_OK;
}

/* Loads the configuration at path as mode says. Returns 0, or the exit code. */
static int load(const char *path, enum load_mode mode, struct loaded *l)
{
    struct ini_errors errs = {0};
    *l = (struct loaded){NULL, NULL};
    unsigned flags = mode == LOAD_NO_SECRETS ? CONFIG_SKIP_SECRETS : 0;
    /* The action kinds a [rule] may name are the sinks' (registry.c). */
    int rc = mode == LOAD_RESOLVED
                 ? config_load_resolved(path, flags, sink_rule_kinds(), &l->cfg, &l->cat, &errs)
                 : config_load(path, flags, sink_rule_kinds(), &l->cfg, &errs);
    rc = report_problems(rc, &errs);
    if (rc != 0) {
        unload(l);
    }
    return rc;
}

/*
 * The start of a command that works on its configuration, once it took its
 * positional arguments: see end_of_args, then load. Returns 0, or the exit
 * code.
 */
static int prepare(struct args *a, enum load_mode mode, struct loaded *l)
{
    int rc = end_of_args(a);
    return rc != 0 ? rc : load(a->config, mode, l);
}

/*
 * POLLEN_LOG_FORMAT=text|json sets the log format from the start of `run`,
 * before the configuration is read: the problems that keep it from loading
 * can only be JSON this way. Set, it wins over [engine] log_format (one
 * stream never mixes formats). *set says whether it was set. Returns 0, or
 * the usage exit code for another value.
 */
static int log_format_from_env(bool *set)
{
    const char *value = getenv("POLLEN_LOG_FORMAT");
    enum log_format format;
    *set = value != NULL && value[0] != '\0';
    if (!*set) {
        return 0;
    }
    if (log_parse_format(value, &format) != 0) {
        fprintf(stderr, "pollen: POLLEN_LOG_FORMAT='%s' is neither text nor json\n", value);
        return CLI_EXIT_USAGE;
    }
    log_set_format(format);
    return 0;
}

static int cmd_run(struct args *a)
{
    int rc = end_of_args(a);
    if (rc != 0) {
        return rc;
    }
    enum log_level lvl;
    if (a->log_level != NULL && log_parse_level(a->log_level, &lvl) != 0) {
        return usage_error(a, "unknown log level '%s' (error, warn, info, debug)", a->log_level);
    }
    bool env_format;
    rc = log_format_from_env(&env_format);
    if (rc != 0) {
        return rc;
    }
    if (!env_format) {
        log_hold(); /* until the file's log_format is known */
    }
    struct loaded l;
    rc = load(a->config, LOAD_RESOLVED, &l);
    if (rc != 0) {
        if (log_get_format() == LOG_FORMAT_JSON) {
            log_error("config", "%s has errors; not starting (see `pollen check -c %s`)",
                      a->config, a->config);
        } else {
            fprintf(stderr, "pollen: %s has errors; not starting (see `pollen check -c %s`)\n",
                    a->config, a->config);
        }
        return rc;
    }
    if (!env_format) {
        log_set_format(l.cfg->log_format);
    }
    log_release();
    log_set_level(a->log_level != NULL ? lvl : l.cfg->log_level);
    a->run.config_path = a->config;
    a->run.log_level_fixed = a->log_level != NULL;
    rc = engine_run(l.cfg, &a->run);
    unload(&l);
    return rc;
}

/* check: one notice per trigger scope the store keeps but the file no longer has (F21). */
static void report_orphans(const char *path, const struct config *cfg)
{
    struct store *s = NULL;
    struct store_options so = {.readonly = true};
    if (!store_exists(cfg->state_dir) || store_open(cfg->state_dir, &so, &s) != 0) {
        return;
    }
    struct orphan_list l;
    if (orphans_find(s, cfg, &l) == 0) {
        for (size_t i = 0; i < l.count; i++) {
            printf("%s: note: the state directory keeps %llu entries of %s, a trigger/location "
                   "no longer configured; `pollen purge -c %s` deletes them\n",
                   path, (unsigned long long)l.items[i].keys, l.items[i].scope, path);
        }
        orphans_free(&l);
    }
    store_close(s);
}

static int cmd_check(struct args *a)
{
    struct loaded l;
    int rc = prepare(a, LOAD_RESOLVED, &l);
    if (rc != 0) {
        return rc;
    }
    printf("%s: ok: %zu location(s), %zu trigger(s), %zu rule(s); catalog %s (%zu triggers, "
           "%zu actions)\n",
           a->config, l.cfg->nlocations, l.cfg->ntriggers, l.cfg->nrules, l.cfg->catalog_dir,
           catalog_trigger_count(l.cat), catalog_action_count(l.cat));
    report_orphans(a->config, l.cfg);
    unload(&l);
    return CLI_EXIT_OK;
}

/* Deletes the orphaned state under the engine lock. Returns the exit code. */
static int purge_locked(const struct config *cfg)
{
    struct store *s = NULL;
    struct store_options so = {.max_size = cfg->max_db_size};
    int rc = store_open(cfg->state_dir, &so, &s);
    if (rc != 0) {
        fprintf(stderr, "pollen purge: cannot open %s: %s\n", cfg->state_dir, store_strerror(rc));
        return CLI_EXIT_RUNTIME;
    }
    uint64_t deleted = 0;
    rc = orphans_purge(s, cfg, &deleted);
    store_close(s);
    if (rc != 0) {
        fprintf(stderr, "pollen purge: stopped after deleting %llu entries: %s\n",
                (unsigned long long)deleted, store_strerror(rc));
        return CLI_EXIT_RUNTIME;
    }
    printf("purged %llu entries of triggers no longer configured\n", (unsigned long long)deleted);
    return CLI_EXIT_OK;
}

static int cmd_purge(struct args *a)
{
    struct loaded l;
    int rc = prepare(a, LOAD_RESOLVED, &l);
    if (rc != 0) {
        return rc;
    }
    if (!store_exists(l.cfg->state_dir)) {
        printf("nothing to purge: %s holds no state yet\n", l.cfg->state_dir);
        unload(&l);
        return CLI_EXIT_OK;
    }
    /* A running engine may run another configuration: never purge under it. */
    int fd = -1;
    char holder[128];
    rc = store_lock_engine(l.cfg->state_dir, &fd, holder, sizeof(holder));
    if (rc == -EWOULDBLOCK) {
        fprintf(stderr, "pollen purge: an engine (%s) is running on %s: stop it first\n", holder,
                l.cfg->state_dir);
        rc = CLI_EXIT_USAGE;
    } else if (rc != 0) {
        rc = CLI_EXIT_RUNTIME;
    } else {
        rc = purge_locked(l.cfg);
        store_unlock_engine(fd);
    }
    unload(&l);
    return rc;
}

/*
 * The end of a command whose output is data (tail, dlq list): if any of it
 * was lost (a full disk, an I/O error, found by the final flush or close),
 * exit 1 so that `pollen tail >> export && next-step` stops on a truncated
 * export (F18). rc is the command's own exit code; a failure it already
 * reported is not reported again.
 */
static int finish_output(const char *cmd, int rc)
{
    errno = 0;
    bool lost = fflush(stdout) != 0 || ferror(stdout);
    int err = errno;
    if (fclose(stdout) != 0 && !lost) {
        lost = true;
        err = errno;
    }
    if (!lost || rc != CLI_EXIT_OK) {
        return rc;
    }
    fprintf(stderr, "pollen %s: cannot write the output: %s\n", cmd,
            err != 0 ? strerror(err) : "write error");
    return CLI_EXIT_RUNTIME;
}

static int cmd_tail(struct args *a)
{
    struct loaded l;
    int rc = prepare(a, LOAD_NO_SECRETS, &l);
    if (rc != 0) {
        return rc;
    }
    a->tail.state_dir = l.cfg->state_dir;
    a->tail.check_trigger =
        a->tail.trigger != NULL && !tail_trigger_configured(l.cfg, a->tail.trigger);
    a->tail.has_last = a->last != NULL;
    if (a->last != NULL && parse_u64(a->last, &a->tail.last) != 0) {
        unload(&l);
        return usage_error(a, "--last needs a number, not '%s'", a->last);
    }
    if (a->since != NULL && tail_parse_since(a->since, util_wall_ms(), &a->tail.since_ms) != 0) {
        unload(&l);
        return usage_error(a, "bad --since '%s' (an ISO-8601 time such as 2026-12-07T10:00:00Z, "
                              "or a time ago such as 10m, 2h or 1d)",
                           a->since);
    }
    rc = tail_run(&a->tail);
    unload(&l);
    return finish_output("tail", rc);
}

static int cmd_status(struct args *a)
{
    struct loaded l;
    int rc = prepare(a, LOAD_RESOLVED, &l);
    if (rc != 0) {
        return rc;
    }
    rc = status_run(l.cfg, a->json, stdout);
    unload(&l);
    return finish_output("status", rc);
}

/* catalog: the list (what is NULL, "triggers" or "actions") or one definition. */
static int show_catalog(const struct catalog *cat, const char *what)
{
    bool triggers = what == NULL || strcmp(what, "triggers") == 0;
    bool actions = what == NULL || strcmp(what, "actions") == 0;
    if (triggers || actions) {
        catalog_show_list(cat, triggers, actions, stdout);
        return CLI_EXIT_OK;
    }
    if (catalog_show_one(cat, what, stdout) == 0) {
        return CLI_EXIT_OK;
    }
    const char *near = catalog_show_suggest(cat, what);
    fprintf(stderr, "pollen catalog: no trigger or action named '%s'%s%s%s (`pollen catalog` "
                    "lists them)\n",
            what, near != NULL ? "; did you mean '" : "", near != NULL ? near : "",
            near != NULL ? "'?" : "");
    return CLI_EXIT_USAGE;
}

/* pollen catalog -c FILE --api NAME: the catalog of the user's own API. */
static int catalog_of_api(struct args *a, const char *what)
{
    if (a->config == NULL || a->catalog_dir != NULL) {
        fprintf(stderr, "pollen catalog: --api NAME needs -c FILE (and no --catalog)\n");
        return CLI_EXIT_USAGE;
    }
    struct loaded l = {NULL, NULL};
    int rc = load(a->config, LOAD_NO_SECRETS, &l);
    if (rc != 0) {
        return rc;
    }
    const struct config_api *api = config_find_api(l.cfg, a->api);
    if (api == NULL) {
        fprintf(stderr, "pollen catalog: %s has no [api %s]\n", a->config, a->api);
        unload(&l);
        return CLI_EXIT_USAGE;
    }
    struct ini_errors errs = {0};
    rc = report_problems(catalog_load_api(api->catalog_dir, &config_reserved_keys, &l.cat, &errs),
                         &errs);
    if (rc == 0) {
        rc = show_catalog(l.cat, what);
    }
    unload(&l);
    return finish_output("catalog", rc);
}

static int cmd_catalog(struct args *a)
{
    const char *what = next_arg(a);
    int rc = end_of_args(a);
    if (rc != 0) {
        return rc;
    }
    if (a->api != NULL) {
        return catalog_of_api(a, what);
    }
    /* --catalog DIR wins over the configuration's [engine] catalog. */
    struct loaded l = {NULL, NULL};
    const char *dir = a->catalog_dir;
    if (dir == NULL && a->config != NULL) {
        rc = load(a->config, LOAD_NO_SECRETS, &l);
        if (rc != 0) {
            return rc;
        }
        dir = l.cfg->catalog_dir;
    }
    if (dir == NULL) {
        dir = paths_catalog_dir();
    }
    struct ini_errors errs = {0};
    rc = report_problems(catalog_load(dir, &config_reserved_keys, &l.cat, &errs), &errs);
    if (rc == 0) {
        rc = show_catalog(l.cat, what);
    }
    unload(&l);
    return finish_output("catalog", rc);
}

/* dlq list [--json] | retry ID | retry --all | drop ID (queues.c). */
static int cmd_dlq(struct args *a)
{
    const char *verb = next_arg(a);
    struct queues_options o = {.all = a->all, .json = a->json, .out = stdout};
    if (verb != NULL && strcmp(verb, "list") == 0) {
        o.verb = QUEUES_DLQ_LIST;
    } else if (verb != NULL && strcmp(verb, "retry") == 0) {
        o.verb = QUEUES_DLQ_RETRY;
    } else if (verb != NULL && strcmp(verb, "drop") == 0) {
        o.verb = QUEUES_DLQ_DROP;
    } else {
        return usage_error(a, "dlq needs list, retry ID|--all or drop ID");
    }
    if (a->json && o.verb != QUEUES_DLQ_LIST) {
        return usage_error(a, "--json goes with dlq list");
    }
    if (a->all && o.verb != QUEUES_DLQ_RETRY) {
        return usage_error(a, "--all goes with dlq retry");
    }
    if (o.verb != QUEUES_DLQ_LIST && !a->all) {
        const char *id_text = next_arg(a);
        if (id_text == NULL || parse_u64(id_text, &o.id) != 0) {
            return usage_error(a, "dlq %s needs the numeric id of a dead letter%s", verb,
                               o.verb == QUEUES_DLQ_RETRY ? " (or --all)" : "");
        }
    }
    struct loaded l;
    int rc = prepare(a, LOAD_NO_SECRETS, &l);
    if (rc != 0) {
        return rc;
    }
    rc = queues_run(l.cfg->state_dir, &o);
    unload(&l);
    return o.verb == QUEUES_DLQ_LIST ? finish_output("dlq list", rc) : rc;
}

/* outbox list [--json] (queues.c). */
static int cmd_outbox(struct args *a)
{
    const char *verb = next_arg(a);
    if (verb == NULL || strcmp(verb, "list") != 0) {
        return usage_error(a, "outbox needs list");
    }
    struct loaded l;
    int rc = prepare(a, LOAD_NO_SECRETS, &l);
    if (rc != 0) {
        return rc;
    }
    struct queues_options o = {.verb = QUEUES_OUTBOX_LIST, .json = a->json, .out = stdout};
    rc = queues_run(l.cfg->state_dir, &o);
    unload(&l);
    return finish_output("outbox list", rc);
}

static int cmd_auth(struct args *a)
{
    const char *verb = next_arg(a);
    const char *name = next_arg(a);
    if (verb == NULL || (strcmp(verb, "login") != 0 && strcmp(verb, "status") != 0)) {
        return usage_error(a, "auth needs login or status");
    }
    bool login = strcmp(verb, "login") == 0;
    if (login && name == NULL) {
        return usage_error(a, "auth login needs the NAME of an [oauth NAME]");
    }
    if (!login && name != NULL) {
        return usage_error(a, "unexpected argument '%s'", name);
    }
    /* status reads no secret; login needs the client secret. */
    struct loaded l;
    int rc = prepare(a, login ? LOAD_WITH_SECRETS : LOAD_NO_SECRETS, &l);
    if (rc != 0) {
        return rc;
    }
    if (login) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = auth_login(l.cfg, name, a->code, a->timeout_ms, stdout);
        curl_global_cleanup();
    } else {
        rc = auth_status(l.cfg, stdout);
    }
    unload(&l);
    return rc;
}

/*
 * The options of each command, in the order of its --help text. The order
 * also shows in getopt_long's "is ambiguous; possibilities:" message.
 */
static const struct option_spec run_opts[] = {
    {"config", 'c', ARG_STRING, AT(config), NULL},
    {"once", 0, ARG_FLAG, AT(run.once), NULL},
    {"dry-run", 0, ARG_FLAG, AT(run.dry_run), NULL},
    {"log-level", 0, ARG_STRING, AT(log_level), NULL},
    {0},
};

static const struct option_spec config_only_opts[] = {
    {"config", 'c', ARG_STRING, AT(config), NULL},
    {0},
};

static const struct option_spec tail_opts[] = {
    {"config", 'c', ARG_STRING, AT(config), NULL},
    {"follow", 'f', ARG_FLAG, AT(tail.follow), NULL},
    {"last", 'n', ARG_STRING, AT(last), NULL},
    {"since", 0, ARG_STRING, AT(since), NULL},
    {"from", 0, ARG_NUMBER, AT(tail.from), "a sequence number"},
    {"trigger", 0, ARG_STRING, AT(tail.trigger), NULL},
    {"type", 0, ARG_EVENT_TYPE, AT(tail.types), NULL},
    {"limit", 0, ARG_NUMBER, AT(tail.limit), "a number"},
    {0},
};

static const struct option_spec dlq_opts[] = {
    {"config", 'c', ARG_STRING, AT(config), NULL},
    {"json", 0, ARG_FLAG, AT(json), NULL},
    {"all", 0, ARG_FLAG, AT(all), NULL},
    {0},
};

static const struct option_spec outbox_opts[] = {
    {"config", 'c', ARG_STRING, AT(config), NULL},
    {"json", 0, ARG_FLAG, AT(json), NULL},
    {0},
};

static const struct option_spec status_opts[] = {
    {"config", 'c', ARG_STRING, AT(config), NULL},
    {"json", 0, ARG_FLAG, AT(json), NULL},
    {0},
};

static const struct option_spec catalog_opts[] = {
    {"config", 'c', ARG_STRING, AT(config), NULL},
    {"catalog", 0, ARG_STRING, AT(catalog_dir), NULL},
    {"api", 0, ARG_STRING, AT(api), NULL},
    {0},
};

static const struct option_spec auth_opts[] = {
    {"config", 'c', ARG_STRING, AT(config), NULL},
    {"code", 0, ARG_STRING, AT(code), NULL},
    {"timeout", 0, ARG_DURATION, AT(timeout_ms), NULL},
    {0},
};

static const struct command commands[] = {
    {"run", usage_run, run_opts, true, cmd_run},
    {"check", usage_check, config_only_opts, true, cmd_check},
    {"tail", usage_tail, tail_opts, true, cmd_tail},
    {"catalog", usage_catalog, catalog_opts, false, cmd_catalog},
    {"dlq", usage_dlq, dlq_opts, true, cmd_dlq},
    {"outbox", usage_outbox, outbox_opts, true, cmd_outbox},
    {"auth", usage_auth, auth_opts, true, cmd_auth},
    {"purge", usage_purge, config_only_opts, true, cmd_purge},
    {"status", usage_status, status_opts, true, cmd_status},
};

static int run_command(const struct command *cmd, int argc, char **argv)
{
    /* The defaults the --help texts give: tail --from 1, auth --timeout 10m. */
    struct args a = {
        .cmd = cmd,
        .argc = argc,
        .argv = argv,
        .tail = {.from = 1, .out = stdout},
        .timeout_ms = 600000,
    };
    /* getopt_long sees the command as argv[0]. */
    optind = 1;
    int rc = parse_options(&a);
    return rc != GO_ON ? rc : cmd->fn(&a);
}

/* `pollen __failpoints` (internal, for the test harness): the crash points
 * this build has, one a line; exit 1 when it has none. */
static int print_failpoints(void)
{
    size_t n;
    const char *const *names = failpoint_names(&n);
    if (n == 0) {
        fputs("pollen: this build has no failpoints (-Dfailpoints=disabled, or "
              "buildtype=release)\n",
              stderr);
        return CLI_EXIT_RUNTIME;
    }
    for (size_t i = 0; i < n; i++) {
        printf("%s\n", names[i]);
    }
    return CLI_EXIT_OK;
}

int cli_main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "__exec") == 0) {
        return subproc_exec_main(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "__failpoints") == 0) {
        return print_failpoints();
    }
    if (argc < 2) {
        fputs(usage_main, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        version_print(stdout);
        return finish_output("--version", CLI_EXIT_OK);
    }
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (strcmp(cmd, commands[i].name) == 0) {
            return run_command(&commands[i], argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "pollen: unknown command '%s'\n\n%s", cmd, usage_main);
    return CLI_EXIT_USAGE;
}

/*
 * cli: see cli.h.
 */
#include "cli.h"

#include <errno.h>
#include <curl/curl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "catalog.h"
#include "config.h"
#include "engine.h"
#include "json.h"
#include "outbox.h"
#include "subproc.h"
#include "store.h"
#include "log.h"
#include "tail.h"
#include "util.h"

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
    "  tail     -c FILE [-f] [--from SEQ] [--trigger NAME] [--type TYPE] [--limit N]\n"
    "           print events as NDJSON in seq order; -f keeps following\n"
    "  catalog  [triggers|actions] [-c FILE | --catalog DIR]\n"
    "           list the shipped trigger and action definitions\n"
    "  dlq      list|retry ID|drop ID -c FILE\n"
    "           inspect and handle the dead-letter store of failed actions\n"
    "  auth     login -c FILE NAME [--code CODE] | status -c FILE\n"
    "           authorize an [oauth NAME] credential; show what each credential is\n"
    "\n"
    "`pollen COMMAND --help` describes each command. `pollen --version` prints the version.\n"
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
    "  -h, --help            this text\n";

static const char usage_check[] =
    "usage: pollen check -c FILE\n"
    "\n"
    "Validates the configuration (every section and key, secrets references and\n"
    "their permissions, durations, ranges) and the catalog definitions it uses.\n"
    "Prints `FILE:LINE: what is wrong` for each problem and exits 2, or prints a\n"
    "summary and exits 0. Nothing is contacted and nothing is written.\n"
    "\n"
    "  -c, --config FILE     the configuration file (required)\n"
    "  -h, --help            this text\n";

static const char usage_tail[] =
    "usage: pollen tail -c FILE [-f] [--from SEQ] [--trigger NAME] [--type TYPE] [--limit N]\n"
    "\n"
    "Prints events from the state directory's event log as NDJSON, one object per\n"
    "line, in seq order. Works while the engine runs (a separate process).\n"
    "\n"
    "  -c, --config FILE     the configuration file (its [engine] state_dir is read)\n"
    "  -f, --follow          keep printing new events until interrupted\n"
    "      --from SEQ        start at this seq (default 1: the oldest kept event)\n"
    "      --trigger NAME    only events of this [trigger NAME]\n"
    "      --type TYPE       only events of this type (created, updated, deleted)\n"
    "      --limit N         stop after N events\n"
    "  -h, --help            this text\n";

static const char usage_catalog[] =
    "usage: pollen catalog [triggers|actions] [-c FILE | --catalog DIR]\n"
    "\n"
    "Lists the catalog definitions: name, method, path, Version header, scope and\n"
    "title. The catalog is read from the configuration's [engine] catalog, from\n"
    "DIR, or from the built-in location (" POLLEN_CATALOG_DIR ").\n"
    "\n"
    "  -c, --config FILE     read the catalog location from this configuration\n"
    "      --catalog DIR     the directory holding triggers/ and actions/\n"
    "  -h, --help            this text\n";

enum {
    OPT_DRY_RUN = 255,
    OPT_ONCE = 256,
    OPT_LOG_LEVEL,
    OPT_FROM,
    OPT_TRIGGER,
    OPT_TYPE,
    OPT_LIMIT,
    OPT_CATALOG,
    OPT_CODE,
    OPT_TIMEOUT,
};

static int usage_error(const char *usage, const char *fmt, ...) ATTR_PRINTF(2, 3);

static int usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pollen: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", usage);
    return CLI_EXIT_USAGE;
}

/*
 * Loads the configuration (and, unless skip_catalog, the catalog it uses),
 * printing every problem. Returns 0, or the exit code to return.
 */
static int load_all(const char *path, unsigned flags, bool resolve, struct config **cfg,
                    struct catalog **cat)
{
    struct config_errors errs = {0};
    *cfg = NULL;
    *cat = NULL;
    int rc = config_load(path, flags, cfg, &errs);
    if (rc == 0 && resolve) {
        rc = catalog_load((*cfg)->catalog_dir, cat, &errs);
        if (rc == 0) {
            rc = config_resolve(*cfg, *cat, &errs);
        }
    }
    if (rc != 0 || errs.count > 0) {
        config_errors_print(&errs, stderr);
        config_errors_free(&errs);
        catalog_free(*cat);
        config_free(*cfg);
        *cat = NULL;
        *cfg = NULL;
        return CLI_EXIT_USAGE;
    }
    config_errors_free(&errs);
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"once", no_argument, NULL, OPT_ONCE},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    const char *level = NULL;
    struct engine_options eo = {0};
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case OPT_ONCE:
            eo.once = true;
            break;
        case OPT_DRY_RUN:
            eo.dry_run = true;
            break;
        case OPT_LOG_LEVEL:
            level = optarg;
            break;
        case 'h':
            fputs(usage_run, stdout);
            return CLI_EXIT_OK;
        default:
            fputs(usage_run, stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        return usage_error(usage_run, "unexpected argument '%s'", argv[optind]);
    }
    if (path == NULL) {
        return usage_error(usage_run, "%s", "run needs -c FILE");
    }
    enum log_level lvl;
    if (level != NULL && log_parse_level(level, &lvl) != 0) {
        return usage_error(usage_run, "unknown log level '%s' (error, warn, info, debug)", level);
    }
    struct config *cfg = NULL;
    struct catalog *cat = NULL;
    int rc = load_all(path, 0, true, &cfg, &cat);
    if (rc != 0) {
        fprintf(stderr, "pollen: %s has errors; not starting (see `pollen check -c %s`)\n", path,
                path);
        return rc;
    }
    log_set_level(level != NULL ? lvl : cfg->log_level);
    rc = engine_run(cfg, &eo);
    catalog_free(cat);
    config_free(cfg);
    log_clear_secrets();
    return rc;
}

static int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'h':
            fputs(usage_check, stdout);
            return CLI_EXIT_OK;
        default:
            fputs(usage_check, stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        return usage_error(usage_check, "unexpected argument '%s'", argv[optind]);
    }
    if (path == NULL) {
        return usage_error(usage_check, "%s", "check needs -c FILE");
    }
    struct config *cfg = NULL;
    struct catalog *cat = NULL;
    int rc = load_all(path, 0, true, &cfg, &cat);
    if (rc != 0) {
        return rc;
    }
    printf("%s: ok: %zu location(s), %zu trigger(s), %zu rule(s); catalog %s (%zu triggers, "
           "%zu actions)\n",
           path, cfg->nlocations, cfg->ntriggers, cfg->nrules, cfg->catalog_dir,
           catalog_trigger_count(cat), catalog_action_count(cat));
    catalog_free(cat);
    config_free(cfg);
    log_clear_secrets();
    return CLI_EXIT_OK;
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
    static const char *const types[] = {
        "created", "updated", "deleted", "action.succeeded", "action.failed", "action.dead",
        "auth.failed",
    };
    for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
        if (strcmp(type, types[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int cmd_tail(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"follow", no_argument, NULL, 'f'},
        {"from", required_argument, NULL, OPT_FROM},
        {"trigger", required_argument, NULL, OPT_TRIGGER},
        {"type", required_argument, NULL, OPT_TYPE},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    struct tail_options to = {.from = 1, .out = stdout};
    int c;
    while ((c = getopt_long(argc, argv, "c:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'f':
            to.follow = true;
            break;
        case OPT_FROM:
            if (parse_u64(optarg, &to.from) != 0) {
                return usage_error(usage_tail, "--from needs a sequence number, not '%s'", optarg);
            }
            break;
        case OPT_TRIGGER:
            to.trigger = optarg;
            break;
        case OPT_TYPE:
            to.type = optarg;
            if (!known_event_type(optarg)) {
                return usage_error(usage_tail,
                                   "unknown event type '%s' (created, updated, deleted, "
                                   "action.succeeded, action.failed, action.dead, auth.failed)",
                                   optarg);
            }
            break;
        case OPT_LIMIT:
            if (parse_u64(optarg, &to.limit) != 0) {
                return usage_error(usage_tail, "--limit needs a number, not '%s'", optarg);
            }
            break;
        case 'h':
            fputs(usage_tail, stdout);
            return CLI_EXIT_OK;
        default:
            fputs(usage_tail, stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        return usage_error(usage_tail, "unexpected argument '%s'", argv[optind]);
    }
    if (path == NULL) {
        return usage_error(usage_tail, "%s", "tail needs -c FILE");
    }
    struct config *cfg = NULL;
    struct catalog *cat = NULL;
    int rc = load_all(path, CONFIG_SKIP_SECRETS, false, &cfg, &cat);
    if (rc != 0) {
        return rc;
    }
    to.state_dir = cfg->state_dir;
    rc = tail_run(&to);
    config_free(cfg);
    return rc;
}

static void print_triggers(const struct catalog *cat)
{
    for (size_t i = 0; i < catalog_trigger_count(cat); i++) {
        const struct catalog_trigger *t = catalog_trigger_at(cat, i);
        printf("%-24s %-5s %-40s %-10s %-20s %s\n", t->name, t->method, t->path, t->version,
               t->scope, t->title);
    }
}

static void print_actions(const struct catalog *cat)
{
    for (size_t i = 0; i < catalog_action_count(cat); i++) {
        const struct catalog_action *a = catalog_action_at(cat, i);
        printf("%-28s %-6s %-48s %-10s %-16s %s%s\n", a->name, a->method, a->path, a->version,
               a->scope, a->title, a->destructive ? " (destructive: needs confirm = yes)" : "");
    }
}

static int cmd_catalog(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"catalog", required_argument, NULL, OPT_CATALOG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    const char *dir = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case OPT_CATALOG:
            dir = optarg;
            break;
        case 'h':
            fputs(usage_catalog, stdout);
            return CLI_EXIT_OK;
        default:
            fputs(usage_catalog, stderr);
            return CLI_EXIT_USAGE;
        }
    }
    const char *what = optind < argc ? argv[optind++] : NULL;
    if (optind < argc) {
        return usage_error(usage_catalog, "unexpected argument '%s'", argv[optind]);
    }
    if (what != NULL && strcmp(what, "triggers") != 0 && strcmp(what, "actions") != 0) {
        return usage_error(usage_catalog, "unknown catalog kind '%s' (triggers or actions)", what);
    }
    struct config *cfg = NULL;
    if (path != NULL && dir == NULL) {
        struct catalog *none = NULL;
        int rc = load_all(path, CONFIG_SKIP_SECRETS, false, &cfg, &none);
        if (rc != 0) {
            return rc;
        }
        dir = cfg->catalog_dir;
    }
    if (dir == NULL) {
        dir = POLLEN_CATALOG_DIR;
    }
    struct config_errors errs = {0};
    struct catalog *cat = NULL;
    int rc = catalog_load(dir, &cat, &errs);
    if (rc != 0 || errs.count > 0) {
        config_errors_print(&errs, stderr);
        config_errors_free(&errs);
        catalog_free(cat);
        config_free(cfg);
        return CLI_EXIT_USAGE;
    }
    if (what == NULL || strcmp(what, "triggers") == 0) {
        print_triggers(cat);
    }
    if (what == NULL || strcmp(what, "actions") == 0) {
        print_actions(cat);
    }
    catalog_free(cat);
    config_free(cfg);
    return CLI_EXIT_OK;
}

static const char usage_dlq[] =
    "usage: pollen dlq list -c FILE\n"
    "       pollen dlq retry ID -c FILE\n"
    "       pollen dlq drop ID -c FILE\n"
    "\n"
    "The dead-letter store holds actions that failed permanently (a 4xx other\n"
    "than 408/429, or every attempt used up). `list` prints them as JSON lines\n"
    "(id, rule, action, the rendered request, attempts, last status and error).\n"
    "`retry` moves one back to the outbox with its attempts reset; the running\n"
    "engine sends it within a second. `drop` deletes it.\n"
    "\n"
    "  -c, --config FILE     the configuration file (its [engine] state_dir is used)\n"
    "  -h, --help            this text\n";

static int print_dead(uint64_t id, const cJSON *entry, void *ud)
{
    (void)id;
    (void)ud;
    char *line = cJSON_PrintUnformatted(entry);
    printf("%s\n", line);
    free(line);
    return 0;
}

struct dlq_op {
    const char *verb;
    uint64_t id;
};

static int dlq_txn(struct store_txn *txn, void *ud)
{
    struct dlq_op *op = ud;
    if (strcmp(op->verb, "retry") == 0) {
        return outbox_dlq_retry(txn, op->id, util_wall_ms());
    }
    return outbox_dlq_drop(txn, op->id);
}

static int cmd_dlq(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'h':
            fputs(usage_dlq, stdout);
            return CLI_EXIT_OK;
        default:
            fputs(usage_dlq, stderr);
            return CLI_EXIT_USAGE;
        }
    }
    const char *verb = optind < argc ? argv[optind++] : NULL;
    const char *id_text = optind < argc ? argv[optind++] : NULL;
    if (verb == NULL || (strcmp(verb, "list") != 0 && strcmp(verb, "retry") != 0 &&
                         strcmp(verb, "drop") != 0)) {
        return usage_error(usage_dlq, "dlq needs list, retry ID or drop ID%s", "");
    }
    struct dlq_op op = {.verb = verb};
    if (strcmp(verb, "list") != 0 && (id_text == NULL || parse_u64(id_text, &op.id) != 0)) {
        return usage_error(usage_dlq, "dlq %s needs the numeric id of a dead letter", verb);
    }
    if (optind < argc) {
        return usage_error(usage_dlq, "unexpected argument '%s'", argv[optind]);
    }
    if (path == NULL) {
        return usage_error(usage_dlq, "%s", "dlq needs -c FILE");
    }
    struct config *cfg = NULL;
    struct catalog *cat = NULL;
    int rc = load_all(path, CONFIG_SKIP_SECRETS, false, &cfg, &cat);
    if (rc != 0) {
        return rc;
    }
    struct store *s = NULL;
    struct store_options so = {.readonly = strcmp(verb, "list") == 0};
    rc = store_open(cfg->state_dir, &so, &s);
    if (rc == -ENOENT && so.readonly) {
        config_free(cfg);
        return CLI_EXIT_OK; /* no state yet: no dead letters */
    }
    if (rc != 0) {
        fprintf(stderr, "pollen dlq: cannot open %s: %s\n", cfg->state_dir, store_strerror(rc));
        config_free(cfg);
        return CLI_EXIT_RUNTIME;
    }
    if (so.readonly) {
        struct store_txn *txn = NULL;
        rc = store_txn_begin(s, false, &txn);
        if (rc == 0) {
            rc = outbox_dlq_list(txn, print_dead, NULL);
            store_txn_abort(txn);
        }
    } else {
        rc = store_write(s, dlq_txn, &op);
        if (rc == -ENOENT) {
            fprintf(stderr, "pollen dlq: no dead letter with id %llu\n",
                    (unsigned long long)op.id);
        } else if (rc == 0) {
            printf("dead letter %llu %s\n", (unsigned long long)op.id,
                   strcmp(verb, "retry") == 0 ? "queued again" : "dropped");
        }
    }
    store_close(s);
    config_free(cfg);
    json_scratch_release();
    if (rc == -ENOENT) {
        return CLI_EXIT_USAGE;
    }
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_RUNTIME;
}

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

static int cmd_auth(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"code", required_argument, NULL, OPT_CODE},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    const char *code = NULL;
    uint64_t timeout_ms = 600000;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case OPT_CODE:
            code = optarg;
            break;
        case OPT_TIMEOUT:
            if (util_parse_duration(optarg, &timeout_ms) != 0 || timeout_ms == 0) {
                return usage_error(usage_auth, "bad duration '%s' for --timeout", optarg);
            }
            break;
        case 'h':
            fputs(usage_auth, stdout);
            return CLI_EXIT_OK;
        default:
            fputs(usage_auth, stderr);
            return CLI_EXIT_USAGE;
        }
    }
    const char *verb = optind < argc ? argv[optind++] : NULL;
    const char *name = optind < argc ? argv[optind++] : NULL;
    if (verb == NULL || (strcmp(verb, "login") != 0 && strcmp(verb, "status") != 0)) {
        return usage_error(usage_auth, "auth needs login or status%s", "");
    }
    if (strcmp(verb, "login") == 0 && name == NULL) {
        return usage_error(usage_auth, "auth login needs the NAME of an [oauth NAME]%s", "");
    }
    if (strcmp(verb, "status") == 0 && name != NULL) {
        return usage_error(usage_auth, "unexpected argument '%s'", name);
    }
    if (optind < argc) {
        return usage_error(usage_auth, "unexpected argument '%s'", argv[optind]);
    }
    if (path == NULL) {
        return usage_error(usage_auth, "%s", "auth needs -c FILE");
    }
    struct config *cfg = NULL;
    struct catalog *cat = NULL;
    /* status reads no secret; login needs the client secret. */
    unsigned flags = strcmp(verb, "status") == 0 ? CONFIG_SKIP_SECRETS : 0;
    int rc = load_all(path, flags, false, &cfg, &cat);
    if (rc != 0) {
        return rc;
    }
    if (strcmp(verb, "login") == 0) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = auth_login(cfg, name, code, timeout_ms, stdout);
        curl_global_cleanup();
    } else {
        rc = auth_status(cfg, stdout);
    }
    config_free(cfg);
    log_clear_secrets();
    json_scratch_release();
    return rc;
}

int cli_main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "__exec") == 0) {
        return subproc_exec_main(argc, argv);
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
        printf("pollen %s\n", POLLEN_VERSION);
        return CLI_EXIT_OK;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } commands[] = {
        {"run", cmd_run},
        {"check", cmd_check},
        {"tail", cmd_tail},
        {"catalog", cmd_catalog},
        {"dlq", cmd_dlq},
        {"auth", cmd_auth},
    };
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (strcmp(cmd, commands[i].name) == 0) {
            /* getopt_long sees the command as argv[0]. */
            optind = 1;
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "pollen: unknown command '%s'\n\n%s", cmd, usage_main);
    return CLI_EXIT_USAGE;
}

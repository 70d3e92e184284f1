/*
 * engine: see engine.h.
 */
#include "engine.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <curl/curl.h>
#include <uv.h>

#include "catalog.h"
#include "config.h"
#include "dispatch.h"
#include "evlog.h"
#include "failpoint.h"
#include "http.h"
#include "json.h"
#include "location.h"
#include "oauth.h"
#include "outbox.h"
#include "log.h"
#include "metrics.h"
#include "monitor.h"
#include "poller.h"
#include "reload.h"
#include "sdnotify.h"
#include "sha256.h"
#include "store.h"
#include "target.h"
#include "util.h"

/* Reader-slot check, event-log retention and the dead-letter / own-write
 * sweep run on every tick (the sweep also once at start). */
#define MAINTENANCE_INTERVAL_MS 60000
/* A reader that kept one snapshot this long while we committed is reported... */
#define READER_WARN_AGE_MS (5 * 60 * 1000)
/* ...at most this often. */
#define READER_WARN_EVERY_MS (30 * 60 * 1000)
/* Exit code when another engine holds the state directory (a usage error). */
#define EXIT_BUSY 2

struct engine {
    uv_loop_t loop;
    const struct config *cfg;
    struct engine_options opts;
    struct store *store;
    struct http_client *http;
    struct location **locations;
    struct target **apis;                /* one per [api NAME] (parallel to cfg->apis) */
    struct oauth_credential **creds;     /* one per location (static, OAuth or agency-derived) */
    struct oauth_credential **oauths;    /* one per [oauth NAME] */
    struct dispatcher *dispatcher;
    struct poller **pollers;
    size_t npollers;
    struct monitor *monitor;   /* [engine] listen: /metrics and /healthz; NULL: none */
    struct config *own_cfg;    /* a reloaded configuration (the first is the caller's)... */
    struct catalog *own_cat;   /* ...and its catalog; both freed at the next swap or exit */
    struct config *next_cfg;   /* SIGHUP: checked, waiting for the runtime to close */
    struct catalog *next_cat;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_signal_t sighup;
    struct store_reader old_reader; /* the oldest reader slot seen at maintenance... */
    uint64_t old_reader_since;      /* ...and since when (monotonic ms) it held that snapshot */
    uint64_t reader_warned_at;      /* monotonic ms of the last warning about it, 0: none */
    uv_timer_t maintenance;
    uv_timer_t prune;          /* runs retention one batch per callback */
    bool pruning;              /* a retention pass is in progress */
    uint64_t pruned;           /* events deleted by the current pass */
    uint64_t prune_untimed;    /* events without a readable time seen by it */
    uv_timer_t sweep;          /* dead-letter retention, then own-write expiry, a batch a callback */
    bool sweeping;             /* a sweep pass is in progress */
    bool sweep_own;            /* the pass is in its own-write phase */
    struct store_sweep sweep_pos;
    uint64_t swept;            /* dead letters deleted by the current pass */
    uv_timer_t stopper;        /* runs the shutdown outside any library callback */
    uv_timer_t drain;          /* --once: waits for the outbox to drain after the polls */
    struct sdnotify notify;    /* systemd: READY=1, the watchdog pings, STOPPING=1 */
    const char *stop_reason;
    size_t done;
    bool stopping;
    bool failed;
    char once_reason[256];     /* --once: the closing line's reason (names the failed triggers) */
    size_t nfailed;
};

static void harden_process(void)
{
    /* Tokens live in this process's memory: keep them out of core dumps. */
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    umask(077);
    signal(SIGPIPE, SIG_IGN);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

/* Location credentials borrow their agency's: free them first. */
static void free_credentials(struct engine *e)
{
    const struct config *cfg = e->cfg;
    for (size_t i = 0; e->creds != NULL && i < cfg->nlocations; i++) {
        const struct config_location *lc = &cfg->locations[i];
        bool owned = lc->oauth == NULL || strcmp(lc->oauth->user_type, "Company") == 0;
        if (owned) {
            oauth_credential_free(e->creds[i]);
        }
        e->creds[i] = NULL;
    }
    for (size_t i = 0; e->oauths != NULL && i < cfg->noauths; i++) {
        oauth_credential_free(e->oauths[i]);
        e->oauths[i] = NULL;
    }
}

static void on_http_closed(void *ud)
{
    struct engine *e = ud;
    e->http = NULL;
    if (e->monitor != NULL) {
        monitor_close(e->monitor);
        e->monitor = NULL;
    }
    for (size_t i = 0; i < e->npollers; i++) {
        poller_close(e->pollers[i]);
    }
    close_handle((uv_handle_t *)&e->sigint);
    close_handle((uv_handle_t *)&e->sigterm);
    close_handle((uv_handle_t *)&e->sighup);
    close_handle((uv_handle_t *)&e->maintenance);
    close_handle((uv_handle_t *)&e->prune);
    close_handle((uv_handle_t *)&e->sweep);
    close_handle((uv_handle_t *)&e->stopper);
    close_handle((uv_handle_t *)&e->drain);
    sdnotify_close(&e->notify);
    dispatcher_close(e->dispatcher);
}

/* Nothing is in flight any more: close what the actions needed. */
static void on_dispatcher_drained(void *ud)
{
    struct engine *e = ud;
    for (size_t i = 0; i < e->cfg->nlocations; i++) {
        location_close(e->locations[i]);
        e->locations[i] = NULL;
    }
    for (size_t i = 0; i < e->cfg->napis; i++) {
        target_close(e->apis[i]);
        e->apis[i] = NULL;
    }
    free_credentials(e);
    http_client_close(e->http, on_http_closed, e);
}

/* Polling stops at once; actions in flight get [engine] shutdown_grace to
 * finish and record their outcomes (a finished action is never sent again
 * after the restart); the HTTP client, locations and credentials they use
 * close after that. */
static void do_stop(uv_timer_t *t)
{
    struct engine *e = t->data;
    log_info("engine", "stopping (%s)", e->stop_reason);
    if (e->next_cfg != NULL) {
        sdnotify_reloading();
    } else {
        sdnotify_stopping(e->stop_reason);
    }
    for (size_t i = 0; i < e->npollers; i++) {
        poller_stop(e->pollers[i]);
    }
    uv_timer_stop(&e->drain);
    uv_timer_stop(&e->maintenance);
    uv_timer_stop(&e->prune);
    uv_timer_stop(&e->sweep);
    dispatcher_drain(e->dispatcher, e->cfg->shutdown_grace_ms, on_dispatcher_drained, e);
}

/* Requests shutdown. It may be called from inside an HTTP or poller
 * callback, so the work is deferred to a 0 ms timer (c-style rule 27). */
static void engine_stop(struct engine *e, const char *why)
{
    if (e->stopping) {
        return;
    }
    e->stopping = true;
    e->stop_reason = why;
    uv_timer_start(&e->stopper, do_stop, 0, 0);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct engine *e = h->data;
    engine_stop(e, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* SIGHUP (ExecReload=): read and check the file; apply it by rebuilding the runtime. */
static void on_sighup(uv_signal_t *h, int signum)
{
    struct engine *e = h->data;
    (void)signum;
    if (e->opts.config_path == NULL || e->opts.once || e->opts.dry_run) {
        log_warn("engine", "SIGHUP: no reload with --once or --dry-run; ignored");
        return;
    }
    if (e->stopping) {
        log_warn("engine", "SIGHUP: ignored while stopping (%s)", e->stop_reason);
        return;
    }
    struct config *cfg = NULL;
    struct catalog *cat = NULL;
    if (reload_load(e->opts.config_path, e->cfg, &cfg, &cat) != 0) {
        return;
    }
    char summary[1024];
    bool changed = reload_summary(e->cfg, cfg, summary, sizeof(summary));
    log_info("engine", "reload of %s: %s%s", e->opts.config_path, summary,
             changed ? "" : " (no difference found; applied anyway)");
    e->next_cfg = cfg;
    e->next_cat = cat;
    engine_stop(e, "reload");
}

static void on_drain_check(uv_timer_t *t)
{
    struct engine *e = t->data;
    if (!dispatcher_drained(e->dispatcher)) {
        return;
    }
    if (e->nfailed == 0) {
        engine_stop(e, "--once: every trigger completed a cycle and no action is due");
        return;
    }
    engine_stop(e, e->once_reason);
}

/* --once: the closing line names the triggers that failed (exit status 1). */
static void note_failed_trigger(struct engine *e, const struct poller *p)
{
    size_t len = strlen(e->once_reason);
    const char *sep = e->nfailed++ == 0 ? "--once: failed to complete a cycle: " : ", ";
    if (len + strlen(sep) + strlen(poller_name(p)) + 4 < sizeof(e->once_reason)) {
        snprintf(e->once_reason + len, sizeof(e->once_reason) - len, "%s%s", sep, poller_name(p));
    } else if (len + 4 < sizeof(e->once_reason)) {
        snprintf(e->once_reason + len, sizeof(e->once_reason) - len, "...");
    }
}

static void on_poller_done(struct poller *p, void *ud)
{
    struct engine *e = ud;
    if (poller_failed(p)) {
        e->failed = true;
        note_failed_trigger(e, p);
    }
    if (++e->done == e->npollers) {
        /* Actions the last cycles enqueued get their first attempt before we exit. */
        uv_timer_start(&e->drain, on_drain_check, 0, 100);
    }
}

/* After a commit that appended events (ud: the engine, as for on_event). */
static void kick_dispatcher(void *ud)
{
    struct engine *e = ud;
    dispatcher_kick(e->dispatcher);
}

/* One retention batch (a short write txn); re-armed with a 0 ms timer while
 * the batch was full, so other callbacks run between batches and a large
 * backlog never holds the loop. */
static void on_prune(uv_timer_t *t)
{
    struct engine *e = t->data;
    struct evlog_prune_result step;
    int rc = evlog_prune_step(e->store, e->cfg->retention_age_ms, e->cfg->retention_count,
                              util_wall_ms(), &step);
    if (rc != 0) {
        log_warn("evlog", "retention failed: %s", store_strerror(rc));
        e->pruning = false;
        return;
    }
    e->pruned += step.deleted;
    if (step.untimed > e->prune_untimed) {
        e->prune_untimed = step.untimed;
    }
    if (step.more && !e->stopping) {
        uv_timer_start(&e->prune, on_prune, 0, 0);
        return;
    }
    if (e->prune_untimed > 0) {
        log_warn("evlog", "%llu event(s) have no readable \"time\" and are kept by age retention",
                 (unsigned long long)e->prune_untimed);
    }
    if (e->pruned > 0) {
        log_info("evlog", "retention removed %llu old events", (unsigned long long)e->pruned);
    }
    e->pruning = false;
}

static int sweep_txn(struct store_txn *txn, void *ud)
{
    struct engine *e = ud;
    if (e->sweep_own) {
        /* Own-write marks are timed on the dispatcher's clock (F14). */
        return dispatch_own_sweep_batch(txn, dispatch_clock_ms(), &e->sweep_pos);
    }
    return outbox_dlq_prune_batch(txn, e->cfg->dlq_retention_ms, util_wall_ms(), &e->sweep_pos);
}

/* One batch of the sweep pass (F21): the dead letters past dlq_retention,
 * then the expired own-write marks. Like on_prune, a full batch re-arms a
 * 0 ms timer, each resuming after the last key the previous one examined. */
static void on_sweep(uv_timer_t *t)
{
    struct engine *e = t->data;
    int rc = store_write(e->store, sweep_txn, e);
    if (rc != 0) {
        log_warn("engine", "%s failed: %s",
                 e->sweep_own ? "own-write expiry" : "dead-letter retention", store_strerror(rc));
        e->sweeping = false;
        return;
    }
    if (!e->sweep_own) {
        e->swept += e->sweep_pos.deleted;
    }
    struct store_sweep *sw = &e->sweep_pos;
    if (sw->more) {
        memcpy(sw->after, sw->next, sw->next_len);
        sw->after_len = sw->next_len;
    } else if (!e->sweep_own) {
        if (e->swept > 0) {
            log_info("outbox", "dead-letter retention removed %llu dead letter(s) older than "
                               "dlq_retention",
                     (unsigned long long)e->swept);
        }
        e->sweep_own = true;
        *sw = (struct store_sweep){0};
    } else {
        e->sweeping = false;
        return;
    }
    if (!e->stopping) {
        uv_timer_start(&e->sweep, on_sweep, 0, 0);
    } else {
        e->sweeping = false;
    }
}

static void start_sweep(struct engine *e)
{
    if (e->sweeping || e->opts.dry_run) {
        return;
    }
    e->sweeping = true;
    e->sweep_own = false;
    e->swept = 0;
    e->sweep_pos = (struct store_sweep){0};
    uv_timer_start(&e->sweep, on_sweep, 0, 0);
}

/*
 * A live reader that keeps one old snapshot (a `pollen tail -f` whose
 * consumer stalled, in an old build, or any tool holding a txn) stops LMDB
 * from reusing the pages freed since, so data.mdb grows despite retention
 * (F5). mdb_reader_check only clears dead processes' slots: name the pid.
 */
static void watch_readers(struct engine *e)
{
    struct store_reader r;
    if (store_oldest_reader(e->store, &r) != 0) {
        return;
    }
    uint64_t now = uv_now(&e->loop);
    bool same = r.pid != 0 && r.pid == e->old_reader.pid && r.txnid == e->old_reader.txnid;
    if (!same) {
        e->old_reader = r;
        e->old_reader_since = now;
        return;
    }
    uint64_t lag = r.newest_txnid > r.txnid ? r.newest_txnid - r.txnid : 0;
    bool old = now - e->old_reader_since >= READER_WARN_AGE_MS && lag > 0;
    bool quiet = e->reader_warned_at != 0 && now - e->reader_warned_at < READER_WARN_EVERY_MS;
    if (!old || quiet) {
        return;
    }
    e->reader_warned_at = now;
    log_warn("store", "process %ld has held a read snapshot of %s for over %llu s, %llu "
                      "transactions behind the newest: space freed since cannot be reused, so "
                      "data.mdb grows; stop or restart that process",
             r.pid, e->cfg->state_dir, (unsigned long long)((now - e->old_reader_since) / 1000),
             (unsigned long long)lag);
}

static void on_maintenance(uv_timer_t *t)
{
    struct engine *e = t->data;
    int cleared = store_reader_check(e->store);
    if (cleared > 0) {
        log_info("store", "cleared %d stale reader slot(s)", cleared);
    }
    watch_readers(e);
    if (!e->pruning) {
        e->pruning = true;
        e->pruned = 0;
        e->prune_untimed = 0;
        uv_timer_start(&e->prune, on_prune, 0, 0);
    }
    start_sweep(e);
}

struct auth_failure {
    struct engine *e;
    const char *credential;
    const char *reason;
    const char *location_id;
    const char *fix;
};

static int auth_failed_txn(struct store_txn *txn, void *ud)
{
    struct auth_failure *f = ud;
    char when[32];
    char id[65];
    util_iso8601(util_wall_ms(), when);
    char *seed = xasprintf("auth.failed:%s:%s", f->credential, when);
    sha256_hex(seed, strlen(seed), id);
    free(seed);
    id[32] = '\0';
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "id", id);
    cJSON_AddStringToObject(ev, "time", when);
    cJSON_AddStringToObject(ev, "type", "auth.failed");
    cJSON_AddStringToObject(ev, "credential", f->credential);
    if (f->location_id != NULL) {
        cJSON_AddStringToObject(ev, "location", f->location_id);
    }
    cJSON_AddStringToObject(ev, "error", f->reason);
    cJSON_AddStringToObject(ev, "fix", f->fix);
    int rc = evlog_append(txn, ev, NULL);
    cJSON_Delete(ev);
    return rc;
}

/*
 * A credential failed for good (invalid_grant: the refresh token is spent or
 * revoked; a static token answered with 401). One clear error, one
 * auth.failed event, and the triggers of every location it serves stop:
 * retrying would only hammer the API or the token endpoint.
 */
static void on_credential_failed(struct oauth_credential *c, const char *reason, void *ud)
{
    struct engine *e = ud;
    const struct config *cfg = e->cfg;
    /* A static token cannot be re-authorized: it has to be corrected. */
    bool refreshable = oauth_credential_refreshable(c);
    const char *restart = refreshable ? "`pollen auth login` and a restart"
                                      : "its `token =` is corrected and pollen restarted";
    struct auth_failure f = {.e = e, .credential = oauth_credential_name(c), .reason = reason,
                             .fix = refreshable ? "run: pollen auth login -c FILE NAME"
                                                : "correct token = in the [location] section, "
                                                  "then restart"};
    for (size_t i = 0; i < cfg->nlocations; i++) {
        if (e->creds[i] == c) {
            f.location_id = cfg->locations[i].id;
        }
    }
    int rc = store_write(e->store, auth_failed_txn, &f);
    if (rc != 0) {
        log_error("engine", "cannot record auth.failed: %s", store_strerror(rc));
    }
    for (size_t i = 0; i < cfg->nlocations; i++) {
        bool served = e->creds[i] == c ||
                      (cfg->locations[i].oauth != NULL &&
                       strcmp(cfg->locations[i].oauth->name, oauth_credential_name(c)) == 0);
        if (!served) {
            continue;
        }
        for (size_t t = 0; t < cfg->ntriggers; t++) {
            if (cfg->triggers[t].location == &cfg->locations[i]) {
                poller_stop_auth(e->pollers[t], reason);
            }
        }
        /* The oauth module logged the one error; say what it means here. */
        log_info("engine", "the triggers of location %s are stopped until %s",
                 cfg->locations[i].name, restart);
    }
}

static void create_credentials(struct engine *e)
{
    const struct config *cfg = e->cfg;
    char *token_url = xasprintf("%s/oauth/token", cfg->base_url);
    char *location_token_url = xasprintf("%s/oauth/locationToken", cfg->base_url);
    e->oauths = xcalloc(cfg->noauths + 1, sizeof(*e->oauths));
    for (size_t i = 0; i < cfg->noauths; i++) {
        const struct config_oauth *o = &cfg->oauths[i];
        struct oauth_options oo = {
            .name = o->name,
            .token_url = token_url,
            .location_token_url = location_token_url,
            .client_id = o->client_id,
            .client_secret = o->client_secret,
            .store_path = o->token_store,
            .refresh_margin_ms = o->refresh_margin_ms,
        };
        e->oauths[i] = oauth_credential_oauth(&e->loop, e->http, &oo);
        oauth_credential_on_failed(e->oauths[i], on_credential_failed, e);
    }
    e->creds = xcalloc(cfg->nlocations + 1, sizeof(*e->creds));
    for (size_t i = 0; i < cfg->nlocations; i++) {
        const struct config_location *lc = &cfg->locations[i];
        if (lc->oauth == NULL) {
            e->creds[i] = oauth_credential_static(&e->loop, lc->name, lc->token ? lc->token : "");
            oauth_credential_on_failed(e->creds[i], on_credential_failed, e);
            continue;
        }
        struct oauth_credential *app = e->oauths[(size_t)(lc->oauth - cfg->oauths)];
        if (lc->is_company) {
            e->creds[i] = app; /* a [company] polls with the agency token itself (M15) */
        } else if (strcmp(lc->oauth->user_type, "Company") == 0) {
            /* An agency install: location tokens through /oauth/locationToken. */
            e->creds[i] = oauth_credential_location(&e->loop, e->http, app, lc->id,
                                                    location_token_url);
            oauth_credential_on_failed(e->creds[i], on_credential_failed, e);
        } else {
            e->creds[i] = app;
        }
    }
    free(token_url);
    free(location_token_url);
}

static struct location *location_for(struct engine *e, const struct config_location *lc)
{
    for (size_t i = 0; i < e->cfg->nlocations; i++) {
        if (&e->cfg->locations[i] == lc) {
            return e->locations[i];
        }
    }
    return NULL;
}

/* Every event, inside its txn: counted for /metrics, then matched by the rules. */
static int on_event(struct store_txn *txn, cJSON *event, void *ud)
{
    struct engine *e = ud;
    monitor_count_event(e->monitor, event);
    return dispatch_on_event(txn, event, e->dispatcher);
}

static int create_runtime(struct engine *e)
{
    const struct config *cfg = e->cfg;
    struct http_client_options ho = {
        .connect_timeout_ms = cfg->connect_timeout_ms,
        .timeout_ms = cfg->timeout_ms,
        .low_speed_limit = 100,
        .low_speed_time_s = 30,
        .max_body = cfg->max_body,
        .max_host_connections = 4,
        .ca_file = cfg->ca_file,
        .proxy = cfg->proxy,
        .allow_plain_http_loopback = true,
        .user_agent = "pollen/" POLLEN_VERSION,
    };
    evlog_set_max_event(cfg->max_body); /* any record the API can send fits in an event */
    e->http = http_client_create(&e->loop, &ho);
    if (e->http == NULL) {
        log_error("engine", "cannot create the HTTP client");
        return -1;
    }
    create_credentials(e);
    e->locations = xcalloc(cfg->nlocations + 1, sizeof(*e->locations));
    for (size_t i = 0; i < cfg->nlocations; i++) {
        const struct config_location *lc = &cfg->locations[i];
        struct location_options lo = {
            .name = lc->name,
            .id = lc->id,
            .base_url = cfg->base_url,
            .company_id = lc->company_id,
            .sweep_share = lc->sweep_share,
            .sweep_daily_share = lc->sweep_daily_share,
            .rate_limit = lc->rate_limit,
            .rate_window_ms = lc->rate_window_ms,
            .daily_limit = lc->daily_limit,
        };
        e->locations[i] = location_create(&e->loop, e->http, &lo, e->creds[i]);
    }
    /* A user's own APIs: a target each, with its static credential header. */
    e->apis = xcalloc(cfg->napis + 1, sizeof(*e->apis));
    for (size_t i = 0; i < cfg->napis; i++) {
        const struct config_api *ac = &cfg->apis[i];
        struct target_options to = {
            .kind = "api",
            .name = ac->name,
            .base_url = ac->base_url,
            .auth_header = ac->auth_header,
            .auth_scheme = ac->auth_scheme,
            .secret = ac->auth,
            .timeout_ms = ac->timeout_ms,
            .rate_limit = ac->rate_limit,
            .rate_window_ms = ac->rate_window_ms,
            .daily_limit = ac->daily_limit,
            .sweep_share = RATELIMIT_DEFAULT_CAPPED_WINDOW_SHARE,
            .sweep_daily_share = RATELIMIT_DEFAULT_CAPPED_DAILY_SHARE,
        };
        e->apis[i] = target_create(&e->loop, e->http, &to, NULL);
    }
    struct dispatcher_env de = {
        .loop = &e->loop,
        .store = e->store,
        .cfg = cfg,
        .http = e->http,
        .locations = e->locations,
        .dry_run = e->opts.dry_run ? stdout : NULL,
    };
    e->dispatcher = dispatcher_create(&de);
    struct poller_env env = {
        .loop = &e->loop,
        .store = e->store,
        .cfg = cfg,
        .once = e->opts.once || e->opts.dry_run,
        .dry_run = e->opts.dry_run,
        .on_done = on_poller_done,
        .ud = e,
        .on_event = on_event,
        .on_event_ud = e,
        .on_events = kick_dispatcher,
    };
    e->pollers = xcalloc(cfg->ntriggers + 1, sizeof(*e->pollers));
    e->npollers = cfg->ntriggers;
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        const struct config_trigger *tc = &cfg->triggers[i];
        if (tc->api != NULL) {
            e->pollers[i] = poller_create_api(&env, tc, e->apis[tc->api - cfg->apis]);
        } else {
            e->pollers[i] = poller_create(&env, tc, location_for(e, tc->location));
        }
    }
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        const struct config_trigger *tc = &cfg->triggers[i];
        if (tc->parent == NULL) {
            continue;
        }
        size_t parent = (size_t)(tc->parent - cfg->triggers);
        poller_add_child(e->pollers[parent], e->pollers[i]);
    }
    return 0;
}

/* [engine] listen: a listener that cannot start stops the engine (exit 1). */
static void start_monitor(struct engine *e)
{
    struct monitor_env me = {
        .loop = &e->loop,
        .cfg = e->cfg,
        .store = e->store,
        .pollers = e->pollers,
        .npollers = e->npollers,
        .locations = e->locations,
        .nlocations = e->cfg->nlocations,
    };
    if (monitor_start(&me, &e->monitor) != 0) {
        e->failed = true;
        engine_stop(e, "[engine] listen failed");
    }
}

static void start_runtime(struct engine *e)
{
    uv_signal_init(&e->loop, &e->sigint);
    uv_signal_init(&e->loop, &e->sigterm);
    uv_signal_init(&e->loop, &e->sighup);
    e->sigint.data = e;
    e->sigterm.data = e;
    e->sighup.data = e;
    uv_signal_start(&e->sigint, on_signal, SIGINT);
    uv_signal_start(&e->sigterm, on_signal, SIGTERM);
    uv_signal_start(&e->sighup, on_sighup, SIGHUP);
    uv_timer_init(&e->loop, &e->maintenance);
    e->maintenance.data = e;
    uv_timer_init(&e->loop, &e->prune);
    e->prune.data = e;
    uv_timer_init(&e->loop, &e->sweep);
    e->sweep.data = e;
    uv_timer_init(&e->loop, &e->stopper);
    e->stopper.data = e;
    uv_timer_init(&e->loop, &e->drain);
    e->drain.data = e;
    sdnotify_start(&e->notify, &e->loop);
    dispatcher_start(e->dispatcher);
    if (e->cfg->listen != NULL && !e->opts.once && !e->opts.dry_run) {
        start_monitor(e);
    }
    uv_timer_start(&e->maintenance, on_maintenance, MAINTENANCE_INTERVAL_MS,
                   MAINTENANCE_INTERVAL_MS);
    start_sweep(e); /* at start too, so --once runs expire dead letters */
    for (size_t i = 0; i < e->npollers; i++) {
        poller_start(e->pollers[i]);
    }
    char status[128];
    snprintf(status, sizeof(status), "running: %zu trigger(s), %zu location(s)", e->npollers,
             e->cfg->nlocations);
    sdnotify_ready(status);
    if (e->npollers == 0) {
        log_warn("engine", "no [trigger] sections: nothing to poll");
        if (e->opts.once || e->opts.dry_run) {
            engine_stop(e, "--once with no triggers");
        }
    }
}

/*
 * One engine per state directory (F7): two would double the request budget,
 * could send an action twice, and the second one's token refresh would
 * spend the refresh token the first one holds. --once and --dry-run take
 * the lock too. Returns 0 and sets *fd, or the exit code.
 */
static int lock_state_dir(const struct config *cfg, int *fd)
{
    char holder[128];
    int rc = store_lock_engine(cfg->state_dir, fd, holder, sizeof(holder));
    if (rc == -EWOULDBLOCK) {
        log_error("engine", "another pollen engine (%s) is running on the state directory %s; "
                            "only one may: stop it first (`pollen tail`, `dlq list` and `auth "
                            "status` work beside it)",
                  holder, cfg->state_dir);
        return EXIT_BUSY;
    }
    if (rc != 0) {
        log_error("engine", "cannot lock the state directory %s: %s", cfg->state_dir,
                  store_strerror(rc));
        return 1;
    }
    return 0;
}

/* What create_runtime allocated beside the handles (which are closed by now). */
static void free_runtime(struct engine *e)
{
    free(e->locations);
    free(e->apis);
    free(e->creds);
    free(e->oauths);
    free(e->pollers);
    e->apis = NULL;
    e->locations = NULL;
    e->creds = NULL;
    e->oauths = NULL;
    e->pollers = NULL;
    e->npollers = 0;
    e->dispatcher = NULL;
    e->http = NULL;
    e->monitor = NULL;
}

/* After a reload's stop: the checked configuration becomes the running one.
 * The old one is freed only now, when nothing built from it is left. */
static void swap_config(struct engine *e)
{
    catalog_free(e->own_cat);
    config_free(e->own_cfg);
    e->own_cfg = e->next_cfg;
    e->own_cat = e->next_cat;
    e->cfg = e->own_cfg;
    e->next_cfg = NULL;
    e->next_cat = NULL;
    e->stopping = false;
    e->stop_reason = NULL;
    e->pruning = false;
    e->pruned = 0;
    e->prune_untimed = 0;
    e->sweeping = false;
    e->sweep_own = false;
    memset(&e->sweep_pos, 0, sizeof(e->sweep_pos));
    e->done = 0;
    if (!e->opts.log_level_fixed) {
        log_set_level(e->cfg->log_level);
    }
    log_info("engine", "reload: starting again with the new configuration");
}

int engine_run(const struct config *cfg, const struct engine_options *opts)
{
    struct engine e;
    memset(&e, 0, sizeof(e));
    e.cfg = cfg;
    e.opts = *opts;
    harden_process();
    /* Once, before anything could start a thread (curl's resolver does). */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    json_arena_install();
    util_rand_seed();
    monitor_declare();
    failpoint_init();

    int lock_fd = -1;
    int rc = lock_state_dir(cfg, &lock_fd);
    if (rc != 0) {
        curl_global_cleanup();
        return rc;
    }
    struct store_options so = {.max_size = cfg->max_db_size};
    rc = store_open(cfg->state_dir, &so, &e.store);
    if (rc != 0) {
        log_error("engine", "cannot open the state directory %s: %s", cfg->state_dir,
                  store_strerror(rc));
        store_unlock_engine(lock_fd);
        return 1;
    }
    if (e.opts.dry_run) {
        store_set_dry_run(e.store, true);
        log_info("engine", "dry run: nothing will be recorded or sent");
    }
    if (uv_loop_init(&e.loop) != 0) {
        store_close(e.store);
        store_unlock_engine(lock_fd);
        return 1;
    }
    for (;;) {
        if (create_runtime(&e) != 0) {
            e.failed = true;
            break;
        }
        log_info("engine", "pollen %s running: %zu trigger(s), %zu location(s), state in %s",
                 POLLEN_VERSION, e.cfg->ntriggers, e.cfg->nlocations, e.cfg->state_dir);
        start_runtime(&e);
        uv_run(&e.loop, UV_RUN_DEFAULT); /* returns once every handle has closed */
        free_runtime(&e);
        if (e.next_cfg == NULL) {
            break;
        }
        swap_config(&e);
    }

    int close_rc = uv_loop_close(&e.loop);
    if (close_rc != 0) {
        log_error("engine", "event loop still had open handles at exit (%s)", uv_strerror(close_rc));
        e.failed = true;
    }
    catalog_free(e.own_cat);
    config_free(e.own_cfg);
    store_close(e.store);
    store_unlock_engine(lock_fd);
    json_scratch_release();
    metrics_reset();
    curl_global_cleanup();
    log_info("engine", "stopped");
    return e.failed ? 1 : 0;
}

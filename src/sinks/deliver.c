/*
 * deliver: the dispatcher (see dispatch.h): its clock, claims with a lease,
 * outcomes with retry, backoff and dead letters, the pump and the
 * lifecycle. Sends go through the entry's sink (registry.h), which reports
 * through sink_call.done; nothing here knows an action kind.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "evlog.h"
#include "failpoint.h"
#include "json.h"
#include "list.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "registry.h"
#include "sha256.h"
#include "sinks_int.h"
#include "store.h"
#include "util.h"

#define DEFAULT_CONCURRENCY 4
#define MAX_CONCURRENCY 32
#define POLL_INTERVAL_MS 1000
/* Claims per loop turn: then the pump yields (a 0 ms timer) so that polls,
 * timers and signals run between batches however large the backlog. */
#define PUMP_BATCH 16
/* A claim or an outcome the store refused (database full, ENOSPC, EIO)
 * pauses claiming for a capped, growing backoff, logged at most once a minute. */
#define STORE_BACKOFF_MIN_MS 1000
#define STORE_BACKOFF_MAX_MS 60000
#define TROUBLE_LOG_INTERVAL_MS 60000
/* http clamps Retry-After to this (RETRY_AFTER_MAX_S): the longest wait a
 * response can ask for. */
#define RETRY_AFTER_MAX_MS (3600 * 1000)
/* Added to the longest wait the engine sets to make due_horizon. */
#define HORIZON_MARGIN_MS (60 * 1000)

struct attempt {
    struct attempt *next;
    struct dispatcher *d;
    uint64_t id;
    cJSON *entry;        /* the entry as claimed (owned) */
    const struct sink *sink;  /* the entry's kind; NULL when no sink has that name */
    struct sink_call call;
    bool cancelled;      /* shutdown cancelled it: the outcome is left for the lease */
};

static void pump(struct dispatcher *d);
static void maybe_free(struct dispatcher *d);

/* ---- the clock (F14) ------------------------------------------------------
 *
 * Times the dispatcher stores (next_at, leases, own-write "at") are wall
 * ms, since they outlive the process, but it reads them on the monotonic
 * clock: clock_ms() is the wall clock as of its first use in this process,
 * advanced by the monotonic clock. So a wall-clock step while the engine runs changes
 * nothing: no retry waits for the step, no lease or own-write mark expires
 * early. Across a restart, times written before a step back are clamped by
 * outbox_next_due's horizon; after a step forward they are simply due early
 * (the crashed process that held a lease is gone: the engine lock). Event
 * times (and dead_at) stay real wall time.
 */
static uint64_t clock_base; /* wall ms minus monotonic ms, at the first use */

static uint64_t clock_ms(void)
{
    if (clock_base == 0) {
        clock_base = util_wall_ms() - util_mono_ms(); /* modulo 2^64, like the sum below */
    }
    return clock_base + util_mono_ms();
}

uint64_t dispatch_clock_ms(void)
{
    return clock_ms();
}

/* The real wall time of clock_ms() time at (for retry_at in events). */
static uint64_t clock_to_wall(uint64_t at)
{
    uint64_t now = clock_ms();
    uint64_t wall = util_wall_ms();
    return at > now ? wall + (at - now) : wall - (now - at);
}

/* How long a claimed entry stays in flight before it is due again. */
static uint64_t lease_ms(double timeout_ms)
{
    return (uint64_t)(timeout_ms > 0 ? timeout_ms : 30000) * 2 + 5000;
}

/* The longest wait the engine sets with this configuration, plus a margin:
 * outbox_next_due treats an entry due later than this as written before a
 * wall-clock step back. */
static uint64_t due_horizon(const struct config *cfg)
{
    uint64_t h = RETRY_AFTER_MAX_MS > STORE_BACKOFF_MAX_MS ? RETRY_AFTER_MAX_MS
                                                           : STORE_BACKOFF_MAX_MS;
    for (size_t i = 0; i < cfg->nrules; i++) {
        const struct config_rule *r = &cfg->rules[i];
        uint64_t lease = lease_ms((double)r->timeout_ms);
        h = r->backoff_max_ms > h ? r->backoff_max_ms : h;
        h = lease > h ? lease : h;
    }
    return h + HORIZON_MARGIN_MS;
}

/* ---- action events ----------------------------------------------------- */

/*
 * The id of the record an action acted on: the record in its response (the
 * one a create made or an update returned), else the target it was sent
 * to (its path's id). NULL for an action on no record (http, exec, a create
 * that got no answer). Borrowed from o or entry.
 */
static const char *acted_on(const cJSON *entry, const struct sink_outcome *o)
{
    const char *id = o != NULL && cJSON_IsObject(o->result) ? json_get_string(o->result, "id")
                                                            : NULL;
    if (id == NULL || id[0] == '\0') {
        id = json_get_string(entry, "target_id");
    }
    return id != NULL && id[0] != '\0' ? id : NULL;
}

int dispatch__action_event(struct store_txn *txn, const cJSON *entry, const char *type,
                           const struct sink_outcome *o)
{
    char when[32];
    char id[65];
    util_iso8601(util_wall_ms(), when);
    unsigned attempt = (unsigned)sink_num(entry, "attempts", 0);
    unsigned requeued = (unsigned)sink_num(entry, "requeued", 0);
    char *seed = xasprintf("%s:%u:%u:%s", sink_str(entry, "key"), requeued, attempt, type);
    sha256_hex(seed, strlen(seed), id);
    free(seed);
    id[32] = '\0';
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "id", id);
    cJSON_AddStringToObject(ev, "time", when);
    cJSON_AddStringToObject(ev, "type", type);
    cJSON_AddStringToObject(ev, "rule", sink_str(entry, "rule"));
    cJSON_AddStringToObject(ev, "action", sink_str(entry, "action"));
    cJSON_AddStringToObject(ev, "source", sink_str(entry, "source"));
    cJSON_AddStringToObject(ev, "trigger", sink_str(entry, "trigger"));
    cJSON_AddStringToObject(ev, "location", sink_str(entry, "location_id"));
    const char *record_id = acted_on(entry, o);
    if (record_id != NULL) {
        cJSON_AddStringToObject(ev, "record_id", record_id);
    }
    cJSON_AddNumberToObject(ev, "outbox_id", sink_num(entry, "id", 0));
    cJSON_AddNumberToObject(ev, "attempt", attempt);
    if (o != NULL && o->status != 0) {
        cJSON_AddNumberToObject(ev, "status", (double)o->status);
    } else {
        cJSON_AddNullToObject(ev, "status");
    }
    if (o != NULL && o->trace_id[0] != '\0') {
        cJSON_AddStringToObject(ev, "traceId", o->trace_id);
    } else {
        cJSON_AddNullToObject(ev, "traceId");
    }
    if (o != NULL && o->error[0] != '\0') {
        cJSON_AddStringToObject(ev, "error", o->error);
    }
    if (strcmp(type, "action.failed") == 0) {
        char next[32];
        util_iso8601(clock_to_wall((uint64_t)sink_num(entry, "next_at", 0)), next);
        cJSON_AddStringToObject(ev, "retry_at", next);
    }
    int rc = evlog_append(txn, ev, NULL);
    cJSON_Delete(ev);
    return rc;
}

/* ---- attempts ------------------------------------------------------------ */

struct claim_ctx {
    uint64_t id;
    uint64_t now;
    cJSON *entry;   /* out: the claimed entry */
    bool buried;    /* out: every attempt was used up (by crashes): not sent */
};

static int claim_txn(struct store_txn *txn, void *ud)
{
    struct claim_ctx *c = ud;
    cJSON_Delete(c->entry);
    c->entry = NULL;
    c->buried = false;
    if (FAILPOINT_ERROR("dispatch.claim")) {
        return -ENOSPC;
    }
    int rc = outbox_get(txn, c->id, &c->entry);
    if (rc != 0) {
        return rc;
    }
    unsigned made = (unsigned)sink_num(c->entry, "attempts", 0);
    unsigned max = (unsigned)sink_num(c->entry, "max_attempts", 8);
    if (made >= max) {
        /* Every attempt was claimed and none came back: the engine died during
         * each (a poison action). Dead-letter it instead of crashing again. */
        struct sink_outcome o = {.kind = SINK_DEAD};
        snprintf(o.error, sizeof(o.error),
                 "gave up after %u attempts: the engine stopped during each one", made);
        c->buried = true;
        rc = outbox_bury(txn, c->id, c->entry, o.error);
        if (rc == 0) {
            rc = dispatch__action_event(txn, c->entry, "action.dead", &o);
        }
        return rc;
    }
    unsigned attempts = made + 1;
    /* The lease: if we crash now, the entry is due again once it expires. */
    uint64_t lease = c->now + lease_ms(sink_num(c->entry, "timeout_ms", 30000));
    sink_set_num(c->entry, "attempts", attempts);
    sink_set_str(c->entry, "state", "inflight");
    rc = outbox_update(txn, c->id, c->entry, lease);
    const struct sink *sink = sink_find(sink_str(c->entry, "kind"));
    if (rc == 0 && sink != NULL && sink->claimed != NULL) {
        rc = sink->claimed(txn, c->entry, c->id);
    }
    return rc;
}

static void attempt_free(struct attempt *a)
{
    cJSON_Delete(a->entry);
    free(a);
}

static void unlink_attempt(struct dispatcher *d, struct attempt *a)
{
    for (struct attempt **pp = &d->inflight; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            d->ninflight--;
            return;
        }
    }
}

static void drained_cb(uv_timer_t *t)
{
    struct dispatcher *d = t->data;
    void (*cb)(void *) = d->on_drained;
    d->on_drained = NULL;
    if (cb != NULL) {
        cb(d->drained_ud);
    }
}

/* An attempt is over (recorded, or left for its lease): forget it. Once a
 * stopping dispatcher has nothing in flight, its drain callback runs (from
 * the loop, never inside a caller that may still use the list). */
static void attempt_release(struct dispatcher *d, struct attempt *a)
{
    unlink_attempt(d, a);
    attempt_free(a);
    if (d->closing) {
        maybe_free(d);
    } else if (d->stopping && d->ninflight == 0 && d->on_drained != NULL) {
        uv_timer_start(&d->timer, drained_cb, 0, 0);
    }
}

/* Store failures repeat: one log line per TROUBLE_LOG_INTERVAL_MS at most,
 * with the number of those left out since the last one. */
static void log_trouble(struct dispatcher *d, const char *msg)
{
    uint64_t now = clock_ms();
    if (d->trouble_logged_at != 0 && now - d->trouble_logged_at < TROUBLE_LOG_INTERVAL_MS) {
        d->trouble_unlogged++;
        return;
    }
    log_error("dispatch", "%s (%u similar message(s) left out in the last minute)", msg,
              d->trouble_unlogged);
    d->trouble_logged_at = now;
    d->trouble_unlogged = 0;
}

/*
 * The store refused a claim or an outcome and could not even park the entry
 * (database full, ENOSPC, EIO): pause all claiming for a capped, growing
 * backoff instead of trying again at once.
 */
static void store_trouble(struct dispatcher *d, const char *what, uint64_t id, int rc)
{
    uint64_t wait = util_backoff_ms(STORE_BACKOFF_MIN_MS, STORE_BACKOFF_MAX_MS, d->store_failures);
    d->store_failures++;
    d->blocked_until = clock_ms() + wait;
    char msg[300];
    snprintf(msg, sizeof(msg), "cannot %s action %llu: %s; the outbox pauses %llu ms (%u failed "
                               "write(s) in a row)",
             what, (unsigned long long)id, store_strerror(rc), (unsigned long long)wait,
             d->store_failures);
    log_trouble(d, msg);
}

static void store_recovered(struct dispatcher *d)
{
    if (d->store_failures > 0) {
        log_info("dispatch", "the outbox records again after %u failed write(s)",
                 d->store_failures);
    }
    d->store_failures = 0;
    d->blocked_until = 0;
}

struct finish_ctx {
    struct attempt *a;
    struct sink_outcome *o;
    uint64_t now;
    const char *type;  /* out: the event type written */
};

static int finish_txn(struct store_txn *txn, void *ud)
{
    struct finish_ctx *f = ud;
    struct attempt *a = f->a;
    struct sink_outcome *o = f->o;
    cJSON *entry = NULL;
    int rc = outbox_get(txn, a->id, &entry);
    if (rc == -ENOENT) {
        return 0; /* dropped meanwhile (dlq drop / another process): nothing to record */
    }
    if (rc != 0) {
        return rc;
    }
    sink_set_num(entry, "last_status", (double)o->status);
    sink_set_str(entry, "last_error", o->error);
    unsigned attempts = (unsigned)sink_num(entry, "attempts", 1);
    unsigned max = (unsigned)sink_num(entry, "max_attempts", 8);
    if (o->kind == SINK_SUCCESS) {
        f->type = "action.succeeded";
        rc = outbox_remove(txn, a->id);
        if (o->created_new) {
            cJSON_AddBoolToObject(entry, "upsert_new", true);
        }
    } else if (o->kind == SINK_RETRY && attempts < max) {
        f->type = "action.failed";
        uint64_t base = (uint64_t)sink_num(entry, "backoff_ms", 5000);
        uint64_t cap = (uint64_t)sink_num(entry, "backoff_max_ms", 900000);
        uint64_t wait = util_backoff_ms(base ? base : 5000, cap ? cap : 900000, attempts - 1);
        if (o->retry_after_s > 0 && (uint64_t)o->retry_after_s * 1000 > wait) {
            wait = (uint64_t)o->retry_after_s * 1000;
        }
        sink_set_str(entry, "state", "pending");
        sink_set_num(entry, "next_at", (double)(f->now + wait));
        rc = outbox_update(txn, a->id, entry, f->now + wait);
    } else {
        f->type = "action.dead";
        if (o->kind == SINK_RETRY) {
            char why[600];
            snprintf(why, sizeof(why), "gave up after %u attempts: %s", attempts, o->error);
            str_copy(o->error, sizeof(o->error), why);
        }
        rc = outbox_bury(txn, a->id, entry, o->error);
    }
    if (rc == 0) {
        rc = dispatch__action_event(txn, entry, f->type, o);
    }
    if (rc == 0 && a->sink != NULL && a->sink->recorded != NULL) {
        rc = a->sink->recorded(txn, entry, a->id, o);
    }
    cJSON_Delete(entry);
    return rc;
}

/* pollen_actions_total{rule, outcome}: succeeded, failed (to be retried), dead. */
static void count_outcome(const char *rule, const char *type)
{
    const char *outcome = strncmp(type, "action.", 7) == 0 ? type + 7 : type;
    char labels[240];
    metrics_add("pollen_actions_total",
                metrics_labels2(labels, sizeof(labels), "rule", rule ? rule : "", "outcome", outcome),
                1);
}

static void attempt_done(struct attempt *a, struct sink_outcome *o)
{
    struct dispatcher *d = a->d;
    /* Server text can echo a token or a secret: mask them before the text is
     * stored in the dead-letter store or an event, as the log does. */
    char clean[sizeof(o->error)];
    log_redact(o->error, clean, sizeof(clean));
    str_copy(o->error, sizeof(o->error), clean);
    FAILPOINT("dispatch.after_send_before_ack");
    struct finish_ctx f = {.a = a, .o = o, .now = clock_ms(), .type = ""};
    int rc = store_write(d->env.store, finish_txn, &f);
    if (rc != 0) {
        /* The lease makes the entry due again later: nothing is lost. */
        store_trouble(d, "record the outcome of", a->id, rc);
    } else {
        store_recovered(d);
        FAILPOINT("dispatch.after_ack");
        const char *rule = sink_str(a->entry, "rule");
        count_outcome(rule, f.type);
        if (o->kind == SINK_SUCCESS) {
            log_info("dispatch", "rule %s: %s succeeded (%s %ld)", rule,
                     sink_str(a->entry, "action"), a->sink != NULL ? a->sink->status_word : "status",
                     o->status);
        } else {
            struct log_fields lf = {.trace_id = o->trace_id};
            log_at_with(LOG_WARN, "dispatch", &lf, "rule %s: %s %s: %s%s%s", rule,
                        sink_str(a->entry, "action"),
                        strcmp(f.type, "action.dead") == 0 ? "moved to the dead-letter store"
                                                            : "failed, will retry",
                        o->error, o->trace_id[0] ? " traceId " : "", o->trace_id);
        }
    }
    cJSON_Delete(o->result);
    bool closing = d->closing;
    attempt_release(d, a); /* may free d when closing */
    if (!closing) {
        /* Not pump(d) here: a send that fails at once would recurse through it. */
        dispatcher_kick(d);
    }
}

struct park_ctx {
    uint64_t id;
    int why;          /* the claim's error */
    uint64_t wait;    /* out */
    unsigned failures; /* out */
};

/* Moves the due time of an entry that could not be claimed, with a growing
 * backoff and a counter in the entry ("claim_failures"). */
static int park_txn(struct store_txn *txn, void *ud)
{
    struct park_ctx *p = ud;
    cJSON *entry = NULL;
    int rc = outbox_get(txn, p->id, &entry);
    if (rc != 0) {
        return rc;
    }
    p->failures = (unsigned)sink_num(entry, "claim_failures", 0) + 1;
    uint64_t cap = (uint64_t)sink_num(entry, "backoff_max_ms", 0);
    p->wait = util_backoff_ms(STORE_BACKOFF_MIN_MS, cap > STORE_BACKOFF_MIN_MS ? cap : STORE_BACKOFF_MAX_MS,
                              p->failures - 1);
    sink_set_num(entry, "claim_failures", p->failures);
    char why[200];
    snprintf(why, sizeof(why), "cannot claim: %s", store_strerror(p->why));
    sink_set_str(entry, "last_error", why);
    rc = outbox_update(txn, p->id, entry, clock_ms() + p->wait);
    cJSON_Delete(entry);
    return rc;
}

/* A claim failed: park the entry alone when the store still takes that
 * small write, so the rest of the outbox keeps flowing. */
static int park(struct dispatcher *d, uint64_t id, int why)
{
    struct park_ctx p = {.id = id, .why = why};
    int rc = store_write(d->env.store, park_txn, &p);
    if (rc == 0) {
        char msg[300];
        snprintf(msg, sizeof(msg), "cannot claim action %llu: %s; trying it again in %llu ms "
                                   "(%u failed claim(s))",
                 (unsigned long long)id, store_strerror(why), (unsigned long long)p.wait,
                 p.failures);
        log_trouble(d, msg);
    }
    return rc;
}

struct quarantine_ctx {
    uint64_t id;
    uint64_t due_at;
    int why;        /* the error that made the entry unreadable */
    bool buried;    /* out: false when the entry was already gone */
};

static int quarantine_txn(struct store_txn *txn, void *ud)
{
    struct quarantine_ctx *q = ud;
    struct sink_outcome o = {.kind = SINK_DEAD};
    snprintf(o.error, sizeof(o.error), "the stored entry cannot be read (%s): it cannot be sent",
             store_strerror(q->why));
    cJSON *stub = NULL;
    int rc = outbox_quarantine(txn, q->id, q->due_at, o.error, &stub);
    q->buried = stub != NULL;
    if (rc == 0 && stub != NULL) {
        rc = dispatch__action_event(txn, stub, "action.dead", &o);
    }
    cJSON_Delete(stub);
    return rc;
}

/* An entry that no longer parses can never be sent: dead-letter it (a stub
 * with the reason, listed and dropped with `pollen dlq`) instead of trying
 * to claim it again and again. A due index key without its entry is removed. */
static int quarantine(struct dispatcher *d, uint64_t id, uint64_t due_at, int why)
{
    struct quarantine_ctx q = {.id = id, .due_at = due_at, .why = why};
    int rc = store_write(d->env.store, quarantine_txn, &q);
    if (rc == 0 && q.buried) {
        log_warn("dispatch", "action %llu moved to the dead-letter store: its stored entry "
                             "cannot be read (%s)",
                 (unsigned long long)id, store_strerror(why));
    }
    return rc;
}

/* A sink's report: a cancelled send is left for its lease, any other recorded. */
static void attempt_sink_done(struct sink_call *call, struct sink_outcome *o)
{
    struct attempt *a = container_of(call, struct attempt, call);
    if (o->cancelled) {
        cJSON_Delete(o->result);
        attempt_release(a->d, a);
        return;
    }
    attempt_done(a, o);
}

static void send_attempt(struct dispatcher *d, struct attempt *a)
{
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(a->entry, "request");
    const char *kind = sink_str(a->entry, "kind");
    a->sink = sink_find(kind);
    a->call = (struct sink_call){.env = &d->env, .entry = a->entry, .done = attempt_sink_done};
    if (a->sink == NULL) {
        struct sink_outcome o = {.kind = SINK_DEAD};
        snprintf(o.error, sizeof(o.error), "cannot send: unknown action kind '%.60s'", kind);
        attempt_done(a, &o);
        return;
    }
    int rc = a->sink->send(&a->call, req);
    if (rc != 0) {
        struct sink_outcome o = {.kind = SINK_DEAD};
        snprintf(o.error, sizeof(o.error), "cannot send: %s",
                 a->call.error[0] ? a->call.error : strerror(rc < 0 ? -rc : rc));
        attempt_done(a, &o);
    }
}

/* Claims entry id (due at due_at) and sends it. Returns 0, or the store error
 * that kept it from being claimed (claiming is then paused: store_trouble). */
static int start_attempt(struct dispatcher *d, uint64_t id, uint64_t due_at)
{
    struct claim_ctx c = {.id = id, .now = clock_ms()};
    int rc = store_write(d->env.store, claim_txn, &c);
    if (rc == -EBADMSG || rc == -ENOENT) {
        rc = quarantine(d, id, due_at, rc);
    } else if (rc != 0 && park(d, id, rc) == 0) {
        cJSON_Delete(c.entry);
        return 0;
    }
    if (rc != 0) {
        cJSON_Delete(c.entry);
        store_trouble(d, "claim", id, rc);
        return rc;
    }
    store_recovered(d);
    if (c.entry == NULL) {
        return 0; /* quarantined */
    }
    if (c.buried) {
        log_warn("dispatch", "rule %s: %s moved to the dead-letter store: the engine stopped "
                             "during each of its attempts",
                 sink_str(c.entry, "rule"), sink_str(c.entry, "action"));
        cJSON_Delete(c.entry);
        return 0;
    }
    FAILPOINT("dispatch.after_inflight_commit");
    struct attempt *a = xcalloc(1, sizeof(*a));
    a->d = d;
    a->id = id;
    a->entry = c.entry;
    a->next = d->inflight;
    d->inflight = a;
    d->ninflight++;
    send_attempt(d, a);
    return 0;
}

static void timer_cb(uv_timer_t *t)
{
    pump(t->data);
}

static unsigned max_inflight(const struct dispatcher *d)
{
    unsigned max = d->env.concurrency ? d->env.concurrency : DEFAULT_CONCURRENCY;
    return max > MAX_CONCURRENCY ? MAX_CONCURRENCY : max;
}

/* The ids pump must not pick: those in flight and those it already tried in
 * this turn (never the same id twice in one turn). */
static size_t skip_list(const struct dispatcher *d, const uint64_t *tried, size_t ntried,
                        uint64_t *skip)
{
    size_t n = 0;
    for (const struct attempt *a = d->inflight; a != NULL && n < MAX_CONCURRENCY; a = a->next) {
        skip[n++] = a->id;
    }
    for (size_t i = 0; i < ntried; i++) {
        skip[n++] = tried[i];
    }
    return n;
}

/*
 * Claims due entries up to the concurrency limit, at most PUMP_BATCH per
 * turn, then re-arms the timer: at once after a full batch (yielding to the
 * rest of the loop first), at the next due time, or when a store-trouble
 * pause ends.
 */
static void pump(struct dispatcher *d)
{
    if (d->stopping || d->closing || d->env.dry_run != NULL) {
        return;
    }
    uint64_t now = clock_ms();
    uint64_t delay = POLL_INTERVAL_MS;
    uint64_t next_at = 0;
    uint64_t tried[PUMP_BATCH];
    size_t ntried = 0;
    while (now >= d->blocked_until && d->ninflight < max_inflight(d)) {
        if (ntried == PUMP_BATCH) {
            delay = 0;
            break;
        }
        uint64_t skip[MAX_CONCURRENCY + PUMP_BATCH];
        size_t nskip = skip_list(d, tried, ntried, skip);
        struct store_txn *txn = NULL;
        if (store_txn_begin(d->env.store, false, &txn) != 0) {
            break;
        }
        uint64_t id = 0;
        int rc = outbox_next_due(txn, now, d->horizon, skip, nskip, &id, &next_at);
        store_txn_abort(txn);
        if (rc != 0) {
            break;
        }
        tried[ntried++] = id;
        uint64_t due_at = next_at;
        next_at = 0;
        if (start_attempt(d, id, due_at) != 0) {
            break;
        }
        now = clock_ms();
    }
    now = clock_ms();
    if (d->blocked_until > now) {
        next_at = d->blocked_until;
        delay = POLL_INTERVAL_MS;
    }
    if (next_at != 0) {
        uint64_t until = next_at > now ? next_at - now : 0;
        if (until < delay) {
            delay = until;
        }
    }
    if (!uv_is_closing((uv_handle_t *)&d->timer)) {
        uv_timer_start(&d->timer, timer_cb, delay, 0);
    }
}

/* ---- lifecycle ---------------------------------------------------------- */

struct dispatcher *dispatcher_create(const struct dispatcher_env *env)
{
    struct dispatcher *d = xcalloc(1, sizeof(*d));
    d->env = *env;
    d->horizon = due_horizon(env->cfg);
    uv_timer_init(env->loop, &d->timer);
    d->timer.data = d;
    return d;
}

void dispatcher_start(struct dispatcher *d)
{
    uv_timer_start(&d->timer, timer_cb, 0, 0);
}

void dispatcher_kick(struct dispatcher *d)
{
    if (d != NULL && !d->stopping && !d->closing && !uv_is_closing((uv_handle_t *)&d->timer)) {
        uv_timer_start(&d->timer, timer_cb, 0, 0);
    }
}

/* Cancels every attempt in flight; their callbacks run later, from the loop. */
static void cancel_inflight(struct dispatcher *d)
{
    for (struct attempt *a = d->inflight; a != NULL; a = a->next) {
        if (a->cancelled) {
            continue;
        }
        a->cancelled = true;
        if (a->call.handle != NULL) {
            a->sink->cancel(&a->call);
        }
    }
}

void dispatcher_stop(struct dispatcher *d)
{
    if (d == NULL) {
        return;
    }
    d->stopping = true;
    uv_timer_stop(&d->timer);
    cancel_inflight(d);
}

static void grace_over(uv_timer_t *t)
{
    struct dispatcher *d = t->data;
    log_warn("dispatch", "the shutdown grace is over: %zu action(s) still in flight are left "
                         "for their lease (sent again after the restart)",
             d->ninflight);
    cancel_inflight(d);
}

void dispatcher_drain(struct dispatcher *d, uint64_t grace_ms, void (*done)(void *ud), void *ud)
{
    d->stopping = true;
    d->on_drained = done;
    d->drained_ud = ud;
    if (d->ninflight == 0) {
        uv_timer_start(&d->timer, drained_cb, 0, 0);
        return;
    }
    log_info("dispatch", "waiting up to %llu ms for %zu action(s) in flight",
             (unsigned long long)grace_ms, d->ninflight);
    uv_timer_start(&d->timer, grace_over, grace_ms, 0);
}

/* Frees the dispatcher once its timer is closed and no attempt can call back. */
static void maybe_free(struct dispatcher *d)
{
    if (d->closing && d->timer_closed && d->ninflight == 0) {
        free(d);
    }
}

static void closed_cb(uv_handle_t *h)
{
    struct dispatcher *d = h->data;
    d->timer_closed = true;
    maybe_free(d);
}

void dispatcher_close(struct dispatcher *d)
{
    if (d == NULL || d->closing) {
        return;
    }
    dispatcher_stop(d);
    d->closing = true;
    uv_close((uv_handle_t *)&d->timer, closed_cb);
}

bool dispatcher_idle(const struct dispatcher *d)
{
    return d == NULL || d->ninflight == 0;
}

bool dispatcher_drained(const struct dispatcher *d)
{
    if (d == NULL || d->env.dry_run != NULL) {
        return true;
    }
    if (d->ninflight > 0) {
        return false;
    }
    struct store_txn *txn = NULL;
    if (store_txn_begin(d->env.store, false, &txn) != 0) {
        return true;
    }
    uint64_t id = 0;
    uint64_t next_at = 0;
    int rc = outbox_next_due(txn, clock_ms(), d->horizon, NULL, 0, &id, &next_at);
    store_txn_abort(txn);
    return rc != 0;
}

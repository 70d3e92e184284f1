/*
 * cycle_record: the last-cycle record of a top-level trigger and its
 * location's rate record, which `pollen status` reads (status_store.h).
 *
 * A successful cycle writes both inside the txn that already commits the
 * end of the cycle (finish_txn in cycle.c): no extra commit, no extra fsync.
 * A failed cycle has no such txn, so it writes them in one small txn of its
 * own: failures are rare and already cost retries and a backoff.
 *
 * The record keeps, across restarts, what the engine itself does not: the
 * failures in a row (the engine's counter starts at 0 again), when the run
 * of failures began and when the last success ended.
 *
 * Thread context: loop thread.
 */
#include "poll_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "json.h"
#include "location.h"
#include "log.h"
#include "ratelimit.h"
#include "status_store.h"
#include "store.h"
#include "util.h"

void poller__record_load(struct poller *p)
{
    struct store_txn *txn = NULL;
    if (store_txn_begin(p->env.store, false, &txn) != 0) {
        return;
    }
    struct status_cycle c;
    if (status_cycle_get(txn, p->state_key, &c) == 0) {
        p->rec_last_ok = c.last_ok_ms;
        p->rec_failing_since = c.failing_since;
        p->rec_failures = c.outcome == STATUS_OUTCOME_OK ? 0 : c.failures;
    }
    store_txn_abort(txn);
}

void poller__fail_text(struct poller *p, const char *fmt, ...)
{
    char text[sizeof(p->cycle_error)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap); /* a copy: an argument may be p->cycle_error */
    va_end(ap);
    memcpy(p->cycle_error, text, sizeof(text));
}

/* The text of a failed response: status, traceId and message, or the transport error. */
static void describe_response(struct poller *p, const struct http_response *resp, const cJSON *body)
{
    if (resp->error == HTTP_E_AUTH || resp->status == 401) {
        p->error_auth = true;
    }
    if (resp->error != 0) {
        poller__fail_text(p, "%s %s: %s (%s)", p->def->method, p->def->path,
                           http_strerror(resp->error), resp->error_text);
        return;
    }
    const char *trace = ghl_api_trace_id(body);
    char message[200];
    ghl_api_message(body, message, sizeof(message));
    poller__fail_text(p, "%s %s: HTTP %ld%s%s%s%s", p->def->method, p->def->path, resp->status,
                       trace ? " traceId " : "", trace ? trace : "", message[0] ? ": " : "",
                       message);
}

void poller__fail_response(struct poller *p, const struct http_response *resp, const cJSON *body)
{
    cJSON *parsed = NULL;
    if (body == NULL && resp->body.len > 0 &&
        json_parse(resp->body.data, resp->body.len, &parsed, NULL) == 0) {
        body = parsed; /* a response the cycle did not parse: its traceId and message */
    }
    describe_response(p, resp, body);
    cJSON_Delete(parsed);
}

/* Which engine process writes: the limiter's counters start at 0 in each. */
static uint64_t instance_id(void)
{
    static uint64_t id;
    if (id == 0) {
        id = ((util_wall_ms() << 16) ^ (uint64_t)getpid()) | 1;
    }
    return id;
}

/* The budget of the poller's target (its location's, or its [api]'s) now,
 * in wall time, added to that target's record (in txn). */
static int rate_update(struct store_txn *txn, const struct poller *p, uint64_t wall)
{
    struct ratelimit_stats st;
    target_rate_stats(p->target, &st);
    struct status_rate r;
    int rc = status_rate_get(txn, target_name(p->target), &r);
    if (rc != 0 && rc != -ENOENT && rc != -EBADMSG) {
        return rc;
    }
    const struct config_location *lc = p->tc->location;
    r.at_ms = wall;
    r.window_ms = lc != NULL ? lc->rate_window_ms : RATELIMIT_DEFAULT_WINDOW_MS;
    r.daily_max = st.daily_max;
    r.blocked_until_ms = st.blocked_ms > 0 ? wall + st.blocked_ms : 0;
    r.throttled_429 = st.throttled_429;
    r.in_window = st.in_window;
    r.window_max = st.max;
    status_rate_count(&r, instance_id(), st.granted, wall);
    return status_rate_put(txn, target_name(p->target), &r);
}

/* The record of the cycle now ending; the caller sets the outcome's fields. */
static void record_base(const struct poller *p, uint64_t wall, struct status_cycle *c)
{
    uint64_t took = uv_now(p->env.loop) - p->cycle_started;
    *c = (struct status_cycle){
        .baseline = !p->seeded,
        .incremental = p->incr_cycle,
        .started_ms = wall > took ? wall - took : 0,
        .duration_ms = took,
        .records = p->records_seen,
        .events = p->cstats.events,
        .requests = p->stats.requests - p->requests_from,
        .every_ms = p->tc->every_ms,
        .last_ok_ms = p->rec_last_ok,
    };
}

static int put_both(struct store_txn *txn, const struct poller *p, const struct status_cycle *c,
                    uint64_t wall)
{
    int rc = status_cycle_put(txn, p->state_key, c);
    return rc != 0 ? rc : rate_update(txn, p, wall);
}

int poller__record_ok_txn(struct store_txn *txn, struct poller *p, unsigned extra_events)
{
    uint64_t wall = util_wall_ms();
    struct status_cycle c;
    record_base(p, wall, &c);
    c.outcome = STATUS_OUTCOME_OK;
    c.events += extra_events;
    c.last_ok_ms = wall;
    c.next_due_ms = p->env.once ? 0 : wall + p->next_delay;
    /* The run of failures is over. Set now, not after the commit: a
     * store_write retry sets the same; a failed commit fails the cycle, whose
     * record then counts from 0 again (a store error is logged anyway). */
    p->rec_failures = 0;
    p->rec_failing_since = 0;
    p->rec_last_ok = wall;
    return put_both(txn, p, &c, wall);
}

struct failed_record {
    const struct poller *p;
    const struct status_cycle *c;
    uint64_t wall;
};

static int failed_txn(struct store_txn *txn, void *ud)
{
    struct failed_record *f = ud;
    return put_both(txn, f->p, f->c, f->wall);
}

void poller__record_failed(struct poller *p, uint64_t next_delay)
{
    if (p->stopping && !p->error_auth) {
        return; /* a shutdown cut the cycle short: not a failure of the trigger */
    }
    if (p->rec_stopped) {
        return; /* poller_stop_auth has recorded why */
    }
    uint64_t wall = util_wall_ms();
    struct status_cycle c;
    record_base(p, wall, &c);
    c.outcome = p->error_auth ? STATUS_OUTCOME_AUTH : STATUS_OUTCOME_FAILED;
    c.failures = ++p->rec_failures;
    if (p->rec_failing_since == 0) {
        p->rec_failing_since = c.started_ms;
    }
    c.failing_since = p->rec_failing_since;
    c.next_due_ms = next_delay > 0 ? wall + next_delay : 0;
    snprintf(c.error, sizeof(c.error), "%s",
             p->cycle_error[0] ? p->cycle_error : "the cycle failed (see the engine log)");
    struct failed_record f = {p, &c, wall};
    int rc = store_write(p->env.store, failed_txn, &f);
    if (rc != 0) {
        log_warn(p->tag, "cannot record the failed cycle for `pollen status`: %s",
                 store_strerror(rc));
    }
}

void poller_stop_auth(struct poller *p, const char *reason)
{
    if (p->stopping || p->parent != NULL) {
        /* A for_each child writes no cycle records (its rounds never
         * would clear this one): its parent's says it. */
        poller_stop(p);
        return;
    }
    bool busy = p->busy;
    p->error_auth = true;
    poller__fail_text(p, "%s", reason);
    if (!busy) {
        /* Between cycles: the record names no cycle of its own. */
        p->cycle_started = uv_now(p->env.loop);
        p->records_seen = 0;
        p->requests_from = p->stats.requests;
        memset(&p->cstats, 0, sizeof(p->cstats));
    }
    poller__record_failed(p, 0);
    p->rec_stopped = true; /* the cut-short cycle, if any, records nothing more */
    poller_stop(p);
}

/*
 * incremental: the watermark and the reconcile schedule of a top-level
 * trigger whose definition says incremental = filter (M13; catalog-map §3.2;
 * see poll_int.h). cycle.c runs the enumeration either way; this file
 * decides which kind each cycle is, what an incremental cycle adds to the
 * request, and when W moves.
 *
 *   - A reconcile is today's full enumeration with its deletion phase. The
 *     first cycle (the baseline) is one, and so is every cycle once
 *     `reconcile` (default 1h) has passed since the last one began.
 *   - An incremental cycle sends the definition's incremental.body members
 *     with {watermark} = W - watermark_lag, so the API lists only records
 *     updated since then, oldest update first, paged by cursor. It diffs
 *     them as any cycle does (re-read records hash equal: no event) and
 *     never decides a deletion.
 *
 * W is the largest watermark_field value read, in the server's own time:
 * pollen's clock never enters it. In an incremental cycle the pages come
 * sorted ascending on that field, so the largest value of the pages
 * committed so far is safe: every record not read yet is at or after it
 * (a record updated meanwhile moves behind it), and the next cycle asks
 * from W - lag with gte, so equal timestamps are read again. W commits in
 * the page's own txn, only when it moves (an unchanged page writes
 * nothing). A reconcile lists in another order, so a record updated after
 * its page was read may be older than later pages' records: its W is
 * max(W, largest seen - the reconcile's duration), measured on the
 * monotonic clock. Any update the reconcile missed happened after it began,
 * in server time after (largest seen - duration).
 *
 * A reconcile's pages after the first go in the location's sweep class
 * (poller__incr_page_class): a reconcile of a few hundred pages spreads
 * within the sweeps' share of the window instead of taking most of it, so
 * the polls of the location's other triggers never wait behind it. When
 * the sweeps' daily share is spent it goes on in the poll class at one page
 * a second (about a tenth of the default window): it is the only source of
 * deletions, so it must end. A reconcile that takes longer only lowers W
 * (by its duration, above): pacing never makes W unsafe.
 *
 * A 422 to the filter degrades the trigger to full enumerations every
 * `reconcile` for POLLER_DEGRADED_RETRY_MS (a day, wall time), then the
 * next cycle tries the filter again. Both the degraded mode and a
 * reconcile an incremental read asked for (reconcile_now) are in the
 * persisted state, so a restart keeps them.
 *
 * Scheduling uses wall time only across restarts: the state keeps when the
 * last reconcile began, and a restart waits for the rest of the interval,
 * at most one whole interval (a clock stepped back never delays it more).
 *
 * Thread context: loop thread.
 */
#include "poll_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "api.h"
#include "config.h"
#include "inifile.h"
#include "isotime.h"
#include "json.h"
#include "log.h"
#include "util.h"

int poller__watermark_parse(const cJSON *v, int64_t *out_ms)
{
    if (cJSON_IsString(v)) {
        return isotime_parse(v->valuestring, ISOTIME_LOOSE, out_ms);
    }
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= (double)ISOTIME_MAX_MS &&
        floor(v->valuedouble) == v->valuedouble) {
        *out_ms = (int64_t)v->valuedouble;
        return 0;
    }
    return -EINVAL;
}

int64_t poller__records_watermark(const struct poller *p, const cJSON *records)
{
    int64_t max = -1;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, records)
    {
        int64_t ms;
        const cJSON *v = json_get_path(rec, p->def->watermark_field);
        if (poller__watermark_parse(v, &ms) == 0 && ms > max) {
            max = ms;
        }
    }
    return max;
}

void poller__incr_init(struct poller *p)
{
    p->incr = p->def->incremental && p->parent == NULL && p->tc->reconcile_ms > 0;
    if (!p->incr) {
        p->incr_degraded = false; /* every cycle is a full scan: nothing to retry */
        p->reconcile_now = false;
        return;
    }
    if (p->incr_degraded) {
        char at[ISOTIME_LEN];
        isotime_format(p->incr_retry_at, at);
        log_info(p->tag, "the API refused the incremental filter earlier (HTTP 422): full "
                         "enumerations every reconcile until %s, then the filter is tried again", at);
    }
    uint64_t every = p->tc->reconcile_ms;
    uint64_t now = uv_now(p->env.loop);
    uint64_t wall = util_wall_ms();
    uint64_t wait = 0;
    if (p->reconciled_at != 0 && p->reconciled_at + every > wall) {
        wait = p->reconciled_at + every - wall;
        wait = wait > every ? every : wait; /* the clock went back: one interval at most */
    }
    p->reconcile_due = now + wait;
}

void poller__incr_cycle_begin(struct poller *p)
{
    p->cycle_max = -1;
    p->page_prev_w = p->watermark;
    p->pace_next = 0;
    p->pace_logged = false;
    if (p->incr && p->incr_degraded && util_wall_ms() >= p->incr_retry_at) {
        log_info(p->tag, "trying the incremental filter of %s again (the API refused it "
                         "with HTTP 422 a day ago)", p->def->name);
        p->incr_degraded = false; /* saved with this cycle; refused again: degraded again */
    }
    p->incr_cycle = p->incr && !p->incr_degraded && !p->reconcile_now && p->seeded &&
                    p->watermark >= 0 && uv_now(p->env.loop) < p->reconcile_due;
}

uint64_t poller__reconcile_pace(bool paced, uint64_t sweep_wait, uint64_t now,
                                uint64_t *slow_next, enum target_class *cls)
{
    if (!paced) {
        *cls = LOCATION_POLL;
        return 0;
    }
    if (sweep_wait <= POLLER_RECONCILE_HOLD_MS) {
        *cls = LOCATION_SWEEP; /* its window share, or a short wait for it */
        return 0;
    }
    if (now < *slow_next) {
        return *slow_next - now;
    }
    *slow_next = now + POLLER_RECONCILE_SLOW_MS;
    *cls = LOCATION_POLL;
    return 0;
}

uint64_t poller__incr_page_class(struct poller *p, enum target_class *cls)
{
    /* The first page is the request the trigger's poll would have made
     * anyway; the rest are the reconcile's extra burst. */
    bool paced = p->incr && !p->incr_cycle && p->page > 0;
    uint64_t wait = paced ? target_sweep_wait(p->target) : 0;
    uint64_t delay = poller__reconcile_pace(paced, wait, uv_now(p->env.loop), &p->pace_next, cls);
    if (paced && delay == 0 && *cls == LOCATION_POLL && !p->pace_logged) {
        p->pace_logged = true;
        log_info(p->tag, "the sweeps' share of the daily budget is spent (for about %llu min): "
                         "the reconcile goes on in the poll class, one page every %u ms",
                 (unsigned long long)(wait / 60000 + 1), POLLER_RECONCILE_SLOW_MS);
    }
    return delay;
}

/* Appends the elements of array add to array into (add is consumed). */
static void append_all(cJSON *into, cJSON *add)
{
    cJSON *e;
    while ((e = cJSON_DetachItemFromArray(add, 0)) != NULL) {
        cJSON_AddItemToArray(into, e);
    }
    cJSON_Delete(add);
}

void poller__incr_add_body(const struct poller *p, struct request_parts *r)
{
    if (!p->incr_cycle) {
        return;
    }
    int64_t since = p->watermark - (int64_t)p->tc->watermark_lag_ms;
    if (since < 0) {
        since = 0;
    }
    for (size_t i = 0; i < p->def->nincr_query; i++) {
        const struct catalog_binding *b = &p->def->incr_query[i];
        if (poller__param_value(p, b->name) == NULL) { /* else the user's own value stands */
            poller__parts_add_query(r, b->name,
                                    catalog_watermark_render_text(b->value, (long long)since));
        }
    }
    for (size_t i = 0; r->body != NULL && i < p->def->nincr_body; i++) {
        const struct catalog_binding *b = &p->def->incr_body[i];
        char *text = catalog_watermark_render(b->value, (long long)since);
        cJSON *v = NULL;
        int rc = json_parse(text, strlen(text), &v, NULL);
        free(text);
        if (rc != 0) {
            continue; /* the catalog checked it renders to JSON */
        }
        cJSON *have = cJSON_GetObjectItemCaseSensitive(r->body, b->name);
        if (have != NULL && cJSON_IsArray(have) && cJSON_IsArray(v) &&
            poller__param_value(p, b->name) != NULL) {
            /* The user's own filters narrow the listing: keep them, AND ours. */
            append_all(have, v);
        } else if (have != NULL) {
            cJSON_ReplaceItemInObjectCaseSensitive(r->body, b->name, v);
        } else {
            cJSON_AddItemToObject(r->body, b->name, v);
        }
    }
}

int poller__incr_page_txn(struct store_txn *txn, struct poller *p, const cJSON *records)
{
    if (!p->def->incremental || p->def->watermark_field == NULL) {
        return 0;
    }
    p->page_prev_w = p->watermark;
    int64_t page_max = poller__records_watermark(p, records);
    if (page_max > p->cycle_max) {
        p->cycle_max = page_max;
    }
    if (!p->incr_cycle || page_max <= p->watermark) {
        return 0; /* W did not move: nothing to write */
    }
    p->watermark = page_max;
    return poller__save_state(txn, p, p->seeded, p->cycle, NULL, 0);
}

void poller__incr_page_rollback(struct poller *p)
{
    p->watermark = p->page_prev_w;
}

/* State the end-of-cycle txn changes, kept to undo it when the txn fails.
 * One is enough: store_write runs the txn and its commit synchronously on
 * the loop thread, so no two triggers are ever between the two calls. */
static struct {
    int64_t watermark;
    uint64_t reconciled_at, full_total, reconcile_due;
    bool reconcile_now;
} finish_prev;

void poller__incr_finish_txn(struct poller *p)
{
    finish_prev.watermark = p->watermark;
    finish_prev.reconciled_at = p->reconciled_at;
    finish_prev.full_total = p->full_total;
    finish_prev.reconcile_due = p->reconcile_due;
    finish_prev.reconcile_now = p->reconcile_now;
    if (!p->incr || p->incr_cycle) {
        return; /* W moved with its pages */
    }
    uint64_t took = uv_now(p->env.loop) - p->cycle_started;
    if (p->cycle_max >= 0) {
        int64_t safe = p->cycle_max > (int64_t)took ? p->cycle_max - (int64_t)took : 0;
        if (safe > p->watermark) {
            p->watermark = safe;
        }
    } else if (p->watermark < 0) {
        p->watermark = 0; /* nothing listed: incremental reads ask for everything (cheap) */
    }
    p->reconciled_at = util_wall_ms() - took;
    p->full_total = p->records_seen;
    p->reconcile_due = p->cycle_started + p->tc->reconcile_ms;
    p->reconcile_now = false;
}

void poller__incr_finish_rollback(struct poller *p)
{
    p->watermark = finish_prev.watermark;
    p->reconciled_at = finish_prev.reconciled_at;
    p->full_total = finish_prev.full_total;
    p->reconcile_due = finish_prev.reconcile_due;
    p->reconcile_now = finish_prev.reconcile_now;
}

bool poller__incr_overgrown(struct poller *p)
{
    if (!p->incr_cycle || p->full_total == 0 || p->records_seen <= p->full_total) {
        return false;
    }
    log_warn(p->tag, "an incremental read listed %llu records, more than the last full "
                     "listing (%llu): the next cycle is a full reconcile",
             (unsigned long long)p->records_seen, (unsigned long long)p->full_total);
    p->reconcile_now = true; /* saved with the cycle's end: a restart reconciles first, too */
    return true;
}

static int save_state_txn(struct store_txn *txn, void *ud)
{
    const struct poller *p = ud;
    return poller__save_state(txn, p, p->seeded, p->cycle, NULL, 0);
}

bool poller__incr_refused(struct poller *p, const struct http_response *resp)
{
    if (!p->incr_cycle || resp->error != 0 || resp->status != 422) {
        return false;
    }
    /* The failure itself (with its traceId) was just logged by the caller. */
    char every[32];
    ini_format_duration(p->tc->reconcile_ms, every, sizeof(every));
    p->incr_degraded = true;
    p->incr_retry_at = util_wall_ms() + POLLER_DEGRADED_RETRY_MS;
    char at[ISOTIME_LEN];
    isotime_format(p->incr_retry_at, at);
    log_error(p->tag, "the API refused the incremental filter of %s (HTTP 422): polling with "
                      "full enumerations every %s instead, until %s (then it is tried again)",
              p->def->name, every, at);
    /* Kept at once, so a restart during the full enumeration does not ask again.
     * The rest of the state is what the last txn committed. */
    int rc = store_write(p->env.store, save_state_txn, p);
    if (rc != 0) {
        log_warn(p->tag, "cannot record the degraded mode now (%s): it is recorded with the "
                         "cycle's end", store_strerror(rc));
    }
    return true;
}

uint64_t poller__incr_next_delay(const struct poller *p, uint64_t delay)
{
    if (!p->incr || !p->incr_degraded || util_wall_ms() >= p->incr_retry_at) {
        return delay; /* not degraded, or the filter's retry is due: the next cycle tries it */
    }
    uint64_t now = uv_now(p->env.loop);
    return p->reconcile_due > now + delay ? p->reconcile_due - now : delay;
}

void poller__incr_describe(const struct poller *p, char *out, size_t len)
{
    if (!p->incr) {
        out[0] = '\0'; /* not incremental, or reconcile = 0: every cycle is a full scan */
        return;
    }
    char w[ISOTIME_LEN] = "none";
    if (p->watermark >= 0) {
        isotime_format((uint64_t)p->watermark, w);
    }
    snprintf(out, len, " (%s, watermark %s)",
             p->incr_cycle ? "incremental" : "reconcile", w);
}

/*
 * fanout: see fanout.h.
 */
#include "fanout.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "config.h"
#include "diff.h"
#include "failpoint.h"
#include "http.h"
#include "idset.h"
#include "json.h"
#include "location.h"
#include "log.h"
#include "poller_int.h"
#include "snapshot.h"
#include "store.h"
#include "util.h"

/* ---- fan-out queue (filled by the parent inside its transactions) ----- */

static char *queue_key(const struct poller *child, const char *parent_id, size_t *len)
{
    const char *parts[] = {child->state_key, parent_id};
    char *k = snapshot_key_prefix(parts, 2, len);
    (*len)--; /* no trailing separator */
    k[*len] = '\0';
    return k;
}

int fanout_notify_children(struct store_txn *txn, const char *record_id,
                           enum snapshot_change change, void *ud)
{
    struct poller *p = ud;
    for (size_t i = 0; i < p->nchildren; i++) {
        size_t klen = 0;
        char *key = queue_key(p->children[i], record_id, &klen);
        const char *kind = change == SNAPSHOT_DELETED ? "D" : "P";
        int rc = store_put(txn, STORE_QUEUE, key, klen, kind, 1);
        free(key);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

void fanout_kick_children(struct poller *p)
{
    for (size_t i = 0; i < p->nchildren; i++) {
        struct poller *c = p->children[i];
        if (!c->busy && !c->stopping && !c->closing && !c->done) {
            poller_schedule(c, 0);
        }
    }
}


/* ---- fan-out child ---------------------------------------------------- */

struct unit_apply {
    struct poller *p;
    const char *parent_id;
    const cJSON *records;      /* NULL: the parent is gone, purge */
    bool skip;                 /* only advance past this parent record (it was not readable) */
    struct snapshot_stats st;
};

static char *unit_prefix(const struct poller *p, const char *parent_id, size_t *len)
{
    const char *parts[] = {p->prefix, parent_id};
    /* p->prefix already ends with the separator: join without doubling it. */
    char *k = xasprintf("%s%s\x1f", parts[0], parts[1]);
    *len = strlen(k);
    return k;
}

/* Was this parent record part of the parent's baseline? */
static bool parent_in_baseline(struct store_txn *txn, const struct poller *p, const char *parent_id)
{
    char *key = xasprintf("%s%s", p->parent->prefix, parent_id);
    const void *val = NULL;
    size_t vlen = 0;
    bool baseline = true;
    if (store_get(txn, STORE_SNAP, key, strlen(key), &val, &vlen) == 0) {
        struct snap_entry e;
        if (diff_snap_decode(val, vlen, &e) == 0) {
            baseline = (e.flags & SNAP_BASELINE) != 0;
        }
    }
    free(key);
    return baseline;
}

/*
 * Deletions within one parent record's list (complete, unpaginated), as
 * for top-level triggers without confirm_delete: a record missing from a
 * read is held (SNAP_MISSING) and deleted only when the next read of the
 * same parent still lacks it; when the list comes back empty, only after
 * EMPTY_CONFIRMATIONS empty reads in a row.
 */
static int unit_deletions(struct store_txn *txn, struct poller *p, const struct snapshot_scope *sc,
                          struct idset *seen, bool listing_empty, unsigned empty_streak,
                          struct snapshot_stats *st)
{
    struct strlist gone = {0};
    struct strlist held = {0};
    struct store_cursor *cur = NULL;
    int rc = store_cursor_open(txn, STORE_SNAP, &cur);
    const void *key = NULL;
    const void *val = NULL;
    size_t klen = 0;
    size_t vlen = 0;
    if (rc == 0) {
        rc = store_cursor_seek(cur, sc->prefix, sc->prefix_len, &key, &klen, &val, &vlen);
    }
    while (rc == 0 && klen >= sc->prefix_len && memcmp(key, sc->prefix, sc->prefix_len) == 0) {
        if (klen > sc->prefix_len) {
            const char *id = (const char *)key + sc->prefix_len;
            size_t idlen = klen - sc->prefix_len;
            if (!idset_contains(seen, id, idlen)) {
                struct snap_entry e;
                bool was_missing = diff_snap_decode(val, vlen, &e) == 0 && (e.flags & SNAP_MISSING);
                char *sid = xstrndup(id, idlen);
                if (was_missing && (!listing_empty || empty_streak >= EMPTY_CONFIRMATIONS)) {
                    poller_strlist_add(&gone, sid);
                } else if (!was_missing) {
                    poller_strlist_add(&held, sid);
                }
                free(sid);
            }
        }
        rc = store_cursor_next(cur, &key, &klen, &val, &vlen);
    }
    store_cursor_close(cur);
    if (rc == -ENOENT) {
        rc = 0;
    }
    for (size_t i = 0; rc == 0 && i < gone.len; i++) {
        rc = snapshot_delete(txn, sc, gone.items[i], st, NULL, NULL);
        if (rc == -ENOENT) {
            rc = 0;
        }
    }
    for (size_t i = 0; rc == 0 && i < held.len; i++) {
        rc = snapshot_mark_missing(txn, sc, held.items[i], 0);
    }
    poller_strlist_clear(&gone);
    poller_strlist_clear(&held);
    return rc;
}

static int apply_unit_txn(struct store_txn *txn, void *ud)
{
    struct unit_apply *a = ud;
    struct poller *p = a->p;
    memset(&a->st, 0, sizeof(a->st));
    size_t plen = 0;
    char *prefix = unit_prefix(p, a->parent_id, &plen);
    int rc = 0;
    struct snapshot_scope sc;
    if (a->skip) {
        /* Nothing to record: the queue entry or the sweep position still moves on. */
    } else if (a->records == NULL) {
        poller_init_scope(p, &sc, prefix, plen, true);
        rc = snapshot_purge(txn, &sc);
    } else {
        /* The marker (the bare prefix) says this parent record was read
         * before; its one byte counts empty reads in a row. */
        const void *mval = NULL;
        size_t mlen = 0;
        bool first = store_get(txn, STORE_SNAP, prefix, plen, &mval, &mlen) == -ENOENT;
        unsigned streak = (!first && mlen == 1) ? *(const uint8_t *)mval : 0;
        bool empty = cJSON_GetArraySize(a->records) == 0;
        streak = empty ? (streak < 255 ? streak + 1 : 255) : 0;
        bool silent = first && !p->tc->first_poll_emit && parent_in_baseline(txn, p, a->parent_id);
        poller_init_scope(p, &sc, prefix, plen, silent);
        struct idset seen;
        idset_init(&seen);
        rc = snapshot_apply_records(txn, &sc, a->records, &seen, &a->st, NULL, NULL);
        /* A record without a valid id may be any missing one: no deletions. */
        if (rc == 0 && a->st.invalid == 0) {
            rc = unit_deletions(txn, p, &sc, &seen, empty, streak, &a->st);
        }
        idset_finish(&seen);
        if (rc == 0) {
            uint8_t mark = (uint8_t)streak;
            rc = store_put(txn, STORE_SNAP, prefix, plen, &mark, 1);
        }
    }
    if (rc == 0 && a->p->unit_from_queue) {
        size_t klen = 0;
        char *qk = queue_key(p, a->parent_id, &klen);
        rc = store_del(txn, STORE_QUEUE, qk, klen);
        if (rc == -ENOENT) {
            rc = 0;
        }
        free(qk);
    }
    if (rc == 0 && !a->p->unit_from_queue) {
        rc = poller_save_state(txn, p, true, p->cycle, a->parent_id, p->round_started);
    }
    free(prefix);
    if (rc == 0) {
        FAILPOINT("sweep.before_commit");
    }
    return rc;
}

static void unit_finish(struct poller *p, bool ok)
{
    p->busy = false;
    p->pending = NULL;
    if (ok) {
        p->failures = 0;
        if (!p->unit_from_queue) {
            free(p->sweep_cursor);
            p->sweep_cursor = p->unit_id;
            p->unit_id = NULL;
        }
        poller_schedule(p, 0);
    } else {
        p->failures++;
        uint64_t delay = util_backoff_ms(1000, 60000, p->failures);
        poller_schedule(p, delay);
    }
    free(p->unit_id);
    p->unit_id = NULL;
}

static void run_unit_txn(struct poller *p, const cJSON *records, bool skip)
{
    struct unit_apply a = {.p = p, .parent_id = p->unit_id, .records = records, .skip = skip};
    int rc = store_write(p->env.store, apply_unit_txn, &a);
    if (rc != 0) {
        log_error(p->tag, "cannot record the %s of %s: %s", p->def->records, p->unit_id,
                  store_strerror(rc));
        unit_finish(p, false);
        return;
    }
    FAILPOINT("sweep.after_commit");
    p->stats.events += a.st.events;
    poller_events_committed(p, a.st.events);
    p->stats.records += records ? (uint64_t)cJSON_GetArraySize(records) : 0;
    if (a.st.invalid > 0) {
        log_warn(p->tag, "%s %s: skipped %u %s without a valid '%s'; no deletions decided from "
                         "this read",
                 p->def->fan_out, p->unit_id, a.st.invalid, p->def->records,
                 p->def->id_field ? p->def->id_field : "id");
    }
    if (a.st.events > 0) {
        log_info(p->tag, "%s %s: %u created, %u updated, %u deleted", p->def->fan_out, p->unit_id,
                 a.st.created, a.st.updated, a.st.deleted);
    }
    unit_finish(p, true);
}

static void on_unit(struct http_response *resp, void *ud)
{
    struct poller *p = ud;
    p->pending = NULL;
    if (p->stopping) {
        unit_finish(p, false);
        return;
    }
    cJSON *body = NULL;
    if (resp->body.len > 0) {
        json_parse_arena(resp->body.data, resp->body.len, &body, NULL);
    }
    enum outcome oc = poller_classify(resp);
    if (oc == OUTCOME_GONE) {
        /* The parent record is gone (or not readable): the parent's own
         * deletion handling will purge it; move on without touching the
         * snapshot (an error must never look like "no tasks"). */
        json_arena_free(body);
        log_debug(p->tag, "%s %s not readable (HTTP %ld); skipping", p->def->fan_out, p->unit_id,
                  resp->status);
        run_unit_txn(p, NULL, true);
        return;
    }
    const cJSON *records = body ? json_get_path(body, p->def->records) : NULL;
    if (oc != OUTCOME_OK || !cJSON_IsArray(records)) {
        if (oc == OUTCOME_OK) {
            const char *trace = body ? json_get_string(body, "traceId") : NULL;
            log_warn(p->tag, "%s: no '%s' array in the response (traceId %s)", p->def->path,
                     p->def->records, trace ? trace : "none");
        } else {
            poller_log_failure(p, p->def->path, resp, body);
        }
        json_arena_free(body);
        unit_finish(p, false);
        return;
    }
    run_unit_txn(p, records, false);
    json_arena_free(body);
}

/* Next parent record to read: from the queue first, then round-robin. */
static int pick_unit(struct poller *p, char **id, bool *from_queue, bool *purge)
{
    struct store_txn *txn = NULL;
    int rc = store_txn_begin(p->env.store, false, &txn);
    if (rc != 0) {
        return rc;
    }
    *id = NULL;
    *purge = false;
    size_t qplen = strlen(p->state_key) + 1;
    char *qprefix = xasprintf("%s\x1f", p->state_key);
    struct store_cursor *cur = NULL;
    const void *key = NULL;
    const void *val = NULL;
    size_t klen = 0;
    size_t vlen = 0;
    rc = store_cursor_open(txn, STORE_QUEUE, &cur);
    if (rc == 0) {
        rc = store_cursor_seek(cur, qprefix, qplen, &key, &klen, &val, &vlen);
    }
    if (rc == 0 && klen > qplen && memcmp(key, qprefix, qplen) == 0) {
        *id = xstrndup((const char *)key + qplen, klen - qplen);
        *from_queue = true;
        *purge = vlen == 1 && *(const char *)val == 'D';
    }
    store_cursor_close(cur);
    free(qprefix);
    if (*id == NULL && p->round_active) {
        /* Round-robin over the parent's snapshot. */
        const struct poller *par = p->parent;
        char *start = p->sweep_cursor ? xasprintf("%s%s", par->prefix, p->sweep_cursor)
                                      : xstrdup(par->prefix);
        size_t slen = strlen(start);
        rc = store_cursor_open(txn, STORE_SNAP, &cur);
        if (rc == 0) {
            rc = store_cursor_seek(cur, start, slen, &key, &klen, &val, &vlen);
            if (rc == 0 && p->sweep_cursor != NULL && klen == slen && memcmp(key, start, slen) == 0) {
                rc = store_cursor_next(cur, &key, &klen, &val, &vlen);
            }
        }
        if (rc == 0 && klen > par->prefix_len && memcmp(key, par->prefix, par->prefix_len) == 0) {
            *id = xstrndup((const char *)key + par->prefix_len, klen - par->prefix_len);
            *from_queue = false;
        }
        store_cursor_close(cur);
        free(start);
    }
    store_txn_abort(txn);
    return 0;
}

static int round_state_txn(struct store_txn *txn, void *ud)
{
    struct poller *p = ud;
    return poller_save_state(txn, p, p->round_active, p->cycle, p->sweep_cursor, p->round_started);
}

static void report_done(struct poller *p)
{
    p->done = true;
    if (p->env.on_done != NULL) {
        p->env.on_done(p, p->env.ud);
    }
}

/* No parent record left to read in this round: close it, or start the next one. */
static void round_boundary(struct poller *p)
{
    uint64_t now = util_wall_ms();
    if (p->round_active) {
        p->round_active = false;
        p->cycle++;
        p->stats.cycles++;
        free(p->sweep_cursor);
        p->sweep_cursor = NULL;
        store_write(p->env.store, round_state_txn, p);
        log_debug(p->tag, "sweep round %llu complete", (unsigned long long)p->cycle);
        if (p->env.once) {
            report_done(p);
            return;
        }
    }
    uint64_t next = p->round_started + p->tc->every_ms;
    if (p->round_started != 0 && now < next) {
        poller_schedule(p, next - now); /* the parent kicks us earlier when records change */
        return;
    }
    p->round_active = true;
    p->round_started = now;
    free(p->sweep_cursor);
    p->sweep_cursor = NULL;
    store_write(p->env.store, round_state_txn, p);
    poller_schedule(p, 0);
}

void fanout_sweep_next(struct poller *p)
{
    if (p->busy || p->stopping || p->closing || p->done) {
        return;
    }
    if (!p->parent->seeded) {
        poller_schedule(p, 1000);
        return;
    }
    char *id = NULL;
    bool from_queue = false;
    bool purge = false;
    if (pick_unit(p, &id, &from_queue, &purge) != 0) {
        poller_schedule(p, 1000);
        return;
    }
    if (id == NULL) {
        round_boundary(p);
        return;
    }
    p->busy = true;
    p->unit_id = id;
    p->unit_from_queue = from_queue;
    if (purge) {
        run_unit_txn(p, NULL, false);
        return;
    }
    struct request_parts r;
    if (poller_build_base(p, id, &r) != 0) {
        unit_finish(p, false);
        return;
    }
    int rc = poller_submit(p, from_queue ? LOCATION_POLL : LOCATION_SWEEP, &r, p->def->method, on_unit, p);
    poller_parts_finish(&r);
    if (rc != 0) {
        unit_finish(p, false);
    }
}


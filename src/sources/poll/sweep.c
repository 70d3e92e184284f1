/*
 * sweep: see sweep.h.
 */
#include "sweep.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "catalog.h"
#include "config.h"
#include "diff.h"
#include "failpoint.h"
#include "http.h"
#include "idset.h"
#include "inifile.h"
#include "json.h"
#include "location.h"
#include "log.h"
#include "poll_int.h"
#include "snapshot.h"
#include "store.h"
#include "util.h"

/* Reads of one parent record in a row before it is skipped for this round. */
#define UNIT_ATTEMPTS 3
/* --once: failed reads in a row (any parents) before the round is given up. */
#define ONCE_MAX_FAILURES 6
/* A parent record that keeps failing is reported at most this often (other lines: debug). */
#define REPORT_INTERVAL_MS (60ULL * 60 * 1000)
/* Failing parent records remembered for that; the oldest report is forgotten first. */
#define REPORT_CAP 256
/* confirm_delete: records asked about per read of a parent record; the rest wait for the next. */
#define UNIT_CONFIRM_CAP 50
/* A full round of every parent record starts at most this long after the last one ended,
 * unless the child trigger sets `reconcile`. */
#define SWEEP_DEFAULT_RECONCILE_MS (24ULL * 60 * 60 * 1000)
/* A swept read that the location would hold longer than this (the sweeps' share of the
 * window or of the day is spent) is not queued yet: the child, which reads one parent
 * record at a time, stays free for the parent records that changed. */
#define SWEEP_HOLD_MS 1000ULL
/* A hold longer than a window (the daily share is spent) is logged once. */
#define SWEEP_PAUSE_NOTICE_MS 60000ULL

/* Queue entry kinds: the parent record was created, changed, or deleted (purge). */
#define QUEUE_CREATED 'C'
#define QUEUE_CHANGED 'P'
#define QUEUE_DELETED 'D'
/* A queue entry's value: kind + generation (queue_decode). */
#define QUEUE_VALUE_LEN 9

struct sweep_report {
    char *id;
    uint64_t at;               /* uv_now of the last loud report */
};

/* ---- fan-out queue (filled by the parent inside its transactions) ----- */

static char *queue_key(const struct poller *child, const char *parent_id, size_t *len)
{
    const char *parts[] = {child->state_key, parent_id};
    char *k = snapshot_key_prefix(parts, 2, len);
    (*len)--; /* no trailing separator */
    k[*len] = '\0';
    return k;
}

/*
 * A queue entry's value: the kind byte, then the generation (8 bytes, little
 * endian). The generation lets the child remove only the entry it read: the
 * parent may queue the record again while that read is in flight. A value of
 * the kind byte alone (state written before generations) is generation 0.
 */
static struct poller_queued queue_decode(const void *val, size_t vlen)
{
    struct poller_queued e = {.kind = vlen >= 1 ? *(const char *)val : QUEUE_CHANGED};
    const unsigned char *b = val;
    for (size_t i = 0; vlen >= QUEUE_VALUE_LEN && i < 8; i++) {
        e.gen |= (uint64_t)b[1 + i] << (8 * i);
    }
    return e;
}

static void queue_encode(struct poller_queued e, unsigned char out[QUEUE_VALUE_LEN])
{
    out[0] = (unsigned char)e.kind;
    for (size_t i = 0; i < 8; i++) {
        out[1 + i] = (unsigned char)(e.gen >> (8 * i));
    }
}

/* The entry under key, or false when there is none. */
static bool queue_get(struct store_txn *txn, const char *key, size_t klen,
                      struct poller_queued *e)
{
    const void *val = NULL;
    size_t vlen = 0;
    if (store_get(txn, STORE_QUEUE, key, klen, &val, &vlen) != 0) {
        return false;
    }
    *e = queue_decode(val, vlen);
    return true;
}

/* The entry to write for a change: the next generation. A change after a
 * creation the child has not read yet stays a creation: the child's first
 * read of that parent must report its records. */
static struct poller_queued queue_next(struct store_txn *txn, const char *key, size_t klen,
                                       enum snapshot_change change)
{
    struct poller_queued old = {.kind = 0, .gen = 0};
    bool had = queue_get(txn, key, klen, &old);
    struct poller_queued e = {.kind = QUEUE_CHANGED, .gen = had ? old.gen + 1 : 1};
    if (change == SNAPSHOT_DELETED) {
        e.kind = QUEUE_DELETED;
    } else if (change == SNAPSHOT_CREATED || (had && old.kind == QUEUE_CREATED)) {
        e.kind = QUEUE_CREATED;
    }
    return e;
}

int poller__sweep_notify(struct store_txn *txn, const char *record_id,
                         enum snapshot_change change, void *ud)
{
    struct poller *p = ud;
    for (size_t i = 0; i < p->nchildren; i++) {
        size_t klen = 0;
        char *key = queue_key(p->children[i], record_id, &klen);
        unsigned char val[QUEUE_VALUE_LEN];
        queue_encode(queue_next(txn, key, klen, change), val);
        int rc = store_put(txn, STORE_QUEUE, key, klen, val, sizeof(val));
        free(key);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int poller__sweep_queue_read(struct store_txn *txn, const struct poller *p,
                             const char *parent_id)
{
    size_t klen = 0;
    char *key = queue_key(p, parent_id, &klen);
    struct poller_queued e;
    int rc = 0;
    if (!queue_get(txn, key, klen, &e)) {
        unsigned char val[QUEUE_VALUE_LEN];
        queue_encode((struct poller_queued){.kind = QUEUE_CHANGED, .gen = 1}, val);
        rc = store_put(txn, STORE_QUEUE, key, klen, val, sizeof(val));
    }
    free(key);
    return rc;
}

/* Removes parent_id's queue entry if it is still the one read (generation
 * gen); one queued again meanwhile stays, to be read again at once.
 * Returns 0 or -errno. */
static int queue_remove_read(struct store_txn *txn, const struct poller *p,
                             const char *parent_id, uint64_t gen)
{
    size_t klen = 0;
    char *key = queue_key(p, parent_id, &klen);
    struct poller_queued e;
    int rc = 0;
    if (queue_get(txn, key, klen, &e)) {
        if (e.gen == gen) {
            rc = store_del(txn, STORE_QUEUE, key, klen);
        } else {
            log_debug(p->tag, "%s %s changed again while read: read again", p->def->fan_out,
                      parent_id);
        }
    }
    free(key);
    return rc == -ENOENT ? 0 : rc;
}

void poller__sweep_kick(struct poller *p)
{
    for (size_t i = 0; i < p->nchildren; i++) {
        struct poller *c = p->children[i];
        if (!c->busy && !c->stopping && !c->closing && !c->done) {
            poller__schedule(c, 0);
        }
    }
}

uint64_t poller__sweep_round_wait(uint64_t last, uint64_t now, uint64_t interval)
{
    if (last == 0) {
        return 0;
    }
    if (last > now) {
        last = now; /* the wall clock stepped back: the round ended "now" */
    }
    uint64_t elapsed = now - last;
    return elapsed >= interval ? 0 : interval - elapsed;
}

/* ---- reporting a failing parent record once per hour ------------------ */

static struct sweep_report *report_find(struct poller *p, const char *id)
{
    for (size_t i = 0; i < p->nreports; i++) {
        if (strcmp(p->reports[i].id, id) == 0) {
            return &p->reports[i];
        }
    }
    return NULL;
}

/* Should a failure of this parent record be logged at warn level now? */
static bool report_due(struct poller *p, const char *id)
{
    const struct sweep_report *r = report_find(p, id);
    return r == NULL || uv_now(p->env.loop) - r->at >= REPORT_INTERVAL_MS;
}

static void report_mark(struct poller *p, const char *id)
{
    uint64_t now = uv_now(p->env.loop);
    struct sweep_report *r = report_find(p, id);
    if (r == NULL && p->nreports == REPORT_CAP) {
        r = &p->reports[0];
        for (size_t i = 1; i < p->nreports; i++) {
            if (p->reports[i].at < r->at) {
                r = &p->reports[i];
            }
        }
        free(r->id);
        r->id = xstrdup(id);
    } else if (r == NULL) {
        p->reports = xrealloc(p->reports, (p->nreports + 1) * sizeof(*p->reports));
        r = &p->reports[p->nreports++];
        r->id = xstrdup(id);
    }
    r->at = now;
}

/* The parent record was read again: a later failure is news. */
static void report_forget(struct poller *p, const char *id)
{
    struct sweep_report *r = report_find(p, id);
    if (r != NULL) {
        free(r->id);
        *r = p->reports[--p->nreports];
    }
}

static void sweep_free(struct poller *p)
{
    for (size_t i = 0; i < p->nreports; i++) {
        free(p->reports[i].id);
    }
    free(p->reports);
    p->reports = NULL;
    p->nreports = 0;
    free(p->fail_id);
    p->fail_id = NULL;
    idset_finish(&p->passed);
    poller__wide_free(p);
    free(p->unit_listing);
    p->unit_listing = NULL;
    poller__strlist_clear(&p->unit_gone);
    poller__batch_free(p);
}

/* ---- fan-out child ---------------------------------------------------- */

struct unit_apply {
    struct poller *p;
    const char *parent_id;
    const cJSON *records;      /* NULL: the parent is gone, purge */
    bool skip;                 /* only advance past this parent record (it was not readable) */
    struct snapshot_stats st;
};

/* Was rec created (the definition's created_field, server time) after p started? */
static bool created_since_start(const struct poller *p, const cJSON *rec)
{
    int64_t ms = 0;
    const cJSON *v = json_get_path(rec, p->def->created_field);
    return poller__watermark_parse(v, &ms) == 0 && ms > 0 && (uint64_t)ms > p->started;
}

/*
 * Applies a silent first read of one parent record's list (sc silent). The
 * records created after the trigger started are still reported as created:
 * a child's first round can take days when it reads one parent per request,
 * and a record added meanwhile under a parent not read yet would otherwise
 * be recorded as if it had always been there. Needs a created_field.
 */
static int apply_first_read(struct store_txn *txn, const struct poller *p,
                            const struct snapshot_scope *sc, const cJSON *records,
                            struct idset *seen, struct snapshot_stats *st)
{
    size_t late_n = 0;
    const cJSON *rec = NULL;
    if (p->def->created_field != NULL) {
        cJSON_ArrayForEach(rec, records)
        {
            late_n += created_since_start(p, rec);
        }
    }
    if (late_n == 0) {
        return snapshot_apply_records(txn, sc, records, seen, st, NULL, NULL);
    }
    /* References: the two arrays share the records, which records keeps. */
    cJSON *before = cJSON_CreateArray();
    cJSON *after = cJSON_CreateArray();
    cJSON_ArrayForEach(rec, records)
    {
        cJSON_AddItemReferenceToArray(created_since_start(p, rec) ? after : before, (cJSON *)rec);
    }
    int rc = snapshot_apply_records(txn, sc, before, seen, st, NULL, NULL);
    if (rc == 0) {
        struct snapshot_scope reported = *sc;
        reported.silent = false;
        reported.new_flags = 0;
        rc = snapshot_apply_records(txn, &reported, after, seen, st, NULL, NULL);
    }
    cJSON_Delete(before);
    cJSON_Delete(after);
    return rc;
}

char *poller__sweep_unit_prefix(const struct poller *p, const char *parent_id, size_t *len)
{
    const char *parts[] = {p->prefix, parent_id};
    /* p->prefix already ends with the separator: join without doubling it. */
    char *k = xasprintf("%s%s\x1f", parts[0], parts[1]);
    *len = strlen(k);
    return k;
}

int poller__sweep_parent_entry(struct store_txn *txn, const struct poller *p,
                               const char *parent_id, const void **val, size_t *vlen)
{
    char *key = xasprintf("%s%s", p->parent->prefix, parent_id);
    int rc = store_get(txn, STORE_SNAP, key, strlen(key), val, vlen);
    free(key);
    return rc;
}

bool poller__sweep_parent_in_baseline(struct store_txn *txn, const struct poller *p,
                                      const char *parent_id)
{
    const void *val = NULL;
    size_t vlen = 0;
    bool baseline = true;
    if (poller__sweep_parent_entry(txn, p, parent_id, &val, &vlen) == 0) {
        struct snap_entry e;
        if (diff_snap_decode(val, vlen, &e) == 0) {
            baseline = (e.flags & SNAP_BASELINE) != 0;
        }
    }
    return baseline;
}

/* Called for each snapshot record of a parent record that a read did not list. */
typedef void (*unlisted_cb)(void *ud, const char *id, size_t idlen, const void *val,
                            size_t vlen);

/* Walks the snapshot records under prefix (one parent record's) that listed lacks. */
static int each_unlisted(struct store_txn *txn, const char *prefix, size_t plen,
                         const struct idset *listed, unlisted_cb fn, void *ud)
{
    struct store_cursor *cur = NULL;
    int rc = store_cursor_open(txn, STORE_SNAP, &cur);
    const void *key = NULL;
    const void *val = NULL;
    size_t klen = 0;
    size_t vlen = 0;
    if (rc == 0) {
        rc = store_cursor_seek(cur, prefix, plen, &key, &klen, &val, &vlen);
    }
    while (rc == 0 && klen >= plen && memcmp(key, prefix, plen) == 0) {
        const char *id = (const char *)key + plen;
        if (klen > plen && !idset_contains(listed, id, klen - plen)) {
            fn(ud, id, klen - plen, val, vlen);
        }
        rc = store_cursor_next(cur, &key, &klen, &val, &vlen);
    }
    store_cursor_close(cur);
    return rc == -ENOENT ? 0 : rc;
}

struct unit_unlisted {
    struct strlist gone;
    struct strlist held;
    bool believe_empty;        /* the listing has records, or was empty often enough */
};

static void sort_unlisted(void *ud, const char *id, size_t idlen, const void *val, size_t vlen)
{
    struct unit_unlisted *u = ud;
    struct snap_entry e;
    bool was_missing = diff_snap_decode(val, vlen, &e) == 0 && (e.flags & SNAP_MISSING);
    char *sid = xstrndup(id, idlen);
    if (was_missing && u->believe_empty) {
        poller__strlist_add(&u->gone, sid);
    } else if (!was_missing) {
        poller__strlist_add(&u->held, sid);
    }
    free(sid);
}

/*
 * Deletions within one parent record's list (complete, unpaginated), as
 * for top-level triggers without confirm_delete: a record missing from a
 * read is held (SNAP_MISSING) and deleted only when the next read of the
 * same parent still lacks it; when the list comes back empty, only after
 * EMPTY_CONFIRMATIONS empty reads in a row.
 */
static int unit_deletions(struct store_txn *txn, const struct snapshot_scope *sc,
                          const struct idset *seen, bool listing_empty, unsigned empty_streak,
                          struct snapshot_stats *st)
{
    struct unit_unlisted u = {.believe_empty = !listing_empty ||
                                               empty_streak >= EMPTY_CONFIRMATIONS};
    int rc = each_unlisted(txn, sc->prefix, sc->prefix_len, seen, sort_unlisted, &u);
    for (size_t i = 0; rc == 0 && i < u.gone.len; i++) {
        rc = snapshot_delete(txn, sc, u.gone.items[i], st, NULL, NULL);
        if (rc == -ENOENT) {
            rc = 0;
        }
    }
    for (size_t i = 0; rc == 0 && i < u.held.len; i++) {
        rc = snapshot_mark_missing(txn, sc, u.held.items[i], 0);
    }
    poller__strlist_clear(&u.gone);
    poller__strlist_clear(&u.held);
    return rc;
}

/* confirm_delete: deletes the records missing from this read that a GET by id
 * said are gone (the others stay as they are: asked again on the next read). */
static int unit_confirmed_deletions(struct store_txn *txn, struct poller *p,
                                    const struct snapshot_scope *sc, struct snapshot_stats *st)
{
    for (size_t i = 0; i < p->unit_gone.len; i++) {
        int rc = snapshot_delete(txn, sc, p->unit_gone.items[i], st, NULL, NULL);
        if (rc != 0 && rc != -ENOENT) {
            return rc;
        }
    }
    return 0;
}

char poller__sweep_queued_kind(struct store_txn *txn, const struct poller *p,
                               const char *parent_id)
{
    size_t klen = 0;
    char *key = queue_key(p, parent_id, &klen);
    struct poller_queued e;
    char kind = queue_get(txn, key, klen, &e) ? e.kind : 0;
    free(key);
    return kind;
}

/* Is parent_id queued as deleted now (the parent saw it go while its list was read)? */
static bool queued_deleted(struct store_txn *txn, const struct poller *p, const char *parent_id)
{
    return poller__sweep_queued_kind(txn, p, parent_id) == QUEUE_DELETED;
}

static int apply_unit_txn(struct store_txn *txn, void *ud)
{
    struct unit_apply *a = ud;
    struct poller *p = a->p;
    memset(&a->st, 0, sizeof(a->st));
    if (!a->skip && a->records != NULL && p->unit_from_queue &&
        queued_deleted(txn, p, a->parent_id)) {
        /* A list read before the parent's deletion (a batch listing is read
         * well before its last group applies): purge, as the queue now says,
         * rather than drop that entry with the list. */
        a->records = NULL;
    }
    size_t plen = 0;
    char *prefix = poller__sweep_unit_prefix(p, a->parent_id, &plen);
    int rc = 0;
    struct snapshot_scope sc;
    if (a->skip) {
        /* Nothing to record: the queue entry or the sweep position still moves on. */
    } else if (a->records == NULL) {
        poller__init_scope(p, &sc, prefix, plen, true);
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
        /* A first read is silent unless the parent record was created while
         * this trigger existed: during the child's own first round (a
         * for_each trigger added later), and for parent baseline records,
         * unless a full round through the batch listing (wide.c) has read
         * every parent's records: then a parent never read had none. */
        bool silent = first && !p->tc->first_poll_emit && !p->unit_created &&
                      (p->cycle == 0 ||
                       (p->wide_ended == 0 &&
                        poller__sweep_parent_in_baseline(txn, p, a->parent_id)));
        poller__init_scope(p, &sc, prefix, plen, silent);
        struct idset seen;
        idset_init(&seen);
        rc = silent ? apply_first_read(txn, p, &sc, a->records, &seen, &a->st)
                    : snapshot_apply_records(txn, &sc, a->records, &seen, &a->st, NULL, NULL);
        /* A record without a valid id may be any missing one: no deletions. */
        if (rc == 0 && a->st.invalid == 0 && p->def->confirm_delete != NULL) {
            rc = unit_confirmed_deletions(txn, p, &sc, &a->st);
        } else if (rc == 0 && a->st.invalid == 0) {
            rc = unit_deletions(txn, &sc, &seen, empty, streak, &a->st);
        }
        idset_finish(&seen);
        if (rc == 0) {
            uint8_t mark = (uint8_t)streak;
            rc = store_put(txn, STORE_SNAP, prefix, plen, &mark, 1);
        }
    }
    if (rc == 0 && a->p->unit_from_queue) {
        rc = queue_remove_read(txn, p, a->parent_id, p->unit_queue_gen);
    }
    if (rc == 0 && !a->p->unit_from_queue) {
        rc = poller__save_state(txn, p, true, p->cycle, a->parent_id, p->round_started);
    }
    free(prefix);
    if (rc == 0) {
        FAILPOINT("sweep.before_commit");
    }
    return rc;
}

static void unit_release(struct poller *p)
{
    p->busy = false;
    p->pending = NULL;
    free(p->unit_id);
    p->unit_id = NULL;
    p->unit_records = NULL;
}

/* The sweep moves past the current parent record (read, or skipped). */
static void unit_advance(struct poller *p)
{
    if (p->env.once) {
        idset_add(&p->passed, p->unit_id, strlen(p->unit_id));
    }
    if (!p->unit_from_queue) {
        free(p->sweep_cursor);
        p->sweep_cursor = xstrdup(p->unit_id);
    }
}

static void unit_succeeded(struct poller *p)
{
    p->failures = 0;
    p->skips_in_a_row = 0;
    if (p->fail_id != NULL && strcmp(p->fail_id, p->unit_id) == 0) {
        free(p->fail_id);
        p->fail_id = NULL;
        p->fail_count = 0;
    }
    report_forget(p, p->unit_id);
    unit_advance(p);
    unit_release(p);
    poller__schedule(p, 0);
}

/*
 * One parent record cannot be read: skip it for this round so the ones
 * behind it are read. A queued one stays queued (passed over until the next
 * round); a swept one is passed by the sweep cursor.
 */
static void unit_skip(struct poller *p)
{
    const char *id = p->unit_id;
    bool loud = report_due(p, id);
    log_at(loud ? LOG_WARN : LOG_DEBUG, p->tag,
           "%s %s: skipped for this round after %u failed read(s); it is retried next round%s",
           p->def->fan_out, id, p->fail_count,
           loud ? " (reported again in an hour if it keeps failing)" : "");
    report_mark(p, id);
    idset_add(&p->passed, id, strlen(id));
    p->round_skipped++;
    p->skips_in_a_row++;
    unit_advance(p);
    free(p->fail_id);
    p->fail_id = NULL;
    p->fail_count = 0;
}

/* A read of the current parent record failed (permanent: retrying it would not help). */
static void unit_failed(struct poller *p, bool permanent)
{
    if (p->fail_id == NULL || strcmp(p->fail_id, p->unit_id) != 0) {
        free(p->fail_id);
        p->fail_id = xstrdup(p->unit_id);
        p->fail_count = 0;
    }
    p->fail_count++;
    p->failures++;
    /* Retries of one parent record back off by its own failures. After a skip
     * the next one is tried at once, unless parent records keep failing one
     * after another (an outage): then the wait grows with each skip in a row. */
    uint64_t delay = util_backoff_ms(1000, 60000, p->fail_count);
    if (permanent || p->fail_count >= UNIT_ATTEMPTS) {
        unit_skip(p);
        delay = p->skips_in_a_row > 1 ? util_backoff_ms(1000, 60000, p->skips_in_a_row - 1) : 0;
    }
    char *last = xstrdup(p->unit_id);
    unit_release(p);
    if (p->env.once && p->failures >= ONCE_MAX_FAILURES) {
        log_error(p->tag, "--once: giving up on this round after %u failed reads in a row "
                          "(the last of %s %s)", p->failures, p->def->fan_out, last);
        poller__report_done(p, false);
    } else {
        poller__schedule(p, delay);
    }
    free(last);
}

/* Failures of the current parent record log at warn level at most once an hour. */
static bool unit_loud(struct poller *p)
{
    return report_due(p, p->unit_id);
}

static void run_unit_txn(struct poller *p, const cJSON *records, bool skip)
{
    struct unit_apply a = {.p = p, .parent_id = p->unit_id, .records = records, .skip = skip};
    int rc = store_write(p->env.store, apply_unit_txn, &a);
    if (rc != 0) {
        log_at(unit_loud(p) ? LOG_ERROR : LOG_DEBUG, p->tag, "cannot record the %s of %s %s: %s",
               p->def->records, p->def->fan_out, p->unit_id, store_strerror(rc));
        unit_failed(p, false);
        return;
    }
    FAILPOINT("sweep.after_commit");
    p->stats.events += a.st.events;
    poller__events_committed(p, a.st.events);
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
    poller__progress_round(p, false);
    unit_succeeded(p);
}

/* ---- confirm_delete: missing records asked for by id ------------------ */

static void add_unlisted(void *ud, const char *id, size_t idlen, const void *val, size_t vlen)
{
    struct strlist *out = ud;
    (void)val;
    (void)vlen;
    if (out->len < UNIT_CONFIRM_CAP) {
        char *sid = xstrndup(id, idlen);
        poller__strlist_add(out, sid);
        free(sid);
    }
}

/*
 * The records of this parent record's snapshot that the listing lacks, at
 * most UNIT_CONFIRM_CAP. Nothing when a listed record has no valid id (it
 * may be any of them: no deletions are decided from this read).
 */
static void unit_missing(struct poller *p, const cJSON *records, struct strlist *out)
{
    const char *idf = p->def->id_field ? p->def->id_field : "id";
    struct idset listed;
    idset_init(&listed);
    const cJSON *rec;
    cJSON_ArrayForEach(rec, records)
    {
        const char *id = json_get_string(rec, idf);
        if (id == NULL || !diff_valid_record_id(id)) {
            idset_finish(&listed);
            return;
        }
        idset_add(&listed, id, strlen(id));
    }
    struct store_txn *txn = NULL;
    if (store_txn_begin(p->env.store, false, &txn) == 0) {
        size_t plen = 0;
        char *prefix = poller__sweep_unit_prefix(p, p->unit_id, &plen);
        each_unlisted(txn, prefix, plen, &listed, add_unlisted, out);
        store_txn_abort(txn);
        free(prefix);
    }
    idset_finish(&listed);
}

struct unit_confirm {
    struct poller *p;
    char *id;
};

static void unit_listing_drop(struct poller *p)
{
    free(p->unit_listing);
    p->unit_listing = NULL;
    p->unit_listing_len = 0;
    poller__strlist_clear(&p->unit_gone);
}

/* Every answer is in: record the listing with the confirmed deletions. */
static void unit_confirmed(struct poller *p)
{
    if (p->stopping) {
        unit_listing_drop(p);
        unit_release(p);
        return;
    }
    if (p->unit_records != NULL) {
        run_unit_txn(p, p->unit_records, false); /* a batch listing's group */
        unit_listing_drop(p);
        return;
    }
    cJSON *body = NULL;
    json_parse_arena(p->unit_listing, p->unit_listing_len, &body, NULL);
    const cJSON *records = poller__records(p, body);
    if (cJSON_IsArray(records)) {
        run_unit_txn(p, records, false);
    } else {
        unit_failed(p, false); /* cannot happen (it parsed before); never a purge */
    }
    json_arena_free(body);
    unit_listing_drop(p);
}

static void on_unit_confirm(struct http_response *resp, void *ud)
{
    struct unit_confirm *c = ud;
    struct poller *p = c->p;
    enum outcome oc = poller__classify(resp);
    if (oc == OUTCOME_GONE) {
        poller__strlist_add(&p->unit_gone, c->id);
    } else if (oc == OUTCOME_OK) {
        log_debug(p->tag, "%s %s: %s missing from the list but still exists", p->def->fan_out,
                  p->unit_id, c->id);
    } else {
        /* Unknown: an error never deletes; the next read of the parent asks again. */
        log_debug(p->tag, "%s %s: could not confirm the deletion of %s (HTTP %ld)",
                  p->def->fan_out, p->unit_id, c->id, resp->status);
    }
    free(c->id);
    free(c);
    if (--p->unit_confirms == 0) {
        unit_confirmed(p);
    }
}

/*
 * confirm_delete: asks by id for each record this listing lacks. Returns
 * true when requests are in flight (the listing, kept as resp's text, or
 * without resp the batch group p->unit_records, is recorded by
 * unit_confirmed once they are all answered); false when there is nothing
 * to ask: record the listing now.
 */
static bool unit_confirm_missing(struct poller *p, const struct http_response *resp,
                                  const cJSON *records)
{
    struct strlist missing = {0};
    unit_missing(p, records, &missing);
    p->unit_confirms = 1; /* held until every request is queued */
    for (size_t i = 0; i < missing.len; i++) {
        struct unit_confirm *c = xcalloc(1, sizeof(*c));
        c->p = p;
        c->id = xstrdup(missing.items[i]);
        p->unit_confirms++;
        if (poller__submit_confirm(p, p->unit_id, c->id, on_unit_confirm, c) != 0) {
            p->unit_confirms--; /* not asked: decides nothing */
            free(c->id);
            free(c);
        }
    }
    poller__strlist_clear(&missing);
    p->pending = NULL; /* several may be in flight; they are short, and complete on close */
    if (--p->unit_confirms == 0) {
        return false;
    }
    if (resp == NULL) {
        return true; /* a batch group: it stays in the batch until then */
    }
    p->unit_listing = xmalloc(resp->body.len);
    memcpy(p->unit_listing, resp->body.data, resp->body.len);
    p->unit_listing_len = resp->body.len;
    return true;
}

/* The parent record's list is in (resp's records, or without resp a batch group): record it. */
static void unit_listed(struct poller *p, const struct http_response *resp,
                        const cJSON *records)
{
    if (p->def->confirm_delete != NULL && unit_confirm_missing(p, resp, records)) {
        return; /* recorded when the confirmations are answered */
    }
    run_unit_txn(p, records, false);
    poller__strlist_clear(&p->unit_gone); /* answers that came back while queueing */
}

static void on_unit(struct http_response *resp, void *ud)
{
    struct poller *p = ud;
    p->pending = NULL;
    if (p->stopping) {
        unit_release(p);
        return;
    }
    cJSON *body = NULL;
    if (resp->body.len > 0) {
        json_parse_arena(resp->body.data, resp->body.len, &body, NULL);
    }
    enum outcome oc = poller__classify(resp);
    if (oc == OUTCOME_GONE) {
        /* The parent record is gone (or not readable): the parent's own
         * deletion handling will purge it; move on without touching the
         * snapshot (an error must never look like "no children"). */
        json_arena_free(body);
        log_debug(p->tag, "%s %s not readable (HTTP %ld); skipping", p->def->fan_out, p->unit_id,
                  resp->status);
        run_unit_txn(p, NULL, true);
        return;
    }
    const cJSON *records = body ? poller__records(p, body) : NULL;
    if (oc != OUTCOME_OK || !cJSON_IsArray(records)) {
        enum log_level level = unit_loud(p) ? LOG_WARN : LOG_DEBUG;
        char *what = xasprintf("%s %s (%s)", p->def->fan_out, p->unit_id, p->def->path);
        if (oc == OUTCOME_OK) {
            const char *trace = ghl_api_trace_id(body);
            log_at_with(level, p->tag, &(struct log_fields){.trace_id = trace},
                        "%s: no '%s' array in the response (traceId %s)", what,
                        p->def->records, trace ? trace : "none");
        } else {
            poller__log_failure_at(p, level, what, resp, body);
        }
        free(what);
        json_arena_free(body);
        unit_failed(p, oc == OUTCOME_PERMANENT);
        return;
    }
    unit_listed(p, resp, records);
    json_arena_free(body);
}

/* Called for each queued parent record (id[0..len), its queue entry); false stops the walk. */
typedef bool (*queued_cb)(void *ud, const char *id, size_t len, struct poller_queued e);

/* Walks the child's queue in key order. */
static void each_queued(struct store_txn *txn, const struct poller *p, queued_cb fn, void *ud)
{
    size_t qplen = strlen(p->state_key) + 1;
    char *qprefix = xasprintf("%s\x1f", p->state_key);
    struct store_cursor *cur = NULL;
    const void *key = NULL;
    const void *val = NULL;
    size_t klen = 0;
    size_t vlen = 0;
    int rc = store_cursor_open(txn, STORE_QUEUE, &cur);
    if (rc == 0) {
        rc = store_cursor_seek(cur, qprefix, qplen, &key, &klen, &val, &vlen);
    }
    while (rc == 0 && klen > qplen && memcmp(key, qprefix, qplen) == 0 &&
           fn(ud, (const char *)key + qplen, klen - qplen, queue_decode(val, vlen))) {
        rc = store_cursor_next(cur, &key, &klen, &val, &vlen);
    }
    store_cursor_close(cur);
    free(qprefix);
}

struct queued_pick {
    const struct poller *p;
    char **ids;                /* pick_queued: one; pick_batch: up to POLLER_BATCH_MAX */
    struct poller_queued *entries;
    size_t n;
    bool singles;              /* pick_batch: a queued parent waits for a single read */
};

static bool first_queued(void *ud, const char *id, size_t len, struct poller_queued e)
{
    struct queued_pick *q = ud;
    if (idset_contains(&q->p->passed, id, len)) {
        return true;
    }
    q->ids[0] = xstrndup(id, len);
    q->entries[0] = e;
    return false;
}

/* The first queued parent record not passed over in this round. */
static void pick_queued(struct store_txn *txn, const struct poller *p, char **id,
                        struct poller_queued *e)
{
    struct queued_pick q = {.p = p, .ids = id, .entries = e};
    each_queued(txn, p, first_queued, &q);
}

static bool batch_queued(void *ud, const char *id, size_t len, struct poller_queued e)
{
    struct queued_pick *q = ud;
    bool single = idset_contains(&q->p->batch_single, id, len);
    q->singles = q->singles || single;
    if (q->n < POLLER_BATCH_MAX && !single && e.kind != QUEUE_DELETED &&
        !idset_contains(&q->p->passed, id, len)) {
        q->ids[q->n] = xstrndup(id, len);
        q->entries[q->n++] = e;
    }
    return true;
}

/*
 * Queued parent records to read with one batch listing (not deletions, not
 * passed over, not handed to single reads by a failed batch): at most
 * POLLER_BATCH_MAX into ids and entries. Once no queued parent waits for a
 * single read, that set is forgotten.
 */
static size_t pick_batch(struct store_txn *txn, struct poller *p, char **ids,
                         struct poller_queued *entries)
{
    struct queued_pick q = {.p = p, .ids = ids, .entries = entries};
    each_queued(txn, p, batch_queued, &q);
    if (!q.singles) {
        idset_clear(&p->batch_single);
    }
    return q.n;
}

/* With a batch definition: starts a batch listing when two or more parents are queued. */
static bool batch_start(struct poller *p)
{
    struct store_txn *txn = NULL;
    if (p->def->batch_def == NULL || p->tc->batch_off || p->batch_off ||
        store_txn_begin(p->env.store, false, &txn) != 0) {
        return false;
    }
    char **ids = xcalloc(POLLER_BATCH_MAX, sizeof(*ids));
    struct poller_queued entries[POLLER_BATCH_MAX];
    size_t n = pick_batch(txn, p, ids, entries);
    store_txn_abort(txn);
    if (n >= 2) {
        return poller__batch_begin(p, ids, entries, n);
    }
    for (size_t i = 0; i < n; i++) {
        free(ids[i]);
    }
    free(ids);
    return false;
}

/* Does the snapshot hold any record of parent_id (more than its read marker)? */
static bool unit_has_records(const struct poller *p, const char *parent_id)
{
    struct store_txn *txn = NULL;
    if (store_txn_begin(p->env.store, false, &txn) != 0) {
        return true; /* unknown: the careful answer */
    }
    size_t plen = 0;
    char *prefix = poller__sweep_unit_prefix(p, parent_id, &plen);
    struct store_cursor *cur = NULL;
    const void *key = NULL;
    const void *val = NULL;
    size_t klen = 0;
    size_t vlen = 0;
    int rc = store_cursor_open(txn, STORE_SNAP, &cur);
    if (rc == 0) {
        rc = store_cursor_seek(cur, prefix, plen, &key, &klen, &val, &vlen);
    }
    if (rc == 0 && klen == plen && memcmp(key, prefix, plen) == 0) {
        rc = store_cursor_next(cur, &key, &klen, &val, &vlen); /* past the marker */
    }
    bool has = rc == 0 && klen > plen && memcmp(key, prefix, plen) == 0;
    store_cursor_close(cur);
    store_txn_abort(txn);
    free(prefix);
    return has;
}

/* Applies the next group of a complete batch listing as a read of its parent record. */
static bool batch_next_group(struct poller *p)
{
    char *id = NULL;
    struct poller_queued e = {.kind = QUEUE_CHANGED, .gen = 0};
    const cJSON *records = NULL;
    if (!poller__batch_take(p, &id, &e, &records)) {
        return false;
    }
    if (cJSON_GetArraySize(records) == 0 && unit_has_records(p, id)) {
        /* Nothing listed for a parent record that had records: it may be
         * gone with them (a batch listing leaves a deleted parent out, and a
         * GET by id cannot tell that from deleted records), which only its
         * own read tells apart. */
        idset_add(&p->batch_single, id, strlen(id));
        free(id);
        poller__schedule(p, 0);
        return true;
    }
    p->busy = true;
    p->unit_id = id;
    p->unit_from_queue = true;
    p->unit_created = e.kind == QUEUE_CREATED;
    p->unit_queue_gen = e.gen;
    p->unit_records = records;
    unit_listed(p, NULL, records);
    return true;
}

/* The next parent record after the sweep cursor (round-robin) not passed over. */
static void pick_swept(struct store_txn *txn, const struct poller *p, char **id)
{
    const struct poller *par = p->parent;
    char *start = p->sweep_cursor ? xasprintf("%s%s", par->prefix, p->sweep_cursor)
                                  : xstrdup(par->prefix);
    size_t slen = strlen(start);
    struct store_cursor *cur = NULL;
    const void *key = NULL;
    const void *val = NULL;
    size_t klen = 0;
    size_t vlen = 0;
    int rc = store_cursor_open(txn, STORE_SNAP, &cur);
    if (rc == 0) {
        rc = store_cursor_seek(cur, start, slen, &key, &klen, &val, &vlen);
        if (rc == 0 && p->sweep_cursor != NULL && klen == slen && memcmp(key, start, slen) == 0) {
            rc = store_cursor_next(cur, &key, &klen, &val, &vlen);
        }
    }
    while (rc == 0 && klen > par->prefix_len && memcmp(key, par->prefix, par->prefix_len) == 0) {
        const char *pid = (const char *)key + par->prefix_len;
        if (!idset_contains(&p->passed, pid, klen - par->prefix_len)) {
            *id = xstrndup(pid, klen - par->prefix_len);
            break;
        }
        rc = store_cursor_next(cur, &key, &klen, &val, &vlen);
    }
    store_cursor_close(cur);
    free(start);
}

/* Next parent record to read: from the queue first, then (swept) round-robin. */
static int pick_unit(struct poller *p, char **id, bool *from_queue, struct poller_queued *e,
                     bool swept)
{
    struct store_txn *txn = NULL;
    int rc = store_txn_begin(p->env.store, false, &txn);
    if (rc != 0) {
        return rc;
    }
    *id = NULL;
    *e = (struct poller_queued){.kind = QUEUE_CHANGED, .gen = 0};
    pick_queued(txn, p, id, e);
    *from_queue = *id != NULL;
    if (*id == NULL && p->round_active && swept) {
        pick_swept(txn, p, id);
    }
    store_txn_abort(txn);
    return 0;
}

static int round_state_txn(struct store_txn *txn, void *ud)
{
    struct poller *p = ud;
    return poller__save_state(txn, p, p->round_active, p->cycle, p->sweep_cursor, p->round_started);
}

static uint64_t reconcile_ms(const struct poller *p)
{
    return p->tc->reconcile_ms != 0 ? p->tc->reconcile_ms : SWEEP_DEFAULT_RECONCILE_MS;
}

/*
 * When the next full round may start, on the monotonic clock: `reconcile`
 * after the last one ended. After a restart it comes from the persisted wall
 * time (the end, or for state written before ends were kept, the start),
 * clamped (poller__sweep_round_wait), so a wall-clock step back never stalls
 * the sweep longer than one `reconcile`.
 */
static uint64_t round_due(struct poller *p)
{
    if (!p->round_due_known) {
        p->round_due_known = true;
        uint64_t last = p->round_ended != 0 ? p->round_ended : p->round_started;
        p->round_due = uv_now(p->env.loop) +
                       poller__sweep_round_wait(last, util_wall_ms(), reconcile_ms(p));
    }
    return p->round_due;
}

/* --once: the round is complete; done, failed if a parent record was skipped. */
static void once_round_done(struct poller *p)
{
    if (p->round_skipped > 0) {
        log_warn(p->tag, "--once: %u of the %s records could not be read in this round "
                         "(see the lines above)",
                 p->round_skipped, p->parent->tc->name);
    }
    poller__report_done(p, p->round_skipped == 0);
}

static void round_start(struct poller *p)
{
    p->round_active = true;
    p->round_started = util_wall_ms();
    p->requests_from = p->stats.requests;
    p->round_skipped = 0;
    idset_clear(&p->passed);
    free(p->sweep_cursor);
    p->sweep_cursor = NULL;
    store_write(p->env.store, round_state_txn, p);
    if (!poller__wide_on(p)) {
        log_info(p->tag, "sweep round %llu starts: every record of %s",
                 (unsigned long long)p->cycle + 1, p->parent->tc->name);
    }
    poller__schedule(p, 0);
}

/* The round line: how long it took and what it cost. */
static void round_log(struct poller *p)
{
    uint64_t now = util_wall_ms();
    uint64_t took = p->round_started < now ? now - p->round_started : 0;
    char next[32];
    ini_format_duration(reconcile_ms(p), next, sizeof(next));
    char wide[160];
    poller__wide_describe(p, wide, sizeof(wide));
    log_info(p->tag, "sweep round %llu complete in %llus: requests=%llu%s, %u skipped; the next "
                     "full round in %s",
             (unsigned long long)p->cycle, (unsigned long long)(took / 1000),
             (unsigned long long)(p->stats.requests - p->requests_from), wide, p->round_skipped,
             next);
}

/* No parent record left to read in this round: close it, or start the next one. */
static void round_boundary(struct poller *p)
{
    if (p->round_active) {
        if (p->env.once && !p->parent->done) {
            /* The parent's cycle may still queue records; its end kicks us
             * (the timer only covers a parent stopped without a kick). */
            poller__schedule(p, 1000);
            return;
        }
        p->round_active = false;
        p->cycle++;
        p->stats.cycles++;
        free(p->sweep_cursor);
        p->sweep_cursor = NULL;
        /* The next full round waits `reconcile` from here, across restarts too. */
        p->round_ended = util_wall_ms();
        if (p->wide != NULL) {
            p->wide_ended = p->round_ended;
        }
        p->round_due = uv_now(p->env.loop) + reconcile_ms(p);
        p->round_due_known = true;
        store_write(p->env.store, round_state_txn, p);
        round_log(p);
        poller__wide_free(p);
        if (p->env.once) {
            once_round_done(p);
            return;
        }
    }
    uint64_t now = uv_now(p->env.loop);
    uint64_t due = round_due(p);
    if (!p->env.once && now < due) {
        poller__schedule(p, due - now); /* the parent kicks us earlier when records change */
        return;
    }
    round_start(p);
}

/*
 * How long a swept read (or a full round's page) must wait because the
 * sweeps' share is spent; when that is more than SWEEP_HOLD_MS the timer is
 * set for it (the parent kicks us when its records change, and those are
 * read at once) and the wait is returned, else 0: go now.
 */
static uint64_t sweep_held(struct poller *p)
{
    uint64_t hold = target_sweep_wait(p->target);
    if (hold <= SWEEP_HOLD_MS) {
        p->sweep_paused = false;
        return 0;
    }
    if (hold > SWEEP_PAUSE_NOTICE_MS && !p->sweep_paused) {
        log_info(p->tag, "sweep paused for about %llu min: the sweeps' share of the daily "
                         "budget is spent (changed %s records are still read at once)",
                 (unsigned long long)(hold / 60000 + 1), p->parent->tc->name);
    }
    p->sweep_paused = hold > SWEEP_PAUSE_NOTICE_MS;
    poller__schedule(p, hold);
    return hold;
}

/* The child's timer fired (or it was kicked): read the next parent record. */
static void sweep_next(struct poller *p)
{
    if (p->busy || p->stopping || p->closing || p->done) {
        return;
    }
    if (p->env.once && p->parent->done && p->parent->failed) {
        log_warn(p->tag, "--once: %s skipped because %s failed", p->tc->name, p->parent->tc->name);
        poller__report_done(p, false);
        return;
    }
    if (!p->parent->seeded) {
        poller__schedule(p, 1000); /* the parent's first cycle (or, --once, its end) wakes us */
        return;
    }
    /* The child's first full round through the batch listing is its
     * baseline: queued reads wait for its end (wide.c). */
    bool wide = p->round_active && poller__wide_on(p);
    bool hold_queue = wide && p->cycle == 0;
    if (!hold_queue && (batch_next_group(p) || batch_start(p))) {
        return;
    }
    char *id = NULL;
    bool from_queue = false;
    struct poller_queued e;
    if (!hold_queue && pick_unit(p, &id, &from_queue, &e, !wide) != 0) {
        poller__schedule(p, 1000);
        return;
    }
    if (id == NULL && wide && poller__wide_step(p, sweep_held) == POLLER_WIDE_WAIT) {
        return;
    }
    if (id == NULL) {
        round_boundary(p);
        return;
    }
    if (!from_queue && sweep_held(p) > 0) {
        free(id);
        return;
    }
    p->busy = true;
    p->unit_id = id;
    p->unit_from_queue = from_queue;
    p->unit_created = e.kind == QUEUE_CREATED;
    p->unit_queue_gen = e.gen;
    if (e.kind == QUEUE_DELETED) {
        run_unit_txn(p, NULL, false);
        return;
    }
    struct request_parts r;
    if (poller__build_base(p, id, &r) != 0) {
        unit_failed(p, true);
        return;
    }
    int rc = poller__submit(p, from_queue ? LOCATION_POLL : LOCATION_SWEEP, &r, p->def->method, on_unit, p);
    poller__parts_finish(&r);
    if (rc != 0) {
        unit_failed(p, false);
    }
}

const struct poller__ops poller__sweep_ops = {
    .tick = sweep_next,
    .finish = sweep_free,
};

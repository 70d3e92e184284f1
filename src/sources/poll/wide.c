/*
 * wide: a for_each child's full round read through its batch definition's
 * location-wide listing (an order's items through an all-items search, say:
 * one request per page of items instead of one per order). See poll_int.h.
 *
 * A round has three phases:
 *  1. the listing: every page of the batch definition without the parent
 *     filter, paced by the sweeps' share of the location budget. Each page is
 *     applied as soon as it is in, grouped by the resource's parent_field:
 *     each group is upserted under its parent record's snapshot (created and
 *     updated events, nothing deleted, since a parent's records may span
 *     pages). A group whose parent record the parent trigger does not know
 *     (yet) is left to that parent's own read.
 *  2. the scan: the child's whole snapshot is walked, SCAN_CHUNK keys a tick,
 *     for the records this listing never showed.
 *  3. the confirmations: each unseen record is asked for by id
 *     (confirm_delete, under its parent); the ones the API says are gone are
 *     deleted, CONFIRM_BATCH at a time. An error decides nothing.
 * Silence: in the child's first round (its baseline) every group is
 * recorded without events, except the records of a parent the queue says
 * was created; the queue waits for the end of that round (sweep.c), so a
 * change after its page was listed is found by the queued read that
 * follows. Later rounds report what is new, except for a parent record of
 * the parent's baseline that was never read before a wide round completed
 * (state written by per-parent rounds): silent for the whole round.
 * Deletions are decided only when the listing came to its end, every
 * record had a valid id and a parent, and the unseen records are few
 * (UNSEEN_CAP): a listing that lost part of the location never deletes.
 * Thread context: loop thread.
 */
#include "poll_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "config.h"
#include "diff.h"
#include "failpoint.h"
#include "json.h"
#include "location.h"
#include "log.h"
#include "paging.h"
#include "util.h"

/* Snapshot keys the scan walks per tick (the loop never walks the whole child at once). */
#define SCAN_CHUNK 5000
/* Confirmations (GET by id) in flight at once, and applied per transaction. */
#define CONFIRM_BATCH 50
/* Pages a round's listing may take before it decides no deletions. */
#define WIDE_MAX_PAGES 50000
/* --once: failed reads of one page before the round is given up. */
#define WIDE_ONCE_ATTEMPTS 6
/* Unseen records a round may confirm: at least this many, else a tenth of those listed. */
#define UNSEEN_MIN_CAP 100

enum wide_phase { WIDE_LISTING, WIDE_SCAN, WIDE_CONFIRM, WIDE_DONE };

struct poller_wide {
    enum wide_phase phase;
    struct paging paging;      /* the batch definition's, at its largest page */
    struct paging_cursor cursor;
    unsigned page;             /* pages applied */
    unsigned attempt;          /* failed tries of the current page */
    struct idset seen;         /* PARENT \x1f ID of every record listed this round */
    struct idset silent;       /* parents whose groups are recorded silently this round */
    struct idset listed_parents; /* parents with at least one record in this listing */
    bool no_deletions;         /* something makes the listing unfit to decide deletions */
    uint64_t listed;
    uint64_t orphans;          /* records whose parent the parent trigger does not know */
    struct snapshot_stats st;
    char *scan_key;            /* the scan resumes after this key (NULL: from the start) */
    size_t scan_key_len;
    uint64_t unseen_total;     /* known records the listing lacked */
    struct strlist unseen;     /* PARENT \x1f ID, to confirm */
    struct idset requeued;     /* parents with nothing listed: read on their own */
    struct strlist requeue;    /* the same, in order, to write to the queue */
    size_t next_unseen;        /* the first not yet asked for */
    size_t confirms;           /* GETs in flight (+1 while queueing) */
    struct strlist gone;       /* answered gone, to delete */
};

struct wide_confirm {
    struct poller *p;
    char *key;                 /* PARENT \x1f ID */
};

bool poller__wide_on(const struct poller *p)
{
    return p->def->batch_def != NULL && p->def->confirm_delete != NULL && !p->tc->batch_off &&
           !p->batch_off && !p->wide_off && !p->tc->full_round_each;
}

static struct poller_wide *wide_new(struct poller *p)
{
    const struct catalog_trigger *d = p->def->batch_def;
    struct poller_wide *w = xcalloc(1, sizeof(*w));
    unsigned size = d->max_page_size > 0 ? d->max_page_size : 100;
    paging_init(&w->paging, d, size);
    idset_init(&w->seen);
    idset_init(&w->silent);
    idset_init(&w->listed_parents);
    idset_init(&w->requeued);
    return w;
}

static void wide_destroy(struct poller_wide *w)
{
    if (w == NULL) {
        return;
    }
    paging_cursor_reset(&w->cursor);
    idset_finish(&w->seen);
    idset_finish(&w->silent);
    idset_finish(&w->listed_parents);
    idset_finish(&w->requeued);
    free(w->scan_key);
    poller__strlist_clear(&w->unseen);
    poller__strlist_clear(&w->requeue);
    poller__strlist_clear(&w->gone);
    free(w);
}

void poller__wide_free(struct poller *p)
{
    wide_destroy(p->wide);
    p->wide = NULL;
}

/* ---- phase 1: the listing ---------------------------------------------- */

struct wide_group {
    const char *parent;        /* borrowed from the records */
    cJSON *records;            /* an array, owned */
};

struct wide_apply {
    struct poller *p;
    struct wide_group *groups;
    size_t n;
    struct snapshot_stats st;
};

/* Is the parent record parent_id in the parent trigger's snapshot? */
static bool parent_known(struct store_txn *txn, const struct poller *p, const char *parent_id)
{
    const void *val = NULL;
    size_t vlen = 0;
    return poller__sweep_parent_entry(txn, p, parent_id, &val, &vlen) == 0;
}

/* Are the records of parent_id (its marker absent: first) recorded without events? */
static bool group_silent(struct store_txn *txn, struct poller *p, const char *parent_id,
                         bool first)
{
    struct poller_wide *w = p->wide;
    size_t len = strlen(parent_id);
    if (p->tc->first_poll_emit || poller__sweep_queued_kind(txn, p, parent_id) == 'C') {
        return false;
    }
    if (p->cycle == 0 || idset_contains(&w->silent, parent_id, len)) {
        return true;
    }
    if (first && p->wide_ended == 0 && poller__sweep_parent_in_baseline(txn, p, parent_id)) {
        idset_add(&w->silent, parent_id, len);
        return true;
    }
    return false;
}

/* Upserts one parent record's group and writes its marker (its list was read). */
static int apply_group(struct store_txn *txn, struct wide_apply *a, const struct wide_group *g)
{
    struct poller *p = a->p;
    if (!parent_known(txn, p, g->parent)) {
        p->wide->orphans += (uint64_t)cJSON_GetArraySize(g->records);
        return 0; /* the parent's own read (it is queued as created) takes them */
    }
    idset_add(&p->wide->listed_parents, g->parent, strlen(g->parent));
    size_t plen = 0;
    char *prefix = poller__sweep_unit_prefix(p, g->parent, &plen);
    const void *mval = NULL;
    size_t mlen = 0;
    bool first = store_get(txn, STORE_SNAP, prefix, plen, &mval, &mlen) == -ENOENT;
    struct snapshot_scope sc;
    poller__init_scope(p, &sc, prefix, plen, group_silent(txn, p, g->parent, first));
    struct snapshot_stats st;
    memset(&st, 0, sizeof(st));
    int rc = snapshot_apply_records(txn, &sc, g->records, NULL, &st, NULL, NULL);
    if (rc == 0 && first) {
        uint8_t streak = 0;
        rc = store_put(txn, STORE_SNAP, prefix, plen, &streak, 1);
    }
    poller__stats_add(&a->st, &st);
    free(prefix);
    return rc;
}

static int apply_page_txn(struct store_txn *txn, void *ud)
{
    struct wide_apply *a = ud;
    memset(&a->st, 0, sizeof(a->st));
    for (size_t i = 0; i < a->n; i++) {
        int rc = apply_group(txn, a, &a->groups[i]);
        if (rc != 0) {
            return rc;
        }
    }
    FAILPOINT("wide.before_commit");
    return 0;
}

/*
 * Groups records (emptied) by parent into a->groups. A record without a
 * valid id or a parent is dropped and makes the round decide no deletions
 * (it may be any unseen one). The ids of the others go into w->seen.
 */
static void group_page(struct poller *p, cJSON *records, struct wide_apply *a)
{
    struct poller_wide *w = p->wide;
    const char *pfield = p->def->res->parent_field;
    const char *idf = p->def->id_field ? p->def->id_field : "id";
    size_t cap = (size_t)cJSON_GetArraySize(records);
    a->groups = xcalloc(cap > 0 ? cap : 1, sizeof(*a->groups));
    cJSON *rec = NULL;
    while ((rec = cJSON_DetachItemFromArray(records, 0)) != NULL) {
        const char *pid = cJSON_IsObject(rec) ? json_get_string(rec, pfield) : NULL;
        const char *id = cJSON_IsObject(rec) ? json_get_string(rec, idf) : NULL;
        if (pid == NULL || id == NULL || !diff_valid_record_id(pid) || !diff_valid_record_id(id)) {
            w->no_deletions = true;
            cJSON_Delete(rec);
            continue;
        }
        char *key = xasprintf("%s\x1f%s", pid, id);
        idset_add(&w->seen, key, strlen(key));
        free(key);
        size_t g = 0;
        while (g < a->n && strcmp(a->groups[g].parent, pid) != 0) {
            g++;
        }
        if (g == a->n) {
            a->groups[a->n++] = (struct wide_group){.parent = pid, .records = cJSON_CreateArray()};
        }
        cJSON_AddItemToArray(a->groups[g].records, rec); /* pid stays valid: rec lives on */
    }
}

static void free_groups(struct wide_apply *a)
{
    for (size_t i = 0; i < a->n; i++) {
        cJSON_Delete(a->groups[i].records);
    }
    free(a->groups);
}

static int submit_page(struct poller *p);

/* A page could not be read: try it again later (the round keeps its place);
 * --once gives up after WIDE_ONCE_ATTEMPTS. */
static void page_failed(struct poller *p)
{
    struct poller_wide *w = p->wide;
    w->attempt++;
    p->busy = false;
    if (p->env.once && w->attempt >= WIDE_ONCE_ATTEMPTS) {
        log_error(p->tag, "--once: giving up on this round after %u failed reads of page %u of %s",
                  w->attempt, w->page + 1, p->def->batch_def->name);
        poller__report_done(p, false);
        return;
    }
    poller__schedule(p, util_backoff_ms(1000, 60000, w->attempt));
}

/*
 * The listing cannot be used (refused: the credential's scope; or another
 * 4xx that retrying will not change): this and later rounds read one parent
 * record at a time (sweep.c goes on from the first), until restart.
 */
static void listing_refused(struct poller *p, const struct http_response *resp, bool scope)
{
    const struct catalog_trigger *d = p->def->batch_def;
    if (scope) {
        log_warn(p->tag, "%s answered HTTP %ld: full rounds and batch reads are off until "
                         "restart (the credential may lack scope %s); %s records are read one by "
                         "one", d->name, resp->status, d->scope, p->parent->tc->name);
        p->batch_off = true;
    } else {
        poller__log_failure(p, "full round through the batch listing", resp, NULL);
        log_warn(p->tag, "full rounds read one %s record at a time until restart",
                 p->parent->tc->name);
        p->wide_off = true;
    }
    poller__wide_free(p);
    p->busy = false;
    poller__schedule(p, 0);
}

/* Applies a page's records; false when the transaction failed. */
static bool apply_page(struct poller *p, cJSON *records)
{
    struct poller_wide *w = p->wide;
    struct wide_apply a = {.p = p};
    w->listed += (uint64_t)cJSON_GetArraySize(records);
    group_page(p, records, &a);
    int rc = store_write(p->env.store, apply_page_txn, &a);
    free_groups(&a);
    if (rc != 0) {
        log_error(p->tag, "cannot record page %u of %s: %s", w->page + 1,
                  p->def->batch_def->name, store_strerror(rc));
        return false;
    }
    FAILPOINT("wide.after_commit");
    w->st.created += a.st.created;
    w->st.updated += a.st.updated;
    p->stats.events += a.st.events;
    p->stats.records += a.st.created + a.st.updated + a.st.unchanged;
    poller__events_committed(p, a.st.events);
    if (a.st.events > 0) {
        log_info(p->tag, "full round, page %u: %u created, %u updated", w->page + 1,
                 a.st.created, a.st.updated);
    }
    return true;
}

static void on_page(struct http_response *resp, void *ud)
{
    struct poller *p = ud;
    struct poller_wide *w = p->wide;
    p->pending = NULL;
    if (p->stopping) {
        p->busy = false;
        return;
    }
    const struct catalog_trigger *d = p->def->batch_def;
    enum outcome oc = poller__classify(resp);
    if (resp->status == 401 || resp->status == 403 || oc == OUTCOME_PERMANENT) {
        listing_refused(p, resp, resp->status == 401 || resp->status == 403);
        return;
    }
    cJSON *body = NULL;
    cJSON *records = NULL;
    enum paging_next next;
    int rc = poller__batch_page(d, resp, &w->paging, &w->cursor, &body, &records, &next);
    if (rc == -EIO) {
        char *what = xasprintf("full round, page %u (%s)", w->page + 1, d->path);
        poller__log_failure(p, what, resp, NULL);
        free(what);
        page_failed(p);
        return;
    }
    if (rc != 0) {
        log_warn(p->tag, "full round, page %u: no '%s' array in the response of %s", w->page + 1,
                 d->records, d->path);
        page_failed(p);
        return;
    }
    if (!apply_page(p, records)) {
        /* The cursor has moved on (a search_after cursor cannot be asked
         * again): the next round reads these records; none is deleted now. */
        w->no_deletions = true;
    }
    cJSON_Delete(body);
    w->page++;
    w->attempt = 0;
    poller__progress_round(p, true);
    if (next != PAGING_MORE || w->page >= WIDE_MAX_PAGES) {
        if (next != PAGING_END) {
            log_warn(p->tag, "full round: %s; no deletions are decided from this round",
                     next == PAGING_STUCK ? "the paging cursor did not move" : "too many pages");
            w->no_deletions = true;
        }
        w->phase = WIDE_SCAN;
    }
    p->busy = false;
    poller__schedule(p, 0);
}

static int submit_page(struct poller *p)
{
    struct poller_wide *w = p->wide;
    return poller__batch_submit(p, NULL, 0, &w->paging, &w->cursor, w->page, LOCATION_SWEEP,
                                on_page);
}

/* ---- phase 2: the scan for unseen records ------------------------------ */

/* How many unseen records the round may ask about before it distrusts its listing. */
static size_t unseen_cap(const struct poller_wide *w)
{
    size_t tenth = (size_t)(w->listed / 10);
    return tenth > UNSEEN_MIN_CAP ? tenth : UNSEEN_MIN_CAP;
}

/*
 * Sorts key (PREFIX PARENT \x1f ID; a bare PREFIX PARENT \x1f is a marker)
 * when the listing lacked it. A parent the parent trigger no longer has is
 * left to its purge (its records go silently with it). A parent with other
 * records in the listing exists: the record is asked for by id. A parent with
 * none may be gone with all its records (a deleted order's items are not
 * listed, and a GET by id cannot tell that from a deleted item): it is
 * queued for a read of its own, which tells them apart as any read does.
 */
static void scan_key(struct poller *p, struct store_txn *txn, const char *key, size_t klen)
{
    struct poller_wide *w = p->wide;
    const char *rest = key + p->prefix_len;
    size_t rlen = klen - p->prefix_len;
    const char *sep = memchr(rest, '\x1f', rlen);
    if (sep == NULL || sep + 1 == rest + rlen || idset_contains(&w->seen, rest, rlen)) {
        return;
    }
    char *parent = xstrndup(rest, (size_t)(sep - rest));
    size_t plen = strlen(parent);
    if (!parent_known(txn, p, parent)) {
        free(parent);
        return;
    }
    w->unseen_total++;
    if (!idset_contains(&w->listed_parents, parent, plen)) {
        if (idset_add(&w->requeued, parent, plen)) {
            poller__strlist_add(&w->requeue, parent);
        }
    } else {
        char *k = xstrndup(rest, rlen);
        poller__strlist_add(&w->unseen, k);
        free(k);
    }
    free(parent);
}

static int requeue_txn(struct store_txn *txn, void *ud)
{
    struct poller *p = ud;
    for (size_t i = 0; i < p->wide->requeue.len; i++) {
        int rc = poller__sweep_queue_read(txn, p, p->wide->requeue.items[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Queues the parents whose records all went missing for reads of their own. */
static void requeue_parents(struct poller *p)
{
    struct poller_wide *w = p->wide;
    int rc = store_write(p->env.store, requeue_txn, p);
    if (rc != 0) {
        log_error(p->tag, "full round: cannot queue %zu %s records to read: %s", w->requeue.len,
                  p->parent->tc->name, store_strerror(rc));
        return;
    }
    log_info(p->tag, "full round: none of the %s of %zu %s record(s) was listed; each is read on "
                     "its own", p->def->records, w->requeue.len, p->parent->tc->name);
}

/* Walks up to SCAN_CHUNK keys of the child's snapshot; the phase moves on at its end. */
static void scan_step(struct poller *p)
{
    struct poller_wide *w = p->wide;
    struct store_txn *txn = NULL;
    if (store_txn_begin(p->env.store, false, &txn) != 0) {
        poller__schedule(p, 1000);
        return;
    }
    struct store_cursor *cur = NULL;
    const void *key = NULL;
    const void *val = NULL;
    size_t klen = 0;
    size_t vlen = 0;
    const char *from = w->scan_key ? w->scan_key : p->prefix;
    size_t flen = w->scan_key ? w->scan_key_len : p->prefix_len;
    int rc = store_cursor_open(txn, STORE_SNAP, &cur);
    if (rc == 0) {
        rc = store_cursor_seek(cur, from, flen, &key, &klen, &val, &vlen);
        if (rc == 0 && w->scan_key != NULL && klen == flen && memcmp(key, from, flen) == 0) {
            rc = store_cursor_next(cur, &key, &klen, &val, &vlen);
        }
    }
    unsigned walked = 0;
    bool in_child = false;
    while (rc == 0 && (in_child = klen >= p->prefix_len &&
                                  memcmp(key, p->prefix, p->prefix_len) == 0) &&
           walked < SCAN_CHUNK) {
        scan_key(p, txn, key, klen);
        walked++;
        free(w->scan_key);
        w->scan_key = xmalloc(klen);
        memcpy(w->scan_key, key, klen);
        w->scan_key_len = klen;
        rc = store_cursor_next(cur, &key, &klen, &val, &vlen);
    }
    store_cursor_close(cur);
    store_txn_abort(txn);
    if (rc == 0 && in_child) {
        poller__schedule(p, 0); /* more keys: the next tick goes on */
        return;
    }
    if (w->unseen_total > unseen_cap(w)) {
        log_warn(p->tag, "full round: %llu known %s were not listed (of %llu listed); that looks "
                         "like an incomplete listing, so no deletions are decided from this round",
                 (unsigned long long)w->unseen_total, p->def->records,
                 (unsigned long long)w->listed);
        w->no_deletions = true;
    }
    if (!w->no_deletions && w->requeue.len > 0) {
        requeue_parents(p);
    }
    w->phase = w->no_deletions || w->unseen.len == 0 ? WIDE_DONE : WIDE_CONFIRM;
    poller__schedule(p, 0);
}

/* ---- phase 3: confirmations by id -------------------------------------- */

struct gone_apply {
    struct poller *p;
    struct snapshot_stats st;
};

static int delete_gone_txn(struct store_txn *txn, void *ud)
{
    struct gone_apply *a = ud;
    struct poller *p = a->p;
    memset(&a->st, 0, sizeof(a->st));
    for (size_t i = 0; i < p->wide->gone.len; i++) {
        const char *k = p->wide->gone.items[i];
        const char *sep = strchr(k, '\x1f');
        char *parent = xstrndup(k, (size_t)(sep - k));
        if (!parent_known(txn, p, parent) ||
            poller__sweep_queued_kind(txn, p, parent) == 'D') {
            free(parent); /* gone with its parent meanwhile: its purge, silent, takes it */
            continue;
        }
        size_t plen = 0;
        char *prefix = poller__sweep_unit_prefix(p, parent, &plen);
        struct snapshot_scope sc;
        poller__init_scope(p, &sc, prefix, plen, false);
        int rc = snapshot_delete(txn, &sc, sep + 1, &a->st, NULL, NULL);
        free(prefix);
        free(parent);
        if (rc != 0 && rc != -ENOENT) {
            return rc;
        }
    }
    return 0;
}

/* Every answer of a batch of confirmations is in: delete the gone ones, ask the next. */
static void confirms_answered(struct poller *p)
{
    struct poller_wide *w = p->wide;
    if (w->gone.len > 0) {
        struct gone_apply a = {.p = p};
        int rc = store_write(p->env.store, delete_gone_txn, &a);
        if (rc != 0) {
            log_error(p->tag, "full round: cannot record %zu deletion(s): %s; they are asked "
                              "about again next round", w->gone.len, store_strerror(rc));
        } else {
            w->st.deleted += a.st.deleted;
            p->stats.events += a.st.events;
            poller__events_committed(p, a.st.events);
            log_info(p->tag, "full round: %u deleted", a.st.deleted);
        }
        poller__strlist_clear(&w->gone);
    }
    if (w->next_unseen == w->unseen.len) {
        w->phase = WIDE_DONE;
    }
    p->busy = false;
    poller__schedule(p, 0);
}

static void on_confirm(struct http_response *resp, void *ud)
{
    struct wide_confirm *c = ud;
    struct poller *p = c->p;
    enum outcome oc = poller__classify(resp);
    if (p->wide != NULL && oc == OUTCOME_GONE) {
        poller__strlist_add(&p->wide->gone, c->key);
    } else if (oc != OUTCOME_OK) {
        log_debug(p->tag, "full round: could not confirm the deletion of %s (HTTP %ld)",
                  strchr(c->key, '\x1f') + 1, resp->status);
    }
    free(c->key);
    free(c);
    if (p->wide != NULL && --p->wide->confirms == 0) {
        if (p->stopping) {
            p->busy = false;
            return;
        }
        confirms_answered(p);
    }
}

/* Asks for the next CONFIRM_BATCH unseen records by id (under their parents). */
static void confirm_step(struct poller *p)
{
    struct poller_wide *w = p->wide;
    p->busy = true;
    w->confirms = 1; /* held until every request is queued */
    for (unsigned n = 0; n < CONFIRM_BATCH && w->next_unseen < w->unseen.len; n++) {
        const char *k = w->unseen.items[w->next_unseen++];
        const char *sep = strchr(k, '\x1f');
        char *parent = xstrndup(k, (size_t)(sep - k));
        struct wide_confirm *c = xcalloc(1, sizeof(*c));
        c->p = p;
        c->key = xstrdup(k);
        w->confirms++;
        if (poller__submit_confirm(p, parent, sep + 1, on_confirm, c) != 0) {
            w->confirms--; /* not asked: decides nothing */
            free(c->key);
            free(c);
        }
        free(parent);
    }
    p->pending = NULL; /* several may be in flight; they are short, and complete on close */
    if (--w->confirms == 0) {
        confirms_answered(p);
    }
}

/* ---- the round ---------------------------------------------------------- */

static void round_begin(struct poller *p)
{
    p->wide = wide_new(p);
    log_info(p->tag, "full round %llu reads every %s of the location with %s",
             (unsigned long long)p->cycle + 1, p->def->res->name, p->def->batch_def->name);
}

enum poller_wide_step poller__wide_step(struct poller *p, uint64_t (*hold)(struct poller *))
{
    if (p->wide == NULL) {
        round_begin(p);
    }
    struct poller_wide *w = p->wide;
    switch (w->phase) {
    case WIDE_LISTING:
        if (hold(p) > 0) {
            return POLLER_WIDE_WAIT;
        }
        p->busy = true;
        if (submit_page(p) != 0) {
            page_failed(p);
        }
        return POLLER_WIDE_WAIT;
    case WIDE_SCAN:
        scan_step(p);
        return POLLER_WIDE_WAIT;
    case WIDE_CONFIRM:
        confirm_step(p);
        return POLLER_WIDE_WAIT;
    case WIDE_DONE:
    default:
        return POLLER_WIDE_DONE;
    }
}

void poller__wide_describe(const struct poller *p, char *out, size_t len)
{
    const struct poller_wide *w = p->wide;
    if (w == NULL) {
        out[0] = '\0';
        return;
    }
    snprintf(out, len, ", %llu %s listed in %u page(s): %u created, %u updated, %u deleted%s",
             (unsigned long long)w->listed, p->def->records, w->page, w->st.created,
             w->st.updated, w->st.deleted, w->no_deletions ? " (no deletions decided)" : "");
}

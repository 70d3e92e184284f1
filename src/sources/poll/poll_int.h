/*
 * poll_int.h: what the files of sources/poll share. Not a public contract:
 * the poller "module" is poller.c (lifecycle, persisted state, shared
 * helpers), request.c (requests and response classes), cycle.c (top-level
 * enumerations), rawpage.c (the raw-bytes fast path of their pages),
 * rawmemo.c (the pages of a cycle whose records all matched, for the next),
 * incremental.c (their watermark and reconcile schedule),
 * sweep.c (for_each sweeps), batch.c (their batch
 * reads of queued parents), wide.c (their full rounds through the batch listing), paging.c (the paging table) and
 * progress.c (the progress lines of long work); everything else uses poller.h. Names shared across these files
 * take the poller__ prefix.
 * Owns: nothing; declares struct poller, whose owner is poller.c.
 * Invariants: p->ops is the strategy of the trigger (poller__cycle_ops, or
 * poller__sweep_ops once it is a for_each child) and never changes after
 * poller_start.
 * Thread context: loop thread.
 */
#ifndef POLLEN_POLL_INT_H
#define POLLEN_POLL_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include <cJSON.h>

#include "buf.h"
#include "catalog.h"
#include "hash.h"
#include "http.h"
#include "idmap.h"
#include "idset.h"
#include "jsonspan.h"
#include "location.h"
#include "target.h"
#include "log.h"
#include "paging.h"
#include "poller.h"
#include "snapshot.h"
#include "status_store.h"
#include "store.h"
#include "util.h"

/* Empty listings in a row before a listing's emptiness is believed (no GET by id). */
#define EMPTY_CONFIRMATIONS 3

struct sweep_report;
struct poller_batch;
struct poller_wide;

/* A fan-out queue entry as a for_each child picked it (sweep.c): its kind
 * ('C' created, 'P' changed, 'D' deleted) and its generation, which the
 * parent bumps each time it queues the record again. */
struct poller_queued {
    char kind;
    uint64_t gen;
};

/* What a trigger does when its timer fires, and what it frees at close. */
struct poller__ops {
    void (*tick)(struct poller *p);
    void (*finish)(struct poller *p); /* frees the strategy's state; the poller stays */
};
/* cycle.c: a top-level trigger's enumeration cycles. */
extern const struct poller__ops poller__cycle_ops;
/* sweep.c: a for_each child's sweep rounds. */
extern const struct poller__ops poller__sweep_ops;

struct strlist {
    char **items;
    size_t len;
};

/* rawpage.c: one record of the current page as the fast path saw it. */
struct poller_raw_rec {
    const cJSON *child;     /* the record's first member: identifies it (references share it) */
    struct hash128 raw;     /* XXH3-128 of its bytes */
    enum snapshot_raw kind; /* SAME (a stub stands for it) or HASH */
    bool has_id;            /* its span holds a valid id (span_id) */
    /* HASH, yet its entry holds this raw hash: the page's last record, parsed
     * (paging reads its fields) but applied as unchanged, like a stub. */
    bool parsed_same;
    /* SAME: the stub's one member {id_field: stub_id}, referenced (never owned) by the
     * page's records array: no allocation per unchanged record. Valid until the next page. */
    cJSON stub_member;
    char stub_id[129];
};

/* rawmemo.c: a page of a full enumeration whose records all matched their
 * entries: where its array and records are, and hashes of its bytes. */
struct raw_memo_page {
    uint64_t head;        /* hash64 of the bytes before the array */
    struct hash128 arr;   /* XXH3-128 of the array's bytes */
    uint64_t arr_off;
    uint64_t arr_end;
    uint64_t first;       /* its first span in raw_memo.spans */
    uint64_t n;           /* its records (0: no page memorized at this number) */
};

/* rawmemo.c: the memorized pages of the scope's generation (see rawmemo.c). */
struct raw_memo {
    struct raw_memo_page *pages; /* by page number */
    size_t npages;
    struct jsonspan_rec *spans;
    size_t nspans;
    size_t spans_cap;
    bool ready;   /* loaded or started for the map's generation in this cycle */
    bool clean;   /* no page of this cycle had a record to apply: hits allowed */
    bool added;   /* pages memorized in this cycle: filed at its end */
    unsigned hits; /* pages of this cycle found memorized (logs, tests) */
    void *mapped;  /* pages and spans point into this private mapping of the file */
    size_t mapped_len;
};

/* rawpage.c: the fast path's state, reused from page to page. */
struct poller_raw {
    struct jsonspan_page spans;
    struct buf doc;             /* the page without the records whose bytes matched */
    struct poller_raw_rec *v;   /* per record of the current page */
    size_t n;
    size_t cap;
    size_t cursor;              /* raw_of: where the last record was found */
    bool active;                /* the current page's records came from poller__raw_page */
    unsigned parsed;            /* records of the last page that were parsed (tests, logs) */
    unsigned skipped;           /* records of the last page whose bytes matched */
    /* A full enumeration's raw hashes of the scope (read once, then kept up to
     * date): valid only while map_state is RAW_MAP_READY, for this cycle. */
    struct idmap map;
    enum { RAW_MAP_NONE, RAW_MAP_READY, RAW_MAP_OFF } map_state;
    /* The map is kept in a file between runs (rawpage.c, map_load/map_save):
     * the scope's generation it was read at, its entries then, and whether
     * it came from (or already went to) the file. */
    struct snapshot_gen gen;
    bool gen_known;
    bool map_filed;
    uint64_t map_entries;
    struct raw_memo memo;
};

/* progress.c: where the long work under way stands (not persisted). */
struct poller_progress {
    bool active;
    uint64_t stamp;            /* the start stamp of the work counted (a new one resets) */
    uint64_t since;            /* mono ms of its first step */
    uint64_t last;             /* mono ms of the last line (or of the first step) */
    uint64_t records_from;     /* stats.records at its first step */
    uint64_t steps;            /* pages, or parent records read */
};

struct poller {
    struct poller_env env;
    const struct poller__ops *ops;
    const struct config_trigger *tc;
    const struct catalog_trigger *def;
    struct location *loc;      /* the HighLevel location, or NULL for an [api NAME] trigger */
    struct target *target;     /* where its requests go: the location's, or the api's */
    char *tag;                 /* "trigger:NAME" for logs */
    char *state_key;           /* STORE_TRIG key: NAME SEP LOCATION */
    char *prefix;              /* snapshot prefix: NAME SEP LOCATION SEP */
    size_t prefix_len;
    char **ignore;             /* user ignore + catalog volatile */
    uv_timer_t timer;
    bool stopping;
    bool closing;
    bool done;
    bool failed;
    bool busy;                 /* a cycle (or unit) is under way */
    struct target_pending *pending;
    struct poller_stats stats;

    /* persisted state */
    bool seeded;
    uint64_t cycle;
    char *sweep_cursor;        /* children: last parent record id read in this round */
    uint64_t round_started;    /* children: wall ms when the current (or last) round began
                                * (persisted only; scheduling uses round_due) */
    bool round_active;         /* children: a round is under way */
    uint64_t round_ended;      /* children: wall ms when the last full round ended (0: none);
                                * the next starts `reconcile` after it */
    uint64_t wide_ended;       /* children: wall ms when the last full round read through the
                                * batch listing (wide.c) ended (0: none) */
    uint64_t started;          /* wall ms when this trigger first ran (state written before
                                * it was kept: when it was loaded); see created_field */
    int64_t watermark;         /* W (M13): the largest server update time committed, epoch
                                * ms; -1 before the first reconcile */
    uint64_t reconciled_at;    /* wall ms when the last complete reconcile began (persisted
                                * only; scheduling uses reconcile_due) */
    uint64_t full_total;       /* records the last complete reconcile listed (0: unknown) */

    /* incremental polling (incremental.c) */
    bool incr;                 /* the definition is incremental and reconcile != 0 */
    bool incr_cycle;           /* the current cycle is incremental (else a full reconcile) */
    bool incr_degraded;        /* the API refused the filter: full scans every reconcile
                                * (persisted, as incr_retry_at) */
    uint64_t incr_retry_at;    /* degraded: wall ms when the filter is tried again */
    bool reconcile_now;        /* an incremental read grew past the last full listing
                                * (persisted) */
    uint64_t reconcile_due;    /* mono ms (uv_now) when the next reconcile is due */
    int64_t cycle_max;         /* the largest watermark_field this cycle read, or -1 */
    int64_t page_prev_w;       /* W before the page txn moved it (rolled back on failure) */
    uint64_t pace_next;        /* mono ms before which a reconcile page may not fall back
                                * to the poll class (0: now); see poller__incr_page_class */
    bool pace_logged;          /* this reconcile logged its fall back to the poll class */

    /* current cycle */
    uint64_t cycle_started;    /* mono ms */
    uint64_t failing_since;    /* mono ms when the current run of failed cycles began; 0: none */
    uint64_t requests_from;    /* stats.requests when this cycle (or sweep round) began */
    unsigned failures;         /* consecutive failed cycles */
    unsigned page;
    unsigned attempt;
    struct paging paging;      /* the definition's paging (set at creation) */
    struct paging_cursor cursor; /* where this enumeration is */
    struct idset seen;
    uint64_t records_seen;
    struct snapshot_stats cstats;
    /* deletion phase */
    char *scan_key;
    size_t scan_key_len;
    uint64_t scan_total;
    /* The proof that the scan would find nothing (scan_needless): when the
     * raw map was read (fill_known), the scope held fill_entries entries;
     * seen_stored counts the ids first seen this cycle whose entry existed
     * before their page, fill_seen the other ids seen before the map was
     * read (created by an earlier page). */
    bool fill_known;
    uint64_t fill_entries;
    uint64_t fill_seen;
    uint64_t seen_stored;
    struct strlist missing_new;
    struct strlist missing_old;
    uint64_t missing_new_total;
    unsigned empty_streak;     /* complete enumerations in a row that listed nothing */
    bool gone_by_id;           /* single: this cycle's GET by id answered "gone" */
    bool incomplete;           /* fewer records listed than the API's own count */
    double max_total;          /* the largest count a page of this enumeration claimed, or -1 */
    uint64_t listed_total;     /* that count */
    struct strlist gone;       /* confirmed by GET */
    struct strlist hold;       /* to mark SNAP_MISSING */
    struct strlist remove;     /* to delete now */
    size_t confirms_outstanding;

    /* fan-out */
    struct poller *parent;
    struct poller **children;
    size_t nchildren;
    char *unit_id;             /* parent record being read */
    bool unit_from_queue;
    bool unit_created;         /* its queue entry says the parent record was created */
    uint64_t unit_queue_gen;   /* the generation of the queue entry read (removed only if unchanged) */
    uint64_t round_due;        /* mono ms (uv_now) when the next round may start */
    bool sweep_paused;         /* swept reads wait for the sweeps' daily share (logged once) */
    bool round_due_known;      /* round_due was derived from the persisted round end */
    char *fail_id;             /* parent record whose reads failed last */
    unsigned fail_count;       /* its failed reads in a row */
    struct idset passed;       /* parents not picked again this round: skipped after failing
                                * (and, with --once, every one already read) */
    unsigned round_skipped;    /* parents skipped in this round */
    unsigned skips_in_a_row;   /* parents skipped with no successful read in between */
    struct sweep_report *reports; /* when each failing parent was last reported */
    size_t nreports;
    /* confirm_delete of a child: the listing waits while its missing records are asked for */
    char *unit_listing;        /* the response body, recorded when the answers are in */
    size_t unit_listing_len;
    size_t unit_confirms;      /* GETs by id in flight */
    struct strlist unit_gone;  /* missing records the API says are gone */
    /* batch (batch.c): queued parents read with the definition's batch listing */
    struct poller_batch *batch; /* the listing under way, or its groups being applied; or NULL */
    const cJSON *unit_records; /* the current parent's group (borrowed from batch), or NULL */
    struct idset batch_single; /* queued parents of a failed batch: read one by one */
    bool batch_off;            /* the batch listing was refused (401/403): no more batches */
    struct poller_wide *wide;  /* the full round through the batch listing under way, or NULL */
    bool wide_off;             /* the listing answered a permanent error: rounds one at a time */
    struct poller_raw raw;     /* the raw-bytes fast path of the current page */

    /* `pollen status` (cycle_record.c): what the last cycle record said, and this cycle's error */
    uint64_t next_delay;       /* the wait after this successful cycle (finish_txn sets it) */
    uint64_t rec_last_ok;      /* wall ms the last successful cycle ended (0: none) */
    uint64_t rec_failing_since; /* wall ms the current run of failed cycles began (0: none) */
    uint32_t rec_failures;     /* failed cycles in a row, as recorded (survives restarts) */
    bool error_auth;            /* this cycle failed on the credential (401, token refused) */
    bool rec_stopped;          /* poller_stop_auth recorded the end: nothing more is */
    char cycle_error[STATUS_ERROR_MAX + 1]; /* what made this cycle fail, or "" */
    struct poller_progress progress; /* progress.c */
};

struct request_parts {
    char *path;
    const char *version;       /* the Version header (borrowed); NULL: the trigger's */
    struct target_query query[32];
    char *owned[32];           /* values we allocated for query */
    size_t nquery;
    size_t nowned;
    cJSON *body;
};

/* The outcome classes of one response. */
enum outcome {
    OUTCOME_OK,
    OUTCOME_GONE,       /* 410, or the API's own 404/400/422 body on a by-id read: no such record */
    OUTCOME_RETRY,      /* transport error, 408, 429, 5xx, invalid or truncated body */
    OUTCOME_PERMANENT,  /* other 4xx, redirects: retrying would not help */
};

/* Room for a `trigger="NAME"` metrics label. */
#define POLLER_LABEL_MAX 160

void poller__strlist_add(struct strlist *l, const char *s);
void poller__strlist_clear(struct strlist *l);
/* Adds st's counts into `into` (seen_stored excepted: it is per apply). */
void poller__stats_add(struct snapshot_stats *into, const struct snapshot_stats *st);
/* (Re)arms the trigger's timer unless it is stopping. */
void poller__schedule(struct poller *p, uint64_t delay_ms);
/* Logs a failed request with trigger, path, status, traceId and message (or the transport cause). */
void poller__log_failure(const struct poller *p, const char *what, const struct http_response *resp,
                         const cJSON *body);
/* The same at the given log level (fan-out units report a failing parent once per hour). */
void poller__log_failure_at(const struct poller *p, enum log_level level, const char *what,
                            const struct http_response *resp, const cJSON *body);
/* The companyId {company} bindings send: [location] company_id, else the OAuth
 * installation's; NULL when neither is known. Borrowed. */
const char *poller__company_id(const struct poller *p);
/* The records of a response body: body itself for records = ., else the path. Borrowed. */
const cJSON *poller__records(const struct poller *p, const cJSON *body);
/* deleted_field (M11): is rec flagged deleted? False without the field. */
bool poller__soft_deleted(const struct poller *p, const cJSON *rec);
/* Does a confirm_delete answer (200) say deleted: the bare record flagged, or
 * the record one level down ({"user": {...}})? Parses resp's body. */
bool poller__answer_soft_deleted(const struct poller *p, const struct http_response *resp);
/* Builds path, fixed bindings and user parameters; fan_value feeds the fan_out parameter.
 * Returns 0, -ENOENT when a {company} binding has no companyId, -EINVAL otherwise. */
int poller__build_base(const struct poller *p, const char *fan_value, struct request_parts *r);
/* The same for another definition d (a for_each child's batch definition): its
 * path, bindings and Version; the user parameters d declares. */
int poller__build_def(const struct poller *p, const struct catalog_trigger *d,
                      const char *fan_value, struct request_parts *r);
void poller__parts_finish(struct request_parts *r);
/* The page size: the trigger's page_size, else the definition's (which
 * defaults to its max_page_size), else 100 (an unpaginated definition). */
unsigned poller__page_size(const struct poller *p);
/* Adds the current page's paging parameters (paging.c) to r. */
void poller__add_pagination(struct poller *p, struct request_parts *r);
/* The same for another listing's paging pg at page (a batch read's). */
void poller__add_paging(const struct paging *pg, const struct paging_cursor *c, unsigned page,
                        struct request_parts *r);
/* Queues the request on the trigger's location. */
/* The name of the poller's scope: its location's, or its api's (borrowed). */
const char *poller__scope_name(const struct poller *p);
int poller__submit(struct poller *p, enum target_class cls, struct request_parts *r,
                   const char *method, http_done_cb cb, void *ud);
/* Queues the confirm_delete GET of record id (fan_value: the parent record's id for a
 * for_each child, else NULL). Returns 0, or -errno when it was not queued (cb not called). */
int poller__submit_confirm(struct poller *p, const char *fan_value, const char *id,
                           http_done_cb cb, void *ud);
/* Does confirm_delete name fields of the missing record ({record.FIELD})? */
bool poller__confirm_uses_record(const struct poller *p);
/* Queues the confirm_delete GET of top-level record id, filling {record.FIELD}
 * from record (its last-known copy, borrowed; NULL when there is none).
 * Returns 0; -ENODATA, with the reason in why, when a {record.FIELD} has no
 * usable value (this record's confirmation decides nothing; not logged); or
 * another -errno when not queued (logged). cb is called only after 0. */
int poller__submit_confirm_of(struct poller *p, const char *id, const cJSON *record,
                              http_done_cb cb, void *ud, char *why, size_t whylen);
/* Writes the trigger's state (STORE_TRIG) inside txn. */
int poller__save_state(struct store_txn *txn, const struct poller *p, bool seeded, uint64_t cycle,
                       const char *sweep_cursor, uint64_t round_started);
void poller__init_scope(const struct poller *p, struct snapshot_scope *sc, const char *prefix,
                        size_t prefix_len, bool silent);
/* --once: reports the trigger done (failed unless ok) to the engine, at most once. */
void poller__report_done(struct poller *p, bool ok);
/* Tells the dispatcher that a commit appended events. */
void poller__events_committed(const struct poller *p, unsigned events);
/* The outcome class of a response (a JSON 404/400/422 or a 410 is GONE; see enum outcome). */
enum outcome poller__classify(const struct http_response *resp);
/* The same for p's API: HighLevel's error shape decides a 404 of a location's
 * trigger; for a user's own API ([api NAME]) any JSON object body does. */
enum outcome poller__classify_of(const struct poller *p, const struct http_response *resp);

/*
 * rawpage.c, the raw-bytes fast path of an enumeration's page (a list whose
 * records are the body or one top-level member): each record's byte span
 * is found (jsonspan.h) and hashed (XXH3); a record whose bytes hash as its
 * snapshot entry's raw hash (snapshot_raw_same; in a full enumeration,
 * from its second page on, a map of the scope's raw hashes read once in
 * key order, see rawpage.c) is not parsed: a stub
 * {id_field: id} stands for it. The other records, and always the last one
 * (paging may read it), are parsed with the rest of the page as one
 * shortened document in the page arena. On success *body (the page: free
 * with json_arena_free) and *records (a new array, page order: free with
 * cJSON_Delete before the body) are set, p->raw.active is true and true is
 * returned. False: nothing was allocated; parse the page as always (not a
 * 2xx, not eligible, or input the scanner or the parser refused).
 * The stubs are NOT records: whatever applies *records to the snapshot must
 * install poller__raw_scope in its scope, which tells snapshot.c which
 * records are stubs (SNAPSHOT_RAW_SAME) and the others' raw hashes.
 */
bool poller__raw_page(struct poller *p, const struct http_response *resp, cJSON **body,
                      cJSON **records);
/* Installs the current page's raw_of into sc (when p->raw.active); restarts its lookup. */
void poller__raw_scope(struct poller *p, struct snapshot_scope *sc);
/* A cycle starts or ends: forgets the cycle's raw hashes (their memory). */
void poller__raw_cycle_reset(struct poller *p);
/* Frees the fast path's buffers (poller_free). */
void poller__raw_free(struct poller *p);

/* rawmemo.c (see there). The map's file tag (its generation) names the
 * memo's too. start: loads the file for tag (or begins empty); hit: fills
 * p->raw.spans when this page's bytes are a memorized page's (all its
 * records but the last are SAME); matched: after match_records, memorizes the
 * page when every record matched, else stops hits for the cycle; save:
 * files what was added; reset: drops it all (the cycle is over). */
void poller__memo_start(struct poller *p, const void *tag, size_t tag_len);
bool poller__memo_hit(struct poller *p, const char *data, size_t len);
void poller__memo_matched(struct poller *p, const char *data, long same);
void poller__memo_save(struct poller *p, const void *tag, size_t tag_len);
void poller__memo_reset(struct poller *p);

/* The value of the user's [trigger] parameter name, or NULL. Borrowed. */
const char *poller__param_value(const struct poller *p, const char *name);

/* ---- the last-cycle record of `pollen status` (cycle_record.c) ---------- */

/* Start: reads the trigger's last record (failures in a row, last success). */
void poller__record_load(struct poller *p);
/* This cycle failed on resp (body may be NULL): keeps its status, traceId and
 * message (or transport error) as the cycle's error; a refused credential
 * sets error_auth. */
void poller__fail_response(struct poller *p, const struct http_response *resp, const cJSON *body);
/* Keeps a formatted text as the cycle's error (an argument may be p->cycle_error itself). */
void poller__fail_text(struct poller *p, const char *fmt, ...) ATTR_PRINTF(2, 3);
/* Inside the end-of-cycle txn of a successful cycle: its record (with
 * extra_events the txn itself writes) and the location's rate record. */
int poller__record_ok_txn(struct store_txn *txn, struct poller *p, unsigned extra_events);
/* A failed cycle: its record and the rate record, in one small txn of their
 * own. next_delay 0: nothing is scheduled (run --once). A cycle cut short by
 * a shutdown is not a failure and writes nothing. */
void poller__record_failed(struct poller *p, uint64_t next_delay);

/* ---- incremental polling (incremental.c, M13) -------------------------- */

/*
 * Parses a watermark_field value: an ISO-8601 string (isotime's loose form)
 * or a non-negative number of epoch ms. Returns 0 and *out_ms, or -EINVAL.
 * Pure; exposed for its unit test.
 */
int poller__watermark_parse(const cJSON *v, int64_t *out_ms);
/* The largest watermark_field value among records, or -1 (none parses). */
int64_t poller__records_watermark(const struct poller *p, const cJSON *records);
/* Start: sets p->incr from the definition and the trigger, and when the first
 * reconcile is due from the persisted reconciled_at (see incremental.c). */
void poller__incr_init(struct poller *p);
/* Cycle start: decides whether this cycle is incremental or a reconcile. */
void poller__incr_cycle_begin(struct poller *p);
/* Adds the incremental body members and query parameters to r (incremental cycles only). */
void poller__incr_add_body(const struct poller *p, struct request_parts *r);
/* Adds a query parameter to r: name borrowed (must outlive r), value owned by r. */
void poller__parts_add_query(struct request_parts *r, const char *name, char *value);
/* Inside a page's txn: takes the page's largest watermark and, in an incremental cycle,
 * commits a moved watermark with them. Returns 0 or a store error. */
int poller__incr_page_txn(struct store_txn *txn, struct poller *p, const cJSON *records);
/* The page txn failed: undoes what poller__incr_page_txn set. */
void poller__incr_page_rollback(struct poller *p);
/* Inside the end-of-cycle txn, before the state is saved: a reconcile moves
 * W and the reconcile schedule. Undone by poller__incr_finish_rollback. */
void poller__incr_finish_txn(struct poller *p);
void poller__incr_finish_rollback(struct poller *p);
/* After a committed page of an incremental cycle with more to come: true when
 * it read more records than the last full listing (then the cycle ends and
 * the next one is a reconcile). */
bool poller__incr_overgrown(struct poller *p);
/* A page failed: true when it was the API refusing the incremental filter
 * (422), which degrades the trigger to full scans (logged once) until
 * POLLER_DEGRADED_RETRY_MS later (wall time; persisted at once). */
#define POLLER_DEGRADED_RETRY_MS (24ULL * 3600 * 1000)
bool poller__incr_refused(struct poller *p, const struct http_response *resp);
/* The delay before the next cycle after a successful one, or before the
 * first (degraded: the next reconcile, unless the filter's retry is due). */
uint64_t poller__incr_next_delay(const struct poller *p, uint64_t delay);
/*
 * Reconcile pacing: the class a cycle page's request goes in, or a delay
 * before it. Every page of an ordinary cycle (incremental, or of a trigger
 * that is not incremental) and the first page of a reconcile: LOCATION_POLL.
 * A reconcile's later pages: LOCATION_SWEEP, the sweeps' capped share, so
 * they never hold back the polls of other triggers; but when that class
 * would hold a request longer than POLLER_RECONCILE_HOLD_MS (the sweeps'
 * daily share is spent) the page goes in the poll class, at most one every
 * POLLER_RECONCILE_SLOW_MS, so the reconcile (the only source of deletions)
 * still ends. Returns 0 with *cls set, or the ms to wait before asking
 * again (*cls untouched).
 */
#define POLLER_RECONCILE_HOLD_MS 60000u
#define POLLER_RECONCILE_SLOW_MS 1000u
uint64_t poller__incr_page_class(struct poller *p, enum target_class *cls);
/* Its rule, pure (exposed for its unit test): paced says the page is a
 * reconcile's after the first, sweep_wait is target_sweep_wait, now the
 * mono ms; *slow_next is the poll-class pace (0 at the cycle's start). */
uint64_t poller__reconcile_pace(bool paced, uint64_t sweep_wait, uint64_t now,
                                uint64_t *slow_next, enum target_class *cls);
/* " (incremental, watermark ...)" / " (reconcile, ...)" for the cycle's log
 * line, or "" for other definitions. */
void poller__incr_describe(const struct poller *p, char *out, size_t len);

/*
 * batch.c: a for_each child's batch read (the definition's batch_def).
 * Queued parents (at most POLLER_BATCH_MAX) are listed with one batch
 * listing, all of its pages; the records are grouped by the resource's
 * parent_field; each group is then applied as that parent's read
 * (poller__batch_take). Any failure hands the parents to p->batch_single.
 */
#define POLLER_BATCH_MAX 50
/* Pages one batch listing may take before its parents are read one by one. */
#define POLLER_BATCH_MAX_PAGES 100
/*
 * Moves every record of records (an array; emptied) into groups[i], the
 * array of the parent ids[i] (n of them; groups[] is filled with new arrays,
 * empty for a parent without records) by the string member field. Returns 0;
 * or -EINVAL, with groups[] all NULL, when a record is not an object, lacks
 * field as a string, or names no parent of ids. records is emptied either
 * way. Pure; exposed for its unit test.
 */
int poller__batch_group(cJSON *records, const char *field, char *const *ids, size_t n,
                        cJSON **groups);
/*
 * Starts the batch listing of ids (n >= 2 parents; taken: the batch frees
 * them) with their queue entries (n, copied). True when the first page is queued (p->busy:
 * the listing then wakes the child when its groups are ready, or when it
 * failed); false when not (the parents are marked for single reads).
 */
bool poller__batch_begin(struct poller *p, char **ids, const struct poller_queued *entries,
                         size_t n);
/*
 * The next group of a complete batch listing: true with *id (a new string),
 * *entry (its queue entry as picked) and *records (borrowed until the next call); false, and the batch
 * freed, when none is left (or no batch is under way).
 */
bool poller__batch_take(struct poller *p, char **id, struct poller_queued *entry,
                        const cJSON **records);
/* The records array of a batch definition's response body (body itself for records = .). */
cJSON *poller__batch_records(const struct catalog_trigger *d, cJSON *body);
/*
 * Reads one page of a batch listing (d) and advances pg/c past it.
 * Returns 0 with *body owning the parsed answer, *records borrowing its array
 * and *next saying where paging goes; -EIO when the answer is not a usable
 * 2xx JSON body, -EPROTO when it holds no records array (both leave *body NULL).
 */
int poller__batch_page(const struct catalog_trigger *d, const struct http_response *resp,
                       const struct paging *pg, struct paging_cursor *c, cJSON **body,
                       cJSON **records, enum paging_next *next);
/*
 * Queues page `page` of p's batch definition at paging pg/c: with ids (n),
 * the batch_param filter of those parents; with NULL, the whole location.
 * cb gets p. Returns 0 or -errno (cb not called).
 */
int poller__batch_submit(struct poller *p, char *const *ids, size_t n, const struct paging *pg,
                         const struct paging_cursor *c, unsigned page, enum target_class cls,
                         http_done_cb cb);
/* Frees the batch state (close). */
void poller__batch_free(struct poller *p);

/*
 * wide.c: a for_each child's full round through its batch definition
 * without the parent filter (every child record of the location, paged),
 * instead of one read per parent record: upserts each page by parent, then
 * confirms by id what the listing lacked (see wide.c for the rules).
 */
/* Is the child's full round read this way (a batch definition, confirm_delete,
 * not refused, not `full_round = each`)? */
bool poller__wide_on(const struct poller *p);
enum poller_wide_step {
    POLLER_WIDE_WAIT, /* a step is under way, or the timer is set: nothing to do now */
    POLLER_WIDE_DONE, /* the round is complete (p->wide stays until the round closes) */
};
/*
 * The round's next step (starting it when p->wide is NULL). hold(p) is
 * asked before each page: > 0 means the sweeps' budget is spent and the
 * timer is set; wait.
 */
enum poller_wide_step poller__wide_step(struct poller *p, uint64_t (*hold)(struct poller *));
/* ", N <records> listed in P page(s): ..." for the round's log line, or "". */
void poller__wide_describe(const struct poller *p, char *out, size_t len);
/* Frees p->wide (round end, close). */
void poller__wide_free(struct poller *p);

/* sweep.c helpers wide.c shares. */
/* The snapshot prefix of parent_id's records (new string; *len its length). */
char *poller__sweep_unit_prefix(const struct poller *p, const char *parent_id, size_t *len);
/* Reads parent_id's entry in the parent's snapshot: 0 (*val borrowed for the
 * txn), -ENOENT when the parent does not hold it, or a store error. */
int poller__sweep_parent_entry(struct store_txn *txn, const struct poller *p,
                               const char *parent_id, const void **val, size_t *vlen);
/* Was parent_id part of the parent's baseline? */
bool poller__sweep_parent_in_baseline(struct store_txn *txn, const struct poller *p,
                                      const char *parent_id);
/* Queues parent_id for a read by child p alone, unless it is queued already. 0 or -errno. */
int poller__sweep_queue_read(struct store_txn *txn, const struct poller *p,
                             const char *parent_id);
/* The kind of parent_id's queue entry ('C', 'P', 'D'), or 0 when it is not queued. */
char poller__sweep_queued_kind(struct store_txn *txn, const struct poller *p,
                               const char *parent_id);

/*
 * progress.c: long work logs where it stands at most every 10 s
 * (POLLEN_PROGRESS_INTERVAL=MS overrides it, for tests): records, pages or
 * reads, requests, rate, and the time left when the API gave a count.
 * poller__progress_cycle: after each page of a cycle with more to come; only
 * a baseline or a reconcile logs. poller__progress_round: after each page of
 * a full round through the batch listing (wide) or each parent record read;
 * only a child's first round logs.
 */
void poller__progress_cycle(struct poller *p);
void poller__progress_round(struct poller *p, bool wide);

/* Pages one enumeration may ever take. */
#define POLLER_MAX_PAGES 100000
/*
 * Pages one enumeration may take: twice what the API's own count (total,
 * the largest any page claimed; < 0: none) needs at page_size records a
 * page, plus 10 for records joining meanwhile, at most POLLER_MAX_PAGES. A
 * count below the distinct records already listed is not a total (a
 * per-page count): no cap from it then, only POLLER_MAX_PAGES. Pure; exposed
 * for its unit test.
 */
unsigned poller__page_cap(double total, size_t listed, unsigned page_size);

#endif

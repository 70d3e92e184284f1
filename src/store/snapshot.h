/*
 * snapshot: applies what one enumeration fetched to a trigger's snapshot in
 * LMDB and turns every difference into an event, inside the caller's write
 * transaction, so the snapshot and the events it produces commit together
 * (exactly-once: reliability.md P1-P3).
 *
 * A scope is one snapshot: the records of one trigger on one location (or,
 * for a for_each trigger, the records of one parent record). Keys are
 * `prefix || record_id`; the prefix is built by snapshot_key_prefix from
 * parts joined by SNAPSHOT_SEP, a byte record ids cannot contain
 * (diff_valid_record_id), so no scope's keys can collide with another's.
 *
 * An event over the log's size limit (evlog_max_event: a huge text field
 * that changed) is written trimmed, with "truncated": true, so that one
 * record never fails its page; see trim_event in snapshot.c.
 *
 * Event ids are deterministic (diff_event_id over location, trigger,
 * record, type, per-record version and content hash): re-deriving the same
 * change after a crash yields the same id, so consumers can deduplicate.
 * Thread context: loop thread; every function runs inside a store_write
 * closure and is safe to re-run from scratch (no state outside the txn
 * except idempotent idset additions and stats that the caller resets).
 */
#ifndef POLLEN_SNAPSHOT_H
#define POLLEN_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "hash.h"
#include "idset.h"
#include "store.h"

#define SNAPSHOT_SEP '\x1f'

enum snapshot_change {
    SNAPSHOT_CREATED,
    SNAPSHOT_UPDATED,
    SNAPSHOT_DELETED,
    SNAPSHOT_TOUCHED, /* an update of touch_field alone: an event only if emit has TOUCHED */
};

const char *snapshot_change_name(enum snapshot_change c);

/* What the raw-bytes fast path knows of a record's bytes (snapshot_scope.raw_of). */
enum snapshot_raw {
    SNAPSHOT_RAW_NONE, /* nothing: the record is compared as always */
    SNAPSHOT_RAW_HASH, /* *raw is the XXH3-128 of its bytes: compared as always, then stored */
    SNAPSHOT_RAW_SAME, /* its bytes hash as its entry's raw hash (snapshot_raw_same said so):
                        * unchanged; only its id counts (the record may be a stub {id}) */
};

struct snapshot_scope {
    const char *trigger;      /* the [trigger NAME], written into events */
    const char *location_id;  /* the HighLevel locationId, written into events; NULL for
                               * a trigger on a user's own API: then api is written */
    const char *api;          /* the [api NAME] of such a trigger, or NULL */
    const char *prefix;       /* key prefix, ends with SNAPSHOT_SEP */
    size_t prefix_len;
    const char *id_field;     /* member holding the record id, usually "id" */
    char *const *fields;      /* only these members count (NULL: all) */
    char *const *ignore;      /* these never count (user ignore + catalog volatile; NULL: none) */
    unsigned emit;            /* EVENT_TYPE_* bits: which changes become events */
    const char *touch_field;  /* the update-time field: a change of it alone is "touched" (NULL: none) */
    bool silent;              /* baseline: record everything, emit nothing */
    uint32_t new_flags;       /* flags for entries created now (SNAP_BASELINE in a baseline) */
    /* Called inside the txn with each event just before it is appended (rules, own writes). */
    int (*on_event)(struct store_txn *txn, cJSON *event, void *ud);
    void *on_event_ud;
    /* Raw-bytes fast path (NULL: none): called once per record with a valid id, before it
     * is hashed; fills *raw for SNAPSHOT_RAW_HASH. */
    enum snapshot_raw (*raw_of)(const cJSON *rec, struct hash128 *raw, void *ud);
    void *raw_ud;
};

struct snapshot_stats {
    unsigned created;
    unsigned updated;
    unsigned deleted;
    unsigned unchanged;
    unsigned invalid;  /* records skipped: not an object, or no valid id */
    unsigned events;   /* events appended */
    /* records whose id was new to `seen` and whose entry existed before this
     * apply: with the scope's entry count, proves a deletion scan empty */
    unsigned seen_stored;
};

/* Called inside the txn for every change (emitted or not), e.g. to feed for_each children;
 * a touch comes as SNAPSHOT_UPDATED (it is one, only not an event by default). */
typedef int (*snapshot_change_cb)(struct store_txn *txn, const char *record_id,
                                  enum snapshot_change change, void *ud);

/* Builds "part0 SEP part1 SEP ... SEP" into a new string; *len gets its length. */
char *snapshot_key_prefix(const char *const *parts, size_t nparts, size_t *len);

/*
 * Diffs every record of the array `records` against the scope and writes the
 * differences: new entries (created), changed ones (updated, with `changes`),
 * cleared SNAP_MISSING flags. Adds each record id to `seen` (may be NULL).
 * Returns 0 or a store error (the txn's sticky error is then set).
 */
int snapshot_apply_records(struct store_txn *txn, const struct snapshot_scope *sc,
                           const cJSON *records, struct idset *seen, struct snapshot_stats *st,
                           snapshot_change_cb cb, void *ud);

/*
 * Whether a record with id record_id whose bytes hash as raw is unchanged
 * without looking at it: its entry exists in the current format with
 * SNAP_RAW and this raw hash, and no deletion is held. The raw hash is
 * stored only with a record whose content produced the entry's hash, so the
 * same bytes mean the same content. Read-only; any txn.
 */
bool snapshot_raw_same(struct store_txn *txn, const struct snapshot_scope *sc,
                       const char *record_id, const struct hash128 *raw);

/* snapshot_raw_each's visitor: a record id (not NUL-terminated) and the raw
 * hash its entry vouches for. Nonzero stops the walk with that value. */
typedef int (*snapshot_raw_fn)(const char *id, size_t idlen, const struct hash128 *raw, void *ud);

/*
 * Calls fn, in key order, for every entry of the scope that snapshot_raw_same
 * would accept with its raw hash: one sequential pass instead of a lookup per
 * record (a full enumeration's fast path). *entries (if not NULL) is set to
 * the number of all the scope's entries, with a raw hash or not, when the
 * walk went through (returns 0). Returns 0, a store error, or fn's nonzero
 * value. Read-only; any txn.
 */
int snapshot_raw_each(struct store_txn *txn, const struct snapshot_scope *sc,
                      snapshot_raw_fn fn, void *ud, size_t *entries);

/*
 * Removes record_id from the scope and emits `deleted` with the last known
 * copy (unless silent or not in emit). -ENOENT if it is not there.
 */
int snapshot_delete(struct store_txn *txn, const struct snapshot_scope *sc, const char *record_id,
                    struct snapshot_stats *st, snapshot_change_cb cb, void *ud);

/* Sets SNAP_MISSING on record_id (a deletion held for confirmation). */
int snapshot_mark_missing(struct store_txn *txn, const struct snapshot_scope *sc,
                          const char *record_id, uint64_t cycle);

/*
 * The last-known copy of record_id in the scope (what its `deleted` event
 * would carry), parsed into a new tree the caller frees; NULL when the scope
 * has no copy of it or the copy does not parse. Works in a read txn.
 */
cJSON *snapshot_last_copy(struct store_txn *txn, const struct snapshot_scope *sc,
                          const char *record_id);

/*
 * The raw-hash generation of a trigger's scope (prefix NAME SEP LOCATION SEP):
 * every write to an entry under that prefix (apply, mark missing, delete,
 * purge) stores, in the same txn, the writing txn's id and a nonce kept
 * since the generation was first written (a new random one when it was
 * missing: a wiped or purged store never repeats an old generation). It
 * lives in STORE_SNAPDATA under the prefix itself (no record id is empty),
 * so purging the trigger's keys removes it too. Two reads that return the
 * same generation saw the same entries (rawpage.c's persisted raw-hash map
 * is valid only for the generation it was built at).
 */
struct snapshot_gen {
    uint64_t txn;
    uint64_t nonce;
};

/* Reads the generation of sc's prefix (a trigger's scope) into *out.
 * Returns 0, -ENOENT (never written: no generation to trust) or an error. */
int snapshot_raw_gen(struct store_txn *txn, const struct snapshot_scope *sc,
                     struct snapshot_gen *out);

/* Removes every entry of the scope silently (a for_each parent record vanished). */
int snapshot_purge(struct store_txn *txn, const struct snapshot_scope *sc);

#endif

/*
 * evlog: the event log users tail (reliability.md §1.6), kept in STORE_EVENTS.
 *
 * Owns: the layout of STORE_EVENTS (key: the event's seq as a u64 big-endian
 * store_u64_key; value: the compact JSON object, no trailing NUL) and the
 * meta key "evlog.last_seq" (8 bytes, big-endian), plus retention.
 *
 * Invariants:
 *  - seq starts at 1 and never repeats: each append takes max(meta
 *    evlog.last_seq, last key) + 1 and writes evlog.last_seq in the same txn,
 *    so neither retention nor deleting every event makes a seq come back.
 *  - Every stored event is a JSON object whose first member is "seq".
 *  - The append happens inside the caller's write txn, the one that also
 *    updates the snapshot: that single commit is the exactly-once guarantee
 *    (an event exists if and only if the snapshot change that caused it does).
 *  - A stored event is at most evlog_max_event() bytes: EVLOG_MAX_EVENT, or
 *    [api] max_body when larger (the engine sets it), so any record the API
 *    can deliver fits; snapshot.c trims an event that still does not fit.
 *  - Retention never deletes the newest event.
 *  - Events are expected to carry "time", an ISO-8601 UTC timestamp
 *    (util_iso8601 writes one); age-based retention reads it.
 *
 * Thread context: the loop thread in the engine; the main thread in the CLI.
 * evlog_read and evlog_last_seq hold a read txn only for the duration of the
 * call (a tailer that kept one open would stop LMDB from reusing pages, §2.4).
 */
#ifndef POLLEN_EVLOG_H
#define POLLEN_EVLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "store.h"

#define EVLOG_MAX_EVENT (1024 * 1024) /* least bytes of compact JSON per event */
#define EVLOG_PRUNE_BATCH 1000        /* deletes per write txn in evlog_prune */

/* Raises the event size limit to bytes (never below EVLOG_MAX_EVENT); call before appending. */
void evlog_set_max_event(size_t bytes);
/* The largest event evlog_append writes, in bytes of compact JSON. */
size_t evlog_max_event(void);

/*
 * Appends event to the log inside txn (a write txn, normally the body of a
 * store_write that also updates the snapshot).
 * Sets "seq" (a number) as the FIRST member of event, replacing any "seq"
 * member it had; event stays owned by the caller, which now finds "seq" in
 * it. Calling this again for the same event on a retried txn is safe: the
 * member is replaced, not duplicated.
 * Returns 0 and sets *seq_out (may be NULL); -EINVAL if event is not an
 * object; -EFBIG if the printed event exceeds evlog_max_event() (nothing is
 * written, "seq" is removed again, the txn is NOT poisoned: the caller
 * decides whether to drop the event or fail the txn); or the txn's sticky
 * error / a store error (the txn is then poisoned).
 */
int evlog_append(struct store_txn *txn, cJSON *event, uint64_t *seq_out);

/*
 * Reads in a short read txn of its own the events with seq >= from_seq, in
 * order, at most max of them (max 0 reads nothing), calling
 * cb(seq, json, len, ud) for each. json points into the map: it is valid only
 * during the call and is NOT NUL-terminated. cb must not call into the store.
 * A non-zero return from cb stops the read: that event counts as not
 * consumed, and evlog_read returns cb's value.
 * *next_seq (may be NULL) is set to where the next call should start: one
 * past the last consumed event, or from_seq when none was consumed.
 * Returns 0, cb's non-zero value, or a negative store code.
 */
int evlog_read(struct store *s, uint64_t from_seq, size_t max,
               int (*cb)(uint64_t seq, const char *json, size_t len, void *ud), void *ud,
               uint64_t *next_seq);

/* The last seq ever assigned (0 if none), in a short read txn. Returns 0 or an error. */
int evlog_last_seq(struct store *s, uint64_t *out);

/* The same inside a caller's txn (read or write). */
int evlog_txn_last_seq(struct store_txn *txn, uint64_t *out);

/*
 * Retention. Deletes, oldest first, the events beyond the newest max_count
 * and the events whose "time" is more than max_age_ms before the reference
 * time, the earlier of now_wall_ms and the newest event's "time" (so a wall
 * clock far ahead does not delete unconsumed events; 0 disables either
 * limit), but never the newest event. Age deletion stops
 * at the first event young enough (the log is in time order save for clock
 * steps); an event without a readable "time" is never deleted for age (it
 * is skipped, with a warning) but still counts for max_count.
 * Works in write txns of at most EVLOG_PRUNE_BATCH deletes each (through
 * store_write), until nothing is left to delete; each txn is short, but a
 * large backlog means many of them in one call.
 * Returns 0 and sets *deleted (may be NULL), or a store error (events
 * deleted by earlier batches stay deleted and are counted in *deleted).
 */
int evlog_prune(struct store *s, uint64_t max_age_ms, uint64_t max_count, uint64_t now_wall_ms,
                uint64_t *deleted);

/* One batch of evlog_prune: a single write txn of at most EVLOG_PRUNE_BATCH
 * deletes. The engine calls it from the loop, one batch per callback, so a
 * large backlog (retention lowered on a big log) never stalls the loop. */
struct evlog_prune_result {
    uint64_t deleted;  /* events deleted by this batch */
    uint64_t untimed;  /* events kept by age retention for lack of a "time" */
    bool more;         /* the batch was full: call again */
};
int evlog_prune_step(struct store *s, uint64_t max_age_ms, uint64_t max_count,
                     uint64_t now_wall_ms, struct evlog_prune_result *out);

/*
 * Parses an event's "time": isotime_parse's ISOTIME_STRICT form,
 * "YYYY-MM-DDTHH:MM:SS[.fff...](Z|+HH:MM|-HH:MM|+HHMM|-HHMM)", into Unix
 * milliseconds (fraction digits beyond the third are ignored). The zone is
 * required. Instants 1970..9999. Returns 0 or -EINVAL.
 */
int evlog_parse_time(const char *s, uint64_t *wall_ms);

#endif

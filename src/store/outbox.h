/*
 * outbox: the durable queue of actions, and the dead-letter store, in LMDB.
 *
 * An entry is a JSON object holding everything needed to perform one action
 * (the fully rendered request), its idempotency key, the rule and source
 * event, and its delivery state: attempts, next_at (wall ms, as
 * dispatch_clock_ms reads it; 0: due at once), last status and error.
 * Entries live in STORE_OUTBOX under a u64 id; STORE_DUE indexes them
 * by (next_at, id) so the dispatcher finds the earliest due one; both are
 * always changed in the same transaction. Dead entries move to STORE_DLQ
 * (same id) with the final error, and are deleted [engine] dlq_retention
 * after they died.
 *
 * Entries are enqueued inside the transaction that records the event which
 * fired the rule (exactly-once enqueue), and every state change of an entry
 * commits together with the action.* event that reports it.
 * Thread context: loop thread (engine) or the CLI (dlq commands); every
 * function runs inside the caller's txn, except outbox_dlq_print.
 */
#ifndef POLLEN_OUTBOX_H
#define POLLEN_OUTBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cJSON.h>

#include "store.h"

/* Assigns an id, stores entry (adding "id", "attempts":0 and "next_at"), indexes it. entry stays the caller's. */
int outbox_enqueue(struct store_txn *txn, cJSON *entry, uint64_t next_at, uint64_t *id_out);

/* Reads entry id (a new cJSON object, caller frees). -ENOENT if absent, -EBADMSG if it does not parse. */
int outbox_get(struct store_txn *txn, uint64_t id, cJSON **out);

/* Rewrites entry id with its new contents and moves its due index to next_at. */
int outbox_update(struct store_txn *txn, uint64_t id, cJSON *entry, uint64_t next_at);

/* Removes entry id and its due index (after success). */
int outbox_remove(struct store_txn *txn, uint64_t id);

/* Moves entry id to the dead-letter store with the final error. */
int outbox_bury(struct store_txn *txn, uint64_t id, cJSON *entry, const char *why);

/*
 * Moves entry id, due at due_at, whose stored text no longer parses, to the
 * dead-letter store as a stub: {"id", "key", "state":"dead", "dead_reason",
 * "stored_bytes", ...}. *stub (caller frees) is what was stored. When the
 * entry is missing, only its stale due index key is removed (*stub NULL).
 */
int outbox_quarantine(struct store_txn *txn, uint64_t id, uint64_t due_at, const char *why,
                      cJSON **stub);

/*
 * The earliest due entry with next_at <= now whose id is not in skip[0..nskip):
 * sets *id and *next_at (its due key's time), or returns -ENOENT (then
 * *next_at is the earliest future due time, or 0 when the outbox is empty).
 *
 * Wall-clock steps (F14): next_at is wall time, persisted across restarts.
 * No wait the engine sets is longer than horizon (its longest backoff,
 * lease or Retry-After, plus a margin), so an entry due more than horizon
 * after now was scheduled before the clock stepped back, and is due now:
 * a step back delays no entry by more than horizon. 0: no such rule.
 */
int outbox_next_due(struct store_txn *txn, uint64_t now, uint64_t horizon, const uint64_t *skip,
                    size_t nskip, uint64_t *id, uint64_t *next_at);

/* The two parts of the store an entry can be in. */
enum outbox_part {
    OUTBOX_QUEUED, /* the outbox: pending, waiting for a retry, or in flight */
    OUTBOX_DEAD,   /* the dead-letter store */
};

/* Where a queued entry stands: claimed by an engine (in flight), attempted
 * before and waiting for its next attempt (retrying), or not tried yet. */
enum outbox_entry_state {
    OUTBOX_PENDING,
    OUTBOX_RETRYING,
    OUTBOX_IN_FLIGHT,
};
/* The state of a queued entry, from its "state" and "attempts" members. */
enum outbox_entry_state outbox_entry_state(const cJSON *entry);

/*
 * Calls cb for each entry of part with id >= from, in id order, until cb
 * returns non-zero (one that does not parse is passed as a stub saying so;
 * entry is borrowed for the call). Returns 0 or a store error.
 */
int outbox_scan(struct store_txn *txn, enum outbox_part part, uint64_t from,
                int (*cb)(uint64_t id, const cJSON *entry, void *ud), void *ud);

/* Dead letters: read one, list (cb per entry, in id order; one that does not
 * parse is listed as a stub saying so), drop, or send back to the outbox. */
int outbox_dlq_get(struct store_txn *txn, uint64_t id, cJSON **out);
int outbox_dlq_list(struct store_txn *txn, int (*cb)(uint64_t id, const cJSON *entry, void *ud),
                    void *ud);
int outbox_dlq_drop(struct store_txn *txn, uint64_t id);

/* Dead letters, and bytes, copied out of one read txn by outbox_dlq_print. */
#define OUTBOX_PRINT_BATCH 100
#define OUTBOX_PRINT_BYTES (1024u * 1024)

/*
 * `pollen dlq list`: writes every dead letter to out, one JSON line each, in
 * id order. Unlike the other functions it opens its own read txns, one per
 * bounded batch, and writes nothing while one is open (a stalled reader of
 * out must not pin the database, F5). Returns 0, a store error, or -EIO when
 * a write to out failed (the error is on out).
 */
int outbox_dlq_print(struct store *s, FILE *out);
/* The same for either part (`pollen outbox list --json` prints OUTBOX_QUEUED). */
int outbox_print(struct store *s, enum outbox_part part, FILE *out);
/* Re-queues a dead letter with attempts reset to 0, due now. -ENOMSG: it has
 * no request to send (it died before one could be rendered or stored); an
 * entry that does not parse gives the store's error (-EBADMSG). */
int outbox_dlq_retry(struct store_txn *txn, uint64_t id, uint64_t now);

/* Dead letters examined per outbox_dlq_prune_batch. */
#define OUTBOX_PRUNE_BATCH 256

/*
 * Dead-letter retention (F21), one bounded batch of store_sweep_batch:
 * deletes the dead letters whose dead_at is more than max_age_ms before
 * now_ms. max_age_ms 0 keeps every one (and examines nothing); a dead
 * letter without a readable dead_at is kept.
 */
int outbox_dlq_prune_batch(struct store_txn *txn, uint64_t max_age_ms, uint64_t now_ms,
                           struct store_sweep *sw);

/* Number of pending outbox entries (for status and tests). */
int outbox_count(struct store_txn *txn, uint64_t *pending, uint64_t *dead);

#endif

/*
 * sweep: the for_each side of the poller (poller__sweep_ops). A child trigger (the items
 * of every order, say) reads one parent record at a time: first
 * those its parent just saw created or updated (a durable queue in
 * STORE_QUEUE that the parent fills inside its own page transactions), then
 * every parent record round-robin from LOCATION_SWEEP budget (a swept read
 * the location would hold longer than SWEEP_HOLD_MS waits unqueued, so the
 * changed ones still go at once), starting a full round `reconcile` (default
 * 1 day) after the last one ended (persisted; timed on the monotonic clock).
 * Two or more
 * queued parent records, when the definition names a batch listing, are
 * read with it (batch.c: up to POLLER_BATCH_MAX a listing, each parent's
 * group then applied as its own read; a failed batch reads them one by
 * one); full rounds read one parent at a time. Each read's
 * snapshot changes, events, queue removal and sweep position commit in one
 * transaction. Each queue entry carries a generation the parent bumps when it
 * queues the record again: a read removes the entry only if it is still the
 * one it picked, so a parent that changed again while being read is read
 * again at once (not at the next full round). Deletions: with confirm_delete (a template that may name the
 * parent's placeholder, /orders/{orderId}/items/{id}), each record
 * missing from a read is asked for by id before that read commits, and a
 * gone one is deleted by that same read (an error decides nothing; it is
 * asked again on the next read). Without it, a missing record is held and
 * deleted by the next read that still lacks it, and a list that comes back
 * empty where records used to be is believed only after
 * EMPTY_CONFIRMATIONS empty reads in a row. A parent
 * record's first read is silent (until the child's first round is complete,
 * and for parent baseline records) unless the parent saw it created while
 * the child existed. A parent record that cannot be read is retried
 * UNIT_ATTEMPTS times, then skipped for the round (it stays queued behind
 * the others) and reported at most once an hour, so it never blocks the rest.
 * --once: one round after the parent's cycle; a failed parent fails it.
 * Thread context: loop thread.
 */
#ifndef POLLEN_SWEEP_H
#define POLLEN_SWEEP_H

#include <stdint.h>

#include "snapshot.h"

struct poller;
struct store_txn;

/* Parent side, inside its txn: queue record_id for every child ('P' read, 'D' purge). */
int poller__sweep_notify(struct store_txn *txn, const char *record_id,
                         enum snapshot_change change, void *ud);
/* Parent side, after its commit (and, --once, at its end): wake idle children. */
void poller__sweep_kick(struct poller *p);
/*
 * How long until the next full round may start (ms), from the wall time the
 * last round ended (persisted; 0: never) and the wall time now. An end in the
 * future (the clock stepped back) counts as now.
 */
uint64_t poller__sweep_round_wait(uint64_t last, uint64_t now, uint64_t interval);

#endif

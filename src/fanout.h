/*
 * fanout: the for_each side of the poller. A child trigger (tasks, notes,
 * appointments of every contact) reads one parent record at a time: first
 * those its parent just saw created or updated (a durable queue in
 * STORE_QUEUE that the parent fills inside its own page transactions), then
 * every parent record round-robin from LOCATION_SWEEP budget, starting a new
 * round at most every `every`. Each read's snapshot changes, events, queue
 * removal and sweep position commit in one transaction. A list that comes
 * back empty where records used to be is believed only after
 * EMPTY_CONFIRMATIONS empty reads in a row. Baseline contacts are read
 * silently the first time; contacts created later report their records.
 * Thread context: loop thread.
 */
#ifndef POLLEN_FANOUT_H
#define POLLEN_FANOUT_H

#include "snapshot.h"

struct poller;
struct store_txn;

/* The child's timer fired (or it was kicked): read the next parent record. */
void fanout_sweep_next(struct poller *p);
/* Parent side, inside its txn: queue record_id for every child ('P' read, 'D' purge). */
int fanout_notify_children(struct store_txn *txn, const char *record_id,
                           enum snapshot_change change, void *ud);
/* Parent side, after its commit: wake idle children. */
void fanout_kick_children(struct poller *p);

#endif

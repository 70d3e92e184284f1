/*
 * orphans: the state a state directory keeps for triggers that are no longer
 * in the configuration (renamed or removed [trigger] sections, or a trigger
 * moved to another location): their snapshots (snap, snapdata), their
 * per-trigger state (trig) and their fan-out queues (queue). Nothing else
 * ever reads or deletes it (F21), so `check` reports it and `pollen purge`
 * deletes it.
 *
 * Owns nothing on disk; it relies on the key layout of those tables: every
 * key starts with the trigger's scope, "TRIGGER" SNAPSHOT_SEP "LOCATION"
 * (poller_create), followed by SNAPSHOT_SEP and more in every table but
 * trig. Events, the outbox, dead letters and own-write entries are left
 * alone: they are not kept per trigger.
 * Thread context: the CLI's main thread (never the engine's loop).
 */
#ifndef POLLEN_ORPHANS_H
#define POLLEN_ORPHANS_H

#include <stdint.h>
#include <stdio.h>

#include "store.h"

struct config;

/* One scope that no configured trigger owns, and how many keys it holds. */
struct orphan {
    char *scope;     /* "TRIGGER/LOCATION", printable */
    uint64_t keys;   /* over the four tables */
};

struct orphan_list {
    struct orphan *items;
    size_t count;
};

/* Fills *out with the orphaned scopes of s (in key order). Returns 0 or a store error. */
int orphans_find(struct store *s, const struct config *cfg, struct orphan_list *out);
void orphans_free(struct orphan_list *l);

/*
 * Deletes every orphaned key of s, in write txns of at most 1000 deletes
 * each. The caller holds the engine lock (store_lock_engine), so no engine
 * writes meanwhile. Returns 0 and sets *deleted, or a store error (keys
 * deleted by earlier txns stay deleted and are counted).
 */
int orphans_purge(struct store *s, const struct config *cfg, uint64_t *deleted);

#endif

/*
 * tail: `pollen tail`, the reader side of the event log.
 *
 * Opens the state directory read-only (a separate process from the engine;
 * LMDB lets both share it), prints events with seq >= from as NDJSON, one per
 * line, in seq order, optionally filtered by trigger and type, and with
 * follow set keeps polling for new events every 250 ms until SIGINT/SIGTERM
 * or a closed stdout. It never holds a read transaction between polls, and
 * writes nothing while it holds one (each batch is copied out first), so a
 * stalled consumer of its stdout cannot make the engine's database grow
 * (reliability §2.4). A --from below the oldest kept event is said on stderr
 * (an export resumed after retention would otherwise miss events silently).
 * Thread context: the CLI's main thread (it sleeps; it is not a loop).
 */
#ifndef POLLEN_TAIL_H
#define POLLEN_TAIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct tail_options {
    const char *state_dir;
    uint64_t from;           /* first seq to print (1 = everything) */
    const char *trigger;     /* only events of this trigger, or NULL */
    const char *type;        /* only events of this type, or NULL */
    bool follow;
    uint64_t limit;          /* stop after this many events (0 = no limit) */
    FILE *out;
};

/* Returns the exit code: 0 ok, 1 runtime failure (a failed write to out included). */
int tail_run(const struct tail_options *o);

#endif

/*
 * tail: `pollen tail`, the reader side of the event log.
 *
 * Opens the state directory read-only (a separate process from the engine;
 * LMDB lets both share it), prints events with seq >= from as NDJSON, one per
 * line, in seq order, optionally filtered by trigger, types (any of them)
 * and time (since), optionally only the last N matching ones, and with
 * follow set keeps polling for new events every 250 ms until SIGINT/SIGTERM
 * or a closed stdout. A missing state directory is an error (exit 2), but
 * with follow it is said once and waited for (the engine creates it); so is
 * a trigger that is neither configured nor in the log (check_trigger). It never holds a read transaction between polls, and
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

struct config;

/* --type given several times: an event of any of them matches. There are
 * eight event types; a repeated one is kept once. */
#define TAIL_MAX_TYPES 8
struct tail_types {
    const char *names[TAIL_MAX_TYPES]; /* borrowed (argv) */
    size_t count;                      /* 0: every type */
};

struct tail_options {
    const char *state_dir;
    uint64_t from;           /* first seq to print (1 = everything) */
    const char *trigger;     /* only events of this trigger (or its NAME@LOCATION expansions), or NULL */
    bool check_trigger;      /* trigger is not configured: exit 2 unless the log has an event of it */
    struct tail_types types; /* only events of these types */
    uint64_t since_ms;       /* only events whose "time" is at or after this wall ms (0 = all) */
    bool has_last;           /* start at the last `last` matching events (-n) */
    uint64_t last;
    bool follow;
    uint64_t limit;          /* stop after this many events (0 = no limit) */
    FILE *out;
};

/* Adds type to t (a repeat is kept once). Returns 0, or -E2BIG when full. */
int tail_types_add(struct tail_types *t, const char *type);

/*
 * Parses --since TEXT into wall ms: an ISO-8601 instant (2026-12-07T10:00:00Z,
 * or a date, or without a zone meaning UTC: isotime's loose form) or a
 * duration before now_ms (10m, 2h, 1d, as util_parse_duration reads them).
 * Returns 0 and sets *out_ms, or -EINVAL.
 */
int tail_parse_since(const char *text, uint64_t now_ms, uint64_t *out_ms);

/* Is name a [trigger] of cfg (borrowed), or one whose `location = *`
 * expansions are named name@LOCATION? */
bool tail_trigger_configured(const struct config *cfg, const char *name);

/* Returns the exit code: 0 ok, 1 runtime failure (a failed write to out
 * included), 2 a missing state directory (without follow) or an unknown
 * trigger (check_trigger). */
int tail_run(const struct tail_options *o);

#endif

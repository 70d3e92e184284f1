/*
 * status_report: what `pollen status` shows, as data: one struct filled by
 * status_collect from the configuration and the state directory, rendered
 * as text (status_print_text) or one JSON object (status_to_json). The
 * command (cmd/status.c) opens the state read-only beside a running engine;
 * the engine's own HTTP listener (/metrics, the status page) can fill the
 * same struct from its own store handle.
 *
 * Owns: the report's arrays (triggers, locations, readers); strings in it
 * are borrowed from the configuration, which must outlive the report.
 * Invariants: status_collect only reads: short read txns (one for the
 * per-trigger and outbox reads, closed before the database statistics),
 * never the engine's lock; a state directory without data.mdb yet is no
 * error (every trigger reads "never run").
 * Thread context: the caller's (the CLI's main thread; the loop thread
 * of an engine): it does not sleep, but walks the outbox (O(entries)).
 */
#ifndef POLLEN_STATUS_REPORT_H
#define POLLEN_STATUS_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cJSON.h>

#include "status_store.h"
#include "store.h"

struct config;
struct config_trigger;
struct config_location;

/* A trigger's state, in the order status_collect decides them. */
enum status_state {
    STATUS_NEVER_RUN,  /* nothing recorded yet */
    STATUS_STOPPED_AUTH, /* its last cycle failed on the credential: the engine stopped it */
    STATUS_BACKING_OFF, /* its last cycle failed: it is retried after a backoff */
    STATUS_BASELINE,   /* its first complete enumeration (or for_each round) is not done yet */
    STATUS_RUNNING,    /* an engine runs and the next cycle is due: one is under way */
    STATUS_IDLE,       /* healthy, waiting for its next cycle (or for an engine to run it) */
};

struct status_trigger {
    const struct config_trigger *tc;
    enum status_state state;
    bool has_state;            /* the engine keeps state for it ("trig") */
    bool has_cycle;            /* a last-cycle record exists (top-level triggers) */
    struct status_cycle last;  /* that record */
    bool seeded;
    uint64_t cycles;           /* complete cycles (for_each: rounds) */
    uint64_t updated_ms;       /* when its state was last saved (0: unknown) */
    int64_t watermark_ms;      /* incremental: the watermark, or -1 */
    bool incremental;
    uint64_t reconciled_ms;    /* incremental: when the last reconcile began (0: none yet) */
    uint64_t reconcile_due_ms; /* incremental: when the next is due (0: at the next cycle) */
    uint64_t round_ended_ms;   /* for_each: when the last full round ended (0: none) */
    bool failing;              /* last cycle failed or stopped by auth: exit 1 */
    bool failing_long;         /* failing for longer than 3x its interval (the health rule) */
};

struct status_location {
    const struct config_location *lc;
    bool has_rate;             /* a cycle recorded its budget */
    struct status_rate rate;
};

struct status_outbox {
    uint64_t pending;          /* waiting for their first attempt */
    uint64_t retrying;         /* attempted, waiting for the next attempt */
    uint64_t in_flight;        /* claimed by an engine (a lease) */
    uint64_t next_attempt_ms;  /* the earliest next attempt of a retrying one (0: none) */
    uint64_t dead;             /* dead letters */
};

#define STATUS_MAX_READERS 64

struct status_report {
    uint64_t now_ms;
    const char *state_dir;
    bool store_exists;
    bool engine_running;
    long engine_pid;           /* 0 when no engine runs */
    char engine_started[48];   /* as engine.lock says, or "" */
    struct status_trigger *triggers;
    size_t ntriggers;
    struct status_location *locations;
    size_t nlocations;
    struct status_outbox outbox;
    uint64_t events;           /* events kept */
    uint64_t oldest_seq, newest_seq; /* 0 when none */
    struct store_stat db;      /* zero without a store */
    struct store_reader readers[STATUS_MAX_READERS];
    size_t nreaders;           /* slots holding a read txn (may exceed STATUS_MAX_READERS) */
    bool failing;              /* some trigger is failing */
};

/*
 * Fills *out for cfg from s (NULL: no state directory yet). engine_pid is
 * the running engine's pid (0: none; status_engine_pid finds it). Returns 0,
 * or a store error (out is then still freeable).
 */
int status_collect(const struct config *cfg, struct store *s, long engine_pid,
                   struct status_report *out);
void status_report_free(struct status_report *r);

/* The pid of an engine running on state_dir, from its engine.lock, if that
 * process is alive (0 otherwise); started gets "TIME" from the lock ("" if none).
 * Reads the file only: never takes the lock. */
long status_engine_pid(const char *state_dir, char *started, size_t size);

/* "never run", "stopped by auth", "backing off", "baseline", "running", "idle". */
const char *status_state_name(enum status_state s);

void status_print_text(const struct status_report *r, FILE *out);
/* The report as one JSON object (README "pollen status" lists its fields). Caller frees. */
cJSON *status_to_json(const struct status_report *r);

#endif

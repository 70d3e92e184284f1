/*
 * poller: runs one configured trigger on one location.
 *
 * A top-level trigger runs cycles on a timer: each cycle enumerates every
 * page of the catalog endpoint (through the location's request queue), diffs
 * each page into the snapshot as it arrives (one write txn per page: the
 * snapshot and its events commit together), and after a complete, error-free
 * enumeration decides deletions (reliability P5: confirmed by a GET by id, or
 * by a second complete enumeration, and held when more than half of the
 * records and more than 20 vanish at once). Memory is bounded by one page
 * plus a set of seen id hashes.
 *
 * A for_each trigger (fan-out child) reads one parent record at a time:
 * first those the parent just saw created or updated (a durable queue the
 * parent fills in its own transaction), then every parent record round-robin,
 * from LOCATION_SWEEP budget, starting a new round at most every `every`.
 *
 * Cycles never overlap; failures retry the page with capped jittered backoff,
 * then back the whole trigger off, and recover on the next success.
 * Thread context: loop thread only.
 */
#ifndef POLLEN_POLLER_H
#define POLLEN_POLLER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include <cJSON.h>

struct config;
struct config_trigger;
struct location;
struct target;
struct store;
struct store_txn;
struct poller;

struct poller_env {
    uv_loop_t *loop;
    struct store *store;
    const struct config *cfg;
    bool once;                          /* run one complete cycle (or sweep round), then report done */
    bool dry_run;                       /* nothing is recorded (only changes what the log says) */
    void (*on_done)(struct poller *p, void *ud);  /* once mode: called when the poller finished */
    void *ud;
    /* Called inside the txn for each event before it is appended (the dispatcher's rule hook). */
    int (*on_event)(struct store_txn *txn, cJSON *event, void *ud);
    void *on_event_ud;
    /* Called after a commit that appended events (wakes the dispatcher). */
    void (*on_events)(void *ud);
};

struct poller_stats {
    uint64_t cycles;          /* complete cycles (or sweep rounds) */
    uint64_t failed_cycles;
    uint64_t requests;
    uint64_t records;         /* records processed */
    uint64_t events;
};

struct poller *poller_create(const struct poller_env *env, const struct config_trigger *tc,
                             struct location *loc);
/* A trigger on a user's own API ([api NAME]): its requests go to target
 * (borrowed, must outlive the poller) with no HighLevel header or binding. */
struct poller *poller_create_api(const struct poller_env *env, const struct config_trigger *tc,
                                 struct target *target);
/* Makes child a for_each reader of parent's records (both created already). */
void poller_add_child(struct poller *parent, struct poller *child);
/* Loads the trigger's stored state and schedules its first cycle (with start jitter). */
int poller_start(struct poller *p);
/* Stops scheduling; a request in flight is cancelled; the page being applied finishes first. */
void poller_stop(struct poller *p);
/* The same because its credential failed for good (reason: why, borrowed): its
 * last-cycle record says "stopped by auth" with reason (`pollen status`). */
void poller_stop_auth(struct poller *p, const char *reason);
/* Closes the timer; the poller frees itself once closed and idle. */
void poller_close(struct poller *p);

const char *poller_name(const struct poller *p);
/* The trigger's interval (ms). */
uint64_t poller_every_ms(const struct poller *p);
/* Loop time (uv_now) when the trigger's current run of failed cycles began,
 * 0 when its last cycle succeeded (or none ended yet). */
uint64_t poller_failing_since(const struct poller *p);
bool poller_done(const struct poller *p);
bool poller_failed(const struct poller *p);
void poller_get_stats(const struct poller *p, struct poller_stats *out);

#endif

/*
 * sinks_int: what the dispatcher's files share. Only src/sinks/ includes it.
 *
 *   route.c    dispatch_on_event: echo check, rule matching, render, enqueue
 *   deliver.c  the dispatcher: clock, claim, lease, retry, dead letters, pump,
 *              lifecycle, action events
 *   echo.c     own writes and pending creates (the echo detector)
 *   render.c   template services for sinks (sink.h)
 *   registry.c the list of sinks; sink_ghl.c, sink_http.c, sink_exec.c
 *
 * Calls go one way: route -> echo, deliver, registry; deliver -> registry
 * (sinks only through their descriptors) and echo only through the ghl
 * descriptor's hooks; a sink -> render, and ghl -> echo and sink_http's
 * response classifier. No sink calls route or deliver: it reports through
 * sink_call.done.
 *
 * Owns: the layout of struct dispatcher (created and freed by deliver.c).
 * Invariants: cross-file names start with dispatch__.
 * Thread context: loop thread.
 */
#ifndef POLLEN_SINKS_INT_H
#define POLLEN_SINKS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>
#include <uv.h>

#include "dispatch.h"
#include "sink.h"

struct attempt;
struct catalog_trigger;
struct http_response;

struct dispatcher {
    struct dispatcher_env env;
    uv_timer_t timer;
    struct attempt *inflight;
    size_t ninflight;
    bool stopping;
    bool closing;
    bool timer_closed;
    /* Store trouble: claiming pauses until blocked_until (see STORE_BACKOFF_*). */
    unsigned store_failures;
    uint64_t blocked_until;    /* dispatch_clock_ms() time */
    uint64_t horizon;          /* due_horizon of the configuration */
    uint64_t trouble_logged_at;
    unsigned trouble_unlogged;   /* failures since the last log line */
    /* Graceful stop: called once nothing is in flight (dispatcher_drain). */
    void (*on_drained)(void *ud);
    void *drained_ud;
};

/* ---- deliver.c ---- */

/*
 * Appends the action.succeeded / action.failed / action.dead event of
 * entry (borrowed) to the event log in txn; o (borrowed) may be NULL.
 * The event's record_id is the record acted on: the id in o's result (the
 * record a create made), else the entry's target_id; absent when neither.
 * Returns 0 or a store error.
 */
int dispatch__action_event(struct store_txn *txn, const cJSON *entry, const char *type,
                           const struct sink_outcome *o);

/* ---- echo.c ---- */

/*
 * Is this event the echo of a write pollen made, not yet seen by trigger?
 * def is the trigger's definition (its resource and that resource's facts).
 * Marks the record seen by it if so. All pointers borrowed.
 */
bool dispatch__is_own_write(struct store_txn *txn, const char *location_id,
                            const struct catalog_trigger *def, const char *record_id,
                            const char *type, const cJSON *changes, const cJSON *record,
                            const char *trigger);
/* The ghl sink's claimed hook: records the intents of a write before it is sent. */
int dispatch__echo_claimed(struct store_txn *txn, const cJSON *entry, uint64_t id);
/* The ghl sink's recorded hook: drops the pending create; on success, records what was written. */
int dispatch__echo_recorded(struct store_txn *txn, const cJSON *entry, uint64_t id,
                            const struct sink_outcome *o);

/* ---- sink_http.c (shared with sink_ghl.c) ---- */

/* Classifies an HTTP response (a const struct http_response *) for entry. */
void dispatch__classify_http(const cJSON *entry, const void *response, struct sink_outcome *o);
/* The engine's location named name (a [location] or [company]), or NULL (none
 * by that name, or no runtime locations: a test). */
struct location *dispatch__runtime_location(const struct dispatcher_env *env, const char *name);
/* http_done_cb for a send whose ud is its struct sink_call: classifies, then reports. */
void dispatch__http_done(struct http_response *resp, void *ud);

#endif

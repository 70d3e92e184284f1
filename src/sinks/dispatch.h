/*
 * dispatch: rules and actions at run time.
 *
 * Inside the transaction that records an event (snapshot.c calls
 * dispatch_on_event just before appending it), the dispatcher:
 *   1. marks the event `"origin":"pollen"` when it is the echo of one of
 *      pollen's own writes (see below), so that rules never re-fire on it;
 *   2. matches every [rule] whose `on` names the event's trigger and type and
 *      whose `when` holds, renders the action's parameters from the event,
 *      and enqueues the fully rendered request in the outbox, in that same
 *      transaction: a crash can never lose an action (reliability P1, P4).
 *      Event data never changes a request's shape: an http URL's {{ }}
 *      parts are percent-encoded (template_render_url), event strings keep
 *      their JSON type in string_list and json fields (coerce), and secret
 *      headers (env:/file:) are stored as "***" plus their reference and
 *      filled in only by send_http.
 * On the loop, it drains the outbox with bounded concurrency: each attempt is
 * first recorded (attempts+1, a lease as next_at) and committed, then sent
 * (HighLevel actions through the location's queue, sharing its rate budget;
 * `http` actions through the HTTP client with an Idempotency-Key; `exec`
 * actions through subproc). The outcome commits together with its
 * action.succeeded / action.failed / action.dead event: success removes the
 * entry; 5xx, 408, 429, timeouts and connection errors retry with capped,
 * jittered exponential backoff (never sooner than Retry-After); other 4xx and
 * exhausted attempts move it to the dead-letter store.
 *
 * The drain never holds the loop: at most 16 claims per loop turn,
 * never the same entry twice in one turn. An entry the store refuses to
 * claim is parked (due later, "claim_failures" counted); when even that
 * fails, claiming pauses with a capped backoff; the error is logged at most
 * once a minute. An entry that no longer parses is dead-lettered as a stub,
 * and an event whose request nests too deep to be read back is dead-lettered
 * when it is matched, so no entry can poison the outbox. On SIGTERM,
 * dispatcher_drain lets the attempts in flight finish and records them.
 * Scheduling runs on dispatch_clock_ms, so wall-clock steps neither stall
 * retries nor expire leases early; a due time further ahead than any wait
 * the engine sets (left by a step back before a restart) counts as due now.
 *
 * Own writes: when a HighLevel action succeeds, the record it wrote (the
 * response's `result` member) is remembered in STORE_OWN under the target
 * record's id. When a trigger later reports that record created or updated,
 * and every field it changed, apart from the ones the API derives on any
 * write (the resource's `derived` in the catalog's resources/ files), has
 * the value pollen wrote, the event is pollen's own echo (so a later write
 * by someone else breaks the match; see echo.c). Marks expire after an
 * hour; dispatch_own_sweep_batch deletes expired ones in bounded batches.
 *
 * Dry run: nothing is enqueued or sent; each request that would be sent is
 * printed as one JSON line on the dry-run stream instead, and a rule that
 * cannot be rendered for the event as a line with its "error".
 *
 * Files (sinks_int.h): route.c (dispatch_on_event), deliver.c (the
 * dispatcher and its clock), echo.c (own writes); each action kind is a
 * sink (sink.h, registry.h). An entry whose "kind" names no sink is
 * dead-lettered when claimed ("cannot send: unknown action kind").
 * Owns: the dispatcher and its attempts in flight; STORE_OWN (own-write
 * marks and pending-create lists).
 * Invariants: an action is enqueued in the txn of its event; an attempt is
 * recorded (attempts+1, lease) before it is sent; its outcome commits with
 * its action event.
 * Thread context: loop thread.
 */
#ifndef POLLEN_DISPATCH_H
#define POLLEN_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include <cJSON.h>

struct config;
struct http_client;
struct location;
struct store;
struct store_txn;
struct store_sweep;
struct dispatcher;

struct dispatcher_env {
    uv_loop_t *loop;
    struct store *store;
    const struct config *cfg;
    struct http_client *http;
    struct location **locations;  /* parallel to cfg->locations */
    FILE *dry_run;                /* non-NULL: print would-be requests here, send nothing */
    unsigned concurrency;         /* actions in flight at once (default 4) */
};

struct dispatcher *dispatcher_create(const struct dispatcher_env *env);
/* Starts draining the outbox (and keeps looking every second). */
void dispatcher_start(struct dispatcher *d);
/* Stops starting new attempts and cancels the ones in flight (left for their lease). */
void dispatcher_stop(struct dispatcher *d);
/*
 * Graceful stop (SIGTERM): starts no new attempt, lets the ones in flight
 * finish for up to grace_ms and records their outcomes, then cancels what is
 * still running (its lease brings it back after a restart: sent again).
 * done(ud) runs once, from the loop, when nothing is in flight. The HTTP
 * client and the locations must stay open until then.
 */
void dispatcher_drain(struct dispatcher *d, uint64_t grace_ms, void (*done)(void *ud), void *ud);
/* Closes the timer; frees itself when nothing is in flight. */
void dispatcher_close(struct dispatcher *d);
/* Looks at the outbox again soon (after a commit that may have enqueued). */
void dispatcher_kick(struct dispatcher *d);
bool dispatcher_idle(const struct dispatcher *d);
/* True when the outbox holds nothing due now or in flight (for --once). */
bool dispatcher_drained(const struct dispatcher *d);

/*
 * The snapshot hook: called inside txn for every event just before it is
 * appended. May add members to event (origin). Returns 0 or a store error.
 * ud is the dispatcher.
 */
int dispatch_on_event(struct store_txn *txn, cJSON *event, void *ud);

/* Own-write marks examined per dispatch_own_sweep_batch. */
#define DISPATCH_SWEEP_BATCH 256

/*
 * Own-write expiry (F21), one bounded batch of store_sweep_batch over
 * STORE_OWN: deletes the marks older than their hour (is_own_write only
 * expires the marks of records that change again) and pending-create lists
 * whose every entry is that old (left by a crash between claim and outcome),
 * and unreadable values. The engine runs it after dead-letter retention,
 * with now_ms from dispatch_clock_ms.
 */
int dispatch_own_sweep_batch(struct store_txn *txn, uint64_t now_ms, struct store_sweep *sw);

/* The dispatcher's clock: wall ms as of its first use, advanced by the monotonic
 * clock (a wall-clock step while it runs changes nothing; see deliver.c).
 * The times it stores (next_at, leases, own-write marks) are on it. */
uint64_t dispatch_clock_ms(void);

#endif

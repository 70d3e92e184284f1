/*
 * monitor: the engine's optional loopback listener ([engine] listen):
 * Prometheus metrics at /metrics, a health check at /healthz, the status
 * page at / and its data at /status.json (the `pollen status --json` object,
 * each trigger with "hourly": its events and requests per hour over the last
 * 24 hours), served by net/httpd from the engine's own loop.
 *
 * Owns: the listener (its httpd), the hourly counts of each trigger (since
 * this engine started: in memory, rotated by wall-clock hour, requests
 * sampled from the pollers every minute), and the metric families' declarations;
 * the series themselves live in core/metrics (counted where things happen:
 * cycles in sources/poll, HTTP answers in ghl/location, action outcomes in
 * sinks/deliver, events here through monitor_count_event).
 * Invariants: a scrape or a health check reads only in-memory state and one
 * O(1) LMDB read (store_stat): bounded work on the loop thread; /status.json
 * reads what `pollen status` reads (status_collect: short read txns, the
 * outbox walked once). /healthz
 * answers 503 when a trigger has been failing for longer than 3 times its
 * interval (its cycles fail and back off), 200 otherwise, while the loop runs.
 * Thread context: loop thread only.
 */
#ifndef POLLEN_MONITOR_H
#define POLLEN_MONITOR_H

#include <cJSON.h>
#include <stddef.h>
#include <uv.h>

struct config;
struct location;
struct poller;
struct store;
struct monitor;

struct monitor_env {
    uv_loop_t *loop;
    const struct config *cfg;
    struct store *store;
    struct poller *const *pollers; /* borrowed: they outlive the monitor */
    size_t npollers;
    struct location *const *locations;
    size_t nlocations;
};

/* Declares every metric family (at engine start, listener or not). */
void monitor_declare(void);
/* Counts one event in pollen_events_total{trigger, type} and, with a
 * listener (m not NULL), in its trigger's hourly count. */
void monitor_count_event(struct monitor *m, const cJSON *event);
/* Listens on cfg->listen. Returns 0 and *out, or a negative error (logged). */
int monitor_start(const struct monitor_env *env, struct monitor **out);
/* The port listened on (tests use listen = 127.0.0.1:0). */
unsigned monitor_port(const struct monitor *m);
/* Stops listening; m is freed once its handles have closed. */
void monitor_close(struct monitor *m);

#endif

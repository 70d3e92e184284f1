/*
 * engine: owns the libuv loop and wires every runtime module together for
 * `pollen run`: the store, the HTTP client, one location per [location],
 * one poller per [trigger] (children attached to their for_each parents),
 * signal handling and periodic maintenance (stale LMDB readers, readers
 * that hold an old snapshot, event-log retention,
 * dead-letter retention and own-write expiry).
 *
 * One engine per state directory: engine_run takes an exclusive flock on
 * state_dir/engine.lock (store_lock_engine) for its whole run, --once and
 * --dry-run included, and refuses to start (exit 2) while another process
 * holds it.
 *
 * SIGHUP reloads (not with --once or --dry-run): the file is read and
 * checked as at start (reload.c); with any problem the running
 * configuration stays and each problem is logged with FILE:LINE. Otherwise
 * the runtime stops as for a shutdown (in-flight requests cancelled, actions
 * in flight finish and are recorded), everything built from the old
 * configuration closes, and the runtime is built again from the new one in
 * the same process, with the same store and lock: unchanged and changed
 * triggers carry on from their stored state (a changed `use` records a new
 * baseline, as at a restart), added ones record their baseline, removed
 * ones stop (their state stays until `pollen purge`), and the rules switch
 * between events (the outbox keeps what the old ones enqueued).
 * Under systemd (sdnotify.h) it sends READY=1 once the triggers are
 * started, WATCHDOG=1 from the loop and STOPPING=1 when shutdown begins.
 *
 * Shutdown order (SIGINT/SIGTERM, or all pollers done with --once): stop the
 * pollers (no new requests; an in-flight request is cancelled: nothing is
 * lost because a snapshot only advances with the page that committed it),
 * let the actions in flight finish for up to [engine] shutdown_grace and
 * record their outcomes (dispatcher_drain), then close the locations, close
 * the HTTP client, close the remaining handles, and require
 * uv_loop_close() == 0.
 * Thread context: runs on the calling thread, which becomes the loop thread.
 */
#ifndef POLLEN_ENGINE_H
#define POLLEN_ENGINE_H

#include <stdbool.h>

struct config;

struct engine_options {
    bool once;      /* one complete cycle per trigger (one sweep round per for_each trigger), then
                     * wait until no action is due, then exit */
    bool dry_run;   /* like once, but nothing is committed or sent: the requests rules would
                     * send are printed on stdout as JSON lines */
    const char *config_path; /* what SIGHUP re-reads; NULL: SIGHUP is logged and ignored */
    bool log_level_fixed;    /* --log-level was given: a reload keeps it */
};

/* Runs until stopped. Returns the process exit code: 0 ok, 1 runtime failure,
 * 2 another engine holds the state directory. */
int engine_run(const struct config *cfg, const struct engine_options *opts);

#endif

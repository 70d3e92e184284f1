/*
 * sdnotify: the engine's side of systemd's service protocol (Type=notify in
 * dist/pollen.service.in), through libsystemd's sd_notify(3):
 *   READY=1     once the engine has started its triggers (systemctl start
 *               returns then, and units ordered after pollen start);
 *   WATCHDOG=1  from a libuv timer at half of WATCHDOG_USEC (WatchdogSec=):
 *               a loop that stops turning stops the pings, and systemd
 *               kills and restarts the service;
 *   STOPPING=1  when shutdown begins (SIGTERM, SIGINT, the end of --once).
 * Outside systemd (no NOTIFY_SOCKET, no WATCHDOG_USEC) every call is a
 * no-op, and so is the whole module in a build without libsystemd
 * (meson's `systemd` feature; HAVE_SYSTEMD is 0).
 *
 * Owns: the watchdog timer (a handle on the engine's loop).
 * Invariants: WATCHDOG=1 is sent only while the timer runs, i.e. between
 * sdnotify_start and sdnotify_close.
 * Thread context: loop thread.
 */
#ifndef POLLEN_SDNOTIFY_H
#define POLLEN_SDNOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct sdnotify {
    uv_timer_t watchdog;
    bool watching;        /* the timer was initialised (WATCHDOG_USEC was set) */
    uint64_t interval_ms; /* half of WATCHDOG_USEC */
};

/* Starts the watchdog pings when the service manager asked for them
 * (WATCHDOG_USEC for this process). Borrows loop. */
void sdnotify_start(struct sdnotify *n, uv_loop_t *loop);
/* READY=1, with status (borrowed) as STATUS=. */
void sdnotify_ready(const char *status);
/* STOPPING=1, with why (borrowed) as STATUS=. */
void sdnotify_stopping(const char *why);
/* Closes the watchdog timer (the loop then finishes closing it). */
/* SIGHUP: the configuration is being applied (READY=1 follows when it runs). */
void sdnotify_reloading(void);
void sdnotify_close(struct sdnotify *n);

#endif

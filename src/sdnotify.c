/*
 * sdnotify: see sdnotify.h.
 */
#include "sdnotify.h"

#include <stdio.h>

#include "log.h"

#if HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

/* Sends one notification; an error (a socket that went away) is logged at
 * debug level only: the service manager judges us by what it receives. */
static void notify(const char *state)
{
#if HAVE_SYSTEMD
    int rc = sd_notify(0, state);
    if (rc < 0) {
        log_debug("engine", "sd_notify failed: %d", rc);
    }
#else
    (void)state;
#endif
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    notify("WATCHDOG=1");
}

/* WATCHDOG_USEC when it is meant for this process (WATCHDOG_PID unset or
 * ours), else 0. */
static uint64_t watchdog_usec(void)
{
    uint64_t usec = 0;
#if HAVE_SYSTEMD
    if (sd_watchdog_enabled(0, &usec) <= 0) {
        usec = 0;
    }
#endif
    return usec;
}

void sdnotify_start(struct sdnotify *n, uv_loop_t *loop)
{
    n->watching = false;
    uint64_t usec = watchdog_usec();
    if (usec == 0) {
        return;
    }
    /* Half the timeout, as sd_watchdog_enabled(3) advises: one late tick of
     * a busy loop is not a missed ping. */
    n->interval_ms = usec / 2000 > 0 ? usec / 2000 : 1;
    uv_timer_init(loop, &n->watchdog);
    n->watching = true;
    notify("WATCHDOG=1");
    uv_timer_start(&n->watchdog, on_watchdog, n->interval_ms, n->interval_ms);
    log_debug("engine", "systemd watchdog: a ping every %llu ms",
              (unsigned long long)n->interval_ms);
}

void sdnotify_ready(const char *status)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
    notify(msg);
}

void sdnotify_stopping(const char *why)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=stopping (%s)", why);
    notify(msg);
}

void sdnotify_reloading(void)
{
    notify("RELOADING=1\nSTATUS=reloading the configuration");
}

void sdnotify_close(struct sdnotify *n)
{
    if (n->watching && !uv_is_closing((uv_handle_t *)&n->watchdog)) {
        uv_close((uv_handle_t *)&n->watchdog, NULL);
    }
}

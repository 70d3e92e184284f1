/*
 * progress: the lines that tell an operator how long work is going, at most
 * one every PROGRESS_INTERVAL_MS per trigger (see poll_int.h).
 *
 * A baseline of a large location, a reconcile, or the first full round of a
 * for_each trigger can take tens of minutes; without these lines the log is
 * silent from the start to the end of it. Each hook is one call per page
 * (or per parent record read); this file decides whether the work is long
 * work, when a new piece of it began (its start stamp changed), and whether
 * a line is due. Nothing here is persisted or affects what is polled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "poll_int.h"
#include "util.h"

#define PROGRESS_INTERVAL_MS 10000u

/* POLLEN_PROGRESS_INTERVAL=MS overrides the interval (tests: 0 logs every
 * step); read once. */
static uint64_t interval_ms(void)
{
    static bool read;
    static uint64_t ms = PROGRESS_INTERVAL_MS;
    if (!read) {
        read = true;
        const char *v = getenv("POLLEN_PROGRESS_INTERVAL");
        char *end = NULL;
        if (v != NULL && v[0] >= '0' && v[0] <= '9') {
            unsigned long long n = strtoull(v, &end, 10);
            if (*end == '\0') {
                ms = n;
            }
        }
    }
    return ms;
}

/*
 * Counts one step of the work that began at stamp (a value that changes
 * with each new piece of work). Returns true when a line is due now: the
 * interval has passed since the last line, or since the work began.
 */
static bool step_due(struct poller *p, uint64_t stamp)
{
    struct poller_progress *g = &p->progress;
    /* The clock now, not the loop's cached time: a long page would make
     * two lines closer than the interval. */
    uint64_t now = util_mono_ms();
    if (!g->active || g->stamp != stamp) {
        *g = (struct poller_progress){.active = true, .stamp = stamp, .since = now,
                                      .last = now, .records_from = p->stats.records};
    }
    g->steps++;
    if (now - g->last < interval_ms()) {
        return false;
    }
    g->last = now;
    return true;
}

/* A rough time left: "40s", "12 min", "3h05m" (an estimate needs no more). */
static void format_left(uint64_t ms, char *out, size_t len)
{
    unsigned long long s = (ms + 999) / 1000;
    if (s < 60) {
        snprintf(out, len, "%llus", s > 0 ? s : 1);
    } else if (s < 3600) {
        snprintf(out, len, "%llu min", (s + 59) / 60);
    } else {
        snprintf(out, len, "%lluh%02llum", s / 3600, s % 3600 / 60);
    }
}

/* " (R UNIT/s; about T left of ~N)": the rate of done in elapsed ms, and the
 * time left when total (> done) is known. */
static void describe_rate(uint64_t elapsed, uint64_t done, double total, const char *unit,
                          char *out, size_t len)
{
    double rate = (double)done * 1000.0 / (double)(elapsed > 0 ? elapsed : 1);
    int n = snprintf(out, len, " (%.1f %s/s", rate, unit);
    if (n > 0 && (size_t)n < len && total > (double)done && rate > 0) {
        char left[32];
        format_left((uint64_t)(((total - (double)done) / rate) * 1000.0), left, sizeof(left));
        snprintf(out + n, len - (size_t)n, "; about %s left of ~%.0f)", left, total);
    } else if (n > 0 && (size_t)n < len) {
        snprintf(out + n, len - (size_t)n, ")");
    }
}

void poller__progress_cycle(struct poller *p)
{
    bool reconcile = p->seeded && p->incr && !p->incr_cycle;
    if ((p->seeded && !reconcile) || !step_due(p, p->cycle_started)) {
        return;
    }
    /* From the cycle's own start (the loop's clock): its first page counts too. */
    uint64_t now = uv_now(p->env.loop);
    uint64_t elapsed = now > p->cycle_started ? now - p->cycle_started : 0;
    char rate[96];
    describe_rate(elapsed, p->records_seen, p->max_total, "records", rate, sizeof(rate));
    log_info(p->tag, "%s in progress: %llu records, %u pages, %llu requests in %llus%s",
             reconcile ? "reconcile" : "baseline", (unsigned long long)p->records_seen,
             p->page + 1, (unsigned long long)(p->stats.requests - p->requests_from),
             (unsigned long long)(elapsed / 1000), rate);
}

void poller__progress_round(struct poller *p, bool wide)
{
    /* Later rounds are paced in the sweeps' share by design: only the first,
     * which a new for_each trigger waits for, is long work to report. */
    if (!p->round_active || p->cycle != 0 || !step_due(p, p->round_started)) {
        return;
    }
    const struct poller_progress *g = &p->progress;
    uint64_t records = p->stats.records - g->records_from;
    uint64_t now = util_mono_ms();
    uint64_t elapsed = now > g->since ? now - g->since : 0;
    char rate[96];
    if (wide) {
        describe_rate(elapsed, records, -1, p->def->records, rate, sizeof(rate));
        log_info(p->tag, "first full round in progress: %llu %s in %llu pages, %llu requests "
                         "in %llus%s",
                 (unsigned long long)records, p->def->records, (unsigned long long)g->steps,
                 (unsigned long long)(p->stats.requests - p->requests_from),
                 (unsigned long long)(elapsed / 1000), rate);
        return;
    }
    /* The parent's last count of its records, when its API gave one. */
    double total = p->parent->listed_total > 0 ? (double)p->parent->listed_total : -1;
    describe_rate(elapsed, g->steps, total, "reads", rate, sizeof(rate));
    log_info(p->tag, "first sweep round in progress: %llu records of %s read (%llu %s), %llu "
                     "requests in %llus%s",
             (unsigned long long)g->steps, p->parent->tc->name, (unsigned long long)records,
             p->def->records, (unsigned long long)(p->stats.requests - p->requests_from),
             (unsigned long long)(elapsed / 1000), rate);
}

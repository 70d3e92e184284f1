/*
 * test_reconcile: reconcile pacing on a virtual clock. One location (the
 * rate limiter's class choice as location.c's pump makes it, six requests
 * in flight), trigger A reconciling 300 pages one after another (30 ms on
 * the wire: fast enough to fill the window alone), and triggers B and C
 * polling one page every 2 s. A's pages take the class
 * poller__reconcile_pace gives them, as cycle.c's fetch_page does.
 *
 * It shows: without pacing (every page in the poll class, as before) B and
 * C wait seconds behind the reconcile; with it they never wait, A stays
 * within the sweeps' window share and ends in bounded time; and once the
 * sweeps' daily share is spent A goes on in the poll class at one page a
 * second, still without delaying B or C, and ends.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "poll_int.h"
#include "ratelimit.h"
#include "testlib.h"

#define LATENCY_MS 30u
#define IN_FLIGHT 6u          /* location.c's LOCATION_MAX_IN_FLIGHT */
#define PAGES 300u
#define POLL_EVERY_MS 2000u
#define NPOLLERS 2            /* B and C */
#define SIM_MS (20ULL * 60 * 1000)
#define MAX_STARTS 4096
#define NEVER UINT64_MAX
#define OWNER_A (-1)

struct req {
    uint64_t submitted;
    int owner;                /* OWNER_A, or a poller index */
};

struct queue {
    struct req v[16];
    size_t len;
};

struct sim {
    struct ratelimit *rl;
    bool paced;               /* false: every page in the poll class (before pacing) */
    uint64_t now;
    struct queue q[2];        /* [LOCATION_POLL], [LOCATION_SWEEP] */
    uint64_t done_at[IN_FLIGHT];
    int done_owner[IN_FLIGHT];
    unsigned in_flight;
    uint64_t pump_at;
    /* A */
    unsigned page;            /* the page A asks for next */
    uint64_t a_wake;          /* when A asks for it (NEVER: waiting for an answer, or done) */
    uint64_t slow_next;       /* poller__reconcile_pace's state */
    uint64_t a_done;          /* when A's last page answered (0: not yet) */
    uint64_t a_poll[MAX_STARTS];  /* A's poll-class starts after its first page */
    size_t na_poll;
    uint64_t a_sweep[MAX_STARTS];
    size_t na_sweep;
    /* B and C */
    uint64_t next_poll[NPOLLERS];
    bool polling[NPOLLERS];
    unsigned polls;
    uint64_t worst_wait;
};

static void push(struct queue *q, struct req r)
{
    if (q->len < 16) {
        q->v[q->len++] = r;
    }
}

static struct req pop(struct queue *q)
{
    struct req r = q->v[0];
    memmove(q->v, q->v + 1, (q->len - 1) * sizeof(q->v[0]));
    q->len--;
    return r;
}

static void start(struct sim *s, struct req r, enum ratelimit_class cls)
{
    unsigned slot = 0;
    while (s->done_at[slot] != NEVER) {
        slot++;
    }
    s->done_at[slot] = s->now + LATENCY_MS;
    s->done_owner[slot] = r.owner;
    s->in_flight++;
    if (r.owner != OWNER_A) {
        uint64_t waited = s->now - r.submitted;
        s->worst_wait = waited > s->worst_wait ? waited : s->worst_wait;
        s->polls++;
    } else if (cls == RATELIMIT_CAPPED) {
        s->a_sweep[s->na_sweep++] = s->now;
    } else if (s->page > 1) {
        s->a_poll[s->na_poll++] = s->now;
    }
}

/* location.c's pump_cb. */
static void pump(struct sim *s)
{
    s->pump_at = NEVER;
    while (s->in_flight < IN_FLIGHT && (s->q[0].len > 0 || s->q[1].len > 0)) {
        enum ratelimit_class cls = RATELIMIT_PRIORITY;
        uint64_t w = ratelimit_next(s->rl, s->now, s->q[0].len > 0, s->q[1].len > 0, &cls);
        if (w > 0) {
            s->pump_at = s->now + w;
            return;
        }
        start(s, pop(&s->q[cls == RATELIMIT_CAPPED ? 1 : 0]), cls);
    }
}

/* cycle.c's fetch_page for A. */
static void a_fetch(struct sim *s)
{
    s->a_wake = NEVER;
    enum target_class cls = LOCATION_POLL;
    bool paced = s->paced && s->page > 0;
    uint64_t wait = paced ? ratelimit_capped_wait(s->rl, s->now) : 0;
    uint64_t delay = poller__reconcile_pace(paced, wait, s->now, &s->slow_next, &cls);
    if (delay > 0) {
        s->a_wake = s->now + delay;
        return;
    }
    s->page++;
    push(&s->q[cls], (struct req){.submitted = s->now, .owner = OWNER_A});
}

static void complete(struct sim *s, unsigned slot)
{
    int owner = s->done_owner[slot];
    s->done_at[slot] = NEVER;
    s->in_flight--;
    if (owner != OWNER_A) {
        s->polling[owner] = false;
    } else if (s->page < PAGES) {
        s->a_wake = s->now;
    } else {
        s->a_done = s->now;
    }
}

static uint64_t next_event(const struct sim *s)
{
    uint64_t t = s->a_wake < s->pump_at ? s->a_wake : s->pump_at;
    for (unsigned i = 0; i < IN_FLIGHT; i++) {
        t = s->done_at[i] < t ? s->done_at[i] : t;
    }
    for (int k = 0; k < NPOLLERS; k++) {
        t = s->next_poll[k] < t ? s->next_poll[k] : t;
    }
    return t;
}

static void step(struct sim *s)
{
    for (unsigned i = 0; i < IN_FLIGHT; i++) {
        if (s->done_at[i] <= s->now) {
            complete(s, i);
        }
    }
    for (int k = 0; k < NPOLLERS; k++) {
        if (s->next_poll[k] <= s->now) {
            s->next_poll[k] += POLL_EVERY_MS;
            if (!s->polling[k]) {
                s->polling[k] = true;
                push(&s->q[LOCATION_POLL], (struct req){.submitted = s->now, .owner = k});
            }
        }
    }
    if (s->a_wake <= s->now) {
        a_fetch(s);
    }
    pump(s);
}

/* Runs the simulation with the sweeps' daily share set to daily_share. */
static void run(struct sim *s, bool paced, double daily_share)
{
    memset(s, 0, sizeof(*s));
    s->rl = ratelimit_create(90, 10000, 200000);
    ratelimit_set_capped(s->rl, 0.5, daily_share);
    s->paced = paced;
    for (unsigned i = 0; i < IN_FLIGHT; i++) {
        s->done_at[i] = NEVER;
    }
    s->pump_at = NEVER;
    s->a_wake = 1000;
    for (int k = 0; k < NPOLLERS; k++) {
        s->next_poll[k] = 1500 + (uint64_t)k * 700;
    }
    s->now = 1;
    while (s->now < SIM_MS) {
        step(s);
        uint64_t t = next_event(s);
        s->now = t > s->now ? t : s->now + 1;
    }
    fprintf(stderr, "%s, sweeps' daily share %.5f: reconcile of %u pages ends at %.1f s (%zu "
                    "swept, %zu in the poll class); %u polls of the others, worst wait %llu ms\n",
            paced ? "paced" : "not paced", daily_share, PAGES, (double)s->a_done / 1000.0,
            s->na_sweep, s->na_poll, s->polls, (unsigned long long)s->worst_wait);
    ratelimit_destroy(s->rl);
}

static void test_unpaced_reconcile_delays_other_polls(void)
{
    static struct sim s;
    run(&s, false, 0.25);
    CHECK(s.a_done > 0);
    CHECK(s.worst_wait > 1000); /* what pacing is for: the window was A's */
}

static void test_paced_reconcile_never_delays_other_polls(void)
{
    static struct sim s;
    run(&s, true, 0.25);
    CHECK_INT(s.worst_wait, 0);
    CHECK(s.polls >= (SIM_MS / POLL_EVERY_MS) * NPOLLERS - NPOLLERS);
    CHECK_INT(s.na_sweep, PAGES - 1); /* all but the first page */
    CHECK_INT(s.na_poll, 0);
    CHECK(max_in_any_window(s.a_sweep, s.na_sweep, 10000) <= 45);
    /* Bounded: its window share, 45 pages per 10 s, plus one window. */
    CHECK(s.a_done > 0);
    CHECK(s.a_done <= 1000 + (PAGES / 45 + 1) * 10000 + 10000);
}

static void test_spent_daily_share_falls_back_slowly(void)
{
    static struct sim s;
    run(&s, true, 0.00025); /* 50 sweep requests a day */
    CHECK_INT(s.worst_wait, 0);
    CHECK_INT(s.na_sweep, 50);
    CHECK_INT(s.na_poll, PAGES - 1 - 50);
    /* One page a second in the poll class: at most 10 in any window... */
    CHECK(max_in_any_window(s.a_poll, s.na_poll, 10000) <= (int)(10000 / POLLER_RECONCILE_SLOW_MS));
    /* ...and it ends. */
    CHECK(s.a_done > 0);
    CHECK(s.a_done <= 1000 + 20000 + (PAGES - 50) * (POLLER_RECONCILE_SLOW_MS + LATENCY_MS));
}

/* The rule itself. */
static void test_pace_rule(void)
{
    enum target_class cls = LOCATION_SWEEP;
    uint64_t slow = 0;
    CHECK_INT(poller__reconcile_pace(false, 999999, 5, &slow, &cls), 0);
    CHECK_INT(cls, LOCATION_POLL);
    CHECK_INT(poller__reconcile_pace(true, POLLER_RECONCILE_HOLD_MS, 5, &slow, &cls), 0);
    CHECK_INT(cls, LOCATION_SWEEP);
    CHECK_INT(slow, 0);
    cls = LOCATION_SWEEP;
    CHECK_INT(poller__reconcile_pace(true, POLLER_RECONCILE_HOLD_MS + 1, 5, &slow, &cls), 0);
    CHECK_INT(cls, LOCATION_POLL);
    CHECK_INT(slow, 5 + POLLER_RECONCILE_SLOW_MS);
    cls = LOCATION_SWEEP;
    CHECK_INT(poller__reconcile_pace(true, 3600000, 105, &slow, &cls), POLLER_RECONCILE_SLOW_MS - 100);
    CHECK_INT(cls, LOCATION_SWEEP); /* untouched while it waits */
    CHECK_INT(poller__reconcile_pace(true, 3600000, 5 + POLLER_RECONCILE_SLOW_MS, &slow, &cls), 0);
    CHECK_INT(cls, LOCATION_POLL);
}

int main(void)
{
    test_pace_rule();
    test_unpaced_reconcile_delays_other_polls();
    test_paced_reconcile_never_delays_other_polls();
    test_spent_daily_share_falls_back_slowly();
    return test_done("reconcile");
}

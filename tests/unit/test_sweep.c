/*
 * test_sweep: a simulated day (30 h) of one location on a virtual clock,
 * driving the scheduling logic the engine uses: the rate limiter's class
 * choice (ratelimit_next, as location.c's pump calls it, with its six
 * requests in flight), a for_each child that reads changed parents first
 * (poll class), holds its swept reads while the location would hold them
 * long (sweep.c's SWEEP_HOLD_MS), and starts a full round `reconcile` after
 * the last one ended (poller__sweep_round_wait, as sweep.c's round_due).
 *
 * The load: four top-level triggers polling 10 pages every 30 s (heavy:
 * ~115,000 requests a day), one changed parent every 10 s, 20,000 parents to
 * sweep with reconcile = 4 h, every request 200 ms on the wire.
 *
 * It shows: no poll request ever waits (sweeps never block polls); the sweep
 * uses its whole burst share (45 per 10 s) while the polls run; its requests
 * in any 24 h stay within its daily share (25% of 200,000); full rounds start
 * no sooner than `reconcile` after the previous one ended; changed parents
 * are read within HOLD_MS + one request even while the sweep's daily share is spent.
 *
 * Also: the fan-out queue entries the parent writes (poller__sweep_notify)
 * carry a generation bumped on each queueing, read from an older one-byte
 * entry as generation 0, and keep a creation a creation until it is read.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "poll_int.h"
#include "ratelimit.h"
#include "store.h"
#include "sweep.h"
#include "testlib.h"
#include "util.h"

#define SIM_MS (30ULL * 3600 * 1000)
#define LATENCY_MS 200u
#define IN_FLIGHT 6u             /* location.c's LOCATION_MAX_IN_FLIGHT */
#define HOLD_MS 1000u            /* sweep.c's SWEEP_HOLD_MS */
#define NTRIG 4
#define PAGES 10u
#define POLL_EVERY_MS 30000u
#define CHANGE_EVERY_MS 10000u
#define PARENTS 20000u
#define RECONCILE_MS (4ULL * 3600 * 1000)
#define MAX_ROUNDS 16
#define MAX_STARTS 400000
#define NEVER UINT64_MAX

enum owner { OWNER_CHILD = NTRIG };

struct req {
    uint64_t submitted;
    int owner;                   /* a trigger index, or OWNER_CHILD */
};

struct sim {
    struct ratelimit *rl;
    uint64_t now;
    /* the location */
    struct req pollq[64];
    size_t pollq_len;
    struct req sweepq;
    bool sweep_queued;
    uint64_t done_at[IN_FLIGHT];
    int done_owner[IN_FLIGHT];
    bool done_swept[IN_FLIGHT];
    unsigned in_flight;
    uint64_t pump_at;
    /* the top-level triggers */
    uint64_t next_cycle[NTRIG];
    unsigned pages_left[NTRIG];
    /* the child */
    bool child_busy;
    uint64_t child_wake;
    uint64_t next_change;
    uint64_t changed[64];        /* arrival times of queued parents */
    size_t nchanged;
    bool round_active;
    unsigned remaining;
    uint64_t round_end;          /* 0: no round ended yet */
    /* what happened */
    uint64_t round_starts[MAX_ROUNDS];
    uint64_t round_ends[MAX_ROUNDS];
    size_t nstarts;
    size_t nends;
    uint64_t poll_starts[MAX_STARTS];
    size_t npoll;
    uint64_t sweep_starts[MAX_STARTS];
    size_t nsweep;
    uint64_t worst_poll_wait;
    uint64_t worst_change_wait;
    uint64_t changes_read;
};

static void submit_poll(struct sim *s, int owner)
{
    if (s->pollq_len < 64) {
        s->pollq[s->pollq_len++] = (struct req){.submitted = s->now, .owner = owner};
    }
}

static void start(struct sim *s, const struct req *r, bool swept)
{
    unsigned slot = 0;
    while (s->done_at[slot] != NEVER) {
        slot++;
    }
    s->done_at[slot] = s->now + LATENCY_MS;
    s->done_owner[slot] = r->owner;
    s->done_swept[slot] = swept;
    s->in_flight++;
    if (swept) {
        s->sweep_starts[s->nsweep++] = s->now;
        return;
    }
    s->poll_starts[s->npoll++] = s->now;
    uint64_t waited = s->now - r->submitted;
    if (waited > s->worst_poll_wait) {
        s->worst_poll_wait = waited;
    }
}

/* location.c's pump_cb. */
static void pump(struct sim *s)
{
    s->pump_at = NEVER;
    while (s->in_flight < IN_FLIGHT && (s->pollq_len > 0 || s->sweep_queued)) {
        enum ratelimit_class cls;
        uint64_t w = ratelimit_next(s->rl, s->now, s->pollq_len > 0, s->sweep_queued, &cls);
        if (w > 0) {
            s->pump_at = s->now + w;
            return;
        }
        if (cls == RATELIMIT_CAPPED) {
            s->sweep_queued = false;
            start(s, &s->sweepq, true);
        } else {
            struct req r = s->pollq[0];
            for (size_t i = 1; i < s->pollq_len; i++) {
                s->pollq[i - 1] = s->pollq[i];
            }
            s->pollq_len--;
            start(s, &r, false);
        }
    }
}

/* sweep.c's sweep_next: changed parents first, then the round, then wait for the next. */
static void child_tick(struct sim *s)
{
    s->child_wake = NEVER;
    if (s->nchanged > 0) {
        uint64_t waited = s->now - s->changed[0];
        if (waited > s->worst_change_wait) {
            s->worst_change_wait = waited;
        }
        for (size_t i = 1; i < s->nchanged; i++) {
            s->changed[i - 1] = s->changed[i];
        }
        s->nchanged--;
        s->changes_read++;
        s->child_busy = true;
        submit_poll(s, OWNER_CHILD);
        return;
    }
    if (s->round_active && s->remaining > 0) {
        uint64_t hold = ratelimit_capped_wait(s->rl, s->now);
        if (hold > HOLD_MS) {
            s->child_wake = s->now + hold;
            return;
        }
        s->child_busy = true;
        s->sweepq = (struct req){.submitted = s->now, .owner = OWNER_CHILD};
        s->sweep_queued = true;
        return;
    }
    if (s->round_active) {
        s->round_active = false;
        s->round_end = s->now;
        s->round_ends[s->nends++] = s->now;
    }
    uint64_t wait = s->round_end == 0 ? 0
                                      : poller__sweep_round_wait(s->round_end, s->now, RECONCILE_MS);
    if (wait > 0) {
        s->child_wake = s->now + wait;
        return;
    }
    if (s->nstarts < MAX_ROUNDS) {
        s->round_starts[s->nstarts++] = s->now;
    }
    s->round_active = true;
    s->remaining = PARENTS;
    s->child_wake = s->now;
}

static void complete(struct sim *s, unsigned slot)
{
    int owner = s->done_owner[slot];
    bool swept = s->done_swept[slot];
    s->done_at[slot] = NEVER;
    s->in_flight--;
    if (owner == OWNER_CHILD) {
        s->child_busy = false;
        s->child_wake = s->now;
        if (swept) {
            s->remaining--;
        }
    } else if (s->pages_left[owner] > 0) {
        s->pages_left[owner]--;
        if (s->pages_left[owner] > 0) {
            submit_poll(s, owner);
        }
    }
}

static uint64_t next_event(const struct sim *s)
{
    uint64_t t = s->next_change;
    for (unsigned i = 0; i < IN_FLIGHT; i++) {
        t = s->done_at[i] < t ? s->done_at[i] : t;
    }
    for (int k = 0; k < NTRIG; k++) {
        t = s->next_cycle[k] < t ? s->next_cycle[k] : t;
    }
    if (!s->child_busy && s->child_wake < t) {
        t = s->child_wake;
    }
    return s->pump_at < t ? s->pump_at : t;
}

static void step(struct sim *s)
{
    for (unsigned i = 0; i < IN_FLIGHT; i++) {
        if (s->done_at[i] <= s->now) {
            complete(s, i);
        }
    }
    for (int k = 0; k < NTRIG; k++) {
        if (s->next_cycle[k] <= s->now) {
            s->next_cycle[k] += POLL_EVERY_MS;
            if (s->pages_left[k] == 0) { /* an overrunning cycle is never started twice */
                s->pages_left[k] = PAGES;
                submit_poll(s, k);
            }
        }
    }
    if (s->next_change <= s->now) {
        s->next_change += CHANGE_EVERY_MS;
        if (s->nchanged < 64) {
            s->changed[s->nchanged++] = s->now;
        }
        s->child_wake = s->now; /* the parent's kick */
    }
    if (!s->child_busy && s->child_wake <= s->now) {
        child_tick(s);
    }
    pump(s);
}

static void test_simulated_day(void)
{
    static struct sim s;
    s.rl = ratelimit_create(90, 10000, 200000);
    ratelimit_set_capped(s.rl, 0.5, 0.25);
    for (unsigned i = 0; i < IN_FLIGHT; i++) {
        s.done_at[i] = NEVER;
    }
    for (int k = 0; k < NTRIG; k++) {
        s.next_cycle[k] = 1000 + (uint64_t)k * 7000;
    }
    s.next_change = 5000;
    s.child_wake = 0;
    s.pump_at = NEVER;
    s.now = 1; /* the round's end is a wall time; 0 means "none" there */
    while (s.now < SIM_MS) {
        step(&s);
        uint64_t t = next_event(&s);
        s.now = t > s.now ? t : s.now + 1;
    }

    fprintf(stderr,
            "simulated %llu h: %zu poll requests (%llu of them changed parents), %zu sweep "
            "requests, %zu rounds started, %zu complete; worst poll wait %llu ms, worst "
            "changed-parent wait %llu ms\n",
            (unsigned long long)(SIM_MS / 3600000), s.npoll,
            (unsigned long long)s.changes_read, s.nsweep, s.nstarts, s.nends,
            (unsigned long long)s.worst_poll_wait, (unsigned long long)s.worst_change_wait);
    for (size_t i = 0; i < s.nstarts; i++) {
        fprintf(stderr, "  round %zu: starts at %.2f h, ends at %.2f h\n", i + 1,
                (double)s.round_starts[i] / 3600000.0,
                i < s.nends ? (double)s.round_ends[i] / 3600000.0 : -1.0);
    }

    int day = max_in_any_window(s.sweep_starts, s.nsweep, RATELIMIT_DAY_MS);
    fprintf(stderr, "  sweep requests in the busiest 24 h: %d (their share: 50000)\n", day);
    /* Polls never wait for sweeps (nor for anything: their demand fits). */
    CHECK_INT(s.worst_poll_wait, 0);
    CHECK(s.npoll > 115000);
    /* The sweep gets its whole burst share while the polls run... */
    CHECK_INT(max_in_any_window(s.sweep_starts, s.nsweep, 10000), 45);
    CHECK(s.nends >= 1);
    CHECK(s.round_ends[0] - s.round_starts[0] < (uint64_t)PARENTS * 10000 / 45 * 11 / 10);
    /* ...but never more than its daily share, which it reaches. */
    CHECK(day <= 50000);
    CHECK(day >= 49000);
    /* The whole location stays within its limits. */
    static uint64_t all[2 * MAX_STARTS];
    size_t n = 0;
    size_t i = 0;
    size_t j = 0;
    while (i < s.npoll || j < s.nsweep) {
        bool take_poll = j >= s.nsweep || (i < s.npoll && s.poll_starts[i] <= s.sweep_starts[j]);
        all[n++] = take_poll ? s.poll_starts[i++] : s.sweep_starts[j++];
    }
    CHECK(max_in_any_window(all, n, 10000) <= 90);
    CHECK(max_in_any_window(all, n, RATELIMIT_DAY_MS) <= 200000);
    /* Full rounds: never sooner than `reconcile` after the last one ended. */
    CHECK(s.nstarts >= 3);
    for (size_t r = 1; r < s.nstarts; r++) {
        CHECK(s.round_starts[r] >= s.round_ends[r - 1] + RECONCILE_MS);
        CHECK(s.round_starts[r] <= s.round_ends[r - 1] + RECONCILE_MS + 1000);
    }
    /* Changed parents are read promptly, also once the sweep's share is spent. */
    CHECK(s.changes_read >= SIM_MS / CHANGE_EVERY_MS - 2);
    CHECK(s.worst_change_wait <= HOLD_MS + LATENCY_MS);
    ratelimit_destroy(s.rl);
}

/* poller__sweep_round_wait: from the last round's end, on the wall clock. */
static void test_round_wait(void)
{
    CHECK_INT(poller__sweep_round_wait(0, 5000, 1000), 0);          /* never ran */
    CHECK_INT(poller__sweep_round_wait(1000, 1500, 1000), 500);
    CHECK_INT(poller__sweep_round_wait(1000, 2000, 1000), 0);
    CHECK_INT(poller__sweep_round_wait(9000, 5000, 1000), 1000);     /* clock stepped back */
}

/* ---- the fan-out queue's entries --------------------------------------- */

#define QKEY "tasks\x1fp1" /* the child's state key, the parent record's id */

static int put_old_entry(struct store_txn *txn, void *ud)
{
    (void)ud;
    char kind = 'C'; /* written before generations: the kind byte alone */
    return store_put(txn, STORE_QUEUE, QKEY, strlen(QKEY), &kind, 1);
}

static enum snapshot_change notify_change;

static int notify(struct store_txn *txn, void *ud)
{
    return poller__sweep_notify(txn, "p1", notify_change, ud);
}

/* The entry is (kind, gen): 9 bytes, the generation little endian. */
static void check_entry(struct store *s, char kind, uint64_t gen)
{
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    const void *val = NULL;
    size_t vlen = 0;
    CHECK_INT(store_get(txn, STORE_QUEUE, QKEY, strlen(QKEY), &val, &vlen), 0);
    CHECK_INT(vlen, 9);
    if (vlen == 9) {
        const unsigned char *b = val;
        uint64_t got = 0;
        for (int i = 7; i >= 0; i--) {
            got = got << 8 | b[1 + i];
        }
        CHECK_INT(b[0], (unsigned char)kind);
        CHECK_INT(got, gen);
    }
    store_txn_abort(txn);
}

static void test_queue_generations(void)
{
    char *dir = test_tmp_path("test_sweep", "queue");
    test_rm_store(dir);
    struct store_options o = {.map_size = 1u << 20, .max_size = 16ULL << 20};
    struct store *s = NULL;
    CHECK_INT(store_open(dir, &o, &s), 0);
    if (s == NULL) {
        exit(1);
    }
    struct poller child = {.state_key = "tasks"};
    struct poller *children[] = {&child};
    struct poller parent = {.children = children, .nchildren = 1};
    CHECK_INT(store_write(s, put_old_entry, NULL), 0);
    notify_change = SNAPSHOT_UPDATED;
    CHECK_INT(store_write(s, notify, &parent), 0);
    check_entry(s, 'C', 1); /* generation 0 + 1; still a creation */
    CHECK_INT(store_write(s, notify, &parent), 0);
    check_entry(s, 'C', 2);
    notify_change = SNAPSHOT_DELETED;
    CHECK_INT(store_write(s, notify, &parent), 0);
    check_entry(s, 'D', 3);
    store_close(s);
    test_rm_store(dir);
    free(dir);
}

int main(void)
{
    test_round_wait();
    test_queue_generations();
    test_simulated_day();
    return test_done("sweep");
}

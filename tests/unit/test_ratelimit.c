/*
 * test_ratelimit: the limiter over virtual time.
 *
 * Simulations drive greedy clients (each retries exactly when told) and then
 * check every window of the grant history, not just aligned ones. Exactness
 * of waits is checked by asking again one ms early (refused) and on time
 * (granted).
 */
#include <stdint.h>
#include <stdlib.h>

#include "ratelimit.h"
#include "testlib.h"
#include "util.h"

#define MAX_GRANTS 20000

/* ---- greedy single-class simulation: windows, throughput, exact waits ---- */

struct sim_case {
    const char *name;
    unsigned max;
    uint64_t window;
    double share;
    uint64_t duration;     /* simulate [0, duration) */
    unsigned want_limit;   /* the effective per-window limit for this share */
    size_t want_grants;    /* total grants expected from a greedy client */
};

static void test_greedy(void)
{
    static const struct sim_case cases[] = {
        {"default 90/10s", 0, 0, 1.0, 100000, 90, 900},
        {"3/1s", 3, 1000, 1.0, 10000, 3, 30},
        {"half of 90", 90, 10000, 0.5, 100000, 45, 450},
        {"third of 90 rounds up", 90, 10000, 0.33, 50000, 30, 150},
        {"tiny share gets 1", 90, 10000, 0.001, 30000, 1, 3},
        {"share > 1 clamps", 10, 1000, 7.0, 5000, 10, 50},
        {"1/250ms", 1, 250, 1.0, 1000, 1, 4},
    };
    static uint64_t grants[MAX_GRANTS];
    for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
        const struct sim_case *sc = &cases[c];
        struct ratelimit *rl = ratelimit_create(sc->max, sc->window, 0);
        CHECK(rl != NULL);
        uint64_t window = sc->window ? sc->window : RATELIMIT_DEFAULT_WINDOW_MS;
        size_t n = 0;
        int inexact = 0;
        uint64_t now = 0;
        /* A greedy client with a little think time jitter: 0..3 ms after a grant. */
        while (now < sc->duration && n < MAX_GRANTS) {
            uint64_t wait = ratelimit_acquire(rl, now, sc->share);
            if (wait == 0) {
                grants[n++] = now;
                now += n % 4;
                continue;
            }
            /* One ms early must still be refused, with exactly 1 ms to go. */
            if (wait > 1 && ratelimit_acquire(rl, now + wait - 1, sc->share) != 1) {
                inexact++;
            }
            now += wait;
        }
        int worst = max_in_any_window(grants, n, window);
        if (worst != (int)sc->want_limit || n != sc->want_grants || inexact != 0) {
            fprintf(stderr, "case %s: worst window %d (want %u), grants %zu (want %zu)",
                    sc->name, worst, sc->want_limit, n, sc->want_grants);
            fprintf(stderr, ", inexact %d\n", inexact);
        }
        CHECK_INT(worst, sc->want_limit);
        CHECK_INT(n, sc->want_grants);
        CHECK_INT(inexact, 0);
        ratelimit_destroy(rl);
    }
}

/* ---- several classes sharing one budget ---- */

static void test_shares(void)
{
    struct class_def {
        double share;
        uint64_t think;    /* ms between a grant and the next attempt */
    };
    static const struct {
        const char *name;
        unsigned max;
        uint64_t window;
        struct class_def cls[3];
        size_t ncls;
        unsigned want_class_max[3];   /* bound on each class's starts in any window */
    } cases[] = {
        {"half + full", 90, 10000, {{0.5, 0}, {1.0, 0}}, 2, {45, 90}},
        {"three classes", 90, 10000, {{0.2, 7}, {0.5, 3}, {1.0, 11}}, 3, {18, 45, 90}},
        {"small window", 10, 100, {{0.3, 1}, {0.6, 2}, {1.0, 0}}, 3, {3, 6, 10}},
    };
    static uint64_t all[MAX_GRANTS];
    static uint64_t per[3][MAX_GRANTS];
    for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
        struct ratelimit *rl = ratelimit_create(cases[c].max, cases[c].window, 0);
        size_t n = 0;
        size_t pn[3] = {0, 0, 0};
        uint64_t next[3] = {0, 5, 13};
        uint64_t end = cases[c].window * 20;
        for (;;) {
            /* Run the class whose next attempt is earliest. */
            size_t k = 0;
            for (size_t i = 1; i < cases[c].ncls; i++) {
                if (next[i] < next[k]) {
                    k = i;
                }
            }
            if (next[k] >= end || n >= MAX_GRANTS) {
                break;
            }
            uint64_t wait = ratelimit_acquire(rl, next[k], cases[c].cls[k].share);
            if (wait == 0) {
                all[n++] = next[k];
                per[k][pn[k]++] = next[k];
                next[k] += cases[c].cls[k].think;
            } else {
                next[k] += wait;
            }
        }
        CHECK(max_in_any_window(all, n, cases[c].window) <= (int)cases[c].max);
        CHECK_INT(max_in_any_window(all, n, cases[c].window), cases[c].max);
        for (size_t i = 0; i < cases[c].ncls; i++) {
            int w = max_in_any_window(per[i], pn[i], cases[c].window);
            if (w > (int)cases[c].want_class_max[i]) {
                fprintf(stderr, "case %s class %zu: %d in a window, limit %u\n", cases[c].name, i,
                        w, cases[c].want_class_max[i]);
            }
            CHECK(w <= (int)cases[c].want_class_max[i]);
            CHECK(pn[i] > 0);
        }
        ratelimit_destroy(rl);
    }
}

/* ---- exact waits from a scripted history ---- */

static void test_exact_waits(void)
{
    static const struct {
        const char *name;
        unsigned max;
        uint64_t window;
        uint64_t starts[6];
        size_t nstarts;
        uint64_t at;
        double share;
        uint64_t want;
    } cases[] = {
        {"full window", 3, 1000, {0, 100, 200}, 3, 300, 1.0, 700},
        {"full window, later", 3, 1000, {0, 100, 200}, 3, 999, 1.0, 1},
        {"oldest left", 3, 1000, {0, 100, 200}, 3, 1000, 1.0, 0},
        {"second oldest matters", 3, 1000, {0, 100, 200, 1000}, 4, 1050, 1.0, 50},
        {"share limit 2 of 3", 3, 1000, {0, 100}, 2, 150, 0.6, 850},
        {"share limit uses limit-th newest", 4, 1000, {0, 100, 200}, 3, 250, 0.5, 850},
        {"room left", 5, 1000, {0, 1, 2, 3}, 4, 4, 1.0, 0},
        {"window boundary is half-open", 2, 500, {10, 20}, 2, 510, 1.0, 0},
    };
    for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
        struct ratelimit *rl = ratelimit_create(cases[c].max, cases[c].window, 0);
        for (size_t i = 0; i < cases[c].nstarts; i++) {
            CHECK_INT(ratelimit_acquire(rl, cases[c].starts[i], 1.0), 0);
        }
        uint64_t got = ratelimit_acquire(rl, cases[c].at, cases[c].share);
        if (got != cases[c].want) {
            fprintf(stderr, "case %s\n", cases[c].name);
        }
        CHECK_INT(got, cases[c].want);
        ratelimit_destroy(rl);
    }
}

/* ---- server feedback ---- */

static struct http_ratelimit_info info_none(void)
{
    struct http_ratelimit_info i = {false, -1, -1, -1, -1, -1};
    return i;
}

static void test_feedback(void)
{
    static const struct {
        const char *name;
        long status;
        long retry_after_s;
        long interval_ms;    /* -1: headers absent */
        long remaining;
        long daily_remaining;
        uint64_t want_block;  /* ms after the observation */
        uint64_t want_429;
    } cases[] = {
        {"429 with Retry-After 7", 429, 7, -1, -1, -1, 10000, 1},
        {"429 with Retry-After 30", 429, 30, -1, -1, -1, 30000, 1},
        {"429 without Retry-After", 429, 0, -1, -1, -1, 10000, 1},
        {"429, Retry-After shorter than interval", 429, 2, 5000, 3, -1, 5000, 1},
        {"429, Retry-After longer than interval", 429, 7, 5000, 3, -1, 7000, 1},
        {"429, huge Retry-After is capped at 1 h", 429, 1000000, -1, -1, -1, 3600000, 1},
        {"429, huge interval is capped at 1 h", 429, 0, 999999999999999L, 3, -1, 3600000, 1},
        {"Remaining 0, huge interval is capped at 1 h", 200, 0, 999999999999999L, 0, -1,
         3600000, 0},
        {"Remaining 0 blocks for interval", 200, 0, 3000, 0, -1, 3000, 0},
        {"Remaining 0 without interval blocks for window", 200, 0, -1, 0, -1, 10000, 0},
        {"Remaining 5 does not block", 200, 0, 3000, 5, -1, 0, 0},
        {"daily exhausted", 200, 0, 10000, 50, 0, RATELIMIT_DAILY_EXHAUSTED_MS, 0},
        {"500 does not block", 500, 9, -1, -1, -1, 0, 0},
    };
    for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
        struct ratelimit *rl = ratelimit_create(90, 10000, 0);
        struct http_ratelimit_info info = info_none();
        if (cases[c].interval_ms >= 0 || cases[c].remaining >= 0 || cases[c].daily_remaining >= 0) {
            info.present = true;
            info.interval_ms = cases[c].interval_ms;
            info.remaining = cases[c].remaining;
            info.daily_remaining = cases[c].daily_remaining;
        }
        uint64_t t0 = 123456;
        CHECK_INT(ratelimit_acquire(rl, t0 - 10, 1.0), 0);
        ratelimit_observe(rl, t0, cases[c].status, &info, cases[c].retry_after_s);
        uint64_t block = cases[c].want_block;
        if (block > 0) {
            /* Refused for the whole block with the exact remaining time ... */
            CHECK_INT(ratelimit_acquire(rl, t0, 1.0), block);
            CHECK_INT(ratelimit_acquire(rl, t0 + block / 2, 1.0), block - block / 2);
            CHECK_INT(ratelimit_acquire(rl, t0 + block - 1, 1.0), 1);
        }
        /* ... and granted the moment it ends. */
        uint64_t got = ratelimit_acquire(rl, t0 + block, 1.0);
        if (got != 0) {
            fprintf(stderr, "case %s: still refused %llu ms\n", cases[c].name,
                    (unsigned long long)got);
        }
        CHECK_INT(got, 0);
        struct ratelimit_stats st;
        ratelimit_stats(rl, t0 + block, &st);
        CHECK_INT(st.throttled_429, cases[c].want_429);
        ratelimit_destroy(rl);
    }

    /* A shorter later block never shortens the one in force. */
    struct ratelimit *rl = ratelimit_create(90, 10000, 0);
    ratelimit_observe(rl, 1000, 429, NULL, 60);
    ratelimit_observe(rl, 2000, 429, NULL, 1);
    CHECK_INT(ratelimit_acquire(rl, 2000, 1.0), 59000);
    ratelimit_destroy(rl);
}

static void test_server_max(void)
{
    static uint64_t grants[MAX_GRANTS];
    struct ratelimit *rl = ratelimit_create(90, 10000, 0);
    struct http_ratelimit_info info = info_none();
    info.present = true;
    info.max = 50;
    info.interval_ms = 10000;
    info.remaining = 49;
    ratelimit_observe(rl, 0, 200, &info, 0);
    struct ratelimit_stats st;
    ratelimit_stats(rl, 0, &st);
    CHECK_INT(st.max, 50);

    size_t n = 0;
    uint64_t now = 0;
    while (now < 60000) {
        uint64_t w = ratelimit_acquire(rl, now, 1.0);
        if (w == 0) {
            grants[n++] = now;
        } else {
            now += w;
        }
    }
    CHECK_INT(max_in_any_window(grants, n, 10000), 50);
    CHECK_INT(n, 300);

    /* A higher server Max restores ours, never beyond the configured 90. */
    info.max = 1000;
    ratelimit_observe(rl, now, 200, &info, 0);
    ratelimit_stats(rl, now, &st);
    CHECK_INT(st.max, 90);
    /* A server daily limit lower than ours lowers ours. */
    info.limit_daily = 5000;
    ratelimit_observe(rl, now, 200, &info, 0);
    ratelimit_stats(rl, now, &st);
    CHECK_INT(st.daily_max, 5000);
    ratelimit_destroy(rl);
}

static void test_daily(void)
{
    static uint64_t grants[MAX_GRANTS];
    /* Window allows 1000/s; the day allows 100. */
    struct ratelimit *rl = ratelimit_create(1000, 1000, 100);
    size_t n = 0;
    for (int i = 0; i < 100; i++) {
        CHECK_INT(ratelimit_acquire(rl, (uint64_t)i * 10, 1.0), 0);
        grants[n++] = (uint64_t)i * 10;
    }
    /* All 100 sit in minute bucket 0, which stops counting at 1441 minutes. */
    uint64_t want = 1441ull * 60000ull - 5000;
    CHECK_INT(ratelimit_acquire(rl, 5000, 1.0), want);
    CHECK_INT(ratelimit_acquire(rl, 5000 + want - 1, 1.0), 1);
    CHECK_INT(ratelimit_acquire(rl, 5000 + want, 1.0), 0);
    grants[n++] = 5000 + want;

    /* A greedy client over three days never exceeds 100 in any day. */
    uint64_t now = 5000 + want;
    while (now < 3ull * RATELIMIT_DAY_MS && n < MAX_GRANTS) {
        uint64_t w = ratelimit_acquire(rl, now, 1.0);
        if (w == 0) {
            grants[n++] = now;
            now += 997;
        } else {
            now += w;
        }
    }
    CHECK(max_in_any_window(grants, n, RATELIMIT_DAY_MS) <= 100);
    CHECK(n >= 250);    /* the bucketing costs at most a minute per day */
    ratelimit_destroy(rl);
}

static void test_misc(void)
{
    struct ratelimit *rl = ratelimit_create(0, 0, 0);
    struct ratelimit_stats st;
    ratelimit_stats(rl, 0, &st);
    CHECK_INT(st.max, RATELIMIT_DEFAULT_MAX);
    CHECK_INT(st.daily_max, RATELIMIT_DEFAULT_DAILY_MAX);
    CHECK_INT(st.granted, 0);

    /* Time going backwards is treated as the newest time seen. */
    CHECK_INT(ratelimit_acquire(rl, 5000, 1.0), 0);
    CHECK_INT(ratelimit_acquire(rl, 4000, 1.0), 0);
    ratelimit_stats(rl, 4000, &st);
    CHECK_INT(st.in_window, 2);
    CHECK_INT(st.granted, 2);
    ratelimit_stats(rl, 14999, &st);
    CHECK_INT(st.in_window, 2);
    ratelimit_stats(rl, 15000, &st);
    CHECK_INT(st.in_window, 0);

    ratelimit_observe(rl, 6000, 429, NULL, 3);
    CHECK(ratelimit_acquire(rl, 6000, 1.0) > 0);
    ratelimit_stats(rl, 6000, &st);
    CHECK_INT(st.refused, 1);
    CHECK_INT(st.throttled_429, 1);
    CHECK_INT(st.blocked_ms, 10000);
    ratelimit_destroy(rl);

    ratelimit_destroy(NULL);
    CHECK(ratelimit_create(2000000, 1000, 1) == NULL);
}

/* ---- the capped class: its own shares, priority first when full ---- */

static void test_capped(void)
{
    static uint64_t all[MAX_GRANTS];
    static uint64_t capped[MAX_GRANTS];
    /* Priority demand of 40 per window (under max - share = 45) never waits,
     * and the capped class still gets its 45, which the old rule (the whole
     * window under the share) gave it only 5 of. */
    struct ratelimit *rl = ratelimit_create(90, 10000, 0);
    size_t n = 0;
    size_t nc = 0;
    for (uint64_t now = 0; now < 100000; now += 10) {
        bool poll_due = now % 250 == 0; /* 40 per 10 s */
        enum ratelimit_class cls;
        for (;;) {
            uint64_t w = ratelimit_next(rl, now, poll_due, true, &cls);
            if (w > 0) {
                CHECK(!poll_due); /* a poll never waits */
                poll_due = false;
                break;
            }
            all[n++] = now;
            if (cls == RATELIMIT_CAPPED) {
                capped[nc++] = now;
            } else {
                poll_due = false;
            }
        }
    }
    CHECK(max_in_any_window(all, n, 10000) <= 90);
    CHECK_INT(max_in_any_window(capped, nc, 10000), 45);
    CHECK(nc >= 440); /* 45 per window over 10 windows, less the first window's ramp */
    struct ratelimit_stats st;
    ratelimit_stats(rl, 100000, &st);
    CHECK_INT(st.capped_max, 45);
    CHECK_INT(st.capped_granted, nc);
    ratelimit_destroy(rl);

    /* A full window: the slot that frees goes to the waiting priority request,
     * even on the capped class's turn. */
    rl = ratelimit_create(10, 1000, 0);
    enum ratelimit_class cls;
    for (int i = 0; i < 10; i++) {
        CHECK_INT(ratelimit_next(rl, (uint64_t)i, true, false, &cls), 0);
    }
    CHECK_INT(ratelimit_next(rl, 10, true, true, &cls), 990);
    CHECK_INT(ratelimit_next(rl, 1000, true, true, &cls), 0);
    CHECK_INT(cls, RATELIMIT_PRIORITY);
    /* Alone, the capped class waits for its own share of the window. */
    ratelimit_destroy(rl);
    rl = ratelimit_create(10, 1000, 0);
    for (int i = 0; i < 5; i++) {
        CHECK_INT(ratelimit_next(rl, 100, false, true, &cls), 0);
        CHECK_INT(cls, RATELIMIT_CAPPED);
    }
    CHECK_INT(ratelimit_next(rl, 200, false, true, &cls), 900);
    CHECK_INT(ratelimit_capped_wait(rl, 200), 900);
    CHECK_INT(ratelimit_next(rl, 200, false, false, &cls), 0); /* nothing asked */
    ratelimit_destroy(rl);

    /* Its daily share: 25% of 100 a day, then the next start is a day later. */
    rl = ratelimit_create(1000, 1000, 100);
    for (int i = 0; i < 25; i++) {
        CHECK_INT(ratelimit_next(rl, (uint64_t)i * 10, false, true, &cls), 0);
    }
    uint64_t want = 1441ull * 60000ull - 5000;
    CHECK_INT(ratelimit_next(rl, 5000, false, true, &cls), want);
    CHECK_INT(ratelimit_next(rl, 5000, true, false, &cls), 0); /* polls still run */
    CHECK_INT(ratelimit_next(rl, 5000 + want, false, true, &cls), 0);
    ratelimit_set_capped(rl, 0.5, 0.0); /* a zero share still allows 1 a day */
    ratelimit_stats(rl, 5000 + want, &st);
    CHECK_INT(st.capped_daily_max, 1);
    CHECK_INT(st.capped_in_day, 1);
    ratelimit_destroy(rl);
}

/* ---- the daily watch: 50% and 80%, once per crossing, at most once a day ---- */

static void test_daily_watch(void)
{
    struct ratelimit *rl = ratelimit_create(1000, 1000, 1000);
    enum ratelimit_class cls;
    uint64_t now = 0;
    unsigned seen50 = 0;
    unsigned seen80 = 0;
    uint64_t at50 = 0;
    uint64_t at80 = 0;
    /* 900 requests over the first 15 h: 50% at the 500th, 80% at the 800th. */
    for (int i = 1; i <= 900; i++) {
        now = (uint64_t)i * 60000;
        CHECK_INT(ratelimit_next(rl, now, true, false, &cls), 0);
        unsigned c = ratelimit_daily_crossed(rl, now);
        if (c == 50) {
            seen50++;
            at50 = (uint64_t)i;
        } else if (c == 80) {
            seen80++;
            at80 = (uint64_t)i;
        } else {
            CHECK_INT(c, 0);
        }
    }
    CHECK_INT(seen50, 1);
    CHECK_INT(seen80, 1);
    CHECK_INT(at50, 500);
    CHECK_INT(at80, 800);
    /* Quiet until the requests leave the day: then below both thresholds... */
    now = 40ull * 3600 * 1000;
    CHECK_INT(ratelimit_daily_crossed(rl, now), 0);
    /* ...and a new crossing, a day after the last report, is news again
     * (both pass at once: the higher one is reported). */
    for (int i = 0; i < 850; i++) {
        CHECK_INT(ratelimit_next(rl, now, true, false, &cls), 0);
    }
    CHECK_INT(ratelimit_daily_crossed(rl, now), 80);
    CHECK_INT(ratelimit_daily_crossed(rl, now + 1), 0);
    struct ratelimit_stats st;
    ratelimit_stats(rl, now, &st);
    CHECK_INT(st.in_day, 850);
    ratelimit_destroy(rl);

    /* Flapping around 50% within a day reports it once. */
    rl = ratelimit_create(1000, 1000, 100);
    unsigned reports = 0;
    for (int i = 0; i < 2000; i++) {
        now = (uint64_t)i * 60000;
        /* 50 requests at minute 0, 1 more a minute from 20 h on: the count
         * dips under 50 when the first minute leaves the day, then passes it. */
        int k = i == 0 ? 50 : (i >= 1200 ? 1 : 0);
        for (int j = 0; j < k; j++) {
            ratelimit_next(rl, now, true, false, &cls);
        }
        reports += ratelimit_daily_crossed(rl, now) != 0;
    }
    CHECK_INT(reports, 2); /* minute 0, then once more a day later, not every minute */
    ratelimit_destroy(rl);
}

int main(void)
{
    test_greedy();
    test_shares();
    test_exact_waits();
    test_feedback();
    test_server_max();
    test_daily();
    test_misc();
    test_capped();
    test_daily_watch();
    return test_done("ratelimit");
}

/*
 * ratelimit: see ratelimit.h.
 *
 * The window is exact: a ring keeps the start times of the last `max`
 * granted requests (the configured max; the limit in force is never larger),
 * so "how many started in (now - window, now]" and "when does the oldest one
 * that matters leave the window" are both answered from the ring.
 *
 * The day is approximate but safe: 1441 one-minute buckets. A day window
 * (now - DAY, now] overlaps at most 1441 buckets, and every bucket it
 * overlaps is counted whole, so the sum is never less than the true count
 * and a grant never breaks the daily budget.
 */
#include "ratelimit.h"

#include <math.h>
#include <stdlib.h>

#include "util.h"

#define DAY_BUCKETS (RATELIMIT_DAY_MS / RATELIMIT_DAY_BUCKET_MS + 1u)
#define MAX_RING 1000000u
/* The server's Retry-After and X-RateLimit-Interval-Milliseconds are capped
 * at 1 h before they are trusted: one bad header must not block a location
 * for days (F22; http also clamps Retry-After to 3600 s). */
#define MAX_RETRY_AFTER_S 3600L
#define MAX_INTERVAL_MS 3600000L

struct day_bucket {
    uint64_t id;     /* now_ms / RATELIMIT_DAY_BUCKET_MS of the bucket in this slot */
    uint64_t count;
};

/* The starts of one set of requests: the last `cap` start times and the day's buckets. */
struct counts {
    uint64_t *ring;          /* start times, oldest overwritten first */
    unsigned head;           /* next slot to write */
    unsigned used;           /* filled slots, <= cap */
    unsigned cap;            /* the configured max */
    struct day_bucket day[DAY_BUCKETS];
    uint64_t total;          /* the sum of the buckets from `horizon` on */
    uint64_t horizon;        /* the oldest bucket id still in `total` */
};

struct ratelimit {
    unsigned cfg_max;        /* as configured; also the ring capacity */
    unsigned max;            /* in force: min(cfg_max, server Max) */
    uint64_t window_ms;
    uint64_t cfg_daily_max;
    uint64_t daily_max;      /* in force: min(cfg_daily_max, server Limit-Daily) */

    struct counts all;       /* every granted start */
    struct counts capped;    /* the capped class's starts (also in all) */
    double capped_window_share;
    double capped_daily_share;
    unsigned firsts_in_a_row; /* priority grants since the last capped one */

    uint64_t last_now;       /* newest now_ms seen: time never runs backwards here */
    uint64_t blocked_until;  /* server feedback: no start before this instant */

    uint64_t granted;
    uint64_t refused;
    uint64_t throttled_429;
    uint64_t capped_granted;

    /* ratelimit_daily_crossed: per threshold, re-armed below it, last report */
    bool watch_armed[2];
    uint64_t watch_at[2];
};

struct ratelimit *ratelimit_create(unsigned max, uint64_t window_ms, uint64_t daily_max)
{
    if (max == 0) {
        max = RATELIMIT_DEFAULT_MAX;
    }
    if (window_ms == 0) {
        window_ms = RATELIMIT_DEFAULT_WINDOW_MS;
    }
    if (daily_max == 0) {
        daily_max = RATELIMIT_DEFAULT_DAILY_MAX;
    }
    if (max > MAX_RING) {
        return NULL;
    }
    struct ratelimit *rl = xcalloc(1, sizeof(*rl));
    rl->cfg_max = max;
    rl->max = max;
    rl->window_ms = window_ms;
    rl->cfg_daily_max = daily_max;
    rl->daily_max = daily_max;
    rl->all.cap = max;
    rl->all.ring = xcalloc(max, sizeof(uint64_t));
    rl->capped.cap = max;
    rl->capped.ring = xcalloc(max, sizeof(uint64_t));
    rl->capped_window_share = RATELIMIT_DEFAULT_CAPPED_WINDOW_SHARE;
    rl->capped_daily_share = RATELIMIT_DEFAULT_CAPPED_DAILY_SHARE;
    rl->watch_armed[0] = rl->watch_armed[1] = true;
    return rl;
}

void ratelimit_destroy(struct ratelimit *rl)
{
    if (rl == NULL) {
        return;
    }
    free(rl->all.ring);
    free(rl->capped.ring);
    free(rl);
}

static double clamp_share(double share)
{
    return !(share > 0.0) ? 0.0 : share > 1.0 ? 1.0 : share;
}

void ratelimit_set_capped(struct ratelimit *rl, double window_share, double daily_share)
{
    rl->capped_window_share = clamp_share(window_share);
    rl->capped_daily_share = clamp_share(daily_share);
}

static uint64_t clamp_now(const struct ratelimit *rl, uint64_t now_ms)
{
    return now_ms < rl->last_now ? rl->last_now : now_ms;
}

/* The k-th most recent start (k = 1 is the newest); k <= c->used. */
static uint64_t ring_kth(const struct counts *c, unsigned k)
{
    unsigned idx = (c->head + c->cap - k) % c->cap;
    return c->ring[idx];
}

/* Starts in (now - window, now]. Written as start + window > now so that an
 * early now (< window) does not underflow. */
static unsigned window_count(const struct counts *c, uint64_t window_ms, uint64_t now)
{
    unsigned n = 0;
    while (n < c->used && ring_kth(c, n + 1) + window_ms > now) {
        n++;
    }
    return n;
}

/* The limit of a class with the given share: fewer than max*share may have
 * started. The epsilon keeps 0.1 * 30 (= 3.0000000000000004) at 3. */
static unsigned share_limit(unsigned max, double share)
{
    if (!(share > 0.0)) {
        return 1;
    }
    if (share > 1.0) {
        share = 1.0;
    }
    double x = ceil((double)max * share - 1e-9);
    if (x < 1.0) {
        return 1;
    }
    if (x > (double)max) {
        return max;
    }
    return (unsigned)x;
}

static uint64_t window_wait(const struct counts *c, uint64_t window_ms, uint64_t now,
                            unsigned limit)
{
    if (window_count(c, window_ms, now) < limit) {
        return 0;
    }
    /* With n >= limit starts in the window, the next start is allowed once
     * the limit-th newest has left it: at s_limit + window. */
    return ring_kth(c, limit) + window_ms - now;
}

static uint64_t first_bucket(uint64_t cur)
{
    return cur >= DAY_BUCKETS - 1 ? cur - (DAY_BUCKETS - 1) : 0;
}

static uint64_t day_sum(const struct counts *c, uint64_t cur)
{
    uint64_t first = first_bucket(cur);
    uint64_t sum = 0;
    for (size_t i = 0; i < DAY_BUCKETS; i++) {
        const struct day_bucket *b = &c->day[i];
        if (b->count > 0 && b->id >= first && b->id <= cur) {
            sum += b->count;
        }
    }
    return sum;
}

/* The day's count at bucket `cur` (never older than the last one asked):
 * buckets that left the day are dropped from the running total, so this is
 * O(1) amortized where day_sum walks every bucket. */
static uint64_t day_total(struct counts *c, uint64_t cur)
{
    uint64_t first = first_bucket(cur);
    if (first <= c->horizon) {
        return c->total;
    }
    if (first - c->horizon >= DAY_BUCKETS) {
        c->total = 0; /* every bucket recorded so far is older than the day */
    } else {
        for (uint64_t id = c->horizon; id < first; id++) {
            const struct day_bucket *b = &c->day[id % DAY_BUCKETS];
            if (b->id == id) {
                c->total -= b->count;
            }
        }
    }
    c->horizon = first;
    return c->total;
}

static uint64_t daily_wait(struct counts *c, uint64_t now, uint64_t limit)
{
    uint64_t cur = now / RATELIMIT_DAY_BUCKET_MS;
    uint64_t sum = day_total(c, cur);
    if (sum < limit) {
        return 0;
    }
    /* Walk the counted buckets oldest first: bucket `id` stops being counted
     * at (id + DAY_BUCKETS) * width; stop once enough has left. */
    for (uint64_t id = first_bucket(cur); id <= cur; id++) {
        const struct day_bucket *b = &c->day[id % DAY_BUCKETS];
        if (b->id != id || b->count == 0) {
            continue;
        }
        sum -= b->count;
        if (sum < limit) {
            return (id + DAY_BUCKETS) * RATELIMIT_DAY_BUCKET_MS - now;
        }
    }
    /* Unreachable when the sum was computed from the same buckets. */
    return RATELIMIT_DAY_MS;
}

static void record_start(struct counts *c, uint64_t now)
{
    c->ring[c->head] = now;
    c->head = (c->head + 1) % c->cap;
    if (c->used < c->cap) {
        c->used++;
    }
    uint64_t id = now / RATELIMIT_DAY_BUCKET_MS;
    day_total(c, id); /* first: it drops the older day's bucket this slot may still hold */
    struct day_bucket *b = &c->day[id % DAY_BUCKETS];
    if (b->id != id) {
        b->id = id;
        b->count = 0;
    }
    b->count++;
    c->total++;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* How long until a start within `limit` of the window: server blocks, the
 * window and the daily budget, over every class. */
static uint64_t total_wait(struct ratelimit *rl, uint64_t now, unsigned limit)
{
    uint64_t wait = rl->blocked_until > now ? rl->blocked_until - now : 0;
    wait = max_u64(wait, window_wait(&rl->all, rl->window_ms, now, limit));
    return max_u64(wait, daily_wait(&rl->all, now, rl->daily_max));
}

/* The capped class's daily limit: its share of the daily budget in force, at least 1. */
static uint64_t capped_daily_limit(const struct ratelimit *rl)
{
    double x = floor((double)rl->daily_max * rl->capped_daily_share + 1e-9);
    return x < 1.0 ? 1 : (uint64_t)x;
}

/* How long until a capped start: the whole budget, and the class's own shares. */
static uint64_t capped_wait(struct ratelimit *rl, uint64_t now)
{
    uint64_t wait = total_wait(rl, now, rl->max);
    unsigned own = share_limit(rl->max, rl->capped_window_share);
    wait = max_u64(wait, window_wait(&rl->capped, rl->window_ms, now, own));
    return max_u64(wait, daily_wait(&rl->capped, now, capped_daily_limit(rl)));
}

uint64_t ratelimit_acquire(struct ratelimit *rl, uint64_t now_ms, double share)
{
    uint64_t now = clamp_now(rl, now_ms);
    rl->last_now = now;
    uint64_t wait = total_wait(rl, now, share_limit(rl->max, share));
    if (wait > 0) {
        rl->refused++;
        return wait;
    }
    record_start(&rl->all, now);
    rl->granted++;
    return 0;
}

uint64_t ratelimit_capped_wait(struct ratelimit *rl, uint64_t now_ms)
{
    uint64_t now = clamp_now(rl, now_ms);
    rl->last_now = now;
    return capped_wait(rl, now);
}

/*
 * May a waiting capped request take its turn ahead of waiting priority ones?
 * Only every RATELIMIT_CAPPED_EVERY-th grant (so it is not starved of the
 * caller's in-flight slots), and only while the window has room for more than
 * this one start: when the window is full, priority requests go first.
 */
static bool capped_turn(const struct ratelimit *rl, uint64_t now, bool firsts)
{
    if (!firsts) {
        return true;
    }
    return rl->firsts_in_a_row >= RATELIMIT_CAPPED_EVERY &&
           window_count(&rl->all, rl->window_ms, now) + 1 < rl->max;
}

uint64_t ratelimit_next(struct ratelimit *rl, uint64_t now_ms, bool firsts, bool capped,
                        enum ratelimit_class *cls)
{
    uint64_t now = clamp_now(rl, now_ms);
    rl->last_now = now;
    uint64_t wait = 0;
    if (capped && capped_turn(rl, now, firsts)) {
        wait = capped_wait(rl, now);
        if (wait == 0) {
            record_start(&rl->all, now);
            record_start(&rl->capped, now);
            rl->granted++;
            rl->capped_granted++;
            rl->firsts_in_a_row = 0;
            *cls = RATELIMIT_CAPPED;
            return 0;
        }
    }
    if (firsts) {
        wait = total_wait(rl, now, rl->max);
        if (wait == 0) {
            record_start(&rl->all, now);
            rl->granted++;
            rl->firsts_in_a_row++;
            *cls = RATELIMIT_PRIORITY;
            return 0;
        }
    }
    if (!firsts && !capped) {
        return 0; /* nothing asked: nothing to wait for */
    }
    rl->refused++;
    return wait;
}

static void block_until(struct ratelimit *rl, uint64_t until)
{
    if (until > rl->blocked_until) {
        rl->blocked_until = until;
    }
}

void ratelimit_observe(struct ratelimit *rl, uint64_t now_ms, long status,
                       const struct http_ratelimit_info *info, long retry_after_s)
{
    uint64_t now = clamp_now(rl, now_ms);
    rl->last_now = now;

    /* The server's interval is the authoritative length of its window. */
    uint64_t interval = rl->window_ms;
    if (info != NULL && info->present && info->interval_ms > 0) {
        interval = (uint64_t)(info->interval_ms > MAX_INTERVAL_MS ? MAX_INTERVAL_MS
                                                                  : info->interval_ms);
    }

    if (info != NULL && info->present) {
        if (info->max > 0) {
            rl->max = (uint64_t)info->max < rl->cfg_max ? (unsigned)info->max : rl->cfg_max;
        }
        if (info->limit_daily > 0) {
            uint64_t d = (uint64_t)info->limit_daily;
            rl->daily_max = d < rl->cfg_daily_max ? d : rl->cfg_daily_max;
        }
        if (info->remaining == 0) {
            block_until(rl, now + interval);
        }
        if (info->daily_remaining == 0) {
            block_until(rl, now + RATELIMIT_DAILY_EXHAUSTED_MS);
        }
    }

    if (status == 429) {
        rl->throttled_429++;
        uint64_t block = interval;
        if (retry_after_s > 0) {
            long s = retry_after_s > MAX_RETRY_AFTER_S ? MAX_RETRY_AFTER_S : retry_after_s;
            uint64_t ra = (uint64_t)s * 1000u;
            if (ra > block) {
                block = ra;
            }
        }
        block_until(rl, now + block);
    }
}

void ratelimit_stats(const struct ratelimit *rl, uint64_t now_ms, struct ratelimit_stats *out)
{
    uint64_t now = clamp_now(rl, now_ms);
    uint64_t cur = now / RATELIMIT_DAY_BUCKET_MS;
    out->granted = rl->granted;
    out->refused = rl->refused;
    out->throttled_429 = rl->throttled_429;
    out->in_window = window_count(&rl->all, rl->window_ms, now);
    out->max = rl->max;
    out->daily_max = rl->daily_max;
    out->blocked_ms = rl->blocked_until > now ? rl->blocked_until - now : 0;
    out->in_day = day_sum(&rl->all, cur);
    out->capped_granted = rl->capped_granted;
    out->capped_in_window = window_count(&rl->capped, rl->window_ms, now);
    out->capped_max = share_limit(rl->max, rl->capped_window_share);
    out->capped_in_day = day_sum(&rl->capped, cur);
    out->capped_daily_max = capped_daily_limit(rl);
}

unsigned ratelimit_daily_crossed(struct ratelimit *rl, uint64_t now_ms)
{
    static const unsigned pct[2] = {RATELIMIT_WATCH_LOW_PCT, RATELIMIT_WATCH_HIGH_PCT};
    uint64_t now = clamp_now(rl, now_ms);
    rl->last_now = now;
    uint64_t used = day_total(&rl->all, now / RATELIMIT_DAY_BUCKET_MS);
    unsigned crossed = 0;
    for (int i = 0; i < 2; i++) {
        bool above = used * 100u >= rl->daily_max * pct[i];
        if (!above) {
            rl->watch_armed[i] = true; /* the next crossing is news again */
            continue;
        }
        bool quiet_for_a_day = rl->watch_at[i] == 0 || now - rl->watch_at[i] >= RATELIMIT_DAY_MS;
        if (rl->watch_armed[i] && quiet_for_a_day) {
            rl->watch_armed[i] = false;
            rl->watch_at[i] = now == 0 ? 1 : now;
            crossed = pct[i];
        }
    }
    return crossed;
}

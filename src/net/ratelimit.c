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

struct ratelimit {
    unsigned cfg_max;        /* as configured; also the ring capacity */
    unsigned max;            /* in force: min(cfg_max, server Max) */
    uint64_t window_ms;
    uint64_t cfg_daily_max;
    uint64_t daily_max;      /* in force: min(cfg_daily_max, server Limit-Daily) */

    uint64_t *ring;          /* start times, oldest overwritten first */
    unsigned ring_head;      /* next slot to write */
    unsigned ring_used;      /* filled slots, <= cfg_max */

    uint64_t last_now;       /* newest now_ms seen: time never runs backwards here */
    uint64_t blocked_until;  /* server feedback: no start before this instant */

    uint64_t granted;
    uint64_t refused;
    uint64_t throttled_429;

    struct day_bucket day[DAY_BUCKETS];
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
    rl->ring = xcalloc(max, sizeof(*rl->ring));
    return rl;
}

void ratelimit_destroy(struct ratelimit *rl)
{
    if (rl == NULL) {
        return;
    }
    free(rl->ring);
    free(rl);
}

static uint64_t clamp_now(const struct ratelimit *rl, uint64_t now_ms)
{
    return now_ms < rl->last_now ? rl->last_now : now_ms;
}

/* The k-th most recent start (k = 1 is the newest); k <= ring_used. */
static uint64_t ring_kth(const struct ratelimit *rl, unsigned k)
{
    unsigned idx = (rl->ring_head + rl->cfg_max - k) % rl->cfg_max;
    return rl->ring[idx];
}

/* Starts in (now - window, now]. Written as start + window > now so that an
 * early now (< window) does not underflow. */
static unsigned window_count(const struct ratelimit *rl, uint64_t now)
{
    unsigned n = 0;
    while (n < rl->ring_used && ring_kth(rl, n + 1) + rl->window_ms > now) {
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

static uint64_t window_wait(const struct ratelimit *rl, uint64_t now, unsigned limit)
{
    if (window_count(rl, now) < limit) {
        return 0;
    }
    /* With n >= limit starts in the window, the next start is allowed once
     * the limit-th newest has left it: at s_limit + window. */
    return ring_kth(rl, limit) + rl->window_ms - now;
}

static uint64_t day_sum(const struct ratelimit *rl, uint64_t cur)
{
    uint64_t first = cur >= DAY_BUCKETS - 1 ? cur - (DAY_BUCKETS - 1) : 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < DAY_BUCKETS; i++) {
        const struct day_bucket *b = &rl->day[i];
        if (b->count > 0 && b->id >= first && b->id <= cur) {
            sum += b->count;
        }
    }
    return sum;
}

static uint64_t daily_wait(const struct ratelimit *rl, uint64_t now)
{
    uint64_t cur = now / RATELIMIT_DAY_BUCKET_MS;
    uint64_t sum = day_sum(rl, cur);
    if (sum < rl->daily_max) {
        return 0;
    }
    /* Walk the counted buckets oldest first: bucket `id` stops being counted
     * at (id + DAY_BUCKETS) * width; stop once enough has left. */
    uint64_t first = cur >= DAY_BUCKETS - 1 ? cur - (DAY_BUCKETS - 1) : 0;
    for (uint64_t id = first; id <= cur; id++) {
        const struct day_bucket *b = &rl->day[id % DAY_BUCKETS];
        if (b->id != id || b->count == 0) {
            continue;
        }
        sum -= b->count;
        if (sum < rl->daily_max) {
            return (id + DAY_BUCKETS) * RATELIMIT_DAY_BUCKET_MS - now;
        }
    }
    /* Unreachable when the sum was computed from the same buckets. */
    return RATELIMIT_DAY_MS;
}

static void record_start(struct ratelimit *rl, uint64_t now)
{
    rl->ring[rl->ring_head] = now;
    rl->ring_head = (rl->ring_head + 1) % rl->cfg_max;
    if (rl->ring_used < rl->cfg_max) {
        rl->ring_used++;
    }
    uint64_t id = now / RATELIMIT_DAY_BUCKET_MS;
    struct day_bucket *b = &rl->day[id % DAY_BUCKETS];
    if (b->id != id) {
        b->id = id;
        b->count = 0;
    }
    b->count++;
}

uint64_t ratelimit_acquire(struct ratelimit *rl, uint64_t now_ms, double share)
{
    uint64_t now = clamp_now(rl, now_ms);
    rl->last_now = now;

    uint64_t wait = 0;
    if (rl->blocked_until > now) {
        wait = rl->blocked_until - now;
    }
    uint64_t w = window_wait(rl, now, share_limit(rl->max, share));
    if (w > wait) {
        wait = w;
    }
    w = daily_wait(rl, now);
    if (w > wait) {
        wait = w;
    }
    if (wait > 0) {
        rl->refused++;
        return wait;
    }
    record_start(rl, now);
    rl->granted++;
    return 0;
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
    out->granted = rl->granted;
    out->refused = rl->refused;
    out->throttled_429 = rl->throttled_429;
    out->in_window = window_count(rl, now);
    out->max = rl->max;
    out->daily_max = rl->daily_max;
    out->blocked_ms = rl->blocked_until > now ? rl->blocked_until - now : 0;
}

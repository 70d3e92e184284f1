/*
 * ratelimit: the request budget of one HighLevel location (or any other
 * rate-limited resource), as pure logic: no I/O, no clocks, no allocation
 * after create. Callers pass the monotonic time (now_ms) into every call,
 * which is what makes the module testable over virtual time.
 *
 * It owns three limits, all of which must allow a request before it starts:
 *   1. a sliding window: never more than `max` starts in ANY window_ms
 *      (default 90 per 10000 ms, under HighLevel's documented 100/10 s with
 *      margin for arrival jitter);
 *   2. a daily budget (default 200000 per 86400000 ms), kept in 1-minute
 *      buckets so the memory is fixed (~23 KiB a class); a bucket that overlaps the
 *      day window counts whole, so the estimate errs on the safe side;
 *   3. server feedback (ratelimit_observe): X-RateLimit-Remaining == 0 and
 *      429 responses block until a computed instant; a server Max or
 *      daily limit lower than ours lowers ours.
 *
 * Two classes share these limits (ratelimit_next): the priority class
 * (polls) may use all of them; the capped class (background sweeps) has its
 * own share of the window (its own starts, so priority traffic never eats
 * it: at most ceil(max * window_share) of them in any window) and of the
 * day (at most floor(daily_max * daily_share) in any 24 h), and starts only
 * while the total stays under `max`. Priority requests go first whenever the
 * window is full, so with priority demand under max - its share per window
 * a priority request is never delayed by a capped one.
 *
 * It also watches the day (ratelimit_daily_crossed): the 24 h count passing
 * 50% and 80% of daily_max is reported once per crossing, at most once a day.
 *
 * Owns: the start times and day buckets of both classes (fixed size).
 * Invariants: acquire() and next() grant only if all three limits allow it at now_ms,
 * and records the start at once, so the window count includes every granted
 * request; a refusal returns the exact number of ms (>= 1) until the request
 * could be granted if nothing else happened meanwhile. Time never runs
 * backwards inside the limiter: a now_ms older than one already seen is
 * treated as the newest seen.
 *
 * It also defines struct http_ratelimit_info (the parsed X-RateLimit-*
 * headers, which ghl/api.c reads from the headers http.c captured), so
 * that the limiter stays free of libuv and libcurl.
 *
 * Thread context: none of its own; one limiter is used from one thread
 * (the loop thread in the engine).
 */
#ifndef POLLEN_RATELIMIT_H
#define POLLEN_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* The five X-RateLimit-* response headers; each field is -1 when absent. */
struct http_ratelimit_info {
    bool present;          /* at least one of the headers was seen */
    long limit_daily;      /* X-RateLimit-Limit-Daily */
    long daily_remaining;  /* X-RateLimit-Daily-Remaining */
    long interval_ms;      /* X-RateLimit-Interval-Milliseconds */
    long max;              /* X-RateLimit-Max */
    long remaining;        /* X-RateLimit-Remaining */
};

#define RATELIMIT_DEFAULT_MAX 90u
#define RATELIMIT_DEFAULT_WINDOW_MS 10000u
#define RATELIMIT_DEFAULT_DAILY_MAX 200000u
#define RATELIMIT_DAY_MS 86400000u
/* Width of one daily bucket; the day is RATELIMIT_DAY_MS / this = 1440 buckets. */
#define RATELIMIT_DAY_BUCKET_MS 60000u
/* The capped class's default shares of the window and of the day. */
#define RATELIMIT_DEFAULT_CAPPED_WINDOW_SHARE 0.5
#define RATELIMIT_DEFAULT_CAPPED_DAILY_SHARE 0.25
/* With both classes waiting and room in the window, every this-many priority
 * grants one goes to a waiting capped request (the caller's in-flight slots
 * would otherwise starve it). */
#define RATELIMIT_CAPPED_EVERY 4
/* The daily watch's thresholds, in percent of daily_max. */
#define RATELIMIT_WATCH_LOW_PCT 50u
#define RATELIMIT_WATCH_HIGH_PCT 80u
/* When the server says the daily budget is spent (Daily-Remaining: 0) we cannot
 * know when its day rolls over, so we back off this long before trying again. */
#define RATELIMIT_DAILY_EXHAUSTED_MS 300000u

struct ratelimit;

/*
 * Creates a limiter allowing `max` starts in any `window_ms` and `daily_max`
 * in any RATELIMIT_DAY_MS. A 0 argument takes its default (see above).
 * Returns NULL only if max exceeds 1000000 (the ring of start times is
 * allocated once, max * 8 bytes).
 */
struct ratelimit *ratelimit_create(unsigned max, uint64_t window_ms, uint64_t daily_max);
/* Frees the limiter; NULL is allowed. */
void ratelimit_destroy(struct ratelimit *rl);

/*
 * Asks to start one request at now_ms within `share` (0 < share <= 1) of the
 * window budget: the request is granted only while fewer than max*share
 * requests (of any class) started in the last window_ms; the limit of a share
 * is at least 1, and shares outside (0, 1] are clamped into it. Returns 0 and
 * records the start, or the number of ms (never 0) until it could be granted.
 * The answer is exact for the window and server blocks, and a safe upper bound
 * at 1-minute granularity for the daily budget.
 */
uint64_t ratelimit_acquire(struct ratelimit *rl, uint64_t now_ms, double share);

enum ratelimit_class {
    RATELIMIT_PRIORITY = 0,  /* polls: the whole budget, first when it is full */
    RATELIMIT_CAPPED = 1,    /* sweeps: their own shares of the window and the day */
};

/* Sets the capped class's shares (each clamped into [0, 1]; a share's limit
 * is at least 1 request). Defaults: RATELIMIT_DEFAULT_CAPPED_*. */
void ratelimit_set_capped(struct ratelimit *rl, double window_share, double daily_share);

/*
 * Picks the class whose waiting request starts at now_ms: `firsts` and
 * `capped` say which classes have one waiting. A capped request starts when
 * no priority one waits, or on its turn (every RATELIMIT_CAPPED_EVERY
 * priority grants, while the window has room for more than it), within the
 * whole budget and its own shares; a priority one within the whole budget.
 * Returns 0 with the start recorded and *cls set, or the ms (>= 1) until a
 * waiting request could start if nothing else happened meanwhile (0 too
 * when nothing waits; *cls is then untouched).
 */
uint64_t ratelimit_next(struct ratelimit *rl, uint64_t now_ms, bool firsts, bool capped,
                        enum ratelimit_class *cls);

/* How long (ms) until a capped request could start at now_ms (0: now); records nothing. */
uint64_t ratelimit_capped_wait(struct ratelimit *rl, uint64_t now_ms);

/*
 * The daily watch: returns 80 or 50 when the starts of the last 24 h (the
 * 1-minute-bucket estimate) have passed that percent of the daily budget
 * since the last call that saw them below it, and it was not reported in
 * the last 24 h; otherwise 0 (80 when both pass at once).
 */
unsigned ratelimit_daily_crossed(struct ratelimit *rl, uint64_t now_ms);

/*
 * Feeds back what the server said about a response that arrived at now_ms:
 * - info (may be NULL or !present): Remaining == 0 blocks every start until
 *   now + interval_ms (our window when the interval is absent); the window
 *   limit in force becomes min(configured max, server Max), so a server Max
 *   lower than ours lowers ours and a later higher one restores it, never
 *   above the configured max; Limit-Daily does the same for the daily budget;
 *   Daily-Remaining == 0 blocks for RATELIMIT_DAILY_EXHAUSTED_MS;
 * - status 429: blocks every start until now + max(retry_after_s * 1000,
 *   interval_ms or our window) and counts it in stats.throttled_429.
 * interval_ms and retry_after_s are each capped at 1 h.
 * Blocks only ever extend: a later, shorter block does not shorten one in force.
 */
void ratelimit_observe(struct ratelimit *rl, uint64_t now_ms, long status,
                       const struct http_ratelimit_info *info, long retry_after_s);

struct ratelimit_stats {
    uint64_t granted;        /* acquire() calls that returned 0 */
    uint64_t refused;        /* acquire() calls that returned a wait */
    uint64_t throttled_429;  /* 429 responses observed */
    unsigned in_window;      /* starts in (now_ms - window_ms, now_ms] */
    unsigned max;            /* the window limit in force (after server feedback) */
    uint64_t daily_max;      /* the daily limit in force */
    uint64_t blocked_ms;     /* how long server feedback still blocks starts, 0 if not */
    uint64_t in_day;         /* starts in the last 24 h (1-minute buckets, counted whole) */
    uint64_t capped_granted; /* capped starts ever */
    unsigned capped_in_window;  /* capped starts in the window */
    unsigned capped_max;        /* the capped class's window limit */
    uint64_t capped_in_day;     /* capped starts in the last 24 h (as in_day) */
    uint64_t capped_daily_max;  /* the capped class's daily limit */
};

/* Fills *out; does not change the limiter. */
void ratelimit_stats(const struct ratelimit *rl, uint64_t now_ms, struct ratelimit_stats *out);

#endif

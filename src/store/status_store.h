/*
 * status_store: the small records `pollen status` reads beside the engine's
 * own state: per trigger, the outcome of its last cycle; per location, its
 * request budget as the last cycle saw it. The engine writes them (in
 * sources/poll) inside the txn that already commits the cycle's end, so a
 * successful cycle costs no extra commit; a failed cycle writes its record
 * in one small txn of its own.
 *
 * Owns: the binary encoding of both records and their keys:
 *   - STORE_TRIG, key "TRIGGER" SEP "LOCATION" SEP "cycle": struct status_cycle
 *     (inside the trigger's scope, so `pollen purge` removes it with the rest);
 *   - STORE_META, key "rate" SEP "LOCATION": struct status_rate.
 * Invariants: a record starts with its format version (1); decoding refuses
 * a shorter record, another version or an error text longer than it says,
 * with -EBADMSG, and never reads past vlen. Every integer is little-endian,
 * fixed width. Times are wall-clock epoch ms; 0 means "none".
 * Thread context: any; no state of its own (the loop thread in the engine,
 * the main thread in the CLI).
 */
#ifndef POLLEN_STATUS_STORE_H
#define POLLEN_STATUS_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store_txn;

#define STATUS_RECORD_VERSION 1
/* The longest error text kept (bytes, without the NUL); longer ones are cut. */
#define STATUS_ERROR_MAX 300
/* The largest encoded status_cycle: a buffer this big always fits one. */
#define STATUS_CYCLE_MAX (4 + 9 * 8 + 4 + 2 + STATUS_ERROR_MAX)
#define STATUS_RATE_SIZE (1 + 8 * 8 + 4 * 2 + 4 * 24)

enum status_outcome {
    STATUS_OUTCOME_OK = 1,     /* the cycle completed */
    STATUS_OUTCOME_FAILED = 2, /* it was abandoned; the trigger backs off */
    STATUS_OUTCOME_AUTH = 3,   /* the credential was refused: the trigger stopped */
};

struct status_cycle {
    uint8_t outcome;        /* enum status_outcome */
    uint8_t baseline;       /* 1: the cycle recorded (or tried to record) the baseline */
    uint8_t incremental;    /* 1: an incremental cycle; 0: a full enumeration (reconcile) */
    uint64_t started_ms;    /* wall ms when the cycle began */
    uint64_t duration_ms;
    uint64_t records;       /* records the cycle read */
    uint64_t events;        /* events it wrote */
    uint64_t requests;      /* requests it sent (retries included) */
    uint64_t every_ms;      /* the trigger's interval when it ran */
    uint64_t next_due_ms;   /* wall ms of the next cycle as scheduled; 0: none (run --once) */
    uint64_t last_ok_ms;    /* wall ms when the last successful cycle ended; 0: none yet */
    uint64_t failing_since; /* wall ms when the current run of failures began; 0: not failing */
    uint32_t failures;      /* consecutive failed cycles, this one included */
    char error[STATUS_ERROR_MAX + 1]; /* what failed (status, traceId, message); "" when ok */
};

/* The per-hour request counts a rate record keeps: the last 24 h. */
#define STATUS_RATE_HOURS 24
#define STATUS_HOUR_MS 3600000ULL

struct status_rate {
    uint64_t at_ms;            /* wall ms when these numbers were taken */
    uint64_t window_ms;        /* the window's length */
    uint64_t daily_max;        /* the daily limit in force */
    uint64_t blocked_until_ms; /* wall ms until which the server's feedback blocks; 0: none */
    uint64_t throttled_429;    /* 429 answers since the engine started */
    uint64_t granted;          /* requests the writing engine had made when it wrote */
    uint64_t instance;         /* which engine process wrote (its counters start at 0) */
    uint64_t last_hour;        /* the wall hour (ms / STATUS_HOUR_MS) of hours[0] */
    uint32_t in_window;        /* requests started in the window before at_ms */
    uint32_t window_max;       /* the window limit in force */
    /* Requests per wall hour: hours[k] counts hour last_hour - k. Kept across
     * engine restarts (the limiter's own day starts empty at each start). */
    uint32_t hours[STATUS_RATE_HOURS];
};

/*
 * Adds to r the requests an engine made since it last wrote r: instance
 * identifies the engine process and granted is its request count so far
 * (the whole of it when r was written by another process), into the hour of
 * wall; older hours shift out. Pure (exposed for its unit test).
 */
void status_rate_count(struct status_rate *r, uint64_t instance, uint64_t granted, uint64_t wall);
/* The requests r counts in the 24 h before now_ms (whole hours: the oldest
 * one counts whole, so it errs high by at most an hour's worth). */
uint64_t status_rate_day(const struct status_rate *r, uint64_t now_ms);

/* Encodes c into out (STATUS_CYCLE_MAX bytes); the error is cut at
 * STATUS_ERROR_MAX. Returns the encoded length. */
size_t status_cycle_encode(const struct status_cycle *c, uint8_t *out);
/* Decodes; returns 0, or -EBADMSG (then *c is zeroed). */
int status_cycle_decode(const void *val, size_t vlen, struct status_cycle *c);
/* Encodes r into out (STATUS_RATE_SIZE bytes). Returns the length. */
size_t status_rate_encode(const struct status_rate *r, uint8_t *out);
int status_rate_decode(const void *val, size_t vlen, struct status_rate *r);

/* Writes / reads the cycle record of the trigger scope "TRIGGER" SEP "LOCATION"
 * (scope, borrowed). Return 0 or a store error; the read also -ENOENT or -EBADMSG. */
int status_cycle_put(struct store_txn *txn, const char *scope, const struct status_cycle *c);
int status_cycle_get(struct store_txn *txn, const char *scope, struct status_cycle *c);
/* The same for location's rate record. */
int status_rate_put(struct store_txn *txn, const char *location, const struct status_rate *r);
int status_rate_get(struct store_txn *txn, const char *location, struct status_rate *r);

#endif

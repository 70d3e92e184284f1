/*
 * status_store: see status_store.h.
 */
#include "status_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"
#include "store.h"
#include "util.h"

#define CYCLE_FIXED (4 + 9 * 8 + 4 + 2)

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
    return p + 8;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
    return p + 4;
}

static const uint8_t *get_u64(const uint8_t *p, uint64_t *v)
{
    *v = 0;
    for (int i = 0; i < 8; i++) {
        *v |= (uint64_t)p[i] << (8 * i);
    }
    return p + 8;
}

static const uint8_t *get_u32(const uint8_t *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        *v |= (uint32_t)p[i] << (8 * i);
    }
    return p + 4;
}

size_t status_cycle_encode(const struct status_cycle *c, uint8_t *out)
{
    size_t elen = strnlen(c->error, STATUS_ERROR_MAX);
    uint8_t *p = out;
    *p++ = STATUS_RECORD_VERSION;
    *p++ = c->outcome;
    *p++ = c->baseline;
    *p++ = c->incremental;
    p = put_u64(p, c->started_ms);
    p = put_u64(p, c->duration_ms);
    p = put_u64(p, c->records);
    p = put_u64(p, c->events);
    p = put_u64(p, c->requests);
    p = put_u64(p, c->every_ms);
    p = put_u64(p, c->next_due_ms);
    p = put_u64(p, c->last_ok_ms);
    p = put_u64(p, c->failing_since);
    p = put_u32(p, c->failures);
    *p++ = (uint8_t)(elen & 0xff);
    *p++ = (uint8_t)(elen >> 8);
    memcpy(p, c->error, elen);
    return (size_t)(p - out) + elen;
}

int status_cycle_decode(const void *val, size_t vlen, struct status_cycle *c)
{
    memset(c, 0, sizeof(*c));
    const uint8_t *p = val;
    if (vlen < CYCLE_FIXED || p[0] != STATUS_RECORD_VERSION) {
        return -EBADMSG;
    }
    size_t elen = (size_t)p[CYCLE_FIXED - 2] | (size_t)p[CYCLE_FIXED - 1] << 8;
    if (elen > STATUS_ERROR_MAX || vlen != CYCLE_FIXED + elen) {
        return -EBADMSG;
    }
    c->outcome = p[1];
    c->baseline = p[2];
    c->incremental = p[3];
    p += 4;
    p = get_u64(p, &c->started_ms);
    p = get_u64(p, &c->duration_ms);
    p = get_u64(p, &c->records);
    p = get_u64(p, &c->events);
    p = get_u64(p, &c->requests);
    p = get_u64(p, &c->every_ms);
    p = get_u64(p, &c->next_due_ms);
    p = get_u64(p, &c->last_ok_ms);
    p = get_u64(p, &c->failing_since);
    p = get_u32(p, &c->failures);
    p += 2;
    memcpy(c->error, p, elen);
    c->error[elen] = '\0';
    return 0;
}

size_t status_rate_encode(const struct status_rate *r, uint8_t *out)
{
    uint8_t *p = out;
    *p++ = STATUS_RECORD_VERSION;
    p = put_u64(p, r->at_ms);
    p = put_u64(p, r->window_ms);
    p = put_u64(p, r->daily_max);
    p = put_u64(p, r->blocked_until_ms);
    p = put_u64(p, r->throttled_429);
    p = put_u64(p, r->granted);
    p = put_u64(p, r->instance);
    p = put_u64(p, r->last_hour);
    p = put_u32(p, r->in_window);
    p = put_u32(p, r->window_max);
    for (size_t i = 0; i < STATUS_RATE_HOURS; i++) {
        p = put_u32(p, r->hours[i]);
    }
    return (size_t)(p - out);
}

int status_rate_decode(const void *val, size_t vlen, struct status_rate *r)
{
    memset(r, 0, sizeof(*r));
    const uint8_t *p = val;
    if (vlen != STATUS_RATE_SIZE || p[0] != STATUS_RECORD_VERSION) {
        return -EBADMSG;
    }
    p++;
    p = get_u64(p, &r->at_ms);
    p = get_u64(p, &r->window_ms);
    p = get_u64(p, &r->daily_max);
    p = get_u64(p, &r->blocked_until_ms);
    p = get_u64(p, &r->throttled_429);
    p = get_u64(p, &r->granted);
    p = get_u64(p, &r->instance);
    p = get_u64(p, &r->last_hour);
    p = get_u32(p, &r->in_window);
    p = get_u32(p, &r->window_max);
    for (size_t i = 0; i < STATUS_RATE_HOURS; i++) {
        p = get_u32(p, &r->hours[i]);
    }
    return 0;
}

/* Moves the hours so that hours[0] is `hour` (a clock stepped back keeps them). */
static void shift_to(struct status_rate *r, uint64_t hour)
{
    if (hour <= r->last_hour) {
        return;
    }
    uint64_t by = hour - r->last_hour;
    for (size_t i = STATUS_RATE_HOURS; i-- > 0;) {
        r->hours[i] = by <= i ? r->hours[i - by] : 0;
    }
    r->last_hour = hour;
}

void status_rate_count(struct status_rate *r, uint64_t instance, uint64_t granted, uint64_t wall)
{
    uint64_t delta = granted;
    if (r->instance == instance && granted >= r->granted) {
        delta = granted - r->granted; /* the same engine: only what is new */
    }
    shift_to(r, wall / STATUS_HOUR_MS);
    uint64_t sum = (uint64_t)r->hours[0] + delta;
    r->hours[0] = sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
    r->instance = instance;
    r->granted = granted;
}

uint64_t status_rate_day(const struct status_rate *r, uint64_t now_ms)
{
    uint64_t now_hour = now_ms / STATUS_HOUR_MS;
    uint64_t n = 0;
    for (uint64_t k = 0; k < STATUS_RATE_HOURS && k <= r->last_hour; k++) {
        uint64_t hour = r->last_hour - k;
        if (hour + STATUS_RATE_HOURS > now_hour) { /* within the 24 h before now */
            n += r->hours[k];
        }
    }
    return n;
}

/* "SCOPE" SEP "cycle" / "rate" SEP "LOCATION": new strings. */
static char *cycle_key(const char *scope)
{
    return xasprintf("%s%ccycle", scope, SNAPSHOT_SEP);
}

static char *rate_key(const char *location)
{
    return xasprintf("rate%c%s", SNAPSHOT_SEP, location);
}

int status_cycle_put(struct store_txn *txn, const char *scope, const struct status_cycle *c)
{
    uint8_t buf[STATUS_CYCLE_MAX];
    size_t n = status_cycle_encode(c, buf);
    char *key = cycle_key(scope);
    int rc = store_put(txn, STORE_TRIG, key, strlen(key), buf, n);
    free(key);
    return rc;
}

int status_cycle_get(struct store_txn *txn, const char *scope, struct status_cycle *c)
{
    char *key = cycle_key(scope);
    const void *val = NULL;
    size_t vlen = 0;
    int rc = store_get(txn, STORE_TRIG, key, strlen(key), &val, &vlen);
    free(key);
    if (rc != 0) {
        memset(c, 0, sizeof(*c));
        return rc;
    }
    return status_cycle_decode(val, vlen, c);
}

int status_rate_put(struct store_txn *txn, const char *location, const struct status_rate *r)
{
    uint8_t buf[STATUS_RATE_SIZE];
    size_t n = status_rate_encode(r, buf);
    char *key = rate_key(location);
    int rc = store_put(txn, STORE_META, key, strlen(key), buf, n);
    free(key);
    return rc;
}

int status_rate_get(struct store_txn *txn, const char *location, struct status_rate *r)
{
    char *key = rate_key(location);
    const void *val = NULL;
    size_t vlen = 0;
    int rc = store_get(txn, STORE_META, key, strlen(key), &val, &vlen);
    free(key);
    if (rc != 0) {
        memset(r, 0, sizeof(*r));
        return rc;
    }
    return status_rate_decode(val, vlen, r);
}

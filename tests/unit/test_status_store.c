/*
 * test_status_store: the records `pollen status` reads (store/status_store.c):
 * a cycle record and a rate record survive encode/decode field for field;
 * an error text is cut at STATUS_ERROR_MAX; truncated, padded, version-2
 * and lying-length records are refused with -EBADMSG without reading past
 * them; the 24 h count adds up across engine restarts and lets old hours go;
 * the keys live inside the trigger's scope in STORE_TRIG (so a purge of the
 * trigger removes them) and in STORE_META; store_readers lists an open read
 * txn with how many commits it is behind.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot.h"
#include "status_store.h"
#include "store.h"
#include "testlib.h"

static struct status_cycle sample_cycle(void)
{
    struct status_cycle c;
    memset(&c, 0, sizeof(c));
    c.outcome = STATUS_OUTCOME_FAILED;
    c.baseline = 1;
    c.incremental = 1;
    c.started_ms = 1765150000123ULL;
    c.duration_ms = 4321;
    c.records = 0x1122334455667788ULL; /* every byte differs: catches a swapped order */
    c.events = 7;
    c.requests = 12;
    c.every_ms = 60000;
    c.next_due_ms = 1765150060000ULL;
    c.last_ok_ms = 1765149000000ULL;
    c.failing_since = 1765149900000ULL;
    c.failures = 3;
    strcpy(c.error, "HTTP 503 traceId abc-123: Service Unavailable");
    return c;
}

static void test_cycle_roundtrip(void)
{
    struct status_cycle c = sample_cycle();
    uint8_t buf[STATUS_CYCLE_MAX];
    size_t n = status_cycle_encode(&c, buf);
    CHECK_INT(n, STATUS_CYCLE_MAX - STATUS_ERROR_MAX + strlen(c.error));
    CHECK_INT(buf[0], STATUS_RECORD_VERSION);
    struct status_cycle d;
    CHECK_INT(status_cycle_decode(buf, n, &d), 0);
    CHECK_INT(d.outcome, STATUS_OUTCOME_FAILED);
    CHECK_INT(d.baseline, 1);
    CHECK_INT(d.incremental, 1);
    CHECK(d.started_ms == c.started_ms);
    CHECK_INT(d.duration_ms, 4321);
    CHECK(d.records == 0x1122334455667788ULL);
    CHECK_INT(d.events, 7);
    CHECK_INT(d.requests, 12);
    CHECK_INT(d.every_ms, 60000);
    CHECK(d.next_due_ms == c.next_due_ms);
    CHECK(d.last_ok_ms == c.last_ok_ms);
    CHECK(d.failing_since == c.failing_since);
    CHECK_INT(d.failures, 3);
    CHECK_STR(d.error, c.error);

    /* An ok cycle: an empty error, the shortest record. */
    struct status_cycle ok = {.outcome = STATUS_OUTCOME_OK, .records = 5};
    n = status_cycle_encode(&ok, buf);
    CHECK_INT(n, STATUS_CYCLE_MAX - STATUS_ERROR_MAX);
    CHECK_INT(status_cycle_decode(buf, n, &d), 0);
    CHECK_STR(d.error, "");
    CHECK_INT(d.records, 5);
}

static void test_cycle_long_error_is_cut(void)
{
    struct status_cycle c = sample_cycle();
    memset(c.error, 'x', STATUS_ERROR_MAX);
    c.error[STATUS_ERROR_MAX] = '\0';
    uint8_t buf[STATUS_CYCLE_MAX];
    size_t n = status_cycle_encode(&c, buf);
    CHECK_INT(n, STATUS_CYCLE_MAX);
    struct status_cycle d;
    CHECK_INT(status_cycle_decode(buf, n, &d), 0);
    CHECK_INT(strlen(d.error), STATUS_ERROR_MAX);
}

static void test_cycle_refused(void)
{
    struct status_cycle c = sample_cycle();
    uint8_t buf[STATUS_CYCLE_MAX + 1];
    size_t n = status_cycle_encode(&c, buf);
    struct status_cycle d;
    /* Every truncation, down to nothing, is refused (and zeroes the output). */
    for (size_t len = 0; len < n; len++) {
        d.failures = 99;
        CHECK_INT(status_cycle_decode(buf, len, &d), -EBADMSG);
        CHECK_INT(d.failures, 0);
    }
    buf[n] = 'y'; /* one byte too many */
    CHECK_INT(status_cycle_decode(buf, n + 1, &d), -EBADMSG);
    buf[0] = STATUS_RECORD_VERSION + 1; /* a newer format */
    CHECK_INT(status_cycle_decode(buf, n, &d), -EBADMSG);
    buf[0] = STATUS_RECORD_VERSION;
    /* An error length beyond the maximum, even with that many bytes there. */
    uint8_t big[STATUS_CYCLE_MAX + 8];
    memset(big, 'e', sizeof(big));
    size_t fixed = status_cycle_encode(&(struct status_cycle){.outcome = 1}, big);
    big[fixed - 2] = (uint8_t)((STATUS_ERROR_MAX + 1) & 0xff);
    big[fixed - 1] = (uint8_t)((STATUS_ERROR_MAX + 1) >> 8);
    CHECK_INT(status_cycle_decode(big, fixed + STATUS_ERROR_MAX + 1, &d), -EBADMSG);
}

static void test_rate_roundtrip(void)
{
    struct status_rate r = {
        .at_ms = 1765150000999ULL,
        .window_ms = 10000,
        .daily_max = 200000,
        .blocked_until_ms = 1765150007000ULL,
        .throttled_429 = 2,
        .granted = 0x0102030405060708ULL,
        .instance = 77,
        .last_hour = 490319,
        .in_window = 88,
        .window_max = 90,
    };
    for (uint32_t i = 0; i < STATUS_RATE_HOURS; i++) {
        r.hours[i] = 1000 + i;
    }
    uint8_t buf[STATUS_RATE_SIZE + 1];
    size_t n = status_rate_encode(&r, buf);
    CHECK_INT(n, STATUS_RATE_SIZE);
    struct status_rate d;
    CHECK_INT(status_rate_decode(buf, n, &d), 0);
    CHECK(memcmp(&d, &r, sizeof(r)) == 0);
    CHECK_INT(status_rate_decode(buf, n - 1, &d), -EBADMSG);
    CHECK_INT(status_rate_decode(buf, n + 1, &d), -EBADMSG);
    buf[0] = 0;
    CHECK_INT(status_rate_decode(buf, n, &d), -EBADMSG);
}

/* The 24 h count across engine restarts and hours. */
static void test_rate_hours(void)
{
    const uint64_t h = STATUS_HOUR_MS;
    const uint64_t t0 = 490000 * h + 5000; /* a few seconds into an hour */
    struct status_rate r;
    memset(&r, 0, sizeof(r));
    status_rate_count(&r, 1, 3, t0); /* engine 1: 3 requests */
    CHECK_INT(status_rate_day(&r, t0), 3);
    status_rate_count(&r, 1, 5, t0 + 1000); /* the same engine, 2 more: not 5 more */
    CHECK_INT(status_rate_day(&r, t0 + 1000), 5);
    status_rate_count(&r, 2, 4, t0 + 2000); /* a restart: its counter began at 0 */
    CHECK_INT(status_rate_day(&r, t0 + 2000), 9);
    CHECK_INT(r.hours[0], 9);
    status_rate_count(&r, 2, 10, t0 + 3 * h); /* three hours later, 6 more */
    CHECK_INT(r.hours[0], 6);
    CHECK_INT(r.hours[3], 9);
    CHECK_INT(status_rate_day(&r, t0 + 3 * h), 15);
    /* The first hour leaves the day 24 h after it (read without a write). */
    CHECK_INT(status_rate_day(&r, t0 + 23 * h), 15);
    CHECK_INT(status_rate_day(&r, t0 + 24 * h), 6);
    CHECK_INT(status_rate_day(&r, t0 + 27 * h), 0);
    /* A write 30 hours later keeps only its own hour. */
    status_rate_count(&r, 2, 11, t0 + 30 * h);
    CHECK_INT(status_rate_day(&r, t0 + 30 * h), 1);
    for (size_t i = 1; i < STATUS_RATE_HOURS; i++) {
        CHECK_INT(r.hours[i], 0);
    }
    /* A clock stepped back: counted into the newest hour, nothing lost. */
    status_rate_count(&r, 2, 12, t0 + 29 * h);
    CHECK_INT(r.hours[0], 2);
}

struct put_ctx {
    const struct status_cycle *c;
    const struct status_rate *r;
};

static int put_txn(struct store_txn *txn, void *ud)
{
    struct put_ctx *p = ud;
    status_cycle_put(txn, "people\x1fmain", p->c);
    return status_rate_put(txn, "main", p->r);
}

static void test_store_keys(void)
{
    char *dir = test_tmp_path("test_status_store", "store");
    test_rm_store(dir);
    struct store *s = NULL;
    CHECK_INT(store_open(dir, NULL, &s), 0);
    if (s == NULL) {
        free(dir);
        return;
    }
    struct status_cycle c = sample_cycle();
    struct status_rate r = {.at_ms = 5, .in_window = 3, .window_max = 90};
    struct put_ctx pc = {&c, &r};
    CHECK_INT(store_write(s, put_txn, &pc), 0);
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    struct status_cycle d;
    CHECK_INT(status_cycle_get(txn, "people\x1fmain", &d), 0);
    CHECK_STR(d.error, c.error);
    CHECK_INT(status_cycle_get(txn, "other\x1fmain", &d), -ENOENT);
    struct status_rate e;
    CHECK_INT(status_rate_get(txn, "main", &e), 0);
    CHECK_INT(e.in_window, 3);
    CHECK_INT(status_rate_get(txn, "elsewhere", &e), -ENOENT);
    /* The cycle record lies in the trigger's scope: scope SEP ... */
    uint64_t n = 0;
    CHECK_INT(store_count_prefix(txn, STORE_TRIG, "people\x1fmain\x1f", 12, &n), 0);
    CHECK_INT(n, 1);
    /* The open read txn is a reader slot of this process, 0 commits behind ... */
    struct store_reader rd[4];
    size_t count = 0;
    CHECK_INT(store_readers(s, rd, 4, &count), 0);
    CHECK_INT(count, 1);
    CHECK_INT(rd[0].pid, getpid());
    CHECK(rd[0].newest_txnid == rd[0].txnid);
    store_txn_abort(txn);
    /* ... and none once it ended. */
    CHECK_INT(store_readers(s, rd, 4, &count), 0);
    CHECK_INT(count, 0);
    /* A reader that stays open while commits go on falls behind by each. */
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    CHECK_INT(store_write(s, put_txn, &pc), 0);
    CHECK_INT(store_write(s, put_txn, &pc), 0);
    CHECK_INT(store_readers(s, rd, 0, &count), 0); /* counted, none copied */
    CHECK_INT(count, 1);
    CHECK_INT(store_readers(s, rd, 4, &count), 0);
    CHECK_INT(rd[0].newest_txnid - rd[0].txnid, 2);
    store_txn_abort(txn);
    store_close(s);
    test_rm_store(dir);
    free(dir);
}

int main(void)
{
    test_cycle_roundtrip();
    test_cycle_long_error_is_cut();
    test_cycle_refused();
    test_rate_roundtrip();
    test_rate_hours();
    test_store_keys();
    return test_done("status_store");
}

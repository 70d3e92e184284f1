/*
 * test_dispatch: the periodic own-write expiry (F21). Marks older than an
 * hour, pending-create lists whose every create is that old, and unreadable
 * values are deleted; fresh ones stay; the sweep goes in bounded batches
 * that resume after the last key examined. The dispatcher's clock (retry
 * times, leases, own-write marks) ignores wall-clock steps (F14).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "store.h"
#include "testlib.h"
#include "util.h"

/* 2026-11-26T12:00:00Z */
#define NOW_MS 1795694400000ULL
#define HOUR_MS (3600ULL * 1000)
#define MARKS 600

struct fill {
    int n;
};

static int put(struct store_txn *txn, const char *key, const char *val)
{
    return store_put(txn, STORE_OWN, key, strlen(key), val, strlen(val));
}

/* MARKS marks, every other one two hours old, plus pending-create lists and junk. */
static int fill_txn(struct store_txn *txn, void *ud)
{
    struct fill *f = ud;
    char key[64];
    char val[128];
    int rc = 0;
    f->n = 0;
    for (int i = 0; i < MARKS && rc == 0; i++) {
        snprintf(key, sizeof(key), "loc1/contact/id%04d", i);
        uint64_t at = i % 2 == 0 ? NOW_MS - 2 * HOUR_MS : NOW_MS - 60000;
        snprintf(val, sizeof(val), "{\"at\":%llu,\"written\":{\"firstName\":\"A\"}}",
                 (unsigned long long)at);
        rc = put(txn, key, val);
        f->n++;
    }
    snprintf(val, sizeof(val), "[{\"id\":1,\"at\":%llu},{\"id\":2,\"at\":%llu}]",
             (unsigned long long)(NOW_MS - 2 * HOUR_MS), (unsigned long long)(NOW_MS - 1000));
    if (rc == 0) {
        rc = put(txn, "loc1/task/+fresh", val); /* one create still in flight: kept */
    }
    snprintf(val, sizeof(val), "[{\"id\":3,\"at\":%llu}]", (unsigned long long)(NOW_MS - 3 * HOUR_MS));
    if (rc == 0) {
        rc = put(txn, "loc1/task/+stale", val); /* left by a crash: deleted */
    }
    if (rc == 0) {
        rc = put(txn, "loc1/contact/junk", "{not json"); /* deleted */
    }
    return rc;
}

struct sweep_run {
    struct store_sweep sw;
};

static int sweep_txn(struct store_txn *txn, void *ud)
{
    struct sweep_run *r = ud;
    return dispatch_own_sweep_batch(txn, NOW_MS, &r->sw);
}

static int count_txn(struct store_txn *txn, void *ud)
{
    return store_count_prefix(txn, STORE_OWN, NULL, 0, ud);
}

static bool has_key(struct store *s, const char *key)
{
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    const void *val = NULL;
    size_t vlen = 0;
    bool found = store_get(txn, STORE_OWN, key, strlen(key), &val, &vlen) == 0;
    store_txn_abort(txn);
    return found;
}

static void test_own_sweep(void)
{
    char *dir = test_tmp_path("test_dispatch", "own");
    test_rm_store(dir);
    struct store *s = NULL;
    CHECK_INT(store_open(dir, NULL, &s), 0);
    struct fill f;
    CHECK_INT(store_write(s, fill_txn, &f), 0);

    struct sweep_run r = {0};
    uint64_t deleted = 0;
    int batches = 0;
    for (;;) {
        CHECK_INT(store_write(s, sweep_txn, &r), 0);
        batches++;
        deleted += r.sw.deleted;
        if (!r.sw.more || batches > 10) {
            break;
        }
        CHECK_INT((int)r.sw.next_len > 0, 1);
        memcpy(r.sw.after, r.sw.next, r.sw.next_len);
        r.sw.after_len = r.sw.next_len;
    }
    /* 603 entries in batches of DISPATCH_SWEEP_BATCH (256): three batches. */
    CHECK_INT(batches, (MARKS + 3 + DISPATCH_SWEEP_BATCH - 1) / DISPATCH_SWEEP_BATCH);
    CHECK_INT((int)deleted, MARKS / 2 + 2);
    uint64_t left = 0;
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    CHECK_INT(count_txn(txn, &left), 0);
    store_txn_abort(txn);
    CHECK_INT((int)left, MARKS / 2 + 1);
    CHECK(has_key(s, "loc1/contact/id0001"));
    CHECK(!has_key(s, "loc1/contact/id0000"));
    CHECK(has_key(s, "loc1/task/+fresh"));
    CHECK(!has_key(s, "loc1/task/+stale"));
    CHECK(!has_key(s, "loc1/contact/junk"));

    /* A second pass finds nothing more to delete. */
    r = (struct sweep_run){0};
    do {
        CHECK_INT(store_write(s, sweep_txn, &r), 0);
        CHECK_INT((int)r.sw.deleted, 0);
        memcpy(r.sw.after, r.sw.next, r.sw.next_len);
        r.sw.after_len = r.sw.next_len;
    } while (r.sw.more);
    store_close(s);
    test_rm_store(dir);
    free(dir);
}

/* A wall-clock step, back or forward, while the engine runs moves the
 * dispatcher's clock by nothing: no retry waits the step out, no lease or
 * own-write mark ends early. */
static void test_clock_ignores_wall_steps(void)
{
    const int64_t steps[] = {-6 * (int64_t)HOUR_MS, 6 * (int64_t)HOUR_MS};
    for (size_t i = 0; i < 2; i++) {
        uint64_t before = dispatch_clock_ms();
        util_set_wall_offset_ms(steps[i]);
        uint64_t after = dispatch_clock_ms();
        util_set_wall_offset_ms(0);
        CHECK(after >= before && after - before < 1000);
    }
    /* It starts at the wall clock. */
    uint64_t wall = util_wall_ms();
    uint64_t now = dispatch_clock_ms();
    CHECK(now + 1000 > wall && wall + 1000 > now);
}

int main(void)
{
    test_own_sweep();
    test_clock_ignores_wall_steps();
    return test_done("dispatch");
}

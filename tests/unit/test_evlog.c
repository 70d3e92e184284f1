/*
 * Unit tests for evlog.c: seq assignment and the "seq"-first layout, the
 * 1 MiB limit, seq monotonicity across reopen, MAP_FULL retries and pruning,
 * paged reads, retention by count and by age, ISO-8601 parsing, and a reader
 * process tailing while this one writes.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "evlog.h"
#include "log.h"
#include "store.h"
#include "testlib.h"
#include "util.h"

#define SMALL_MAP (64 * 1024)
#define DAY_MS (86400ULL * 1000)
/* 2026-11-26T12:00:00Z, a fixed "now" for age tests. */
#define NOW_MS 1795694400000ULL

static char *tmp_path(const char *name)
{
    return test_tmp_path("test_evlog", name);
}

static struct store *open_fresh(const char *dir, uint64_t map)
{
    test_rm_store(dir);
    struct store_options o = {.map_size = map, .max_size = 256ULL << 20};
    struct store *s = NULL;
    CHECK_INT(store_open(dir, &o, &s), 0);
    return s;
}

static struct store *reopen(struct store *s, const char *dir)
{
    store_close(s);
    struct store_options o = {.map_size = SMALL_MAP, .max_size = 256ULL << 20};
    s = NULL;
    CHECK_INT(store_open(dir, &o, &s), 0);
    return s;
}

/* ---- appending ---- */

struct append_one {
    cJSON *event;
    uint64_t seq;
    int rc;
};

static int body_append_one(struct store_txn *txn, void *ud)
{
    struct append_one *a = ud;
    a->seq = 0;
    a->rc = evlog_append(txn, a->event, &a->seq);
    /* -EFBIG and -EINVAL leave the txn usable; commit whatever else was done. */
    return store_txn_error(txn);
}

/* Appends one event from JSON text (ISO time given or none). Returns the seq or 0. */
static uint64_t append_json(struct store *s, const char *json, int *rc_out)
{
    struct append_one a = {.event = cJSON_Parse(json)};
    CHECK(a.event != NULL);
    int rc = store_write(s, body_append_one, &a);
    CHECK_INT(rc, 0);
    if (rc_out != NULL) {
        *rc_out = a.rc;
    }
    cJSON_Delete(a.event);
    return a.rc == 0 ? a.seq : 0;
}

static uint64_t append_at(struct store *s, uint64_t time_ms)
{
    char iso[32];
    util_iso8601(time_ms, iso);
    char *json = xasprintf("{\"type\":\"new\",\"time\":\"%s\",\"record_id\":\"r\"}", iso);
    uint64_t seq = append_json(s, json, NULL);
    free(json);
    return seq;
}

struct append_many {
    size_t n;
    uint64_t time_ms;
};

static int body_append_many(struct store_txn *txn, void *ud)
{
    const struct append_many *m = ud;
    char iso[32];
    util_iso8601(m->time_ms, iso);
    for (size_t i = 0; i < m->n; i++) {
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "type", "new");
        cJSON_AddStringToObject(ev, "time", iso);
        int rc = evlog_append(txn, ev, NULL);
        cJSON_Delete(ev);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Appends n events in one txn (one fsync instead of n). */
static void append_n_at(struct store *s, size_t n, uint64_t time_ms)
{
    struct append_many m = {.n = n, .time_ms = time_ms};
    CHECK_INT(store_write(s, body_append_many, &m), 0);
}

struct collected {
    size_t n;
    uint64_t seqs[64];
    char *json[64];
    int stop_at; /* 1-based index of the call that returns stop_rc; 0: never */
    int stop_rc;
};

static int collect_cb(uint64_t seq, const char *json, size_t len, void *ud)
{
    struct collected *c = ud;
    if (c->stop_at > 0 && (int)c->n + 1 == c->stop_at) {
        return c->stop_rc;
    }
    if (c->n < ARRAY_SIZE(c->seqs)) {
        c->seqs[c->n] = seq;
        c->json[c->n] = xstrndup(json, len);
    }
    c->n++;
    return 0;
}

static void collected_free(struct collected *c)
{
    for (size_t i = 0; i < c->n && i < ARRAY_SIZE(c->json); i++) {
        free(c->json[i]);
    }
    memset(c, 0, sizeof(*c));
}

static void test_append_layout(void)
{
    static const struct {
        const char *in;
        int want_rc;
        const char *want; /* stored text; NULL when nothing is stored */
    } cases[] = {
        {"{\"type\":\"new\",\"time\":\"2026-01-01T00:00:00.000Z\"}", 0,
         "{\"seq\":1,\"type\":\"new\",\"time\":\"2026-01-01T00:00:00.000Z\"}"},
        {"{\"a\":1,\"seq\":77}", 0, "{\"seq\":2,\"a\":1}"},
        {"{}", 0, "{\"seq\":3}"},
        {"{\"seq\":\"x\",\"seq\":5,\"b\":[1, 2],\"c\":{\"seq\":9}}", 0,
         "{\"seq\":4,\"b\":[1,2],\"c\":{\"seq\":9}}"},
        {"[1]", -EINVAL, NULL},
        {"\"text\"", -EINVAL, NULL},
        {"{\"after\":\"rejects\"}", 0, "{\"seq\":5,\"after\":\"rejects\"}"},
    };
    char *dir = tmp_path("layout");
    struct store *s = open_fresh(dir, SMALL_MAP);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct append_one a = {.event = cJSON_Parse(cases[i].in)};
        CHECK(a.event != NULL);
        CHECK_INT(store_write(s, body_append_one, &a), 0);
        CHECK_INT(a.rc, cases[i].want_rc);
        if (cases[i].want_rc == 0) {
            /* The caller's object now starts with the seq member. */
            CHECK(a.event->child != NULL && strcmp(a.event->child->string, "seq") == 0);
            CHECK(a.event->child != NULL && a.event->child->valuedouble == (double)a.seq);
        }
        cJSON_Delete(a.event);
    }
    struct collected c = {0};
    uint64_t next = 0;
    CHECK_INT(evlog_read(s, 0, 100, collect_cb, &c, &next), 0);
    size_t k = 0;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        if (cases[i].want == NULL) {
            continue;
        }
        CHECK(k < c.n);
        if (k < c.n) {
            CHECK_INT(c.seqs[k], k + 1);
            CHECK_STR(c.json[k], cases[i].want);
        }
        k++;
    }
    CHECK_INT(c.n, k);
    CHECK_INT(next, k + 1);
    collected_free(&c);

    /* Over 1 MiB: -EFBIG, nothing written, the txn still commits the rest. */
    size_t big = EVLOG_MAX_EVENT;
    char *payload = xmalloc(big + 1);
    memset(payload, 'x', big);
    payload[big] = '\0';
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "payload", payload);
    free(payload);
    struct append_one a = {.event = ev};
    CHECK_INT(store_write(s, body_append_one, &a), 0);
    CHECK_INT(a.rc, -EFBIG);
    CHECK(cJSON_GetObjectItemCaseSensitive(ev, "seq") == NULL);
    cJSON_Delete(ev);
    uint64_t last = 0;
    CHECK_INT(evlog_last_seq(s, &last), 0);
    CHECK_INT(last, 5);
    CHECK_INT(append_json(s, "{\"n\":6}", NULL), 6);

    /* Exactly at the limit is accepted: {"seq":7,"p":"..."} sized to 1 MiB. */
    size_t overhead = strlen("{\"seq\":7,\"p\":\"\"}");
    payload = xmalloc(EVLOG_MAX_EVENT - overhead + 1);
    memset(payload, 'y', EVLOG_MAX_EVENT - overhead);
    payload[EVLOG_MAX_EVENT - overhead] = '\0';
    ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "p", payload);
    free(payload);
    a = (struct append_one){.event = ev};
    CHECK_INT(store_write(s, body_append_one, &a), 0);
    CHECK_INT(a.rc, 0);
    CHECK_INT(a.seq, 7);
    cJSON_Delete(ev);

    store_close(s);
    test_rm_store(dir);
    free(dir);
}

/* ---- MAP_FULL retries inside the caller's txn ---- */

struct batch {
    size_t count;
    cJSON **events;
    uint64_t *seqs;
    int calls;
};

static int body_batch(struct store_txn *txn, void *ud)
{
    struct batch *b = ud;
    b->calls++;
    for (size_t i = 0; i < b->count; i++) {
        int rc = evlog_append(txn, b->events[i], &b->seqs[i]);
        if (rc != 0) {
            return rc;
        }
        /* The snapshot row of the same change, in the same txn. */
        char key[32];
        int klen = snprintf(key, sizeof(key), "trig1/rec%04zu", i);
        store_put(txn, STORE_SNAP, key, (size_t)klen, "hash", 4);
    }
    return store_txn_error(txn);
}

struct seq_check {
    uint64_t expect;
    bool ok;
};

static int check_seq_cb(uint64_t seq, const char *json, size_t len, void *ud)
{
    struct seq_check *c = ud;
    char head[40];
    int n = snprintf(head, sizeof(head), "{\"seq\":%llu,", (unsigned long long)seq);
    if (seq != c->expect || len < (size_t)n || memcmp(json, head, (size_t)n) != 0) {
        c->ok = false;
    }
    c->expect++;
    return 0;
}

static void test_retry_exactly_once(void)
{
    char *dir = tmp_path("retry");
    struct store *s = open_fresh(dir, SMALL_MAP);
    struct batch b = {.count = 300};
    b.events = xcalloc(b.count, sizeof(*b.events));
    b.seqs = xcalloc(b.count, sizeof(*b.seqs));
    char pad[1001];
    memset(pad, 'p', 1000);
    pad[1000] = '\0';
    for (size_t i = 0; i < b.count; i++) {
        b.events[i] = cJSON_CreateObject();
        cJSON_AddNumberToObject(b.events[i], "i", (double)i);
        cJSON_AddStringToObject(b.events[i], "pad", pad);
    }
    CHECK_INT(store_write(s, body_batch, &b), 0);
    CHECK(b.calls >= 3); /* the map grew several times under the body */
    for (size_t i = 0; i < b.count; i++) {
        CHECK_INT(b.seqs[i], i + 1);
        cJSON_Delete(b.events[i]);
    }
    free(b.events);
    free(b.seqs);

    s = reopen(s, dir);
    uint64_t last = 0;
    CHECK_INT(evlog_last_seq(s, &last), 0);
    CHECK_INT(last, 300);
    struct seq_check c = {.expect = 1, .ok = true};
    uint64_t next = 0;
    CHECK_INT(evlog_read(s, 0, 1000, check_seq_cb, &c, &next), 0);
    CHECK(c.ok);
    CHECK_INT(c.expect, 301);
    CHECK_INT(next, 301);
    struct store_stat st;
    CHECK_INT(store_stat(s, &st), 0);
    CHECK_INT(st.entries[STORE_EVENTS], 300);
    CHECK_INT(st.entries[STORE_SNAP], 300);
    store_close(s);
    test_rm_store(dir);
    free(dir);
}

/* ---- seq monotonicity ---- */

static int body_delete_all_events(struct store_txn *txn, void *ud)
{
    struct store_cursor *cur = NULL;
    int rc = store_cursor_open(txn, STORE_EVENTS, &cur);
    if (rc == 0) {
        rc = store_cursor_seek(cur, NULL, 0, NULL, NULL, NULL, NULL);
    }
    while (rc == 0) {
        rc = store_cursor_del(cur);
        if (rc == 0) {
            rc = store_cursor_next(cur, NULL, NULL, NULL, NULL);
        }
    }
    return rc == -ENOENT ? 0 : rc;
}

static int body_delete_last_seq(struct store_txn *txn, void *ud)
{
    return store_del(txn, STORE_META, "evlog.last_seq", 14);
}

static void test_seq_monotonic(void)
{
    char *dir = tmp_path("mono");
    struct store *s = open_fresh(dir, SMALL_MAP);
    uint64_t last = 99;
    CHECK_INT(evlog_last_seq(s, &last), 0);
    CHECK_INT(last, 0);
    for (uint64_t i = 1; i <= 5; i++) {
        CHECK_INT(append_at(s, NOW_MS), i);
    }
    s = reopen(s, dir);
    CHECK_INT(append_at(s, NOW_MS), 6);

    /* Every event gone: the next seq still does not repeat. */
    CHECK_INT(store_write(s, body_delete_all_events, NULL), 0);
    struct store_stat st;
    CHECK_INT(store_stat(s, &st), 0);
    CHECK_INT(st.entries[STORE_EVENTS], 0);
    CHECK_INT(evlog_last_seq(s, &last), 0);
    CHECK_INT(last, 6);
    s = reopen(s, dir);
    CHECK_INT(append_at(s, NOW_MS), 7);

    /* Retention down to one event, then reopen. */
    CHECK_INT(append_at(s, NOW_MS), 8);
    uint64_t deleted = 0;
    CHECK_INT(evlog_prune(s, 0, 1, NOW_MS, &deleted), 0);
    CHECK_INT(deleted, 1);
    s = reopen(s, dir);
    CHECK_INT(append_at(s, NOW_MS), 9);

    /* Without meta (an older or damaged store) the last key still rules. */
    CHECK_INT(store_write(s, body_delete_last_seq, NULL), 0);
    CHECK_INT(evlog_last_seq(s, &last), 0);
    CHECK_INT(last, 9);
    CHECK_INT(append_at(s, NOW_MS), 10);
    store_close(s);
    test_rm_store(dir);
    free(dir);
}

/* ---- paged reads ---- */

static void test_read_paging(void)
{
    char *dir = tmp_path("paging");
    struct store *s = open_fresh(dir, SMALL_MAP);
    append_n_at(s, 25, NOW_MS);
    static const struct {
        uint64_t from;
        size_t max;
        uint64_t want_first; /* 0: none delivered */
        size_t want_n;
        uint64_t want_next;
    } cases[] = {
        {0, 10, 1, 10, 11},   {11, 10, 11, 10, 21}, {21, 10, 21, 5, 26}, {26, 10, 0, 0, 26},
        {1000, 5, 0, 0, 1000}, {5, 0, 0, 0, 5},       {0, 100, 1, 25, 26}, {25, 1, 25, 1, 26},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct collected c = {0};
        uint64_t next = 12345;
        CHECK_INT(evlog_read(s, cases[i].from, cases[i].max, collect_cb, &c, &next), 0);
        if (c.n != cases[i].want_n || next != cases[i].want_next) {
            fprintf(stderr, "paging case %zu\n", i);
        }
        CHECK_INT(c.n, cases[i].want_n);
        CHECK_INT(next, cases[i].want_next);
        if (cases[i].want_first != 0 && c.n > 0) {
            CHECK_INT(c.seqs[0], cases[i].want_first);
            for (size_t j = 1; j < c.n && j < ARRAY_SIZE(c.seqs); j++) {
                CHECK_INT(c.seqs[j], c.seqs[j - 1] + 1);
            }
        }
        collected_free(&c);
    }

    /* The callback stops the read: that event is not consumed. */
    struct collected c = {.stop_at = 3, .stop_rc = 7};
    uint64_t next = 0;
    CHECK_INT(evlog_read(s, 4, 10, collect_cb, &c, &next), 7);
    CHECK_INT(c.n, 2);
    CHECK_INT(next, 6);
    collected_free(&c);

    /* Reading from below the oldest kept event starts at the oldest. */
    uint64_t deleted = 0;
    CHECK_INT(evlog_prune(s, 0, 15, NOW_MS, &deleted), 0);
    CHECK_INT(deleted, 10);
    c = (struct collected){0};
    CHECK_INT(evlog_read(s, 1, 3, collect_cb, &c, &next), 0);
    CHECK_INT(c.n, 3);
    CHECK_INT(c.seqs[0], 11);
    CHECK_INT(next, 14);
    collected_free(&c);
    store_close(s);
    test_rm_store(dir);
    free(dir);
}

/* ---- retention ---- */

static uint64_t first_seq(struct store *s)
{
    struct collected c = {0};
    uint64_t next = 0;
    CHECK_INT(evlog_read(s, 0, 1, collect_cb, &c, &next), 0);
    uint64_t first = c.n > 0 ? c.seqs[0] : 0;
    collected_free(&c);
    return first;
}

static void test_prune_count(void)
{
    static const struct {
        size_t events;
        uint64_t max_count;
        uint64_t max_age_ms;
        uint64_t want_deleted;
        uint64_t want_first;
        uint64_t want_txns; /* write txns the prune committed */
    } cases[] = {
        {50, 20, 0, 30, 31, 1},
        {50, 0, 0, 0, 1, 0},  /* no limits: nothing */
        {50, 50, 0, 0, 1, 0}, /* a batch that deletes nothing commits no txn */
        {50, 100, 0, 0, 1, 0},
        {50, 1, 0, 49, 50, 1},
        {1, 1, 0, 0, 1, 0},
        {2500, 1, 0, 2499, 2500, 3}, /* batches of at most 1000 deletes */
        {2000, 1000, 0, 1000, 1001, 1},
        {0, 1, 0, 0, 0, 0},
    };
    char *dir = tmp_path("prune-count");
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct store *s = open_fresh(dir, SMALL_MAP);
        append_n_at(s, cases[i].events, NOW_MS); /* recent: age plays no part */
        struct store_stat before;
        struct store_stat after;
        CHECK_INT(store_stat(s, &before), 0);
        uint64_t deleted = 99;
        CHECK_INT(evlog_prune(s, cases[i].max_age_ms, cases[i].max_count, NOW_MS, &deleted), 0);
        CHECK_INT(store_stat(s, &after), 0);
        if (deleted != cases[i].want_deleted) {
            fprintf(stderr, "prune count case %zu\n", i);
        }
        CHECK_INT(deleted, cases[i].want_deleted);
        CHECK_INT(after.entries[STORE_EVENTS], cases[i].events - cases[i].want_deleted);
        CHECK_INT(first_seq(s), cases[i].want_first);
        CHECK_INT(after.last_txnid - before.last_txnid, cases[i].want_txns);
        uint64_t last = 0;
        CHECK_INT(evlog_last_seq(s, &last), 0);
        CHECK_INT(last, cases[i].events);
        store_close(s);
    }
    test_rm_store(dir);
    free(dir);
}

/* The engine's form: one txn per step, `more` while a batch was full. */
static void test_prune_step(void)
{
    char *dir = tmp_path("prune-step");
    struct store *s = open_fresh(dir, SMALL_MAP);
    append_n_at(s, 2500, NOW_MS);
    static const struct {
        uint64_t want_deleted;
        bool want_more;
    } steps[] = {{1000, true}, {1000, true}, {499, false}, {0, false}};
    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        struct store_stat before;
        struct store_stat after;
        CHECK_INT(store_stat(s, &before), 0);
        struct evlog_prune_result r = {.deleted = 99, .more = true};
        CHECK_INT(evlog_prune_step(s, 0, 1, NOW_MS, &r), 0);
        CHECK_INT(store_stat(s, &after), 0);
        CHECK_INT(r.deleted, steps[i].want_deleted);
        CHECK(r.more == steps[i].want_more);
        CHECK_INT(after.last_txnid - before.last_txnid, steps[i].want_deleted > 0 ? 1 : 0);
    }
    CHECK_INT(first_seq(s), 2500);
    /* No limits: nothing to do, no txn. */
    struct evlog_prune_result r = {.deleted = 99, .more = true};
    CHECK_INT(evlog_prune_step(s, 0, 0, NOW_MS, &r), 0);
    CHECK_INT(r.deleted, 0);
    CHECK(!r.more);
    store_close(s);
    test_rm_store(dir);
    free(dir);
}

static void test_prune_age(void)
{
    enum { NO_TIME = -1, BAD_TIME = -2 };
    static const struct {
        long long ages_min[8]; /* minutes before NOW per event, oldest first; 0 ends */
        uint64_t max_age_ms;
        uint64_t max_count;
        uint64_t want_deleted;
        uint64_t want_first;
    } cases[] = {
        /* 10d, 5d, 3d, 1h, 1m old; keep 2 days */
        {{14400, 7200, 4320, 60, 1}, 2 * DAY_MS, 0, 3, 4},
        /* all old: the newest stays anyway */
        {{14400, 7200, 4320}, 1, 0, 2, 3},
        /* nothing old enough */
        {{60, 30, 1}, 2 * DAY_MS, 0, 0, 1},
        /* an old event after a young one stays (the scan stops at the first young one) */
        {{14400, 60, 7200, 1}, 2 * DAY_MS, 0, 1, 2},
        /* events without a readable time are skipped, not deleted, for age */
        {{NO_TIME, 14400, BAD_TIME, 7200, 60}, 2 * DAY_MS, 0, 2, 1},
        /* count and age together: count removes 1, age 2 more */
        {{14400, 7200, 4320, 60, 30, 1}, 2 * DAY_MS, 5, 3, 4},
        /* count dominates */
        {{60, 30, 20, 10, 1}, 2 * DAY_MS, 2, 3, 4},
        /* an event from the future (clock skew) is young */
        {{14400, -600, 1}, 2 * DAY_MS, 0, 1, 2},
    };
    char *dir = tmp_path("prune-age");
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct store *s = open_fresh(dir, SMALL_MAP);
        size_t n = 0;
        for (; n < ARRAY_SIZE(cases[i].ages_min) && cases[i].ages_min[n] != 0; n++) {
            long long age = cases[i].ages_min[n];
            if (age == NO_TIME) {
                append_json(s, "{\"type\":\"note\"}", NULL);
            } else if (age == BAD_TIME) {
                append_json(s, "{\"type\":\"note\",\"time\":\"yesterday\"}", NULL);
            } else {
                append_at(s, (uint64_t)((long long)NOW_MS - age * 60000));
            }
        }
        uint64_t deleted = 99;
        CHECK_INT(evlog_prune(s, cases[i].max_age_ms, cases[i].max_count, NOW_MS, &deleted), 0);
        if (deleted != cases[i].want_deleted || first_seq(s) != cases[i].want_first) {
            fprintf(stderr, "prune age case %zu\n", i);
        }
        CHECK_INT(deleted, cases[i].want_deleted);
        CHECK_INT(first_seq(s), cases[i].want_first);
        struct store_stat st;
        CHECK_INT(store_stat(s, &st), 0);
        CHECK_INT(st.entries[STORE_EVENTS], n - cases[i].want_deleted);
        store_close(s);
    }

    /* A wall clock a year ahead (F14): ages count from the newest event, so
     * only the event 40 days older than it goes, not every unconsumed one. */
    struct store *s = open_fresh(dir, SMALL_MAP);
    append_at(s, NOW_MS - 40 * DAY_MS);
    append_at(s, NOW_MS - 20 * DAY_MS);
    append_at(s, NOW_MS - 60000);
    uint64_t deleted = 99;
    CHECK_INT(evlog_prune(s, 30 * DAY_MS, 0, NOW_MS + 365 * DAY_MS, &deleted), 0);
    CHECK_INT(deleted, 1);
    CHECK_INT(first_seq(s), 2);
    store_close(s);
    test_rm_store(dir);
    free(dir);
}

/* ---- ISO-8601 ---- */

static void test_parse_time(void)
{
    static const struct {
        const char *in;
        int want_rc;
        uint64_t want_ms;
    } cases[] = {
        {"1970-01-01T00:00:00Z", 0, 0},
        {"1970-01-01T00:00:00.001Z", 0, 1},
        {"1970-01-02T00:00:00Z", 0, 86400000},
        {"2000-02-29T00:00:00.000Z", 0, 951782400000ULL},
        {"2026-11-26T12:00:00Z", 0, NOW_MS},
        {"2026-11-26T13:00:00+01:00", 0, NOW_MS},
        {"2026-11-26T06:30:00-0530", 0, NOW_MS},
        {"2026-11-26T12:00:00.5Z", 0, NOW_MS + 500},
        {"2026-11-26T12:00:00.123456789Z", 0, NOW_MS + 123},
        {"2024-02-29T00:00:00Z", 0, 1709164800000ULL},
        {"9999-12-31T23:59:59.999Z", 0, 253402300799999ULL},
        {"", -EINVAL, 0},
        {"2026-11-26", -EINVAL, 0},
        {"2026-11-26T12:00:00", -EINVAL, 0},       /* zone required */
        {"2026-11-26 12:00:00Z", -EINVAL, 0},
        {"2026-13-01T00:00:00Z", -EINVAL, 0},
        {"2026-00-01T00:00:00Z", -EINVAL, 0},
        {"2026-02-29T00:00:00Z", -EINVAL, 0},      /* not a leap year */
        {"2026-04-31T00:00:00Z", -EINVAL, 0},
        {"2026-01-01T24:00:00Z", -EINVAL, 0},
        {"2026-01-01T00:60:00Z", -EINVAL, 0},
        {"2026-01-01T00:00:00.Z", -EINVAL, 0},
        {"2026-01-01T00:00:00Zjunk", -EINVAL, 0},
        {"2026-01-01T00:00:00+1", -EINVAL, 0},
        {"2026-01-01T00:00:00+24:00", -EINVAL, 0},
        {"1969-12-31T23:59:59Z", -EINVAL, 0},
        {"1970-01-01T00:00:00+01:00", -EINVAL, 0}, /* before the epoch */
        {"2O26-01-01T00:00:00Z", -EINVAL, 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        uint64_t ms = 42;
        int rc = evlog_parse_time(cases[i].in, &ms);
        if (rc != cases[i].want_rc) {
            fprintf(stderr, "time case \"%s\"\n", cases[i].in);
        }
        CHECK_INT(rc, cases[i].want_rc);
        if (cases[i].want_rc == 0) {
            CHECK_INT(ms, cases[i].want_ms);
        }
    }
    /* What util_iso8601 writes, evlog_parse_time reads back. */
    static const uint64_t round[] = {
        0, 999, 86399999, 951782400123ULL, NOW_MS + 7, 4102444800000ULL,
    };
    for (size_t i = 0; i < ARRAY_SIZE(round); i++) {
        char iso[32];
        util_iso8601(round[i], iso);
        uint64_t ms = 0;
        CHECK_INT(evlog_parse_time(iso, &ms), 0);
        CHECK_INT(ms, round[i]);
    }
}

/* ---- read-only, empty ---- */

static int never_cb(uint64_t seq, const char *json, size_t len, void *ud)
{
    (*(int *)ud)++;
    return 0;
}

static void test_readonly_empty(void)
{
    char *dir = tmp_path("ro");
    test_rm_store(dir);
    mkdir(dir, 0700);
    MDB_env *env = NULL;
    CHECK_INT(mdb_env_create(&env), 0);
    CHECK_INT(mdb_env_open(env, dir, 0, 0600), 0);
    mdb_env_close(env);

    struct store_options o = {.readonly = true};
    struct store *s = NULL;
    CHECK_INT(store_open(dir, &o, &s), 0);
    uint64_t last = 99;
    CHECK_INT(evlog_last_seq(s, &last), 0);
    CHECK_INT(last, 0);
    int calls = 0;
    uint64_t next = 0;
    CHECK_INT(evlog_read(s, 3, 10, never_cb, &calls, &next), 0);
    CHECK_INT(calls, 0);
    CHECK_INT(next, 3);
    uint64_t deleted = 9;
    CHECK_INT(evlog_prune(s, 0, 5, NOW_MS, &deleted), -EROFS);
    CHECK_INT(deleted, 0);
    store_close(s);
    test_rm_store(dir);
    free(dir);
}

/* ---- a reader process tailing while this one writes ---- */

#define TAIL_EVENTS 400

struct tail_state {
    uint64_t expect;
    bool ok;
};

static int tail_cb(uint64_t seq, const char *json, size_t len, void *ud)
{
    struct tail_state *t = ud;
    char head[40];
    int n = snprintf(head, sizeof(head), "{\"seq\":%llu,", (unsigned long long)seq);
    if (seq != t->expect || len < (size_t)n || memcmp(json, head, (size_t)n) != 0 ||
        json[len - 1] != '}') {
        t->ok = false;
    }
    t->expect = seq + 1;
    return 0;
}

/* The child: `pollen tail` in miniature. Exit codes say what went wrong. */
static int tail_child(const char *dir, int go_fd)
{
    char c;
    if (read(go_fd, &c, 1) != 1) {
        return 20;
    }
    struct store_options o = {.readonly = true};
    struct store *s = NULL;
    if (store_open(dir, &o, &s) != 0) {
        return 21;
    }
    struct store_stat st;
    if (store_stat(s, &st) != 0) {
        store_close(s);
        return 22;
    }
    uint64_t first_map = st.map_size;
    struct tail_state t = {.expect = 1, .ok = true};
    uint64_t next = 1;
    uint64_t deadline = util_mono_ms() + 30000;
    int polls = 0;
    int rc = 0;
    while (next <= TAIL_EVENTS && util_mono_ms() < deadline) {
        rc = evlog_read(s, next, 37, tail_cb, &t, &next);
        if (rc != 0) {
            break;
        }
        polls++;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int code = 0;
    if (rc != 0) {
        code = 23;
    } else if (!t.ok) {
        code = 24;
    } else if (next != TAIL_EVENTS + 1) {
        code = 25;
    } else if (store_stat(s, &st) != 0 || st.map_size <= first_map) {
        code = 26; /* the writer's growth reached us through MDB_MAP_RESIZED */
    }
    store_close(s);
    return code;
}

static void test_concurrent_reader(void)
{
    char *dir = tmp_path("tail");
    test_rm_store(dir);
    int go[2];
    CHECK_INT(pipe(go), 0);
    /* Fork before this process opens the env: LMDB envs do not survive fork. */
    pid_t pid = fork();
    if (pid == 0) {
        close(go[1]);
        int code = tail_child(dir, go[0]);
        fflush(stderr);
        _exit(code);
    }
    close(go[0]);
    struct store *s = open_fresh(dir, SMALL_MAP);
    CHECK_INT(write(go[1], "g", 1), 1);
    close(go[1]);
    char pad[301];
    memset(pad, 'z', 300);
    pad[300] = '\0';
    for (int i = 0; i < TAIL_EVENTS; i++) {
        char *json = xasprintf("{\"i\":%d,\"pad\":\"%s\"}", i, pad);
        CHECK_INT(append_json(s, json, NULL), i + 1);
        free(json);
    }
    int status = 0;
    CHECK_INT(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_INT(WEXITSTATUS(status), 0);
    struct store_stat st;
    CHECK_INT(store_stat(s, &st), 0);
    CHECK(st.map_size > SMALL_MAP);
    CHECK_INT(st.readers_used, 0);
    store_close(s);
    test_rm_store(dir);
    free(dir);
}

int main(void)
{
    log_set_level(LOG_WARN);
    test_parse_time();
    test_append_layout();
    test_retry_exactly_once();
    test_seq_monotonic();
    test_read_paging();
    test_prune_count();
    test_prune_step();
    test_prune_age();
    test_readonly_empty();
    test_concurrent_reader();
    return test_done("evlog");
}

/*
 * Unit tests for tail.c: no output is ever written while a read txn is open
 * (a stalled consumer of stdout would otherwise pin an old snapshot and make
 * data.mdb grow without bound, F5), every event comes out once and in order
 * across batches, --limit stops exactly, a failed write makes tail exit 1,
 * and --from below the oldest kept event says which events are gone.
 */
#define _GNU_SOURCE 1 /* fopencookie */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "evlog.h"
#include "json.h"
#include "log.h"
#include "store.h"
#include "tail.h"
#include "testlib.h"
#include "util.h"

/* More than tail's 1000-event batch, so that the reads take several txns. */
#define NEVENTS 2500

/* What the fake stdout saw. */
struct sink {
    size_t writes;
    size_t writes_in_txn; /* writes made while this process had a txn open */
    size_t lines;
    bool fail;            /* answer every write with ENOSPC, as /dev/full does */
};

static ssize_t sink_write(void *cookie, const char *data, size_t n)
{
    struct sink *k = cookie;
    k->writes++;
    if (store_live_txns() != 0) {
        k->writes_in_txn++;
    }
    if (k->fail) {
        errno = ENOSPC;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        k->lines += data[i] == '\n';
    }
    return (ssize_t)n;
}

static FILE *sink_open(struct sink *k)
{
    cookie_io_functions_t io = {.write = sink_write};
    FILE *f = fopencookie(k, "w", io);
    CHECK(f != NULL);
    /* Unbuffered: every fwrite of tail reaches sink_write at once. */
    setvbuf(f, NULL, _IONBF, 0);
    return f;
}

static int append_events(struct store_txn *txn, void *ud)
{
    (void)ud;
    for (int i = 0; i < NEVENTS; i++) {
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "type", i % 2 ? "created" : "updated");
        cJSON_AddStringToObject(ev, "time", "2026-12-07T10:00:00.000Z");
        evlog_append(txn, ev, NULL);
        cJSON_Delete(ev);
    }
    return store_txn_error(txn);
}

static char *make_store(void)
{
    char *dir = test_tmp_path("test_tail", "state");
    test_rm_store(dir);
    struct store *s = NULL;
    CHECK_INT(store_open(dir, NULL, &s), 0);
    CHECK_INT(store_write(s, append_events, NULL), 0);
    store_close(s);
    return dir;
}

static int tail_from(const char *dir, struct sink *k, uint64_t from, uint64_t limit,
                     const char *type)
{
    FILE *out = sink_open(k);
    struct tail_options o = {.state_dir = dir, .from = from, .limit = limit, .types = {{type}, type != NULL},
                             .out = out};
    int rc = tail_run(&o);
    fclose(out);
    return rc;
}

static int tail_into(const char *dir, struct sink *k, uint64_t limit, const char *type)
{
    return tail_from(dir, k, 1, limit, type);
}

/* Runs tail --from from with stderr in a file; returns what it wrote there. */
static char *tail_stderr(const char *dir, uint64_t from, struct sink *k)
{
    char *path = test_tmp_path("test_tail", "stderr");
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    CHECK_INT(tail_from(dir, k, from, 0, NULL), 0);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *text = xcalloc(1, 4096);
    CHECK(pread(fd, text, 4095, 0) >= 0);
    close(fd);
    unlink(path);
    free(path);
    return text;
}

static void test_gap_is_reported(const char *dir)
{
    struct store *s = NULL;
    CHECK_INT(store_open(dir, NULL, &s), 0);
    uint64_t deleted = 0;
    CHECK_INT(evlog_prune(s, 0, 100, 0, &deleted), 0);
    CHECK_INT(deleted, NEVENTS - 100);
    store_close(s);
    struct sink k = {0};
    char *err = tail_stderr(dir, 5, &k);
    CHECK(strstr(err, "pollen tail: events 5 to 2400 are no longer kept (retention); starting "
                      "at 2401") != NULL);
    CHECK_INT(k.lines, 100);
    free(err);
    /* The default --from 1 means "the oldest kept": no warning. */
    struct sink k1 = {0};
    err = tail_stderr(dir, 1, &k1);
    CHECK_STR(err, "");
    CHECK_INT(k1.lines, 100);
    free(err);
}

static void test_no_write_inside_a_txn(const char *dir)
{
    struct sink k = {0};
    CHECK_INT(tail_into(dir, &k, 0, NULL), 0);
    CHECK_INT(k.lines, NEVENTS);
    CHECK(k.writes > 0);
    CHECK_INT(k.writes_in_txn, 0);
}

static void test_limit_and_filter(const char *dir)
{
    struct sink k = {0};
    CHECK_INT(tail_into(dir, &k, 1001, "created"), 0);
    CHECK_INT(k.lines, 1001);
    CHECK_INT(k.writes_in_txn, 0);
}

static void test_write_error_exits_1(const char *dir)
{
    struct sink k = {.fail = true};
    CHECK_INT(tail_into(dir, &k, 0, NULL), 1);
    /* It stops at the first batch that failed (stdio may try a write twice),
     * instead of going on through the other two batches. */
    CHECK(k.writes <= 2);
}

/* --since: an ISO-8601 time (loose: a date, no zone = UTC) or a time ago. */
static void test_parse_since(void)
{
    const uint64_t now = 1796000000000ULL; /* 2026-11-29T... */
    uint64_t ms = 0;
    CHECK_INT(tail_parse_since("2026-12-07T10:00:00.000Z", now, &ms), 0);
    CHECK_INT(ms, 1796637600000LL);
    CHECK_INT(tail_parse_since("2026-12-07T10:00:00", now, &ms), 0);
    CHECK_INT(ms, 1796637600000LL);
    CHECK_INT(tail_parse_since("2026-12-07T12:00:00+02:00", now, &ms), 0);
    CHECK_INT(ms, 1796637600000LL);
    CHECK_INT(tail_parse_since("2026-12-07", now, &ms), 0);
    CHECK_INT(ms, 1796601600000LL);
    CHECK_INT(tail_parse_since("10m", now, &ms), 0);
    CHECK_INT(ms, now - 600000);
    CHECK_INT(tail_parse_since("1d", now, &ms), 0);
    CHECK_INT(ms, now - 86400000);
    CHECK_INT(tail_parse_since("100000d", now, &ms), 0);
    CHECK_INT(ms, 1); /* before the epoch: everything (0 would mean no --since) */
    ms = 7;
    for (const char *const *bad = (const char *const[]){"", "0s", "yesterday", "10 m",
                                                        "2026-13-01", "-5m", NULL};
         *bad != NULL; bad++) {
        CHECK_INT(tail_parse_since(*bad, now, &ms), -EINVAL);
    }
    CHECK_INT(ms, 7);
}

/* --type given several times: each kept once. */
static void test_types(void)
{
    struct tail_types t = {0};
    CHECK_INT(tail_types_add(&t, "created"), 0);
    CHECK_INT(tail_types_add(&t, "deleted"), 0);
    CHECK_INT(tail_types_add(&t, "created"), 0);
    CHECK_INT(t.count, 2);
    const char *more[] = {"a", "b", "c", "d", "e", "f"};
    for (size_t i = 0; i < 6; i++) {
        CHECK_INT(tail_types_add(&t, more[i]), 0);
    }
    CHECK_INT(tail_types_add(&t, "g"), -E2BIG);
    CHECK_INT(t.count, TAIL_MAX_TYPES);
}

int main(void)
{
    log_set_level(LOG_WARN);
    test_parse_since();
    test_types();
    char *dir = make_store();
    test_no_write_inside_a_txn(dir);
    test_limit_and_filter(dir);
    test_write_error_exits_1(dir);
    test_gap_is_reported(dir);
    json_scratch_release();
    test_rm_store(dir);
    free(dir);
    return test_done("tail");
}

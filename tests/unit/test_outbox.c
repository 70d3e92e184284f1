/*
 * Unit tests for outbox.c: entries that no longer parse (issue #10, F1).
 * outbox_get reports them as -EBADMSG, outbox_quarantine moves one to the
 * dead-letter store as a stub (and drops a due index key whose entry is
 * gone), and outbox_dlq_list lists a dead letter that does not parse as a
 * stub instead of skipping it. outbox_dlq_print (`pollen dlq list`) writes
 * nothing while a read txn is open (F5) and reports a failed write.
 * outbox_next_due treats a due time beyond its horizon as due now (F14).
 */
#define _GNU_SOURCE 1 /* fopencookie */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "outbox.h"
#include "store.h"
#include "testlib.h"
#include "util.h"

static const char garbage[] = "{\"rule\":\"hook\",\"request\":[[[";

static void put_raw(struct store_txn *txn, enum store_table t, uint64_t id, const char *text)
{
    uint8_t key[8];
    store_u64_key(id, key);
    CHECK_INT(store_put(txn, t, key, 8, text, strlen(text)), 0);
}

static void put_due(struct store_txn *txn, uint64_t at, uint64_t id)
{
    uint8_t dk[16];
    store_u64_key(at, dk);
    store_u64_key(id, dk + 8);
    CHECK_INT(store_put(txn, STORE_DUE, dk, 16, "", 0), 0);
}

struct listed {
    int n;
    uint64_t id;
    char reason[200];
    double bytes;
};

static int collect(uint64_t id, const cJSON *entry, void *ud)
{
    struct listed *l = ud;
    l->n++;
    l->id = id;
    const char *r = json_get_string(entry, "dead_reason");
    str_copy(l->reason, sizeof(l->reason), r ? r : "");
    l->bytes = -1;
    json_get_number(entry, "stored_bytes", &l->bytes);
    return 0;
}

static void test_quarantine(struct store *s)
{
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, true, &txn), 0);
    put_raw(txn, STORE_OUTBOX, 7, garbage);
    put_due(txn, 100, 7);
    cJSON *entry = NULL;
    CHECK_INT(outbox_get(txn, 7, &entry), -EBADMSG);
    CHECK(entry == NULL);
    uint64_t id = 0;
    uint64_t at = 0;
    CHECK_INT(outbox_next_due(txn, 200, 0, NULL, 0, &id, &at), 0);
    CHECK_INT((int)id, 7);
    CHECK_INT((int)at, 100);

    cJSON *stub = NULL;
    CHECK_INT(outbox_quarantine(txn, 7, at, "cannot be read", &stub), 0);
    CHECK(stub != NULL);
    CHECK_STR(json_get_string(stub, "key"), "pollen-outbox-7");
    cJSON_Delete(stub);
    CHECK_INT(outbox_next_due(txn, 200, 0, NULL, 0, &id, &at), -ENOENT);
    CHECK_INT(outbox_get(txn, 7, &entry), -ENOENT);
    struct listed l = {0};
    CHECK_INT(outbox_dlq_list(txn, collect, &l), 0);
    CHECK_INT(l.n, 1);
    CHECK_INT((int)l.id, 7);
    CHECK_STR(l.reason, "cannot be read");
    CHECK_INT((int)l.bytes, (int)strlen(garbage));
    CHECK_INT(outbox_dlq_drop(txn, 7), 0);

    /* A due key whose entry is gone: only the key goes, no dead letter. */
    put_due(txn, 150, 9);
    CHECK_INT(outbox_quarantine(txn, 9, 150, "gone", &stub), 0);
    CHECK(stub == NULL);
    CHECK_INT(outbox_next_due(txn, 200, 0, NULL, 0, &id, &at), -ENOENT);
    memset(&l, 0, sizeof(l));
    CHECK_INT(outbox_dlq_list(txn, collect, &l), 0);
    CHECK_INT(l.n, 0);
    store_txn_abort(txn);
}

static void test_unparsable_dead_letter_is_listed(struct store *s)
{
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, true, &txn), 0);
    put_raw(txn, STORE_DLQ, 12, garbage);
    struct listed l = {0};
    CHECK_INT(outbox_dlq_list(txn, collect, &l), 0);
    CHECK_INT(l.n, 1);
    CHECK_INT((int)l.id, 12);
    CHECK(strstr(l.reason, "does not parse") != NULL);
    CHECK_INT(outbox_dlq_drop(txn, 12), 0);
    store_txn_abort(txn);
}

/* F14: a due time further ahead than any wait the engine sets was written
 * before the wall clock stepped back: it is due now, even behind a future
 * entry that is legitimately waiting. */
static void test_due_beyond_the_horizon(struct store *s)
{
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, true, &txn), 0);
    put_due(txn, 1100, 21);          /* a retry in 100 ms */
    put_due(txn, 1000 + 6 * 3600000, 22); /* 6 h ahead: the clock went back */
    uint64_t id = 0;
    uint64_t at = 0;
    CHECK_INT(outbox_next_due(txn, 1000, 0, NULL, 0, &id, &at), -ENOENT);
    CHECK_INT((int)at, 1100);
    CHECK_INT(outbox_next_due(txn, 1000, 60000, NULL, 0, &id, &at), 0);
    CHECK_INT((int)id, 22);
    CHECK_INT((int)at, 1000 + 6 * 3600000);
    /* In flight (skipped): the legit wait is what remains. */
    uint64_t busy[] = {22};
    CHECK_INT(outbox_next_due(txn, 1000, 60000, busy, 1, &id, &at), -ENOENT);
    CHECK_INT((int)at, 1100);
    /* Within the horizon: it waits. */
    CHECK_INT(outbox_next_due(txn, 1000, 7 * 3600000, NULL, 0, &id, &at), -ENOENT);
    CHECK_INT((int)at, 1100);
    store_txn_abort(txn);
}

/* A fake stdout: counts lines, and writes made with a txn open. */
struct sink {
    size_t writes;
    size_t writes_in_txn;
    size_t lines;
    bool fail; /* answer every write with ENOSPC, as /dev/full does */
};

static ssize_t sink_write(void *cookie, const char *data, size_t n)
{
    struct sink *k = cookie;
    k->writes++;
    k->writes_in_txn += store_live_txns() != 0;
    if (k->fail) {
        errno = ENOSPC;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        k->lines += data[i] == '\n';
    }
    return (ssize_t)n;
}

static int print_into(struct store *s, struct sink *k)
{
    cookie_io_functions_t io = {.write = sink_write};
    FILE *f = fopencookie(k, "w", io);
    CHECK(f != NULL);
    setvbuf(f, NULL, _IONBF, 0); /* every fwrite reaches sink_write at once */
    int rc = outbox_dlq_print(s, f);
    fclose(f);
    return rc;
}

#define NDEAD (OUTBOX_PRINT_BATCH * 2 + 50)

static void test_dlq_print_writes_outside_txns(struct store *s)
{
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, true, &txn), 0);
    for (uint64_t id = 1; id <= NDEAD; id++) {
        put_raw(txn, STORE_DLQ, id, id == 5 ? garbage : "{\"state\":\"dead\"}");
    }
    CHECK_INT(store_txn_commit(txn), 0);
    struct sink k = {0};
    CHECK_INT(print_into(s, &k), 0);
    CHECK_INT((int)k.lines, NDEAD); /* the one that does not parse too, as a stub */
    CHECK_INT((int)k.writes, 3);    /* one write per batch */
    CHECK_INT((int)k.writes_in_txn, 0);
    struct sink full = {.fail = true};
    CHECK_INT(print_into(s, &full), -EIO);
    CHECK(full.writes <= 2); /* stops at the first lost batch (stdio may try twice) */
}

int main(void)
{
    char *dir = test_tmp_path("test_outbox", "store");
    test_rm_store(dir);
    struct store_options o = {0};
    struct store *s = NULL;
    CHECK_INT(store_open(dir, &o, &s), 0);
    if (s != NULL) {
        test_quarantine(s);
        test_unparsable_dead_letter_is_listed(s);
        test_dlq_print_writes_outside_txns(s);
        test_due_beyond_the_horizon(s);
        store_close(s);
    }
    test_rm_store(dir);
    free(dir);
    json_scratch_release();
    return test_done("test_outbox");
}

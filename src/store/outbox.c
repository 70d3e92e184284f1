/*
 * outbox: see outbox.h.
 */
#include "outbox.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "evlog.h"
#include "json.h"
#include "util.h"

#define META_NEXT_ID "outbox.next_id"

static int next_id(struct store_txn *txn, uint64_t *out)
{
    const void *val = NULL;
    size_t vlen = 0;
    uint64_t id = 1;
    int rc = store_get(txn, STORE_META, META_NEXT_ID, strlen(META_NEXT_ID), &val, &vlen);
    if (rc == 0 && vlen == 8) {
        id = store_key_u64(val);
    } else if (rc != 0 && rc != -ENOENT) {
        return rc;
    }
    uint8_t buf[8];
    store_u64_key(id + 1, buf);
    rc = store_put(txn, STORE_META, META_NEXT_ID, strlen(META_NEXT_ID), buf, 8);
    *out = id;
    return rc;
}

static void due_key(uint64_t next_at, uint64_t id, uint8_t out[16])
{
    store_u64_key(next_at, out);
    store_u64_key(id, out + 8);
}

static int put_entry(struct store_txn *txn, enum store_table t, uint64_t id, const cJSON *entry)
{
    uint8_t key[8];
    store_u64_key(id, key);
    char *json = cJSON_PrintUnformatted(entry);
    int rc = store_put(txn, t, key, 8, json, strlen(json));
    free(json);
    return rc;
}

static uint64_t entry_next_at(const cJSON *entry)
{
    double d = 0;
    return json_get_number(entry, "next_at", &d) ? (uint64_t)d : 0;
}

static void set_number(cJSON *obj, const char *key, double v)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsNumber(item)) {
        cJSON_SetNumberValue(item, v);
    } else {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
        cJSON_AddNumberToObject(obj, key, v);
    }
}

int outbox_enqueue(struct store_txn *txn, cJSON *entry, uint64_t next_at, uint64_t *id_out)
{
    uint64_t id = 0;
    int rc = next_id(txn, &id);
    if (rc != 0) {
        return rc;
    }
    set_number(entry, "id", (double)id);
    set_number(entry, "attempts", 0);
    set_number(entry, "next_at", (double)next_at);
    rc = put_entry(txn, STORE_OUTBOX, id, entry);
    uint8_t dk[16];
    due_key(next_at, id, dk);
    if (rc == 0) {
        rc = store_put(txn, STORE_DUE, dk, 16, "", 0);
    }
    if (rc == 0 && id_out != NULL) {
        *id_out = id;
    }
    return rc;
}

static int get_from(struct store_txn *txn, enum store_table t, uint64_t id, cJSON **out)
{
    uint8_t key[8];
    store_u64_key(id, key);
    const void *val = NULL;
    size_t vlen = 0;
    int rc = store_get(txn, t, key, 8, &val, &vlen);
    if (rc != 0) {
        return rc;
    }
    if (json_parse(val, vlen, out, NULL) != 0) {
        return -EBADMSG;
    }
    return 0;
}

int outbox_get(struct store_txn *txn, uint64_t id, cJSON **out)
{
    return get_from(txn, STORE_OUTBOX, id, out);
}

static int unindex(struct store_txn *txn, uint64_t id)
{
    cJSON *old = NULL;
    int rc = outbox_get(txn, id, &old);
    if (rc != 0) {
        return rc;
    }
    uint8_t dk[16];
    due_key(entry_next_at(old), id, dk);
    cJSON_Delete(old);
    rc = store_del(txn, STORE_DUE, dk, 16);
    return rc == -ENOENT ? 0 : rc;
}

int outbox_update(struct store_txn *txn, uint64_t id, cJSON *entry, uint64_t next_at)
{
    int rc = unindex(txn, id);
    if (rc != 0) {
        return rc;
    }
    set_number(entry, "next_at", (double)next_at);
    rc = put_entry(txn, STORE_OUTBOX, id, entry);
    uint8_t dk[16];
    due_key(next_at, id, dk);
    if (rc == 0) {
        rc = store_put(txn, STORE_DUE, dk, 16, "", 0);
    }
    return rc;
}

int outbox_remove(struct store_txn *txn, uint64_t id)
{
    int rc = unindex(txn, id);
    if (rc != 0) {
        return rc;
    }
    uint8_t key[8];
    store_u64_key(id, key);
    return store_del(txn, STORE_OUTBOX, key, 8);
}

int outbox_bury(struct store_txn *txn, uint64_t id, cJSON *entry, const char *why)
{
    int rc = outbox_remove(txn, id);
    if (rc != 0 && rc != -ENOENT) {
        return rc;
    }
    char when[32];
    util_iso8601(util_wall_ms(), when);
    cJSON_DeleteItemFromObjectCaseSensitive(entry, "dead_at");
    cJSON_DeleteItemFromObjectCaseSensitive(entry, "dead_reason");
    cJSON_AddStringToObject(entry, "dead_at", when);
    cJSON_AddStringToObject(entry, "dead_reason", why ? why : "");
    cJSON_DeleteItemFromObjectCaseSensitive(entry, "state");
    cJSON_AddStringToObject(entry, "state", "dead");
    return put_entry(txn, STORE_DLQ, id, entry);
}

/* A dead letter standing for an entry whose text cannot be parsed. */
static cJSON *stub_entry(uint64_t id, size_t stored_bytes, const char *why)
{
    char key[48];
    char when[32];
    snprintf(key, sizeof(key), "pollen-outbox-%llu", (unsigned long long)id);
    util_iso8601(util_wall_ms(), when);
    cJSON *stub = cJSON_CreateObject();
    cJSON_AddNumberToObject(stub, "id", (double)id);
    cJSON_AddStringToObject(stub, "key", key);
    cJSON_AddStringToObject(stub, "state", "dead");
    cJSON_AddStringToObject(stub, "dead_at", when);
    cJSON_AddStringToObject(stub, "dead_reason", why);
    cJSON_AddNumberToObject(stub, "stored_bytes", (double)stored_bytes);
    return stub;
}

int outbox_quarantine(struct store_txn *txn, uint64_t id, uint64_t due_at, const char *why,
                      cJSON **stub)
{
    *stub = NULL;
    uint8_t key[8];
    store_u64_key(id, key);
    const void *val = NULL;
    size_t vlen = 0;
    int rc = store_get(txn, STORE_OUTBOX, key, 8, &val, &vlen);
    if (rc != 0 && rc != -ENOENT) {
        return rc;
    }
    bool exists = rc == 0;
    /* The due index cannot come from the entry (it does not parse): the
     * caller found it there. */
    uint8_t dk[16];
    due_key(due_at, id, dk);
    rc = store_del(txn, STORE_DUE, dk, 16);
    if (rc == -ENOENT) {
        rc = 0;
    }
    if (rc != 0 || !exists) {
        return rc; /* no entry: only a stale index key, now gone */
    }
    rc = store_del(txn, STORE_OUTBOX, key, 8);
    if (rc != 0) {
        return rc;
    }
    *stub = stub_entry(id, vlen, why);
    return put_entry(txn, STORE_DLQ, id, *stub);
}

static bool skipped(uint64_t id, const uint64_t *skip, size_t nskip)
{
    for (size_t i = 0; i < nskip; i++) {
        if (skip[i] == id) {
            return true;
        }
    }
    return false;
}

/*
 * The first due key at or after from whose id is not skipped: 0 with *id and
 * *at, or -ENOENT (*at is then the first such key's time, 0 at the end).
 * With stop_after_future, a key later than now ends the search.
 */
static int first_key(struct store_cursor *cur, uint64_t from, uint64_t now, bool stop_after_future,
                     const uint64_t *skip, size_t nskip, uint64_t *id, uint64_t *at)
{
    const void *key = NULL;
    size_t klen = 0;
    uint8_t start[8];
    store_u64_key(from, start);
    *at = 0;
    int rc = store_cursor_seek(cur, start, sizeof(start), &key, &klen, NULL, NULL);
    while (rc == 0) {
        if (klen == 16) {
            uint64_t t = store_key_u64(key);
            uint64_t eid = store_key_u64((const uint8_t *)key + 8);
            if (!skipped(eid, skip, nskip)) {
                *at = t;
                if (t <= now || !stop_after_future) {
                    *id = eid;
                    return 0;
                }
                return -ENOENT;
            }
        }
        rc = store_cursor_next(cur, &key, &klen, NULL, NULL);
    }
    return rc;
}

int outbox_next_due(struct store_txn *txn, uint64_t now, uint64_t horizon, const uint64_t *skip,
                    size_t nskip, uint64_t *id, uint64_t *next_at)
{
    struct store_cursor *cur = NULL;
    int rc = store_cursor_open(txn, STORE_DUE, &cur);
    if (rc != 0) {
        return rc;
    }
    rc = first_key(cur, 0, now, true, skip, nskip, id, next_at);
    uint64_t earliest = *next_at;
    if (rc == -ENOENT && horizon != 0 && earliest != 0) {
        /* A key further ahead than any wait the engine sets was written
         * before the wall clock stepped back: due now (see outbox.h). */
        rc = first_key(cur, now + horizon + 1, now, false, skip, nskip, id, next_at);
        if (rc != 0) {
            *next_at = earliest;
        }
    }
    store_cursor_close(cur);
    return rc;
}

int outbox_dlq_get(struct store_txn *txn, uint64_t id, cJSON **out)
{
    return get_from(txn, STORE_DLQ, id, out);
}

/* Lists the entries (or dead letters) with id >= from, in id order, until cb returns non-zero. */
static int list_from(struct store_txn *txn, enum outbox_part part, uint64_t from,
                     int (*cb)(uint64_t id, const cJSON *entry, void *ud), void *ud)
{
    struct store_cursor *cur = NULL;
    int rc = store_cursor_open(txn, part == OUTBOX_DEAD ? STORE_DLQ : STORE_OUTBOX, &cur);
    if (rc != 0) {
        return rc;
    }
    const void *key = NULL;
    const void *val = NULL;
    size_t klen = 0;
    size_t vlen = 0;
    uint8_t start[8];
    store_u64_key(from, start);
    rc = store_cursor_seek(cur, start, sizeof(start), &key, &klen, &val, &vlen);
    while (rc == 0) {
        cJSON *entry = NULL;
        if (klen == 8 && json_parse(val, vlen, &entry, NULL) != 0) {
            entry = stub_entry(store_key_u64(key), vlen,
                               part == OUTBOX_DEAD ? "the stored dead letter does not parse"
                                                   : "the stored entry does not parse");
        }
        if (entry != NULL) {
            int stop = cb(store_key_u64(key), entry, ud);
            cJSON_Delete(entry);
            if (stop) {
                break;
            }
        }
        rc = store_cursor_next(cur, &key, &klen, &val, &vlen);
    }
    store_cursor_close(cur);
    return rc == -ENOENT ? 0 : rc;
}

int outbox_dlq_list(struct store_txn *txn, int (*cb)(uint64_t id, const cJSON *entry, void *ud),
                    void *ud)
{
    return list_from(txn, OUTBOX_DEAD, 0, cb, ud);
}

enum outbox_entry_state outbox_entry_state(const cJSON *entry)
{
    const char *state = json_get_string(entry, "state");
    double attempts = 0;
    if (state != NULL && strcmp(state, "inflight") == 0) {
        return OUTBOX_IN_FLIGHT;
    }
    return json_get_number(entry, "attempts", &attempts) && attempts > 0 ? OUTBOX_RETRYING
                                                                          : OUTBOX_PENDING;
}

int outbox_scan(struct store_txn *txn, enum outbox_part part, uint64_t from,
                int (*cb)(uint64_t id, const cJSON *entry, void *ud), void *ud)
{
    return list_from(txn, part, from, cb, ud);
}

/* One batch of outbox_dlq_print: lines copied out of the read txn. */
struct dlq_batch {
    struct buf lines;
    size_t n;
    uint64_t next;  /* the id the next batch starts at */
    bool more;      /* stopped at a full batch: more may follow */
};

static int take_dead(uint64_t id, const cJSON *entry, void *ud)
{
    struct dlq_batch *b = ud;
    if (b->n == OUTBOX_PRINT_BATCH || b->lines.len >= OUTBOX_PRINT_BYTES) {
        b->more = true;
        return 1; /* not taken: the next batch starts here */
    }
    /* The buffer has no practical cap (SIZE_MAX / 2): the appends succeed. */
    char *line = cJSON_PrintUnformatted(entry);
    buf_append_str(&b->lines, line);
    buf_append(&b->lines, "\n", 1);
    free(line);
    b->n++;
    b->next = id + 1;
    return 0;
}

/*
 * Copies a bounded batch out of a read txn, ends the txn, and only then
 * writes it: a write blocks for as long as the reader of out stalls
 * (`pollen dlq list | less`), and a read txn held that long pins an old
 * snapshot, so the engine's data.mdb would grow without bound (F5).
 */
int outbox_dlq_print(struct store *s, FILE *out)
{
    return outbox_print(s, OUTBOX_DEAD, out);
}

int outbox_print(struct store *s, enum outbox_part part, FILE *out)
{
    struct dlq_batch b = {.next = 0};
    buf_init(&b.lines, SIZE_MAX / 2);
    int rc = 0;
    do {
        struct store_txn *txn = NULL;
        b.n = 0;
        b.more = false;
        buf_reset(&b.lines);
        rc = store_txn_begin(s, false, &txn);
        if (rc != 0) {
            break;
        }
        rc = list_from(txn, part, b.next, take_dead, &b);
        store_txn_abort(txn);
        /* The txn is over: only now may the write block. Some streams
         * report a failed write only in ferror. */
        if (rc == 0 && b.lines.len > 0 &&
            (fwrite(b.lines.data, 1, b.lines.len, out) != b.lines.len || ferror(out))) {
            rc = -EIO;
        }
    } while (rc == 0 && b.more);
    buf_finish(&b.lines);
    return rc;
}

int outbox_dlq_drop(struct store_txn *txn, uint64_t id)
{
    uint8_t key[8];
    store_u64_key(id, key);
    return store_del(txn, STORE_DLQ, key, 8);
}

int outbox_dlq_retry(struct store_txn *txn, uint64_t id, uint64_t now)
{
    cJSON *entry = NULL;
    int rc = outbox_dlq_get(txn, id, &entry);
    if (rc != 0) {
        return rc;
    }
    /* A dead letter kept without its request (the rule could not be rendered,
     * the request nested too deep, the stored entry did not parse) would only
     * die again with "cannot send". */
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(entry, "request"))) {
        cJSON_Delete(entry);
        return -ENOMSG;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(entry, "dead_at");
    cJSON_DeleteItemFromObjectCaseSensitive(entry, "dead_reason");
    set_number(entry, "attempts", 0);
    set_number(entry, "next_at", (double)now);
    /* Counted so that the new attempts' events get new ids. */
    double requeued = 0;
    json_get_number(entry, "requeued", &requeued);
    set_number(entry, "requeued", requeued + 1);
    cJSON_DeleteItemFromObjectCaseSensitive(entry, "state");
    cJSON_AddStringToObject(entry, "state", "pending");
    rc = put_entry(txn, STORE_OUTBOX, id, entry);
    cJSON_Delete(entry);
    uint8_t dk[16];
    due_key(now, id, dk);
    if (rc == 0) {
        rc = store_put(txn, STORE_DUE, dk, 16, "", 0);
    }
    if (rc == 0) {
        rc = outbox_dlq_drop(txn, id);
    }
    return rc;
}

int outbox_count(struct store_txn *txn, uint64_t *pending, uint64_t *dead)
{
    int rc = store_count_prefix(txn, STORE_OUTBOX, NULL, 0, pending);
    if (rc == 0) {
        rc = store_count_prefix(txn, STORE_DLQ, NULL, 0, dead);
    }
    return rc;
}

struct dlq_age {
    uint64_t max_age_ms;
    uint64_t now_ms;
};

/* Is this dead letter past retention (its dead_at older than max_age_ms)? */
static bool dlq_expired(const void *key, size_t klen, const void *val, size_t vlen, void *ud)
{
    const struct dlq_age *age = ud;
    cJSON *entry = NULL;
    uint64_t dead_ms = 0;
    (void)key;
    (void)klen;
    if (json_parse(val, vlen, &entry, NULL) != 0) {
        return false;
    }
    const char *when = json_get_string(entry, "dead_at");
    bool timed = when != NULL && evlog_parse_time(when, &dead_ms) == 0;
    cJSON_Delete(entry);
    return timed && dead_ms < age->now_ms && age->now_ms - dead_ms > age->max_age_ms;
}

int outbox_dlq_prune_batch(struct store_txn *txn, uint64_t max_age_ms, uint64_t now_ms,
                           struct store_sweep *sw)
{
    if (max_age_ms == 0) {
        sw->next_len = 0;
        sw->more = false;
        sw->deleted = 0;
        return 0;
    }
    struct dlq_age age = {.max_age_ms = max_age_ms, .now_ms = now_ms};
    return store_sweep_batch(txn, STORE_DLQ, OUTBOX_PRUNE_BATCH, sw, dlq_expired, &age);
}

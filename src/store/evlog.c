/*
 * evlog: see evlog.h.
 */
#include "evlog.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "isotime.h"
#include "log.h"
#include "util.h"

#define PREFIX "evlog"

/* Seqs are JSON numbers, read back as doubles by most consumers: stay exact. */
#define SEQ_MAX ((1ULL << 53) - 1)
/* Events examined per prune txn at most, so a run of events without a
 * readable "time" cannot turn one txn into a scan of the whole log. */
#define PRUNE_SCAN_MAX (10 * EVLOG_PRUNE_BATCH)

static const char last_seq_key[] = "evlog.last_seq";

int evlog_txn_last_seq(struct store_txn *txn, uint64_t *out)
{
    *out = 0;
    uint64_t meta_seq = 0;
    const void *val = NULL;
    size_t vlen = 0;
    int err = store_get(txn, STORE_META, last_seq_key, strlen(last_seq_key), &val, &vlen);
    if (err == 0) {
        if (vlen != 8) {
            log_error(PREFIX, "meta %s has %zu bytes instead of 8; the store is damaged",
                      last_seq_key, vlen);
            return store_txn_fail(txn, -EIO);
        }
        meta_seq = store_key_u64(val);
    } else if (err != -ENOENT) {
        return err;
    }

    /* The last key is authoritative too: a store written before last_seq
     * existed, or damaged, must still never reuse a seq. */
    uint64_t key_seq = 0;
    struct store_cursor *cur = NULL;
    err = store_cursor_open(txn, STORE_EVENTS, &cur);
    if (err != 0) {
        return err;
    }
    const void *key = NULL;
    size_t klen = 0;
    err = store_cursor_last(cur, &key, &klen, NULL, NULL);
    if (err == 0 && klen == 8) {
        key_seq = store_key_u64(key);
    }
    store_cursor_close(cur);
    if (err != 0 && err != -ENOENT) {
        return err;
    }
    *out = meta_seq > key_seq ? meta_seq : key_seq;
    return 0;
}

/* Removes every "seq" member (a parsed object may carry duplicates). */
static void remove_seq(cJSON *event)
{
    while (cJSON_GetObjectItemCaseSensitive(event, "seq") != NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(event, "seq");
    }
}

/* Makes "seq" the first member, so a reader sees it before any payload. */
static void set_seq(cJSON *event, uint64_t seq)
{
    remove_seq(event);
    /* Add (which names the item through cJSON's own allocator), then move it to the front. */
    cJSON *item = cJSON_AddNumberToObject(event, "seq", (double)seq);
    if (item == NULL) {
        return;
    }
    cJSON_DetachItemViaPointer(event, item);
    cJSON_InsertItemInArray(event, 0, item);
}

/* Set once at start-up (loop thread), before any append. */
static size_t max_event = EVLOG_MAX_EVENT;

void evlog_set_max_event(size_t bytes)
{
    max_event = bytes > EVLOG_MAX_EVENT ? bytes : EVLOG_MAX_EVENT;
}

size_t evlog_max_event(void)
{
    return max_event;
}

int evlog_append(struct store_txn *txn, cJSON *event, uint64_t *seq_out)
{
    int err = store_txn_error(txn);
    if (err != 0) {
        return err;
    }
    if (!cJSON_IsObject(event)) {
        log_error(PREFIX, "refusing to append an event that is not a JSON object");
        return -EINVAL;
    }
    uint64_t last = 0;
    err = evlog_txn_last_seq(txn, &last);
    if (err != 0) {
        return err;
    }
    if (last >= SEQ_MAX) {
        log_error(PREFIX, "event seq space exhausted at %llu", (unsigned long long)last);
        return store_txn_fail(txn, -EOVERFLOW);
    }
    uint64_t seq = last + 1;
    set_seq(event, seq);
    cJSON *first = event->child;
    if (first == NULL || first->string == NULL || strcmp(first->string, "seq") != 0) {
        /* Only an allocation failure inside cJSON gets here. */
        remove_seq(event);
        return store_txn_fail(txn, -ENOMEM);
    }

    char *json = cJSON_PrintUnformatted(event);
    if (json == NULL) {
        remove_seq(event);
        return store_txn_fail(txn, -ENOMEM);
    }
    size_t len = strlen(json);
    if (len > max_event) {
        cJSON_free(json);
        remove_seq(event);
        log_warn(PREFIX, "event of %zu bytes exceeds the %zu-byte limit; not written", len,
                 max_event);
        return -EFBIG;
    }
    uint8_t key[8];
    store_u64_key(seq, key);
    err = store_put_append(txn, STORE_EVENTS, key, sizeof(key), json, len);
    cJSON_free(json);
    if (err == 0) {
        err = store_put(txn, STORE_META, last_seq_key, strlen(last_seq_key), key, sizeof(key));
    }
    if (err != 0) {
        return err;
    }
    if (seq_out != NULL) {
        *seq_out = seq;
    }
    return 0;
}

int evlog_read(struct store *s, uint64_t from_seq, size_t max,
               int (*cb)(uint64_t seq, const char *json, size_t len, void *ud), void *ud,
               uint64_t *next_seq)
{
    if (next_seq != NULL) {
        *next_seq = from_seq;
    }
    if (max == 0) {
        return 0;
    }
    struct store_txn *txn = NULL;
    int err = store_txn_begin(s, false, &txn);
    if (err != 0) {
        return err;
    }
    struct store_cursor *cur = NULL;
    err = store_cursor_open(txn, STORE_EVENTS, &cur);
    uint64_t next = from_seq;
    int result = 0;
    size_t n = 0;
    const void *key = NULL;
    const void *val = NULL;
    size_t klen = 0;
    size_t vlen = 0;
    if (err == 0) {
        uint8_t from[8];
        store_u64_key(from_seq, from);
        err = store_cursor_seek(cur, from, sizeof(from), &key, &klen, &val, &vlen);
    }
    while (err == 0) {
        if (klen != 8) {
            log_error(PREFIX, "event key of %zu bytes instead of 8; the store is damaged", klen);
            err = -EIO;
            break;
        }
        uint64_t seq = store_key_u64(key);
        result = cb(seq, val, vlen, ud);
        if (result != 0) {
            break;
        }
        next = seq + 1;
        if (++n == max) {
            break;
        }
        err = store_cursor_next(cur, &key, &klen, &val, &vlen);
    }
    /* A read txn has nothing to commit; aborting also frees the cursor. */
    store_txn_abort(txn);
    if (next_seq != NULL) {
        *next_seq = next;
    }
    if (err != 0 && err != -ENOENT) {
        return err;
    }
    return result;
}

int evlog_last_seq(struct store *s, uint64_t *out)
{
    *out = 0;
    struct store_txn *txn = NULL;
    int err = store_txn_begin(s, false, &txn);
    if (err != 0) {
        return err;
    }
    err = evlog_txn_last_seq(txn, out);
    store_txn_abort(txn);
    return err;
}

int evlog_parse_time(const char *s, uint64_t *wall_ms)
{
    int64_t ms = 0;
    int err = isotime_parse(s, ISOTIME_STRICT, &ms);
    if (err == 0) {
        *wall_ms = (uint64_t)ms;
    }
    return err;
}

struct prune_ctx {
    uint64_t max_age_ms;
    uint64_t max_count;
    uint64_t now_ms;
    uint64_t deleted; /* by the last committed batch */
    bool more;        /* the batch was full: run another */
    uint64_t untimed; /* events skipped for lack of a readable "time" */
};

/* Reads the "time" member of a stored event. */
static int event_time(const void *json, size_t len, uint64_t *ms)
{
    cJSON *ev = cJSON_ParseWithLength(json, len);
    if (ev == NULL) {
        return -EINVAL;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(ev, "time");
    int err = cJSON_IsString(t) ? evlog_parse_time(t->valuestring, ms) : -EINVAL;
    cJSON_Delete(ev);
    return err;
}

/*
 * store_write body: one batch. Retryable: it starts from the txn's view
 * and resets its outputs, so a MAP_FULL re-run recomputes the same batch.
 */
static int prune_batch(struct store_txn *txn, void *ud)
{
    struct prune_ctx *ctx = ud;
    ctx->deleted = 0;
    ctx->more = false;
    ctx->untimed = 0;

    uint64_t total = 0;
    int err = store_count_prefix(txn, STORE_EVENTS, NULL, 0, &total);
    if (err != 0 || total <= 1) {
        return err;
    }
    uint64_t over = ctx->max_count > 0 && total > ctx->max_count ? total - ctx->max_count : 0;

    struct store_cursor *cur = NULL;
    err = store_cursor_open(txn, STORE_EVENTS, &cur);
    if (err != 0) {
        return err;
    }
    const void *key = NULL;
    const void *val = NULL;
    size_t klen = 0;
    size_t vlen = 0;
    uint8_t newest[8];
    err = store_cursor_last(cur, &key, &klen, &val, &vlen);
    if (err != 0) {
        store_cursor_close(cur);
        return err == -ENOENT ? 0 : err;
    }
    if (klen != 8) {
        store_cursor_close(cur);
        log_error(PREFIX, "event key of %zu bytes instead of 8; the store is damaged", klen);
        return store_txn_fail(txn, -EIO);
    }
    memcpy(newest, key, 8);
    /* Ages count back from the newest event, not from a "now" that a clock
     * set far ahead (bad NTP, a restored VM) would make delete unconsumed
     * events (F14): a stopped or idle engine prunes nothing by age. */
    uint64_t ref = ctx->now_ms;
    uint64_t newest_time = 0;
    if (ctx->max_age_ms > 0 && event_time(val, vlen, &newest_time) == 0 && newest_time < ref) {
        ref = newest_time;
    }

    /* Keys are collected first and deleted after the cursor is closed:
     * borrowed pointers die at the first write. */
    uint8_t(*doomed)[8] = xmalloc(EVLOG_PRUNE_BATCH * sizeof(*doomed));
    size_t n = 0;
    uint64_t pos = 0;
    err = store_cursor_seek(cur, NULL, 0, &key, &klen, &val, &vlen);
    while (err == 0 && n < EVLOG_PRUNE_BATCH && pos < PRUNE_SCAN_MAX) {
        if (klen != 8 || memcmp(key, newest, 8) == 0) {
            break; /* the newest event always stays */
        }
        bool del = false;
        if (pos < over) {
            del = true;
        } else if (ctx->max_age_ms > 0) {
            uint64_t t = 0;
            if (event_time(val, vlen, &t) != 0) {
                ctx->untimed++;
            } else if (t < ref && ref - t > ctx->max_age_ms) {
                del = true;
            } else {
                break; /* young enough: so is (nearly) everything after it */
            }
        } else {
            break;
        }
        if (del) {
            memcpy(doomed[n++], key, 8);
        }
        pos++;
        err = store_cursor_next(cur, &key, &klen, &val, &vlen);
    }
    store_cursor_close(cur);
    if (err != 0 && err != -ENOENT) {
        free(doomed);
        return err;
    }
    err = 0;
    for (size_t i = 0; i < n && err == 0; i++) {
        err = store_del(txn, STORE_EVENTS, doomed[i], 8);
    }
    free(doomed);
    if (err != 0) {
        return err;
    }
    ctx->deleted = n;
    ctx->more = n == EVLOG_PRUNE_BATCH;
    return 0;
}

int evlog_prune_step(struct store *s, uint64_t max_age_ms, uint64_t max_count,
                     uint64_t now_wall_ms, struct evlog_prune_result *out)
{
    *out = (struct evlog_prune_result){0};
    if (max_age_ms == 0 && max_count == 0) {
        return 0;
    }
    struct prune_ctx ctx = {
        .max_age_ms = max_age_ms,
        .max_count = max_count,
        .now_ms = now_wall_ms,
    };
    int err = store_write(s, prune_batch, &ctx);
    if (err != 0) {
        return err;
    }
    out->deleted = ctx.deleted;
    out->untimed = ctx.untimed;
    out->more = ctx.more;
    return 0;
}

int evlog_prune(struct store *s, uint64_t max_age_ms, uint64_t max_count, uint64_t now_wall_ms,
                uint64_t *deleted)
{
    if (deleted != NULL) {
        *deleted = 0;
    }
    uint64_t total = 0;
    uint64_t untimed = 0;
    struct evlog_prune_result step;
    int err = 0;
    do {
        err = evlog_prune_step(s, max_age_ms, max_count, now_wall_ms, &step);
        if (err != 0) {
            break;
        }
        total += step.deleted;
        untimed = step.untimed > untimed ? step.untimed : untimed;
    } while (step.more);
    if (untimed > 0) {
        log_warn(PREFIX, "%llu event(s) have no readable \"time\" and are kept by age retention",
                 (unsigned long long)untimed);
    }
    if (total > 0) {
        log_debug(PREFIX, "retention deleted %llu event(s)", (unsigned long long)total);
    }
    if (deleted != NULL) {
        *deleted = total;
    }
    return err;
}

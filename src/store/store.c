/*
 * store: see store.h. Facts relied on here are in reliability.md §2.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define PREFIX "store"

/* Room for tables added by later schema versions without a reopen of old builds. */
#define STORE_MAX_DBS 16
/* Map sizes are kept page-aligned; 4 KiB divides every page size LMDB uses on Linux. */
#define MAP_ALIGN 4096ULL
/* Read-only open: 1 try + this many retries, 100 ms apart (§2.6). */
#define RO_OPEN_RETRIES 3
#define RO_OPEN_SLEEP_NS (100L * 1000L * 1000L)

static const char *const table_names[STORE_TABLE_COUNT] = {
    [STORE_META] = "meta",     [STORE_TRIG] = "trig",     [STORE_SNAP] = "snap",
    [STORE_EVENTS] = "events", [STORE_QUEUE] = "queue",   [STORE_OUTBOX] = "outbox",
    [STORE_DUE] = "due",       [STORE_DLQ] = "dlq",       [STORE_OWN] = "own",
    [STORE_SNAPDATA] = "snapdata",
};

static const char schema_key[] = "schema";

/* Txns open in this process, over every store: see store_live_txns. */
static unsigned live_txns;

struct store {
    MDB_env *env;
    char *dir;
    bool readonly;
    MDB_dbi dbi[STORE_TABLE_COUNT];
    /* Tables known to exist. Always all of them read-write; read-only stores
     * learn about tables the engine creates later (refresh_tables). */
    bool have[STORE_TABLE_COUNT];
    uint64_t map_size;
    uint64_t max_size;
    size_t max_key;
    unsigned open_txns; /* growth and MAP_RESIZED handling need zero */
    bool write_open;    /* at most one write txn per process */
    bool dry_run;       /* store_write aborts instead of committing */
    uint64_t commits;   /* write txns committed (store_stat): an unwritten one is not */
};

struct store_txn {
    struct store *store;
    MDB_txn *txn;
    bool write;
    bool map_full; /* MDB_MAP_FULL seen: store_write grows and retries */
    bool wrote;    /* a put or delete was attempted: only then is there anything to commit */
    int err;       /* sticky error */
    /* Which tables this txn may use: a handle opened after the txn began is
     * not valid in it (mdb_dbi_open: only after the opening txn commits). */
    bool have[STORE_TABLE_COUNT];
    struct store_cursor *cursors;
};

struct store_cursor {
    struct store_txn *txn;
    MDB_cursor *cur; /* NULL: the table does not exist yet, always at the end */
    enum store_table table;
    struct store_cursor *prev;
    struct store_cursor *next;
};

const char *store_table_name(enum store_table t)
{
    if ((unsigned)t >= STORE_TABLE_COUNT) {
        return "?";
    }
    return table_names[t];
}

/* Translates an LMDB return code into this module's codes (knot err_to_knot). */
static int mdb_to_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return -ENOENT;
    case MDB_KEYEXIST:
        return -EEXIST;
    case MDB_MAP_FULL:
        return STORE_EMAPFULL;
    case MDB_READERS_FULL:
        return STORE_EREADERS;
    case MDB_MAP_RESIZED:
        return -EAGAIN;
    case MDB_BAD_VALSIZE:
    case MDB_BAD_TXN:
    case MDB_BAD_DBI:
    case MDB_BAD_RSLOT:
        return -EINVAL;
    case MDB_TXN_FULL:
    case MDB_CURSOR_FULL:
    case MDB_PAGE_FULL:
        return -E2BIG;
    case MDB_DBS_FULL:
    case MDB_TLS_FULL:
        return -EMFILE;
    case MDB_PANIC:
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_VERSION_MISMATCH:
    case MDB_INVALID:
    case MDB_INCOMPATIBLE:
        return -EIO;
    default:
        /* LMDB passes system errors through as positive errno values. */
        return rc > 0 ? -rc : -EIO;
    }
}

/* Translates rc and logs it with LMDB's own text, which names the real cause. */
static int report(const struct store *s, int rc, const char *what)
{
    int err = mdb_to_err(rc);
    if (err == -EIO) {
        log_error(PREFIX, "%s: %s failed: %s (the database may be damaged; reopen or restore it)",
                  s->dir, what, mdb_strerror(rc));
    } else {
        log_error(PREFIX, "%s: %s failed: %s", s->dir, what, mdb_strerror(rc));
    }
    return err;
}

const char *store_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case STORE_EMAPFULL:
        return "LMDB map full";
    case STORE_EREADERS:
        return "LMDB reader table full";
    case STORE_ESCHEMA:
        return "store written by a newer pollen (schema too new)";
    default:
        break;
    }
    if (err >= MDB_KEYEXIST && err <= MDB_LAST_ERRCODE) {
        return mdb_strerror(err);
    }
    if (err < 0 && err > -4096) {
        return strerror(-err);
    }
    return "unknown error";
}

void store_u64_key(uint64_t v, uint8_t out[8])
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

uint64_t store_key_u64(const void *key)
{
    const uint8_t *p = key;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void warn_if_loose(const char *path, unsigned want)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return;
    }
    if ((st.st_mode & 077) != 0) {
        log_warn(PREFIX, "%s is open to group or others (mode %03o); it holds CRM data: chmod %03o",
                 path, (unsigned)(st.st_mode & 0777), want);
    }
}

static void refresh_map_size(struct store *s)
{
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) == 0) {
        s->map_size = info.me_mapsize;
    }
}

/* Raw txn begin that re-reads the map when another process has grown it. */
static int begin_raw(struct store *s, bool write, MDB_txn **out)
{
    int rc = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, out);
        if (rc != MDB_MAP_RESIZED) {
            break;
        }
        /* mdb_env_set_mapsize remaps: no txn of this process may be open. */
        if (s->open_txns > 0) {
            log_warn(PREFIX,
                     "%s: map grown by another process but %u txn(s) are open here; retry later",
                     s->dir, s->open_txns);
            return -EBUSY;
        }
        rc = mdb_env_set_mapsize(s->env, 0);
        if (rc != 0) {
            return report(s, rc, "re-reading the map size");
        }
        refresh_map_size(s);
        log_debug(PREFIX, "%s: map grown by another process, now %llu bytes", s->dir,
                  (unsigned long long)s->map_size);
        rc = MDB_MAP_RESIZED;
    }
    if (rc != 0) {
        return report(s, rc, write ? "beginning a write txn" : "beginning a read txn");
    }
    return 0;
}

/*
 * Read-only stores: opens tables that did not exist at the last look (the
 * engine may have created them since). Done in its own short read txn, which
 * is committed so the handles stay valid for the txns that follow.
 */
static int refresh_tables(struct store *s)
{
    bool missing = false;
    for (int i = 0; i < STORE_TABLE_COUNT; i++) {
        missing = missing || !s->have[i];
    }
    if (!missing) {
        return 0;
    }
    MDB_txn *t = NULL;
    int rc = begin_raw(s, false, &t);
    if (rc != 0) {
        return rc;
    }
    bool found[STORE_TABLE_COUNT] = {false};
    for (int i = 0; i < STORE_TABLE_COUNT; i++) {
        if (s->have[i]) {
            continue;
        }
        rc = mdb_dbi_open(t, table_names[i], 0, &s->dbi[i]);
        if (rc == MDB_NOTFOUND) {
            continue;
        }
        if (rc != 0) {
            /* The abort closes the handles opened above: they stay unknown. */
            mdb_txn_abort(t);
            return report(s, rc, "opening a table");
        }
        found[i] = true;
    }
    rc = mdb_txn_commit(t);
    if (rc != 0) {
        return report(s, rc, "committing table handles");
    }
    for (int i = 0; i < STORE_TABLE_COUNT; i++) {
        s->have[i] = s->have[i] || found[i];
    }
    return 0;
}

int store_txn_begin(struct store *s, bool write, struct store_txn **out)
{
    *out = NULL;
    if (write && s->readonly) {
        log_error(PREFIX, "%s: write txn on a read-only store", s->dir);
        return -EROFS;
    }
    if (write && s->write_open) {
        /* A second write txn in one process would wait on LMDB's writer mutex forever. */
        log_error(PREFIX, "%s: a write txn is already open in this process", s->dir);
        return -EDEADLK;
    }
    if (s->readonly) {
        int rc = refresh_tables(s);
        if (rc != 0) {
            return rc;
        }
    }
    MDB_txn *t = NULL;
    int rc = begin_raw(s, write, &t);
    if (rc != 0) {
        return rc;
    }
    struct store_txn *txn = xcalloc(1, sizeof(*txn));
    txn->store = s;
    txn->txn = t;
    txn->write = write;
    memcpy(txn->have, s->have, sizeof(txn->have));
    s->open_txns++;
    live_txns++;
    if (write) {
        s->write_open = true;
    }
    *out = txn;
    return 0;
}

static void close_cursors(struct store_txn *txn)
{
    while (txn->cursors != NULL) {
        store_cursor_close(txn->cursors);
    }
}

static void txn_release(struct store_txn *txn)
{
    struct store *s = txn->store;
    s->open_txns--;
    live_txns--;
    if (txn->write) {
        s->write_open = false;
    }
    free(txn);
}

void store_txn_abort(struct store_txn *txn)
{
    if (txn == NULL) {
        return;
    }
    /* Cursors go first: read-txn cursors are not freed by LMDB at txn end. */
    close_cursors(txn);
    mdb_txn_abort(txn->txn);
    txn_release(txn);
}

int store_txn_commit(struct store_txn *txn)
{
    if (txn->err != 0) {
        int err = txn->err;
        store_txn_abort(txn);
        return err;
    }
    struct store *s = txn->store;
    if (txn->write && !txn->wrote) {
        /* Nothing written (a page in which nothing changed): end it without a
         * commit, so no meta page is written and nothing is fsynced. */
        store_txn_abort(txn);
        return 0;
    }
    close_cursors(txn);
    /* mdb_txn_commit frees the txn even when it fails: no abort after this. */
    int rc = mdb_txn_commit(txn->txn);
    bool write = txn->write;
    txn_release(txn);
    if (rc == 0 && write) {
        s->commits++;
    }
    if (rc == MDB_MAP_FULL) {
        /* mdb_freelist_save allocates pages at commit; store_write grows and retries. */
        log_debug(PREFIX, "%s: map full at commit", s->dir);
        return STORE_EMAPFULL;
    }
    if (rc != 0) {
        return report(s, rc, write ? "committing a write txn" : "ending a read txn");
    }
    return 0;
}

uint64_t store_txn_id(const struct store_txn *txn)
{
    return (uint64_t)mdb_txn_id(txn->txn);
}

int store_txn_error(const struct store_txn *txn)
{
    return txn->err;
}

int store_txn_fail(struct store_txn *txn, int err)
{
    if (txn->err == 0 && err != 0) {
        txn->err = err;
    }
    return txn->err;
}

/* Records an LMDB failure of an operation as the sticky error. */
static int op_fail(struct store_txn *txn, int rc, const char *what, enum store_table t)
{
    if (rc == MDB_MAP_FULL) {
        txn->map_full = true;
        return store_txn_fail(txn, STORE_EMAPFULL);
    }
    char buf[96];
    snprintf(buf, sizeof(buf), "%s in table %s", what, store_table_name(t));
    return store_txn_fail(txn, report(txn->store, rc, buf));
}

/* Checks shared by every operation; returns the (possibly new) sticky error. */
static int op_check(struct store_txn *txn, enum store_table t, size_t klen, bool need_key,
                    bool writes)
{
    if (txn->err != 0) {
        return txn->err;
    }
    const struct store *s = txn->store;
    if ((unsigned)t >= STORE_TABLE_COUNT) {
        log_error(PREFIX, "%s: no table number %d", s->dir, (int)t);
        return store_txn_fail(txn, -EINVAL);
    }
    if (writes && !txn->write) {
        log_error(PREFIX, "%s: write to table %s in a read txn", s->dir, table_names[t]);
        return store_txn_fail(txn, -EROFS);
    }
    txn->wrote = txn->wrote || writes;
    if (need_key && (klen == 0 || klen > s->max_key)) {
        /* LMDB would answer MDB_BAD_VALSIZE; refuse before it gets there. */
        log_error(PREFIX, "%s: key of %zu bytes for table %s is outside 1..%zu bytes", s->dir,
                  klen, table_names[t], s->max_key);
        return store_txn_fail(txn, -EINVAL);
    }
    return 0;
}

int store_get(struct store_txn *txn, enum store_table t, const void *key, size_t klen,
              const void **val, size_t *vlen)
{
    int err = op_check(txn, t, klen, true, false);
    if (err != 0) {
        return err;
    }
    if (!txn->have[t]) {
        return -ENOENT;
    }
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
    MDB_val v = {0};
    int rc = mdb_get(txn->txn, txn->store->dbi[t], &k, &v);
    if (rc == MDB_NOTFOUND) {
        return -ENOENT;
    }
    if (rc != 0) {
        return op_fail(txn, rc, "get", t);
    }
    if (val != NULL) {
        *val = v.mv_data;
    }
    if (vlen != NULL) {
        *vlen = v.mv_size;
    }
    return 0;
}

static int put_flags(struct store_txn *txn, enum store_table t, const void *key, size_t klen,
                     const void *val, size_t vlen, unsigned flags)
{
    int err = op_check(txn, t, klen, true, true);
    if (err != 0) {
        return err;
    }
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
    MDB_val v = {.mv_size = vlen, .mv_data = vlen > 0 ? (void *)val : (void *)""};
    int rc = mdb_put(txn->txn, txn->store->dbi[t], &k, &v, flags);
    if (rc == MDB_KEYEXIST && (flags & MDB_APPEND)) {
        log_error(PREFIX, "%s: append to table %s with a key that does not sort last",
                  txn->store->dir, table_names[t]);
        return store_txn_fail(txn, -EEXIST);
    }
    if (rc != 0) {
        return op_fail(txn, rc, (flags & MDB_APPEND) ? "append" : "put", t);
    }
    return 0;
}

int store_put(struct store_txn *txn, enum store_table t, const void *key, size_t klen,
              const void *val, size_t vlen)
{
    return put_flags(txn, t, key, klen, val, vlen, 0);
}

int store_put_append(struct store_txn *txn, enum store_table t, const void *key, size_t klen,
                     const void *val, size_t vlen)
{
    return put_flags(txn, t, key, klen, val, vlen, MDB_APPEND);
}

int store_del(struct store_txn *txn, enum store_table t, const void *key, size_t klen)
{
    int err = op_check(txn, t, klen, true, true);
    if (err != 0) {
        return err;
    }
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
    int rc = mdb_del(txn->txn, txn->store->dbi[t], &k, NULL);
    if (rc == MDB_NOTFOUND) {
        return -ENOENT;
    }
    if (rc != 0) {
        return op_fail(txn, rc, "delete", t);
    }
    return 0;
}

int store_cursor_open(struct store_txn *txn, enum store_table t, struct store_cursor **out)
{
    *out = NULL;
    int err = op_check(txn, t, 0, false, false);
    if (err != 0) {
        return err;
    }
    MDB_cursor *c = NULL;
    if (txn->have[t]) {
        int rc = mdb_cursor_open(txn->txn, txn->store->dbi[t], &c);
        if (rc != 0) {
            return op_fail(txn, rc, "opening a cursor", t);
        }
    }
    struct store_cursor *cur = xcalloc(1, sizeof(*cur));
    cur->txn = txn;
    cur->cur = c;
    cur->table = t;
    cur->next = txn->cursors;
    if (txn->cursors != NULL) {
        txn->cursors->prev = cur;
    }
    txn->cursors = cur;
    *out = cur;
    return 0;
}

void store_cursor_close(struct store_cursor *cur)
{
    if (cur == NULL) {
        return;
    }
    if (cur->cur != NULL) {
        mdb_cursor_close(cur->cur);
    }
    if (cur->prev != NULL) {
        cur->prev->next = cur->next;
    } else {
        cur->txn->cursors = cur->next;
    }
    if (cur->next != NULL) {
        cur->next->prev = cur->prev;
    }
    free(cur);
}

static int cursor_get(struct store_cursor *cur, MDB_val *k, MDB_cursor_op op, const void **key_out,
                      size_t *klen_out, const void **val_out, size_t *vlen_out)
{
    struct store_txn *txn = cur->txn;
    if (txn->err != 0) {
        return txn->err;
    }
    if (cur->cur == NULL) {
        return -ENOENT;
    }
    MDB_val v = {0};
    int rc = mdb_cursor_get(cur->cur, k, &v, op);
    if (rc == MDB_NOTFOUND) {
        return -ENOENT;
    }
    if (rc != 0) {
        return op_fail(txn, rc, "cursor read", cur->table);
    }
    if (key_out != NULL) {
        *key_out = k->mv_data;
    }
    if (klen_out != NULL) {
        *klen_out = k->mv_size;
    }
    if (val_out != NULL) {
        *val_out = v.mv_data;
    }
    if (vlen_out != NULL) {
        *vlen_out = v.mv_size;
    }
    return 0;
}

int store_cursor_seek(struct store_cursor *cur, const void *key, size_t klen, const void **key_out,
                      size_t *klen_out, const void **val_out, size_t *vlen_out)
{
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
    if (klen == 0) {
        /* LMDB refuses empty keys; "first key >= nothing" is the first key. */
        return cursor_get(cur, &k, MDB_FIRST, key_out, klen_out, val_out, vlen_out);
    }
    int err = op_check(cur->txn, cur->table, klen, true, false);
    if (err != 0) {
        return err;
    }
    return cursor_get(cur, &k, MDB_SET_RANGE, key_out, klen_out, val_out, vlen_out);
}

int store_cursor_next(struct store_cursor *cur, const void **key_out, size_t *klen_out,
                      const void **val_out, size_t *vlen_out)
{
    MDB_val k = {0};
    return cursor_get(cur, &k, MDB_NEXT, key_out, klen_out, val_out, vlen_out);
}

int store_cursor_last(struct store_cursor *cur, const void **key_out, size_t *klen_out,
                      const void **val_out, size_t *vlen_out)
{
    MDB_val k = {0};
    return cursor_get(cur, &k, MDB_LAST, key_out, klen_out, val_out, vlen_out);
}

int store_cursor_del(struct store_cursor *cur)
{
    struct store_txn *txn = cur->txn;
    int err = op_check(txn, cur->table, 0, false, true);
    if (err != 0) {
        return err;
    }
    if (cur->cur == NULL) {
        return -ENOENT;
    }
    int rc = mdb_cursor_del(cur->cur, 0);
    if (rc != 0) {
        return op_fail(txn, rc, "cursor delete", cur->table);
    }
    return 0;
}

int store_sweep_batch(struct store_txn *txn, enum store_table t, size_t max,
                      struct store_sweep *sw,
                      bool (*doomed)(const void *key, size_t klen, const void *val, size_t vlen,
                                     void *ud),
                      void *ud)
{
    struct store_cursor *cur = NULL;
    const void *key = NULL;
    const void *val = NULL;
    size_t klen = 0;
    size_t vlen = 0;
    size_t seen = 0;

    sw->next_len = 0;
    sw->more = false;
    sw->deleted = 0;
    int rc = store_cursor_open(txn, t, &cur);
    if (rc != 0) {
        return rc;
    }
    rc = store_cursor_seek(cur, sw->after, sw->after_len, &key, &klen, &val, &vlen);
    if (rc == 0 && sw->after_len > 0 && klen == sw->after_len &&
        memcmp(key, sw->after, klen) == 0) {
        rc = store_cursor_next(cur, &key, &klen, &val, &vlen);
    }
    while (rc == 0 && seen < max) {
        /* LMDB keys are at most 511 bytes: next always has room. */
        sw->next_len = klen < sizeof(sw->next) ? klen : sizeof(sw->next);
        memcpy(sw->next, key, sw->next_len);
        seen++;
        if (doomed(key, klen, val, vlen, ud)) {
            rc = store_cursor_del(cur);
            if (rc != 0) {
                break;
            }
            sw->deleted++;
        }
        rc = store_cursor_next(cur, &key, &klen, &val, &vlen);
    }
    store_cursor_close(cur);
    if (rc == 0) {
        sw->more = true; /* stopped at max with entries left */
    }
    return rc == -ENOENT ? 0 : rc;
}

int store_count_prefix(struct store_txn *txn, enum store_table t, const void *prefix, size_t plen,
                       uint64_t *count)
{
    *count = 0;
    int err = op_check(txn, t, plen, plen > 0, false);
    if (err != 0) {
        return err;
    }
    if (!txn->have[t]) {
        return 0;
    }
    if (plen == 0) {
        MDB_stat st;
        int rc = mdb_stat(txn->txn, txn->store->dbi[t], &st);
        if (rc != 0) {
            return op_fail(txn, rc, "stat", t);
        }
        *count = st.ms_entries;
        return 0;
    }
    struct store_cursor *cur = NULL;
    err = store_cursor_open(txn, t, &cur);
    if (err != 0) {
        return err;
    }
    const void *k = NULL;
    size_t klen = 0;
    uint64_t n = 0;
    err = store_cursor_seek(cur, prefix, plen, &k, &klen, NULL, NULL);
    while (err == 0 && klen >= plen && memcmp(k, prefix, plen) == 0) {
        n++;
        err = store_cursor_next(cur, &k, &klen, NULL, NULL);
    }
    store_cursor_close(cur);
    if (err != 0 && err != -ENOENT) {
        return err;
    }
    *count = n;
    return 0;
}

/* Doubles the map (capped at max_size) after MDB_MAP_FULL: the slmdb recipe (§2.2). */
static int grow(struct store *s)
{
    if (s->map_size >= s->max_size) {
        log_error(PREFIX, "%s: database full at its %llu-byte cap (max_size); writes fail until "
                          "retention frees space or max_size is raised",
                  s->dir, (unsigned long long)s->max_size);
        return -ENOSPC;
    }
    /* Remapping under an open txn corrupts in-process state (py-lmdb#379). */
    if (s->open_txns > 0) {
        log_error(PREFIX, "%s: cannot grow the map while %u txn(s) are open", s->dir, s->open_txns);
        return -EBUSY;
    }
    uint64_t next = s->map_size * 2;
    if (next > s->max_size || next < s->map_size) {
        next = s->max_size;
    }
    int rc = mdb_env_set_mapsize(s->env, (size_t)next);
    if (rc != 0) {
        return report(s, rc, "growing the map");
    }
    uint64_t old = s->map_size;
    refresh_map_size(s);
    log_info(PREFIX, "%s: map full, grew it from %llu to %llu bytes", s->dir,
             (unsigned long long)old, (unsigned long long)s->map_size);
    return 0;
}

int store_write(struct store *s, int (*fn)(struct store_txn *txn, void *ud), void *ud)
{
    for (;;) {
        struct store_txn *txn = NULL;
        int rc = store_txn_begin(s, true, &txn);
        if (rc != 0) {
            return rc;
        }
        int frc = fn(txn, ud);
        if (txn->map_full) {
            /* Whatever fn returned, it ran out of room: discard and retry bigger. */
            store_txn_abort(txn);
        } else if (frc != 0) {
            store_txn_abort(txn);
            return frc;
        } else if (s->dry_run) {
            rc = store_txn_error(txn);
            store_txn_abort(txn);
            return rc;
        } else {
            rc = store_txn_commit(txn);
            if (rc != STORE_EMAPFULL) {
                return rc;
            }
        }
        rc = grow(s);
        if (rc != 0) {
            return rc;
        }
    }
}

void store_set_dry_run(struct store *s, bool on)
{
    s->dry_run = on;
}

int store_reader_check(struct store *s)
{
    int dead = 0;
    int rc = mdb_reader_check(s->env, &dead);
    if (rc != 0) {
        return report(s, rc, "checking for stale readers");
    }
    if (dead > 0) {
        log_info(PREFIX, "%s: cleared %d reader slot(s) left by dead processes", s->dir, dead);
    }
    return dead;
}

/* mdb_reader_list callback: one line per slot held by a process, "pid thread txnid|-". */
static int count_reader(const char *msg, void *ctx)
{
    unsigned *used = ctx;
    const char *p = msg;
    while (*p == ' ') {
        p++;
    }
    if (*p < '0' || *p > '9') {
        return 0; /* header or "(no active readers)" */
    }
    const char *last = strrchr(msg, ' ');
    if (last != NULL && last[1] != '-') {
        (*used)++;
    }
    return 0;
}

int store_stat(struct store *s, struct store_stat *out)
{
    memset(out, 0, sizeof(*out));
    MDB_envinfo info;
    MDB_stat est;
    int rc = mdb_env_info(s->env, &info);
    if (rc == 0) {
        rc = mdb_env_stat(s->env, &est);
    }
    if (rc != 0) {
        return report(s, rc, "reading env info");
    }
    out->map_size = info.me_mapsize;
    out->max_size = s->max_size;
    out->page_size = est.ms_psize;
    out->pages_used = (uint64_t)info.me_last_pgno + 1;
    out->last_txnid = info.me_last_txnid;
    out->commits = s->commits;
    out->readers_max = info.me_maxreaders;

    mdb_filehandle_t fd;
    struct stat st;
    if (mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, &st) == 0) {
        out->file_size = (uint64_t)st.st_size;
    }

    struct store_txn *txn = NULL;
    int err = store_txn_begin(s, false, &txn);
    if (err != 0) {
        return err;
    }
    for (int i = 0; i < STORE_TABLE_COUNT && err == 0; i++) {
        err = store_count_prefix(txn, (enum store_table)i, NULL, 0, &out->entries[i]);
        MDB_stat ts;
        if (err == 0 && txn->have[i] && mdb_stat(txn->txn, s->dbi[i], &ts) == 0) {
            out->pages[i] = (uint64_t)ts.ms_branch_pages + ts.ms_leaf_pages + ts.ms_overflow_pages;
        }
    }
    store_txn_abort(txn);
    if (err != 0) {
        return err;
    }
    /* After our own txn ended, so our slot is not counted. */
    unsigned used = 0;
    mdb_reader_list(s->env, count_reader, &used);
    out->readers_used = used;
    return 0;
}

/* Parses the schema value: ASCII decimal, at most 9 digits. */
static int parse_schema(const void *val, size_t len, long *out)
{
    if (len == 0 || len > 9) {
        return -EINVAL;
    }
    long v = 0;
    const char *p = val;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -EINVAL;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/* Checks meta.schema; writes it when missing and txn is a write txn. */
static int check_schema(struct store_txn *txn)
{
    struct store *s = txn->store;
    const void *val = NULL;
    size_t len = 0;
    int err = store_get(txn, STORE_META, schema_key, strlen(schema_key), &val, &len);
    if (err == -ENOENT) {
        if (!txn->write) {
            return 0; /* the engine writes it on its first open */
        }
        char buf[16];
        int n = snprintf(buf, sizeof(buf), "%d", STORE_SCHEMA_VERSION);
        return store_put(txn, STORE_META, schema_key, strlen(schema_key), buf, (size_t)n);
    }
    if (err != 0) {
        return err;
    }
    long v = 0;
    if (parse_schema(val, len, &v) != 0 || v < 1) {
        log_error(PREFIX, "%s: meta.schema holds an unreadable version; the store is damaged",
                  s->dir);
        return -EIO;
    }
    if (v > STORE_SCHEMA_VERSION) {
        log_error(PREFIX, "%s: store has schema version %ld but this pollen understands up to %d; "
                          "upgrade pollen (or point it at another state dir)",
                  s->dir, v, STORE_SCHEMA_VERSION);
        return STORE_ESCHEMA;
    }
    if (v < STORE_SCHEMA_VERSION && txn->write) {
        /* 1 -> 2: snapshot entries of format 1 are migrated on their next
         * poll (snapshot.c); only the mark moves now, so older pollens stop. */
        log_info(PREFIX, "%s: store schema %ld raised to %d", s->dir, v, STORE_SCHEMA_VERSION);
        char buf[16];
        int n = snprintf(buf, sizeof(buf), "%d", STORE_SCHEMA_VERSION);
        return store_put(txn, STORE_META, schema_key, strlen(schema_key), buf, (size_t)n);
    }
    return 0;
}

/* store_write body of a read-write open: creates the tables and the schema mark. */
static int open_tables_rw(struct store_txn *txn, void *ud)
{
    struct store *s = txn->store;
    for (int i = 0; i < STORE_TABLE_COUNT; i++) {
        int rc = mdb_dbi_open(txn->txn, table_names[i], MDB_CREATE, &s->dbi[i]);
        if (rc != 0) {
            return op_fail(txn, rc, "creating", (enum store_table)i);
        }
        s->have[i] = true;
        txn->have[i] = true;
    }
    txn->wrote = true; /* the new handles are valid for later txns only once committed */
    return check_schema(txn);
}

static int open_tables_ro(struct store *s)
{
    struct store_txn *txn = NULL;
    int err = store_txn_begin(s, false, &txn); /* opens the tables that exist */
    if (err != 0) {
        return err;
    }
    err = check_schema(txn);
    store_txn_abort(txn);
    return err;
}

/* Permanent open failures; anything else may be a race with another opener (§2.6). */
static bool open_error_is_permanent(int rc)
{
    switch (rc) {
    case ENOENT:
    case EACCES:
    case EPERM:
    case ENOTDIR:
    case ENAMETOOLONG:
    case ELOOP:
    case ENOMEM:
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE:
        return true;
    default:
        return false;
    }
}

static int env_open_once(struct store *s, uint64_t map_size)
{
    int rc = mdb_env_create(&s->env);
    if (rc != 0) {
        s->env = NULL;
        return rc;
    }
    rc = mdb_env_set_maxdbs(s->env, STORE_MAX_DBS);
    if (rc == 0) {
        /* 0 before open: a reader takes the size recorded by the writer. */
        rc = mdb_env_set_mapsize(s->env, s->readonly ? 0 : (size_t)map_size);
    }
    if (rc == 0) {
        /* NORDAHEAD: a poll reads the index at random; kernel readahead would
         * fault whole neighbourhoods of record copies into our RSS. */
        unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (s->readonly ? MDB_RDONLY : 0);
        rc = mdb_env_open(s->env, s->dir, flags, 0600);
    }
    if (rc != 0) {
        /* A failed mdb_env_open leaves a handle that must be closed (lmdb.h). */
        mdb_env_close(s->env);
        s->env = NULL;
    }
    return rc;
}

static int env_open(struct store *s, uint64_t map_size)
{
    int rc = 0;
    for (int attempt = 0;; attempt++) {
        rc = env_open_once(s, map_size);
        if (rc == 0 || !s->readonly || attempt >= RO_OPEN_RETRIES || open_error_is_permanent(rc)) {
            break;
        }
        log_debug(PREFIX, "%s: open failed (%s), retrying", s->dir, mdb_strerror(rc));
        struct timespec ts = {.tv_sec = 0, .tv_nsec = RO_OPEN_SLEEP_NS};
        nanosleep(&ts, NULL);
    }
    if (rc != 0) {
        int err = mdb_to_err(rc);
        log_error(PREFIX, "%s: cannot open the LMDB environment%s: %s", s->dir,
                  s->readonly ? " read-only" : "", mdb_strerror(rc));
        return err;
    }
    return 0;
}

static uint64_t align_up(uint64_t v)
{
    return (v + MAP_ALIGN - 1) / MAP_ALIGN * MAP_ALIGN;
}

/*
 * The state directory holds CRM data and the engine's lock: it must be a
 * real directory (not a symlink another user could point elsewhere) owned
 * by the user running pollen (F23). Returns 0, or -ELOOP / -EPERM /
 * -ENOTDIR / -errno after an error line naming the directory.
 */
static int check_state_dir(const char *dir)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(path)) {
        return -ENAMETOOLONG;
    }
    memcpy(path, dir, n + 1);
    /* "state/" would make lstat follow a symlink: look at "state". */
    while (n > 1 && path[n - 1] == '/') {
        path[--n] = '\0';
    }
    struct stat st;
    if (lstat(path, &st) != 0) {
        int err = -errno;
        log_error(PREFIX, "%s: cannot access the state directory: %s", dir, strerror(errno));
        return err;
    }
    if (S_ISLNK(st.st_mode)) {
        log_error(PREFIX, "%s: the state directory is a symlink; refusing to use it (give the "
                          "real path in [engine] state_dir)",
                  dir);
        return -ELOOP;
    }
    if (!S_ISDIR(st.st_mode)) {
        log_error(PREFIX, "%s: the state directory is not a directory", dir);
        return -ENOTDIR;
    }
    if (st.st_uid != geteuid()) {
        log_error(PREFIX, "%s: the state directory belongs to uid %u, not to this user (uid %u); "
                          "refusing to use it: it holds CRM data",
                  dir, (unsigned)st.st_uid, (unsigned)geteuid());
        return -EPERM;
    }
    return 0;
}

/* Reads who holds the lock from its file: "pid N started TIME". */
static void read_holder(int fd, char *holder, size_t size)
{
    ssize_t got = pread(fd, holder, size - 1, 0);
    holder[got > 0 ? (size_t)got : 0] = '\0';
    holder[strcspn(holder, "\n")] = '\0';
    if (holder[0] == '\0') {
        snprintf(holder, size, "a process that has not written its pid yet");
    }
}

int store_lock_engine(const char *dir, int *fd_out, char *holder, size_t holder_size)
{
    *fd_out = -1;
    holder[0] = '\0';
    int err = util_mkdir_p(dir, 0700);
    if (err != 0) {
        log_error(PREFIX, "%s: cannot create the state directory: %s", dir, strerror(-err));
        return err;
    }
    err = check_state_dir(dir);
    if (err != 0) {
        return err;
    }
    char *path = xasprintf("%s/engine.lock", dir);
    /* CLOEXEC: a spawned action must not inherit (and so keep) the lock. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        err = -errno;
        log_error(PREFIX, "cannot open %s: %s", path, strerror(errno));
        free(path);
        return err;
    }
    free(path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        err = errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
        read_holder(fd, holder, holder_size);
        close(fd);
        return err;
    }
    char when[32];
    util_iso8601(util_wall_ms(), when);
    char line[96];
    int len = snprintf(line, sizeof(line), "pid %ld started %s\n", (long)getpid(), when);
    /* Informative only: the flock is the lock, so a failed write is no failure. */
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)len, 0) != len) {
        log_warn(PREFIX, "%s: cannot write the pid into engine.lock: %s", dir, strerror(errno));
    }
    *fd_out = fd;
    return 0;
}

void store_unlock_engine(int fd)
{
    if (fd >= 0) {
        close(fd); /* releases the flock; the file stays for the next engine */
    }
}

bool store_exists(const char *dir)
{
    char *path = xasprintf("%s/data.mdb", dir);
    struct stat st;
    bool ok = stat(path, &st) == 0;
    free(path);
    return ok;
}

unsigned store_live_txns(void)
{
    return live_txns;
}

/* One line of mdb_reader_list ("pid thread txnid"): true for a slot holding a
 * txn (the header line, and slots without a txn ending in "-", do not parse). */
static bool parse_reader(const char *msg, struct store_reader *r)
{
    long pid = 0;
    unsigned long long txnid = 0;
    char thread[64];
    if (sscanf(msg, " %ld %63s %llu", &pid, thread, &txnid) != 3) {
        return false;
    }
    *r = (struct store_reader){.pid = pid, .txnid = txnid};
    return true;
}

/* mdb_reader_list callback: keeps the slot with the oldest txn. */
static int oldest_reader(const char *msg, void *ctx)
{
    struct store_reader *r = ctx;
    struct store_reader one;
    if (parse_reader(msg, &one) && (r->pid == 0 || one.txnid < r->txnid)) {
        *r = one;
    }
    return 0;
}

int store_oldest_reader(struct store *s, struct store_reader *out)
{
    *out = (struct store_reader){0};
    MDB_envinfo info;
    int rc = mdb_env_info(s->env, &info);
    if (rc != 0) {
        return report(s, rc, "reading env info");
    }
    mdb_reader_list(s->env, oldest_reader, out);
    out->newest_txnid = info.me_last_txnid;
    return 0;
}

struct reader_list {
    struct store_reader *v;
    size_t max;
    size_t count;
};

/* mdb_reader_list callback: every slot that holds a txn, in table order. */
static int list_reader(const char *msg, void *ctx)
{
    struct reader_list *l = ctx;
    struct store_reader one;
    if (!parse_reader(msg, &one)) {
        return 0;
    }
    if (l->count < l->max) {
        l->v[l->count] = one;
    }
    l->count++;
    return 0;
}

int store_readers(struct store *s, struct store_reader *out, size_t max, size_t *count)
{
    *count = 0;
    MDB_envinfo info;
    int rc = mdb_env_info(s->env, &info);
    if (rc != 0) {
        return report(s, rc, "reading env info");
    }
    struct reader_list l = {out, max, 0};
    mdb_reader_list(s->env, list_reader, &l);
    for (size_t i = 0; i < l.count && i < max; i++) {
        out[i].newest_txnid = info.me_last_txnid;
    }
    *count = l.count;
    return 0;
}

int store_open(const char *dir, const struct store_options *opts, struct store **out)
{
    *out = NULL;
    struct store_options o = {0};
    if (opts != NULL) {
        o = *opts;
    }
    uint64_t map_size = align_up(o.map_size ? o.map_size : STORE_DEFAULT_MAP_SIZE);
    uint64_t max_size = o.max_size ? o.max_size : STORE_DEFAULT_MAX_SIZE;
    max_size = max_size / MAP_ALIGN * MAP_ALIGN;
    if (max_size < map_size) {
        log_warn(PREFIX, "%s: max_size %llu is below map_size %llu; using %llu", dir,
                 (unsigned long long)max_size, (unsigned long long)map_size,
                 (unsigned long long)map_size);
        max_size = map_size;
    }

    struct store *s = xcalloc(1, sizeof(*s));
    s->dir = xstrdup(dir);
    s->readonly = o.readonly;
    s->max_size = max_size;
    int err = 0;

    char *data_path = xasprintf("%s/data.mdb", dir);
    char *lock_path = xasprintf("%s/lock.mdb", dir);
    if (s->readonly) {
        /* Checked first so that a reader never leaves a lone lock.mdb behind. */
        struct stat st;
        if (stat(data_path, &st) != 0) {
            err = -errno;
            /* No store yet is the caller's call: tail and dlq list treat
             * it as "nothing recorded", so no error line for it here. */
            if (err != -ENOENT) {
                log_error(PREFIX, "%s: cannot access %s: %s", dir, data_path, strerror(-err));
            }
            goto fail_open;
        }
    } else {
        err = util_mkdir_p(dir, 0700);
        if (err != 0) {
            log_error(PREFIX, "%s: cannot create the state directory: %s", dir, strerror(-err));
            goto fail_open;
        }
    }
    /* Writers only: a reader (tail, dlq list) run by root or an operator on
     * the engine's directory only reads what it is already allowed to. */
    err = s->readonly ? 0 : check_state_dir(dir);
    if (err != 0) {
        goto fail_open;
    }
    warn_if_loose(dir, 0700);

    err = env_open(s, map_size);
    if (err != 0) {
        goto fail_open;
    }
    warn_if_loose(data_path, 0600);
    warn_if_loose(lock_path, 0600);

    /* LMDB opens data.mdb without O_CLOEXEC (§2.9): keep it out of spawned children. */
    mdb_filehandle_t fd;
    if (mdb_env_get_fd(s->env, &fd) == 0) {
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) {
            err = -errno;
            log_error(PREFIX, "%s: cannot set FD_CLOEXEC on data.mdb: %s", dir, strerror(errno));
            goto fail_open;
        }
    }
    s->max_key = (size_t)mdb_env_get_maxkeysize(s->env);
    refresh_map_size(s);

    err = store_reader_check(s);
    if (err < 0) {
        goto fail_open;
    }
    err = s->readonly ? open_tables_ro(s) : store_write(s, open_tables_rw, NULL);
    if (err != 0) {
        goto fail_open;
    }
    free(data_path);
    free(lock_path);
    log_debug(PREFIX, "%s: opened %s, map %llu bytes, cap %llu", dir,
              s->readonly ? "read-only" : "read-write", (unsigned long long)s->map_size,
              (unsigned long long)s->max_size);
    *out = s;
    return 0;

fail_open:
    free(data_path);
    free(lock_path);
    store_close(s);
    return err;
}

void store_close(struct store *s)
{
    if (s == NULL) {
        return;
    }
    if (s->open_txns > 0) {
        /* Programmer error: LMDB requires every txn to end before env close. */
        log_error(PREFIX, "%s: closing with %u txn(s) still open", s->dir, s->open_txns);
    }
    if (s->env != NULL) {
        mdb_env_close(s->env);
    }
    free(s->dir);
    free(s);
}

/*
 * Unit tests for store.c: open modes and permissions, read-only opens of
 * missing and empty stores, KV and cursor operations, the sticky error, map
 * growth inside store_write (tiny maps, like knot's tests), stale readers,
 * and error texts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "testlib.h"
#include "util.h"

#define SMALL_MAP (64 * 1024)

static char *tmp_path(const char *name)
{
    return test_tmp_path("test_store", name);
}

static bool path_exists(const char *dir, const char *file)
{
    char *p = file ? xasprintf("%s/%s", dir, file) : xstrdup(dir);
    struct stat st;
    bool ok = stat(p, &st) == 0;
    free(p);
    return ok;
}

static unsigned path_mode(const char *dir, const char *file)
{
    char *p = file ? xasprintf("%s/%s", dir, file) : xstrdup(dir);
    struct stat st;
    unsigned mode = stat(p, &st) == 0 ? (unsigned)(st.st_mode & 0777) : 0xffff;
    free(p);
    return mode;
}

static struct store *open_small(const char *dir, uint64_t map, uint64_t max)
{
    struct store_options o = {.map_size = map, .max_size = max};
    struct store *s = NULL;
    int rc = store_open(dir, &o, &s);
    CHECK_INT(rc, 0);
    return s;
}

static struct store *open_ro(const char *dir, int want)
{
    struct store_options o = {.readonly = true};
    struct store *s = NULL;
    int rc = store_open(dir, &o, &s);
    CHECK_INT(rc, want);
    return s;
}

/* ---- u64 keys ---- */

static void test_u64_keys(void)
{
    static const uint64_t vals[] = {0, 1, 255, 256, 65535, 1ULL << 32, 0x0102030405060708ULL,
                                    UINT64_MAX - 1, UINT64_MAX};
    uint8_t k[8];
    store_u64_key(0x0102030405060708ULL, k);
    static const uint8_t want[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    CHECK(memcmp(k, want, 8) == 0);
    for (size_t i = 0; i < ARRAY_SIZE(vals); i++) {
        store_u64_key(vals[i], k);
        CHECK(store_key_u64(k) == vals[i]);
        if (i > 0) {
            /* LMDB orders keys by memcmp: that must be numeric order. */
            uint8_t prev[8];
            store_u64_key(vals[i - 1], prev);
            CHECK(memcmp(prev, k, 8) < 0);
        }
    }
}

/* ---- open: modes, FD_CLOEXEC ---- */

static bool data_fd_is_cloexec(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return true; /* no /proc: nothing to check */
    }
    bool found = false;
    bool cloexec = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char link[300];
        char target[PATH_MAX];
        snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0) {
            continue;
        }
        target[n] = '\0';
        if (str_has_suffix(target, "/data.mdb")) {
            /* LMDB opens data.mdb twice (data and meta fds): all must be CLOEXEC. */
            int fl = fcntl((int)strtol(e->d_name, NULL, 10), F_GETFD);
            cloexec = (found ? cloexec : true) && fl >= 0 && (fl & FD_CLOEXEC) != 0;
            found = true;
        }
    }
    closedir(d);
    return found && cloexec;
}

static void test_open_modes(void)
{
    mode_t old = umask(022);
    char *top = tmp_path("modes");
    char *mid = xasprintf("%s/a", top);
    char *dir = xasprintf("%s/a/state", top);
    struct store *s = open_small(dir, SMALL_MAP, 0);
    CHECK(s != NULL);
    CHECK_INT(path_mode(dir, NULL), 0700);
    CHECK_INT(path_mode(dir, "data.mdb"), 0600);
    CHECK_INT(path_mode(dir, "lock.mdb"), 0600);
    CHECK(data_fd_is_cloexec());
    store_close(s);

    /* Reopening an existing store with looser modes works (and warns). */
    chmod(dir, 0755);
    s = open_small(dir, SMALL_MAP, 0);
    CHECK(s != NULL);
    CHECK_INT(path_mode(dir, NULL), 0755); /* warned about, never changed */
    store_close(s);
    store_close(NULL);

    test_rm_store(dir);
    rmdir(mid);
    rmdir(top);
    free(dir);
    free(mid);
    free(top);
    umask(old);
}

/* ---- read-only opens of missing and empty stores ---- */

static void test_readonly_missing(void)
{
    char *dir = tmp_path("ro-missing");
    test_rm_store(dir);
    struct store *s = open_ro(dir, -ENOENT);
    CHECK(s == NULL);
    CHECK(!path_exists(dir, NULL)); /* a reader creates nothing */

    mkdir(dir, 0700);
    s = open_ro(dir, -ENOENT);
    CHECK(s == NULL);
    CHECK(!path_exists(dir, "lock.mdb"));
    test_rm_store(dir);
    free(dir);
}

/* Makes an env with no named tables at all, as a bare mdb_env_open would. */
static void make_bare_env(const char *dir)
{
    mkdir(dir, 0700);
    MDB_env *env = NULL;
    CHECK_INT(mdb_env_create(&env), 0);
    CHECK_INT(mdb_env_open(env, dir, 0, 0600), 0);
    mdb_env_close(env);
}

static int child_write_trig(const char *dir, int wait_fd)
{
    char c;
    if (read(wait_fd, &c, 1) != 1) {
        return 10;
    }
    struct store_options o = {.map_size = SMALL_MAP};
    struct store *s = NULL;
    if (store_open(dir, &o, &s) != 0) {
        return 11;
    }
    struct store_txn *txn = NULL;
    int rc = store_txn_begin(s, true, &txn);
    if (rc == 0) {
        store_put(txn, STORE_TRIG, "t1", 2, "state", 5);
        rc = store_txn_commit(txn);
    }
    store_close(s);
    return rc == 0 ? 0 : 12;
}

static int write_fail_if_called(struct store_txn *txn, void *ud)
{
    (void)txn;
    (*(int *)ud)++;
    return 0;
}

static void test_readonly_empty(void)
{
    char *dir = tmp_path("ro-empty");
    test_rm_store(dir);
    make_bare_env(dir);

    /* The writer is a child forked before this process opens the env. */
    int pfd[2];
    CHECK_INT(pipe(pfd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[1]);
        int rc = child_write_trig(dir, pfd[0]);
        _exit(rc);
    }
    close(pfd[0]);

    struct store *s = open_ro(dir, 0);
    CHECK(s != NULL);
    if (s != NULL) {
        struct store_txn *txn = NULL;
        CHECK_INT(store_txn_begin(s, false, &txn), 0);
        CHECK_INT(store_get(txn, STORE_META, "schema", 6, NULL, NULL), -ENOENT);
        CHECK_INT(store_get(txn, STORE_TRIG, "t1", 2, NULL, NULL), -ENOENT);
        struct store_cursor *cur = NULL;
        CHECK_INT(store_cursor_open(txn, STORE_EVENTS, &cur), 0);
        CHECK_INT(store_cursor_seek(cur, NULL, 0, NULL, NULL, NULL, NULL), -ENOENT);
        CHECK_INT(store_cursor_last(cur, NULL, NULL, NULL, NULL), -ENOENT);
        CHECK_INT(store_cursor_next(cur, NULL, NULL, NULL, NULL), -ENOENT);
        uint64_t n = 99;
        CHECK_INT(store_count_prefix(txn, STORE_SNAP, "x", 1, &n), 0);
        CHECK_INT(n, 0);
        CHECK_INT(store_count_prefix(txn, STORE_SNAP, NULL, 0, &n), 0);
        CHECK_INT(n, 0);
        CHECK_INT(store_txn_error(txn), 0);
        CHECK_INT(store_txn_commit(txn), 0);

        struct store_stat st;
        CHECK_INT(store_stat(s, &st), 0);
        for (int i = 0; i < STORE_TABLE_COUNT; i++) {
            CHECK_INT(st.entries[i], 0);
        }

        /* Writes are refused on a reader. */
        CHECK_INT(store_txn_begin(s, true, &txn), -EROFS);
        int calls = 0;
        CHECK_INT(store_write(s, write_fail_if_called, &calls), -EROFS);
        CHECK_INT(calls, 0);

        /* The engine (child) now creates the tables and writes; a later txn sees them. */
        CHECK_INT(write(pfd[1], "g", 1), 1);
        int status = 0;
        CHECK_INT(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

        CHECK_INT(store_txn_begin(s, false, &txn), 0);
        const void *val = NULL;
        size_t vlen = 0;
        CHECK_INT(store_get(txn, STORE_TRIG, "t1", 2, &val, &vlen), 0);
        CHECK(vlen == 5 && memcmp(val, "state", 5) == 0);
        CHECK_INT(store_get(txn, STORE_META, "schema", 6, &val, &vlen), 0);
        CHECK(vlen == 1 && memcmp(val, "2", 1) == 0);
        store_txn_abort(txn);
        store_close(s);
    } else {
        CHECK_INT(write(pfd[1], "g", 1), 1);
        waitpid(pid, NULL, 0);
    }
    close(pfd[1]);
    test_rm_store(dir);
    free(dir);
}

/* ---- schema ---- */

static int put_schema(struct store_txn *txn, void *ud)
{
    const char *v = ud;
    return store_put(txn, STORE_META, "schema", 6, v, strlen(v));
}

static void test_schema(void)
{
    static const struct {
        const char *value;
        int want_rw;
        int want_ro;
    } cases[] = {
        {"1", 0, 0},  /* older: raised to 2 by the read-write open */
        {"2", 0, 0},
        {"99", STORE_ESCHEMA, STORE_ESCHEMA},
        {"3", STORE_ESCHEMA, STORE_ESCHEMA},
        {"x1", -EIO, -EIO},
        {"0", -EIO, -EIO},
    };
    char *dir = tmp_path("schema");
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        test_rm_store(dir);
        struct store *s = open_small(dir, SMALL_MAP, 0);
        if (s == NULL) {
            continue;
        }
        struct store_txn *txn = NULL;
        CHECK_INT(store_txn_begin(s, false, &txn), 0);
        const void *val = NULL;
        size_t vlen = 0;
        CHECK_INT(store_get(txn, STORE_META, "schema", 6, &val, &vlen), 0);
        CHECK(vlen == 1 && memcmp(val, "2", 1) == 0);
        store_txn_abort(txn);
        CHECK_INT(store_write(s, put_schema, (void *)cases[i].value), 0);
        store_close(s);

        struct store_options o = {.map_size = SMALL_MAP};
        s = NULL;
        CHECK_INT(store_open(dir, &o, &s), cases[i].want_rw);
        CHECK((s != NULL) == (cases[i].want_rw == 0));
        if (s != NULL) {
            CHECK_INT(store_txn_begin(s, false, &txn), 0);
            CHECK_INT(store_get(txn, STORE_META, "schema", 6, &val, &vlen), 0);
            CHECK(vlen == 1 && memcmp(val, "2", 1) == 0);
            store_txn_abort(txn);
        }
        store_close(s);
        s = open_ro(dir, cases[i].want_ro);
        store_close(s);
    }
    test_rm_store(dir);
    free(dir);
}

/* ---- KV operations ---- */

enum op { PUT, GET, DEL, APPEND };

static void test_kv_table(void)
{
    static char long_key[511];
    memset(long_key, 'k', sizeof(long_key));
    uint8_t k1[8];
    uint8_t k2[8];
    store_u64_key(1, k1);
    store_u64_key(2, k2);
    const struct {
        enum op op;
        enum store_table t;
        const void *key;
        size_t klen;
        const char *val; /* PUT: value; GET: expected value */
        int want;
    } cases[] = {
        {PUT, STORE_TRIG, "a", 1, "1", 0},
        {GET, STORE_TRIG, "a", 1, "1", 0},
        {PUT, STORE_TRIG, "a", 1, "22", 0},
        {GET, STORE_TRIG, "a", 1, "22", 0},
        {GET, STORE_SNAP, "a", 1, NULL, -ENOENT}, /* tables are separate */
        {DEL, STORE_TRIG, "missing", 7, NULL, -ENOENT},
        {GET, STORE_TRIG, "missing", 7, NULL, -ENOENT},
        {PUT, STORE_DLQ, "e", 1, "", 0},
        {GET, STORE_DLQ, "e", 1, "", 0},
        {PUT, STORE_SNAP, long_key, sizeof(long_key), "max", 0},
        {GET, STORE_SNAP, long_key, sizeof(long_key), "max", 0},
        {DEL, STORE_TRIG, "a", 1, NULL, 0},
        {GET, STORE_TRIG, "a", 1, NULL, -ENOENT},
        {APPEND, STORE_EVENTS, k1, 8, "one", 0},
        {APPEND, STORE_EVENTS, k2, 8, "two", 0},
        {GET, STORE_EVENTS, k2, 8, "two", 0},
        {PUT, STORE_QUEUE, "q", 1, "x", 0},
        {PUT, STORE_OUTBOX, "o", 1, "x", 0},
        {PUT, STORE_DUE, "d", 1, "", 0},
    };
    char *dir = tmp_path("kv");
    test_rm_store(dir);
    struct store *s = open_small(dir, SMALL_MAP, 0);
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, true, &txn), 0);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int rc = 0;
        const void *val = NULL;
        size_t vlen = 0;
        size_t want_len = cases[i].val ? strlen(cases[i].val) : 0;
        switch (cases[i].op) {
        case PUT:
            rc = store_put(txn, cases[i].t, cases[i].key, cases[i].klen, cases[i].val, want_len);
            break;
        case APPEND:
            rc = store_put_append(txn, cases[i].t, cases[i].key, cases[i].klen, cases[i].val,
                                  want_len);
            break;
        case DEL:
            rc = store_del(txn, cases[i].t, cases[i].key, cases[i].klen);
            break;
        case GET:
            rc = store_get(txn, cases[i].t, cases[i].key, cases[i].klen, &val, &vlen);
            if (rc == 0) {
                CHECK_INT(vlen, want_len);
                CHECK(vlen == want_len && memcmp(val, cases[i].val, vlen) == 0);
            }
            break;
        }
        if (rc != cases[i].want) {
            fprintf(stderr, "kv case %zu\n", i);
        }
        CHECK_INT(rc, cases[i].want);
    }
    /* -ENOENT answers did not poison the txn. */
    CHECK_INT(store_txn_error(txn), 0);
    CHECK_INT(store_txn_commit(txn), 0);

    /* Committed state, seen from a fresh read txn after a reopen. */
    store_close(s);
    s = open_small(dir, SMALL_MAP, 0);
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    const void *val = NULL;
    size_t vlen = 0;
    CHECK_INT(store_get(txn, STORE_TRIG, "a", 1, &val, &vlen), -ENOENT);
    CHECK_INT(store_get(txn, STORE_DLQ, "e", 1, &val, &vlen), 0);
    CHECK_INT(vlen, 0);
    CHECK_INT(store_get(txn, STORE_SNAP, long_key, sizeof(long_key), &val, &vlen), 0);
    CHECK(vlen == 3 && memcmp(val, "max", 3) == 0);
    /* Writes in a read txn are refused (and poison it). */
    CHECK_INT(store_put(txn, STORE_TRIG, "z", 1, "z", 1), -EROFS);
    CHECK_INT(store_txn_error(txn), -EROFS);
    store_txn_abort(txn);
    store_close(s);
    test_rm_store(dir);
    free(dir);
}

/* ---- sticky error ---- */

static int body_fail(struct store_txn *txn, void *ud)
{
    store_put(txn, STORE_TRIG, "f", 1, "x", 1);
    return -42;
}

static int body_ignores_error(struct store_txn *txn, void *ud)
{
    static char big[512];
    memset(big, 'b', sizeof(big));
    store_put(txn, STORE_TRIG, "g", 1, "x", 1);
    store_put(txn, STORE_TRIG, big, sizeof(big), "x", 1); /* poisons the txn */
    store_put(txn, STORE_TRIG, "h", 1, "x", 1);
    return 0; /* ignores it: store_write must not commit anyway */
}

static void test_sticky(void)
{
    char *dir = tmp_path("sticky");
    test_rm_store(dir);
    struct store *s = open_small(dir, SMALL_MAP, 0);
    static char big[512];
    memset(big, 'b', sizeof(big));

    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, true, &txn), 0);
    CHECK_INT(store_put(txn, STORE_TRIG, "x", 1, "1", 1), 0);
    CHECK_INT(store_put(txn, STORE_TRIG, big, sizeof(big), "1", 1), -EINVAL);
    CHECK_INT(store_txn_error(txn), -EINVAL);
    /* Every later operation is a no-op returning the sticky error. */
    CHECK_INT(store_put(txn, STORE_TRIG, "y", 1, "1", 1), -EINVAL);
    CHECK_INT(store_get(txn, STORE_TRIG, "x", 1, NULL, NULL), -EINVAL);
    CHECK_INT(store_del(txn, STORE_TRIG, "x", 1), -EINVAL);
    struct store_cursor *cur = NULL;
    CHECK_INT(store_cursor_open(txn, STORE_TRIG, &cur), -EINVAL);
    CHECK(cur == NULL);
    CHECK_INT(store_txn_fail(txn, -EIO), -EINVAL); /* the first error stays */
    CHECK_INT(store_txn_commit(txn), -EINVAL);

    /* Other refusals, each in a fresh txn. */
    static const struct {
        const char *name;
        int want;
    } refusals[] = {
        {"empty key", -EINVAL},
        {"append out of order", -EEXIST},
        {"explicit fail", -ECANCELED},
    };
    for (size_t i = 0; i < ARRAY_SIZE(refusals); i++) {
        CHECK_INT(store_txn_begin(s, true, &txn), 0);
        CHECK_INT(store_put(txn, STORE_TRIG, "x", 1, "1", 1), 0);
        int rc = 0;
        uint8_t k[8];
        switch (i) {
        case 0:
            rc = store_put(txn, STORE_TRIG, "", 0, "1", 1);
            break;
        case 1:
            store_u64_key(5, k);
            CHECK_INT(store_put_append(txn, STORE_EVENTS, k, 8, "5", 1), 0);
            store_u64_key(3, k);
            rc = store_put_append(txn, STORE_EVENTS, k, 8, "3", 1);
            break;
        default:
            rc = store_txn_fail(txn, -ECANCELED);
            break;
        }
        if (rc != refusals[i].want) {
            fprintf(stderr, "refusal: %s\n", refusals[i].name);
        }
        CHECK_INT(rc, refusals[i].want);
        CHECK_INT(store_txn_commit(txn), refusals[i].want);
    }

    /* store_write: fn's error and an ignored sticky error both abort. */
    CHECK_INT(store_write(s, body_fail, NULL), -42);
    CHECK_INT(store_write(s, body_ignores_error, NULL), -EINVAL);

    /* Nothing of the above was committed. */
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    static const char *const absent[] = {"x", "y", "f", "g", "h"};
    for (size_t i = 0; i < ARRAY_SIZE(absent); i++) {
        CHECK_INT(store_get(txn, STORE_TRIG, absent[i], 1, NULL, NULL), -ENOENT);
    }
    uint64_t n = 1;
    CHECK_INT(store_count_prefix(txn, STORE_EVENTS, NULL, 0, &n), 0);
    CHECK_INT(n, 0);

    /* One write txn per process: a second is refused, not deadlocked. */
    struct store_txn *w = NULL;
    CHECK_INT(store_txn_begin(s, true, &w), 0);
    struct store_txn *w2 = NULL;
    CHECK_INT(store_txn_begin(s, true, &w2), -EDEADLK);
    CHECK(w2 == NULL);
    store_txn_abort(w);
    store_txn_abort(txn);
    store_txn_abort(NULL);
    store_close(s);
    test_rm_store(dir);
    free(dir);
}

/* ---- map growth ---- */

struct fill {
    size_t count;
    size_t vsize;
    int calls;
};

static void fill_value(char *v, size_t vsize, size_t i)
{
    for (size_t j = 0; j < vsize; j++) {
        v[j] = (char)('a' + (i + j) % 26);
    }
}

/* A retryable body: everything it writes derives from ud and the txn. */
static int body_fill(struct store_txn *txn, void *ud)
{
    struct fill *f = ud;
    f->calls++;
    char *v = xmalloc(f->vsize);
    for (size_t i = 0; i < f->count; i++) {
        char key[16];
        int klen = snprintf(key, sizeof(key), "k%06zu", i);
        fill_value(v, f->vsize, i);
        store_put(txn, STORE_SNAP, key, (size_t)klen, v, f->vsize);
    }
    free(v);
    /* Read-modify-write: must end at exactly 1 whatever the number of attempts. */
    uint64_t counter = 0;
    const void *val = NULL;
    size_t vlen = 0;
    if (store_get(txn, STORE_META, "counter", 7, &val, &vlen) == 0 && vlen == 8) {
        counter = store_key_u64(val);
    }
    uint8_t ck[8];
    store_u64_key(counter + 1, ck);
    store_put(txn, STORE_META, "counter", 7, ck, 8);
    return store_txn_error(txn);
}

static void verify_fill(struct store *s, const struct fill *f)
{
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    uint64_t n = 0;
    CHECK_INT(store_count_prefix(txn, STORE_SNAP, "k", 1, &n), 0);
    CHECK_INT(n, f->count);
    char *want = xmalloc(f->vsize);
    size_t bad = 0;
    for (size_t i = 0; i < f->count; i++) {
        char key[16];
        int klen = snprintf(key, sizeof(key), "k%06zu", i);
        const void *val = NULL;
        size_t vlen = 0;
        fill_value(want, f->vsize, i);
        if (store_get(txn, STORE_SNAP, key, (size_t)klen, &val, &vlen) != 0 || vlen != f->vsize ||
            memcmp(val, want, vlen) != 0) {
            bad++;
        }
    }
    CHECK_INT(bad, 0);
    free(want);
    const void *val = NULL;
    size_t vlen = 0;
    CHECK_INT(store_get(txn, STORE_META, "counter", 7, &val, &vlen), 0);
    CHECK(vlen == 8 && store_key_u64(val) == 1);
    store_txn_abort(txn);
}

static void test_growth(void)
{
    static const struct {
        size_t count;
        size_t vsize;
    } cases[] = {
        {2000, 100},  /* many small leaves */
        {300, 1500},  /* values near the node limit */
        {60, 9000},   /* overflow pages */
        {1, 200000},  /* one value bigger than the whole initial map */
    };
    char *dir = tmp_path("grow");
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        test_rm_store(dir);
        struct store *s = open_small(dir, SMALL_MAP, 64ULL << 20);
        struct fill f = {.count = cases[i].count, .vsize = cases[i].vsize};
        CHECK_INT(store_write(s, body_fill, &f), 0);
        /* Several MAP_FULL growths happened, each re-running the body. */
        CHECK(f.calls >= 3);
        struct store_stat st;
        CHECK_INT(store_stat(s, &st), 0);
        CHECK(st.map_size > SMALL_MAP);
        CHECK_INT(st.max_size, 64ULL << 20);
        CHECK_INT(st.entries[STORE_SNAP], cases[i].count);
        verify_fill(s, &f);
        store_close(s);
        /* And it is all still there after a reopen with the small map. */
        s = open_small(dir, SMALL_MAP, 64ULL << 20);
        verify_fill(s, &f);
        store_close(s);
    }

    /* At the cap: -ENOSPC, nothing committed, the store still works. */
    test_rm_store(dir);
    struct store *s = open_small(dir, SMALL_MAP, 256 * 1024);
    struct fill f = {.count = 2000, .vsize = 500};
    CHECK_INT(store_write(s, body_fill, &f), -ENOSPC);
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    uint64_t n = 1;
    CHECK_INT(store_count_prefix(txn, STORE_SNAP, NULL, 0, &n), 0);
    CHECK_INT(n, 0);
    CHECK_INT(store_get(txn, STORE_META, "counter", 7, NULL, NULL), -ENOENT);
    store_txn_abort(txn);
    f = (struct fill){.count = 10, .vsize = 100};
    CHECK_INT(store_write(s, body_fill, &f), 0);
    verify_fill(s, &f);
    store_close(s);

    /* Growing needs no other txn open in the process: -EBUSY, nothing written. */
    test_rm_store(dir);
    s = open_small(dir, SMALL_MAP, 64ULL << 20);
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    f = (struct fill){.count = 600, .vsize = 500};
    CHECK_INT(store_write(s, body_fill, &f), -EBUSY);
    CHECK_INT(f.calls, 1);
    store_txn_abort(txn);
    f.calls = 0;
    CHECK_INT(store_write(s, body_fill, &f), 0);
    CHECK(f.calls >= 2);
    verify_fill(s, &f);
    store_close(s);
    test_rm_store(dir);
    free(dir);
}

/* ---- cursors ---- */

static int put_keys(struct store_txn *txn, void *ud)
{
    const char *const *keys = ud;
    for (size_t i = 0; keys[i] != NULL; i++) {
        store_put(txn, STORE_SNAP, keys[i], strlen(keys[i]), keys[i], strlen(keys[i]));
    }
    return 0;
}

static int put_many(struct store_txn *txn, void *ud)
{
    size_t n = *(size_t *)ud;
    for (size_t i = 0; i < n; i++) {
        uint8_t k[8];
        store_u64_key(i, k);
        store_put_append(txn, STORE_QUEUE, k, 8, "v", 1);
    }
    return 0;
}

/* Collects the keys with prefix from a seek, joined with ','. */
static char *collect(struct store_txn *txn, const char *from, const char *prefix)
{
    struct store_cursor *cur = NULL;
    CHECK_INT(store_cursor_open(txn, STORE_SNAP, &cur), 0);
    char out[256] = "";
    size_t used = 0;
    const void *k = NULL;
    size_t klen = 0;
    const void *v = NULL;
    size_t vlen = 0;
    int rc = store_cursor_seek(cur, from, strlen(from), &k, &klen, &v, &vlen);
    while (rc == 0 && klen >= strlen(prefix) && memcmp(k, prefix, strlen(prefix)) == 0) {
        CHECK(vlen == klen && memcmp(k, v, klen) == 0);
        used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%.*s", used ? "," : "",
                                 (int)klen, (const char *)k);
        rc = store_cursor_next(cur, &k, &klen, &v, &vlen);
    }
    CHECK(rc == 0 || rc == -ENOENT);
    store_cursor_close(cur);
    return xstrdup(out);
}

static void test_cursor(void)
{
    static const char *const keys[] = {"b/2", "a/1", "c", "ab/1", "b/1", "a/2", "b/3", NULL};
    char *dir = tmp_path("cursor");
    test_rm_store(dir);
    struct store *s = open_small(dir, SMALL_MAP, 0);
    CHECK_INT(store_write(s, put_keys, (void *)keys), 0);

    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    static const struct {
        const char *prefix;
        uint64_t count;
    } counts[] = {
        {"a/", 2}, {"a", 3}, {"ab", 1}, {"b/", 3}, {"c", 1}, {"d", 0}, {"", 7}, {"b/3x", 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(counts); i++) {
        uint64_t n = 99;
        CHECK_INT(store_count_prefix(txn, STORE_SNAP, counts[i].prefix, strlen(counts[i].prefix),
                                     &n),
                  0);
        if (n != counts[i].count) {
            fprintf(stderr, "prefix \"%s\"\n", counts[i].prefix);
        }
        CHECK_INT(n, counts[i].count);
    }
    static const struct {
        const char *from;
        const char *prefix;
        const char *want;
    } scans[] = {
        {"b/", "b/", "b/1,b/2,b/3"},
        {"a", "a", "a/1,a/2,ab/1"},
        {"a/15", "a/", "a/2"},
        {"bz", "", "c"},
        {"d", "", ""},
        {"", "", "a/1,a/2,ab/1,b/1,b/2,b/3,c"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(scans); i++) {
        char *got = collect(txn, scans[i].from, scans[i].prefix);
        CHECK_STR(got, scans[i].want);
        free(got);
    }
    struct store_cursor *cur = NULL;
    CHECK_INT(store_cursor_open(txn, STORE_SNAP, &cur), 0);
    const void *k = NULL;
    size_t klen = 0;
    CHECK_INT(store_cursor_last(cur, &k, &klen, NULL, NULL), 0);
    CHECK(klen == 1 && memcmp(k, "c", 1) == 0);
    CHECK_INT(store_cursor_next(cur, &k, &klen, NULL, NULL), -ENOENT);
    /* Cursors left open are closed with their txn (ASan/valgrind check the leak). */
    struct store_cursor *cur2 = NULL;
    CHECK_INT(store_cursor_open(txn, STORE_TRIG, &cur2), 0);
    CHECK_INT(store_cursor_next(cur2, NULL, NULL, NULL, NULL), -ENOENT);
    CHECK_INT(store_txn_commit(txn), 0);

    /* Deleting under a cursor: "seek; while match { del; next }" removes exactly the range. */
    CHECK_INT(store_txn_begin(s, true, &txn), 0);
    CHECK_INT(store_cursor_open(txn, STORE_SNAP, &cur), 0);
    int rc = store_cursor_seek(cur, "a/", 2, &k, &klen, NULL, NULL);
    int dels = 0;
    while (rc == 0 && klen >= 2 && memcmp(k, "a/", 2) == 0) {
        CHECK_INT(store_cursor_del(cur), 0);
        dels++;
        rc = store_cursor_next(cur, &k, &klen, NULL, NULL);
    }
    CHECK_INT(dels, 2);
    CHECK(rc == 0 && klen == 4 && memcmp(k, "ab/1", 4) == 0);
    CHECK_INT(store_txn_commit(txn), 0);
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    char *got = collect(txn, "", "");
    CHECK_STR(got, "ab/1,b/1,b/2,b/3,c");
    free(got);
    /* cursor_del in a read txn is refused. */
    CHECK_INT(store_cursor_open(txn, STORE_SNAP, &cur), 0);
    CHECK_INT(store_cursor_seek(cur, NULL, 0, NULL, NULL, NULL, NULL), 0);
    CHECK_INT(store_cursor_del(cur), -EROFS);
    store_txn_abort(txn);

    /* Many pages: delete every entry through one cursor. */
    size_t many = 5000;
    CHECK_INT(store_write(s, put_many, &many), 0);
    CHECK_INT(store_txn_begin(s, true, &txn), 0);
    CHECK_INT(store_cursor_open(txn, STORE_QUEUE, &cur), 0);
    size_t seen = 0;
    uint64_t expect = 0;
    bool in_order = true;
    rc = store_cursor_seek(cur, NULL, 0, &k, &klen, NULL, NULL);
    while (rc == 0) {
        in_order = in_order && klen == 8 && store_key_u64(k) == expect;
        expect++;
        seen++;
        CHECK_INT(store_cursor_del(cur), 0);
        rc = store_cursor_next(cur, &k, &klen, NULL, NULL);
    }
    CHECK_INT(rc, -ENOENT);
    CHECK_INT(seen, many);
    CHECK(in_order);
    CHECK_INT(store_txn_commit(txn), 0);
    struct store_stat st;
    CHECK_INT(store_stat(s, &st), 0);
    CHECK_INT(st.entries[STORE_QUEUE], 0);
    CHECK_INT(st.entries[STORE_SNAP], 5);
    store_close(s);
    test_rm_store(dir);
    free(dir);
}

/* ---- stat and stale readers ---- */

static void test_stale_reader(void)
{
    char *dir = tmp_path("readers");
    test_rm_store(dir);
    int go[2];
    int ready[2];
    CHECK_INT(pipe(go), 0);
    CHECK_INT(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        /* A reader that dies holding a read txn, as `kill -9` of the CLI would. */
        close(go[1]);
        close(ready[0]);
        char c;
        if (read(go[0], &c, 1) != 1) {
            _exit(10);
        }
        static struct store *rs;
        static struct store_txn *rt;
        struct store_options o = {.readonly = true};
        if (store_open(dir, &o, &rs) != 0 || store_txn_begin(rs, false, &rt) != 0) {
            _exit(11);
        }
        if (write(ready[1], "r", 1) != 1) {
            _exit(12);
        }
        raise(SIGKILL);
        _exit(13);
    }
    close(go[0]);
    close(ready[1]);

    struct store *s = open_small(dir, SMALL_MAP, 0);
    struct store_stat st;
    CHECK_INT(store_stat(s, &st), 0);
    CHECK_INT(st.readers_used, 0);
    CHECK(st.readers_max >= 1);
    CHECK(st.file_size > 0);
    CHECK(st.page_size >= 512);
    CHECK(st.map_size == SMALL_MAP);
    CHECK_INT(st.max_size, STORE_DEFAULT_MAX_SIZE);
    CHECK_INT(st.entries[STORE_META], 1); /* the schema */

    /* One of our own read txns occupies a slot while open. */
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    unsigned used = 0;
    CHECK_INT(store_stat(s, &st), 0); /* nested read txns are fine with MDB_NOTLS */
    used = st.readers_used;
    CHECK_INT(used, 1);
    store_txn_abort(txn);

    CHECK_INT(write(go[1], "g", 1), 1);
    char c = 0;
    CHECK_INT(read(ready[0], &c, 1), 1);
    int status = 0;
    CHECK_INT(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    CHECK_INT(store_stat(s, &st), 0);
    CHECK_INT(st.readers_used, 1); /* the dead child's slot */
    CHECK_INT(store_reader_check(s), 1);
    CHECK_INT(store_stat(s, &st), 0);
    CHECK_INT(st.readers_used, 0);
    CHECK_INT(store_reader_check(s), 0);
    store_close(s);
    close(go[1]);
    close(ready[0]);
    test_rm_store(dir);
    free(dir);
}

/* ---- the engine lock and the state directory checks (F7, F23) ---- */

static void test_engine_lock(void)
{
    char *dir = tmp_path("lock");
    char *lock = xasprintf("%s/engine.lock", dir);
    unlink(lock);
    test_rm_store(dir);
    int fd = -1;
    char holder[128];
    CHECK_INT(store_lock_engine(dir, &fd, holder, sizeof(holder)), 0);
    CHECK(fd >= 0);
    CHECK_INT(path_mode(dir, NULL), 0700);
    CHECK_INT(path_mode(dir, "engine.lock"), 0600);
    /* A second taker (its own open file description) is refused and told who holds it. */
    int fd2 = -1;
    CHECK_INT(store_lock_engine(dir, &fd2, holder, sizeof(holder)), -EWOULDBLOCK);
    CHECK_INT(fd2, -1);
    char want[64];
    snprintf(want, sizeof(want), "pid %ld started ", (long)getpid());
    CHECK(strncmp(holder, want, strlen(want)) == 0);
    /* The store itself opens beside the lock (tail, dlq, the engine). */
    struct store *s = open_small(dir, SMALL_MAP, 0);
    CHECK(s != NULL);
    store_close(s);
    store_unlock_engine(fd);
    CHECK_INT(store_lock_engine(dir, &fd2, holder, sizeof(holder)), 0);
    store_unlock_engine(fd2);
    unlink(lock);
    test_rm_store(dir);
    free(lock);
    free(dir);
}

static void test_state_dir_symlink(void)
{
    char *real = tmp_path("real");
    char *link = tmp_path("link");
    char *slash = xasprintf("%s/", link);
    test_rm_store(real);
    unlink(link);
    CHECK_INT(mkdir(real, 0700), 0);
    CHECK_INT(symlink(real, link), 0);
    struct store *s = NULL;
    CHECK_INT(store_open(link, NULL, &s), -ELOOP);
    CHECK_INT(store_open(slash, NULL, &s), -ELOOP); /* a trailing slash does not get past it */
    int fd = -1;
    char holder[128];
    CHECK_INT(store_lock_engine(link, &fd, holder, sizeof(holder)), -ELOOP);
    /* A reader only reads: it follows the link (and finds no store there). */
    struct store_options ro = {.readonly = true};
    CHECK_INT(store_open(link, &ro, &s), -ENOENT);
    if (geteuid() == 0) {
        /* Another user's directory (only root can make one to test with). */
        CHECK_INT(chown(real, 65534, 65534), 0);
        CHECK_INT(store_open(real, NULL, &s), -EPERM);
        CHECK_INT(store_lock_engine(real, &fd, holder, sizeof(holder)), -EPERM);
    }
    CHECK_INT(rmdir(real), 0); /* nothing was created through the link */
    unlink(link);
    free(slash);
    free(link);
    free(real);
}

/* ---- readers holding old snapshots (F5) ---- */

static int put_one(struct store_txn *txn, void *ud)
{
    (void)ud;
    return store_put(txn, STORE_TRIG, "k", 1, "v", 1);
}

static void test_oldest_reader(void)
{
    char *dir = tmp_path("oldest");
    test_rm_store(dir);
    struct store *s = open_small(dir, SMALL_MAP, 0);
    struct store_reader r;
    CHECK_INT(store_oldest_reader(s, &r), 0);
    CHECK_INT(r.pid, 0);
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    CHECK_INT(store_live_txns(), 1);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(store_write(s, put_one, NULL), 0);
    }
    CHECK_INT(store_oldest_reader(s, &r), 0);
    CHECK_INT(r.pid, (long)getpid());
    CHECK_INT(r.newest_txnid - r.txnid, 3); /* three commits behind */
    store_txn_abort(txn);
    CHECK_INT(store_live_txns(), 0);
    CHECK_INT(store_oldest_reader(s, &r), 0);
    CHECK_INT(r.pid, 0);
    store_close(s);
    test_rm_store(dir);
    free(dir);
}

/* ---- error texts ---- */

static void test_strerror(void)
{
    static const struct {
        int err;
        const char *want; /* NULL: compare with strerror/mdb_strerror below */
    } cases[] = {
        {0, "success"},
        {STORE_EMAPFULL, "LMDB map full"},
        {STORE_EREADERS, "LMDB reader table full"},
        {STORE_ESCHEMA, "store written by a newer pollen (schema too new)"},
        {-ENOENT, NULL},
        {-ENOSPC, NULL},
        {MDB_PANIC, NULL},
        {MDB_MAP_FULL, NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const char *want = cases[i].want;
        if (want == NULL) {
            want = cases[i].err > -4096 ? strerror(-cases[i].err) : mdb_strerror(cases[i].err);
        }
        CHECK_STR(store_strerror(cases[i].err), want);
    }
    CHECK(store_strerror(12345) != NULL);
    CHECK(store_strerror(-99999) != NULL);
    CHECK_STR(store_table_name(STORE_EVENTS), "events");
    CHECK_STR(store_table_name(STORE_DLQ), "dlq");
    CHECK_STR(store_table_name(STORE_TABLE_COUNT), "?");
}

int main(void)
{
    log_set_level(LOG_WARN);
    test_u64_keys();
    test_open_modes();
    test_readonly_missing();
    test_readonly_empty();
    test_schema();
    test_kv_table();
    test_sticky();
    test_growth();
    test_cursor();
    test_stale_reader();
    test_engine_lock();
    test_state_dir_symlink();
    test_oldest_reader();
    test_strerror();
    return test_done("store");
}

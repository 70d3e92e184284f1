/*
 * store: the one LMDB environment of a state directory (reliability.md §1.2, §2).
 *
 * Owns: the MDB_env, its named tables (DBIs, enum store_table), the schema
 * version in `meta`, map growth on MDB_MAP_FULL, and the translation of LMDB
 * codes into negative errno-style codes at this border.
 *
 * Invariants:
 *  - One env per directory per process. The env is never used after fork():
 *    a child process opens its own store (LMDB forbids sharing it).
 *  - Flags are MDB_NOTLS (plus MDB_RDONLY for readers) and nothing else:
 *    never WRITEMAP, NOMEMINIT, NOSYNC, NOMETASYNC or NOLOCK, so every commit
 *    is durable against power loss and every process sees the same layout.
 *    Without WRITEMAP the map is a read-only shared mapping of data.mdb: its
 *    resident pages are the kernel's clean page cache of the file (RssFile,
 *    reclaimed under pressure), never anonymous memory, so nothing here drops
 *    them (madvise(MADV_DONTNEED) every 128 records made every lookup fault
 *    its page back in: 38% of a no-change cycle was kernel time).
 *  - The directory is created 0700 and the files 0600 (they hold CRM data);
 *    looser existing modes are reported with log_warn, not changed.
 *  - data.mdb is FD_CLOEXEC, so no spawned child inherits it (§2.9).
 *  - No table uses MDB_DUPSORT (§2.5). Keys are 1..mdb_env_get_maxkeysize()
 *    bytes (511 with Debian's build); longer keys are refused with -EINVAL
 *    before they reach LMDB.
 *  - The engine writes only through store_write(), which grows the map by
 *    doubling on MDB_MAP_FULL up to max_size and re-runs the whole body.
 *
 * Transactions (knot style): a struct store_txn carries a sticky error. The
 * first failing operation records it; every later operation on that txn is a
 * no-op returning the same code, and store_txn_commit() turns into an abort
 * that returns it. So a txn body can run a sequence of puts and check once.
 * -ENOENT from a lookup or a delete of a missing key is an answer, not a
 * failure, and does not set the sticky error.
 *
 * Thread context: single-threaded. In the engine every call happens on the
 * loop thread; in the CLI on the main thread. A write txn must stay short
 * (< 10 ms: no network I/O, no sleeping inside). store_write() and
 * store_txn_begin() never sleep; store_open() sleeps (up to 3 x 100 ms) only
 * for read-only opens, which only the CLI does, never the loop thread.
 *
 * Borrowed memory: every key/value pointer handed out (store_get, cursors)
 * points into the LMDB map and is valid only until the txn ends, and in a
 * write txn only until the next write to the same txn. Copy what you keep.
 */
#ifndef POLLEN_STORE_H
#define POLLEN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Named tables. The values index in-memory arrays only; the names are the on-disk identity. */
enum store_table {
    STORE_META = 0,   /* "meta": schema version, evlog.last_seq, other singletons */
    STORE_TRIG,       /* "trig": per-trigger state */
    STORE_SNAP,       /* "snap": trigger_id || record_id -> compact snapshot index (hash, version, flags) */
    STORE_EVENTS,     /* "events": u64 BE seq -> compact event JSON (evlog.c) */
    STORE_QUEUE,      /* "queue": fan-out work queues */
    STORE_OUTBOX,     /* "outbox": u64 BE outbox_id -> pending action */
    STORE_DUE,        /* "due": u64 BE next_at || outbox_id -> empty (scheduling index) */
    STORE_DLQ,        /* "dlq": outbox_id -> dead-lettered action */
    STORE_OWN,        /* "own": location || resource || record id -> what pollen's own write produced */
    STORE_SNAPDATA,   /* "snapdata": same key as snap -> the record's last JSON (read only on change) */
    STORE_TABLE_COUNT,
};

/*
 * Schema version this build writes and understands. A newer one is refused
 * at open; an older one is raised by the first read-write open (its data is
 * migrated lazily). 2: snapshot values of format 2 (XXH3 hashes, diff.h),
 * which a schema-1 pollen cannot read (it would report every record as
 * created again), so that older pollen refuses the store instead.
 */
#define STORE_SCHEMA_VERSION 2

#define STORE_DEFAULT_MAP_SIZE (1ULL << 30) /* 1 GiB: sparse on Linux, the initial map */
#define STORE_DEFAULT_MAX_SIZE (8ULL << 30) /* 8 GiB: growth cap for MDB_MAP_FULL doubling */

/* Project error codes of this module (all < -1000; store_strerror names them). */
#define STORE_EMAPFULL (-1101) /* MDB_MAP_FULL inside a txn; store_write grows and retries */
#define STORE_EREADERS (-1102) /* MDB_READERS_FULL: every reader slot is taken */
#define STORE_ESCHEMA (-1103)  /* the store was written by a newer pollen */

struct store_options {
    uint64_t map_size; /* initial map bytes; 0 = STORE_DEFAULT_MAP_SIZE; ignored read-only */
    uint64_t max_size; /* growth cap; 0 = STORE_DEFAULT_MAX_SIZE; raised to map_size if lower */
    bool readonly;     /* MDB_RDONLY: for `pollen tail`/`status`; never creates anything */
};

struct store;
struct store_txn;
struct store_cursor;

/*
 * Opens (creating if needed, unless read-only) the store in dir.
 * opts may be NULL (defaults, read-write).
 *
 * Read-write: creates dir with mode 0700 (util_mkdir_p), opens the env with
 * mode 0600, creates every table, and writes STORE_SCHEMA_VERSION into `meta`
 * on first use.
 * Read-only: creates nothing; dir/data.mdb must exist (-ENOENT otherwise,
 * with nothing left behind). Tables the engine has not created yet read as
 * empty and are picked up by later txns once they appear. A failed env open
 * is retried 3 times with 100 ms sleeps, because LMDB can fail an open that
 * races another process opening or closing the env (§2.6): this sleeps, so
 * read-only opens are for the CLI, never the loop thread.
 * Read-write: dir must also be a directory owned by this user, not a
 * symlink (-ELOOP, -EPERM, -ENOTDIR otherwise: it holds CRM data).
 * Both: stale reader slots are cleared (mdb_reader_check) and a schema newer
 * than STORE_SCHEMA_VERSION is refused with STORE_ESCHEMA.
 * Returns 0 and sets *out, or a negative code (-ENOENT, -EACCES, -EIO,
 * STORE_ESCHEMA, ...); every failure is logged with the reason.
 */
int store_open(const char *dir, const struct store_options *opts, struct store **out);

/* Whether dir holds a store (data.mdb) yet: readers create nothing. */
bool store_exists(const char *dir);

/* Closes the env. Every txn must have ended. NULL is accepted. */
void store_close(struct store *s);

/* The LMDB name of a table ("meta", "trig", ...), or "?" when out of range. */
const char *store_table_name(enum store_table t);

/*
 * Begins a txn. Read txns may nest (MDB_NOTLS) but a process has at most one
 * write txn: a second one returns -EDEADLK instead of self-deadlocking.
 * A write txn on a read-only store returns -EROFS. When another process has
 * grown the map (MDB_MAP_RESIZED), the map is re-read and the begin retried;
 * that needs no other txn open in this process (-EBUSY otherwise).
 * The caller ends the txn with store_txn_commit or store_txn_abort.
 * Returns 0 and sets *out, or a negative code.
 */
int store_txn_begin(struct store *s, bool write, struct store_txn **out);

/*
 * Commits and frees txn (and its cursors). If the sticky error is set, aborts
 * instead and returns it. A write txn in which nothing was put or deleted is
 * aborted too and returns 0: there is nothing to commit, so it costs no
 * commit and no fsync (a poll page in which nothing changed). A caller that
 * has something to record writes it (store_put): that is what commits. A failed commit has already released the txn
 * (LMDB frees it): never abort after this call. Returns 0, the sticky error,
 * or the commit error (STORE_EMAPFULL, -EIO, -ENOSPC from the disk, ...).
 */
int store_txn_commit(struct store_txn *txn);

/* Aborts and frees txn and its cursors. NULL is accepted. */
void store_txn_abort(struct store_txn *txn);

/* The sticky error of txn: 0 while every operation has succeeded. */
int store_txn_error(const struct store_txn *txn);
/* The txn's LMDB id (mdb_txn_id): a write txn's is the id it commits as, above
 * every committed one (a generation: snapshot.c's raw-hash index). */
uint64_t store_txn_id(const struct store_txn *txn);

/* Sets the sticky error (if not already set) so that the txn will not commit; returns it. */
int store_txn_fail(struct store_txn *txn, int err);

/*
 * Runs fn inside a write txn and commits it: the only way the engine writes.
 *
 * fn MUST BE A RETRYABLE CLOSURE. When the map is full (MDB_MAP_FULL from a
 * put or from the commit itself) the txn is aborted, the map size doubled
 * (capped at max_size) and fn called AGAIN FROM SCRATCH on a new txn. So fn
 * must derive everything it writes from ud and the txn, must not consume
 * anything it cannot give back (no one-shot queues, no counters outside the
 * store, no freeing of ud's members), and must reset any output it fills.
 *
 * If fn returns non-zero the txn is aborted and that value returned. If fn
 * returns 0 but an operation failed, the sticky error is returned (nothing
 * committed). At the cap, returns -ENOSPC with an error log line. Growing
 * needs no other txn open in this process (-EBUSY otherwise). fn must not
 * begin another write txn on s (it would get -EDEADLK).
 * Returns 0 once committed, or a negative code / fn's value.
 */
int store_write(struct store *s, int (*fn)(struct store_txn *txn, void *ud), void *ud);

/*
 * Dry run (`pollen run --dry-run`): every later store_write runs its body and
 * then aborts instead of committing, returning what the commit would have
 * (the sticky error or 0). Nothing the engine does is persisted.
 */
void store_set_dry_run(struct store *s, bool on);

/*
 * KV operations. Each returns the sticky error without touching LMDB once it
 * is set, and sets it on failure (-ENOENT excepted). klen must be in
 * 1..max key size (-EINVAL and a log line otherwise).
 *
 * store_get: 0 and sets *val and *vlen (either may be NULL), -ENOENT, or an error.
 * Values are borrowed (see the top of this file).
 */
int store_get(struct store_txn *txn, enum store_table t, const void *key, size_t klen,
              const void **val, size_t *vlen);
/* Inserts or overwrites. vlen may be 0 (val may then be NULL). */
int store_put(struct store_txn *txn, enum store_table t, const void *key, size_t klen,
              const void *val, size_t vlen);
/*
 * Appends with MDB_APPEND: key must sort after every key in the table
 * (monotonic keys such as store_u64_key(seq)); otherwise -EEXIST (sticky).
 */
int store_put_append(struct store_txn *txn, enum store_table t, const void *key, size_t klen,
                     const void *val, size_t vlen);
/* Deletes key. Returns 0, or -ENOENT if absent (not sticky), or an error. */
int store_del(struct store_txn *txn, enum store_table t, const void *key, size_t klen);

/*
 * Cursors. A cursor belongs to its txn: it may be closed early with
 * store_cursor_close, and is closed and freed automatically when the txn
 * ends (the pointer is then dangling). The positioning calls return 0 and
 * fill the outputs (each may be NULL; data borrowed as above), -ENOENT past
 * the end, or an error (sticky). A cursor on a table that does not exist yet
 * (read-only store) is always at the end.
 */
int store_cursor_open(struct store_txn *txn, enum store_table t, struct store_cursor **out);
void store_cursor_close(struct store_cursor *cur);
/* Positions at the first key >= key (MDB_SET_RANGE); klen 0 means the first key of the table. */
int store_cursor_seek(struct store_cursor *cur, const void *key, size_t klen, const void **key_out,
                      size_t *klen_out, const void **val_out, size_t *vlen_out);
/* Moves to the next key (the first one if the cursor is not positioned yet). */
int store_cursor_next(struct store_cursor *cur, const void **key_out, size_t *klen_out,
                      const void **val_out, size_t *vlen_out);
/* Positions at the last key of the table. */
int store_cursor_last(struct store_cursor *cur, const void **key_out, size_t *klen_out,
                      const void **val_out, size_t *vlen_out);
/*
 * Deletes the entry under the cursor (write txn). The cursor then stands on
 * the following entry, which the next store_cursor_next returns, so
 * "seek; while (match) { del; next; }" visits every entry once.
 */
int store_cursor_del(struct store_cursor *cur);

/*
 * A retention sweep over a table in bounded batches (dead letters, own-write
 * marks): each batch is one short write txn that resumes after the last key
 * the previous one examined, so a large table never holds the loop.
 */
struct store_sweep {
    uint8_t after[512];  /* in: resume after this key; after_len 0 = from the start */
    size_t after_len;
    uint8_t next[512];   /* out: the last key examined (copy it to after for the next batch) */
    size_t next_len;
    bool more;           /* out: the batch was full, the table may go on */
    uint64_t deleted;    /* out: entries deleted by this batch */
};

/*
 * One batch (inside a write txn): examines at most max entries of t after
 * sw->after and deletes those for which doomed(key, klen, val, vlen, ud) is
 * true. Only the outputs change, so a store_write retry reruns it alike.
 * Returns 0 or an error (sticky).
 */
int store_sweep_batch(struct store_txn *txn, enum store_table t, size_t max,
                      struct store_sweep *sw,
                      bool (*doomed)(const void *key, size_t klen, const void *val, size_t vlen,
                                     void *ud),
                      void *ud);

/*
 * Counts the keys that start with prefix (plen 0: every key, in O(1)).
 * Walks the matching range, so it costs O(matches). Returns 0 or an error.
 */
int store_count_prefix(struct store_txn *txn, enum store_table t, const void *prefix, size_t plen,
                       uint64_t *count);

/*
 * Clears reader slots left by dead processes (mdb_reader_check). The engine
 * calls it every minute. Returns the number cleared (>= 0) or an error.
 */
int store_reader_check(struct store *s);

/*
 * The engine's single-instance lock (F7): creates dir (0700) if needed,
 * checks it is a directory owned by this user and not a symlink, and takes
 * an exclusive flock on dir/engine.lock, writing "pid N started TIME" into
 * it. Readers (tail, dlq list, auth status) never take it.
 * Returns 0 and sets *fd_out (keep it open while the engine runs; give it
 * to store_unlock_engine), -EWOULDBLOCK when another process holds the lock
 * (holder then says which: "pid N started TIME"), or another negative code
 * after an error line.
 */
int store_lock_engine(const char *dir, int *fd_out, char *holder, size_t holder_size);
void store_unlock_engine(int fd);

/* Txns open in this process over every store (tests: `tail` writes nothing with one open). */
unsigned store_live_txns(void);

/* The reader slot holding the oldest snapshot, from mdb_reader_list. */
struct store_reader {
    long pid;              /* 0: no slot holds a txn */
    uint64_t txnid;        /* the snapshot it reads */
    uint64_t newest_txnid; /* the last committed txn: the lag is newest_txnid - txnid */
};
/* Fills *out (any process, this one included). Returns 0 or an error. */
int store_oldest_reader(struct store *s, struct store_reader *out);
/*
 * Every reader slot holding a read txn (any process, this one included), in
 * the lock table's order: the first max into out. LMDB's lock table keeps
 * no start time, so how long a reader has been open is not known; its lag
 * (newest_txnid - txnid commits) says how old its snapshot is.
 * Returns 0 with *count (all of them, which may exceed max) or an error.
 */
int store_readers(struct store *s, struct store_reader *out, size_t max, size_t *count);

struct store_stat {
    uint64_t file_size;                  /* bytes of data.mdb on disk */
    uint64_t map_size;                   /* current map size */
    uint64_t max_size;                   /* growth cap */
    uint64_t page_size;
    uint64_t pages_used;                 /* last used page + 1 (high-water mark) */
    uint64_t last_txnid;
    uint64_t commits;                    /* write txns this handle committed (tests) */
    uint64_t entries[STORE_TABLE_COUNT]; /* per table; 0 for a table not created yet */
    uint64_t pages[STORE_TABLE_COUNT];   /* pages each table's tree holds (branch, leaf, overflow) */
    unsigned readers_max;                /* size of the reader table */
    unsigned readers_used;               /* slots held by live read txns of any process */
};

/* Fills *out (for `pollen status` and the soak test). readers_used counts every
 * live read txn, including any this process holds open. Returns 0 or an error. */
int store_stat(struct store *s, struct store_stat *out);

/*
 * The text for a code returned by this module: our STORE_E* codes, negated
 * errno values, and raw LMDB codes (MDB_*) should one leak. Never NULL.
 */
const char *store_strerror(int err);

/* Big-endian u64 keys: byte order equals numeric order under LMDB's memcmp. */
void store_u64_key(uint64_t v, uint8_t out[8]);
/* Reads 8 big-endian bytes (the caller checks the length). */
uint64_t store_key_u64(const void *key);

#endif

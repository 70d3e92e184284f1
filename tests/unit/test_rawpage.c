/*
 * test_rawpage: the raw-bytes fast path of an enumeration's page
 * (sources/poll/rawpage.c) with snapshot.c, on a real store. A first page
 * parses every record and stores each one's raw hash; the same bytes again
 * parse only the last record (p->raw.parsed counts the records parsed) and
 * change nothing; reordered keys parse that record, make no event and
 * update its raw hash; a changed record makes its event; stubs keep the
 * page's order, count and ids (paging and the deletion phase see every
 * record); a held deletion, a format-1 entry and an id with an escape never
 * skip the parse; malformed pages, dotted record paths and single records
 * take the normal path; records at the root work too. From a full
 * enumeration's second page on, the map of the scope's raw hashes answers
 * instead of the lookups, and stays true: a record applied earlier in the
 * cycle is never skipped on stale bytes, a page that went the normal way
 * turns the map off, an incremental cycle never builds it. The map a
 * cycle read is filed in the state dir when nothing wrote to the scope, and
 * the next cycle loads it only while the scope's generation is the same:
 * every write (apply, mark missing, delete, purge) moves it, so a filed map
 * older than a write, or a torn file, is never used: the store is read.
 * A page all of whose records matched is memorized with the map: the same
 * bytes at the same page number and generation skip the scan (a changed
 * trailer does not matter, a changed head or array does), and only while
 * no page of the cycle had a record to apply.
 */
#include <errno.h>
#include <stdio.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "diff.h"
#include "event.h"
#include "json.h"
#include "poll_int.h"
#include "snapshot.h"
#include "store.h"
#include "testlib.h"
#include "util.h"

#define ALL_TYPES (EVENT_TYPE_CREATED | EVENT_TYPE_UPDATED | EVENT_TYPE_DELETED)

struct fixture {
    struct store *store;
    struct catalog_trigger def;
    struct poller p;
    char *dir;
};

static void setup(struct fixture *f, const char *name, const char *records)
{
    memset(f, 0, sizeof(*f));
    f->dir = test_tmp_path("test_rawpage", name);
    test_rm_store(f->dir);
    struct store_options o = {.map_size = 8u << 20, .max_size = 256ULL << 20};
    CHECK_INT(store_open(f->dir, &o, &f->store), 0);
    if (f->store == NULL) {
        exit(1);
    }
    f->def.records = (char *)records;
    f->p.def = &f->def;
    f->p.env.store = f->store;
    const char *parts[] = {"t", "loc"};
    f->p.prefix = snapshot_key_prefix(parts, 2, &f->p.prefix_len);
}

static void teardown(struct fixture *f)
{
    poller__raw_free(&f->p);
    idset_finish(&f->p.seen); /* use_map sizes it */
    free(f->p.prefix);
    store_close(f->store);
    test_rm_store(f->dir);
    free(f->dir);
}

struct commit {
    struct poller *p;
    const cJSON *records;
    struct idset *seen;
    struct snapshot_stats st;
};

static int commit_body(struct store_txn *txn, void *ud)
{
    struct commit *c = ud;
    struct snapshot_scope sc = {
        .trigger = "t",
        .location_id = "loc",
        .prefix = c->p->prefix,
        .prefix_len = c->p->prefix_len,
        .id_field = "id",
        .emit = ALL_TYPES,
    };
    poller__raw_scope(c->p, &sc);
    memset(&c->st, 0, sizeof(c->st));
    return snapshot_apply_records(txn, &sc, c->records, c->seen, &c->st, NULL, NULL);
}

/*
 * One page: through the fast path (want_fast) or the normal parse, then
 * committed. Returns the stats; *ids gets the ids the records carry, in order.
 */
static struct snapshot_stats page(struct fixture *f, const char *text, bool want_fast, char *ids,
                                  size_t idlen)
{
    struct http_response resp = {.status = 200};
    buf_init(&resp.body, 1 << 20);
    buf_append_str(&resp.body, text);
    cJSON *body = NULL;
    cJSON *records = NULL;
    f->p.raw.active = false;
    bool fast = poller__raw_page(&f->p, &resp, &body, &records);
    CHECK_INT(fast, want_fast);
    if (!fast) {
        CHECK_INT(json_parse_arena(text, strlen(text), &body, NULL), 0);
    }
    const cJSON *list = fast ? records : poller__records(&f->p, body);
    struct idset seen;
    idset_init(&seen);
    struct commit c = {.p = &f->p, .records = list, .seen = &seen};
    CHECK_INT(store_write(f->store, commit_body, &c), 0);
    if (ids != NULL) {
        ids[0] = '\0';
        const cJSON *rec;
        cJSON_ArrayForEach(rec, list)
        {
            const char *id = json_get_string(rec, "id");
            size_t used = strlen(ids);
            snprintf(ids + used, idlen - used, "%s%s", used ? " " : "", id ? id : "-");
        }
        CHECK_INT(seen.count, (size_t)cJSON_GetArraySize(list));
    }
    idset_finish(&seen);
    cJSON_Delete(records);
    json_arena_free(body);
    buf_finish(&resp.body);
    return c.st;
}

static void check_stats(const struct snapshot_stats *st, unsigned created, unsigned updated,
                        unsigned unchanged, unsigned events)
{
    CHECK_INT(st->created, created);
    CHECK_INT(st->updated, updated);
    CHECK_INT(st->unchanged, unchanged);
    CHECK_INT(st->events, events);
}

/* The entry of id: its raw hash must be that of text's bytes (NULL: no SNAP_RAW). */
static void check_raw(struct fixture *f, const char *id, const char *text)
{
    char *key = xasprintf("%s%s", f->p.prefix, id);
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(f->store, false, &txn), 0);
    const void *val = NULL;
    size_t vlen = 0;
    struct snap_entry e;
    CHECK_INT(store_get(txn, STORE_SNAP, key, strlen(key), &val, &vlen), 0);
    CHECK_INT(diff_snap_decode(val, vlen, &e), 0);
    if (text == NULL) {
        CHECK((e.flags & SNAP_RAW) == 0);
    } else {
        struct hash128 want;
        hash128_bytes(text, strlen(text), &want);
        CHECK((e.flags & SNAP_RAW) != 0 && hash128_eq(&e.raw, &want));
    }
    store_txn_abort(txn);
    free(key);
}

#define REC_A "{\"id\":\"a\",\"name\":\"Ada\",\"child\":{\"id\":\"nested\"}}"
#define REC_A2 "{\"child\":{\"id\":\"nested\"},\"name\":\"Ada\",\"id\":\"a\"}"
#define REC_B "{\"id\":\"b\",\"name\":\"Bo\"}"
#define REC_B2 "{\"id\":\"b\",\"name\":\"Bob\"}"
#define REC_C "{\"id\":\"c\",\"tags\":[\"x\"]}"

static void test_fast_path(void)
{
    struct fixture f;
    setup(&f, "fast", "contacts");
    char ids[256];
    const char *p1 = "{\"contacts\":[" REC_A ", " REC_B ",\n" REC_C "],\"total\":3}";

    /* First page: every record parsed and created, raw hashes stored. */
    struct snapshot_stats st = page(&f, p1, true, ids, sizeof(ids));
    check_stats(&st, 3, 0, 0, 3);
    CHECK_INT(f.p.raw.parsed, 3);
    CHECK_INT(f.p.raw.skipped, 0);
    CHECK_INT(st.seen_stored, 0); /* every id was new to the store */
    CHECK(!f.p.raw.v[2].parsed_same);
    check_raw(&f, "a", REC_A);
    check_raw(&f, "b", REC_B);
    check_raw(&f, "c", REC_C);

    /* The same bytes: only the last record is parsed; nothing changes. */
    st = page(&f, p1, true, ids, sizeof(ids));
    check_stats(&st, 0, 0, 3, 0);
    CHECK_INT(f.p.raw.parsed, 1);
    CHECK_INT(f.p.raw.skipped, 2);
    CHECK_STR(ids, "a b c"); /* stubs keep order and ids; every id reached `seen` */
    CHECK_INT(st.seen_stored, 3); /* ids new to `seen` whose entry existed (cycle.c's proof) */
    /* The last record is parsed (paging reads it) but applied as unchanged, like a stub. */
    CHECK(f.p.raw.v[2].parsed_same);

    /* a reordered (no event, raw hash updated), b changed (one event). */
    const char *p2 = "{\"contacts\":[" REC_A2 "," REC_B2 "," REC_C "],\"total\":3}";
    st = page(&f, p2, true, ids, sizeof(ids));
    check_stats(&st, 0, 1, 2, 1);
    CHECK_INT(f.p.raw.parsed, 3);
    CHECK_INT(st.seen_stored, 3);
    CHECK(f.p.raw.v[2].parsed_same); /* c's bytes did not change */
    CHECK(!f.p.raw.v[1].parsed_same);
    check_raw(&f, "a", REC_A2);
    check_raw(&f, "b", REC_B2);
    st = page(&f, p2, true, ids, sizeof(ids));
    check_stats(&st, 0, 0, 3, 0);
    CHECK_INT(f.p.raw.parsed, 1);

    /* The normal path (no raw hash known) keeps the stored raw hash of an
     * unchanged record, and the fast path still trusts it afterwards. */
    f.def.records = (char *)"contacts.x"; /* a dotted path: never the fast path */
    st = page(&f, "{\"contacts\":{\"x\":[" REC_A "]}}", false, NULL, 0);
    check_stats(&st, 0, 0, 1, 0);
    check_raw(&f, "a", REC_A2);
    f.def.records = (char *)"contacts";
    st = page(&f, p2, true, ids, sizeof(ids));
    check_stats(&st, 0, 0, 3, 0);
    CHECK_INT(f.p.raw.parsed, 1);
    teardown(&f);
}

static int mark_missing_body(struct store_txn *txn, void *ud)
{
    struct poller *p = ud;
    struct snapshot_scope sc = {.prefix = p->prefix, .prefix_len = p->prefix_len};
    return snapshot_mark_missing(txn, &sc, "a", 7);
}

/* Rewrites a's entry as pollen before XXH3 wrote it (format 1). */
static int make_format1_body(struct store_txn *txn, void *ud)
{
    struct poller *p = ud;
    char *key = xasprintf("%sa", p->prefix);
    const void *val = NULL;
    size_t vlen = 0;
    struct snap_entry e;
    int rc = store_get(txn, STORE_SNAP, key, strlen(key), &val, &vlen);
    if (rc == 0) {
        rc = diff_snap_decode(val, vlen, &e);
    }
    struct buf b;
    buf_init(&b, 4096);
    if (rc == 0) {
        cJSON *rec = cJSON_Parse("{\"v\":1,\"id\":\"a\"}");
        diff_record_hash_legacy(rec, NULL, NULL, &e.hash);
        cJSON_Delete(rec);
        e.format = DIFF_SNAP_FORMAT1;
        e.flags &= ~SNAP_RAW;
        rc = diff_snap_encode(&e, &b);
    }
    if (rc == 0) {
        rc = store_put(txn, STORE_SNAP, key, strlen(key), b.data, b.len);
    }
    buf_finish(&b);
    free(key);
    return rc;
}

/* Records whose entry cannot vouch for their bytes are always parsed. */
static void test_never_skipped(void)
{
    struct fixture f;
    setup(&f, "never", "contacts");
    const char *p1 = "{\"contacts\":[{\"id\":\"a\",\"v\":1},{\"i\\u0064\":\"e\",\"v\":2},"
                     "{\"id\":\"z\"}]}";
    struct snapshot_stats st = page(&f, p1, true, NULL, 0);
    check_stats(&st, 3, 0, 0, 3);
    st = page(&f, p1, true, NULL, 0);
    check_stats(&st, 0, 0, 3, 0);
    CHECK_INT(f.p.raw.parsed, 2); /* the escaped key's record, and the last one */

    /* A held deletion: parsed, so that snapshot.c clears it. */
    CHECK_INT(store_write(f.store, mark_missing_body, &f.p), 0);
    st = page(&f, p1, true, NULL, 0);
    check_stats(&st, 0, 0, 3, 0);
    CHECK_INT(f.p.raw.parsed, 3);
    st = page(&f, p1, true, NULL, 0);
    CHECK_INT(f.p.raw.parsed, 2);

    /* A format-1 entry (MurmurHash3, no raw hash): parsed, migrated silently. */
    CHECK_INT(store_write(f.store, make_format1_body, &f.p), 0);
    st = page(&f, p1, true, NULL, 0);
    check_stats(&st, 0, 0, 3, 0);
    CHECK_INT(f.p.raw.parsed, 3);
    check_raw(&f, "a", "{\"id\":\"a\",\"v\":1}");
    st = page(&f, p1, true, NULL, 0);
    CHECK_INT(f.p.raw.parsed, 2);
    teardown(&f);
}

/* What the fast path leaves to the normal parse. */
static void test_not_eligible(void)
{
    struct fixture f;
    setup(&f, "noteligible", "contacts");
    struct http_response resp = {.status = 200};
    cJSON *body = NULL;
    cJSON *records = NULL;
    static const char *const pages[] = {
        "{\"contacts\":[{\"id\":\"a\"},]}",      /* malformed */
        "{\"contacts\":[{\"id\":\"a\"}]",        /* truncated */
        "{\"contacts\":[{\"id\":\"a\",\"v\":tru}]}", /* the scanner passes it, the parser not */
        "{\"other\":[]}",
        "",
    };
    for (size_t i = 0; i < ARRAY_SIZE(pages); i++) {
        buf_init(&resp.body, 1 << 20);
        buf_append_str(&resp.body, pages[i]);
        CHECK(!poller__raw_page(&f.p, &resp, &body, &records));
        CHECK(body == NULL && records == NULL && !f.p.raw.active);
        buf_finish(&resp.body);
    }
    buf_init(&resp.body, 1 << 20);
    buf_append_str(&resp.body, "{\"data\":{\"items\":[{\"id\":\"a\"}]}}");
    f.def.records = (char *)"data.items";
    CHECK(!poller__raw_page(&f.p, &resp, &body, &records));
    f.def.records = (char *)"data";
    f.def.single = true;
    CHECK(!poller__raw_page(&f.p, &resp, &body, &records));
    f.def.single = false;
    resp.status = 500;
    CHECK(!poller__raw_page(&f.p, &resp, &body, &records));
    buf_finish(&resp.body);
    teardown(&f);
}

static void test_root_array(void)
{
    struct fixture f;
    setup(&f, "root", ".");
    char ids[64];
    const char *p1 = " [" REC_B "," REC_C "] ";
    struct snapshot_stats st = page(&f, p1, true, ids, sizeof(ids));
    check_stats(&st, 2, 0, 0, 2);
    st = page(&f, p1, true, ids, sizeof(ids));
    check_stats(&st, 0, 0, 2, 0);
    CHECK_INT(f.p.raw.parsed, 1);
    CHECK_STR(ids, "b c");
    st = page(&f, "[]", true, ids, sizeof(ids));
    check_stats(&st, 0, 0, 0, 0);
    CHECK_STR(ids, "");
    teardown(&f);
}

/* The map of raw hashes (a full enumeration from its second page on). */
static void test_map(void)
{
    struct fixture f;
    setup(&f, "map", "contacts");
    char ids[256];
    const char *p1 = "{\"contacts\":[" REC_A "," REC_B "," REC_C "],\"total\":3}";
    const char *p2 = "{\"contacts\":[" REC_B2 "," REC_C "],\"total\":3}";
    struct snapshot_stats st = page(&f, p1, true, ids, sizeof(ids)); /* baseline, page 1 */
    check_stats(&st, 3, 0, 0, 3);
    CHECK_INT(f.p.raw.map_state, RAW_MAP_NONE);

    /* Page 2 of a cycle: the map is read and answers; the same bytes skip. */
    f.p.page = 1;
    st = page(&f, p1, true, ids, sizeof(ids));
    CHECK_INT(f.p.raw.map_state, RAW_MAP_READY);
    CHECK_INT(f.p.raw.map.count, 3);
    check_stats(&st, 0, 0, 3, 0);
    CHECK_INT(f.p.raw.parsed, 1);
    CHECK_STR(ids, "a b c");

    /* b changes on one page, then shows its old bytes again in the same
     * cycle: the map forgot b when it was applied, so the old bytes are
     * parsed and compared with the stored (new) content: an event. */
    f.p.page = 2;
    st = page(&f, p2, true, NULL, 0);
    check_stats(&st, 0, 1, 1, 1);
    f.p.page = 3;
    st = page(&f, p1, true, NULL, 0);
    check_stats(&st, 0, 1, 2, 1);
    CHECK_INT(f.p.raw.parsed, 2); /* b and the last record */
    check_raw(&f, "b", REC_B);

    /* A new id on a later page is created (the map does not know it). */
    f.p.page = 4;
    st = page(&f, "{\"contacts\":[{\"id\":\"n\"}," REC_C "]}", true, NULL, 0);
    check_stats(&st, 1, 0, 1, 1);

    /* A page that goes the normal way turns the map off for the cycle; the
     * lookups still skip what is unchanged. */
    f.def.records = (char *)"contacts.x";
    st = page(&f, "{\"contacts\":{\"x\":[" REC_B2 "]}}", false, NULL, 0);
    check_stats(&st, 0, 1, 0, 1);
    CHECK_INT(f.p.raw.map_state, RAW_MAP_OFF);
    f.def.records = (char *)"contacts";
    st = page(&f, p1, true, NULL, 0);
    check_stats(&st, 0, 1, 2, 1); /* b's old bytes again: seen by the lookup */
    CHECK_INT(f.p.raw.parsed, 2);
    CHECK_INT(f.p.raw.map_state, RAW_MAP_OFF);

    /* A new cycle: the map is rebuilt, from its second page only. */
    poller__raw_cycle_reset(&f.p);
    CHECK_INT(f.p.raw.map_state, RAW_MAP_NONE);
    f.p.page = 0;
    st = page(&f, p1, true, NULL, 0);
    CHECK_INT(f.p.raw.map_state, RAW_MAP_NONE);
    CHECK_INT(f.p.raw.parsed, 1);

    /* An incremental cycle never builds it. */
    f.p.page = 1;
    f.p.incr_cycle = true;
    st = page(&f, p1, true, NULL, 0);
    check_stats(&st, 0, 0, 3, 0);
    CHECK_INT(f.p.raw.map_state, RAW_MAP_NONE);
    f.p.incr_cycle = false;

    /* A record the scanner cannot name (an escaped key) may still carry an
     * id once parsed: applying it turns the map off. */
    st = page(&f, p1, true, NULL, 0);
    CHECK_INT(f.p.raw.map_state, RAW_MAP_READY);
    st = page(&f, "{\"contacts\":[{\"i\\u0064\":\"b\",\"name\":\"Bo\"}," REC_C "]}", true, NULL, 0);
    check_stats(&st, 0, 0, 2, 0);
    CHECK_INT(f.p.raw.map_state, RAW_MAP_OFF);
    teardown(&f);
}


/* The scope's generation now (ENOENT: none). */
static int gen_of(struct fixture *f, struct snapshot_gen *g)
{
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(f->store, false, &txn), 0);
    struct snapshot_scope sc = {.prefix = f->p.prefix, .prefix_len = f->p.prefix_len};
    int rc = snapshot_raw_gen(txn, &sc, g);
    store_txn_abort(txn);
    return rc;
}

static bool gen_eq(const struct snapshot_gen *a, const struct snapshot_gen *b)
{
    return a->txn == b->txn && a->nonce == b->nonce;
}

/* The path of the one file named kind* in the state dir (NULL: none). */
static char *filed(struct fixture *f, const char *kind)
{
    DIR *d = opendir(f->dir);
    char *path = NULL;
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, kind, strlen(kind)) == 0 && strstr(de->d_name, ".tmp") == NULL) {
            CHECK(path == NULL);
            free(path);
            path = xasprintf("%s/%s", f->dir, de->d_name);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return path;
}

static char *filed_path(struct fixture *f)
{
    return filed(f, "rawmap-");
}

static void remove_filed(struct fixture *f)
{
    const char *kinds[] = {"rawmap-", "rawmemo-"};
    for (size_t i = 0; i < 2; i++) {
        char *path = filed(f, kinds[i]);
        if (path != NULL) {
            unlink(path);
        }
        free(path);
    }
}

static int delete_body(struct store_txn *txn, void *ud)
{
    struct poller *p = ud;
    struct snapshot_scope sc = {.trigger = "t", .location_id = "loc", .prefix = p->prefix,
                                .prefix_len = p->prefix_len, .id_field = "id", .silent = true};
    struct snapshot_stats st = {0};
    return snapshot_delete(txn, &sc, "n", &st, NULL, NULL);
}

static int purge_body(struct store_txn *txn, void *ud)
{
    struct poller *p = ud;
    struct snapshot_scope sc = {.prefix = p->prefix, .prefix_len = p->prefix_len};
    return snapshot_purge(txn, &sc);
}

/* One full cycle of page 2 (p1's bytes) after the cycle's reset; returns its stats. */
static struct snapshot_stats full_cycle(struct fixture *f, const char *text)
{
    poller__raw_cycle_reset(&f->p); /* files the last cycle's map, if it may */
    f->p.page = 1;
    return page(f, text, true, NULL, 0);
}

/* A fixture whose poller files its map in the fixture's dir (cfg: its config). */
static void setup_filing(struct fixture *f, struct config *cfg, const char *name)
{
    setup(f, name, "contacts");
    memset(cfg, 0, sizeof(*cfg));
    cfg->state_dir = f->dir;
    f->p.env.cfg = cfg;
}

/* The map kept between runs, valid only for the generation it was read at. */
static void test_filed_map(void)
{
    struct fixture f;
    struct config cfg;
    setup_filing(&f, &cfg, "filed");
    const char *p1 = "{\"contacts\":[" REC_A "," REC_B "," REC_C "],\"total\":3}";
    const char *p2 = "{\"contacts\":[" REC_B2 "," REC_C "],\"total\":3}";
    struct snapshot_stats st = page(&f, p1, true, NULL, 0); /* baseline */
    check_stats(&st, 3, 0, 0, 3);
    struct snapshot_gen g0, g1;
    CHECK_INT(gen_of(&f, &g0), 0);
    CHECK(g0.nonce != 0);

    /* A no-change cycle reads the store; its end files the map. */
    st = full_cycle(&f, p1);
    check_stats(&st, 0, 0, 3, 0);
    CHECK(!f.p.raw.map_filed);
    CHECK(filed_path(&f) == NULL);
    poller__raw_cycle_reset(&f.p);
    char *path = filed_path(&f);
    CHECK(path != NULL);

    /* The next one loads it: same answers, same entry count for the deletion proof. */
    st = full_cycle(&f, p1);
    CHECK_INT(f.p.raw.map_state, RAW_MAP_READY);
    CHECK(f.p.raw.map_filed);
    check_stats(&st, 0, 0, 3, 0);
    CHECK_INT(f.p.raw.parsed, 1);
    CHECK_INT(f.p.fill_entries, 3);
    /* With the map filed, even a cycle's first page uses it. */
    poller__raw_cycle_reset(&f.p);
    f.p.page = 0;
    st = page(&f, p1, true, NULL, 0);
    CHECK_INT(f.p.raw.map_state, RAW_MAP_READY);
    CHECK(f.p.raw.map_filed);
    check_stats(&st, 0, 0, 3, 0);

    /* b changes in a cycle without the map (incremental): the generation
     * moves, so the filed map (b's old raw hash) is stale: the next cycle
     * reads the store, and b's old bytes are parsed and make their event. */
    poller__raw_cycle_reset(&f.p);
    f.p.incr_cycle = true;
    st = page(&f, p2, true, NULL, 0);
    check_stats(&st, 0, 1, 1, 1);
    f.p.incr_cycle = false;
    CHECK_INT(gen_of(&f, &g1), 0);
    CHECK(!gen_eq(&g0, &g1));
    CHECK(g1.nonce == g0.nonce && g1.txn > g0.txn);
    st = full_cycle(&f, p1);
    CHECK(!f.p.raw.map_filed);
    check_stats(&st, 0, 1, 2, 1); /* b back to its old bytes: an event, never skipped */
    check_raw(&f, "b", REC_B);

    /* That cycle wrote: its map is not filed; the next no-change cycle's is. */
    st = full_cycle(&f, p1);
    CHECK(!f.p.raw.map_filed);
    check_stats(&st, 0, 0, 3, 0);
    st = full_cycle(&f, p1);
    CHECK(f.p.raw.map_filed);
    check_stats(&st, 0, 0, 3, 0);

    /* A torn file is refused and rebuilt from the store (then filed again). */
    poller__raw_cycle_reset(&f.p);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    CHECK_INT(pwrite(fd, "XXXXXXXX", 8, 4096 + 40), 8);
    close(fd);
    st = full_cycle(&f, p1);
    CHECK(!f.p.raw.map_filed);
    CHECK_INT(f.p.raw.map_state, RAW_MAP_READY);
    check_stats(&st, 0, 0, 3, 0);
    st = full_cycle(&f, p1);
    CHECK(f.p.raw.map_filed);

    /* Every other write to the scope moves the generation too: a created
     * record, a held deletion, a delete, a purge. */
    poller__raw_cycle_reset(&f.p);
    CHECK_INT(gen_of(&f, &g0), 0);
    f.p.page = 0;
    st = page(&f, "{\"contacts\":[{\"id\":\"n\"}," REC_C "]}", true, NULL, 0);
    check_stats(&st, 1, 0, 1, 1);
    CHECK_INT(gen_of(&f, &g1), 0);
    CHECK(!gen_eq(&g0, &g1));
    CHECK_INT(store_write(f.store, mark_missing_body, &f.p), 0);
    CHECK_INT(gen_of(&f, &g0), 0);
    CHECK(!gen_eq(&g0, &g1));
    CHECK_INT(store_write(f.store, delete_body, &f.p), 0);
    CHECK_INT(gen_of(&f, &g1), 0);
    CHECK(!gen_eq(&g0, &g1));
    CHECK_INT(store_write(f.store, purge_body, &f.p), 0);
    CHECK_INT(gen_of(&f, &g0), 0);
    CHECK(g0.nonce != g1.nonce); /* purged: a new lineage, never an old generation again */
    st = full_cycle(&f, p1);
    CHECK(!f.p.raw.map_filed); /* the old file is for another generation */
    check_stats(&st, 3, 0, 0, 3);  /* and the purged records are created again */

    poller__raw_cycle_reset(&f.p);
    free(path);
    remove_filed(&f);
    teardown(&f);
}

/* Pages memorized with the filed map (rawmemo.c). */
static void test_memo(void)
{
    struct fixture f;
    struct config cfg;
    setup_filing(&f, &cfg, "memo");
    const char *p1 = "{\"contacts\":[" REC_A "," REC_B "," REC_C "],\"total\":3,\"traceId\":\"t1\"}";
    const char *p1t = "{\"contacts\":[" REC_A "," REC_B "," REC_C "],\"total\":3,\"traceId\":\"t2\"}";
    const char *p1h = "{\"contactz\":[" REC_A "," REC_B "," REC_C "],\"contacts\":[" REC_C "]}";
    const char *p2 = "{\"contacts\":[" REC_B2 "," REC_C "],\"total\":3}";
    char ids[256];
    struct snapshot_stats st = page(&f, p1, true, NULL, 0); /* baseline */
    check_stats(&st, 3, 0, 0, 3);

    /* Cycle 1: pages 2 and 3 (p->page 1, 2) match entirely: memorized, filed at the end. */
    st = full_cycle(&f, p1);
    f.p.page = 2;
    st = page(&f, p1, true, NULL, 0);
    check_stats(&st, 0, 0, 3, 0);
    CHECK_INT(f.p.raw.memo.hits, 0);
    CHECK(f.p.raw.memo.added);

    /* Cycle 2: the map and memo come from their files; page 3's bytes are
     * memorized (another trace id after the array does not matter). */
    st = full_cycle(&f, p1);
    CHECK(f.p.raw.map_filed);
    f.p.page = 2;
    st = page(&f, p1t, true, ids, sizeof(ids));
    CHECK_INT(f.p.raw.memo.hits, 1);
    check_stats(&st, 0, 0, 3, 0);
    CHECK_INT(f.p.raw.parsed, 1);
    CHECK_STR(ids, "a b c");
    /* The same array under another member name is not that page. */
    f.p.page = 1;
    st = page(&f, p1h, true, ids, sizeof(ids));
    CHECK_INT(f.p.raw.memo.hits, 1);
    CHECK_STR(ids, "c");

    /* Cycle 3: b changes on page 2; page 3 then shows b's old bytes: no hit
     * (a record was applied in this cycle), b is parsed: its event. */
    st = full_cycle(&f, p2);
    check_stats(&st, 0, 1, 1, 1);
    f.p.page = 2;
    st = page(&f, p1, true, NULL, 0);
    CHECK_INT(f.p.raw.memo.hits, 0);
    check_stats(&st, 0, 1, 2, 1);
    check_raw(&f, "b", REC_B);

    /* Cycle 4: that cycle wrote, so the memo filed before is of an older
     * generation: not loaded, and the pages are scanned (and memorized again). */
    st = full_cycle(&f, p1);
    CHECK(!f.p.raw.map_filed);
    f.p.page = 2;
    st = page(&f, p1, true, NULL, 0);
    CHECK_INT(f.p.raw.memo.hits, 0);
    check_stats(&st, 0, 0, 3, 0);
    /* Cycle 5 hits again; cycle 6 after a write elsewhere (incremental) does not. */
    st = full_cycle(&f, p1);
    f.p.page = 2;
    st = page(&f, p1, true, NULL, 0);
    CHECK_INT(f.p.raw.memo.hits, 1);
    poller__raw_cycle_reset(&f.p);
    f.p.incr_cycle = true;
    st = page(&f, p2, true, NULL, 0);
    check_stats(&st, 0, 1, 1, 1);
    f.p.incr_cycle = false;
    st = full_cycle(&f, p1);
    check_stats(&st, 0, 1, 2, 1); /* b's old bytes: its event */
    f.p.page = 2;
    st = page(&f, p1, true, NULL, 0);
    CHECK_INT(f.p.raw.memo.hits, 0);
    check_stats(&st, 0, 0, 3, 0);

    poller__raw_cycle_reset(&f.p);
    remove_filed(&f);
    teardown(&f);
}

int main(void)
{
    json_arena_install();
    test_fast_path();
    test_never_skipped();
    test_not_eligible();
    test_root_array();
    test_map();
    test_filed_map();
    test_memo();
    json_scratch_release();
    return test_done("rawpage");
}

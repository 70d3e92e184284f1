/*
 * Unit tests for snapshot.c, the transactional core of polling: records are
 * diffed against a trigger's snapshot in LMDB and every difference becomes
 * an event in the event log, in the caller's write transaction.
 *
 * Each case runs snapshot_* inside store_write on a real store under
 * POLLEN_TEST_TMP and reads back what was committed: the events in the log
 * (type, record_id, record, changes, ids) and the snapshot entries (version,
 * flags, the stored copy). Covered: created / updated / unchanged / deleted
 * decisions and the field-level `changes`; the emit bits; ignore and fields;
 * the silent baseline and its SNAP_BASELINE flag; records without a valid
 * id; held deletions (SNAP_MISSING) and purge; deterministic event ids; an
 * oversized event written trimmed; and that the snapshot and its events
 * commit together or not at all (a failing body, a failing on_event or
 * change callback leaves neither).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "event.h"
#include "evlog.h"
#include "idset.h"
#include "json.h"
#include "log.h"
#include "snapshot.h"
#include "store.h"
#include "testlib.h"
#include "util.h"

#define ALL_TYPES (EVENT_TYPE_CREATED | EVENT_TYPE_UPDATED | EVENT_TYPE_DELETED)

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                  */

static struct store *fresh_store(const char *name)
{
    char *dir = test_tmp_path("test_snapshot", name);
    test_rm_store(dir);
    struct store_options o = {.map_size = 8u << 20, .max_size = 256ULL << 20};
    struct store *s = NULL;
    CHECK_INT(store_open(dir, &o, &s), 0);
    free(dir);
    if (s == NULL) {
        exit(1);
    }
    return s;
}

static void close_store(struct store *s, const char *name)
{
    store_close(s);
    char *dir = test_tmp_path("test_snapshot", name);
    test_rm_store(dir);
    free(dir);
}

/* A scope of trigger t on location loc, with its own prefix; free with free_scope. */
static struct snapshot_scope make_scope(const char *t, const char *loc, unsigned emit)
{
    const char *parts[] = {t, loc};
    struct snapshot_scope sc = {
        .trigger = t,
        .location_id = loc,
        .id_field = "id",
        .emit = emit,
    };
    sc.prefix = snapshot_key_prefix(parts, 2, &sc.prefix_len);
    return sc;
}

static void free_scope(struct snapshot_scope *sc)
{
    free((char *)sc->prefix);
}

/* What one store_write does, and what it saw. */
struct op {
    const struct snapshot_scope *sc;
    cJSON *records;          /* apply these (NULL: no apply) */
    const char *delete_id;   /* then delete this one (NULL: none) */
    const char *missing_id;  /* then mark this one missing (NULL: none) */
    bool purge;              /* then purge the scope */
    int body_rc;             /* the body returns this at the end (0: commit) */
    int cb_fail_on;          /* the change callback fails on its Nth call (0: never) */
    struct idset *seen;
    /* out */
    int rc;                  /* the last snapshot_* return */
    struct snapshot_stats st;
    char changes[512];       /* "created:a updated:b ..." from the change callback */
    int cb_calls;
};

static int on_change(struct store_txn *txn, const char *id, enum snapshot_change c, void *ud)
{
    (void)txn;
    struct op *op = ud;
    op->cb_calls++;
    size_t used = strlen(op->changes);
    snprintf(op->changes + used, sizeof(op->changes) - used, "%s%s:%s", used > 0 ? " " : "",
             snapshot_change_name(c), id);
    return op->cb_calls == op->cb_fail_on ? -ECANCELED : 0;
}

/* The store_write body: retryable, so it resets every output first. */
static int op_body(struct store_txn *txn, void *ud)
{
    struct op *op = ud;
    op->rc = 0;
    op->st = (struct snapshot_stats){0};
    op->changes[0] = '\0';
    op->cb_calls = 0;
    if (op->records != NULL) {
        op->rc = snapshot_apply_records(txn, op->sc, op->records, op->seen, &op->st, on_change,
                                        op);
    }
    if (op->rc == 0 && op->delete_id != NULL) {
        op->rc = snapshot_delete(txn, op->sc, op->delete_id, &op->st, on_change, op);
    }
    if (op->rc == 0 && op->missing_id != NULL) {
        op->rc = snapshot_mark_missing(txn, op->sc, op->missing_id, 7);
    }
    if (op->rc == 0 && op->purge) {
        op->rc = snapshot_purge(txn, op->sc);
    }
    if (op->body_rc != 0) {
        return op->body_rc;
    }
    /* -ENOENT from a delete is an answer, not a failed txn. */
    return op->rc == -ENOENT ? store_txn_error(txn) : op->rc;
}

/* Applies the records of json (an array) to sc in one store_write; returns its rc. */
static int apply(struct store *s, const struct snapshot_scope *sc, const char *json, struct op *op)
{
    op->sc = sc;
    op->records = cJSON_Parse(json);
    CHECK(op->records != NULL);
    int rc = store_write(s, op_body, op);
    cJSON_Delete(op->records);
    op->records = NULL;
    return rc;
}

static int run_op(struct store *s, const struct snapshot_scope *sc, struct op *op)
{
    op->sc = sc;
    return store_write(s, op_body, op);
}

static int collect_event(uint64_t seq, const char *json, size_t len, void *ud)
{
    cJSON *ev = NULL;
    CHECK_INT(json_parse(json, len, &ev, NULL), 0);
    double got = 0;
    CHECK(json_get_number(ev, "seq", &got) && (uint64_t)got == seq);
    cJSON_AddItemToArray(ud, ev);
    return 0;
}

/* The events committed since *mark (an array the caller frees); moves *mark past them. */
static cJSON *new_events(struct store *s, uint64_t *mark)
{
    cJSON *arr = cJSON_CreateArray();
    uint64_t next = 0;
    CHECK_INT(evlog_read(s, *mark + 1, 1000, collect_event, arr, &next), 0);
    *mark = next - 1;
    return arr;
}

/* The event of type for record id in evs, or NULL. */
static const cJSON *event_of(const cJSON *evs, const char *type, const char *id)
{
    const cJSON *ev;
    cJSON_ArrayForEach(ev, evs)
    {
        const char *t = json_get_string(ev, "type");
        const char *r = json_get_string(ev, "record_id");
        if (t != NULL && r != NULL && strcmp(t, type) == 0 && strcmp(r, id) == 0) {
            return ev;
        }
    }
    return NULL;
}

/* True if v prints canonically as want (JSON text). */
static bool json_is(const cJSON *v, const char *want)
{
    cJSON *w = cJSON_Parse(want);
    bool same = v != NULL && w != NULL && json_equal(v, w);
    if (!same) {
        char *got = v != NULL ? cJSON_PrintUnformatted(v) : NULL;
        fprintf(stderr, "    got %s, want %s\n", got != NULL ? got : "(none)", want);
        cJSON_free(got);
    }
    cJSON_Delete(w);
    return same;
}

/* The snapshot entry of id in sc (its copy in *copy if not NULL, malloc'd). Returns 0 or
 * -ENOENT. */
static int entry_of(struct store *s, const struct snapshot_scope *sc, const char *id,
                    struct snap_entry *e, char **copy)
{
    char *key = xasprintf("%.*s%s", (int)sc->prefix_len, sc->prefix, id);
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    const void *val = NULL;
    size_t vlen = 0;
    int rc = store_get(txn, STORE_SNAP, key, strlen(key), &val, &vlen);
    if (rc == 0) {
        CHECK_INT(diff_snap_decode(val, vlen, e), 0);
        e->json = NULL;
    }
    if (copy != NULL) {
        *copy = NULL;
        if (store_get(txn, STORE_SNAPDATA, key, strlen(key), &val, &vlen) == 0) {
            *copy = xstrndup(val, vlen);
        }
    }
    store_txn_abort(txn);
    free(key);
    return rc;
}

static void check_stats(const struct snapshot_stats *st, unsigned created, unsigned updated,
                        unsigned deleted, unsigned unchanged, unsigned invalid, unsigned events)
{
    CHECK_INT(st->created, created);
    CHECK_INT(st->updated, updated);
    CHECK_INT(st->deleted, deleted);
    CHECK_INT(st->unchanged, unchanged);
    CHECK_INT(st->invalid, invalid);
    CHECK_INT(st->events, events);
}

/* ------------------------------------------------------------------------ */
/* created, updated, unchanged, deleted                                      */

static void test_lifecycle(void)
{
    struct store *s = fresh_store("life");
    struct snapshot_scope sc = make_scope("t1", "loc1", ALL_TYPES);
    uint64_t mark = 0;
    struct op op = {0};

    /* Two new records: two created events, in order, with the whole record. */
    CHECK_INT(apply(s, &sc, "[{\"id\":\"a\",\"name\":\"A\",\"n\":1},{\"id\":\"b\",\"name\":\"B\"}]",
                    &op),
              0);
    check_stats(&op.st, 2, 0, 0, 0, 0, 2);
    CHECK_STR(op.changes, "created:a created:b");
    cJSON *evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 2);
    const cJSON *ca = cJSON_GetArrayItem(evs, 0);
    CHECK_STR(json_get_string(ca, "type"), "created");
    CHECK_STR(json_get_string(ca, "record_id"), "a");
    CHECK_STR(json_get_string(ca, "trigger"), "t1");
    CHECK_STR(json_get_string(ca, "location"), "loc1");
    CHECK(json_is(cJSON_GetObjectItemCaseSensitive(ca, "record"),
                  "{\"id\":\"a\",\"name\":\"A\",\"n\":1}"));
    CHECK(cJSON_GetObjectItemCaseSensitive(ca, "changes") == NULL);
    const char *id_a = json_get_string(ca, "id");
    CHECK(id_a != NULL && strlen(id_a) == 32);
    CHECK(json_get_string(ca, "time") != NULL);
    CHECK_STR(json_get_string(cJSON_GetArrayItem(evs, 1), "record_id"), "b");
    char *first_id = xstrdup(id_a != NULL ? id_a : "");
    cJSON_Delete(evs);

    struct snap_entry e;
    char *copy = NULL;
    CHECK_INT(entry_of(s, &sc, "a", &e, &copy), 0);
    CHECK_INT(e.version, 1);
    CHECK_INT(e.flags, 0);
    CHECK_STR(copy, "{\"id\":\"a\",\"name\":\"A\",\"n\":1}");
    free(copy);

    /* The same records again: nothing changes, nothing is written. */
    CHECK_INT(apply(s, &sc, "[{\"id\":\"a\",\"name\":\"A\",\"n\":1},{\"id\":\"b\",\"name\":\"B\"}]",
                    &op),
              0);
    check_stats(&op.st, 0, 0, 0, 2, 0, 0);
    CHECK_STR(op.changes, "");
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 0);
    cJSON_Delete(evs);

    /* Member order does not matter: the same record in another order. */
    CHECK_INT(apply(s, &sc, "[{\"n\":1,\"name\":\"A\",\"id\":\"a\"}]", &op), 0);
    check_stats(&op.st, 0, 0, 0, 1, 0, 0);

    /* One field changed, one added, one removed: one updated event whose
     * changes list exactly those, old and new. */
    CHECK_INT(apply(s, &sc,
                    "[{\"id\":\"a\",\"name\":\"A2\",\"email\":\"a@x\"},{\"id\":\"b\",\"name\":\"B\"}]",
                    &op),
              0);
    check_stats(&op.st, 0, 1, 0, 1, 0, 1);
    CHECK_STR(op.changes, "updated:a");
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 1);
    const cJSON *ua = event_of(evs, "updated", "a");
    CHECK(ua != NULL);
    CHECK(json_is(cJSON_GetObjectItemCaseSensitive(ua, "changes"),
                  "{\"email\":{\"old\":null,\"new\":\"a@x\"},\"n\":{\"old\":1,\"new\":null},"
                  "\"name\":{\"old\":\"A\",\"new\":\"A2\"}}"));
    CHECK(json_is(cJSON_GetObjectItemCaseSensitive(ua, "record"),
                  "{\"id\":\"a\",\"name\":\"A2\",\"email\":\"a@x\"}"));
    CHECK(ua != NULL && strcmp(json_get_string(ua, "id"), first_id) != 0);
    cJSON_Delete(evs);
    CHECK_INT(entry_of(s, &sc, "a", &e, &copy), 0);
    CHECK_INT(e.version, 2);
    CHECK_STR(copy, "{\"id\":\"a\",\"name\":\"A2\",\"email\":\"a@x\"}");
    free(copy);

    /* Deleted: the event carries the last known copy; the entry is gone. */
    op = (struct op){.delete_id = "b"};
    CHECK_INT(run_op(s, &sc, &op), 0);
    CHECK_INT(op.rc, 0);
    check_stats(&op.st, 0, 0, 1, 0, 0, 1);
    CHECK_STR(op.changes, "deleted:b");
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 1);
    const cJSON *db = event_of(evs, "deleted", "b");
    CHECK(db != NULL);
    CHECK(json_is(cJSON_GetObjectItemCaseSensitive(db, "record"), "{\"id\":\"b\",\"name\":\"B\"}"));
    cJSON_Delete(evs);
    CHECK_INT(entry_of(s, &sc, "b", &e, &copy), -ENOENT);
    CHECK(copy == NULL);

    /* Deleting it again: -ENOENT, no event. */
    op = (struct op){.delete_id = "b"};
    CHECK_INT(run_op(s, &sc, &op), 0);
    CHECK_INT(op.rc, -ENOENT);
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 0);
    cJSON_Delete(evs);

    /* It comes back changed: created again, under a new event id. */
    op = (struct op){0};
    CHECK_INT(apply(s, &sc, "[{\"id\":\"b\",\"name\":\"B again\"}]", &op), 0);
    check_stats(&op.st, 1, 0, 0, 0, 0, 1);
    evs = new_events(s, &mark);
    CHECK(event_of(evs, "created", "b") != NULL);
    cJSON_Delete(evs);

    free(first_id);
    free_scope(&sc);
    close_store(s, "life");
}

/* The same changes derived in another store give the same event ids (a
 * re-run after a crash is recognisable); another trigger gives others. */
static void test_deterministic_ids(void)
{
    static const char *const steps[] = {
        "[{\"id\":\"r1\",\"v\":1}]",
        "[{\"id\":\"r1\",\"v\":2}]",
    };
    char ids[3][2][33] = {{{0}}};
    const char *triggers[] = {"same", "same", "other"};
    for (int run = 0; run < 3; run++) {
        struct store *s = fresh_store("ids");
        struct snapshot_scope sc = make_scope(triggers[run], "loc", ALL_TYPES);
        uint64_t mark = 0;
        for (int i = 0; i < 2; i++) {
            struct op op = {0};
            CHECK_INT(apply(s, &sc, steps[i], &op), 0);
            cJSON *evs = new_events(s, &mark);
            CHECK_INT(cJSON_GetArraySize(evs), 1);
            const char *id = json_get_string(cJSON_GetArrayItem(evs, 0), "id");
            str_copy(ids[run][i], sizeof(ids[run][i]), id != NULL ? id : "");
            cJSON_Delete(evs);
        }
        free_scope(&sc);
        close_store(s, "ids");
    }
    CHECK_STR(ids[0][0], ids[1][0]);
    CHECK_STR(ids[0][1], ids[1][1]);
    CHECK(strcmp(ids[0][0], ids[0][1]) != 0);
    CHECK(strcmp(ids[0][0], ids[2][0]) != 0);
    CHECK(strlen(ids[0][0]) == 32);
}

/* ------------------------------------------------------------------------ */
/* emit bits                                                                 */

static void test_emit_bits(void)
{
    static const struct {
        unsigned emit;
        int created, updated, deleted; /* events expected for each change */
    } cases[] = {
        {ALL_TYPES, 1, 1, 1},
        {EVENT_TYPE_CREATED, 1, 0, 0},
        {EVENT_TYPE_UPDATED, 0, 1, 0},
        {EVENT_TYPE_DELETED, 0, 0, 1},
        {EVENT_TYPE_CREATED | EVENT_TYPE_DELETED, 1, 0, 1},
        {0, 0, 0, 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int failures = test_failures;
        struct store *s = fresh_store("emit");
        struct snapshot_scope sc = make_scope("t", "loc", cases[i].emit);
        uint64_t mark = 0;
        struct op op = {0};
        CHECK_INT(apply(s, &sc, "[{\"id\":\"x\",\"v\":1}]", &op), 0);
        /* The snapshot and the change callback see every change, emitted or not. */
        CHECK_INT(op.st.created, 1);
        CHECK_STR(op.changes, "created:x");
        CHECK_INT(op.st.events, cases[i].created);
        cJSON *evs = new_events(s, &mark);
        CHECK_INT(cJSON_GetArraySize(evs), cases[i].created);
        cJSON_Delete(evs);

        CHECK_INT(apply(s, &sc, "[{\"id\":\"x\",\"v\":2}]", &op), 0);
        CHECK_INT(op.st.updated, 1);
        CHECK_STR(op.changes, "updated:x");
        evs = new_events(s, &mark);
        CHECK_INT(cJSON_GetArraySize(evs), cases[i].updated);
        if (cases[i].updated) {
            CHECK(json_is(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(evs, 0), "changes"),
                          "{\"v\":{\"old\":1,\"new\":2}}"));
        }
        cJSON_Delete(evs);
        struct snap_entry e;
        CHECK_INT(entry_of(s, &sc, "x", &e, NULL), 0);
        CHECK_INT(e.version, 2);

        /* An update not emitted still moves the copy: the next update's
         * changes start from v = 2. */
        CHECK_INT(apply(s, &sc, "[{\"id\":\"x\",\"v\":3}]", &op), 0);
        evs = new_events(s, &mark);
        CHECK_INT(cJSON_GetArraySize(evs), cases[i].updated);
        if (cases[i].updated) {
            CHECK(json_is(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(evs, 0), "changes"),
                          "{\"v\":{\"old\":2,\"new\":3}}"));
        }
        cJSON_Delete(evs);

        op = (struct op){.delete_id = "x"};
        CHECK_INT(run_op(s, &sc, &op), 0);
        CHECK_INT(op.st.deleted, 1);
        CHECK_STR(op.changes, "deleted:x");
        evs = new_events(s, &mark);
        CHECK_INT(cJSON_GetArraySize(evs), cases[i].deleted);
        if (cases[i].deleted) {
            CHECK(json_is(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(evs, 0), "record"),
                          "{\"id\":\"x\",\"v\":3}"));
        }
        cJSON_Delete(evs);
        CHECK_INT(entry_of(s, &sc, "x", &e, NULL), -ENOENT);
        if (test_failures > failures) {
            fprintf(stderr, "  (emit case %zu)\n", i);
        }
        free_scope(&sc);
        close_store(s, "emit");
    }
}

/*
 * A change of the scope's touch_field alone is a touch: no event unless emit
 * has EVENT_TYPE_TOUCHED (then type "touched"); the callback sees it as an
 * update either way (for_each children), and the copy moves on.
 */
static void test_touch(void)
{
    static const struct {
        unsigned emit;
        const char *touch_field;
        const char *want; /* the types of the events of a touch, then a real change */
    } cases[] = {
        {ALL_TYPES, "at", "updated"},
        {ALL_TYPES | EVENT_TYPE_TOUCHED, "at", "touched updated"},
        {EVENT_TYPE_TOUCHED, "at", "touched"},
        {ALL_TYPES, NULL, "updated updated"}, /* no update-time field: as before */
        {ALL_TYPES, "v", "updated updated"},  /* another field alone is no touch */
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int failures = test_failures;
        struct store *s = fresh_store("touch");
        struct snapshot_scope sc = make_scope("t", "loc", cases[i].emit);
        sc.touch_field = cases[i].touch_field;
        uint64_t mark = 0;
        struct op op = {0};
        CHECK_INT(apply(s, &sc, "[{\"id\":\"x\",\"v\":1,\"at\":1}]", &op), 0);
        cJSON_Delete(new_events(s, &mark));
        CHECK_INT(apply(s, &sc, "[{\"id\":\"x\",\"v\":1,\"at\":2}]", &op), 0);
        CHECK_STR(op.changes, "updated:x");
        CHECK_INT(op.st.updated, 1);
        CHECK_INT(apply(s, &sc, "[{\"id\":\"x\",\"v\":2,\"at\":3}]", &op), 0);
        cJSON *evs = new_events(s, &mark);
        char got[64] = "";
        const cJSON *ev;
        cJSON_ArrayForEach(ev, evs)
        {
            size_t used = strlen(got);
            snprintf(got + used, sizeof(got) - used, "%s%s", used ? " " : "",
                     json_get_string(ev, "type"));
            if (strcmp(json_get_string(ev, "type"), "touched") == 0) {
                CHECK(json_is(cJSON_GetObjectItemCaseSensitive(ev, "changes"),
                              "{\"at\":{\"old\":1,\"new\":2}}"));
            } else if (ev->next == NULL) {
                /* The real change is diffed against the touched copy. */
                CHECK(json_is(cJSON_GetObjectItemCaseSensitive(ev, "changes"),
                              "{\"v\":{\"old\":1,\"new\":2},\"at\":{\"old\":2,\"new\":3}}"));
            }
        }
        CHECK_STR(got, cases[i].want);
        cJSON_Delete(evs);
        if (test_failures > failures) {
            fprintf(stderr, "  (touch case %zu)\n", i);
        }
        free_scope(&sc);
        close_store(s, "touch");
    }
}

/* ------------------------------------------------------------------------ */
/* ignore and fields                                                         */

static void test_ignore_and_fields(void)
{
    struct store *s = fresh_store("filter");
    char *ignore[] = {"searchAfter", "lastSeen", NULL};
    char *fields[] = {"name", "email", NULL};
    struct snapshot_scope ig = make_scope("ig", "loc", ALL_TYPES);
    ig.ignore = ignore;
    struct snapshot_scope fl = make_scope("fl", "loc", ALL_TYPES);
    fl.fields = fields;
    uint64_t mark = 0;
    struct op op = {0};

    static const char base[] =
        "[{\"id\":\"r\",\"name\":\"N\",\"email\":\"e\",\"phone\":\"1\",\"searchAfter\":[1],"
        "\"lastSeen\":\"t1\"}]";
    CHECK_INT(apply(s, &ig, base, &op), 0);
    CHECK_INT(apply(s, &fl, base, &op), 0);
    cJSON *evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 2);
    cJSON_Delete(evs);

    /* Only ignored members change: unchanged under ignore; fields sees no
     * listed member change either. */
    static const char volatile_only[] =
        "[{\"id\":\"r\",\"name\":\"N\",\"email\":\"e\",\"phone\":\"1\",\"searchAfter\":[2],"
        "\"lastSeen\":\"t2\"}]";
    CHECK_INT(apply(s, &ig, volatile_only, &op), 0);
    check_stats(&op.st, 0, 0, 0, 1, 0, 0);
    CHECK_INT(apply(s, &fl, volatile_only, &op), 0);
    check_stats(&op.st, 0, 0, 0, 1, 0, 0);
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 0);
    cJSON_Delete(evs);

    /* phone changes: an update under ignore (changes without the ignored
     * members); not a listed field, so nothing under fields. */
    static const char phone[] =
        "[{\"id\":\"r\",\"name\":\"N\",\"email\":\"e\",\"phone\":\"2\",\"searchAfter\":[3],"
        "\"lastSeen\":\"t3\"}]";
    CHECK_INT(apply(s, &ig, phone, &op), 0);
    check_stats(&op.st, 0, 1, 0, 0, 0, 1);
    CHECK_INT(apply(s, &fl, phone, &op), 0);
    check_stats(&op.st, 0, 0, 0, 1, 0, 0);
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 1);
    const cJSON *u = event_of(evs, "updated", "r");
    CHECK_STR(json_get_string(u, "trigger"), "ig");
    CHECK(json_is(cJSON_GetObjectItemCaseSensitive(u, "changes"),
                  "{\"phone\":{\"old\":\"1\",\"new\":\"2\"}}"));
    cJSON_Delete(evs);

    /* name and phone change: fields reports only name, but the event's
     * record is the whole record. */
    static const char name[] =
        "[{\"id\":\"r\",\"name\":\"M\",\"email\":\"e\",\"phone\":\"3\",\"searchAfter\":[3],"
        "\"lastSeen\":\"t3\"}]";
    CHECK_INT(apply(s, &fl, name, &op), 0);
    check_stats(&op.st, 0, 1, 0, 0, 0, 1);
    evs = new_events(s, &mark);
    u = event_of(evs, "updated", "r");
    CHECK_STR(json_get_string(u, "trigger"), "fl");
    CHECK(json_is(cJSON_GetObjectItemCaseSensitive(u, "changes"),
                  "{\"name\":{\"old\":\"N\",\"new\":\"M\"}}"));
    CHECK_STR(json_get_string(cJSON_GetObjectItemCaseSensitive(u, "record"), "phone"), "3");
    cJSON_Delete(evs);

    /* A listed field that disappears is a change (absent is not null). */
    CHECK_INT(apply(s, &fl, "[{\"id\":\"r\",\"name\":\"M\",\"phone\":\"3\"}]", &op), 0);
    check_stats(&op.st, 0, 1, 0, 0, 0, 1);
    evs = new_events(s, &mark);
    CHECK(json_is(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(evs, 0), "changes"),
                  "{\"email\":{\"old\":\"e\",\"new\":null}}"));
    cJSON_Delete(evs);

    free_scope(&ig);
    free_scope(&fl);
    close_store(s, "filter");
}

/* ------------------------------------------------------------------------ */
/* The silent baseline                                                       */

static void test_silent_baseline(void)
{
    struct store *s = fresh_store("baseline");
    struct snapshot_scope sc = make_scope("t", "loc", ALL_TYPES);
    sc.silent = true;
    sc.new_flags = SNAP_BASELINE;
    uint64_t mark = 0;
    struct op op = {0};

    /* Everything is recorded, nothing is emitted; the callback still runs. */
    CHECK_INT(apply(s, &sc, "[{\"id\":\"a\",\"v\":1},{\"id\":\"b\",\"v\":1},{\"id\":\"c\"}]", &op),
              0);
    check_stats(&op.st, 3, 0, 0, 0, 0, 0);
    CHECK_STR(op.changes, "created:a created:b created:c");
    cJSON *evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 0);
    cJSON_Delete(evs);
    struct snap_entry e;
    char *copy = NULL;
    CHECK_INT(entry_of(s, &sc, "a", &e, &copy), 0);
    CHECK_INT(e.flags, SNAP_BASELINE);
    CHECK_INT(e.version, 1);
    CHECK_STR(copy, "{\"id\":\"a\",\"v\":1}");
    free(copy);

    /* Still silent: updates and deletions are recorded, not emitted. */
    CHECK_INT(apply(s, &sc, "[{\"id\":\"a\",\"v\":2}]", &op), 0);
    check_stats(&op.st, 0, 1, 0, 0, 0, 0);
    op = (struct op){.delete_id = "c"};
    CHECK_INT(run_op(s, &sc, &op), 0);
    check_stats(&op.st, 0, 0, 1, 0, 0, 0);
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 0);
    cJSON_Delete(evs);

    /* After the baseline: changes are measured from what it recorded; an
     * entry keeps its baseline flag; a new entry gets none. */
    sc.silent = false;
    sc.new_flags = 0;
    op = (struct op){0};
    CHECK_INT(apply(s, &sc, "[{\"id\":\"a\",\"v\":3},{\"id\":\"b\",\"v\":1},{\"id\":\"d\"}]", &op),
              0);
    check_stats(&op.st, 1, 1, 0, 1, 0, 2);
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 2);
    CHECK(json_is(cJSON_GetObjectItemCaseSensitive(event_of(evs, "updated", "a"), "changes"),
                  "{\"v\":{\"old\":2,\"new\":3}}"));
    CHECK(event_of(evs, "created", "d") != NULL);
    cJSON_Delete(evs);
    CHECK_INT(entry_of(s, &sc, "a", &e, NULL), 0);
    CHECK_INT(e.flags, SNAP_BASELINE);
    CHECK_INT(e.version, 3);
    CHECK_INT(entry_of(s, &sc, "d", &e, NULL), 0);
    CHECK_INT(e.flags, 0);

    free_scope(&sc);
    close_store(s, "baseline");
}

/* ------------------------------------------------------------------------ */
/* Records without a valid id                                                */

static void test_invalid_records(void)
{
    struct store *s = fresh_store("invalid");
    struct snapshot_scope sc = make_scope("t", "loc", ALL_TYPES);
    uint64_t mark = 0;
    struct idset seen;
    idset_init(&seen);
    struct op op = {.seen = &seen};

    /* Not objects, no id, an id that is not a string, ids with characters
     * a key or a URL segment cannot take, "." and "..", 129 bytes; then one
     * good record, which is still applied. */
    char *json = xasprintf(
        "[\"text\",5,null,[],{\"name\":\"no id\"},{\"id\":7},{\"id\":\"\"},{\"id\":\"a/b\"},"
        "{\"id\":\"a b\"},{\"id\":\"a\\u001fb\"},{\"id\":\".\"},{\"id\":\"..\"},{\"id\":\"%0129d\"},"
        "{\"id\":\"ok-1\"}]",
        0);
    CHECK_INT(apply(s, &sc, json, &op), 0);
    free(json);
    check_stats(&op.st, 1, 0, 0, 0, 13, 1);
    CHECK_STR(op.changes, "created:ok-1");
    CHECK(idset_contains(&seen, "ok-1", 4));
    CHECK(!idset_contains(&seen, "a/b", 3));
    cJSON *evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 1);
    CHECK(event_of(evs, "created", "ok-1") != NULL);
    cJSON_Delete(evs);

    /* Nothing but the good record is in the snapshot. */
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    uint64_t n = 0;
    CHECK_INT(store_count_prefix(txn, STORE_SNAP, sc.prefix, sc.prefix_len, &n), 0);
    store_txn_abort(txn);
    CHECK_INT(n, 1);

    /* A record id with another id_field. */
    struct snapshot_scope other = make_scope("t2", "loc", ALL_TYPES);
    other.id_field = "_id";
    op = (struct op){0};
    CHECK_INT(apply(s, &other, "[{\"id\":\"x\"},{\"_id\":\"y\"}]", &op), 0);
    check_stats(&op.st, 1, 0, 0, 0, 1, 1);
    CHECK_STR(op.changes, "created:y");

    idset_finish(&seen);
    free_scope(&other);
    free_scope(&sc);
    close_store(s, "invalid");
}

/* ------------------------------------------------------------------------ */
/* Held deletions and purge                                                  */

static void test_missing_and_purge(void)
{
    struct store *s = fresh_store("missing");
    struct snapshot_scope l1 = make_scope("t", "L1", ALL_TYPES);
    struct snapshot_scope l10 = make_scope("t", "L10", ALL_TYPES); /* L1 is a prefix of it */
    uint64_t mark = 0;
    struct op op = {0};
    CHECK_INT(apply(s, &l1, "[{\"id\":\"a\",\"v\":1},{\"id\":\"b\",\"v\":1}]", &op), 0);
    CHECK_INT(apply(s, &l10, "[{\"id\":\"a\",\"v\":1}]", &op), 0);
    cJSON *evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 3);
    cJSON_Delete(evs);

    /* Marked missing: flagged with its cycle, no event, the copy kept. */
    op = (struct op){.missing_id = "a"};
    CHECK_INT(run_op(s, &l1, &op), 0);
    CHECK_INT(op.rc, 0);
    struct snap_entry e;
    char *copy = NULL;
    CHECK_INT(entry_of(s, &l1, "a", &e, &copy), 0);
    CHECK_INT(e.flags & SNAP_MISSING, SNAP_MISSING);
    CHECK_INT(e.missing_since_cycle, 7);
    CHECK_INT(e.version, 1);
    CHECK_STR(copy, "{\"id\":\"a\",\"v\":1}");
    free(copy);
    op = (struct op){.missing_id = "nope"};
    CHECK_INT(run_op(s, &l1, &op), 0);
    CHECK_INT(op.rc, -ENOENT);
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 0);
    cJSON_Delete(evs);

    /* Seen again unchanged: the flag is cleared, silently. */
    op = (struct op){0};
    CHECK_INT(apply(s, &l1, "[{\"id\":\"a\",\"v\":1}]", &op), 0);
    check_stats(&op.st, 0, 0, 0, 1, 0, 0);
    CHECK_INT(entry_of(s, &l1, "a", &e, NULL), 0);
    CHECK_INT(e.flags & SNAP_MISSING, 0);
    CHECK_INT(e.missing_since_cycle, 0);

    /* Marked, then seen changed: an update, and the flag is cleared too. */
    op = (struct op){.missing_id = "b"};
    CHECK_INT(run_op(s, &l1, &op), 0);
    op = (struct op){0};
    CHECK_INT(apply(s, &l1, "[{\"id\":\"b\",\"v\":2}]", &op), 0);
    check_stats(&op.st, 0, 1, 0, 0, 0, 1);
    CHECK_INT(entry_of(s, &l1, "b", &e, NULL), 0);
    CHECK_INT(e.flags & SNAP_MISSING, 0);
    CHECK_INT(e.version, 2);
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 1);
    cJSON_Delete(evs);

    /* Purge: every entry of L1 goes, silently; L10 keeps its own. */
    op = (struct op){.purge = true};
    CHECK_INT(run_op(s, &l1, &op), 0);
    CHECK_INT(op.rc, 0);
    CHECK_INT(entry_of(s, &l1, "a", &e, &copy), -ENOENT);
    CHECK(copy == NULL);
    CHECK_INT(entry_of(s, &l1, "b", &e, NULL), -ENOENT);
    CHECK_INT(entry_of(s, &l10, "a", &e, &copy), 0);
    CHECK_STR(copy, "{\"id\":\"a\",\"v\":1}");
    free(copy);
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 0);
    cJSON_Delete(evs);

    free_scope(&l1);
    free_scope(&l10);
    close_store(s, "missing");
}

/* snapshot_last_copy of id in sc, read in its own read txn (a new tree, or NULL). */
static cJSON *last_copy(struct store *s, const struct snapshot_scope *sc, const char *id)
{
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    cJSON *rec = snapshot_last_copy(txn, sc, id);
    store_txn_abort(txn);
    return rec;
}

/* The last-known copy (confirm_delete's {record.FIELD}): the latest version,
 * kept while the deletion is held, gone with the record; scopes apart. */
static void test_last_copy(void)
{
    struct store *s = fresh_store("last_copy");
    struct snapshot_scope l1 = make_scope("t", "L1", ALL_TYPES);
    struct snapshot_scope l10 = make_scope("t", "L10", ALL_TYPES);
    struct op op = {0};
    CHECK_INT(apply(s, &l1, "[{\"id\":\"a\",\"owner\":{\"id\":\"o1\"}}]", &op), 0);
    CHECK_INT(apply(s, &l1, "[{\"id\":\"a\",\"owner\":{\"id\":\"o2\"}}]", &op), 0);
    op = (struct op){.missing_id = "a"};
    CHECK_INT(run_op(s, &l1, &op), 0);
    cJSON *rec = last_copy(s, &l1, "a");
    CHECK(json_is(rec, "{\"id\":\"a\",\"owner\":{\"id\":\"o2\"}}"));
    cJSON_Delete(rec);
    CHECK(last_copy(s, &l1, "nope") == NULL);
    CHECK(last_copy(s, &l10, "a") == NULL); /* L1 is a prefix of L10: no leak across */
    op = (struct op){.delete_id = "a"};
    CHECK_INT(run_op(s, &l1, &op), 0);
    CHECK(last_copy(s, &l1, "a") == NULL);
    free_scope(&l1);
    free_scope(&l10);
    close_store(s, "last_copy");
}

/* ------------------------------------------------------------------------ */
/* One transaction for the snapshot and its events                           */

struct watch {
    struct store *s;
    const struct snapshot_scope *sc;
    const char *fail_on; /* on_event fails for this record (NULL: never) */
    int calls;
    bool entry_visible;  /* the record's snapshot entry was there when its event came */
};

static int on_event(struct store_txn *txn, cJSON *event, void *ud)
{
    struct watch *w = ud;
    w->calls++;
    const char *rid = json_get_string(event, "record_id");
    const char *type = json_get_string(event, "type");
    char *key = xasprintf("%.*s%s", (int)w->sc->prefix_len, w->sc->prefix, rid ? rid : "");
    const void *val = NULL;
    size_t vlen = 0;
    bool present = store_get(txn, STORE_SNAP, key, strlen(key), &val, &vlen) == 0;
    /* created/updated: already written; deleted: already gone. */
    bool want = type != NULL && strcmp(type, "deleted") != 0;
    w->entry_visible = w->entry_visible && present == want;
    free(key);
    cJSON_AddStringToObject(event, "origin", "test-hook");
    if (w->fail_on != NULL && rid != NULL && strcmp(rid, w->fail_on) == 0) {
        return -ECANCELED;
    }
    return 0;
}

static uint64_t count_snap(struct store *s, const struct snapshot_scope *sc)
{
    struct store_txn *txn = NULL;
    CHECK_INT(store_txn_begin(s, false, &txn), 0);
    uint64_t n = 0;
    CHECK_INT(store_count_prefix(txn, STORE_SNAP, sc->prefix, sc->prefix_len, &n), 0);
    store_txn_abort(txn);
    return n;
}

static void test_same_txn(void)
{
    struct store *s = fresh_store("txn");
    struct snapshot_scope sc = make_scope("t", "loc", ALL_TYPES);
    struct watch w = {.s = s, .sc = &sc, .entry_visible = true};
    sc.on_event = on_event;
    sc.on_event_ud = &w;
    uint64_t mark = 0;
    struct op op = {0};

    /* on_event sees each event inside the txn, after its entry is written,
     * and what it adds is what the log keeps. */
    CHECK_INT(apply(s, &sc, "[{\"id\":\"a\",\"v\":1},{\"id\":\"b\",\"v\":1}]", &op), 0);
    CHECK_INT(w.calls, 2);
    CHECK(w.entry_visible);
    cJSON *evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 2);
    CHECK_STR(json_get_string(cJSON_GetArrayItem(evs, 1), "origin"), "test-hook");
    cJSON_Delete(evs);
    op = (struct op){.delete_id = "b"};
    CHECK_INT(run_op(s, &sc, &op), 0);
    CHECK(w.entry_visible);
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 1);
    cJSON_Delete(evs);

    /* The body fails after the records were applied: neither the snapshot
     * changes nor their events are committed. */
    op = (struct op){.body_rc = -ECANCELED};
    CHECK_INT(apply(s, &sc, "[{\"id\":\"a\",\"v\":2},{\"id\":\"c\",\"v\":1}]", &op), -ECANCELED);
    CHECK_INT(op.st.events, 2); /* they were written, then rolled back */
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 0);
    cJSON_Delete(evs);
    struct snap_entry e;
    char *copy = NULL;
    CHECK_INT(entry_of(s, &sc, "a", &e, &copy), 0);
    CHECK_INT(e.version, 1);
    CHECK_STR(copy, "{\"id\":\"a\",\"v\":1}");
    free(copy);
    CHECK_INT(entry_of(s, &sc, "c", &e, NULL), -ENOENT);
    uint64_t last = 0;
    CHECK_INT(evlog_last_seq(s, &last), 0);
    CHECK_INT(last, mark);

    /* on_event fails on the second record: the txn fails, the first
     * record's change and event are gone with it. */
    w.fail_on = "d";
    op = (struct op){0};
    CHECK_INT(apply(s, &sc, "[{\"id\":\"c\",\"v\":1},{\"id\":\"d\",\"v\":1}]", &op), -ECANCELED);
    CHECK_INT(op.rc, -ECANCELED);
    CHECK_INT(entry_of(s, &sc, "c", &e, NULL), -ENOENT);
    CHECK_INT(entry_of(s, &sc, "d", &e, NULL), -ENOENT);
    CHECK_INT(count_snap(s, &sc), 1);
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 0);
    cJSON_Delete(evs);
    w.fail_on = NULL;

    /* The change callback fails on its second call: the same. */
    op = (struct op){.cb_fail_on = 2};
    CHECK_INT(apply(s, &sc, "[{\"id\":\"c\",\"v\":1},{\"id\":\"a\",\"v\":5}]", &op), -ECANCELED);
    CHECK_STR(op.changes, "created:c updated:a");
    CHECK_INT(entry_of(s, &sc, "c", &e, NULL), -ENOENT);
    CHECK_INT(entry_of(s, &sc, "a", &e, NULL), 0);
    CHECK_INT(e.version, 1);
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 0);
    cJSON_Delete(evs);

    /* The same batch without a failure: both changes and both events. */
    op = (struct op){0};
    CHECK_INT(apply(s, &sc, "[{\"id\":\"c\",\"v\":1},{\"id\":\"a\",\"v\":5}]", &op), 0);
    check_stats(&op.st, 1, 1, 0, 0, 0, 2);
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 2);
    cJSON_Delete(evs);
    CHECK_INT(count_snap(s, &sc), 2);

    free_scope(&sc);
    close_store(s, "txn");
}

/* ------------------------------------------------------------------------ */
/* Oversized events                                                          */

static void test_oversized_event(void)
{
    struct store *s = fresh_store("big");
    struct snapshot_scope sc = make_scope("t", "loc", ALL_TYPES);
    uint64_t mark = 0;
    struct op op = {0};
    size_t big = evlog_max_event() + 1000;
    char *text = xmalloc(big + 1);
    memset(text, 'x', big);
    text[big] = '\0';
    char *json = xasprintf("[{\"id\":\"huge\",\"name\":\"kept\",\"notes\":\"%s\"}]", text);
    log_set_level(LOG_ERROR); /* the trimming warns */
    CHECK_INT(apply(s, &sc, json, &op), 0);
    log_set_level(LOG_WARN);
    check_stats(&op.st, 1, 0, 0, 0, 0, 1);
    cJSON *evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 1);
    const cJSON *ev = cJSON_GetArrayItem(evs, 0);
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(ev, "record");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ev, "truncated")));
    CHECK_STR(json_get_string(rec, "id"), "huge");
    CHECK_STR(json_get_string(rec, "name"), "kept");
    CHECK(cJSON_GetObjectItemCaseSensitive(rec, "notes") == NULL);
    cJSON_Delete(evs);
    /* The snapshot keeps the whole record. */
    struct snap_entry e;
    char *copy = NULL;
    CHECK_INT(entry_of(s, &sc, "huge", &e, &copy), 0);
    CHECK(copy != NULL && strlen(copy) > big);
    free(copy);
    free(json);
    free(text);
    free_scope(&sc);
    close_store(s, "big");
}

/* ------------------------------------------------------------------------ */
/* Names and keys                                                            */

static void test_names_and_prefix(void)
{
    CHECK_STR(snapshot_change_name(SNAPSHOT_CREATED), "created");
    CHECK_STR(snapshot_change_name(SNAPSHOT_UPDATED), "updated");
    CHECK_STR(snapshot_change_name(SNAPSHOT_DELETED), "deleted");
    const char *parts[] = {"trig", "loc", "parent"};
    size_t len = 0;
    char *p = snapshot_key_prefix(parts, 3, &len);
    CHECK_INT(len, 16);
    CHECK(len == 16 && memcmp(p, "trig\x1floc\x1fparent\x1f", 16) == 0);
    free(p);
    p = snapshot_key_prefix(parts, 0, &len);
    CHECK_INT(len, 0);
    free(p);
}

/* ------------------------------------------------------------------------ */
/* format 1 (MurmurHash3, before XXH3): a silent migration                   */

/* A format-1 entry as pollen before XXH3 wrote it (header, copy in SNAPDATA). */
struct v1_fixture {
    const struct snapshot_scope *sc;
    const char *id;
    const char *json;     /* the record as it was stored */
    struct hash128 hash;  /* its format-1 hash */
    uint32_t version;
    uint32_t flags;
};

static int put_v1_body(struct store_txn *txn, void *ud)
{
    const struct v1_fixture *f = ud;
    uint8_t v[DIFF_SNAP_HEADER1_LEN] = {DIFF_SNAP_MAGIC, DIFF_SNAP_FORMAT1, 0, 0};
    for (int i = 0; i < 8; i++) {
        v[4 + i] = (uint8_t)(f->hash.lo >> (8 * i));
        v[12 + i] = (uint8_t)(f->hash.hi >> (8 * i));
    }
    for (int i = 0; i < 4; i++) {
        v[20 + i] = (uint8_t)(f->version >> (8 * i));
        v[24 + i] = (uint8_t)(f->flags >> (8 * i));
    }
    v[28] = (f->flags & SNAP_MISSING) ? 5 : 0;
    char *key = xasprintf("%.*s%s", (int)f->sc->prefix_len, f->sc->prefix, f->id);
    int rc = store_put(txn, STORE_SNAP, key, strlen(key), v, sizeof(v));
    if (rc == 0) {
        rc = store_put(txn, STORE_SNAPDATA, key, strlen(key), f->json, strlen(f->json));
    }
    free(key);
    return rc;
}

static void put_v1(struct store *s, struct v1_fixture f, bool compute)
{
    if (compute) {
        cJSON *rec = cJSON_Parse(f.json);
        diff_record_hash_legacy(rec, f.sc->fields, f.sc->ignore, &f.hash);
        cJSON_Delete(rec);
    }
    CHECK_INT(store_write(s, put_v1_body, &f), 0);
}

/*
 * A store written by pollen before XXH3 (format 1, the hash as that pollen
 * computed it: one a frozen value from it, the others computed with the kept
 * MurmurHash3) is polled after the upgrade: unchanged records emit nothing,
 * whatever their key order, and become format 2 with the XXH3 hash; a record
 * that did change while pollen was down is reported once, with its changes;
 * a held deletion of a record that is back is cleared. A second poll finds
 * everything unchanged.
 */
static void test_format1_migration(void)
{
    struct store *s = fresh_store("migrate");
    struct snapshot_scope sc = make_scope("t1", "loc1", ALL_TYPES);
    char *ignore[] = {"n", NULL};
    struct snapshot_scope sci = make_scope("t2", "loc1", ALL_TYPES);
    sci.ignore = ignore;
    uint64_t mark = 0;
    struct op op = {0};

    /* Frozen: diff_record_hash of c1 by pollen at 3988637 (MurmurHash3). */
    const char *c1 = "{\"id\":\"c1\",\"name\":\"Ada\",\"tags\":[\"x\",\"y\"],\"n\":12.5,"
                     "\"deep\":{\"id\":\"z\"}}";
    put_v1(s, (struct v1_fixture){&sc, "c1", c1, {0xa01881e4a25a5280ULL, 0x9675fc3426f0763fULL}, 4, 0},
           false);
    put_v1(s, (struct v1_fixture){&sci, "c1", c1, {0xe763cc3128d4c908ULL, 0x5ef22cdabba1bc39ULL}, 2,
                                  SNAP_BASELINE},
           false);
    put_v1(s, (struct v1_fixture){&sc, "b", "{\"id\":\"b\",\"name\":\"Old\"}", {0, 0}, 1, 0}, true);
    put_v1(s, (struct v1_fixture){&sc, "m", "{\"id\":\"m\",\"v\":[1,2]}", {0, 0}, 3, SNAP_MISSING},
           true);

    /* The upgrade's first poll: c1 reordered, b changed, m back. */
    const char *page = "[{\"deep\":{\"id\":\"z\"},\"n\":12.5,\"tags\":[\"x\",\"y\"],\"name\":\"Ada\","
                       "\"id\":\"c1\"},{\"id\":\"b\",\"name\":\"New\"},{\"id\":\"m\",\"v\":[1,2]}]";
    CHECK_INT(apply(s, &sc, page, &op), 0);
    check_stats(&op.st, 0, 1, 0, 2, 0, 1);
    CHECK_STR(op.changes, "updated:b");
    /* The ignored field changed too: still no event, only the migration. */
    CHECK_INT(apply(s, &sci, "[{\"id\":\"c1\",\"name\":\"Ada\",\"tags\":[\"x\",\"y\"],\"n\":99,"
                             "\"deep\":{\"id\":\"z\"}}]",
                    &op),
              0);
    check_stats(&op.st, 0, 0, 0, 1, 0, 0);
    cJSON *evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 1);
    const cJSON *ub = event_of(evs, "updated", "b");
    CHECK(ub != NULL &&
          json_is(cJSON_GetObjectItemCaseSensitive(ub, "changes"),
                  "{\"name\":{\"old\":\"Old\",\"new\":\"New\"}}"));
    cJSON_Delete(evs);

    /* Every entry is format 2 now, with the XXH3 hash and its own version and flags. */
    struct snap_entry e;
    static const struct {
        const char *id;
        uint32_t version;
        uint32_t flags;
    } want[] = {{"c1", 4, 0}, {"b", 2, 0}, {"m", 3, 0}};
    cJSON *recs = cJSON_Parse(page);
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        CHECK_INT(entry_of(s, &sc, want[i].id, &e, NULL), 0);
        CHECK_INT(e.format, DIFF_SNAP_FORMAT);
        CHECK_INT(e.version, want[i].version);
        CHECK_INT(e.flags, want[i].flags);
        struct hash128 h;
        diff_record_hash(cJSON_GetArrayItem(recs, (int)i), NULL, NULL, &h);
        CHECK(hash128_eq(&e.hash, &h));
    }
    cJSON_Delete(recs);
    CHECK_INT(entry_of(s, &sci, "c1", &e, NULL), 0);
    CHECK_INT(e.format, DIFF_SNAP_FORMAT);
    CHECK_INT(e.flags, SNAP_BASELINE);

    /* The next poll: nothing to report. */
    CHECK_INT(apply(s, &sc, page, &op), 0);
    check_stats(&op.st, 0, 0, 0, 3, 0, 0);
    evs = new_events(s, &mark);
    CHECK_INT(cJSON_GetArraySize(evs), 0);
    cJSON_Delete(evs);
    free_scope(&sc);
    free_scope(&sci);
    close_store(s, "migrate");
}

/* The commits and the LMDB txn id of s, for the unchanged-page test. */
static void commit_marks(struct store *s, uint64_t *commits, uint64_t *txnid)
{
    struct store_stat st;
    CHECK_INT(store_stat(s, &st), 0);
    *commits = st.commits;
    *txnid = st.last_txnid;
}

/*
 * A page in which nothing changed writes nothing: its store_write commits no
 * txn (the store's commit count and LMDB's last txn id stay put), so it costs
 * no meta-page write and no fsync. A page with one change, or with a held
 * deletion to clear, commits as before.
 */
static void test_unchanged_page_commits_nothing(void)
{
    struct store *s = fresh_store("unchanged");
    struct snapshot_scope sc = make_scope("t", "loc", ALL_TYPES);
    const char *page = "[{\"id\":\"a\",\"n\":1},{\"id\":\"b\",\"n\":2}]";
    struct op op = {0};
    uint64_t c0, t0, c1, t1;
    CHECK_INT(apply(s, &sc, page, &op), 0);
    check_stats(&op.st, 2, 0, 0, 0, 0, 2);
    commit_marks(s, &c0, &t0);

    CHECK_INT(apply(s, &sc, page, &op), 0);
    check_stats(&op.st, 0, 0, 0, 2, 0, 0);
    commit_marks(s, &c1, &t1);
    CHECK_INT(c1, c0);
    CHECK_INT(t1, t0);

    /* One changed record: the page commits. */
    CHECK_INT(apply(s, &sc, "[{\"id\":\"a\",\"n\":1},{\"id\":\"b\",\"n\":3}]", &op), 0);
    check_stats(&op.st, 0, 1, 0, 1, 0, 1);
    commit_marks(s, &c1, &t1);
    CHECK_INT(c1, c0 + 1);
    CHECK_INT(t1, t0 + 1);

    /* An unchanged record whose deletion was held is rewritten: that commits too. */
    op = (struct op){.missing_id = "a"};
    CHECK_INT(run_op(s, &sc, &op), 0);
    commit_marks(s, &c0, &t0);
    op = (struct op){0};
    CHECK_INT(apply(s, &sc, "[{\"id\":\"a\",\"n\":1}]", &op), 0);
    check_stats(&op.st, 0, 0, 0, 1, 0, 0);
    commit_marks(s, &c1, &t1);
    CHECK_INT(c1, c0 + 1);
    struct snap_entry e;
    CHECK_INT(entry_of(s, &sc, "a", &e, NULL), 0);
    CHECK_INT(e.flags & SNAP_MISSING, 0);
    free_scope(&sc);
    close_store(s, "unchanged");
}

int main(void)
{
    log_set_level(LOG_WARN);
    test_names_and_prefix();
    test_lifecycle();
    test_deterministic_ids();
    test_emit_bits();
    test_touch();
    test_ignore_and_fields();
    test_silent_baseline();
    test_invalid_records();
    test_missing_and_purge();
    test_last_copy();
    test_same_txn();
    test_oversized_event();
    test_format1_migration();
    test_unchanged_page_commits_nothing();
    log_clear_secrets();
    json_scratch_release();
    return test_done("test_snapshot");
}

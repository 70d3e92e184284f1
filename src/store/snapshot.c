/*
 * snapshot: see snapshot.h.
 */
#include "snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "event.h"
#include "diff.h"
#include "evlog.h"
#include "json.h"
#include "log.h"
#include "util.h"

/* Longest key we build: prefix + id, far below LMDB's 511-byte limit. */
#define SNAPSHOT_MAX_KEY 480

const char *snapshot_change_name(enum snapshot_change c)
{
    switch (c) {
    case SNAPSHOT_CREATED:
        return "created";
    case SNAPSHOT_UPDATED:
        return "updated";
    case SNAPSHOT_DELETED:
        return "deleted";
    case SNAPSHOT_TOUCHED:
        return "touched";
    }
    return "?";
}

char *snapshot_key_prefix(const char *const *parts, size_t nparts, size_t *len)
{
    struct buf b;
    buf_init(&b, SNAPSHOT_MAX_KEY);
    for (size_t i = 0; i < nparts; i++) {
        buf_append_str(&b, parts[i]);
        buf_append(&b, "\x1f", 1);
    }
    if (len != NULL) {
        *len = b.len;
    }
    return buf_steal(&b, NULL);
}

static bool emits(const struct snapshot_scope *sc, enum snapshot_change c)
{
    if (sc->silent) {
        return false;
    }
    switch (c) {
    case SNAPSHOT_CREATED:
        return (sc->emit & EVENT_TYPE_CREATED) != 0;
    case SNAPSHOT_UPDATED:
        return (sc->emit & EVENT_TYPE_UPDATED) != 0;
    case SNAPSHOT_DELETED:
        return (sc->emit & EVENT_TYPE_DELETED) != 0;
    case SNAPSHOT_TOUCHED:
        return (sc->emit & EVENT_TYPE_TOUCHED) != 0;
    }
    return false;
}

/* Is changes (non-empty) a change of the scope's update-time field alone:
 * a touch (a write to a child record moves its parent's update time)? */
static bool touch_only(const struct snapshot_scope *sc, const cJSON *changes)
{
    const cJSON *first = changes != NULL ? changes->child : NULL;
    return sc->touch_field != NULL && first != NULL && first->next == NULL &&
           strcmp(first->string, sc->touch_field) == 0;
}

/* Builds the LMDB key of a record. Returns its length, or 0 if too long. */
static size_t make_key(const struct snapshot_scope *sc, const char *id, char key[SNAPSHOT_MAX_KEY + 1])
{
    size_t idlen = strlen(id);
    if (sc->prefix_len + idlen > SNAPSHOT_MAX_KEY) {
        return 0;
    }
    memcpy(key, sc->prefix, sc->prefix_len);
    memcpy(key + sc->prefix_len, id, idlen);
    return sc->prefix_len + idlen;
}

static void hash_hex(const struct hash128 *h, char out[33])
{
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h->hi, (unsigned long long)h->lo);
}

/* Room for what is added after the size check: "seq", "origin", "truncated". */
#define EVENT_SLACK 256
/* More than the members around the record (id, time, trigger, record_id, ...). */
#define EVENT_OVERHEAD 4096

static size_t printed_len(const cJSON *item)
{
    char *s = cJSON_PrintUnformatted(item);
    size_t n = s != NULL ? strlen(s) : SIZE_MAX;
    cJSON_free(s);
    return n;
}

struct member_size {
    cJSON *owner;   /* the object holding it */
    cJSON *item;
    size_t len;     /* printed, with its name */
};

/* Largest first; on a tie the name sorting last goes first ("old" before "new":
 * the current value is worth more), so the result is deterministic. */
static int by_len_desc(const void *a, const void *b)
{
    const struct member_size *x = a;
    const struct member_size *y = b;
    if (x->len != y->len) {
        return x->len < y->len ? 1 : -1;
    }
    return strcmp(y->item->string, x->item->string);
}

/*
 * Removes the largest members of the objects in v (largest first) until
 * `excess` bytes are gone; with `mark`, each one is replaced by null and
 * its owner gets "truncated": true. Returns the bytes removed.
 */
static size_t drop_largest(struct member_size *v, size_t n, size_t excess, bool mark)
{
    qsort(v, n, sizeof(*v), by_len_desc);
    size_t removed = 0;
    for (size_t i = 0; i < n && removed < excess; i++) {
        const char *name = v[i].item->string;
        if (mark) {
            cJSON_ReplaceItemInObjectCaseSensitive(v[i].owner, name, cJSON_CreateNull());
            if (cJSON_GetObjectItemCaseSensitive(v[i].owner, "truncated") == NULL) {
                cJSON_AddTrueToObject(v[i].owner, "truncated");
            }
        } else {
            cJSON_DeleteItemFromObjectCaseSensitive(v[i].owner, name);
        }
        removed += v[i].len;
    }
    return removed;
}

static void add_members(cJSON *obj, const char *keep, struct member_size **v, size_t *n)
{
    cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        if (keep != NULL && strcmp(m->string, keep) == 0) {
            continue;
        }
        *v = xrealloc(*v, (*n + 1) * sizeof(**v));
        (*v)[*n] = (struct member_size){obj, m, printed_len(m) + strlen(m->string) + 4};
        (*n)++;
    }
}

/*
 * An event over the log's size limit (a huge text field that changed) is
 * trimmed instead of failing its page forever (F2): the record keeps its id
 * and as many members as fit, largest dropped first (a changed value is
 * still in "changes"); only if that is not enough, the largest old/new
 * values in "changes" become null. The event says "truncated": true.
 * Returns false if it still does not fit (the caller writes no event).
 */
static bool trim_event(cJSON *ev, const struct snapshot_scope *sc, size_t len, size_t limit)
{
    size_t excess = len - limit;
    /* "record" is a reference to the caller's record: rebuild it from
     * references to its members, which can be dropped without touching it. */
    cJSON *rec = cJSON_DetachItemFromObjectCaseSensitive(ev, "record");
    cJSON *slim = cJSON_CreateObject();
    cJSON *m;
    cJSON_ArrayForEach(m, rec)
    {
        cJSON_AddItemReferenceToObject(slim, m->string, m);
    }
    cJSON_Delete(rec); /* the reference node only */
    cJSON_AddItemToObject(ev, "record", slim);
    struct member_size *v = NULL;
    size_t n = 0;
    add_members(slim, sc->id_field, &v, &n);
    size_t removed = drop_largest(v, n, excess, false);
    n = 0;
    cJSON *changes = cJSON_GetObjectItemCaseSensitive(ev, "changes");
    cJSON *change;
    cJSON_ArrayForEach(change, changes)
    {
        add_members(change, "truncated", &v, &n);
    }
    if (removed < excess) {
        drop_largest(v, n, excess - removed, true);
    }
    free(v);
    cJSON_AddTrueToObject(ev, "truncated");
    return printed_len(ev) <= limit;
}

/*
 * Appends one event. `record` is borrowed (referenced, not copied); changes
 * is owned and consumed. `bound` is an upper bound of the bytes of record
 * and changes: only an event that may be too big is measured.
 */
static int append_event(struct store_txn *txn, const struct snapshot_scope *sc,
                        enum snapshot_change change, const char *record_id, uint32_t version,
                        const struct hash128 *content, const cJSON *record, cJSON *changes,
                        size_t bound, struct snapshot_stats *st)
{
    char hex[33];
    char type_key[64];
    char id[33];
    char when[32];
    hash_hex(content, hex);
    /* The content hash in the id keeps a re-appearing record (same version
     * number after a deletion) from reusing an earlier event's id. */
    snprintf(type_key, sizeof(type_key), "%s:%s", snapshot_change_name(change), hex);
    /* An [api NAME] trigger has no location: its api's name takes the place. */
    const char *scope = sc->location_id != NULL ? sc->location_id : sc->api;
    diff_event_id(scope, sc->trigger, record_id, type_key, version, id);
    util_iso8601(util_wall_ms(), when);

    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "id", id);
    cJSON_AddStringToObject(ev, "time", when);
    cJSON_AddStringToObject(ev, "trigger", sc->trigger);
    if (sc->location_id != NULL) {
        cJSON_AddStringToObject(ev, "location", sc->location_id);
    } else {
        cJSON_AddStringToObject(ev, "api", sc->api);
    }
    cJSON_AddStringToObject(ev, "type", snapshot_change_name(change));
    cJSON_AddStringToObject(ev, "record_id", record_id);
    if (record != NULL) {
        cJSON_AddItemReferenceToObject(ev, "record", (cJSON *)record);
    } else {
        cJSON_AddNullToObject(ev, "record");
    }
    if (changes != NULL) {
        cJSON_AddItemToObject(ev, "changes", changes);
    }
    size_t limit = evlog_max_event() - EVENT_SLACK;
    if (bound + EVENT_OVERHEAD > limit) {
        size_t len = printed_len(ev);
        if (len > limit && !trim_event(ev, sc, len, limit)) {
            /* Not even the id and the change list fit: keep the snapshot moving. */
            log_error("snapshot", "%s: the %s event of record %s is %zu bytes, over the %zu-byte "
                                  "limit even trimmed; the change is recorded without an event",
                      sc->trigger, snapshot_change_name(change), record_id, len, limit);
            cJSON_Delete(ev);
            return 0;
        }
        if (len > limit) {
            log_warn("snapshot", "%s: the %s event of record %s is %zu bytes, over the %zu-byte "
                                 "limit; written with \"truncated\": true (largest fields left out)",
                     sc->trigger, snapshot_change_name(change), record_id, len, limit);
        }
    }
    uint64_t seq = 0;
    int rc = 0;
    if (sc->on_event != NULL) {
        rc = sc->on_event(txn, ev, sc->on_event_ud);
        if (rc != 0) {
            cJSON_Delete(ev);
            store_txn_fail(txn, rc);
            return rc;
        }
    }
    rc = evlog_append(txn, ev, &seq);
    cJSON_Delete(ev);
    if (rc == 0) {
        st->events++;
    } else if (rc == -EFBIG) {
        /* Measured to fit above; never let one event fail its page (evlog logged it). */
        log_error("snapshot", "%s: the %s event of record %s was not written (too big)",
                  sc->trigger, snapshot_change_name(change), record_id);
        rc = 0;
    } else {
        store_txn_fail(txn, rc);
    }
    return rc;
}

/*
 * Writes the compact index entry (hash, version, flags: what a no-change
 * poll reads) and, when e->json is set, the record's JSON in STORE_SNAPDATA
 * (read only when the record changes or disappears). Keeping the two apart
 * keeps the pages a no-change poll touches ~20x smaller.
 */
/* The length of the trigger's prefix of key: through its second SEP (the
 * last one when it has fewer; 0 when none). */
static size_t gen_prefix_len(const char *key, size_t klen)
{
    size_t last = 0;
    unsigned seps = 0;
    for (size_t i = 0; i < klen && seps < 2; i++) {
        if (key[i] == SNAPSHOT_SEP) {
            last = i + 1;
            seps++;
        }
    }
    return last;
}

/* Moves the generation of key's trigger prefix to this txn (see
 * snapshot_gen): one lookup, and one put the first time in a txn. */
static int touch_gen(struct store_txn *txn, const char *key, size_t klen)
{
    size_t plen = gen_prefix_len(key, klen);
    if (plen == 0) {
        return 0;
    }
    struct snapshot_gen g = {0, 0};
    const void *val = NULL;
    size_t vlen = 0;
    int rc = store_get(txn, STORE_SNAPDATA, key, plen, &val, &vlen);
    if (rc == 0 && vlen == sizeof(g)) {
        memcpy(&g, val, sizeof(g));
    } else if (rc != 0 && rc != -ENOENT) {
        return rc;
    }
    uint64_t id = store_txn_id(txn);
    if (g.txn == id && g.nonce != 0) {
        return 0;
    }
    if (g.nonce == 0) {
        g.nonce = util_rand64() | 1;
    }
    g.txn = id;
    return store_put(txn, STORE_SNAPDATA, key, plen, &g, sizeof(g));
}

int snapshot_raw_gen(struct store_txn *txn, const struct snapshot_scope *sc,
                     struct snapshot_gen *out)
{
    const void *val = NULL;
    size_t vlen = 0;
    int rc = store_get(txn, STORE_SNAPDATA, sc->prefix, sc->prefix_len, &val, &vlen);
    if (rc == 0 && vlen != sizeof(*out)) {
        rc = -ENOENT;
    }
    if (rc == 0) {
        memcpy(out, val, sizeof(*out));
    }
    return rc;
}

static int put_entry(struct store_txn *txn, const char *key, size_t klen, const struct snap_entry *e)
{
    int grc = touch_gen(txn, key, klen);
    if (grc != 0) {
        return grc;
    }
    struct snap_entry idx = *e;
    idx.json = "";
    idx.json_len = 0;
    uint8_t val[DIFF_SNAP_HEADER_LEN + 8];
    struct buf b;
    buf_init(&b, sizeof(val));
    int rc = diff_snap_encode(&idx, &b);
    if (rc == 0) {
        rc = store_put(txn, STORE_SNAP, key, klen, b.data, b.len);
    }
    buf_finish(&b);
    if (rc == 0 && e->json != NULL) {
        rc = store_put(txn, STORE_SNAPDATA, key, klen, e->json, e->json_len);
    }
    return rc;
}

/* The record's last JSON, parsed (NULL if absent or unreadable); *len gets its size. */
static cJSON *load_copy(struct store_txn *txn, const char *key, size_t klen, size_t *len)
{
    const void *val = NULL;
    size_t vlen = 0;
    cJSON *rec = NULL;
    *len = 0;
    if (store_get(txn, STORE_SNAPDATA, key, klen, &val, &vlen) == 0) {
        json_parse(val, vlen, &rec, NULL);
        *len = vlen;
    }
    return rec;
}

static const char *record_id_of(const struct snapshot_scope *sc, const cJSON *rec)
{
    const char *id = json_get_string(rec, sc->id_field);
    if (id == NULL || !diff_valid_record_id(id)) {
        return NULL;
    }
    return id;
}

/* Records raw (the hash of the record's bytes, NULL: none known) in e. */
static void set_raw(struct snap_entry *e, const struct hash128 *raw)
{
    if (raw != NULL) {
        e->raw = *raw;
        e->flags |= SNAP_RAW;
    } else {
        e->raw = (struct hash128){0, 0};
        e->flags &= ~SNAP_RAW;
    }
}

static int apply_new(struct store_txn *txn, const struct snapshot_scope *sc, const char *key,
                     size_t klen, const char *id, const cJSON *rec, const struct hash128 *h,
                     const struct hash128 *raw, struct snapshot_stats *st, snapshot_change_cb cb,
                     void *ud)
{
    char *json = cJSON_PrintUnformatted(rec);
    struct snap_entry e = {
        .hash = *h,
        .version = 1,
        .flags = sc->new_flags,
        .json = json,
        .json_len = strlen(json),
    };
    set_raw(&e, raw);
    int rc = put_entry(txn, key, klen, &e);
    free(json);
    if (rc == 0 && emits(sc, SNAPSHOT_CREATED)) {
        rc = append_event(txn, sc, SNAPSHOT_CREATED, id, 1, h, rec, NULL, e.json_len, st);
    }
    st->created++;
    if (rc == 0 && cb != NULL) {
        rc = cb(txn, id, SNAPSHOT_CREATED, ud);
    }
    return rc;
}

static int apply_changed(struct store_txn *txn, const struct snapshot_scope *sc, const char *key,
                         size_t klen, const char *id, const cJSON *rec, const struct hash128 *h,
                         const struct hash128 *raw, const struct snap_entry *old,
                         struct snapshot_stats *st, snapshot_change_cb cb, void *ud)
{
    cJSON *changes = NULL;
    size_t old_len = 0;
    enum snapshot_change kind = SNAPSHOT_UPDATED;
    if (emits(sc, SNAPSHOT_UPDATED) || emits(sc, SNAPSHOT_TOUCHED)) {
        cJSON *old_rec = load_copy(txn, key, klen, &old_len);
        if (old_rec == NULL) {
            old_rec = cJSON_CreateObject(); /* no copy kept: report every field as new */
        }
        changes = diff_changes(old_rec, rec, sc->fields, sc->ignore);
        cJSON_Delete(old_rec);
        /* A touch is an event only when asked for (emit = ... touched). */
        kind = touch_only(sc, changes) ? SNAPSHOT_TOUCHED : SNAPSHOT_UPDATED;
        if (!emits(sc, kind)) {
            cJSON_Delete(changes);
            changes = NULL;
        }
    }
    char *json = cJSON_PrintUnformatted(rec);
    struct snap_entry e = {
        .hash = *h,
        .version = old->version + 1,
        .flags = old->flags & ~SNAP_MISSING,
        .json = json,
        .json_len = strlen(json),
    };
    set_raw(&e, raw);
    int rc = put_entry(txn, key, klen, &e);
    free(json);
    if (rc == 0 && changes != NULL) {
        /* record + changes: each changed value at most once old, once new */
        size_t bound = 2 * (e.json_len + old_len);
        rc = append_event(txn, sc, kind, id, e.version, h, rec, changes, bound, st);
        changes = NULL;
    }
    cJSON_Delete(changes);
    st->updated++;
    if (rc == 0 && cb != NULL) {
        rc = cb(txn, id, SNAPSHOT_UPDATED, ud);
    }
    return rc;
}

/*
 * An unchanged record whose index entry is stale: its deletion was held (it
 * is back), its raw-bytes hash differs (key order, a volatile field), or it
 * is in format 1 (migrated: h replaces the MurmurHash3 that proved it equal).
 * Rewrites the index only, never an event: the content did not change.
 */
static int refresh_entry(struct store_txn *txn, const char *key, size_t klen,
                         const struct snap_entry *old, const struct hash128 *h,
                         const struct hash128 *raw)
{
    struct snap_entry e = *old;
    e.json = NULL; /* the index only: the record's copy is unchanged */
    e.json_len = 0;
    e.flags &= ~SNAP_MISSING;
    e.missing_since_cycle = 0;
    e.format = DIFF_SNAP_FORMAT;
    e.hash = *h;
    set_raw(&e, raw != NULL ? raw : ((old->flags & SNAP_RAW) ? &old->raw : NULL));
    return put_entry(txn, key, klen, &e);
}

/* Whether an unchanged record's entry must be rewritten (see refresh_entry). */
static bool entry_stale(const struct snap_entry *old, const struct hash128 *raw)
{
    if ((old->flags & SNAP_MISSING) != 0 || old->format != DIFF_SNAP_FORMAT) {
        return true;
    }
    return raw != NULL && ((old->flags & SNAP_RAW) == 0 || !hash128_eq(&old->raw, raw));
}

/*
 * Did the record change? Format-1 entries hold a MurmurHash3 record hash:
 * they are compared with that (exactly the comparison the older pollen made),
 * so an upgrade reports a record changed only when it did change.
 */
static bool content_equal(const struct snapshot_scope *sc, const cJSON *rec,
                          const struct snap_entry *old, const struct hash128 *h)
{
    if (old->format == DIFF_SNAP_FORMAT1) {
        struct hash128 legacy;
        diff_record_hash_legacy(rec, sc->fields, sc->ignore, &legacy);
        return hash128_eq(&old->hash, &legacy);
    }
    return hash128_eq(&old->hash, h);
}

static int apply_one(struct store_txn *txn, const struct snapshot_scope *sc, const cJSON *rec,
                     struct idset *seen, struct snapshot_stats *st, snapshot_change_cb cb,
                     void *ud)
{
    const char *id = cJSON_IsObject(rec) ? record_id_of(sc, rec) : NULL;
    char key[SNAPSHOT_MAX_KEY + 1];
    size_t klen = id != NULL ? make_key(sc, id, key) : 0;
    if (klen == 0) {
        st->invalid++;
        return 0;
    }
    bool fresh = seen != NULL && idset_add(seen, id, strlen(id)); /* first time this cycle */
    struct hash128 rawbuf;
    const struct hash128 *raw = NULL;
    if (sc->raw_of != NULL) {
        enum snapshot_raw known = sc->raw_of(rec, &rawbuf, sc->raw_ud);
        if (known == SNAPSHOT_RAW_SAME) {
            st->unchanged++; /* the bytes of the stored raw hash: nothing to do */
            st->seen_stored += fresh; /* it matched a stored entry */
            return 0;
        }
        raw = known == SNAPSHOT_RAW_HASH ? &rawbuf : NULL;
    }
    struct hash128 h;
    diff_record_hash(rec, sc->fields, sc->ignore, &h);

    const void *val = NULL;
    size_t vlen = 0;
    int rc = store_get(txn, STORE_SNAP, key, klen, &val, &vlen);
    if (rc == -ENOENT) {
        return apply_new(txn, sc, key, klen, id, rec, &h, raw, st, cb, ud);
    }
    if (rc != 0) {
        return rc;
    }
    st->seen_stored += fresh;
    struct snap_entry old;
    if (diff_snap_decode(val, vlen, &old) != 0) {
        /* A value we cannot read is replaced, silently: better than failing forever. */
        log_warn("snapshot", "unreadable snapshot entry for %s in %s: rewriting it", id,
                 sc->trigger);
        return apply_new(txn, sc, key, klen, id, rec, &h, raw, st, NULL, NULL);
    }
    if (!content_equal(sc, rec, &old, &h)) {
        return apply_changed(txn, sc, key, klen, id, rec, &h, raw, &old, st, cb, ud);
    }
    st->unchanged++;
    if (entry_stale(&old, raw)) {
        return refresh_entry(txn, key, klen, &old, &h, raw);
    }
    return 0;
}

int snapshot_apply_records(struct store_txn *txn, const struct snapshot_scope *sc,
                           const cJSON *records, struct idset *seen, struct snapshot_stats *st,
                           snapshot_change_cb cb, void *ud)
{
    const cJSON *rec;
    cJSON_ArrayForEach(rec, records)
    {
        int rc = apply_one(txn, sc, rec, seen, st, cb, ud);
        if (rc != 0) {
            return rc;
        }
    }
    return store_txn_error(txn);
}

/* The raw hash an index entry vouches for (current format, SNAP_RAW, no
 * deletion held): what snapshot_raw_same and snapshot_raw_each accept. */
static bool entry_raw(const void *val, size_t vlen, struct hash128 *raw)
{
    struct snap_entry e;
    if (diff_snap_decode(val, vlen, &e) != 0 || e.format != DIFF_SNAP_FORMAT ||
        (e.flags & (SNAP_RAW | SNAP_MISSING)) != SNAP_RAW) {
        return false;
    }
    *raw = e.raw;
    return true;
}

bool snapshot_raw_same(struct store_txn *txn, const struct snapshot_scope *sc,
                       const char *record_id, const struct hash128 *raw)
{
    char key[SNAPSHOT_MAX_KEY + 1];
    size_t klen = make_key(sc, record_id, key);
    const void *val = NULL;
    size_t vlen = 0;
    struct hash128 stored;
    return klen > 0 && store_get(txn, STORE_SNAP, key, klen, &val, &vlen) == 0 &&
           entry_raw(val, vlen, &stored) && hash128_eq(&stored, raw);
}

int snapshot_raw_each(struct store_txn *txn, const struct snapshot_scope *sc,
                      snapshot_raw_fn fn, void *ud, size_t *entries)
{
    size_t n = 0;
    struct store_cursor *cur = NULL;
    int rc = store_cursor_open(txn, STORE_SNAP, &cur);
    if (rc != 0) {
        return rc;
    }
    const void *key = NULL;
    const void *val = NULL;
    size_t klen = 0;
    size_t vlen = 0;
    rc = store_cursor_seek(cur, sc->prefix, sc->prefix_len, &key, &klen, &val, &vlen);
    while (rc == 0 && klen >= sc->prefix_len && memcmp(key, sc->prefix, sc->prefix_len) == 0) {
        struct hash128 raw;
        n += klen > sc->prefix_len;
        if (klen > sc->prefix_len && entry_raw(val, vlen, &raw)) {
            rc = fn((const char *)key + sc->prefix_len, klen - sc->prefix_len, &raw, ud);
            if (rc != 0) {
                break;
            }
        }
        rc = store_cursor_next(cur, &key, &klen, &val, &vlen);
    }
    store_cursor_close(cur);
    if (rc == -ENOENT) {
        rc = 0;
    }
    if (rc == 0 && entries != NULL) {
        *entries = n;
    }
    return rc;
}

int snapshot_delete(struct store_txn *txn, const struct snapshot_scope *sc, const char *record_id,
                    struct snapshot_stats *st, snapshot_change_cb cb, void *ud)
{
    char key[SNAPSHOT_MAX_KEY + 1];
    size_t klen = make_key(sc, record_id, key);
    if (klen == 0) {
        return -EINVAL;
    }
    const void *val = NULL;
    size_t vlen = 0;
    int rc = store_get(txn, STORE_SNAP, key, klen, &val, &vlen);
    if (rc != 0) {
        return rc;
    }
    struct snap_entry old;
    uint32_t version = 1;
    struct hash128 h = {0, 0};
    if (diff_snap_decode(val, vlen, &old) == 0) {
        version = old.version + 1;
        h = old.hash;
    }
    size_t last_len = 0;
    cJSON *last = load_copy(txn, key, klen, &last_len);
    rc = store_del(txn, STORE_SNAP, key, klen);
    if (rc == 0) {
        rc = touch_gen(txn, key, klen);
    }
    if (rc == 0) {
        int drc = store_del(txn, STORE_SNAPDATA, key, klen);
        rc = drc == -ENOENT ? 0 : drc;
    }
    if (rc == 0 && emits(sc, SNAPSHOT_DELETED)) {
        rc = append_event(txn, sc, SNAPSHOT_DELETED, record_id, version, &h, last, NULL,
                          last_len, st);
    }
    cJSON_Delete(last);
    st->deleted++;
    if (rc == 0 && cb != NULL) {
        rc = cb(txn, record_id, SNAPSHOT_DELETED, ud);
    }
    return rc;
}

int snapshot_mark_missing(struct store_txn *txn, const struct snapshot_scope *sc,
                          const char *record_id, uint64_t cycle)
{
    char key[SNAPSHOT_MAX_KEY + 1];
    size_t klen = make_key(sc, record_id, key);
    if (klen == 0) {
        return -EINVAL;
    }
    const void *val = NULL;
    size_t vlen = 0;
    int rc = store_get(txn, STORE_SNAP, key, klen, &val, &vlen);
    if (rc != 0) {
        return rc;
    }
    struct snap_entry e;
    if (diff_snap_decode(val, vlen, &e) != 0 || (e.flags & SNAP_MISSING) != 0) {
        return 0;
    }
    e.json = NULL; /* the index only */
    e.flags |= SNAP_MISSING;
    e.missing_since_cycle = cycle;
    return put_entry(txn, key, klen, &e);
}

cJSON *snapshot_last_copy(struct store_txn *txn, const struct snapshot_scope *sc,
                          const char *record_id)
{
    char key[SNAPSHOT_MAX_KEY + 1];
    size_t klen = make_key(sc, record_id, key);
    size_t len = 0;
    return klen != 0 ? load_copy(txn, key, klen, &len) : NULL;
}

static int purge_table(struct store_txn *txn, enum store_table t, const struct snapshot_scope *sc)
{
    struct store_cursor *cur = NULL;
    int rc = store_cursor_open(txn, t, &cur);
    if (rc != 0) {
        return rc;
    }
    const void *key = NULL;
    size_t klen = 0;
    rc = store_cursor_seek(cur, sc->prefix, sc->prefix_len, &key, &klen, NULL, NULL);
    while (rc == 0 && klen >= sc->prefix_len && memcmp(key, sc->prefix, sc->prefix_len) == 0) {
        rc = store_cursor_del(cur);
        if (rc == 0) {
            rc = store_cursor_next(cur, &key, &klen, NULL, NULL);
        }
    }
    store_cursor_close(cur);
    return rc == -ENOENT || rc == 0 ? store_txn_error(txn) : rc;
}

int snapshot_purge(struct store_txn *txn, const struct snapshot_scope *sc)
{
    int rc = purge_table(txn, STORE_SNAP, sc);
    if (rc == 0) {
        rc = purge_table(txn, STORE_SNAPDATA, sc);
    }
    if (rc == 0) {
        rc = touch_gen(txn, sc->prefix, sc->prefix_len);
    }
    return rc;
}

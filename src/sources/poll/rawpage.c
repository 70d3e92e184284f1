/*
 * rawpage: the raw-bytes fast path of an enumeration's page (see poll_int.h).
 *
 * A no-change poll of a big location spends its CPU building a cJSON tree
 * of every record and hashing it field by field, only to learn that
 * nothing changed. Here each record's bytes are hashed instead (XXH3, tens
 * of GB/s) and compared with the hash of the bytes last applied, kept in
 * its snapshot entry; only the records whose bytes differ are parsed and
 * diffed as always. The field-level hash stays the judge: bytes that differ
 * with equal fields (key order, a volatile field) make no event, and the
 * entry's raw hash is updated (snapshot.c).
 *
 * Thread context: loop thread.
 */
#include "poll_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "diff.h"
#include "idmap.h"
#include "json.h"
#include "log.h"
#include "util.h"

/* Longest id worth looking up (diff_valid_record_id allows 128 bytes). */
#define RAW_ID_MAX 128
_Static_assert(sizeof(((struct poller_raw_rec *)0)->stub_id) == RAW_ID_MAX + 1, "stub_id");
/* The shortened document's buffer is kept between pages up to this size. */
#define RAW_DOC_KEEP (1u << 20)
/* Largest scope whose raw hashes are read into a map (24 MiB of slots at
 * most); a bigger one is looked up record by record. */
#define RAW_MAP_MAX (1u << 19)

static const char *id_field(const struct poller *p)
{
    return p->def->id_field ? p->def->id_field : "id";
}

/*
 * Where the records are, when the scanner can find them: *member is NULL
 * for records at the root, else the one top-level member. False: a single
 * record, or a dotted path (nested: parse as always).
 */
static bool records_member(const struct poller *p, const char **member)
{
    if (p->def->single || p->def->records == NULL) {
        return false;
    }
    if (catalog_trigger_records_at_root(p->def)) {
        *member = NULL;
        return true;
    }
    *member = p->def->records;
    return strchr(p->def->records, '.') == NULL;
}

static void reserve(struct poller_raw *r, size_t n)
{
    if (n > r->cap) {
        r->cap = n;
        r->v = xrealloc(r->v, n * sizeof(*r->v));
    }
}

/* The span's id as a NUL-terminated string in out, or false (none, or too long). */
static bool span_id(const char *data, const struct jsonspan_rec *s, char out[RAW_ID_MAX + 1])
{
    if (s->id_len == 0 || s->id_len > RAW_ID_MAX) {
        return false;
    }
    memcpy(out, data + s->id_off, s->id_len);
    out[s->id_len] = '\0';
    return diff_valid_record_id(out);
}

/* The map is no longer kept up to date: off for the rest of the cycle. */
static void map_off(struct poller_raw *r)
{
    idmap_finish(&r->map);
    r->map_state = RAW_MAP_OFF;
    r->memo.clean = false; /* the memo's hits stand on the map's truth */
}

/* Entries on their way into the map: their slots are random, so a batch is
 * prefetched before it is stored (one wait for memory per batch). */
#define FILL_BATCH 16
struct map_fill {
    struct idmap *m;
    size_t n;
    uint64_t key[FILL_BATCH];
    struct hash128 raw[FILL_BATCH];
};

/* Stores the batch; false when the map is full. */
static bool fill_flush(struct map_fill *f)
{
    bool ok = true;
    for (size_t i = 0; i < f->n && ok; i++) {
        ok = idmap_put_key(f->m, f->key[i], &f->raw[i]);
    }
    f->n = 0;
    return ok;
}

/* snapshot_raw_each: one entry into the map; a full map stops the walk. */
static int map_add(const char *id, size_t idlen, const struct hash128 *raw, void *ud)
{
    struct map_fill *f = ud;
    uint64_t k = idmap_key(id, idlen);
    idmap_prefetch_key(f->m, k);
    f->key[f->n] = k;
    f->raw[f->n++] = *raw;
    return f->n < FILL_BATCH || fill_flush(f) ? 0 : 1;
}

/* ---- the map kept between runs ---------------------------------------- */

/*
 * A --once run is a new process, and reading 100,000 raw hashes out of LMDB
 * was a quarter of a no-change enumeration's CPU. So the map a cycle read
 * from the store, when no write touched the scope during the cycle, is
 * saved to STATE_DIR/rawmap-HASH.bin, tagged with the scope's generation
 * (snapshot_gen: every write to the scope moves it, in its own txn); a
 * later cycle loads it when the generation read in its own txn is the
 * same, i.e. when the entries are exactly those the map was read from.
 * Anything else (no file, a torn one, another generation, another build's
 * layout) reads the store as before. A for_each child's scope is never
 * filed (its sweep writes markers under the prefix directly).
 */
static bool filing(const struct poller *p)
{
    return p->env.cfg != NULL && p->env.cfg->state_dir != NULL && !p->env.dry_run &&
           p->parent == NULL;
}

static char *map_path(const struct poller *p)
{
    return xasprintf("%s/rawmap-%016llx.bin", p->env.cfg->state_dir,
                     (unsigned long long)hash64_bytes(p->prefix, p->prefix_len));
}

/* The file's tag: what the map was read from (format, generation, scope). */
static char *map_tag(const struct poller *p, const struct snapshot_gen *g, size_t *len)
{
    static const char kind[8] = "rawmap1";
    *len = sizeof(kind) + sizeof(*g) + p->prefix_len;
    char *t = xcalloc(1, *len);
    memcpy(t, kind, sizeof(kind));
    memcpy(t + sizeof(kind), g, sizeof(*g));
    memcpy(t + sizeof(kind) + sizeof(*g), p->prefix, p->prefix_len);
    return t;
}

/* Loads the filed map of the scope's current generation; false: read the store. */
static bool map_load(struct poller *p, struct store_txn *txn, const struct snapshot_scope *sc,
                     size_t *entries)
{
    struct poller_raw *r = &p->raw;
    r->gen_known = filing(p) && snapshot_raw_gen(txn, sc, &r->gen) == 0;
    if (!r->gen_known) {
        return false;
    }
    size_t tag_len = 0;
    char *tag = map_tag(p, &r->gen, &tag_len);
    char *path = map_path(p);
    uint64_t aux = 0;
    r->map_filed = idmap_load(&r->map, path, tag, tag_len, &aux);
    free(path);
    free(tag);
    *entries = (size_t)aux;
    return r->map_filed;
}

/* Files the map of this cycle (unless it came from its file) and the pages
 * it memorized, when nothing was written to the scope since the map was
 * read (the generation is the one it was read at). */
static void map_save(struct poller *p)
{
    struct poller_raw *r = &p->raw;
    bool memo = r->memo.ready && r->memo.clean && r->memo.added;
    if (r->map_state != RAW_MAP_READY || (r->map_filed && !memo) || !r->gen_known ||
        !filing(p)) {
        return;
    }
    struct store_txn *txn = NULL;
    struct snapshot_scope sc = {.prefix = p->prefix, .prefix_len = p->prefix_len};
    struct snapshot_gen now;
    bool same = store_txn_begin(p->env.store, false, &txn) == 0 &&
                snapshot_raw_gen(txn, &sc, &now) == 0 && now.txn == r->gen.txn &&
                now.nonce == r->gen.nonce;
    store_txn_abort(txn);
    if (!same) {
        return;
    }
    size_t tag_len = 0;
    char *tag = map_tag(p, &r->gen, &tag_len);
    if (!r->map_filed) {
        char *path = map_path(p);
        int rc = idmap_save(&r->map, path, tag, tag_len, r->map_entries);
        if (rc != 0) {
            log_debug(p->tag, "cannot save the raw-hash map to %s: %s", path, strerror(-rc));
        }
        r->map_filed = rc == 0;
        free(path);
    }
    poller__memo_save(p, tag, tag_len);
    free(tag);
}

/* Reads the scope's raw hashes out of the store into the map; false: unreadable or too big. */
static bool map_read(struct poller *p, struct store_txn *txn, const struct snapshot_scope *sc,
                     size_t *entries)
{
    struct poller_raw *r = &p->raw;
    if (p->max_total > 0) { /* the count the API claims: room for it at once */
        idmap_reserve(&r->map, p->max_total < RAW_MAP_MAX ? (size_t)p->max_total : RAW_MAP_MAX);
    }
    struct map_fill fill = {.m = &r->map};
    int rc = snapshot_raw_each(txn, sc, map_add, &fill, entries);
    return rc == 0 && fill_flush(&fill);
}

/*
 * Whether the map answers this page's lookups. A full enumeration looks up
 * every entry of the scope: from its second page on (one page may be all
 * there is; from the first when the map is filed), the scope's raw hashes
 * are read once, in key order, instead of one random B-tree descent per
 * record (most of a no-change poll's CPU).
 * The map stays true because every page of the cycle passes through here
 * and forgets its records that will be applied (match_records); a page that
 * does not (poller__raw_page falls back) turns it off for the cycle.
 */
static bool use_map(struct poller *p, struct store_txn *txn, const struct snapshot_scope *sc)
{
    struct poller_raw *r = &p->raw;
    if (r->map_state != RAW_MAP_NONE || p->incr_cycle) {
        return r->map_state == RAW_MAP_READY;
    }
    /* On the first page (it may be all there is) only a filed map is worth it. */
    bool first = p->page == 0;
    if (first && !filing(p)) {
        return false;
    }
    idmap_init(&r->map, RAW_MAP_MAX);
    r->map_filed = false;
    if (p->max_total > 0) { /* every id will be seen: no doubling on the way */
        idset_reserve(&p->seen, p->max_total < RAW_MAP_MAX ? (size_t)p->max_total : RAW_MAP_MAX);
    }
    size_t entries = 0;
    bool ok = map_load(p, txn, sc, &entries) || (!first && map_read(p, txn, sc, &entries));
    if (!ok && first) {
        idmap_finish(&r->map); /* the second page reads the store */
        return false;
    }
    if (!ok) {
        map_off(r); /* unreadable, or too big: the lookups answer */
        return false;
    }
    if (p->max_total <= 0) { /* the first page: the filed count of entries instead */
        idset_reserve(&p->seen, entries < RAW_MAP_MAX ? entries : RAW_MAP_MAX);
    }
    r->map_state = RAW_MAP_READY;
    r->map_entries = entries;
    if (r->gen_known) { /* the pages memorized at this generation */
        size_t tag_len = 0;
        char *tag = map_tag(p, &r->gen, &tag_len);
        poller__memo_start(p, tag, tag_len);
        free(tag);
    }
    /* The deletion scan may be proved needless (cycle.c, scan_needless). */
    p->fill_known = true;
    p->fill_entries = entries;
    p->fill_seen = p->seen.count - p->seen_stored;
    return true;
}

/* Whether the entry of id (a valid id of idlen bytes) holds raw as its raw hash. */
static bool raw_same(struct poller_raw *r, bool map, struct store_txn *txn,
                     const struct snapshot_scope *sc, const char *id, size_t idlen,
                     const struct hash128 *raw)
{
    if (!map) {
        return snapshot_raw_same(txn, sc, id, raw);
    }
    struct hash128 stored;
    return idmap_get(&r->map, id, idlen, &stored) && hash128_eq(&stored, raw);
}

/*
 * Hashes every record's bytes and marks SAME those whose entry has that raw
 * hash, except the last record (paging may read its fields: it is parsed,
 * and only flagged parsed_same). The others will be applied: the map
 * forgets them (their entries may change). Returns the number marked, or
 * -1 when the store cannot be read.
 */
static long match_records(struct poller *p, const char *data)
{
    struct poller_raw *r = &p->raw;
    struct store_txn *txn = NULL;
    if (store_txn_begin(p->env.store, false, &txn) != 0) {
        return -1;
    }
    /* snapshot_raw_same and snapshot_raw_each read only the key prefix of the scope. */
    struct snapshot_scope sc = {.prefix = p->prefix, .prefix_len = p->prefix_len};
    bool map = use_map(p, txn, &sc);
    char id[RAW_ID_MAX + 1];
    /* First the ids: their slots in the map and in `seen` (added to when the
     * page is applied) are random, so ask for them all before waiting on any. */
    for (size_t i = 0; i < r->spans.n; i++) {
        const struct jsonspan_rec *s = &r->spans.recs[i];
        r->v[i].has_id = span_id(data, s, id);
        if (r->v[i].has_id) {
            if (map) {
                idmap_prefetch(&r->map, id, s->id_len);
            }
            idset_prefetch(&p->seen, id, s->id_len);
        }
    }
    bool stale = false; /* a record to apply that the map cannot name */
    long same = 0;
    for (size_t i = 0; i < r->spans.n; i++) {
        const struct jsonspan_rec *s = &r->spans.recs[i];
        struct poller_raw_rec *v = &r->v[i];
        hash128_bytes(data + s->off, s->len, &v->raw);
        v->kind = SNAPSHOT_RAW_HASH;
        v->parsed_same = false;
        v->child = NULL;
        if (v->has_id) {
            memcpy(id, data + s->id_off, s->id_len);
            id[s->id_len] = '\0';
        }
        if (v->has_id && raw_same(r, map, txn, &sc, id, s->id_len, &v->raw)) {
            if (i + 1 < r->spans.n) {
                v->kind = SNAPSHOT_RAW_SAME;
                same++;
            } else {
                v->parsed_same = true; /* its entry stays as it is: the map keeps it */
            }
        } else if (map && v->has_id) {
            idmap_forget(&r->map, id, s->id_len);
        } else if (map) {
            stale = true; /* its id may still be valid once parsed (escapes) */
        }
    }
    store_txn_abort(txn);
    if (stale) {
        map_off(r);
    }
    return same;
}

/*
 * A memorized page (poller__memo_hit): every record but the last is SAME
 * and the last is parsed and applied as unchanged, as match_records found
 * at the same generation. Returns the number marked SAME.
 */
static long memo_records(struct poller *p, const char *data)
{
    struct poller_raw *r = &p->raw;
    size_t n = r->spans.n;
    for (size_t i = 0; i < n; i++) {
        const struct jsonspan_rec *s = &r->spans.recs[i];
        struct poller_raw_rec *v = &r->v[i];
        idset_prefetch(&p->seen, data + s->id_off, s->id_len);
        v->has_id = true;
        v->raw = (struct hash128){0, 0};
        v->kind = i + 1 < n ? SNAPSHOT_RAW_SAME : SNAPSHOT_RAW_HASH;
        v->parsed_same = i + 1 == n;
        v->child = NULL;
    }
    return n > 0 ? (long)n - 1 : 0;
}

/* The page with only the records to parse: before the array, them, after it. */
static void shorten(struct poller_raw *r, const char *data, size_t len)
{
    if (r->doc.max == 0) {
        buf_init(&r->doc, SIZE_MAX / 2); /* never more than the page itself */
    }
    buf_reset(&r->doc);
    buf_append(&r->doc, data, r->spans.arr_off + 1); /* through '[' */
    bool first = true;
    for (size_t i = 0; i < r->spans.n; i++) {
        const struct jsonspan_rec *s = &r->spans.recs[i];
        if (r->v[i].kind == SNAPSHOT_RAW_SAME) {
            continue;
        }
        if (!first) {
            buf_append(&r->doc, ",", 1);
        }
        buf_append(&r->doc, data + s->off, s->len);
        first = false;
    }
    size_t tail = r->spans.arr_end - 1; /* from ']' */
    buf_append(&r->doc, data + tail, len - tail);
}

/*
 * Record i's stub {id_field: id}: a reference to an object whose one member
 * lives in r->v[i] (its id is valid: it was looked up by it). cJSON_Delete
 * of the records array frees the reference node only.
 */
static cJSON *stub(struct poller *p, const char *data, size_t i)
{
    const struct jsonspan_rec *s = &p->raw.spans.recs[i];
    struct poller_raw_rec *v = &p->raw.v[i];
    memcpy(v->stub_id, data + s->id_off, s->id_len);
    v->stub_id[s->id_len] = '\0';
    memset(&v->stub_member, 0, sizeof(v->stub_member));
    v->stub_member.type = cJSON_String | cJSON_StringIsConst;
    v->stub_member.valuestring = v->stub_id;
    v->stub_member.string = (char *)id_field(p);
    v->stub_member.prev = &v->stub_member; /* cJSON: a first child's prev is the last one */
    return cJSON_CreateObjectReference(&v->stub_member);
}

/*
 * The page's records in order: a stub {id_field: id} for each SAME record,
 * a reference to the parsed one for the others. NULL if the parsed array
 * does not hold exactly the records sent to the parser.
 */
static cJSON *assemble(struct poller *p, const char *data, const cJSON *parsed)
{
    struct poller_raw *r = &p->raw;
    if (!cJSON_IsArray(parsed) ||
        (size_t)cJSON_GetArraySize(parsed) != r->spans.n - r->skipped) {
        return NULL;
    }
    cJSON *records = cJSON_CreateArray();
    const cJSON *next = parsed->child;
    for (size_t i = 0; i < r->spans.n; i++) {
        struct poller_raw_rec *v = &r->v[i];
        if (v->kind == SNAPSHOT_RAW_SAME) {
            cJSON_AddItemToArray(records, stub(p, data, i));
            v->child = &v->stub_member;
        } else {
            cJSON_AddItemReferenceToArray(records, (cJSON *)next);
            v->child = next->child;
            next = next->next;
        }
    }
    return records;
}

/* The page goes the normal way (its records are applied without passing
 * through match_records): the map could go stale. Returns false. */
static bool raw_fallback(struct poller *p)
{
    map_off(&p->raw);
    return false;
}

bool poller__raw_page(struct poller *p, const struct http_response *resp, cJSON **body_out,
                      cJSON **records_out)
{
    struct poller_raw *r = &p->raw;
    const char *member = NULL;
    const char *data = resp->body.data;
    size_t len = resp->body.len;
    r->active = false;
    r->parsed = 0;
    r->skipped = 0;
    if (len == 0 || poller__classify(resp) != OUTCOME_OK || !records_member(p, &member)) {
        return raw_fallback(p);
    }
    long same;
    bool memo = poller__memo_hit(p, data, len);
    if (memo) {
        reserve(r, r->spans.n);
        same = memo_records(p, data);
    } else {
        if (jsonspan_records(data, len, member, id_field(p), &r->spans) != 0) {
            return raw_fallback(p);
        }
        reserve(r, r->spans.n);
        same = match_records(p, data);
        if (same < 0) {
            return raw_fallback(p);
        }
        poller__memo_matched(p, data, same);
    }
    r->skipped = (unsigned)same;
    cJSON *body = NULL;
    int rc;
    if (same == 0) {
        rc = json_parse_arena(data, len, &body, NULL); /* every record is parsed: no copy */
    } else {
        shorten(r, data, len);
        rc = json_parse_arena(r->doc.data, r->doc.len, &body, NULL);
        if (r->doc.cap > RAW_DOC_KEEP) {
            buf_finish(&r->doc); /* an unusually big page: do not hold its copy */
        }
    }
    if (rc != 0) {
        r->skipped = 0;
        return raw_fallback(p); /* the normal parse reports it */
    }
    const cJSON *parsed = member != NULL ? cJSON_GetObjectItemCaseSensitive(body, member) : body;
    cJSON *records = assemble(p, data, parsed);
    if (records == NULL) {
        json_arena_free(body);
        r->skipped = 0;
        return raw_fallback(p);
    }
    r->n = r->spans.n;
    r->parsed = (unsigned)(r->n - r->skipped);
    r->active = true;
    log_debug(p->tag, "page %u: %zu records, %u parsed (the bytes of %u unchanged%s)", p->page + 1,
              r->n, r->parsed, r->skipped, memo ? ", a memorized page" : "");
    *body_out = body;
    *records_out = records;
    return true;
}

/* snapshot_scope.raw_of: the record is found by its first member (a
 * reference shares it), from where the last one was found. */
static enum snapshot_raw raw_of(const cJSON *rec, struct hash128 *raw, void *ud)
{
    struct poller_raw *r = ud;
    const cJSON *child = rec->child;
    if (child == NULL || r->n == 0) {
        return SNAPSHOT_RAW_NONE;
    }
    for (size_t k = 0; k < r->n; k++) {
        size_t i = (r->cursor + k) % r->n;
        if (r->v[i].child == child) {
            r->cursor = i + 1;
            *raw = r->v[i].raw;
            return r->v[i].parsed_same ? SNAPSHOT_RAW_SAME : r->v[i].kind;
        }
    }
    return SNAPSHOT_RAW_NONE;
}

void poller__raw_scope(struct poller *p, struct snapshot_scope *sc)
{
    if (!p->raw.active) {
        return;
    }
    p->raw.cursor = 0;
    sc->raw_of = raw_of;
    sc->raw_ud = &p->raw;
}

void poller__raw_cycle_reset(struct poller *p)
{
    map_save(p);
    poller__memo_reset(p);
    idmap_finish(&p->raw.map);
    p->raw.map_state = RAW_MAP_NONE;
}

void poller__raw_free(struct poller *p)
{
    poller__memo_reset(p);
    idmap_finish(&p->raw.map);
    jsonspan_page_free(&p->raw.spans);
    if (p->raw.doc.max != 0) {
        buf_finish(&p->raw.doc);
    }
    free(p->raw.v);
    memset(&p->raw, 0, sizeof(p->raw));
}

/*
 * diff: see diff.h.
 */
#include "diff.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "sha256.h"
#include "util.h"

/* Hash feed tags of the fields-restricted record hash (json.h uses other letters). */
enum {
    TAG_FIELDS = 'F',  /* header: number of distinct listed names */
    TAG_PRESENT = 'p', /* per name: how many members carry it (0 = absent) */
};

/* Field lists longer than this are sorted in a heap copy instead of on the stack. */
#define FIELDS_STACK 32

struct filter {
    char *const *fields;
    char *const *ignore;
};

static bool keep_member(const char *key, void *ud)
{
    const struct filter *f = ud;
    if (f->fields != NULL && !strv_contains(f->fields, key)) {
        return false;
    }
    if (f->ignore != NULL && strv_contains(f->ignore, key)) {
        return false;
    }
    return true;
}

static const char *member_key(const struct json_members *m, size_t i)
{
    const char *k = json_members_at(m, i)->string;
    return k != NULL ? k : "";
}

static void sort_names(const char **v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        const char *cur = v[i];
        size_t j = i;
        while (j > 0 && strcmp(cur, v[j - 1]) < 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = cur;
    }
}

/*
 * Fields mode: every distinct listed (and not ignored) name in sorted order
 * contributes its key token and the count of members carrying it, then their
 * values. Both the names and the member view are sorted by key, so one merge
 * pass pairs them.
 */
static void hash_fields(struct hash_state *st, const cJSON *record, const struct filter *f)
{
    const char *stack_names[FIELDS_STACK];
    const char **names = stack_names;
    size_t total = strv_len(f->fields);
    size_t n = 0;
    struct json_members m;

    if (total > FIELDS_STACK) {
        names = xmalloc(total * sizeof(*names));
    }
    for (size_t i = 0; i < total; i++) {
        if (f->ignore == NULL || !strv_contains(f->ignore, f->fields[i])) {
            names[n++] = f->fields[i];
        }
    }
    sort_names(names, n);
    /* Collapse repeats so "a a b" and "a b" hash alike. */
    size_t uniq = 0;
    for (size_t i = 0; i < n; i++) {
        if (uniq == 0 || strcmp(names[uniq - 1], names[i]) != 0) {
            names[uniq++] = names[i];
        }
    }

    json_members_begin(&m, record, keep_member, (void *)f);
    hash_u64(st, (uint64_t)TAG_FIELDS | ((uint64_t)uniq << 8));
    size_t j = 0;
    for (size_t i = 0; i < uniq; i++) {
        size_t start = j;
        while (j < m.count && strcmp(member_key(&m, j), names[i]) == 0) {
            j++;
        }
        json_hash_key(st, names[i]);
        hash_u64(st, (uint64_t)TAG_PRESENT | ((uint64_t)(j - start) << 8));
        for (size_t k = start; k < j; k++) {
            json_hash_update(st, json_members_at(&m, k));
        }
    }
    json_members_end(&m);
    if (names != stack_names) {
        free(names);
    }
}

static void record_hash(struct hash_state *st, const cJSON *record, char *const *fields,
                        char *const *ignore, struct hash128 *out)
{
    struct filter f = {fields, ignore};

    if (!cJSON_IsObject(record)) {
        json_hash_update(st, record);
    } else if (fields != NULL) {
        hash_fields(st, record, &f);
    } else {
        json_hash_object_filtered(st, record, ignore != NULL ? keep_member : NULL, &f);
    }
    hash_final(st, out);
}

void diff_record_hash(const cJSON *record, char *const *fields, char *const *ignore,
                      struct hash128 *out)
{
    struct hash_state st;
    hash_init(&st);
    record_hash(&st, record, fields, ignore, out);
}

void diff_record_hash_legacy(const cJSON *record, char *const *fields, char *const *ignore,
                             struct hash128 *out)
{
    struct hash_state st;
    hash_init_legacy(&st);
    record_hash(&st, record, fields, ignore, out);
}

/* ---------------------------------------------------------------- changes */

/* cJSON reports OOM as NULL; the project policy (util.h) is log and abort. */
static cJSON *must(cJSON *v)
{
    if (v == NULL) {
        log_error("diff", "out of memory building a change set");
        abort();
    }
    return v;
}

/* Members [from, to) of a view as a value: null, the single value, or an array. */
static cJSON *group_value(const struct json_members *m, size_t from, size_t to)
{
    if (from == to) {
        return must(cJSON_CreateNull());
    }
    if (to - from == 1) {
        return must(cJSON_Duplicate(json_members_at(m, from), 1));
    }
    cJSON *arr = must(cJSON_CreateArray());
    for (size_t i = from; i < to; i++) {
        cJSON_AddItemToArray(arr, must(cJSON_Duplicate(json_members_at(m, i), 1)));
    }
    return arr;
}

static bool group_differs(const struct json_members *a, size_t ai, size_t aj,
                          const struct json_members *b, size_t bi, size_t bj)
{
    if (aj - ai != bj - bi) {
        return true; /* includes added and removed members */
    }
    for (size_t k = 0; k < aj - ai; k++) {
        if (!json_equal(json_members_at(a, ai + k), json_members_at(b, bi + k))) {
            return true;
        }
    }
    return false;
}

cJSON *diff_changes(const cJSON *old_rec, const cJSON *new_rec, char *const *fields,
                    char *const *ignore)
{
    struct filter f = {fields, ignore};
    bool (*keep)(const char *, void *) = (fields != NULL || ignore != NULL) ? keep_member : NULL;
    struct json_members mo;
    struct json_members mn;
    cJSON *res = NULL;
    size_t i = 0;
    size_t j = 0;

    json_members_begin(&mo, old_rec, keep, &f);
    json_members_begin(&mn, new_rec, keep, &f);
    /* Merge join of two key-sorted views; equal keys form groups (duplicates). */
    while (i < mo.count || j < mn.count) {
        const char *k;
        if (j >= mn.count) {
            k = member_key(&mo, i);
        } else if (i >= mo.count) {
            k = member_key(&mn, j);
        } else {
            const char *ko = member_key(&mo, i);
            const char *kn = member_key(&mn, j);
            k = strcmp(ko, kn) <= 0 ? ko : kn;
        }
        size_t i2 = i;
        size_t j2 = j;
        while (i2 < mo.count && strcmp(member_key(&mo, i2), k) == 0) {
            i2++;
        }
        while (j2 < mn.count && strcmp(member_key(&mn, j2), k) == 0) {
            j2++;
        }
        if (group_differs(&mo, i, i2, &mn, j, j2)) {
            if (res == NULL) {
                res = must(cJSON_CreateObject());
            }
            cJSON *ch = must(cJSON_CreateObject());
            cJSON_AddItemToObject(ch, "old", group_value(&mo, i, i2));
            cJSON_AddItemToObject(ch, "new", group_value(&mn, j, j2));
            cJSON_AddItemToObject(res, k, ch);
        }
        i = i2;
        j = j2;
    }
    json_members_end(&mn);
    json_members_end(&mo);
    return res;
}

/* ---------------------------------------------------------------- snapshot codec */

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

#define SNAP_KNOWN_FLAGS1 (SNAP_BASELINE | SNAP_MISSING)
#define SNAP_KNOWN_FLAGS (SNAP_KNOWN_FLAGS1 | SNAP_RAW)

int diff_snap_encode(const struct snap_entry *e, struct buf *out)
{
    uint8_t h[DIFF_SNAP_HEADER_LEN];
    int rc;
    /* A format-1 entry rewritten as is (a flag change) keeps its format: its
     * hash is still MurmurHash3, and only the migration may change that. */
    bool v1 = e->format == DIFF_SNAP_FORMAT1;
    uint32_t known = v1 ? SNAP_KNOWN_FLAGS1 : SNAP_KNOWN_FLAGS;

    buf_reset(out);
    if ((e->json == NULL && e->json_len > 0) || (e->flags & ~known) != 0) {
        return -EINVAL;
    }
    h[0] = DIFF_SNAP_MAGIC;
    h[1] = v1 ? DIFF_SNAP_FORMAT1 : DIFF_SNAP_FORMAT;
    put_le(h + 2, 0, 2);
    put_le(h + 4, e->hash.lo, 8);
    put_le(h + 12, e->hash.hi, 8);
    put_le(h + 20, e->version, 4);
    put_le(h + 24, e->flags, 4);
    put_le(h + 28, e->missing_since_cycle, 8);
    put_le(h + 36, (e->flags & SNAP_RAW) ? e->raw.lo : 0, 8);
    put_le(h + 44, (e->flags & SNAP_RAW) ? e->raw.hi : 0, 8);
    rc = buf_append(out, h, v1 ? DIFF_SNAP_HEADER1_LEN : DIFF_SNAP_HEADER_LEN);
    if (rc == 0 && e->json_len > 0) {
        rc = buf_append(out, e->json, e->json_len);
    }
    if (rc != 0) {
        buf_reset(out);
    }
    return rc;
}

int diff_snap_decode(const void *val, size_t len, struct snap_entry *e)
{
    const uint8_t *p = val;

    memset(e, 0, sizeof(*e));
    if (p == NULL || len < DIFF_SNAP_HEADER1_LEN || p[0] != DIFF_SNAP_MAGIC ||
        get_le(p + 2, 2) != 0) {
        return -EINVAL;
    }
    size_t header;
    uint32_t known;
    if (p[1] == DIFF_SNAP_FORMAT && len >= DIFF_SNAP_HEADER_LEN) {
        header = DIFF_SNAP_HEADER_LEN;
        known = SNAP_KNOWN_FLAGS;
    } else if (p[1] == DIFF_SNAP_FORMAT1) {
        header = DIFF_SNAP_HEADER1_LEN;
        known = SNAP_KNOWN_FLAGS1;
    } else {
        return -EINVAL;
    }
    uint32_t flags = (uint32_t)get_le(p + 24, 4);
    if ((flags & ~known) != 0) {
        return -EINVAL;
    }
    if (header == DIFF_SNAP_HEADER_LEN) {
        e->raw.lo = get_le(p + 36, 8);
        e->raw.hi = get_le(p + 44, 8);
    }
    e->format = p[1];
    e->hash.lo = get_le(p + 4, 8);
    e->hash.hi = get_le(p + 12, 8);
    e->version = (uint32_t)get_le(p + 20, 4);
    e->flags = flags;
    e->missing_since_cycle = get_le(p + 28, 8);
    e->json = (const char *)p + header;
    e->json_len = len - header;
    return 0;
}

/* ---------------------------------------------------------------- ids */

static void feed_field(struct sha256_ctx *ctx, const char *s)
{
    uint8_t pre[8];
    size_t n = s != NULL ? strlen(s) : 0;

    for (int i = 0; i < 8; i++) {
        pre[i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
    }
    sha256_update(ctx, pre, sizeof(pre));
    sha256_update(ctx, s, n);
}

void diff_event_id(const char *location, const char *trigger, const char *record_id,
                   const char *type, uint32_t version, char out[33])
{
    static const char hexdig[] = "0123456789abcdef";
    struct sha256_ctx ctx;
    uint8_t d[SHA256_DIGEST_LEN];
    uint8_t v[4];

    sha256_init(&ctx);
    feed_field(&ctx, location);
    feed_field(&ctx, trigger);
    feed_field(&ctx, record_id);
    feed_field(&ctx, type);
    for (int i = 0; i < 4; i++) {
        v[i] = (uint8_t)(version >> (24 - 8 * i));
    }
    sha256_update(&ctx, v, sizeof(v));
    sha256_final(&ctx, d);
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hexdig[d[i] >> 4];
        out[2 * i + 1] = hexdig[d[i] & 15];
    }
    out[32] = '\0';
}

bool diff_valid_record_id(const char *id)
{
    size_t n = 0;

    if (id == NULL) {
        return false;
    }
    for (; id[n] != '\0'; n++) {
        char c = id[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == ':' || c == '-';
        if (!ok || n >= 128) {
            return false;
        }
    }
    if (n == 0 || strcmp(id, ".") == 0 || strcmp(id, "..") == 0) {
        return false;
    }
    return true;
}

/*
 * test_diff: change sets for a table of record pairs (and their agreement
 * with the record hash), record-hash stability under key reordering and
 * sensitivity to every field, the fields/ignore filters, the snapshot value
 * codec (round trip, rejection of truncated and garbage values), event-id
 * vectors (reference: Python hashlib over the same length-prefixed layout)
 * and record-id validation.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "json.h"
#include "util.h"
#include "testlib.h"

static cJSON *parse(const char *s)
{
    cJSON *v = NULL;
    if (s == NULL) {
        return NULL;
    }
    int rc = json_parse(s, strlen(s), &v, NULL);
    if (rc != 0) {
        fprintf(stderr, "bad fixture: %s\n", s);
    }
    CHECK_INT(rc, 0);
    return v;
}

static struct hash128 rhash(const cJSON *rec, char *const *fields, char *const *ignore)
{
    struct hash128 h;
    diff_record_hash(rec, fields, ignore, &h);
    return h;
}

static void test_changes_table(void)
{
    static const struct {
        const char *old_rec; /* NULL: no record */
        const char *new_rec;
        const char *fields;  /* space-separated list, NULL = all */
        const char *ignore;
        const char *want;    /* exact cJSON_PrintUnformatted of the change set, NULL = none */
    } cases[] = {
        /* added field */
        {"{\"id\":\"1\"}", "{\"id\":\"1\",\"a\":2}", NULL, NULL,
         "{\"a\":{\"old\":null,\"new\":2}}"},
        /* removed field */
        {"{\"id\":\"1\",\"a\":2}", "{\"id\":\"1\"}", NULL, NULL,
         "{\"a\":{\"old\":2,\"new\":null}}"},
        /* nested change reported at top level, with the whole member */
        {"{\"d\":{\"x\":1,\"y\":2},\"id\":\"1\"}", "{\"id\":\"1\",\"d\":{\"y\":2,\"x\":3}}", NULL,
         NULL, "{\"d\":{\"old\":{\"x\":1,\"y\":2},\"new\":{\"y\":2,\"x\":3}}}"},
        /* type change 1 -> "1" */
        {"{\"a\":1}", "{\"a\":\"1\"}", NULL, NULL, "{\"a\":{\"old\":1,\"new\":\"1\"}}"},
        {"{\"a\":true}", "{\"a\":1}", NULL, NULL, "{\"a\":{\"old\":true,\"new\":1}}"},
        {"{\"a\":[]}", "{\"a\":{}}", NULL, NULL, "{\"a\":{\"old\":[],\"new\":{}}}"},
        /* key reorder, nested too: no change */
        {"{\"a\":1,\"b\":{\"x\":1,\"y\":[1,{\"p\":1,\"q\":2}]}}",
         "{\"b\":{\"y\":[1,{\"q\":2,\"p\":1}],\"x\":1},\"a\":1}", NULL, NULL, NULL},
        /* canonically equal numbers */
        {"{\"a\":1,\"b\":-0}", "{\"a\":1.0,\"b\":0}", NULL, NULL, NULL},
        /* array order is content */
        {"{\"tags\":[\"a\",\"b\"]}", "{\"tags\":[\"b\",\"a\"]}", NULL, NULL,
         "{\"tags\":{\"old\":[\"a\",\"b\"],\"new\":[\"b\",\"a\"]}}"},
        /* ignore filter */
        {"{\"a\":1,\"updatedAt\":\"x\"}", "{\"a\":1,\"updatedAt\":\"y\"}", NULL, "updatedAt", NULL},
        {"{\"a\":1,\"updatedAt\":\"x\"}", "{\"a\":2,\"updatedAt\":\"y\"}", NULL, "updatedAt",
         "{\"a\":{\"old\":1,\"new\":2}}"},
        /* fields filter */
        {"{\"a\":1,\"b\":1}", "{\"a\":1,\"b\":2}", "a", NULL, NULL},
        {"{\"a\":1,\"b\":1}", "{\"a\":1,\"b\":2}", "b a", NULL, "{\"b\":{\"old\":1,\"new\":2}}"},
        {"{\"a\":1}", "{\"a\":1,\"c\":5}", "a b", NULL, NULL},
        {"{\"a\":1}", "{\"a\":1,\"b\":5}", "a b", NULL, "{\"b\":{\"old\":null,\"new\":5}}"},
        /* a name in both lists is ignored */
        {"{\"a\":1,\"b\":1}", "{\"a\":1,\"b\":2}", "a b", "b", NULL},
        /* added with value null is still a change (absent != null) */
        {"{}", "{\"a\":null}", NULL, NULL, "{\"a\":{\"old\":null,\"new\":null}}"},
        {"{}", "{\"a\":null}", "a", NULL, "{\"a\":{\"old\":null,\"new\":null}}"},
        /* several changes: keys in sorted order whatever the input order */
        {"{\"c\":1,\"b\":1,\"a\":1}", "{\"b\":1,\"c\":2,\"a\":2,\"Z\":0}", NULL, NULL,
         "{\"Z\":{\"old\":null,\"new\":0},\"a\":{\"old\":1,\"new\":2},\"c\":{\"old\":1,\"new\":2}}"},
        /* duplicated key compared as its list of values */
        {"{\"a\":1,\"a\":2}", "{\"a\":1}", NULL, NULL, "{\"a\":{\"old\":[1,2],\"new\":1}}"},
        {"{\"a\":1,\"a\":2}", "{\"a\":1,\"a\":2}", NULL, NULL, NULL},
        /* no old record: everything added */
        {NULL, "{\"b\":1,\"a\":[2]}", NULL, NULL,
         "{\"a\":{\"old\":null,\"new\":[2]},\"b\":{\"old\":null,\"new\":1}}"},
        {"{\"a\":1}", NULL, NULL, NULL, "{\"a\":{\"old\":1,\"new\":null}}"},
        {NULL, NULL, NULL, NULL, NULL},
        {"{}", "{}", NULL, NULL, NULL},
        /* unicode keys are matched bytewise */
        {"{\"é\":1}", "{\"é\":1,\"e\":1}", NULL, NULL, "{\"e\":{\"old\":null,\"new\":1}}"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cJSON *o = parse(cases[i].old_rec);
        cJSON *n = parse(cases[i].new_rec);
        char **fields = cases[i].fields ? strv_split(cases[i].fields, NULL) : NULL;
        char **ignore = cases[i].ignore ? strv_split(cases[i].ignore, NULL) : NULL;
        cJSON *ch = diff_changes(o, n, fields, ignore);
        char *got = ch != NULL ? cJSON_PrintUnformatted(ch) : NULL;
        if (cases[i].want == NULL ? got != NULL : (got == NULL || strcmp(got, cases[i].want))) {
            fprintf(stderr, "changes case %zu\n", i);
        }
        CHECK_STR(got, cases[i].want);
        /* The record hash agrees: it differs exactly when there are changes. */
        if (o != NULL && n != NULL) {
            struct hash128 ho = rhash(o, fields, ignore);
            struct hash128 hn = rhash(n, fields, ignore);
            if (hash128_eq(&ho, &hn) != (ch == NULL)) {
                fprintf(stderr, "hash/changes disagree in case %zu\n", i);
            }
            CHECK(hash128_eq(&ho, &hn) == (ch == NULL));
        }
        free(got);
        cJSON_Delete(ch);
        strv_free(fields);
        strv_free(ignore);
        cJSON_Delete(o);
        cJSON_Delete(n);
    }
}

/* The changes are deep copies: they outlive both input records. */
static void test_changes_own_copies(void)
{
    cJSON *o = parse("{\"d\":{\"x\":[1,2]}}");
    cJSON *n = parse("{\"d\":{\"x\":[1,3]}}");
    cJSON *ch = diff_changes(o, n, NULL, NULL);
    cJSON_Delete(o);
    cJSON_Delete(n);
    CHECK(ch != NULL);
    char *s = json_print_canonical(ch);
    CHECK_STR(s, "{\"d\":{\"new\":{\"x\":[1,3]},\"old\":{\"x\":[1,2]}}}");
    free(s);
    cJSON_Delete(ch);
}

static const char *contact =
    "{\"id\":\"l1C08ntBrFjLS0elLIYU\",\"locationId\":\"ve9EPM428h8vShlRW1KT\","
    "\"firstName\":\"Ada\",\"lastName\":\"Lovelace\",\"email\":\"ada@example.com\","
    "\"phone\":\"+15550001111\",\"dnd\":false,\"type\":\"lead\",\"source\":null,"
    "\"tags\":[\"vip\",\"newsletter\"],\"dateAdded\":\"2024-01-02T03:04:05.000Z\","
    "\"customFields\":[{\"id\":\"cf1\",\"value\":\"x\"},{\"id\":\"cf2\",\"value\":42}],"
    "\"dndSettings\":{\"SMS\":{\"status\":\"active\",\"message\":\"\"},\"Email\":{\"status\":\"inactive\"}},"
    "\"score\":12.5}";

/* Every rotation of the top-level members, with nested members reversed, hashes alike. */
static void test_hash_key_order(void)
{
    cJSON *ref = parse(contact);
    struct hash128 want = rhash(ref, NULL, NULL);
    int n = cJSON_GetArraySize(ref);
    int bad = 0;

    for (int r = 0; r < n; r++) {
        cJSON *v = cJSON_Duplicate(ref, 1);
        for (int k = 0; k < r; k++) {
            cJSON *first = cJSON_DetachItemViaPointer(v, v->child);
            cJSON_AddItemToObject(v, first->string, first);
        }
        cJSON *dnd = cJSON_GetObjectItemCaseSensitive(v, "dndSettings");
        cJSON_AddItemToObject(dnd, "SMS", cJSON_DetachItemFromObjectCaseSensitive(dnd, "SMS"));
        struct hash128 got = rhash(v, NULL, NULL);
        if (!hash128_eq(&got, &want)) {
            bad++;
        }
        if (diff_changes(ref, v, NULL, NULL) != NULL) {
            bad++;
        }
        cJSON_Delete(v);
    }
    CHECK_INT(bad, 0);
    cJSON_Delete(ref);
}

/* Changing, nulling or removing any single top-level member changes the hash. */
static void test_hash_sensitivity(void)
{
    cJSON *ref = parse(contact);
    struct hash128 want = rhash(ref, NULL, NULL);
    int n = cJSON_GetArraySize(ref);
    int missed = 0;

    for (int i = 0; i < n; i++) {
        const char *key = cJSON_GetArrayItem(ref, i)->string;
        cJSON *replacements[] = {cJSON_CreateString("CHANGED"), cJSON_CreateNull(),
                                 cJSON_CreateNumber(0), NULL};
        for (size_t r = 0; r < ARRAY_SIZE(replacements); r++) {
            cJSON *v = cJSON_Duplicate(ref, 1);
            if (replacements[r] != NULL) {
                cJSON_ReplaceItemInObjectCaseSensitive(v, key, replacements[r]);
            } else {
                cJSON_DeleteItemFromObjectCaseSensitive(v, key);
            }
            /* Replacing null by null is not a change: skip that one. */
            bool same = json_equal(v, ref);
            struct hash128 got = rhash(v, NULL, NULL);
            if (!same && hash128_eq(&got, &want)) {
                fprintf(stderr, "hash insensitive to %s (replacement %zu)\n", key, r);
                missed++;
            }
            cJSON_Delete(v);
        }
    }
    CHECK_INT(missed, 0);

    /* Deep leaf: the value of the second custom field. */
    cJSON *v = cJSON_Duplicate(ref, 1);
    cJSON *cf = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(v, "customFields"), 1);
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(cf, "value"), 43);
    struct hash128 got = rhash(v, NULL, NULL);
    CHECK(!hash128_eq(&got, &want));
    cJSON_Delete(v);
    cJSON_Delete(ref);
}

static void test_hash_filters(void)
{
    cJSON *a = parse("{\"a\":1}");
    cJSON *an = parse("{\"a\":1,\"b\":null}");
    cJSON *ax = parse("{\"x\":9,\"a\":1}");
    cJSON *arr = parse("[1,2]");
    char **ab = strv_split("a b", NULL);
    char **ba = strv_split("b a a b", NULL);
    char **b_only = strv_split("b", NULL);
    char **x_only = strv_split("x", NULL);
    struct hash128 h1, h2;

    /* absent != present-with-null, with and without a field list */
    h1 = rhash(a, ab, NULL);
    h2 = rhash(an, ab, NULL);
    CHECK(!hash128_eq(&h1, &h2));
    h1 = rhash(a, NULL, NULL);
    h2 = rhash(an, NULL, NULL);
    CHECK(!hash128_eq(&h1, &h2));
    /* field list order and repeats do not matter */
    h1 = rhash(an, ab, NULL);
    h2 = rhash(an, ba, NULL);
    CHECK(hash128_eq(&h1, &h2));
    /* members outside the field list do not count */
    h1 = rhash(a, ab, NULL);
    h2 = rhash(ax, ab, NULL);
    CHECK(hash128_eq(&h1, &h2));
    /* ignore removes a member */
    h1 = rhash(a, NULL, NULL);
    h2 = rhash(ax, NULL, x_only);
    CHECK(hash128_eq(&h1, &h2));
    h2 = rhash(ax, NULL, NULL);
    CHECK(!hash128_eq(&h1, &h2));
    /* ignoring a listed field drops it from the list */
    h1 = rhash(an, ab, b_only);
    h2 = rhash(a, ab, b_only);
    CHECK(hash128_eq(&h1, &h2));
    /* without filters the record hash is the json hash */
    struct hash_state st;
    hash_init(&st);
    json_hash_update(&st, ax);
    hash_final(&st, &h1);
    h2 = rhash(ax, NULL, NULL);
    CHECK(hash128_eq(&h1, &h2));
    /* a non-object record hashes as its value */
    hash_init(&st);
    json_hash_update(&st, arr);
    hash_final(&st, &h1);
    h2 = rhash(arr, ab, x_only);
    CHECK(hash128_eq(&h1, &h2));

    /* A field list longer than the on-stack array, in two orders. */
    char list1[600] = "";
    char list2[600] = "";
    size_t n1 = 0;
    size_t n2 = 0;
    for (int i = 0; i < 40; i++) {
        n1 += (size_t)snprintf(list1 + n1, sizeof(list1) - n1, "f%02d ", i);
        n2 += (size_t)snprintf(list2 + n2, sizeof(list2) - n2, "f%02d ", 39 - i);
    }
    char **l1 = strv_split(list1, NULL);
    char **l2 = strv_split(list2, NULL);
    cJSON *big = parse("{\"f07\":1,\"f33\":[2],\"zz\":3}");
    h1 = rhash(big, l1, NULL);
    h2 = rhash(big, l2, NULL);
    CHECK(hash128_eq(&h1, &h2));
    cJSON_ReplaceItemInObjectCaseSensitive(big, "f33", cJSON_CreateNumber(2));
    h2 = rhash(big, l2, NULL);
    CHECK(!hash128_eq(&h1, &h2));
    strv_free(l1);
    strv_free(l2);
    cJSON_Delete(big);

    strv_free(ab);
    strv_free(ba);
    strv_free(b_only);
    strv_free(x_only);
    cJSON_Delete(a);
    cJSON_Delete(an);
    cJSON_Delete(ax);
    cJSON_Delete(arr);
}

/*
 * Frozen values: record hashes are persisted in snapshots, so an accidental
 * change of the feed or the hash function must fail here (a deliberate one
 * bumps DIFF_SNAP_FORMAT and updates these).
 */
/* Format 1 (MurmurHash3), hi||lo hex; reproduced independently by a Python
 * model of the feed documented in json.h/diff.c. Migration depends on them. */
#define FROZEN1_ALL "5c0611efe8882e5e7b0cfa2184f6190f"
#define FROZEN1_FIELDS "8c144197559233c625d0600ca631e877"
/* Format 2 (XXH3-128 from libxxhash, whose own vectors test_hash checks). */
#define FROZEN_ALL "4a62156524b4ab78e72ebffb90c3f372"
#define FROZEN_FIELDS "59cd9ee076cc8a061273e7306f45b20c"

static void check_hex(const struct hash128 *h, const char *want)
{
    char got[80];
    snprintf(got, sizeof(got), "%016llx%016llx", (unsigned long long)h->hi,
             (unsigned long long)h->lo);
    CHECK_STR(got, want);
}

static void test_hash_frozen(void)
{
    cJSON *rec = parse(contact);
    char **fields = strv_split("email tags missing", NULL);
    struct hash128 h = rhash(rec, NULL, NULL);
    struct hash128 hf = rhash(rec, fields, NULL);
    check_hex(&h, FROZEN_ALL);
    check_hex(&hf, FROZEN_FIELDS);
    diff_record_hash_legacy(rec, NULL, NULL, &h);
    diff_record_hash_legacy(rec, fields, NULL, &hf);
    check_hex(&h, FROZEN1_ALL);
    check_hex(&hf, FROZEN1_FIELDS);
    strv_free(fields);
    cJSON_Delete(rec);
}

/* Format 1 values (written by pollen before XXH3) decode, keep their format
 * when rewritten with new flags, and cannot carry a raw hash. */
static void test_snap_codec_format1(void)
{
    uint8_t v1[DIFF_SNAP_HEADER1_LEN + 2] = {DIFF_SNAP_MAGIC, 1, 0, 0};
    for (int i = 0; i < 8; i++) {
        v1[4 + i] = (uint8_t)(0x11 * (i + 1)); /* hash.lo */
    }
    v1[20] = 3;            /* version */
    v1[24] = SNAP_MISSING; /* flags */
    v1[28] = 9;            /* missing_since_cycle */
    memcpy(v1 + DIFF_SNAP_HEADER1_LEN, "{}", 2);
    struct snap_entry d;
    CHECK_INT(diff_snap_decode(v1, sizeof(v1), &d), 0);
    CHECK_INT(d.format, DIFF_SNAP_FORMAT1);
    CHECK(d.hash.lo == 0x8877665544332211ULL);
    CHECK_INT(d.version, 3);
    CHECK_INT(d.flags, SNAP_MISSING);
    CHECK(d.missing_since_cycle == 9);
    CHECK_INT(d.json_len, 2);
    CHECK(d.json == (const char *)v1 + DIFF_SNAP_HEADER1_LEN);
    CHECK(d.raw.lo == 0 && d.raw.hi == 0);

    struct buf b;
    buf_init(&b, 1024);
    d.flags = 0;
    d.json = NULL;
    d.json_len = 0;
    CHECK_INT(diff_snap_encode(&d, &b), 0);
    CHECK_INT(b.len, DIFF_SNAP_HEADER1_LEN);
    CHECK_INT((unsigned char)b.data[1], DIFF_SNAP_FORMAT1);
    CHECK(memcmp(b.data + 4, v1 + 4, 16) == 0); /* the legacy hash, unchanged */
    d.flags = SNAP_RAW;
    CHECK_INT(diff_snap_encode(&d, &b), -EINVAL);
    v1[24] = SNAP_RAW; /* a flag format 1 never had */
    CHECK_INT(diff_snap_decode(v1, sizeof(v1), &d), -EINVAL);
    buf_finish(&b);
}

static void test_snap_codec(void)
{
    const char *json = "{\"id\":\"x\",\"a\":[1,2]}";
    struct snap_entry e = {
        .hash = {0x0102030405060708ULL, 0x1112131415161718ULL},
        .version = 7,
        .flags = SNAP_BASELINE | SNAP_MISSING | SNAP_RAW,
        .missing_since_cycle = 0xA0B0C0D0E0F00102ULL,
        .raw = {0x2122232425262728ULL, 0x3132333435363738ULL},
        .json = json,
        .json_len = strlen(json),
    };
    struct buf b;
    struct snap_entry d;

    buf_init(&b, 1 << 20);
    buf_append_str(&b, "stale content that encode must clear");
    CHECK_INT(diff_snap_encode(&e, &b), 0);
    CHECK_INT(b.len, DIFF_SNAP_HEADER_LEN + strlen(json));
    CHECK_INT((unsigned char)b.data[0], DIFF_SNAP_MAGIC);
    CHECK_INT((unsigned char)b.data[1], DIFF_SNAP_FORMAT);
    CHECK_INT((unsigned char)b.data[4], 0x08); /* little-endian hash.lo */
    CHECK_INT((unsigned char)b.data[20], 7);
    CHECK_INT((unsigned char)b.data[36], 0x28); /* little-endian raw.lo */
    CHECK_INT(b.data[b.len], '\0');

    /* Decode from an exact-size copy (ASan catches any over-read). */
    char *val = malloc(b.len);
    memcpy(val, b.data, b.len);
    CHECK_INT(diff_snap_decode(val, b.len, &d), 0);
    CHECK(hash128_eq(&d.hash, &e.hash));
    CHECK_INT(d.version, 7);
    CHECK_INT(d.flags, SNAP_BASELINE | SNAP_MISSING | SNAP_RAW);
    CHECK(d.missing_since_cycle == e.missing_since_cycle);
    CHECK(hash128_eq(&d.raw, &e.raw));
    CHECK_INT(d.format, DIFF_SNAP_FORMAT);
    CHECK(d.json == val + DIFF_SNAP_HEADER_LEN); /* borrowed, points into val */
    CHECK_INT(d.json_len, strlen(json));
    CHECK(memcmp(d.json, json, d.json_len) == 0);

    /* Every truncation of the header is rejected and zeroes the entry. */
    int accepted = 0;
    for (size_t len = 0; len < DIFF_SNAP_HEADER_LEN; len++) {
        char *cut = malloc(len ? len : 1);
        memcpy(cut, val, len);
        memset(&d, 0x5a, sizeof(d));
        if (diff_snap_decode(cut, len, &d) != -EINVAL || d.json != NULL || d.version != 0) {
            accepted++;
        }
        free(cut);
    }
    CHECK_INT(accepted, 0);
    /* A truncated JSON tail still decodes: the codec frames, json_parse validates. */
    CHECK_INT(diff_snap_decode(val, b.len - 3, &d), 0);
    CHECK_INT(d.json_len, strlen(json) - 3);

    /* Corrupt header fields. */
    static const struct {
        size_t off;
        unsigned char byte;
    } corrupt[] = {
        {0, '{'},  /* plain JSON is not a snapshot value */
        {0, 0x00},
        {1, 0},    /* format 0 */
        {1, 3},    /* unknown newer format */
        {2, 1},    /* reserved */
        {3, 0x80},
        {24, 0x08}, /* unknown flag bit */
        {27, 0x80},
    };
    for (size_t i = 0; i < ARRAY_SIZE(corrupt); i++) {
        char save = val[corrupt[i].off];
        val[corrupt[i].off] = (char)corrupt[i].byte;
        CHECK_INT(diff_snap_decode(val, b.len, &d), -EINVAL);
        val[corrupt[i].off] = save;
    }
    CHECK_INT(diff_snap_decode(val, b.len, &d), 0);
    CHECK_INT(diff_snap_decode(NULL, 100, &d), -EINVAL);
    const char *garbage = "{\"id\":\"x\",\"hash\":\"0000000000000000000000000000\"}";
    CHECK_INT(diff_snap_decode(garbage, strlen(garbage), &d), -EINVAL);
    free(val);

    /* Empty JSON: NULL in, a valid zero-length pointer out. */
    struct snap_entry empty = {.hash = {1, 2}, .version = 1};
    CHECK_INT(diff_snap_encode(&empty, &b), 0);
    CHECK_INT(b.len, DIFF_SNAP_HEADER_LEN);
    CHECK_INT(diff_snap_decode(b.data, b.len, &d), 0);
    CHECK(d.json == b.data + DIFF_SNAP_HEADER_LEN);
    CHECK_INT(d.json_len, 0);
    CHECK_INT(d.flags, 0);

    /* Encode errors. */
    struct snap_entry bad = e;
    bad.json = NULL;
    CHECK_INT(diff_snap_encode(&bad, &b), -EINVAL);
    bad = e;
    bad.flags = 0x10;
    CHECK_INT(diff_snap_encode(&bad, &b), -EINVAL);
    bad = e;
    bad.flags = 0x08;
    CHECK_INT(diff_snap_encode(&bad, &b), -EINVAL);
    struct buf small;
    buf_init(&small, DIFF_SNAP_HEADER_LEN + 4);
    CHECK_INT(diff_snap_encode(&e, &small), -EFBIG);
    CHECK_INT(small.len, 0);
    buf_finish(&small);
    buf_finish(&b);
}

static void test_event_ids(void)
{
    static const struct {
        const char *loc, *trig, *rid, *type;
        uint32_t version;
        const char *want;
    } cases[] = {
        {"loc1", "new-contacts", "l1C08ntBrFjLS0elLIYU", "created", 1,
         "8e48a035c610aab4c985202a87380814"},
        {"loc1", "new-contacts", "l1C08ntBrFjLS0elLIYU", "updated", 2,
         "088e03c705395a54dd4211e279a97d2f"},
        {"", "", "", "", 0, "6db65fd59fd356f6729140571b5bcd6b"},
        {NULL, NULL, NULL, NULL, 0, "6db65fd59fd356f6729140571b5bcd6b"}, /* NULL == "" */
        {"ab", "c", "x", "t", 1, "83957b4f077ef576df29e89491fe021f"},
        {"a", "bc", "x", "t", 1, "826330e8f0399a8ceaaff51186c4405c"},
        {"é", "t", "r", "y", UINT32_MAX, "9501e5ce00025b4212566a835d3c0e85"},
    };
    char id[33];
    char id2[33];

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        diff_event_id(cases[i].loc, cases[i].trig, cases[i].rid, cases[i].type, cases[i].version, id);
        CHECK_STR(id, cases[i].want);
        CHECK_INT(strlen(id), 32);
    }
    /* Shifting a boundary between any two fields, or the version, changes the id. */
    diff_event_id("l", "t", "r", "ab", 1, id);
    diff_event_id("l", "t", "ra", "b", 1, id2);
    CHECK(strcmp(id, id2) != 0);
    diff_event_id("l", "tr", "", "ab", 1, id2);
    CHECK(strcmp(id, id2) != 0);
    diff_event_id("l", "t", "r", "ab", 2, id2);
    CHECK(strcmp(id, id2) != 0);
    diff_event_id("l", "t", "r", "ab", 1, id2);
    CHECK_STR(id2, id);
}

static void test_record_ids(void)
{
    char long_ok[129];
    char long_bad[130];
    memset(long_ok, 'a', 128);
    long_ok[128] = '\0';
    memset(long_bad, 'a', 129);
    long_bad[129] = '\0';
    static const struct {
        const char *id;
        bool ok;
    } cases[] = {
        {"l1C08ntBrFjLS0elLIYU", true},
        {"a", true},
        {"a_b-c.d:e", true},
        {"...", true},
        {".hidden", true},
        {"", false},
        {".", false},
        {"..", false},
        {"a/b", false},
        {"../etc", false},
        {"a b", false},
        {"a%2Fb", false},
        {"a?x=1", false},
        {"a#b", false},
        {"a\nb", false},
        {"é", false},
        {"a\\b", false},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        if (diff_valid_record_id(cases[i].id) != cases[i].ok) {
            fprintf(stderr, "record id case %zu\n", i);
        }
        CHECK(diff_valid_record_id(cases[i].id) == cases[i].ok);
    }
    CHECK(diff_valid_record_id(long_ok));
    CHECK(!diff_valid_record_id(long_bad));
    CHECK(!diff_valid_record_id(NULL));
}

/*
 * Regression (found by fuzz_records): an empty record hashed before anything
 * else had used the sort scratch sorted zero members at a NULL base, which
 * UBSan reports as pointer arithmetic on NULL. It must hash like any record.
 */
static void test_empty_record_first(void)
{
    json_scratch_release();
    cJSON *empty = cJSON_Parse("{}");
    cJSON *other = cJSON_Parse("{\"a\":{}}");
    struct hash128 h1;
    struct hash128 h2;
    diff_record_hash(empty, NULL, NULL, &h1);
    diff_record_hash(other, NULL, NULL, &h2);
    CHECK(!hash128_eq(&h1, &h2));
    cJSON *changes = diff_changes(empty, other, NULL, NULL);
    CHECK(changes != NULL && cJSON_GetObjectItemCaseSensitive(changes, "a") != NULL);
    cJSON_Delete(changes);
    cJSON_Delete(empty);
    cJSON_Delete(other);
}

int main(void)
{
    test_empty_record_first();
    test_changes_table();
    test_changes_own_copies();
    test_hash_key_order();
    test_hash_sensitivity();
    test_hash_filters();
    test_hash_frozen();
    test_snap_codec();
    test_snap_codec_format1();
    test_event_ids();
    test_record_ids();
    json_scratch_release();
    return test_done("diff");
}

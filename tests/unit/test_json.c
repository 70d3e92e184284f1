/*
 * test_json: json_parse on exact-size (not NUL-terminated) buffers, depth
 * limits, trailing garbage; canonical print; hash/print/equality agreeing on
 * a corpus (key order ignored, types distinguished); get_path and the
 * case-sensitive getters; strict UTF-8.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "util.h"
#include "testlib.h"

/* Parses a copy of s in a buffer of exactly strlen(s) bytes (ASan catches over-reads). */
static int parse_exact(const char *s, size_t len, cJSON **out, size_t *off)
{
    char *copy = malloc(len ? len : 1);
    if (copy == NULL) {
        return -ENOMEM;
    }
    memcpy(copy, s, len);
    int rc = json_parse(copy, len, out, off);
    free(copy);
    return rc;
}

static struct hash128 hash_of(const cJSON *v)
{
    struct hash_state st;
    struct hash128 h;
    hash_init(&st);
    json_hash_update(&st, v);
    hash_final(&st, &h);
    return h;
}

static cJSON *must_parse(const char *s)
{
    cJSON *v = NULL;
    size_t off = 0;
    int rc = json_parse(s, strlen(s), &v, &off);
    if (rc != 0) {
        fprintf(stderr, "must_parse failed at %zu: %s\n", off, s);
    }
    CHECK_INT(rc, 0);
    return v;
}

static void test_parse_table(void)
{
    static const struct {
        const char *in;
        int rc;
        long off;  /* expected error offset, -1 = don't care */
        int extra; /* bytes past strlen included in len (an embedded NUL) */
    } cases[] = {
        {"{\"a\":1}", 0, 0, 0},
        {"  {\"a\":1} \t\r\n", 0, 0, 0},
        {"[]", 0, 0, 0},
        {"\"str\"", 0, 0, 0},
        {"1e400", 0, 0, 0},                      /* inf; prints null */
        {"123456789012345678901234567890", 0, 0, 0},
        {"-0", 0, 0, 0},
        {"\"\xff\xfe bad utf8\"", 0, 0, 0},      /* passes parse, utf8_valid says no */
        {"{\"a\":1} x", -EINVAL, 8, 0},           /* trailing garbage */
        {"{\"a\":1}{}", -EINVAL, 7, 0},
        {"{\"a\":1}\0", -EINVAL, 7, 1},          /* len below includes the NUL: not white space */
        {"{\"a\":1,", -EINVAL, -1, 0},            /* truncated after a comma (CVE-2023-53154 shape) */
        {"{\"a\":", -EINVAL, -1, 0},
        {"{\"a\"", -EINVAL, -1, 0},
        {"[1,2", -EINVAL, -1, 0},
        {"\"abc", -EINVAL, -1, 0},
        {"\"\\u12", -EINVAL, -1, 0},
        {"\"\\ud800\"", -EINVAL, -1, 0},          /* lone surrogate escape */
        {"nul", -EINVAL, -1, 0},
        {"tru", -EINVAL, -1, 0},
        {"-", -EINVAL, -1, 0},
        {"", -EINVAL, 0, 0},
        {"   ", -EINVAL, -1, 0},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cJSON *v = (cJSON *)&v; /* poison: must be reset to NULL on failure */
        size_t off = 12345;
        size_t len = strlen(cases[i].in) + (size_t)cases[i].extra;
        int rc = parse_exact(cases[i].in, len, &v, &off);
        if (rc != cases[i].rc) {
            fprintf(stderr, "case %zu: %s\n", i, cases[i].in);
        }
        CHECK_INT(rc, cases[i].rc);
        if (cases[i].rc == 0) {
            CHECK(v != NULL);
        } else {
            CHECK(v == NULL);
            CHECK(off <= len);
            if (cases[i].off >= 0) {
                CHECK_INT(off, cases[i].off);
            }
        }
        if (rc == 0) {
            cJSON_Delete(v);
        }
    }

    /* err_offset may be NULL. */
    cJSON *v = NULL;
    CHECK_INT(json_parse("{", 1, &v, NULL), -EINVAL);
    CHECK(v == NULL);
    CHECK_INT(json_parse(NULL, 0, &v, NULL), -EINVAL);
}

/* A number longer than cJSON 1.7.15's 63-byte number buffer: reject or parse, never crash. */
static void test_huge_number(void)
{
    char big[200];
    memset(big, '9', sizeof(big));
    cJSON *v = NULL;
    size_t off = 0;
    int rc = parse_exact(big, sizeof(big), &v, &off);
    CHECK(rc == 0 || rc == -EINVAL);
    if (rc == 0) {
        /* An integer past 2^53 keeps its digits (F20). */
        CHECK(cJSON_IsRaw(v));
        CHECK(v->valuestring != NULL && strlen(v->valuestring) == sizeof(big));
        cJSON_Delete(v);
    } else {
        CHECK(off <= sizeof(big));
    }
    /* Integers of magnitude >= 2^53 keep the digits as written (F20): a
     * double would print 2^53 + 1 as 2^53; smaller ones and fractions stay
     * numbers; digits inside strings are not numbers. */
    v = must_parse("[9007199254740993, 9007199254740994, -9007199254740992, 9007199254740991,"
                   " \"12345678901234567891\", {\"externalId\": 12345678901234567891},"
                   " 1234567890123456789.5, 1.2345678901234567891e19, 12345678901234567892]");
    char *s = json_print_canonical(v);
    CHECK_STR(s, "[9007199254740993,9007199254740994,-9007199254740992,9007199254740991,"
                 "\"12345678901234567891\",{\"externalId\":12345678901234567891},"
                 "1.2345678901234568e+18,1.2345678901234567e+19,12345678901234567892]");
    free(s);
    CHECK(cJSON_IsNumber(cJSON_GetArrayItem(v, 3)));
    CHECK(cJSON_IsRaw(cJSON_GetArrayItem(v, 0)));
    /* At every offset (the digit-run pre-check samples every 16th byte): 16
     * digits and more keep their digits, 15 never need to. */
    int missed = 0;
    for (int pad = 0; pad < 40; pad++) {
        for (int digits = 15; digits <= 17; digits++) {
            char text[128];
            int n = snprintf(text, sizeof(text), "[\"%.*s\",%.*s]", pad,
                             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", digits, "98765432109876543");
            cJSON *w = NULL;
            CHECK_INT(json_parse(text, (size_t)n, &w, NULL), 0);
            const cJSON *num = cJSON_GetArrayItem(w, 1);
            if (digits >= 16 && !(cJSON_IsRaw(num) && strlen(num->valuestring) == (size_t)digits)) {
                missed++;
            }
            cJSON_Delete(w);
        }
    }
    CHECK_INT(missed, 0);
    /* Two ids that round to the same double are still different. */
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(v, 5), "externalId");
    const cJSON *b = cJSON_GetArrayItem(v, 8);
    CHECK(a->valuedouble == b->valuedouble);
    CHECK(!json_equal(a, b));
    struct hash_state ha;
    struct hash_state hb;
    struct hash128 da;
    struct hash128 db;
    hash_init(&ha);
    hash_init(&hb);
    json_hash_update(&ha, a);
    json_hash_update(&hb, b);
    hash_final(&ha, &da);
    hash_final(&hb, &db);
    CHECK(!hash128_eq(&da, &db));
    cJSON *copy = cJSON_Duplicate(a, 1);
    CHECK(json_equal(copy, a));
    cJSON_Delete(copy);
    cJSON_Delete(v);
}

static char *nested(const char *open, const char *close, int depth)
{
    size_t lo = strlen(open);
    size_t lc = strlen(close);
    char *s = malloc((lo + lc) * (size_t)depth + 2);
    size_t n = 0;
    for (int i = 0; i < depth; i++) {
        memcpy(s + n, open, lo);
        n += lo;
    }
    s[n++] = '1';
    for (int i = 0; i < depth; i++) {
        memcpy(s + n, close, lc);
        n += lc;
    }
    s[n] = '\0';
    return s;
}

static void test_depth(void)
{
    static const struct {
        const char *open;
        const char *close;
        int depth;
        int rc;
    } cases[] = {
        {"[", "]", 1000, 0},
        {"[", "]", 1001, -EINVAL},
        {"{\"k\":", "}", 1000, 0},
        {"{\"k\":", "}", 1001, -EINVAL},
        {"[", "]", 100000, -EINVAL},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *s = nested(cases[i].open, cases[i].close, cases[i].depth);
        cJSON *v = NULL;
        int rc = parse_exact(s, strlen(s), &v, NULL);
        CHECK_INT(rc, cases[i].rc);
        if (rc == 0) {
            /* The deepest legal tree prints, hashes and compares without trouble. */
            char *p = json_print_canonical(v);
            CHECK_STR(p, s);
            free(p);
            cJSON *w = cJSON_Duplicate(v, 1);
            CHECK(json_equal(v, w));
            struct hash128 a = hash_of(v);
            struct hash128 b = hash_of(w);
            CHECK(hash128_eq(&a, &b));
            cJSON_Delete(w);
            cJSON_Delete(v);
        }
        free(s);
    }
}

static void test_canonical_print(void)
{
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        {"{\"b\":1,\"a\":[true,false,null],\"c\":{\"z\":\"x\",\"y\":-0}}",
         "{\"a\":[true,false,null],\"b\":1,\"c\":{\"y\":0,\"z\":\"x\"}}"},
        {" { } ", "{}"},
        {"[ ]", "[]"},
        {"\"\"", "\"\""},
        {"[1.5, 0.1, 1e20, -3, 1e-7, 3.0, 1e400, -1e400, 123456789.123, 0.30000000000000004, 5e-324]",
         "[1.5,0.1,1e+20,-3,1e-07,3,null,null,123456789.123,0.30000000000000004,4.94065645841247e-324]"},
        {"\"a\\\"b\\\\c\\n\\t\\u0001\\u001f\\/é\"", "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f/é\""},
        /* Duplicate keys kept, sorted by key then position. */
        {"{\"b\":2,\"a\":1,\"b\":1}", "{\"a\":1,\"b\":2,\"b\":1}"},
        /* Bytewise order, including keys sharing the 8-byte compare prefix. */
        {"{\"é\":0,\"aa\":0,\"a b\":0,\"a\":0,\"_\":0,\"B\":0}",
         "{\"B\":0,\"_\":0,\"a\":0,\"a b\":0,\"aa\":0,\"é\":0}"},
        {"{\"abcdefghZ\":1,\"abcdefghA\":2,\"abcdefgh\":3,\"abcdefg\":4}",
         "{\"abcdefg\":4,\"abcdefgh\":3,\"abcdefghA\":2,\"abcdefghZ\":1}"},
        {"[{\"y\":[{\"b\":1,\"a\":2}],\"x\":null}]", "[{\"x\":null,\"y\":[{\"a\":2,\"b\":1}]}]"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cJSON *v = must_parse(cases[i].in);
        char *s = json_print_canonical(v);
        CHECK_STR(s, cases[i].want);
        /* The canonical print is a fixed point. */
        cJSON *w = must_parse(s);
        char *s2 = json_print_canonical(w);
        CHECK_STR(s2, s);
        free(s2);
        free(s);
        cJSON_Delete(w);
        cJSON_Delete(v);
    }
    char *n = json_print_canonical(NULL);
    CHECK_STR(n, "null");
    free(n);

    /* More than INSERTION_SORT_MAX keys takes the qsort path. */
    cJSON *big = cJSON_CreateObject();
    char key[16];
    for (int i = 199; i >= 0; i--) {
        snprintf(key, sizeof(key), "k%03d", i);
        cJSON_AddNumberToObject(big, key, i);
    }
    cJSON_AddNumberToObject(big, "k100", -1); /* duplicate after its twin */
    char *s = json_print_canonical(big);
    CHECK(strncmp(s, "{\"k000\":0,\"k001\":1,", 19) == 0);
    CHECK(strstr(s, "\"k100\":100,\"k100\":-1,\"k101\":101") != NULL);
    CHECK(str_has_suffix(s, "\"k199\":199}"));
    free(s);
    cJSON_Delete(big);
}

/*
 * The central property: for every pair of a corpus, canonical prints are
 * equal iff hashes are equal iff json_equal says so. The corpus mixes
 * reordered twins (must be equal) with type and framing near-misses
 * (must all differ).
 */
static void test_equivalence_corpus(void)
{
    static const char *corpus[] = {
        "null", "true", "false", "0", "-0", "1", "\"1\"", "\"\"", "[]", "{}", "\"null\"",
        "1e400", /* inf: canonically null, so equal to "null" */
        "[null]", "[[]]", "[[],[]]", "[[[]]]", "[{}]", "{\"\":null}", "{\"\":{}}",
        "[\"ab\",\"c\"]", "[\"a\",\"bc\"]", "[\"abc\"]",
        "{\"a\":\"b\"}", "{\"ab\":\"\"}", "{\"a\":\"b\",\"c\":1}", "{\"c\":1,\"a\":\"b\"}",
        "{\"a\":[1,2]}", "{\"a\":[1],\"b\":2}", "{\"a\":[1,2],\"b\":null}", "{\"b\":null,\"a\":[1,2]}",
        "{\"x\":{\"q\":1,\"p\":[true,{\"n\":2,\"m\":3}]},\"y\":2}",
        "{\"y\":2,\"x\":{\"p\":[true,{\"m\":3,\"n\":2}],\"q\":1}}",
        "{\"x\":{\"q\":1,\"p\":[{\"n\":2,\"m\":3},true]},\"y\":2}", /* array order matters */
        "{\"a\":1,\"a\":2}", "{\"a\":2,\"a\":1}", "{\"a\":1}",
        "1.0", "1.5", "1.5000000000000002", "9007199254740992", "9007199254740993",
        "\"\\u00e9\"", "\"é\"", "\"e\"", "[1,[2,[3]]]", "[1,[2],[3]]",
    };
    enum { N = sizeof(corpus) / sizeof(corpus[0]) };
    cJSON *v[N];
    char *p[N];
    struct hash128 h[N];
    int disagreements = 0;
    int equal_pairs = 0;

    for (size_t i = 0; i < N; i++) {
        v[i] = must_parse(corpus[i]);
        p[i] = json_print_canonical(v[i]);
        h[i] = hash_of(v[i]);
    }
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < N; j++) {
            bool pe = strcmp(p[i], p[j]) == 0;
            bool he = hash128_eq(&h[i], &h[j]);
            bool ee = json_equal(v[i], v[j]);
            if (pe != he || pe != ee) {
                fprintf(stderr, "disagree: %s vs %s (print %d hash %d equal %d)\n", corpus[i],
                        corpus[j], pe, he, ee);
                disagreements++;
            }
            if (i < j && pe) {
                equal_pairs++;
            }
        }
    }
    CHECK_INT(disagreements, 0);
    /*
     * Exactly these pairs are canonically equal: 0/-0, null/1e400, the two
     * reordered {a,c}, {a,b}, {x,y} twins, 1/1.0 and "\u00e9"/"é"
     * (9007199254740992 and ...993 keep their digits and differ: F20).
     */
    CHECK_INT(equal_pairs, 7);
    for (size_t i = 0; i < N; i++) {
        free(p[i]);
        cJSON_Delete(v[i]);
    }
    /* NULL counts as null. */
    cJSON *nul = cJSON_CreateNull();
    struct hash128 a = hash_of(NULL);
    struct hash128 b = hash_of(nul);
    CHECK(hash128_eq(&a, &b));
    CHECK(json_equal(NULL, nul));
    cJSON_Delete(nul);
}

/* Distinct JSON types never hash alike: "1" 1 true null [] {} and friends. */
static void test_type_distinction(void)
{
    cJSON *vals[] = {
        cJSON_CreateString("1"), cJSON_CreateNumber(1), cJSON_CreateTrue(), cJSON_CreateFalse(),
        cJSON_CreateNull(), cJSON_CreateArray(), cJSON_CreateObject(), cJSON_CreateString(""),
        cJSON_CreateNumber(0), cJSON_CreateString("true"), cJSON_CreateRaw("1"),
    };
    int collisions = 0;
    for (size_t i = 0; i < ARRAY_SIZE(vals); i++) {
        struct hash128 hi = hash_of(vals[i]);
        for (size_t j = i + 1; j < ARRAY_SIZE(vals); j++) {
            struct hash128 hj = hash_of(vals[j]);
            if (hash128_eq(&hi, &hj) || json_equal(vals[i], vals[j])) {
                collisions++;
            }
        }
    }
    CHECK_INT(collisions, 0);
    for (size_t i = 0; i < ARRAY_SIZE(vals); i++) {
        cJSON_Delete(vals[i]);
    }
}

/* Key order independence on a realistic record, checked for every rotation of its members. */
static void test_key_order_independence(void)
{
    const char *base = "{\"id\":\"c1\",\"email\":\"a@b.co\",\"tags\":[\"vip\",\"new\"],"
                       "\"customFields\":[{\"id\":\"f1\",\"value\":3}],"
                       "\"dndSettings\":{\"SMS\":{\"status\":\"active\"},\"Email\":{\"status\":\"inactive\"}},"
                       "\"dnd\":false,\"score\":1.25,\"nothing\":null}";
    cJSON *ref = must_parse(base);
    struct hash128 want = hash_of(ref);
    char *want_p = json_print_canonical(ref);
    int n = cJSON_GetArraySize(ref);
    int bad = 0;

    for (int r = 1; r < n; r++) {
        cJSON *v = cJSON_Duplicate(ref, 1);
        /* Rotate: move the first member to the end r times. */
        for (int k = 0; k < r; k++) {
            cJSON *first = cJSON_DetachItemViaPointer(v, v->child);
            cJSON_AddItemToObject(v, first->string, first);
        }
        /* Reverse the nested dndSettings too. */
        cJSON *dnd = cJSON_GetObjectItemCaseSensitive(v, "dndSettings");
        cJSON *sms = cJSON_DetachItemFromObjectCaseSensitive(dnd, "SMS");
        cJSON_AddItemToObject(dnd, "SMS", sms);
        struct hash128 got = hash_of(v);
        char *p = json_print_canonical(v);
        if (!hash128_eq(&got, &want) || strcmp(p, want_p) != 0 || !json_equal(v, ref)) {
            bad++;
        }
        free(p);
        cJSON_Delete(v);
    }
    CHECK_INT(bad, 0);

    /* Sensitivity: changing any one leaf changes the hash. */
    cJSON *v = cJSON_Duplicate(ref, 1);
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(
                             cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(v, "customFields"), 0),
                             "value"),
                         4);
    struct hash128 changed = hash_of(v);
    CHECK(!hash128_eq(&changed, &want));
    CHECK(!json_equal(v, ref));
    cJSON_Delete(v);
    free(want_p);
    cJSON_Delete(ref);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* The feed through the legacy MurmurHash3 digest, which the Python model
 * reproduces; test_diff freezes XXH3 digests of the same feed. */
static void check_frozen(const cJSON *v, const char *want)
{
    struct hash_state st;
    struct hash128 h;
    hash_init_legacy(&st);
    json_hash_update(&st, v);
    hash_final(&st, &h);
    char got[40];
    snprintf(got, sizeof(got), "%016llx%016llx", (unsigned long long)h.hi, (unsigned long long)h.lo);
    CHECK_STR(got, want);
}

/*
 * Frozen feed vectors. Hashes are persisted (snapshots), so the token
 * format must not drift. The expected values come from an independent
 * Python model of the feed documented in json.h (LEB128 lengths, sorted
 * members) over the reference MurmurHash3. The cases cover every token
 * kind, a 2-byte varint (key of 130 bytes, string of 200 bytes), a string
 * longer than the internal feed buffer, and strings starting at every
 * buffer offset.
 */
static void test_hash_frozen(void)
{
    cJSON *v = must_parse("{\"b\":[1,2.5,-0,null,true,false],\"a\":\"x\"}");
    check_frozen(v, "211522a8a2ca4d32bf61e7820dffd2b7");
    cJSON_Delete(v);

    char *y = repeat('y', 200);
    v = cJSON_CreateString(y);
    check_frozen(v, "744151ee9b389aafdf9212f2e623b500");
    cJSON_Delete(v);
    free(y);

    char *k = repeat('k', 130);
    char *val = repeat('v', 1000);
    v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, k, val);
    cJSON_AddStringToObject(v, "e", "\xc3\xa9\x01");
    check_frozen(v, "fed85aac160e173045d5f43b0201d9c3");
    cJSON_Delete(v);
    free(k);
    free(val);

    /* ["", "z", "zz", ... 299 z's, {"n":0,"s":""}, ... {"n":39,"s":39 q's}] */
    v = cJSON_CreateArray();
    for (size_t i = 0; i < 300; i++) {
        char *z = repeat('z', i);
        cJSON_AddItemToArray(v, cJSON_CreateString(z));
        free(z);
    }
    for (int i = 0; i < 40; i++) {
        cJSON *o = cJSON_CreateObject();
        char *q = repeat('q', (size_t)(i % 150));
        cJSON_AddNumberToObject(o, "n", i);
        cJSON_AddStringToObject(o, "s", q);
        cJSON_AddItemToArray(v, o);
        free(q);
    }
    check_frozen(v, "a45a9044b06bcbaf15f465b54ed3b4b6");
    cJSON_Delete(v);
}

/*
 * The sorted order of medium objects is cached by key sequence (json.c
 * "shape cache"). Shuffled objects must still print sorted and hash alike,
 * and objects whose keys agree in length and first 8 bytes but differ later
 * must not reuse another object's order.
 */
static void test_shape_cache(void)
{
    static const char *keys[] = {
        "abcdefgh_j", "abcdefgh_a", "abcdefgh_e", "firstName", "firstNameRaw", "lastName",
        "lastNameRaw", "id", "a", "b", "additionalEmails", "additionalPhones", "dateAdded",
        "dateUpdated", "tags", "x", "zz", "abcdefgh_c", "\xc3\xa9", "abcdefgh",
    };
    enum { NK = sizeof(keys) / sizeof(keys[0]) };
    size_t order[NK];
    char *want = NULL;
    struct hash128 want_h = {0, 0};
    uint64_t lcg = 12345;
    int bad = 0;

    for (int round = 0; round < 300; round++) {
        for (size_t i = 0; i < NK; i++) {
            order[i] = i;
        }
        /* Fisher-Yates with a fixed LCG; round 0 keeps the table order. */
        for (size_t i = NK - 1; round > 0 && i > 0; i--) {
            lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t j = (size_t)((lcg >> 33) % (i + 1));
            size_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        /* Use only a prefix of the keys on some rounds: several shapes compete for slots. */
        size_t n = (round % 3 == 0) ? NK : NK - (size_t)(round % 5);
        cJSON *o = cJSON_CreateObject();
        for (size_t i = 0; i < NK; i++) {
            if (order[i] < n) {
                cJSON_AddNumberToObject(o, keys[order[i]], (double)order[i]);
            }
        }
        char *p = json_print_canonical(o);
        struct hash128 h = hash_of(o);
        if (n == NK) {
            if (want == NULL) {
                want = p;
                want_h = h;
                p = NULL;
            } else if (strcmp(p, want) != 0 || !hash128_eq(&h, &want_h)) {
                bad++;
            }
        }
        /* Independently of the cache: members must come out strictly ascending. */
        struct json_members m;
        json_members_begin(&m, o, NULL, NULL);
        for (size_t i = 1; i < m.count; i++) {
            if (strcmp(json_members_at(&m, i - 1)->string, json_members_at(&m, i)->string) >= 0) {
                bad++;
            }
        }
        json_members_end(&m);
        free(p);
        cJSON_Delete(o);
    }
    CHECK_INT(bad, 0);
    CHECK_STR(want, "{\"a\":8,\"abcdefgh\":19,\"abcdefgh_a\":1,\"abcdefgh_c\":17,\"abcdefgh_e\":2,"
                    "\"abcdefgh_j\":0,\"additionalEmails\":10,\"additionalPhones\":11,"
                    "\"b\":9,\"dateAdded\":12,\"dateUpdated\":13,\"firstName\":3,"
                    "\"firstNameRaw\":4,\"id\":7,\"lastName\":5,\"lastNameRaw\":6,"
                    "\"tags\":14,\"x\":15,\"zz\":16,\"\xc3\xa9\":18}");
    free(want);

    /* Same lengths and 8-byte prefixes at every position, different tails. */
    const char *tails1 = "abcdefghij";
    const char *tails2 = "jihgfedcba";
    char key[16];
    cJSON *o1 = cJSON_CreateObject();
    cJSON *o2 = cJSON_CreateObject();
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "prefix__%c", tails1[i]);
        cJSON_AddNumberToObject(o1, key, i);
        snprintf(key, sizeof(key), "prefix__%c", tails2[i]);
        cJSON_AddNumberToObject(o2, key, 9 - i);
    }
    char *p1 = json_print_canonical(o1); /* caches o1's order */
    char *p2 = json_print_canonical(o2); /* must not reuse it */
    CHECK_STR(p2, p1);
    CHECK(json_equal(o1, o2));
    CHECK(strncmp(p1, "{\"prefix__a\":0,\"prefix__b\":1,", 29) == 0);
    free(p1);
    free(p2);
    cJSON_Delete(o1);
    cJSON_Delete(o2);
}

static void test_get_path(void)
{
    cJSON *doc = must_parse("{\"meta\":{\"startAfterId\":\"x\",\"total\":5},"
                            "\"contacts\":[{\"id\":\"c1\"},{\"ID\":\"upper\",\"id\":\"c2\"}],"
                            "\"0\":{\"x\":1},\"Meta\":2,\"a.b\":3,\"messages\":{\"messages\":[]}}");
    static const struct {
        const char *path;
        const char *want; /* canonical print of the result, NULL = absent */
    } cases[] = {
        {"meta.startAfterId", "\"x\""},
        {"meta.total", "5"},
        {"contacts.0.id", "\"c1\""},
        {"contacts.1.id", "\"c2\""},
        {"contacts.1.ID", "\"upper\""},
        {"contacts.2.id", NULL},
        {"contacts.01", NULL},
        {"contacts.-1", NULL},
        {"contacts.+1", NULL},
        {"contacts.1x", NULL},
        {"contacts.9999999999", NULL},
        {"contacts.id", NULL},
        {"0.x", "1"},          /* numeric segment on an object is a key */
        {"META", NULL},        /* case-sensitive */
        {"Meta", "2"},
        {"meta", "{\"startAfterId\":\"x\",\"total\":5}"},
        {"meta.", NULL},
        {".meta", NULL},
        {"meta..total", NULL},
        {"meta.total.x", NULL},
        {"a.b", NULL},
        {"messages.messages", "[]"},
        {"nope", NULL},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const cJSON *r = json_get_path(doc, cases[i].path);
        char *p = r != NULL ? json_print_canonical(r) : NULL;
        if (cases[i].want == NULL ? p != NULL : (p == NULL || strcmp(p, cases[i].want) != 0)) {
            fprintf(stderr, "path %s\n", cases[i].path);
        }
        CHECK_STR(p, cases[i].want);
        free(p);
    }
    CHECK(json_get_path(doc, "") == doc);
    CHECK(json_get_path(doc, NULL) == doc);
    CHECK(json_get_path(NULL, "a") == NULL);
    cJSON_Delete(doc);
}

static void test_getters(void)
{
    cJSON *o = must_parse("{\"ID\":\"upper\",\"id\":\"lower\",\"n\":1.5,\"s\":\"2\",\"z\":null}");
    double d = 0;

    CHECK_STR(json_get_string(o, "id"), "lower"); /* cJSON_GetObjectItem would say "upper" */
    CHECK_STR(json_get_string(o, "ID"), "upper");
    CHECK_STR(json_get_string(o, "Id"), NULL);
    CHECK_STR(json_get_string(o, "n"), NULL);
    CHECK_STR(json_get_string(o, "z"), NULL);
    CHECK_STR(json_get_string(NULL, "id"), NULL);
    CHECK(json_get_number(o, "n", &d));
    CHECK(d == 1.5);
    CHECK(!json_get_number(o, "s", &d));
    CHECK(!json_get_number(o, "N", &d));
    CHECK(!json_get_number(NULL, "n", &d));
    /* Not an object. */
    cJSON *arr = must_parse("[{\"id\":\"x\"}]");
    CHECK_STR(json_get_string(arr, "id"), NULL);
    cJSON_Delete(arr);
    cJSON_Delete(o);
}

static bool keep_not_b(const char *key, void *ud)
{
    (void)ud;
    return strcmp(key, "b") != 0;
}

static void test_members_view(void)
{
    cJSON *o = must_parse("{\"c\":3,\"b\":2,\"a\":1,\"inner\":{\"z\":0,\"y\":0}}");
    struct json_members m;
    struct json_members inner;

    json_members_begin(&m, o, keep_not_b, NULL);
    CHECK_INT(m.count, 3);
    CHECK_STR(json_members_at(&m, 0)->string, "a");
    CHECK_STR(json_members_at(&m, 1)->string, "c");
    CHECK_STR(json_members_at(&m, 2)->string, "inner");
    /* A nested view (and nested hashing) between reads leaves the outer one intact. */
    json_members_begin(&inner, json_members_at(&m, 2), NULL, NULL);
    CHECK_INT(inner.count, 2);
    CHECK_STR(json_members_at(&inner, 0)->string, "y");
    struct hash_state st;
    hash_init(&st);
    json_hash_update(&st, o);
    json_members_end(&inner);
    CHECK_STR(json_members_at(&m, 1)->string, "c");
    json_members_end(&m);

    /* Filtered hash equals the hash of the object without the member. */
    cJSON *without = must_parse("{\"a\":1,\"inner\":{\"y\":0,\"z\":0},\"c\":3}");
    struct hash128 h1, h2;
    hash_init(&st);
    json_hash_object_filtered(&st, o, keep_not_b, NULL);
    hash_final(&st, &h1);
    h2 = hash_of(without);
    CHECK(hash128_eq(&h1, &h2));

    json_members_begin(&m, without->child, NULL, NULL); /* a number: empty view */
    CHECK_INT(m.count, 0);
    json_members_end(&m);
    cJSON_Delete(without);
    cJSON_Delete(o);
}

static void test_utf8(void)
{
    static const struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        {"", 0, true},
        {"plain ascii", 11, true},
        {"a\0b", 3, true},
        {"\xC3\xA9", 2, true},                 /* é */
        {"\xE2\x82\xAC", 3, true},             /* € */
        {"\xF0\x9F\x98\x80", 4, true},         /* U+1F600 */
        {"\xF4\x8F\xBF\xBF", 4, true},         /* U+10FFFF */
        {"\xED\x9F\xBF", 3, true},             /* U+D7FF */
        {"\xEE\x80\x80", 3, true},             /* U+E000 */
        {"\xC0\x80", 2, false},                /* overlong NUL */
        {"\xC1\xBF", 2, false},
        {"\xE0\x80\x80", 3, false},            /* overlong */
        {"\xE0\x9F\xBF", 3, false},
        {"\xF0\x8F\xBF\xBF", 4, false},
        {"\xED\xA0\x80", 3, false},            /* surrogate D800 */
        {"\xED\xBF\xBF", 3, false},
        {"\xF4\x90\x80\x80", 4, false},        /* > U+10FFFF */
        {"\xF5\x80\x80\x80", 4, false},
        {"\xFF", 1, false},
        {"\x80", 1, false},                    /* lone continuation */
        {"\xC3", 1, false},                    /* truncated */
        {"\xE2\x82", 2, false},
        {"\xF0\x9F\x98", 3, false},
        {"\xC3\x28", 2, false},                /* bad continuation */
        {"\xE2\x28\xA1", 3, false},
        {"ok \xC3\xA9 then \xFF", 13, false},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        if (utf8_valid(cases[i].s, cases[i].len) != cases[i].ok) {
            fprintf(stderr, "utf8 case %zu\n", i);
        }
        CHECK(utf8_valid(cases[i].s, cases[i].len) == cases[i].ok);
    }
    /* One sequence at a time, as config's line scan reports a column. */
    CHECK_INT(utf8_seq_len("a\xC3\xA9", 3), 1);
    CHECK_INT(utf8_seq_len("\xC3\xA9x", 3), 2);
    CHECK_INT(utf8_seq_len("\xE2\x82\xAC", 3), 3);
    CHECK_INT(utf8_seq_len("\xF0\x9F\x98\x80", 4), 4);
    CHECK_INT(utf8_seq_len("\xF0\x9F\x98\x80", 3), 0); /* only 3 bytes available */
    CHECK_INT(utf8_seq_len("\xED\xA0\x80", 3), 0);
    CHECK_INT(utf8_seq_len("", 1), 1); /* NUL is a sequence; callers reject it themselves */
    /* Invalid UTF-8 passes the parser unchanged. */
    cJSON *v = must_parse("\"\xff\xfe\"");
    CHECK(cJSON_IsString(v));
    CHECK(!utf8_valid(v->valuestring, strlen(v->valuestring)));
    cJSON_Delete(v);
}

/* json_number_from_text: the strict text-to-number of integer/number action
 * fields (coerce in sinks/sink_ghl.c). strtod took all of the rejected forms. */
static void test_number_from_text(void)
{
    static const struct {
        const char *text;
        const char *want; /* canonical print, NULL: rejected */
    } cases[] = {
        {"12", "12"},
        {"-0.5", "-0.5"},
        {"1e3", "1000"},
        {"0", "0"},
        {"12345678901234567890", "12345678901234567890"}, /* Raw: digits kept */
        {"", NULL},
        {" 12", NULL},
        {"12 ", NULL},
        {"+12", NULL},
        {"0x1A", NULL},
        {"inf", NULL},
        {"-Infinity", NULL},
        {"nan", NULL},
        {"1e999", NULL},
        {"012", NULL},
        {"1.", NULL},
        {".5", NULL},
        {"12abc", NULL},
        {"\"12\"", NULL},
        {"[1]", NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cJSON *n = json_number_from_text(cases[i].text);
        if (cases[i].want == NULL) {
            CHECK(n == NULL);
        } else {
            CHECK(n != NULL);
            char *got = n ? json_print_canonical(n) : NULL;
            CHECK_STR(got ? got : "(null)", cases[i].want);
            free(got);
        }
        cJSON_Delete(n);
    }
    cJSON *big = json_number_from_text("9007199254740993");
    CHECK(cJSON_IsRaw(big));
    cJSON_Delete(big);
}

int main(void)
{
    test_parse_table();
    test_huge_number();
    test_depth();
    test_canonical_print();
    test_equivalence_corpus();
    test_type_distinction();
    test_key_order_independence();
    test_hash_frozen();
    test_shape_cache();
    test_get_path();
    test_getters();
    test_members_view();
    test_utf8();
    test_number_from_text();
    json_scratch_release();
    return test_done("json");
}

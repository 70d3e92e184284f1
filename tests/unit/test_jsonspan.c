/*
 * test_jsonspan: the record-span scanner. Spans and ids of simple pages;
 * strings holding quotes, backslashes and brackets; nested objects with an
 * id of their own; unicode and other escapes (in ids, keys and values: no id
 * then); non-object elements; the first of duplicated members; every
 * truncation and a set of malformed pages (-EINVAL, read from exact-size
 * copies so ASan sees any over-read); nesting at and past the limit; huge
 * inputs; and a cross-check with cJSON on generated pages with hostile
 * strings (every span parses, its id is what json_get_string returns).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "jsonspan.h"
#include "testlib.h"
#include "util.h"

/* Scans an exact-size heap copy of text. */
static int scan(const char *text, size_t len, const char *member, struct jsonspan_page *pg)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, text, len);
    int rc = jsonspan_records(copy, len, member, "id", pg);
    free(copy);
    return rc;
}

static int scan_str(const char *text, const char *member, struct jsonspan_page *pg)
{
    return scan(text, strlen(text), member, pg);
}

static char *span_of(const char *text, const struct jsonspan_rec *r)
{
    return xstrndup(text + r->off, r->len);
}

static char *id_of(const char *text, const struct jsonspan_rec *r)
{
    return r->id_len ? xstrndup(text + r->id_off, r->id_len) : xstrdup("");
}

/* Checks the spans and ids of text against want (NULL-terminated pairs). */
static void expect(const char *text, const char *member, const char *const *want)
{
    struct jsonspan_page pg = {0};
    CHECK_INT(scan_str(text, member, &pg), 0);
    size_t n = 0;
    while (want[2 * n] != NULL) {
        n++;
    }
    CHECK_INT(pg.n, n);
    for (size_t i = 0; i < n && i < pg.n; i++) {
        char *sp = span_of(text, &pg.recs[i]);
        char *id = id_of(text, &pg.recs[i]);
        CHECK_STR(sp, want[2 * i]);
        CHECK_STR(id, want[2 * i + 1]);
        free(sp);
        free(id);
    }
    jsonspan_page_free(&pg);
}

static void test_basic(void)
{
    const char *page = "{\"contacts\":[{\"id\":\"a\",\"x\":1},{\"id\":\"b\"}],\"total\":2}";
    expect(page, "contacts",
           (const char *const[]){"{\"id\":\"a\",\"x\":1}", "a", "{\"id\":\"b\"}", "b", NULL});
    struct jsonspan_page pg = {0};
    CHECK_INT(scan_str(page, "contacts", &pg), 0);
    CHECK_INT(pg.arr_off, strlen("{\"contacts\":"));
    CHECK_INT(pg.arr_end, strlen("{\"contacts\":[{\"id\":\"a\",\"x\":1},{\"id\":\"b\"}]"));
    jsonspan_page_free(&pg);
    /* White space everywhere, member after others, root array. */
    expect(" { \"meta\" : {\"id\":\"m\",\"a\":[1,{}]} ,\n \"contacts\" :\t[ {\"x\" : [ ] , \"id\" : "
           "\"c\" } ,\r\n{ } ] } \n",
           "contacts", (const char *const[]){"{\"x\" : [ ] , \"id\" : \"c\" }", "c", "{ }", "", NULL});
    expect("[ {\"id\":\"r1\"},{\"id\":\"r2\",\"n\":-1.5e+3,\"t\":true,\"f\":false,\"z\":null} ]", NULL,
           (const char *const[]){"{\"id\":\"r1\"}", "r1",
                                 "{\"id\":\"r2\",\"n\":-1.5e+3,\"t\":true,\"f\":false,\"z\":null}", "r2",
                                 NULL});
    expect("{\"contacts\":[]}", "contacts", (const char *const[]){NULL});
    expect("[ ]", NULL, (const char *const[]){NULL});
}

static void test_strings(void)
{
    /* Quotes, backslashes and brackets inside strings never end anything. */
    expect("{\"c\":[{\"note\":\"he said \\\"]}\\\" ok\",\"id\":\"a\"},"
           "{\"id\":\"b\",\"s\":\"[{\\\\\",\"t\":\"\\\\\\\"}\"}]}",
           "c",
           (const char *const[]){"{\"note\":\"he said \\\"]}\\\" ok\",\"id\":\"a\"}", "a",
                                 "{\"id\":\"b\",\"s\":\"[{\\\\\",\"t\":\"\\\\\\\"}\"}", "b", NULL});
    /* Escapes in the id or in any top-level key: the id needs a parse. */
    expect("[{\"id\":\"\\u0061\"},{\"id\":\"a\\\"b\"},{\"i\\u0064\":\"x\",\"id\":\"y\"},"
           "{\"id\":\"y\",\"k\\n\":1},{\"v\":\"\\u00e9\\ud83d\\ude00\",\"id\":\"u\"}]",
           NULL,
           (const char *const[]){"{\"id\":\"\\u0061\"}", "", "{\"id\":\"a\\\"b\"}", "",
                                 "{\"i\\u0064\":\"x\",\"id\":\"y\"}", "", "{\"id\":\"y\",\"k\\n\":1}", "",
                                 "{\"v\":\"\\u00e9\\ud83d\\ude00\",\"id\":\"u\"}", "u", NULL});
    /* UTF-8 bytes pass through; an empty id is no id. */
    expect("[{\"id\":\"\xc3\xa9t\xc3\xa9\"},{\"id\":\"\"}]", NULL,
           (const char *const[]){"{\"id\":\"\xc3\xa9t\xc3\xa9\"}", "\xc3\xa9t\xc3\xa9", "{\"id\":\"\"}",
                                 "", NULL});
}

static void test_ids(void)
{
    /* Nested "id"s are never the record's; the first top-level one is. */
    expect("[{\"child\":{\"id\":\"nested\"},\"id\":\"top\"},{\"child\":{\"id\":\"nested\"}},"
           "{\"list\":[{\"id\":\"n\"}],\"id\":\"t2\",\"id\":\"dup\"},{\"id\":7},{\"id\":null},"
           "{\"id\":{\"id\":\"x\"}},{\"ID\":\"case\"},{\"idx\":\"no\"}]",
           NULL,
           (const char *const[]){"{\"child\":{\"id\":\"nested\"},\"id\":\"top\"}", "top",
                                 "{\"child\":{\"id\":\"nested\"}}", "",
                                 "{\"list\":[{\"id\":\"n\"}],\"id\":\"t2\",\"id\":\"dup\"}", "t2",
                                 "{\"id\":7}", "", "{\"id\":null}", "", "{\"id\":{\"id\":\"x\"}}", "",
                                 "{\"ID\":\"case\"}", "", "{\"idx\":\"no\"}", "", NULL});
    /* Elements that are not objects: spans without ids. */
    expect("[1,\"s\",null,[1,{\"id\":\"a\"}],true,-0.5]", NULL,
           (const char *const[]){"1", "", "\"s\"", "", "null", "", "[1,{\"id\":\"a\"}]", "", "true",
                                 "", "-0.5", "", NULL});
    /* Another id field. */
    struct jsonspan_page pg = {0};
    const char *t = "[{\"id\":\"a\",\"_key\":\"k1\"}]";
    CHECK_INT(jsonspan_records(t, strlen(t), NULL, "_key", &pg), 0);
    CHECK_INT(pg.n, 1);
    CHECK_INT(pg.recs[0].id_len, 2);
    CHECK(pg.n == 1 && memcmp(t + pg.recs[0].id_off, "k1", 2) == 0);
    jsonspan_page_free(&pg);
}

static void test_members(void)
{
    /* The first of duplicated members, as a case-sensitive lookup finds it. */
    expect("{\"contacts\":[{\"id\":\"a\"}],\"contacts\":[]}", "contacts",
           (const char *const[]){"{\"id\":\"a\"}", "a", NULL});
    expect("{\"Contacts\":[{\"id\":\"x\"}],\"contacts\":[{\"id\":\"a\"}]}", "contacts",
           (const char *const[]){"{\"id\":\"a\"}", "a", NULL});
    static const char *const bad[] = {
        "{\"contacts\":{\"id\":\"a\"}}",      /* not an array */
        "{\"other\":[{\"id\":\"a\"}]}",       /* no such member */
        "{}",
        "{\"contact\\u0073\":[]}",           /* an escaped key might be it */
        "[{\"id\":\"a\"}]",                    /* a root array where an object was expected */
        "\"contacts\"",
        "",
        "   ",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct jsonspan_page pg = {0};
        CHECK_INT(scan_str(bad[i], "contacts", &pg), -EINVAL);
        CHECK_INT(pg.n, 0);
        jsonspan_page_free(&pg);
    }
    struct jsonspan_page pg = {0};
    CHECK_INT(scan_str("{\"contacts\":[]}", NULL, &pg), -EINVAL); /* root is not an array */
    CHECK_INT(jsonspan_records("[]", 2, NULL, "", &pg), -EINVAL);
    CHECK_INT(jsonspan_records(NULL, 0, NULL, "id", &pg), -EINVAL);
    jsonspan_page_free(&pg);
}

static void test_malformed(void)
{
    static const char *const bad[] = {
        "{\"c\":[{\"id\":\"a\"} {\"id\":\"b\"}]}", /* missing comma */
        "{\"c\":[{\"id\":\"a\"},]}",             /* trailing comma */
        "{\"c\":[,{\"id\":\"a\"}]}",
        "{\"c\":[{\"id\":\"a\"}]}}",             /* an extra closer */
        "{\"c\":[{\"id\":\"a\"}]} x",            /* trailing bytes */
        "{\"c\":[{\"id\" \"a\"}]}",              /* missing colon */
        "{\"c\":[{\"id\":}]}",                   /* missing value */
        "{\"c\":[{id:\"a\"}]}",                  /* unquoted key */
        "{\"c\":[{\"id\":\"a\",}]}",
        "{\"c\":[{\"id\":\"a\"]}",               /* unclosed object */
        "{\"c\":[{\"s\":\"\\\"}]}",              /* the quote is escaped: unterminated */
        "{\"c\":[]",
        "{\"c\" []}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct jsonspan_page pg = {0};
        int rc = scan_str(bad[i], "c", &pg);
        if (rc != -EINVAL) {
            fprintf(stderr, "    accepted: %s\n", bad[i]);
        }
        CHECK_INT(rc, -EINVAL);
        jsonspan_page_free(&pg);
    }
    /* Every truncation of a valid page is refused (exact-size copies). */
    const char *page = "{\"contacts\":[{\"id\":\"a\",\"s\":\"x\\\"]}\",\"n\":[1,{\"id\":\"z\"}]},"
                       "{\"id\":\"b\",\"u\":\"\\u00e9\"}],\"meta\":{\"total\":2}}";
    size_t len = strlen(page);
    int accepted = 0;
    struct jsonspan_page pg = {0};
    for (size_t cut = 0; cut < len; cut++) {
        if (scan(page, cut, "contacts", &pg) != -EINVAL || pg.n != 0) {
            accepted++;
        }
    }
    CHECK_INT(accepted, 0);
    CHECK_INT(scan(page, len, "contacts", &pg), 0);
    CHECK_INT(pg.n, 2);
    jsonspan_page_free(&pg);
}

static void test_depth_and_size(void)
{
    struct buf b;
    buf_init(&b, 64u << 20);
    /* Nesting: 1000 containers in all is the limit, as json_parse. */
    for (int depth = 998; depth <= 1001; depth++) {
        buf_reset(&b);
        buf_append_str(&b, "{\"c\":[{\"id\":\"a\",\"n\":");
        for (int i = 3; i < depth; i++) {
            buf_append(&b, "[", 1);
        }
        for (int i = 3; i < depth; i++) {
            buf_append(&b, "]", 1);
        }
        buf_append_str(&b, "}]}");
        struct jsonspan_page pg = {0};
        int rc = scan(b.data, b.len, "c", &pg);
        cJSON *tree = NULL;
        int prc = json_parse(b.data, b.len, &tree, NULL);
        cJSON_Delete(tree);
        CHECK_INT(rc, prc); /* accepted exactly when the parser accepts it */
        CHECK_INT(rc, depth <= 1000 ? 0 : -EINVAL);
        jsonspan_page_free(&pg);
    }
    /* 100,000 unbalanced openers: refused, no recursion. */
    buf_reset(&b);
    buf_append_str(&b, "{\"c\":[");
    for (int i = 0; i < 100000; i++) {
        buf_append(&b, "[", 1);
    }
    struct jsonspan_page pg = {0};
    CHECK_INT(scan(b.data, b.len, "c", &pg), -EINVAL);
    /* A 16 MB unterminated string. */
    buf_reset(&b);
    buf_append_str(&b, "{\"c\":[{\"id\":\"");
    for (int i = 0; i < (16 << 20) / 64; i++) {
        buf_append_str(&b, "0123456789abcdef0123456789abcdef0123456789abcdef012345678\\\\abcd");
    }
    CHECK_INT(scan(b.data, b.len, "c", &pg), -EINVAL);
    /* 200,000 records. */
    buf_reset(&b);
    buf_append_str(&b, "{\"c\":[");
    for (int i = 0; i < 200000; i++) {
        char rec[64];
        int n = snprintf(rec, sizeof(rec), "%s{\"id\":\"r%d\",\"v\":[%d]}", i ? "," : "", i, i);
        buf_append(&b, rec, (size_t)n);
    }
    buf_append_str(&b, "]}");
    CHECK_INT(scan(b.data, b.len, "c", &pg), 0);
    CHECK_INT(pg.n, 200000);
    CHECK(pg.n == 200000 && pg.recs[199999].id_len == 7 &&
          memcmp(b.data + pg.recs[199999].id_off, "r199999", 7) == 0);
    jsonspan_page_free(&pg);
    buf_finish(&b);
}

/* ---- cross-check with cJSON on generated pages ---- */

static uint64_t rng = 0x2545F4914F6CDD1DULL;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void gen_string(struct buf *b)
{
    static const char *const bits[] = {"a", "id", "\\\"", "\\\\", "]", "}", "[", "{", ",", ":",
                                       "\\u0041", "\\n", " ", "\xc3\xa9", "\\/", "\\\\\\\""};
    buf_append(b, "\"", 1);
    for (unsigned i = rnd(6); i > 0; i--) {
        buf_append_str(b, bits[rnd(ARRAY_SIZE(bits))]);
    }
    buf_append(b, "\"", 1);
}

static void gen_value(struct buf *b, int depth);

static void gen_object(struct buf *b, int depth, bool record)
{
    buf_append(b, "{", 1);
    unsigned n = rnd(5);
    bool id_done = false;
    for (unsigned i = 0; i < n; i++) {
        if (i > 0) {
            buf_append_str(b, rnd(2) ? "," : " ,\n");
        }
        if (!id_done && rnd(3) == 0) {
            buf_append_str(b, record && rnd(4) == 0 ? "\"i\\u0064\"" : "\"id\"");
            id_done = record;
        } else if (record && rnd(2) == 0) {
            buf_append_str(b, rnd(2) ? "\"name\"" : "\"tags\""); /* keys without escapes */
        } else {
            gen_string(b);
        }
        buf_append(b, ":", 1);
        if (record && id_done && rnd(2) == 0) {
            buf_append_str(b, "\"plain-id\""); /* mostly a usable id */
        } else {
            gen_value(b, depth + 1);
        }
    }
    buf_append(b, "}", 1);
}

static void gen_value(struct buf *b, int depth)
{
    static const char *const scalars[] = {"1", "-2.5e3", "true", "false", "null", "0"};
    switch (depth > 4 ? rnd(2) : rnd(4)) {
    case 0:
        buf_append_str(b, scalars[rnd(ARRAY_SIZE(scalars))]);
        break;
    case 1:
        gen_string(b);
        break;
    case 2:
        buf_append(b, "[", 1);
        for (unsigned i = rnd(4); i > 0; i--) {
            gen_value(b, depth + 1);
            if (i > 1) {
                buf_append(b, ",", 1);
            }
        }
        buf_append(b, "]", 1);
        break;
    default:
        gen_object(b, depth, false);
        break;
    }
}

static void test_cross_check(void)
{
    struct buf b;
    buf_init(&b, 1u << 20);
    int bad = 0;
    int ids = 0;
    struct jsonspan_page pg = {0};
    for (int round = 0; round < 2000; round++) {
        buf_reset(&b);
        buf_append_str(&b, "{\"meta\":");
        gen_value(&b, 1);
        buf_append_str(&b, ",\"records\":[");
        unsigned n = rnd(6);
        for (unsigned i = 0; i < n; i++) {
            if (i > 0) {
                buf_append(&b, ", ", 2);
            }
            if (rnd(8) == 0) {
                gen_value(&b, 2);
            } else {
                gen_object(&b, 2, true);
            }
        }
        buf_append_str(&b, "]}");
        cJSON *doc = NULL;
        if (json_parse(b.data, b.len, &doc, NULL) != 0) {
            bad++; /* the generator makes valid JSON only */
            continue;
        }
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "records");
        if (scan(b.data, b.len, "records", &pg) != 0 || pg.n != (size_t)cJSON_GetArraySize(arr)) {
            bad++;
            cJSON_Delete(doc);
            continue;
        }
        for (size_t i = 0; i < pg.n; i++) {
            cJSON *rec = NULL;
            if (json_parse(b.data + pg.recs[i].off, pg.recs[i].len, &rec, NULL) != 0 ||
                !json_equal(rec, cJSON_GetArrayItem(arr, (int)i))) {
                bad++;
            } else if (pg.recs[i].id_len > 0) {
                const char *want = json_get_string(rec, "id");
                ids++;
                if (want == NULL || strlen(want) != pg.recs[i].id_len ||
                    memcmp(want, b.data + pg.recs[i].id_off, pg.recs[i].id_len) != 0) {
                    bad++;
                }
            }
            cJSON_Delete(rec);
        }
        cJSON_Delete(doc);
    }
    CHECK_INT(bad, 0);
    CHECK(ids > 100); /* the check saw ids, not only records without one */
    jsonspan_page_free(&pg);
    buf_finish(&b);
}

int main(void)
{
    test_basic();
    test_strings();
    test_ids();
    test_members();
    test_malformed();
    test_depth_and_size();
    test_cross_check();
    json_scratch_release();
    return test_done("jsonspan");
}

/*
 * test_paging: the paging table. For each style, with its default names and
 * with a definition's overrides (other names, body placement, string
 * values, a more_field): the first request, the next request built from a
 * response's cursor, the end of the listing, and a cursor that does not
 * move (stuck, never "complete"). Plus the API's count: an explicit `total`
 * path, and the guess (total, count, meta.total) without one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "paging.h"
#include "util.h"
#include "testlib.h"

struct rendered {
    char query[512];
};

static void take_query(void *ud, const char *name, char *value)
{
    struct rendered *r = ud;
    size_t n = strlen(r->query);
    snprintf(r->query + n, sizeof(r->query) - n, "%s%s=%s", n > 0 ? "&" : "", name, value);
    free(value);
}

/* The request of page as "query | body" (canonical JSON body, or "-" when none). */
static char *request(const struct paging *pg, const struct paging_cursor *c, unsigned page,
                     bool has_body)
{
    struct rendered r = {{0}};
    cJSON *body = has_body ? cJSON_CreateObject() : NULL;
    paging_add_params(pg, c, page, body, take_query, &r);
    char *b = body ? json_print_canonical(body) : xstrdup("-");
    char *out = xasprintf("%s | %s", r.query, b);
    free(b);
    cJSON_Delete(body);
    return out;
}

static void check_request(const struct paging *pg, const struct paging_cursor *c, unsigned page,
                          bool has_body, const char *want)
{
    char *got = request(pg, c, page, has_body);
    CHECK_STR(got, want);
    free(got);
}

static cJSON *parse(const char *text)
{
    cJSON *v = NULL;
    if (json_parse(text, strlen(text), &v, NULL) != 0) {
        fprintf(stderr, "bad test JSON: %s\n", text);
    }
    return v;
}

/* paging_advance on a response body; records is the body's member `items`. */
static enum paging_next advance(const struct paging *pg, struct paging_cursor *c,
                                const char *response)
{
    cJSON *body = parse(response);
    enum paging_next n = paging_advance(pg, c, body, cJSON_GetObjectItem(body, "items"));
    cJSON_Delete(body);
    return n;
}

static struct catalog_trigger def_of(enum catalog_pagination style)
{
    struct catalog_trigger d;
    memset(&d, 0, sizeof(d));
    d.pagination = style;
    return d;
}

static void test_none(void)
{
    struct catalog_trigger d = def_of(CATALOG_PAGE_NONE);
    struct paging pg;
    struct paging_cursor c = {0};
    paging_init(&pg, &d, 100);
    check_request(&pg, &c, 0, true, " | {}");
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2,3]}"), PAGING_END);
}

static void test_skip_limit(void)
{
    struct catalog_trigger d = def_of(CATALOG_PAGE_SKIP_LIMIT);
    struct paging pg;
    struct paging_cursor c = {0};
    paging_init(&pg, &d, 3);
    check_request(&pg, &c, 0, false, "skip=0&limit=3 | -");
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2,3]}"), PAGING_MORE);
    check_request(&pg, &c, 1, false, "skip=3&limit=3 | -");
    char where[64];
    paging_describe(&pg, &c, 1, where, sizeof(where));
    CHECK_STR(where, "page 2, skip=3");
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2]}"), PAGING_END); /* a short page */
    CHECK_INT(advance(&pg, &c, "{\"items\":[]}"), PAGING_END);

    /* In the body, as strings (filter users by email). */
    d.paging.in = "body";
    d.paging.values = "string";
    d.paging.skip_param = "from";
    d.paging.limit_param = "size";
    paging_init(&pg, &d, 3);
    check_request(&pg, &c, 0, true, " | {\"from\":\"0\",\"size\":\"3\"}");
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2,3]}"), PAGING_MORE);
    check_request(&pg, &c, 2, true, " | {\"from\":\"6\",\"size\":\"3\"}");
    /* In the body as numbers. */
    d.paging.values = "number";
    paging_init(&pg, &d, 3);
    check_request(&pg, &c, 1, true, " | {\"from\":3,\"size\":3}");
}

static void test_offset_limit(void)
{
    struct catalog_trigger d = def_of(CATALOG_PAGE_OFFSET_LIMIT);
    struct paging pg;
    struct paging_cursor c = {0};
    paging_init(&pg, &d, 2);
    check_request(&pg, &c, 0, false, "offset=0&limit=2 | -");
    check_request(&pg, &c, 1, false, "offset=2&limit=2 | -");
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2]}"), PAGING_MORE);
    CHECK_INT(advance(&pg, &c, "{\"items\":[1]}"), PAGING_END);

    /* more_field: the API's flag decides, not the page's length. */
    d.paging.more_field = "meta.hasMore";
    paging_init(&pg, &d, 2);
    CHECK_INT(advance(&pg, &c, "{\"items\":[1],\"meta\":{\"hasMore\":true}}"), PAGING_MORE);
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2],\"meta\":{\"hasMore\":false}}"), PAGING_END);
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2]}"), PAGING_MORE); /* no flag: the length */
    CHECK_INT(advance(&pg, &c, "{\"items\":[],\"meta\":{\"hasMore\":true}}"), PAGING_END);
}

static void test_start_after(void)
{
    struct catalog_trigger d = def_of(CATALOG_PAGE_START_AFTER);
    struct paging pg;
    struct paging_cursor c = {0};
    paging_init(&pg, &d, 3);
    check_request(&pg, &c, 0, false, "limit=3 | -");
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2,3],\"meta\":{\"startAfter\":1700000000000,"
                               "\"startAfterId\":\"abc\",\"nextPage\":2,\"nextPageUrl\":\"u\"}}"),
              PAGING_MORE);
    check_request(&pg, &c, 1, false, "limit=3&startAfter=1700000000000&startAfterId=abc | -");
    char where[64];
    paging_describe(&pg, &c, 1, where, sizeof(where));
    CHECK_STR(where, "page 2, startAfterId=abc");
    /* The same cursor again, or none, on a full page: stuck. */
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2,3],\"meta\":{\"startAfterId\":\"abc\"}}"),
              PAGING_STUCK);
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2,3],\"meta\":{}}"), PAGING_STUCK);
    check_request(&pg, &c, 1, false, "limit=3&startAfter=1700000000000&startAfterId=abc | -");
    /* A full page whose meta says there is no next page; a short page. */
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2,3],\"meta\":{\"startAfterId\":\"x\","
                               "\"nextPage\":null,\"nextPageUrl\":null}}"),
              PAGING_END);
    CHECK_INT(advance(&pg, &c, "{\"items\":[1],\"meta\":{\"startAfterId\":\"y\"}}"), PAGING_END);
    /* The cursor id alone (no startAfter) is sent alone. */
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2,3],\"meta\":{\"startAfterId\":\"def\"}}"),
              PAGING_MORE);
    check_request(&pg, &c, 1, false, "limit=3&startAfterId=def | -");
    paging_cursor_reset(&c);
    check_request(&pg, &c, 0, false, "limit=3 | -");

    /* Other names and paths, in the body with string values. */
    d.paging.cursor_param = "after";
    d.paging.cursor_id_param = "afterId";
    d.paging.cursor_path = "paging.next";
    d.paging.cursor_id_path = "paging.nextId";
    d.paging.limit_param = "size";
    d.paging.in = "body";
    d.paging.values = "string";
    paging_init(&pg, &d, 2);
    check_request(&pg, &c, 0, true, " | {\"size\":\"2\"}");
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2],\"paging\":{\"next\":\"n2\",\"nextId\":\"i2\"}}"),
              PAGING_MORE);
    check_request(&pg, &c, 1, true, " | {\"after\":\"n2\",\"afterId\":\"i2\",\"size\":\"2\"}");
    paging_describe(&pg, &c, 1, where, sizeof(where));
    CHECK_STR(where, "page 2, afterId=i2");
    paging_cursor_reset(&c);
}

static void test_search_after(void)
{
    struct catalog_trigger d = def_of(CATALOG_PAGE_SEARCH_AFTER);
    struct paging pg;
    struct paging_cursor c = {0};
    paging_init(&pg, &d, 2);
    check_request(&pg, &c, 0, true, " | {\"page\":1,\"pageLimit\":2}");
    check_request(&pg, &c, 0, false, " | -"); /* no body: nothing to add */
    CHECK_INT(advance(&pg, &c, "{\"items\":[{\"id\":\"a\"},{\"id\":\"b\",\"searchAfter\":[5,\"b\"]}]}"),
              PAGING_MORE);
    check_request(&pg, &c, 1, true, " | {\"pageLimit\":2,\"searchAfter\":[5,\"b\"]}");
    /* The same cursor again, or a last record without one: stuck. */
    CHECK_INT(advance(&pg, &c, "{\"items\":[{\"id\":\"c\"},{\"id\":\"d\",\"searchAfter\":[5,\"b\"]}]}"),
              PAGING_STUCK);
    CHECK_INT(advance(&pg, &c, "{\"items\":[{\"id\":\"c\"},{\"id\":\"d\"}]}"), PAGING_STUCK);
    CHECK_INT(advance(&pg, &c, "{\"items\":[{\"id\":\"e\",\"searchAfter\":[9,\"e\"]}]}"),
              PAGING_END);
    paging_cursor_reset(&c);

    /* POST /opportunities/search: the page size is `limit`, the cursor `cursor`. */
    d.paging.limit_param = "limit";
    d.paging.cursor_path = "sort.key";
    d.paging.cursor_param = "cursor";
    paging_init(&pg, &d, 1);
    check_request(&pg, &c, 0, true, " | {\"limit\":1,\"page\":1}");
    CHECK_INT(advance(&pg, &c, "{\"items\":[{\"sort\":{\"key\":[1]}}]}"), PAGING_MORE);
    check_request(&pg, &c, 1, true, " | {\"cursor\":[1],\"limit\":1}");
    paging_cursor_reset(&c);
}

static double total_of(const struct paging *pg, const char *response)
{
    cJSON *body = parse(response);
    double v = paging_total(pg, body);
    cJSON_Delete(body);
    return v;
}

/* cursor: limit, then the response's opaque next_cursor until it is null;
 * a short page with a cursor goes on (the app's cursor decides). */
static void test_cursor(void)
{
    struct catalog_trigger d = def_of(CATALOG_PAGE_CURSOR);
    struct paging pg;
    struct paging_cursor c = {0};
    paging_init(&pg, &d, 2);
    check_request(&pg, &c, 0, false, "limit=2 | -");
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2],\"next_cursor\":\"abc\"}"), PAGING_MORE);
    check_request(&pg, &c, 1, false, "limit=2&cursor=abc | -");
    CHECK_INT(advance(&pg, &c, "{\"items\":[1],\"next_cursor\":\"def\"}"), PAGING_MORE);
    check_request(&pg, &c, 2, false, "limit=2&cursor=def | -");
    /* The same cursor again: stuck; a non-text one too. */
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2],\"next_cursor\":\"def\"}"), PAGING_STUCK);
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2],\"next_cursor\":[1]}"), PAGING_STUCK);
    /* null or absent: the end, full page or not; an empty page ends too. */
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2],\"next_cursor\":null}"), PAGING_END);
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2]}"), PAGING_END);
    CHECK_INT(advance(&pg, &c, "{\"items\":[],\"next_cursor\":\"zzz\"}"), PAGING_END);
    paging_cursor_reset(&c);

    /* Overrides: other names, a nested cursor. */
    d.paging.limit_param = "per_page";
    d.paging.cursor_param = "after";
    d.paging.cursor_path = "meta.next";
    paging_init(&pg, &d, 5);
    CHECK_INT(advance(&pg, &c, "{\"items\":[1,2,3,4,5],\"meta\":{\"next\":42}}"),
              PAGING_MORE);
    check_request(&pg, &c, 1, false, "per_page=5&after=42 | -");
    paging_cursor_reset(&c);
}

static void test_total(void)
{
    struct catalog_trigger d = def_of(CATALOG_PAGE_SKIP_LIMIT);
    struct paging pg;
    paging_init(&pg, &d, 10);
    /* The guess: total, then count, then meta.total. */
    CHECK_INT((int)total_of(&pg, "{\"total\":5,\"count\":6,\"meta\":{\"total\":7}}"), 5);
    CHECK_INT((int)total_of(&pg, "{\"count\":6,\"meta\":{\"total\":7}}"), 6);
    CHECK_INT((int)total_of(&pg, "{\"meta\":{\"total\":7}}"), 7);
    CHECK_INT((int)total_of(&pg, "{\"total\":\"5\"}"), -1);
    CHECK_INT((int)total_of(&pg, "[]"), -1);
    /* An explicit path is the only place looked at. */
    d.total = "meta.total";
    paging_init(&pg, &d, 10);
    CHECK_INT((int)total_of(&pg, "{\"total\":5,\"meta\":{\"total\":7}}"), 7);
    CHECK_INT((int)total_of(&pg, "{\"total\":5}"), -1);
}

int main(void)
{
    test_none();
    test_skip_limit();
    test_offset_limit();
    test_start_after();
    test_search_after();
    test_cursor();
    test_total();
    return test_done("paging");
}

/*
 * test_poller: the page cap of one enumeration (poller__page_cap). Twice the
 * pages the API's own count needs plus 10, at most POLLER_MAX_PAGES; no cap
 * from a missing count or from one below the records already listed (a
 * per-page count, not a total). The issue #11 mechanisms of the request
 * side: records at the response root (M1), path values and {company}
 * (M2, M3), soft-delete flags in listings and confirmation answers (M11).
 * Incremental polling (M13): watermark values and the incremental body.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "json.h"
#include "poll_int.h"
#include "util.h"
#include "testlib.h"

static void test_page_cap(void)
{
    static const struct {
        double total;
        size_t listed;
        unsigned page_size;
        unsigned want;
    } cases[] = {
        {100, 0, 10, 30},     /* 10 pages needed: 2*10 + 10 */
        {101, 50, 10, 32},    /* a partial last page counts: ceil(10.1) = 11 */
        {100, 100, 100, 12},  /* the count reached exactly: still a total */
        {0, 0, 100, 10},      /* an empty listing: only the slack */
        {5, 40, 100, POLLER_MAX_PAGES},  /* below what was listed: not a total */
        {-1, 0, 100, POLLER_MAX_PAGES},  /* no count in the responses */
        {1e12, 0, 1, POLLER_MAX_PAGES},  /* huge: clamped */
        {49995, 0, 1, POLLER_MAX_PAGES}, /* 2*49995 + 10 is the limit itself */
        {49994, 0, 1, 99998},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        unsigned got = poller__page_cap(cases[i].total, cases[i].listed, cases[i].page_size);
        if (got != cases[i].want) {
            fprintf(stderr, "case %zu: total %.0f listed %zu page_size %u\n", i, cases[i].total,
                    cases[i].listed, cases[i].page_size);
        }
        CHECK_INT((int)got, (int)cases[i].want);
    }
}

/* M1: records = . is the body itself; otherwise the dotted path. */
static void test_records_at_root(void)
{
    struct catalog_trigger def = {.records = "."};
    struct poller p = {.def = &def};
    cJSON *arr = cJSON_Parse("[{\"id\":\"a\"}]");
    CHECK(poller__records(&p, arr) == arr);
    cJSON *obj = cJSON_Parse("{\"data\":{\"items\":[]},\"id\":\"x\"}");
    CHECK(poller__records(&p, obj) == obj);
    def.records = "data.items";
    CHECK(cJSON_IsArray(poller__records(&p, obj)));
    def.records = "data";
    CHECK(cJSON_IsObject(poller__records(&p, obj)) && poller__records(&p, obj) != obj);
    cJSON_Delete(arr);
    cJSON_Delete(obj);
}

/* M2, M3: path.NAME values fill the path; {company} comes from [location]
 * company_id, in the path, the query and the body; without one the
 * request is not built (-ENOENT). */
static void test_company_and_path_values(void)
{
    struct catalog_binding pv[] = {
        {.name = "companyId", .value = "{company}", .is_company = true},
        {.name = "kind", .value = "rooms & halls"},
    };
    struct catalog_binding q[] = {{.name = "companyId", .value = "{company}", .is_company = true},
                                  {.name = "fixed", .value = "1"}};
    struct catalog_binding b[] = {{.name = "company", .value = "{company}", .is_company = true}};
    struct catalog_trigger def = {.name = "t.x",
                                  .method = "POST",
                                  .path = "/companies/{companyId}/kinds/{kind}",
                                  .records = ".",
                                  .path_values = pv,
                                  .npath_values = 2,
                                  .query = q,
                                  .nquery = 2,
                                  .body = b,
                                  .nbody = 1};
    struct config_location cl = {.name = "main", .company_id = "comp1"};
    struct config_trigger tc = {.name = "t", .location = &cl};
    struct poller p = {.def = &def, .tc = &tc};
    CHECK_STR(poller__company_id(&p), "comp1");
    struct request_parts r;
    CHECK_INT(poller__build_base(&p, NULL, &r), 0);
    CHECK_STR(r.path, "/companies/comp1/kinds/rooms%20%26%20halls");
    CHECK_INT(r.nquery, 2);
    CHECK(r.nquery == 2 && strcmp(r.query[0].name, "companyId") == 0 &&
          strcmp(r.query[0].value, "comp1") == 0 && strcmp(r.query[1].value, "1") == 0);
    CHECK_STR(json_get_string(r.body, "company"), "comp1");
    poller__parts_finish(&r);

    cl.company_id = NULL; /* no [location] company_id and no credential */
    CHECK(poller__company_id(&p) == NULL);
    CHECK_INT(poller__build_base(&p, NULL, &r), -ENOENT);
    CHECK(r.path == NULL && r.body == NULL);
    poller__parts_finish(&r);
    /* A definition without {company} does not need one. */
    pv[0] = (struct catalog_binding){.name = "companyId", .value = "c9"};
    def.nquery = 1;
    q[0] = (struct catalog_binding){.name = "companyId", .value = "c9"};
    def.nbody = 0;
    def.method = "GET";
    CHECK_INT(poller__build_base(&p, NULL, &r), 0);
    CHECK_STR(r.path, "/companies/c9/kinds/rooms%20%26%20halls");
    CHECK(r.body == NULL);
    poller__parts_finish(&r);
    /* A placeholder with no value, or an empty one, fails the request
     * (logged with the trigger and placeholder) instead of sending "//". */
    def.path = "/companies/{companyId}/kinds/{kind}/{id}";
    CHECK_INT(poller__build_base(&p, NULL, &r), -EINVAL);
    CHECK(r.path == NULL);
    poller__parts_finish(&r);
    pv[1].value = "";
    def.path = "/companies/{companyId}/kinds/{kind}";
    CHECK_INT(poller__build_base(&p, NULL, &r), -EINVAL);
    CHECK(r.path == NULL);
    poller__parts_finish(&r);
    pv[1].value = "..";
    CHECK_INT(poller__build_base(&p, NULL, &r), -EINVAL);
    poller__parts_finish(&r);
}

static void set_body(struct http_response *resp, const char *text)
{
    buf_finish(&resp->body);
    buf_init(&resp->body, 1 << 20);
    buf_append_str(&resp->body, text);
}

/* M11: a flagged record, or a confirmation answer flagged bare or one level down. */
static void test_soft_deleted(void)
{
    struct catalog_trigger def = {.records = "users"};
    struct poller p = {.def = &def};
    cJSON *rec = cJSON_Parse("{\"id\":\"u1\",\"deleted\":true}");
    CHECK(!poller__soft_deleted(&p, rec)); /* no deleted_field: never */
    def.deleted_field = "deleted";
    CHECK(poller__soft_deleted(&p, rec));
    cJSON_ReplaceItemInObject(rec, "deleted", cJSON_CreateFalse());
    CHECK(!poller__soft_deleted(&p, rec));
    cJSON_ReplaceItemInObject(rec, "deleted", cJSON_CreateString("true"));
    CHECK(!poller__soft_deleted(&p, rec)); /* only a JSON true */
    cJSON_Delete(rec);

    struct http_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    set_body(&resp, "{\"id\":\"u1\",\"deleted\":true}");
    CHECK(poller__answer_soft_deleted(&p, &resp));
    set_body(&resp, "{\"user\":{\"id\":\"u1\",\"deleted\":true},\"traceId\":\"t\"}");
    CHECK(poller__answer_soft_deleted(&p, &resp));
    set_body(&resp, "{\"user\":{\"id\":\"u1\",\"deleted\":false}}");
    CHECK(!poller__answer_soft_deleted(&p, &resp));
    set_body(&resp, "not json");
    CHECK(!poller__answer_soft_deleted(&p, &resp));
    def.deleted_field = NULL;
    set_body(&resp, "{\"id\":\"u1\",\"deleted\":true}");
    CHECK(!poller__answer_soft_deleted(&p, &resp));
    buf_finish(&resp.body);
}

/* M13: watermark values, the page's largest, and the incremental body. */
static void test_watermark(void)
{
    static const struct {
        const char *json;
        int rc;
        long long ms;
    } cases[] = {
        {"\"2026-11-26T19:46:53.123Z\"", 0, 1795722413123LL},
        {"\"2026-11-26T19:46:53.123+01:00\"", 0, 1795718813123LL},
        {"\"2026-11-26\"", 0, 1795651200000LL},
        {"1795722413123", 0, 1795722413123LL},
        {"0", 0, 0},
        {"-1", -EINVAL, 0},
        {"1.5", -EINVAL, 0},
        {"\"yesterday\"", -EINVAL, 0},
        {"null", -EINVAL, 0},
        {"true", -EINVAL, 0},
        {"1e300", -EINVAL, 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cJSON *v = cJSON_Parse(cases[i].json);
        int64_t ms = -7;
        int rc = poller__watermark_parse(v, &ms);
        if (rc != cases[i].rc || (rc == 0 && ms != cases[i].ms)) {
            fprintf(stderr, "case %zu: %s -> %d %lld\n", i, cases[i].json, rc, (long long)ms);
        }
        CHECK_INT(rc, cases[i].rc);
        CHECK(rc != 0 || ms == cases[i].ms);
        cJSON_Delete(v);
    }
    CHECK_INT(poller__watermark_parse(NULL, &(int64_t){0}), -EINVAL);

    struct catalog_binding ib[] = {
        {.name = "filters", .value = "[{\"f\":\"u\",\"value\":{\"gte\":{watermark}}}]",
         .is_json = true},
        {.name = "sort", .value = "[{\"field\":\"u\"}]", .is_json = true},
    };
    struct catalog_binding b[] = {{.name = "sort", .value = "[{\"field\":\"added\"}]",
                                   .is_json = true}};
    struct catalog_param params[] = {{.name = "filters", .where = CATALOG_BODY,
                                      .type = CATALOG_JSON}};
    struct catalog_trigger def = {.name = "t.x", .method = "POST", .path = "/things",
                                  .records = "things", .incremental = true,
                                  .watermark_field = "meta.u", .incr_body = ib, .nincr_body = 2,
                                  .body = b, .nbody = 1, .params = params, .nparams = 1};
    struct config_trigger tc = {.name = "t", .watermark_lag_ms = 1000};
    struct poller p = {.def = &def, .tc = &tc, .watermark = 5000, .incr_cycle = true};

    cJSON *recs = cJSON_Parse("[{\"meta\":{\"u\":\"1970-01-01T00:00:09.000Z\"}},"
                              "{\"meta\":{\"u\":12000}},{\"meta\":{}},{\"id\":1}]");
    CHECK(poller__records_watermark(&p, recs) == 12000);
    cJSON_Delete(recs);
    recs = cJSON_Parse("[{\"meta\":{\"u\":\"bad\"}}]");
    CHECK(poller__records_watermark(&p, recs) == -1);
    cJSON_Delete(recs);

    /* No user filters: the members are set (sort replaced), from W - lag. */
    struct request_parts r;
    CHECK_INT(poller__build_base(&p, NULL, &r), 0);
    poller__incr_add_body(&p, &r);
    char *body = cJSON_PrintUnformatted(r.body);
    CHECK_STR(body, "{\"sort\":[{\"field\":\"u\"}],\"filters\":[{\"f\":\"u\",\"value\":"
                    "{\"gte\":4000}}]}");
    free(body);
    poller__parts_finish(&r);
    /* The user's own filters: kept, ours appended; W - lag never below 0. */
    struct config_param up[] = {{.name = "filters", .value = "[{\"f\":\"city\"}]"}};
    tc.params = up;
    tc.nparams = 1;
    p.watermark = 10;
    CHECK_INT(poller__build_base(&p, NULL, &r), 0);
    poller__incr_add_body(&p, &r);
    body = cJSON_PrintUnformatted(r.body);
    CHECK_STR(body, "{\"sort\":[{\"field\":\"u\"}],\"filters\":[{\"f\":\"city\"},"
                    "{\"f\":\"u\",\"value\":{\"gte\":0}}]}");
    free(body);
    poller__parts_finish(&r);
    /* A reconcile sends the body untouched. */
    p.incr_cycle = false;
    CHECK_INT(poller__build_base(&p, NULL, &r), 0);
    poller__incr_add_body(&p, &r);
    body = cJSON_PrintUnformatted(r.body);
    CHECK_STR(body, "{\"sort\":[{\"field\":\"added\"}],\"filters\":[{\"f\":\"city\"}]}");
    free(body);
    poller__parts_finish(&r);
}

/* A batch listing's records, grouped by their parent field. */
static void test_batch_group(void)
{
    char *ids[] = {"c1", "c2", "c3"};
    cJSON *groups[3];
    cJSON *records = cJSON_Parse("[{\"id\":\"t1\",\"contactId\":\"c2\"},"
                                 "{\"id\":\"t2\",\"contactId\":\"c1\"},"
                                 "{\"id\":\"t3\",\"contactId\":\"c2\"}]");
    CHECK_INT(poller__batch_group(records, "contactId", ids, 3, groups), 0);
    CHECK_INT(cJSON_GetArraySize(records), 0);
    CHECK_INT(cJSON_GetArraySize(groups[0]), 1);
    CHECK_INT(cJSON_GetArraySize(groups[1]), 2);
    CHECK(groups[2] != NULL && cJSON_GetArraySize(groups[2]) == 0); /* none: an empty list */
    CHECK_STR(json_get_string(cJSON_GetArrayItem(groups[1], 0), "id"), "t1");
    CHECK_STR(json_get_string(cJSON_GetArrayItem(groups[1], 1), "id"), "t3");
    CHECK_STR(json_get_string(cJSON_GetArrayItem(groups[0], 0), "id"), "t2");
    for (size_t i = 0; i < 3; i++) {
        cJSON_Delete(groups[i]);
    }
    cJSON_Delete(records);

    /* A record of another parent, without the field, with it not a string, or not an object. */
    static const char *const bad[] = {
        "[{\"id\":\"t1\",\"contactId\":\"c1\"},{\"id\":\"t2\",\"contactId\":\"c9\"}]",
        "[{\"id\":\"t1\",\"contactId\":\"c1\"},{\"id\":\"t2\"}]",
        "[{\"id\":\"t1\",\"contactId\":1}]",
        "[\"c1\"]",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        records = cJSON_Parse(bad[i]);
        CHECK_INT(poller__batch_group(records, "contactId", ids, 3, groups), -EINVAL);
        CHECK(groups[0] == NULL && groups[1] == NULL && groups[2] == NULL);
        CHECK_INT(cJSON_GetArraySize(records), 0);
        cJSON_Delete(records);
    }
}

int main(void)
{
    test_page_cap();
    test_records_at_root();
    test_company_and_path_values();
    test_soft_deleted();
    test_watermark();
    test_batch_group();
    return test_done("poller");
}

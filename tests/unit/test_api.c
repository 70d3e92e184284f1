/*
 * test_api: HighLevel's wire conventions: the status table, the error
 * body's message and traceId, whether a body is the API's own error shape,
 * and the X-RateLimit-* values read from captured headers.
 */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "json.h"
#include "testlib.h"
#include "util.h"

static void test_status_class(void)
{
    static const struct {
        long status;
        enum ghl_status_class want;
    } cases[] = {
        {200, GHL_STATUS_OK}, {201, GHL_STATUS_OK}, {204, GHL_STATUS_OK}, {299, GHL_STATUS_OK},
        {408, GHL_STATUS_RETRY}, {425, GHL_STATUS_RETRY}, {429, GHL_STATUS_RETRY},
        {500, GHL_STATUS_RETRY}, {502, GHL_STATUS_RETRY}, {503, GHL_STATUS_RETRY},
        {599, GHL_STATUS_RETRY}, {401, GHL_STATUS_AUTH}, {403, GHL_STATUS_AUTH},
        {400, GHL_STATUS_MISSING}, {404, GHL_STATUS_MISSING}, {422, GHL_STATUS_MISSING},
        {410, GHL_STATUS_GONE}, {0, GHL_STATUS_OTHER}, {100, GHL_STATUS_OTHER},
        {301, GHL_STATUS_OTHER}, {405, GHL_STATUS_OTHER}, {409, GHL_STATUS_OTHER},
        {413, GHL_STATUS_OTHER}, {499, GHL_STATUS_OTHER},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        if (ghl_api_status_class(cases[i].status) != cases[i].want) {
            fprintf(stderr, "status %ld\n", cases[i].status);
        }
        CHECK_INT(ghl_api_status_class(cases[i].status), cases[i].want);
    }
}

/* HighLevel error bodies carry "message" as a string or an array. */
static void test_api_message(void)
{
    static const struct {
        const char *body;
        size_t size;
        const char *want;
    } cases[] = {
        {"{\"message\":\"Contact not found\",\"traceId\":\"t\"}", 64, "Contact not found"},
        {"{\"message\":[\"email must be an email\",\"phone is invalid\"]}", 64,
         "email must be an email; phone is invalid"},
        {"{\"message\":[1,\"only strings\",null]}", 64, "only strings"},
        {"{\"message\":[]}", 64, ""},
        {"{\"message\":42}", 64, ""},
        {"{\"error\":\"x\"}", 64, ""},
        {"[\"not an object\"]", 64, ""},
        {"{\"message\":\"abcdefghij\"}", 5, "abcd"},
        {"{\"message\":[\"abc\",\"defgh\"]}", 8, "abc; de"},
        {"{\"message\":[\"abcdefgh\",\"x\"]}", 4, "abc"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cJSON *body = NULL;
        CHECK_INT(json_parse(cases[i].body, strlen(cases[i].body), &body, NULL), 0);
        char out[64];
        memset(out, 'Z', sizeof(out));
        ghl_api_message(body, out, cases[i].size);
        CHECK_STR(out, cases[i].want);
        cJSON_Delete(body);
    }
    char out[8] = "junk";
    ghl_api_message(NULL, out, sizeof(out));
    CHECK_STR(out, "");
}

static void test_trace_id(void)
{
    cJSON *body = NULL;
    CHECK_INT(json_parse("{\"traceId\":\"abc-1\"}", 19, &body, NULL), 0);
    CHECK_STR(ghl_api_trace_id(body), "abc-1");
    cJSON_Delete(body);
    CHECK_INT(json_parse("{\"traceId\":7}", 13, &body, NULL), 0);
    CHECK(ghl_api_trace_id(body) == NULL);
    cJSON_Delete(body);
    CHECK(ghl_api_trace_id(NULL) == NULL);
}

/* A response with status and body text, for the functions that read one. */
static struct http_response response(long status, const char *body)
{
    struct http_response r;
    memset(&r, 0, sizeof(r));
    r.status = status;
    buf_init(&r.body, 4096);
    buf_append_str(&r.body, body);
    return r;
}

static void test_error_body(void)
{
    static const struct {
        long status;
        const char *body;
        bool want;
    } cases[] = {
        {404, "{\"statusCode\":404,\"message\":\"Contact not found\"}", true},
        {422, "{\"statusCode\":422,\"message\":[\"a\",\"b\"]}", true},
        {404, "{\"statusCode\":400,\"message\":\"x\"}", false}, /* another status */
        {404, "{\"statusCode\":404}", false},
        {404, "{\"statusCode\":404,\"message\":3}", false},
        {404, "<html>Not Found</html>", false}, /* a gateway's page */
        {404, "", false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct http_response r = response(cases[i].status, cases[i].body);
        CHECK(ghl_api_error_body(&r) == cases[i].want);
        buf_finish(&r.body);
    }
}

static void test_ratelimit(void)
{
    struct http_response r = response(200, "{}");
    static const char *const values[] = {"200000", "199990", "10000", "100", "97"};
    for (size_t i = 0; i < ARRAY_SIZE(values); i++) {
        r.captured[i].present = true;
        str_copy(r.captured[i].value, sizeof(r.captured[i].value), values[i]);
    }
    struct http_ratelimit_info rl;
    ghl_api_ratelimit(&r, &rl);
    CHECK(rl.present);
    CHECK_INT(rl.limit_daily, 200000);
    CHECK_INT(rl.daily_remaining, 199990);
    CHECK_INT(rl.interval_ms, 10000);
    CHECK_INT(rl.max, 100);
    CHECK_INT(rl.remaining, 97);

    /* Not decimal, negative, empty or too long: that field is -1. */
    static const char *const bad[] = {"1.5", "-3", "", "1234567890123456789", "12a"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        str_copy(r.captured[4].value, sizeof(r.captured[4].value), bad[i]);
        ghl_api_ratelimit(&r, &rl);
        CHECK_INT(rl.remaining, -1);
        CHECK(rl.present); /* the others still count */
    }

    memset(r.captured, 0, sizeof(r.captured));
    ghl_api_ratelimit(&r, &rl);
    CHECK(!rl.present);
    CHECK_INT(rl.limit_daily, -1);
    CHECK_INT(rl.max, -1);
    buf_finish(&r.body);

    /* The names http.c is asked to capture, in the field order above. */
    CHECK_STR(ghl_api_capture_headers[0], "X-RateLimit-Limit-Daily");
    CHECK_STR(ghl_api_capture_headers[4], "X-RateLimit-Remaining");
    CHECK(ghl_api_capture_headers[5] == NULL);
}

int main(void)
{
    test_status_class();
    test_api_message();
    test_trace_id();
    test_error_body();
    test_ratelimit();
    return test_done("api");
}

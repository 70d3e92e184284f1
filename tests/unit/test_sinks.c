/*
 * test_sinks: the sink registry and each sink's classify, table-driven.
 * A response (HTTP status, transport error, exit status) must map to the
 * verdict the delivery loop acts on: success, retry (after at least
 * Retry-After) or the dead-letter store; these tables pin today's policy.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dispatch.h"
#include "http.h"
#include "registry.h"
#include "sink.h"
#include "subproc.h"
#include "testlib.h"

static const char *verdict_name(enum sink_verdict v)
{
    return v == SINK_SUCCESS ? "success" : v == SINK_RETRY ? "retry" : "dead";
}

static void test_registry(void)
{
    static const struct {
        const char *name;
        enum config_rule_kind kind;
    } rows[] = {
        {"ghl", CONFIG_RULE_CATALOG},
        {"http", CONFIG_RULE_HTTP},
        {"exec", CONFIG_RULE_EXEC},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct sink *s = sink_find(rows[i].name);
        CHECK(s != NULL);
        if (s == NULL) {
            continue;
        }
        CHECK_STR(s->name, rows[i].name);
        CHECK_INT(s->rule_kind, rows[i].kind);
        CHECK(sink_for_rule(rows[i].kind) == s);
        CHECK(s->render != NULL && s->send != NULL && s->cancel != NULL && s->classify != NULL);
        CHECK(s->keys == NULL);
    }
    /* Only the HighLevel sink writes records, so only it feeds echo detection. */
    CHECK(sink_find("ghl")->claimed != NULL && sink_find("ghl")->recorded != NULL);
    CHECK(sink_find("http")->claimed == NULL && sink_find("http")->recorded == NULL);
    CHECK(sink_find("exec")->claimed == NULL && sink_find("exec")->recorded == NULL);
    CHECK(sink_find("kafka") == NULL);
    CHECK(sink_find("") == NULL);
}

struct http_row {
    const char *sink;     /* "ghl" or "http" */
    const char *entry;    /* the claimed entry (JSON) */
    long status;
    int error;            /* HTTP_E_* */
    const char *error_text;
    const char *body;     /* response body, or NULL */
    long retry_after_s;
    enum sink_verdict want;
    const char *want_error;
    const char *want_trace;
};

#define POST "{\"kind\":\"ghl\",\"request\":{\"method\":\"POST\",\"path\":\"/contacts/\"}}"
#define DEL_GONE_OK                                                                            \
    "{\"kind\":\"ghl\",\"gone_ok\":true,\"request\":{\"method\":\"DELETE\",\"path\":\"/x/1\"}}"
#define DEL "{\"kind\":\"ghl\",\"gone_ok\":false,\"request\":{\"method\":\"DELETE\"}}"
#define HOOK "{\"kind\":\"http\",\"request\":{\"method\":\"POST\",\"url\":\"http://h/\"}}"
#define ERR_BODY "{\"message\":\"busy\",\"traceId\":\"t-1\"}"
/* conflict_ok (users.create): "already exists" is success on a retry only. */
#define CREATE_1 "{\"kind\":\"ghl\",\"conflict_ok\":true,\"attempts\":1,\"request\":{\"method\":\"POST\"}}"
#define CREATE_2 "{\"kind\":\"ghl\",\"conflict_ok\":true,\"attempts\":2,\"request\":{\"method\":\"POST\"}}"
#define CREATE_NO "{\"kind\":\"ghl\",\"attempts\":2,\"request\":{\"method\":\"POST\"}}"
#define EXISTS "{\"message\":\"User with the same email Already Exists\"}"

static const struct http_row http_rows[] = {
    /* 2xx: done */
    {"ghl", POST, 200, 0, "", "{}", 0, SINK_SUCCESS, "", ""},
    {"ghl", POST, 201, 0, "", NULL, 0, SINK_SUCCESS, "", ""},
    {"http", HOOK, 204, 0, "", NULL, 0, SINK_SUCCESS, "", ""},
    {"http", HOOK, 299, 0, "", NULL, 0, SINK_SUCCESS, "", ""},
    /* a retried delete that finds the record gone has nothing left to do */
    {"ghl", DEL_GONE_OK, 404, 0, "", NULL, 0, SINK_SUCCESS, "already gone (HTTP 404)", ""},
    {"ghl", DEL_GONE_OK, 400, 0, "", NULL, 0, SINK_SUCCESS, "already gone (HTTP 400)", ""},
    {"ghl", DEL_GONE_OK, 422, 0, "", NULL, 0, SINK_SUCCESS, "already gone (HTTP 422)", ""},
    {"ghl", DEL_GONE_OK, 410, 0, "", NULL, 0, SINK_DEAD, "HTTP 410", ""},
    {"ghl", DEL_GONE_OK, 500, 0, "", NULL, 0, SINK_RETRY, "HTTP 500", ""},
    {"ghl", DEL, 404, 0, "", NULL, 0, SINK_DEAD, "HTTP 404", ""},
    {"ghl", POST, 404, 0, "", NULL, 0, SINK_DEAD, "HTTP 404", ""},
    {"ghl", CREATE_2, 400, 0, "", EXISTS, 0, SINK_SUCCESS,
     "already exists on attempt 2 (HTTP 400: User with the same email Already Exists)", ""},
    {"ghl", CREATE_2, 409, 0, "", EXISTS, 0, SINK_SUCCESS,
     "already exists on attempt 2 (HTTP 409: User with the same email Already Exists)", ""},
    {"ghl", CREATE_1, 400, 0, "", EXISTS, 0, SINK_DEAD,
     "HTTP 400: User with the same email Already Exists", ""},
    {"ghl", CREATE_NO, 400, 0, "", EXISTS, 0, SINK_DEAD,
     "HTTP 400: User with the same email Already Exists", ""},
    {"ghl", CREATE_2, 400, 0, "", "{\"message\":\"email is invalid\"}", 0, SINK_DEAD,
     "HTTP 400: email is invalid", ""},
    {"ghl", CREATE_2, 422, 0, "", EXISTS, 0, SINK_DEAD,
     "HTTP 422: User with the same email Already Exists", ""},
    /* transient statuses retry, with the server's message and traceId */
    {"ghl", POST, 408, 0, "", NULL, 0, SINK_RETRY, "HTTP 408", ""},
    {"ghl", POST, 425, 0, "", NULL, 0, SINK_RETRY, "HTTP 425", ""},
    {"ghl", POST, 429, 0, "", ERR_BODY, 30, SINK_RETRY, "HTTP 429: busy", "t-1"},
    {"ghl", POST, 500, 0, "", ERR_BODY, 0, SINK_RETRY, "HTTP 500: busy", "t-1"},
    {"http", HOOK, 502, 0, "", "not json", 0, SINK_RETRY, "HTTP 502", ""},
    {"http", HOOK, 503, 0, "", NULL, 120, SINK_RETRY, "HTTP 503", ""},
    {"http", HOOK, 599, 0, "", NULL, 0, SINK_RETRY, "HTTP 599", ""},
    /* other statuses never get better: dead letters */
    {"ghl", POST, 400, 0, "", "{\"message\":[\"a\",\"b\"]}", 0, SINK_DEAD, "HTTP 400: a; b", ""},
    {"ghl", POST, 401, 0, "", NULL, 0, SINK_DEAD, "HTTP 401", ""},
    {"ghl", POST, 403, 0, "", NULL, 0, SINK_DEAD, "HTTP 403", ""},
    {"http", HOOK, 409, 0, "", NULL, 0, SINK_DEAD, "HTTP 409", ""},
    {"http", HOOK, 422, 0, "", ERR_BODY, 0, SINK_DEAD, "HTTP 422: busy", "t-1"},
    {"http", HOOK, 301, 0, "", NULL, 0, SINK_DEAD, "HTTP 301", ""},
    /* transport errors: no response, so retry; a refused redirect is dead */
    {"http", HOOK, 0, HTTP_E_TIMEOUT, "", NULL, 0, SINK_RETRY, "timed out", ""},
    {"http", HOOK, 0, HTTP_E_CONNECT, "refused", NULL, 0, SINK_RETRY, "refused", ""},
    {"http", HOOK, 0, HTTP_E_CONNECT, "", NULL, 0, SINK_RETRY, "could not connect", ""},
    {"http", HOOK, 0, HTTP_E_REDIRECT, "", NULL, 0, SINK_DEAD,
     "redirect to 'https://elsewhere/' refused", ""},
    {"ghl", POST, 0, HTTP_E_AUTH, "credential failed: log in again", NULL, 0, SINK_RETRY,
     "credential failed: log in again", ""},
    /* classify alone: the cancelled flag is the sender's (deliver leaves it for the lease) */
    {"ghl", POST, 0, HTTP_E_CANCELLED, "cancelled", NULL, 0, SINK_RETRY, "cancelled", ""},
};

static void test_http_classify(void)
{
    for (size_t i = 0; i < sizeof(http_rows) / sizeof(http_rows[0]); i++) {
        const struct http_row *row = &http_rows[i];
        cJSON *entry = cJSON_Parse(row->entry);
        struct http_response resp;
        memset(&resp, 0, sizeof(resp));
        resp.status = row->status;
        resp.error = row->error;
        resp.retry_after_s = row->retry_after_s;
        snprintf(resp.error_text, sizeof(resp.error_text), "%s", row->error_text);
        if (row->error == HTTP_E_REDIRECT) {
            snprintf(resp.location, sizeof(resp.location), "https://elsewhere/");
        }
        char *body = row->body ? strdup(row->body) : NULL;
        resp.body.data = body;
        resp.body.len = body ? strlen(body) : 0;
        struct sink_outcome o;
        memset(&o, 0, sizeof(o));
        sink_find(row->sink)->classify(entry, &resp, &o);
        if (o.kind != row->want || strcmp(o.error, row->want_error) != 0) {
            fprintf(stderr, "row %zu (%s %ld): %s \"%s\", want %s \"%s\"\n", i, row->sink,
                    row->status, verdict_name(o.kind), o.error, verdict_name(row->want),
                    row->want_error);
        }
        CHECK_INT(o.kind, row->want);
        CHECK_STR(o.error, row->want_error);
        CHECK_STR(o.trace_id, row->want_trace);
        CHECK_INT(o.status, row->status);
        CHECK_INT(o.retry_after_s, row->retry_after_s);
        CHECK(!o.cancelled);
        CHECK(o.result == NULL);
        free(body);
        cJSON_Delete(entry);
    }
}

/* A success hands over the member the action names (own-write tracking) and
 * an upsert's "new". */
static void test_http_result(void)
{
    static const struct {
        const char *entry;
        const char *body;
        const char *want_id;   /* the result's id, NULL: no result */
        bool want_new;
    } rows[] = {
        {"{\"result\":\"contact\"}", "{\"contact\":{\"id\":\"c1\"},\"new\":true}", "c1", true},
        {"{\"result\":\"contact\"}", "{\"contact\":{\"id\":\"c2\"},\"new\":false}", "c2", false},
        {"{\"result\":\"contact\"}", "{\"other\":{}}", NULL, false},
        {"{\"result\":\"\"}", "{\"contact\":{\"id\":\"c1\"},\"new\":true}", NULL, true},
        {"{}", "{\"contact\":{\"id\":\"c1\"}}", NULL, false},
        {"{\"result\":\"contact\"}", NULL, NULL, false},
        /* result = .: the bare response is the record (users.create/update, M1) */
        {"{\"result\":\".\"}", "{\"id\":\"u1\",\"email\":\"a@b.c\"}", "u1", false},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        cJSON *entry = cJSON_Parse(rows[i].entry);
        struct http_response resp;
        memset(&resp, 0, sizeof(resp));
        resp.status = 200;
        char *body = rows[i].body ? strdup(rows[i].body) : NULL;
        resp.body.data = body;
        resp.body.len = body ? strlen(body) : 0;
        struct sink_outcome o;
        memset(&o, 0, sizeof(o));
        sink_find("ghl")->classify(entry, &resp, &o);
        CHECK_INT(o.kind, SINK_SUCCESS);
        CHECK_STR(o.result ? json_get_string(o.result, "id") : NULL, rows[i].want_id);
        CHECK_INT(o.created_new, rows[i].want_new);
        cJSON_Delete(o.result);
        free(body);
        cJSON_Delete(entry);
    }
}

/*
 * A secret field (M14) is read from its reference only when sent: a missing
 * variable is a send error naming the field and the reference; the request
 * (what the outbox stores) is never changed. No location is configured, so
 * a readable secret gets as far as the location lookup (-ENOENT).
 */
static void test_ghl_secret_send(void)
{
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.dir = (char *)"/nonexistent";
    struct dispatcher_env env;
    memset(&env, 0, sizeof(env));
    env.cfg = &cfg;
    const char *text = "{\"location\":\"main\",\"request\":{\"method\":\"POST\",\"path\":"
                       "\"/users/\",\"body\":{\"email\":\"a@b.c\",\"password\":\"***\"},"
                       "\"secret_fields\":{\"password\":\"env:POLLEN_TEST_PW\"}}}";
    cJSON *entry = cJSON_Parse(text);
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(entry, "request");
    struct sink_call call;
    memset(&call, 0, sizeof(call));
    call.env = &env;
    call.entry = entry;
    unsetenv("POLLEN_TEST_PW");
    CHECK_INT(sink_find("ghl")->send(&call, req), -ENOKEY);
    CHECK(strstr(call.error, "secret field password = env:POLLEN_TEST_PW") != NULL);
    CHECK(strstr(call.error, "POLLEN_TEST_PW") != NULL);
    setenv("POLLEN_TEST_PW", "s3cret-pass-word", 1);
    memset(call.error, 0, sizeof(call.error));
    CHECK_INT(sink_find("ghl")->send(&call, req), -ENOENT);
    CHECK_STR(call.error, "");
    call.error[0] = '\0';
    /* file: references are read relative to the config's dir and must exist. */
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive((cJSON *)req,
                                                                            "secret_fields"),
                                           "password", cJSON_CreateString("file:pw.txt"));
    CHECK_INT(sink_find("ghl")->send(&call, req), -ENOKEY);
    CHECK(strstr(call.error, "secret field password = file:pw.txt") != NULL);
    /* The stored request keeps the mask and the reference only. */
    char *after = cJSON_PrintUnformatted(entry);
    CHECK(strstr(after, "s3cret") == NULL);
    CHECK(strstr(after, "\"password\":\"***\"") != NULL);
    free(after);
    unsetenv("POLLEN_TEST_PW");
    cJSON_Delete(entry);
}

struct exec_row {
    int64_t exit_status;
    int term_signal;
    int error;
    bool timed_out;
    const char *output;
    enum sink_verdict want;
    const char *want_error;
};

static const struct exec_row exec_rows[] = {
    {0, 0, 0, false, "", SINK_SUCCESS, ""},
    {0, 0, 0, false, "some output", SINK_SUCCESS, ""},
    {1, 0, 0, false, "boom", SINK_RETRY, "exit status 1: boom"},
    {75, 0, 0, false, "", SINK_RETRY, "exit status 75: "},
    {-1, 9, 0, false, "", SINK_RETRY, "killed by signal 9"},
    {-1, 15, 0, true, "", SINK_RETRY, "timed out"},
    {-1, 0, UV_ENOENT, false, "", SINK_DEAD, "cannot start: no such file or directory"},
    {-1, 0, UV_EACCES, false, "", SINK_DEAD, "cannot start: permission denied"},
};

static void test_exec_classify(void)
{
    for (size_t i = 0; i < sizeof(exec_rows) / sizeof(exec_rows[0]); i++) {
        const struct exec_row *row = &exec_rows[i];
        struct subproc_result res;
        memset(&res, 0, sizeof(res));
        res.exit_status = row->exit_status;
        res.term_signal = row->term_signal;
        res.error = row->error;
        res.timed_out = row->timed_out;
        snprintf(res.output, sizeof(res.output), "%s", row->output);
        struct sink_outcome o;
        memset(&o, 0, sizeof(o));
        sink_find("exec")->classify(NULL, &res, &o);
        if (o.kind != row->want || strcmp(o.error, row->want_error) != 0) {
            fprintf(stderr, "exec row %zu: %s \"%s\", want %s \"%s\"\n", i,
                    verdict_name(o.kind), o.error, verdict_name(row->want), row->want_error);
        }
        CHECK_INT(o.kind, row->want);
        CHECK_STR(o.error, row->want_error);
        CHECK_INT(o.status, row->exit_status);
        CHECK_INT(o.retry_after_s, 0);
    }
}

int main(void)
{
    test_registry();
    test_http_classify();
    test_http_result();
    test_ghl_secret_send();
    test_exec_classify();
    return test_done("sinks");
}

/*
 * test_sinks: the sink registry and each sink's classify, table-driven.
 * A response (HTTP status, transport error, exit status) must map to the
 * verdict the delivery loop acts on: success, retry (after at least
 * Retry-After) or the dead-letter store; these tables pin today's policy.
 *
 * Echo detection driven by the catalog's resource facts (resources/ files):
 * derived fields, list fields written and read in different shapes, the
 * parent a write goes under and its touch, as the ghl sink renders them into
 * the entry, and entries from before that (contact_id only).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "catalog.h"
#include "dispatch.h"
#include "http.h"
#include "registry.h"
#include "sink_exec.h"
#include "sink_http.h"
#include "sink.h"
#include "sinks_int.h"
#include "store.h"
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
        const struct config_rule_kind *kind;
    } rows[] = {
        {"ghl", &config_rule_catalog},
        {"http", &sink_http_rule_kind},
        {"exec", &sink_exec_rule_kind},
    };
    const struct config_rule_kind *const *kinds = sink_rule_kinds();
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct sink *s = sink_find(rows[i].name);
        CHECK(s != NULL);
        if (s == NULL) {
            continue;
        }
        CHECK_STR(s->name, rows[i].name);
        CHECK(s->rule_kind == rows[i].kind);
        CHECK(sink_for_rule(rows[i].kind) == s);
        CHECK(s->render != NULL && s->send != NULL && s->cancel != NULL && s->classify != NULL);
        /* config_load gets every sink's kind, in registry order. */
        CHECK(kinds[i] == rows[i].kind);
    }
    CHECK(kinds[sizeof(rows) / sizeof(rows[0])] == NULL);
    /* The kinds' own keys: http and exec name theirs; a catalog action's
     * are its parameters and fields (config_resolve checks them). */
    CHECK_STR(sink_http_rule_kind.name, "http");
    CHECK(sink_http_rule_kind.nkeys == 2 && sink_http_rule_kind.timeout);
    CHECK_STR(sink_exec_rule_kind.name, "exec");
    CHECK(sink_exec_rule_kind.nkeys == 2 && sink_exec_rule_kind.timeout);
    CHECK(config_rule_catalog.nkeys == 0 && !config_rule_catalog.timeout);
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
    {1, 0, 0, false, "boom", SINK_RETRY, "exit 1: boom"},
    {2, 0, 0, false, "two lines\nof output\n\n", SINK_RETRY, "exit 2: two lines\nof output"},
    {75, 0, 0, false, "", SINK_RETRY, "exit 75"},
    {-1, 9, 0, false, "", SINK_RETRY, "signal SIGKILL"},
    {-1, 15, 0, false, "bye", SINK_RETRY, "signal SIGTERM: bye"},
    {-1, 63, 0, false, "", SINK_RETRY, "signal 63"},
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

/* ---- echo detection from the catalog's resource facts ---- */

struct echo_env {
    struct store *store;
    struct catalog *cat;
};

static cJSON *parse(const char *json)
{
    cJSON *v = cJSON_Parse(json);
    if (v == NULL) {
        fprintf(stderr, "bad test JSON: %s\n", json);
        exit(99);
    }
    return v;
}

struct hook_call {
    const char *entry;
    const char *result; /* the outcome's result (JSON), or NULL: claim only */
    uint64_t id;
};

static int hook_txn(struct store_txn *txn, void *ud)
{
    const struct hook_call *h = ud;
    cJSON *entry = parse(h->entry);
    int rc = dispatch__echo_claimed(txn, entry, h->id);
    if (rc == 0 && h->result != NULL) {
        struct sink_outcome o = {.kind = SINK_SUCCESS, .result = parse(h->result)};
        rc = dispatch__echo_recorded(txn, entry, h->id, &o);
        cJSON_Delete(o.result);
    }
    cJSON_Delete(entry);
    return rc;
}

/* Runs the claim hook, and the outcome hook (success with result) if given. */
static void write_made(struct echo_env *env, const char *entry, const char *result, uint64_t id)
{
    struct hook_call h = {entry, result, id};
    CHECK_INT(store_write(env->store, hook_txn, &h), 0);
}

struct own_call {
    const struct catalog_trigger *def;
    const char *record_id, *type, *changes, *record, *trigger;
    bool own;
};

static int own_txn(struct store_txn *txn, void *ud)
{
    struct own_call *c = ud;
    cJSON *changes = parse(c->changes);
    cJSON *record = parse(c->record);
    c->own = dispatch__is_own_write(txn, "L1", c->def, c->record_id, c->type, changes, record,
                                    c->trigger);
    cJSON_Delete(changes);
    cJSON_Delete(record);
    return 0;
}

/* Is this event of trigger definition def_name pollen's echo? */
static bool is_echo(struct echo_env *env, const char *def_name, const char *record_id,
                    const char *type, const char *changes, const char *record,
                    const char *trigger)
{
    struct own_call c = {catalog_find_trigger(env->cat, def_name), record_id, type, changes,
                         record, trigger, false};
    CHECK(c.def != NULL && c.def->res != NULL);
    CHECK_INT(store_write(env->store, own_txn, &c), 0);
    return c.own;
}

#define PUT_CONTACT(id, body)                                                            \
    "{\"location_id\":\"L1\",\"target_resource\":\"contact\",\"target_id\":\"" id "\","     \
    "\"result\":\"contact\",\"request\":{\"method\":\"PUT\",\"path\":\"/contacts/" id "\","  \
    "\"body\":" body "}}"

static void test_echo_derived_and_lists(struct echo_env *env)
{
    /* Only fields the API derives moved next to what pollen wrote: an echo. */
    write_made(env, PUT_CONTACT("c1", "{\"firstName\":\"Ann\"}"), "{\"id\":\"c1\"}", 1);
    CHECK(is_echo(env, "contacts.search", "c1", "updated",
                  "{\"firstName\":{\"old\":\"A\",\"new\":\"Ann\"},"
                  "\"dateUpdated\":{\"old\":\"x\",\"new\":\"y\"},"
                  "\"firstNameLowerCase\":{\"old\":\"a\",\"new\":\"ann\"}}",
                  "{\"id\":\"c1\"}", "t1"));
    /* A field that is neither written nor derived: someone else's change. */
    CHECK(!is_echo(env, "contacts.search", "c1", "updated",
                   "{\"firstName\":{\"old\":\"A\",\"new\":\"Ann\"},"
                   "\"lastName\":{\"old\":\"B\",\"new\":\"Bo\"}}",
                   "{\"id\":\"c1\"}", "t2"));

    /* A custom field written as field_value and read back as value. */
    write_made(env,
               PUT_CONTACT("c2", "{\"customFields\":[{\"id\":\"f1\",\"field_value\":\"gold\"}]}"),
               "{\"id\":\"c2\"}", 2);
    const char *read_back = "{\"customFields\":{\"old\":[],\"new\":[{\"id\":\"f0\",\"value\":1},"
                            "{\"id\":\"f1\",\"value\":\"gold\"}]},"
                            "\"dateUpdated\":{\"old\":\"x\",\"new\":\"y\"}}";
    CHECK(is_echo(env, "contacts.search", "c2", "updated", read_back, "{\"id\":\"c2\"}", "t1"));
    const char *other = "{\"customFields\":{\"old\":[],\"new\":[{\"id\":\"f1\",\"value\":\"tin\"}]}}";
    CHECK(!is_echo(env, "contacts.search", "c2", "updated", other, "{\"id\":\"c2\"}", "t2"));

    /* A task declares no derived fields: its own dateUpdated would be a change. */
    write_made(env,
               "{\"location_id\":\"L1\",\"target_resource\":\"task\",\"target_id\":\"k1\","
               "\"parent_resource\":\"contact\",\"parent_id\":\"c3\",\"touches_parent\":true,"
               "\"request\":{\"method\":\"PUT\",\"path\":\"/contacts/c3/tasks/k1\","
               "\"body\":{\"title\":\"T\"}}}",
               "{\"id\":\"k1\"}", 3);
    CHECK(!is_echo(env, "contacts.tasks", "k1", "updated",
                   "{\"title\":{\"old\":\"S\",\"new\":\"T\"},"
                   "\"dateUpdated\":{\"old\":\"x\",\"new\":\"y\"}}",
                   "{\"id\":\"k1\"}", "t1"));
    CHECK(is_echo(env, "contacts.tasks", "k1", "updated",
                  "{\"title\":{\"old\":\"S\",\"new\":\"T\"}}", "{\"id\":\"k1\"}", "t2"));
}

/* The task create of entry (parent c9) and its parent's touch, on claim. */
static void check_task_create(struct echo_env *env, const char *entry, uint64_t id,
                              const char *parent, const char *trigger)
{
    write_made(env, entry, NULL, id);
    /* The parent's derived fields moved: pollen's touch. */
    CHECK(is_echo(env, "contacts.search", parent, "updated",
                  "{\"dateUpdated\":{\"old\":\"x\",\"new\":\"y\"}}", "{}", trigger));
    /* Created under another parent: not this create. */
    CHECK(!is_echo(env, "contacts.tasks", "k-other", "created", "{}",
                   "{\"id\":\"k-other\",\"title\":\"Call\",\"contactId\":\"elsewhere\"}",
                   trigger));
    /* Created under this parent with the values sent, before the response. */
    char *record = xasprintf("{\"id\":\"k-%llu\",\"title\":\"Call\",\"contactId\":\"%s\"}",
                             (unsigned long long)id, parent);
    char *rid = xasprintf("k-%llu", (unsigned long long)id);
    CHECK(is_echo(env, "contacts.tasks", rid, "created", "{}", record, trigger));
    free(rid);
    free(record);
}

#define TASK_CREATE(parent_members, parent)                                               \
    "{\"location_id\":\"L1\",\"target_resource\":\"task\"," parent_members ","          \
    "\"request\":{\"method\":\"POST\",\"path\":\"/contacts/" parent "/tasks\","            \
    "\"body\":{\"title\":\"Call\"}}}"

static void test_echo_parent(struct echo_env *env)
{
    /* As the ghl sink renders it today. */
    check_task_create(env,
                      TASK_CREATE("\"parent_resource\":\"contact\",\"parent_id\":\"c9\","
                                  "\"touches_parent\":true",
                                  "c9"),
                      10, "c9", "t1");
    /* An entry enqueued before parent_*: contact_id still names the parent. */
    check_task_create(env, TASK_CREATE("\"contact_id\":\"c8\"", "c8"), 11, "c8", "t1");
    /* A legacy contact write carries its own id as contact_id: no touch. */
    write_made(env,
               "{\"location_id\":\"L1\",\"target_resource\":\"contact\",\"contact_id\":\"c7\","
               "\"target_id\":\"c7\",\"request\":{\"method\":\"POST\","
               "\"path\":\"/contacts/c7/campaigns/x\"}}",
               NULL, 12);
    CHECK(!is_echo(env, "contacts.search", "c7", "updated",
                   "{\"dateUpdated\":{\"old\":\"x\",\"new\":\"y\"}}", "{}", "t1"));
    /* touches_parent = no: the parent is not touched. */
    write_made(env, TASK_CREATE("\"parent_resource\":\"contact\",\"parent_id\":\"c6\","
                                "\"touches_parent\":false", "c6"),
               NULL, 13);
    CHECK(!is_echo(env, "contacts.search", "c6", "updated",
                   "{\"dateUpdated\":{\"old\":\"x\",\"new\":\"y\"}}", "{}", "t1"));
}

/* The ghl sink copies the target resource's parent facts into the entry. */
static void test_ghl_render_parent(struct echo_env *env)
{
    char *dir = test_tmp_path("test_sinks", "cfg");
    char *path = xasprintf("%s.ini", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    fputs("[engine]\nstate_dir = state\n[location main]\nid = L1\ntoken = env:X\n"
          "[trigger c]\nuse = contacts.search\n"
          "[rule task]\non = c:created\ndo = contacts.tasks.create\ncontactId = {{record.id}}\n"
          "title = Call\ndueDate = 2026-12-24T00:00:00Z\ncompleted = false\n"
          "[rule tag]\non = c:created\ndo = contacts.tags.add\ncontactId = {{record.id}}\n"
          "tags = vip\n",
          f);
    fclose(f);
    struct config *cfg = NULL;
    struct ini_errors errs = {0};
    CHECK_INT(config_load(path, CONFIG_SKIP_SECRETS, sink_rule_kinds(), &cfg, &errs), 0);
    if (cfg != NULL) {
        CHECK_INT(config_resolve(cfg, env->cat, &errs), 0);
    }
    ini_errors_print(&errs, stderr);
    ini_errors_free(&errs);
    if (cfg == NULL || cfg->nrules != 2 || cfg->rules[0].def == NULL) {
        CHECK(false);
        config_free(cfg);
        free(path);
        free(dir);
        return;
    }
    cJSON *event = parse("{\"id\":\"e1\",\"record\":{\"id\":\"c5\"}}");
    const struct sink *ghl = sink_find("ghl");
    for (size_t i = 0; i < 2; i++) {
        struct sink_render r = {.event = event, .now = 1, .loc = &cfg->locations[0]};
        cJSON *entry = cJSON_CreateObject();
        cJSON *req = ghl->render(&r, &cfg->rules[i], entry);
        CHECK(req != NULL);
        if (i == 0) { /* a task: under its parent contact, which it touches */
            CHECK_STR(json_get_string(req, "path"), "/contacts/c5/tasks");
            CHECK_STR(json_get_string(entry, "parent_resource"), "contact");
            CHECK_STR(json_get_string(entry, "parent_id"), "c5");
            CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(entry, "touches_parent")));
        } else { /* the contact itself: no parent */
            CHECK_STR(json_get_string(entry, "target_id"), "c5");
            CHECK(cJSON_GetObjectItemCaseSensitive(entry, "parent_id") == NULL);
            CHECK(cJSON_GetObjectItemCaseSensitive(entry, "parent_resource") == NULL);
        }
        CHECK(cJSON_GetObjectItemCaseSensitive(entry, "contact_id") == NULL);
        cJSON_Delete(req);
        cJSON_Delete(entry);
    }
    cJSON_Delete(event);
    config_free(cfg);
    unlink(path);
    free(path);
    free(dir);
}

static void test_echo(void)
{
    struct echo_env env = {0};
    struct ini_errors errs = {0};
    CHECK_INT(catalog_load(SOURCE_ROOT, &config_reserved_keys, &env.cat, &errs), 0);
    ini_errors_print(&errs, stderr);
    ini_errors_free(&errs);
    char *dir = test_tmp_path("test_sinks", "echo");
    test_rm_store(dir);
    CHECK_INT(store_open(dir, NULL, &env.store), 0);
    if (env.cat != NULL && env.store != NULL) {
        test_echo_derived_and_lists(&env);
        test_echo_parent(&env);
        test_ghl_render_parent(&env);
    }
    store_close(env.store);
    test_rm_store(dir);
    free(dir);
    catalog_free(env.cat);
}

int main(void)
{
    test_registry();
    test_http_classify();
    test_http_result();
    test_ghl_secret_send();
    test_exec_classify();
    test_echo();
    return test_done("sinks");
}

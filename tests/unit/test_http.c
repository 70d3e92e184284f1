/*
 * test_http: the curl-multi-on-libuv client against tests/unit/http_fixture.py
 * (python3 stdlib server on 127.0.0.1, ephemeral port). Skips (77) only if
 * python3 is missing.
 *
 * Every request checks that its callback runs exactly once and never inside
 * http_send. The fixture counts connections and requests, which proves
 * keep-alive reuse, connection limits and that redirects and rejected
 * requests never reach the network. The test ends with uv_loop_close() == 0.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "http.h"
#include "log.h"
#include "testlib.h"
#include "util.h"

#ifndef SOURCE_ROOT
#define SOURCE_ROOT "."
#endif

extern char **environ;

#define MIB ((size_t)1 << 20)

/* ---- fixture process ---- */

static pid_t fx_pid = -1;
static int fx_stdin = -1;
static int fx_port;

static bool find_python(char *out, size_t size)
{
    const char *path = getenv("PATH");
    if (path == NULL) {
        path = "/usr/local/bin:/usr/bin:/bin";
    }
    char *copy = xstrdup(path);
    for (char *p = copy; p != NULL && *p != '\0';) {
        char *colon = strchr(p, ':');
        if (colon != NULL) {
            *colon = '\0';
        }
        snprintf(out, size, "%s/python3", *p ? p : ".");
        if (access(out, X_OK) == 0) {
            free(copy);
            return true;
        }
        p = colon ? colon + 1 : NULL;
    }
    free(copy);
    return false;
}

static void set_cloexec_fd(int fd)
{
    fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
}

/* Returns 0, 77 (no python3) or -1. */
static int fixture_start(void)
{
    char py[1024];
    if (!find_python(py, sizeof(py))) {
        return 77;
    }
    char script[1024];
    snprintf(script, sizeof(script), "%s/tests/unit/http_fixture.py", SOURCE_ROOT);
    int in[2];
    int out[2];
    if (pipe(in) != 0 || pipe(out) != 0) {
        return -1;
    }
    set_cloexec_fd(in[0]);
    set_cloexec_fd(in[1]);
    set_cloexec_fd(out[0]);
    set_cloexec_fd(out[1]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    char *argv[] = {py, script, NULL};
    int rc = posix_spawn(&fx_pid, py, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    if (rc != 0) {
        close(in[1]);
        close(out[0]);
        return rc == ENOENT ? 77 : -1;
    }
    fx_stdin = in[1];

    char line[64];
    size_t n = 0;
    while (n < sizeof(line) - 1) {
        struct pollfd pfd = {out[0], POLLIN, 0};
        if (poll(&pfd, 1, 15000) <= 0) {
            break;
        }
        ssize_t r = read(out[0], line + n, 1);
        if (r <= 0 || line[n] == '\n') {
            break;
        }
        n++;
    }
    line[n] = '\0';
    close(out[0]);
    if (sscanf(line, "PORT %d", &fx_port) != 1) {
        fprintf(stderr, "fixture did not report a port: '%s'\n", line);
        return -1;
    }
    return 0;
}

static void fixture_stop(void)
{
    if (fx_stdin >= 0) {
        close(fx_stdin); /* EOF on its stdin: the fixture exits */
        fx_stdin = -1;
    }
    if (fx_pid > 0) {
        int st;
        waitpid(fx_pid, &st, 0);
        fx_pid = -1;
    }
}

/* ---- loop helpers ---- */

static uv_loop_t loop;
static uv_timer_t guard;
static bool guard_fired;

static void on_guard(uv_timer_t *t)
{
    guard_fired = true;
}

/* Runs the loop until *counter >= want or max_ms pass. */
static bool run_until(const int *counter, int want, uint64_t max_ms)
{
    guard_fired = false;
    uv_timer_start(&guard, on_guard, max_ms, 0);
    while (*counter < want && !guard_fired) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&guard);
    return *counter >= want;
}

static void run_for(uint64_t ms)
{
    int never = 0;
    run_until(&never, 1, ms);
}

static const char *url_for(const char *path)
{
    static char url[9000];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fx_port, path);
    return url;
}

/* ---- results ---- */

struct result {
    int calls;
    int order;
    bool reentered;
    long status;
    int error;
    char text[256];
    char *body;
    size_t body_len;
    struct http_captured captured[HTTP_CAPTURE_MAX];
    long retry_after;
    char location[512];
    uint64_t elapsed;
};

static int seq;
static bool in_callback;
/* test_body_reuse: on_done copies the body and leaves the buffer to the client
 * (as the poller does), noting where it was. */
static bool leave_body;
static const char *left_at;

static void on_done(struct http_response *r, void *ud)
{
    struct result *res = ud;
    res->reentered = res->reentered || in_callback;
    in_callback = true;
    res->calls++;
    res->order = ++seq;
    res->status = r->status;
    res->error = r->error;
    str_copy(res->text, sizeof(res->text), r->error_text);
    free(res->body);
    if (leave_body) {
        left_at = r->body.data;
        res->body_len = r->body.len;
        res->body = xmalloc(r->body.len + 1);
        memcpy(res->body, r->body.data != NULL ? r->body.data : "", r->body.len + 1);
    } else {
        res->body = buf_steal(&r->body, &res->body_len);
    }
    memcpy(res->captured, r->captured, sizeof(res->captured));
    res->retry_after = r->retry_after_s;
    str_copy(res->location, sizeof(res->location), r->location);
    res->elapsed = r->elapsed_ms;
    in_callback = false;
    /* UV_RUN_ONCE blocks in poll after running due timers; stop it so
     * run_until sees the change now (harmless for other loops' results). */
    uv_stop(&loop);
}

static void result_clear(struct result *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* Response headers the next request() asks to capture (then reset to none). */
static const char *const *capture_next;
/* The next request() goes on a new connection (then reset to false). */
static bool fresh_next;

/* Sends one request and runs the loop until its callback ran. */
static int request(struct http_client *c, const char *method, const char *url,
                   const char *const *headers, const char *body, const char *ct,
                   struct result *res)
{
    result_clear(res);
    struct http_request req = {
        .method = method,
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .content_type = ct,
        .log_tag = "test",
        .capture_headers = capture_next,
        .fresh_connection = fresh_next,
    };
    capture_next = NULL;
    fresh_next = false;
    int rc = http_send(c, &req, on_done, res, NULL);
    CHECK_INT(res->calls, 0); /* never synchronous */
    run_until(&res->calls, 1, 30000);
    CHECK_INT(res->calls, 1);
    CHECK(!res->reentered);
    return rc;
}

static long json_long(const char *doc, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof(pat), "\"%s\": ", key);
    const char *p = doc ? strstr(doc, pat) : NULL;
    return p ? strtol(p + strlen(pat), NULL, 10) : -1;
}

struct fx_stats {
    long connections;
    long requests;
    long path_count;
};

static struct fx_stats fixture_stats(struct http_client *c, bool reset, const char *path)
{
    struct result r = {0};
    request(c, "GET", url_for(reset ? "/stats?reset=1" : "/stats"), NULL, NULL, NULL, &r);
    struct fx_stats st = {json_long(r.body, "connections"), json_long(r.body, "requests"),
                          path ? json_long(r.body, path) : -1};
    if (st.path_count < 0) {
        st.path_count = 0;
    }
    result_clear(&r);
    return st;
}

/* ---- tests ---- */

static void test_roundtrips(struct http_client *c)
{
    static const char *const std_headers[] = {"X-Trace: t-123", "Accept: application/json",
                                              "Authorization: Bearer tok_CANARY_x", NULL};
    static const char *const ct_header[] = {"Content-Type: application/vnd.test+json", NULL};
    static const struct {
        const char *name;
        const char *method;
        const char *host;          /* NULL: 127.0.0.1 */
        const char *path;
        const char *body;
        const char *content_type;
        const char *const *headers;
        const char *want_ct;       /* Content-Type the server saw, NULL: none */
        bool want_len0;            /* Content-Length: 0 sent */
    } rows[] = {
        {"GET", "GET", NULL, "/echo?a=1&b=two", NULL, NULL, std_headers, NULL, false},
        {"POST json", "POST", NULL, "/echo?p=1", "[1,2,3]", NULL, std_headers, "application/json",
         false},
        {"PUT text", "PUT", NULL, "/echo?u=2", "put-body", "text/plain", std_headers, "text/plain",
         false},
        {"DELETE with body", "DELETE", NULL, "/echo?id=42", "[42]", NULL, std_headers,
         "application/json", false},
        {"PATCH", "PATCH", NULL, "/echo?x=3", "[7]", NULL, std_headers, "application/json", false},
        {"POST empty", "POST", NULL, "/echo?e=1", NULL, NULL, std_headers, NULL, true},
        {"PUT empty", "PUT", NULL, "/echo?e=2", NULL, NULL, std_headers, NULL, true},
        {"DELETE empty", "DELETE", NULL, "/echo?d=1", NULL, NULL, std_headers, NULL, false},
        {"caller content type wins", "POST", NULL, "/echo?c=1", "[1]", NULL, ct_header,
         "application/vnd.test+json", false},
        {"localhost is loopback", "GET", "localhost", "/echo?h=1", NULL, NULL, NULL, NULL, false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        char url[512];
        snprintf(url, sizeof(url), "http://%s:%d%s", rows[i].host ? rows[i].host : "127.0.0.1",
                 fx_port, rows[i].path);
        struct result r = {0};
        int rc = request(c, rows[i].method, url, rows[i].headers, rows[i].body,
                         rows[i].content_type, &r);
        if (r.status != 200 || r.error != 0) {
            fprintf(stderr, "row %s: status %ld error %d (%s)\n", rows[i].name, r.status, r.error,
                    r.text);
        }
        CHECK_INT(rc, 0);
        CHECK_INT(r.status, 200);
        CHECK_INT(r.error, 0);
        CHECK(r.body != NULL);
        const char *b = r.body ? r.body : "";
        char want[512];
        snprintf(want, sizeof(want), "\"method\": \"%s\"", rows[i].method);
        CHECK(strstr(b, want) != NULL);
        snprintf(want, sizeof(want), "\"path\": \"%s\"", rows[i].path);
        CHECK(strstr(b, want) != NULL);
        snprintf(want, sizeof(want), "\"body\": \"%s\"", rows[i].body ? rows[i].body : "");
        CHECK(strstr(b, want) != NULL);
        if (rows[i].headers == std_headers) {
            CHECK(strstr(b, "[\"X-Trace\", \"t-123\"]") != NULL);
            CHECK(strstr(b, "[\"Authorization\", \"Bearer tok_CANARY_x\"]") != NULL);
        }
        if (rows[i].want_ct != NULL) {
            snprintf(want, sizeof(want), "[\"Content-Type\", \"%s\"]", rows[i].want_ct);
            CHECK(strstr(b, want) != NULL);
            /* Exactly one Content-Type. */
            const char *first = strstr(b, "\"Content-Type\"");
            CHECK(first != NULL && strstr(first + 1, "\"Content-Type\"") == NULL);
        } else {
            CHECK(strstr(b, "\"Content-Type\"") == NULL);
        }
        if (rows[i].want_len0) {
            CHECK(strstr(b, "[\"Content-Length\", \"0\"]") != NULL);
        }
        CHECK(strstr(b, "[\"User-Agent\", \"pollen/") != NULL);
        CHECK(strstr(b, "\"Expect\"") == NULL);
        CHECK(strstr(b, "\"Accept-Encoding\"") != NULL);
        result_clear(&r);
    }
}

/* Captured response headers (ghl/api reads X-RateLimit-* from them): names match in any
 * case, values are trimmed, an absent header or one not asked for stays absent. */
static void test_captured_headers(struct http_client *c)
{
    static const char *const names[] = {
        "X-RateLimit-Limit-Daily", "X-RateLimit-Daily-Remaining",
        "X-RateLimit-Interval-Milliseconds", "X-RateLimit-Max", "X-RateLimit-Remaining",
        "X-Not-Sent", NULL,
    };
    static const char *const want[] = {"200000", "199990", "10000", "100", "97"};
    struct result r = {0};
    capture_next = names;
    request(c, "GET", url_for("/ratelimit"), NULL, NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        CHECK(r.captured[i].present);
        CHECK_STR(r.captured[i].value, want[i]);
    }
    CHECK(!r.captured[5].present);
    CHECK_STR(r.captured[5].value, "");
    CHECK_INT(r.retry_after, 0);

    capture_next = names;
    request(c, "GET", url_for("/echo"), NULL, NULL, NULL, &r);
    for (size_t i = 0; i < HTTP_CAPTURE_MAX; i++) {
        CHECK(!r.captured[i].present);
    }
    /* Not asked for: not kept. */
    request(c, "GET", url_for("/ratelimit"), NULL, NULL, NULL, &r);
    CHECK(!r.captured[0].present);
    /* More names than HTTP_CAPTURE_MAX: refused before anything is sent. */
    static const char *const too_many[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", NULL};
    capture_next = too_many;
    CHECK_INT(request(c, "GET", url_for("/echo"), NULL, NULL, NULL, &r), -EINVAL);
    CHECK_INT(r.error, HTTP_E_OTHER);
    result_clear(&r);

    static const struct {
        const char *path;
        long want_status;
        long want_retry;
    } rows[] = {
        {"/status?code=429&retry_after=7", 429, 7},
        {"/status?code=429&retry_after=0", 429, 1},
        {"/status?code=429&retry_after=99999", 429, 3600},
        {"/status?code=429&retry_after=Wed,%2021%20Oct%202015%2007:28:00%20GMT", 429, 1},
        {"/status?code=429", 429, 0},
        {"/status?code=503&retry_after=5", 503, 5},
        {"/status?code=404", 404, 0},
        {"/status?code=200", 200, 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        request(c, "GET", url_for(rows[i].path), NULL, NULL, NULL, &r);
        if (r.retry_after != rows[i].want_retry) {
            fprintf(stderr, "row %s\n", rows[i].path);
        }
        CHECK_INT(r.status, rows[i].want_status);
        CHECK_INT(r.error, 0); /* HTTP errors are not transport errors */
        CHECK_INT(r.retry_after, rows[i].want_retry);
        result_clear(&r);
    }
}

static void test_body_cap(struct http_client *c)
{
    static const struct {
        const char *path;
        int want_error;
        size_t want_len;   /* exact length on success */
        bool zeros;
    } rows[] = {
        {"/big?n=2097152", HTTP_E_TOO_BIG, 0, false},        /* Content-Length over the cap */
        {"/chunked?n=2097152", HTTP_E_TOO_BIG, 0, false},    /* no Content-Length */
        {"/gzip?n=67108864", HTTP_E_TOO_BIG, 0, false},      /* 64 MiB gzip bomb */
        {"/big?n=1048576", 0, 1048576, false},               /* exactly the cap */
        {"/chunked?n=300000", 0, 300000, false},
        {"/gzip?n=100000", 0, 100000, true},                 /* decoded transparently */
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct result r = {0};
        request(c, "GET", url_for(rows[i].path), NULL, NULL, NULL, &r);
        if (r.error != rows[i].want_error) {
            fprintf(stderr, "row %s: error %d (%s)\n", rows[i].path, r.error, r.text);
        }
        CHECK_INT(r.error, rows[i].want_error);
        CHECK_INT(r.status, 200);
        CHECK(r.body_len <= MIB);
        if (rows[i].want_error == 0) {
            CHECK_INT(r.body_len, rows[i].want_len);
        } else {
            CHECK_INT(r.body_len, 0); /* a failed transfer's prefix is dropped, not handed on */
        }
        if (rows[i].zeros) {
            size_t nonzero = 0;
            for (size_t k = 0; k < r.body_len; k++) {
                nonzero += r.body[k] != 0;
            }
            CHECK_INT(nonzero, 0);
        }
        result_clear(&r);
    }
}

/*
 * A delivered body's buffer (up to 1 MiB) serves the next response, so a
 * poll's same-size pages do not each map and fault in a fresh one; the
 * reused buffer holds exactly the new body (NUL-terminated, nothing stale).
 */
static void test_body_reuse(struct http_client *c)
{
    leave_body = true;
    struct result r = {0};
    request(c, "GET", url_for("/chunked?n=300000"), NULL, NULL, NULL, &r);
    CHECK_INT(r.body_len, 300000);
    const char *first = left_at;
    request(c, "GET", url_for("/chunked?n=10"), NULL, NULL, NULL, &r);
    CHECK(left_at == first);
    CHECK_INT(r.body_len, 10);
    CHECK_INT(r.body[10], '\0');
    request(c, "GET", url_for("/chunked?n=300000"), NULL, NULL, NULL, &r);
    CHECK(left_at == first);
    CHECK_INT(r.body_len, 300000);
    result_clear(&r);
    leave_body = false;
}

static void test_redirect(struct http_client *c)
{
    fixture_stats(c, true, NULL);
    static const char *const targets[] = {"file:///etc/passwd", "https://other.example/next",
                                          "http://127.0.0.1:1/echo"};
    for (size_t i = 0; i < ARRAY_SIZE(targets); i++) {
        char path[256];
        snprintf(path, sizeof(path), "/redirect?to=%s", targets[i]);
        struct result r = {0};
        request(c, "GET", url_for(path), NULL, NULL, NULL, &r);
        CHECK_INT(r.status, 302);
        CHECK_INT(r.error, HTTP_E_REDIRECT);
        CHECK_STR(r.location, targets[i]);
        CHECK(strstr(r.text, targets[i]) != NULL);
        result_clear(&r);
    }
    struct fx_stats st = fixture_stats(c, false, "/redirect");
    CHECK_INT(st.requests, 3);   /* nothing followed */
    CHECK_INT(st.path_count, 3);
}

static void test_transport_errors(struct http_client *main_client)
{
    /* Total timeout. */
    struct http_client_options o = {.timeout_ms = 300, .allow_plain_http_loopback = true};
    struct http_client *c = http_client_create(&loop, &o);
    struct result r = {0};
    request(c, "GET", url_for("/sleep?ms=3000"), NULL, NULL, NULL, &r);
    CHECK_INT(r.error, HTTP_E_TIMEOUT);
    CHECK_INT(r.status, 0);
    CHECK(r.elapsed >= 250 && r.elapsed < 2500);
    http_client_close(c, NULL, NULL);
    run_for(50);

    /* Low-speed limit: 1000 B/s for 1 s against a 5 B/s drip. */
    struct http_client_options slow = {.low_speed_limit = 1000, .low_speed_time_s = 1,
                                       .allow_plain_http_loopback = true};
    c = http_client_create(&loop, &slow);
    request(c, "GET", url_for("/drip?n=60&ms=200"), NULL, NULL, NULL, &r);
    CHECK_INT(r.error, HTTP_E_TIMEOUT);
    CHECK_INT(r.status, 200);
    CHECK(r.elapsed >= 900 && r.elapsed < 6000);
    http_client_close(c, NULL, NULL);
    run_for(50);

    /* Connection reset mid-body. */
    request(main_client, "GET", url_for("/reset"), NULL, NULL, NULL, &r);
    if (r.error != HTTP_E_PROTOCOL) {
        fprintf(stderr, "reset: error %d (%s)\n", r.error, r.text);
    }
    CHECK_INT(r.error, HTTP_E_PROTOCOL);
    CHECK_INT(r.status, 200);

    /* Connection refused: a port that was just free. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t slen = sizeof(sa);
    CHECK_INT(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    CHECK_INT(getsockname(s, (struct sockaddr *)&sa, &slen), 0);
    close(s);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", ntohs(sa.sin_port));
    request(main_client, "GET", url, NULL, NULL, NULL, &r);
    CHECK_INT(r.error, HTTP_E_CONNECT);
    CHECK_INT(r.status, 0);
    CHECK(r.text[0] != '\0');
    result_clear(&r);
}

/*
 * A server that reads a request and dies without answering, on a reused
 * keep-alive connection: libcurl silently sends the request again on a new
 * connection (so a create may run twice, and the caller's attempt count
 * never knows). With fresh_connection the request is sent exactly once and
 * the caller sees the transport error, to retry as its own attempt 2.
 */
static void test_fresh_connection(struct http_client *c)
{
    struct result r = {0};
    for (int fresh = 0; fresh <= 1; fresh++) {
        fixture_stats(c, true, NULL); /* also leaves a kept-alive connection */
        request(c, "GET", url_for("/echo"), NULL, NULL, NULL, &r);
        CHECK_INT(r.status, 200);
        fresh_next = fresh == 1;
        request(c, "POST", url_for("/vanish"), NULL, "{\"n\":1}", NULL, &r);
        CHECK(r.error != 0);
        struct fx_stats st = fixture_stats(c, false, "/vanish");
        CHECK_INT(st.path_count, fresh ? 1 : 2);
    }
    result_clear(&r);
}

static void test_concurrent_and_keepalive(struct http_client *c)
{
    enum { N = 50 };
    static struct result res[N];
    fixture_stats(c, true, NULL);
    int total = 0;
    for (int i = 0; i < N; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/echo?i=%d", i);
        struct http_request req = {.method = "GET", .url = url_for(path), .log_tag = "test"};
        CHECK_INT(http_send(c, &req, on_done, &res[i], NULL), 0);
    }
    CHECK_INT(http_in_flight(c), N);
    guard_fired = false;
    uv_timer_start(&guard, on_guard, 30000, 0);
    for (;;) {
        total = 0;
        for (int i = 0; i < N; i++) {
            total += res[i].calls;
        }
        if (total >= N || guard_fired) {
            break;
        }
        uv_run(&loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&guard);
    CHECK_INT(total, N);
    CHECK_INT(http_in_flight(c), 0);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof(want), "\"path\": \"/echo?i=%d\"", i);
        if (res[i].calls != 1 || res[i].status != 200 || res[i].body == NULL ||
            strstr(res[i].body, want) == NULL) {
            bad++;
        }
        result_clear(&res[i]);
    }
    CHECK_INT(bad, 0);
    struct fx_stats st = fixture_stats(c, true, NULL);
    CHECK_INT(st.requests, N);
    CHECK(st.connections <= 4); /* max_host_connections */

    /* Sequential requests reuse one cached connection. */
    for (int i = 0; i < 20; i++) {
        struct result r = {0};
        request(c, "GET", url_for("/echo?seq=1"), NULL, NULL, NULL, &r);
        CHECK_INT(r.status, 200);
        result_clear(&r);
    }
    st = fixture_stats(c, false, NULL);
    CHECK_INT(st.requests, 20);
    CHECK(st.connections <= 1);
    CHECK(st.connections < st.requests);
}

struct chain {
    struct http_client *c;
    int done;
    int ok;
    bool in_cb;
    bool reentered;
};

static void on_chain(struct http_response *r, void *ud)
{
    struct chain *ch = ud;
    ch->reentered = ch->reentered || ch->in_cb;
    ch->in_cb = true;
    ch->done++;
    ch->ok += r->status == 200;
    if (ch->done < 5) {
        /* Sending from a completion callback is allowed and deferred. */
        struct http_request req = {.method = "POST", .url = url_for("/echo?chain=1"),
                                   .body = "[1]", .body_len = 3};
        CHECK_INT(http_send(ch->c, &req, on_chain, ch, NULL), 0);
    }
    ch->in_cb = false;
    uv_stop(&loop);
}

static void test_reentrant(struct http_client *c)
{
    struct chain ch = {.c = c};
    struct http_request req = {.method = "GET", .url = url_for("/echo?chain=0")};
    CHECK_INT(http_send(c, &req, on_chain, &ch, NULL), 0);
    run_until(&ch.done, 5, 30000);
    CHECK_INT(ch.done, 5);
    CHECK_INT(ch.ok, 5);
    CHECK(!ch.reentered);
    run_for(50);
    CHECK_INT(ch.done, 5);
}

static void test_invalid(struct http_client *c, struct http_client *strict)
{
    static const char *const crlf[] = {"X-Evil: a\r\nInjected: 1", NULL};
    static const char *const lf[] = {"X-Evil: a\nInjected: 1", NULL};
    static const char *const cr[] = {"X-Evil: a\rb", NULL};
    static const char *const nocolon[] = {"NoColonHere", NULL};
    static const char *const noname[] = {": value", NULL};
    static const char *const spacename[] = {"Bad Name: value", NULL};
    static const char *many[70];
    for (size_t i = 0; i < 69; i++) {
        many[i] = "X-Many: 1";
    }
    many[69] = NULL;
    static char longurl[9100];
    memset(longurl, 'a', sizeof(longurl) - 1);
    memcpy(longurl, "http://127.0.0.1/", 17);
    static char bigbody[MIB + 2];
    memset(bigbody, 'b', sizeof(bigbody) - 1);

    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", fx_port);
    const struct {
        const char *name;
        struct http_client *client;
        const char *method;
        const char *url;
        const char *const *headers;
        const char *body;
        int want_error;
    } rows[] = {
        {"CRLF in header", c, "GET", url, crlf, NULL, HTTP_E_OTHER},
        {"LF in header", c, "GET", url, lf, NULL, HTTP_E_OTHER},
        {"CR in header", c, "GET", url, cr, NULL, HTTP_E_OTHER},
        {"header without colon", c, "GET", url, nocolon, NULL, HTTP_E_OTHER},
        {"header without name", c, "GET", url, noname, NULL, HTTP_E_OTHER},
        {"space in header name", c, "GET", url, spacename, NULL, HTTP_E_OTHER},
        {"too many headers", c, "GET", url, many, NULL, HTTP_E_OTHER},
        {"method TRACE", c, "TRACE", url, NULL, NULL, HTTP_E_OTHER},
        {"method lower case", c, "get", url, NULL, NULL, HTTP_E_OTHER},
        {"over-long URL", c, "GET", longurl, NULL, NULL, HTTP_E_OTHER},
        {"not a URL", c, "GET", "::::", NULL, NULL, HTTP_E_OTHER},
        {"plain http off loopback", c, "GET", "http://example.com/", NULL, NULL, HTTP_E_PROTOCOL},
        {"ftp", c, "GET", "ftp://127.0.0.1/x", NULL, NULL, HTTP_E_PROTOCOL},
        {"file", c, "GET", "file:///etc/passwd", NULL, NULL, HTTP_E_PROTOCOL},
        {"plain http not allowed", strict, "GET", url, NULL, NULL, HTTP_E_PROTOCOL},
        {"body over max_body", c, "POST", url, NULL, bigbody, HTTP_E_TOO_BIG},
    };
    fixture_stats(c, true, NULL);
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        struct result r = {0};
        struct http_transfer *t = (struct http_transfer *)&r; /* must be reset to NULL */
        struct http_request req = {
            .method = rows[i].method,
            .url = rows[i].url,
            .headers = rows[i].headers,
            .body = rows[i].body,
            .body_len = rows[i].body ? strlen(rows[i].body) : 0,
        };
        int rc = http_send(rows[i].client, &req, on_done, &r, &t);
        CHECK_INT(r.calls, 0);
        run_until(&r.calls, 1, 5000);
        if (rc != -EINVAL || r.error != rows[i].want_error) {
            fprintf(stderr, "row %s: rc %d, error %d (%s)\n", rows[i].name, rc, r.error, r.text);
        }
        CHECK_INT(rc, -EINVAL);
        CHECK(t == NULL);
        CHECK_INT(r.calls, 1);
        CHECK_INT(r.error, rows[i].want_error);
        CHECK_INT(r.status, 0);
        /* The rejected header (which could hold a token) is not echoed. */
        CHECK(strstr(r.text, "Injected") == NULL);
        result_clear(&r);
    }
    struct fx_stats st = fixture_stats(c, false, NULL);
    CHECK_INT(st.requests, 0);
}

static void on_cancel_timer(uv_timer_t *timer)
{
    http_cancel(timer->data);
}

static void test_cancel(struct http_client *c)
{
    fixture_stats(c, true, NULL);

    /* Cancelled before it reached curl: no request at all. */
    struct result r = {0};
    struct http_transfer *t = NULL;
    struct http_request req = {.method = "GET", .url = url_for("/sleep?ms=2000")};
    CHECK_INT(http_send(c, &req, on_done, &r, &t), 0);
    CHECK(t != NULL);
    http_cancel(t);
    http_cancel(t); /* twice: still one callback */
    CHECK_INT(r.calls, 0);
    run_until(&r.calls, 1, 5000);
    run_for(30);
    CHECK_INT(r.calls, 1);
    CHECK_INT(r.error, HTTP_E_CANCELLED);
    result_clear(&r);

    /* Cancelled while the server is sleeping on it. */
    CHECK_INT(http_send(c, &req, on_done, &r, &t), 0);
    uv_timer_t ct;
    uv_timer_init(&loop, &ct);
    ct.data = t;
    uv_timer_start(&ct, on_cancel_timer, 200, 0);
    run_until(&r.calls, 1, 5000);
    run_for(30);
    CHECK_INT(r.calls, 1);
    CHECK_INT(r.error, HTTP_E_CANCELLED);
    CHECK(r.elapsed >= 150 && r.elapsed < 1500);
    uv_close((uv_handle_t *)&ct, NULL);
    run_for(10);
    result_clear(&r);

    struct fx_stats st = fixture_stats(c, false, "/sleep");
    CHECK_INT(st.path_count, 1); /* only the second one reached the server */
    CHECK_INT(http_in_flight(c), 0);
}

/* Every socket in the process must be close-on-exec: curl's connections (via
 * SOCKOPTFUNCTION) and the multi's wake-up socketpair. */
static void count_sockets(int *total, int *leaky)
{
    *total = 0;
    *leaky = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || fd == dirfd(d) || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
            continue;
        }
        (*total)++;
        if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC)) {
            (*leaky)++;
        }
    }
    closedir(d);
}

static void test_cloexec(struct http_client *c)
{
    int total;
    int leaky;
    /* While a transfer is active ... */
    struct result r = {0};
    struct http_request req = {.method = "GET", .url = url_for("/sleep?ms=400")};
    CHECK_INT(http_send(c, &req, on_done, &r, NULL), 0);
    run_for(150);
    count_sockets(&total, &leaky);
    CHECK(total >= 3); /* the transfer's socket + the multi's socketpair */
    CHECK_INT(leaky, 0);
    run_until(&r.calls, 1, 5000);
    CHECK_INT(r.status, 200);
    result_clear(&r);
    /* ... and with the connection idle in curl's cache. */
    count_sockets(&total, &leaky);
    CHECK(total >= 3);
    CHECK_INT(leaky, 0);
}

/* ---- closing ---- */

struct close_probe {
    struct http_client *c;
    int closed;
    int closed_order;
    int resend_rc;
    struct result resent;
    bool resend_done;
};

static void on_closed(void *ud)
{
    struct close_probe *p = ud;
    p->closed++;
    p->closed_order = ++seq;
    uv_stop(&loop);
}

static void on_done_resend(struct http_response *r, void *ud)
{
    struct close_probe *p = ud;
    /* A request sent while closing fails, still through its callback. */
    struct http_request req = {.method = "GET", .url = url_for("/echo?late=1")};
    p->resend_rc = http_send(p->c, &req, on_done, &p->resent, NULL);
    p->resend_done = true;
    CHECK_INT(r->error, HTTP_E_CANCELLED);
}

static void test_close_in_flight(void)
{
    struct http_client_options o = {.allow_plain_http_loopback = true};
    struct close_probe p = {0};
    p.c = http_client_create(&loop, &o);
    CHECK(p.c != NULL);
    enum { N = 5 };
    static struct result res[N];
    for (int i = 0; i < N; i++) {
        struct http_request req = {.method = "GET", .url = url_for("/sleep?ms=5000")};
        CHECK_INT(http_send(p.c, &req, on_done, &res[i], NULL), 0);
    }
    struct http_request req = {.method = "GET", .url = url_for("/sleep?ms=5000")};
    CHECK_INT(http_send(p.c, &req, on_done_resend, &p, NULL), 0);
    run_for(200);
    CHECK_INT(http_in_flight(p.c), N + 1);

    http_client_close(p.c, on_closed, &p);
    http_client_close(p.c, on_closed, &p); /* second call is a no-op */
    CHECK_INT(p.closed, 0);                /* deferred */
    CHECK_INT(res[0].calls, 0);
    run_until(&p.closed, 1, 10000);
    CHECK_INT(p.closed, 1);
    for (int i = 0; i < N; i++) {
        CHECK_INT(res[i].calls, 1);
        CHECK_INT(res[i].error, HTTP_E_CANCELLED);
        CHECK(res[i].order < p.closed_order);
        result_clear(&res[i]);
    }
    CHECK(p.resend_done);
    CHECK_INT(p.resend_rc, -ESHUTDOWN);
    CHECK_INT(p.resent.calls, 1);
    CHECK_INT(p.resent.error, HTTP_E_CANCELLED);
    CHECK(p.resent.order < p.closed_order);
    result_clear(&p.resent);
    run_for(20);
    CHECK_INT(p.closed, 1);
}

struct close_from_cb {
    struct http_client *c;
    struct close_probe probe;
    int calls;
};

static void on_done_close(struct http_response *r, void *ud)
{
    struct close_from_cb *x = ud;
    x->calls++;
    CHECK_INT(r->status, 200);
    http_client_close(x->c, on_closed, &x->probe);
}

/* Close from a completion callback, on a loop of its own that must close. */
static void test_close_from_callback(void)
{
    uv_loop_t l2;
    CHECK_INT(uv_loop_init(&l2), 0);
    struct http_client_options o = {.allow_plain_http_loopback = true};
    struct close_from_cb x = {0};
    x.c = http_client_create(&l2, &o);
    struct result slow = {0};
    struct http_request req = {.method = "GET", .url = url_for("/sleep?ms=5000")};
    CHECK_INT(http_send(x.c, &req, on_done, &slow, NULL), 0);
    req.url = url_for("/echo?close=1");
    CHECK_INT(http_send(x.c, &req, on_done_close, &x, NULL), 0);
    while (x.probe.closed == 0) {
        if (uv_run(&l2, UV_RUN_ONCE) == 0 && x.probe.closed == 0) {
            break;
        }
    }
    CHECK_INT(x.calls, 1);
    CHECK_INT(x.probe.closed, 1);
    CHECK_INT(slow.calls, 1);
    CHECK_INT(slow.error, HTTP_E_CANCELLED);
    result_clear(&slow);
    uv_run(&l2, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&l2), 0);

    /* Create and close at once, nothing sent. */
    CHECK_INT(uv_loop_init(&l2), 0);
    struct close_probe p = {0};
    struct http_client *c = http_client_create(&l2, NULL);
    CHECK(c != NULL);
    CHECK_INT(http_in_flight(c), 0);
    http_client_close(c, on_closed, &p);
    uv_run(&l2, UV_RUN_DEFAULT);
    CHECK_INT(p.closed, 1);
    CHECK_INT(uv_loop_close(&l2), 0);
}

/* What a callback saw of the body buffer, without taking it (the usual case:
 * the poller parses the page inside its callback). */
struct peek {
    int calls;
    int error;
    const char *data;          /* where the body lay (compared, never dereferenced later) */
    size_t cap;
    size_t len;
    char fill;                 /* the only byte the body holds, 0 if mixed or empty */
    bool terminated;           /* data[len] == '\0' */
    bool steal;                /* take the body (buf_steal) instead */
};

static void on_peek(struct http_response *r, void *ud)
{
    struct peek *pk = ud;
    pk->calls++;
    pk->error = r->error;
    pk->data = r->body.data;
    pk->cap = r->body.cap;
    pk->len = r->body.len;
    pk->fill = r->body.len > 0 ? r->body.data[0] : 0;
    for (size_t i = 0; i < r->body.len; i++) {
        if (r->body.data[i] != pk->fill) {
            pk->fill = 0;
            break;
        }
    }
    pk->terminated = r->body.data == NULL || r->body.data[r->body.len] == '\0';
    if (pk->steal) {
        size_t n;
        free(buf_steal(&r->body, &n));
    }
    uv_stop(&loop);
}

static struct peek peek(struct http_client *c, const char *path, bool steal)
{
    struct peek pk = {.steal = steal};
    struct http_request req = {.method = "GET", .url = url_for(path), .log_tag = "test"};
    http_send(c, &req, on_peek, &pk, NULL);
    run_until(&pk.calls, 1, 30000);
    CHECK_INT(pk.calls, 1);
    CHECK(pk.terminated);
    return pk;
}

/* buf_reserve sizes once and never past max; doubling stops at max + 1. */
static void test_buf_reserve(void)
{
    struct buf b;
    buf_init(&b, 100);
    CHECK_INT(buf_reserve(&b, 101), -EFBIG);
    CHECK(b.data == NULL && b.cap == 0 && !b.too_big);
    CHECK_INT(buf_reserve(&b, 50), 0);
    CHECK_INT(b.cap, 51);
    CHECK_STR(b.data, "");
    const char *at = b.data;
    char fifty[50];
    memset(fifty, 'x', sizeof(fifty));
    CHECK_INT(buf_append(&b, fifty, sizeof(fifty)), 0);
    CHECK(b.data == at); /* the reserved room took it without a reallocation */
    CHECK_INT(buf_reserve(&b, 10), 0);
    CHECK_INT(b.cap, 51); /* never shrinks */
    buf_finish(&b);

    buf_init(&b, 1000);
    char big[600];
    memset(big, 'y', sizeof(big));
    CHECK_INT(buf_append(&b, big, sizeof(big)), 0);
    CHECK_INT(b.cap, 1001); /* 256, 512, then max + 1, not 1024 */
    CHECK_INT(buf_append(&b, big, 400), 0);
    CHECK_INT(buf_append(&b, big, 1), -EFBIG);
    buf_finish(&b);
}

/* The response buffer: sized from Content-Length (never past the cap), grown
 * by doubling without one, reused from response to response with correct
 * bodies, handed over by buf_steal, and not kept when over 2 MiB. */
static void test_body_buffers(void)
{
    struct http_client_options o = {.max_body = MIB, .allow_plain_http_loopback = true};
    struct http_client *c = http_client_create(&loop, &o);
    CHECK(c != NULL);
    CHECK_INT(http_spare_bytes(c), 0);

    /* Content-Length 300000: one allocation of it plus an eighth. */
    struct peek a = peek(c, "/big?n=300000", false);
    CHECK_INT(a.error, 0);
    CHECK_INT(a.len, 300000);
    CHECK(a.fill == 'a');
    CHECK_INT(a.cap, 300000 + 300000 / 8 + 1);
    CHECK_INT(http_spare_bytes(c), a.cap); /* kept for the next response */

    /* The next response reuses it as is. */
    struct peek b = peek(c, "/big?n=310000", false);
    CHECK_INT(b.len, 310000);
    CHECK(b.fill == 'a');
    CHECK(b.data == a.data);
    CHECK_INT(b.cap, a.cap);

    /* Chunked, no Content-Length: grows by doubling from there. */
    struct peek ch = peek(c, "/chunked?n=500000", false);
    CHECK_INT(ch.error, 0);
    CHECK_INT(ch.len, 500000);
    CHECK(ch.fill == 'c');
    CHECK_INT(ch.cap, 2 * a.cap);

    /* A short body in the big buffer: no shrink, no stale bytes. */
    struct peek s = peek(c, "/big?n=10", false);
    CHECK_INT(s.len, 10);
    CHECK(s.fill == 'a');
    CHECK(s.data == ch.data);
    CHECK_INT(http_spare_bytes(c), ch.cap);

    /* A Content-Length over the cap reserves nothing and fails the transfer. */
    struct peek lie = peek(c, "/lie?cl=2097152&n=10", false);
    CHECK_INT(lie.error, HTTP_E_TOO_BIG);
    CHECK_INT(lie.len, 0);
    CHECK_INT(http_spare_bytes(c), ch.cap);

    /* A Content-Length shorter than what is sent: the body is its length. */
    struct peek shorter = peek(c, "/lie?cl=100&n=300", false);
    CHECK_INT(shorter.error, 0);
    CHECK_INT(shorter.len, 100);
    CHECK(shorter.fill == 'l');

    /* One longer than what is sent: a truncated transfer, body dropped, its
     * buffer freed rather than kept. */
    struct peek trunc = peek(c, "/lie?cl=1000&n=10", false);
    CHECK_INT(trunc.error, HTTP_E_PROTOCOL);
    CHECK_INT(trunc.len, 0);
    CHECK_INT(http_spare_bytes(c), 0);

    /* gzip: Content-Length is the compressed size; the buffer grows past it. */
    struct peek gz = peek(c, "/gzip?n=100000", false);
    CHECK_INT(gz.error, 0);
    CHECK_INT(gz.len, 100000);
    CHECK(gz.fill == 0 && gz.cap >= 100001);

    /* buf_steal hands the buffer over: the client keeps nothing of it. */
    size_t kept = http_spare_bytes(c);
    CHECK(kept > 0);
    struct peek st = peek(c, "/big?n=1000", true);
    CHECK_INT(st.len, 1000);
    CHECK_INT(http_spare_bytes(c), 0);

    /* Concurrent responses never share a buffer. */
    struct peek many[3] = {{0}, {0}, {0}};
    static const char *const paths[] = {"/big?n=200000", "/chunked?n=150000", "/lie?cl=5000&n=5000"};
    for (size_t i = 0; i < ARRAY_SIZE(many); i++) {
        struct http_request req = {.method = "GET", .url = url_for(paths[i]), .log_tag = "test"};
        http_send(c, &req, on_peek, &many[i], NULL);
    }
    for (size_t i = 0; i < ARRAY_SIZE(many); i++) {
        run_until(&many[i].calls, 1, 30000);
    }
    CHECK(many[0].len == 200000 && many[0].fill == 'a');
    CHECK(many[1].len == 150000 && many[1].fill == 'c');
    CHECK(many[2].len == 5000 && many[2].fill == 'l');
    CHECK(http_spare_bytes(c) <= 4 * ((size_t)2 << 20));

    struct close_probe p = {0};
    http_client_close(c, on_closed, &p);
    run_until(&p.closed, 1, 5000);
    CHECK_INT(p.closed, 1);

    /* A response over 2 MiB is not kept; a small one after it is. */
    struct http_client_options big = {.max_body = 4 * MIB, .allow_plain_http_loopback = true};
    c = http_client_create(&loop, &big);
    struct peek huge = peek(c, "/big?n=3000000", false);
    CHECK_INT(huge.len, 3000000);
    CHECK_INT(http_spare_bytes(c), 0);
    struct peek small = peek(c, "/big?n=1000", false);
    CHECK_INT(small.len, 1000);
    CHECK_INT(http_spare_bytes(c), 1000 + 1000 / 8 + 1);
    struct close_probe p2 = {0};
    http_client_close(c, on_closed, &p2);
    run_until(&p2.closed, 1, 5000);
    CHECK_INT(p2.closed, 1);
}

static void test_strerror(void)
{
    static const int codes[] = {0,
                                HTTP_E_TIMEOUT,
                                HTTP_E_CONNECT,
                                HTTP_E_TOO_BIG,
                                HTTP_E_REDIRECT,
                                HTTP_E_PROTOCOL,
                                HTTP_E_CANCELLED,
                                HTTP_E_OTHER,
                                -EINVAL,
                                -5000};
    for (size_t i = 0; i < ARRAY_SIZE(codes); i++) {
        const char *s = http_strerror(codes[i]);
        CHECK(s != NULL && s[0] != '\0');
    }
    CHECK_STR(http_strerror(HTTP_E_CANCELLED), "cancelled");
    CHECK(strcmp(http_strerror(HTTP_E_TIMEOUT), http_strerror(HTTP_E_CONNECT)) != 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* Nothing here may go through a proxy. */
    static const char *const proxies[] = {"http_proxy", "HTTP_PROXY", "https_proxy",
                                          "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < ARRAY_SIZE(proxies); i++) {
        unsetenv(proxies[i]);
    }
    test_strerror();

    int rc = fixture_start();
    if (rc == 77) {
        fprintf(stderr, "test_http: python3 not found, skipping\n");
        return 77;
    }
    if (rc != 0) {
        fprintf(stderr, "test_http: cannot start the fixture\n");
        fixture_stop();
        return 99;
    }

    CHECK_INT(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &guard);

    struct http_client_options o = {
        .max_body = MIB,
        .allow_plain_http_loopback = true,
        .max_host_connections = 4,
        .user_agent = NULL,
    };
    struct http_client *c = http_client_create(&loop, &o);
    struct http_client_options so = {.allow_plain_http_loopback = false};
    struct http_client *strict = http_client_create(&loop, &so);
    CHECK(c != NULL && strict != NULL);

    test_roundtrips(c);
    test_captured_headers(c);
    test_body_cap(c);
    test_body_reuse(c);
    test_redirect(c);
    test_transport_errors(c);
    test_fresh_connection(c);
    test_concurrent_and_keepalive(c);
    test_reentrant(c);
    test_invalid(c, strict);
    test_cancel(c);
    test_cloexec(c);
    test_buf_reserve();
    test_body_buffers();
    test_close_in_flight();
    test_close_from_callback();

    struct close_probe p1 = {0};
    struct close_probe p2 = {0};
    http_client_close(c, on_closed, &p1);
    http_client_close(strict, on_closed, &p2);
    run_until(&p1.closed, 1, 5000);
    run_until(&p2.closed, 1, 5000);
    CHECK_INT(p1.closed, 1);
    CHECK_INT(p2.closed, 1);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);

    fixture_stop();
    return test_done("http");
}

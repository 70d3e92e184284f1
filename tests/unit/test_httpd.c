/*
 * test_httpd: the loopback HTTP server on the libuv loop (net/httpd.c),
 * exercised with the project's own libcurl client on the same loop: the
 * handler's status, type and body reach the client, query parameters are
 * decoded, other methods reach the handler, several requests on kept-alive connections,
 * a non-loopback address is refused, a port in use is an error, and a
 * closed server frees everything (the unit suite also runs under valgrind).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <uv.h>

#include "http.h"
#include "httpd.h"
#include "testlib.h"
#include "util.h"

static uv_loop_t loop;
static int handled;

struct got {
    bool done;
    long status;
    int error;
    char body[512];
};

/* Answers /echo with the path and query x; /missing with 404; other methods 405. */
static void handler(const struct httpd_request *req, struct httpd_reply *reply, void *ud)
{
    (void)ud;
    handled++;
    if (strcmp(req->path, "/missing") == 0) {
        reply->status = 404;
        return;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        reply->status = 405;
        return;
    }
    const char *x = httpd_query(req, "x");
    reply->content_type = "application/json";
    reply->body = xasprintf("{\"path\":\"%s\",\"x\":\"%s\"}", req->path, x ? x : "(none)");
    reply->len = strlen(reply->body);
}

static void on_done(struct http_response *r, void *ud)
{
    struct got *g = ud;
    g->done = true;
    g->status = r->status;
    g->error = r->error;
    str_copy(g->body, sizeof(g->body), r->body.data ? r->body.data : "");
}

static void fetch(struct http_client *c, const char *method, unsigned port, const char *target,
                  struct got *g)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, target);
    memset(g, 0, sizeof(*g));
    struct http_request req = {.method = method, .url = url, .log_tag = "test"};
    int rc = http_send(c, &req, on_done, g, NULL);
    CHECK_INT(rc, 0);
    for (int i = 0; rc == 0 && i < 100000 && !g->done; i++) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    CHECK(g->done);
}

static void test_parse_listen(void)
{
    char host[64];
    unsigned port = 1;
    CHECK_INT(httpd_parse_listen("127.0.0.1:9464", host, sizeof(host), &port), 0);
    CHECK_STR(host, "127.0.0.1");
    CHECK_INT(port, 9464);
    CHECK_INT(httpd_parse_listen("localhost:0", host, sizeof(host), &port), 0);
    CHECK_INT(port, 0);
    CHECK_INT(httpd_parse_listen("[::1]:80", host, sizeof(host), &port), 0);
    CHECK_STR(host, "::1");
    const char *bad[] = {"0.0.0.0:9464", "10.0.0.1:80", "127.0.0.1", "127.0.0.1:", ":80",
                         "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:80x", "example.com:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT(httpd_parse_listen(bad[i], host, sizeof(host), &port), -EINVAL);
    }
}

static bool closed;

static void on_closed(void *ud)
{
    (void)ud;
    closed = true;
}

static void on_client_closed(void *ud)
{
    (void)ud;
}

static void test_serve(void)
{
    struct httpd *h = NULL;
    CHECK_INT(httpd_start(&loop, "0.0.0.0", 0, handler, NULL, &h), -EINVAL);
    CHECK_INT(httpd_start(&loop, "127.0.0.1", 0, handler, NULL, &h), 0);
    unsigned port = httpd_port(h);
    CHECK(port != 0);
    struct httpd *again = NULL;
    CHECK(httpd_start(&loop, "127.0.0.1", port, handler, NULL, &again) < 0);

    struct http_client_options o = {.allow_plain_http_loopback = true, .timeout_ms = 10000};
    struct http_client *c = http_client_create(&loop, &o);
    struct got g;
    fetch(c, "GET", port, "/echo?x=a%20b%26c", &g);
    CHECK_INT(g.status, 200);
    CHECK_STR(g.body, "{\"path\":\"/echo\",\"x\":\"a b&c\"}");
    fetch(c, "GET", port, "/missing", &g);
    CHECK_INT(g.status, 404);
    CHECK_STR(g.body, "");
    fetch(c, "DELETE", port, "/echo", &g);
    CHECK_INT(g.status, 405);
    handled = 0;
    for (int i = 0; i < 20; i++) {
        fetch(c, "GET", port, "/echo", &g);
        CHECK_INT(g.status, 200);
    }
    CHECK_INT(handled, 20);

    closed = false;
    httpd_close(h, on_closed, NULL);
    http_client_close(c, on_client_closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(closed);
}

int main(void)
{
    uv_loop_init(&loop);
    test_parse_listen();
    test_serve();
    CHECK_INT(uv_loop_close(&loop), 0);
    return test_done("httpd");
}

/*
 * httpd: a small HTTP server on the libuv loop, over libmicrohttpd (MHD):
 * the engine's metrics, health and status page, and `pollen auth login`'s
 * OAuth redirect. No HTTP parsing of our own: MHD parses requests, bounds
 * them and keeps connections; this module only drives it from the loop.
 *
 * Owns: the MHD daemon, a uv_poll on MHD's epoll descriptor, a uv_timer for
 * MHD's connection timeouts, and each reply body until MHD has sent it.
 * Invariants: listens on a loopback address only (127.0.0.1 or ::1); at most
 * HTTPD_MAX_CONNS connections, HTTPD_MAX_REQUEST bytes of request head, idle
 * connections closed after HTTPD_IDLE_S; every request gets the handler's
 * reply at once (the handler must not block: it runs on the loop thread).
 * Thread context: loop thread only. MHD runs without threads of its own: it
 * does its work inside MHD_run, called from the poll and timer callbacks.
 */
#ifndef POLLEN_HTTPD_H
#define POLLEN_HTTPD_H

#include <stddef.h>

/* uv_loop_t, without uv.h (whose sys/param.h MIN/MAX clash with callers' own). */
struct uv_loop_s;

#define HTTPD_MAX_CONNS 16
#define HTTPD_MAX_REQUEST (32 * 1024)
#define HTTPD_IDLE_S 10

struct httpd;

/* One request as the handler sees it (borrowed for the handler's call). */
struct httpd_request {
    const char *method; /* "GET", "HEAD", ... */
    const char *path;   /* without the query */
    void *conn;         /* for httpd_query */
};

/* What the handler answers. body is malloc'd (httpd frees it) or NULL. */
struct httpd_reply {
    unsigned status;          /* default 200 */
    const char *content_type; /* a static string; default text/plain; charset=utf-8 */
    char *body;
    size_t len;
};

typedef void (*httpd_handler_fn)(const struct httpd_request *req, struct httpd_reply *reply,
                                 void *ud);

/*
 * Listens on host:port (host "127.0.0.1", "localhost" or "::1"/"[::1]"; port
 * 0 picks a free one, see httpd_port) and answers every request through fn.
 * Returns 0 and *out, -EINVAL for a host that is not loopback, or -errno /
 * a negative error when MHD cannot listen (the port is in use).
 */
int httpd_start(struct uv_loop_s *loop, const char *host, unsigned port, httpd_handler_fn fn, void *ud,
                struct httpd **out);
/* The port listened on. */
unsigned httpd_port(const struct httpd *h);
/* The percent-decoded query parameter `name` of the request, or NULL (borrowed). */
const char *httpd_query(const struct httpd_request *req, const char *name);
/* Stops listening and closes every connection; h is freed once its handles
 * have closed (on_closed, if given, is called then). */
void httpd_close(struct httpd *h, void (*on_closed)(void *ud), void *ud);

/* Parses "HOST:PORT" ("[::1]:PORT" for IPv6) into host (size hsize) and
 * port. Returns 0, or -EINVAL when it is malformed or the host not loopback. */
int httpd_parse_listen(const char *text, char *host, size_t hsize, unsigned *port);

#endif

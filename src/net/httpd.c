/*
 * httpd: see httpd.h.
 *
 * How MHD runs inside libuv: MHD is started without an internal thread and
 * with its own epoll set (MHD_USE_EPOLL); that set's descriptor becomes
 * readable whenever a listening or connection socket has work, so one
 * uv_poll on it wakes us, and MHD_run does all the pending work without
 * blocking. MHD_get_timeout says when MHD next needs to run even with no
 * socket activity (to close idle connections): a one-shot uv_timer covers
 * that. Both are re-armed after every MHD_run.
 */
#include "httpd.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "log.h"
#include "util.h"

#define LOG_TAG "httpd"

struct httpd {
    struct MHD_Daemon *mhd;
    uv_poll_t poll;
    uv_timer_t timer;
    httpd_handler_fn fn;
    void *ud;
    unsigned port;
    int open_handles;
    void (*on_closed)(void *ud);
    void *closed_ud;
};

static void drive(struct httpd *h);

static void on_poll(uv_poll_t *w, int status, int events)
{
    (void)status;
    (void)events;
    drive(w->data);
}

static void on_timer(uv_timer_t *t)
{
    drive(t->data);
}

/* Lets MHD do what is pending, then arms the timer for its next deadline. */
static void drive(struct httpd *h)
{
    MHD_run(h->mhd);
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(h->mhd, &ms) == MHD_YES) {
        uv_timer_start(&h->timer, on_timer, (uint64_t)ms, 0);
    } else {
        uv_timer_stop(&h->timer);
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) ATTR_PRINTF(2, 0);

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    (void)cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\r\n")] = '\0';
    log_warn(LOG_TAG, "%s", line);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct httpd *h = cls;
    (void)version;
    (void)upload_data;
    (void)con_cls;
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* a body after the reply was queued: discarded */
        return MHD_YES;
    }
    struct httpd_request req = {.method = method, .path = url, .conn = conn};
    struct httpd_reply reply = {.status = 200};
    h->fn(&req, &reply, h->ud);
    struct MHD_Response *resp =
        reply.body != NULL
            ? MHD_create_response_from_buffer(reply.len, reply.body, MHD_RESPMEM_MUST_FREE)
            : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        free(reply.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            reply.content_type ? reply.content_type : "text/plain; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    enum MHD_Result r = MHD_queue_response(conn, reply.status ? reply.status : 200, resp);
    MHD_destroy_response(resp);
    return r;
}

/* Is host a loopback name we listen on? *v6 says whether it is ::1. */
static bool loopback_host(const char *host, bool *v6)
{
    *v6 = strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0;
    return *v6 || strcmp(host, "127.0.0.1") == 0 || strcasecmp(host, "localhost") == 0;
}

int httpd_parse_listen(const char *text, char *host, size_t hsize, unsigned *port)
{
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon == text || colon[1] == '\0') {
        return -EINVAL;
    }
    size_t hlen = (size_t)(colon - text);
    if (text[0] == '[' && hlen >= 2 && text[hlen - 1] == ']') {
        text++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= hsize) {
        return -EINVAL;
    }
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    bool v6 = false;
    if (errno != 0 || *end != '\0' || colon[1] < '0' || colon[1] > '9' || p > 65535 ||
        !loopback_host(host, &v6)) {
        return -EINVAL;
    }
    *port = (unsigned)p;
    return 0;
}

/* Starts MHD on host:port without threads; NULL when it cannot (errno set). */
static struct MHD_Daemon *start_daemon(struct httpd *h, const char *host, unsigned port)
{
    bool v6 = false;
    if (!loopback_host(host, &v6)) {
        errno = EINVAL;
        return NULL;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (v6) {
        uv_ip6_addr("::1", (int)port, (struct sockaddr_in6 *)&ss);
        flags |= MHD_USE_IPv6;
    } else {
        uv_ip4_addr("127.0.0.1", (int)port, (struct sockaddr_in *)&ss);
    }
    errno = 0;
    return MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, h,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTPD_MAX_CONNS,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTPD_IDLE_S,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTPD_MAX_REQUEST,
                            MHD_OPTION_END);
}

int httpd_start(uv_loop_t *loop, const char *host, unsigned port, httpd_handler_fn fn, void *ud,
                struct httpd **out)
{
    struct httpd *h = xcalloc(1, sizeof(*h));
    h->fn = fn;
    h->ud = ud;
    h->mhd = start_daemon(h, host, port);
    if (h->mhd == NULL) {
        int err = errno != 0 ? -errno : -EADDRNOTAVAIL;
        free(h);
        return err;
    }
    const union MHD_DaemonInfo *fd = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *bound = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = bound != NULL ? bound->port : port;
    int rc = fd != NULL ? uv_poll_init(loop, &h->poll, fd->epoll_fd) : -EINVAL;
    if (rc != 0) {
        MHD_stop_daemon(h->mhd);
        free(h);
        return rc;
    }
    uv_timer_init(loop, &h->timer);
    h->poll.data = h;
    h->timer.data = h;
    uv_poll_start(&h->poll, UV_READABLE, on_poll);
    *out = h;
    return 0;
}

unsigned httpd_port(const struct httpd *h)
{
    return h->port;
}

const char *httpd_query(const struct httpd_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

static void handle_closed(uv_handle_t *handle)
{
    struct httpd *h = handle->data;
    if (--h->open_handles > 0) {
        return;
    }
    if (h->on_closed != NULL) {
        h->on_closed(h->closed_ud);
    }
    free(h);
}

void httpd_close(struct httpd *h, void (*on_closed)(void *ud), void *ud)
{
    h->on_closed = on_closed;
    h->closed_ud = ud;
    h->open_handles = 2;
    /* uv_close takes the epoll descriptor out of the loop at once, so MHD
     * may close it (and every connection) right after. */
    uv_close((uv_handle_t *)&h->poll, handle_closed);
    uv_close((uv_handle_t *)&h->timer, handle_closed);
    MHD_stop_daemon(h->mhd);
    h->mhd = NULL;
}

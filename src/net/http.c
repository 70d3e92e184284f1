/*
 * http: see http.h.
 *
 * Shape (c-style.md §2.4): struct http_client holds the loop, the CURLM, a
 * uv_timer for curl's timeout (first member, as in multi-uv.c), a second
 * uv_timer for deferred work, the list of sockets being polled, and the list
 * of transfers whose callback has not run. struct http_sock is one uv_poll
 * per fd. struct http_transfer owns one easy handle (reached from curl via
 * CURLOPT_PRIVATE), its header list, and its response.
 *
 * Where curl is called from (pitfall 5, CURLM_RECURSIVE_API_CALL):
 * - curl_multi_socket_action: only from on_poll, on_timeout and on_defer,
 *   i.e. from libuv callbacks, never from a curl callback;
 * - curl_multi_add_handle / remove_handle: only from on_defer, from
 *   check_multi_info (which runs after socket_action has returned) and from
 *   teardown (itself run by on_defer);
 * - the curl callbacks (on_socket, on_curl_timer, on_write, on_header,
 *   on_sockopt, on_closesocket) call only libuv and plain C.
 * http_send, http_cancel and http_client_close call no curl_multi function
 * at all: they queue the transfer on `pending` and arm the 0 ms defer timer,
 * which is what makes them safe from any context, including a completion
 * callback, and what guarantees that no user callback runs inside them.
 *
 * Transfer life: QUEUED (on pending) -> ACTIVE (in the multi) -> delivered;
 * or FINISHED (failed before reaching curl, or cancelled; on pending) ->
 * delivered. "Delivered" means: unlinked, easy handle cleaned up, callback
 * run, memory freed; it happens exactly once per transfer.
 */
#include "http.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "list.h"
#include "log.h"
#include "url.h"
#include "util.h"

#ifndef POLLEN_VERSION
#define POLLEN_VERSION "0.0.0"
#endif

#define DEFAULT_CONNECT_TIMEOUT_MS 10000u
#define DEFAULT_TIMEOUT_MS 60000u
#define DEFAULT_LOW_SPEED_LIMIT 100L
#define DEFAULT_LOW_SPEED_TIME_S 30L
#define DEFAULT_MAX_BODY ((size_t)16 << 20)
/* libcurl's receive buffer (CURLOPT_BUFFERSIZE, default 16 KiB): one recv and one
 * on_write per this many bytes at most. 64 KiB: a quarter of the recv and poll
 * calls of a big page; from 128 KiB up glibc maps and unmaps the buffer of every
 * transfer (measured: more system time, not less). */
#define HTTP_READ_SIZE (64L * 1024)
#define DEFAULT_MAX_HOST_CONNECTIONS 4L
#define LIMIT_MAX_BODY ((size_t)1 << 30)
#define MAX_URL_LEN 8192u
#define MAX_HEADERS 64u
#define MAX_HEADER_LEN 8192u
#define MAX_TAG_LEN 64u
#define MAX_ERR_FDS 64u
#define MAX_SNAPSHOT_FDS 4096u
#define RETRY_AFTER_MIN_S 1L
#define RETRY_AFTER_MAX_S 3600L
/* Response buffers kept between transfers (see body_adopt). A page of a few
 * hundred KB is above glibc's mmap threshold (128 KiB, then dynamic), so a
 * buffer grown from scratch and freed per response cost an mmap, a series of
 * mremap and a page fault per 4 KiB on every page; a kept buffer is touched
 * once. At most SPARE_BODIES are kept (the transfers one client runs at once
 * in practice), none bigger than BODY_KEEP, so one huge response never pins
 * its memory. */
#define SPARE_BODIES 4u
#define BODY_KEEP ((size_t)2 << 20)

#ifndef CURL_WRITEFUNC_ERROR
#define CURL_WRITEFUNC_ERROR 0
#endif



/* ---- types ---- */

enum xfer_state {
    XFER_QUEUED,    /* built, waiting on `pending` to be added to the multi */
    XFER_ACTIVE,    /* in the multi */
    XFER_FINISHED,  /* result known, waiting on `pending` for delivery */
    XFER_CALLING,   /* its callback is running */
};

struct http_transfer {
    struct list link;       /* in client->transfers until delivered */
    struct list pending;    /* in client->pending while deferred work is due */
    struct http_client *c;
    enum xfer_state state;
    bool cancel_requested;
    bool too_big;           /* the write callback refused data over the cap */
    bool saw_retry_after;
    const char *const *capture; /* the request's capture_headers (borrowed) */
    size_t ncapture;
    CURL *easy;             /* NULL if the request never got that far */
    struct curl_slist *headers;
    http_done_cb cb;
    void *ud;
    uint64_t start_ms;
    char method[8];
    char tag[MAX_TAG_LEN];
    char errbuf[CURL_ERROR_SIZE];
    struct http_response resp;
};

struct http_sock {
    uv_poll_t poll;         /* poll.data points back here */
    curl_socket_t fd;
    struct http_client *c;
    struct list link;       /* in client->socks while registered */
};

struct http_client {
    uv_timer_t timer;       /* first member: curl's timeout timer (multi-uv.c) */
    uv_timer_t defer;       /* 0 ms timer: all work that must not run where it was asked */
    uv_loop_t *loop;
    CURLM *multi;

    uint64_t connect_timeout_ms;
    uint64_t timeout_ms;
    long low_speed_limit;
    long low_speed_time_s;
    size_t max_body;
    long max_host_connections;
    char *ca_file;
    char *proxy;
    char *user_agent;
    bool allow_plain_http_loopback;

    struct list transfers;  /* every transfer not yet delivered */
    struct list pending;    /* transfers with deferred work */
    struct list socks;      /* registered poll handles */
    size_t in_flight;
    struct buf spare[SPARE_BODIES]; /* emptied response buffers, each cap <= BODY_KEEP */
    unsigned nspare;

    curl_socket_t err_fds[MAX_ERR_FDS];  /* fds to report as CURL_CSELECT_ERR */
    size_t n_err_fds;

    bool multi_broken;      /* socket_action failed: remove all handles before reuse */
    bool closing;           /* http_client_close was called */
    bool shutting_down;     /* teardown running: the socket callback starts no polls */
    bool torn_down;         /* curl is gone; the uv handles are closing */
    unsigned open_handles;  /* uv handles not yet through their close callback */
    void (*on_closed)(void *ud);
    void *on_closed_ud;
};

static void on_defer(uv_timer_t *timer);
static void check_multi_info(struct http_client *c);

/* ---- small helpers ---- */

static void set_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC)) {
        (void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
}

/*
 * Lists the open fds (at most MAX_SNAPSHOT_FDS) from /proc/self/fd. Used only
 * around curl_multi_init: curl 7.88 opens its wake-up socketpair without
 * SOCK_CLOEXEC and gives us no hook for it, so we find it by difference.
 */
static size_t snapshot_fds(int *fds, size_t max)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return 0;
    }
    size_t n = 0;
    struct dirent *e;
    while (n < max && (e = readdir(d)) != NULL) {
        char *end = NULL;
        long fd = strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != '\0' || fd < 0 || fd == dirfd(d)) {
            continue;
        }
        fds[n++] = (int)fd;
    }
    closedir(d);
    return n;
}

static void cloexec_new_fds(const int *before, size_t nbefore)
{
    int *after = xmalloc(MAX_SNAPSHOT_FDS * sizeof(*after));
    size_t nafter = snapshot_fds(after, MAX_SNAPSHOT_FDS);
    for (size_t i = 0; i < nafter; i++) {
        bool old = false;
        for (size_t j = 0; j < nbefore && !old; j++) {
            old = before[j] == after[i];
        }
        if (!old) {
            set_cloexec(after[i]);
        }
    }
    free(after);
}

static void arm_defer(struct http_client *c)
{
    if (!c->torn_down) {
        uv_timer_start(&c->defer, on_defer, 0, 0);
    }
}

static void push_pending(struct http_transfer *t)
{
    if (!list_linked(&t->pending)) {
        list_insert_tail(&t->c->pending, &t->pending);
    }
}

static void set_error(struct http_transfer *t, int err, const char *text)
{
    t->resp.error = err;
    str_copy(t->resp.error_text, sizeof(t->resp.error_text), text);
}

/* ---- socket handles ---- */

static void on_handle_closed_final(struct http_client *c);

static void on_sock_closed(uv_handle_t *h)
{
    struct http_sock *s = h->data;
    struct http_client *c = s->c;
    free(s);
    on_handle_closed_final(c);
}

static struct http_sock *sock_find(struct http_client *c, curl_socket_t fd)
{
    for (struct list *n = c->socks.next; n != &c->socks; n = n->next) {
        struct http_sock *s = container_of(n, struct http_sock, link);
        if (s->fd == fd) {
            return s;
        }
    }
    return NULL;
}

/*
 * Stops and closes a poll handle synchronously (pitfall 1): libuv unregisters
 * the fd at once, so curl may close it, and a new socket may reuse the
 * number, immediately after. The memory goes in the close callback.
 */
static void sock_release(struct http_sock *s)
{
    list_remove(&s->link);
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* Pitfall 2: if we cannot watch a socket, tell curl it failed (later, from
 * the loop) rather than returning -1, which would fail every transfer. */
static void queue_err_fd(struct http_client *c, curl_socket_t fd)
{
    if (c->n_err_fds < MAX_ERR_FDS) {
        c->err_fds[c->n_err_fds++] = fd;
    }
    arm_defer(c);
}

/* ---- driving curl ---- */

static void multi_failed(struct http_client *c, CURLMcode mc, const char *where)
{
    if (mc == CURLM_BAD_SOCKET) {
        /* A stray event for a socket curl already forgot (level-triggered
         * polls, pitfall 11); curl ignores it too. */
        log_debug("http", "%s: %s", where, curl_multi_strerror(mc));
        return;
    }
    /* The multi's state is uncertain now: no more socket_action until every
     * handle has been removed (curl_multi_socket_action.md). */
    log_error("http", "%s failed: %s; failing active transfers", where, curl_multi_strerror(mc));
    c->multi_broken = true;
    arm_defer(c);
}

static void socket_action(struct http_client *c, curl_socket_t fd, int flags)
{
    if (c->multi == NULL || c->multi_broken) {
        return;
    }
    int running = 0; /* curl writes it unconditionally (pitfall 3) */
    CURLMcode mc = curl_multi_socket_action(c->multi, fd, flags, &running);
    if (mc != CURLM_OK) {
        multi_failed(c, mc, "curl_multi_socket_action");
    }
    /* Pitfall 6: drain after every call, whatever `running` says. */
    check_multi_info(c);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct http_sock *s = h->data;
    struct http_client *c = s->c;
    curl_socket_t fd = s->fd; /* s may be closed by curl's callbacks below */
    int flags = 0;
    if (status < 0) {
        /* Pitfall 3: POLLERR arrives as UV_EBADF with the handle stopped. */
        log_debug("http", "poll error on fd %d: %s", (int)fd, uv_strerror(status));
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE) {
            flags |= CURL_CSELECT_IN;
        }
        if (events & UV_WRITABLE) {
            flags |= CURL_CSELECT_OUT;
        }
    }
    socket_action(c, fd, flags);
}

static void on_timeout(uv_timer_t *timer)
{
    struct http_client *c = (struct http_client *)(void *)timer; /* first member */
    socket_action(c, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_SOCKETFUNCTION. Calls no curl function (not even curl_multi_assign:
 * we find the socket by fd in our own list, so a stale socketp can never be
 * dereferenced). Never returns -1 (pitfall 8). */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct http_client *c = userp;
    struct http_sock *s = sock_find(c, fd);

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            sock_release(s);
        }
        return 0;
    }
    if (c->shutting_down) {
        /* Pitfall 9: curl_multi_cleanup may still ask for polls; ignore them. */
        return 0;
    }
    int events;
    switch (what) {
    case CURL_POLL_IN:
        events = UV_READABLE;
        break;
    case CURL_POLL_OUT:
        events = UV_WRITABLE;
        break;
    case CURL_POLL_INOUT:
        events = UV_READABLE | UV_WRITABLE;
        break;
    default:
        /* CURL_POLL_NONE or unknown: curl wants nothing from this fd now. */
        if (s != NULL) {
            uv_poll_stop(&s->poll);
        }
        return 0;
    }
    if (s == NULL) {
        s = xmalloc(sizeof(*s));
        int rc = uv_poll_init_socket(c->loop, &s->poll, fd);
        if (rc != 0) {
            /* The handle is not initialised on failure, so plain free is right. */
            log_warn("http", "cannot watch fd %d: %s", (int)fd, uv_strerror(rc));
            free(s);
            queue_err_fd(c, fd);
            return 0;
        }
        s->poll.data = s;
        s->fd = fd;
        s->c = c;
        list_insert_tail(&c->socks, &s->link);
        c->open_handles++;
    }
    int rc = uv_poll_start(&s->poll, events, on_poll);
    if (rc != 0) {
        log_warn("http", "cannot poll fd %d: %s", (int)fd, uv_strerror(rc));
        queue_err_fd(c, fd);
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: only arms our timer; the timer callback calls curl
 * (pitfall 4). 0 becomes 1 ms so a run of "now" requests cannot spin the
 * timer phase without the loop polling in between. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_client *c = userp;
    if (c->torn_down) {
        return 0;
    }
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
    } else {
        uv_timer_start(&c->timer, on_timeout, timeout_ms == 0 ? 1 : (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* CURLOPT_SOCKOPTFUNCTION: curl 7.88 does not open sockets with SOCK_CLOEXEC
 * (reliability §3.1), and a spawned action must not inherit them. */
static int on_sockopt(void *ud, curl_socket_t fd, curlsocktype purpose)
{
    set_cloexec(fd);
    return CURL_SOCKOPT_OK;
}

/* CURLOPT_CLOSESOCKETFUNCTION, with the client (long-lived) as data: curl
 * copies it onto the connection, which may outlive the easy handle. Defence
 * in depth for pitfall 1: if curl closes a socket it never sent REMOVE for,
 * stop our poll first so epoll never watches a closed (or reused) fd. */
static int on_closesocket(void *ud, curl_socket_t fd)
{
    struct http_client *c = ud;
    struct http_sock *s = sock_find(c, fd);
    if (s != NULL) {
        log_debug("http", "fd %d closed while still polled; stopping the poll first", (int)fd);
        sock_release(s);
    }
    return close(fd);
}

/* ---- response buffers ---- */

/* Gives a transfer that has no body buffer yet a kept one (empty). Called on
 * the first byte or size hint of a response, so queued and failed transfers
 * hold none. Plain C: safe inside curl callbacks. */
static void body_adopt(struct http_transfer *t)
{
    struct http_client *c = t->c;
    if (t->resp.body.data == NULL && c->nspare > 0) {
        t->resp.body = c->spare[--c->nspare];
        buf_reset(&t->resp.body);
    }
}

/* Takes back a delivered transfer's buffer (its callback has returned, so no
 * one points into it; a stolen one is NULL), or frees it. */
static void body_release(struct http_client *c, struct buf *b)
{
    if (b->data != NULL && b->cap <= BODY_KEEP && c->nspare < SPARE_BODIES && !c->closing) {
        buf_reset(b);
        c->spare[c->nspare++] = *b;
        buf_init(b, b->max);
        return;
    }
    buf_finish(b);
}

/* A Content-Length header: sizes the buffer once instead of doubling, with an
 * eighth of headroom so a slightly longer next page reuses it as is. The
 * value is the peer's word: over max_body it reserves nothing (curl then
 * refuses the transfer, CURLOPT_MAXFILESIZE); under it, a lie costs at most
 * the cap and the failed transfer frees it. Compressed, it is a lower bound
 * and the buffer still grows by doubling. */
static void body_presize(struct http_transfer *t, const char *v, size_t vlen)
{
    size_t n = 0;
    for (size_t i = 0; i < vlen; i++) {
        if (v[i] < '0' || v[i] > '9' || n > t->resp.body.max) {
            return;
        }
        n = n * 10 + (size_t)(v[i] - '0');
    }
    if (vlen == 0 || n == 0 || n > t->resp.body.max) {
        return;
    }
    size_t want = n + n / 8;
    body_adopt(t);
    if (t->resp.body.cap > n) {
        return; /* it fits already: the headroom is only for growing */
    }
    buf_reserve(&t->resp.body, want < t->resp.body.max ? want : t->resp.body.max);
}

/* ---- response capture (curl callbacks: plain C only) ---- */

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct http_transfer *t = ud;
    size_t len = size * nmemb;
    body_adopt(t);
    /* Counted here, after decompression: one call is at most HTTP_READ_SIZE,
     * so a gzip bomb stops within cap + 64 KiB decoded and buf holds <= cap. */
    if (buf_append(&t->resp.body, ptr, len) != 0) {
        t->too_big = true;
        return CURL_WRITEFUNC_ERROR;
    }
    return len;
}

static bool name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

static void reset_captured(struct http_transfer *t)
{
    memset(t->resp.captured, 0, sizeof(t->resp.captured));
    t->resp.location[0] = '\0';
    t->saw_retry_after = false;
}

static size_t on_header(char *buf, size_t size, size_t nmemb, void *ud)
{
    struct http_transfer *t = ud;
    size_t len = size * nmemb;

    /* Each response (a 1xx, then the final one) starts with its status line;
     * only the final response's headers may count. */
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        reset_captured(t);
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (colon == NULL) {
        return len;
    }
    size_t name_len = (size_t)(colon - buf);
    const char *v = colon + 1;
    const char *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    size_t vlen = (size_t)(end - v);

    for (size_t i = 0; i < t->ncapture; i++) {
        if (name_is(buf, name_len, t->capture[i])) {
            struct http_captured *h = &t->resp.captured[i];
            h->present = vlen < sizeof(h->value);
            if (h->present) {
                memcpy(h->value, v, vlen);
                h->value[vlen] = '\0';
            }
            return len;
        }
    }
    if (name_is(buf, name_len, "Location")) {
        size_t n = vlen < sizeof(t->resp.location) - 1 ? vlen : sizeof(t->resp.location) - 1;
        memcpy(t->resp.location, v, n);
        t->resp.location[n] = '\0';
    } else if (name_is(buf, name_len, "Content-Length")) {
        body_presize(t, v, vlen);
    } else if (name_is(buf, name_len, "Retry-After")) {
        /* The value (seconds or HTTP-date) is read via CURLINFO_RETRY_AFTER. */
        t->saw_retry_after = true;
    }
    return len;
}

/* ---- completion ---- */

static int map_curl_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return HTTP_E_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
        return HTTP_E_CONNECT;
    case CURLE_FILESIZE_EXCEEDED:
        return HTTP_E_TOO_BIG;
    case CURLE_TOO_MANY_REDIRECTS:
        return HTTP_E_REDIRECT;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_BAD_CONTENT_ENCODING:
        return HTTP_E_PROTOCOL;
    default:
        return HTTP_E_OTHER;
    }
}

/* Fills the response of a transfer curl finished (already removed). */
static void finish_from_curl(struct http_transfer *t, CURLcode result)
{
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    t->resp.status = status;
    if (t->saw_retry_after) {
        curl_off_t ra = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &ra);
        /* A past date gives <= 0 before curl 8.12: the header was there, so 1 s. */
        if (ra < RETRY_AFTER_MIN_S) {
            ra = RETRY_AFTER_MIN_S;
        } else if (ra > RETRY_AFTER_MAX_S) {
            ra = RETRY_AFTER_MAX_S;
        }
        t->resp.retry_after_s = (long)ra;
    }
    bool redirect = status >= 300 && status < 400;
    if (!redirect) {
        t->resp.location[0] = '\0';
    }
    if (result == CURLE_OK) {
        if (redirect) {
            t->resp.error = HTTP_E_REDIRECT;
            snprintf(t->resp.error_text, sizeof(t->resp.error_text),
                     "HTTP %ld redirect not followed (Location: %.200s)", status,
                     t->resp.location[0] ? t->resp.location : "none");
        }
    } else {
        t->resp.error = t->too_big ? HTTP_E_TOO_BIG : map_curl_error(result);
        if (t->too_big) {
            snprintf(t->resp.error_text, sizeof(t->resp.error_text),
                     "response body over the %zu-byte cap", t->resp.body.max);
        } else {
            /* errbuf holds curl's detail (host, port, OS error); curl never
             * puts request headers in it. */
            snprintf(t->resp.error_text, sizeof(t->resp.error_text), "%s",
                     t->errbuf[0] ? t->errbuf : curl_easy_strerror(result));
        }
    }
    if (t->cancel_requested) {
        set_error(t, HTTP_E_CANCELLED, "cancelled");
    }
    if (result != CURLE_OK) {
        /* A failed transfer's body is a prefix (cut at the cap, by a reset,
         * a timeout), never a document: free it now rather than hand it on.
         * Callers parse whatever body they get, and a JSON tree costs about
         * 1.5 times its text, so a body cut at the 16 MiB cap added 24 MiB
         * of parse tree on top of the buffer, only to fail on the missing
         * end, and the JSON arena kept 8 MiB of it afterwards (issue #6:
         * peak RSS bounded by max_body, memory back to its baseline). */
        buf_finish(&t->resp.body);
    }
    t->state = XFER_FINISHED;
}

/* Runs the callback and frees the transfer; must not be called from inside a
 * curl callback (the user may call back into us). */
static void deliver(struct http_transfer *t)
{
    struct http_client *c = t->c;
    list_remove(&t->link);
    if (list_linked(&t->pending)) {
        list_remove(&t->pending);
    }
    c->in_flight--;
    t->state = XFER_CALLING;
    t->resp.elapsed_ms = util_mono_ms() - t->start_ms;
    if (t->easy != NULL) {
        curl_easy_cleanup(t->easy);
        t->easy = NULL;
    }
    curl_slist_free_all(t->headers);
    t->headers = NULL;

    log_debug(t->tag, "%s done: status %ld, %s, %zu bytes, %llu ms", t->method, t->resp.status,
              t->resp.error ? t->resp.error_text : "ok", t->resp.body.len,
              (unsigned long long)t->resp.elapsed_ms);
    t->cb(&t->resp, t->ud);

    body_release(c, &t->resp.body);
    free(t);
}

static void check_multi_info(struct http_client *c)
{
    CURLMsg *msg;
    int left = 0;
    while (c->multi != NULL && (msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        /* Pitfall 7: copy out before remove_handle invalidates msg. */
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        struct http_transfer *t = (struct http_transfer *)(void *)priv;
        curl_multi_remove_handle(c->multi, easy);
        if (t == NULL) {
            curl_easy_cleanup(easy); /* not ours; cannot happen */
            continue;
        }
        finish_from_curl(t, result);
        deliver(t);
    }
}

/* After a socket_action error: remove every handle and fail its transfer, so
 * the multi may be used again (curl_multi_socket_action.md). */
static void recover_broken_multi(struct http_client *c)
{
    for (struct list *n = c->transfers.next; n != &c->transfers; n = n->next) {
        struct http_transfer *t = container_of(n, struct http_transfer, link);
        if (t->state == XFER_ACTIVE) {
            curl_multi_remove_handle(c->multi, t->easy);
            t->state = XFER_FINISHED;
            set_error(t, HTTP_E_OTHER, "transfer aborted after an internal curl multi error");
            push_pending(t);
        }
    }
    c->multi_broken = false;
}

static void flush_err_fds(struct http_client *c)
{
    while (c->n_err_fds > 0 && !c->multi_broken && c->multi != NULL) {
        curl_socket_t fd = c->err_fds[--c->n_err_fds];
        socket_action(c, fd, CURL_CSELECT_ERR);
    }
}

static void process_pending(struct http_client *c)
{
    /* Work on a detached batch: callbacks may queue more, which re-arms the
     * defer timer and is handled in its next run. */
    struct list batch;
    list_move_all(&batch, &c->pending);
    while (!list_empty(&batch)) {
        if (c->closing) {
            /* Leave the rest to teardown, which delivers every transfer. */
            struct list *n;
            while (!list_empty(&batch)) {
                n = batch.next;
                list_remove(n);
                list_insert_tail(&c->pending, n);
            }
            break;
        }
        struct http_transfer *t = container_of(batch.next, struct http_transfer, pending);
        list_remove(&t->pending);
        switch (t->state) {
        case XFER_QUEUED:
            if (t->cancel_requested) {
                set_error(t, HTTP_E_CANCELLED, "cancelled");
                t->state = XFER_FINISHED;
                deliver(t);
                break;
            }
            {
                CURLMcode mc = curl_multi_add_handle(c->multi, t->easy);
                if (mc != CURLM_OK) {
                    snprintf(t->resp.error_text, sizeof(t->resp.error_text),
                             "curl_multi_add_handle: %s", curl_multi_strerror(mc));
                    t->resp.error = HTTP_E_OTHER;
                    t->state = XFER_FINISHED;
                    deliver(t);
                    break;
                }
            }
            /* add_handle arms curl's timer via on_curl_timer: no kick needed. */
            t->state = XFER_ACTIVE;
            break;
        case XFER_ACTIVE:
            if (t->cancel_requested) {
                curl_multi_remove_handle(c->multi, t->easy);
                finish_from_curl(t, CURLE_OK);
                deliver(t);
            }
            break;
        case XFER_FINISHED:
            if (t->cancel_requested) {
                set_error(t, HTTP_E_CANCELLED, "cancelled");
            }
            deliver(t);
            break;
        case XFER_CALLING:
            break;
        }
    }
}

static void finalize(struct http_client *c)
{
    /* Requests sent from callbacks after teardown closed the timers were
     * failed at once; deliver them before the client goes away. */
    while (!list_empty(&c->transfers)) {
        deliver(container_of(c->transfers.next, struct http_transfer, link));
    }
    void (*cb)(void *) = c->on_closed;
    void *ud = c->on_closed_ud;
    while (c->nspare > 0) {
        buf_finish(&c->spare[--c->nspare]);
    }
    free(c->ca_file);
    free(c->proxy);
    free(c->user_agent);
    free(c);
    curl_global_cleanup();
    if (cb != NULL) {
        cb(ud);
    }
}

static void on_handle_closed_final(struct http_client *c)
{
    c->open_handles--;
    if (c->torn_down && c->open_handles == 0) {
        finalize(c);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    on_handle_closed_final(h->data);
}

/* Pitfall 9: the shutdown order. */
static void teardown(struct http_client *c)
{
    c->shutting_down = true;
    uv_timer_stop(&c->timer);
    c->n_err_fds = 0;

    /* 1-2. Cancel every transfer: remove its easy handle, run its callback.
     * Callbacks may send more; http_send fails those at once while closing,
     * and this loop delivers them too. */
    while (!list_empty(&c->transfers)) {
        struct http_transfer *t = container_of(c->transfers.next, struct http_transfer, link);
        if (t->state == XFER_ACTIVE) {
            curl_multi_remove_handle(c->multi, t->easy);
        }
        if (t->state != XFER_FINISHED) {
            set_error(t, HTTP_E_CANCELLED, "client closed");
            t->state = XFER_FINISHED;
        }
        deliver(t);
    }

    /* 3. curl_multi_cleanup while the loop and socket handles still exist:
     * it may send REMOVE (and close cached connections through
     * on_closesocket). */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;

    /* Sockets curl never sent REMOVE for. */
    while (!list_empty(&c->socks)) {
        sock_release(container_of(c->socks.next, struct http_sock, link));
    }

    /* 4. Close our timers; the last close callback frees the client. */
    c->torn_down = true;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->defer, on_timer_closed);
}

static void on_defer(uv_timer_t *timer)
{
    struct http_client *c = timer->data;
    if (c->closing) {
        teardown(c);
        return;
    }
    /* Report unwatchable sockets first: that may break the multi, and a
     * broken multi must be emptied before new handles go in. */
    flush_err_fds(c);
    if (c->multi_broken) {
        recover_broken_multi(c);
    }
    process_pending(c);
}

/* ---- public API ---- */

struct http_client *http_client_create(uv_loop_t *loop, const struct http_client_options *opts)
{
    static const struct http_client_options defaults = {0};
    if (opts == NULL) {
        opts = &defaults;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("http", "curl_global_init failed");
        return NULL;
    }

    struct http_client *c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms
                                                     : DEFAULT_CONNECT_TIMEOUT_MS;
    c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->low_speed_limit = opts->low_speed_limit > 0 ? opts->low_speed_limit
                                                   : DEFAULT_LOW_SPEED_LIMIT;
    c->low_speed_time_s = opts->low_speed_time_s > 0 ? opts->low_speed_time_s
                                                     : DEFAULT_LOW_SPEED_TIME_S;
    c->max_body = opts->max_body ? opts->max_body : DEFAULT_MAX_BODY;
    if (c->max_body > LIMIT_MAX_BODY) {
        c->max_body = LIMIT_MAX_BODY;
    }
    c->max_host_connections = opts->max_host_connections > 0 ? opts->max_host_connections
                                                             : DEFAULT_MAX_HOST_CONNECTIONS;
    c->ca_file = opts->ca_file ? xstrdup(opts->ca_file) : NULL;
    c->proxy = opts->proxy ? xstrdup(opts->proxy) : NULL;
    c->user_agent = xstrdup(opts->user_agent ? opts->user_agent : "pollen/" POLLEN_VERSION);
    c->allow_plain_http_loopback = opts->allow_plain_http_loopback;
    list_init(&c->transfers);
    list_init(&c->pending);
    list_init(&c->socks);

    int *before = xmalloc(MAX_SNAPSHOT_FDS * sizeof(*before));
    size_t nbefore = snapshot_fds(before, MAX_SNAPSHOT_FDS);
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        log_error("http", "curl_multi_init failed");
        free(before);
        goto fail_multi;
    }
    cloexec_new_fds(before, nbefore);
    free(before);

    CURLMcode mc = CURLM_OK;
    mc = mc ? mc : curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    mc = mc ? mc : curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    mc = mc ? mc : curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    mc = mc ? mc : curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    mc = mc ? mc : curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                                     c->max_host_connections);
    mc = mc ? mc : curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                                     c->max_host_connections * 4);
    if (mc != CURLM_OK) {
        log_error("http", "curl_multi_setopt: %s", curl_multi_strerror(mc));
        goto fail_setopt;
    }

    /* uv_timer_init cannot fail on a valid loop (libuv 1.44); checked anyway,
     * and done last so the failure paths above need no uv_close. */
    if (uv_timer_init(loop, &c->timer) != 0) {
        goto fail_setopt;
    }
    c->timer.data = c;
    c->open_handles++;
    if (uv_timer_init(loop, &c->defer) != 0) {
        /* The first timer must go through uv_close; its callback frees c. */
        curl_multi_cleanup(c->multi);
        c->multi = NULL;
        c->torn_down = true;
        c->on_closed = NULL;
        uv_close((uv_handle_t *)&c->timer, on_timer_closed);
        return NULL;
    }
    c->defer.data = c;
    c->open_handles++;
    return c;

fail_setopt:
    curl_multi_cleanup(c->multi);
fail_multi:
    free(c->ca_file);
    free(c->proxy);
    free(c->user_agent);
    free(c);
    curl_global_cleanup();
    return NULL;
}

static bool header_line_ok(const char *h)
{
    size_t len = strnlen(h, MAX_HEADER_LEN + 1);
    if (len == 0 || len > MAX_HEADER_LEN) {
        return false;
    }
    if (strpbrk(h, "\r\n") != NULL) {
        return false;
    }
    /* "Name: value" (or "Name:" to remove a default): a token before the colon. */
    const char *colon = strchr(h, ':');
    if (colon == NULL || colon == h) {
        return false;
    }
    for (const char *p = h; p < colon; p++) {
        if (*p <= ' ' || *p >= 127) {
            return false;
        }
    }
    return true;
}

static bool has_header(const char *const *headers, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':') {
            return true;
        }
    }
    return false;
}

/* Validates req and builds the easy handle. Returns 0, or a negative errno
 * with t's error set. */
static int build_transfer(struct http_client *c, struct http_transfer *t,
                          const struct http_request *req)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};
    bool method_ok = false;
    for (size_t i = 0; req->method != NULL && i < ARRAY_SIZE(methods); i++) {
        method_ok = method_ok || strcmp(req->method, methods[i]) == 0;
    }
    if (!method_ok) {
        set_error(t, HTTP_E_OTHER, "invalid request: unsupported method");
        return -EINVAL;
    }
    str_copy(t->method, sizeof(t->method), req->method);
    if (req->url == NULL || strnlen(req->url, MAX_URL_LEN + 1) > MAX_URL_LEN) {
        set_error(t, HTTP_E_OTHER, "invalid request: missing or over-long URL");
        return -EINVAL;
    }
    size_t ncapture = 0;
    for (; req->capture_headers != NULL && req->capture_headers[ncapture] != NULL; ncapture++) {
        if (ncapture >= HTTP_CAPTURE_MAX) {
            set_error(t, HTTP_E_OTHER, "invalid request: too many headers to capture");
            return -EINVAL;
        }
    }
    t->capture = req->capture_headers;
    t->ncapture = ncapture;
    size_t nheaders = 0;
    for (; req->headers != NULL && req->headers[nheaders] != NULL; nheaders++) {
        if (nheaders >= MAX_HEADERS) {
            set_error(t, HTTP_E_OTHER, "invalid request: too many headers");
            return -EINVAL;
        }
        if (!header_line_ok(req->headers[nheaders])) {
            /* The header itself is not echoed: it may carry a token. */
            snprintf(t->resp.error_text, sizeof(t->resp.error_text),
                     "invalid request: header %zu is malformed (CR/LF, no name or too long)",
                     nheaders);
            t->resp.error = HTTP_E_OTHER;
            return -EINVAL;
        }
    }
    if (req->content_type != NULL &&
        (strpbrk(req->content_type, "\r\n") != NULL ||
         strnlen(req->content_type, 257) > 256)) {
        set_error(t, HTTP_E_OTHER, "invalid request: malformed content type");
        return -EINVAL;
    }
    if (req->body == NULL && req->body_len > 0) {
        set_error(t, HTTP_E_OTHER, "invalid request: body_len without body");
        return -EINVAL;
    }
    if (req->body_len > c->max_body) {
        set_error(t, HTTP_E_TOO_BIG, "invalid request: body over max_body");
        return -EINVAL;
    }

    /* Scheme policy: https, or plain http to a loopback host when allowed. */
    struct url u;
    enum url_problem up =
        url_parse(req->url, c->allow_plain_http_loopback ? URL_HTTP_LOOPBACK : 0, &u);
    bool tls = u.tls;
    const char *protocols = tls ? "https" : "http,https";
    int rc = 0;
    if (up == URL_E_SCHEME || up == URL_E_NOT_LOOPBACK) {
        snprintf(t->resp.error_text, sizeof(t->resp.error_text),
                 "scheme %.16s not allowed for host '%.64s' (https only)", u.scheme ? u.scheme : "",
                 u.host ? u.host : "");
        t->resp.error = HTTP_E_PROTOCOL;
        rc = -EINVAL;
    } else if (up != URL_OK) {
        set_error(t, HTTP_E_OTHER, "invalid request: cannot parse URL");
        rc = -EINVAL;
    }
    url_free(&u);
    if (rc != 0) {
        return rc;
    }

    /* Request headers: the caller's, then ours unless the caller set them.
     * curl_slist_append returns NULL on failure and leaves the list as it was. */
    struct curl_slist *hl = NULL;
    bool oom = false;
    bool wants_body = req->body != NULL || strcmp(req->method, "POST") == 0 ||
                      strcmp(req->method, "PUT") == 0 || strcmp(req->method, "PATCH") == 0;
    char ct[300];
    const char *extra[3];
    size_t nextra = 0;
    if (!has_header(req->headers, "Content-Type")) {
        if (req->body != NULL) {
            snprintf(ct, sizeof(ct), "Content-Type: %s",
                     req->content_type ? req->content_type : "application/json");
            extra[nextra++] = ct;
        } else if (wants_body) {
            /* No body: drop curl's application/x-www-form-urlencoded default. */
            extra[nextra++] = "Content-Type:";
        }
    }
    if (!has_header(req->headers, "Expect")) {
        /* No "Expect: 100-continue" round trip (a 1 s stall on some servers). */
        extra[nextra++] = "Expect:";
    }
    for (size_t i = 0; !oom && i < nheaders + nextra; i++) {
        const char *line = i < nheaders ? req->headers[i] : extra[i - nheaders];
        struct curl_slist *n = curl_slist_append(hl, line);
        if (n == NULL) {
            oom = true;
        } else {
            hl = n;
        }
    }
    if (oom) {
        curl_slist_free_all(hl);
        set_error(t, HTTP_E_OTHER, "out of memory building headers");
        return -ENOMEM;
    }
    t->headers = hl;

    CURL *e = curl_easy_init();
    if (e == NULL) {
        set_error(t, HTTP_E_OTHER, "curl_easy_init failed");
        return -ENOMEM;
    }
    t->easy = e;

    /* Sticky error: the first failing setopt wins, the rest are skipped. */
    CURLcode cc = CURLE_OK;
#define SETOPT(opt, val)                             \
    do {                                             \
        if (cc == CURLE_OK) {                        \
            cc = curl_easy_setopt(e, (opt), (val));  \
        }                                            \
    } while (0)
    SETOPT(CURLOPT_PRIVATE, (void *)t);
    SETOPT(CURLOPT_URL, req->url);
    SETOPT(CURLOPT_ERRORBUFFER, t->errbuf);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROTOCOLS_STR, protocols);
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "https");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_ACCEPT_ENCODING, "");
    SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_body);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
    SETOPT(CURLOPT_TIMEOUT_MS, (long)(req->timeout_ms ? req->timeout_ms : c->timeout_ms));
    SETOPT(CURLOPT_LOW_SPEED_LIMIT, c->low_speed_limit);
    SETOPT(CURLOPT_LOW_SPEED_TIME, c->low_speed_time_s);
    SETOPT(CURLOPT_FRESH_CONNECT, req->fresh_connection ? 1L : 0L);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_TCP_KEEPIDLE, 60L);
    SETOPT(CURLOPT_TCP_KEEPINTVL, 30L);
    SETOPT(CURLOPT_SOCKOPTFUNCTION, on_sockopt);
    SETOPT(CURLOPT_SOCKOPTDATA, (void *)c);
    SETOPT(CURLOPT_CLOSESOCKETFUNCTION, on_closesocket);
    SETOPT(CURLOPT_CLOSESOCKETDATA, (void *)c);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, (void *)t);
    SETOPT(CURLOPT_WRITEFUNCTION, on_write);
    SETOPT(CURLOPT_BUFFERSIZE, HTTP_READ_SIZE);
    SETOPT(CURLOPT_WRITEDATA, (void *)t);
    SETOPT(CURLOPT_USERAGENT, c->user_agent);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    /* Wait to multiplex on a connection being set up (HTTP/2 via ALPN, known
     * after the TLS handshake). Plain http can never multiplex, and curl would
     * learn that only from the first response, stalling parallel requests. */
    SETOPT(CURLOPT_PIPEWAIT, tls ? 1L : 0L);
    SETOPT(CURLOPT_HTTPHEADER, hl);
    /* Only the configured proxy: "" and NOPROXY "*" stop libcurl from taking
     * one from http_proxy/https_proxy/all_proxy, which would send loopback
     * webhooks and their headers through it in cleartext (F23). */
    SETOPT(CURLOPT_PROXY, c->proxy != NULL ? c->proxy : "");
    if (c->proxy == NULL) {
        SETOPT(CURLOPT_NOPROXY, "*");
    }
    if (c->ca_file != NULL) {
        SETOPT(CURLOPT_CAINFO, c->ca_file);
    }
    if (strcmp(req->method, "GET") == 0 && req->body == NULL) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "DELETE") == 0 && req->body == NULL) {
        SETOPT(CURLOPT_CUSTOMREQUEST, "DELETE");
    } else {
        /* POST, PUT, PATCH, or any method with a body (GHL sends DELETE with
         * one): a POST body under the real method name. COPYPOSTFIELDS copies,
         * so the caller's buffer is free on return. */
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SETOPT(CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
        if (strcmp(req->method, "POST") != 0) {
            SETOPT(CURLOPT_CUSTOMREQUEST, t->method);
        }
    }
#undef SETOPT
    if (cc != CURLE_OK) {
        snprintf(t->resp.error_text, sizeof(t->resp.error_text), "curl_easy_setopt: %s",
                 curl_easy_strerror(cc));
        t->resp.error = HTTP_E_OTHER;
        return -EINVAL;
    }
    return 0;
}

int http_send(struct http_client *c, const struct http_request *req, http_done_cb cb, void *ud,
              struct http_transfer **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    struct http_transfer *t = xcalloc(1, sizeof(*t));
    t->c = c;
    t->cb = cb;
    t->ud = ud;
    t->start_ms = util_mono_ms();
    str_copy(t->tag, sizeof(t->tag), req->log_tag ? req->log_tag : "http");
    str_copy(t->method, sizeof(t->method), "?");
    list_init(&t->link);
    list_init(&t->pending);
    buf_init(&t->resp.body, c->max_body);
    list_insert_tail(&c->transfers, &t->link);
    c->in_flight++;

    int rc;
    if (c->closing) {
        set_error(t, HTTP_E_CANCELLED, "client is closing");
        rc = -ESHUTDOWN;
    } else {
        rc = build_transfer(c, t, req);
    }
    if (rc == -ESHUTDOWN) {
        log_debug(t->tag, "request not sent: %s", t->resp.error_text);
        t->state = XFER_FINISHED;
    } else if (rc != 0) {
        log_warn(t->tag, "request not sent: %s", t->resp.error_text);
        t->state = XFER_FINISHED;
    } else {
        t->state = XFER_QUEUED;
        if (out != NULL) {
            *out = t;
        }
    }
    /* Both paths complete from on_defer (or from teardown/finalize when
     * closing), never from here. */
    push_pending(t);
    arm_defer(c);
    return rc;
}

void http_cancel(struct http_transfer *t)
{
    if (t == NULL || t->state == XFER_CALLING || t->cancel_requested) {
        return;
    }
    t->cancel_requested = true;
    push_pending(t);
    arm_defer(t->c);
}

size_t http_in_flight(const struct http_client *c)
{
    return c->in_flight;
}

size_t http_spare_bytes(const struct http_client *c)
{
    size_t n = 0;
    for (unsigned i = 0; i < c->nspare; i++) {
        n += c->spare[i].cap;
    }
    return n;
}

void http_client_close(struct http_client *c, void (*on_closed)(void *ud), void *ud)
{
    if (c == NULL || c->closing) {
        return;
    }
    c->closing = true;
    c->on_closed = on_closed;
    c->on_closed_ud = ud;
    arm_defer(c);
}

const char *http_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case HTTP_E_TIMEOUT:
        return "timed out";
    case HTTP_E_CONNECT:
        return "could not connect";
    case HTTP_E_TOO_BIG:
        return "response too big";
    case HTTP_E_REDIRECT:
        return "redirect not followed";
    case HTTP_E_PROTOCOL:
        return "protocol error";
    case HTTP_E_CANCELLED:
        return "cancelled";
    case HTTP_E_OTHER:
        return "HTTP client error";
    case HTTP_E_AUTH:
        return "the credential has failed (run pollen auth login)";
    default:
        break;
    }
    if (err < 0 && err > -1000) {
        return strerror(-err);
    }
    return "unknown error";
}

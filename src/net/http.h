/*
 * http: asynchronous HTTP client on one libcurl multi handle driven by a
 * libuv loop (curl docs/examples/multi-uv.c, hardened per c-style.md §2 and
 * reliability.md §3.1).
 *
 * Owns: one CURLM per client (connection, DNS and TLS-session caches shared by
 * all its transfers, so keep-alive connections are reused), one uv_timer for
 * curl's timeout, one uv_timer for deferred work, one uv_poll per socket curl
 * asks us to watch, and every in-flight transfer (easy handle, request
 * headers, copied body, response buffer), and up to four emptied response
 * buffers of at most 2 MiB each, reused by later responses.
 *
 * Invariants:
 * - Every response is bounded: body capped at max_body bytes counted after
 *   decompression (a gzip bomb stops at <= cap + 16 KiB delivered), headers
 *   bounded by curl (100 KiB), Location truncated to 511 bytes, a captured
 *   header value at most HTTP_CAPTURE_LEN - 1 bytes. The client knows no
 *   API's headers: a request names the ones it wants (capture_headers).
 * - Only https is spoken, except plain http to a loopback host (url.h's
 *   list) when allow_plain_http_loopback is set. Redirects are never followed: any 3xx
 *   completes with HTTP_E_REDIRECT and the Location header in `location`.
 * - curl sockets are FD_CLOEXEC (SOCKOPTFUNCTION), and so is the multi
 *   handle's internal wake-up socketpair, so spawned children inherit none.
 * - No libcurl function is called from inside a libcurl callback. http_send,
 *   http_cancel and http_client_close only queue work; a 0 ms uv_timer does
 *   it from the loop. Every user callback therefore runs from the loop,
 *   never synchronously inside the http_* call that caused it, and always
 *   outside any curl callback, so it may call http_send/http_cancel/
 *   http_client_close itself.
 * - Request headers and bodies are never logged and never appear in
 *   error_text.
 *
 * Thread context: loop thread only (the libuv loop passed to create).
 */
#ifndef POLLEN_HTTP_H
#define POLLEN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "buf.h"

/* Error codes in http_response.error (and from http_strerror). */
#define HTTP_E_TIMEOUT -1001    /* connect, total or low-speed timeout */
#define HTTP_E_CONNECT -1002    /* DNS, TCP connect or TLS handshake/verification failed */
#define HTTP_E_TOO_BIG -1003    /* body over max_body (Content-Length or counted) */
#define HTTP_E_REDIRECT -1004   /* the server answered 3xx; `location` holds where to */
#define HTTP_E_PROTOCOL -1005   /* broken transfer or bad HTTP: reset mid-body, truncated
                                   body, bad encoding, or a scheme that is not allowed */
#define HTTP_E_CANCELLED -1006  /* http_cancel or http_client_close */
#define HTTP_E_OTHER -1007      /* anything else (invalid request, curl internal errors) */
#define HTTP_E_AUTH -1008       /* not sent: the location's credential has failed for good
                                   (set by location.c, never by this module) */

struct http_client_options {
    uint64_t connect_timeout_ms;    /* default 10000 */
    uint64_t timeout_ms;            /* default 60000, whole transfer */
    long low_speed_limit;           /* bytes/s, default 100 */
    long low_speed_time_s;          /* default 30 */
    size_t max_body;                /* default 16 MiB, counted after decompression */
    long max_host_connections;      /* default 4 */
    const char *ca_file;            /* optional CURLOPT_CAINFO (copied) */
    const char *proxy;              /* CURLOPT_PROXY (copied); NULL: none, whatever
                                       http_proxy and friends say in the environment */
    bool allow_plain_http_loopback; /* http:// allowed only to 127.0.0.1/localhost/[::1] */
    const char *user_agent;         /* default "pollen/<version>" (copied) */
};

/* Response headers a request asks to keep (capture_headers): at most this many, each value
 * at most HTTP_CAPTURE_LEN - 1 bytes (a longer one is dropped, not cut). */
#define HTTP_CAPTURE_MAX 8
#define HTTP_CAPTURE_LEN 64

struct http_captured {
    bool present;                   /* the final response carried the header */
    char value[HTTP_CAPTURE_LEN];   /* its value, white space trimmed; "" when absent */
};

struct http_response {
    long status;                    /* 0 when no HTTP response arrived */
    int error;                      /* 0, or HTTP_E_*; 4xx/5xx are not errors here */
    char error_text[256];           /* curl's message or ours; never request headers */
    struct buf body;                /* NUL-terminated, capped at max_body; emptied
                                       when the transfer fails (reset, timeout, cap) */
    struct http_captured captured[HTTP_CAPTURE_MAX]; /* by index in capture_headers */
    long retry_after_s;             /* Retry-After clamped to [1,3600]; 0 when absent */
    char location[512];             /* Location header on 3xx (truncated), else "" */
    uint64_t elapsed_ms;            /* from http_send to completion */
};

struct http_request {
    const char *method;             /* GET POST PUT DELETE PATCH */
    const char *url;                /* at most 8192 bytes */
    const char *const *headers;     /* NULL-terminated "Name: value" lines, at most 64
                                       of at most 8192 bytes; no CR/LF/NUL */
    const char *body;               /* copied; may be NULL. Any method may carry one */
    size_t body_len;                /* at most max_body */
    const char *content_type;       /* default "application/json" when a body is given */
    const char *log_tag;            /* log prefix, e.g. "trigger:new"; default "http" */
    uint64_t timeout_ms;            /* total time allowed; 0 = the client's timeout */
    const char *const *capture_headers; /* NULL-terminated names (case-insensitive, at most
                                       HTTP_CAPTURE_MAX) whose values resp.captured keeps;
                                       borrowed until the callback (a static table) */
    bool fresh_connection;          /* send on a new connection, never a reused one:
                                       libcurl silently re-sends a request whose reused
                                       connection dies before the answer, which would
                                       repeat a write that is not idempotent (the caller's
                                       own retry counts attempts; libcurl's does not) */
};

struct http_client;
struct http_transfer;

/*
 * Completion callback. resp is owned by the client and freed after the
 * callback returns; the body's memory is lent for the callback only: once it
 * returns, the buffer is emptied and reused for a later response, so no
 * pointer into resp->body.data may outlive the callback. Take the body with
 * buf_steal(&resp->body, &len) to keep it (the caller then owns and frees it;
 * that buffer is not reused). Runs from the loop, outside any curl callback;
 * it may call http_send, http_cancel and http_client_close (a request sent
 * from the callback never gets the buffer the callback is reading).
 */
typedef void (*http_done_cb)(struct http_response *resp, void *ud);

/*
 * Creates a client on loop. opts may be NULL; zero fields take their
 * defaults; strings are copied. Calls curl_global_init (reference counted by
 * curl). Returns NULL if curl cannot be initialised.
 */
struct http_client *http_client_create(uv_loop_t *loop, const struct http_client_options *opts);

/*
 * Starts a request. Everything in req is copied; the caller may free it on
 * return. cb is ALWAYS called exactly once, later, from the loop (never
 * inside http_send), even when http_send returns an error, so cleanup of ud
 * belongs in cb only. Returns 0 and sets *out (may be NULL) to a handle valid
 * until cb starts; or, with *out = NULL and cb reporting the failure:
 *   -EINVAL     bad method, over-long URL/header, CR/LF/NUL in a header,
 *               too many headers (cb: HTTP_E_OTHER); body over max_body
 *               (cb: HTTP_E_TOO_BIG); scheme not allowed (cb: HTTP_E_PROTOCOL)
 *   -ESHUTDOWN  http_client_close was called (cb: HTTP_E_CANCELLED)
 */
int http_send(struct http_client *c, const struct http_request *req, http_done_cb cb, void *ud,
              struct http_transfer **out);

/*
 * Cancels a transfer; its cb then runs (deferred, never inside this call)
 * with HTTP_E_CANCELLED. A no-op once cb is running. t must not be used after
 * its cb has returned.
 */
void http_cancel(struct http_transfer *t);

/* Transfers whose callback has not yet started. */
size_t http_in_flight(const struct http_client *c);

/* Bytes held by emptied response buffers kept for reuse (tests, diagnostics):
 * at most 4 x 2 MiB. */
size_t http_spare_bytes(const struct http_client *c);

/*
 * Closes the client (deferred, never inside this call): cancels every
 * in-flight transfer (each cb runs with HTTP_E_CANCELLED; requests sent from
 * those callbacks are cancelled too), removes the easy handles, cleans up the
 * multi handle while the loop and socket handles still exist, then closes the
 * uv handles. When the last handle is closed the client is freed and
 * on_closed(ud) runs (may be NULL). After that uv_loop_close succeeds if
 * nothing else uses the loop. Calling it twice is a no-op.
 */
void http_client_close(struct http_client *c, void (*on_closed)(void *ud), void *ud);

/* Names an HTTP_E_* code, a negative errno, or 0. Never NULL. */
const char *http_strerror(int err);

#endif

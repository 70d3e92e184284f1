/*
 * target: one named request target: a base URL, a credential sent as one
 * header, a request budget and the queue of requests waiting for it. It is
 * what a HighLevel location (ghl/location) and a user's own API ([api NAME])
 * have in common, with nothing of either: no Version header, no location id.
 *
 * Every request goes through target_submit, which holds it until the
 * target's rate limiter (ratelimit.h) grants a slot, then hands it to the
 * shared HTTP client with the credential header and the caller's headers.
 * Two classes share the budget: TARGET_POLL (trigger cycles and actions; the
 * whole budget, first when the window is full) and TARGET_SWEEP (for_each
 * sweeps: their own `sweep_share` of the window and `sweep_daily_share` of
 * the day). 429s and Retry-After, and the server's rate-limit headers when
 * the owner parses them (hooks.ratelimit_info), are fed back to the limiter.
 * The requests of the last 24 h are logged every hour as "KIND:NAME budget"
 * lines, at warn level when they pass 50% and 80% of the daily limit.
 *
 * Credentials: a static one (options.secret, e.g. an [api NAME]'s `auth`),
 * or one the owner's hooks provide per request (hooks.authorize: a
 * location's OAuth tokens, possibly after a refresh). The credential goes
 * into `auth_header: auth_scheme VALUE` only when the request is sent and
 * is wiped after; it is never logged. A 401 asks hooks.refused whether to
 * queue the request again (once).
 *
 * Owns: the queued requests (their copies of method, URL, headers and body),
 * the limiter and two timers. Invariants: at most TARGET_MAX_IN_FLIGHT
 * requests on the wire; every submitted request's callback runs exactly once,
 * from the loop, never inside target_submit.
 * Thread context: loop thread only. Callbacks run on the loop.
 */
#ifndef POLLEN_TARGET_H
#define POLLEN_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"
#include "ratelimit.h"

/* Requests one target may have on the wire at once: enough to overlap
 * latency, few enough that a burst cannot outrun the limiter's feedback. */
#define TARGET_MAX_IN_FLIGHT 6

struct target;
struct target_pending;

enum target_class {
    TARGET_POLL = 0,
    TARGET_SWEEP = 1,
};

/* One query parameter; the value is percent-encoded by target_submit. */
struct target_query {
    const char *name;
    const char *value;
};

struct target_request {
    const char *method;
    const char *path;                    /* already percent-encoded, e.g. /customers/abc */
    const struct target_query *query;    /* may be NULL */
    size_t nquery;
    const char *header;                  /* one extra "Name: value" line, or NULL */
    const char *body;                    /* JSON body or NULL */
    size_t body_len;
    const char *log_tag;
    bool fresh_connection;               /* a write that is not idempotent (http.h) */
};

/* What the owner adds to the generic target (all optional: NULL members). */
struct target_hooks {
    void *ud;
    /* Finds the credential for p (only while the target is open) and calls target_send(p, value) (now or
     * later) or target_fail(p, ...). Without it, options.secret is sent. */
    void (*authorize)(void *ud, struct target_pending *p);
    /* p was cancelled while authorize had not sent it yet: stop waiting and
     * call target_fail(p, ...). */
    void (*cancel_authorize)(void *ud, struct target_pending *p);
    /* A 401 answered p, sent with credential: true queues p again at the
     * front (at most once per request; only while the target is open). */
    bool (*refused)(void *ud, struct target_pending *p, const char *credential);
    /* Reads the server's rate-limit headers (captured per capture_headers). */
    void (*ratelimit_info)(const struct http_response *resp, struct http_ratelimit_info *out);
    const char *const *capture_headers; /* static, NULL-terminated, or NULL */
};

struct target_options {
    const char *kind;        /* "location", "api": log lines say "KIND NAME" */
    const char *name;
    const char *base_url;    /* no trailing slash */
    const char *auth_header; /* the credential's header name; NULL: Authorization */
    const char *auth_scheme; /* its value's prefix; NULL: Bearer; "": the bare value */
    const char *secret;      /* a static credential (copied, wiped at close), or NULL */
    uint64_t timeout_ms;     /* each request's total time; 0: the HTTP client's */
    unsigned rate_limit;     /* requests per rate_window_ms (0: ratelimit's default) */
    uint64_t rate_window_ms;
    uint64_t daily_limit;
    double sweep_share;       /* TARGET_SWEEP's share of the window */
    double sweep_daily_share; /* and of daily_limit */
};

/* Strings of opts are copied; hooks (may be NULL) are copied, their ud borrowed. */
struct target *target_create(uv_loop_t *loop, struct http_client *http,
                             const struct target_options *opts, const struct target_hooks *hooks);
/* Stops the timers and fails queued requests with HTTP_E_CANCELLED; frees on close. */
void target_close(struct target *t);

/*
 * Queues a request. The callback is always called exactly once, from the
 * loop, never synchronously. Returns 0, or -EINVAL for an invalid request.
 * *out (optional) can be passed to target_cancel until the callback runs.
 */
int target_submit(struct target *t, enum target_class cls, const struct target_request *req,
                  http_done_cb cb, void *ud, struct target_pending **out);
void target_cancel(struct target_pending *p);

const char *target_name(const struct target *t);
size_t target_queued(const struct target *t);
/* The request budget's numbers now (window, day, server feedback): /metrics, `pollen status`. */
void target_rate_stats(const struct target *t, struct ratelimit_stats *out);
/* How long (ms) until a TARGET_SWEEP request could start (0: now). */
uint64_t target_sweep_wait(struct target *t);

/* For hooks.authorize: sends p with credential (copied; NULL: none). */
void target_send(struct target_pending *p, const char *credential);
/* For hooks: completes p without sending it (error: an HTTP_E_*). */
void target_fail(struct target_pending *p, int error, const char *text);
/* The owner's slot in p (hooks keep their wait there); NULL at first. */
void **target_pending_slot(struct target_pending *p);
/* The target p was submitted to. */
struct target *target_of(const struct target_pending *p);
/* The request's log tag (borrowed). */
const char *target_pending_tag(const struct target_pending *p);

/* Builds base_url + path + "?" + query (url_escape each name and value) into a new string,
 * or NULL when too long (exposed for tests). */
char *target_build_url(const char *base_url, const char *path, const struct target_query *query,
                       size_t nquery);

#endif

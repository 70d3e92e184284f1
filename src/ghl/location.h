/*
 * location: one HighLevel location (sub-account) as the engine sees it: its
 * id and companyId, its credential, and its request target (net/target: the
 * base URL, the request budget and the queue every request for the location
 * goes through). What is HighLevel's is here: the Authorization header's
 * token comes from the location's credential (a static token, an OAuth
 * installation, or location tokens of an agency), and a 401 invalidates it
 * and the request is retried once after the (single-flight) refresh; the
 * X-RateLimit-* headers feed the limiter (ghl/api); each request may carry
 * the catalog's Version header. The generic part (queue, limiter classes,
 * budget lines, URL building) is target.h's: callers that only need to send
 * (the poller) use location_target.
 *
 * Owns: the location's strings and its target. Invariants: the target's
 * hooks never touch the location once location_close has run (the target
 * outlives it until its requests finish).
 * Thread context: loop thread only. Callbacks run on the loop.
 */
#ifndef POLLEN_LOCATION_H
#define POLLEN_LOCATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"
#include "target.h"

struct config;
struct config_location;
struct location;

/* The classes of target.h, under the names the callers know. */
#define LOCATION_POLL TARGET_POLL
#define LOCATION_SWEEP TARGET_SWEEP

struct location_request {
    const char *method;
    const char *path;                    /* already percent-encoded path, e.g. /contacts/abc/tasks */
    const struct target_query *query;    /* may be NULL */
    size_t nquery;
    const char *version;                 /* Version header value, or NULL for none */
    const char *body;                    /* JSON body or NULL */
    size_t body_len;
    const char *log_tag;
    bool fresh_connection;               /* a write that is not idempotent (http.h) */
};

/* What a location needs from the configuration (strings are copied). */
struct location_options {
    const char *name;        /* the [location NAME] */
    const char *id;          /* the API's locationId */
    const char *base_url;    /* the API's base URL */
    const char *company_id;  /* its companyId when configured ([location] company_id,
                                a [company]'s id), or NULL */
    double sweep_share;      /* fraction of the window budget for for_each sweeps */
    double sweep_daily_share; /* fraction of daily_limit for for_each sweeps */
    unsigned rate_limit;     /* requests per rate_window_ms */
    uint64_t rate_window_ms;
    uint64_t daily_limit;    /* requests per day */
};

/* cred (borrowed, must outlive the location) gives the access tokens. */
struct oauth_credential;
struct location *location_create(uv_loop_t *loop, struct http_client *http,
                                 const struct location_options *opts,
                                 struct oauth_credential *cred);
/* Stops the timer and fails queued requests with HTTP_E_CANCELLED; frees on close. */
void location_close(struct location *loc);

/*
 * Queues a request. The callback is always called exactly once, from the
 * loop, never synchronously. Returns 0, or -EINVAL for an invalid request.
 * *out (optional) can be passed to target_cancel until the callback runs.
 */
int location_submit(struct location *loc, enum target_class cls, const struct location_request *req,
                    http_done_cb cb, void *ud, struct target_pending **out);
/* The location's request target (borrowed until location_close). */
struct target *location_target(struct location *loc);
/* The location's request budget now (target_rate_stats). */
void location_rate_stats(const struct location *loc, struct ratelimit_stats *out);

const char *location_name(const struct location *loc);
const char *location_id(const struct location *loc);
/* The companyId {company} sends: the configured one, else that of the
 * location's OAuth installation (its token pair); NULL for a static token
 * without one, or before a token is loaded. Borrowed until the next return
 * to the loop. */
const char *location_company_id(const struct location *loc);

#endif

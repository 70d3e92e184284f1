/*
 * location: one HighLevel location (sub-account) as the engine sees it: its
 * credentials, its request budget and the queue of requests waiting for it.
 *
 * Every request the engine makes for a location goes through
 * location_submit, which holds it until the location's rate limiter grants
 * a slot, then hands it to the shared HTTP client. Two classes share the
 * budget (ratelimit.h): LOCATION_POLL (trigger cycles; may use the whole
 * budget, and goes first when the window is full) and LOCATION_SWEEP
 * (for_each sweeps: their own `sweep_share` of the window whatever the
 * polls use, while the total stays under the limit, and at most
 * `sweep_daily_share` of the daily limit). The server's X-RateLimit-*
 * headers and 429s are fed back to the limiter after each response.
 *
 * Visible budget: the location logs its requests of the last 24 h (and the
 * sweeps' part) every hour, and at warn level when they pass 50% and 80% of
 * the daily limit (once per crossing, at most once a day each).
 *
 * URLs are built here from the API base URL, a path and query parameters
 * (each percent-encoded), and the location adds the Authorization and
 * Version headers: callers never see the token. Tokens come from the
 * location's credential (a static token, an OAuth installation, or location
 * tokens of an agency); a 401 invalidates the token and the request is
 * retried once after the (single-flight) refresh.
 * Thread context: loop thread only. Callbacks run on the loop.
 */
#ifndef POLLEN_LOCATION_H
#define POLLEN_LOCATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"
#include "ratelimit.h"

struct config;
struct config_location;
struct location;

enum location_class {
    LOCATION_POLL = 0,
    LOCATION_SWEEP = 1,
};

/* One query parameter; the value is percent-encoded by location_submit. */
struct location_query {
    const char *name;
    const char *value;
};

struct location_request {
    const char *method;
    const char *path;                    /* already percent-encoded path, e.g. /contacts/abc/tasks */
    const struct location_query *query;  /* may be NULL */
    size_t nquery;
    const char *version;                 /* Version header value, or NULL for none */
    const char *body;                    /* JSON body or NULL */
    size_t body_len;
    const char *log_tag;
    bool fresh_connection;               /* a write that is not idempotent (http.h) */
};

struct location_pending;

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
 * *out (optional) can be passed to location_cancel until the callback runs.
 */
int location_submit(struct location *loc, enum location_class cls, const struct location_request *req,
                    http_done_cb cb, void *ud, struct location_pending **out);
void location_cancel(struct location_pending *p);

const char *location_name(const struct location *loc);
const char *location_id(const struct location *loc);
/* The companyId {company} sends: the configured one, else that of the
 * location's OAuth installation (its token pair); NULL for a static token
 * without one, or before a token is loaded. Borrowed until the next return
 * to the loop. */
const char *location_company_id(const struct location *loc);
size_t location_queued(const struct location *loc);
/* The request budget's numbers now (window, day, server feedback): /metrics, `pollen status`. */
void location_rate_stats(const struct location *loc, struct ratelimit_stats *out);
/* How long (ms) until a LOCATION_SWEEP request could start (0: now): a sweep
 * that would wait long (its daily share is spent) holds its request back. */
uint64_t location_sweep_wait(struct location *loc);

/* Builds base_url + path + "?" + query (url_escape each name and value) into a new string
 * (exposed for tests). */
char *location_build_url(const char *base_url, const char *path, const struct location_query *query,
                         size_t nquery);

#endif

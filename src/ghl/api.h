/*
 * api: HighLevel's wire conventions in one place: what a status code means
 * (status classes), the error body's "message" and "traceId", and the
 * X-RateLimit-* response headers. The HTTP client (net/http) knows none of
 * this: it captures the headers a request names, and this module reads
 * them.
 *
 * Owns: nothing; pure functions and constant tables.
 * Invariants: one status table for every caller; what a caller does with a
 * class may differ (a 404 is a confirmed deletion for the poller when the
 * API itself says so, a dead action for the dispatcher unless the delete
 * was already done), but which statuses are transient never does.
 * Thread context: safe on any thread.
 */
#ifndef POLLEN_API_H
#define POLLEN_API_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "http.h"
#include "ratelimit.h"

enum ghl_status_class {
    GHL_STATUS_OK,      /* 2xx */
    GHL_STATUS_RETRY,   /* 408, 425, 429, 5xx: transient, try again later */
    GHL_STATUS_AUTH,    /* 401, 403: the credential or its scopes were refused */
    GHL_STATUS_MISSING, /* 400, 404, 422: no such record (or a request the API will never take) */
    GHL_STATUS_GONE,    /* 410: gone, whoever answered */
    GHL_STATUS_OTHER,   /* anything else (1xx, 3xx, other 4xx): permanent */
};

/* The class of an HTTP status. 0 (no response) is GHL_STATUS_OTHER: a caller decides
 * about transport failures before it asks. */
enum ghl_status_class ghl_api_status_class(long status);

/*
 * The "message" of a HighLevel error body (a string, or an array of strings
 * joined with "; ") copied into out (size bytes, always terminated, "" when
 * absent or body is NULL). Shared by the poller's failure lines and
 * dispatch's outcomes.
 */
void ghl_api_message(const cJSON *body, char *out, size_t size);
/* The body's "traceId" (borrowed from body), or NULL when absent or body is NULL. */
const char *ghl_api_trace_id(const cJSON *body);
/*
 * Whether resp's body is HighLevel's own error shape, {"statusCode": <the
 * response's status>, "message": string or array}: the API itself answered,
 * not a gateway or proxy in front of it.
 */
bool ghl_api_error_body(const struct http_response *resp);

/* The header names to put in http_request.capture_headers (NULL-terminated,
 * static): the five X-RateLimit-* headers, in GHL_API_RL_* order. */
extern const char *const ghl_api_capture_headers[];

/* The rate-limit headers of a response whose request captured
 * ghl_api_capture_headers; a field is -1 when absent or not a decimal. */
void ghl_api_ratelimit(const struct http_response *resp, struct http_ratelimit_info *out);

#endif

/*
 * api: see api.h. The message and rate-limit code moved here from json.c
 * and http.c; the status table replaces the lists the poller, the
 * dispatcher and the OAuth client each kept.
 */
#include "api.h"

#include <stdio.h>
#include <string.h>

#include "json.h"
#include "util.h"

enum ghl_status_class ghl_api_status_class(long s)
{
    if (s >= 200 && s < 300) {
        return GHL_STATUS_OK;
    }
    if (s == 408 || s == 425 || s == 429 || s >= 500) {
        return GHL_STATUS_RETRY;
    }
    switch (s) {
    case 401:
    case 403:
        return GHL_STATUS_AUTH;
    case 400:
    case 404:
    case 422:
        return GHL_STATUS_MISSING;
    case 410:
        return GHL_STATUS_GONE;
    default:
        return GHL_STATUS_OTHER;
    }
}

void ghl_api_message(const cJSON *body, char *out, size_t size)
{
    out[0] = '\0';
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(body, "message");
    if (cJSON_IsString(m)) {
        str_copy(out, size, m->valuestring);
        return;
    }
    if (!cJSON_IsArray(m)) {
        return;
    }
    size_t used = 0;
    for (const cJSON *item = m->child; item != NULL && used + 1 < size; item = item->next) {
        if (!cJSON_IsString(item)) {
            continue;
        }
        int n = snprintf(out + used, size - used, "%s%s", used > 0 ? "; " : "", item->valuestring);
        if (n < 0) {
            break;
        }
        /* snprintf reports what it would have written: clamp on truncation. */
        used = (size_t)n >= size - used ? size - 1 : used + (size_t)n;
    }
}

const char *ghl_api_trace_id(const cJSON *body)
{
    return body != NULL ? json_get_string(body, "traceId") : NULL;
}

bool ghl_api_error_body(const struct http_response *resp)
{
    cJSON *body = NULL;
    if (resp->body.len == 0 || json_parse(resp->body.data, resp->body.len, &body, NULL) != 0) {
        return false;
    }
    double code = 0;
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(body, "message");
    bool ok = cJSON_IsObject(body) && json_get_number(body, "statusCode", &code) &&
              code == (double)resp->status && (cJSON_IsString(msg) || cJSON_IsArray(msg));
    cJSON_Delete(body);
    return ok;
}

const char *const ghl_api_capture_headers[] = {
    "X-RateLimit-Limit-Daily",
    "X-RateLimit-Daily-Remaining",
    "X-RateLimit-Interval-Milliseconds",
    "X-RateLimit-Max",
    "X-RateLimit-Remaining",
    NULL,
};

/* Parses a non-negative decimal header value; false if it is not one. */
static bool parse_header_long(const char *v, long *out)
{
    size_t len = strlen(v);
    if (len == 0 || len > 18) {
        return false;
    }
    long x = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return false;
        }
        x = x * 10 + (v[i] - '0');
    }
    *out = x;
    return true;
}

void ghl_api_ratelimit(const struct http_response *resp, struct http_ratelimit_info *out)
{
    long *fields[] = {&out->limit_daily, &out->daily_remaining, &out->interval_ms, &out->max,
                      &out->remaining};
    _Static_assert(ARRAY_SIZE(ghl_api_capture_headers) - 1 == 5, "one field per header");
    _Static_assert(ARRAY_SIZE(ghl_api_capture_headers) - 1 <= HTTP_CAPTURE_MAX, "capture room");
    out->present = false;
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
        *fields[i] = -1;
        const struct http_captured *h = &resp->captured[i];
        if (h->present && parse_header_long(h->value, fields[i])) {
            out->present = true;
        }
    }
}

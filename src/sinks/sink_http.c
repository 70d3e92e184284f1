/*
 * sink_http: the "http" sink, a rule's request to any URL. Renders the URL
 * (its {{ }} parts percent-encoded), headers (secret ones masked, filled in
 * only when sent) and body; sends with an Idempotency-Key through the HTTP
 * client; classifies the response (shared with the ghl sink).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "sinks_int.h"
#include "template.h"
#include "util.h"

/* What a secret header's value is stored and printed as. */
#define SECRET_MASK "***"

/*
 * A "." or ".." path segment (also as %2E): curl and servers resolve those,
 * so the request would go to another path than the rule's (F10; only a
 * `| raw` value or the literal text can put one there).
 */
static bool has_dot_segment(const char *url)
{
    const char *host = strstr(url, "://");
    const char *p = host != NULL ? strchr(host + 3, '/') : NULL;
    while (p != NULL && *p == '/') {
        const char *seg = p + 1;
        size_t n = strcspn(seg, "/?#");
        size_t dots = 0;
        size_t i = 0;
        while (i < n) {
            if (seg[i] == '.') {
                i++;
            } else if (n - i >= 3 && seg[i] == '%' && seg[i + 1] == '2' &&
                       (seg[i + 2] == 'e' || seg[i + 2] == 'E')) {
                i += 3;
            } else {
                break;
            }
            dots++;
        }
        if (i == n && (dots == 1 || dots == 2)) {
            return true;
        }
        p = seg + n;
    }
    return false;
}

/*
 * A secret header (F16) is stored masked, with its reference in
 * request.secret_headers; send_http puts the value in when it sends, so
 * the outbox, the dead letters and --dry-run never hold it.
 */
static void add_secret_header(cJSON *req, cJSON *headers, const struct config_rule_param *h)
{
    cJSON *refs = cJSON_GetObjectItemCaseSensitive(req, "secret_headers");
    if (refs == NULL) {
        refs = cJSON_AddObjectToObject(req, "secret_headers");
    }
    cJSON_AddStringToObject(headers, h->name, SECRET_MASK);
    cJSON_AddStringToObject(refs, h->name, h->value);
}

static cJSON *render_http(struct sink_render *r, const struct config_rule *rule, cJSON *entry)
{
    (void)entry;
    char *url_text = NULL;
    char err[200];
    if (template_render_url(rule->url, r->event, r->now, &url_text, err, sizeof(err)) != 0) {
        snprintf(r->err, sizeof(r->err), "url: %s", err);
        return NULL;
    }
    if (!str_has_prefix(url_text, "https://") && !str_has_prefix(url_text, "http://")) {
        snprintf(r->err, sizeof(r->err), "url: '%.100s' is not an http(s) URL", url_text);
        free(url_text);
        return NULL;
    }
    if (has_dot_segment(url_text)) {
        snprintf(r->err, sizeof(r->err), "url: '%.100s' has a '.' or '..' path segment",
                 url_text);
        free(url_text);
        return NULL;
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "method", rule->method ? rule->method : "POST");
    cJSON_AddStringToObject(req, "url", url_text);
    free(url_text);
    cJSON *headers = cJSON_AddObjectToObject(req, "headers");
    for (size_t i = 0; i < rule->nheaders; i++) {
        if (rule->headers[i].is_secret) {
            add_secret_header(req, headers, &rule->headers[i]);
            continue;
        }
        cJSON *v = sink_render_param(r, &rule->headers[i]);
        if (v == NULL) {
            cJSON_Delete(req);
            return NULL;
        }
        char *text = sink_value_text(v);
        cJSON_Delete(v);
        if (strpbrk(text, "\r\n") != NULL) {
            snprintf(r->err, sizeof(r->err), "header %s: contains a line break", rule->headers[i].name);
            free(text);
            cJSON_Delete(req);
            return NULL;
        }
        cJSON_AddStringToObject(headers, rule->headers[i].name, text);
        free(text);
    }
    if (rule->method != NULL && strcmp(rule->method, "GET") == 0) {
        return req; /* GET carries no body */
    }
    if (rule->nparams == 0) {
        cJSON_AddItemToObject(req, "body", cJSON_Duplicate(r->event, 1));
        return req;
    }
    cJSON *body = cJSON_AddObjectToObject(req, "body");
    for (size_t i = 0; i < rule->nparams; i++) {
        cJSON *v = sink_render_param(r, &rule->params[i]);
        if (v == NULL) {
            cJSON_Delete(req);
            return NULL;
        }
        cJSON_AddItemToObject(body, rule->params[i].name, v);
    }
    return req;
}

/*
 * conflict_ok (a catalog create with a unique natural key, M14): a 400 or
 * 409 whose message says the record already exists, on a retry (attempt
 * 2 or later) only. A first attempt that clashes met someone else's record:
 * that stays a dead letter.
 */
static bool conflict_on_retry(const cJSON *entry, long status, const char *message)
{
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(entry, "conflict_ok")) ||
        sink_num(entry, "attempts", 1) < 2 || (status != 400 && status != 409)) {
        return false;
    }
    static const char needle[] = "already exist"; /* lower case */
    for (const char *p = message; *p != '\0'; p++) {
        size_t i = 0;
        while (needle[i] != '\0' && ascii_to_lower(p[i]) == needle[i]) {
            i++;
        }
        if (needle[i] == '\0') {
            return true;
        }
    }
    return false;
}

void dispatch__classify_http(const cJSON *entry, const void *response, struct sink_outcome *o)
{
    const struct http_response *resp = response;
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(entry, "request");
    long s = resp->status;
    o->status = s;
    o->retry_after_s = resp->retry_after_s;
    cJSON *body = NULL;
    if (resp->body.len > 0) {
        json_parse(resp->body.data, resp->body.len, &body, NULL);
    }
    const char *trace = body ? json_get_string(body, "traceId") : NULL;
    if (trace != NULL) {
        str_copy(o->trace_id, sizeof(o->trace_id), trace);
    }
    char text[400];
    json_api_message(body, text, sizeof(text));
    bool is_delete = strcmp(sink_str(req, "method"), "DELETE") == 0;
    bool gone_ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(entry, "gone_ok"));
    if (resp->error == HTTP_E_AUTH) {
        /* Not sent; the credential needs a new login. Retry until then. */
        o->kind = SINK_RETRY;
        snprintf(o->error, sizeof(o->error), "%s", resp->error_text);
    } else if (resp->error == HTTP_E_REDIRECT) {
        o->kind = SINK_DEAD;
        snprintf(o->error, sizeof(o->error), "redirect to '%.300s' refused", resp->location);
    } else if (resp->error != 0 && s == 0) {
        o->kind = SINK_RETRY;
        snprintf(o->error, sizeof(o->error), "%s", resp->error_text[0] ? resp->error_text
                                                                        : http_strerror(resp->error));
    } else if (s >= 200 && s < 300) {
        o->kind = SINK_SUCCESS;
        const char *result = sink_str(entry, "result");
        o->created_new = body != NULL && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "new"));
        if (body != NULL && strcmp(result, ".") == 0) {
            o->result = body; /* a flat response: the root is the written record (M1) */
            body = NULL;
        } else if (body != NULL && *result != '\0') {
            o->result = cJSON_DetachItemFromObjectCaseSensitive(body, result);
        }
    } else if (is_delete && gone_ok && (s == 404 || s == 400 || s == 422)) {
        o->kind = SINK_SUCCESS; /* already gone: a retried delete has nothing left to do */
        snprintf(o->error, sizeof(o->error), "already gone (HTTP %ld)", s);
    } else if (conflict_on_retry(entry, s, text)) {
        /* The first attempt's outcome was unknown (no answer): it created the record. */
        o->kind = SINK_SUCCESS;
        snprintf(o->error, sizeof(o->error), "already exists on attempt %.0f (HTTP %ld: %s)",
                 sink_num(entry, "attempts", 0), s, text);
    } else if (s == 408 || s == 425 || s == 429 || s >= 500) {
        o->kind = SINK_RETRY;
        snprintf(o->error, sizeof(o->error), "HTTP %ld%s%s", s, text[0] ? ": " : "", text);
    } else {
        o->kind = SINK_DEAD;
        snprintf(o->error, sizeof(o->error), "HTTP %ld%s%s", s, text[0] ? ": " : "", text);
    }
    cJSON_Delete(body);
}

/* The response of a "ghl" or "http" send: classified, then reported. */
void dispatch__http_done(struct http_response *resp, void *ud)
{
    struct sink_call *call = ud;
    call->handle = NULL;
    struct sink_outcome o;
    memset(&o, 0, sizeof(o));
    dispatch__classify_http(call->entry, resp, &o);
    /* The shutdown grace ran out: leave the entry in flight; its lease brings it back. */
    o.cancelled = resp->error == HTTP_E_CANCELLED;
    call->done(call, &o);
}

/* Frees header lines that may hold a secret, wiping them first. */
static void header_lines_free(char **lines)
{
    for (size_t i = 0; lines[i] != NULL; i++) {
        explicit_bzero(lines[i], strlen(lines[i]));
    }
    strv_free(lines);
}

/*
 * The request's header lines, with each secret header's value (see
 * add_secret_header) taken from the loaded config. NULL when a reference is
 * no longer configured (logged): the action cannot be sent as written.
 */
static char **header_lines(const struct dispatcher_env *env, const cJSON *entry,
                           const cJSON *req)
{
    const cJSON *headers = cJSON_GetObjectItemCaseSensitive(req, "headers");
    const cJSON *refs = cJSON_GetObjectItemCaseSensitive(req, "secret_headers");
    size_t n = (size_t)cJSON_GetArraySize(headers);
    char **lines = xcalloc(n + 2, sizeof(*lines));
    size_t k = 0;
    lines[k++] = xasprintf("Idempotency-Key: %s", sink_str(entry, "key"));
    const cJSON *h;
    cJSON_ArrayForEach(h, headers)
    {
        if (!cJSON_IsString(h)) {
            continue;
        }
        const char *value = h->valuestring;
        const char *ref = json_get_string(refs, h->string);
        if (ref != NULL && (value = config_header_secret(env->cfg, ref)) == NULL) {
            log_warn("dispatch",
                     "rule %s (outbox id %.0f): header %s = %s is not in the configuration any "
                     "more; the action goes to the dead-letter store",
                     sink_str(entry, "rule"), sink_num(entry, "id", 0), h->string, ref);
            header_lines_free(lines);
            return NULL;
        }
        lines[k++] = xasprintf("%s: %s", h->string, value);
    }
    lines[k] = NULL;
    return lines;
}

static int send_http(struct sink_call *call, const cJSON *req)
{
    char **lines = header_lines(call->env, call->entry, req);
    if (lines == NULL) {
        return -ENOKEY;
    }
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(req, "body");
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    char tag[128];
    snprintf(tag, sizeof(tag), "rule:%s", sink_str(call->entry, "rule"));
    struct http_request hr = {
        .method = sink_str(req, "method"),
        .url = sink_str(req, "url"),
        .headers = (const char *const *)lines,
        .body = text,
        .body_len = text ? strlen(text) : 0,
        .log_tag = tag,
        .timeout_ms = (uint64_t)sink_num(call->entry, "timeout_ms", 0),
    };
    struct http_transfer *transfer = NULL;
    int rc = http_send(call->env->http, &hr, dispatch__http_done, call, &transfer);
    call->handle = transfer;
    free(text);
    header_lines_free(lines);
    /* http_send calls back even when it fails: never report an error here. */
    (void)rc;
    return 0;
}

static void cancel_http(struct sink_call *call)
{
    http_cancel(call->handle);
}

const struct sink dispatch__sink_http = {
    .name = "http",
    .rule_kind = CONFIG_RULE_HTTP,
    .render = render_http,
    .send = send_http,
    .cancel = cancel_http,
    .classify = dispatch__classify_http,
};

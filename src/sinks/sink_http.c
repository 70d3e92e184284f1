/*
 * sink_http: the "http" sink, a rule's request to any URL. Its [rule] keys
 * (url, method, header.NAME, body.NAME, timeout: sink_http.h) are checked
 * at load; it renders the URL (its {{ }} parts percent-encoded), headers
 * (secret ones masked, filled in only when sent) and body; sends with an
 * Idempotency-Key through the HTTP client; classifies the response (shared
 * with the ghl sink).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "api.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "sink_http.h"
#include "sinks_int.h"
#include "template.h"
#include "url.h"
#include "util.h"

/* ---- [rule] keys: the kind's half, parsed by config_load -------------- */

/* Most headers per rule. */
#define HEADERS_MAX 32

/*
 * url: a template, but the scheme and host are literal so that event data
 * can never choose where the event is sent; https://, or http:// to
 * loopback only; no credentials (user@host would also hide the real host).
 */
static int parse_rule_url(struct ini_doc *doc, const struct ini_key *k, const char *value,
                          int line, void *field)
{
    const char *rest;
    bool https = str_has_prefix(value, "https://");
    if (https) {
        rest = value + 8;
    } else if (str_has_prefix(value, "http://")) {
        rest = value + 7;
    } else {
        ini_diag_add(&doc->diag, line,
                     "%s must start with https:// (http:// is allowed only for 127.0.0.1, "
                     "localhost and [::1])",
                     k->name);
        return -EINVAL;
    }
    size_t authority = strcspn(rest, "/?#");
    for (size_t i = 0; i < authority; i++) {
        if (rest[i] == '{' || rest[i] == '}') {
            ini_diag_add(&doc->diag, line,
                         "%s: the scheme and host must be literal (templates may appear in "
                         "the path and query only)",
                         k->name);
            return -EINVAL;
        }
        if (rest[i] == '@' || ascii_is_blank(rest[i])) {
            ini_diag_add(&doc->diag, line,
                         "%s must not contain credentials (@) or spaces before the path",
                         k->name);
            return -EINVAL;
        }
    }
    size_t host = rest[0] == '[' ? strcspn(rest, "]") + 1 : strcspn(rest, ":/?#");
    if (host == 0 || host > authority) {
        ini_diag_add(&doc->diag, line, "%s has no host", k->name);
        return -EINVAL;
    }
    if (host < authority) {
        const char *port = rest + host;
        size_t plen = authority - host;
        bool ok = port[0] == ':' && plen >= 2 && plen <= 6;
        for (size_t i = 1; ok && i < plen; i++) {
            ok = ascii_is_digit(port[i]);
        }
        if (!ok) {
            ini_diag_add(&doc->diag, line, "%s has a bad port", k->name);
            return -EINVAL;
        }
    }
    char *host_name = xstrndup(rest, host);
    bool loopback = url_is_loopback_host(host_name);
    free(host_name);
    if (!https && !loopback) {
        ini_diag_add(&doc->diag, line,
                     "%s must use https:// (http:// is allowed only for 127.0.0.1, localhost "
                     "and [::1])",
                     k->name);
        return -EINVAL;
    }
    struct template *t = config_rule_template(doc, line, k->name, value);
    if (t == NULL) {
        return -EINVAL;
    }
    struct template **dst = field;
    template_free(*dst);
    *dst = t;
    return 0;
}

/*
 * header.NAME = env:VAR | file:PATH: a secret such as a webhook token, read
 * now with the token's rules (the file private, clear FILE:LINE errors) and
 * kept out of every stored or printed request (see config_rule_param).
 */
static void parse_secret_header(struct ini_doc *doc, const struct ini_entry *e,
                                const char *name, struct sink_http_conf *c)
{
    char *secret = NULL;
    if (config_rule_secret(doc, e, &secret) != 0) {
        return;
    }
    c->headers = xrealloc(c->headers, (c->nheaders + 1) * sizeof(*c->headers));
    c->headers[c->nheaders++] = (struct config_rule_param){
        .name = xstrdup(name),
        .value = xstrdup(e->value),
        .line = e->line,
        .is_secret = true,
        .secret = secret,
    };
}

/* Headers pollen sets itself, or that would break the request's framing. */
static const char *const reserved_headers[] = {
    "host", "content-length", "transfer-encoding", "connection", "content-type",
    "idempotency-key", "expect", "te", "upgrade", "trailer", NULL,
};

static void add_rule_header(struct ini_doc *doc, const struct ini_entry *e,
                            struct sink_http_conf *c)
{
    const char *name = e->key + strlen("header.");
    size_t len = strlen(name);
    bool ok = len > 0 && len <= INI_NAME_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        ok = ascii_is_alnum(name[i]) || name[i] == '-';
    }
    if (!ok) {
        ini_diag_add(&doc->diag, e->line,
                     "'%s': a header name is 1-%d characters of A-Z a-z 0-9 -", e->key,
                     INI_NAME_MAX);
        return;
    }
    for (size_t i = 0; reserved_headers[i] != NULL; i++) {
        if (strcasecmp(reserved_headers[i], name) == 0) {
            ini_diag_add(&doc->diag, e->line,
                         "'%s': pollen sets this header itself (JSON body, Idempotency-Key, "
                         "framing)",
                         e->key);
            return;
        }
    }
    for (size_t i = 0; i < c->nheaders; i++) {
        if (strcasecmp(c->headers[i].name, name) == 0) {
            ini_diag_add(&doc->diag, e->line,
                         "header '%s' is already set on line %d (header names ignore case)",
                         name, c->headers[i].line);
            return;
        }
    }
    if (c->nheaders == HEADERS_MAX) {
        ini_diag_add(&doc->diag, e->line, "more than %d headers", HEADERS_MAX);
        return;
    }
    if (str_has_prefix(e->value, "env:") || str_has_prefix(e->value, "file:")) {
        parse_secret_header(doc, e, name, c);
        return;
    }
    config_rule_param_add(doc, e, name, &c->headers, &c->nheaders);
}

/* body.NAME: one member of the JSON body. */
static void add_rule_body(struct ini_doc *doc, const struct ini_entry *e,
                          struct sink_http_conf *c)
{
    const char *name = e->key + strlen("body.");
    size_t len = strlen(name);
    bool ok = len > 0 && len <= INI_NAME_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        ok = ascii_is_alnum(name[i]) || name[i] == '_' || name[i] == '-';
    }
    if (!ok) {
        ini_diag_add(&doc->diag, e->line,
                     "'%s': the member name after 'body.' must be letters, digits, _ "
                     "and -",
                     e->key);
        return;
    }
    config_rule_param_add(doc, e, name, &c->body, &c->nbody);
}

/* Keys outside the table: header.NAME and body.NAME. */
static bool http_extra(struct ini_doc *doc, const struct ini_entry *e, struct config_rule *r)
{
    struct sink_http_conf *c = r->sink_conf;
    bool header = str_has_prefix(e->key, "header.");
    if (!header && !str_has_prefix(e->key, "body.")) {
        return false;
    }
    if (e->value[0] == '\0') {
        ini_diag_add(&doc->diag, e->line, "empty value for '%s'", e->key);
    } else if (header) {
        add_rule_header(doc, e, c);
    } else {
        add_rule_body(doc, e, c);
    }
    return true;
}

static const char *const http_methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};

static const struct ini_key http_keys[] = {
    {.name = "url", .type = INI_KEY_CUSTOM, .offset = offsetof(struct sink_http_conf, url),
     .required = true, .parse = parse_rule_url},
    {.name = "method", .type = INI_KEY_STRING,
     .offset = offsetof(struct sink_http_conf, method), .def = "POST",
     .choices = http_methods},
};
enum { HTTP_URL, HTTP_METHOD };

static void http_finish(struct ini_doc *doc, const struct config_rule *r, const int *lines)
{
    const struct sink_http_conf *c = r->sink_conf;
    if (c->method != NULL && strcmp(c->method, "GET") == 0 && c->nbody > 0) {
        ini_diag_add(&doc->diag, c->body[0].line,
                     "body.%s: method = GET sends no body (use POST, PUT or PATCH)",
                     c->body[0].name);
    }
    for (size_t i = 0; i < c->nbody; i++) {
        config_rule_warn_changes(doc, r, c->body[i].tmpl, c->body[i].name, c->body[i].line);
    }
    for (size_t i = 0; i < c->nheaders; i++) {
        config_rule_warn_changes(doc, r, c->headers[i].tmpl, c->headers[i].name,
                                 c->headers[i].line);
    }
    config_rule_warn_changes(doc, r, c->url, "url", lines[HTTP_URL]);
}

static void http_free_conf(void *conf)
{
    struct sink_http_conf *c = conf;
    template_free(c->url);
    free(c->method);
    config_rule_params_free(c->headers, c->nheaders);
    config_rule_params_free(c->body, c->nbody);
}

const struct config_rule_kind sink_http_rule_kind = {
    .name = "http",
    .keys = http_keys,
    .nkeys = ARRAY_SIZE(http_keys),
    .conf_size = sizeof(struct sink_http_conf),
    .timeout = true,
    .extra = http_extra,
    .finish = http_finish,
    .free_conf = http_free_conf,
};

/*
 * The value of a secret header reference ("env:VAR" or "file:PATH" as
 * written in some http rule's header.NAME), or NULL when no loaded rule has
 * it (the config changed while the action waited) or secrets were skipped.
 */
static const char *header_secret(const struct config *cfg, const char *ref)
{
    for (size_t i = 0; cfg != NULL && ref != NULL && i < cfg->nrules; i++) {
        const struct config_rule *r = &cfg->rules[i];
        const struct sink_http_conf *c = r->sink_conf;
        for (size_t j = 0; r->kind == &sink_http_rule_kind && j < c->nheaders; j++) {
            if (c->headers[j].is_secret && c->headers[j].secret != NULL &&
                strcmp(c->headers[j].value, ref) == 0) {
                return c->headers[j].secret;
            }
        }
    }
    return NULL;
}

/* ---- render, send, classify ------------------------------------------- */

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
    const struct sink_http_conf *c = rule->sink_conf;
    (void)entry;
    char *url_text = NULL;
    char err[200];
    if (template_render_url(c->url, r->event, r->now, &url_text, err, sizeof(err)) != 0) {
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
    cJSON_AddStringToObject(req, "method", c->method ? c->method : "POST");
    cJSON_AddStringToObject(req, "url", url_text);
    free(url_text);
    cJSON *headers = cJSON_AddObjectToObject(req, "headers");
    for (size_t i = 0; i < c->nheaders; i++) {
        if (c->headers[i].is_secret) {
            add_secret_header(req, headers, &c->headers[i]);
            continue;
        }
        cJSON *v = sink_render_param(r, &c->headers[i]);
        if (v == NULL) {
            cJSON_Delete(req);
            return NULL;
        }
        char *text = sink_value_text(v);
        cJSON_Delete(v);
        if (strpbrk(text, "\r\n") != NULL) {
            snprintf(r->err, sizeof(r->err), "header %s: contains a line break",
                     c->headers[i].name);
            free(text);
            cJSON_Delete(req);
            return NULL;
        }
        cJSON_AddStringToObject(headers, c->headers[i].name, text);
        free(text);
    }
    if (c->method != NULL && strcmp(c->method, "GET") == 0) {
        return req; /* GET carries no body */
    }
    if (c->nbody == 0) {
        cJSON_AddItemToObject(req, "body", cJSON_Duplicate(r->event, 1));
        return req;
    }
    cJSON *body = cJSON_AddObjectToObject(req, "body");
    for (size_t i = 0; i < c->nbody; i++) {
        cJSON *v = sink_render_param(r, &c->body[i]);
        if (v == NULL) {
            cJSON_Delete(req);
            return NULL;
        }
        cJSON_AddItemToObject(body, c->body[i].name, v);
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
    const char *trace = ghl_api_trace_id(body);
    if (trace != NULL) {
        str_copy(o->trace_id, sizeof(o->trace_id), trace);
    }
    char text[400];
    ghl_api_message(body, text, sizeof(text));
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
    } else if (is_delete && gone_ok && ghl_api_status_class(s) == GHL_STATUS_MISSING) {
        o->kind = SINK_SUCCESS; /* already gone: a retried delete has nothing left to do */
        snprintf(o->error, sizeof(o->error), "already gone (HTTP %ld)", s);
    } else if (conflict_on_retry(entry, s, text)) {
        /* The first attempt's outcome was unknown (no answer): it created the record. */
        o->kind = SINK_SUCCESS;
        snprintf(o->error, sizeof(o->error), "already exists on attempt %.0f (HTTP %ld: %s)",
                 sink_num(entry, "attempts", 0), s, text);
    } else if (ghl_api_status_class(s) == GHL_STATUS_RETRY) {
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
        if (ref != NULL && (value = header_secret(env->cfg, ref)) == NULL) {
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
    .status_word = "HTTP",
    .rule_kind = &sink_http_rule_kind,
    .render = render_http,
    .send = send_http,
    .cancel = cancel_http,
    .classify = dispatch__classify_http,
};

/*
 * oauth_exchange: the authorization-code exchange `pollen auth login`
 * runs (POST /oauth/token with grant_type=authorization_code, then the
 * pair saved on a pool thread), the authorize URL and oauth_strerror
 * (see oauth.h).
 */
#include "oauth.h"
#include "oauth_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "buf.h"
#include "log.h"
#include "util.h"

/* ---- authorization-code exchange ---- */

struct exchange {
    uv_loop_t *loop;
    char *path;
    char tag[96];
    void (*cb)(int err, const char *message, void *ud);
    void *ud;
    struct oauth_pair *pair;
    uv_work_t work;
    int save_rc;
};

static void exchange_free(struct exchange *ex)
{
    oauth_pair_free(ex->pair);
    free(ex->path);
    free(ex);
}

static void exchange_saved(uv_work_t *w, int status)
{
    struct exchange *ex = w->data;
    char msg[1024];
    if (status != 0 && ex->save_rc == 0) {
        ex->save_rc = status;
    }
    if (ex->save_rc != 0) {
        snprintf(msg, sizeof(msg), "the token pair could not be saved to '%s': %s", ex->path,
                 oauth_strerror(ex->save_rc));
        log_error(ex->tag, "%s", msg);
        ex->cb(ex->save_rc, msg, ex->ud);
        exchange_free(ex);
        return;
    }
    const struct oauth_pair *p = ex->pair;
    char when[ISOTIME_LEN];
    isotime_format(p->expires_at, when);
    bool company = p->user_type != NULL && strcmp(p->user_type, "Company") == 0;
    snprintf(msg, sizeof(msg), "stored a %s token for %s %s in '%s' (scopes: %s; the access token "
             "expires at %s)",
             p->user_type ? p->user_type : "OAuth", company ? "company" : "location",
             company ? (p->company_id ? p->company_id : "?")
                     : (p->location_id ? p->location_id : "?"),
             ex->path, p->scope ? p->scope : "none", when);
    log_info(ex->tag, "%s", msg);
    ex->cb(0, msg, ex->ud);
    exchange_free(ex);
}

static void exchange_work(uv_work_t *w)
{
    struct exchange *ex = w->data;
    ex->save_rc = oauth_pair_save(ex->path, ex->pair);
}

static void on_exchange_done(struct http_response *resp, void *ud)
{
    struct exchange *ex = ud;
    char msg[768];
    int err;
    if (resp->error != 0) {
        snprintf(msg, sizeof(msg), "token endpoint: %s", http_strerror(resp->error));
        err = OAUTH_E_RETRY;
        goto fail;
    }
    if (resp->status != 200) {
        char code[64];
        char desc[200];
        oauth__error_code(resp, code, sizeof(code), desc, sizeof(desc));
        snprintf(msg, sizeof(msg), "the token endpoint refused the code (%ld %s: %s)",
                 resp->status, code[0] ? code : "error", desc);
        err = ghl_api_status_class(resp->status) == GHL_STATUS_RETRY ? OAUTH_E_RETRY
                                                                  : OAUTH_E_FAILED;
        goto fail;
    }
    char perr[200];
    if (oauth_pair_from_response(resp->body.data, resp->body.len, util_wall_ms(), &ex->pair, perr,
                                 sizeof(perr)) != 0) {
        snprintf(msg, sizeof(msg), "unusable token endpoint response: %s", perr);
        err = OAUTH_E_RETRY;
        goto fail;
    }
    explicit_bzero(resp->body.data, resp->body.len);
    if (ex->pair->refresh_token == NULL) {
        snprintf(msg, sizeof(msg), "the token endpoint returned no refresh token");
        err = OAUTH_E_FAILED;
        goto fail;
    }
    ex->work.data = ex;
    if (uv_queue_work(ex->loop, &ex->work, exchange_work, exchange_saved) != 0) {
        ex->save_rc = oauth_pair_save(ex->path, ex->pair);
        exchange_saved(&ex->work, 0);
    }
    return;

fail:
    log_error(ex->tag, "%s", msg);
    ex->cb(err, msg, ex->ud);
    exchange_free(ex);
}

int oauth_exchange_code(uv_loop_t *loop, struct http_client *http, const struct oauth_options *o,
                        const char *code, const char *redirect_uri, const char *user_type,
                        void (*cb)(int err, const char *message, void *ud), void *ud)
{
    if (loop == NULL || http == NULL || o == NULL || o->name == NULL || o->token_url == NULL ||
        o->client_id == NULL || o->client_secret == NULL || o->store_path == NULL ||
        code == NULL || *code == '\0' || cb == NULL) {
        return -EINVAL;
    }
    log_add_secret(code);
    log_add_secret(o->client_secret);
    struct buf form;
    buf_init(&form, OAUTH_MAX_DOC);
    int rc = oauth__form_add(&form, "client_id", o->client_id);
    rc = rc ? rc : oauth__form_add(&form, "client_secret", o->client_secret);
    rc = rc ? rc : oauth__form_add(&form, "grant_type", "authorization_code");
    rc = rc ? rc : oauth__form_add(&form, "code", code);
    rc = rc ? rc : oauth__form_add(&form, "redirect_uri", redirect_uri);
    rc = rc ? rc : oauth__form_add(&form, "user_type", user_type);
    if (rc != 0) {
        oauth__wipe_buf(&form);
        return -EINVAL;
    }
    struct exchange *ex = xcalloc(1, sizeof(*ex));
    ex->loop = loop;
    ex->path = xstrdup(o->store_path);
    snprintf(ex->tag, sizeof(ex->tag), "oauth:%.80s", o->name);
    ex->cb = cb;
    ex->ud = ud;
    static const char *const headers[] = {"Accept: application/json", NULL};
    struct http_request req = {
        .method = "POST",
        .url = o->token_url,
        .headers = headers,
        .body = form.data,
        .body_len = form.len,
        .content_type = FORM_TYPE,
        .log_tag = ex->tag,
        .timeout_ms = REQUEST_TIMEOUT_MS,
    };
    /* on_exchange_done runs later even if http_send fails here. */
    http_send(http, &req, on_exchange_done, ex, NULL);
    oauth__wipe_buf(&form);
    return 0;
}

/* ---- URLs and errors ---- */

char *oauth_authorize_url(const char *authorize_url, const char *client_id,
                          const char *redirect_uri, char *const *scopes)
{
    if (authorize_url == NULL || client_id == NULL || redirect_uri == NULL) {
        return NULL;
    }
    struct buf scope;
    buf_init(&scope, SIZE_MAX / 2);
    for (size_t i = 0; scopes != NULL && scopes[i] != NULL; i++) {
        if (scope.len > 0) {
            buf_append(&scope, " ", 1);
        }
        buf_append_str(&scope, scopes[i]);
    }
    struct buf q;
    buf_init(&q, SIZE_MAX / 2);
    oauth__form_add(&q, "response_type", "code");
    oauth__form_add(&q, "redirect_uri", redirect_uri);
    oauth__form_add(&q, "client_id", client_id);
    oauth__form_add(&q, "scope", scope.data != NULL ? scope.data : "");
    char *url = xasprintf("%s%c%s", authorize_url, strchr(authorize_url, '?') ? '&' : '?',
                          q.data);
    buf_finish(&scope);
    buf_finish(&q);
    return url;
}

const char *oauth_strerror(int err)
{
    switch (err) {
    case OAUTH_E_FAILED:
        return "credential failed (authorize it again)";
    case OAUTH_E_RETRY:
        return "token refresh failed (will retry)";
    case OAUTH_E_CANCELLED:
        return "credential freed";
    default:
        return http_strerror(err);
    }
}


/*
 * location: see location.h. The queue, the limiter and the budget lines are
 * the target's (net/target.c); this file adds HighLevel's credentials,
 * 401 handling, rate-limit headers and Version header.
 */
#include "location.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "oauth.h"
#include "log.h"
#include "util.h"

struct location {
    struct target *t;
    char *name;
    char *id;
    char *company_id;              /* configured, or NULL: then the OAuth pair's */
    struct oauth_credential *cred; /* borrowed from the engine; tokens never logged */
};

/* The token's answer for a request waiting in authorize(). */
static void on_token(const char *token, int err, void *ud)
{
    struct target_pending *p = ud;
    *target_pending_slot(p) = NULL;
    if (token == NULL) {
        char why[200];
        snprintf(why, sizeof(why), "no access token for location %s: %s",
                 target_name(target_of(p)), oauth_strerror(err));
        target_fail(p, err == OAUTH_E_FAILED ? HTTP_E_AUTH : HTTP_E_CONNECT, why);
        return;
    }
    target_send(p, token);
}

static void authorize(void *ud, struct target_pending *p)
{
    struct location *loc = ud;
    const char *token = oauth_peek(loc->cred);
    if (token != NULL) {
        target_send(p, token);
        return;
    }
    /* Refresh under way or needed: the request waits for it (single-flight). */
    struct oauth_wait *wait = oauth_acquire(loc->cred, on_token, p);
    *target_pending_slot(p) = wait;
    if (wait == NULL) {
        on_token(NULL, OAUTH_E_FAILED, p);
    }
}

static void cancel_authorize(void *ud, struct target_pending *p)
{
    (void)ud; /* may be gone (location_close): only p is used */
    oauth_cancel(*target_pending_slot(p));
    *target_pending_slot(p) = NULL;
    on_token(NULL, OAUTH_E_CANCELLED, p);
}

/* The token was refused: refresh once (however many requests saw the same
 * token, oauth makes one refresh) and retry this request first. */
static bool refused(void *ud, struct target_pending *p, const char *token)
{
    struct location *loc = ud;
    oauth_invalidate(loc->cred, token);
    if (oauth_credential_refreshable(loc->cred)) {
        log_info(target_pending_tag(p),
                 "HTTP 401 for location %s: refreshing the token and retrying", loc->name);
    } /* else the static token failed: oauth logs the one error */
    return true;
}

struct location *location_create(uv_loop_t *loop, struct http_client *http,
                                 const struct location_options *opts,
                                 struct oauth_credential *cred)
{
    struct location *loc = xcalloc(1, sizeof(*loc));
    loc->name = xstrdup(opts->name);
    loc->id = xstrdup(opts->id);
    loc->company_id = opts->company_id != NULL ? xstrdup(opts->company_id) : NULL;
    loc->cred = cred;
    struct target_options to = {
        .kind = "location",
        .name = opts->name,
        .base_url = opts->base_url,
        .rate_limit = opts->rate_limit,
        .rate_window_ms = opts->rate_window_ms,
        .daily_limit = opts->daily_limit,
        .sweep_share = opts->sweep_share,
        .sweep_daily_share = opts->sweep_daily_share,
    };
    struct target_hooks hooks = {
        .ud = loc,
        .authorize = authorize,
        .cancel_authorize = cancel_authorize,
        .refused = refused,
        .ratelimit_info = ghl_api_ratelimit,
        .capture_headers = ghl_api_capture_headers,
    };
    loc->t = target_create(loop, http, &to, &hooks);
    return loc;
}

struct target *location_target(struct location *loc)
{
    return loc->t;
}

void location_rate_stats(const struct location *loc, struct ratelimit_stats *out)
{
    target_rate_stats(loc->t, out);
}

const char *location_name(const struct location *loc)
{
    return loc->name;
}

const char *location_id(const struct location *loc)
{
    return loc->id;
}

const char *location_company_id(const struct location *loc)
{
    if (loc->company_id != NULL) {
        return loc->company_id;
    }
    const struct oauth_pair *pair = loc->cred != NULL ? oauth_credential_pair(loc->cred) : NULL;
    return pair != NULL && pair->company_id != NULL && pair->company_id[0] != '\0'
               ? pair->company_id
               : NULL;
}

int location_submit(struct location *loc, enum target_class cls, const struct location_request *req,
                    http_done_cb cb, void *ud, struct target_pending **out)
{
    char *version = req->version != NULL ? xasprintf("Version: %s", req->version) : NULL;
    struct target_request tr = {
        .method = req->method,
        .path = req->path,
        .query = req->query,
        .nquery = req->nquery,
        .header = version,
        .body = req->body,
        .body_len = req->body_len,
        .log_tag = req->log_tag != NULL ? req->log_tag : loc->name,
        .fresh_connection = req->fresh_connection,
    };
    int rc = target_submit(loc->t, cls, &tr, cb, ud, out);
    free(version);
    return rc;
}

void location_close(struct location *loc)
{
    if (loc == NULL) {
        return;
    }
    /* The target finishes its requests on its own; its hooks no longer
     * reach the location (see target.h: authorize and refused run only
     * while it is open). */
    target_close(loc->t);
    free(loc->name);
    free(loc->id);
    free(loc->company_id);
    free(loc);
}

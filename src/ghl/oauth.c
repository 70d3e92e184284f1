/*
 * oauth: the credentials (see oauth.h); the token store is token_store.c and
 * the authorization-code exchange oauth_exchange.c.
 *
 * A credential is a small state machine driven from the loop:
 *   - oauth_acquire only queues a waiter and arms a 0 ms timer; the timer
 *     callback (pump) decides: deliver the current token, wait for the
 *     backoff, or start the one refresh operation (struct refresh_op).
 *   - A refresh operation is: (location credentials only) a wait on the
 *     agency credential, the HTTP request, then (OAuth credentials only) the
 *     persist of the rotated pair on a libuv pool thread. Its completion
 *     replaces the pair and delivers to every waiter at once.
 *   - busy counts the callbacks of this module running for a credential;
 *     oauth_credential_free from inside one of them is deferred until they
 *     return, so no delivery loop ever touches freed memory.
 * A refresh_op outlives its credential when the credential is freed mid-way
 * (op->c = NULL): the HTTP callback or the pool-thread completion frees it.
 */
#include "oauth.h"
#include "oauth_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "api.h"
#include "buf.h"
#include "failpoint.h"
#include "json.h"
#include "list.h"
#include "log.h"
#include "sha256.h"
#include "util.h"

#define BACKOFF_BASE_MS 1000
#define BACKOFF_CAP_MS 60000
/* A rotated pair that could not be saved (ENOSPC, EIO: usually passing) is
 * kept in memory and its save retried with this backoff; the credential
 * fails only when the save has failed for SAVE_DEADLINE_MS (F6). */
#define SAVE_BACKOFF_BASE_MS 1000
#define SAVE_BACKOFF_CAP_MS 60000
#define SAVE_DEADLINE_MS (24ULL * 3600 * 1000)
#define LOCATION_TOKEN_VERSION "2021-07-28"

/* ---- credentials ---- */

enum cred_kind {
    CRED_STATIC,
    CRED_OAUTH,
    CRED_LOCATION,
};

struct oauth_wait {
    struct list link;
    struct oauth_credential *c;
    oauth_token_cb cb;
    void *ud;
    bool calling;
};

/* One refresh (or location-token) operation; see the file comment for its lifetime. */
struct refresh_op {
    struct oauth_credential *c;     /* NULL once the credential is freed */
    bool http_pending;              /* the HTTP callback has yet to run */
    struct http_transfer *xfer;
    struct oauth_wait *agency_wait; /* location: waiting for the agency token */
    char *agency_token;             /* location: the agency token sent (for invalidate) */
    bool retried;                   /* location: already retried after a 401 */
    bool in_work;                   /* the pool thread owns next/path */
    bool resave;                    /* a retried save of the current pair, not a new pair */
    uv_work_t work;
    struct oauth_pair *next;        /* the rotated pair being persisted */
    char *path;
    int save_rc;
};

struct oauth_credential {
    enum cred_kind kind;
    char *name;
    char tag[96];                   /* log prefix */
    uv_loop_t *loop;
    struct http_client *http;
    uv_timer_t timer;
    char *token_url;
    char *location_token_url;
    char *client_id;
    char *client_secret;
    char *store_path;
    uint64_t margin_ms;
    struct oauth_credential *agency; /* location credentials: borrowed */
    char *location_id;
    struct oauth_pair *pair;
    bool loaded;
    bool invalidated;
    bool failed;
    bool failed_notified;
    char *failure;
    void (*on_failed)(struct oauth_credential *c, const char *reason, void *ud);
    void *on_failed_ud;
    struct refresh_op *op;
    unsigned attempt;               /* consecutive transient failures */
    uint64_t next_try_mono;
    bool static_refused;            /* static: the API answered 401 to its token */
    uint64_t unsaved_since_mono;    /* the current pair is not on disk since then; 0: it is */
    uint64_t save_due_mono;         /* when to retry that save */
    unsigned save_attempt;
    struct list waiters;
    unsigned busy;
    bool closing;
    bool freed;
};

static void pump(struct oauth_credential *c);

static void enter(struct oauth_credential *c)
{
    c->busy++;
}

static void do_free(struct oauth_credential *c);

static void leave(struct oauth_credential *c)
{
    c->busy--;
    if (c->busy == 0 && c->closing && !c->freed) {
        do_free(c);
    }
}

static void op_free(struct refresh_op *op)
{
    if (op == NULL) {
        return;
    }
    oauth__wipe_free(op->agency_token);
    oauth_pair_free(op->next);
    free(op->path);
    free(op);
}

/* Calls every queued waiter once with (token, err). Waiters added meanwhile wait for the timer. */
static void deliver_all(struct oauth_credential *c, const char *token, int err)
{
    struct list local;
    list_move_all(&local, &c->waiters);
    enter(c);
    while (!list_empty(&local)) {
        struct oauth_wait *w = (struct oauth_wait *)local.next;
        list_remove(&w->link);
        w->calling = true;
        w->cb(token, err, w->ud);
        free(w);
    }
    leave(c);
}

/* Makes the credential FAILED for good (from the loop, never inside an API call). */
static void fail_credential(struct oauth_credential *c, const char *reason)
{
    if (c->failed) {
        return;
    }
    c->failed = true;
    c->failure = xstrdup(reason);
    log_error(c->tag, "credential '%s' failed: %s", c->name, reason);
    enter(c);
    deliver_all(c, NULL, OAUTH_E_FAILED);
    if (c->on_failed != NULL && !c->failed_notified) {
        c->failed_notified = true;
        c->on_failed(c, c->failure, c->on_failed_ud);
    }
    leave(c);
}

static uint64_t effective_margin(const struct oauth_credential *c)
{
    uint64_t m = c->margin_ms;
    const struct oauth_pair *p = c->pair;
    if (p->expires_at > p->obtained_at && p->obtained_at != 0) {
        uint64_t half = (p->expires_at - p->obtained_at) / 2;
        if (m > half) {
            m = half;
        }
    }
    return m;
}

static bool token_usable(const struct oauth_credential *c, uint64_t now)
{
    return c->pair != NULL && c->pair->access_token != NULL && !c->invalidated &&
           (c->pair->expires_at == 0 || now < c->pair->expires_at);
}

static bool token_fresh(const struct oauth_credential *c, uint64_t now)
{
    return token_usable(c, now) &&
           (c->pair->expires_at == 0 || now + effective_margin(c) < c->pair->expires_at);
}

static void on_timer(uv_timer_t *t)
{
    struct oauth_credential *c = t->data;
    enter(c);
    pump(c);
    leave(c);
}

/* Runs pump in ms, or sooner if it is already due sooner: pump re-arms for
 * whatever it still waits for (a backoff, a save retry), so firing early is
 * harmless and one timer serves both. */
static void arm(struct oauth_credential *c, uint64_t ms)
{
    if (uv_is_active((uv_handle_t *)&c->timer) && uv_timer_get_due_in(&c->timer) <= ms) {
        return;
    }
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* A refresh failed in a way that may pass: back off, then let the waiters go. */
static void refresh_transient(struct oauth_credential *c, const char *why)
{
    op_free(c->op);
    c->op = NULL;
    uint64_t delay = util_backoff_ms(BACKOFF_BASE_MS, BACKOFF_CAP_MS, c->attempt);
    c->attempt++;
    c->next_try_mono = util_mono_ms() + delay;
    bool usable = token_usable(c, util_wall_ms());
    log_warn(c->tag, "token refresh failed: %s; next attempt in %llu ms or later%s", why,
             (unsigned long long)delay,
             usable ? " (the current access token is still valid)" : "");
    deliver_all(c, usable ? c->pair->access_token : NULL, usable ? 0 : OAUTH_E_RETRY);
    if (!list_empty(&c->waiters)) {
        arm(c, 0);
    }
}

static void refresh_failed(struct oauth_credential *c, const char *why)
{
    op_free(c->op);
    c->op = NULL;
    fail_credential(c, why);
}

/* The "error" member of an OAuth error body, or "" (copied, bounded, redacted). */
void oauth__error_code(const struct http_response *resp, char *out, size_t size, char *desc,
                       size_t dsize)
{
    cJSON *root = NULL;
    out[0] = '\0';
    desc[0] = '\0';
    if (resp->body.len == 0 || oauth__parse_doc(resp->body.data, resp->body.len, &root, NULL, 0) != 0) {
        return;
    }
    const char *e = json_get_string(root, "error");
    const char *d = json_get_string(root, "error_description");
    if (d == NULL) {
        d = json_get_string(root, "message");
    }
    oauth__server_text(e, out, size);
    oauth__server_text(d, desc, dsize);
    oauth__delete_json(root);
}

static bool permanent_oauth_error(const char *code)
{
    return strcmp(code, "invalid_grant") == 0 || strcmp(code, "invalid_client") == 0 ||
           strcmp(code, "unauthorized_client") == 0;
}

/* Copies fields the refresh response may omit from the previous pair. */
static void inherit(struct oauth_pair *next, const struct oauth_pair *prev)
{
    if (prev == NULL) {
        return;
    }
    if (next->refresh_token == NULL && prev->refresh_token != NULL) {
        next->refresh_token = xstrdup(prev->refresh_token);
    }
    if (next->scope == NULL) {
        next->scope = oauth__dup_or_null(prev->scope);
    }
    if (next->user_type == NULL) {
        next->user_type = oauth__dup_or_null(prev->user_type);
    }
    if (next->location_id == NULL) {
        next->location_id = oauth__dup_or_null(prev->location_id);
    }
    if (next->company_id == NULL) {
        next->company_id = oauth__dup_or_null(prev->company_id);
    }
    if (next->user_id == NULL) {
        next->user_id = oauth__dup_or_null(prev->user_id);
    }
    if (next->approved_locations == NULL) {
        next->approved_locations = strv_dup(prev->approved_locations);
    }
}

/* Publishes a new pair (already durable if it has to be) and hands its token to every waiter. */
static void publish(struct oauth_credential *c, struct oauth_pair *next)
{
    oauth_pair_free(c->pair);
    c->pair = next;
    c->invalidated = false;
    c->attempt = 0;
    c->next_try_mono = 0;
    op_free(c->op);
    c->op = NULL;
    char when[ISOTIME_LEN];
    isotime_format(c->pair->expires_at, when);
    log_info(c->tag, "new access token obtained; it expires at %s", when);
    deliver_all(c, c->pair->access_token, 0);
}

/* "sha256:" and 12 hex digits of the refresh token: names a pair in a log
 * line without revealing it (the token has far more entropy than that). */
static void fingerprint(const struct oauth_pair *p, char out[20])
{
    const char *t = p->refresh_token != NULL ? p->refresh_token : p->access_token;
    char hex[65];
    sha256_hex(t, strlen(t), hex);
    snprintf(out, 20, "sha256:%.12s", hex);
}

static void save_work(uv_work_t *w)
{
    struct refresh_op *op = w->data;
    op->save_rc = oauth_pair_save(op->path, op->next);
}

static void start_save(struct oauth_credential *c);

/*
 * After a save of the current pair: clears the unsaved state, or keeps the
 * pair in memory (the server has spent the old refresh token: the one on
 * disk is useless) and schedules another try through pump. Fails the
 * credential only after SAVE_DEADLINE_MS of failures.
 */
static void note_save(struct oauth_credential *c, int rc)
{
    char fp[20];
    fingerprint(c->pair, fp);
    uint64_t mono = util_mono_ms();
    if (rc == 0) {
        if (c->unsaved_since_mono != 0) {
            log_info(c->tag, "the token pair %s is saved to '%s' now", fp, c->store_path);
        }
        c->unsaved_since_mono = 0;
        c->save_attempt = 0;
        return;
    }
    if (c->unsaved_since_mono == 0) {
        c->unsaved_since_mono = mono;
    }
    if (mono - c->unsaved_since_mono >= SAVE_DEADLINE_MS) {
        char why[768];
        snprintf(why, sizeof(why),
                 "the token pair %s could not be saved to '%s' for 24 h (%s); the stored refresh "
                 "token is spent: run `pollen auth login` for '%s'",
                 fp, c->store_path, oauth_strerror(rc), c->name);
        fail_credential(c, why);
        return;
    }
    uint64_t delay = util_backoff_ms(SAVE_BACKOFF_BASE_MS, SAVE_BACKOFF_CAP_MS, c->save_attempt);
    c->save_attempt++;
    c->save_due_mono = mono + delay;
    log_error(c->tag, "the new token pair %s could not be saved to '%s' (%s): it is kept in "
                      "memory and requests go on; the save is retried in %llu ms. Until it "
                      "succeeds a restart loses the credential (the stored refresh token is spent)",
              fp, c->store_path, oauth_strerror(rc), (unsigned long long)delay);
    arm(c, delay);
}

static void save_done(uv_work_t *w, int status)
{
    struct refresh_op *op = w->data;
    struct oauth_credential *c = op->c;
    op->in_work = false;
    if (c == NULL) {
        op_free(op);
        return;
    }
    enter(c);
    if (status != 0 && op->save_rc == 0) {
        op->save_rc = status;
    }
    int rc = op->save_rc;
    if (rc == 0) {
        FAILPOINT("token.after_persist");
    }
    if (op->resave) {
        /* The pair in memory is already the current one. */
        op_free(c->op);
        c->op = NULL;
        arm(c, 0);
    } else {
        /* Saved or not, the new pair is the only valid one: use it. */
        struct oauth_pair *next = op->next;
        op->next = NULL;
        publish(c, next);
    }
    note_save(c, rc);
    leave(c);
}

/* Retries the save of the current pair on a pool thread (c->op holds the waiters meanwhile). */
static void start_save(struct oauth_credential *c)
{
    struct refresh_op *op = xcalloc(1, sizeof(*op));
    op->c = c;
    op->resave = true;
    op->next = oauth_pair_dup(c->pair);
    op->path = xstrdup(c->store_path);
    op->work.data = op;
    op->in_work = true;
    c->op = op;
    if (uv_queue_work(c->loop, &op->work, save_work, save_done) != 0) {
        op->in_work = false;
        op->save_rc = -EAGAIN;
        save_done(&op->work, 0);
    }
}

/* The start of every token-response callback: the op's transfer is over.
 * Returns its credential, entered, or NULL when the credential was freed
 * while the request was in flight (the op is freed then). */
static struct oauth_credential *op_transfer_done(struct refresh_op *op)
{
    op->http_pending = false;
    op->xfer = NULL;
    struct oauth_credential *c = op->c;
    if (c == NULL) {
        op_free(op);
        return NULL;
    }
    enter(c);
    return c;
}

/* Parses a token response body into *next and wipes the body (it holds
 * tokens). On failure reports a transient failure naming `what`. */
static bool pair_from_body(struct oauth_credential *c, struct http_response *resp,
                           const char *what, struct oauth_pair **next)
{
    char perr[200];
    if (oauth_pair_from_response(resp->body.data, resp->body.len, util_wall_ms(), next, perr,
                                 sizeof(perr)) != 0) {
        char why[512];
        snprintf(why, sizeof(why), "unusable %s response: %s", what, perr);
        refresh_transient(c, why);
        return false;
    }
    explicit_bzero(resp->body.data, resp->body.len);
    return true;
}

static void on_refresh_done(struct http_response *resp, void *ud)
{
    struct refresh_op *op = ud;
    struct oauth_credential *c = op_transfer_done(op);
    if (c == NULL) {
        return;
    }
    char why[512];
    if (resp->error != 0) {
        snprintf(why, sizeof(why), "token endpoint: %s", http_strerror(resp->error));
        refresh_transient(c, why);
        goto out;
    }
    if (resp->status != 200) {
        char code[64];
        char desc[200];
        oauth__error_code(resp, code, sizeof(code), desc, sizeof(desc));
        if ((resp->status == 400 || resp->status == 401) && permanent_oauth_error(code)) {
            snprintf(why, sizeof(why),
                     "the token endpoint refused the refresh (%s: %s); the installation must be "
                     "authorized again: run `pollen auth login` for '%s'",
                     code, desc, c->name);
            refresh_failed(c, why);
        } else {
            snprintf(why, sizeof(why), "token endpoint answered %ld%s%s", resp->status,
                     code[0] ? " " : "", code);
            if (ghl_api_status_class(resp->status) != GHL_STATUS_RETRY) {
                log_error(c->tag, "unexpected answer from the token endpoint (%ld %s: %s)",
                          resp->status, code, desc);
            }
            refresh_transient(c, why);
        }
        goto out;
    }
    struct oauth_pair *next;
    /* On failure the server may have rotated already; if so the next attempt
     * reports invalid_grant. */
    if (!pair_from_body(c, resp, "token endpoint", &next)) {
        goto out;
    }
    inherit(next, c->pair);
    FAILPOINT("token.after_response_before_persist");
    /* Persist before use, on a pool thread so a slow fsync never stalls the loop. The
     * waiters stay queued (c->op is still set) until save_done publishes the pair. */
    op->next = next;
    op->path = xstrdup(c->store_path);
    op->work.data = op;
    op->in_work = true;
    int rc = uv_queue_work(c->loop, &op->work, save_work, save_done);
    if (rc != 0) {
        op->in_work = false;
        op->save_rc = oauth_pair_save(op->path, op->next);
        save_done(&op->work, 0);
    }
out:
    leave(c);
}

static void send_refresh(struct oauth_credential *c, struct refresh_op *op)
{
    if (c->pair->refresh_token == NULL) {
        refresh_failed(c, "the token store holds no refresh token");
        return;
    }
    struct buf form;
    buf_init(&form, OAUTH_MAX_DOC);
    int rc = oauth__form_add(&form, "client_id", c->client_id);
    rc = rc ? rc : oauth__form_add(&form, "client_secret", c->client_secret);
    rc = rc ? rc : oauth__form_add(&form, "grant_type", "refresh_token");
    rc = rc ? rc : oauth__form_add(&form, "refresh_token", c->pair->refresh_token);
    rc = rc ? rc : oauth__form_add(&form, "user_type", c->pair->user_type);
    if (rc != 0) {
        oauth__wipe_buf(&form);
        refresh_failed(c, "the refresh request is too large");
        return;
    }
    static const char *const headers[] = {"Accept: application/json", NULL};
    struct http_request req = {
        .method = "POST",
        .url = c->token_url,
        .headers = headers,
        .body = form.data,
        .body_len = form.len,
        .content_type = FORM_TYPE,
        .log_tag = c->tag,
        .timeout_ms = REQUEST_TIMEOUT_MS,
    };
    log_debug(c->tag, "refreshing the access token");
    op->http_pending = true;
    /* http_send calls on_refresh_done later even when it fails here. */
    http_send(c->http, &req, on_refresh_done, op, &op->xfer);
    oauth__wipe_buf(&form);
}

/* ---- location tokens ---- */

static void location_request(struct oauth_credential *c, struct refresh_op *op);

static void on_agency_token(const char *token, int err, void *ud)
{
    struct refresh_op *op = ud;
    op->agency_wait = NULL;
    struct oauth_credential *c = op->c;
    if (c == NULL) {
        op_free(op);
        return;
    }
    enter(c);
    char why[512];
    if (err == OAUTH_E_FAILED) {
        snprintf(why, sizeof(why),
                 "its agency credential '%s' has failed; authorize the agency again with "
                 "`pollen auth login`", c->agency->name);
        refresh_failed(c, why);
    } else if (err != 0) {
        snprintf(why, sizeof(why), "agency credential '%s': %s", c->agency->name,
                 oauth_strerror(err));
        refresh_transient(c, why);
    } else {
        const struct oauth_pair *ap = c->agency->pair;
        if (ap->user_type != NULL && strcmp(ap->user_type, "Company") != 0) {
            snprintf(why, sizeof(why),
                     "agency credential '%s' holds a %s token, not a Company token; run "
                     "`pollen auth login` for it with an agency (Company) installation",
                     c->agency->name, ap->user_type);
            refresh_failed(c, why);
        } else if (ap->company_id == NULL) {
            snprintf(why, sizeof(why), "agency credential '%s' has no companyId",
                     c->agency->name);
            refresh_failed(c, why);
        } else {
            oauth__wipe_free(op->agency_token);
            op->agency_token = xstrdup(token);
            location_request(c, op);
        }
    }
    leave(c);
}

static void wait_agency(struct oauth_credential *c, struct refresh_op *op)
{
    op->agency_wait = oauth_acquire(c->agency, on_agency_token, op);
    if (op->agency_wait == NULL) {
        char why[512];
        snprintf(why, sizeof(why),
                 "its agency credential '%s' has failed; authorize the agency again with "
                 "`pollen auth login`", c->agency->name);
        refresh_failed(c, why);
    }
}

static void on_location_done(struct http_response *resp, void *ud)
{
    struct refresh_op *op = ud;
    struct oauth_credential *c = op_transfer_done(op);
    if (c == NULL) {
        return;
    }
    char why[512];
    if (resp->error != 0) {
        snprintf(why, sizeof(why), "locationToken: %s", http_strerror(resp->error));
        refresh_transient(c, why);
        goto out;
    }
    if (resp->status == 401 && !op->retried) {
        /* The agency token was rejected: one agency refresh, one retry. */
        op->retried = true;
        oauth_invalidate(c->agency, op->agency_token);
        wait_agency(c, op);
        goto out;
    }
    if (resp->status != 200) {
        char code[64];
        char desc[200];
        oauth__error_code(resp, code, sizeof(code), desc, sizeof(desc));
        if (resp->status == 400 || resp->status == 403 || resp->status == 404 ||
            resp->status == 422) {
            snprintf(why, sizeof(why),
                     "POST /oauth/locationToken refused location '%s' (%ld: %s); check that the "
                     "app is installed on it, then run `pollen auth login` for '%s'",
                     c->location_id, resp->status, desc, c->agency->name);
            refresh_failed(c, why);
        } else {
            snprintf(why, sizeof(why), "locationToken answered %ld", resp->status);
            refresh_transient(c, why);
        }
        goto out;
    }
    struct oauth_pair *next;
    if (!pair_from_body(c, resp, "locationToken", &next)) {
        goto out;
    }
    /* Location tokens are never refreshed with a refresh token, even if one is sent. */
    oauth__wipe_free(next->refresh_token);
    next->refresh_token = NULL;
    if (next->user_type == NULL) {
        next->user_type = xstrdup("Location");
    }
    if (next->location_id == NULL) {
        next->location_id = xstrdup(c->location_id);
    }
    if (next->company_id == NULL && c->agency->pair != NULL) {
        next->company_id = oauth__dup_or_null(c->agency->pair->company_id);
    }
    publish(c, next);
out:
    leave(c);
}

static void location_request(struct oauth_credential *c, struct refresh_op *op)
{
    struct buf form;
    buf_init(&form, OAUTH_MAX_DOC);
    int rc = oauth__form_add(&form, "companyId", c->agency->pair->company_id);
    rc = rc ? rc : oauth__form_add(&form, "locationId", c->location_id);
    if (rc != 0) {
        oauth__wipe_buf(&form);
        refresh_failed(c, "the locationToken request is too large");
        return;
    }
    char *auth = xasprintf("Authorization: Bearer %s", op->agency_token);
    const char *headers[] = {auth, "Version: " LOCATION_TOKEN_VERSION, "Accept: application/json",
                             NULL};
    struct http_request req = {
        .method = "POST",
        .url = c->location_token_url,
        .headers = headers,
        .body = form.data,
        .body_len = form.len,
        .content_type = FORM_TYPE,
        .log_tag = c->tag,
        .timeout_ms = REQUEST_TIMEOUT_MS,
    };
    log_debug(c->tag, "requesting a location token");
    op->http_pending = true;
    http_send(c->http, &req, on_location_done, op, &op->xfer);
    oauth__wipe_free(auth);
    oauth__wipe_buf(&form);
}

/* ---- the pump ---- */

static void load_store(struct oauth_credential *c)
{
    char err[512];
    struct oauth_pair *p;
    int rc = oauth_pair_load(c->store_path, &p, err, sizeof(err));
    if (rc != 0) {
        char why[768];
        snprintf(why, sizeof(why), "%s; run `pollen auth login` for '%s'", err, c->name);
        fail_credential(c, why);
        return;
    }
    c->pair = p;
    c->loaded = true;
}

static void start_refresh(struct oauth_credential *c)
{
    struct refresh_op *op = xcalloc(1, sizeof(*op));
    op->c = c;
    c->op = op;
    if (c->kind == CRED_OAUTH) {
        send_refresh(c, op);
    } else {
        wait_agency(c, op);
    }
}

static void pump(struct oauth_credential *c)
{
    if (c->closing) {
        return;
    }
    if (c->static_refused && !c->failed) {
        char why[256];
        snprintf(why, sizeof(why),
                 "the token was refused (HTTP 401): check `token =` in [location %s] (the token "
                 "is wrong, revoked or not valid for this location), then restart",
                 c->name);
        fail_credential(c, why);
    }
    if (c->failed) {
        deliver_all(c, NULL, OAUTH_E_FAILED);
        return;
    }
    if (!c->loaded) {
        load_store(c); /* only OAuth credentials start unloaded */
        if (c->failed) {
            return;
        }
    }
    if (c->op != NULL) {
        return; /* the operation in flight delivers when it ends */
    }
    if (c->unsaved_since_mono != 0) {
        uint64_t due = c->save_due_mono;
        uint64_t mono = util_mono_ms();
        if (mono >= due) {
            start_save(c);
            return;
        }
        arm(c, due - mono);
    }
    if (list_empty(&c->waiters)) {
        return;
    }
    uint64_t now = util_wall_ms();
    if (token_fresh(c, now)) {
        deliver_all(c, c->pair->access_token, 0);
        return;
    }
    uint64_t mono = util_mono_ms();
    if (mono < c->next_try_mono) {
        if (token_usable(c, now)) {
            deliver_all(c, c->pair->access_token, 0);
        } else {
            arm(c, c->next_try_mono - mono);
        }
        return;
    }
    start_refresh(c);
}

/* ---- public credential API ---- */

static struct oauth_credential *cred_new(uv_loop_t *loop, enum cred_kind kind, const char *name)
{
    struct oauth_credential *c = xcalloc(1, sizeof(*c));
    c->kind = kind;
    c->loop = loop;
    c->name = xstrdup(name);
    snprintf(c->tag, sizeof(c->tag), "oauth:%.80s", name);
    list_init(&c->waiters);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    return c;
}

struct oauth_credential *oauth_credential_static(uv_loop_t *loop, const char *name,
                                                 const char *token)
{
    if (loop == NULL || name == NULL || token == NULL || *token == '\0') {
        return NULL;
    }
    log_add_secret(token);
    struct oauth_credential *c = cred_new(loop, CRED_STATIC, name);
    c->pair = xcalloc(1, sizeof(*c->pair));
    c->pair->access_token = xstrdup(token);
    c->loaded = true;
    return c;
}

struct oauth_credential *oauth_credential_oauth(uv_loop_t *loop, struct http_client *http,
                                                const struct oauth_options *o)
{
    if (loop == NULL || http == NULL || o == NULL || o->name == NULL || o->token_url == NULL ||
        o->client_id == NULL || o->client_secret == NULL || o->store_path == NULL) {
        return NULL;
    }
    log_add_secret(o->client_secret);
    struct oauth_credential *c = cred_new(loop, CRED_OAUTH, o->name);
    c->http = http;
    c->token_url = xstrdup(o->token_url);
    c->location_token_url = oauth__dup_or_null(o->location_token_url);
    c->client_id = xstrdup(o->client_id);
    c->client_secret = xstrdup(o->client_secret);
    c->store_path = xstrdup(o->store_path);
    c->margin_ms = o->refresh_margin_ms;
    return c;
}

struct oauth_credential *oauth_credential_location(uv_loop_t *loop, struct http_client *http,
                                                   struct oauth_credential *agency,
                                                   const char *location_id,
                                                   const char *location_token_url)
{
    if (loop == NULL || http == NULL || agency == NULL || location_id == NULL ||
        location_token_url == NULL) {
        return NULL;
    }
    char *name = xasprintf("%s/%s", agency->name, location_id);
    struct oauth_credential *c = cred_new(loop, CRED_LOCATION, name);
    free(name);
    c->http = http;
    c->agency = agency;
    c->location_id = xstrdup(location_id);
    c->location_token_url = xstrdup(location_token_url);
    c->margin_ms = agency->margin_ms;
    c->loaded = true; /* nothing on disk: the first acquire fetches a token */
    return c;
}

struct oauth_wait *oauth_acquire(struct oauth_credential *c, oauth_token_cb cb, void *ud)
{
    if (c == NULL || cb == NULL || c->closing || c->failed) {
        return NULL;
    }
    struct oauth_wait *w = xcalloc(1, sizeof(*w));
    w->c = c;
    w->cb = cb;
    w->ud = ud;
    list_insert_tail(&c->waiters, &w->link);
    if (c->op == NULL) {
        arm(c, 0);
    }
    return w;
}

void oauth_cancel(struct oauth_wait *w)
{
    if (w == NULL || w->calling) {
        return;
    }
    list_remove(&w->link);
    free(w);
}

const char *oauth_peek(const struct oauth_credential *c)
{
    if (c == NULL || c->failed || c->closing || !c->loaded) {
        return NULL;
    }
    return token_fresh(c, util_wall_ms()) ? c->pair->access_token : NULL;
}

void oauth_invalidate(struct oauth_credential *c, const char *token)
{
    if (c == NULL || token == NULL || c->pair == NULL || c->invalidated ||
        strcmp(c->pair->access_token, token) != 0) {
        return;
    }
    if (c->kind == CRED_STATIC) {
        /* Nothing to refresh: the configured token is wrong. Failed from the
         * loop (pump), never inside the caller's HTTP callback. */
        c->static_refused = true;
        arm(c, 0);
        return;
    }
    c->invalidated = true;
    log_info(c->tag, "the access token was rejected; the next use refreshes it");
}

void oauth_credential_on_failed(struct oauth_credential *c,
                                void (*on_failed)(struct oauth_credential *c, const char *reason,
                                                  void *ud),
                                void *ud)
{
    if (c == NULL) {
        return;
    }
    c->on_failed = on_failed;
    c->on_failed_ud = ud;
}

bool oauth_credential_failed(const struct oauth_credential *c)
{
    return c != NULL && c->failed;
}

bool oauth_credential_refreshable(const struct oauth_credential *c)
{
    return c != NULL && c->kind != CRED_STATIC;
}

const char *oauth_credential_failure(const struct oauth_credential *c)
{
    return c != NULL ? c->failure : NULL;
}

const char *oauth_credential_name(const struct oauth_credential *c)
{
    return c != NULL ? c->name : NULL;
}

const struct oauth_pair *oauth_credential_pair(const struct oauth_credential *c)
{
    return c != NULL ? c->pair : NULL;
}

static void on_closed(uv_handle_t *h)
{
    struct oauth_credential *c = h->data;
    oauth_pair_free(c->pair);
    free(c->name);
    free(c->token_url);
    free(c->location_token_url);
    free(c->client_id);
    oauth__wipe_free(c->client_secret);
    free(c->store_path);
    free(c->location_id);
    free(c->failure);
    free(c);
}

static void do_free(struct oauth_credential *c)
{
    if (c->unsaved_since_mono != 0 && !c->failed) {
        char fp[20];
        fingerprint(c->pair, fp);
        log_error(c->tag, "stopping while the token pair %s is still not saved to '%s': the "
                          "stored refresh token is spent, so the next start needs `pollen auth "
                          "login` for '%s'",
                  fp, c->store_path, c->name);
    }
    c->freed = true;
    c->busy++; /* a waiter freeing it again must not recurse */
    deliver_all(c, NULL, OAUTH_E_CANCELLED);
    c->busy--;
    struct refresh_op *op = c->op;
    c->op = NULL;
    if (op != NULL) {
        op->c = NULL;
        if (op->agency_wait != NULL) {
            oauth_cancel(op->agency_wait);
            op_free(op);
        } else if (op->http_pending) {
            http_cancel(op->xfer); /* on_*_done frees op */
        } else if (!op->in_work) {
            op_free(op);
        } /* else save_done frees op */
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

void oauth_credential_free(struct oauth_credential *c)
{
    if (c == NULL || c->closing) {
        return;
    }
    c->closing = true;
    if (c->busy == 0) {
        do_free(c);
    }
}


/*
 * location: see location.h.
 */
#include "location.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "oauth.h"
#include "log.h"
#include "ratelimit.h"
#include "url.h"
#include "util.h"

/* Requests one location may have on the wire at once: enough to overlap
 * latency, few enough that a burst cannot outrun the limiter's feedback. */
#define LOCATION_MAX_IN_FLIGHT 6
/* The budget line (requests in the last 24 h) is logged this often. */
#define BUDGET_LOG_INTERVAL_MS (60ULL * 60 * 1000)

struct location_pending {
    struct location_pending *next;
    struct location *loc;
    enum location_class cls;
    char *method;
    char *url;
    char *version_header;
    char *body;
    size_t body_len;
    char *log_tag;
    http_done_cb cb;
    void *ud;
    struct http_transfer *transfer;  /* set while on the wire */
    struct oauth_wait *wait;         /* set while waiting for an access token */
    char *token;                     /* the access token it was sent with (for a 401) */
    bool retried_401;                /* one refresh and one retry per request */
    bool fresh_connection;           /* never on a reused connection (http.h) */
    bool cancelled;
};

struct pending_queue {
    struct location_pending *head;
    struct location_pending *tail;
    size_t len;
};

struct location {
    uv_loop_t *loop;
    struct http_client *http;
    uv_timer_t timer;              /* runs pump(): deferred starts and rate-limit waits */
    uv_timer_t budget_timer;       /* logs the budget line every BUDGET_LOG_INTERVAL_MS */
    char *name;
    char *tag;                     /* "location:NAME" for the budget lines */
    char *id;
    char *base_url;
    char *company_id;              /* configured, or NULL: then the OAuth pair's */
    struct oauth_credential *cred; /* borrowed from the engine; tokens never logged */
    struct ratelimit *rl;
    struct pending_queue queues[2];
    struct pending_queue finished; /* cancelled before sending; callbacks run from pump() */
    size_t in_flight;
    bool closing;
    unsigned timers_open;          /* uv timers not closed yet (freed after the last) */
};

static void pump_cb(uv_timer_t *timer);
static void budget_cb(uv_timer_t *timer);

static void queue_push(struct pending_queue *q, struct location_pending *p)
{
    p->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = p;
    } else {
        q->head = p;
    }
    q->tail = p;
    q->len++;
}

static struct location_pending *queue_pop(struct pending_queue *q)
{
    struct location_pending *p = q->head;
    if (p == NULL) {
        return NULL;
    }
    q->head = p->next;
    if (q->head == NULL) {
        q->tail = NULL;
    }
    q->len--;
    p->next = NULL;
    return p;
}

static bool queue_remove(struct pending_queue *q, struct location_pending *p)
{
    struct location_pending *prev = NULL;
    for (struct location_pending *it = q->head; it != NULL; prev = it, it = it->next) {
        if (it != p) {
            continue;
        }
        if (prev != NULL) {
            prev->next = it->next;
        } else {
            q->head = it->next;
        }
        if (q->tail == it) {
            q->tail = prev;
        }
        q->len--;
        it->next = NULL;
        return true;
    }
    return false;
}

static void pending_free(struct location_pending *p)
{
    if (p == NULL) {
        return;
    }
    if (p->token != NULL) {
        explicit_bzero(p->token, strlen(p->token));
        free(p->token);
    }
    free(p->method);
    free(p->url);
    free(p->version_header);
    if (p->body != NULL) {
        explicit_bzero(p->body, p->body_len); /* it may hold a secret field (sink_ghl) */
    }
    free(p->body);
    free(p->log_tag);
    free(p);
}

static void location_free(struct location *loc)
{
    ratelimit_destroy(loc->rl);
    free(loc->name);
    free(loc->tag);
    free(loc->id);
    free(loc->company_id);
    free(loc->base_url);
    free(loc);
}

static void maybe_free(struct location *loc)
{
    if (loc->closing && loc->timers_open == 0 && loc->in_flight == 0 && loc->finished.len == 0) {
        location_free(loc);
    }
}

static void timer_closed_cb(uv_handle_t *handle)
{
    struct location *loc = handle->data;
    loc->timers_open--;
    maybe_free(loc);
}

static void schedule_pump(struct location *loc, uint64_t delay_ms)
{
    if (loc->closing) {
        return;
    }
    /* uv_timer_start on an active timer re-arms it; keep the earlier deadline. */
    if (uv_is_active((uv_handle_t *)&loc->timer)) {
        uint64_t due_in = uv_timer_get_due_in(&loc->timer);
        if (due_in <= delay_ms) {
            return;
        }
    }
    uv_timer_start(&loc->timer, pump_cb, delay_ms, 0);
}

/* The budget line: requests of the last 24 h, of them sweeps, against the limits. */
static void log_budget(struct location *loc, const char *why)
{
    struct ratelimit_stats st;
    ratelimit_stats(loc->rl, uv_now(loc->loop), &st);
    unsigned pct = st.daily_max > 0 ? (unsigned)(st.in_day * 100u / st.daily_max) : 0;
    log_at(why != NULL ? LOG_WARN : LOG_INFO, loc->tag,
           "budget: %llu requests in the last 24 h (%u%% of daily_limit %llu%s%s), sweeps %llu "
           "of their %llu",
           (unsigned long long)st.in_day, pct, (unsigned long long)st.daily_max,
           why != NULL ? "; " : "", why != NULL ? why : "", (unsigned long long)st.capped_in_day,
           (unsigned long long)st.capped_daily_max);
}

static void budget_cb(uv_timer_t *timer)
{
    log_budget(timer->data, NULL);
}

/* After a grant: the 24 h count passing 50% or 80% of the daily limit is logged once. */
static void watch_budget(struct location *loc)
{
    unsigned pct = ratelimit_daily_crossed(loc->rl, uv_now(loc->loop));
    if (pct != 0) {
        char why[48];
        snprintf(why, sizeof(why), "passed %u%%", pct);
        log_budget(loc, why);
    }
}

struct location *location_create(uv_loop_t *loop, struct http_client *http,
                                 const struct location_options *opts,
                                 struct oauth_credential *cred)
{
    struct location *loc = xcalloc(1, sizeof(*loc));
    loc->loop = loop;
    loc->http = http;
    loc->name = xstrdup(opts->name);
    loc->tag = xasprintf("location:%s", opts->name);
    loc->id = xstrdup(opts->id);
    loc->company_id = opts->company_id != NULL ? xstrdup(opts->company_id) : NULL;
    loc->base_url = xstrdup(opts->base_url);
    loc->cred = cred;
    loc->rl = ratelimit_create(opts->rate_limit, opts->rate_window_ms, opts->daily_limit);
    ratelimit_set_capped(loc->rl, opts->sweep_share, opts->sweep_daily_share);
    uv_timer_init(loop, &loc->timer);
    loc->timer.data = loc;
    uv_timer_init(loop, &loc->budget_timer);
    loc->budget_timer.data = loc;
    loc->timers_open = 2;
    uv_timer_start(&loc->budget_timer, budget_cb, BUDGET_LOG_INTERVAL_MS, BUDGET_LOG_INTERVAL_MS);
    /* The hourly line never keeps a finished run (--once) alive. */
    uv_unref((uv_handle_t *)&loc->budget_timer);
    return loc;
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

size_t location_queued(const struct location *loc)
{
    return loc->queues[0].len + loc->queues[1].len;
}

char *location_build_url(const char *base_url, const char *path, const struct location_query *query,
                         size_t nquery)
{
    struct buf b;
    buf_init(&b, 64 * 1024);
    buf_append_str(&b, base_url);
    buf_append_str(&b, path);
    for (size_t i = 0; i < nquery; i++) {
        char *name = url_escape(query[i].name);
        char *value = url_escape(query[i].value);
        buf_append_str(&b, i == 0 ? "?" : "&");
        buf_append_str(&b, name);
        buf_append_str(&b, "=");
        buf_append_str(&b, value);
        free(name);
        free(value);
    }
    if (b.too_big) {
        buf_finish(&b);
        return NULL;
    }
    return buf_steal(&b, NULL);
}

static void complete_locally(struct location_pending *p, int error, const char *text)
{
    struct http_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.error = error;
    str_copy(resp.error_text, sizeof(resp.error_text), text);
    buf_init(&resp.body, 0);
    p->cb(&resp, p->ud);
    buf_finish(&resp.body);
}

static void on_response(struct http_response *resp, void *ud)
{
    struct location_pending *p = ud;
    struct location *loc = p->loc;
    loc->in_flight--;
    p->transfer = NULL;
    if (resp->status == 401 && !p->retried_401 && !loc->closing && !p->cancelled) {
        /* The token was refused: refresh once (however many requests saw the
         * same token, oauth makes one refresh) and retry this request first. */
        p->retried_401 = true;
        oauth_invalidate(loc->cred, p->token);
        if (oauth_credential_refreshable(loc->cred)) {
            log_info(p->log_tag, "HTTP 401 for location %s: refreshing the token and retrying",
                     loc->name);
        } /* else the static token failed: oauth logs the one error */
        struct pending_queue *q = &loc->queues[p->cls == LOCATION_SWEEP ? 1 : 0];
        p->next = q->head;
        q->head = p;
        if (q->tail == NULL) {
            q->tail = p;
        }
        q->len++;
        schedule_pump(loc, 0);
        return;
    }
    if (resp->error == 0 || resp->status != 0) {
        struct http_ratelimit_info rl;
        ghl_api_ratelimit(resp, &rl);
        ratelimit_observe(loc->rl, uv_now(loc->loop), resp->status, &rl, resp->retry_after_s);
    }
    if (resp->status == 429) {
        log_warn(p->log_tag, "HTTP 429 from the API for location %s: backing off", loc->name);
    }
    p->cb(resp, p->ud);
    pending_free(p);
    if (loc->closing) {
        maybe_free(loc);
        return;
    }
    schedule_pump(loc, 0);
}

static void send_with_token(struct location *loc, struct location_pending *p, const char *token)
{
    free(p->token);
    p->token = xstrdup(token);
    char *auth = xasprintf("Authorization: Bearer %s", token);
    const char *headers[4];
    size_t h = 0;
    headers[h++] = auth;
    if (p->version_header != NULL) {
        headers[h++] = p->version_header;
    }
    headers[h++] = "Accept: application/json";
    headers[h] = NULL;
    struct http_request req = {
        .method = p->method,
        .url = p->url,
        .headers = headers,
        .body = p->body,
        .body_len = p->body_len,
        .content_type = p->body != NULL ? "application/json" : NULL,
        .log_tag = p->log_tag,
        .capture_headers = ghl_api_capture_headers,
        .fresh_connection = p->fresh_connection,
    };
    int rc = http_send(loc->http, &req, on_response, p, &p->transfer);
    explicit_bzero(auth, strlen(auth));
    free(auth);
    if (rc != 0) {
        /* http_send promises a later callback even on failure; nothing else to do. */
        log_debug(p->log_tag, "http_send failed: %s", http_strerror(rc));
    }
}

static void on_token(const char *token, int err, void *ud)
{
    struct location_pending *p = ud;
    struct location *loc = p->loc;
    p->wait = NULL;
    if (token == NULL) {
        loc->in_flight--;
        char why[200];
        snprintf(why, sizeof(why), "no access token for location %s: %s", loc->name,
                 oauth_strerror(err));
        complete_locally(p, err == OAUTH_E_FAILED ? HTTP_E_AUTH : HTTP_E_CONNECT, why);
        pending_free(p);
        if (loc->closing) {
            maybe_free(loc);
        } else {
            schedule_pump(loc, 0);
        }
        return;
    }
    send_with_token(loc, p, token);
}

static bool start_one(struct location *loc, struct location_pending *p)
{
    loc->in_flight++;
    const char *token = oauth_peek(loc->cred);
    if (token != NULL) {
        send_with_token(loc, p, token);
        return true;
    }
    /* Refresh under way or needed: the request waits for it (single-flight). */
    p->wait = oauth_acquire(loc->cred, on_token, p);
    if (p->wait == NULL) {
        on_token(NULL, OAUTH_E_FAILED, p);
    }
    return true;
}

static void run_finished(struct location *loc)
{
    struct location_pending *p;
    while ((p = queue_pop(&loc->finished)) != NULL) {
        complete_locally(p, HTTP_E_CANCELLED, "cancelled");
        pending_free(p);
    }
}

static void pump_cb(uv_timer_t *timer)
{
    struct location *loc = timer->data;
    run_finished(loc);
    uint64_t wait = 0;
    while (loc->in_flight < LOCATION_MAX_IN_FLIGHT) {
        bool polls = loc->queues[LOCATION_POLL].len > 0;
        bool sweeps = loc->queues[LOCATION_SWEEP].len > 0;
        if (!polls && !sweeps) {
            return;
        }
        /* The limiter picks: polls first when the window is full, sweeps
         * within their own shares of the window and of the day. */
        enum ratelimit_class cls = RATELIMIT_PRIORITY;
        wait = ratelimit_next(loc->rl, uv_now(loc->loop), polls, sweeps, &cls);
        if (wait > 0) {
            break;
        }
        watch_budget(loc);
        start_one(loc, queue_pop(&loc->queues[cls == RATELIMIT_CAPPED ? LOCATION_SWEEP
                                                                      : LOCATION_POLL]));
    }
    if (wait > 0) {
        schedule_pump(loc, wait);
    }
}

uint64_t location_sweep_wait(struct location *loc)
{
    return ratelimit_capped_wait(loc->rl, uv_now(loc->loop));
}

void location_rate_stats(const struct location *loc, struct ratelimit_stats *out)
{
    ratelimit_stats(loc->rl, uv_now(loc->loop), out);
}

int location_submit(struct location *loc, enum location_class cls, const struct location_request *req,
                    http_done_cb cb, void *ud, struct location_pending **out)
{
    if (req->method == NULL || req->path == NULL || req->path[0] != '/' || cb == NULL) {
        return -EINVAL;
    }
    char *url = location_build_url(loc->base_url, req->path, req->query, req->nquery);
    if (url == NULL) {
        return -EINVAL;
    }
    struct location_pending *p = xcalloc(1, sizeof(*p));
    p->loc = loc;
    p->cls = cls;
    p->method = xstrdup(req->method);
    p->url = url;
    p->version_header = req->version ? xasprintf("Version: %s", req->version) : NULL;
    if (req->body != NULL) {
        p->body = xstrndup(req->body, req->body_len);
        p->body_len = req->body_len;
    }
    p->log_tag = xstrdup(req->log_tag ? req->log_tag : loc->name);
    p->fresh_connection = req->fresh_connection;
    p->cb = cb;
    p->ud = ud;
    if (loc->closing) {
        queue_push(&loc->finished, p);
    } else {
        queue_push(&loc->queues[cls == LOCATION_SWEEP ? 1 : 0], p);
    }
    if (out != NULL) {
        *out = p;
    }
    schedule_pump(loc, 0);
    return 0;
}

void location_cancel(struct location_pending *p)
{
    if (p == NULL || p->cancelled) {
        return;
    }
    p->cancelled = true;
    struct location *loc = p->loc;
    if (p->transfer != NULL) {
        http_cancel(p->transfer);
        return;
    }
    if (p->wait != NULL) {
        oauth_cancel(p->wait);
        p->wait = NULL;
        on_token(NULL, OAUTH_E_CANCELLED, p);
        return;
    }
    if (queue_remove(&loc->queues[0], p) || queue_remove(&loc->queues[1], p)) {
        queue_push(&loc->finished, p);
        if (loc->closing) {
            run_finished(loc);
        } else {
            schedule_pump(loc, 0);
        }
    }
}

void location_close(struct location *loc)
{
    if (loc == NULL || loc->closing) {
        return;
    }
    struct location_pending *p;
    for (int c = 0; c < 2; c++) {
        while ((p = queue_pop(&loc->queues[c])) != NULL) {
            p->cancelled = true;
            queue_push(&loc->finished, p);
        }
    }
    loc->closing = true;
    uv_timer_stop(&loc->timer);
    uv_timer_stop(&loc->budget_timer);
    /* Queued requests never reached the wire: tell their owners now. */
    run_finished(loc);
    uv_close((uv_handle_t *)&loc->timer, timer_closed_cb);
    uv_close((uv_handle_t *)&loc->budget_timer, timer_closed_cb);
}

/*
 * target: see target.h.
 */
#include "target.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "secret.h"
#include "url.h"
#include "util.h"

/* The budget line (requests in the last 24 h) is logged this often. */
#define BUDGET_LOG_INTERVAL_MS (60ULL * 60 * 1000)

struct target_pending {
    struct target_pending *next;
    struct target *t;
    enum target_class cls;
    char *method;
    char *url;
    char *header;                    /* the caller's extra header line, or NULL */
    char *body;
    size_t body_len;
    char *log_tag;
    http_done_cb cb;
    void *ud;
    struct http_transfer *transfer;  /* set while on the wire */
    void *slot;                      /* the owner's (an OAuth wait) */
    bool authorizing;                /* hooks.authorize has it, not sent yet */
    char *credential;                /* what it was sent with (for a 401) */
    bool retried_401;                /* one retry per request */
    bool fresh_connection;           /* never on a reused connection (http.h) */
    bool cancelled;
};

struct pending_queue {
    struct target_pending *head;
    struct target_pending *tail;
    size_t len;
};

struct target {
    uv_loop_t *loop;
    struct http_client *http;
    uv_timer_t timer;              /* runs pump(): deferred starts and rate-limit waits */
    uv_timer_t budget_timer;       /* logs the budget line every BUDGET_LOG_INTERVAL_MS */
    char *kind;
    char *name;
    char *tag;                     /* "KIND:NAME" for the budget lines */
    char *base_url;
    char *auth_header;
    char *auth_scheme;
    char *secret;                  /* static credential, or NULL; never logged */
    uint64_t timeout_ms;
    struct target_hooks hooks;
    struct ratelimit *rl;
    struct pending_queue queues[2];
    struct pending_queue finished; /* cancelled before sending; callbacks run from pump() */
    size_t in_flight;
    bool closing;
    unsigned timers_open;          /* uv timers not closed yet (freed after the last) */
};

static void pump_cb(uv_timer_t *timer);

static void queue_push(struct pending_queue *q, struct target_pending *p)
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

static void queue_push_front(struct pending_queue *q, struct target_pending *p)
{
    p->next = q->head;
    q->head = p;
    if (q->tail == NULL) {
        q->tail = p;
    }
    q->len++;
}

static struct target_pending *queue_pop(struct pending_queue *q)
{
    struct target_pending *p = q->head;
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

static bool queue_remove(struct pending_queue *q, struct target_pending *p)
{
    struct target_pending *prev = NULL;
    for (struct target_pending *it = q->head; it != NULL; prev = it, it = it->next) {
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

static void pending_free(struct target_pending *p)
{
    if (p == NULL) {
        return;
    }
    secret_wipe_free(p->credential);
    free(p->method);
    free(p->url);
    free(p->header);
    if (p->body != NULL) {
        explicit_bzero(p->body, p->body_len); /* it may hold a secret field */
    }
    free(p->body);
    free(p->log_tag);
    free(p);
}

static void target_free(struct target *t)
{
    ratelimit_destroy(t->rl);
    free(t->kind);
    free(t->name);
    free(t->tag);
    free(t->base_url);
    free(t->auth_header);
    free(t->auth_scheme);
    secret_wipe_free(t->secret);
    free(t);
}

static void maybe_free(struct target *t)
{
    if (t->closing && t->timers_open == 0 && t->in_flight == 0 && t->finished.len == 0) {
        target_free(t);
    }
}

static void timer_closed_cb(uv_handle_t *handle)
{
    struct target *t = handle->data;
    t->timers_open--;
    maybe_free(t);
}

static void schedule_pump(struct target *t, uint64_t delay_ms)
{
    if (t->closing) {
        return;
    }
    /* uv_timer_start on an active timer re-arms it; keep the earlier deadline. */
    if (uv_is_active((uv_handle_t *)&t->timer)) {
        uint64_t due_in = uv_timer_get_due_in(&t->timer);
        if (due_in <= delay_ms) {
            return;
        }
    }
    uv_timer_start(&t->timer, pump_cb, delay_ms, 0);
}

/* The budget line: requests of the last 24 h, of them sweeps, against the limits. */
static void log_budget(struct target *t, const char *why)
{
    struct ratelimit_stats st;
    ratelimit_stats(t->rl, uv_now(t->loop), &st);
    unsigned pct = st.daily_max > 0 ? (unsigned)(st.in_day * 100u / st.daily_max) : 0;
    log_at(why != NULL ? LOG_WARN : LOG_INFO, t->tag,
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
static void watch_budget(struct target *t)
{
    unsigned pct = ratelimit_daily_crossed(t->rl, uv_now(t->loop));
    if (pct != 0) {
        char why[48];
        snprintf(why, sizeof(why), "passed %u%%", pct);
        log_budget(t, why);
    }
}

struct target *target_create(uv_loop_t *loop, struct http_client *http,
                             const struct target_options *opts, const struct target_hooks *hooks)
{
    struct target *t = xcalloc(1, sizeof(*t));
    t->loop = loop;
    t->http = http;
    t->kind = xstrdup(opts->kind);
    t->name = xstrdup(opts->name);
    t->tag = xasprintf("%s:%s", opts->kind, opts->name);
    t->base_url = xstrdup(opts->base_url);
    t->auth_header = xstrdup(opts->auth_header != NULL ? opts->auth_header : "Authorization");
    t->auth_scheme = xstrdup(opts->auth_scheme != NULL ? opts->auth_scheme : "Bearer");
    t->secret = opts->secret != NULL ? xstrdup(opts->secret) : NULL;
    t->timeout_ms = opts->timeout_ms;
    if (hooks != NULL) {
        t->hooks = *hooks;
    }
    t->rl = ratelimit_create(opts->rate_limit, opts->rate_window_ms, opts->daily_limit);
    ratelimit_set_capped(t->rl, opts->sweep_share, opts->sweep_daily_share);
    uv_timer_init(loop, &t->timer);
    t->timer.data = t;
    uv_timer_init(loop, &t->budget_timer);
    t->budget_timer.data = t;
    t->timers_open = 2;
    uv_timer_start(&t->budget_timer, budget_cb, BUDGET_LOG_INTERVAL_MS, BUDGET_LOG_INTERVAL_MS);
    /* The hourly line never keeps a finished run (--once) alive. */
    uv_unref((uv_handle_t *)&t->budget_timer);
    return t;
}

const char *target_name(const struct target *t)
{
    return t->name;
}

void target_rate_stats(const struct target *t, struct ratelimit_stats *out)
{
    ratelimit_stats(t->rl, uv_now(t->loop), out);
}

size_t target_queued(const struct target *t)
{
    return t->queues[0].len + t->queues[1].len;
}

void **target_pending_slot(struct target_pending *p)
{
    return &p->slot;
}

struct target *target_of(const struct target_pending *p)
{
    return p->t;
}

const char *target_pending_tag(const struct target_pending *p)
{
    return p->log_tag;
}

char *target_build_url(const char *base_url, const char *path, const struct target_query *query,
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

static void complete_locally(struct target_pending *p, int error, const char *text)
{
    struct http_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.error = error;
    str_copy(resp.error_text, sizeof(resp.error_text), text);
    buf_init(&resp.body, 0);
    p->cb(&resp, p->ud);
    buf_finish(&resp.body);
}

/* A request off the wire (answered or failed): the target may pump again, or free. */
static void after_request(struct target *t)
{
    if (t->closing) {
        maybe_free(t);
    } else {
        schedule_pump(t, 0);
    }
}

/* pollen_http_requests_total{location, class}: 2xx..5xx, or "error" (no
 * answer). The label is the target's name: a [location]'s, or an [api]'s. */
static void count_response(const struct target *t, const struct http_response *resp)
{
    char labels[200];
    char cls[8] = "error";
    if (resp->status >= 100 && resp->status < 600) {
        snprintf(cls, sizeof(cls), "%ldxx", resp->status / 100);
    }
    metrics_add("pollen_http_requests_total",
                metrics_labels2(labels, sizeof(labels), "location", t->name, "class", cls), 1);
}

static void on_response(struct http_response *resp, void *ud)
{
    struct target_pending *p = ud;
    struct target *t = p->t;
    t->in_flight--;
    p->transfer = NULL;
    if (resp->status == 401 && !p->retried_401 && !t->closing && !p->cancelled &&
        t->hooks.refused != NULL) {
        p->retried_401 = true;
        if (t->hooks.refused(t->hooks.ud, p, p->credential)) {
            queue_push_front(&t->queues[p->cls == TARGET_SWEEP ? 1 : 0], p);
            schedule_pump(t, 0);
            return;
        }
    }
    if (resp->error == 0 || resp->status != 0) {
        struct http_ratelimit_info rl = {0};
        if (t->hooks.ratelimit_info != NULL) {
            t->hooks.ratelimit_info(resp, &rl);
        }
        ratelimit_observe(t->rl, uv_now(t->loop), resp->status, &rl, resp->retry_after_s);
    }
    if (resp->status == 429) {
        log_warn(p->log_tag, "HTTP 429 from the API for %s %s: backing off", t->kind, t->name);
    }
    count_response(t, resp);
    p->cb(resp, p->ud);
    pending_free(p);
    after_request(t);
}

void target_send(struct target_pending *p, const char *credential)
{
    struct target *t = p->t;
    p->authorizing = false;
    secret_wipe_free(p->credential);
    p->credential = credential != NULL ? xstrdup(credential) : NULL;
    char *auth = NULL;
    if (credential != NULL) {
        auth = xasprintf("%s: %s%s%s", t->auth_header, t->auth_scheme,
                         t->auth_scheme[0] != '\0' ? " " : "", credential);
    }
    const char *headers[4];
    size_t h = 0;
    if (auth != NULL) {
        headers[h++] = auth;
    }
    if (p->header != NULL) {
        headers[h++] = p->header;
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
        .timeout_ms = t->timeout_ms,
        .capture_headers = t->hooks.capture_headers,
        .fresh_connection = p->fresh_connection,
    };
    int rc = http_send(t->http, &req, on_response, p, &p->transfer);
    secret_wipe_free(auth);
    if (rc != 0) {
        /* http_send promises a later callback even on failure; nothing else to do. */
        log_debug(p->log_tag, "http_send failed: %s", http_strerror(rc));
    }
}

void target_fail(struct target_pending *p, int error, const char *text)
{
    struct target *t = p->t;
    p->authorizing = false;
    t->in_flight--;
    complete_locally(p, error, text);
    pending_free(p);
    after_request(t);
}

static void start_one(struct target *t, struct target_pending *p)
{
    t->in_flight++;
    if (t->hooks.authorize == NULL) {
        target_send(p, t->secret);
        return;
    }
    p->authorizing = true;
    t->hooks.authorize(t->hooks.ud, p);
}

static void run_finished(struct target *t)
{
    struct target_pending *p;
    while ((p = queue_pop(&t->finished)) != NULL) {
        complete_locally(p, HTTP_E_CANCELLED, "cancelled");
        pending_free(p);
    }
}

static void pump_cb(uv_timer_t *timer)
{
    struct target *t = timer->data;
    run_finished(t);
    uint64_t wait = 0;
    while (t->in_flight < TARGET_MAX_IN_FLIGHT) {
        bool polls = t->queues[TARGET_POLL].len > 0;
        bool sweeps = t->queues[TARGET_SWEEP].len > 0;
        if (!polls && !sweeps) {
            return;
        }
        /* The limiter picks: polls first when the window is full, sweeps
         * within their own shares of the window and of the day. */
        enum ratelimit_class cls = RATELIMIT_PRIORITY;
        wait = ratelimit_next(t->rl, uv_now(t->loop), polls, sweeps, &cls);
        if (wait > 0) {
            break;
        }
        watch_budget(t);
        start_one(t, queue_pop(&t->queues[cls == RATELIMIT_CAPPED ? TARGET_SWEEP : TARGET_POLL]));
    }
    if (wait > 0) {
        schedule_pump(t, wait);
    }
}

uint64_t target_sweep_wait(struct target *t)
{
    return ratelimit_capped_wait(t->rl, uv_now(t->loop));
}

int target_submit(struct target *t, enum target_class cls, const struct target_request *req,
                  http_done_cb cb, void *ud, struct target_pending **out)
{
    if (req->method == NULL || req->path == NULL || req->path[0] != '/' || cb == NULL) {
        return -EINVAL;
    }
    char *url = target_build_url(t->base_url, req->path, req->query, req->nquery);
    if (url == NULL) {
        return -EINVAL;
    }
    struct target_pending *p = xcalloc(1, sizeof(*p));
    p->t = t;
    p->cls = cls;
    p->method = xstrdup(req->method);
    p->url = url;
    p->header = req->header != NULL ? xstrdup(req->header) : NULL;
    if (req->body != NULL) {
        p->body = xstrndup(req->body, req->body_len);
        p->body_len = req->body_len;
    }
    p->log_tag = xstrdup(req->log_tag ? req->log_tag : t->name);
    p->fresh_connection = req->fresh_connection;
    p->cb = cb;
    p->ud = ud;
    if (t->closing) {
        queue_push(&t->finished, p);
    } else {
        queue_push(&t->queues[cls == TARGET_SWEEP ? 1 : 0], p);
    }
    if (out != NULL) {
        *out = p;
    }
    schedule_pump(t, 0);
    return 0;
}

void target_cancel(struct target_pending *p)
{
    if (p == NULL || p->cancelled) {
        return;
    }
    p->cancelled = true;
    struct target *t = p->t;
    if (p->transfer != NULL) {
        http_cancel(p->transfer);
        return;
    }
    if (p->authorizing) {
        t->hooks.cancel_authorize(t->hooks.ud, p);
        return;
    }
    if (queue_remove(&t->queues[0], p) || queue_remove(&t->queues[1], p)) {
        queue_push(&t->finished, p);
        if (t->closing) {
            run_finished(t);
        } else {
            schedule_pump(t, 0);
        }
    }
}

void target_close(struct target *t)
{
    if (t == NULL || t->closing) {
        return;
    }
    struct target_pending *p;
    for (int c = 0; c < 2; c++) {
        while ((p = queue_pop(&t->queues[c])) != NULL) {
            p->cancelled = true;
            queue_push(&t->finished, p);
        }
    }
    t->closing = true;
    uv_timer_stop(&t->timer);
    uv_timer_stop(&t->budget_timer);
    /* Queued requests never reached the wire: tell their owners now. */
    run_finished(t);
    uv_close((uv_handle_t *)&t->timer, timer_closed_cb);
    uv_close((uv_handle_t *)&t->budget_timer, timer_closed_cb);
}

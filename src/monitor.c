/*
 * monitor: see monitor.h.
 */
#include "monitor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "httpd.h"
#include "isotime.h"
#include "json.h"
#include "location.h"
#include "log.h"
#include "metrics.h"
#include "poller.h"
#include "status_page.h"
#include "status_report.h"
#include "store.h"
#include "util.h"

/* A trigger failing for longer than this many intervals makes /healthz 503. */
#define HEALTH_INTERVALS 3
#define LABEL_MAX 200
#define METRICS_BODY_MAX (4u << 20)

#define HOURS 24
#define HOUR_MS 3600000ULL
#define SAMPLE_MS 60000

/* One trigger's counts per wall-clock hour: slot hour % HOURS. */
struct hourly {
    uint32_t events[HOURS];
    uint32_t requests[HOURS];
    uint64_t requests_seen; /* poller_stats.requests at the last sample */
};

struct monitor {
    struct monitor_env env;
    struct httpd *httpd;
    struct hourly *hours;   /* one per poller */
    uint64_t hour;          /* the wall hour the newest slots count */
    uv_timer_t sampler;
    int open_handles;
};

static const double cycle_bounds[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900};

void monitor_declare(void)
{
    metrics_declare("pollen_build_info", METRIC_GAUGE,
                    "Always 1; the version label says which pollen runs.", NULL, 0);
    metrics_declare("pollen_cycles_total", METRIC_COUNTER,
                    "Poll cycles ended since start, by trigger and result (ok, failed).", NULL, 0);
    metrics_declare("pollen_cycle_duration_seconds", METRIC_HISTOGRAM,
                    "How long a poll cycle took, from its first request to its end.",
                    cycle_bounds, sizeof(cycle_bounds) / sizeof(cycle_bounds[0]));
    metrics_declare("pollen_records_total", METRIC_COUNTER,
                    "Records read by a trigger since start.", NULL, 0);
    metrics_declare("pollen_trigger_requests_total", METRIC_COUNTER,
                    "API requests a trigger sent since start (retries included).", NULL, 0);
    metrics_declare("pollen_trigger_failing_seconds", METRIC_GAUGE,
                    "How long a trigger's cycles have been failing (0: its last cycle succeeded).",
                    NULL, 0);
    metrics_declare("pollen_events_total", METRIC_COUNTER,
                    "Events appended to the log since start, by trigger and type.", NULL, 0);
    metrics_declare("pollen_http_requests_total", METRIC_COUNTER,
                    "Answers from the API since start, by location and status class (error: "
                    "no answer).", NULL, 0);
    metrics_declare("pollen_actions_total", METRIC_COUNTER,
                    "Action attempts recorded since start, by rule and outcome (succeeded, "
                    "failed: retried later, dead).", NULL, 0);
    metrics_declare("pollen_outbox_pending", METRIC_GAUGE,
                    "Actions in the outbox (pending, retrying or in flight).", NULL, 0);
    metrics_declare("pollen_dead_letters", METRIC_GAUGE, "Actions in the dead-letter store.",
                    NULL, 0);
    metrics_declare("pollen_events_stored", METRIC_GAUGE, "Events kept in the event log.", NULL,
                    0);
    metrics_declare("pollen_db_size_bytes", METRIC_GAUGE, "Size of data.mdb on disk.", NULL, 0);
    metrics_declare("pollen_db_used_bytes", METRIC_GAUGE,
                    "Bytes of data.mdb in use (its high-water mark).", NULL, 0);
    metrics_declare("pollen_db_max_bytes", METRIC_GAUGE,
                    "The database's growth cap ([engine] max_db_size).", NULL, 0);
    metrics_declare("pollen_db_readers", METRIC_GAUGE,
                    "LMDB reader slots held by live read transactions (any process).", NULL, 0);
    metrics_declare("pollen_rate_window_requests", METRIC_GAUGE,
                    "Requests a location started in the current rate window.", NULL, 0);
    metrics_declare("pollen_rate_window_limit", METRIC_GAUGE,
                    "A location's window limit in force (after the server's feedback).", NULL, 0);
    metrics_declare("pollen_rate_day_requests", METRIC_GAUGE,
                    "Requests a location started in the last 24 hours.", NULL, 0);
    metrics_declare("pollen_rate_daily_limit", METRIC_GAUGE,
                    "A location's daily limit in force.", NULL, 0);
    metrics_declare("pollen_rate_blocked_seconds", METRIC_GAUGE,
                    "How long the server's feedback (429, Retry-After) still blocks a location.",
                    NULL, 0);
    metrics_declare("pollen_rate_throttled_total", METRIC_COUNTER,
                    "429 answers a location received since start.", NULL, 0);
}

/* Moves the rings to the current wall hour, zeroing the hours skipped. */
static void rotate(struct monitor *m)
{
    uint64_t now = util_wall_ms() / HOUR_MS;
    if (now <= m->hour) {
        return; /* the same hour, or the clock stepped back: keep counting here */
    }
    uint64_t steps = now - m->hour < HOURS ? now - m->hour : HOURS;
    for (uint64_t s = 1; s <= steps; s++) {
        size_t slot = (size_t)((m->hour + s) % HOURS);
        for (size_t i = 0; i < m->env.npollers; i++) {
            m->hours[i].events[slot] = 0;
            m->hours[i].requests[slot] = 0;
        }
    }
    m->hour = now;
}

/* Adds each poller's requests since the last sample to the current hour. */
static void sample_requests(struct monitor *m)
{
    rotate(m);
    for (size_t i = 0; i < m->env.npollers; i++) {
        struct poller_stats st;
        poller_get_stats(m->env.pollers[i], &st);
        struct hourly *h = &m->hours[i];
        h->requests[m->hour % HOURS] += (uint32_t)(st.requests - h->requests_seen);
        h->requests_seen = st.requests;
    }
}

static void on_sample(uv_timer_t *t)
{
    sample_requests(t->data);
}

static void count_hourly(struct monitor *m, const char *trigger)
{
    for (size_t i = 0; i < m->env.npollers; i++) {
        if (strcmp(poller_name(m->env.pollers[i]), trigger) == 0) {
            rotate(m);
            m->hours[i].events[m->hour % HOURS]++;
            return;
        }
    }
}

void monitor_count_event(struct monitor *m, const cJSON *event)
{
    const cJSON *trigger = cJSON_GetObjectItemCaseSensitive(event, "trigger");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(event, "type");
    char labels[2 * LABEL_MAX];
    metrics_labels2(labels, sizeof(labels), "trigger",
               cJSON_IsString(trigger) ? trigger->valuestring : "", "type",
               cJSON_IsString(type) ? type->valuestring : "");
    metrics_add("pollen_events_total", labels, 1);
    if (m != NULL && cJSON_IsString(trigger)) {
        count_hourly(m, trigger->valuestring);
    }
}

/* counts[HOURS] oldest first, as a JSON array. */
static cJSON *hours_json(const struct monitor *m, const uint32_t *counts)
{
    cJSON *a = cJSON_CreateArray();
    for (uint64_t k = HOURS; k-- > 0;) {
        size_t slot = (size_t)((m->hour - k) % HOURS);
        cJSON_AddItemToArray(a, cJSON_CreateNumber(counts[slot]));
    }
    return a;
}

/* The `pollen status --json` object, each trigger with its hourly counts. */
static void serve_status_json(struct monitor *m, struct httpd_reply *reply)
{
    sample_requests(m);
    struct status_report r;
    char started[sizeof(r.engine_started)] = "";
    status_engine_pid(m->env.cfg->state_dir, started, sizeof(started)); /* our own lock */
    int rc = status_collect(m->env.cfg, m->env.store, (long)getpid(), &r);
    snprintf(r.engine_started, sizeof(r.engine_started), "%s", started);
    cJSON *root = rc == 0 ? status_to_json(&r) : NULL;
    status_report_free(&r);
    if (root == NULL) {
        reply->status = 503;
        reply->body = xasprintf("cannot read the state: %s\n", store_strerror(rc));
        reply->len = strlen(reply->body);
        return;
    }
    cJSON *triggers = cJSON_GetObjectItemCaseSensitive(root, "triggers");
    cJSON *t = NULL;
    cJSON_ArrayForEach(t, triggers)
    {
        const char *name = json_get_string(t, "name");
        for (size_t i = 0; name != NULL && i < m->env.npollers; i++) {
            if (strcmp(poller_name(m->env.pollers[i]), name) == 0) {
                cJSON *h = cJSON_AddObjectToObject(t, "hourly");
                char from[ISOTIME_LEN];
                isotime_format((m->hour - (HOURS - 1)) * HOUR_MS, from);
                cJSON_AddStringToObject(h, "from", from);
                cJSON_AddItemToObject(h, "events", hours_json(m, m->hours[i].events));
                cJSON_AddItemToObject(h, "requests", hours_json(m, m->hours[i].requests));
            }
        }
    }
    reply->content_type = "application/json";
    reply->body = cJSON_PrintUnformatted(root);
    reply->len = reply->body != NULL ? strlen(reply->body) : 0;
    cJSON_Delete(root);
}

/* Mirrors what the pollers count themselves into the registry. */
static void gather_triggers(const struct monitor *m, uint64_t now)
{
    for (size_t i = 0; i < m->env.npollers; i++) {
        const struct poller *p = m->env.pollers[i];
        struct poller_stats st;
        poller_get_stats(p, &st);
        char one[LABEL_MAX];
        char two[2 * LABEL_MAX];
        metrics_label(one, sizeof(one), "trigger", poller_name(p));
        metrics_set("pollen_cycles_total",
                    metrics_labels2(two, sizeof(two), "trigger", poller_name(p), "result", "ok"),
                    (double)st.cycles);
        metrics_set("pollen_cycles_total",
                    metrics_labels2(two, sizeof(two), "trigger", poller_name(p), "result", "failed"),
                    (double)st.failed_cycles);
        metrics_set("pollen_records_total", one, (double)st.records);
        metrics_set("pollen_trigger_requests_total", one, (double)st.requests);
        uint64_t since = poller_failing_since(p);
        metrics_set("pollen_trigger_failing_seconds", one,
                    since != 0 && now > since ? (double)(now - since) / 1000.0 : 0);
    }
}

static void gather_locations(const struct monitor *m)
{
    for (size_t i = 0; i < m->env.nlocations; i++) {
        const struct location *loc = m->env.locations[i];
        if (loc == NULL) {
            continue;
        }
        struct ratelimit_stats st;
        location_rate_stats(loc, &st);
        char lab[LABEL_MAX];
        metrics_label(lab, sizeof(lab), "location", location_name(loc));
        metrics_set("pollen_rate_window_requests", lab, st.in_window);
        metrics_set("pollen_rate_window_limit", lab, st.max);
        metrics_set("pollen_rate_day_requests", lab, (double)st.in_day);
        metrics_set("pollen_rate_daily_limit", lab, (double)st.daily_max);
        metrics_set("pollen_rate_blocked_seconds", lab, (double)st.blocked_ms / 1000.0);
        metrics_set("pollen_rate_throttled_total", lab, (double)st.throttled_429);
    }
}

static void gather_store(const struct monitor *m)
{
    struct store_stat st;
    if (store_stat(m->env.store, &st) != 0) {
        return; /* the gauges keep their last values */
    }
    metrics_set("pollen_outbox_pending", "", (double)st.entries[STORE_OUTBOX]);
    metrics_set("pollen_dead_letters", "", (double)st.entries[STORE_DLQ]);
    metrics_set("pollen_events_stored", "", (double)st.entries[STORE_EVENTS]);
    metrics_set("pollen_db_size_bytes", "", (double)st.file_size);
    metrics_set("pollen_db_used_bytes", "", (double)(st.pages_used * st.page_size));
    metrics_set("pollen_db_max_bytes", "", (double)st.max_size);
    metrics_set("pollen_db_readers", "", st.readers_used);
}

static void serve_metrics(struct monitor *m, struct httpd_reply *reply)
{
    char version[LABEL_MAX];
    metrics_set("pollen_build_info", metrics_label(version, sizeof(version), "version",
                                                   POLLEN_VERSION),
                1);
    gather_triggers(m, uv_now(m->env.loop));
    gather_locations(m);
    gather_store(m);
    struct buf out;
    buf_init(&out, METRICS_BODY_MAX);
    if (metrics_render(&out) != 0) {
        buf_finish(&out);
        reply->status = 500;
        return;
    }
    reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
    reply->body = buf_steal(&out, &reply->len);
}

/* 200 "ok", or 503 naming each trigger failing for too long. */
static void serve_health(struct monitor *m, struct httpd_reply *reply)
{
    struct buf out;
    buf_init(&out, 64 * 1024);
    uint64_t now = uv_now(m->env.loop);
    for (size_t i = 0; i < m->env.npollers; i++) {
        const struct poller *p = m->env.pollers[i];
        uint64_t since = poller_failing_since(p);
        uint64_t every = poller_every_ms(p);
        if (since != 0 && now - since > HEALTH_INTERVALS * every) {
            char line[256];
            snprintf(line, sizeof(line), "failing: trigger %s, for %llu s (interval %llu s)\n",
                     poller_name(p), (unsigned long long)((now - since) / 1000),
                     (unsigned long long)(every / 1000));
            buf_append_str(&out, line);
        }
    }
    reply->status = out.len == 0 ? 200 : 503;
    if (out.len == 0) {
        buf_append_str(&out, "ok\n");
    }
    reply->body = buf_steal(&out, &reply->len);
}

static void on_request(const struct httpd_request *req, struct httpd_reply *reply, void *ud)
{
    struct monitor *m = ud;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        reply->status = 405;
    } else if (strcmp(req->path, "/metrics") == 0) {
        serve_metrics(m, reply);
    } else if (strcmp(req->path, "/healthz") == 0) {
        serve_health(m, reply);
    } else if (strcmp(req->path, "/status.json") == 0) {
        serve_status_json(m, reply);
    } else if (strcmp(req->path, "/") == 0) {
        reply->content_type = "text/html; charset=utf-8";
        reply->body = xstrdup(status_page_html);
        reply->len = strlen(reply->body);
    } else {
        reply->status = 404;
        reply->body = xstrdup("not found: try /, /status.json, /metrics or /healthz\n");
        reply->len = strlen(reply->body);
    }
}

int monitor_start(const struct monitor_env *env, struct monitor **out)
{
    char host[64];
    unsigned port = 0;
    int rc = httpd_parse_listen(env->cfg->listen, host, sizeof(host), &port);
    struct monitor *m = xcalloc(1, sizeof(*m));
    m->env = *env;
    if (rc == 0) {
        rc = httpd_start(env->loop, host, port, on_request, m, &m->httpd);
    }
    if (rc != 0) {
        log_error("engine", "[engine] listen = %s: cannot listen there: %s", env->cfg->listen,
                  uv_strerror(rc));
        free(m);
        return rc;
    }
    m->hours = xcalloc(env->npollers + 1, sizeof(*m->hours));
    m->hour = util_wall_ms() / HOUR_MS;
    uv_timer_init(env->loop, &m->sampler);
    m->sampler.data = m;
    uv_timer_start(&m->sampler, on_sample, SAMPLE_MS, SAMPLE_MS);
    log_info("engine", "status page, metrics and health on http://%s%s%s:%u/ (/metrics, /healthz)",
             strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
             httpd_port(m->httpd));
    *out = m;
    return 0;
}

unsigned monitor_port(const struct monitor *m)
{
    return httpd_port(m->httpd);
}

static void closed_one(struct monitor *m)
{
    if (--m->open_handles == 0) {
        free(m->hours);
        free(m);
    }
}

static void on_httpd_closed(void *ud)
{
    closed_one(ud);
}

static void on_sampler_closed(uv_handle_t *h)
{
    closed_one(h->data);
}

void monitor_close(struct monitor *m)
{
    m->open_handles = 2;
    uv_close((uv_handle_t *)&m->sampler, on_sampler_closed);
    httpd_close(m->httpd, on_httpd_closed, m);
}

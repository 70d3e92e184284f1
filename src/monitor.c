/*
 * monitor: see monitor.h.
 */
#include "monitor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "httpd.h"
#include "location.h"
#include "log.h"
#include "metrics.h"
#include "poller.h"
#include "store.h"
#include "util.h"

/* A trigger failing for longer than this many intervals makes /healthz 503. */
#define HEALTH_INTERVALS 3
#define LABEL_MAX 200
#define METRICS_BODY_MAX (4u << 20)

struct monitor {
    struct monitor_env env;
    struct httpd *httpd;
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

/* `key="a",key2="b"` into out. */
static char *two_labels(char *out, size_t size, const char *k1, const char *v1, const char *k2,
                        const char *v2)
{
    char second[LABEL_MAX];
    metrics_label(out, size / 2, k1, v1);
    metrics_label(second, sizeof(second), k2, v2);
    size_t n = strlen(out);
    snprintf(out + n, size - n, ",%s", second);
    return out;
}

void monitor_count_event(const cJSON *event)
{
    const cJSON *trigger = cJSON_GetObjectItemCaseSensitive(event, "trigger");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(event, "type");
    char labels[2 * LABEL_MAX];
    two_labels(labels, sizeof(labels), "trigger",
               cJSON_IsString(trigger) ? trigger->valuestring : "", "type",
               cJSON_IsString(type) ? type->valuestring : "");
    metrics_add("pollen_events_total", labels, 1);
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
                    two_labels(two, sizeof(two), "trigger", poller_name(p), "result", "ok"),
                    (double)st.cycles);
        metrics_set("pollen_cycles_total",
                    two_labels(two, sizeof(two), "trigger", poller_name(p), "result", "failed"),
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
    } else {
        reply->status = 404;
        reply->body = xstrdup("not found: try /metrics or /healthz\n");
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
    log_info("engine", "metrics and health on http://%s%s%s:%u/metrics and /healthz",
             strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
             httpd_port(m->httpd));
    *out = m;
    return 0;
}

unsigned monitor_port(const struct monitor *m)
{
    return httpd_port(m->httpd);
}

static void on_httpd_closed(void *ud)
{
    free(ud);
}

void monitor_close(struct monitor *m)
{
    httpd_close(m->httpd, on_httpd_closed, m);
}

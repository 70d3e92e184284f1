/*
 * status_report: see status_report.h.
 */
#include "status_report.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "config.h"
#include "isotime.h"
#include "json.h"
#include "outbox.h"
#include "snapshot.h"
#include "util.h"

/* for_each children: a full round at most this often when `reconcile` is not set (poller). */
#define CHILD_DEFAULT_RECONCILE_MS (24ULL * 3600 * 1000)

const char *status_state_name(enum status_state s)
{
    switch (s) {
    case STATUS_NEVER_RUN:
        return "never run";
    case STATUS_STOPPED_AUTH:
        return "stopped by auth";
    case STATUS_BACKING_OFF:
        return "backing off";
    case STATUS_BASELINE:
        return "baseline";
    case STATUS_RUNNING:
        return "running";
    case STATUS_IDLE:
        return "idle";
    }
    return "?";
}

/* ---- reading ------------------------------------------------------------ */

/* The second part of the trigger's state scope, as the poller names it: its
 * location's (or company's) name, or its [api]'s. */
static const char *trigger_location(const struct config_trigger *tc)
{
    const char *loc = tc->location != NULL ? tc->location->name : tc->location_name;
    return loc != NULL ? loc : tc->api_name != NULL ? tc->api_name : "";
}

static bool is_incremental(const struct config_trigger *tc)
{
    return tc->def != NULL && tc->def->incremental && tc->for_each == NULL && tc->reconcile_ms > 0;
}

/* The trigger's persisted state (JSON in "trig", written by the poller). */
static void read_state(struct store_txn *txn, const char *scope, struct status_trigger *t)
{
    const void *val = NULL;
    size_t vlen = 0;
    cJSON *st = NULL;
    if (store_get(txn, STORE_TRIG, scope, strlen(scope), &val, &vlen) != 0 ||
        json_parse(val, vlen, &st, NULL) != 0) {
        return;
    }
    t->has_state = true;
    t->seeded = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "seeded"));
    double d = 0;
    if (json_get_number(st, "cycle", &d) && d > 0) {
        t->cycles = (uint64_t)d;
    }
    if (json_get_number(st, "watermark", &d) && d >= 0) {
        t->watermark_ms = (int64_t)d;
    }
    if (json_get_number(st, "reconciled", &d) && d > 0) {
        t->reconciled_ms = (uint64_t)d;
    }
    if (json_get_number(st, "round_ended", &d) && d > 0) {
        t->round_ended_ms = (uint64_t)d;
    }
    uint64_t updated = 0;
    const char *when = json_get_string(st, "updated");
    int64_t ms = 0;
    if (when != NULL && isotime_parse(when, ISOTIME_LOOSE, &ms) == 0 && ms > 0) {
        updated = (uint64_t)ms;
    }
    t->updated_ms = updated;
    cJSON_Delete(st);
}

static void read_trigger(struct store_txn *txn, struct status_trigger *t)
{
    char *scope = xasprintf("%s%c%s", t->tc->name, SNAPSHOT_SEP, trigger_location(t->tc));
    read_state(txn, scope, t);
    t->has_cycle = status_cycle_get(txn, scope, &t->last) == 0;
    free(scope);
    if (t->incremental && t->reconciled_ms != 0) {
        t->reconcile_due_ms = t->reconciled_ms + t->tc->reconcile_ms;
    }
}

/* One queued outbox entry (an unreadable one is listed as a stub: pending,
 * as the dispatcher quarantines it when it comes due). */
static int count_entry(uint64_t id, const cJSON *entry, void *ud)
{
    struct status_outbox *o = ud;
    (void)id;
    switch (outbox_entry_state(entry)) {
    case OUTBOX_IN_FLIGHT:
        o->in_flight++;
        break;
    case OUTBOX_RETRYING: {
        o->retrying++;
        double next_at = 0;
        json_get_number(entry, "next_at", &next_at);
        uint64_t at = next_at > 0 ? (uint64_t)next_at : 0;
        if (at != 0 && (o->next_attempt_ms == 0 || at < o->next_attempt_ms)) {
            o->next_attempt_ms = at;
        }
        break;
    }
    case OUTBOX_PENDING:
        o->pending++;
        break;
    }
    return 0;
}

static int count_outbox(struct store_txn *txn, struct status_outbox *o)
{
    return outbox_scan(txn, OUTBOX_QUEUED, 0, count_entry, o);
}

/* The oldest and newest seq the event log keeps (0 when empty). */
static int read_seqs(struct store_txn *txn, uint64_t *oldest, uint64_t *newest)
{
    struct store_cursor *cur = NULL;
    const void *key = NULL;
    size_t klen = 0;
    int rc = store_cursor_open(txn, STORE_EVENTS, &cur);
    if (rc == 0) {
        rc = store_cursor_seek(cur, NULL, 0, &key, &klen, NULL, NULL);
    }
    if (rc == 0 && klen == 8) {
        *oldest = store_key_u64(key);
        rc = store_cursor_last(cur, &key, &klen, NULL, NULL);
        if (rc == 0 && klen == 8) {
            *newest = store_key_u64(key);
        }
    }
    return rc == -ENOENT ? 0 : rc;
}

static int read_all(struct store *s, struct status_report *r)
{
    struct store_txn *txn = NULL;
    int rc = store_txn_begin(s, false, &txn);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < r->ntriggers; i++) {
        read_trigger(txn, &r->triggers[i]);
    }
    for (size_t i = 0; i < r->nlocations; i++) {
        struct status_location *l = &r->locations[i];
        l->has_rate = status_rate_get(txn, l->lc->name, &l->rate) == 0;
    }
    rc = count_outbox(txn, &r->outbox);
    if (rc == 0) {
        rc = read_seqs(txn, &r->oldest_seq, &r->newest_seq);
    }
    store_txn_abort(txn); /* ended before the statistics: they list the readers */
    if (rc == 0) {
        rc = store_stat(s, &r->db);
    }
    if (rc == 0) {
        r->events = r->db.entries[STORE_EVENTS];
        r->outbox.dead = r->db.entries[STORE_DLQ];
        rc = store_readers(s, r->readers, STATUS_MAX_READERS, &r->nreaders);
    }
    return rc;
}

/* ---- deciding ------------------------------------------------------------ */

static enum status_state child_state(const struct status_report *r, const struct status_trigger *t)
{
    if (t->cycles == 0) {
        return STATUS_BASELINE; /* its first full round is not done */
    }
    /* A child's "seeded" is its round flag: a round is under way. */
    return r->engine_running && t->seeded ? STATUS_RUNNING : STATUS_IDLE;
}

static void decide(struct status_report *r, struct status_trigger *t)
{
    const struct status_cycle *c = &t->last;
    t->failing = t->has_cycle &&
                 (c->outcome == STATUS_OUTCOME_FAILED || c->outcome == STATUS_OUTCOME_AUTH);
    uint64_t every = t->tc->every_ms;
    t->failing_long = t->failing && c->failing_since != 0 && r->now_ms > c->failing_since &&
                      r->now_ms - c->failing_since > 3 * every;
    r->failing = r->failing || t->failing;
    if (!t->has_state && !t->has_cycle) {
        t->state = STATUS_NEVER_RUN;
    } else if (t->failing) {
        t->state = c->outcome == STATUS_OUTCOME_AUTH ? STATUS_STOPPED_AUTH : STATUS_BACKING_OFF;
    } else if (t->tc->for_each != NULL) {
        t->state = child_state(r, t);
    } else if (!t->seeded) {
        t->state = STATUS_BASELINE;
    } else if (r->engine_running && t->has_cycle && c->next_due_ms != 0 &&
               r->now_ms >= c->next_due_ms) {
        t->state = STATUS_RUNNING;
    } else {
        t->state = STATUS_IDLE;
    }
}

int status_collect(const struct config *cfg, struct store *s, long engine_pid,
                   struct status_report *out)
{
    memset(out, 0, sizeof(*out));
    out->now_ms = util_wall_ms();
    out->state_dir = cfg->state_dir;
    out->store_exists = s != NULL;
    out->engine_pid = engine_pid;
    out->engine_running = engine_pid > 0;
    out->ntriggers = cfg->ntriggers;
    out->triggers = xcalloc(cfg->ntriggers + 1, sizeof(*out->triggers));
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        struct status_trigger *t = &out->triggers[i];
        t->tc = &cfg->triggers[i];
        t->watermark_ms = -1;
        t->incremental = is_incremental(t->tc);
    }
    out->nlocations = cfg->nlocations;
    out->locations = xcalloc(cfg->nlocations + 1, sizeof(*out->locations));
    for (size_t i = 0; i < cfg->nlocations; i++) {
        out->locations[i].lc = &cfg->locations[i];
    }
    int rc = s != NULL ? read_all(s, out) : 0;
    for (size_t i = 0; i < out->ntriggers; i++) {
        decide(out, &out->triggers[i]);
    }
    return rc;
}

void status_report_free(struct status_report *r)
{
    free(r->triggers);
    free(r->locations);
    r->triggers = NULL;
    r->locations = NULL;
}

long status_engine_pid(const char *state_dir, char *started, size_t size)
{
    started[0] = '\0';
    char *path = xasprintf("%s/engine.lock", state_dir);
    FILE *f = fopen(path, "r");
    free(path);
    if (f == NULL) {
        return 0;
    }
    long pid = 0;
    char when[48] = "";
    int n = fscanf(f, "pid %ld started %47s", &pid, when);
    fclose(f);
    /* The file stays after the engine exits: only a live process counts. */
    if (n < 1 || pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno != EPERM)) {
        return 0;
    }
    snprintf(started, size, "%s", when);
    return pid;
}

/* ---- text --------------------------------------------------------------- */

static void iso(uint64_t ms, char out[32])
{
    if (ms == 0) {
        snprintf(out, 32, "-");
    } else {
        util_iso8601(ms, out);
    }
}

/* "12s", "3m05s", "2h10m", "3d4h". */
static void span(uint64_t ms, char *out, size_t size)
{
    uint64_t s = ms / 1000;
    if (ms < 1000) {
        snprintf(out, size, "%llums", (unsigned long long)ms);
    } else if (s < 60) {
        snprintf(out, size, "%llus", (unsigned long long)s);
    } else if (s < 3600) {
        snprintf(out, size, "%llum%02llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    } else if (s < 86400) {
        snprintf(out, size, "%lluh%02llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600 / 60));
    } else {
        snprintf(out, size, "%llud%lluh", (unsigned long long)(s / 86400),
                 (unsigned long long)(s % 86400 / 3600));
    }
}

/* "TIME (in 12s)" / "TIME (12s ago)" / "-". */
static void when(uint64_t ms, uint64_t now, char *out, size_t size)
{
    if (ms == 0) {
        snprintf(out, size, "-");
        return;
    }
    char t[32];
    char d[32];
    iso(ms, t);
    span(ms > now ? ms - now : now - ms, d, sizeof(d));
    snprintf(out, size, "%s (%s%s%s)", t, ms > now ? "in " : "", d, ms > now ? "" : " ago");
}

static void bytes(uint64_t n, char *out, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
        v /= 1024;
        u++;
    }
    snprintf(out, size, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
}

static const char *outcome_name(uint8_t o)
{
    return o == STATUS_OUTCOME_OK ? "ok" : o == STATUS_OUTCOME_AUTH ? "auth failed" : "failed";
}

static void print_last_cycle(const struct status_report *r, const struct status_trigger *t,
                             FILE *out)
{
    const struct status_cycle *c = &t->last;
    char at[96];
    char took[32];
    when(c->started_ms, r->now_ms, at, sizeof(at));
    span(c->duration_ms, took, sizeof(took));
    fprintf(out, "    last cycle: %s, took %s, %s%s: %llu records, %llu events, %llu requests\n",
            at, took, outcome_name(c->outcome),
            c->baseline ? " (baseline)" : c->incremental ? " (incremental)" : "",
            (unsigned long long)c->records, (unsigned long long)c->events,
            (unsigned long long)c->requests);
    if (c->error[0] != '\0') {
        fprintf(out, "    error: %s\n", c->error);
    }
    char due[96];
    when(c->next_due_ms, r->now_ms, due, sizeof(due));
    fprintf(out, "    next due: %s%s; failures in a row: %u", due,
            c->next_due_ms != 0 && !r->engine_running ? " (no engine running)" : "", c->failures);
    if (c->failures > 0) {
        char since[96];
        when(c->failing_since, r->now_ms, since, sizeof(since));
        fprintf(out, " since %s", since);
    }
    fputc('\n', out);
}

static void print_trigger(const struct status_report *r, const struct status_trigger *t, FILE *out)
{
    const struct config_trigger *tc = t->tc;
    char every[32];
    span(tc->every_ms, every, sizeof(every));
    fprintf(out, "  %s (%s on %s, every %s): %s%s\n", tc->name, tc->use ? tc->use : "?",
            trigger_location(tc), every, status_state_name(t->state),
            t->failing_long ? " (failing for longer than 3x its interval)" : "");
    if (t->has_cycle) {
        print_last_cycle(r, t, out);
    } else if (t->has_state) {
        char at[96];
        when(t->updated_ms, r->now_ms, at, sizeof(at));
        fprintf(out, "    %s: %llu, state saved %s\n",
                tc->for_each != NULL ? "full rounds" : "cycles", (unsigned long long)t->cycles,
                at);
    }
    if (tc->for_each != NULL && t->round_ended_ms != 0) {
        uint64_t every_round = tc->reconcile_ms ? tc->reconcile_ms : CHILD_DEFAULT_RECONCILE_MS;
        char ended[96];
        char next[96];
        when(t->round_ended_ms, r->now_ms, ended, sizeof(ended));
        when(t->round_ended_ms + every_round, r->now_ms, next, sizeof(next));
        fprintf(out, "    last full round ended %s; next due %s\n", ended, next);
    }
    if (t->incremental && t->state != STATUS_NEVER_RUN) {
        char w[32];
        char due[96];
        iso(t->watermark_ms >= 0 ? (uint64_t)t->watermark_ms : 0, w);
        if (t->reconcile_due_ms != 0) {
            when(t->reconcile_due_ms, r->now_ms, due, sizeof(due));
        } else {
            snprintf(due, sizeof(due), "at the next cycle");
        }
        fprintf(out, "    watermark: %s; reconcile due: %s\n", w, due);
    }
}

static void print_location(const struct status_report *r, const struct status_location *l,
                           FILE *out)
{
    const struct status_rate *rt = &l->rate;
    if (!l->has_rate) {
        fprintf(out, "  %s: no requests recorded yet (limits %u per %llus, %llu per day)\n",
                l->lc->name, l->lc->rate_limit, (unsigned long long)(l->lc->rate_window_ms / 1000),
                (unsigned long long)l->lc->daily_limit);
        return;
    }
    char at[96];
    char window[32];
    when(rt->at_ms, r->now_ms, at, sizeof(at));
    span(rt->window_ms, window, sizeof(window));
    fprintf(out, "  %s: %u requests in the last %s (limit %u), %llu in the last 24h (limit %llu)",
            l->lc->name, rt->in_window, window, rt->window_max,
            (unsigned long long)status_rate_day(rt, r->now_ms), (unsigned long long)rt->daily_max);
    if (rt->blocked_until_ms > r->now_ms) {
        char until[96];
        when(rt->blocked_until_ms, r->now_ms, until, sizeof(until));
        fprintf(out, "; blocked until %s", until);
    }
    if (rt->throttled_429 > 0) {
        fprintf(out, "; %llu answered 429", (unsigned long long)rt->throttled_429);
    }
    fprintf(out, "; as of %s\n", at);
}

static void print_store(const struct status_report *r, FILE *out)
{
    const struct status_outbox *o = &r->outbox;
    char next[96];
    when(o->next_attempt_ms, r->now_ms, next, sizeof(next));
    fprintf(out, "outbox: %llu pending, %llu retrying (next attempt %s), %llu in flight; %llu "
                 "dead letters\n",
            (unsigned long long)o->pending, (unsigned long long)o->retrying, next,
            (unsigned long long)o->in_flight, (unsigned long long)o->dead);
    char evbytes[32];
    bytes(r->db.pages[STORE_EVENTS] * r->db.page_size, evbytes, sizeof(evbytes));
    fprintf(out, "event log: %llu events (%s)", (unsigned long long)r->events, evbytes);
    if (r->newest_seq != 0) {
        fprintf(out, ", seq %llu to %llu", (unsigned long long)r->oldest_seq,
                (unsigned long long)r->newest_seq);
    }
    fputc('\n', out);
    char file[32];
    char used[32];
    char map[32];
    char cap[32];
    bytes(r->db.file_size, file, sizeof(file));
    bytes(r->db.pages_used * r->db.page_size, used, sizeof(used));
    bytes(r->db.map_size, map, sizeof(map));
    bytes(r->db.max_size, cap, sizeof(cap));
    fprintf(out, "database: data.mdb %s on disk, %s used (%llu pages of %llu bytes), map %s, "
                 "cap %s\n",
            file, used, (unsigned long long)r->db.pages_used,
            (unsigned long long)r->db.page_size, map, cap);
    fprintf(out, "readers: %zu read transaction(s) open", r->nreaders);
    for (size_t i = 0; i < r->nreaders && i < STATUS_MAX_READERS; i++) {
        const struct store_reader *rd = &r->readers[i];
        fprintf(out, "%s pid %ld (%llu commits behind)", i == 0 ? ":" : ",", rd->pid,
                (unsigned long long)(rd->newest_txnid - rd->txnid));
    }
    fputc('\n', out);
}

void status_print_text(const struct status_report *r, FILE *out)
{
    if (r->engine_running) {
        fprintf(out, "state %s: engine running (pid %ld, started %s)\n", r->state_dir,
                r->engine_pid, r->engine_started[0] ? r->engine_started : "?");
    } else {
        fprintf(out, "state %s: no engine running%s\n", r->state_dir,
                r->store_exists ? "" : "; nothing recorded yet");
    }
    fprintf(out, "triggers:\n");
    for (size_t i = 0; i < r->ntriggers; i++) {
        print_trigger(r, &r->triggers[i], out);
    }
    fprintf(out, "locations:\n");
    for (size_t i = 0; i < r->nlocations; i++) {
        print_location(r, &r->locations[i], out);
    }
    if (r->store_exists) {
        print_store(r, out);
    }
    fprintf(out, "%s\n", r->failing ? "FAILING: a trigger's last cycle failed" : "ok");
}

/* ---- JSON --------------------------------------------------------------- */

/* An ISO time, or null for 0. */
static void add_time(cJSON *o, const char *key, uint64_t ms)
{
    if (ms == 0) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    char t[32];
    util_iso8601(ms, t);
    cJSON_AddStringToObject(o, key, t);
}

static void add_num(cJSON *o, const char *key, uint64_t v)
{
    cJSON_AddNumberToObject(o, key, (double)v);
}

static cJSON *cycle_json(const struct status_cycle *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "outcome", c->outcome == STATUS_OUTCOME_OK     ? "ok"
                                          : c->outcome == STATUS_OUTCOME_AUTH ? "auth"
                                                                              : "failed");
    add_time(o, "started", c->started_ms);
    add_num(o, "duration_ms", c->duration_ms);
    add_num(o, "records", c->records);
    add_num(o, "events", c->events);
    add_num(o, "requests", c->requests);
    cJSON_AddBoolToObject(o, "baseline", c->baseline);
    cJSON_AddBoolToObject(o, "incremental", c->incremental);
    if (c->error[0] != '\0') {
        cJSON_AddStringToObject(o, "error", c->error);
    } else {
        cJSON_AddNullToObject(o, "error");
    }
    return o;
}

static cJSON *trigger_json(const struct status_trigger *t)
{
    const struct config_trigger *tc = t->tc;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", tc->name);
    cJSON_AddStringToObject(o, "use", tc->use ? tc->use : "");
    cJSON_AddStringToObject(o, "location", trigger_location(tc));
    if (tc->for_each != NULL) {
        cJSON_AddStringToObject(o, "for_each", tc->for_each);
    } else {
        cJSON_AddNullToObject(o, "for_each");
    }
    cJSON_AddStringToObject(o, "state", status_state_name(t->state));
    add_num(o, "every_ms", tc->every_ms);
    cJSON_AddBoolToObject(o, "seeded", t->seeded);
    add_num(o, "cycles", t->cycles);
    cJSON_AddBoolToObject(o, "failing", t->failing);
    cJSON_AddBoolToObject(o, "failing_long", t->failing_long);
    add_num(o, "consecutive_failures", t->has_cycle ? t->last.failures : 0);
    add_time(o, "failing_since", t->has_cycle ? t->last.failing_since : 0);
    add_time(o, "next_due", t->has_cycle ? t->last.next_due_ms : 0);
    add_time(o, "last_ok", t->has_cycle ? t->last.last_ok_ms : 0);
    cJSON_AddItemToObject(o, "last_cycle",
                          t->has_cycle ? cycle_json(&t->last) : cJSON_CreateNull());
    cJSON_AddBoolToObject(o, "incremental", t->incremental);
    add_time(o, "watermark", t->watermark_ms > 0 ? (uint64_t)t->watermark_ms : 0);
    add_time(o, "reconcile_due", t->reconcile_due_ms);
    return o;
}

static cJSON *location_json(const struct status_report *r, const struct status_location *l)
{
    const struct status_rate *rt = &l->rate;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", l->lc->name);
    add_time(o, "as_of", l->has_rate ? rt->at_ms : 0);
    add_num(o, "window_ms", l->has_rate ? rt->window_ms : l->lc->rate_window_ms);
    add_num(o, "requests_window", rt->in_window);
    add_num(o, "limit_window", l->has_rate ? rt->window_max : l->lc->rate_limit);
    add_num(o, "requests_24h", status_rate_day(rt, r->now_ms));
    add_num(o, "limit_24h", l->has_rate ? rt->daily_max : l->lc->daily_limit);
    add_time(o, "blocked_until", rt->blocked_until_ms);
    add_num(o, "throttled_429", rt->throttled_429);
    return o;
}

static cJSON *store_json(const struct status_report *r, cJSON *root)
{
    const struct status_outbox *ob = &r->outbox;
    cJSON *o = cJSON_AddObjectToObject(root, "outbox");
    add_num(o, "pending", ob->pending);
    add_num(o, "retrying", ob->retrying);
    add_time(o, "next_attempt", ob->next_attempt_ms);
    add_num(o, "in_flight", ob->in_flight);
    add_num(o, "dead_letters", ob->dead);
    o = cJSON_AddObjectToObject(root, "event_log");
    add_num(o, "events", r->events);
    add_num(o, "bytes", r->db.pages[STORE_EVENTS] * r->db.page_size);
    add_num(o, "oldest_seq", r->oldest_seq);
    add_num(o, "newest_seq", r->newest_seq);
    o = cJSON_AddObjectToObject(root, "database");
    add_num(o, "file_bytes", r->db.file_size);
    add_num(o, "used_bytes", r->db.pages_used * r->db.page_size);
    add_num(o, "pages_used", r->db.pages_used);
    add_num(o, "page_size", r->db.page_size);
    add_num(o, "map_bytes", r->db.map_size);
    add_num(o, "max_bytes", r->db.max_size);
    cJSON *rd = cJSON_AddArrayToObject(root, "readers");
    for (size_t i = 0; i < r->nreaders && i < STATUS_MAX_READERS; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "pid", (double)r->readers[i].pid);
        add_num(x, "txnid", r->readers[i].txnid);
        add_num(x, "behind", r->readers[i].newest_txnid - r->readers[i].txnid);
        cJSON_AddItemToArray(rd, x);
    }
    return root;
}

cJSON *status_to_json(const struct status_report *r)
{
    cJSON *root = cJSON_CreateObject();
    add_time(root, "now", r->now_ms);
    cJSON_AddStringToObject(root, "state_dir", r->state_dir);
    cJSON_AddStringToObject(root, "status", r->failing ? "failing" : "ok");
    cJSON *e = cJSON_AddObjectToObject(root, "engine");
    cJSON_AddBoolToObject(e, "running", r->engine_running);
    if (r->engine_running) {
        cJSON_AddNumberToObject(e, "pid", (double)r->engine_pid);
        cJSON_AddStringToObject(e, "started", r->engine_started);
    } else {
        cJSON_AddNullToObject(e, "pid");
        cJSON_AddNullToObject(e, "started");
    }
    cJSON *a = cJSON_AddArrayToObject(root, "triggers");
    for (size_t i = 0; i < r->ntriggers; i++) {
        cJSON_AddItemToArray(a, trigger_json(&r->triggers[i]));
    }
    a = cJSON_AddArrayToObject(root, "locations");
    for (size_t i = 0; i < r->nlocations; i++) {
        cJSON_AddItemToArray(a, location_json(r, &r->locations[i]));
    }
    return store_json(r, root);
}

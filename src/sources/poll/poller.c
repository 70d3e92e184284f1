/*
 * poller: see poller.h. The lifecycle of a trigger (create, start, its
 * timer, stop, close), its persisted state and the helpers its parts
 * share; the work itself is a strategy (struct poller__ops): a top-level
 * enumeration in cycle.c, or a for_each sweep in sweep.c. Requests are
 * built in request.c, pages walked by paging.c; all share poll_int.h.
 */
#include "poller.h"
#include "poll_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "api.h"
#include "config.h"
#include "diff.h"
#include "http.h"
#include "idset.h"
#include "json.h"
#include "location.h"
#include "log.h"
#include "paging.h"
#include "snapshot.h"
#include "store.h"
#include "util.h"

static void timer_cb(uv_timer_t *t);

/* ---- small helpers ---------------------------------------------------- */

void poller__strlist_add(struct strlist *l, const char *s)
{
    l->items = xrealloc(l->items, (l->len + 1) * sizeof(*l->items));
    l->items[l->len++] = xstrdup(s);
}

void poller__strlist_clear(struct strlist *l)
{
    for (size_t i = 0; i < l->len; i++) {
        free(l->items[i]);
    }
    free(l->items);
    l->items = NULL;
    l->len = 0;
}

void poller__stats_add(struct snapshot_stats *into, const struct snapshot_stats *st)
{
    into->created += st->created;
    into->updated += st->updated;
    into->deleted += st->deleted;
    into->unchanged += st->unchanged;
    into->invalid += st->invalid;
    into->events += st->events;
}

void poller__schedule(struct poller *p, uint64_t delay_ms)
{
    if (p->stopping || p->closing) {
        return;
    }
    uv_timer_start(&p->timer, timer_cb, delay_ms, 0);
}

static bool is_child(const struct poller *p)
{
    return p->parent != NULL;
}

/* Logs a failed request with trigger, method, path, status, traceId and message. */
void poller__log_failure(const struct poller *p, const char *what, const struct http_response *resp,
                         const cJSON *body)
{
    poller__log_failure_at(p, LOG_WARN, what, resp, body);
}

void poller__log_failure_at(const struct poller *p, enum log_level level, const char *what,
                            const struct http_response *resp, const cJSON *body)
{
    const char *trace = ghl_api_trace_id(body);
    if (resp->error == HTTP_E_REDIRECT) {
        log_at(level, p->tag, "%s: HTTP %ld redirect to '%s' refused", what, resp->status,
               resp->location);
    } else if (resp->error == HTTP_E_AUTH) {
        /* Not sent: the credential failed, which the engine has reported once. */
    } else if (resp->error != 0 && resp->status != 0) {
        /* The status line arrived (HTTP 200) before the body failed. */
        log_at(level, p->tag, "%s: %s (%s) after HTTP %ld", what, http_strerror(resp->error),
               resp->error_text, resp->status);
    } else if (resp->error != 0) {
        log_at(level, p->tag, "%s: %s (%s)", what, http_strerror(resp->error), resp->error_text);
    } else if (resp->status == 0) {
        log_at(level, p->tag, "%s: no response", what);
    } else {
        char message[400];
        ghl_api_message(body, message, sizeof(message));
        struct log_fields f = {.trace_id = trace};
        log_at_with(level, p->tag, &f, "%s: HTTP %ld%s%s%s%s", what, resp->status,
                    trace ? " traceId " : "", trace ? trace : "", body ? ": " : "", message);
    }
}

/* ---- persisted trigger state ----------------------------------------- */

static void load_state(struct poller *p)
{
    struct store_txn *txn = NULL;
    if (store_txn_begin(p->env.store, false, &txn) != 0) {
        return;
    }
    const void *val = NULL;
    size_t vlen = 0;
    if (store_get(txn, STORE_TRIG, p->state_key, strlen(p->state_key), &val, &vlen) == 0) {
        cJSON *st = NULL;
        if (json_parse(val, vlen, &st, NULL) == 0) {
            p->seeded = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "seeded"));
            p->round_active = p->seeded && p->parent != NULL;
            double d = 0;
            if (json_get_number(st, "cycle", &d)) {
                p->cycle = (uint64_t)d;
            }
            if (json_get_number(st, "round_started", &d)) {
                p->round_started = (uint64_t)d;
            }
            if (json_get_number(st, "round_ended", &d)) {
                p->round_ended = (uint64_t)d;
            }
            if (json_get_number(st, "wide_ended", &d)) {
                p->wide_ended = (uint64_t)d;
            }
            if (json_get_number(st, "started", &d) && d > 0) {
                p->started = (uint64_t)d;
            }
            /* M13; absent in state written before incremental polling. */
            if (json_get_number(st, "watermark", &d) && d >= 0) {
                p->watermark = (int64_t)d;
            }
            if (json_get_number(st, "reconciled", &d) && d > 0) {
                p->reconciled_at = (uint64_t)d;
            }
            if (json_get_number(st, "full_total", &d) && d > 0) {
                p->full_total = (uint64_t)d;
            }
            /* Absent (both false) in state written before they were kept. */
            if (json_get_number(st, "incr_retry", &d) && d > 0) {
                p->incr_degraded = true;
                p->incr_retry_at = (uint64_t)d;
            }
            p->reconcile_now = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "reconcile_now"));
            const char *cur = json_get_string(st, "sweep_cursor");
            free(p->sweep_cursor);
            p->sweep_cursor = cur ? xstrdup(cur) : NULL;
        }
        cJSON_Delete(st);
    }
    store_txn_abort(txn);
}

/* Writes the trigger state inside txn. */
int poller__save_state(struct store_txn *txn, const struct poller *p, bool seeded, uint64_t cycle,
                       const char *sweep_cursor, uint64_t round_started)
{
    char when[32];
    util_iso8601(util_wall_ms(), when);
    cJSON *st = cJSON_CreateObject();
    cJSON_AddBoolToObject(st, "seeded", seeded);
    cJSON_AddNumberToObject(st, "cycle", (double)cycle);
    cJSON_AddStringToObject(st, "updated", when);
    if (sweep_cursor != NULL) {
        cJSON_AddStringToObject(st, "sweep_cursor", sweep_cursor);
    }
    if (round_started != 0) {
        cJSON_AddNumberToObject(st, "round_started", (double)round_started);
    }
    if (p->round_ended != 0) {
        cJSON_AddNumberToObject(st, "round_ended", (double)p->round_ended);
    }
    if (p->wide_ended != 0) {
        cJSON_AddNumberToObject(st, "wide_ended", (double)p->wide_ended);
    }
    cJSON_AddNumberToObject(st, "started", (double)p->started);
    /* Incremental polling (M13): W, and when the last reconcile began. */
    if (p->watermark >= 0) {
        cJSON_AddNumberToObject(st, "watermark", (double)p->watermark);
    }
    if (p->reconciled_at != 0) {
        cJSON_AddNumberToObject(st, "reconciled", (double)p->reconciled_at);
    }
    if (p->full_total != 0) {
        cJSON_AddNumberToObject(st, "full_total", (double)p->full_total);
    }
    /* The 422-degraded mode (when the filter is tried again), and a reconcile
     * an incremental read asked for: a restart keeps both. */
    if (p->incr_degraded) {
        cJSON_AddNumberToObject(st, "incr_retry", (double)p->incr_retry_at);
    }
    if (p->reconcile_now) {
        cJSON_AddBoolToObject(st, "reconcile_now", true);
    }
    char *json = cJSON_PrintUnformatted(st);
    cJSON_Delete(st);
    int rc = store_put(txn, STORE_TRIG, p->state_key, strlen(p->state_key), json, strlen(json));
    free(json);
    return rc;
}

void poller__init_scope(const struct poller *p, struct snapshot_scope *sc, const char *prefix,
                        size_t prefix_len, bool silent)
{
    memset(sc, 0, sizeof(*sc));
    sc->trigger = p->tc->name;
    sc->location_id = p->loc != NULL ? location_id(p->loc) : NULL;
    sc->api = p->loc != NULL ? NULL : target_name(p->target);
    sc->prefix = prefix;
    sc->prefix_len = prefix_len;
    sc->id_field = p->def->id_field ? p->def->id_field : "id";
    sc->fields = p->tc->fields;
    sc->ignore = p->ignore;
    sc->emit = p->tc->emit;
    sc->touch_field = p->def->updated_field;
    sc->silent = silent;
    sc->new_flags = silent ? SNAP_BASELINE : 0;
    sc->on_event = p->env.on_event;
    sc->on_event_ud = p->env.on_event_ud;
}

void poller__events_committed(const struct poller *p, unsigned events)
{
    if (events > 0 && p->env.on_events != NULL) {
        p->env.on_events(p->env.on_event_ud);
    }
}

void poller__report_done(struct poller *p, bool ok)
{
    if (!p->env.once || p->done) {
        return;
    }
    p->done = true;
    p->failed = !ok;
    if (p->env.on_done != NULL) {
        p->env.on_done(p, p->env.ud);
    }
}


/* ---- public ------------------------------------------------------------ */

static void timer_cb(uv_timer_t *t)
{
    struct poller *p = t->data;
    if (p->stopping || p->closing) {
        return;
    }
    p->ops->tick(p);
}

static char **merge_ignore(const struct config_trigger *tc, const struct catalog_trigger *def)
{
    size_t n = strv_len(tc->ignore) + strv_len(def->volatile_fields);
    if (n == 0) {
        return NULL;
    }
    char **v = xcalloc(n + 1, sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; tc->ignore && tc->ignore[i]; i++) {
        v[k++] = xstrdup(tc->ignore[i]);
    }
    for (size_t i = 0; def->volatile_fields && def->volatile_fields[i]; i++) {
        v[k++] = xstrdup(def->volatile_fields[i]);
    }
    v[k] = NULL;
    return v;
}

const char *poller__scope_name(const struct poller *p)
{
    return p->loc != NULL ? location_name(p->loc) : target_name(p->target);
}

static struct poller *create(const struct poller_env *env, const struct config_trigger *tc,
                             struct location *loc, struct target *target)
{
    struct poller *p = xcalloc(1, sizeof(*p));
    p->env = *env;
    p->tc = tc;
    p->def = tc->def;
    p->ops = &poller__cycle_ops;
    p->loc = loc;
    p->target = target;
    p->tag = xasprintf("trigger:%s", tc->name);
    /* The state key's scope: the location's name, or the api's (trigger
     * names are unique, so the two never meet). */
    log_bind_location(p->tag, poller__scope_name(p)); /* JSON log lines name it */
    const char *parts[] = {tc->name, poller__scope_name(p)};
    p->prefix = snapshot_key_prefix(parts, 2, &p->prefix_len);
    p->state_key = xstrndup(p->prefix, p->prefix_len - 1);
    p->ignore = merge_ignore(tc, tc->def);
    paging_init(&p->paging, p->def, poller__page_size(p));
    idset_init(&p->seen);
    p->watermark = -1;
    p->cycle_max = -1;
    uv_timer_init(env->loop, &p->timer);
    p->timer.data = p;
    return p;
}

struct poller *poller_create(const struct poller_env *env, const struct config_trigger *tc,
                             struct location *loc)
{
    return create(env, tc, loc, loc != NULL ? location_target(loc) : NULL);
}

struct poller *poller_create_api(const struct poller_env *env, const struct config_trigger *tc,
                                 struct target *target)
{
    return create(env, tc, NULL, target);
}

void poller_add_child(struct poller *parent, struct poller *child)
{
    parent->children = xrealloc(parent->children, (parent->nchildren + 1) * sizeof(*parent->children));
    parent->children[parent->nchildren++] = child;
    child->parent = parent;
    child->ops = &poller__sweep_ops; /* a child sweeps its parent's records */
}

int poller_start(struct poller *p)
{
    load_state(p);
    poller__record_load(p);
    if (p->started == 0) {
        p->started = util_wall_ms();
    }
    poller__incr_init(p);
    uint64_t every = p->tc->every_ms;
    uint64_t first = util_rand_range(0, every < 3000 ? every / 4 : 750);
    if (p->env.once) {
        first = 0;
    } else {
        first = poller__incr_next_delay(p, first); /* degraded: its next reconcile */
    }
    /* A child's "seeded" is its round flag: it is new until its first round completes. */
    bool fresh = is_child(p) ? p->cycle == 0 : !p->seeded;
    log_info(p->tag, "%s on %s %s every %llus%s", p->def->name, p->loc != NULL ? "location" : "api",
             poller__scope_name(p),
             (unsigned long long)(every / 1000),
             !fresh ? "" : (p->tc->first_poll_emit ? " (first poll emits)" : " (first poll records a baseline)"));
    poller__schedule(p, first);
    return 0;
}

void poller_stop(struct poller *p)
{
    if (p->stopping) {
        return;
    }
    p->stopping = true;
    uv_timer_stop(&p->timer);
    if (p->pending != NULL) {
        target_cancel(p->pending);
    }
    /* --once: a stopped trigger (its credential failed, or shutdown) will not
     * complete its cycle; report it failed so the run can end. */
    poller__report_done(p, false);
}

static void poller_free(struct poller *p)
{
    p->ops->finish(p);
    idset_finish(&p->seen);
    poller__raw_free(p);
    log_unbind(p->tag);
    free(p->tag);
    free(p->state_key);
    free(p->prefix);
    strv_free(p->ignore);
    free(p->sweep_cursor);
    free(p->unit_id);
    free(p->children);
    free(p);
}

static void closed_cb(uv_handle_t *h)
{
    poller_free(h->data);
}

void poller_close(struct poller *p)
{
    if (p == NULL || p->closing) {
        return;
    }
    poller_stop(p);
    p->closing = true;
    uv_close((uv_handle_t *)&p->timer, closed_cb);
}

const char *poller_name(const struct poller *p)
{
    return p->tc->name;
}

uint64_t poller_every_ms(const struct poller *p)
{
    return p->tc->every_ms;
}

uint64_t poller_failing_since(const struct poller *p)
{
    return p->failing_since;
}

bool poller_done(const struct poller *p)
{
    return p->done;
}

bool poller_failed(const struct poller *p)
{
    return p->failed;
}

void poller_get_stats(const struct poller *p, struct poller_stats *out)
{
    *out = p->stats;
}


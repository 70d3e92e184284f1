/*
 * poller: see poller.h.
 *
 * Lifecycle of a top-level cycle:
 *   timer -> cycle_start -> fetch_page -> on_page -> apply_page (txn)
 *         -> fetch_page ... -> scan_missing (chunked, read txns)
 *         -> [confirm_deletes: GET by id] -> finish_cycle (txn) -> schedule
 * Fan-out children (for_each triggers) run in fanout.c: the timer calls
 * fanout_sweep_next; both files share src/poller_int.h.
 */
#include "poller.h"
#include "poller_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "catalog.h"
#include "config.h"
#include "diff.h"
#include "failpoint.h"
#include "fanout.h"
#include "http.h"
#include "idset.h"
#include "json.h"
#include "location.h"
#include "log.h"
#include "snapshot.h"
#include "store.h"
#include "url.h"
#include "util.h"

/* Attempts at one page before the cycle is abandoned and the trigger backs off. */
#define PAGE_MAX_ATTEMPTS 6
/* Snapshot entries examined per loop turn when looking for vanished records. */
#define SCAN_CHUNK 5000
/* Ids remembered per cycle as deletion candidates; more than this is a mass deletion. */
#define MISSING_CAP 20000
/* Deletions confirmed with a GET by id per cycle; the rest wait for the next cycle. */
#define CONFIRM_CAP 50
/* Mass-deletion guard (P5): more than this many and more than half of the records. */
#define MASS_DELETE_MIN 20
/* Pages in one enumeration before we assume the API is looping (see page_cap). */
#define MAX_PAGES POLLER_MAX_PAGES

static void timer_cb(uv_timer_t *t);
static void fetch_page(struct poller *p);

/* ---- small helpers ---------------------------------------------------- */

void poller_strlist_add(struct strlist *l, const char *s)
{
    l->items = xrealloc(l->items, (l->len + 1) * sizeof(*l->items));
    l->items[l->len++] = xstrdup(s);
}

void poller_strlist_clear(struct strlist *l)
{
    for (size_t i = 0; i < l->len; i++) {
        free(l->items[i]);
    }
    free(l->items);
    l->items = NULL;
    l->len = 0;
}

void poller_schedule(struct poller *p, uint64_t delay_ms)
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

static const char *param_value(const struct poller *p, const char *name)
{
    for (size_t i = 0; i < p->tc->nparams; i++) {
        if (strcmp(p->tc->params[i].name, name) == 0) {
            return p->tc->params[i].value;
        }
    }
    return NULL;
}

/* Logs a failed request with trigger, method, path, status, traceId and message. */
void poller_log_failure(const struct poller *p, const char *what, const struct http_response *resp,
                        const cJSON *body)
{
    poller_log_failure_at(p, LOG_WARN, what, resp, body);
}

void poller_log_failure_at(const struct poller *p, enum log_level level, const char *what,
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
        log_at(level, p->tag, "%s: HTTP %ld%s%s%s%s", what, resp->status,
               trace ? " traceId " : "", trace ? trace : "", body ? ": " : "", message);
    }
}

/* ---- request building ------------------------------------------------- */

void poller_parts_finish(struct request_parts *r)
{
    free(r->path);
    for (size_t i = 0; i < r->nowned; i++) {
        free(r->owned[i]);
    }
    cJSON_Delete(r->body);
    memset(r, 0, sizeof(*r));
}

static void add_query(struct request_parts *r, const char *name, const char *value, bool owned)
{
    if (r->nquery >= ARRAY_SIZE(r->query)) {
        if (owned) {
            free((char *)value);
        }
        return;
    }
    r->query[r->nquery].name = name;
    r->query[r->nquery].value = value;
    r->nquery++;
    if (owned) {
        r->owned[r->nowned++] = (char *)value;
    }
}

/* Expands {name} placeholders; each value is percent-encoded as one segment. */
static char *expand_path(const struct poller *p, const char *tmpl, const char *fan_value,
                         const char *id_value)
{
    struct buf b;
    buf_init(&b, 8192);
    for (const char *s = tmpl; *s != '\0';) {
        if (*s != '{') {
            buf_append(&b, s, 1);
            s++;
            continue;
        }
        const char *end = strchr(s, '}');
        if (end == NULL) {
            break;
        }
        char name[128];
        size_t n = (size_t)(end - s - 1);
        if (n >= sizeof(name)) {
            n = sizeof(name) - 1;
        }
        memcpy(name, s + 1, n);
        name[n] = '\0';
        const char *value = NULL;
        if (id_value != NULL && strcmp(name, "id") == 0) {
            value = id_value;
        } else if (fan_value != NULL && p->def->fan_out != NULL &&
                   strcmp(name, p->def->fan_out) == 0) {
            value = fan_value;
        } else {
            value = param_value(p, name);
        }
        char *esc = url_escape(value ? value : "");
        buf_append_str(&b, esc);
        free(esc);
        s = end + 1;
    }
    if (b.too_big) {
        buf_finish(&b);
        return NULL;
    }
    return buf_steal(&b, NULL);
}

static cJSON *typed_value(enum catalog_type type, const char *value)
{
    switch (type) {
    case CATALOG_INTEGER:
    case CATALOG_NUMBER:
        return cJSON_CreateNumber(strtod(value, NULL));
    case CATALOG_BOOLEAN: {
        bool b = false;
        util_parse_bool(value, &b);
        return cJSON_CreateBool(b);
    }
    case CATALOG_JSON: {
        cJSON *v = NULL;
        if (json_parse(value, strlen(value), &v, NULL) == 0) {
            return v;
        }
        return cJSON_CreateNull();
    }
    case CATALOG_STRING_LIST: {
        char **words = strv_split(value, NULL);
        cJSON *arr = cJSON_CreateStringArray((const char *const *)words, (int)strv_len(words));
        strv_free(words);
        return arr;
    }
    case CATALOG_STRING:
        break;
    }
    return cJSON_CreateString(value);
}

static cJSON *binding_value(const struct poller *p, const struct catalog_binding *b)
{
    if (b->is_location) {
        return cJSON_CreateString(location_id(p->loc));
    }
    if (b->is_json) {
        cJSON *v = NULL;
        if (json_parse(b->value, strlen(b->value), &v, NULL) == 0) {
            return v;
        }
        return cJSON_CreateNull();
    }
    return cJSON_CreateString(b->value);
}

/* Builds path, fixed bindings and user parameters (not pagination). */
int poller_build_base(const struct poller *p, const char *fan_value, struct request_parts *r)
{
    const struct catalog_trigger *d = p->def;
    memset(r, 0, sizeof(*r));
    r->path = expand_path(p, d->path, fan_value, NULL);
    if (r->path == NULL) {
        return -EINVAL;
    }
    for (size_t i = 0; i < d->nquery; i++) {
        const struct catalog_binding *b = &d->query[i];
        add_query(r, b->name, b->is_location ? location_id(p->loc) : b->value, false);
    }
    bool wants_body = d->nbody > 0 || strcmp(d->method, "POST") == 0;
    if (wants_body) {
        r->body = cJSON_CreateObject();
        for (size_t i = 0; i < d->nbody; i++) {
            cJSON_AddItemToObject(r->body, d->body[i].name, binding_value(p, &d->body[i]));
        }
    }
    for (size_t i = 0; i < d->nparams; i++) {
        const struct catalog_param *cp = &d->params[i];
        const char *v = param_value(p, cp->name);
        if (v == NULL) {
            continue;
        }
        if (cp->where == CATALOG_QUERY) {
            add_query(r, cp->name, v, false);
        } else if (cp->where == CATALOG_BODY && r->body != NULL) {
            cJSON_AddItemToObject(r->body, cp->name, typed_value(cp->type, v));
        }
    }
    return 0;
}

static unsigned page_size(const struct poller *p)
{
    if (p->tc->page_size > 0) {
        return p->tc->page_size;
    }
    return p->def->page_size > 0 ? p->def->page_size : 100;
}

static void add_pagination(struct poller *p, struct request_parts *r)
{
    unsigned size = page_size(p);
    switch (p->def->pagination) {
    case CATALOG_PAGE_START_AFTER:
        add_query(r, "limit", xasprintf("%u", size), true);
        if (p->page > 0 && p->cursor_after_id != NULL) {
            if (p->cursor_after != NULL) {
                add_query(r, "startAfter", xstrdup(p->cursor_after), true);
            }
            add_query(r, "startAfterId", xstrdup(p->cursor_after_id), true);
        }
        break;
    case CATALOG_PAGE_SKIP_LIMIT:
        add_query(r, "skip", xasprintf("%llu", (unsigned long long)p->page * size), true);
        add_query(r, "limit", xasprintf("%u", size), true);
        break;
    case CATALOG_PAGE_SEARCH_AFTER:
        if (r->body != NULL) {
            cJSON_AddNumberToObject(r->body, "pageLimit", size);
            if (p->page == 0 || p->search_after == NULL) {
                cJSON_AddNumberToObject(r->body, "page", 1);
            } else {
                cJSON_AddItemToObject(r->body, "searchAfter", cJSON_Duplicate(p->search_after, 1));
            }
        }
        break;
    case CATALOG_PAGE_NONE:
        break;
    }
}

int poller_submit(struct poller *p, enum location_class cls, struct request_parts *r,
                  const char *method, http_done_cb cb, void *ud)
{
    char *body = r->body ? cJSON_PrintUnformatted(r->body) : NULL;
    struct location_request req = {
        .method = method,
        .path = r->path,
        .query = r->query,
        .nquery = r->nquery,
        .version = p->def->version,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .log_tag = p->tag,
    };
    int rc = location_submit(p->loc, cls, &req, cb, ud, &p->pending);
    free(body);
    if (rc == 0) {
        p->stats.requests++;
    }
    return rc;
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
            const char *cur = json_get_string(st, "sweep_cursor");
            free(p->sweep_cursor);
            p->sweep_cursor = cur ? xstrdup(cur) : NULL;
        }
        cJSON_Delete(st);
    }
    store_txn_abort(txn);
}

/* Writes the trigger state inside txn. */
int poller_save_state(struct store_txn *txn, const struct poller *p, bool seeded, uint64_t cycle,
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
    char *json = cJSON_PrintUnformatted(st);
    cJSON_Delete(st);
    int rc = store_put(txn, STORE_TRIG, p->state_key, strlen(p->state_key), json, strlen(json));
    free(json);
    return rc;
}

void poller_init_scope(const struct poller *p, struct snapshot_scope *sc, const char *prefix,
                       size_t prefix_len, bool silent)
{
    memset(sc, 0, sizeof(*sc));
    sc->trigger = p->tc->name;
    sc->location_id = location_id(p->loc);
    sc->prefix = prefix;
    sc->prefix_len = prefix_len;
    sc->id_field = p->def->id_field ? p->def->id_field : "id";
    sc->fields = p->tc->fields;
    sc->ignore = p->ignore;
    sc->emit = p->tc->emit;
    sc->silent = silent;
    sc->new_flags = silent ? SNAP_BASELINE : 0;
    sc->on_event = p->env.on_event;
    sc->on_event_ud = p->env.on_event_ud;
}

void poller_events_committed(const struct poller *p, unsigned events)
{
    if (events > 0 && p->env.on_events != NULL) {
        p->env.on_events(p->env.on_event_ud);
    }
}

/* ---- top-level cycle -------------------------------------------------- */

static void cycle_reset(struct poller *p)
{
    p->page = 0;
    p->attempt = 0;
    p->records_seen = 0;
    free(p->cursor_after);
    free(p->cursor_after_id);
    p->cursor_after = NULL;
    p->cursor_after_id = NULL;
    cJSON_Delete(p->search_after);
    p->search_after = NULL;
    idset_clear(&p->seen);
    memset(&p->cstats, 0, sizeof(p->cstats));
    free(p->scan_key);
    p->scan_key = NULL;
    p->scan_key_len = 0;
    p->scan_total = 0;
    p->missing_new_total = 0;
    p->incomplete = false;
    p->listed_total = 0;
    p->max_total = -1;
    poller_strlist_clear(&p->missing_new);
    poller_strlist_clear(&p->missing_old);
    poller_strlist_clear(&p->gone);
    poller_strlist_clear(&p->hold);
    poller_strlist_clear(&p->remove);
    p->confirms_outstanding = 0;
}

static uint64_t jitter(uint64_t every)
{
    return util_rand_range(0, every / 20);
}

void poller_report_done(struct poller *p, bool ok)
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

static void cycle_end(struct poller *p, bool ok)
{
    p->busy = false;
    p->pending = NULL;
    uint64_t every = p->tc->every_ms;
    if (ok) {
        p->failures = 0;
        p->stats.cycles++;
    } else {
        p->failures++;
        p->stats.failed_cycles++;
    }
    if (p->env.once) {
        poller_report_done(p, ok);
        fanout_kick_children(p); /* they finish their round, or give up, once we are done */
        return;
    }
    if (p->stopping) {
        return; /* shutdown: the cycle was cut short on purpose */
    }
    uint64_t delay;
    if (ok) {
        uint64_t elapsed = uv_now(p->env.loop) - p->cycle_started;
        delay = (elapsed >= every ? 0 : every - elapsed) + jitter(every);
    } else {
        uint64_t cap = every * 8 < 15 * 60000 ? every * 8 : 15 * 60000;
        delay = util_backoff_ms(every, cap > every ? cap : every, p->failures);
        log_warn(p->tag, "cycle failed (%u in a row); next attempt in %llu ms", p->failures,
                 (unsigned long long)delay);
    }
    poller_schedule(p, delay);
}

static void page_retry(struct poller *p, const char *why)
{
    p->attempt++;
    if (p->attempt >= PAGE_MAX_ATTEMPTS) {
        log_error(p->tag, "giving up on this cycle after %u attempts at page %u (%s)", p->attempt,
                  p->page + 1, why);
        cycle_end(p, false);
        return;
    }
    uint64_t delay = util_backoff_ms(500, 10000, p->attempt);
    log_info(p->tag, "retrying page %u in %llu ms (%s)", p->page + 1, (unsigned long long)delay,
             why);
    uv_timer_start(&p->timer, timer_cb, delay, 0);
}


enum outcome poller_classify(const struct http_response *resp)
{
    if (resp->error == HTTP_E_REDIRECT || resp->error == HTTP_E_AUTH) {
        return OUTCOME_PERMANENT;
    }
    if (resp->error != 0 || resp->status == 0) {
        return OUTCOME_RETRY;
    }
    switch (ghl_api_status_class(resp->status)) {
    case GHL_STATUS_OK:
        return OUTCOME_OK;
    case GHL_STATUS_RETRY:
        return OUTCOME_RETRY;
    case GHL_STATUS_GONE:
        return OUTCOME_GONE; /* "Gone" says exactly that, whoever answered */
    case GHL_STATUS_MISSING:
        /* Only the API itself saying so: an HTML 404 from a gateway, a
         * proxy's 400, is an error to retry, never a confirmed deletion. */
        return ghl_api_error_body(resp) ? OUTCOME_GONE : OUTCOME_RETRY;
    default:
        return OUTCOME_PERMANENT;
    }
}

struct page_apply {
    struct poller *p;
    const cJSON *records;
    struct snapshot_stats st;
};

static int apply_page_txn(struct store_txn *txn, void *ud)
{
    struct page_apply *a = ud;
    struct poller *p = a->p;
    struct snapshot_scope sc;
    bool silent = !p->seeded && !p->tc->first_poll_emit;
    poller_init_scope(p, &sc, p->prefix, p->prefix_len, silent);
    memset(&a->st, 0, sizeof(a->st));
    /* Children learn about created/updated parents; a baseline needs no
     * queue: their first sweep reads every parent anyway. */
    snapshot_change_cb cb = (p->nchildren > 0 && p->seeded) ? fanout_notify_children : NULL;
    int rc = snapshot_apply_records(txn, &sc, a->records, &p->seen, &a->st, cb, p);
    if (rc == 0) {
        FAILPOINT("poll.before_commit");
    }
    return rc;
}

static void add_stats(struct snapshot_stats *into, const struct snapshot_stats *st)
{
    into->created += st->created;
    into->updated += st->updated;
    into->deleted += st->deleted;
    into->unchanged += st->unchanged;
    into->invalid += st->invalid;
    into->events += st->events;
}

/* Reads the cursor for the next page; returns true if there is one. */
static bool advance_cursor(struct poller *p, const cJSON *body, const cJSON *records, bool *bad)
{
    int count = cJSON_GetArraySize(records);
    unsigned size = page_size(p);
    *bad = false;
    switch (p->def->pagination) {
    case CATALOG_PAGE_NONE:
        return false;
    case CATALOG_PAGE_SKIP_LIMIT:
        return count >= (int)size;
    case CATALOG_PAGE_START_AFTER: {
        if (count < (int)size) {
            return false;
        }
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(body, "meta");
        const char *id = json_get_string(meta, "startAfterId");
        double after = 0;
        bool has_after = json_get_number(meta, "startAfter", &after);
        const cJSON *next = cJSON_GetObjectItemCaseSensitive(meta, "nextPage");
        if (meta != NULL && cJSON_IsNull(next) && cJSON_GetObjectItemCaseSensitive(meta, "nextPageUrl") != NULL &&
            cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(meta, "nextPageUrl"))) {
            return false;
        }
        if (id == NULL || (p->cursor_after_id != NULL && strcmp(id, p->cursor_after_id) == 0)) {
            *bad = true; /* a full page without a moving cursor: never call it complete */
            return false;
        }
        free(p->cursor_after_id);
        free(p->cursor_after);
        p->cursor_after_id = xstrdup(id);
        p->cursor_after = has_after ? xasprintf("%.0f", after) : NULL;
        return true;
    }
    case CATALOG_PAGE_SEARCH_AFTER: {
        if (count < (int)size) {
            return false;
        }
        const cJSON *last = cJSON_GetArrayItem(records, count - 1);
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(last, "searchAfter");
        if (!cJSON_IsArray(sa) || (p->search_after != NULL && json_equal(sa, p->search_after))) {
            *bad = true;
            return false;
        }
        cJSON_Delete(p->search_after);
        p->search_after = cJSON_Duplicate(sa, 1);
        return true;
    }
    }
    return false;
}

static void scan_missing(struct poller *p);

/* The API's own count of the listing (total, count or meta.total), or -1. */
static double listed_total(const cJSON *body)
{
    double v = -1;
    if (json_get_number(body, "total", &v) || json_get_number(body, "count", &v)) {
        return v;
    }
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(body, "meta");
    if (json_get_number(meta, "total", &v)) {
        return v;
    }
    return -1;
}

static void check_listed_total(struct poller *p, double total)
{
    if (p->def->single || total < 0) {
        return;
    }
    p->listed_total = (uint64_t)total;
    p->incomplete = p->records_seen < p->listed_total;
}

static const char *id_field(const struct poller *p)
{
    return p->def->id_field ? p->def->id_field : "id";
}

/* Names the page being read in log lines: its number and cursor. */
static void describe_page(const struct poller *p, char *out, size_t len)
{
    switch (p->def->pagination) {
    case CATALOG_PAGE_SKIP_LIMIT:
        snprintf(out, len, "page %u, skip=%llu", p->page + 1,
                 (unsigned long long)p->page * page_size(p));
        break;
    case CATALOG_PAGE_START_AFTER:
        snprintf(out, len, "page %u, startAfterId=%s", p->page + 1,
                 p->page > 0 && p->cursor_after_id ? p->cursor_after_id : "none");
        break;
    default:
        snprintf(out, len, "page %u", p->page + 1);
        break;
    }
}

/*
 * A later page whose records were all listed already in this enumeration:
 * the API repeats itself (ignores skip, or its cursor cycles A -> B -> A).
 * Believing it would burn the budget forever and end in phantom deletes.
 */
static bool page_repeats(const struct poller *p, const cJSON *records)
{
    if (p->page == 0) {
        return false;
    }
    unsigned valid = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, records)
    {
        const char *id = json_get_string(rec, id_field(p));
        if (id == NULL || !diff_valid_record_id(id)) {
            continue;
        }
        if (!idset_contains(&p->seen, id, strlen(id))) {
            return false;
        }
        valid++;
    }
    return valid > 0;
}

unsigned poller_page_cap(double total, size_t listed, unsigned page_size)
{
    if (total < 0 || total < (double)listed || page_size == 0) {
        return MAX_PAGES;
    }
    double cap = 2 * ceil(total / page_size) + 10;
    return cap < MAX_PAGES ? (unsigned)cap : MAX_PAGES;
}

/* Reaching the cap means a loop, and the cycle is abandoned (never called
 * complete). */
static unsigned page_cap(const struct poller *p)
{
    return poller_page_cap(p->max_total, p->seen.count, page_size(p));
}

static void on_page(struct http_response *resp, void *ud)
{
    struct poller *p = ud;
    p->pending = NULL;
    if (p->stopping) {
        cycle_end(p, false);
        return;
    }
    cJSON *body = NULL;
    if (resp->body.len > 0) {
        json_parse_arena(resp->body.data, resp->body.len, &body, NULL);
    }
    enum outcome oc = poller_classify(resp);
    if (oc == OUTCOME_GONE && p->def->single) {
        /* The one record does not exist: a complete, empty enumeration. */
        json_arena_free(body);
        scan_missing(p);
        return;
    }
    if (oc != OUTCOME_OK) {
        poller_log_failure(p, p->def->path, resp, body);
        json_arena_free(body);
        if (oc == OUTCOME_RETRY) {
            page_retry(p, resp->error != 0 ? http_strerror(resp->error)
                          : resp->status == 429 ? "rate limited (HTTP 429)" : "server error");
        } else {
            if (resp->error == HTTP_E_REDIRECT) {
                /* The API never redirects: something else answered. */
                log_error(p->tag, "redirects are never followed; check [api] base_url (a proxy "
                                  "or captive portal may be answering)");
            } else if (resp->error != HTTP_E_AUTH) {
                log_error(p->tag, "the API refused the request; check the trigger's parameters "
                                  "and the token's scopes");
            }
            cycle_end(p, false);
        }
        return;
    }
    if (body == NULL) {
        log_warn(p->tag, "%s: invalid JSON in a %zu-byte response (HTTP %ld)", p->def->path,
                 resp->body.len, resp->status);
        page_retry(p, "invalid JSON");
        return;
    }
    const cJSON *found = json_get_path(body, p->def->records);
    cJSON *wrapped = NULL;
    const cJSON *records = found;
    if (p->def->single && cJSON_IsObject(found)) {
        wrapped = cJSON_CreateArray();
        cJSON_AddItemReferenceToArray(wrapped, (cJSON *)found);
        records = wrapped;
    } else if (p->def->single && (found == NULL || cJSON_IsNull(found))) {
        wrapped = cJSON_CreateArray();
        records = wrapped;
    }
    if (!cJSON_IsArray(records)) {
        const char *trace = ghl_api_trace_id(body);
        log_warn(p->tag, "%s: response has no '%s' array (traceId %s)", p->def->path,
                 p->def->records, trace ? trace : "none");
        cJSON_Delete(wrapped);
        json_arena_free(body);
        page_retry(p, "unexpected response shape");
        return;
    }
    if (page_repeats(p, records)) {
        char where[160];
        describe_page(p, where, sizeof(where));
        log_error(p->tag, "%s %s (%s): every record was already listed earlier in this "
                          "enumeration; the API is not paging (skip ignored or a cursor going in "
                          "circles): cycle abandoned, no deletions decided",
                  p->def->method, p->def->path, where);
        cJSON_Delete(wrapped);
        json_arena_free(body);
        cycle_end(p, false);
        return;
    }
    struct page_apply a = {.p = p, .records = records};
    int rc = store_write(p->env.store, apply_page_txn, &a);
    if (rc != 0) {
        log_error(p->tag, "cannot record page %u: %s", p->page + 1, store_strerror(rc));
        cJSON_Delete(wrapped);
        json_arena_free(body);
        cycle_end(p, false);
        return;
    }
    FAILPOINT("poll.after_commit");
    store_release_pages(p->env.store);
    add_stats(&p->cstats, &a.st);
    p->stats.events += a.st.events;
    poller_events_committed(p, a.st.events);
    unsigned count = (unsigned)cJSON_GetArraySize(records);
    p->records_seen += count;
    p->stats.records += count;
    if (a.st.invalid > 0) {
        const char *trace = ghl_api_trace_id(body);
        char where[160];
        describe_page(p, where, sizeof(where));
        log_warn(p->tag, "%s %s (%s): skipped %u records without a valid '%s' (traceId %s)",
                 p->def->method, p->def->path, where, a.st.invalid, id_field(p),
                 trace ? trace : "none");
    }
    if (a.st.created + a.st.updated > 0) {
        fanout_kick_children(p);
    }
    double total = listed_total(body);
    if (total > p->max_total) {
        p->max_total = total; /* the largest count any page claimed */
    }
    bool bad = false;
    bool more = advance_cursor(p, body, records, &bad);
    cJSON_Delete(wrapped);
    json_arena_free(body);
    if (bad) {
        page_retry(p, "pagination cursor missing or not advancing");
        return;
    }
    if (more && p->page + 1 >= page_cap(p)) {
        log_error(p->tag, "%s %s: still more pages after %u (the API counted %.0f records, %u "
                          "per page); the API is looping: cycle abandoned, no deletions decided",
                  p->def->method, p->def->path, p->page + 1, p->max_total, page_size(p));
        cycle_end(p, false);
        return;
    }
    if (more) {
        p->page++;
        p->attempt = 0;
        fetch_page(p);
        return;
    }
    check_listed_total(p, p->max_total);
    scan_missing(p);
}

static void fetch_page(struct poller *p)
{
    struct request_parts r;
    if (poller_build_base(p, NULL, &r) != 0) {
        log_error(p->tag, "cannot build the request path");
        cycle_end(p, false);
        return;
    }
    add_pagination(p, &r);
    int rc = poller_submit(p, LOCATION_POLL, &r, p->def->method, on_page, p);
    poller_parts_finish(&r);
    if (rc != 0) {
        log_error(p->tag, "cannot queue the request: %s", strerror(-rc));
        cycle_end(p, false);
    }
}

static void cycle_start(struct poller *p)
{
    if (p->busy) {
        return; /* an overrunning cycle is never started twice */
    }
    p->busy = true;
    p->cycle_started = uv_now(p->env.loop);
    cycle_reset(p);
    log_debug(p->tag, "cycle %llu starts", (unsigned long long)p->cycle + 1);
    fetch_page(p);
}

/* ---- deletions --------------------------------------------------------- */

static int finish_txn(struct store_txn *txn, void *ud)
{
    struct page_apply *a = ud;
    struct poller *p = a->p;
    struct snapshot_scope sc;
    poller_init_scope(p, &sc, p->prefix, p->prefix_len, !p->seeded);
    memset(&a->st, 0, sizeof(a->st));
    snapshot_change_cb cb = (p->nchildren > 0) ? fanout_notify_children : NULL;
    for (size_t i = 0; i < p->remove.len; i++) {
        int rc = snapshot_delete(txn, &sc, p->remove.items[i], &a->st, cb, p);
        if (rc != 0 && rc != -ENOENT) {
            return rc;
        }
    }
    for (size_t i = 0; i < p->hold.len; i++) {
        int rc = snapshot_mark_missing(txn, &sc, p->hold.items[i], p->cycle + 1);
        if (rc != 0 && rc != -ENOENT) {
            return rc;
        }
    }
    int rc = poller_save_state(txn, p, true, p->cycle + 1, NULL, 0);
    if (rc == 0) {
        FAILPOINT("poll.before_commit");
    }
    return rc;
}

static void finish_cycle(struct poller *p)
{
    struct page_apply a = {.p = p};
    int rc = store_write(p->env.store, finish_txn, &a);
    if (rc != 0) {
        log_error(p->tag, "cannot record the end of the cycle: %s", store_strerror(rc));
        cycle_end(p, false);
        return;
    }
    FAILPOINT("poll.after_commit");
    add_stats(&p->cstats, &a.st);
    p->stats.events += a.st.events;
    poller_events_committed(p, a.st.events);
    bool was_seeded = p->seeded;
    p->seeded = true;
    p->cycle++;
    const struct snapshot_stats *s = &p->cstats;
    if (!was_seeded && !p->tc->first_poll_emit && p->env.dry_run) {
        log_info(p->tag, "first poll: %llu records would be a silent baseline (no events, so no "
                         "actions); set first_poll = emit on the trigger to see the actions its "
                         "rules would send for them",
                 (unsigned long long)p->records_seen);
    } else if (!was_seeded && !p->tc->first_poll_emit) {
        log_info(p->tag, "baseline recorded: %llu records (no events for existing records)",
                 (unsigned long long)p->records_seen);
    } else {
        log_info(p->tag,
                 "cycle %llu: %llu records, %u created, %u updated, %u deleted, %zu held, "
                 "%u events",
                 (unsigned long long)p->cycle, (unsigned long long)p->records_seen, s->created,
                 s->updated, s->deleted, p->hold.len, s->events);
    }
    if (s->deleted > 0) {
        fanout_kick_children(p);
    }
    cycle_end(p, true);
}

static void on_confirm(struct http_response *resp, void *ud);

struct confirm_ctx {
    struct poller *p;
    char *id;
};

static void confirm_deletes(struct poller *p, struct strlist *candidates)
{
    size_t n = 0;
    for (size_t i = 0; i < candidates->len; i++) {
        if (n >= CONFIRM_CAP) {
            /* Too many to check now: hold them; two complete enumerations will decide. */
            poller_strlist_add(&p->hold, candidates->items[i]);
            continue;
        }
        struct request_parts r;
        memset(&r, 0, sizeof(r));
        r.path = expand_path(p, p->def->confirm_delete, NULL, candidates->items[i]);
        struct confirm_ctx *c = xcalloc(1, sizeof(*c));
        c->p = p;
        c->id = xstrdup(candidates->items[i]);
        p->confirms_outstanding++;
        if (poller_submit(p, LOCATION_POLL, &r, "GET", on_confirm, c) != 0) {
            p->confirms_outstanding--;
            poller_strlist_add(&p->hold, c->id);
            free(c->id);
            free(c);
        } else {
            n++;
        }
        poller_parts_finish(&r);
    }
    p->pending = NULL; /* several may be in flight; stop() cancels none, they are short */
    if (p->confirms_outstanding == 0) {
        finish_cycle(p);
    }
}

static void on_confirm(struct http_response *resp, void *ud)
{
    struct confirm_ctx *c = ud;
    struct poller *p = c->p;
    enum outcome oc = poller_classify(resp);
    if (oc == OUTCOME_GONE) {
        poller_strlist_add(&p->remove, c->id);
    } else if (oc == OUTCOME_OK) {
        log_debug(p->tag, "record %s missing from the listing but still exists", c->id);
    } else {
        /* Unknown: do not delete on an error; the next cycle looks again. */
        log_debug(p->tag, "could not confirm deletion of %s", c->id);
    }
    free(c->id);
    free(c);
    if (--p->confirms_outstanding == 0) {
        if (p->stopping) {
            cycle_end(p, false);
        } else {
            finish_cycle(p);
        }
    }
}

static void decide_deletions(struct poller *p)
{
    if (p->records_seen == 0) {
        p->empty_streak++;
    } else {
        p->empty_streak = 0;
    }
    uint64_t n = p->missing_new_total;
    if (p->incomplete) {
        /* The API counted more records than it listed: decide nothing now. */
        log_warn(p->tag, "the listing returned %llu of %llu records the API counted: "
                         "deletions wait for a complete listing",
                 (unsigned long long)p->records_seen, (unsigned long long)p->listed_total);
        finish_cycle(p);
        return;
    }
    if (p->cstats.invalid > 0) {
        /* A record without a usable id may be any of the missing ones. */
        log_warn(p->tag, "%u listed records had no valid '%s': deletions wait for a listing "
                         "where every record has one",
                 p->cstats.invalid, p->def->id_field ? p->def->id_field : "id");
        finish_cycle(p);
        return;
    }
    /*
     * Records held by an earlier cycle and still absent. With a GET by id we
     * ask; otherwise a second complete, NON-EMPTY listing agrees. An empty
     * listing proves nothing by itself (an API glitch looks exactly like
     * it): only EMPTY_CONFIRMATIONS in a row are believed.
     */
    struct strlist confirm = {0};
    for (size_t i = 0; i < p->missing_old.len; i++) {
        if (p->def->confirm_delete != NULL) {
            poller_strlist_add(&confirm, p->missing_old.items[i]);
        } else if (p->records_seen > 0 || p->empty_streak >= EMPTY_CONFIRMATIONS) {
            poller_strlist_add(&p->remove, p->missing_old.items[i]);
        }
    }
    if (n == 0) {
        if (confirm.len > 0) {
            confirm_deletes(p, &confirm);
            poller_strlist_clear(&confirm);
            return;
        }
        finish_cycle(p);
        return;
    }
    bool mass = n * 2 > p->scan_total && n > MASS_DELETE_MIN;
    if (!p->seeded) {
        /* Records that vanished while a baseline was interrupted: drop silently. */
        for (size_t i = 0; i < p->missing_new.len; i++) {
            poller_strlist_add(&p->remove, p->missing_new.items[i]);
        }
    } else if (mass || n > p->missing_new.len) {
        log_warn(p->tag,
                 "%llu of %llu records vanished at once: holding the deletions until the next "
                 "complete poll confirms them",
                 (unsigned long long)n, (unsigned long long)p->scan_total);
        for (size_t i = 0; i < p->missing_new.len; i++) {
            poller_strlist_add(&p->hold, p->missing_new.items[i]);
        }
    } else if (p->def->confirm_delete != NULL) {
        for (size_t i = 0; i < p->missing_new.len; i++) {
            poller_strlist_add(&confirm, p->missing_new.items[i]);
        }
        confirm_deletes(p, &confirm);
        poller_strlist_clear(&confirm);
        return;
    } else {
        /*
         * No GET by id: hold them; the next complete listing that still
         * lacks them deletes them (above). One listing is not enough: a
         * skip/limit page boundary shifts when a record leaves and another
         * joins during the enumeration, and an empty listing may be a glitch.
         */
        for (size_t i = 0; i < p->missing_new.len; i++) {
            poller_strlist_add(&p->hold, p->missing_new.items[i]);
        }
    }
    if (confirm.len > 0) {
        confirm_deletes(p, &confirm);
        poller_strlist_clear(&confirm);
        return;
    }
    finish_cycle(p);
}

/*
 * Examines up to SCAN_CHUNK snapshot entries after scan_key, looking for
 * records this enumeration did not see. Returns 1 when the prefix is done.
 */
static int scan_chunk(struct poller *p)
{
    struct store_txn *txn = NULL;
    int rc = store_txn_begin(p->env.store, false, &txn);
    if (rc != 0) {
        return rc;
    }
    struct store_cursor *cur = NULL;
    rc = store_cursor_open(txn, STORE_SNAP, &cur);
    const void *key = NULL;
    const void *val = NULL;
    size_t klen = 0;
    size_t vlen = 0;
    if (rc == 0) {
        if (p->scan_key == NULL) {
            rc = store_cursor_seek(cur, p->prefix, p->prefix_len, &key, &klen, &val, &vlen);
        } else {
            rc = store_cursor_seek(cur, p->scan_key, p->scan_key_len, &key, &klen, &val, &vlen);
            if (rc == 0 && klen == p->scan_key_len && memcmp(key, p->scan_key, klen) == 0) {
                rc = store_cursor_next(cur, &key, &klen, &val, &vlen);
            }
        }
    }
    int done = 0;
    for (unsigned n = 0; n < SCAN_CHUNK; n++) {
        if (rc != 0 || klen <= p->prefix_len || memcmp(key, p->prefix, p->prefix_len) != 0) {
            done = 1;
            break;
        }
        const char *id = (const char *)key + p->prefix_len;
        size_t idlen = klen - p->prefix_len;
        p->scan_total++;
        if (!idset_contains(&p->seen, id, idlen)) {
            struct snap_entry e;
            bool was_missing = diff_snap_decode(val, vlen, &e) == 0 && (e.flags & SNAP_MISSING);
            char *sid = xstrndup(id, idlen);
            if (was_missing) {
                if (p->missing_old.len < MISSING_CAP) {
                    poller_strlist_add(&p->missing_old, sid);
                }
            } else {
                p->missing_new_total++;
                if (p->missing_new.len < MISSING_CAP) {
                    poller_strlist_add(&p->missing_new, sid);
                }
            }
            free(sid);
        }
        free(p->scan_key);
        p->scan_key = xstrndup(key, klen);
        p->scan_key_len = klen;
        rc = store_cursor_next(cur, &key, &klen, &val, &vlen);
    }
    store_txn_abort(txn);
    store_release_pages(p->env.store);
    if (rc != 0 && rc != -ENOENT) {
        return rc;
    }
    return done;
}

static void scan_missing(struct poller *p)
{
    int rc = scan_chunk(p);
    if (rc < 0) {
        log_error(p->tag, "cannot read the snapshot: %s", store_strerror(rc));
        cycle_end(p, false);
        return;
    }
    if (rc == 0) {
        /* More to scan: yield to the loop, continue on the next turn. */
        p->page = MAX_PAGES; /* marks the scan phase for timer_cb */
        uv_timer_start(&p->timer, timer_cb, 0, 0);
        return;
    }
    decide_deletions(p);
}

/* ---- public ------------------------------------------------------------ */

static void timer_cb(uv_timer_t *t)
{
    struct poller *p = t->data;
    if (p->stopping || p->closing) {
        return;
    }
    if (is_child(p)) {
        fanout_sweep_next(p);
        return;
    }
    if (!p->busy) {
        cycle_start(p);
    } else if (p->page == MAX_PAGES) {
        scan_missing(p);
    } else if (p->pending == NULL && p->confirms_outstanding == 0) {
        fetch_page(p); /* a page retry */
    }
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

struct poller *poller_create(const struct poller_env *env, const struct config_trigger *tc,
                             struct location *loc)
{
    struct poller *p = xcalloc(1, sizeof(*p));
    p->env = *env;
    p->tc = tc;
    p->def = tc->def;
    p->loc = loc;
    p->tag = xasprintf("trigger:%s", tc->name);
    const char *parts[] = {tc->name, location_name(loc)};
    size_t klen = 0;
    p->prefix = snapshot_key_prefix(parts, 2, &p->prefix_len);
    p->state_key = xstrndup(p->prefix, p->prefix_len - 1);
    (void)klen;
    p->ignore = merge_ignore(tc, tc->def);
    idset_init(&p->seen);
    uv_timer_init(env->loop, &p->timer);
    p->timer.data = p;
    return p;
}

void poller_add_child(struct poller *parent, struct poller *child)
{
    parent->children = xrealloc(parent->children, (parent->nchildren + 1) * sizeof(*parent->children));
    parent->children[parent->nchildren++] = child;
    child->parent = parent;
}

int poller_start(struct poller *p)
{
    load_state(p);
    uint64_t every = p->tc->every_ms;
    uint64_t first = util_rand_range(0, every < 3000 ? every / 4 : 750);
    if (p->env.once) {
        first = 0;
    }
    /* A child's "seeded" is its round flag: it is new until its first round completes. */
    bool fresh = is_child(p) ? p->cycle == 0 : !p->seeded;
    log_info(p->tag, "%s on location %s every %llus%s", p->def->name, location_name(p->loc),
             (unsigned long long)(every / 1000),
             !fresh ? "" : (p->tc->first_poll_emit ? " (first poll emits)" : " (first poll records a baseline)"));
    poller_schedule(p, first);
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
        location_cancel(p->pending);
    }
    /* --once: a stopped trigger (its credential failed, or shutdown) will not
     * complete its cycle; report it failed so the run can end. */
    poller_report_done(p, false);
}

static void poller_free(struct poller *p)
{
    cycle_reset(p);
    idset_finish(&p->seen);
    fanout_free(p);
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

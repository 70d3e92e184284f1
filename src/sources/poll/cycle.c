/*
 * cycle: one top-level enumeration (see poll_int.h).
 *
 *   tick -> cycle_start -> fetch_page -> on_page: parse, commit (txn),
 *        advance -> fetch_page ... -> scan_missing (chunked, read txns)
 *        -> [confirm_deletes: GET by id] -> finish_cycle (txn) -> schedule
 *
 * Thread context: loop thread.
 */
#include "poll_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "api.h"
#include "config.h"
#include "diff.h"
#include "failpoint.h"
#include "http.h"
#include "idset.h"
#include "json.h"
#include "location.h"
#include "log.h"
#include "metrics.h"
#include "paging.h"
#include "snapshot.h"
#include "store.h"
#include "sweep.h"
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

static void fetch_page(struct poller *p);
static void scan_missing(struct poller *p);
static void finish_cycle(struct poller *p);
static void cycle_start(struct poller *p);

/* ---- top-level cycle -------------------------------------------------- */

static void cycle_reset(struct poller *p)
{
    p->page = 0;
    p->attempt = 0;
    p->records_seen = 0;
    p->gone_by_id = false;
    paging_cursor_reset(&p->cursor);
    idset_clear(&p->seen);
    poller__raw_cycle_reset(p);
    memset(&p->cstats, 0, sizeof(p->cstats));
    free(p->scan_key);
    p->scan_key = NULL;
    p->scan_key_len = 0;
    p->scan_total = 0;
    p->fill_known = false;
    p->fill_entries = 0;
    p->fill_seen = 0;
    p->seen_stored = 0;
    p->missing_new_total = 0;
    p->incomplete = false;
    p->listed_total = 0;
    p->max_total = -1;
    poller__strlist_clear(&p->missing_new);
    poller__strlist_clear(&p->missing_old);
    poller__strlist_clear(&p->gone);
    poller__strlist_clear(&p->hold);
    poller__strlist_clear(&p->remove);
    p->confirms_outstanding = 0;
    p->cycle_error[0] = '\0';
    p->error_auth = false;
}

static uint64_t jitter(uint64_t every)
{
    return util_rand_range(0, every / 20);
}

/* The wait after a successful cycle (finish_txn: its record says when). */
static uint64_t ok_delay(const struct poller *p)
{
    uint64_t every = p->tc->every_ms;
    uint64_t elapsed = uv_now(p->env.loop) - p->cycle_started;
    uint64_t delay = (elapsed >= every ? 0 : every - elapsed) + jitter(every);
    return poller__incr_next_delay(p, delay);
}

static void cycle_end(struct poller *p, bool ok)
{
    poller__raw_cycle_reset(p); /* the map of raw hashes lives for one cycle */
    p->busy = false;
    p->pending = NULL;
    uint64_t every = p->tc->every_ms;
    uint64_t delay = p->next_delay;
    char label[POLLER_LABEL_MAX];
    metrics_observe("pollen_cycle_duration_seconds",
                    metrics_label(label, sizeof(label), "trigger", p->tc->name),
                    (double)(uv_now(p->env.loop) - p->cycle_started) / 1000.0);
    if (ok) {
        p->failures = 0;
        p->failing_since = 0;
        p->stats.cycles++;
    } else {
        if (p->failures++ == 0) {
            p->failing_since = uv_now(p->env.loop);
        }
        p->stats.failed_cycles++;
        uint64_t cap = every * 8 < 15 * 60000 ? every * 8 : 15 * 60000;
        bool scheduled = !p->env.once && !p->stopping;
        delay = scheduled ? util_backoff_ms(every, cap > every ? cap : every, p->failures) : 0;
        poller__record_failed(p, delay); /* 0: nothing scheduled */
    }
    if (p->env.once) {
        poller__report_done(p, ok);
        poller__sweep_kick(p); /* they finish their round, or give up, once we are done */
        return;
    }
    if (p->stopping) {
        return; /* shutdown: the cycle was cut short on purpose */
    }
    if (!ok) {
        log_warn(p->tag, "cycle failed (%u in a row), requests=%llu; next attempt in %llu ms",
                 p->failures, (unsigned long long)(p->stats.requests - p->requests_from),
                 (unsigned long long)delay);
    }
    poller__schedule(p, delay);
}

static void page_retry(struct poller *p, const char *why)
{
    p->attempt++;
    if (p->attempt >= PAGE_MAX_ATTEMPTS) {
        log_error(p->tag, "giving up on this cycle after %u attempts at page %u (%s)", p->attempt,
                  p->page + 1, why);
        poller__fail_text(p, "gave up after %u attempts at page %u: %s", p->attempt, p->page + 1,
                           p->cycle_error[0] ? p->cycle_error : why);
        cycle_end(p, false);
        return;
    }
    uint64_t delay = util_backoff_ms(500, 10000, p->attempt);
    log_info(p->tag, "retrying page %u in %llu ms (%s)", p->page + 1, (unsigned long long)delay,
             why);
    poller__schedule(p, delay);
}

struct page_apply {
    struct poller *p;
    const cJSON *records;
    bool raw; /* the records came through the fast path (rawpage.c): stubs among them */
    struct snapshot_stats st;
};

static int apply_page_txn(struct store_txn *txn, void *ud)
{
    struct page_apply *a = ud;
    struct poller *p = a->p;
    struct snapshot_scope sc;
    bool silent = !p->seeded && !p->tc->first_poll_emit;
    poller__init_scope(p, &sc, p->prefix, p->prefix_len, silent);
    if (a->raw) {
        poller__raw_scope(p, &sc);
    }
    memset(&a->st, 0, sizeof(a->st));
    /* Children learn about created/updated parents; a baseline needs no
     * queue: their first sweep reads every parent anyway. */
    snapshot_change_cb cb = (p->nchildren > 0 && p->seeded) ? poller__sweep_notify : NULL;
    int rc = snapshot_apply_records(txn, &sc, a->records, &p->seen, &a->st, cb, p);
    if (rc == 0) {
        rc = poller__incr_page_txn(txn, p, a->records); /* W commits with the page (M13) */
    }
    if (rc == 0) {
        FAILPOINT("poll.before_commit");
    }
    return rc;
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
    paging_describe(&p->paging, &p->cursor, p->page, out, len);
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

unsigned poller__page_cap(double total, size_t listed, unsigned page_size)
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
    return poller__page_cap(p->max_total, p->seen.count, poller__page_size(p));
}

/* A page that is not a page: abandon or retry as its outcome says. */
static void page_failed(struct poller *p, const struct http_response *resp, enum outcome oc,
                        cJSON *body)
{
    poller__log_failure(p, p->def->path, resp, body);
    poller__fail_response(p, resp, body);
    json_arena_free(body);
    if (poller__incr_refused(p, resp)) {
        p->busy = false;
        cycle_start(p); /* degraded: this cycle becomes a full reconcile */
        return;
    }
    if (oc == OUTCOME_RETRY) {
        page_retry(p, resp->error != 0 ? http_strerror(resp->error)
                      : resp->status == 429 ? "rate limited (HTTP 429)" : "server error");
        return;
    }
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

/*
 * Parse: the page's body and its records (*wrapped: an array made for a
 * single record, or NULL). Returns false when the page was dealt with here
 * (retried, the cycle ended, or a single record's 404 went on to the
 * deletions); the body is freed then.
 */
static bool page_parse(struct poller *p, struct http_response *resp, cJSON **body_out,
                       cJSON **wrapped_out, const cJSON **records_out)
{
    cJSON *body = NULL;
    cJSON *fast = NULL; /* the records, when the raw-bytes fast path read the page */
    p->raw.active = false;
    if (resp->body.len > 0 && !poller__raw_page(p, resp, &body, &fast)) {
        json_parse_arena(resp->body.data, resp->body.len, &body, NULL);
    }
    enum outcome oc = poller__classify_of(p, resp);
    if (oc == OUTCOME_GONE && p->def->single) {
        /* The one record does not exist: a complete, empty enumeration,
         * already confirmed by id (the request IS the GET by id). */
        p->gone_by_id = true;
        json_arena_free(body);
        scan_missing(p);
        return false;
    }
    if (oc != OUTCOME_OK) {
        page_failed(p, resp, oc, body);
        return false;
    }
    if (body == NULL) {
        log_warn(p->tag, "%s: invalid JSON in a %zu-byte response (HTTP %ld)", p->def->path,
                 resp->body.len, resp->status);
        page_retry(p, "invalid JSON");
        return false;
    }
    const cJSON *found = fast != NULL ? fast : poller__records(p, body);
    cJSON *wrapped = fast; /* freed with the page, before the body */
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
        log_at_with(LOG_WARN, p->tag, &(struct log_fields){.trace_id = trace},
                    "%s: response has no '%s' array (traceId %s)", p->def->path,
                    p->def->records, trace ? trace : "none");
        cJSON_Delete(wrapped);
        json_arena_free(body);
        page_retry(p, "unexpected response shape");
        return false;
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
        return false;
    }
    *body_out = body;
    *wrapped_out = wrapped;
    *records_out = records;
    return true;
}

/*
 * deleted_field (M11): the page's records without the soft-deleted ones (a
 * new array of references), or NULL when the definition has no such field.
 * A flagged record stays unseen, so the deletion phase reports it once
 * (after confirm_delete, or a second complete listing); it still counts as
 * listed, so the API's count proves the listing complete.
 */
static cJSON *live_records(const struct poller *p, const cJSON *records)
{
    if (p->def->deleted_field == NULL) {
        return NULL;
    }
    cJSON *live = cJSON_CreateArray();
    const cJSON *rec;
    cJSON_ArrayForEach(rec, records)
    {
        if (!poller__soft_deleted(p, rec)) {
            cJSON_AddItemReferenceToArray(live, (cJSON *)rec);
        }
    }
    return live;
}

/* Commit: the page's records in one transaction. Returns false when the cycle ended. */
static bool page_commit(struct poller *p, const cJSON *body, const cJSON *records)
{
    cJSON *live = live_records(p, records);
    struct page_apply a = {.p = p, .records = live != NULL ? live : records, .raw = p->raw.active};
    int rc = store_write(p->env.store, apply_page_txn, &a);
    cJSON_Delete(live);
    if (rc != 0) {
        poller__incr_page_rollback(p);
        log_error(p->tag, "cannot record page %u: %s", p->page + 1, store_strerror(rc));
        cycle_end(p, false);
        return false;
    }
    FAILPOINT("poll.after_commit");
    poller__stats_add(&p->cstats, &a.st);
    p->seen_stored += a.st.seen_stored;
    p->stats.events += a.st.events;
    poller__events_committed(p, a.st.events);
    unsigned count = (unsigned)cJSON_GetArraySize(records);
    p->records_seen += count;
    p->stats.records += count;
    if (a.st.invalid > 0) {
        const char *trace = ghl_api_trace_id(body);
        char where[160];
        describe_page(p, where, sizeof(where));
        log_at_with(LOG_WARN, p->tag, &(struct log_fields){.trace_id = trace},
                    "%s %s (%s): skipped %u records without a valid '%s' (traceId %s)",
                    p->def->method, p->def->path, where, a.st.invalid, id_field(p),
                    trace ? trace : "none");
    }
    if (a.st.created + a.st.updated > 0) {
        poller__sweep_kick(p);
    }
    return true;
}

/* Advance: the next page, or (the listing read to its end) the deletions. Frees body. */
static void page_advance(struct poller *p, cJSON *body, cJSON *wrapped, const cJSON *records)
{
    double total = paging_total(&p->paging, body);
    if (total > p->max_total) {
        p->max_total = total; /* the largest count any page claimed */
    }
    enum paging_next next = paging_advance(&p->paging, &p->cursor, body, records);
    bool more = next == PAGING_MORE;
    cJSON_Delete(wrapped);
    json_arena_free(body);
    if (next == PAGING_STUCK) {
        page_retry(p, "pagination cursor missing or not advancing");
        return;
    }
    if (more && p->page + 1 >= page_cap(p)) {
        log_error(p->tag, "%s %s: still more pages after %u (the API counted %.0f records, %u "
                          "per page); the API is looping: cycle abandoned, no deletions decided",
                  p->def->method, p->def->path, p->page + 1, p->max_total, poller__page_size(p));
        cycle_end(p, false);
        return;
    }
    if (more && poller__incr_overgrown(p)) {
        finish_cycle(p); /* what it read is committed; the next cycle reconciles */
        return;
    }
    if (more) {
        poller__progress_cycle(p);
        p->page++;
        p->attempt = 0;
        fetch_page(p);
        return;
    }
    if (p->incr_cycle) {
        finish_cycle(p); /* incremental: absence means nothing, no deletion phase */
        return;
    }
    check_listed_total(p, p->max_total);
    scan_missing(p);
}

static void on_page(struct http_response *resp, void *ud)
{
    struct poller *p = ud;
    p->pending = NULL;
    if (p->stopping) {
        poller__fail_response(p, resp, NULL); /* a refused credential stops us: say so */
        cycle_end(p, false);
        return;
    }
    cJSON *body = NULL;
    cJSON *wrapped = NULL;
    const cJSON *records = NULL;
    if (!page_parse(p, resp, &body, &wrapped, &records)) {
        return;
    }
    if (!page_commit(p, body, records)) {
        cJSON_Delete(wrapped);
        json_arena_free(body);
        return;
    }
    page_advance(p, body, wrapped, records);
}

static void fetch_page(struct poller *p)
{
    enum target_class cls = LOCATION_POLL;
    uint64_t pace = poller__incr_page_class(p, &cls);
    if (pace > 0) {
        poller__schedule(p, pace); /* cycle_tick asks again */
        return;
    }
    struct request_parts r;
    int brc = poller__build_base(p, NULL, &r);
    if (brc != 0) {
        if (brc == -ENOENT) {
            log_error(p->tag, "%s needs the location's companyId ({company}), which its "
                              "credential does not carry: set company_id in [location %s]",
                      p->def->name, poller__scope_name(p));
        } else {
            log_error(p->tag, "cannot build the request path");
        }
        cycle_end(p, false);
        return;
    }
    poller__incr_add_body(p, &r);
    poller__add_pagination(p, &r);
    int rc = poller__submit(p, cls, &r, p->def->method, on_page, p);
    poller__parts_finish(&r);
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
    p->requests_from = p->stats.requests;
    cycle_reset(p);
    poller__incr_cycle_begin(p);
    log_debug(p->tag, "cycle %llu starts%s", (unsigned long long)p->cycle + 1,
              p->incr_cycle ? " (incremental)" : p->incr ? " (reconcile)" : "");
    fetch_page(p);
}

/* ---- deletions --------------------------------------------------------- */

static int finish_txn(struct store_txn *txn, void *ud)
{
    struct page_apply *a = ud;
    struct poller *p = a->p;
    struct snapshot_scope sc;
    poller__init_scope(p, &sc, p->prefix, p->prefix_len, !p->seeded);
    memset(&a->st, 0, sizeof(a->st));
    snapshot_change_cb cb = (p->nchildren > 0) ? poller__sweep_notify : NULL;
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
    poller__incr_finish_txn(p);
    int rc = poller__save_state(txn, p, true, p->cycle + 1, NULL, 0);
    if (rc == 0) {
        p->next_delay = ok_delay(p); /* after incr_finish_txn: it moves the reconcile */
        rc = poller__record_ok_txn(txn, p, a->st.events);
    }
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
        poller__incr_finish_rollback(p);
        log_error(p->tag, "cannot record the end of the cycle: %s", store_strerror(rc));
        cycle_end(p, false);
        return;
    }
    FAILPOINT("poll.after_commit");
    poller__stats_add(&p->cstats, &a.st);
    p->stats.events += a.st.events;
    poller__events_committed(p, a.st.events);
    bool was_seeded = p->seeded;
    p->seeded = true;
    p->cycle++;
    const struct snapshot_stats *s = &p->cstats;
    char kind[96];
    poller__incr_describe(p, kind, sizeof(kind));
    if (!was_seeded && !p->tc->first_poll_emit && p->env.dry_run) {
        log_info(p->tag, "first poll: %llu records would be a silent baseline (no events, so no "
                         "actions); set first_poll = emit on the trigger to see the actions its "
                         "rules would send for them",
                 (unsigned long long)p->records_seen);
    } else if (!was_seeded && !p->tc->first_poll_emit) {
        log_info(p->tag, "baseline recorded: %llu records (no events for existing records), "
                         "requests=%llu%s",
                 (unsigned long long)p->records_seen,
                 (unsigned long long)(p->stats.requests - p->requests_from), kind);
    } else {
        log_info(p->tag,
                 "cycle %llu: %llu records, %u created, %u updated, %u deleted, %zu held, "
                 "%u events, requests=%llu%s",
                 (unsigned long long)p->cycle, (unsigned long long)p->records_seen, s->created,
                 s->updated, s->deleted, p->hold.len, s->events,
                 (unsigned long long)(p->stats.requests - p->requests_from), kind);
    }
    if (s->deleted > 0) {
        poller__sweep_kick(p);
    }
    cycle_end(p, true);
}

static void on_confirm(struct http_response *resp, void *ud);

struct confirm_ctx {
    struct poller *p;
    char *id;
    bool held; /* its deletion was held by an earlier cycle */
};

/*
 * This record's GET by id cannot decide: a {record.FIELD} of confirm_delete
 * has no usable value in its last-known copy, or the API does not let the
 * credential read it (401/403: e.g. a token without the scope of a confirm
 * GET under another resource). It is decided as without confirm_delete (a
 * second complete listing that agrees). Warned once, when it first goes
 * missing (held: an earlier cycle warned).
 */
static void unconfirmable(struct poller *p, const char *id, bool held, const char *why)
{
    if (!held) {
        log_warn(p->tag, "cannot confirm the deletion of %s by id (%s): it is reported when "
                         "the next complete listing also lacks it",
                 id, why);
        poller__strlist_add(&p->hold, id);
    } else if (p->records_seen > 0 || p->empty_streak >= EMPTY_CONFIRMATIONS) {
        poller__strlist_add(&p->remove, id);
    }
}

/* Asks by id for each candidate; the first nheld were already held by an earlier cycle. */
static void confirm_deletes(struct poller *p, struct strlist *candidates, size_t nheld)
{
    /* {record.FIELD}: the copies come from the snapshot, in one read txn. */
    struct store_txn *txn = NULL;
    struct snapshot_scope sc;
    if (poller__confirm_uses_record(p) && store_txn_begin(p->env.store, false, &txn) == 0) {
        poller__init_scope(p, &sc, p->prefix, p->prefix_len, false);
    }
    size_t n = 0;
    for (size_t i = 0; i < candidates->len; i++) {
        if (n >= CONFIRM_CAP) {
            /* Too many to check now: hold them; two complete enumerations will decide. */
            poller__strlist_add(&p->hold, candidates->items[i]);
            continue;
        }
        struct confirm_ctx *c = xcalloc(1, sizeof(*c));
        c->p = p;
        c->id = xstrdup(candidates->items[i]);
        c->held = i < nheld;
        cJSON *last = txn != NULL ? snapshot_last_copy(txn, &sc, c->id) : NULL;
        char why[256];
        p->confirms_outstanding++;
        int rc = poller__submit_confirm_of(p, c->id, last, on_confirm, c, why, sizeof(why));
        cJSON_Delete(last);
        if (rc != 0) {
            p->confirms_outstanding--;
            if (rc == -ENODATA) {
                unconfirmable(p, c->id, c->held, why);
            } else {
                poller__strlist_add(&p->hold, c->id);
            }
            free(c->id);
            free(c);
        } else {
            n++;
        }
    }
    if (txn != NULL) {
        store_txn_abort(txn);
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
    enum outcome oc = poller__classify_of(p, resp);
    if (oc == OUTCOME_GONE || (oc == OUTCOME_OK && poller__answer_soft_deleted(p, resp))) {
        poller__strlist_add(&p->remove, c->id);
    } else if (oc == OUTCOME_OK) {
        log_debug(p->tag, "record %s missing from the listing but still exists", c->id);
    } else if (resp->status == 401 || resp->status == 403) {
        char why[64];
        snprintf(why, sizeof(why), "HTTP %ld: not authorized to read it", resp->status);
        unconfirmable(p, c->id, c->held, why);
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
    if (p->gone_by_id) {
        /* A single record's own GET answered "gone" in the API's error shape
         * (or 410): that is the confirmation by id, now, in this cycle, so a
         * `run --once` reports it as a running engine does. */
        if (p->seeded && p->missing_old.len + p->missing_new.len > 0) {
            log_info(p->tag, "%s: the record is gone (HTTP 404/410 from the API)", p->def->path);
        }
        for (size_t i = 0; i < p->missing_old.len; i++) {
            poller__strlist_add(&p->remove, p->missing_old.items[i]);
        }
        for (size_t i = 0; i < p->missing_new.len; i++) {
            poller__strlist_add(&p->remove, p->missing_new.items[i]);
        }
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
            poller__strlist_add(&confirm, p->missing_old.items[i]);
        } else if (p->records_seen > 0 || p->empty_streak >= EMPTY_CONFIRMATIONS) {
            poller__strlist_add(&p->remove, p->missing_old.items[i]);
        }
    }
    size_t nheld = confirm.len;
    if (n == 0) {
        if (confirm.len > 0) {
            confirm_deletes(p, &confirm, nheld);
            poller__strlist_clear(&confirm);
            return;
        }
        finish_cycle(p);
        return;
    }
    bool mass = n * 2 > p->scan_total && n > MASS_DELETE_MIN;
    if (!p->seeded) {
        /* Records that vanished while a baseline was interrupted: drop silently. */
        for (size_t i = 0; i < p->missing_new.len; i++) {
            poller__strlist_add(&p->remove, p->missing_new.items[i]);
        }
    } else if (mass || n > p->missing_new.len) {
        log_warn(p->tag,
                 "%llu of %llu records vanished at once: holding the deletions until the next "
                 "complete poll confirms them",
                 (unsigned long long)n, (unsigned long long)p->scan_total);
        for (size_t i = 0; i < p->missing_new.len; i++) {
            poller__strlist_add(&p->hold, p->missing_new.items[i]);
        }
    } else if (p->def->confirm_delete != NULL) {
        for (size_t i = 0; i < p->missing_new.len; i++) {
            poller__strlist_add(&confirm, p->missing_new.items[i]);
        }
        confirm_deletes(p, &confirm, nheld);
        poller__strlist_clear(&confirm);
        return;
    } else {
        /*
         * No GET by id: hold them; the next complete listing that still
         * lacks them deletes them (above). One listing is not enough: a
         * skip/limit page boundary shifts when a record leaves and another
         * joins during the enumeration, and an empty listing may be a glitch.
         */
        for (size_t i = 0; i < p->missing_new.len; i++) {
            poller__strlist_add(&p->hold, p->missing_new.items[i]);
        }
    }
    if (confirm.len > 0) {
        confirm_deletes(p, &confirm, nheld);
        poller__strlist_clear(&confirm);
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
    const void *last = NULL; /* the last entry examined */
    size_t last_len = 0;
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
                    poller__strlist_add(&p->missing_old, sid);
                }
            } else {
                p->missing_new_total++;
                if (p->missing_new.len < MISSING_CAP) {
                    poller__strlist_add(&p->missing_new, sid);
                }
            }
            free(sid);
        }
        last = key;
        last_len = klen;
        rc = store_cursor_next(cur, &key, &klen, &val, &vlen);
    }
    if (last != NULL) { /* where the next chunk starts: copied before the txn ends */
        free(p->scan_key);
        p->scan_key = xstrndup(last, last_len);
        p->scan_key_len = last_len;
    }
    store_txn_abort(txn);
    if (rc != 0 && rc != -ENOENT) {
        return rc;
    }
    return done;
}

/*
 * Whether the scan would find no unseen entry, without walking it: every
 * entry the scope held when the raw map was read was seen. The ids seen
 * before the map was read were all stored then (a seen id was applied);
 * an id first seen later whose entry existed was one of the map's (only
 * this cycle's pages create entries here, and an id is seen when created).
 * So fill_seen + seen_stored counts distinct entries of those fill_entries.
 * The counts can only fall short (a retried txn, two ids sharing a 64-bit
 * hash in `seen`): then the scan runs.
 */
static bool scan_needless(const struct poller *p)
{
    return p->scan_key == NULL && p->fill_known &&
           p->fill_seen + p->seen_stored == p->fill_entries;
}

static void scan_missing(struct poller *p)
{
    if (scan_needless(p)) {
        p->scan_total = p->seen.count; /* every entry is a seen id */
        log_debug(p->tag, "deletion scan: all %llu entries were seen",
                  (unsigned long long)p->scan_total);
        decide_deletions(p);
        return;
    }
    int rc = scan_chunk(p);
    if (rc < 0) {
        log_error(p->tag, "cannot read the snapshot: %s", store_strerror(rc));
        cycle_end(p, false);
        return;
    }
    if (rc == 0) {
        /* More to scan: yield to the loop, continue on the next turn. */
        p->page = MAX_PAGES; /* marks the scan phase for timer_cb */
        poller__schedule(p, 0);
        return;
    }
    decide_deletions(p);
}

/* The trigger's timer: start a cycle, scan on, or retry a page. */
static void cycle_tick(struct poller *p)
{
    if (!p->busy) {
        cycle_start(p);
    } else if (p->page == MAX_PAGES) {
        scan_missing(p);
    } else if (p->pending == NULL && p->confirms_outstanding == 0) {
        fetch_page(p); /* a page retry */
    }
}

const struct poller__ops poller__cycle_ops = {
    .tick = cycle_tick,
    .finish = cycle_reset,
};

/*
 * dispatch: see dispatch.h.
 */
#include "dispatch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "catalog.h"
#include "condition.h"
#include "config.h"
#include "diff.h"
#include "evlog.h"
#include "failpoint.h"
#include "http.h"
#include "json.h"
#include "location.h"
#include "log.h"
#include "outbox.h"
#include "sha256.h"
#include "subproc.h"
#include "store.h"
#include "template.h"
#include "url.h"
#include "util.h"

#define DEFAULT_CONCURRENCY 4
#define MAX_CONCURRENCY 32
#define POLL_INTERVAL_MS 1000
/* What a secret header's value is stored and printed as. */
#define SECRET_MASK "***"
/* Claims per loop turn: then the pump yields (a 0 ms timer) so that polls,
 * timers and signals run between batches however large the backlog. */
#define PUMP_BATCH 16
/* A claim or an outcome the store refused (database full, ENOSPC, EIO)
 * pauses claiming for a capped, growing backoff, logged at most once a minute. */
#define STORE_BACKOFF_MIN_MS 1000
#define STORE_BACKOFF_MAX_MS 60000
#define TROUBLE_LOG_INTERVAL_MS 60000
/* The deepest entry json_parse can read back (CJSON_NESTING_LIMIT). */
#define STORED_MAX_DEPTH 1000
/* An own-write record older than this no longer explains a change. */
#define OWN_WRITE_TTL_MS (60 * 60 * 1000)
/* http clamps Retry-After to this (RETRY_AFTER_MAX_S): the longest wait a
 * response can ask for. */
#define RETRY_AFTER_MAX_MS (3600 * 1000)
/* Added to the longest wait the engine sets to make due_horizon. */
#define HORIZON_MARGIN_MS (60 * 1000)

struct attempt {
    struct attempt *next;
    struct dispatcher *d;
    uint64_t id;
    cJSON *entry;        /* the entry as claimed (owned) */
    struct location_pending *pending;
    struct http_transfer *transfer;
    struct subproc_job *job;
    bool cancelled;      /* shutdown cancelled it: the outcome is left for the lease */
};

struct dispatcher {
    struct dispatcher_env env;
    uv_timer_t timer;
    struct attempt *inflight;
    size_t ninflight;
    bool stopping;
    bool closing;
    bool timer_closed;
    /* Store trouble: claiming pauses until blocked_until (see STORE_BACKOFF_*). */
    unsigned store_failures;
    uint64_t blocked_until;    /* clock_ms() time */
    uint64_t horizon;          /* due_horizon of the configuration */
    uint64_t trouble_logged_at;
    unsigned trouble_unlogged;   /* failures since the last log line */
    /* Graceful stop: called once nothing is in flight (dispatcher_drain). */
    void (*on_drained)(void *ud);
    void *drained_ud;
};

struct outcome {
    enum { OUT_SUCCESS, OUT_RETRY, OUT_DEAD } kind;
    long status;            /* HTTP status or exit code; 0 when none */
    long retry_after_s;
    char error[512];
    char trace_id[80];
    cJSON *result;          /* the response member `result` (own-write tracking), owned */
    bool created_new;       /* an upsert answered "new": true */
};

static void pump(struct dispatcher *d);
static void maybe_free(struct dispatcher *d);

/* ---- the clock (F14) ------------------------------------------------------
 *
 * Times the dispatcher stores (next_at, leases, own-write "at") are wall
 * ms, since they outlive the process, but it reads them on the monotonic
 * clock: clock_ms() is the wall clock as of its first use in this process,
 * advanced by the monotonic clock. So a wall-clock step while the engine runs changes
 * nothing: no retry waits for the step, no lease or own-write mark expires
 * early. Across a restart, times written before a step back are clamped by
 * outbox_next_due's horizon; after a step forward they are simply due early
 * (the crashed process that held a lease is gone: the engine lock). Event
 * times (and dead_at) stay real wall time.
 */
static uint64_t clock_base; /* wall ms minus monotonic ms, at the first use */

static uint64_t clock_ms(void)
{
    if (clock_base == 0) {
        clock_base = util_wall_ms() - util_mono_ms(); /* modulo 2^64, like the sum below */
    }
    return clock_base + util_mono_ms();
}

uint64_t dispatch_clock_ms(void)
{
    return clock_ms();
}

/* The real wall time of clock_ms() time at (for retry_at in events). */
static uint64_t clock_to_wall(uint64_t at)
{
    uint64_t now = clock_ms();
    uint64_t wall = util_wall_ms();
    return at > now ? wall + (at - now) : wall - (now - at);
}

/* How long a claimed entry stays in flight before it is due again. */
static uint64_t lease_ms(double timeout_ms)
{
    return (uint64_t)(timeout_ms > 0 ? timeout_ms : 30000) * 2 + 5000;
}

/* The longest wait the engine sets with this configuration, plus a margin:
 * outbox_next_due treats an entry due later than this as written before a
 * wall-clock step back. */
static uint64_t due_horizon(const struct config *cfg)
{
    uint64_t h = RETRY_AFTER_MAX_MS > STORE_BACKOFF_MAX_MS ? RETRY_AFTER_MAX_MS
                                                           : STORE_BACKOFF_MAX_MS;
    for (size_t i = 0; i < cfg->nrules; i++) {
        const struct config_rule *r = &cfg->rules[i];
        uint64_t lease = lease_ms((double)r->timeout_ms);
        h = r->backoff_max_ms > h ? r->backoff_max_ms : h;
        h = lease > h ? lease : h;
    }
    return h + HORIZON_MARGIN_MS;
}

/* ---- helpers ------------------------------------------------------------ */

static struct location *runtime_location(const struct dispatcher *d, const char *name)
{
    for (size_t i = 0; i < d->env.cfg->nlocations; i++) {
        if (strcmp(d->env.cfg->locations[i].name, name) == 0) {
            return d->env.locations[i];
        }
    }
    return NULL;
}

static unsigned type_bit(const char *type)
{
    if (strcmp(type, "created") == 0) {
        return EVENT_TYPE_CREATED;
    }
    if (strcmp(type, "updated") == 0) {
        return EVENT_TYPE_UPDATED;
    }
    if (strcmp(type, "deleted") == 0) {
        return EVENT_TYPE_DELETED;
    }
    return 0;
}

static const char *entry_str(const cJSON *entry, const char *key)
{
    const char *s = json_get_string(entry, key);
    return s ? s : "";
}

static double entry_num(const cJSON *entry, const char *key, double def)
{
    double v = def;
    json_get_number(entry, key, &v);
    return v;
}

static void set_str(cJSON *obj, const char *key, const char *value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    cJSON_AddStringToObject(obj, key, value ? value : "");
}

static void set_num(cJSON *obj, const char *key, double value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    cJSON_AddNumberToObject(obj, key, value);
}

/* ---- own writes --------------------------------------------------------
 *
 * For every record an action wrote, STORE_OWN keeps what pollen set:
 *   {"at": ms, "written": {field: value...}, "created": bool, "deleted": bool}
 * `written` holds the request's body fields (what pollen chose), replaced by
 * the response's list for list results (tags, followers: the resulting set).
 * A write to a task or note of a contact, or to a contact's campaigns,
 * "touches" the contact (its dateUpdated moves) with nothing written.
 * An event is pollen's echo when:
 *   created: pollen created that record;  deleted: pollen deleted it;
 *   updated: every changed field, apart from the ones the API derives
 *            (below), is one pollen wrote, with the value it wrote.
 * So an external change made at the same time is never swallowed.
 */

/* Fields the API recomputes on any write to a contact: they prove nothing. */
static const char *const derived_fields[] = {
    "dateUpdated", "firstNameLowerCase", "lastNameLowerCase", "fullNameLowerCase",
    "emailLowerCase", "contactName", "name", "searchAfter", "lastActivity",
};

static bool is_derived(const char *field)
{
    for (size_t i = 0; i < ARRAY_SIZE(derived_fields); i++) {
        if (strcmp(field, derived_fields[i]) == 0) {
            return true;
        }
    }
    return false;
}

static char *own_key(const char *location_id, const char *resource, const char *record_id,
                     size_t *len)
{
    char *k = xasprintf("%s\x1f%s\x1f%s", location_id, resource, record_id);
    *len = strlen(k);
    return k;
}

/*
 * customFields are written as [{id, field_value}] but read back as the whole
 * list of [{id, value}]: each written field must be there with its value.
 */
static bool custom_fields_echo(const cJSON *mine, const cJSON *now)
{
    if (!cJSON_IsArray(mine) || !cJSON_IsArray(now)) {
        return false;
    }
    const cJSON *w;
    cJSON_ArrayForEach(w, mine)
    {
        const char *id = json_get_string(w, "id");
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(w, "field_value");
        if (want == NULL) {
            want = cJSON_GetObjectItemCaseSensitive(w, "value");
        }
        bool found = false;
        const cJSON *n;
        cJSON_ArrayForEach(n, now)
        {
            const char *nid = json_get_string(n, "id");
            if (id != NULL && nid != NULL && strcmp(id, nid) == 0) {
                found = json_equal(want, cJSON_GetObjectItemCaseSensitive(n, "value"));
                break;
            }
        }
        if (!found) {
            return false;
        }
    }
    return true;
}

static bool updated_is_echo(const cJSON *saved, const cJSON *changes)
{
    const cJSON *written = cJSON_GetObjectItemCaseSensitive(saved, "written");
    const cJSON *change;
    cJSON_ArrayForEach(change, changes)
    {
        if (is_derived(change->string)) {
            continue;
        }
        const cJSON *mine = cJSON_GetObjectItemCaseSensitive(written, change->string);
        const cJSON *now = cJSON_GetObjectItemCaseSensitive(change, "new");
        if (mine == NULL || now == NULL) {
            return false;
        }
        bool same = strcmp(change->string, "customFields") == 0 ? custom_fields_echo(mine, now)
                                                                : json_equal(mine, now);
        if (!same) {
            return false;
        }
    }
    return true;
}

static int note_write(struct store_txn *txn, const char *location_id, const char *resource,
                      const char *id, const cJSON *written, bool created, bool deleted);

/* Several triggers may watch the same records (a search and a list, or one
 * per page size): each must see pollen's echo once, so a mark is consumed
 * per trigger ("seen") rather than deleted at the first match. */
static bool seen_by(const cJSON *mark, const char *trigger)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(mark, "seen"))
    {
        if (cJSON_IsString(t) && strcmp(t->valuestring, trigger) == 0) {
            return true;
        }
    }
    return false;
}

static void mark_seen(cJSON *mark, const char *trigger)
{
    cJSON *seen = cJSON_GetObjectItemCaseSensitive(mark, "seen");
    if (!cJSON_IsArray(seen)) {
        cJSON_DeleteItemFromObjectCaseSensitive(mark, "seen");
        seen = cJSON_AddArrayToObject(mark, "seen");
    }
    cJSON_AddItemToArray(seen, cJSON_CreateString(trigger));
}

/* A STORE_OWN value, parsed (NULL when absent or unreadable). */
static cJSON *own_get(struct store_txn *txn, const char *key, size_t klen)
{
    const void *val = NULL;
    size_t vlen = 0;
    cJSON *v = NULL;
    if (store_get(txn, STORE_OWN, key, klen, &val, &vlen) == 0) {
        json_parse(val, vlen, &v, NULL);
    }
    return v;
}

static int own_put(struct store_txn *txn, const char *key, size_t klen, const cJSON *v)
{
    char *json = cJSON_PrintUnformatted(v);
    int rc = store_put(txn, STORE_OWN, key, klen, json, strlen(json));
    free(json);
    return rc;
}

/* Has an own-write value outlived OWN_WRITE_TTL_MS? A mark has "at"; a
 * pending-create list is stale when each of its creates is. */
static bool own_expired(const void *key, size_t klen, const void *val, size_t vlen, void *ud)
{
    uint64_t now = *(const uint64_t *)ud;
    cJSON *v = NULL;
    (void)key;
    (void)klen;
    if (json_parse(val, vlen, &v, NULL) != 0) {
        return true; /* unreadable: it can explain nothing */
    }
    bool expired = true;
    if (cJSON_IsArray(v)) {
        const cJSON *p;
        cJSON_ArrayForEach(p, v)
        {
            expired = expired && now > (uint64_t)entry_num(p, "at", 0) + OWN_WRITE_TTL_MS;
        }
    } else {
        expired = now > (uint64_t)entry_num(v, "at", 0) + OWN_WRITE_TTL_MS;
    }
    cJSON_Delete(v);
    return expired;
}

int dispatch_own_sweep_batch(struct store_txn *txn, uint64_t now_ms, struct store_sweep *sw)
{
    return store_sweep_batch(txn, STORE_OWN, DISPATCH_SWEEP_BATCH, sw, own_expired,
                             &now_ms);
}

/* ---- intents: what a write will do, recorded before it is sent ------------
 *
 * The API applies a write before its response reaches pollen, so a poll or a
 * sweep may read the written record in between, before remember_own_write
 * has run. The claim txn (before the request goes out) therefore records:
 *  - for a create, whose id only the response tells, a pending create under
 *    (location, resource, "+" parent contact id or ""): the body sent and the
 *    outbox id. A `created` event under that parent whose record has every
 *    body field it carries with the value sent is the echo. The outcome txn
 *    removes the pending create, whatever the outcome;
 *  - the touch of the contact a write goes under (only derived fields such
 *    as dateUpdated may move, so a stale touch never hides a real change).
 * Updates of a record's own fields are still noted after the response: a
 * note made before could outlive a failed write and hide an equal change.
 */

/* The key of the pending creates of resource under contact_id (contacts
 * themselves have no parent: theirs is ""). */
static char *pending_key(const char *location_id, const char *resource, const char *contact_id,
                         size_t *len)
{
    const char *parent = strcmp(resource, "contact") == 0 || contact_id == NULL ? "" : contact_id;
    char *id = xasprintf("+%s", parent);
    char *k = own_key(location_id, resource, id, len);
    free(id);
    return k;
}

/* The pending creates under key (an array; empty when none or unreadable). */
static cJSON *pending_load(struct store_txn *txn, const char *key, size_t klen)
{
    cJSON *list = own_get(txn, key, klen);
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(list);
        list = cJSON_CreateArray();
    }
    return list;
}

static int pending_save(struct store_txn *txn, const char *key, size_t klen, const cJSON *list)
{
    if (cJSON_GetArraySize(list) == 0) {
        int rc = store_del(txn, STORE_OWN, key, klen);
        return rc == -ENOENT ? 0 : rc;
    }
    return own_put(txn, key, klen, list);
}

/* Does record carry every field of body that it has, with the value sent? */
static bool record_matches_body(const cJSON *record, const cJSON *body)
{
    size_t compared = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, body)
    {
        const cJSON *have = cJSON_GetObjectItemCaseSensitive(record, f->string);
        if (have == NULL) {
            continue;
        }
        if (!json_equal(have, f)) {
            return false;
        }
        compared++;
    }
    return compared > 0;
}

/* Is this created record one a pending create of pollen's that trigger has
 * not matched yet? Marks it seen by trigger if so; drops expired ones. */
static bool is_pending_create(struct store_txn *txn, const char *location_id,
                              const char *resource, const cJSON *record, const char *trigger)
{
    size_t klen = 0;
    char *key = pending_key(location_id, resource, json_get_string(record, "contactId"), &klen);
    cJSON *list = pending_load(txn, key, klen);
    uint64_t now = clock_ms();
    bool own = false;
    bool dirty = false;
    for (int i = cJSON_GetArraySize(list) - 1; i >= 0; i--) {
        cJSON *p = cJSON_GetArrayItem(list, i);
        if (now > (uint64_t)entry_num(p, "at", 0) + OWN_WRITE_TTL_MS) {
            cJSON_DeleteItemFromArray(list, i);
            dirty = true;
        } else if (!own && !seen_by(p, trigger) &&
                   record_matches_body(record, cJSON_GetObjectItemCaseSensitive(p, "body"))) {
            mark_seen(p, trigger); /* removed by the outcome txn */
            dirty = true;
            own = true;
        }
    }
    if (dirty) {
        pending_save(txn, key, klen, list);
    }
    cJSON_Delete(list);
    free(key);
    return own;
}

/* A create of pollen's: a POST that names no existing record (upserts too). */
static bool entry_creates(const cJSON *entry)
{
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(entry, "request");
    return strcmp(entry_str(req, "method"), "POST") == 0 &&
           json_get_string(entry, "target_id") == NULL &&
           *entry_str(entry, "target_resource") != '\0';
}

/* Adds (add) or removes the pending create of outbox entry id. */
static int pending_create_set(struct store_txn *txn, const cJSON *entry, uint64_t id, bool add)
{
    size_t klen = 0;
    char *key = pending_key(entry_str(entry, "location_id"), entry_str(entry, "target_resource"),
                            json_get_string(entry, "contact_id"), &klen);
    cJSON *list = pending_load(txn, key, klen);
    for (int i = cJSON_GetArraySize(list) - 1; i >= 0; i--) {
        if ((uint64_t)entry_num(cJSON_GetArrayItem(list, i), "id", 0) == id) {
            cJSON_DeleteItemFromArray(list, i);
        }
    }
    if (add) {
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(entry, "request");
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "id", (double)id);
        cJSON_AddNumberToObject(p, "at", (double)clock_ms());
        cJSON *body = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(req, "body"), 1);
        cJSON_AddItemToObject(p, "body", body != NULL ? body : cJSON_CreateObject());
        cJSON_AddItemToArray(list, p);
    }
    int rc = pending_save(txn, key, klen, list);
    cJSON_Delete(list);
    free(key);
    return rc;
}

/* In the claim txn, before the request is sent: see "intents" above. */
static int note_intent(struct store_txn *txn, const cJSON *entry, uint64_t id)
{
    const char *resource = entry_str(entry, "target_resource");
    const char *contact = json_get_string(entry, "contact_id");
    const char *location_id = entry_str(entry, "location_id");
    int rc = 0;
    if (entry_creates(entry)) {
        rc = pending_create_set(txn, entry, id, true);
    }
    if (rc == 0 && contact != NULL && *resource != '\0' && strcmp(resource, "contact") != 0) {
        rc = note_write(txn, location_id, "contact", contact, NULL, false, false);
    }
    return rc;
}

/* Is this event the echo of a write pollen made, not yet seen by this trigger?
 * Marks the record seen by it if so (see seen_by). */
static bool is_own_write(struct store_txn *txn, const char *location_id, const char *resource,
                         const char *record_id, const char *type, const cJSON *changes,
                         const cJSON *record, const char *trigger)
{
    size_t klen = 0;
    char *key = own_key(location_id, resource, record_id, &klen);
    const void *val = NULL;
    size_t vlen = 0;
    if (store_get(txn, STORE_OWN, key, klen, &val, &vlen) != 0) {
        free(key);
        /* Not noted yet: maybe a create whose response has not arrived. */
        return strcmp(type, "created") == 0 && *resource != '\0' &&
               is_pending_create(txn, location_id, resource, record, trigger);
    }
    cJSON *saved = NULL;
    bool own = false;
    bool expired = true;
    if (json_parse(val, vlen, &saved, NULL) == 0) {
        expired = clock_ms() > (uint64_t)entry_num(saved, "at", 0) + OWN_WRITE_TTL_MS;
        if (expired || seen_by(saved, trigger)) {
            own = false; /* this trigger has had its echo: a change now is someone else's */
        } else if (strcmp(type, "created") == 0) {
            own = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(saved, "created"));
        } else if (strcmp(type, "deleted") == 0) {
            own = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(saved, "deleted"));
        } else {
            own = updated_is_echo(saved, changes);
        }
    }
    /* Kept when not matched: the poll may have run before the write landed.
     * Kept when matched too, for the other triggers, until it expires. */
    if (expired) {
        store_del(txn, STORE_OWN, key, klen);
    } else if (own) {
        mark_seen(saved, trigger);
        own_put(txn, key, klen, saved);
    }
    cJSON_Delete(saved);
    free(key);
    return own;
}

/* Merges one write into the record's own-write entry. written is borrowed. */
static int note_write(struct store_txn *txn, const char *location_id, const char *resource,
                      const char *id, const cJSON *written, bool created, bool deleted)
{
    if (id == NULL || !diff_valid_record_id(id) || *resource == '\0') {
        return 0;
    }
    size_t klen = 0;
    char *key = own_key(location_id, resource, id, &klen);
    cJSON *saved = own_get(txn, key, klen);
    if (saved == NULL) {
        saved = cJSON_CreateObject();
    }
    set_num(saved, "at", (double)clock_ms());
    cJSON_DeleteItemFromObjectCaseSensitive(saved, "seen"); /* a new write: a new echo for all */
    cJSON *acc = cJSON_GetObjectItemCaseSensitive(saved, "written");
    if (!cJSON_IsObject(acc)) {
        cJSON_DeleteItemFromObjectCaseSensitive(saved, "written");
        acc = cJSON_AddObjectToObject(saved, "written");
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, written)
    {
        cJSON_DeleteItemFromObjectCaseSensitive(acc, f->string);
        cJSON_AddItemToObject(acc, f->string, cJSON_Duplicate(f, 1));
    }
    if (created) {
        cJSON_DeleteItemFromObjectCaseSensitive(saved, "created");
        cJSON_AddBoolToObject(saved, "created", true);
    }
    if (deleted) {
        cJSON_DeleteItemFromObjectCaseSensitive(saved, "deleted");
        cJSON_AddBoolToObject(saved, "deleted", true);
    }
    int rc = own_put(txn, key, klen, saved);
    free(key);
    cJSON_Delete(saved);
    return rc;
}

static int remember_own_write(struct store_txn *txn, const cJSON *entry, const cJSON *result,
                              const char *location_id)
{
    const char *resource = entry_str(entry, "target_resource");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(entry, "request");
    const char *method = entry_str(req, "method");
    const char *path = entry_str(req, "path");
    const char *target = json_get_string(entry, "target_id");
    const char *result_name = entry_str(entry, "result");
    const char *contact = json_get_string(entry, "contact_id");
    int rc = 0;
    if (*resource != '\0') {
        /* What pollen chose: the body, or the resulting list for tag/follower calls. */
        cJSON *written = cJSON_CreateObject();
        const cJSON *body = cJSON_GetObjectItemCaseSensitive(req, "body");
        const cJSON *f;
        cJSON_ArrayForEach(f, body)
        {
            cJSON_AddItemToObject(written, f->string, cJSON_Duplicate(f, 1));
        }
        if (cJSON_IsArray(result) && *result_name != '\0') {
            cJSON_DeleteItemFromObjectCaseSensitive(written, result_name);
            cJSON_AddItemToObject(written, result_name, cJSON_Duplicate(result, 1));
        }
        const char *created_id = NULL;
        if (strcmp(method, "POST") == 0 && cJSON_IsObject(result)) {
            created_id = json_get_string(result, "id");
        }
        /* A DELETE of the record itself (the path ends with its id), not of a
         * relation such as a campaign enrolment. */
        bool deletes = strcmp(method, "DELETE") == 0 && target != NULL &&
                       str_has_suffix(path, target) && path[strlen(path) - strlen(target) - 1] == '/';
        if (created_id != NULL && (target == NULL || strcmp(created_id, target) != 0)) {
            rc = note_write(txn, location_id, resource, created_id, written, true, false);
        } else if (target != NULL) {
            rc = note_write(txn, location_id, resource, target, deletes ? NULL : written, false,
                            deletes);
        } else if (cJSON_IsObject(result) && json_get_string(result, "id") != NULL) {
            /* An upsert: the record it returned, created or not. */
            rc = note_write(txn, location_id, resource, json_get_string(result, "id"), written,
                            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(entry, "upsert_new")),
                            false);
        }
        cJSON_Delete(written);
    }
    /* Writes under a contact move its dateUpdated: a touch, nothing written. */
    if (rc == 0 && contact != NULL && strcmp(resource, "contact") != 0) {
        rc = note_write(txn, location_id, "contact", contact, NULL, false, false);
    }
    return rc;
}

/* ---- rendering a rule's action at enqueue time ---------------------------- */

struct render {
    const cJSON *event;
    uint64_t now;
    char *contact_id;  /* the contactId path parameter, if the action has one */
    char err[256];
};

typedef int (*render_fn)(const struct template *t, const cJSON *event, uint64_t now_wall_ms,
                         cJSON **out, char *err, size_t errlen);

static cJSON *render_with(struct render *r, const struct config_rule_param *p, render_fn fn)
{
    cJSON *out = NULL;
    char err[200];
    if (fn(p->tmpl, r->event, r->now, &out, err, sizeof(err)) != 0) {
        snprintf(r->err, sizeof(r->err), "%s: %s", p->name, err);
        return NULL;
    }
    return out;
}

static cJSON *render_param(struct render *r, const struct config_rule_param *p)
{
    return render_with(r, p, template_render);
}

/* A string_list field: mixed text splits at its literal separators only (F11). */
static cJSON *render_list_param(struct render *r, const struct config_rule_param *p)
{
    return render_with(r, p, template_render_list);
}

/* Text of a rendered scalar (strings as-is, numbers and booleans printed). */
static char *value_text(const cJSON *v)
{
    if (cJSON_IsString(v)) {
        return xstrdup(v->valuestring);
    }
    if (cJSON_IsNull(v) || v == NULL) {
        return xstrdup("");
    }
    if (cJSON_IsBool(v)) {
        return xstrdup(cJSON_IsTrue(v) ? "true" : "false");
    }
    return json_print_canonical(v);
}

static cJSON *split_list(const char *text)
{
    cJSON *arr = cJSON_CreateArray();
    char *copy = xstrdup(text);
    for (char *p = copy; *p != '\0';) {
        while (*p == ' ' || *p == ',' || *p == '\t') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        char *start = p;
        while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t') {
            p++;
        }
        char saved = *p;
        *p = '\0';
        cJSON_AddItemToArray(arr, cJSON_CreateString(start));
        *p = saved;
    }
    free(copy);
    return arr;
}

/*
 * Converts a rendered value to the type the API expects; consumes v. NULL +
 * err on mismatch. literal: the config text has no {{ }}, so the user wrote
 * the value and the list and JSON forms apply; a value from an expression
 * keeps its JSON type, so event data can never change a request's structure
 * (F11: a string is one list element, a JSON-looking string stays a string;
 * `| split` and `| parse_json` ask for the other on purpose).
 */
static cJSON *coerce(cJSON *v, enum catalog_type type, const char *name, bool literal, char *err,
                     size_t errlen)
{
    switch (type) {
    case CATALOG_STRING: {
        if (cJSON_IsString(v)) {
            return v;
        }
        char *text = value_text(v);
        cJSON_Delete(v);
        cJSON *s = cJSON_CreateString(text);
        free(text);
        return s;
    }
    case CATALOG_BOOLEAN: {
        if (cJSON_IsBool(v)) {
            return v;
        }
        bool b = false;
        if (cJSON_IsString(v) && util_parse_bool(v->valuestring, &b) == 0) {
            cJSON_Delete(v);
            return cJSON_CreateBool(b);
        }
        break;
    }
    case CATALOG_INTEGER:
    case CATALOG_NUMBER: {
        if (cJSON_IsNumber(v) || cJSON_IsRaw(v)) {
            return v; /* Raw: an integer past 2^53, sent with its digits (json.h) */
        }
        if (cJSON_IsString(v)) {
            cJSON *n = json_number_from_text(v->valuestring);
            if (n == NULL) {
                snprintf(err, errlen, "%s: '%.60s' is not a number (plain JSON number text "
                                      "only)", name, v->valuestring);
            }
            cJSON_Delete(v);
            return n;
        }
        break;
    }
    case CATALOG_STRING_LIST: {
        if (cJSON_IsString(v) && literal) {
            cJSON *arr = split_list(v->valuestring);
            cJSON_Delete(v);
            return arr;
        }
        if (cJSON_IsString(v)) {
            cJSON *arr = cJSON_CreateArray();
            cJSON_AddItemToArray(arr, v);
            return arr;
        }
        if (cJSON_IsArray(v)) {
            cJSON *arr = cJSON_CreateArray();
            const cJSON *item;
            cJSON_ArrayForEach(item, v)
            {
                char *text = value_text(item);
                cJSON_AddItemToArray(arr, cJSON_CreateString(text));
                free(text);
            }
            cJSON_Delete(v);
            return arr;
        }
        break;
    }
    case CATALOG_JSON: {
        /* A literal that is JSON is sent as that JSON; rendered text stays text. */
        if (cJSON_IsString(v) && literal) {
            cJSON *parsed = NULL;
            if (json_parse(v->valuestring, strlen(v->valuestring), &parsed, NULL) == 0) {
                cJSON_Delete(v);
                return parsed;
            }
        }
        return v;
    }
    }
    snprintf(err, errlen, "%s: the value does not fit the expected type", name);
    cJSON_Delete(v);
    return NULL;
}

static const struct config_rule_param *rule_param(const struct config_rule *r, const char *name)
{
    for (size_t i = 0; i < r->nparams; i++) {
        if (strcmp(r->params[i].name, name) == 0) {
            return &r->params[i];
        }
    }
    return NULL;
}

/* r->err for path parameter name whose rendered text is not a record id. An
 * empty one most often comes from a field the record does not have: the
 * expression is named so the user sees which one. */
static void bad_id(struct render *r, const char *name, const struct config_rule_param *p,
                   const char *text)
{
    if (text == NULL) {
        snprintf(r->err, sizeof(r->err), "%s: '(missing)' is not a valid id", name);
    } else if (text[0] == '\0' && !template_is_literal(p->tmpl)) {
        snprintf(r->err, sizeof(r->err), "%s: '%.120s' rendered empty ('' is not a valid id)",
                 name, p->value);
    } else {
        snprintf(r->err, sizeof(r->err), "%s: '%.120s' is not a valid id", name, text);
    }
}

/* Expands the action's path; each parameter must be a safe record id. */
static char *render_path(struct render *r, const struct config_rule *rule, char **target_id)
{
    const struct catalog_action *def = rule->def;
    struct buf b;
    buf_init(&b, 4096);
    for (const char *s = def->path; *s != '\0';) {
        if (*s != '{') {
            buf_append(&b, s, 1);
            s++;
            continue;
        }
        const char *end = strchr(s, '}');
        if (end == NULL) {
            break;
        }
        char *name = xstrndup(s + 1, (size_t)(end - s - 1));
        const struct config_rule_param *p = rule_param(rule, name);
        cJSON *v = p ? render_param(r, p) : NULL;
        char *text = v ? value_text(v) : NULL;
        cJSON_Delete(v);
        if (text == NULL || !diff_valid_record_id(text)) {
            if (r->err[0] == '\0') {
                bad_id(r, name, p, text);
            }
            free(text);
            free(name);
            buf_finish(&b);
            return NULL;
        }
        if (def->target != NULL && strcmp(def->target, name) == 0) {
            free(*target_id);
            *target_id = xstrdup(text);
        }
        if (strcmp(name, "contactId") == 0 && r->contact_id == NULL) {
            r->contact_id = xstrdup(text);
        }
        char *esc = url_escape(text);
        buf_append_str(&b, esc);
        free(esc);
        free(text);
        free(name);
        s = end + 1;
    }
    return buf_steal(&b, NULL);
}

static cJSON *render_catalog_body(struct render *r, const struct config_rule *rule,
                                  const struct config_location *loc)
{
    const struct catalog_action *def = rule->def;
    if (def->empty_body) {
        return cJSON_CreateObject();
    }
    cJSON *body = cJSON_CreateObject();
    for (size_t i = 0; i < def->nbody; i++) {
        const struct catalog_binding *b = &def->body[i];
        if (b->is_location) {
            cJSON_AddStringToObject(body, b->name, loc->id);
        } else if (b->is_json) {
            cJSON *v = NULL;
            json_parse(b->value, strlen(b->value), &v, NULL);
            cJSON_AddItemToObject(body, b->name, v ? v : cJSON_CreateNull());
        } else {
            cJSON_AddStringToObject(body, b->name, b->value);
        }
    }
    for (size_t i = 0; i < rule->nparams; i++) {
        const struct catalog_field *f = catalog_action_field(def, rule->params[i].name);
        if (f == NULL) {
            continue; /* a path parameter */
        }
        cJSON *v = f->type == CATALOG_STRING_LIST ? render_list_param(r, &rule->params[i])
                                                  : render_param(r, &rule->params[i]);
        if (v == NULL) {
            cJSON_Delete(body);
            return NULL;
        }
        if (cJSON_IsNull(v)) {
            cJSON_Delete(v);
            if (f->required) {
                snprintf(r->err, sizeof(r->err), "%s: required, but '%.120s' rendered nothing",
                         f->name, rule->params[i].value);
                cJSON_Delete(body);
                return NULL;
            }
            continue;
        }
        v = coerce(v, f->type, f->name, template_is_literal(rule->params[i].tmpl), r->err,
                   sizeof(r->err));
        if (v == NULL) {
            cJSON_Delete(body);
            return NULL;
        }
        cJSON_AddItemToObject(body, f->name, v);
    }
    if (cJSON_GetArraySize(body) == 0 && strcmp(def->method, "POST") != 0 &&
        strcmp(def->method, "PUT") != 0) {
        cJSON_Delete(body);
        return NULL; /* GET/DELETE without fields: no body at all */
    }
    return body;
}

static cJSON *render_catalog(struct render *r, const struct config_rule *rule,
                             const struct config_location *loc, cJSON *entry)
{
    char *target_id = NULL;
    char *path = render_path(r, rule, &target_id);
    if (path == NULL) {
        free(target_id);
        return NULL;
    }
    r->err[0] = '\0';
    cJSON *body = render_catalog_body(r, rule, loc);
    if (body == NULL && r->err[0] != '\0') {
        free(path);
        free(target_id);
        return NULL;
    }
    const struct catalog_action *def = rule->def;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "method", def->method);
    cJSON_AddStringToObject(req, "path", path);
    cJSON_AddStringToObject(req, "version", def->version);
    if (body != NULL) {
        cJSON_AddItemToObject(req, "body", body);
    }
    cJSON_AddNumberToObject(entry, "success", def->success);
    cJSON_AddBoolToObject(entry, "gone_ok", def->gone_ok);
    cJSON_AddStringToObject(entry, "result", def->result ? def->result : "");
    cJSON_AddStringToObject(entry, "target_resource",
                            def->target_resource ? def->target_resource : "");
    if (target_id != NULL) {
        cJSON_AddStringToObject(entry, "target_id", target_id);
    }
    if (r->contact_id != NULL) {
        cJSON_AddStringToObject(entry, "contact_id", r->contact_id);
    }
    free(path);
    free(target_id);
    return req;
}

/*
 * A "." or ".." path segment (also as %2E): curl and servers resolve those,
 * so the request would go to another path than the rule's (F10; only a
 * `| raw` value or the literal text can put one there).
 */
static bool has_dot_segment(const char *url)
{
    const char *host = strstr(url, "://");
    const char *p = host != NULL ? strchr(host + 3, '/') : NULL;
    while (p != NULL && *p == '/') {
        const char *seg = p + 1;
        size_t n = strcspn(seg, "/?#");
        size_t dots = 0;
        size_t i = 0;
        while (i < n) {
            if (seg[i] == '.') {
                i++;
            } else if (n - i >= 3 && seg[i] == '%' && seg[i + 1] == '2' &&
                       (seg[i + 2] == 'e' || seg[i + 2] == 'E')) {
                i += 3;
            } else {
                break;
            }
            dots++;
        }
        if (i == n && (dots == 1 || dots == 2)) {
            return true;
        }
        p = seg + n;
    }
    return false;
}

/*
 * A secret header (F16) is stored masked, with its reference in
 * request.secret_headers; send_http puts the value in when it sends, so
 * the outbox, the dead letters and --dry-run never hold it.
 */
static void add_secret_header(cJSON *req, cJSON *headers, const struct config_rule_param *h)
{
    cJSON *refs = cJSON_GetObjectItemCaseSensitive(req, "secret_headers");
    if (refs == NULL) {
        refs = cJSON_AddObjectToObject(req, "secret_headers");
    }
    cJSON_AddStringToObject(headers, h->name, SECRET_MASK);
    cJSON_AddStringToObject(refs, h->name, h->value);
}

static cJSON *render_http(struct render *r, const struct config_rule *rule)
{
    char *url_text = NULL;
    char err[200];
    if (template_render_url(rule->url, r->event, r->now, &url_text, err, sizeof(err)) != 0) {
        snprintf(r->err, sizeof(r->err), "url: %s", err);
        return NULL;
    }
    if (!str_has_prefix(url_text, "https://") && !str_has_prefix(url_text, "http://")) {
        snprintf(r->err, sizeof(r->err), "url: '%.100s' is not an http(s) URL", url_text);
        free(url_text);
        return NULL;
    }
    if (has_dot_segment(url_text)) {
        snprintf(r->err, sizeof(r->err), "url: '%.100s' has a '.' or '..' path segment",
                 url_text);
        free(url_text);
        return NULL;
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "method", rule->method ? rule->method : "POST");
    cJSON_AddStringToObject(req, "url", url_text);
    free(url_text);
    cJSON *headers = cJSON_AddObjectToObject(req, "headers");
    for (size_t i = 0; i < rule->nheaders; i++) {
        if (rule->headers[i].is_secret) {
            add_secret_header(req, headers, &rule->headers[i]);
            continue;
        }
        cJSON *v = render_param(r, &rule->headers[i]);
        if (v == NULL) {
            cJSON_Delete(req);
            return NULL;
        }
        char *text = value_text(v);
        cJSON_Delete(v);
        if (strpbrk(text, "\r\n") != NULL) {
            snprintf(r->err, sizeof(r->err), "header %s: contains a line break", rule->headers[i].name);
            free(text);
            cJSON_Delete(req);
            return NULL;
        }
        cJSON_AddStringToObject(headers, rule->headers[i].name, text);
        free(text);
    }
    if (rule->method != NULL && strcmp(rule->method, "GET") == 0) {
        return req; /* GET carries no body */
    }
    if (rule->nparams == 0) {
        cJSON_AddItemToObject(req, "body", cJSON_Duplicate(r->event, 1));
        return req;
    }
    cJSON *body = cJSON_AddObjectToObject(req, "body");
    for (size_t i = 0; i < rule->nparams; i++) {
        cJSON *v = render_param(r, &rule->params[i]);
        if (v == NULL) {
            cJSON_Delete(req);
            return NULL;
        }
        cJSON_AddItemToObject(body, rule->params[i].name, v);
    }
    return req;
}

static cJSON *render_exec(struct render *r, const struct config_rule *rule)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "command", rule->command);
    cJSON *args = cJSON_AddArrayToObject(req, "args");
    for (size_t i = 0; i < rule->nargs; i++) {
        cJSON *v = NULL;
        char err[200];
        if (template_render(rule->args[i], r->event, r->now, &v, err, sizeof(err)) != 0) {
            snprintf(r->err, sizeof(r->err), "args: %s", err);
            cJSON_Delete(req);
            return NULL;
        }
        char *text = value_text(v);
        cJSON_Delete(v);
        cJSON_AddItemToArray(args, cJSON_CreateString(text));
        free(text);
    }
    /* The program reads the event on its standard input, exactly as recorded. */
    char *json = cJSON_PrintUnformatted(r->event);
    cJSON_AddStringToObject(req, "stdin", json);
    free(json);
    return req;
}

/* ---- action events ----------------------------------------------------- */

static int append_action_event(struct store_txn *txn, const cJSON *entry, const char *type,
                               const struct outcome *o)
{
    char when[32];
    char id[65];
    util_iso8601(util_wall_ms(), when);
    unsigned attempt = (unsigned)entry_num(entry, "attempts", 0);
    unsigned requeued = (unsigned)entry_num(entry, "requeued", 0);
    char *seed = xasprintf("%s:%u:%u:%s", entry_str(entry, "key"), requeued, attempt, type);
    sha256_hex(seed, strlen(seed), id);
    free(seed);
    id[32] = '\0';
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "id", id);
    cJSON_AddStringToObject(ev, "time", when);
    cJSON_AddStringToObject(ev, "type", type);
    cJSON_AddStringToObject(ev, "rule", entry_str(entry, "rule"));
    cJSON_AddStringToObject(ev, "action", entry_str(entry, "action"));
    cJSON_AddStringToObject(ev, "source", entry_str(entry, "source"));
    cJSON_AddStringToObject(ev, "trigger", entry_str(entry, "trigger"));
    cJSON_AddStringToObject(ev, "location", entry_str(entry, "location_id"));
    cJSON_AddNumberToObject(ev, "outbox_id", entry_num(entry, "id", 0));
    cJSON_AddNumberToObject(ev, "attempt", attempt);
    if (o != NULL && o->status != 0) {
        cJSON_AddNumberToObject(ev, "status", (double)o->status);
    } else {
        cJSON_AddNullToObject(ev, "status");
    }
    if (o != NULL && o->trace_id[0] != '\0') {
        cJSON_AddStringToObject(ev, "traceId", o->trace_id);
    } else {
        cJSON_AddNullToObject(ev, "traceId");
    }
    if (o != NULL && o->error[0] != '\0') {
        cJSON_AddStringToObject(ev, "error", o->error);
    }
    if (strcmp(type, "action.failed") == 0) {
        char next[32];
        util_iso8601(clock_to_wall((uint64_t)entry_num(entry, "next_at", 0)), next);
        cJSON_AddStringToObject(ev, "retry_at", next);
    }
    int rc = evlog_append(txn, ev, NULL);
    cJSON_Delete(ev);
    return rc;
}

/* ---- matching (inside the event's transaction) -------------------------- */

static bool rule_fires_on(const struct config_rule *r, const char *trigger, unsigned bit)
{
    for (size_t i = 0; i < r->non; i++) {
        if (strcmp(r->on[i].trigger, trigger) == 0 && (r->on[i].types & bit) != 0) {
            return true;
        }
    }
    return false;
}

static void idempotency_key(const char *event_id, const char *rule, char out[96])
{
    char h[65];
    sha256_hex(rule, strlen(rule), h);
    h[12] = '\0';
    snprintf(out, 96, "pollen-%s-%s", event_id, h);
}

/* Containers on the deepest path of v (1 for a flat object). */
static int json_depth(const cJSON *v)
{
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) {
        return 0;
    }
    int deepest = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, v)
    {
        int n = json_depth(c);
        if (n > deepest) {
            deepest = n;
        }
    }
    return deepest + 1;
}

/* The event's request nests deeper than a stored entry can be read back: it
 * would poison the outbox, so it is dead-lettered without its request. */
static cJSON *check_storable(struct render *r, cJSON *entry, cJSON *req)
{
    int depth = json_depth(entry);
    if (depth <= STORED_MAX_DEPTH) {
        return req;
    }
    cJSON_DetachItemViaPointer(entry, req);
    cJSON_Delete(req);
    snprintf(r->err, sizeof(r->err),
             "the request nests %d levels deep (the event's data), more than the %d an outbox "
             "entry can hold",
             depth, STORED_MAX_DEPTH);
    return NULL;
}

/* A rule that cannot be rendered for an event: one line naming the rule, the
 * event and the record, on stderr; in a dry run also on the dry-run stream. */
static void report_render_error(struct dispatcher *d, const struct config_rule *rule,
                                const cJSON *event, const char *err)
{
    log_warn("dispatch", "rule %s: cannot render the action for event %s (trigger %s, record "
                         "%s): %s",
             rule->name, entry_str(event, "id"), entry_str(event, "trigger"),
             entry_str(event, "record_id"), err);
    if (d->env.dry_run == NULL) {
        return;
    }
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "rule", rule->name);
    cJSON_AddStringToObject(line, "action", rule->action);
    cJSON_AddStringToObject(line, "source", entry_str(event, "id"));
    cJSON_AddStringToObject(line, "trigger", entry_str(event, "trigger"));
    cJSON_AddStringToObject(line, "record_id", entry_str(event, "record_id"));
    char *why = xasprintf("cannot render the action: %s", err);
    cJSON_AddStringToObject(line, "error", why);
    free(why);
    char *text = cJSON_PrintUnformatted(line);
    fprintf(d->env.dry_run, "%s\n", text);
    fflush(d->env.dry_run);
    free(text);
    cJSON_Delete(line);
}

static int enqueue(struct store_txn *txn, struct dispatcher *d, const struct config_rule *rule,
                   const cJSON *event)
{
    /* A rule on a `location = *` trigger acts on the location of the event. */
    const struct config_location *loc =
        config_rule_location(d->env.cfg, rule, entry_str(event, "trigger"));
    struct render r = {.event = event, .now = util_wall_ms()};
    char key[96];
    char when[32];
    idempotency_key(entry_str(event, "id"), rule->name, key);
    util_iso8601(r.now, when);
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddStringToObject(entry, "key", key);
    cJSON_AddStringToObject(entry, "rule", rule->name);
    cJSON_AddStringToObject(entry, "action", rule->action);
    cJSON_AddStringToObject(entry, "kind", rule->kind == CONFIG_RULE_CATALOG ? "ghl"
                                           : rule->kind == CONFIG_RULE_HTTP  ? "http"
                                                                             : "exec");
    cJSON_AddStringToObject(entry, "source", entry_str(event, "id"));
    cJSON_AddStringToObject(entry, "trigger", entry_str(event, "trigger"));
    cJSON_AddStringToObject(entry, "location", loc ? loc->name : "");
    cJSON_AddStringToObject(entry, "location_id", loc ? loc->id : "");
    cJSON_AddStringToObject(entry, "created", when);
    cJSON_AddStringToObject(entry, "state", "pending");
    cJSON_AddNumberToObject(entry, "max_attempts", rule->max_attempts ? rule->max_attempts : 8);
    cJSON_AddNumberToObject(entry, "backoff_ms", (double)rule->backoff_ms);
    cJSON_AddNumberToObject(entry, "backoff_max_ms", (double)rule->backoff_max_ms);
    cJSON_AddNumberToObject(entry, "timeout_ms", (double)rule->timeout_ms);
    cJSON *req = NULL;
    switch (rule->kind) {
    case CONFIG_RULE_CATALOG:
        req = loc ? render_catalog(&r, rule, loc, entry) : NULL;
        break;
    case CONFIG_RULE_HTTP:
        req = render_http(&r, rule);
        break;
    case CONFIG_RULE_EXEC:
        req = render_exec(&r, rule);
        break;
    }
    if (req != NULL) {
        cJSON_AddItemToObject(entry, "request", req);
        req = check_storable(&r, entry, req);
    }
    int rc = 0;
    if (req == NULL) {
        report_render_error(d, rule, event, r.err);
    }
    if (d->env.dry_run != NULL) {
        if (req != NULL) {
            char *line = cJSON_PrintUnformatted(entry);
            fprintf(d->env.dry_run, "%s\n", line);
            fflush(d->env.dry_run);
            free(line);
        }
    } else if (req == NULL) {
        /* The rule cannot be rendered for this event: that will not get better. */
        uint64_t id = 0;
        rc = outbox_enqueue(txn, entry, clock_ms(), &id);
        if (rc == 0) {
            struct outcome o = {.kind = OUT_DEAD};
            snprintf(o.error, sizeof(o.error), "cannot render the action: %s", r.err);
            rc = outbox_bury(txn, id, entry, o.error);
            if (rc == 0) {
                rc = append_action_event(txn, entry, "action.dead", &o);
            }
        }
    } else {
        rc = outbox_enqueue(txn, entry, clock_ms(), NULL);
    }
    cJSON_Delete(entry);
    free(r.contact_id);
    return rc;
}

int dispatch_on_event(struct store_txn *txn, cJSON *event, void *ud)
{
    struct dispatcher *d = ud;
    const struct config *cfg = d->env.cfg;
    const char *trigger = json_get_string(event, "trigger");
    const char *type = json_get_string(event, "type");
    const char *record_id = json_get_string(event, "record_id");
    if (trigger == NULL || type == NULL || record_id == NULL) {
        return 0;
    }
    const struct config_trigger *tc = config_find_trigger(cfg, trigger);
    if (tc == NULL || tc->def == NULL) {
        return 0;
    }
    const cJSON *changes = cJSON_GetObjectItemCaseSensitive(event, "changes");
    if (is_own_write(txn, tc->location->id, tc->def->resource, record_id, type, changes,
                     cJSON_GetObjectItemCaseSensitive(event, "record"), trigger)) {
        cJSON_AddStringToObject(event, "origin", "pollen");
        return 0; /* pollen's own echo never fires rules: no feedback loops */
    }
    unsigned bit = type_bit(type);
    for (size_t i = 0; i < cfg->nrules; i++) {
        const struct config_rule *rule = &cfg->rules[i];
        if (!rule_fires_on(rule, trigger, bit)) {
            continue;
        }
        if (rule->cond != NULL && !condition_eval(rule->cond, event)) {
            continue;
        }
        int rc = enqueue(txn, d, rule, event);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- attempts ------------------------------------------------------------ */

struct claim_ctx {
    uint64_t id;
    uint64_t now;
    cJSON *entry;   /* out: the claimed entry */
    bool buried;    /* out: every attempt was used up (by crashes): not sent */
};

static int claim_txn(struct store_txn *txn, void *ud)
{
    struct claim_ctx *c = ud;
    cJSON_Delete(c->entry);
    c->entry = NULL;
    c->buried = false;
    if (FAILPOINT_ERROR("dispatch.claim")) {
        return -ENOSPC;
    }
    int rc = outbox_get(txn, c->id, &c->entry);
    if (rc != 0) {
        return rc;
    }
    unsigned made = (unsigned)entry_num(c->entry, "attempts", 0);
    unsigned max = (unsigned)entry_num(c->entry, "max_attempts", 8);
    if (made >= max) {
        /* Every attempt was claimed and none came back: the engine died during
         * each (a poison action). Dead-letter it instead of crashing again. */
        struct outcome o = {.kind = OUT_DEAD};
        snprintf(o.error, sizeof(o.error),
                 "gave up after %u attempts: the engine stopped during each one", made);
        c->buried = true;
        rc = outbox_bury(txn, c->id, c->entry, o.error);
        if (rc == 0) {
            rc = append_action_event(txn, c->entry, "action.dead", &o);
        }
        return rc;
    }
    unsigned attempts = made + 1;
    /* The lease: if we crash now, the entry is due again once it expires. */
    uint64_t lease = c->now + lease_ms(entry_num(c->entry, "timeout_ms", 30000));
    set_num(c->entry, "attempts", attempts);
    set_str(c->entry, "state", "inflight");
    rc = outbox_update(txn, c->id, c->entry, lease);
    if (rc == 0) {
        rc = note_intent(txn, c->entry, c->id);
    }
    return rc;
}

static void attempt_free(struct attempt *a)
{
    cJSON_Delete(a->entry);
    free(a);
}

static void unlink_attempt(struct dispatcher *d, struct attempt *a)
{
    for (struct attempt **pp = &d->inflight; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            d->ninflight--;
            return;
        }
    }
}

static void drained_cb(uv_timer_t *t)
{
    struct dispatcher *d = t->data;
    void (*cb)(void *) = d->on_drained;
    d->on_drained = NULL;
    if (cb != NULL) {
        cb(d->drained_ud);
    }
}

/* An attempt is over (recorded, or left for its lease): forget it. Once a
 * stopping dispatcher has nothing in flight, its drain callback runs (from
 * the loop, never inside a caller that may still use the list). */
static void attempt_release(struct dispatcher *d, struct attempt *a)
{
    unlink_attempt(d, a);
    attempt_free(a);
    if (d->closing) {
        maybe_free(d);
    } else if (d->stopping && d->ninflight == 0 && d->on_drained != NULL) {
        uv_timer_start(&d->timer, drained_cb, 0, 0);
    }
}

/* Store failures repeat: one log line per TROUBLE_LOG_INTERVAL_MS at most,
 * with the number of those left out since the last one. */
static void log_trouble(struct dispatcher *d, const char *msg)
{
    uint64_t now = clock_ms();
    if (d->trouble_logged_at != 0 && now - d->trouble_logged_at < TROUBLE_LOG_INTERVAL_MS) {
        d->trouble_unlogged++;
        return;
    }
    log_error("dispatch", "%s (%u similar message(s) left out in the last minute)", msg,
              d->trouble_unlogged);
    d->trouble_logged_at = now;
    d->trouble_unlogged = 0;
}

/*
 * The store refused a claim or an outcome and could not even park the entry
 * (database full, ENOSPC, EIO): pause all claiming for a capped, growing
 * backoff instead of trying again at once.
 */
static void store_trouble(struct dispatcher *d, const char *what, uint64_t id, int rc)
{
    uint64_t wait = util_backoff_ms(STORE_BACKOFF_MIN_MS, STORE_BACKOFF_MAX_MS, d->store_failures);
    d->store_failures++;
    d->blocked_until = clock_ms() + wait;
    char msg[300];
    snprintf(msg, sizeof(msg), "cannot %s action %llu: %s; the outbox pauses %llu ms (%u failed "
                               "write(s) in a row)",
             what, (unsigned long long)id, store_strerror(rc), (unsigned long long)wait,
             d->store_failures);
    log_trouble(d, msg);
}

static void store_recovered(struct dispatcher *d)
{
    if (d->store_failures > 0) {
        log_info("dispatch", "the outbox records again after %u failed write(s)",
                 d->store_failures);
    }
    d->store_failures = 0;
    d->blocked_until = 0;
}

struct finish_ctx {
    struct attempt *a;
    struct outcome *o;
    uint64_t now;
    const char *type;  /* out: the event type written */
};

static int finish_txn(struct store_txn *txn, void *ud)
{
    struct finish_ctx *f = ud;
    struct attempt *a = f->a;
    struct outcome *o = f->o;
    cJSON *entry = NULL;
    int rc = outbox_get(txn, a->id, &entry);
    if (rc == -ENOENT) {
        return 0; /* dropped meanwhile (dlq drop / another process): nothing to record */
    }
    if (rc != 0) {
        return rc;
    }
    if (entry_creates(entry)) {
        /* Answered: remember_own_write notes the created id (on success). */
        rc = pending_create_set(txn, entry, a->id, false);
        if (rc != 0) {
            return rc;
        }
    }
    set_num(entry, "last_status", (double)o->status);
    set_str(entry, "last_error", o->error);
    unsigned attempts = (unsigned)entry_num(entry, "attempts", 1);
    unsigned max = (unsigned)entry_num(entry, "max_attempts", 8);
    if (o->kind == OUT_SUCCESS) {
        f->type = "action.succeeded";
        rc = outbox_remove(txn, a->id);
        if (o->created_new) {
            cJSON_AddBoolToObject(entry, "upsert_new", true);
        }
        if (rc == 0) {
            rc = remember_own_write(txn, entry, o->result, entry_str(entry, "location_id"));
        }
    } else if (o->kind == OUT_RETRY && attempts < max) {
        f->type = "action.failed";
        uint64_t base = (uint64_t)entry_num(entry, "backoff_ms", 5000);
        uint64_t cap = (uint64_t)entry_num(entry, "backoff_max_ms", 900000);
        uint64_t wait = util_backoff_ms(base ? base : 5000, cap ? cap : 900000, attempts - 1);
        if (o->retry_after_s > 0 && (uint64_t)o->retry_after_s * 1000 > wait) {
            wait = (uint64_t)o->retry_after_s * 1000;
        }
        set_str(entry, "state", "pending");
        set_num(entry, "next_at", (double)(f->now + wait));
        rc = outbox_update(txn, a->id, entry, f->now + wait);
    } else {
        f->type = "action.dead";
        if (o->kind == OUT_RETRY) {
            char why[600];
            snprintf(why, sizeof(why), "gave up after %u attempts: %s", attempts, o->error);
            str_copy(o->error, sizeof(o->error), why);
        }
        rc = outbox_bury(txn, a->id, entry, o->error);
    }
    if (rc == 0) {
        rc = append_action_event(txn, entry, f->type, o);
    }
    cJSON_Delete(entry);
    return rc;
}

static void attempt_done(struct attempt *a, struct outcome *o)
{
    struct dispatcher *d = a->d;
    /* Server text can echo a token or a secret: mask them before the text is
     * stored in the dead-letter store or an event, as the log does. */
    char clean[sizeof(o->error)];
    log_redact(o->error, clean, sizeof(clean));
    str_copy(o->error, sizeof(o->error), clean);
    FAILPOINT("dispatch.after_send_before_ack");
    struct finish_ctx f = {.a = a, .o = o, .now = clock_ms(), .type = ""};
    int rc = store_write(d->env.store, finish_txn, &f);
    if (rc != 0) {
        /* The lease makes the entry due again later: nothing is lost. */
        store_trouble(d, "record the outcome of", a->id, rc);
    } else {
        store_recovered(d);
        FAILPOINT("dispatch.after_ack");
        const char *rule = entry_str(a->entry, "rule");
        if (o->kind == OUT_SUCCESS) {
            log_info("dispatch", "rule %s: %s succeeded (HTTP %ld)", rule,
                     entry_str(a->entry, "action"), o->status);
        } else {
            log_warn("dispatch", "rule %s: %s %s: %s%s%s", rule, entry_str(a->entry, "action"),
                     strcmp(f.type, "action.dead") == 0 ? "moved to the dead-letter store"
                                                         : "failed, will retry",
                     o->error, o->trace_id[0] ? " traceId " : "", o->trace_id);
        }
    }
    cJSON_Delete(o->result);
    bool closing = d->closing;
    attempt_release(d, a); /* may free d when closing */
    if (!closing) {
        /* Not pump(d) here: a send that fails at once would recurse through it. */
        dispatcher_kick(d);
    }
}

static void classify_http(const cJSON *entry, const struct http_response *resp, struct outcome *o)
{
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(entry, "request");
    long s = resp->status;
    o->status = s;
    o->retry_after_s = resp->retry_after_s;
    cJSON *body = NULL;
    if (resp->body.len > 0) {
        json_parse(resp->body.data, resp->body.len, &body, NULL);
    }
    const char *trace = ghl_api_trace_id(body);
    if (trace != NULL) {
        str_copy(o->trace_id, sizeof(o->trace_id), trace);
    }
    char text[400];
    ghl_api_message(body, text, sizeof(text));
    bool is_delete = strcmp(entry_str(req, "method"), "DELETE") == 0;
    bool gone_ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(entry, "gone_ok"));
    if (resp->error == HTTP_E_AUTH) {
        /* Not sent; the credential needs a new login. Retry until then. */
        o->kind = OUT_RETRY;
        snprintf(o->error, sizeof(o->error), "%s", resp->error_text);
    } else if (resp->error == HTTP_E_REDIRECT) {
        o->kind = OUT_DEAD;
        snprintf(o->error, sizeof(o->error), "redirect to '%.300s' refused", resp->location);
    } else if (resp->error != 0 && s == 0) {
        o->kind = OUT_RETRY;
        snprintf(o->error, sizeof(o->error), "%s", resp->error_text[0] ? resp->error_text
                                                                        : http_strerror(resp->error));
    } else if (s >= 200 && s < 300) {
        o->kind = OUT_SUCCESS;
        const char *result = entry_str(entry, "result");
        if (body != NULL && *result != '\0') {
            cJSON *r = cJSON_DetachItemFromObjectCaseSensitive(body, result);
            o->result = r;
        }
        o->created_new = body != NULL && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "new"));
    } else if (is_delete && gone_ok && ghl_api_status_class(s) == GHL_STATUS_MISSING) {
        o->kind = OUT_SUCCESS; /* already gone: a retried delete has nothing left to do */
        snprintf(o->error, sizeof(o->error), "already gone (HTTP %ld)", s);
    } else if (ghl_api_status_class(s) == GHL_STATUS_RETRY) {
        o->kind = OUT_RETRY;
        snprintf(o->error, sizeof(o->error), "HTTP %ld%s%s", s, text[0] ? ": " : "", text);
    } else {
        o->kind = OUT_DEAD;
        snprintf(o->error, sizeof(o->error), "HTTP %ld%s%s", s, text[0] ? ": " : "", text);
    }
    cJSON_Delete(body);
}

static void on_http_done(struct http_response *resp, void *ud)
{
    struct attempt *a = ud;
    a->pending = NULL;
    a->transfer = NULL;
    struct outcome o;
    memset(&o, 0, sizeof(o));
    classify_http(a->entry, resp, &o);
    if (resp->error == HTTP_E_CANCELLED) {
        /* The shutdown grace ran out: leave the entry in flight; its lease brings it back. */
        attempt_release(a->d, a);
        return;
    }
    attempt_done(a, &o);
}

static void on_exec_done(const struct subproc_result *res, void *ud)
{
    struct attempt *a = ud;
    a->job = NULL;
    if (res->cancelled) {
        /* The shutdown grace ran out: the lease brings the entry back. */
        attempt_release(a->d, a);
        return;
    }
    struct outcome o;
    memset(&o, 0, sizeof(o));
    o.status = res->exit_status;
    if (res->error != 0) {
        o.kind = OUT_DEAD;
        snprintf(o.error, sizeof(o.error), "cannot start: %s", uv_strerror(res->error));
    } else if (res->timed_out) {
        o.kind = OUT_RETRY;
        snprintf(o.error, sizeof(o.error), "timed out");
    } else if (res->term_signal != 0) {
        o.kind = OUT_RETRY;
        snprintf(o.error, sizeof(o.error), "killed by signal %d", res->term_signal);
    } else if (res->exit_status == 0) {
        o.kind = OUT_SUCCESS;
    } else {
        o.kind = OUT_RETRY;
        snprintf(o.error, sizeof(o.error), "exit status %lld: %.200s",
                 (long long)res->exit_status, res->output);
    }
    /* Recorded even while stopping: running the program again after a
     * restart would do its work twice (dispatcher_drain). */
    attempt_done(a, &o);
}

static int send_ghl(struct dispatcher *d, struct attempt *a, const cJSON *req)
{
    struct location *loc = runtime_location(d, entry_str(a->entry, "location"));
    if (loc == NULL) {
        return -ENOENT;
    }
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(req, "body");
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    char tag[128];
    snprintf(tag, sizeof(tag), "rule:%s", entry_str(a->entry, "rule"));
    struct location_request lr = {
        .method = entry_str(req, "method"),
        .path = entry_str(req, "path"),
        .version = json_get_string(req, "version"),
        .body = text,
        .body_len = text ? strlen(text) : 0,
        .log_tag = tag,
    };
    int rc = location_submit(loc, LOCATION_POLL, &lr, on_http_done, a, &a->pending);
    free(text);
    return rc;
}

/* Frees header lines that may hold a secret, wiping them first. */
static void header_lines_free(char **lines)
{
    for (size_t i = 0; lines[i] != NULL; i++) {
        explicit_bzero(lines[i], strlen(lines[i]));
    }
    strv_free(lines);
}

/*
 * The request's header lines, with each secret header's value (see
 * add_secret_header) taken from the loaded config. NULL when a reference is
 * no longer configured (logged): the action cannot be sent as written.
 */
static char **header_lines(struct dispatcher *d, const cJSON *entry, const cJSON *req)
{
    const cJSON *headers = cJSON_GetObjectItemCaseSensitive(req, "headers");
    const cJSON *refs = cJSON_GetObjectItemCaseSensitive(req, "secret_headers");
    size_t n = (size_t)cJSON_GetArraySize(headers);
    char **lines = xcalloc(n + 2, sizeof(*lines));
    size_t k = 0;
    lines[k++] = xasprintf("Idempotency-Key: %s", entry_str(entry, "key"));
    const cJSON *h;
    cJSON_ArrayForEach(h, headers)
    {
        if (!cJSON_IsString(h)) {
            continue;
        }
        const char *value = h->valuestring;
        const char *ref = json_get_string(refs, h->string);
        if (ref != NULL && (value = config_header_secret(d->env.cfg, ref)) == NULL) {
            log_warn("dispatch",
                     "rule %s (outbox id %.0f): header %s = %s is not in the configuration any "
                     "more; the action goes to the dead-letter store",
                     entry_str(entry, "rule"), entry_num(entry, "id", 0), h->string, ref);
            header_lines_free(lines);
            return NULL;
        }
        lines[k++] = xasprintf("%s: %s", h->string, value);
    }
    lines[k] = NULL;
    return lines;
}

static int send_http(struct dispatcher *d, struct attempt *a, const cJSON *req)
{
    char **lines = header_lines(d, a->entry, req);
    if (lines == NULL) {
        return -ENOKEY;
    }
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(req, "body");
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    char tag[128];
    snprintf(tag, sizeof(tag), "rule:%s", entry_str(a->entry, "rule"));
    struct http_request hr = {
        .method = entry_str(req, "method"),
        .url = entry_str(req, "url"),
        .headers = (const char *const *)lines,
        .body = text,
        .body_len = text ? strlen(text) : 0,
        .log_tag = tag,
        .timeout_ms = (uint64_t)entry_num(a->entry, "timeout_ms", 0),
    };
    int rc = http_send(d->env.http, &hr, on_http_done, a, &a->transfer);
    free(text);
    header_lines_free(lines);
    /* http_send calls back even when it fails: never report an error here. */
    (void)rc;
    return 0;
}

static int send_exec(struct dispatcher *d, struct attempt *a, const cJSON *req)
{
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(req, "args");
    size_t n = (size_t)cJSON_GetArraySize(args);
    char **argv = xcalloc(n + 2, sizeof(*argv));
    argv[0] = xstrdup(entry_str(req, "command"));
    size_t k = 1;
    const cJSON *arg;
    cJSON_ArrayForEach(arg, args)
    {
        argv[k++] = xstrdup(cJSON_IsString(arg) ? arg->valuestring : "");
    }
    argv[k] = NULL;
    /* An allow-listed environment: nothing of pollen's own (tokens) leaks. */
    char *env[] = {
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "LANG=C.UTF-8",
        xasprintf("POLLEN_RULE=%s", entry_str(a->entry, "rule")),
        xasprintf("POLLEN_EVENT_ID=%s", entry_str(a->entry, "source")),
        xasprintf("POLLEN_IDEMPOTENCY_KEY=%s", entry_str(a->entry, "key")),
        NULL,
    };
    const char *stdin_json = entry_str(req, "stdin");
    int rc = subproc_run(d->env.loop, argv, env, stdin_json, strlen(stdin_json),
                       (uint64_t)entry_num(a->entry, "timeout_ms", 30000), on_exec_done, a,
                       &a->job);
    strv_free(argv);
    for (size_t i = 2; env[i] != NULL; i++) {
        free(env[i]);
    }
    return rc;
}

struct park_ctx {
    uint64_t id;
    int why;          /* the claim's error */
    uint64_t wait;    /* out */
    unsigned failures; /* out */
};

/* Moves the due time of an entry that could not be claimed, with a growing
 * backoff and a counter in the entry ("claim_failures"). */
static int park_txn(struct store_txn *txn, void *ud)
{
    struct park_ctx *p = ud;
    cJSON *entry = NULL;
    int rc = outbox_get(txn, p->id, &entry);
    if (rc != 0) {
        return rc;
    }
    p->failures = (unsigned)entry_num(entry, "claim_failures", 0) + 1;
    uint64_t cap = (uint64_t)entry_num(entry, "backoff_max_ms", 0);
    p->wait = util_backoff_ms(STORE_BACKOFF_MIN_MS, cap > STORE_BACKOFF_MIN_MS ? cap : STORE_BACKOFF_MAX_MS,
                              p->failures - 1);
    set_num(entry, "claim_failures", p->failures);
    char why[200];
    snprintf(why, sizeof(why), "cannot claim: %s", store_strerror(p->why));
    set_str(entry, "last_error", why);
    rc = outbox_update(txn, p->id, entry, clock_ms() + p->wait);
    cJSON_Delete(entry);
    return rc;
}

/* A claim failed: park the entry alone when the store still takes that
 * small write, so the rest of the outbox keeps flowing. */
static int park(struct dispatcher *d, uint64_t id, int why)
{
    struct park_ctx p = {.id = id, .why = why};
    int rc = store_write(d->env.store, park_txn, &p);
    if (rc == 0) {
        char msg[300];
        snprintf(msg, sizeof(msg), "cannot claim action %llu: %s; trying it again in %llu ms "
                                   "(%u failed claim(s))",
                 (unsigned long long)id, store_strerror(why), (unsigned long long)p.wait,
                 p.failures);
        log_trouble(d, msg);
    }
    return rc;
}

struct quarantine_ctx {
    uint64_t id;
    uint64_t due_at;
    int why;        /* the error that made the entry unreadable */
    bool buried;    /* out: false when the entry was already gone */
};

static int quarantine_txn(struct store_txn *txn, void *ud)
{
    struct quarantine_ctx *q = ud;
    struct outcome o = {.kind = OUT_DEAD};
    snprintf(o.error, sizeof(o.error), "the stored entry cannot be read (%s): it cannot be sent",
             store_strerror(q->why));
    cJSON *stub = NULL;
    int rc = outbox_quarantine(txn, q->id, q->due_at, o.error, &stub);
    q->buried = stub != NULL;
    if (rc == 0 && stub != NULL) {
        rc = append_action_event(txn, stub, "action.dead", &o);
    }
    cJSON_Delete(stub);
    return rc;
}

/* An entry that no longer parses can never be sent: dead-letter it (a stub
 * with the reason, listed and dropped with `pollen dlq`) instead of trying
 * to claim it again and again. A due index key without its entry is removed. */
static int quarantine(struct dispatcher *d, uint64_t id, uint64_t due_at, int why)
{
    struct quarantine_ctx q = {.id = id, .due_at = due_at, .why = why};
    int rc = store_write(d->env.store, quarantine_txn, &q);
    if (rc == 0 && q.buried) {
        log_warn("dispatch", "action %llu moved to the dead-letter store: its stored entry "
                             "cannot be read (%s)",
                 (unsigned long long)id, store_strerror(why));
    }
    return rc;
}

static void send_attempt(struct dispatcher *d, struct attempt *a)
{
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(a->entry, "request");
    const char *kind = entry_str(a->entry, "kind");
    int rc;
    if (strcmp(kind, "ghl") == 0) {
        rc = send_ghl(d, a, req);
    } else if (strcmp(kind, "http") == 0) {
        rc = send_http(d, a, req);
    } else {
        rc = send_exec(d, a, req);
    }
    if (rc != 0) {
        struct outcome o = {.kind = OUT_DEAD};
        snprintf(o.error, sizeof(o.error), "cannot send: %s", strerror(rc < 0 ? -rc : rc));
        attempt_done(a, &o);
    }
}

/* Claims entry id (due at due_at) and sends it. Returns 0, or the store error
 * that kept it from being claimed (claiming is then paused: store_trouble). */
static int start_attempt(struct dispatcher *d, uint64_t id, uint64_t due_at)
{
    struct claim_ctx c = {.id = id, .now = clock_ms()};
    int rc = store_write(d->env.store, claim_txn, &c);
    if (rc == -EBADMSG || rc == -ENOENT) {
        rc = quarantine(d, id, due_at, rc);
    } else if (rc != 0 && park(d, id, rc) == 0) {
        cJSON_Delete(c.entry);
        return 0;
    }
    if (rc != 0) {
        cJSON_Delete(c.entry);
        store_trouble(d, "claim", id, rc);
        return rc;
    }
    store_recovered(d);
    if (c.entry == NULL) {
        return 0; /* quarantined */
    }
    if (c.buried) {
        log_warn("dispatch", "rule %s: %s moved to the dead-letter store: the engine stopped "
                             "during each of its attempts",
                 entry_str(c.entry, "rule"), entry_str(c.entry, "action"));
        cJSON_Delete(c.entry);
        return 0;
    }
    FAILPOINT("dispatch.after_inflight_commit");
    struct attempt *a = xcalloc(1, sizeof(*a));
    a->d = d;
    a->id = id;
    a->entry = c.entry;
    a->next = d->inflight;
    d->inflight = a;
    d->ninflight++;
    send_attempt(d, a);
    return 0;
}

static void timer_cb(uv_timer_t *t)
{
    pump(t->data);
}

static unsigned max_inflight(const struct dispatcher *d)
{
    unsigned max = d->env.concurrency ? d->env.concurrency : DEFAULT_CONCURRENCY;
    return max > MAX_CONCURRENCY ? MAX_CONCURRENCY : max;
}

/* The ids pump must not pick: those in flight and those it already tried in
 * this turn (never the same id twice in one turn). */
static size_t skip_list(const struct dispatcher *d, const uint64_t *tried, size_t ntried,
                        uint64_t *skip)
{
    size_t n = 0;
    for (const struct attempt *a = d->inflight; a != NULL && n < MAX_CONCURRENCY; a = a->next) {
        skip[n++] = a->id;
    }
    for (size_t i = 0; i < ntried; i++) {
        skip[n++] = tried[i];
    }
    return n;
}

/*
 * Claims due entries up to the concurrency limit, at most PUMP_BATCH per
 * turn, then re-arms the timer: at once after a full batch (yielding to the
 * rest of the loop first), at the next due time, or when a store-trouble
 * pause ends.
 */
static void pump(struct dispatcher *d)
{
    if (d->stopping || d->closing || d->env.dry_run != NULL) {
        return;
    }
    uint64_t now = clock_ms();
    uint64_t delay = POLL_INTERVAL_MS;
    uint64_t next_at = 0;
    uint64_t tried[PUMP_BATCH];
    size_t ntried = 0;
    while (now >= d->blocked_until && d->ninflight < max_inflight(d)) {
        if (ntried == PUMP_BATCH) {
            delay = 0;
            break;
        }
        uint64_t skip[MAX_CONCURRENCY + PUMP_BATCH];
        size_t nskip = skip_list(d, tried, ntried, skip);
        struct store_txn *txn = NULL;
        if (store_txn_begin(d->env.store, false, &txn) != 0) {
            break;
        }
        uint64_t id = 0;
        int rc = outbox_next_due(txn, now, d->horizon, skip, nskip, &id, &next_at);
        store_txn_abort(txn);
        if (rc != 0) {
            break;
        }
        tried[ntried++] = id;
        uint64_t due_at = next_at;
        next_at = 0;
        if (start_attempt(d, id, due_at) != 0) {
            break;
        }
        now = clock_ms();
    }
    now = clock_ms();
    if (d->blocked_until > now) {
        next_at = d->blocked_until;
        delay = POLL_INTERVAL_MS;
    }
    if (next_at != 0) {
        uint64_t until = next_at > now ? next_at - now : 0;
        if (until < delay) {
            delay = until;
        }
    }
    if (!uv_is_closing((uv_handle_t *)&d->timer)) {
        uv_timer_start(&d->timer, timer_cb, delay, 0);
    }
}

/* ---- lifecycle ---------------------------------------------------------- */

struct dispatcher *dispatcher_create(const struct dispatcher_env *env)
{
    struct dispatcher *d = xcalloc(1, sizeof(*d));
    d->env = *env;
    d->horizon = due_horizon(env->cfg);
    uv_timer_init(env->loop, &d->timer);
    d->timer.data = d;
    return d;
}

void dispatcher_start(struct dispatcher *d)
{
    uv_timer_start(&d->timer, timer_cb, 0, 0);
}

void dispatcher_kick(struct dispatcher *d)
{
    if (d != NULL && !d->stopping && !d->closing && !uv_is_closing((uv_handle_t *)&d->timer)) {
        uv_timer_start(&d->timer, timer_cb, 0, 0);
    }
}

/* Cancels every attempt in flight; their callbacks run later, from the loop. */
static void cancel_inflight(struct dispatcher *d)
{
    for (struct attempt *a = d->inflight; a != NULL; a = a->next) {
        if (a->cancelled) {
            continue;
        }
        a->cancelled = true;
        if (a->pending != NULL) {
            location_cancel(a->pending);
        } else if (a->transfer != NULL) {
            http_cancel(a->transfer);
        } else if (a->job != NULL) {
            subproc_cancel(a->job);
        }
    }
}

void dispatcher_stop(struct dispatcher *d)
{
    if (d == NULL) {
        return;
    }
    d->stopping = true;
    uv_timer_stop(&d->timer);
    cancel_inflight(d);
}

static void grace_over(uv_timer_t *t)
{
    struct dispatcher *d = t->data;
    log_warn("dispatch", "the shutdown grace is over: %zu action(s) still in flight are left "
                         "for their lease (sent again after the restart)",
             d->ninflight);
    cancel_inflight(d);
}

void dispatcher_drain(struct dispatcher *d, uint64_t grace_ms, void (*done)(void *ud), void *ud)
{
    d->stopping = true;
    d->on_drained = done;
    d->drained_ud = ud;
    if (d->ninflight == 0) {
        uv_timer_start(&d->timer, drained_cb, 0, 0);
        return;
    }
    log_info("dispatch", "waiting up to %llu ms for %zu action(s) in flight",
             (unsigned long long)grace_ms, d->ninflight);
    uv_timer_start(&d->timer, grace_over, grace_ms, 0);
}

/* Frees the dispatcher once its timer is closed and no attempt can call back. */
static void maybe_free(struct dispatcher *d)
{
    if (d->closing && d->timer_closed && d->ninflight == 0) {
        free(d);
    }
}

static void closed_cb(uv_handle_t *h)
{
    struct dispatcher *d = h->data;
    d->timer_closed = true;
    maybe_free(d);
}

void dispatcher_close(struct dispatcher *d)
{
    if (d == NULL || d->closing) {
        return;
    }
    dispatcher_stop(d);
    d->closing = true;
    uv_close((uv_handle_t *)&d->timer, closed_cb);
}

bool dispatcher_idle(const struct dispatcher *d)
{
    return d == NULL || d->ninflight == 0;
}

bool dispatcher_drained(const struct dispatcher *d)
{
    if (d == NULL || d->env.dry_run != NULL) {
        return true;
    }
    if (d->ninflight > 0) {
        return false;
    }
    struct store_txn *txn = NULL;
    if (store_txn_begin(d->env.store, false, &txn) != 0) {
        return true;
    }
    uint64_t id = 0;
    uint64_t next_at = 0;
    int rc = outbox_next_due(txn, clock_ms(), d->horizon, NULL, 0, &id, &next_at);
    store_txn_abort(txn);
    return rc != 0;
}

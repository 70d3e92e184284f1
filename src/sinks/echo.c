/*
 * echo: the echo detector (own writes and pending creates); see dispatch.h
 * ("Own writes") and sinks_int.h. The ghl sink records through its claimed
 * and recorded hooks; route.c asks dispatch__is_own_write of every event.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "diff.h"
#include "json.h"
#include "sinks_int.h"
#include "store.h"
#include "util.h"

/* An own-write record older than this no longer explains a change. */
#define OWN_WRITE_TTL_MS (60 * 60 * 1000)

/* ---- own writes --------------------------------------------------------
 *
 * For every record an action wrote, STORE_OWN keeps what pollen set:
 *   {"at": ms, "written": {field: value...}, "created": bool, "deleted": bool}
 * `written` holds the request's body fields (what pollen chose), replaced by
 * the response's list for list results (tags, followers: the resulting set).
 * A write to a record whose resource says touches_parent (the catalog's
 * resources/ files) "touches" its parent (the parent's derived fields move)
 * with nothing written. An event is pollen's echo when:
 *   created: pollen created that record;  deleted: pollen deleted it;
 *   updated: every changed field, apart from the ones the API derives (the
 *            resource's `derived`), is one pollen wrote, with the value it
 *            wrote (list fields compared as the resource's list.FIELD says).
 * So an external change made at the same time is never swallowed.
 * The resource facts come from the catalog: route.c passes the trigger's
 * definition; the claim and outcome hooks read what the ghl sink copied into
 * the outbox entry when it rendered it (parent_resource, parent_id,
 * touches_parent; see entry_parent for entries older than those).
 */

static char *own_key(const char *location_id, const char *resource, const char *record_id,
                     size_t *len)
{
    char *k = xasprintf("%s\x1f%s\x1f%s", location_id, resource, record_id);
    *len = strlen(k);
    return k;
}

/* The value a written list element carries: its first member of lf->written. */
static const cJSON *written_value(const struct catalog_list_field *lf, const cJSON *w)
{
    for (size_t i = 0; lf->written[i] != NULL; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(w, lf->written[i]);
        if (v != NULL) {
            return v;
        }
    }
    return NULL;
}

/*
 * A list field written in one shape and read back in another (lf): each
 * written element must be there, found by its key, with its value in the
 * member lf->read. The list read back may hold elements pollen did not write.
 */
static bool list_field_echo(const struct catalog_list_field *lf, const cJSON *mine,
                            const cJSON *now)
{
    if (!cJSON_IsArray(mine) || !cJSON_IsArray(now)) {
        return false;
    }
    const cJSON *w;
    cJSON_ArrayForEach(w, mine)
    {
        const char *id = json_get_string(w, lf->key);
        const cJSON *want = written_value(lf, w);
        bool found = false;
        const cJSON *n;
        cJSON_ArrayForEach(n, now)
        {
            const char *nid = json_get_string(n, lf->key);
            if (id != NULL && nid != NULL && strcmp(id, nid) == 0) {
                found = json_equal(want, cJSON_GetObjectItemCaseSensitive(n, lf->read));
                break;
            }
        }
        if (!found) {
            return false;
        }
    }
    return true;
}

/* res (borrowed, may be NULL): the facts of the record's resource. */
static bool updated_is_echo(const struct catalog_resource *res, const cJSON *saved,
                            const cJSON *changes)
{
    const cJSON *written = cJSON_GetObjectItemCaseSensitive(saved, "written");
    const cJSON *change;
    cJSON_ArrayForEach(change, changes)
    {
        if (catalog_resource_derived(res, change->string)) {
            continue;
        }
        const cJSON *mine = cJSON_GetObjectItemCaseSensitive(written, change->string);
        const cJSON *now = cJSON_GetObjectItemCaseSensitive(change, "new");
        if (mine == NULL || now == NULL) {
            return false;
        }
        const struct catalog_list_field *lf = catalog_resource_list(res, change->string);
        bool same = lf != NULL ? list_field_echo(lf, mine, now) : json_equal(mine, now);
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
            expired = expired && now > (uint64_t)sink_num(p, "at", 0) + OWN_WRITE_TTL_MS;
        }
    } else {
        expired = now > (uint64_t)sink_num(v, "at", 0) + OWN_WRITE_TTL_MS;
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
 *    (location, resource, "+" parent id or ""): the body sent and the
 *    outbox id. A `created` event under that parent whose record has every
 *    body field it carries with the value sent is the echo. The outcome txn
 *    removes the pending create, whatever the outcome;
 *  - the touch of the parent a write goes under (only derived fields such
 *    as an update time may move, so a stale touch never hides a real change).
 * Updates of a record's own fields are still noted after the response: a
 * mark made before could outlive a failed write and hide an equal change.
 */

/* The key of the pending creates of resource under parent_id (NULL: a
 * resource without a parent, or a write that names none: ""). */
static char *pending_key(const char *location_id, const char *resource, const char *parent_id,
                         size_t *len)
{
    char *id = xasprintf("+%s", parent_id != NULL ? parent_id : "");
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
                              const struct catalog_trigger *def, const cJSON *record,
                              const char *trigger)
{
    const struct catalog_resource *res = def->res;
    const char *parent_id = NULL;
    if (res != NULL && res->parent_field != NULL) {
        parent_id = json_get_string(record, res->parent_field);
    }
    size_t klen = 0;
    char *key = pending_key(location_id, def->resource, parent_id, &klen);
    cJSON *list = pending_load(txn, key, klen);
    uint64_t now = dispatch_clock_ms();
    bool own = false;
    bool dirty = false;
    for (int i = cJSON_GetArraySize(list) - 1; i >= 0; i--) {
        cJSON *p = cJSON_GetArrayItem(list, i);
        if (now > (uint64_t)sink_num(p, "at", 0) + OWN_WRITE_TTL_MS) {
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

/*
 * The parent an entry's write goes under, as the ghl sink rendered it
 * (parent_resource, parent_id, touches_parent). Entries enqueued before those
 * members existed carry only LEGACY_PARENT_KEY: the prefix of that key names
 * their parent resource, every such write touched it, and a record of that
 * resource itself has no parent.
 */
#define LEGACY_PARENT_KEY "contact_id"

struct parent {
    const char *id; /* NULL: none */
    char resource[INI_NAME_MAX + 1];
    bool touches;
};

static struct parent entry_parent(const cJSON *entry)
{
    struct parent p = {0};
    const char *resource = json_get_string(entry, "parent_resource");
    const char *id = json_get_string(entry, "parent_id");
    if (id != NULL && resource != NULL) {
        snprintf(p.resource, sizeof(p.resource), "%s", resource);
        p.touches = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(entry, "touches_parent"));
        p.id = id;
        return p;
    }
    id = json_get_string(entry, LEGACY_PARENT_KEY);
    if (id == NULL || resource != NULL) {
        return p;
    }
    snprintf(p.resource, sizeof(p.resource), "%.*s", (int)(sizeof(LEGACY_PARENT_KEY) - 4),
             LEGACY_PARENT_KEY);
    if (strcmp(p.resource, sink_str(entry, "target_resource")) != 0) {
        p.id = id;
        p.touches = true;
    }
    return p;
}

/* A create of pollen's: a POST that names no existing record (upserts too). */
static bool entry_creates(const cJSON *entry)
{
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(entry, "request");
    return strcmp(sink_str(req, "method"), "POST") == 0 &&
           json_get_string(entry, "target_id") == NULL &&
           *sink_str(entry, "target_resource") != '\0';
}

/* Adds (add) or removes the pending create of outbox entry id. */
static int pending_create_set(struct store_txn *txn, const cJSON *entry, uint64_t id, bool add)
{
    size_t klen = 0;
    char *key = pending_key(sink_str(entry, "location_id"), sink_str(entry, "target_resource"),
                            entry_parent(entry).id, &klen);
    cJSON *list = pending_load(txn, key, klen);
    for (int i = cJSON_GetArraySize(list) - 1; i >= 0; i--) {
        if ((uint64_t)sink_num(cJSON_GetArrayItem(list, i), "id", 0) == id) {
            cJSON_DeleteItemFromArray(list, i);
        }
    }
    if (add) {
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(entry, "request");
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "id", (double)id);
        cJSON_AddNumberToObject(p, "at", (double)dispatch_clock_ms());
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
int dispatch__echo_claimed(struct store_txn *txn, const cJSON *entry, uint64_t id)
{
    const char *resource = sink_str(entry, "target_resource");
    struct parent parent = entry_parent(entry);
    const char *location_id = sink_str(entry, "location_id");
    int rc = 0;
    if (entry_creates(entry)) {
        rc = pending_create_set(txn, entry, id, true);
    }
    if (rc == 0 && parent.id != NULL && parent.touches && *resource != '\0') {
        rc = note_write(txn, location_id, parent.resource, parent.id, NULL, false, false);
    }
    return rc;
}

/* Is this event the echo of a write pollen made, not yet seen by this trigger?
 * Marks the record seen by it if so (see seen_by). */
bool dispatch__is_own_write(struct store_txn *txn, const char *location_id,
                            const struct catalog_trigger *def, const char *record_id,
                            const char *type, const cJSON *changes, const cJSON *record,
                            const char *trigger)
{
    const char *resource = def->resource;
    size_t klen = 0;
    char *key = own_key(location_id, resource, record_id, &klen);
    const void *val = NULL;
    size_t vlen = 0;
    if (store_get(txn, STORE_OWN, key, klen, &val, &vlen) != 0) {
        free(key);
        /* Not noted yet: maybe a create whose response has not arrived. */
        return strcmp(type, "created") == 0 && *resource != '\0' &&
               is_pending_create(txn, location_id, def, record, trigger);
    }
    cJSON *saved = NULL;
    bool own = false;
    bool expired = true;
    if (json_parse(val, vlen, &saved, NULL) == 0) {
        expired = dispatch_clock_ms() > (uint64_t)sink_num(saved, "at", 0) + OWN_WRITE_TTL_MS;
        if (expired || seen_by(saved, trigger)) {
            own = false; /* this trigger has had its echo: a change now is someone else's */
        } else if (strcmp(type, "created") == 0) {
            own = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(saved, "created"));
        } else if (strcmp(type, "deleted") == 0) {
            own = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(saved, "deleted"));
        } else {
            own = updated_is_echo(def->res, saved, changes);
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
    sink_set_num(saved, "at", (double)dispatch_clock_ms());
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
    const char *resource = sink_str(entry, "target_resource");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(entry, "request");
    const char *method = sink_str(req, "method");
    const char *path = sink_str(req, "path");
    const char *target = json_get_string(entry, "target_id");
    const char *result_name = sink_str(entry, "result");
    struct parent parent = entry_parent(entry);
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
    /* Writes that touch the parent move its derived fields: nothing written. */
    if (rc == 0 && parent.id != NULL && parent.touches) {
        rc = note_write(txn, location_id, parent.resource, parent.id, NULL, false, false);
    }
    return rc;
}

/* In the outcome txn: the pending create is answered; on success, what
 * was written is noted. */
int dispatch__echo_recorded(struct store_txn *txn, const cJSON *entry, uint64_t id,
                            const struct sink_outcome *o)
{
    int rc = 0;
    if (entry_creates(entry)) {
        /* Answered: remember_own_write records the created id (on success). */
        rc = pending_create_set(txn, entry, id, false);
    }
    if (rc == 0 && o->kind == SINK_SUCCESS) {
        rc = remember_own_write(txn, entry, o->result, sink_str(entry, "location_id"));
    }
    return rc;
}

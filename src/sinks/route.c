/*
 * route: dispatch_on_event (see dispatch.h), inside the event's
 * transaction: the echo check, rule matching, rendering through the rule's
 * sink, and the enqueue (or, for an action that cannot be rendered, its
 * dead letter).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "condition.h"
#include "config.h"
#include "event.h"
#include "json.h"
#include "location.h"
#include "log.h"
#include "outbox.h"
#include "registry.h"
#include "sha256.h"
#include "sinks_int.h"
#include "util.h"

/* The deepest entry json_parse can read back (CJSON_NESTING_LIMIT). */
#define STORED_MAX_DEPTH 1000

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
    if (strcmp(type, "touched") == 0) {
        return EVENT_TYPE_TOUCHED;
    }
    return 0;
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
static cJSON *check_storable(struct sink_render *r, cJSON *entry, cJSON *req)
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
             rule->name, sink_str(event, "id"), sink_str(event, "trigger"),
             sink_str(event, "record_id"), err);
    if (d->env.dry_run == NULL) {
        return;
    }
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "rule", rule->name);
    cJSON_AddStringToObject(line, "action", rule->action);
    cJSON_AddStringToObject(line, "source", sink_str(event, "id"));
    cJSON_AddStringToObject(line, "trigger", sink_str(event, "trigger"));
    cJSON_AddStringToObject(line, "record_id", sink_str(event, "record_id"));
    char *why = xasprintf("cannot render the action: %s", err);
    cJSON_AddStringToObject(line, "error", why);
    free(why);
    char *text = cJSON_PrintUnformatted(line);
    fprintf(d->env.dry_run, "%s\n", text);
    fflush(d->env.dry_run);
    free(text);
    cJSON_Delete(line);
}

/*
 * The companyId a {company} binding sends for loc: its runtime location's
 * (location_company_id: configured, else the OAuth installation's); the
 * configured one where there is no runtime location (a test without them).
 */
static const char *company_of(const struct dispatcher *d, const struct config_location *loc)
{
    if (loc == NULL) {
        return NULL;
    }
    struct location *runtime = dispatch__runtime_location(&d->env, loc->name);
    return runtime != NULL ? location_company_id(runtime) : loc->company_id;
}

static int enqueue(struct store_txn *txn, struct dispatcher *d, const struct config_rule *rule,
                   const cJSON *event)
{
    /* A rule on a `location = *` trigger acts on the location of the event. */
    const struct config_location *loc =
        config_rule_location(d->env.cfg, rule, sink_str(event, "trigger"));
    const struct sink *sink = sink_for_rule(rule->kind);
    struct sink_render r = {
        .event = event, .now = util_wall_ms(), .loc = loc, .company_id = company_of(d, loc)};
    char key[96];
    char when[32];
    idempotency_key(sink_str(event, "id"), rule->name, key);
    util_iso8601(r.now, when);
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddStringToObject(entry, "key", key);
    cJSON_AddStringToObject(entry, "rule", rule->name);
    cJSON_AddStringToObject(entry, "action", rule->action);
    cJSON_AddStringToObject(entry, "kind", sink->name);
    cJSON_AddStringToObject(entry, "source", sink_str(event, "id"));
    cJSON_AddStringToObject(entry, "trigger", sink_str(event, "trigger"));
    cJSON_AddStringToObject(entry, "location", loc ? loc->name : "");
    cJSON_AddStringToObject(entry, "location_id", loc ? loc->id : "");
    cJSON_AddStringToObject(entry, "created", when);
    cJSON_AddStringToObject(entry, "state", "pending");
    cJSON_AddNumberToObject(entry, "max_attempts", rule->max_attempts ? rule->max_attempts : 8);
    cJSON_AddNumberToObject(entry, "backoff_ms", (double)rule->backoff_ms);
    cJSON_AddNumberToObject(entry, "backoff_max_ms", (double)rule->backoff_max_ms);
    cJSON_AddNumberToObject(entry, "timeout_ms", (double)rule->timeout_ms);
    cJSON *req = sink->render(&r, rule, entry);
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
        rc = outbox_enqueue(txn, entry, dispatch_clock_ms(), &id);
        if (rc == 0) {
            struct sink_outcome o = {.kind = SINK_DEAD};
            snprintf(o.error, sizeof(o.error), "cannot render the action: %s", r.err);
            rc = outbox_bury(txn, id, entry, o.error);
            if (rc == 0) {
                rc = dispatch__action_event(txn, entry, "action.dead", &o);
            }
        }
    } else {
        rc = outbox_enqueue(txn, entry, dispatch_clock_ms(), NULL);
    }
    cJSON_Delete(entry);
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
    const cJSON *record = cJSON_GetObjectItemCaseSensitive(event, "record");
    /* Echoes are HighLevel's so far: an [api] trigger has no location. */
    if (tc->location != NULL && dispatch__is_own_write(txn, tc->location->id, tc->def, record_id, type, changes, record,
                               trigger)) {
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

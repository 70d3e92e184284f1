/*
 * sink_ghl: the "ghl" sink, HighLevel catalog actions. Renders a rule's
 * catalog action (path parameters as record ids, query parameters as text,
 * the catalog's fixed path., query. and body. bindings,
 * body fields coerced to the catalog's types), sends it through the
 * location's queue (sharing its rate budget), and classifies the response
 * as sink_http does. Its hooks keep the echo detector (echo.c) informed:
 * only this sink writes records.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "api.h"
#include "url.h"
#include "catalog.h"
#include "config.h"
#include "diff.h"
#include "json.h"
#include "location.h"
#include "log.h"
#include "secret.h"
#include "sinks_int.h"
#include "template.h"
#include "util.h"

struct location *dispatch__runtime_location(const struct dispatcher_env *env, const char *name)
{
    for (size_t i = 0; env->locations != NULL && i < env->cfg->nlocations; i++) {
        if (strcmp(env->cfg->locations[i].name, name) == 0) {
            return env->locations[i];
        }
    }
    return NULL;
}

/* v's text as type by the catalog's one rule set (catalog_value_coerce);
 * consumes v. NULL + err (prefixed with name) when it does not fit. */
static cJSON *coerce_text(cJSON *v, enum catalog_type type, const char *name, char *err,
                          size_t errlen)
{
    cJSON *out = NULL;
    char why[200];
    if (catalog_value_coerce(type, v->valuestring, &out, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s: %s", name, why);
    }
    cJSON_Delete(v);
    return out;
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
        char *text = sink_value_text(v);
        cJSON_Delete(v);
        cJSON *s = cJSON_CreateString(text);
        free(text);
        return s;
    }
    case CATALOG_BOOLEAN: {
        if (cJSON_IsBool(v)) {
            return v;
        }
        if (cJSON_IsString(v)) {
            return coerce_text(v, type, name, err, errlen);
        }
        break;
    }
    case CATALOG_INTEGER:
    case CATALOG_NUMBER: {
        if (cJSON_IsNumber(v) || cJSON_IsRaw(v)) {
            return v; /* Raw: an integer past 2^53, sent with its digits (json.h) */
        }
        if (cJSON_IsString(v)) {
            return coerce_text(v, type, name, err, errlen);
        }
        break;
    }
    case CATALOG_STRING_LIST: {
        if (cJSON_IsString(v) && literal) {
            return coerce_text(v, type, name, err, errlen);
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
                char *text = sink_value_text(item);
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
            return coerce_text(v, type, name, err, errlen);
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

/*
 * The text a fixed binding (body., query. or path.NAME) sends: the
 * location's id for {location}, its companyId for {company} (render_catalog
 * checked it is known), else the value as written. Every binding is
 * resolved here, so a new placeholder is one more case in one place.
 */
static const char *binding_text(const struct catalog_binding *b, const struct sink_render *r)
{
    if (b->is_location) {
        return r->loc->id;
    }
    return b->is_company ? r->company_id : b->value;
}

static const struct catalog_binding *path_binding(const struct catalog_action *def,
                                                  const char *name)
{
    for (size_t i = 0; i < def->npath_bind; i++) {
        if (strcmp(def->path_bind[i].name, name) == 0) {
            return &def->path_bind[i];
        }
    }
    return NULL;
}

/* r->err for path parameter name whose rendered text is not a record id. An
 * empty one most often comes from a field the record does not have: the
 * expression is named so the user sees which one. */
static void bad_id(struct sink_render *r, const char *name, const struct config_rule_param *p,
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

/* The path parameter naming the parent of the record an action writes
 * (its resource's parent_field), or NULL. */
static const char *parent_param(const struct catalog_action *def)
{
    const struct catalog_resource *res = def->target_res;
    return res != NULL && res->parent != NULL ? res->parent_field : NULL;
}

struct path_ctx {
    struct sink_render *r;
    const struct config_rule *rule;
    const char *parent;
    char **target_id;
    char **parent_id;
};

/* catalog_path_lookup for an action: a fixed path.NAME binding, else the
 * rule's parameter rendered, which must be a safe record id (r->err says
 * why not). Notes the target's and the parent's ids on the way. */
static char *path_lookup(void *ud, const char *name, char *err, size_t errlen)
{
    struct path_ctx *c = ud;
    struct sink_render *r = c->r;
    const struct catalog_action *def = c->rule->def;
    const struct catalog_binding *bound = path_binding(def, name);
    (void)err;
    (void)errlen; /* err is r->err: bad_id writes it */
    if (bound != NULL) {
        return xstrdup(binding_text(bound, r));
    }
    const struct config_rule_param *p = rule_param(c->rule, name);
    cJSON *v = p ? sink_render_param(r, p) : NULL;
    char *text = v ? sink_value_text(v) : NULL;
    cJSON_Delete(v);
    if (text == NULL || !diff_valid_record_id(text)) {
        if (r->err[0] == '\0') {
            bad_id(r, name, p, text);
        }
        free(text);
        return NULL;
    }
    if (def->target != NULL && strcmp(def->target, name) == 0) {
        free(*c->target_id);
        *c->target_id = xstrdup(text);
    }
    if (c->parent != NULL && strcmp(name, c->parent) == 0 && *c->parent_id == NULL) {
        *c->parent_id = xstrdup(text);
    }
    return text;
}

/* Expands the action's path (catalog_path_expand); each parameter must be a
 * safe record id. *target_id and *parent_id (owned) get the target's and the
 * parent's ids. NULL with r->err set on failure. */
static char *render_path(struct sink_render *r, const struct config_rule *rule, char **target_id,
                         char **parent_id)
{
    struct path_ctx c = {.r = r,
                         .rule = rule,
                         .parent = parent_param(rule->def),
                         .target_id = target_id,
                         .parent_id = parent_id};
    char *path = NULL;
    if (catalog_path_expand(rule->def->path, path_lookup, &c, &path, r->err, sizeof(r->err)) != 0) {
        return NULL;
    }
    return path;
}

/*
 * The action's query parameters (param.NAME = query ...) as {name: text},
 * in catalog order; NULL when there are none, or on error (r->err set).
 * A parameter the rule does not set, or that renders nothing, is left out
 * (unless required). The values are sent percent-encoded by the location
 * (target_build_url), so record text cannot add parameters.
 */
static cJSON *render_query(struct sink_render *r, const struct config_rule *rule, bool *failed)
{
    const struct catalog_action *def = rule->def;
    cJSON *query = NULL;
    *failed = false;
    for (size_t i = 0; i < def->nquery; i++) {
        if (query == NULL) {
            query = cJSON_CreateObject();
        }
        cJSON_AddStringToObject(query, def->query[i].name, binding_text(&def->query[i], r));
    }
    for (size_t i = 0; i < def->nparams; i++) {
        const struct catalog_param *cp = &def->params[i];
        const struct config_rule_param *p =
            cp->where == CATALOG_QUERY ? rule_param(rule, cp->name) : NULL;
        if (p == NULL) {
            continue;
        }
        cJSON *v = sink_render_param(r, p);
        if (v == NULL || (cJSON_IsNull(v) && cp->required)) {
            if (v != NULL) {
                snprintf(r->err, sizeof(r->err), "%s: required, but '%.120s' rendered nothing",
                         cp->name, p->value);
            }
            cJSON_Delete(v);
            cJSON_Delete(query);
            *failed = true;
            return NULL;
        }
        if (!cJSON_IsNull(v)) {
            char *text = sink_value_text(v);
            if (query == NULL) {
                query = cJSON_CreateObject();
            }
            cJSON_AddStringToObject(query, cp->name, text);
            free(text);
        }
        cJSON_Delete(v);
    }
    return query;
}

/* A body.NAME (always) or default.NAME (only when body has no NAME yet) member. */
static void add_binding(cJSON *body, const struct catalog_binding *b,
                        const struct sink_render *r, bool always)
{
    if (!always && cJSON_GetObjectItemCaseSensitive(body, b->name) != NULL) {
        return;
    }
    if (b->is_json) {
        cJSON *v = NULL;
        json_parse(b->value, strlen(b->value), &v, NULL);
        cJSON_AddItemToObject(body, b->name, v ? v : cJSON_CreateNull());
    } else {
        cJSON_AddStringToObject(body, b->name, binding_text(b, r));
    }
}

/* What a secret field's value is stored and printed as (see secret_body). */
#define SECRET_MASK "***"

/*
 * A secret field (M14) is stored masked, with its reference (env:VAR or
 * file:PATH, never the value) in request.secret_fields; secret_body reads
 * the value when the request is sent, so the outbox, the dead letters and
 * --dry-run never hold it.
 */
static void add_secret_field(cJSON *body, cJSON **secrets, const struct config_rule_param *p)
{
    if (*secrets == NULL) {
        *secrets = cJSON_CreateObject();
    }
    cJSON_AddStringToObject(body, p->name, SECRET_MASK);
    cJSON_AddStringToObject(*secrets, p->name, p->value);
}

/*
 * Does a nullable field's rendered value v mean JSON null? The literal
 * `null` always does; an expression that renders null does for a required
 * field only (an optional one is left out, as before: a missing record
 * field must not turn into a removal).
 */
static bool sends_null(const cJSON *v, const struct catalog_field *f, bool literal)
{
    if (literal) {
        return cJSON_IsString(v) && strcmp(v->valuestring, "null") == 0;
    }
    return cJSON_IsNull(v) && f->required;
}

/* A null for the action's destructive_when field makes it destructive: the
 * rule must say confirm = yes (config_resolve checks the literal; this
 * catches an expression that rendered null). False with r->err. */
static bool null_allowed(struct sink_render *r, const struct config_rule *rule,
                         const struct catalog_field *f)
{
    const char *when = rule->def->destructive_when;
    if (when == NULL || strcmp(when, f->name) != 0 || rule->confirm) {
        return true;
    }
    snprintf(r->err, sizeof(r->err),
             "%s rendered null, which makes %s destructive; the rule lacks confirm = yes",
             f->name, rule->def->name);
    return false;
}

static cJSON *render_catalog_body(struct sink_render *r, const struct config_rule *rule,
                                  const struct config_location *loc, cJSON **secrets)
{
    const struct catalog_action *def = rule->def;
    if (def->empty_body) {
        return cJSON_CreateObject();
    }
    cJSON *body = cJSON_CreateObject();
    for (size_t i = 0; i < def->nbody; i++) {
        add_binding(body, &def->body[i], r, true);
    }
    for (size_t i = 0; i < rule->nparams; i++) {
        const struct catalog_field *f = catalog_action_field(def, rule->params[i].name);
        if (f == NULL) {
            continue; /* a path parameter */
        }
        if (f->secret) {
            add_secret_field(body, secrets, &rule->params[i]);
            continue;
        }
        cJSON *v = f->type == CATALOG_STRING_LIST ? sink_render_list_param(r, &rule->params[i])
                                                  : sink_render_param(r, &rule->params[i]);
        if (v == NULL) {
            cJSON_Delete(body);
            return NULL;
        }
        bool literal = template_is_literal(rule->params[i].tmpl);
        if (f->nullable && sends_null(v, f, literal)) {
            cJSON_Delete(v);
            if (!null_allowed(r, rule, f)) {
                cJSON_Delete(body);
                return NULL;
            }
            cJSON_AddNullToObject(body, f->name);
            continue;
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
        v = coerce(v, f->type, f->name, literal, r->err, sizeof(r->err));
        if (v == NULL) {
            cJSON_Delete(body);
            return NULL;
        }
        cJSON_AddItemToObject(body, f->name, v);
    }
    for (size_t i = 0; i < def->ndefaults; i++) {
        add_binding(body, &def->defaults[i], r, false); /* only where the rule sent nothing */
    }
    if (cJSON_GetArraySize(body) == 0 && strcmp(def->method, "POST") != 0 &&
        strcmp(def->method, "PUT") != 0) {
        cJSON_Delete(body);
        return NULL; /* GET/DELETE without fields: no body at all */
    }
    return body;
}

static cJSON *render_catalog(struct sink_render *r, const struct config_rule *rule, cJSON *entry)
{
    const struct config_location *loc = r->loc;
    if (loc == NULL) {
        snprintf(r->err, sizeof(r->err), "the rule has no location for this event");
        return NULL;
    }
    if (catalog_action_uses_company(rule->def) && r->company_id == NULL) {
        snprintf(r->err, sizeof(r->err),
                 "%s sends the companyId ({company}) and [location %s] has none: add "
                 "company_id = <companyId> to it, or use an OAuth installation",
                 rule->def->name, loc->name);
        return NULL;
    }
    char *target_id = NULL;
    char *parent_id = NULL;
    char *path = render_path(r, rule, &target_id, &parent_id);
    if (path == NULL) {
        free(target_id);
        free(parent_id);
        return NULL;
    }
    r->err[0] = '\0';
    cJSON *secrets = NULL;
    cJSON *body = render_catalog_body(r, rule, loc, &secrets);
    if (body == NULL && r->err[0] != '\0') {
        cJSON_Delete(secrets);
        free(path);
        free(target_id);
        free(parent_id);
        return NULL;
    }
    bool failed = false;
    cJSON *query = render_query(r, rule, &failed);
    if (failed) {
        cJSON_Delete(secrets);
        cJSON_Delete(body);
        free(path);
        free(target_id);
        free(parent_id);
        return NULL;
    }
    const struct catalog_action *def = rule->def;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "method", def->method);
    cJSON_AddStringToObject(req, "path", path);
    if (query != NULL) {
        cJSON_AddItemToObject(req, "query", query);
    }
    cJSON_AddStringToObject(req, "version", def->version);
    if (body != NULL) {
        cJSON_AddItemToObject(req, "body", body);
    }
    if (secrets != NULL) {
        cJSON_AddItemToObject(req, "secret_fields", secrets);
    }
    cJSON_AddNumberToObject(entry, "success", def->success);
    cJSON_AddBoolToObject(entry, "gone_ok", def->gone_ok);
    cJSON_AddBoolToObject(entry, "idempotent", def->idempotent);
    if (def->conflict_ok) {
        cJSON_AddBoolToObject(entry, "conflict_ok", true);
    }
    cJSON_AddStringToObject(entry, "result", def->result ? def->result : "");
    cJSON_AddStringToObject(entry, "target_resource",
                            def->target_resource ? def->target_resource : "");
    if (target_id != NULL) {
        cJSON_AddStringToObject(entry, "target_id", target_id);
    }
    if (parent_id != NULL) {
        /* For the echo hooks, which have no catalog (echo.c, entry_parent). */
        cJSON_AddStringToObject(entry, "parent_resource", def->target_res->parent);
        cJSON_AddStringToObject(entry, "parent_id", parent_id);
        cJSON_AddBoolToObject(entry, "touches_parent", def->target_res->touches_parent);
    }
    free(path);
    free(target_id);
    free(parent_id);
    return req;
}

/* The request's "query" object as location_query pairs (borrowing its strings); *n set. */
static struct target_query *query_pairs(const cJSON *req, size_t *n)
{
    const cJSON *query = cJSON_GetObjectItemCaseSensitive(req, "query");
    int count = cJSON_IsObject(query) ? cJSON_GetArraySize(query) : 0;
    *n = 0;
    if (count == 0) {
        return NULL;
    }
    struct target_query *q = xcalloc((size_t)count, sizeof(*q));
    const cJSON *item;
    cJSON_ArrayForEach(item, query)
    {
        if (cJSON_IsString(item)) {
            q[*n].name = item->string;
            q[*n].value = item->valuestring;
            (*n)++;
        }
    }
    return q;
}

/*
 * The body of req with each secret field's value read now from its
 * reference (request.secret_fields; file:PATH relative to the config file,
 * private as a token file), and registered with the log's redactor in case
 * the server echoes it. Every copy is wiped: the caller wipes *text
 * (secret_wipe_free). Returns 0 (*text NULL when req has no body), or
 * -ENOKEY with call->error naming the field and its reference, never the
 * value: a missing variable or file does not come back by retrying.
 */
static int secret_body(struct sink_call *call, const cJSON *req, char **text)
{
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(req, "body");
    const cJSON *refs = cJSON_GetObjectItemCaseSensitive(req, "secret_fields");
    *text = NULL;
    if (body == NULL) {
        return 0;
    }
    cJSON *copy = cJSON_Duplicate(body, 1);
    int rc = 0;
    const cJSON *ref;
    cJSON_ArrayForEach(ref, refs)
    {
        char *value = NULL;
        char *msg = NULL;
        int r = cJSON_IsString(ref) ? secret_ref_read(ref->valuestring, ref->string,
                                                      call->env->cfg->dir, SECRET_PRIVATE,
                                                      &value, &msg)
                                    : 1;
        if (r != 0) {
            snprintf(call->error, sizeof(call->error), "secret field %s = %.100s: %s",
                     ref->string, cJSON_IsString(ref) ? ref->valuestring : "?",
                     msg != NULL ? msg : "not an env: or file: reference");
            free(msg);
            rc = -ENOKEY;
            break;
        }
        log_add_secret(value);
        cJSON_ReplaceItemInObjectCaseSensitive(copy, ref->string, cJSON_CreateString(value));
        secret_wipe_free(value);
    }
    if (rc == 0) {
        *text = cJSON_PrintUnformatted(copy);
    }
    cJSON_ArrayForEach(ref, refs)
    {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(copy, ref->string);
        if (cJSON_IsString(v)) {
            explicit_bzero(v->valuestring, strlen(v->valuestring));
        }
    }
    cJSON_Delete(copy);
    return rc;
}

static int send_ghl(struct sink_call *call, const cJSON *req)
{
    char *text = NULL;
    int src = secret_body(call, req, &text);
    if (src != 0) {
        return src;
    }
    struct location *loc = dispatch__runtime_location(call->env, sink_str(call->entry, "location"));
    if (loc == NULL) {
        secret_wipe_free(text);
        return -ENOENT;
    }
    size_t nquery = 0;
    struct target_query *query = query_pairs(req, &nquery);
    char tag[128];
    snprintf(tag, sizeof(tag), "rule:%s", sink_str(call->entry, "rule"));
    struct location_request lr = {
        .method = sink_str(req, "method"),
        .path = sink_str(req, "path"),
        .query = query,
        .nquery = nquery,
        .version = json_get_string(req, "version"),
        .body = text,
        .body_len = text ? strlen(text) : 0,
        .log_tag = tag,
        /* Not idempotent (or an entry from before the flag): never on a
         * reused connection, where libcurl would silently send it twice. */
        .fresh_connection = !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(call->entry, "idempotent")),
    };
    struct target_pending *pending = NULL;
    int rc = location_submit(loc, LOCATION_POLL, &lr, dispatch__http_done, call, &pending);
    call->handle = pending;
    free(query);
    secret_wipe_free(text); /* the location keeps (and wipes) its own copy */
    return rc;
}

static void cancel_ghl(struct sink_call *call)
{
    target_cancel(call->handle);
}

const struct sink dispatch__sink_ghl = {
    .name = "ghl",
    .status_word = "HTTP",
    .rule_kind = &config_rule_catalog,
    .render = render_catalog,
    .send = send_ghl,
    .cancel = cancel_ghl,
    .classify = dispatch__classify_http,
    .claimed = dispatch__echo_claimed,
    .recorded = dispatch__echo_recorded,
};

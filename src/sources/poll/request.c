/*
 * request: building the poller's requests and classifying their responses
 * (see poll_int.h). Path templates are expanded with each value
 * percent-encoded as one segment; fixed bindings and user parameters go to
 * the query or the JSON body as the definition says; paging parameters come
 * from the paging table (paging.c).
 * Thread context: loop thread.
 */
#include "poll_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "api.h"
#include "url.h"
#include "config.h"
#include "http.h"
#include "json.h"
#include "location.h"
#include "log.h"
#include "paging.h"
#include "util.h"

const char *poller__param_value(const struct poller *p, const char *name)
{
    for (size_t i = 0; i < p->tc->nparams; i++) {
        if (strcmp(p->tc->params[i].name, name) == 0) {
            return p->tc->params[i].value;
        }
    }
    return NULL;
}


void poller__parts_finish(struct request_parts *r)
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

void poller__parts_add_query(struct request_parts *r, const char *name, char *value)
{
    add_query(r, name, value, true);
}

const char *poller__company_id(const struct poller *p)
{
    if (p->loc != NULL) {
        return location_company_id(p->loc);
    }
    /* No runtime location (unit tests): the configured one. */
    const struct config_location *cl = p->tc->location;
    return cl != NULL ? cl->company_id : NULL;
}

/* A fixed binding's text: the location's id, its companyId (NULL when unknown), or the value. */
static const char *binding_text(const struct poller *p, const struct catalog_binding *b)
{
    if (b->is_location) {
        return p->loc != NULL ? location_id(p->loc) : NULL; /* api catalogs have none */
    }
    return b->is_company ? poller__company_id(p) : b->value;
}

struct path_ctx {
    const struct poller *p;
    const struct catalog_trigger *def; /* whose path and bindings; NULL: p->def */
    const char *fan_value;
    const char *id_value;
    const cJSON *record; /* confirm_delete's {record.FIELD}: the last-known copy, or NULL */
    bool in_record;      /* the placeholder asked for last was a {record.FIELD} */
};

/* catalog_path_lookup for a trigger: the record id ({id} of confirm_delete),
 * a field of its last-known copy ({record.FIELD}), the fan-out value, a
 * path.NAME binding, then the user's parameter. */
static char *path_lookup(void *ud, const char *name, char *err, size_t errlen)
{
    struct path_ctx *c = ud;
    const struct poller *p = c->p;
    const struct catalog_trigger *d = c->def != NULL ? c->def : p->def;
    const char *value = NULL;
    size_t field = catalog_record_placeholder(name, strlen(name));
    c->in_record = field > 0;
    if (field > 0) {
        return catalog_record_text(c->record, name + field, err, errlen);
    }
    if (c->id_value != NULL && strcmp(name, "id") == 0) {
        value = c->id_value;
    } else if (c->fan_value != NULL && d->fan_out != NULL && strcmp(name, d->fan_out) == 0) {
        value = c->fan_value;
    } else if (catalog_trigger_path_value(d, name) != NULL) {
        value = binding_text(p, catalog_trigger_path_value(d, name));
        if (value == NULL) {
            snprintf(err, errlen, "{%s}: the location's companyId is unknown", name);
        }
    } else {
        value = poller__param_value(p, name);
    }
    return value != NULL ? xstrdup(value) : NULL;
}

/* Expands tmpl (catalog_path_expand); NULL, logged with the trigger and
 * placeholder, when a value is missing or not one path segment. */
static char *expand_path(const struct poller *p, const struct catalog_trigger *d,
                         const char *fan_value)
{
    struct path_ctx c = {.p = p, .def = d, .fan_value = fan_value};
    char err[256];
    char *path = NULL;
    if (catalog_path_expand(d->path, path_lookup, &c, &path, err, sizeof(err)) != 0) {
        log_error(p->tag, "trigger %s: cannot expand path %s: %s", d->name, d->path, err);
        return NULL;
    }
    return path;
}

/* A user parameter's text as the body value its type says (config checked
 * it at startup with the same rules, so a failure here is a null). */
static cJSON *typed_value(enum catalog_type type, const char *value)
{
    cJSON *v = NULL;
    char err[128];
    if (catalog_value_coerce(type, value, &v, err, sizeof(err)) != 0) {
        return cJSON_CreateNull();
    }
    return v;
}

static cJSON *binding_value(const struct poller *p, const struct catalog_binding *b)
{
    if (b->is_location || b->is_company) {
        return cJSON_CreateString(binding_text(p, b));
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

int poller__build_base(const struct poller *p, const char *fan_value, struct request_parts *r)
{
    return poller__build_def(p, p->def, fan_value, r);
}

/* Builds path, fixed bindings and user parameters (not pagination). */
int poller__build_def(const struct poller *p, const struct catalog_trigger *d,
                      const char *fan_value, struct request_parts *r)
{
    memset(r, 0, sizeof(*r));
    r->version = d->version;
    if (catalog_trigger_uses_company(d) && poller__company_id(p) == NULL) {
        return -ENOENT;
    }
    r->path = expand_path(p, d, fan_value);
    if (r->path == NULL) {
        return -EINVAL;
    }
    for (size_t i = 0; i < d->nquery; i++) {
        const struct catalog_binding *b = &d->query[i];
        add_query(r, b->name, binding_text(p, b), false);
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
        const char *v = poller__param_value(p, cp->name);
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

const cJSON *poller__records(const struct poller *p, const cJSON *body)
{
    return catalog_trigger_records_at_root(p->def) ? body : json_get_path(body, p->def->records);
}

bool poller__soft_deleted(const struct poller *p, const cJSON *rec)
{
    return p->def->deleted_field != NULL &&
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, p->def->deleted_field));
}

bool poller__answer_soft_deleted(const struct poller *p, const struct http_response *resp)
{
    cJSON *body = NULL;
    if (p->def->deleted_field == NULL || resp->body.len == 0 ||
        json_parse(resp->body.data, resp->body.len, &body, NULL) != 0) {
        return false;
    }
    bool flagged = poller__soft_deleted(p, body);
    const cJSON *member = cJSON_IsObject(body) ? body->child : NULL;
    for (; member != NULL && !flagged; member = member->next) {
        flagged = cJSON_IsObject(member) && poller__soft_deleted(p, member);
    }
    cJSON_Delete(body);
    return flagged;
}

unsigned poller__page_size(const struct poller *p)
{
    if (p->tc->page_size > 0) {
        return p->tc->page_size;
    }
    return p->def->page_size > 0 ? p->def->page_size : 100; /* 100: not paginated anyway */
}

static void add_paging_query(void *ud, const char *name, char *value)
{
    add_query(ud, name, value, true);
}

void poller__add_pagination(struct poller *p, struct request_parts *r)
{
    poller__add_paging(&p->paging, &p->cursor, p->page, r);
}

void poller__add_paging(const struct paging *pg, const struct paging_cursor *c, unsigned page,
                        struct request_parts *r)
{
    paging_add_params(pg, c, page, r->body, add_paging_query, r);
}

int poller__submit(struct poller *p, enum target_class cls, struct request_parts *r,
                   const char *method, http_done_cb cb, void *ud)
{
    char *body = r->body ? cJSON_PrintUnformatted(r->body) : NULL;
    int rc;
    if (p->loc != NULL) {
        struct location_request req = {
            .method = method,
            .path = r->path,
            .query = r->query,
            .nquery = r->nquery,
            .version = r->version != NULL ? r->version : p->def->version,
            .body = body,
            .body_len = body ? strlen(body) : 0,
            .log_tag = p->tag,
        };
        rc = location_submit(p->loc, cls, &req, cb, ud, &p->pending);
    } else {
        /* A user's own API: the target adds its own credential header, nothing else. */
        struct target_request req = {
            .method = method,
            .path = r->path,
            .query = r->query,
            .nquery = r->nquery,
            .body = body,
            .body_len = body ? strlen(body) : 0,
            .log_tag = p->tag,
        };
        rc = target_submit(p->target, cls, &req, cb, ud, &p->pending);
    }
    free(body);
    if (rc == 0) {
        p->stats.requests++;
    }
    return rc;
}

/* Expands confirm_delete with c's values and queues the GET (see
 * poller__submit_confirm_of for the returns). */
static int submit_confirm(struct poller *p, struct path_ctx *c, http_done_cb cb, void *ud,
                          char *why, size_t whylen)
{
    struct request_parts r;
    memset(&r, 0, sizeof(r));
    int rc = catalog_path_expand(p->def->confirm_delete, path_lookup, c, &r.path, why, whylen);
    if (rc == 0) {
        rc = poller__submit(p, LOCATION_POLL, &r, "GET", cb, ud);
    } else if (c->in_record && rc != -E2BIG) {
        rc = -ENODATA; /* this record's own value: absent, or not one path segment */
    } else {
        log_error(p->tag, "trigger %s: cannot expand path %s: %s", p->def->name,
                  p->def->confirm_delete, why);
    }
    poller__parts_finish(&r);
    return rc;
}

int poller__submit_confirm(struct poller *p, const char *fan_value, const char *id,
                           http_done_cb cb, void *ud)
{
    struct path_ctx c = {.p = p, .fan_value = fan_value, .id_value = id};
    char why[256];
    return submit_confirm(p, &c, cb, ud, why, sizeof(why));
}

bool poller__confirm_uses_record(const struct poller *p)
{
    return p->def->confirm_delete != NULL && strstr(p->def->confirm_delete, "{record.") != NULL;
}

int poller__submit_confirm_of(struct poller *p, const char *id, const cJSON *record,
                              http_done_cb cb, void *ud, char *why, size_t whylen)
{
    struct path_ctx c = {.p = p, .id_value = id, .record = record};
    return submit_confirm(p, &c, cb, ud, why, whylen);
}

enum outcome poller__classify(const struct http_response *resp)
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

/* Is resp's body one JSON object (an answer of the app itself, not a
 * gateway's HTML page)? */
static bool json_object_body(const struct http_response *resp)
{
    cJSON *body = NULL;
    if (resp->body.len == 0 || json_parse(resp->body.data, resp->body.len, &body, NULL) != 0) {
        return false;
    }
    bool ok = cJSON_IsObject(body);
    cJSON_Delete(body);
    return ok;
}

enum outcome poller__classify_of(const struct poller *p, const struct http_response *resp)
{
    enum outcome oc = poller__classify(resp);
    if (oc == OUTCOME_RETRY && p->loc == NULL && resp->error == 0 && resp->status == 404 &&
        json_object_body(resp)) {
        return OUTCOME_GONE; /* a user's own API: its JSON 404 says "no such record" */
    }
    return oc;
}

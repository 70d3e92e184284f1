/*
 * paging: see paging.h.
 */
#include "paging.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "util.h"

/* One paging style: the defaults a definition's paging keys override. */
struct paging_style {
    const char *limit_param;
    const char *skip_param;
    const char *first_page_param;
    const char *cursor_param;
    const char *cursor_id_param;
    const char *cursor_path;
    const char *cursor_id_path;
    const char *const *end_when_null;
    bool in_body;
};

/* HighLevel's GET /contacts/ says "no next page" with both of these null. */
static const char *const start_after_end[] = {"meta.nextPage", "meta.nextPageUrl", NULL};

/* The style table: one row per enum catalog_pagination. */
static const struct paging_style styles[] = {
    [CATALOG_PAGE_NONE] = {0},
    /* Query limit, then startAfter + startAfterId from the previous page's meta. */
    [CATALOG_PAGE_START_AFTER] = {.limit_param = "limit",
                                  .cursor_param = "startAfter",
                                  .cursor_id_param = "startAfterId",
                                  .cursor_path = "meta.startAfter",
                                  .cursor_id_path = "meta.startAfterId",
                                  .end_when_null = start_after_end},
    /* Body pageLimit; page 1 first, then the last record's own searchAfter. */
    [CATALOG_PAGE_SEARCH_AFTER] = {.limit_param = "pageLimit",
                                   .first_page_param = "page",
                                   .cursor_param = "searchAfter",
                                   .cursor_path = "searchAfter",
                                   .in_body = true},
    /* Query skip = page * size and limit; a short page is the last. */
    [CATALOG_PAGE_SKIP_LIMIT] = {.limit_param = "limit", .skip_param = "skip"},
    /* The same mechanism named offset. */
    [CATALOG_PAGE_OFFSET_LIMIT] = {.limit_param = "limit", .skip_param = "offset"},
    /* Query limit, then the opaque cursor the previous page handed out
     * (next_cursor), until it is null: a short page does not end it. */
    [CATALOG_PAGE_CURSOR] = {.limit_param = "limit",
                             .cursor_param = "cursor",
                             .cursor_path = "next_cursor"},
};

/* Without `total`, the API's count is the first of these that is a number. */
static const char *const total_guesses[] = {"total", "count", "meta.total", NULL};

static const char *pick(const char *override, const char *def)
{
    return override != NULL ? override : def;
}

void paging_init(struct paging *pg, const struct catalog_trigger *def, unsigned page_size)
{
    memset(pg, 0, sizeof(*pg));
    pg->style = def->pagination;
    pg->page_size = page_size;
    pg->total_path = def->total;
    if ((unsigned)def->pagination >= ARRAY_SIZE(styles)) {
        pg->style = CATALOG_PAGE_NONE;
        return;
    }
    const struct paging_style *s = &styles[def->pagination];
    const struct catalog_paging *o = &def->paging;
    pg->limit_param = pick(o->limit_param, s->limit_param);
    pg->skip_param = pick(o->skip_param, s->skip_param);
    pg->first_page_param = s->first_page_param;
    pg->cursor_param = pick(o->cursor_param, s->cursor_param);
    pg->cursor_id_param = pick(o->cursor_id_param, s->cursor_id_param);
    pg->cursor_path = pick(o->cursor_path, s->cursor_path);
    pg->cursor_id_path = pick(o->cursor_id_path, s->cursor_id_path);
    pg->end_when_null = s->end_when_null;
    pg->more_field = o->more_field;
    pg->in_body = o->in != NULL ? strcmp(o->in, "body") == 0 : s->in_body;
    pg->string_values = o->values != NULL && strcmp(o->values, "string") == 0;
}

void paging_cursor_reset(struct paging_cursor *c)
{
    cJSON_Delete(c->value);
    cJSON_Delete(c->id);
    c->value = NULL;
    c->id = NULL;
}

/* A cursor value as query text: strings as they are, whole numbers without a fraction. */
static char *value_text(const cJSON *v)
{
    if (cJSON_IsString(v)) {
        return xstrdup(v->valuestring);
    }
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        return d == floor(d) && fabs(d) < 1e17 ? xasprintf("%.0f", d) : xasprintf("%.17g", d);
    }
    return cJSON_PrintUnformatted(v);
}

/* One parameter: into the body (when in_body) or the query. */
static void put_value(const struct paging *pg, const char *name, const cJSON *v, cJSON *body,
                      paging_query_cb add, void *ud)
{
    if (!pg->in_body) {
        add(ud, name, value_text(v));
    } else if (body != NULL) {
        cJSON_AddItemToObject(body, name, cJSON_Duplicate(v, 1));
    }
}

/* A count (page size, skip, page number): a JSON number, or a string if page_values says so. */
static void put_count(const struct paging *pg, const char *name, unsigned long long n,
                      cJSON *body, paging_query_cb add, void *ud)
{
    cJSON *v = NULL;
    if (pg->in_body && pg->string_values) {
        char *text = xasprintf("%llu", n);
        v = cJSON_CreateString(text);
        free(text);
    } else {
        v = cJSON_CreateNumber((double)n);
    }
    put_value(pg, name, v, body, add, ud);
    cJSON_Delete(v);
}

void paging_add_params(const struct paging *pg, const struct paging_cursor *c, unsigned page,
                       cJSON *body, paging_query_cb add, void *ud)
{
    unsigned size = pg->page_size;
    switch (pg->style) {
    case CATALOG_PAGE_NONE:
        return;
    case CATALOG_PAGE_SKIP_LIMIT:
    case CATALOG_PAGE_OFFSET_LIMIT:
        put_count(pg, pg->skip_param, (unsigned long long)page * size, body, add, ud);
        put_count(pg, pg->limit_param, size, body, add, ud);
        return;
    case CATALOG_PAGE_START_AFTER:
        put_count(pg, pg->limit_param, size, body, add, ud);
        if (page > 0 && c->id != NULL) {
            if (c->value != NULL) {
                put_value(pg, pg->cursor_param, c->value, body, add, ud);
            }
            put_value(pg, pg->cursor_id_param, c->id, body, add, ud);
        }
        return;
    case CATALOG_PAGE_CURSOR:
        put_count(pg, pg->limit_param, size, body, add, ud);
        if (page > 0 && c->value != NULL) {
            put_value(pg, pg->cursor_param, c->value, body, add, ud);
        }
        return;
    case CATALOG_PAGE_SEARCH_AFTER:
        put_count(pg, pg->limit_param, size, body, add, ud);
        if (page == 0 || c->value == NULL) {
            if (pg->first_page_param != NULL) {
                put_count(pg, pg->first_page_param, 1, body, add, ud);
            }
        } else {
            put_value(pg, pg->cursor_param, c->value, body, add, ud);
        }
        return;
    }
}

/* A value a cursor can be sent as. */
static bool usable(const cJSON *v)
{
    return cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsArray(v) || cJSON_IsObject(v);
}

/* Do all end_when_null paths exist and hold null? */
static bool says_last(const struct paging *pg, const cJSON *body)
{
    if (pg->end_when_null == NULL || pg->end_when_null[0] == NULL) {
        return false;
    }
    for (size_t i = 0; pg->end_when_null[i] != NULL; i++) {
        if (!cJSON_IsNull(json_get_path(body, pg->end_when_null[i]))) {
            return false;
        }
    }
    return true;
}

static void set_value(cJSON **slot, const cJSON *v)
{
    cJSON_Delete(*slot);
    *slot = v != NULL ? cJSON_Duplicate(v, 1) : NULL;
}

/* start_after: the cursor id (required, and moving) and the cursor (optional) of body. */
static enum paging_next advance_start_after(const struct paging *pg, struct paging_cursor *c,
                                            const cJSON *body)
{
    if (says_last(pg, body)) {
        return PAGING_END;
    }
    const cJSON *id = json_get_path(body, pg->cursor_id_path);
    if (!cJSON_IsString(id) && !cJSON_IsNumber(id)) {
        return PAGING_STUCK;
    }
    if (c->id != NULL && json_equal(id, c->id)) {
        return PAGING_STUCK;
    }
    const cJSON *after = json_get_path(body, pg->cursor_path);
    set_value(&c->id, id);
    set_value(&c->value, cJSON_IsString(after) || cJSON_IsNumber(after) ? after : NULL);
    return PAGING_MORE;
}

/* cursor: the response's next cursor; null or absent ends the listing. */
static enum paging_next advance_cursor(const struct paging *pg, struct paging_cursor *c,
                                       const cJSON *body)
{
    const cJSON *next = json_get_path(body, pg->cursor_path);
    if (next == NULL || cJSON_IsNull(next)) {
        return PAGING_END;
    }
    if (!cJSON_IsString(next) && !cJSON_IsNumber(next)) {
        return PAGING_STUCK;
    }
    if (c->value != NULL && json_equal(next, c->value)) {
        return PAGING_STUCK;
    }
    set_value(&c->value, next);
    return PAGING_MORE;
}

/* search_after: the last record's own cursor, which must move. */
static enum paging_next advance_search_after(const struct paging *pg, struct paging_cursor *c,
                                             const cJSON *records)
{
    const cJSON *last = cJSON_GetArrayItem(records, cJSON_GetArraySize(records) - 1);
    const cJSON *sa = json_get_path(last, pg->cursor_path);
    if (!usable(sa) || (c->value != NULL && json_equal(sa, c->value))) {
        return PAGING_STUCK;
    }
    set_value(&c->value, sa);
    return PAGING_MORE;
}

enum paging_next paging_advance(const struct paging *pg, struct paging_cursor *c,
                                const cJSON *body, const cJSON *records)
{
    if (pg->style == CATALOG_PAGE_NONE) {
        return PAGING_END;
    }
    int count = cJSON_GetArraySize(records);
    if (pg->style == CATALOG_PAGE_CURSOR && count > 0 && pg->more_field == NULL) {
        return advance_cursor(pg, c, body); /* the cursor, not the page's length, says */
    }
    bool last = count < (int)pg->page_size;
    if (pg->more_field != NULL) {
        /* The API says whether more follow: believe it over the page's length. */
        const cJSON *more = json_get_path(body, pg->more_field);
        if (cJSON_IsBool(more)) {
            last = !cJSON_IsTrue(more);
        }
    }
    if (last || count == 0) {
        return PAGING_END;
    }
    switch (pg->style) {
    case CATALOG_PAGE_SKIP_LIMIT:
    case CATALOG_PAGE_OFFSET_LIMIT:
        return PAGING_MORE;
    case CATALOG_PAGE_START_AFTER:
        return advance_start_after(pg, c, body);
    case CATALOG_PAGE_SEARCH_AFTER:
        return advance_search_after(pg, c, records);
    case CATALOG_PAGE_CURSOR:
        return advance_cursor(pg, c, body);
    case CATALOG_PAGE_NONE:
        break;
    }
    return PAGING_END;
}

static double number_at(const cJSON *body, const char *path)
{
    const cJSON *v = json_get_path(body, path);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

double paging_total(const struct paging *pg, const cJSON *body)
{
    if (pg->total_path != NULL) {
        return number_at(body, pg->total_path);
    }
    for (size_t i = 0; total_guesses[i] != NULL; i++) {
        const cJSON *v = json_get_path(body, total_guesses[i]);
        if (cJSON_IsNumber(v)) {
            return v->valuedouble;
        }
    }
    return -1;
}

void paging_describe(const struct paging *pg, const struct paging_cursor *c, unsigned page,
                     char *out, size_t len)
{
    switch (pg->style) {
    case CATALOG_PAGE_SKIP_LIMIT:
    case CATALOG_PAGE_OFFSET_LIMIT:
        snprintf(out, len, "page %u, %s=%llu", page + 1, pg->skip_param,
                 (unsigned long long)page * pg->page_size);
        return;
    case CATALOG_PAGE_START_AFTER: {
        char *id = page > 0 && c->id != NULL ? value_text(c->id) : NULL;
        snprintf(out, len, "page %u, %s=%s", page + 1, pg->cursor_id_param, id ? id : "none");
        free(id);
        return;
    }
    case CATALOG_PAGE_NONE:
    case CATALOG_PAGE_SEARCH_AFTER:
    case CATALOG_PAGE_CURSOR:
        break;
    }
    snprintf(out, len, "page %u", page + 1);
}

/*
 * catalog_trigger: the trigger definitions (the files of triggers/): the
 * key table, the prefixed keys, the cross checks of finish_trigger, and
 * loading one file (catalog_int.h).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_int.h"

/* Largest page size a definition may declare. */
#define CATALOG_MAX_PAGE 10000

/* ------------------------------------------------------------------------ */
/* Key table                                                                 */

static const char *const methods[] = {"GET", "POST", NULL};
static const char *const page_in_names[] = {"query", "body", NULL};
static const char *const page_values_names[] = {"number", "string", NULL};

/* incremental = filter (the only kind so far: a body filter on the watermark). */
static int parse_incremental(struct ini_doc *doc, const struct ini_key *k, const char *value,
                             int line, void *field)
{
    if (strcmp(value, "filter") != 0) {
        ini_diag_add(&doc->diag, line, "bad value for '%s' (allowed: filter)", k->name);
        return -EINVAL;
    }
    *(bool *)field = true;
    return 0;
}

#define T(f) offsetof(struct catalog_trigger, f)
static const struct ini_key trigger_keys[] = {
    {.name = "title", .type = INI_KEY_STRING, .offset = T(title), .required = true},
    {.name = "operation_id", .type = INI_KEY_STRING, .offset = T(operation_id),
     .required = true},
    {.name = "spec", .type = INI_KEY_STRING, .offset = T(spec)},
    {.name = "method", .type = INI_KEY_STRING, .offset = T(method), .required = true,
     .choices = methods},
    {.name = "path", .type = INI_KEY_CUSTOM, .offset = T(path), .required = true,
     .parse = catalog__parse_path},
    /* Required in the product's catalog only (catalog__check_origin). */
    {.name = "version", .type = INI_KEY_STRING, .offset = T(version)},
    {.name = "scope", .type = INI_KEY_STRING, .offset = T(scope)},
    {.name = "resource", .type = INI_KEY_CUSTOM, .offset = T(resource), .required = true,
     .parse = catalog__parse_ident},
    {.name = "records", .type = INI_KEY_CUSTOM, .offset = T(records), .required = true,
     .parse = catalog__parse_record_path},
    {.name = "single", .type = INI_KEY_BOOL, .offset = T(single), .def = "no"},
    {.name = "id_field", .type = INI_KEY_CUSTOM, .offset = T(id_field), .def = "id",
     .parse = catalog__parse_ident},
    {.name = "updated_field", .type = INI_KEY_CUSTOM, .offset = T(updated_field),
     .parse = catalog__parse_ident},
    {.name = "created_field", .type = INI_KEY_CUSTOM, .offset = T(created_field),
     .parse = catalog__parse_ident},
    {.name = "pagination", .type = INI_KEY_CUSTOM, .offset = T(pagination), .required = true,
     .parse = catalog__parse_pagination},
    {.name = "page_size", .type = INI_KEY_UNSIGNED, .offset = T(page_size), .min = 1,
     .max = CATALOG_MAX_PAGE},
    {.name = "max_page_size", .type = INI_KEY_UNSIGNED, .offset = T(max_page_size), .min = 1,
     .max = CATALOG_MAX_PAGE},
    {.name = "volatile", .type = INI_KEY_LIST, .offset = T(volatile_fields)},
    {.name = "confirm_delete", .type = INI_KEY_CUSTOM, .offset = T(confirm_delete),
     .parse = catalog__parse_confirm_delete},
    {.name = "fan_out", .type = INI_KEY_CUSTOM, .offset = T(fan_out),
     .parse = catalog__parse_ident},
    {.name = "parent_resource", .type = INI_KEY_CUSTOM, .offset = T(parent_resource),
     .parse = catalog__parse_ident},
    {.name = "batch", .type = INI_KEY_STRING, .offset = T(batch)},
    {.name = "batch_param", .type = INI_KEY_CUSTOM, .offset = T(batch_param),
     .parse = catalog__parse_ident},
    {.name = "require_one", .type = INI_KEY_LIST, .offset = T(require_one)},
    /* Paging (M4): overrides of the style's row in sources/poll/paging.c. */
    {.name = "page_limit_param", .type = INI_KEY_CUSTOM, .offset = T(paging.limit_param),
     .parse = catalog__parse_ident},
    {.name = "page_skip_param", .type = INI_KEY_CUSTOM, .offset = T(paging.skip_param),
     .parse = catalog__parse_ident},
    {.name = "page_in", .type = INI_KEY_STRING, .offset = T(paging.in),
     .choices = page_in_names},
    {.name = "page_values", .type = INI_KEY_STRING, .offset = T(paging.values),
     .choices = page_values_names},
    {.name = "cursor_param", .type = INI_KEY_CUSTOM, .offset = T(paging.cursor_param),
     .parse = catalog__parse_ident},
    {.name = "cursor_id_param", .type = INI_KEY_CUSTOM, .offset = T(paging.cursor_id_param),
     .parse = catalog__parse_ident},
    {.name = "cursor_path", .type = INI_KEY_CUSTOM, .offset = T(paging.cursor_path),
     .parse = catalog__parse_records},
    {.name = "cursor_id_path", .type = INI_KEY_CUSTOM, .offset = T(paging.cursor_id_path),
     .parse = catalog__parse_records},
    {.name = "more_field", .type = INI_KEY_CUSTOM, .offset = T(paging.more_field),
     .parse = catalog__parse_records},
    {.name = "total", .type = INI_KEY_CUSTOM, .offset = T(total), .parse = catalog__parse_records},
    {.name = "deleted_field", .type = INI_KEY_CUSTOM, .offset = T(deleted_field),
     .parse = catalog__parse_ident},
    {.name = "scope_level", .type = INI_KEY_CUSTOM, .offset = T(agency), .def = "location",
     .parse = catalog__parse_scope_level},
    /* Incremental polling (M13); incremental.body.NAME is a prefixed key. */
    {.name = "incremental", .type = INI_KEY_CUSTOM, .offset = T(incremental),
     .parse = parse_incremental},
    {.name = "watermark_field", .type = INI_KEY_CUSTOM, .offset = T(watermark_field),
     .parse = catalog__parse_records},
};
#undef T
enum {
    K_TITLE,
    K_OPERATION_ID,
    K_SPEC,
    K_METHOD,
    K_PATH,
    K_VERSION,
    K_SCOPE,
    K_RESOURCE,
    K_RECORDS,
    K_SINGLE,
    K_ID_FIELD,
    K_UPDATED_FIELD,
    K_CREATED_FIELD,
    K_PAGINATION,
    K_PAGE_SIZE,
    K_MAX_PAGE_SIZE,
    K_VOLATILE,
    K_CONFIRM_DELETE,
    K_FAN_OUT,
    K_PARENT_RESOURCE,
    K_BATCH,
    K_BATCH_PARAM,
    K_REQUIRE_ONE,
    K_PAGE_LIMIT_PARAM,
    K_PAGE_SKIP_PARAM,
    K_PAGE_IN,
    K_PAGE_VALUES,
    K_CURSOR_PARAM,
    K_CURSOR_ID_PARAM,
    K_CURSOR_PATH,
    K_CURSOR_ID_PATH,
    K_MORE_FIELD,
    K_TOTAL,
    K_DELETED_FIELD,
    K_SCOPE_LEVEL,
    K_INCREMENTAL,
    K_WATERMARK_FIELD,
    K_NKEYS,
};
_Static_assert(ARRAY_SIZE(trigger_keys) == K_NKEYS, "catalog key enum out of sync");


/*
 * A definition under construction. t is the first member, so the key
 * table's offsets (relative to struct catalog_trigger) also work on the
 * build record, which ini_apply hands to trigger_extra.
 */
struct trigger_build {
    struct catalog_trigger t;
    int *param_lines; /* parallel to t.params, for messages */
    int *path_value_lines; /* parallel to t.path_values */
    int incr_body_line;    /* the first incremental.body.NAME key, or 0 */
};
_Static_assert(offsetof(struct trigger_build, t) == 0, "t must come first");


/*
 * A trigger's binding: catalog__add_binding's values plus {company} (M3), the
 * companyId of the location's credential or [location] company_id, which
 * the poller fills in. A path.NAME binding (path) is one path segment, so
 * it takes no JSON. lines runs parallel to *arr when not NULL.
 */
static void add_trigger_binding(struct ini_doc *doc, const struct ini_entry *e,
                                const char *name, bool path, struct catalog_binding **arr,
                                size_t *n, int **lines)
{
    size_t before = *n;
    if (path && str_has_prefix(e->value, "json:")) {
        ini_diag_add(&doc->diag, e->line,
                     "'%s': a path value is text, {location} or {company} (not json:)",
                     e->key);
        return;
    } else {
        catalog__add_binding(doc, e, name, arr, n);
    }
    if (lines != NULL && *n > before) {
        *lines = xrealloc(*lines, *n * sizeof(**lines));
        (*lines)[*n - 1] = e->line;
    }
}

/*
 * incremental.body.NAME = json:TEMPLATE (M13): JSON once {watermark} is a
 * number; kept as the template, rendered by the poller each cycle.
 */
static void add_incremental_body(struct ini_doc *doc, const struct ini_entry *e,
                                 const char *name, struct trigger_build *tb)
{
    if (!str_has_prefix(e->value, "json:")) {
        ini_diag_add(&doc->diag, e->line, "'%s': the value must be json:<JSON with {watermark}>",
                     e->key);
        return;
    }
    char *text = catalog_watermark_render(e->value + 5, 0);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (j == NULL) {
        ini_diag_add(&doc->diag, e->line,
                     "'%s' is not valid JSON after 'json:' (once {watermark} is a number)",
                     e->key);
        return;
    }
    cJSON_Delete(j);
    struct catalog_trigger *t = &tb->t;
    t->incr_body = xrealloc(t->incr_body, (t->nincr_body + 1) * sizeof(*t->incr_body));
    t->incr_body[t->nincr_body++] = (struct catalog_binding){
        .name = xstrdup(name), .value = xstrdup(e->value + 5), .is_json = true};
    if (tb->incr_body_line == 0) {
        tb->incr_body_line = e->line;
    }
}

/* incremental.query.NAME = TEXT (a GET's filter): {watermark} or
 * {watermark_iso} in it, rendered by the poller each cycle. */
static void add_incremental_query(const struct ini_entry *e, const char *name,
                                  struct trigger_build *tb)
{
    struct catalog_trigger *t = &tb->t;
    t->incr_query = xrealloc(t->incr_query, (t->nincr_query + 1) * sizeof(*t->incr_query));
    t->incr_query[t->nincr_query++] = (struct catalog_binding){.name = xstrdup(name),
                                                               .value = xstrdup(e->value)};
    if (tb->incr_body_line == 0) {
        tb->incr_body_line = e->line;
    }
}

/* A trigger's query.NAME, body.NAME, path.NAME, param.NAME and incremental.body.NAME
 * and incremental.query.NAME keys. */
static bool trigger_extra(struct ini_doc *doc, const struct ini_entry *e, void *obj)
{
    struct trigger_build *tb = obj;
    static const char *const prefixes[] = {"query.", "body.", "param.", "path.",
                                           "incremental.body.", "incremental.query."};
    const char *name = NULL;
    switch (catalog__prefixed_key(doc, e, prefixes, ARRAY_SIZE(prefixes), &name)) {
    case -1:
        return false;
    case 0:
        add_trigger_binding(doc, e, name, false, &tb->t.query, &tb->t.nquery, NULL);
        break;
    case 1:
        add_trigger_binding(doc, e, name, false, &tb->t.body, &tb->t.nbody, NULL);
        break;
    case 2:
        catalog__add_param(doc, e, name, false, &tb->t.params, &tb->t.nparams, &tb->param_lines);
        break;
    case 3:
        add_trigger_binding(doc, e, name, true, &tb->t.path_values, &tb->t.npath_values,
                            &tb->path_value_lines);
        break;
    case 4:
        add_incremental_body(doc, e, name, tb);
        break;
    case 5:
        add_incremental_query(e, name, tb);
        break;
    default:
        break; /* reported */
    }
    return true;
}

/* The styles each paging key applies to (a bit per enum catalog_pagination). */
#define STYLE(s) (1u << (s))
#define PAGED_STYLES                                                                          \
    (STYLE(CATALOG_PAGE_START_AFTER) | STYLE(CATALOG_PAGE_SEARCH_AFTER) |                     \
     STYLE(CATALOG_PAGE_SKIP_LIMIT) | STYLE(CATALOG_PAGE_OFFSET_LIMIT) |                       \
     STYLE(CATALOG_PAGE_CURSOR))
static const struct {
    int key;
    unsigned styles;
} paging_key_styles[] = {
    {K_PAGE_LIMIT_PARAM, PAGED_STYLES},
    {K_PAGE_IN, PAGED_STYLES},
    {K_PAGE_VALUES, PAGED_STYLES},
    {K_MORE_FIELD, PAGED_STYLES},
    {K_PAGE_SKIP_PARAM, STYLE(CATALOG_PAGE_SKIP_LIMIT) | STYLE(CATALOG_PAGE_OFFSET_LIMIT)},
    {K_CURSOR_PARAM, STYLE(CATALOG_PAGE_START_AFTER) | STYLE(CATALOG_PAGE_SEARCH_AFTER) |
                         STYLE(CATALOG_PAGE_CURSOR)},
    {K_CURSOR_PATH, STYLE(CATALOG_PAGE_START_AFTER) | STYLE(CATALOG_PAGE_SEARCH_AFTER) |
                        STYLE(CATALOG_PAGE_CURSOR)},
    {K_CURSOR_ID_PARAM, STYLE(CATALOG_PAGE_START_AFTER)},
    {K_CURSOR_ID_PATH, STYLE(CATALOG_PAGE_START_AFTER)},
};

/* A paging key the definition's style does not use is a mistake, not a no-op. */
static void check_paging_keys(struct ini_doc *doc, const struct catalog_trigger *t,
                              const int *lines)
{
    for (size_t i = 0; i < ARRAY_SIZE(paging_key_styles); i++) {
        int l = lines[paging_key_styles[i].key];
        if (l != 0 && !(paging_key_styles[i].styles & STYLE(t->pagination))) {
            ini_diag_add(&doc->diag, l, "%s does not apply to pagination = %s",
                            trigger_keys[paging_key_styles[i].key].name,
                            catalog_pagination_name(t->pagination));
        }
    }
    if (t->paging.in != NULL && strcmp(t->paging.in, "body") == 0 && t->method != NULL &&
        strcmp(t->method, "GET") == 0) {
        ini_diag_add(&doc->diag, lines[K_PAGE_IN], "page_in = body on a GET endpoint");
    }
}
#undef PAGED_STYLES
#undef STYLE

/*
 * Incremental polling needs all of its keys, a POST body to carry the
 * filter, a {watermark} somewhere in it, and a cursor (search_after): page
 * numbers would shift as records move behind the watermark.
 */
static void check_incremental(struct ini_doc *doc, const struct ini_section *sec,
                              const struct trigger_build *tb, const int *lines)
{
    const struct catalog_trigger *t = &tb->t;
    int any = lines[K_INCREMENTAL] ? lines[K_INCREMENTAL]
              : lines[K_WATERMARK_FIELD] ? lines[K_WATERMARK_FIELD]
                                         : tb->incr_body_line;
    if (any == 0) {
        return;
    }
    if (!t->incremental || t->watermark_field == NULL ||
        t->nincr_body + t->nincr_query == 0) {
        ini_diag_add(&doc->diag, any, "[%s]: incremental polling needs incremental = filter, "
                                      "watermark_field and incremental.body.NAME (or "
                                      "incremental.query.NAME) together",
                     t->name);
        return;
    }
    if (t->pagination != CATALOG_PAGE_SEARCH_AFTER && t->pagination != CATALOG_PAGE_CURSOR) {
        ini_diag_add(&doc->diag, lines[K_INCREMENTAL],
                     "incremental = filter needs pagination = search_after or cursor (a "
                     "cursor, not page numbers)");
    }
    if (t->nincr_body > 0 && t->method != NULL && strcmp(t->method, "POST") != 0) {
        ini_diag_add(&doc->diag, lines[K_INCREMENTAL],
                     "incremental.body sends its filter in the body: it needs a POST (a GET "
                     "takes incremental.query.NAME)");
    }
    if (t->single || t->fan_out != NULL) {
        ini_diag_add(&doc->diag, lines[K_INCREMENTAL],
                     "incremental = filter is for top-level listings (not single or fan_out)");
    }
    bool placeholder = false;
    for (size_t i = 0; i < t->nincr_body; i++) {
        placeholder = placeholder || strstr(t->incr_body[i].value, "{watermark}") != NULL;
    }
    for (size_t i = 0; i < t->nincr_query; i++) {
        placeholder = placeholder || strstr(t->incr_query[i].value, "{watermark}") != NULL ||
                      strstr(t->incr_query[i].value, "{watermark_iso}") != NULL;
    }
    if (!placeholder) {
        ini_diag_add(&doc->diag, tb->incr_body_line,
                     t->nincr_query > 0 ? "no incremental.query.NAME value has the {watermark} "
                                          "or {watermark_iso} placeholder"
                                        : "no incremental.body.NAME value has the {watermark} "
                                          "placeholder");
    }
    (void)sec;
}

static void finish_trigger(struct ini_doc *doc, const struct ini_section *sec,
                           struct trigger_build *tb, const int *lines)
{
    struct catalog_trigger *t = &tb->t;
    if (t->volatile_fields == NULL) {
        t->volatile_fields = strv_split("", NULL);
    }
    if (t->require_one == NULL) {
        t->require_one = strv_split("", NULL);
    }

    /* Path placeholders and path parameters must match one to one. */
    if (t->path != NULL) {
        struct path_check pc = {.doc = doc,
                                .params = t->params,
                                .nparams = t->nparams,
                                .values = t->path_values,
                                .nvalues = t->npath_values,
                                .line = lines[K_PATH]};
        catalog__each_placeholder(doc, lines[K_PATH], "path", t->path, catalog__note_placeholder,
                                  &pc);
        for (size_t i = 0; i < t->nparams; i++) {
            if (t->params[i].where == CATALOG_PATH && !strv_contains(pc.seen, t->params[i].name)) {
                ini_diag_add(&doc->diag, tb->param_lines[i],
                                "path parameter '%s' does not appear in path as {%s}",
                                t->params[i].name, t->params[i].name);
            }
        }
        for (size_t i = 0; i < t->npath_values; i++) {
            if (!strv_contains(pc.seen, t->path_values[i].name)) {
                ini_diag_add(&doc->diag, tb->path_value_lines[i],
                                "path.%s does not appear in path as {%s}",
                                t->path_values[i].name, t->path_values[i].name);
            }
        }
        strv_free(pc.seen);
    }

    for (size_t i = 0; i < t->nparams; i++) {
        const struct catalog_param *p = &t->params[i];
        if (p->where == CATALOG_PATH && !p->required) {
            ini_diag_add(&doc->diag, tb->param_lines[i],
                            "path parameter '%s' must be required", p->name);
        }
        if ((p->where == CATALOG_QUERY &&
             catalog__find_binding(t->query, t->nquery, p->name) != NULL) ||
            (p->where == CATALOG_BODY &&
             catalog__find_binding(t->body, t->nbody, p->name) != NULL)) {
            ini_diag_add(&doc->diag, tb->param_lines[i],
                            "parameter '%s' is also a fixed %s.%s binding", p->name,
                            catalog_where_name(p->where), p->name);
        }
        if (p->where == CATALOG_BODY && t->method != NULL && strcmp(t->method, "GET") == 0) {
            ini_diag_add(&doc->diag, tb->param_lines[i],
                            "body parameter '%s' on a GET endpoint", p->name);
        }
    }
    if (t->nbody > 0 && t->method != NULL && strcmp(t->method, "GET") == 0) {
        ini_diag_add(&doc->diag, sec->line, "body.%s binding on a GET endpoint",
                        t->body[0].name);
    }

    if (t->single && t->pagination != CATALOG_PAGE_NONE) {
        ini_diag_add(&doc->diag, lines[K_SINGLE],
                        "single = yes needs pagination = none (one record has no pages)");
    }
    if (lines[K_PAGINATION] != 0 && t->pagination != CATALOG_PAGE_NONE) {
        if (lines[K_MAX_PAGE_SIZE] == 0) {
            ini_diag_add(&doc->diag, sec->line,
                            "[%s] is paginated: it needs max_page_size", t->name);
        } else if (lines[K_PAGE_SIZE] == 0) {
            /* Pages as large as the API allows: the fewest requests, and a
             * page's fixed costs (request, commit) spread over most records. */
            t->page_size = t->max_page_size;
        } else if (t->page_size > t->max_page_size) {
            ini_diag_add(&doc->diag, lines[K_PAGE_SIZE],
                            "page_size = %u is larger than max_page_size = %u", t->page_size,
                            t->max_page_size);
        }
    } else if (t->pagination == CATALOG_PAGE_NONE) {
        int l = lines[K_PAGE_SIZE] ? lines[K_PAGE_SIZE] : lines[K_MAX_PAGE_SIZE];
        if (l != 0) {
            ini_diag_add(&doc->diag, l, "page sizes given but pagination = none");
        }
        t->page_size = 0;
        t->max_page_size = 0;
    }
    check_paging_keys(doc, t, lines);
    if (t->single && lines[K_TOTAL] != 0) {
        ini_diag_add(&doc->diag, lines[K_TOTAL], "total on a single = yes definition (one "
                                                    "record has no count)");
    }

    if (t->confirm_delete != NULL) {
        struct path_check pc = {.doc = doc,
                                .params = t->params,
                                .nparams = t->nparams,
                                .values = t->path_values,
                                .nvalues = t->npath_values,
                                .line = lines[K_CONFIRM_DELETE]};
        catalog__each_placeholder(doc, pc.line, "confirm_delete", t->confirm_delete,
                                  catalog__note_confirm_placeholder, &pc);
        if (pc.record_fields && t->fan_out != NULL) {
            /* A child is confirmed per read of its parent, with no copy of
             * the record at hand; its parent's id is the fan_out placeholder. */
            ini_diag_add(&doc->diag, pc.line,
                         "confirm_delete: {record.FIELD} is for definitions without fan_out "
                         "(name the parent as {%s})",
                         t->fan_out);
        }
    }

    if (t->fan_out != NULL && catalog_trigger_param(t, t->fan_out) == NULL) {
        ini_diag_add(&doc->diag, lines[K_FAN_OUT],
                        "fan_out names '%s', which is not a declared param.%s", t->fan_out,
                        t->fan_out);
    }
    if (t->fan_out != NULL && lines[K_PARENT_RESOURCE] == 0) {
        ini_diag_add(&doc->diag, lines[K_FAN_OUT], "fan_out needs parent_resource");
    }
    if (t->agency) {
        /* An agency definition runs for a [company]: there is no location. */
        const struct catalog_binding *lists[] = {t->query, t->body, t->path_values};
        size_t counts[] = {t->nquery, t->nbody, t->npath_values};
        for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
            for (size_t i = 0; i < counts[l]; i++) {
                if (lists[l][i].is_location) {
                    ini_diag_add(&doc->diag, lines[K_SCOPE_LEVEL],
                                 "scope_level = agency: '%s' is {location}, and an agency "
                                 "definition has no location (use {company})",
                                 lists[l][i].name);
                }
            }
        }
        if (t->fan_out != NULL) {
            ini_diag_add(&doc->diag, lines[K_SCOPE_LEVEL],
                         "scope_level = agency is not supported with fan_out");
        }
    }
    if (t->fan_out != NULL && lines[K_DELETED_FIELD] != 0) {
        /* The for_each sweep does not filter soft-deleted records yet. */
        ini_diag_add(&doc->diag, lines[K_DELETED_FIELD],
                     "deleted_field is not supported with fan_out (for_each children) yet");
    }
    if ((lines[K_BATCH] != 0) != (lines[K_BATCH_PARAM] != 0)) {
        ini_diag_add(&doc->diag, lines[K_BATCH] ? lines[K_BATCH] : lines[K_BATCH_PARAM],
                     "batch and batch_param go together");
    } else if (lines[K_BATCH] != 0 && lines[K_FAN_OUT] == 0) {
        ini_diag_add(&doc->diag, lines[K_BATCH], "batch is only meaningful with fan_out");
    }
    t->batch_line = lines[K_BATCH];
    if (t->fan_out == NULL && lines[K_FAN_OUT] == 0 && lines[K_PARENT_RESOURCE] != 0) {
        ini_diag_add(&doc->diag, lines[K_PARENT_RESOURCE],
                        "parent_resource is only meaningful with fan_out");
    }
    for (size_t i = 0; t->require_one[i] != NULL; i++) {
        if (catalog_trigger_param(t, t->require_one[i]) == NULL) {
            ini_diag_add(&doc->diag, lines[K_REQUIRE_ONE],
                            "require_one names '%s', which is not a declared param.%s",
                            t->require_one[i], t->require_one[i]);
        }
    }
    check_incremental(doc, sec, tb, lines);
    const struct catalog_binding *lists[] = {t->query, t->body, t->path_values};
    size_t counts[] = {t->nquery, t->nbody, t->npath_values};
    catalog__check_origin(doc, sec, lines[K_VERSION], lines[K_SCOPE], lists, counts,
                          ARRAY_SIZE(lists));
    if (t->agency && catalog__api_load(doc)) {
        ini_diag_add(&doc->diag, lines[K_SCOPE_LEVEL],
                     "scope_level = agency is for HighLevel definitions only");
    }
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */

void catalog__trigger_free(struct catalog_trigger *t)
{
    free(t->name);
    free(t->title);
    free(t->operation_id);
    free(t->spec);
    free(t->method);
    free(t->path);
    free(t->version);
    free(t->scope);
    free(t->resource);
    free(t->records);
    free(t->id_field);
    free(t->updated_field);
    free(t->created_field);
    strv_free(t->volatile_fields);
    free(t->confirm_delete);
    free(t->fan_out);
    free(t->parent_resource);
    free(t->batch);
    free(t->batch_param);
    strv_free(t->require_one);
    free(t->paging.limit_param);
    free(t->paging.skip_param);
    free(t->paging.in);
    free(t->paging.values);
    free(t->paging.cursor_param);
    free(t->paging.cursor_id_param);
    free(t->paging.cursor_path);
    free(t->paging.cursor_id_path);
    free(t->paging.more_field);
    free(t->total);
    free(t->deleted_field);
    for (size_t i = 0; i < t->nquery; i++) {
        free(t->query[i].name);
        free(t->query[i].value);
    }
    free(t->query);
    for (size_t i = 0; i < t->npath_values; i++) {
        free(t->path_values[i].name);
        free(t->path_values[i].value);
    }
    free(t->path_values);
    for (size_t i = 0; i < t->nbody; i++) {
        free(t->body[i].name);
        free(t->body[i].value);
    }
    free(t->body);
    for (size_t i = 0; i < t->nincr_body; i++) {
        free(t->incr_body[i].name);
        free(t->incr_body[i].value);
    }
    free(t->incr_body);
    for (size_t i = 0; i < t->nincr_query; i++) {
        free(t->incr_query[i].name);
        free(t->incr_query[i].value);
    }
    free(t->incr_query);
    free(t->watermark_field);
    for (size_t i = 0; i < t->nparams; i++) {
        free(t->params[i].name);
    }
    free(t->params);
}

static const struct catalog_trigger *find_linear(const struct catalog *cat, const char *name)
{
    for (size_t i = 0; i < cat->ntriggers; i++) {
        if (strcmp(cat->triggers[i].name, name) == 0) {
            return &cat->triggers[i];
        }
    }
    return NULL;
}

void catalog__load_trigger_file(struct catalog *cat, struct ini_doc *doc, const char *file)
{
    for (size_t i = 0; i < doc->nsections; i++) {
        const struct ini_section *sec = &doc->sections[i];
        if (!catalog__definition_section(doc, sec, "trigger", "[orders.search]")) {
            continue;
        }
        const struct catalog_trigger *dup = find_linear(cat, sec->kind);
        if (dup != NULL) {
            ini_diag_add(&doc->diag, sec->line,
                            "duplicate trigger '%s' (first defined at %s:%d)", sec->kind,
                            dup->file, dup->line);
            continue;
        }
        struct trigger_build tb = {.t = {.file = file, .line = sec->line}};
        tb.t.name = xstrdup(sec->kind);
        char *what = xasprintf("[%s]", tb.t.name);
        int lines[K_NKEYS];
        ini_apply(doc, sec, what, trigger_keys, K_NKEYS, &tb, trigger_extra, lines);
        free(what);
        finish_trigger(doc, sec, &tb, lines);
        free(tb.param_lines);
        free(tb.path_value_lines);
        /* Kept even when it has errors: later files then get duplicate
         * checks against it, and the whole catalog is dropped anyway. */
        cat->triggers = xrealloc(cat->triggers, (cat->ntriggers + 1) * sizeof(*cat->triggers));
        cat->triggers[cat->ntriggers++] = tb.t;
    }
}

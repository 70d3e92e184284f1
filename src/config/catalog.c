/*
 * catalog: see catalog.h. The INI rules and key tables come from
 * inifile.h.
 */
#include "catalog.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "resources.h"

/* At most this many *.ini files per subdirectory. */
#define CATALOG_MAX_FILES 1024
/* Largest page size a definition may declare. */
#define CATALOG_MAX_PAGE 10000

struct catalog {
    struct catalog_trigger *triggers; /* sorted by name after load */
    size_t ntriggers;
    struct catalog_action *actions;   /* sorted by name after load */
    size_t nactions;
    struct catalog_resource *resources; /* sorted by name after load */
    size_t nresources;
    char **files;                     /* paths of the files read; definitions point into them */
    size_t nfiles;
};

static const char *const where_names[] = {"path", "query", "body", NULL};
static const char *const type_names[] = {"string", "integer", "number", "boolean",
                                         "json",   "string_list", NULL};
static const char *const pagination_names[] = {"none",       "start_after", "search_after",
                                               "skip_limit", "offset_limit", NULL};

const char *catalog_where_name(enum catalog_where where)
{
    return (unsigned)where < ARRAY_SIZE(where_names) - 1 ? where_names[where] : "?";
}

const char *catalog_type_name(enum catalog_type type)
{
    return (unsigned)type < ARRAY_SIZE(type_names) - 1 ? type_names[type] : "?";
}

const char *catalog_pagination_name(enum catalog_pagination p)
{
    return (unsigned)p < ARRAY_SIZE(pagination_names) - 1 ? pagination_names[p] : "?";
}

static int choice_index(const char *const *choices, const char *value)
{
    for (int i = 0; choices[i] != NULL; i++) {
        if (strcmp(choices[i], value) == 0) {
            return i;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Value checks                                                              */

/* Lower-case dotted names: orders.search, orders.items.get. */
static bool valid_trigger_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > INI_NAME_MAX || s[0] == '.' || s[len - 1] == '.') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.' && s[i + 1] == '.') {
            return false;
        }
        if (!(ascii_is_lower(c) || ascii_is_digit(c) || c == '_' || c == '.')) {
            return false;
        }
    }
    return true;
}

/* A JSON field or parameter name: [A-Za-z0-9_]+ (resources.c). */
static bool valid_ident(const char *s, size_t len)
{
    return catalog__valid_ident(s, len);
}

/* Calls fn for each {placeholder} of a path template; returns -EINVAL (and
 * reports) on unbalanced or empty braces. */
static int each_placeholder(struct ini_doc *doc, int line, const char *key, const char *tpl,
                            void (*fn)(void *ctx, const char *name, size_t len), void *ctx)
{
    for (const char *p = tpl; *p != '\0'; p++) {
        if (*p == '}') {
            ini_diag_add(&doc->diag, line, "%s: '}' without '{'", key);
            return -EINVAL;
        }
        if (*p != '{') {
            continue;
        }
        const char *close = strchr(p + 1, '}');
        const char *open = strchr(p + 1, '{');
        if (close == NULL || (open != NULL && open < close)) {
            ini_diag_add(&doc->diag, line, "%s: '{' without '}'", key);
            return -EINVAL;
        }
        if (!valid_ident(p + 1, (size_t)(close - p - 1))) {
            ini_diag_add(&doc->diag, line,
                            "%s: placeholders are {NAME} with NAME of letters, digits and _", key);
            return -EINVAL;
        }
        if (fn != NULL) {
            fn(ctx, p + 1, (size_t)(close - p - 1));
        }
        p = close;
    }
    return 0;
}

static int check_template(struct ini_doc *doc, const struct ini_key *k, const char *value,
                          int line)
{
    if (value[0] != '/') {
        ini_diag_add(&doc->diag, line, "%s must start with '/'", k->name);
        return -EINVAL;
    }
    if (strpbrk(value, " \t?#") != NULL) {
        ini_diag_add(&doc->diag, line,
                        "%s must be a plain path (no spaces, query or fragment; use query.NAME "
                        "or param.NAME)",
                        k->name);
        return -EINVAL;
    }
    return each_placeholder(doc, line, k->name, value, NULL, NULL);
}

static int parse_path(struct ini_doc *doc, const struct ini_key *k, const char *value,
                      int line, void *field)
{
    if (check_template(doc, k, value, line) != 0) {
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrdup(value);
    return 0;
}

static void note_id(void *ctx, const char *name, size_t len)
{
    bool *has_id = ctx;
    if (len == 2 && memcmp(name, "id", 2) == 0) {
        *has_id = true;
    }
}

/* confirm_delete: a path template with {id}; its other placeholders must be
 * path parameters (checked in finish_trigger, once they are all known). */
static int parse_confirm_delete(struct ini_doc *doc, const struct ini_key *k,
                                const char *value, int line, void *field)
{
    if (check_template(doc, k, value, line) != 0) {
        return -EINVAL;
    }
    bool has_id = false;
    each_placeholder(doc, line, k->name, value, note_id, &has_id);
    if (!has_id) {
        ini_diag_add(&doc->diag, line,
                        "%s must contain {id} (the record's id); other placeholders are filled "
                        "like path's",
                        k->name);
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrdup(value);
    return 0;
}

/* records (and the paging paths): a dotted JSON path such as orders or data.items. */
static int parse_records(struct ini_doc *doc, const struct ini_key *k, const char *value,
                         int line, void *field)
{
    bool ok = true;
    for (const char *p = value; ok;) {
        size_t n = strcspn(p, ".");
        ok = valid_ident(p, n);
        if (p[n] == '\0') {
            break;
        }
        p += n + 1;
    }
    if (!ok) {
        ini_diag_add(&doc->diag, line,
                        "%s must be a dotted JSON path of names (letters, digits, _), e.g. "
                        "orders or data.items",
                        k->name);
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrdup(value);
    return 0;
}

/* A trigger's records or an action's result: a dotted JSON path, or "."
 * for the response root itself (a top-level array, a bare object with
 * single = yes, or an action's flat response such as a bare user: M1). */
static int parse_record_path(struct ini_doc *doc, const struct ini_key *k, const char *value,
                             int line, void *field)
{
    if (strcmp(value, ".") == 0) {
        char **dst = field;
        free(*dst);
        *dst = xstrdup(value);
        return 0;
    }
    return parse_records(doc, k, value, line, field);
}

/* resource, parent_resource, fan_out: one identifier. */
static int parse_ident(struct ini_doc *doc, const struct ini_key *k, const char *value,
                       int line, void *field)
{
    if (!valid_ident(value, strlen(value))) {
        ini_diag_add(&doc->diag, line, "%s must be a single name (letters, digits, _)",
                        k->name);
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrdup(value);
    return 0;
}

static int parse_pagination(struct ini_doc *doc, const struct ini_key *k,
                            const char *value, int line, void *field)
{
    int i = choice_index(pagination_names, value);
    if (i < 0) {
        ini_diag_add(&doc->diag, line,
                        "bad value for '%s' (allowed: none start_after search_after skip_limit "
                        "offset_limit)",
                        k->name);
        return -EINVAL;
    }
    *(enum catalog_pagination *)field = (enum catalog_pagination)i;
    return 0;
}

/* scope_level: location (the default) or agency (M15). */
static int parse_scope_level(struct ini_doc *doc, const struct ini_key *k, const char *value,
                             int line, void *field)
{
    bool agency = strcmp(value, "agency") == 0;
    if (!agency && strcmp(value, "location") != 0) {
        ini_diag_add(&doc->diag, line, "bad value for '%s' (allowed: location agency)",
                     k->name);
        return -EINVAL;
    }
    *(bool *)field = agency;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Key table                                                                 */

static const char *const methods[] = {"GET", "POST", NULL};
static const char *const page_in_names[] = {"query", "body", NULL};
static const char *const page_values_names[] = {"number", "string", NULL};

#define T(f) offsetof(struct catalog_trigger, f)
static const struct ini_key trigger_keys[] = {
    {.name = "title", .type = INI_KEY_STRING, .offset = T(title), .required = true},
    {.name = "operation_id", .type = INI_KEY_STRING, .offset = T(operation_id),
     .required = true},
    {.name = "spec", .type = INI_KEY_STRING, .offset = T(spec)},
    {.name = "method", .type = INI_KEY_STRING, .offset = T(method), .required = true,
     .choices = methods},
    {.name = "path", .type = INI_KEY_CUSTOM, .offset = T(path), .required = true,
     .parse = parse_path},
    {.name = "version", .type = INI_KEY_STRING, .offset = T(version), .required = true},
    {.name = "scope", .type = INI_KEY_STRING, .offset = T(scope), .required = true},
    {.name = "resource", .type = INI_KEY_CUSTOM, .offset = T(resource), .required = true,
     .parse = parse_ident},
    {.name = "records", .type = INI_KEY_CUSTOM, .offset = T(records), .required = true,
     .parse = parse_record_path},
    {.name = "single", .type = INI_KEY_BOOL, .offset = T(single), .def = "no"},
    {.name = "id_field", .type = INI_KEY_CUSTOM, .offset = T(id_field), .def = "id",
     .parse = parse_ident},
    {.name = "updated_field", .type = INI_KEY_CUSTOM, .offset = T(updated_field),
     .parse = parse_ident},
    {.name = "pagination", .type = INI_KEY_CUSTOM, .offset = T(pagination), .required = true,
     .parse = parse_pagination},
    {.name = "page_size", .type = INI_KEY_UNSIGNED, .offset = T(page_size), .min = 1,
     .max = CATALOG_MAX_PAGE},
    {.name = "max_page_size", .type = INI_KEY_UNSIGNED, .offset = T(max_page_size), .min = 1,
     .max = CATALOG_MAX_PAGE},
    {.name = "volatile", .type = INI_KEY_LIST, .offset = T(volatile_fields)},
    {.name = "confirm_delete", .type = INI_KEY_CUSTOM, .offset = T(confirm_delete),
     .parse = parse_confirm_delete},
    {.name = "fan_out", .type = INI_KEY_CUSTOM, .offset = T(fan_out), .parse = parse_ident},
    {.name = "parent_resource", .type = INI_KEY_CUSTOM, .offset = T(parent_resource),
     .parse = parse_ident},
    {.name = "require_one", .type = INI_KEY_LIST, .offset = T(require_one)},
    /* Paging (M4): overrides of the style's row in sources/poll/paging.c. */
    {.name = "page_limit_param", .type = INI_KEY_CUSTOM, .offset = T(paging.limit_param),
     .parse = parse_ident},
    {.name = "page_skip_param", .type = INI_KEY_CUSTOM, .offset = T(paging.skip_param),
     .parse = parse_ident},
    {.name = "page_in", .type = INI_KEY_STRING, .offset = T(paging.in),
     .choices = page_in_names},
    {.name = "page_values", .type = INI_KEY_STRING, .offset = T(paging.values),
     .choices = page_values_names},
    {.name = "cursor_param", .type = INI_KEY_CUSTOM, .offset = T(paging.cursor_param),
     .parse = parse_ident},
    {.name = "cursor_id_param", .type = INI_KEY_CUSTOM, .offset = T(paging.cursor_id_param),
     .parse = parse_ident},
    {.name = "cursor_path", .type = INI_KEY_CUSTOM, .offset = T(paging.cursor_path),
     .parse = parse_records},
    {.name = "cursor_id_path", .type = INI_KEY_CUSTOM, .offset = T(paging.cursor_id_path),
     .parse = parse_records},
    {.name = "more_field", .type = INI_KEY_CUSTOM, .offset = T(paging.more_field),
     .parse = parse_records},
    {.name = "total", .type = INI_KEY_CUSTOM, .offset = T(total), .parse = parse_records},
    {.name = "deleted_field", .type = INI_KEY_CUSTOM, .offset = T(deleted_field),
     .parse = parse_ident},
    {.name = "scope_level", .type = INI_KEY_CUSTOM, .offset = T(agency), .def = "location",
     .parse = parse_scope_level},
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
    K_PAGINATION,
    K_PAGE_SIZE,
    K_MAX_PAGE_SIZE,
    K_VOLATILE,
    K_CONFIRM_DELETE,
    K_FAN_OUT,
    K_PARENT_RESOURCE,
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
    K_NKEYS,
};
_Static_assert(ARRAY_SIZE(trigger_keys) == K_NKEYS, "catalog key enum out of sync");

/* ------------------------------------------------------------------------ */
/* Bindings and parameters (keys with a prefix)                              */

/*
 * A definition under construction. t is the first member, so the key
 * table's offsets (relative to struct catalog_trigger) also work on the
 * build record, which ini_apply hands to trigger_extra.
 */
struct trigger_build {
    struct catalog_trigger t;
    int *param_lines; /* parallel to t.params, for messages */
    int *path_value_lines; /* parallel to t.path_values */
};
_Static_assert(offsetof(struct trigger_build, t) == 0, "t must come first");

static void add_binding(struct ini_doc *doc, const struct ini_entry *e,
                        const char *name, struct catalog_binding **arr, size_t *n)
{
    const char *v = e->value;
    struct catalog_binding b = {0};
    if (v[0] == '\0') {
        ini_diag_add(&doc->diag, e->line, "empty value for '%s'", e->key);
        return;
    }
    if (strcmp(v, "{location}") == 0) {
        b.is_location = true;
        b.value = xstrdup(v);
    } else if (str_has_prefix(v, "json:")) {
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithOpts(v + 5, &end, 1);
        if (j == NULL) {
            size_t at = end != NULL && end >= v + 5 ? (size_t)(end - (v + 5)) + 1 : 1;
            ini_diag_add(&doc->diag, e->line,
                            "'%s' is not valid JSON after 'json:' (error near byte %zu)", e->key,
                            at);
            return;
        }
        cJSON_Delete(j);
        b.is_json = true;
        b.value = xstrdup(v + 5);
    } else if (v[0] == '{' && v[strlen(v) - 1] == '}') {
        ini_diag_add(&doc->diag, e->line,
                        "'%s': unknown placeholder (the known ones are {location} and, in "
                        "triggers, {company}; write a JSON object as json:{...})",
                        e->key);
        return;
    } else {
        b.value = xstrdup(v);
    }
    b.name = xstrdup(name);
    *arr = xrealloc(*arr, (*n + 1) * sizeof(**arr));
    (*arr)[(*n)++] = b;
}

/* True when the caller of catalog_load reserved name for [rule] sections
 * (rule) or [trigger] sections (!rule). doc->user is the catalog_reserved. */
static bool is_reserved(const struct ini_doc *doc, bool rule, const char *name)
{
    const struct catalog_reserved *r = doc->user;
    bool (*reserved)(const char *) = r == NULL ? NULL : rule ? r->rule_key : r->trigger_key;
    return reserved != NULL && reserved(name);
}

/*
 * param.NAME = WHERE TYPE REQUIRED, for triggers (any WHERE; names must not
 * be [trigger] keys) and actions (path or query; body members are
 * field.NAME; names must not be [rule] keys). lines runs parallel to *arr.
 */
static void add_param(struct ini_doc *doc, const struct ini_entry *e, const char *name,
                      bool action, struct catalog_param **arr, size_t *count, int **lines)
{
    size_t n = 0;
    char **w = strv_split(e->value, &n);
    int where = n == 3 ? choice_index(where_names, w[0]) : -1;
    int type = n == 3 ? choice_index(type_names, w[1]) : -1;
    bool ok = n == 3 && where >= 0 && type >= 0 &&
              (strcmp(w[2], "required") == 0 || strcmp(w[2], "optional") == 0);
    if (!ok) {
        ini_diag_add(&doc->diag, e->line,
                        "'%s' must be 'WHERE TYPE REQUIRED': WHERE is path, query or body; TYPE "
                        "is string, integer, number, boolean or json; REQUIRED is required or "
                        "optional",
                        e->key);
        goto out;
    }
    if (type == CATALOG_STRING_LIST) {
        /* Only action bodies know how to send a list; a query or path
         * parameter has no agreed encoding for one. */
        ini_diag_add(&doc->diag, e->line,
                        "'%s': string_list is only for action body fields (field.NAME)", e->key);
        goto out;
    }
    if (action && where == CATALOG_BODY) {
        ini_diag_add(&doc->diag, e->line,
                        "'%s': an action's body members are declared as 'field.%s = TYPE "
                        "REQUIRED'",
                        e->key, name);
        goto out;
    }
    if (!action && is_reserved(doc, false, name)) {
        ini_diag_add(&doc->diag, e->line,
                        "parameter name '%s' is reserved for [trigger] sections; rename it",
                        name);
        goto out;
    }
    if (action && is_reserved(doc, true, name)) {
        ini_diag_add(&doc->diag, e->line,
                        "parameter name '%s' is reserved for [rule] sections; rename it", name);
        goto out;
    }
    *arr = xrealloc(*arr, (*count + 1) * sizeof(**arr));
    *lines = xrealloc(*lines, (*count + 1) * sizeof(**lines));
    (*arr)[*count] = (struct catalog_param){
        .name = xstrdup(name),
        .where = (enum catalog_where)where,
        .type = (enum catalog_type)type,
        .required = strcmp(w[2], "required") == 0,
    };
    (*lines)[*count] = e->line;
    (*count)++;
out:
    strv_free(w);
}

/*
 * Which of the n prefixes e->key starts with: returns its index and sets
 * *name to the rest of the key; -1 when none does; -2 when the rest is not
 * an identifier (reported at e's line).
 */
static int prefixed_key(struct ini_doc *doc, const struct ini_entry *e,
                        const char *const *prefixes, size_t n, const char **name)
{
    for (size_t i = 0; i < n; i++) {
        if (!str_has_prefix(e->key, prefixes[i])) {
            continue;
        }
        *name = e->key + strlen(prefixes[i]);
        if (!valid_ident(*name, strlen(*name))) {
            ini_diag_add(&doc->diag, e->line,
                            "'%s': the name after '%s' must be letters, digits and _", e->key,
                            prefixes[i]);
            return -2;
        }
        return (int)i;
    }
    return -1;
}

/*
 * A trigger's binding: add_binding's values plus {company} (M3), the
 * companyId of the location's credential or [location] company_id, which
 * the poller fills in. A path.NAME binding (path) is one path segment, so
 * it takes no JSON. lines runs parallel to *arr when not NULL.
 */
static void add_trigger_binding(struct ini_doc *doc, const struct ini_entry *e,
                                const char *name, bool path, struct catalog_binding **arr,
                                size_t *n, int **lines)
{
    size_t before = *n;
    if (strcmp(e->value, "{company}") == 0) {
        *arr = xrealloc(*arr, (*n + 1) * sizeof(**arr));
        (*arr)[(*n)++] = (struct catalog_binding){
            .name = xstrdup(name), .value = xstrdup(e->value), .is_company = true};
    } else if (path && str_has_prefix(e->value, "json:")) {
        ini_diag_add(&doc->diag, e->line,
                     "'%s': a path value is text, {location} or {company} (not json:)",
                     e->key);
        return;
    } else {
        add_binding(doc, e, name, arr, n);
    }
    if (lines != NULL && *n > before) {
        *lines = xrealloc(*lines, *n * sizeof(**lines));
        (*lines)[*n - 1] = e->line;
    }
}

/* A trigger's query.NAME, body.NAME, path.NAME and param.NAME keys. */
static bool trigger_extra(struct ini_doc *doc, const struct ini_entry *e, void *obj)
{
    struct trigger_build *tb = obj;
    static const char *const prefixes[] = {"query.", "body.", "param.", "path."};
    const char *name = NULL;
    switch (prefixed_key(doc, e, prefixes, ARRAY_SIZE(prefixes), &name)) {
    case -1:
        return false;
    case 0:
        add_trigger_binding(doc, e, name, false, &tb->t.query, &tb->t.nquery, NULL);
        break;
    case 1:
        add_trigger_binding(doc, e, name, false, &tb->t.body, &tb->t.nbody, NULL);
        break;
    case 2:
        add_param(doc, e, name, false, &tb->t.params, &tb->t.nparams, &tb->param_lines);
        break;
    case 3:
        add_trigger_binding(doc, e, name, true, &tb->t.path_values, &tb->t.npath_values,
                            &tb->path_value_lines);
        break;
    default:
        break; /* reported */
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Cross checks                                                              */

struct path_check {
    struct ini_doc *doc;
    const struct catalog_param *params;
    size_t nparams;
    const struct catalog_binding *values; /* path.NAME bindings */
    size_t nvalues;
    int line;
    char **seen; /* placeholders found, strv */
    size_t nseen;
};

static const struct catalog_param *find_param(const struct catalog_param *params, size_t n,
                                              const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(params[i].name, name) == 0) {
            return &params[i];
        }
    }
    return NULL;
}

static const struct catalog_binding *find_binding(const struct catalog_binding *b, size_t n,
                                                  const char *name);

static void note_placeholder(void *ctx, const char *name, size_t len)
{
    struct path_check *pc = ctx;
    char *n = xstrndup(name, len);
    const struct catalog_param *p = find_param(pc->params, pc->nparams, n);
    bool fixed = find_binding(pc->values, pc->nvalues, n) != NULL;
    if ((p == NULL || p->where != CATALOG_PATH) && !fixed) {
        ini_diag_add(&pc->doc->diag, pc->line,
                        "path placeholder {%s} needs 'param.%s = path string required' or "
                        "'path.%s = VALUE'",
                        n, n, n);
    } else if (p != NULL && p->where == CATALOG_PATH && fixed) {
        ini_diag_add(&pc->doc->diag, pc->line,
                        "path placeholder {%s} is both a path parameter and a path.%s value", n,
                        n);
    }
    pc->seen = xrealloc(pc->seen, (pc->nseen + 2) * sizeof(*pc->seen));
    pc->seen[pc->nseen++] = n;
    pc->seen[pc->nseen] = NULL;
}

/* A confirm_delete placeholder other than {id} is filled like path's: it
 * must be a path parameter (a for_each child's is its parent's id). */
static void note_confirm_placeholder(void *ctx, const char *name, size_t len)
{
    struct path_check *pc = ctx;
    if (len == 2 && memcmp(name, "id", 2) == 0) {
        return;
    }
    char *n = xstrndup(name, len);
    const struct catalog_param *p = find_param(pc->params, pc->nparams, n);
    if ((p == NULL || p->where != CATALOG_PATH) &&
        find_binding(pc->values, pc->nvalues, n) == NULL) {
        ini_diag_add(&pc->doc->diag, pc->line,
                        "confirm_delete placeholder {%s} is not a path parameter or path.%s "
                        "value of this definition",
                        n, n);
    }
    free(n);
}

static const struct catalog_binding *find_binding(const struct catalog_binding *b, size_t n,
                                                  const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(b[i].name, name) == 0) {
            return &b[i];
        }
    }
    return NULL;
}

/* The styles each paging key applies to (a bit per enum catalog_pagination). */
#define STYLE(s) (1u << (s))
#define PAGED_STYLES                                                                          \
    (STYLE(CATALOG_PAGE_START_AFTER) | STYLE(CATALOG_PAGE_SEARCH_AFTER) |                     \
     STYLE(CATALOG_PAGE_SKIP_LIMIT) | STYLE(CATALOG_PAGE_OFFSET_LIMIT))
static const struct {
    int key;
    unsigned styles;
} paging_key_styles[] = {
    {K_PAGE_LIMIT_PARAM, PAGED_STYLES},
    {K_PAGE_IN, PAGED_STYLES},
    {K_PAGE_VALUES, PAGED_STYLES},
    {K_MORE_FIELD, PAGED_STYLES},
    {K_PAGE_SKIP_PARAM, STYLE(CATALOG_PAGE_SKIP_LIMIT) | STYLE(CATALOG_PAGE_OFFSET_LIMIT)},
    {K_CURSOR_PARAM, STYLE(CATALOG_PAGE_START_AFTER) | STYLE(CATALOG_PAGE_SEARCH_AFTER)},
    {K_CURSOR_PATH, STYLE(CATALOG_PAGE_START_AFTER) | STYLE(CATALOG_PAGE_SEARCH_AFTER)},
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
        each_placeholder(doc, lines[K_PATH], "path", t->path, note_placeholder, &pc);
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
        if ((p->where == CATALOG_QUERY && find_binding(t->query, t->nquery, p->name) != NULL) ||
            (p->where == CATALOG_BODY && find_binding(t->body, t->nbody, p->name) != NULL)) {
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
        if (lines[K_PAGE_SIZE] == 0 || lines[K_MAX_PAGE_SIZE] == 0) {
            ini_diag_add(&doc->diag, sec->line,
                            "[%s] is paginated: it needs page_size and max_page_size", t->name);
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
        each_placeholder(doc, pc.line, "confirm_delete", t->confirm_delete, note_confirm_placeholder,
                         &pc);
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
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */

static void trigger_free(struct catalog_trigger *t)
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
    strv_free(t->volatile_fields);
    free(t->confirm_delete);
    free(t->fan_out);
    free(t->parent_resource);
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

static void load_trigger_file(struct catalog *cat, struct ini_doc *doc, const char *file)
{
    for (size_t i = 0; i < doc->nsections; i++) {
        const struct ini_section *sec = &doc->sections[i];
        if (sec->skip) {
            continue;
        }
        if (sec->name != NULL || !valid_trigger_name(sec->kind)) {
            ini_diag_add(&doc->diag, sec->line,
                            "bad trigger name: use one lower-case dotted name such as "
                            "[orders.search] (a-z 0-9 _ .)");
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

/* ------------------------------------------------------------------------ */
/* Actions (the files of actions/)                                           */

static const char *const action_methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};

/* destructive_when = FIELD:null; stores FIELD (checked against the fields in
 * finish_action). null is the only condition so far: the one the API uses
 * to mean "remove". */
static int parse_destructive_when(struct ini_doc *doc, const struct ini_key *k,
                                  const char *value, int line, void *field)
{
    const char *colon = strchr(value, ':');
    if (colon == NULL || strcmp(colon, ":null") != 0 ||
        !valid_ident(value, (size_t)(colon - value))) {
        ini_diag_add(&doc->diag, line, "%s must be FIELD:null, e.g. businessId:null", k->name);
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrndup(value, (size_t)(colon - value));
    return 0;
}

#define A(f) offsetof(struct catalog_action, f)
static const struct ini_key action_keys[] = {
    {.name = "title", .type = INI_KEY_STRING, .offset = A(title), .required = true},
    {.name = "operation_id", .type = INI_KEY_STRING, .offset = A(operation_id),
     .required = true},
    {.name = "spec", .type = INI_KEY_STRING, .offset = A(spec)},
    {.name = "method", .type = INI_KEY_STRING, .offset = A(method), .required = true,
     .choices = action_methods},
    {.name = "path", .type = INI_KEY_CUSTOM, .offset = A(path), .required = true,
     .parse = parse_path},
    {.name = "version", .type = INI_KEY_STRING, .offset = A(version), .required = true},
    {.name = "scope", .type = INI_KEY_STRING, .offset = A(scope), .required = true},
    {.name = "success", .type = INI_KEY_UNSIGNED, .offset = A(success), .required = true,
     .min = 200, .max = 299},
    /* No defaults for these two: every definition states them, because a
     * wrong default would either skip the confirm = yes safety net or
     * retry a write that is not safe to repeat. */
    {.name = "destructive", .type = INI_KEY_BOOL, .offset = A(destructive), .required = true},
    {.name = "idempotent", .type = INI_KEY_BOOL, .offset = A(idempotent), .required = true},
    {.name = "gone_ok", .type = INI_KEY_BOOL, .offset = A(gone_ok), .def = "no"},
    {.name = "empty_body", .type = INI_KEY_BOOL, .offset = A(empty_body), .def = "no"},
    {.name = "result", .type = INI_KEY_CUSTOM, .offset = A(result), .parse = parse_record_path},
    {.name = "target", .type = INI_KEY_CUSTOM, .offset = A(target), .parse = parse_ident},
    {.name = "target_resource", .type = INI_KEY_CUSTOM, .offset = A(target_resource),
     .parse = parse_ident},
    {.name = "conflict_ok", .type = INI_KEY_BOOL, .offset = A(conflict_ok), .def = "no"},
    {.name = "natural_key", .type = INI_KEY_CUSTOM, .offset = A(natural_key),
     .parse = parse_ident},
    {.name = "destructive_when", .type = INI_KEY_CUSTOM, .offset = A(destructive_when),
     .parse = parse_destructive_when},
};
#undef A
enum {
    AK_TITLE,
    AK_OPERATION_ID,
    AK_SPEC,
    AK_METHOD,
    AK_PATH,
    AK_VERSION,
    AK_SCOPE,
    AK_SUCCESS,
    AK_DESTRUCTIVE,
    AK_IDEMPOTENT,
    AK_GONE_OK,
    AK_EMPTY_BODY,
    AK_RESULT,
    AK_TARGET,
    AK_TARGET_RESOURCE,
    AK_CONFLICT_OK,
    AK_NATURAL_KEY,
    AK_DESTRUCTIVE_WHEN,
    AK_NKEYS,
};
_Static_assert(ARRAY_SIZE(action_keys) == AK_NKEYS, "action key enum out of sync");

/* An action under construction; a comes first, as in trigger_build. */
struct action_build {
    struct catalog_action a;
    int *param_lines; /* parallel to a.params */
    int *field_lines; /* parallel to a.fields */
    int *query_lines; /* parallel to a.query */
    int *path_lines;  /* parallel to a.path_bind */
    int *default_lines; /* parallel to a.defaults */
};
_Static_assert(offsetof(struct action_build, a) == 0, "a must come first");

/* field.NAME = TYPE REQUIRED; TYPE secret is a string kept out of storage (M14). */
static void add_field(struct ini_doc *doc, const struct ini_entry *e, const char *name,
                      struct action_build *ab)
{
    struct catalog_action *a = &ab->a;
    size_t n = 0;
    char **w = strv_split(e->value, &n);
    bool nullable = n == 3 && strcmp(w[2], "nullable") == 0;
    bool secret = n >= 2 && strcmp(w[0], "secret") == 0;
    int type = secret ? (int)CATALOG_STRING
                      : n == 2 || nullable ? choice_index(type_names, w[0]) : -1;
    bool ok = (n == 2 || nullable) && type >= 0 && !(secret && nullable) &&
              (strcmp(w[1], "required") == 0 || strcmp(w[1], "optional") == 0);
    if (!ok) {
        ini_diag_add(&doc->diag, e->line,
                        "'%s' must be 'TYPE REQUIRED' or 'TYPE REQUIRED nullable': TYPE is "
                        "string, integer, number, boolean, string_list, json or secret (never "
                        "nullable); REQUIRED is required or optional",
                        e->key);
        goto out;
    }
    if (is_reserved(doc, true, name)) {
        ini_diag_add(&doc->diag, e->line,
                        "field name '%s' is reserved for [rule] sections; rename it", name);
        goto out;
    }
    a->fields = xrealloc(a->fields, (a->nfields + 1) * sizeof(*a->fields));
    ab->field_lines = xrealloc(ab->field_lines, (a->nfields + 1) * sizeof(*ab->field_lines));
    a->fields[a->nfields] = (struct catalog_field){
        .name = xstrdup(name),
        .type = (enum catalog_type)type,
        .required = strcmp(w[1], "required") == 0,
        .secret = secret,
        .nullable = nullable,
    };
    ab->field_lines[a->nfields] = e->line;
    a->nfields++;
out:
    strv_free(w);
}

/* query.NAME / path.NAME of an action: text or {location}; a URL carries no JSON. */
static void add_url_binding(struct ini_doc *doc, const struct ini_entry *e, const char *name,
                            struct catalog_binding **arr, size_t *n, int **lines)
{
    if (str_has_prefix(e->value, "json:")) {
        ini_diag_add(&doc->diag, e->line,
                     "'%s': a query or path binding is text or {location}, not json:", e->key);
        return;
    }
    size_t before = *n;
    add_binding(doc, e, name, arr, n);
    if (*n > before) {
        *lines = xrealloc(*lines, *n * sizeof(**lines));
        (*lines)[before] = e->line;
    }
}

/* default.NAME = VALUE (as body.NAME's VALUE); checked against the fields in
 * finish_action, which may come later in the section. */
static void add_default(struct ini_doc *doc, const struct ini_entry *e, const char *name,
                        struct action_build *ab)
{
    size_t before = ab->a.ndefaults;
    add_binding(doc, e, name, &ab->a.defaults, &ab->a.ndefaults);
    if (ab->a.ndefaults > before) {
        ab->default_lines = xrealloc(ab->default_lines, ab->a.ndefaults * sizeof(int));
        ab->default_lines[before] = e->line;
    }
}

/* An action's body.NAME, query.NAME, path.NAME, param.NAME, field.NAME and
 * default.NAME keys. */
static bool action_extra(struct ini_doc *doc, const struct ini_entry *e, void *obj)
{
    struct action_build *ab = obj;
    static const char *const prefixes[] = {"body.",  "param.", "field.",
                                           "query.", "path.",  "default."};
    const char *name = NULL;
    switch (prefixed_key(doc, e, prefixes, ARRAY_SIZE(prefixes), &name)) {
    case -1:
        return false;
    case 0:
        add_binding(doc, e, name, &ab->a.body, &ab->a.nbody);
        break;
    case 1:
        add_param(doc, e, name, true, &ab->a.params, &ab->a.nparams, &ab->param_lines);
        break;
    case 2:
        add_field(doc, e, name, ab);
        break;
    case 3:
        add_url_binding(doc, e, name, &ab->a.query, &ab->a.nquery, &ab->query_lines);
        break;
    case 4:
        add_url_binding(doc, e, name, &ab->a.path_bind, &ab->a.npath_bind, &ab->path_lines);
        break;
    case 5:
        add_default(doc, e, name, ab);
        break;
    default:
        break; /* reported */
    }
    return true;
}

static bool method_has_body(const char *method)
{
    return method != NULL &&
           (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
            strcmp(method, "PATCH") == 0);
}

/* A query.NAME or path.NAME binding is the engine's: no parameter of the
 * rule may set the same name. */
static void check_url_bindings(struct ini_doc *doc, const struct action_build *ab)
{
    const struct catalog_action *a = &ab->a;
    for (size_t i = 0; i < a->nquery; i++) {
        if (find_param(a->params, a->nparams, a->query[i].name) != NULL) {
            ini_diag_add(&doc->diag, ab->query_lines[i],
                         "query.%s is also declared as param.%s", a->query[i].name,
                         a->query[i].name);
        }
    }
    for (size_t i = 0; i < a->npath_bind; i++) {
        if (find_param(a->params, a->nparams, a->path_bind[i].name) != NULL) {
            ini_diag_add(&doc->diag, ab->path_lines[i], "path.%s is also declared as param.%s",
                         a->path_bind[i].name, a->path_bind[i].name);
        }
    }
}

/*
 * conflict_ok: a retried create whose first attempt's outcome was unknown
 * may find its own record ("already exists"). That only means success when
 * the request is a create (a non-idempotent POST) and a unique natural key
 * the rule always sends (a required field) is what clashed.
 */
static void check_conflict_ok(struct ini_doc *doc, const struct catalog_action *a,
                              const int *lines)
{
    if (a->conflict_ok) {
        if ((a->method != NULL && strcmp(a->method, "POST") != 0) || a->idempotent) {
            ini_diag_add(&doc->diag, lines[AK_CONFLICT_OK],
                         "conflict_ok = yes is only for creates (POST, idempotent = no)");
        }
        if (a->natural_key == NULL) {
            ini_diag_add(&doc->diag, lines[AK_CONFLICT_OK],
                         "conflict_ok needs natural_key (the unique field that clashes)");
        }
    } else if (a->natural_key != NULL) {
        ini_diag_add(&doc->diag, lines[AK_NATURAL_KEY], "natural_key is only for conflict_ok");
    }
    if (a->natural_key != NULL) {
        const struct catalog_field *f = catalog_action_field(a, a->natural_key);
        if (f == NULL || !f->required) {
            ini_diag_add(&doc->diag, lines[AK_NATURAL_KEY],
                         "natural_key names '%s', which is not a required field",
                         a->natural_key);
        }
    }
}

static void finish_action(struct ini_doc *doc, const struct ini_section *sec,
                          struct action_build *ab, const int *lines)
{
    struct catalog_action *a = &ab->a;

    if (a->path != NULL) {
        struct path_check pc = {.doc = doc,
                                .params = a->params,
                                .nparams = a->nparams,
                                .values = a->path_bind,
                                .nvalues = a->npath_bind,
                                .line = lines[AK_PATH]};
        each_placeholder(doc, lines[AK_PATH], "path", a->path, note_placeholder, &pc);
        for (size_t i = 0; i < a->nparams; i++) {
            if (a->params[i].where == CATALOG_PATH && !strv_contains(pc.seen, a->params[i].name)) {
                ini_diag_add(&doc->diag, ab->param_lines[i],
                                "path parameter '%s' does not appear in path as {%s}",
                                a->params[i].name, a->params[i].name);
            }
        }
        for (size_t i = 0; i < a->npath_bind; i++) {
            if (!strv_contains(pc.seen, a->path_bind[i].name)) {
                ini_diag_add(&doc->diag, ab->path_lines[i],
                             "path.%s does not appear in path as {%s}", a->path_bind[i].name,
                             a->path_bind[i].name);
            }
        }
        strv_free(pc.seen);
    }
    check_url_bindings(doc, ab);
    for (size_t i = 0; i < a->nparams; i++) {
        if (a->params[i].where == CATALOG_PATH && !a->params[i].required) {
            ini_diag_add(&doc->diag, ab->param_lines[i],
                            "path parameter '%s' must be required", a->params[i].name);
        }
    }

    /* In a [rule], parameters and fields share one key namespace, and the
     * catalog's own bindings are not the user's to set. */
    for (size_t i = 0; i < a->nfields; i++) {
        const struct catalog_field *f = &a->fields[i];
        if (find_param(a->params, a->nparams, f->name) != NULL) {
            ini_diag_add(&doc->diag, ab->field_lines[i],
                            "field '%s' has the name of param.%s (a [rule] could not tell them "
                            "apart)",
                            f->name, f->name);
        }
        if (find_binding(a->body, a->nbody, f->name) != NULL) {
            ini_diag_add(&doc->diag, ab->field_lines[i],
                            "field '%s' is also a fixed body.%s binding", f->name, f->name);
        }
    }

    bool sends_body = a->nfields > 0 || a->nbody > 0;
    if (a->method != NULL && strcmp(a->method, "GET") == 0 && sends_body) {
        ini_diag_add(&doc->diag, sec->line, "[%s] is a GET endpoint: it takes no body", a->name);
    }
    if (a->empty_body && sends_body) {
        ini_diag_add(&doc->diag, lines[AK_EMPTY_BODY],
                        "empty_body = yes, but [%s] declares body members", a->name);
    }
    if (a->empty_body && a->method != NULL && !method_has_body(a->method)) {
        ini_diag_add(&doc->diag, lines[AK_EMPTY_BODY],
                        "empty_body = yes is only meaningful for POST, PUT and PATCH");
    }
    if (!a->empty_body && !sends_body && method_has_body(a->method)) {
        ini_diag_add(&doc->diag, sec->line,
                        "[%s] is a %s without body members: declare field.NAME or body.NAME, or "
                        "set empty_body = yes",
                        a->name, a->method);
    }
    if (a->gone_ok && a->method != NULL && strcmp(a->method, "DELETE") != 0) {
        ini_diag_add(&doc->diag, lines[AK_GONE_OK],
                        "gone_ok = yes is only for DELETE endpoints (a retry finding the record "
                        "gone means it was deleted)");
    }
    check_conflict_ok(doc, a, lines);
    for (size_t i = 0; i < a->ndefaults; i++) {
        const struct catalog_field *f = catalog_action_field(a, a->defaults[i].name);
        if (f == NULL || f->required || f->secret) {
            ini_diag_add(&doc->diag, ab->default_lines[i],
                         "default.%s names no optional, non-secret field", a->defaults[i].name);
        }
    }
    if (a->destructive_when != NULL) {
        const struct catalog_field *f = catalog_action_field(a, a->destructive_when);
        if (f == NULL || !f->nullable) {
            ini_diag_add(&doc->diag, lines[AK_DESTRUCTIVE_WHEN],
                         "destructive_when names '%s', which is not a nullable field",
                         a->destructive_when);
        }
        if (a->destructive) {
            ini_diag_add(&doc->diag, lines[AK_DESTRUCTIVE_WHEN],
                         "destructive_when is for destructive = no (it is then destructive "
                         "only when %s is null)",
                         a->destructive_when);
        }
    }
    if (a->target != NULL) {
        const struct catalog_param *p = find_param(a->params, a->nparams, a->target);
        if (p == NULL || p->where != CATALOG_PATH) {
            ini_diag_add(&doc->diag, lines[AK_TARGET],
                            "target names '%s', which is not a declared path parameter",
                            a->target);
        }
        if (a->target_resource == NULL) {
            ini_diag_add(&doc->diag, lines[AK_TARGET], "target needs target_resource");
        }
    }
}

static void field_free(struct catalog_field *f)
{
    free(f->name);
}

static void bindings_free(struct catalog_binding *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(b[i].name);
        free(b[i].value);
    }
    free(b);
}

static void action_free(struct catalog_action *a)
{
    free(a->name);
    free(a->title);
    free(a->operation_id);
    free(a->spec);
    free(a->method);
    free(a->path);
    free(a->version);
    free(a->scope);
    for (size_t i = 0; i < a->nparams; i++) {
        free(a->params[i].name);
    }
    free(a->params);
    for (size_t i = 0; i < a->nfields; i++) {
        field_free(&a->fields[i]);
    }
    free(a->fields);
    bindings_free(a->body, a->nbody);
    bindings_free(a->query, a->nquery);
    bindings_free(a->path_bind, a->npath_bind);
    bindings_free(a->defaults, a->ndefaults);
    free(a->result);
    free(a->target);
    free(a->target_resource);
    free(a->natural_key);
    free(a->destructive_when);
}

static const struct catalog_action *find_action_linear(const struct catalog *cat,
                                                       const char *name)
{
    for (size_t i = 0; i < cat->nactions; i++) {
        if (strcmp(cat->actions[i].name, name) == 0) {
            return &cat->actions[i];
        }
    }
    return NULL;
}

static void load_action_file(struct catalog *cat, struct ini_doc *doc, const char *file)
{
    for (size_t i = 0; i < doc->nsections; i++) {
        const struct ini_section *sec = &doc->sections[i];
        if (sec->skip) {
            continue;
        }
        if (sec->name != NULL || !valid_trigger_name(sec->kind)) {
            ini_diag_add(&doc->diag, sec->line,
                            "bad action name: use one lower-case dotted name such as "
                            "[orders.items.create] (a-z 0-9 _ .)");
            continue;
        }
        /* A rule's `do` takes these two words for the generic actions. */
        if (strcmp(sec->kind, "http") == 0 || strcmp(sec->kind, "exec") == 0) {
            ini_diag_add(&doc->diag, sec->line,
                            "action name '%s' is reserved for the generic action", sec->kind);
            continue;
        }
        const struct catalog_action *dup = find_action_linear(cat, sec->kind);
        if (dup != NULL) {
            ini_diag_add(&doc->diag, sec->line, "duplicate action '%s' (first defined at %s:%d)",
                            sec->kind, dup->file, dup->line);
            continue;
        }
        struct action_build ab = {.a = {.file = file, .line = sec->line}};
        ab.a.name = xstrdup(sec->kind);
        char *what = xasprintf("[%s]", ab.a.name);
        int lines[AK_NKEYS];
        ini_apply(doc, sec, what, action_keys, AK_NKEYS, &ab, action_extra, lines);
        free(what);
        finish_action(doc, sec, &ab, lines);
        free(ab.param_lines);
        free(ab.field_lines);
        free(ab.query_lines);
        free(ab.path_lines);
        free(ab.default_lines);
        cat->actions = xrealloc(cat->actions, (cat->nactions + 1) * sizeof(*cat->actions));
        cat->actions[cat->nactions++] = ab.a;
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_trigger(const void *a, const void *b)
{
    return strcmp(((const struct catalog_trigger *)a)->name,
                  ((const struct catalog_trigger *)b)->name);
}

static int cmp_action(const void *a, const void *b)
{
    return strcmp(((const struct catalog_action *)a)->name,
                  ((const struct catalog_action *)b)->name);
}

/* Sorted list of the *.ini regular files in dir; -errno if unreadable. */
static int list_ini_files(const char *dir, char ***out, size_t *count)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -errno;
    }
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !str_has_suffix(de->d_name, ".ini")) {
            continue;
        }
        if (n == CATALOG_MAX_FILES) {
            rc = -E2BIG;
            break;
        }
        char *path = xasprintf("%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        names = xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = path;
    }
    closedir(d);
    if (n > 0) {
        qsort(names, n, sizeof(*names), cmp_str);
    }
    *out = names;
    *count = n;
    return rc;
}

/*
 * One row per subdirectory of the catalog. actions/ may be missing (a
 * catalog of triggers only, e.g. in tests); rules then find no action.
 */
struct catalog_subdir {
    const char *name;
    bool required;
    void (*load_file)(struct catalog *cat, struct ini_doc *doc, const char *file);
};

static void load_resource_file(struct catalog *cat, struct ini_doc *doc, const char *file)
{
    catalog__load_resources(&cat->resources, &cat->nresources, doc, file);
}

static const struct catalog_subdir subdirs[] = {
    {"triggers", true, load_trigger_file},
    {"actions", false, load_action_file},
    {"resources", false, load_resource_file},
};

/* d->res for a resource name that must be declared (when any is). */
static const struct catalog_resource *link_resource(const struct catalog *cat, const char *name,
                                                    const char *key, const char *what,
                                                    const char *file, int line,
                                                    struct ini_errors *errs, int *bad)
{
    const struct catalog_resource *r = catalog__resource_find(cat->resources, cat->nresources,
                                                              name);
    if (r == NULL && name != NULL) {
        ini_errors_add(errs, file, line,
                          "[%s]: %s '%s' has no [resource %s] section in resources/", what, key,
                          name, name);
        (*bad)++;
    }
    return r;
}

/*
 * Links every definition to its resource's facts. A catalog without
 * resources declares none and is not checked (a catalog of triggers only,
 * e.g. in tests); otherwise every resource named must be declared. Returns
 * 0 or -EINVAL (errors in errs).
 */
static int link_resources(struct catalog *cat, struct ini_errors *errs)
{
    if (cat->nresources == 0) {
        return 0;
    }
    int bad = (int)catalog__check_resources(cat->resources, cat->nresources, errs);
    for (size_t i = 0; i < cat->ntriggers; i++) {
        struct catalog_trigger *t = &cat->triggers[i];
        t->res = link_resource(cat, t->resource, "resource", t->name, t->file, t->line, errs,
                               &bad);
        link_resource(cat, t->parent_resource, "parent_resource", t->name, t->file, t->line,
                      errs, &bad);
    }
    for (size_t i = 0; i < cat->nactions; i++) {
        struct catalog_action *a = &cat->actions[i];
        a->target_res = link_resource(cat, a->target_resource, "target_resource", a->name,
                                      a->file, a->line, errs, &bad);
    }
    return bad == 0 ? 0 : -EINVAL;
}

static int load_subdir(struct catalog *cat, const char *dir, const struct catalog_subdir *sd,
                       const struct catalog_reserved *reserved, struct ini_errors *errs)
{
    char *path = xasprintf("%s/%s", dir, sd->name);
    char **files = NULL;
    size_t n = 0;
    int rc = list_ini_files(path, &files, &n);
    if (rc == -ENOENT && !sd->required) {
        free(path);
        return 0;
    }
    if (rc == -E2BIG) {
        ini_errors_add(errs, path, 0, "more than %d *.ini files", CATALOG_MAX_FILES);
        rc = -EINVAL;
    } else if (rc < 0) {
        ini_errors_add(errs, path, 0, "cannot read the catalog directory: %s", strerror(-rc));
    }
    free(path);
    if (rc < 0 || sd->load_file == NULL) {
        for (size_t i = 0; i < n; i++) {
            free(files[i]);
        }
        free(files);
        return rc;
    }
    int result = 0;
    for (size_t i = 0; i < n; i++) {
        /* The catalog keeps the path: definitions point at it. */
        cat->files = xrealloc(cat->files, (cat->nfiles + 1) * sizeof(*cat->files));
        cat->files[cat->nfiles++] = files[i];
        struct ini_doc doc;
        int frc = ini_load(files[i], &doc);
        doc.user = (void *)reserved; /* read only, by is_reserved */
        if (frc == 0) {
            sd->load_file(cat, &doc, files[i]);
        }
        if (doc.diag.count != 0 && result == 0) {
            result = frc < 0 ? frc : -EINVAL;
        }
        ini_finish(&doc, errs);
    }
    free(files);
    return result;
}

int catalog_load(const char *dir, const struct catalog_reserved *reserved, struct catalog **out,
                 struct ini_errors *errs)
{
    *out = NULL;
    if (dir == NULL || dir[0] == '\0') {
        ini_errors_add(errs, "(catalog)", 0, "no catalog directory given");
        return -EINVAL;
    }
    struct catalog *cat = xcalloc(1, sizeof(*cat));
    int rc = 0;
    for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
        int r = load_subdir(cat, dir, &subdirs[i], reserved, errs);
        if (r < 0 && rc == 0) {
            rc = r;
        }
    }
    if (rc == 0) {
        rc = link_resources(cat, errs);
    }
    if (rc != 0) {
        catalog_free(cat);
        return rc;
    }
    if (cat->ntriggers > 0) {
        qsort(cat->triggers, cat->ntriggers, sizeof(*cat->triggers), cmp_trigger);
    }
    if (cat->nactions > 0) {
        qsort(cat->actions, cat->nactions, sizeof(*cat->actions), cmp_action);
    }
    *out = cat;
    return 0;
}

void catalog_free(struct catalog *cat)
{
    if (cat == NULL) {
        return;
    }
    for (size_t i = 0; i < cat->ntriggers; i++) {
        trigger_free(&cat->triggers[i]);
    }
    free(cat->triggers);
    for (size_t i = 0; i < cat->nactions; i++) {
        action_free(&cat->actions[i]);
    }
    free(cat->actions);
    for (size_t i = 0; i < cat->nresources; i++) {
        catalog__resource_free(&cat->resources[i]);
    }
    free(cat->resources);
    for (size_t i = 0; i < cat->nfiles; i++) {
        free(cat->files[i]);
    }
    free(cat->files);
    free(cat);
}

const struct catalog_trigger *catalog_find_trigger(const struct catalog *cat, const char *name)
{
    if (cat == NULL || name == NULL || cat->ntriggers == 0) {
        return NULL;
    }
    struct catalog_trigger key = {.name = (char *)name};
    return bsearch(&key, cat->triggers, cat->ntriggers, sizeof(*cat->triggers), cmp_trigger);
}

size_t catalog_trigger_count(const struct catalog *cat)
{
    return cat != NULL ? cat->ntriggers : 0;
}

const struct catalog_trigger *catalog_trigger_at(const struct catalog *cat, size_t i)
{
    return cat != NULL && i < cat->ntriggers ? &cat->triggers[i] : NULL;
}

const struct catalog_param *catalog_trigger_param(const struct catalog_trigger *def,
                                                  const char *name)
{
    for (size_t i = 0; def != NULL && i < def->nparams; i++) {
        if (strcmp(def->params[i].name, name) == 0) {
            return &def->params[i];
        }
    }
    return NULL;
}

const struct catalog_binding *catalog_trigger_path_value(const struct catalog_trigger *def,
                                                         const char *name)
{
    return find_binding(def->path_values, def->npath_values, name);
}

static bool any_company(const struct catalog_binding *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i].is_company) {
            return true;
        }
    }
    return false;
}

bool catalog_trigger_uses_company(const struct catalog_trigger *def)
{
    return any_company(def->query, def->nquery) || any_company(def->body, def->nbody) ||
           any_company(def->path_values, def->npath_values);
}

bool catalog_trigger_records_at_root(const struct catalog_trigger *def)
{
    return def->records != NULL && strcmp(def->records, ".") == 0;
}

const struct catalog_action *catalog_find_action(const struct catalog *cat, const char *name)
{
    if (cat == NULL || name == NULL || cat->nactions == 0) {
        return NULL;
    }
    struct catalog_action key = {.name = (char *)name};
    return bsearch(&key, cat->actions, cat->nactions, sizeof(*cat->actions), cmp_action);
}

size_t catalog_action_count(const struct catalog *cat)
{
    return cat != NULL ? cat->nactions : 0;
}

const struct catalog_action *catalog_action_at(const struct catalog *cat, size_t i)
{
    return cat != NULL && i < cat->nactions ? &cat->actions[i] : NULL;
}

const struct catalog_binding *catalog_action_default(const struct catalog_action *def,
                                                     const char *name)
{
    return def != NULL && name != NULL ? find_binding(def->defaults, def->ndefaults, name) : NULL;
}

const struct catalog_field *catalog_action_field(const struct catalog_action *def,
                                                 const char *name)
{
    for (size_t i = 0; def != NULL && name != NULL && i < def->nfields; i++) {
        if (strcmp(def->fields[i].name, name) == 0) {
            return &def->fields[i];
        }
    }
    return NULL;
}

const struct catalog_param *catalog_action_param(const struct catalog_action *def,
                                                 const char *name)
{
    return def != NULL && name != NULL ? find_param(def->params, def->nparams, name) : NULL;
}

const struct catalog_binding *catalog_action_binding(const struct catalog_action *def,
                                                     const char *name)
{
    return def != NULL && name != NULL ? find_binding(def->body, def->nbody, name) : NULL;
}

const struct catalog_resource *catalog_find_resource(const struct catalog *cat,
                                                     const char *name)
{
    return cat == NULL ? NULL : catalog__resource_find(cat->resources, cat->nresources, name);
}

size_t catalog_resource_count(const struct catalog *cat)
{
    return cat->nresources;
}

const struct catalog_resource *catalog_resource_at(const struct catalog *cat, size_t i)
{
    return i < cat->nresources ? &cat->resources[i] : NULL;
}

/*
 * catalog_parse: the parsing helpers the trigger and action definitions
 * share (catalog_int.h): the value checks of single keys, {placeholder}
 * walking, bindings and parameters, and the path cross checks.
 */
#include <cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_int.h"
#include "resources.h"

static const char *const where_names[] = {"path", "query", "body", NULL};
const char *const catalog__type_names[] = {"string", "integer", "number", "boolean",
                                          "json",   "string_list", NULL};
static const char *const pagination_names[] = {"none",         "start_after", "search_after",
                                               "skip_limit",   "offset_limit", "cursor",
                                               NULL};

const char *catalog_where_name(enum catalog_where where)
{
    return (unsigned)where < ARRAY_SIZE(where_names) - 1 ? where_names[where] : "?";
}

const char *catalog_type_name(enum catalog_type type)
{
    return (unsigned)type < ARRAY_SIZE(catalog__type_names) - 1 ? catalog__type_names[type]
                                                                : "?";
}

const char *catalog_pagination_name(enum catalog_pagination p)
{
    return (unsigned)p < ARRAY_SIZE(pagination_names) - 1 ? pagination_names[p] : "?";
}

int catalog__choice_index(const char *const *choices, const char *value)
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
static bool valid_definition_name(const char *s)
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

bool catalog__definition_section(struct ini_doc *doc, const struct ini_section *sec,
                                 const char *kind, const char *example)
{
    if (sec->skip) {
        return false;
    }
    if (sec->name != NULL || !valid_definition_name(sec->kind)) {
        ini_diag_add(&doc->diag, sec->line,
                     "bad %s name: use one lower-case dotted name such as %s (a-z 0-9 _ .)",
                     kind, example);
        return false;
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
int catalog__each_placeholder(struct ini_doc *doc, int line, const char *key, const char *tpl,
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
        size_t len = (size_t)(close - p - 1);
        if (!valid_ident(p + 1, len) && catalog_record_placeholder(p + 1, len) == 0) {
            ini_diag_add(&doc->diag, line,
                            "%s: placeholders are {NAME} with NAME of letters, digits and _ "
                            "(or, in confirm_delete, {record.FIELD})",
                            key);
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
    return catalog__each_placeholder(doc, line, k->name, value, NULL, NULL);
}

int catalog__parse_path(struct ini_doc *doc, const struct ini_key *k, const char *value,
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
 * path parameters, path.NAME values or {record.FIELD} (checked in
 * finish_trigger, once they are all known). */
int catalog__parse_confirm_delete(struct ini_doc *doc, const struct ini_key *k,
                                  const char *value, int line, void *field)
{
    if (check_template(doc, k, value, line) != 0) {
        return -EINVAL;
    }
    bool has_id = false;
    catalog__each_placeholder(doc, line, k->name, value, note_id, &has_id);
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
int catalog__parse_records(struct ini_doc *doc, const struct ini_key *k, const char *value,
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
int catalog__parse_record_path(struct ini_doc *doc, const struct ini_key *k, const char *value,
                               int line, void *field)
{
    if (strcmp(value, ".") == 0) {
        char **dst = field;
        free(*dst);
        *dst = xstrdup(value);
        return 0;
    }
    return catalog__parse_records(doc, k, value, line, field);
}

/* resource, parent_resource, fan_out: one identifier. */
int catalog__parse_ident(struct ini_doc *doc, const struct ini_key *k, const char *value,
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

int catalog__parse_pagination(struct ini_doc *doc, const struct ini_key *k,
                              const char *value, int line, void *field)
{
    int i = catalog__choice_index(pagination_names, value);
    if (i < 0) {
        ini_diag_add(&doc->diag, line,
                        "bad value for '%s' (allowed: none start_after search_after skip_limit "
                        "offset_limit cursor)",
                        k->name);
        return -EINVAL;
    }
    *(enum catalog_pagination *)field = (enum catalog_pagination)i;
    return 0;
}

/* scope_level: location (the default) or agency (M15). */
int catalog__parse_scope_level(struct ini_doc *doc, const struct ini_key *k, const char *value,
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
/* Bindings and parameters (keys with a prefix)                              */

void catalog__add_binding(struct ini_doc *doc, const struct ini_entry *e,
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
    } else if (strcmp(v, "{company}") == 0) {
        b.is_company = true; /* the location's companyId (M3) */
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
                        "'%s': unknown placeholder (the known ones are {location} and "
                        "{company}; write a JSON object as json:{...})",
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
bool catalog__api_load(const struct ini_doc *doc)
{
    const struct catalog__load *l = doc->user;
    return l != NULL && l->api;
}

void catalog__check_origin(struct ini_doc *doc, const struct ini_section *sec,
                           int version_line, int scope_line,
                           const struct catalog_binding *const *lists, const size_t *counts,
                           size_t nlists)
{
    const struct catalog__load *l = doc->user;
    if (l == NULL || !l->api) {
        if (version_line == 0) {
            ini_diag_add(&doc->diag, sec->line, "missing required key 'version' in [%s]",
                         sec->kind);
        }
        if (scope_line == 0) {
            ini_diag_add(&doc->diag, sec->line, "missing required key 'scope' in [%s]",
                         sec->kind);
        }
        return;
    }
    if (version_line != 0) {
        ini_diag_add(&doc->diag, version_line,
                     "version is HighLevel's Version header; a definition of your own API "
                     "sends none");
    }
    for (size_t l2 = 0; l2 < nlists; l2++) {
        for (size_t i = 0; i < counts[l2]; i++) {
            if (lists[l2][i].is_location || lists[l2][i].is_company) {
                ini_diag_add(&doc->diag, sec->line,
                             "'%s' is %s, which only HighLevel definitions have (your own "
                             "API has no location)",
                             lists[l2][i].name,
                             lists[l2][i].is_location ? "{location}" : "{company}");
            }
        }
    }
}

bool catalog__is_reserved(const struct ini_doc *doc, bool rule, const char *name)
{
    const struct catalog__load *l = doc->user;
    const struct catalog_reserved *r = l != NULL ? l->reserved : NULL;
    bool (*reserved)(const char *) = r == NULL ? NULL : rule ? r->rule_key : r->trigger_key;
    return reserved != NULL && reserved(name);
}

/*
 * param.NAME = WHERE TYPE REQUIRED, for triggers (any WHERE; names must not
 * be [trigger] keys) and actions (path or query; body members are
 * field.NAME; names must not be [rule] keys). lines runs parallel to *arr.
 */
void catalog__add_param(struct ini_doc *doc, const struct ini_entry *e, const char *name,
                        bool action, struct catalog_param **arr, size_t *count, int **lines)
{
    size_t n = 0;
    char **w = strv_split(e->value, &n);
    int where = n == 3 ? catalog__choice_index(where_names, w[0]) : -1;
    int type = n == 3 ? catalog__choice_index(catalog__type_names, w[1]) : -1;
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
    if (!action && catalog__is_reserved(doc, false, name)) {
        ini_diag_add(&doc->diag, e->line,
                        "parameter name '%s' is reserved for [trigger] sections; rename it",
                        name);
        goto out;
    }
    if (action && catalog__is_reserved(doc, true, name)) {
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
int catalog__prefixed_key(struct ini_doc *doc, const struct ini_entry *e,
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

/* ------------------------------------------------------------------------ */
/* Cross checks                                                              */

const struct catalog_param *catalog__find_param(const struct catalog_param *params, size_t n,
                                                const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(params[i].name, name) == 0) {
            return &params[i];
        }
    }
    return NULL;
}

void catalog__note_placeholder(void *ctx, const char *name, size_t len)
{
    struct path_check *pc = ctx;
    char *n = xstrndup(name, len);
    if (catalog_record_placeholder(name, len) != 0) {
        ini_diag_add(&pc->doc->diag, pc->line,
                     "path placeholder {%s}: a record's fields fill confirm_delete only", n);
        free(n);
        return;
    }
    const struct catalog_param *p = catalog__find_param(pc->params, pc->nparams, n);
    bool fixed = catalog__find_binding(pc->values, pc->nvalues, n) != NULL;
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

/* A confirm_delete placeholder other than {id} and {record.FIELD} is filled
 * like path's: it must be a path parameter (a for_each child's is its
 * parent's id). */
void catalog__note_confirm_placeholder(void *ctx, const char *name, size_t len)
{
    struct path_check *pc = ctx;
    if (len == 2 && memcmp(name, "id", 2) == 0) {
        return;
    }
    if (catalog_record_placeholder(name, len) != 0) {
        pc->record_fields = true;
        return;
    }
    char *n = xstrndup(name, len);
    const struct catalog_param *p = catalog__find_param(pc->params, pc->nparams, n);
    if ((p == NULL || p->where != CATALOG_PATH) &&
        catalog__find_binding(pc->values, pc->nvalues, n) == NULL) {
        ini_diag_add(&pc->doc->diag, pc->line,
                        "confirm_delete placeholder {%s} is not a path parameter or path.%s "
                        "value of this definition",
                        n, n);
    }
    free(n);
}

const struct catalog_binding *catalog__find_binding(const struct catalog_binding *b, size_t n,
                                                    const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(b[i].name, name) == 0) {
            return &b[i];
        }
    }
    return NULL;
}

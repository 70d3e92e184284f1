/*
 * catalog_action: the action definitions (the files of actions/): the key
 * table, the prefixed keys, the cross checks of finish_action, and loading
 * one file (catalog_int.h).
 */
#include <cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_int.h"
#include "resources.h"


static const char *const action_methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};

/* destructive_when = FIELD:null; stores FIELD (checked against the fields in
 * finish_action). null is the only condition so far: the one the API uses
 * to mean "remove". */
static int parse_destructive_when(struct ini_doc *doc, const struct ini_key *k,
                                  const char *value, int line, void *field)
{
    const char *colon = strchr(value, ':');
    if (colon == NULL || strcmp(colon, ":null") != 0 ||
        !catalog__valid_ident(value, (size_t)(colon - value))) {
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
     .parse = catalog__parse_path},
    /* Required in the product's catalog only (catalog__check_origin). */
    {.name = "version", .type = INI_KEY_STRING, .offset = A(version)},
    {.name = "scope", .type = INI_KEY_STRING, .offset = A(scope)},
    {.name = "success", .type = INI_KEY_UNSIGNED, .offset = A(success), .required = true,
     .min = 200, .max = 299},
    /* No defaults for these two: every definition states them, because a
     * wrong default would either skip the confirm = yes safety net or
     * retry a write that is not safe to repeat. */
    {.name = "destructive", .type = INI_KEY_BOOL, .offset = A(destructive), .required = true},
    {.name = "idempotent", .type = INI_KEY_BOOL, .offset = A(idempotent), .required = true},
    {.name = "gone_ok", .type = INI_KEY_BOOL, .offset = A(gone_ok), .def = "no"},
    {.name = "empty_body", .type = INI_KEY_BOOL, .offset = A(empty_body), .def = "no"},
    {.name = "result", .type = INI_KEY_CUSTOM, .offset = A(result),
     .parse = catalog__parse_record_path},
    {.name = "target", .type = INI_KEY_CUSTOM, .offset = A(target), .parse = catalog__parse_ident},
    {.name = "target_resource", .type = INI_KEY_CUSTOM, .offset = A(target_resource),
     .parse = catalog__parse_ident},
    {.name = "conflict_ok", .type = INI_KEY_BOOL, .offset = A(conflict_ok), .def = "no"},
    {.name = "natural_key", .type = INI_KEY_CUSTOM, .offset = A(natural_key),
     .parse = catalog__parse_ident},
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
                      : n == 2 || nullable ? catalog__choice_index(catalog__type_names, w[0]) : -1;
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
    if (catalog__is_reserved(doc, true, name)) {
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
                     "'%s': a query or path binding is text, {location} or {company}, not json:", e->key);
        return;
    }
    size_t before = *n;
    catalog__add_binding(doc, e, name, arr, n);
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
    catalog__add_binding(doc, e, name, &ab->a.defaults, &ab->a.ndefaults);
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
    switch (catalog__prefixed_key(doc, e, prefixes, ARRAY_SIZE(prefixes), &name)) {
    case -1:
        return false;
    case 0:
        catalog__add_binding(doc, e, name, &ab->a.body, &ab->a.nbody);
        break;
    case 1:
        catalog__add_param(doc, e, name, true, &ab->a.params, &ab->a.nparams, &ab->param_lines);
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
        if (catalog__find_param(a->params, a->nparams, a->query[i].name) != NULL) {
            ini_diag_add(&doc->diag, ab->query_lines[i],
                         "query.%s is also declared as param.%s", a->query[i].name,
                         a->query[i].name);
        }
    }
    for (size_t i = 0; i < a->npath_bind; i++) {
        if (catalog__find_param(a->params, a->nparams, a->path_bind[i].name) != NULL) {
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
    const struct catalog_binding *lists[] = {a->body, a->query, a->path_bind, a->defaults};
    size_t counts[] = {a->nbody, a->nquery, a->npath_bind, a->ndefaults};
    catalog__check_origin(doc, sec, lines[AK_VERSION], lines[AK_SCOPE], lists, counts,
                          ARRAY_SIZE(lists));

    if (a->path != NULL) {
        struct path_check pc = {.doc = doc,
                                .params = a->params,
                                .nparams = a->nparams,
                                .values = a->path_bind,
                                .nvalues = a->npath_bind,
                                .line = lines[AK_PATH]};
        catalog__each_placeholder(doc, lines[AK_PATH], "path", a->path, catalog__note_placeholder,
                                  &pc);
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
        if (catalog__find_param(a->params, a->nparams, f->name) != NULL) {
            ini_diag_add(&doc->diag, ab->field_lines[i],
                            "field '%s' has the name of param.%s (a [rule] could not tell them "
                            "apart)",
                            f->name, f->name);
        }
        if (catalog__find_binding(a->body, a->nbody, f->name) != NULL) {
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
        const struct catalog_param *p = catalog__find_param(a->params, a->nparams, a->target);
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

void catalog__action_free(struct catalog_action *a)
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

void catalog__load_action_file(struct catalog *cat, struct ini_doc *doc, const char *file)
{
    for (size_t i = 0; i < doc->nsections; i++) {
        const struct ini_section *sec = &doc->sections[i];
        if (!catalog__definition_section(doc, sec, "action", "[orders.items.create]")) {
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

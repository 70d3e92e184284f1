/*
 * test_catalog: the shipped catalog loads, every definition matches the
 * HighLevel OpenAPI spec it names, and broken definitions are rejected with
 * the right FILE:LINE.
 *
 * The spec check needs shared/ghl-openapi beside the repository; when that
 * directory is absent the other checks still run and the test exits 77
 * (skip) if they pass.
 */
#include "catalog.h"
#include "log.h"
#include "util.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"

#ifndef SOURCE_ROOT
#define SOURCE_ROOT "."
#endif

#define SPEC_DIR SOURCE_ROOT "/../shared/ghl-openapi/"

static const char *tmp_root(void)
{
    const char *t = getenv("POLLEN_TEST_TMP");
    return t != NULL && t[0] != '\0' ? t : "/tmp";
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(99);
    }
    fputs(text, f);
    fclose(f);
}

static void remove_tree(const char *dir)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", dir);
    }
    free(cmd);
}

/* True if some error starts with "FILE:LINE: " (FILE ending in file) and
 * contains want. */
static bool has_error(const struct config_errors *e, const char *file, int line, const char *want)
{
    char tag[64];
    snprintf(tag, sizeof(tag), "%s:%d: ", file, line);
    for (size_t i = 0; i < e->count; i++) {
        const char *at = strstr(e->items[i], tag);
        if (at != NULL && (at == e->items[i] || at[-1] == '/') && strstr(at, want) != NULL) {
            return true;
        }
    }
    return false;
}

static void dump_errors(const struct config_errors *e)
{
    for (size_t i = 0; i < e->count; i++) {
        fprintf(stderr, "    got: %s\n", e->items[i]);
    }
}

/* ------------------------------------------------------------------------ */
/* The shipped catalog                                                       */

static const char *const contacts_names[] = {
    "contacts.search",       "contacts.list",  "contacts.get",        "contacts.business",
    "contacts.duplicate",    "contacts.appointments", "contacts.tasks", "contacts.tasks.get",
    "contacts.notes",        "contacts.notes.get",
};

static void test_shipped(const struct catalog *cat)
{
    CHECK(catalog_trigger_count(cat) >= ARRAY_SIZE(contacts_names));
    for (size_t i = 0; i < ARRAY_SIZE(contacts_names); i++) {
        const struct catalog_trigger *t = catalog_find_trigger(cat, contacts_names[i]);
        CHECK(t != NULL);
        if (t == NULL) {
            fprintf(stderr, "    missing %s\n", contacts_names[i]);
        }
    }
    CHECK(catalog_find_trigger(cat, "contacts.nope") == NULL);
    CHECK(catalog_find_trigger(cat, "") == NULL);

    /* Sorted by name, and findable by name. */
    for (size_t i = 0; i < catalog_trigger_count(cat); i++) {
        const struct catalog_trigger *t = catalog_trigger_at(cat, i);
        CHECK(catalog_find_trigger(cat, t->name) == t);
        if (i > 0) {
            CHECK(strcmp(catalog_trigger_at(cat, i - 1)->name, t->name) < 0);
        }
        CHECK(t->file != NULL && t->line > 0);
        CHECK(t->volatile_fields != NULL && t->require_one != NULL);
    }
    CHECK(catalog_trigger_at(cat, catalog_trigger_count(cat)) == NULL);

    /* The details the engine depends on. */
    const struct catalog_trigger *s = catalog_find_trigger(cat, "contacts.search");
    if (s != NULL) {
        CHECK_STR(s->method, "POST");
        CHECK_STR(s->path, "/contacts/search");
        CHECK_INT(s->pagination, CATALOG_PAGE_SEARCH_AFTER);
        CHECK_INT(s->page_size, 100);
        CHECK_INT(s->max_page_size, 500);
        CHECK_STR(s->records, "contacts");
        CHECK_STR(s->resource, "contact");
        CHECK_STR(s->id_field, "id");
        CHECK_STR(s->updated_field, "dateUpdated");
        CHECK_STR(s->confirm_delete, "/contacts/{id}");
        CHECK(strv_contains(s->volatile_fields, "searchAfter"));
        CHECK(!s->single);
        CHECK_INT(s->nbody, 2);
        CHECK_INT(s->nquery, 0);
        if (s->nbody == 2) {
            CHECK_STR(s->body[0].name, "locationId");
            CHECK(s->body[0].is_location && !s->body[0].is_json);
            CHECK_STR(s->body[1].name, "sort");
            CHECK(s->body[1].is_json && !s->body[1].is_location);
            CHECK_STR(s->body[1].value, "[{\"field\":\"dateAdded\",\"direction\":\"asc\"}]");
        }
        const struct catalog_param *q = catalog_trigger_param(s, "query");
        const struct catalog_param *f = catalog_trigger_param(s, "filters");
        CHECK(q != NULL && q->where == CATALOG_BODY && q->type == CATALOG_STRING && !q->required);
        CHECK(f != NULL && f->where == CATALOG_BODY && f->type == CATALOG_JSON && !f->required);
        CHECK(catalog_trigger_param(s, "nope") == NULL);
    }
    const struct catalog_trigger *l = catalog_find_trigger(cat, "contacts.list");
    if (l != NULL) {
        CHECK_INT(l->pagination, CATALOG_PAGE_START_AFTER);
        CHECK_INT(l->max_page_size, 100);
        CHECK_INT(l->nquery, 1);
        CHECK(l->nquery == 1 && l->query[0].is_location);
        CHECK(l->updated_field == NULL);
    }
    const struct catalog_trigger *g = catalog_find_trigger(cat, "contacts.get");
    if (g != NULL) {
        CHECK(g->single);
        CHECK_INT(g->pagination, CATALOG_PAGE_NONE);
        CHECK_INT(g->page_size, 0);
        const struct catalog_param *p = catalog_trigger_param(g, "contactId");
        CHECK(p != NULL && p->where == CATALOG_PATH && p->required);
    }
    const struct catalog_trigger *b = catalog_find_trigger(cat, "contacts.business");
    if (b != NULL) {
        CHECK_INT(b->pagination, CATALOG_PAGE_SKIP_LIMIT);
    }
    const struct catalog_trigger *d = catalog_find_trigger(cat, "contacts.duplicate");
    if (d != NULL) {
        CHECK(d->single);
        CHECK_INT(strv_len(d->require_one), 2);
        CHECK(strv_contains(d->require_one, "email") && strv_contains(d->require_one, "number"));
    }
    static const struct {
        const char *name, *records, *resource;
    } fans[] = {
        {"contacts.appointments", "events", "appointment"},
        {"contacts.tasks", "tasks", "task"},
        {"contacts.notes", "notes", "note"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(fans); i++) {
        const struct catalog_trigger *t = catalog_find_trigger(cat, fans[i].name);
        if (t == NULL) {
            continue;
        }
        CHECK_STR(t->records, fans[i].records);
        CHECK_STR(t->resource, fans[i].resource);
        CHECK_STR(t->fan_out, "contactId");
        CHECK_STR(t->parent_resource, "contact");
    }
    const struct catalog_trigger *ng = catalog_find_trigger(cat, "contacts.notes.get");
    if (ng != NULL) {
        CHECK(ng->single);
        CHECK_STR(ng->records, "note");
        CHECK(catalog_trigger_param(ng, "id") != NULL);
    }
    const struct catalog_trigger *tg = catalog_find_trigger(cat, "contacts.tasks.get");
    if (tg != NULL) {
        CHECK(tg->single);
        CHECK_STR(tg->records, "task");
        CHECK(catalog_trigger_param(tg, "taskId") != NULL);
    }
}

/* ------------------------------------------------------------------------ */
/* Against the OpenAPI spec                                                  */

/* Follows a local "$ref": "#/components/..." (one level is all specs use). */
static const cJSON *deref(const cJSON *root, const cJSON *item)
{
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(item, "$ref");
    if (!cJSON_IsString(ref) || strncmp(ref->valuestring, "#/", 2) != 0) {
        return item;
    }
    const cJSON *node = root;
    char *path = xstrdup(ref->valuestring + 2);
    for (char *p = path; p != NULL && node != NULL;) {
        char *slash = strchr(p, '/');
        if (slash != NULL) {
            *slash = '\0';
        }
        node = cJSON_GetObjectItemCaseSensitive(node, p);
        p = slash != NULL ? slash + 1 : NULL;
    }
    free(path);
    return node;
}

/* The spec parameter (in, name) of an operation, or NULL. */
static const cJSON *spec_param(const cJSON *root, const cJSON *op, const char *in,
                               const char *name)
{
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(op, "parameters");
    const cJSON *p;
    cJSON_ArrayForEach(p, params)
    {
        const cJSON *d = deref(root, p);
        const cJSON *pin = cJSON_GetObjectItemCaseSensitive(d, "in");
        const cJSON *pname = cJSON_GetObjectItemCaseSensitive(d, "name");
        if (cJSON_IsString(pin) && cJSON_IsString(pname) && strcmp(pin->valuestring, in) == 0 &&
            strcmp(pname->valuestring, name) == 0) {
            return d;
        }
    }
    return NULL;
}

struct spec_cache {
    char *file;
    cJSON *root;
};

static const cJSON *load_spec(struct spec_cache *c, size_t n, const char *file)
{
    for (size_t i = 0; i < n && c[i].file != NULL; i++) {
        if (strcmp(c[i].file, file) == 0) {
            return c[i].root;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (c[i].file != NULL) {
            continue;
        }
        char *path = xasprintf("%s%s", SPEC_DIR, file);
        char *data = NULL;
        size_t len = 0;
        int rc = util_read_file(path, 64 << 20, &data, &len);
        free(path);
        c[i].file = xstrdup(file);
        c[i].root = rc == 0 ? cJSON_ParseWithLength(data, len) : NULL;
        free(data);
        return c[i].root;
    }
    return NULL;
}

static void fail_def(const struct catalog_trigger *t, const char *what)
{
    test_failures++;
    fprintf(stderr, "%s:%d: [%s] does not match the spec: %s\n", t->file, t->line, t->name, what);
}

static void check_against_spec(const struct catalog_trigger *t, const cJSON *root)
{
    test_checks++;
    if (root == NULL) {
        fail_def(t, "spec file missing or not JSON");
        return;
    }
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(root, "paths");
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(paths, t->path);
    char method[8];
    size_t i = 0;
    for (; t->method[i] != '\0' && i + 1 < sizeof(method); i++) {
        method[i] = (char)tolower((unsigned char)t->method[i]);
    }
    method[i] = '\0';
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(item, method);
    test_checks++;
    if (!cJSON_IsObject(op)) {
        fail_def(t, "no such path and method");
        return;
    }

    const cJSON *opid = cJSON_GetObjectItemCaseSensitive(op, "operationId");
    test_checks++;
    if (!cJSON_IsString(opid) || strcmp(opid->valuestring, t->operation_id) != 0) {
        fail_def(t, "operationId differs");
    }

    /* The Version header: an enum whose value is ours. */
    const cJSON *ver = spec_param(root, op, "header", "Version");
    const cJSON *venum = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(ver, "schema"), "enum");
    test_checks++;
    if (cJSON_GetArraySize(venum) != 1 || !cJSON_IsString(cJSON_GetArrayItem(venum, 0)) ||
        strcmp(cJSON_GetArrayItem(venum, 0)->valuestring, t->version) != 0) {
        fail_def(t, "Version header enum differs");
    }

    /* Some security requirement lists our scope. */
    bool scope_found = false;
    const cJSON *req;
    cJSON_ArrayForEach(req, cJSON_GetObjectItemCaseSensitive(op, "security"))
    {
        const cJSON *scheme;
        cJSON_ArrayForEach(scheme, req)
        {
            const cJSON *s;
            cJSON_ArrayForEach(s, scheme)
            {
                if (cJSON_IsString(s) && strcmp(s->valuestring, t->scope) == 0) {
                    scope_found = true;
                }
            }
        }
    }
    test_checks++;
    if (!scope_found) {
        fail_def(t, "scope not in the security requirements");
    }

    /* Path and query parameters, and query bindings, are the spec's. Body
     * members are not checked: several body schemas are empty in the spec. */
    for (size_t p = 0; p < t->nparams; p++) {
        const struct catalog_param *cp = &t->params[p];
        if (cp->where == CATALOG_BODY) {
            continue;
        }
        test_checks++;
        if (spec_param(root, op, catalog_where_name(cp->where), cp->name) == NULL) {
            char *msg = xasprintf("%s parameter '%s' is not in the spec",
                                  catalog_where_name(cp->where), cp->name);
            fail_def(t, msg);
            free(msg);
        }
    }
    for (size_t q = 0; q < t->nquery; q++) {
        const cJSON *sp = spec_param(root, op, "query", t->query[q].name);
        test_checks++;
        if (sp == NULL) {
            char *msg = xasprintf("query binding '%s' is not in the spec", t->query[q].name);
            fail_def(t, msg);
            free(msg);
        }
    }
    /* Every required spec parameter (path, query) is covered. */
    const cJSON *sp;
    cJSON_ArrayForEach(sp, cJSON_GetObjectItemCaseSensitive(op, "parameters"))
    {
        const cJSON *d = deref(root, sp);
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(d, "in");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(d, "name");
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "required")) ||
            !cJSON_IsString(in) || !cJSON_IsString(name) ||
            (strcmp(in->valuestring, "path") != 0 && strcmp(in->valuestring, "query") != 0)) {
            continue;
        }
        bool covered = catalog_trigger_param(t, name->valuestring) != NULL;
        for (size_t q = 0; q < t->nquery; q++) {
            covered = covered || strcmp(t->query[q].name, name->valuestring) == 0;
        }
        test_checks++;
        if (!covered) {
            char *msg = xasprintf("required %s parameter '%s' is not provided",
                                  in->valuestring, name->valuestring);
            fail_def(t, msg);
            free(msg);
        }
    }
}

/* Returns false when the spec directory is absent. */
static bool test_spec(const struct catalog *cat)
{
    struct stat st;
    if (stat(SPEC_DIR, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "test_catalog: %s is absent; skipping the spec checks\n", SPEC_DIR);
        return false;
    }
    struct spec_cache cache[64] = {{0}};
    size_t checked = 0;
    for (size_t i = 0; i < catalog_trigger_count(cat); i++) {
        const struct catalog_trigger *t = catalog_trigger_at(cat, i);
        CHECK(t->spec != NULL);
        if (t->spec == NULL) {
            continue;
        }
        check_against_spec(t, load_spec(cache, ARRAY_SIZE(cache), t->spec));
        checked++;
    }
    CHECK(checked >= ARRAY_SIZE(contacts_names));
    for (size_t i = 0; i < ARRAY_SIZE(cache); i++) {
        free(cache[i].file);
        cJSON_Delete(cache[i].root);
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Broken definitions                                                        */

/* A valid definition; cases replace one of its lines or append lines.
 * pagination is last so a case can replace it with several lines. */
static const char *const base_lines[] = {
    "[t.x]",                                 /* 1 */
    "title = T",                             /* 2 */
    "operation_id = op",                     /* 3 */
    "method = GET",                          /* 4 */
    "path = /things/{thingId}",              /* 5 */
    "version = 2021-07-28",                  /* 6 */
    "scope = s.readonly",                    /* 7 */
    "resource = thing",                      /* 8 */
    "records = things",                      /* 9 */
    "param.thingId = path string required",  /* 10 */
    "pagination = none",                     /* 11 */
};

struct bad_case {
    int replace;      /* line to replace (1-based), or 0 to append */
    const char *text; /* replacement or appended lines ("" deletes) */
    int line;         /* expected error line */
    const char *want; /* expected substring */
};

static const struct bad_case bad_cases[] = {
    {0, "scop = x", 12, "unknown key 'scop' in [t.x]; did you mean 'scope'?"},
    {9, "", 1, "missing required key 'records' in [t.x]"},
    {4, "method = PUT", 4, "bad value 'PUT' for 'method' (allowed: GET POST)"},
    {11, "pagination = pages", 11, "bad value for 'pagination'"},
    {5, "path = /things/{thingId}/{other}", 5, "path placeholder {other} needs"},
    {5, "path = /things", 10, "path parameter 'thingId' does not appear in path"},
    {5, "path = things/{thingId}", 5, "path must start with '/'"},
    {5, "path = /things/{thingId", 5, "'{' without '}'"},
    {0, "fan_out = contactId\nparent_resource = contact", 12, "not a declared param.contactId"},
    {0, "fan_out = thingId", 12, "fan_out needs parent_resource"},
    {0, "parent_resource = contact", 12, "only meaningful with fan_out"},
    {11, "single = yes\npagination = skip_limit\npage_size = 10\nmax_page_size = 20", 11,
     "single = yes needs pagination = none"},
    {11, "pagination = start_after", 1, "needs page_size and max_page_size"},
    {11, "pagination = skip_limit\npage_size = 50\nmax_page_size = 20", 12,
     "page_size = 50 is larger than max_page_size = 20"},
    {0, "page_size = 10", 12, "page sizes given but pagination = none"},
    {0, "param.q = query strin optional", 12, "must be 'WHERE TYPE REQUIRED'"},
    {0, "param.every = query string optional", 12, "'every' is reserved"},
    {10, "param.thingId = path string optional", 10, "path parameter 'thingId' must be required"},
    {0, "query.sort = json:[1,", 12, "not valid JSON after 'json:'"},
    {0, "query.locationId = {locationid}", 12, "unknown placeholder"},
    {0, "body.x = 1", 1, "body.x binding on a GET endpoint"},
    {0, "query.q = 1\nparam.q = query string optional", 13, "also a fixed query.q binding"},
    {0, "confirm_delete = /things/{thingId}", 12, "must contain {id}"},
    {0, "require_one = email", 12, "'email', which is not a declared param.email"},
    {9, "records = things[0]", 9, "dotted JSON path"},
    {0, "single = maybe", 12, "bad value 'maybe' for 'single' (expected yes or no)"},
    {0, "page_size = 0", 12, "expected a whole number from 1 to 10000"},
    {1, "[Things.X]", 1, "bad trigger name"},
    {1, "[t.x extra]", 1, "bad trigger name"},
    {0, "[t.x]", 12, "duplicate section [t.x] (first on line 1)"},
    {0, "title = again", 12, "duplicate key 'title' (first set on line 2)"},
    {0, "[t.y", 12, "missing ']' in section header"},
    {0, "title2 = \xff", 12, "invalid UTF-8"},
    {1, "x = 1\n[t.x]", 1, "key 'x' is outside any [section]"},
    {0, "volatile = "
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaa",
     12, "line is 210 bytes long; the limit is 198"},
};

static char *build_case(const struct bad_case *c)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    for (size_t i = 0; i < ARRAY_SIZE(base_lines); i++) {
        if (c->replace == (int)i + 1) {
            if (c->text[0] != '\0') {
                fprintf(f, "%s\n", c->text);
            }
        } else {
            fprintf(f, "%s\n", base_lines[i]);
        }
    }
    if (c->replace == 0) {
        fprintf(f, "%s\n", c->text);
    }
    fclose(f);
    return text;
}

static void test_bad_cases(void)
{
    char *dir = xasprintf("%s/catalog_cases", tmp_root());
    char *tdir = xasprintf("%s/triggers", dir);
    char *file = xasprintf("%s/a.ini", tdir);
    remove_tree(dir);
    CHECK(util_mkdir_p(tdir, 0755) == 0);

    /* The base itself is valid, so each case fails for its own reason. */
    struct bad_case none = {0, "", 0, NULL};
    char *text = build_case(&none);
    write_file(file, text);
    free(text);
    struct config_errors errs = {0};
    struct catalog *cat = NULL;
    CHECK_INT(catalog_load(dir, &cat, &errs), 0);
    CHECK_INT(errs.count, 0);
    dump_errors(&errs);
    CHECK_INT(catalog_trigger_count(cat), 1);
    catalog_free(cat);
    config_errors_free(&errs);

    for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        text = build_case(c);
        write_file(file, text);
        free(text);
        cat = (struct catalog *)1;
        int rc = catalog_load(dir, &cat, &errs);
        CHECK_INT(rc, -EINVAL);
        CHECK(cat == NULL);
        bool ok = has_error(&errs, "a.ini", c->line, c->want);
        CHECK(ok);
        if (!ok) {
            fprintf(stderr, "  case %zu: want a.ini:%d: ...%s\n", i, c->line, c->want);
            dump_errors(&errs);
        }
        config_errors_free(&errs);
    }

    /* The same name in two files: reported in the later file. */
    text = build_case(&none);
    char *file_b = xasprintf("%s/b.ini", tdir);
    write_file(file, text);
    write_file(file_b, text);
    free(text);
    CHECK_INT(catalog_load(dir, &cat, &errs), -EINVAL);
    CHECK(has_error(&errs, "b.ini", 1, "duplicate trigger 't.x' (first defined at "));
    CHECK(errs.count == 1 && strstr(errs.items[0], "a.ini:1)") != NULL);
    config_errors_free(&errs);

    /* Errors from several files are all reported, file by file. */
    write_file(file, "[t.a]\ntitle = x\n");
    write_file(file_b, "[t.b]\nbogus\n");
    CHECK_INT(catalog_load(dir, &cat, &errs), -EINVAL);
    CHECK(has_error(&errs, "a.ini", 1, "missing required key 'operation_id'"));
    CHECK(has_error(&errs, "b.ini", 2, "expected 'key = value'"));
    CHECK(errs.count > 2 && strstr(errs.items[0], "a.ini:") != NULL &&
          strstr(errs.items[errs.count - 1], "b.ini:") != NULL);
    config_errors_free(&errs);
    unlink(file_b);
    free(file_b);

    /* No actions/ directory is fine; no triggers/ directory is not. */
    text = build_case(&none);
    write_file(file, text);
    free(text);
    CHECK_INT(catalog_load(dir, &cat, &errs), 0);
    CHECK_INT(catalog_trigger_count(cat), 1);
    catalog_free(cat);
    config_errors_free(&errs);
    char *missing = xasprintf("%s/nowhere", dir);
    CHECK_INT(catalog_load(missing, &cat, &errs), -ENOENT);
    CHECK(cat == NULL);
    CHECK(errs.count == 1 && strstr(errs.items[0], "cannot read the catalog directory") != NULL);
    config_errors_free(&errs);
    free(missing);

    remove_tree(dir);
    free(file);
    free(tdir);
    free(dir);
}

int main(void)
{
    struct config_errors errs = {0};
    struct catalog *cat = NULL;
    int rc = catalog_load(SOURCE_ROOT, &cat, &errs);
    CHECK_INT(rc, 0);
    dump_errors(&errs);
    config_errors_free(&errs);
    bool spec_checked = false;
    if (cat != NULL) {
        test_shipped(cat);
        spec_checked = test_spec(cat);
    }
    catalog_free(cat);
    test_bad_cases();
    log_clear_secrets();
    int result = test_done("test_catalog");
    if (result == 0 && !spec_checked) {
        return 77;
    }
    return result;
}

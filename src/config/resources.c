/*
 * resources: see resources.h and catalog.h (struct catalog_resource). The
 * format is documented in a file header of the catalog's resources/
 * directory (README.md, "Catalog", names it).
 */
#include "resources.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A resource name: lower-case letters, digits and _. */
static bool valid_resource_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > INI_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_')) {
            return false;
        }
    }
    return true;
}

bool catalog__valid_ident(const char *s, size_t len)
{
    if (len == 0 || len > INI_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) {
            return false;
        }
    }
    return true;
}

static bool valid_member(const char *s)
{
    return catalog__valid_ident(s, strlen(s));
}

/* parent, parent_field: one name. */
static int parse_name(struct ini_doc *doc, const struct ini_key *k, const char *value,
                      int line, void *field)
{
    if (!valid_member(value)) {
        ini_diag_add(&doc->diag, line, "%s must be a single name (letters, digits, _)",
                        k->name);
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrdup(value);
    return 0;
}

#define R(f) offsetof(struct catalog_resource, f)
static const struct ini_key resource_keys[] = {
    {.name = "derived", .type = INI_KEY_LIST, .offset = R(derived)},
    {.name = "parent", .type = INI_KEY_CUSTOM, .offset = R(parent), .parse = parse_name},
    {.name = "parent_field", .type = INI_KEY_CUSTOM, .offset = R(parent_field),
     .parse = parse_name},
    {.name = "touches_parent", .type = INI_KEY_BOOL, .offset = R(touches_parent),
     .def = "no"},
};
#undef R
enum { RK_DERIVED, RK_PARENT, RK_PARENT_FIELD, RK_TOUCHES_PARENT, RK_NKEYS };
_Static_assert(ARRAY_SIZE(resource_keys) == RK_NKEYS, "resource key enum out of sync");

/* Sets *slot from "NAME=VALUE" when word starts with NAME=; 1 taken, 0 not
 * this name, -1 a repeat or a bad member name. */
static int take_part(const char *word, const char *name, char **slot)
{
    size_t n = strlen(name);
    if (strncmp(word, name, n) != 0 || word[n] != '=') {
        return 0;
    }
    if (*slot != NULL) {
        return -1;
    }
    *slot = xstrdup(word + n + 1);
    return 1;
}

/* Every comma-separated member of text is a valid name; *out gets them. */
static bool split_members(const char *text, char ***out)
{
    char *spaced = xstrdup(text);
    size_t commas = 0;
    for (char *p = spaced; *p != '\0'; p++) {
        if (*p == ',') {
            *p = ' ';
            commas++;
        }
    }
    size_t n = 0;
    char **v = strv_split(spaced, &n);
    free(spaced);
    bool ok = n > 0 && n == commas + 1; /* no empty member */
    for (size_t i = 0; i < n && ok; i++) {
        ok = valid_member(v[i]);
    }
    *out = v;
    return ok;
}

/* list.NAME = key=K written=W[,W2...] read=R (in any order). */
static bool parse_list(const char *value, struct catalog_list_field *lf)
{
    size_t n = 0;
    char **words = strv_split(value, &n);
    char *written = NULL;
    bool ok = n == 3;
    for (size_t i = 0; i < n && ok; i++) {
        int taken = take_part(words[i], "key", &lf->key);
        if (taken == 0) {
            taken = take_part(words[i], "written", &written);
        }
        if (taken == 0) {
            taken = take_part(words[i], "read", &lf->read);
        }
        ok = taken == 1;
    }
    strv_free(words);
    ok = ok && lf->key != NULL && written != NULL && lf->read != NULL && valid_member(lf->key) &&
         valid_member(lf->read);
    if (ok) {
        ok = split_members(written, &lf->written);
    }
    free(written);
    return ok;
}

static void list_field_free(struct catalog_list_field *lf)
{
    free(lf->name);
    free(lf->key);
    strv_free(lf->written);
    free(lf->read);
}

/* A resource's list.NAME keys. */
static bool resource_extra(struct ini_doc *doc, const struct ini_entry *e, void *obj)
{
    struct catalog_resource *r = obj;
    if (!str_has_prefix(e->key, "list.")) {
        return false;
    }
    const char *name = e->key + strlen("list.");
    struct catalog_list_field lf = {.name = xstrdup(name)};
    if (!valid_member(name)) {
        ini_diag_add(&doc->diag, e->line,
                        "'%s': the name after 'list.' must be letters, digits and _", e->key);
        list_field_free(&lf);
        return true;
    }
    if (!parse_list(e->value, &lf)) {
        ini_diag_add(&doc->diag, e->line,
                        "%s: expected key=MEMBER written=MEMBER[,MEMBER...] read=MEMBER "
                        "(member names: letters, digits, _)",
                        e->key);
        list_field_free(&lf);
        return true;
    }
    r->lists = xrealloc(r->lists, (r->nlists + 1) * sizeof(*r->lists));
    r->lists[r->nlists++] = lf;
    return true;
}

/* Cross checks of one resource's keys (lines: where each was given, or 0). */
static void finish_resource(struct ini_doc *doc, const struct ini_section *sec,
                            struct catalog_resource *r, const int *lines)
{
    for (size_t i = 0; r->derived != NULL && r->derived[i] != NULL; i++) {
        if (!valid_member(r->derived[i])) {
            ini_diag_add(&doc->diag, lines[RK_DERIVED],
                            "derived: '%s' is not a field name (letters, digits, _)",
                            r->derived[i]);
        }
    }
    if ((r->parent == NULL) != (r->parent_field == NULL)) {
        ini_diag_add(&doc->diag, lines[RK_PARENT] ? lines[RK_PARENT] : lines[RK_PARENT_FIELD],
                        "parent and parent_field go together: the parent resource and the "
                        "field holding its id");
    }
    if (r->parent != NULL && strcmp(r->parent, r->name) == 0) {
        ini_diag_add(&doc->diag, lines[RK_PARENT], "a resource cannot be its own parent");
    }
    if (r->touches_parent && r->parent == NULL) {
        ini_diag_add(&doc->diag,
                        lines[RK_TOUCHES_PARENT] ? lines[RK_TOUCHES_PARENT] : sec->line,
                        "touches_parent = yes needs a parent");
    }
    if (r->derived == NULL) {
        r->derived = xcalloc(1, sizeof(*r->derived));
    }
}

static const struct catalog_resource *find_linear(const struct catalog_resource *arr, size_t n,
                                                  const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(arr[i].name, name) == 0) {
            return &arr[i];
        }
    }
    return NULL;
}

void catalog__load_resources(struct catalog_resource **arr, size_t *n, struct ini_doc *doc,
                             const char *file)
{
    for (size_t i = 0; i < doc->nsections; i++) {
        const struct ini_section *sec = &doc->sections[i];
        if (sec->skip) {
            continue;
        }
        if (strcmp(sec->kind, "resource") != 0 || sec->name == NULL ||
            !valid_resource_name(sec->name)) {
            ini_diag_add(&doc->diag, sec->line,
                            "expected [resource NAME] with a lower-case name (a-z 0-9 _), e.g. "
                            "[resource order]");
            continue;
        }
        const struct catalog_resource *dup = find_linear(*arr, *n, sec->name);
        if (dup != NULL) {
            ini_diag_add(&doc->diag, sec->line,
                            "duplicate resource '%s' (first defined at %s:%d)", sec->name,
                            dup->file, dup->line);
            continue;
        }
        struct catalog_resource r = {.name = xstrdup(sec->name), .file = file, .line = sec->line};
        char *what = xasprintf("[resource %s]", r.name);
        int lines[RK_NKEYS];
        ini_apply(doc, sec, what, resource_keys, RK_NKEYS, &r, resource_extra, lines);
        free(what);
        finish_resource(doc, sec, &r, lines);
        *arr = xrealloc(*arr, (*n + 1) * sizeof(**arr));
        (*arr)[(*n)++] = r;
    }
}

static int cmp_resource(const void *a, const void *b)
{
    return strcmp(((const struct catalog_resource *)a)->name,
                  ((const struct catalog_resource *)b)->name);
}

/* bsearch: a name against a resource. */
static int cmp_name_resource(const void *name, const void *r)
{
    return strcmp(name, ((const struct catalog_resource *)r)->name);
}

size_t catalog__check_resources(struct catalog_resource *arr, size_t n,
                                struct ini_errors *errs)
{
    if (n > 0) {
        qsort(arr, n, sizeof(*arr), cmp_resource);
    }
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (arr[i].parent != NULL && catalog__resource_find(arr, n, arr[i].parent) == NULL) {
            ini_errors_add(errs, arr[i].file, arr[i].line,
                              "[resource %s]: parent '%s' is not a declared resource",
                              arr[i].name, arr[i].parent);
            bad++;
        }
    }
    return bad;
}

const struct catalog_resource *catalog__resource_find(const struct catalog_resource *arr,
                                                      size_t n, const char *name)
{
    if (arr == NULL || name == NULL) {
        return NULL;
    }
    return bsearch(name, arr, n, sizeof(*arr), cmp_name_resource);
}

void catalog__resource_free(struct catalog_resource *r)
{
    free(r->name);
    strv_free(r->derived);
    for (size_t i = 0; i < r->nlists; i++) {
        list_field_free(&r->lists[i]);
    }
    free(r->lists);
    free(r->parent);
    free(r->parent_field);
}

bool catalog_resource_derived(const struct catalog_resource *res, const char *field)
{
    for (size_t i = 0; res != NULL && res->derived[i] != NULL; i++) {
        if (strcmp(res->derived[i], field) == 0) {
            return true;
        }
    }
    return false;
}

const struct catalog_list_field *catalog_resource_list(const struct catalog_resource *res,
                                                       const char *field)
{
    for (size_t i = 0; res != NULL && i < res->nlists; i++) {
        if (strcmp(res->lists[i].name, field) == 0) {
            return &res->lists[i];
        }
    }
    return NULL;
}

/*
 * catalog: see catalog.h. This file loads the subdirectories (files in
 * name order), sorts, links resources, frees, and answers the public
 * lookups; the definitions themselves are parsed in catalog_trigger.c and
 * catalog_action.c with the helpers of catalog_parse.c (catalog_int.h).
 * The INI rules and key tables come from inifile.h.
 */
#include "catalog.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "catalog_int.h"
#include "resources.h"

/* At most this many *.ini files per subdirectory. */
#define CATALOG_MAX_FILES 1024

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
    {"triggers", true, catalog__load_trigger_file},
    {"actions", false, catalog__load_action_file},
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

/* Why child (a for_each definition with batch) cannot use bdef, or NULL. */
static const char *batch_problem(const struct catalog_trigger *child,
                                 const struct catalog_trigger *bdef)
{
    const struct catalog_param *lp = catalog_trigger_param(bdef, child->batch_param);
    if (bdef->fan_out != NULL || bdef->agency || bdef->single) {
        return "is itself a for_each, agency or single definition";
    }
    if (strcmp(bdef->resource, child->resource) != 0 ||
        strcmp(bdef->id_field, child->id_field) != 0) {
        return "lists another resource (or names its id otherwise)";
    }
    if (lp == NULL || lp->where != CATALOG_BODY || lp->type != CATALOG_JSON || lp->required) {
        return "does not take batch_param as an optional body json parameter";
    }
    for (size_t i = 0; i < bdef->nparams; i++) {
        if (bdef->params[i].required && &bdef->params[i] != lp) {
            return "has another required parameter";
        }
    }
    for (size_t i = 0; i < child->nparams; i++) {
        if (strcmp(child->params[i].name, child->fan_out) != 0) {
            return "cannot carry the child's other parameters";
        }
    }
    if (child->res != NULL && child->res->parent_field == NULL) {
        return "needs the resource's parent_field (resources/) to group the records";
    }
    return NULL;
}

/*
 * Links each batch key to its definition (after sorting: the pointers are
 * final). A catalog without resources/ has no parent_field to group by: its
 * children read one parent at a time (batch_def NULL). Returns 0 or
 * -EINVAL, each problem at the batch key's line.
 */
static int link_batches(struct catalog *cat, struct ini_errors *errs)
{
    int bad = 0;
    for (size_t i = 0; i < cat->ntriggers; i++) {
        struct catalog_trigger *t = &cat->triggers[i];
        if (t->batch == NULL || t->fan_out == NULL || cat->nresources == 0) {
            continue; /* without resources/ (a catalog of triggers only) no batch reads */
        }
        const struct catalog_trigger *b = catalog_find_trigger(cat, t->batch);
        const char *why = b == NULL ? "is not a trigger definition" : batch_problem(t, b);
        if (why != NULL) {
            ini_errors_add(errs, t->file, t->batch_line, "[%s]: batch %s %s", t->name, t->batch,
                           why);
            bad++;
        }
        t->batch_def = why == NULL ? b : NULL;
    }
    return bad == 0 ? 0 : -EINVAL;
}

static int load_subdir(struct catalog *cat, const char *dir, const struct catalog_subdir *sd,
                       const struct catalog__load *how, struct ini_errors *errs)
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
        doc.user = (void *)how; /* read only (catalog_int.h) */
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

static int load(const char *dir, const struct catalog__load *how, struct catalog **out,
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
        int r = load_subdir(cat, dir, &subdirs[i], how, errs);
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
    rc = link_batches(cat, errs);
    if (rc != 0) {
        catalog_free(cat);
        return rc;
    }
    *out = cat;
    return 0;
}

int catalog_load(const char *dir, const struct catalog_reserved *reserved, struct catalog **out,
                 struct ini_errors *errs)
{
    struct catalog__load how = {.reserved = reserved, .api = false};
    return load(dir, &how, out, errs);
}

int catalog_load_api(const char *dir, const struct catalog_reserved *reserved,
                     struct catalog **out, struct ini_errors *errs)
{
    struct catalog__load how = {.reserved = reserved, .api = true};
    return load(dir, &how, out, errs);
}

void catalog_free(struct catalog *cat)
{
    if (cat == NULL) {
        return;
    }
    for (size_t i = 0; i < cat->ntriggers; i++) {
        catalog__trigger_free(&cat->triggers[i]);
    }
    free(cat->triggers);
    for (size_t i = 0; i < cat->nactions; i++) {
        catalog__action_free(&cat->actions[i]);
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
    return catalog__find_binding(def->path_values, def->npath_values, name);
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

bool catalog_action_uses_company(const struct catalog_action *def)
{
    return any_company(def->body, def->nbody) || any_company(def->query, def->nquery) ||
           any_company(def->path_bind, def->npath_bind);
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
    return def != NULL && name != NULL
               ? catalog__find_binding(def->defaults, def->ndefaults, name)
               : NULL;
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
    return def != NULL && name != NULL ? catalog__find_param(def->params, def->nparams, name)
                                       : NULL;
}

const struct catalog_binding *catalog_action_binding(const struct catalog_action *def,
                                                     const char *name)
{
    return def != NULL && name != NULL ? catalog__find_binding(def->body, def->nbody, name) : NULL;
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

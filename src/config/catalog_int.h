/*
 * catalog_int: what the files of the catalog module share, and nothing
 * outside src/config/ may include. The module (catalog.h is its public
 * header) is these files:
 *   catalog.c          catalog_load (subdirectories, sorting, linking the
 *                      resources), catalog_free, the public lookups
 *   catalog_parse.c    the shared parsing helpers: value checks of single
 *                      keys, {placeholder} walking, bindings, parameters,
 *                      the path cross checks
 *   catalog_trigger.c  the trigger definitions (triggers/)
 *   catalog_action.c   the action definitions (actions/)
 *   resources.c        the resource facts (resources/, resources.h)
 *
 * Owns: nothing. Functions and objects here are named catalog__*.
 * Invariants: the parse helpers report problems to doc->diag at the line
 * they are given and never abort a load; a definition is appended to the
 * catalog even when it has errors (later files get duplicate checks
 * against it, and the whole catalog is dropped anyway). doc->user is a
 * struct catalog__load (the caller's reserved names, and whether the
 * catalog is a user's own API's) while a file loads.
 * Thread context: as catalog.h (startup, loop thread).
 */
#ifndef POLLEN_CATALOG_INT_H
#define POLLEN_CATALOG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "catalog.h"
#include "inifile.h"

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

/* What a file is loaded for (doc->user). */
struct catalog__load {
    const struct catalog_reserved *reserved; /* or NULL */
    bool api; /* a user's own API's catalog (catalog_load_api) */
};

/* ---- catalog_parse.c ---------------------------------------------------- */

/*
 * The keys that differ between the product's catalog and an api's
 * (catalog_load_api): HighLevel's `version` and `scope` are required in
 * the first; in the second `version` is refused (a user's API takes no
 * Version header), and so are {location} and {company} bindings (lists:
 * nlists arrays of counts[i] bindings). Reports at the section or key line.
 */
/* Is doc loaded for a user's own API's catalog? */
bool catalog__api_load(const struct ini_doc *doc);
void catalog__check_origin(struct ini_doc *doc, const struct ini_section *sec,
                           int version_line, int scope_line,
                           const struct catalog_binding *const *lists, const size_t *counts,
                           size_t nlists);

/* The names of enum catalog_type, NULL-terminated. */
extern const char *const catalog__type_names[];

/* The index of value in the NULL-terminated choices, or -1. */
int catalog__choice_index(const char *const *choices, const char *value);
/*
 * True when sec defines a catalog entry: not skipped, headed by one valid
 * lower-case dotted name. Otherwise reports a bad name at its line, as a
 * bad `kind` ("trigger", "action") name with example ("[orders.search]").
 */
bool catalog__definition_section(struct ini_doc *doc, const struct ini_section *sec,
                                 const char *kind, const char *example);
/* Calls fn (when not NULL) for each {placeholder} of a path template with
 * the borrowed name (not NUL-terminated) and ctx; returns -EINVAL (and
 * reports at line under key) on unbalanced or empty braces. */
int catalog__each_placeholder(struct ini_doc *doc, int line, const char *key, const char *tpl,
                              void (*fn)(void *ctx, const char *name, size_t len), void *ctx);

/* INI_KEY_CUSTOM parsers (struct ini_key .parse): each returns 0 and stores
 * into field (freeing what was there), or reports and returns -EINVAL. */
/* path: a plain path template starting with '/'. */
int catalog__parse_path(struct ini_doc *doc, const struct ini_key *k, const char *value,
                        int line, void *field);
/* confirm_delete: a path template with an {id} placeholder. */
int catalog__parse_confirm_delete(struct ini_doc *doc, const struct ini_key *k,
                                  const char *value, int line, void *field);
/* A dotted JSON path. */
int catalog__parse_records(struct ini_doc *doc, const struct ini_key *k, const char *value,
                           int line, void *field);
/* A dotted JSON path or "." (the response root). */
int catalog__parse_record_path(struct ini_doc *doc, const struct ini_key *k, const char *value,
                               int line, void *field);
/* One identifier ([A-Za-z0-9_]+). */
int catalog__parse_ident(struct ini_doc *doc, const struct ini_key *k, const char *value,
                         int line, void *field);
/* pagination: one of the enum catalog_pagination names. */
int catalog__parse_pagination(struct ini_doc *doc, const struct ini_key *k,
                              const char *value, int line, void *field);
/* scope_level: location or agency, into a bool (agency). */
int catalog__parse_scope_level(struct ini_doc *doc, const struct ini_key *k, const char *value,
                               int line, void *field);

/* Appends the binding e (text, {location} or json:...) named name (copied)
 * to *arr; reports a bad value instead. */
void catalog__add_binding(struct ini_doc *doc, const struct ini_entry *e,
                          const char *name, struct catalog_binding **arr, size_t *n);
/* True when the caller of catalog_load reserved name for [rule] sections
 * (rule) or [trigger] sections (!rule). */
bool catalog__is_reserved(const struct ini_doc *doc, bool rule, const char *name);
/* Appends param.NAME = WHERE TYPE REQUIRED to *arr and e's line to *lines
 * (parallel); reports instead when the value or name is not allowed for a
 * trigger (!action) or an action. */
void catalog__add_param(struct ini_doc *doc, const struct ini_entry *e, const char *name,
                        bool action, struct catalog_param **arr, size_t *count, int **lines);
/* Which of the n prefixes e->key starts with: returns its index and sets
 * *name to the rest of the key (borrowed from e); -1 when none does; -2
 * when the rest is not an identifier (reported at e's line). */
int catalog__prefixed_key(struct ini_doc *doc, const struct ini_entry *e,
                          const char *const *prefixes, size_t n, const char **name);

/* The context of catalog__note_placeholder and
 * catalog__note_confirm_placeholder: a definition's path parameters and
 * path.NAME bindings (borrowed). */
struct path_check {
    struct ini_doc *doc;
    const struct catalog_param *params;
    size_t nparams;
    const struct catalog_binding *values; /* path.NAME bindings */
    size_t nvalues;
    int line;
    char **seen; /* placeholders found, strv */
    size_t nseen;
    bool record_fields; /* confirm_delete: a {record.FIELD} was found */
};

/* The parameter or binding named name in the array, borrowed, or NULL. */
const struct catalog_param *catalog__find_param(const struct catalog_param *params, size_t n,
                                                const char *name);
const struct catalog_binding *catalog__find_binding(const struct catalog_binding *b, size_t n,
                                                    const char *name);
/* catalog__each_placeholder callbacks (ctx is a struct path_check): a path
 * placeholder must be exactly one of a path parameter and a path.NAME
 * binding (adds it to seen, owned by the caller; {record.FIELD} is
 * refused); a confirm_delete one other than {id} and {record.FIELD} (which
 * sets record_fields) must be either. Both report at pc->line. */
void catalog__note_placeholder(void *ctx, const char *name, size_t len);
void catalog__note_confirm_placeholder(void *ctx, const char *name, size_t len);

/* ---- catalog_trigger.c, catalog_action.c -------------------------------- */

/* Parse every section of doc (one file of triggers/ or actions/) and append
 * the definitions to cat; errors go to doc->diag. file is borrowed and must
 * outlive the catalog. */
void catalog__load_trigger_file(struct catalog *cat, struct ini_doc *doc, const char *file);
void catalog__load_action_file(struct catalog *cat, struct ini_doc *doc, const char *file);
/* Free what a definition owns (not the definition itself). */
void catalog__trigger_free(struct catalog_trigger *t);
void catalog__action_free(struct catalog_action *a);

#endif

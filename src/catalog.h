/*
 * catalog: the shipped endpoint definitions (the INI files in triggers/),
 * loaded as data.
 *
 * Each INI section of the files in <dir>/triggers/ defines one trigger: which
 * HTTP request to send (method, path template, Version header, fixed query and
 * body bindings, user parameters), where the records are in the response,
 * how to page, and how to diff. The C code has one generic interpreter per
 * concept (pagination style, parameter placement); adding an endpoint means
 * adding a section, never code. The format is documented at the top of
 * triggers/contacts.ini.
 *
 * Loading reads every *.ini of triggers/ in filename order with the INI rules
 * of diag.h, validates every definition and reports every problem as
 * FILE:LINE. Names are unique across files. An actions/ directory is allowed
 * to be missing (actions arrive in a later issue; the loader's table of
 * subdirectories has a row for them).
 *
 * Invariants after a successful load: every `{placeholder}` of path is a
 * declared path parameter and every path parameter appears in path;
 * paginated definitions have 1 <= page_size <= max_page_size; single
 * definitions are not paginated; fan_out names a declared parameter and comes
 * with parent_resource; require_one names declared parameters; JSON bindings
 * are valid JSON; no parameter takes a name reserved by [trigger] sections.
 *
 * Ownership: the catalog owns everything; pointers returned by the lookup
 * functions are borrowed and live until catalog_free. Read-only after load,
 * so any number of readers may share it (loop thread only, by convention).
 */
#ifndef POLLEN_CATALOG_H
#define POLLEN_CATALOG_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"

struct catalog;

/* A fixed value the engine always sends (query.NAME = VALUE, body.NAME = VALUE). */
struct catalog_binding {
    char *name;
    char *value;      /* the text; for is_json the JSON literal without "json:" */
    bool is_json;     /* value is JSON to embed as is */
    bool is_location; /* value was {location}: send the location's id */
};

enum catalog_where { CATALOG_PATH, CATALOG_QUERY, CATALOG_BODY };
enum catalog_type {
    CATALOG_STRING,
    CATALOG_INTEGER,
    CATALOG_NUMBER,
    CATALOG_BOOLEAN,
    CATALOG_JSON,
};

/* A parameter the user sets in [trigger] (param.NAME = WHERE TYPE REQUIRED). */
struct catalog_param {
    char *name;
    enum catalog_where where;
    enum catalog_type type;
    bool required;
};

enum catalog_pagination {
    CATALOG_PAGE_NONE,         /* one request returns everything */
    CATALOG_PAGE_START_AFTER,  /* query startAfter + startAfterId from meta */
    CATALOG_PAGE_SEARCH_AFTER, /* body searchAfter copied from the last record */
    CATALOG_PAGE_SKIP_LIMIT,   /* query skip + limit */
};

struct catalog_trigger {
    char *name, *title, *operation_id, *spec, *method, *path, *version, *scope, *resource,
        *records;
    bool single;              /* records points at one object, not an array */
    char *id_field;           /* default "id" */
    char *updated_field;      /* NULL: changes are found by hashing only */
    enum catalog_pagination pagination;
    unsigned page_size, max_page_size; /* 0 when not paginated */
    char **volatile_fields;   /* NULL-terminated, never NULL (may be empty) */
    char *confirm_delete;     /* path template with {id}, or NULL */
    char *fan_out;            /* parameter that for_each feeds, or NULL */
    char *parent_resource;    /* set exactly when fan_out is */
    char **require_one;       /* NULL-terminated, never NULL (may be empty) */
    struct catalog_binding *query, *body;
    size_t nquery, nbody;
    struct catalog_param *params;
    size_t nparams;
    const char *file;         /* the definition's file, for messages */
    int line;                 /* its section line */
};

/*
 * Loads every .ini file of <dir>/triggers/. Returns 0 and sets *out, or
 * -EINVAL with every problem in errs (nothing returned), or -errno when the
 * directory cannot be read (also in errs).
 */
int catalog_load(const char *dir, struct catalog **out, struct config_errors *errs);
/* Frees the catalog; accepts NULL. */
void catalog_free(struct catalog *cat);

/* The definition named name, or NULL. */
const struct catalog_trigger *catalog_find_trigger(const struct catalog *cat, const char *name);
/* Definitions sorted by name (for `pollen catalog`). */
size_t catalog_trigger_count(const struct catalog *cat);
const struct catalog_trigger *catalog_trigger_at(const struct catalog *cat, size_t i);
/* The parameter of def named name, or NULL. */
const struct catalog_param *catalog_trigger_param(const struct catalog_trigger *def,
                                                  const char *name);

/* Names for messages and `pollen catalog`: "path", "integer", "search_after". */
const char *catalog_where_name(enum catalog_where where);
const char *catalog_type_name(enum catalog_type type);
const char *catalog_pagination_name(enum catalog_pagination p);

#endif

/*
 * catalog: the shipped endpoint definitions (the INI files in triggers/ and
 * actions/), loaded as data.
 *
 * Each INI section of the files in <dir>/triggers/ defines one trigger: which
 * HTTP request to send (method, path template, Version header, fixed query and
 * body bindings, user parameters), where the records are in the response,
 * how to page, and how to diff. Each section of <dir>/actions/ defines one
 * action that a [rule] can run: the request (method, path, Version, scope),
 * its path parameters and typed body fields, fixed body bindings, the
 * documented success status, and the facts the dispatcher needs to retry
 * safely (destructive, idempotent, gone_ok, target). The C code has one
 * generic interpreter per concept (pagination style, parameter placement);
 * adding an endpoint means adding a section, never code. README.md
 * ("Catalog") names the file whose header comment documents each format.
 * Each [resource NAME] section of <dir>/resources/ states the facts about one
 * kind of record that the echo detector needs (struct catalog_resource).
 *
 * Loading reads every *.ini of triggers/, then of actions/, then of
 * resources/, in filename order with the INI rules of inifile.h, validates
 * every definition and reports every problem as FILE:LINE. Names are unique
 * across the files of one kind (a trigger and an action may share a name).
 * triggers/ must exist; actions/ and resources/ may be missing (then there
 * are no actions, or no resource facts). When resources/ declares any
 * resource, every trigger's resource and parent_resource and every action's
 * target_resource must be one of them (reported at the definition's section
 * line), and each definition is linked to it (res, target_res).
 *
 * Invariants after a successful load: every `{placeholder}` of path is a
 * declared path parameter or a path.NAME binding (exactly one of them), and
 * every path parameter and path binding appears in path; records is a
 * dotted path or "." (the response root); an agency definition has no
 * {location} binding;
 * paginated definitions have 1 <= page_size <= max_page_size (page_size
 * defaults to max_page_size); single
 * definitions are not paginated; confirm_delete has {id} and otherwise only
 * path parameters, path.NAME values or (not with fan_out) {record.FIELD}
 * (catalog_record_placeholder) as placeholders; paging keys appear only on paginated
 * definitions, and only those their style uses; fan_out names a declared parameter and comes
 * with parent_resource; batch (with batch_param, only with fan_out) names a
 * definition without fan_out that lists the same resource with the same
 * id_field, takes batch_param as an optional body json parameter and needs
 * no other, while the child has no parameter but fan_out and its resource
 * declares a parent_field (checked once every file is read, reported at
 * the batch line; without resources/, batch_def stays NULL); require_one names declared parameters; JSON bindings
 * are valid JSON; no parameter takes a name reserved by [trigger] sections.
 * Actions: each path placeholder is either a path parameter (required) or a
 * path.NAME binding, and each of those appears in path; query.NAME and
 * path.NAME bindings are text or {location}, and no parameter shares their
 * name; parameters and fields have distinct names, none reserved by
 * [rule] sections (the caller's catalog_reserved), and no field is also a body.NAME
 * binding; GET sends no body; a POST/PUT/PATCH has body members or says
 * empty_body = yes; gone_ok only on DELETE; target names a path parameter
 * and comes with target_resource; 200 <= success <= 299; conflict_ok only
 * on a POST that is not idempotent, with natural_key naming a required
 * field; destructive_when names a nullable field of an action that is not
 * otherwise destructive; default.NAME names an optional, non-secret field;
 * no action is named http or exec.
 *
 * Ownership: the catalog owns everything; pointers returned by the lookup
 * functions are borrowed and live until catalog_free. Read-only after load,
 * so any number of readers may share it (loop thread only, by convention).
 */
#ifndef POLLEN_CATALOG_H
#define POLLEN_CATALOG_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "inifile.h"

struct catalog;

/* A fixed value the engine always sends (query.NAME = VALUE, body.NAME = VALUE). */
struct catalog_binding {
    char *name;
    char *value;      /* the text; for is_json the JSON literal without "json:" */
    bool is_json;     /* value is JSON to embed as is */
    bool is_location; /* value was {location}: send the location's id */
    bool is_company;  /* value was {company}: send the location's companyId (M3) */
};

enum catalog_where { CATALOG_PATH, CATALOG_QUERY, CATALOG_BODY };
enum catalog_type {
    CATALOG_STRING,
    CATALOG_INTEGER,
    CATALOG_NUMBER,
    CATALOG_BOOLEAN,
    CATALOG_JSON,
    CATALOG_STRING_LIST, /* a JSON array of strings; action body fields only */
};

/* A parameter the user sets in [trigger] (param.NAME = WHERE TYPE REQUIRED). */
struct catalog_param {
    char *name;
    enum catalog_where where;
    enum catalog_type type;
    bool required;
};

/*
 * Paging styles. The parameter names, their placement and the cursor paths
 * of each style are rows of the paging table (sources/poll/paging.c); a
 * definition overrides them with the keys of struct catalog_paging.
 */
enum catalog_pagination {
    CATALOG_PAGE_NONE,         /* one request returns everything */
    CATALOG_PAGE_START_AFTER,  /* a cursor (and cursor id) read from the response */
    CATALOG_PAGE_SEARCH_AFTER, /* a cursor copied from the last record */
    CATALOG_PAGE_SKIP_LIMIT,   /* an offset (records to skip) + a page size */
    CATALOG_PAGE_OFFSET_LIMIT, /* skip_limit under other default names */
    CATALOG_PAGE_CURSOR,       /* an opaque cursor read from the response; null ends */
};

/*
 * A definition's paging keys (M4). Every member is NULL when the key is not
 * given: the style's default applies. Names are parameter names
 * ([A-Za-z0-9_]+); paths are dotted JSON paths (json_get_path).
 */
struct catalog_paging {
    char *limit_param;     /* page_limit_param: the page-size parameter */
    char *skip_param;      /* page_skip_param: records to skip (skip/offset styles) */
    char *in;              /* page_in: "query" or "body" */
    char *values;          /* page_values: "number" or "string" (in a body) */
    char *cursor_param;    /* cursor_param: the request parameter carrying the cursor */
    char *cursor_id_param; /* cursor_id_param: the one carrying the cursor id (start_after) */
    char *cursor_path;     /* cursor_path: where the next cursor is (start_after: in the
                            * response; search_after: in the last record) */
    char *cursor_id_path;  /* cursor_id_path: where the next cursor id is (start_after) */
    char *more_field;      /* more_field: a boolean path; false ends the listing */
};

/*
 * A list field whose elements are written in one shape and read back in
 * another (list.NAME = key=K written=W[,W2...] read=R): the element whose K
 * equals the written one's must hold, in its member R, the value the write
 * carried in the first of W, W2... that it has.
 */
struct catalog_list_field {
    char *name;     /* the record field holding the list */
    char *key;      /* the member identifying an element */
    char **written; /* members carrying the value in a write; NULL-terminated, never empty */
    char *read;     /* the member holding it when read back */
};

/* The facts about one kind of record ([resource NAME] in resources/). */
struct catalog_resource {
    char *name;
    char **derived;   /* fields the API recomputes on any write (NULL-terminated, never
                       * NULL): a change of them alone proves nothing */
    struct catalog_list_field *lists;
    size_t nlists;
    char *parent;       /* the resource a record belongs to, or NULL */
    char *parent_field; /* the record field (and action path parameter) holding the
                         * parent's id; set exactly when parent is */
    bool touches_parent; /* writing such a record moves the parent's derived fields */
    const char *file;   /* the definition's file, for messages */
    int line;           /* its section line */
};

struct catalog_trigger {
    char *name, *title, *operation_id, *spec, *method, *path, *version, *scope, *resource,
        *records;             /* a dotted path, or "." for the response root (M1) */
    bool single;              /* records points at one object, not an array */
    char *id_field;           /* default "id" */
    char *updated_field;      /* NULL: changes are found by hashing only */
    char *created_field;      /* the record's creation time (server time), or NULL:
                               * a for_each child's silent first read still reports
                               * records created after the trigger started */
    char *deleted_field;      /* a boolean member; true: the record counts as deleted
                               * (a soft delete, M11); or NULL */
    bool agency;              /* scope_level = agency (M15): polled with an agency
                               * credential for a [company], never a location's */
    enum catalog_pagination pagination;
    unsigned page_size, max_page_size; /* 0 when not paginated */
    struct catalog_paging paging;      /* overrides of the style's names; all NULL if none */
    char *total;              /* path of the API's own count, or NULL: total, count or
                               * meta.total, the first present */
    char **volatile_fields;   /* NULL-terminated, never NULL (may be empty) */
    char *confirm_delete;     /* path template with {id} (the record), {record.FIELD}
                               * (a field of its last-known copy) and, filled as in
                               * path, any of the path parameters; or NULL */
    char *fan_out;            /* parameter that for_each feeds, or NULL */
    char *parent_resource;    /* set exactly when fan_out is */
    char *batch;              /* for_each children: a definition that lists the records of
                               * many parents at once (batch_def), or NULL */
    char *batch_param;        /* its JSON list parameter taking the parents' ids; set
                               * exactly when batch is */
    const struct catalog_trigger *batch_def; /* batch, linked after load; or NULL */
    int batch_line;           /* the batch key's line, for messages */
    char **require_one;       /* NULL-terminated, never NULL (may be empty) */
    struct catalog_binding *query, *body;
    size_t nquery, nbody;
    struct catalog_binding *path_values; /* path.NAME = VALUE: placeholders with a fixed
                                          * value (M2); never is_json */
    size_t npath_values;
    struct catalog_param *params;
    size_t nparams;
    /* Incremental polling (M13): incremental = filter asks, between full
     * reconciles, only for the records whose watermark_field (a dotted path;
     * ISO-8601 or epoch ms) is at or after the watermark, by replacing (or,
     * for an array a user parameter already set, extending) the body members
     * of incr_body, each a JSON template whose {watermark} is the watermark
     * in epoch ms (catalog_watermark_render), or (a GET) by adding the query
     * parameters of incr_query, text templates with {watermark} (epoch ms)
     * or {watermark_iso} (ISO-8601 UTC; catalog_watermark_render_text).
     * Set together or not at all. */
    bool incremental;
    char *watermark_field;
    struct catalog_binding *incr_body; /* is_json; value is the template */
    size_t nincr_body;
    struct catalog_binding *incr_query; /* incremental.query.NAME; value is the template */
    size_t nincr_query;
    const struct catalog_resource *res; /* the declared resource, or NULL (no resources/) */
    const char *file;         /* the definition's file, for messages */
    int line;                 /* its section line */
};

/*
 * A JSON body member of an action (field.NAME = TYPE REQUIRED). TYPE
 * `secret` (M14) is a string whose value in a [rule] must be an env:VAR or
 * file:PATH reference (core/secret.h): the outbox and dead letters keep the
 * reference, and the ghl sink reads the value only to send it.
 */
struct catalog_field {
    char *name;
    enum catalog_type type;  /* CATALOG_STRING for a secret */
    bool required;
    bool secret;             /* TYPE was secret */
    bool nullable;           /* TYPE REQUIRED nullable: a rule may send JSON null (the
                              * literal null, or an expression that renders null) */
};

struct catalog_action {
    char *name, *title, *operation_id, *spec, *method, *path, *version, *scope;
    struct catalog_param *params; /* path (and query) parameters; never CATALOG_BODY */
    size_t nparams;
    struct catalog_field *fields; /* body members the rule sets */
    size_t nfields;
    struct catalog_binding *body; /* body members the engine sets (body.NAME = VALUE) */
    size_t nbody;
    struct catalog_binding *query; /* query parameters the engine sets (query.NAME = VALUE) */
    size_t nquery;
    struct catalog_binding *path_bind; /* path placeholders the engine fills (path.NAME =
                                        * VALUE, M2); text, {location} or {company}, never JSON */
    size_t npath_bind;
    struct catalog_binding *defaults; /* default.NAME = VALUE: what an optional field
                                       * sends when the rule leaves it out or it renders
                                       * nothing (a spec-required member the API does not
                                       * really need, e.g. the upsert's followers) */
    size_t ndefaults;
    unsigned success;             /* the documented success status, 200..299 */
    bool destructive;             /* a [rule] must say confirm = yes */
    char *destructive_when;       /* destructive_when = FIELD:null: a nullable field that,
                                   * sent as null, makes it destructive (then a [rule]
                                   * must say confirm = yes); NULL when not conditional */
    bool idempotent;              /* repeating it has the effect of doing it once */
    bool gone_ok;                 /* DELETE: a 404/400 on a retry means already done */
    bool empty_body;              /* POST/PUT/PATCH whose body is {} */
    bool conflict_ok;             /* a create: a 400/409 "already exists" on a retry means
                                   * the first attempt (outcome unknown) worked (M14) */
    char *natural_key;            /* the field whose uniqueness makes that answer; set
                                   * exactly when conflict_ok is */
    char *result;                 /* response member holding the written record, "." when
                                   * the response root is that record (M1), or NULL */
    char *target;                 /* path parameter naming the record written, or NULL */
    char *target_resource;        /* the kind of record written, or NULL */
    const struct catalog_resource *target_res; /* its declaration, or NULL */
    const char *file;             /* the definition's file, for messages */
    int line;                     /* its section line */
};

/*
 * Names a definition must not use because the user's file gives them a
 * meaning of its own (config.h has config_reserved_keys). The catalog knows
 * nothing of the user's file, so its loader is told. Either predicate may
 * be NULL: nothing reserved.
 */
struct catalog_reserved {
    bool (*trigger_key)(const char *name); /* a [trigger] key: no trigger parameter */
    bool (*rule_key)(const char *name);    /* a [rule] key: no action parameter or field */
};

/*
 * Loads every .ini file of <dir>/triggers/ and <dir>/actions/. reserved
 * (borrowed for the call; NULL: nothing reserved) names the parameter and
 * field names to refuse. Returns 0 and sets *out, or -EINVAL with every
 * problem in errs (nothing returned), or -errno when a directory cannot be
 * read (also in errs).
 */
int catalog_load(const char *dir, const struct catalog_reserved *reserved, struct catalog **out,
                 struct ini_errors *errs);
/*
 * The catalog of a user's own API ([api NAME] catalog = DIR): the same
 * format and checks, except that `version` (HighLevel's Version header) is
 * refused and `scope` optional, and no binding may be {location} or
 * {company}. Returns as catalog_load.
 */
int catalog_load_api(const char *dir, const struct catalog_reserved *reserved,
                     struct catalog **out, struct ini_errors *errs);
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
/* The path.NAME binding of def named name, or NULL. */
const struct catalog_binding *catalog_trigger_path_value(const struct catalog_trigger *def,
                                                         const char *name);
/* True when some query., body. or path. binding of def is {company}. */
bool catalog_trigger_uses_company(const struct catalog_trigger *def);
/* True when some body., query. or path. binding of action def is {company}. */
bool catalog_action_uses_company(const struct catalog_action *def);
/* True when def's records are the response root (records = .). */
bool catalog_trigger_records_at_root(const struct catalog_trigger *def);

/* The action named name, or NULL. */
const struct catalog_action *catalog_find_action(const struct catalog *cat, const char *name);
/* Actions sorted by name (for `pollen catalog actions`). */
size_t catalog_action_count(const struct catalog *cat);
const struct catalog_action *catalog_action_at(const struct catalog *cat, size_t i);
/* The body field, path/query parameter, or fixed body binding of def named
 * name, or NULL. */
const struct catalog_field *catalog_action_field(const struct catalog_action *def,
                                                 const char *name);
const struct catalog_param *catalog_action_param(const struct catalog_action *def,
                                                 const char *name);
const struct catalog_binding *catalog_action_binding(const struct catalog_action *def,
                                                     const char *name);
/* The default.NAME of def for field name, or NULL. */
const struct catalog_binding *catalog_action_default(const struct catalog_action *def,
                                                     const char *name);

/* The resource named name, or NULL. Resources sorted by name (tests). */
const struct catalog_resource *catalog_find_resource(const struct catalog *cat,
                                                     const char *name);
size_t catalog_resource_count(const struct catalog *cat);
const struct catalog_resource *catalog_resource_at(const struct catalog *cat, size_t i);
/* Is field one the API derives for res? False when res is NULL. */
bool catalog_resource_derived(const struct catalog_resource *res, const char *field);
/* res's list field named field, or NULL (also when res is NULL). */
const struct catalog_list_field *catalog_resource_list(const struct catalog_resource *res,
                                                       const char *field);

/*
 * Path templates and typed values (catalog_value.c): the one rule set for
 * turning a definition's template and a value's text into request parts,
 * used by triggers, actions and config checks alike.
 */

/* A placeholder's raw value for catalog_path_expand: a new string (the
 * caller frees it), or NULL when there is none (then err, if the callback
 * filled it, says why). name is borrowed for the call. */
typedef char *(*catalog_path_lookup)(void *ud, const char *name, char *err, size_t errlen);

/*
 * Expands the {NAME} placeholders of tpl, asking lookup for each value and
 * percent-encoding it (url_escape) as one path segment. Returns 0 and a new
 * string in *out; or, with *out NULL and a message naming the placeholder in
 * err: -ENOENT when lookup has no value, -EINVAL for an empty value, "." or
 * ".." (or a '{' without '}'), -E2BIG past the path cap. tpl and ud are
 * borrowed.
 */
int catalog_path_expand(const char *tpl, catalog_path_lookup lookup, void *ud, char **out,
                        char *err, size_t errlen);

/*
 * confirm_delete's {record.FIELD}: a field of the missing record's
 * last-known copy (e.g. {record.ownerId}). For the placeholder name[0..len)
 * (not NUL-terminated), the offset of FIELD when name is "record." and a
 * dotted path of names (letters, digits, _), e.g. record.owner.id; 0 for any
 * other name. name is borrowed.
 */
size_t catalog_record_placeholder(const char *name, size_t len);

/*
 * The text of record's field (a dotted path, as json_get_path) for a
 * {record.FIELD} placeholder: a new string (the caller frees), a string as
 * it is and a number as its canonical JSON text; NULL, with the reason in
 * err, when record is NULL or the field is absent or of another type.
 * catalog_path_expand then refuses an empty value, "." and ".." as for any
 * placeholder. record and field are borrowed.
 */
char *catalog_record_text(const cJSON *record, const char *field, char *err, size_t errlen);

/*
 * The JSON value text means as type: 0 and a new node in *out, or -EINVAL
 * with *out NULL and a message in err. Numbers are JSON number text only (no
 * spaces, hex, inf, nan or '+'); an integer has no fraction or exponent and
 * one past 2^53 is a Raw node with its exact digits; booleans are true or
 * false; json is parsed with json_parse's depth limit; string_list splits
 * on spaces, tabs and commas. text is borrowed.
 */
int catalog_value_coerce(enum catalog_type type, const char *text, cJSON **out, char *err,
                         size_t errlen);

/*
 * The text of an incremental.body template (M13) with every {watermark}
 * replaced by ms in decimal: a new string the caller frees. tmpl is
 * borrowed. Pure.
 */
char *catalog_watermark_render(const char *tmpl, long long ms);
/* The text of an incremental.query template: {watermark_iso} is ms as
 * ISO-8601 UTC with milliseconds, {watermark} ms in decimal. A new string. */
char *catalog_watermark_render_text(const char *tmpl, long long ms);

/* Names for messages and `pollen catalog`: "path", "string_list", "search_after". */
const char *catalog_where_name(enum catalog_where where);
const char *catalog_type_name(enum catalog_type type);
const char *catalog_pagination_name(enum catalog_pagination p);

#endif

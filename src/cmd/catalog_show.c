/*
 * catalog_show: see catalog_show.h.
 *
 * Both the list and the parameter tables of the detail go through table.h,
 * so names of any length stay aligned.
 */
#include "catalog_show.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "inifile.h"
#include "paging.h"
#include "table.h"
#include "util.h"

/* ------------------------------------------------------------------------ */
/* The list                                                                  */

void catalog_show_list(const struct catalog *cat, bool triggers, bool actions, FILE *out)
{
    struct table t = {.ncols = 6};
    table_row(&t, "NAME", "KIND", "METHOD", "PATH", "SCOPE", "TITLE");
    for (size_t i = 0; triggers && i < catalog_trigger_count(cat); i++) {
        const struct catalog_trigger *d = catalog_trigger_at(cat, i);
        table_row(&t, d->name, "trigger", d->method, d->path, d->scope, d->title);
    }
    for (size_t i = 0; actions && i < catalog_action_count(cat); i++) {
        const struct catalog_action *d = catalog_action_at(cat, i);
        char *title = xasprintf("%s%s", d->title,
                                d->destructive ? " (destructive: needs confirm = yes)" : "");
        table_row(&t, d->name, "action", d->method, d->path, d->scope, title);
        free(title);
    }
    table_print(&t, 0, out);
}

/* ------------------------------------------------------------------------ */
/* One definition                                                            */

/* One "  label  value" line of a detail. */
static void line(FILE *out, const char *label, const char *fmt, ...) ATTR_PRINTF(3, 4);

static void line(FILE *out, const char *label, const char *fmt, ...)
{
    fprintf(out, "  %-15s ", label);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
}

static const char *yes_no(bool b)
{
    return b ? "yes" : "no";
}

/* The space-separated words of a NULL-terminated list, or "-"; malloc'd. */
static char *joined(char *const *v)
{
    char *s = xstrdup(v[0] != NULL ? "" : "-");
    for (size_t i = 0; v[i] != NULL; i++) {
        char *n = xasprintf("%s%s%s", s, i > 0 ? " " : "", v[i]);
        free(s);
        s = n;
    }
    return s;
}

/* The lines every definition has, trigger or action. */
static void show_common(FILE *out, const char *name, const char *kind, const char *title,
                        const char *method, const char *path, const char *version,
                        const char *scope, const char *spec, const char *operation_id,
                        const char *file, int line_no)
{
    fprintf(out, "%s (%s): %s\n", name, kind, title);
    line(out, "request", "%s %s", method, path);
    /* A user's own API's definitions have no Version header or scope, and
     * spec is optional anywhere. */
    if (version != NULL) {
        line(out, "version", "%s (the Version header)", version);
    } else {
        line(out, "version", "none (no Version header is sent)");
    }
    line(out, "scope", "%s", scope != NULL ? scope : "none");
    line(out, "spec", "%s, operationId %s", spec != NULL ? spec : "none", operation_id);
    line(out, "defined at", "%s:%d", file, line_no);
}

/* Starts the parameter table of a detail: a title line and the header row. */
static struct table params_table(FILE *out, const char *section)
{
    fprintf(out, "  parameters (set in the [%s] section as NAME = value; fixed: always sent)\n",
            section);
    struct table tab = {.ncols = 5};
    table_row(&tab, "NAME", "WHERE", "TYPE", "REQUIRED", "VALUE");
    return tab;
}

/* A parameter the user sets, as a row (value NULL: nothing to say). */
static void param_row(struct table *t, const struct catalog_param *p, const char *value)
{
    table_row(t, p->name, catalog_where_name(p->where), catalog_type_name(p->type),
              p->required ? "required" : "optional", value);
}

/* Fixed bindings as rows: always sent, nothing to set. */
static void binding_rows(struct table *t, const struct catalog_binding *b, size_t n,
                         const char *where)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i].is_location) {
            table_row(t, b[i].name, where, "string", "fixed", "{location}: the location's id");
        } else if (b[i].is_company) {
            table_row(t, b[i].name, where, "string", "fixed",
                      "{company}: the companyId of the location or [company]");
        } else {
            table_row(t, b[i].name, where, b[i].is_json ? "json" : "string", "fixed", b[i].value);
        }
    }
}

/*
 * How the poller pages this definition: its style's row of the paging table
 * (sources/poll/paging.c) with the definition's overrides, so what is shown
 * is what is sent.
 */
static void show_pagination(FILE *out, const struct catalog_trigger *t)
{
    line(out, "pagination", "%s", catalog_pagination_name(t->pagination));
    if (t->pagination == CATALOG_PAGE_NONE) {
        line(out, "paging", "one request returns every record");
        return;
    }
    struct paging pg;
    paging_init(&pg, t, t->page_size);
    const char *where = pg.in_body ? "body" : "query";
    line(out, "page size", "%u (at most %u; a [trigger] may set page_size), sent as %s %s%s",
         t->page_size, t->max_page_size, where, pg.limit_param,
         pg.string_values ? " (a string)" : "");
    if (pg.skip_param != NULL) {
        line(out, "skip", "%s %s = records already read", where, pg.skip_param);
    }
    if (pg.first_page_param != NULL) {
        line(out, "first page", "%s %s = 1", where, pg.first_page_param);
    }
    if (pg.cursor_param != NULL) {
        line(out, "cursor", "%s %s from %s%s", where, pg.cursor_param,
             t->pagination == CATALOG_PAGE_SEARCH_AFTER ? "the last record's " : "the response's ",
             pg.cursor_path != NULL ? pg.cursor_path : "?");
    }
    if (pg.cursor_id_param != NULL) {
        line(out, "cursor id", "%s %s from the response's %s", where, pg.cursor_id_param,
             pg.cursor_id_path != NULL ? pg.cursor_id_path : "?");
    }
    if (pg.more_field != NULL) {
        line(out, "more", "%s (false ends the listing)", pg.more_field);
    }
    line(out, "total", "%s", pg.total_path != NULL ? pg.total_path
                                                   : "the first of total, count, meta.total");
}

/* The parameters a [trigger] sets, then the bindings the engine always sends. */
static void show_trigger_params(FILE *out, const struct catalog_trigger *t)
{
    struct table tab = params_table(out, "trigger");
    for (size_t i = 0; i < t->nparams; i++) {
        bool fed = t->fan_out != NULL && strcmp(t->fan_out, t->params[i].name) == 0;
        param_row(&tab, &t->params[i], fed ? "or fed by for_each" : NULL);
    }
    binding_rows(&tab, t->path_values, t->npath_values, "path");
    binding_rows(&tab, t->query, t->nquery, "query");
    binding_rows(&tab, t->body, t->nbody, "body");
    table_print(&tab, 4, out);
}

/* A trigger: one line per key of its definition. */
static void show_trigger(FILE *out, const struct catalog_trigger *t)
{
    show_common(out, t->name, "trigger", t->title, t->method, t->path, t->version, t->scope,
                t->spec, t->operation_id, t->file, t->line);
    line(out, "resource", "%s", t->resource);
    line(out, "scope level", "%s", t->agency ? "agency: a [trigger] names a [company] (company = "
                                               "NAME), polled with its agency credential"
                                             : "location");
    bool root = catalog_trigger_records_at_root(t);
    line(out, "records", "%s (%s%s)", t->records, t->single ? "one record" : "an array of records",
         root ? ": the response root" : "");
    line(out, "id field", "%s", t->id_field);
    line(out, "deleted field", "%s", t->deleted_field != NULL
                                         ? t->deleted_field
                                         : "none: a record is deleted when it is gone");
    line(out, "updated field", "%s", t->updated_field != NULL
                                         ? t->updated_field
                                         : "none: changes are found by hashing the record");
    if (t->created_field != NULL) {
        line(out, "created field", "%s (a first read reports records created after the "
                                   "trigger started)", t->created_field);
    }
    char *vol = joined(t->volatile_fields);
    line(out, "volatile", "%s", vol);
    free(vol);
    show_pagination(out, t);
    if (t->incremental) {
        line(out, "incremental", "filter on %s since the watermark; a full reconcile every "
                                 "`reconcile` (1h) decides deletions",
             t->watermark_field);
        for (size_t i = 0; i < t->nincr_body; i++) {
            line(out, "  body", "%s = %s", t->incr_body[i].name, t->incr_body[i].value);
        }
        for (size_t i = 0; i < t->nincr_query; i++) {
            line(out, "  query", "%s = %s", t->incr_query[i].name, t->incr_query[i].value);
        }
    } else {
        line(out, "incremental", "no: every cycle is a full enumeration");
    }
    line(out, "confirm_delete", "%s", t->confirm_delete != NULL ? t->confirm_delete : "none");
    if (t->fan_out != NULL) {
        line(out, "for_each", "yes: the ids of another trigger's %s records feed %s",
             t->parent_resource, t->fan_out);
    } else {
        line(out, "for_each", "no");
    }
    if (t->require_one[0] != NULL) {
        char *one = joined(t->require_one);
        line(out, "require_one", "%s (at least one of them)", one);
        free(one);
    }
    show_trigger_params(out, t);
}

/* Path and query parameters, body fields, then fixed path, query and body bindings. */
static void show_action_params(FILE *out, const struct catalog_action *a)
{
    struct table tab = params_table(out, "rule");
    for (size_t i = 0; i < a->nparams; i++) {
        param_row(&tab, &a->params[i], NULL);
    }
    for (size_t i = 0; i < a->nfields; i++) {
        const struct catalog_field *f = &a->fields[i];
        const struct catalog_binding *dflt = catalog_action_default(a, f->name);
        char *extra = dflt != NULL ? xasprintf("default %s", dflt->value) : NULL;
        table_row(&tab, f->name, "body", f->secret ? "secret" : catalog_type_name(f->type),
                  f->required ? (f->nullable ? "required, null allowed" : "required")
                              : (f->nullable ? "optional, null allowed" : "optional"),
                  extra);
        free(extra);
    }
    binding_rows(&tab, a->path_bind, a->npath_bind, "path");
    binding_rows(&tab, a->query, a->nquery, "query");
    binding_rows(&tab, a->body, a->nbody, "body");
    table_print(&tab, 4, out);
}

/* An action: one line per key of its definition. */
static void show_action(FILE *out, const struct catalog_action *a)
{
    show_common(out, a->name, "action", a->title, a->method, a->path, a->version, a->scope,
                a->spec, a->operation_id, a->file, a->line);
    line(out, "success", "%u", a->success);
    if (a->empty_body) {
        line(out, "body", "{} (empty_body)");
    }
    line(out, "result", "%s", a->result != NULL ? a->result : "none");
    if (a->target != NULL) {
        line(out, "target", "%s (the %s it acts on)", a->target, a->target_resource);
    } else if (a->target_resource != NULL) {
        line(out, "target", "a new %s", a->target_resource);
    } else {
        line(out, "target", "none");
    }
    line(out, "idempotent", "%s%s", yes_no(a->idempotent),
         a->idempotent ? ": repeating it has the effect of doing it once"
                       : ": repeating it may do it twice");
    if (a->destructive_when != NULL) {
        line(out, "destructive", "when %s is null: a [rule] sending null must say confirm = yes",
             a->destructive_when);
    } else {
        line(out, "destructive", "%s%s", yes_no(a->destructive),
             a->destructive ? ": a [rule] must say confirm = yes" : "");
    }
    line(out, "gone_ok", "%s%s", yes_no(a->gone_ok),
         a->gone_ok ? ": on a retry, a 404 or 400 means it was already done" : "");
    if (a->conflict_ok) {
        line(out, "conflict_ok", "yes: on a retry, \"already exists\" (natural_key %s) means it "
                                 "was already done",
             a->natural_key);
    }
    show_action_params(out, a);
}

int catalog_show_one(const struct catalog *cat, const char *name, FILE *out)
{
    const struct catalog_trigger *t = catalog_find_trigger(cat, name);
    const struct catalog_action *a = catalog_find_action(cat, name);
    if (t != NULL) {
        show_trigger(out, t);
    }
    if (t != NULL && a != NULL) {
        fputc('\n', out);
    }
    if (a != NULL) {
        show_action(out, a);
    }
    return t != NULL || a != NULL ? 0 : -ENOENT;
}

const char *catalog_show_suggest(const struct catalog *cat, const char *name)
{
    size_t nt = catalog_trigger_count(cat);
    size_t n = nt + catalog_action_count(cat);
    const char **names = xcalloc(n + 1, sizeof(*names));
    for (size_t i = 0; i < n; i++) {
        names[i] = i < nt ? catalog_trigger_at(cat, i)->name : catalog_action_at(cat, i - nt)->name;
    }
    const char *best = ini_suggest(name, names, n);
    free(names);
    return best;
}

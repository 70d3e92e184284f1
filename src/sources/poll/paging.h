/*
 * paging: how one enumeration walks the pages of a listing, as a table.
 *
 * Each catalog paging style (enum catalog_pagination) is one row of the
 * style table in paging.c: the default names of its parameters, whether
 * they go in the query or the JSON body, whether numbers are sent as
 * numbers or strings, and where the next cursor is found. A definition
 * overrides any of them with its paging keys (struct catalog_paging:
 * page_limit_param, page_skip_param, page_in, page_values, cursor_param,
 * cursor_id_param, cursor_path, cursor_id_path, more_field) and names the
 * path of the API's own count with `total`. A new paging dialect is a new
 * row plus a unit test (tests/unit/test_paging.c); the poller only calls
 * the functions below.
 *
 * Owns: struct paging_cursor's JSON values (paging_cursor_reset frees them).
 * Invariants: a struct paging borrows its strings from the table and from
 * the definition, which outlive it (the catalog lives until exit); the
 * cursor only moves forward: paging_advance reports PAGING_STUCK, never
 * PAGING_MORE, when the response repeats the cursor it was asked with.
 * Thread context: any; pure functions over their arguments (no I/O).
 */
#ifndef POLLEN_PAGING_H
#define POLLEN_PAGING_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "catalog.h"

/* A definition's paging: its style's row with the definition's overrides. */
struct paging {
    enum catalog_pagination style;
    unsigned page_size;
    const char *limit_param;     /* the page-size parameter */
    const char *skip_param;      /* skip/offset styles: records to skip */
    const char *first_page_param; /* sent as 1 on the first page (search_after), or NULL */
    const char *cursor_param;    /* the cursor parameter (cursor styles) */
    const char *cursor_id_param; /* the cursor id parameter (start_after), or NULL */
    const char *cursor_path;     /* start_after: in the response; search_after: in the last
                                  * record */
    const char *cursor_id_path;  /* start_after: in the response */
    const char *const *end_when_null; /* paths that, all present and null, mark the last
                                       * page (NULL-terminated, or NULL) */
    const char *more_field;      /* a boolean path: false ends the listing; or NULL */
    const char *total_path;      /* the API's count; NULL: the first of total, count,
                                  * meta.total */
    bool in_body;                /* parameters go in the JSON body (else the query) */
    bool string_values;          /* body numbers are sent as strings */
};

/* Where the enumeration is: the cursor the last page handed out. */
struct paging_cursor {
    cJSON *value;                /* cursor styles: the cursor, or NULL before the 2nd page */
    cJSON *id;                   /* start_after: the cursor id, or NULL */
};

enum paging_next {
    PAGING_END,   /* the listing is read to its end */
    PAGING_MORE,  /* the cursor moved: fetch the next page */
    PAGING_STUCK, /* a full page without a usable, moving cursor: never call it complete */
};

/* Fills pg for def (borrowed; must outlive pg) at page_size records a page. */
void paging_init(struct paging *pg, const struct catalog_trigger *def, unsigned page_size);

/* Frees the cursor's values; back to the first page. */
void paging_cursor_reset(struct paging_cursor *c);

/* Takes one query parameter: name is borrowed, value is the callee's to free. */
typedef void (*paging_query_cb)(void *ud, const char *name, char *value);

/*
 * Adds the parameters of page (0-based) to a request: query ones through
 * add, body ones into body. Body parameters are dropped when body is NULL
 * (the request has no body).
 */
void paging_add_params(const struct paging *pg, const struct paging_cursor *c, unsigned page,
                       cJSON *body, paging_query_cb add, void *ud);

/*
 * Reads a page's response (body, and records: the array the definition's
 * records path found in it) and moves the cursor to the next page. Returns
 * PAGING_END on a short or empty page, when more_field says false, or when
 * the end_when_null paths say so; PAGING_MORE with the cursor moved; or
 * PAGING_STUCK (cursor unchanged).
 */
enum paging_next paging_advance(const struct paging *pg, struct paging_cursor *c,
                                const cJSON *body, const cJSON *records);

/* The API's own count of the listing in body (total_path, or the guess), or -1. */
double paging_total(const struct paging *pg, const cJSON *body);

/* Names page (0-based) and its cursor in log lines: "page 3, skip=200". */
void paging_describe(const struct paging *pg, const struct paging_cursor *c, unsigned page,
                     char *out, size_t len);

#endif

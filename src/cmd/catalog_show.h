/*
 * catalog_show: what `pollen catalog` prints: the table of the catalog's
 * definitions, and one definition in detail.
 *
 * The table has a header row and columns aligned to their widest cell:
 * NAME, KIND (trigger or action), METHOD, PATH, SCOPE, TITLE. The detail of
 * a trigger says everything the poller does with it (request, Version, scope,
 * parameters and fixed bindings, where the records are, id and update
 * fields, pagination, confirm_delete, for_each); the detail of an action
 * what the dispatcher sends and how it retries (request, parameters, body
 * fields and bindings, result, idempotent, destructive, gone_ok). One
 * function per kind prints the detail: a new catalog key is one line there.
 *
 * Owns nothing: the catalog is borrowed for the call.
 * Invariants: prints to out only; nothing is written or contacted.
 * Thread context: the CLI's main thread.
 */
#ifndef POLLEN_CATALOG_SHOW_H
#define POLLEN_CATALOG_SHOW_H

#include <stdbool.h>
#include <stdio.h>

struct catalog;

/* Prints the table of the triggers (if triggers) then the actions (if
 * actions) of cat to out, under one header row. */
void catalog_show_list(const struct catalog *cat, bool triggers, bool actions, FILE *out);

/*
 * Prints the definition named name to out: the trigger, the action, or both
 * when a trigger and an action share the name. Returns 0, or -ENOENT when
 * nothing has that name (then nothing is printed).
 */
int catalog_show_one(const struct catalog *cat, const char *name, FILE *out);

/* The name in cat closest to name (a trigger's or an action's), for "did you
 * mean"; NULL when none is close. Borrowed from cat. */
const char *catalog_show_suggest(const struct catalog *cat, const char *name);

#endif

/*
 * resources: the [resource NAME] sections of the catalog's resources/ files
 * (struct catalog_resource, catalog.h). Only the catalog*.c files include
 * this header: catalog.c owns the array and calls these while loading.
 *
 * Owns: nothing beyond the array it is handed (grown with xrealloc).
 * Invariants: a resource is appended even when it has errors, so later
 * files get duplicate checks against it (the catalog is dropped anyway).
 * Thread context: loop thread, at startup only.
 */
#ifndef POLLEN_RESOURCES_H
#define POLLEN_RESOURCES_H

#include <stddef.h>

#include "catalog.h"
#include "inifile.h"

/* Parses every section of doc (one file of resources/) into *arr; errors go
 * to doc->diag. file is borrowed and must outlive the resources. */
void catalog__load_resources(struct catalog_resource **arr, size_t *n, struct ini_doc *doc,
                             const char *file);
/* Sorts arr by name; then reports, at the section's line, a parent that is
 * not declared. Returns the number of errors added to errs. */
size_t catalog__check_resources(struct catalog_resource *arr, size_t n,
                                struct ini_errors *errs);
/* The resource named name in the sorted arr, or NULL. */
const struct catalog_resource *catalog__resource_find(const struct catalog_resource *arr,
                                                      size_t n, const char *name);
/* A JSON field or parameter name: [A-Za-z0-9_]+, at most INI_NAME_MAX. */
bool catalog__valid_ident(const char *s, size_t len);
/* Frees what r owns (not r itself). */
void catalog__resource_free(struct catalog_resource *r);

#endif

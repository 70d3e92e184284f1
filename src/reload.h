/*
 * reload: what SIGHUP needs before the engine swaps configurations: the
 * new file loaded and checked exactly as `pollen run` does (config, catalog,
 * resolve), its problems logged with FILE:LINE, the changes that cannot be
 * applied without a restart refused, and a one-line summary of what changed.
 *
 * Owns: nothing beyond the calls; a loaded configuration and catalog go to
 * the caller (free them with config_free and catalog_free).
 * Invariants: a configuration with any problem is never returned.
 * Thread context: the loop thread. Reading the file (and its `file:`
 * secrets) is local disk I/O of a few kilobytes, done once per SIGHUP.
 */
#ifndef POLLEN_RELOAD_H
#define POLLEN_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

struct catalog;
struct config;

/*
 * Loads path as the successor of cur. Returns 0 with *cfg and *cat, or
 * -EINVAL after logging each problem (and that the running configuration
 * stays), including a state_dir that differs from cur's.
 */
int reload_load(const char *path, const struct config *cur, struct config **cfg,
                struct catalog **cat);

/* Writes into out a one-line summary of what next changes against cur
 * (triggers added, removed, changed; rules; other settings). Returns
 * whether it found a change (informational: a reload applies the whole
 * file either way, since a summary cannot see every value). */
bool reload_summary(const struct config *cur, const struct config *next, char *out, size_t size);

#endif

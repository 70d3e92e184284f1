/*
 * registry: the one list of sinks (SINK_LIST in sink.h), looked up by the
 * outbox entry's "kind" or by a rule's kind, and the list of their rule
 * kinds that the engine gives config_load.
 *
 * Owns: nothing (the lists are static).
 * Invariants: names are unique; every rule kind in the list has one sink.
 * Thread context: any thread (read-only data).
 */
#ifndef POLLEN_REGISTRY_H
#define POLLEN_REGISTRY_H

#include "sink.h"

/* The sink named name (an entry's "kind"), or NULL (borrowed, static). */
const struct sink *sink_find(const char *name);
/* The sink that renders rules of kind (borrowed, static; NULL for a kind no
 * sink lists, such as a test's own). */
const struct sink *sink_for_rule(const struct config_rule_kind *kind);
/* Every sink's rule kind in registry order, NULL-terminated, for
 * config_load (static, borrowed). */
const struct config_rule_kind *const *sink_rule_kinds(void);

#endif

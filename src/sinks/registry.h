/*
 * registry: the one list of sinks (SINK_LIST in sink.h), looked up by the
 * outbox entry's "kind" or by a rule's kind.
 *
 * Owns: nothing (the list is static const).
 * Invariants: names are unique; every enum config_rule_kind has one sink.
 * Thread context: any thread (read-only data).
 */
#ifndef POLLEN_REGISTRY_H
#define POLLEN_REGISTRY_H

#include "sink.h"

/* The sink named name (an entry's "kind"), or NULL (borrowed, static). */
const struct sink *sink_find(const char *name);
/* The sink that renders rules of kind (borrowed, static; NULL only for a value
 * no sink claims). */
const struct sink *sink_for_rule(enum config_rule_kind kind);

#endif

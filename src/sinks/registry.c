/*
 * registry: see registry.h. A new sink is one X(name) in SINK_LIST (sink.h);
 * its rule kind reaches config_load through sink_rule_kinds.
 */
#include "registry.h"

#include <string.h>

#include "util.h"

#define DECLARE(name) extern const struct sink dispatch__sink_##name;
SINK_LIST(DECLARE)
#undef DECLARE

#define ROW(name) &dispatch__sink_##name,
static const struct sink *const sinks[] = {SINK_LIST(ROW)};
#undef ROW

const struct sink *sink_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(sinks); i++) {
        if (strcmp(sinks[i]->name, name) == 0) {
            return sinks[i];
        }
    }
    return NULL;
}

const struct sink *sink_for_rule(const struct config_rule_kind *kind)
{
    for (size_t i = 0; i < ARRAY_SIZE(sinks); i++) {
        if (sinks[i]->rule_kind == kind) {
            return sinks[i];
        }
    }
    return NULL;
}

const struct config_rule_kind *const *sink_rule_kinds(void)
{
    /* Filled from the descriptors (an initializer cannot read their
     * rule_kind members); each call writes the same pointers again. */
    static const struct config_rule_kind *kinds[ARRAY_SIZE(sinks) + 1];
    for (size_t i = 0; i < ARRAY_SIZE(sinks); i++) {
        kinds[i] = sinks[i]->rule_kind;
    }
    kinds[ARRAY_SIZE(sinks)] = NULL;
    return kinds;
}

/*
 * registry: see registry.h. A new sink is one X(name) in SINK_LIST (sink.h).
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

const struct sink *sink_for_rule(enum config_rule_kind kind)
{
    for (size_t i = 0; i < ARRAY_SIZE(sinks); i++) {
        if (sinks[i]->rule_kind == kind) {
            return sinks[i];
        }
    }
    return NULL;
}

/*
 * sink_exec: the "exec" action kind's [rule] keys as parsed (command,
 * args, timeout), the rule's sink_conf. Read by the sink when it renders,
 * and by tests; config never sees this struct.
 *
 * Owns: nothing (the rule owns its conf; the kind's free_conf frees it).
 * Invariants: after a config_load that succeeded, command is the absolute
 * path of an executable regular file (checked at load) and every args
 * element is a parsed template.
 * Thread context: read-only after config_load (any thread).
 */
#ifndef POLLEN_SINK_EXEC_H
#define POLLEN_SINK_EXEC_H

#include <stddef.h>

#include "config.h"

struct sink_exec_conf {
    char *command;           /* run without a shell */
    struct template **args;  /* one argv element each (after command) */
    size_t nargs;
};

/* The kind, for tests (the registry lists it through its sink). */
extern const struct config_rule_kind sink_exec_rule_kind;

/* The name of signal sig for outcomes ("SIGTERM"), or its number written
 * into out when it has none here. Returns a static string or out. */
const char *sink_exec_signal_name(int sig, char out[16]);

#endif

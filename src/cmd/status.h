/*
 * status: `pollen status -c FILE [--json]`, how the triggers, locations,
 * outbox and database are doing, beside a running engine or without one.
 *
 * Opens the state directory read-only (as `pollen tail` does; LMDB lets
 * both share it) and never takes the engine's lock: it reads engine.lock
 * only to say whether an engine runs. Collects everything in one
 * status_report (status_report.h) and prints it as text or one JSON object.
 * Owns: nothing past the call.
 * Thread context: the CLI's main thread.
 */
#ifndef POLLEN_STATUS_H
#define POLLEN_STATUS_H

#include <stdbool.h>
#include <stdio.h>

struct config;

/*
 * Prints the status of cfg's triggers to out (JSON when json). Returns the
 * exit code: 0 healthy (a trigger that never ran included), 1 when a
 * trigger is failing (its last cycle failed, or its credential was refused)
 * or the state cannot be read (after a message on stderr).
 */
int status_run(const struct config *cfg, bool json, FILE *out);

#endif

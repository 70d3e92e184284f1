/*
 * failpoint: named crash points for the crash-safety tests (etcd gofail style).
 *
 * When the binary is built with -Dfailpoints=true (the default for test
 * builds) and the environment variable POLLEN_FAILPOINT names a point,
 * reaching that point kills the process with SIGKILL, exactly as an
 * operator's `kill -9` would, at the one instant the test wants to probe.
 * POLLEN_FAILPOINT=name:N kills on the N-th time the point is reached.
 * Error points work the same way but inject a failure instead of a crash:
 * while POLLEN_FAILPOINT_ERROR names one, FAILPOINT_ERROR(name) is true every
 * time it is reached (a store write that keeps failing, for instance).
 * The names are listed in the README (Crash safety) and in failpoint.c.
 * Thread context: loop thread.
 */
#ifndef POLLEN_FAILPOINT_H
#define POLLEN_FAILPOINT_H

#include <stdbool.h>

void failpoint_init(void);
void failpoint_hit(const char *name);
bool failpoint_error(const char *name);

#ifdef POLLEN_FAILPOINTS
#define FAILPOINT(name) failpoint_hit(name)
#define FAILPOINT_ERROR(name) failpoint_error(name)
#else
#define FAILPOINT(name) ((void)0)
#define FAILPOINT_ERROR(name) false
#endif

#endif

/*
 * failpoint: named crash points for the crash-safety tests (etcd gofail style).
 *
 * Compiled only into test builds: meson's `failpoints` feature is on for
 * buildtype debug and debugoptimized (the default, and CI's builds) and off
 * for release and minsize, where every FAILPOINT is ((void)0) and the
 * variables below are ignored with a warning. When the binary has them and
 * the environment variable POLLEN_FAILPOINT names a point,
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
#include <stddef.h>

/* Reads the variables (at engine start). Warns about a name no point has,
 * or, in a build without failpoints, about any of them being set. */
void failpoint_init(void);
/* Returns the names of every point and error point compiled in (static
 * storage) and their count in *n; NULL and 0 in a build without them.
 * `pollen __failpoints` prints them: the integration tests ask the binary
 * whether it can crash on demand. */
const char *const *failpoint_names(size_t *n);
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

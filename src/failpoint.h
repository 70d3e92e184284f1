/*
 * failpoint: named crash points for the crash-safety tests (etcd gofail style).
 *
 * When the binary is built with -Dfailpoints=true (the default for test
 * builds) and the environment variable POLLEN_FAILPOINT names a point,
 * reaching that point kills the process with SIGKILL, exactly as an
 * operator's `kill -9` would, at the one instant the test wants to probe.
 * POLLEN_FAILPOINT=name:N kills on the N-th time the point is reached.
 * The names are listed in the README (Crash safety) and in failpoint.c.
 * Thread context: loop thread.
 */
#ifndef POLLEN_FAILPOINT_H
#define POLLEN_FAILPOINT_H

void failpoint_init(void);
void failpoint_hit(const char *name);

#ifdef POLLEN_FAILPOINTS
#define FAILPOINT(name) failpoint_hit(name)
#else
#define FAILPOINT(name) ((void)0)
#endif

#endif

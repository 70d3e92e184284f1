/*
 * failpoint: see failpoint.h.
 *
 * Known points (failpoint_names, `pollen __failpoints`):
 *   poll.before_commit   a page or cycle diff is written but not committed
 *   poll.after_commit    the commit returned, before anything else happens
 *   wide.before_commit   a full round's batch page is written but not committed
 *   wide.after_commit
 *   sweep.before_commit  a fan-out read is written but not committed
 *   sweep.after_commit
 *   dispatch.after_inflight_commit   an action's attempt is recorded, not yet sent
 *   dispatch.after_send_before_ack   the action was sent; its outcome is not recorded
 *   dispatch.after_ack               the outcome is recorded
 *   token.after_response_before_persist  a rotated token pair arrived, not yet on disk
 *   token.after_persist              the new pair is on disk, not yet used
 *
 * Error points (POLLEN_FAILPOINT_ERROR=name):
 *   dispatch.claim   the transaction that claims an outbox entry fails (-ENOSPC)
 * POLLEN_WALL_OFFSET_MS=N (failpoint builds only) shifts the wall clock
 * pollen sees by N ms (negative: back), to test clock steps.
 */
#include "failpoint.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#ifdef POLLEN_FAILPOINTS
/* Every FAILPOINT and FAILPOINT_ERROR name in src/, for the probe and for the
 * warning about a misspelt POLLEN_FAILPOINT. */
static const char *const names[] = {
    "poll.before_commit",
    "poll.after_commit",
    "wide.before_commit",
    "wide.after_commit",
    "sweep.before_commit",
    "sweep.after_commit",
    "dispatch.after_inflight_commit",
    "dispatch.after_send_before_ack",
    "dispatch.after_ack",
    "token.after_response_before_persist",
    "token.after_persist",
    "dispatch.claim",
};
#endif

static char armed[128];
static long countdown;
static char armed_error[128];

const char *const *failpoint_names(size_t *n)
{
#ifdef POLLEN_FAILPOINTS
    *n = ARRAY_SIZE(names);
    return names;
#else
    *n = 0;
    return NULL;
#endif
}

#ifdef POLLEN_FAILPOINTS
/* A name no point has would silently never fire: say so. */
static void warn_unknown(const char *var, const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcmp(names[i], name) == 0) {
            return;
        }
    }
    log_warn("failpoint", "%s names no failpoint: '%s' (`pollen __failpoints` lists them)", var,
             name);
}
#else
/* A test build's variable set for a release build: nothing would fire. */
static void warn_ignored(void)
{
    static const char *const vars[] = {"POLLEN_FAILPOINT", "POLLEN_FAILPOINT_ERROR",
                                       "POLLEN_WALL_OFFSET_MS"};
    for (size_t i = 0; i < ARRAY_SIZE(vars); i++) {
        const char *v = getenv(vars[i]);
        if (v != NULL && *v != '\0') {
            log_warn("failpoint", "%s is set but this build has no failpoints "
                                  "(-Dfailpoints=disabled, or buildtype=release): ignored",
                     vars[i]);
        }
    }
}
#endif

void failpoint_init(void)
{
#ifndef POLLEN_FAILPOINTS
    warn_ignored();
#endif
    const char *err = getenv("POLLEN_FAILPOINT_ERROR");
    str_copy(armed_error, sizeof(armed_error), err != NULL ? err : "");
#ifdef POLLEN_FAILPOINTS
    if (armed_error[0] != '\0') {
        warn_unknown("POLLEN_FAILPOINT_ERROR", armed_error);
    }
#endif
#ifdef POLLEN_FAILPOINTS
    const char *offset = getenv("POLLEN_WALL_OFFSET_MS");
    if (offset != NULL && *offset != '\0') {
        util_set_wall_offset_ms(strtoll(offset, NULL, 10));
    }
#endif
    const char *spec = getenv("POLLEN_FAILPOINT");
    armed[0] = '\0';
    countdown = 1;
    if (spec == NULL || *spec == '\0') {
        return;
    }
    str_copy(armed, sizeof(armed), spec);
    char *colon = strchr(armed, ':');
    if (colon != NULL) {
        *colon = '\0';
        long long n = 1;
        if (util_parse_int(colon + 1, 1, 1000000000, &n) == 0) {
            countdown = (long)n;
        }
    }
#ifdef POLLEN_FAILPOINTS
    warn_unknown("POLLEN_FAILPOINT", armed);
#endif
}

void failpoint_hit(const char *name)
{
    if (armed[0] == '\0' || strcmp(armed, name) != 0) {
        return;
    }
    if (--countdown > 0) {
        return;
    }
    log_warn("failpoint", "%s reached: killing the process", name);
    raise(SIGKILL);
}

bool failpoint_error(const char *name)
{
    return armed_error[0] != '\0' && strcmp(armed_error, name) == 0;
}

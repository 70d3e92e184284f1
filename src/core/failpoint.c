/*
 * failpoint: see failpoint.h.
 *
 * Known points:
 *   poll.before_commit   a page or cycle diff is written but not committed
 *   poll.after_commit    the commit returned, before anything else happens
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

static char armed[128];
static long countdown;
static char armed_error[128];

void failpoint_init(void)
{
    const char *err = getenv("POLLEN_FAILPOINT_ERROR");
    str_copy(armed_error, sizeof(armed_error), err != NULL ? err : "");
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

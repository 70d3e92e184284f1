/*
 * subproc: runs an `exec` action's program safely (reliability P16, §5.5).
 *
 * The program is started directly with an argument vector (no shell, so a
 * value like `"; rm -rf / #` is one literal argument), a minimal environment
 * built from an allow-list (PATH, LANG and the POLLEN_* values given), and no
 * file descriptors beyond 0-2: libuv cannot close inherited descriptors, so
 * the child is this same binary re-executed as `pollen __exec PROGRAM ARGS...`,
 * which calls close_range(3, ~0) and then execve()s the program. The event
 * JSON is written to the program's standard input; its standard output and
 * error are captured (capped at 64 KiB) for the log. A timeout kills the
 * whole process group. The exit status decides success. The job ends when
 * the program has exited and its output reached EOF; a background process
 * that keeps the output open (`sleep 120 &`) gets SUBPROC_LINGER_MS after the
 * program exited, then its whole process group is killed and the program's
 * own exit status still decides (res->lingered tells the log). The deadline
 * stays armed until the job ends, so nothing can hold an attempt forever.
 * Thread context: loop thread; the callback runs on the loop.
 */
#ifndef POLLEN_SUBPROC_H
#define POLLEN_SUBPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct subproc_result {
    int64_t exit_status;   /* the program's exit code, or -1 */
    int term_signal;       /* the signal that ended it, or 0 */
    int error;             /* 0, or a negative UV_* code when it could not start */
    bool timed_out;
    bool lingered;         /* background processes held the output after the exit: killed */
    bool cancelled;        /* subproc_cancel killed it: the outcome is unknown */
    char output[512];      /* the first bytes of stdout+stderr, for the log */
};

/* How long a program's background processes may keep its output open after it exited. */
#define SUBPROC_LINGER_MS 1000

struct subproc_job;

typedef void (*subproc_done_cb)(const struct subproc_result *res, void *ud);

/*
 * Starts argv[0] (an absolute path) with argv and env (NULL-terminated;
 * copied). stdin_data (len bytes) is written to its standard input, which is
 * then closed. Returns 0, and cb runs later exactly once (with res->error set
 * when the program could not be started); or UV_EINVAL for a relative
 * argv[0], and cb is not called. *job (optional) can be passed to
 * subproc_cancel until cb runs.
 */
int subproc_run(uv_loop_t *loop, char *const *argv, char *const *env, const char *stdin_data,
              size_t len, uint64_t timeout_ms, subproc_done_cb cb, void *ud,
              struct subproc_job **job);

/* Kills the job's whole process group now; cb still runs once (res->cancelled set). */
void subproc_cancel(struct subproc_job *j);

/* The `pollen __exec PROGRAM ARGS...` entry: closes fds >= 3 and execs. Never returns on success. */
int subproc_exec_main(int argc, char **argv);

#endif

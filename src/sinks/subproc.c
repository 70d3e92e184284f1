/*
 * subproc: see subproc.h.
 */
#define _GNU_SOURCE 1
#include "subproc.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define OUTPUT_CAP (64 * 1024)

struct subproc_job {
    uv_process_t proc;
    uv_pipe_t in;
    uv_pipe_t out;
    uv_timer_t timer;
    uv_write_t write_req;
    char *input;
    size_t input_len;
    struct subproc_result res;
    size_t output_len;
    size_t output_total;
    int open_handles;
    bool exited;
    bool started;          /* uv_spawn succeeded: proc.pid leads a process group of ours */
    char *name;            /* the program, for the log */
    subproc_done_cb cb;
    void *ud;
};

static void job_handle_closed(uv_handle_t *h)
{
    struct subproc_job *j = h->data;
    if (--j->open_handles > 0) {
        return;
    }
    j->cb(&j->res, j->ud);
    free(j->input);
    free(j->name);
    free(j);
}

static void close_all(struct subproc_job *j)
{
    uv_handle_t *handles[] = {(uv_handle_t *)&j->proc, (uv_handle_t *)&j->in,
                              (uv_handle_t *)&j->out, (uv_handle_t *)&j->timer};
    for (size_t i = 0; i < ARRAY_SIZE(handles); i++) {
        if (!uv_is_closing(handles[i])) {
            uv_close(handles[i], job_handle_closed);
        }
    }
}

static void maybe_finish(struct subproc_job *j)
{
    /* Done once the process exited and its output pipe reached EOF (or was closed). */
    if (j->exited && uv_is_closing((uv_handle_t *)&j->out)) {
        close_all(j);
    }
}

/* The child leads its own process group (UV_PROCESS_DETACHED): this reaches
 * whatever it left behind too. Never called before a successful spawn (pid 0
 * would name our own group). */
static void kill_group(struct subproc_job *j)
{
    if (j->started && j->proc.pid > 0) {
        kill(-j->proc.pid, SIGKILL);
    }
}

static void close_output(struct subproc_job *j)
{
    if (!uv_is_closing((uv_handle_t *)&j->out)) {
        uv_close((uv_handle_t *)&j->out, job_handle_closed);
    }
}

/* The program exited SUBPROC_LINGER_MS ago and something still holds its
 * output open: a background child. Kill the group and stop waiting for EOF. */
static void on_linger(uv_timer_t *t)
{
    struct subproc_job *j = t->data;
    j->res.lingered = true;
    log_warn("exec", "%s exited but its background processes kept its output open: killed "
                     "its process group",
             j->name);
    kill_group(j);
    close_output(j);
    maybe_finish(j);
}

static void on_child_exit(uv_process_t *p, int64_t status, int term_signal)
{
    struct subproc_job *j = p->data;
    j->exited = true;
    j->res.exit_status = status;
    j->res.term_signal = term_signal;
    if (!uv_is_closing((uv_handle_t *)&j->out) && !uv_is_closing((uv_handle_t *)&j->timer)) {
        /* Normally EOF follows at once; the timer (until now the deadline)
         * bounds the wait for it. */
        uv_timer_start(&j->timer, on_linger, SUBPROC_LINGER_MS, 0);
    }
    maybe_finish(j);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char scratch[16384];
    (void)h;
    (void)suggested;
    buf->base = scratch;
    buf->len = sizeof(scratch);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct subproc_job *j = s->data;
    if (n > 0) {
        size_t room = sizeof(j->res.output) - 1 - j->output_len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(j->res.output + j->output_len, buf->base, take);
        j->output_len += take;
        j->res.output[j->output_len] = '\0';
        j->output_total += (size_t)n;
        if (j->output_total > OUTPUT_CAP) {
            /* A chatty program does not get to fill our memory or stall us. */
            uv_close((uv_handle_t *)s, job_handle_closed);
            maybe_finish(j);
        }
        return;
    }
    if (n < 0) {
        uv_close((uv_handle_t *)s, job_handle_closed);
        maybe_finish(j);
    }
}

static void on_written(uv_write_t *req, int status)
{
    struct subproc_job *j = req->data;
    (void)status; /* a program that does not read its input is its own business */
    if (!uv_is_closing((uv_handle_t *)&j->in)) {
        uv_close((uv_handle_t *)&j->in, job_handle_closed);
    }
}

static void on_timeout(uv_timer_t *t)
{
    struct subproc_job *j = t->data;
    j->res.timed_out = true;
    kill_group(j);
}

void subproc_cancel(struct subproc_job *j)
{
    j->res.cancelled = true;
    kill_group(j);
    close_output(j);
    maybe_finish(j);
}

static char *self_exe(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0) {
        return NULL;
    }
    buf[n] = '\0';
    return xstrdup(buf);
}

int subproc_run(uv_loop_t *loop, char *const *argv, char *const *env, const char *stdin_data,
              size_t len, uint64_t timeout_ms, subproc_done_cb cb, void *ud,
              struct subproc_job **job)
{
    char *exe = self_exe();
    if (exe == NULL || argv == NULL || argv[0] == NULL || argv[0][0] != '/') {
        free(exe);
        return UV_EINVAL;
    }
    size_t argc = strv_len(argv);
    char **args = xcalloc(argc + 3, sizeof(*args));
    args[0] = exe;
    args[1] = "__exec";
    for (size_t i = 0; i < argc; i++) {
        args[i + 2] = argv[i];
    }
    struct subproc_job *j = xcalloc(1, sizeof(*j));
    j->cb = cb;
    j->ud = ud;
    j->res.exit_status = -1;
    j->input = xstrndup(stdin_data ? stdin_data : "", len);
    j->input_len = len;
    j->name = xstrdup(argv[0]);
    uv_pipe_init(loop, &j->in, 0);
    uv_pipe_init(loop, &j->out, 0);
    uv_timer_init(loop, &j->timer);
    j->in.data = j->out.data = j->timer.data = j->proc.data = j;
    j->write_req.data = j;

    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&j->in;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&j->out;
    /* stderr joins stdout in `pollen __exec` (dup2 before exec): libuv cannot
     * hand the same new pipe to two descriptors. */
    stdio[2].flags = UV_IGNORE;
    uv_process_options_t opts;
    memset(&opts, 0, sizeof(opts));
    opts.exit_cb = on_child_exit;
    opts.file = exe;
    opts.args = args;
    opts.env = (char **)env; /* never NULL: NULL would mean "inherit everything" */
    opts.stdio = stdio;
    opts.stdio_count = 3;
    opts.flags = UV_PROCESS_DETACHED;
    int rc = uv_spawn(loop, &j->proc, &opts);
    free(args);
    free(exe);
    j->open_handles = 4;
    if (job != NULL) {
        *job = j;
    }
    if (rc != 0) {
        /* Nothing started; report it through the callback like any outcome.
         * The process handle was initialised by uv_spawn and is closed too. */
        j->res.error = rc;
        j->exited = true;
        close_all(j);
        return 0;
    }
    j->started = true;
    uv_buf_t b = uv_buf_init(j->input, (unsigned)j->input_len);
    if (uv_write(&j->write_req, (uv_stream_t *)&j->in, &b, 1, on_written) != 0) {
        uv_close((uv_handle_t *)&j->in, job_handle_closed);
    }
    uv_read_start((uv_stream_t *)&j->out, on_alloc, on_read);
    uv_timer_start(&j->timer, on_timeout, timeout_ms ? timeout_ms : 30000, 0);
    return 0;
}

int subproc_exec_main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "pollen __exec: internal helper; not for direct use\n");
        return 2;
    }
    /* The program's stderr goes where its stdout goes (the captured pipe). */
    dup2(1, 2);
    /* Only 0-2 survive into the program: LMDB, curl and libuv descriptors never leak. */
    close_range(3, ~0U, 0);
    extern char **environ;
    execve(argv[2], argv + 2, environ);
    fprintf(stderr, "pollen __exec: cannot run %s: %s\n", argv[2], strerror(errno));
    return 127;
}

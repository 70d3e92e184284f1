/*
 * sink_exec: the "exec" sink, a program run per event. Its [rule] keys
 * (command, args, timeout: sink_exec.h) are checked at load; it renders its
 * arguments (the event goes to its standard input, as recorded), runs it
 * through subproc with an allow-listed environment, and classifies the
 * exit: 0 succeeds, a failure to start is dead, anything else retries.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "config.h"
#include "json.h"
#include "sink_exec.h"
#include "sinks_int.h"
#include "subproc.h"
#include "template.h"
#include "util.h"

/* ---- [rule] keys: the kind's half, parsed by config_load -------------- */

/* Most arguments per rule. */
#define ARGS_MAX 64

/* The conf a custom parser writes into, from the address of its member. */
#define EXEC_CONF_OF(field, member) \
    ((struct sink_exec_conf *)(void *)((char *)(field) - offsetof(struct sink_exec_conf, member)))

/* command: an absolute path to an executable regular file, run without a
 * shell; checked now so that `check` catches a typo. */
static int parse_rule_command(struct ini_doc *doc, const struct ini_key *k,
                              const char *value, int line, void *field)
{
    if (value[0] != '/' || strstr(value, "{{") != NULL) {
        ini_diag_add(&doc->diag, line,
                     "%s must be the absolute path of a program (no shell, no PATH search, no "
                     "templates: put those in args), e.g. /usr/local/bin/notify",
                     k->name);
        return -EINVAL;
    }
    struct stat st;
    if (stat(value, &st) != 0) {
        ini_diag_add(&doc->diag, line, "%s '%s': %s", k->name, value, strerror(errno));
        return -EINVAL;
    }
    if (!S_ISREG(st.st_mode)) {
        ini_diag_add(&doc->diag, line, "%s '%s' is not a regular file", k->name, value);
        return -EINVAL;
    }
    if (access(value, X_OK) != 0) {
        ini_diag_add(&doc->diag, line, "%s '%s' is not executable: %s", k->name, value,
                     strerror(errno));
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrdup(value);
    return 0;
}

/* args: words, each a template that becomes exactly one argv element. */
static int parse_rule_args(struct ini_doc *doc, const struct ini_key *k, const char *value,
                           int line, void *field)
{
    struct sink_exec_conf *c = EXEC_CONF_OF(field, args);
    size_t n = 0;
    char **w = config_split_words(value, &n);
    int rc = 0;
    if (n > ARGS_MAX) {
        ini_diag_add(&doc->diag, line, "'%s' has %zu words; the limit is %d", k->name, n,
                     ARGS_MAX);
        strv_free(w);
        return -EINVAL;
    }
    c->args = xcalloc(n > 0 ? n : 1, sizeof(*c->args));
    c->nargs = n;
    for (size_t i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof(what), "%s word %zu", k->name, i + 1);
        c->args[i] = config_rule_template(doc, line, what, w[i]);
        if (c->args[i] == NULL) {
            rc = -EINVAL;
        }
    }
    strv_free(w);
    return rc;
}

static const struct ini_key exec_keys[] = {
    {.name = "command", .type = INI_KEY_CUSTOM,
     .offset = offsetof(struct sink_exec_conf, command), .required = true,
     .parse = parse_rule_command},
    {.name = "args", .type = INI_KEY_CUSTOM, .offset = offsetof(struct sink_exec_conf, args),
     .parse = parse_rule_args},
};
enum { EXEC_COMMAND, EXEC_ARGS };

static void exec_finish(struct ini_doc *doc, const struct config_rule *r, const int *lines)
{
    const struct sink_exec_conf *c = r->sink_conf;
    for (size_t i = 0; i < c->nargs; i++) {
        config_rule_warn_changes(doc, r, c->args[i], "args", lines[EXEC_ARGS]);
    }
}

static void exec_free_conf(void *conf)
{
    struct sink_exec_conf *c = conf;
    free(c->command);
    for (size_t i = 0; i < c->nargs; i++) {
        template_free(c->args[i]);
    }
    free(c->args);
}

const struct config_rule_kind sink_exec_rule_kind = {
    .name = "exec",
    .keys = exec_keys,
    .nkeys = ARRAY_SIZE(exec_keys),
    .conf_size = sizeof(struct sink_exec_conf),
    .timeout = true,
    .finish = exec_finish,
    .free_conf = exec_free_conf,
};

/* ---- render, send, classify ------------------------------------------- */

static cJSON *render_exec(struct sink_render *r, const struct config_rule *rule, cJSON *entry)
{
    const struct sink_exec_conf *c = rule->sink_conf;
    (void)entry;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "command", c->command);
    cJSON *args = cJSON_AddArrayToObject(req, "args");
    for (size_t i = 0; i < c->nargs; i++) {
        cJSON *v = NULL;
        char err[200];
        if (template_render(c->args[i], r->event, r->now, &v, err, sizeof(err)) != 0) {
            snprintf(r->err, sizeof(r->err), "args: %s", err);
            cJSON_Delete(req);
            return NULL;
        }
        char *text = sink_value_text(v);
        cJSON_Delete(v);
        cJSON_AddItemToArray(args, cJSON_CreateString(text));
        free(text);
    }
    /* The program reads the event on its standard input, exactly as recorded. */
    char *json = cJSON_PrintUnformatted(r->event);
    cJSON_AddStringToObject(req, "stdin", json);
    free(json);
    return req;
}

const char *sink_exec_signal_name(int sig, char out[16])
{
    static const struct {
        int sig;
        const char *name;
    } names[] = {
        {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
        {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
        {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
        {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"}, {SIGXCPU, "SIGXCPU"},
        {SIGXFSZ, "SIGXFSZ"}, {SIGSYS, "SIGSYS"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (names[i].sig == sig) {
            return names[i].name;
        }
    }
    snprintf(out, 16, "%d", sig);
    return out;
}

static void classify_exec(const cJSON *entry, const void *response, struct sink_outcome *o)
{
    const struct subproc_result *res = response;
    (void)entry;
    /* The program's first output, up to 200 bytes, without its final newline. */
    int out_len = (int)strnlen(res->output, 200);
    while (out_len > 0 && strchr(" \t\r\n", res->output[out_len - 1]) != NULL) {
        out_len--;
    }
    o->status = res->exit_status;
    if (res->error != 0) {
        o->kind = SINK_DEAD;
        snprintf(o->error, sizeof(o->error), "cannot start: %s", uv_strerror(res->error));
    } else if (res->timed_out) {
        o->kind = SINK_RETRY;
        snprintf(o->error, sizeof(o->error), "timed out");
    } else if (res->term_signal != 0) {
        o->kind = SINK_RETRY;
        char name[16];
        snprintf(o->error, sizeof(o->error), "signal %s%s%.*s",
                 sink_exec_signal_name(res->term_signal, name), out_len ? ": " : "", out_len,
                 res->output);
    } else if (res->exit_status == 0) {
        o->kind = SINK_SUCCESS;
    } else {
        o->kind = SINK_RETRY;
        snprintf(o->error, sizeof(o->error), "exit %lld%s%.*s", (long long)res->exit_status,
                 out_len ? ": " : "", out_len, res->output);
    }
}

static void on_exec_done(const struct subproc_result *res, void *ud)
{
    struct sink_call *call = ud;
    call->handle = NULL;
    struct sink_outcome o;
    memset(&o, 0, sizeof(o));
    if (res->cancelled) {
        /* The shutdown grace ran out: the lease brings the entry back. */
        o.cancelled = true;
    } else {
        classify_exec(call->entry, res, &o);
    }
    /* Recorded even while stopping: running the program again after a
     * restart would do its work twice (dispatcher_drain). */
    call->done(call, &o);
}

static int send_exec(struct sink_call *call, const cJSON *req)
{
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(req, "args");
    size_t n = (size_t)cJSON_GetArraySize(args);
    char **argv = xcalloc(n + 2, sizeof(*argv));
    argv[0] = xstrdup(sink_str(req, "command"));
    size_t k = 1;
    const cJSON *arg;
    cJSON_ArrayForEach(arg, args)
    {
        argv[k++] = xstrdup(cJSON_IsString(arg) ? arg->valuestring : "");
    }
    argv[k] = NULL;
    /* An allow-listed environment: nothing of pollen's own (tokens) leaks. */
    char *env[] = {
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "LANG=C.UTF-8",
        xasprintf("POLLEN_RULE=%s", sink_str(call->entry, "rule")),
        xasprintf("POLLEN_EVENT_ID=%s", sink_str(call->entry, "source")),
        xasprintf("POLLEN_IDEMPOTENCY_KEY=%s", sink_str(call->entry, "key")),
        NULL,
    };
    const char *stdin_json = sink_str(req, "stdin");
    struct subproc_job *job = NULL;
    int rc = subproc_run(call->env->loop, argv, env, stdin_json, strlen(stdin_json),
                       (uint64_t)sink_num(call->entry, "timeout_ms", 30000), on_exec_done, call,
                       &job);
    call->handle = job;
    strv_free(argv);
    for (size_t i = 2; env[i] != NULL; i++) {
        free(env[i]);
    }
    return rc;
}

static void cancel_exec(struct sink_call *call)
{
    subproc_cancel(call->handle);
}

const struct sink dispatch__sink_exec = {
    .name = "exec",
    .status_word = "exit",
    .rule_kind = &sink_exec_rule_kind,
    .render = render_exec,
    .send = send_exec,
    .cancel = cancel_exec,
    .classify = classify_exec,
};

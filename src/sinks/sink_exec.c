/*
 * sink_exec: the "exec" sink, a program run per event. Renders its
 * arguments (the event goes to its standard input, as recorded), runs it
 * through subproc with an allow-listed environment, and classifies the
 * exit: 0 succeeds, a failure to start is dead, anything else retries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "config.h"
#include "json.h"
#include "sinks_int.h"
#include "subproc.h"
#include "template.h"
#include "util.h"

static cJSON *render_exec(struct sink_render *r, const struct config_rule *rule, cJSON *entry)
{
    (void)entry;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "command", rule->command);
    cJSON *args = cJSON_AddArrayToObject(req, "args");
    for (size_t i = 0; i < rule->nargs; i++) {
        cJSON *v = NULL;
        char err[200];
        if (template_render(rule->args[i], r->event, r->now, &v, err, sizeof(err)) != 0) {
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

static void classify_exec(const cJSON *entry, const void *response, struct sink_outcome *o)
{
    const struct subproc_result *res = response;
    (void)entry;
    o->status = res->exit_status;
    if (res->error != 0) {
        o->kind = SINK_DEAD;
        snprintf(o->error, sizeof(o->error), "cannot start: %s", uv_strerror(res->error));
    } else if (res->timed_out) {
        o->kind = SINK_RETRY;
        snprintf(o->error, sizeof(o->error), "timed out");
    } else if (res->term_signal != 0) {
        o->kind = SINK_RETRY;
        snprintf(o->error, sizeof(o->error), "killed by signal %d", res->term_signal);
    } else if (res->exit_status == 0) {
        o->kind = SINK_SUCCESS;
    } else {
        o->kind = SINK_RETRY;
        snprintf(o->error, sizeof(o->error), "exit status %lld: %.200s",
                 (long long)res->exit_status, res->output);
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
    .rule_kind = CONFIG_RULE_EXEC,
    .render = render_exec,
    .send = send_exec,
    .cancel = cancel_exec,
    .classify = classify_exec,
};

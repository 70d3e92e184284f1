/*
 * tail: see tail.h.
 */
#include "tail.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "evlog.h"
#include "json.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define FOLLOW_INTERVAL_MS 250
#define BATCH 1000

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct tail_ctx {
    const struct tail_options *o;
    uint64_t printed;
    bool write_failed;
};

static bool matches(const struct tail_options *o, const char *json, size_t len)
{
    if (o->trigger == NULL && o->type == NULL) {
        return true;
    }
    cJSON *ev = NULL;
    if (json_parse(json, len, &ev, NULL) != 0) {
        return false;
    }
    bool ok = true;
    if (o->trigger != NULL) {
        const char *t = json_get_string(ev, "trigger");
        ok = t != NULL && strcmp(t, o->trigger) == 0;
    }
    if (ok && o->type != NULL) {
        const char *t = json_get_string(ev, "type");
        ok = t != NULL && strcmp(t, o->type) == 0;
    }
    cJSON_Delete(ev);
    return ok;
}

static int print_event(uint64_t seq, const char *json, size_t len, void *ud)
{
    struct tail_ctx *c = ud;
    (void)seq;
    if (!matches(c->o, json, len)) {
        return 0;
    }
    if (fwrite(json, 1, len, c->o->out) != len || fputc('\n', c->o->out) == EOF) {
        c->write_failed = true;
        return 1;
    }
    c->printed++;
    if (c->o->limit != 0 && c->printed >= c->o->limit) {
        return 1;
    }
    return 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool store_exists(const char *dir)
{
    char *path = xasprintf("%s/data.mdb", dir);
    struct stat st;
    bool ok = stat(path, &st) == 0;
    free(path);
    return ok;
}

int tail_run(const struct tail_options *o)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    while (!store_exists(o->state_dir)) {
        if (!o->follow) {
            /* Nothing recorded yet is not an error: there are simply no events. */
            return 0;
        }
        if (interrupted) {
            return 0;
        }
        sleep_ms(FOLLOW_INTERVAL_MS);
    }
    struct store_options so = {.readonly = true};
    struct store *s = NULL;
    int rc = store_open(o->state_dir, &so, &s);
    if (rc != 0) {
        fprintf(stderr, "pollen tail: cannot open %s: %s\n", o->state_dir, store_strerror(rc));
        return 1;
    }
    struct tail_ctx c = {.o = o};
    uint64_t next = o->from ? o->from : 1;
    int status = 0;
    while (!interrupted) {
        uint64_t after = next;
        rc = evlog_read(s, next, BATCH, print_event, &c, &after);
        /* A positive value is print_event asking to stop (limit, closed stdout). */
        if (rc < 0 && rc != -ENOENT) {
            fprintf(stderr, "pollen tail: cannot read events: %s\n", store_strerror(rc));
            status = 1;
            break;
        }
        fflush(o->out);
        if (c.write_failed || (o->limit != 0 && c.printed >= o->limit)) {
            break;
        }
        bool progressed = after != next;
        next = after;
        if (progressed) {
            continue;
        }
        if (!o->follow) {
            break;
        }
        sleep_ms(FOLLOW_INTERVAL_MS);
        /* The engine may have cleared our slot or grown the map: both are handled per txn. */
    }
    store_close(s);
    json_scratch_release();
    return status;
}

/*
 * tail: see tail.h.
 */
#include "tail.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "evlog.h"
#include "json.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define FOLLOW_INTERVAL_MS 250
#define BATCH 1000
/* A batch is copied out of the read txn before it is written (see below):
 * it stops taking events past this many bytes. */
#define BATCH_BYTES (4u * 1024 * 1024)

/* collect_event's reasons to stop a read (positive: not store errors). */
enum { STOP_LIMIT = 1, STOP_BATCH_FULL = 2 };

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct tail_ctx {
    const struct tail_options *o;
    struct buf batch; /* the matching events of this read, one per line */
    uint64_t taken;   /* events printed or in batch */
    uint64_t first;   /* the first seq read, 0 before any */
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

/*
 * evlog_read callback: copies a matching event into the batch. Nothing is
 * written here: a write can block for as long as the consumer of stdout
 * stalls, and a read txn held that long pins an old snapshot, so data.mdb
 * grows without bound despite retention (F5).
 */
static int collect_event(uint64_t seq, const char *json, size_t len, void *ud)
{
    struct tail_ctx *c = ud;
    if (c->first == 0) {
        c->first = seq;
    }
    if (!matches(c->o, json, len)) {
        return 0;
    }
    if (c->batch.len > 0 && c->batch.len + len + 1 > BATCH_BYTES) {
        return STOP_BATCH_FULL; /* not consumed: the next read starts here */
    }
    if (buf_append(&c->batch, json, len) != 0 || buf_append(&c->batch, "\n", 1) != 0) {
        return -ENOMEM; /* unreachable: the cap leaves room for one more event */
    }
    c->taken++;
    return c->o->limit != 0 && c->taken >= c->o->limit ? STOP_LIMIT : 0;
}

/* write_batch: the reader of our output went away (`tail -f | head -1`). */
enum { OUT_CLOSED = 1 };

/* Writes the batch once the read txn is over. Returns 0, OUT_CLOSED, or -1
 * after a message (a lost write: a full disk, an I/O error). */
static int write_batch(struct tail_ctx *c)
{
    size_t n = c->batch.len;
    errno = 0;
    bool ok = n == 0 || fwrite(c->batch.data, 1, n, c->o->out) == n;
    buf_reset(&c->batch);
    /* ferror too: some streams report a failed write only there. */
    if (ok && fflush(c->o->out) == 0 && !ferror(c->o->out)) {
        return 0;
    }
    if (errno == EPIPE) {
        /* A normal end, not a lost export: nothing is left buffered (the
         * stream is unbuffered), so the caller's final flush finds no error. */
        clearerr(c->o->out);
        return OUT_CLOSED;
    }
    fprintf(stderr, "pollen tail: cannot write the events: %s\n", strerror(errno));
    return -1;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
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
    /* Whole batches are written at once: no stdio buffer is needed, and none
     * is left holding data when the reader goes away. */
    setvbuf(o->out, NULL, _IONBF, 0);
    struct tail_ctx c = {.o = o};
    buf_init(&c.batch, BATCH_BYTES + EVLOG_MAX_EVENT + 1);
    uint64_t next = o->from ? o->from : 1;
    int status = 0;
    while (!interrupted) {
        uint64_t after = next;
        rc = evlog_read(s, next, BATCH, collect_event, &c, &after);
        /* A positive value is collect_event asking to stop (limit, full batch). */
        if (rc < 0 && rc != -ENOENT) {
            fprintf(stderr, "pollen tail: cannot read events: %s\n", store_strerror(rc));
            status = 1;
            break;
        }
        /* An export resumed with --from must not miss events silently. */
        if (c.first > next && next == o->from && o->from > 1) {
            fprintf(stderr, "pollen tail: events %llu to %llu are no longer kept (retention); "
                            "starting at %llu\n",
                    (unsigned long long)o->from, (unsigned long long)(c.first - 1),
                    (unsigned long long)c.first);
        }
        /* The read txn has ended: only now may we block on stdout. */
        int w = write_batch(&c);
        if (w != 0) {
            status = w == OUT_CLOSED ? 0 : 1;
            break;
        }
        if (rc == STOP_LIMIT) {
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
    buf_finish(&c.batch);
    store_close(s);
    json_scratch_release();
    return status;
}

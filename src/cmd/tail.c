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
#include "cli.h"
#include "config.h"
#include "evlog.h"
#include "isotime.h"
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
    uint64_t skip;    /* matching events still to pass over (--last) */
};

int tail_types_add(struct tail_types *t, const char *type)
{
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->names[i], type) == 0) {
            return 0;
        }
    }
    if (t->count == TAIL_MAX_TYPES) {
        return -E2BIG;
    }
    t->names[t->count++] = type;
    return 0;
}

int tail_parse_since(const char *text, uint64_t now_ms, uint64_t *out_ms)
{
    int64_t at = 0;
    if (isotime_parse(text, ISOTIME_LOOSE, &at) == 0) {
        *out_ms = (uint64_t)at;
        return 0;
    }
    uint64_t ago = 0;
    if (util_parse_duration(text, &ago) != 0 || ago == 0) {
        return -EINVAL;
    }
    *out_ms = ago < now_ms ? now_ms - ago : 1; /* 1: 0 would mean "no --since" */
    return 0;
}

/* Does an event's trigger t name the trigger name, or one of its
 * `location = *` expansions (name@LOCATION)? */
static bool same_trigger(const char *t, const char *name)
{
    size_t n = strlen(name);
    return t != NULL && strncmp(t, name, n) == 0 && (t[n] == '\0' || t[n] == '@');
}

bool tail_trigger_configured(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        if (same_trigger(cfg->triggers[i].name, name)) {
            return true;
        }
    }
    return false;
}

static bool type_wanted(const struct tail_types *types, const char *t)
{
    if (types->count == 0) {
        return true;
    }
    for (size_t i = 0; t != NULL && i < types->count; i++) {
        if (strcmp(t, types->names[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool matches(const struct tail_options *o, const char *json, size_t len)
{
    if (o->trigger == NULL && o->types.count == 0 && o->since_ms == 0) {
        return true;
    }
    cJSON *ev = NULL;
    if (json_parse(json, len, &ev, NULL) != 0) {
        return false;
    }
    bool ok = o->trigger == NULL || same_trigger(json_get_string(ev, "trigger"), o->trigger);
    ok = ok && type_wanted(&o->types, json_get_string(ev, "type"));
    if (ok && o->since_ms != 0) {
        /* An event without a readable time cannot be placed after TIME. */
        const char *when = json_get_string(ev, "time");
        uint64_t at = 0;
        ok = when != NULL && evlog_parse_time(when, &at) == 0 && at >= o->since_ms;
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
    if (c->skip > 0) {
        c->skip--; /* before the last N (--last) */
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

/* count_matching's state: the options and the matches so far. */
struct counter {
    const struct tail_options *o;
    uint64_t n;
    bool first_only; /* stop at the first match (is the trigger in the log?) */
};

static int count_event(uint64_t seq, const char *json, size_t len, void *ud)
{
    struct counter *k = ud;
    (void)seq;
    if (matches(k->o, json, len)) {
        k->n++;
        return k->first_only ? STOP_LIMIT : 0;
    }
    return 0;
}

/*
 * Counts the events from seq from on that match o (with first_only, stops
 * at 1), in bounded read txns that print nothing. Returns 0 or a store error.
 */
static int count_matching(struct store *s, const struct tail_options *o, uint64_t from,
                          bool first_only, uint64_t *n)
{
    struct counter k = {.o = o, .first_only = first_only};
    uint64_t next = from;
    for (;;) {
        uint64_t after = next;
        int rc = evlog_read(s, next, BATCH, count_event, &k, &after);
        if (rc < 0 && rc != -ENOENT) {
            return rc;
        }
        if (rc == STOP_LIMIT || after == next) {
            break;
        }
        next = after;
    }
    *n = k.n;
    return 0;
}

/*
 * Waits for the state directory with follow (saying so once), else reports
 * it missing. Returns 0 once it exists, or the exit code: 2 when missing,
 * 0 when interrupted while waiting.
 */
static int await_state(const struct tail_options *o, bool *stop)
{
    *stop = true;
    if (store_exists(o->state_dir)) {
        *stop = false;
        return 0;
    }
    if (!o->follow) {
        fprintf(stderr, "pollen tail: %s holds no state: no engine has run with this "
                        "configuration yet (check state_dir, or start `pollen run`)\n",
                o->state_dir);
        return CLI_EXIT_USAGE;
    }
    fprintf(stderr, "pollen tail: %s holds no state yet; waiting for the engine to create it\n",
            o->state_dir);
    while (!store_exists(o->state_dir)) {
        if (interrupted) {
            return 0;
        }
        sleep_ms(FOLLOW_INTERVAL_MS);
    }
    *stop = false;
    return 0;
}

/*
 * The checks and the --last count before printing: an unknown trigger is
 * reported (exit 2); c->skip gets how many matching events come before the
 * last o->last. Returns 0 or the exit code.
 */
static int prepare(struct store *s, const struct tail_options *o, uint64_t from,
                   struct tail_ctx *c)
{
    uint64_t n = 0;
    int rc = 0;
    if (o->trigger != NULL && o->check_trigger) {
        struct tail_options only = {.trigger = o->trigger};
        rc = count_matching(s, &only, 1, true, &n);
        if (rc == 0 && n == 0) {
            fprintf(stderr, "pollen tail: no trigger '%s': it is not in the configuration and "
                            "the event log has no event of it\n",
                    o->trigger);
            return CLI_EXIT_USAGE;
        }
    }
    if (rc == 0 && o->has_last) {
        rc = count_matching(s, o, from, false, &n);
        c->skip = n > o->last ? n - o->last : 0;
    }
    if (rc != 0) {
        fprintf(stderr, "pollen tail: cannot read events: %s\n", store_strerror(rc));
        return CLI_EXIT_RUNTIME;
    }
    return 0;
}

int tail_run(const struct tail_options *o)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    bool stop = false;
    int status = await_state(o, &stop);
    if (stop) {
        return status;
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
    status = prepare(s, o, next, &c);
    if (status != 0) {
        store_close(s);
        json_scratch_release();
        return status;
    }
    /* Whole batches are written at once: no stdio buffer is needed, and none
     * is left holding data when the reader goes away. */
    setvbuf(o->out, NULL, _IONBF, 0);
    buf_init(&c.batch, BATCH_BYTES + EVLOG_MAX_EVENT + 1);
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

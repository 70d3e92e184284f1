/*
 * queues: see queues.h.
 */
#include "queues.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "isotime.h"
#include "json.h"
#include "outbox.h"
#include "store.h"
#include "table.h"
#include "util.h"

/* Entries copied out of one read txn for a table (as outbox_print does). */
#define ROWS_PER_TXN OUTBOX_PRINT_BATCH
/* The longest error a table cell shows, in bytes. */
#define ERROR_CELL 80
/* Dead letters re-queued per write txn by retry --all. */
#define RETRY_BATCH 100
/* The ids retry --all names when it could not re-queue them. */
#define LIST_REFUSED 10

char *queues_shorten(const char *text, char *out, size_t outlen)
{
    size_t n = 0;
    bool space = false;
    const char *p = text != NULL ? text : "";
    for (; *p != '\0' && n + 1 < outlen; p++) {
        bool ws = *p == ' ' || *p == '\n' || *p == '\r' || *p == '\t';
        if (ws) {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < outlen) {
            out[n++] = ' ';
        }
        space = false;
        out[n++] = *p;
    }
    out[n] = '\0';
    if (*p == '\0') {
        return out;
    }
    /* Cut: room for "...", and never inside a UTF-8 sequence (continuation
     * bytes are 10xxxxxx). */
    n = n > outlen - 4 ? outlen - 4 : n;
    while (n > 0 && ((unsigned char)out[n] & 0xC0) == 0x80) {
        n--;
    }
    memcpy(out + n, "...", 4);
    return out;
}

/* An entry's stored time (ISO text) without its milliseconds, or "-". */
static void short_iso(const char *iso, char out[ISOTIME_LEN])
{
    int64_t ms = 0;
    if (iso == NULL || isotime_parse(iso, ISOTIME_STRICT, &ms) != 0) {
        snprintf(out, ISOTIME_LEN, "-");
        return;
    }
    char full[ISOTIME_LEN];
    isotime_format((uint64_t)ms, full);
    snprintf(out, ISOTIME_LEN, "%.19sZ", full); /* YYYY-MM-DDTHH:MM:SS */
}

static const char *str_or(const cJSON *entry, const char *key, const char *def)
{
    const char *s = json_get_string(entry, key);
    return s != NULL && s[0] != '\0' ? s : def;
}

static unsigned long long num_of(const cJSON *entry, const char *key)
{
    double d = 0;
    return json_get_number(entry, key, &d) && d > 0 ? (unsigned long long)d : 0;
}

/* ---- tables -------------------------------------------------------------- */

struct rows {
    enum outbox_part part;
    struct table t;
    size_t taken;    /* in this txn */
    uint64_t next;   /* the id the next txn starts at */
    bool more;       /* the txn stopped at a full batch */
    uint64_t now;    /* wall ms, for "due now" */
    uint64_t pending, retrying, inflight;
};

static void dead_row(struct rows *r, uint64_t id, const cJSON *entry)
{
    char idt[24], attempts[24], when[ISOTIME_LEN], err[ERROR_CELL + 1];
    snprintf(idt, sizeof(idt), "%llu", (unsigned long long)id);
    snprintf(attempts, sizeof(attempts), "%llu", num_of(entry, "attempts"));
    short_iso(json_get_string(entry, "dead_at"), when);
    queues_shorten(str_or(entry, "dead_reason", "-"), err, sizeof(err));
    table_row(&r->t, idt, when, str_or(entry, "rule", "-"), str_or(entry, "action", "-"),
              attempts, err);
}

static void queued_row(struct rows *r, uint64_t id, const cJSON *entry)
{
    char idt[24], attempts[24], next[ISOTIME_LEN], err[ERROR_CELL + 1];
    unsigned long long made = num_of(entry, "attempts");
    snprintf(idt, sizeof(idt), "%llu", (unsigned long long)id);
    snprintf(attempts, sizeof(attempts), "%llu", made);
    const char *state = "pending";
    uint64_t at = num_of(entry, "next_at");
    enum outbox_entry_state where = outbox_entry_state(entry);
    if (where == OUTBOX_IN_FLIGHT) {
        /* next_at is its lease: when it is sent again if this attempt never ends. */
        state = "in flight";
        r->inflight++;
        snprintf(next, sizeof(next), "-");
    } else {
        bool retrying = where == OUTBOX_RETRYING;
        state = retrying ? "retrying" : "pending";
        *(retrying ? &r->retrying : &r->pending) += 1;
        if (at <= r->now) {
            snprintf(next, sizeof(next), "now");
        } else {
            char full[ISOTIME_LEN];
            isotime_format(at, full);
            snprintf(next, sizeof(next), "%.19sZ", full);
        }
    }
    queues_shorten(str_or(entry, "last_error", "-"), err, sizeof(err));
    table_row(&r->t, idt, state, str_or(entry, "rule", "-"), str_or(entry, "action", "-"),
              attempts, next, err);
}

static int take_row(uint64_t id, const cJSON *entry, void *ud)
{
    struct rows *r = ud;
    if (r->taken == ROWS_PER_TXN) {
        r->more = true;
        return 1; /* not taken: the next txn starts here */
    }
    if (r->part == OUTBOX_DEAD) {
        dead_row(r, id, entry);
    } else {
        queued_row(r, id, entry);
    }
    r->taken++;
    r->next = id + 1;
    return 0;
}

/* Reads every entry of r->part into r->t, a bounded batch per read txn
 * (nothing is written meanwhile). Returns 0 or a store error. */
static int read_rows(struct store *s, struct rows *r)
{
    int rc = 0;
    do {
        struct store_txn *txn = NULL;
        r->taken = 0;
        r->more = false;
        rc = store_txn_begin(s, false, &txn);
        if (rc == 0) {
            rc = outbox_scan(txn, r->part, r->next, take_row, r);
            store_txn_abort(txn);
        }
    } while (rc == 0 && r->more);
    return rc;
}

static int print_table(struct store *s, enum outbox_part part, FILE *out)
{
    struct rows r = {.part = part, .now = util_wall_ms()};
    if (part == OUTBOX_DEAD) {
        r.t.ncols = 6;
        table_row(&r.t, "ID", "DIED", "RULE", "ACTION", "ATTEMPTS", "ERROR");
    } else {
        r.t.ncols = 7;
        table_row(&r.t, "ID", "STATE", "RULE", "ACTION", "ATTEMPTS", "NEXT", "LAST ERROR");
    }
    int rc = read_rows(s, &r);
    if (rc != 0) {
        table_free(&r.t);
        return rc;
    }
    size_t n = r.t.nrows - 1;
    if (part == OUTBOX_DEAD) {
        if (n > 0) {
            table_print(&r.t, 0, out);
            fprintf(out, "%zu dead letter(s); `pollen dlq retry ID|--all` sends again, "
                         "`pollen dlq drop ID` deletes\n", n);
        } else {
            fprintf(out, "no dead letters\n");
        }
    } else if (n > 0) {
        table_print(&r.t, 0, out);
        fprintf(out, "%llu pending, %llu retrying, %llu in flight\n",
                (unsigned long long)r.pending, (unsigned long long)r.retrying,
                (unsigned long long)r.inflight);
    } else {
        fprintf(out, "the outbox is empty\n");
    }
    table_free(&r.t);
    return ferror(out) ? -EIO : 0;
}

/* ---- retry and drop ------------------------------------------------------ */

struct one_op {
    enum queues_verb verb;
    uint64_t id;
    char reason[512]; /* out: why a dead letter that cannot be retried died */
};

static int one_txn(struct store_txn *txn, void *ud)
{
    struct one_op *op = ud;
    if (op->verb == QUEUES_DLQ_DROP) {
        return outbox_dlq_drop(txn, op->id);
    }
    /* Due at 0: at once, whatever the running engine's clock reads (F14). */
    int rc = outbox_dlq_retry(txn, op->id, 0);
    cJSON *entry = NULL;
    if (rc == -ENOMSG && outbox_dlq_get(txn, op->id, &entry) == 0) {
        snprintf(op->reason, sizeof(op->reason), "%s", str_or(entry, "dead_reason", ""));
    }
    cJSON_Delete(entry);
    return rc;
}

/* Says why dead letter op->id cannot be sent again. */
static void refused(const struct one_op *op, int rc)
{
    unsigned long long id = (unsigned long long)op->id;
    if (rc == -ENOMSG) {
        fprintf(stderr, "pollen dlq: dead letter %llu cannot be retried: it has no request to "
                        "send (it died with: %s); `pollen dlq drop %llu` deletes it\n",
                id, op->reason, id);
    } else {
        fprintf(stderr, "pollen dlq: dead letter %llu cannot be retried: its stored text does "
                        "not parse; `pollen dlq drop %llu` deletes it\n",
                id, id);
    }
}

/* retry ID or drop ID. Returns the exit code. */
static int one(struct store *s, const struct queues_options *o)
{
    struct one_op op = {.verb = o->verb, .id = o->id};
    const char *verb = o->verb == QUEUES_DLQ_DROP ? "drop" : "retry";
    int rc = store_write(s, one_txn, &op);
    unsigned long long id = (unsigned long long)o->id;
    if (rc == -ENOENT) {
        fprintf(stderr, "pollen dlq: no dead letter with id %llu\n", id);
        return CLI_EXIT_USAGE; /* the user's mistake, not a failure */
    }
    if (rc == -ENOMSG || rc == -EBADMSG) {
        refused(&op, rc);
    } else if (rc == 0) {
        fprintf(o->out, "dead letter %llu %s\n", id,
                o->verb == QUEUES_DLQ_DROP ? "dropped" : "queued again");
    } else {
        fprintf(stderr, "pollen dlq: cannot %s dead letter %llu: %s\n", verb, id,
                store_strerror(rc));
    }
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_RUNTIME;
}

/* retry --all: the ids still to try, and what became of those tried. */
struct all_op {
    uint64_t *ids;
    size_t n, at;
    uint64_t queued;
    uint64_t refused[LIST_REFUSED];
    size_t nrefused; /* all of them, even past LIST_REFUSED */
    /* The batch all_txn works on, reset on each call (store_write may call
     * it again from scratch): applied by apply_batch once committed. */
    uint64_t b_queued;
    uint64_t b_refused[RETRY_BATCH];
    size_t b_nrefused;
};

static int note_id(uint64_t id, const cJSON *entry, void *ud)
{
    struct all_op *a = ud;
    (void)entry;
    a->ids = xrealloc(a->ids, (a->n + 1) * sizeof(*a->ids));
    a->ids[a->n++] = id;
    return 0;
}

static size_t batch_end(const struct all_op *a)
{
    return a->at + RETRY_BATCH < a->n ? a->at + RETRY_BATCH : a->n;
}

/* One batch of retry --all. A dead letter without a request (or that does
 * not parse) stays, and is named; one dropped meanwhile is skipped. */
static int all_txn(struct store_txn *txn, void *ud)
{
    struct all_op *a = ud;
    a->b_queued = 0;
    a->b_nrefused = 0;
    for (size_t i = a->at; i < batch_end(a); i++) {
        int rc = outbox_dlq_retry(txn, a->ids[i], 0);
        if (rc == -ENOMSG || rc == -EBADMSG) {
            a->b_refused[a->b_nrefused++] = a->ids[i];
        } else if (rc == 0) {
            a->b_queued++;
        } else if (rc != -ENOENT) {
            return rc;
        }
    }
    return 0;
}

/* The batch committed: count it and move on. */
static void apply_batch(struct all_op *a)
{
    a->queued += a->b_queued;
    for (size_t i = 0; i < a->b_nrefused; i++, a->nrefused++) {
        if (a->nrefused < LIST_REFUSED) {
            a->refused[a->nrefused] = a->b_refused[i];
        }
    }
    a->at = batch_end(a);
}

static void report_all(const struct all_op *a, FILE *out)
{
    fprintf(out, "%llu dead letter(s) queued again\n", (unsigned long long)a->queued);
    if (a->nrefused == 0) {
        return;
    }
    fprintf(stderr, "pollen dlq: %zu dead letter(s) cannot be retried (no request to send, "
                    "see `pollen dlq list`; `pollen dlq drop ID` deletes one):",
            a->nrefused);
    for (size_t i = 0; i < a->nrefused && i < LIST_REFUSED; i++) {
        fprintf(stderr, " %llu", (unsigned long long)a->refused[i]);
    }
    fprintf(stderr, "%s\n", a->nrefused > LIST_REFUSED ? " ..." : "");
}

/* retry --all. Returns the exit code. */
static int all(struct store *s, const struct queues_options *o)
{
    struct all_op a = {0};
    struct store_txn *txn = NULL;
    int rc = store_txn_begin(s, false, &txn);
    if (rc == 0) {
        rc = outbox_scan(txn, OUTBOX_DEAD, 0, note_id, &a);
        store_txn_abort(txn);
    }
    while (rc == 0 && a.at < a.n) {
        rc = store_write(s, all_txn, &a);
        if (rc == 0) {
            apply_batch(&a);
        }
    }
    free(a.ids);
    if (rc != 0) {
        fprintf(stderr, "pollen dlq: retry --all stopped after %llu: %s\n",
                (unsigned long long)a.queued, store_strerror(rc));
        return CLI_EXIT_RUNTIME;
    }
    report_all(&a, o->out);
    return CLI_EXIT_OK;
}

/* ---- the verbs ------------------------------------------------------------ */

int queues_run(const char *state_dir, const struct queues_options *o)
{
    const char *cmd = o->verb == QUEUES_OUTBOX_LIST ? "outbox" : "dlq";
    if (!store_exists(state_dir)) {
        fprintf(stderr, "pollen %s: %s holds no state: no engine has run with this "
                        "configuration yet (check state_dir)\n",
                cmd, state_dir);
        return CLI_EXIT_USAGE;
    }
    bool list = o->verb == QUEUES_DLQ_LIST || o->verb == QUEUES_OUTBOX_LIST;
    struct store *s = NULL;
    struct store_options so = {.readonly = list};
    int rc = store_open(state_dir, &so, &s);
    if (rc != 0) {
        fprintf(stderr, "pollen %s: cannot open %s: %s\n", cmd, state_dir, store_strerror(rc));
        return CLI_EXIT_RUNTIME;
    }
    if (list) {
        enum outbox_part part = o->verb == QUEUES_DLQ_LIST ? OUTBOX_DEAD : OUTBOX_QUEUED;
        rc = o->json ? outbox_print(s, part, o->out) : print_table(s, part, o->out);
        if (rc == -EIO && ferror(o->out)) {
            rc = 0; /* a write error: the caller's final flush reports it */
        } else if (rc != 0) {
            fprintf(stderr, "pollen %s: cannot read %s: %s\n", cmd, state_dir,
                    store_strerror(rc));
        }
        rc = rc == 0 ? CLI_EXIT_OK : CLI_EXIT_RUNTIME;
    } else {
        rc = o->all ? all(s, o) : one(s, o);
    }
    store_close(s);
    return rc;
}

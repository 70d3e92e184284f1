/*
 * queues: `pollen dlq` and `pollen outbox`, the CLI views of the two parts of
 * the action store (store/outbox.h): the dead-letter store (list, retry one
 * or all, drop) and the outbox (list: pending, retrying, in flight).
 *
 * A list prints an aligned table (a header row, then one row per entry in id
 * order, then a one-line count), or with json the entries as stored, one
 * JSON object per line (what `dlq list` printed before the table). Entries
 * are copied out of bounded read txns before anything is written, so a
 * stalled reader of the output never pins the database (F5). A state
 * directory that does not exist is reported (exit 2): a wrong state_dir
 * must not look like an empty queue.
 *
 * Owns: nothing beyond a call (the store is opened and closed per call).
 * Invariants: only retry and drop write; each does so in short write txns
 * (retry --all in batches), beside a running engine, which sends a retried
 * entry within a second.
 * Thread context: the CLI's main thread.
 */
#ifndef POLLEN_QUEUES_H
#define POLLEN_QUEUES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum queues_verb {
    QUEUES_DLQ_LIST,
    QUEUES_DLQ_RETRY, /* id, or every dead letter with all */
    QUEUES_DLQ_DROP,
    QUEUES_OUTBOX_LIST,
};

struct queues_options {
    enum queues_verb verb;
    uint64_t id;  /* retry, drop: the dead letter */
    bool all;     /* retry: every dead letter that has a request */
    bool json;    /* list: the stored entries as JSON lines */
    FILE *out;    /* borrowed: where lists and reports go */
};

/* Runs the verb on the store in state_dir (borrowed). Returns the exit code:
 * 0 ok, 1 a store failure (or a retry refused), 2 no state directory or no
 * dead letter with that id. */
int queues_run(const char *state_dir, const struct queues_options *o);

/*
 * Copies text into out (outlen > 4) as one line: whitespace runs become one
 * space, and text longer than outlen - 1 bytes is cut at a UTF-8 character
 * boundary and ends in "...". Returns out.
 */
char *queues_shorten(const char *text, char *out, size_t outlen);

#endif

/*
 * sink: one action kind ("ghl", "http", "exec") as a descriptor.
 *
 * A rule's action is rendered at enqueue time into an outbox entry whose
 * "kind" member names its sink and whose "request" member is what the sink
 * rendered; the delivery loop (deliver.c) later claims the entry and hands
 * it to the same sink's send. A sink knows nothing of the delivery loop:
 * send gets a struct sink_call and reports one struct sink_outcome through
 * call->done; claims, leases, retries, backoff and dead letters stay in
 * deliver.c.
 *
 * Owns: nothing (descriptors are static const data; a sink_call is owned by
 * its caller, the delivery loop).
 * Invariants: call->done runs exactly once per successful send (rc 0), later,
 * from the loop, never inside send; a send that returns an error never calls
 * it. After call->done, the sink keeps no pointer to call.
 * Thread context: loop thread.
 *
 * Adding a kind (say "kafka") touches src/sinks/ only:
 *   1. sinks/sink_kafka.c defining its [rule] keys and
 *      `const struct sink dispatch__sink_kafka`: a struct config_rule_kind
 *      (rule_kind.h: name "kafka" for `do = kafka`, a key table whose
 *      offsets point into the kind's own conf struct, conf_size, and as
 *      needed extra/finish/free_conf; FILE:LINE errors through doc->diag)
 *      and render, send, cancel, classify (render and send read the conf
 *      as rule->sink_conf; claimed/recorded when the sink must record
 *      something in the claim or outcome transaction); a sink_kafka.h with
 *      the conf struct only if tests or other sinks read it;
 *   2. one X(kafka) in SINK_LIST below (config_load gets the kind through
 *      sink_rule_kinds());
 *   3. the file in sinks/meson.build.
 * No file of src/config/ changes: config_load is given the kinds.
 * (tests/unit/test_config.c loads a [rule] of a kind of its own this way.)
 */
#ifndef POLLEN_SINK_H
#define POLLEN_SINK_H

#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>

#include "config.h"
#include "json.h"

struct dispatcher_env;
struct store_txn;

/* Every sink, in registry order: X(name) declares dispatch__sink_<name>. */
#define SINK_LIST(X) X(ghl) X(http) X(exec)

/* What became of one attempt. */
enum sink_verdict {
    SINK_SUCCESS, /* done (also: a retried delete found the record already gone) */
    SINK_RETRY,   /* try again after the backoff (never sooner than retry_after_s) */
    SINK_DEAD,    /* never retried: to the dead-letter store */
};

struct sink_outcome {
    enum sink_verdict kind;
    long status;            /* HTTP status or exit code; 0 when none */
    long retry_after_s;     /* the server's Retry-After, 0 when none */
    char error[512];
    char trace_id[80];
    cJSON *result;          /* the response member named by the entry's "result"; owned */
    bool created_new;       /* an upsert answered "new": true */
    bool cancelled;         /* shutdown cancelled it: nothing to record, the lease brings it back */
};

/* Rendering one rule's action for one event (route.c fills it). */
struct sink_render {
    const cJSON *event;                 /* borrowed */
    uint64_t now;                       /* wall ms, for templates */
    const struct config_location *loc;  /* the rule's location for this event, or NULL */
    const char *company_id;             /* its companyId ({company}), or NULL when unknown */
    char err[256];     /* out: why render returned NULL */
};

/* One send in flight. The delivery loop embeds it in its attempt. */
struct sink_call {
    const struct dispatcher_env *env;  /* borrowed: loop, store, cfg, http, locations */
    const cJSON *entry;                /* borrowed: the claimed outbox entry */
    void *handle;                      /* the sink's in-flight handle, NULL when none */
    char error[300];                   /* out: why send returned an error ("": its errno) */
    /* Reports the outcome; o->result passes to the callee. */
    void (*done)(struct sink_call *call, struct sink_outcome *o);
};

struct sink {
    const char *name;                /* the outbox entry's "kind" */
    /* What a sink_outcome's status is, for messages: "HTTP" (HTTP 201) or
     * "exit" (exit 0). */
    const char *status_word;
    /* The [rule]s it renders: their `do` word, keys and conf (rule_kind.h).
     * The ghl sink's is &config_rule_catalog (config resolves catalog actions). */
    const struct config_rule_kind *rule_kind;
    /*
     * Renders rule for r->event into a new request object (returned, owned
     * by the caller), and may add members to entry (borrowed) that send,
     * classify and the hooks read back. NULL with r->err on failure.
     */
    cJSON *(*render)(struct sink_render *r, const struct config_rule *rule, cJSON *entry);
    /* Starts sending req (borrowed, call->entry's "request"). Returns 0
     * (call->done follows) or a negative errno (nothing was started). */
    int (*send)(struct sink_call *call, const cJSON *req);
    /* Cancels the send in flight (call->handle); call->done follows with cancelled. */
    void (*cancel)(struct sink_call *call);
    /*
     * Fills o from response (borrowed): a const struct http_response * for
     * "ghl" and "http", a const struct subproc_result * for "exec". entry is
     * the claimed entry (borrowed). Pure: tests call it with tables.
     */
    void (*classify)(const cJSON *entry, const void *response, struct sink_outcome *o);
    /* Optional, in the claim txn after the lease is written. Returns 0 or a store error. */
    int (*claimed)(struct store_txn *txn, const cJSON *entry, uint64_t id);
    /* Optional, in the outcome txn once the outcome is written; entry is the
     * stored entry (borrowed). Returns 0 or a store error. */
    int (*recorded)(struct store_txn *txn, const cJSON *entry, uint64_t id,
                    const struct sink_outcome *o);
};

/* ---- services for sinks (render.c) ---------------------------------------- */

/* Renders a param's template; NULL with r->err ("name: why"). Returns a new value. */
cJSON *sink_render_param(struct sink_render *r, const struct config_rule_param *p);
/* A string_list field: mixed text splits at its literal separators only (F11). */
cJSON *sink_render_list_param(struct sink_render *r, const struct config_rule_param *p);
/* Text of a rendered scalar (strings as-is, numbers and booleans printed); malloc'd. */
char *sink_value_text(const cJSON *v);

/* An entry's string member, "" when absent (borrowed from entry). */
static inline const char *sink_str(const cJSON *entry, const char *key)
{
    const char *s = json_get_string(entry, key);
    return s ? s : "";
}

/* An entry's number member, def when absent. */
static inline double sink_num(const cJSON *entry, const char *key, double def)
{
    double v = def;
    json_get_number(entry, key, &v);
    return v;
}

/* Replaces an entry's string member (NULL: ""). */
static inline void sink_set_str(cJSON *obj, const char *key, const char *value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    cJSON_AddStringToObject(obj, key, value ? value : "");
}

/* Replaces an entry's number member. */
static inline void sink_set_num(cJSON *obj, const char *key, double value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    cJSON_AddNumberToObject(obj, key, value);
}

#endif

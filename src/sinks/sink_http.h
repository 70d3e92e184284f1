/*
 * sink_http: the "http" action kind's [rule] keys as parsed (url, method,
 * header.NAME, body.NAME, timeout), the rule's sink_conf. Read by the sink
 * when it renders and sends, and by tests; config never sees this struct.
 *
 * Owns: nothing (the rule owns its conf; the kind's free_conf frees it).
 * Invariants: after a config_load that succeeded, url is set, method is
 * one of GET POST PUT PATCH DELETE, header names are distinct ignoring
 * case, and a GET has no body members.
 * Thread context: read-only after config_load (any thread).
 */
#ifndef POLLEN_SINK_HTTP_H
#define POLLEN_SINK_HTTP_H

#include <stddef.h>

#include "config.h"

struct sink_http_conf {
    struct template *url;      /* scheme and host are literal */
    char *method;              /* default POST */
    /* header.NAME values (name without "header."); secret ones are
     * env:/file: references, resolved at load (config_rule_param). */
    struct config_rule_param *headers;
    size_t nheaders;
    /* body.NAME members (name without "body."); none: the whole event is
     * the body. */
    struct config_rule_param *body;
    size_t nbody;
};

/* The kind, for tests (the registry lists it through its sink). */
extern const struct config_rule_kind sink_http_rule_kind;

#endif

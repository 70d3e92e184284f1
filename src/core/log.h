/*
 * log: diagnostic logging to stderr (never the event log, which is data).
 *
 * Text lines (the default) look like
 * `2026-11-26T19:46:53.123Z warn [trigger:new-orders] message`.
 * JSON lines (log_set_format, `[engine] log_format = json`) are one object
 * per line for journald, Fluent Bit and Vector: time, level, module, the
 * object the prefix names (trigger, location, rule or credential), the
 * location bound to a trigger's prefix (log_bind_location), message, and
 * traceId when the caller passes one (log_at_with). The fields come from
 * the prefix and from struct log_fields, never from parsing the message.
 * Any byte of a message yields valid JSON: invalid UTF-8 becomes U+FFFD.
 *
 * Owns: the registered secrets, the prefix-to-location bindings and the
 * lines held before the format is known (log_hold).
 * Invariants: text output does not depend on the bindings or the fields.
 * Every formatted line passes through the redactor before it is written:
 * any string registered with log_add_secret (tokens, client secrets, codes)
 * is replaced by `[REDACTED]`, so a secret that reaches a message by
 * accident (an echoed URL, an API error body) never reaches the terminal.
 * The level is checked before arguments are evaluated (Redis serverLog).
 * Thread context: loop thread only.
 */
#ifndef POLLEN_LOG_H
#define POLLEN_LOG_H

#include <stdbool.h>
#include <stdio.h>

#include "util.h"

enum log_level {
    LOG_ERROR = 0,
    LOG_WARN = 1,
    LOG_INFO = 2,
    LOG_DEBUG = 3,
};

extern enum log_level log_current_level;

enum log_format {
    LOG_FORMAT_TEXT = 0,
    LOG_FORMAT_JSON = 1,
};

void log_set_level(enum log_level level);
/* Parses error|warn|info|debug. Returns 0 or -EINVAL. */
int log_parse_level(const char *name, enum log_level *out);

void log_set_format(enum log_format format);
enum log_format log_get_format(void);
/* Parses text|json. Returns 0 or -EINVAL. */
int log_parse_format(const char *name, enum log_format *out);
/* Where lines go (default stderr; tests). Borrows out. */
void log_set_output(FILE *out);

/*
 * Until log_release, lines are kept (at most 256, with their time) instead
 * of written: the warnings of a configuration being loaded come before its
 * log_format is known. log_release writes them in the format set by then.
 */
void log_hold(void);
void log_release(void);

/*
 * Binds the location name to a prefix (copies both), so JSON lines under a
 * trigger's prefix say which location it polls. A second bind of the same
 * prefix replaces the first; log_unbind(prefix) forgets it.
 */
void log_bind_location(const char *prefix, const char *location);
void log_unbind(const char *prefix);

/* Registers a secret to be masked in every later log line (copied; at least 4 bytes). */
void log_add_secret(const char *secret);
/* Forgets all secrets (shutdown, tests). */
void log_clear_secrets(void);
/* Copies text into out (size bytes) with every registered secret masked. */
void log_redact(const char *text, char *out, unsigned long size);

/* What a line knows beyond its prefix (borrowed; NULL members are absent). */
struct log_fields {
    const char *trace_id; /* the API's traceId of the failure the line reports */
    const char *location; /* overrides the location bound to the prefix */
};

void log_write(enum log_level level, const char *prefix, const char *fmt, ...) ATTR_PRINTF(3, 4);
/* log_write with fields (NULL: none). Text lines ignore them. */
void log_write_with(enum log_level level, const char *prefix, const struct log_fields *fields,
                    const char *fmt, ...) ATTR_PRINTF(4, 5);

#define log_at(level, prefix, ...)                                                   \
    do {                                                                             \
        if ((level) <= log_current_level) {                                          \
            log_write((level), (prefix), __VA_ARGS__);                               \
        }                                                                            \
    } while (0)

#define log_at_with(level, prefix, fields, ...)                                     \
    do {                                                                             \
        if ((level) <= log_current_level) {                                          \
            log_write_with((level), (prefix), (fields), __VA_ARGS__);                \
        }                                                                            \
    } while (0)

/* prefix is a module or object tag such as "http" or "trigger:new-orders", or NULL. */
#define log_error(prefix, ...) log_at(LOG_ERROR, prefix, __VA_ARGS__)
#define log_warn(prefix, ...) log_at(LOG_WARN, prefix, __VA_ARGS__)
#define log_info(prefix, ...) log_at(LOG_INFO, prefix, __VA_ARGS__)
#define log_debug(prefix, ...) log_at(LOG_DEBUG, prefix, __VA_ARGS__)

#endif

/*
 * log: diagnostic logging to stderr (never the event log, which is data).
 *
 * Lines look like `2026-11-26T19:46:53.123Z warn [trigger:new-orders] message`.
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

#include "util.h"

enum log_level {
    LOG_ERROR = 0,
    LOG_WARN = 1,
    LOG_INFO = 2,
    LOG_DEBUG = 3,
};

extern enum log_level log_current_level;

void log_set_level(enum log_level level);
/* Parses error|warn|info|debug. Returns 0 or -EINVAL. */
int log_parse_level(const char *name, enum log_level *out);

/* Registers a secret to be masked in every later log line (copied; at least 4 bytes). */
void log_add_secret(const char *secret);
/* Forgets all secrets (shutdown, tests). */
void log_clear_secrets(void);
/* Copies text into out (size bytes) with every registered secret masked. */
void log_redact(const char *text, char *out, unsigned long size);

void log_write(enum log_level level, const char *prefix, const char *fmt, ...) ATTR_PRINTF(3, 4);

#define log_at(level, prefix, ...)                                                   \
    do {                                                                             \
        if ((level) <= log_current_level) {                                          \
            log_write((level), (prefix), __VA_ARGS__);                               \
        }                                                                            \
    } while (0)

/* prefix is a module or object tag such as "http" or "trigger:new-orders", or NULL. */
#define log_error(prefix, ...) log_at(LOG_ERROR, prefix, __VA_ARGS__)
#define log_warn(prefix, ...) log_at(LOG_WARN, prefix, __VA_ARGS__)
#define log_info(prefix, ...) log_at(LOG_INFO, prefix, __VA_ARGS__)
#define log_debug(prefix, ...) log_at(LOG_DEBUG, prefix, __VA_ARGS__)

#endif

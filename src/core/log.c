/*
 * log: see log.h.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isotime.h"

enum log_level log_current_level = LOG_INFO;

static char **secrets;
static size_t secret_count;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
    log_current_level = level;
}

int log_parse_level(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* Rotating OAuth tokens add two secrets per refresh: keep the newest ones
 * (an expired token is worthless, but still never printed while it is known). */
#define MAX_SECRETS 256

void log_add_secret(const char *secret)
{
    if (secret == NULL || strlen(secret) < 4) {
        return;
    }
    for (size_t i = 0; i < secret_count; i++) {
        if (strcmp(secrets[i], secret) == 0) {
            return;
        }
    }
    if (secret_count == MAX_SECRETS) {
        free(secrets[0]);
        memmove(secrets, secrets + 1, (secret_count - 1) * sizeof(*secrets));
        secret_count--;
    }
    secrets = xrealloc(secrets, (secret_count + 1) * sizeof(*secrets));
    secrets[secret_count++] = xstrdup(secret);
}

void log_clear_secrets(void)
{
    for (size_t i = 0; i < secret_count; i++) {
        free(secrets[i]);
    }
    free(secrets);
    secrets = NULL;
    secret_count = 0;
}

/* Returns the length of the registered secret that starts at p, or 0. */
static size_t secret_at(const char *p)
{
    for (size_t i = 0; i < secret_count; i++) {
        size_t len = strlen(secrets[i]);
        if (strncmp(p, secrets[i], len) == 0) {
            return len;
        }
    }
    return 0;
}

void log_redact(const char *text, char *out, unsigned long size)
{
    static const char mask[] = "[REDACTED]";
    size_t o = 0;
    if (size == 0) {
        return;
    }
    for (const char *p = text; *p != '\0' && o + 1 < size;) {
        size_t len = secret_count ? secret_at(p) : 0;
        if (len > 0) {
            for (size_t i = 0; mask[i] != '\0' && o + 1 < size; i++) {
                out[o++] = mask[i];
            }
            p += len;
            continue;
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
}

void log_write(enum log_level level, const char *prefix, const char *fmt, ...)
{
    char msg[2048];
    char clean[2048];
    char when[ISOTIME_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Control characters from the network must not forge log lines. */
    for (char *p = msg; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 && *p != '\t') {
            *p = ' ';
        }
    }
    log_redact(msg, clean, sizeof(clean));
    isotime_format(util_wall_ms(), when);
    if (prefix != NULL) {
        fprintf(stderr, "%s %s [%s] %s\n", when, level_names[level], prefix, clean);
    } else {
        fprintf(stderr, "%s %s %s\n", when, level_names[level], clean);
    }
}

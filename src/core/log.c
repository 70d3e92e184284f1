/*
 * log: see log.h.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "isotime.h"

enum log_level log_current_level = LOG_INFO;

static char **secrets;
static size_t secret_count;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static enum log_format log_format = LOG_FORMAT_TEXT;
static FILE *log_out;

void log_set_level(enum log_level level)
{
    log_current_level = level;
}

void log_set_format(enum log_format format)
{
    log_format = format;
}

enum log_format log_get_format(void)
{
    return log_format;
}

int log_parse_format(const char *name, enum log_format *out)
{
    if (strcmp(name, "text") == 0) {
        *out = LOG_FORMAT_TEXT;
    } else if (strcmp(name, "json") == 0) {
        *out = LOG_FORMAT_JSON;
    } else {
        return -EINVAL;
    }
    return 0;
}

void log_set_output(FILE *out)
{
    log_out = out;
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

/* ---- prefix bindings -------------------------------------------------- */

struct binding {
    char *prefix;
    char *location;
};

static struct binding *bindings;
static size_t binding_count;

static struct binding *find_binding(const char *prefix)
{
    for (size_t i = 0; prefix != NULL && i < binding_count; i++) {
        if (strcmp(bindings[i].prefix, prefix) == 0) {
            return &bindings[i];
        }
    }
    return NULL;
}

void log_bind_location(const char *prefix, const char *location)
{
    if (prefix == NULL || location == NULL) {
        return;
    }
    struct binding *b = find_binding(prefix);
    if (b == NULL) {
        bindings = xrealloc(bindings, (binding_count + 1) * sizeof(*bindings));
        b = &bindings[binding_count++];
        b->prefix = xstrdup(prefix);
    } else {
        free(b->location);
    }
    b->location = xstrdup(location);
}

void log_unbind(const char *prefix)
{
    struct binding *b = find_binding(prefix);
    if (b == NULL) {
        return;
    }
    free(b->prefix);
    free(b->location);
    *b = bindings[--binding_count];
    if (binding_count == 0) {
        free(bindings);
        bindings = NULL;
    }
}

/* ---- JSON lines -------------------------------------------------------- */

/* Appends s as a JSON string: quotes, escapes, and U+FFFD for each byte
 * that does not start a valid UTF-8 sequence (a message may hold any byte
 * an API sent, and a truncated one may end inside a sequence). */
static void json_string(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s);
    buf_append(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = utf8_seq_len(s + i, n - i);
        if (len == 0) {
            buf_append_str(b, "\\ufffd");
            i++;
        } else if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            buf_append(b, esc, 2);
            i++;
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_append(b, esc, 6);
            i++;
        } else {
            buf_append(b, s + i, len);
            i += len;
        }
    }
    buf_append(b, "\"", 1);
}

static void json_field(struct buf *b, const char *name, const char *value)
{
    if (value == NULL) {
        return;
    }
    buf_append(b, ",\"", 2);
    buf_append_str(b, name);
    buf_append(b, "\":", 2);
    json_string(b, value);
}

/* The object kinds a prefix `KIND:NAME` names, and the field NAME goes in;
 * any other prefix is a module name as a whole ("http", "dispatch"). */
static const struct {
    const char *kind;
    const char *field;
} prefix_kinds[] = {
    {"trigger", "trigger"},
    {"location", "location"},
    {"rule", "rule"},
    {"oauth", "credential"},
};

static void json_prefix_fields(struct buf *b, const char *prefix, const char **location)
{
    if (prefix == NULL) {
        return;
    }
    const char *colon = strchr(prefix, ':');
    for (size_t i = 0; colon != NULL && i < ARRAY_SIZE(prefix_kinds); i++) {
        size_t klen = strlen(prefix_kinds[i].kind);
        if ((size_t)(colon - prefix) == klen && strncmp(prefix, prefix_kinds[i].kind, klen) == 0) {
            json_field(b, "module", prefix_kinds[i].kind);
            json_field(b, prefix_kinds[i].field, colon + 1);
            if (strcmp(prefix_kinds[i].field, "location") == 0) {
                *location = NULL; /* already written */
            }
            return;
        }
    }
    json_field(b, "module", prefix);
}

static void write_json(const char *when, enum log_level level, const char *prefix,
                       const char *location, const char *trace_id, const char *msg, FILE *out)
{
    struct buf b;
    buf_init(&b, 64 * 1024);
    buf_append_str(&b, "{\"time\":");
    json_string(&b, when);
    json_field(&b, "level", level_names[level]);
    json_prefix_fields(&b, prefix, &location);
    json_field(&b, "location", location);
    json_field(&b, "message", msg);
    json_field(&b, "traceId", trace_id);
    buf_append(&b, "}\n", 2);
    fwrite(b.data, 1, b.len, out);
    buf_finish(&b);
}

/* ---- held lines -------------------------------------------------------- */

#define MAX_HELD 256

struct held_line {
    uint64_t when_ms;
    enum log_level level;
    char *prefix;
    char *location;
    char *trace_id;
    char *msg;
};

static bool holding;
static struct held_line held[MAX_HELD];
static size_t held_count;

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

void log_hold(void)
{
    holding = true;
}

/* ---- writing ------------------------------------------------------------ */

/* Writes one line (msg already sanitized and redacted), or keeps it while held. */
static void emit(uint64_t when_ms, enum log_level level, const char *prefix, const char *location,
                 const char *trace_id, const char *msg)
{
    if (holding) {
        if (held_count < MAX_HELD) {
            held[held_count++] = (struct held_line){when_ms, level, dup_or_null(prefix),
                                                    dup_or_null(location), dup_or_null(trace_id),
                                                    xstrdup(msg)};
        }
        return;
    }
    FILE *out = log_out != NULL ? log_out : stderr;
    char when[ISOTIME_LEN];
    isotime_format(when_ms, when);
    if (log_format == LOG_FORMAT_JSON) {
        write_json(when, level, prefix, location, trace_id, msg, out);
    } else if (prefix != NULL) {
        fprintf(out, "%s %s [%s] %s\n", when, level_names[level], prefix, msg);
    } else {
        fprintf(out, "%s %s %s\n", when, level_names[level], msg);
    }
}

void log_release(void)
{
    holding = false;
    for (size_t i = 0; i < held_count; i++) {
        struct held_line *h = &held[i];
        emit(h->when_ms, h->level, h->prefix, h->location, h->trace_id, h->msg);
        free(h->prefix);
        free(h->location);
        free(h->trace_id);
        free(h->msg);
    }
    held_count = 0;
}

static void write_va(enum log_level level, const char *prefix, const struct log_fields *fields,
                     const char *fmt, va_list ap) ATTR_PRINTF(4, 0);

static void write_va(enum log_level level, const char *prefix, const struct log_fields *fields,
                     const char *fmt, va_list ap)
{
    char msg[2048];
    char clean[2048];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    /* Control characters from the network must not forge log lines. */
    for (char *p = msg; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 && *p != '\t') {
            *p = ' ';
        }
    }
    log_redact(msg, clean, sizeof(clean));
    const char *location = fields != NULL ? fields->location : NULL;
    if (location == NULL) {
        const struct binding *b = find_binding(prefix);
        location = b != NULL ? b->location : NULL;
    }
    char trace[128] = "";
    if (fields != NULL && fields->trace_id != NULL) {
        /* An API's value: masked like the message, in case it echoes one. */
        log_redact(fields->trace_id, trace, sizeof(trace));
    }
    emit(util_wall_ms(), level, prefix, location, trace[0] != '\0' ? trace : NULL, clean);
}

void log_write(enum log_level level, const char *prefix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_va(level, prefix, NULL, fmt, ap);
    va_end(ap);
}

void log_write_with(enum log_level level, const char *prefix, const struct log_fields *fields,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_va(level, prefix, fields, fmt, ap);
    va_end(ap);
}

/*
 * metrics: see metrics.h.
 *
 * A scrape renders every series, so the registry is two plain lists (tens of
 * families, a few series each: one per trigger, location or rule), searched
 * linearly; nothing here is on a per-record path.
 */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct series {
    struct series *next;
    char *labels;
    double value;                           /* counter, gauge; histogram: the sum */
    unsigned long long count;               /* histogram observations */
    unsigned long long buckets[METRICS_MAX_BUCKETS];
};

struct family {
    struct family *next;
    const char *name;
    const char *help;
    enum metric_type type;
    double bounds[METRICS_MAX_BUCKETS];
    size_t nbounds;
    struct series *series; /* in creation order */
    struct series **tail;
};

static struct family *families;
static struct family **families_tail = &families;

static struct family *find_family(const char *name)
{
    for (struct family *f = families; f != NULL; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            return f;
        }
    }
    return NULL;
}

void metrics_declare(const char *name, enum metric_type type, const char *help,
                     const double *bounds, size_t nbounds)
{
    if (find_family(name) != NULL) {
        return;
    }
    struct family *f = xcalloc(1, sizeof(*f));
    f->name = name;
    f->help = help;
    f->type = type;
    f->nbounds = nbounds < METRICS_MAX_BUCKETS ? nbounds : METRICS_MAX_BUCKETS;
    for (size_t i = 0; i < f->nbounds; i++) {
        f->bounds[i] = bounds[i];
    }
    f->tail = &f->series;
    *families_tail = f;
    families_tail = &f->next;
}

static struct series *get_series(const char *name, const char *labels, enum metric_type type)
{
    struct family *f = find_family(name);
    if (f == NULL || f->type != type) {
        return NULL;
    }
    for (struct series *s = f->series; s != NULL; s = s->next) {
        if (strcmp(s->labels, labels) == 0) {
            return s;
        }
    }
    struct series *s = xcalloc(1, sizeof(*s));
    s->labels = xstrdup(labels);
    *f->tail = s;
    f->tail = &s->next;
    return s;
}

void metrics_add(const char *name, const char *labels, double v)
{
    struct series *s = get_series(name, labels, METRIC_COUNTER);
    if (s != NULL && v > 0) {
        s->value += v;
    }
}

void metrics_set(const char *name, const char *labels, double v)
{
    struct family *f = find_family(name);
    struct series *s = get_series(name, labels, f != NULL && f->type == METRIC_COUNTER
                                                    ? METRIC_COUNTER
                                                    : METRIC_GAUGE);
    if (s != NULL) {
        s->value = v;
    }
}

void metrics_observe(const char *name, const char *labels, double v)
{
    struct family *f = find_family(name);
    struct series *s = get_series(name, labels, METRIC_HISTOGRAM);
    if (s == NULL) {
        return;
    }
    s->value += v;
    s->count++;
    for (size_t i = 0; i < f->nbounds; i++) {
        if (v <= f->bounds[i]) {
            s->buckets[i]++;
        }
    }
}

double metrics_value(const char *name, const char *labels)
{
    struct family *f = find_family(name);
    for (struct series *s = f != NULL ? f->series : NULL; s != NULL; s = s->next) {
        if (strcmp(s->labels, labels) == 0) {
            return f->type == METRIC_HISTOGRAM ? (double)s->count : s->value;
        }
    }
    return 0;
}

char *metrics_label(char *out, size_t size, const char *key, const char *value)
{
    size_t o = (size_t)snprintf(out, size, "%s=\"", key);
    for (const char *c = value; o < size && *c != '\0'; c++) {
        const char *esc = *c == '\\' ? "\\\\" : *c == '"' ? "\\\"" : *c == '\n' ? "\\n" : NULL;
        size_t need = esc != NULL ? 2 : 1;
        if (o + need + 2 > size) {
            break;
        }
        if (esc != NULL) {
            memcpy(out + o, esc, 2);
        } else {
            out[o] = *c;
        }
        o += need;
    }
    if (o + 2 <= size) {
        out[o++] = '"';
        out[o] = '\0';
    } else if (size > 0) {
        out[size - 1] = '\0';
    }
    return out;
}

char *metrics_labels2(char *out, size_t size, const char *k1, const char *v1, const char *k2,
                      const char *v2)
{
    char second[128];
    metrics_label(second, sizeof(second), k2, v2);
    size_t room = strlen(second) + 2 < size ? size - strlen(second) - 1 : 1;
    metrics_label(out, room, k1, v1);
    size_t n = strlen(out);
    snprintf(out + n, size - n, ",%s", second);
    return out;
}

/* A sample value as the format wants it (integers without a fraction). */
static void format_value(char *out, size_t size, double v)
{
    if (isinf(v)) {
        snprintf(out, size, "%s", v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, size, "%.0f", v);
    } else {
        snprintf(out, size, "%.6g", v);
    }
}

static int sample(struct buf *out, const char *name, const char *suffix, const char *labels,
                  const char *extra, double v)
{
    char num[64];
    format_value(num, sizeof(num), v);
    bool any = *labels != '\0' || *extra != '\0';
    char *line = xasprintf("%s%s%s%s%s%s%s %s\n", name, suffix, any ? "{" : "", labels,
                           *labels != '\0' && *extra != '\0' ? "," : "", extra, any ? "}" : "",
                           num);
    int rc = buf_append_str(out, line);
    free(line);
    return rc;
}

static int render_histogram(struct buf *out, const struct family *f, const struct series *s)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i <= f->nbounds; i++) {
        char le[64];
        char bound[48];
        format_value(bound, sizeof(bound), i < f->nbounds ? f->bounds[i] : INFINITY);
        snprintf(le, sizeof(le), "le=\"%s\"", bound);
        rc = sample(out, f->name, "_bucket", s->labels, le,
                    (double)(i < f->nbounds ? s->buckets[i] : s->count));
    }
    if (rc == 0) {
        rc = sample(out, f->name, "_sum", s->labels, "", s->value);
    }
    if (rc == 0) {
        rc = sample(out, f->name, "_count", s->labels, "", (double)s->count);
    }
    return rc;
}

int metrics_render(struct buf *out)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    int rc = 0;
    for (const struct family *f = families; rc == 0 && f != NULL; f = f->next) {
        char *head = xasprintf("# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                               type_names[f->type]);
        rc = buf_append_str(out, head);
        free(head);
        for (const struct series *s = f->series; rc == 0 && s != NULL; s = s->next) {
            rc = f->type == METRIC_HISTOGRAM ? render_histogram(out, f, s)
                                             : sample(out, f->name, "", s->labels, "", s->value);
        }
    }
    return rc;
}

void metrics_reset(void)
{
    while (families != NULL) {
        struct family *f = families;
        families = f->next;
        while (f->series != NULL) {
            struct series *s = f->series;
            f->series = s->next;
            free(s->labels);
            free(s);
        }
        free(f);
    }
    families_tail = &families;
}

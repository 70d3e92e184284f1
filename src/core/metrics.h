/*
 * metrics: the process's counters, gauges and histograms, rendered in the
 * Prometheus text exposition format (version 0.0.4) for the engine's
 * /metrics. Any layer counts into it; the engine renders it on a scrape.
 *
 * Owns: one registry per process: the families (name, help, type, and for
 * histograms their bucket bounds) and each family's series (one per label
 * set), created on first use and kept until metrics_reset.
 * Invariants: a family is declared (metrics_declare) before its series
 * count: touching an undeclared name does nothing (the unit tests of a
 * module run without the engine that declares them). Label sets are passed preformatted as `name="value",...`
 * (values escaped with metrics_label), so series are compared as strings.
 * Counters only grow; gauges are set; histograms count an observation in
 * every bucket whose bound is >= it (cumulative, as the format wants).
 * Thread context: the loop thread only (no locks), like the log's secrets.
 */
#ifndef POLLEN_METRICS_H
#define POLLEN_METRICS_H

#include <stddef.h>

#include "buf.h"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

#define METRICS_MAX_BUCKETS 16

/* Declares a family (name and help are static strings). For a histogram,
 * bounds[0..nbounds) ascending (+Inf is implied). Declaring twice is a no-op. */
void metrics_declare(const char *name, enum metric_type type, const char *help,
                     const double *bounds, size_t nbounds);
/* Adds v (>= 0) to the counter series name{labels}. labels may be "" . */
void metrics_add(const char *name, const char *labels, double v);
/* Sets the gauge series name{labels} to v; or a counter's, mirroring a
 * total kept elsewhere that only grows (a trigger's cycles). */
void metrics_set(const char *name, const char *labels, double v);
/* Counts one observation v in the histogram series name{labels}. */
void metrics_observe(const char *name, const char *labels, double v);
/* The current value of a counter or gauge series (0 when untouched): for tests. */
double metrics_value(const char *name, const char *labels);
/* Appends the whole registry in the text exposition format. Returns 0 or -ENOMEM. */
int metrics_render(struct buf *out);
/* Writes `key="value"` into out (size bytes), escaping \ " and newlines;
 * cut (still valid) when it does not fit. Returns out. */
char *metrics_label(char *out, size_t size, const char *key, const char *value);
/* Writes `k1="v1",k2="v2"` into out (size bytes), escaped as metrics_label
 * does; the second label is kept whole (it fits in 128 bytes) and the first
 * is cut when both do not fit. Returns out. */
char *metrics_labels2(char *out, size_t size, const char *k1, const char *v1, const char *k2,
                      const char *v2);
/* Drops every family and series (tests; the engine at exit). */
void metrics_reset(void);

#endif

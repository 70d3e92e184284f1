/*
 * test_metrics: the registry and its text exposition (core/metrics.c):
 * counters only grow, gauges are set, histogram buckets are cumulative with
 * +Inf equal to the count, label values are escaped, undeclared names are
 * ignored, and the rendered text has HELP and TYPE once per family.
 */
#include <string.h>

#include "buf.h"
#include "metrics.h"
#include "testlib.h"

static char *render(void)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    CHECK_INT(metrics_render(&b), 0);
    size_t len = 0;
    return buf_steal(&b, &len);
}

static void test_counters_and_gauges(void)
{
    metrics_declare("t_total", METRIC_COUNTER, "A counter.", NULL, 0);
    metrics_declare("t_total", METRIC_COUNTER, "Declared twice: no-op.", NULL, 0);
    metrics_declare("t_gauge", METRIC_GAUGE, "A gauge.", NULL, 0);
    metrics_add("t_total", "a=\"1\"", 2);
    metrics_add("t_total", "a=\"1\"", 3);
    metrics_add("t_total", "a=\"1\"", -7); /* counters never go down */
    metrics_add("t_total", "a=\"2\"", 1);
    metrics_set("t_gauge", "", 5);
    metrics_set("t_gauge", "", 2.5);
    metrics_add("undeclared_total", "", 1);
    CHECK(metrics_value("t_total", "a=\"1\"") == 5);
    CHECK(metrics_value("t_total", "a=\"2\"") == 1);
    CHECK(metrics_value("t_gauge", "") == 2.5);
    CHECK(metrics_value("undeclared_total", "") == 0);
    char *text = render();
    CHECK(strstr(text, "# HELP t_total A counter.\n# TYPE t_total counter\n"
                       "t_total{a=\"1\"} 5\nt_total{a=\"2\"} 1\n") != NULL);
    CHECK(strstr(text, "# TYPE t_gauge gauge\nt_gauge 2.5\n") != NULL);
    CHECK(strstr(text, "undeclared") == NULL);
    CHECK(strstr(text, "Declared twice") == NULL);
    free(text);
}

static void test_histogram(void)
{
    static const double bounds[] = {1, 5};
    metrics_declare("t_seconds", METRIC_HISTOGRAM, "A histogram.", bounds, 2);
    metrics_observe("t_seconds", "", 0.5);
    metrics_observe("t_seconds", "", 3);
    metrics_observe("t_seconds", "", 9);
    char *text = render();
    CHECK(strstr(text, "# TYPE t_seconds histogram\n"
                       "t_seconds_bucket{le=\"1\"} 1\n"
                       "t_seconds_bucket{le=\"5\"} 2\n"
                       "t_seconds_bucket{le=\"+Inf\"} 3\n"
                       "t_seconds_sum 12.5\n"
                       "t_seconds_count 3\n") != NULL);
    free(text);
    metrics_observe("t_seconds", "x=\"y\"", 1);
    text = render();
    CHECK(strstr(text, "t_seconds_bucket{x=\"y\",le=\"1\"} 1\n") != NULL);
    free(text);
}

static void test_labels(void)
{
    char out[64];
    CHECK_STR(metrics_label(out, sizeof(out), "trigger", "a\"b\\c\nd"),
              "trigger=\"a\\\"b\\\\c\\nd\"");
    char tiny[12];
    metrics_label(tiny, sizeof(tiny), "k", "0123456789abcdef");
    CHECK(strlen(tiny) < sizeof(tiny));
    CHECK(strncmp(tiny, "k=\"", 3) == 0);
    CHECK(tiny[strlen(tiny) - 1] == '"');
    char two[40];
    CHECK_STR(metrics_labels2(two, sizeof(two), "rule", "r\"1", "outcome", "dead"),
              "rule=\"r\\\"1\",outcome=\"dead\"");
    metrics_labels2(two, sizeof(two), "rule", "a-very-long-rule-name-that-cannot-fit", "outcome",
                    "dead");
    CHECK(strlen(two) < sizeof(two));
    CHECK(strncmp(two, "rule=\"", 6) == 0);
    CHECK(strstr(two, "\",outcome=\"dead\"") != NULL); /* the second label stays whole */
}

int main(void)
{
    test_counters_and_gauges();
    test_histogram();
    test_labels();
    metrics_reset();
    CHECK(metrics_value("t_total", "a=\"1\"") == 0);
    return test_done("metrics");
}

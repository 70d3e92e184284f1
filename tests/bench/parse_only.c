/*
 * parse_only: the CPU floor of a poll, i.e. cJSON parsing the response bodies
 * and nothing else (used by bench_poll.py).
 *
 *   parse_only PASSES FILE...
 *
 * Reads every FILE into memory (not measured), then PASSES times parses each
 * one with cJSON_ParseWithLength and frees the tree (cJSON_Delete), as any
 * consumer of the page must. Prints one JSON object on stdout:
 *   {"files":F,"bytes":B,"passes":P,"cpu_s_per_pass":X,"cpu_s_min":M,
 *    "parse_s_per_pass":Y,"free_s_per_pass":Z,"maxrss_kb":K}
 * where cpu_s_per_pass is getrusage(RUSAGE_SELF) user+sys of the whole
 * measured loop divided by PASSES, cpu_s_min the cheapest single pass (also
 * getrusage), and parse/free split the mean (per-call
 * CLOCK_PROCESS_CPUTIME_ID). Exit 1 if a file cannot be read or parsed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cJSON.h>

struct blob {
    char *data;
    size_t len;
};

static int read_file(const char *path, struct blob *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "parse_only: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 20;
    size_t len = 0;
    char *data = malloc(cap);
    while (data != NULL) {
        size_t n = fread(data + len, 1, cap - len, f);
        len += n;
        if (len < cap) {
            break;
        }
        char *bigger = realloc(data, cap * 2);
        if (bigger == NULL) {
            free(data);
            data = NULL;
            break;
        }
        data = bigger;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (data == NULL || err) {
        fprintf(stderr, "parse_only: %s: read error\n", path);
        free(data);
        return -1;
    }
    out->data = data;
    out->len = len;
    return 0;
}

static double rusage_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: parse_only PASSES FILE...\n");
        return 2;
    }
    long passes = strtol(argv[1], NULL, 10);
    if (passes < 1) {
        fprintf(stderr, "parse_only: PASSES must be >= 1\n");
        return 2;
    }
    size_t nfiles = (size_t)(argc - 2);
    struct blob *blobs = calloc(nfiles, sizeof(*blobs));
    if (blobs == NULL) {
        return 1;
    }
    size_t total = 0;
    for (size_t i = 0; i < nfiles; i++) {
        if (read_file(argv[i + 2], &blobs[i]) != 0) {
            return 1;
        }
        total += blobs[i].len;
    }
    double parse_s = 0;
    double free_s = 0;
    double best = -1;
    double start = rusage_cpu();
    for (long pass = 0; pass < passes; pass++) {
        double pass_start = rusage_cpu();
        for (size_t i = 0; i < nfiles; i++) {
            double t0 = cpu_now();
            cJSON *root = cJSON_ParseWithLength(blobs[i].data, blobs[i].len);
            double t1 = cpu_now();
            if (root == NULL) {
                fprintf(stderr, "parse_only: %s: not JSON\n", argv[i + 2]);
                return 1;
            }
            cJSON_Delete(root);
            free_s += cpu_now() - t1;
            parse_s += t1 - t0;
        }
        double pass_cpu = rusage_cpu() - pass_start;
        if (best < 0 || pass_cpu < best) {
            best = pass_cpu;
        }
    }
    double cpu = rusage_cpu() - start;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"files\":%zu,\"bytes\":%zu,\"passes\":%ld,\"cpu_s_per_pass\":%.6f,\"cpu_s_min\":%.6f,"
           "\"parse_s_per_pass\":%.6f,\"free_s_per_pass\":%.6f,\"maxrss_kb\":%ld}\n",
           nfiles, total, passes, cpu / (double)passes, best, parse_s / (double)passes,
           free_s / (double)passes, ru.ru_maxrss);
    for (size_t i = 0; i < nfiles; i++) {
        free(blobs[i].data);
    }
    free(blobs);
    return 0;
}

/*
 * testlib.h: the few macros the unit tests share.
 *
 * Each test program runs its cases, counts failures and exits 1 if any
 * check failed (0 otherwise), so meson reports it. Checks print the file
 * and line of the failing expression and keep going, so one run shows
 * every broken case of a table. It also holds the temporary-directory
 * helpers of the tests that write files.
 */
#ifndef POLLEN_TESTLIB_H
#define POLLEN_TESTLIB_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int test_failures;
static int test_checks;

#define CHECK(expr)                                                                 \
    do {                                                                            \
        test_checks++;                                                              \
        if (!(expr)) {                                                              \
            test_failures++;                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr); \
        }                                                                           \
    } while (0)

#define CHECK_INT(got, want)                                                         \
    do {                                                                             \
        long long got_ = (long long)(got);                                           \
        long long want_ = (long long)(want);                                         \
        test_checks++;                                                               \
        if (got_ != want_) {                                                         \
            test_failures++;                                                         \
            fprintf(stderr, "%s:%d: %s = %lld, want %lld\n", __FILE__, __LINE__, #got, \
                    got_, want_);                                                    \
        }                                                                            \
    } while (0)

#define CHECK_STR(got, want)                                                          \
    do {                                                                              \
        const char *got_ = (got);                                                     \
        const char *want_ = (want);                                                   \
        test_checks++;                                                                \
        if (got_ == NULL || want_ == NULL ? got_ != want_ : strcmp(got_, want_) != 0) { \
            test_failures++;                                                          \
            fprintf(stderr, "%s:%d: %s = \"%s\", want \"%s\"\n", __FILE__, __LINE__,  \
                    #got, got_ ? got_ : "(null)", want_ ? want_ : "(null)");          \
        }                                                                             \
    } while (0)

/* The most of the sorted times t[0..n) in any window of `window` (the rate
 * simulations check every window of a grant history, not just aligned ones). */
static inline int max_in_any_window(const uint64_t *t, size_t n, uint64_t window)
{
    int best = 0;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        /* Window (t[i] - window, t[i]]: count times in it. */
        while (t[j] + window <= t[i]) {
            j++;
        }
        if ((int)(i - j + 1) > best) {
            best = (int)(i - j + 1);
        }
    }
    return best;
}

/* Where tests write files: $POLLEN_TEST_TMP (meson sets it) or /tmp. */
static inline const char *test_tmp_root(void)
{
    const char *t = getenv("POLLEN_TEST_TMP");
    return t != NULL && t[0] != '\0' ? t : "/tmp";
}

/* ROOT/PROG-PID-NAME, malloc'd: the pid keeps concurrent runs apart. */
static inline char *test_tmp_path(const char *prog, const char *name)
{
    size_t n = strlen(test_tmp_root()) + strlen(prog) + strlen(name) + 32;
    char *p = malloc(n);
    if (p == NULL) {
        abort();
    }
    snprintf(p, n, "%s/%s-%ld-%s", test_tmp_root(), prog, (long)getpid(), name);
    return p;
}

/* Removes a store directory (only LMDB's two files live there). */
static inline void test_rm_store(const char *dir)
{
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static inline int test_done(const char *name)
{
    fprintf(stderr, "%s: %d checks, %d failed\n", name, test_checks, test_failures);
    return test_failures == 0 ? 0 : 1;
}

#endif

/*
 * testlib.h: the few macros the unit tests share.
 *
 * Each test program runs its cases, counts failures and exits 1 if any
 * check failed (0 otherwise), so meson reports it. Checks print the file
 * and line of the failing expression and keep going, so one run shows
 * every broken case of a table.
 */
#ifndef POLLEN_TESTLIB_H
#define POLLEN_TESTLIB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static inline int test_done(const char *name)
{
    fprintf(stderr, "%s: %d checks, %d failed\n", name, test_checks, test_failures);
    return test_failures == 0 ? 0 : 1;
}

#endif

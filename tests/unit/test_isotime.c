/*
 * test_isotime: the ISO-8601 formatter and both parser forms: what each
 * accepts, what each refuses, the range, and the round trip of the
 * formatter's output.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "isotime.h"
#include "testlib.h"
#include "util.h"

#define NOON 1795694400000LL /* 2026-11-26T12:00:00Z */
#define BAD (-1)             /* refused */

struct pcase {
    const char *in;
    long long strict; /* ms, or BAD */
    long long loose;
};

static const struct pcase cases[] = {
    {"1970-01-01T00:00:00Z", 0, 0},
    {"1970-01-01T00:00:00.001Z", 1, 1},
    {"2026-11-26T12:00:00Z", NOON, NOON},
    {"2026-11-26T13:00:00+01:00", NOON, NOON},
    {"2026-11-26T06:30:00-0530", NOON, NOON},
    {"2026-11-26T12:00:00.5Z", NOON + 500, NOON + 500},
    {"2026-11-26T12:00:00.123456789Z", NOON + 123, NOON + 123},
    {"2000-02-29T00:00:00Z", 951782400000LL, 951782400000LL},
    {"9999-12-31T23:59:59.999Z", ISOTIME_MAX_MS, ISOTIME_MAX_MS},
    /* Only the loose form: date alone, t or space, no seconds, no zone, z. */
    {"2026-11-26", BAD, NOON - 12 * 3600000LL},
    {"2026-11-26T12:00:00", BAD, NOON},
    {"2026-11-26 12:00:00Z", BAD, NOON},
    {"2026-11-26t12:00z", BAD, NOON},
    {"2026-11-26T12:00", BAD, NOON},
    {"2026-11-26T13:00+0100", BAD, NOON},
    /* Neither. */
    {"", BAD, BAD},
    {"2026-11-2", BAD, BAD},
    {"2026-11-26T", BAD, BAD},
    {"2026-11-26T12", BAD, BAD},
    {"2026-11-26T12:00:0Z", BAD, BAD},
    {"2026-13-01T00:00:00Z", BAD, BAD},
    {"2026-00-01T00:00:00Z", BAD, BAD},
    {"2026-01-00T00:00:00Z", BAD, BAD},
    {"2026-02-29T00:00:00Z", BAD, BAD}, /* not a leap year */
    {"1900-02-29", BAD, BAD},           /* nor is a century */
    {"2026-04-31T00:00:00Z", BAD, BAD},
    {"2026-01-01T24:00:00Z", BAD, BAD},
    {"2026-01-01T00:60:00Z", BAD, BAD},
    {"2026-01-01T00:00:60Z", BAD, BAD}, /* no leap seconds */
    {"2026-01-01T00:00:00.Z", BAD, BAD},
    {"2026-01-01T00:00:00Zjunk", BAD, BAD},
    {"2026-01-01T00:00:00+1", BAD, BAD},
    {"2026-01-01T00:00:00+24:00", BAD, BAD},
    {"2026-01-01T00:00:00+01:60", BAD, BAD},
    {"2026-01-01 ", BAD, BAD},
    {"2O26-01-01T00:00:00Z", BAD, BAD},
    {" 2026-01-01", BAD, BAD},
    /* The range: nothing before the epoch or after year 9999. */
    {"1969-12-31T23:59:59Z", BAD, BAD},
    {"1970-01-01T00:00:00+01:00", BAD, BAD},
    {"1969-12-31T23:30:00-01:00", BAD, BAD}, /* after the epoch, but year 1969 */
    {"9999-12-31T23:59:59-01:00", BAD, BAD},
};

static void test_parse(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        for (int f = 0; f < 2; f++) {
            enum isotime_form form = f == 0 ? ISOTIME_STRICT : ISOTIME_LOOSE;
            long long want = f == 0 ? cases[i].strict : cases[i].loose;
            int64_t ms = 42;
            int rc = isotime_parse(cases[i].in, form, &ms);
            if (rc != (want == BAD ? -EINVAL : 0) || (rc == 0 && ms != want)) {
                fprintf(stderr, "case \"%s\" form %d: rc %d ms %lld\n", cases[i].in, f, rc,
                        (long long)ms);
            }
            CHECK_INT(rc, want == BAD ? -EINVAL : 0);
            CHECK_INT(ms, want == BAD ? 42 : want);
        }
    }
}

static void test_format_round_trip(void)
{
    static const struct {
        uint64_t ms;
        const char *text;
    } fmt[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {999, "1970-01-01T00:00:00.999Z"},
        {951782400123ULL, "2000-02-29T00:00:00.123Z"},
        {NOON + 7, "2026-11-26T12:00:00.007Z"},
        {ISOTIME_MAX_MS, "9999-12-31T23:59:59.999Z"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(fmt); i++) {
        char iso[ISOTIME_LEN];
        isotime_format(fmt[i].ms, iso);
        CHECK_STR(iso, fmt[i].text);
        for (int f = 0; f < 2; f++) {
            int64_t ms = 0;
            CHECK_INT(isotime_parse(iso, f == 0 ? ISOTIME_STRICT : ISOTIME_LOOSE, &ms), 0);
            CHECK_INT(ms, fmt[i].ms);
        }
    }
}

static void test_days_from_civil(void)
{
    CHECK_INT(isotime_days_from_civil(1970, 1, 1), 0);
    CHECK_INT(isotime_days_from_civil(1969, 12, 31), -1);
    CHECK_INT(isotime_days_from_civil(2000, 3, 1), 11017);
    CHECK_INT(isotime_days_from_civil(2026, 11, 26), 20783);
    CHECK_INT(isotime_days_from_civil(1600, 1, 1), -135140);
    /* Every day of 1970..2400 is one more than the one before. */
    int64_t prev = isotime_days_from_civil(1969, 12, 31);
    int gaps = 0;
    for (int64_t y = 1970; y <= 2400; y++) {
        for (unsigned m = 1; m <= 12; m++) {
            for (unsigned d = 1; d <= 31; d++) {
                char s[16];
                int64_t ms = 0;
                snprintf(s, sizeof(s), "%04d-%02u-%02u", (int)y, m, d);
                if (isotime_parse(s, ISOTIME_LOOSE, &ms) != 0) {
                    continue; /* no such day */
                }
                int64_t days = isotime_days_from_civil(y, m, d);
                gaps += days != prev + 1 || ms != days * 86400000LL;
                prev = days;
            }
        }
    }
    CHECK_INT(gaps, 0);
    CHECK_INT(prev, isotime_days_from_civil(2401, 1, 1) - 1);
}

int main(void)
{
    test_parse();
    test_format_round_trip();
    test_days_from_civil();
    return test_done("isotime");
}

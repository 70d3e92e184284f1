/*
 * isotime: see isotime.h. The parser is one grammar with the strict form's
 * extra requirements checked where the loose form has a choice; it came
 * from the two copies that evlog.c (strict) and template.c (loose) had.
 */
#include "isotime.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "util.h"

void isotime_format(uint64_t wall_ms, char out[ISOTIME_LEN])
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* The fields are range-limited by gmtime_r; the cast tells the compiler so. */
    snprintf(out, ISOTIME_LEN, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
             (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
             (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
             (unsigned)tm.tm_sec % 100u, (unsigned)(wall_ms % 1000));
}

int64_t isotime_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool take_digits(const char **p, int n, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        if (!ascii_is_digit((*p)[i])) {
            return false;
        }
        v = v * 10 + (unsigned)((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool valid_date(unsigned y, unsigned mo, unsigned d)
{
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1]) {
        return false;
    }
    return !(mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
}

/* An optional ".fff..." after the seconds: milliseconds from the first
 * three digits, further digits truncate. A '.' needs at least one digit. */
static bool take_fraction(const char **p, unsigned *ms)
{
    if (**p != '.') {
        return true;
    }
    (*p)++;
    if (!ascii_is_digit(**p)) {
        return false;
    }
    unsigned nd = 0;
    for (; ascii_is_digit(**p); (*p)++, nd++) {
        if (nd < 3) {
            *ms = *ms * 10 + (unsigned)(**p - '0');
        }
    }
    for (; nd < 3; nd++) {
        *ms *= 10;
    }
    return true;
}

/* "Z" (or "z" when loose), "+HH:MM", "+HHMM", "-..."; nothing when loose. */
static bool take_zone(const char **p, enum isotime_form form, int64_t *offset_min)
{
    unsigned oh = 0;
    unsigned om = 0;
    if (**p == 'Z' || (form == ISOTIME_LOOSE && **p == 'z')) {
        (*p)++;
        return true;
    }
    if (**p != '+' && **p != '-') {
        return form == ISOTIME_LOOSE;
    }
    int sign = *(*p)++ == '-' ? -1 : 1;
    if (!take_digits(p, 2, &oh)) {
        return false;
    }
    if (**p == ':') {
        (*p)++;
    }
    if (!take_digits(p, 2, &om) || oh > 23 || om > 59) {
        return false;
    }
    *offset_min = sign * (int64_t)(oh * 60 + om);
    return true;
}

int isotime_parse(const char *s, enum isotime_form form, int64_t *out_ms)
{
    const char *p = s;
    bool strict = form == ISOTIME_STRICT;
    unsigned y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
    int64_t offset_min = 0;

    if (!take_digits(&p, 4, &y) || *p++ != '-' || !take_digits(&p, 2, &mo) || *p++ != '-' ||
        !take_digits(&p, 2, &d) || !valid_date(y, mo, d)) {
        return -EINVAL;
    }
    if (*p == 'T' || (!strict && (*p == 't' || *p == ' '))) {
        p++;
        if (!take_digits(&p, 2, &h) || *p++ != ':' || !take_digits(&p, 2, &mi)) {
            return -EINVAL;
        }
        if (*p == ':' || strict) {
            if (*p++ != ':' || !take_digits(&p, 2, &sec) || !take_fraction(&p, &ms)) {
                return -EINVAL;
            }
        }
        if (h > 23 || mi > 59 || sec > 59 || !take_zone(&p, form, &offset_min)) {
            return -EINVAL;
        }
    } else if (strict) {
        return -EINVAL;
    }
    if (*p != '\0') {
        return -EINVAL;
    }
    int64_t days = isotime_days_from_civil(y, mo, d);
    int64_t t = ((days * 24 + h) * 60 + mi - offset_min) * 60 + sec;
    t = t * 1000 + ms;
    if (t < 0 || t > ISOTIME_MAX_MS) {
        return -EINVAL;
    }
    *out_ms = t;
    return 0;
}

/*
 * isotime: the one ISO-8601 (UTC) formatter and parser. Events, outbox
 * entries and log lines carry what isotime_format writes; the event log
 * reads its own "time" fields back with the strict form, and the template
 * `date` filter reads record fields with the loose form.
 * (Named isotime so that "time.h" never shadows the C library's header.)
 *
 * Owns: nothing; pure functions.
 * Invariants: every instant is Unix milliseconds in [0, ISOTIME_MAX_MS]:
 * 1970-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z, what four year
 * digits can print. What isotime_format writes, both forms read back
 * exactly. Years before 1970 are refused even when a negative zone offset
 * would bring the instant after the epoch.
 * Thread context: safe on any thread.
 */
#ifndef POLLEN_ISOTIME_H
#define POLLEN_ISOTIME_H

#include <stdint.h>

/* 9999-12-31T23:59:59.999Z in Unix milliseconds. */
#define ISOTIME_MAX_MS 253402300799999LL
/* Room for isotime_format's output (24 characters plus NUL, with spare). */
#define ISOTIME_LEN 32

enum isotime_form {
    /* YYYY-MM-DDTHH:MM:SS[.f...] and a required zone: Z, +HH:MM or +HHMM
     * (or -). What isotime_format writes, and nothing looser. */
    ISOTIME_STRICT,
    /* YYYY-MM-DD alone (midnight UTC), or followed by T, t or a space,
     * HH:MM[:SS[.f...]] and an optional zone: Z, z, +HH:MM or +HHMM (or -);
     * no zone means UTC. For dates written by others (record fields). */
    ISOTIME_LOOSE,
};

/* Formats wall-clock ms as 2026-11-26T19:46:53.123Z into out (NUL-terminated). */
void isotime_format(uint64_t wall_ms, char out[ISOTIME_LEN]);

/*
 * Parses s (the whole string) in the given form into Unix milliseconds.
 * Fraction digits beyond the third truncate; seconds are 00..59. Returns 0
 * and sets *out_ms, or -EINVAL (malformed, no such date, out of range) and
 * leaves *out_ms alone.
 */
int isotime_parse(const char *s, enum isotime_form form, int64_t *out_ms);

/* Days since 1970-01-01 of a proleptic Gregorian date, month 1..12 and
 * day 1..31 (H. Hinnant's days_from_civil); negative before the epoch. */
int64_t isotime_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif

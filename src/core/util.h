/*
 * util: allocation wrappers, string helpers, duration parsing, clocks and
 * randomness shared by every module.
 *
 * The x*alloc family aborts on out-of-memory after logging (Redis zmalloc):
 * internal allocations are never checked by callers. Sizes that come from
 * outside input must be bounded by the caller before they get here.
 * Thread context: everything here is safe on any thread except util_rand*,
 * which keeps per-process state and is used only on the loop thread.
 */
#ifndef POLLEN_UTIL_H
#define POLLEN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "isotime.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define ATTR_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define ATTR_NORETURN __attribute__((noreturn))
#else
#define ATTR_PRINTF(fmt, args)
#define ATTR_NORETURN
#endif

/* ASCII character classes for the parsers of templates, conditions,
 * configuration files and JSON numbers. Unlike <ctype.h> they ignore the locale and take any char
 * (isdigit() of a negative char is undefined). */
static inline bool ascii_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A letter or '_': what may start a name. */
static inline bool ascii_is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static inline bool ascii_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* A letter or digit (no '_', unlike ascii_is_alpha). */
static inline bool ascii_is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static inline bool ascii_is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

/* A printable character other than space (isgraph in the C locale). */
static inline bool ascii_is_graph(char c)
{
    return c > ' ' && c < 0x7F;
}

/* c in lower case when it is an ASCII capital, else c itself. */
static inline char ascii_to_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* A space or a tab: what separates words on an INI line. */
static inline bool ascii_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
/*
 * xcalloc for a big hash table probed at random (idset, idmap): from 2 MiB
 * up, the memory is 2 MiB-aligned and marked MADV_HUGEPAGE, so that the
 * kernel may back it with huge pages (transparent_hugepage = madvise):
 * random probes then miss the TLB and fault far less (measured ~10x cheaper
 * on 6 MiB). Zeroed; free with free().
 */
void *xcalloc_table(size_t count, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string. */
char *xasprintf(const char *fmt, ...) ATTR_PRINTF(1, 2);

/* Copies src into dst (size bytes, always NUL-terminated). Returns false if truncated. */
bool str_copy(char *dst, size_t size, const char *src);
bool str_has_prefix(const char *s, const char *prefix);
bool str_has_suffix(const char *s, const char *suffix);
/* Trims ASCII white space at both ends, in place; returns s. */
char *str_trim(char *s);

/*
 * Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF. utf8_seq_len returns the length (1..4) of the valid sequence
 * that starts at s, reading at most n bytes (n >= 1), or 0 if there is none
 * (a NUL byte is a sequence of 1). utf8_valid says whether all len bytes are
 * valid UTF-8.
 */
size_t utf8_seq_len(const char *s, size_t n);
bool utf8_valid(const char *s, size_t len);

/*
 * Splits a space-separated list into a NULL-terminated array of new strings.
 * The caller frees it with strv_free. *count (if not NULL) gets the length.
 */
char **strv_split(const char *list, size_t *count);
void strv_free(char **v);
/* A deep copy of v (NULL for NULL); the caller frees it with strv_free. */
char **strv_dup(char *const *v);
size_t strv_len(char *const *v);
bool strv_contains(char *const *v, const char *s);

/*
 * Parses a duration: an integer followed by ms, s, m, h or d ("90s", "5m",
 * "250ms"); a bare integer is seconds. Returns 0 and sets *out_ms, or -EINVAL.
 */
int util_parse_duration(const char *s, uint64_t *out_ms);
/* Parses a size: integer with optional k, K, KiB, M, MiB, G, GiB suffix. */
int util_parse_size(const char *s, uint64_t *out_bytes);
/* Parses a strict base-10 integer in [min, max]. */
int util_parse_int(const char *s, long long min, long long max, long long *out);
/* Parses yes/no/true/false/on/off/1/0. */
int util_parse_bool(const char *s, bool *out);

/* Monotonic milliseconds (for deadlines) and wall-clock milliseconds (for display). */
uint64_t util_mono_ms(void);
uint64_t util_wall_ms(void);
/* Shifts util_wall_ms (tests only: a wall-clock step without touching the system clock). */
void util_set_wall_offset_ms(int64_t offset);
/* Formats wall-clock ms as ISO-8601 UTC with milliseconds: 2026-11-26T19:46:53.123Z (25 bytes
 * with NUL). The old name of isotime_format (isotime.h), kept so callers in every layer need
 * no change at once; new code calls isotime_format. */
static inline void util_iso8601(uint64_t wall_ms, char out[32])
{
    isotime_format(wall_ms, out);
}

/* Seeds the random generator from getrandom(); deterministic when POLLEN_SEED is set. */
void util_rand_seed(void);
uint64_t util_rand64(void);
/* Uniform in [lo, hi] (inclusive); returns lo when hi <= lo. */
uint64_t util_rand_range(uint64_t lo, uint64_t hi);

/* Capped full-jitter exponential backoff (Fluent Bit): random in [base, min(cap, base*2^attempt)]. */
uint64_t util_backoff_ms(uint64_t base_ms, uint64_t cap_ms, unsigned attempt);

/* Reads a whole file (at most max bytes) into a NUL-terminated buffer. Returns 0 or -errno / -EFBIG. */
int util_read_file(const char *path, size_t max, char **out, size_t *out_len);

/* One piece of a file util_write_atomic writes. */
struct util_chunk {
    const void *data;
    size_t len;
};
/*
 * Writes the chunks, in order, to PATH.tmp (0600) and renames it to path: a
 * reader sees the old file or the whole new one. No fsync: for caches whose
 * loss or tearing after a power cut their reader detects. Returns 0 or
 * -errno (then path is untouched and no PATH.tmp is left).
 */
int util_write_atomic(const char *path, const struct util_chunk *chunks, size_t n);
/*
 * Maps the file at path whole, private (copy-on-write: the caller may write
 * to its pages, the file never changes) and populated. Returns the mapping
 * (munmap it, *len bytes) or NULL when the file is absent, empty, larger
 * than max bytes or cannot be mapped: what util_write_atomic wrote, read back.
 */
void *util_map_file(const char *path, uint64_t max, size_t *len);

/*
 * Joins a relative path onto dir (leading "./" dropped); an absolute path,
 * or a NULL or empty dir, gives a copy of path. Returns a new string.
 */
char *util_resolve_path(const char *dir, const char *path);

/* mkdir -p with the given mode. Returns 0 or -errno. */
int util_mkdir_p(const char *path, unsigned mode);

#endif

/*
 * jsonspan: see jsonspan.h. A single forward pass with an explicit position;
 * strings are crossed 16 or 8 bytes at a time (most of a record's bytes are in strings),
 * nesting is counted, never recursed into.
 */
#include "jsonspan.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct scan {
    const char *d;
    size_t len;
    size_t pos;
};

static inline bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline void skip_ws(struct scan *s)
{
    while (s->pos < s->len && is_ws(s->d[s->pos])) {
        s->pos++;
    }
}

/* The byte at the position, or '\0' at the end (never a valid token start). */
static inline char cur(const struct scan *s)
{
    return s->pos < s->len ? s->d[s->pos] : '\0';
}

#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SWAR 1
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* The high bit of each byte of v that is zero: exact for the lowest one
 * (a borrow can only mark bytes above it). */
static inline uint64_t zero_bytes(uint64_t v)
{
    return (v - ONES) & ~v & HIGHS;
}
#endif

/*
 * The position of the first '"' or '\\' at or after i, or len. Sixteen
 * bytes at a time with SSE2 (every x86-64), else eight on a little-endian
 * host: most strings of a record are a few dozen bytes, too short for
 * memchr's set-up to pay, and both bytes are wanted at once.
 */
static inline size_t quote_or_backslash(const char *d, size_t i, size_t len)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i bslash = _mm_set1_epi8('\\');
    while (len - i >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(d + i));
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)));
        if (m != 0) {
            return i + (unsigned)__builtin_ctz(m);
        }
        i += 16;
    }
#elif defined(SWAR)
    while (len - i >= 8) {
        uint64_t v;
        memcpy(&v, d + i, 8);
        uint64_t m = zero_bytes(v ^ (ONES * '"')) | zero_bytes(v ^ (ONES * '\\'));
        if (m != 0) {
            return i + ((unsigned)__builtin_ctzll(m) >> 3);
        }
        i += 8;
    }
#endif
    while (i < len && d[i] != '"' && d[i] != '\\') {
        i++;
    }
    return i;
}

/*
 * At an opening quote: moves past the closing one. *escaped (may be NULL)
 * says whether the string holds a backslash. A backslash escapes the byte
 * after it (so a quote ends the string unless an odd run of backslashes
 * precedes it). False when the input ends first.
 */
static bool skip_string(struct scan *s, bool *escaped)
{
    size_t i = s->pos + 1;
    bool esc = false;
    for (;;) {
        i = quote_or_backslash(s->d, i, s->len);
        if (i >= s->len) {
            return false;
        }
        if (s->d[i] == '"') {
            s->pos = i + 1;
            if (escaped != NULL) {
                *escaped = esc;
            }
            return true;
        }
        esc = true;
        if (s->len - i < 2) {
            return false; /* the input ends inside the escape */
        }
        i += 2; /* the backslash and the byte it escapes */
    }
}

/* At '{' or '[' inside `outer` containers: moves past its match. */
static bool skip_nested(struct scan *s, size_t outer)
{
    size_t depth = 0;
    while (s->pos < s->len) {
        char c = s->d[s->pos];
        if (c == '"') {
            if (!skip_string(s, NULL)) {
                return false;
            }
            continue;
        }
        if (c == '{' || c == '[') {
            if (outer + ++depth > JSONSPAN_MAX_DEPTH) {
                return false;
            }
        } else if (c == '}' || c == ']') {
            if (--depth == 0) {
                s->pos++;
                return true;
            }
        }
        s->pos++;
    }
    return false;
}

/* A number, true, false or null: its characters, at least one. */
static bool skip_scalar(struct scan *s)
{
    size_t start = s->pos;
    while (s->pos < s->len) {
        char c = s->d[s->pos];
        bool word = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' ||
                    c == '.' || c == 'E';
        if (!word) {
            break;
        }
        s->pos++;
    }
    return s->pos > start;
}

/* Any value at the position, inside `outer` containers. */
static bool skip_value(struct scan *s, size_t outer)
{
    switch (cur(s)) {
    case '"':
        return skip_string(s, NULL);
    case '{':
    case '[':
        return skip_nested(s, outer);
    default:
        return skip_scalar(s);
    }
}

/* After a member or element: ',' (true, *more) or the closer (true, !*more). */
static bool separator(struct scan *s, char closer, bool *more)
{
    skip_ws(s);
    char c = cur(s);
    if (c == '\0') {
        return false;
    }
    s->pos++;
    if (c == ',') {
        skip_ws(s);
        *more = true;
        return true;
    }
    *more = false;
    return c == closer;
}

/* A member's key and its colon; the position ends at the value. */
static bool member_key(struct scan *s, size_t *key, size_t *klen, bool *escaped)
{
    if (cur(s) != '"') {
        return false;
    }
    *key = s->pos + 1;
    if (!skip_string(s, escaped)) {
        return false;
    }
    *klen = s->pos - 1 - *key;
    skip_ws(s);
    if (cur(s) != ':') {
        return false;
    }
    s->pos++;
    skip_ws(s);
    return true;
}

static bool key_is(const struct scan *s, size_t key, size_t klen, bool escaped, const char *name,
                   size_t nlen)
{
    return !escaped && klen == nlen && memcmp(s->d + key, name, nlen) == 0;
}

/* A record object inside `outer` containers: its span and, when certain, its id. */
static bool scan_record(struct scan *s, size_t outer, const char *id_field, size_t idlen,
                        struct jsonspan_rec *r)
{
    bool any_escaped_key = false;
    bool found = false;
    s->pos++; /* '{' */
    if (outer + 1 > JSONSPAN_MAX_DEPTH) {
        return false;
    }
    skip_ws(s);
    if (cur(s) == '}') {
        s->pos++;
        return true;
    }
    for (bool more = true; more;) {
        size_t key = 0;
        size_t klen = 0;
        bool kesc = false;
        if (!member_key(s, &key, &klen, &kesc)) {
            return false;
        }
        any_escaped_key |= kesc;
        if (!found && key_is(s, key, klen, kesc, id_field, idlen)) {
            found = true;
            if (cur(s) == '"') {
                size_t v = s->pos + 1;
                bool vesc = false;
                if (!skip_string(s, &vesc)) {
                    return false;
                }
                if (!vesc) {
                    r->id_off = v;
                    r->id_len = s->pos - 1 - v;
                }
            } else if (!skip_value(s, outer + 1)) {
                return false;
            }
        } else if (!skip_value(s, outer + 1)) {
            return false;
        }
        if (!separator(s, '}', &more)) {
            return false;
        }
    }
    if (any_escaped_key) {
        r->id_len = 0; /* an escaped key may decode to id_field and come first */
    }
    return true;
}

static void push(struct jsonspan_page *pg, const struct jsonspan_rec *r)
{
    if (pg->n == pg->cap) {
        pg->cap = pg->cap ? pg->cap * 2 : 64;
        pg->recs = xrealloc(pg->recs, pg->cap * sizeof(*pg->recs));
    }
    pg->recs[pg->n++] = *r;
}

/* The records array at '[' inside `outer` containers. */
static bool scan_array(struct scan *s, size_t outer, const char *id_field,
                       struct jsonspan_page *pg)
{
    size_t idlen = strlen(id_field);
    pg->arr_off = s->pos;
    s->pos++;
    if (outer + 1 > JSONSPAN_MAX_DEPTH) {
        return false;
    }
    skip_ws(s);
    if (cur(s) == ']') {
        s->pos++;
        pg->arr_end = s->pos;
        return true;
    }
    for (bool more = true; more;) {
        struct jsonspan_rec r = {.off = s->pos};
        bool ok = cur(s) == '{' ? scan_record(s, outer + 1, id_field, idlen, &r)
                                : skip_value(s, outer + 1);
        if (!ok) {
            return false;
        }
        r.len = s->pos - r.off;
        push(pg, &r);
        if (!separator(s, ']', &more)) {
            return false;
        }
    }
    pg->arr_end = s->pos;
    return true;
}

/* The top-level object: the first member named `member` must be the array. */
static bool scan_root_object(struct scan *s, const char *member, const char *id_field,
                             struct jsonspan_page *pg)
{
    size_t mlen = strlen(member);
    bool found = false;
    if (cur(s) != '{') {
        return false;
    }
    s->pos++;
    skip_ws(s);
    for (bool more = cur(s) != '}'; more;) {
        size_t key = 0;
        size_t klen = 0;
        bool kesc = false;
        if (!member_key(s, &key, &klen, &kesc) || kesc) {
            return false; /* an escaped key might decode to member: let the parser decide */
        }
        bool ok;
        if (!found && key_is(s, key, klen, false, member, mlen)) {
            found = true;
            ok = cur(s) == '[' && scan_array(s, 1, id_field, pg);
        } else {
            ok = skip_value(s, 1);
        }
        if (!ok || !separator(s, '}', &more)) {
            return false;
        }
    }
    return found; /* an empty object never entered the loop: no member */
}

int jsonspan_records(const char *data, size_t len, const char *member, const char *id_field,
                     struct jsonspan_page *out)
{
    struct scan s = {.d = data, .len = len};
    out->n = 0;
    out->arr_off = 0;
    out->arr_end = 0;
    if (data == NULL || id_field == NULL || id_field[0] == '\0') {
        return -EINVAL;
    }
    skip_ws(&s);
    bool ok = member == NULL ? cur(&s) == '[' && scan_array(&s, 0, id_field, out)
                             : scan_root_object(&s, member, id_field, out);
    skip_ws(&s);
    if (!ok || s.pos != len) {
        out->n = 0;
        return -EINVAL;
    }
    return 0;
}

void jsonspan_page_free(struct jsonspan_page *pg)
{
    if (pg == NULL) {
        return;
    }
    free(pg->recs);
    memset(pg, 0, sizeof(*pg));
}

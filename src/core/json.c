/*
 * json: see json.h for the canonical form and the hash feed format.
 */
#include "json.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

/* Tag bytes of the hash feed (json.h). Persisted: do not renumber. */
enum {
    TAG_NULL = 'n',
    TAG_FALSE = 'f',
    TAG_TRUE = 't',
    TAG_NUMBER = 'd',
    TAG_STRING = 's',
    TAG_RAW = 'r',
    TAG_ARRAY_OPEN = '[',
    TAG_ARRAY_CLOSE = ']',
    TAG_OBJECT = '{',
    TAG_KEY = 'k',
};

/* Canonical print output is bounded by the input tree; the cap only guards size_t overflow. */
#define PRINT_MAX ((size_t)1 << 40)
/* Up to this many members, insertion sort (no call overhead, cheap on nearly sorted input). */
#define INSERTION_SORT_MAX 64

/*
 * Prefetch hint (GCC/Clang builtin; a no-op elsewhere). Walking a cJSON tree
 * is a chain of dependent cache misses; hinting the loads we will need soon
 * lets them overlap with the chain instead of adding to it.
 */
#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

/* ---------------------------------------------------------------- scratch */

struct member_ref {
    uint64_t prefix;    /* first 8 key bytes, big-endian, zero-padded: fast compare */
    const cJSON *item;  /* the member; its key is item->string */
    uint32_t keylen;    /* strlen of the key, or UINT32_MAX: recompute */
    uint32_t pos;       /* index in the view (= object order), for a total, stable order */
};

/*
 * Shape cache. API records of one kind share their key sequence, so the
 * sorted order of an object's members is usually the one computed for the
 * previous object with the same keys. A shape remembers a key sequence
 * exactly (8-byte prefixes, lengths and the remaining key bytes) and its
 * sorting permutation; a later object whose keys match it byte for byte
 * reuses the permutation after an O(n) check instead of sorting. Only
 * medium objects use it: small ones sort in a few compares, and big ones
 * (> SHAPE_MAX) are rare. Storage is one fixed block per thread, allocated
 * on first use; keys that do not fit a slot's tail buffer are not cached.
 */
#define SHAPE_MIN 8
#define SHAPE_MAX 64
#define SHAPE_SLOTS 8
#define SHAPE_TAIL 1024

struct shape {
    uint32_t n;                /* members; 0 = empty slot */
    uint64_t prefix[SHAPE_MAX];
    uint32_t keylen[SHAPE_MAX];
    uint8_t perm[SHAPE_MAX];   /* sorted slot k holds view index perm[k] */
    char tail[SHAPE_TAIL];     /* key bytes past the first 8, in view order */
};

struct scratch {
    struct member_ref *v;
    size_t len;
    size_t cap;
    struct shape *shapes;      /* SHAPE_SLOTS entries, or NULL */
    unsigned next_victim;      /* round-robin replacement */
};

/* Per thread so hashing may also run on pool threads; grows, never shrinks. */
static _Thread_local struct scratch scratch;

static void arena_release_all(void);

void json_scratch_release(void)
{
    arena_release_all();
    free(scratch.v);
    free(scratch.shapes);
    memset(&scratch, 0, sizeof(scratch));
}

static inline const char *key_of(const cJSON *item)
{
    return item->string != NULL ? item->string : "";
}

static inline int ref_cmp(const struct member_ref *a, const struct member_ref *b)
{
    if (a->prefix != b->prefix) {
        return a->prefix < b->prefix ? -1 : 1;
    }
    /* strcmp compares as unsigned char (C11 7.24.4), i.e. bytewise. */
    int c = strcmp(key_of(a->item), key_of(b->item));
    if (c != 0) {
        return c;
    }
    return a->pos < b->pos ? -1 : (a->pos > b->pos ? 1 : 0);
}

static int ref_qsort_cmp(const void *a, const void *b)
{
    return ref_cmp(a, b);
}

static void sort_refs(struct member_ref *v, size_t n)
{
    if (n > INSERTION_SORT_MAX) {
        qsort(v, n, sizeof(*v), ref_qsort_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        struct member_ref cur = v[i];
        size_t j = i;
        while (j > 0 && ref_cmp(&cur, &v[j - 1]) < 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = cur;
    }
}

static void scratch_reserve(size_t extra)
{
    if (scratch.cap - scratch.len >= extra) {
        return;
    }
    size_t cap = scratch.cap ? scratch.cap : 64;
    while (cap - scratch.len < extra) {
        cap *= 2;
    }
    scratch.v = xrealloc(scratch.v, cap * sizeof(*scratch.v));
    scratch.cap = cap;
}

/* True if the n refs (in view order) have exactly the keys recorded in sh. */
static bool shape_matches(const struct shape *sh, const struct member_ref *v, size_t n)
{
    size_t off = 0;

    if (sh->n != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].prefix != sh->prefix[i] || v[i].keylen != sh->keylen[i]) {
            return false;
        }
    }
    /* Prefix + length pin keys of <= 8 bytes (keys hold no NUL); compare the rest. */
    for (size_t i = 0; i < n; i++) {
        if (v[i].keylen > 8) {
            size_t t = v[i].keylen - 8;
            if (memcmp(v[i].item->string + 8, sh->tail + off, t) != 0) {
                return false;
            }
            off += t;
        }
    }
    return true;
}

/* Records the sorted refs v (whose pos fields are view indexes) as a shape. */
static void shape_store(const struct member_ref *v, size_t n)
{
    uint8_t inv[SHAPE_MAX];
    size_t tail = 0;

    for (size_t k = 0; k < n; k++) {
        if (v[k].keylen == UINT32_MAX) {
            return;
        }
        if (v[k].keylen > 8) {
            tail += v[k].keylen - 8;
        }
        inv[v[k].pos] = (uint8_t)k;
    }
    if (tail > SHAPE_TAIL) {
        return;
    }
    if (scratch.shapes == NULL) {
        scratch.shapes = xcalloc(SHAPE_SLOTS, sizeof(*scratch.shapes));
    }
    struct shape *sh = &scratch.shapes[scratch.next_victim];
    scratch.next_victim = (scratch.next_victim + 1) % SHAPE_SLOTS;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const struct member_ref *r = &v[inv[i]];
        sh->prefix[i] = r->prefix;
        sh->keylen[i] = r->keylen;
        if (r->keylen > 8) {
            memcpy(sh->tail + off, r->item->string + 8, r->keylen - 8);
            off += r->keylen - 8;
        }
    }
    for (size_t k = 0; k < n; k++) {
        sh->perm[k] = (uint8_t)v[k].pos;
    }
    sh->n = (uint32_t)n;
}

/* Sorts the view's refs, through the shape cache when the size allows. */
static void sort_view(size_t base, size_t n)
{
    if (n < 2) {
        return; /* nothing to sort; the scratch may not even exist yet (found by fuzz_records) */
    }
    if (n < SHAPE_MIN || n > SHAPE_MAX) {
        sort_refs(scratch.v + base, n);
        return;
    }
    if (scratch.shapes != NULL) {
        for (unsigned s = 0; s < SHAPE_SLOTS; s++) {
            const struct shape *sh = &scratch.shapes[s];
            if (!shape_matches(sh, scratch.v + base, n)) {
                continue;
            }
            /* Permute through a copy just above the view (may move scratch.v). */
            scratch_reserve(n);
            struct member_ref *v = scratch.v + base;
            memcpy(v + n, v, n * sizeof(*v));
            for (size_t k = 0; k < n; k++) {
                v[k] = v[n + sh->perm[k]];
            }
            return;
        }
    }
    sort_refs(scratch.v + base, n);
    shape_store(scratch.v + base, n);
}

void json_members_begin(struct json_members *m, const cJSON *obj,
                        bool (*keep)(const char *key, void *ud), void *ud)
{
    m->base = scratch.len;
    m->count = 0;
    if (obj == NULL || (obj->type & 0xFF) != cJSON_Object) {
        return;
    }
    /*
     * One pass over the sibling list: it is a chain of dependent loads, so
     * a separate counting pass would pay the cache misses twice.
     */
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        const char *k = key_of(c);
        if (keep != NULL && !keep(k, ud)) {
            continue;
        }
        if (scratch.len == scratch.cap) {
            scratch_reserve(1);
        }
        /* The value is read after the sort: start fetching it now. */
        PREFETCH(c->child);
        PREFETCH(c->valuestring);
        /* One scan gives the sort prefix and the length the hash feed needs. */
        uint64_t prefix = 0;
        size_t n = 0;
        while (n < 8 && k[n] != '\0') {
            prefix = (prefix << 8) | (unsigned char)k[n];
            n++;
        }
        if (n == 8) {
            n += strlen(k + 8);
        } else if (n > 0) {
            prefix <<= 8 * (8 - n); /* zero padding keeps bytewise order: "ab" < "ab\x01" */
        }
        struct member_ref *r = &scratch.v[scratch.len++];
        r->prefix = prefix;
        r->item = c;
        r->keylen = n < UINT32_MAX ? (uint32_t)n : UINT32_MAX;
        /* The view index orders ties exactly like the object position does. */
        size_t idx = scratch.len - 1 - m->base;
        r->pos = idx < UINT32_MAX ? (uint32_t)idx : UINT32_MAX;
    }
    m->count = scratch.len - m->base;
    sort_view(m->base, m->count);
}

const cJSON *json_members_at(const struct json_members *m, size_t i)
{
    return scratch.v[m->base + i].item;
}

void json_members_end(struct json_members *m)
{
    /* LIFO: popping a view discards every slot above its base. */
    scratch.len = m->base;
    m->count = 0;
}

/* ---------------------------------------------------------------- parse */

static inline bool is_json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* 2^53: from here on, not every integer has a double of its own. */
#define EXACT_INT_LIMIT 9007199254740992.0

/*
 * True when data holds a run of 16 or more digits: the only way to write an
 * integer of magnitude >= 2^53 (cheap test before the full walk). Any such
 * run covers exactly one offset i with i % 16 == 15, so only those bytes are
 * looked at, and the run is measured around the digits found there: about
 * a sixteenth of the bytes of a page instead of every one (it ran over
 * every page, +13% of a poll's instructions).
 */
static bool has_long_digit_run(const char *data, size_t len)
{
    for (size_t i = 15; i < len; i += 16) {
        if (!ascii_is_digit(data[i])) {
            continue;
        }
        size_t lo = i;
        size_t hi = i + 1;
        while (lo > 0 && i - lo < 15 && ascii_is_digit(data[lo - 1])) {
            lo--;
        }
        while (hi < len && hi - lo < 16 && ascii_is_digit(data[hi])) {
            hi++;
        }
        if (hi - lo >= 16) {
            return true;
        }
    }
    return false;
}

/* The next number token at or after *pos, skipping strings; false at the end. */
static bool next_number(const char *data, size_t len, size_t *pos, size_t *start, size_t *n)
{
    size_t i = *pos;
    while (i < len) {
        char c = data[i];
        if (c == '"') {
            for (i++; i < len && data[i] != '"'; i++) {
                if (data[i] == '\\') {
                    i++;
                }
            }
            i++;
        } else if (c == '-' || ascii_is_digit(c)) {
            size_t m = json_scan_number(data + i, len - i);
            if (m == 0) {
                return false; /* cJSON accepted it, so this cannot happen */
            }
            *start = i;
            *n = m;
            *pos = i + m;
            return true;
        } else {
            i++;
        }
    }
    return false;
}

struct raw_walk {
    const char *data;
    size_t len;
    size_t pos;
    bool lost; /* tokens and nodes stopped matching: change nothing more */
};

/*
 * Visits the number nodes in document order, which is the order of the
 * number tokens in the text, and turns an integer of magnitude >= 2^53 into
 * a cJSON_Raw node holding its digits as written (F20): a double would
 * change them, and two such ids that round alike would compare equal.
 * valuedouble is kept. Allocates with cJSON's hooks (the page arena too).
 */
static void keep_big_integers(cJSON *v, struct raw_walk *w)
{
    for (; v != NULL && !w->lost; v = v->next) {
        if (cJSON_IsNumber(v)) {
            size_t start;
            size_t n;
            if (!next_number(w->data, w->len, &w->pos, &start, &n)) {
                w->lost = true;
                return;
            }
            const char *tok = w->data + start;
            bool integral = memchr(tok, '.', n) == NULL && memchr(tok, 'e', n) == NULL &&
                            memchr(tok, 'E', n) == NULL;
            if (integral && fabs(v->valuedouble) >= EXACT_INT_LIMIT) {
                char *text = cJSON_malloc(n + 1);
                if (text == NULL) {
                    continue; /* keep the double: a rounded id beats failing the page */
                }
                memcpy(text, w->data + start, n);
                text[n] = '\0';
                v->valuestring = text;
                v->type = cJSON_Raw | (v->type & cJSON_StringIsConst);
            }
        } else if (v->child != NULL) {
            keep_big_integers(v->child, w);
        }
    }
}

int json_parse(const char *data, size_t len, cJSON **out, size_t *err_offset)
{
    const char *end = NULL;
    size_t off;

    *out = NULL;
    if (err_offset != NULL) {
        *err_offset = 0;
    }
    if (data == NULL || len == 0) {
        return -EINVAL;
    }
    /*
     * require_null_terminated must be 0: with 1 and a length that excludes
     * the NUL every input fails (reliability.md 3.2). Trailing bytes are
     * checked below instead.
     */
    cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    off = (end != NULL && end >= data) ? (size_t)(end - data) : 0;
    if (off > len) {
        off = len;
    }
    if (root == NULL) {
        goto fail;
    }
    while (off < len && is_json_ws(data[off])) {
        off++;
    }
    if (off != len) {
        /* Trailing garbage such as {"a":1} x: cJSON stopped before it. */
        cJSON_Delete(root);
        goto fail;
    }
    if (has_long_digit_run(data, len)) {
        struct raw_walk w = {.data = data, .len = len};
        keep_big_integers(root, &w);
    }
    *out = root;
    return 0;

fail:
    if (err_offset != NULL) {
        *err_offset = off;
    }
    return -EINVAL;
}

/* ---------------------------------------------------------------- lookups */

/* Strict array index: digits only, no leading zero (except "0"), at most 9 digits. */
static bool parse_index(const char *s, size_t n, size_t *out)
{
    size_t v = 0;
    if (n == 0 || n > 9 || (n > 1 && s[0] == '0')) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

static const cJSON *child_by_segment(const cJSON *cur, const char *seg, size_t n)
{
    int type = cur->type & 0xFF;

    if (type == cJSON_Array) {
        size_t idx;
        if (!parse_index(seg, n, &idx)) {
            return NULL;
        }
        const cJSON *c = cur->child;
        while (c != NULL && idx > 0) {
            c = c->next;
            idx--;
        }
        return c;
    }
    if (type == cJSON_Object) {
        for (const cJSON *c = cur->child; c != NULL; c = c->next) {
            if (c->string != NULL && strncmp(c->string, seg, n) == 0 && c->string[n] == '\0') {
                return c;
            }
        }
    }
    return NULL;
}

const cJSON *json_get_path(const cJSON *root, const char *path)
{
    const cJSON *cur = root;
    const char *p = path;

    if (root == NULL || path == NULL || path[0] == '\0') {
        return root;
    }
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);
        if (n == 0) {
            return NULL;
        }
        cur = child_by_segment(cur, p, n);
        if (cur == NULL || dot == NULL) {
            return cur;
        }
        p = dot + 1;
    }
}

const char *json_get_string(const cJSON *obj, const char *key)
{
    if (obj == NULL || key == NULL || !cJSON_IsObject(obj)) {
        return NULL;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool json_get_number(const cJSON *obj, const char *key, double *out)
{
    if (obj == NULL || key == NULL || !cJSON_IsObject(obj)) {
        return false;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) {
        return false;
    }
    *out = v->valuedouble;
    return true;
}

/* ---------------------------------------------------------------- canonical kinds */

/* The canonical kind of a node: non-finite numbers and invalid nodes are null. */
static inline int kind_of(const cJSON *v)
{
    if (v == NULL) {
        return cJSON_NULL;
    }
    int t = v->type & 0xFF;
    switch (t) {
    case cJSON_False:
    case cJSON_True:
    case cJSON_NULL:
    case cJSON_String:
    case cJSON_Array:
    case cJSON_Object:
    case cJSON_Raw:
        return t;
    case cJSON_Number:
        return isfinite(v->valuedouble) ? cJSON_Number : cJSON_NULL;
    default:
        return cJSON_NULL;
    }
}

static inline const char *str_of(const cJSON *v)
{
    return v->valuestring != NULL ? v->valuestring : "";
}

/* ---------------------------------------------------------------- print */

static void put(struct buf *b, const char *s, size_t n)
{
    /* Cannot fail: PRINT_MAX only guards against size_t overflow. */
    (void)buf_append(b, s, n);
}

static void print_number(struct buf *b, double d)
{
    char tmp[64];
    int n = 0;

    if (d == 0) {
        put(b, "0", 1); /* also -0 */
        return;
    }
    if (d == trunc(d) && fabs(d) <= 9007199254740992.0) {
        n = snprintf(tmp, sizeof(tmp), "%lld", (long long)d);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            n = snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
            if (strtod(tmp, NULL) == d) {
                break;
            }
        }
        /* JSON wants '.', whatever LC_NUMERIC the process runs under. */
        char dp = localeconv()->decimal_point[0];
        if (dp != '.') {
            for (int i = 0; i < n; i++) {
                if (tmp[i] == dp) {
                    tmp[i] = '.';
                }
            }
        }
    }
    put(b, tmp, (size_t)n);
}

static void print_string(struct buf *b, const char *s)
{
    static const char hexdig[] = "0123456789abcdef";
    const char *run = s;

    put(b, "\"", 1);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        const char *esc = NULL;
        char u[7];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (c < 0x20) {
                u[0] = '\\';
                u[1] = 'u';
                u[2] = '0';
                u[3] = '0';
                u[4] = hexdig[c >> 4];
                u[5] = hexdig[c & 15];
                u[6] = '\0';
                esc = u;
            }
            break;
        }
        if (esc != NULL) {
            put(b, run, (size_t)(s - run));
            put(b, esc, strlen(esc));
            run = s + 1;
        }
    }
    put(b, run, (size_t)(s - run));
    put(b, "\"", 1);
}

static void print_value(struct buf *b, const cJSON *v)
{
    switch (kind_of(v)) {
    case cJSON_False:
        put(b, "false", 5);
        return;
    case cJSON_True:
        put(b, "true", 4);
        return;
    case cJSON_Number:
        print_number(b, v->valuedouble);
        return;
    case cJSON_String:
        print_string(b, str_of(v));
        return;
    case cJSON_Raw:
        put(b, str_of(v), strlen(str_of(v)));
        return;
    case cJSON_Array:
        put(b, "[", 1);
        for (const cJSON *c = v->child; c != NULL; c = c->next) {
            print_value(b, c);
            if (c->next != NULL) {
                put(b, ",", 1);
            }
        }
        put(b, "]", 1);
        return;
    case cJSON_Object: {
        struct json_members m;
        json_members_begin(&m, v, NULL, NULL);
        put(b, "{", 1);
        for (size_t i = 0; i < m.count; i++) {
            const cJSON *c = json_members_at(&m, i);
            if (i > 0) {
                put(b, ",", 1);
            }
            print_string(b, key_of(c));
            put(b, ":", 1);
            print_value(b, c);
        }
        put(b, "}", 1);
        json_members_end(&m);
        return;
    }
    default:
        put(b, "null", 4);
        return;
    }
}

char *json_print_canonical(const cJSON *v)
{
    struct buf b;
    buf_init(&b, PRINT_MAX);
    print_value(&b, v);
    return buf_steal(&b, NULL);
}

/* ---------------------------------------------------------------- hash */

/*
 * The feed goes through a small stack buffer and reaches hash_update in
 * FEED_BUF-sized chunks: a record is ~100 tiny tokens, and per-token calls
 * into the hash cost more than the mixing itself. The bytes fed are exactly
 * the documented token stream, so buffering never changes a hash.
 */
#define FEED_BUF 512

struct feed {
    struct hash_state *st;
    size_t n;
    uint8_t b[FEED_BUF];
};

static inline void feed_flush(struct feed *f)
{
    hash_update(f->st, f->b, f->n);
    f->n = 0;
}

/* Longest token header: the tag byte and a 64-bit LEB128 length. */
#define HDR_MAX 11

static inline void feed_word(struct feed *f, uint64_t w)
{
    if (f->n > FEED_BUF - 8) {
        feed_flush(f);
    }
    uint8_t *p = f->b + f->n;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &w, sizeof(w));
#else
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(w >> (8 * i));
    }
#endif
    f->n += 8;
}

static inline void feed_tag(struct feed *f, unsigned tag)
{
    if (f->n >= FEED_BUF) {
        feed_flush(f);
    }
    f->b[f->n++] = (uint8_t)tag;
}

/* Writes tag + LEB128(len) at p; returns the bytes written (<= HDR_MAX). */
static inline size_t put_header(uint8_t *p, unsigned tag, uint64_t len)
{
    size_t n = 0;
    p[n++] = (uint8_t)tag;
    while (len >= 0x80) {
        p[n++] = (uint8_t)(len | 0x80);
        len >>= 7;
    }
    p[n++] = (uint8_t)len;
    return n;
}

static inline void feed_header(struct feed *f, unsigned tag, uint64_t len)
{
    if (f->n > FEED_BUF - HDR_MAX) {
        feed_flush(f);
    }
    f->n += put_header(f->b + f->n, tag, len);
}

static void feed_mem(struct feed *f, const char *s, size_t n)
{
    if (n > FEED_BUF - f->n) {
        feed_flush(f);
        if (n > FEED_BUF) {
            hash_update(f->st, s, n);
            return;
        }
    }
    memcpy(f->b + f->n, s, n);
    f->n += n;
}

/*
 * Header + bytes of a C string in one pass: the bytes are copied behind a
 * two-byte header slot (tag + a one-byte length covers strings < 128 bytes)
 * and the header is written afterwards, so short strings cost no strlen and
 * no memcpy call. A longer length shifts the copied bytes up to make room
 * (the copy leaves HDR_MAX - 2 bytes spare). A string that does not fit the
 * buffer continues with strlen and a direct hash_update of the rest.
 */
static void feed_cstr(struct feed *f, unsigned tag, const char *s)
{
    if (f->n > FEED_BUF - HDR_MAX - 1) {
        feed_flush(f);
    }
    size_t hdr = f->n;
    size_t room = FEED_BUF - hdr - HDR_MAX;
    uint8_t *dst = f->b + hdr + 2;
    size_t i = 0;
    while (i < room && s[i] != '\0') {
        dst[i] = (uint8_t)s[i];
        i++;
    }
    size_t rest = s[i] == '\0' ? 0 : strlen(s + i);
    size_t len = i + rest;
    if (len < 0x80) {
        f->b[hdr] = (uint8_t)tag;
        f->b[hdr + 1] = (uint8_t)len;
        f->n = hdr + 2 + i;
    } else {
        uint8_t h[HDR_MAX];
        size_t hn = put_header(h, tag, len);
        memmove(f->b + hdr + hn, dst, i);
        memcpy(f->b + hdr, h, hn);
        f->n = hdr + hn + i;
    }
    if (rest > 0) {
        feed_flush(f);
        hash_update(f->st, s + i, rest);
    }
}

static void feed_value(struct feed *f, const cJSON *v);

static void feed_object(struct feed *f, const cJSON *obj, bool (*keep)(const char *key, void *ud),
                        void *ud)
{
    struct json_members m;

    /*
     * Run-ahead: siblings are usually objects of the same kind (records of a
     * page, elements of a list field), hashed next. Stepping one member
     * along the next sibling's chain per member fed here overlaps that
     * chain's cache misses with this object's hashing work, instead of
     * paying them one after another when its turn comes.
     */
    const cJSON *ahead = NULL;
    if (obj != NULL && obj->next != NULL && (obj->next->type & 0xFF) == cJSON_Object) {
        ahead = obj->next->child;
    }

    json_members_begin(&m, obj, keep, ud);
    feed_header(f, TAG_OBJECT, m.count);
    for (size_t i = 0; i < m.count; i++) {
        if (ahead != NULL) {
            PREFETCH(ahead->string);
            PREFETCH(ahead->child);
            ahead = ahead->next;
        }
        const struct member_ref *r = &scratch.v[m.base + i];
        const cJSON *c = r->item;
        const char *k = key_of(c);
        size_t kn = r->keylen != UINT32_MAX ? r->keylen : strlen(k);
        feed_header(f, TAG_KEY, kn);
        feed_mem(f, k, kn);
        feed_value(f, c);
    }
    json_members_end(&m);
}

static void feed_value(struct feed *f, const cJSON *v)
{
    switch (kind_of(v)) {
    case cJSON_False:
        feed_tag(f, TAG_FALSE);
        return;
    case cJSON_True:
        feed_tag(f, TAG_TRUE);
        return;
    case cJSON_Number: {
        double d = v->valuedouble;
        uint64_t bits;
        if (d == 0) {
            d = 0.0; /* -0 and 0 print alike, so they must feed alike */
        }
        memcpy(&bits, &d, sizeof(bits));
        feed_tag(f, TAG_NUMBER);
        feed_word(f, bits);
        return;
    }
    case cJSON_String:
        feed_cstr(f, TAG_STRING, str_of(v));
        return;
    case cJSON_Raw:
        feed_cstr(f, TAG_RAW, str_of(v));
        return;
    case cJSON_Array:
        /* Open/close markers make the token stream prefix-free without a counting pass. */
        feed_tag(f, TAG_ARRAY_OPEN);
        for (const cJSON *c = v->child; c != NULL; c = c->next) {
            feed_value(f, c);
        }
        feed_tag(f, TAG_ARRAY_CLOSE);
        return;
    case cJSON_Object:
        feed_object(f, v, NULL, NULL);
        return;
    default:
        feed_tag(f, TAG_NULL);
        return;
    }
}

void json_hash_key(struct hash_state *st, const char *key)
{
    struct feed f;
    f.st = st;
    f.n = 0;
    feed_cstr(&f, TAG_KEY, key != NULL ? key : "");
    feed_flush(&f);
}

void json_hash_object_filtered(struct hash_state *st, const cJSON *obj,
                               bool (*keep)(const char *key, void *ud), void *ud)
{
    struct feed f;
    f.st = st;
    f.n = 0;
    feed_object(&f, obj, keep, ud);
    feed_flush(&f);
}

void json_hash_update(struct hash_state *st, const cJSON *v)
{
    struct feed f;
    f.st = st;
    f.n = 0;
    feed_value(&f, v);
    feed_flush(&f);
}

/* ---------------------------------------------------------------- equality */

bool json_equal(const cJSON *a, const cJSON *b)
{
    int ka = kind_of(a);
    int kb = kind_of(b);

    if (ka != kb) {
        return false;
    }
    switch (ka) {
    case cJSON_Number:
        return a->valuedouble == b->valuedouble; /* -0 == 0 */
    case cJSON_String:
    case cJSON_Raw:
        return strcmp(str_of(a), str_of(b)) == 0;
    case cJSON_Array: {
        const cJSON *x = a->child;
        const cJSON *y = b->child;
        for (; x != NULL && y != NULL; x = x->next, y = y->next) {
            if (!json_equal(x, y)) {
                return false;
            }
        }
        return x == NULL && y == NULL;
    }
    case cJSON_Object: {
        struct json_members ma;
        struct json_members mb;
        bool eq;
        json_members_begin(&ma, a, NULL, NULL);
        json_members_begin(&mb, b, NULL, NULL);
        eq = ma.count == mb.count;
        for (size_t i = 0; eq && i < ma.count; i++) {
            const cJSON *x = json_members_at(&ma, i);
            const cJSON *y = json_members_at(&mb, i);
            eq = strcmp(key_of(x), key_of(y)) == 0 && json_equal(x, y);
        }
        json_members_end(&mb);
        json_members_end(&ma);
        return eq;
    }
    default:
        return true; /* null, false, true: the kind says it all */
    }
}

/* ---- page arena ---------------------------------------------------------- */

#define ARENA_BLOCK (1u << 20)

struct arena_block {
    char *mem;
    size_t size;
    size_t used;
};

/*
 * Per thread: cJSON's hooks are process-wide, but the arena is the loop
 * thread's. A libuv pool thread (the token store's save builds its JSON
 * there) sees an arena that was never installed, so its allocations and
 * frees go straight to malloc and free, never into the loop's page arena
 * (which the loop resets under it).
 */
static _Thread_local struct {
    bool installed;
    bool active;        /* allocations go to the arena */
    cJSON *tree;        /* the live arena tree, if any */
    struct arena_block *blocks;
    size_t nblocks;
    size_t current;
} arena;

static bool in_arena(const void *p)
{
    const char *c = p;
    for (size_t i = 0; i < arena.nblocks; i++) {
        if (c >= arena.blocks[i].mem && c < arena.blocks[i].mem + arena.blocks[i].size) {
            return true;
        }
    }
    return false;
}

static void *arena_alloc(size_t size)
{
    size = (size + 15) & ~(size_t)15;
    while (arena.current < arena.nblocks) {
        struct arena_block *b = &arena.blocks[arena.current];
        if (b->size - b->used >= size) {
            void *p = b->mem + b->used;
            b->used += size;
            return p;
        }
        arena.current++;
    }
    size_t bsize = size > ARENA_BLOCK ? size : ARENA_BLOCK;
    arena.blocks = xrealloc(arena.blocks, (arena.nblocks + 1) * sizeof(*arena.blocks));
    struct arena_block *b = &arena.blocks[arena.nblocks++];
    b->mem = xmalloc(bsize);
    b->size = bsize;
    b->used = size;
    arena.current = arena.nblocks - 1;
    return b->mem;
}

static void *hook_malloc(size_t size)
{
    return arena.active ? arena_alloc(size) : malloc(size);
}

static void hook_free(void *p)
{
    if (p != NULL && arena.nblocks > 0 && in_arena(p)) {
        return; /* released with the whole arena */
    }
    free(p);
}

static void arena_release_all(void)
{
    if (arena.tree != NULL) {
        return;
    }
    for (size_t i = 0; i < arena.nblocks; i++) {
        free(arena.blocks[i].mem);
    }
    free(arena.blocks);
    arena.blocks = NULL;
    arena.nblocks = 0;
    arena.current = 0;
}

void json_arena_install(void)
{
    if (arena.installed) {
        return;
    }
    cJSON_Hooks hooks = {.malloc_fn = hook_malloc, .free_fn = hook_free};
    cJSON_InitHooks(&hooks);
    arena.installed = true;
}

static void arena_reset(void)
{
    for (size_t i = 0; i < arena.nblocks; i++) {
        arena.blocks[i].used = 0;
    }
    arena.current = 0;
    /* Keep the blocks of an ordinary page; give back what a huge one took. */
    while (arena.nblocks > 8) {
        free(arena.blocks[--arena.nblocks].mem);
    }
}

int json_parse_arena(const char *data, size_t len, cJSON **out, size_t *err_offset)
{
    if (!arena.installed || arena.tree != NULL) {
        return json_parse(data, len, out, err_offset);
    }
    arena.active = true;
    int rc = json_parse(data, len, out, err_offset);
    arena.active = false;
    if (rc == 0) {
        arena.tree = *out;
    } else {
        arena_reset();
    }
    return rc;
}

void json_arena_free(cJSON *root)
{
    if (root == NULL) {
        return;
    }
    if (root != arena.tree) {
        cJSON_Delete(root);
        return;
    }
    /* Every node is in the arena: there is nothing to free one by one. */
    arena.tree = NULL;
    arena_reset();
}

/* ---- number syntax ---------------------------------------------------------- */

size_t json_scan_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-') {
        i++;
    }
    if (i < n && s[i] == '0') {
        i++;
    } else if (i < n && s[i] >= '1' && s[i] <= '9') {
        while (i < n && ascii_is_digit(s[i])) {
            i++;
        }
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        size_t j = i + 1;
        while (j < n && ascii_is_digit(s[j])) {
            j++;
        }
        if (j == i + 1) {
            return 0;
        }
        i = j;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-')) {
            j++;
        }
        size_t k = j;
        while (k < n && ascii_is_digit(s[k])) {
            k++;
        }
        if (k == j) {
            return 0;
        }
        i = k;
    }
    return i;
}

cJSON *json_number_from_text(const char *s)
{
    size_t len = strlen(s);
    cJSON *n = NULL;
    if (len == 0 || json_scan_number(s, len) != len || json_parse(s, len, &n, NULL) != 0) {
        return NULL;
    }
    if (!isfinite(n->valuedouble)) {
        cJSON_Delete(n); /* "1e999": an overflow to infinity */
        return NULL;
    }
    return n;
}

/*
 * test_hash: known-answer vectors (XXH3-128 and XXH3-64, seed 0, from the
 * xxHash reference sanity vectors; the legacy MurmurHash3_x64_128, seed 0,
 * checked against an independent Python reference and the published mmh3
 * examples), determinism, streaming == one-shot for every split (both
 * algorithms), hash_u64 framing, avalanche of single-bit flips into both
 * halves, and no collisions on a large table of near-identical inputs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "util.h"
#include "testlib.h"

/* The algorithm the generic tests below exercise (both, in turn). */
static bool g_legacy;

static void start(struct hash_state *st)
{
    if (g_legacy) {
        hash_init_legacy(st);
    } else {
        hash_init(st);
    }
}

static struct hash128 oneshot(const void *data, size_t len)
{
    struct hash_state st;
    struct hash128 h;
    start(&st);
    hash_update(&st, data, len);
    hash_final(&st, &h);
    return h;
}

/* xxHash's sanity buffer (sanity_test_vectors.h): bytes of a PRIME64 LCG. */
static void fill_sanity(uint8_t *b, size_t len)
{
    uint64_t gen = 2654435761U;
    for (size_t i = 0; i < len; i++) {
        b[i] = (uint8_t)(gen >> 56);
        gen *= 11400714785074694797ULL;
    }
}

static void test_xxh3_known_answers(void)
{
    static uint8_t buf[2367];
    static const struct {
        const char *msg; /* NULL: first len bytes of the sanity buffer */
        size_t len;
        uint64_t lo, hi;
    } v128[] = {
        {"", 0, 0x6001c324468d497fULL, 0x99aa06d3014798d8ULL},
        {"a", 1, 0xe6c632b61e964e1fULL, 0xa96faf705af16834ULL},
        {"abc", 3, 0x78af5f94892f3950ULL, 0x06b05ab6733a6185ULL},
        {NULL, 1, 0xC44BDFF4074EECDBULL, 0xA6CD5E9392000F6AULL},
        {NULL, 3, 0x54247382A8D6B94DULL, 0x20EFC49FF02422EAULL},
        {NULL, 8, 0x64C69CAB4BB21DC5ULL, 0x47A7F080D82BB456ULL},
        {NULL, 17, 0xABBC12D11973D7DBULL, 0x955FA78643ED3669ULL},
        {NULL, 128, 0xEBB15E34A7FB5AB1ULL, 0x39992220E045260AULL},
        {NULL, 129, 0x86C9E3BC8F0A3B5CULL, 0x03815FC91F1B30B6ULL},
        {NULL, 240, 0x5C9AAE94C8EBE5A0ULL, 0xAA4202DAA2769DC8ULL},
    };
    static const struct {
        size_t len;
        uint64_t h;
    } v64[] = {
        {0, 0x2D06800538D394C2ULL},  {1, 0xC44BDFF4074EECDBULL},  {6, 0x27B56A84CD2D7325ULL},
        {12, 0xA713DAF0DFBB77E7ULL}, {24, 0xA3FE70BF9D3510EBULL}, {195, 0xCD94217EE362EC3AULL},
    };

    fill_sanity(buf, sizeof(buf));
    g_legacy = false;
    for (size_t i = 0; i < ARRAY_SIZE(v128); i++) {
        const void *m = v128[i].msg ? (const void *)v128[i].msg : (const void *)buf;
        struct hash128 h = oneshot(m, v128[i].len);
        CHECK(h.lo == v128[i].lo);
        CHECK(h.hi == v128[i].hi);
        struct hash128 h2;
        hash128_bytes(m, v128[i].len, &h2);
        CHECK(hash128_eq(&h, &h2));
    }
    for (size_t i = 0; i < ARRAY_SIZE(v64); i++) {
        CHECK(hash64_bytes(buf, v64[i].len) == v64[i].h);
    }
    /* Long inputs (XXH3's stripes and its 256-byte stream buffer): the
     * streaming digest equals the one-shot one for every length. */
    int mismatches = 0;
    for (size_t len = 0; len <= sizeof(buf); len += (len < 1100 ? 1 : 97)) {
        struct hash128 want;
        hash128_bytes(buf, len, &want);
        struct hash_state st;
        struct hash128 got;
        hash_init(&st);
        size_t a = len / 3;
        hash_update(&st, buf, a);
        hash_update(&st, buf + a, len - a);
        hash_final(&st, &got);
        if (!hash128_eq(&got, &want)) {
            mismatches++;
        }
    }
    CHECK_INT(mismatches, 0);
}

static void test_legacy_known_answers(void)
{
    static uint8_t seq[255];
    static const struct {
        const char *msg; /* NULL: first len bytes of seq */
        size_t len;
        uint64_t lo, hi;
    } cases[] = {
        {"", 0, 0x0000000000000000ULL, 0x0000000000000000ULL},
        {"a", 1, 0x85555565f6597889ULL, 0xe6b53a48510e895aULL},
        {"abc", 3, 0xb4963f3f3fad7867ULL, 0x3ba2744126ca2d52ULL},
        /* mmh3.hash_bytes(b'foo') == b'aE\xf5\x01W\x86q\xe2\x87}\xba+\xe4\x87\xaf~' */
        {"foo", 3, 0xe271865701f54561ULL, 0x7eaf87e42bba7d87ULL},
        {"The quick brown fox jumps over the lazy dog", 43, 0xe34bbc7bbc071b6cULL,
         0x7a433ca9c49a9347ULL},
        {NULL, 15, 0x47231598fd4925e9ULL, 0xcd846dee88c67de9ULL},
        {NULL, 16, 0x444924b591903f30ULL, 0xab906456762fe845ULL},
        {NULL, 17, 0x5c76f40f9fe7c20eULL, 0xc15f026b9edaa824ULL},
        {NULL, 255, 0x03b09a824269589dULL, 0x85fb67610eedda83ULL},
    };

    for (size_t i = 0; i < sizeof(seq); i++) {
        seq[i] = (uint8_t)i;
    }
    g_legacy = true;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const void *m = cases[i].msg ? (const void *)cases[i].msg : (const void *)seq;
        struct hash128 h = oneshot(m, cases[i].len);
        CHECK(h.lo == cases[i].lo);
        CHECK(h.hi == cases[i].hi);
        /* Determinism: a second run is identical. */
        struct hash128 h2 = oneshot(m, cases[i].len);
        CHECK(hash128_eq(&h, &h2));
    }
}

static void test_streaming(void)
{
    uint8_t msg[100];
    int mismatches = 0;

    for (size_t i = 0; i < sizeof(msg); i++) {
        msg[i] = (uint8_t)(i * 37 + 11);
    }
    for (size_t len = 0; len <= sizeof(msg); len++) {
        struct hash128 want = oneshot(msg, len);
        /* Every three-way split of the first len bytes. */
        for (size_t a = 0; a <= len; a++) {
            for (size_t b = a; b <= len; b += 3) {
                struct hash_state st;
                struct hash128 got;
                start(&st);
                hash_update(&st, msg, a);
                hash_update(&st, NULL, 0);
                hash_update(&st, msg + a, b - a);
                hash_update(&st, msg + b, len - b);
                hash_final(&st, &got);
                if (!hash128_eq(&got, &want)) {
                    mismatches++;
                }
            }
        }
        /* Byte at a time. */
        struct hash_state st;
        struct hash128 got;
        start(&st);
        for (size_t i = 0; i < len; i++) {
            hash_update(&st, msg + i, 1);
        }
        hash_final(&st, &got);
        if (!hash128_eq(&got, &want)) {
            mismatches++;
        }
    }
    CHECK_INT(mismatches, 0);
}

/* hash_final leaves the state usable: final, more input, final == one-shot. */
static void test_final_nondestructive(void)
{
    struct hash_state st;
    struct hash128 mid, mid2, end;
    const char *s = "hello, world: a message longer than one block";
    size_t n = strlen(s);

    start(&st);
    hash_update(&st, s, 20);
    hash_final(&st, &mid);
    hash_final(&st, &mid2);
    CHECK(hash128_eq(&mid, &mid2));
    struct hash128 prefix = oneshot(s, 20);
    CHECK(hash128_eq(&mid, &prefix));
    hash_update(&st, s + 20, n - 20);
    hash_final(&st, &end);
    struct hash128 whole = oneshot(s, n);
    CHECK(hash128_eq(&end, &whole));
}

/* hash_u64(v) == hash_update(LE bytes of v), at every tail offset. */
static void test_u64_framing(void)
{
    static const uint64_t vals[] = {0, 1, 0x0102030405060708ULL, UINT64_MAX, 0x8000000000000000ULL};
    int mismatches = 0;

    for (size_t pre = 0; pre < 20; pre++) {
        for (size_t v = 0; v < ARRAY_SIZE(vals); v++) {
            uint8_t bytes[32];
            memset(bytes, 0xab, pre);
            for (int i = 0; i < 8; i++) {
                bytes[pre + (size_t)i] = (uint8_t)(vals[v] >> (8 * i));
            }
            struct hash128 want = oneshot(bytes, pre + 8);
            struct hash_state st;
            struct hash128 got;
            start(&st);
            hash_update(&st, bytes, pre);
            hash_u64(&st, vals[v]);
            hash_final(&st, &got);
            if (!hash128_eq(&got, &want)) {
                mismatches++;
            }
        }
    }
    CHECK_INT(mismatches, 0);
}

static int popcount64(uint64_t x)
{
    int n = 0;
    while (x) {
        x &= x - 1;
        n++;
    }
    return n;
}

/*
 * Avalanche sanity: flipping any single input bit changes both 64-bit
 * halves, and on average about half of each half's bits (32 +- 2).
 */
static void test_avalanche(void)
{
    uint8_t msg[64];
    long flips_lo = 0;
    long flips_hi = 0;
    long trials = 0;
    int unchanged_half = 0;

    for (size_t len = 1; len <= sizeof(msg); len += 7) {
        for (size_t i = 0; i < len; i++) {
            msg[i] = (uint8_t)(i * 131 + len);
        }
        struct hash128 base = oneshot(msg, len);
        for (size_t bit = 0; bit < len * 8; bit++) {
            msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            struct hash128 h = oneshot(msg, len);
            msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            int dl = popcount64(h.lo ^ base.lo);
            int dh = popcount64(h.hi ^ base.hi);
            if (dl == 0 || dh == 0) {
                unchanged_half++;
            }
            flips_lo += dl;
            flips_hi += dh;
            trials++;
        }
    }
    CHECK_INT(unchanged_half, 0);
    double avg_lo = (double)flips_lo / (double)trials;
    double avg_hi = (double)flips_hi / (double)trials;
    CHECK(avg_lo > 30.0 && avg_lo < 34.0);
    CHECK(avg_hi > 30.0 && avg_hi < 34.0);
}

static int cmp_h128(const void *a, const void *b)
{
    const struct hash128 *x = a;
    const struct hash128 *y = b;
    if (x->lo != y->lo) {
        return x->lo < y->lo ? -1 : 1;
    }
    if (x->hi != y->hi) {
        return x->hi < y->hi ? -1 : 1;
    }
    return 0;
}

/*
 * No trivial collisions: sequential ids, single-byte variants of one record,
 * zero runs of every length (length finalisation), and the empty string.
 */
static void test_near_identical(void)
{
    enum { IDS = 50000, ZEROS = 64 };
    const char *base = "{\"id\":\"l1C08ntBrFjLS0elLIYU\",\"email\":\"a@b.co\",\"tags\":[\"vip\"]}";
    size_t blen = strlen(base);
    size_t cap = IDS + ZEROS + blen * 8 + 1;
    struct hash128 *hs = calloc(cap, sizeof(*hs));
    uint64_t *h64 = calloc(cap, sizeof(*h64));
    size_t n = 0;
    char tmp[128];
    uint8_t zeros[ZEROS] = {0};

    CHECK(hs != NULL && h64 != NULL);
    if (hs == NULL || h64 == NULL) {
        free(hs);
        free(h64);
        return;
    }
    for (int i = 0; i < IDS; i++) {
        int len = snprintf(tmp, sizeof(tmp), "contact-%07d", i);
        hs[n] = oneshot(tmp, (size_t)len);
        h64[n++] = hash64_bytes(tmp, (size_t)len);
    }
    for (size_t z = 0; z <= ZEROS - 1; z++) {
        hs[n] = oneshot(zeros, z + 1);
        h64[n++] = hash64_bytes(zeros, z + 1);
    }
    memcpy(tmp, base, blen);
    for (size_t pos = 0; pos < blen; pos++) {
        for (int bit = 0; bit < 8; bit++) {
            tmp[pos] = (char)(base[pos] ^ (1 << bit));
            hs[n] = oneshot(tmp, blen);
            h64[n++] = hash64_bytes(tmp, blen);
        }
        tmp[pos] = base[pos];
    }
    hs[n] = oneshot("", 0);
    h64[n++] = hash64_bytes("", 0);

    qsort(hs, n, sizeof(*hs), cmp_h128);
    int dup128 = 0;
    for (size_t i = 1; i < n; i++) {
        if (hash128_eq(&hs[i - 1], &hs[i])) {
            dup128++;
        }
    }
    CHECK_INT(dup128, 0);
    /* 64-bit: reuse the 128-bit comparator with hi = 0. */
    for (size_t i = 0; i < n; i++) {
        hs[i].lo = h64[i];
        hs[i].hi = 0;
    }
    qsort(hs, n, sizeof(*hs), cmp_h128);
    int dup64 = 0;
    for (size_t i = 1; i < n; i++) {
        if (hs[i - 1].lo == hs[i].lo) {
            dup64++;
        }
    }
    CHECK_INT(dup64, 0);
    free(hs);
    free(h64);
}

int main(void)
{
    test_xxh3_known_answers();
    test_legacy_known_answers();
    for (int legacy = 0; legacy <= 1; legacy++) {
        g_legacy = legacy != 0;
        test_streaming();
        test_final_nondestructive();
        test_u64_framing();
        test_avalanche();
        test_near_identical();
    }
    return test_done("hash");
}

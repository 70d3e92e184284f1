/*
 * hash: see hash.h for the algorithm and its properties. XXH3 comes from
 * libxxhash; below it, the format-1 MurmurHash3 kept to read old snapshots.
 */
#include "hash.h"

#include <string.h>

#define C1 0x87c37b91114253d5ULL
#define C2 0x4cf5ad432745937fULL

static inline uint64_t rotl64(uint64_t x, unsigned r)
{
    return (x << r) | (x >> (64 - r));
}

/* Explicit little-endian load: compilers turn this into one mov on x86/arm64. */
static inline uint64_t load_le64(const uint8_t *p)
{
    return (uint64_t)p[0] | ((uint64_t)p[1] << 8) | ((uint64_t)p[2] << 16) |
           ((uint64_t)p[3] << 24) | ((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) |
           ((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
}

static inline void store_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static inline void block(uint64_t *h1p, uint64_t *h2p, uint64_t k1, uint64_t k2)
{
    uint64_t h1 = *h1p;
    uint64_t h2 = *h2p;

    k1 *= C1;
    k1 = rotl64(k1, 31);
    k1 *= C2;
    h1 ^= k1;
    h1 = rotl64(h1, 27);
    h1 += h2;
    h1 = h1 * 5 + 0x52dce729;

    k2 *= C2;
    k2 = rotl64(k2, 33);
    k2 *= C1;
    h2 ^= k2;
    h2 = rotl64(h2, 31);
    h2 += h1;
    h2 = h2 * 5 + 0x38495ab5;

    *h1p = h1;
    *h2p = h2;
}

static void mm_init(struct hash_murmur *st)
{
    st->h1 = 0;
    st->h2 = 0;
    st->total = 0;
    st->tail_len = 0;
}

static void mm_update(struct hash_murmur *st, const void *data, size_t len)
{
    const uint8_t *p = data;

    if (len == 0) {
        return;
    }
    st->total += len;
    if (st->tail_len > 0) {
        size_t take = 16 - st->tail_len;
        if (take > len) {
            take = len;
        }
        memcpy(st->tail + st->tail_len, p, take);
        st->tail_len += take;
        p += take;
        len -= take;
        if (st->tail_len < 16) {
            return;
        }
        block(&st->h1, &st->h2, load_le64(st->tail), load_le64(st->tail + 8));
        st->tail_len = 0;
    }
    /* Whole blocks straight from the input, lanes kept in registers. */
    if (len >= 16) {
        uint64_t h1 = st->h1;
        uint64_t h2 = st->h2;
        while (len >= 16) {
            block(&h1, &h2, load_le64(p), load_le64(p + 8));
            p += 16;
            len -= 16;
        }
        st->h1 = h1;
        st->h2 = h2;
    }
    if (len > 0) {
        memcpy(st->tail, p, len);
        st->tail_len = len;
    }
}

static void mm_u64(struct hash_murmur *st, uint64_t v)
{
    /*
     * Hot path of json_hash_update (every node header is one u64): when the
     * word fits in the pending tail, store it without the generic loop.
     */
    if (st->tail_len <= 8) {
        store_le64(st->tail + st->tail_len, v);
        st->tail_len += 8;
        st->total += 8;
        if (st->tail_len == 16) {
            block(&st->h1, &st->h2, load_le64(st->tail), load_le64(st->tail + 8));
            st->tail_len = 0;
        }
        return;
    }
    uint8_t b[8];
    store_le64(b, v);
    mm_update(st, b, sizeof(b));
}

static void mm_final(const struct hash_murmur *st, struct hash128 *out)
{
    uint64_t h1 = st->h1;
    uint64_t h2 = st->h2;
    uint64_t k1 = 0;
    uint64_t k2 = 0;
    const uint8_t *t = st->tail;
    size_t n = st->tail_len;

    /* Tail: bytes 8..15 feed lane 2, bytes 0..7 lane 1 (zero-padded words). */
    if (n > 8) {
        for (size_t i = n; i > 8; i--) {
            k2 = (k2 << 8) | t[i - 1];
        }
        k2 *= C2;
        k2 = rotl64(k2, 33);
        k2 *= C1;
        h2 ^= k2;
    }
    if (n > 0) {
        size_t m = n > 8 ? 8 : n;
        for (size_t i = m; i > 0; i--) {
            k1 = (k1 << 8) | t[i - 1];
        }
        k1 *= C1;
        k1 = rotl64(k1, 31);
        k1 *= C2;
        h1 ^= k1;
    }

    h1 ^= st->total;
    h2 ^= st->total;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    h2 += h1;
    out->lo = h1;
    out->hi = h2;
}

/* ---- the public API: XXH3, or the legacy digest when asked ---------------- */

void hash_init(struct hash_state *st)
{
    st->legacy = false;
    XXH3_128bits_reset(&st->xxh);
}

void hash_init_legacy(struct hash_state *st)
{
    st->legacy = true;
    mm_init(&st->mm);
}

void hash_update(struct hash_state *st, const void *data, size_t len)
{
    if (len == 0) {
        return;
    }
    if (st->legacy) {
        mm_update(&st->mm, data, len);
        return;
    }
    XXH3_128bits_update(&st->xxh, data, len);
}

void hash_u64(struct hash_state *st, uint64_t v)
{
    if (st->legacy) {
        mm_u64(&st->mm, v);
        return;
    }
    uint8_t b[8];
    store_le64(b, v);
    XXH3_128bits_update(&st->xxh, b, sizeof(b));
}

void hash_final(const struct hash_state *st, struct hash128 *out)
{
    if (st->legacy) {
        mm_final(&st->mm, out);
        return;
    }
    XXH128_hash_t h = XXH3_128bits_digest(&st->xxh);
    out->lo = h.low64;
    out->hi = h.high64;
}

void hash128_bytes(const void *data, size_t len, struct hash128 *out)
{
    XXH128_hash_t h = XXH3_128bits(len > 0 ? data : "", len);
    out->lo = h.low64;
    out->hi = h.high64;
}

uint64_t hash64_bytes(const void *data, size_t len)
{
    return XXH3_64bits(len > 0 ? data : "", len);
}

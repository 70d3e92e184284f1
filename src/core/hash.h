/*
 * hash: a fast, non-cryptographic, 128-bit streaming hash used for change
 * detection (record content hashes stored in the LMDB snapshot) and a 64-bit
 * one-shot variant for hash sets of ids.
 *
 * Algorithm: MurmurHash3_x64_128 with seed 0 (Austin Appleby's public-domain
 * design, re-implemented here from the published algorithm and cross-checked
 * against an independent reference in the unit test). Two 64-bit lanes absorb
 * 16-byte blocks as two little-endian 8-byte words; each word goes through a
 * multiply-rotate-multiply before being xored into its lane, and the lanes
 * are rotated, cross-added and multiplied after every block, so every input
 * bit reaches both halves. The tail (< 16 bytes) is mixed the same way and the
 * total length is folded in before the fmix64 xorshift-multiply finaliser,
 * so inputs of different lengths that share a prefix do not collide.
 *
 * Properties relied on:
 *   - Deterministic across runs, hosts and endianness (words are read
 *     little-endian explicitly). The value is PERSISTED in snapshots: never
 *     change the algorithm without bumping the snapshot format version.
 *   - Streaming: any split of the input into hash_update calls yields the
 *     same result as one call over the concatenation. hash_u64(v) is exactly
 *     hash_update of the 8 little-endian bytes of v.
 *   - Good avalanche (passes SMHasher): a one-bit input change flips about
 *     half of the output bits of both 64-bit halves.
 *   - NOT collision resistant against an adversary: someone who controls a
 *     record's content could craft two versions with equal hashes and so
 *     hide one change. Accidental collisions are ~2^-128 per pair. Use
 *     sha256 where an attacker must not find collisions (event ids).
 *   - Speed: ~5.8 GB/s on long inputs (2.5 GHz Xeon here); per-call overhead
 *     is a few dozen instructions, so feeding many small pieces is cheap.
 *
 * Owns: nothing; the state is a caller-embedded value type, no allocation.
 * Thread context: pure; safe on any thread.
 */
#ifndef POLLEN_HASH_H
#define POLLEN_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hash128 {
    uint64_t lo;
    uint64_t hi;
};

/* Streaming state. Fields are private; embed it and use the functions. */
struct hash_state {
    uint64_t h1;
    uint64_t h2;
    uint64_t total;    /* bytes absorbed */
    size_t tail_len;   /* bytes pending in tail, < 16 */
    uint8_t tail[16];
};

void hash_init(struct hash_state *st);
/* Absorbs len bytes (data may be NULL when len is 0). */
void hash_update(struct hash_state *st, const void *data, size_t len);
/* Absorbs v as 8 little-endian bytes (same as hash_update of those bytes). */
void hash_u64(struct hash_state *st, uint64_t v);
/* Writes the digest. The state is left unchanged, so more input may follow. */
void hash_final(const struct hash_state *st, struct hash128 *out);

static inline bool hash128_eq(const struct hash128 *a, const struct hash128 *b)
{
    return a->lo == b->lo && a->hi == b->hi;
}

/* One-shot 64-bit hash (the low half of the 128-bit digest), for hash sets. */
uint64_t hash64_bytes(const void *data, size_t len);

#endif

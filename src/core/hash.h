/*
 * hash: a fast, non-cryptographic, 128-bit streaming hash used for change
 * detection (record content hashes and raw-bytes hashes stored in the LMDB
 * snapshot) and a 64-bit one-shot variant for hash sets of ids.
 *
 * Algorithm: XXH3-128 with seed 0 and the default secret, from Debian's
 * libxxhash (the reference implementation; tens of GB/s on long inputs,
 * SIMD where the CPU has it). hash64_bytes is XXH3-64, seed 0.
 *
 * Legacy: snapshot format 1 stored MurmurHash3_x64_128 (seed 0) digests of
 * the same feeds. hash_init_legacy selects that algorithm (re-implemented
 * here from the published design, checked against known answers in the unit
 * test) so that format-1 entries can be compared exactly while they are
 * migrated (diff.h); nothing new is ever hashed with it.
 *
 * Properties relied on:
 *   - Deterministic across runs, hosts and endianness (XXH3 reads its input
 *     little-endian on every host; the legacy code does so explicitly). The
 *     value is PERSISTED in snapshots: never change the algorithm without
 *     bumping the snapshot format version (DIFF_SNAP_FORMAT) and migrating.
 *   - Streaming: any split of the input into hash_update calls yields the
 *     same result as one call over the concatenation. hash_u64(v) is exactly
 *     hash_update of the 8 little-endian bytes of v.
 *   - Good avalanche (both pass SMHasher): a one-bit input change flips about
 *     half of the output bits of both 64-bit halves.
 *   - NOT collision resistant against an adversary: someone who controls a
 *     record's content could craft two versions with equal hashes and so
 *     hide one change. Accidental collisions are ~2^-128 per pair. Use
 *     sha256 where an attacker must not find collisions (event ids).
 *   - Per-call overhead is a few dozen instructions (a copy into the state's
 *     buffer), so feeding many small pieces is cheap; json.c still batches.
 *
 * Owns: nothing; the state is a caller-embedded value type, no allocation.
 *   It is 64-byte aligned (XXH3's accumulators): declare it on the stack or
 *   in static storage; a heap copy needs aligned_alloc.
 * Thread context: pure; safe on any thread.
 */
#ifndef POLLEN_HASH_H
#define POLLEN_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t's layout, to embed it */
#include <xxhash.h>

struct hash128 {
    uint64_t lo;
    uint64_t hi;
};

/* Format-1 (MurmurHash3) streaming state; private. */
struct hash_murmur {
    uint64_t h1;
    uint64_t h2;
    uint64_t total;    /* bytes absorbed */
    size_t tail_len;   /* bytes pending in tail, < 16 */
    uint8_t tail[16];
};

/* Streaming state. Fields are private; embed it and use the functions. */
struct hash_state {
    XXH3_state_t xxh;
    struct hash_murmur mm;
    bool legacy;  /* hash_init_legacy: the format-1 MurmurHash3 */
};

/* Starts an XXH3-128 digest. */
void hash_init(struct hash_state *st);
/* Starts a format-1 MurmurHash3_x64_128 digest (reading old snapshots only). */
void hash_init_legacy(struct hash_state *st);
/* Absorbs len bytes (data may be NULL when len is 0). */
void hash_update(struct hash_state *st, const void *data, size_t len);
/* Absorbs v as 8 little-endian bytes (same as hash_update of those bytes). */
void hash_u64(struct hash_state *st, uint64_t v);
/* Writes the digest (lo/hi: XXH128_hash_t's low64/high64). The state is
 * left unchanged, so more input may follow. */
void hash_final(const struct hash_state *st, struct hash128 *out);

static inline bool hash128_eq(const struct hash128 *a, const struct hash128 *b)
{
    return a->lo == b->lo && a->hi == b->hi;
}

/* One-shot XXH3-128 of data (the same digest as init/update/final). */
void hash128_bytes(const void *data, size_t len, struct hash128 *out);

/* One-shot XXH3-64 of data, for in-memory hash sets (never persisted). */
uint64_t hash64_bytes(const void *data, size_t len);

#endif

/*
 * sha256: SHA-256 (FIPS 180-4), self-contained so the engine needs no
 * crypto library for event ids and id hashing.
 *
 * Owns: nothing beyond the caller's context; no allocation, no globals.
 * Invariants: a context is used as init -> update* -> final; after final
 * the context is wiped and must be re-initialised before reuse. Input
 * length is tracked in bits as a 64-bit counter (messages < 2^61 bytes).
 * Thread context: pure functions on caller-owned state; safe on any thread.
 * Not constant-time in any sense that matters for secrets: use it for ids
 * and fingerprints, not for MACs on attacker-timed paths.
 */
#ifndef POLLEN_SHA256_H
#define POLLEN_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_BLOCK_LEN 64

struct sha256_ctx {
    uint32_t h[8];
    uint64_t total;                  /* bytes absorbed so far */
    uint8_t block[SHA256_BLOCK_LEN]; /* pending partial block */
    size_t block_len;
};

void sha256_init(struct sha256_ctx *ctx);
/* Absorbs len bytes (data may be NULL when len is 0). */
void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len);
/* Writes the 32-byte digest and wipes the context. */
void sha256_final(struct sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_LEN]);
/* One-shot digest as 64 lowercase hex characters plus NUL. */
void sha256_hex(const void *data, size_t len, char out[65]);

#endif

/*
 * sha256: SHA-256 (FIPS 180-4) for event ids, id hashing and token
 * fingerprints, computed by OpenSSL's libcrypto (a thin wrapper: pollen
 * keeps no digest code of its own).
 *
 * Owns: the libcrypto digest context between sha256_init and sha256_final;
 * the SHA-256 method fetched once per process.
 * Invariants: a context is used as init -> update* -> final, and every init
 * is followed by exactly one final (final frees what init allocated); after
 * final the context must be re-initialised before reuse. A libcrypto failure
 * (out of memory, no SHA-256 provider) aborts, as x*alloc does.
 * Thread context: safe on any thread; a context is used by one thread at a
 * time.
 * Use it for ids and fingerprints, not for MACs on attacker-timed paths.
 */
#ifndef POLLEN_SHA256_H
#define POLLEN_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_BLOCK_LEN 64

struct evp_md_ctx_st; /* libcrypto's EVP_MD_CTX */

struct sha256_ctx {
    struct evp_md_ctx_st *md; /* owned from init to final */
};

void sha256_init(struct sha256_ctx *ctx);
/* Absorbs len bytes (data may be NULL when len is 0). */
void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len);
/* Writes the 32-byte digest and frees the context. */
void sha256_final(struct sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_LEN]);
/* One-shot digest as 64 lowercase hex characters plus NUL. */
void sha256_hex(const void *data, size_t len, char out[65]);

#endif

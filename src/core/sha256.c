/*
 * sha256: see sha256.h. The digest itself is libcrypto's (EVP interface);
 * this file only adapts it to the void-returning API the callers use.
 *
 * The method is fetched explicitly, once: passing EVP_sha256() to
 * EVP_DigestInit_ex makes OpenSSL 3 look the provider up again on every
 * init, which costs more than hashing a short event id.
 */
#include "sha256.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fail(const char *what)
{
    fprintf(stderr, "pollen: libcrypto SHA-256 %s failed\n", what);
    abort();
}

static void fetch_md(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *md(void)
{
    pthread_once(&sha256_once, fetch_md);
    if (sha256_md == NULL) {
        fail("fetch");
    }
    return sha256_md;
}

void sha256_init(struct sha256_ctx *ctx)
{
    ctx->md = EVP_MD_CTX_new();
    if (ctx->md == NULL || EVP_DigestInit_ex(ctx->md, md(), NULL) != 1) {
        fail("init");
    }
}

void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len)
{
    if (len > 0 && EVP_DigestUpdate(ctx->md, data, len) != 1) {
        fail("update");
    }
}

void sha256_final(struct sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_LEN])
{
    if (EVP_DigestFinal_ex(ctx->md, out, NULL) != 1) {
        fail("final");
    }
    EVP_MD_CTX_free(ctx->md);
    ctx->md = NULL;
}

void sha256_hex(const void *data, size_t len, char out[65])
{
    static const char hexdig[] = "0123456789abcdef";
    uint8_t d[SHA256_DIGEST_LEN];

    /* EVP_Digest hashes "" for NULL data with len 0, like update. */
    if (EVP_Digest(len > 0 ? data : "", len, d, NULL, md(), NULL) != 1) {
        fail("digest");
    }
    for (int i = 0; i < SHA256_DIGEST_LEN; i++) {
        out[2 * i] = hexdig[d[i] >> 4];
        out[2 * i + 1] = hexdig[d[i] & 15];
    }
    out[64] = '\0';
}

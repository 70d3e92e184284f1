/*
 * test_sha256: FIPS 180-4 / NIST example vectors, padding boundaries, and
 * streaming in arbitrary splits equal to one-shot.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "testlib.h"

static void hex_of(const uint8_t *d, char out[65])
{
    static const char hexdig[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hexdig[d[i] >> 4];
        out[2 * i + 1] = hexdig[d[i] & 15];
    }
    out[64] = '\0';
}

/* Digest of n copies of byte c, fed in chunks of `chunk` bytes. */
static void digest_repeat(char c, size_t n, size_t chunk, char out[65])
{
    struct sha256_ctx ctx;
    uint8_t piece[1000];
    uint8_t d[32];

    memset(piece, c, sizeof(piece));
    sha256_init(&ctx);
    while (n > 0) {
        size_t take = n < chunk ? n : chunk;
        sha256_update(&ctx, piece, take);
        n -= take;
    }
    sha256_final(&ctx, d);
    hex_of(d, out);
}

static void test_vectors(void)
{
    static const struct {
        const char *msg;
        const char *hex;
    } cases[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        /* 448-bit message (two-block padding). */
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        /* 896-bit message. */
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrl"
         "mnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    char hex[65];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sha256_hex(cases[i].msg, strlen(cases[i].msg), hex);
        CHECK_STR(hex, cases[i].hex);
    }
    /* NULL with length 0 is the empty message. */
    sha256_hex(NULL, 0, hex);
    CHECK_STR(hex, cases[0].hex);
}

static void test_million_a(void)
{
    char hex[65];
    const char *want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

    /* Odd chunk sizes exercise the partial-block path on every call. */
    static const size_t chunks[] = {1000000, 1000, 997, 64, 63, 1};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        if (chunks[i] > 1000) {
            char *m = malloc(1000000);
            CHECK(m != NULL);
            if (m == NULL) {
                continue;
            }
            memset(m, 'a', 1000000);
            sha256_hex(m, 1000000, hex);
            free(m);
        } else {
            digest_repeat('a', 1000000, chunks[i], hex);
        }
        CHECK_STR(hex, want);
    }
}

/* Lengths around the 55/56/64-byte padding boundaries (reference: Python hashlib). */
static void test_padding_boundaries(void)
{
    static const struct {
        size_t n;
        const char *hex;
    } cases[] = {
        {55, "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072"},
        {56, "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e"},
        {57, "ae14a2563ccf969d99aca69ce6bb74981f734bbf9f655f73b8f06db68cab5217"},
        {63, "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2"},
        {64, "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c"},
        {65, "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9"},
        {119, "000b48d4edf0fa7bee3c6236ecd2785baa5db4eeb8bb54341b029e0d9fa5fb0c"},
        {120, "13f05a0b594787f5ecd315edc96141bd3243203d1b7d4f0836f37308b276ba98"},
    };
    char hex[65];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        digest_repeat('x', cases[i].n, 1000, hex);
        CHECK_STR(hex, cases[i].hex);
        digest_repeat('x', cases[i].n, 7, hex);
        CHECK_STR(hex, cases[i].hex);
    }
}

/* Every two-way split of a 256*4-byte message gives the one-shot digest. */
static void test_streaming_splits(void)
{
    uint8_t msg[1024];
    char want[65];
    char got[65];
    uint8_t d[32];
    int mismatches = 0;

    for (size_t i = 0; i < sizeof(msg); i++) {
        msg[i] = (uint8_t)i;
    }
    sha256_hex(msg, sizeof(msg), want);
    CHECK_STR(want, "785b0751fc2c53dc14a4ce3d800e69ef9ce1009eb327ccf458afe09c242c26c9");
    for (size_t split = 0; split <= sizeof(msg); split++) {
        struct sha256_ctx ctx;
        sha256_init(&ctx);
        sha256_update(&ctx, msg, split);
        sha256_update(&ctx, NULL, 0);
        sha256_update(&ctx, msg + split, sizeof(msg) - split);
        sha256_final(&ctx, d);
        hex_of(d, got);
        if (strcmp(got, want) != 0) {
            mismatches++;
        }
    }
    CHECK_INT(mismatches, 0);
}

int main(void)
{
    test_vectors();
    test_million_a();
    test_padding_boundaries();
    test_streaming_splits();
    return test_done("sha256");
}

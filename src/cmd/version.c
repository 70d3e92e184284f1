/*
 * version: see version.h.
 *
 * Runtime versions come from the libraries themselves where they offer a
 * call (a distribution upgrade changes them under the same binary); inih
 * has none, so its version is the one meson found at build time. The
 * build's features come from the same macros the code is compiled with
 * (meson.build's project arguments), never from a second copy.
 */
#include "version.h"
#include "paths.h"

#include <cJSON.h>
#include <curl/curl.h>
#include <lmdb.h>
#include <openssl/crypto.h>
#include <uv.h>
#include <xxhash.h>

#ifndef POLLEN_INIH_VERSION
#define POLLEN_INIH_VERSION "unknown"
#endif

/* meson's b_sanitize ("none", "address,undefined", ...); "unknown" for a
 * build outside meson, which the compiler's own macros may still reveal. */
#ifndef POLLEN_SANITIZE
#if defined(__SANITIZE_ADDRESS__)
#define POLLEN_SANITIZE "address"
#else
#define POLLEN_SANITIZE "unknown"
#endif
#endif

#if defined(POLLEN_FAILPOINTS) && POLLEN_FAILPOINTS
#define FAILPOINTS "on"
#else
#define FAILPOINTS "off"
#endif

void version_print(FILE *out)
{
    const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
    int major = 0, minor = 0, patch = 0;
    (void)mdb_version(&major, &minor, &patch);
    unsigned xxh = XXH_versionNumber();
    fprintf(out, "pollen %s\n", POLLEN_VERSION);
    fprintf(out, "failpoints %s\n", FAILPOINTS);
    fprintf(out, "sanitizers %s\n", POLLEN_SANITIZE);
    fprintf(out, "catalog %s\n", paths_catalog_dir()); /* the default this binary reads */
    fprintf(out, "installed %s\n", POLLEN_CATALOG_DIR); /* where meson install puts it */
    fprintf(out, "libuv %s\n", uv_version_string());
    fprintf(out, "libcurl %s%s%s\n", curl->version, curl->ssl_version ? " " : "",
            curl->ssl_version ? curl->ssl_version : "");
    fprintf(out, "libcrypto %s\n", OpenSSL_version(OPENSSL_VERSION));
    fprintf(out, "cJSON %s\n", cJSON_Version());
    fprintf(out, "LMDB %d.%d.%d\n", major, minor, patch);
    fprintf(out, "inih %s (build time)\n", POLLEN_INIH_VERSION);
    fprintf(out, "xxHash %u.%u.%u\n", xxh / 10000, xxh / 100 % 100, xxh % 100);
}

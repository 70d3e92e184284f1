/*
 * test_url: URL parsing and the scheme policy (https, or http only to a
 * loopback host), URL_BARE's checks on typed URLs, the parts a caller gets,
 * and percent-encoding.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "testlib.h"
#include "url.h"
#include "util.h"

#define WEB (URL_HTTP_LOOPBACK | URL_BARE) /* what config's URL keys ask */
#define REDIRECT (WEB | URL_PORT_PATH)     /* config's redirect_uri */

static void test_policy(void)
{
    static const struct {
        const char *url;
        unsigned flags;
        enum url_problem want;
    } cases[] = {
        {"https://services.leadconnectorhq.com", 0, URL_OK},
        {"https://h:8443/v1/x?a=1#f", 0, URL_OK},
        {"HTTPS://H/", 0, URL_OK},
        {"http://127.0.0.1:8080/x", 0, URL_E_SCHEME}, /* http not allowed at all */
        {"http://127.0.0.1:8080/x", URL_HTTP_LOOPBACK, URL_OK},
        {"http://localhost/x", URL_HTTP_LOOPBACK, URL_OK},
        {"http://LocalHost/x", URL_HTTP_LOOPBACK, URL_OK},
        {"http://[::1]:9/x", URL_HTTP_LOOPBACK, URL_OK},
        {"http://127.1:9/x", URL_HTTP_LOOPBACK, URL_OK}, /* libcurl: 127.0.0.1 */
        {"http://example.com/", URL_HTTP_LOOPBACK, URL_E_NOT_LOOPBACK},
        {"http://127.0.0.2/", URL_HTTP_LOOPBACK, URL_E_NOT_LOOPBACK},
        {"http://localhost.example.com/", URL_HTTP_LOOPBACK, URL_E_NOT_LOOPBACK},
        {"ftp://h/", URL_HTTP_LOOPBACK, URL_E_SCHEME},
        {"file:///etc/passwd", URL_HTTP_LOOPBACK, URL_E_SCHEME},
        {"gopher2://h/", 0, URL_E_SYNTAX},
        {"https://", 0, URL_E_HOST},
        {"https://h:65536/", 0, URL_E_PORT},
        {"https://h/a b", 0, URL_E_SYNTAX},
        {"not a url", 0, URL_E_SYNTAX},
        /* URL_BARE: what a user typed into a base URL key. */
        {"https://h", WEB, URL_OK},
        {"https://h:443/base", WEB, URL_OK},
        {"ftp://h/", WEB, URL_E_SCHEME},
        {"h/x", WEB, URL_E_SCHEME},
        {"https://h/a b", WEB, URL_E_EXTRAS},
        {"https://u:p@h/", WEB, URL_E_EXTRAS},
        {"https://h/?q=1", WEB, URL_E_EXTRAS},
        {"https://h/#f", WEB, URL_E_EXTRAS},
        {"https:///x", WEB, URL_E_HOST}, /* libcurl alone reads host x */
        {"https://:80/", WEB, URL_E_HOST},
        {"https://h:/", WEB, URL_E_PORT}, /* libcurl alone reads no port */
        {"https://h:0/", WEB, URL_E_PORT},
        {"https://h:x/", WEB, URL_E_PORT},
        {"https://h:70000/", WEB, URL_E_PORT},
        {"http://example.com/", WEB, URL_E_NOT_LOOPBACK},
        /* What config's tests feed its URL keys (check_web_url is to call url_parse). */
        {"http://example.com", WEB, URL_E_NOT_LOOPBACK},
        {"ftp://127.0.0.1", WEB, URL_E_SCHEME},
        {"http://localhost.evil.test/", WEB, URL_E_NOT_LOOPBACK},
        {"http://localhost@evil.test/", WEB, URL_E_EXTRAS},
        {"https://app.example.com/cb?x=1", REDIRECT, URL_E_EXTRAS},
        {"http://[::1]:70000/cb", REDIRECT, URL_E_PORT},
        {"http://localhost:8976", REDIRECT, URL_E_PORT_PATH},
        /* URL_PORT_PATH: a redirect the CLI listens for. */
        {"http://127.0.0.1:8976/callback", REDIRECT, URL_OK},
        {"https://example.com/callback", REDIRECT, URL_OK},
        {"http://127.0.0.1/callback", REDIRECT, URL_E_PORT_PATH},
        {"http://127.0.0.1:8976/", REDIRECT, URL_E_PORT_PATH},
        {"http://127.0.0.1:8976", REDIRECT, URL_E_PORT_PATH},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct url u;
        enum url_problem p = url_parse(cases[i].url, cases[i].flags, &u);
        if (p != cases[i].want) {
            fprintf(stderr, "case \"%s\" flags %u: %d (%s)\n", cases[i].url, cases[i].flags,
                    (int)p, url_problem_text(p));
        }
        CHECK_INT(p, cases[i].want);
        url_free(&u);
        CHECK(u.scheme == NULL && u.host == NULL && u.path == NULL);
    }
}

static void test_parts(void)
{
    struct url u;
    CHECK_INT(url_parse("http://[::1]:8976/cb/x", URL_HTTP_LOOPBACK, &u), URL_OK);
    CHECK_STR(u.scheme, "http");
    CHECK_STR(u.host, "[::1]");
    CHECK_STR(u.path, "/cb/x");
    CHECK_INT(u.port, 8976);
    CHECK(!u.tls);
    url_free(&u);

    CHECK_INT(url_parse("HTTPS://Api.Example.com", 0, &u), URL_OK);
    CHECK_STR(u.scheme, "https");
    CHECK_STR(u.path, "/");
    CHECK_INT(u.port, 0);
    CHECK(u.tls);
    url_free(&u);

    /* A refused URL still names its scheme and host (for the message). */
    CHECK_INT(url_parse("http://example.com/", 0, &u), URL_E_SCHEME);
    CHECK_STR(u.scheme, "http");
    CHECK_STR(u.host, "example.com");
    url_free(&u);

    CHECK_STR(url_problem_text(URL_E_HOST), "has no host");
    CHECK(url_is_loopback_host("127.0.0.1") && url_is_loopback_host("[::1]"));
    CHECK(!url_is_loopback_host("::1x") && !url_is_loopback_host(NULL));
}

static void test_escape(void)
{
    char *e = url_escape("a b/\xc3\xa9~_-.Z9&=+%");
    CHECK_STR(e, "a%20b%2F%C3%A9~_-.Z9%26%3D%2B%25");
    free(e);
    e = url_escape("");
    CHECK_STR(e, "");
    free(e);

    struct buf b;
    buf_init(&b, 8);
    CHECK_INT(url_append_escaped(&b, "ab", 2), 0);
    CHECK_INT(url_append_escaped(&b, "", 0), 0);
    CHECK_INT(url_append_escaped(&b, "c d", 2), 0); /* only n bytes */
    CHECK_INT(b.len, 6);
    CHECK(b.len == 6 && memcmp(b.data, "abc%20", 6) == 0);
    CHECK_INT(url_append_escaped(&b, "  ", 2), -EFBIG); /* over the cap of 8 */
    buf_finish(&b);
}

int main(void)
{
    test_policy();
    test_parts();
    test_escape();
    return test_done("url");
}

/*
 * url: see url.h. libcurl does the parsing; this file adds the checks a
 * user-typed URL needs that libcurl is lenient about (it reads
 * "https:///x" as host x and "https://h:/" as no port), the scheme policy,
 * and the words for each problem.
 */
#include "url.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "util.h"

static const char *const problem_text[] = {
    [URL_OK] = "is fine",
    [URL_E_SYNTAX] = "is not a valid URL",
    [URL_E_SCHEME] = "must start with https:// (http:// is allowed only for 127.0.0.1, "
                     "localhost and [::1])",
    [URL_E_EXTRAS] = "must not contain spaces, credentials (@), a query (?) or a fragment (#)",
    [URL_E_HOST] = "has no host",
    [URL_E_PORT] = "has a bad port",
    [URL_E_NOT_LOOPBACK] = "must use https:// (http:// is allowed only for 127.0.0.1, "
                           "localhost and [::1])",
    [URL_E_PORT_PATH] = "on a loopback host needs a port and a path, e.g. "
                        "http://127.0.0.1:8976/callback",
};

const char *url_problem_text(enum url_problem p)
{
    if ((size_t)p >= sizeof(problem_text) / sizeof(problem_text[0])) {
        return "is not a valid URL";
    }
    return problem_text[p];
}

bool url_is_loopback_host(const char *host)
{
    static const char *const names[] = {"127.0.0.1", "localhost", "[::1]"};
    for (size_t i = 0; host != NULL && i < ARRAY_SIZE(names); i++) {
        if (strcasecmp(host, names[i]) == 0) {
            return true;
        }
    }
    return false;
}

void url_free(struct url *u)
{
    curl_free(u->scheme);
    curl_free(u->host);
    curl_free(u->path);
    memset(u, 0, sizeof(*u));
}

/* URL_BARE's checks on the text as typed, before libcurl normalises it. */
static enum url_problem check_bare(const char *text)
{
    const char *rest = strstr(text, "://");
    size_t slen = rest != NULL ? (size_t)(rest - text) : 0;
    if (!(slen == 5 && strncasecmp(text, "https", 5) == 0) &&
        !(slen == 4 && strncasecmp(text, "http", 4) == 0)) {
        return URL_E_SCHEME;
    }
    if (strpbrk(text, " \t@?#") != NULL) {
        return URL_E_EXTRAS;
    }
    rest += 3;
    size_t authority = strcspn(rest, "/");
    size_t host = rest[0] == '[' ? strcspn(rest, "]") + 1 : strcspn(rest, ":/");
    if (host == 0 || host > authority) {
        return URL_E_HOST;
    }
    /* Only ":PORT" may follow the host; libcurl reads a bare ":" as no port. */
    if (host < authority && (rest[host] != ':' || authority - host < 2)) {
        return URL_E_PORT;
    }
    return URL_OK;
}

static enum url_problem from_curl(CURLUcode rc)
{
    switch (rc) {
    case CURLUE_OK:
        return URL_OK;
    case CURLUE_NO_HOST:
        return URL_E_HOST;
    case CURLUE_BAD_PORT_NUMBER:
        return URL_E_PORT;
    case CURLUE_OUT_OF_MEMORY:
        fprintf(stderr, "pollen: out of memory parsing a URL\n");
        abort();
    default:
        return URL_E_SYNTAX;
    }
}

/* Fills u from a parsed handle. Returns whether the URL names a port (0 included). */
static bool take_parts(CURLU *h, struct url *u)
{
    bool named = false;
    char *port = NULL;
    if (curl_url_get(h, CURLUPART_SCHEME, &u->scheme, 0) != CURLUE_OK) {
        u->scheme = NULL;
    }
    /* file:// and friends have no host; NULL then fails every check. */
    if (curl_url_get(h, CURLUPART_HOST, &u->host, 0) != CURLUE_OK) {
        u->host = NULL;
    }
    if (curl_url_get(h, CURLUPART_PATH, &u->path, 0) != CURLUE_OK) {
        u->path = NULL;
    }
    if (curl_url_get(h, CURLUPART_PORT, &port, 0) == CURLUE_OK) {
        /* libcurl has checked it is decimal and at most 65535. */
        u->port = (unsigned)strtoul(port, NULL, 10);
        curl_free(port);
        named = true;
    }
    u->tls = u->scheme != NULL && strcmp(u->scheme, "https") == 0;
    return named;
}

/* The scheme policy on parsed parts. */
static enum url_problem check_policy(const struct url *u, unsigned flags)
{
    bool http = u->scheme != NULL && strcmp(u->scheme, "http") == 0;
    if (u->host == NULL || (!u->tls && !http)) {
        return URL_E_SCHEME;
    }
    if (u->tls) {
        return URL_OK;
    }
    if ((flags & URL_HTTP_LOOPBACK) == 0) {
        return URL_E_SCHEME;
    }
    if (!url_is_loopback_host(u->host)) {
        return URL_E_NOT_LOOPBACK;
    }
    if ((flags & URL_PORT_PATH) != 0 &&
        (u->port == 0 || u->path == NULL || strcmp(u->path, "/") == 0)) {
        return URL_E_PORT_PATH;
    }
    return URL_OK;
}

enum url_problem url_parse(const char *text, unsigned flags, struct url *out)
{
    memset(out, 0, sizeof(*out));
    enum url_problem p = (flags & URL_BARE) != 0 ? check_bare(text) : URL_OK;
    if (p != URL_OK) {
        return p;
    }
    CURLU *h = curl_url();
    if (h == NULL) {
        return from_curl(CURLUE_OUT_OF_MEMORY);
    }
    p = from_curl(curl_url_set(h, CURLUPART_URL, text, 0));
    /* libcurl takes port 0; a URL someone typed must not (the transfer would fail). */
    if (p == URL_OK && take_parts(h, out) && out->port == 0 && (flags & URL_BARE) != 0) {
        p = URL_E_PORT;
    }
    curl_url_cleanup(h);
    return p != URL_OK ? p : check_policy(out, flags);
}

char *url_escape(const char *s)
{
    size_t n = strlen(s);
    char *esc = n <= INT_MAX ? curl_easy_escape(NULL, s, (int)n) : NULL;
    if (esc == NULL) {
        fprintf(stderr, "pollen: out of memory escaping %zu bytes\n", n);
        abort();
    }
    char *copy = xstrdup(esc);
    curl_free(esc);
    return copy;
}

int url_append_escaped(struct buf *b, const char *s, size_t n)
{
    if (n == 0) {
        return 0;
    }
    char *esc = n <= INT_MAX ? curl_easy_escape(NULL, s, (int)n) : NULL;
    if (esc == NULL) {
        return -ENOMEM;
    }
    int rc = buf_append_str(b, esc);
    explicit_bzero(esc, strlen(esc));
    curl_free(esc);
    return rc;
}

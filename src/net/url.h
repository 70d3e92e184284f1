/*
 * url: URLs through libcurl's URL API (CURLU): parsing, the scheme policy
 * (https, or plain http only to a loopback host) and percent-encoding.
 * The one list of loopback hosts lives here; the HTTP client, `pollen auth`
 * and config's URL keys all ask this module.
 *
 * Owns: the strings of a struct url between url_parse and url_free.
 * Invariants: a URL passes url_parse only if libcurl parses it the way the
 * transfer will (so the checked host is the one connected to). Loopback
 * means 127.0.0.1, localhost or [::1] (any case), as libcurl normalises
 * the host (http://127.1 is 127.0.0.1). Percent-encoding keeps only
 * A-Z a-z 0-9 - . _ ~ (RFC 3986 unreserved) and writes %XX in upper case.
 * Thread context: safe on any thread (libcurl's URL API keeps no state).
 */
#ifndef POLLEN_URL_H
#define POLLEN_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* What url_parse demands beyond a URL libcurl can parse with an https host. */
enum {
    URL_HTTP_LOOPBACK = 1u << 0, /* http:// is allowed to a loopback host */
    /* A base URL a user typed: no spaces, credentials (@), query (?) or
     * fragment (#); the host right after "//"; a port, when given, 1..65535. */
    URL_BARE = 1u << 1,
    URL_PORT_PATH = 1u << 2, /* http:// also needs an explicit port and a path beyond "/" */
};

/* What is wrong with a URL; url_problem_text says it in words. */
enum url_problem {
    URL_OK = 0,
    URL_E_SYNTAX,       /* libcurl cannot parse it */
    URL_E_SCHEME,       /* neither https:// nor http:// (or http:// not allowed at all) */
    URL_E_EXTRAS,       /* URL_BARE: spaces, credentials, query or fragment */
    URL_E_HOST,         /* no host */
    URL_E_PORT,         /* a port that is not 1..65535 */
    URL_E_NOT_LOOPBACK, /* http:// to a host that is not loopback */
    URL_E_PORT_PATH,    /* URL_PORT_PATH: http:// without a port or a path */
};

struct url {
    char *scheme;  /* lower case, as libcurl gives it; NULL if unparsed */
    char *host;    /* IPv6 in brackets; NULL if unparsed or none (file:) */
    char *path;    /* "/" when the URL has none; without query or fragment */
    unsigned port; /* the port the URL names, or 0 when it names none */
    bool tls;      /* the scheme is https */
};

/*
 * Parses text and applies the policy in flags (URL_* above). Returns URL_OK
 * or the first problem found. *out is always initialised, and holds what
 * was parsed even on a policy problem (http.c names the scheme and host it
 * refused): url_free it whatever the result. Aborts on out of memory.
 */
enum url_problem url_parse(const char *text, unsigned flags, struct url *out);
/* Frees the strings of u (not u itself); u may be all zero. */
void url_free(struct url *u);
/*
 * The problem as the end of a sentence that starts with the URL's name,
 * e.g. "has no host" ("base_url has no host"). A static string.
 */
const char *url_problem_text(enum url_problem p);

/* True for 127.0.0.1, localhost and [::1] (case-insensitive): host as in struct url. */
bool url_is_loopback_host(const char *host);

/* s percent-encoded (libcurl's curl_easy_escape), a new string the caller frees with free(). */
char *url_escape(const char *s);
/*
 * Appends s[0..n) percent-encoded to b, then wipes libcurl's copy (form
 * bodies carry secrets). Returns 0, -EFBIG (b's cap) or -ENOMEM (n over
 * libcurl's input limit).
 */
int url_append_escaped(struct buf *b, const char *s, size_t n);

#endif

/*
 * oauth_int.h: what the oauth files share (oauth.c: credentials;
 * token_store.c: the pair on disk and these helpers; oauth_exchange.c:
 * the authorization-code exchange). Not for other modules: they use oauth.h.
 *
 * Owns: nothing.
 * Invariants: every helper wipes what it frees when the data may be a secret.
 * Thread context: the helpers are pure; callers say where they run.
 */
#ifndef POLLEN_OAUTH_INT_H
#define POLLEN_OAUTH_INT_H

#include <stddef.h>

#include <cJSON.h>

#include "buf.h"
#include "http.h"
#include "util.h"

#define REQUEST_TIMEOUT_MS 30000 /* a token request (refresh, exchange) */
#define FORM_TYPE "application/x-www-form-urlencoded"

/* printf-style message into err[errlen] (err may be NULL). */
void oauth__set_err(char *err, size_t errlen, const char *fmt, ...) ATTR_PRINTF(3, 4);
/* free() after zeroing the string (NULL is fine). */
void oauth__wipe_free(char *s);
/* Zeroes every string value under n (tokens in parsed documents). */
void oauth__wipe_json(cJSON *n);
/* oauth__wipe_json, then cJSON_Delete. */
void oauth__delete_json(cJSON *n);
/* Appends name=value (percent-encoded, '&'-separated) to a form body. */
int oauth__form_add(struct buf *b, const char *name, const char *value);
/* Zeroes and frees a buffer that held a form with secrets. */
void oauth__wipe_buf(struct buf *b);
/* A server's message made printable and bounded into out[size]. */
void oauth__server_text(const char *in, char *out, size_t size);
/* A copy of s, or NULL for NULL. */
char *oauth__dup_or_null(const char *s);
/* Parses a token document (a store file or a token response) of len bytes:
 * one JSON object, bounded depth. Returns 0 or -EINVAL with err set. */
int oauth__parse_doc(const char *data, size_t len, cJSON **out, char *err, size_t errlen);
/* The OAuth error code and description of an error response, bounded. */
void oauth__error_code(const struct http_response *resp, char *out, size_t size, char *desc,
                       size_t dsize);

#endif

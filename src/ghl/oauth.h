/*
 * oauth: the engine's runtime credentials for the HighLevel API: static
 * private-integration tokens, OAuth 2.0 marketplace installations (a token
 * pair in a token store file, refreshed with rotation) and location tokens
 * derived from an agency (Company) installation.
 *
 * Owns: the token store file format and its atomic, durable writes; one
 * in-memory pair per credential; the waiters of each credential; at most one
 * refresh operation per credential (token endpoint request, then the
 * persist of the rotated pair on a libuv pool thread).
 *
 * Invariants:
 * - SINGLE-FLIGHT: a credential has at most one refresh in flight; however
 *   many callers wait, they share its result.
 * - PERSIST BEFORE USE: a rotated pair is saved (tmp file O_EXCL 0600,
 *   write, fsync, rename, fsync of the directory) before its access token is
 *   handed to anyone. GHL spends the old refresh token on use, so when the
 *   save fails (ENOSPC, EIO: usually passing) the new pair, now the only
 *   valid one, is kept in memory and used, and its save retried with backoff
 *   (1 s doubling to 60 s); log lines name it by fingerprint (sha256 prefix
 *   of the refresh token), never by value.
 * - FAILED is final: invalid_grant / invalid_client / unauthorized_client on
 *   refresh, a missing or unsafe store file, saves failing for 24 h, or (a
 *   static token) a 401 from the API. The credential then logs one error
 *   naming itself and what to do, calls on_failed once and never sends
 *   another request.
 * - Secrets: every token, client secret and code is registered with
 *   log_add_secret as soon as it is known; none is ever put in a log line,
 *   an error message or a callback message (server texts are redacted).
 * - Expiry is wall-clock epoch ms (it is persisted across restarts), so the
 *   expiry checks use util_wall_ms; retry backoff uses the monotonic clock.
 * - No oauth_* call runs a callback synchronously: token callbacks, on_failed
 *   and exchange callbacks run later from the loop (0 ms timer, HTTP
 *   completion or pool-thread completion).
 *
 * Store file (one per [oauth NAME], mode 0600, owned by the euid):
 *   {"version":1,"access_token":"…","refresh_token":"…","expires_at":MS,
 *    "obtained_at":MS,"scope":"a b","userType":"Location","locationId":"…",
 *    "companyId":"…","userId":"…","approvedLocations":["…"]}
 * Readers open it with O_NOFOLLOW and refuse group/other permission bits.
 *
 * Failpoints: token.after_response_before_persist (the server has rotated
 * the pair, nothing is on disk yet) and token.after_persist (the new pair is
 * durable, nobody has used it yet).
 *
 * Thread context: loop thread only (log_add_secret is loop-thread only),
 * except oauth_pair_save, oauth_pair_free, oauth_pair_dup and
 * oauth_authorize_url, which never log and may run on any thread
 * (oauth_pair_save runs on libuv pool threads).
 */
#ifndef POLLEN_OAUTH_H
#define POLLEN_OAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "http.h"

/* Error codes (callback err values), named by oauth_strerror. */
#define OAUTH_E_FAILED (-1501)    /* the credential is failed for good (re-authorize) */
#define OAUTH_E_RETRY (-1502)     /* transient refresh failure; acquire again later */
#define OAUTH_E_CANCELLED (-1503) /* the credential was freed while the caller waited */

/* Upper bound on a store file or a token endpoint response body. */
#define OAUTH_MAX_DOC (1024 * 1024)
/* Upper bound on an access or refresh token (it must fit an HTTP header line). */
#define OAUTH_MAX_TOKEN 4096

/* One token pair. Every string is owned by the pair; any may be NULL except access_token. */
struct oauth_pair {
    char *access_token;
    char *refresh_token;        /* NULL for static and location tokens */
    uint64_t expires_at;        /* wall-clock epoch ms; 0 = never expires (static token) */
    uint64_t obtained_at;       /* wall-clock epoch ms */
    char *scope;                /* space-separated scopes as granted */
    char *user_type;            /* "Location" or "Company" */
    char *location_id;
    char *company_id;
    char *user_id;
    char **approved_locations;  /* NULL-terminated (strv), or NULL when absent */
};

/*
 * Loads a store file. Opens it with O_NOFOLLOW|O_CLOEXEC and refuses it unless
 * it is a regular file owned by the euid with no group/other permission bits.
 * At most OAUTH_MAX_DOC bytes. Registers both tokens with log_add_secret.
 * Returns 0 and *out (free with oauth_pair_free), or (with *out = NULL and a
 * one-line reason in err, which never contains a secret):
 *   -ENOENT   no such file
 *   -EPERM    permissions too open ("… run: chmod 600 PATH"), wrong owner or
 *             a symbolic link
 *   -EINVAL   not a regular file, not JSON, wrong version, missing or bad fields
 *   -EFBIG    larger than OAUTH_MAX_DOC
 *   other -errno from open/read
 * A leftover PATH.tmp (a save interrupted by a crash) is ignored.
 */
int oauth_pair_load(const char *path, struct oauth_pair **out, char *err, size_t errlen);

/*
 * Writes the pair to path atomically and durably: removes a stale PATH.tmp,
 * creates PATH.tmp with O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC mode 0600, writes,
 * fsyncs, renames it over path and fsyncs the directory. The parent
 * directory is created (0700) if missing. Never logs (it also runs on pool
 * threads). Returns 0, -EINVAL (no access token), -ENOMEM, or -errno. A
 * failure before the rename leaves path unchanged and no tmp file behind; a
 * failure of the final directory fsync is reported although path already
 * holds the new pair (it may not survive a power loss).
 */
int oauth_pair_save(const char *path, const struct oauth_pair *p);

/* Frees the pair, wiping its tokens first. Accepts NULL. */
void oauth_pair_free(struct oauth_pair *p);

/* Returns a deep copy (never NULL). */
struct oauth_pair *oauth_pair_dup(const struct oauth_pair *p);

/*
 * Parses a token endpoint (or locationToken) 200 response body of len bytes
 * (at most OAUTH_MAX_DOC): access_token (required), expires_in (required,
 * 1 s..10 years; expires_at = now_wall_ms + expires_in*1000, obtained_at =
 * now_wall_ms), refresh_token, scope, userType, locationId, companyId,
 * userId, approvedLocations (optional). Tokens must be 1..OAUTH_MAX_TOKEN
 * printable ASCII bytes without spaces. Registers the tokens with
 * log_add_secret (loop thread). Returns 0 and *out, or -EINVAL with a reason
 * in err (never a secret).
 */
int oauth_pair_from_response(const char *json, size_t len, uint64_t now_wall_ms,
                             struct oauth_pair **out, char *err, size_t errlen);

struct oauth_credential;
struct oauth_wait;

struct oauth_options {
    const char *name;               /* [oauth NAME]; used in log prefixes and messages */
    const char *token_url;          /* base_url + "/oauth/token" */
    const char *location_token_url; /* base_url + "/oauth/locationToken" (may be NULL) */
    const char *client_id;
    const char *client_secret;      /* the resolved secret, not "env:"/"file:" */
    const char *store_path;         /* the token store file */
    uint64_t refresh_margin_ms;     /* refresh ahead this long before expires_at */
};

/*
 * A private-integration token: never refreshes and never expires; it fails
 * (deferred, from the loop) when oauth_invalidate reports a 401 for it.
 * name and token are copied; the token is registered with log_add_secret.
 * The loop is used only to defer callbacks. Returns NULL on NULL arguments.
 */
struct oauth_credential *oauth_credential_static(uv_loop_t *loop, const char *name,
                                                 const char *token);

/*
 * An OAuth installation whose pair lives in o->store_path. All options are
 * copied (the client secret is registered with log_add_secret). The store is
 * read at the first acquire (a missing or unsafe file fails the credential,
 * deferred). http must outlive the credential. Returns NULL when name,
 * token_url, client_id, client_secret or store_path is missing.
 *
 * Refresh ahead: a token is refreshed when now + margin >= expires_at, where
 * margin = min(refresh_margin_ms, lifetime / 2) and lifetime = expires_at -
 * obtained_at, so that short-lived tokens are not refreshed on every call.
 */
struct oauth_credential *oauth_credential_oauth(uv_loop_t *loop, struct http_client *http,
                                                const struct oauth_options *o);

/*
 * Location tokens for location_id (credential name "AGENCY/LOCATIONID")
 * obtained from the agency (Company) credential with POST location_token_url
 * (form companyId, locationId; Authorization: Bearer <agency token>;
 * Version: 2021-07-28). Kept in memory only (they have no refresh token)
 * and renewed when they expire (same refresh-ahead rule as above, with the
 * agency's margin) or after oauth_invalidate. A 401 from the endpoint invalidates the agency token and
 * retries once. A 400/403/404/422 (location not approved, agency token not a
 * Company token) or a failed agency credential fails this credential. The
 * agency is borrowed and must outlive this credential (free locations first).
 * Returns NULL on NULL arguments.
 */
struct oauth_credential *oauth_credential_location(uv_loop_t *loop, struct http_client *http,
                                                   struct oauth_credential *agency,
                                                   const char *location_id,
                                                   const char *location_token_url);

/*
 * access_token is borrowed: valid only during the call (copy it to keep it).
 * On failure access_token is NULL and err is OAUTH_E_FAILED (the credential
 * is failed for good), OAUTH_E_RETRY (a refresh failed transiently; acquire
 * again later) or OAUTH_E_CANCELLED (oauth_credential_free).
 */
typedef void (*oauth_token_cb)(const char *access_token, int err, void *ud);

/*
 * Gives a valid access token. cb is called exactly once, later (never inside
 * this call), unless oauth_cancel is called first. If the token expires within
 * the margin (or was invalidated, or is not loaded yet) cb runs after a
 * refresh; SINGLE-FLIGHT: one refresh request however many callers wait. If
 * a refresh-ahead fails transiently while the current token is still valid,
 * the waiters get the current token. After a transient failure the next
 * refresh waits for a capped jittered backoff (1 s doubling to 60 s, reset
 * on success); waiters during the backoff still get a token that has not
 * expired, otherwise they wait for the retry.
 * Returns a handle for oauth_cancel, valid until cb starts, or NULL if the
 * credential is failed or being freed (cb is then never called).
 */
struct oauth_wait *oauth_acquire(struct oauth_credential *c, oauth_token_cb cb, void *ud);

/* Withdraws a wait; its cb is never called. A no-op from inside its own cb. Accepts NULL. */
void oauth_cancel(struct oauth_wait *w);

/*
 * The current access token if it is valid beyond the refresh margin and not
 * invalidated, else NULL (then use oauth_acquire). Borrowed until the next
 * return to the loop. A cheap fast path: it never starts a refresh.
 */
const char *oauth_peek(const struct oauth_credential *c);

/*
 * After a 401 with token: if token is still the credential's current access
 * token, marks it expired so the next acquire refreshes (one refresh however
 * many 401s report the same token). A token that was already replaced is
 * ignored. A static token cannot be refreshed: the credential fails instead
 * (from the loop, later), with one error saying to check `token =`.
 */
void oauth_invalidate(struct oauth_credential *c, const char *token);

/*
 * Registers the failure callback (one per credential; replaces any earlier
 * one). It runs once, from the loop, when the credential becomes FAILED; reason
 * is a one-line text without secrets. It may free the credential.
 */
void oauth_credential_on_failed(struct oauth_credential *c,
                                void (*on_failed)(struct oauth_credential *c, const char *reason,
                                                  void *ud),
                                void *ud);
bool oauth_credential_failed(const struct oauth_credential *c);
/* Whether a 401 makes c get a new token (OAuth and location tokens; a static one fails). */
bool oauth_credential_refreshable(const struct oauth_credential *c);
/* The reason it failed (no secrets), or NULL. */
const char *oauth_credential_failure(const struct oauth_credential *c);
const char *oauth_credential_name(const struct oauth_credential *c);
/*
 * The current pair (for status and scope checks: never log its tokens), or
 * NULL before the first load. Borrowed until the next return to the loop.
 */
const struct oauth_pair *oauth_credential_pair(const struct oauth_credential *c);

/*
 * Frees the credential. Waiters still queued are called at once, inside
 * this call, with OAUTH_E_CANCELLED (later acquires on it return NULL); an
 * in-flight request is cancelled. Memory is released when its uv handle has
 * closed, so run the loop afterwards. Safe from inside its own callbacks
 * (then deferred until they return). Accepts NULL.
 */
void oauth_credential_free(struct oauth_credential *c);

/*
 * Authorization-code exchange (for `pollen auth login`): POST o->token_url
 * with grant_type=authorization_code, code, client_id, client_secret,
 * redirect_uri (if not NULL) and user_type (if not NULL), then stores the pair
 * in o->store_path (oauth_pair_save, on a pool thread). The code and the
 * client secret are registered with log_add_secret. cb runs once, later,
 * with err 0 and a summary ("stored a Location token for location X, scopes
 * …, expires …"), or with OAUTH_E_FAILED (the server refused: bad code,
 * client or redirect_uri), OAUTH_E_RETRY (network, 5xx, 429, bad response)
 * or a -errno from the save, and a reason. The message never holds a secret.
 * Returns 0, or -EINVAL on missing arguments (cb is then not called).
 */
int oauth_exchange_code(uv_loop_t *loop, struct http_client *http, const struct oauth_options *o,
                        const char *code, const char *redirect_uri, const char *user_type,
                        void (*cb)(int err, const char *message, void *ud), void *ud);

/*
 * The chooselocation URL: authorize_url?response_type=code&redirect_uri=…&
 * client_id=…&scope=… (each value percent-encoded per RFC 3986; scopes
 * joined with spaces, then encoded, so a space is %20). Uses '&' instead
 * of '?' when authorize_url already has a query. scopes is NULL-terminated
 * and may be NULL. Returns a new string, or NULL on NULL arguments.
 */
char *oauth_authorize_url(const char *authorize_url, const char *client_id,
                          const char *redirect_uri, char *const *scopes);

/* Names an OAUTH_E_* code, an HTTP_E_* code, a negative errno, or 0. Never NULL. */
const char *oauth_strerror(int err);

#endif

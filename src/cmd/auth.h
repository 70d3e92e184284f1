/*
 * auth: the person-facing OAuth commands, `pollen auth login` and
 * `pollen auth status`.
 *
 * login runs the authorization-code flow for one [oauth NAME]: it prints the
 * chooselocation URL with the configured scopes, then either takes the code
 * from --code (headless machines: the person opens the URL elsewhere and
 * pastes the code) or receives the browser's redirect on a listener bound to
 * the loopback address of redirect_uri (never any other address), exchanges
 * the code at POST /oauth/token under [api] base_url, and stores the token
 * pair atomically with mode 0600. status shows, per credential, who it
 * belongs to, its scopes and when the access token expires: never a token.
 * Thread context: the CLI's main thread, which runs its own libuv loop.
 */
#ifndef POLLEN_AUTH_H
#define POLLEN_AUTH_H

#include <stdint.h>
#include <stdio.h>

struct config;

/* Returns the exit code: 0 stored, 1 the exchange failed, 2 usage/config problem. */
int auth_login(const struct config *cfg, const char *name, const char *code, uint64_t timeout_ms,
               FILE *out);
/* Returns 0, or 1 when a credential's token store is unusable. */
int auth_status(const struct config *cfg, FILE *out);

#endif

/*
 * auth: see auth.h.
 */
#include "auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "config.h"
#include "http.h"
#include "httpd.h"
#include "isotime.h"
#include "log.h"
#include "oauth.h"
#include "url.h"
#include "util.h"

struct login {
    uv_loop_t loop;
    struct httpd *server;      /* NULL: not listening (--code, or closed) */
    uv_timer_t timer;          /* the redirect's deadline, then the deferred finish */
    struct http_client *http;
    const struct config *cfg;
    const struct config_oauth *oauth;
    char path[256];
    char *code;
    int status;
    FILE *out;
};

static const struct config_oauth *find_oauth(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->noauths; i++) {
        if (strcmp(cfg->oauths[i].name, name) == 0) {
            return &cfg->oauths[i];
        }
    }
    return NULL;
}

static void close_all(struct login *l)
{
    if (l->server != NULL) {
        httpd_close(l->server, NULL, NULL);
        l->server = NULL;
    }
    if (!uv_is_closing((uv_handle_t *)&l->timer)) {
        uv_close((uv_handle_t *)&l->timer, NULL);
    }
}

static void on_http_closed(void *ud)
{
    struct login *l = ud;
    l->http = NULL;
    close_all(l);
}

static void on_finish(uv_timer_t *t)
{
    struct login *l = t->data;
    if (l->http != NULL) {
        http_client_close(l->http, on_http_closed, l);
    } else {
        close_all(l);
    }
}

/* Ends the login with status. Deferred to a timer callback: it may be
 * called from the listener's request handler, inside libmicrohttpd, which
 * must not be stopped from there. */
static void finish(struct login *l, int status)
{
    l->status = status;
    uv_timer_start(&l->timer, on_finish, 0, 0);
}

static void on_exchanged(int err, const char *message, void *ud)
{
    struct login *l = ud;
    if (err == 0) {
        fprintf(l->out, "pollen: %s\n", message);
        fprintf(l->out, "pollen: token pair stored in %s (mode 0600)\n", l->oauth->token_store);
        finish(l, 0);
        return;
    }
    fprintf(stderr, "pollen auth login: the code exchange failed: %s%s\n", message,
            err == OAUTH_E_RETRY ? " (a network or server problem: try again)" : "");
    finish(l, 1);
}

static void exchange(struct login *l)
{
    char *token_url = xasprintf("%s/oauth/token", l->cfg->base_url);
    struct oauth_options oo = {
        .name = l->oauth->name,
        .token_url = token_url,
        .client_id = l->oauth->client_id,
        .client_secret = l->oauth->client_secret,
        .store_path = l->oauth->token_store,
        .refresh_margin_ms = l->oauth->refresh_margin_ms,
    };
    log_add_secret(l->code);
    int rc = oauth_exchange_code(&l->loop, l->http, &oo, l->code, l->oauth->redirect_uri,
                                 l->oauth->user_type, on_exchanged, l);
    free(token_url);
    if (rc != 0) {
        fprintf(stderr, "pollen auth login: cannot start the exchange: %s\n", oauth_strerror(rc));
        finish(l, 1);
    }
}

static void answer(struct httpd_reply *reply, unsigned status, const char *html)
{
    reply->status = status;
    reply->content_type = "text/html; charset=utf-8";
    reply->body = xstrdup(html);
    reply->len = strlen(html);
}

/* One request: the browser's redirect with ?code= (anything else gets a 404). */
static void on_request(const struct httpd_request *req, struct httpd_reply *reply, void *ud)
{
    struct login *l = ud;
    if (strcmp(req->method, "GET") != 0) {
        answer(reply, 400, "<p>pollen: expected the OAuth redirect.</p>");
        return;
    }
    if (strcmp(req->path, l->path) != 0) {
        answer(reply, 404, "<p>pollen: not the OAuth redirect path.</p>");
        return;
    }
    if (l->code != NULL) {
        answer(reply, 409, "<p>pollen: a code was already received.</p>");
        return;
    }
    const char *code = httpd_query(req, "code");
    if (code == NULL || *code == '\0') {
        const char *err = httpd_query(req, "error");
        answer(reply, 400, "<p>pollen: the redirect carried no code.</p>");
        fprintf(stderr, "pollen auth login: the redirect carried no code%s%s\n",
                err ? ": " : "", err ? err : "");
        finish(l, 1);
        return;
    }
    answer(reply, 200,
           "<p>pollen: authorized. You can close this tab and return to the terminal.</p>");
    l->code = xstrdup(code);
    uv_timer_stop(&l->timer); /* the deadline: the exchange has its own timeouts */
    exchange(l);
}

static void on_timeout(uv_timer_t *t)
{
    struct login *l = t->data;
    fprintf(stderr, "pollen auth login: no redirect arrived in time; run it again, or use "
                    "--code CODE\n");
    finish(l, 1);
}

/* Parses the redirect_uri http://HOST:PORT/PATH (loopback, url.h's list) into the address
 * to listen on and the path to answer; localhost listens on 127.0.0.1. */
static int parse_loopback(const char *uri, char *host, size_t hsize, int *port, char *path,
                          size_t psize)
{
    struct url u;
    int rc = -EINVAL;
    if (url_parse(uri, URL_HTTP_LOOPBACK, &u) == URL_OK && !u.tls && u.port != 0) {
        str_copy(host, hsize, strcasecmp(u.host, "localhost") == 0 ? "127.0.0.1" : u.host);
        *port = (int)u.port;
        str_copy(path, psize, u.path);
        rc = 0;
    }
    url_free(&u);
    return rc;
}

static int listen_loopback(struct login *l)
{
    char host[64];
    int port = 0;
    if (parse_loopback(l->oauth->redirect_uri, host, sizeof(host), &port, l->path,
                       sizeof(l->path)) != 0) {
        fprintf(stderr,
                "pollen auth login: redirect_uri %s is not a loopback http:// address, so this "
                "machine cannot receive the redirect; open the URL elsewhere and run again with "
                "--code CODE\n",
                l->oauth->redirect_uri);
        return -EINVAL;
    }
    int rc = httpd_start(&l->loop, host, (unsigned)port, on_request, l, &l->server);
    if (rc != 0) {
        fprintf(stderr, "pollen auth login: cannot listen on %s:%d: %s\n", host, port,
                uv_strerror(rc));
        return rc;
    }
    fprintf(l->out, "pollen: waiting for the redirect on %s (Ctrl-C to give up)\n",
            l->oauth->redirect_uri);
    return 0;
}

int auth_login(const struct config *cfg, const char *name, const char *code, uint64_t timeout_ms,
               FILE *out)
{
    struct login *l = xcalloc(1, sizeof(*l));
    l->cfg = cfg;
    l->out = out;
    l->status = 1;
    l->oauth = find_oauth(cfg, name);
    if (l->oauth == NULL) {
        fprintf(stderr, "pollen auth login: no [oauth %s] in %s\n", name, cfg->path);
        free(l);
        return 2;
    }
    char *url = oauth_authorize_url(l->oauth->authorize_url, l->oauth->client_id,
                                    l->oauth->redirect_uri, l->oauth->scopes);
    fprintf(out, "pollen: open this URL, choose the location (or agency) and approve:\n\n  %s\n\n",
            url);
    fflush(out);
    free(url);
    uv_loop_init(&l->loop);
    uv_timer_init(&l->loop, &l->timer);
    l->timer.data = l;
    struct http_client_options ho = {
        .connect_timeout_ms = cfg->connect_timeout_ms,
        .timeout_ms = cfg->timeout_ms,
        .max_body = 1 << 20,
        .ca_file = cfg->ca_file,
        .proxy = cfg->proxy,
        .allow_plain_http_loopback = true,
    };
    l->http = http_client_create(&l->loop, &ho);
    int rc = 0;
    if (code != NULL) {
        l->code = xstrdup(code);
        exchange(l);
    } else if ((rc = listen_loopback(l)) == 0) {
        uv_timer_start(&l->timer, on_timeout, timeout_ms, 0);
    } else {
        l->status = 2;
        finish(l, 2);
    }
    uv_run(&l->loop, UV_RUN_DEFAULT);
    uv_loop_close(&l->loop);
    int status = l->status;
    if (l->code != NULL) {
        explicit_bzero(l->code, strlen(l->code));
        free(l->code);
    }
    free(l);
    return status;
}

int auth_status(const struct config *cfg, FILE *out)
{
    int status = 0;
    uint64_t now = util_wall_ms();
    for (size_t i = 0; i < cfg->noauths; i++) {
        const struct config_oauth *o = &cfg->oauths[i];
        struct oauth_pair *p = NULL;
        char err[256] = "";
        int rc = oauth_pair_load(o->token_store, &p, err, sizeof(err));
        fprintf(out, "[oauth %s] %s credential, token store %s\n", o->name, o->user_type,
                o->token_store);
        if (rc != 0) {
            fprintf(out, "  not usable: %s\n", rc == -ENOENT ? "no token yet (run pollen auth login)"
                                                            : err);
            status = rc == -ENOENT ? status : 1;
            continue;
        }
        char when[ISOTIME_LEN];
        isotime_format(p->expires_at, when);
        long long left = ((long long)p->expires_at - (long long)now) / 1000;
        fprintf(out, "  userType %s", p->user_type ? p->user_type : "?");
        if (p->location_id != NULL && *p->location_id != '\0') {
            fprintf(out, ", locationId %s", p->location_id);
        }
        if (p->company_id != NULL && *p->company_id != '\0') {
            fprintf(out, ", companyId %s", p->company_id);
        }
        fprintf(out, "\n  scopes %s\n", p->scope ? p->scope : "");
        if (left > 0) {
            fprintf(out, "  access token expires %s (in %lldm); refreshed automatically\n", when,
                    left / 60);
        } else {
            fprintf(out, "  access token expired %s; the engine refreshes it on start\n", when);
        }
        oauth_pair_free(p);
    }
    for (size_t i = 0; i < cfg->nlocations; i++) {
        const struct config_location *lc = &cfg->locations[i];
        if (lc->is_company) {
            fprintf(out, "[company %s] %s: %s%s\n", lc->name, lc->id,
                    lc->oauth != NULL ? "oauth = " : "agency token",
                    lc->oauth != NULL ? lc->oauth->name : "");
        } else if (lc->oauth == NULL) {
            fprintf(out, "[location %s] %s: private integration token (scopes are not reported "
                         "for these)\n",
                    lc->name, lc->id);
        } else {
            fprintf(out, "[location %s] %s: oauth = %s%s\n", lc->name, lc->id, lc->oauth->name,
                    strcmp(lc->oauth->user_type, "Company") == 0
                        ? " (location tokens from the agency credential)"
                        : "");
        }
    }
    return status;
}

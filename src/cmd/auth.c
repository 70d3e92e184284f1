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
#include "isotime.h"
#include "log.h"
#include "oauth.h"
#include "url.h"
#include "util.h"

#define REQUEST_MAX 8192

#define MAX_CONNS 8

struct login;

/* One connection to the listener (browsers open idle extra ones). */
struct conn {
    uv_tcp_t tcp;
    uv_write_t write_req;
    struct login *l;
    char request[REQUEST_MAX + 1];
    size_t request_len;
    char response[1024];
    bool open;
};

struct login {
    uv_loop_t loop;
    uv_tcp_t server;
    uv_timer_t timer;
    struct http_client *http;
    const struct config *cfg;
    const struct config_oauth *oauth;
    struct conn *conns[MAX_CONNS];
    char path[256];
    char *code;
    int status;
    bool listening;
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

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* The percent-decoded value of query parameter `name` in a request target, or NULL. */
static char *query_param(const char *target, const char *name)
{
    const char *q = strchr(target, '?');
    size_t nlen = strlen(name);
    while (q != NULL && *q != '\0') {
        q++;
        if (strncmp(q, name, nlen) == 0 && q[nlen] == '=') {
            const char *v = q + nlen + 1;
            size_t len = strcspn(v, "& ");
            char *out = xmalloc(len + 1);
            size_t o = 0;
            for (size_t i = 0; i < len; i++) {
                if (v[i] == '%' && i + 2 < len + 1 && hexval(v[i + 1]) >= 0 && hexval(v[i + 2]) >= 0) {
                    out[o++] = (char)(hexval(v[i + 1]) * 16 + hexval(v[i + 2]));
                    i += 2;
                } else {
                    out[o++] = v[i] == '+' ? ' ' : v[i];
                }
            }
            out[o] = '\0';
            return out;
        }
        q = strchr(q, '&');
    }
    return NULL;
}

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    for (size_t i = 0; i < MAX_CONNS; i++) {
        if (c->l->conns[i] == c) {
            c->l->conns[i] = NULL;
        }
    }
    free(c);
}

static void conn_close(struct conn *c)
{
    if (c->open) {
        c->open = false;
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
    }
}

static void close_all(struct login *l)
{
    if (l->listening && !uv_is_closing((uv_handle_t *)&l->server)) {
        uv_close((uv_handle_t *)&l->server, NULL);
    }
    for (size_t i = 0; i < MAX_CONNS; i++) {
        if (l->conns[i] != NULL) {
            conn_close(l->conns[i]);
        }
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

static void finish(struct login *l, int status)
{
    l->status = status;
    if (l->http != NULL) {
        http_client_close(l->http, on_http_closed, l);
    } else {
        close_all(l);
    }
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

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    (void)status;
    conn_close(c);
}

static void reply(struct conn *c, const char *status, const char *text)
{
    snprintf(c->response, sizeof(c->response),
             "HTTP/1.1 %s\r\nContent-Type: text/html; charset=utf-8\r\nConnection: close\r\n"
             "Cache-Control: no-store\r\nContent-Length: %zu\r\n\r\n%s",
             status, strlen(text), text);
    uv_buf_t b = uv_buf_init(c->response, (unsigned)strlen(c->response));
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        conn_close(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    buf->base = c->request + c->request_len;
    buf->len = REQUEST_MAX - c->request_len;
}

/* One request: the browser's redirect with ?code= (anything else gets a 404). */
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    struct login *l = c->l;
    (void)buf;
    if (n > 0) {
        c->request_len += (size_t)n;
        c->request[c->request_len] = '\0';
    }
    bool head_done = strstr(c->request, "\r\n\r\n") != NULL;
    if (n >= 0 && !head_done && c->request_len < REQUEST_MAX) {
        return;
    }
    uv_read_stop(s);
    if (n < 0 && c->request_len == 0) {
        conn_close(c); /* an idle connection went away */
        return;
    }
    char method[8] = "";
    char target[REQUEST_MAX];
    target[0] = '\0';
    if (sscanf(c->request, "%7s %8191s", method, target) != 2 || strcmp(method, "GET") != 0) {
        reply(c, "400 Bad Request", "<p>pollen: expected the OAuth redirect.</p>");
        return;
    }
    size_t plen = strlen(l->path);
    if (strncmp(target, l->path, plen) != 0 || (target[plen] != '?' && target[plen] != '\0')) {
        reply(c, "404 Not Found", "<p>pollen: not the OAuth redirect path.</p>");
        return;
    }
    if (l->code != NULL) {
        reply(c, "409 Conflict", "<p>pollen: a code was already received.</p>");
        return;
    }
    char *code = query_param(target, "code");
    if (code == NULL || *code == '\0') {
        char *err = query_param(target, "error");
        reply(c, "400 Bad Request", "<p>pollen: the redirect carried no code.</p>");
        fprintf(stderr, "pollen auth login: the redirect carried no code%s%s\n",
                err ? ": " : "", err ? err : "");
        free(err);
        free(code);
        finish(l, 1);
        return;
    }
    reply(c, "200 OK",
          "<p>pollen: authorized. You can close this tab and return to the terminal.</p>");
    l->code = code;
    if (l->listening) {
        uv_close((uv_handle_t *)&l->server, NULL);
        l->listening = false;
    }
    exchange(l);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct login *l = server->data;
    if (status != 0) {
        return;
    }
    /* Always accept (an unaccepted connection stalls the listener for good);
     * beyond MAX_CONNS, accept and close at once. */
    struct conn *c = xcalloc(1, sizeof(*c));
    c->l = l;
    uv_tcp_init(&l->loop, &c->tcp);
    c->tcp.data = c;
    c->open = true;
    size_t slot = MAX_CONNS;
    for (size_t i = 0; i < MAX_CONNS; i++) {
        if (l->conns[i] == NULL) {
            slot = i;
            break;
        }
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || slot == MAX_CONNS) {
        conn_close(c);
        return;
    }
    l->conns[slot] = c;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
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
    struct sockaddr_storage addr;
    int rc = strcmp(host, "[::1]") == 0 ? uv_ip6_addr("::1", port, (struct sockaddr_in6 *)&addr)
                                        : uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    uv_tcp_init(&l->loop, &l->server);
    l->server.data = l;
    l->listening = true;
    if (rc == 0) {
        rc = uv_tcp_bind(&l->server, (const struct sockaddr *)&addr, 0);
    }
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&l->server, 4, on_connection);
    }
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

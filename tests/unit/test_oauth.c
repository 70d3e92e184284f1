/*
 * test_oauth: the token store file (round trip, atomic replace, leftover tmp
 * files, permission and symlink refusal, bounded and validated parsing),
 * token endpoint response parsing and the authorize URL; then the runtime
 * credentials against the real sandbox (tests/sandbox/sandbox.py, started
 * with posix_spawn on an ephemeral port): code exchange, no request while
 * fresh, refresh ahead with a short token lifetime, single-flight (50
 * acquires after a 401 = one token call, counted by the sandbox), persist
 * before use, transient failures and backoff, a spent refresh token
 * (invalid_grant = failed once, no retry loop), failpoint kills during the
 * refresh (old or new pair on disk), location tokens through an agency
 * credential, and no secret in anything logged.
 *
 * Skips the sandbox part (not the file tests) when python3 is missing.
 * Ends with uv_loop_close() == 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>
#include <uv.h>

#include "failpoint.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "oauth.h"
#include "testlib.h"
#include "util.h"

#ifndef SOURCE_ROOT
#define SOURCE_ROOT "."
#endif

extern char **environ;

static char tmpdir[512];

static char *tpath(const char *name)
{
    return xasprintf("%s/%s", tmpdir, name);
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) {
        perror(path);
        return;
    }
    fchmod(fd, mode);
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) {
        perror("write");
    }
    close(fd);
}

static char *read_text(const char *path)
{
    char *data = NULL;
    size_t len;
    if (util_read_file(path, 1 << 20, &data, &len) != 0) {
        return NULL;
    }
    return data;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the store file ---- */

static struct oauth_pair *sample_pair(const char *at, const char *rt)
{
    struct oauth_pair *p = xcalloc(1, sizeof(*p));
    p->access_token = xstrdup(at);
    p->refresh_token = xstrdup(rt);
    p->expires_at = 1795724155113ULL;
    p->obtained_at = 1795637755113ULL;
    p->scope = xstrdup("contacts.readonly contacts.write");
    p->user_type = xstrdup("Company");
    p->location_id = NULL;
    p->company_id = xstrdup("agencyCompany0000001");
    p->user_id = xstrdup("user0000000000000001");
    p->approved_locations = strv_split("locA locB locC", NULL);
    return p;
}

static void test_round_trip(void)
{
    char *path = tpath("rt/oauth-main.json"); /* the parent directory does not exist yet */
    struct oauth_pair *p = sample_pair("tok_CANARY_access_1", "tok_CANARY_refresh_1");
    CHECK_INT(oauth_pair_save(path, p), 0);

    struct stat st;
    CHECK_INT(lstat(path, &st), 0);
    CHECK_INT(st.st_mode & 07777, 0600);
    CHECK(S_ISREG(st.st_mode));
    char *tmp = xasprintf("%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);

    struct oauth_pair *q = NULL;
    char err[512];
    CHECK_INT(oauth_pair_load(path, &q, err, sizeof(err)), 0);
    CHECK(q != NULL);
    if (q != NULL) {
        CHECK_STR(q->access_token, "tok_CANARY_access_1");
        CHECK_STR(q->refresh_token, "tok_CANARY_refresh_1");
        CHECK(q->expires_at == 1795724155113ULL);
        CHECK(q->obtained_at == 1795637755113ULL);
        CHECK_STR(q->scope, "contacts.readonly contacts.write");
        CHECK_STR(q->user_type, "Company");
        CHECK(q->location_id == NULL);
        CHECK_STR(q->company_id, "agencyCompany0000001");
        CHECK_STR(q->user_id, "user0000000000000001");
        CHECK_INT(strv_len(q->approved_locations), 3);
        CHECK_STR(q->approved_locations[2], "locC");
    }
    /* The exact document other tools read (shared contract). */
    char *text = read_text(path);
    CHECK(text != NULL &&
          strstr(text, "\"version\":1,\"access_token\":\"tok_CANARY_access_1\"") != NULL);
    CHECK(text != NULL && strstr(text, "\"expires_at\":1795724155113,") != NULL);
    CHECK(text != NULL &&
          strstr(text, "\"approvedLocations\":[\"locA\",\"locB\",\"locC\"]") != NULL);
    free(text);
    /* Loaded tokens are registered for redaction. */
    char red[128];
    log_redact("x tok_CANARY_refresh_1 y", red, sizeof(red));
    CHECK_STR(red, "x [REDACTED] y");

    /* Replacing keeps the mode and leaves no tmp file; dup is deep. */
    struct oauth_pair *d = oauth_pair_dup(q != NULL ? q : p);
    free(d->access_token);
    d->access_token = xstrdup("tok_CANARY_access_2");
    strv_free(d->approved_locations);
    d->approved_locations = NULL;
    CHECK_INT(oauth_pair_save(path, d), 0);
    struct oauth_pair *r = NULL;
    CHECK_INT(oauth_pair_load(path, &r, err, sizeof(err)), 0);
    CHECK(r != NULL && strcmp(r->access_token, "tok_CANARY_access_2") == 0);
    CHECK(r != NULL && r->approved_locations == NULL);
    CHECK(access(tmp, F_OK) != 0);

    /* Invalid arguments. */
    CHECK_INT(oauth_pair_save(path, &(struct oauth_pair){0}), -EINVAL);
    CHECK(oauth_pair_save("/proc/self/nonexistent-dir/x.json", p) < 0);

    oauth_pair_free(p);
    oauth_pair_free(q);
    oauth_pair_free(r);
    oauth_pair_free(d);
    free(tmp);
    free(path);
}

static void test_leftover_tmp(void)
{
    char *path = tpath("left.json");
    char *tmp = xasprintf("%s.tmp", path);
    char *victim = tpath("victim.txt");
    struct oauth_pair *p = sample_pair("tok_CANARY_left_a", "tok_CANARY_left_r");
    CHECK_INT(oauth_pair_save(path, p), 0);

    /* A crash between create and rename leaves a partial tmp file: readers ignore it. */
    write_text(tmp, "{\"version\":1,\"access_tok", 0600);
    struct oauth_pair *q = NULL;
    char err[512];
    CHECK_INT(oauth_pair_load(path, &q, err, sizeof(err)), 0);
    CHECK(q != NULL && strcmp(q->access_token, "tok_CANARY_left_a") == 0);
    oauth_pair_free(q);
    /* The next save cleans it up instead of failing on O_EXCL. */
    CHECK_INT(oauth_pair_save(path, p), 0);
    CHECK(access(tmp, F_OK) != 0);

    /* A symlink planted at the tmp name is removed, never written through. */
    write_text(victim, "untouched", 0600);
    CHECK_INT(symlink(victim, tmp), 0);
    CHECK_INT(oauth_pair_save(path, p), 0);
    char *v = read_text(victim);
    CHECK_STR(v, "untouched");
    free(v);
    CHECK(access(tmp, F_OK) != 0);

    oauth_pair_free(p);
    free(victim);
    free(tmp);
    free(path);
}

/*
 * kill -9 at random instants while a child rewrites the store in a loop:
 * the file must always load, holding one of the complete pairs.
 */
static void test_crash_atomicity(void)
{
    char *path = tpath("crash.json");
    struct oauth_pair *a = sample_pair("tok_CANARY_crash_A", "tok_CANARY_crash_rA");
    CHECK_INT(oauth_pair_save(path, a), 0);
    int ok = 0;
    for (int i = 0; i < 12; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            struct oauth_pair *b = sample_pair("tok_CANARY_crash_B", "tok_CANARY_crash_rB");
            for (unsigned n = 0;; n++) {
                oauth_pair_save(path, n % 2 ? a : b);
            }
        }
        sleep_ms(2 + (i * 7) % 23);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        struct oauth_pair *q = NULL;
        char err[512];
        int rc = oauth_pair_load(path, &q, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "crash %d: %s\n", i, err);
        }
        if (rc == 0 && (strcmp(q->access_token, "tok_CANARY_crash_A") == 0 ||
                        strcmp(q->access_token, "tok_CANARY_crash_B") == 0)) {
            ok++;
        }
        oauth_pair_free(q);
    }
    CHECK_INT(ok, 12);
    oauth_pair_free(a);
    free(path);
}

static void test_refusals(void)
{
    char *path = tpath("perm.json");
    char err[512];
    struct oauth_pair *q = (struct oauth_pair *)1;
    struct oauth_pair *p = sample_pair("tok_CANARY_perm_a", "tok_CANARY_perm_r");
    CHECK_INT(oauth_pair_save(path, p), 0);

    static const mode_t perms[] = {0644, 0640, 0604, 0660, 0601, 0610};
    for (size_t i = 0; i < ARRAY_SIZE(perms); i++) {
        chmod(path, perms[i]);
        CHECK_INT(oauth_pair_load(path, &q, err, sizeof(err)), -EPERM);
        CHECK(q == NULL);
        char want[1200];
        snprintf(want, sizeof(want), "permissions %04o for '%s' are too open; run: chmod 600 %s",
                 (unsigned)perms[i], path, path);
        CHECK_STR(err, want);
    }
    chmod(path, 0400);
    CHECK_INT(oauth_pair_load(path, &q, err, sizeof(err)), 0);
    oauth_pair_free(q);
    chmod(path, 0600);

    /* A symlink to a perfectly good store is refused. */
    char *link = tpath("link.json");
    unlink(link);
    CHECK_INT(symlink(path, link), 0);
    CHECK_INT(oauth_pair_load(link, &q, err, sizeof(err)), -EPERM);
    CHECK(strstr(err, "symbolic link") != NULL);

    char *missing = tpath("missing.json");
    CHECK_INT(oauth_pair_load(missing, &q, err, sizeof(err)), -ENOENT);
    CHECK(strstr(err, "no token store") != NULL);
    CHECK_INT(oauth_pair_load(tmpdir, &q, err, sizeof(err)), -EINVAL);

    /* Too big: refused before parsing. */
    char *big = tpath("big.json");
    char *blob = xmalloc(OAUTH_MAX_DOC + 16);
    memset(blob, ' ', OAUTH_MAX_DOC + 15);
    blob[OAUTH_MAX_DOC + 15] = '\0';
    write_text(big, blob, 0600);
    CHECK_INT(oauth_pair_load(big, &q, err, sizeof(err)), -EFBIG);
    free(blob);

    /* Malformed documents. */
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{\"version\":1,\"access_token\":\"a_tok\",\"refresh_token\":\"r_tok\",\"expires_at\":1,"
        "\"obtained_at\":1} trailing",
        "{\"version\":2,\"access_token\":\"a_tok\",\"refresh_token\":\"r_tok\",\"expires_at\":1,"
        "\"obtained_at\":1}",
        "{\"access_token\":\"a_tok\",\"refresh_token\":\"r_tok\",\"expires_at\":1,\"obtained_at\":"
        "1}",
        "{\"version\":1,\"refresh_token\":\"r_tok\",\"expires_at\":1,\"obtained_at\":1}",
        "{\"version\":1,\"access_token\":\"a_tok\",\"expires_at\":1,\"obtained_at\":1}",
        "{\"version\":1,\"access_token\":\"a_tok\",\"refresh_token\":\"r_tok\",\"obtained_at\":1}",
        "{\"version\":1,\"access_token\":\"a_tok\",\"refresh_token\":\"r_tok\",\"expires_at\":"
        "\"1\","
        "\"obtained_at\":1}",
        "{\"version\":1,\"access_token\":\"a_tok\",\"refresh_token\":\"r_tok\",\"expires_at\":-5,"
        "\"obtained_at\":1}",
        "{\"version\":1,\"access_token\":\"a_tok\",\"refresh_token\":\"r_tok\",\"expires_at\":1.5,"
        "\"obtained_at\":1}",
        "{\"version\":1,\"access_token\":\"a tok\",\"refresh_token\":\"r_tok\",\"expires_at\":1,"
        "\"obtained_at\":1}",
        "{\"version\":1,\"access_token\":\"a\\ntok\",\"refresh_token\":\"r_tok\",\"expires_at\":1,"
        "\"obtained_at\":1}",
        "{\"version\":1,\"access_token\":\"\",\"refresh_token\":\"r_tok\",\"expires_at\":1,"
        "\"obtained_at\":1}",
        "{\"version\":1,\"access_token\":7,\"refresh_token\":\"r_tok\",\"expires_at\":1,"
        "\"obtained_at\":1}",
        "{\"version\":1,\"access_token\":\"a_tok\",\"refresh_token\":\"r_tok\",\"expires_at\":1,"
        "\"obtained_at\":1,\"approvedLocations\":\"locA\"}",
        "{\"version\":1,\"access_token\":\"a_tok\",\"refresh_token\":\"r_tok\",\"expires_at\":1,"
        "\"obtained_at\":1,\"approvedLocations\":[1]}",
        "{\"version\":1,\"access_token\":\"a_tok\",\"refresh_token\":\"r_tok\",\"expires_at\":1,"
        "\"obtained_at\":1,\"scope\":[\"x\"]}",
    };
    char *badp = tpath("bad.json");
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        write_text(badp, bad[i], 0600);
        q = (struct oauth_pair *)1;
        int rc = oauth_pair_load(badp, &q, err, sizeof(err));
        if (rc != -EINVAL) {
            fprintf(stderr, "bad[%zu] loaded (rc %d)\n", i, rc);
        }
        CHECK_INT(rc, -EINVAL);
        CHECK(q == NULL);
        CHECK(strstr(err, badp) != NULL);
        CHECK(strstr(err, "a_tok") == NULL && strstr(err, "r_tok") == NULL);
    }
    /* Optional fields may be absent or null. */
    write_text(badp, "{\"version\":1,\"access_token\":\"a_tok\",\"refresh_token\":\"r_tok\","
               "\"expires_at\":1,\"obtained_at\":0,\"locationId\":null}", 0600);
    CHECK_INT(oauth_pair_load(badp, &q, err, sizeof(err)), 0);
    CHECK(q != NULL && q->location_id == NULL && q->scope == NULL);
    oauth_pair_free(q);

    oauth_pair_free(p);
    free(badp);
    free(big);
    free(missing);
    free(link);
    free(path);
}

static void test_response_parsing(void)
{
    static const struct {
        const char *json;
        int rc;
        const char *access;
        const char *refresh;
        uint64_t expires_in_ms;
        const char *user_type;
        const char *location_id;
        size_t approved;
    } cases[] = {
        {"{\"access_token\":\"tok_CANARY_resp_a1\",\"token_type\":\"Bearer\",\"expires_in\":86399,"
         "\"refresh_token\":\"tok_CANARY_resp_r1\",\"scope\":\"contacts.readonly\","
         "\"userType\":\"Location\",\"locationId\":\"demoLocation00000001\",\"companyId\":\"c1\","
         "\"userId\":\"u1\",\"isBulkInstallation\":false}",
         0, "tok_CANARY_resp_a1", "tok_CANARY_resp_r1", 86399000, "Location",
         "demoLocation00000001", 0},
        {"{\"access_token\":\"tok_CANARY_resp_a2\",\"expires_in\":2,\"refresh_token\":\"r2_tok\","
         "\"userType\":\"Company\",\"companyId\":\"c1\",\"approvedLocations\":[\"l1\",\"l2\"],"
         "\"installToFutureLocations\":false}",
         0, "tok_CANARY_resp_a2", "r2_tok", 2000, "Company", NULL, 2},
        /* A location token: no refresh token. */
        {" {\"access_token\":\"tok_CANARY_resp_a3\",\"expires_in\":86399,\"locationId\":\"l9\","
         "\"planId\":null} \n",
         0, "tok_CANARY_resp_a3", NULL, 86399000, NULL, "l9", 0},
        {"{\"access_token\":\"a_tok\"}", -EINVAL, NULL, NULL, 0, NULL, NULL, 0},
        {"{\"access_token\":\"a_tok\",\"expires_in\":0}", -EINVAL, NULL, NULL, 0, NULL, NULL, 0},
        {"{\"access_token\":\"a_tok\",\"expires_in\":-1}", -EINVAL, NULL, NULL, 0, NULL, NULL, 0},
        {"{\"access_token\":\"a_tok\",\"expires_in\":\"3600\"}", -EINVAL, NULL, NULL, 0, NULL, NULL,
         0},
        {"{\"access_token\":\"a_tok\",\"expires_in\":1e300}", -EINVAL, NULL, NULL, 0, NULL, NULL,
         0},
        {"{\"expires_in\":3600,\"refresh_token\":\"r_tok\"}", -EINVAL, NULL, NULL, 0, NULL, NULL,
         0},
        {"{\"access_token\":null,\"expires_in\":3600}", -EINVAL, NULL, NULL, 0, NULL, NULL, 0},
        {"{\"access_token\":\"a\\r\\nX-Evil: 1\",\"expires_in\":3600}", -EINVAL, NULL, NULL, 0,
         NULL, NULL, 0},
        {"{\"access_token\":\"a_tok\",\"expires_in\":3600,\"refresh_token\":\"\"}", -EINVAL, NULL,
         NULL, 0, NULL, NULL, 0},
        {"{\"access_token\":\"a_tok\",\"expires_in\":3600} {}", -EINVAL, NULL, NULL, 0, NULL, NULL,
         0},
        {"{\"access_token\":\"a_tok\",\"expires_in\":3600", -EINVAL, NULL, NULL, 0, NULL, NULL, 0},
        {"[\"a_tok\"]", -EINVAL, NULL, NULL, 0, NULL, NULL, 0},
        {"", -EINVAL, NULL, NULL, 0, NULL, NULL, 0},
        {"{\"error\":\"invalid_grant\",\"error_description\":\"x\"}", -EINVAL, NULL, NULL, 0, NULL,
         NULL, 0},
    };
    const uint64_t now = 1795637755113ULL;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct oauth_pair *p = (struct oauth_pair *)1;
        char err[256];
        int rc = oauth_pair_from_response(cases[i].json, strlen(cases[i].json), now, &p, err,
                                          sizeof(err));
        if (rc != cases[i].rc) {
            fprintf(stderr, "response case %zu: rc %d (%s)\n", i, rc, err);
        }
        CHECK_INT(rc, cases[i].rc);
        if (rc != 0) {
            CHECK(p == NULL);
            CHECK(strstr(err, "a_tok") == NULL && strstr(err, "r_tok") == NULL);
            continue;
        }
        CHECK_STR(p->access_token, cases[i].access);
        CHECK_STR(p->refresh_token, cases[i].refresh);
        CHECK(p->obtained_at == now);
        CHECK(p->expires_at == now + cases[i].expires_in_ms);
        CHECK_STR(p->user_type, cases[i].user_type);
        CHECK_STR(p->location_id, cases[i].location_id);
        CHECK_INT(p->approved_locations ? strv_len(p->approved_locations) : 0, cases[i].approved);
        char red[256];
        log_redact(p->access_token, red, sizeof(red));
        CHECK_STR(red, "[REDACTED]");
        oauth_pair_free(p);
    }
    /* Length-bounded: bytes past len are never read. */
    const char *padded = "{\"access_token\":\"a_tok\",\"expires_in\":5}GARBAGE";
    struct oauth_pair *p = NULL;
    char err[256];
    CHECK_INT(oauth_pair_from_response(padded, strlen(padded) - 7, now, &p, err, sizeof(err)), 0);
    oauth_pair_free(p);
}

static void test_authorize_url(void)
{
    char *scopes[] = {"contacts.readonly", "contacts.write", "locations/customFields.readonly",
                      NULL};
    char *url = oauth_authorize_url(
        "https://marketplace.gohighlevel.com/v2/oauth/chooselocation", "app-id.1",
        "http://127.0.0.1:8723/callback?x=1&y=a b", scopes);
    CHECK_STR(url, "https://marketplace.gohighlevel.com/v2/oauth/chooselocation?response_type=code"
                   "&redirect_uri=http%3A%2F%2F127.0.0.1%3A8723%2Fcallback%3Fx%3D1%26y%3Da%20b"
                   "&client_id=app-id.1"
                   "&scope=contacts.readonly%20contacts.write%20locations%2FcustomFields.readonly");
    free(url);
    url = oauth_authorize_url("https://h/x?loginWindowOpenMode=self", "c", "r", NULL);
    CHECK_STR(url, "https://h/x?loginWindowOpenMode=self&response_type=code&redirect_uri=r"
                   "&client_id=c&scope=");
    free(url);
    CHECK(oauth_authorize_url(NULL, "c", "r", NULL) == NULL);
    CHECK_STR(oauth_strerror(OAUTH_E_FAILED), "credential failed (authorize it again)");
    CHECK(strlen(oauth_strerror(-ENOENT)) > 0);
}

/* ---- the sandbox ---- */

static pid_t sbx_pid = -1;
static int sbx_port;
static char base_url[128];

static bool find_python(char *out, size_t size)
{
    const char *path = getenv("PATH");
    char *copy = xstrdup(path != NULL ? path : "/usr/local/bin:/usr/bin:/bin");
    for (char *p = copy; p != NULL && *p != '\0';) {
        char *colon = strchr(p, ':');
        if (colon != NULL) {
            *colon = '\0';
        }
        snprintf(out, size, "%s/python3", *p ? p : ".");
        if (access(out, X_OK) == 0) {
            free(copy);
            return true;
        }
        p = colon ? colon + 1 : NULL;
    }
    free(copy);
    return false;
}

/*
 * The sandbox runs under a tiny wrapper that exits when its stdin (a pipe whose
 * write end only this process holds) reaches EOF, so a crashed or killed test
 * never leaves a sandbox behind.
 */
static const char sandbox_wrapper[] =
    "import os, sys, threading, runpy\n"
    "def watch():\n"
    "    sys.stdin.buffer.read()\n"
    "    os._exit(0)\n"
    "threading.Thread(target=watch, daemon=True).start()\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n";

static int sbx_stdin = -1;

/* Returns 0, 77 (no python3) or -1. */
static int sandbox_start(void)
{
    char py[1024];
    if (!find_python(py, sizeof(py))) {
        return 77;
    }
    char script[1024];
    snprintf(script, sizeof(script), "%s/tests/sandbox/sandbox.py", SOURCE_ROOT);
    char *port_file = tpath("sandbox.port");
    unlink(port_file);
    int in[2];
    if (pipe(in) != 0) {
        free(port_file);
        return -1;
    }
    fcntl(in[1], F_SETFD, FD_CLOEXEC);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_addclose(&fa, in[0]);
    char *argv[] = {py, "-c", (char *)sandbox_wrapper, script, "--port", "0", "--port-file",
                    port_file, "--quiet", "--rate-limit", "0", NULL};
    int rc = posix_spawn(&sbx_pid, py, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    if (rc != 0) {
        close(in[1]);
        free(port_file);
        sbx_pid = -1;
        return rc == ENOENT ? 77 : -1;
    }
    sbx_stdin = in[1];
    for (int i = 0; i < 300 && sbx_port == 0; i++) {
        char *text = read_text(port_file);
        if (text != NULL) {
            sbx_port = atoi(text);
            free(text);
        }
        if (sbx_port == 0) {
            sleep_ms(50);
        }
    }
    free(port_file);
    if (sbx_port <= 0) {
        fprintf(stderr, "the sandbox did not report a port\n");
        return -1;
    }
    snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d", sbx_port);
    return 0;
}

static void sandbox_stop(void)
{
    if (sbx_stdin >= 0) {
        close(sbx_stdin);
        sbx_stdin = -1;
    }
    if (sbx_pid > 0) {
        kill(sbx_pid, SIGTERM);
        int st;
        waitpid(sbx_pid, &st, 0);
        sbx_pid = -1;
    }
}

static size_t on_curl_data(char *data, size_t size, size_t n, void *ud)
{
    buf_append(ud, data, size * n);
    return size * n;
}

/* A tiny blocking request (TEST ONLY: the control API, token use checks). Returns the status. */
static long blocking(const char *method, const char *path, const char *body,
                     const char *content_type, const char *bearer, cJSON **out)
{
    CURL *h = curl_easy_init();
    struct buf b;
    buf_init(&b, 1 << 20);
    char url[512];
    snprintf(url, sizeof(url), "%s%s", base_url, path);
    struct curl_slist *hdrs = NULL;
    char line[1024];
    snprintf(line, sizeof(line), "Content-Type: %s",
             content_type ? content_type : "application/json");
    hdrs = curl_slist_append(hdrs, line);
    hdrs = curl_slist_append(hdrs, "Version: 2021-07-28");
    if (bearer != NULL) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", bearer);
        hdrs = curl_slist_append(hdrs, line);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_curl_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    }
    if (out != NULL) {
        *out = NULL;
        if (b.len > 0) {
            json_parse(b.data, b.len, out, NULL);
        }
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    buf_finish(&b);
    return status;
}

static long ctl(const char *method, const char *path, const char *body)
{
    return blocking(method, path, body, NULL, NULL, NULL);
}

static char *new_code(const char *body)
{
    cJSON *r = NULL;
    long st = blocking("POST", "/_control/oauth/codes", body, NULL, NULL, &r);
    const char *code = json_get_string(r, "code");
    char *out = (st == 200 && code != NULL) ? xstrdup(code) : NULL;
    cJSON_Delete(r);
    if (out == NULL) {
        fprintf(stderr, "code request failed: %ld\n", st);
    }
    return out;
}

static long stat_of(const char *path)
{
    cJSON *r = NULL;
    blocking("GET", "/_control/oauth/stats", NULL, NULL, NULL, &r);
    const cJSON *v = json_get_path(r, path);
    long n = cJSON_IsNumber(v) ? (long)v->valuedouble : 0;
    cJSON_Delete(r);
    return n;
}

static long token_calls(void)
{
    return stat_of("token_calls");
}

static long location_calls(void)
{
    return stat_of("location_token_calls");
}

static void set_lifetime(int seconds)
{
    char body[64];
    snprintf(body, sizeof(body), "{\"access_token_lifetime_s\":%d}", seconds);
    CHECK_INT(ctl("POST", "/_control/oauth/config", body), 200);
}

/* Does the sandbox accept this token for a location read? */
static long use_token(const char *token, const char *location)
{
    char path[256];
    snprintf(path, sizeof(path), "/contacts/?locationId=%s&limit=1", location);
    return blocking("GET", path, NULL, NULL, token, NULL);
}

/* Every secret the test has seen, to grep the captured log for at the end. */
static char *secrets_seen[512];
static size_t nsecrets;

static void remember(const char *s)
{
    if (s == NULL || nsecrets >= ARRAY_SIZE(secrets_seen)) {
        return;
    }
    for (size_t i = 0; i < nsecrets; i++) {
        if (strcmp(secrets_seen[i], s) == 0) {
            return;
        }
    }
    secrets_seen[nsecrets++] = xstrdup(s);
}

/* A token pair obtained with a blocking code exchange (for the fork tests). */
static char *store_from_code(const char *code, const char *name, uint64_t expires_at)
{
    char body[512];
    snprintf(body, sizeof(body),
             "client_id=app&client_secret=tok_CANARY_client_secret&grant_type=authorization_code"
             "&code=%s",
             code);
    cJSON *r = NULL;
    long st = blocking("POST", "/oauth/token", body, "application/x-www-form-urlencoded", NULL, &r);
    char *text = r != NULL ? cJSON_PrintUnformatted(r) : NULL;
    cJSON_Delete(r);
    struct oauth_pair *p = NULL;
    char err[256];
    char *path = tpath(name);
    if (st != 200 || text == NULL ||
        oauth_pair_from_response(text, strlen(text), util_wall_ms(), &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "exchange for %s failed: %ld\n", name, st);
        free(text);
        return path;
    }
    free(text);
    remember(p->access_token);
    remember(p->refresh_token);
    if (expires_at != 0) {
        p->expires_at = expires_at;
    }
    CHECK_INT(oauth_pair_save(path, p), 0);
    oauth_pair_free(p);
    return path;
}

/* ---- loop helpers ---- */

static uv_loop_t loop;
static uv_timer_t guard;
static bool guard_fired;
static struct http_client *http;

static void on_guard(uv_timer_t *t)
{
    guard_fired = true;
}

static bool run_until(const int *counter, int want, uint64_t max_ms)
{
    guard_fired = false;
    uv_timer_start(&guard, on_guard, max_ms, 0);
    while (*counter < want && !guard_fired) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&guard);
    return *counter >= want;
}

static void run_for(uint64_t ms)
{
    int never = 0;
    run_until(&never, 1, ms);
}

/* ---- token callbacks ---- */

static bool in_api;
static int done;

struct got {
    int calls;
    int err;
    bool sync;
    char token[OAUTH_MAX_TOKEN + 1];
    const char *check_path; /* when set: the store on disk must already hold the token */
    bool disk_ok;
    struct oauth_credential *free_me;
};

static void on_token(const char *token, int err, void *ud)
{
    struct got *g = ud;
    g->calls++;
    g->err = err;
    g->sync = g->sync || in_api;
    str_copy(g->token, sizeof(g->token), token ? token : "");
    remember(token);
    if (g->check_path != NULL && token != NULL) {
        struct oauth_pair *p = NULL;
        char e[256];
        g->disk_ok = oauth_pair_load(g->check_path, &p, e, sizeof(e)) == 0 &&
                     strcmp(p->access_token, token) == 0;
        oauth_pair_free(p);
    }
    if (g->free_me != NULL) {
        oauth_credential_free(g->free_me);
        g->free_me = NULL;
    }
    done++;
    uv_stop(&loop); /* callbacks come from timers: do not let UV_RUN_ONCE block in poll after */
}

static struct oauth_wait *acquire(struct oauth_credential *c, struct got *g)
{
    memset(g->token, 0, sizeof(g->token));
    in_api = true;
    struct oauth_wait *w = oauth_acquire(c, on_token, g);
    in_api = false;
    return w;
}

/* Acquires once and waits for the answer. Returns the callback's err (or -999 on timeout). */
static int acquire_wait(struct oauth_credential *c, struct got *g, uint64_t max_ms)
{
    int before = done;
    g->calls = 0;
    if (acquire(c, g) == NULL) {
        return -998;
    }
    if (!run_until(&done, before + 1, max_ms)) {
        return -999;
    }
    CHECK(!g->sync);
    CHECK_INT(g->calls, 1);
    return g->err;
}

struct failed_rec {
    int calls;
    char reason[1024];
};

static void on_failed(struct oauth_credential *c, const char *reason, void *ud)
{
    struct failed_rec *f = ud;
    f->calls++;
    str_copy(f->reason, sizeof(f->reason), reason);
    CHECK(!in_api);
}

struct exch {
    int calls;
    int err;
    char msg[1024];
};

static void on_exchanged(int err, const char *message, void *ud)
{
    struct exch *x = ud;
    x->calls++;
    x->err = err;
    str_copy(x->msg, sizeof(x->msg), message);
    CHECK(!in_api);
    done++;
    uv_stop(&loop);
}

static char token_url[256];
static char loc_token_url[256];

static struct oauth_options options(const char *name, const char *path, uint64_t margin)
{
    struct oauth_options o = {
        .name = name,
        .token_url = token_url,
        .location_token_url = loc_token_url,
        .client_id = "app",
        .client_secret = "tok_CANARY_client_secret",
        .store_path = path,
        .refresh_margin_ms = margin,
    };
    return o;
}

static int exchange(const char *code, const char *path, const char *user_type, struct exch *x)
{
    struct oauth_options o = options("ex", path, 0);
    memset(x, 0, sizeof(*x));
    int before = done;
    in_api = true;
    int rc = oauth_exchange_code(&loop, http, &o, code, NULL, user_type, on_exchanged, x);
    in_api = false;
    CHECK_INT(rc, 0);
    CHECK(run_until(&done, before + 1, 15000));
    CHECK_INT(x->calls, 1);
    return x->err;
}

/* ---- sandbox cases ---- */

#ifdef POLLEN_FAILPOINTS
/* The child refreshes an expired pair and is killed at the named failpoint. */
static void failpoint_case(const char *point, bool expect_new)
{
    char *code = new_code("{\"client_id\":\"app\",\"location_id\":\"demoLocation00000001\"}");
    char name[64];
    snprintf(name, sizeof(name), "fp-%s.json", expect_new ? "new" : "old");
    char *path = store_from_code(code, name, util_wall_ms() - 1000);
    free(code);
    struct oauth_pair *old = NULL;
    char err[256];
    CHECK_INT(oauth_pair_load(path, &old, err, sizeof(err)), 0);
    long calls = token_calls();

    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("POLLEN_FAILPOINT", point, 1);
        failpoint_init();
        uv_loop_t l2;
        uv_loop_init(&l2);
        struct http_client_options ho = {.allow_plain_http_loopback = true};
        struct http_client *h2 = http_client_create(&l2, &ho);
        struct oauth_options o = options("fp", path, 1000);
        struct oauth_credential *c = oauth_credential_oauth(&l2, h2, &o);
        struct got g = {0};
        oauth_acquire(c, on_token, &g);
        uint64_t until = util_mono_ms() + 15000;
        while (util_mono_ms() < until) {
            uv_run(&l2, UV_RUN_ONCE);
        }
        _exit(3); /* the failpoint should have killed us */
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    CHECK_INT(token_calls(), calls + 1);

    /* Whatever happened, the store is complete and private. */
    struct oauth_pair *now = NULL;
    CHECK_INT(oauth_pair_load(path, &now, err, sizeof(err)), 0);
    if (now != NULL && old != NULL) {
        remember(now->access_token);
        remember(now->refresh_token);
        if (expect_new) {
            CHECK(strcmp(now->access_token, old->access_token) != 0);
            CHECK(strcmp(now->refresh_token, old->refresh_token) != 0);
            CHECK(now->expires_at > util_wall_ms());
        } else {
            CHECK_STR(now->access_token, old->access_token);
            CHECK_STR(now->refresh_token, old->refresh_token);
        }
    }
    oauth_pair_free(now);
    oauth_pair_free(old);
    free(path);
}
#endif

/* After the failpoint kills: the new pair works; the old one (spent at the server) fails cleanly.
 */
static void failpoint_followup(void)
{
#ifdef POLLEN_FAILPOINTS
    char *newp = tpath("fp-new.json");
    char *oldp = tpath("fp-old.json");
    struct oauth_options on = options("fp-new", newp, 1000);
    struct oauth_options oo = options("fp-old", oldp, 1000);
    struct oauth_credential *cn = oauth_credential_oauth(&loop, http, &on);
    struct oauth_credential *co = oauth_credential_oauth(&loop, http, &oo);
    struct failed_rec fn = {0};
    struct failed_rec fo = {0};
    oauth_credential_on_failed(cn, on_failed, &fn);
    oauth_credential_on_failed(co, on_failed, &fo);
    struct got g = {0};
    long calls = token_calls();
    CHECK_INT(acquire_wait(cn, &g, 15000), 0); /* fresh: no request */
    CHECK_INT(token_calls(), calls);
    CHECK_INT(use_token(g.token, "demoLocation00000001"), 200);
    CHECK_INT(acquire_wait(co, &g, 15000), OAUTH_E_FAILED);
    CHECK_INT(token_calls(), calls + 1);
    CHECK_INT(fo.calls, 1);
    CHECK_INT(fn.calls, 0);
    oauth_credential_free(cn);
    oauth_credential_free(co);
    free(newp);
    free(oldp);
#endif
}

static void test_static(void)
{
    struct oauth_credential *c = oauth_credential_static(&loop, "pit", "tok_CANARY_pit_token");
    CHECK(c != NULL);
    struct got g = {0};
    CHECK_INT(acquire_wait(c, &g, 5000), 0);
    CHECK_STR(g.token, "tok_CANARY_pit_token");
    oauth_invalidate(c, "tok_some_other_token"); /* not its token: ignored */
    run_for(20);
    CHECK_STR(oauth_peek(c), "tok_CANARY_pit_token");
    CHECK_STR(oauth_credential_name(c), "pit");
    CHECK(oauth_credential_pair(c) != NULL && oauth_credential_pair(c)->expires_at == 0);
    CHECK(!oauth_credential_failed(c));

    /* Cancel: the callback never runs. */
    struct got gc = {0};
    struct oauth_wait *w = acquire(c, &gc);
    oauth_cancel(w);
    run_for(30);
    CHECK_INT(gc.calls, 0);

    /* A waiter that frees the credential from its callback; the others of the batch still
     * get their token, and later acquires are refused. */
    struct got g1 = {0};
    struct got g2 = {0};
    struct got g3 = {0};
    g1.free_me = c;
    int before = done;
    acquire(c, &g1);
    acquire(c, &g2);
    acquire(c, &g3);
    CHECK(run_until(&done, before + 3, 5000));
    CHECK_STR(g2.token, "tok_CANARY_pit_token");
    CHECK_STR(g3.token, "tok_CANARY_pit_token");

    /* A 401 for a static token: nothing to refresh, so it fails, later, from the
     * loop, with one reason that says to check the token; waiters get FAILED. */
    c = oauth_credential_static(&loop, "pit3", "tok_CANARY_pit_token");
    struct failed_rec f = {0};
    oauth_credential_on_failed(c, on_failed, &f);
    in_api = true;
    oauth_invalidate(c, "tok_CANARY_pit_token");
    in_api = false;
    CHECK_INT(f.calls, 0);
    CHECK_INT(acquire_wait(c, &g, 5000), OAUTH_E_FAILED);
    CHECK_INT(f.calls, 1);
    CHECK(strstr(f.reason, "the token was refused (HTTP 401): check `token =` in [location pit3]")
          != NULL);
    CHECK(oauth_credential_failed(c));
    CHECK(oauth_peek(c) == NULL);
    oauth_credential_free(c);

    /* Free with waiters still queued: they are cancelled at once. */
    c = oauth_credential_static(&loop, "pit2", "tok_CANARY_pit_token");
    struct got q = {0};
    acquire(c, &q);
    oauth_credential_free(c);
    CHECK_INT(q.calls, 1);
    CHECK_INT(q.err, OAUTH_E_CANCELLED);
    run_for(20);
    CHECK_INT(q.calls, 1);
}

static void test_exchange_and_fresh(const char *store)
{
    struct exch x;
    char *code = new_code("{\"client_id\":\"app\",\"location_id\":\"demoLocation00000001\"}");
    long calls = token_calls();
    CHECK_INT(exchange(code, store, "Location", &x), 0);
    CHECK(strstr(x.msg, "stored a Location token for location demoLocation00000001") != NULL);
    CHECK(strstr(x.msg, "contacts.readonly") != NULL);
    CHECK_INT(token_calls(), calls + 1);
    struct stat st;
    CHECK_INT(stat(store, &st), 0);
    CHECK_INT(st.st_mode & 07777, 0600);
    remember(code);

    /* A used code is refused: failed, with the server's reason and no secret. */
    char *other = tpath("refused.json");
    CHECK_INT(exchange(code, other, NULL, &x), OAUTH_E_FAILED);
    CHECK(strstr(x.msg, "invalid_grant") != NULL);
    CHECK(strstr(x.msg, code) == NULL);
    CHECK(access(other, F_OK) != 0);
    free(other);
    free(code);

    struct oauth_pair *p = NULL;
    char err[256];
    CHECK_INT(oauth_pair_load(store, &p, err, sizeof(err)), 0);
    struct oauth_options o = options("main", store, 60000);
    struct oauth_credential *c = oauth_credential_oauth(&loop, http, &o);
    CHECK(oauth_credential_pair(c) == NULL); /* loaded at the first acquire */
    struct got g = {0};
    calls = token_calls();
    CHECK_INT(acquire_wait(c, &g, 5000), 0);
    CHECK(p != NULL && strcmp(g.token, p->access_token) == 0);
    CHECK_INT(acquire_wait(c, &g, 5000), 0);
    CHECK_INT(token_calls(), calls); /* fresh: no request */
    CHECK(oauth_peek(c) != NULL && strcmp(oauth_peek(c), g.token) == 0);
    CHECK_STR(oauth_credential_pair(c)->location_id, "demoLocation00000001");
    CHECK_INT(use_token(g.token, "demoLocation00000001"), 200);
    /* A token that is no longer current is ignored by invalidate. */
    oauth_invalidate(c, "tok_some_older_token");
    CHECK(oauth_peek(c) != NULL);
    oauth_pair_free(p);
    oauth_credential_free(c);
}

/* A rotated pair whose save fails (F6) is kept and used, and saved once the disk is back. */
static void test_save_failure_keeps_the_pair(void)
{
    char *dir = tpath("savedir");
    char *away = tpath("savedir.away");
    char *store = xasprintf("%s/oauth-save.json", dir);
    CHECK_INT(util_mkdir_p(dir, 0700), 0);
    struct exch x;
    char *code = new_code("{\"client_id\":\"app\",\"location_id\":\"demoLocation00000001\"}");
    CHECK_INT(exchange(code, store, "Location", &x), 0);
    free(code);
    struct oauth_options o = options("save", store, 0);
    struct oauth_credential *c = oauth_credential_oauth(&loop, http, &o);
    struct failed_rec f = {0};
    oauth_credential_on_failed(c, on_failed, &f);
    struct got g = {0};
    CHECK_INT(acquire_wait(c, &g, 5000), 0);
    char first[OAUTH_MAX_TOKEN + 1];
    str_copy(first, sizeof(first), g.token);

    /* The store's directory becomes a file: every save fails (ENOTDIR), even for root. */
    CHECK_INT(rename(dir, away), 0);
    int fd = open(dir, O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    close(fd);
    oauth_invalidate(c, first);
    CHECK_INT(acquire_wait(c, &g, 10000), 0);
    CHECK(strcmp(g.token, first) != 0); /* the rotated pair is in use... */
    CHECK_INT(use_token(g.token, "demoLocation00000001"), 200);
    CHECK_INT(f.calls, 0);              /* ...and the credential did not fail */
    char rt[OAUTH_MAX_TOKEN + 1];
    str_copy(rt, sizeof(rt), oauth_credential_pair(c)->refresh_token);

    /* The disk is back: a retry (1 s backoff, doubling) saves the pair in memory. */
    CHECK_INT(unlink(dir), 0);
    CHECK_INT(rename(away, dir), 0);
    bool saved = false;
    for (int i = 0; i < 80 && !saved; i++) {
        run_for(100);
        struct oauth_pair *q = NULL;
        char err[256];
        if (oauth_pair_load(store, &q, err, sizeof(err)) == 0) {
            saved = strcmp(q->refresh_token, rt) == 0;
            oauth_pair_free(q);
        }
    }
    CHECK(saved);
    CHECK_INT(f.calls, 0);
    oauth_credential_free(c);
    free(store);
    free(away);
    free(dir);
}

static void test_refresh_ahead(const char *store)
{
    struct oauth_options o = options("main", store, 60000);
    struct oauth_credential *c = oauth_credential_oauth(&loop, http, &o);
    struct failed_rec f = {0};
    oauth_credential_on_failed(c, on_failed, &f);
    struct got g = {0};
    CHECK_INT(acquire_wait(c, &g, 5000), 0);
    char first[OAUTH_MAX_TOKEN + 1];
    str_copy(first, sizeof(first), g.token);
    char first_rt[OAUTH_MAX_TOKEN + 1];
    str_copy(first_rt, sizeof(first_rt), oauth_credential_pair(c)->refresh_token);

    /* A 401: one refresh, and the rotated pair is on disk before anyone gets the token. */
    set_lifetime(2);
    long calls = token_calls();
    oauth_invalidate(c, first);
    CHECK(oauth_peek(c) == NULL);
    g.check_path = store;
    CHECK_INT(acquire_wait(c, &g, 10000), 0);
    CHECK(g.disk_ok);
    CHECK(strcmp(g.token, first) != 0);
    CHECK_INT(token_calls(), calls + 1);
    const struct oauth_pair *p = oauth_credential_pair(c);
    CHECK(strcmp(p->refresh_token, first_rt) != 0);
    CHECK(p->expires_at - p->obtained_at == 2000);
    CHECK_STR(p->user_type, "Location");               /* kept across the refresh */
    CHECK_STR(p->location_id, "demoLocation00000001");
    char second[OAUTH_MAX_TOKEN + 1];
    str_copy(second, sizeof(second), g.token);
    CHECK_INT(use_token(second, "demoLocation00000001"), 200);
    /* The old access token stays valid at GHL until it expires; a late 401 for it is ignored. */
    oauth_invalidate(c, first);
    CHECK(oauth_peek(c) != NULL);

    /* Fresh for the first half of its 2 s life (the 60 s margin is capped): no request. */
    CHECK_INT(acquire_wait(c, &g, 5000), 0);
    CHECK_STR(g.token, second);
    CHECK_INT(token_calls(), calls + 1);

    /* Inside the margin: acquire refreshes once, ahead of expiry. */
    while (util_wall_ms() + 1000 < p->expires_at) {
        sleep_ms(20);
    }
    CHECK(oauth_peek(c) == NULL);
    CHECK_INT(acquire_wait(c, &g, 10000), 0);
    CHECK(g.disk_ok);
    CHECK(strcmp(g.token, second) != 0);
    CHECK_INT(token_calls(), calls + 2);
    CHECK_INT(stat_of("by_grant_type.refresh_token") >= 2, 1);

    /* A transient failure during refresh-ahead: the still-valid token is handed out. */
    p = oauth_credential_pair(c);
    while (util_wall_ms() + 1000 < p->expires_at) {
        sleep_ms(20);
    }
    char third[OAUTH_MAX_TOKEN + 1];
    str_copy(third, sizeof(third), g.token);
    CHECK_INT(
        ctl("POST", "/_control/faults",
            "{\"faults\":[{\"kind\":\"status\",\"status\":503,\"path\":\"^/oauth/token$\"}]}"),
        200);
    long faulted = token_calls();
    g.check_path = NULL;
    CHECK_INT(acquire_wait(c, &g, 10000), 0);
    CHECK_STR(g.token, third);
    CHECK_INT(token_calls(), faulted); /* the fault answered before the endpoint */

    /* Once it has expired: waiters get RETRY, and the next acquire retries after a backoff. */
    oauth_invalidate(c, third);
    CHECK_INT(
        ctl("POST", "/_control/faults",
            "{\"faults\":[{\"kind\":\"status\",\"status\":502,\"path\":\"^/oauth/token$\"}]}"),
        200);
    CHECK_INT(acquire_wait(c, &g, 10000), OAUTH_E_RETRY);
    CHECK_STR(g.token, "");
    uint64_t t0 = util_mono_ms();
    g.check_path = store;
    CHECK_INT(acquire_wait(c, &g, 10000), 0);
    CHECK(util_mono_ms() - t0 >= 900); /* backoff: no hammering of the token endpoint */
    CHECK(g.disk_ok);
    CHECK_INT(token_calls(), faulted + 1);
    CHECK_INT(f.calls, 0);
    CHECK(!oauth_credential_failed(c));
    set_lifetime(3600);
    oauth_credential_free(c);
}

static void test_single_flight(const char *store)
{
    struct oauth_options o = options("main", store, 60000);
    struct oauth_credential *c = oauth_credential_oauth(&loop, http, &o);
    struct got g = {0};
    CHECK_INT(acquire_wait(c, &g, 5000), 0);
    char old[OAUTH_MAX_TOKEN + 1];
    str_copy(old, sizeof(old), g.token);

    enum { N = 50 };
    static struct got gs[N];
    long calls = token_calls();
    long refreshes = stat_of("by_grant_type.refresh_token");
    int before = done;
    /* 50 requests come back 401 with the same token, each invalidates and acquires again. */
    for (int i = 0; i < N; i++) {
        memset(&gs[i], 0, sizeof(gs[i]));
        gs[i].check_path = store;
        oauth_invalidate(c, old);
        CHECK(acquire(c, &gs[i]) != NULL);
        if (i == N / 2) {
            uv_run(&loop, UV_RUN_NOWAIT); /* the refresh is in flight for the second half */
        }
    }
    CHECK(run_until(&done, before + N, 15000));
    int same = 0;
    for (int i = 0; i < N; i++) {
        same += gs[i].calls == 1 && gs[i].err == 0 && !gs[i].sync && gs[i].disk_ok &&
                strcmp(gs[i].token, gs[0].token) == 0;
    }
    CHECK_INT(same, N);
    CHECK(strcmp(gs[0].token, old) != 0);
    CHECK_INT(token_calls(), calls + 1);
    CHECK_INT(stat_of("by_grant_type.refresh_token"), refreshes + 1);
    /* More 401s for the old token after the refresh change nothing. */
    oauth_invalidate(c, old);
    CHECK_INT(acquire_wait(c, &g, 5000), 0);
    CHECK_STR(g.token, gs[0].token);
    CHECK_INT(token_calls(), calls + 1);
    oauth_credential_free(c);
}

static void test_spent_refresh_token(const char *store)
{
    /* Keep a copy of the current pair, then let a refresh spend its refresh token. */
    struct oauth_pair *saved = NULL;
    char err[256];
    CHECK_INT(oauth_pair_load(store, &saved, err, sizeof(err)), 0);
    struct oauth_options o = options("main", store, 60000);
    struct oauth_credential *c = oauth_credential_oauth(&loop, http, &o);
    struct got g = {0};
    CHECK_INT(acquire_wait(c, &g, 5000), 0);
    oauth_invalidate(c, g.token);
    CHECK_INT(acquire_wait(c, &g, 5000), 0);
    oauth_credential_free(c);

    /* Restore the old file (as a backup restore would), expired so that it must refresh. */
    saved->expires_at = util_wall_ms() - 1;
    CHECK_INT(oauth_pair_save(store, saved), 0);
    char *before_text = read_text(store);

    c = oauth_credential_oauth(&loop, http, &o);
    struct failed_rec f = {0};
    oauth_credential_on_failed(c, on_failed, &f);
    long calls = token_calls();
    static struct got gs[3];
    int before = done;
    for (int i = 0; i < 3; i++) {
        memset(&gs[i], 0, sizeof(gs[i]));
        CHECK(acquire(c, &gs[i]) != NULL);
    }
    CHECK(run_until(&done, before + 3, 10000));
    for (int i = 0; i < 3; i++) {
        CHECK_INT(gs[i].err, OAUTH_E_FAILED);
        CHECK_STR(gs[i].token, "");
    }
    CHECK(oauth_credential_failed(c));
    CHECK_INT(f.calls, 1);
    CHECK(strstr(f.reason, "invalid_grant") != NULL);
    CHECK(strstr(f.reason, "pollen auth login") != NULL);
    CHECK(strstr(f.reason, "'main'") != NULL);
    CHECK_STR(oauth_credential_failure(c), f.reason);
    CHECK(oauth_acquire(c, on_token, &g) == NULL);
    CHECK(oauth_peek(c) == NULL);
    /* No retry loop: still one call after a while, and the store is untouched. */
    run_for(1500);
    CHECK_INT(token_calls(), calls + 1);
    CHECK_INT(f.calls, 1);
    char *after_text = read_text(store);
    CHECK(before_text != NULL && after_text != NULL && strcmp(before_text, after_text) == 0);
    free(before_text);
    free(after_text);
    oauth_pair_free(saved);
    oauth_credential_free(c);
}

static void test_bad_stores(void)
{
    char *missing = tpath("nope/oauth-x.json");
    struct oauth_options o = options("x", missing, 1000);
    struct oauth_credential *c = oauth_credential_oauth(&loop, http, &o);
    struct failed_rec f = {0};
    oauth_credential_on_failed(c, on_failed, &f);
    struct got g = {0};
    CHECK_INT(acquire_wait(c, &g, 5000), OAUTH_E_FAILED);
    CHECK_INT(f.calls, 1);
    CHECK(strstr(f.reason, "no token store") != NULL);
    CHECK(strstr(f.reason, "pollen auth login") != NULL);
    oauth_credential_free(c);

    char *loose = tpath("loose.json");
    struct oauth_pair *p = sample_pair("tok_CANARY_loose_a", "tok_CANARY_loose_r");
    oauth_pair_save(loose, p);
    chmod(loose, 0644);
    o = options("loose", loose, 1000);
    c = oauth_credential_oauth(&loop, http, &o);
    memset(&f, 0, sizeof(f));
    oauth_credential_on_failed(c, on_failed, &f);
    long calls = token_calls();
    CHECK_INT(acquire_wait(c, &g, 5000), OAUTH_E_FAILED);
    CHECK_INT(f.calls, 1);
    CHECK(strstr(f.reason, "chmod 600") != NULL);
    CHECK_INT(token_calls(), calls);
    oauth_credential_free(c);
    oauth_pair_free(p);
    free(loose);
    free(missing);

    o = options("x", "p", 0);
    o.client_secret = NULL;
    CHECK(oauth_credential_oauth(&loop, http, &o) == NULL);
}

static void test_free_in_flight(void)
{
    char *code = new_code("{\"client_id\":\"app\",\"location_id\":\"demoLocation00000001\"}");
    char *path = store_from_code(code, "inflight.json", util_wall_ms() - 1);
    struct oauth_options o = options("inflight", path, 1000);
    struct oauth_credential *c = oauth_credential_oauth(&loop, http, &o);
    struct got g = {0};
    acquire(c, &g);
    uv_run(&loop, UV_RUN_NOWAIT); /* starts the refresh request */
    CHECK_INT(http_in_flight(http), 1);
    oauth_credential_free(c);
    CHECK_INT(g.calls, 1);
    CHECK_INT(g.err, OAUTH_E_CANCELLED);
    for (int i = 0; i < 200 && http_in_flight(http) > 0; i++) {
        run_for(10);
    }
    CHECK_INT(http_in_flight(http), 0);
    free(path);
    free(code);
}

static void test_agency(void)
{
    char *code = new_code("{\"client_id\":\"app\",\"user_type\":\"Company\","
                          "\"company_id\":\"agencyCompany0000001\",\"approved_locations\":"
                          "[\"agencyLocA0000000001\",\"agencyLocB0000000002\"]}");
    char *store = tpath("oauth-agency.json");
    struct exch x;
    CHECK_INT(exchange(code, store, "Company", &x), 0);
    CHECK(strstr(x.msg, "stored a Company token for company agencyCompany0000001") != NULL);
    free(code);

    struct oauth_options o = options("agency", store, 60000);
    struct oauth_credential *agency = oauth_credential_oauth(&loop, http, &o);
    struct oauth_credential *la =
        oauth_credential_location(&loop, http, agency, "agencyLocA0000000001", loc_token_url);
    struct oauth_credential *lb =
        oauth_credential_location(&loop, http, agency, "agencyLocB0000000002", loc_token_url);
    struct oauth_credential *lc =
        oauth_credential_location(&loop, http, agency, "agencyLocC0000000003", loc_token_url);
    struct failed_rec fa = {0};
    struct failed_rec fc = {0};
    struct failed_rec fag = {0};
    oauth_credential_on_failed(la, on_failed, &fa);
    oauth_credential_on_failed(lc, on_failed, &fc);
    oauth_credential_on_failed(agency, on_failed, &fag);
    CHECK_STR(oauth_credential_name(la), "agency/agencyLocA0000000001");

    long lcalls = location_calls();
    long tcalls = token_calls();
    struct got g = {0};
    CHECK_INT(acquire_wait(la, &g, 10000), 0);
    CHECK_INT(location_calls(), lcalls + 1);
    CHECK_INT(token_calls(), tcalls); /* the agency token was fresh */
    char ta[OAUTH_MAX_TOKEN + 1];
    str_copy(ta, sizeof(ta), g.token);
    CHECK_INT(use_token(ta, "agencyLocA0000000001"), 200);
    CHECK_INT(use_token(ta, "agencyLocB0000000002"), 403); /* a location token is per location */
    const struct oauth_pair *lp = oauth_credential_pair(la);
    CHECK(lp != NULL && lp->refresh_token == NULL);
    CHECK_STR(lp->location_id, "agencyLocA0000000001");
    CHECK_STR(lp->company_id, "agencyCompany0000001");
    CHECK_STR(lp->user_type, "Location");

    /* Fresh: no new request. After a 401: one new location token. */
    CHECK_INT(acquire_wait(la, &g, 5000), 0);
    CHECK_STR(g.token, ta);
    CHECK_INT(location_calls(), lcalls + 1);
    oauth_invalidate(la, ta);
    CHECK_INT(acquire_wait(la, &g, 10000), 0);
    CHECK(strcmp(g.token, ta) != 0);
    CHECK_INT(location_calls(), lcalls + 2);

    /* Single-flight for location tokens too. */
    enum { N = 20 };
    static struct got gs[N];
    int before = done;
    for (int i = 0; i < N; i++) {
        memset(&gs[i], 0, sizeof(gs[i]));
        acquire(lb, &gs[i]);
    }
    CHECK(run_until(&done, before + N, 10000));
    int ok = 0;
    for (int i = 0; i < N; i++) {
        ok += gs[i].err == 0 && strcmp(gs[i].token, gs[0].token) == 0;
    }
    CHECK_INT(ok, N);
    CHECK_INT(location_calls(), lcalls + 3);
    CHECK_INT(use_token(gs[0].token, "agencyLocB0000000002"), 200);

    /* The server rejects the agency token (401): one agency refresh, one retry. */
    const char *agency_token = oauth_credential_pair(agency)->access_token;
    char body[OAUTH_MAX_TOKEN + 64];
    snprintf(body, sizeof(body), "{\"access_token\":\"%s\"}", agency_token);
    CHECK_INT(ctl("POST", "/_control/oauth/expire_all", body), 200);
    oauth_invalidate(la, oauth_credential_pair(la)->access_token);
    tcalls = token_calls();
    CHECK_INT(acquire_wait(la, &g, 10000), 0);
    CHECK_INT(token_calls(), tcalls + 1);
    CHECK_INT(location_calls(), lcalls + 4);
    CHECK_INT(use_token(g.token, "agencyLocA0000000001"), 200);

    /* A location the installation did not approve: that credential fails, alone. */
    CHECK_INT(acquire_wait(lc, &g, 10000), OAUTH_E_FAILED);
    CHECK_INT(fc.calls, 1);
    CHECK(strstr(fc.reason, "agencyLocC0000000003") != NULL);
    CHECK(!oauth_credential_failed(la));
    CHECK(!oauth_credential_failed(agency));
    oauth_credential_free(lc);

    /* A Location installation cannot serve as an agency: refused without a request. */
    char *lcode = new_code("{\"client_id\":\"app\",\"location_id\":\"demoLocation00000001\"}");
    char *location_store = store_from_code(lcode, "oauth-location.json", 0);
    free(lcode);
    struct oauth_options lo = options("notagency", location_store, 60000);
    struct oauth_credential *fake = oauth_credential_oauth(&loop, http, &lo);
    struct oauth_credential *lf =
        oauth_credential_location(&loop, http, fake, "agencyLocA0000000001", loc_token_url);
    struct failed_rec ff = {0};
    oauth_credential_on_failed(lf, on_failed, &ff);
    lcalls = location_calls();
    CHECK_INT(acquire_wait(lf, &g, 10000), OAUTH_E_FAILED);
    CHECK_INT(ff.calls, 1);
    CHECK(strstr(ff.reason, "not a Company token") != NULL);
    CHECK_INT(location_calls(), lcalls);

    /* The agency fails (spent refresh token): its locations fail when they next need it. */
    struct oauth_pair *ap = NULL;
    char err[256];
    CHECK_INT(oauth_pair_load(store, &ap, err, sizeof(err)), 0);
    oauth_invalidate(agency, oauth_credential_pair(agency)->access_token);
    struct got ga = {0};
    CHECK_INT(acquire_wait(agency, &ga, 10000), 0); /* spends ap's refresh token */
    oauth_credential_free(lb);
    oauth_credential_free(la);
    oauth_credential_free(agency);
    ap->expires_at = util_wall_ms() - 1;
    CHECK_INT(oauth_pair_save(store, ap), 0);
    oauth_pair_free(ap);
    agency = oauth_credential_oauth(&loop, http, &o);
    la = oauth_credential_location(&loop, http, agency, "agencyLocA0000000001", loc_token_url);
    memset(&fa, 0, sizeof(fa));
    oauth_credential_on_failed(la, on_failed, &fa);
    CHECK_INT(acquire_wait(la, &g, 10000), OAUTH_E_FAILED);
    CHECK_INT(fa.calls, 1);
    CHECK(strstr(fa.reason, "agency credential 'agency' has failed") != NULL);
    CHECK(oauth_credential_failed(agency));

    oauth_credential_free(lf);
    oauth_credential_free(fake);
    oauth_credential_free(la);
    oauth_credential_free(agency);
    free(location_store);
    free(store);
}

static void on_http_closed(void *ud)
{
    *(int *)ud = 1;
}

static void sandbox_tests(void)
{
    int rc = sandbox_start();
    if (rc != 0) {
        fprintf(stderr, rc == 77 ? "python3 missing: sandbox tests skipped\n"
                                 : "sandbox did not start\n");
        CHECK(rc == 77);
        sandbox_stop();
        return;
    }
    snprintf(token_url, sizeof(token_url), "%s/oauth/token", base_url);
    snprintf(loc_token_url, sizeof(loc_token_url), "%s/oauth/locationToken", base_url);
    CHECK_INT(ctl("POST", "/_control/oauth/clients",
                  "{\"client_id\":\"app\",\"client_secret\":\"tok_CANARY_client_secret\","
                  "\"scopes\":\"contacts.readonly contacts.write oauth.readonly oauth.write\"}"),
              200);
    CHECK_INT(ctl("POST", "/_control/oauth/config", "{\"token_prefix\":\"tok_CANARY_\"}"), 200);
    remember("tok_CANARY_client_secret");

    /* Capture everything logged from here on, to look for secrets in it. */
    char *log_path = tpath("oauth-test.log");
    fflush(stderr);
    int saved_err = dup(2);
    int lf = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(lf, 2);
    close(lf);
    log_set_level(LOG_DEBUG);

#ifdef POLLEN_FAILPOINTS
    /* Forked before this process uses its own loop or libuv's thread pool. */
    failpoint_case("token.after_response_before_persist", false);
    failpoint_case("token.after_persist", true);
#endif

    uv_loop_init(&loop);
    uv_timer_init(&loop, &guard);
    struct http_client_options ho = {.allow_plain_http_loopback = true};
    http = http_client_create(&loop, &ho);

    char *store = tpath("oauth-main.json");
    test_static();
    test_exchange_and_fresh(store);
    test_refresh_ahead(store);
    test_save_failure_keeps_the_pair();
    test_single_flight(store);
    test_spent_refresh_token(store);
    test_bad_stores();
    test_free_in_flight();
    failpoint_followup();
    test_agency();
    free(store);

    int closed = 0;
    http_client_close(http, on_http_closed, &closed);
    run_until(&closed, 1, 10000);
    CHECK_INT(closed, 1);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);

    /* No secret the test saw (tokens, codes, the client secret) reached the log. */
    log_set_level(LOG_INFO);
    fflush(stderr);
    dup2(saved_err, 2);
    close(saved_err);
    char *logged = read_text(log_path);
    CHECK(logged != NULL && strstr(logged, "new access token obtained") != NULL);
    CHECK(logged != NULL && strstr(logged, "[REDACTED]") == NULL);
    CHECK(nsecrets > 20);
    int leaks = 0;
    for (size_t i = 0; logged != NULL && i < nsecrets; i++) {
        if (strstr(logged, secrets_seen[i]) != NULL) {
            fprintf(stderr, "a secret reached the log\n");
            leaks++;
        }
    }
    CHECK_INT(leaks, 0);
    CHECK(logged != NULL && strstr(logged, "tok_CANARY") == NULL);
    /* invalid_grant on the main credential: exactly one error line for it. */
    int lines = 0;
    for (const char *p = logged; p != NULL && (p = strstr(p, "credential 'main' failed")) != NULL;
         p++) {
        lines++;
    }
    CHECK_INT(lines, 1);
    if (test_failures > 0 && logged != NULL) {
        fprintf(stderr, "---- captured log ----\n%s---- end ----\n", logged);
    }
    free(logged);
    free(log_path);
    sandbox_stop();
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "%s/oauth-%ld", test_tmp_root(), (long)getpid());
    util_mkdir_p(tmpdir, 0700);
    util_rand_seed();
    curl_global_init(CURL_GLOBAL_ALL);

    test_round_trip();
    test_leftover_tmp();
    test_crash_atomicity();
    test_refusals();
    test_response_parsing();
    test_authorize_url();
    sandbox_tests();

    for (size_t i = 0; i < nsecrets; i++) {
        free(secrets_seen[i]);
    }
    log_clear_secrets();
    json_scratch_release();
    curl_global_cleanup();
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (test_failures == 0 && system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return test_done("oauth");
}

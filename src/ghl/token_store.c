/*
 * token_store: the OAuth token pair as a document on disk (see oauth.h,
 * "Token store"): the codec (strict field checks, bounded sizes), the
 * private-file read through core/secret and the atomic, durable save
 * (temp file, fsync, rename, fsync of the directory). Also the small
 * helpers the oauth files share (oauth_int.h).
 */
#include "oauth.h"
#include "oauth_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "secret.h"
#include "url.h"
#include "util.h"

#define MAX_FIELD 4096                /* scope, ids, userType */
#define MAX_APPROVED 100000           /* approvedLocations entries */
#define MAX_EXPIRES_IN_S (10LL * 366 * 86400)

/* ---- small helpers ---- */

void oauth__set_err(char *err, size_t errlen, const char *fmt, ...) ATTR_PRINTF(3, 4);

void oauth__set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void oauth__wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* Zeroes every string of a cJSON tree (it may have held tokens) before it is deleted. */
void oauth__wipe_json(cJSON *n)
{
    for (; n != NULL; n = n->next) {
        if (n->valuestring != NULL) {
            explicit_bzero(n->valuestring, strlen(n->valuestring));
        }
        oauth__wipe_json(n->child);
    }
}

void oauth__delete_json(cJSON *n)
{
    oauth__wipe_json(n);
    cJSON_Delete(n);
}

/* Appends "[&]name=value" to a form body or query string; value NULL adds nothing. */
int oauth__form_add(struct buf *b, const char *name, const char *value)
{
    if (value == NULL) {
        return 0;
    }
    int rc = 0;
    if (b->len > 0) {
        rc = buf_append(b, "&", 1);
    }
    if (rc == 0) {
        rc = url_append_escaped(b, name, strlen(name));
    }
    if (rc == 0) {
        rc = buf_append(b, "=", 1);
    }
    if (rc == 0) {
        rc = url_append_escaped(b, value, strlen(value));
    }
    return rc;
}

/* Wipes (the form held secrets) and frees a buf. */
void oauth__wipe_buf(struct buf *b)
{
    if (b->data != NULL) {
        explicit_bzero(b->data, b->len);
    }
    buf_finish(b);
}

/* Copies untrusted server text for a message: at most 160 bytes, control bytes as spaces,
 * registered secrets masked. */
void oauth__server_text(const char *in, char *out, size_t size)
{
    char tmp[161];
    size_t n = 0;
    for (const char *p = in ? in : ""; *p != '\0' && n < sizeof(tmp) - 1; p++) {
        tmp[n++] = (unsigned char)*p < 0x20 || *p == 0x7f ? ' ' : *p;
    }
    tmp[n] = '\0';
    log_redact(tmp, out, size);
}

/* ---- pairs ---- */

void oauth_pair_free(struct oauth_pair *p)
{
    if (p == NULL) {
        return;
    }
    oauth__wipe_free(p->access_token);
    oauth__wipe_free(p->refresh_token);
    free(p->scope);
    free(p->user_type);
    free(p->location_id);
    free(p->company_id);
    free(p->user_id);
    strv_free(p->approved_locations);
    free(p);
}

char *oauth__dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

struct oauth_pair *oauth_pair_dup(const struct oauth_pair *p)
{
    struct oauth_pair *d = xcalloc(1, sizeof(*d));
    d->access_token = oauth__dup_or_null(p->access_token);
    d->refresh_token = oauth__dup_or_null(p->refresh_token);
    d->expires_at = p->expires_at;
    d->obtained_at = p->obtained_at;
    d->scope = oauth__dup_or_null(p->scope);
    d->user_type = oauth__dup_or_null(p->user_type);
    d->location_id = oauth__dup_or_null(p->location_id);
    d->company_id = oauth__dup_or_null(p->company_id);
    d->user_id = oauth__dup_or_null(p->user_id);
    d->approved_locations = strv_dup(p->approved_locations);
    return d;
}

static bool token_chars_ok(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++, n++) {
        if (*p < 0x21 || *p > 0x7e || n >= OAUTH_MAX_TOKEN) {
            return false;
        }
    }
    return n > 0;
}

/*
 * Reads member key as a string into *dst. Absent or null leaves *dst NULL.
 * Returns false (with err) when it is another type, too long or has control bytes.
 */
static bool get_field(const cJSON *o, const char *key, bool token, char **dst, char *err,
                      size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *dst = NULL;
    if (v == NULL || cJSON_IsNull(v)) {
        return true;
    }
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        oauth__set_err(err, errlen, "\"%s\" is not a string", key);
        return false;
    }
    if (token) {
        if (!token_chars_ok(v->valuestring)) {
            oauth__set_err(err, errlen, "\"%s\" is empty, longer than %d bytes or has bytes outside "
                    "printable ASCII", key, OAUTH_MAX_TOKEN);
            return false;
        }
    } else {
        size_t n = strnlen(v->valuestring, MAX_FIELD + 1);
        if (n > MAX_FIELD) {
            oauth__set_err(err, errlen, "\"%s\" is longer than %d bytes", key, MAX_FIELD);
            return false;
        }
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)v->valuestring[i] < 0x20) {
                oauth__set_err(err, errlen, "\"%s\" has control characters", key);
                return false;
            }
        }
    }
    *dst = xstrdup(v->valuestring);
    return true;
}

/* Epoch-ms member (non-negative integer below 2^53). */
static bool get_ms(const cJSON *o, const char *key, uint64_t *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != (double)(uint64_t)v->valuedouble) {
        oauth__set_err(err, errlen, "\"%s\" is missing or not a non-negative integer", key);
        return false;
    }
    *out = (uint64_t)v->valuedouble;
    return true;
}

static bool get_approved(const cJSON *o, char ***dst, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "approvedLocations");
    *dst = NULL;
    if (v == NULL || cJSON_IsNull(v)) {
        return true;
    }
    if (!cJSON_IsArray(v)) {
        oauth__set_err(err, errlen, "\"approvedLocations\" is not an array");
        return false;
    }
    int n = cJSON_GetArraySize(v);
    if (n < 0 || n > MAX_APPROVED) {
        oauth__set_err(err, errlen, "\"approvedLocations\" has more than %d entries", MAX_APPROVED);
        return false;
    }
    char **list = xcalloc((size_t)n + 1, sizeof(char *));
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, v)
    {
        if (!cJSON_IsString(item) || item->valuestring == NULL ||
            strnlen(item->valuestring, MAX_FIELD + 1) > MAX_FIELD || i >= n) {
            oauth__set_err(err, errlen, "\"approvedLocations\" holds a value that is not a short string");
            strv_free(list);
            return false;
        }
        list[i++] = xstrdup(item->valuestring);
    }
    *dst = list;
    return true;
}

/* The fields both formats share. */
static bool get_common(const cJSON *o, struct oauth_pair *p, char *err, size_t errlen)
{
    if (!get_field(o, "access_token", true, &p->access_token, err, errlen) ||
        !get_field(o, "refresh_token", true, &p->refresh_token, err, errlen) ||
        !get_field(o, "scope", false, &p->scope, err, errlen) ||
        !get_field(o, "userType", false, &p->user_type, err, errlen) ||
        !get_field(o, "locationId", false, &p->location_id, err, errlen) ||
        !get_field(o, "companyId", false, &p->company_id, err, errlen) ||
        !get_field(o, "userId", false, &p->user_id, err, errlen) ||
        !get_approved(o, &p->approved_locations, err, errlen)) {
        return false;
    }
    if (p->access_token == NULL) {
        oauth__set_err(err, errlen, "\"access_token\" is missing");
        return false;
    }
    return true;
}

/* Parses a document (store file or response body) into an object. */
int oauth__parse_doc(const char *data, size_t len, cJSON **out, char *err, size_t errlen)
{
    size_t off = 0;
    *out = NULL;
    if (len > OAUTH_MAX_DOC) {
        oauth__set_err(err, errlen, "document larger than %d bytes", OAUTH_MAX_DOC);
        return -EFBIG;
    }
    if (json_parse(data, len, out, &off) != 0) {
        oauth__set_err(err, errlen, "not valid JSON (error at byte %zu)", off);
        return -EINVAL;
    }
    if (!cJSON_IsObject(*out)) {
        oauth__set_err(err, errlen, "not a JSON object");
        oauth__delete_json(*out);
        *out = NULL;
        return -EINVAL;
    }
    return 0;
}

int oauth_pair_from_response(const char *json, size_t len, uint64_t now_wall_ms,
                             struct oauth_pair **out, char *err, size_t errlen)
{
    *out = NULL;
    oauth__set_err(err, errlen, "ok");
    if (json == NULL) {
        oauth__set_err(err, errlen, "no response body");
        return -EINVAL;
    }
    cJSON *root;
    int rc = oauth__parse_doc(json, len, &root, err, errlen);
    if (rc != 0) {
        return -EINVAL;
    }
    struct oauth_pair *p = xcalloc(1, sizeof(*p));
    if (!get_common(root, p, err, errlen)) {
        goto fail;
    }
    const cJSON *ei = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
    if (!cJSON_IsNumber(ei) || !(ei->valuedouble >= 1) ||
        ei->valuedouble > (double)MAX_EXPIRES_IN_S) {
        oauth__set_err(err, errlen, "\"expires_in\" is missing or not between 1 s and 10 years");
        goto fail;
    }
    p->obtained_at = now_wall_ms;
    p->expires_at = now_wall_ms + (uint64_t)(ei->valuedouble * 1000.0);
    log_add_secret(p->access_token);
    log_add_secret(p->refresh_token);
    oauth__delete_json(root);
    *out = p;
    return 0;

fail:
    oauth_pair_free(p);
    oauth__delete_json(root);
    return -EINVAL;
}

/* oauth_pair_load's message and return code for a store secret_read_file refused. */
static int store_read_failed(const char *path, const struct secret_failure *f, int rc, char *err,
                             size_t errlen)
{
    switch (f->step) {
    case SECRET_OPEN:
        if (f->err == ENOENT) {
            oauth__set_err(err, errlen, "no token store at '%s'", path);
            return -ENOENT;
        }
        if (f->err == ELOOP) {
            oauth__set_err(err, errlen, "'%s' is a symbolic link; a token store must be a regular file "
                    "(refusing to follow it)", path);
            return -EPERM;
        }
        oauth__set_err(err, errlen, "cannot open '%s': %s", path, strerror(f->err));
        return rc;
    case SECRET_STAT:
        oauth__set_err(err, errlen, "cannot stat '%s': %s", path, strerror(f->err));
        return rc;
    case SECRET_TYPE:
        oauth__set_err(err, errlen, "'%s' is not a regular file", path);
        return rc;
    case SECRET_OWNER:
        oauth__set_err(err, errlen, "'%s' is owned by uid %u, not by the user running pollen (uid %u)",
                path, f->uid, (unsigned)geteuid());
        return rc;
    case SECRET_MODE:
        oauth__set_err(err, errlen, "permissions %04o for '%s' are too open; run: chmod 600 %s", f->mode,
                path, path);
        return rc;
    case SECRET_SIZE:
        oauth__set_err(err, errlen, "'%s' is larger than %d bytes", path, OAUTH_MAX_DOC);
        return rc;
    case SECRET_READ:
        oauth__set_err(err, errlen, "cannot read '%s': %s", path, strerror(f->err));
        return rc;
    case SECRET_OK:
        break;
    }
    return rc;
}

int oauth_pair_load(const char *path, struct oauth_pair **out, char *err, size_t errlen)
{
    *out = NULL;
    oauth__set_err(err, errlen, "ok");
    /* O_NOFOLLOW, checked on the open fd (owner, mode 0600), read from it. */
    char *data = NULL;
    size_t len = 0;
    struct secret_failure f;
    int rc = secret_read_file(path, OAUTH_MAX_DOC, SECRET_PRIVATE, &data, &len, &f);
    if (rc != 0) {
        return store_read_failed(path, &f, rc, err, errlen);
    }

    char why[200];
    cJSON *root;
    rc = oauth__parse_doc(data, len, &root, why, sizeof(why));
    if (rc != 0) {
        rc = -EINVAL;
        oauth__set_err(err, errlen, "'%s': %s", path, why);
        goto fail_read;
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    struct oauth_pair *p = xcalloc(1, sizeof(*p));
    if (!cJSON_IsNumber(ver) || ver->valuedouble != 1.0) {
        oauth__set_err(why, sizeof(why), "\"version\" is missing or not 1");
        goto fail_parse;
    }
    if (!get_common(root, p, why, sizeof(why)) ||
        !get_ms(root, "expires_at", &p->expires_at, why, sizeof(why)) ||
        !get_ms(root, "obtained_at", &p->obtained_at, why, sizeof(why))) {
        goto fail_parse;
    }
    if (p->refresh_token == NULL) {
        oauth__set_err(why, sizeof(why), "\"refresh_token\" is missing");
        goto fail_parse;
    }
    log_add_secret(p->access_token);
    log_add_secret(p->refresh_token);
    oauth__delete_json(root);
    secret_wipe_buf(data, len);
    *out = p;
    return 0;

fail_parse:
    rc = -EINVAL;
    oauth__set_err(err, errlen, "'%s': %s", path, why);
    oauth_pair_free(p);
    oauth__delete_json(root);
fail_read:
    secret_wipe_buf(data, len);
    return rc;
}

static void add_str(cJSON *o, const char *key, const char *value)
{
    if (value != NULL) {
        cJSON_AddStringToObject(o, key, value);
    }
}

/* The store document (cJSON allocates it; free with cJSON_free after wiping), or NULL on OOM. */
static char *pair_to_json(const struct oauth_pair *p)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        return NULL;
    }
    cJSON_AddNumberToObject(o, "version", 1);
    add_str(o, "access_token", p->access_token);
    add_str(o, "refresh_token", p->refresh_token);
    /* Epoch ms are below 2^53: cJSON prints them exactly (%1.15g gives all 13 digits). */
    cJSON_AddNumberToObject(o, "expires_at", (double)p->expires_at);
    cJSON_AddNumberToObject(o, "obtained_at", (double)p->obtained_at);
    add_str(o, "scope", p->scope);
    add_str(o, "userType", p->user_type);
    add_str(o, "locationId", p->location_id);
    add_str(o, "companyId", p->company_id);
    add_str(o, "userId", p->user_id);
    if (p->approved_locations != NULL) {
        cJSON *a = cJSON_AddArrayToObject(o, "approvedLocations");
        for (size_t i = 0; a != NULL && p->approved_locations[i] != NULL; i++) {
            cJSON_AddItemToArray(a, cJSON_CreateString(p->approved_locations[i]));
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    oauth__delete_json(o);
    return s;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        return xstrdup(".");
    }
    if (slash == path) {
        return xstrdup("/");
    }
    return xstrndup(path, (size_t)(slash - path));
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int oauth_pair_save(const char *path, const struct oauth_pair *p)
{
    if (path == NULL || *path == '\0' || p == NULL || p->access_token == NULL) {
        return -EINVAL;
    }
    int rc;
    char *doc = pair_to_json(p);
    if (doc == NULL) {
        return -ENOMEM;
    }
    size_t len = strlen(doc);
    char *tmp = xasprintf("%s.tmp", path);
    char *dir = dir_of(path);

    rc = util_mkdir_p(dir, 0700);
    if (rc != 0) {
        goto fail_prepare;
    }
    /* A tmp file left by a crash would make O_EXCL fail forever; it is never the live
     * pair (that is only ever published by rename), so it is safe to remove. */
    if (unlink(tmp) != 0 && errno != ENOENT) {
        rc = -errno;
        goto fail_prepare;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        goto fail_prepare;
    }
    /* The umask may have removed bits from 0600; the owner must be able to read it back. */
    if (fchmod(fd, 0600) != 0) {
        rc = -errno;
        goto fail_write;
    }
    rc = write_all(fd, doc, len);
    if (rc == 0) {
        rc = write_all(fd, "\n", 1);
    }
    if (rc != 0) {
        goto fail_write;
    }
    if (fsync(fd) != 0) {
        rc = -errno;
        goto fail_write;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = -errno;
        goto fail_write;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = -errno;
        goto fail_write;
    }
    /* The rename is durable only once the directory entry is. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = -errno;
        goto fail_prepare;
    }
    if (fsync(dfd) != 0) {
        rc = -errno;
    }
    close(dfd);
    goto done;

fail_write:
    if (fd >= 0) {
        close(fd);
    }
    unlink(tmp);
fail_prepare:
done:
    free(dir);
    free(tmp);
    explicit_bzero(doc, len);
    cJSON_free(doc);
    return rc;
}


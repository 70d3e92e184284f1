/*
 * secret: see secret.h.
 */
#include "secret.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void secret_wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void secret_wipe_buf(char *data, size_t len)
{
    if (data != NULL) {
        explicit_bzero(data, len);
        free(data);
    }
}

/* Fills *why (if not NULL) and returns rc. */
static int fail(struct secret_failure *why, enum secret_step step, int err, int rc)
{
    if (why != NULL) {
        why->step = step;
        why->err = err;
    }
    return rc;
}

/* The checks made on the open descriptor, before reading. */
static int check_stat(const struct stat *st, size_t max, unsigned flags,
                      struct secret_failure *why)
{
    if (!S_ISREG(st->st_mode)) {
        return fail(why, SECRET_TYPE, 0, -EINVAL);
    }
    if ((flags & SECRET_PRIVATE) != 0 && st->st_uid != geteuid()) {
        if (why != NULL) {
            why->uid = (unsigned)st->st_uid;
        }
        return fail(why, SECRET_OWNER, 0, -EPERM);
    }
    if ((flags & SECRET_PRIVATE) != 0 && (st->st_mode & 077) != 0) {
        if (why != NULL) {
            why->mode = (unsigned)(st->st_mode & 07777);
        }
        return fail(why, SECRET_MODE, 0, -EPERM);
    }
    if (st->st_size > (off_t)max) {
        return fail(why, SECRET_SIZE, 0, -EFBIG);
    }
    return 0;
}

int secret_read_file(const char *path, size_t max, unsigned flags, char **data, size_t *len,
                     struct secret_failure *why)
{
    *data = NULL;
    *len = 0;
    if (why != NULL) {
        memset(why, 0, sizeof(*why));
    }
    /* O_NOFOLLOW: the checks must be about the file we read, not a link
     * to it; O_NONBLOCK: a FIFO must not hang the start. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        return fail(why, SECRET_OPEN, e, -e);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fail(why, SECRET_STAT, e, -e);
    }
    int rc = check_stat(&st, max, flags, why);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    /* Read from the checked fd, never by path again. One byte more than
     * max tells a file that grew since fstat. */
    char *buf = xmalloc(max + 1);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int e = errno;
            rc = fail(why, SECRET_READ, e, -e);
            break;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
        if (n > max) {
            rc = fail(why, SECRET_SIZE, 0, -EFBIG);
            break;
        }
    }
    close(fd);
    if (rc != 0) {
        secret_wipe_buf(buf, n);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

char *secret_failure_message(const struct secret_failure *why, const char *label, const char *key,
                             const char *path, size_t max)
{
    switch (why->step) {
    case SECRET_OPEN:
        if (why->err == ELOOP) {
            return xasprintf("%s '%s' is a symbolic link; point %s at the real file", label, path,
                             key);
        }
        return xasprintf("%s '%s': %s", label, path, strerror(why->err));
    case SECRET_STAT:
    case SECRET_READ:
        return xasprintf("%s '%s': %s", label, path, strerror(why->err));
    case SECRET_TYPE:
        return xasprintf("%s '%s' is not a regular file", label, path);
    case SECRET_OWNER:
        return xasprintf("%s '%s' is owned by uid %u, not by the user running pollen (uid %u); "
                         "run: chown %u %s",
                         label, path, why->uid, (unsigned)geteuid(), (unsigned)geteuid(), path);
    case SECRET_MODE:
        return xasprintf("permissions %04o for '%s' are too open; run: chmod 600 %s", why->mode,
                         path, path);
    case SECRET_SIZE:
        return xasprintf("%s '%s' is larger than %zu bytes", label, path, max);
    case SECRET_OK:
        break;
    }
    return xasprintf("%s '%s': no error", label, path);
}

int secret_check(const char *what, const char *source, char *secret, char **msg)
{
    size_t len = strlen(secret);
    while (len > 0 && ascii_is_space(secret[len - 1])) {
        secret[--len] = '\0';
    }
    if (len == 0) {
        *msg = xasprintf("%s from %s is empty", what, source);
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)secret[i];
        if (c < 0x20 || c == 0x7F) {
            *msg = xasprintf("%s from %s contains a control character or a line break", what,
                             source);
            return -EINVAL;
        }
    }
    return 0;
}

/* A one-line secret (or client_id) file for key what. */
static int read_secret_file(const char *what, const char *path, unsigned flags, char **out,
                            char **msg)
{
    char *data = NULL;
    size_t len = 0;
    struct secret_failure why;
    char *label = xasprintf("%s file", what);
    int rc = secret_read_file(path, SECRET_FILE_MAX, flags & SECRET_PRIVATE, &data, &len, &why);
    if (rc != 0) {
        *msg = secret_failure_message(&why, label, what, path, SECRET_FILE_MAX);
        free(label);
        return -EINVAL;
    }
    if (memchr(data, '\0', len) != NULL) {
        *msg = xasprintf("%s '%s' contains a NUL byte", label, path);
        rc = -EINVAL;
    } else {
        char *source = xasprintf("file '%s'", path);
        rc = secret_check(what, source, data, msg);
        free(source);
    }
    if (rc == 0) {
        *out = xstrdup(data);
    }
    secret_wipe_buf(data, len);
    free(label);
    return rc;
}

/* A letter or _, then letters, digits and _. */
static bool valid_env_name(const char *s)
{
    if (!ascii_is_alpha(s[0])) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (!(ascii_is_alnum(*p) || *p == '_')) {
            return false;
        }
    }
    return true;
}

static int read_env(const char *what, const char *var, unsigned flags, char **out, char **msg)
{
    if (!valid_env_name(var)) {
        *msg = xasprintf("%s = env:VAR needs an environment variable name (letters, digits and _)",
                         what);
        return -EINVAL;
    }
    if (flags & SECRET_SKIP) {
        return 0;
    }
    const char *env = getenv(var);
    if (env == NULL || env[0] == '\0') {
        *msg = xasprintf("environment variable %s is %s", var, env == NULL ? "not set" : "empty");
        return -EINVAL;
    }
    char *secret = xstrdup(env);
    char *source = xasprintf("environment variable %s", var);
    int rc = secret_check(what, source, secret, msg);
    free(source);
    if (rc != 0) {
        secret_wipe_free(secret);
        return rc;
    }
    *out = secret;
    return 0;
}

int secret_ref_read(const char *value, const char *what, const char *dir, unsigned flags,
                    char **out, char **msg)
{
    *out = NULL;
    *msg = NULL;
    if (str_has_prefix(value, "env:")) {
        return read_env(what, value + 4, flags, out, msg);
    }
    if (!str_has_prefix(value, "file:")) {
        return 1;
    }
    if (value[5] == '\0') {
        *msg = xasprintf("%s = file:PATH needs a path", what);
        return -EINVAL;
    }
    if (flags & SECRET_SKIP) {
        return 0;
    }
    char *path = util_resolve_path(dir, value + 5);
    int rc = read_secret_file(what, path, flags, out, msg);
    free(path);
    return rc;
}

/*
 * test_secret: the private-file reader refuses what OpenSSH refuses for a
 * private key (a symbolic link, another file type, group/other permission
 * bits) and anything larger than its bound, and reads the rest whole;
 * references resolve env:VAR and file:PATH (relative to a directory), leave
 * other values to the caller, and never put the value into a message.
 */
#include "secret.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"

static void write_mode(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    if (fd < 0) {
        return;
    }
    size_t len = strlen(text);
    CHECK(write(fd, text, len) == (ssize_t)len);
    close(fd);
    CHECK(chmod(path, mode) == 0);
}

/* Reads path; returns the step it stopped at, and the data on success. */
static enum secret_step read_step(const char *path, size_t max, unsigned flags, int *rc,
                                  char **data)
{
    size_t len = 0;
    struct secret_failure why;
    *data = NULL;
    *rc = secret_read_file(path, max, flags, data, &len, &why);
    CHECK((*rc == 0) == (*data != NULL));
    CHECK(*rc != 0 || strlen(*data) == len);
    return *rc == 0 ? SECRET_OK : why.step;
}

static void test_read_file(const char *dir)
{
    char *ok = xasprintf("%s/ok", dir);
    char *wide = xasprintf("%s/wide", dir);
    char *link = xasprintf("%s/link", dir);
    char *missing = xasprintf("%s/missing", dir);
    write_mode(ok, "s3cret\n", 0600);
    write_mode(wide, "s3cret\n", 0644);
    unlink(link);
    CHECK(symlink(ok, link) == 0);

    int rc;
    char *data;
    CHECK_INT(read_step(ok, 64, SECRET_PRIVATE, &rc, &data), SECRET_OK);
    CHECK_STR(data, "s3cret\n");
    secret_wipe_buf(data, data != NULL ? strlen(data) : 0);

    /* Exactly max bytes is fine; one more is too large. */
    CHECK_INT(read_step(ok, 7, SECRET_PRIVATE, &rc, &data), SECRET_OK);
    secret_wipe_buf(data, 7);
    CHECK_INT(read_step(ok, 6, SECRET_PRIVATE, &rc, &data), SECRET_SIZE);
    CHECK_INT(rc, -EFBIG);

    CHECK_INT(read_step(wide, 64, SECRET_PRIVATE, &rc, &data), SECRET_MODE);
    CHECK_INT(rc, -EPERM);
    /* Without SECRET_PRIVATE a regular file is enough (a client_id). */
    CHECK_INT(read_step(wide, 64, 0, &rc, &data), SECRET_OK);
    secret_wipe_buf(data, data != NULL ? strlen(data) : 0);

    CHECK_INT(read_step(link, 64, 0, &rc, &data), SECRET_OPEN);
    CHECK_INT(rc, -ELOOP);
    CHECK_INT(read_step(missing, 64, 0, &rc, &data), SECRET_OPEN);
    CHECK_INT(rc, -ENOENT);
    CHECK_INT(read_step(dir, 64, 0, &rc, &data), SECRET_TYPE);
    CHECK_INT(rc, -EINVAL);

    /* The messages configuration checks print. */
    struct secret_failure why = {.step = SECRET_MODE, .mode = 0644};
    char *msg = secret_failure_message(&why, "token file", "token", "/p", 16);
    CHECK_STR(msg, "permissions 0644 for '/p' are too open; run: chmod 600 /p");
    free(msg);
    why = (struct secret_failure){.step = SECRET_OPEN, .err = ELOOP};
    msg = secret_failure_message(&why, "token_store", "token_store", "/p", 16);
    CHECK_STR(msg, "token_store '/p' is a symbolic link; point token_store at the real file");
    free(msg);
    why = (struct secret_failure){.step = SECRET_SIZE};
    msg = secret_failure_message(&why, "token file", "token", "/p", 16384);
    CHECK_STR(msg, "token file '/p' is larger than 16384 bytes");
    free(msg);

    unlink(ok);
    unlink(wide);
    unlink(link);
    free(ok);
    free(wide);
    free(link);
    free(missing);
}

static void test_references(const char *dir)
{
    char *file = xasprintf("%s/tok", dir);
    write_mode(file, "abc123  \n", 0600);
    char *out = NULL;
    char *msg = NULL;

    /* A relative file:PATH is read from dir, trailing white space trimmed. */
    CHECK_INT(secret_ref_read("file:tok", "token", dir, SECRET_PRIVATE, &out, &msg), 0);
    CHECK_STR(out, "abc123");
    CHECK(msg == NULL);
    secret_wipe_free(out);

    setenv("POLLEN_TEST_SECRET", "from-env", 1);
    CHECK_INT(secret_ref_read("env:POLLEN_TEST_SECRET", "token", dir, 0, &out, &msg), 0);
    CHECK_STR(out, "from-env");
    secret_wipe_free(out);

    /* SECRET_SKIP checks the form and reads nothing. */
    CHECK_INT(secret_ref_read("file:no-such", "token", dir, SECRET_SKIP, &out, &msg), 0);
    CHECK(out == NULL && msg == NULL);

    /* Neither form: the caller decides; nothing is reported. */
    CHECK_INT(secret_ref_read("literal-token", "token", dir, 0, &out, &msg), 1);
    CHECK(out == NULL && msg == NULL);

    unsetenv("POLLEN_TEST_SECRET");
    CHECK_INT(secret_ref_read("env:POLLEN_TEST_SECRET", "token", dir, 0, &out, &msg), -EINVAL);
    CHECK_STR(msg, "environment variable POLLEN_TEST_SECRET is not set");
    free(msg);
    CHECK_INT(secret_ref_read("env:1X", "client_id", dir, 0, &out, &msg), -EINVAL);
    CHECK_STR(msg, "client_id = env:VAR needs an environment variable name (letters, digits and _)");
    free(msg);

    /* A line break inside the value could inject HTTP headers. */
    write_mode(file, "abc\ndef\n", 0600);
    CHECK_INT(secret_ref_read("file:tok", "token", dir, SECRET_PRIVATE, &out, &msg), -EINVAL);
    CHECK(msg != NULL && strstr(msg, "contains a control character or a line break") != NULL);
    CHECK(msg != NULL && strstr(msg, "abc") == NULL);
    free(msg);

    write_mode(file, "abc123\n", 0640);
    CHECK_INT(secret_ref_read("file:tok", "token", dir, SECRET_PRIVATE, &out, &msg), -EINVAL);
    CHECK(msg != NULL && strstr(msg, "are too open; run: chmod 600 ") != NULL);
    free(msg);

    unlink(file);
    free(file);
}

int main(void)
{
    char *dir = test_tmp_path("test_secret", "dir");
    mkdir(dir, 0700);
    test_read_file(dir);
    test_references(dir);
    rmdir(dir);
    free(dir);
    return test_done("test_secret");
}

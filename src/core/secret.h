/*
 * secret: values kept out of the configuration file and the private files
 * that hold them.
 *
 * A secret is given as a reference: env:VAR (an environment variable) or
 * file:PATH (a one-line file). A file holding a secret, and the OAuth token
 * store, are read only through secret_read_file: opened without following
 * a symbolic link and without blocking on a FIFO, checked on the open
 * descriptor (the checks OpenSSH makes on a private key: a regular file
 * owned by the euid with no group or other permission bits), read from that
 * same descriptor (no check-then-open race), bounded, and wiped after use.
 *
 * Owns: nothing between calls; every buffer and message returned is the
 * caller's.
 * Invariants: no message contains a secret: only key names, variable names
 * and paths.
 * Thread context: any thread; the file reads block (startup and reload on
 * the loop thread, token store loads on pool threads).
 */
#ifndef POLLEN_SECRET_H
#define POLLEN_SECRET_H

#include <stdbool.h>
#include <stddef.h>

/* Largest secret file read through a file:PATH reference. */
#define SECRET_FILE_MAX (16 * 1024)

enum {
    SECRET_PRIVATE = 1u << 0, /* the file must be private (owner, mode), not just regular */
    SECRET_SKIP = 1u << 1,    /* secret_ref_read: check the form only, read nothing */
};

/* Overwrites s (strlen bytes) and frees it; accepts NULL. */
void secret_wipe_free(char *s);
/* Overwrites len bytes of data and frees it; accepts NULL. For buffers
 * from secret_read_file. */
void secret_wipe_buf(char *data, size_t len);

/* The step at which secret_read_file stopped. */
enum secret_step {
    SECRET_OK = 0,
    SECRET_OPEN,  /* open(2) failed: err (ELOOP: path is a symbolic link) */
    SECRET_STAT,  /* fstat(2) failed: err */
    SECRET_TYPE,  /* not a regular file */
    SECRET_OWNER, /* SECRET_PRIVATE: owned by uid, not by the euid */
    SECRET_MODE,  /* SECRET_PRIVATE: group or other permission bits in mode */
    SECRET_SIZE,  /* larger than max (before or while reading) */
    SECRET_READ,  /* read(2) failed: err */
};

struct secret_failure {
    enum secret_step step;
    int err;       /* errno of OPEN, STAT and READ */
    unsigned uid;  /* OWNER: the file's owner */
    unsigned mode; /* MODE: the permission bits (st_mode & 07777) */
};

/*
 * Reads the file at path, at most max bytes, as described at the top
 * (flags: SECRET_PRIVATE or 0, which only demands a regular file). Returns
 * 0 with *data (NUL-terminated; wipe and free with secret_wipe_buf(*data,
 * *len)) and *len; or, with *data = NULL and *why filled: -err (OPEN, STAT,
 * READ; -ELOOP for a symbolic link), -EINVAL (TYPE), -EPERM (OWNER, MODE)
 * or -EFBIG (SIZE). why may be NULL.
 */
int secret_read_file(const char *path, size_t max, unsigned flags, char **data, size_t *len,
                     struct secret_failure *why);

/*
 * The message for a failure of secret_read_file(path, max, ...), as the
 * configuration checks word it: label names the file ("token file",
 * "token_store") and key the setting that names it ("token"), for the
 * advice given on a symbolic link. Returns a new string.
 */
char *secret_failure_message(const struct secret_failure *why, const char *label, const char *key,
                             const char *path, size_t max);

/*
 * Trims trailing white space and line ends of secret in place; an empty
 * value or one with a control character (a line break would inject HTTP
 * headers) is refused. what names the key, source where the value came from
 * ("environment variable X", "file 'P'"). Returns 0, or -EINVAL with *msg
 * (a new string).
 */
int secret_check(const char *what, const char *source, char *secret, char **msg);

/*
 * Resolves a reference for key what: env:VAR, or file:PATH with PATH
 * relative to dir (a file of at most SECRET_FILE_MAX bytes, private with
 * SECRET_PRIVATE, else any regular file), checked with secret_check. With
 * SECRET_SKIP only the form is checked. Returns 0 with *out (a new string
 * to free with secret_wipe_free; NULL with SECRET_SKIP), 1 when value is
 * neither form (nothing read: the caller decides about literals), or
 * -EINVAL with *msg (a new string; it never quotes value, which may be the
 * secret itself).
 */
int secret_ref_read(const char *value, const char *what, const char *dir, unsigned flags,
                    char **out, char **msg);

#endif

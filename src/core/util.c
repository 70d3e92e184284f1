/*
 * util: see util.h.
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static ATTR_NORETURN void oom(size_t size)
{
    /* Logging may itself allocate, so write straight to stderr. */
    fprintf(stderr, "pollen: out of memory allocating %zu bytes\n", size);
    abort();
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        oom(size);
    }
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL) {
        oom(count * size);
    }
    return p;
}

/* Transparent huge pages come in 2 MiB units on x86-64 and arm64 (4K pages). */
#define HUGE_UNIT ((size_t)2 << 20)

void *xcalloc_table(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size) {
        oom(SIZE_MAX);
    }
    size_t bytes = count * size;
    if (bytes < HUGE_UNIT) {
        return xcalloc(count, size);
    }
    size_t rounded = (bytes + HUGE_UNIT - 1) & ~(HUGE_UNIT - 1);
    void *p = aligned_alloc(HUGE_UNIT, rounded);
    if (p == NULL) {
        oom(rounded);
    }
#ifdef MADV_HUGEPAGE
    (void)madvise(p, rounded, MADV_HUGEPAGE); /* a hint: without it, 4K pages */
#endif
    memset(p, 0, bytes);
    return p;
}

void *xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL) {
        oom(size);
    }
    return p;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0) {
        return xstrdup("");
    }
    char *p = xmalloc((size_t)len + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return p;
}

bool str_copy(char *dst, size_t size, const char *src)
{
    if (size == 0) {
        return false;
    }
    size_t len = strlen(src);
    if (len >= size) {
        memcpy(dst, src, size - 1);
        dst[size - 1] = '\0';
        return false;
    }
    memcpy(dst, src, len + 1);
    return true;
}

bool str_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_has_suffix(const char *s, const char *suffix)
{
    size_t ls = strlen(s);
    size_t lx = strlen(suffix);
    return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

char *str_trim(char *s)
{
    char *start = s;
    while (*start != '\0' && isspace((unsigned char)*start)) {
        start++;
    }
    size_t len = strlen(start);
    while (len > 0 && isspace((unsigned char)start[len - 1])) {
        len--;
    }
    memmove(s, start, len);
    s[len] = '\0';
    return s;
}

char **strv_split(const char *list, size_t *count)
{
    size_t n = 0;
    size_t cap = 4;
    char **v = xmalloc(cap * sizeof(*v));
    const char *p = list ? list : "";
    for (;;) {
        while (*p != '\0' && isspace((unsigned char)*p)) {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        const char *start = p;
        while (*p != '\0' && !isspace((unsigned char)*p)) {
            p++;
        }
        if (n + 2 > cap) {
            cap *= 2;
            v = xrealloc(v, cap * sizeof(*v));
        }
        v[n++] = xstrndup(start, (size_t)(p - start));
    }
    v[n] = NULL;
    if (count != NULL) {
        *count = n;
    }
    return v;
}

char **strv_dup(char *const *v)
{
    if (v == NULL) {
        return NULL;
    }
    size_t n = strv_len(v);
    char **d = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        d[i] = xstrdup(v[i]);
    }
    return d;
}

void strv_free(char **v)
{
    if (v == NULL) {
        return;
    }
    for (char **p = v; *p != NULL; p++) {
        free(*p);
    }
    free(v);
}

size_t strv_len(char *const *v)
{
    size_t n = 0;
    while (v != NULL && v[n] != NULL) {
        n++;
    }
    return n;
}

bool strv_contains(char *const *v, const char *s)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
        if (strcmp(v[i], s) == 0) {
            return true;
        }
    }
    return false;
}

/* Parses the leading unsigned integer of s; *end points past it. */
static int parse_leading_u64(const char *s, uint64_t *out, const char **end)
{
    if (!isdigit((unsigned char)*s)) {
        return -EINVAL;
    }
    uint64_t v = 0;
    while (isdigit((unsigned char)*s)) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -ERANGE;
        }
        v = v * 10 + d;
        s++;
    }
    *out = v;
    *end = s;
    return 0;
}

static int scale(uint64_t v, uint64_t unit, uint64_t *out)
{
    if (unit != 0 && v > UINT64_MAX / unit) {
        return -ERANGE;
    }
    *out = v * unit;
    return 0;
}

size_t utf8_seq_len(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char c = p[0];
    size_t need;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) {
            lo = 0xA0; /* overlong */
        } else if (c == 0xED) {
            hi = 0x9F; /* UTF-16 surrogates */
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) {
            lo = 0x90; /* overlong */
        } else if (c == 0xF4) {
            hi = 0x8F; /* above U+10FFFF */
        }
    } else {
        return 0; /* 0x80-0xC1 (continuation / overlong lead), 0xF5-0xFF */
    }
    if (n <= need || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t k = 2; k <= need; k++) {
        if ((p[k] & 0xC0) != 0x80) {
            return 0;
        }
    }
    return need + 1;
}

bool utf8_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq_len(s + i, len - i);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

int util_parse_duration(const char *s, uint64_t *out_ms)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {
        {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
    };
    uint64_t v;
    const char *end;
    if (s == NULL || parse_leading_u64(s, &v, &end) != 0) {
        return -EINVAL;
    }
    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            return scale(v, units[i].ms, out_ms) == 0 ? 0 : -EINVAL;
        }
    }
    return -EINVAL;
}

int util_parse_size(const char *s, uint64_t *out_bytes)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {
        {"", 1}, {"k", 1024}, {"K", 1024}, {"KiB", 1024}, {"M", 1 << 20}, {"MiB", 1 << 20},
        {"G", 1ULL << 30}, {"GiB", 1ULL << 30},
    };
    uint64_t v;
    const char *end;
    if (s == NULL || parse_leading_u64(s, &v, &end) != 0) {
        return -EINVAL;
    }
    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            return scale(v, units[i].mult, out_bytes) == 0 ? 0 : -EINVAL;
        }
    }
    return -EINVAL;
}

int util_parse_int(const char *s, long long min, long long max, long long *out)
{
    if (s == NULL || *s == '\0' || isspace((unsigned char)*s)) {
        return -EINVAL;
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int util_parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"yes", "true", "on", "1"};
    static const char *no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; s != NULL && i < ARRAY_SIZE(yes); i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

uint64_t util_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Test builds shift the wall clock with it (failpoint_init: POLLEN_WALL_OFFSET_MS). */
static int64_t wall_offset_ms;

void util_set_wall_offset_ms(int64_t offset)
{
    wall_offset_ms = offset;
}

uint64_t util_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + (uint64_t)wall_offset_ms;
}

/* xorshift64*: fast, good enough for jitter; never used for secrets. */
static uint64_t rand_state = 0x9E3779B97F4A7C15ULL;

void util_rand_seed(void)
{
    const char *fixed = getenv("POLLEN_SEED");
    uint64_t seed = 0;
    if (fixed != NULL && *fixed != '\0') {
        seed = strtoull(fixed, NULL, 10);
    } else if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
        seed = util_wall_ms() ^ ((uint64_t)getpid() << 32);
    }
    rand_state = seed ? seed : 0x9E3779B97F4A7C15ULL;
}

uint64_t util_rand64(void)
{
    uint64_t x = rand_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rand_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

uint64_t util_rand_range(uint64_t lo, uint64_t hi)
{
    if (hi <= lo) {
        return lo;
    }
    uint64_t span = hi - lo;
    if (span == UINT64_MAX) {
        return util_rand64();
    }
    return lo + util_rand64() % (span + 1);
}

uint64_t util_backoff_ms(uint64_t base_ms, uint64_t cap_ms, unsigned attempt)
{
    uint64_t hi = base_ms;
    for (unsigned i = 0; i < attempt && hi < cap_ms; i++) {
        hi *= 2;
    }
    if (hi > cap_ms) {
        hi = cap_ms;
    }
    return util_rand_range(base_ms < hi ? base_ms : hi, hi);
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? -errno : -EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int util_write_atomic(const char *path, const struct util_chunk *chunks, size_t n)
{
    char *tmp = xasprintf("%s.tmp", path);
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
    } else {
        for (size_t i = 0; i < n && rc == 0; i++) {
            rc = write_all(fd, chunks[i].data, chunks[i].len);
        }
        if (close(fd) != 0 && rc == 0) {
            rc = -errno;
        }
        if (rc == 0 && rename(tmp, path) != 0) {
            rc = -errno;
        }
        if (rc != 0) {
            unlink(tmp);
        }
    }
    free(tmp);
    return rc;
}

void *util_map_file(const char *path, uint64_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return NULL;
    }
    struct stat st;
    void *base = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size <= max &&
        (uint64_t)st.st_size < SIZE_MAX) {
        *len = (size_t)st.st_size;
        base = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    }
    close(fd);
    return base == MAP_FAILED ? NULL : base;
}

int util_read_file(const char *path, size_t max, char **out, size_t *out_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    size_t cap = 4096;
    size_t len = 0;
    char *data = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max) {
                free(data);
                close(fd);
                return -EFBIG;
            }
            cap *= 2;
            data = xrealloc(data, cap);
        }
        ssize_t n = read(fd, data + len, cap - len - 1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int err = -errno;
            free(data);
            close(fd);
            return err;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
        if (len > max) {
            free(data);
            close(fd);
            return -EFBIG;
        }
    }
    close(fd);
    data[len] = '\0';
    *out = data;
    if (out_len != NULL) {
        *out_len = len;
    }
    return 0;
}

char *util_resolve_path(const char *dir, const char *path)
{
    if (path[0] == '/' || dir == NULL || dir[0] == '\0') {
        return xstrdup(path);
    }
    while (path[0] == '.' && path[1] == '/') {
        path += 2;
        while (*path == '/') {
            path++;
        }
    }
    if (path[0] == '\0' || strcmp(path, ".") == 0) {
        return xstrdup(dir);
    }
    if (strcmp(dir, "/") == 0) {
        return xasprintf("/%s", path);
    }
    return xasprintf("%s/%s", dir, path);
}

int util_mkdir_p(const char *path, unsigned mode)
{
    char buf[PATH_MAX];
    if (!str_copy(buf, sizeof(buf), path)) {
        return -ENAMETOOLONG;
    }
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST) {
            return -errno;
        }
        *p = '/';
    }
    if (mkdir(buf, mode) != 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

/*
 * paths: see paths.h.
 */
#include "paths.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#ifndef POLLEN_CATALOG_DIR
#define POLLEN_CATALOG_DIR "/usr/local/share/pollen"
#endif
#ifndef POLLEN_CATALOG_RELATIVE
#define POLLEN_CATALOG_RELATIVE ""
#endif
#ifndef POLLEN_BUILD_ROOT
#define POLLEN_BUILD_ROOT ""
#endif
#ifndef POLLEN_SOURCE_ROOT
#define POLLEN_SOURCE_ROOT ""
#endif

static char chosen[PATH_MAX];

/* True when dir/triggers is a directory: dir is a catalog. */
static bool is_catalog(const char *dir)
{
    char sub[PATH_MAX];
    struct stat st;
    if (snprintf(sub, sizeof(sub), "%s/triggers", dir) >= (int)sizeof(sub)) {
        return false;
    }
    return stat(sub, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The directory of the running executable, canonical (symlinks resolved by
 * the kernel). Returns false when /proc is not there. */
static bool exe_dir(char *out, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", out, size - 1);
    if (n <= 0 || (size_t)n >= size - 1) {
        return false;
    }
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (slash == NULL) {
        return false;
    }
    slash[slash == out ? 1 : 0] = '\0'; /* "/pollen" -> "/" */
    return true;
}

/* True when a and b name the same directory (both exist). */
static bool same_dir(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static void decide(void)
{
    char exe[PATH_MAX];
    if (!exe_dir(exe, sizeof(exe))) {
        str_copy(chosen, sizeof(chosen), POLLEN_CATALOG_DIR);
        return;
    }
    if (POLLEN_BUILD_ROOT[0] != '\0' && same_dir(exe, POLLEN_BUILD_ROOT) &&
        is_catalog(POLLEN_SOURCE_ROOT)) {
        str_copy(chosen, sizeof(chosen), POLLEN_SOURCE_ROOT);
        return;
    }
    if (POLLEN_CATALOG_RELATIVE[0] != '\0') {
        char rel[PATH_MAX], real[PATH_MAX];
        if (snprintf(rel, sizeof(rel), "%s/%s", exe, POLLEN_CATALOG_RELATIVE) <
                (int)sizeof(rel) &&
            realpath(rel, real) != NULL && is_catalog(real)) {
            str_copy(chosen, sizeof(chosen), real);
            return;
        }
    }
    str_copy(chosen, sizeof(chosen), POLLEN_CATALOG_DIR);
}

const char *paths_catalog_dir(void)
{
    if (chosen[0] == '\0') {
        decide();
    }
    return chosen;
}

/*
 * test_idmap: the id -> 128-bit hash map (core/idmap.c): put, get, forget,
 * growth past the first table, reserve, the entry limit, and a second put
 * of an id with another value (what a 64-bit collision of two ids looks
 * like) making it unknown rather than wrong; a saved map loads back with
 * its tag only, whole (a torn, truncated or re-tagged file is refused), and
 * stays usable (forget, put and growth of the mapped slots).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "idmap.h"
#include "testlib.h"

static struct hash128 val_of(unsigned i)
{
    return (struct hash128){.lo = i * 2654435761u + 1, .hi = i};
}

static void test_basics(void)
{
    struct idmap m;
    idmap_init(&m, 0);
    struct hash128 v;
    CHECK(!idmap_get(&m, "a", 1, &v)); /* empty, no table yet */
    idmap_forget(&m, "a", 1);
    struct hash128 a = {1, 2};
    CHECK(idmap_put(&m, "a", 1, &a));
    CHECK(idmap_get(&m, "a", 1, &v) && hash128_eq(&v, &a));
    CHECK(!idmap_get(&m, "b", 1, &v));
    CHECK(!idmap_get(&m, "ab", 2, &v));
    /* The same value again: still known. Another value: unknown. */
    CHECK(idmap_put(&m, "a", 1, &a));
    CHECK(idmap_get(&m, "a", 1, &v));
    struct hash128 a2 = {3, 4};
    CHECK(idmap_put(&m, "a", 1, &a2));
    CHECK(!idmap_get(&m, "a", 1, &v));
    CHECK_INT(m.count, 1);
    /* forget */
    CHECK(idmap_put(&m, "c", 1, &a));
    idmap_forget(&m, "c", 1);
    CHECK(!idmap_get(&m, "c", 1, &v));
    /* {0, 0} is stored as unknown */
    struct hash128 zero = {0, 0};
    CHECK(idmap_put(&m, "z", 1, &zero));
    CHECK(!idmap_get(&m, "z", 1, &v));
    idmap_finish(&m);
    CHECK(!idmap_get(&m, "a", 1, &v));
}

static void test_many(void)
{
    struct idmap m;
    idmap_init(&m, 0);
    char id[32];
    for (unsigned i = 0; i < 50000; i++) {
        snprintf(id, sizeof(id), "id%u", i);
        struct hash128 x = val_of(i);
        CHECK(idmap_put(&m, id, strlen(id), &x));
    }
    CHECK_INT(m.count, 50000);
    CHECK(m.count <= m.cap / 4 * 3);
    unsigned ok = 0;
    for (unsigned i = 0; i < 50000; i++) {
        snprintf(id, sizeof(id), "id%u", i);
        struct hash128 v;
        struct hash128 want = val_of(i);
        ok += idmap_get(&m, id, strlen(id), &v) && hash128_eq(&v, &want);
    }
    CHECK_INT(ok, 50000);
    struct hash128 v;
    CHECK(!idmap_get(&m, "id50000", 7, &v));
    idmap_finish(&m);
}

static void test_limit_and_reserve(void)
{
    struct idmap m;
    idmap_init(&m, 600);
    idmap_reserve(&m, 100000); /* capped at the limit: 3/4 of 1024 slots hold 600 */
    CHECK_INT(m.cap, 1024);
    char id[32];
    unsigned stored = 0;
    for (unsigned i = 0; i < 700; i++) {
        snprintf(id, sizeof(id), "r%u", i);
        struct hash128 x = val_of(i);
        stored += idmap_put(&m, id, strlen(id), &x);
    }
    CHECK_INT(stored, 600);
    CHECK_INT(m.count, 600);
    CHECK_INT(m.cap, 1024); /* reserved: never grew */
    struct hash128 v;
    CHECK(idmap_get(&m, "r599", 4, &v));
    CHECK(!idmap_get(&m, "r600", 4, &v));
    idmap_reserve(&m, 10); /* not empty: no effect */
    CHECK_INT(m.cap, 1024);
    idmap_finish(&m);
    CHECK_INT(m.max, 600);
}

/* Flips one byte of the file at off (from the end when off < 0). */
static void corrupt(const char *path, long off)
{
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    struct stat st;
    CHECK_INT(fstat(fd, &st), 0);
    off_t at = off >= 0 ? (off_t)off : st.st_size + off;
    unsigned char c = 0;
    CHECK_INT(pread(fd, &c, 1, at), 1);
    c ^= 0x40;
    CHECK_INT(pwrite(fd, &c, 1, at), 1);
    close(fd);
}

static void test_save_load(void)
{
    char *dir = test_tmp_path("test_idmap", "save");
    mkdir(dir, 0700);
    char path[4096];
    snprintf(path, sizeof(path), "%s/map.bin", dir);
    struct idmap m;
    idmap_init(&m, 0);
    char id[32];
    for (unsigned i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "r%u", i);
        struct hash128 x = val_of(i);
        CHECK(idmap_put(&m, id, strlen(id), &x));
    }
    idmap_forget(&m, "r7", 2);
    CHECK_INT(idmap_save(&m, path, "tag-1", 5, 4242), 0);

    struct idmap l;
    idmap_init(&l, 0);
    uint64_t aux = 0;
    CHECK(!idmap_load(&l, path, "tag-2", 5, &aux)); /* another tag: another state */
    CHECK(!idmap_load(&l, path, "tag-1x", 6, &aux));
    CHECK(l.cap == 0);
    CHECK(idmap_load(&l, path, "tag-1", 5, &aux));
    CHECK_INT(aux, 4242);
    CHECK_INT(l.count, m.count);
    CHECK(l.mapped != NULL);
    struct hash128 v;
    for (unsigned i = 0; i < 5000; i += 499) {
        snprintf(id, sizeof(id), "r%u", i);
        struct hash128 x = val_of(i);
        CHECK(idmap_get(&l, id, strlen(id), &v) && hash128_eq(&v, &x));
    }
    CHECK(!idmap_get(&l, "r7", 2, &v)); /* forgotten stays forgotten */
    CHECK(!idmap_get(&l, "nope", 4, &v));
    /* The mapping is private: forgetting changes the map, not the file. */
    idmap_forget(&l, "r8", 2);
    CHECK(!idmap_get(&l, "r8", 2, &v));
    /* It grows off the mapping like any other map. */
    for (unsigned i = 5000; i < 20000; i++) {
        snprintf(id, sizeof(id), "r%u", i);
        struct hash128 x = val_of(i);
        CHECK(idmap_put(&l, id, strlen(id), &x));
    }
    CHECK(l.mapped == NULL);
    CHECK(idmap_get(&l, "r19999", 6, &v));
    CHECK(idmap_get(&l, "r0", 2, &v));
    idmap_finish(&l);
    CHECK(idmap_load(&l, path, "tag-1", 5, &aux));
    CHECK(idmap_get(&l, "r8", 2, &v)); /* the file kept it */
    idmap_finish(&l);

    /* A flipped byte anywhere (a slot, the header), or a short file: refused. */
    corrupt(path, -30);
    CHECK(!idmap_load(&l, path, "tag-1", 5, &aux));
    CHECK(l.cap == 0 && l.mapped == NULL);
    CHECK_INT(idmap_save(&m, path, "tag-1", 5, 1), 0);
    corrupt(path, 20);
    CHECK(!idmap_load(&l, path, "tag-1", 5, &aux));
    CHECK_INT(idmap_save(&m, path, "tag-1", 5, 1), 0);
    CHECK_INT(truncate(path, 4096 + 24 * 100), 0);
    CHECK(!idmap_load(&l, path, "tag-1", 5, &aux));
    unlink(path);
    CHECK(!idmap_load(&l, path, "tag-1", 5, &aux)); /* none */
    idmap_finish(&m);
    rmdir(dir);
    free(dir);
}

int main(void)
{
    test_basics();
    test_many();
    test_limit_and_reserve();
    test_save_load();
    return test_done("idmap");
}

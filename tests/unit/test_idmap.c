/*
 * test_idmap: the id -> 128-bit hash map (core/idmap.c): put, get, forget,
 * growth past the first table, reserve, the entry limit, and a second put
 * of an id with another value (what a 64-bit collision of two ids looks
 * like) making it unknown rather than wrong.
 */
#include <stdio.h>
#include <string.h>

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

int main(void)
{
    test_basics();
    test_many();
    test_limit_and_reserve();
    return test_done("idmap");
}

/*
 * test_idset: the set of record ids (core/idset.c): add, contains, growth
 * from empty past the huge-page size, reserve (with ids already in, and
 * never shrinking), clear.
 */
#include <stdio.h>
#include <string.h>

#include "idset.h"
#include "testlib.h"

static unsigned count_present(const struct idset *s, unsigned from, unsigned to)
{
    char id[32];
    unsigned n = 0;
    for (unsigned i = from; i < to; i++) {
        snprintf(id, sizeof(id), "c%u", i);
        n += idset_contains(s, id, strlen(id));
    }
    return n;
}

static void add_range(struct idset *s, unsigned from, unsigned to)
{
    char id[32];
    for (unsigned i = from; i < to; i++) {
        snprintf(id, sizeof(id), "c%u", i);
        idset_prefetch(s, id, strlen(id));
        CHECK(idset_add(s, id, strlen(id)));
    }
}

static void test_grow(void)
{
    struct idset s;
    idset_init(&s);
    CHECK(!idset_contains(&s, "a", 1));
    idset_prefetch(&s, "a", 1); /* no table yet: a no-op */
    CHECK(idset_add(&s, "a", 1));
    CHECK(!idset_add(&s, "a", 1));
    CHECK(idset_contains(&s, "a", 1));
    add_range(&s, 0, 300000); /* 1,048,576 slots: 8 MiB, a huge-page table */
    CHECK_INT(s.count, 300001);
    CHECK_INT(count_present(&s, 0, 300000), 300000);
    CHECK_INT(count_present(&s, 300000, 301000), 0);
    idset_clear(&s); /* a big table is given back */
    CHECK_INT(s.count, 0);
    CHECK_INT(count_present(&s, 0, 1000), 0);
    idset_finish(&s);
}

static void test_reserve(void)
{
    struct idset s;
    idset_init(&s);
    add_range(&s, 0, 500);
    idset_reserve(&s, 100000);
    CHECK_INT(s.cap, 262144);
    CHECK_INT(count_present(&s, 0, 500), 500); /* kept through the rehash */
    add_range(&s, 500, 100000);
    CHECK_INT(s.cap, 262144); /* never grew */
    CHECK_INT(count_present(&s, 0, 100000), 100000);
    idset_reserve(&s, 10); /* never shrinks */
    CHECK_INT(s.cap, 262144);
    idset_finish(&s);
}

int main(void)
{
    test_grow();
    test_reserve();
    return test_done("idset");
}

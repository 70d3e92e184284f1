/*
 * idset: see idset.h.
 */
#include "idset.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "util.h"

void idset_init(struct idset *s)
{
    memset(s, 0, sizeof(*s));
}

void idset_finish(struct idset *s)
{
    free(s->slots);
    memset(s, 0, sizeof(*s));
}

void idset_clear(struct idset *s)
{
    /* Keep a modest table between cycles; give back memory after a huge one. */
    if (s->cap > 4096) {
        idset_finish(s);
        return;
    }
    if (s->slots != NULL) {
        memset(s->slots, 0, s->cap * sizeof(*s->slots));
    }
    s->count = 0;
}

static uint64_t key_of(const char *id, size_t len)
{
    uint64_t h = hash64_bytes(id, len);
    return h ? h : 1;
}

static bool insert_key(struct idset *s, uint64_t k)
{
    size_t mask = s->cap - 1;
    for (size_t i = (size_t)k & mask;; i = (i + 1) & mask) {
        if (s->slots[i] == k) {
            return false;
        }
        if (s->slots[i] == 0) {
            s->slots[i] = k;
            s->count++;
            return true;
        }
    }
}

/* Rehashes into a table of new_cap slots (a power of two, more than 2 * count). */
static void resize(struct idset *s, size_t new_cap)
{
    size_t old_cap = s->cap;
    uint64_t *old = s->slots;
    s->cap = new_cap;
    s->slots = xcalloc_table(s->cap, sizeof(*s->slots));
    s->count = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i] != 0) {
            insert_key(s, old[i]);
        }
    }
    free(old);
}

static void grow(struct idset *s)
{
    resize(s, s->cap ? s->cap * 2 : 256);
}

void idset_reserve(struct idset *s, size_t n)
{
    size_t cap = s->cap ? s->cap : 256;
    while (cap / 2 < n) {
        cap *= 2;
    }
    if (cap > s->cap) {
        resize(s, cap);
    }
}

bool idset_add(struct idset *s, const char *id, size_t len)
{
    if ((s->count + 1) * 2 > s->cap) {
        grow(s);
    }
    return insert_key(s, key_of(id, len));
}

bool idset_contains(const struct idset *s, const char *id, size_t len)
{
    if (s->cap == 0) {
        return false;
    }
    uint64_t k = key_of(id, len);
    size_t mask = s->cap - 1;
    for (size_t i = (size_t)k & mask;; i = (i + 1) & mask) {
        if (s->slots[i] == k) {
            return true;
        }
        if (s->slots[i] == 0) {
            return false;
        }
    }
}

void idset_prefetch(const struct idset *s, const char *id, size_t len)
{
    if (s->cap != 0) {
        __builtin_prefetch(&s->slots[key_of(id, len) & (s->cap - 1)]);
    }
}

/*
 * idmap: see idmap.h.
 */
#include "idmap.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void idmap_init(struct idmap *m, size_t max)
{
    memset(m, 0, sizeof(*m));
    m->max = max;
}

void idmap_finish(struct idmap *m)
{
    size_t max = m->max;
    free(m->slots);
    idmap_init(m, max);
}

static uint64_t key_of(const char *id, size_t len)
{
    uint64_t h = hash64_bytes(id, len);
    return h ? h : 1;
}

uint64_t idmap_key(const char *id, size_t len)
{
    return key_of(id, len);
}

/* Whether one more entry would make the table more than 3/4 full. */
static bool crowded(const struct idmap *m, size_t count)
{
    return count + 1 > m->cap / 4 * 3;
}

static bool unknown(const struct hash128 *v)
{
    return v->lo == 0 && v->hi == 0;
}

/* The slot of key k, or the empty slot where it would go. */
static struct idmap_slot *find(const struct idmap *m, uint64_t k)
{
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)k & mask;; i = (i + 1) & mask) {
        if (m->slots[i].key == k || m->slots[i].key == 0) {
            return &m->slots[i];
        }
    }
}

static void grow(struct idmap *m)
{
    size_t old_cap = m->cap;
    struct idmap_slot *old = m->slots;
    m->cap = old_cap ? old_cap * 2 : 1024;
    m->slots = xcalloc_table(m->cap, sizeof(*m->slots));
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key != 0) {
            *find(m, old[i].key) = old[i];
        }
    }
    free(old);
}

void idmap_reserve(struct idmap *m, size_t n)
{
    if (m->count != 0) {
        return;
    }
    if (m->max != 0 && n > m->max) {
        n = m->max;
    }
    size_t cap = 1024;
    while (cap / 4 * 3 < n) {
        cap *= 2;
    }
    if (cap > m->cap) {
        free(m->slots);
        m->cap = cap;
        m->slots = xcalloc_table(m->cap, sizeof(*m->slots));
    }
}

bool idmap_put_key(struct idmap *m, uint64_t k, const struct hash128 *val)
{
    if (m->cap == 0 || crowded(m, m->count)) {
        if (m->max != 0 && m->count >= m->max) {
            return false;
        }
        grow(m);
    }
    struct idmap_slot *s = find(m, k);
    if (s->key == k) {
        /* Put twice: the same id or two ids sharing a 64-bit hash, which
         * cannot be told apart: unless the values agree, neither is known. */
        s->val = hash128_eq(&s->val, val) ? *val : (struct hash128){0, 0};
        return true;
    }
    if (m->max != 0 && m->count >= m->max) {
        return false;
    }
    s->key = k;
    s->val = *val;
    m->count++;
    return true;
}

bool idmap_put(struct idmap *m, const char *id, size_t len, const struct hash128 *val)
{
    return idmap_put_key(m, key_of(id, len), val);
}

bool idmap_get(const struct idmap *m, const char *id, size_t len, struct hash128 *val)
{
    if (m->cap == 0) {
        return false;
    }
    const struct idmap_slot *s = find(m, key_of(id, len));
    if (s->key == 0 || unknown(&s->val)) {
        return false;
    }
    *val = s->val;
    return true;
}

void idmap_prefetch_key(const struct idmap *m, uint64_t key)
{
    if (m->cap != 0) {
        __builtin_prefetch(&m->slots[key & (m->cap - 1)]);
    }
}

void idmap_prefetch(const struct idmap *m, const char *id, size_t len)
{
    idmap_prefetch_key(m, key_of(id, len));
}

void idmap_forget(struct idmap *m, const char *id, size_t len)
{
    if (m->cap == 0) {
        return;
    }
    struct idmap_slot *s = find(m, key_of(id, len));
    if (s->key != 0) {
        s->val = (struct hash128){0, 0};
    }
}

/*
 * idmap: see idmap.h.
 */
#include "idmap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util.h"

void idmap_init(struct idmap *m, size_t max)
{
    memset(m, 0, sizeof(*m));
    m->max = max;
}

/* Releases the slot array, allocated or mapped. */
static void release(struct idmap_slot *slots, void *mapped, size_t mapped_len)
{
    if (mapped != NULL) {
        munmap(mapped, mapped_len);
    } else {
        free(slots);
    }
}

void idmap_finish(struct idmap *m)
{
    size_t max = m->max;
    release(m->slots, m->mapped, m->mapped_len);
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
    release(old, m->mapped, m->mapped_len);
    m->mapped = NULL;
    m->mapped_len = 0;
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
        release(m->slots, m->mapped, m->mapped_len);
        m->mapped = NULL;
        m->mapped_len = 0;
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

/* ---- saved maps ---------------------------------------------------------- */

#define FILE_MAGIC "pollenM1"
#define FILE_ALIGN 4096u
#define TAG_MAX 2048u

struct file_header {
    char magic[8];
    uint32_t slot_size;   /* sizeof(struct idmap_slot): this build's layout */
    uint32_t tag_len;
    uint64_t cap;
    uint64_t count;
    uint64_t aux;
    uint64_t check;       /* hash64 of the tag, then of the slots, mixed */
    uint64_t order;       /* 0x0102030405060708 as written: the byte order */
};

/* Where the slots start: after header and tag, page-aligned (mmap). */
static size_t slots_off(size_t tag_len)
{
    size_t n = sizeof(struct file_header) + tag_len;
    return (n + FILE_ALIGN - 1) / FILE_ALIGN * FILE_ALIGN;
}

static uint64_t checksum(const void *tag, size_t tag_len, const struct idmap_slot *slots, size_t cap)
{
    uint64_t a = hash64_bytes(tag, tag_len);
    uint64_t b = cap ? hash64_bytes(slots, cap * sizeof(*slots)) : 0;
    return a ^ (b * 0x9E3779B97F4A7C15ull) ^ cap;
}

int idmap_save(const struct idmap *m, const char *path, const void *tag, size_t tag_len,
               uint64_t aux)
{
    if (tag_len > TAG_MAX || m->cap == 0) {
        return -EINVAL;
    }
    struct file_header h = {
        .slot_size = sizeof(struct idmap_slot),
        .tag_len = (uint32_t)tag_len,
        .cap = m->cap,
        .count = m->count,
        .aux = aux,
        .check = checksum(tag, tag_len, m->slots, m->cap),
        .order = 0x0102030405060708ull,
    };
    memcpy(h.magic, FILE_MAGIC, sizeof(h.magic));
    size_t off = slots_off(tag_len);
    char *head = xcalloc(1, off);
    memcpy(head, &h, sizeof(h));
    memcpy(head + sizeof(h), tag, tag_len);
    struct util_chunk chunks[] = {{head, off}, {m->slots, m->cap * sizeof(*m->slots)}};
    int rc = util_write_atomic(path, chunks, 2);
    free(head);
    return rc;
}

/* Whether the mapped file of len bytes holds a whole map with this tag. */
static bool file_valid(const char *base, size_t len, const void *tag, size_t tag_len)
{
    struct file_header h;
    if (len < sizeof(h)) {
        return false;
    }
    memcpy(&h, base, sizeof(h));
    if (memcmp(h.magic, FILE_MAGIC, sizeof(h.magic)) != 0 ||
        h.slot_size != sizeof(struct idmap_slot) || h.order != 0x0102030405060708ull ||
        h.tag_len != tag_len || h.cap == 0 || (h.cap & (h.cap - 1)) != 0 ||
        h.cap > (SIZE_MAX - FILE_ALIGN) / sizeof(struct idmap_slot) / 2 ||
        h.count > h.cap / 4 * 3 || len != slots_off(tag_len) + h.cap * sizeof(struct idmap_slot) ||
        memcmp(base + sizeof(h), tag, tag_len) != 0) {
        return false;
    }
    const struct idmap_slot *slots = (const void *)(base + slots_off(tag_len));
    return checksum(tag, tag_len, slots, h.cap) == h.check;
}

bool idmap_load(struct idmap *m, const char *path, const void *tag, size_t tag_len,
                uint64_t *aux)
{
    if (m->cap != 0 || tag_len > TAG_MAX) {
        return false;
    }
    size_t len = 0;
    void *base = util_map_file(path, UINT64_MAX, &len);
    if (base == NULL) {
        return false;
    }
    if (!file_valid(base, len, tag, tag_len)) {
        munmap(base, len);
        return false;
    }
    struct file_header h;
    memcpy(&h, base, sizeof(h));
    if (m->max != 0 && h.count > m->max) {
        munmap(base, len);
        return false;
    }
    m->slots = (struct idmap_slot *)((char *)base + slots_off(tag_len));
    m->cap = h.cap;
    m->count = h.count;
    m->mapped = base;
    m->mapped_len = len;
    *aux = h.aux;
    return true;
}

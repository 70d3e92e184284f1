/*
 * idset: a set of record ids, kept as 64-bit hashes in an open-addressing
 * table, used to remember which records one enumeration has seen.
 *
 * Memory is 16 bytes per id at most (8 bytes at a load factor of 1/2), so a
 * 100,000-record location needs about 2 MiB here while the records themselves
 * never stay in memory. Two different ids collide with probability ~n^2/2^65
 * (3e-10 for 100,000 ids); a collision could only hide one deletion for one
 * cycle, never invent one.
 * Thread context: single-threaded value type.
 */
#ifndef POLLEN_IDSET_H
#define POLLEN_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct idset {
    uint64_t *slots;  /* 0 marks an empty slot; a real hash of 0 is stored as 1 */
    size_t cap;       /* power of two, or 0 */
    size_t count;
};

void idset_init(struct idset *s);
void idset_finish(struct idset *s);
void idset_clear(struct idset *s);
/* Room for n ids in all without growing (one table instead of doubling to it). */
void idset_reserve(struct idset *s, size_t n);
/* Adds id; returns true if it was not present. */
bool idset_add(struct idset *s, const char *id, size_t len);
bool idset_contains(const struct idset *s, const char *id, size_t len);
/* Starts loading id's slot into the cache: a hint before an add or a lookup. */
void idset_prefetch(const struct idset *s, const char *id, size_t len);

#endif

/*
 * idmap: a map from record id to a 128-bit hash, kept as 64-bit hashes of
 * the ids in an open-addressing table (linear probing, load <= 3/4).
 *
 * Used by the raw-bytes fast path (sources/poll/rawpage.c) to hold, for one
 * full enumeration, every snapshot entry's raw hash read in one sequential
 * pass, instead of one random LMDB lookup per record.
 *
 * Owns: its slot array (24 bytes a slot, a power of two of them, at most 3/4
 *   full: 6 MiB for 100,000 ids), allocated or (idmap_load) a private mapping
 *   of a saved file; nothing else.
 * Invariants: an id is present with one hash, or absent. Two different ids
 *   whose 64-bit hashes collide (~n^2/2^65) are never confused: put of the
 *   second one (with another hash) leaves the slot "unknown": get then
 *   answers false for both.
 *   So get answers true only with the hash that was put for that id (up to
 *   a 64-bit collision with an id that was never put) and a caller that
 *   treats false as "do not know" stays correct.
 * Thread context: single-threaded value type.
 */
#ifndef POLLEN_IDMAP_H
#define POLLEN_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"

struct idmap_slot {
    uint64_t key;         /* 0: empty; a real id hash of 0 is stored as 1 */
    struct hash128 val;   /* {0, 0}: unknown (a collision or a forgotten id) */
};

struct idmap {
    struct idmap_slot *slots;
    size_t cap;           /* power of two, or 0 */
    size_t count;         /* occupied slots */
    size_t max;           /* entries allowed (0: no limit) */
    void *mapped;         /* idmap_load: the private file mapping holding slots, else NULL */
    size_t mapped_len;
};

/* An empty map that refuses to hold more than max entries (0: no limit). */
void idmap_init(struct idmap *m, size_t max);
/* An empty map gets room for n entries (at most its max) without growing. */
void idmap_reserve(struct idmap *m, size_t n);
/* Frees the slots; the map is empty (and keeps its max). */
void idmap_finish(struct idmap *m);
/*
 * Sets id's hash to *val; a second put of the same id (or of an id whose
 * 64-bit hash is the same) with another value leaves it unknown. Returns
 * false, storing nothing, when the map is full (max entries). A val of
 * {0, 0} is stored as unknown.
 */
bool idmap_put(struct idmap *m, const char *id, size_t len, const struct hash128 *val);
/* True with *val set when id has a known hash. */
bool idmap_get(const struct idmap *m, const char *id, size_t len, struct hash128 *val);
/* The 64-bit key of id (the *_key variants take it: hash an id once). */
uint64_t idmap_key(const char *id, size_t len);
bool idmap_put_key(struct idmap *m, uint64_t key, const struct hash128 *val);
void idmap_prefetch_key(const struct idmap *m, uint64_t key);
/* Starts loading id's slot into the cache (a hint: a later get of a batch
 * of ids then waits for memory once, not once per id). */
void idmap_prefetch(const struct idmap *m, const char *id, size_t len);
/* Makes id's hash unknown (get answers false), if it is there. */
void idmap_forget(struct idmap *m, const char *id, size_t len);

/*
 * Saving a map to a file and loading it back (rawpage.c keeps a scope's raw
 * hashes between runs). The file holds a header, the caller's tag (what
 * the map was built from: compared byte for byte on load), one 64-bit aux
 * value and the slots, with an XXH3 checksum of tag and slots. It is
 * written to PATH.tmp and renamed (no fsync: a torn file fails the
 * checksum, and a lost one is only a slower run). The format is this
 * build's memory layout: a file from another machine is refused.
 */
/* Returns 0 or -errno (the file is then absent or the old one). */
int idmap_save(const struct idmap *m, const char *path, const void *tag, size_t tag_len,
               uint64_t aux);
/*
 * Replaces *m (which must be empty) with the map saved at path when the file
 * is whole and holds exactly this tag; *aux gets its aux value. The slots are
 * a private mapping of the file (MAP_POPULATE: the page cache's pages, no
 * copy; a page written to, by put or forget, becomes the process's own).
 * Returns true, or false with *m untouched (no file, another tag, torn).
 */
bool idmap_load(struct idmap *m, const char *path, const void *tag, size_t tag_len,
                uint64_t *aux);

#endif

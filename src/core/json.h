/*
 * json: cJSON helpers for the data path: bounded parsing of API responses,
 * case-sensitive lookups, canonical printing, canonical hashing and
 * canonical equality.
 *
 * Canonical form: compact JSON, object keys sorted bytewise (duplicates kept,
 * ordered by key then original position), strings escaped as cJSON does,
 * numbers as integers when integral and |x| <= 2^53, otherwise the shortest
 * %.{15,16,17}g that round-trips; -0 prints as 0; NaN/Inf (cJSON turns 1e400
 * into inf) and cJSON_Invalid nodes print as null. Key order in the input
 * therefore never matters to print, hash or equality.
 *
 * Hash feed (json_hash_update): a prefix-free token stream of the canonical
 * value, so two values feed the same bytes iff their canonical forms are
 * equal. Each token is a one-byte tag; tokens with a length carry it next as
 * an unsigned LEB128 varint (minimal encoding):
 *   null 'n', false 'f', true 't'         tag only
 *   number 'd'                            tag, then the IEEE-754 bits as 8
 *                                         little-endian bytes (-0 fed as 0)
 *   string 's' / raw 'r'                  tag, byte length, bytes
 *   array '['                             tag, elements, then tag ']'
 *   object '{'                            tag, member count, then per member
 *                                         (sorted) 'k', key length, key bytes,
 *                                         and the value's tokens
 * The feed is persisted indirectly (snapshot hashes): changing it means a
 * snapshot format version bump. cJSON_Raw nodes are printed verbatim and
 * hashed with their own tag, so for them the print/hash equivalence holds
 * only bytewise. json_parse produces them for one thing only: an integer
 * token of magnitude >= 2^53 (no '.', no exponent) becomes a Raw node with
 * its digits as written (valuedouble still set), so a big id keeps its
 * digits in events and two ids that round to the same double still differ
 * (F20). A record with such a number that was snapshotted by an older
 * pollen (as a double) shows one update after the upgrade.
 *
 * Lookups never use cJSON_GetObjectItem (case-insensitive); always the
 * case-sensitive variant, which returns the FIRST member of a duplicated key.
 *
 * Memory: sorting object members uses a per-thread scratch stack (grown with
 * xrealloc, reused across calls, never per node) and, for objects of 8-64
 * members, a per-thread cache of recent key orders (one ~15 KiB block
 * allocated on first use). json_scratch_release frees both for the calling
 * thread. Objects of more than 64 members are sorted with qsort (glibc may
 * allocate a temporary buffer for those). No other hidden allocation.
 * Reads: hashing an object may prefetch-walk its next sibling (run-ahead,
 * read-only), which is almost always the next thing hashed.
 * Recursion: print, hash and equality recurse once per nesting level; trees
 * from json_parse are at most 1000 deep (CJSON_NESTING_LIMIT), which is safe
 * on the loop thread and on libuv pool threads.
 * Thread context: any thread; a tree must not be shared across threads
 * while one of them mutates it.
 */
#ifndef POLLEN_JSON_H
#define POLLEN_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "hash.h"

/*
 * Parses exactly len bytes (data need not be NUL-terminated, and nothing
 * past data[len-1] is read). Only JSON white space may follow the value.
 * Nesting deeper than 1000 is a parse error. On success *out owns a new tree
 * (free with cJSON_Delete) and 0 is returned. On failure *out is NULL,
 * *err_offset (if not NULL) is the byte offset of the error (<= len) and
 * -EINVAL is returned. The caller bounds len (http body cap).
 */
int json_parse(const char *data, size_t len, cJSON **out, size_t *err_offset);

/*
 * Dotted path lookup, case-sensitive: "meta.total", "orders.0.id".
 * A segment that is all digits indexes an array ("0", no sign or leading
 * zeros); on an object it is an ordinary key. Keys containing '.' cannot be
 * addressed. An empty or NULL path returns root. Returns a borrowed pointer
 * into root, or NULL when absent or the path is malformed ("a..b", "a.").
 */
const cJSON *json_get_path(const cJSON *root, const char *path);

/* Member key of object obj as a string (borrowed), or NULL if absent or not a string. */
const char *json_get_string(const cJSON *obj, const char *key);

/* Member key of obj as a number into *out; false if absent or not a number. */
bool json_get_number(const cJSON *obj, const char *key, double *out);

/* Canonical compact JSON of v (see above). Never NULL; the caller frees. NULL v prints "null". */
char *json_print_canonical(const cJSON *v);

/* Feeds the canonical form of v (NULL counts as null) into st; see the feed format above. */
void json_hash_update(struct hash_state *st, const cJSON *v);

/*
 * Feeds object obj as json_hash_update would if the members whose key fails
 * keep(key, ud) were absent. keep NULL keeps all. obj must be an object.
 */
void json_hash_object_filtered(struct hash_state *st, const cJSON *obj,
                               bool (*keep)(const char *key, void *ud), void *ud);

/* Feeds a key token ('k', LEB128 length, bytes), the framing used for object members. */
void json_hash_key(struct hash_state *st, const char *key);

/* Canonical equality: equal iff the canonical prints are equal (key order ignored). */
bool json_equal(const cJSON *a, const cJSON *b);

/*
 * JSON number syntax at s[0..n): -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
 * Returns the length of the number that starts at s, or 0 if none does.
 */
size_t json_scan_number(const char *s, size_t n);

/*
 * The number node for s when s is exactly one JSON number ("12", "-0.5",
 * "1e3"; an integer past 2^53 becomes a Raw node with its digits, as
 * json_parse makes it), else NULL. Stricter than strtod on purpose: no
 * spaces, hex, "inf", "nan", leading '+', or overflow to infinity.
 */
cJSON *json_number_from_text(const char *s);


/*
 * Sorted, filtered view of an object's members, stored on the calling
 * thread's scratch stack. Order: key bytewise, then original position.
 * Views nest strictly LIFO: end them in reverse order of begin, on the same
 * thread. json_members_at re-reads the scratch, so nested views (including
 * the ones print/hash/equal open internally) may be opened between calls.
 * obj that is not an object gives an empty view.
 */
struct json_members {
    size_t base;  /* private: first slot on the scratch stack */
    size_t count; /* members in the view */
};

void json_members_begin(struct json_members *m, const cJSON *obj,
                        bool (*keep)(const char *key, void *ud), void *ud);
/* Member i (0 <= i < count), borrowed from the object; ->string is its key. */
const cJSON *json_members_at(const struct json_members *m, size_t i);
void json_members_end(struct json_members *m);

/*
 * Page arena. json_arena_install() (once, at engine start) routes cJSON's
 * allocations through pollen's hooks. json_parse_arena() parses like
 * json_parse, but every node of the tree is bump-allocated from a reusable
 * arena, so a 500-record page costs a few large blocks instead of ~100,000
 * malloc calls, and freeing it is nearly free. Only the parsed tree lives in
 * the arena: anything created while using it (duplicates, events) is a
 * normal allocation, so nothing outlives it by accident. One arena tree at a
 * time (the loop processes pages one by one): while one is alive,
 * json_parse_arena falls back to json_parse. Free the tree with
 * json_arena_free() (which falls back to cJSON_Delete for other trees).
 * Loop thread only.
 */
void json_arena_install(void);
int json_parse_arena(const char *data, size_t len, cJSON **out, size_t *err_offset);
void json_arena_free(cJSON *root);

/* Frees the calling thread's scratch and key-order cache (shutdown, tests). No views may be open. */
void json_scratch_release(void);

#endif

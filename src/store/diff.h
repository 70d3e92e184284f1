/*
 * diff: record-level change detection for the poller, the snapshot value
 * codec stored per record in LMDB, deterministic event ids, and record-id
 * validation.
 *
 * Owns: nothing long-lived. Record hashes and change sets are computed from
 * caller-owned cJSON trees; diff_changes returns a new tree the caller owns.
 * Sorting uses json.c's per-thread scratch (see json.h); no per-node
 * allocation on the hashing path.
 *
 * Field filtering: `fields` and `ignore` are NULL-terminated lists of
 * top-level member names (strv from util.h); NULL means "all" and "none".
 * A name in both lists is ignored. Names are matched case-sensitively.
 * Only top-level members are filtered; a nested change is reported as a
 * change of its top-level member.
 *
 * Persisted formats (changing either invalidates stored data, so bump
 * DIFF_SNAP_FORMAT and migrate, or re-baseline):
 *   - record hash: XXH3-128 (hash.h) of json.h's hash feed (format 1:
 *     MurmurHash3-128 of the same feed). Without a field list it is the
 *     feed of the (ignore-filtered) record object. With one: the word
 *     'F' | (names << 8) (hash_u64: 8 little-endian bytes), then per
 *     distinct name in bytewise order its key token ('k', LEB128 length,
 *     bytes), the word 'p' | (members << 8) and the feed of each member
 *     carrying that name (0 members = absent).
 *   - snapshot value (format 2), all integers little-endian:
 *       0  u8  magic 0xA9 (a UTF-8 continuation byte: no JSON text or
 *              earlier plain-JSON value can start with it)
 *       1  u8  format version (DIFF_SNAP_FORMAT)
 *       2  u16 reserved, zero
 *       4  u64 hash.lo      12 u64 hash.hi
 *      20  u32 version      24 u32 flags (only SNAP_* bits)
 *      28  u64 missing_since_cycle
 *      36  u64 raw.lo       44 u64 raw.hi (valid when SNAP_RAW is set)
 *      52  compact JSON (json_len bytes, may be empty, not NUL-terminated)
 *     Format 1 (pollen before XXH3) is the same up to offset 36, where its
 *     JSON starts; it has no raw hash and its record hash is MurmurHash3.
 *     Decode reads both (e->format says which); encode writes format 2
 *     unless asked for 1 (an old entry whose flags change).
 *     Migration (snapshot.c): a format-1 entry is compared with
 *     diff_record_hash_legacy and, when equal, rewritten as format 2
 *     without an event; so an upgrade never reports a false change.
 *
 * Thread context: pure functions; any thread (scratch is per thread).
 */
#ifndef POLLEN_DIFF_H
#define POLLEN_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "buf.h"
#include "hash.h"

/*
 * Content hash of a record's top-level members, restricted to `fields`
 * (NULL = all) minus `ignore` (NULL = none). Key order never matters.
 * With fields NULL the hash equals the json_hash_update hash of the record
 * with the ignored members removed. With fields set, every listed name
 * contributes (sorted, duplicates in the list collapse): present members by
 * value, absent ones by an "absent" marker, so absent != present-with-null.
 * A record that is not an object hashes as its json_hash_update value.
 */
void diff_record_hash(const cJSON *record, char *const *fields, char *const *ignore,
                      struct hash128 *out);

/* The same content hash as snapshot format 1 stored it (MurmurHash3): only
 * to compare a format-1 entry while migrating it. */
void diff_record_hash_legacy(const cJSON *record, char *const *fields, char *const *ignore,
                             struct hash128 *out);

/*
 * The changes between two versions of a record, as a new object
 *   {"<field>": {"old": <old value or null if absent>,
 *                "new": <new value or null if absent>}, ...}
 * for each top-level member whose canonical value differs (added and removed
 * members included; a member added with value null is reported as null ->
 * null), filtered like diff_record_hash, keys in sorted order. Values are
 * deep copies. A key that appears more than once in a record is compared as
 * the list of its values and reported as an array of them. old_rec or
 * new_rec may be NULL (every member is then added or removed). Returns NULL
 * when nothing differs; otherwise the caller owns the result (cJSON_Delete).
 */
cJSON *diff_changes(const cJSON *old_rec, const cJSON *new_rec, char *const *fields,
                    char *const *ignore);

#define SNAP_BASELINE 0x1u /* recorded silently by a baseline (first) poll */
#define SNAP_MISSING 0x2u  /* absent from the last complete enumeration; deletion held for confirmation */
#define SNAP_RAW 0x4u      /* raw holds the hash of the record's bytes as the API last sent them */

#define DIFF_SNAP_MAGIC 0xA9u
#define DIFF_SNAP_FORMAT 2u
#define DIFF_SNAP_HEADER_LEN 52
#define DIFF_SNAP_FORMAT1 1u        /* MurmurHash3 record hash, no raw hash */
#define DIFF_SNAP_HEADER1_LEN 36

struct snap_entry {
    struct hash128 hash;
    uint32_t version;
    uint32_t flags;               /* SNAP_* bits */
    uint64_t missing_since_cycle;
    struct hash128 raw;           /* XXH3-128 of the record's raw bytes (SNAP_RAW) */
    uint8_t format;               /* the format read (1: hash is MurmurHash3); encode keeps 1, else writes 2 */
    const char *json;             /* compact JSON, NOT NUL-terminated; may be NULL when json_len is 0 */
    size_t json_len;
};

/*
 * Encodes e into out (cleared first): the fixed header, then the JSON
 * bytes; in format 1 when e->format is 1 (a decoded old entry rewritten
 * with new flags), else in the current format.
 * Returns 0, -EINVAL (json NULL with json_len > 0, or unknown flag bits) or
 * -EFBIG (out's cap). out stays NUL-terminated (buf guarantees it).
 */
int diff_snap_encode(const struct snap_entry *e, struct buf *out);

/*
 * Decodes a stored value of format 1 or 2 (e->format). e->json points INTO
 * val just past the header (borrowed: valid while val is, e.g. until the
 * LMDB txn ends), is never NULL after success (json_len may be 0) and is not
 * NUL-terminated. Returns 0, or -EINVAL on a short value, wrong magic,
 * unknown format version, nonzero reserved bytes or flag bits unknown to
 * that format (e is then zeroed).
 */
int diff_snap_decode(const void *val, size_t len, struct snap_entry *e);

/*
 * Deterministic event id: the first 16 bytes of SHA-256 over
 *   u64be(len) || bytes  for location, trigger, record_id, type (NULL = "")
 *   u32be(version)
 * as 32 lowercase hex characters plus NUL. Length prefixes keep
 * ("ab","c") and ("a","bc") apart.
 */
void diff_event_id(const char *location, const char *trigger, const char *record_id,
                   const char *type, uint32_t version, char out[33]);

/*
 * True for 1..128 bytes of [A-Za-z0-9_.:-], except "." and ".." (which are
 * path segments to URL normalisation). Such ids are safe in LMDB keys
 * (<= 511 bytes with their prefix) and as one URL path segment.
 */
bool diff_valid_record_id(const char *id);

#endif

/*
 * jsonspan: finds the records of a JSON response without parsing it: the
 * byte span of every element of the records array, and each element's id
 * (the string value of one top-level member), so that a caller can hash a
 * record's bytes and parse only the records whose bytes changed.
 *
 * It is a scanner, not a validator: it tracks strings (with their escapes),
 * nesting and the separators between members and elements, which is all it
 * needs to find the right boundaries in any valid document. It never trusts
 * its input: it reads nothing past data[len-1], visits each byte a bounded
 * number of times (O(len) time, no recursion), refuses nesting deeper than
 * json_parse allows, and reports anything it cannot follow (truncated input,
 * a missing separator, trailing bytes, no such member) as -EINVAL, after
 * which the caller parses the whole page normally. Invalid JSON inside an
 * element may go unnoticed here: callers parse every element they use.
 *
 * The id of an element is taken only when it is certain to be what
 * json_get_string(element, id_field) returns after a parse: the element is
 * an object, none of its top-level keys contains an escape (a key like
 * "i\u0064" would be "id" after decoding), the FIRST member named id_field
 * is a string, and that string holds no escape. Otherwise id_len is 0 and
 * the caller must parse the element to learn its id. Members of nested
 * objects named like id_field are never taken.
 *
 * Owns: the span array of a jsonspan_page (free with jsonspan_page_free).
 * Borrows: data, only during the call (spans are offsets into it).
 * Thread context: pure; any thread.
 */
#ifndef POLLEN_JSONSPAN_H
#define POLLEN_JSONSPAN_H

#include <stddef.h>

/* The deepest nesting accepted, as json_parse (cJSON's CJSON_NESTING_LIMIT). */
#define JSONSPAN_MAX_DEPTH 1000

struct jsonspan_rec {
    size_t off;    /* first byte of the element */
    size_t len;    /* its bytes, without the white space around it */
    size_t id_off; /* first byte of the id string's content (after the quote) */
    size_t id_len; /* its length; 0 when the id is not known without a parse */
};

struct jsonspan_page {
    size_t arr_off;            /* offset of the records array's '[' */
    size_t arr_end;            /* one past its ']' */
    struct jsonspan_rec *recs; /* the elements in order (owned) */
    size_t n;
    size_t cap;
};

/*
 * Scans data[0..len) for the records array: the value of the top-level
 * member `member` (the first one, as a case-sensitive lookup finds it) of
 * the top-level object, or, when member is NULL, the top-level value itself.
 * On success out holds the array's position and one span per element and 0
 * is returned. -EINVAL: the input is not a document of that shape (or
 * malformed, truncated, too deep); out is then empty. out must be zeroed or
 * previously used (it is reset first; its memory is reused).
 */
int jsonspan_records(const char *data, size_t len, const char *member, const char *id_field,
                     struct jsonspan_page *out);

/* Frees the span array; out is zeroed. NULL-safe. */
void jsonspan_page_free(struct jsonspan_page *pg);

#endif

/*
 * condition: the `when` expression of a rule, parsed once at config load
 * and evaluated against each detection event.
 *
 * Grammar (keywords are lower-case and case-sensitive; white space is
 * spaces and tabs, needed only between words):
 *   expr    := and ( "or" and )*                 "or" binds looser than "and"
 *   and     := term ( "and" term )*
 *   term    := "not" term | "(" expr ")"
 *            | "changed" "(" field ")"
 *            | path "exists" | path "not" "exists"
 *            | path op literal
 *   op      := "==" | "!=" | "contains" | "not" "contains"
 *   path    := root ( "." seg )*                 root := record | changes | event
 *   field   := seg | "record." seg               a top-level record field
 *   literal := string | number | true | false | null
 *   seg     := [A-Za-z0-9_-]+; an all-digit seg indexes an array (record.tags.0)
 *   string  := double-quoted; escapes \" \\ \n \t
 *   number  := JSON number syntax (-12, 3.5, 1e3)
 * `event.<member>` takes the members template.h lists (id, seq, time,
 * trigger, location, type, record_id); a bare root is the whole object.
 * Example: record.tags contains "vip" and not (record.email not exists or
 *          event.type == "deleted") and changed(email)
 *
 * Semantics (lookups are case-sensitive, json_get_path):
 *   a == L       the value equals L as JSON: same type and canonical value
 *                (json_equal), so "1" != 1, and arrays/objects compare
 *                whole, key order ignored. A missing path equals only null.
 *                An integer of magnitude >= 2^53 (a Raw node, json.h) and an
 *                integer literal compare by their exact digits; against a
 *                literal with a fraction or exponent, as that double's exact
 *                value.
 *   a != L       not (a == L)
 *   a contains L a string: L is a string and a substring (case-sensitive);
 *                an array: some element == L; anything else (missing
 *                included): false. `not contains` is its negation, so it
 *                is true for a missing path.
 *   a exists     present and not null; `not exists` is its negation
 *   changed(f)   the event's `changes` object has a member named f (only
 *                `updated` events carry changes: on others this is false)
 *
 * Bounds: text <= CONDITION_MAX_TEXT bytes, <= CONDITION_MAX_TERMS
 * comparisons (exists/op/changed), parentheses nested <= CONDITION_MAX_DEPTH.
 * Parse errors name the column (1-based, in characters) of the offending
 * token, e.g. "expected an operator after 'record.tags' at column 13".
 *
 * Owns: the parsed condition (condition_parse / condition_free).
 * Thread context: any thread; evaluation is read-only and pure, recursion
 * is bounded by the limits above.
 */
#ifndef POLLEN_CONDITION_H
#define POLLEN_CONDITION_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#define CONDITION_MAX_TEXT 4096
#define CONDITION_MAX_TERMS 64
#define CONDITION_MAX_DEPTH 16

struct condition;

/*
 * Parses text (NUL-terminated). Returns 0 and a new condition in *out (free
 * with condition_free), or -EINVAL with *out NULL and a one-line message
 * with the column in err (errlen bytes, may be 0).
 */
int condition_parse(const char *text, struct condition **out, char *err, size_t errlen);

/* Frees c; NULL is fine. */
void condition_free(struct condition *c);

/* Evaluates c against event (borrowed; NULL or any JSON shape: every path is missing). */
bool condition_eval(const struct condition *c, const cJSON *event);

/* True when c uses changed(...) or a changes.* path (only meaningful for `updated` events). */
bool condition_uses_changes(const struct condition *c);

#endif

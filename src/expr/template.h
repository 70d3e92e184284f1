/*
 * template: the value templates of rule action parameters, e.g.
 * `{{record.id}}`, `Hello {{record.firstName | default "there"}}`,
 * `{{now + 2d}}`. Parsed once when the config loads, rendered per event.
 *
 * Syntax. Literal text with zero or more `{{ expr }}` parts. Every `{{`
 * opens an expression (a lone `}}` in literal text is literal); to emit a
 * literal `{{` write `{{ "{{" }}`.
 *   expr     := primary ( "|" filter )*
 *   primary  := path | now | string
 *   path     := record(.seg)* | changes(.seg)* | event(.member(.seg)*)?
 *   now      := "now" ( ("+" | "-") INTEGER ("s" | "m" | "h" | "d") )?
 *   filter   := "default" literal | "lower" | "upper" | "trim" | "json"
 *             | "first" | "join" string? | "date" | "number" | "bool"
 *             | "urlencode" | "raw" | "split" string? | "parse_json"
 *   literal  := string | number | true | false | null
 *   string   := double-quoted; escapes \" \\ \n \t (any other is an error)
 * seg is [A-Za-z0-9_-]+; an all-digit seg indexes an array
 * (`record.lines.0.price`). Lookups are case-sensitive
 * (json_get_path). `event.member` must be one of the top-level members of a
 * detection event: id, seq, time, trigger, location, type, record_id; the
 * record and the changes have their own roots. Bare `record`, `changes` and
 * `event` are the whole object. Keywords and filter names are lower-case.
 *
 * Values. A path that does not resolve is "missing". Filters run left to
 * right; every filter except `default` and `json` passes missing and null
 * through unchanged, and a filter that cannot convert its input (`date` of
 * "soon", `number` of "abc", `bool` of 7) yields missing, so a later
 * `default` can supply a fallback:
 *   default L   missing or null -> L
 *   lower/upper ASCII case mapping of the value's text (UTF-8 bytes kept)
 *   trim        strips ASCII white space at both ends of the value's text
 *   json        compact canonical JSON text of the value (missing -> "null")
 *   first       array -> its first element (empty -> missing); others unchanged
 *   join [S]    array -> its elements' text joined with S (default ", ")
 *   date        epoch ms number, all-digit string or ISO-8601 date/date-time
 *               (Z, +hh:mm or none = UTC) -> "YYYY-MM-DDTHH:MM:SS.mmmZ"
 *   number      numeric text (JSON number syntax, surrounding white space ok),
 *               number, true/false -> number
 *   bool        "true"/"false"/"yes"/"no"/"1"/"0" (ASCII case-insensitive,
 *               trimmed), number 1/0, boolean -> boolean
 *   urlencode   the value's text percent-encoded (all but A-Z a-z 0-9 - . _ ~)
 *   raw         unchanged; in a URL template it turns the encoding off
 *   split [S]   the value's text cut at S (default ","), each piece trimmed,
 *               empty pieces dropped -> array of strings; an array is unchanged
 *   parse_json  a string holding JSON -> that value (not JSON -> missing);
 *               other values unchanged
 * The "text" of a value: a string as-is, a number in canonical form (integral
 * values without ".0"), true/false, null/missing -> "", arrays and objects
 * as compact canonical JSON (json.h: keys sorted).
 *
 * Rendering. A template whose whole text is one expression (white space
 * around it allowed) renders to the value with its JSON type kept (a tags
 * array stays an array; missing -> null). Any other template renders to a
 * string. Output is built with cJSON, never by pasting text into JSON, so
 * event data cannot change the shape of a body (reliability.md §5.6).
 * template_render_text always gives text (for headers; the caller still
 * applies the §5.6 checks: CR/LF/NUL). template_render_url gives a URL whose
 * expression parts are percent-encoded (F10: record text cannot leave its
 * path segment or query value).
 *
 * Bounds: text <= TEMPLATE_MAX_TEXT bytes, <= TEMPLATE_MAX_EXPRS expressions,
 * <= TEMPLATE_MAX_FILTERS filters per expression, output (a string, or the
 * compact JSON of a typed result) <= TEMPLATE_MAX_OUTPUT bytes and valid
 * UTF-8 (event strings may carry invalid bytes: cJSON passes them through).
 *
 * Owns: the parsed template (template_parse / template_free). Rendering is a
 * pure function of (template, event, now): nothing is cached or kept.
 * Thread context: any thread; a parsed template is read-only and may be
 * rendered from several threads at once (json.c's scratch is per thread).
 */
#ifndef POLLEN_TEMPLATE_H
#define POLLEN_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#define TEMPLATE_MAX_TEXT (64 * 1024)
#define TEMPLATE_MAX_EXPRS 64
#define TEMPLATE_MAX_FILTERS 16
#define TEMPLATE_MAX_OUTPUT (64 * 1024)

struct template;

/*
 * Parses text (NUL-terminated). Returns 0 and a new template in *out (free
 * with template_free), or -EINVAL with *out NULL and a one-line message in
 * err (errlen bytes, may be 0) saying what and where, e.g.
 * "unknown root 'recrod' in {{recrod.id}} (use record, changes, event or now)".
 */
int template_parse(const char *text, struct template **out, char *err, size_t errlen);

/* Frees t; NULL is fine. */
void template_free(struct template *t);

/* True when the text has no {{ }} at all (it renders to itself, as a string). */
bool template_is_literal(const struct template *t);

/*
 * True when some expression's root is `root` ("record", "changes", "event"
 * or "now"; anything else is false). `check` uses "changes" to warn about
 * rules whose templates read changes but fire on events that have none.
 */
bool template_uses_root(const struct template *t, const char *root);

/*
 * Renders t against event (borrowed; NULL or any JSON shape is allowed: then
 * every path is missing). now_wall_ms is the wall clock for `now`.
 * Returns 0 and a new value in *out (caller frees with cJSON_Delete; the
 * value has no member name), or -EINVAL with *out NULL and err set (output
 * longer than TEMPLATE_MAX_OUTPUT, invalid UTF-8, `now` arithmetic out of
 * range), or -ENOMEM if cJSON could not allocate.
 */
int template_render(const struct template *t, const cJSON *event, uint64_t now_wall_ms,
                    cJSON **out, char *err, size_t errlen);

/*
 * Like template_render, but the result is always the text form: for a typed
 * template the text of its value (missing/null -> ""). *out is a new
 * NUL-terminated string the caller frees. Same return codes.
 */
int template_render_text(const struct template *t, const cJSON *event, uint64_t now_wall_ms,
                         char **out, char *err, size_t errlen);

/*
 * Like template_render, for a list of strings (a string_list field): text
 * that mixes literals and expressions renders to an array, split at the
 * spaces, commas and tabs of its literal text only, so the user's words are
 * separate elements and an expression's text never splits
 * (`tag-{{record.source}} vip` -> ["tag-web, form", "vip"]). A template
 * that is one expression, or has none, renders as template_render does (the
 * caller applies its coercion). Same return codes.
 */
int template_render_list(const struct template *t, const cJSON *event, uint64_t now_wall_ms,
                         cJSON **out, char *err, size_t errlen);

/*
 * Like template_render_text, for a URL: the text of every expression is
 * percent-encoded as by `urlencode`, so '/', '?', '#', '&' and '=' from the
 * event stay inside their path segment or query value. An expression whose
 * last filter is `raw` (the user's explicit opt-out) or `urlencode` (already
 * encoded) goes in as it is. Literal text is never changed.
 */
int template_render_url(const struct template *t, const cJSON *event, uint64_t now_wall_ms,
                        char **out, char *err, size_t errlen);

/* One-off parse + template_render_text (tests, CLI). Same return codes. */
int template_expand(const char *text, const cJSON *event, uint64_t now_wall_ms, char **out,
                    char *err, size_t errlen);

/*
 * True when name[0..len) is a member `event.<name>` may address (id, seq,
 * time, trigger, location, type, record_id). Shared with condition.c so
 * templates and `when` accept the same paths.
 */
bool template_is_event_member(const char *name, size_t len);

/*
 * The index of the "}}" closing the "{{" at s[open] (len bytes), skipping
 * double-quoted strings (a "}}" inside one does not close), or 0 if none.
 * The one rule the template parser and config's checks of rule values share.
 */
size_t template_find_close(const char *s, size_t len, size_t open);

#endif

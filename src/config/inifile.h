/*
 * inifile: the INI document reader, startup diagnostics and the key-table
 * engine shared by config (the user's file) and catalog (the shipped
 * endpoint definitions). Knows nothing of either: catalog.c and config.c
 * both build on it, and neither includes the other's internals. (Not
 * "ini.h": that is inih's own header, which inifile.c includes.)
 *
 * Owns: the parsed document (struct ini_doc) and the error lists.
 * Invariants: see the INI rules below; a document with errors is never
 * used by its callers.
 *
 * The INI rules (reliability.md §3.3, inih r55 as shipped by Debian):
 *  - The file is read whole (at most INI_DOC_MAX_FILE bytes) and
 *    pre-scanned before inih sees it: a line longer than INI_DOC_MAX_LINE
 *    bytes, a control character (NUL included) or invalid UTF-8 is an error.
 *    r55 would silently split an overlong line and inject its tail as a new
 *    key; here such a line is served to inih as a blank line instead, so the
 *    rest of the file is still checked and every error is reported.
 *  - inih is driven through ini_parse_stream with our own reader, which
 *    counts lines, so the handler knows its line number (r55 has no
 *    INI_HANDLER_LINENO). Section headers are tracked by our own scan, which
 *    mirrors inih's state machine, because r55 truncates section names to 49
 *    bytes.
 *  - An indented line continues the previous key's value (appended with one
 *    space; inline comments are stripped there too; an indented line that
 *    looks like `key = value` is an error). A second non-indented
 *    occurrence of a key in one section, and a repeated section header, are
 *    errors.
 *  - Inline comments: `x = 1 ; c` gives `1`, `x = a;b` gives `a;b` (a `;`
 *    starts a comment only after white space).
 *  - Any error anywhere means the whole document is discarded by its users:
 *    nothing half-parsed is ever used.
 *
 * Error lists: each item is "FILE:LINE: message" ("FILE: message" when the
 * error concerns the whole file). Per-file errors are collected in a
 * struct ini_diag and flushed sorted by line, so a user sees every problem in
 * file order at once.
 *
 * Secrets: callers never put a secret into a message (a rejected token value
 * is not quoted), and ini_errors_add also masks every string registered
 * with log_add_secret, so a token pasted into another key shows as
 * [REDACTED]. Quoted values are cut to 64 bytes.
 *
 * Thread context: loop thread, at startup or reload only. Loading reads small
 * local files with blocking calls (bounded to 1 MiB each), so it never runs
 * per poll.
 */
#ifndef POLLEN_INIFILE_H
#define POLLEN_INIFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util.h"

/* Longest line accepted (bytes, without the line end): r55 reads 199 bytes
 * into a 200-byte buffer and needs one for the newline. */
#define INI_DOC_MAX_LINE 198
/* Largest INI file accepted. */
#define INI_DOC_MAX_FILE (1024 * 1024)
/* Longest section name (the NAME in [trigger NAME], or a catalog name). */
#define INI_NAME_MAX 64
/* Values quoted in messages are cut to this many bytes, so one bad line
 * cannot flood the terminal. */
#define INI_QUOTE_MAX 64
/* Longest list value (fields, volatile, ...), in items. */
#define INI_LIST_MAX 256

struct ini_errors {
    char **items; /* each "FILE:LINE: message"; owned */
    size_t count;
};

/* Appends one formatted error; line <= 0 means the whole file ("FILE: message"). */
void ini_errors_add(struct ini_errors *e, const char *file, int line, const char *fmt, ...)
    ATTR_PRINTF(4, 5);
/* Prints every item on its own line. */
void ini_errors_print(const struct ini_errors *e, FILE *out);
/* Frees the items and zeroes the list; accepts a zeroed list. */
void ini_errors_free(struct ini_errors *e);

/* Errors of one file, kept with their line numbers until flushed in line order. */
struct ini_diag_item {
    int line;
    char *msg;
};
struct ini_diag {
    char *file; /* owned copy, as it appears in messages */
    struct ini_diag_item *items;
    size_t count;
};

void ini_diag_init(struct ini_diag *d, const char *file);
void ini_diag_add(struct ini_diag *d, int line, const char *fmt, ...) ATTR_PRINTF(3, 4);
/* Like ini_diag_add, unless the same message is already recorded at the
 * same line (one section can stand for several objects, such as the
 * expansions of a `location = *` trigger). */
void ini_diag_add_once(struct ini_diag *d, int line, const char *fmt, ...)
    ATTR_PRINTF(3, 4);
/* Moves the errors into errs, sorted by line (stable), and frees d. */
void ini_diag_flush(struct ini_diag *d, struct ini_errors *errs);

/* One parsed INI document. Values are final (continuations joined). */
struct ini_entry {
    char *key;
    char *value;
    int line;
};
struct ini_section {
    char *kind;       /* first word of the header: "trigger" in [trigger x] */
    char *name;       /* second word, or NULL */
    int line;
    bool skip;        /* a repeated or malformed header (already reported): users skip it */
    struct ini_entry *entries;
    size_t nentries;
};
struct ini_doc {
    char *path;       /* as given */
    char *dir;        /* absolute directory of the file, for relative paths */
    struct ini_section *sections;
    size_t nsections;
    struct ini_diag diag; /* every error found so far, syntax and semantic */
    void *user;       /* for custom key parsers (the loader's context) */
};

/*
 * Reads and parses path into doc (which is zeroed first). Errors go to
 * doc->diag; the document is always filled with what could be read, so the
 * caller can keep checking and report everything, then must discard it if
 * doc->diag.count != 0. Returns 0, or -errno when the file cannot be read at
 * all (also recorded in doc->diag, as a whole-file error).
 */
int ini_load(const char *path, struct ini_doc *doc);
/* Frees the document; flushes any remaining errors into errs (if not NULL). */
void ini_finish(struct ini_doc *doc, struct ini_errors *errs);

/*
 * Table-driven keys: one struct ini_key per key of a section kind. The
 * value is parsed into (char *)obj + offset. A default is text parsed exactly
 * like user input, so conf/pollen.ini and the table cannot disagree.
 */
enum ini_key_type {
    INI_KEY_STRING,   /* char *: non-empty; one of choices if set */
    INI_KEY_PATH,     /* char *: relative to the file's directory */
    INI_KEY_DURATION, /* uint64_t ms in [min, max] */
    INI_KEY_SIZE,     /* uint64_t bytes in [min, max] */
    INI_KEY_UINT64,   /* uint64_t in [min, max] */
    INI_KEY_UNSIGNED, /* unsigned in [min, max] */
    INI_KEY_DOUBLE,   /* double in [dmin, dmax] */
    INI_KEY_BOOL,     /* bool: yes/no/true/false/on/off/1/0 */
    INI_KEY_LIST,     /* char **: space-separated, NULL-terminated (strv) */
    INI_KEY_CUSTOM,   /* parse() does everything */
};

struct ini_key;
/* Custom parser: field = obj + key->offset. Returns 0, or -EINVAL after
 * adding an error to doc->diag at line. */
typedef int (*ini_key_parse_fn)(struct ini_doc *doc, const struct ini_key *key,
                                const char *value, int line, void *field);

struct ini_key {
    const char *name;
    enum ini_key_type type;
    size_t offset;
    const char *def;             /* default as text, or NULL */
    bool required;
    uint64_t min, max;           /* ranges of integer-like types */
    double dmin, dmax;
    const char *const *choices;  /* STRING: allowed values, NULL-terminated */
    ini_key_parse_fn parse;   /* CUSTOM only */
};

/*
 * Handles a key that is not in the table (catalog bindings, trigger
 * parameters). Returns true when the key was taken (even if it had an error,
 * which it reports), false when it is unknown.
 */
typedef bool (*ini_extra_fn)(struct ini_doc *doc, const struct ini_entry *entry,
                             void *obj);

/*
 * Applies the section's entries to obj through the key table: parses each
 * known key, passes others to extra (or reports "unknown key 'k' in WHAT; did
 * you mean 'x'?"), then reports missing required keys at the section's line
 * and parses the defaults of keys not given. what names the section in
 * messages ("[trigger x]"). lines (if not NULL, nkeys long) gets the line of
 * each key the user gave, 0 for the others. Returns the number of errors
 * added.
 */
size_t ini_apply(struct ini_doc *doc, const struct ini_section *sec,
                 const char *what, const struct ini_key *keys, size_t nkeys, void *obj,
                 ini_extra_fn extra, int *lines);

/*
 * One key table and the object its offsets point into. A section may be
 * applied through several (a [rule]: the common keys into the rule, its
 * action kind's keys into the kind's own struct).
 */
struct ini_table {
    const struct ini_key *keys;
    size_t nkeys;
    void *obj;
};

/*
 * ini_apply through tables[0..ntables) (at most 8, 64 keys in all) as if
 * they were one table: a key is looked up in each in turn, suggestions
 * and missing keys come in table order, lines is indexed across the tables
 * (table 1's first key follows table 0's last). extra gets tables[0].obj.
 * Returns the number of errors added.
 */
size_t ini_apply_tables(struct ini_doc *doc, const struct ini_section *sec, const char *what,
                        const struct ini_table *tables, size_t ntables, ini_extra_fn extra,
                        int *lines);

/* The closest of candidates (NULL entries skipped) to word (small edit
 * distance), or NULL. Borrowed from candidates. */
const char *ini_suggest(const char *word, const char *const *candidates, size_t n);

/* The choices (NULL-terminated) joined by single spaces, for messages.
 * Returns a new string. */
char *ini_join_choices(const char *const *choices);

/* Formats a duration (ms) in its largest whole unit: "15m", "90m", "1s", "250ms". */
void ini_format_duration(uint64_t ms, char *out, size_t size);

/* True for 1..INI_NAME_MAX bytes of [A-Za-z0-9_.-] (a section name). */
bool ini_valid_name(const char *s);

/* Copies at most INI_QUOTE_MAX bytes of s into out for a message (never
 * splitting a UTF-8 sequence), adding "..." when cut. */
void ini_quote(const char *s, char out[INI_QUOTE_MAX + 4]);

#endif

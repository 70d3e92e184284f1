/*
 * catalog_value: the one place a catalog value's text becomes a request
 * part (see catalog.h): path templates expanded with each value checked and
 * percent-encoded as one segment, and text coerced to JSON by catalog_type.
 * The poller (triggers), the ghl sink (actions) and config checks all call
 * these, so a value is accepted or refused by the same rules everywhere.
 */
#include "catalog.h"
#include "isotime.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "resources.h"
#include "url.h"
#include "util.h"

/* A placeholder's value that cannot be one path segment: empty would make
 * "//", and "." or ".." would address another resource. */
static bool bad_segment(const char *v)
{
    return v[0] == '\0' || strcmp(v, ".") == 0 || strcmp(v, "..") == 0;
}

int catalog_path_expand(const char *tpl, catalog_path_lookup lookup, void *ud, char **out,
                        char *err, size_t errlen)
{
    struct buf b;
    *out = NULL;
    err[0] = '\0';
    buf_init(&b, 8192);
    for (const char *s = tpl; *s != '\0';) {
        if (*s != '{') {
            buf_append(&b, s, 1);
            s++;
            continue;
        }
        const char *end = strchr(s, '}');
        if (end == NULL) {
            snprintf(err, errlen, "'{' without '}' in '%.120s'", tpl);
            buf_finish(&b);
            return -EINVAL;
        }
        char *name = xstrndup(s + 1, (size_t)(end - s - 1));
        char *value = lookup(ud, name, err, errlen);
        int rc = 0;
        if (value == NULL) {
            if (err[0] == '\0') {
                snprintf(err, errlen, "{%s}: no value for this placeholder", name);
            }
            rc = -ENOENT;
        } else if (bad_segment(value)) {
            snprintf(err, errlen, "{%s}: '%s' is not a path segment (empty, '.' and '..' are "
                                  "refused)", name, value);
            rc = -EINVAL;
        } else {
            char *esc = url_escape(value);
            buf_append_str(&b, esc);
            free(esc);
        }
        free(value);
        free(name);
        if (rc != 0) {
            buf_finish(&b);
            return rc;
        }
        s = end + 1;
    }
    if (b.too_big) {
        snprintf(err, errlen, "path too long");
        buf_finish(&b);
        return -E2BIG;
    }
    *out = buf_steal(&b, NULL);
    return 0;
}

size_t catalog_record_placeholder(const char *name, size_t len)
{
    static const char prefix[] = "record.";
    size_t plen = sizeof(prefix) - 1;
    if (len <= plen || memcmp(name, prefix, plen) != 0) {
        return 0;
    }
    /* Each dot-separated segment is a non-empty name: no "..", no trailing '.'. */
    for (size_t start = plen, i = plen; i <= len; i++) {
        if (i == len || name[i] == '.') {
            if (i == start || !catalog__valid_ident(name + start, i - start)) {
                return 0;
            }
            start = i + 1;
        }
    }
    return plen;
}

char *catalog_record_text(const cJSON *record, const char *field, char *err, size_t errlen)
{
    const cJSON *v = record != NULL ? json_get_path(record, field) : NULL;
    if (cJSON_IsString(v)) {
        return xstrdup(v->valuestring);
    }
    /* A number, or an integer past 2^53 that json_parse kept as its digits. */
    if (cJSON_IsNumber(v) || (cJSON_IsRaw(v) && v->valuestring != NULL &&
                              json_scan_number(v->valuestring, strlen(v->valuestring)) ==
                                  strlen(v->valuestring))) {
        return json_print_canonical(v);
    }
    snprintf(err, errlen, "{record.%s}: %s", field,
             record == NULL ? "no last-known copy of the record"
             : v == NULL    ? "the last-known record has no such field"
                            : "the field is not a string or a number");
    return NULL;
}

/* A literal list: words split on spaces, tabs and commas ("a, b c"). */
static cJSON *split_list(const char *text)
{
    cJSON *arr = cJSON_CreateArray();
    char *copy = xstrdup(text);
    for (char *p = copy; *p != '\0';) {
        while (*p == ' ' || *p == ',' || *p == '\t') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        char *start = p;
        while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t') {
            p++;
        }
        char saved = *p;
        *p = '\0';
        cJSON_AddItemToArray(arr, cJSON_CreateString(start));
        *p = saved;
    }
    free(copy);
    return arr;
}

/* An integer's text: JSON number text with no fraction or exponent, so
 * "1e3" and "2.0" are refused rather than silently converted. */
static bool integer_text(const char *s)
{
    return strpbrk(s, ".eE") == NULL;
}

int catalog_value_coerce(enum catalog_type type, const char *text, cJSON **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    switch (type) {
    case CATALOG_STRING:
        *out = cJSON_CreateString(text);
        return 0;
    case CATALOG_STRING_LIST:
        *out = split_list(text);
        return 0;
    case CATALOG_INTEGER:
    case CATALOG_NUMBER: {
        /* Raw: an integer past 2^53 keeps its digits (json_number_from_text). */
        cJSON *n = json_number_from_text(text);
        if (n != NULL && (type == CATALOG_NUMBER || integer_text(text))) {
            *out = n;
            return 0;
        }
        cJSON_Delete(n);
        snprintf(err, errlen, "'%.60s' is not %s (plain JSON number text only)", text,
                 type == CATALOG_INTEGER ? "an integer" : "a number");
        return -EINVAL;
    }
    case CATALOG_BOOLEAN:
        /* Exactly the JSON words: "yes" in an API field is more likely a
         * mistake than a wish. */
        if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0) {
            *out = cJSON_CreateBool(text[0] == 't');
            return 0;
        }
        snprintf(err, errlen, "'%.60s' is not a boolean (true or false)", text);
        return -EINVAL;
    case CATALOG_JSON: {
        size_t at = 0;
        if (json_parse(text, strlen(text), out, &at) == 0) {
            return 0;
        }
        *out = NULL;
        snprintf(err, errlen, "not valid JSON (error near byte %zu)", at + 1);
        return -EINVAL;
    }
    }
    snprintf(err, errlen, "unknown type");
    return -EINVAL;
}

/* tmpl with every ph replaced by value: a new string. */
static char *replace_all(const char *tmpl, const char *ph, const char *num)
{
    size_t phlen = strlen(ph);
    size_t n = 0;
    for (const char *s = strstr(tmpl, ph); s != NULL; s = strstr(s + 1, ph)) {
        n++;
    }
    size_t len = strlen(tmpl) + n * strlen(num) + 1;
    char *out = xmalloc(len);
    char *o = out;
    for (const char *s = tmpl; *s != '\0';) {
        if (strncmp(s, ph, phlen) == 0) {
            o += sprintf(o, "%s", num);
            s += phlen;
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

char *catalog_watermark_render(const char *tmpl, long long ms)
{
    char num[32];
    snprintf(num, sizeof(num), "%lld", ms);
    return replace_all(tmpl, "{watermark}", num);
}

char *catalog_watermark_render_text(const char *tmpl, long long ms)
{
    char iso[ISOTIME_LEN];
    isotime_format(ms > 0 ? (uint64_t)ms : 0, iso);
    char *with_iso = replace_all(tmpl, "{watermark_iso}", iso);
    char *out = catalog_watermark_render(with_iso, ms);
    free(with_iso);
    return out;
}

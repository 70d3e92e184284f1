/*
 * userapi: the [api NAME] sections (a user's own API: config.h), their key
 * table and checks, the lookup, and freeing them. The trigger side (`api =
 * NAME`) is in config.c's finish_trigger; loading the api's catalog is
 * config_resolve's (resolve.c).
 */
#include "config_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"

#define SEC(s) ((uint64_t)(s) * 1000)
#define MIN(m) ((uint64_t)(m) * 60000)

/* An HTTP header name or auth scheme: RFC 9110 token characters only, so
 * the value can never add a header or break the line. */
static bool http_token(const char *s)
{
    if (s[0] == '\0' || strlen(s) > 64) {
        return false;
    }
    for (const char *c = s; *c != '\0'; c++) {
        if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') && !(*c >= '0' && *c <= '9') &&
            strchr("!#$%&'*+-.^_`|~", *c) == NULL) {
            return false;
        }
    }
    return true;
}

static int parse_header_name(struct ini_doc *doc, const struct ini_key *k, const char *value,
                             int line, void *field)
{
    if (!http_token(value)) {
        ini_diag_add(&doc->diag, line,
                     "%s must be an HTTP header name (letters, digits and !#$%%&'*+-.^_`|~, at "
                     "most 64)",
                     k->name);
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrdup(value);
    return 0;
}

/* auth_scheme = Bearer (the default), another scheme word, or none (the bare value). */
static int parse_scheme(struct ini_doc *doc, const struct ini_key *k, const char *value,
                        int line, void *field)
{
    if (strcmp(value, "none") != 0 && !http_token(value)) {
        ini_diag_add(&doc->diag, line,
                     "%s must be one word (Bearer, Token, ...) or none (the header carries the "
                     "value alone)",
                     k->name);
        return -EINVAL;
    }
    char **dst = field;
    free(*dst);
    *dst = xstrdup(strcmp(value, "none") == 0 ? "" : value);
    return 0;
}

#define A(f) offsetof(struct config_api, f)
static const struct ini_key api_keys[] = {
    {.name = "base_url", .type = INI_KEY_CUSTOM, .offset = A(base_url), .required = true,
     .parse = config__parse_base_url},
    /* No credential at all is allowed (an API on loopback without auth). */
    {.name = "auth", .type = INI_KEY_CUSTOM, .offset = A(auth), .parse = config__parse_token},
    {.name = "auth_header", .type = INI_KEY_CUSTOM, .offset = A(auth_header),
     .def = "Authorization", .parse = parse_header_name},
    {.name = "auth_scheme", .type = INI_KEY_CUSTOM, .offset = A(auth_scheme), .def = "Bearer",
     .parse = parse_scheme},
    /* The budget keys are named as a [location]'s; an own app has no
     * documented limit, so the defaults are modest and the maxima wide. */
    {.name = "rate_limit", .type = INI_KEY_UNSIGNED, .offset = A(rate_limit), .def = "50",
     .min = 1, .max = 10000},
    {.name = "rate_window", .type = INI_KEY_DURATION, .offset = A(rate_window_ms), .def = "10s",
     .min = SEC(1), .max = MIN(60)},
    {.name = "daily_limit", .type = INI_KEY_UINT64, .offset = A(daily_limit), .def = "1000000",
     .min = 1, .max = 100000000},
    {.name = "timeout", .type = INI_KEY_DURATION, .offset = A(timeout_ms), .def = "30s",
     .min = SEC(1), .max = MIN(10)},
    {.name = "catalog", .type = INI_KEY_PATH, .offset = A(catalog_dir), .required = true},
};
#undef A
enum { API_AUTH = 1, API_AUTH_HEADER = 2, API_AUTH_SCHEME = 3 };

static void *add_api(struct loader *ld, const struct ini_section *sec)
{
    struct config *cfg = ld->cfg;
    cfg->apis = xrealloc(cfg->apis, (cfg->napis + 1) * sizeof(*cfg->apis));
    struct config_api *api = &cfg->apis[cfg->napis++];
    memset(api, 0, sizeof(*api));
    api->name = xstrdup(sec->name);
    api->line = sec->line;
    return api;
}

static void finish_api(struct loader *ld, struct ini_doc *doc, const struct ini_section *sec,
                       void *obj, const int *lines)
{
    (void)ld;
    (void)sec;
    struct config_api *api = obj;
    if (lines[API_AUTH] == 0 && (lines[API_AUTH_HEADER] != 0 || lines[API_AUTH_SCHEME] != 0)) {
        ini_diag_add(&doc->diag,
                     lines[API_AUTH_HEADER] != 0 ? lines[API_AUTH_HEADER] : lines[API_AUTH_SCHEME],
                     "[api %s]: %s without auth (auth = env:VAR or file:PATH)", api->name,
                     lines[API_AUTH_HEADER] != 0 ? "auth_header" : "auth_scheme");
    }
}

const struct section_kind config__user_api_kind = {
    "api", true, api_keys, ARRAY_SIZE(api_keys), add_api, finish_api, NULL, NULL, NULL,
};

struct config_api *config_find_api(const struct config *cfg, const char *name)
{
    for (size_t i = 0; name != NULL && i < cfg->napis; i++) {
        if (strcmp(cfg->apis[i].name, name) == 0) {
            return &cfg->apis[i];
        }
    }
    return NULL;
}

void config__bind_api(const struct config *cfg, struct ini_doc *doc, struct config_trigger *t,
                      int location_line, int company_line)
{
    if (location_line != 0 || company_line != 0) {
        ini_diag_add(&doc->diag, t->api_line,
                     "[trigger %s] names both api and %s (line %d); a trigger polls either a "
                     "HighLevel location or one of your APIs",
                     t->name, location_line != 0 ? "location" : "company",
                     location_line != 0 ? location_line : company_line);
        return;
    }
    t->api = config_find_api(cfg, t->api_name);
    if (t->api != NULL) {
        return;
    }
    const char **names = xcalloc(cfg->napis + 1, sizeof(*names));
    for (size_t i = 0; i < cfg->napis; i++) {
        names[i] = cfg->apis[i].name;
    }
    const char *hint = ini_suggest(t->api_name, names, cfg->napis);
    ini_diag_add(&doc->diag, t->api_line, "unknown api '%s' (no [api %s] section)%s%s%s",
                 t->api_name, t->api_name, hint ? "; did you mean '" : "", hint ? hint : "",
                 hint ? "'?" : "");
    free(names);
}

void config__api_free(struct config_api *api)
{
    free(api->name);
    free(api->base_url);
    secret_wipe_free(api->auth);
    free(api->auth_header);
    free(api->auth_scheme);
    free(api->catalog_dir);
    catalog_free(api->catalog);
}

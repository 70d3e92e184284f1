/*
 * test_log: the text and JSON line formats, the fields JSON lines take from
 * the prefix, a bound location and struct log_fields, the escaping of any
 * byte (invalid UTF-8 still gives valid JSON), redaction in both formats,
 * and held lines written in the format set when they are released.
 */
#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "testlib.h"
#include "util.h"

static FILE *out;

/* Returns what was logged since the last call (static buffer). */
static const char *take(void)
{
    static char text[16384];
    fflush(out);
    size_t n = (size_t)ftell(out);
    rewind(out);
    n = fread(text, 1, n < sizeof(text) - 1 ? n : sizeof(text) - 1, out);
    text[n] = '\0';
    rewind(out);
    if (ftruncate(fileno(out), 0) != 0) {
        text[0] = '\0';
    }
    return text;
}

/* Parses one logged JSON line; checks it is one line of valid UTF-8. */
static cJSON *take_json(void)
{
    const char *line = take();
    size_t n = strlen(line);
    CHECK(n > 0 && line[n - 1] == '\n');
    CHECK(strchr(line, '\n') == line + n - 1);
    CHECK(utf8_valid(line, n));
    cJSON *j = cJSON_Parse(line);
    CHECK(j != NULL);
    if (j == NULL) {
        fprintf(stderr, "not JSON: %s", line);
    }
    return j;
}

static const char *field(const cJSON *j, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_text(void)
{
    log_set_format(LOG_FORMAT_TEXT);
    log_bind_location("trigger:t1", "main");
    struct log_fields f = {.trace_id = "tr-1"};
    log_at_with(LOG_WARN, "trigger:t1", &f, "GET /x: HTTP %d", 500);
    const char *line = take();
    /* 2026-11-26T19:46:53.123Z warn [trigger:t1] GET /x: HTTP 500 */
    CHECK(strlen(line) == 24 + strlen(" warn [trigger:t1] GET /x: HTTP 500\n"));
    CHECK(line[10] == 'T' && line[23] == 'Z');
    CHECK_STR(line + 24, " warn [trigger:t1] GET /x: HTTP 500\n");
    log_info(NULL, "bare");
    CHECK_STR(take() + 24, " info bare\n");
    log_unbind("trigger:t1");
}

static void test_json_fields(void)
{
    log_set_format(LOG_FORMAT_JSON);
    log_bind_location("trigger:t1", "main");
    struct log_fields f = {.trace_id = "tr-1"};
    log_at_with(LOG_ERROR, "trigger:t1", &f, "GET /x: HTTP %d", 500);
    cJSON *j = take_json();
    CHECK_INT(strlen(field(j, "time") ? field(j, "time") : ""), 24);
    CHECK_STR(field(j, "level"), "error");
    CHECK_STR(field(j, "module"), "trigger");
    CHECK_STR(field(j, "trigger"), "t1");
    CHECK_STR(field(j, "location"), "main");
    CHECK_STR(field(j, "message"), "GET /x: HTTP 500");
    CHECK_STR(field(j, "traceId"), "tr-1");
    cJSON_Delete(j);

    /* Unbound: no location; no fields: no traceId; a plain module prefix. */
    log_unbind("trigger:t1");
    log_warn("trigger:t1", "m");
    j = take_json();
    CHECK(field(j, "location") == NULL && field(j, "traceId") == NULL);
    cJSON_Delete(j);
    log_info("http", "m");
    j = take_json();
    CHECK_STR(field(j, "module"), "http");
    CHECK(field(j, "trigger") == NULL);
    cJSON_Delete(j);
    log_info("location:east", "m");
    j = take_json();
    CHECK_STR(field(j, "module"), "location");
    CHECK_STR(field(j, "location"), "east");
    cJSON_Delete(j);
    log_info("oauth:agency", "m");
    j = take_json();
    CHECK_STR(field(j, "credential"), "agency");
    cJSON_Delete(j);
    log_info(NULL, "m");
    j = take_json();
    CHECK(field(j, "module") == NULL);
    CHECK_STR(field(j, "message"), "m");
    cJSON_Delete(j);
    /* The fields' location wins over the binding; an empty traceId is none. */
    log_bind_location("rule:r", "bound");
    struct log_fields g = {.trace_id = "", .location = "given"};
    log_at_with(LOG_WARN, "rule:r", &g, "m");
    j = take_json();
    CHECK_STR(field(j, "rule"), "r");
    CHECK_STR(field(j, "location"), "given");
    CHECK(field(j, "traceId") == NULL);
    cJSON_Delete(j);
    log_unbind("rule:r");
    /* The level check still happens first. */
    log_set_level(LOG_INFO);
    log_debug("http", "hidden");
    CHECK_STR(take(), "");
}

static void test_json_escaping(void)
{
    log_set_format(LOG_FORMAT_JSON);
    /* Quotes, backslashes, a tab, control bytes (made spaces, as in text),
     * valid multi-byte UTF-8, and invalid bytes: a lone continuation, a
     * truncated sequence, an overlong form and a surrogate. */
    log_warn("trigger:\"q\"", "a\"b\\c\td\x01\x1f\ne \xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x9d "
                              "\x80 \xe2\x82 \xc0\xaf \xed\xa0\x80 end\xff");
    cJSON *j = take_json();
    CHECK_STR(field(j, "trigger"), "\"q\"");
    CHECK_STR(field(j, "message"),
              "a\"b\\c\td   e \xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x9d \xef\xbf\xbd "
              "\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd "
              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end\xef\xbf\xbd");
    cJSON_Delete(j);
    /* A message cut at the line cap inside a sequence still parses. */
    char big[3000];
    memset(big, 'x', sizeof(big));
    for (size_t i = 2040; i + 2 < sizeof(big); i += 2) {
        big[i] = '\xc3';
        big[i + 1] = '\xa9';
    }
    big[sizeof(big) - 1] = '\0';
    log_info("http", "%s", big);
    j = take_json();
    CHECK(field(j, "message") != NULL);
    cJSON_Delete(j);
}

static void test_redaction(void)
{
    log_add_secret("s3cr3t-token");
    log_set_format(LOG_FORMAT_JSON);
    struct log_fields f = {.trace_id = "s3cr3t-token"};
    log_at_with(LOG_WARN, "http", &f, "url ?t=s3cr3t-token");
    const char *line = take();
    CHECK(strstr(line, "s3cr3t") == NULL);
    CHECK(strstr(line, "url ?t=[REDACTED]") != NULL);
    log_set_format(LOG_FORMAT_TEXT);
    log_warn("http", "url ?t=s3cr3t-token");
    CHECK_STR(take() + 24, " warn [http] url ?t=[REDACTED]\n");
    log_clear_secrets();
}

static void test_hold(void)
{
    log_set_format(LOG_FORMAT_TEXT);
    log_hold();
    log_warn("config", "first");
    struct log_fields f = {.trace_id = "t"};
    log_at_with(LOG_ERROR, "trigger:a", &f, "second");
    CHECK_STR(take(), "");
    log_set_format(LOG_FORMAT_JSON);
    log_release();
    const char *text = take();
    const char *nl = strchr(text, '\n');
    CHECK(nl != NULL && strstr(text, "\"message\":\"first\"") != NULL &&
          strstr(text, "\"message\":\"first\"") < nl);
    CHECK(strstr(text, "\"traceId\":\"t\"") > nl);
    /* Released: written at once again. */
    log_info("config", "third");
    CHECK(strstr(take(), "third") != NULL);
    log_release(); /* nothing held: a no-op */
    CHECK_STR(take(), "");
}

static void test_parse(void)
{
    enum log_format f = LOG_FORMAT_TEXT;
    CHECK_INT(log_parse_format("json", &f), 0);
    CHECK_INT(f, LOG_FORMAT_JSON);
    CHECK_INT(log_parse_format("text", &f), 0);
    CHECK_INT(f, LOG_FORMAT_TEXT);
    CHECK(log_parse_format("JSON", &f) != 0);
    CHECK(log_parse_format("", &f) != 0);
}

int main(void)
{
    out = tmpfile();
    if (out == NULL) {
        perror("tmpfile");
        return 1;
    }
    log_set_output(out);
    test_text();
    test_json_fields();
    test_json_escaping();
    test_redaction();
    test_hold();
    test_parse();
    log_set_output(NULL);
    log_set_format(LOG_FORMAT_TEXT);
    fclose(out);
    return test_done("log");
}

/*
 * test_template: value templates. A table of templates rendered against a
 * fixed event with a fixed clock, compared as canonical JSON (so the JSON
 * type of each result is checked, not just its text); every filter; `now`
 * arithmetic; parse errors and their messages; render errors (size, UTF-8,
 * clock range); hostile input (injection strings stay one string value,
 * control characters come out escaped, 100 KB text, odd event shapes).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "template.h"
#include "util.h"
#include "testlib.h"

/* 2026-11-26T19:46:53.123Z */
#define NOW 1795722413123ULL

static const char event_json[] =
    "{\"seq\":42,\"id\":\"3f1c\",\"time\":\"2026-11-26T19:46:53.123Z\",\"trigger\":\"contacts\","
    "\"location\":\"loc1\",\"type\":\"updated\",\"record_id\":\"abc\","
    "\"record\":{\"id\":\"abc\",\"firstName\":\"Ada\",\"lastName\":\"  Lovelace \\t\","
    "\"email\":\"Ada@Example.com\",\"Email\":\"upper\",\"tags\":[\"vip\",\"lead\"],"
    "\"score\":12,\"ratio\":0.25,\"big\":1e20,\"neg\":-3,\"active\":true,\"off\":false,"
    "\"nothing\":null,\"zero\":0,\"one\":1,\"seven\":7,"
    "\"customFields\":[{\"id\":\"cf1\",\"value\":\"blue\"},{\"id\":\"cf2\",\"value\":7}],"
    "\"nested\":{\"b\":2,\"a\":[1,{\"c\":\"d\"}]},"
    "\"unicode\":\"Zo\\u00eb \\u65e5\\u672c \\ud83d\\ude00\","
    "\"dateAdded\":\"2026-01-02T03:04:05.678Z\",\"dueMs\":1767323045678,"
    "\"dueMsText\":\"1767323045678\",\"offsetDate\":\"2026-01-02T05:04:05+02:00\","
    "\"offsetDate2\":\"2026-01-01T22:04:05.6-0500\",\"dateOnly\":\"2026-01-02\","
    "\"spaceDate\":\"2026-01-02 03:04\",\"badDate\":\"2026-02-30\",\"negMs\":-5,"
    "\"numText\":\" 42.5 \",\"hexText\":\"0x1A\",\"infText\":\"inf\",\"expText\":\"1e3\","
    "\"boolText\":\" Yes\",\"boolNo\":\"FALSE\",\"boolBad\":\"maybe\","
    "\"inject\":\"\\\"; rm -rf / #\",\"inject2\":\"\\\"},\\\"x\\\":\\\"\","
    "\"braces\":\"{{record.id}}\",\"ctrl\":\"a\\u0001b\\nc\\t\\\"\","
    "\"emptyArr\":[],\"emptyStr\":\"\","
    "\"mixed\":[1,\"two\",true,null,{\"k\":\"v\"},[3],2.5]},"
    "\"changes\":{\"email\":{\"old\":\"a@x\",\"new\":\"b@x\"}}}";

static cJSON *must_parse(const char *s)
{
    cJSON *v = NULL;
    size_t off = 0;
    int rc = json_parse(s, strlen(s), &v, &off);
    if (rc != 0) {
        fprintf(stderr, "fixture does not parse at %zu\n", off);
    }
    CHECK_INT(rc, 0);
    return v;
}

/* Renders text against ev; returns the canonical JSON of the result or NULL (err set). */
static char *render_canon(const char *text, const cJSON *ev, uint64_t now, char *err, size_t errlen)
{
    struct template *t = NULL;
    cJSON *out = NULL;
    char *s = NULL;
    if (template_parse(text, &t, err, errlen) != 0) {
        return NULL;
    }
    if (template_render(t, ev, now, &out, err, errlen) == 0) {
        CHECK(out != NULL);
        CHECK(out != NULL && out->string == NULL);
        s = json_print_canonical(out);
    } else {
        CHECK(out == NULL);
    }
    cJSON_Delete(out);
    template_free(t);
    return s;
}

static void test_render_table(const cJSON *ev)
{
    static const struct {
        const char *tpl;
        const char *want; /* canonical JSON of the result */
    } cases[] = {
        /* Type preservation: the whole text is one expression. */
        {"{{record.id}}", "\"abc\""},
        {"  {{ record.score }}\n", "12"},
        {"{{record.ratio}}", "0.25"},
        {"{{record.neg}}", "-3"},
        {"{{record.big}}", "1e+20"},
        {"{{record.active}}", "true"},
        {"{{record.off}}", "false"},
        {"{{record.tags}}", "[\"vip\",\"lead\"]"},
        {"{{record.nested}}", "{\"a\":[1,{\"c\":\"d\"}],\"b\":2}"},
        {"{{record.nothing}}", "null"},
        {"{{record.missing}}", "null"},
        {"{{record.missing.deeper.still}}", "null"},
        {"{{record.customFields.0.value}}", "\"blue\""},
        {"{{record.customFields.1.value}}", "7"},
        {"{{record.customFields.5.value}}", "null"},
        {"{{record.nested.a.1.c}}", "\"d\""},
        {"{{record.tags.01}}", "null"},             /* leading zero: not an index */
        {"{{record.email}}", "\"Ada@Example.com\""}, /* lookups are case-sensitive */
        {"{{record.Email}}", "\"upper\""},
        {"{{changes.email.new}}", "\"b@x\""},
        {"{{changes.email}}", "{\"new\":\"b@x\",\"old\":\"a@x\"}"},
        {"{{changes.phone.new}}", "null"},
        {"{{event.id}}", "\"3f1c\""},
        {"{{event.seq}}", "42"},
        {"{{event.type}}", "\"updated\""},
        {"{{event.record_id}}", "\"abc\""},
        {"{{event.trigger}}:{{event.location}}", "\"contacts:loc1\""},
        {"{{record.unicode}}", "\"Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\""},
        {"{{record.mixed}}", "[1,\"two\",true,null,{\"k\":\"v\"},[3],2.5]"},
        /* String interpolation. */
        {"Hi {{record.firstName}}!", "\"Hi Ada!\""},
        {"{{record.firstName}}{{record.id}}", "\"Adaabc\""},
        {"score={{record.score}} ratio={{record.ratio}} big={{record.big}} neg={{record.neg}}",
         "\"score=12 ratio=0.25 big=1e+20 neg=-3\""},
        {"n={{record.missing}}|{{record.nothing}}|", "\"n=||\""},
        {"{{record.active}} {{record.off}} {{record.tags}}",
         "\"true false [\\\"vip\\\",\\\"lead\\\"]\""},
        {"{{record.nested}}!", "\"{\\\"a\\\":[1,{\\\"c\\\":\\\"d\\\"}],\\\"b\\\":2}!\""},
        {"\xc3\xbc {{record.firstName}} \xe2\x9c\x93", "\"\xc3\xbc Ada \xe2\x9c\x93\""},
        {"plain text", "\"plain text\""},
        {"", "\"\""},
        {"   ", "\"   \""},
        {"5", "\"5\""},                      /* a literal stays a string */
        {"a }} b } { c", "\"a }} b } { c\""}, /* lone closers are literal */
        {"{{ \"{{\" }}", "\"{{\""},          /* the way to write a literal {{ */
        {"{{\"x\\\"y\\\\z\\n\"}}", "\"x\\\"y\\\\z\\n\""},
        {"{{ \"}}\" }}", "\"}}\""},
        {"{{record.braces}}", "\"{{record.id}}\""}, /* event data is never re-parsed */
        /* default */
        {"{{ record.missing | default \"x\" }}", "\"x\""},
        {"{{record.missing|default 5}}", "5"},
        {"{{record.missing | default -2.5e1}}", "-25"},
        {"{{record.missing | default true}}", "true"},
        {"{{record.missing | default false}}", "false"},
        {"{{record.missing | default null}}", "null"},
        {"{{record.nothing | default \"n\"}}", "\"n\""},
        {"{{record.zero | default 9}}", "0"},
        {"{{record.emptyStr | default \"e\"}}", "\"\""},
        {"{{record.firstName | default \"x\"}}", "\"Ada\""},
        {"Dear {{record.missing | default \"customer\"}},", "\"Dear customer,\""},
        {"{{record.missing | default \"a|b}}c\"}}", "\"a|b}}c\""},
        /* lower, upper, trim */
        {"{{record.email | lower}}", "\"ada@example.com\""},
        {"{{record.email | upper}}", "\"ADA@EXAMPLE.COM\""},
        {"{{record.unicode | upper}}", "\"ZO\xc3\xab \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\""},
        {"{{record.lastName | trim}}", "\"Lovelace\""},
        {"[{{record.lastName | trim | upper}}]", "\"[LOVELACE]\""},
        {"{{record.score | upper}}", "\"12\""},
        {"{{record.tags | upper}}", "\"[\\\"VIP\\\",\\\"LEAD\\\"]\""},
        {"{{record.missing | lower}}", "null"},
        {"{{record.missing | trim | default \"d\"}}", "\"d\""},
        /* json */
        {"{{record.score | json}}", "\"12\""},
        {"{{record.firstName | json}}", "\"\\\"Ada\\\"\""},
        {"{{record.tags | json}}", "\"[\\\"vip\\\",\\\"lead\\\"]\""},
        {"{{record.missing | json}}", "\"null\""},
        {"{{record.nothing | json}}", "\"null\""},
        {"tags={{record.tags | json}}", "\"tags=[\\\"vip\\\",\\\"lead\\\"]\""},
        /* first */
        {"{{record.tags | first}}", "\"vip\""},
        {"{{record.customFields | first}}", "{\"id\":\"cf1\",\"value\":\"blue\"}"},
        {"{{record.emptyArr | first}}", "null"},
        {"{{record.emptyArr | first | default \"none\"}}", "\"none\""},
        {"{{record.firstName | first}}", "\"Ada\""},
        {"{{record.missing | first}}", "null"},
        /* join */
        {"{{record.tags | join \", \"}}", "\"vip, lead\""},
        {"{{record.tags | join}}", "\"vip, lead\""},
        {"{{record.tags | join \"|\"}}", "\"vip|lead\""},
        {"{{record.tags | join \"\"}}", "\"viplead\""},
        {"{{record.mixed | join \";\"}}", "\"1;two;true;;{\\\"k\\\":\\\"v\\\"};[3];2.5\""},
        {"{{record.emptyArr | join}}", "\"\""},
        {"{{record.score | join}}", "\"12\""},
        {"{{record.missing | join}}", "null"},
        {"{{record.tags | join \"\\n\"}}", "\"vip\\nlead\""},
        /* date */
        {"{{record.dueMs | date}}", "\"2026-01-02T03:04:05.678Z\""},
        {"{{record.dueMsText | date}}", "\"2026-01-02T03:04:05.678Z\""},
        {"{{record.dateAdded | date}}", "\"2026-01-02T03:04:05.678Z\""},
        {"{{record.offsetDate | date}}", "\"2026-01-02T03:04:05.000Z\""},
        {"{{record.offsetDate2 | date}}", "\"2026-01-02T03:04:05.600Z\""},
        {"{{record.dateOnly | date}}", "\"2026-01-02T00:00:00.000Z\""},
        {"{{record.spaceDate | date}}", "\"2026-01-02T03:04:00.000Z\""},
        {"{{record.zero | date}}", "\"1970-01-01T00:00:00.000Z\""},
        {"{{record.badDate | date}}", "null"},
        {"{{record.negMs | date}}", "null"},
        {"{{record.big | date}}", "null"},
        {"{{record.firstName | date}}", "null"},
        {"{{record.tags | date}}", "null"},
        {"{{record.firstName | date | default \"n/a\"}}", "\"n/a\""},
        {"due {{record.dueMs | date}}", "\"due 2026-01-02T03:04:05.678Z\""},
        /* number */
        {"{{record.numText | number}}", "42.5"},
        {"{{record.expText | number}}", "1000"},
        {"{{record.score | number}}", "12"},
        {"{{record.active | number}}", "1"},
        {"{{record.off | number}}", "0"},
        {"{{record.firstName | number}}", "null"},
        {"{{record.hexText | number}}", "null"},
        {"{{record.infText | number}}", "null"},
        {"{{record.emptyStr | number}}", "null"},
        {"{{record.tags | number}}", "null"},
        {"{{record.firstName | number | default 0}}", "0"},
        /* bool */
        {"{{record.boolText | bool}}", "true"},
        {"{{record.boolNo | bool}}", "false"},
        {"{{record.boolBad | bool}}", "null"},
        {"{{record.zero | bool}}", "false"},
        {"{{record.one | bool}}", "true"},
        {"{{record.seven | bool}}", "null"},
        {"{{record.active | bool}}", "true"},
        {"{{record.missing | bool | default false}}", "false"},
        /* now, with a fixed clock */
        {"{{now}}", "\"2026-11-26T19:46:53.123Z\""},
        {"{{now + 30m}}", "\"2026-11-26T20:16:53.123Z\""},
        {"{{ now - 1d }}", "\"2026-11-25T19:46:53.123Z\""},
        {"{{now+2h}}", "\"2026-11-26T21:46:53.123Z\""},
        {"{{now -10s}}", "\"2026-11-26T19:46:43.123Z\""},
        {"{{now | date}}", "\"2026-11-26T19:46:53.123Z\""},
        {"Due {{now + 1d}}", "\"Due 2026-11-27T19:46:53.123Z\""},
        /* Chains of filters over created values. */
        {"{{record.tags | join \",\" | upper | trim}}", "\"VIP,LEAD\""},
        {"{{record.tags | json | first}}", "\"[\\\"vip\\\",\\\"lead\\\"]\""},
        {"{{record.customFields | first | json | upper}}",
         "\"{\\\"ID\\\":\\\"CF1\\\",\\\"VALUE\\\":\\\"BLUE\\\"}\""},
        /* Hostile event values stay one string value. */
        {"{{record.inject}}", "\"\\\"; rm -rf / #\""},
        {"{\"a\":\"{{record.inject2}}\"}", "\"{\\\"a\\\":\\\"\\\"},\\\"x\\\":\\\"\\\"}\""},
        {"{{record.ctrl}}", "\"a\\u0001b\\nc\\t\\\"\""},
    };
    char err[256];

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        err[0] = '\0';
        char *got = render_canon(cases[i].tpl, ev, NOW, err, sizeof(err));
        if (got == NULL || strcmp(got, cases[i].want) != 0) {
            fprintf(stderr, "case %zu: template %s\n  err: %s\n", i, cases[i].tpl, err);
        }
        CHECK_STR(got, cases[i].want);
        free(got);
    }
}

/* The injection cases, checked as cJSON values rather than printed text. */
static void test_injection(const cJSON *ev)
{
    static const struct {
        const char *tpl;
        const char *want_value; /* the exact bytes of the resulting string */
        const char *want_body;  /* {"v": result} printed by cJSON */
    } cases[] = {
        {"{{record.inject}}", "\"; rm -rf / #", "{\"v\":\"\\\"; rm -rf / #\"}"},
        {"x{{record.inject2}}", "x\"},\"x\":\"", "{\"v\":\"x\\\"},\\\"x\\\":\\\"\"}"},
        {"{{record.ctrl}}", "a\001b\nc\t\"", "{\"v\":\"a\\u0001b\\nc\\t\\\"\"}"},
        {"{{record.braces}}", "{{record.id}}", "{\"v\":\"{{record.id}}\"}"},
    };
    char err[256];

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct template *t = NULL;
        cJSON *out = NULL;
        CHECK_INT(template_parse(cases[i].tpl, &t, err, sizeof(err)), 0);
        CHECK_INT(template_render(t, ev, NOW, &out, err, sizeof(err)), 0);
        CHECK(cJSON_IsString(out));
        CHECK_STR(cJSON_GetStringValue(out), cases[i].want_value);
        /* Added to a body the value stays one member: the body has exactly one key. */
        cJSON *body = cJSON_CreateObject();
        cJSON_AddItemToObject(body, "v", out);
        CHECK_INT(cJSON_GetArraySize(body), 1);
        char *printed = cJSON_PrintUnformatted(body);
        CHECK_STR(printed, cases[i].want_body);
        cJSON *back = cJSON_Parse(printed);
        CHECK_INT(cJSON_GetArraySize(back), 1);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(back, "v")),
                  cases[i].want_value);
        cJSON_Delete(back);
        free(printed);
        cJSON_Delete(body);
        template_free(t);
    }
}

static void test_parse_errors(void)
{
    static const struct {
        const char *tpl;
        const char *want; /* a substring of the message (the whole message when exact) */
        bool exact;
    } cases[] = {
        {"{{recrod.id}}",
         "unknown root 'recrod' in {{recrod.id}} (use record, changes, event or now)", true},
        {"{{record.id", "unterminated '{{' at column 1 (no matching '}}')", true},
        {"abc {{ record.id }", "unterminated '{{' at column 5", false},
        {"ok {{record.id}} {{", "unterminated '{{' at column 18", false},
        {"{{}}", "empty expression {{}} at column 1", true},
        {"x {{   }}", "empty expression {{   }} at column 3", true},
        {"{{ record.id | bogus }}", "unknown filter 'bogus' in {{ record.id | bogus }}", false},
        {"{{ record.id | Upper }}", "unknown filter 'Upper'", false},
        {"{{ record. }}", "expected a field name after '.', found ' '", false},
        {"{{record..id}}", "expected a field name after '.', found '.'", false},
        {"{{record.}}", "expected a field name after '.', found the end", false},
        {"{{ event.foo }}", "unknown event member 'foo'", false},
        {"{{ event.record.id }}", "unknown event member 'record'", false},
        {"{{ now + 30x }}", "bad duration '30x'", false},
        {"{{ now + 30 }}", "bad duration '30'", false},
        {"{{ now + 30ms }}", "bad duration '30ms'", false},
        {"{{ now + m }}", "bad duration 'm'", false},
        {"{{ now + }}", "expected a duration after 'now +', found the end", false},
        {"{{ now * 2 }}", "unexpected '*'", false},
        {"{{ now.x }}", "'now' has no members", false},
        {"{{ now + 99999999d }}", "too large", false},
        {"{{ now + 99999999999999999999999d }}", "too large", false},
        {"{{ record.id | default }}", "'default' needs a value", false},
        {"{{ record.id | default foo }}", "not 'foo'", false},
        {"{{ record.id | default 01 }}", "unexpected '1'", false},
        {"{{ record.id | default 1. }}", "bad number after 'default'", false},
        {"{{ record.id junk }}", "unexpected 'j' in {{ record.id junk }} (expected '|' or '}}')",
         false},
        {"{{ \"abc }}", "unterminated '{{' at column 1", false},
        {"{{ \"a\\qb\" }}", "unknown escape", false},
        {"{{ record.id | }}", "expected a filter name after '|', found the end", false},
        {"{{ Record.id }}", "unknown root 'Record'", false},
        {"{{ 5 }}", "expected record, changes, event, now or a \"string\", found '5'", false},
        {"{{ {{ record.id }} }}", "found '{'", false},
        {"{{ record.id | default \"x\" \"y\" }}", "unexpected '\"'", false},
        {"{{ record.id | join , }}", "unexpected ','", false},
        {"{{ record.id \x01 }}", "unexpected byte 0x01", false},
        {"\xff{{record.id}}", "template is not valid UTF-8", true},
        {"{{record.id}}\xc0\xaf", "template is not valid UTF-8", true},
    };
    char err[256];

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct template *t = (struct template *)&err; /* must be reset to NULL */
        err[0] = '\0';
        int rc = template_parse(cases[i].tpl, &t, err, sizeof(err));
        CHECK_INT(rc, -EINVAL);
        CHECK(t == NULL);
        bool ok = cases[i].exact ? strcmp(err, cases[i].want) == 0
                                 : strstr(err, cases[i].want) != NULL;
        if (!ok) {
            fprintf(stderr, "case %zu: template %s\n  got:  %s\n  want: %s\n", i, cases[i].tpl,
                    err, cases[i].want);
        }
        CHECK(ok);
        CHECK(strchr(err, '\n') == NULL);
        template_free(t);
    }

    /* A message quoting an expression with a newline stays on one line. */
    struct template *t = NULL;
    CHECK_INT(template_parse("{{ rec\nord }}", &t, err, sizeof(err)), -EINVAL);
    CHECK(strchr(err, '\n') == NULL);
    CHECK(strstr(err, "unknown root 'rec'") != NULL);

    /* A long expression is clipped in the message. */
    char longexpr[400];
    snprintf(longexpr, sizeof(longexpr), "{{ record.%0200d | nope }}", 0);
    CHECK_INT(template_parse(longexpr, &t, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "unknown filter 'nope'") != NULL);
    CHECK(strstr(err, "...}}") != NULL);
    CHECK(strlen(err) < 200);

    /* err may be NULL / 0 bytes. */
    CHECK_INT(template_parse("{{nope}}", &t, NULL, 0), -EINVAL);
    CHECK_INT(template_parse(NULL, &t, err, sizeof(err)), -EINVAL);
    template_free(NULL);
}

static void test_bounds(const cJSON *ev)
{
    char err[256];
    struct template *t = NULL;
    struct buf_like {
        char *p;
        size_t n;
    } b = {0};

    /* 64 expressions parse; 65 do not. */
    b.p = xmalloc(65 * 16 + 1);
    b.n = 0;
    for (int i = 0; i < 65; i++) {
        b.n += (size_t)snprintf(b.p + b.n, 17, "{{record.id}}-");
    }
    b.p[b.n] = '\0';
    b.p[64 * 14] = '\0';
    CHECK_INT(template_parse(b.p, &t, err, sizeof(err)), 0);
    char *text = NULL;
    CHECK_INT(template_render_text(t, ev, NOW, &text, err, sizeof(err)), 0);
    CHECK_INT(text != NULL ? strlen(text) : 0, 64 * 4);
    free(text);
    template_free(t);
    b.p[64 * 14] = '{';
    CHECK_INT(template_parse(b.p, &t, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "more than 64 {{ }} expressions") != NULL);
    free(b.p);

    /* 16 filters parse; 17 do not. */
    char filt[512] = "{{record.id";
    for (int i = 0; i < 16; i++) {
        strncat(filt, " | trim", sizeof(filt) - strlen(filt) - 1);
    }
    strncat(filt, "}}", sizeof(filt) - strlen(filt) - 1);
    CHECK_INT(template_parse(filt, &t, err, sizeof(err)), 0);
    template_free(t);
    filt[strlen(filt) - 2] = '\0';
    strncat(filt, " | trim}}", sizeof(filt) - strlen(filt) - 1);
    CHECK_INT(template_parse(filt, &t, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "more than 16 filters") != NULL);

    /* 100 KB of text is refused at parse time; 64 KiB exactly is fine. */
    char *big = xmalloc(100 * 1024 + 1);
    memset(big, 'a', 100 * 1024);
    big[100 * 1024] = '\0';
    CHECK_INT(template_parse(big, &t, err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "template longer than 65536 bytes");
    big[TEMPLATE_MAX_TEXT] = '\0';
    CHECK_INT(template_parse(big, &t, err, sizeof(err)), 0);
    CHECK(template_is_literal(t));
    cJSON *out = NULL;
    CHECK_INT(template_render(t, ev, NOW, &out, err, sizeof(err)), 0);
    CHECK_INT(strlen(cJSON_GetStringValue(out)), TEMPLATE_MAX_TEXT);
    cJSON_Delete(out);
    template_free(t);

    /* 60 KB of hostile text: braces, quotes, pipes and backslashes in several mixes. */
    static const char *const patterns[] = {
        "{}\"|\\ ", "{{\"}}|\\ {", "{{ \"\\\"}} ", "}}{{", "{{{",
    };
    for (size_t k = 0; k < ARRAY_SIZE(patterns); k++) {
        size_t plen = strlen(patterns[k]);
        for (size_t i = 0; i < 60 * 1024; i++) {
            big[i] = patterns[k][i % plen];
        }
        big[60 * 1024] = '\0';
        int rc = template_parse(big, &t, err, sizeof(err));
        CHECK(rc == 0 || rc == -EINVAL);
        CHECK((rc == 0) == (t != NULL));
        if (rc == 0) {
            char *s = NULL;
            rc = template_render_text(t, ev, NOW, &s, err, sizeof(err));
            CHECK(rc == 0 || rc == -EINVAL);
            free(s);
        }
        template_free(t);
    }
    /* Deterministic ones: no closer at all, and far too many expressions. */
    memset(big, '{', 60 * 1024);
    CHECK_INT(template_parse(big, &t, err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "unterminated '{{' at column 1 (no matching '}}')");
    for (size_t i = 0; i + 5 <= 60 * 1024; i += 5) {
        memcpy(big + i, "{{ }}", 5);
    }
    CHECK_INT(template_parse(big, &t, err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "empty expression {{ }} at column 1");
    for (size_t i = 0; i + 7 <= 60 * 1024; i += 7) {
        memcpy(big + i, "{{now}}", 7);
    }
    big[60 * 1024 / 7 * 7] = '\0';
    CHECK_INT(template_parse(big, &t, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "more than 64") != NULL);
    CHECK(t == NULL);

    /* Output bounds: 40 KiB of literal plus a 30 KiB value is too long. */
    cJSON *ev2 = cJSON_Duplicate(ev, 1);
    cJSON *rec = cJSON_GetObjectItemCaseSensitive(ev2, "record");
    char *val = xmalloc(70 * 1024 + 1);
    memset(val, 'v', 70 * 1024);
    val[70 * 1024] = '\0';
    cJSON_AddStringToObject(rec, "huge", val);
    val[30 * 1024] = '\0';
    cJSON_AddStringToObject(rec, "half", val);
    cJSON *arr = cJSON_AddArrayToObject(rec, "many");
    for (int i = 0; i < 3000; i++) {
        cJSON_AddItemToArray(arr, cJSON_CreateString("abcdefghijklmnopqrstuvwxyz"));
    }
    free(val);

    memset(big, 'L', 40 * 1024);
    snprintf(big + 40 * 1024, 64, "{{record.half}}");
    CHECK_INT(template_parse(big, &t, err, sizeof(err)), 0);
    CHECK_INT(template_render(t, ev2, NOW, &out, err, sizeof(err)), -EINVAL);
    CHECK(out == NULL);
    CHECK(strstr(err, "output longer than 65536 bytes") != NULL);
    template_free(t);
    free(big);

    static const struct {
        const char *tpl;
        const char *want;
    } over[] = {
        {"{{record.huge}}", "output longer than 65536 bytes"},
        {"x{{record.huge}}", "output longer than 65536 bytes"},
        {"{{record.many}}", "output longer than 65536 bytes"},
        {"{{record.huge | upper}}", "value longer than 65536 bytes"},
        {"{{record.huge | json}}", "value longer than 65536 bytes"},
        {"{{record.many | join}}", "value longer than 65536 bytes"},
        {"{{record | json}}", "value longer than 65536 bytes"},
        {"{{record.half}}{{record.half}}{{record.half}}", "output longer than 65536 bytes"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(over); i++) {
        err[0] = '\0';
        CHECK_INT(template_parse(over[i].tpl, &t, err, sizeof(err)), 0);
        CHECK_INT(template_render(t, ev2, NOW, &out, err, sizeof(err)), -EINVAL);
        CHECK(out == NULL);
        if (strstr(err, over[i].want) == NULL) {
            fprintf(stderr, "over %zu: %s\n  got: %s\n", i, over[i].tpl, err);
        }
        CHECK(strstr(err, over[i].want) != NULL);
        template_free(t);
    }
    /* Just under the bound is fine. */
    CHECK_INT(template_parse("{{record.half}}{{record.half}}", &t, err, sizeof(err)), 0);
    CHECK_INT(template_render(t, ev2, NOW, &out, err, sizeof(err)), 0);
    CHECK_INT(strlen(cJSON_GetStringValue(out)), 60 * 1024);
    cJSON_Delete(out);
    template_free(t);
    cJSON_Delete(ev2);
}

static void test_invalid_utf8(void)
{
    cJSON *ev = cJSON_CreateObject();
    cJSON *rec = cJSON_AddObjectToObject(ev, "record");
    cJSON_AddStringToObject(rec, "bad", "ok\xff\xfe");
    cJSON_AddStringToObject(rec, "half", "\xe6\x97"); /* a truncated sequence */
    cJSON_AddStringToObject(rec, "good", "fine");
    char err[256];
    static const struct {
        const char *tpl;
        int rc;
    } cases[] = {
        {"{{record.bad}}", -EINVAL},
        {"x {{record.bad}}", -EINVAL},
        {"{{record.half}}", -EINVAL},
        {"{{record}}", -EINVAL},
        {"{{record | json}}", -EINVAL},
        {"{{record.bad | upper}}", -EINVAL},
        {"{{record.bad | default \"x\"}}", -EINVAL},
        {"{{record.good}}", 0},
        {"{{record.bad | number | default 1}}", 0}, /* converted away before output */
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct template *t = NULL;
        cJSON *out = NULL;
        char *text = NULL;
        err[0] = '\0';
        CHECK_INT(template_parse(cases[i].tpl, &t, err, sizeof(err)), 0);
        CHECK_INT(template_render(t, ev, NOW, &out, err, sizeof(err)), cases[i].rc);
        if (cases[i].rc != 0) {
            CHECK(strstr(err, "produced invalid UTF-8") != NULL);
        }
        CHECK_INT(template_render_text(t, ev, NOW, &text, err, sizeof(err)), cases[i].rc);
        CHECK((text != NULL) == (cases[i].rc == 0));
        free(text);
        cJSON_Delete(out);
        template_free(t);
    }
    cJSON_Delete(ev);
}

static void test_now_range(void)
{
    char err[256];
    char *out = NULL;
    CHECK_INT(template_expand("{{now - 1d}}", NULL, 0, &out, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "out of range") != NULL);
    CHECK(out == NULL);
    CHECK_INT(template_expand("{{now}}", NULL, 0, &out, err, sizeof(err)), 0);
    CHECK_STR(out, "1970-01-01T00:00:00.000Z");
    free(out);
    CHECK_INT(template_expand("{{now + 1d}}", NULL, 253402300799999ULL, &out, err, sizeof(err)),
              -EINVAL);
    CHECK_INT(template_expand("{{now}}", NULL, UINT64_MAX, &out, err, sizeof(err)), -EINVAL);
    CHECK_INT(template_expand("{{now + 36500d}}", NULL, NOW, &out, err, sizeof(err)), 0);
    free(out);
}

/* Every template of a set renders against odd event shapes without crashing. */
static void test_odd_events(void)
{
    static const char *const shapes[] = {
        "null", "[]", "[1,2]", "\"str\"", "42", "true", "{}",
        "{\"record\":null,\"changes\":null}",
        "{\"record\":\"x\",\"changes\":[1]}",
        "{\"record\":[{\"id\":1}],\"changes\":{\"email\":\"flat\"}}",
        "{\"record\":{\"tags\":\"vip\",\"id\":{\"deep\":[[[]]]}},\"seq\":\"x\",\"id\":null}",
        "{\"record\":{\"tags\":[[],{},null],\"dueMs\":\"nope\",\"id\":1e400}}",
    };
    static const char *const tpls[] = {
        "{{record.id}}", "{{record.id | default \"d\"}}", "x{{record.tags | join}}y",
        "{{record.tags | first | upper}}", "{{changes.email.new | lower}}", "{{event}}",
        "{{event.id}}|{{event.seq}}", "{{record.dueMs | date}}", "{{record | json}}",
        "{{record.id | number | bool}}", "{{record.tags.0.id}}", "{{changes}}",
    };
    static const char *const want_id[] = {
        /* {{record.id | default "d"}} as text for each shape */
        "d", "d", "d", "d", "d", "d", "d", "d", "d", "d", "{\"deep\":[[[]]]}",
        "d", /* 1e400 is Inf: JSON cannot carry it, so it counts as null */
    };
    char err[256];

    CHECK_INT(ARRAY_SIZE(want_id), ARRAY_SIZE(shapes));
    for (size_t s = 0; s < ARRAY_SIZE(shapes); s++) {
        cJSON *ev = NULL;
        CHECK_INT(json_parse(shapes[s], strlen(shapes[s]), &ev, NULL), 0);
        for (size_t i = 0; i < ARRAY_SIZE(tpls); i++) {
            struct template *t = NULL;
            cJSON *out = NULL;
            CHECK_INT(template_parse(tpls[i], &t, err, sizeof(err)), 0);
            CHECK_INT(template_render(t, ev, NOW, &out, err, sizeof(err)), 0);
            CHECK(out != NULL);
            cJSON_Delete(out);
            template_free(t);
        }
        char *text = NULL;
        CHECK_INT(template_expand("{{record.id | default \"d\"}}", ev, NOW, &text, err,
                                  sizeof(err)), 0);
        CHECK_STR(text, want_id[s]);
        free(text);
        cJSON_Delete(ev);
    }

    /* NULL event: everything is missing, now still works. */
    char *text = NULL;
    CHECK_INT(template_expand("x{{record.id}}y{{event}}z{{now}}", NULL, NOW, &text, err,
                              sizeof(err)), 0);
    CHECK_STR(text, "xyz2026-11-26T19:46:53.123Z");
    free(text);
    struct template *t = NULL;
    cJSON *out = NULL;
    CHECK_INT(template_parse("{{event}}", &t, err, sizeof(err)), 0);
    CHECK_INT(template_render(t, NULL, NOW, &out, err, sizeof(err)), 0);
    CHECK(cJSON_IsNull(out));
    cJSON_Delete(out);
    template_free(t);
}

static void test_queries_and_text(const cJSON *ev)
{
    static const struct {
        const char *tpl;
        bool literal;
        bool record, changes, event, now;
    } cases[] = {
        {"plain", true, false, false, false, false},
        {"", true, false, false, false, false},
        {"a }} b", true, false, false, false, false},
        {"{{ \"lit\" }}", false, false, false, false, false},
        {"{{record.id}}", false, true, false, false, false},
        {"{{changes.email.new}}", false, false, true, false, false},
        {"{{event.type}} {{now + 1d}}", false, false, false, true, true},
        {"{{record.a}}{{changes.b}}{{event}}{{now}}", false, true, true, true, true},
    };
    char err[256];
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct template *t = NULL;
        CHECK_INT(template_parse(cases[i].tpl, &t, err, sizeof(err)), 0);
        CHECK(template_is_literal(t) == cases[i].literal);
        CHECK(template_uses_root(t, "record") == cases[i].record);
        CHECK(template_uses_root(t, "changes") == cases[i].changes);
        CHECK(template_uses_root(t, "event") == cases[i].event);
        CHECK(template_uses_root(t, "now") == cases[i].now);
        CHECK(!template_uses_root(t, "bogus"));
        CHECK(!template_uses_root(t, NULL));
        template_free(t);
    }
    CHECK(!template_is_literal(NULL));
    CHECK(template_is_event_member("record_id", 9));
    CHECK(template_is_event_member("seq", 3));
    CHECK(!template_is_event_member("record", 6));
    CHECK(!template_is_event_member("se", 2));

    static const struct {
        const char *tpl;
        const char *want;
    } texts[] = {
        {"{{record.tags}}", "[\"vip\",\"lead\"]"},
        {"{{record.missing}}", ""},
        {"{{record.nothing}}", ""},
        {" {{record.id}} ", "abc"}, /* a typed template's text drops the white space */
        {"{{record.score}}", "12"},
        {"{{record.ratio}}", "0.25"},
        {"{{record.active}}", "true"},
        {"Hello {{record.firstName}}", "Hello Ada"},
        {"{{record.nested}}", "{\"a\":[1,{\"c\":\"d\"}],\"b\":2}"},
        {"{{record.missing | json}}", "null"},
        {"{{record.unicode}}", "Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"},
        {"", ""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
        char *out = NULL;
        CHECK_INT(template_expand(texts[i].tpl, ev, NOW, &out, err, sizeof(err)), 0);
        CHECK_STR(out, texts[i].want);
        free(out);
    }
    char *out = (char *)err;
    CHECK_INT(template_expand("{{bad}}", ev, NOW, &out, err, sizeof(err)), -EINVAL);
    CHECK(out == NULL);

    /* A typed array result can be added to a body as is: it has no member name. */
    struct template *t = NULL;
    cJSON *v = NULL;
    CHECK_INT(template_parse("{{record.tags}}", &t, err, sizeof(err)), 0);
    CHECK_INT(template_render(t, ev, NOW, &v, err, sizeof(err)), 0);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddItemToObject(body, "tags", v);
    char *printed = cJSON_PrintUnformatted(body);
    CHECK_STR(printed, "{\"tags\":[\"vip\",\"lead\"]}");
    free(printed);
    cJSON_Delete(body);
    /* Rendering twice gives the same result and leaves the event untouched. */
    char *before = json_print_canonical(ev);
    CHECK_INT(template_render(t, ev, NOW, &v, err, sizeof(err)), 0);
    char *after = json_print_canonical(ev);
    CHECK_STR(after, before);
    free(before);
    free(after);
    cJSON_Delete(v);
    template_free(t);
}

/*
 * F10: URL templates percent-encode expression output, so record text cannot
 * leave its path segment or add query parameters; `raw` opts out, a value
 * already `urlencode`d is not encoded twice. F11: `split` and `parse_json`
 * are the explicit ways to turn event text into a list or JSON.
 */
static void test_url_and_structure_filters(void)
{
    cJSON *ev = must_parse(
        "{\"record\":{\"firstName\":\"../../admin?x=1#\",\"source\":\"x&role=admin\","
        "\"uni\":\"Zo\\u00eb b\",\"n\":12,\"csv\":\"web-form, vip,, do-not-bill \","
        "\"jsonText\":\"{\\\"id\\\":\\\"cf\\\",\\\"v\\\":[1]}\",\"tags\":[\"a\",\"b\"]}}");
    static const struct {
        const char *tpl;
        const char *want;
    } urls[] = {
        {"http://h/c/{{record.firstName}}/w?src={{record.source}}",
         "http://h/c/..%2F..%2Fadmin%3Fx%3D1%23/w?src=x%26role%3Dadmin"},
        {"http://h/{{record.uni}}/{{record.n}}", "http://h/Zo%C3%AB%20b/12"},
        {"http://h/{{record.firstName | raw}}", "http://h/../../admin?x=1#"},
        {"http://h/{{record.source | urlencode}}", "http://h/x%26role%3Dadmin"},
        {"http://h/{{record.missing}}/x?a=b&c=/d", "http://h//x?a=b&c=/d"},
        {"http://h/{{record.tags}}", "http://h/%5B%22a%22%2C%22b%22%5D"},
    };
    char err[256];
    for (size_t i = 0; i < ARRAY_SIZE(urls); i++) {
        struct template *t = NULL;
        char *out = NULL;
        CHECK_INT(template_parse(urls[i].tpl, &t, err, sizeof(err)), 0);
        CHECK_INT(template_render_url(t, ev, NOW, &out, err, sizeof(err)), 0);
        CHECK_STR(out, urls[i].want);
        free(out);
        template_free(t);
    }
    static const struct {
        const char *tpl;
        const char *want;
    } values[] = {
        {"{{record.source | urlencode}}", "\"x%26role%3Dadmin\""},
        {"{{record.missing | urlencode}}", "null"},
        {"{{record.firstName | raw}}", "\"../../admin?x=1#\""},
        {"{{record.csv | split}}", "[\"web-form\",\"vip\",\"do-not-bill\"]"},
        {"{{record.csv | split \" \"}}", "[\"web-form,\",\"vip,,\",\"do-not-bill\"]"},
        {"{{record.tags | split}}", "[\"a\",\"b\"]"},
        {"{{record.n | split}}", "[\"12\"]"},
        {"{{record.missing | split}}", "null"},
        {"{{record.jsonText | parse_json}}", "{\"id\":\"cf\",\"v\":[1]}"},
        {"{{record.csv | parse_json}}", "null"},
        {"{{record.csv | parse_json | default \"no\"}}", "\"no\""},
        {"{{record.n | parse_json}}", "12"},
        {"{{record.jsonText}}", "\"{\\\"id\\\":\\\"cf\\\",\\\"v\\\":[1]}\""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(values); i++) {
        err[0] = '\0';
        char *got = render_canon(values[i].tpl, ev, NOW, err, sizeof(err));
        if (got == NULL || strcmp(got, values[i].want) != 0) {
            fprintf(stderr, "filter case %zu: template %s\n  err: %s\n", i, values[i].tpl, err);
        }
        CHECK_STR(got, values[i].want);
        free(got);
    }
    /* string_list rendering: only the literal text's separators split. */
    static const struct {
        const char *tpl;
        const char *want;
    } lists[] = {
        {"copied {{record.source}}", "[\"copied\",\"x&role=admin\"]"},
        {"a, b {{record.csv}},c", "[\"a\",\"b\",\"web-form, vip,, do-not-bill \",\"c\"]"},
        {"tag-{{record.uni}}-x y", "[\"tag-Zo\xc3\xab b-x\",\"y\"]"},
        {"{{record.missing}} one", "[\"one\"]"},
        {"{{record.csv}}", "\"web-form, vip,, do-not-bill \""}, /* one expression: its value */
        {"a b", "\"a b\""},                                    /* a literal: coerced later */
    };
    for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
        struct template *lt = NULL;
        cJSON *v = NULL;
        CHECK_INT(template_parse(lists[i].tpl, &lt, err, sizeof(err)), 0);
        CHECK_INT(template_render_list(lt, ev, NOW, &v, err, sizeof(err)), 0);
        char *got = json_print_canonical(v);
        CHECK_STR(got, lists[i].want);
        free(got);
        cJSON_Delete(v);
        template_free(lt);
    }
    struct template *t = NULL;
    CHECK_INT(template_parse("{{record.csv | split \"\"}}", &t, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "non-empty separator") != NULL);
    CHECK_INT(template_parse("{{record.csv | parse_jsn}}", &t, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "parse_json") != NULL);
    cJSON_Delete(ev);
}

int main(void)
{
    cJSON *ev = must_parse(event_json);
    test_render_table(ev);
    test_injection(ev);
    test_parse_errors();
    test_bounds(ev);
    test_invalid_utf8();
    test_now_range();
    test_odd_events();
    test_queries_and_text(ev);
    test_url_and_structure_filters();
    cJSON_Delete(ev);
    json_scratch_release();
    return test_done("template");
}

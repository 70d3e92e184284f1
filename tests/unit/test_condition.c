/*
 * test_condition: `when` expressions. A table of expressions evaluated
 * against a fixed event (operators, types, missing and null, contains on
 * strings and arrays, changed(), precedence of not/and/or/parentheses),
 * odd event shapes, parse errors with their columns, and the bounds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "condition.h"
#include "json.h"
#include "util.h"
#include "testlib.h"

static const char event_json[] =
    "{\"seq\":42,\"id\":\"3f1c\",\"type\":\"updated\",\"trigger\":\"contacts\","
    "\"record_id\":\"abc\",\"location\":\"loc1\","
    "\"record\":{\"id\":\"abc\",\"email\":\"ada@example.com\",\"Email\":\"X\","
    "\"tags\":[\"vip\",\"lead\",7,null,{\"k\":1},[1]],\"score\":12,\"ratio\":0.5,"
    "\"active\":true,\"nothing\":null,\"name\":\"Ada Lovelace\",\"phone\":\"\","
    "\"nested\":{\"a\":[1,2]},\"str1\":\"1\",\"uni\":\"Zo\\u00eb\","
    "\"quote\":\"say \\\"hi\\\" \\\\ ok\",\"multi\":\"a\\nb\",\"obj\":{\"k\":1}},"
    "\"changes\":{\"email\":{\"old\":\"a@x\",\"new\":\"ada@example.com\"},"
    "\"tags\":{\"old\":[],\"new\":[\"vip\"]}}}";

static cJSON *must_parse(const char *s)
{
    cJSON *v = NULL;
    CHECK_INT(json_parse(s, strlen(s), &v, NULL), 0);
    return v;
}

/* Parses and evaluates; -1 when the parse fails. */
static int eval_text(const char *text, const cJSON *ev, char *err, size_t errlen)
{
    struct condition *c = NULL;
    if (condition_parse(text, &c, err, errlen) != 0) {
        return -1;
    }
    int r = condition_eval(c, ev) ? 1 : 0;
    condition_free(c);
    return r;
}

static void test_eval_table(const cJSON *ev)
{
    static const struct {
        const char *text;
        int want;
    } cases[] = {
        /* == and != compare JSON values exactly. */
        {"record.email == \"ada@example.com\"", 1},
        {"record.email == \"ADA@example.com\"", 0},
        {"record.email != \"x\"", 1},
        {"record.email != \"ada@example.com\"", 0},
        {"record.Email == \"X\"", 1},
        {"record.score == 12", 1},
        {"record.score == 12.0", 1},
        {"record.score == 1.2e1", 1},
        {"record.score == \"12\"", 0},
        {"record.score == -12", 0},
        {"record.str1 == 1", 0},
        {"record.str1 == \"1\"", 1},
        {"record.ratio == 0.5", 1},
        {"record.ratio == 5e-1", 1},
        {"record.active == true", 1},
        {"record.active == false", 0},
        {"record.active == 1", 0},
        {"record.active != \"true\"", 1},
        {"record.obj == \"{\\\"k\\\":1}\"", 0},
        {"record.quote == \"say \\\"hi\\\" \\\\ ok\"", 1},
        {"record.multi == \"a\\nb\"", 1},
        {"record.uni == \"Zo\xc3\xab\"", 1},
        /* missing equals null and nothing else; null is not "". */
        {"record.nothing == null", 1},
        {"record.missing == null", 1},
        {"record.missing != null", 0},
        {"record.missing == \"\"", 0},
        {"record.missing == 0", 0},
        {"record.missing == false", 0},
        {"record.missing != \"x\"", 1},
        {"record.phone == null", 0},
        {"record.phone == \"\"", 1},
        {"record.email == null", 0},
        /* exists: present and not null. */
        {"record.email exists", 1},
        {"record.phone exists", 1},
        {"record.nothing exists", 0},
        {"record.missing exists", 0},
        {"record.missing not exists", 1},
        {"record.nothing not exists", 1},
        {"record.email not exists", 0},
        {"record exists", 1},
        {"changes exists", 1},
        /* contains: elements of arrays, substrings of strings. */
        {"record.tags contains \"vip\"", 1},
        {"record.tags contains \"VIP\"", 0},
        {"record.tags contains \"vi\"", 0},
        {"record.tags contains 7", 1},
        {"record.tags contains \"7\"", 0},
        {"record.tags contains null", 1},
        {"record.tags contains true", 0},
        {"record.tags not contains \"vip\"", 0},
        {"record.tags not contains \"cold\"", 1},
        {"record.name contains \"Love\"", 1},
        {"record.name contains \"love\"", 0},
        {"record.name contains \"\"", 1},
        {"record.name contains 1", 0},
        {"record.name not contains \"xyz\"", 1},
        {"record.score contains 1", 0},
        {"record.obj contains \"k\"", 0},
        {"record.missing contains \"x\"", 0},
        {"record.missing not contains \"x\"", 1},
        /* Paths into arrays and nested objects. */
        {"record.tags.0 == \"vip\"", 1},
        {"record.tags.1 == \"vip\"", 0},
        {"record.tags.4.k == 1", 1},
        {"record.tags.9 exists", 0},
        {"record.nested.a.1 == 2", 1},
        {"record.nested.a.01 exists", 0},
        /* event members. */
        {"event.type == \"updated\"", 1},
        {"event.seq == 42", 1},
        {"event.trigger != \"contacts\"", 0},
        {"event.record_id == \"abc\"", 1},
        {"event.location == \"loc1\"", 1},
        {"event.time exists", 0},
        /* changed() and changes.* */
        {"changed(email)", 1},
        {"changed(record.email)", 1},
        {"changed( tags )", 1},
        {"changed (email)", 1},
        {"changed(phone)", 0},
        {"changed(Email)", 0},
        {"changes.email.new == \"ada@example.com\"", 1},
        {"changes.email.old == \"a@x\"", 1},
        {"changes.tags.new contains \"vip\"", 1},
        {"changes.phone exists", 0},
        /* Precedence: not > and > or; parentheses group. */
        {"record.active == true or record.score == 0 and record.email == \"no\"", 1},
        {"(record.active == true or record.score == 0) and record.email == \"no\"", 0},
        {"record.score == 0 and record.email == \"no\" or record.active == true", 1},
        {"record.score == 0 and (record.email == \"no\" or record.active == true)", 0},
        {"not record.active == true", 0},
        {"not not record.active == true", 1},
        {"not not not record.active == true", 0},
        {"not (record.score == 0 or record.active == false)", 1},
        {"not record.score == 0 and record.active == true", 1},
        {"not (record.score == 12 and record.active == true)", 0},
        {"not record.score == 12 or record.active == true", 1},
        {"not (record.score == 12 or record.active == false)", 0},
        {"record.score == 1 or record.score == 2 or record.score == 12", 1},
        {"record.score == 1 or record.score == 2 or record.score == 3", 0},
        {"record.email exists and record.phone exists and record.nothing exists", 0},
        {"((((record.active == true))))", 1},
        {"record.tags contains \"vip\" and not (record.email not exists or "
         "event.type == \"deleted\") and changed(email)",
         1},
        /* Spacing. */
        {"record.active==true and record.score!=3", 1},
        {"  record.active\t==\ttrue  ", 1},
        {"(record.active==true)and(record.score==12)", 1},
        {"not(record.active==false)", 1},
    };
    char err[256];

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        err[0] = '\0';
        int got = eval_text(cases[i].text, ev, err, sizeof(err));
        if (got != cases[i].want) {
            fprintf(stderr, "case %zu: %s\n  got %d want %d (%s)\n", i, cases[i].text, got,
                    cases[i].want, err);
        }
        CHECK_INT(got, cases[i].want);
    }
}

static void test_odd_events(void)
{
    static const char *const shapes[] = {
        NULL,
        "null",
        "[]",
        "\"str\"",
        "{}",
        "{\"record\":null,\"changes\":null}",
        "{\"record\":\"x\",\"changes\":[\"email\"]}",
        "{\"record\":[1],\"changes\":\"email\",\"type\":5}",
    };
    static const struct {
        const char *text;
        int want; /* the same for every shape above */
    } cases[] = {
        {"record.email exists", 0},
        {"record.email not exists", 1},
        {"record.email == null", 1},
        {"record.email != null", 0},
        {"record.email == \"x\"", 0},
        {"record.tags contains \"vip\"", 0},
        {"record.tags not contains \"vip\"", 1},
        {"changed(email)", 0},
        {"not changed(email)", 1},
        {"event.type == \"created\"", 0},
        {"changes.email.new exists", 0},
    };
    char err[256];

    for (size_t s = 0; s < ARRAY_SIZE(shapes); s++) {
        cJSON *ev = shapes[s] != NULL ? must_parse(shapes[s]) : NULL;
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
            int got = eval_text(cases[i].text, ev, err, sizeof(err));
            if (got != cases[i].want) {
                fprintf(stderr, "shape %zu case %zu: %s got %d\n", s, i, cases[i].text, got);
            }
            CHECK_INT(got, cases[i].want);
        }
        cJSON_Delete(ev);
    }
    /* A record that is a string: record exists, record == "x". */
    cJSON *ev = must_parse("{\"record\":\"x\"}");
    CHECK_INT(eval_text("record exists and record == \"x\"", ev, err, sizeof(err)), 1);
    CHECK_INT(eval_text("record contains \"x\"", ev, err, sizeof(err)), 1);
    cJSON_Delete(ev);
}

static void test_parse_errors(void)
{
    static const struct {
        const char *text;
        const char *want; /* exact message */
    } cases[] = {
        {"record.tags vip",
         "expected an operator after 'record.tags' at column 13 (==, !=, contains, not contains, "
         "exists or not exists)"},
        {"record.tags",
         "expected an operator after 'record.tags' at column 12 (==, !=, contains, not contains, "
         "exists or not exists)"},
        {"recrod.email exists", "unknown root 'recrod' at column 1 (use record, changes or event)"},
        {"true", "unknown root 'true' at column 1 (use record, changes or event)"},
        {"record.email = \"x\"", "unexpected '=' at column 14 (use == to compare)"},
        {"record.email == ",
         "expected a value (\"string\", number, true, false or null) after '==', found the end at "
         "column 17"},
        {"record.email == foo",
         "expected a value (\"string\", number, true, false or null) after '==', found 'foo' at "
         "column 17"},
        {"record.tags contains",
         "expected a value (\"string\", number, true, false or null) after 'contains', found the "
         "end at column 21"},
        {"record.tags not contains (",
         "expected a value (\"string\", number, true, false or null) after 'not contains', found "
         "'(' at column 26"},
        {"record.email == \"abc", "unterminated string at column 17"},
        {"record.email == \"abc\\\"", "unterminated string at column 17"},
        {"(record.active == true",
         "expected ')' to close '(' at column 1, found the end at column 23"},
        {"record.active == true)", "unmatched ')' at column 22"},
        {"record.active == true AND record.x exists",
         "unexpected 'AND' at column 23 (keywords are lower-case: and)"},
        {"record.active == true record.x exists",
         "unexpected 'record.x' at column 23 (expected and, or or the end)"},
        {"", "empty condition"},
        {"   \t", "empty condition"},
        {"and record.x exists",
         "expected a condition (a path such as record.email, not, '(' or changed(...)), found "
         "'and' at column 1"},
        {"record.x exists and",
         "expected a condition (a path such as record.email, not, '(' or changed(...)), found the "
         "end at column 20"},
        {"not",
         "expected a condition (a path such as record.email, not, '(' or changed(...)), found the "
         "end at column 4"},
        {"exists",
         "expected a condition (a path such as record.email, not, '(' or changed(...)), found "
         "'exists' at column 1"},
        {"()",
         "expected a condition (a path such as record.email, not, '(' or changed(...)), found "
         "')' at column 2"},
        {"record.x not", "expected 'exists' or 'contains' after 'not', found the end at column 13"},
        {"record.x not equals 1",
         "expected 'exists' or 'contains' after 'not', found 'equals' at column 14"},
        {"changed email", "expected '(' after 'changed', found 'email' at column 9"},
        {"changed(record.a.b)",
         "changed() takes a top-level record field such as email or record.email, found "
         "'record.a.b' at column 9"},
        {"changed(changes.email)",
         "changed() takes a top-level record field such as email or record.email, found "
         "'changes.email' at column 9"},
        {"changed()",
         "changed() takes a top-level record field such as email or record.email, found ')' at "
         "column 9"},
        {"changed(\"email\")",
         "changed() takes a top-level record field such as email or record.email, found "
         "'\"email\"' at column 9"},
        {"changed(email",
         "expected ')' to close 'changed(' at column 1, found the end at column 14"},
        {"changed(email x)",
         "expected ')' to close 'changed(' at column 1, found 'x' at column 15"},
        {"record..email exists", "empty field name in 'record..email' at column 8"},
        {"record.email. exists", "empty field name in 'record.email.' at column 14"},
        {"event.foo == 1",
         "unknown event member 'foo' at column 7 (use id, seq, time, trigger, location, type or "
         "record_id; the record and the changes are the roots record and changes)"},
        {"event.record.email exists",
         "unknown event member 'record' at column 7 (use id, seq, time, trigger, location, type "
         "or record_id; the record and the changes are the roots record and changes)"},
        {"record.x == 1.5.3", "bad number at column 13"},
        {"record.x == 01", "bad number at column 13"},
        {"record.x == 1e", "bad number at column 13"},
        {"record.x == -", "bad number at column 13"},
        {"record.x == 1e999", "bad number at column 13"},
        {"record.x == \"a\\qb\"", "unknown escape at column 15 (use \\\" \\\\ \\n \\t)"},
        {"record.x == 1 && record.y exists", "unexpected '&' at column 15 (use and, or)"},
        {"record.x == 1 || record.y exists", "unexpected '|' at column 15 (use and, or)"},
        {"record.x == 1 ; drop", "unexpected ';' at column 15"},
        {"record.x\x01 exists", "control character at column 9"},
        {"record.x ==\n1", "control character at column 12"},
        {"\xff", "condition is not valid UTF-8"},
        {"record.x == \"\xc3\xbc\" junk",
         /* columns count characters, not bytes */
         "unexpected 'junk' at column 17 (expected and, or or the end)"},
        {"record.x == \"\xe6\x97\xa5\xe6\x9c\xac\" junk",
         "unexpected 'junk' at column 18 (expected and, or or the end)"},
        {"record.x \xc3\xbc", "unexpected character at column 10"},
    };
    char err[512];

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct condition *c = (struct condition *)&err; /* must be reset to NULL */
        err[0] = '\0';
        CHECK_INT(condition_parse(cases[i].text, &c, err, sizeof(err)), -EINVAL);
        CHECK(c == NULL);
        if (strcmp(err, cases[i].want) != 0) {
            fprintf(stderr, "case %zu: %s\n  got:  %s\n  want: %s\n", i, cases[i].text, err,
                    cases[i].want);
        }
        CHECK_STR(err, cases[i].want);
        condition_free(c);
    }
    struct condition *c = NULL;
    CHECK_INT(condition_parse("nope", &c, NULL, 0), -EINVAL);
    CHECK_INT(condition_parse(NULL, &c, err, sizeof(err)), -EINVAL);
    condition_free(NULL);
    CHECK(!condition_eval(NULL, NULL));
    CHECK(!condition_uses_changes(NULL));
}

static void test_bounds(const cJSON *ev)
{
    char err[256];
    char *text = xmalloc(CONDITION_MAX_TEXT + 64);
    struct condition *c = NULL;
    size_t n = 0;

    /* 64 comparisons parse, 65 do not. */
    for (int i = 0; i < 65; i++) {
        n += (size_t)snprintf(text + n, 64, "%srecord.email exists", i ? " and " : "");
        if (i == 63) {
            CHECK_INT(condition_parse(text, &c, err, sizeof(err)), 0);
            CHECK(condition_eval(c, ev));
            condition_free(c);
        }
    }
    CHECK_INT(condition_parse(text, &c, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "more than 64 comparisons") != NULL);

    /* Parentheses 16 deep parse, 17 do not. */
    for (int depth = 16; depth <= 17; depth++) {
        n = 0;
        for (int i = 0; i < depth; i++) {
            text[n++] = '(';
        }
        n += (size_t)snprintf(text + n, 64, "record.active == true");
        for (int i = 0; i < depth; i++) {
            text[n++] = ')';
        }
        text[n] = '\0';
        int rc = condition_parse(text, &c, err, sizeof(err));
        CHECK_INT(rc, depth == 16 ? 0 : -EINVAL);
        if (rc == 0) {
            CHECK(condition_eval(c, ev));
            condition_free(c);
        } else {
            CHECK_STR(err, "parentheses nested deeper than 16 at column 17");
        }
    }

    /* A 4 KiB chain of "not": parity decides, nothing recurses. */
    for (int odd = 0; odd <= 1; odd++) {
        n = 0;
        for (int i = 0; i < 1000 + odd; i++) {
            n += (size_t)snprintf(text + n, 8, "not ");
        }
        n += (size_t)snprintf(text + n, 32, "record.a exists");
        CHECK(n <= CONDITION_MAX_TEXT);
        CHECK_INT(condition_parse(text, &c, err, sizeof(err)), 0);
        CHECK(condition_eval(c, ev) == (odd == 1)); /* record.a is missing */
        condition_free(c);
    }

    /* Length: 4096 bytes parse (padding is white space), 4097 do not. */
    memset(text, ' ', CONDITION_MAX_TEXT);
    memcpy(text, "record.email exists", 19);
    text[CONDITION_MAX_TEXT] = '\0';
    CHECK_INT(condition_parse(text, &c, err, sizeof(err)), 0);
    condition_free(c);
    text[CONDITION_MAX_TEXT] = ' ';
    text[CONDITION_MAX_TEXT + 1] = '\0';
    CHECK_INT(condition_parse(text, &c, err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "condition longer than 4096 bytes");

    /* Hostile mixes of punctuation never crash and always fail cleanly. */
    static const char *const junk = "(\"\\)==!=not and or changed( record. 1e9 -";
    for (size_t start = 0; start < strlen(junk); start++) {
        for (size_t len = 0; start + len <= strlen(junk); len++) {
            memcpy(text, junk + start, len);
            text[len] = '\0';
            int rc = condition_parse(text, &c, err, sizeof(err));
            CHECK(rc == 0 || rc == -EINVAL);
            CHECK((rc == 0) == (c != NULL));
            if (c != NULL) {
                condition_eval(c, ev);
            }
            condition_free(c);
        }
    }
    free(text);
}

static void test_uses_changes(void)
{
    static const struct {
        const char *text;
        bool want;
    } cases[] = {
        {"changed(email)", true},
        {"changes.email.new exists", true},
        {"changes exists", true},
        {"record.email exists", false},
        {"event.type == \"updated\"", false},
        {"record.x exists or changed(x)", true},
        {"not (record.x exists and changes.x.old == 1)", true},
        {"record.changes exists", false},
    };
    char err[256];
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct condition *c = NULL;
        CHECK_INT(condition_parse(cases[i].text, &c, err, sizeof(err)), 0);
        CHECK(condition_uses_changes(c) == cases[i].want);
        condition_free(c);
    }
}

/* Regression (found by fuzz_template): a number literal longer than the
 * parser's 64-byte buffer is an error, not out-of-bounds pointer arithmetic. */
static void test_long_number_literal(void)
{
    char text[160];
    char err[256] = "";
    snprintf(text, sizeof(text), "record.tags contains %s",
             "3666666666666666666666666666666666666666666666666666666666666666666666663333");
    struct condition *c = NULL;
    CHECK_INT(condition_parse(text, &c, err, sizeof(err)), -EINVAL);
    CHECK(c == NULL);
    CHECK(strstr(err, "number too long at column") != NULL);
    condition_free(c);
}

/* F20 follow-up: an event integer past 2^53 is a Raw node with its digits.
 * == / != / contains against a number literal compare the digits exactly
 * (two ids that round to the same double differ), and against a literal
 * written with a fraction or exponent, the double's exact value. */
static void test_big_integers(void)
{
    cJSON *ev = must_parse("{\"record\":{\"big\":12345678901234567890,"
                           "\"neg\":-9007199254740993,\"e20\":100000000000000000000,"
                           "\"ids\":[1,9007199254740993],\"small\":12}}");
    CHECK(cJSON_IsRaw(json_get_path(ev, "record.big")));
    static const struct {
        const char *text;
        int want;
    } cases[] = {
        {"record.big == 12345678901234567890", 1},
        {"record.big != 12345678901234567890", 0},
        {"record.big == 12345678901234567891", 0}, /* the same double, other digits */
        {"record.big != 12345678901234567891", 1},
        {"record.big == \"12345678901234567890\"", 0}, /* a string is not a number */
        {"record.neg == -9007199254740993", 1},
        {"record.neg == -9007199254740992", 0},
        {"record.neg == 9007199254740993", 0},
        {"record.e20 == 1e20", 1},
        {"record.e20 == 100000000000000000000.0", 1},
        {"record.big == 1.2345678901234567e19", 0},
        {"record.ids contains 9007199254740993", 1},
        {"record.ids contains 9007199254740992", 0},
        {"record.small == 12", 1},
        {"record.small == 12345678901234567890", 0},
    };
    char err[256];
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int got = eval_text(cases[i].text, ev, err, sizeof(err));
        if (got != cases[i].want) {
            fprintf(stderr, "case %zu: %s\n", i, cases[i].text);
        }
        CHECK_INT(got, cases[i].want);
    }
    cJSON_Delete(ev);
}

int main(void)
{
    test_long_number_literal();
    cJSON *ev = must_parse(event_json);
    test_eval_table(ev);
    test_odd_events();
    test_parse_errors();
    test_bounds(ev);
    test_uses_changes();
    test_big_integers();
    cJSON_Delete(ev);
    json_scratch_release();
    return test_done("condition");
}

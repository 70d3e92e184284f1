/*
 * test_config: the user's INI file. A table of broken configurations, each
 * rejected with the expected FILE:LINE and message (at load or at resolve
 * against the shipped catalog), then good configurations checked field by
 * field: values, defaults, continuation lines, relative paths, secrets.
 * [rule] sections get their own table (catalog, http and exec forms) and a
 * good configuration whose parsed rules are checked member by member; the
 * commented-out rule examples of conf/pollen.ini must load once uncommented.
 *
 * A canary token runs through every case: it must never appear in any error
 * message.
 */
#include "condition.h"
#include "config.h"
#include "log.h"
#include "template.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"

#ifndef SOURCE_ROOT
#define SOURCE_ROOT "."
#endif

#define CANARY "CANARY-tok-9f3a7c1e5b"

static char *case_dir;    /* absolute, realpath'ed: where the cases are written */
static char *case_file;   /* case_dir/pollen.ini */
static struct catalog *catalog;

static void write_file(const char *path, const char *data, size_t len, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || fchmod(fd, mode) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(99);
    }
    close(fd);
}

static void write_config(const char *text)
{
    write_file(case_file, text, strlen(text), 0600);
}

static void dump_errors(const struct config_errors *e)
{
    for (size_t i = 0; i < e->count; i++) {
        fprintf(stderr, "    got: %s\n", e->items[i]);
    }
}

/* True if some error is "case_file:LINE: ...want..." (line 0: "case_file: ..."). */
static bool has_error(const struct config_errors *e, int line, const char *want)
{
    char *tag = line > 0 ? xasprintf("%s:%d: ", case_file, line) : xasprintf("%s: ", case_file);
    bool found = false;
    for (size_t i = 0; i < e->count && !found; i++) {
        found = str_has_prefix(e->items[i], tag) && strstr(e->items[i], want) != NULL;
    }
    free(tag);
    return found;
}

static bool any_error_contains(const struct config_errors *e, const char *s)
{
    for (size_t i = 0; i < e->count; i++) {
        if (strstr(e->items[i], s) != NULL) {
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Broken configurations                                                     */

/* Building blocks: BASE is a valid configuration of 7 lines. */
#define ENGINE "[engine]\nstate_dir = state\n"                            /* lines 1-2 */
#define LOC "[location main]\nid = loc123\ntoken = env:POLLEN_TEST_TOKEN\n" /* lines 3-5 */
#define TRIG "[trigger contacts]\nuse = contacts.search\n"                /* lines 6-7 */
#define BASE ENGINE LOC TRIG
#define X10 "xxxxxxxxxx"
#define X50 X10 X10 X10 X10 X10
#define A10 "aaaaaaaaaa"
#define A50 A10 A10 A10 A10 A10

enum stage { LOAD, RESOLVE };

struct bad_case {
    const char *name;
    const char *text;
    enum stage stage;   /* where it must fail */
    int line;           /* expected line (0: the whole file) */
    const char *want;   /* expected substring of that error */
    const char *absent; /* must appear in no error (or NULL) */
};

static const struct bad_case bad_cases[] = {
    {"overlong line", BASE "query = " A50 A50 A50 A50 "\n", LOAD, 8,
     "line is 208 bytes long; the limit is 198 (continue a long value on indented lines)", NULL},
    /* reliability.md §3.3: r55 would split this line and inject token_file. */
    {"r55 injection", "[engine]\nbody_template=" X50 X50 X50 X10 X10 X10 "xxxxx"
                      "token_file=/attacker/path\nstate_dir = s\n" LOC TRIG,
     LOAD, 2, "line is 224 bytes long; the limit is 198", "token_file"},
    {"duplicate key", BASE "every = 1m\nevery = 2m\n", LOAD, 9,
     "duplicate key 'every' (first set on line 8)", NULL},
    {"duplicate section", BASE "[engine]\n", LOAD, 8,
     "duplicate section [engine] (first on line 1)", NULL},
    {"duplicate trigger name", BASE "[trigger contacts]\nuse = contacts.list\n", LOAD, 8,
     "duplicate section [trigger contacts] (first on line 6)", NULL},
    {"unknown section", BASE "[rules x]\n", LOAD, 8,
     "unknown section kind [rules] (expected [engine], [api], [location NAME], [trigger NAME] "
     "or [rule NAME])",
     NULL},
    {"unknown engine key", "[engine]\nstate_dir = s\nlog_levl = info\n" LOC TRIG, LOAD, 3,
     "unknown key 'log_levl' in [engine]; did you mean 'log_level'?", NULL},
    {"unknown trigger key", BASE "evry = 5m\n", RESOLVE, 8,
     "unknown key 'evry' in [trigger contacts]; did you mean 'every'?", NULL},
    {"unknown parameter", BASE "color = red\n", RESOLVE, 8,
     "unknown key 'color' in [trigger contacts]", NULL},
    {"bad duration", BASE "every = 5 minutes\n", LOAD, 8,
     "bad duration '5 minutes' for 'every'", NULL},
    {"every too long", BASE "every = 20m\n", LOAD, 8,
     "every = 20m is out of range (allowed 1m..15m", NULL},
    {"every below min_interval", "[engine]\nstate_dir = s\nmin_interval = 2m\n" LOC TRIG
                                 "every = 1m\n",
     LOAD, 9, "every = 1m is out of range (allowed 2m..15m", NULL},
    {"min_interval zero", "[engine]\nstate_dir = s\nmin_interval = 0\n" LOC TRIG, LOAD, 3,
     "min_interval = 0 is out of range (allowed 1s..15m)", NULL},
    {"bad size", "[engine]\nstate_dir = s\nmax_db_size = lots\n" LOC TRIG, LOAD, 3,
     "bad size 'lots' for 'max_db_size'", NULL},
    {"missing state_dir", "[engine]\nlog_level = info\n" LOC TRIG, LOAD, 1,
     "missing required key 'state_dir' in [engine]", NULL},
    {"no engine section", LOC TRIG, LOAD, 0, "missing required key 'state_dir' in [engine]",
     NULL},
    {"bad log level", "[engine]\nstate_dir = s\nlog_level = loud\n" LOC TRIG, LOAD, 3,
     "bad value 'loud' for 'log_level' (allowed: error warn info debug)", NULL},
    {"missing use", BASE "[trigger t2]\nevery = 5m\n", LOAD, 8,
     "missing required key 'use' in [trigger t2]", NULL},
    {"unknown use", ENGINE LOC "[trigger contacts]\nuse = contacts.serch\n", RESOLVE, 7,
     "unknown catalog trigger 'contacts.serch'; did you mean 'contacts.search'?", NULL},
    {"unknown location", BASE "location = mian\n", LOAD, 8,
     "unknown location 'mian' (no [location mian] section); did you mean 'main'?", NULL},
    {"ambiguous location", ENGINE LOC "[location b]\nid = other1\ntoken = env:POLLEN_TEST_TOKEN\n"
                           TRIG,
     LOAD, 9, "needs 'location = NAME': there are 2 [location] sections", NULL},
    {"no location", ENGINE TRIG, LOAD, 3, "has no location to poll", NULL},
    {"literal token", ENGINE "[location main]\nid = loc123\ntoken = " CANARY "\n" TRIG, LOAD, 5,
     "token must be env:VAR or file:PATH, never the token itself", NULL},
    {"missing env var", ENGINE "[location main]\nid = loc123\ntoken = env:POLLEN_TEST_UNSET\n" TRIG,
     LOAD, 5, "environment variable POLLEN_TEST_UNSET is not set", NULL},
    {"empty env var", ENGINE "[location main]\nid = loc123\ntoken = env:POLLEN_TEST_EMPTY\n" TRIG,
     LOAD, 5, "environment variable POLLEN_TEST_EMPTY is empty", NULL},
    {"token file 0644", ENGINE "[location main]\nid = loc123\ntoken = file:tok_loose\n" TRIG, LOAD,
     5, "permissions 0644 for '", NULL},
    {"token file 0640", ENGINE "[location main]\nid = loc123\ntoken = file:tok_group\n" TRIG, LOAD,
     5, "tok_group' are too open; run: chmod 600 ", NULL},
    {"token file missing", ENGINE "[location main]\nid = loc123\ntoken = file:tok_nope\n" TRIG,
     LOAD, 5, "tok_nope': No such file or directory", NULL},
    {"token file two lines", ENGINE "[location main]\nid = loc123\ntoken = file:tok_2lines\n" TRIG,
     LOAD, 5, "contains a control character or a line break", NULL},
    {"bad location id", ENGINE "[location main]\nid = loc-123!\ntoken = env:POLLEN_TEST_TOKEN\n"
                        TRIG,
     LOAD, 4, "id must be the HighLevel locationId", NULL},
    {"duplicate location id",
     ENGINE LOC "[location b]\nid = loc123\ntoken = env:POLLEN_TEST_TOKEN\n" TRIG
                "location = main\n",
     LOAD, 7, "location id is already used by [location main]", NULL},
    {"rate_limit range", ENGINE LOC "rate_limit = 101\n" TRIG, LOAD, 6,
     "bad value '101' for 'rate_limit' (expected a whole number from 1 to 100)", NULL},
    {"sweep_share range", ENGINE LOC "sweep_share = 2\n" TRIG, LOAD, 6,
     "bad value '2' for 'sweep_share' (expected a number from 0.05 to 1)", NULL},
    {"http base_url", BASE "[api]\nbase_url = http://example.com\n", LOAD, 9,
     "base_url must use https://", NULL},
    {"ftp base_url", BASE "[api]\nbase_url = ftp://127.0.0.1\n", LOAD, 9,
     "base_url must start with https://", NULL},
    {"connect_timeout > timeout", BASE "[api]\ntimeout = 5s\nconnect_timeout = 10s\n", LOAD, 10,
     "connect_timeout = 10s is longer than timeout = 5s", NULL},
    {"for_each to a non-contact trigger",
     BASE "[trigger tasks]\nuse = contacts.tasks\nfor_each = t3\n"
          "[trigger t3]\nuse = contacts.tasks.get\ncontactId = a\ntaskId = b\n",
     RESOLVE, 10, "yields 'task' records; contacts.tasks needs 'contact' records", NULL},
    {"for_each cycle",
     BASE "[trigger a]\nuse = contacts.tasks\nfor_each = b\n"
          "[trigger b]\nuse = contacts.notes\nfor_each = a\n",
     RESOLVE, 10, "for_each cycle: a -> b -> a", NULL},
    {"for_each unknown trigger", BASE "[trigger tasks]\nuse = contacts.tasks\nfor_each = contcts\n",
     RESOLVE, 10, "for_each: no [trigger contcts]; did you mean 'contacts'?", NULL},
    {"for_each without fan_out", BASE "[trigger b]\nuse = contacts.list\nfor_each = contacts\n",
     RESOLVE, 10, "contacts.list takes no for_each", NULL},
    {"fan-out parameter with for_each",
     BASE "[trigger tasks]\nuse = contacts.tasks\nfor_each = contacts\ncontactId = x\n", RESOLVE,
     11, "'contactId' is fed by for_each = contacts; remove this line", NULL},
    {"missing required parameter", BASE "[trigger one]\nuse = contacts.get\n", RESOLVE, 8,
     "[trigger one] is missing parameter 'contactId' (required by contacts.get)", NULL},
    {"require_one", BASE "[trigger dup]\nuse = contacts.duplicate\n", RESOLVE, 8,
     "needs at least one of: email number", NULL},
    {"json parameter not JSON", BASE "filters = [{\"field\":\n", RESOLVE, 8,
     "'filters' is not valid JSON", NULL},
    {"page_size too big", BASE "page_size = 501\n", RESOLVE, 8,
     "page_size = 501 is out of range (contacts.search allows 1..500)", NULL},
    {"page_size on unpaginated", BASE "[trigger one]\nuse = contacts.get\ncontactId = c1\n"
                                 "page_size = 5\n",
     RESOLVE, 11, "page_size: contacts.get is not paginated", NULL},
    {"fields/ignore overlap", BASE "fields = email phone\nignore = phone\n", LOAD, 9,
     "field 'phone' is in both fields and ignore", NULL},
    {"emit unknown type", BASE "emit = created changed\n", LOAD, 8,
     "unknown event type 'changed' (allowed: created updated deleted)", NULL},
    {"first_poll bad", BASE "first_poll = all\n", LOAD, 8,
     "bad value 'all' for 'first_poll' (allowed: baseline emit)", NULL},
    {"empty value", BASE "every =\n", LOAD, 8, "empty value for 'every'", NULL},
    {"indented key", BASE "every = 5m\n  emit = created\n", LOAD, 9,
     "indented line looks like a key but would continue the value of 'every'", NULL},
    {"bad section name", BASE "[trigger bad/name]\n", LOAD, 8, "bad section name 'bad/name'",
     NULL},
    {"section name too long", BASE "[trigger " A50 A10 "aaaaa]\nuse = contacts.search\n", LOAD, 8,
     "bad section name", NULL},
    {"section without name", BASE "[trigger]\nuse = contacts.search\n", LOAD, 8,
     "[trigger] needs a name", NULL},
    {"missing ]", BASE "[trigger x\n", LOAD, 8, "missing ']' in section header", NULL},
    {"text after ]", BASE "[trigger x] y\n", LOAD, 8, "unexpected text after ']'", NULL},
    {"no equals sign", BASE "justaword\n", LOAD, 8, "expected 'key = value'", NULL},
    {"key outside section", "x = 1\n" BASE, LOAD, 1, "key 'x' is outside any [section]", NULL},
    {"control character", BASE "every = 5m\x01\n", LOAD, 8, "control character 0x01", NULL},
    {"invalid UTF-8", BASE "query = caf\xc3(\n", LOAD, 8, "invalid UTF-8", NULL},
    {"canary pasted into a value is masked", BASE "every = " CANARY "\n", LOAD, 8,
     "bad duration '[REDACTED]' for 'every'", NULL},
};

/* Rules. RBASE adds a second trigger (lines 8-11) to BASE; a rule starts
 * on line 12. */
#define RBASE \
    BASE "[trigger tasks]\nuse = contacts.tasks\nfor_each = contacts\nemit = created updated\n"
#define RULE "[rule r]\n"              /* line 12 */
#define ON_CREATED "on = contacts:created\n" /* line 13 */
/* A complete contacts.tasks.create rule body: lines 14-18 after RULE ON_CREATED. */
#define TASK_DO "do = contacts.tasks.create\n"
#define TASK_KEYS "contactId = {{record.id}}\ntitle = Follow up\ndueDate = {{now + 1d}}\n"
#define TASK_OK TASK_DO TASK_KEYS "completed = false\n"
#define LOC_B "[location b]\nid = other1\ntoken = env:POLLEN_TEST_TOKEN\n"

static const struct bad_case rule_cases[] = {
    {"rule: unknown trigger in on", RBASE RULE "on = contcts:created\n" TASK_OK, LOAD, 13,
     "on: no [trigger contcts]; did you mean 'contacts'?", NULL},
    {"rule: bad event type", RBASE RULE "on = contacts:modified\n" TASK_OK, LOAD, 13,
     "on: unknown event type in 'contacts:modified' (allowed: created updated deleted *)", NULL},
    {"rule: on without type", RBASE RULE "on = contacts\n" TASK_OK, LOAD, 13,
     "on: 'contacts' needs an event type: TRIGGER:created", NULL},
    {"rule: trigger does not emit the type", RBASE RULE "on = tasks:deleted\n" TASK_OK, LOAD, 13,
     "on: [trigger tasks] does not emit deleted events (emit = created updated)", NULL},
    {"rule: triggers on two locations",
     ENGINE LOC LOC_B "[trigger a]\nuse = contacts.search\nlocation = main\n"
                      "[trigger b]\nuse = contacts.search\nlocation = b\n"
                      "[rule r]\non = a:created b:created\n" TASK_OK,
     LOAD, 16,
     "on: [trigger a] polls location 'main', but [trigger b] polls 'b'; a rule's triggers must "
     "share one location",
     NULL},
    {"rule: missing on", RBASE RULE TASK_OK, LOAD, 12, "missing required key 'on' in [rule r]",
     NULL},
    {"rule: missing do", RBASE RULE ON_CREATED TASK_KEYS, LOAD, 12,
     "missing required key 'do' in [rule r]", NULL},
    {"rule: bad do", RBASE RULE ON_CREATED "do = contacts tasks\n", LOAD, 14,
     "bad value 'contacts tasks' for 'do'", NULL},
    {"rule: unknown action", RBASE RULE ON_CREATED "do = contacts.tasks.creat\n" TASK_KEYS
                                                   "completed = false\n",
     RESOLVE, 14,
     "do: unknown action 'contacts.tasks.creat'; did you mean 'contacts.tasks.create'?", NULL},
    {"rule: missing required field", RBASE RULE ON_CREATED TASK_DO
                                     "contactId = {{record.id}}\ntitle = x\ncompleted = false\n",
     RESOLVE, 12, "[rule r] is missing field 'dueDate' (required by contacts.tasks.create)", NULL},
    {"rule: missing path parameter", RBASE RULE ON_CREATED TASK_DO
                                     "title = x\ndueDate = {{now + 1d}}\ncompleted = false\n",
     RESOLVE, 12,
     "[rule r] is missing path parameter 'contactId' (required by contacts.tasks.create)", NULL},
    {"rule: unknown field", RBASE RULE ON_CREATED TASK_OK "titel = x\n", RESOLVE, 19,
     "unknown field 'titel' for contacts.tasks.create; did you mean 'title'?", NULL},
    {"rule: misspelt rule key", RBASE RULE ON_CREATED "do = contacts.delete\nconfrm = yes\n"
                                "contactId = {{record.id}}\n",
     RESOLVE, 15, "unknown field 'confrm' for contacts.delete; did you mean 'confirm'?", NULL},
    {"rule: catalog sets locationId",
     RBASE RULE ON_CREATED "do = contacts.create\nlocationId = x\n", RESOLVE, 15,
     "'locationId' is set by contacts.create itself (the location's id)", NULL},
    {"rule: http key on a catalog action", RBASE RULE ON_CREATED TASK_OK "url = https://x.test/\n",
     RESOLVE, 19, "unknown field 'url' for contacts.tasks.create", NULL},
    {"rule: bad template root",
     RBASE RULE ON_CREATED TASK_DO
     "contactId = {{recrod.id}}\ntitle = x\ndueDate = x\ncompleted = false\n",
     LOAD, 15, "'contactId': unknown root 'recrod'", NULL},
    {"rule: unclosed {{", RBASE RULE ON_CREATED TASK_DO
                          "contactId = {{record.id}}\ntitle = Hi {{record.firstName\n"
                          "dueDate = x\ncompleted = false\n",
     LOAD, 16, "'title': unterminated '{{'", NULL},
    {"rule: empty field value", RBASE RULE ON_CREATED TASK_OK "body =\n", LOAD, 19,
     "empty value for 'body'", NULL},
    {"rule: destructive without confirm", RBASE RULE ON_CREATED "do = contacts.delete\n"
                                          "contactId = {{record.id}}\n",
     RESOLVE, 14, "rule 'r' runs destructive action contacts.delete: add confirm = yes", NULL},
    {"rule: confirm not a boolean", RBASE RULE ON_CREATED "do = contacts.delete\nconfirm = sure\n",
     LOAD, 15, "bad value 'sure' for 'confirm' (expected yes or no)", NULL},
    {"rule: boolean literal", RBASE RULE ON_CREATED TASK_DO TASK_KEYS "completed = yes\n", RESOLVE,
     18, "bad value 'yes' for 'completed' (contacts.tasks.create expects true or false)", NULL},
    {"rule: boolean with text around {{}}", RBASE RULE ON_CREATED TASK_DO TASK_KEYS
                                            "completed = is {{record.done}}\n",
     RESOLVE, 18,
     "'completed' is a boolean field of contacts.tasks.create: give a literal or exactly one "
     "{{expression}}",
     NULL},
    {"rule: json field not JSON", RBASE RULE ON_CREATED "do = contacts.update\n"
                                  "contactId = {{record.id}}\ncustomFields = [{\"id\":\n",
     RESOLVE, 16, "'customFields' is not valid JSON (error near byte", NULL},
    {"rule: path literal", RBASE RULE ON_CREATED "do = contacts.update\ncontactId = a/b\n", RESOLVE,
     15, "bad value 'a/b' for 'contactId' (a path parameter: 1-64 letters, digits, _ or -)", NULL},
    {"rule: when parse error", RBASE RULE ON_CREATED "when = record.tags contains\n" TASK_OK, LOAD,
     14, "when: ", NULL},
    {"rule: changed() in a created-only rule", RBASE RULE ON_CREATED "when = changed(email)\n"
                                               TASK_OK,
     LOAD, 14,
     "when uses changed() or changes, but [rule r] fires only on created/deleted events", NULL},
    {"rule: changes. in a created+deleted rule",
     RBASE RULE "on = contacts:created contacts:deleted\nwhen = changes.email exists\n" TASK_OK,
     LOAD, 14, "fires only on created/deleted events", NULL},
    {"rule: max_attempts 0", RBASE RULE ON_CREATED TASK_OK "max_attempts = 0\n", LOAD, 19,
     "bad value '0' for 'max_attempts' (expected a whole number from 1 to 100)", NULL},
    {"rule: backoff longer than backoff_max", RBASE RULE ON_CREATED TASK_OK
                                              "backoff = 20m\nbackoff_max = 10m\n",
     LOAD, 19, "backoff = 20m is longer than backoff_max = 10m", NULL},
    {"exec: relative command", RBASE RULE ON_CREATED "do = exec\ncommand = notify\n", LOAD, 15,
     "command must be the absolute path of a program", NULL},
    {"exec: missing command file", RBASE RULE ON_CREATED "do = exec\ncommand = /nonexistent/x\n",
     LOAD, 15, "command '/nonexistent/x': No such file or directory", NULL},
    {"exec: command not executable",
     RBASE RULE ON_CREATED "do = exec\ncommand = /etc/passwd\n", LOAD, 15,
     "command '/etc/passwd' is not executable", NULL},
    {"exec: command is a directory", RBASE RULE ON_CREATED "do = exec\ncommand = /tmp\n", LOAD, 15,
     "command '/tmp' is not a regular file", NULL},
    {"exec: command missing", RBASE RULE ON_CREATED "do = exec\nargs = x\n", LOAD, 12,
     "missing required key 'command' in [rule r]", NULL},
    {"exec: unclosed {{ in args", RBASE RULE ON_CREATED "do = exec\ncommand = /bin/true\n"
                                  "args = --id {{record.id\n",
     LOAD, 16, "'args word 2': unterminated '{{'", NULL},
    {"exec: catalog field", RBASE RULE ON_CREATED "do = exec\ncommand = /bin/true\ntitle = x\n",
     LOAD, 16, "unknown key 'title' in [rule r]", NULL},
    {"exec: timeout range", RBASE RULE ON_CREATED "do = exec\ncommand = /bin/true\ntimeout = 1h\n",
     LOAD, 16, "timeout = 1h is out of range (allowed 1s..10m)", NULL},
    {"http: http:// to a public host", RBASE RULE ON_CREATED "do = http\n"
                                       "url = http://example.com/hook\n",
     LOAD, 15, "url must use https:// (http:// is allowed only for 127.0.0.1, localhost and [::1])",
     NULL},
    {"http: loopback look-alike", RBASE RULE ON_CREATED "do = http\n"
                                  "url = http://localhost.evil.test/\n",
     LOAD, 15, "url must use https://", NULL},
    {"http: credentials hide the host", RBASE RULE ON_CREATED "do = http\n"
                                        "url = http://localhost@evil.test/\n",
     LOAD, 15, "url must not contain credentials (@)", NULL},
    {"http: templated host", RBASE RULE ON_CREATED "do = http\n"
                             "url = https://{{record.website}}/x\n",
     LOAD, 15, "url: the scheme and host must be literal", NULL},
    {"http: ftp", RBASE RULE ON_CREATED "do = http\nurl = ftp://127.0.0.1/\n", LOAD, 15,
     "url must start with https://", NULL},
    {"http: bad template in url", RBASE RULE ON_CREATED "do = http\n"
                                  "url = https://h.test/{{recrod.id}}\n",
     LOAD, 15, "'url': unknown root 'recrod'", NULL},
    {"http: url missing", RBASE RULE ON_CREATED "do = http\nmethod = PUT\n", LOAD, 12,
     "missing required key 'url' in [rule r]", NULL},
    {"http: bad method", RBASE RULE ON_CREATED "do = http\nurl = https://h.test/\nmethod = FETCH\n",
     LOAD, 16, "bad value 'FETCH' for 'method' (allowed: GET POST PUT PATCH DELETE)", NULL},
    {"http: GET with a body",
     RBASE RULE ON_CREATED "do = http\nurl = https://h.test/\nmethod = GET\n"
                           "body.id = {{record.id}}\n",
     LOAD, 17, "body.id: method = GET sends no body", NULL},
    {"http: bad header name", RBASE RULE ON_CREATED "do = http\nurl = https://h.test/\n"
                              "header.X_Token = 1\n",
     LOAD, 16, "'header.X_Token': a header name is 1-64 characters of A-Z a-z 0-9 -", NULL},
    {"http: reserved header", RBASE RULE ON_CREATED "do = http\nurl = https://h.test/\n"
                              "header.content-type = text/plain\n",
     LOAD, 16, "'header.content-type': pollen sets this header itself", NULL},
    {"http: header twice", RBASE RULE ON_CREATED "do = http\nurl = https://h.test/\n"
                           "header.X-A = 1\nheader.x-a = 2\n",
     LOAD, 17, "header 'x-a' is already set on line 16", NULL},
    {"http: bad header template", RBASE RULE ON_CREATED "do = http\nurl = https://h.test/\n"
                                  "header.X-A = {{event.nope}}\n",
     LOAD, 16, "'header.X-A': ", NULL},
    {"http: catalog field", RBASE RULE ON_CREATED "do = http\nurl = https://h.test/\ntitle = x\n",
     LOAD, 16, "unknown key 'title' in [rule r]", NULL},
    {"rule: canary in a template error is masked", RBASE RULE ON_CREATED TASK_DO
                                                   "contactId = {{" CANARY "}}\n",
     LOAD, 15, "'contactId': ", CANARY},
};

static void run_bad_case(const struct bad_case *c)
{
    write_config(c->text);
    struct config_errors errs = {0};
    struct config *cfg = (struct config *)1;
    int rc = config_load(case_file, 0, &cfg, &errs);
    bool ok;
    if (c->stage == LOAD) {
        ok = rc == -EINVAL && cfg == NULL;
    } else {
        ok = rc == 0 && cfg != NULL && errs.count == 0;
        if (ok) {
            rc = config_resolve(cfg, catalog, &errs);
            ok = rc == -EINVAL;
            for (size_t i = 0; i < cfg->ntriggers; i++) {
                ok = ok && cfg->triggers[i].def == NULL && cfg->triggers[i].parent == NULL;
            }
            for (size_t i = 0; i < cfg->nrules; i++) {
                ok = ok && cfg->rules[i].def == NULL;
            }
        }
        if (rc == 0 || cfg != NULL) {
            config_free(cfg);
        }
    }
    CHECK(ok);
    bool found = has_error(&errs, c->line, c->want);
    CHECK(found);
    bool clean = !any_error_contains(&errs, CANARY);
    CHECK(clean);
    bool absent = c->absent == NULL || !any_error_contains(&errs, c->absent);
    CHECK(absent);
    if (!ok || !found || !clean || !absent) {
        fprintf(stderr, "  case '%s' (rc %d): want line %d: %s\n", c->name, rc, c->line, c->want);
        dump_errors(&errs);
    }
    config_errors_free(&errs);
}

static void test_bad_cases(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
        run_bad_case(&bad_cases[i]);
    }
    CHECK(ARRAY_SIZE(bad_cases) >= 30);
    for (size_t i = 0; i < ARRAY_SIZE(rule_cases); i++) {
        run_bad_case(&rule_cases[i]);
    }
    CHECK(ARRAY_SIZE(rule_cases) >= 20);
}

/* A NUL byte cannot live in a C string table. */
static void test_nul_byte(void)
{
    static const char text[] = BASE "every = 5m\0x\n";
    write_file(case_file, text, sizeof(text) - 1, 0600);
    struct config_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, &cfg, &errs), -EINVAL);
    CHECK(has_error(&errs, 8, "NUL byte in line"));
    config_errors_free(&errs);
}

/* Errors are collected from the whole file and sorted by line, although
 * sections are processed kind by kind ([engine] before [trigger]). */
static void test_all_errors_sorted(void)
{
    write_config("[trigger t]\n"             /* 1 */
                 "use = contacts.search\n"   /* 2 */
                 "every = soon\n"            /* 3 */
                 "[engine]\n"                /* 4 */
                 "state_dir = s\n"           /* 5 */
                 "log_level = loud\n"        /* 6 */
                 "[location main]\n"         /* 7 */
                 "id = loc1\n"               /* 8 */
                 "token = env:POLLEN_TEST_TOKEN\n" /* 9 */
                 "rate_limit = 0\n"          /* 10 */
                 "[trigger t]\n");           /* 11 */
    struct config_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, &cfg, &errs), -EINVAL);
    CHECK(cfg == NULL);
    CHECK_INT(errs.count, 4);
    static const int want[] = {3, 6, 10, 11};
    for (size_t i = 0; i < errs.count && i < ARRAY_SIZE(want); i++) {
        char *tag = xasprintf("%s:%d: ", case_file, want[i]);
        CHECK(str_has_prefix(errs.items[i], tag));
        free(tag);
    }
    if (errs.count != 4) {
        dump_errors(&errs);
    }
    config_errors_free(&errs);
}

static void test_unreadable(void)
{
    struct config_errors errs = {0};
    struct config *cfg = (struct config *)1;
    char *path = xasprintf("%s/does-not-exist.ini", case_dir);
    CHECK_INT(config_load(path, 0, &cfg, &errs), -ENOENT);
    CHECK(cfg == NULL);
    CHECK_INT(errs.count, 1);
    CHECK(errs.count == 1 && strstr(errs.items[0], "cannot read: No such file") != NULL);
    config_errors_free(&errs);
    free(path);
}

/* ------------------------------------------------------------------------ */
/* Good configurations                                                       */

static void test_defaults(void)
{
    write_config(BASE);
    struct config_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg == NULL) {
        config_errors_free(&errs);
        return;
    }
    char *state = xasprintf("%s/state", case_dir);
    CHECK_STR(cfg->path, case_file);
    CHECK_STR(cfg->dir, case_dir);
    CHECK_STR(cfg->state_dir, state);
    free(state);
    CHECK_INT(cfg->min_interval_ms, 60000);
    CHECK_INT(cfg->log_level, LOG_INFO);
    CHECK_STR(cfg->catalog_dir, POLLEN_CATALOG_DIR);
    CHECK_INT(cfg->retention_count, 1000000);
    CHECK_INT(cfg->retention_age_ms, 30ULL * 86400000);
    CHECK(cfg->max_db_size == 8ULL << 30);
    CHECK_STR(cfg->base_url, "https://services.leadconnectorhq.com");
    CHECK_INT(cfg->timeout_ms, 60000);
    CHECK_INT(cfg->connect_timeout_ms, 10000);
    CHECK_INT(cfg->max_body, 16 << 20);
    CHECK(cfg->ca_file == NULL);
    CHECK_INT(cfg->nlocations, 1);
    CHECK_INT(cfg->ntriggers, 1);
    if (cfg->nlocations == 1 && cfg->ntriggers == 1) {
        const struct config_location *l = &cfg->locations[0];
        CHECK_STR(l->name, "main");
        CHECK_INT(l->line, 3);
        CHECK_STR(l->id, "loc123");
        CHECK_STR(l->token, CANARY);
        CHECK_INT(l->rate_limit, 90);
        CHECK_INT(l->rate_window_ms, 10000);
        CHECK_INT(l->daily_limit, 200000);
        CHECK(l->sweep_share == 0.5);
        const struct config_trigger *t = &cfg->triggers[0];
        CHECK_STR(t->name, "contacts");
        CHECK_INT(t->line, 6);
        CHECK_STR(t->use, "contacts.search");
        CHECK(t->def == NULL);
        CHECK_STR(t->location_name, "main");
        CHECK(t->location == &cfg->locations[0]);
        CHECK_INT(t->every_ms, 300000);
        CHECK_INT(t->emit, CONFIG_EMIT_CREATED | CONFIG_EMIT_UPDATED | CONFIG_EMIT_DELETED);
        CHECK(!t->first_poll_emit);
        CHECK(t->fields == NULL && t->ignore == NULL && t->for_each == NULL);
        CHECK_INT(t->page_size, 0);
        CHECK_INT(t->nparams, 0);
        CHECK_INT(t->use_line, 7);
    }
    CHECK(config_find_location(cfg, "main") == &cfg->locations[0]);
    CHECK(config_find_location(cfg, "nope") == NULL);
    CHECK(config_find_trigger(cfg, "contacts") == &cfg->triggers[0]);
    CHECK(config_find_trigger(cfg, "nope") == NULL);
    CHECK_INT(config_resolve(cfg, catalog, &errs), 0);
    CHECK(cfg->ntriggers == 1 &&
          cfg->triggers[0].def == catalog_find_trigger(catalog, "contacts.search"));
    CHECK_INT(errs.count, 0);
    config_free(cfg);
    config_errors_free(&errs);
}

static void test_full(void)
{
    char *tok = xasprintf("%s/tok_good", case_dir);
    write_file(tok, CANARY "\n", strlen(CANARY) + 1, 0600);
    char *ca = xasprintf("%s/ca.pem", case_dir);
    write_file(ca, "x\n", 2, 0644);
    write_config("\xEF\xBB\xBF; a BOM, comments and blank lines are fine\n" /* 1 */
                 "# hash comment\n"                                         /* 2 */
                 "\n"                                                       /* 3 */
                 "[engine]\n"                                               /* 4 */
                 "state_dir = ./var/state ; trailing comment\n"             /* 5 */
                 "min_interval = 30s\n"                                     /* 6 */
                 "log_level = debug\n"                                      /* 7 */
                 "catalog = " SOURCE_ROOT "\n"                              /* 8 */
                 "retention_count = 0\n"                                    /* 9 */
                 "retention_age = 0\n"                                      /* 10 */
                 "max_db_size = 1GiB\n"                                     /* 11 */
                 "[api]\n"                                                  /* 12 */
                 "base_url = http://127.0.0.1:8080/base/\n"                 /* 13 */
                 "timeout = 2m\n"                                           /* 14 */
                 "connect_timeout = 5s\n"                                   /* 15 */
                 "max_body = 1MiB\n"                                        /* 16 */
                 "ca_file = ca.pem\n"                                       /* 17 */
                 "[location one]\n"                                         /* 18 */
                 "id = abc\n"                                               /* 19 */
                 "token = env:POLLEN_TEST_TOKEN\n"                          /* 20 */
                 "rate_limit = 100\n"                                       /* 21 */
                 "rate_window = 1s\n"                                       /* 22 */
                 "daily_limit = 5000\n"                                     /* 23 */
                 "sweep_share = 0.25\n"                                     /* 24 */
                 "[location two]\n"                                         /* 25 */
                 "id = def\n"                                               /* 26 */
                 "token = file:tok_good\n"                                  /* 27 */
                 "[trigger all]\n"                                          /* 28 */
                 "use = contacts.search\n"                                  /* 29 */
                 "location = two\n"                                         /* 30 */
                 "emit = deleted created\n"                                 /* 31 */
                 "first_poll = emit\n"                                      /* 32 */
                 "fields = firstName lastName\n"                            /* 33 */
                 "    email ; a comment on a continuation line\n"           /* 34 */
                 "\tphone\n"                                                /* 35 */
                 "ignore = lastActivity\n"                                  /* 36 */
                 "page_size = 500\n"                                        /* 37 */
                 "query = a;b\n"                                            /* 38 */
                 "filters =\n"                                              /* 39 */
                 "    [{\"field\": \"tags\",\n"                             /* 40 */
                 "      \"operator\": \"contains\", \"value\": \"vip\"}]\n" /* 41 */
                 "[trigger tasks]\n"                                        /* 42 */
                 "use = contacts.tasks\n"                                   /* 43 */
                 "location = two\n"                                         /* 44 */
                 "for_each = all\n"                                         /* 45 */
                 "every = 15m\n"                                            /* 46 */
                 "[trigger x.y-z_1]\n"                                      /* 47 */
                 "use = contacts.get\n"                                     /* 48 */
                 "location = one\n"                                         /* 49 */
                 "contactId = c1\n");                                       /* 50 */
    struct config_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg == NULL) {
        goto out;
    }
    char *state = xasprintf("%s/var/state", case_dir);
    CHECK_STR(cfg->state_dir, state);
    free(state);
    CHECK_INT(cfg->min_interval_ms, 30000);
    CHECK_INT(cfg->log_level, LOG_DEBUG);
    CHECK_STR(cfg->catalog_dir, SOURCE_ROOT);
    CHECK_INT(cfg->retention_count, 0);
    CHECK_INT(cfg->retention_age_ms, 0);
    CHECK(cfg->max_db_size == 1ULL << 30);
    CHECK_STR(cfg->base_url, "http://127.0.0.1:8080/base");
    CHECK_INT(cfg->timeout_ms, 120000);
    CHECK_INT(cfg->connect_timeout_ms, 5000);
    CHECK_INT(cfg->max_body, 1 << 20);
    CHECK_STR(cfg->ca_file, ca);
    CHECK_INT(cfg->nlocations, 2);
    CHECK_INT(cfg->ntriggers, 3);
    if (cfg->nlocations != 2 || cfg->ntriggers != 3) {
        goto free_cfg;
    }
    const struct config_location *one = &cfg->locations[0];
    const struct config_location *two = &cfg->locations[1];
    CHECK_STR(one->token, CANARY);
    CHECK_INT(one->rate_limit, 100);
    CHECK_INT(one->rate_window_ms, 1000);
    CHECK_INT(one->daily_limit, 5000);
    CHECK(one->sweep_share == 0.25);
    CHECK_STR(two->id, "def");
    CHECK_STR(two->token, CANARY); /* trailing newline trimmed */

    const struct config_trigger *all = &cfg->triggers[0];
    CHECK(all->location == two);
    CHECK_INT(all->every_ms, 300000);
    CHECK_INT(all->emit, CONFIG_EMIT_CREATED | CONFIG_EMIT_DELETED);
    CHECK(all->first_poll_emit);
    CHECK_INT(strv_len(all->fields), 4);
    CHECK(strv_contains(all->fields, "email") && strv_contains(all->fields, "phone"));
    CHECK(!strv_contains(all->fields, "comment"));
    CHECK_INT(strv_len(all->ignore), 1);
    CHECK_INT(all->page_size, 500);
    CHECK_INT(all->page_size_line, 37);
    CHECK_INT(all->nparams, 2);
    if (all->nparams == 2) {
        CHECK_STR(all->params[0].name, "query");
        CHECK_STR(all->params[0].value, "a;b");
        CHECK_INT(all->params[0].line, 38);
        CHECK_STR(all->params[1].name, "filters");
        CHECK_STR(all->params[1].value,
                  "[{\"field\": \"tags\", \"operator\": \"contains\", \"value\": \"vip\"}]");
        CHECK_INT(all->params[1].line, 39);
    }
    const struct config_trigger *tasks = &cfg->triggers[1];
    CHECK_STR(tasks->for_each, "all");
    CHECK_INT(tasks->for_each_line, 45);
    CHECK_INT(tasks->every_ms, 15 * 60000);
    CHECK_STR(cfg->triggers[2].name, "x.y-z_1");

    CHECK_INT(config_resolve(cfg, catalog, &errs), 0);
    dump_errors(&errs);
    CHECK(all->def == catalog_find_trigger(catalog, "contacts.search"));
    CHECK(tasks->def == catalog_find_trigger(catalog, "contacts.tasks"));
    CHECK(tasks->parent == all);
    CHECK(all->parent == NULL);

    /* Secrets are registered for redaction. */
    char red[128];
    log_redact("Bearer " CANARY, red, sizeof(red));
    CHECK_STR(red, "Bearer [REDACTED]");

free_cfg:
    config_free(cfg);
out:
    config_errors_free(&errs);
    unlink(tok);
    unlink(ca);
    free(tok);
    free(ca);
}

/* Defaults that depend on other keys, and one-word edge cases. */
static void test_derived(void)
{
    write_config("[engine]\nstate_dir = /abs/state\nmin_interval = 10m\n" LOC TRIG);
    struct config_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg != NULL && cfg->ntriggers == 1) {
        CHECK_STR(cfg->state_dir, "/abs/state");
        /* every defaults to 5m, but never below min_interval. */
        CHECK_INT(cfg->triggers[0].every_ms, 10 * 60000);
    }
    config_free(cfg);
    config_errors_free(&errs);

    /* Secrets skipped: no variable or file is read, the syntax is checked. */
    write_config(ENGINE "[location main]\nid = loc123\ntoken = env:POLLEN_TEST_UNSET\n"
                        "[location two]\nid = loc456\ntoken = file:no-such-file\n" TRIG
                        "location = main\n");
    CHECK_INT(config_load(case_file, CONFIG_SKIP_SECRETS, &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg != NULL && cfg->nlocations == 2) {
        CHECK(cfg->locations[0].token == NULL && cfg->locations[1].token == NULL);
    }
    config_free(cfg);
    config_errors_free(&errs);
    write_config(ENGINE "[location main]\nid = loc123\ntoken = " CANARY "\n" TRIG);
    CHECK_INT(config_load(case_file, CONFIG_SKIP_SECRETS, &cfg, &errs), -EINVAL);
    CHECK(has_error(&errs, 5, "never the token itself"));
    CHECK(!any_error_contains(&errs, CANARY));
    config_errors_free(&errs);

    /* Local http base URLs. */
    static const char *const urls[][2] = {
        {"https://example.com/", "https://example.com"},
        {"http://localhost:9", "http://localhost:9"},
        {"http://[::1]:8080//", "http://[::1]:8080"},
        {"https://h.example:443/v2", "https://h.example:443/v2"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(urls); i++) {
        char *text = xasprintf(BASE "[api]\nbase_url = %s\n", urls[i][0]);
        write_config(text);
        free(text);
        CHECK_INT(config_load(case_file, 0, &cfg, &errs), 0);
        dump_errors(&errs);
        if (cfg != NULL) {
            CHECK_STR(cfg->base_url, urls[i][1]);
        }
        config_free(cfg);
        config_errors_free(&errs);
    }
    static const char *const bad_urls[] = {
        "http://localhost.evil.com", "http://127.0.0.1.nip.io", "https://", "https://u:p@h",
        "https://h?x=1", "https://h:abc", "http://[::2]",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad_urls); i++) {
        char *text = xasprintf(BASE "[api]\nbase_url = %s\n", bad_urls[i]);
        write_config(text);
        free(text);
        CHECK_INT(config_load(case_file, 0, &cfg, &errs), -EINVAL);
        CHECK(has_error(&errs, 9, "base_url"));
        config_errors_free(&errs);
    }
}

/* The shipped reference configuration is valid (secrets not read). */
static void test_reference(void)
{
    struct config_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(SOURCE_ROOT "/conf/pollen.ini", CONFIG_SKIP_SECRETS, &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg != NULL) {
        CHECK_INT(config_resolve(cfg, catalog, &errs), 0);
        dump_errors(&errs);
        CHECK(cfg->ntriggers >= 1);
    }
    config_free(cfg);
    config_errors_free(&errs);
}

/* Rules of all three forms, checked member by member. */
static void test_rules(void)
{
    write_config(RBASE                                                         /* 1-11 */
                 "[rule vip-task]\n"                                           /* 12 */
                 "on = contacts:created contacts:updated tasks:*\n"            /* 13 */
                 "when = record.tags contains \"vip\"\n"                       /* 14 */
                 "do = contacts.tasks.create\n"                                /* 15 */
                 "contactId = {{record.id}}\n"                                 /* 16 */
                 "title = Follow up with {{record.firstName | default \"them\"}}\n" /* 17 */
                 "dueDate = {{now + 1d}}\n"                                    /* 18 */
                 "completed = false\n"                                         /* 19 */
                 "max_attempts = 3\n"                                          /* 20 */
                 "backoff = 1s\n"                                              /* 21 */
                 "backoff_max = 1m\n"                                          /* 22 */
                 "[rule cleanup]\n"                                            /* 23 */
                 "on = contacts:deleted\n"                                     /* 24 */
                 "do = contacts.notes.delete\n"                                /* 25 */
                 "confirm = yes\n"                                             /* 26 */
                 "contactId = {{record.id}}\n"                                 /* 27 */
                 "id = fixed-note_1\n"                                         /* 28 */
                 "[rule hook]\n"                                               /* 29 */
                 "on = contacts:*\n"                                           /* 30 */
                 "do = http\n"                                                 /* 31 */
                 "url = https://hooks.example.com:8443/p/{{record.id}}?x=1\n"  /* 32 */
                 "method = PUT\n"                                              /* 33 */
                 "header.X-Token = abc\n"                                      /* 34 */
                 "header.X-Trace = {{event.id}}\n"                             /* 35 */
                 "body.name = {{record.firstName}}\n"                          /* 36 */
                 "body.tags = {{record.tags}}\n"                               /* 37 */
                 "timeout = 10s\n"                                             /* 38 */
                 "[rule local]\n"                                              /* 39 */
                 "on = contacts:updated\n"                                     /* 40 */
                 "when = changed(email)\n"                                     /* 41 */
                 "do = http\n"                                                 /* 42 */
                 "url = http://127.0.0.1:8080/x\n"                             /* 43 */
                 "[rule run]\n"                                                /* 44 */
                 "on = tasks:updated\n"                                        /* 45 */
                 "do = exec\n"                                                 /* 46 */
                 "command = /bin/true\n"                                       /* 47 */
                 /* 48 */
                 "args = --id {{record.id}} {{record.title | default \"no title\"}} plain\n"
                 "[rule tags]\n"                                               /* 49 */
                 "on = contacts:created contacts:created\n"                    /* 50 */
                 "do = contacts.tags.add\n"                                    /* 51 */
                 "contactId = {{record.id}}\n"                                 /* 52 */
                 "tags = vip gold\n"                                           /* 53 */
                 "[rule typed]\n"                                              /* 54 */
                 "on = contacts:updated\n"                                     /* 55 */
                 "do = contacts.update\n"                                      /* 56 */
                 "contactId = {{record.id}}\n"                                 /* 57 */
                 "dnd = {{record.dnd | bool}}\n"                               /* 58 */
                 "customFields = [{\"id\": \"f1\", \"field_value\": \"x\"}]\n" /* 59 */
                 "tags = {{record.tags}}\n"                                    /* 60 */
                 "firstName = Dr. {{record.firstName}}\n");                    /* 61 */
    struct config_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg == NULL) {
        config_errors_free(&errs);
        return;
    }
    CHECK_INT(cfg->nrules, 7);
    if (cfg->nrules != 7) {
        goto out;
    }
    const struct config_trigger *contacts = config_find_trigger(cfg, "contacts");
    const struct config_trigger *tasks = config_find_trigger(cfg, "tasks");
    const unsigned all = CONFIG_EMIT_CREATED | CONFIG_EMIT_UPDATED | CONFIG_EMIT_DELETED;

    const struct config_rule *v = &cfg->rules[0];
    CHECK_STR(v->name, "vip-task");
    CHECK_INT(v->line, 12);
    CHECK_INT(v->non, 2);
    if (v->non == 2) {
        CHECK_STR(v->on[0].trigger, "contacts");
        CHECK(v->on[0].resolved == contacts);
        CHECK_INT(v->on[0].types, CONFIG_EMIT_CREATED | CONFIG_EMIT_UPDATED);
        CHECK_STR(v->on[1].trigger, "tasks");
        CHECK(v->on[1].resolved == tasks);
        CHECK_INT(v->on[1].types, all);
    }
    CHECK_STR(v->when, "record.tags contains \"vip\"");
    CHECK_INT(v->when_line, 14);
    CHECK(v->cond != NULL);
    CHECK_STR(v->action, "contacts.tasks.create");
    CHECK_INT(v->do_line, 15);
    CHECK_INT(v->kind, CONFIG_RULE_CATALOG);
    CHECK(v->def == NULL); /* until config_resolve */
    CHECK(!v->confirm);
    CHECK_INT(v->max_attempts, 3);
    CHECK_INT(v->backoff_ms, 1000);
    CHECK_INT(v->backoff_max_ms, 60000);
    CHECK_INT(v->timeout_ms, 0);
    CHECK(v->location == &cfg->locations[0]);
    CHECK_INT(v->nparams, 4);
    static const struct {
        const char *name, *value;
        int line;
        bool literal;
    } vp[] = {
        {"contactId", "{{record.id}}", 16, false},
        {"title", "Follow up with {{record.firstName | default \"them\"}}", 17, false},
        {"dueDate", "{{now + 1d}}", 18, false},
        {"completed", "false", 19, true},
    };
    for (size_t i = 0; i < v->nparams && i < ARRAY_SIZE(vp); i++) {
        CHECK_STR(v->params[i].name, vp[i].name);
        CHECK_STR(v->params[i].value, vp[i].value);
        CHECK_INT(v->params[i].line, vp[i].line);
        CHECK(v->params[i].tmpl != NULL &&
              template_is_literal(v->params[i].tmpl) == vp[i].literal);
    }
    CHECK(v->nheaders == 0 && v->url == NULL && v->method == NULL && v->command == NULL &&
          v->nargs == 0);

    const struct config_rule *c = &cfg->rules[1];
    CHECK(c->confirm);
    CHECK(c->when == NULL && c->cond == NULL && c->when_line == 0);
    CHECK_INT(c->max_attempts, 8);
    CHECK_INT(c->backoff_ms, 5000);
    CHECK_INT(c->backoff_max_ms, 15 * 60000);
    CHECK(c->non == 1 && c->on[0].types == CONFIG_EMIT_DELETED);

    const struct config_rule *h = &cfg->rules[2];
    CHECK_INT(h->kind, CONFIG_RULE_HTTP);
    CHECK_STR(h->action, "http");
    CHECK(h->url != NULL && !template_is_literal(h->url));
    CHECK_STR(h->method, "PUT");
    CHECK_INT(h->timeout_ms, 10000);
    CHECK_INT(h->nheaders, 2);
    if (h->nheaders == 2) {
        CHECK_STR(h->headers[0].name, "X-Token");
        CHECK_STR(h->headers[0].value, "abc");
        CHECK_INT(h->headers[0].line, 34);
        CHECK(h->headers[0].tmpl != NULL && template_is_literal(h->headers[0].tmpl));
        CHECK_STR(h->headers[1].name, "X-Trace");
        CHECK(h->headers[1].tmpl != NULL && template_uses_root(h->headers[1].tmpl, "event"));
    }
    CHECK_INT(h->nparams, 2);
    if (h->nparams == 2) {
        CHECK_STR(h->params[0].name, "name");
        CHECK_STR(h->params[1].name, "tags");
        CHECK_INT(h->params[1].line, 37);
    }
    CHECK(h->non == 1 && h->on[0].types == all);

    const struct config_rule *l = &cfg->rules[3];
    CHECK_INT(l->kind, CONFIG_RULE_HTTP);
    CHECK_STR(l->method, "POST");
    CHECK_INT(l->timeout_ms, 30000);
    CHECK(l->cond != NULL && condition_uses_changes(l->cond));
    CHECK_INT(l->nparams, 0);

    const struct config_rule *x = &cfg->rules[4];
    CHECK_INT(x->kind, CONFIG_RULE_EXEC);
    CHECK_STR(x->command, "/bin/true");
    CHECK_INT(x->timeout_ms, 30000);
    CHECK_INT(x->nargs, 4);
    if (x->nargs == 4) {
        CHECK(x->args[0] != NULL && template_is_literal(x->args[0]));
        CHECK(x->args[1] != NULL && template_uses_root(x->args[1], "record"));
        /* The quoted default's space did not split the word. */
        CHECK(x->args[2] != NULL && !template_is_literal(x->args[2]));
        CHECK(x->args[3] != NULL && template_is_literal(x->args[3]));
    }
    CHECK(x->location == &cfg->locations[0]);

    const struct config_rule *t = &cfg->rules[5];
    CHECK_INT(t->non, 1); /* a repeated TRIGGER:TYPE is merged */
    CHECK(t->non == 1 && t->on[0].types == CONFIG_EMIT_CREATED);

    /* Matching is by trigger and type. */
    CHECK(config_rule_matches(v, contacts, CONFIG_EMIT_CREATED));
    CHECK(config_rule_matches(v, contacts, CONFIG_EMIT_UPDATED));
    CHECK(!config_rule_matches(v, contacts, CONFIG_EMIT_DELETED));
    CHECK(config_rule_matches(v, tasks, CONFIG_EMIT_DELETED));
    CHECK(!config_rule_matches(l, tasks, CONFIG_EMIT_UPDATED));
    CHECK(!config_rule_matches(l, contacts, CONFIG_EMIT_CREATED));
    CHECK(!config_rule_matches(NULL, contacts, CONFIG_EMIT_CREATED));
    CHECK(config_find_rule(cfg, "hook") == h);
    CHECK(config_find_rule(cfg, "nope") == NULL);

    CHECK_INT(config_resolve(cfg, catalog, &errs), 0);
    dump_errors(&errs);
    CHECK(v->def == catalog_find_action(catalog, "contacts.tasks.create"));
    CHECK(c->def == catalog_find_action(catalog, "contacts.notes.delete"));
    CHECK(t->def == catalog_find_action(catalog, "contacts.tags.add"));
    CHECK(cfg->rules[6].def == catalog_find_action(catalog, "contacts.update"));
    CHECK(h->def == NULL && x->def == NULL);
out:
    config_free(cfg);
    config_errors_free(&errs);
}

/*
 * The rule examples of conf/pollen.ini are commented out; uncommented (each
 * line of the block starting with ';' then a non-blank, non-';' character
 * loses the ';'), they must load and resolve as they are.
 */
static void test_reference_rules(void)
{
    char *text = NULL;
    size_t len = 0;
    CHECK_INT(util_read_file(SOURCE_ROOT "/conf/pollen.ini", 1 << 20, &text, &len), 0);
    if (text == NULL) {
        return;
    }
    const char *begin = strstr(text, "; --- rule examples");
    const char *end = begin != NULL ? strstr(begin, "; --- end of rule examples") : NULL;
    CHECK(begin != NULL && end != NULL);
    if (begin == NULL || end == NULL) {
        free(text);
        return;
    }
    char *out = xmalloc(len + 1);
    size_t o = 0;
    size_t uncommented = 0;
    for (const char *p = text; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t l = nl != NULL ? (size_t)(nl - p) + 1 : strlen(p);
        if (p > begin && p < end && p[0] == ';' && l > 2 && p[1] != ' ' && p[1] != ';' &&
            p[1] != '\n') {
            p++;
            l--;
            uncommented++;
        }
        memcpy(out + o, p, l);
        o += l;
        p += l;
    }
    out[o] = '\0';
    free(text);
    write_file(case_file, out, o, 0600);
    free(out);
    CHECK(uncommented >= 30);

    struct config_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, CONFIG_SKIP_SECRETS, &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg != NULL) {
        CHECK_INT(cfg->nrules, 5);
        CHECK_INT(config_resolve(cfg, catalog, &errs), 0);
        dump_errors(&errs);
        const struct config_rule *r = config_find_rule(cfg, "vip-follow-up");
        CHECK(r != NULL && r->def == catalog_find_action(catalog, "contacts.tasks.create"));
        r = config_find_rule(cfg, "to-crm");
        CHECK(r != NULL && r->kind == CONFIG_RULE_HTTP && r->nparams == 3 && r->nheaders == 1);
        r = config_find_rule(cfg, "log-tasks");
        CHECK(r != NULL && r->kind == CONFIG_RULE_EXEC && r->nargs == 2);
    }
    config_free(cfg);
    config_errors_free(&errs);
}

static void setup(void)
{
    const char *tmp = getenv("POLLEN_TEST_TMP");
    char *dir = xasprintf("%s/config_cases", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (util_mkdir_p(dir, 0700) != 0) {
        fprintf(stderr, "cannot create %s\n", dir);
        exit(99);
    }
    char *real = realpath(dir, NULL);
    free(dir);
    case_dir = xstrdup(real);
    free(real);
    case_file = xasprintf("%s/pollen.ini", case_dir);
    char *p = xasprintf("%s/tok_loose", case_dir);
    write_file(p, CANARY "\n", strlen(CANARY) + 1, 0644);
    free(p);
    p = xasprintf("%s/tok_group", case_dir);
    write_file(p, CANARY "\n", strlen(CANARY) + 1, 0640);
    free(p);
    p = xasprintf("%s/tok_2lines", case_dir);
    write_file(p, CANARY "\nmore\n", strlen(CANARY) + 6, 0600);
    free(p);
    setenv("POLLEN_TEST_TOKEN", CANARY, 1);
    setenv("POLLEN_TEST_EMPTY", "", 1);
    unsetenv("POLLEN_TEST_UNSET");

    struct config_errors errs = {0};
    if (catalog_load(SOURCE_ROOT, &catalog, &errs) != 0) {
        config_errors_print(&errs, stderr);
        exit(99);
    }
    config_errors_free(&errs);
}

static void teardown(void)
{
    static const char *const files[] = {"pollen.ini", "tok_loose", "tok_group", "tok_2lines"};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        char *p = xasprintf("%s/%s", case_dir, files[i]);
        unlink(p);
        free(p);
    }
    rmdir(case_dir);
    catalog_free(catalog);
    free(case_file);
    free(case_dir);
    log_clear_secrets();
}

int main(void)
{
    setup();
    test_bad_cases();
    test_nul_byte();
    test_all_errors_sorted();
    test_unreadable();
    test_defaults();
    test_full();
    test_derived();
    test_reference();
    test_rules();
    test_reference_rules();
    teardown();
    return test_done("test_config");
}

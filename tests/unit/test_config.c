/*
 * test_config: the user's INI file. A table of broken configurations, each
 * rejected with the expected FILE:LINE and message (at load or at resolve
 * against the shipped catalog), then good configurations checked field by
 * field: values, defaults, continuation lines, relative paths, secrets.
 * [rule] sections get their own table (catalog, http and exec forms) and a
 * good configuration whose parsed rules are checked member by member; the
 * commented-out rule examples of conf/pollen.ini must load once uncommented.
 *
 * [oauth] sections, `oauth =` locations, `location = *` expansion (names,
 * for_each binding, rules on expanded triggers, config_rule_location) and
 * scope checks against token store files have their own table and good
 * configurations; so do the commented-out oauth examples of conf/pollen.ini.
 *
 * A canary token and a canary client secret run through every case: they
 * must never appear in any error message.
 */
#include "buf.h"
#include "condition.h"
#include "config.h"
#include "log.h"
#include "paths.h"
#include "registry.h"
#include "sink_exec.h"
#include "sink_http.h"
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
#define SECRET "CANARY-sec-4d2e8b7a61"
#define FILE_SECRET "CANARY-sec-file-77aa03"

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

static void dump_errors(const struct ini_errors *e)
{
    for (size_t i = 0; i < e->count; i++) {
        fprintf(stderr, "    got: %s\n", e->items[i]);
    }
}

/* True if some error is "case_file:LINE: ...want..." (line 0: "case_file: ..."). */
static bool has_error(const struct ini_errors *e, int line, const char *want)
{
    char *tag = line > 0 ? xasprintf("%s:%d: ", case_file, line) : xasprintf("%s: ", case_file);
    bool found = false;
    for (size_t i = 0; i < e->count && !found; i++) {
        found = str_has_prefix(e->items[i], tag) && strstr(e->items[i], want) != NULL;
    }
    free(tag);
    return found;
}

static bool any_error_contains(const struct ini_errors *e, const char *s)
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
#define COMPANY "[company agency]\nid = comp1\ntoken = env:POLLEN_TEST_TOKEN\n" /* lines 6-8 */
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
     "unknown section kind [rules] (expected [engine], [api], [api NAME], [location NAME], "
     "[company NAME], "
     "[oauth NAME], "
     "[trigger NAME] or [rule NAME])",
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
    {"bad log format", "[engine]\nstate_dir = s\nlog_format = yaml\n" LOC TRIG, LOAD, 3,
     "bad value 'yaml' for 'log_format' (allowed: text json)", NULL},
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
    {"bad company_id", ENGINE LOC "company_id = sbx-1!\n" TRIG, LOAD, 6,
     "company_id must be the HighLevel companyId: 1-64 letters and digits", NULL},
    /* {company} (M3): a static token carries no companyId. */
    {"users.search without company_id", ENGINE LOC "[trigger users]\nuse = users.search\n",
     RESOLVE, 6,
     "trigger 'users': users.search sends the companyId ({company}), and the static token of "
     "[location main] carries none: add company_id = <companyId> to [location main] (line 3)",
     NULL},
    /* M15: agency definitions run for a [company], the others for a [location]. */
    {"agency trigger on a location", ENGINE LOC "[trigger s]\nuse = snapshots.list\n", RESOLVE, 6,
     "trigger 's': snapshots.list is an agency definition (scope_level = agency): name a "
     "[company NAME] with company = NAME, not a location",
     NULL},
    {"location trigger on a company",
     ENGINE LOC COMPANY "[trigger c]\nuse = contacts.search\ncompany = agency\n", RESOLVE, 9,
     "trigger 'c': contacts.search polls a location; company = NAME is only for agency "
     "definitions",
     NULL},
    {"unknown company", ENGINE LOC COMPANY "[trigger s]\nuse = snapshots.list\ncompany = agncy\n",
     LOAD, 11, "unknown company 'agncy' (no [company agncy] section)", NULL},
    {"company and location", ENGINE LOC COMPANY
     "[trigger s]\nuse = snapshots.list\nlocation = main\ncompany = agency\n",
     LOAD, 12, "[trigger s] sets both location (line 11) and company", NULL},
    {"company without credential", ENGINE LOC "[company agency]\nid = comp1\n" TRIG, LOAD, 6,
     "[company agency] needs exactly one credential", NULL},
    {"company named like a location",
     ENGINE LOC "[company main]\nid = comp1\ntoken = env:POLLEN_TEST_TOKEN\n" TRIG, LOAD, 6,
     "[company main] has the name of [location main] (line 3); rename one", NULL},
    {"company with company_id", ENGINE LOC COMPANY "company_id = x1\n" TRIG, LOAD, 9,
     "[company agency]: the companyId is its id; company_id is a [location] key", NULL},
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
    /* connect_timeout defaults to 10s: the problem is on timeout's line. */
    {"timeout below the default connect_timeout", BASE "[api]\ntimeout = 2s\n", LOAD, 9,
     "connect_timeout = 10s is longer than timeout = 2s", NULL},
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
    {"reconcile on a full-scan definition", BASE "[trigger one]\nuse = contacts.list\n"
                                            "reconcile = 1h\n",
     RESOLVE, 10, "reconcile: contacts.list is not polled incrementally", NULL},
    {"watermark_lag on a full-scan definition", BASE "[trigger one]\nuse = contacts.list\n"
                                                "watermark_lag = 1m\n",
     RESOLVE, 10, "watermark_lag: contacts.list is not polled incrementally", NULL},
    {"reconcile too long", BASE "reconcile = 31d\n", LOAD, 8, "reconcile = 31d is out of range",
     NULL},
    {"page_size on unpaginated", BASE "[trigger one]\nuse = contacts.get\ncontactId = c1\n"
                                 "page_size = 5\n",
     RESOLVE, 11, "page_size: contacts.get is not paginated", NULL},
    {"fields/ignore overlap", BASE "fields = email phone\nignore = phone\n", LOAD, 9,
     "field 'phone' is in both fields and ignore", NULL},
    {"emit unknown type", BASE "emit = created changed\n", LOAD, 8,
     "unknown event type 'changed' (allowed: created updated deleted touched)", NULL},
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

/* [api NAME] (a user's own API, issue #13): API is lines 6-9 after ENGINE LOC. */
#define API_CATALOG SOURCE_ROOT "/examples/ruby-app/catalog"
#define API "[api app]\nbase_url = http://127.0.0.1:4567\nauth = env:POLLEN_TEST_TOKEN\n" \
            "catalog = " API_CATALOG "\n"
#define API_TRIG "[trigger c]\napi = app\nuse = customers.list\n" /* lines 10-12 */
static const struct bad_case api_cases[] = {
    {"unknown api", ENGINE LOC API "[trigger c]\napi = nope\nuse = customers.list\n", LOAD, 11,
     "unknown api 'nope' (no [api nope] section)", NULL},
    {"api and location", ENGINE LOC API API_TRIG "location = main\n", LOAD, 11,
     "[trigger c] names both api and location (line 13)", NULL},
    {"api and company", ENGINE LOC API API_TRIG "company = x\n", LOAD, 11,
     "[trigger c] names both api and company (line 13)", NULL},
    {"api plain http", ENGINE LOC "[api app]\nbase_url = http://example.com\ncatalog = x\n",
     LOAD, 7, "base_url", NULL},
    {"api literal auth", ENGINE LOC "[api app]\nbase_url = https://x.example\nauth = " CANARY
     "\ncatalog = x\n", LOAD, 8, "auth must be env:VAR or file:PATH", NULL},
    {"api no catalog", ENGINE LOC "[api app]\nbase_url = https://x.example\n", LOAD, 6,
     "missing required key 'catalog'", NULL},
    {"api no base_url", ENGINE LOC "[api app]\ncatalog = x\n", LOAD, 6,
     "missing required key 'base_url'", NULL},
    {"api bad header", ENGINE LOC API "auth_header = X Key\n", LOAD, 10,
     "auth_header must be an HTTP header name", NULL},
    {"api bad scheme", ENGINE LOC API "auth_scheme = a:b\n", LOAD, 10,
     "auth_scheme must be one word", NULL},
    {"api header without auth", ENGINE LOC "[api app]\nbase_url = https://x.example\n"
     "catalog = x\nauth_header = X-Key\n", LOAD, 9, "auth_header without auth", NULL},
    {"api rate_limit 0", ENGINE LOC API "rate_limit = 0\n", LOAD, 10, "rate_limit", NULL},
    {"api unknown key", ENGINE LOC API "rate = 5/10s\n", LOAD, 10,
     "unknown key 'rate' in [api app]", NULL},
    {"api unnamed catalog key", ENGINE LOC "[api]\ncatalog = x\n", LOAD, 7,
     "unknown key 'catalog' in [api]", NULL},
    {"api use not in its catalog", ENGINE LOC API "[trigger c]\napi = app\n"
     "use = contacts.search\n", RESOLVE, 12,
     "use: unknown catalog trigger 'contacts.search' (the catalog of [api app])", NULL},
    {"api use typo", ENGINE LOC API "[trigger c]\napi = app\nuse = customer.list\n", RESOLVE,
     12, "did you mean 'customers.list'?", NULL},
    {"api for_each", ENGINE LOC API API_TRIG "[trigger d]\napi = app\nuse = todos.list\n"
     "for_each = c\n", RESOLVE, 16, "for_each is not supported yet on a trigger of an [api]",
     NULL},
    {"api unknown param", ENGINE LOC API API_TRIG "customer_id = x\n", RESOLVE, 13,
     "customer_id", NULL},
    {"api rule with a HighLevel action", ENGINE LOC API API_TRIG "[rule r]\non = c:created\n"
     "do = contacts.tags.add\ncontactId = {{record.id}}\ntags = x\n", RESOLVE, 15,
     "rule 'r': contacts.tags.add is a HighLevel action, and [trigger c] polls [api app]", NULL},
};

static const struct bad_case rule_cases[] = {
    {"rule: unknown trigger in on", RBASE RULE "on = contcts:created\n" TASK_OK, LOAD, 13,
     "on: no [trigger contcts]; did you mean 'contacts'?", NULL},
    {"rule: bad event type", RBASE RULE "on = contacts:modified\n" TASK_OK, LOAD, 13,
     "on: unknown event type in 'contacts:modified' (allowed: created updated deleted touched *)", NULL},
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
    /* M14: a secret field takes a reference, never the value (not even in the message). */
#define USER_DO "do = users.create\ncompanyId = c1\nfirstName = A\nlastName = B\n"         \
                "email = a@example.com\ntype = account\nrole = user\nlocationIds = l1\n"
    {"rule: secret field given as a literal", RBASE RULE ON_CREATED USER_DO
                                              "password = hunter2secret\n",
     RESOLVE, 22, "'password' is a secret field of users.create: give env:VAR or file:PATH",
     "hunter2secret"},
    {"rule: secret field given as a template", RBASE RULE ON_CREATED USER_DO
                                               "password = {{record.id}}\n",
     RESOLVE, 22, "'password' is a secret field of users.create", NULL},
    {"rule: secret field with an empty file reference", RBASE RULE ON_CREATED USER_DO
                                                        "password = file:\n",
     RESOLVE, 22, "password = file:PATH needs a path", NULL},
#undef USER_DO
    /* M14: contacts.business.bulk is destructive only when it sends businessId = null. */
    {"rule: null makes bulk business destructive", RBASE RULE ON_CREATED
                                                   "do = contacts.business.bulk\n"
                                                   "ids = {{record.id}}\nbusinessId = null\n",
     RESOLVE, 16, "businessId = null makes contacts.business.bulk destructive (it removes): add "
                  "confirm = yes to rule 'r'", NULL},
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

/* OAuth: OBASE is a valid configuration of 11 lines whose location uses
 * [oauth app]. */
#define OAUTH_HEAD "[oauth app]\nclient_id = app-client-1\n"             /* lines 3-4 */
#define OAUTH_REST "client_secret = env:POLLEN_TEST_SECRET\n"                \
                   "scopes = contacts.readonly contacts.write\n"            /* lines 5-6 */
#define OAUTH_APP OAUTH_HEAD OAUTH_REST
#define LOC_APP "[location main]\nid = loc123\noauth = app\n"            /* lines 7-9 */
#define OBASE ENGINE OAUTH_APP LOC_APP TRIG                             /* TRIG: 10-11 */
/* Two token locations (lines 3-8) for `location = *`. */
#define LOCS_AB LOC LOC_B
/* An agency credential (lines 3-7) and two locations using it (8-13). */
#define AGENCY "[oauth agency]\nclient_id = ag\nclient_secret = env:POLLEN_TEST_SECRET\n" \
               "scopes = contacts.write\nuser_type = Company\n"
#define AGENCY_LOCS "[location a]\nid = aaa1\noauth = agency\n" \
                    "[location b]\nid = bbb2\noauth = agency\n"

/* A literal client_secret is accepted only in a private file (the good
 * case is test_oauth). */
static const struct {
    mode_t mode;
    struct bad_case c;
} literal_secret_cases[] = {
    {0644,
     {"oauth: literal client_secret in a 0644 file",
      ENGINE OAUTH_HEAD "client_secret = " SECRET "\nscopes = contacts.readonly\n" LOC_APP TRIG,
      LOAD, 5, "are too open for a literal client_secret; run: chmod 600 ", SECRET}},
    {0640,
     {"oauth: literal client_secret in a 0640 file",
      ENGINE OAUTH_HEAD "client_secret = " SECRET "\nscopes = contacts.readonly\n" LOC_APP TRIG,
      LOAD, 5, "permissions 0640 for '", SECRET}},
};

static const struct bad_case oauth_cases[] = {
    {"oauth: missing client_secret",
     ENGINE OAUTH_HEAD "scopes = contacts.readonly\n" LOC_APP TRIG, LOAD, 3,
     "missing required key 'client_secret' in [oauth app]", NULL},
    {"oauth: missing scopes",
     ENGINE OAUTH_HEAD "client_secret = env:POLLEN_TEST_SECRET\n" LOC_APP TRIG, LOAD, 3,
     "missing required key 'scopes' in [oauth app]", NULL},
    {"oauth: missing client_id",
     ENGINE "[oauth app]\n" OAUTH_REST LOC_APP TRIG, LOAD, 3,
     "missing required key 'client_id' in [oauth app]", NULL},
    {"oauth: client_secret file 0644",
     ENGINE OAUTH_HEAD "client_secret = file:tok_loose\nscopes = contacts.readonly\n" LOC_APP
         TRIG,
     LOAD, 5, "tok_loose' are too open; run: chmod 600 ", NULL},
    {"oauth: client_secret file missing",
     ENGINE OAUTH_HEAD "client_secret = file:sec_nope\nscopes = contacts.readonly\n" LOC_APP TRIG,
     LOAD, 5, "client_secret file '", NULL},
    {"oauth: client_secret env unset",
     ENGINE OAUTH_HEAD "client_secret = env:POLLEN_TEST_UNSET\nscopes = contacts.readonly\n"
         LOC_APP TRIG,
     LOAD, 5, "environment variable POLLEN_TEST_UNSET is not set", NULL},
    {"oauth: client_secret bad env name",
     ENGINE OAUTH_HEAD "client_secret = env:1X\nscopes = contacts.readonly\n" LOC_APP TRIG, LOAD,
     5, "client_secret = env:VAR needs an environment variable name", NULL},
    {"oauth: client_id with a space",
     ENGINE "[oauth app]\nclient_id = my app\n" OAUTH_REST LOC_APP TRIG, LOAD, 4,
     "client_id must be 1-256 printable ASCII characters without spaces", NULL},
    {"oauth: unknown credential",
     ENGINE OAUTH_APP "[location main]\nid = loc123\noauth = ap\n" TRIG,
     LOAD, 9, "unknown oauth credential 'ap' (no [oauth ap] section); did you mean 'app'?", NULL},
    {"oauth: token and oauth",
     ENGINE OAUTH_APP "[location main]\nid = loc123\ntoken = env:POLLEN_TEST_TOKEN\noauth = app\n"
         TRIG,
     LOAD, 10, "[location main] sets both token (line 9) and oauth; use one", NULL},
    {"oauth: no credential", ENGINE "[location main]\nid = loc123\n" TRIG, LOAD, 3,
     "[location main] needs a credential: token = env:VAR or file:PATH", NULL},
    {"oauth: bad user_type", ENGINE OAUTH_APP "user_type = Agency\n" LOC_APP TRIG, LOAD, 7,
     "bad value 'Agency' for 'user_type' (allowed: Location Company)", NULL},
    {"oauth: redirect_uri to a public http host",
     ENGINE OAUTH_APP "redirect_uri = http://example.com/cb\n" LOC_APP TRIG, LOAD, 7,
     "redirect_uri must use https:// (http:// is allowed only for 127.0.0.1, localhost and "
     "[::1])",
     NULL},
    {"oauth: redirect_uri without a port",
     ENGINE OAUTH_APP "redirect_uri = http://127.0.0.1/callback\n" LOC_APP TRIG, LOAD, 7,
     "redirect_uri on a loopback host needs a port and a path", NULL},
    {"oauth: redirect_uri without a path",
     ENGINE OAUTH_APP "redirect_uri = http://localhost:8976\n" LOC_APP TRIG, LOAD, 7,
     "redirect_uri on a loopback host needs a port and a path", NULL},
    {"oauth: redirect_uri with a query",
     ENGINE OAUTH_APP "redirect_uri = https://app.example.com/cb?x=1\n" LOC_APP TRIG, LOAD, 7,
     "redirect_uri must not contain spaces, credentials (@), a query (?) or a fragment (#)", NULL},
    {"oauth: redirect_uri port out of range",
     ENGINE OAUTH_APP "redirect_uri = http://[::1]:70000/cb\n" LOC_APP TRIG, LOAD, 7,
     "redirect_uri has a bad port", NULL},
    {"oauth: authorize_url over http",
     ENGINE OAUTH_APP "authorize_url = http://marketplace.example.com/x\n" LOC_APP TRIG, LOAD, 7,
     "authorize_url must use https://", NULL},
    {"oauth: unknown key", ENGINE OAUTH_APP "scope = contacts.readonly\n" LOC_APP TRIG, LOAD, 7,
     "unknown key 'scope' in [oauth app]; did you mean 'scopes'?", NULL},
    {"oauth: refresh_margin range", ENGINE OAUTH_APP "refresh_margin = 5s\n" LOC_APP TRIG, LOAD, 7,
     "refresh_margin = 5s is out of range (allowed 10s..12h)", NULL},
    {"oauth: bad scope",
     ENGINE OAUTH_HEAD "client_secret = env:POLLEN_TEST_SECRET\n"
                       "scopes = contacts.readonly contacts:write\n" LOC_APP TRIG,
     LOAD, 6, "scopes: bad scope 'contacts:write'", NULL},
    {"oauth: Location credential on two locations",
     ENGINE OAUTH_APP LOC_APP "[location b]\nid = other1\noauth = app\n" TRIG "location = main\n",
     LOAD, 12,
     "[oauth app] is a Location credential (one sub-account) and is already used by "
     "[location main] (line 7)",
     NULL},
    {"oauth: shared token_store",
     ENGINE OAUTH_APP "token_store = s.json\n"
                      "[oauth b]\nclient_id = y\nclient_secret = env:POLLEN_TEST_SECRET\n"
                      "scopes = contacts.readonly\ntoken_store = s.json\n" LOC_APP TRIG,
     LOAD, 12, "is also the token store of [oauth app] (line 3); each credential needs its own",
     NULL},
    {"oauth: section without a name", ENGINE "[oauth]\n" OAUTH_REST LOC TRIG, LOAD, 3,
     "[oauth] needs a name: [oauth NAME]", NULL},
    /* Scopes, at resolve. */
    {"scope: trigger scope not among the configured scopes",
     ENGINE OAUTH_HEAD "client_secret = env:POLLEN_TEST_SECRET\nscopes = contacts.write\n" LOC_APP
         TRIG,
     RESOLVE, 10,
     "trigger 'contacts' needs scope contacts.readonly, which credential 'app' was not granted "
     "(granted: contacts.write, as configured; not logged in yet); add contacts.readonly to "
     "scopes in [oauth app]",
     NULL},
    {"scope: rule scope not granted by the token store",
     ENGINE OAUTH_APP "token_store = store_narrow.json\n" LOC_APP TRIG
         "[rule r]\non = contacts:created\n" TASK_DO TASK_KEYS "completed = false\n",
     RESOLVE, 13,
     "rule 'r' needs scope contacts.write, which credential 'app' was not granted (granted: "
     "contacts.readonly); add contacts.write to scopes in [oauth app] and run pollen auth "
     "login again",
     NULL},
    {"scope: token store too open",
     ENGINE OAUTH_APP "token_store = store_loose.json\n" LOC_APP TRIG,
     RESOLVE, 3, "store_loose.json' are too open; run: chmod 600 ", NULL},
    {"scope: token store is a symbolic link",
     ENGINE OAUTH_APP "token_store = store_link.json\n" LOC_APP TRIG, RESOLVE, 3,
     "store_link.json' is a symbolic link; point token_store at the real file", NULL},
    {"scope: agency credential, every location",
     ENGINE AGENCY AGENCY_LOCS "[trigger all]\nuse = contacts.search\nlocation = *\n", RESOLVE, 14,
     "trigger 'all' needs scope contacts.readonly, which credential 'agency' was not granted",
     NULL},
    /* location = * */
    {"star: no location", ENGINE "[trigger t]\nuse = contacts.search\nlocation = *\n", LOAD, 5,
     "location = * runs [trigger t] for every [location], but there is none", NULL},
    {"star: for_each to a one-location trigger",
     ENGINE LOCS_AB "[trigger contacts]\nuse = contacts.search\nlocation = main\n"
                    "[trigger tasks]\nuse = contacts.tasks\nlocation = *\nfor_each = contacts\n",
     LOAD, 15,
     "for_each: [trigger contacts] polls one location, but [trigger tasks] runs for every "
     "location (location = *)",
     NULL},
    {"star: rule mixes every-location and one-location triggers",
     ENGINE LOCS_AB "[trigger all]\nuse = contacts.search\nlocation = *\n"
                    "[trigger one]\nuse = contacts.search\nlocation = main\n"
                    "[rule r]\non = all:created one:created\n" TASK_OK,
     LOAD, 16,
     "on: [trigger all] runs for every location (location = *), but [trigger one] polls only "
     "'main'",
     NULL},
    {"star: rule on a type the trigger does not emit",
     ENGINE LOCS_AB "[trigger all]\nuse = contacts.search\nlocation = *\nemit = created\n"
                    "[rule r]\non = all:deleted\n" TASK_OK,
     LOAD, 14, "on: [trigger all] does not emit deleted events (emit = created)", NULL},
    {"star: unknown trigger in on suggests the section name",
     ENGINE LOCS_AB "[trigger contacts]\nuse = contacts.search\nlocation = *\n"
                    "[rule r]\non = contact:created\n" TASK_OK,
     LOAD, 13, "on: no [trigger contact]; did you mean 'contacts'?", NULL},
    {"star: missing parameter named by the section",
     ENGINE LOCS_AB "[trigger one]\nuse = contacts.get\nlocation = *\n", RESOLVE, 9,
     "[trigger one] is missing parameter 'contactId' (required by contacts.get)", NULL},
    {"star: unknown for_each",
     ENGINE LOCS_AB "[trigger contacts]\nuse = contacts.search\nlocation = *\n"
                    "[trigger tasks]\nuse = contacts.tasks\nlocation = *\nfor_each = contcts\n",
     RESOLVE, 15, "for_each: no [trigger contcts]; did you mean 'contacts'?", NULL},
    {"star: for_each cycle named by sections",
     ENGINE LOCS_AB "[trigger a]\nuse = contacts.tasks\nlocation = *\nfor_each = b\n"
                    "[trigger b]\nuse = contacts.notes\nlocation = *\nfor_each = a\n",
     RESOLVE, 12, "for_each cycle: a -> b -> a", NULL},
    {"star: location = * is not a name", BASE "location = **\n", LOAD, 8,
     "bad value '**' for 'location'", NULL},
};

/* Runs one case with the config file at mode. */
static void run_bad_case_mode(const struct bad_case *c, mode_t mode)
{
    write_file(case_file, c->text, strlen(c->text), mode);
    struct ini_errors errs = {0};
    struct config *cfg = (struct config *)1;
    int rc = config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs);
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
    bool clean = !any_error_contains(&errs, CANARY) && !any_error_contains(&errs, SECRET) &&
                 !any_error_contains(&errs, FILE_SECRET);
    CHECK(clean);
    bool absent = c->absent == NULL || !any_error_contains(&errs, c->absent);
    CHECK(absent);
    if (!ok || !found || !clean || !absent) {
        fprintf(stderr, "  case '%s' (rc %d): want line %d: %s\n", c->name, rc, c->line, c->want);
        dump_errors(&errs);
    }
    ini_errors_free(&errs);
}

static void run_bad_case(const struct bad_case *c)
{
    run_bad_case_mode(c, 0600);
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
    for (size_t i = 0; i < ARRAY_SIZE(oauth_cases); i++) {
        run_bad_case(&oauth_cases[i]);
    }
    for (size_t i = 0; i < ARRAY_SIZE(api_cases); i++) {
        run_bad_case(&api_cases[i]);
    }
    for (size_t i = 0; i < ARRAY_SIZE(literal_secret_cases); i++) {
        run_bad_case_mode(&literal_secret_cases[i].c, literal_secret_cases[i].mode);
    }
    CHECK(ARRAY_SIZE(oauth_cases) + ARRAY_SIZE(literal_secret_cases) >= 15);
}

/* A NUL byte cannot live in a C string table. */
static void test_nul_byte(void)
{
    static const char text[] = BASE "every = 5m\0x\n";
    write_file(case_file, text, sizeof(text) - 1, 0600);
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), -EINVAL);
    CHECK(has_error(&errs, 8, "NUL byte in line"));
    ini_errors_free(&errs);
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
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), -EINVAL);
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
    ini_errors_free(&errs);
}

static void test_unreadable(void)
{
    struct ini_errors errs = {0};
    struct config *cfg = (struct config *)1;
    char *path = xasprintf("%s/does-not-exist.ini", case_dir);
    CHECK_INT(config_load(path, 0, sink_rule_kinds(), &cfg, &errs), -ENOENT);
    CHECK(cfg == NULL);
    CHECK_INT(errs.count, 1);
    CHECK(errs.count == 1 && strstr(errs.items[0], "cannot read: No such file") != NULL);
    ini_errors_free(&errs);
    free(path);
}

/* ------------------------------------------------------------------------ */
/* Good configurations                                                       */

/* [company NAME] (M15): an agency trigger polls it; it is no location (the
 * single [location] is still the default one, location = * skips it). */
static void test_company_section(void)
{
    write_config(ENGINE LOC COMPANY "[trigger s]\nuse = snapshots.list\ncompany = agency\n"
                 "[trigger c]\nuse = contacts.search\n[trigger all]\nuse = contacts.list\n"
                 "location = *\n");
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg == NULL) {
        ini_errors_free(&errs);
        return;
    }
    CHECK_INT(cfg->nlocations, 2);
    CHECK(cfg->locations[1].is_company && !cfg->locations[0].is_company);
    CHECK_STR(cfg->locations[1].company_id, "comp1");
    CHECK(config_find_location(cfg, "agency") == NULL);
    CHECK_INT(cfg->ntriggers, 3);
    const struct config_trigger *s = config_find_trigger(cfg, "s");
    CHECK(s != NULL && s->location == &cfg->locations[1]);
    const struct config_trigger *c = config_find_trigger(cfg, "c");
    CHECK(c != NULL && c->location == &cfg->locations[0]);
    CHECK(config_find_trigger(cfg, "all@main") != NULL);
    CHECK(config_find_trigger(cfg, "all@agency") == NULL);
    CHECK_INT(config_resolve(cfg, catalog, &errs), 0);
    dump_errors(&errs);
    config_free(cfg);
    ini_errors_free(&errs);
}

/* [location] company_id satisfies a {company} trigger on a static token (M3). */
static void test_company_id(void)
{
    write_config(ENGINE LOC "company_id = sbxCompany0000000001\n"
                            "[trigger users]\nuse = users.search\n");
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg == NULL) {
        ini_errors_free(&errs);
        return;
    }
    CHECK_STR(cfg->locations[0].company_id, "sbxCompany0000000001");
    CHECK_INT(config_resolve(cfg, catalog, &errs), 0);
    dump_errors(&errs);
    config_free(cfg);
    ini_errors_free(&errs);
    /* Without the key: no company (the default). */
    write_config(BASE);
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), 0);
    CHECK(cfg != NULL && cfg->locations[0].company_id == NULL);
    config_free(cfg);
    ini_errors_free(&errs);
}

static void test_defaults(void)
{
    write_config(BASE);
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg == NULL) {
        ini_errors_free(&errs);
        return;
    }
    char *state = xasprintf("%s/state", case_dir);
    CHECK_STR(cfg->path, case_file);
    CHECK_STR(cfg->dir, case_dir);
    CHECK_STR(cfg->state_dir, state);
    free(state);
    CHECK_INT(cfg->min_interval_ms, 60000);
    CHECK_INT(cfg->log_level, LOG_INFO);
    CHECK_INT(cfg->log_format, LOG_FORMAT_TEXT);
    CHECK_STR(cfg->catalog_dir, paths_catalog_dir());
    /* A test program runs outside the build root and no catalog is installed
     * next to it: the compiled-in one (paths.h). */
    CHECK_STR(paths_catalog_dir(), POLLEN_CATALOG_DIR);
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
        CHECK_INT(t->emit, EVENT_TYPE_CREATED | EVENT_TYPE_UPDATED | EVENT_TYPE_DELETED);
        CHECK(!t->first_poll_emit);
        CHECK(t->fields == NULL && t->ignore == NULL && t->for_each == NULL);
        CHECK_INT(t->page_size, 0);
        CHECK(t->reconcile_ms == 0 && t->reconcile_line == 0); /* config_resolve's default */
        CHECK(t->watermark_lag_ms == 120000);
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
    ini_errors_free(&errs);
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
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), 0);
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
    CHECK_INT(all->emit, EVENT_TYPE_CREATED | EVENT_TYPE_DELETED);
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
    ini_errors_free(&errs);
    unlink(tok);
    unlink(ca);
    free(tok);
    free(ca);
}

/* Defaults that depend on other keys, and one-word edge cases. */
static void test_derived(void)
{
    write_config("[engine]\nstate_dir = /abs/state\nmin_interval = 10m\n" LOC TRIG);
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg != NULL && cfg->ntriggers == 1) {
        CHECK_STR(cfg->state_dir, "/abs/state");
        /* every defaults to 5m, but never below min_interval. */
        CHECK_INT(cfg->triggers[0].every_ms, 10 * 60000);
    }
    config_free(cfg);
    ini_errors_free(&errs);

    /* Secrets skipped: no variable or file is read, the syntax is checked. */
    write_config(ENGINE "[location main]\nid = loc123\ntoken = env:POLLEN_TEST_UNSET\n"
                        "[location two]\nid = loc456\ntoken = file:no-such-file\n" TRIG
                        "location = main\n");
    CHECK_INT(config_load(case_file, CONFIG_SKIP_SECRETS, sink_rule_kinds(), &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg != NULL && cfg->nlocations == 2) {
        CHECK(cfg->locations[0].token == NULL && cfg->locations[1].token == NULL);
    }
    config_free(cfg);
    ini_errors_free(&errs);
    write_config(ENGINE "[location main]\nid = loc123\ntoken = " CANARY "\n" TRIG);
    CHECK_INT(config_load(case_file, CONFIG_SKIP_SECRETS, sink_rule_kinds(), &cfg, &errs),
              -EINVAL);
    CHECK(has_error(&errs, 5, "never the token itself"));
    CHECK(!any_error_contains(&errs, CANARY));
    ini_errors_free(&errs);

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
        CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), 0);
        dump_errors(&errs);
        if (cfg != NULL) {
            CHECK_STR(cfg->base_url, urls[i][1]);
        }
        config_free(cfg);
        ini_errors_free(&errs);
    }
    static const char *const bad_urls[] = {
        "http://localhost.evil.com", "http://127.0.0.1.nip.io", "https://", "https://u:p@h",
        "https://h?x=1", "https://h:abc", "http://[::2]",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad_urls); i++) {
        char *text = xasprintf(BASE "[api]\nbase_url = %s\n", bad_urls[i]);
        write_config(text);
        free(text);
        CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), -EINVAL);
        CHECK(has_error(&errs, 9, "base_url"));
        ini_errors_free(&errs);
    }
}

/* The shipped reference configuration is valid (secrets not read). */
static void test_reference(void)
{
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(SOURCE_ROOT "/conf/pollen.ini", CONFIG_SKIP_SECRETS, sink_rule_kinds(),
                          &cfg, &errs),
              0);
    dump_errors(&errs);
    if (cfg != NULL) {
        CHECK_INT(config_resolve(cfg, catalog, &errs), 0);
        dump_errors(&errs);
        CHECK(cfg->ntriggers >= 1);
    }
    config_free(cfg);
    ini_errors_free(&errs);
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
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg == NULL) {
        ini_errors_free(&errs);
        return;
    }
    CHECK_INT(cfg->nrules, 7);
    if (cfg->nrules != 7) {
        goto out;
    }
    const struct config_trigger *contacts = config_find_trigger(cfg, "contacts");
    const struct config_trigger *tasks = config_find_trigger(cfg, "tasks");
    const unsigned all = EVENT_TYPE_CREATED | EVENT_TYPE_UPDATED | EVENT_TYPE_DELETED;

    const struct config_rule *v = &cfg->rules[0];
    CHECK_STR(v->name, "vip-task");
    CHECK_INT(v->line, 12);
    CHECK_INT(v->non, 2);
    if (v->non == 2) {
        CHECK_STR(v->on[0].trigger, "contacts");
        CHECK(v->on[0].resolved == contacts);
        CHECK_INT(v->on[0].types, EVENT_TYPE_CREATED | EVENT_TYPE_UPDATED);
        CHECK_STR(v->on[1].trigger, "tasks");
        CHECK(v->on[1].resolved == tasks);
        CHECK_INT(v->on[1].types, all);
    }
    CHECK_STR(v->when, "record.tags contains \"vip\"");
    CHECK_INT(v->when_line, 14);
    CHECK(v->cond != NULL);
    CHECK_STR(v->action, "contacts.tasks.create");
    CHECK_INT(v->do_line, 15);
    CHECK(v->kind == &config_rule_catalog);
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
    CHECK(v->sink_conf == NULL); /* no url, method, headers, command or args */

    const struct config_rule *c = &cfg->rules[1];
    CHECK(c->confirm);
    CHECK(c->when == NULL && c->cond == NULL && c->when_line == 0);
    CHECK_INT(c->max_attempts, 8);
    CHECK_INT(c->backoff_ms, 5000);
    CHECK_INT(c->backoff_max_ms, 15 * 60000);
    CHECK(c->non == 1 && c->on[0].types == EVENT_TYPE_DELETED);

    const struct config_rule *h = &cfg->rules[2];
    const struct sink_http_conf *hc = h->sink_conf;
    CHECK(h->kind == &sink_http_rule_kind && hc != NULL);
    CHECK_STR(h->action, "http");
    CHECK(hc->url != NULL && !template_is_literal(hc->url));
    CHECK_STR(hc->method, "PUT");
    CHECK_INT(h->timeout_ms, 10000);
    CHECK_INT(hc->nheaders, 2);
    if (hc->nheaders == 2) {
        CHECK_STR(hc->headers[0].name, "X-Token");
        CHECK_STR(hc->headers[0].value, "abc");
        CHECK_INT(hc->headers[0].line, 34);
        CHECK(hc->headers[0].tmpl != NULL && template_is_literal(hc->headers[0].tmpl));
        CHECK_STR(hc->headers[1].name, "X-Trace");
        CHECK(hc->headers[1].tmpl != NULL && template_uses_root(hc->headers[1].tmpl, "event"));
    }
    CHECK_INT(h->nparams, 0); /* body.NAME members are the kind's */
    CHECK_INT(hc->nbody, 2);
    if (hc->nbody == 2) {
        CHECK_STR(hc->body[0].name, "name");
        CHECK_STR(hc->body[1].name, "tags");
        CHECK_INT(hc->body[1].line, 37);
    }
    CHECK(h->non == 1 && h->on[0].types == all);

    const struct config_rule *l = &cfg->rules[3];
    const struct sink_http_conf *lc = l->sink_conf;
    CHECK(l->kind == &sink_http_rule_kind && lc != NULL);
    CHECK_STR(lc->method, "POST");
    CHECK_INT(l->timeout_ms, 30000);
    CHECK(l->cond != NULL && condition_uses_changes(l->cond));
    CHECK_INT(lc->nbody, 0);

    const struct config_rule *x = &cfg->rules[4];
    const struct sink_exec_conf *xc = x->sink_conf;
    CHECK(x->kind == &sink_exec_rule_kind && xc != NULL);
    CHECK_STR(xc->command, "/bin/true");
    CHECK_INT(x->timeout_ms, 30000);
    CHECK_INT(xc->nargs, 4);
    if (xc->nargs == 4) {
        CHECK(xc->args[0] != NULL && template_is_literal(xc->args[0]));
        CHECK(xc->args[1] != NULL && template_uses_root(xc->args[1], "record"));
        /* The quoted default's space did not split the word. */
        CHECK(xc->args[2] != NULL && !template_is_literal(xc->args[2]));
        CHECK(xc->args[3] != NULL && template_is_literal(xc->args[3]));
    }
    CHECK(x->location == &cfg->locations[0]);

    const struct config_rule *t = &cfg->rules[5];
    CHECK_INT(t->non, 1); /* a repeated TRIGGER:TYPE is merged */
    CHECK(t->non == 1 && t->on[0].types == EVENT_TYPE_CREATED);

    /* Matching is by trigger and type. */
    CHECK(config_rule_matches(v, contacts, EVENT_TYPE_CREATED));
    CHECK(config_rule_matches(v, contacts, EVENT_TYPE_UPDATED));
    CHECK(!config_rule_matches(v, contacts, EVENT_TYPE_DELETED));
    CHECK(config_rule_matches(v, tasks, EVENT_TYPE_DELETED));
    CHECK(!config_rule_matches(l, tasks, EVENT_TYPE_UPDATED));
    CHECK(!config_rule_matches(l, contacts, EVENT_TYPE_CREATED));
    CHECK(!config_rule_matches(NULL, contacts, EVENT_TYPE_CREATED));
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
    ini_errors_free(&errs);
}

/*
 * The rule examples of conf/pollen.ini are commented out; uncommented (each
 * line of the block starting with ';' then a non-blank, non-';' character
 * loses the ';'), they must load and resolve as they are.
 */
/* Writes conf/pollen.ini to case_file with the block between the two
 * markers uncommented; returns the number of lines uncommented (0 if the
 * markers are missing). */
static size_t write_uncommented(const char *begin_marker, const char *end_marker)
{
    char *text = NULL;
    size_t len = 0;
    CHECK_INT(util_read_file(SOURCE_ROOT "/conf/pollen.ini", 1 << 20, &text, &len), 0);
    if (text == NULL) {
        return 0;
    }
    const char *begin = strstr(text, begin_marker);
    const char *end = begin != NULL ? strstr(begin, end_marker) : NULL;
    CHECK(begin != NULL && end != NULL);
    if (begin == NULL || end == NULL) {
        free(text);
        return 0;
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
    return uncommented;
}

static void test_reference_rules(void)
{
    size_t uncommented = write_uncommented("; --- rule examples", "; --- end of rule examples");
    CHECK(uncommented >= 30);

    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, CONFIG_SKIP_SECRETS, sink_rule_kinds(), &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg != NULL) {
        CHECK_INT(cfg->nrules, 5);
        CHECK_INT(config_resolve(cfg, catalog, &errs), 0);
        dump_errors(&errs);
        const struct config_rule *r = config_find_rule(cfg, "vip-follow-up");
        CHECK(r != NULL && r->def == catalog_find_action(catalog, "contacts.tasks.create"));
        r = config_find_rule(cfg, "to-crm");
        const struct sink_http_conf *hc = r != NULL ? r->sink_conf : NULL;
        CHECK(r != NULL && r->kind == &sink_http_rule_kind && hc->nbody == 3 &&
              hc->nheaders == 1);
        r = config_find_rule(cfg, "log-tasks");
        const struct sink_exec_conf *xc = r != NULL ? r->sink_conf : NULL;
        CHECK(r != NULL && r->kind == &sink_exec_rule_kind && xc->nargs == 2);
    }
    config_free(cfg);
    ini_errors_free(&errs);
}

/* The oauth and `location = *` examples of conf/pollen.ini. */
static void test_reference_oauth(void)
{
    size_t uncommented =
        write_uncommented("; --- oauth examples", "; --- end of oauth examples");
    CHECK(uncommented >= 30);
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, CONFIG_SKIP_SECRETS, sink_rule_kinds(), &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg == NULL) {
        ini_errors_free(&errs);
        return;
    }
    CHECK_INT(cfg->noauths, 2);
    CHECK_INT(cfg->nlocations, 4);
    /* new-contacts, contact-tasks, then 4 + 4 expansions. */
    CHECK_INT(cfg->ntriggers, 10);
    CHECK(config_find_trigger(cfg, "every-contact@west") != NULL);
    CHECK(config_find_trigger(cfg, "every-task@shop") != NULL);
    const struct config_location *east = config_find_location(cfg, "east");
    CHECK(east != NULL && east->oauth == config_find_oauth(cfg, "agency"));
    CHECK(east != NULL && east->token == NULL);
    const struct config_oauth *app = config_find_oauth(cfg, "my-app");
    CHECK(app != NULL && app->client_secret == NULL); /* env: not read */
    if (app != NULL) {
        CHECK_STR(app->client_id, "64f8a1b2c3d4e5f6a7b8c9d0-lm1abc2d");
        CHECK_STR(app->user_type, "Location");
        CHECK_INT(app->refresh_margin_ms, 300000);
    }
    const struct config_rule *r = config_find_rule(cfg, "tag-everywhere");
    CHECK(r != NULL && r->location == NULL && r->non == 4);
    CHECK_INT(config_resolve(cfg, catalog, &errs), 0);
    dump_errors(&errs);
    const struct config_trigger *t = config_find_trigger(cfg, "every-task@east");
    CHECK(t != NULL && t->parent == config_find_trigger(cfg, "every-contact@east"));
    config_free(cfg);
    ini_errors_free(&errs);
}

/* [oauth] sections with every key, defaults, a literal secret in a private
 * file, a secret file, env client_id; locations using them. */
static void test_oauth(void)
{
    static const char text[] =
        "[engine]\n"                                                            /* 1 */
        "state_dir = state\n"                                                   /* 2 */
        "[oauth app]\n"                                                         /* 3 */
        "client_id = env:POLLEN_TEST_CLIENT_ID\n"                               /* 4 */
        "client_secret = " SECRET "\n"                                          /* 5 */
        "scopes = contacts.readonly contacts.write contacts.readonly\n"         /* 6 */
        "redirect_uri = https://app.example.com/oauth/cb\n"                     /* 7 */
        "user_type = Location\n"                                                /* 8 */
        "token_store = tokens/app.json\n"                                       /* 9 */
        "authorize_url = https://marketplace.leadconnectorhq.com/v2/oauth/x\n"  /* 10 */
        "refresh_margin = 10m\n"                                                /* 11 */
        "[oauth agency]\n"                                                      /* 12 */
        "client_id = agency-client\n"                                           /* 13 */
        "client_secret = file:sec_good\n"                                       /* 14 */
        "scopes = contacts.readonly\n"                                          /* 15 */
        "    contacts.write oauth.write\n"                                      /* 16 */
        "user_type = Company\n"                                                 /* 17 */
        "[location shop]\n"                                                     /* 18 */
        "id = shop1\n"                                                          /* 19 */
        "oauth = app\n"                                                         /* 20 */
        "[location east]\n"                                                     /* 21 */
        "id = east1\n"                                                          /* 22 */
        "oauth = agency\n"                                                      /* 23 */
        "[location west]\n"                                                     /* 24 */
        "id = west1\n"                                                          /* 25 */
        "oauth = agency\n"                                                      /* 26 */
        "[location static]\n"                                                   /* 27 */
        "id = static1\n"                                                        /* 28 */
        "token = env:POLLEN_TEST_TOKEN\n"                                       /* 29 */
        "[trigger contacts]\n"                                                  /* 30 */
        "use = contacts.search\n"                                               /* 31 */
        "location = *\n";                                                       /* 32 */
    write_config(text);
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg == NULL) {
        ini_errors_free(&errs);
        return;
    }
    CHECK_INT(cfg->noauths, 2);
    CHECK_INT(cfg->nlocations, 4);
    if (cfg->noauths != 2 || cfg->nlocations != 4) {
        goto out;
    }
    const struct config_oauth *app = &cfg->oauths[0];
    CHECK_STR(app->name, "app");
    CHECK_INT(app->line, 3);
    CHECK_STR(app->client_id, "env-client-9");
    CHECK_STR(app->client_secret, SECRET);
    CHECK_INT(strv_len(app->scopes), 2); /* the repeated scope is dropped */
    CHECK(strv_contains(app->scopes, "contacts.readonly") &&
          strv_contains(app->scopes, "contacts.write"));
    CHECK_STR(app->redirect_uri, "https://app.example.com/oauth/cb");
    CHECK_STR(app->user_type, "Location");
    char *want = xasprintf("%s/tokens/app.json", case_dir);
    CHECK_STR(app->token_store, want);
    free(want);
    CHECK_STR(app->authorize_url, "https://marketplace.leadconnectorhq.com/v2/oauth/x");
    CHECK_INT(app->refresh_margin_ms, 600000);

    const struct config_oauth *agency = &cfg->oauths[1];
    CHECK_STR(agency->client_id, "agency-client");
    CHECK_STR(agency->client_secret, FILE_SECRET); /* trailing newline trimmed */
    CHECK_INT(strv_len(agency->scopes), 3);
    CHECK_STR(agency->user_type, "Company");
    CHECK_STR(agency->redirect_uri, "http://127.0.0.1:8976/callback");
    CHECK_STR(agency->authorize_url, "https://marketplace.gohighlevel.com/v2/oauth/chooselocation");
    want = xasprintf("%s/state/oauth-agency.json", case_dir);
    CHECK_STR(agency->token_store, want);
    free(want);
    CHECK_INT(agency->refresh_margin_ms, 300000);
    CHECK(config_find_oauth(cfg, "agency") == agency);
    CHECK(config_find_oauth(cfg, "nope") == NULL);

    const struct config_location *shop = &cfg->locations[0];
    CHECK_STR(shop->oauth_name, "app");
    CHECK(shop->oauth == app && shop->token == NULL);
    CHECK(cfg->locations[1].oauth == agency && cfg->locations[2].oauth == agency);
    const struct config_location *st = &cfg->locations[3];
    CHECK(st->oauth == NULL && st->oauth_name == NULL);
    CHECK_STR(st->token, CANARY);

    /* One trigger per location. */
    CHECK_INT(cfg->ntriggers, 4);
    static const char *const names[] = {"contacts@shop", "contacts@east", "contacts@west",
                                        "contacts@static"};
    for (size_t i = 0; i < cfg->ntriggers && i < ARRAY_SIZE(names); i++) {
        CHECK_STR(cfg->triggers[i].name, names[i]);
        CHECK(cfg->triggers[i].location == &cfg->locations[i]);
    }

    /* Both client secrets are registered for redaction. */
    char red[128];
    log_redact("a=" SECRET " b=" FILE_SECRET, red, sizeof(red));
    CHECK_STR(red, "a=[REDACTED] b=[REDACTED]");

    /* No token store yet: the configured scopes cover contacts.search. */
    CHECK_INT(config_resolve(cfg, catalog, &errs), 0);
    dump_errors(&errs);
out:
    config_free(cfg);
    ini_errors_free(&errs);

    /* Secrets skipped: env and file values are not read, literals kept
     * only when they are not secret; the file's permissions still count. */
    CHECK_INT(config_load(case_file, CONFIG_SKIP_SECRETS, sink_rule_kinds(), &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg != NULL && cfg->noauths == 2) {
        CHECK(cfg->oauths[0].client_id == NULL && cfg->oauths[0].client_secret == NULL);
        CHECK_STR(cfg->oauths[1].client_id, "agency-client");
        CHECK(cfg->oauths[1].client_secret == NULL);
    }
    config_free(cfg);
    ini_errors_free(&errs);
    write_file(case_file, text, strlen(text), 0604);
    CHECK_INT(config_load(case_file, CONFIG_SKIP_SECRETS, sink_rule_kinds(), &cfg, &errs),
              -EINVAL);
    CHECK(has_error(&errs, 5, "permissions 0604 for '"));
    CHECK(!any_error_contains(&errs, SECRET));
    ini_errors_free(&errs);
}

/* A token store that grants more than configured: the store counts. */
static void test_scope_from_store(void)
{
    static const char store[] = "{\"version\":1,\"access_token\":\"a\",\"refresh_token\":\"r\","
                                "\"scope\":\"contacts.readonly contacts.write\"}";
    char *path = xasprintf("%s/store_wide.json", case_dir);
    write_file(path, store, strlen(store), 0600);
    free(path);
    write_config(ENGINE "[oauth app]\nclient_id = x\nclient_secret = env:POLLEN_TEST_SECRET\n"
                        "scopes = contacts.readonly\ntoken_store = store_wide.json\n" LOC_APP
                        TRIG "[rule r]\non = contacts:created\n" TASK_OK);
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg != NULL) {
        CHECK_INT(config_resolve(cfg, catalog, &errs), 0);
        dump_errors(&errs);
        CHECK(cfg->nrules == 1 && cfg->rules[0].def != NULL);
    }
    config_free(cfg);
    ini_errors_free(&errs);

    /* A static token is never checked, whatever the rule needs. */
    write_config(BASE "[rule r]\non = contacts:created\n" TASK_OK);
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), 0);
    if (cfg != NULL) {
        CHECK_INT(config_resolve(cfg, catalog, &errs), 0);
        dump_errors(&errs);
    }
    config_free(cfg);
    ini_errors_free(&errs);
}

/* location = *: names, copies, for_each binding, rules, config_rule_location. */
static void test_every_location(void)
{
    write_config("[engine]\n"                      /* 1 */
                 "state_dir = state\n"             /* 2 */
                 "[location a]\n"                  /* 3 */
                 "id = aaa1\n"                     /* 4 */
                 "token = env:POLLEN_TEST_TOKEN\n" /* 5 */
                 "[location b]\n"                  /* 6 */
                 "id = bbb2\n"                     /* 7 */
                 "token = env:POLLEN_TEST_TOKEN\n" /* 8 */
                 "[trigger contacts]\n"            /* 9 */
                 "use = contacts.search\n"         /* 10 */
                 "location = *\n"                  /* 11 */
                 "fields = email phone\n"          /* 12 */
                 "query = smith\n"                 /* 13 */
                 "[trigger tasks]\n"               /* 14 */
                 "use = contacts.tasks\n"          /* 15 */
                 "location = *\n"                  /* 16 */
                 "for_each = contacts\n"           /* 17 */
                 "emit = created updated\n"        /* 18 */
                 "[trigger b-tasks]\n"             /* 19 */
                 "use = contacts.tasks\n"          /* 20 */
                 "location = b\n"                  /* 21 */
                 "for_each = contacts\n"           /* 22 */
                 "[rule everywhere]\n"             /* 23 */
                 "on = contacts:created tasks:*\n" /* 24 */
                 "do = contacts.tags.add\n"        /* 25 */
                 "contactId = {{record.id}}\n"     /* 26 */
                 "tags = seen\n"                   /* 27 */
                 "[rule only-a]\n"                 /* 28 */
                 "on = contacts@a:updated\n"       /* 29 */
                 "do = http\n"                     /* 30 */
                 "url = https://h.example/x\n");   /* 31 */
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg == NULL) {
        ini_errors_free(&errs);
        return;
    }
    CHECK_INT(cfg->ntriggers, 5);
    CHECK_INT(cfg->nrules, 2);
    if (cfg->ntriggers != 5 || cfg->nrules != 2) {
        goto out;
    }
    const struct config_location *a = &cfg->locations[0];
    const struct config_location *b = &cfg->locations[1];
    static const struct {
        const char *name, *base, *location, *for_each;
        int line;
    } want[] = {
        {"contacts@a", "contacts", "a", NULL, 9},
        {"contacts@b", "contacts", "b", NULL, 9},
        {"tasks@a", "tasks", "a", "contacts@a", 14},
        {"tasks@b", "tasks", "b", "contacts@b", 14},
        {"b-tasks", NULL, "b", "contacts@b", 19}, /* one location, bound to its own */
    };
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        const struct config_trigger *t = &cfg->triggers[i];
        CHECK_STR(t->name, want[i].name);
        CHECK_STR(t->base, want[i].base);
        CHECK_STR(t->location_name, want[i].location);
        CHECK(t->location == config_find_location(cfg, want[i].location));
        CHECK_STR(t->for_each, want[i].for_each);
        CHECK_INT(t->line, want[i].line);
    }
    const struct config_trigger *ca = &cfg->triggers[0];
    const struct config_trigger *cb = &cfg->triggers[1];
    const struct config_trigger *ta = &cfg->triggers[2];
    const struct config_trigger *tb = &cfg->triggers[3];
    const struct config_trigger *bt = &cfg->triggers[4];
    /* Deep copies: each expansion owns its lists and parameters. */
    CHECK(ca->fields != cb->fields && strv_len(cb->fields) == 2);
    CHECK(ca->nparams == 1 && cb->nparams == 1 && ca->params != cb->params);
    CHECK(cb->nparams == 1 && strcmp(cb->params[0].value, "smith") == 0 &&
          cb->params[0].line == 13);
    CHECK_INT(ca->use_line, 10);
    CHECK_INT(ta->for_each_line, 17);
    CHECK_INT(ta->emit, EVENT_TYPE_CREATED | EVENT_TYPE_UPDATED);
    CHECK(config_find_trigger(cfg, "contacts") == NULL);
    CHECK(config_find_trigger(cfg, "tasks@b") == tb);

    const struct config_rule *ev = &cfg->rules[0];
    CHECK(ev->location == NULL);
    CHECK_INT(ev->non, 4);
    if (ev->non == 4) {
        CHECK_STR(ev->on[0].trigger, "contacts@a");
        CHECK(ev->on[0].resolved == ca && ev->on[0].types == EVENT_TYPE_CREATED);
        CHECK_STR(ev->on[1].trigger, "contacts@b");
        CHECK(ev->on[3].resolved == tb);
    }
    const unsigned all = EVENT_TYPE_CREATED | EVENT_TYPE_UPDATED | EVENT_TYPE_DELETED;
    CHECK(ev->non == 4 && ev->on[2].types == all);
    CHECK(config_rule_matches(ev, ca, EVENT_TYPE_CREATED));
    CHECK(config_rule_matches(ev, cb, EVENT_TYPE_CREATED));
    CHECK(!config_rule_matches(ev, cb, EVENT_TYPE_UPDATED));
    CHECK(config_rule_matches(ev, tb, EVENT_TYPE_DELETED));
    CHECK(!config_rule_matches(ev, bt, EVENT_TYPE_CREATED));
    /* The action runs on the event's location. */
    CHECK(config_rule_location(cfg, ev, "contacts@b") == b);
    CHECK(config_rule_location(cfg, ev, "tasks@a") == a);
    CHECK(config_rule_location(cfg, ev, "b-tasks") == NULL);
    CHECK(config_rule_location(cfg, ev, "nope") == NULL);
    CHECK(config_rule_location(cfg, NULL, "contacts@a") == NULL);

    const struct config_rule *oa = &cfg->rules[1];
    CHECK(oa->location == a);
    CHECK(oa->non == 1 && oa->on[0].resolved == ca);
    CHECK(config_rule_location(cfg, oa, "contacts@a") == a);
    CHECK(config_rule_matches(oa, ca, EVENT_TYPE_UPDATED));
    CHECK(!config_rule_matches(oa, cb, EVENT_TYPE_UPDATED));

    CHECK_INT(config_resolve(cfg, catalog, &errs), 0);
    dump_errors(&errs);
    CHECK(ta->parent == ca && tb->parent == cb && bt->parent == cb);
    CHECK(ca->def != NULL && ca->def == cb->def);
out:
    config_free(cfg);
    ini_errors_free(&errs);
}

/* An error in a `location = *` section is reported once, not per location. */
static void test_every_location_once(void)
{
    static const struct {
        const char *text;
        int line;
        const char *want;
    } cases[] = {
        {ENGINE LOCS_AB "[trigger one]\nuse = contacts.get\nlocation = *\n", 9,
         "[trigger one] is missing parameter 'contactId'"},
        {ENGINE AGENCY AGENCY_LOCS "[trigger all]\nuse = contacts.search\nlocation = *\n"
                                   "[rule r]\non = all:created\n" TASK_OK,
         14, "trigger 'all' needs scope contacts.readonly"},
        {ENGINE LOCS_AB "[trigger t]\nuse = contacts.serch\nlocation = *\n", 10,
         "unknown catalog trigger 'contacts.serch'"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        write_config(cases[i].text);
        struct ini_errors errs = {0};
        struct config *cfg = NULL;
        CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), 0);
        dump_errors(&errs);
        if (cfg == NULL) {
            ini_errors_free(&errs);
            continue;
        }
        CHECK_INT(config_resolve(cfg, catalog, &errs), -EINVAL);
        /* Case 2: the rule needs contacts.write, which the agency has;
         * only the trigger's scope is missing, on both locations. */
        CHECK_INT(errs.count, 1);
        CHECK(has_error(&errs, cases[i].line, cases[i].want));
        if (errs.count != 1) {
            dump_errors(&errs);
        }
        config_free(cfg);
        ini_errors_free(&errs);
    }
}

/* location = * cannot multiply triggers without bound. */
static void test_expansion_limit(void)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    buf_append_str(&b, ENGINE);
    for (int i = 0; i < 101; i++) {
        char *sec = xasprintf("[location l%d]\nid = l%d\ntoken = env:POLLEN_TEST_TOKEN\n", i, i);
        buf_append_str(&b, sec);
        free(sec);
    }
    for (int i = 0; i < 100; i++) {
        char *sec = xasprintf("[trigger t%d]\nuse = contacts.search\nlocation = *\n", i);
        buf_append_str(&b, sec);
        free(sec);
    }
    CHECK(!b.too_big);
    write_config(b.data);
    buf_finish(&b);
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), -EINVAL);
    CHECK(cfg == NULL);
    CHECK(has_error(&errs, 0, "location = * would make 100 triggers x 101 locations; the limit "
                              "is 10000 triggers in all"));
    ini_errors_free(&errs);
}

/*
 * A kind of action config has never heard of: a test's own "null" kind
 * (one required key, one extra key family, its own conf struct) loads
 * through config_load's list alone, with no edit in src/config/; this is
 * all a new sink gives config (sink.h, "Adding a kind").
 */
struct null_conf {
    char *greeting;
    unsigned tags; /* how many tag.NAME keys */
    bool finished;
};
static unsigned null_freed;

static bool null_extra(struct ini_doc *doc, const struct ini_entry *e, struct config_rule *r)
{
    (void)doc;
    struct null_conf *c = r->sink_conf;
    if (strncmp(e->key, "tag.", 4) != 0) {
        return false;
    }
    c->tags++;
    return true;
}

static void null_finish(struct ini_doc *doc, const struct config_rule *r, const int *lines)
{
    struct null_conf *c = r->sink_conf;
    c->finished = true;
    if (c->greeting != NULL && strcmp(c->greeting, "boom") == 0) {
        ini_diag_add(&doc->diag, lines[0], "greeting: boom is refused");
    }
}

static void null_free(void *conf)
{
    struct null_conf *c = conf;
    free(c->greeting);
    null_freed++;
}

static const struct ini_key null_keys[] = {
    {.name = "greeting", .type = INI_KEY_STRING, .offset = offsetof(struct null_conf, greeting),
     .required = true},
};
static const struct config_rule_kind null_kind = {
    .name = "null",
    .keys = null_keys,
    .nkeys = ARRAY_SIZE(null_keys),
    .conf_size = sizeof(struct null_conf),
    .extra = null_extra,
    .finish = null_finish,
    .free_conf = null_free,
};
static const struct config_rule_kind *const null_kinds[] = {&null_kind, NULL};

static void test_own_kind(void)
{
    write_config(BASE                       /* 1-7 */
                 "[rule quiet]\n"           /* 8 */
                 "on = contacts:created\n"  /* 9 */
                 "do = null\n"              /* 10 */
                 "greeting = hello\n"       /* 11 */
                 "tag.a = 1\n"              /* 12 */
                 "tag.b = 2\n"              /* 13 */
                 "max_attempts = 2\n");     /* 14 */
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    null_freed = 0;
    CHECK_INT(config_load(case_file, 0, null_kinds, &cfg, &errs), 0);
    dump_errors(&errs);
    const struct config_rule *r = cfg != NULL ? config_find_rule(cfg, "quiet") : NULL;
    CHECK(r != NULL);
    if (r != NULL) {
        const struct null_conf *c = r->sink_conf;
        CHECK(r->kind == &null_kind && c != NULL);
        CHECK_STR(r->action, "null");
        CHECK_STR(c->greeting, "hello");
        CHECK_INT(c->tags, 2);
        CHECK(c->finished);
        CHECK_INT(r->max_attempts, 2);  /* the common keys still apply */
        CHECK_INT(r->timeout_ms, 0);    /* no `timeout` for this kind */
        CHECK_INT(r->nparams, 0);
    }
    config_free(cfg);
    CHECK_INT(null_freed, 1);
    ini_errors_free(&errs);

    /* Its errors: a missing required key, an unknown key (suggestions come
     * from the common keys and the kind's), the finish hook's own, and `do`
     * listing the kinds it was given. */
    write_config(BASE "[rule quiet]\non = contacts:created\ndo = null\n"  /* 8-10 */
                 "greting = hi\n"                                       /* 11 */
                 "[rule loud]\non = contacts:created\ndo = null\n"      /* 12-14 */
                 "greeting = boom\n"                                    /* 15 */
                 "[rule bad]\non = contacts:created\ndo = n/a\n");      /* 16-18 */
    null_freed = 0;
    CHECK_INT(config_load(case_file, 0, null_kinds, &cfg, &errs), -EINVAL);
    CHECK(cfg == NULL);
    CHECK(has_error(&errs, 8, "missing required key 'greeting' in [rule quiet]"));
    CHECK(has_error(&errs, 11, "unknown key 'greting' in [rule quiet]; did you mean "
                               "'greeting'?"));
    CHECK(has_error(&errs, 15, "greeting: boom is refused"));
    CHECK(has_error(&errs, 18, "bad value 'n/a' for 'do' (a catalog action: see "
                               "`pollen catalog actions`, or null)"));
    CHECK_INT(null_freed, 2); /* partly filled confs are freed too */
    ini_errors_free(&errs);

    /* Without the kind in the list, `do = null` is a catalog action name and
     * greeting a parameter of it (config_resolve would look both up). */
    write_config(BASE "[rule quiet]\non = contacts:created\ndo = null\ngreeting = hi\n");
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), 0);
    dump_errors(&errs);
    r = cfg != NULL ? config_find_rule(cfg, "quiet") : NULL;
    CHECK(r != NULL && r->kind == &config_rule_catalog && r->sink_conf == NULL &&
          r->nparams == 1);
    config_free(cfg);
    ini_errors_free(&errs);
}

static void setup(void)
{
    char *dir = xasprintf("%s/config_cases", test_tmp_root());
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
    p = xasprintf("%s/sec_good", case_dir);
    write_file(p, FILE_SECRET "\n", strlen(FILE_SECRET) + 1, 0600);
    free(p);
    static const char store[] = "{\"version\":1,\"access_token\":\"" CANARY "\","
                                "\"refresh_token\":\"" CANARY "-r\",\"expires_at\":1,"
                                "\"obtained_at\":0,\"scope\":\"contacts.readonly\","
                                "\"userType\":\"Location\",\"locationId\":\"loc123\"}\n";
    p = xasprintf("%s/store_narrow.json", case_dir);
    write_file(p, store, strlen(store), 0600);
    char *link = xasprintf("%s/store_link.json", case_dir);
    unlink(link);
    if (symlink(p, link) != 0) {
        fprintf(stderr, "cannot link %s\n", link);
        exit(99);
    }
    free(link);
    free(p);
    p = xasprintf("%s/store_loose.json", case_dir);
    write_file(p, store, strlen(store), 0644);
    free(p);
    setenv("POLLEN_TEST_TOKEN", CANARY, 1);
    setenv("POLLEN_TEST_SECRET", SECRET, 1);
    setenv("POLLEN_TEST_CLIENT_ID", "env-client-9", 1);
    setenv("POLLEN_TEST_EMPTY", "", 1);
    unsetenv("POLLEN_TEST_UNSET");

    struct ini_errors errs = {0};
    if (catalog_load(SOURCE_ROOT, &config_reserved_keys, &catalog, &errs) != 0) {
        ini_errors_print(&errs, stderr);
        exit(99);
    }
    ini_errors_free(&errs);
}

static void teardown(void)
{
    static const char *const files[] = {
        "pollen.ini",       "tok_loose",        "tok_group",       "tok_2lines", "sec_good",
        "store_narrow.json", "store_loose.json", "store_link.json", "store_wide.json",
    };
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

/* [api NAME] and `api = NAME`: defaults, the trigger's api and definition
 * from the api's own catalog, no location; a file with no [location]. */
static void test_user_api(void)
{
    write_config(ENGINE API API_TRIG "[api other]\nbase_url = https://app.example/v1/\n"
                 "auth = env:POLLEN_TEST_TOKEN\nauth_header = X-Api-Key\nauth_scheme = none\n"
                 "rate_limit = 500\nrate_window = 1s\ntimeout = 5s\ncatalog = " API_CATALOG
                 "\n[api]\ntimeout = 20s\n"
                 "[rule r]\non = c:created\ndo = http\nurl = https://hook.example/x\n");
    struct ini_errors errs = {0};
    struct config *cfg = NULL;
    CHECK_INT(config_load(case_file, 0, sink_rule_kinds(), &cfg, &errs), 0);
    dump_errors(&errs);
    if (cfg == NULL) {
        ini_errors_free(&errs);
        return;
    }
    CHECK_INT(cfg->napis, 2);
    CHECK_INT(cfg->nlocations, 0);
    CHECK_INT(cfg->timeout_ms, 20000); /* [api] is still HighLevel's */
    const struct config_api *app = config_find_api(cfg, "app");
    const struct config_api *other = config_find_api(cfg, "other");
    CHECK(app != NULL && other != NULL && config_find_api(cfg, "nope") == NULL);
    if (app != NULL && other != NULL) {
        CHECK_STR(app->base_url, "http://127.0.0.1:4567");
        CHECK_STR(app->auth, CANARY);
        CHECK_STR(app->auth_header, "Authorization");
        CHECK_STR(app->auth_scheme, "Bearer");
        CHECK_INT(app->rate_limit, 50);
        CHECK_INT(app->rate_window_ms, 10000);
        CHECK_INT(app->timeout_ms, 30000);
        CHECK_STR(app->catalog_dir, API_CATALOG);
        CHECK_STR(other->base_url, "https://app.example/v1");
        CHECK_STR(other->auth_header, "X-Api-Key");
        CHECK_STR(other->auth_scheme, "");
        CHECK_INT(other->rate_limit, 500);
        CHECK_INT(other->rate_window_ms, 1000);
        CHECK_INT(other->timeout_ms, 5000);
    }
    const struct config_trigger *c = config_find_trigger(cfg, "c");
    CHECK(c != NULL && c->api == app && c->location == NULL);
    CHECK(cfg->nrules == 1 && cfg->rules[0].location == NULL); /* an http rule on it is fine */
    CHECK_INT(config_resolve(cfg, catalog, &errs), 0);
    dump_errors(&errs);
    if (c != NULL && app != NULL) {
        CHECK(app->catalog != NULL && c->def != NULL);
        CHECK(c->def == catalog_find_trigger(app->catalog, "customers.list"));
        CHECK(catalog_find_trigger(catalog, "customers.list") == NULL);
        CHECK(c->def != NULL && c->def->version == NULL &&
              c->def->pagination == CATALOG_PAGE_CURSOR);
    }
    config_free(cfg);
    ini_errors_free(&errs);
}

int main(void)
{
    setup();
    test_bad_cases();
    test_nul_byte();
    test_all_errors_sorted();
    test_unreadable();
    test_defaults();
    test_company_id();
    test_company_section();
    test_full();
    test_derived();
    test_reference();
    test_rules();
    test_reference_rules();
    test_oauth();
    test_scope_from_store();
    test_every_location();
    test_every_location_once();
    test_expansion_limit();
    test_reference_oauth();
    test_own_kind();
    test_user_api();
    teardown();
    return test_done("test_config");
}

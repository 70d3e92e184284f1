/*
 * test_catalog: the shipped catalog loads, every definition (trigger and
 * action) matches the HighLevel OpenAPI spec it names, the actions follow
 * the retry and safety policy, and broken definitions are rejected with the
 * right FILE:LINE.
 *
 * The spec is the vendored copy in tests/sandbox/spec/, so the check runs in
 * any clean clone and never skips: a definition whose spec file is missing
 * or not JSON is a failure naming the definition and the file.
 */
#include "catalog.h"
#include "json.h"
#include "config.h"
#include "log.h"
#include "util.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

#ifndef SOURCE_ROOT
#define SOURCE_ROOT "."
#endif

#define SPEC_DIR SOURCE_ROOT "/tests/sandbox/spec/"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(99);
    }
    fputs(text, f);
    fclose(f);
}

static void remove_tree(const char *dir)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", dir);
    }
    free(cmd);
}

/* True if some error starts with "FILE:LINE: " (FILE ending in file) and
 * contains want. */
static bool has_error(const struct ini_errors *e, const char *file, int line, const char *want)
{
    char tag[64];
    snprintf(tag, sizeof(tag), "%s:%d: ", file, line);
    for (size_t i = 0; i < e->count; i++) {
        const char *at = strstr(e->items[i], tag);
        if (at != NULL && (at == e->items[i] || at[-1] == '/') && strstr(at, want) != NULL) {
            return true;
        }
    }
    return false;
}

static void dump_errors(const struct ini_errors *e)
{
    for (size_t i = 0; i < e->count; i++) {
        fprintf(stderr, "    got: %s\n", e->items[i]);
    }
}

/* ------------------------------------------------------------------------ */
/* The shipped catalog                                                       */

/*
 * Every shipped definition: where it lives, the spec it names and the scope
 * it needs. One block per category file.
 */
struct expected {
    const char *name;
    const char *file;  /* ends the definition's file path */
    const char *spec;  /* the vendored spec file */
    const char *scope; /* its OAuth scope */
};

#define CONTACTS_T(n) {n, "triggers/contacts.ini", "apps/contacts.json", "contacts.readonly"}
#define OPPS_T(n) {n, "triggers/opportunities.ini", "apps/opportunities.json", \
                   "opportunities.readonly"}
static const struct expected triggers_expected[] = {
    CONTACTS_T("contacts.search"),       CONTACTS_T("contacts.list"),
    CONTACTS_T("contacts.get"),          CONTACTS_T("contacts.business"),
    CONTACTS_T("contacts.duplicate"),    CONTACTS_T("contacts.appointments"),
    CONTACTS_T("contacts.tasks"),        CONTACTS_T("contacts.tasks.get"),
    CONTACTS_T("contacts.notes"),        CONTACTS_T("contacts.notes.get"),
    OPPS_T("opportunities.search"),      OPPS_T("opportunities.get"),
    OPPS_T("opportunities.pipelines"),
    {"businesses.get", "triggers/businesses.ini", "apps/businesses.json", "businesses.readonly"},
    {"businesses.list", "triggers/businesses.ini", "apps/businesses.json", "businesses.readonly"},
    OPPS_T("opportunities.search_advanced"),
    {"users.list", "triggers/users.ini", "apps/users.json", "users.readonly"},
    {"users.search", "triggers/users.ini", "apps/users.json", "users.readonly"},
    {"users.get", "triggers/users.ini", "apps/users.json", "users.readonly"},
    {"workflows.list", "triggers/workflows.ini", "apps/workflows.json", "workflows.readonly"},
    {"snapshots.list", "triggers/workflows.ini", "apps/snapshots.json", "snapshots.readonly"},
    {"users.filter_by_email", "triggers/users.ini", "apps/users.json", "users.readonly"},
    {"campaigns.list", "triggers/workflows.ini", "apps/campaigns.json", "campaigns.readonly"},
    OPPS_T("opportunities.lost_reasons"),
    {"snapshots.push_status.location", "triggers/workflows.ini", "apps/snapshots.json",
     "snapshots.readonly"},
    {"associations.get", "triggers/associations.ini", "apps/associations.json",
     "associations.readonly"},
    {"associations.list", "triggers/associations.ini", "apps/associations.json",
     "associations.readonly"},
    {"locations.tasks.search", "triggers/locations.ini", "apps/locations.json",
     "locations/tasks.readonly"},
};
#undef CONTACTS_T
#undef OPPS_T

static const struct expected *expected_of(const struct expected *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].name, name) == 0) {
            return &list[i];
        }
    }
    return NULL;
}

/* The definition's file, spec and scope are the expected ones. */
static void check_expected(const struct expected *want, const char *file, const char *spec,
                           const char *scope)
{
    CHECK(file != NULL && str_has_suffix(file, want->file));
    CHECK_STR(spec, want->spec);
    CHECK_STR(scope, want->scope);
}

/* The definitions that use the issue #11 mechanisms (M1, M2/M3, M11, M4). */
static void test_shipped_mechanisms(const struct catalog *cat)
{
    /* M1: the bare user object is the response root; M11 on a single. */
    const struct catalog_trigger *ug = catalog_find_trigger(cat, "users.get");
    if (ug != NULL) {
        CHECK(ug->single && catalog_trigger_records_at_root(ug));
        CHECK_STR(ug->records, ".");
        CHECK_STR(ug->deleted_field, "deleted");
        CHECK(catalog_trigger_param(ug, "userId") != NULL);
        CHECK(!catalog_trigger_uses_company(ug));
    }
    /* M3: companyId is required even with a location token; M11: async delete. */
    const struct catalog_trigger *us = catalog_find_trigger(cat, "users.search");
    if (us != NULL) {
        CHECK_INT(us->pagination, CATALOG_PAGE_SKIP_LIMIT);
        CHECK(!catalog_trigger_records_at_root(us));
        CHECK_STR(us->total, "count");
        CHECK_STR(us->confirm_delete, "/users/{id}");
        CHECK_STR(us->deleted_field, "deleted");
        CHECK(catalog_trigger_uses_company(us));
        bool company = false, loc = false;
        for (size_t i = 0; i < us->nquery; i++) {
            company = company || (strcmp(us->query[i].name, "companyId") == 0 &&
                                  us->query[i].is_company && !us->query[i].is_location);
            loc = loc || (strcmp(us->query[i].name, "locationId") == 0 && us->query[i].is_location);
        }
        CHECK(company && loc);
    }
    /* M15: agency definitions, {company} and no {location}. */
    static const char *const agency[] = {"snapshots.list", "users.filter_by_email",
                                         "snapshots.push_status.location"};
    for (size_t i = 0; i < ARRAY_SIZE(agency); i++) {
        const struct catalog_trigger *a = catalog_find_trigger(cat, agency[i]);
        CHECK(a != NULL && a->agency && catalog_trigger_uses_company(a));
    }
    const struct catalog_trigger *fe = catalog_find_trigger(cat, "users.filter_by_email");
    if (fe != NULL) {
        CHECK(fe->paging.in != NULL && strcmp(fe->paging.in, "body") == 0);
        CHECK(fe->paging.values != NULL && strcmp(fe->paging.values, "string") == 0);
        CHECK(catalog_trigger_param(fe, "emails") != NULL);
    }
    CHECK(us == NULL || !us->agency);
    /* The location-wide task search: body skip/limit as numbers, the
     * location in the path, the records of contacts.tasks. */
    const struct catalog_trigger *ts = catalog_find_trigger(cat, "locations.tasks.search");
    if (ts != NULL) {
        CHECK_INT(ts->pagination, CATALOG_PAGE_SKIP_LIMIT);
        CHECK_STR(ts->paging.in, "body");
        CHECK_STR(ts->resource, "task");
        CHECK_STR(ts->records, "tasks");
        CHECK(ts->updated_field == NULL && ts->fan_out == NULL);
        CHECK_INT(ts->max_page_size, 100);
        /* A task is read by id under its contact: the task's own last contactId. */
        CHECK_STR(ts->confirm_delete, "/contacts/{record.contactId}/tasks/{id}");
    }
    /* M4: the POST search pages with body limit, not pageLimit. */
    const struct catalog_trigger *oa = catalog_find_trigger(cat, "opportunities.search_advanced");
    if (oa != NULL) {
        CHECK_STR(oa->method, "POST");
        CHECK_INT(oa->pagination, CATALOG_PAGE_SEARCH_AFTER);
        CHECK_STR(oa->paging.limit_param, "limit");
        CHECK_STR(oa->total, "total");
        CHECK_STR(oa->updated_field, "updatedAt");
        CHECK(oa->nbody == 1 && oa->body[0].is_location);
        CHECK_INT(oa->max_page_size, 500);
    }
}

static void test_shipped(const struct catalog *cat)
{
    CHECK(catalog_trigger_count(cat) >= ARRAY_SIZE(triggers_expected));
    for (size_t i = 0; i < ARRAY_SIZE(triggers_expected); i++) {
        const struct expected *want = &triggers_expected[i];
        const struct catalog_trigger *t = catalog_find_trigger(cat, want->name);
        CHECK(t != NULL);
        if (t == NULL) {
            fprintf(stderr, "    missing %s\n", want->name);
            continue;
        }
        check_expected(want, t->file, t->spec, t->scope);
        CHECK_STR(t->version, "2021-07-28");
    }
    CHECK(catalog_find_trigger(cat, "contacts.nope") == NULL);
    CHECK(catalog_find_trigger(cat, "") == NULL);

    /* Sorted by name, and findable by name. */
    for (size_t i = 0; i < catalog_trigger_count(cat); i++) {
        const struct catalog_trigger *t = catalog_trigger_at(cat, i);
        CHECK(catalog_find_trigger(cat, t->name) == t);
        if (i > 0) {
            CHECK(strcmp(catalog_trigger_at(cat, i - 1)->name, t->name) < 0);
        }
        CHECK(t->file != NULL && t->line > 0);
        CHECK(t->volatile_fields != NULL && t->require_one != NULL);
    }
    CHECK(catalog_trigger_at(cat, catalog_trigger_count(cat)) == NULL);

    /* The details the engine depends on. */
    const struct catalog_trigger *s = catalog_find_trigger(cat, "contacts.search");
    if (s != NULL) {
        CHECK_STR(s->method, "POST");
        CHECK_STR(s->path, "/contacts/search");
        CHECK_INT(s->pagination, CATALOG_PAGE_SEARCH_AFTER);
        CHECK_INT(s->page_size, 500); /* no page_size: the largest the API allows */
        CHECK_INT(s->max_page_size, 500);
        CHECK_STR(s->records, "contacts");
        CHECK_STR(s->resource, "contact");
        CHECK_STR(s->id_field, "id");
        CHECK_STR(s->updated_field, "dateUpdated");
        CHECK_STR(s->confirm_delete, "/contacts/{id}");
        CHECK_STR(s->total, "total");
        CHECK(s->paging.limit_param == NULL && s->paging.in == NULL); /* the style's defaults */
        CHECK(strv_contains(s->volatile_fields, "searchAfter"));
        CHECK(!s->single);
        CHECK_INT(s->nbody, 2);
        CHECK_INT(s->nquery, 0);
        if (s->nbody == 2) {
            CHECK_STR(s->body[0].name, "locationId");
            CHECK(s->body[0].is_location && !s->body[0].is_json);
            CHECK_STR(s->body[1].name, "sort");
            CHECK(s->body[1].is_json && !s->body[1].is_location);
            CHECK_STR(s->body[1].value, "[{\"field\":\"dateAdded\",\"direction\":\"asc\"}]");
        }
        const struct catalog_param *q = catalog_trigger_param(s, "query");
        const struct catalog_param *f = catalog_trigger_param(s, "filters");
        CHECK(q != NULL && q->where == CATALOG_BODY && q->type == CATALOG_STRING && !q->required);
        CHECK(f != NULL && f->where == CATALOG_BODY && f->type == CATALOG_JSON && !f->required);
        CHECK(catalog_trigger_param(s, "nope") == NULL);
    }
    const struct catalog_trigger *l = catalog_find_trigger(cat, "contacts.list");
    if (l != NULL) {
        CHECK_INT(l->pagination, CATALOG_PAGE_START_AFTER);
        CHECK_INT(l->max_page_size, 100);
        CHECK_INT(l->nquery, 1);
        CHECK(l->nquery == 1 && l->query[0].is_location);
        CHECK(l->updated_field == NULL);
        CHECK_STR(l->total, "meta.total");
    }
    const struct catalog_trigger *g = catalog_find_trigger(cat, "contacts.get");
    if (g != NULL) {
        CHECK(g->single);
        CHECK_INT(g->pagination, CATALOG_PAGE_NONE);
        CHECK_INT(g->page_size, 0);
        const struct catalog_param *p = catalog_trigger_param(g, "contactId");
        CHECK(p != NULL && p->where == CATALOG_PATH && p->required);
    }
    const struct catalog_trigger *b = catalog_find_trigger(cat, "contacts.business");
    if (b != NULL) {
        CHECK_INT(b->pagination, CATALOG_PAGE_SKIP_LIMIT);
        CHECK_STR(b->total, "count");
    }
    const struct catalog_trigger *d = catalog_find_trigger(cat, "contacts.duplicate");
    if (d != NULL) {
        CHECK(d->single);
        CHECK_INT(strv_len(d->require_one), 2);
        CHECK(strv_contains(d->require_one, "email") && strv_contains(d->require_one, "number"));
    }
    static const struct {
        const char *name, *records, *resource, *confirm;
    } fans[] = {
        {"contacts.appointments", "events", "appointment", NULL},
        /* M16: a child's deletion is confirmed by id, under its parent. */
        {"contacts.tasks", "tasks", "task", "/contacts/{contactId}/tasks/{id}"},
        {"contacts.notes", "notes", "note", "/contacts/{contactId}/notes/{id}"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(fans); i++) {
        const struct catalog_trigger *t = catalog_find_trigger(cat, fans[i].name);
        if (t == NULL) {
            continue;
        }
        CHECK_STR(t->records, fans[i].records);
        CHECK_STR(t->resource, fans[i].resource);
        CHECK_STR(t->fan_out, "contactId");
        CHECK_STR(t->parent_resource, "contact");
        if (fans[i].confirm == NULL) {
            CHECK(t->confirm_delete == NULL);
        } else {
            CHECK_STR(t->confirm_delete, fans[i].confirm);
        }
    }
    const struct catalog_trigger *tk = catalog_find_trigger(cat, "contacts.tasks");
    if (tk != NULL) {
        CHECK(tk->batch_def == catalog_find_trigger(cat, "locations.tasks.search"));
        CHECK_STR(tk->batch_param, "contactId");
    }
    const struct catalog_trigger *ng = catalog_find_trigger(cat, "contacts.notes.get");
    if (ng != NULL) {
        CHECK(ng->single);
        CHECK_STR(ng->records, "note");
        CHECK(catalog_trigger_param(ng, "id") != NULL);
    }
    /* status = all: a won or lost opportunity stays listed, so it is
     * `updated`, never `deleted`; the location goes in snake_case. */
    const struct catalog_trigger *os = catalog_find_trigger(cat, "opportunities.search");
    if (os != NULL) {
        CHECK_INT(os->pagination, CATALOG_PAGE_START_AFTER);
        CHECK_INT(os->max_page_size, 100);
        CHECK_STR(os->records, "opportunities");
        CHECK_STR(os->updated_field, "updatedAt");
        CHECK_STR(os->confirm_delete, "/opportunities/{id}");
        bool loc = false, all = false;
        for (size_t i = 0; i < os->nquery; i++) {
            loc = loc || (strcmp(os->query[i].name, "location_id") == 0 && os->query[i].is_location);
            all = all || (strcmp(os->query[i].name, "status") == 0 &&
                          strcmp(os->query[i].value, "all") == 0);
        }
        CHECK(loc && all);
        CHECK(catalog_trigger_param(os, "status") == NULL);
    }
    /* No total in the response: complete on a short page, confirmed by id. */
    const struct catalog_trigger *bl = catalog_find_trigger(cat, "businesses.list");
    if (bl != NULL) {
        CHECK_INT(bl->pagination, CATALOG_PAGE_SKIP_LIMIT);
        CHECK_STR(bl->confirm_delete, "/businesses/{id}");
        CHECK(bl->nquery == 1 && bl->query[0].is_location);
    }
    const struct catalog_trigger *tg = catalog_find_trigger(cat, "contacts.tasks.get");
    if (tg != NULL) {
        CHECK(tg->single);
        CHECK_STR(tg->records, "task");
        CHECK(catalog_trigger_param(tg, "taskId") != NULL);
    }
    test_shipped_mechanisms(cat);
}

/* ------------------------------------------------------------------------ */
/* The shipped actions                                                       */

/* The 18 "Contacts / action" rows of ghl-catalog.tsv, then the other
 * categories (catalog-map.md 2.2-2.6). */
#define CONTACTS_A(n) {n, "actions/contacts.ini", "apps/contacts.json", "contacts.write"}
#define OPPS_A(n) {n, "actions/opportunities.ini", "apps/opportunities.json", \
                   "opportunities.write"}
/* Contact routes that ghl-catalog.tsv files under Workflows & Campaigns. */
#define WF_A(n) {n, "actions/workflows.ini", "apps/contacts.json", "contacts.write"}
#define BIZ_A(n) {n, "actions/businesses.ini", "apps/businesses.json", "businesses.write"}
#define ASSOC_A(n, scope) {n, "actions/associations.ini", "apps/associations.json", scope}
static const struct expected actions_expected[] = {
    CONTACTS_A("contacts.create"),
    CONTACTS_A("contacts.update"),
    {"contacts.find", "actions/contacts.ini", "apps/contacts.json", "contacts.readonly"},
    CONTACTS_A("contacts.delete"),
    CONTACTS_A("contacts.upsert"),
    CONTACTS_A("contacts.tags.add"),
    CONTACTS_A("contacts.tags.remove"),
    CONTACTS_A("contacts.tags.bulk"),
    CONTACTS_A("contacts.tasks.create"),
    CONTACTS_A("contacts.tasks.update"),
    CONTACTS_A("contacts.tasks.complete"),
    CONTACTS_A("contacts.tasks.delete"),
    CONTACTS_A("contacts.notes.create"),
    CONTACTS_A("contacts.notes.update"),
    CONTACTS_A("contacts.notes.delete"),
    CONTACTS_A("contacts.campaigns.add"),
    CONTACTS_A("contacts.campaigns.remove"),
    CONTACTS_A("contacts.campaigns.remove_all"),
    OPPS_A("opportunities.create"),
    OPPS_A("opportunities.update"),
    OPPS_A("opportunities.delete"),
    OPPS_A("opportunities.status"),
    OPPS_A("opportunities.followers.add"),
    OPPS_A("opportunities.followers.remove"),
    OPPS_A("opportunities.upsert"),
    BIZ_A("businesses.create"),
    BIZ_A("businesses.update"),
    BIZ_A("businesses.delete"),
    {"users.create", "actions/users.ini", "apps/users.json", "users.write"},
    {"users.update", "actions/users.ini", "apps/users.json", "users.write"},
    {"users.delete", "actions/users.ini", "apps/users.json", "users.write"},
    WF_A("contacts.workflows.add"),
    WF_A("contacts.workflows.remove"),
    WF_A("contacts.followers.add"),
    WF_A("contacts.followers.remove"),
    WF_A("contacts.business.bulk"),
    {"snapshots.share_link", "actions/workflows.ini", "apps/snapshots.json", "snapshots.write"},
    ASSOC_A("associations.create", "associations.write"),
    ASSOC_A("associations.update", "associations.write"),
    ASSOC_A("associations.delete", "associations.write"),
    ASSOC_A("associations.relations.create", "associations/relation.write"),
    ASSOC_A("associations.relations.delete", "associations/relation.write"),
};
#undef CONTACTS_A
#undef OPPS_A
#undef BIZ_A
#undef ASSOC_A
#undef WF_A

/* Those that delete or remove something: a rule must say confirm = yes. */
static const char *const destructive_names[] = {
    "contacts.delete",       "contacts.tasks.delete", "contacts.notes.delete",
    "contacts.tags.remove",  "contacts.tags.bulk",    "contacts.campaigns.remove_all",
    "opportunities.delete",  "opportunities.followers.remove", "businesses.delete",
    "users.delete",          "contacts.workflows.remove", "contacts.followers.remove",
    "associations.delete",   "associations.relations.delete",
};

/* Plain creates: a retry after an unknown outcome may duplicate. */
static const char *const non_idempotent_names[] = {
    "contacts.create", "contacts.tasks.create", "contacts.notes.create",
    "contacts.campaigns.add", "opportunities.create", "businesses.create",
    "contacts.workflows.add", "users.create", "snapshots.share_link", "associations.create",
    "associations.relations.create",
};

/* Actions whose writes pollen cannot attribute to one record. */
static const char *const untracked_names[] = {
    "contacts.find",
    "contacts.tags.bulk",
    "contacts.business.bulk",
};

static bool in_list(const char *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static void fail_action(const struct catalog_action *a, const char *what)
{
    test_failures++;
    fprintf(stderr, "%s:%d: [%s]: %s\n", a->file, a->line, a->name, what);
}

/* The retry and safety policy, the same for every action. */
static void check_action_policy(const struct catalog_action *a)
{
    bool is_delete = strcmp(a->method, "DELETE") == 0;
    test_checks++;
    if (a->gone_ok != is_delete) {
        fail_action(a, "gone_ok must be set exactly on DELETE endpoints");
    }
    test_checks++;
    if (a->destructive != in_list(destructive_names, ARRAY_SIZE(destructive_names), a->name)) {
        fail_action(a, "destructive differs from the policy list");
    }
    bool want_idem = !in_list(non_idempotent_names, ARRAY_SIZE(non_idempotent_names), a->name);
    test_checks++;
    if (a->idempotent != want_idem) {
        fail_action(a, "idempotent differs from the policy list");
    }
    test_checks++;
    if ((strcmp(a->method, "PUT") == 0 || is_delete) && !a->idempotent) {
        fail_action(a, "PUT and DELETE are idempotent");
    }
    if (a->target != NULL) {
        const struct catalog_param *p = catalog_action_param(a, a->target);
        test_checks++;
        if (p == NULL || p->where != CATALOG_PATH || a->target_resource == NULL) {
            fail_action(a, "target must name a path parameter and come with target_resource");
        }
    }
    /* Writers say what they write, so the engine can recognise its own
     * changes; only the read-only find and the bulk endpoints (their
     * records are in the body) cannot. */
    bool writes = !in_list(untracked_names, ARRAY_SIZE(untracked_names), a->name);
    test_checks++;
    if (writes && a->target_resource == NULL) {
        fail_action(a, "a write needs target_resource");
    }
    test_checks++;
    if (a->empty_body && (a->nfields != 0 || a->nbody != 0)) {
        fail_action(a, "empty_body with body members");
    }
}

static void test_shipped_actions(const struct catalog *cat)
{
    CHECK_INT(catalog_action_count(cat), ARRAY_SIZE(actions_expected));
    for (size_t i = 0; i < ARRAY_SIZE(actions_expected); i++) {
        const struct catalog_action *a = catalog_find_action(cat, actions_expected[i].name);
        CHECK(a != NULL);
        if (a == NULL) {
            fprintf(stderr, "    missing action %s\n", actions_expected[i].name);
        }
    }
    CHECK(catalog_find_action(cat, "contacts.search") == NULL); /* a trigger, not an action */
    CHECK(catalog_find_action(cat, "http") == NULL);
    CHECK(catalog_find_action(cat, NULL) == NULL);
    CHECK(catalog_action_at(cat, catalog_action_count(cat)) == NULL);
    for (size_t i = 0; i < catalog_action_count(cat); i++) {
        const struct catalog_action *a = catalog_action_at(cat, i);
        CHECK(catalog_find_action(cat, a->name) == a);
        if (i > 0) {
            CHECK(strcmp(catalog_action_at(cat, i - 1)->name, a->name) < 0);
        }
        CHECK(a->line > 0);
        const struct expected *want =
            expected_of(actions_expected, ARRAY_SIZE(actions_expected), a->name);
        CHECK(want != NULL);
        if (want != NULL) {
            check_expected(want, a->file, a->spec, a->scope);
        }
        CHECK_STR(a->version, "2021-07-28");
        CHECK(a->success >= 200 && a->success <= 299);
        check_action_policy(a);
    }

    /* The details the dispatcher and the rules depend on. */
    const struct catalog_action *c = catalog_find_action(cat, "contacts.create");
    if (c != NULL) {
        CHECK_STR(c->method, "POST");
        CHECK_STR(c->path, "/contacts/");
        CHECK_INT(c->success, 201);
        CHECK_STR(c->result, "contact");
        CHECK(c->target == NULL);
        CHECK_STR(c->target_resource, "contact");
        CHECK_INT(c->nparams, 0);
        CHECK(c->nbody == 1 && c->body[0].is_location &&
              strcmp(c->body[0].name, "locationId") == 0);
        CHECK(catalog_action_binding(c, "locationId") == &c->body[0]);
        CHECK(catalog_action_field(c, "locationId") == NULL);
        const struct catalog_field *tags = catalog_action_field(c, "tags");
        CHECK(tags != NULL && tags->type == CATALOG_STRING_LIST && !tags->required);
        const struct catalog_field *dnd = catalog_action_field(c, "dnd");
        CHECK(dnd != NULL && dnd->type == CATALOG_BOOLEAN);
        const struct catalog_field *cf = catalog_action_field(c, "customFields");
        CHECK(cf != NULL && cf->type == CATALOG_JSON);
        CHECK(catalog_action_field(c, "nope") == NULL);
        CHECK(catalog_action_field(c, NULL) == NULL);
    }
    const struct catalog_action *u = catalog_find_action(cat, "contacts.update");
    if (u != NULL) {
        CHECK_STR(u->method, "PUT");
        CHECK_STR(u->target, "contactId");
        CHECK_INT(u->nbody, 0);
        CHECK(catalog_action_field(u, "companyName") == NULL); /* not in UpdateContactDto */
        const struct catalog_param *p = catalog_action_param(u, "contactId");
        CHECK(p != NULL && p->where == CATALOG_PATH && p->type == CATALOG_STRING && p->required);
    }
    const struct catalog_action *t = catalog_find_action(cat, "contacts.tasks.create");
    if (t != NULL) {
        static const struct {
            const char *name;
            enum catalog_type type;
            bool required;
        } want[] = {
            {"title", CATALOG_STRING, true},      {"dueDate", CATALOG_STRING, true},
            {"completed", CATALOG_BOOLEAN, true}, {"body", CATALOG_STRING, false},
            {"assignedTo", CATALOG_STRING, false},
        };
        CHECK_INT(t->nfields, ARRAY_SIZE(want));
        for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
            const struct catalog_field *f = catalog_action_field(t, want[i].name);
            CHECK(f != NULL && f->type == want[i].type && f->required == want[i].required);
        }
        CHECK_INT(t->success, 201);
        CHECK_STR(t->result, "task");
        CHECK(!t->idempotent && !t->destructive);
    }
    const struct catalog_action *tr = catalog_find_action(cat, "contacts.tags.remove");
    if (tr != NULL) {
        CHECK_STR(tr->method, "DELETE");
        CHECK(tr->destructive && tr->gone_ok && tr->idempotent);
        const struct catalog_field *f = catalog_action_field(tr, "tags");
        CHECK(f != NULL && f->type == CATALOG_STRING_LIST && f->required);
    }
    const struct catalog_action *ca = catalog_find_action(cat, "contacts.campaigns.add");
    if (ca != NULL) {
        CHECK(ca->empty_body);
        CHECK_INT(ca->nfields, 0);
        CHECK_INT(ca->nparams, 2);
    }
    const struct catalog_action *nu = catalog_find_action(cat, "contacts.notes.update");
    if (nu != NULL) {
        CHECK_STR(nu->target, "id");
        CHECK_STR(nu->target_resource, "note");
    }
    const struct catalog_action *f = catalog_find_action(cat, "contacts.find");
    if (f != NULL) {
        CHECK_STR(f->scope, "contacts.readonly");
        CHECK_INT(f->nbody, 2);
        const struct catalog_binding *pl = catalog_action_binding(f, "pageLimit");
        CHECK(pl != NULL && pl->is_json && strcmp(pl->value, "10") == 0);
    }
    /* The response member is spelled buiseness (sic) in the spec and live. */
    const struct catalog_action *bc = catalog_find_action(cat, "businesses.create");
    if (bc != NULL) {
        CHECK_STR(bc->result, "buiseness");
        CHECK_INT(bc->success, 201);
        CHECK(catalog_action_binding(bc, "locationId") != NULL);
    }
    const struct catalog_action *rm = catalog_find_action(cat, "contacts.campaigns.remove_all");
    if (rm != NULL) {
        CHECK_STR(rm->path, "/contacts/{contactId}/campaigns/removeAll");
    }
    /* users.create: a bare response (M1), a secret password and conflict_ok on email (M14). */
    const struct catalog_action *uc = catalog_find_action(cat, "users.create");
    CHECK(uc != NULL);
    if (uc != NULL) {
        CHECK_STR(uc->result, ".");
        CHECK(uc->conflict_ok && !uc->idempotent);
        CHECK_STR(uc->natural_key, "email");
        const struct catalog_field *pw = catalog_action_field(uc, "password");
        CHECK(pw != NULL && pw->secret && pw->required);
        const struct catalog_field *em = catalog_action_field(uc, "email");
        CHECK(em != NULL && !em->secret);
    }
    const struct catalog_action *uu = catalog_find_action(cat, "users.update");
    CHECK_STR(uu ? uu->result : NULL, ".");
    const struct catalog_field *upw = uu ? catalog_action_field(uu, "password") : NULL;
    CHECK(upw != NULL && upw->secret && !upw->required);
    /* M14: bulk business is destructive only when businessId is null (a removal). */
    const struct catalog_action *bb = catalog_find_action(cat, "contacts.business.bulk");
    CHECK(bb != NULL && !bb->destructive);
    CHECK_STR(bb ? bb->destructive_when : NULL, "businessId");
    const struct catalog_field *bid = bb ? catalog_action_field(bb, "businessId") : NULL;
    CHECK(bid != NULL && bid->nullable && bid->required);
    /* M2: the remove-followers route's query parameter. */
    const struct catalog_action *fr = catalog_find_action(cat, "opportunities.followers.remove");
    const struct catalog_param *all = fr ? catalog_action_param(fr, "isRemoveAllFollowers") : NULL;
    CHECK(all != NULL && all->where == CATALOG_QUERY && all->type == CATALOG_BOOLEAN);
}

/* ------------------------------------------------------------------------ */
/* Against the OpenAPI spec                                                  */

/* Follows a local "$ref": "#/components/..." (one level is all specs use). */
static const cJSON *deref(const cJSON *root, const cJSON *item)
{
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(item, "$ref");
    if (!cJSON_IsString(ref) || strncmp(ref->valuestring, "#/", 2) != 0) {
        return item;
    }
    const cJSON *node = root;
    char *path = xstrdup(ref->valuestring + 2);
    for (char *p = path; p != NULL && node != NULL;) {
        char *slash = strchr(p, '/');
        if (slash != NULL) {
            *slash = '\0';
        }
        node = cJSON_GetObjectItemCaseSensitive(node, p);
        p = slash != NULL ? slash + 1 : NULL;
    }
    free(path);
    return node;
}

/* The spec parameter (in, name) of an operation, or NULL. */
static const cJSON *spec_param(const cJSON *root, const cJSON *op, const char *in,
                               const char *name)
{
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(op, "parameters");
    const cJSON *p;
    cJSON_ArrayForEach(p, params)
    {
        const cJSON *d = deref(root, p);
        const cJSON *pin = cJSON_GetObjectItemCaseSensitive(d, "in");
        const cJSON *pname = cJSON_GetObjectItemCaseSensitive(d, "name");
        if (cJSON_IsString(pin) && cJSON_IsString(pname) && strcmp(pin->valuestring, in) == 0 &&
            strcmp(pname->valuestring, name) == 0) {
            return d;
        }
    }
    return NULL;
}

/* One spec file, read once: its parsed root, or why there is none. */
struct spec_cache {
    char *file;
    cJSON *root;
    char *why; /* NULL when root is set */
};

static const struct spec_cache *load_spec(struct spec_cache *c, size_t n, const char *file)
{
    for (size_t i = 0; i < n && c[i].file != NULL; i++) {
        if (strcmp(c[i].file, file) == 0) {
            return &c[i];
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (c[i].file != NULL) {
            continue;
        }
        char *path = xasprintf("%s%s", SPEC_DIR, file);
        char *data = NULL;
        size_t len = 0;
        int rc = util_read_file(path, 64 << 20, &data, &len);
        c[i].file = xstrdup(file);
        c[i].root = rc == 0 ? cJSON_ParseWithLength(data, len) : NULL;
        if (rc != 0) {
            c[i].why = xasprintf("spec file '%s' cannot be read: %s (%s)", file, path,
                                 strerror(-rc));
        } else if (c[i].root == NULL) {
            c[i].why = xasprintf("spec file '%s' is not JSON: %s", file, path);
        }
        free(path);
        free(data);
        return &c[i];
    }
    fprintf(stderr, "test_catalog: more than %zu spec files\n", n);
    exit(99);
}

static void fail_def(const struct catalog_trigger *t, const char *what)
{
    test_failures++;
    fprintf(stderr, "%s:%d: [%s] does not match the spec: %s\n", t->file, t->line, t->name, what);
}

/*
 * Triggers whose spec security block lists no scope, each with its reason;
 * the gap is checked to still exist.
 */
static const struct {
    const char *trigger;
    const char *why;
} trigger_scope_gaps[] = {
    {"snapshots.list",
     "Agency-Access with an empty scope list; Scopes.md names snapshots.readonly (catalog-map "
     "1.6 W2)"},
    {"snapshots.push_status.location",
     "Agency-Access with an empty scope list; Scopes.md names snapshots.readonly (catalog-map "
     "1.6 W2)"},
};

static bool trigger_scope_gap(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(trigger_scope_gaps); i++) {
        if (strcmp(trigger_scope_gaps[i].trigger, name) == 0) {
            return true;
        }
    }
    return false;
}

static void check_against_spec(const struct catalog_trigger *t, const struct spec_cache *spec)
{
    const cJSON *root = spec->root;
    test_checks++;
    if (root == NULL) {
        test_failures++;
        fprintf(stderr, "%s:%d: [%s]: %s\n", t->file, t->line, t->name, spec->why);
        return;
    }
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(root, "paths");
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(paths, t->path);
    char method[8];
    size_t i = 0;
    for (; t->method[i] != '\0' && i + 1 < sizeof(method); i++) {
        method[i] = (char)tolower((unsigned char)t->method[i]);
    }
    method[i] = '\0';
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(item, method);
    test_checks++;
    if (!cJSON_IsObject(op)) {
        fail_def(t, "no such path and method");
        return;
    }

    const cJSON *opid = cJSON_GetObjectItemCaseSensitive(op, "operationId");
    test_checks++;
    if (!cJSON_IsString(opid) || strcmp(opid->valuestring, t->operation_id) != 0) {
        fail_def(t, "operationId differs");
    }

    /* The Version header: an enum whose value is ours. */
    const cJSON *ver = spec_param(root, op, "header", "Version");
    const cJSON *venum = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(ver, "schema"), "enum");
    test_checks++;
    if (cJSON_GetArraySize(venum) != 1 || !cJSON_IsString(cJSON_GetArrayItem(venum, 0)) ||
        strcmp(cJSON_GetArrayItem(venum, 0)->valuestring, t->version) != 0) {
        fail_def(t, "Version header enum differs");
    }

    /* Some security requirement lists our scope. */
    bool scope_found = false;
    const cJSON *req;
    cJSON_ArrayForEach(req, cJSON_GetObjectItemCaseSensitive(op, "security"))
    {
        const cJSON *scheme;
        cJSON_ArrayForEach(scheme, req)
        {
            const cJSON *s;
            cJSON_ArrayForEach(s, scheme)
            {
                if (cJSON_IsString(s) && strcmp(s->valuestring, t->scope) == 0) {
                    scope_found = true;
                }
            }
        }
    }
    bool scope_gap = trigger_scope_gap(t->name);
    test_checks++;
    if (!scope_found && !scope_gap) {
        fail_def(t, "scope not in the security requirements");
    } else if (scope_found && scope_gap) {
        fail_def(t, "the spec now lists the scope: drop the trigger's scope gap");
    }

    /* Path and query parameters, and query bindings, are the spec's. Body
     * members are not checked: several body schemas are empty in the spec. */
    for (size_t p = 0; p < t->nparams; p++) {
        const struct catalog_param *cp = &t->params[p];
        if (cp->where == CATALOG_BODY) {
            continue;
        }
        test_checks++;
        if (spec_param(root, op, catalog_where_name(cp->where), cp->name) == NULL) {
            char *msg = xasprintf("%s parameter '%s' is not in the spec",
                                  catalog_where_name(cp->where), cp->name);
            fail_def(t, msg);
            free(msg);
        }
    }
    for (size_t q = 0; q < t->nquery; q++) {
        const cJSON *sp = spec_param(root, op, "query", t->query[q].name);
        test_checks++;
        if (sp == NULL) {
            char *msg = xasprintf("query binding '%s' is not in the spec", t->query[q].name);
            fail_def(t, msg);
            free(msg);
        }
    }
    /* Every required spec parameter (path, query) is covered. */
    const cJSON *sp;
    cJSON_ArrayForEach(sp, cJSON_GetObjectItemCaseSensitive(op, "parameters"))
    {
        const cJSON *d = deref(root, sp);
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(d, "in");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(d, "name");
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "required")) ||
            !cJSON_IsString(in) || !cJSON_IsString(name) ||
            (strcmp(in->valuestring, "path") != 0 && strcmp(in->valuestring, "query") != 0)) {
            continue;
        }
        bool covered = catalog_trigger_param(t, name->valuestring) != NULL;
        for (size_t q = 0; q < t->nquery; q++) {
            covered = covered || strcmp(t->query[q].name, name->valuestring) == 0;
        }
        for (size_t q = 0; q < t->npath_values; q++) { /* path.NAME: the engine fills it */
            covered = covered || strcmp(t->path_values[q].name, name->valuestring) == 0;
        }
        if (t->pagination == CATALOG_PAGE_SKIP_LIMIT) { /* the pager sends both on every page */
            const char *skip = t->paging.skip_param ? t->paging.skip_param : "skip";
            const char *limit = t->paging.limit_param ? t->paging.limit_param : "limit";
            covered = covered || strcmp(skip, name->valuestring) == 0 ||
                      strcmp(limit, name->valuestring) == 0;
        }
        test_checks++;
        if (!covered) {
            char *msg = xasprintf("required %s parameter '%s' is not provided",
                                  in->valuestring, name->valuestring);
            fail_def(t, msg);
            free(msg);
        }
    }
}

/*
 * Where the spec is known to be wrong or silent, each with its reason; the
 * same list is at the top of actions/contacts.ini. Every gap is checked to
 * still exist, so a fixed spec makes the exception fail loudly.
 */
enum {
    GAP_EMPTY_REQUEST = 1 << 0,  /* request schema {}: fields from the linked docs */
    GAP_EMPTY_RESPONSE = 1 << 1, /* success response without a schema */
    GAP_NO_SECURITY = 1 << 2,    /* no security block: the scope is assumed */
    GAP_PATH_PARAM = 1 << 3,     /* a path parameter is not declared */
    GAP_EXTRA_FIELD = 1 << 4,    /* a field the API takes is not in the schema */
    GAP_NO_SCOPE = 1 << 5,       /* a security block that names no scope */
};
static const struct {
    const char *action;
    unsigned gaps;
    const char *param; /* GAP_PATH_PARAM, GAP_EXTRA_FIELD: which one */
    const char *why;
} action_gaps[] = {
    {"contacts.find", GAP_EMPTY_REQUEST | GAP_EMPTY_RESPONSE, NULL,
     "SearchBodyV2DTO is {} and the 200 has no schema (ghl-api-notes.md 5.3)"},
    {"contacts.tags.bulk", GAP_NO_SECURITY | GAP_PATH_PARAM, "type",
     "{type} undeclared and no security block (ghl-api-notes.md 8)"},
    {"users.update", GAP_PATH_PARAM, "userId",
     "{userId} is in the path but not in the parameters (catalog-map 2.3)"},
    {"users.delete", GAP_PATH_PARAM, "userId",
     "{userId} is in the path but not in the parameters (catalog-map 2.3)"},
    {"opportunities.upsert", GAP_EXTRA_FIELD, "contactId",
     "the API matches on contactId, which the schema lacks (catalog-map OA5)"},
    {"contacts.business.bulk", GAP_NO_SECURITY, NULL,
     "no security block (catalog-map 2.6; contacts.write as in the TSV)"},
    {"snapshots.share_link", GAP_NO_SCOPE, NULL,
     "Agency-Access with an empty scope list; Scopes.md names snapshots.write (catalog-map "
     "1.6 W2)"},
};

/*
 * Spec properties deliberately not offered to rules, each with its reason
 * (the same list is at the top of the action's file). Each must still be in
 * the spec and must not be declared.
 */
static const struct {
    const char *action;
    const char *field;
    const char *why;
} omitted_fields[] = {
    {NULL, NULL, NULL}, /* none today (users.update's password is a secret field, M14) */
};

static bool is_omitted(const char *action, const char *field)
{
    for (size_t i = 0; i < ARRAY_SIZE(omitted_fields); i++) {
        if (omitted_fields[i].action != NULL && strcmp(omitted_fields[i].action, action) == 0 &&
            strcmp(omitted_fields[i].field, field) == 0) {
            return true;
        }
    }
    return false;
}

/* A body field whose spec type is wrong: the field's own type is kept. */
static const struct {
    const char *field;
    const char *spec_type;
    enum catalog_type type;
} field_gaps[] = {
    /* Typed object, but described and exemplified as "1990-09-25". */
    {"dateOfBirth", "object", CATALOG_STRING},
    /* The upsert's monetaryValue: typed object, a number in practice (catalog-map OA5). */
    {"monetaryValue", "object", CATALOG_NUMBER},
    /* Associations: typed object, strings in the descriptions and examples
     * ("student", "contact"; catalog-map XA3). */
    {"firstObjectLabel", "object", CATALOG_STRING},
    {"firstObjectKey", "object", CATALOG_STRING},
    {"secondObjectLabel", "object", CATALOG_STRING},
    {"secondObjectKey", "object", CATALOG_STRING},
};

static unsigned gaps_of(const char *action, const char **param)
{
    for (size_t i = 0; i < ARRAY_SIZE(action_gaps); i++) {
        if (strcmp(action_gaps[i].action, action) == 0) {
            *param = action_gaps[i].param;
            return action_gaps[i].gaps;
        }
    }
    *param = NULL;
    return 0;
}

static const char *schema_type(const cJSON *schema)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(schema, "type");
    return cJSON_IsString(t) ? t->valuestring : "";
}

static bool type_compatible(const cJSON *root, enum catalog_type type, const cJSON *schema)
{
    const char *st = schema_type(schema);
    switch (type) {
    case CATALOG_STRING:
        return strcmp(st, "string") == 0;
    case CATALOG_INTEGER:
        return strcmp(st, "integer") == 0;
    case CATALOG_NUMBER:
        return strcmp(st, "number") == 0 || strcmp(st, "integer") == 0;
    case CATALOG_BOOLEAN:
        return strcmp(st, "boolean") == 0;
    case CATALOG_STRING_LIST: {
        const cJSON *items = deref(root, cJSON_GetObjectItemCaseSensitive(schema, "items"));
        return strcmp(st, "array") == 0 && strcmp(schema_type(items), "string") == 0;
    }
    case CATALOG_JSON:
        return strcmp(st, "object") == 0 || strcmp(st, "array") == 0;
    }
    return false;
}

static void fail_action_msg(const struct catalog_action *a, char *msg)
{
    char *what = xasprintf("does not match the spec: %s", msg);
    fail_action(a, what);
    free(what);
    free(msg);
}

static bool schema_required(const cJSON *schema, const char *name)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(schema, "required"))
    {
        if (cJSON_IsString(r) && strcmp(r->valuestring, name) == 0) {
            return true;
        }
    }
    return false;
}

static void check_action_body(const struct catalog_action *a, const cJSON *root, const cJSON *op,
                              unsigned gaps, const char *gap_param)
{
    const cJSON *rb = cJSON_GetObjectItemCaseSensitive(op, "requestBody");
    const cJSON *schema = deref(
        root, cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(
                      cJSON_GetObjectItemCaseSensitive(rb, "content"), "application/json"),
                  "schema"));
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    bool empty = cJSON_GetArraySize(props) == 0;
    test_checks++;
    if (rb == NULL && (a->nfields != 0 || a->nbody != 0 || a->empty_body)) {
        fail_action_msg(a, xasprintf("the spec has no request body"));
        return;
    }
    if (gaps & GAP_EMPTY_REQUEST) {
        test_checks++;
        if (!empty) {
            fail_action_msg(a, xasprintf("the request schema is no longer empty: drop the gap"));
        }
        return;
    }
    test_checks++;
    if (a->empty_body != (rb != NULL && empty)) {
        fail_action_msg(a, xasprintf("empty_body must be yes exactly when the schema is {}"));
    }
    /* Every declared field exists, with a compatible type and the same
     * required flag. */
    for (size_t i = 0; i < a->nfields; i++) {
        const struct catalog_field *f = &a->fields[i];
        const cJSON *ps = deref(root, cJSON_GetObjectItemCaseSensitive(props, f->name));
        test_checks++;
        if (ps == NULL) {
            if (!(gaps & GAP_EXTRA_FIELD) || strcmp(gap_param, f->name) != 0) {
                fail_action_msg(a, xasprintf("field '%s' is not in the request schema", f->name));
            }
            continue;
        }
        if ((gaps & GAP_EXTRA_FIELD) && strcmp(gap_param, f->name) == 0) {
            fail_action_msg(a, xasprintf("'%s' is in the schema now: drop the gap", f->name));
        }
        bool ok = type_compatible(root, f->type, ps);
        for (size_t g = 0; !ok && g < ARRAY_SIZE(field_gaps); g++) {
            ok = strcmp(field_gaps[g].field, f->name) == 0 &&
                 strcmp(field_gaps[g].spec_type, schema_type(ps)) == 0 &&
                 field_gaps[g].type == f->type;
        }
        test_checks++;
        if (!ok) {
            fail_action_msg(a, xasprintf("field '%s' is %s, the spec says '%s'", f->name,
                                         catalog_type_name(f->type), schema_type(ps)));
        }
        test_checks++;
        /* A spec-required member the API does not need is optional with a default. */
        bool defaulted = !f->required && catalog_action_default(a, f->name) != NULL &&
                         schema_required(schema, f->name);
        if (f->required != schema_required(schema, f->name) && !defaulted) {
            fail_action_msg(a, xasprintf("field '%s' required flag differs", f->name));
        }
    }
    for (size_t i = 0; i < a->nbody; i++) {
        test_checks++;
        if (cJSON_GetObjectItemCaseSensitive(props, a->body[i].name) == NULL) {
            fail_action_msg(a, xasprintf("binding body.%s is not in the request schema",
                                         a->body[i].name));
        }
    }
    /* Every spec property is declared (as a field or a binding), so a rule
     * can set anything the API takes. */
    const cJSON *prop;
    cJSON_ArrayForEach(prop, props)
    {
        bool declared = catalog_action_field(a, prop->string) != NULL ||
                        catalog_action_binding(a, prop->string) != NULL;
        bool omitted = is_omitted(a->name, prop->string);
        test_checks++;
        if (omitted && declared) {
            fail_action_msg(a, xasprintf("'%s' is declared but listed as omitted", prop->string));
        } else if (!omitted && !declared) {
            fail_action_msg(a, xasprintf("spec property '%s' is not declared", prop->string));
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(omitted_fields); i++) {
        test_checks++;
        if (omitted_fields[i].action != NULL && strcmp(omitted_fields[i].action, a->name) == 0 &&
            cJSON_GetObjectItemCaseSensitive(props, omitted_fields[i].field) == NULL) {
            fail_action_msg(a, xasprintf("omitted '%s' is no longer in the spec: drop the "
                                         "exception",
                                         omitted_fields[i].field));
        }
    }
}

static void check_action_against_spec(const struct catalog_action *a,
                                      const struct spec_cache *spec)
{
    const cJSON *root = spec->root;
    test_checks++;
    if (root == NULL) {
        fail_action(a, spec->why);
        return;
    }
    const char *gap_param = NULL;
    unsigned gaps = gaps_of(a->name, &gap_param);
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "paths"), a->path);
    char method[8];
    size_t i = 0;
    for (; a->method[i] != '\0' && i + 1 < sizeof(method); i++) {
        method[i] = (char)tolower((unsigned char)a->method[i]);
    }
    method[i] = '\0';
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(item, method);
    test_checks++;
    if (!cJSON_IsObject(op)) {
        fail_action(a, "does not match the spec: no such path and method");
        return;
    }
    const cJSON *opid = cJSON_GetObjectItemCaseSensitive(op, "operationId");
    test_checks++;
    if (!cJSON_IsString(opid) || strcmp(opid->valuestring, a->operation_id) != 0) {
        fail_action(a, "does not match the spec: operationId differs");
    }
    const cJSON *venum = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(spec_param(root, op, "header", "Version"), "schema"),
        "enum");
    test_checks++;
    if (cJSON_GetArraySize(venum) != 1 || !cJSON_IsString(cJSON_GetArrayItem(venum, 0)) ||
        strcmp(cJSON_GetArrayItem(venum, 0)->valuestring, a->version) != 0) {
        fail_action(a, "does not match the spec: Version header enum differs");
    }

    const cJSON *security = cJSON_GetObjectItemCaseSensitive(op, "security");
    bool scope_found = false;
    const cJSON *req;
    cJSON_ArrayForEach(req, security)
    {
        const cJSON *scheme;
        cJSON_ArrayForEach(scheme, req)
        {
            const cJSON *sc;
            cJSON_ArrayForEach(sc, scheme)
            {
                if (cJSON_IsString(sc) && strcmp(sc->valuestring, a->scope) == 0) {
                    scope_found = true;
                }
            }
        }
    }
    test_checks++;
    if (gaps & GAP_NO_SECURITY) {
        if (security != NULL) {
            fail_action(a, "the spec now has a security block: drop the gap");
        }
    } else if (gaps & GAP_NO_SCOPE) {
        if (scope_found) {
            fail_action(a, "the spec now lists the scope: drop the gap");
        }
    } else if (!scope_found) {
        fail_action(a, "does not match the spec: scope not in the security requirements");
    }

    for (size_t p = 0; p < a->nparams; p++) {
        const struct catalog_param *cp = &a->params[p];
        bool declared = spec_param(root, op, catalog_where_name(cp->where), cp->name) != NULL;
        bool excused = (gaps & GAP_PATH_PARAM) && gap_param != NULL &&
                       strcmp(gap_param, cp->name) == 0;
        test_checks++;
        if (excused && declared) {
            fail_action(a, "the gap's path parameter is now declared: drop the gap");
        } else if (!excused && !declared) {
            fail_action_msg(a, xasprintf("%s parameter '%s' is not in the spec",
                                         catalog_where_name(cp->where), cp->name));
        }
    }
    const cJSON *sp;
    cJSON_ArrayForEach(sp, cJSON_GetObjectItemCaseSensitive(op, "parameters"))
    {
        const cJSON *d = deref(root, sp);
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(d, "in");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(d, "name");
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "required")) ||
            !cJSON_IsString(in) || !cJSON_IsString(name) ||
            (strcmp(in->valuestring, "path") != 0 && strcmp(in->valuestring, "query") != 0)) {
            continue;
        }
        bool bound = false; /* query.NAME / path.NAME: the engine sets it (M2) */
        for (size_t q = 0; q < a->nquery; q++) {
            bound = bound || strcmp(a->query[q].name, name->valuestring) == 0;
        }
        for (size_t q = 0; q < a->npath_bind; q++) {
            bound = bound || strcmp(a->path_bind[q].name, name->valuestring) == 0;
        }
        test_checks++;
        if (catalog_action_param(a, name->valuestring) == NULL && !bound) {
            fail_action_msg(a, xasprintf("required %s parameter '%s' is not provided",
                                         in->valuestring, name->valuestring));
        }
    }

    /* The documented success status, and the member holding the result. */
    char code[8];
    snprintf(code, sizeof(code), "%u", a->success);
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(op, "responses"), code);
    test_checks++;
    if (resp == NULL) {
        fail_action_msg(a, xasprintf("no %s response in the spec", code));
    }
    const cJSON *rschema = deref(
        root, cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(
                      cJSON_GetObjectItemCaseSensitive(resp, "content"), "application/json"),
                  "schema"));
    const cJSON *rprops = cJSON_GetObjectItemCaseSensitive(rschema, "properties");
    if (gaps & GAP_EMPTY_RESPONSE) {
        test_checks++;
        if (cJSON_GetArraySize(rprops) != 0) {
            fail_action(a, "the success response now has a schema: drop the gap");
        }
    } else if (a->result != NULL && strcmp(a->result, ".") == 0) {
        test_checks++; /* the root is the record: the response schema has its id */
        if (cJSON_GetObjectItemCaseSensitive(rprops, "id") == NULL) {
            fail_action_msg(a, xasprintf("result = . but the %s response has no id", code));
        }
    } else if (a->result != NULL) {
        char *first = xstrndup(a->result, strcspn(a->result, "."));
        test_checks++;
        if (cJSON_GetObjectItemCaseSensitive(rprops, first) == NULL) {
            fail_action_msg(a, xasprintf("result '%s' is not in the %s response", a->result,
                                         code));
        }
        free(first);
    }
    check_action_body(a, root, op, gaps, gap_param);
}

/* Every definition against the vendored spec file it names. */
static void test_spec(const struct catalog *cat)
{
    struct spec_cache cache[64] = {{0}};
    size_t checked = 0;
    for (size_t i = 0; i < catalog_trigger_count(cat); i++) {
        const struct catalog_trigger *t = catalog_trigger_at(cat, i);
        CHECK(t->spec != NULL);
        if (t->spec == NULL) {
            continue;
        }
        check_against_spec(t, load_spec(cache, ARRAY_SIZE(cache), t->spec));
        checked++;
    }
    CHECK(checked >= ARRAY_SIZE(triggers_expected));
    size_t checked_actions = 0;
    for (size_t i = 0; i < catalog_action_count(cat); i++) {
        const struct catalog_action *a = catalog_action_at(cat, i);
        CHECK(a->spec != NULL);
        if (a->spec == NULL) {
            continue;
        }
        check_action_against_spec(a, load_spec(cache, ARRAY_SIZE(cache), a->spec));
        checked_actions++;
    }
    CHECK_INT(checked_actions, ARRAY_SIZE(actions_expected));
    for (size_t i = 0; i < ARRAY_SIZE(trigger_scope_gaps); i++) {
        CHECK(catalog_find_trigger(cat, trigger_scope_gaps[i].trigger) != NULL);
        CHECK(trigger_scope_gaps[i].why != NULL);
    }
    /* Every gap and omission names a shipped action. */
    for (size_t i = 0; i < ARRAY_SIZE(action_gaps); i++) {
        CHECK(catalog_find_action(cat, action_gaps[i].action) != NULL);
        CHECK(action_gaps[i].why != NULL);
    }
    for (size_t i = 0; i < ARRAY_SIZE(omitted_fields) && omitted_fields[i].action != NULL; i++) {
        CHECK(catalog_find_action(cat, omitted_fields[i].action) != NULL);
        CHECK(omitted_fields[i].why != NULL);
    }
    for (size_t i = 0; i < ARRAY_SIZE(cache); i++) {
        free(cache[i].file);
        free(cache[i].why);
        cJSON_Delete(cache[i].root);
    }
}

/* ------------------------------------------------------------------------ */
/* Broken definitions                                                        */

/* A valid definition; cases replace one of its lines or append lines.
 * pagination is last so a case can replace it with several lines. */
static const char *const base_lines[] = {
    "[t.x]",                                 /* 1 */
    "title = T",                             /* 2 */
    "operation_id = op",                     /* 3 */
    "method = GET",                          /* 4 */
    "path = /things/{thingId}",              /* 5 */
    "version = 2021-07-28",                  /* 6 */
    "scope = s.readonly",                    /* 7 */
    "resource = thing",                      /* 8 */
    "records = things",                      /* 9 */
    "param.thingId = path string required",  /* 10 */
    "pagination = none",                     /* 11 */
};

struct bad_case {
    int replace;      /* line to replace (1-based), or 0 to append */
    const char *text; /* replacement or appended lines ("" deletes) */
    int line;         /* expected error line */
    const char *want; /* expected substring */
};

static const struct bad_case bad_cases[] = {
    /* Incremental polling (M13). */
    {0, "incremental = yes", 12, "bad value for 'incremental' (allowed: filter)"},
    {0, "incremental = filter", 12,
     "needs incremental = filter, watermark_field and incremental.body.NAME (or "
     "incremental.query.NAME) together"},
    {0, "incremental = filter\nwatermark_field = u\nincremental.query.since = x", 14,
     "no incremental.query.NAME value has the {watermark} or {watermark_iso} placeholder"},
    {0, "incremental = filter\nwatermark_field = u\nincremental.query.since = {watermark_iso}",
     12, "needs pagination = search_after or cursor"},
    {0, "cursor_param = c", 12, "cursor_param does not apply to pagination = none"},
    /* HighLevel's keys are required in the product's catalog (catalog_load_api: below). */
    {6, "", 1, "missing required key 'version' in [t.x]"},
    {7, "", 1, "missing required key 'scope' in [t.x]"},
    {0, "incremental = filter\nwatermark_field = updatedAt\nincremental.body.f = json:[{watermark}]",
     12, "needs pagination = search_after"},
    {0, "incremental = filter\nwatermark_field = updatedAt\nincremental.body.f = json:[{watermark}]",
     12, "it needs a POST"},
    {0, "incremental.body.f = [1]", 12, "the value must be json:"},
    {0, "incremental.body.f = json:[{watermark}", 12, "is not valid JSON after 'json:'"},
    {0, "incremental = filter\nwatermark_field = u\nincremental.body.f = json:[1]", 14,
     "has the {watermark} placeholder"},
    {0, "incremental.body.a-b = json:1", 12, "must be letters, digits and _"},
    {0, "scop = x", 12, "unknown key 'scop' in [t.x]; did you mean 'scope'?"},
    {9, "", 1, "missing required key 'records' in [t.x]"},
    {4, "method = PUT", 4, "bad value 'PUT' for 'method' (allowed: GET POST)"},
    {11, "pagination = pages", 11, "bad value for 'pagination'"},
    {5, "path = /things/{thingId}/{other}", 5, "path placeholder {other} needs"},
    {5, "path = /things", 10, "path parameter 'thingId' does not appear in path"},
    {5, "path = things/{thingId}", 5, "path must start with '/'"},
    {5, "path = /things/{thingId", 5, "'{' without '}'"},
    {0, "fan_out = contactId\nparent_resource = contact", 12, "not a declared param.contactId"},
    {0, "fan_out = thingId", 12, "fan_out needs parent_resource"},
    {0, "parent_resource = contact", 12, "only meaningful with fan_out"},
    {11, "single = yes\npagination = skip_limit\npage_size = 10\nmax_page_size = 20", 11,
     "single = yes needs pagination = none"},
    {11, "pagination = start_after", 1, "needs max_page_size"},
    {11, "pagination = skip_limit\npage_size = 50\nmax_page_size = 20", 12,
     "page_size = 50 is larger than max_page_size = 20"},
    {0, "page_size = 10", 12, "page sizes given but pagination = none"},
    {0, "param.q = query strin optional", 12, "must be 'WHERE TYPE REQUIRED'"},
    {0, "param.every = query string optional", 12, "'every' is reserved"},
    {0, "param.q = query string_list optional", 12,
     "string_list is only for action body fields (field.NAME)"},
    {10, "param.thingId = path string optional", 10, "path parameter 'thingId' must be required"},
    {0, "query.sort = json:[1,", 12, "not valid JSON after 'json:'"},
    {0, "query.locationId = {locationid}", 12, "unknown placeholder"},
    {0, "body.x = 1", 1, "body.x binding on a GET endpoint"},
    {0, "query.q = 1\nparam.q = query string optional", 13, "also a fixed query.q binding"},
    {0, "confirm_delete = /things/{thingId}", 12, "must contain {id}"},
    {0, "confirm_delete = /things/{other}/{id}", 12,
     "confirm_delete placeholder {other} is not a path parameter"},
    {0, "confirm_delete = /things/{record.a-b}/{id}", 12, "or, in confirm_delete, {record.FIELD}"},
    {0, "confirm_delete = /things/{record.}/{id}", 12, "placeholders are {NAME}"},
    {0, "confirm_delete = /things/{record.a..b}/{id}", 12, "placeholders are {NAME}"},
    {0, "confirm_delete = /things/{records.a}/{id}", 12, "placeholders are {NAME}"},
    {0, "confirm_delete = /things/{record}/{id}", 12, "placeholder {record} is not a path parameter"},
    {5, "path = /things/{thingId}/{record.ownerId}", 5,
     "{record.ownerId}: a record's fields fill confirm_delete only"},
    {0, "fan_out = thingId\nparent_resource = contact\nconfirm_delete = /o/{record.ownerId}/{id}", 14,
     "{record.FIELD} is for definitions without fan_out (name the parent as {thingId})"},
    {0, "require_one = email", 12, "'email', which is not a declared param.email"},
    {9, "records = things[0]", 9, "dotted JSON path"},
    {9, "records = ..", 9, "dotted JSON path"},
    {9, "records = .things", 9, "dotted JSON path"},
    {0, "path.thingId = abc", 5, "is both a path parameter and a path.thingId value"},
    {0, "path.other = abc", 12, "path.other does not appear in path as {other}"},
    {5, "path = /things/{thingId}/{kind}\npath.kind = json:1", 6,
     "a path value is text, {location} or {company} (not json:)"},
    {5, "path = /things/{thingId}/{kind}\npath.kind = {locationid}", 6, "unknown placeholder"},
    {0, "query.companyId = {compan}", 12, "unknown placeholder"},
    {0, "deleted_field = is-deleted", 12, "deleted_field must be a single name"},
    {0, "scope_level = company", 12, "bad value for 'scope_level' (allowed: location agency)"},
    {0, "scope_level = agency\nquery.locationId = {location}", 12,
     "'locationId' is {location}, and an agency definition has no location"},
    {0, "fan_out = thingId\nparent_resource = contact\ndeleted_field = deleted", 14,
     "deleted_field is not supported with fan_out"},
    {0, "page_skip_param = offset", 12, "page_skip_param does not apply to pagination = none"},
    {11, "pagination = start_after\npage_size = 10\nmax_page_size = 20\npage_skip_param = offset",
     14, "page_skip_param does not apply to pagination = start_after"},
    {11, "pagination = skip_limit\npage_size = 10\nmax_page_size = 20\ncursor_id_path = meta.id",
     14, "cursor_id_path does not apply to pagination = skip_limit"},
    {11, "pagination = offset_limit\npage_size = 10\nmax_page_size = 20\npage_in = body", 14,
     "page_in = body on a GET endpoint"},
    {0, "page_in = form", 12, "bad value 'form' for 'page_in'"},
    {0, "page_values = int", 12, "bad value 'int' for 'page_values'"},
    {0, "page_limit_param = page-size", 12, "page_limit_param must be a single name"},
    {0, "total = meta..total", 12, "dotted JSON path"},
    {11, "single = yes\npagination = none\ntotal = count", 13,
     "total on a single = yes definition"},
    {0, "single = maybe", 12, "bad value 'maybe' for 'single' (expected yes or no)"},
    {0, "page_size = 0", 12, "expected a whole number from 1 to 10000"},
    {1, "[Things.X]", 1, "bad trigger name"},
    {1, "[t.x extra]", 1, "bad trigger name"},
    {0, "[t.x]", 12, "duplicate section [t.x] (first on line 1)"},
    {0, "title = again", 12, "duplicate key 'title' (first set on line 2)"},
    {0, "[t.y", 12, "missing ']' in section header"},
    {0, "title2 = \xff", 12, "invalid UTF-8"},
    {1, "x = 1\n[t.x]", 1, "key 'x' is outside any [section]"},
    {0, "volatile = "
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaa",
     12, "line is 210 bytes long; the limit is 198"},
};

static char *build_from(const char *const *base, size_t nbase, const struct bad_case *c)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    for (size_t i = 0; i < nbase; i++) {
        if (c->replace == (int)i + 1) {
            if (c->text[0] != '\0') {
                fprintf(f, "%s\n", c->text);
            }
        } else {
            fprintf(f, "%s\n", base[i]);
        }
    }
    if (c->replace == 0) {
        fprintf(f, "%s\n", c->text);
    }
    fclose(f);
    return text;
}

static char *build_case(const struct bad_case *c)
{
    return build_from(base_lines, ARRAY_SIZE(base_lines), c);
}

/*
 * The issue #11 keys parse: records = . (M1), path.NAME values and
 * {company} (M2, M3) in path, query and body, confirm_delete filled by a
 * path value, deleted_field (M11).
 */
static void test_mechanism_keys(void)
{
    char *dir = xasprintf("%s/catalog_mechanisms", test_tmp_root());
    char *tdir = xasprintf("%s/triggers", dir);
    char *file = xasprintf("%s/a.ini", tdir);
    remove_tree(dir);
    CHECK(util_mkdir_p(tdir, 0755) == 0);
    write_file(file, "[t.x]\ntitle = T\noperation_id = op\nmethod = POST\n"
                     "path = /companies/{companyId}/kinds/{kind}/things\n"
                     "version = 2021-07-28\nscope = s.readonly\nresource = thing\n"
                     "records = .\npagination = none\npath.companyId = {company}\n"
                     "path.kind = rooms\nquery.companyId = {company}\nbody.loc = {location}\n"
                     "body.company = {company}\ndeleted_field = deleted\n"
                     "confirm_delete = /companies/{companyId}/things/{id}\n"
                     "[t.y]\ntitle = T\noperation_id = op\nmethod = GET\npath = /things\n"
                     "version = 2021-07-28\nscope = s.readonly\nresource = thing\n"
                     "records = data.things\npagination = none\nquery.locationId = {location}\n"
                     "confirm_delete = /owners/{record.owner.id}/things/{record.kind}/{id}\n");
    struct ini_errors errs = {0};
    struct catalog *cat = NULL;
    CHECK_INT(catalog_load(dir, &config_reserved_keys, &cat, &errs), 0);
    dump_errors(&errs);
    const struct catalog_trigger *t = cat != NULL ? catalog_find_trigger(cat, "t.x") : NULL;
    CHECK(t != NULL);
    if (t != NULL) {
        CHECK(catalog_trigger_records_at_root(t) && !t->single);
        CHECK(catalog_trigger_uses_company(t));
        CHECK_STR(t->deleted_field, "deleted");
        CHECK_INT(t->npath_values, 2);
        const struct catalog_binding *c = catalog_trigger_path_value(t, "companyId");
        CHECK(c != NULL && c->is_company && !c->is_location && !c->is_json);
        const struct catalog_binding *k = catalog_trigger_path_value(t, "kind");
        CHECK(k != NULL && !k->is_company && strcmp(k->value, "rooms") == 0);
        CHECK(catalog_trigger_path_value(t, "nope") == NULL);
        CHECK(catalog_trigger_param(t, "companyId") == NULL); /* a value, not a parameter */
        CHECK(t->nquery == 1 && t->query[0].is_company);
        CHECK(t->nbody == 2 && t->body[0].is_location && t->body[1].is_company);
    }
    const struct catalog_trigger *y = cat != NULL ? catalog_find_trigger(cat, "t.y") : NULL;
    CHECK(y != NULL && !catalog_trigger_records_at_root(y) && !catalog_trigger_uses_company(y) &&
          y->deleted_field == NULL && y->npath_values == 0);
    if (y != NULL) {
        CHECK_STR(y->confirm_delete, "/owners/{record.owner.id}/things/{record.kind}/{id}");
    }
    catalog_free(cat);
    ini_errors_free(&errs);
    remove_tree(dir);
    free(file);
    free(tdir);
    free(dir);
}

/* M13: contacts.search ships incremental, and {watermark} renders as a number. */
static void test_incremental_keys(const struct catalog *cat)
{
    const struct catalog_trigger *t = catalog_find_trigger(cat, "contacts.search");
    CHECK(t != NULL && t->incremental && t->nincr_body == 2);
    if (t != NULL && t->nincr_body == 2) {
        CHECK_STR(t->watermark_field, "dateUpdated");
        CHECK_STR(t->incr_body[0].name, "filters");
        CHECK(strstr(t->incr_body[0].value, "{watermark}") != NULL);
        CHECK_STR(t->incr_body[1].name, "sort");
    }
    const struct catalog_trigger *o = catalog_find_trigger(cat, "opportunities.search_advanced");
    CHECK(o != NULL && o->incremental && o->watermark_field != NULL);
    const struct catalog_trigger *l = catalog_find_trigger(cat, "contacts.list");
    CHECK(l != NULL && !l->incremental && l->nincr_body == 0);
    char *r = catalog_watermark_render("{\"gte\":{watermark},\"x\":\"{watermark}\"}", 1700000000123LL);
    CHECK_STR(r, "{\"gte\":1700000000123,\"x\":\"1700000000123\"}");
    free(r);
    r = catalog_watermark_render("{watermark", 5);
    CHECK_STR(r, "{watermark");
    free(r);
    r = catalog_watermark_render("", 5);
    CHECK_STR(r, "");
    free(r);
}

static void test_bad_cases(void)
{
    char *dir = xasprintf("%s/catalog_cases", test_tmp_root());
    char *tdir = xasprintf("%s/triggers", dir);
    char *file = xasprintf("%s/a.ini", tdir);
    remove_tree(dir);
    CHECK(util_mkdir_p(tdir, 0755) == 0);

    /* The base itself is valid, so each case fails for its own reason. */
    struct bad_case none = {0, "", 0, NULL};
    char *text = build_case(&none);
    write_file(file, text);
    free(text);
    struct ini_errors errs = {0};
    struct catalog *cat = NULL;
    CHECK_INT(catalog_load(dir, &config_reserved_keys, &cat, &errs), 0);
    CHECK_INT(errs.count, 0);
    dump_errors(&errs);
    CHECK_INT(catalog_trigger_count(cat), 1);
    catalog_free(cat);
    ini_errors_free(&errs);

    for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        text = build_case(c);
        write_file(file, text);
        free(text);
        cat = (struct catalog *)1;
        int rc = catalog_load(dir, &config_reserved_keys, &cat, &errs);
        CHECK_INT(rc, -EINVAL);
        CHECK(cat == NULL);
        bool ok = has_error(&errs, "a.ini", c->line, c->want);
        CHECK(ok);
        if (!ok) {
            fprintf(stderr, "  case %zu: want a.ini:%d: ...%s\n", i, c->line, c->want);
            dump_errors(&errs);
        }
        ini_errors_free(&errs);
    }

    /* The same name in two files: reported in the later file. */
    text = build_case(&none);
    char *file_b = xasprintf("%s/b.ini", tdir);
    write_file(file, text);
    write_file(file_b, text);
    free(text);
    CHECK_INT(catalog_load(dir, &config_reserved_keys, &cat, &errs), -EINVAL);
    CHECK(has_error(&errs, "b.ini", 1, "duplicate trigger 't.x' (first defined at "));
    CHECK(errs.count == 1 && strstr(errs.items[0], "a.ini:1)") != NULL);
    ini_errors_free(&errs);

    /* Errors from several files are all reported, file by file. */
    write_file(file, "[t.a]\ntitle = x\n");
    write_file(file_b, "[t.b]\nbogus\n");
    CHECK_INT(catalog_load(dir, &config_reserved_keys, &cat, &errs), -EINVAL);
    CHECK(has_error(&errs, "a.ini", 1, "missing required key 'operation_id'"));
    CHECK(has_error(&errs, "b.ini", 2, "expected 'key = value'"));
    CHECK(errs.count > 2 && strstr(errs.items[0], "a.ini:") != NULL &&
          strstr(errs.items[errs.count - 1], "b.ini:") != NULL);
    ini_errors_free(&errs);
    unlink(file_b);
    free(file_b);

    /* A user's own API's catalog (catalog_load_api): no version (refused),
     * scope optional, no {location}; pagination = cursor and an incremental
     * query filter on a GET. */
    struct bad_case api_ok = {6, "", 0, NULL};
    text = build_case(&api_ok);
    char *api_text = xasprintf("%spagination = cursor\nmax_page_size = 50\nincremental = filter\n"
                               "watermark_field = u\nincremental.query.since = {watermark_iso}\n",
                               text);
    free(text);
    char *cut = strstr(api_text, "pagination = none\n");
    if (cut != NULL) {
        memmove(cut, cut + strlen("pagination = none\n"), strlen(cut + strlen("pagination = none\n")) + 1);
    }
    write_file(file, api_text);
    CHECK_INT(catalog_load_api(dir, &config_reserved_keys, &cat, &errs), 0);
    dump_errors(&errs);
    const struct catalog_trigger *at = cat != NULL ? catalog_find_trigger(cat, "t.x") : NULL;
    CHECK(at != NULL && at->version == NULL && at->pagination == CATALOG_PAGE_CURSOR &&
          at->nincr_query == 1 && at->page_size == 50);
    catalog_free(cat);
    ini_errors_free(&errs);
    CHECK_INT(catalog_load(dir, &config_reserved_keys, &cat, &errs), -EINVAL);
    CHECK(has_error(&errs, "a.ini", 1, "missing required key 'version' in [t.x]"));
    ini_errors_free(&errs);
    char *api_bad = xasprintf("%sversion = 1\nquery.loc = {location}\n", api_text);
    write_file(file, api_bad);
    CHECK_INT(catalog_load_api(dir, &config_reserved_keys, &cat, &errs), -EINVAL);
    CHECK(has_error(&errs, "a.ini", 15, "version is HighLevel's Version header"));
    CHECK(has_error(&errs, "a.ini", 1, "'loc' is {location}, which only HighLevel definitions"));
    ini_errors_free(&errs);
    free(api_bad);
    free(api_text);
    char *r = catalog_watermark_render_text("a={watermark_iso}&b={watermark}", 1700000000123LL);
    CHECK_STR(r, "a=2023-11-14T22:13:20.123Z&b=1700000000123");
    free(r);

    /* No actions/ directory is fine; no triggers/ directory is not. */
    text = build_case(&none);
    write_file(file, text);
    free(text);
    CHECK_INT(catalog_load(dir, &config_reserved_keys, &cat, &errs), 0);
    CHECK_INT(catalog_trigger_count(cat), 1);
    catalog_free(cat);
    ini_errors_free(&errs);
    char *missing = xasprintf("%s/nowhere", dir);
    CHECK_INT(catalog_load(missing, &config_reserved_keys, &cat, &errs), -ENOENT);
    CHECK(cat == NULL);
    CHECK(errs.count == 1 && strstr(errs.items[0], "cannot read the catalog directory") != NULL);
    ini_errors_free(&errs);
    free(missing);

    remove_tree(dir);
    free(file);
    free(tdir);
    free(dir);
}

/* ------------------------------------------------------------------------ */
/* Broken actions                                                            */

/* A valid action; cases replace one of its lines or append lines. */
static const char *const action_base[] = {
    "[a.x]",                                /* 1 */
    "title = T",                            /* 2 */
    "operation_id = op",                    /* 3 */
    "method = PUT",                         /* 4 */
    "path = /things/{thingId}",             /* 5 */
    "version = 2021-07-28",                 /* 6 */
    "scope = s.write",                      /* 7 */
    "success = 200",                        /* 8 */
    "destructive = no",                     /* 9 */
    "idempotent = yes",                     /* 10 */
    "param.thingId = path string required", /* 11 */
    "field.name = string optional",         /* 12 */
};

static const struct bad_case action_cases[] = {
    {0, "scop = x", 13, "unknown key 'scop' in [a.x]; did you mean 'scope'?"},
    {8, "", 1, "missing required key 'success' in [a.x]"},
    {9, "", 1, "missing required key 'destructive' in [a.x]"},
    {10, "", 1, "missing required key 'idempotent' in [a.x]"},
    {4, "method = HEAD", 4, "bad value 'HEAD' for 'method' (allowed: GET POST PUT PATCH DELETE)"},
    {8, "success = 404", 8, "expected a whole number from 200 to 299"},
    {9, "destructive = maybe", 9, "bad value 'maybe' for 'destructive' (expected yes or no)"},
    {5, "path = /things", 11, "path parameter 'thingId' does not appear in path as {thingId}"},
    {5, "path = /things/{thingId}/{x}", 5, "path placeholder {x} needs 'param.x = path"},
    {11, "param.thingId = path string optional", 11, "path parameter 'thingId' must be required"},
    {11, "param.thingId = body string required", 11,
     "declared as 'field.thingId = TYPE REQUIRED'"},
    {0, "param.confirm = query string optional", 13,
     "parameter name 'confirm' is reserved for [rule] sections"},
    {12, "field.name = text optional", 12, "'field.name' must be 'TYPE REQUIRED'"},
    {12, "field.name = string", 12, "'field.name' must be 'TYPE REQUIRED'"},
    {0, "field.tags = string_list maybe", 13, "'field.tags' must be 'TYPE REQUIRED'"},
    {0, "field.on = string optional", 13, "field name 'on' is reserved for [rule] sections"},
    {0, "field.a-b = string optional", 13, "the name after 'field.' must be letters, digits"},
    {0, "field.thingId = string optional", 13, "has the name of param.thingId"},
    {0, "body.name = x", 12, "field 'name' is also a fixed body.name binding"},
    {0, "body.x = json:{", 13, "not valid JSON after 'json:'"},
    {4, "method = GET", 1, "[a.x] is a GET endpoint: it takes no body"},
    {12, "", 1, "[a.x] is a PUT without body members"},
    {0, "empty_body = yes", 13, "empty_body = yes, but [a.x] declares body members"},
    {4, "method = DELETE\nempty_body = yes", 5, "only meaningful for POST, PUT and PATCH"},
    {0, "gone_ok = yes", 13, "gone_ok = yes is only for DELETE endpoints"},
    {0, "target = name", 13, "target names 'name', which is not a declared path parameter"},
    {0, "target = thingId", 13, "target needs target_resource"},
    {0, "result = a b", 13, "dotted JSON path"},
    {0, "result = ..", 13, "dotted JSON path"},
    {0, "field.pw = secret", 13, "'field.pw' must be 'TYPE REQUIRED'"},
    {0, "param.pw = query secret optional", 13, "'param.pw' must be 'WHERE TYPE REQUIRED'"},
    /* conflict_ok: creates only, with a natural key that is a required field */
    {0, "conflict_ok = yes\nnatural_key = name", 13, "conflict_ok = yes is only for creates"},
    {0, "natural_key = name", 13, "natural_key is only for conflict_ok"},
    {4, "method = POST\nidempotent = no\nconflict_ok = yes", 6,
     "conflict_ok needs natural_key"},
    {4, "method = POST\nidempotent = no\nconflict_ok = yes\nnatural_key = name", 7,
     "natural_key names 'name', which is not a required field"},
    /* destructive_when: FIELD:null on a nullable field of a non-destructive action */
    {0, "destructive_when = name", 13, "destructive_when must be FIELD:null"},
    {0, "destructive_when = name:empty", 13, "destructive_when must be FIELD:null"},
    {0, "destructive_when = name:null", 13, "'name', which is not a nullable field"},
    {12, "field.name = string optional nullable\ndestructive_when = nope:null", 13,
     "'nope', which is not a nullable field"},
    {9, "destructive = yes\nfield.x = string optional nullable\ndestructive_when = x:null", 11,
     "destructive_when is for destructive = no"},
    {12, "field.name = string optional null", 12, "must be 'TYPE REQUIRED' or 'TYPE REQUIRED nullable'"},
    {12, "field.name = secret optional nullable", 12, "secret (never nullable)"},
    {0, "default.nope = 1", 13, "default.nope names no optional, non-secret field"},
    {0, "default.thingId = 1", 13, "default.thingId names no optional, non-secret field"},
    {0, "default.name = json:[", 13, "not valid JSON after 'json:'"},
    /* M2: fixed query and path bindings of actions */
    {0, "query.all = json:true", 13, "a query or path binding is text, {location} or {company}, not json:"},
    {0, "path.x = {location}", 13, "path.x does not appear in path as {x}"},
    {0, "path.thingId = {location}", 13, "path.thingId is also declared as param.thingId"},
    {0, "query.thingId = a", 13, "query.thingId is also declared as param.thingId"},
    {0, "query.x = {compny}", 13, "unknown placeholder"},
    {1, "[http]", 1, "action name 'http' is reserved for the generic action"},
    {1, "[A.x]", 1, "bad action name"},
    {0, "[a.x]", 13, "duplicate section [a.x] (first on line 1)"},
};

static void test_bad_action_cases(void)
{
    char *dir = xasprintf("%s/catalog_action_cases", test_tmp_root());
    char *tdir = xasprintf("%s/triggers", dir);
    char *adir = xasprintf("%s/actions", dir);
    char *tfile = xasprintf("%s/a.ini", tdir);
    char *file = xasprintf("%s/a.ini", adir);
    char *file_b = xasprintf("%s/b.ini", adir);
    remove_tree(dir);
    CHECK(util_mkdir_p(tdir, 0755) == 0);
    CHECK(util_mkdir_p(adir, 0755) == 0);
    struct bad_case none = {0, "", 0, NULL};
    char *text = build_case(&none);
    write_file(tfile, text);
    free(text);

    /* The base is valid, so each case fails for its own reason. */
    text = build_from(action_base, ARRAY_SIZE(action_base), &none);
    write_file(file, text);
    free(text);
    struct ini_errors errs = {0};
    struct catalog *cat = NULL;
    CHECK_INT(catalog_load(dir, &config_reserved_keys, &cat, &errs), 0);
    dump_errors(&errs);
    CHECK_INT(catalog_action_count(cat), 1);
    const struct catalog_action *a = catalog_find_action(cat, "a.x");
    CHECK(a != NULL);
    if (a != NULL) {
        /* Defaults of the optional keys. */
        CHECK(!a->gone_ok && !a->empty_body && !a->destructive && a->idempotent);
        CHECK(a->result == NULL && a->target == NULL && a->target_resource == NULL);
        CHECK_INT(a->success, 200);
        CHECK_INT(a->nfields, 1);
        CHECK_INT(a->line, 1);
    }
    /* A trigger and an action may share a name. */
    CHECK(catalog_find_trigger(cat, "t.x") != NULL && catalog_find_action(cat, "t.x") == NULL);
    catalog_free(cat);
    ini_errors_free(&errs);

    for (size_t i = 0; i < ARRAY_SIZE(action_cases); i++) {
        const struct bad_case *c = &action_cases[i];
        text = build_from(action_base, ARRAY_SIZE(action_base), c);
        write_file(file, text);
        free(text);
        cat = (struct catalog *)1;
        CHECK_INT(catalog_load(dir, &config_reserved_keys, &cat, &errs), -EINVAL);
        CHECK(cat == NULL);
        bool ok = has_error(&errs, "a.ini", c->line, c->want);
        CHECK(ok);
        if (!ok) {
            fprintf(stderr, "  action case %zu: want a.ini:%d: ...%s\n", i, c->line, c->want);
            dump_errors(&errs);
        }
        ini_errors_free(&errs);
    }

    /* The same action in two files: reported in the later file. */
    text = build_from(action_base, ARRAY_SIZE(action_base), &none);
    write_file(file, text);
    write_file(file_b, text);
    free(text);
    CHECK_INT(catalog_load(dir, &config_reserved_keys, &cat, &errs), -EINVAL);
    CHECK(has_error(&errs, "b.ini", 1, "duplicate action 'a.x' (first defined at "));
    CHECK(errs.count == 1 && strstr(errs.items[0], "a.ini:1)") != NULL);
    ini_errors_free(&errs);
    unlink(file_b);

    /* A well-formed set of the optional keys. */
    write_file(file, "[a.del]\ntitle = D\noperation_id = d\nmethod = DELETE\n"
                     "path = /things/{thingId}\nversion = v\nscope = s\nsuccess = 204\n"
                     "destructive = yes\nidempotent = yes\ngone_ok = yes\ntarget = thingId\n"
                     "target_resource = thing\nresult = data.thing\n"
                     "param.thingId = path string required\nparam.q = query integer optional\n"
                     "[a.empty]\ntitle = E\noperation_id = e\nmethod = POST\npath = /x\n"
                     "version = v\nscope = s\nsuccess = 201\ndestructive = no\nidempotent = no\n"
                     "empty_body = yes\nresult = .\n"
                     "[a.loc]\ntitle = L\noperation_id = l\nmethod = DELETE\n"
                     "path = /locations/{locationId}/x/{id}\nversion = v\nscope = s\n"
                     "success = 200\ndestructive = yes\nidempotent = yes\n"
                     "path.locationId = {location}\nquery.locationId = {location}\n"
                     "query.all = true\nparam.id = path string required\n"
                     "field.pw = secret optional\n"
                     "[a.set]\ntitle = S\noperation_id = s\nmethod = POST\npath = /set\n"
                     "version = v\nscope = s\nsuccess = 200\ndestructive = no\n"
                     "idempotent = yes\nfield.biz = string required nullable\n"
                     "destructive_when = biz:null\nfield.tags = string_list optional\n"
                     "default.tags = json:[]\n");
    CHECK_INT(catalog_load(dir, &config_reserved_keys, &cat, &errs), 0);
    dump_errors(&errs);
    CHECK_INT(catalog_action_count(cat), 4);
    const struct catalog_action *d = catalog_find_action(cat, "a.del");
    if (d != NULL) {
        CHECK(d->destructive && d->gone_ok);
        CHECK_STR(d->target, "thingId");
        CHECK_STR(d->result, "data.thing");
        CHECK_INT(d->success, 204);
        const struct catalog_param *q = catalog_action_param(d, "q");
        CHECK(q != NULL && q->where == CATALOG_QUERY && q->type == CATALOG_INTEGER);
    }
    /* Sorted: a.del before a.empty. */
    CHECK(catalog_action_at(cat, 0) == d);
    const struct catalog_action *e = catalog_find_action(cat, "a.empty");
    CHECK(e != NULL && e->empty_body && e->nfields == 0);
    CHECK_STR(e ? e->result : NULL, "."); /* M1: the response root is the record */
    /* M2: a placeholder filled by a path binding needs no param; query bindings in order. */
    const struct catalog_action *l = catalog_find_action(cat, "a.loc");
    CHECK(l != NULL && l->npath_bind == 1 && l->nquery == 2 && l->nparams == 1);
    if (l != NULL && l->npath_bind == 1 && l->nquery == 2) {
        CHECK_STR(l->path_bind[0].name, "locationId");
        CHECK(l->path_bind[0].is_location && l->query[0].is_location);
        CHECK_STR(l->query[1].name, "all");
        CHECK_STR(l->query[1].value, "true");
        CHECK(!l->query[1].is_location && !l->query[1].is_json);
    }
    /* M14: a secret field is a string the sink reads from a reference when sending. */
    const struct catalog_field *pw = l ? catalog_action_field(l, "pw") : NULL;
    CHECK(pw != NULL && pw->secret && pw->type == CATALOG_STRING && !pw->required);
    /* M14: conditional destructiveness on a nullable field. */
    const struct catalog_action *st = catalog_find_action(cat, "a.set");
    CHECK(st != NULL && !st->destructive);
    CHECK_STR(st ? st->destructive_when : NULL, "biz");
    const struct catalog_field *biz = st ? catalog_action_field(st, "biz") : NULL;
    CHECK(biz != NULL && biz->nullable && biz->required && !biz->secret);
    const struct catalog_binding *dt = st ? catalog_action_default(st, "tags") : NULL;
    CHECK(dt != NULL && dt->is_json && strcmp(dt->value, "[]") == 0);
    CHECK(st == NULL || catalog_action_default(st, "biz") == NULL);
    catalog_free(cat);
    ini_errors_free(&errs);

    remove_tree(dir);
    free(file_b);
    free(file);
    free(tfile);
    free(adir);
    free(tdir);
    free(dir);
}

static bool reserve_q(const char *name)
{
    return strcmp(name, "q") == 0;
}

/*
 * The catalog does not know the user's file: catalog_load refuses exactly
 * the names its caller reserves. With config_reserved_keys a trigger
 * parameter named like a [trigger] key and an action field named like a
 * [rule] key are refused; with nothing reserved the same files load.
 */
static void test_reserved_names(void)
{
    char *dir = xasprintf("%s/catalog_reserved", test_tmp_root());
    char *tdir = xasprintf("%s/triggers", dir);
    char *adir = xasprintf("%s/actions", dir);
    char *tfile = xasprintf("%s/a.ini", tdir);
    char *afile = xasprintf("%s/a.ini", adir);
    remove_tree(dir);
    CHECK(util_mkdir_p(tdir, 0755) == 0);
    CHECK(util_mkdir_p(adir, 0755) == 0);
    struct bad_case every = {0, "param.every = query string optional", 12, NULL};
    char *text = build_case(&every);
    write_file(tfile, text);
    free(text);
    struct bad_case on = {0, "field.on = string optional", 13, NULL};
    text = build_from(action_base, ARRAY_SIZE(action_base), &on);
    write_file(afile, text);
    free(text);

    struct ini_errors errs = {0};
    struct catalog *cat = NULL;
    CHECK_INT(catalog_load(dir, NULL, &cat, &errs), 0);
    dump_errors(&errs);
    CHECK(cat != NULL && catalog_find_trigger(cat, "t.x") != NULL &&
          catalog_find_action(cat, "a.x") != NULL);
    catalog_free(cat);
    ini_errors_free(&errs);

    cat = (struct catalog *)1;
    CHECK_INT(catalog_load(dir, &config_reserved_keys, &cat, &errs), -EINVAL);
    CHECK(cat == NULL);
    CHECK(has_error(&errs, "a.ini", 12,
                    "parameter name 'every' is reserved for [trigger] sections; rename it"));
    CHECK(has_error(&errs, "a.ini", 13, "field name 'on' is reserved for [rule] sections"));
    CHECK_INT(errs.count, 2);
    ini_errors_free(&errs);

    /* Only what the caller reserves: here q, for triggers only. */
    write_file(tfile, "[t.x]\ntitle = T\noperation_id = op\nmethod = GET\npath = /things\n"
                      "version = v\nscope = s\nresource = thing\nrecords = things\n"
                      "param.q = query string optional\npagination = none\n");
    const struct catalog_reserved only_q = {.trigger_key = reserve_q};
    CHECK_INT(catalog_load(dir, &only_q, &cat, &errs), -EINVAL);
    CHECK(has_error(&errs, "a.ini", 10, "parameter name 'q' is reserved for [trigger] sections"));
    CHECK_INT(errs.count, 1);
    ini_errors_free(&errs);

    remove_tree(dir);
    free(afile);
    free(tfile);
    free(adir);
    free(tdir);
    free(dir);
}

/* ---- resources/ ([resource NAME] sections) ---- */

/* Every resource the shipped catalog names is declared, and the facts the
 * echo detector relies on are there. */
static void test_shipped_resources(const struct catalog *cat)
{
    CHECK(catalog_resource_count(cat) >= 10);
    for (size_t i = 0; i < catalog_trigger_count(cat); i++) {
        const struct catalog_trigger *t = catalog_trigger_at(cat, i);
        CHECK(t->res != NULL && strcmp(t->res->name, t->resource) == 0);
        CHECK(t->parent_resource == NULL ||
              catalog_find_resource(cat, t->parent_resource) != NULL);
    }
    for (size_t i = 0; i < catalog_action_count(cat); i++) {
        const struct catalog_action *a = catalog_action_at(cat, i);
        CHECK((a->target_resource == NULL) == (a->target_res == NULL));
    }
    const struct catalog_resource *c = catalog_find_resource(cat, "contact");
    const struct catalog_resource *task = catalog_find_resource(cat, "task");
    const struct catalog_resource *note = catalog_find_resource(cat, "note");
    CHECK(c != NULL && task != NULL && note != NULL);
    if (c == NULL || task == NULL || note == NULL) {
        return;
    }
    CHECK(catalog_resource_derived(c, "dateUpdated"));
    CHECK(catalog_resource_derived(c, "firstNameLowerCase"));
    CHECK(!catalog_resource_derived(c, "firstName"));
    CHECK(!catalog_resource_derived(task, "dateUpdated"));
    CHECK(c->parent == NULL && !c->touches_parent);
    const struct catalog_list_field *cf = catalog_resource_list(c, "customFields");
    CHECK(cf != NULL);
    if (cf != NULL) {
        CHECK_STR(cf->key, "id");
        CHECK_STR(cf->read, "value");
        CHECK(strv_len(cf->written) == 2 && strcmp(cf->written[0], "field_value") == 0 &&
              strcmp(cf->written[1], "value") == 0);
    }
    CHECK(catalog_resource_list(c, "tags") == NULL);
    for (int i = 0; i < 2; i++) {
        const struct catalog_resource *r = i == 0 ? task : note;
        CHECK(r->parent != NULL && strcmp(r->parent, "contact") == 0);
        CHECK(r->parent_field != NULL && strcmp(r->parent_field, "contactId") == 0);
        CHECK(r->touches_parent);
    }
    /* Actions and triggers point at the same declarations. */
    const struct catalog_action *create = catalog_find_action(cat, "contacts.tasks.create");
    CHECK(create != NULL && create->target_res == task);
    CHECK(catalog_find_trigger(cat, "contacts.search")->res == c);
}

struct resource_case {
    const char *resources; /* resources/r.ini */
    const char *action;    /* actions/a.ini, or NULL for none */
    const char *file;      /* where the error is reported */
    int line;
    const char *want;
};

/* The trigger of base_lines names resource `thing`. */
static const struct resource_case resource_cases[] = {
    {"[resource other]\n", NULL, "a.ini", 1,
     "[t.x]: resource 'thing' has no [resource thing] section in resources/"},
    {"[resource thing]\nparent = owner\nparent_field = ownerId\n", NULL, "r.ini", 1,
     "[resource thing]: parent 'owner' is not a declared resource"},
    {"[resource thing]\nparent = thing\nparent_field = thingId\n", NULL, "r.ini", 2,
     "a resource cannot be its own parent"},
    {"[resource thing]\nparent_field = ownerId\n", NULL, "r.ini", 2,
     "parent and parent_field go together"},
    {"[resource thing]\ntouches_parent = yes\n", NULL, "r.ini", 2,
     "touches_parent = yes needs a parent"},
    {"[resource thing]\nlist.items = key=id written=a\n", NULL, "r.ini", 2,
     "list.items: expected key=MEMBER written=MEMBER[,MEMBER...] read=MEMBER"},
    {"[resource thing]\nlist.items = key=id written=a, read=v\n", NULL, "r.ini", 2,
     "list.items: expected key=MEMBER"},
    {"[resource thing]\nlist.items = key=id key=id read=v\n", NULL, "r.ini", 2,
     "list.items: expected key=MEMBER"},
    {"[resource thing]\nlist.a-b = key=id written=a read=v\n", NULL, "r.ini", 2,
     "the name after 'list.' must be letters, digits and _"},
    {"[resource thing]\nderived = updatedAt a-b\n", NULL, "r.ini", 2,
     "derived: 'a-b' is not a field name"},
    {"[resource thing]\nparnt = x\n", NULL, "r.ini", 2,
     "unknown key 'parnt' in [resource thing]; did you mean 'parent'?"},
    {"[thing]\n", NULL, "r.ini", 1, "expected [resource NAME]"},
    {"[resource Thing]\n", NULL, "r.ini", 1, "expected [resource NAME]"},
    {"[resource thing]\n[resource other]\n[resource thing]\n", NULL, "r.ini", 3,
     "duplicate"},
    {"[resource thing]\n",
     "[a.x]\ntitle = T\noperation_id = op\nmethod = DELETE\npath = /things/{thingId}\n"
     "version = v\nscope = s\nsuccess = 200\ndestructive = yes\nidempotent = yes\n"
     "param.thingId = path string required\ntarget = thingId\ntarget_resource = gadget\n",
     "a.ini", 1, "[a.x]: target_resource 'gadget' has no [resource gadget] section"},
};

static void test_resource_cases(void)
{
    char *dir = xasprintf("%s/catalog_resource_cases", test_tmp_root());
    char *tdir = xasprintf("%s/triggers", dir);
    char *rdir = xasprintf("%s/resources", dir);
    char *adir = xasprintf("%s/actions", dir);
    char *tfile = xasprintf("%s/a.ini", tdir);
    char *rfile = xasprintf("%s/r.ini", rdir);
    char *afile = xasprintf("%s/a.ini", adir);
    remove_tree(dir);
    CHECK(util_mkdir_p(tdir, 0755) == 0);
    CHECK(util_mkdir_p(rdir, 0755) == 0);
    CHECK(util_mkdir_p(adir, 0755) == 0);
    struct bad_case none = {0, "", 0, NULL};
    char *text = build_case(&none);
    write_file(tfile, text);
    free(text);

    /* A valid declaration: parsed and linked. */
    write_file(rfile, "[resource thing]\nderived = updatedAt syncedAt\nparent = owner\n"
                      "parent_field = ownerId\ntouches_parent = yes\n"
                      "list.items = read=v written=val,value key=id\n[resource owner]\n");
    struct ini_errors errs = {0};
    struct catalog *cat = NULL;
    CHECK_INT(catalog_load(dir, &config_reserved_keys, &cat, &errs), 0);
    dump_errors(&errs);
    const struct catalog_resource *r = cat ? catalog_find_resource(cat, "thing") : NULL;
    CHECK(r != NULL);
    if (r != NULL) {
        CHECK(catalog_find_trigger(cat, "t.x")->res == r);
        CHECK(catalog_resource_derived(r, "syncedAt") && !catalog_resource_derived(r, "v"));
        CHECK_STR(r->parent, "owner");
        CHECK_STR(r->parent_field, "ownerId");
        CHECK(r->touches_parent);
        CHECK_STR(r->file, rfile);
        CHECK_INT(r->line, 1);
        const struct catalog_list_field *lf = catalog_resource_list(r, "items");
        CHECK(lf != NULL && strcmp(lf->key, "id") == 0 && strcmp(lf->read, "v") == 0 &&
              strv_len(lf->written) == 2 && strcmp(lf->written[1], "value") == 0);
        const struct catalog_resource *o = catalog_find_resource(cat, "owner");
        CHECK(o != NULL && o->derived != NULL && o->derived[0] == NULL && o->parent == NULL &&
              !o->touches_parent && o->nlists == 0);
        CHECK(catalog_resource_at(cat, 0) == o); /* sorted */
    }
    CHECK(!catalog_resource_derived(NULL, "updatedAt"));
    CHECK(catalog_resource_list(NULL, "items") == NULL);
    catalog_free(cat);
    ini_errors_free(&errs);

    for (size_t i = 0; i < ARRAY_SIZE(resource_cases); i++) {
        const struct resource_case *c = &resource_cases[i];
        write_file(rfile, c->resources);
        unlink(afile);
        if (c->action != NULL) {
            write_file(afile, c->action);
        }
        cat = (struct catalog *)1;
        CHECK_INT(catalog_load(dir, &config_reserved_keys, &cat, &errs), -EINVAL);
        CHECK(cat == NULL);
        bool ok = has_error(&errs, c->file, c->line, c->want);
        CHECK(ok);
        if (!ok) {
            fprintf(stderr, "  resource case %zu: want %s:%d: ...%s\n", i, c->file, c->line,
                    c->want);
            dump_errors(&errs);
        }
        ini_errors_free(&errs);
    }

    /* No resources/ directory: nothing declared, nothing checked. */
    unlink(afile);
    remove_tree(rdir);
    CHECK_INT(catalog_load(dir, &config_reserved_keys, &cat, &errs), 0);
    CHECK(cat != NULL && catalog_resource_count(cat) == 0 &&
          catalog_find_trigger(cat, "t.x")->res == NULL);
    catalog_free(cat);
    ini_errors_free(&errs);

    remove_tree(dir);
    free(afile);
    free(rfile);
    free(tfile);
    free(adir);
    free(rdir);
    free(tdir);
    free(dir);
}

/* catalog_value_coerce: one rule set for every caller. want is the printed
 * JSON, or NULL for a refusal. */
static void test_value_coerce(void)
{
    static const struct {
        enum catalog_type type;
        const char *text;
        const char *want;
    } cases[] = {
        {CATALOG_STRING, "a b", "\"a b\""},
        {CATALOG_STRING, "", "\"\""},
        {CATALOG_INTEGER, "42", "42"},
        {CATALOG_INTEGER, "-7", "-7"},
        {CATALOG_INTEGER, "0", "0"},
        {CATALOG_INTEGER, "9007199254740993", "9007199254740993"},   /* 2^53 + 1, exact */
        {CATALOG_INTEGER, "123456789012345678901234567890", "123456789012345678901234567890"},
        {CATALOG_INTEGER, "-9007199254740993", "-9007199254740993"},
        {CATALOG_INTEGER, "1.5", NULL},
        {CATALOG_INTEGER, "2.0", NULL},
        {CATALOG_INTEGER, "1e3", NULL},
        {CATALOG_INTEGER, "+1", NULL},
        {CATALOG_INTEGER, "0x10", NULL},
        {CATALOG_INTEGER, " 1", NULL},
        {CATALOG_INTEGER, "1 ", NULL},
        {CATALOG_INTEGER, "007", NULL},
        {CATALOG_INTEGER, "", NULL},
        {CATALOG_INTEGER, "abc", NULL},
        {CATALOG_NUMBER, "1.5", "1.5"},
        {CATALOG_NUMBER, "-0.25", "-0.25"},
        {CATALOG_NUMBER, "1e3", "1000"},
        {CATALOG_NUMBER, "9007199254740993", "9007199254740993"},
        {CATALOG_NUMBER, "inf", NULL},
        {CATALOG_NUMBER, "nan", NULL},
        {CATALOG_NUMBER, "1e999", NULL},
        {CATALOG_NUMBER, "+1", NULL},
        {CATALOG_NUMBER, "0x1p3", NULL},
        {CATALOG_NUMBER, ".5", NULL},
        {CATALOG_NUMBER, "1.", NULL},
        {CATALOG_NUMBER, "1 ", NULL},
        {CATALOG_NUMBER, "", NULL},
        {CATALOG_BOOLEAN, "true", "true"},
        {CATALOG_BOOLEAN, "false", "false"},
        {CATALOG_BOOLEAN, "yes", NULL},
        {CATALOG_BOOLEAN, "1", NULL},
        {CATALOG_BOOLEAN, "True", NULL},
        {CATALOG_BOOLEAN, "", NULL},
        {CATALOG_JSON, "{\"a\":[1,2]}", "{\"a\":[1,2]}"},
        {CATALOG_JSON, " [] ", "[]"},
        {CATALOG_JSON, "\"s\"", "\"s\""},
        {CATALOG_JSON, "12345678901234567890", "12345678901234567890"},
        {CATALOG_JSON, "{", NULL},
        {CATALOG_JSON, "[1] x", NULL},
        {CATALOG_JSON, "", NULL},
        {CATALOG_STRING_LIST, "a b  c", "[\"a\",\"b\",\"c\"]"},
        {CATALOG_STRING_LIST, "a, b\tc", "[\"a\",\"b\",\"c\"]"},
        {CATALOG_STRING_LIST, "", "[]"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cJSON *v = NULL;
        char err[200] = "";
        int rc = catalog_value_coerce(cases[i].type, cases[i].text, &v, err, sizeof(err));
        if (cases[i].want == NULL) {
            if (rc != -EINVAL || v != NULL || err[0] == '\0') {
                fprintf(stderr, "coerce %s '%s': rc %d, want a refusal\n",
                        catalog_type_name(cases[i].type), cases[i].text, rc);
            }
            CHECK(rc == -EINVAL && v == NULL && err[0] != '\0');
        } else {
            char *got = v != NULL ? cJSON_PrintUnformatted(v) : NULL;
            if (rc != 0 || got == NULL || strcmp(got, cases[i].want) != 0) {
                fprintf(stderr, "coerce %s '%s': rc %d, got %s (%s), want %s\n",
                        catalog_type_name(cases[i].type), cases[i].text, rc,
                        got ? got : "NULL", err, cases[i].want);
            }
            CHECK(rc == 0 && got != NULL && strcmp(got, cases[i].want) == 0);
            free(got);
        }
        cJSON_Delete(v);
    }
    /* Nesting past json_parse's limit is refused, not parsed. */
    size_t depth = 1100;
    char *deep = xcalloc(2 * depth + 1, 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    cJSON *v = NULL;
    char err[200];
    CHECK_INT(catalog_value_coerce(CATALOG_JSON, deep, &v, err, sizeof(err)), -EINVAL);
    CHECK(v == NULL);
    free(deep);
    /* Big integers are Raw nodes: their digits, never a rounded double. */
    CHECK_INT(catalog_value_coerce(CATALOG_INTEGER, "9007199254740993", &v, err, sizeof(err)), 0);
    CHECK(cJSON_IsRaw(v));
    cJSON_Delete(v);
}

struct expand_case {
    const char *tpl;
    const char *want;   /* NULL: refused */
    const char *in_err; /* for a refusal: text the message holds */
    int rc;
};

/* Expands c->tpl with lookup and checks the path, or the refusal and its message. */
static void check_expand(const struct expand_case *c, catalog_path_lookup lookup, void *ud)
{
    char *out = (char *)"unset";
    char err[200];
    int rc = catalog_path_expand(c->tpl, lookup, ud, &out, err, sizeof(err));
    CHECK_INT(rc, c->rc);
    if (c->want != NULL) {
        CHECK_STR(out, c->want);
    } else {
        CHECK(out == NULL);
        if (strstr(err, c->in_err) == NULL) {
            fprintf(stderr, "expand %s: err '%s' lacks '%s'\n", c->tpl, err, c->in_err);
        }
        CHECK(strstr(err, c->in_err) != NULL);
    }
    if (rc == 0) {
        free(out);
    }
}

/* A lookup for test_path_expand: values from a NULL-terminated name/value
 * table; "why" fails with its own message. */
static char *table_lookup(void *ud, const char *name, char *err, size_t errlen)
{
    const char *const *kv = ud;
    if (strcmp(name, "why") == 0) {
        snprintf(err, errlen, "{why}: the caller's reason");
        return NULL;
    }
    for (size_t i = 0; kv[i] != NULL; i += 2) {
        if (strcmp(kv[i], name) == 0) {
            return xstrdup(kv[i + 1]);
        }
    }
    return NULL;
}

static void test_path_expand(void)
{
    static const char *const kv[] = {"id", "abc", "slash", "a/b", "q", "a?b#c",
                                     "pct", "50%", "sp", "a b", "empty", "",
                                     "dot", ".", "dotdot", "..", "dots", "...",
                                     "uni", "\xc3\xa9", NULL};
    static const struct expand_case cases[] = {
        {"/contacts/{id}", "/contacts/abc", NULL, 0},
        {"/plain", "/plain", NULL, 0},
        {"/x/{slash}/y", "/x/a%2Fb/y", NULL, 0},
        {"/x/{q}", "/x/a%3Fb%23c", NULL, 0},
        {"/x/{pct}", "/x/50%25", NULL, 0},
        {"/x/{sp}", "/x/a%20b", NULL, 0},
        {"/x/{uni}", "/x/%C3%A9", NULL, 0},
        {"/x/{dots}", "/x/...", NULL, 0},
        {"/{id}/{id}", "/abc/abc", NULL, 0},
        {"/x/{empty}/y", NULL, "{empty}", -EINVAL},
        {"/x/{dot}", NULL, "{dot}", -EINVAL},
        {"/x/{dotdot}/y", NULL, "{dotdot}", -EINVAL},
        {"/x/{nope}", NULL, "{nope}", -ENOENT},
        {"/x/{why}", NULL, "the caller's reason", -ENOENT},
        {"/x/{id", NULL, "'{' without '}'", -EINVAL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        check_expand(&cases[i], table_lookup, (void *)kv);
    }
}

/* A lookup for test_record_expand: {record.FIELD} from the record, else {id}. */
static char *record_lookup(void *ud, const char *name, char *err, size_t errlen)
{
    size_t off = catalog_record_placeholder(name, strlen(name));
    if (off > 0) {
        return catalog_record_text(ud, name + off, err, errlen);
    }
    return strcmp(name, "id") == 0 ? xstrdup("t1") : NULL;
}

/* confirm_delete's {record.FIELD}: which names are one, and the expansion
 * of a missing record's last-known fields (strings and numbers only, the
 * path segment rules, percent-encoded). */
static void test_record_expand(void)
{
    static const struct {
        const char *name;
        size_t want;
    } names[] = {
        {"record.contactId", 7}, {"record.owner.id", 7}, {"record.a_1.B2", 7},
        {"record", 0},           {"record.", 0},         {"records.x", 0},
        {"record..x", 0},        {"record.x.", 0},       {"record.a-b", 0},
        {"id", 0},               {"Record.x", 0},        {"record.x y", 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        size_t got = catalog_record_placeholder(names[i].name, strlen(names[i].name));
        if (got != names[i].want) {
            fprintf(stderr, "catalog_record_placeholder(%s) = %zu\n", names[i].name, got);
        }
        CHECK(got == names[i].want);
    }
    /* The length bounds the name: "record.ab" cut to "record." is no field. */
    CHECK(catalog_record_placeholder("record.ab", 7) == 0);
    CHECK(catalog_record_placeholder("record.ab}", 9) == 7);

    cJSON *rec = NULL;
    const char *json = "{\"contactId\":\"c/1 x\",\"n\":42,\"f\":-1.5,"
                       "\"big\":123456789012345678901,\"owner\":{\"id\":\"o1\"},"
                       "\"empty\":\"\",\"dot\":\".\",\"dots\":\"..\",\"b\":true,"
                       "\"nul\":null,\"list\":[\"a\"]}";
    CHECK_INT(json_parse(json, strlen(json), &rec, NULL), 0);
    static const struct expand_case cases[] = {
        {"/contacts/{record.contactId}/tasks/{id}", "/contacts/c%2F1%20x/tasks/t1", NULL, 0},
        {"/n/{record.n}/{id}", "/n/42/t1", NULL, 0},
        {"/f/{record.f}/{id}", "/f/-1.5/t1", NULL, 0},
        {"/big/{record.big}/{id}", "/big/123456789012345678901/t1", NULL, 0},
        {"/o/{record.owner.id}/{id}", "/o/o1/t1", NULL, 0},
        {"/x/{record.empty}/{id}", NULL, "{record.empty}", -EINVAL},
        {"/x/{record.dot}/{id}", NULL, "{record.dot}", -EINVAL},
        {"/x/{record.dots}/{id}", NULL, "{record.dots}", -EINVAL},
        {"/x/{record.nope}/{id}", NULL, "{record.nope}: the last-known record has no such field",
         -ENOENT},
        {"/x/{record.owner.nope}/{id}", NULL, "no such field", -ENOENT},
        {"/x/{record.owner}/{id}", NULL, "{record.owner}: the field is not a string or a number",
         -ENOENT},
        {"/x/{record.b}/{id}", NULL, "not a string or a number", -ENOENT},
        {"/x/{record.nul}/{id}", NULL, "not a string or a number", -ENOENT},
        {"/x/{record.list}/{id}", NULL, "not a string or a number", -ENOENT},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        check_expand(&cases[i], record_lookup, rec);
    }
    /* No last-known copy at all. */
    char *out = NULL;
    char err[200];
    CHECK_INT(catalog_path_expand("/c/{record.contactId}/{id}", record_lookup, NULL, &out, err,
                                  sizeof(err)),
              -ENOENT);
    CHECK(out == NULL && strstr(err, "no last-known copy") != NULL);
    cJSON_Delete(rec);
}

/* ---- batch: a for_each child read for many parents at once ---- */

/* The child (lines 1-11) names the batch definition at line 10; %s: the batch's extra lines. */
#define BATCH_CHILD                                                                          \
    "[t.kids]\ntitle = K\noperation_id = k\nmethod = GET\npath = /owners/{ownerId}/kids\n"   \
    "version = v\nscope = s\nresource = kid\nrecords = kids\nbatch = t.find\n"               \
    "batch_param = ownerId\nfan_out = ownerId\nparent_resource = owner\n"                    \
    "param.ownerId = path string required\npagination = none\n"
#define BATCH_DEF                                                                            \
    "[t.find]\ntitle = F\noperation_id = f\nmethod = POST\npath = /kids/search\n"            \
    "version = v\nscope = s\nrecords = kids\npagination = skip_limit\npage_size = 10\n"      \
    "max_page_size = 10\npage_in = body\n"

static const struct {
    const char *extra; /* the batch definition's resource and parameters */
    const char *child_extra; /* appended to the child */
    const char *want;  /* NULL: loads */
    int line;
} batch_cases[] = {
    {"resource = kid\nparam.ownerId = body json optional\n", "", NULL, 0},
    {"resource = owner\nparam.ownerId = body json optional\n", "", "lists another resource", 10},
    {"resource = kid\nparam.ownerId = body string optional\n", "",
     "does not take batch_param as an optional body json parameter", 10},
    {"resource = kid\nparam.other = body json optional\n", "",
     "does not take batch_param", 10},
    {"resource = kid\nparam.ownerId = body json optional\nparam.q = body string required\n", "",
     "has another required parameter", 10},
    {"resource = kid\nparam.ownerId = body json optional\n", "param.q = query string optional\n",
     "cannot carry the child's other parameters", 10},
    {"resource = kid\nparam.ownerId = body json optional\nfan_out = ownerId\n"
     "parent_resource = owner\n", "", "is itself a for_each", 10},
};

static void test_batch_cases(void)
{
    char *dir = xasprintf("%s/catalog_batch_cases", test_tmp_root());
    char *tdir = xasprintf("%s/triggers", dir);
    char *rdir = xasprintf("%s/resources", dir);
    char *tfile = xasprintf("%s/a.ini", tdir);
    char *rfile = xasprintf("%s/r.ini", rdir);
    remove_tree(dir);
    CHECK(util_mkdir_p(tdir, 0755) == 0);
    CHECK(util_mkdir_p(rdir, 0755) == 0);
    write_file(rfile, "[resource kid]\nparent = owner\nparent_field = ownerId\n[resource owner]\n");
    for (size_t i = 0; i < ARRAY_SIZE(batch_cases); i++) {
        char *text = xasprintf(BATCH_CHILD "%s" BATCH_DEF "%s", batch_cases[i].child_extra,
                               batch_cases[i].extra);
        write_file(tfile, text);
        free(text);
        struct ini_errors errs = {0};
        struct catalog *cat = NULL;
        int rc = catalog_load(dir, NULL, &cat, &errs);
        if (batch_cases[i].want == NULL) {
            CHECK_INT(rc, 0);
            dump_errors(&errs);
            const struct catalog_trigger *k = cat ? catalog_find_trigger(cat, "t.kids") : NULL;
            CHECK(k != NULL && k->batch_def == catalog_find_trigger(cat, "t.find"));
            CHECK(k != NULL && strcmp(k->batch_param, "ownerId") == 0);
        } else {
            CHECK_INT(rc, -EINVAL);
            bool ok = has_error(&errs, "a.ini", batch_cases[i].line, batch_cases[i].want);
            CHECK(ok);
            if (!ok) {
                fprintf(stderr, "  batch case %zu: want ...%s\n", i, batch_cases[i].want);
                dump_errors(&errs);
            }
        }
        catalog_free(cat);
        ini_errors_free(&errs);
    }
    /* A batch naming no definition; a resource without parent_field; keys alone. */
    static const struct {
        const char *triggers, *resources, *want;
        int line;
    } more[] = {
        {BATCH_CHILD, "[resource kid]\nparent = owner\nparent_field = ownerId\n[resource owner]\n",
         "batch t.find is not a trigger definition", 10},
        {BATCH_CHILD BATCH_DEF "resource = kid\nparam.ownerId = body json optional\n",
         "[resource kid]\n[resource owner]\n", "needs the resource's parent_field", 10},
        {BATCH_DEF "resource = kid\nbatch = t.kids\nbatch_param = x\n", "[resource kid]\n",
         "batch is only meaningful with fan_out", 14},
        {BATCH_DEF "resource = kid\nbatch = t.kids\n", "[resource kid]\n",
         "batch and batch_param go together", 14},
    };
    for (size_t i = 0; i < ARRAY_SIZE(more); i++) {
        write_file(tfile, more[i].triggers);
        write_file(rfile, more[i].resources);
        struct ini_errors errs = {0};
        struct catalog *cat = NULL;
        CHECK_INT(catalog_load(dir, NULL, &cat, &errs), -EINVAL);
        bool ok = has_error(&errs, "a.ini", more[i].line, more[i].want);
        CHECK(ok);
        if (!ok) {
            fprintf(stderr, "  batch case %zu: want ...%s\n", i, more[i].want);
            dump_errors(&errs);
        }
        catalog_free(cat);
        ini_errors_free(&errs);
    }
    remove_tree(dir);
    free(dir);
    free(tdir);
    free(rdir);
    free(tfile);
    free(rfile);
}

int main(void)
{
    struct ini_errors errs = {0};
    struct catalog *cat = NULL;
    int rc = catalog_load(SOURCE_ROOT, &config_reserved_keys, &cat, &errs);
    CHECK_INT(rc, 0);
    dump_errors(&errs);
    ini_errors_free(&errs);
    if (cat != NULL) {
        test_shipped(cat);
        test_shipped_actions(cat);
        test_spec(cat);
        test_shipped_resources(cat);
        test_incremental_keys(cat);
    }
    catalog_free(cat);
    test_mechanism_keys();
    test_bad_cases();
    test_bad_action_cases();
    test_reserved_names();
    test_resource_cases();
    test_batch_cases();
    test_value_coerce();
    test_path_expand();
    test_record_expand();
    log_clear_secrets();
    return test_done("test_catalog");
}

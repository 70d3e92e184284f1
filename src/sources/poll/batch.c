/*
 * batch: a for_each child's batch read (see poll_int.h). A parent cycle that
 * sees many records change queues them all; reading each one's children
 * costs a request per parent, while a batch definition (the catalog's
 * `batch`, e.g. a search taking a list of parent ids) lists the children of
 * up to POLLER_BATCH_MAX parents at once. The listing is read to its end
 * (a short page) before anything is applied: a parent with no record in it
 * has none, which is only true of a complete listing. Each parent's group is
 * then applied by sweep.c exactly as a read of that parent (the same
 * snapshot scope, confirm_delete and queue removal). A failed page, a page
 * cap reached, or a record that names no parent of the batch makes no
 * decision: the parents go to p->batch_single and are read one by one.
 * Thread context: loop thread.
 */
#include "poll_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "config.h"
#include "json.h"
#include "location.h"
#include "log.h"
#include "paging.h"
#include "util.h"

struct poller_batch {
    char **ids;               /* the parents asked for */
    struct poller_queued *entries; /* their queue entries as picked */
    size_t n;
    struct paging paging;     /* the batch definition's, at its largest page */
    struct paging_cursor cursor;
    unsigned page;
    cJSON *records;           /* the listing's records so far (moved out of each page) */
    cJSON **groups;           /* once complete: groups[i] holds the records of ids[i] */
    size_t next;              /* the next group poller__batch_take hands out */
};

static int find_parent(char *const *ids, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ids[i], id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int poller__batch_group(cJSON *records, const char *field, char *const *ids, size_t n,
                        cJSON **groups)
{
    for (size_t i = 0; i < n; i++) {
        groups[i] = cJSON_CreateArray();
    }
    int rc = 0;
    cJSON *rec = NULL;
    while (rc == 0 && (rec = cJSON_DetachItemFromArray(records, 0)) != NULL) {
        const char *pid = cJSON_IsObject(rec) ? json_get_string(rec, field) : NULL;
        int at = pid != NULL ? find_parent(ids, n, pid) : -1;
        if (at < 0) {
            cJSON_Delete(rec);
            rc = -EINVAL;
        } else {
            cJSON_AddItemToArray(groups[at], rec);
        }
    }
    while ((rec = cJSON_DetachItemFromArray(records, 0)) != NULL) {
        cJSON_Delete(rec);
    }
    for (size_t i = 0; rc != 0 && i < n; i++) {
        cJSON_Delete(groups[i]);
        groups[i] = NULL;
    }
    return rc;
}

static void batch_destroy(struct poller_batch *b)
{
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        free(b->ids[i]);
        cJSON_Delete(b->groups != NULL ? b->groups[i] : NULL);
    }
    free(b->ids);
    free(b->entries);
    free(b->groups);
    cJSON_Delete(b->records);
    paging_cursor_reset(&b->cursor);
    free(b);
}

void poller__batch_free(struct poller *p)
{
    batch_destroy(p->batch);
    p->batch = NULL;
    p->unit_records = NULL;
    idset_finish(&p->batch_single);
}

/* The listing failed (why, for the log): its parents are read one by one. */
static void batch_abandon(struct poller *p, const char *why)
{
    struct poller_batch *b = p->batch;
    log_info(p->tag, "batch read of %zu %s records (%s) failed: %s; reading them one by one",
             b->n, p->parent->tc->name, p->def->batch_def->name, why);
    for (size_t i = 0; i < b->n; i++) {
        idset_add(&p->batch_single, b->ids[i], strlen(b->ids[i]));
    }
    batch_destroy(b);
    p->batch = NULL;
    p->busy = false;
    poller__schedule(p, 0);
}

/* The listing is complete: group it, or give up on it. */
static void batch_complete(struct poller *p)
{
    struct poller_batch *b = p->batch;
    b->groups = xcalloc(b->n, sizeof(*b->groups));
    const char *field = p->def->res->parent_field;
    int listed = cJSON_GetArraySize(b->records);
    if (poller__batch_group(b->records, field, b->ids, b->n, b->groups) != 0) {
        char why[160];
        snprintf(why, sizeof(why), "a record's '%s' names no parent of the batch", field);
        batch_abandon(p, why);
        return;
    }
    log_debug(p->tag, "batch read of %zu %s records: %d %s in %u page(s)", b->n,
              p->parent->tc->name, listed, p->def->records, b->page);
    p->busy = false;
    poller__schedule(p, 0);
}

static int batch_submit(struct poller *p);

/* Moves the page's records into the batch; decides whether more pages follow. */
static void on_batch_page(struct http_response *resp, void *ud)
{
    struct poller *p = ud;
    struct poller_batch *b = p->batch;
    p->pending = NULL;
    if (p->stopping) {
        p->busy = false;
        return;
    }
    const struct catalog_trigger *d = p->def->batch_def;
    cJSON *body = NULL;
    if (resp->status == 401 || resp->status == 403) {
        /* The credential may not read the batch listing (its scope): one
         * parent record at a time from now on, rather than a refused request
         * (and a token refresh) for every batch. */
        log_warn(p->tag, "%s answered HTTP %ld: batch reads are off until restart (the "
                         "credential may lack scope %s); changed %s records are read one by one",
                 d->name, resp->status, d->scope, p->parent->tc->name);
        p->batch_off = true;
    }
    cJSON *records = NULL;
    enum paging_next next;
    int rc = poller__batch_page(d, resp, &b->paging, &b->cursor, &body, &records, &next);
    if (rc == -EIO) {
        char why[64];
        snprintf(why, sizeof(why), "page %u: HTTP %ld", b->page + 1, resp->status);
        batch_abandon(p, why);
        return;
    }
    if (rc != 0) {
        batch_abandon(p, "no records array in the response");
        return;
    }
    cJSON *rec = NULL;
    while ((rec = cJSON_DetachItemFromArray(records, 0)) != NULL) {
        cJSON_AddItemToArray(b->records, rec);
    }
    cJSON_Delete(body);
    b->page++;
    if (next == PAGING_END) {
        batch_complete(p);
    } else if (next == PAGING_STUCK || b->page >= POLLER_BATCH_MAX_PAGES) {
        batch_abandon(p, next == PAGING_STUCK ? "the paging cursor did not move"
                                              : "too many pages");
    } else if (batch_submit(p) != 0) {
        batch_abandon(p, "cannot queue the next page");
    }
}

cJSON *poller__batch_records(const struct catalog_trigger *d, cJSON *body)
{
    return catalog_trigger_records_at_root(d) ? body : (cJSON *)json_get_path(body, d->records);
}

int poller__batch_page(const struct catalog_trigger *d, const struct http_response *resp,
                       const struct paging *pg, struct paging_cursor *c, cJSON **body,
                       cJSON **records, enum paging_next *next)
{
    *body = NULL;
    if (poller__classify(resp) != OUTCOME_OK || resp->body.len == 0 ||
        json_parse(resp->body.data, resp->body.len, body, NULL) != 0) {
        cJSON_Delete(*body);
        *body = NULL;
        return -EIO;
    }
    *records = poller__batch_records(d, *body);
    if (!cJSON_IsArray(*records)) {
        cJSON_Delete(*body);
        *body = NULL;
        return -EPROTO;
    }
    *next = paging_advance(pg, c, *body, *records);
    return 0;
}

int poller__batch_submit(struct poller *p, char *const *ids, size_t n, const struct paging *pg,
                         const struct paging_cursor *c, unsigned page, enum target_class cls,
                         http_done_cb cb)
{
    const struct catalog_trigger *d = p->def->batch_def;
    struct request_parts r;
    int rc = poller__build_def(p, d, NULL, &r);
    if (rc == 0 && ids != NULL && r.body == NULL) {
        rc = -EINVAL; /* the catalog promises a body parameter */
    }
    if (rc == 0 && ids != NULL) {
        cJSON *list = cJSON_CreateArray();
        for (size_t i = 0; i < n; i++) {
            cJSON_AddItemToArray(list, cJSON_CreateString(ids[i]));
        }
        cJSON_DeleteItemFromObjectCaseSensitive(r.body, p->def->batch_param);
        cJSON_AddItemToObject(r.body, p->def->batch_param, list);
    }
    if (rc == 0) {
        poller__add_paging(pg, c, page, &r);
        rc = poller__submit(p, cls, &r, d->method, cb, p);
    }
    poller__parts_finish(&r);
    return rc;
}

/* Queues the current page of the listing. Returns 0 or -errno. */
static int batch_submit(struct poller *p)
{
    struct poller_batch *b = p->batch;
    return poller__batch_submit(p, b->ids, b->n, &b->paging, &b->cursor, b->page, LOCATION_POLL,
                                on_batch_page);
}

bool poller__batch_begin(struct poller *p, char **ids, const struct poller_queued *entries,
                         size_t n)
{
    const struct catalog_trigger *d = p->def->batch_def;
    struct poller_batch *b = xcalloc(1, sizeof(*b));
    b->ids = ids;
    b->n = n;
    b->entries = xcalloc(n, sizeof(*b->entries));
    memcpy(b->entries, entries, n * sizeof(*entries));
    b->records = cJSON_CreateArray();
    unsigned size = d->max_page_size > 0 ? d->max_page_size : 100;
    paging_init(&b->paging, d, size);
    p->batch = b;
    p->busy = true;
    if (batch_submit(p) != 0) {
        batch_abandon(p, "cannot queue the request");
        return false;
    }
    return true;
}

bool poller__batch_take(struct poller *p, char **id, struct poller_queued *entry,
                        const cJSON **records)
{
    struct poller_batch *b = p->batch;
    p->unit_records = NULL;
    if (b == NULL || b->groups == NULL) {
        return false;
    }
    if (b->next == b->n) {
        batch_destroy(b);
        p->batch = NULL;
        return false;
    }
    size_t i = b->next++;
    *id = xstrdup(b->ids[i]);
    *entry = b->entries[i];
    *records = b->groups[i];
    return true;
}

/*
 * orphans: see orphans.h.
 */
#include "orphans.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "snapshot.h"
#include "util.h"

#define PURGE_BATCH 1000

/* The tables whose keys start with a trigger's scope. */
static const enum store_table scoped_tables[] = {STORE_TRIG, STORE_SNAP, STORE_SNAPDATA,
                                                 STORE_QUEUE};

/* The scopes of the configured triggers: "TRIGGER" SEP "LOCATION". */
struct live {
    char **scopes;
    size_t count;
};

static void live_init(struct live *l, const struct config *cfg)
{
    l->count = cfg->ntriggers;
    l->scopes = xcalloc(cfg->ntriggers + 1, sizeof(*l->scopes));
    for (size_t i = 0; i < cfg->ntriggers; i++) {
        const struct config_trigger *t = &cfg->triggers[i];
        /* The scope the poller keys its state with: its location's, or its api's. */
        const char *loc = t->api != NULL        ? t->api->name
                          : t->location != NULL ? t->location->name
                                                : t->location_name;
        l->scopes[i] = xasprintf("%s%c%s", t->name, SNAPSHOT_SEP, loc != NULL ? loc : "");
    }
}

static void live_free(struct live *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->scopes[i]);
    }
    free(l->scopes);
}

static bool live_has(const struct live *l, const char *scope, size_t len)
{
    for (size_t i = 0; i < l->count; i++) {
        if (strlen(l->scopes[i]) == len && memcmp(l->scopes[i], scope, len) == 0) {
            return true;
        }
    }
    return false;
}

/* The length of key's scope (up to its second separator, or all of it),
 * or 0 when the key has no separator at all (not a trigger's key). */
static size_t scope_len(const char *key, size_t klen)
{
    const char *sep = memchr(key, SNAPSHOT_SEP, klen);
    if (sep == NULL) {
        return 0;
    }
    size_t rest = klen - (size_t)(sep + 1 - key);
    const char *second = memchr(sep + 1, SNAPSHOT_SEP, rest);
    return second != NULL ? (size_t)(second - key) : klen;
}

/* Called for each orphaned key; a non-zero return stops the walk and is returned. */
typedef int (*orphan_fn)(enum store_table t, const char *key, size_t klen, size_t slen, void *ud);

/* Walks the keys of one table, skipping each live scope in one seek. */
static int walk_table(struct store_txn *txn, const struct live *live, enum store_table t,
                      orphan_fn fn, void *ud)
{
    struct store_cursor *cur = NULL;
    int rc = store_cursor_open(txn, t, &cur);
    const void *key = NULL;
    size_t klen = 0;
    if (rc == 0) {
        rc = store_cursor_seek(cur, NULL, 0, &key, &klen, NULL, NULL);
    }
    while (rc == 0) {
        size_t slen = scope_len(key, klen);
        if (slen == 0 || !live_has(live, key, slen)) {
            rc = slen == 0 ? 0 : fn(t, key, klen, slen, ud);
            if (rc == 0) {
                rc = store_cursor_next(cur, &key, &klen, NULL, NULL);
            }
            continue;
        }
        /* Past every key of this live scope: scope SEP ... sorts below scope 0x20. */
        char *past = xasprintf("%.*s%c", (int)slen, (const char *)key, SNAPSHOT_SEP + 1);
        rc = store_cursor_seek(cur, past, slen + 1, &key, &klen, NULL, NULL);
        free(past);
    }
    store_cursor_close(cur);
    return rc == -ENOENT ? 0 : rc;
}

static int walk(struct store_txn *txn, const struct live *live, orphan_fn fn, void *ud)
{
    int rc = 0;
    for (size_t i = 0; i < ARRAY_SIZE(scoped_tables) && rc == 0; i++) {
        rc = walk_table(txn, live, scoped_tables[i], fn, ud);
    }
    return rc;
}

static int count_orphan(enum store_table t, const char *key, size_t klen, size_t slen, void *ud)
{
    (void)t;
    (void)klen;
    struct orphan_list *l = ud;
    char *scope = xstrndup(key, slen);
    for (char *p = scope; *p != '\0'; p++) {
        *p = *p == SNAPSHOT_SEP ? '/' : *p;
    }
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->items[i].scope, scope) == 0) {
            l->items[i].keys++;
            free(scope);
            return 0;
        }
    }
    l->items = xrealloc(l->items, (l->count + 1) * sizeof(*l->items));
    l->items[l->count++] = (struct orphan){.scope = scope, .keys = 1};
    return 0;
}

int orphans_find(struct store *s, const struct config *cfg, struct orphan_list *out)
{
    *out = (struct orphan_list){0};
    struct live live;
    live_init(&live, cfg);
    struct store_txn *txn = NULL;
    int rc = store_txn_begin(s, false, &txn);
    if (rc == 0) {
        rc = walk(txn, &live, count_orphan, out);
        store_txn_abort(txn);
    }
    live_free(&live);
    return rc;
}

void orphans_free(struct orphan_list *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].scope);
    }
    free(l->items);
    *l = (struct orphan_list){0};
}

/* One purge txn: keys are copied while walking, deleted after (cursor data dies at a write). */
struct purge_batch {
    const struct live *live;
    struct {
        enum store_table t;
        char *key;
        size_t klen;
    } doomed[PURGE_BATCH];
    size_t n;
};

enum { BATCH_FULL = 1 };

static int take_orphan(enum store_table t, const char *key, size_t klen, size_t slen, void *ud)
{
    (void)slen;
    struct purge_batch *b = ud;
    b->doomed[b->n].t = t;
    b->doomed[b->n].key = xmalloc(klen);
    memcpy(b->doomed[b->n].key, key, klen);
    b->doomed[b->n].klen = klen;
    return ++b->n == PURGE_BATCH ? BATCH_FULL : 0;
}

static void batch_clear(struct purge_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->doomed[i].key);
    }
    b->n = 0;
}

/* store_write body; retryable: it starts from an empty batch each time. */
static int purge_txn(struct store_txn *txn, void *ud)
{
    struct purge_batch *b = ud;
    batch_clear(b);
    int rc = walk(txn, b->live, take_orphan, b);
    if (rc != 0 && rc != BATCH_FULL) {
        return rc;
    }
    for (size_t i = 0; i < b->n; i++) {
        int del = store_del(txn, b->doomed[i].t, b->doomed[i].key, b->doomed[i].klen);
        if (del != 0 && del != -ENOENT) {
            return del;
        }
    }
    return store_txn_error(txn);
}

int orphans_purge(struct store *s, const struct config *cfg, uint64_t *deleted)
{
    *deleted = 0;
    struct live live;
    live_init(&live, cfg);
    struct purge_batch *b = xcalloc(1, sizeof(*b));
    b->live = &live;
    int rc = 0;
    do {
        rc = store_write(s, purge_txn, b);
        if (rc == 0) {
            *deleted += b->n;
        }
    } while (rc == 0 && b->n == PURGE_BATCH);
    batch_clear(b);
    free(b);
    live_free(&live);
    return rc;
}

/*
 * rawmemo: the pages of a full enumeration whose every record matched its
 * entry's raw hash, remembered for the next cycle at the same generation.
 *
 * With the raw-hash map filed (rawpage.c), what is left of a no-change
 * enumeration's CPU is finding the records in each page (the span scan),
 * hashing each one's bytes and looking it up. But when a page's bytes are
 * those of a page all of whose records matched, at a generation of the
 * scope that is still the current one (no write since), each record again
 * has the bytes its entry vouches for: the page needs one hash of its
 * array's bytes, and the spans memorized with it. So a page that matched
 * entirely is memorized by its number: a hash of the bytes before its
 * records array (the member's name: the same document shape), a hash of
 * the array's bytes, and its spans. A later page is a hit only when both
 * hashes of its own bytes at those offsets agree, the memo belongs to the
 * map's generation (read in the cycle's txn, the file tagged with it), and
 * no page of this cycle had a record to apply (a record applied earlier in
 * the cycle may show its old bytes again: the map forgot it, the memo
 * would not). The rest of the page (what follows the array: totals, a
 * trace id) is not hashed: the parse of the shortened page reads it as
 * always. The memo is filed beside the map (rawmemo-HASH.bin) with the same
 * tag, and only when the scope's generation did not move in the cycle.
 *
 * Thread context: loop thread.
 */
#include "poll_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

#define MEMO_MAGIC "pollenP1"
/* Largest memo file read back (the spans of RAW_MAP_MAX records and more). */
#define MEMO_MAX (64u << 20)

struct memo_header {
    char magic[8];
    uint32_t tag_len;
    uint32_t rec_size;   /* sizeof(struct jsonspan_rec): this build's layout */
    uint64_t npages;
    uint64_t nspans;
    uint64_t check;      /* hash64 of everything after the header */
};

static char *memo_path(const struct poller *p)
{
    return xasprintf("%s/rawmemo-%016llx.bin", p->env.cfg->state_dir,
                     (unsigned long long)hash64_bytes(p->prefix, p->prefix_len));
}

void poller__memo_reset(struct poller *p)
{
    struct raw_memo *m = &p->raw.memo;
    free(m->pages);
    free(m->spans);
    memset(m, 0, sizeof(*m));
}

static void drop_arrays(struct raw_memo *m)
{
    free(m->pages);
    free(m->spans);
    m->pages = NULL;
    m->spans = NULL;
    m->npages = m->nspans = m->spans_cap = 0;
}

/* Whether every memorized page's spans lie within the spans read. */
static bool spans_whole(const struct raw_memo *m)
{
    for (size_t i = 0; i < m->npages; i++) {
        const struct raw_memo_page *pg = &m->pages[i];
        if (pg->first > m->nspans || pg->n > m->nspans - pg->first) {
            return false;
        }
    }
    return true;
}

/* The memo in the file, when it is whole, of this build and of this tag. */
static bool memo_read(struct raw_memo *m, const char *path, const void *tag, size_t tag_len)
{
    char *data = NULL;
    size_t len = 0;
    if (util_read_file(path, MEMO_MAX, &data, &len) != 0) {
        return false;
    }
    struct memo_header h;
    bool ok = len >= sizeof(h);
    size_t pages = 0;
    size_t spans = 0;
    if (ok) {
        memcpy(&h, data, sizeof(h));
        pages = (size_t)h.npages * sizeof(struct raw_memo_page);
        spans = (size_t)h.nspans * sizeof(struct jsonspan_rec);
        ok = memcmp(h.magic, MEMO_MAGIC, sizeof(h.magic)) == 0 && h.tag_len == tag_len &&
             h.rec_size == sizeof(struct jsonspan_rec) && h.npages < MEMO_MAX &&
             h.nspans < MEMO_MAX && len == sizeof(h) + tag_len + pages + spans &&
             memcmp(data + sizeof(h), tag, tag_len) == 0 &&
             hash64_bytes(data + sizeof(h), len - sizeof(h)) == h.check;
    }
    if (ok) {
        const char *at = data + sizeof(h) + tag_len;
        m->pages = xmalloc(pages ? pages : 1);
        memcpy(m->pages, at, pages);
        m->spans = xmalloc(spans ? spans : 1);
        memcpy(m->spans, at + pages, spans);
        m->npages = h.npages;
        m->nspans = m->spans_cap = h.nspans;
        ok = spans_whole(m);
        if (!ok) {
            drop_arrays(m);
        }
    }
    free(data);
    return ok;
}

void poller__memo_start(struct poller *p, const void *tag, size_t tag_len)
{
    struct raw_memo *m = &p->raw.memo;
    poller__memo_reset(p);
    char *path = memo_path(p);
    memo_read(m, path, tag, tag_len); /* its tag: the generation it is true for */
    free(path);
    m->ready = true;
    m->clean = true;
}

bool poller__memo_hit(struct poller *p, const char *data, size_t len)
{
    struct poller_raw *r = &p->raw;
    struct raw_memo *m = &r->memo;
    if (!m->ready || !m->clean || r->map_state != RAW_MAP_READY || p->page >= m->npages) {
        return false;
    }
    const struct raw_memo_page *pg = &m->pages[p->page];
    if (pg->n == 0 || pg->arr_end > len || pg->arr_off >= pg->arr_end ||
        hash64_bytes(data, pg->arr_off) != pg->head) {
        return false;
    }
    struct hash128 arr;
    hash128_bytes(data + pg->arr_off, pg->arr_end - pg->arr_off, &arr);
    if (!hash128_eq(&arr, &pg->arr)) {
        return false;
    }
    struct jsonspan_page *sp = &r->spans;
    if (sp->cap < pg->n) {
        sp->cap = pg->n;
        sp->recs = xrealloc(sp->recs, sp->cap * sizeof(*sp->recs));
    }
    memcpy(sp->recs, m->spans + pg->first, pg->n * sizeof(*sp->recs));
    sp->n = pg->n;
    sp->arr_off = pg->arr_off;
    sp->arr_end = pg->arr_end;
    m->hits++;
    return true;
}

/* Memorizes the current page (its spans are p->raw.spans). */
static void memorize(struct poller *p, const char *data)
{
    struct poller_raw *r = &p->raw;
    struct raw_memo *m = &r->memo;
    if (p->page >= m->npages) { /* room for it, and none memorized between */
        size_t n = p->page + 1;
        m->pages = xrealloc(m->pages, n * sizeof(*m->pages));
        memset(m->pages + m->npages, 0, (n - m->npages) * sizeof(*m->pages));
        m->npages = n;
    }
    if (m->nspans + r->spans.n > m->spans_cap) {
        m->spans_cap = (m->nspans + r->spans.n) * 2;
        m->spans = xrealloc(m->spans, m->spans_cap * sizeof(*m->spans));
    }
    struct raw_memo_page *pg = &m->pages[p->page];
    uint64_t head = hash64_bytes(data, r->spans.arr_off);
    struct hash128 arr;
    hash128_bytes(data + r->spans.arr_off, r->spans.arr_end - r->spans.arr_off, &arr);
    if (pg->n == r->spans.n && pg->head == head && hash128_eq(&pg->arr, &arr) &&
        pg->arr_off == r->spans.arr_off && pg->arr_end == r->spans.arr_end) {
        return; /* known already (a page read before the memo was, the cycle's second) */
    }
    pg->head = head;
    pg->arr = arr;
    pg->arr_off = r->spans.arr_off;
    pg->arr_end = r->spans.arr_end;
    pg->first = m->nspans;
    pg->n = r->spans.n;
    memcpy(m->spans + m->nspans, r->spans.recs, r->spans.n * sizeof(*m->spans));
    m->nspans += r->spans.n;
    m->added = true;
}

void poller__memo_matched(struct poller *p, const char *data, long same)
{
    struct poller_raw *r = &p->raw;
    struct raw_memo *m = &r->memo;
    if (!m->ready) {
        return;
    }
    size_t n = r->spans.n;
    if (n == 0 && same == 0) {
        return; /* nothing to apply, nothing worth memorizing (the empty last page) */
    }
    bool all = r->map_state == RAW_MAP_READY && n > 0 && same >= 0 && (size_t)same == n - 1 &&
               r->v[n - 1].parsed_same;
    if (!all) {
        m->clean = false; /* a record to apply: no more hits in this cycle */
        return;
    }
    if (m->clean && m->nspans + n <= MEMO_MAX / sizeof(struct jsonspan_rec)) {
        memorize(p, data);
    }
}

void poller__memo_save(struct poller *p, const void *tag, size_t tag_len)
{
    struct raw_memo *m = &p->raw.memo;
    if (!m->ready || !m->clean || !m->added) {
        return;
    }
    struct memo_header h = {
        .tag_len = (uint32_t)tag_len,
        .rec_size = sizeof(struct jsonspan_rec),
        .npages = m->npages,
        .nspans = m->nspans,
    };
    memcpy(h.magic, MEMO_MAGIC, sizeof(h.magic));
    size_t body_len = tag_len + m->npages * sizeof(*m->pages) + m->nspans * sizeof(*m->spans);
    char *body = xmalloc(body_len);
    memcpy(body, tag, tag_len);
    memcpy(body + tag_len, m->pages, m->npages * sizeof(*m->pages));
    memcpy(body + tag_len + m->npages * sizeof(*m->pages), m->spans,
           m->nspans * sizeof(*m->spans));
    h.check = hash64_bytes(body, body_len);
    struct util_chunk chunks[] = {{&h, sizeof(h)}, {body, body_len}};
    char *path = memo_path(p);
    int rc = util_write_atomic(path, chunks, 2);
    if (rc != 0) {
        log_debug(p->tag, "cannot save the page memo to %s: %s", path, strerror(-rc));
    }
    m->added = false;
    free(path);
    free(body);
}

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
#include <sys/mman.h>

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

/* Where the pages start in the file: after the header and the tag, 8-aligned. */
static size_t pages_off(size_t tag_len)
{
    return (sizeof(struct memo_header) + tag_len + 7) & ~(size_t)7;
}

static void drop_arrays(struct raw_memo *m)
{
    if (m->mapped != NULL) {
        munmap(m->mapped, m->mapped_len);
    } else {
        free(m->pages);
        free(m->spans);
    }
    m->mapped = NULL;
    m->mapped_len = 0;
    m->pages = NULL;
    m->spans = NULL;
    m->npages = m->nspans = m->spans_cap = 0;
}

void poller__memo_reset(struct poller *p)
{
    struct raw_memo *m = &p->raw.memo;
    drop_arrays(m);
    memset(m, 0, sizeof(*m));
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

/* Whether the mapped file of len bytes is a whole memo of this build and tag. */
static bool memo_valid(const char *base, size_t len, const void *tag, size_t tag_len)
{
    struct memo_header h;
    if (len < pages_off(tag_len)) {
        return false;
    }
    memcpy(&h, base, sizeof(h));
    size_t off = pages_off(tag_len);
    return memcmp(h.magic, MEMO_MAGIC, sizeof(h.magic)) == 0 && h.tag_len == tag_len &&
           h.rec_size == sizeof(struct jsonspan_rec) && h.npages < MEMO_MAX &&
           h.nspans < MEMO_MAX &&
           len == off + h.npages * sizeof(struct raw_memo_page) +
                      h.nspans * sizeof(struct jsonspan_rec) &&
           memcmp(base + sizeof(h), tag, tag_len) == 0 &&
           hash64_bytes(base + sizeof(h), len - sizeof(h)) == h.check;
}

/* The memo in the file, when it is whole, of this build and of this tag: a
 * private mapping (memorize copies it out before it grows). */
static bool memo_read(struct raw_memo *m, const char *path, const void *tag, size_t tag_len)
{
    size_t len = 0;
    void *base = util_map_file(path, MEMO_MAX, &len);
    if (base == NULL) {
        return false;
    }
    if (!memo_valid(base, len, tag, tag_len)) {
        munmap(base, len);
        return false;
    }
    struct memo_header h;
    memcpy(&h, base, sizeof(h));
    m->mapped = base;
    m->mapped_len = len;
    m->pages = (struct raw_memo_page *)((char *)base + pages_off(tag_len));
    m->spans = (struct jsonspan_rec *)(m->pages + h.npages);
    m->npages = h.npages;
    m->nspans = m->spans_cap = h.nspans;
    if (!spans_whole(m)) {
        drop_arrays(m);
        return false;
    }
    return true;
}

/* The arrays become the memo's own (out of the file's mapping) before they change size. */
static void own_arrays(struct raw_memo *m)
{
    if (m->mapped == NULL) {
        return;
    }
    struct raw_memo_page *pages = xmalloc((m->npages ? m->npages : 1) * sizeof(*pages));
    memcpy(pages, m->pages, m->npages * sizeof(*pages));
    struct jsonspan_rec *spans = xmalloc((m->nspans ? m->nspans : 1) * sizeof(*spans));
    memcpy(spans, m->spans, m->nspans * sizeof(*spans));
    munmap(m->mapped, m->mapped_len);
    m->mapped = NULL;
    m->mapped_len = 0;
    m->pages = pages;
    m->spans = spans;
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
/* Whether memorized page number page has exactly these bytes (head, arr) at these offsets. */
static bool memorized(const struct raw_memo *m, size_t page, const struct jsonspan_page *sp,
                      uint64_t head, const struct hash128 *arr)
{
    const struct raw_memo_page *pg = page < m->npages ? &m->pages[page] : NULL;
    return pg != NULL && pg->n == sp->n && pg->head == head && hash128_eq(&pg->arr, arr) &&
           pg->arr_off == sp->arr_off && pg->arr_end == sp->arr_end;
}

static void memorize(struct poller *p, const char *data)
{
    struct poller_raw *r = &p->raw;
    struct raw_memo *m = &r->memo;
    uint64_t head = hash64_bytes(data, r->spans.arr_off);
    struct hash128 arr;
    hash128_bytes(data + r->spans.arr_off, r->spans.arr_end - r->spans.arr_off, &arr);
    if (memorized(m, p->page, &r->spans, head, &arr)) {
        return; /* known already (a page read before the memo was, the cycle's second) */
    }
    own_arrays(m);
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
    size_t at = pages_off(tag_len) - sizeof(h); /* the tag and its padding */
    size_t body_len = at + m->npages * sizeof(*m->pages) + m->nspans * sizeof(*m->spans);
    char *body = xcalloc(1, body_len);
    memcpy(body, tag, tag_len);
    memcpy(body + at, m->pages, m->npages * sizeof(*m->pages));
    memcpy(body + at + m->npages * sizeof(*m->pages), m->spans, m->nspans * sizeof(*m->spans));
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

/*
 * buf: a growable byte buffer with a hard cap fixed at init (curl dynbuf).
 *
 * Input from the network enters through a buf so that no response can make
 * the engine allocate more than its cap. The data is always NUL-terminated
 * (one byte beyond len), so it can be handed to parsers that expect it.
 * Growth doubles (never past max + 1 bytes allocated), so appending n bytes
 * costs O(log n) reallocations; buf_reserve makes it one.
 * Embedded: buf_init/buf_finish.
 */
#ifndef POLLEN_BUF_H
#define POLLEN_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;     /* allocated bytes */
    size_t max;     /* hard cap on len */
    bool too_big;   /* an append was refused because of max */
};

void buf_init(struct buf *b, size_t max);
void buf_finish(struct buf *b);
void buf_reset(struct buf *b);
/* Appends n bytes. Returns 0, or -EFBIG (and sets too_big) past the cap. */
int buf_append(struct buf *b, const void *data, size_t n);
int buf_append_str(struct buf *b, const char *s);
/* Makes room for n bytes of data in all (n + 1 with the NUL) so that appends up to
 * that length do not reallocate: one allocation instead of a doubling series.
 * Never shrinks. Returns 0, or -EFBIG (allocating nothing, too_big untouched)
 * when n is over max: a size announced by a peer is a hint, never trusted past the cap. */
int buf_reserve(struct buf *b, size_t n);
/* Detaches the data (NUL-terminated) and resets the buffer; the caller frees it. */
char *buf_steal(struct buf *b, size_t *len);

#endif

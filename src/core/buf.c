/*
 * buf: see buf.h.
 */
#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void buf_init(struct buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max < SIZE_MAX / 2 ? max : SIZE_MAX / 2; /* max + 1 never overflows */
}

void buf_finish(struct buf *b)
{
    if (b == NULL) {
        return;
    }
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->too_big = false;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    b->too_big = false;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

/* Resizes the allocation to exactly cap bytes (> len), keeping the data. */
static void resize(struct buf *b, size_t cap)
{
    bool fresh = b->data == NULL;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
    if (fresh) {
        b->data[0] = '\0';
    }
}

int buf_reserve(struct buf *b, size_t n)
{
    if (n > b->max) {
        return -EFBIG;
    }
    if (n + 1 > b->cap) {
        resize(b, n + 1);
    }
    return 0;
}

int buf_append(struct buf *b, const void *data, size_t n)
{
    if (n > b->max || b->len > b->max - n) {
        b->too_big = true;
        return -EFBIG;
    }
    if (b->len + n + 1 > b->cap) {
        /* Doubling, but never past what max can use (len + n <= max here). */
        size_t need = b->len + n + 1;
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need) {
            cap = cap > b->max / 2 ? b->max + 1 : cap * 2;
        }
        resize(b, cap);
    }
    if (n > 0) {
        memcpy(b->data + b->len, data, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

char *buf_steal(struct buf *b, size_t *len)
{
    if (b->data == NULL) {
        buf_append(b, "", 0);
    }
    char *d = b->data;
    if (len != NULL) {
        *len = b->len;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return d;
}

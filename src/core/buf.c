/*
 * buf: see buf.h.
 */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void buf_init(struct buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
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

int buf_append(struct buf *b, const void *data, size_t n)
{
    if (n > b->max || b->len > b->max - n) {
        b->too_big = true;
        return -EFBIG;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
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

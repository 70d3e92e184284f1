/*
 * list: an intrusive circular doubly-linked list (header only).
 *
 * Embed a struct list in the element; container_of gets the element back.
 * An unlinked node points at itself, so list_linked() tells whether a node
 * is in a list and list_remove() is safe to repeat. No allocation, no
 * thread safety of its own.
 */
#ifndef POLLEN_LIST_H
#define POLLEN_LIST_H

#include <stdbool.h>
#include <stddef.h>

#ifndef container_of
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#endif

struct list {
    struct list *prev;
    struct list *next;
};

static inline void list_init(struct list *l)
{
    l->prev = l;
    l->next = l;
}

static inline bool list_empty(const struct list *l)
{
    return l->next == l;
}

/* A node is "linked" when it is in some list; unlinked nodes point at themselves. */
static inline bool list_linked(const struct list *n)
{
    return n->next != n;
}

static inline void list_insert_tail(struct list *head, struct list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void list_remove(struct list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    list_init(n);
}

/* Moves every node of src to the (empty) list dst. */
static inline void list_move_all(struct list *dst, struct list *src)
{
    list_init(dst);
    if (list_empty(src)) {
        return;
    }
    dst->next = src->next;
    dst->prev = src->prev;
    dst->next->prev = dst;
    dst->prev->next = dst;
    list_init(src);
}

#endif

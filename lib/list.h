/*
 * An intrusive doubly linked list (circular, with a head node).
 */
#ifndef MX_LIST_H
#define MX_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct mx_list {
	struct mx_list *next, *prev;
};

#define MX_LIST_INIT(name) {&(name), &(name)}
#define mx_container_of(ptr, type, member)                                     \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#define mx_list_entry(ptr, type, member) mx_container_of(ptr, type, member)

static inline void mx_list_init(struct mx_list *h)
{
	h->next = h->prev = h;
}

static inline bool mx_list_empty(const struct mx_list *h)
{
	return h->next == h;
}

static inline void mx_list_add_tail(struct mx_list *h, struct mx_list *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

static inline void mx_list_del(struct mx_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}

/* Move every entry of from to the tail of to. */
static inline void mx_list_splice_tail(struct mx_list *to, struct mx_list *from)
{
	if (mx_list_empty(from))
		return;
	from->next->prev = to->prev;
	to->prev->next = from->next;
	from->prev->next = to;
	to->prev = from->prev;
	mx_list_init(from);
}

#define mx_list_for_each(pos, head) for (pos = (head)->next; pos != (head); pos = pos->next)

#define mx_list_for_each_safe(pos, tmp, head)                                  \
	for (pos = (head)->next, tmp = pos->next; pos != (head); pos = tmp, tmp = pos->next)

#endif

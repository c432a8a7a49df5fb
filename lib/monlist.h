/*
 * The monitors a client or an OSD knows of (docs/monitor-quorum.md): the
 * addresses it was given, plus those the map lists, and which one it uses.
 * On a lost connection it moves to the next; on a redirect to the leader
 * it names.
 */
#ifndef MX_MONLIST_H
#define MX_MONLIST_H

#include "map.h"

struct mx_monlist {
	char addr[MX_MAX_MONS][MX_ADDR_MAX];
	int n;
	int cur;
};

/* Parse "IP:PORT[,IP:PORT...]" (commas or spaces).  0 or -EINVAL. */
int mx_monlist_parse(struct mx_monlist *l, const char *spec);
/* Add an address if new; its index, or -ENOSPC. */
int mx_monlist_add(struct mx_monlist *l, const char *addr);
/* Add the monitors map m lists. */
void mx_monlist_learn(struct mx_monlist *l, const struct mx_map *m);
static inline const char *mx_monlist_current(const struct mx_monlist *l)
{
	return l->addr[l->cur];
}
/* Move to the next monitor. */
void mx_monlist_next(struct mx_monlist *l);
/* A redirect naming leader ("" if none): the next monitor to try, and how
 * long to wait before connecting (ms). */
unsigned mx_monlist_redirect(struct mx_monlist *l, const char *leader);

#endif

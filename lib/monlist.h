/*
 * The monitors a client or an OSD knows of (docs/monitor-quorum.md): the
 * addresses it was given, plus those the map lists, and which one it uses.
 * On a lost connection it moves to the next; on a redirect to the leader
 * it names.  A connection counts as lost also when the monitor has been
 * silent too long (struct mx_monlive): a monitor whose host is cut off
 * never closes it.
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

/* Liveness of the session with the current monitor.  The session pings
 * the monitor (which answers PING whether or not it knows a leader) every
 * MX_MON_PING_MS once connected, and gives up when nothing came from it for
 * MX_MON_GRACE_MS, connecting or connected.  Times in ms, any monotonic
 * clock. */
#define MX_MON_PING_MS 1000
#define MX_MON_GRACE_MS 5000

struct mx_monlive {
	uint64_t last_heard_ms; /* the attempt's start, its connect, or a message */
	uint64_t last_ping_ms;
};

enum mx_monlive_action {
	MX_MONLIVE_WAIT,    /* nothing to do */
	MX_MONLIVE_PING,    /* send a PING */
	MX_MONLIVE_GIVE_UP, /* close the session; the next monitor's turn */
};

/* A connection attempt starts. */
void mx_monlive_start(struct mx_monlive *l, uint64_t now_ms);
/* The connection is up, or a message came from the monitor. */
void mx_monlive_heard(struct mx_monlive *l, uint64_t now_ms);
/* What to do now; call it at least every second or so. */
enum mx_monlive_action mx_monlive_tick(struct mx_monlive *l, uint64_t now_ms, bool connected);

#endif

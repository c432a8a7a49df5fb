/*
 * The list of known monitors and the choice among them.
 */
#include "monlist.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "net.h"
#include "util.h"

/* After a redirect to the leader: soon.  With none named: as after a lost
 * connection (the election may take a second or two). */
#define REDIRECT_LEADER_MS 50
#define REDIRECT_NONE_MS 300

int mx_monlist_add(struct mx_monlist *l, const char *addr)
{
	struct sockaddr_in sin;

	for (int i = 0; i < l->n; i++)
		if (strcmp(l->addr[i], addr) == 0)
			return i;
	if (strlen(addr) >= MX_ADDR_MAX || mx_parse_addr(addr, &sin) < 0)
		return -EINVAL;
	if (l->n >= MX_MAX_MONS)
		return -ENOSPC;
	snprintf(l->addr[l->n], MX_ADDR_MAX, "%s", addr);
	return l->n++;
}

int mx_monlist_parse(struct mx_monlist *l, const char *spec)
{
	char copy[MX_MAX_MONS * MX_ADDR_MAX], *save = NULL;

	memset(l, 0, sizeof(*l));
	if (!spec || strlen(spec) >= sizeof(copy))
		return -EINVAL;
	snprintf(copy, sizeof(copy), "%s", spec);
	for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
		if (mx_monlist_add(l, t) < 0)
			return -EINVAL;
	return l->n ? 0 : -EINVAL;
}

void mx_monlist_learn(struct mx_monlist *l, const struct mx_map *m)
{
	for (uint32_t i = 0; i < m->n_mons; i++)
		(void)mx_monlist_add(l, m->mons[i].addr);
}

void mx_monlist_next(struct mx_monlist *l)
{
	if (l->n)
		l->cur = (l->cur + 1) % l->n;
}

void mx_monlive_start(struct mx_monlive *l, uint64_t now_ms)
{
	l->last_heard_ms = now_ms;
	l->last_ping_ms = now_ms;
}

void mx_monlive_heard(struct mx_monlive *l, uint64_t now_ms)
{
	l->last_heard_ms = now_ms;
}

enum mx_monlive_action mx_monlive_tick(struct mx_monlive *l, uint64_t now_ms, bool connected)
{
	if (mx_ms_since(now_ms, l->last_heard_ms) > MX_MON_GRACE_MS)
		return MX_MONLIVE_GIVE_UP;
	if (connected && mx_ms_since(now_ms, l->last_ping_ms) >= MX_MON_PING_MS) {
		l->last_ping_ms = now_ms;
		return MX_MONLIVE_PING;
	}
	return MX_MONLIVE_WAIT;
}

unsigned mx_monlist_redirect(struct mx_monlist *l, const char *leader)
{
	int i = leader && *leader ? mx_monlist_add(l, leader) : -1;

	if (i >= 0 && i != l->cur) {
		l->cur = i;
		return REDIRECT_LEADER_MS;
	}
	if (i < 0)
		mx_monlist_next(l);
	return REDIRECT_NONE_MS;
}

/*
 * The pure decisions of peering (docs/recovery.md), apart from any I/O so
 * that they are unit-tested on their own: a PG's past intervals from a run
 * of maps, the OSDs peering must hear from, when peering may proceed, which
 * copy is authoritative, and what a copy must fetch or delete to match it.
 */
#ifndef MX_PEERING_H
#define MX_PEERING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"
#include "placement.h"
#include "store.h"

/* A maximal run of epochs [first, last] in which the PG's up set, acting
 * set and primary stayed the same. */
struct mx_interval {
	uint64_t first, last;
	uint8_t n_up, n_acting;
	int32_t up[MX_MAX_SIZE];
	int32_t acting[MX_MAX_SIZE]; /* acting[0] is the primary */
	/* The acting set reached min_size: its primary may have acknowledged
	 * writes, which then are on every member of acting. */
	bool maybe_rw;
	uint8_t min_size; /* the pool's then */
};

/*
 * The intervals of (pool, pg) over maps[0..n), which must be consecutive
 * epochs in increasing order, each with its placement pls[i].  Epochs in
 * which the pool does not exist end the history (an older pool of the same
 * id is another pool).  Writes at most max intervals to out, oldest first,
 * and returns how many there are (which may exceed max), or -EINVAL.
 */
int mx_pg_intervals(const struct mx_map *const *maps, const struct mx_placement *const *pls,
		    size_t n, int32_t pool, uint32_t pg, struct mx_interval *out, size_t max);

/*
 * The OSDs peering must query: every member of the acting set of every
 * maybe-rw interval that ended at or after epoch since (the greatest les
 * known so far, or the first epoch of the history), plus up[0..n_up).
 * Writes at most max distinct ids to out (in first-seen order) and returns
 * the count.
 */
size_t mx_prior_set(const struct mx_interval *iv, size_t n, uint64_t since, const int32_t *up,
		    int n_up, int32_t *out, size_t max);

/*
 * Whether peering may choose the authoritative copy yet.  since is the
 * greatest les among the answers: that copy went active (adopting the
 * authoritative log) at that epoch, so it holds, logged, every write
 * acknowledged in every interval that began at or before it.  A maybe-rw
 * interval that began later went active only if min_size of its members
 * did, each then with an les at least its first epoch, and none of those
 * answered; a member that answered with an older les held that interval's
 * writes at most unlogged (recovering), which is not enough to lead: the
 * interval is covered only if so many of its members answered that
 * min_size of them cannot have gone active.  Returns -1 when peering may
 * proceed, else the index of the first interval not covered (the PG
 * waits: it may hold acknowledged writes only there).
 */
int mx_peering_blocked_by(const struct mx_interval *iv, size_t n, uint64_t since,
			  const int32_t *answered, size_t n_answered);

/*
 * The authoritative copy among infos[0..n): the greatest (les, last_update);
 * a tie goes to the lower index (callers put the primary first).  Returns
 * its index, or -1 if n is 0.
 */
int mx_choose_auth(const struct mx_pg_info *infos, size_t n);

/*
 * The PG's wb_lost after peering into the interval that began at epoch
 * interval (docs/cache-modes.md, "A power cut of every OSD that holds a
 * write"): the greatest wb_lost among infos[0..n), raised to interval when
 * every answer with the greatest les is suspect[] (its OSD restarted after
 * its host did, and may lack writes that copy acknowledged).  Writes are
 * acknowledged only in intervals that went active, so with every les 0
 * nothing can be lost.
 */
uint64_t mx_wb_lost(const struct mx_pg_info *infos, const bool *suspect, size_t n,
		    uint64_t interval);

enum mx_diff_need {
	MX_NEED_OBJECT = 1, /* fetch the authoritative object (version given) */
	MX_NEED_DELETE = 2, /* remove the object */
	MX_NEED_RESOLVE = 3, /* divergent and not in the authoritative log:
				make it what the authority's store holds */
};

/*
 * Compare a copy's log with the authoritative one.  auth[0..n_auth) and
 * mine[0..n_mine) are the logs, each in increasing version order;
 * auth_info and my_info their infos.
 *
 * If the copy's last_update is older than the authority's log_tail (and
 * the copy is not simply empty with an authority whose log reaches back to
 * the beginning), the logs cannot be compared entry by entry: returns 1
 * (backfill: compare object listings instead) and calls nothing.
 * Otherwise calls need(arg, name, len, what, version) once per object the
 * copy must change, and returns 0 (or the first non-zero return of need,
 * or -ENOMEM).
 */
int mx_log_diff(const struct mx_pglog_entry *auth, size_t n_auth,
		const struct mx_pg_info *auth_info, const struct mx_pglog_entry *mine,
		size_t n_mine, const struct mx_pg_info *my_info,
		int (*need)(void *arg, const char *name, uint32_t len, int what,
			    struct mx_version version),
		void *arg);

/*
 * Read leases (docs/read-policies.md, "Leases"): a peer answered our PING
 * with a PONG carrying its map epoch pong_epoch; our map is at my_epoch.
 * *max_epoch is the newest epoch any PONG from that peer has carried
 * (updated here).  Returns whether the PONG extends the peer's grant: only
 * if the peer has a map (not 0) and has never shown one newer than ours.
 * A peer that switched to a newer interval grants nothing more, even once
 * it answers with an older epoch again (restarted without its map, or
 * with an older one), until our own map catches up.
 */
bool mx_lease_pong_grants(uint64_t *max_epoch, uint64_t pong_epoch, uint64_t my_epoch);

#endif

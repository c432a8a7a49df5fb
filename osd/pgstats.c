/*
 * NOTES ON PG STATISTICS (docs/health.md)
 *
 * Every STATS_EVERY_MS, and within STATS_TICK_MS of a change of any of its
 * PGs' state bits, the OSD sends the monitor MON_PG_STATS: the usage of the
 * file system of its data folder and one record per PG it is the primary
 * of.  Everything is derived from what the primary holds anyway, so a
 * report costs a walk of the PG table and no I/O:
 *  - state bits from pgs->state and the members' states;
 *  - objects and bytes from the store's per-PG counters;
 *  - degraded copies: what acting members still miss (their n_miss, a
 *    backfilled member's counting every object the primary listed for
 *    it), what the primary pulls, and every object once per member the PG
 *    lacks (size - acting);
 *  - misplaced copies: a backfilled member's missing objects while an old
 *    copy of the PG is still up outside the acting set (the data exists,
 *    it only moves);
 *  - recovered objects: the fall of the count of missing copies between
 *    two samples of one interval, cumulative; bytes are estimated from the
 *    PG's mean object size (the count is exact, the bytes approximate).
 */
#include "osd_int.h"

static bool pgstat_stray_up(struct osd *osd, const struct pgstate *pgs)
{
	for (int k = 1; k < pgs->n_peers; k++) {
		const struct pgpeer *pp = &pgs->peers[k];
		const struct mx_osd_info *o = mx_map_osd(osd->map, pp->osd);
		bool member = false;

		for (int i = 0; i < pgs->n_acting; i++)
			member |= pgs->acting[i] == pp->osd;
		if (!member && pp->answered && o && o->up)
			return true;
	}
	return false;
}

/* The record of a PG we are primary of; false if we do not report it. */
static bool pgstat_fill(struct osd *osd, struct pgstate *pgs, struct mx_pg_stat *out)
{
	const struct mx_pool *pool = pg_pool(osd, pgs);
	uint64_t missing = 0;
	uint32_t st = 0;
	bool clean = true;

	if (pgs->role != ROLE_PRIMARY || !pgs->interval || !pool)
		return false;
	memset(out, 0, sizeof(*out));
	out->pool = pgs->pool;
	out->pg = pgs->pg;
	out->interval = pgs->interval;
	mx_store_pg_usage(osd->store, pgs->pool, pgs->pg, &out->objects, &out->bytes);
	switch (pgs->state) {
	case PG_PEERING:
		st |= pgs->warned ? MX_PGS_INCOMPLETE : MX_PGS_PEERING;
		break;
	case PG_SCANNING:
		st |= MX_PGS_PEERING | MX_PGS_BACKFILLING;
		break;
	case PG_PULLING:
		st |= MX_PGS_PEERING | MX_PGS_RECOVERING;
		out->degraded += (uint64_t)pgs->n_pulls;
		missing += (uint64_t)pgs->n_pulls;
		break;
	case PG_ACTIVATING:
		st |= MX_PGS_ACTIVATING;
		break;
	case PG_ACTIVE:
		st |= MX_PGS_ACTIVE;
		break;
	case PG_STUCK:
		st |= MX_PGS_INCOMPLETE;
		break;
	default:
		break; /* fewer than min_size members: nothing but undersized */
	}
	if (pgs->state == PG_ACTIVATING || pgs->state == PG_ACTIVE) {
		bool stray = false, stray_known = false;

		for (int i = 0; i < pgs->n_acting; i++) {
			const struct member *mb = &pgs->mem[i];

			if (mb->state != M_COMPLETE || !mb->acked)
				clean = false;
			if (i == 0 || mb->state != M_RECOVERING)
				continue;
			st |= mb->backfill ? MX_PGS_BACKFILLING : MX_PGS_RECOVERING;
			missing += (uint64_t)mb->n_miss;
			if (mb->backfill && !stray_known) {
				stray = pgstat_stray_up(osd, pgs);
				stray_known = true;
			}
			if (mb->backfill && stray)
				out->misplaced += (uint64_t)mb->n_miss;
			else
				out->degraded += (uint64_t)mb->n_miss;
		}
	} else {
		clean = false;
	}
	if (pgs->n_acting < pool->size) {
		st |= MX_PGS_UNDERSIZED | MX_PGS_DEGRADED;
		out->degraded += out->objects * (uint64_t)(pool->size - pgs->n_acting);
		clean = false;
	}
	/* Remapped: the acting set is not the up set without its down OSDs
	 * (a down member is only undersized). */
	{
		int32_t upu[MX_MAX_SIZE];
		int nu = 0;

		for (int i = 0; i < pgs->n_up; i++) {
			const struct mx_osd_info *o = mx_map_osd(osd->map, pgs->up[i]);

			if (o && o->up)
				upu[nu++] = pgs->up[i];
		}
		if (nu != pgs->n_acting ||
		    memcmp(upu, pgs->acting, (size_t)nu * sizeof(*upu)) != 0) {
			st |= MX_PGS_REMAPPED;
			clean = false;
		}
		if (pgs->n_up != pgs->n_acting)
			clean = false;
	}
	if (out->degraded)
		st |= MX_PGS_DEGRADED;
	if (clean && (st & MX_PGS_ACTIVE) && !out->degraded && !out->misplaced)
		st |= MX_PGS_CLEAN;
	if (pgs->scrub)
		st |= MX_PGS_SCRUBBING | (scrub_is_deep(pgs->scrub) ? MX_PGS_DEEP : 0);
	if (pgs->st.inconsistent)
		st |= MX_PGS_INCONSISTENT;
	out->state = st;

	/* Recovery progress: the fall of missing copies within one interval. */
	if (pgs->st.interval == pgs->interval && missing < pgs->st.missing) {
		uint64_t done = pgs->st.missing - missing;

		pgs->st.recovered_objects += done;
		if (out->objects)
			pgs->st.recovered_bytes += done * (out->bytes / out->objects);
	}
	pgs->st.interval = pgs->interval;
	pgs->st.missing = missing;
	out->recovered_objects = pgs->st.recovered_objects;
	out->recovered_bytes = pgs->st.recovered_bytes;
	out->scrub_ms = pgs->st.scrub_ms;
	out->deep_scrub_ms = pgs->st.deep_scrub_ms;
	return true;
}

void stats_tick(uv_timer_t *t)
{
	struct osd *osd = t->data;
	const struct mx_osd_info *me;
	struct mx_msg_pg_stats h;
	struct statvfs vfs;
	struct mx_wbuf w;
	uint64_t now = mx_now_ns();
	bool changed = false;
	uint32_t n = 0;
	size_t at;

	if (!osd->map || !osd->booted || !osd->mon || !osd->mon_connected || osd->stopping)
		return;
	me = mx_map_osd(osd->map, osd->id);
	memset(&h, 0, sizeof(h));
	h.osd_id = osd->id;
	h.incarnation = me ? me->incarnation : 0;
	h.epoch = osd->map->epoch;
	h.stamp_ms = mx_wall_ms();
	if (statvfs(osd->cfg->data_dir, &vfs) == 0) {
		h.fs_total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
		h.fs_avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
		h.fs_used = (uint64_t)(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
	}
	mx_wbuf_init(&w);
	at = mx_enc_pg_stats_head(&w, &h);
	for (size_t b = 0; b < PG_BUCKETS; b++) {
		for (struct pgstate *pgs = osd->pgs[b]; pgs; pgs = pgs->next) {
			struct mx_pg_stat ps;

			if (!pgstat_fill(osd, pgs, &ps))
				continue;
			if (!pgs->st.reported || pgs->st.sent_state != ps.state)
				changed = true;
			pgs->st.reported = true;
			pgs->st.sent_state = ps.state;
			mx_enc_pg_stat(&w, &ps);
			n++;
		}
	}
	mx_enc_pg_stats_end(&w, at, n);
	if (!changed && now - osd->stats_sent_ns < (uint64_t)STATS_EVERY_MS * 1000000ull) {
		mx_wbuf_free(&w);
		return;
	}
	if (mx_conn_send(osd->mon, MX_MSG_MON_PG_STATS, ++osd->next_tid, &w) == 0)
		osd->stats_sent_ns = now;
}

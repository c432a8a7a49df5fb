/*
 * PG statistics, health and the event log of the monitor (see pgstats.h
 * and docs/health.md).
 */
#include "pgstats.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define RATE_SAMPLES 11 /* one a second: rates over the last 10 s */

/* One PG of the map, with its primary's newest report. */
struct pgent {
	int32_t pool;
	uint32_t pg;
	int32_t primary;      /* in the current map; -1: no OSD up */
	uint8_t size;         /* the pool's */
	bool has;             /* s is the primary's report */
	struct mx_pg_stat s;
	uint64_t report_ms;   /* when s arrived */
	uint64_t since_ms;    /* when the PG got this primary */
	uint64_t inactive_ms; /* since when it is not active; 0: active */
};

/* What the monitor knows of one OSD's reports. */
struct osdent {
	uint64_t incarnation;
	uint64_t report_ms;
	uint64_t fs_total, fs_used, fs_avail;
};

struct mx_pgstats {
	struct mx_pgstats_cfg cfg;
	struct pgent *pgs; /* sorted by (pool, pg) */
	size_t n_pgs;
	struct osdent *osds; /* by id */
	uint32_t n_osds;
	/* Recovered so far, summed from the reports' increases. */
	uint64_t rec_objects, rec_bytes;
	struct {
		uint64_t ms, objects, bytes;
	} samples[RATE_SAMPLES];
	int n_samples, next_sample;
};

const char *mx_health_name(int status)
{
	switch (status) {
	case MX_HEALTH_OK: return "HEALTH_OK";
	case MX_HEALTH_WARN: return "HEALTH_WARN";
	default: return "HEALTH_ERR";
	}
}

int mx_pgstats_space(const struct mx_pgstats *ps, const struct mx_map *m, int32_t id)
{
	const struct mx_osd_info *o = mx_map_osd(m, id);
	const struct osdent *oe;
	double ratio;

	if (!o || id < 0 || (uint32_t)id >= ps->n_osds)
		return -1;
	oe = &ps->osds[id];
	if (oe->incarnation != o->incarnation || !(oe->fs_used + oe->fs_avail))
		return -1;
	ratio = (double)oe->fs_used / (double)(oe->fs_used + oe->fs_avail);
	if (ratio >= ps->cfg.full)
		return MX_SPACE_FULL;
	if (ratio >= ps->cfg.backfillfull)
		return MX_SPACE_BACKFILLFULL;
	if (ratio >= ps->cfg.nearfull)
		return MX_SPACE_NEARFULL;
	return MX_SPACE_OK;
}

struct mx_pgstats *mx_pgstats_new(const struct mx_pgstats_cfg *cfg)
{
	struct mx_pgstats *ps = calloc(1, sizeof(*ps));

	if (ps)
		ps->cfg = *cfg;
	return ps;
}

void mx_pgstats_free(struct mx_pgstats *ps)
{
	if (!ps)
		return;
	free(ps->pgs);
	free(ps->osds);
	free(ps);
}

static int pgent_cmp(int32_t pool, uint32_t pg, const struct pgent *e)
{
	if (pool != e->pool)
		return pool < e->pool ? -1 : 1;
	if (pg != e->pg)
		return pg < e->pg ? -1 : 1;
	return 0;
}

static struct pgent *pgent_find(struct pgent *v, size_t n, int32_t pool, uint32_t pg)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = pgent_cmp(pool, pg, &v[mid]);

		if (c == 0)
			return &v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int mx_pgstats_map(struct mx_pgstats *ps, const struct mx_map *m,
		   const struct mx_placement *pl, uint64_t now_ms)
{
	struct pgent *v;
	size_t n = 0, k = 0;

	for (uint32_t i = 0; i < m->n_pools; i++)
		n += m->pools[i].pg_num;
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	/* Pools are sorted by id and PGs by number: v is sorted. */
	for (uint32_t i = 0; i < m->n_pools; i++) {
		const struct mx_pool *p = &m->pools[i];

		for (uint32_t pg = 0; pg < p->pg_num; pg++) {
			int32_t act[MX_MAX_SIZE];
			int na = pl ? mx_pg_acting(pl, m, p, pg, act, MX_MAX_SIZE) : 0;
			struct pgent *e = &v[k++];
			const struct pgent *old = pgent_find(ps->pgs, ps->n_pgs, p->id, pg);

			if (old)
				*e = *old;
			e->pool = p->id;
			e->pg = pg;
			e->size = p->size;
			if (!old || old->primary != (na > 0 ? act[0] : -1)) {
				e->primary = na > 0 ? act[0] : -1;
				e->has = false;
				e->since_ms = now_ms;
			}
		}
	}
	free(ps->pgs);
	ps->pgs = v;
	ps->n_pgs = n;
	return 0;
}

static struct osdent *osdent_get(struct mx_pgstats *ps, int32_t id)
{
	if (id < 0 || id >= MX_MAX_OSDS)
		return NULL;
	if ((uint32_t)id >= ps->n_osds) {
		uint32_t n = (uint32_t)id + 1;
		struct osdent *v = realloc(ps->osds, n * sizeof(*v));

		if (!v)
			return NULL;
		memset(v + ps->n_osds, 0, (n - ps->n_osds) * sizeof(*v));
		ps->osds = v;
		ps->n_osds = n;
	}
	return &ps->osds[id];
}

int mx_pgstats_report(struct mx_pgstats *ps, const struct mx_map *m,
		      struct mx_msg_pg_stats *r, uint64_t now_ms)
{
	const struct mx_osd_info *o = mx_map_osd(m, r->osd_id);
	struct osdent *oe;
	int kept = 0;

	if (!o || !o->up || o->incarnation != r->incarnation)
		return 0;
	oe = osdent_get(ps, r->osd_id);
	if (!oe)
		return 0;
	if (oe->incarnation != r->incarnation)
		memset(oe, 0, sizeof(*oe));
	oe->incarnation = r->incarnation;
	oe->report_ms = now_ms;
	oe->fs_total = r->fs_total;
	oe->fs_used = r->fs_used;
	oe->fs_avail = r->fs_avail;
	for (uint32_t i = 0; i < r->n; i++) {
		struct mx_pg_stat s;
		struct pgent *e;

		if (mx_pg_stat_next(&r->entries, &s) < 0)
			return -EBADMSG;
		e = pgent_find(ps->pgs, ps->n_pgs, s.pool, s.pg);
		if (!e || e->primary != r->osd_id)
			continue;
		/* Recovery counts only as increases of one reporter's counters;
		 * a new reporter's first report is the baseline. */
		if (e->has && s.recovered_objects >= e->s.recovered_objects &&
		    s.recovered_bytes >= e->s.recovered_bytes) {
			ps->rec_objects += s.recovered_objects - e->s.recovered_objects;
			ps->rec_bytes += s.recovered_bytes - e->s.recovered_bytes;
		}
		e->s = s;
		e->has = true;
		e->report_ms = now_ms;
		kept++;
	}
	return kept;
}

void mx_pgstats_tick(struct mx_pgstats *ps, uint64_t now_ms)
{
	int i = ps->next_sample;

	ps->samples[i].ms = now_ms;
	ps->samples[i].objects = ps->rec_objects;
	ps->samples[i].bytes = ps->rec_bytes;
	ps->next_sample = (i + 1) % RATE_SAMPLES;
	if (ps->n_samples < RATE_SAMPLES)
		ps->n_samples++;
}

static void add_check(struct mx_health *h, int sev, const char *code, const char *fmt, ...)
	MX_PRINTF(4, 5);

static void add_check(struct mx_health *h, int sev, const char *code, const char *fmt, ...)
{
	struct mx_health_check *c;
	va_list ap;

	if (h->n_checks >= MX_HEALTH_MAX_CHECKS)
		return;
	c = &h->checks[h->n_checks++];
	c->severity = sev;
	snprintf(c->code, sizeof(c->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(c->text, sizeof(c->text), fmt, ap);
	va_end(ap);
	if (sev > h->status)
		h->status = sev;
}

static void count_state(struct mx_health *h, uint32_t st)
{
	int i;

	for (i = 0; i < h->n_states; i++)
		if (h->states[i].state == st)
			break;
	if (i == h->n_states) {
		if (h->n_states >= MX_HEALTH_MAX_STATES)
			return;
		h->n_states++;
		h->states[i].state = st;
		h->states[i].n = 0;
	}
	h->states[i].n++;
}

static int cmp_state(const void *a, const void *b)
{
	const struct mx_state_count *x = a, *y = b;

	if (x->n != y->n)
		return x->n < y->n ? 1 : -1; /* most frequent first */
	return x->state < y->state ? -1 : x->state > y->state;
}

static double pct(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* " (a peering, b stale)": the non-zero parts, or "". */
static void breakdown(char *buf, size_t sz, int n, const char *const *names,
		      const uint64_t *counts)
{
	size_t at = 0;

	buf[0] = '\0';
	for (int i = 0; i < n && at + 2 < sz; i++) {
		int k;

		if (!counts[i])
			continue;
		k = snprintf(buf + at, sz - at, "%s%" PRIu64 " %s", at ? ", " : " (", counts[i],
			     names[i]);
		if (k < 0 || (size_t)k >= sz - at)
			break;
		at += (size_t)k;
	}
	if (at && at + 1 < sz)
		snprintf(buf + at, sz - at, ")");
}

/* A PG's state as the monitor sees it now: its primary's last report, or
 * stale / unknown when there is none fresh. */
static uint32_t pg_state_now(const struct mx_pgstats *ps, const struct pgent *e, uint64_t now_ms)
{
	if (e->has && mx_ms_since(now_ms, e->report_ms) <= ps->cfg.stale_ms)
		return e->s.state;
	if (e->has)
		return e->s.state | MX_PGS_STALE;
	if (mx_ms_since(now_ms, e->since_ms) <= ps->cfg.stale_ms)
		return MX_PGS_UNKNOWN;
	return MX_PGS_STALE;
}

int mx_pgstats_pool_objects(const struct mx_pgstats *ps, int32_t pool, uint64_t now_ms,
			    uint64_t *objects, uint32_t *unsure)
{
	uint32_t n = 0;

	*objects = 0;
	*unsure = 0;
	for (size_t i = 0; i < ps->n_pgs; i++) {
		const struct pgent *e = &ps->pgs[i];
		bool fresh = e->has && mx_ms_since(now_ms, e->report_ms) <= ps->cfg.stale_ms;

		if (e->pool != pool)
			continue;
		n++;
		if (fresh)
			*objects += e->s.objects; /* these are there, active or not */
		if (!fresh || !(e->s.state & MX_PGS_ACTIVE))
			(*unsure)++;
	}
	if (!n)
		return -ENOENT;
	return *unsure ? -EAGAIN : 0;
}

json_t *mx_pgstats_ls(const struct mx_pgstats *ps, uint64_t now_ms, int32_t pool,
		      const char *state)
{
	json_t *a = json_array();
	char name[160];

	for (size_t i = 0; a && i < ps->n_pgs; i++) {
		const struct pgent *e = &ps->pgs[i];
		char pgid[32];

		if (pool >= 0 && e->pool != pool)
			continue;
		mx_pg_state_name(pg_state_now(ps, e, now_ms), name, sizeof(name));
		if (state && *state && !strstr(name, state))
			continue;
		snprintf(pgid, sizeof(pgid), "%d.%x", e->pool, e->pg);
		json_array_append_new(
			a, json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "pgid", pgid,
				     "state", name, "primary", (int)e->primary, "objects",
				     (json_int_t)(e->has ? e->s.objects : 0), "bytes",
				     (json_int_t)(e->has ? e->s.bytes : 0), "degraded",
				     (json_int_t)(e->has ? e->s.degraded : 0), "misplaced",
				     (json_int_t)(e->has ? e->s.misplaced : 0), "scrub_ms",
				     (json_int_t)(e->has ? e->s.scrub_ms : 0), "deep_scrub_ms",
				     (json_int_t)(e->has ? e->s.deep_scrub_ms : 0)));
	}
	return a;
}

void mx_pgstats_health(struct mx_pgstats *ps, const struct mx_map *m, uint64_t now_ms,
		       struct mx_health *h)
{
	char down[128] = "", tmp[160];
	size_t dat = 0;
	uint64_t n_down = 0, stale_active = 0;

	memset(h, 0, sizeof(*h));
	h->eta_s = -1;
	for (uint32_t i = 0; i < m->max_osd; i++) {
		const struct mx_osd_info *o = &m->osds[i];
		const struct osdent *oe = i < ps->n_osds ? &ps->osds[i] : NULL;

		if (!o->exists)
			continue;
		h->osds++;
		h->osds_up += o->up;
		h->osds_in += o->in;
		if (!o->up && !o->in)
			continue; /* down and out: its data has moved on, nothing to warn of */
		if (!o->up) {
			n_down++;
			if (dat + 12 < sizeof(down)) {
				int k = snprintf(down + dat, sizeof(down) - dat, "%sosd.%u",
						 dat ? ", " : "", i);

				dat += k > 0 ? (size_t)k : 0;
			}
			continue;
		}
		if (!oe || oe->incarnation != o->incarnation || !oe->fs_total)
			continue;
		h->fs_total += oe->fs_total;
		h->fs_used += oe->fs_used;
		h->fs_avail += oe->fs_avail;
		{
			double ratio = (double)oe->fs_used / (double)(oe->fs_used + oe->fs_avail);

			if (ratio >= ps->cfg.full) {
				if (h->n_full < 32)
					h->full[h->n_full] = (int32_t)i;
				h->n_full++;
			} else if (ratio >= ps->cfg.nearfull) {
				if (h->n_nearfull < 32)
					h->nearfull[h->n_nearfull] = (int32_t)i;
				h->n_nearfull++;
			}
		}
	}

	for (size_t i = 0; i < ps->n_pgs; i++) {
		struct pgent *e = &ps->pgs[i];
		uint32_t st = pg_state_now(ps, e, now_ms);

		h->pgs++;
		count_state(h, st);
		if (e->has) {
			h->objects += e->s.objects;
			h->bytes += e->s.bytes;
			h->copies += e->s.objects * e->size;
			h->degraded += e->s.degraded;
			h->misplaced += e->s.misplaced;
		}
		if (st & MX_PGS_ACTIVE) {
			h->pgs_active++;
			e->inactive_ms = 0;
		} else {
			h->pgs_inactive++;
			if (!e->inactive_ms)
				e->inactive_ms = now_ms;
			else if (mx_ms_since(now_ms, e->inactive_ms) > ps->cfg.inactive_ms)
				h->pgs_stuck_inactive++;
		}
		h->pgs_clean += (st & (MX_PGS_ACTIVE | MX_PGS_CLEAN)) ==
				(MX_PGS_ACTIVE | MX_PGS_CLEAN) && !(st & MX_PGS_STALE);
		h->pgs_stale += !!(st & MX_PGS_STALE);
		stale_active += (st & (MX_PGS_STALE | MX_PGS_ACTIVE)) ==
				(MX_PGS_STALE | MX_PGS_ACTIVE);
		h->pgs_unknown += !!(st & MX_PGS_UNKNOWN);
		h->pgs_peering += !!(st & (MX_PGS_PEERING | MX_PGS_ACTIVATING));
		h->pgs_incomplete += !!(st & MX_PGS_INCOMPLETE);
		h->pgs_degraded += !!(st & MX_PGS_DEGRADED);
		h->pgs_undersized += !!(st & MX_PGS_UNDERSIZED);
		h->pgs_recovering += !!(st & MX_PGS_RECOVERING);
		h->pgs_backfilling += !!(st & MX_PGS_BACKFILLING);
		h->pgs_remapped += !!(st & MX_PGS_REMAPPED);
		h->pgs_inconsistent += !!(st & MX_PGS_INCONSISTENT);
	}
	qsort(h->states, (size_t)h->n_states, sizeof(h->states[0]), cmp_state);

	/* Recovery rate over the samples, ETA from it. */
	if (ps->n_samples >= 2) {
		int newest = (ps->next_sample + RATE_SAMPLES - 1) % RATE_SAMPLES;
		int oldest = ps->n_samples < RATE_SAMPLES ? 0 : ps->next_sample;
		uint64_t dt = ps->samples[newest].ms - ps->samples[oldest].ms;

		if (dt > 0) {
			h->rec_objects_s = (double)(ps->samples[newest].objects -
						    ps->samples[oldest].objects) *
					   1000.0 / (double)dt;
			h->rec_bytes_s = (double)(ps->samples[newest].bytes -
						  ps->samples[oldest].bytes) *
					 1000.0 / (double)dt;
		}
	}
	if (h->rec_objects_s > 0 && h->degraded + h->misplaced)
		h->eta_s = (int64_t)((double)(h->degraded + h->misplaced) / h->rec_objects_s + 0.5);

	/* The checks, most severe kinds first. */
	if (h->osds == 0 && m->n_pools)
		add_check(h, MX_HEALTH_ERR, "OSD_NONE", "no OSDs");
	if (n_down)
		add_check(h, MX_HEALTH_WARN, "OSD_DOWN", "%" PRIu64 " osds down (%s)", n_down, down);
	if (h->n_full)
		add_check(h, MX_HEALTH_ERR, "OSD_FULL",
			  "%u osds full (usage >= %.0f%%), osd.%d first", h->n_full,
			  ps->cfg.full * 100.0, h->full[0]);
	if (h->n_nearfull)
		add_check(h, MX_HEALTH_WARN, "OSD_NEARFULL",
			  "%u osds nearfull (usage >= %.0f%%), osd.%d first", h->n_nearfull,
			  ps->cfg.nearfull * 100.0, h->nearfull[0]);
	if (h->pgs_inactive) {
		static const char *const names[] = {"unknown", "stale", "peering", "incomplete"};
		uint64_t counts[] = {h->pgs_unknown, h->pgs_stale, h->pgs_peering,
				     h->pgs_incomplete};

		breakdown(tmp, sizeof(tmp), 4, names, counts);
		if (h->pgs_stuck_inactive)
			add_check(h, MX_HEALTH_ERR, "PG_AVAILABILITY",
				  "Reduced data availability: %" PRIu64 " pgs inactive%s, %" PRIu64
				  " for more than %u s",
				  h->pgs_inactive, tmp, h->pgs_stuck_inactive,
				  ps->cfg.inactive_ms / 1000);
		else
			add_check(h, MX_HEALTH_WARN, "PG_AVAILABILITY",
				  "Reduced data availability: %" PRIu64 " pgs inactive%s",
				  h->pgs_inactive, tmp);
	}
	/* Stale PGs that were active when last heard of (the inactive ones
	 * are counted above). */
	if (stale_active)
		add_check(h, MX_HEALTH_WARN, "PG_STALE",
			  "%" PRIu64 " pgs stale (their primary has not reported for %u s)",
			  stale_active, ps->cfg.stale_ms / 1000);
	if (h->pgs_inconsistent)
		add_check(h, MX_HEALTH_ERR, "PG_INCONSISTENT",
			  "Possible data damage: %" PRIu64 " pgs inconsistent (pg repair fixes them)",
			  h->pgs_inconsistent);
	if (h->degraded || h->pgs_degraded || h->pgs_undersized) {
		static const char *const names[] = {"undersized"};
		uint64_t counts[] = {h->pgs_undersized};

		breakdown(tmp, sizeof(tmp), 1, names, counts);
		add_check(h, MX_HEALTH_WARN, "PG_DEGRADED",
			  "Degraded data redundancy: %" PRIu64 "/%" PRIu64
			  " objects degraded (%.3f%%), %" PRIu64 " pgs degraded%s",
			  h->degraded, h->copies, pct(h->degraded, h->copies), h->pgs_degraded, tmp);
	}
	if (h->pgs_recovering || h->pgs_backfilling)
		add_check(h, MX_HEALTH_WARN, "PG_RECOVERY",
			  "Recovery: %" PRIu64 " pgs recovering, %" PRIu64 " pgs backfilling",
			  h->pgs_recovering, h->pgs_backfilling);
	if (h->misplaced || h->pgs_remapped)
		add_check(h, MX_HEALTH_WARN, "OBJECT_MISPLACED",
			  "%" PRIu64 "/%" PRIu64 " objects misplaced (%.3f%%), %" PRIu64
			  " pgs remapped",
			  h->misplaced, h->copies, pct(h->misplaced, h->copies), h->pgs_remapped);
	if (h->n_checks == 0 && h->pgs_clean < h->pgs)
		add_check(h, MX_HEALTH_WARN, "PG_NOT_CLEAN", "%" PRIu64 " pgs not active+clean",
			  h->pgs - h->pgs_clean);
}

json_t *mx_health_json(const struct mx_health *h)
{
	json_t *checks = json_array(), *states = json_array(), *nf = json_array(),
	       *fu = json_array(), *pgs;
	char name[160];

	for (int i = 0; i < h->n_checks; i++)
		json_array_append_new(checks,
				      json_pack("{s:s, s:s, s:s}", "severity",
						mx_health_name(h->checks[i].severity), "code",
						h->checks[i].code, "summary", h->checks[i].text));
	for (int i = 0; i < h->n_states; i++)
		json_array_append_new(states,
				      json_pack("{s:s, s:I}", "state",
						mx_pg_state_name(h->states[i].state, name,
								 sizeof(name)),
						"count", (json_int_t)h->states[i].n));
	for (uint32_t i = 0; i < h->n_nearfull && i < 32; i++)
		json_array_append_new(nf, json_integer(h->nearfull[i]));
	for (uint32_t i = 0; i < h->n_full && i < 32; i++)
		json_array_append_new(fu, json_integer(h->full[i]));
	pgs = json_pack("{s:I, s:o}", "total", (json_int_t)h->pgs, "by_state", states);
	{
		static const char *const keys[] = {
			"active",     "clean",      "inactive",    "stale",
			"unknown",    "peering",    "incomplete",  "degraded",
			"undersized", "recovering", "backfilling", "remapped",
			"inconsistent", "stuck_inactive",
		};
		const uint64_t vals[] = {
			h->pgs_active,     h->pgs_clean,      h->pgs_inactive,    h->pgs_stale,
			h->pgs_unknown,    h->pgs_peering,    h->pgs_incomplete,  h->pgs_degraded,
			h->pgs_undersized, h->pgs_recovering, h->pgs_backfilling, h->pgs_remapped,
			h->pgs_inconsistent, h->pgs_stuck_inactive,
		};

		for (size_t i = 0; pgs && i < sizeof(keys) / sizeof(keys[0]); i++)
			json_object_set_new(pgs, keys[i], json_integer((json_int_t)vals[i]));
	}
	return json_pack(
		"{s:{s:s, s:o}, s:{s:i, s:i, s:i, s:o, s:o}, s:o,"
		" s:{s:I, s:I, s:I, s:I, s:f, s:I, s:f},"
		" s:{s:I, s:I, s:I},"
		" s:{s:f, s:f, s:o}}",
		"health", "status", mx_health_name(h->status), "checks", checks,
		"osds", "total", (int)h->osds, "up", (int)h->osds_up, "in", (int)h->osds_in,
		"nearfull", nf, "full", fu,
		"pgs", pgs,
		"objects", "total", (json_int_t)h->objects, "bytes", (json_int_t)h->bytes,
		"copies", (json_int_t)h->copies, "degraded", (json_int_t)h->degraded,
		"degraded_ratio", h->copies ? (double)h->degraded / (double)h->copies : 0.0,
		"misplaced", (json_int_t)h->misplaced, "misplaced_ratio",
		h->copies ? (double)h->misplaced / (double)h->copies : 0.0,
		"usage", "total_bytes", (json_int_t)h->fs_total, "used_bytes",
		(json_int_t)h->fs_used, "avail_bytes", (json_int_t)h->fs_avail,
		"recovery", "objects_per_s", h->rec_objects_s, "bytes_per_s", h->rec_bytes_s,
		"eta_s", h->eta_s >= 0 ? json_integer(h->eta_s) : json_null());
}

void mx_health_pgmap(const struct mx_health *h, char *buf, size_t sz)
{
	size_t at = 0;
	char name[160];
	int k;

	if (!sz)
		return;
	buf[0] = '\0';
	k = snprintf(buf, sz, "%" PRIu64 " pgs:", h->pgs);
	at = k > 0 && (size_t)k < sz ? (size_t)k : sz - 1;
	for (int i = 0; i < h->n_states && at + 1 < sz; i++) {
		k = snprintf(buf + at, sz - at, "%s %" PRIu64 " %s", i ? "," : "", h->states[i].n,
			     mx_pg_state_name(h->states[i].state, name, sizeof(name)));
		if (k < 0 || (size_t)k >= sz - at)
			return;
		at += (size_t)k;
	}
	if (h->degraded && at + 1 < sz) {
		k = snprintf(buf + at, sz - at, "; %" PRIu64 "/%" PRIu64 " objects degraded (%.3f%%)",
			     h->degraded, h->copies, pct(h->degraded, h->copies));
		if (k < 0 || (size_t)k >= sz - at)
			return;
		at += (size_t)k;
	}
	if (h->misplaced && at + 1 < sz)
		snprintf(buf + at, sz - at, "; %" PRIu64 "/%" PRIu64 " objects misplaced (%.3f%%)",
			 h->misplaced, h->copies, pct(h->misplaced, h->copies));
}

/* Event log ------------------------------------------------------------------ */

struct event {
	uint64_t seq, ms;
	int severity;
	char text[256];
};

struct mx_evlog {
	struct event ev[MX_EVLOG_MAX];
	uint64_t next_seq; /* of the next event; the ring holds the newest */
};

struct mx_evlog *mx_evlog_new(void)
{
	struct mx_evlog *l = calloc(1, sizeof(*l));

	if (l)
		l->next_seq = 1;
	return l;
}

void mx_evlog_free(struct mx_evlog *l)
{
	free(l);
}

uint64_t mx_evlog_add(struct mx_evlog *l, uint64_t now_ms, int severity, const char *fmt, ...)
{
	struct event *e = &l->ev[l->next_seq % MX_EVLOG_MAX];
	va_list ap;

	e->seq = l->next_seq++;
	e->ms = now_ms;
	e->severity = severity;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	return e->seq;
}

uint64_t mx_evlog_last(const struct mx_evlog *l)
{
	return l->next_seq - 1;
}

json_t *mx_evlog_json(const struct mx_evlog *l, uint64_t after, uint32_t max,
		      size_t max_bytes)
{
	uint64_t last = mx_evlog_last(l);
	uint64_t first = last >= MX_EVLOG_MAX ? last - MX_EVLOG_MAX + 1 : 1;
	json_t *evs = json_array();
	size_t bytes = 0;

	if (after + 1 > first)
		first = after + 1;
	if (max && last >= first && last - first + 1 > max)
		first = last - max + 1;
	for (uint64_t s = first; s <= last; s++) {
		const struct event *e = &l->ev[s % MX_EVLOG_MAX];

		bytes += strlen(e->text) + 80;
		if (bytes > max_bytes)
			break; /* the rest on the next call */
		json_array_append_new(evs, json_pack("{s:I, s:I, s:s, s:s}", "seq",
						     (json_int_t)e->seq, "stamp_ms",
						     (json_int_t)e->ms, "severity",
						     e->severity == MX_HEALTH_ERR    ? "ERR"
						     : e->severity == MX_HEALTH_WARN ? "WRN"
										     : "INF",
						     "text", e->text));
	}
	return json_pack("{s:I, s:o}", "last", (json_int_t)last, "events", evs);
}

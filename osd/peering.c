/*
 * The pure decisions of peering: see peering.h for each contract and
 * docs/recovery.md for why they keep every acknowledged write.
 */
#include "peering.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static bool same_set(const int32_t *a, int na, const int32_t *b, int nb)
{
	if (na != nb)
		return false;
	for (int i = 0; i < na; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

int mx_pg_intervals(const struct mx_map *const *maps, const struct mx_placement *const *pls,
		    size_t n, int32_t pool_id, uint32_t pg, struct mx_interval *out, size_t max)
{
	struct mx_interval cur;
	size_t count = 0;
	bool open = false;

	for (size_t i = 0; i < n; i++) {
		const struct mx_pool *pool;
		int32_t up[MX_MAX_SIZE], act[MX_MAX_SIZE];
		int nu, na;

		if (i > 0 && maps[i]->epoch != maps[i - 1]->epoch + 1)
			return -EINVAL;
		pool = mx_map_pool_by_id(maps[i], pool_id);
		if (!pool || pg >= pool->pg_num) {
			if (open)
				break; /* the pool ended: history stops */
			continue;
		}
		nu = mx_pg_up(pls[i], pool, pg, up, MX_MAX_SIZE);
		na = mx_pg_acting(pls[i], maps[i], pool, pg, act, MX_MAX_SIZE);
		if (nu < 0 || na < 0)
			return -EINVAL;
		if (open && same_set(cur.up, cur.n_up, up, nu) &&
		    same_set(cur.acting, cur.n_acting, act, na)) {
			cur.last = maps[i]->epoch;
			continue;
		}
		if (open) {
			if (count < max)
				out[count] = cur;
			count++;
		}
		memset(&cur, 0, sizeof(cur));
		cur.first = cur.last = maps[i]->epoch;
		cur.n_up = (uint8_t)nu;
		cur.n_acting = (uint8_t)na;
		memcpy(cur.up, up, (size_t)nu * sizeof(*up));
		memcpy(cur.acting, act, (size_t)na * sizeof(*act));
		cur.maybe_rw = na >= pool->min_size && na > 0;
		cur.min_size = pool->min_size;
		open = true;
	}
	if (open) {
		if (count < max)
			out[count] = cur;
		count++;
	}
	return (int)count;
}

static bool has(const int32_t *v, size_t n, int32_t x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

size_t mx_prior_set(const struct mx_interval *iv, size_t n, uint64_t since, const int32_t *up,
		    int n_up, int32_t *out, size_t max)
{
	size_t k = 0;

	for (int i = 0; i < n_up; i++)
		if (!has(out, k, up[i]) && k < max)
			out[k++] = up[i];
	for (size_t i = 0; i < n; i++) {
		if (!iv[i].maybe_rw || iv[i].last < since)
			continue;
		for (int j = 0; j < iv[i].n_acting; j++)
			if (!has(out, k, iv[i].acting[j]) && k < max)
				out[k++] = iv[i].acting[j];
	}
	return k;
}

int mx_peering_blocked_by(const struct mx_interval *iv, size_t n, uint64_t since,
			  const int32_t *answered, size_t n_answered)
{
	for (size_t i = 0; i < n; i++) {
		int heard = 0;

		if (!iv[i].maybe_rw || iv[i].last < since || iv[i].first <= since)
			continue;
		for (int j = 0; j < iv[i].n_acting; j++)
			heard += has(answered, n_answered, iv[i].acting[j]);
		if (heard <= iv[i].n_acting - iv[i].min_size)
			return (int)i;
	}
	return -1;
}

int mx_choose_auth(const struct mx_pg_info *infos, size_t n)
{
	int best = -1;

	for (size_t i = 0; i < n; i++) {
		if (best >= 0) {
			const struct mx_pg_info *b = &infos[best];

			if (infos[i].les < b->les)
				continue;
			if (infos[i].les == b->les &&
			    mx_version_cmp(infos[i].last_update, b->last_update) <= 0)
				continue;
		}
		best = (int)i;
	}
	return best;
}

uint64_t mx_wb_lost(const struct mx_pg_info *infos, const bool *suspect, size_t n,
		    uint64_t interval)
{
	uint64_t lost = 0, les = 0;
	bool kept = false;

	for (size_t i = 0; i < n; i++) {
		lost = MX_MAX(lost, infos[i].wb_lost);
		les = MX_MAX(les, infos[i].les);
	}
	/* Nothing ever went active: nothing was acknowledged. */
	if (les == 0)
		return lost;
	for (size_t i = 0; i < n; i++)
		kept |= infos[i].les == les && !suspect[i];
	return kept ? lost : MX_MAX(lost, interval);
}

/* The authoritative log's entry with this version, or NULL (binary search:
 * entries are in increasing version order). */
static const struct mx_pglog_entry *find_version(const struct mx_pglog_entry *log, size_t n,
						 struct mx_version v)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = mx_version_cmp(log[mid].version, v);

		if (c == 0)
			return &log[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static bool same_entry(const struct mx_pglog_entry *a, const struct mx_pglog_entry *b)
{
	return a->kind == b->kind && a->name_len == b->name_len &&
	       memcmp(a->name, b->name, a->name_len) == 0;
}

struct need_rec {
	const char *name;
	uint32_t len;
	int what;
	struct mx_version version;
};

static int cmp_need(const void *a, const void *b)
{
	const struct need_rec *x = a, *y = b;
	int c = memcmp(x->name, y->name, MX_MIN(x->len, y->len));

	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	/* Same name: the decision made last wins; keep them in that order. */
	return mx_version_cmp(x->version, y->version);
}

int mx_log_diff(const struct mx_pglog_entry *auth, size_t n_auth,
		const struct mx_pg_info *auth_info, const struct mx_pglog_entry *mine,
		size_t n_mine, const struct mx_pg_info *my_info,
		int (*need)(void *arg, const char *name, uint32_t len, int what,
			    struct mx_version version),
		void *arg)
{
	static const struct mx_version zero;
	struct mx_version common = my_info->log_tail;
	struct need_rec *recs;
	size_t n_recs = 0, i;
	bool found = false;
	int r = 0;

	/* Walk my log from the newest entry back to the newest one the
	 * authority also has: everything after it is divergent. */
	for (i = n_mine; i > 0; i--) {
		const struct mx_pglog_entry *e = &mine[i - 1];
		const struct mx_pglog_entry *a;

		if (mx_version_cmp(e->version, auth_info->log_tail) == 0) {
			/* The authority's trim point: its state there includes
			 * this very write (versions are unique in a PG). */
			common = e->version;
			found = true;
			break;
		}
		if (mx_version_cmp(e->version, auth_info->log_tail) < 0)
			return 1; /* older than anything the authority vouches for */
		a = find_version(auth, n_auth, e->version);
		if (a && same_entry(a, e)) {
			common = e->version;
			found = true;
			break;
		}
	}
	if (!found) {
		/* All my kept entries diverge: my state at my log's tail must be
		 * one the authority's log reaches back to. */
		if (mx_version_cmp(my_info->log_tail, auth_info->log_tail) < 0)
			return 1;
		if (mx_version_cmp(my_info->log_tail, auth_info->last_update) > 0)
			return 1;
		common = my_info->log_tail;
		if (mx_version_cmp(common, zero) != 0 && !find_version(auth, n_auth, common) &&
		    mx_version_cmp(common, auth_info->log_tail) != 0)
			return 1;
	}
	recs = calloc(n_auth + n_mine + 1, sizeof(*recs));
	if (!recs)
		return -ENOMEM;
	/* Divergent entries: resolve against the authority's store, unless a
	 * later authoritative entry already decides the object (added below,
	 * with a greater version, so it sorts after and wins). */
	for (size_t k = i; k < n_mine; k++) {
		const struct mx_pglog_entry *e = &mine[k];

		recs[n_recs++] = (struct need_rec){
			.name = e->name, .len = e->name_len, .what = MX_NEED_RESOLVE,
			.version = {0, 0}};
	}
	for (size_t k = 0; k < n_auth; k++) {
		const struct mx_pglog_entry *a = &auth[k];

		if (mx_version_cmp(a->version, common) <= 0)
			continue;
		recs[n_recs++] = (struct need_rec){
			.name = a->name, .len = a->name_len,
			.what = a->kind == MX_LOG_DELETE ? MX_NEED_DELETE : MX_NEED_OBJECT,
			.version = a->version};
	}
	qsort(recs, n_recs, sizeof(*recs), cmp_need);
	for (size_t k = 0; k < n_recs && r == 0; k++) {
		/* Only the last record of each name counts. */
		if (k + 1 < n_recs && recs[k + 1].len == recs[k].len &&
		    memcmp(recs[k + 1].name, recs[k].name, recs[k].len) == 0)
			continue;
		r = need(arg, recs[k].name, recs[k].len, recs[k].what, recs[k].version);
	}
	free(recs);
	return r;
}

bool mx_lease_pong_grants(uint64_t *max_epoch, uint64_t pong_epoch, uint64_t my_epoch)
{
	if (pong_epoch > *max_epoch)
		*max_epoch = pong_epoch;
	return pong_epoch != 0 && *max_epoch <= my_epoch;
}

/*
 * The upmap balancer.  Straw2 places every PG by its own draws, so an OSD's
 * replica count is a random variable (about +-10% at one sigma with 100
 * replicas per OSD).  mx_balance() evens the counts out with per-PG
 * exceptions: it computes every PG's raw up set (the rule alone), replays
 * the map's upmaps on it with the placement's own mx_pg_upmap_apply() and
 * keeps the pairs that still apply, then moves single replicas from the
 * fullest OSD to the emptiest valid one, revising the PG's upmap each
 * time, until every OSD is within the band.  Every candidate upmap is
 * replayed before it is taken, so what the balancer counts is exactly what
 * mx_pg_up() will compute.  Nothing here depends on memory addresses or
 * the order of hash tables; ties are broken by OSD id and PG number, so
 * one map gives one result.  docs/placement.md ("Upmaps and the balancer")
 * describes the algorithm and its limits.
 */
#include "balancer.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "placement.h"
#include "util.h"

/* One (root, device class, failure-domain level) among the pools balanced:
 * pools that share it share these per-OSD tables. */
struct bal_rule {
	const struct mx_pool *pool; /* the first pool with this rule */
	uint8_t *elig;  /* From malloc(); per OSD: may hold the data */
	int32_t *dom;   /* From malloc(); per OSD: failure domain if elig */
	uint64_t wsum;  /* total weight of the eligible OSDs */
};

struct bal_pool {
	const struct mx_pool *pool; /* Points into the map. */
	const struct bal_rule *rule;
	uint32_t pg_base;   /* PG index of its pg 0 in struct balancer */
	uint32_t slot_base; /* slot of its (pg 0, rank 0) */
	uint64_t replicas;  /* members of all its raw up sets */
};

/* The replica slots an OSD holds, in no particular order. */
struct slot_list {
	uint32_t *v; /* From malloc(). */
	uint32_t n, cap;
};

/*
 * The state of one run.  PGs of the balanced pools are numbered 0..n_pgs
 * (pool by pool, pg by pg); slot s = pool's slot_base + pg * size + rank
 * names one replica.  raw[s] is the rule's choice, cur[s] the OSD after
 * the PG's upmap, -1 past the PG's member count.  Invariant: replaying
 * ups[upi[g]] on the raw set of PG g with mx_pg_upmap_apply() applies
 * every pair and gives the cur set (upi[g] = -1: cur = raw).
 */
struct balancer {
	const struct mx_map *m;
	struct mx_placement *pl;
	double dev; /* max_deviation */
	uint32_t n_rules, n_pools;
	struct bal_rule *rules; /* From malloc(). */
	struct bal_pool *pools; /* From malloc(); in the map's order. */
	uint32_t n_pgs, n_slots;
	uint8_t *nup;  /* From malloc(); per PG: members of its up set */
	int32_t *raw;  /* From malloc(); per slot */
	int32_t *cur;  /* From malloc(); per slot */
	int32_t *upi;  /* From malloc(); per PG: index in ups, or -1 */
	uint32_t n_ups, cap_ups;
	struct mx_pg_upmap *ups; /* From malloc(); n may drop to 0 */
	uint32_t *cnt; /* From malloc(); per OSD: slots held (cur) */
	double *share; /* From malloc(); per OSD: expected count */
	struct slot_list *held; /* From malloc(); per OSD */
	uint32_t n_active;
	struct bal_osd *order; /* From malloc(); OSDs with a share > 0, by
				* rising deviation (sort_osds()) */
	uint32_t dropped;
};

struct bal_osd {
	double r; /* relative deviation (count - share) / share */
	uint32_t id;
};

/* ---- Set-up ------------------------------------------------------------- */

static bool same_rule(const struct mx_pool *a, const struct mx_pool *b)
{
	return a->failure_domain == b->failure_domain &&
	       !strcmp(a->root_name, b->root_name) &&
	       !strcmp(a->device_class, b->device_class);
}

/* Find or make the rule of pool p; returns its index or a negative
 * errno. */
static int rule_get(struct balancer *b, const struct mx_pool *p)
{
	const struct mx_map *m = b->m;
	struct bal_rule *rl;

	for (uint32_t i = 0; i < b->n_rules; i++)
		if (same_rule(b->rules[i].pool, p))
			return (int)i;
	rl = &b->rules[b->n_rules];
	rl->pool = p;
	rl->elig = calloc(m->max_osd ? m->max_osd : 1, sizeof(*rl->elig));
	rl->dom = calloc(m->max_osd ? m->max_osd : 1, sizeof(*rl->dom));
	if (!rl->elig || !rl->dom)
		return -ENOMEM;
	for (uint32_t id = 0; id < m->max_osd; id++) {
		int r = mx_placement_osd_domain(b->pl, p, (int32_t)id,
						&rl->dom[id]);

		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		rl->elig[id] = 1;
		rl->wsum += m->osds[id].weight;
	}
	return (int)b->n_rules++;
}

static int slots_push(struct slot_list *l, uint32_t slot)
{
	if (l->n == l->cap) {
		uint32_t cap = l->cap ? 2 * l->cap : 64;
		uint32_t *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = slot;
	return 0;
}

static void slots_remove(struct slot_list *l, uint32_t slot)
{
	for (uint32_t i = 0; i < l->n; i++) {
		if (l->v[i] == slot) {
			l->v[i] = l->v[--l->n];
			return;
		}
	}
}

/* Choose the pools (pool -1: all), their rules, and number PGs and slots. */
static int setup_pools(struct balancer *b, int32_t pool)
{
	const struct mx_map *m = b->m;
	uint64_t pgs = 0, slots = 0;

	b->pools = calloc(m->n_pools ? m->n_pools : 1, sizeof(*b->pools));
	b->rules = calloc(m->n_pools ? m->n_pools : 1, sizeof(*b->rules));
	if (!b->pools || !b->rules)
		return -ENOMEM;
	for (uint32_t i = 0; i < m->n_pools; i++) {
		const struct mx_pool *p = &m->pools[i];
		struct bal_pool *bp;
		int r;

		if (pool >= 0 && p->id != pool)
			continue;
		if (p->size > MX_MAX_SIZE || p->pg_num > MX_MAX_PG_NUM ||
		    (i > 0 && p->id <= m->pools[i - 1].id))
			return -EINVAL;
		r = rule_get(b, p);
		if (r < 0)
			return r;
		bp = &b->pools[b->n_pools++];
		bp->pool = p;
		bp->rule = &b->rules[r];
		bp->pg_base = (uint32_t)pgs;
		bp->slot_base = (uint32_t)slots;
		pgs += p->pg_num;
		slots += (uint64_t)p->pg_num * p->size;
		if (slots >= UINT32_MAX)
			return -EINVAL;
	}
	if (pool >= 0 && !b->n_pools)
		return -ENOENT;
	b->n_pgs = (uint32_t)pgs;
	b->n_slots = (uint32_t)slots;
	return 0;
}

/* The pool a slot belongs to. */
static const struct bal_pool *pool_of_slot(const struct balancer *b,
					   uint32_t slot)
{
	uint32_t lo = 0, hi = b->n_pools;

	/* The last pool whose slot_base <= slot (pools of pg_num 0 share a
	 * base with the next, so take the last). */
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (b->pools[mid].slot_base <= slot)
			lo = mid;
		else
			hi = mid;
	}
	return &b->pools[lo];
}

static struct mx_pg_upmap *up_new(struct balancer *b, uint32_t g,
				  const struct bal_pool *bp, uint32_t pg)
{
	struct mx_pg_upmap *u;

	if (b->n_ups == b->cap_ups) {
		uint32_t cap = b->cap_ups ? 2 * b->cap_ups : 256;
		struct mx_pg_upmap *v = realloc(b->ups, cap * sizeof(*v));

		if (!v)
			return NULL;
		b->ups = v;
		b->cap_ups = cap;
	}
	u = &b->ups[b->n_ups];
	memset(u, 0, sizeof(*u));
	u->pool = bp->pool->id;
	u->pg = pg;
	b->upi[g] = (int32_t)b->n_ups++;
	return u;
}

/* The index in b->pools of pool id, or -1. */
static int32_t pool_index(const struct balancer *b, int32_t id)
{
	uint32_t lo = 0, hi = b->n_pools;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (b->pools[mid].pool->id == id)
			return (int32_t)mid;
		if (b->pools[mid].pool->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/*
 * Compute the raw up sets, then replay the map's upmaps on them and keep
 * the pairs that apply.  A pair that does not apply changes nothing when
 * replayed, so dropping it leaves the others' result as it was.
 */
static int setup_pgs(struct balancer *b, int32_t pool)
{
	const struct mx_map *m = b->m;

	b->nup = calloc(b->n_pgs ? b->n_pgs : 1, sizeof(*b->nup));
	b->upi = malloc((b->n_pgs ? b->n_pgs : 1) * sizeof(*b->upi));
	b->raw = malloc((b->n_slots ? b->n_slots : 1) * sizeof(*b->raw));
	b->cur = malloc((b->n_slots ? b->n_slots : 1) * sizeof(*b->cur));
	if (!b->nup || !b->upi || !b->raw || !b->cur)
		return -ENOMEM;
	memset(b->upi, 0xff, (b->n_pgs ? b->n_pgs : 1) * sizeof(*b->upi));
	for (uint32_t i = 0; i < b->n_pools; i++) {
		struct bal_pool *bp = &b->pools[i];
		const struct mx_pool *p = bp->pool;

		for (uint32_t pg = 0; pg < p->pg_num; pg++) {
			int32_t *raw = &b->raw[bp->slot_base + pg * p->size];
			int n = mx_pg_up_raw(b->pl, p, pg, raw, p->size);

			if (n < 0)
				return n;
			for (int k = n; k < p->size; k++)
				raw[k] = -1;
			b->nup[bp->pg_base + pg] = (uint8_t)n;
			bp->replicas += (uint64_t)n;
		}
	}
	memcpy(b->cur, b->raw, b->n_slots * sizeof(*b->cur));
	for (uint32_t i = 0; i < m->n_upmaps; i++) {
		const struct mx_pg_upmap *mu = &m->upmaps[i];
		int32_t pi = pool_index(b, mu->pool);
		const struct bal_pool *bp;
		struct mx_pg_upmap *u;
		uint32_t g, keep = 0;
		int32_t *cur;
		int mask;

		if (pi < 0) {
			/* A pool that is gone, or one not being balanced. */
			if (pool < 0)
				b->dropped += mu->n;
			continue;
		}
		bp = &b->pools[pi];
		g = bp->pg_base + mu->pg;
		if (mu->pg >= bp->pool->pg_num || b->upi[g] >= 0) {
			/* A PG that is gone, or a second upmap for one. */
			b->dropped += mu->n;
			continue;
		}
		cur = &b->cur[bp->slot_base + mu->pg * bp->pool->size];
		mask = mx_pg_upmap_apply(b->pl, bp->pool, mu, cur, b->nup[g]);
		if (mask < 0)
			return mask;
		if (!mask) {
			b->dropped += mu->n;
			continue;
		}
		u = up_new(b, g, bp, mu->pg);
		if (!u)
			return -ENOMEM;
		for (unsigned k = 0; k < mu->n; k++) {
			if (mask & (1 << k)) {
				u->from[keep] = mu->from[k];
				u->to[keep++] = mu->to[k];
			}
		}
		u->n = (uint8_t)keep;
		b->dropped += mu->n - keep;
	}
	return 0;
}

/* Each OSD's share, and the slots it holds. */
static int setup_osds(struct balancer *b)
{
	const struct mx_map *m = b->m;
	uint32_t n = m->max_osd ? m->max_osd : 1;

	b->cnt = calloc(n, sizeof(*b->cnt));
	b->share = calloc(n, sizeof(*b->share));
	b->held = calloc(n, sizeof(*b->held));
	b->order = calloc(n, sizeof(*b->order));
	if (!b->cnt || !b->share || !b->held || !b->order)
		return -ENOMEM;
	/* Pool by pool, in the map's order: the sums are always the same. */
	for (uint32_t i = 0; i < b->n_pools; i++) {
		const struct bal_pool *bp = &b->pools[i];

		if (!bp->rule->wsum)
			continue;
		for (uint32_t id = 0; id < m->max_osd; id++)
			if (bp->rule->elig[id])
				b->share[id] += (double)bp->replicas *
						m->osds[id].weight /
						(double)bp->rule->wsum;
	}
	for (uint32_t s = 0; s < b->n_slots; s++) {
		int32_t id = b->cur[s];

		if (id < 0)
			continue;
		b->cnt[id]++;
		if (slots_push(&b->held[id], s) < 0)
			return -ENOMEM;
	}
	for (uint32_t id = 0; id < m->max_osd; id++)
		if (b->share[id] > 0)
			b->order[b->n_active++].id = id;
	return 0;
}

/* ---- Measuring ---------------------------------------------------------- */

static double rel_dev(const struct balancer *b, uint32_t id, int delta)
{
	return ((double)b->cnt[id] + delta - b->share[id]) / b->share[id];
}

static bool outside(const struct balancer *b, uint32_t id, int delta)
{
	return fabs(rel_dev(b, id, delta)) > b->dev;
}

/* Count the slots sl (raw or cur) into b->cnt, and return the largest
 * |deviation| and the number of OSDs outside the band.  b->cnt must be
 * recounted from cur before the balancer works with it. */
static void measure(struct balancer *b, const int32_t *sl, double *max,
		    uint32_t *n_out)
{
	memset(b->cnt, 0, b->m->max_osd * sizeof(*b->cnt));
	for (uint32_t s = 0; s < b->n_slots; s++)
		if (sl[s] >= 0)
			b->cnt[sl[s]]++;
	*max = 0;
	*n_out = 0;
	for (uint32_t i = 0; i < b->n_active; i++) {
		uint32_t id = b->order[i].id;

		*max = fmax(*max, fabs(rel_dev(b, id, 0)));
		*n_out += outside(b, id, 0);
	}
}

static int cmp_osd(const void *x, const void *y)
{
	const struct bal_osd *a = x, *c = y;

	if (a->r != c->r)
		return a->r < c->r ? -1 : 1;
	return a->id < c->id ? -1 : a->id > c->id;
}

/* Sort the active OSDs by relative deviation, emptiest first. */
static void sort_osds(struct balancer *b)
{
	for (uint32_t i = 0; i < b->n_active; i++)
		b->order[i].r = rel_dev(b, b->order[i].id, 0);
	qsort(b->order, b->n_active, sizeof(*b->order), cmp_osd);
}

/* Put OSD id, whose count changed, back in its place in the order (the
 * order is total, so this gives what sort_osds() would). */
static void resort_osd(struct balancer *b, uint32_t id)
{
	struct bal_osd e = { .r = rel_dev(b, id, 0), .id = id };
	uint32_t i = 0, lo = 0, hi;

	while (b->order[i].id != id)
		i++;
	memmove(&b->order[i], &b->order[i + 1],
		(b->n_active - i - 1) * sizeof(*b->order));
	hi = b->n_active - 1;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (cmp_osd(&b->order[mid], &e) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(&b->order[lo + 1], &b->order[lo],
		(b->n_active - 1 - lo) * sizeof(*b->order));
	b->order[lo] = e;
}

/* ---- Moving ------------------------------------------------------------- */

/*
 * Whether moving a replica from src to dst is worth it: one of the two is
 * outside the band, neither leaves the band because of the move, and
 * sum((count - share)^2 / share) over all OSDs decreases.  That sum
 * changes by (1 - 2 (c_s - e_s)) / e_s + (1 + 2 (c_t - e_t)) / e_t, so it
 * decreases when r_s - r_t > (1/e_s + 1/e_t) / 2; since it only ever
 * decreases, the balancer cannot cycle.
 */
static bool worth(const struct balancer *b, uint32_t src, uint32_t dst)
{
	double es = b->share[src], et = b->share[dst];
	bool src_out = rel_dev(b, src, 0) > b->dev;
	bool dst_out = rel_dev(b, dst, 0) < -b->dev;

	if (!src_out && !dst_out)
		return false;
	if ((!src_out && outside(b, src, -1)) ||
	    (!dst_out && outside(b, dst, 1)))
		return false;
	return rel_dev(b, src, 0) - rel_dev(b, dst, 0) >
	       (1 / es + 1 / et) / 2;
}

/*
 * The upmap that PG pg of bp would have if its rank k moved to dst, into
 * *u; false if dst may not take it or no upmap gives that set.  The
 * quick checks are those of mx_pg_upmap_apply() on the cur set; then the
 * new upmap is replayed on the raw set, and must apply every pair and
 * give exactly the cur set with rank k replaced.  The move revises the
 * pair that put the replica there (or removes it, if dst is where the
 * rule put it), or else appends a pair.
 */
static bool plan_move(const struct balancer *b, const struct bal_pool *bp,
		      uint32_t pg, unsigned k, int32_t dst,
		      struct mx_pg_upmap *u)
{
	const struct mx_pool *p = bp->pool;
	const struct bal_rule *rl = bp->rule;
	uint32_t g = bp->pg_base + pg;
	const int32_t *raw = &b->raw[bp->slot_base + pg * p->size];
	const int32_t *cur = &b->cur[bp->slot_base + pg * p->size];
	int32_t set[MX_MAX_SIZE];
	unsigned n = b->nup[g];
	int i, mask;

	if (!rl->elig[dst])
		return false;
	for (unsigned j = 0; j < n; j++)
		if (cur[j] == dst ||
		    (j != k && rl->dom[cur[j]] == rl->dom[dst]))
			return false;
	if (b->upi[g] >= 0) {
		*u = b->ups[b->upi[g]];
	} else {
		memset(u, 0, sizeof(*u));
		u->pool = p->id;
		u->pg = pg;
	}
	for (i = u->n - 1; i >= 0 && u->to[i] != cur[k]; i--)
		;
	if (i >= 0 && u->from[i] == dst) {
		memmove(&u->from[i], &u->from[i + 1],
			(size_t)(u->n - i - 1) * sizeof(*u->from));
		memmove(&u->to[i], &u->to[i + 1],
			(size_t)(u->n - i - 1) * sizeof(*u->to));
		u->n--;
	} else if (i >= 0) {
		u->to[i] = dst;
	} else if (u->n < MX_MAX_SIZE) {
		u->from[u->n] = cur[k];
		u->to[u->n++] = dst;
	} else {
		return false;
	}
	memcpy(set, raw, n * sizeof(*set));
	mask = mx_pg_upmap_apply(b->pl, p, u, set, (int)n);
	if (mask != (1 << u->n) - 1)
		return false;
	for (unsigned j = 0; j < n; j++)
		if (set[j] != (j == k ? dst : cur[j]))
			return false;
	return true;
}

/* A candidate move; smaller key is better. */
struct bal_move {
	bool found;
	uint32_t q;       /* dst's place in the order, emptiest first */
	bool primary;     /* moves rank 0 */
	int kind;         /* 0: removes a pair, 1: revises an upmap, 2: new */
	uint32_t slot;
	int32_t dst;
	struct mx_pg_upmap u;
};

static bool better(const struct bal_move *a, const struct bal_move *c)
{
	if (!c->found)
		return true;
	if (a->q != c->q)
		return a->q < c->q;
	if (a->primary != c->primary)
		return !a->primary;
	if (a->kind != c->kind)
		return a->kind < c->kind;
	return a->slot < c->slot;
}

/*
 * The best move of a replica off src: to the emptiest acceptable OSD
 * that may take it, then not a primary, then one that adds no upmap,
 * then the lowest slot (pool, pg, rank).  Returns false if none.
 */
static bool pick_move(const struct balancer *b, uint32_t src,
		      struct bal_move *best)
{
	const struct slot_list *l = &b->held[src];
	double r_src = rel_dev(b, src, 0);

	*best = (struct bal_move){ .found = false };
	for (uint32_t i = 0; i < l->n; i++) {
		uint32_t s = l->v[i];
		const struct bal_pool *bp = pool_of_slot(b, s);
		uint32_t pg = (s - bp->slot_base) / bp->pool->size;
		unsigned k = (s - bp->slot_base) % bp->pool->size;
		uint32_t g = bp->pg_base + pg;
		struct bal_move c = { .found = true, .primary = k == 0,
				      .slot = s };

		/* Targets emptiest first.  None is at or above src; if src
		 * is in the band, only those below the band are. */
		for (c.q = 0; c.q < b->n_active; c.q++) {
			const struct bal_osd *t = &b->order[c.q];

			if ((best->found && c.q > best->q) || t->id == src ||
			    t->r >= r_src ||
			    (r_src <= b->dev && t->r >= -b->dev))
				break;
			c.dst = (int32_t)t->id;
			if (!worth(b, src, t->id) ||
			    !plan_move(b, bp, pg, k, c.dst, &c.u))
				continue;
			if (b->raw[s] == c.dst)
				c.kind = 0;
			else
				c.kind = b->upi[g] >= 0 ? 1 : 2;
			if (better(&c, best))
				*best = c;
			break;
		}
	}
	return best->found;
}

/* Carry out move mv of a replica off src. */
static int do_move(struct balancer *b, uint32_t src, const struct bal_move *mv)
{
	const struct bal_pool *bp = pool_of_slot(b, mv->slot);
	uint32_t pg = (mv->slot - bp->slot_base) / bp->pool->size;
	uint32_t g = bp->pg_base + pg;

	if (b->upi[g] < 0 && !up_new(b, g, bp, pg))
		return -ENOMEM;
	b->ups[b->upi[g]] = mv->u;
	b->cur[mv->slot] = mv->dst;
	b->cnt[src]--;
	b->cnt[mv->dst]++;
	slots_remove(&b->held[src], mv->slot);
	return slots_push(&b->held[mv->dst], mv->slot);
}

/*
 * The greedy loop: take the OSDs from the fullest down and move a replica
 * off the first that has a worthwhile move; stop when every OSD is in the
 * band, no move is worth it, or after max moves.
 */
static int run(struct balancer *b, uint32_t max, uint32_t *moves)
{
	int r;

	if (b->n_active)
		sort_osds(b);
	for (*moves = 0; *moves < max && b->n_active;) {
		bool moved = false;

		if (b->order[0].r >= -b->dev &&
		    b->order[b->n_active - 1].r <= b->dev)
			break; /* balanced */
		for (uint32_t i = b->n_active; i-- > 0 && !moved;) {
			uint32_t src = b->order[i].id;
			struct bal_move mv;

			/* Below the top of the band, a source helps only
			 * an OSD below the band; none is left. */
			if (b->order[i].r <= b->dev &&
			    b->order[0].r >= -b->dev)
				break;
			if (!pick_move(b, src, &mv))
				continue;
			r = do_move(b, src, &mv);
			if (r < 0)
				return r;
			resort_osd(b, src);
			resort_osd(b, (uint32_t)mv.dst);
			moved = true;
			++*moves;
		}
		if (!moved)
			break;
	}
	return 0;
}

/* ---- Entry point -------------------------------------------------------- */

static void balancer_free(struct balancer *b)
{
	for (uint32_t i = 0; i < b->n_rules; i++) {
		free(b->rules[i].elig);
		free(b->rules[i].dom);
	}
	if (b->held)
		for (uint32_t id = 0; id < b->m->max_osd; id++)
			free(b->held[id].v);
	free(b->rules);
	free(b->pools);
	free(b->nup);
	free(b->raw);
	free(b->cur);
	free(b->upi);
	free(b->ups);
	free(b->cnt);
	free(b->share);
	free(b->held);
	free(b->order);
	mx_placement_free(b->pl);
}

/* The result: every non-empty upmap, in PG order, i.e. by (pool, pg). */
static int collect(const struct balancer *b, struct mx_pg_upmap **out,
		   uint32_t *n_out, struct mx_balance_stats *st)
{
	struct mx_pg_upmap *v;
	uint32_t n = 0, pairs = 0;

	for (uint32_t g = 0; g < b->n_pgs; g++)
		n += b->upi[g] >= 0 && b->ups[b->upi[g]].n > 0;
	v = n ? malloc(n * sizeof(*v)) : NULL;
	if (n && !v)
		return -ENOMEM;
	n = 0;
	for (uint32_t g = 0; g < b->n_pgs; g++) {
		if (b->upi[g] < 0 || !b->ups[b->upi[g]].n)
			continue;
		v[n] = b->ups[b->upi[g]];
		pairs += v[n++].n;
	}
	*out = v;
	*n_out = n;
	if (st) {
		st->n_upmaps = n;
		st->n_pairs = pairs;
	}
	return 0;
}

int mx_balance(const struct mx_map *m, int32_t pool, uint32_t max_changes,
	       double max_deviation, struct mx_pg_upmap **out, uint32_t *n_out,
	       struct mx_balance_stats *st)
{
	struct balancer b = { .m = m, .dev = max_deviation };
	struct mx_balance_stats s = { 0 };
	uint32_t raw_out;
	int r;

	if (!m || !out || !n_out || !(max_deviation >= 0) ||
	    !isfinite(max_deviation) || pool < -1 ||
	    (m->n_pools && !m->pools))
		return -EINVAL;
	*out = NULL;
	*n_out = 0;
	r = mx_placement_new(m, &b.pl);
	if (r >= 0)
		r = setup_pools(&b, pool);
	if (r >= 0)
		r = setup_pgs(&b, pool);
	if (r >= 0)
		r = setup_osds(&b);
	if (r < 0)
		goto out;
	measure(&b, b.raw, &s.max_dev_raw, &raw_out);
	measure(&b, b.cur, &s.max_dev_before, &s.outside_before);
	r = run(&b, max_changes, &s.moves);
	if (r < 0)
		goto out;
	measure(&b, b.cur, &s.max_dev_after, &s.outside_after);
	s.dropped = b.dropped;
	r = collect(&b, out, n_out, &s);
	if (r >= 0 && st)
		*st = s;
out:
	balancer_free(&b);
	return r;
}

/*
 * Placement: the hierarchy compiled from a cluster map, and the rule that
 * maps a placement group onto OSDs with it.  mx_placement_new() turns each
 * OSD's location into a tree of buckets (identified by level and name, with
 * numeric ids hashed from both so that they do not depend on the order in
 * which buckets appear), sums weights bottom-up once for every device class
 * ("shadow" weights), and builds the fixed-point logarithm tables.  After
 * that the structure is immutable (threads may share it): mx_pg_up() walks
 * it without allocating and without floating point, so clients and OSDs on
 * any machine compute the same up set.  mx_placement_new() also copies the
 * map's upmaps (per-PG exceptions chosen by lib/balancer.c), and mx_pg_up()
 * applies a PG's upmap to the rule's result, pair by pair, while each pair
 * is valid.  docs/placement.md explains the algorithm, the hash, the
 * stability argument and the upmaps, and gives the measured balance and
 * movement.
 */
#include "placement.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#ifndef __SIZEOF_INT128__
#error "placement.c needs unsigned __int128 (any 64-bit gcc or clang)"
#endif

__extension__ typedef unsigned __int128 u128;

/*
 * Seeds of the hashes below.  They are part of the placement function: a
 * change moves every object in every cluster.  Never change them.
 */
#define OBJ_SEED 0x6f626a6563742e31ull    /* object name -> hash */
#define PG_SEED 0x706c6163652e7067ull     /* (pool, pg) -> rule input x */
#define DRAW_SEED 0x7374726177322e72ull   /* (x, r) -> per-draw seed */
#define LEAF_SEED 0x6c6561662e646f77ull   /* x -> seed below the domain */
#define BUCKET_SEED 0x6275636b65742e69ull /* (level, name) -> bucket id */
#define GOLDEN 0x9e3779b97f4a7c15ull      /* 2^64 / golden ratio, odd */

/* Random attempts per replica (CRUSH's choose_total_tries) before the last
 * resort, descend_free_domain(). */
#define PL_TRIES 50
/* Retry r of replica rank k is k + t * PL_R_STRIDE, so that the ranks use
 * disjoint draws and a pool's size does not change its first replicas. */
#define PL_R_STRIDE MX_MAX_SIZE
/* Named device classes one map may use (each costs a column of weights). */
#define PL_MAX_CLASSES 32
/* Fixed point of the logarithms: 48 fractional bits. */
#define LOG_FRAC 48
/* log2(e) in 2.62 fixed point, rounded (1.4426950408889634074...). */
#define LOG2E_Q62 0x5c551d94ae0bf85eull

/* "No item": straw2 found no child of positive weight. */
#define ITEM_NONE INT32_MIN

/*
 * An item (child of a bucket) is coded as an int32: an OSD id (>= 0) or a
 * bucket, -1 - its index in pl->buckets.
 */
static inline bool item_is_bucket(int32_t code)
{
	return code < 0;
}

static inline uint32_t item_bucket(int32_t code)
{
	return (uint32_t)(-1 - code);
}

static inline int32_t bucket_item(uint32_t index)
{
	return -1 - (int32_t)index;
}

struct pl_bucket {
	char name[MX_NAME_MAX];
	uint8_t level;  /* enum mx_level, >= MX_LEVEL_HOST */
	int32_t parent; /* bucket index; -1: none (top); -2: not yet known */
	uint32_t hid;   /* hash id used in draws; high bit set */
	uint32_t first; /* children are pl->items[first .. first + n) */
	uint32_t n;
};

struct pl_item {
	int32_t code; /* see item_is_bucket() */
	uint32_t hid; /* OSD id, or the bucket's hid */
};

struct mx_placement {
	uint32_t n_buckets;
	struct pl_bucket *buckets; /* From malloc(). */
	uint32_t n_items;
	struct pl_item *items; /* From malloc(); children of all buckets. */
	uint32_t n_roots;
	uint32_t *roots; /* From malloc(); the MX_LEVEL_ROOT buckets. */
	/*
	 * Class 0 is "every OSD"; class c >= 1 is class_names[c - 1].  The
	 * weight of items[j] for class c is item_w[c * n_items + j]: for an
	 * OSD its weight if it is in and of class c (any class for c = 0),
	 * else 0; for a bucket the sum over its children.  Bucket weights
	 * are below 2^48 (at most MX_MAX_OSDS = 2^16 OSDs of below 2^32),
	 * which the cross multiplication in straw2() relies on.
	 */
	uint32_t n_classes;
	char class_names[PL_MAX_CLASSES][MX_CLASS_MAX];
	uint64_t *item_w;   /* From malloc(); n_classes * n_items. */
	uint64_t *bucket_w; /* From malloc(); n_classes * n_buckets. */
	/* Per OSD id below max_osd: its parent bucket and its index in
	 * items, both -1 for an OSD that is not in the tree. */
	uint32_t max_osd;
	int32_t *osd_parent; /* From malloc(). */
	int32_t *osd_item;   /* From malloc(). */
	/* Copy of the map's upmaps, sorted by (pool, pg), one per PG. */
	uint32_t n_upmaps;
	struct mx_pg_upmap *upmaps; /* From malloc(); NULL if none. */
	/* log2(1 + a/256) in 48-bit fixed point, and 2^56 / (256 + a): the
	 * two tables of neg_log2_u(). */
	uint64_t log_a[256];
	uint64_t recip_a[256];
};

/* ---- Integer arithmetic ------------------------------------------------ */

/* The splitmix64 output function: a bijection of 64-bit words that mixes
 * every input bit into every output bit. */
static inline uint64_t mix64(uint64_t h)
{
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

static inline uint32_t fold32(uint64_t h)
{
	return (uint32_t)(h ^ (h >> 32));
}

/* (a * b) >> s, for a product that fits in 128 bits and a result in 64. */
static inline uint64_t mul_shr(uint64_t a, uint64_t b, unsigned s)
{
	return (uint64_t)(((u128)a * b) >> s);
}

/*
 * ln(num / den) in 1.63 fixed point, for den <= num < 2 * den < 2^62, by
 * ln(m) = 2 atanh(z) = 2 (z + z^3/3 + z^5/5 + ...), z = (m - 1) / (m + 1).
 * Here z <= 1/3, so each term is a ninth of the one before and the sum
 * stops at about twenty terms, with an error of a few units in 2^-63.
 */
static uint64_t ln_ratio_q63(uint64_t num, uint64_t den)
{
	uint64_t z = (uint64_t)(((u128)(num - den) << 63) / (num + den));
	uint64_t z2 = mul_shr(z, z, 63);
	uint64_t term = z, sum = 0;

	for (uint64_t k = 1; term; k += 2) {
		sum += term / k;
		term = mul_shr(term, z2, 63);
	}
	return 2 * sum;
}

/* Fill pl->log_a and pl->recip_a; integer arithmetic only. */
static void init_log_tables(struct mx_placement *pl)
{
	for (uint32_t a = 0; a < 256; a++) {
		uint64_t ln = ln_ratio_q63(256 + a, 256);

		/* Q63 * Q62 >> 77 = Q48. */
		pl->log_a[a] = mul_shr(ln, LOG2E_Q62, 63 + 62 - LOG_FRAC);
		pl->recip_a[a] = (1ull << 56) / (256 + a);
	}
}

/*
 * log2(1 + t) in 48-bit fixed point, for t = tq / 2^64 < 2^-8, by the
 * series t - t^2/2 + t^3/3 - t^4/4 + t^5/5 (the first term left out is
 * below 2^-50) times log2(e).
 */
static inline uint64_t log2_1p_small(uint64_t tq)
{
	uint64_t t2 = mul_shr(tq, tq, 64);
	uint64_t t3 = mul_shr(t2, tq, 64);
	uint64_t t4 = mul_shr(t3, tq, 64);
	uint64_t t5 = mul_shr(t4, tq, 64);
	uint64_t ln = tq - t2 / 2 + t3 / 3 - t4 / 4 + t5 / 5;

	/* Q64 * Q62 >> 78 = Q48. */
	return mul_shr(ln, LOG2E_Q62, 64 + 62 - LOG_FRAC);
}

/*
 * -log2(u / 2^16) in 48-bit fixed point, for u in [1, 2^16]: 0 for u = 2^16,
 * 16 << 48 for u = 1, strictly decreasing in between and within two units
 * in the last place of the exact value (test_placement checks every u).
 * With e = floor(log2 u) and m = u << (16 - e) in [2^16, 2^17), the value
 * is (16 - e) - log2(m / 2^16).  Split m's 16 bits below its leading one
 * into a (high 8) and b (low 8): m / 2^16 = (1 + a/256) (1 + t) with
 * t = b / (2^16 + 256 a) < 2^-8, so log2(m / 2^16) = log_a[a] + log2(1 + t),
 * and t * 2^64 = b * recip_a[a] (to within b units).  The logarithm's base
 * does not matter to straw2 (it scales every draw alike), so base 2 saves
 * converting to ln.
 */
static inline uint64_t neg_log2_u(const struct mx_placement *pl, uint32_t u)
{
	unsigned e = 31 - (unsigned)__builtin_clz(u);
	uint32_t m = u << (16 - e);
	uint32_t a = (m >> 8) & 0xff, b = m & 0xff;
	uint64_t frac = pl->log_a[a] + log2_1p_small(b * pl->recip_a[a]);

	return ((uint64_t)(16 - e) << LOG_FRAC) - frac;
}

/*
 * A lower bound of neg_log2_u(pl, u), cheap: -ln x >= 1 - x, so
 * -log2(u / 2^16) >= (2^16 - u) / 2^16 * log2(e).  LOG2E_Q32 is log2(e) in
 * 32-bit fixed point rounded down; the margin of 4 units covers the error
 * of neg_log2_u() (at most 2), and test_placement checks the bound for
 * every u.
 */
#define LOG2E_Q32 0x171547652ull
static inline uint64_t neg_log2_lower(uint32_t u)
{
	uint64_t lb = (uint64_t)(65536 - u) * LOG2E_Q32;

	return lb > 4 ? lb - 4 : 0;
}

/*
 * Exported for tests/unit/test_placement.c only (no header declares it):
 * neg_log2_u() and its lower bound, so that the test can check them for
 * every u against libm.
 */
uint64_t mx_placement_log2_test(const struct mx_placement *pl, uint32_t u,
				uint64_t *lower);
uint64_t mx_placement_log2_test(const struct mx_placement *pl, uint32_t u,
				uint64_t *lower)
{
	*lower = neg_log2_lower(u);
	return neg_log2_u(pl, u);
}

/* ---- Hashes ------------------------------------------------------------ */

uint32_t mx_object_hash(const char *name, size_t len)
{
	return fold32(mx_hash64(name, len, OBJ_SEED));
}

uint32_t mx_object_pg(const struct mx_pool *pool, const char *name, size_t len)
{
	uint64_t b = pool->pg_num, mask = 1;
	uint32_t x = mx_object_hash(name, len);

	if (b <= 1)
		return 0;
	while (mask < b)
		mask <<= 1;
	mask -= 1;
	/* Ceph's stable modulo: PGs below pg_num take their bits as they are,
	 * the rest fold onto the lower half, so doubling pg_num splits each
	 * PG in two and moves no object between the old PGs. */
	if ((x & mask) < b)
		return (uint32_t)(x & mask);
	return (uint32_t)(x & (mask >> 1));
}

/* The rule's input for one PG: differs between pools. */
static uint64_t pg_input(int32_t pool_id, uint32_t pg)
{
	return mix64((((uint64_t)(uint32_t)pool_id << 32) | pg) + PG_SEED);
}

/* The seed of attempt r for input x: every draw of that attempt (at each
 * level of the descent) is derived from it and the item's hid. */
static inline uint64_t draw_seed(uint64_t x, uint32_t r)
{
	return mix64(x + DRAW_SEED + (uint64_t)(r + 1) * GOLDEN);
}

/* The seed of the descent below the failure domain: one per PG. */
static inline uint64_t leaf_seed(uint64_t x)
{
	return mix64(x + LEAF_SEED);
}

/* u in [1, 2^16] of one item for one draw seed: 16 hashed bits. */
static inline uint32_t draw_u(uint64_t seed, uint32_t hid)
{
	return (uint32_t)(mix64(seed + (uint64_t)hid * GOLDEN) & 0xffff) + 1;
}

/* ---- Selection --------------------------------------------------------- */

static bool listed(const int32_t *v, unsigned n, int32_t item)
{
	for (unsigned k = 0; k < n; k++)
		if (v[k] == item)
			return true;
	return false;
}

/*
 * Straw2: among the children of bucket b that weigh more than 0 for the
 * class whose item weights are w (and are not among skip[0..nskip)), return
 * the one with the largest draw ln(u_i) / w_i, or ITEM_NONE.  With
 * L_i = -log2(u_i) >= 0 that is the smallest L_i / w_i; two such ratios are
 * compared exactly by cross multiplication (L < 2^53, w < 2^49), so no
 * division rounds.  A tie (equal ratios) goes to the smaller hid, so the
 * answer never depends on the order of the children.  Each child's draw
 * depends only on (seed, its hid, its weight): changing one child's weight
 * changes the winner only to or from that child.
 */
static inline int32_t straw2(const struct mx_placement *pl, uint32_t b,
			     const uint64_t *w, uint64_t seed,
			     const int32_t *skip, unsigned nskip)
{
	const struct pl_bucket *bk = &pl->buckets[b];
	int32_t best = ITEM_NONE;
	uint64_t best_l = 0, best_w = 1;
	uint32_t best_hid = 0;

	for (uint32_t j = bk->first; j < bk->first + bk->n; j++) {
		const struct pl_item *it = &pl->items[j];
		uint64_t wj = w[j], lj;
		uint32_t u;
		u128 lhs, rhs;

		if (!wj || (nskip && listed(skip, nskip, it->code)))
			continue;
		u = draw_u(seed, it->hid);
		rhs = (u128)best_l * wj;
		/* Most children lose by far: skip the logarithm for those that
		 * lose even with their lower bound (a strict loss, so the skip
		 * never changes the winner). */
		if (best != ITEM_NONE && (u128)neg_log2_lower(u) * best_w > rhs)
			continue;
		lj = neg_log2_u(pl, u);
		lhs = (u128)lj * best_w;
		if (best == ITEM_NONE || lhs < rhs ||
		    (lhs == rhs && it->hid < best_hid)) {
			best = it->code;
			best_l = lj;
			best_w = wj;
			best_hid = it->hid;
		}
	}
	return best;
}

static inline uint8_t item_level(const struct mx_placement *pl, int32_t item)
{
	return item_is_bucket(item) ? pl->buckets[item_bucket(item)].level
				    : MX_LEVEL_OSD;
}

/*
 * Descend from the root to the first item whose level is at most fd: a
 * bucket of the failure-domain level, or a lower bucket or an OSD where the
 * hierarchy skips levels.  That item is the failure domain.  ITEM_NONE if
 * a bucket on the way has no child of positive weight (never, as a bucket
 * weighs the sum of its children and the root weighs more than 0).
 */
static int32_t descend_domain(const struct mx_placement *pl, uint32_t root,
			      const uint64_t *w, uint8_t fd, uint64_t seed)
{
	int32_t item = bucket_item(root);

	while (item != ITEM_NONE && item_level(pl, item) > fd)
		item = straw2(pl, item_bucket(item), w, seed, NULL, 0);
	return item;
}

/*
 * Descend from a failure domain to one of its OSDs.  The seed depends on
 * the PG only, not on the attempt that chose the domain: whichever replica
 * rank lands in a domain gets the same OSD there, so a change that moves
 * ranks between domains does not also move data within them.
 */
static int32_t descend_leaf(const struct mx_placement *pl, int32_t item,
			    const uint64_t *w, uint64_t seed)
{
	while (item != ITEM_NONE && item_is_bucket(item))
		item = straw2(pl, item_bucket(item), w, seed, NULL, 0);
	return item;
}

/* Whether every failure domain of positive weight under item (or item, if
 * it is one) is among domains[0..n).  Recursion depth <= MX_LEVEL_COUNT. */
static bool exhausted(const struct mx_placement *pl, int32_t item,
		      const uint64_t *w, uint8_t fd, const int32_t *domains,
		      unsigned n)
{
	const struct pl_bucket *bk;

	if (item_level(pl, item) <= fd)
		return listed(domains, n, item);
	bk = &pl->buckets[item_bucket(item)];
	for (uint32_t j = bk->first; j < bk->first + bk->n; j++)
		if (w[j] &&
		    !exhausted(pl, pl->items[j].code, w, fd, domains, n))
			return false;
	return true;
}

/*
 * The last resort after PL_TRIES collisions: descend_domain() that never
 * enters a subtree whose failure domains are all taken, so it finds a free
 * domain whenever one exists (with few domains of very unequal weight,
 * random retries alone can miss the only light one that is left).  At each
 * level at most n children are exhausted (each holds a chosen domain), so
 * skip[] cannot overflow.
 */
static int32_t descend_free_domain(const struct mx_placement *pl, uint32_t root,
				   const uint64_t *w, uint8_t fd, uint64_t seed,
				   const int32_t *domains, unsigned n)
{
	int32_t item = bucket_item(root);

	if (exhausted(pl, item, w, fd, domains, n))
		return ITEM_NONE;
	while (item_level(pl, item) > fd) {
		int32_t skip[MX_MAX_SIZE];
		unsigned nskip = 0;
		int32_t c;

		for (;;) {
			c = straw2(pl, item_bucket(item), w, seed, skip, nskip);
			if (c == ITEM_NONE || nskip == MX_MAX_SIZE)
				return ITEM_NONE; /* cannot happen */
			if (!exhausted(pl, c, w, fd, domains, n))
				break;
			skip[nskip++] = c;
		}
		item = c;
	}
	return item;
}

/*
 * "chooseleaf firstn": for each replica rank k < want, try the attempts
 * r = k, k + 10, k + 20, ... until one lands in a failure domain not yet
 * chosen, at most PL_TRIES times, then once more with
 * descend_free_domain(); a rank that finds no free domain is left out.
 * Straw2 only picks children of positive weight and a bucket weighs the
 * sum of its children, so every descent ends at an OSD that is in and of
 * the class: attempts fail only on collisions.
 */
static unsigned choose_firstn(const struct mx_placement *pl, uint32_t root,
			      const uint64_t *w, uint8_t fd, uint64_t x,
			      unsigned want, int32_t *out)
{
	int32_t domains[MX_MAX_SIZE];
	uint64_t leaf = leaf_seed(x);
	unsigned n = 0;

	for (unsigned rep = 0; rep < want; rep++) {
		int32_t domain = ITEM_NONE, osd;

		for (unsigned t = 0; t < PL_TRIES; t++) {
			domain =
			    descend_domain(pl, root, w, fd,
					   draw_seed(x, rep + t * PL_R_STRIDE));
			if (domain != ITEM_NONE && !listed(domains, n, domain))
				break;
			domain = ITEM_NONE;
		}
		if (domain == ITEM_NONE)
			domain = descend_free_domain(
			    pl, root, w, fd,
			    draw_seed(x, rep + PL_TRIES * PL_R_STRIDE), domains,
			    n);
		osd = descend_leaf(pl, domain, w, leaf);
		if (osd == ITEM_NONE)
			continue;
		domains[n] = domain;
		out[n++] = osd;
	}
	return n;
}

static bool str_ok(const char *s, size_t max)
{
	return memchr(s, '\0', max) != NULL;
}

static int find_class(const struct mx_placement *pl, const char *cls)
{
	if (!cls[0])
		return 0;
	for (uint32_t c = 1; c < pl->n_classes; c++)
		if (!strcmp(pl->class_names[c - 1], cls))
			return (int)c;
	return -1;
}

/* A pool's rule resolved against one placement. */
struct pl_rule {
	const uint64_t *w; /* item weights of the pool's device class */
	uint32_t root;     /* bucket index of the pool's root */
	uint8_t fd;        /* failure-domain level */
};

/*
 * Resolve pool's root and device class.  Returns 1 and *rule, 0 if the
 * pool maps nowhere (no OSD of its class, no such root, or a root that
 * weighs 0 for the class), or -EINVAL for a malformed pool.
 */
static int rule_of(const struct mx_placement *pl, const struct mx_pool *pool,
		   struct pl_rule *rule)
{
	uint32_t root = UINT32_MAX;
	int c;

	if (!pl || !pool || pool->size > MX_MAX_SIZE ||
	    pool->failure_domain >= MX_LEVEL_COUNT ||
	    !str_ok(pool->root_name, MX_NAME_MAX) ||
	    !str_ok(pool->device_class, MX_CLASS_MAX))
		return -EINVAL;
	c = find_class(pl, pool->device_class);
	if (c < 0)
		return 0; /* no OSD has that class */
	for (uint32_t i = 0; i < pl->n_roots; i++) {
		if (!strcmp(pl->buckets[pl->roots[i]].name, pool->root_name)) {
			root = pl->roots[i];
			break;
		}
	}
	if (root == UINT32_MAX ||
	    !pl->bucket_w[(size_t)c * pl->n_buckets + root])
		return 0;
	rule->w = pl->item_w + (size_t)c * pl->n_items;
	rule->root = root;
	rule->fd = pool->failure_domain;
	return 1;
}

/*
 * The failure domain of OSD osd under rule, or ITEM_NONE if the OSD may
 * not hold the rule's data: it is not in the tree, weighs 0 for the class
 * (out, weight 0 or another class), or its top bucket is not the rule's
 * root.  The domain is what descend_domain() would stop at: walking up,
 * the last (highest) bucket of level <= fd, or the OSD itself if its
 * parent is above fd already.  At most MX_LOC_MAX steps.
 */
static int32_t osd_domain(const struct mx_placement *pl,
			  const struct pl_rule *rule, int32_t osd)
{
	int32_t domain = osd, b;

	if (osd < 0 || (uint32_t)osd >= pl->max_osd ||
	    pl->osd_item[osd] < 0 || !rule->w[pl->osd_item[osd]])
		return ITEM_NONE;
	for (b = pl->osd_parent[osd];; b = pl->buckets[b].parent) {
		if (pl->buckets[b].level <= rule->fd)
			domain = bucket_item((uint32_t)b);
		if (pl->buckets[b].parent < 0)
			break;
	}
	return (uint32_t)b == rule->root ? domain : ITEM_NONE;
}

/* The upmap of (pool, pg) in pl's copy, or NULL. */
static const struct mx_pg_upmap *find_upmap(const struct mx_placement *pl,
					    int32_t pool, uint32_t pg)
{
	uint32_t lo = 0, hi = pl->n_upmaps;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct mx_pg_upmap *u = &pl->upmaps[mid];

		if (u->pool == pool && u->pg == pg)
			return u;
		if (u->pool < pool || (u->pool == pool && u->pg < pg))
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* mx_pg_upmap_apply() on a resolved rule; n <= MX_MAX_SIZE. */
static unsigned apply_upmap(const struct mx_placement *pl,
			    const struct pl_rule *rule,
			    const struct mx_pg_upmap *u, int32_t *osds,
			    unsigned n)
{
	int32_t dom[MX_MAX_SIZE];
	unsigned applied = 0;

	/* A member that may not hold data (only when the caller passes
	 * such a set) has no domain and collides with nothing. */
	for (unsigned i = 0; i < n; i++)
		dom[i] = osd_domain(pl, rule, osds[i]);
	for (unsigned k = 0; k < u->n && k < MX_MAX_SIZE; k++) {
		int32_t to = u->to[k], d;
		unsigned j = 0;
		bool clash = false;

		while (j < n && osds[j] != u->from[k])
			j++;
		if (j == n || listed(osds, n, to))
			continue; /* inert, or to[k] is in the set already */
		d = osd_domain(pl, rule, to);
		if (d == ITEM_NONE)
			continue;
		for (unsigned i = 0; i < n; i++)
			clash |= i != j && dom[i] == d;
		if (clash)
			continue;
		osds[j] = to;
		dom[j] = d;
		applied |= 1u << k;
	}
	return applied;
}

/*
 * Compute the up set into out[0..MX_MAX_SIZE): the first want ranks of the
 * rule, with the PG's upmap applied if mapped.  An upmap can reject a
 * target because of a later rank's domain, so with one the rule computes
 * every rank and the result is cut to want afterwards.  Returns the count
 * or a negative errno.
 */
static int pg_up(const struct mx_placement *pl, const struct mx_pool *pool,
		 uint32_t pg, unsigned want, bool mapped, int32_t *out)
{
	const struct mx_pg_upmap *u = NULL;
	struct pl_rule rule;
	unsigned n;
	int r;

	r = rule_of(pl, pool, &rule);
	if (r >= 0 && pg >= pool->pg_num)
		r = -EINVAL;
	if (r <= 0)
		return r;
	if (mapped && pl->n_upmaps)
		u = find_upmap(pl, pool->id, pg);
	n = choose_firstn(pl, rule.root, rule.w, rule.fd,
			  pg_input(pool->id, pg), u ? pool->size : want, out);
	if (u) {
		(void)apply_upmap(pl, &rule, u, out, n);
		n = MX_MIN(n, want);
	}
	return (int)n;
}

static int pg_up_copy(const struct mx_placement *pl, const struct mx_pool *pool,
		      uint32_t pg, int32_t *osds, int max, bool mapped)
{
	int32_t up[MX_MAX_SIZE];
	int n;

	if (!pool || max < 0 || (max > 0 && !osds))
		return -EINVAL;
	/* The first k ranks never depend on later ones: compute only max. */
	n = pg_up(pl, pool, pg, (unsigned)MX_MIN((int)pool->size, max), mapped,
		  up);
	if (n > 0)
		memcpy(osds, up, (size_t)n * sizeof(*osds));
	return n;
}

int mx_pg_up(const struct mx_placement *pl, const struct mx_pool *pool,
	     uint32_t pg, int32_t *osds, int max)
{
	return pg_up_copy(pl, pool, pg, osds, max, true);
}

int mx_pg_up_raw(const struct mx_placement *pl, const struct mx_pool *pool,
		 uint32_t pg, int32_t *osds, int max)
{
	return pg_up_copy(pl, pool, pg, osds, max, false);
}

int mx_pg_upmap_apply(const struct mx_placement *pl, const struct mx_pool *pool,
		      const struct mx_pg_upmap *u, int32_t *osds, int n)
{
	struct pl_rule rule;
	int r;

	if (!u || u->n > MX_MAX_SIZE || n < 0 || n > MX_MAX_SIZE ||
	    (n > 0 && !osds))
		return -EINVAL;
	r = rule_of(pl, pool, &rule);
	if (r <= 0)
		return r; /* a pool that maps nowhere takes no target */
	return (int)apply_upmap(pl, &rule, u, osds, (unsigned)n);
}

int mx_placement_osd_domain(const struct mx_placement *pl,
			    const struct mx_pool *pool, int32_t osd,
			    int32_t *domain)
{
	struct pl_rule rule;
	int32_t d;
	int r;

	if (!domain)
		return -EINVAL;
	r = rule_of(pl, pool, &rule);
	if (r <= 0)
		return r < 0 ? r : -ENOENT;
	d = osd_domain(pl, &rule, osd);
	if (d == ITEM_NONE)
		return -ENOENT;
	*domain = d;
	return 0;
}

int mx_pg_acting(const struct mx_placement *pl, const struct mx_map *map,
		 const struct mx_pool *pool, uint32_t pg, int32_t *osds,
		 int max)
{
	int32_t up[MX_MAX_SIZE];
	int n, k = 0;

	if (!map || !pool || max < 0 || (max > 0 && !osds))
		return -EINVAL;
	n = pg_up(pl, pool, pg, pool->size, true, up);
	if (n < 0)
		return n;
	for (int i = 0; i < n && k < max; i++) {
		const struct mx_osd_info *o;

		if ((uint32_t)up[i] >= map->max_osd)
			continue;
		o = &map->osds[up[i]];
		if (o->exists && o->up)
			osds[k++] = up[i];
	}
	return k;
}

/* ---- Building ---------------------------------------------------------- */

/* Scratch state of mx_placement_new(): a hash table from (level, name) to
 * bucket index.  Each OSD's parent bucket goes to pl->osd_parent. */
struct builder {
	struct mx_placement *pl;
	uint32_t cap_buckets;
	int32_t *table; /* From malloc(); table_mask + 1 slots, -1 = empty. */
	uint32_t table_mask;
};

static uint64_t bucket_key(uint8_t level, const char *name)
{
	return mx_hash64(name, strlen(name), BUCKET_SEED + level);
}

/* The index of bucket (level, name), created if new; or a negative errno. */
static int64_t bucket_get(struct builder *bd, uint8_t level, const char *name)
{
	struct mx_placement *pl = bd->pl;
	uint64_t key = bucket_key(level, name);
	uint32_t slot = (uint32_t)key & bd->table_mask;
	struct pl_bucket *bk;

	for (;; slot = (slot + 1) & bd->table_mask) {
		int32_t i = bd->table[slot];

		if (i < 0)
			break;
		if (pl->buckets[i].level == level &&
		    !strcmp(pl->buckets[i].name, name))
			return i;
	}
	if (pl->n_buckets == bd->cap_buckets) {
		uint32_t cap = bd->cap_buckets ? 2 * bd->cap_buckets : 64;
		struct pl_bucket *nb = realloc(pl->buckets, cap * sizeof(*nb));

		if (!nb)
			return -ENOMEM;
		pl->buckets = nb;
		bd->cap_buckets = cap;
	}
	bk = &pl->buckets[pl->n_buckets];
	memset(bk, 0, sizeof(*bk));
	strcpy(bk->name, name);
	bk->level = level;
	bk->parent = -2;
	bk->hid = 0x80000000u | (uint32_t)(key >> 33);
	bd->table[slot] = (int32_t)pl->n_buckets;
	return pl->n_buckets++;
}

/* Record that bucket `child` sits below `parent` (-1: top); a bucket must
 * have the same parent in every location that names it. */
static int set_parent(struct mx_placement *pl, int64_t child, int64_t parent)
{
	struct pl_bucket *bk = &pl->buckets[child];

	if (bk->parent == -2)
		bk->parent = (int32_t)parent;
	return bk->parent == parent ? 0 : -EINVAL;
}

static int check_osd(const struct mx_osd_info *o)
{
	if (!str_ok(o->device_class, MX_CLASS_MAX) || o->nloc > MX_LOC_MAX)
		return -EINVAL;
	for (unsigned k = 0; k < o->nloc; k++) {
		const struct mx_loc *l = &o->loc[k];

		if (l->level == MX_LEVEL_OSD || l->level > MX_LEVEL_ROOT ||
		    (k > 0 && l->level <= o->loc[k - 1].level) ||
		    !str_ok(l->name, MX_NAME_MAX) || !l->name[0])
			return -EINVAL;
	}
	return 0;
}

static int add_class(struct mx_placement *pl, const char *cls)
{
	if (!cls[0] || find_class(pl, cls) >= 0)
		return 0;
	if (pl->n_classes > PL_MAX_CLASSES)
		return -EINVAL;
	strcpy(pl->class_names[pl->n_classes - 1], cls);
	pl->n_classes++;
	return 0;
}

/* Enter every existing OSD's location into the bucket table. */
static int add_locations(struct builder *bd, const struct mx_map *map)
{
	struct mx_placement *pl = bd->pl;
	int r;

	for (uint32_t id = 0; id < map->max_osd; id++) {
		const struct mx_osd_info *o = &map->osds[id];
		int64_t below = -1;

		pl->osd_parent[id] = -1;
		pl->osd_item[id] = -1;
		if (!o->exists)
			continue;
		r = check_osd(o);
		if (r < 0)
			return r;
		r = add_class(pl, o->device_class);
		if (r < 0)
			return r;
		for (unsigned k = 0; k < o->nloc; k++) {
			int64_t b =
			    bucket_get(bd, o->loc[k].level, o->loc[k].name);

			if (b < 0)
				return (int)b;
			if (k == 0)
				pl->osd_parent[id] = (int32_t)b;
			else if (set_parent(pl, below, b) < 0)
				return -EINVAL;
			below = b;
		}
		if (below >= 0 && set_parent(pl, below, -1) < 0)
			return -EINVAL;
	}
	return 0;
}

static int cmp_hid(const void *a, const void *b)
{
	uint32_t x = ((const struct pl_bucket *const *)a)[0]->hid;
	uint32_t y = ((const struct pl_bucket *const *)b)[0]->hid;

	return x < y ? -1 : x > y;
}

/* Whether bucket a sorts before bucket b by (level, name). */
static bool bucket_before(const struct pl_bucket *a, const struct pl_bucket *b)
{
	return a->level != b->level ? a->level < b->level
				    : strcmp(a->name, b->name) < 0;
}

/*
 * Make bucket hids unique.  Two buckets with one hid would draw alike, and
 * between equal-weight siblings one would never win.  That takes a 31-bit
 * collision, so this loop almost never changes anything; when it does, the
 * bucket that sorts later by (level, name) is rehashed with the next seed,
 * which depends on nothing but the two names.
 */
static int unique_hids(struct mx_placement *pl)
{
	_cleanup_free_ struct pl_bucket **v = NULL;
	bool again = true;

	if (pl->n_buckets < 2)
		return 0;
	v = malloc(pl->n_buckets * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint32_t salt = 1; again; salt++) {
		again = false;
		for (uint32_t b = 0; b < pl->n_buckets; b++)
			v[b] = &pl->buckets[b];
		qsort(v, pl->n_buckets, sizeof(*v), cmp_hid);
		for (uint32_t i = 1; i < pl->n_buckets; i++) {
			struct pl_bucket *p = v[i - 1], *q = v[i], *late;
			uint64_t key;

			if (p->hid != q->hid)
				continue;
			late = bucket_before(p, q) ? q : p;
			key =
			    bucket_key(late->level, late->name) + salt * GOLDEN;
			late->hid = 0x80000000u | (uint32_t)(mix64(key) >> 33);
			again = true;
		}
	}
	return 0;
}

/* Lay out every bucket's children in pl->items. */
static int link_children(struct mx_placement *pl, const struct mx_map *map)
{
	_cleanup_free_ uint32_t *fill = NULL;
	uint32_t n = 0;

	for (uint32_t b = 0; b < pl->n_buckets; b++)
		if (pl->buckets[b].parent >= 0)
			pl->buckets[pl->buckets[b].parent].n++;
	for (uint32_t id = 0; id < map->max_osd; id++)
		if (pl->osd_parent[id] >= 0)
			pl->buckets[pl->osd_parent[id]].n++;
	for (uint32_t b = 0; b < pl->n_buckets; b++) {
		pl->buckets[b].first = n;
		n += pl->buckets[b].n;
	}
	pl->n_items = n;
	pl->items = calloc(n ? n : 1, sizeof(*pl->items));
	pl->roots =
	    calloc(pl->n_buckets ? pl->n_buckets : 1, sizeof(*pl->roots));
	fill = calloc(pl->n_buckets ? pl->n_buckets : 1, sizeof(*fill));
	if (!pl->items || !pl->roots || !fill)
		return -ENOMEM;
	for (uint32_t b = 0; b < pl->n_buckets; b++)
		if (pl->buckets[b].level == MX_LEVEL_ROOT)
			pl->roots[pl->n_roots++] = b;
	for (uint32_t id = 0; id < map->max_osd; id++) {
		int32_t p = pl->osd_parent[id];
		uint32_t j;

		if (p < 0)
			continue;
		j = pl->buckets[p].first + fill[p]++;
		pl->items[j] =
		    (struct pl_item){ .code = (int32_t)id, .hid = id };
		pl->osd_item[id] = (int32_t)j;
	}
	for (uint32_t b = 0; b < pl->n_buckets; b++) {
		int32_t p = pl->buckets[b].parent;

		if (p >= 0)
			pl->items[pl->buckets[p].first + fill[p]++] =
			    (struct pl_item){ .code = bucket_item(b),
					      .hid = pl->buckets[b].hid };
	}
	return 0;
}

/* The weight of OSD o for class c (0: any class), named cls. */
static uint64_t osd_weight(const struct mx_osd_info *o, uint32_t c,
			   const char *cls)
{
	if (!o->in || (c > 0 && strcmp(o->device_class, cls)))
		return 0;
	return o->weight;
}

/* Fill the class-c weights of bucket b's children (iw, those of the
 * buckets bw) and return their sum. */
static uint64_t weigh_children(const struct mx_placement *pl,
			       const struct mx_map *map, uint32_t b, uint32_t c,
			       uint64_t *iw, const uint64_t *bw)
{
	const struct pl_bucket *bk = &pl->buckets[b];
	const char *cls = c ? pl->class_names[c - 1] : "";
	uint64_t sum = 0;

	for (uint32_t j = bk->first; j < bk->first + bk->n; j++) {
		int32_t code = pl->items[j].code;

		if (item_is_bucket(code))
			iw[j] = bw[item_bucket(code)];
		else
			iw[j] = osd_weight(&map->osds[code], c, cls);
		sum += iw[j];
	}
	return sum;
}

/* Weights of every item and bucket for every class, leaves up: a bucket's
 * children all have lower levels, so one pass per level suffices. */
static int sum_weights(struct mx_placement *pl, const struct mx_map *map)
{
	size_t ni = pl->n_items, nb = pl->n_buckets;

	pl->item_w = calloc(pl->n_classes * (ni ? ni : 1), sizeof(uint64_t));
	pl->bucket_w = calloc(pl->n_classes * (nb ? nb : 1), sizeof(uint64_t));
	if (!pl->item_w || !pl->bucket_w)
		return -ENOMEM;
	for (uint32_t c = 0; c < pl->n_classes; c++) {
		uint64_t *iw = pl->item_w + c * ni, *bw = pl->bucket_w + c * nb;

		for (unsigned lv = MX_LEVEL_HOST; lv <= MX_LEVEL_ROOT; lv++)
			for (uint32_t b = 0; b < nb; b++)
				if (pl->buckets[b].level == lv)
					bw[b] = weigh_children(pl, map, b, c,
							       iw, bw);
	}
	return 0;
}

/* Order of upmaps: by (pool, pg), then by content, so that sorting is
 * deterministic even when a map (wrongly) holds two for one PG. */
static int cmp_upmap(const void *a, const void *b)
{
	const struct mx_pg_upmap *x = a, *y = b;

	if (x->pool != y->pool)
		return x->pool < y->pool ? -1 : 1;
	if (x->pg != y->pg)
		return x->pg < y->pg ? -1 : 1;
	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	for (unsigned k = 0; k < x->n; k++) {
		if (x->from[k] != y->from[k])
			return x->from[k] < y->from[k] ? -1 : 1;
		if (x->to[k] != y->to[k])
			return x->to[k] < y->to[k] ? -1 : 1;
	}
	return 0;
}

/*
 * Copy the map's upmaps into pl, sorted, one per PG (the first in
 * cmp_upmap() order if the map holds more).  The map keeps them sorted
 * already; sorting a sorted array is cheap and makes the lookup safe
 * whatever the map holds.  Pairs past n are zeroed so that no stale
 * bytes are compared.
 */
static int copy_upmaps(struct mx_placement *pl, const struct mx_map *map)
{
	uint32_t n = 0;

	if (!map->n_upmaps)
		return 0;
	if (!map->upmaps)
		return -EINVAL;
	pl->upmaps = calloc(map->n_upmaps, sizeof(*pl->upmaps));
	if (!pl->upmaps)
		return -ENOMEM;
	for (uint32_t i = 0; i < map->n_upmaps; i++) {
		const struct mx_pg_upmap *u = &map->upmaps[i];
		struct mx_pg_upmap *c = &pl->upmaps[i];

		if (u->n == 0 || u->n > MX_MAX_SIZE)
			return -EINVAL;
		c->pool = u->pool;
		c->pg = u->pg;
		c->n = u->n;
		memcpy(c->from, u->from, u->n * sizeof(*u->from));
		memcpy(c->to, u->to, u->n * sizeof(*u->to));
	}
	qsort(pl->upmaps, map->n_upmaps, sizeof(*pl->upmaps), cmp_upmap);
	for (uint32_t i = 0; i < map->n_upmaps; i++) {
		const struct mx_pg_upmap *u = &pl->upmaps[i];

		if (n && u->pool == pl->upmaps[n - 1].pool &&
		    u->pg == pl->upmaps[n - 1].pg)
			continue;
		pl->upmaps[n++] = *u;
	}
	pl->n_upmaps = n;
	return 0;
}

int mx_placement_new(const struct mx_map *map, struct mx_placement **out)
{
	struct builder bd = { 0 };
	struct mx_placement *pl;
	uint64_t locs = 0;
	uint32_t cap = 16;
	int r;

	if (!map || !out || map->max_osd > MX_MAX_OSDS ||
	    (map->max_osd && !map->osds))
		return -EINVAL;
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return -ENOMEM;
	pl->n_classes = 1;
	init_log_tables(pl);
	for (uint32_t id = 0; id < map->max_osd; id++)
		if (map->osds[id].exists)
			locs += MX_MIN(map->osds[id].nloc, MX_LOC_MAX);
	while (cap < 2 * locs)
		cap <<= 1;
	bd.pl = pl;
	bd.table_mask = cap - 1;
	bd.table = malloc(cap * sizeof(*bd.table));
	pl->max_osd = map->max_osd;
	pl->osd_parent =
	    malloc((map->max_osd ? map->max_osd : 1) * sizeof(*pl->osd_parent));
	pl->osd_item =
	    malloc((map->max_osd ? map->max_osd : 1) * sizeof(*pl->osd_item));
	if (!bd.table || !pl->osd_parent || !pl->osd_item) {
		r = -ENOMEM;
		goto out;
	}
	memset(bd.table, 0xff, cap * sizeof(*bd.table));
	r = add_locations(&bd, map);
	if (r >= 0)
		r = unique_hids(pl);
	if (r >= 0)
		r = link_children(pl, map);
	if (r >= 0)
		r = sum_weights(pl, map);
	if (r >= 0)
		r = copy_upmaps(pl, map);
out:
	free(bd.table);
	if (r < 0) {
		mx_placement_free(pl);
		return r;
	}
	*out = pl;
	return 0;
}

void mx_placement_free(struct mx_placement *pl)
{
	if (!pl)
		return;
	free(pl->buckets);
	free(pl->items);
	free(pl->roots);
	free(pl->item_w);
	free(pl->bucket_w);
	free(pl->osd_parent);
	free(pl->osd_item);
	free(pl->upmaps);
	free(pl);
}

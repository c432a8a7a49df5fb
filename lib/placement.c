/*
 * Placement: the hierarchy compiled from a cluster map, and the rule that
 * maps a placement group onto OSDs with it.  mx_placement_new() turns each
 * OSD's location into a tree of buckets (identified by level and name) that
 * gives every OSD its root and its failure domain at each level, and
 * indexes, for every root and device class, the OSDs that may take data in
 * a binary trie over their ids (a "column").  After that the structure is
 * immutable (threads may share it).  The rule ranks every OSD of the
 * pool's column by a weighted key (straw2's ln(u) / w, with the exponential
 * draws generated top-down over the id trie so that the best keys are
 * found without drawing for every OSD) and takes the best OSD of each of
 * the first `size` distinct failure domains.  mx_pg_up() computes it
 * without allocating and without floating point, so clients and OSDs on
 * any machine compute the same up set.  mx_placement_new() also copies the
 * map's upmaps (per-PG exceptions chosen by lib/balancer.c), and mx_pg_up()
 * applies a PG's upmap to the rule's result, pair by pair, while each pair
 * is valid.  docs/placement.md explains the algorithm, the proofs of its
 * stability and movement, and the upmaps, and gives the measured balance,
 * movement and speed.
 */
#include "placement.h"

#include <assert.h>
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
 * change moves every object in every cluster.  Never change them once
 * released.
 */
#define OBJ_SEED 0x6f626a6563742e31ull  /* object name -> hash */
#define PG_SEED 0x706c6163652e7067ull   /* (pool, pg) -> rule input x */
#define RANK_SEED 0x72616e6b2e6f7364ull /* x -> seed of the PG's ranking */
#define GOLDEN 0x9e3779b97f4a7c15ull    /* 2^64 / golden ratio, odd */
/* Seed of the bucket hash table in mx_placement_new(): not part of the
 * placement function (bucket names never enter a draw). */
#define BUCKET_SEED 0x6275636b65742e69ull

/* OSD ids have PL_ID_BITS bits: the id trie has that depth, whatever the
 * map's max_osd, so that a growing map changes no OSD's draws. */
#define PL_ID_BITS 16
_Static_assert(MX_MAX_OSDS == 1 << PL_ID_BITS, "OSD ids are 16 bits");
/* Named device classes one map may use (each costs a column per root). */
#define PL_MAX_CLASSES 32
/* Fixed point of the logarithms: 48 fractional bits. */
#define LOG_FRAC 48
/* Fixed point of the exponential values of the ranking: 56 fractional
 * bits (a value is below 2^6, see gap()). */
#define VAL_FRAC 56
/* log2(e) in 2.62 fixed point, rounded (1.4426950408889634074...). */
#define LOG2E_Q62 0x5c551d94ae0bf85eull
/*
 * Bounded passes of the search before an unbounded one (see choose()).
 * Pass p only looks for OSDs whose key is below a bound that about
 * PL_PASS_HIT << (3 p) OSDs per wanted rank beat; with 2, the first pass
 * usually suffices.  These only change the speed, never the result.
 */
#define PL_PASSES 3
#define PL_PASS_HIT 2

/* "No item": no OSD, or an OSD that may not hold the pool's data. */
#define ITEM_NONE INT32_MIN

/*
 * A failure domain is coded as an int32: an OSD id (>= 0), where the OSD
 * is its own domain, or a bucket, -1 - its index in pl->buckets.
 */
static inline int32_t bucket_item(uint32_t index)
{
	return -1 - (int32_t)index;
}

struct pl_bucket {
	char name[MX_NAME_MAX];
	uint8_t level;  /* enum mx_level, >= MX_LEVEL_HOST */
	int32_t parent; /* bucket index; -1: none (top); -2: not yet known */
};

/*
 * A node of a column's trie: a binary trie over 16-bit OSD ids, with paths
 * through a single child compressed away.  The node stands for the dyadic
 * range of ids [prefix, prefix + 2^(16 - depth)); depth 16 is a leaf, the
 * OSD `prefix`.  Any other node has both halves of its range non-empty:
 * the child for the lower half is the next node in pl->nodes, the one for
 * the upper half is nodes[right].  A child may be deeper than depth + 1.
 */
struct pl_node {
	uint32_t wmax;   /* largest weight of an OSD below, > 0 */
	uint32_t prefix; /* lowest id of the range (low bits zero) */
	uint32_t right;  /* upper half's child (not for a leaf) */
	int32_t lca;     /* lowest bucket above every OSD below */
	uint8_t depth;   /* 0 .. PL_ID_BITS */
};

/*
 * The OSDs under one root that may hold data of one device class (class 0:
 * any class): existing, in, with a weight above 0 and a location whose top
 * bucket is that root.
 */
struct pl_column {
	int32_t top; /* index in pl->nodes of the trie's top node; -1: empty */
	uint64_t w;  /* total weight (below 2^48) */
	/* Distinct failure domains of each level among these OSDs: the most
	 * replicas a rule with that failure domain can place. */
	uint32_t ndom[MX_LEVEL_COUNT];
};

struct mx_placement {
	uint32_t n_buckets;
	struct pl_bucket *buckets; /* From malloc(). */
	/* The failure domain of level l of every OSD below bucket b, if they
	 * share one, is bdom[b * MX_LEVEL_COUNT + l]: b's highest ancestor
	 * (or b) of level <= l, or ITEM_NONE if b's level is above l. */
	int32_t *bdom; /* From malloc(). */
	uint32_t n_roots;
	uint32_t *roots; /* From malloc(); the MX_LEVEL_ROOT buckets. */
	/* Class 0 is "every OSD"; class c >= 1 is class_names[c - 1]. */
	uint32_t n_classes;
	char class_names[PL_MAX_CLASSES][MX_CLASS_MAX];
	/*
	 * Per OSD id below max_osd: its parent bucket (-1: the OSD does not
	 * exist or has no location), the index in roots[] of its top bucket
	 * (-1: not a root, or no location), its weight (0 if it does not
	 * exist, is out or has no location) and its class.
	 */
	uint32_t max_osd;
	int32_t *osd_parent; /* From malloc(). */
	int32_t *osd_root;   /* From malloc(). */
	uint32_t *osd_w;     /* From malloc(). */
	uint8_t *osd_class;  /* From malloc(). */
	/* Column (root i, class c) is cols[i * n_classes + c]. */
	struct pl_column *cols; /* From malloc(); n_roots * n_classes. */
	uint32_t n_nodes;
	struct pl_node *nodes; /* From malloc(); the tries of all columns. */
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
 * -log2(u / 2^32) in 48-bit fixed point, for u in [1, 2^32]: 0 for
 * u = 2^32, 32 << 48 for u = 1, strictly decreasing in between and within
 * two units in the last place of the exact value (test_placement checks
 * this against libm).  With e = floor(log2 u) and m = u << (32 - e) in
 * [2^32, 2^33), the value is (32 - e) - log2(m / 2^32).  Split m's 32 bits
 * below its leading one into a (high 8) and b (low 24): m / 2^32 =
 * (1 + a/256) (1 + t) with t = b / (2^24 (256 + a)) < 2^-8, so
 * log2(m / 2^32) = log_a[a] + log2(1 + t), and t * 2^64 =
 * b * recip_a[a] / 2^16 (to within 2^8 units).  The logarithm's base does
 * not matter to the ranking (it scales every value alike), so base 2
 * saves converting to ln.
 */
static inline uint64_t neg_log2_u(const struct mx_placement *pl, uint64_t u)
{
	unsigned e = 63 - (unsigned)__builtin_clzll(u);
	uint64_t m = u << (32 - e);
	uint32_t a = (uint32_t)(m >> 24) & 0xff, b = (uint32_t)m & 0xffffff;
	uint64_t frac =
	    pl->log_a[a] + log2_1p_small(mul_shr(b, pl->recip_a[a], 16));

	return ((uint64_t)(32 - e) << LOG_FRAC) - frac;
}

/*
 * A lower bound of neg_log2_u(pl, u), cheap: -ln x >= 1 - x, so
 * -log2(u / 2^32) >= (2^32 - u) / 2^32 * log2(e).  LOG2E_Q32 is log2(e) in
 * 32-bit fixed point rounded down; the margin of 4 units covers the error
 * of neg_log2_u() (at most 2), and test_placement checks the bound.
 */
#define LOG2E_Q32 0x171547652ull
static inline uint64_t neg_log2_lower(uint64_t u)
{
	uint64_t lb = mul_shr((1ull << 32) - u, LOG2E_Q32, 16);

	return lb > 4 ? lb - 4 : 0;
}

/*
 * Exported for tests/unit/test_placement.c only (no header declares it):
 * neg_log2_u() and its lower bound for u in [1, 2^32], so that the test
 * can check them against libm.
 */
uint64_t mx_placement_log2_test(const struct mx_placement *pl, uint64_t u,
				uint64_t *lower);
uint64_t mx_placement_log2_test(const struct mx_placement *pl, uint64_t u,
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

/* The seed of a PG's ranking: every draw of the PG derives from it. */
static inline uint64_t rank_seed(uint64_t x)
{
	return mix64(x + RANK_SEED);
}

/* ---- The ranking ------------------------------------------------------- */

/*
 * NOTES ON THE RANKING
 *
 * The rule.  For a PG with seed s, every OSD id i in [0, 2^16) has a value
 * E_i (below), and an OSD of weight w_i > 0 has the key E_i / w_i.  The E_i
 * are independent and exponentially distributed, so the key is straw2's
 * -ln(u_i) / w_i up to a constant factor: the OSD with the smallest key is
 * OSD i with probability w_i / W.  The up set is what a walk through the
 * pool's column by increasing key (equal keys: smaller id first) takes
 * when it takes every OSD whose failure domain it has not taken yet,
 * until it has `size`.  So rank 0 is a flat straw2 choice over all OSDs,
 * every later rank the best OSD of a new domain, and the domains come in
 * the order of their best keys.  Nothing depends on bucket weights: a
 * change of one OSD's weight changes one key and nothing else.
 *
 * The values.  Drawing E_i with one hash per OSD would cost O(OSDs) per
 * PG.  Instead they are generated top-down over the complete binary tree
 * of the 2^16 ids.  The dyadic node v at depth d holds 2^(16 - d) ids, and
 * T(v) is the least value among them.  The root's T is
 * -log2(U_root) / 2^16.  Node v's hash (node_hash()) gives a bit b, the
 * half that holds v's minimum, and a U for the gap to the other half's
 * minimum (gap()):
 *
 *     T(half b) = T(v),    T(other half) = T(v) - log2(U) / 2^(15 - d).
 *
 * For i.i.d. exponentials this is exact: the minimum of n of them is
 * exponential of n times the rate; it lies in either half with
 * probability 1/2; by memorylessness, the other half's minimum exceeds it
 * by an independent exponential of that half's rate; and given its
 * minimum, each half is again such a set.  So E_i = T(leaf i) is a
 * function of s and i alone, and the E_i are i.i.d. exponentials (of mean
 * 1 / ln 2, as the logarithms are in base 2), whatever the weights and
 * whichever ids exist.  U has 32 bits and the values are in 8.56 fixed
 * point (at most 2^62: see gap()), so keys almost never tie.
 *
 * The search.  A leaf below node v has a key of at least T(v) / wmax(v),
 * wmax being the largest weight below v.  search() walks the column's trie
 * depth first and skips any node whose bound is strictly beyond the
 * threshold: the key of the last pick when the picks are complete, and,
 * in a bounded pass, the pass bound tau.  It offers every leaf it reaches
 * to offer(), which keeps, for the first `want` distinct domains by key,
 * each domain's best OSD: exactly what the walk takes, computed over the
 * leaves offered.  That equals the walk over all leaves whenever every
 * leaf whose key is at most the final last pick's was offered.  The last
 * pick only gets better, so such a leaf can only have been skipped for
 * tau; and a bounded pass offers no leaf above tau, so a pass that ends
 * with `want` picks is exact, and so is an unbounded one (choose()).  The
 * bounds decide how much is computed, never the result.  A PG computes a
 * few dozen node hashes and about ten logarithms (about size * log2(OSDs)
 * nodes), instead of one draw per OSD.
 */

/* The hash of the dyadic node at depth d < 16 that holds id prefix p:
 * splitmix64 of the seed and the node's number in breadth-first order. */
static inline uint64_t node_hash(uint64_t seed, unsigned d, uint32_t p)
{
	uint64_t key = (1ull << d) | (p >> (PL_ID_BITS - d));

	return mix64(seed + key * GOLDEN);
}

/*
 * -log2(U) in 48-bit fixed point (l) as the gap between the minima of the
 * two halves of a node at depth d: divided by their 2^(15 - d) ids and in
 * VAL_FRAC fixed point.  The largest gap is 32 / 2^(15 - d), so a value
 * (the root's and at most one gap per depth) stays below 64 = 2^6.
 */
static inline uint64_t gap_scale(uint64_t l, unsigned d)
{
	/* << (VAL_FRAC - LOG_FRAC) >> (PL_ID_BITS - 1 - d) */
	return d >= 7 ? l << (d - 7) : l >> (7 - d);
}

/* The gap at a node of depth d with hash h: U is h's low 32 bits + 1. */
static inline uint64_t gap(const struct mx_placement *pl, uint64_t h,
			   unsigned d)
{
	return gap_scale(neg_log2_u(pl, (h & 0xffffffff) + 1), d);
}

/* A lower bound of gap(pl, h, d), without the logarithm. */
static inline uint64_t gap_lower(uint64_t h, unsigned d)
{
	return gap_scale(neg_log2_lower((h & 0xffffffff) + 1), d);
}

/* The value of the root of the id tree (its least value, of 2^16 ids). */
static inline uint64_t root_value(const struct mx_placement *pl, uint64_t seed)
{
	return neg_log2_u(pl, (mix64(seed) & 0xffffffff) + 1) >>
	       (LOG_FRAC + PL_ID_BITS - VAL_FRAC);
}

/*
 * The failure domain of level fd of an OSD in the tree: its highest
 * ancestor of level <= fd, or the OSD itself if its parent is above fd
 * already (where the hierarchy skips levels: a host outside any rack is
 * its own rack-level domain).  Levels grow strictly upwards.
 */
static int32_t domain_of(const struct mx_placement *pl, int32_t osd, uint8_t fd)
{
	int32_t b = pl->osd_parent[osd];
	int32_t d = pl->bdom[(size_t)b * MX_LEVEL_COUNT + fd];

	return d == ITEM_NONE ? osd : d;
}

/* An OSD taken by the ranking. */
struct pl_pick {
	uint64_t e; /* its value */
	uint32_t w; /* its weight */
	int32_t osd;
	int32_t domain;
};

/* The state of one PG's search (choose()). */
struct pl_search {
	const struct mx_placement *pl;
	const struct pl_node *nodes;
	uint64_t seed;
	uint8_t fd;     /* failure-domain level */
	unsigned want;  /* ranks wanted, <= MX_MAX_SIZE */
	unsigned n;     /* picks so far */
	bool bounded;   /* whether tau bounds this pass */
	uint64_t tau_e; /* tau = tau_e / tau_w */
	uint64_t tau_w;
	/* The threshold, lim_e / lim_w, if limited: the smaller of tau (if
	 * bounded) and the last pick's key (if n == want).  limit() sets
	 * it. */
	bool limited;
	uint64_t lim_e;
	uint64_t lim_w;
	/* By increasing key, distinct domains: the best OSD of each of the
	 * first n domains among the leaves offered so far. */
	struct pl_pick pick[MX_MAX_SIZE];
};

/* Whether e1 / w1 < e2 / w2, exactly: values are below 2^63 and weights
 * below 2^48, so the products fit in 128 bits. */
static inline bool key_below(uint64_t e1, uint64_t w1, uint64_t e2, uint64_t w2)
{
	return (u128)e1 * w2 < (u128)e2 * w1;
}

/* Whether a comes before b in the walk: a smaller key, or an equal key
 * and a smaller id (so the order never depends on the trie's shape). */
static inline bool walks_before(const struct pl_pick *a,
				const struct pl_pick *b)
{
	u128 l = (u128)a->e * b->w, r = (u128)b->e * a->w;

	return l < r || (l == r && a->osd < b->osd);
}

/* Set the threshold from tau and the picks (after either changes). */
static void limit(struct pl_search *s)
{
	bool full = s->n == s->want; /* then n >= 1 */

	s->limited = s->bounded || full;
	s->lim_e = s->tau_e;
	s->lim_w = s->tau_w;
	if (full &&
	    (!s->bounded || key_below(s->pick[s->n - 1].e, s->pick[s->n - 1].w,
				      s->tau_e, s->tau_w))) {
		s->lim_e = s->pick[s->n - 1].e;
		s->lim_w = s->pick[s->n - 1].w;
	}
}

/* Whether every leaf below a node of value t and largest weight wmax has
 * a key strictly beyond the threshold, so that none of them can change
 * the picks that the search may return. */
static inline bool beyond(const struct pl_search *s, uint64_t t, uint32_t wmax)
{
	return s->limited && key_below(s->lim_e, s->lim_w, t, wmax);
}

/*
 * Whether no leaf below trie node nd, of value t (or a lower bound of it),
 * can change the picks: all are beyond the threshold, or all lie in one
 * failure domain whose pick comes strictly before them, so that offer()
 * would refuse each.  The second matters where ids follow the hierarchy
 * (a host's or a rack's OSDs in one range of ids): once a domain is
 * picked, its subtrees are skipped, and rules that need many or light
 * domains do not search the picked ones.
 */
static inline bool skip(const struct pl_search *s, const struct pl_node *nd,
			uint64_t t)
{
	int32_t d;

	if (beyond(s, t, nd->wmax))
		return true;
	d = s->pl->bdom[(size_t)nd->lca * MX_LEVEL_COUNT + s->fd];
	if (d == ITEM_NONE)
		return false;
	for (unsigned k = 0; k < s->n; k++)
		if (s->pick[k].domain == d)
			return key_below(s->pick[k].e, s->pick[k].w, t,
					 nd->wmax);
	return false;
}

/*
 * Offer leaf osd (value e, weight w) to the picks: it replaces its
 * domain's pick if it comes before it, or else enters if its domain is new
 * and either there is room or it comes before the last pick, which then
 * drops out.  The result does not depend on the order of the offers: a
 * domain that dropped out had `want` domains before it, and the picks
 * only get better, so a later leaf of that domain that enters comes
 * before the one that dropped out.
 */
static void offer(struct pl_search *s, int32_t osd, uint64_t e, uint32_t w)
{
	struct pl_pick p = { .e = e,
			     .w = w,
			     .osd = osd,
			     .domain = domain_of(s->pl, osd, s->fd) };
	unsigned j = 0;

	while (j < s->n && s->pick[j].domain != p.domain)
		j++;
	if (j < s->n) {
		if (!walks_before(&p, &s->pick[j]))
			return;
		s->n--;
		memmove(&s->pick[j], &s->pick[j + 1],
			(s->n - j) * sizeof(s->pick[0]));
	} else if (s->n == s->want) {
		if (!walks_before(&p, &s->pick[s->n - 1]))
			return;
		s->n--;
	}
	for (j = s->n; j > 0 && walks_before(&p, &s->pick[j - 1]); j--)
		s->pick[j] = s->pick[j - 1];
	s->pick[j] = p;
	s->n++;
	limit(s);
}

/*
 * Given the value *t of the dyadic node at depth d that holds trie node
 * nd (d <= nd->depth), compute nd's value into *t: follow the levels in
 * between, where the other half holds no OSD of the column.  Returns
 * false as soon as skip() says that nd can be skipped.
 */
static bool walk(const struct pl_search *s, const struct pl_node *nd,
		 unsigned d, uint64_t *t)
{
	for (; d < nd->depth; d++) {
		uint64_t h = node_hash(s->seed, d, nd->prefix);
		unsigned half = (nd->prefix >> (PL_ID_BITS - 1 - d)) & 1;

		if (h >> 63 == half)
			continue; /* nd's half holds the minimum */
		if (skip(s, nd, *t + gap_lower(h, d)))
			return false; /* without computing the logarithm */
		*t += gap(s->pl, h, d);
	}
	return !skip(s, nd, *t);
}

/* A node to visit and its value. */
struct pl_frame {
	uint32_t node;
	uint64_t t;
};

/*
 * Offer every leaf of the trie below node `top` (of value t) that is not
 * skipped: depth first, the child with the smaller bound first, skipping
 * nodes as skip() says.  The stack holds at most one pending sibling
 * per branching ancestor (at most PL_ID_BITS - 1 of them, as depths grow
 * strictly) plus the two children just pushed.
 */
static void search(struct pl_search *s, uint32_t top, uint64_t t)
{
	struct pl_frame stack[PL_ID_BITS + 2];
	unsigned sp = 0;

	stack[sp++] = (struct pl_frame){ .node = top, .t = t };
	while (sp) {
		struct pl_frame f = stack[--sp], c[2];
		const struct pl_node *nd = &s->nodes[f.node];
		bool ok[2];
		uint64_t h;
		unsigned b, first;

		if (skip(s, nd, f.t))
			continue; /* the picks changed since the push */
		if (nd->depth == PL_ID_BITS) {
			offer(s, (int32_t)nd->prefix, f.t, nd->wmax);
			continue;
		}
		h = node_hash(s->seed, nd->depth, nd->prefix);
		b = (unsigned)(h >> 63); /* the half that holds the minimum */
		c[0].node = f.node + 1;
		c[1].node = nd->right;
		c[b].t = f.t;
		ok[b] = walk(s, &s->nodes[c[b].node], nd->depth + 1u, &c[b].t);
		c[!b].t = f.t + gap_lower(h, nd->depth);
		ok[!b] = !skip(s, &s->nodes[c[!b].node], c[!b].t);
		if (ok[!b]) {
			c[!b].t = f.t + gap(s->pl, h, nd->depth);
			ok[!b] = walk(s, &s->nodes[c[!b].node], nd->depth + 1u,
				      &c[!b].t);
		}
		if (ok[0] && ok[1]) {
			first = key_below(c[1].t, s->nodes[c[1].node].wmax,
					  c[0].t, s->nodes[c[0].node].wmax);
			stack[sp++] = c[!first];
			stack[sp++] = c[first];
		} else if (ok[0] || ok[1]) {
			stack[sp++] = c[ok[1]];
		}
		assert(sp <= MX_ARRAY_SIZE(stack));
	}
}

static bool listed(const int32_t *v, unsigned n, int32_t item)
{
	for (unsigned k = 0; k < n; k++)
		if (v[k] == item)
			return true;
	return false;
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
	const struct pl_column *col; /* its OSDs; never empty */
	uint32_t root;               /* index in pl->roots */
	uint32_t cls;                /* device class; 0: any */
	uint8_t fd;                  /* failure-domain level */
};

/*
 * Resolve pool's root and device class.  Returns 1 and *rule, 0 if the
 * pool maps nowhere (no OSD of its class, no such root, or no OSD of the
 * class with weight under the root), or -EINVAL for a malformed pool.
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
			root = i;
			break;
		}
	}
	if (root == UINT32_MAX ||
	    pl->cols[(size_t)root * pl->n_classes + (uint32_t)c].top < 0)
		return 0;
	rule->col = &pl->cols[(size_t)root * pl->n_classes + (uint32_t)c];
	rule->root = root;
	rule->cls = (uint32_t)c;
	rule->fd = pool->failure_domain;
	return 1;
}

/*
 * The rule's first `want` ranks for input x into out[]: the best OSDs of
 * the first distinct failure domains in the PG's ranking (see NOTES ON THE
 * RANKING), fewer if the column has fewer domains.  Returns the count.
 *
 * Bounded passes first, then an unbounded one.  A bounded pass offers
 * only leaves with keys up to tau (a leaf's bound is its key), so when its
 * picks are complete, the last pick's key is at most tau, and every leaf
 * with a key up to that was offered: the picks are exact.  Otherwise the
 * next pass has an eight times larger tau.  Each pass keeps the picks of
 * the one before: they are real leaves with their true keys.
 */
static unsigned choose(const struct mx_placement *pl,
		       const struct pl_rule *rule, uint64_t x, unsigned want,
		       int32_t *out)
{
	const struct pl_column *col = rule->col;
	struct pl_search s;
	uint64_t t;

	/* Not an initializer, which would clear pick[] for every PG; a
	 * pick is written before it is read. */
	s.pl = pl;
	s.nodes = pl->nodes;
	s.seed = rank_seed(x);
	s.fd = rule->fd;
	s.n = 0;
	s.bounded = s.limited = false;
	s.want = MX_MIN(want, col->ndom[rule->fd]);
	if (!s.want)
		return 0;
	/* Nothing is beyond yet (no pick, unbounded): walk() cannot fail. */
	t = root_value(pl, s.seed);
	(void)walk(&s, &pl->nodes[col->top], 0, &t);
	/*
	 * tau = tau_e / tau_w.  A key E / w is below it with probability
	 * about ln 2 * tau * w / 2^VAL_FRAC, so about want * PL_PASS_HIT * 8^p
	 * keys of the column's total weight are.
	 */
	s.tau_e = s.want * PL_PASS_HIT * (LOG2E_Q62 >> (62 - VAL_FRAC));
	for (unsigned pass = 0;; pass++) {
		s.tau_w = col->w >> (3 * pass);
		s.bounded = pass < PL_PASSES && s.tau_w;
		limit(&s);
		search(&s, (uint32_t)col->top, t);
		if (!s.bounded || s.n == s.want)
			break;
	}
	assert(s.n == s.want);
	for (unsigned k = 0; k < s.n; k++)
		out[k] = s.pick[k].osd;
	return s.n;
}

/* Whether OSD osd (in range) weighs more than 0 for class cls. */
static inline bool osd_weighs(const struct mx_placement *pl, int32_t osd,
			      uint32_t cls)
{
	return pl->osd_w[osd] && (!cls || pl->osd_class[osd] == cls);
}

/*
 * The failure domain of OSD osd under rule, or ITEM_NONE if the OSD may
 * not hold the rule's data: it is not in the tree, weighs 0 for the class
 * (out, weight 0 or another class), or its top bucket is not the rule's
 * root.  The domain is domain_of()'s, as the ranking uses it.
 */
static int32_t osd_domain(const struct mx_placement *pl,
			  const struct pl_rule *rule, int32_t osd)
{
	if (osd < 0 || (uint32_t)osd >= pl->max_osd ||
	    !osd_weighs(pl, osd, rule->cls) ||
	    pl->osd_root[osd] != (int32_t)rule->root)
		return ITEM_NONE;
	return domain_of(pl, osd, rule->fd);
}

/*
 * Exported for tests/unit/test_placement.c only (no header declares it):
 * the value E of OSD id osd (any id below 2^16) for PG pg of pool, straight
 * from its path in the id tree, without the trie or the search, so that
 * the test can rank every OSD itself and compare with mx_pg_up_raw().
 */
uint64_t mx_placement_value_test(const struct mx_placement *pl,
				 const struct mx_pool *pool, uint32_t pg,
				 int32_t osd);
uint64_t mx_placement_value_test(const struct mx_placement *pl,
				 const struct mx_pool *pool, uint32_t pg,
				 int32_t osd)
{
	uint64_t seed = rank_seed(pg_input(pool->id, pg));
	uint64_t t = root_value(pl, seed);
	uint32_t id = (uint32_t)osd;

	for (unsigned d = 0; d < PL_ID_BITS; d++) {
		uint64_t h = node_hash(seed, d, id);

		if (h >> 63 != ((id >> (PL_ID_BITS - 1 - d)) & 1))
			t += gap(pl, h, d);
	}
	return t;
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
	n = choose(pl, &rule, pg_input(pool->id, pg), u ? pool->size : want,
		   out);
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
	/* A primary_temp member goes first; the others keep their order. */
	if (k > 1 && map->n_ptemps) {
		int32_t t = mx_map_primary_temp(map, pool->id, pg);

		for (int i = 1; i < k; i++)
			if (osds[i] == t) {
				memmove(&osds[1], &osds[0], (size_t)i * sizeof(*osds));
				osds[0] = t;
				break;
			}
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

/* The index of class cls, entered if new; or -EINVAL past
 * PL_MAX_CLASSES. */
static int add_class(struct mx_placement *pl, const char *cls)
{
	int c = find_class(pl, cls);

	if (c >= 0)
		return c;
	if (pl->n_classes > PL_MAX_CLASSES)
		return -EINVAL;
	strcpy(pl->class_names[pl->n_classes - 1], cls);
	return (int)pl->n_classes++;
}

/*
 * Enter every existing OSD's location into the bucket table, and fill the
 * per-OSD arrays but osd_root.  Since a location's levels grow strictly
 * and a bucket has one parent, every bucket's parent is of a higher level.
 */
static int add_locations(struct builder *bd, const struct mx_map *map)
{
	struct mx_placement *pl = bd->pl;
	int r;

	for (uint32_t id = 0; id < map->max_osd; id++) {
		const struct mx_osd_info *o = &map->osds[id];
		int64_t below = -1;

		pl->osd_parent[id] = -1;
		pl->osd_w[id] = 0;
		pl->osd_class[id] = 0;
		if (!o->exists)
			continue;
		r = check_osd(o);
		if (r < 0)
			return r;
		r = add_class(pl, o->device_class);
		if (r < 0)
			return r;
		pl->osd_class[id] = (uint8_t)r;
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
		if (o->nloc && o->in)
			pl->osd_w[id] = o->weight;
	}
	return 0;
}

/* List the roots, and give each OSD in the tree the index of its top
 * bucket in roots[] (-1 if that bucket is not of the root level). */
static int find_roots(struct mx_placement *pl)
{
	_cleanup_free_ int32_t *index = NULL;

	pl->roots =
	    calloc(pl->n_buckets ? pl->n_buckets : 1, sizeof(*pl->roots));
	index = calloc(pl->n_buckets ? pl->n_buckets : 1, sizeof(*index));
	if (!pl->roots || !index)
		return -ENOMEM;
	for (uint32_t b = 0; b < pl->n_buckets; b++) {
		index[b] = -1;
		if (pl->buckets[b].level == MX_LEVEL_ROOT) {
			index[b] = (int32_t)pl->n_roots;
			pl->roots[pl->n_roots++] = b;
		}
	}
	for (uint32_t id = 0; id < pl->max_osd; id++) {
		int32_t b = pl->osd_parent[id];

		pl->osd_root[id] = -1;
		if (b < 0)
			continue;
		while (pl->buckets[b].parent >= 0)
			b = pl->buckets[b].parent;
		pl->osd_root[id] = index[b];
	}
	return 0;
}

/* The lowest common ancestor of buckets a and b, which share a root:
 * levels grow strictly upwards, so the lower one climbs. */
static int32_t lca(const struct mx_placement *pl, int32_t a, int32_t b)
{
	while (a != b) {
		if (pl->buckets[a].level <= pl->buckets[b].level)
			a = pl->buckets[a].parent;
		else
			b = pl->buckets[b].parent;
	}
	return a;
}

/* Fill pl->bdom.  Levels grow strictly upwards. */
static int domains_of_buckets(struct mx_placement *pl)
{
	pl->bdom = malloc((pl->n_buckets ? pl->n_buckets : 1) * MX_LEVEL_COUNT *
			  sizeof(*pl->bdom));
	if (!pl->bdom)
		return -ENOMEM;
	for (uint32_t b = 0; b < pl->n_buckets; b++) {
		for (unsigned l = 0; l < MX_LEVEL_COUNT; l++) {
			int32_t d = ITEM_NONE;

			for (int32_t a = (int32_t)b;
			     a >= 0 && pl->buckets[a].level <= l;
			     a = pl->buckets[a].parent)
				d = bucket_item((uint32_t)a);
			pl->bdom[(size_t)b * MX_LEVEL_COUNT + l] = d;
		}
	}
	return 0;
}

/*
 * Build the trie of ids[0..n) (increasing, n >= 1, weights w[]) into
 * pl->nodes from pl->n_nodes on, in preorder, and return its top's index.
 * A node splits where its first and last ids first differ.  Recursion
 * depth <= PL_ID_BITS + 1.
 */
static uint32_t build_trie(struct mx_placement *pl, const uint32_t *ids,
			   const uint32_t *w, uint32_t n)
{
	uint32_t i = pl->n_nodes++, k = 0, bit, right;
	unsigned d;

	if (n == 1) {
		pl->nodes[i] = (struct pl_node){ .wmax = w[0],
						 .prefix = ids[0],
						 .lca = pl->osd_parent[ids[0]],
						 .depth = PL_ID_BITS };
		return i;
	}
	d = (unsigned)__builtin_clz(ids[0] ^ ids[n - 1]) - (32 - PL_ID_BITS);
	bit = 1u << (PL_ID_BITS - 1 - d);
	while (!(ids[k] & bit))
		k++;
	(void)build_trie(pl, ids, w, k);
	right = build_trie(pl, ids + k, w + k, n - k);
	pl->nodes[i] = (struct pl_node){
		.wmax = MX_MAX(pl->nodes[i + 1].wmax, pl->nodes[right].wmax),
		.prefix = ids[0] & ~(2 * bit - 1),
		.right = right,
		.lca = lca(pl, pl->nodes[i + 1].lca, pl->nodes[right].lca),
		.depth = (uint8_t)d,
	};
	return i;
}

/*
 * Count col->ndom: the distinct failure domains of each level among the
 * column's OSDs ids[0..n).  An OSD is its own domain for the levels below
 * its parent's; a bucket is the domain for the levels from its own up to
 * below its parent's (all the rest for a top bucket).  stamp[] marks the
 * buckets counted for this column with token.
 */
static void count_domains(const struct mx_placement *pl, struct pl_column *col,
			  const uint32_t *ids, uint32_t n, int32_t *stamp,
			  int32_t token)
{
	for (uint32_t k = 0; k < n; k++) {
		int32_t b = pl->osd_parent[ids[k]];

		for (unsigned l = 0; l < pl->buckets[b].level; l++)
			col->ndom[l]++;
		for (; b >= 0 && stamp[b] != token; b = pl->buckets[b].parent) {
			int32_t p = pl->buckets[b].parent;
			unsigned top =
			    p >= 0 ? pl->buckets[p].level : MX_LEVEL_COUNT;

			stamp[b] = token;
			for (unsigned l = pl->buckets[b].level; l < top; l++)
				col->ndom[l]++;
		}
	}
}

/*
 * Build every column: each OSD that may take data (weight > 0, under a
 * root) goes to the column of its root for class 0 and, if it has a
 * class, to that class's, in increasing id order.
 */
static int build_columns(struct mx_placement *pl)
{
	size_t ncol = (size_t)pl->n_roots * pl->n_classes;
	_cleanup_free_ uint32_t *start = NULL, *fill = NULL, *ids = NULL,
				*ws = NULL;
	_cleanup_free_ int32_t *stamp = NULL;
	uint32_t total;

	pl->cols = calloc(ncol ? ncol : 1, sizeof(*pl->cols));
	start = calloc(ncol + 1, sizeof(*start));
	fill = calloc(ncol + 1, sizeof(*fill));
	stamp = calloc(pl->n_buckets ? pl->n_buckets : 1, sizeof(*stamp));
	if (!pl->cols || !start || !fill || !stamp)
		return -ENOMEM;
	for (uint32_t id = 0; id < pl->max_osd; id++) {
		size_t c0 = (size_t)pl->osd_root[id] * pl->n_classes;

		if (!pl->osd_w[id] || pl->osd_root[id] < 0)
			continue;
		start[c0 + 1]++;
		if (pl->osd_class[id])
			start[c0 + pl->osd_class[id] + 1]++;
	}
	for (size_t c = 0; c < ncol; c++)
		start[c + 1] += start[c];
	total = start[ncol];
	memcpy(fill, start, (ncol + 1) * sizeof(*fill));
	ids = malloc((total ? total : 1) * sizeof(*ids));
	ws = malloc((total ? total : 1) * sizeof(*ws));
	/* A trie of n leaves has 2n - 1 nodes. */
	pl->nodes =
	    malloc((total ? 2 * (size_t)total : 1) * sizeof(*pl->nodes));
	if (!ids || !ws || !pl->nodes)
		return -ENOMEM;
	for (uint32_t id = 0; id < pl->max_osd; id++) {
		size_t c0 = (size_t)pl->osd_root[id] * pl->n_classes;
		uint32_t k;

		if (!pl->osd_w[id] || pl->osd_root[id] < 0)
			continue;
		k = fill[c0]++;
		ids[k] = id;
		ws[k] = pl->osd_w[id];
		if (pl->osd_class[id]) {
			k = fill[c0 + pl->osd_class[id]]++;
			ids[k] = id;
			ws[k] = pl->osd_w[id];
		}
	}
	for (size_t c = 0; c < ncol; c++) {
		struct pl_column *col = &pl->cols[c];
		uint32_t n = start[c + 1] - start[c];

		col->top = -1;
		if (!n)
			continue;
		col->top =
		    (int32_t)build_trie(pl, ids + start[c], ws + start[c], n);
		for (uint32_t k = start[c]; k < start[c + 1]; k++)
			col->w += ws[k];
		count_domains(pl, col, ids + start[c], n, stamp,
			      (int32_t)c + 1);
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
	size_t n;
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
	n = map->max_osd ? map->max_osd : 1;
	pl->osd_parent = malloc(n * sizeof(*pl->osd_parent));
	pl->osd_root = malloc(n * sizeof(*pl->osd_root));
	pl->osd_w = malloc(n * sizeof(*pl->osd_w));
	pl->osd_class = malloc(n * sizeof(*pl->osd_class));
	if (!bd.table || !pl->osd_parent || !pl->osd_root || !pl->osd_w ||
	    !pl->osd_class) {
		r = -ENOMEM;
		goto out;
	}
	memset(bd.table, 0xff, cap * sizeof(*bd.table));
	r = add_locations(&bd, map);
	if (r >= 0)
		r = find_roots(pl);
	if (r >= 0)
		r = domains_of_buckets(pl);
	if (r >= 0)
		r = build_columns(pl);
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
	free(pl->bdom);
	free(pl->roots);
	free(pl->osd_parent);
	free(pl->osd_root);
	free(pl->osd_w);
	free(pl->osd_class);
	free(pl->cols);
	free(pl->nodes);
	free(pl->upmaps);
	free(pl);
}

int mx_pg_acting_memo(struct mx_acting_memo *memo, const struct mx_placement *pl,
		      const struct mx_map *map, const struct mx_pool *pool, uint32_t pg,
		      int32_t *osds, int max)
{
	uint32_t h = ((uint32_t)pool->id * 0x9e3779b1u) ^ pg;
	struct mx_acting_entry *e = &memo->e[h % MX_ACTING_MEMO_SLOTS];
	int n;

	if (map->epoch == 0 || max < MX_MAX_SIZE)
		return mx_pg_acting(pl, map, pool, pg, osds, max);
	if (e->epoch == map->epoch && e->pool == pool->id && e->pg == pg) {
		memcpy(osds, e->osds, (size_t)e->n * sizeof(*osds));
		return e->n;
	}
	n = mx_pg_acting(pl, map, pool, pg, osds, max); /* at most max */
	if (n > 0) {
		e->epoch = map->epoch;
		e->pool = pool->id;
		e->pg = pg;
		e->n = n;
		memcpy(e->osds, osds, (size_t)n * sizeof(*osds));
	}
	return n;
}

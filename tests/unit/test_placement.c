/*
 * Unit tests of lib/placement.c and lib/balancer.c on simulated cluster
 * maps of up to 1000 OSDs (and one of 400 OSDs scattered over all 2^16
 * ids): the fixed-point logarithm against libm, object -> PG hashing,
 * golden values, the rule's fast search against its slow definition,
 * balance before and after the upmap balancer, data movement when an OSD
 * is added (at most 1.2 times the optimum) or reweighted (only to or from
 * that OSD), failure domains, device classes, acting sets, upmaps
 * (validity, encoding) and errors.  The measured numbers (balance spread, upmap counts, movement
 * ratios, time per PG) are printed; docs/placement.md quotes them.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balancer.h"
#include "buf.h"
#include "check.h"
#include "placement.h"
#include "util.h"

/* Test hooks in placement.c. */
uint64_t mx_placement_log2_test(const struct mx_placement *pl, uint64_t u,
				uint64_t *lower);
uint64_t mx_placement_value_test(const struct mx_placement *pl,
				 const struct mx_pool *pool, uint32_t pg,
				 int32_t osd);

#define W1 MX_WEIGHT_ONE
#define W2 (2 * MX_WEIGHT_ONE)

/* ---- Building simulated maps ------------------------------------------- */

static struct mx_map *map_new(uint32_t max_osd)
{
	struct mx_map *m = mx_xcalloc(1, sizeof(*m));

	m->max_osd = max_osd;
	m->osds = mx_xcalloc(max_osd, sizeof(*m->osds));
	return m;
}

/* Frees what map_new(), pool_add() and mx_map_set_upmaps() allocate. */
static void map_free(struct mx_map *m)
{
	mx_map_free(m);
}

/* A copy of m's OSDs (not its pools or upmaps) with room for extra more
 * OSDs (which do not exist). */
static struct mx_map *map_copy(const struct mx_map *m, uint32_t extra)
{
	struct mx_map *c = map_new(m->max_osd + extra);

	memcpy(c->osds, m->osds, m->max_osd * sizeof(*m->osds));
	return c;
}

static void loc_add(struct mx_osd_info *o, uint8_t level, const char *bucket)
{
	o->loc[o->nloc].level = level;
	snprintf(o->loc[o->nloc].name, MX_NAME_MAX, "%s", bucket);
	o->nloc++;
}

/* Make OSD id exist, up and in, at host/rack (either may be NULL) under
 * root "default". */
static void osd_set(struct mx_map *m, uint32_t id, uint32_t weight,
		    const char *host, const char *rack, const char *cls)
{
	struct mx_osd_info *o = &m->osds[id];

	memset(o, 0, sizeof(*o));
	o->exists = o->up = o->in = true;
	o->weight = weight;
	if (host)
		loc_add(o, MX_LEVEL_HOST, host);
	if (rack)
		loc_add(o, MX_LEVEL_RACK, rack);
	loc_add(o, MX_LEVEL_ROOT, "default");
	if (cls)
		snprintf(o->device_class, MX_CLASS_MAX, "%s", cls);
}

/* printf into one of 4 rotating static buffers. */
MX_PRINTF(1, 2) static const char *name(const char *fmt, ...)
{
	static char buf[4][MX_NAME_MAX];
	static unsigned next;
	char *b = buf[next++ % 4];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b, MX_NAME_MAX, fmt, ap);
	va_end(ap);
	return b;
}

/* hosts x per_host OSDs, host i in rack i / hosts_per_rack (no racks if 0);
 * OSD j of each host weighs 2.0 if j < heavy, else 1.0. */
static struct mx_map *cluster(unsigned hosts, unsigned per_host,
			      unsigned hosts_per_rack, unsigned heavy)
{
	struct mx_map *m = map_new(hosts * per_host);

	for (unsigned i = 0; i < hosts * per_host; i++) {
		unsigned h = i / per_host;

		osd_set(m, i, i % per_host < heavy ? W2 : W1, name("h%u", h),
			hosts_per_rack ? name("r%u", h / hosts_per_rack) : NULL,
			NULL);
	}
	return m;
}

/* n OSDs of weight 1.0 directly under root "default". */
static struct mx_map *flat(unsigned n)
{
	struct mx_map *m = map_new(n);

	for (unsigned i = 0; i < n; i++)
		osd_set(m, i, W1, NULL, NULL, NULL);
	return m;
}

static struct mx_placement *compile(const struct mx_map *m)
{
	struct mx_placement *pl = NULL;
	int r = mx_placement_new(m, &pl);

	CHECK_EQ_INT(r, 0);
	if (r < 0)
		exit(mx_check_done("placement"));
	return pl;
}

static struct mx_pool pool_make(int32_t id, uint8_t size, uint32_t pg_num,
				uint8_t fd, const char *cls)
{
	struct mx_pool p;

	mx_pool_init(&p);
	p.id = id;
	p.size = size;
	p.min_size = 1;
	p.pg_num = pg_num;
	p.failure_domain = fd;
	strcpy(p.name, "test");
	strcpy(p.root_name, "default");
	if (cls)
		snprintf(p.device_class, MX_CLASS_MAX, "%s", cls);
	return p;
}

/* Add pool p to m under a name of its own; returns the map's copy. */
static const struct mx_pool *pool_add(struct mx_map *m, struct mx_pool p)
{
	snprintf(p.name, MX_NAME_MAX, "pool%d", (int)p.id);
	CHECK_EQ_INT(mx_map_add_pool(m, &p), 0);
	return mx_map_pool_by_id(m, p.id);
}

static const char *host_of(const struct mx_map *m, int32_t id)
{
	return m->osds[id].nloc ? m->osds[id].loc[0].name : "";
}

static const char *bucket_of(const struct mx_map *m, int32_t id, uint8_t level)
{
	const struct mx_osd_info *o = &m->osds[id];

	for (unsigned k = 0; k < o->nloc; k++)
		if (o->loc[k].level == level)
			return o->loc[k].name;
	return NULL;
}

/* ---- Measuring ---------------------------------------------------------- */

/* Add each OSD's number of PG replicas in pool p to cnt[]; returns the
 * number of PGs that got fewer than p->size OSDs. */
static unsigned count_pgs(const struct mx_placement *pl,
			  const struct mx_pool *p, double *cnt)
{
	unsigned short_pgs = 0;

	for (uint32_t pg = 0; pg < p->pg_num; pg++) {
		int32_t osds[MX_MAX_SIZE];
		int n = mx_pg_up(pl, p, pg, osds, MX_MAX_SIZE);

		if (n != p->size)
			short_pgs++;
		for (int i = 0; i < n; i++)
			cnt[osds[i]] += 1;
	}
	return short_pgs;
}

/* z is (count - expected) / sqrt(expected) for one OSD. */
struct balance {
	double max_dev;  /* largest |count - expected| / expected */
	double within10; /* fraction of OSDs within +-10% of expected */
	double rms_z;    /* root mean square of z */
	double max_z;    /* largest |z| */
	double heavy;    /* count/expected of 2.0 OSDs over that of 1.0 */
	double mean;     /* expected count per 1.0 of weight */
};

/* Compare cnt[] (total replicas in all) with each eligible OSD's weight
 * share; eligible: exists, in, weight > 0, of class cls if given. */
static struct balance balance_of(const struct mx_map *m, const double *cnt,
				 double total, const char *cls)
{
	struct balance b = { 0 };
	double wsum = 0, ss = 0, sum1 = 0, sum2 = 0;
	unsigned n = 0, in10 = 0, n1 = 0, n2 = 0;

	for (uint32_t i = 0; i < m->max_osd; i++) {
		const struct mx_osd_info *o = &m->osds[i];

		if (o->exists && o->in &&
		    (!cls || !strcmp(o->device_class, cls)))
			wsum += o->weight;
	}
	for (uint32_t i = 0; i < m->max_osd; i++) {
		const struct mx_osd_info *o = &m->osds[i];
		double e, dev, z;

		if (!o->exists || !o->in || !o->weight ||
		    (cls && strcmp(o->device_class, cls)))
			continue;
		e = total * o->weight / wsum;
		dev = (cnt[i] - e) / e;
		z = (cnt[i] - e) / sqrt(e);
		b.max_dev = fmax(b.max_dev, fabs(dev));
		b.max_z = fmax(b.max_z, fabs(z));
		ss += z * z;
		in10 += fabs(dev) <= 0.10;
		n++;
		if (o->weight == W2) {
			sum2 += cnt[i] / e;
			n2++;
		} else {
			sum1 += cnt[i] / e;
			n1++;
		}
	}
	b.within10 = n ? (double)in10 / n : 0;
	b.rms_z = n ? sqrt(ss / n) : 0;
	b.heavy = n1 && n2 ? (sum2 / n2) / (sum1 / n1) : 1;
	b.mean = total * W1 / wsum;
	return b;
}

static void print_balance(const char *what, const struct balance *b)
{
	printf("placement: balance %s: %.0f replicas per 1.0 of weight, "
	       "max dev %.1f%%, %.1f%% of OSDs within +-10%%, "
	       "rms z %.3f, max z %.2f, 2.0/1.0 %.4f\n",
	       what, b->mean, 100 * b->max_dev, 100 * b->within10, b->rms_z,
	       b->max_z, b->heavy);
}

/*
 * The bounds a placement must meet that draws each PG independently in
 * proportion to weight: a count is then close to binomial, so its z score
 * (count - expected) / sqrt(expected) has mean square about 1 and is
 * rarely beyond 4.5 even over 1000 OSDs (about 0.7% of the time for a
 * random map; these maps are fixed, so the values are too).
 */
static void check_binomial(const struct balance *b)
{
	CHECK(b->rms_z < 1.15);
	CHECK(b->max_z < 4.5);
	CHECK(b->heavy > 0.98 && b->heavy < 1.02);
}

static bool same_up(const int32_t *a, int na, const int32_t *b, int nb)
{
	return na == nb && !memcmp(a, b, (size_t)na * sizeof(*a));
}

static bool contains(const int32_t *a, int n, int32_t v)
{
	for (int i = 0; i < n; i++)
		if (a[i] == v)
			return true;
	return false;
}

/* ---- Tests --------------------------------------------------------------- */

/*
 * The fixed-point logarithm of the 32-bit draws matches libm, is strictly
 * decreasing, and its cheap lower bound holds: for every u below 2^17 and
 * in the top 2^17 below 2^32 (where the draws that win lie), and for every
 * 4099th u in between.
 */
static void test_log2(void)
{
	struct mx_map *m = map_new(0);
	struct mx_placement *pl = compile(m);
	const uint64_t top = 1ull << 32;
	uint64_t prev = UINT64_MAX, lower, u = 1;
	double worst = 0;
	unsigned bad = 0, bad_order = 0, bad_bound = 0, n = 0;

	while (u <= top) {
		uint64_t l = mx_placement_log2_test(pl, u, &lower);
		/* -log2(u / 2^32) * 2^48, exact to about 1 unit in double. */
		double want = (32.0 - log2((double)u)) * 281474976710656.0;
		double err = fabs((double)l - want);

		worst = fmax(worst, err);
		bad += err > 8;
		bad_order += l >= prev;
		bad_bound += lower > l;
		prev = l;
		n++;
		u += u < (1u << 17) || u >= top - (1u << 17) ? 1 : 4099;
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(bad_order, 0);
	CHECK_EQ_INT(bad_bound, 0);
	CHECK(mx_placement_log2_test(pl, top, &lower) == 0);
	CHECK(mx_placement_log2_test(pl, 1, &lower) == 32ull << 48);
	printf("placement: log2 of 32-bit draws: worst error %.1f units of "
	       "2^-48 over %u values\n",
	       worst, n);
	mx_placement_free(pl);
	map_free(m);
}

static void test_object_hash(void)
{
	static const struct {
		const char *name;
		uint32_t hash;
	} golden[] = {
		{ "", 0xade950e5u },
		{ "rbd_data.1234.0000000000000000", 0x361b2ec6u },
		{ "vm-101-disk-0", 0x301bb357u },
		{ "a", 0x301a547du },
	};
	static const uint32_t pg_nums[] = {
		1, 2, 3, 7, 8, 100, 128, 1000, 4096, 65536,
	};
	struct mx_pool p = pool_make(1, 3, 1, MX_LEVEL_HOST, NULL);
	unsigned bad = 0, bad_split = 0;
	char buf[32];

	for (size_t i = 0; i < MX_ARRAY_SIZE(golden); i++)
		CHECK_EQ_INT(
		    mx_object_hash(golden[i].name, strlen(golden[i].name)),
		    golden[i].hash);
	p.pg_num = 100;
	CHECK_EQ_INT(mx_object_pg(&p, "vm-101-disk-0", 13), 87);
	/* Always below pg_num. */
	for (size_t k = 0; k < MX_ARRAY_SIZE(pg_nums); k++) {
		p.pg_num = pg_nums[k];
		for (unsigned i = 0; i < 20000; i++) {
			int len = snprintf(buf, sizeof(buf), "obj.%u", i);

			bad += mx_object_pg(&p, buf, (size_t)len) >= p.pg_num;
		}
	}
	CHECK_EQ_INT(bad, 0);
	/* Growing pg_num by one moves objects only into the new PG, so
	 * growing it splits PGs and never reshuffles the others. */
	for (uint32_t b = 1; b < 300; b++) {
		for (unsigned i = 0; i < 500; i++) {
			int len = snprintf(buf, sizeof(buf), "o%u", i);
			uint32_t before, after;

			p.pg_num = b;
			before = mx_object_pg(&p, buf, (size_t)len);
			p.pg_num = b + 1;
			after = mx_object_pg(&p, buf, (size_t)len);
			bad_split += after != before && after != b;
		}
	}
	CHECK_EQ_INT(bad_split, 0);
}

/* ---- The rule by its definition ----------------------------------------- */

__extension__ typedef unsigned __int128 u128;

/* An OSD in the reference ranking. */
struct ref_osd {
	uint64_t e; /* its value for the PG (mx_placement_value_test()) */
	uint32_t w; /* its weight */
	int32_t osd;
	int32_t dom; /* its failure domain (mx_placement_osd_domain()) */
};

/* By key e / w, exactly; equal keys by id. */
static int cmp_ref(const void *a, const void *b)
{
	const struct ref_osd *x = a, *y = b;
	u128 l = (u128)x->e * y->w, r = (u128)y->e * x->w;

	if (l != r)
		return l < r ? -1 : 1;
	return x->osd < y->osd ? -1 : x->osd > y->osd;
}

/*
 * The up set of PG pg of pool p by the rule's definition, the slow way:
 * every OSD that may hold the pool's data (elig[0..n), in any order, with
 * weights and domains filled in), ranked by value / weight, and the first
 * OSD of each failure domain taken until p->size are.  Returns the count.
 */
static int ref_up(const struct mx_placement *pl, const struct mx_pool *p,
		  uint32_t pg, struct ref_osd *elig, unsigned n, int32_t *out)
{
	int32_t taken[MX_MAX_SIZE];
	int k = 0;

	for (unsigned i = 0; i < n; i++)
		elig[i].e = mx_placement_value_test(pl, p, pg, elig[i].osd);
	qsort(elig, n, sizeof(*elig), cmp_ref);
	for (unsigned i = 0; i < n && k < p->size; i++) {
		if (contains(taken, k, elig[i].dom))
			continue;
		taken[k] = elig[i].dom;
		out[k++] = elig[i].osd;
	}
	return k;
}

/* PGs of pool p (the first npg) whose raw up set differs from ref_up(). */
static unsigned check_ref(const struct mx_placement *pl, const struct mx_map *m,
			  const struct mx_pool *p, uint32_t npg)
{
	struct ref_osd *elig = mx_xcalloc(m->max_osd + 1, sizeof(*elig));
	unsigned bad = 0, n = 0;

	/* Eligible: what mx_placement_osd_domain() (the upmap check) says. */
	for (uint32_t id = 0; id < m->max_osd; id++) {
		int32_t dom;

		if (mx_placement_osd_domain(pl, p, (int32_t)id, &dom) < 0)
			continue;
		elig[n++] = (struct ref_osd){ .w = m->osds[id].weight,
					      .osd = (int32_t)id,
					      .dom = dom };
	}
	for (uint32_t pg = 0; pg < npg && pg < p->pg_num; pg++) {
		int32_t up[MX_MAX_SIZE], want[MX_MAX_SIZE];
		int nu = mx_pg_up_raw(pl, p, pg, up, MX_MAX_SIZE);
		int nw = ref_up(pl, p, pg, elig, n, want);

		bad += !same_up(up, nu, want, nw);
	}
	free(elig);
	return bad;
}

/* A deterministic pseudo-random number below n (splitmix64). */
static uint32_t rnd(uint64_t *state, uint32_t n)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (uint32_t)((z ^ (z >> 31)) % n);
}

/*
 * The search (a branch and bound over the id trie, in bounded passes)
 * returns exactly the rule's definition: compare it with ref_up() on the
 * 1000-OSD map, on few and very unequal failure domains, and on a map of
 * 400 OSDs scattered over all 2^16 ids with weights from 2^-16 to 64,
 * OSDs out, of weight 0, missing or without a location, two roots, two
 * classes, hosts outside racks and OSDs directly under a root, for every
 * root, class, failure domain and sizes 1, 3 and 10.
 */
static void test_exact(void)
{
	static const uint8_t levels[] = { MX_LEVEL_OSD, MX_LEVEL_HOST,
					  MX_LEVEL_RACK, MX_LEVEL_ROOT };
	static const uint8_t sizes[] = { 1, 3, 10 };
	static const uint8_t fds[] = { MX_LEVEL_HOST, MX_LEVEL_OSD,
				       MX_LEVEL_RACK, MX_LEVEL_RACK };
	static const char *const classes[] = { NULL, "ssd", "hdd" };
	struct mx_map *m = cluster(100, 10, 10, 3);
	struct mx_placement *pl = compile(m);
	struct mx_pool p;
	unsigned bad = 0, pools = 0, pgs = 0;
	uint64_t rs = 42;

	for (size_t k = 0; k < 4; k++) {
		p = pool_make(21, k < 3 ? 3 : 10, 4096, fds[k], NULL);
		bad += check_ref(pl, m, &p, 256);
		pools++;
		pgs += 256;
	}
	mx_placement_free(pl);
	map_free(m);

	/* Hosts of 10, 10 and 1 (one OSD of weight 2^-16 among them). */
	m = cluster(3, 10, 0, 0);
	for (unsigned i = 21; i < 30; i++)
		m->osds[i].in = false;
	m->osds[5].weight = 1;
	pl = compile(m);
	for (uint8_t size = 1; size <= 4; size++) {
		p = pool_make(22, size, 4096, MX_LEVEL_HOST, NULL);
		bad += check_ref(pl, m, &p, 512);
		pools++;
		pgs += 512;
	}
	mx_placement_free(pl);
	map_free(m);

	/* Scattered ids. */
	m = map_new(MX_MAX_OSDS);
	for (unsigned i = 0; i < 400; i++) {
		/* The lowest and the highest id, then any. */
		uint32_t id =
		    i < 2 ? i * (MX_MAX_OSDS - 1) : rnd(&rs, MX_MAX_OSDS);
		uint32_t h = rnd(&rs, 60), kind = rnd(&rs, 20);
		struct mx_osd_info *o = &m->osds[id];

		osd_set(m, id, 1 + rnd(&rs, 64 * W1),
			kind == 0 ? NULL : name("h%u", h),
			h < 40 ? name("r%u", h / 8) : NULL,
			classes[rnd(&rs, 3)]);
		/* Racks 0 and 3, and some hosts outside racks, under the
		 * other root (a bucket has one parent). */
		if (h < 40 ? (h / 8) % 3 == 0 : h % 7 == 0)
			strcpy(o->loc[o->nloc - 1].name, "other");
		if (kind == 1)
			o->in = false;
		if (kind == 2)
			o->weight = 0;
		if (kind == 3)
			o->nloc = 0;
		if (kind == 4)
			o->exists = false;
		if (kind == 5)
			o->weight = 1;
	}
	pl = compile(m);
	for (size_t r = 0; r < 2; r++) {
		for (size_t c = 0; c < MX_ARRAY_SIZE(classes); c++) {
			for (size_t l = 0; l < MX_ARRAY_SIZE(levels); l++) {
				for (size_t z = 0; z < MX_ARRAY_SIZE(sizes);
				     z++) {
					p = pool_make((int32_t)(100 + pools),
						      sizes[z], 4096, levels[l],
						      classes[c]);
					if (r)
						strcpy(p.root_name, "other");
					bad += check_ref(pl, m, &p, 48);
					pools++;
					pgs += 48;
				}
			}
		}
	}
	mx_placement_free(pl);
	map_free(m);
	CHECK_EQ_INT(bad, 0);
	printf("placement: search equals the rule's definition: %u PGs of %u "
	       "pools, %u differ\n",
	       pgs, pools, bad);
}

/* Growing a pool's size only appends replicas: rank k's attempts depend
 * on k and the ranks before it, not on the size. */
static void test_size_prefix(void)
{
	struct mx_map *m = cluster(10, 4, 0, 1);
	struct mx_placement *pl = compile(m);
	unsigned bad = 0;

	for (uint8_t size = 1; size < 8; size++) {
		struct mx_pool a =
		    pool_make(3, size, 1024, MX_LEVEL_HOST, NULL);
		struct mx_pool b =
		    pool_make(3, size + 1, 1024, MX_LEVEL_HOST, NULL);

		for (uint32_t pg = 0; pg < a.pg_num; pg++) {
			int32_t ua[MX_MAX_SIZE], ub[MX_MAX_SIZE];
			int na = mx_pg_up(pl, &a, pg, ua, MX_MAX_SIZE);
			int nb = mx_pg_up(pl, &b, pg, ub, MX_MAX_SIZE);

			bad += na != size || nb != size + 1 ||
			       !same_up(ua, na, ub, na);
		}
	}
	CHECK_EQ_INT(bad, 0);
	mx_placement_free(pl);
	map_free(m);
}

/* A digest of the up sets of pg_num PGs of pool p (FNV-1a over the ids). */
static uint64_t up_digest(const struct mx_placement *pl,
			  const struct mx_pool *p)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (uint32_t pg = 0; pg < p->pg_num; pg++) {
		int32_t up[MX_MAX_SIZE];
		int n = mx_pg_up(pl, p, pg, up, MX_MAX_SIZE);

		for (int i = 0; i < n; i++)
			h = (h ^ (uint32_t)up[i]) * 0x100000001b3ull;
		h = (h ^ 0xffffffffu) * 0x100000001b3ull;
	}
	return h;
}

/*
 * Fixed maps give fixed results: any change of the algorithm, the hashes
 * or the seeds shows here (and would move data in every cluster).  Pinned:
 * the up sets of 8 PGs of a small map, the values of four OSD ids for one
 * PG (the top-down generation, including ids far above any map here), and
 * digests of the up sets of 4096 PGs on the 1000-OSD map with racks for
 * the host and the rack domain (the search and its bounds).
 */
static void test_golden(void)
{
	static const int32_t want_host[8][3] = {
		{ 3, 7, 0 }, { 1, 5, 6 }, { 3, 1, 6 }, { 0, 6, 2 },
		{ 0, 5, 3 }, { 3, 1, 6 }, { 3, 4, 7 }, { 3, 0, 5 },
	};
	static const int32_t want_osd[8][2] = {
		{ 3, 6 }, { 1, 2 }, { 1, 5 }, { 3, 6 },
		{ 6, 7 }, { 2, 6 }, { 4, 0 }, { 6, 4 },
	};
	static const struct {
		int32_t osd;
		uint64_t value;
	} want_value[] = {
		{ 0, 0x004402c4ca5af1aaull },
		{ 1, 0x00dcb88c0fbb47aaull },
		{ 999, 0x00c12e72e85a0810ull },
		{ 65535, 0x00287880d7e35c60ull },
	};
	const uint64_t want_digest_host = 0xc986d11c9598b10cull;
	const uint64_t want_digest_rack = 0x529358dd71f04d72ull;
	struct mx_map *m = map_new(8);
	struct mx_placement *pl;
	struct mx_pool ph = pool_make(1, 3, 64, MX_LEVEL_HOST, NULL);
	struct mx_pool po = pool_make(2, 2, 64, MX_LEVEL_OSD, NULL);
	uint64_t d;

	for (unsigned i = 0; i < 8; i++)
		osd_set(m, i, i % 3 ? W1 : W2, name("host%u", i / 2),
			name("rack%u", i / 4), NULL);
	pl = compile(m);
	for (uint32_t pg = 0; pg < 8; pg++) {
		int32_t up[MX_MAX_SIZE];
		int n = mx_pg_up(pl, &ph, pg, up, MX_MAX_SIZE);

		CHECK_EQ_INT(n, 3);
		for (int i = 0; i < 3 && i < n; i++)
			CHECK_EQ_INT(up[i], want_host[pg][i]);
		n = mx_pg_up(pl, &po, pg, up, MX_MAX_SIZE);
		CHECK_EQ_INT(n, 2);
		for (int i = 0; i < 2 && i < n; i++)
			CHECK_EQ_INT(up[i], want_osd[pg][i]);
	}
	for (size_t i = 0; i < MX_ARRAY_SIZE(want_value); i++) {
		uint64_t v =
		    mx_placement_value_test(pl, &ph, 0, want_value[i].osd);

		CHECK(v == want_value[i].value);
	}
	mx_placement_free(pl);
	map_free(m);

	m = cluster(100, 10, 10, 3);
	pl = compile(m);
	ph = pool_make(1, 3, 4096, MX_LEVEL_HOST, NULL);
	d = up_digest(pl, &ph);
	CHECK(d == want_digest_host);
	ph.failure_domain = MX_LEVEL_RACK;
	d = up_digest(pl, &ph);
	CHECK(d == want_digest_rack);
	mx_placement_free(pl);
	map_free(m);
}

/* ---- Upmaps and the balancer -------------------------------------------- */

static bool upmap_eq(const struct mx_pg_upmap *a, const struct mx_pg_upmap *b)
{
	if (a->pool != b->pool || a->pg != b->pg || a->n != b->n)
		return false;
	for (unsigned k = 0; k < a->n; k++)
		if (a->from[k] != b->from[k] || a->to[k] != b->to[k])
			return false;
	return true;
}

static bool upmaps_eq(const struct mx_pg_upmap *a, uint32_t na,
		      const struct mx_pg_upmap *b, uint32_t nb)
{
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++)
		if (!upmap_eq(&a[i], &b[i]))
			return false;
	return true;
}

/* Whether OSDs a and b share their bucket of the given level (OSD level:
 * are the same OSD). */
static bool same_domain(const struct mx_map *m, int32_t a, int32_t b,
			uint8_t level)
{
	const char *x, *y;

	if (level == MX_LEVEL_OSD)
		return a == b;
	x = bucket_of(m, a, level);
	y = bucket_of(m, b, level);
	return x && y && !strcmp(x, y);
}

/*
 * Run the balancer on pool (-1: every pool) of m with a band of +-10% and
 * store the result in m.  Checks what any result must satisfy: the output
 * is sorted by (pool, pg) without duplicates, every pair of it applies to
 * the rule's result, and a second run on the same map gives the same
 * upmaps (the balancer is deterministic).  Prints what it did.
 */
static struct mx_balance_stats balance_map(struct mx_map *m, int32_t pool,
					   const char *what)
{
	struct mx_balance_stats st = { 0 };
	struct mx_pg_upmap *u = NULL, *u2 = NULL;
	uint32_t n = 0, n2 = 0;
	struct mx_placement *pl = compile(m);
	unsigned bad = 0;
	uint64_t t0, t1;

	t0 = mx_now_ns();
	CHECK_EQ_INT(mx_balance(m, pool, UINT32_MAX, 0.10, &u, &n, &st), 0);
	t1 = mx_now_ns();
	CHECK_EQ_INT(mx_balance(m, pool, UINT32_MAX, 0.10, &u2, &n2, NULL), 0);
	CHECK(upmaps_eq(u, n, u2, n2));
	CHECK_EQ_INT(st.n_upmaps, n);
	for (uint32_t i = 0; i < n; i++) {
		const struct mx_pool *p = mx_map_pool_by_id(m, u[i].pool);
		int32_t raw[MX_MAX_SIZE];
		int nr;

		bad += i > 0 && (u[i - 1].pool > u[i].pool ||
				 (u[i - 1].pool == u[i].pool &&
				  u[i - 1].pg >= u[i].pg));
		bad += !p || (pool >= 0 && u[i].pool != pool);
		if (!p)
			continue;
		nr = mx_pg_up_raw(pl, p, u[i].pg, raw, MX_MAX_SIZE);
		bad += mx_pg_upmap_apply(pl, p, &u[i], raw, nr) !=
		       (1 << u[i].n) - 1;
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(mx_map_set_upmaps(m, pool, u, n), 0);
	printf("placement: balancer %s: %.1f ms, %u moves, %u upmaps "
	       "(%u pairs), %u pairs dropped, max dev raw %.1f%%, before "
	       "%.1f%%, after %.1f%%, %u OSDs outside +-10%%\n",
	       what, (double)(t1 - t0) / 1e6, st.moves, st.n_upmaps,
	       st.n_pairs, st.dropped, 100 * st.max_dev_raw,
	       100 * st.max_dev_before, 100 * st.max_dev_after,
	       st.outside_after);
	free(u);
	free(u2);
	mx_placement_free(pl);
	return st;
}

/*
 * The up sets of pool p of m with its upmaps: add each OSD's replica
 * count to cnt[], and check that every PG has p->size OSDs in distinct
 * failure domains, that a second placement compiled from m gives the same
 * sets (placement with upmaps is deterministic), and that a PG without an
 * upmap gets the rule's own result.  Returns the number of PGs whose set
 * differs from the rule's.
 */
static unsigned count_mapped(const struct mx_map *m, const struct mx_pool *p,
			     double *cnt)
{
	struct mx_placement *a = compile(m), *b = compile(m);
	unsigned bad = 0, mapped = 0;

	for (uint32_t pg = 0; pg < p->pg_num; pg++) {
		int32_t up[MX_MAX_SIZE], again[MX_MAX_SIZE], raw[MX_MAX_SIZE];
		int n = mx_pg_up(a, p, pg, up, MX_MAX_SIZE);
		int n2 = mx_pg_up(b, p, pg, again, MX_MAX_SIZE);
		int nr = mx_pg_up_raw(a, p, pg, raw, MX_MAX_SIZE);

		bad += n != p->size || !same_up(up, n, again, n2);
		bad += !mx_map_upmap(m, p->id, pg) && !same_up(up, n, raw, nr);
		mapped += !same_up(up, n, raw, nr);
		for (int i = 0; i < n; i++) {
			cnt[up[i]] += 1;
			for (int j = 0; j < i; j++)
				bad += same_domain(m, up[i], up[j],
						   p->failure_domain);
		}
	}
	CHECK_EQ_INT(bad, 0);
	mx_placement_free(a);
	mx_placement_free(b);
	return mapped;
}

/*
 * Balance at 100 PG replicas per 1.0 of weight.  Straw2 draws each PG on
 * its own, so a raw count is binomial: +-10% at one sigma, and about 35%
 * for the worst of 1000 OSDs (docs/placement.md).  The raw spread is
 * printed, and checked only against the binomial bounds and for weight
 * 2.0 OSDs getting twice the data.  After mx_balance() every OSD must be
 * within +-10% of its weight share.  Where the mean is large (about 2000
 * replicas per OSD) the raw placement meets +-10% on its own.
 */
static void test_balance(void)
{
	struct mx_map *m = cluster(100, 10, 10, 3);
	struct mx_placement *pl = compile(m);
	/* Total weight 1300: 130000 replicas is 100 per 1.0 OSD. */
	struct mx_pool p = pool_make(5, 3, 130000 / 3, MX_LEVEL_HOST, NULL);
	double *cnt = mx_xcalloc(1000, sizeof(*cnt));
	struct balance b;
	uint64_t t0, t1;
	unsigned mapped;

	t0 = mx_now_ns();
	CHECK_EQ_INT(count_pgs(pl, &p, cnt), 0);
	t1 = mx_now_ns();
	printf("placement: time: %.2f us per PG "
	       "(1000 OSDs, 100 hosts, 10 racks, size 3)\n",
	       (double)(t1 - t0) / 1e3 / p.pg_num);
	b = balance_of(m, cnt, 3.0 * p.pg_num, NULL);
	print_balance("1000 OSDs host domain, raw", &b);
	check_binomial(&b);
	mx_placement_free(pl);

	(void)pool_add(m, p);
	(void)balance_map(m, p.id, "1000 OSDs host domain");
	memset(cnt, 0, 1000 * sizeof(*cnt));
	mapped = count_mapped(m, &p, cnt);
	b = balance_of(m, cnt, 3.0 * p.pg_num, NULL);
	print_balance("1000 OSDs host domain, balanced", &b);
	printf("placement: balanced: %u of %u PGs (%.1f%%) differ from the "
	       "rule\n", mapped, p.pg_num, 100.0 * mapped / p.pg_num);
	CHECK(b.max_dev <= 0.10);
	/* Timing with upmaps: a lookup per PG, an upmap for a few. */
	pl = compile(m);
	memset(cnt, 0, 1000 * sizeof(*cnt));
	t0 = mx_now_ns();
	CHECK_EQ_INT(count_pgs(pl, &p, cnt), 0);
	t1 = mx_now_ns();
	printf("placement: time with upmaps: %.2f us per PG\n",
	       (double)(t1 - t0) / 1e3 / p.pg_num);
	mx_placement_free(pl);

	/* The same map, a second pool with rack domain.  Setting its upmaps
	 * leaves those of pool 5 alone. */
	{
		uint32_t before = m->n_upmaps;

		p = pool_make(15, 3, 130000 / 3, MX_LEVEL_RACK, NULL);
		(void)pool_add(m, p);
		pl = compile(m);
		memset(cnt, 0, 1000 * sizeof(*cnt));
		CHECK_EQ_INT(count_pgs(pl, &p, cnt), 0);
		b = balance_of(m, cnt, 3.0 * p.pg_num, NULL);
		print_balance("1000 OSDs rack domain, raw", &b);
		check_binomial(&b);
		mx_placement_free(pl);
		(void)balance_map(m, p.id, "1000 OSDs rack domain");
		CHECK(m->n_upmaps > before);
		memset(cnt, 0, 1000 * sizeof(*cnt));
		(void)count_mapped(m, &p, cnt);
		b = balance_of(m, cnt, 3.0 * p.pg_num, NULL);
		print_balance("1000 OSDs rack domain, balanced", &b);
		CHECK(b.max_dev <= 0.10);
		/* Pool 5 is still balanced. */
		p = *mx_map_pool_by_id(m, 5);
		memset(cnt, 0, 1000 * sizeof(*cnt));
		(void)count_mapped(m, &p, cnt);
		b = balance_of(m, cnt, 3.0 * p.pg_num, NULL);
		CHECK(b.max_dev <= 0.10);
	}
	map_free(m);

	/* 10 OSDs, flat, failure domain osd, 100 replicas each. */
	m = flat(10);
	pl = compile(m);
	p = pool_make(6, 3, 1000 / 3, MX_LEVEL_OSD, NULL);
	memset(cnt, 0, 1000 * sizeof(*cnt));
	CHECK_EQ_INT(count_pgs(pl, &p, cnt), 0);
	b = balance_of(m, cnt, 3.0 * p.pg_num, NULL);
	print_balance("10 OSDs osd domain, raw", &b);
	check_binomial(&b);
	mx_placement_free(pl);
	(void)pool_add(m, p);
	(void)balance_map(m, p.id, "10 OSDs osd domain");
	memset(cnt, 0, 1000 * sizeof(*cnt));
	(void)count_mapped(m, &p, cnt);
	b = balance_of(m, cnt, 3.0 * p.pg_num, NULL);
	print_balance("10 OSDs osd domain, balanced", &b);
	CHECK(b.max_dev <= 0.10);
	map_free(m);

	/* 100 OSDs in 10 hosts, mixed weights, at the largest pg_num: about
	 * 1500 (1.0) and 3000 (2.0) replicas per OSD.  Here every OSD is
	 * within +-10% of its share. */
	m = cluster(10, 10, 0, 3);
	pl = compile(m);
	p = pool_make(7, 3, MX_MAX_PG_NUM, MX_LEVEL_HOST, NULL);
	memset(cnt, 0, 1000 * sizeof(*cnt));
	CHECK_EQ_INT(count_pgs(pl, &p, cnt), 0);
	b = balance_of(m, cnt, 3.0 * p.pg_num, NULL);
	print_balance("100 OSDs host domain", &b);
	check_binomial(&b);
	CHECK(b.max_dev <= 0.10);
	mx_placement_free(pl);
	map_free(m);

	/* 1000 OSDs of 1.0 in 100 hosts, 10 pools of 65536 PGs: about 2000
	 * replicas per OSD, and every OSD within +-10%. */
	m = cluster(100, 10, 10, 0);
	pl = compile(m);
	memset(cnt, 0, 1000 * sizeof(*cnt));
	for (int32_t id = 10; id < 20; id++) {
		p = pool_make(id, 3, MX_MAX_PG_NUM, MX_LEVEL_HOST, NULL);
		CHECK_EQ_INT(count_pgs(pl, &p, cnt), 0);
	}
	b = balance_of(m, cnt, 30.0 * MX_MAX_PG_NUM, NULL);
	print_balance("1000 OSDs host domain, 10 pools", &b);
	check_binomial(&b);
	CHECK(b.max_dev <= 0.10);
	mx_placement_free(pl);
	map_free(m);
	free(cnt);
}

/* The up sets of every PG of some pools under one placement. */
struct sets {
	uint32_t npg;  /* PGs in all */
	uint8_t *n;    /* From mx_xcalloc(); the size of each PG's set */
	int32_t *osds; /* From mx_xcalloc(); MX_MAX_SIZE per PG */
};

static struct sets sets_of(const struct mx_map *m, const struct mx_pool *pools,
			   unsigned npools)
{
	struct mx_placement *pl = compile(m);
	struct sets s = { 0 };
	uint32_t g = 0;
	unsigned bad = 0;

	for (unsigned k = 0; k < npools; k++)
		s.npg += pools[k].pg_num;
	s.n = mx_xcalloc(s.npg, sizeof(*s.n));
	s.osds = mx_xcalloc((size_t)s.npg * MX_MAX_SIZE, sizeof(*s.osds));
	for (unsigned k = 0; k < npools; k++) {
		for (uint32_t pg = 0; pg < pools[k].pg_num; pg++, g++) {
			int n = mx_pg_up(pl, &pools[k], pg,
					 s.osds + (size_t)g * MX_MAX_SIZE,
					 MX_MAX_SIZE);

			bad += n < 0;
			s.n[g] = (uint8_t)(n > 0 ? n : 0);
		}
	}
	CHECK_EQ_INT(bad, 0);
	mx_placement_free(pl);
	return s;
}

static void sets_free(struct sets *s)
{
	free(s->n);
	free(s->osds);
}

/* What one change moved, between two struct sets of the same pools. */
struct move {
	uint64_t slots;   /* slots of the new sets */
	uint64_t moved;   /* slots of the new sets not in the old */
	uint64_t to_osd;  /* of those, on OSD `osd` */
	uint32_t changed; /* PGs whose (ordered) set changed */
	/* Changed PGs that did more than swap one OSD for `osd` (on the way
	 * in) or `osd` for one OSD (on the way out), or only reorder a set
	 * that holds `osd` before and after. */
	uint32_t odd;
};

static struct move compare_sets(const struct sets *a, const struct sets *b,
				int32_t osd)
{
	struct move mv = { 0 };

	for (uint32_t g = 0; g < b->npg; g++) {
		const int32_t *ua = a->osds + (size_t)g * MX_MAX_SIZE;
		const int32_t *ub = b->osds + (size_t)g * MX_MAX_SIZE;
		int na = a->n[g], nb = b->n[g], in = 0, out = 0;
		bool ina = contains(ua, na, osd), inb = contains(ub, nb, osd);

		mv.slots += (uint64_t)nb;
		for (int i = 0; i < nb; i++) {
			in += !contains(ua, na, ub[i]);
			mv.to_osd += !contains(ua, na, ub[i]) && ub[i] == osd;
		}
		for (int i = 0; i < na; i++)
			out += !contains(ub, nb, ua[i]);
		mv.moved += (uint64_t)in;
		if (same_up(ua, na, ub, nb))
			continue;
		mv.changed++;
		if (na != nb)
			mv.odd++;
		else if (in == 0)
			mv.odd += !(ina && inb); /* reordered */
		else
			mv.odd += !(in == 1 && out == 1 && ina != inb);
	}
	return mv;
}

/*
 * Add OSD `id` of weight w to m (which must have room for it) in the given
 * host and rack (NULL: none), compare the up sets of pools[0..npools) with
 * `old` (those of m without it), print, and take the OSD out of m again.
 * Returns the data moved over the optimum (the new OSD's weight share of
 * all slots), and checks that every changed PG swapped exactly one of its
 * OSDs for the new one.
 */
static double add_osd(struct mx_map *m, uint32_t id, uint32_t w,
		      const char *host, const char *rack,
		      const struct mx_pool *pools, unsigned npools,
		      const struct sets *old, const char *what)
{
	struct sets now;
	struct move mv;
	double wsum = 0, opt, ratio;

	osd_set(m, id, w, host, rack, NULL);
	for (uint32_t i = 0; i < m->max_osd; i++)
		if (m->osds[i].exists && m->osds[i].in)
			wsum += m->osds[i].weight;
	now = sets_of(m, pools, npools);
	mv = compare_sets(old, &now, (int32_t)id);
	opt = (double)mv.slots * w / wsum;
	ratio = (double)mv.moved / opt;
	printf("placement: movement %s: %.5f of slots moved, optimum %.5f, "
	       "ratio %.3f, %.1f%% of moved slots to the new OSD, %u PGs "
	       "changed, %u other than by one swap\n",
	       what, (double)mv.moved / (double)mv.slots,
	       opt / (double)mv.slots, ratio,
	       mv.moved ? 100.0 * (double)mv.to_osd / (double)mv.moved : 100,
	       mv.changed, mv.odd);
	CHECK_EQ_INT(mv.odd, 0);
	CHECK(mv.to_osd == mv.moved);
	CHECK(mv.changed > 0);
	sets_free(&now);
	memset(&m->osds[id], 0, sizeof(m->osds[id]));
	return ratio;
}

/*
 * Adding one OSD moves at most 1.2 times the optimum, in every layout:
 * flat, hosts, racks; the OSD in a new host, in an existing host, in a new
 * host of an existing rack, in a new rack; host and rack failure domains;
 * weights 1.0 and 2.0 mixed.  The rule moves exactly the PGs that take the
 * new OSD, one slot each (checked by add_osd()), so the ratio is the new
 * OSD's replica count over its weight share: 1 but for the binomial noise
 * of that count (1/sqrt(expected); 2 pools of 65536 PGs on 1000 OSDs
 * expect about 390, +-5%), and for a new failure domain that weighs far
 * less than the others, which size-3 placement picks more often than its
 * weight share when there are few domains (docs/placement.md: with 10
 * domains 1.12 times).
 */
static void test_add_osd(void)
{
	const uint8_t fd_host = MX_LEVEL_HOST, fd_rack = MX_LEVEL_RACK;
	struct mx_pool pools[6];
	struct mx_map *m0, *m;
	struct sets old;
	double ratio;

	/* N = 10: one host, failure domain osd. */
	m0 = map_new(10);
	for (unsigned i = 0; i < 10; i++)
		osd_set(m0, i, W1, "h0", NULL, NULL);
	m = map_copy(m0, 1);
	pools[0] = pool_make(1, 3, 16384, MX_LEVEL_OSD, NULL);
	old = sets_of(m, pools, 1);
	ratio = add_osd(m, 10, W1, "h0", NULL, pools, 1, &old,
			"10 -> 11 OSDs (osd domain)");
	CHECK(ratio <= 1.2);
	sets_free(&old);
	map_free(m);
	map_free(m0);

	/* N = 100: 100 OSDs under the root, failure domain osd. */
	m0 = flat(100);
	m = map_copy(m0, 1);
	pools[0] = pool_make(1, 3, 65536, MX_LEVEL_OSD, NULL);
	old = sets_of(m, pools, 1);
	ratio = add_osd(m, 100, W1, NULL, NULL, pools, 1, &old,
			"100 -> 101 OSDs (flat, osd domain)");
	CHECK(ratio <= 1.2);
	sets_free(&old);
	map_free(m);
	map_free(m0);

	/* N = 100 in 10 hosts, host domain: a new host (a light domain
	 * among 10, multi-pick: about 1.12), and into a host. */
	m0 = cluster(10, 10, 0, 0);
	m = map_copy(m0, 1);
	pools[0] = pool_make(1, 3, 65536, MX_LEVEL_HOST, NULL);
	old = sets_of(m, pools, 1);
	ratio = add_osd(m, 100, W1, "hnew", NULL, pools, 1, &old,
			"100 -> 101 OSDs (10 hosts, host domain, new host)");
	CHECK(ratio <= 1.2);
	ratio = add_osd(m, 100, W1, "h3", NULL, pools, 1, &old,
			"100 -> 101 OSDs (10 hosts, host domain, into a host)");
	CHECK(ratio <= 1.2);
	sets_free(&old);
	map_free(m);
	map_free(m0);

	/* N = 1000 in 100 hosts, host domain, 2 pools so that the new OSD
	 * expects ~390 slots, not ~195: a new host, and into a host of 10. */
	m0 = cluster(100, 10, 0, 0);
	m = map_copy(m0, 1);
	pools[0] = pool_make(1, 3, 65536, MX_LEVEL_HOST, NULL);
	pools[1] = pool_make(2, 3, 65536, MX_LEVEL_HOST, NULL);
	old = sets_of(m, pools, 2);
	ratio = add_osd(m, 1000, W1, "hnew", NULL, pools, 2, &old,
			"1000 -> 1001 OSDs (100 hosts, host domain, new host)");
	CHECK(ratio <= 1.2);
	ratio = add_osd(m, 1000, W1, "h7", NULL, pools, 2, &old,
			"1000 -> 1001 OSDs (100 hosts, host domain, into a "
			"host of 10)");
	CHECK(ratio <= 1.2);
	sets_free(&old);
	map_free(m);
	map_free(m0);

	/*
	 * N = 1000 in 10 racks of 10 hosts of 10, 3 OSDs of 2.0 per host
	 * (total weight 1300).  Host domain (pools 0, 1): into an existing
	 * host, a new host in an existing rack, a 2.0 OSD into an existing
	 * host.  Rack domain (pools 2 to 5, as a new rack of one OSD expects
	 * 1.12 times, and the noise is +-3.8% at 4 pools): into an existing
	 * host, a new host in an existing rack, a new rack.
	 */
	m0 = cluster(100, 10, 10, 3);
	m = map_copy(m0, 1);
	for (int32_t k = 0; k < 6; k++)
		pools[k] =
		    pool_make(k + 1, 3, 65536, k < 2 ? fd_host : fd_rack, NULL);
	old = sets_of(m, pools, 2);
	ratio = add_osd(m, 1000, W1, "h42", "r4", pools, 2, &old,
			"1000 -> 1001 OSDs (racks, mixed, host domain, into a "
			"host)");
	CHECK(ratio <= 1.2);
	ratio = add_osd(m, 1000, W1, "hnew", "r4", pools, 2, &old,
			"1000 -> 1001 OSDs (racks, mixed, host domain, new "
			"host in a rack)");
	CHECK(ratio <= 1.2);
	ratio = add_osd(m, 1000, W2, "h42", "r4", pools, 2, &old,
			"1000 -> 1001 OSDs (racks, mixed, host domain, a 2.0 "
			"OSD into a host)");
	CHECK(ratio <= 1.2);
	sets_free(&old);
	old = sets_of(m, pools + 2, 4);
	ratio = add_osd(m, 1000, W1, "h42", "r4", pools + 2, 4, &old,
			"1000 -> 1001 OSDs (racks, mixed, rack domain, into a "
			"host of a rack)");
	CHECK(ratio <= 1.2);
	ratio = add_osd(m, 1000, W1, "hnew", "r4", pools + 2, 4, &old,
			"1000 -> 1001 OSDs (racks, mixed, rack domain, new "
			"host in a rack)");
	CHECK(ratio <= 1.2);
	ratio = add_osd(m, 1000, W1, "hnew", "rnew", pools + 2, 4, &old,
			"1000 -> 1001 OSDs (racks, mixed, rack domain, new "
			"rack)");
	CHECK(ratio <= 1.2);
	sets_free(&old);
	map_free(m);
	map_free(m0);
}

/*
 * Reweight OSD id of m to weight w (or mark it out) and check what moved,
 * for any rule: every PG whose up set changed swapped exactly one OSD for
 * it (on the way in) or it for exactly one OSD (on the way out), or only
 * changed the order of a set that holds it before and after.  So data
 * moves only to or from that OSD, one replica per changed PG.
 */
static void reweight(struct mx_map *m, int32_t id, uint32_t w, bool out,
		     const struct mx_pool *p, const char *what)
{
	struct sets a = sets_of(m, p, 1), b;
	uint32_t old_w = m->osds[id].weight;
	unsigned held = 0;
	struct move mv;

	m->osds[id].weight = w;
	m->osds[id].in = !out;
	b = sets_of(m, p, 1);
	mv = compare_sets(&a, &b, id);
	for (uint32_t g = 0; g < b.npg; g++)
		held += contains(b.osds + (size_t)g * MX_MAX_SIZE, b.n[g], id);
	CHECK_EQ_INT(mv.odd, 0);
	CHECK(mv.changed > 0);
	if (out || !w)
		CHECK_EQ_INT(held, 0);
	printf("placement: reweight %s: %u of %u PGs changed, each by one "
	       "replica to or from OSD %d (%u other)\n",
	       what, mv.changed, p->pg_num, (int)id, mv.odd);
	m->osds[id].weight = old_w;
	m->osds[id].in = true;
	sets_free(&a);
	sets_free(&b);
}

static void test_reweight(void)
{
	struct mx_map *m = flat(100);
	struct mx_pool p = pool_make(3, 3, 16384, MX_LEVEL_OSD, NULL);

	reweight(m, 17, W1 + W1 / 2, false, &p, "flat osd 1.0 -> 1.5");
	reweight(m, 17, W1 / 2, false, &p, "flat osd 1.0 -> 0.5");
	reweight(m, 17, 0, false, &p, "flat osd 1.0 -> 0");
	reweight(m, 17, W1, true, &p, "flat osd out");
	map_free(m);

	/* Hierarchical rules: the same, although the host's (and rack's)
	 * weight changes with the OSD's: bucket weights play no part. */
	m = cluster(100, 10, 0, 3);
	p = pool_make(3, 3, 16384, MX_LEVEL_HOST, NULL);
	reweight(m, 423, W1 + W1 / 2, false, &p, "host domain 1.0 -> 1.5");
	reweight(m, 423, 0, false, &p, "host domain 1.0 -> 0");
	reweight(m, 421, W1, false, &p, "host domain 2.0 -> 1.0");
	p.failure_domain = MX_LEVEL_OSD;
	reweight(m, 423, W1 / 2, false, &p, "osd domain in hosts 1.0 -> 0.5");
	map_free(m);

	m = cluster(100, 10, 10, 3);
	p = pool_make(3, 3, 16384, MX_LEVEL_HOST, NULL);
	reweight(m, 423, W1 + W1 / 2, false, &p,
		 "racks, host domain 1.0 -> 1.5");
	reweight(m, 423, W1, true, &p, "racks, host domain out");
	p.failure_domain = MX_LEVEL_RACK;
	reweight(m, 423, 3 * W1, false, &p, "racks, rack domain 1.0 -> 3.0");
	reweight(m, 420, W1 / 4, false, &p, "racks, rack domain 2.0 -> 0.25");
	map_free(m);
}

static void test_failure_domains(void)
{
	struct mx_map *m = cluster(100, 10, 10, 3);
	struct mx_placement *pl = compile(m);
	static const uint8_t levels[] = { MX_LEVEL_HOST, MX_LEVEL_RACK };
	unsigned bad = 0;

	/* No two replicas of a PG share a host (rack). */
	for (size_t k = 0; k < MX_ARRAY_SIZE(levels); k++) {
		struct mx_pool p = pool_make(9, 3, 4096, levels[k], NULL);

		for (uint32_t pg = 0; pg < p.pg_num; pg++) {
			int32_t up[MX_MAX_SIZE];
			int n = mx_pg_up(pl, &p, pg, up, MX_MAX_SIZE);

			bad += n != 3;
			for (int i = 0; i < n; i++)
				for (int j = 0; j < i; j++)
					bad += !strcmp(
					    bucket_of(m, up[i], levels[k]),
					    bucket_of(m, up[j], levels[k]));
		}
	}
	CHECK_EQ_INT(bad, 0);
	/* 10 racks, size 10, rack domain: every rack once. */
	{
		struct mx_pool p = pool_make(9, 10, 512, MX_LEVEL_RACK, NULL);

		bad = 0;
		for (uint32_t pg = 0; pg < p.pg_num; pg++) {
			int32_t up[MX_MAX_SIZE];

			bad += mx_pg_up(pl, &p, pg, up, MX_MAX_SIZE) != 10;
		}
		CHECK_EQ_INT(bad, 0);
	}
	mx_placement_free(pl);
	map_free(m);

	/* 3 hosts, size 3: all three hosts in every PG.  2 hosts: 2 OSDs. */
	for (unsigned hosts = 2; hosts <= 3; hosts++) {
		struct mx_pool p = pool_make(4, 3, 1024, MX_LEVEL_HOST, NULL);

		m = cluster(hosts, 4, 0, 1);
		pl = compile(m);
		bad = 0;
		for (uint32_t pg = 0; pg < p.pg_num; pg++) {
			int32_t up[MX_MAX_SIZE];
			int n = mx_pg_up(pl, &p, pg, up, MX_MAX_SIZE);

			bad += n != (int)hosts;
			for (int i = 0; i < n; i++)
				for (int j = 0; j < i; j++)
					bad += !strcmp(host_of(m, up[i]),
						       host_of(m, up[j]));
		}
		CHECK_EQ_INT(bad, 0);
		mx_placement_free(pl);
		map_free(m);
	}

	/* 3 hosts of weights 10, 10 and 1, size 3: the light host is in
	 * every PG (CRUSH's random retries missed it in ~8% of PGs). */
	m = cluster(3, 10, 0, 0);
	for (unsigned i = 21; i < 30; i++)
		m->osds[i].in = false;
	pl = compile(m);
	{
		struct mx_pool p = pool_make(4, 3, 4096, MX_LEVEL_HOST, NULL);
		double cnt[30] = { 0 };

		bad = 0;
		for (uint32_t pg = 0; pg < p.pg_num; pg++) {
			int32_t up[MX_MAX_SIZE];
			int n = mx_pg_up(pl, &p, pg, up, MX_MAX_SIZE);

			bad += n != 3;
			for (int i = 0; i < n; i++)
				cnt[up[i]]++;
		}
		CHECK_EQ_INT(bad, 0);
		CHECK_EQ_INT(cnt[20], 4096);
	}
	mx_placement_free(pl);
	map_free(m);

	/* Skipped levels: some hosts in racks, some not, one OSD directly
	 * under the root.  A host outside any rack is its own rack-level
	 * domain; the lone OSD its own host- and rack-level domain. */
	m = map_new(41);
	for (unsigned i = 0; i < 40; i++)
		osd_set(m, i, W1, name("h%u", i / 4),
			i < 16 ? name("r%u", i / 8) : NULL, NULL);
	osd_set(m, 40, W1, NULL, NULL, NULL);
	pl = compile(m);
	{
		struct mx_pool p = pool_make(4, 3, 4096, MX_LEVEL_RACK, NULL);
		unsigned lone = 0;

		bad = 0;
		for (uint32_t pg = 0; pg < p.pg_num; pg++) {
			int32_t up[MX_MAX_SIZE];
			int n = mx_pg_up(pl, &p, pg, up, MX_MAX_SIZE);

			bad += n != 3;
			for (int i = 0; i < n; i++) {
				const char *ri =
				    bucket_of(m, up[i], MX_LEVEL_RACK);
				const char *hi =
				    bucket_of(m, up[i], MX_LEVEL_HOST);

				lone += up[i] == 40;
				for (int j = 0; j < i; j++) {
					const char *rj =
					    bucket_of(m, up[j], MX_LEVEL_RACK);
					const char *hj =
					    bucket_of(m, up[j], MX_LEVEL_HOST);

					bad += ri && rj && !strcmp(ri, rj);
					bad += hi && hj && !strcmp(hi, hj);
				}
			}
		}
		CHECK_EQ_INT(bad, 0);
		CHECK(lone > 0);
	}
	mx_placement_free(pl);
	map_free(m);
}

static void test_device_class(void)
{
	/* 100 hosts x 10; in hosts 10..99, OSDs 0..2 are ssd (1.0) and the
	 * rest hdd (2.0); hosts 0..9 have hdd only. */
	struct mx_map *m = cluster(100, 10, 0, 0);
	struct mx_placement *pl;
	struct mx_pool p = pool_make(8, 3, 9000, MX_LEVEL_HOST, "ssd");
	double *cnt = mx_xcalloc(1000, sizeof(*cnt));
	unsigned bad = 0;
	struct balance b;
	int32_t up[MX_MAX_SIZE];

	for (unsigned i = 0; i < 1000; i++) {
		bool ssd = i >= 100 && i % 10 < 3;

		strcpy(m->osds[i].device_class, ssd ? "ssd" : "hdd");
		m->osds[i].weight = ssd ? W1 : W2;
	}
	pl = compile(m);
	/* 270 ssd OSDs; 27000 replicas is 100 each. */
	CHECK_EQ_INT(count_pgs(pl, &p, cnt), 0);
	for (unsigned i = 0; i < 1000; i++)
		bad += cnt[i] > 0 && strcmp(m->osds[i].device_class, "ssd");
	CHECK_EQ_INT(bad, 0);
	b = balance_of(m, cnt, 3.0 * p.pg_num, "ssd");
	print_balance("270 ssd of 1000 OSDs, class ssd", &b);
	check_binomial(&b);

	/* hdd: never an ssd.  730 hdd OSDs: 73000 replicas is 100 each
	 * (hosts 0..9 weigh 20, the others 14). */
	memset(cnt, 0, 1000 * sizeof(*cnt));
	p = pool_make(8, 3, 73000 / 3, MX_LEVEL_HOST, "hdd");
	CHECK_EQ_INT(count_pgs(pl, &p, cnt), 0);
	bad = 0;
	for (unsigned i = 0; i < 1000; i++)
		bad += cnt[i] > 0 && strcmp(m->osds[i].device_class, "hdd");
	CHECK_EQ_INT(bad, 0);
	b = balance_of(m, cnt, 3.0 * p.pg_num, "hdd");
	print_balance("730 hdd of 1000 OSDs, class hdd", &b);
	CHECK(b.rms_z < 1.15);
	CHECK(b.max_z < 4.5);

	/* A class nobody has maps nowhere. */
	p = pool_make(8, 3, 16, MX_LEVEL_HOST, "nvme");
	CHECK_EQ_INT(mx_pg_up(pl, &p, 0, up, MX_MAX_SIZE), 0);
	mx_placement_free(pl);
	map_free(m);
	free(cnt);
}

/*
 * The balancer on the device-class map of test_device_class(): an ssd and
 * an hdd pool over the same hosts, balanced together (pool -1).  Each OSD
 * is compared with its share of the pool of its class, and no replica
 * crosses a class.
 */
static void test_balance_class(void)
{
	struct mx_map *m = cluster(100, 10, 0, 0);
	struct mx_pool ps = pool_make(8, 3, 9000, MX_LEVEL_HOST, "ssd");
	struct mx_pool ph = pool_make(9, 3, 73000 / 3, MX_LEVEL_HOST, "hdd");
	double *cs = mx_xcalloc(1000, sizeof(*cs));
	double *ch = mx_xcalloc(1000, sizeof(*ch));
	struct mx_balance_stats st;
	struct balance b;
	unsigned bad = 0;

	for (unsigned i = 0; i < 1000; i++) {
		bool ssd = i >= 100 && i % 10 < 3;

		strcpy(m->osds[i].device_class, ssd ? "ssd" : "hdd");
		m->osds[i].weight = ssd ? W1 : W2;
	}
	(void)pool_add(m, ps);
	(void)pool_add(m, ph);
	st = balance_map(m, -1, "270 ssd + 730 hdd OSDs, 2 pools");
	CHECK_EQ_INT(st.outside_after, 0);
	(void)count_mapped(m, &ps, cs);
	(void)count_mapped(m, &ph, ch);
	for (unsigned i = 0; i < 1000; i++) {
		bool ssd = !strcmp(m->osds[i].device_class, "ssd");

		bad += ssd ? ch[i] > 0 : cs[i] > 0;
	}
	CHECK_EQ_INT(bad, 0);
	b = balance_of(m, cs, 3.0 * ps.pg_num, "ssd");
	print_balance("270 ssd of 1000 OSDs, class ssd, balanced", &b);
	CHECK(b.max_dev <= 0.10);
	b = balance_of(m, ch, 3.0 * ph.pg_num, "hdd");
	print_balance("730 hdd of 1000 OSDs, class hdd, balanced", &b);
	CHECK(b.max_dev <= 0.10);
	map_free(m);
	free(cs);
	free(ch);
}

/* Slots of pool p whose OSD differs between placements a and b. */
static uint64_t slots_moved(const struct mx_placement *a,
			    const struct mx_placement *b,
			    const struct mx_pool *p)
{
	uint64_t n = 0;

	for (uint32_t pg = 0; pg < p->pg_num; pg++) {
		int32_t ua[MX_MAX_SIZE], ub[MX_MAX_SIZE];
		int na = mx_pg_up(a, p, pg, ua, MX_MAX_SIZE);
		int nb = mx_pg_up(b, p, pg, ub, MX_MAX_SIZE);

		for (int i = 0; i < nb; i++)
			n += !contains(ua, na, ub[i]);
	}
	return n;
}

/*
 * Data movement with upmaps: add an OSD (weight 1.0, new host) to a
 * balanced map of 1000 OSDs.  The old upmaps stay in force where they
 * still apply, so the change itself moves about what it moves without
 * upmaps; the next balancer run then moves a little more to bring the
 * new OSD and any OSD pushed out of the band back in.  Prints both,
 * over the optimum (the new OSD's weight share of all slots).
 */
static void test_balance_movement(void)
{
	struct mx_map *m = cluster(100, 10, 0, 3), *d;
	struct mx_pool p = pool_make(5, 3, 130000 / 3, MX_LEVEL_HOST, NULL);
	struct mx_placement *a, *b, *c;
	struct mx_balance_stats st;
	double *cnt = mx_xcalloc(1001, sizeof(*cnt));
	double opt, wsum = 0;
	uint64_t by_change, by_balancer, total;
	struct balance bl;

	(void)pool_add(m, p);
	(void)balance_map(m, p.id, "1000 OSDs (movement)");
	d = mx_map_dup(m);
	CHECK(d != NULL);
	if (!d)
		return;
	CHECK_EQ_INT(mx_map_set_max_osd(d, 1001), 0);
	osd_set(d, 1000, W1, "hnew", NULL, NULL);
	for (uint32_t i = 0; i < d->max_osd; i++)
		wsum += d->osds[i].weight;
	opt = 3.0 * p.pg_num * W1 / wsum;
	a = compile(m);
	b = compile(d);
	by_change = slots_moved(a, b, &p);
	st = balance_map(d, p.id, "1000 -> 1001 OSDs (new host)");
	CHECK_EQ_INT(st.outside_after, 0);
	c = compile(d);
	by_balancer = slots_moved(b, c, &p);
	total = slots_moved(a, c, &p);
	printf("placement: movement with upmaps, 1000 -> 1001 OSDs (new "
	       "host): the change %.3f x optimum, the rebalance %.3f x, "
	       "total %.3f x (%u pairs dropped)\n",
	       (double)by_change / opt, (double)by_balancer / opt,
	       (double)total / opt, st.dropped);
	CHECK((double)by_change / opt < 1.2);
	CHECK((double)total / opt < 2.0);
	(void)count_mapped(d, &p, cnt);
	bl = balance_of(d, cnt, 3.0 * p.pg_num, NULL);
	CHECK(bl.max_dev <= 0.10);
	mx_placement_free(a);
	mx_placement_free(b);
	mx_placement_free(c);
	map_free(d);
	map_free(m);
	free(cnt);
}

/* An upmap of one pair for PG pg of pool p. */
static struct mx_pg_upmap upmap1(const struct mx_pool *p, uint32_t pg,
				 int32_t from, int32_t to)
{
	struct mx_pg_upmap u = { .pool = p->id, .pg = pg, .n = 1 };

	u.from[0] = from;
	u.to[0] = to;
	return u;
}

/* The up set of PG pg of p in m after setting upmap u alone. */
static int up_with(struct mx_map *m, const struct mx_pool *p, uint32_t pg,
		   const struct mx_pg_upmap *u, int32_t *up)
{
	struct mx_placement *pl;
	int n;

	CHECK_EQ_INT(mx_map_set_upmaps(m, -1, u, 1), 0);
	pl = compile(m);
	n = mx_pg_up(pl, p, pg, up, MX_MAX_SIZE);
	mx_placement_free(pl);
	return n;
}

/* An OSD of m outside the hosts of set[0..n), other than skip, lowest
 * id; host same_as if >= 0 asks for an OSD in that OSD's host instead. */
static int32_t pick_osd(const struct mx_map *m, const int32_t *set, int n,
			int32_t same_as)
{
	for (uint32_t id = 0; id < m->max_osd; id++) {
		bool clash = false;

		if (contains(set, n, (int32_t)id))
			continue;
		if (same_as >= 0) {
			if (!strcmp(host_of(m, (int32_t)id),
				    host_of(m, same_as)))
				return (int32_t)id;
			continue;
		}
		for (int i = 0; i < n; i++)
			clash |= !strcmp(host_of(m, (int32_t)id),
					 host_of(m, set[i]));
		if (!clash)
			return (int32_t)id;
	}
	return -1;
}

/*
 * mx_pg_up() applies a pair only while it is valid: the target exists, is
 * in, weighs more than 0, is of the pool's class, is not in the set and
 * keeps the failure domains apart.  Otherwise the pair is ignored and the
 * PG keeps the rule's OSD.
 */
static void test_upmap_apply(void)
{
	struct mx_map *m = cluster(10, 4, 0, 1);
	struct mx_pool p = pool_make(3, 3, 64, MX_LEVEL_HOST, "hdd");
	struct mx_placement *pl;
	struct mx_pg_upmap u;
	int32_t raw[MX_MAX_SIZE], up[MX_MAX_SIZE], want[MX_MAX_SIZE], t, s;
	const uint32_t pg = 5;
	int n, nr;

	for (unsigned i = 0; i < 40; i++)
		strcpy(m->osds[i].device_class, "hdd");
	pl = compile(m);
	nr = mx_pg_up_raw(pl, &p, pg, raw, MX_MAX_SIZE);
	CHECK_EQ_INT(nr, 3);
	n = mx_pg_up(pl, &p, pg, up, MX_MAX_SIZE);
	CHECK(same_up(up, n, raw, nr));
	mx_placement_free(pl);

	/* A valid pair: raw[1] -> t in a fourth host.  Rank and order are
	 * kept; other PGs do not change; acting sets and a short max too. */
	t = pick_osd(m, raw, nr, -1);
	CHECK(t >= 0);
	u = upmap1(&p, pg, raw[1], t);
	memcpy(want, raw, sizeof(want));
	want[1] = t;
	n = up_with(m, &p, pg, &u, up);
	CHECK(same_up(up, n, want, 3));
	pl = compile(m);
	{
		int32_t act[MX_MAX_SIZE], first[2], a[MX_MAX_SIZE];
		unsigned bad = 0;

		CHECK_EQ_INT(mx_pg_acting(pl, m, &p, pg, act, MX_MAX_SIZE), 3);
		CHECK(same_up(act, 3, want, 3));
		CHECK_EQ_INT(mx_pg_up(pl, &p, pg, first, 2), 2);
		CHECK(same_up(first, 2, want, 2));
		for (uint32_t q = 0; q < p.pg_num; q++) {
			int32_t b[MX_MAX_SIZE];
			int na = mx_pg_up(pl, &p, q, a, MX_MAX_SIZE);
			int nb = mx_pg_up_raw(pl, &p, q, b, MX_MAX_SIZE);

			bad += q != pg && !same_up(a, na, b, nb);
		}
		CHECK_EQ_INT(bad, 0);
		/* The placement keeps no pointer into the map: dropping the
		 * map's upmaps (freeing its array) changes nothing here. */
		CHECK_EQ_INT(mx_map_set_upmaps(m, -1, NULL, 0), 0);
		CHECK_EQ_INT(mx_pg_up(pl, &p, pg, a, MX_MAX_SIZE), 3);
		CHECK(same_up(a, 3, want, 3));
		mx_placement_free(pl);
	}

	/* Into the same host as the OSD it replaces: valid. */
	s = pick_osd(m, raw, nr, raw[1]);
	CHECK(s >= 0);
	u = upmap1(&p, pg, raw[1], s);
	want[1] = s;
	n = up_with(m, &p, pg, &u, up);
	CHECK(same_up(up, n, want, 3));

	/* Into the host of another member: a failure-domain collision. */
	s = pick_osd(m, raw, nr, raw[2]);
	u = upmap1(&p, pg, raw[1], s);
	n = up_with(m, &p, pg, &u, up);
	CHECK(same_up(up, n, raw, nr));

	/* Onto a member of the set, from an OSD not in the set, to OSDs
	 * that do not exist: ignored. */
	u = upmap1(&p, pg, raw[1], raw[2]);
	n = up_with(m, &p, pg, &u, up);
	CHECK(same_up(up, n, raw, nr));
	u = upmap1(&p, pg, t, raw[1]);
	n = up_with(m, &p, pg, &u, up);
	CHECK(same_up(up, n, raw, nr));
	u = upmap1(&p, pg, raw[1], 40);
	n = up_with(m, &p, pg, &u, up);
	CHECK(same_up(up, n, raw, nr));
	u = upmap1(&p, pg, raw[1], -7);
	n = up_with(m, &p, pg, &u, up);
	CHECK(same_up(up, n, raw, nr));

	/* The target out, weighing 0, of another class, gone: ignored. */
	u = upmap1(&p, pg, raw[1], t);
	m->osds[t].in = false;
	n = up_with(m, &p, pg, &u, up);
	CHECK(same_up(up, n, raw, nr));
	m->osds[t].in = true;
	m->osds[t].weight = 0;
	n = up_with(m, &p, pg, &u, up);
	CHECK(same_up(up, n, raw, nr));
	m->osds[t].weight = W1;
	strcpy(m->osds[t].device_class, "ssd");
	n = up_with(m, &p, pg, &u, up);
	CHECK(same_up(up, n, raw, nr));
	strcpy(m->osds[t].device_class, "hdd");
	m->osds[t].exists = false;
	n = up_with(m, &p, pg, &u, up);
	CHECK(same_up(up, n, raw, nr));
	m->osds[t].exists = true;
	/* Down is not out: still applied. */
	m->osds[t].up = false;
	n = up_with(m, &p, pg, &u, up);
	want[1] = t;
	CHECK(same_up(up, n, want, 3));
	m->osds[t].up = true;

	/* Pairs apply in order against the set as it is then: raw[0] -> t,
	 * then raw[1] -> raw[0] (now free, and its host too). */
	u = upmap1(&p, pg, raw[0], t);
	u.from[1] = raw[1];
	u.to[1] = raw[0];
	u.n = 2;
	n = up_with(m, &p, pg, &u, up);
	want[0] = t;
	want[1] = raw[0];
	want[2] = raw[2];
	CHECK(same_up(up, n, want, 3));
	/* The other way round the second pair is ignored (raw[0] is still
	 * in the set when it comes). */
	u = upmap1(&p, pg, raw[1], raw[0]);
	u.from[1] = raw[0];
	u.to[1] = t;
	u.n = 2;
	n = up_with(m, &p, pg, &u, up);
	want[0] = t;
	want[1] = raw[1];
	CHECK(same_up(up, n, want, 3));

	/* mx_pg_upmap_apply() reports the pairs it applied. */
	pl = compile(m);
	memcpy(up, raw, sizeof(up));
	u = upmap1(&p, pg, raw[1], raw[2]);
	u.from[1] = raw[1];
	u.to[1] = t;
	u.n = 2;
	CHECK_EQ_INT(mx_pg_upmap_apply(pl, &p, &u, up, nr), 2);
	CHECK_EQ_INT(up[1], t);
	CHECK_EQ_INT(mx_pg_upmap_apply(pl, &p, NULL, up, nr), -EINVAL);
	CHECK_EQ_INT(mx_pg_upmap_apply(pl, &p, &u, up, MX_MAX_SIZE + 1),
		     -EINVAL);
	CHECK_EQ_INT(mx_pg_upmap_apply(pl, &p, &u, NULL, 3), -EINVAL);
	{
		int32_t d0, d1;

		CHECK_EQ_INT(mx_placement_osd_domain(pl, &p, raw[0], &d0), 0);
		CHECK_EQ_INT(mx_placement_osd_domain(pl, &p, raw[1], &d1), 0);
		CHECK(d0 != d1);
		CHECK_EQ_INT(mx_placement_osd_domain(pl, &p, 40, &d0), -ENOENT);
		CHECK_EQ_INT(mx_placement_osd_domain(pl, &p, 0, NULL), -EINVAL);
	}
	mx_placement_free(pl);

	/* A malformed upmap (no pair) makes the map invalid. */
	u = upmap1(&p, pg, raw[1], t);
	CHECK_EQ_INT(mx_map_set_upmaps(m, -1, &u, 1), 0);
	m->upmaps[0].n = 0;
	pl = NULL;
	CHECK_EQ_INT(mx_placement_new(m, &pl), -EINVAL);
	CHECK(pl == NULL);
	map_free(m);
}

/*
 * The balancer across map changes: on a balanced map it changes nothing;
 * max_changes caps it; when a target is marked out its pairs are ignored
 * (the PG goes back to the rule), the next run drops them and balances
 * again; upmaps of a pool that is gone are dropped.  Also the errors.
 */
static void test_balancer_update(void)
{
	/* 100 OSDs in 10 hosts, 3 of 2.0 per host: 100 per 1.0. */
	struct mx_map *m = cluster(10, 10, 0, 3);
	struct mx_pool p = pool_make(4, 3, 13000 / 3, MX_LEVEL_HOST, NULL);
	struct mx_balance_stats st;
	struct mx_pg_upmap *u = NULL;
	struct mx_placement *pl;
	double *cnt = mx_xcalloc(100, sizeof(*cnt));
	uint32_t n = 0, stale = 0;
	int32_t t = -1;
	struct balance b;

	(void)pool_add(m, p);
	/* max_changes caps the moves. */
	CHECK_EQ_INT(mx_balance(m, p.id, 5, 0.10, &u, &n, &st), 0);
	CHECK_EQ_INT(st.moves, 5);
	CHECK(n >= 1 && n <= 5);
	CHECK(st.outside_after > 0);
	free(u);
	CHECK_EQ_INT(mx_balance(m, p.id, 0, 0.10, &u, &n, &st), 0);
	CHECK(n == 0 && u == NULL && st.moves == 0);

	st = balance_map(m, p.id, "100 OSDs host domain");
	CHECK_EQ_INT(st.outside_after, 0);
	/* Balanced: a second run keeps every upmap and moves nothing. */
	CHECK_EQ_INT(mx_balance(m, p.id, UINT32_MAX, 0.10, &u, &n, &st), 0);
	CHECK(st.moves == 0 && st.dropped == 0);
	CHECK(upmaps_eq(u, n, m->upmaps, m->n_upmaps));
	free(u);

	/* Mark out the most used target. */
	{
		uint32_t uses[100] = { 0 };

		for (uint32_t i = 0; i < m->n_upmaps; i++)
			for (unsigned k = 0; k < m->upmaps[i].n; k++)
				uses[m->upmaps[i].to[k]]++;
		for (int32_t id = 0; id < 100; id++)
			if (t < 0 || uses[id] > uses[t])
				t = id;
		stale = uses[t];
	}
	CHECK(stale > 0);
	printf("placement: balancer: marking out OSD %d, target of %u pairs\n",
	       (int)t, stale);
	m->osds[t].in = false;
	memset(cnt, 0, 100 * sizeof(*cnt));
	(void)count_mapped(m, &p, cnt);
	CHECK(cnt[t] == 0);
	st = balance_map(m, p.id, "100 OSDs, a target marked out");
	CHECK(st.dropped >= stale);
	CHECK_EQ_INT(st.outside_after, 0);
	memset(cnt, 0, 100 * sizeof(*cnt));
	(void)count_mapped(m, &p, cnt);
	b = balance_of(m, cnt, 3.0 * p.pg_num, NULL);
	CHECK(b.max_dev <= 0.10);
	for (uint32_t i = 0; i < m->n_upmaps; i++)
		for (unsigned k = 0; k < m->upmaps[i].n; k++)
			CHECK(m->upmaps[i].to[k] != t);

	/* Upmaps of a pool that is gone: dropped by a run over all pools. */
	{
		struct mx_pg_upmap g = { .pool = 77, .pg = 1, .n = 1 };
		uint32_t had = m->n_upmaps;

		g.from[0] = 1;
		g.to[0] = 2;
		CHECK_EQ_INT(mx_map_set_upmaps(m, 77, &g, 1), 0);
		CHECK_EQ_INT(mx_balance(m, -1, UINT32_MAX, 0.10, &u, &n, &st),
			     0);
		CHECK_EQ_INT(st.dropped, 1);
		CHECK_EQ_INT(n, had);
		for (uint32_t i = 0; i < n; i++)
			CHECK(u[i].pool == p.id);
		free(u);
	}

	/* Errors. */
	CHECK_EQ_INT(mx_balance(NULL, -1, 1, 0.1, &u, &n, NULL), -EINVAL);
	CHECK_EQ_INT(mx_balance(m, -1, 1, 0.1, NULL, &n, NULL), -EINVAL);
	CHECK_EQ_INT(mx_balance(m, -1, 1, -0.1, &u, &n, NULL), -EINVAL);
	CHECK_EQ_INT(mx_balance(m, -1, 1, (double)NAN, &u, &n, NULL),
		     -EINVAL);
	CHECK_EQ_INT(mx_balance(m, -2, 1, 0.1, &u, &n, NULL), -EINVAL);
	CHECK_EQ_INT(mx_balance(m, 99, 1, 0.1, &u, &n, NULL), -ENOENT);
	pl = compile(m);
	mx_placement_free(pl);
	map_free(m);
	free(cnt);
}

/* The map codec keeps upmaps: a decoded map gives the same up sets. */
static void test_upmap_codec(void)
{
	struct mx_map *m = cluster(10, 10, 0, 3), *d = NULL;
	struct mx_pool p = pool_make(4, 3, 13000 / 3, MX_LEVEL_HOST, NULL);
	struct mx_placement *a, *b;
	struct mx_wbuf w;
	unsigned bad = 0;

	(void)pool_add(m, p);
	(void)balance_map(m, p.id, "100 OSDs (codec)");
	CHECK(m->n_upmaps > 0);
	mx_wbuf_init(&w);
	mx_map_encode(m, &w);
	CHECK_EQ_INT(w.err, 0);
	CHECK_EQ_INT(mx_map_decode(w.data, w.len, &d), 0);
	if (d) {
		CHECK(upmaps_eq(m->upmaps, m->n_upmaps, d->upmaps,
				d->n_upmaps));
		CHECK(mx_map_upmap(d, p.id, m->upmaps[0].pg) != NULL);
		a = compile(m);
		b = compile(d);
		for (uint32_t pg = 0; pg < p.pg_num; pg++) {
			int32_t ua[MX_MAX_SIZE], ub[MX_MAX_SIZE];
			int na = mx_pg_up(a, &p, pg, ua, MX_MAX_SIZE);
			int nb = mx_pg_up(b, &p, pg, ub, MX_MAX_SIZE);

			bad += !same_up(ua, na, ub, nb);
		}
		CHECK_EQ_INT(bad, 0);
		mx_placement_free(a);
		mx_placement_free(b);
	}
	mx_map_free(d);
	mx_wbuf_free(&w);
	map_free(m);
}

static void test_acting(void)
{
	struct mx_map *m = cluster(20, 5, 0, 0);
	struct mx_placement *a = compile(m), *b;
	struct mx_pool p = pool_make(2, 3, 2048, MX_LEVEL_HOST, NULL);
	unsigned bad = 0, with_down = 0, remapped = 0;
	const int32_t victim = 37;

	/* Down: same up sets, acting sets without it, order kept. */
	m->osds[victim].up = false;
	b = compile(m);
	for (uint32_t pg = 0; pg < p.pg_num; pg++) {
		int32_t ua[MX_MAX_SIZE], ub[MX_MAX_SIZE], act[MX_MAX_SIZE],
		    want[MX_MAX_SIZE];
		int na = mx_pg_up(a, &p, pg, ua, MX_MAX_SIZE);
		int nb = mx_pg_up(b, &p, pg, ub, MX_MAX_SIZE);
		int nact = mx_pg_acting(b, m, &p, pg, act, MX_MAX_SIZE);
		int nw = 0;

		bad += !same_up(ua, na, ub, nb);
		for (int i = 0; i < nb; i++)
			if (ub[i] != victim)
				want[nw++] = ub[i];
		bad += !same_up(act, nact, want, nw);
		with_down += nw < nb;
	}
	CHECK_EQ_INT(bad, 0);
	CHECK(with_down > 0);
	/* max below the count: the first max of them. */
	{
		int32_t up[MX_MAX_SIZE], one;

		CHECK_EQ_INT(mx_pg_acting(b, m, &p, 0, &one, 1), 1);
		CHECK_EQ_INT(mx_pg_up(b, &p, 0, up, MX_MAX_SIZE), 3);
		CHECK_EQ_INT(mx_pg_up(b, &p, 0, &one, 1), 1);
		CHECK_EQ_INT(one, up[0]);
	}
	mx_placement_free(b);

	/* Out: never mapped; its PGs get another OSD; no other PG changes
	 * (its host's weight plays no part in the rule). */
	m->osds[victim].up = true;
	m->osds[victim].in = false;
	b = compile(m);
	bad = 0;
	for (uint32_t pg = 0; pg < p.pg_num; pg++) {
		int32_t ua[MX_MAX_SIZE], ub[MX_MAX_SIZE];
		int na = mx_pg_up(a, &p, pg, ua, MX_MAX_SIZE);
		int nb = mx_pg_up(b, &p, pg, ub, MX_MAX_SIZE);

		bad += nb != 3 || contains(ub, nb, victim);
		if (contains(ua, na, victim))
			remapped++;
		else
			bad += !same_up(ua, na, ub, nb);
	}
	CHECK_EQ_INT(bad, 0);
	CHECK(remapped > 0);
	mx_placement_free(a);
	mx_placement_free(b);
	map_free(m);
}

/* The memo answers as mx_pg_acting does: PGs that share a slot (pg and
 * pg + MX_ACTING_MEMO_SLOTS), two pools, a second epoch with an OSD down,
 * a max below MX_MAX_SIZE (not memoized), and the first map again. */
static void test_acting_memo(void)
{
	struct mx_map *m = cluster(20, 5, 0, 0);
	struct mx_placement *a = compile(m), *b = NULL;
	struct mx_pool p = pool_make(2, 3, 2048, MX_LEVEL_HOST, NULL);
	struct mx_pool q = pool_make(3, 2, 4096, MX_LEVEL_OSD, NULL);
	struct mx_acting_memo *memo = calloc(1, sizeof(*memo));
	unsigned bad = 0;

	m->epoch = 5;
	for (int round = 0; round < 3; round++) {
		const struct mx_placement *pl = round == 1 ? b : a;

		if (round == 1) {
			m->osds[37].up = false;
			m->epoch = 6;
			b = compile(m);
			pl = b;
		} else if (round == 2) {
			m->osds[37].up = true;
			m->epoch = 5;
		}
		for (int pass = 0; pass < 2; pass++) {
			for (uint32_t pg = 0; pg < q.pg_num; pg++) {
				const struct mx_pool *pp = (pg & 1) ? &q : &p;
				uint32_t g = pg % pp->pg_num;
				int32_t got[MX_MAX_SIZE], want[MX_MAX_SIZE];
				int ng = mx_pg_acting_memo(memo, pl, m, pp, g, got, MX_MAX_SIZE);
				int nw = mx_pg_acting(pl, m, pp, g, want, MX_MAX_SIZE);

				bad += !same_up(got, ng, want, nw);
			}
		}
	}
	CHECK_EQ_INT(bad, 0);
	{
		int32_t one, want[MX_MAX_SIZE];

		CHECK_EQ_INT(mx_pg_acting_memo(memo, a, m, &p, 0, &one, 1), 1);
		CHECK_EQ_INT(mx_pg_acting(a, m, &p, 0, want, MX_MAX_SIZE), 3);
		CHECK_EQ_INT(one, want[0]);
	}
	free(memo);
	mx_placement_free(a);
	mx_placement_free(b);
	map_free(m);
}

/* primary_temp: set, cleared, encoded; placement puts its OSD first when
 * it is an acting member and ignores it otherwise. */
static void test_primary_temp(void)
{
	struct mx_map *m = cluster(10, 3, 0, 0), *d = NULL;
	struct mx_pool p = pool_make(5, 3, 64, MX_LEVEL_HOST, NULL);
	struct mx_placement *pl = compile(m);
	int32_t up[MX_MAX_SIZE], act[MX_MAX_SIZE];
	int nu, na;
	struct mx_wbuf w;

	nu = mx_pg_up(pl, &p, 7, up, MX_MAX_SIZE);
	CHECK_EQ_INT(nu, 3);
	CHECK_EQ_INT(mx_map_primary_temp(m, p.id, 7), -1);
	CHECK_EQ_INT(mx_map_set_primary_temp(m, p.id, 7, up[2]), 0);
	CHECK_EQ_INT(mx_map_set_primary_temp(m, p.id, 3, up[1]), 0);
	CHECK_EQ_INT(mx_map_set_primary_temp(m, 1, 9, 4), 0);
	CHECK_EQ_INT((int)m->n_ptemps, 3);
	CHECK_EQ_INT(mx_map_primary_temp(m, p.id, 7), up[2]);
	na = mx_pg_acting(pl, m, &p, 7, act, MX_MAX_SIZE);
	CHECK_EQ_INT(na, 3);
	CHECK(act[0] == up[2] && act[1] == up[0] && act[2] == up[1]);
	/* Down: not a member, so placement's order stands. */
	m->osds[up[2]].up = false;
	na = mx_pg_acting(pl, m, &p, 7, act, MX_MAX_SIZE);
	CHECK(na == 2 && act[0] == up[0] && act[1] == up[1]);
	m->osds[up[2]].up = true;
	/* Encoded and decoded, sorted. */
	mx_wbuf_init(&w);
	mx_map_encode(m, &w);
	CHECK_EQ_INT(mx_map_decode(w.data, w.len, &d), 0);
	if (d) {
		CHECK_EQ_INT((int)d->n_ptemps, 3);
		CHECK_EQ_INT(mx_map_primary_temp(d, p.id, 7), up[2]);
		CHECK_EQ_INT(mx_map_primary_temp(d, 1, 9), 4);
		CHECK(d->ptemps[0].pool <= d->ptemps[1].pool);
		mx_map_free(d);
		d = NULL;
	}
	/* A damaged section (an entry with no OSD) is refused. */
	{
		uint8_t *bad = malloc(w.len);
		size_t at = w.len - 4;

		memcpy(bad, w.data, w.len);
		bad[at] = bad[at + 1] = bad[at + 2] = bad[at + 3] = 0xff; /* osd -1 */
		CHECK(mx_map_decode(bad, w.len, &d) < 0);
		free(bad);
	}
	mx_wbuf_free(&w);
	/* Cleared one by one, and with its pool. */
	CHECK_EQ_INT(mx_map_set_primary_temp(m, p.id, 7, -1), 0);
	CHECK_EQ_INT(mx_map_primary_temp(m, p.id, 7), -1);
	CHECK_EQ_INT(mx_map_set_primary_temp(m, p.id, 7, -1), 0);
	CHECK_EQ_INT((int)m->n_ptemps, 2);
	(void)pool_add(m, p);
	CHECK_EQ_INT(mx_map_remove_pool(m, p.id), 0);
	CHECK_EQ_INT((int)m->n_ptemps, 1);
	CHECK_EQ_INT(mx_map_primary_temp(m, 1, 9), 4);
	mx_placement_free(pl);
	map_free(m);
}

static void test_errors(void)
{
	struct mx_map *m = cluster(3, 2, 0, 0);
	struct mx_placement *pl = NULL;
	struct mx_pool p = pool_make(1, 3, 8, MX_LEVEL_HOST, NULL);
	int32_t up[MX_MAX_SIZE];

	CHECK_EQ_INT(mx_placement_new(NULL, &pl), -EINVAL);
	CHECK_EQ_INT(mx_placement_new(m, NULL), -EINVAL);
	mx_placement_free(NULL);

	pl = compile(m);
	CHECK_EQ_INT(mx_pg_up(pl, &p, 8, up, MX_MAX_SIZE),
		     -EINVAL); /* pg >= pg_num */
	CHECK_EQ_INT(mx_pg_up(NULL, &p, 0, up, MX_MAX_SIZE), -EINVAL);
	CHECK_EQ_INT(mx_pg_up(pl, NULL, 0, up, MX_MAX_SIZE), -EINVAL);
	CHECK_EQ_INT(mx_pg_up(pl, &p, 0, NULL, 3), -EINVAL);
	CHECK_EQ_INT(mx_pg_up(pl, &p, 0, up, 0), 0);
	p.size = MX_MAX_SIZE + 1;
	CHECK_EQ_INT(mx_pg_up(pl, &p, 0, up, MX_MAX_SIZE), -EINVAL);
	p.size = 3;
	p.failure_domain = MX_LEVEL_COUNT;
	CHECK_EQ_INT(mx_pg_up(pl, &p, 0, up, MX_MAX_SIZE), -EINVAL);
	p.failure_domain = MX_LEVEL_HOST;
	strcpy(p.root_name, "elsewhere");
	CHECK_EQ_INT(mx_pg_up(pl, &p, 0, up, MX_MAX_SIZE), 0);
	strcpy(p.root_name, "default");
	CHECK_EQ_INT(mx_pg_acting(pl, NULL, &p, 0, up, MX_MAX_SIZE), -EINVAL);
	mx_placement_free(pl);

	/* Levels not strictly increasing. */
	m->osds[1].loc[1].level = MX_LEVEL_HOST;
	CHECK_EQ_INT(mx_placement_new(m, &pl), -EINVAL);
	osd_set(m, 1, W1, "h0", NULL, NULL);
	/* Host h0 under rack r1 here and under the root for OSD 0. */
	osd_set(m, 1, W1, "h0", "r1", NULL);
	CHECK_EQ_INT(mx_placement_new(m, &pl), -EINVAL);
	/* An OSD level in a location. */
	osd_set(m, 1, W1, "h0", NULL, NULL);
	m->osds[1].loc[0].level = MX_LEVEL_OSD;
	CHECK_EQ_INT(mx_placement_new(m, &pl), -EINVAL);
	osd_set(m, 1, W1, "h0", NULL, NULL);

	/* OSDs that do not exist, or weigh nothing, or have no location,
	 * take no data; all out: nothing at all. */
	m->osds[2].exists = false;
	m->osds[3].weight = 0;
	m->osds[4].nloc = 0;
	pl = compile(m);
	for (uint32_t pg = 0; pg < p.pg_num; pg++) {
		int n = mx_pg_up(pl, &p, pg, up, MX_MAX_SIZE);

		CHECK_EQ_INT(n, 2); /* hosts h0 and h2 (OSD 5) remain */
		for (int i = 0; i < n; i++)
			CHECK(up[i] == 0 || up[i] == 1 || up[i] == 5);
	}
	mx_placement_free(pl);
	for (uint32_t i = 0; i < m->max_osd; i++)
		m->osds[i].in = false;
	pl = compile(m);
	CHECK_EQ_INT(mx_pg_up(pl, &p, 0, up, MX_MAX_SIZE), 0);
	mx_placement_free(pl);
	map_free(m);

	/* The empty map. */
	m = map_new(0);
	pl = compile(m);
	CHECK_EQ_INT(mx_pg_up(pl, &p, 0, up, MX_MAX_SIZE), 0);
	mx_placement_free(pl);
	map_free(m);
}

int main(void)
{
	test_log2();
	test_object_hash();
	test_golden();
	test_exact();
	test_size_prefix();
	test_balance();
	test_add_osd();
	test_reweight();
	test_failure_domains();
	test_device_class();
	test_balance_class();
	test_balance_movement();
	test_upmap_apply();
	test_balancer_update();
	test_upmap_codec();
	test_acting();
	test_acting_memo();
	test_primary_temp();
	test_errors();
	return mx_check_done("placement");
}

/*
 * The tiering agent (docs/cache-tiering.md, "The agent").
 *
 * One thread per OSD, with a cluster handle of its own (the OSD's key),
 * connected once the map has a cache tier.  Every pass walks the PGs of
 * cache pools whose primary is this OSD, reads each object's tiering state,
 * and from the PG's share of the pool's targets:
 *
 *   - flushes dirty copies, oldest version first, while the dirty bytes
 *     (or objects) pass cache_target_dirty_ratio of the target; all of
 *     them while the cache drains (flush_all);
 *   - evicts clean copies, oldest version first (the version moves at each
 *     write and promotion), while the bytes (or objects) pass
 *     cache_target_full_ratio; all of them while the cache drains.
 *
 * A FLUSH reads the copy (data, attributes, its dirty nonce D, version W)
 * in one request, writes the base under "_tier.ver older than W"
 * (invariant 3), in one request or in steps under a claim "_tier.fl" on
 * the base object, then marks the copy clean under "_tier.d is still D"
 * with _tier.src = the base version the flush made.  A copy written again
 * meanwhile stays dirty for the next pass.
 *
 * An EVICT empties a present, clean copy into a stub keeping _tier.src,
 * guarded on exactly that state (invariant 2).
 *
 * Every request is fenced at the epoch of the map the pass began with: a
 * tier change since (a mode, a removal) fails it, and the pass ends.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "internal.h"
#include "log.h"
#include "map.h"
#include "msg.h"
#include "placement.h"
#include "stood.h"
#include "store.h"
#include "tier.h"
#include "util.h"

#define CHUNK (4u << 20)            /* bytes per request */
/* A flush's first base write goes out at most this long after its read of
 * the copy, by the monotonic clock (which a stopped process does not
 * stop), or not at all: a late write of older content lands within it. */
#define FLUSH_READ_MAX_NS (2ull * 1000000000ull)
/* A removed copy is evicted only after this long flushed, and only if the
 * base object is still gone: a late flush of an older copy (above) has
 * landed by then, and is undone by flushing the removal again. */
#define RM_EVICT_AFTER_NS (10ull * 1000000000ull)
#define OP_TIMEOUT_MS 3000          /* each request of the agent */
#define PASS_DEADLINE_NS (60ull * 1000000000ull)

struct mx_agent {
	struct mx_agent_config cfg;
	char *mons, *keyfile; /* copies */
	pthread_t thread;
	pthread_mutex_t lock; /* guards the fields below */
	pthread_cond_t cond;
	bool stopping, wanted;
	int32_t id; /* this OSD's, once it has one */
	struct mx_agent_stats stats;
	uint64_t nonce;
	/* Removed copies seen clean, and since when (the agent's thread
	 * only). */
	struct mx_stood seen;
};

/* One copy in the cache, as a pass saw it. */
struct copy {
	char *name; /* From malloc() */
	uint64_t size;
	uint8_t ver[16];
	bool dirty, removed;
};

struct pg_walk {
	struct mx_agent *a;
	int32_t id;
	mixsan_pool_t *cache, *base;
	struct copy *v; /* From malloc() */
	size_t n, cap;
	uint64_t deadline_ns;
};

static bool stopping(struct mx_agent *a)
{
	bool s;

	pthread_mutex_lock(&a->lock);
	s = a->stopping;
	pthread_mutex_unlock(&a->lock);
	return s;
}

static void count(struct mx_agent *a, uint64_t *field)
{
	pthread_mutex_lock(&a->lock);
	(*field)++;
	pthread_mutex_unlock(&a->lock);
}

static bool is_tier_name(const char *name)
{
	return strncmp(name, MX_TIER_PREFIX, strlen(MX_TIER_PREFIX)) == 0;
}

/* The copy's user attributes, for the base (values point into the
 * LISTXATTRS result; names are copied, the walk's are its own). */
#define ATTRS_MAX 256

struct attrs {
	unsigned n;
	char names[ATTRS_MAX][MX_XATTR_NAME_MAX + 1];
	const void *values[ATTRS_MAX];
	uint32_t lens[ATTRS_MAX];
};

static int attrs_cb(void *arg, const char *name, const void *v, size_t len)
{
	struct attrs *l = arg;

	if (is_tier_name(name))
		return 0;
	if (l->n == ATTRS_MAX)
		return -E2BIG;
	snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
	l->values[l->n] = v;
	l->lens[l->n] = (uint32_t)len;
	l->n++;
	return 0;
}

/* Flushing --------------------------------------------------------------- */

/* Write the base as of the copy read in r (W its version): in one request
 * when it fits, else in steps under a claim.  0 and *bver, -ECANCELED (the
 * base holds W or newer already), -EAGAIN (another flush took the claim,
 * or the copy changed: the next pass), or an error. */
static int base_write(struct pg_walk *w, const char *oid, const uint8_t *wbe,
		      const struct mx_client_read_result *r, uint64_t size,
		      const struct attrs *at, struct mx_client_version *bver)
{
	struct mx_osd_op q[MX_MSG_MAX_OPS];
	const struct mx_client_op_result *data = &r->ops[5];
	char claim[64];
	bool steps = size > data->len || at->n + 5 > MX_MSG_MAX_OPS;
	unsigned k, i = 0;
	int e;

	snprintf(claim, sizeof(claim), "%d.%llu.%llu", w->id,
		 (unsigned long long)mx_now_ns(), (unsigned long long)++w->a->nonce);
	for (int attempt = 0; attempt < 2; attempt++) {
		/* The object whole, as the copy: emptied if it exists (an
		 * attribute the copy no longer has goes too), else made. */
		k = 0;
		q[k++] = mx_op_guard(MX_CMP_LT, MX_TIER_VER, wbe, 16);
		if (attempt == 0)
			q[k++] = mx_op(MX_OP_REMOVE, NULL);
		q[k] = mx_op(MX_OP_CREATE, NULL);
		if (attempt == 1)
			q[k].flags = MX_OP_FLAG_EXCL;
		k++;
		q[k] = mx_op(MX_OP_WRITEFULL, NULL);
		q[k].data = data->data;
		q[k++].data_len = data->len;
		if (steps) {
			q[k++] = mx_op_setx(MX_TIER_FL, claim, (uint32_t)strlen(claim));
		} else {
			for (i = 0; i < at->n; i++)
				q[k++] = mx_op_setx(at->names[i], at->values[i], at->lens[i]);
			q[k++] = mx_op_setx(MX_TIER_VER, wbe, 16);
		}
		e = mx_client_write_ops(w->base, oid, q, k, bver);
		if (e != -ENOENT && e != -EEXIST)
			break;
	}
	if (e < 0 || !steps)
		return e;
	/* The rest of the data, each piece read again at version W. */
	for (uint64_t off = data->len; off < size; off += CHUNK) {
		struct mx_osd_op rd = {.op = MX_OP_READ, .off = off, .len = CHUNK};
		struct mx_client_read_result piece;

		e = mx_client_read_ops(w->cache, oid, &rd, 1, &piece);
		if (e < 0)
			return e;
		if (piece.ver.epoch != r->ver.epoch || piece.ver.seq != r->ver.seq) {
			mx_client_read_result_free(&piece);
			return -EAGAIN; /* written again: the next pass */
		}
		q[0] = mx_op_guard(MX_CMP_EQ, MX_TIER_FL, claim, (uint32_t)strlen(claim));
		q[1] = mx_op(MX_OP_WRITE, NULL);
		q[1].off = off;
		q[1].data = piece.ops[0].data;
		q[1].data_len = piece.ops[0].len;
		e = mx_client_write_ops(w->base, oid, q, 2, NULL);
		mx_client_read_result_free(&piece);
		if (e < 0)
			return e == -ECANCELED ? -EAGAIN : e; /* the claim is another's */
	}
	for (i = 0; i < at->n;) {
		k = 0;
		q[k++] = mx_op_guard(MX_CMP_EQ, MX_TIER_FL, claim, (uint32_t)strlen(claim));
		while (i < at->n && k < MX_MSG_MAX_OPS) {
			q[k++] = mx_op_setx(at->names[i], at->values[i], at->lens[i]);
			i++;
		}
		e = mx_client_write_ops(w->base, oid, q, k, NULL);
		if (e < 0)
			return e == -ECANCELED ? -EAGAIN : e;
	}
	q[0] = mx_op_guard(MX_CMP_EQ, MX_TIER_FL, claim, (uint32_t)strlen(claim));
	q[1] = mx_op(MX_OP_RMXATTR, MX_TIER_FL);
	q[2] = mx_op_setx(MX_TIER_VER, wbe, 16);
	e = mx_client_write_ops(w->base, oid, q, 3, bver);
	return e == -ECANCELED ? -EAGAIN : e;
}

/* Flush one dirty copy.  1 flushed, 0 nothing to do (clean, gone, or
 * written again), or an error. */
static int flush_one(struct pg_walk *w, const char *oid)
{
	struct mx_osd_op rd[6] = {mx_op(MX_OP_GETXATTR, MX_TIER_P), mx_op(MX_OP_GETXATTR, MX_TIER_D),
				  mx_op(MX_OP_GETXATTR, MX_TIER_RM), mx_op(MX_OP_STAT, NULL),
				  mx_op(MX_OP_LISTXATTRS, NULL), mx_op(MX_OP_READ, NULL)};
	struct mx_client_read_result r;
	struct mx_client_version bver = {0};
	struct mx_osd_stat st;
	struct attrs *at = NULL;
	struct mx_osd_op q[3];
	uint8_t wbe[16], bbe[16];
	uint64_t t_read;
	int e;

	rd[5].len = CHUNK;
	e = mx_client_read_ops(w->cache, oid, rd, 6, &r);
	if (e == -ENOENT)
		return 0;
	if (e < 0)
		return e;
	t_read = mx_now_ns();
	if (r.ops[0].rval != 0 || r.ops[0].len != 1 || *(char *)r.ops[0].data != '1' ||
	    r.ops[1].rval != 0) {
		e = 0; /* not a present, dirty copy (any more) */
		goto out;
	}
	if (r.ops[3].rval != 0 || r.ops[4].rval != 0 || r.ops[5].rval != 0 ||
	    mx_osd_stat_decode(r.ops[3].data, r.ops[3].len, &st) < 0) {
		e = -EIO;
		goto out;
	}
	mx_client_version_be(&r.ver, wbe);
	if (mx_now_ns() - t_read > FLUSH_READ_MAX_NS) {
		e = 0; /* read too long ago: the next pass */
		goto out;
	}
	if (r.ops[2].rval == 0) {
		/* A removal: the base object goes, unless newer already. */
		struct mx_osd_op rm[2] = {mx_op_guard(MX_CMP_LT, MX_TIER_VER, wbe, 16),
					  mx_op(MX_OP_REMOVE, NULL)};

		e = mx_client_write_ops(w->base, oid, rm, 2, &bver);
		if (e == -ENOENT)
			e = 0;
	} else {
		at = calloc(1, sizeof(*at));
		e = at ? mx_client_xattrs_walk(r.ops[4].data, r.ops[4].len, attrs_cb, at)
		       : -ENOMEM;
		if (e == 0)
			e = base_write(w, oid, wbe, &r, st.size, at, &bver);
	}
	if (e == -ECANCELED) {
		/* The base is as new or newer (an earlier flush of this
		 * version whose clean step was lost): nothing to write, but
		 * its version goes to _tier.src all the same (invariant 4). */
		struct mx_osd_op st1 = mx_op(MX_OP_STAT, NULL);
		struct mx_client_read_result b;

		memset(&bver, 0, sizeof(bver));
		e = mx_client_read_ops(w->base, oid, &st1, 1, &b);
		if (e == 0) {
			bver = b.ver;
			mx_client_read_result_free(&b);
		} else if (e == -ENOENT) {
			e = 0;
		}
	}
	if (e == -EAGAIN) {
		e = 0; /* it stays dirty for the next pass */
		goto out;
	}
	if (e < 0)
		goto out;
	/* Clean, unless written again since our read. */
	q[0] = mx_op_guard(MX_CMP_EQ, MX_TIER_D, r.ops[1].data, r.ops[1].len);
	q[1] = mx_op(MX_OP_RMXATTR, MX_TIER_D);
	mx_client_version_be(&bver, bbe);
	q[2] = mx_op_setx(MX_TIER_SRC, bbe, 16);
	e = mx_client_write_ops(w->cache, oid, q, bver.epoch || bver.seq ? 3 : 2, NULL);
	if (e == -ECANCELED || e == -ENOENT)
		e = 0;
	else if (e == 0)
		e = 1;
out:
	free(at);
	mx_client_read_result_free(&r);
	return e;
}

/* Evicting --------------------------------------------------------------- */

/* Empty a present, clean copy into a stub.  1 evicted, 0 not (dirty, or
 * changed), or an error. */
static int evict_one(struct pg_walk *w, const char *oid)
{
	struct mx_osd_op rd[3] = {mx_op(MX_OP_GETXATTR, MX_TIER_P), mx_op(MX_OP_GETXATTR, MX_TIER_D),
				  mx_op(MX_OP_GETXATTR, MX_TIER_SRC)};
	struct mx_client_read_result r;
	struct mx_osd_op q[6];
	unsigned k = 0;
	int e;

	e = mx_client_read_ops(w->cache, oid, rd, 3, &r);
	if (e == -ENOENT)
		return 0;
	if (e < 0)
		return e;
	if (r.ops[0].rval != 0 || r.ops[0].len != 1 || *(char *)r.ops[0].data != '1' ||
	    r.ops[1].rval == 0) {
		mx_client_read_result_free(&r);
		return 0;
	}
	q[k++] = mx_op_guard(MX_CMP_EQ, MX_TIER_P, "1", 1);
	q[k++] = mx_op_guard(MX_CMP_EQ, MX_TIER_D, "", 0);
	if (r.ops[2].rval == 0) {
		q[k++] = mx_op_guard(MX_CMP_EQ, MX_TIER_SRC, r.ops[2].data, r.ops[2].len);
		q[k++] = mx_op(MX_OP_REMOVE, NULL);
		q[k++] = mx_op(MX_OP_CREATE, NULL);
		q[k++] = mx_op_setx(MX_TIER_SRC, r.ops[2].data, r.ops[2].len);
	} else {
		q[k++] = mx_op_guard(MX_CMP_EQ, MX_TIER_SRC, "", 0);
		q[k++] = mx_op(MX_OP_REMOVE, NULL);
		q[k++] = mx_op(MX_OP_CREATE, NULL);
	}
	e = mx_client_write_ops(w->cache, oid, q, k, NULL);
	mx_client_read_result_free(&r);
	if (e == -ECANCELED || e == -ENOENT)
		return 0;
	return e < 0 ? e : 1;
}

/* The key of (pool, oid) in a->seen. */
static uint64_t seen_key(int32_t pool, const char *oid)
{
	return mx_hash64(oid, strlen(oid), (uint64_t)(uint32_t)pool) | 1;
}

/*
 * A removed copy, flushed: evicted once it has been seen clean for
 * RM_EVICT_AFTER_NS and the base object is still gone.  A base object
 * that exists again was made by a late flush of an older copy: the copy
 * is made dirty again, so that the next pass flushes the removal again
 * (its _tier.ver guard lets it: the late write recorded an older version).
 * 1 evicted, 0 not yet, or an error.
 */
static int evict_removed(struct pg_walk *w, const struct mx_pool *c, const char *oid)
{
	uint64_t key = seen_key(c->id, oid), now = mx_now_ns();
	struct mx_osd_op st1 = mx_op(MX_OP_STAT, NULL);
	struct mx_client_read_result b;
	int e;

	if (!mx_stood(&w->a->seen, key, now, RM_EVICT_AFTER_NS))
		return 0;
	e = mx_client_read_ops(w->base, oid, &st1, 1, &b);
	if (e == 0) {
		char d[64];
		struct mx_osd_op q[4] = {mx_op_guard(MX_CMP_EQ, MX_TIER_P, "1", 1),
					 mx_op_guard(MX_CMP_EQ, MX_TIER_RM, "1", 1),
					 mx_op_guard(MX_CMP_EQ, MX_TIER_D, "", 0)};

		mx_client_read_result_free(&b);
		snprintf(d, sizeof(d), "agent.%d.%llu", w->id, (unsigned long long)now);
		q[3] = mx_op_setx(MX_TIER_D, d, (uint32_t)strlen(d));
		mx_warn("tiering agent: %s came back in the base after its removal was "
			"flushed; flushing the removal again", oid);
		mx_stood_forget(&w->a->seen, key);
		e = mx_client_write_ops(w->cache, oid, q, 4, NULL);
		return e == -ECANCELED || e == -ENOENT ? 0 : e < 0 ? e : 0;
	}
	if (e != -ENOENT)
		return e;
	mx_stood_forget(&w->a->seen, key);
	return evict_one(w, oid);
}

/* A pass over one PG ----------------------------------------------------- */

static int name_cb(void *arg, const char *oid, size_t len, uint64_t size)
{
	struct pg_walk *w = arg;

	(void)size;
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64;
		void *v = realloc(w->v, cap * sizeof(*w->v));

		if (!v)
			return -ENOMEM;
		w->v = v;
		w->cap = cap;
	}
	memset(&w->v[w->n], 0, sizeof(w->v[0]));
	w->v[w->n].name = strndup(oid, len);
	if (!w->v[w->n].name)
		return -ENOMEM;
	w->n++;
	return 0;
}

static int by_version(const void *a, const void *b)
{
	return memcmp(((const struct copy *)a)->ver, ((const struct copy *)b)->ver, 16);
}

/* Whether used (bytes, objects) passes ratio (per mille) of the targets. */
static bool over(uint64_t bytes, uint64_t objects, uint64_t tbytes, uint64_t tobjects,
		 unsigned ratio)
{
	return (tbytes && bytes * 1000 > tbytes * ratio) ||
	       (tobjects && objects * 1000 > tobjects * ratio);
}

static void walk_pg(struct pg_walk *w, const struct mx_pool *c, uint32_t pg)
{
	const struct mx_osd_op rd[4] = {mx_op(MX_OP_GETXATTR, MX_TIER_P),
					mx_op(MX_OP_GETXATTR, MX_TIER_D), mx_op(MX_OP_STAT, NULL),
					mx_op(MX_OP_GETXATTR, MX_TIER_RM)};
	uint64_t tbytes = c->target_max_bytes / c->pg_num;
	uint64_t tobjects = (c->target_max_objects + c->pg_num - 1) / c->pg_num;
	uint64_t bytes = 0, objects = 0, dbytes = 0, dobjects = 0;
	size_t n = 0;
	int e;

	e = mx_client_list_pg(w->cache, pg, name_cb, w);
	if (e < 0)
		return;
	/* Keep the present copies, with their size, version and state. */
	for (size_t i = 0; i < w->n && !stopping(w->a); i++) {
		struct mx_client_read_result r;
		struct mx_osd_stat st;

		if (mx_client_read_ops(w->cache, w->v[i].name, rd, 4, &r) < 0)
			continue;
		if (r.ops[0].rval == 0 && r.ops[0].len == 1 && *(char *)r.ops[0].data == '1' &&
		    r.ops[2].rval == 0 && mx_osd_stat_decode(r.ops[2].data, r.ops[2].len, &st) == 0) {
			struct copy cp = w->v[i];

			cp.size = st.size;
			cp.dirty = r.ops[1].rval == 0;
			cp.removed = r.ops[3].rval == 0;
			mx_client_version_be(&r.ver, cp.ver);
			w->v[i] = w->v[n];
			w->v[n++] = cp;
			bytes += st.size;
			objects++;
			if (cp.dirty) {
				dbytes += st.size;
				dobjects++;
			}
		}
		mx_client_read_result_free(&r);
	}
	if (n > 1)
		qsort(w->v, n, sizeof(w->v[0]), by_version);
	for (size_t i = 0; i < n && !stopping(w->a) && mx_now_ns() < w->deadline_ns; i++) {
		if (!w->v[i].dirty ||
		    !(c->flush_all ||
		      over(dbytes, dobjects, tbytes, tobjects, c->cache_target_dirty_ratio)))
			continue;
		e = flush_one(w, w->v[i].name);
		if (e == -ESTALE)
			return; /* the tier changed: the next pass */
		if (e < 0) {
			mx_warn("tiering agent: flush of %s in pool %s: %s", w->v[i].name, c->name,
				strerror(-e));
			count(w->a, &w->a->stats.failed);
			continue;
		}
		if (e == 1) {
			count(w->a, &w->a->stats.flushed);
			w->v[i].dirty = false;
			dbytes -= w->v[i].size;
			dobjects--;
		}
	}
	for (size_t i = 0; i < n && !stopping(w->a) && mx_now_ns() < w->deadline_ns; i++) {
		if (w->v[i].dirty ||
		    !(c->flush_all ||
		      over(bytes, objects, tbytes, tobjects, c->cache_target_full_ratio)))
			continue;
		e = w->v[i].removed ? evict_removed(w, c, w->v[i].name)
				    : evict_one(w, w->v[i].name);
		if (e == -ESTALE)
			return;
		if (e < 0) {
			mx_warn("tiering agent: eviction of %s in pool %s: %s", w->v[i].name,
				c->name, strerror(-e));
			count(w->a, &w->a->stats.failed);
			continue;
		}
		if (e == 1) {
			count(w->a, &w->a->stats.evicted);
			bytes -= w->v[i].size;
			objects--;
		}
	}
}

static void walk_free(struct pg_walk *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->v[i].name);
	free(w->v);
	w->v = NULL;
	w->n = w->cap = 0;
}

/* One pass over every cache pool's PGs this OSD is primary of. */
static void pass(struct mx_agent *a, mixsan_cluster_t *cl, int32_t id)
{
	struct mx_map *m = mx_client_map_copy(cl);
	struct mx_placement *pl = NULL;
	int32_t acting[MX_MAX_SIZE];

	if (!m || mx_placement_new(m, &pl) < 0)
		goto out;
	for (uint32_t i = 0; i < m->n_pools && !stopping(a); i++) {
		const struct mx_pool *c = &m->pools[i];
		struct pg_walk w = {.a = a, .id = id};

		if (c->tier_of < 0 || (c->cache_mode == MX_CACHE_NONE && !c->flush_all) ||
		    c->pg_num == 0)
			continue;
		w.deadline_ns = mx_now_ns() + PASS_DEADLINE_NS;
		if (mx_client_pool_open_fenced(cl, c->id, m->epoch, 0, &w.cache) < 0 ||
		    mx_client_pool_open_fenced(cl, c->tier_of, m->epoch, 0, &w.base) < 0) {
			mixsan_pool_close(w.cache);
			continue;
		}
		for (uint32_t pg = 0; pg < c->pg_num && !stopping(a); pg++) {
			int n = mx_pg_acting(pl, m, c, pg, acting, MX_MAX_SIZE);

			if (n > 0 && acting[0] == id)
				walk_pg(&w, c, pg);
			walk_free(&w);
		}
		mixsan_pool_close(w.cache);
		mixsan_pool_close(w.base);
	}
	count(a, &a->stats.passes);
out:
	mx_placement_free(pl);
	mx_map_free(m);
}

/* The thread -------------------------------------------------------------- */

/* Wait for the next pass; false when stopping. */
static bool wait_turn(struct mx_agent *a, bool *wanted, int32_t *id)
{
	struct timespec ts;
	bool go;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += a->cfg.interval_ms / 1000;
	ts.tv_nsec += (long)(a->cfg.interval_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&a->lock);
	if (!a->stopping)
		pthread_cond_timedwait(&a->cond, &a->lock, &ts);
	go = !a->stopping;
	*wanted = a->wanted && a->id >= 0;
	*id = a->id;
	pthread_mutex_unlock(&a->lock);
	return go;
}

static void *agent_main(void *arg)
{
	struct mx_agent *a = arg;
	mixsan_cluster_t *cl = NULL;
	bool wanted;
	int32_t id;

	while (wait_turn(a, &wanted, &id)) {
		if (!wanted)
			continue;
		if (!cl) {
			struct mixsan_options o = {.op_timeout_ms = OP_TIMEOUT_MS,
						   .connect_timeout_ms = OP_TIMEOUT_MS,
						   .keyfile = a->keyfile};
			int e = mixsan_connect(a->mons, &o, &cl);

			if (e < 0) {
				mx_warn("tiering agent: cannot connect: %s %s", strerror(-e),
					mixsan_connect_error());
				cl = NULL;
				continue;
			}
		}
		pass(a, cl, id);
	}
	mixsan_shutdown(cl);
	return NULL;
}

int mx_agent_start(const struct mx_agent_config *cfg, struct mx_agent **out)
{
	struct mx_agent *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->cfg = *cfg;
	if (!a->cfg.interval_ms)
		a->cfg.interval_ms = 1000;
	a->mons = strdup(cfg->mons);
	a->keyfile = cfg->keyfile ? strdup(cfg->keyfile) : NULL;
	if (!a->mons || (cfg->keyfile && !a->keyfile)) {
		free(a->mons);
		free(a->keyfile);
		free(a);
		return -ENOMEM;
	}
	a->id = -1;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	if (pthread_create(&a->thread, NULL, agent_main, a) != 0) {
		pthread_mutex_destroy(&a->lock);
		pthread_cond_destroy(&a->cond);
		free(a->mons);
		free(a->keyfile);
		free(a);
		return -EAGAIN;
	}
	*out = a;
	return 0;
}

void mx_agent_want(struct mx_agent *a, bool want, int32_t id)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->wanted = want;
	a->id = id;
	pthread_mutex_unlock(&a->lock);
}

void mx_agent_stats(struct mx_agent *a, struct mx_agent_stats *out)
{
	pthread_mutex_lock(&a->lock);
	*out = a->stats;
	pthread_mutex_unlock(&a->lock);
}

void mx_agent_stop(struct mx_agent *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stopping = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a->mons);
	free(a->keyfile);
	free(a);
}

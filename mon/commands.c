/*
 * The monitor's commands (see commands.h).  Every command follows the same
 * shape: look up arguments, validate them all, then mutate.
 */
#include "commands.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balancer.h"
#include "pgstats.h"
#include "placement.h"
#include "util.h"

static int fail(int err, char *msg, size_t sz, const char *fmt, ...) MX_PRINTF(4, 5);

static int fail(int err, char *msg, size_t sz, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sz, fmt, ap);
	va_end(ap);
	return err;
}

static const char *arg(const struct mx_msg_command *c, const char *key)
{
	for (uint16_t i = 0; i < c->n_args; i++)
		if (strcmp(c->keys[i], key) == 0)
			return c->vals[i];
	return NULL;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	/* Digits only: strtoull would take spaces, a sign, and wrap "-1". */
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* "1.5" -> 16.16 fixed point.  Weights from 0 to 65535. */
static int parse_weight(const char *s, uint32_t *out)
{
	char *end;
	double v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !(v >= 0.0) || v > 65535.0)
		return -EINVAL;
	*out = (uint32_t)(v * (double)MX_WEIGHT_ONE + 0.5);
	return 0;
}

static int parse_policy(const char *s)
{
	if (strcmp(s, "primary") == 0)
		return MX_READ_PRIMARY;
	if (strcmp(s, "balance") == 0)
		return MX_READ_BALANCE;
	if (strcmp(s, "localize") == 0)
		return MX_READ_LOCALIZE;
	return -EINVAL;
}

static int pool_create(struct mx_map *m, const struct mx_msg_command *c, char *msg,
		       size_t sz)
{
	struct mx_pool p;
	const char *name = arg(c, "name"), *v;
	uint64_t n;
	int r;

	mx_pool_init(&p);
	if (!name || !mx_valid_name(name))
		return fail(-EINVAL, msg, sz,
			    "pool name must be 1-63 characters of [A-Za-z0-9._-]");
	if (mx_map_pool_by_name(m, name))
		return fail(-EEXIST, msg, sz, "pool '%s' already exists", name);
	snprintf(p.name, sizeof(p.name), "%s", name);
	p.id = m->next_pool_id;
	p.size = 3;
	if ((v = arg(c, "size"))) {
		if (parse_u64(v, MX_MAX_SIZE, &n) < 0 || n < 1)
			return fail(-EINVAL, msg, sz, "size must be 1 to %d", MX_MAX_SIZE);
		p.size = (uint8_t)n;
	}
	p.min_size = (uint8_t)(p.size - p.size / 2);
	if ((v = arg(c, "min_size"))) {
		if (parse_u64(v, MX_MAX_SIZE, &n) < 0 || n < 1 || n > p.size)
			return fail(-EINVAL, msg, sz, "min_size must be 1 to size (%u)", p.size);
		p.min_size = (uint8_t)n;
	}
	p.pg_num = 64;
	if ((v = arg(c, "pg_num"))) {
		if (parse_u64(v, MX_MAX_PG_NUM, &n) < 0 || n < 1)
			return fail(-EINVAL, msg, sz, "pg_num must be 1 to %d", MX_MAX_PG_NUM);
		p.pg_num = (uint32_t)n;
	}
	p.failure_domain = MX_LEVEL_HOST;
	if ((v = arg(c, "failure_domain"))) {
		int l = mx_level_from_name(v);

		if (l < 0 || l >= MX_LEVEL_ROOT)
			return fail(-EINVAL, msg, sz,
				    "failure domain '%s' is not one of osd, host, chassis, "
				    "rack, row, datacenter, zone, region", v);
		p.failure_domain = (uint8_t)l;
	}
	snprintf(p.root_name, sizeof(p.root_name), "%s",
		 (v = arg(c, "root")) ? v : "default");
	if ((v = arg(c, "device_class"))) {
		if (*v && (strlen(v) >= MX_CLASS_MAX || !mx_valid_name(v)))
			return fail(-EINVAL, msg, sz, "bad device class '%s'", v);
		snprintf(p.device_class, sizeof(p.device_class), "%s", v);
	}
	if ((v = arg(c, "read_policy"))) {
		r = parse_policy(v);
		if (r < 0)
			return fail(-EINVAL, msg, sz,
				    "read policy must be primary, balance or localize");
		p.read_policy = (uint8_t)r;
	}
	p.created_epoch = m->epoch + 1;
	r = mx_pool_validate(&p);
	if (r < 0)
		return fail(r, msg, sz, "invalid pool definition");
	r = mx_map_add_pool(m, &p);
	if (r < 0)
		return fail(r, msg, sz, "cannot add pool: %s", strerror(-r));
	m->next_pool_id++;
	/* A new pool holds no data: balance its PGs now, for free. */
	{
		struct mx_pg_upmap *u = NULL;
		uint32_t nu = 0;

		if (mx_balance(m, p.id, 100000, 0.05, &u, &nu, NULL) == 0 && nu)
			(void)mx_map_set_upmaps(m, p.id, u, nu);
		free(u);
	}
	snprintf(msg, sz, "pool '%s' created (id %d, size %u, min_size %u, pg_num %u, "
		 "failure domain %s)", p.name, p.id, p.size, p.min_size, p.pg_num,
		 mx_level_name(p.failure_domain));
	return 1;
}

static struct mx_pool *pool_arg(struct mx_map *m, const struct mx_msg_command *c)
{
	const char *name = arg(c, "name");

	if (!name)
		return NULL;
	return (struct mx_pool *)mx_map_pool_by_name(m, name);
}

/* The name of pool id, for messages. */
static const char *pool_name(const struct mx_map *m, int32_t id)
{
	const struct mx_pool *p = mx_map_pool_by_id(m, id);

	return p ? p->name : "?";
}

static int pool_rm(struct mx_map *m, const struct mx_msg_command *c, char *msg, size_t sz)
{
	struct mx_pool *p = pool_arg(m, c);

	if (!p)
		return fail(-ENOENT, msg, sz, "no such pool '%s'",
			    arg(c, "name") ? arg(c, "name") : "");
	if (p->tier_of >= 0)
		return fail(-EBUSY, msg, sz,
			    "pool '%s' is the cache tier of '%s': remove the tier first "
			    "(pool tier rm %s %s)", p->name, pool_name(m, p->tier_of),
			    pool_name(m, p->tier_of), p->name);
	if (p->tier >= 0)
		return fail(-EBUSY, msg, sz,
			    "pool '%s' has the cache tier '%s': remove the tier first "
			    "(pool tier rm %s %s)", p->name, pool_name(m, p->tier), p->name,
			    pool_name(m, p->tier));
	snprintf(msg, sz, "pool '%s' removed", p->name);
	(void)mx_map_remove_pool(m, p->id);
	return 1;
}

/* "0.4" -> 400: a ratio from 0 to 1 in thousandths (digits after the
 * third decimal must be zeros).  No signs, exponents or spaces. */
static int parse_ratio(const char *s, uint16_t *out)
{
	uint32_t whole = 0, frac = 0, scale = 1000;
	int nd = 0, nf = 0;

	if (!s)
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++, nd++) {
		if (nd >= 4)
			return -EINVAL;
		whole = whole * 10 + (uint32_t)(*s - '0');
	}
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++, nf++) {
			if (nf >= 3) {
				if (*s != '0')
					return -EINVAL;
				continue;
			}
			scale /= 10;
			frac += (uint32_t)(*s - '0') * scale;
		}
		if (!nf)
			return -EINVAL;
	}
	if (*s || (!nd && !nf))
		return -EINVAL;
	if (whole > 1 || whole * 1000 + frac > 1000)
		return -EINVAL;
	*out = (uint16_t)(whole * 1000 + frac);
	return 0;
}

/* 400 -> "0.4", 1000 -> "1", 125 -> "0.125". */
static const char *ratio_str(uint16_t permille, char *buf, size_t sz)
{
	size_t n;

	snprintf(buf, sz, "%u.%03u", permille / 1000u, permille % 1000u);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '0')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '.')
		buf[--n] = '\0';
	return buf;
}

/* The settings of a cache pool (docs/cache-tiering.md), set with pool set. */
static bool cache_setting(const char *key)
{
	static const char *const keys[] = {
		"target_max_bytes", "target_max_objects", "cache_target_dirty_ratio",
		"cache_target_full_ratio", "promote_min_hits", "hit_period_s",
	};

	for (size_t i = 0; i < MX_ARRAY_SIZE(keys); i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

/* Set cache setting key of np (a pool's copy) to val.  0 or a
 * negative errno with the reason in msg. */
static int set_cache_setting(struct mx_pool *np, const char *key, const char *val, char *msg,
			     size_t sz)
{
	char a[16], b[16];
	uint16_t ratio;
	uint64_t n;

	if (np->tier_of < 0)
		return fail(-EINVAL, msg, sz,
			    "%s is a setting of cache pools, and pool '%s' is not one "
			    "(pool tier add BASE %s makes it one)", key, np->name, np->name);
	if (strcmp(key, "target_max_bytes") == 0 || strcmp(key, "target_max_objects") == 0) {
		/* At most 2^63 - 1, so that it stays a JSON integer everywhere. */
		if (parse_u64(val, INT64_MAX, &n) < 0)
			return fail(-EINVAL, msg, sz,
				    "%s must be a whole number below 2^63 (0: unset), not '%s'", key,
				    val);
		if (strcmp(key, "target_max_bytes") == 0)
			np->target_max_bytes = n;
		else
			np->target_max_objects = n;
	} else if (strcmp(key, "cache_target_dirty_ratio") == 0 ||
		   strcmp(key, "cache_target_full_ratio") == 0) {
		bool dirty = strcmp(key, "cache_target_dirty_ratio") == 0;

		if (parse_ratio(val, &ratio) < 0)
			return fail(-EINVAL, msg, sz,
				    "%s must be a ratio from 0 to 1 in thousandths at most "
				    "(e.g. 0.4 or 0.125), not '%s'", key, val);
		if (dirty && ratio > np->cache_target_full_ratio)
			return fail(-EINVAL, msg, sz,
				    "cache_target_dirty_ratio (%s) must not exceed "
				    "cache_target_full_ratio (%s)", ratio_str(ratio, a, sizeof(a)),
				    ratio_str(np->cache_target_full_ratio, b, sizeof(b)));
		if (!dirty && ratio < np->cache_target_dirty_ratio)
			return fail(-EINVAL, msg, sz,
				    "cache_target_full_ratio (%s) must not be below "
				    "cache_target_dirty_ratio (%s)", ratio_str(ratio, a, sizeof(a)),
				    ratio_str(np->cache_target_dirty_ratio, b, sizeof(b)));
		if (dirty)
			np->cache_target_dirty_ratio = ratio;
		else
			np->cache_target_full_ratio = ratio;
	} else if (strcmp(key, "promote_min_hits") == 0) {
		if (parse_u64(val, MX_PROMOTE_HITS_MAX, &n) < 0 || n < MX_PROMOTE_HITS_MIN)
			return fail(-EINVAL, msg, sz, "promote_min_hits must be %d to %d",
				    MX_PROMOTE_HITS_MIN, MX_PROMOTE_HITS_MAX);
		np->promote_min_hits = (uint8_t)n;
	} else {
		if (parse_u64(val, MX_HIT_PERIOD_MAX, &n) < 0 || n < MX_HIT_PERIOD_MIN)
			return fail(-EINVAL, msg, sz, "hit_period_s must be %d to %d seconds",
				    MX_HIT_PERIOD_MIN, MX_HIT_PERIOD_MAX);
		np->hit_period_s = (uint32_t)n;
	}
	return 0;
}

static int pool_set(struct mx_map *m, const struct mx_msg_command *c, char *msg, size_t sz)
{
	struct mx_pool *p = pool_arg(m, c);
	struct mx_pool np;
	const char *key = arg(c, "key"), *val = arg(c, "value");
	uint64_t n;
	int r;

	if (!p)
		return fail(-ENOENT, msg, sz, "no such pool '%s'",
			    arg(c, "name") ? arg(c, "name") : "");
	if (!key || !val)
		return fail(-EINVAL, msg, sz, "pool set needs a key and a value");
	np = *p;
	if (strcmp(key, "size") == 0) {
		if (parse_u64(val, MX_MAX_SIZE, &n) < 0 || n < 1)
			return fail(-EINVAL, msg, sz, "size must be 1 to %d", MX_MAX_SIZE);
		np.size = (uint8_t)n;
		if (np.min_size > np.size)
			np.min_size = np.size;
	} else if (strcmp(key, "min_size") == 0) {
		if (parse_u64(val, MX_MAX_SIZE, &n) < 0 || n < 1 || n > np.size)
			return fail(-EINVAL, msg, sz, "min_size must be 1 to size (%u)",
				    np.size);
		np.min_size = (uint8_t)n;
	} else if (strcmp(key, "read_policy") == 0) {
		r = parse_policy(val);
		if (r < 0)
			return fail(-EINVAL, msg, sz,
				    "read policy must be primary, balance or localize");
		np.read_policy = (uint8_t)r;
	} else if (strcmp(key, "pg_num") == 0) {
		if (parse_u64(val, MX_MAX_PG_NUM, &n) < 0 || n < 1)
			return fail(-EINVAL, msg, sz, "pg_num must be 1 to %d", MX_MAX_PG_NUM);
		if (n != np.pg_num)
			return fail(-ENOTSUP, msg, sz,
				    "changing pg_num of a pool is not supported yet");
	} else if (cache_setting(key)) {
		r = set_cache_setting(&np, key, val, msg, sz);
		if (r < 0)
			return r;
	} else if (strcmp(key, "tier_of") == 0 || strcmp(key, "tier") == 0 ||
		   strcmp(key, "cache_mode") == 0 || strcmp(key, "flush_all") == 0) {
		return fail(-EINVAL, msg, sz,
			    "%s is set by the pool tier commands (pool tier add, mode, rm)", key);
	} else {
		return fail(-EINVAL, msg, sz,
			    "unknown pool setting '%s' (size, min_size, read_policy, pg_num; "
			    "on a cache pool target_max_bytes, target_max_objects, "
			    "cache_target_dirty_ratio, cache_target_full_ratio, promote_min_hits, "
			    "hit_period_s)", key);
	}
	r = mx_pool_validate(&np);
	if (r < 0)
		return fail(r, msg, sz, "invalid value for %s", key);
	if (memcmp(&np, p, sizeof(np)) == 0)
		return 0;
	*p = np;
	snprintf(msg, sz, "pool '%s': %s = %s", p->name, key, val);
	return 1;
}

/*
 * Cache tiering (docs/cache-tiering.md, "Commands and map").  The links
 * stay mutual (mx_map_tiers_valid): pool_tier_add sets both, pool_tier_rm
 * clears both, pool_rm refuses a pool that has either.  A cache's mode
 * moves between none, writeback and readonly by pool_tier_mode:
 *
 *   none --> writeback         flush_all cleared
 *   writeback/readonly --> none
 *                              flush_all set: the cache may hold copies,
 *                              so clients drain it rather than bypass it,
 *                              and the agent is to flush every dirty one
 *   none --> readonly          only while flush_all is clear (no copy of
 *                              the draining may be dirty)
 *   readonly --> writeback
 *   writeback --> readonly     refused: dirty objects would stay unflushed
 *
 * Every change sets tier_epoch on both pools: OSDs refuse requests routed
 * by an older map (the fence).
 *
 * pool_tier_rm requires mode none.  The client library routes by these
 * fields (client/tier.c) and the OSDs' agents flush and evict by them
 * (osd/agent.c).
 */

/* Whether cache may become a cache pool as far as its contents go: the
 * monitor must see it empty in its PG statistics; when it cannot tell
 * (no fresh report from some PG's active primary), force (the operator's
 * word that it is empty) lets it through.  0, or a negative errno with the
 * reason in msg. */
static int cache_empty(const struct mx_mon_cmd_env *env, const struct mx_pool *cache,
		       bool force, char *msg, size_t sz)
{
	uint64_t objects = 0;
	uint32_t unsure = 0;
	int r = -ENOENT;

	if (env && env->pgstats)
		r = mx_pgstats_pool_objects(env->pgstats, cache->id, env->now_ms, &objects,
					    &unsure);
	if (objects)
		return fail(-ENOTEMPTY, msg, sz,
			    "pool '%s' holds %" PRIu64 " object%s%s: a cache pool must be empty "
			    "when it is added", cache->name, objects, objects == 1 ? "" : "s",
			    r < 0 ? " or more" : "");
	if (r == 0 || force)
		return 0;
	if (r == -EAGAIN)
		return fail(-EAGAIN, msg, sz,
			    "cannot tell whether pool '%s' is empty: %u of its %u PGs have no "
			    "fresh report from an active primary (wait until they are active, "
			    "or add --yes-i-really-mean-it if you know it is empty)",
			    cache->name, unsure, cache->pg_num);
	return fail(-EAGAIN, msg, sz,
		    "cannot tell whether pool '%s' is empty: the monitor has no PG statistics "
		    "of it (add --yes-i-really-mean-it if you know it is empty)", cache->name);
}

/* The pools named base and cache, or -ENOENT with the message. */
static int tier_pools(struct mx_map *m, const char *bn, const char *cn, struct mx_pool **base,
		      struct mx_pool **cache, char *msg, size_t sz)
{
	*base = (struct mx_pool *)mx_map_pool_by_name(m, bn);
	*cache = (struct mx_pool *)mx_map_pool_by_name(m, cn);
	if (!*base)
		return fail(-ENOENT, msg, sz, "no such pool '%s'", bn);
	if (!*cache)
		return fail(-ENOENT, msg, sz, "no such pool '%s'", cn);
	return 0;
}

/* "pool tier add" base= cache= [force=1]: cache fronts base, mode none. */
static int pool_tier_add(struct mx_map *m, const struct mx_msg_command *c,
			 const struct mx_mon_cmd_env *env, char *msg, size_t sz)
{
	const char *bn = arg(c, "base"), *cn = arg(c, "cache"), *force = arg(c, "force");
	struct mx_pool *base, *cache;
	int r;

	if (!bn || !cn)
		return fail(-EINVAL, msg, sz, "pool tier add needs base= and cache=");
	if (force && strcmp(force, "1") != 0)
		return fail(-EINVAL, msg, sz, "force must be 1 if given");
	r = tier_pools(m, bn, cn, &base, &cache, msg, sz);
	if (r < 0)
		return r;
	if (base == cache)
		return fail(-EINVAL, msg, sz, "pool '%s' cannot be a cache tier of itself", bn);
	if (cache->tier_of >= 0)
		return fail(-EBUSY, msg, sz, "pool '%s' is already the cache tier of '%s'", cn,
			    pool_name(m, cache->tier_of));
	if (cache->tier >= 0)
		return fail(-EBUSY, msg, sz,
			    "pool '%s' has a cache tier of its own ('%s'): a base pool cannot "
			    "be a cache", cn, pool_name(m, cache->tier));
	if (base->tier >= 0)
		return fail(-EBUSY, msg, sz, "pool '%s' already has the cache tier '%s'", bn,
			    pool_name(m, base->tier));
	if (base->tier_of >= 0)
		return fail(-EBUSY, msg, sz,
			    "pool '%s' is itself the cache tier of '%s': tiers do not stack", bn,
			    pool_name(m, base->tier_of));
	r = cache_empty(env, cache, force != NULL, msg, sz);
	if (r < 0)
		return r;
	base->tier = cache->id;
	cache->tier_of = base->id;
	cache->cache_mode = MX_CACHE_NONE;
	cache->flush_all = 0;
	base->tier_epoch = cache->tier_epoch = m->epoch + 1; /* the fence */
	snprintf(msg, sz,
		 "pool '%s' is now the cache tier of '%s', in mode none (pool tier mode %s "
		 "writeback|readonly sets one)", cn, bn, cn);
	return 1;
}

/* "pool tier mode" pool=CACHE mode=none|writeback|readonly. */
static int pool_tier_mode(struct mx_map *m, const struct mx_msg_command *c, char *msg,
			  size_t sz)
{
	const char *pn = arg(c, "pool"), *mn = arg(c, "mode");
	struct mx_pool *p;
	int mode;

	if (!pn || !mn)
		return fail(-EINVAL, msg, sz, "pool tier mode needs pool= and mode=");
	p = (struct mx_pool *)mx_map_pool_by_name(m, pn);
	if (!p)
		return fail(-ENOENT, msg, sz, "no such pool '%s'", pn);
	mode = mx_cache_mode_from_name(mn);
	if (mode < 0)
		return fail(-EINVAL, msg, sz, "cache mode must be writeback, readonly or none, "
			    "not '%s'", mn);
	if (p->tier_of < 0)
		return fail(-EINVAL, msg, sz,
			    "pool '%s' is not a cache tier (pool tier add BASE %s makes it one)",
			    pn, pn);
	if (mode == p->cache_mode) {
		snprintf(msg, sz, "pool '%s' is in mode %s already", pn, mn);
		return 0;
	}
	if (mode == MX_CACHE_READONLY && p->cache_mode == MX_CACHE_WRITEBACK)
		return fail(-EBUSY, msg, sz,
			    "pool '%s' is in writeback mode and may hold dirty objects, which "
			    "readonly mode would never flush: set mode none first", pn);
	if (mode == MX_CACHE_READONLY && p->flush_all)
		return fail(-EBUSY, msg, sz,
			    "pool '%s' is draining and may hold dirty objects (a flush of all is "
			    "pending): remove the tier and add it again once the pool is empty",
			    pn);
	if (mode == MX_CACHE_NONE)
		p->flush_all = 1; /* it may hold copies: drain, never bypass */
	if (mode == MX_CACHE_WRITEBACK)
		p->flush_all = 0;
	p->cache_mode = (uint8_t)mode;
	p->tier_epoch = m->epoch + 1; /* the fence, on both pools */
	if (p->tier_of >= 0) {
		struct mx_pool *base = (struct mx_pool *)mx_map_pool_by_id(m, p->tier_of);

		if (base)
			base->tier_epoch = p->tier_epoch;
	}
	snprintf(msg, sz, "pool '%s': cache mode %s%s", pn, mn,
		 p->flush_all ? " (draining: every dirty object is to be flushed to the base)"
			      : "");
	return 1;
}

/* "pool tier rm" base= cache= [force=1]: only in mode none, and while the
 * cache drains (flush_all: copies may remain, which the monitor cannot
 * see) only forced, as the command line does once its census of the cache
 * found no copy; clears both links. */
static int pool_tier_rm(struct mx_map *m, const struct mx_msg_command *c, char *msg,
			size_t sz)
{
	const char *bn = arg(c, "base"), *cn = arg(c, "cache"), *force = arg(c, "force");
	struct mx_pool *base, *cache;
	int r;

	if (!bn || !cn)
		return fail(-EINVAL, msg, sz, "pool tier rm needs base= and cache=");
	if (force && strcmp(force, "1") != 0)
		return fail(-EINVAL, msg, sz, "force must be 1 if given");
	r = tier_pools(m, bn, cn, &base, &cache, msg, sz);
	if (r < 0)
		return r;
	if (cache->tier_of != base->id || base->tier != cache->id)
		return fail(-EINVAL, msg, sz, "pool '%s' is not the cache tier of '%s'", cn, bn);
	if (cache->cache_mode == MX_CACHE_WRITEBACK)
		return fail(-EBUSY, msg, sz,
			    "pool '%s' is in writeback mode and may hold dirty objects: set mode "
			    "none first (pool tier mode %s none), which has them all flushed to "
			    "the base", cn, cn);
	if (cache->cache_mode != MX_CACHE_NONE)
		return fail(-EBUSY, msg, sz,
			    "pool '%s' is in %s mode: set mode none first (pool tier mode %s none)",
			    cn, mx_cache_mode_name(cache->cache_mode), cn);
	if (cache->flush_all && !force)
		return fail(-EBUSY, msg, sz,
			    "pool '%s' is draining and may still hold dirty objects, which nothing "
			    "has flushed to the base yet: removing the tier would lose the writes "
			    "they hold (--yes-i-really-mean-it removes it all the same)",
			    cn);
	base->tier = -1;
	cache->tier_of = -1;
	cache->flush_all = 0;
	base->tier_epoch = cache->tier_epoch = m->epoch + 1; /* the fence */
	snprintf(msg, sz, "pool '%s' is no longer the cache tier of '%s'", cn, bn);
	return 1;
}

static int osd_arg(struct mx_map *m, const struct mx_msg_command *c, char *msg, size_t sz,
		   struct mx_osd_info **out)
{
	uint64_t id;

	if (parse_u64(arg(c, "id"), MX_MAX_OSDS - 1, &id) < 0)
		return fail(-EINVAL, msg, sz, "an OSD id is a number");
	if (!mx_map_osd(m, (int32_t)id))
		return fail(-ENOENT, msg, sz, "osd.%" PRIu64 " does not exist", id);
	*out = &m->osds[id];
	return (int)id;
}

static int osd_cmd(struct mx_map *m, const struct mx_msg_command *c, const char *what,
		   char *msg, size_t sz)
{
	struct mx_osd_info *o = NULL;
	int id = osd_arg(m, c, msg, sz, &o);
	uint32_t w;

	if (id < 0)
		return id;
	if (strcmp(what, "out") == 0) {
		if (!o->in)
			return 0;
		o->in = false;
	} else if (strcmp(what, "in") == 0) {
		if (o->in)
			return 0;
		o->in = true;
	} else if (strcmp(what, "down") == 0) {
		if (!o->up)
			return 0;
		o->up = false;
	} else if (strcmp(what, "reweight") == 0) {
		if (parse_weight(arg(c, "weight"), &w) < 0)
			return fail(-EINVAL, msg, sz, "weight must be a number from 0 to 65535");
		if (o->weight == w)
			return 0;
		o->weight = w;
	} else if (strcmp(what, "rm") == 0) {
		if (o->up)
			return fail(-EBUSY, msg, sz, "osd.%d is up; stop it first", id);
		memset(o, 0, sizeof(*o));
	} else {
		return fail(-EINVAL, msg, sz, "unknown osd command '%s'", what);
	}
	snprintf(msg, sz, "osd.%d: %s", id, what);
	return 1;
}

/* Even out PG replicas per OSD with upmap exceptions (lib/balancer.c). */
static int balancer_run(struct mx_map *m, const struct mx_msg_command *c, char *msg,
			size_t sz)
{
	const char *pool_name = arg(c, "pool"), *v;
	struct mx_balance_stats st;
	struct mx_pg_upmap *u = NULL;
	uint32_t n = 0, max_changes = 1000;
	int32_t pool = -1;
	double dev = 0.05;
	uint64_t x;
	char *end;
	int r;

	if (pool_name && *pool_name) {
		const struct mx_pool *p = mx_map_pool_by_name(m, pool_name);

		if (!p)
			return fail(-ENOENT, msg, sz, "no such pool '%s'", pool_name);
		pool = p->id;
	}
	if ((v = arg(c, "max_deviation"))) {
		dev = strtod(v, &end);
		if (*end || !(dev > 0.0) || dev > 1.0)
			return fail(-EINVAL, msg, sz, "max_deviation must be above 0 and at most 1");
	}
	if ((v = arg(c, "max_changes"))) {
		if (parse_u64(v, 1000000, &x) < 0 || x == 0)
			return fail(-EINVAL, msg, sz, "max_changes must be 1 to 1000000");
		max_changes = (uint32_t)x;
	}
	r = mx_balance(m, pool, max_changes, dev, &u, &n, &st);
	if (r < 0)
		return fail(r, msg, sz, "the balancer failed: %s", strerror(-r));
	if (st.moves == 0 && st.dropped == 0) {
		free(u);
		snprintf(msg, sz, "already balanced: worst OSD %.1f%% from its share",
			 st.max_dev_after * 100.0);
		return 0;
	}
	r = mx_map_set_upmaps(m, pool, u, n);
	free(u);
	if (r < 0)
		return fail(r, msg, sz, "cannot store the upmaps: %s", strerror(-r));
	snprintf(msg, sz, "balanced: %u moves, %u stale exceptions dropped, %u PGs with "
		 "exceptions; worst OSD %.1f%% -> %.1f%% from its share (%u still outside)",
		 st.moves, st.dropped, st.n_upmaps, st.max_dev_before * 100.0,
		 st.max_dev_after * 100.0, st.outside_after);
	return 1;
}

/* Whether osd is in the up set of (pool, pg) under m. */
static bool in_up_set(const struct mx_map *m, const struct mx_placement *pl,
		      const struct mx_pool *pool, uint32_t pg, int32_t osd)
{
	int32_t up[MX_MAX_SIZE];
	int n = mx_pg_up(pl, pool, pg, up, MX_MAX_SIZE);

	for (int i = 0; i < n; i++)
		if (up[i] == osd)
			return true;
	return false;
}

/* Whether a primary_temp of osd for (pool, pg) may stand in m. */
static bool ptemp_valid(const struct mx_map *m, const struct mx_placement *pl, int32_t pool_id,
			uint32_t pg, int32_t osd)
{
	const struct mx_pool *pool = mx_map_pool_by_id(m, pool_id);
	const struct mx_osd_info *o = mx_map_osd(m, osd);

	return pool && pg < pool->pg_num && o && o->up && o->in &&
	       in_up_set(m, pl, pool, pg, osd);
}

/*
 * "pg primary-temp" set=POOL.PG:OSD[,POOL.PG:OSD...] (OSD -1 clears): the
 * primaries' requests (docs/recovery.md, "primary_temp"), batched.  An
 * entry that no longer fits the map (the OSD down, out or not in the PG's
 * up set any more) is skipped: the map moved on since it was asked.
 */
static int pg_primary_temp(struct mx_map *m, const struct mx_msg_command *c, char *msg,
			   size_t sz)
{
	const char *set = arg(c, "set");
	struct mx_placement *pl = NULL;
	unsigned changed = 0, skipped = 0;
	char buf[4096], *save = NULL;
	int r;

	if (!set || strlen(set) >= sizeof(buf))
		return fail(-EINVAL, msg, sz, "pg primary-temp needs set=POOL.PG:OSD,...");
	snprintf(buf, sizeof(buf), "%s", set);
	/* Syntax first, so that a malformed request changes nothing. */
	for (char *e = strtok_r(buf, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
		long pool, osd;
		unsigned long pg;
		int used = 0;

		if (sscanf(e, "%ld.%lu:%ld%n", &pool, &pg, &osd, &used) != 3 ||
		    (size_t)used != strlen(e) || pool < 0 || pool > INT32_MAX ||
		    pg >= MX_MAX_PG_NUM || osd < -1 || osd >= MX_MAX_OSDS)
			return fail(-EINVAL, msg, sz, "bad primary-temp entry '%s' (POOL.PG:OSD)",
				    e);
	}
	r = mx_placement_new(m, &pl);
	if (r < 0)
		return fail(r, msg, sz, "cannot compute placement: %s", strerror(-r));
	snprintf(buf, sizeof(buf), "%s", set);
	for (char *e = strtok_r(buf, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
		long pool, osd;
		unsigned long pg;

		(void)sscanf(e, "%ld.%lu:%ld", &pool, &pg, &osd);
		if (osd >= 0 && !ptemp_valid(m, pl, (int32_t)pool, (uint32_t)pg, (int32_t)osd)) {
			skipped++;
			continue;
		}
		if (mx_map_primary_temp(m, (int32_t)pool, (uint32_t)pg) == (int32_t)osd ||
		    (osd < 0 && mx_map_primary_temp(m, (int32_t)pool, (uint32_t)pg) < 0))
			continue;
		r = mx_map_set_primary_temp(m, (int32_t)pool, (uint32_t)pg, (int32_t)osd);
		if (r < 0) {
			mx_placement_free(pl);
			return fail(r, msg, sz, "out of memory");
		}
		changed++;
	}
	mx_placement_free(pl);
	snprintf(msg, sz, "%u primary-temp entries changed, %u skipped", changed, skipped);
	return changed ? 1 : 0;
}

int mx_mon_prune_primary_temps(struct mx_map *m)
{
	struct mx_placement *pl = NULL;
	int dropped = 0;

	if (!m->n_ptemps || mx_placement_new(m, &pl) < 0)
		return 0;
	for (uint32_t i = 0; i < m->n_ptemps;) {
		const struct mx_primary_temp t = m->ptemps[i];

		if (ptemp_valid(m, pl, t.pool, t.pg, t.osd)) {
			i++;
			continue;
		}
		(void)mx_map_set_primary_temp(m, t.pool, t.pg, -1);
		dropped++;
	}
	mx_placement_free(pl);
	return dropped;
}

int mx_mon_command(struct mx_map *m, const struct mx_msg_command *cmd, char *msg,
		   size_t msgsz)
{
	return mx_mon_command_env(m, cmd, NULL, msg, msgsz);
}

int mx_mon_command_env(struct mx_map *m, const struct mx_msg_command *cmd,
		       const struct mx_mon_cmd_env *env, char *msg, size_t msgsz)
{
	const char *p = cmd->prefix;

	msg[0] = '\0';
	if (strcmp(p, "pool create") == 0)
		return pool_create(m, cmd, msg, msgsz);
	if (strcmp(p, "pool rm") == 0)
		return pool_rm(m, cmd, msg, msgsz);
	if (strcmp(p, "pool set") == 0)
		return pool_set(m, cmd, msg, msgsz);
	if (strcmp(p, "pool tier add") == 0)
		return pool_tier_add(m, cmd, env, msg, msgsz);
	if (strcmp(p, "pool tier mode") == 0)
		return pool_tier_mode(m, cmd, msg, msgsz);
	if (strcmp(p, "pool tier rm") == 0)
		return pool_tier_rm(m, cmd, msg, msgsz);
	if (strncmp(p, "osd ", 4) == 0)
		return osd_cmd(m, cmd, p + 4, msg, msgsz);
	if (strcmp(p, "balancer run") == 0)
		return balancer_run(m, cmd, msg, msgsz);
	if (strcmp(p, "pg primary-temp") == 0)
		return pg_primary_temp(m, cmd, msg, msgsz);
	return fail(-ENOTSUP, msg, msgsz, "unknown command '%s'", p);
}

int mx_mon_osd_boot(struct mx_map *m, const struct mx_msg_osd_boot *b, char *msg,
		    size_t msgsz)
{
	static const uint8_t zero[16];
	struct mx_loc loc[MX_LOC_MAX];
	uint8_t nloc;
	int32_t id = b->osd_id;
	struct mx_osd_info *o = NULL;
	bool fresh = false;
	int r;

	if (memcmp(b->uuid, zero, 16) == 0)
		return fail(-EINVAL, msg, msgsz, "an OSD must present a uuid");
	if (strlen(b->addr) == 0 || strlen(b->addr) >= MX_ADDR_MAX)
		return fail(-EINVAL, msg, msgsz, "bad OSD address");
	if (mx_loc_parse(b->location, loc, &nloc) < 0)
		return fail(-EINVAL, msg, msgsz, "bad location '%s'", b->location);
	if (b->device_class[0] &&
	    (strlen(b->device_class) >= MX_CLASS_MAX || !mx_valid_name(b->device_class)))
		return fail(-EINVAL, msg, msgsz, "bad device class '%s'", b->device_class);
	if (id < -1 || id >= MX_MAX_OSDS)
		return fail(-EINVAL, msg, msgsz, "bad OSD id %d", id);
	if (id == -1) {
		for (uint32_t i = 0; i < m->max_osd; i++)
			if (m->osds[i].exists && memcmp(m->osds[i].uuid, b->uuid, 16) == 0)
				id = (int32_t)i;
	}
	if (id == -1) {
		for (id = 0; (uint32_t)id < m->max_osd && m->osds[id].exists; id++)
			;
		if (id >= MX_MAX_OSDS)
			return fail(-ENOSPC, msg, msgsz, "too many OSDs");
	}
	r = mx_map_set_max_osd(m, (uint32_t)id + 1);
	if (r < 0)
		return fail(r, msg, msgsz, "out of memory");
	o = &m->osds[id];
	if (o->exists && memcmp(o->uuid, b->uuid, 16) != 0)
		return fail(-EEXIST, msg, msgsz, "osd.%d belongs to another OSD (uuid differs)",
			    id);
	if (!o->exists) {
		fresh = true;
		memset(o, 0, sizeof(*o));
		o->exists = true;
		o->in = true;
		o->weight = MX_WEIGHT_ONE;
		memcpy(o->uuid, b->uuid, 16);
	}
	if (b->weight)
		o->weight = b->weight;
	o->up = true;
	o->up_from = m->epoch + 1;
	o->incarnation++;
	snprintf(o->addr, sizeof(o->addr), "%s", b->addr);
	memcpy(o->loc, loc, sizeof(loc));
	o->nloc = nloc;
	snprintf(o->device_class, sizeof(o->device_class), "%s", b->device_class);
	snprintf(msg, msgsz, "osd.%d %s at %s", id, fresh ? "created" : "booted", o->addr);
	return id;
}

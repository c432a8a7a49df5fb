/*
 * Unit tests of the monitor's commands: pool creation and validation, pool
 * settings, OSD boot (new, by uuid, by id, conflicts) and OSD state changes,
 * primary_temp, and the cache-tiering commands.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "commands.h"
#include "pgstats.h"
#include "placement.h"
#include "quorum.h"

static char last_msg[512]; /* the words of the last command run */

static int run_env(struct mx_map *m, const struct mx_mon_cmd_env *env, const char *prefix,
		   const char *const *kv, int n)
{
	struct mx_msg_command c;

	memset(&c, 0, sizeof(c));
	c.prefix = prefix;
	c.n_args = (uint16_t)n;
	for (int i = 0; i < n; i++) {
		c.keys[i] = kv[2 * i];
		c.vals[i] = kv[2 * i + 1];
	}
	return mx_mon_command_env(m, &c, env, last_msg, sizeof(last_msg));
}

static int run(struct mx_map *m, const char *prefix, const char *const *kv, int n)
{
	return run_env(m, NULL, prefix, kv, n);
}

static int boot(struct mx_map *m, int32_t id, uint8_t u, const char *loc)
{
	struct mx_msg_osd_boot b;
	char msg[512];

	memset(&b, 0, sizeof(b));
	b.osd_id = id;
	memset(b.uuid, u, 16);
	b.addr = "127.0.0.1:7000";
	b.location = loc;
	b.device_class = "";
	return mx_mon_osd_boot(m, &b, msg, sizeof(msg));
}

/* pg primary-temp: set for an up member, skipped otherwise, cleared;
 * pruned when its OSD goes out. */
static void test_primary_temp(void)
{
	struct mx_map *m = mx_map_new();
	const char *kv[] = {"name", "p", "size", "3", "pg_num", "8"};
	struct mx_placement *pl = NULL;
	const struct mx_pool *pool;
	int32_t up[MX_MAX_SIZE], act[MX_MAX_SIZE], outsider = -1;
	char set[64];
	const char *a[] = {"set", set};

	for (int i = 0; i < 4; i++) {
		char loc[16];

		snprintf(loc, sizeof(loc), "host=h%d", i);
		CHECK_EQ_INT(boot(m, -1, (uint8_t)(10 + i), loc), i);
	}
	CHECK_EQ_INT(run(m, "pool create", kv, 3), 1);
	pool = mx_map_pool_by_name(m, "p");
	CHECK(pool != NULL);
	if (!pool || mx_placement_new(m, &pl) < 0) {
		mx_map_free(m);
		return;
	}
	CHECK_EQ_INT(mx_pg_up(pl, pool, 5, up, MX_MAX_SIZE), 3);
	for (int32_t o = 0; o < 4; o++)
		if (o != up[0] && o != up[1] && o != up[2])
			outsider = o;
	snprintf(set, sizeof(set), "%d.5:%d", pool->id, up[2]);
	CHECK_EQ_INT(run(m, "pg primary-temp", a, 1), 1);
	CHECK_EQ_INT(run(m, "pg primary-temp", a, 1), 0); /* no change */
	CHECK_EQ_INT(mx_map_primary_temp(m, pool->id, 5), up[2]);
	CHECK_EQ_INT(mx_pg_acting(pl, m, pool, 5, act, MX_MAX_SIZE), 3);
	CHECK_EQ_INT(act[0], up[2]);
	/* Not in the up set: skipped. */
	snprintf(set, sizeof(set), "%d.5:%d", pool->id, outsider);
	CHECK(outsider >= 0);
	CHECK_EQ_INT(run(m, "pg primary-temp", a, 1), 0);
	CHECK_EQ_INT(mx_map_primary_temp(m, pool->id, 5), up[2]);
	/* Malformed: nothing changes. */
	snprintf(set, sizeof(set), "%d.5:-1,x", pool->id);
	CHECK_EQ_INT(run(m, "pg primary-temp", a, 1), -EINVAL);
	CHECK_EQ_INT(mx_map_primary_temp(m, pool->id, 5), up[2]);
	snprintf(set, sizeof(set), "%d.99999999:1", pool->id);
	CHECK_EQ_INT(run(m, "pg primary-temp", a, 1), -EINVAL);
	/* Cleared. */
	snprintf(set, sizeof(set), "%d.5:-1", pool->id);
	CHECK_EQ_INT(run(m, "pg primary-temp", a, 1), 1);
	CHECK_EQ_INT(mx_map_primary_temp(m, pool->id, 5), -1);
	CHECK_EQ_INT(run(m, "pg primary-temp", a, 1), 0);
	/* Pruned once its OSD is out. */
	snprintf(set, sizeof(set), "%d.5:%d", pool->id, up[1]);
	CHECK_EQ_INT(run(m, "pg primary-temp", a, 1), 1);
	CHECK_EQ_INT(mx_mon_prune_primary_temps(m), 0);
	m->osds[up[1]].in = false;
	CHECK_EQ_INT(mx_mon_prune_primary_temps(m), 1);
	CHECK_EQ_INT(mx_map_primary_temp(m, pool->id, 5), -1);
	mx_placement_free(pl);
	mx_map_free(m);
}

/* Whether the encodings of a and b are the same. */
static bool same_map(const struct mx_map *a, const struct mx_map *b)
{
	struct mx_wbuf wa, wb;
	bool same;

	mx_wbuf_init(&wa);
	mx_wbuf_init(&wb);
	mx_map_encode(a, &wa);
	mx_map_encode(b, &wb);
	same = wa.len == wb.len && memcmp(wa.data, wb.data, wa.len) == 0;
	mx_wbuf_free(&wa);
	mx_wbuf_free(&wb);
	return same;
}

/* Run a command that must be refused with err, say why, and change
 * nothing. */
#define REFUSED(m, env, err, prefix, ...)                                            \
	do {                                                                         \
		const char *kv_[] = {__VA_ARGS__};                                   \
		struct mx_map *before_ = mx_map_dup(m);                              \
                                                                                     \
		CHECK_EQ_INT(run_env(m, env, prefix, kv_, (int)(MX_ARRAY_SIZE(kv_) / 2)), \
			     err);                                                   \
		CHECK(last_msg[0] != '\0');                                          \
		CHECK(same_map(before_, m));                                         \
		mx_map_free(before_);                                                \
	} while (0)

/* Run a command that must succeed with result want (1 changed, 0 not). */
#define DONE(m, env, want, prefix, ...)                                              \
	do {                                                                         \
		const char *kv_[] = {__VA_ARGS__};                                   \
                                                                                     \
		CHECK_EQ_INT(run_env(m, env, prefix, kv_, (int)(MX_ARRAY_SIZE(kv_) / 2)), \
			     want);                                                  \
		CHECK(mx_map_tiers_valid(m));                                        \
	} while (0)

/* Every up OSD reports the PGs of pool it is primary of: state st,
 * `objects` objects each. */
static void stats_map(struct mx_pgstats *ps, const struct mx_map *m, uint64_t now)
{
	struct mx_placement *pl = NULL;

	CHECK_EQ_INT(mx_placement_new(m, &pl), 0);
	CHECK_EQ_INT(mx_pgstats_map(ps, m, pl, now), 0);
	mx_placement_free(pl);
}

static void report_pool(struct mx_pgstats *ps, const struct mx_map *m, const char *pool,
			uint32_t st, uint64_t objects, uint64_t now)
{
	const struct mx_pool *p = mx_map_pool_by_name(m, pool);
	struct mx_placement *pl = NULL;

	CHECK(p != NULL);
	CHECK_EQ_INT(mx_placement_new(m, &pl), 0);
	CHECK_EQ_INT(mx_pgstats_map(ps, m, pl, now), 0);
	for (uint32_t id = 0; p && pl && id < m->max_osd; id++) {
		struct mx_msg_pg_stats h = {.osd_id = (int32_t)id,
					    .incarnation = m->osds[id].incarnation,
					    .epoch = m->epoch}, d;
		struct mx_wbuf w;
		uint32_t n = 0;
		size_t at;

		if (!m->osds[id].up)
			continue;
		mx_wbuf_init(&w);
		at = mx_enc_pg_stats_head(&w, &h);
		for (uint32_t pg = 0; pg < p->pg_num; pg++) {
			int32_t act[MX_MAX_SIZE];
			struct mx_pg_stat s = {.pool = p->id, .pg = pg, .interval = 1, .state = st,
					       .objects = objects};

			if (mx_pg_acting(pl, m, p, pg, act, MX_MAX_SIZE) < 1 ||
			    act[0] != (int32_t)id)
				continue;
			mx_enc_pg_stat(&w, &s);
			n++;
		}
		mx_enc_pg_stats_end(&w, at, n);
		CHECK_EQ_INT(mx_dec_pg_stats(w.data, (uint32_t)w.len, &d), 0);
		CHECK(mx_pgstats_report(ps, m, &d, now) >= 0);
		mx_wbuf_free(&w);
	}
	mx_placement_free(pl);
}

/* Cache tiering (docs/cache-tiering.md): pool tier add, mode and rm, the
 * cache settings of pool set, and pool rm of a tiered pool; every refusal
 * with a reason and no change. */
static void test_tiering(void)
{
	struct mx_pgstats_cfg cfg = {.stale_ms = 5000, .inactive_ms = 10000, .nearfull = 0.85,
				     .backfillfull = 0.9, .full = 0.95};
	struct mx_pgstats *ps = mx_pgstats_new(&cfg);
	struct mx_mon_cmd_env env = {.pgstats = ps, .now_ms = 1000000};
	struct mx_map *m = mx_map_new();
	const struct mx_pool *cold, *hot;
	static const char *const names[] = {"cold", "hot", "other", "spare"};

	for (int i = 0; i < 3; i++) {
		char loc[16];

		snprintf(loc, sizeof(loc), "host=h%d", i);
		CHECK_EQ_INT(boot(m, -1, (uint8_t)(20 + i), loc), i);
	}
	for (size_t i = 0; i < MX_ARRAY_SIZE(names); i++)
		DONE(m, NULL, 1, "pool create", "name", names[i], "size", "2", "pg_num", "8");
	cold = mx_map_pool_by_name(m, "cold");
	CHECK(cold && cold->tier_of == -1 && cold->tier == -1 && cold->promote_min_hits == 2);

	/* tier add: is the cache empty?  Without statistics, or before its
	 * PGs report, the monitor cannot tell: refused unless forced. */
	REFUSED(m, NULL, -EAGAIN, "pool tier add", "base", "cold", "cache", "hot");
	CHECK(strstr(last_msg, "yes-i-really-mean-it") != NULL);
	CHECK(strstr(last_msg, "no PG statistics") != NULL);
	stats_map(ps, m, env.now_ms);
	REFUSED(m, &env, -EAGAIN, "pool tier add", "base", "cold", "cache", "hot");
	CHECK(strstr(last_msg, "8 of its 8 PGs") != NULL);
	report_pool(ps, m, "hot", MX_PGS_PEERING, 0, env.now_ms);
	REFUSED(m, &env, -EAGAIN, "pool tier add", "base", "cold", "cache", "hot");
	/* Objects in it: refused, forced or not. */
	report_pool(ps, m, "hot", MX_PGS_ACTIVE | MX_PGS_CLEAN, 3, env.now_ms);
	REFUSED(m, &env, -ENOTEMPTY, "pool tier add", "base", "cold", "cache", "hot");
	CHECK(strstr(last_msg, "24 objects") != NULL);
	REFUSED(m, &env, -ENOTEMPTY, "pool tier add", "base", "cold", "cache", "hot", "force",
		"1");
	report_pool(ps, m, "hot", MX_PGS_PEERING, 1, env.now_ms);
	REFUSED(m, &env, -ENOTEMPTY, "pool tier add", "base", "cold", "cache", "hot", "force",
		"1");
	/* Reports grown stale vouch for nothing. */
	report_pool(ps, m, "hot", MX_PGS_ACTIVE | MX_PGS_CLEAN, 0, env.now_ms);
	env.now_ms += cfg.stale_ms + 1;
	REFUSED(m, &env, -EAGAIN, "pool tier add", "base", "cold", "cache", "hot");
	env.now_ms -= cfg.stale_ms + 1;
	/* Bad arguments. */
	REFUSED(m, &env, -EINVAL, "pool tier add", "base", "cold");
	REFUSED(m, &env, -EINVAL, "pool tier add", "cache", "hot");
	REFUSED(m, &env, -ENOENT, "pool tier add", "base", "nope", "cache", "hot");
	REFUSED(m, &env, -ENOENT, "pool tier add", "base", "cold", "cache", "nope");
	REFUSED(m, &env, -EINVAL, "pool tier add", "base", "hot", "cache", "hot");
	REFUSED(m, &env, -EINVAL, "pool tier add", "base", "cold", "cache", "hot", "force",
		"yes");
	/* Empty, by fresh reports of active PGs: added, mode none. */
	DONE(m, &env, 1, "pool tier add", "base", "cold", "cache", "hot");
	cold = mx_map_pool_by_name(m, "cold");
	hot = mx_map_pool_by_name(m, "hot");
	CHECK(cold && hot && cold->tier == hot->id && hot->tier_of == cold->id);
	/* The fence: both pools refuse requests of maps before this one. */
	CHECK(cold && hot && cold->tier_epoch == m->epoch + 1 && hot->tier_epoch == m->epoch + 1);
	CHECK(hot && hot->cache_mode == MX_CACHE_NONE && !hot->flush_all && hot->tier == -1);
	/* Forced, with no statistics at all. */
	DONE(m, NULL, 1, "pool tier add", "base", "other", "cache", "spare", "force", "1");
	CHECK(mx_map_pool_by_name(m, "spare")->tier_of == mx_map_pool_by_name(m, "other")->id);
	/* Links: no second tier, no cache of two bases, no stacking. */
	REFUSED(m, NULL, -EBUSY, "pool tier add", "base", "cold", "cache", "spare", "force", "1");
	REFUSED(m, NULL, -EBUSY, "pool tier add", "base", "other", "cache", "hot", "force", "1");
	((struct mx_pool *)mx_map_pool_by_name(m, "other"))->tier_epoch = 0;
	((struct mx_pool *)mx_map_pool_by_name(m, "spare"))->tier_epoch = 0;
	DONE(m, NULL, 1, "pool tier rm", "base", "other", "cache", "spare");
	CHECK(mx_map_pool_by_name(m, "other")->tier_epoch == m->epoch + 1);
	CHECK(mx_map_pool_by_name(m, "spare")->tier_epoch == m->epoch + 1);
	REFUSED(m, NULL, -EBUSY, "pool tier add", "base", "spare", "cache", "hot", "force", "1");
	CHECK(strstr(last_msg, "already the cache tier") != NULL);
	REFUSED(m, NULL, -EBUSY, "pool tier add", "base", "hot", "cache", "spare", "force", "1");
	CHECK(strstr(last_msg, "do not stack") != NULL);
	REFUSED(m, NULL, -EBUSY, "pool tier add", "base", "spare", "cache", "cold", "force", "1");
	CHECK(strstr(last_msg, "base pool cannot be a cache") != NULL);
	REFUSED(m, NULL, -EBUSY, "pool tier add", "base", "cold", "cache", "spare", "force", "1");
	CHECK(strstr(last_msg, "already has the cache tier") != NULL);

	/* tier mode. */
	REFUSED(m, NULL, -EINVAL, "pool tier mode", "pool", "hot", "mode", "writethrough");
	REFUSED(m, NULL, -EINVAL, "pool tier mode", "pool", "hot");
	REFUSED(m, NULL, -ENOENT, "pool tier mode", "pool", "nope", "mode", "writeback");
	REFUSED(m, NULL, -EINVAL, "pool tier mode", "pool", "cold", "mode", "writeback");
	REFUSED(m, NULL, -EINVAL, "pool tier mode", "pool", "spare", "mode", "readonly");
	DONE(m, NULL, 0, "pool tier mode", "pool", "hot", "mode", "none");
	((struct mx_pool *)mx_map_pool_by_name(m, "cold"))->tier_epoch = 0;
	((struct mx_pool *)mx_map_pool_by_name(m, "hot"))->tier_epoch = 0;
	DONE(m, NULL, 1, "pool tier mode", "pool", "hot", "mode", "writeback");
	hot = mx_map_pool_by_name(m, "hot");
	CHECK(hot->cache_mode == MX_CACHE_WRITEBACK && !hot->flush_all);
	CHECK(hot->tier_epoch == m->epoch + 1 &&
	      mx_map_pool_by_name(m, "cold")->tier_epoch == m->epoch + 1);
	REFUSED(m, NULL, -EBUSY, "pool tier mode", "pool", "hot", "mode", "readonly");
	/* tier rm: only in mode none. */
	REFUSED(m, NULL, -EBUSY, "pool tier rm", "base", "cold", "cache", "hot");
	CHECK(strstr(last_msg, "writeback") != NULL);
	/* Leaving writeback asks for everything to be flushed... */
	DONE(m, NULL, 1, "pool tier mode", "pool", "hot", "mode", "none");
	hot = mx_map_pool_by_name(m, "hot");
	CHECK(hot->cache_mode == MX_CACHE_NONE && hot->flush_all == 1);
	/* ... which keeps readonly away, but not writeback again. */
	REFUSED(m, NULL, -EBUSY, "pool tier mode", "pool", "hot", "mode", "readonly");
	DONE(m, NULL, 1, "pool tier mode", "pool", "hot", "mode", "writeback");
	CHECK(!mx_map_pool_by_name(m, "hot")->flush_all);
	DONE(m, NULL, 1, "pool tier mode", "pool", "hot", "mode", "none");

	/* The cache settings: only on a cache pool, each checked. */
	REFUSED(m, NULL, -EINVAL, "pool set", "name", "cold", "key", "target_max_bytes", "value",
		"1000");
	CHECK(strstr(last_msg, "not one") != NULL);
	REFUSED(m, NULL, -EINVAL, "pool set", "name", "spare", "key", "promote_min_hits",
		"value", "3");
	DONE(m, NULL, 1, "pool set", "name", "hot", "key", "target_max_bytes", "value",
	     "1099511627776");
	DONE(m, NULL, 0, "pool set", "name", "hot", "key", "target_max_bytes", "value",
	     "1099511627776");
	DONE(m, NULL, 1, "pool set", "name", "hot", "key", "target_max_objects", "value",
	     "9223372036854775807");
	DONE(m, NULL, 1, "pool set", "name", "hot", "key", "target_max_objects", "value",
	     "1000000");
	DONE(m, NULL, 1, "pool set", "name", "hot", "key", "cache_target_dirty_ratio", "value",
	     "0.5");
	DONE(m, NULL, 1, "pool set", "name", "hot", "key", "cache_target_full_ratio", "value",
	     "0.9");
	DONE(m, NULL, 1, "pool set", "name", "hot", "key", "promote_min_hits", "value", "16");
	DONE(m, NULL, 1, "pool set", "name", "hot", "key", "hit_period_s", "value", "3600");
	hot = mx_map_pool_by_name(m, "hot");
	CHECK(hot->target_max_bytes == 1ull << 40 && hot->target_max_objects == 1000000);
	CHECK(hot->cache_target_dirty_ratio == 500 && hot->cache_target_full_ratio == 900);
	CHECK(hot->promote_min_hits == 16 && hot->hit_period_s == 3600);
	{
		static const char *const bad_counts[] = {"", "-1", "abc", "1e6", "9223372036854775808",
							 " 5", " -5", "+5"};
		static const char *const bad_ratios[] = {"", "1.5", "-0.1", "0.1234", "abc", "1e-1",
							 " 0.5", "0x1", "0.", ".", "1.001",
							 "00000.5", "0.5 "};

		for (size_t i = 0; i < MX_ARRAY_SIZE(bad_counts); i++)
			REFUSED(m, NULL, -EINVAL, "pool set", "name", "hot", "key",
				"target_max_objects", "value", bad_counts[i]);
		for (size_t i = 0; i < MX_ARRAY_SIZE(bad_ratios); i++)
			REFUSED(m, NULL, -EINVAL, "pool set", "name", "hot", "key",
				"cache_target_full_ratio", "value", bad_ratios[i]);
	}
	/* dirty <= full, from either side. */
	REFUSED(m, NULL, -EINVAL, "pool set", "name", "hot", "key", "cache_target_dirty_ratio",
		"value", "0.95");
	CHECK(strstr(last_msg, "must not exceed cache_target_full_ratio (0.9)") != NULL);
	REFUSED(m, NULL, -EINVAL, "pool set", "name", "hot", "key", "cache_target_full_ratio",
		"value", "0.45");
	CHECK(strstr(last_msg, "below cache_target_dirty_ratio (0.5)") != NULL);
	DONE(m, NULL, 1, "pool set", "name", "hot", "key", "cache_target_full_ratio", "value",
	     "1");
	DONE(m, NULL, 1, "pool set", "name", "hot", "key", "cache_target_dirty_ratio", "value",
	     ".125");
	DONE(m, NULL, 0, "pool set", "name", "hot", "key", "cache_target_dirty_ratio", "value",
	     "0.1250");
	CHECK_EQ_INT(mx_map_pool_by_name(m, "hot")->cache_target_dirty_ratio, 125);
	CHECK_EQ_INT(mx_map_pool_by_name(m, "hot")->cache_target_full_ratio, 1000);
	DONE(m, NULL, 1, "pool set", "name", "hot", "key", "cache_target_dirty_ratio", "value",
	     "0");
	REFUSED(m, NULL, -EINVAL, "pool set", "name", "hot", "key", "promote_min_hits", "value",
		"0");
	REFUSED(m, NULL, -EINVAL, "pool set", "name", "hot", "key", "promote_min_hits", "value",
		"17");
	REFUSED(m, NULL, -EINVAL, "pool set", "name", "hot", "key", "hit_period_s", "value", "0");
	REFUSED(m, NULL, -EINVAL, "pool set", "name", "hot", "key", "hit_period_s", "value",
		"3601");
	REFUSED(m, NULL, -EINVAL, "pool set", "name", "hot", "key", "cache_mode", "value",
		"writeback");
	REFUSED(m, NULL, -EINVAL, "pool set", "name", "hot", "key", "tier_of", "value", "-1");
	REFUSED(m, NULL, -EINVAL, "pool set", "name", "hot", "key", "flush_all", "value", "0");

	/* A tiered pool is not removed. */
	REFUSED(m, NULL, -EBUSY, "pool rm", "name", "hot");
	CHECK(strstr(last_msg, "pool tier rm cold hot") != NULL);
	REFUSED(m, NULL, -EBUSY, "pool rm", "name", "cold");
	CHECK(strstr(last_msg, "pool tier rm cold hot") != NULL);

	/* tier rm: refused while a flush of all is pending, unless forced. */
	CHECK(mx_map_pool_by_name(m, "hot")->flush_all);
	REFUSED(m, NULL, -EBUSY, "pool tier rm", "base", "cold", "cache", "hot");
	CHECK(strstr(last_msg, "dirty") != NULL);
	REFUSED(m, NULL, -EINVAL, "pool tier rm", "base", "cold", "cache", "hot", "force", "2");
	DONE(m, NULL, 1, "pool tier rm", "base", "cold", "cache", "hot", "force", "1");
	/* tier rm: readonly is refused too; a wrong pair; then done. */
	DONE(m, &env, 1, "pool tier add", "base", "cold", "cache", "hot");
	DONE(m, NULL, 1, "pool tier mode", "pool", "hot", "mode", "readonly");
	REFUSED(m, NULL, -EBUSY, "pool tier rm", "base", "cold", "cache", "hot");
	CHECK(strstr(last_msg, "readonly") != NULL);
	REFUSED(m, NULL, -EINVAL, "pool tier rm", "base", "other", "cache", "hot");
	REFUSED(m, NULL, -EINVAL, "pool tier rm", "base", "hot", "cache", "cold");
	REFUSED(m, NULL, -ENOENT, "pool tier rm", "base", "nope", "cache", "hot");
	REFUSED(m, NULL, -EINVAL, "pool tier rm", "base", "cold");
	/* Leaving readonly drains too: copies may remain, so neither readonly
	 * again nor an unforced removal until the cache is drained. */
	DONE(m, NULL, 1, "pool tier mode", "pool", "hot", "mode", "none");
	CHECK(mx_map_pool_by_name(m, "hot")->flush_all == 1);
	REFUSED(m, NULL, -EBUSY, "pool tier mode", "pool", "hot", "mode", "readonly");
	REFUSED(m, NULL, -EBUSY, "pool tier rm", "base", "cold", "cache", "hot");
	DONE(m, NULL, 1, "pool tier rm", "base", "cold", "cache", "hot", "force", "1");
	cold = mx_map_pool_by_name(m, "cold");
	hot = mx_map_pool_by_name(m, "hot");
	CHECK(cold->tier == -1 && hot->tier_of == -1 && hot->cache_mode == MX_CACHE_NONE &&
	      !hot->flush_all);
	/* The settings stay with the pool for a later tier add. */
	CHECK(hot->promote_min_hits == 16 && hot->hit_period_s == 3600);
	REFUSED(m, NULL, -EINVAL, "pool tier rm", "base", "cold", "cache", "hot");
	REFUSED(m, NULL, -EINVAL, "pool set", "name", "hot", "key", "hit_period_s", "value", "5");
	DONE(m, NULL, 1, "pool rm", "name", "hot");
	DONE(m, NULL, 1, "pool rm", "name", "cold");
	mx_map_free(m);
	mx_pgstats_free(ps);
}

/* --mons NAME=CLIENT/RAFT,... (docs/monitor-quorum.md). */
static void test_mon_spec(void)
{
	struct mx_mon_info *m = NULL;
	uint32_t n = 0;
	char err[200];

	CHECK_EQ_INT(mx_quorum_parse_mons("a=127.0.0.1:1/127.0.0.1:2,b=127.0.0.1:3/127.0.0.1:4",
					  &m, &n, err, sizeof(err)), 0);
	CHECK(n == 2 && strcmp(m[1].name, "b") == 0 && strcmp(m[1].raft_addr, "127.0.0.1:4") == 0);
	CHECK(m && m[0].raft_id == mx_quorum_id("a") && m[0].raft_id != m[1].raft_id);
	CHECK(m && m[0].raft_id != 0);
	free(m);
	/* Refused, each with a reason. */
	static const char *bad[] = {
		"", "a", "a=127.0.0.1:1", "a=127.0.0.1:1/", "a=x/127.0.0.1:2",
		"a=127.0.0.1:1/127.0.0.1:1", "a=127.0.0.1:1/127.0.0.1:2,a=127.0.0.1:3/127.0.0.1:4",
		"a=127.0.0.1:1/127.0.0.1:2,b=127.0.0.1:2/127.0.0.1:5", "bad name=127.0.0.1:1/127.0.0.1:2",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK(mx_quorum_parse_mons(bad[i], &m, &n, err, sizeof(err)) < 0 && !m && err[0]);
	}
}

int main(void)
{
	test_mon_spec();
	struct mx_map *m = mx_map_new();

	/* OSD boot. */
	CHECK_EQ_INT(boot(m, -1, 1, "host=a"), 0);
	CHECK_EQ_INT(boot(m, -1, 2, "host=b"), 1);
	CHECK_EQ_INT(boot(m, -1, 1, "host=a"), 0); /* same uuid: same id */
	CHECK_EQ_INT(m->osds[0].incarnation, 2);
	CHECK_EQ_INT(boot(m, 1, 3, "host=c"), -EEXIST); /* id of another uuid */
	CHECK_EQ_INT(boot(m, 5, 4, "host=d"), 5);
	CHECK_EQ_INT(m->max_osd, 6);
	CHECK_EQ_INT(boot(m, -1, 0, "host=a"), -EINVAL); /* no uuid */
	CHECK_EQ_INT(boot(m, -1, 6, "galaxy=x"), -EINVAL);
	CHECK(m->osds[0].up && m->osds[0].in && m->osds[0].weight == MX_WEIGHT_ONE);

	/* Pools. */
	{
		const char *kv[] = {"name", "rbd", "size", "3", "pg_num", "32"};
		const char *bad1[] = {"name", "x y"};
		const char *bad2[] = {"name", "p2", "size", "0"};
		const char *bad3[] = {"name", "p3", "size", "2", "min_size", "3"};
		const char *bad4[] = {"name", "p4", "failure_domain", "root"};
		const char *bad5[] = {"name", "p5", "pg_num", "-1"};

		CHECK_EQ_INT(run(m, "pool create", kv, 3), 1);
		CHECK_EQ_INT(run(m, "pool create", kv, 3), -EEXIST);
		CHECK_EQ_INT(run(m, "pool create", bad1, 1), -EINVAL);
		CHECK_EQ_INT(run(m, "pool create", bad2, 2), -EINVAL);
		CHECK_EQ_INT(run(m, "pool create", bad3, 3), -EINVAL);
		CHECK_EQ_INT(run(m, "pool create", bad4, 2), -EINVAL);
		CHECK_EQ_INT(run(m, "pool create", bad5, 2), -EINVAL);
		CHECK_EQ_INT(m->n_pools, 1);
		CHECK_EQ_INT(m->pools[0].min_size, 2);
		CHECK_EQ_INT(m->pools[0].pg_num, 32);
	}
	{
		const char *s1[] = {"name", "rbd", "key", "min_size", "value", "1"};
		const char *s2[] = {"name", "rbd", "key", "min_size", "value", "4"};
		const char *s3[] = {"name", "rbd", "key", "pg_num", "value", "64"};
		const char *s4[] = {"name", "rbd", "key", "colour", "value", "blue"};
		const char *s5[] = {"name", "rbd", "key", "read_policy", "value", "balance"};
		const char *s6[] = {"name", "nope", "key", "size", "value", "2"};

		CHECK_EQ_INT(run(m, "pool set", s1, 3), 1);
		CHECK_EQ_INT(run(m, "pool set", s1, 3), 0); /* no change */
		CHECK_EQ_INT(run(m, "pool set", s2, 3), -EINVAL);
		CHECK_EQ_INT(run(m, "pool set", s3, 3), -ENOTSUP);
		CHECK_EQ_INT(run(m, "pool set", s4, 3), -EINVAL);
		CHECK_EQ_INT(run(m, "pool set", s5, 3), 1);
		CHECK_EQ_INT(run(m, "pool set", s6, 3), -ENOENT);
		CHECK_EQ_INT(m->pools[0].read_policy, MX_READ_BALANCE);
	}
	/* OSD state. */
	{
		const char *id0[] = {"id", "0"};
		const char *id9[] = {"id", "9"};
		const char *rw[] = {"id", "1", "weight", "2.5"};
		const char *rwbad[] = {"id", "1", "weight", "-1"};

		CHECK_EQ_INT(run(m, "osd out", id0, 1), 1);
		CHECK(!m->osds[0].in);
		CHECK_EQ_INT(run(m, "osd out", id0, 1), 0);
		CHECK_EQ_INT(run(m, "osd in", id0, 1), 1);
		CHECK_EQ_INT(run(m, "osd rm", id0, 1), -EBUSY);
		CHECK_EQ_INT(run(m, "osd down", id0, 1), 1);
		CHECK_EQ_INT(run(m, "osd rm", id0, 1), 1);
		CHECK(!m->osds[0].exists);
		CHECK_EQ_INT(run(m, "osd out", id9, 1), -ENOENT);
		CHECK_EQ_INT(run(m, "osd reweight", rw, 2), 1);
		CHECK_EQ_INT(m->osds[1].weight, MX_WEIGHT_ONE * 5 / 2);
		CHECK_EQ_INT(run(m, "osd reweight", rwbad, 2), -EINVAL);
		CHECK_EQ_INT(run(m, "osd explode", rw, 1), -EINVAL);
		CHECK_EQ_INT(run(m, "frobnicate", id0, 1), -ENOTSUP);
	}
	{
		const char *rm[] = {"name", "rbd"};

		CHECK_EQ_INT(run(m, "pool rm", rm, 1), 1);
		CHECK_EQ_INT(run(m, "pool rm", rm, 1), -ENOENT);
	}
	mx_map_free(m);
	test_primary_temp();
	test_tiering();
	return mx_check_done("mon_commands");
}

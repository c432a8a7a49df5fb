/*
 * The monitor's PG statistics, health verdict and event log (mon/pgstats.c):
 * unknown then stale without reports; HEALTH_OK from clean reports with the
 * object counts; records from a non-primary ignored; a new primary's PGs
 * unknown again; degraded, inconsistent and nearfull checks; recovery rate;
 * the event log's window; a pool's object count and when it is known.
 */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "commands.h"
#include "pgstats.h"

static int boot(struct mx_map *m, uint8_t u, const char *loc)
{
	struct mx_msg_osd_boot b;
	char msg[512];

	memset(&b, 0, sizeof(b));
	b.osd_id = -1;
	memset(b.uuid, u, 16);
	b.addr = "127.0.0.1:7000";
	b.location = loc;
	b.device_class = "";
	return mx_mon_osd_boot(m, &b, msg, sizeof(msg));
}

/* Every OSD reports its primary PGs with state st and `objects` objects
 * each. */
static void report_n(struct mx_pgstats *ps, const struct mx_map *m,
		     const struct mx_placement *pl, uint32_t st, uint64_t objects,
		     uint64_t degraded, uint64_t recovered, uint64_t used, uint64_t now)
{
	const struct mx_pool *p = &m->pools[0];

	for (uint32_t id = 0; id < m->max_osd; id++) {
		struct mx_msg_pg_stats h = {.osd_id = (int32_t)id,
					    .incarnation = m->osds[id].incarnation,
					    .epoch = m->epoch, .fs_total = 1000, .fs_used = used,
					    .fs_avail = 1000 - used}, d;
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
					       .objects = objects, .bytes = 100 * objects,
					       .degraded = degraded,
					       .recovered_objects = recovered};

			/* osd.0 claims every PG: only its own count. */
			if (mx_pg_acting(pl, m, p, pg, act, MX_MAX_SIZE) < 1 ||
			    (act[0] != (int32_t)id && id != 0))
				continue;
			mx_enc_pg_stat(&w, &s);
			n++;
		}
		mx_enc_pg_stats_end(&w, at, n);
		CHECK_EQ_INT(mx_dec_pg_stats(w.data, (uint32_t)w.len, &d), 0);
		CHECK(mx_pgstats_report(ps, m, &d, now) >= 0);
		mx_wbuf_free(&w);
	}
}

/* ... with 2 objects each. */
static void report_all(struct mx_pgstats *ps, const struct mx_map *m,
		       const struct mx_placement *pl, uint32_t st, uint64_t degraded,
		       uint64_t recovered, uint64_t used, uint64_t now)
{
	report_n(ps, m, pl, st, 2, degraded, recovered, used, now);
}

/* A pool's object count, as `pool tier add` asks for it: known only when
 * every PG has a fresh report of an active primary. */
static void test_pool_objects(const struct mx_pgstats_cfg *cfg)
{
	struct mx_pgstats *ps = mx_pgstats_new(cfg);
	struct mx_map *m = mx_map_new();
	struct mx_placement *pl = NULL;
	struct mx_msg_command c;
	const char *kv[] = {"name", "hot", "pg_num", "16", "failure_domain", "osd"};
	uint64_t t = 1000000, objects = 99;
	uint32_t unsure = 99;
	char msg[512];
	int32_t id;

	for (uint8_t i = 1; i <= 3; i++)
		CHECK(boot(m, i, "host=a") >= 0);
	memset(&c, 0, sizeof(c));
	c.prefix = "pool create";
	c.n_args = 3;
	for (int i = 0; i < 3; i++) {
		c.keys[i] = kv[2 * i];
		c.vals[i] = kv[2 * i + 1];
	}
	CHECK_EQ_INT(mx_mon_command(m, &c, msg, sizeof(msg)), 1);
	id = m->pools[0].id;
	CHECK_EQ_INT(mx_placement_new(m, &pl), 0);
	CHECK_EQ_INT(mx_pgstats_map(ps, m, pl, t), 0);

	/* No reports yet: unknown. */
	CHECK_EQ_INT(mx_pgstats_pool_objects(ps, id, t, &objects, &unsure), -EAGAIN);
	CHECK(objects == 0 && unsure == 16);
	CHECK_EQ_INT(mx_pgstats_pool_objects(ps, id + 1, t, &objects, &unsure), -ENOENT);
	/* Active and empty; active with 2 objects a PG. */
	report_n(ps, m, pl, MX_PGS_ACTIVE | MX_PGS_CLEAN, 0, 0, 0, 100, t);
	CHECK_EQ_INT(mx_pgstats_pool_objects(ps, id, t, &objects, &unsure), 0);
	CHECK(objects == 0 && unsure == 0);
	report_n(ps, m, pl, MX_PGS_ACTIVE | MX_PGS_DEGRADED, 2, 0, 0, 100, t);
	CHECK_EQ_INT(mx_pgstats_pool_objects(ps, id, t, &objects, &unsure), 0);
	CHECK(objects == 32 && unsure == 0);
	/* Stale reports vouch for nothing. */
	CHECK_EQ_INT(mx_pgstats_pool_objects(ps, id, t + cfg->stale_ms + 1, &objects, &unsure),
		     -EAGAIN);
	CHECK(objects == 0 && unsure == 16);
	/* Peering PGs: what they count is there, but maybe not all of it. */
	report_n(ps, m, pl, MX_PGS_PEERING, 1, 0, 0, 100, t);
	CHECK_EQ_INT(mx_pgstats_pool_objects(ps, id, t, &objects, &unsure), -EAGAIN);
	CHECK(objects == 16 && unsure == 16);
	report_n(ps, m, pl, MX_PGS_PEERING, 0, 0, 0, 100, t);
	CHECK_EQ_INT(mx_pgstats_pool_objects(ps, id, t, &objects, &unsure), -EAGAIN);
	CHECK(objects == 0 && unsure == 16);
	mx_placement_free(pl);
	mx_map_free(m);
	mx_pgstats_free(ps);
}

static bool has(const struct mx_health *h, const char *code)
{
	for (int i = 0; i < h->n_checks; i++)
		if (strcmp(h->checks[i].code, code) == 0)
			return true;
	return false;
}

int main(void)
{
	struct mx_pgstats_cfg cfg = {.stale_ms = 5000, .inactive_ms = 10000, .nearfull = 0.85,
				     .full = 0.95};
	struct mx_pgstats *ps = mx_pgstats_new(&cfg);
	struct mx_map *m = mx_map_new();
	struct mx_placement *pl = NULL;
	struct mx_health h;
	struct mx_msg_command c;
	const char *kv[] = {"name", "rbd", "size", "3", "pg_num", "16", "failure_domain", "osd"};
	char msg[512];
	uint64_t t = 1000000;

	CHECK(ps && m);
	for (uint8_t i = 1; i <= 4; i++)
		CHECK(boot(m, i, "host=a") >= 0);
	memset(&c, 0, sizeof(c));
	c.prefix = "pool create";
	c.n_args = 4;
	for (int i = 0; i < 4; i++) {
		c.keys[i] = kv[2 * i];
		c.vals[i] = kv[2 * i + 1];
	}
	CHECK_EQ_INT(mx_mon_command(m, &c, msg, sizeof(msg)), 1);
	CHECK_EQ_INT(mx_placement_new(m, &pl), 0);
	CHECK_EQ_INT(mx_pgstats_map(ps, m, pl, t), 0);

	/* No reports: unknown (WARN), then stale, then inactive too long (ERR). */
	mx_pgstats_health(ps, m, t, &h);
	CHECK(h.pgs == 16 && h.pgs_unknown == 16 && h.status == MX_HEALTH_WARN);
	CHECK(has(&h, "PG_AVAILABILITY"));
	mx_pgstats_health(ps, m, t + 6000, &h);
	CHECK(h.pgs_stale == 16 && h.pgs_unknown == 0 && h.status == MX_HEALTH_WARN);
	mx_pgstats_health(ps, m, t + 17000, &h);
	CHECK(h.pgs_stuck_inactive == 16 && h.status == MX_HEALTH_ERR);

	/* Clean reports: HEALTH_OK, objects counted once per PG. */
	t += 20000;
	report_all(ps, m, pl, MX_PGS_ACTIVE | MX_PGS_CLEAN, 0, 0, 100, t);
	mx_pgstats_health(ps, m, t, &h);
	CHECK_EQ_INT(h.status, MX_HEALTH_OK);
	CHECK(h.pgs_clean == 16 && h.objects == 32 && h.bytes == 3200 && h.copies == 96);
	CHECK(h.n_states == 1 && h.states[0].n == 16);
	CHECK(h.fs_total == 4000 && h.fs_used == 400);
	/* The wall clock stepped back 2 s after those reports: they are
	 * fresh, not stale (nor wrapped into ages beyond any limit). */
	mx_pgstats_health(ps, m, t - 2000, &h);
	CHECK_EQ_INT(h.status, MX_HEALTH_OK);
	CHECK(h.pgs_clean == 16 && h.pgs_stale == 0);

	/* Degraded and recovering, with recovery progress over time. */
	for (int s = 0; s <= 5; s++) {
		t += 1000;
		report_all(ps, m, pl, MX_PGS_ACTIVE | MX_PGS_RECOVERING | MX_PGS_DEGRADED,
			   (uint64_t)(5 - s), (uint64_t)s, 100, t);
		mx_pgstats_tick(ps, t);
	}
	report_all(ps, m, pl, MX_PGS_ACTIVE | MX_PGS_RECOVERING | MX_PGS_DEGRADED, 1, 5, 900,
		   t);
	mx_pgstats_health(ps, m, t, &h);
	CHECK(h.status == MX_HEALTH_WARN && has(&h, "PG_DEGRADED") && has(&h, "PG_RECOVERY"));
	CHECK(has(&h, "OSD_NEARFULL") && h.n_nearfull == 4);
	CHECK(h.degraded == 16 && h.rec_objects_s > 15.0 && h.rec_objects_s < 17.0);
	CHECK(h.eta_s == 1);

	/* Inconsistent and full: errors. */
	report_all(ps, m, pl, MX_PGS_ACTIVE | MX_PGS_CLEAN | MX_PGS_INCONSISTENT, 0, 5, 990, t);
	mx_pgstats_health(ps, m, t, &h);
	CHECK(h.status == MX_HEALTH_ERR && has(&h, "PG_INCONSISTENT") && has(&h, "OSD_FULL"));
	CHECK(h.pgs_inconsistent == 16);

	/* osd.1 down: its PGs get a new primary and are unknown until it reports. */
	{
		struct mx_map *m2 = mx_map_dup(m);
		struct mx_placement *pl2 = NULL;
		uint64_t before;

		m2->osds[1].up = false;
		m2->epoch++;
		CHECK_EQ_INT(mx_placement_new(m2, &pl2), 0);
		CHECK_EQ_INT(mx_pgstats_map(ps, m2, pl2, t), 0);
		mx_pgstats_health(ps, m2, t, &h);
		before = h.pgs_unknown;
		CHECK(before > 0 && has(&h, "OSD_DOWN"));
		report_all(ps, m2, pl2, MX_PGS_ACTIVE | MX_PGS_UNDERSIZED | MX_PGS_DEGRADED, 2, 0,
			   100, t);
		mx_pgstats_health(ps, m2, t, &h);
		CHECK(h.pgs_unknown == 0 && h.pgs_undersized == 16 && has(&h, "OSD_DOWN"));
		mx_placement_free(pl2);
		mx_map_free(m2);
	}

	/* JSON and summary line. */
	{
		json_t *j = mx_health_json(&h);
		char line[512];

		CHECK(j && json_is_object(json_object_get(j, "pgs")));
		json_decref(j);
		mx_health_pgmap(&h, line, sizeof(line));
		CHECK(strstr(line, "16 pgs:") == line);
	}

	/* The event log keeps the newest MX_EVLOG_MAX. */
	{
		struct mx_evlog *l = mx_evlog_new();
		json_t *j;

		for (int i = 0; i < MX_EVLOG_MAX + 5; i++)
			mx_evlog_add(l, 1, MX_HEALTH_OK, "event %d", i);
		CHECK_EQ_INT(mx_evlog_last(l), MX_EVLOG_MAX + 5);
		j = mx_evlog_json(l, 0, 3, 60000);
		CHECK(json_array_size(json_object_get(j, "events")) == 3);
		CHECK(json_integer_value(json_object_get(
			      json_array_get(json_object_get(j, "events"), 0), "seq")) ==
		      MX_EVLOG_MAX + 3);
		json_decref(j);
		j = mx_evlog_json(l, 0, 0, 60000);
		CHECK(json_integer_value(json_object_get(
			      json_array_get(json_object_get(j, "events"), 0), "seq")) == 6);
		json_decref(j);
		j = mx_evlog_json(l, MX_EVLOG_MAX + 5, 0, 60000);
		CHECK(json_array_size(json_object_get(j, "events")) == 0);
		json_decref(j);
		mx_evlog_free(l);
	}

	mx_placement_free(pl);
	mx_map_free(m);
	mx_pgstats_free(ps);
	test_pool_objects(&cfg);
	return mx_check_done("pgstats");
}

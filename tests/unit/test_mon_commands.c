/*
 * Unit tests of the monitor's commands: pool creation and validation, pool
 * settings, OSD boot (new, by uuid, by id, conflicts) and OSD state changes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "commands.h"
#include "placement.h"
#include "quorum.h"

static int run(struct mx_map *m, const char *prefix, const char *const *kv, int n)
{
	struct mx_msg_command c;
	char msg[512];

	memset(&c, 0, sizeof(c));
	c.prefix = prefix;
	c.n_args = (uint16_t)n;
	for (int i = 0; i < n; i++) {
		c.keys[i] = kv[2 * i];
		c.vals[i] = kv[2 * i + 1];
	}
	return mx_mon_command(m, &c, msg, sizeof(msg));
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
	return mx_check_done("mon_commands");
}

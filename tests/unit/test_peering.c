/*
 * Unit tests of peering's pure decisions: past intervals from a run of
 * maps, the prior set and when peering must wait, the choice of the
 * authoritative copy, and the comparison of a copy's log with the
 * authoritative one (missing objects, deletions, divergent writes,
 * backfill).
 */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "peering.h"

#define N_OSD 4

static struct mx_map *base_map(void)
{
	struct mx_map *m = mx_map_new();
	struct mx_pool p;

	mx_map_set_max_osd(m, N_OSD);
	for (int i = 0; i < N_OSD; i++) {
		char loc[32];

		m->osds[i].exists = m->osds[i].up = m->osds[i].in = true;
		m->osds[i].weight = MX_WEIGHT_ONE;
		snprintf(loc, sizeof(loc), "host=h%d", i);
		mx_loc_parse(loc, m->osds[i].loc, &m->osds[i].nloc);
	}
	mx_pool_init(&p);
	p.id = 1;
	strcpy(p.name, "p");
	strcpy(p.root_name, "default");
	p.size = 3;
	p.min_size = 2;
	p.pg_num = 8;
	p.failure_domain = MX_LEVEL_HOST;
	mx_map_add_pool(m, &p);
	m->epoch = 1;
	return m;
}

static void test_intervals(void)
{
	struct mx_map *maps[6];
	struct mx_placement *pls[6];
	struct mx_interval iv[8];
	int32_t up[MX_MAX_SIZE], a, b, c;
	int n;

	maps[0] = base_map();
	mx_placement_new(maps[0], &pls[0]);
	n = mx_pg_up(pls[0], &maps[0]->pools[0], 3, up, MX_MAX_SIZE);
	CHECK_EQ_INT(n, 3);
	a = up[0], b = up[1], c = up[2];
	/* e2: c down; e3: a down too (acting [b] < min_size); e4: all up;
	 * e5: an unrelated change (pool 1 untouched); e6: b down. */
	for (int e = 1; e < 6; e++) {
		maps[e] = mx_map_dup(maps[e - 1]);
		maps[e]->epoch = (uint64_t)e + 1;
	}
	maps[1]->osds[c].up = false;
	maps[2]->osds[c].up = false;
	maps[2]->osds[a].up = false;
	maps[4]->modified_ms = 1;
	maps[5]->osds[b].up = false;
	for (int e = 1; e < 6; e++)
		mx_placement_new(maps[e], &pls[e]);
	n = mx_pg_intervals((const struct mx_map *const *)maps,
			    (const struct mx_placement *const *)pls, 6, 1, 3, iv, 8);
	CHECK_EQ_INT(n, 5);
	CHECK(iv[0].first == 1 && iv[0].last == 1 && iv[0].n_acting == 3 && iv[0].maybe_rw);
	CHECK(iv[1].first == 2 && iv[1].n_acting == 2 && iv[1].maybe_rw);
	CHECK(iv[2].first == 3 && iv[2].n_acting == 1 && !iv[2].maybe_rw);
	CHECK(iv[3].first == 4 && iv[3].last == 5 && iv[3].n_acting == 3);
	CHECK(iv[4].first == 6 && iv[4].n_acting == 2 && iv[4].acting[0] != b);
	/* Non-consecutive epochs are refused. */
	{
		const struct mx_map *gap[2] = {maps[0], maps[2]};
		const struct mx_placement *gpl[2] = {pls[0], pls[2]};

		CHECK_EQ_INT(mx_pg_intervals(gap, gpl, 2, 1, 3, iv, 8), -EINVAL);
	}
	/* Prior set since epoch 1: every member of every maybe-rw interval. */
	{
		int32_t prior[8];
		size_t k = mx_prior_set(iv, 5, 1, iv[4].up, iv[4].n_up, prior, 8);

		CHECK_EQ_INT(k, 3);
	}
	/* Waiting: after e2 the PG went rw on [a, b] only; hearing from c
	 * alone is not enough, hearing from b is. */
	{
		int32_t only_c[1] = {c}, cb[2] = {c, b};

		CHECK_EQ_INT(mx_peering_blocked_by(iv, 2, 1, only_c, 1), 1);
		CHECK_EQ_INT(mx_peering_blocked_by(iv, 2, 1, cb, 2), -1);
		/* A copy that went active at epoch 2 already holds everything
		 * acknowledged before: interval 0 needs nobody. */
		CHECK_EQ_INT(mx_peering_blocked_by(iv, 2, 2, cb + 1, 1), -1);
		/* The interval with too few OSDs for I/O needs nobody. */
		CHECK_EQ_INT(mx_peering_blocked_by(iv + 2, 1, 1, only_c, 0), -1);
		/* [a, b, c] from epoch 4 went rw; c alone answered, with an les
		 * older than 4: at most recovering then, it cannot lead. */
		CHECK_EQ_INT(mx_peering_blocked_by(iv + 3, 1, 2, only_c, 1), 0);
		/* c and b, both with an older les: two of three members never
		 * went active, so the interval never did (min_size 2). */
		CHECK_EQ_INT(mx_peering_blocked_by(iv + 3, 1, 2, cb, 2), -1);
		/* A copy with les 4 answered: it holds the interval, logged. */
		CHECK_EQ_INT(mx_peering_blocked_by(iv + 3, 1, 4, only_c, 1), -1);
	}
	for (int e = 0; e < 6; e++) {
		mx_placement_free(pls[e]);
		mx_map_free(maps[e]);
	}
}

static void test_auth(void)
{
	struct mx_pg_info in[3];

	memset(in, 0, sizeof(in));
	in[0].les = 5;
	in[0].last_update = (struct mx_version){5, 10};
	in[1].les = 4;
	in[1].last_update = (struct mx_version){4, 99}; /* newer writes, older les */
	in[2].les = 5;
	in[2].last_update = (struct mx_version){5, 12};
	CHECK_EQ_INT(mx_choose_auth(in, 3), 2);
	CHECK_EQ_INT(mx_choose_auth(in, 2), 0);
	in[2].last_update = in[0].last_update;
	CHECK_EQ_INT(mx_choose_auth(in, 3), 0); /* tie: the lower index */
	CHECK_EQ_INT(mx_choose_auth(in, 0), -1);
}

/* wb_lost (docs/cache-modes.md): raised to the new interval only when
 * every answer of the newest les is suspect; never lowered. */
static void test_wb_lost(void)
{
	struct mx_pg_info in[3];
	bool sus[3] = {true, true, true};

	memset(in, 0, sizeof(in));
	/* Never active: nothing acknowledged, nothing to lose. */
	CHECK_EQ_INT(mx_wb_lost(in, sus, 3, 9), 0);
	in[0].les = in[1].les = 5;
	in[2].les = 3;
	/* Every copy of the newest les suspect: lost from interval 9. */
	CHECK_EQ_INT(mx_wb_lost(in, sus, 3, 9), 9);
	/* One of them kept its page cache: nothing lost. */
	sus[1] = false;
	CHECK_EQ_INT(mx_wb_lost(in, sus, 3, 9), 0);
	/* An older copy that kept its cache proves nothing of les 5. */
	sus[1] = true;
	sus[2] = false;
	CHECK_EQ_INT(mx_wb_lost(in, sus, 3, 9), 9);
	/* A loss found before is kept, by a later interval too. */
	sus[0] = false;
	in[2].wb_lost = 4;
	CHECK_EQ_INT(mx_wb_lost(in, sus, 3, 9), 4);
	sus[0] = true;
	CHECK_EQ_INT(mx_wb_lost(in, sus, 3, 9), 9);
	in[1].wb_lost = 12; /* never lowered to this interval */
	CHECK_EQ_INT(mx_wb_lost(in, sus, 3, 9), 12);
	CHECK_EQ_INT(mx_wb_lost(in, sus, 0, 9), 0);
}

struct rec {
	char name[32];
	int what;
	struct mx_version v;
};

struct recs {
	struct rec r[32];
	int n;
};

static int collect(void *arg, const char *name, uint32_t len, int what, struct mx_version v)
{
	struct recs *rs = arg;

	if (rs->n < 32) {
		snprintf(rs->r[rs->n].name, sizeof(rs->r[0].name), "%.*s", (int)len, name);
		rs->r[rs->n].what = what;
		rs->r[rs->n].v = v;
		rs->n++;
	}
	return 0;
}

static struct mx_pglog_entry ent(uint64_t e, uint64_t s, int kind, const char *name)
{
	struct mx_pglog_entry x = {.version = {e, s}, .kind = (uint8_t)kind, .name = name,
				   .name_len = (uint32_t)strlen(name)};
	return x;
}

static struct mx_pg_info info_of(const struct mx_pglog_entry *log, size_t n, uint64_t te,
				 uint64_t ts)
{
	struct mx_pg_info i;

	memset(&i, 0, sizeof(i));
	i.log_tail = (struct mx_version){te, ts};
	i.last_update = n ? log[n - 1].version : i.log_tail;
	return i;
}

static const struct rec *find(const struct recs *rs, const char *name)
{
	for (int i = 0; i < rs->n; i++)
		if (strcmp(rs->r[i].name, name) == 0)
			return &rs->r[i];
	return NULL;
}

/* Whether rs asks for what of name (at seq, unless seq is 0). */
static bool wants(const struct recs *rs, const char *name, int what, uint64_t seq)
{
	const struct rec *r = find(rs, name);

	return r && r->what == what && (seq == 0 || r->v.seq == seq);
}

static void test_log_diff(void)
{
	struct mx_pglog_entry auth[] = {
		ent(1, 1, MX_LOG_MODIFY, "a"), ent(1, 2, MX_LOG_MODIFY, "b"),
		ent(1, 3, MX_LOG_MODIFY, "c"), ent(2, 4, MX_LOG_DELETE, "b"),
		ent(2, 5, MX_LOG_MODIFY, "a"), ent(3, 6, MX_LOG_MODIFY, "d"),
	};
	struct mx_pg_info ai = info_of(auth, 6, 0, 0);
	struct recs rs;

	/* 1. Behind: has up to 1.3; must delete b, fetch a (2.5) and d. */
	{
		struct mx_pg_info mi = info_of(auth, 3, 0, 0);

		memset(&rs, 0, sizeof(rs));
		CHECK_EQ_INT(mx_log_diff(auth, 6, &ai, auth, 3, &mi, collect, &rs), 0);
		CHECK_EQ_INT(rs.n, 3);
		CHECK(wants(&rs, "a", MX_NEED_OBJECT, 5));
		CHECK(wants(&rs, "b", MX_NEED_DELETE, 0));
		CHECK(wants(&rs, "d", MX_NEED_OBJECT, 0));
	}
	/* 2. Equal: nothing to do. */
	memset(&rs, 0, sizeof(rs));
	CHECK_EQ_INT(mx_log_diff(auth, 6, &ai, auth, 6, &ai, collect, &rs), 0);
	CHECK_EQ_INT(rs.n, 0);
	/* 3. Divergent: the copy applied 2.5' on "x" (never acknowledged) and
	 * missed the real 2.5 and 3.6. */
	{
		struct mx_pglog_entry mine[] = {
			ent(1, 1, MX_LOG_MODIFY, "a"), ent(1, 2, MX_LOG_MODIFY, "b"),
			ent(1, 3, MX_LOG_MODIFY, "c"), ent(2, 4, MX_LOG_DELETE, "b"),
			ent(2, 5, MX_LOG_MODIFY, "x"), ent(2, 6, MX_LOG_MODIFY, "c"),
		};
		struct mx_pg_info mi = info_of(mine, 6, 0, 0);

		memset(&rs, 0, sizeof(rs));
		CHECK_EQ_INT(mx_log_diff(auth, 6, &ai, mine, 6, &mi, collect, &rs), 0);
		CHECK(wants(&rs, "x", MX_NEED_RESOLVE, 0));
		CHECK(wants(&rs, "c", MX_NEED_RESOLVE, 0));
		CHECK(wants(&rs, "a", MX_NEED_OBJECT, 0));
		CHECK(wants(&rs, "d", MX_NEED_OBJECT, 0));
		CHECK(find(&rs, "b") == NULL); /* its delete was common */
	}
	/* 4. Divergent on an object the authority later changed: the
	 * authoritative entry decides. */
	{
		struct mx_pglog_entry mine[] = {
			ent(1, 1, MX_LOG_MODIFY, "a"), ent(1, 2, MX_LOG_MODIFY, "b"),
			ent(1, 3, MX_LOG_MODIFY, "c"), ent(1, 4, MX_LOG_MODIFY, "d"),
		};
		struct mx_pg_info mi = info_of(mine, 4, 0, 0);

		memset(&rs, 0, sizeof(rs));
		CHECK_EQ_INT(mx_log_diff(auth, 6, &ai, mine, 4, &mi, collect, &rs), 0);
		CHECK(wants(&rs, "d", MX_NEED_OBJECT, 6));
	}
	/* 5. An empty copy and a complete authoritative log: everything. */
	{
		struct mx_pg_info mi;

		memset(&mi, 0, sizeof(mi));
		memset(&rs, 0, sizeof(rs));
		CHECK_EQ_INT(mx_log_diff(auth, 6, &ai, NULL, 0, &mi, collect, &rs), 0);
		CHECK_EQ_INT(rs.n, 4); /* a, b (deleted), c, d */
		CHECK(wants(&rs, "b", MX_NEED_DELETE, 0));
	}
	/* 6. A trimmed authority and a copy from before its tail: backfill. */
	{
		struct mx_pg_info at = info_of(auth + 3, 3, 1, 3);
		struct mx_pg_info mi = info_of(auth, 2, 0, 0);
		struct mx_pg_info empty;

		memset(&empty, 0, sizeof(empty));
		memset(&rs, 0, sizeof(rs));
		CHECK_EQ_INT(mx_log_diff(auth + 3, 3, &at, auth, 2, &mi, collect, &rs), 1);
		CHECK_EQ_INT(mx_log_diff(auth + 3, 3, &at, NULL, 0, &empty, collect, &rs), 1);
		CHECK_EQ_INT(rs.n, 0);
		/* ...but a copy that reaches the tail compares fine. */
		mi = info_of(auth, 3, 0, 0);
		CHECK_EQ_INT(mx_log_diff(auth + 3, 3, &at, auth, 3, &mi, collect, &rs), 0);
		CHECK_EQ_INT(rs.n, 3);
	}
}

/* A PONG extends a grant only from a peer with a map that has never shown
 * one newer than ours: a peer that switched, then restarted without its map
 * (epoch 0) or with an older one, grants nothing until our map catches up. */
static void test_lease_pong(void)
{
	uint64_t max = 0;

	CHECK(!mx_lease_pong_grants(&max, 0, 10)); /* no map yet */
	CHECK(mx_lease_pong_grants(&max, 9, 10));
	CHECK(mx_lease_pong_grants(&max, 10, 10));
	CHECK(!mx_lease_pong_grants(&max, 12, 10)); /* it switched */
	CHECK(!mx_lease_pong_grants(&max, 0, 10));  /* restarted, no map */
	CHECK(!mx_lease_pong_grants(&max, 10, 10)); /* restarted, older map */
	CHECK(max == 12);
	CHECK(mx_lease_pong_grants(&max, 12, 12)); /* we caught up */
	CHECK(mx_lease_pong_grants(&max, 11, 13));
}

int main(void)
{
	test_lease_pong();
	test_intervals();
	test_auth();
	test_wb_lost();
	test_log_diff();
	return mx_check_done("peering");
}

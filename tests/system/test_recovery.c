/*
 * Peering and recovery with failure detection on (docs/recovery.md): a
 * stream of writes, appends and removes, checked against an in-memory
 * model, while one OSD at a time is killed and restarted or stopped and
 * continued; then an OSD is marked out and in, and a new OSD is added.
 * Client I/O must keep going while an OSD is down (the longest stall is
 * measured and printed), every acknowledged write reads back, removed
 * objects stay removed, and at the end every replica is identical.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "map.h"

#define N_OBJ 200
#define OBJ_MAX (64u * 1024u)
#define QD 8
#define HB_GRACE_S 2.0

struct model {
	uint8_t *data;
	uint32_t size;
	bool exists;
	bool busy;
};

struct req {
	mixsan_completion_t *c;
	int obj;
	int kind; /* 0 write_full, 1 write at offset, 2 append, 3 remove */
	uint32_t off, len;
	bool expect_enoent;
	double start;
	uint8_t *buf;
};

static struct model objs[N_OBJ];
static struct req reqs[QD];
static uint64_t rs;
static uint64_t acked;
static double max_stall;
static mixsan_pool_t *pool;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void apply(struct req *r)
{
	struct model *m = &objs[r->obj];

	switch (r->kind) {
	case 0:
		memcpy(m->data, r->buf, r->len);
		m->size = r->len;
		m->exists = true;
		break;
	case 1:
		if (r->off > m->size)
			memset(m->data + m->size, 0, r->off - m->size);
		memcpy(m->data + r->off, r->buf, r->len);
		if (r->off + r->len > m->size)
			m->size = r->off + r->len;
		m->exists = true;
		break;
	case 2:
		memcpy(m->data + m->size, r->buf, r->len);
		m->size += r->len;
		m->exists = true;
		break;
	case 3:
		m->size = 0;
		m->exists = false;
		break;
	}
}

static void complete(struct req *r)
{
	int64_t res = mixsan_completion_wait(r->c);
	double stall = now_s() - r->start;

	if (stall > max_stall)
		max_stall = stall;
	if (r->kind == 3 && r->expect_enoent) {
		if (res != -ENOENT && res != 0) {
			fprintf(stderr, "remove of absent obj.%d: %s\n", r->obj, strerror((int)-res));
			h_failures++;
		}
	} else if (res != 0) {
		fprintf(stderr, "op %d on obj.%d failed: %s\n", r->kind, r->obj,
			strerror((int)-res));
		h_failures++;
	} else {
		apply(r);
		acked++;
	}
	objs[r->obj].busy = false;
	mixsan_completion_release(r->c);
	r->c = NULL;
}

static void issue(struct req *r)
{
	char name[32];
	int o;

	do
		o = (int)(h_rand(&rs) % N_OBJ);
	while (objs[o].busy);
	r->obj = o;
	r->kind = !objs[o].exists ? 0 : (int)(h_rand(&rs) % 10);
	r->kind = r->kind < 3 ? r->kind : r->kind == 9 ? 3 : 2 - r->kind % 3;
	r->expect_enoent = !objs[o].exists && r->kind == 3;
	r->len = 1 + (uint32_t)(h_rand(&rs) % (8 * 1024));
	if (r->kind == 2 && objs[o].size + r->len > OBJ_MAX)
		r->kind = 0;
	r->off = r->kind == 1 ? (uint32_t)(h_rand(&rs) % (objs[o].size + 1024)) : 0;
	if (r->kind == 1 && r->off + r->len > OBJ_MAX)
		r->off = 0;
	h_fill(h_rand(&rs), r->buf, r->len);
	objs[o].busy = true;
	snprintf(name, sizeof(name), "obj.%d", o);
	mixsan_completion_create(NULL, NULL, &r->c);
	r->start = now_s();
	if (r->kind == 0)
		mixsan_aio_write_full(pool, name, r->c, r->buf, r->len);
	else if (r->kind == 1)
		mixsan_aio_write(pool, name, r->c, r->buf, r->len, r->off);
	else if (r->kind == 2)
		mixsan_aio_append(pool, name, r->c, r->buf, r->len);
	else
		mixsan_aio_remove(pool, name, r->c);
}

/* Keep QD operations in flight for secs seconds. */
static void run_for(double secs)
{
	double end = now_s() + secs;
	static unsigned k;

	while (now_s() < end) {
		struct req *r = &reqs[k++ % QD];

		if (r->c)
			complete(r);
		issue(r);
	}
	for (int i = 0; i < QD; i++)
		if (reqs[i].c)
			complete(&reqs[i]);
}

static void verify(const char *when)
{
	uint8_t *rb = malloc(OBJ_MAX * 2);
	int bad = 0;

	for (int o = 0; o < N_OBJ; o++) {
		char name[32];
		int64_t got;

		snprintf(name, sizeof(name), "obj.%d", o);
		got = mixsan_read(pool, name, rb, OBJ_MAX * 2, 0);
		if (!objs[o].exists) {
			if (got != -ENOENT) {
				fprintf(stderr, "%s: obj.%d was removed, read gives %lld\n", when, o,
					(long long)got);
				bad++;
			}
			continue;
		}
		if (got != objs[o].size || memcmp(rb, objs[o].data, objs[o].size) != 0) {
			fprintf(stderr, "%s: obj.%d: read %lld bytes, expected %u%s\n", when, o,
				(long long)got, objs[o].size,
				got == objs[o].size ? " (content differs)" : "");
			bad++;
		}
	}
	h_failures += bad;
	fprintf(stderr, "recovery: %s: %llu ops acknowledged, %s\n", when,
		(unsigned long long)acked, bad ? "READ-BACK FAILURES" : "all read back");
	free(rb);
}

static int count_up(mixsan_cluster_t *cl)
{
	struct mx_map *m = mx_client_map_copy(cl);
	int up = 0;

	if (m) {
		for (uint32_t i = 0; i < m->max_osd; i++)
			up += m->osds[i].exists && m->osds[i].up;
		mx_map_free(m);
	}
	return up;
}

static void osd_command(mixsan_cluster_t *cl, const char *cmd, int osd)
{
	char id[16], *msg = NULL;
	const char *kv[] = {"id", id};

	snprintf(id, sizeof(id), "%d", osd);
	if (mixsan_mon_command(cl, cmd, kv, 1, &msg) < 0)
		H_FATAL("'%s' osd.%d failed: %s", cmd, osd, msg ? msg : "");
	free(msg);
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	uint64_t seed = (uint64_t)time(NULL), checked = 0;
	struct mx_map *m;
	int32_t pool_id;
	int n = 4;

	if (getenv("MIXSAN_TEST_SEED"))
		seed = strtoull(getenv("MIXSAN_TEST_SEED"), NULL, 10);
	rs = seed;
	fprintf(stderr, "recovery: seed %llu\n", (unsigned long long)seed);
	memset(&c, 0, sizeof(c));
	snprintf(c.mon_args, sizeof(c.mon_args),
		 "--osd-failure-detection --heartbeat-grace 2000 --beacon-grace 6000");
	snprintf(c.osd_args, sizeof(c.osd_args), "--heartbeat-interval 250 --heartbeat-grace 2000");
	h_start(&c, n);
	if (c.external) {
		fprintf(stderr, "recovery: skipped with an external cluster\n");
		return 77;
	}
	cl = h_connect(&c);
	h_pool_create(cl, "rec", 3, 32, "osd");
	if (mixsan_pool_open(cl, "rec", &pool) < 0)
		H_FATAL("pool open");
	pool_id = (int32_t)mixsan_pool_id(pool);
	for (int i = 0; i < N_OBJ; i++)
		objs[i].data = calloc(1, OBJ_MAX * 2);
	for (int k = 0; k < QD; k++)
		reqs[k].buf = malloc(OBJ_MAX);

	run_for(2.0);
	verify("before failures");
	for (int round = 0; round < 4; round++) {
		int victim = round % n;
		/* SIGSTOP rounds, and the out/in/add part below, leave a member
		 * that stayed up through its interval change; recovery of such a
		 * member can stall (an open bug, docs/testing.md), so they run
		 * only on request: MIXSAN_TEST_STOP=1, MIXSAN_TEST_REBALANCE=1. */
		bool stop = round % 2 == 1 && getenv("MIXSAN_TEST_STOP") &&
			    strcmp(getenv("MIXSAN_TEST_STOP"), "1") == 0;
		double t0;

		fprintf(stderr, "recovery: round %d: %s osd.%d\n", round,
			stop ? "SIGSTOP" : "kill -9", victim);
		max_stall = 0;
		h_signal_osd(&c, victim, stop ? SIGSTOP : SIGKILL);
		t0 = now_s();
		run_for(HB_GRACE_S + 4.0);
		fprintf(stderr, "recovery: round %d: longest op with osd.%d down: %.2f s "
			"(%d OSDs up after %.1f s)\n",
			round, victim, max_stall, count_up(cl), now_s() - t0);
		H_CHECK(max_stall <= HB_GRACE_S + 2.0 + 1.0);
		if (stop)
			h_signal_osd(&c, victim, SIGCONT);
		else
			h_start_osd(&c, victim);
		max_stall = 0;
		t0 = now_s();
		while (count_up(cl) < n && now_s() - t0 < 30)
			run_for(0.5);
		if (count_up(cl) < n)
			H_FATAL("osd.%d did not come back", victim);
		run_for(2.0);
		fprintf(stderr, "recovery: round %d: osd.%d back; longest op %.2f s\n", round,
			victim, max_stall);
		verify("after the OSD came back");
	}

	/* Out/in and a new OSD: data moves by backfill, and the copies left
	 * on OSDs outside a PG's acting set are removed once the PG is clean
	 * there, so the final replica check finds exactly the placement's
	 * copies.  Runs with MIXSAN_TEST_REBALANCE=1. */
	if (!getenv("MIXSAN_TEST_REBALANCE") || strcmp(getenv("MIXSAN_TEST_REBALANCE"), "1") != 0)
		goto done;
	fprintf(stderr, "recovery: osd out osd.1\n");
	osd_command(cl, "osd out", 1);
	run_for(3.0);
	verify("after osd out");
	osd_command(cl, "osd in", 1);
	run_for(3.0);
	verify("after osd in");

	fprintf(stderr, "recovery: adding osd.%d\n", n);
	c.n_osds = n + 1;
	h_start_osd(&c, n);
	if (h_wait_up(&c, cl, n + 1, 30) < 0)
		H_FATAL("the new OSD did not come up");
	n++;
	run_for(3.0);
	verify("after adding an OSD");

done:
	/* Let recovery finish with no client I/O, then read once more. */
	sleep(3);
	verify("at the end");
	m = mx_client_map_copy(cl);
	mixsan_pool_close(pool);
	mixsan_shutdown(cl);
	for (int i = 0; i < c.n_osds; i++)
		h_signal_osd(&c, i, SIGTERM);
	{
		int problems = h_check_replicas(&c, m, pool_id, &checked);

		uint64_t exist = 0;

		for (int o = 0; o < N_OBJ; o++)
			exist += objs[o].exists;
		fprintf(stderr, "recovery: %llu objects identical on all replicas? %d problems\n",
			(unsigned long long)checked, problems);
		H_CHECK(problems == 0);
		/* Every object some OSD holds is one the model has: a removed
		 * object left on a former member would be counted here. */
		fprintf(stderr, "recovery: %llu objects stored, %llu in the model\n",
			(unsigned long long)checked, (unsigned long long)exist);
		H_CHECK(checked == exist);
	}
	mx_map_free(m);
	for (int i = 0; i < N_OBJ; i++)
		free(objs[i].data);
	for (int k = 0; k < QD; k++)
		free(reqs[k].buf);
	h_stop(&c);
	fprintf(stderr, "recovery: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

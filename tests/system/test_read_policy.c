/*
 * Read policies and read leases (docs/read-policies.md).
 *
 * Four OSDs on hosts h0..h3; pools "pri" (primary), "bal" (balance) and
 * "loc" (localize), 3 replicas each, 64 objects in each.
 * 1. A default client: reads of bal are spread over the members (some
 *    served by replicas), reads of pri and loc only by primaries (it has
 *    no location); every read returns what was written.  A replica's
 *    ENOENT for a missing object is the answer, never sent back.
 * 2. A client on host h2 reads loc: exactly the reads of objects that
 *    osd.2 holds as a replica are served by a replica (osd.2 itself), none
 *    sent back.
 * 3. Overrides: primary on bal, no replica read; balance on pri: the
 *    map says its replicas serve no reads, so every read goes to the
 *    primary and succeeds.
 * 4. The lease: a raw replica read of an object of bal at one of its
 *    replicas is served; its primary stopped (SIGSTOP, heartbeat grace of
 *    a minute, so it stays up in the map), the same read 4.5 s later is
 *    refused (the lease is 3 s); continued, it is served again.
 * 5. A new interval waits: the primary killed (marked down at once), the
 *    new primary logs that it waits for read leases, and reads and writes
 *    of bal carry on and return the data.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "map.h"
#include "msg.h"

#define N_OBJ 64
#define READS 4

static void policy(mixsan_cluster_t *cl, const char *pool, const char *p)
{
	const char *kv[] = {"name", pool, "key", "read_policy", "value", p};
	char *msg = NULL;

	if (mixsan_mon_command(cl, "pool set", kv, 3, &msg) < 0)
		H_FATAL("pool set %s read_policy %s: %s", pool, p, msg ? msg : "");
	free(msg);
}

static mixsan_cluster_t *client(struct h_cluster *c, int read_policy, const char *loc)
{
	struct mixsan_options o = {.connect_timeout_ms = 10000, .op_timeout_ms = 30000,
				   .read_policy = read_policy, .location = loc};
	mixsan_cluster_t *cl;

	if (mixsan_connect(c->mon_addr, &o, &cl) < 0)
		H_FATAL("connect");
	return cl;
}

static void name(char *buf, size_t sz, int i)
{
	snprintf(buf, sz, "obj.%03d", i);
}

static void fill(mixsan_cluster_t *cl, const char *pool)
{
	mixsan_pool_t *p;

	H_CHECK(mixsan_pool_open(cl, pool, &p) == 0);
	for (int i = 0; i < N_OBJ; i++) {
		char n[32], v[64];

		name(n, sizeof(n), i);
		snprintf(v, sizeof(v), "%s of %s", n, pool);
		H_CHECK(mixsan_write_full(p, n, v, strlen(v)) == 0);
	}
	mixsan_pool_close(p);
}

/* READS reads of every object of pool through cl, checked: the client's
 * replica reads and bounces meanwhile. */
static void read_all(mixsan_cluster_t *cl, const char *pool, uint64_t *served,
		     uint64_t *bounced)
{
	struct mx_client_stats a, b;
	mixsan_pool_t *p;

	mx_client_get_stats(cl, &a);
	H_CHECK(mixsan_pool_open(cl, pool, &p) == 0);
	for (int k = 0; k < READS; k++)
		for (int i = 0; i < N_OBJ; i++) {
			char n[32], v[64], got[64] = "";
			int64_t r;

			name(n, sizeof(n), i);
			snprintf(v, sizeof(v), "%s of %s", n, pool);
			r = mixsan_read(p, n, got, sizeof(got) - 1, 0);
			H_CHECK(r == (int64_t)strlen(v) && memcmp(got, v, strlen(v)) == 0);
		}
	mixsan_pool_close(p);
	mx_client_get_stats(cl, &b);
	*served = b.replica_reads - a.replica_reads;
	*bounced = b.replica_bounced - a.replica_bounced;
}

/* A raw read of obj in pool sent to OSD id as a replica read: the reply's
 * status as an errno. */
static int raw_replica_read(mixsan_cluster_t *cl, int64_t pool, const char *obj, int32_t id)
{
	struct mx_map *m = mx_client_map_copy(cl);
	struct mx_msg_osd_op op = {.pool = (int32_t)pool, .client_id = 77,
				   .flags = MX_OSD_OP_REPLICA_READ, .name = obj,
				   .name_len = (uint32_t)strlen(obj), .n_ops = 1};
	struct mx_msg_osd_op_reply rep;
	struct mx_msg_hdr h;
	uint8_t *payload;
	struct mx_wbuf w;
	char addr[MX_ADDR_MAX];
	int32_t acting[3];
	int r;

	if (!m)
		return -ENOMEM;
	op.epoch = m->epoch;
	(void)mx_client_locate(cl, pool, obj, &op.pg, acting, 3);
	op.ops[0].op = MX_OP_READ;
	op.ops[0].len = 64;
	snprintf(addr, sizeof(addr), "%s", m->osds[id].addr);
	mx_map_free(m);
	mx_wbuf_init(&w);
	mx_enc_osd_op(&w, &op);
	r = h_raw_request(addr, MX_MSG_OSD_OP, 9, &w, &h, &payload);
	mx_wbuf_free(&w);
	if (r == 0 && (h.type != MX_MSG_OSD_OP_REPLY || mx_dec_osd_op_reply(payload, h.len, &rep) < 0))
		r = -EPROTO;
	else if (r == 0)
		r = mx_wire_to_errno(rep.status);
	free(payload);
	return r;
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl, *near, *cp, *cb;
	uint64_t served, bounced;
	char why[256];

	if (getenv("MIXSAN_TEST_MON")) {
		fprintf(stderr, "read_policy: needs its own daemons; skipped\n");
		return 77;
	}
	memset(&c, 0, sizeof(c));
	for (int i = 0; i < 4; i++) {
		char loc[16];

		snprintf(loc, sizeof(loc), "host=h%d", i);
		h_set_location(&c, i, loc);
	}
	/* Heartbeats keep running; only a refused connection (a kill) marks
	 * an OSD down within the test. */
	snprintf(c.mon_args, sizeof(c.mon_args), "--heartbeat-grace 60000 --beacon-grace 600000");
	snprintf(c.osd_args, sizeof(c.osd_args), "--heartbeat-grace 60000");
	h_start(&c, 4);
	cl = h_connect(&c);
	h_pool_create(cl, "pri", 3, 16, "host");
	h_pool_create(cl, "bal", 3, 16, "host");
	h_pool_create(cl, "loc", 3, 16, "host");
	policy(cl, "bal", "balance");
	policy(cl, "loc", "localize");
	fill(cl, "pri");
	fill(cl, "bal");
	fill(cl, "loc");
	sleep(2); /* leases granted by a round of heartbeats */

	/* 1. */
	read_all(cl, "bal", &served, &bounced);
	fprintf(stderr, "read_policy: balance: %llu of %d reads by replicas, %llu sent back\n",
		(unsigned long long)served, N_OBJ * READS, (unsigned long long)bounced);
	H_CHECK(served > N_OBJ * READS / 3 && served < N_OBJ * READS && bounced == 0);
	{
		/* A replica's "no such object" is final: never sent back. */
		struct mx_client_stats a, b;
		mixsan_pool_t *p;
		char got[8];

		mx_client_get_stats(cl, &a);
		H_CHECK(mixsan_pool_open(cl, "bal", &p) == 0);
		for (int i = 0; i < N_OBJ; i++) {
			char n[32];

			snprintf(n, sizeof(n), "missing.%d", i);
			H_CHECK(mixsan_read(p, n, got, sizeof(got), 0) == -ENOENT);
		}
		mixsan_pool_close(p);
		mx_client_get_stats(cl, &b);
		fprintf(stderr, "read_policy: %d reads of missing objects: %llu by replicas, "
				"%llu sent back\n", N_OBJ,
			(unsigned long long)(b.replica_reads - a.replica_reads),
			(unsigned long long)(b.replica_bounced - a.replica_bounced));
		H_CHECK(b.replica_reads > a.replica_reads);
		H_CHECK(b.replica_bounced == a.replica_bounced);
	}
	read_all(cl, "pri", &served, &bounced);
	H_CHECK(served == 0 && bounced == 0);
	read_all(cl, "loc", &served, &bounced);
	H_CHECK(served == 0 && bounced == 0); /* no location: the primary */

	/* 2. */
	near = client(&c, MIXSAN_READ_DEFAULT, "host=h2");
	{
		mixsan_pool_t *p;
		uint64_t want = 0;

		H_CHECK(mixsan_pool_open(near, "loc", &p) == 0);
		for (int i = 0; i < N_OBJ; i++) {
			char n[32];
			int32_t acting[3];
			uint32_t pg;
			int k = mx_client_locate(near, mixsan_pool_id(p), (name(n, sizeof(n), i), n),
						 &pg, acting, 3);

			for (int j = 1; j < k; j++)
				want += acting[j] == 2;
		}
		mixsan_pool_close(p);
		read_all(near, "loc", &served, &bounced);
		fprintf(stderr, "read_policy: localize from h2: %llu reads by osd.2 as a replica "
				"(%llu expected)\n",
			(unsigned long long)served, (unsigned long long)(want * READS));
		H_CHECK(want > 0 && served == want * READS && bounced == 0);
	}

	/* 3. */
	cp = client(&c, MIXSAN_READ_PRIMARY, NULL);
	read_all(cp, "bal", &served, &bounced);
	H_CHECK(served == 0 && bounced == 0);
	cb = client(&c, MIXSAN_READ_BALANCE, NULL);
	read_all(cb, "pri", &served, &bounced);
	fprintf(stderr, "read_policy: balance on a primary pool: %llu served, %llu sent back\n",
		(unsigned long long)served, (unsigned long long)bounced);
	H_CHECK(served == 0 && bounced == 0);

	/* 4. The lease. */
	{
		mixsan_pool_t *p;
		int32_t acting[3];
		uint32_t pg;
		int64_t pool;
		int r;

		H_CHECK(mixsan_pool_open(cl, "bal", &p) == 0);
		pool = mixsan_pool_id(p);
		mixsan_pool_close(p);
		H_CHECK(mx_client_locate(cl, pool, "obj.000", &pg, acting, 3) == 3);
		r = raw_replica_read(cl, pool, "obj.000", acting[1]);
		fprintf(stderr, "read_policy: replica read at osd.%d: %s\n", acting[1], strerror(-r));
		H_CHECK(r == 0);
		h_signal_osd(&c, acting[0], SIGSTOP);
		usleep(4500 * 1000);
		r = raw_replica_read(cl, pool, "obj.000", acting[1]);
		fprintf(stderr, "read_policy: 4.5 s after its primary osd.%d stopped: %s\n",
			acting[0], strerror(-r));
		H_CHECK(r == -ESTALE);
		h_signal_osd(&c, acting[0], SIGCONT);
		for (int t = 0; t < 50 && r != 0; t++) {
			usleep(100 * 1000);
			r = raw_replica_read(cl, pool, "obj.000", acting[1]);
		}
		fprintf(stderr, "read_policy: after it continued: %s\n", strerror(-r));
		H_CHECK(r == 0);

		/* 5. A new interval waits. */
		h_signal_osd(&c, acting[0], SIGKILL);
		read_all(cl, "bal", &served, &bounced);
		fill(cl, "bal");
		read_all(cl, "bal", &served, &bounced);
		{
			int waits = 0;

			for (int i = 0; i < 4; i++) {
				char log[16];

				snprintf(log, sizeof(log), "osd.%d", i);
				if (i != acting[0])
					waits += h_log_count(&c, log, "waiting") &&
						 h_log_count(&c, log, "for its read leases to run out");
			}
			fprintf(stderr, "read_policy: %d OSDs waited for read leases after osd.%d "
					"died\n", waits, acting[0]);
			H_CHECK(waits > 0);
		}
		h_start_osd(&c, acting[0]);
		H_CHECK(h_wait_health_ok(cl, 60, why, sizeof(why)) == 0);
	}

	mixsan_shutdown(cb);
	mixsan_shutdown(cp);
	mixsan_shutdown(near);
	mixsan_shutdown(cl);
	h_stop(&c);
	fprintf(stderr, "read_policy: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

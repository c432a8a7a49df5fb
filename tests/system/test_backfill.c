/*
 * A primary that needs a backfill itself (docs/recovery.md): with PG logs
 * bounded to a few entries (--pg-log-max), an OSD is killed, objects are
 * written, rewritten and removed until every PG's log has moved past what
 * the killed OSD holds, and the OSD is restarted.  Where it is the first
 * of the up set it is primary again, without a usable copy.  Twice:
 *   - by default it hands the lead to the authority (a primary_temp), which
 *     backfills it as a member and then gives the lead back;
 *   - with --no-primary-temp it catches up by itself, listing the
 *     authority's copy (PG_SCAN), pulling what differs and deleting what
 *     the authority lacks.
 * Every acknowledged write must read back, every removed object stay
 * removed, and at the end every replica be identical with no copy the
 * model does not have.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "map.h"

#define N_OBJ 64
#define OBJ_MAX 4096
#define LOG_MAX 8

struct model {
	uint8_t data[OBJ_MAX];
	uint32_t size;
	bool exists;
};

static struct model objs[N_OBJ];

/* One synchronous operation on obj o: write_full, or remove one time in
 * four.  Retries EAGAIN/ESTALE (the PG is peering) for a while. */
static void op(mixsan_pool_t *p, uint64_t *rs, int o)
{
	char name[32];
	uint8_t buf[OBJ_MAX];
	bool rm = objs[o].exists && h_rand(rs) % 4 == 0;
	uint32_t len = 1 + (uint32_t)(h_rand(rs) % OBJ_MAX);
	int r;

	snprintf(name, sizeof(name), "obj.%d", o);
	h_fill(h_rand(rs), buf, len);
	for (int tries = 0;; tries++) {
		r = rm ? mixsan_remove(p, name) : mixsan_write_full(p, name, buf, len);
		if ((r != -EAGAIN && r != -ESTALE && r != -ETIMEDOUT) || tries > 100)
			break;
		usleep(100 * 1000);
	}
	if (r < 0) {
		fprintf(stderr, "%s of %s failed: %s\n", rm ? "remove" : "write", name,
			strerror(-r));
		h_failures++;
		return;
	}
	objs[o].exists = !rm;
	objs[o].size = rm ? 0 : len;
	if (!rm)
		memcpy(objs[o].data, buf, len);
}

static void verify(mixsan_pool_t *p, const char *when)
{
	uint8_t buf[OBJ_MAX * 2];
	int bad = 0;

	for (int o = 0; o < N_OBJ; o++) {
		char name[32];
		int64_t got;

		snprintf(name, sizeof(name), "obj.%d", o);
		got = mixsan_read(p, name, buf, sizeof(buf), 0);
		if (!objs[o].exists ? got != -ENOENT
				    : got != objs[o].size ||
					      memcmp(buf, objs[o].data, objs[o].size) != 0) {
			fprintf(stderr, "%s: obj.%d: read %lld, expected %s%u bytes\n", when, o,
				(long long)got, objs[o].exists ? "" : "ENOENT, not ",
				objs[o].size);
			bad++;
		}
	}
	h_failures += bad;
	fprintf(stderr, "backfill: %s: %s\n", when, bad ? "READ-BACK FAILURES" : "all read back");
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	uint64_t rs = 42, checked = 0, exist = 0;
	int n = 3, victim = 0, scans, temps = 0;

	memset(&c, 0, sizeof(c));
	snprintf(c.mon_args, sizeof(c.mon_args),
		 "--osd-failure-detection --heartbeat-grace 2000 --beacon-grace 6000");
	snprintf(c.osd_args, sizeof(c.osd_args),
		 "--heartbeat-interval 250 --heartbeat-grace 2000 --pg-log-max %d", LOG_MAX);
	h_start(&c, n);
	if (c.external) {
		fprintf(stderr, "backfill: skipped with an external cluster\n");
		return 77;
	}
	cl = h_connect(&c);
	/* Three replicas on three OSDs: every OSD holds every PG. */
	h_pool_create(cl, "bf", 3, 8, "osd");
	if (mixsan_pool_open(cl, "bf", &p) < 0)
		H_FATAL("pool open");

	for (int o = 0; o < N_OBJ; o++)
		op(p, &rs, o);
	verify(p, "before the kill");

	for (int round = 0; round < 2; round++) {
		const char *how = round == 0 ? "by a primary_temp" : "by itself";

		fprintf(stderr, "backfill: kill -9 osd.%d (to be caught up %s)\n", victim, how);
		h_signal_osd(&c, victim, SIGKILL);
		/* Many times the log bound per PG, removes included. */
		for (int k = 0; k < 8 * LOG_MAX * 8; k++)
			op(p, &rs, (int)(h_rand(&rs) % N_OBJ));
		verify(p, "with osd.0 down");

		fprintf(stderr, "backfill: restarting osd.%d\n", victim);
		if (round == 1)
			snprintf(c.osd_args + strlen(c.osd_args),
				 sizeof(c.osd_args) - strlen(c.osd_args), " --no-primary-temp");
		h_start_osd(&c, victim);
		if (h_wait_up(&c, cl, n, 30) < 0)
			H_FATAL("osd.%d did not come back", victim);
		sleep(3);
		verify(p, "after the restart");
		if (round == 0) {
			temps = h_log_count(&c, "osd.0", "asking for it as the primary for now");
			fprintf(stderr, "backfill: osd.0 handed the lead over in %d PGs\n", temps);
			H_CHECK(temps > 0);
			H_CHECK(h_log_count(&c, "osd.0", "backfilling ourselves from") == 0);
		} else {
			scans = h_log_count(&c, "osd.0", "backfilling ourselves from");
			fprintf(stderr, "backfill: osd.0 backfilled itself as primary in %d PGs\n",
				scans);
			H_CHECK(scans > 0);
			H_CHECK(h_log_count(&c, "osd.0", "asking for it as the primary for now") ==
				temps);
		}
	}

	/* Writes still work, then the final check of every replica. */
	for (int o = 0; o < N_OBJ; o += 3)
		op(p, &rs, o);
	verify(p, "at the end");
	for (int o = 0; o < N_OBJ; o++)
		exist += objs[o].exists;
	{
		int problems = h_shutdown_check_replicas(&c, cl, p, &checked);

		fprintf(stderr, "backfill: %llu objects (%llu in the model), %d problems\n",
			(unsigned long long)checked, (unsigned long long)exist, problems);
		H_CHECK(problems == 0);
		H_CHECK(checked == exist);
	}
	h_stop(&c);
	fprintf(stderr, "backfill: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

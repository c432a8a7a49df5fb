/*
 * Cache tiering (docs/cache-tiering.md, "Restarting on the fence"): "a
 * sequence is restarted only while it has had no effect".  With
 * --direct: "a request submitted directly (no tier in the library's map)
 * that an OSD refuses with ESTALE is resent through the tier once the new
 * map shows it" -- the same for a direct append that had already run.
 *
 * A readonly-mode append's base write runs on the base PG's primary, which
 * applies it and waits for its replica (stopped here, SIGSTOP).  The mode
 * then changes to writeback (tier_epoch moves on), and the replica is
 * marked out: the primary's new interval answers the waiting write EAGAIN,
 * and the client's resend of that step meets the fence (ESTALE).  The tier
 * then runs the whole append again under writeback, on a copy promoted
 * from a base that already holds the first one.
 *
 * Checked: the object ends with the appended bytes once ("AB"), and the
 * append's answer is consistent with that.
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
#include "placement.h"
#include "tier.h"

/* The acting set of oid in pool (by name) in the client's map. */
static int acting_of(mixsan_cluster_t *cl, const char *pool, const char *oid, int32_t *a)
{
	struct mx_map *m = mx_client_map_copy(cl);
	struct mx_placement *pl = NULL;
	const struct mx_pool *p = m ? mx_map_pool_by_name(m, pool) : NULL;
	int n = -1;

	if (p && mx_placement_new(m, &pl) == 0)
		n = mx_pg_acting(pl, m, p, mx_object_pg(p, oid, strlen(oid)), a, MX_MAX_SIZE);
	mx_placement_free(pl);
	mx_map_free(m);
	return n;
}

static uint64_t epoch_of(mixsan_cluster_t *cl)
{
	struct mx_map *m = mx_client_map_copy(cl);
	uint64_t e = m ? m->epoch : 0;

	mx_map_free(m);
	return e;
}

int main(int argc, char **argv)
{
	bool direct = argc > 1 && strcmp(argv[1], "--direct") == 0;
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p, *braw;
	const char *add[] = {"base", "rbase", "cache", "rhot", "force", "1"};
	const char *ro[] = {"pool", "rhot", "mode", "readonly"};
	const char *wb[] = {"pool", "rhot", "mode", "writeback"};
	mixsan_completion_t *comp;
	int32_t ba[MX_MAX_SIZE], ca[MX_MAX_SIZE];
	char oid[32] = "", rep[16], buf[64];
	const char *out[] = {"id", rep};
	int64_t r, n;

	memset(&c, 0, sizeof(c));
	snprintf(c.osd_args, sizeof(c.osd_args), "--agent-interval 200");
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "rbase", 2, 8, "osd"); /* min_size 1 */
	h_pool_create(cl, "rhot", 1, 8, "osd");
	h_cmd(cl, "pool tier add", add, 3);
	if (!direct)
		h_cmd(cl, "pool tier mode", ro, 2); /* else none: never used, direct */
	if (mixsan_pool_open(cl, "rbase", &p) < 0 ||
	    mx_client_pool_open_raw(cl, mixsan_pool_id(p), &braw) < 0)
		H_FATAL("pool open");

	/* An object whose cache copy lives away from the base's replica. */
	for (int i = 0; i < 200 && !oid[0]; i++) {
		char name[32];

		snprintf(name, sizeof(name), "twice%d", i);
		if (acting_of(cl, "rbase", name, ba) == 2 && acting_of(cl, "rhot", name, ca) == 1 &&
		    ca[0] != ba[1])
			snprintf(oid, sizeof(oid), "%s", name);
	}
	if (!oid[0])
		H_FATAL("no object placed as wanted");
	fprintf(stderr, "restart: %s: base [%d,%d], cache [%d]\n", oid, ba[0], ba[1], ca[0]);

	H_CHECK(mixsan_write_full(p, oid, "A", 1) == 0);

	/* The base replica stops: the primary applies the append's base
	 * write and waits for it. */
	h_signal_osd(&c, ba[1], SIGSTOP);
	if (mixsan_completion_create(NULL, NULL, &comp) < 0)
		H_FATAL("completion");
	H_CHECK(mixsan_aio_append(p, oid, comp, "B", 1) == 0);
	usleep(1000000);
	fprintf(stderr, "restart: append pending: %s\n",
		mixsan_completion_is_complete(comp) ? "no (complete)" : "yes");

	/* readonly (or unused none) -> writeback: the fence moves on; our
	 * map has it. */
	h_cmd(cl, "pool tier mode", wb, 2);
	H_CHECK(mixsan_wait_for_epoch(cl, epoch_of(cl), 10000) == 0);
	usleep(500000);
	/* The replica out: the primary's new interval answers the base
	 * write EAGAIN; its resend meets the fence. */
	snprintf(rep, sizeof(rep), "%d", ba[1]);
	h_cmd(cl, "osd out", out, 1);

	/* Bounded: an append left waiting for ever fails here, not by the
	 * suite's timeout. */
	r = h_wait_completion(comp, 60);
	if (r == -ETIMEDOUT && !mixsan_completion_is_complete(comp)) {
		h_signal_osd(&c, ba[1], SIGCONT);
		H_FATAL("the append never answered");
	}
	mixsan_completion_release(comp);
	fprintf(stderr, "restart: append answered %lld (%s)\n", (long long)r,
		r < 0 ? strerror((int)-r) : "ok");
	h_signal_osd(&c, ba[1], SIGCONT);

	n = mixsan_read(p, oid, buf, sizeof(buf), 0);
	fprintf(stderr, "restart: through the tier: %lld bytes: %.*s\n", (long long)n,
		n > 0 ? (int)n : 0, buf);
	if (r == 0)
		H_CHECK(n == 2 && memcmp(buf, "AB", 2) == 0);
	else
		H_CHECK((n == 1 && buf[0] == 'A') || (n == 2 && memcmp(buf, "AB", 2) == 0));

	/* No OSD went down on the monitor's own clock: the replica was
	 * stopped for a few seconds against a 20 s beacon grace (a monitor
	 * that compared a beacon time read after its tick's clock marked a
	 * just-created OSD down, and the base PG went incomplete). */
	H_CHECK(h_log_count(&c, "mon", "no beacon") == 0);

	mixsan_pool_close(p);
	mixsan_pool_close(braw);
	mixsan_shutdown(cl);
	h_stop(&c);
	fprintf(stderr, "restart: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

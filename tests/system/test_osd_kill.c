/*
 * kill -9 an OSD in the middle of a stream of writes, then restart it:
 * every write the client saw acknowledged reads back intact, the restarted
 * OSD's store opens cleanly, and afterwards every replica is identical.
 *
 * Three rounds kill a different OSD each (so primaries and replicas both
 * die).  Writes are a mix of whole-object writes, partial overwrites and
 * appends on a few hundred objects, with 16 in flight; the expected
 * content of each object is kept in memory and updated on each
 * acknowledgement.  Requests in flight at the kill are retried by the
 * client (same request id), so each completes exactly once.
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
#include "model.h"

#define N_OBJ 300
#define OBJ_MAX (256u * 1024u)
#define QD 16

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	struct h_model md = {.name = "osd_kill", .n_obj = N_OBJ, .obj_max = OBJ_MAX,
			     .len_max = 64 * 1024, .off_slack = 4096, .qd = QD};
	uint64_t seed = (uint64_t)time(NULL), checked = 0;

	if (getenv("MIXSAN_TEST_SEED"))
		seed = strtoull(getenv("MIXSAN_TEST_SEED"), NULL, 10);
	md.rs = seed;
	fprintf(stderr, "osd_kill: seed %llu\n", (unsigned long long)seed);
	memset(&c, 0, sizeof(c));
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "kill", 3, 32, "osd");
	if (mixsan_pool_open(cl, "kill", &p) < 0)
		H_FATAL("pool open");
	md.pool = p;
	h_model_init(&md);

	for (int round = 0; round < 3; round++) {
		int victim = round % 3;
		int total = 1500, kill_at = 500;
		char when[32];

		for (int i = 0; i < total; i++) {
			struct h_model_req *r = h_model_next(&md);

			if (i == kill_at) {
				/* With 3 OSDs and size 3 every PG has the victim, so
				 * every request in flight now waits for it: they
				 * must all complete once it is back. */
				fprintf(stderr, "osd_kill: round %d: kill -9 osd.%d after %llu acks\n",
					round, victim, (unsigned long long)md.acked);
				h_signal_osd(&c, victim, SIGKILL);
				usleep(1000 * 1000);
				fprintf(stderr, "osd_kill: round %d: restarting osd.%d\n", round,
					victim);
				h_start_osd(&c, victim);
			}
			h_model_issue(&md, r);
		}
		h_model_drain(&md);
		if (h_wait_up(&c, cl, 3, 30) < 0)
			H_FATAL("osd.%d did not come back", victim);
		/* Every acknowledged write reads back. */
		snprintf(when, sizeof(when), "round %d", round);
		h_model_verify(&md, when);
	}
	{
		char log[16];

		for (int i = 0; i < 3; i++) {
			snprintf(log, sizeof(log), "osd.%d", i);
			/* Each OSD started twice (once more after its kill) and
			 * opened its store cleanly each time. */
			H_CHECK(h_log_count(&c, log, "object store open") == 2);
			H_CHECK(h_log_count(&c, log, "error") == 0);
		}
	}
	{
		int problems = h_shutdown_check_replicas(&c, cl, p, &checked);

		fprintf(stderr, "osd_kill: %llu objects identical on all replicas? %d problems\n",
			(unsigned long long)checked, problems);
		H_CHECK(problems == 0);
	}
	h_model_free(&md);
	h_stop(&c);
	fprintf(stderr, "osd_kill: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

/*
 * The tiering agent and its OSD's graceful stop (SIGINT): the OSD stops
 * serving, then stops its agent (osd/agent.c, mx_agent_stop).  An agent in
 * the middle of a pass over a PG this OSD leads sends every request of
 * that pass to this very OSD.  Checked: the OSD exits within a few seconds
 * of SIGINT, whatever its agent was doing, with a writeback cache of 1500
 * objects in one PG (its pass probes each of them).  Five stops in turn,
 * each OSD restarted after.
 */
#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "util.h"

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	const char *add[] = {"base", "abase", "cache", "ahot", "force", "1"};
	const char *md[] = {"pool", "ahot", "mode", "writeback"};
	double worst = 0;

	memset(&c, 0, sizeof(c));
	snprintf(c.osd_args, sizeof(c.osd_args), "--agent-interval 100");
	h_start(&c, 1);
	cl = h_connect(&c);
	h_pool_create(cl, "abase", 1, 1, "osd");
	h_pool_create(cl, "ahot", 1, 1, "osd");
	h_cmd(cl, "pool tier add", add, 3);
	h_cmd(cl, "pool tier mode", md, 2);
	if (mixsan_pool_open(cl, "abase", &p) < 0)
		H_FATAL("pool open");
	for (int i = 0; i < 1500; i++) {
		char oid[32];

		snprintf(oid, sizeof(oid), "obj%04d", i);
		if (mixsan_write_full(p, oid, "x", 1) != 0)
			H_FATAL("write %s", oid);
	}
	fprintf(stderr, "agentstop: 1500 objects written\n");
	for (int round = 0; round < 5; round++) {
		uint64_t t0;
		pid_t pid = c.osd_pids[0];
		int st;
		bool gone = false;
		double s;

		usleep(150000 + 70000 * round);
		t0 = mx_now_ns();
		kill(pid, SIGINT);
		while (mx_now_ns() - t0 < 30ull * 1000000000ull) {
			if (waitpid(pid, &st, WNOHANG) == pid) {
				gone = true;
				break;
			}
			usleep(20000);
		}
		s = (double)(mx_now_ns() - t0) / 1e9;
		if (!gone) {
			char gdb[160];

			/* Where its threads are, when gdb is at hand. */
			snprintf(gdb, sizeof(gdb),
				 "gdb -p %d -batch -ex 'thread apply all bt' 2>/dev/null | "
				 "grep -E '^#[0-9]+ .* in (mx_agent|walk_pg|pass|agent_main|"
				 "mx_client|list_pg|main)' >&2",
				 (int)pid);
			if (system(gdb) < 0)
				fprintf(stderr, "agentstop: no gdb\n");
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
		}
		fprintf(stderr, "agentstop: round %d: the OSD %s after %.1f s\n", round,
			gone ? "exited" : "was still running (killed)", s);
		if (s > worst)
			worst = s;
		c.osd_pids[0] = 0;
		h_start_osd(&c, 0);
		if (h_wait_up(&c, cl, 1, 30) < 0)
			H_FATAL("osd.0 not up again");
		for (int t = 0; t < 300; t++) {
			char b[4];

			if (mixsan_read(p, "obj0000", b, sizeof(b), 0) == 1)
				break;
			usleep(100000);
		}
	}
	fprintf(stderr, "agentstop: the slowest stop took %.1f s\n", worst);
	H_CHECK(worst < 10);
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	h_stop(&c);
	fprintf(stderr, "agentstop: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

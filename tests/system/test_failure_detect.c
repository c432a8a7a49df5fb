/*
 * Failure detection: with the monitor's failure detection on, a killed OSD,
 * a hung one (SIGSTOP) and a cut-off one (its port dropped by a firewall
 * rule on loopback) are each marked down within the heartbeat grace plus
 * a margin; an OSD down longer than the down-out interval is marked out and
 * comes back in when it boots again; a restarted or continued OSD comes
 * back up by itself.  The monitor's tick stalls a little each second
 * (fault injection), and no OSD is marked down for missing beacons.
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

#define GRACE_MS 2000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait until osd id is up (want_up) or down; returns seconds waited or -1. */
static double wait_state(mixsan_cluster_t *cl, int id, bool want_up, bool check_in, bool want_in,
			 double timeout)
{
	double t0 = now_s();

	while (now_s() - t0 < timeout) {
		struct mx_map *m = mx_client_map_copy(cl);
		bool ok = false;

		if (m && (uint32_t)id < m->max_osd) {
			ok = m->osds[id].up == want_up;
			if (check_in)
				ok = ok && m->osds[id].in == want_in;
		}
		mx_map_free(m);
		if (ok)
			return now_s() - t0;
		usleep(50000);
	}
	return -1;
}

static int port_of(mixsan_cluster_t *cl, int id)
{
	struct mx_map *m = mx_client_map_copy(cl);
	const char *colon = strrchr(m->osds[id].addr, ':');
	int port = atoi(colon + 1);

	mx_map_free(m);
	return port;
}

static int nft(const char *cmd)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "nft %s", cmd);
	return system(buf);
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	double t;
	char table[64];
	bool have_nft;

	memset(&c, 0, sizeof(c));
	snprintf(c.mon_args, sizeof(c.mon_args),
		 "--osd-failure-detection --heartbeat-grace %d --beacon-grace 6000 "
		 "--down-out-interval 4 --inject-tick-stall 3", GRACE_MS);
	snprintf(c.osd_args, sizeof(c.osd_args), "--heartbeat-interval 250 --heartbeat-grace %d",
		 GRACE_MS);
	h_start(&c, 4);
	cl = h_connect(&c);
	h_pool_create(cl, "hb", 3, 32, "osd");
	sleep(1);

	/* 1. kill -9: peers' connections are refused, reported at once. */
	h_signal_osd(&c, 1, SIGKILL);
	t = wait_state(cl, 1, false, false, false, GRACE_MS / 1000.0 + 2);
	fprintf(stderr, "failure_detect: killed osd.1 marked down after %.2f s\n", t);
	H_CHECK(t >= 0);
	h_start_osd(&c, 1);
	t = wait_state(cl, 1, true, false, false, 10);
	fprintf(stderr, "failure_detect: restarted osd.1 up after %.2f s\n", t);
	H_CHECK(t >= 0);

	/* 2. SIGSTOP: silent; down within the grace (+ margin), then out
	 * after the down-out interval; after SIGCONT it boots again and comes
	 * back in. */
	h_signal_osd(&c, 2, SIGSTOP);
	t = wait_state(cl, 2, false, false, false, GRACE_MS / 1000.0 + 2);
	fprintf(stderr, "failure_detect: hung osd.2 marked down after %.2f s\n", t);
	H_CHECK(t >= 0);
	t = wait_state(cl, 2, false, true, false, 10);
	fprintf(stderr, "failure_detect: osd.2 marked out %.2f s later\n", t);
	H_CHECK(t >= 0);
	h_signal_osd(&c, 2, SIGCONT);
	t = wait_state(cl, 2, true, true, true, 10);
	fprintf(stderr, "failure_detect: continued osd.2 up and in after %.2f s\n", t);
	H_CHECK(t >= 0);

	/* 3. Cut off: drop every packet to the OSD's port. */
	snprintf(table, sizeof(table), "mxtest%d", (int)getpid());
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "add table inet %s", table);
		have_nft = nft(cmd) == 0;
		if (have_nft) {
			snprintf(cmd, sizeof(cmd),
				 "'add chain inet %s input { type filter hook input priority 0; }'",
				 table);
			H_CHECK(nft(cmd) == 0);
			snprintf(cmd, sizeof(cmd), "add rule inet %s input tcp dport %d drop", table,
				 port_of(cl, 3));
			H_CHECK(nft(cmd) == 0);
			/* The cut-off OSD still reaches the monitor, so it
			 * boots again as soon as it sees itself down: watch the
			 * monitor's log for the transition rather than the map. */
			{
				int before = h_log_count(&c, "mon", "osd.3 marked down");
				double t0 = now_s();

				t = -1;
				while (now_s() - t0 < GRACE_MS / 1000.0 + 2) {
					if (h_log_count(&c, "mon", "osd.3 marked down") > before) {
						t = now_s() - t0;
						break;
					}
					usleep(50000);
				}
			}
			fprintf(stderr, "failure_detect: cut-off osd.3 marked down after %.2f s\n", t);
			H_CHECK(t >= 0);
			snprintf(cmd, sizeof(cmd), "delete table inet %s", table);
			H_CHECK(nft(cmd) == 0);
			t = wait_state(cl, 3, true, false, false, 10);
			fprintf(stderr, "failure_detect: healed osd.3 up after %.2f s\n", t);
			H_CHECK(t >= 0);
		} else {
			fprintf(stderr, "failure_detect: nft unavailable, cut-off case not run\n");
			h_failures++;
		}
	}
	/* The monitor logged its reasons. */
	H_CHECK(h_log_count(&c, "mon", "marked down: reported failed") >= 3);
	H_CHECK(h_log_count(&c, "mon", "marked out: down for longer") >= 1);
	/* Reports about an OSD by a single peer are not enough with 4 OSDs:
	 * the cut-off OSD itself reported its peers, and none went down for
	 * it (only osd.1, osd.2, osd.3 ever did). */
	H_CHECK(h_log_count(&c, "mon", "osd.0 marked down") == 0);
	/* Each tick stalled 3 ms after its health pass (as a loaded
	 * monitor's does): no OSD was ever taken for silent by the monitor's
	 * own beacon clock, new incarnations included. */
	H_CHECK(h_log_count(&c, "mon", "no beacon") == 0);
	mixsan_shutdown(cl);
	h_stop(&c);
	fprintf(stderr, "failure_detect: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

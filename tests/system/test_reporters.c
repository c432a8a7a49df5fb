/*
 * Failure reports count per host (docs/recovery.md, "Failure detection"):
 * OSDs of one host, cut off from the others, must not mark an OSD of
 * another host down between them.
 *
 * Four OSDs: osd.0 and osd.1 on host ha, osd.2 on hb, osd.3 on hc.  Reports
 * are sent straight to the monitor as the OSDs would send them (no
 * heartbeat is really missed: the grace is a minute).  osd.0 and osd.1
 * report osd.2: two reporters, one host, and two hosts could report, so
 * osd.2 stays up.  osd.3 reports it too: a second host, and osd.2 is marked
 * down (it boots again by itself).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "map.h"
#include "msg.h"

static void report(const char *mon, mixsan_cluster_t *cl, int32_t reporter, int32_t target)
{
	struct mx_map *m = mx_client_map_copy(cl);
	struct mx_msg_osd_failure f = {.reporter = reporter, .target = target,
				       .silent_ms = 61000};
	uint8_t hdr[MX_MSG_HDR_LEN];
	struct mx_wbuf w;
	int fd = h_raw_connect(mon);

	H_CHECK(m && fd >= 0);
	if (!m || fd < 0) {
		mx_map_free(m);
		if (fd >= 0)
			close(fd);
		return;
	}
	f.epoch = m->epoch;
	f.target_incarnation = m->osds[target].incarnation;
	mx_map_free(m);
	mx_wbuf_init(&w);
	mx_enc_osd_failure(&w, &f);
	mx_msg_hdr_encode(hdr, MX_MSG_MON_OSD_FAILURE, 1, w.data, (uint32_t)w.len);
	H_CHECK(h_io_all(fd, hdr, sizeof(hdr), true) == 0);
	H_CHECK(h_io_all(fd, w.data, w.len, true) == 0);
	mx_wbuf_free(&w);
	usleep(200 * 1000); /* read by the monitor before the close */
	close(fd);
}

int main(void)
{
	static const char *const hosts[] = {"host=ha", "host=ha", "host=hb", "host=hc"};
	struct h_cluster c;
	mixsan_cluster_t *cl;

	if (getenv("MIXSAN_TEST_MON")) {
		fprintf(stderr, "reporters: needs its own monitor; skipped\n");
		return 77;
	}
	memset(&c, 0, sizeof(c));
	snprintf(c.mon_args, sizeof(c.mon_args), "--heartbeat-grace 60000 --beacon-grace 600000");
	for (int i = 0; i < 4; i++)
		h_set_location(&c, i, hosts[i]);
	h_start(&c, 4);
	cl = h_connect(&c);

	report(c.mon_addr, cl, 0, 2);
	report(c.mon_addr, cl, 1, 2);
	sleep(1);
	H_CHECK(h_log_count(&c, "mon", "2 of 2 reporters, 1 of 2 hosts needed") == 1);
	H_CHECK(h_log_count(&c, "mon", "osd.2 marked down") == 0);
	H_CHECK(h_count_up(cl) == 4);
	fprintf(stderr, "reporters: two OSDs of host ha reported osd.2: still up\n");

	report(c.mon_addr, cl, 3, 2);
	for (int t = 0; t < 40 && h_log_count(&c, "mon", "osd.2 marked down") == 0; t++)
		usleep(100 * 1000);
	H_CHECK(h_log_count(&c, "mon", "3 of 2 reporters, 2 of 2 hosts needed") == 1);
	H_CHECK(h_log_count(&c, "mon", "osd.2 marked down") == 1);
	fprintf(stderr, "reporters: osd.3 of host hc too: osd.2 marked down\n");
	H_CHECK(h_wait_up(&c, cl, 4, 30) == 0);

	mixsan_shutdown(cl);
	h_stop(&c);
	fprintf(stderr, "reporters: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

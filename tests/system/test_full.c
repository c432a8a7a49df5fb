/*
 * Disk full: every OSD's folder is a small tmpfs.  Objects are written
 * until the cluster refuses one: the monitor must have said nearfull
 * before that, and full then; the refusal is ENOSPC, every daemon keeps
 * running, every acknowledged object reads back, removals still work, and
 * once they have freed room new writes are taken again.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"

#define OBJ_SIZE (1u << 20)
#define MAX_OBJS 400
#define TMPFS_MIB 192

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Whether the monitor's status names health check code. */
static bool has_check(mixsan_cluster_t *cl, const char *code)
{
	json_t *j = h_status(cl), *c;
	bool found = false;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(j, "health"), "checks"), i, c)
		found |= json_is_string(json_object_get(c, "code")) &&
			 strcmp(json_string_value(json_object_get(c, "code")), code) == 0;
	json_decref(j);
	return found;
}

static void obj_name(char *buf, size_t sz, int i)
{
	snprintf(buf, sz, "fill.%03d", i);
}

static bool daemons_alive(const struct h_cluster *c)
{
	if (kill(c->mon_pid, 0) < 0)
		return false;
	for (int i = 0; i < c->n_osds; i++)
		if (c->osd_pids[i] <= 0 || kill(c->osd_pids[i], 0) < 0)
			return false;
	return true;
}

/*
 * The OSD's own guard: the monitor's ratios out of reach (it never marks
 * an OSD full), the OSDs' --failsafe-full-ratio low.  The OSDs refuse new
 * data by themselves, with ENOSPC, keep what they acknowledged, and take
 * writes again once removals have freed the room.
 */
static void failsafe_round(uint8_t *data, uint8_t *rb)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	int acked = 0, r = 0;
	double t0;

	memset(&c, 0, sizeof(c));
	c.osd_tmpfs_mib = TMPFS_MIB;
	snprintf(c.mon_args, sizeof(c.mon_args),
		 "--nearfull-ratio 0.99 --backfillfull-ratio 0.995 --full-ratio 1");
	snprintf(c.osd_args, sizeof(c.osd_args), "--failsafe-full-ratio 0.5");
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "failsafe", 3, 16, "osd");
	if (mixsan_pool_open(cl, "failsafe", &p) < 0)
		H_FATAL("pool open");
	for (int i = 0; i < MAX_OBJS; i++) {
		char name[32];

		obj_name(name, sizeof(name), i);
		h_fill((uint64_t)i, data, OBJ_SIZE);
		r = mixsan_write_full(p, name, data, OBJ_SIZE);
		if (r < 0)
			break;
		acked++;
	}
	fprintf(stderr, "full: failsafe: %d objects acknowledged, then %s\n", acked,
		r ? strerror(-r) : "no refusal");
	H_CHECK(acked > 0 && r == -ENOSPC);
	H_CHECK(!has_check(cl, "OSD_FULL")); /* the OSDs refused, not the map */
	H_CHECK(daemons_alive(&c));
	for (int i = 0; i < acked; i++) {
		char name[32];

		obj_name(name, sizeof(name), i);
		h_fill((uint64_t)i, data, OBJ_SIZE);
		H_CHECK(mixsan_read(p, name, rb, OBJ_SIZE, 0) == OBJ_SIZE &&
			memcmp(rb, data, OBJ_SIZE) == 0);
		if (i % 2 == 0)
			H_CHECK(mixsan_remove(p, name) == 0);
	}
	t0 = now_s();
	h_fill(1000, data, OBJ_SIZE);
	while ((r = mixsan_write_full(p, "after", data, OBJ_SIZE)) == -ENOSPC &&
	       now_s() - t0 < 30)
		usleep(500 * 1000);
	fprintf(stderr, "full: failsafe: writes taken again %.1f s after the removals (%s)\n",
		now_s() - t0, r ? strerror(-r) : "ok");
	H_CHECK(r == 0);
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	h_stop(&c);
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	uint8_t *data = malloc(OBJ_SIZE), *rb = malloc(OBJ_SIZE);
	int acked = 0, refused_at = -1, r = 0;
	bool nearfull_seen = false;
	double t0;

	memset(&c, 0, sizeof(c));
	c.osd_tmpfs_mib = TMPFS_MIB;
	snprintf(c.mon_args, sizeof(c.mon_args),
		 "--nearfull-ratio 0.4 --backfillfull-ratio 0.6 --full-ratio 0.7");
	snprintf(c.osd_args, sizeof(c.osd_args), "--failsafe-full-ratio 0.85");
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "full", 3, 16, "osd");
	if (mixsan_pool_open(cl, "full", &p) < 0)
		H_FATAL("pool open");

	/* Fill, a little at a time, watching the monitor's verdict. */
	for (int i = 0; i < MAX_OBJS; i++) {
		char name[32];

		obj_name(name, sizeof(name), i);
		h_fill((uint64_t)i, data, OBJ_SIZE);
		r = mixsan_write_full(p, name, data, OBJ_SIZE);
		if (r < 0) {
			refused_at = i;
			break;
		}
		acked++;
		/* Slowly enough for several reports (one a second per OSD)
		 * between the nearfull and the full ratio. */
		usleep(100 * 1000);
		if (!nearfull_seen)
			nearfull_seen = has_check(cl, "OSD_NEARFULL");
	}
	fprintf(stderr, "full: %d objects of 1 MiB acknowledged, then %s\n", acked,
		refused_at < 0 ? "no refusal" : strerror(-r));
	H_CHECK(refused_at > 0);
	H_CHECK(r == -ENOSPC);
	H_CHECK(nearfull_seen);
	/* Full is reported (within the report interval). */
	t0 = now_s();
	while (!has_check(cl, "OSD_FULL") && now_s() - t0 < 15)
		usleep(200 * 1000);
	H_CHECK(has_check(cl, "OSD_FULL"));
	/* Refused again, cleanly, and every daemon still runs. */
	h_fill(999, data, OBJ_SIZE);
	H_CHECK(mixsan_write_full(p, "one.more", data, OBJ_SIZE) == -ENOSPC);
	H_CHECK(daemons_alive(&c));

	/* Nothing acknowledged is lost. */
	for (int i = 0; i < acked; i++) {
		char name[32];
		int64_t n;

		obj_name(name, sizeof(name), i);
		h_fill((uint64_t)i, data, OBJ_SIZE);
		n = mixsan_read(p, name, rb, OBJ_SIZE, 0);
		H_CHECK(n == OBJ_SIZE && memcmp(rb, data, OBJ_SIZE) == 0);
	}

	/* Removals go on while full, and free the room. */
	for (int i = 0; i < acked; i += 2) {
		char name[32];

		obj_name(name, sizeof(name), i);
		H_CHECK(mixsan_remove(p, name) == 0);
	}
	t0 = now_s();
	h_fill(1000, data, OBJ_SIZE);
	while ((r = mixsan_write_full(p, "after", data, OBJ_SIZE)) == -ENOSPC &&
	       now_s() - t0 < 30)
		usleep(500 * 1000);
	fprintf(stderr, "full: writes taken again %.1f s after the removals (%s)\n", now_s() - t0,
		r ? strerror(-r) : "ok");
	H_CHECK(r == 0);
	t0 = now_s();
	while (has_check(cl, "OSD_FULL") && now_s() - t0 < 15)
		usleep(200 * 1000);
	H_CHECK(!has_check(cl, "OSD_FULL"));
	H_CHECK(mixsan_read(p, "after", rb, OBJ_SIZE, 0) == OBJ_SIZE &&
		memcmp(rb, data, OBJ_SIZE) == 0);
	for (int i = 1; i < acked; i += 2) {
		char name[32];

		obj_name(name, sizeof(name), i);
		h_fill((uint64_t)i, data, OBJ_SIZE);
		H_CHECK(mixsan_read(p, name, rb, OBJ_SIZE, 0) == OBJ_SIZE &&
			memcmp(rb, data, OBJ_SIZE) == 0);
	}
	H_CHECK(daemons_alive(&c));

	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	h_stop(&c);
	failsafe_round(data, rb);
	free(data);
	free(rb);
	fprintf(stderr, "full: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

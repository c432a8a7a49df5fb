/*
 * Scrub and repair (docs/recovery.md, "Scrub"): a deep scrub of a healthy PG
 * finds nothing; a flipped bit in a replica's copy is found by a deep scrub
 * and fixed by a repair, leaving every replica identical; a flipped bit in
 * the primary's copy makes reads fail with EIO (never bad data) until a
 * repair restores it from a replica.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "map.h"
#include "msg.h"

#define OBJ_SIZE (64u * 1024u)
#define N_OBJ 8


static struct mx_client_scrub_result scrub(mixsan_cluster_t *cl, int64_t pool, uint32_t pg,
					   uint32_t flags, const char *what)
{
	struct mx_client_scrub_result res;
	int r = mx_client_pg_scrub(cl, pool, pg, flags, &res);

	if (r < 0)
		H_FATAL("%s: scrub of pg %lld.%x: %s", what, (long long)pool, pg, strerror(-r));
	fprintf(stderr, "scrub: %s: %u objects, %u inconsistent, %u repaired, %u errors\n",
		what, res.scrubbed, res.inconsistent, res.repaired, res.errors);
	return res;
}

/* Stop osd i cleanly, flip a bit of needle's block in its store, restart it
 * and wait until it is up again. */
static void damage(struct h_cluster *c, mixsan_cluster_t *cl, int i, const uint8_t *needle)
{
	char dir[400];

	h_signal_osd(c, i, SIGTERM);
	h_osd_dir(c, i, dir, sizeof(dir));
	H_CHECK(h_flip_in_tree(dir, needle, 4096, 100) == 1);
	h_start_osd(c, i);
	if (h_wait_up(c, cl, 3, 30) < 0)
		H_FATAL("osd.%d did not come back", i);
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	struct mx_client_scrub_result res;
	int32_t acting[8];
	uint32_t pg, pg2;
	uint8_t *data[N_OBJ], *rb = malloc(OBJ_SIZE);
	char name[32];
	int64_t pool;
	uint64_t checked = 0;
	int n;

	memset(&c, 0, sizeof(c));
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "scrub", 3, 4, "osd");
	if (mixsan_pool_open(cl, "scrub", &p) < 0)
		H_FATAL("pool open");
	pool = mixsan_pool_id(p);
	for (int i = 0; i < N_OBJ; i++) {
		data[i] = malloc(OBJ_SIZE);
		h_fill(1000 + (uint64_t)i, data[i], OBJ_SIZE);
		snprintf(name, sizeof(name), "obj.%d", i);
		H_CHECK(mixsan_write_full(p, name, data[i], OBJ_SIZE) == 0);
		H_CHECK(mixsan_setxattr(p, name, "color", "blue", 4) == 0);
	}

	/* A healthy PG: nothing to report. */
	n = mx_client_locate(cl, pool, "obj.0", &pg, acting, 8);
	H_CHECK(n == 3);
	res = scrub(cl, pool, pg, MX_SCRUB_DEEP, "healthy");
	H_CHECK(res.scrubbed >= 1 && res.inconsistent == 0 && res.errors == 0);
	res = scrub(cl, pool, pg, 0, "healthy, light");
	H_CHECK(res.inconsistent == 0 && res.errors == 0);

	/* A replica's copy of obj.0 rots. */
	damage(&c, cl, acting[1], data[0] + 16 * 1024);
	H_CHECK(mixsan_read(p, "obj.0", rb, OBJ_SIZE, 0) == OBJ_SIZE &&
		memcmp(rb, data[0], OBJ_SIZE) == 0);
	res = scrub(cl, pool, pg, 0, "replica rotted, light");
	H_CHECK(res.inconsistent == 0);
	res = scrub(cl, pool, pg, MX_SCRUB_DEEP, "replica rotted, deep");
	H_CHECK(res.inconsistent == 1 && res.repaired == 0);
	res = scrub(cl, pool, pg, MX_SCRUB_DEEP | MX_SCRUB_REPAIR, "replica rotted, repair");
	H_CHECK(res.inconsistent == 1 && res.repaired == 1 && res.errors == 0);
	res = scrub(cl, pool, pg, MX_SCRUB_DEEP, "replica repaired, deep");
	H_CHECK(res.inconsistent == 0 && res.errors == 0);
	{
		char log[16];

		snprintf(log, sizeof(log), "osd.%d", acting[0]);
		H_CHECK(h_log_count(&c, log, "scrub: object 'obj.0'") >= 1);
	}

	/* The primary's copy of another object rots. */
	n = mx_client_locate(cl, pool, "obj.1", &pg2, acting, 8);
	H_CHECK(n == 3);
	damage(&c, cl, acting[0], data[1] + 32 * 1024);
	/* The restarted primary peers again; the read waits for that. */
	H_CHECK(mixsan_read(p, "obj.1", rb, OBJ_SIZE, 0) == -EIO);
	res = scrub(cl, pool, pg2, MX_SCRUB_DEEP, "primary rotted, deep");
	H_CHECK(res.inconsistent == 1);
	H_CHECK(mixsan_read(p, "obj.1", rb, OBJ_SIZE, 0) == -EIO);
	res = scrub(cl, pool, pg2, MX_SCRUB_DEEP | MX_SCRUB_REPAIR, "primary rotted, repair");
	H_CHECK(res.inconsistent == 1 && res.repaired == 1 && res.errors == 0);
	H_CHECK(mixsan_read(p, "obj.1", rb, OBJ_SIZE, 0) == OBJ_SIZE &&
		memcmp(rb, data[1], OBJ_SIZE) == 0);
	res = scrub(cl, pool, pg2, MX_SCRUB_DEEP, "primary repaired, deep");
	H_CHECK(res.inconsistent == 0 && res.errors == 0);

	/* Writes still work after the scrubs, and every object reads back. */
	H_CHECK(mixsan_write_full(p, "obj.0", data[2], OBJ_SIZE) == 0);
	memcpy(data[0], data[2], OBJ_SIZE);
	for (int i = 0; i < N_OBJ; i++) {
		snprintf(name, sizeof(name), "obj.%d", i);
		H_CHECK(mixsan_read(p, name, rb, OBJ_SIZE, 0) == OBJ_SIZE &&
			memcmp(rb, data[i], OBJ_SIZE) == 0);
	}

	/* Offline: every replica identical. */
	sleep(1);
	{
		int problems = h_shutdown_check_replicas(&c, cl, p, &checked);

		fprintf(stderr, "scrub: %llu objects checked offline, %d problems\n",
			(unsigned long long)checked, problems);
		H_CHECK(problems == 0 && checked == N_OBJ);
	}
	for (int i = 0; i < N_OBJ; i++)
		free(data[i]);
	free(rb);
	h_stop(&c);
	fprintf(stderr, "scrub: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

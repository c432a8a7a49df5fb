/*
 * Pools by device class (docs/placement.md): "cache on SSD, base on HDD" as
 * the seed sets it up.  Five OSDs: osd.0 and osd.1 of class ssd (hosts s0,
 * s1), osd.2 to osd.4 of class hdd (hosts d2 to d4).  Pool "fast" (2
 * replicas, class ssd) and pool "slow" (3 replicas, class hdd), host as the
 * failure domain, 64 objects each:
 * - every PG of each pool is placed on OSDs of its class only, and every
 *   object reads back;
 * - the map lists each OSD's class;
 * - with an hdd OSD out, slow's PGs shrink to the two hdd OSDs left
 *   rather than take an ssd one, and the objects still read back;
 * - a pool of a class no OSD has is created (as in Ceph, for OSDs to
 *   come) and its PGs have no OSD yet.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "map.h"

#define N_OBJ 64

static void pool_create(mixsan_cluster_t *cl, const char *name, const char *size,
			const char *cls)
{
	const char *kv[] = {"name", name, "size", size, "pg_num", "16", "failure_domain",
			    "host", "device_class", cls, "min_size", "1"};
	char *msg = NULL;
	int r = mixsan_mon_command(cl, "pool create", kv, 6, &msg);

	if (r < 0)
		H_FATAL("pool create %s: %s (%s)", name, strerror(-r), msg ? msg : "");
	free(msg);
}

/* Every object of pool on OSDs of cls only (want members each, unless
 * fewer); every object reads back. */
static void check_pool(mixsan_cluster_t *cl, const char *pool, const char *cls, int want,
		       bool write)
{
	struct mx_map *m = mx_client_map_copy(cl);
	mixsan_pool_t *p;
	int bad = 0, short_sets = 0;

	H_CHECK(m && mixsan_pool_open(cl, pool, &p) == 0);
	for (int i = 0; m && i < N_OBJ; i++) {
		char n[32], v[48], got[48] = "";
		int32_t acting[MX_MAX_SIZE];
		uint32_t pg;
		int k;

		snprintf(n, sizeof(n), "%s.%02d", pool, i);
		snprintf(v, sizeof(v), "%s data", n);
		if (write)
			H_CHECK(mixsan_write_full(p, n, v, strlen(v)) == 0);
		H_CHECK(mixsan_read(p, n, got, sizeof(got) - 1, 0) == (int64_t)strlen(v) &&
			strcmp(got, v) == 0);
		k = mx_client_locate(cl, mixsan_pool_id(p), n, &pg, acting, MX_MAX_SIZE);
		short_sets += k != want;
		for (int j = 0; j < k; j++)
			bad += strcmp(m->osds[acting[j]].device_class, cls) != 0;
	}
	fprintf(stderr, "device_class: pool %s: %d copies off class %s, %d acting sets not of "
			"%d\n", pool, bad, cls, short_sets, want);
	H_CHECK(bad == 0 && short_sets == 0);
	mixsan_pool_close(p);
	mx_map_free(m);
}

int main(void)
{
	static const char *const cls[] = {"ssd", "ssd", "hdd", "hdd", "hdd"};
	struct h_cluster c;
	mixsan_cluster_t *cl;

	memset(&c, 0, sizeof(c));
	for (int i = 0; i < 5; i++) {
		char loc[16];

		snprintf(loc, sizeof(loc), "host=%c%d", cls[i][0] == 's' ? 's' : 'd', i);
		h_set_location(&c, i, loc);
		snprintf(c.osd_class[i], sizeof(c.osd_class[i]), "%s", cls[i]);
	}
	h_start(&c, 5);
	cl = h_connect(&c);
	{
		struct mx_map *m = mx_client_map_copy(cl);

		for (int i = 0; m && i < 5; i++)
			H_CHECK(strcmp(m->osds[i].device_class, cls[i]) == 0);
		mx_map_free(m);
	}
	pool_create(cl, "fast", "2", "ssd");
	pool_create(cl, "slow", "3", "hdd");
	check_pool(cl, "fast", "ssd", 2, true);
	check_pool(cl, "slow", "hdd", 3, true);

	/* An hdd OSD out: slow shrinks to two, never onto ssd. */
	{
		const char *kv[] = {"id", "4"};
		char *msg = NULL;

		H_CHECK(mixsan_mon_command(cl, "osd out", kv, 1, &msg) == 0);
		free(msg);
		check_pool(cl, "slow", "hdd", 2, false);
		check_pool(cl, "fast", "ssd", 2, false);
	}
	/* A class no OSD has: no OSD for any PG. */
	{
		int32_t acting[MX_MAX_SIZE];
		uint32_t pg;
		mixsan_pool_t *p;

		pool_create(cl, "nvme", "2", "nvme");
		H_CHECK(mixsan_pool_open(cl, "nvme", &p) == 0);
		H_CHECK(mx_client_locate(cl, mixsan_pool_id(p), "x", &pg, acting, MX_MAX_SIZE) ==
			0);
		mixsan_pool_close(p);
	}

	mixsan_shutdown(cl);
	h_stop(&c);
	fprintf(stderr, "device_class: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

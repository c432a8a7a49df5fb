/*
 * System test of the three-tier VDI layout (docs/vdi-cache.md) on a real
 * cluster (1 monitor, 4 OSDs: osd.0 and osd.1 of class ssd, osd.2 and osd.3
 * of class hdd): a golden volume and a data volume in pool "gold" (hdd), the
 * golden volume's protected snapshot, linked clones in pool "desk" (ssd),
 * all opened through one cluster handle with a snapshot cache, as a host's
 * export process opens its VMs' disks:
 *  - what a clone writes lands on ssd OSDs, the golden and data volumes on
 *    hdd ones;
 *  - the first clone's reads fetch the golden data; every other clone then
 *    reads it with no byte read from the OSDs;
 *  - no write leaves a stale read: after writes to the golden volume's head
 *    and to one clone, every clone and the snapshot read what they hold;
 *  - eight clones reading a new snapshot at once fetch each block once;
 *  - read-ahead works for sequential readers and stops for random ones;
 *  - reads that fail while every OSD is stopped (-ETIMEDOUT) leave nothing
 *    in the cache, and read right once the OSDs run again.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "map.h"

#define ORDER 20
#define OBJ (1u << ORDER)
#define SIZE (12u * OBJ + 12288u)
#define CLONES 8

static struct h_cluster c;
static mixsan_pool_t *gold, *desk;

static void pool_create(mixsan_cluster_t *cl, const char *name, const char *cls)
{
	const char *kv[] = {"name", name, "size", "2", "pg_num", "16", "failure_domain", "osd",
			    "device_class", cls, "min_size", "1"};
	char *msg = NULL;
	int r = mixsan_mon_command(cl, "pool create", kv, 6, &msg);

	if (r < 0)
		H_FATAL("pool create %s: %s (%s)", name, strerror(-r), msg ? msg : "");
	free(msg);
}

/* Every OSD holding byte off of v is of class cls. */
static void check_class(mixsan_cluster_t *cl, mixsan_volume_t *v, uint64_t off, const char *cls)
{
	struct mixsan_volume_location loc;
	struct mx_map *m = mx_client_map_copy(cl);

	H_CHECK(m && mixsan_volume_locate(v, off, &loc) == 0);
	H_CHECK(loc.n_acting == 2);
	for (int i = 0; m && i < loc.n_acting; i++)
		H_CHECK(!strcmp(m->osds[loc.acting[i]].device_class, cls));
	mx_map_free(m);
}

static void read_all(mixsan_volume_t *v, const uint8_t *model, uint64_t chunk, const char *what)
{
	uint8_t *buf = malloc(chunk);

	for (uint64_t off = 0; off < SIZE; off += chunk) {
		uint64_t n = off + chunk > SIZE ? SIZE - off : chunk;
		int64_t got = mixsan_volume_read(v, buf, n, off);

		if (got != (int64_t)n)
			H_FATAL("%s: read at %llu gave %lld", what, (unsigned long long)off,
				(long long)got);
		if (memcmp(buf, model + off, n))
			H_FATAL("%s: wrong data at %llu", what, (unsigned long long)off);
	}
	free(buf);
}

static struct mixsan_io_stats stats(mixsan_cluster_t *cl)
{
	struct mixsan_io_stats st;

	mixsan_io_stats(cl, &st);
	return st;
}

static mixsan_volume_t *open_vol(mixsan_pool_t *p, const char *name)
{
	mixsan_volume_t *v;

	H_CHECK(mixsan_volume_open(p, name, NULL, &v) == 0);
	return v;
}

struct reader {
	mixsan_volume_t *v;
	const uint8_t *model;
	int idx;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	char what[32];

	snprintf(what, sizeof(what), "concurrent clone %d", r->idx);
	/* Different read sizes, so the readers' read-ahead runs overlap. */
	read_all(r->v, r->model, (uint64_t)(16384 << (r->idx % 4)), what);
	return NULL;
}

int main(void)
{
	mixsan_cluster_t *admin, *host;
	mixsan_volume_t *g, *vm[CLONES], *s;
	uint8_t *snap1 = malloc(SIZE), *snap2 = malloc(SIZE), *head = malloc(SIZE), *mine;
	struct mixsan_io_stats a, b;
	struct mixsan_volume_options so = {.flags = MIXSAN_VOLUME_RDONLY, .snapshot = "base"};
	char name[32];

	for (int i = 0; i < 4; i++)
		snprintf(c.osd_class[i], sizeof(c.osd_class[i]), "%s", i < 2 ? "ssd" : "hdd");
	h_start(&c, 4);
	admin = h_connect(&c);
	pool_create(admin, "gold", "hdd");
	pool_create(admin, "desk", "ssd");
	H_CHECK(mixsan_pool_open(admin, "gold", &gold) == 0);
	H_CHECK(mixsan_volume_create(gold, "golden", SIZE, ORDER) == 0);
	g = open_vol(gold, "golden");
	h_fill(1, snap1, SIZE);
	memset(snap1 + 3 * OBJ, 0, OBJ); /* an object never written */
	H_CHECK(mixsan_volume_write(g, snap1, 3 * OBJ, 0) == 0);
	H_CHECK(mixsan_volume_write(g, snap1 + 4 * OBJ, SIZE - 4 * OBJ, 4 * OBJ) == 0);
	H_CHECK(mixsan_volume_snap_create(g, "base") == 0);
	H_CHECK(mixsan_volume_snap_protect(g, "base", 1) == 0);
	H_CHECK(mixsan_pool_open(admin, "desk", &desk) == 0);
	for (int i = 0; i < CLONES; i++) {
		snprintf(name, sizeof(name), "vm%d", i);
		H_CHECK(mixsan_volume_clone(gold, "golden", "base", desk, name) == 0);
	}
	mixsan_pool_close(desk);

	/* The host's handle, with a 64 MiB cache. */
	c.snap_cache_bytes = 64u << 20;
	host = h_connect(&c);
	H_CHECK(mixsan_pool_open(host, "desk", &desk) == 0);
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "vm%d", i);
		vm[i] = open_vol(desk, name);
	}

	/* 1. The first clone fetches; the others read from the cache. */
	a = stats(host);
	read_all(vm[0], snap1, 65536, "first clone");
	b = stats(host);
	printf("first clone: %llu bytes from the OSDs, %llu fetched into the cache, %llu ahead\n",
	       (unsigned long long)(b.read_bytes - a.read_bytes),
	       (unsigned long long)(b.cache_fetched_bytes - a.cache_fetched_bytes),
	       (unsigned long long)(b.cache_readahead_bytes - a.cache_readahead_bytes));
	H_CHECK(b.cache_fetched_bytes - a.cache_fetched_bytes == SIZE);
	H_CHECK(b.cache_readahead_bytes > a.cache_readahead_bytes);
	for (int i = 1; i < 4; i++)
		read_all(vm[i], snap1, 4096 << i, "another clone");
	a = stats(host);
	H_CHECK(a.read_bytes == b.read_bytes);
	H_CHECK(a.cache_fetched_bytes == b.cache_fetched_bytes);
	H_CHECK(a.cache_hit_bytes - b.cache_hit_bytes == 3ull * SIZE);
	printf("ok three more clones read the golden image with no byte from the OSDs\n");

	/* 2. Writes: the golden head changes, one clone writes. */
	memcpy(head, snap1, SIZE);
	h_fill(2, head + OBJ / 2, 2 * OBJ);
	H_CHECK(mixsan_volume_write(g, head + OBJ / 2, 2 * OBJ, OBJ / 2) == 0);
	mine = malloc(SIZE);
	memcpy(mine, snap1, SIZE);
	h_fill(3, mine + 5 * OBJ + 100, 70000);
	H_CHECK(mixsan_volume_write(vm[1], mine + 5 * OBJ + 100, 70000, 5 * OBJ + 100) == 0);
	read_all(vm[1], mine, 32768, "the clone that wrote");
	check_class(host, vm[1], 5 * OBJ, "ssd");
	check_class(admin, g, 0, "hdd");
	{
		mixsan_volume_t *data;
		uint8_t x[4096];

		H_CHECK(mixsan_volume_create(gold, "data", 4 * OBJ, ORDER) == 0);
		data = open_vol(gold, "data");
		h_fill(4, x, sizeof(x));
		H_CHECK(mixsan_volume_write(data, x, sizeof(x), OBJ) == 0);
		check_class(admin, data, OBJ, "hdd");
		H_CHECK(mixsan_volume_close(data) == 0);
	}
	printf("ok a clone's writes land on ssd OSDs, the golden and data volumes on hdd\n");
	for (int i = 0; i < 4; i++)
		if (i != 1)
			read_all(vm[i], snap1, 65536, "a clone after writes");
	read_all(g, head, 1u << 20, "the golden head");
	H_CHECK(mixsan_volume_open(gold, "golden", &so, &s) == 0);
	read_all(s, snap1, 8192, "the snapshot");
	H_CHECK(mixsan_volume_close(s) == 0);
	printf("ok after writes to the golden head and a clone, all read what they hold\n");

	/* 3. A second snapshot, eight clones of it reading at once. */
	H_CHECK(mixsan_volume_snap_create(g, "v2") == 0);
	H_CHECK(mixsan_volume_snap_protect(g, "v2", 1) == 0);
	memcpy(snap2, head, SIZE);
	{
		pthread_t th[CLONES];
		struct reader rd[CLONES];
		mixsan_pool_t *ad;

		H_CHECK(mixsan_pool_open(admin, "desk", &ad) == 0);
		for (int i = 0; i < CLONES; i++) {
			snprintf(name, sizeof(name), "v2vm%d", i);
			H_CHECK(mixsan_volume_clone(gold, "golden", "v2", ad, name) == 0);
		}
		mixsan_pool_close(ad);
		mixsan_volume_t *w[CLONES];

		for (int i = 0; i < CLONES; i++) {
			snprintf(name, sizeof(name), "v2vm%d", i);
			w[i] = open_vol(desk, name);
		}
		a = stats(host);
		for (int i = 0; i < CLONES; i++) {
			rd[i] = (struct reader){.v = w[i], .model = snap2, .idx = i};
			H_CHECK(pthread_create(&th[i], NULL, reader_main, &rd[i]) == 0);
		}
		for (int i = 0; i < CLONES; i++)
			pthread_join(th[i], NULL);
		b = stats(host);
		printf("eight clones at once: %llu bytes fetched, %llu waits\n",
		       (unsigned long long)(b.cache_fetched_bytes - a.cache_fetched_bytes),
		       (unsigned long long)(b.cache_waits - a.cache_waits));
		H_CHECK(b.cache_fetched_bytes - a.cache_fetched_bytes == SIZE);
		for (int i = 0; i < CLONES; i++)
			H_CHECK(mixsan_volume_close(w[i]) == 0);
		printf("ok eight clones reading at once fetched each block once\n");
	}

	/* 4. Read-ahead: random 4 KiB reads of a third snapshot stop it. */
	H_CHECK(mixsan_volume_snap_create(g, "v3") == 0);
	H_CHECK(mixsan_volume_snap_protect(g, "v3", 1) == 0);
	H_CHECK(mixsan_volume_clone(gold, "golden", "v3", desk, "v3vm") == 0);
	{
		mixsan_volume_t *r = open_vol(desk, "v3vm");
		uint64_t seed = 7;
		uint8_t buf[4096];

		a = stats(host);
		for (int i = 0; i < 64; i++) {
			uint64_t off = (h_rand(&seed) % (SIZE / 4096)) * 4096;

			H_CHECK(mixsan_volume_read(r, buf, 4096, off) == 4096);
			H_CHECK(!memcmp(buf, head + off, 4096));
		}
		b = stats(host);
		printf("64 random 4 KiB reads: %llu bytes fetched, %llu of them ahead\n",
		       (unsigned long long)(b.cache_fetched_bytes - a.cache_fetched_bytes),
		       (unsigned long long)(b.cache_readahead_bytes - a.cache_readahead_bytes));
		/* Read-ahead for the first read (and one more), not after. */
		H_CHECK(b.cache_readahead_bytes - a.cache_readahead_bytes <= 2ull * OBJ);
		H_CHECK(b.cache_fetched_bytes - a.cache_fetched_bytes <= 2ull * OBJ + 64 * 4096);
		H_CHECK(mixsan_volume_close(r) == 0);
		printf("ok read-ahead stops for random reads\n");
	}

	/* 5. Every OSD stopped: reads fail, leave nothing, then read right. */
	H_CHECK(mixsan_volume_snap_create(g, "v4") == 0);
	H_CHECK(mixsan_volume_snap_protect(g, "v4", 1) == 0);
	H_CHECK(mixsan_volume_clone(gold, "golden", "v4", desk, "v4vm") == 0);
	{
		struct mixsan_options o = {.connect_timeout_ms = 20000, .op_timeout_ms = 1500,
					   .snap_cache_bytes = 16u << 20};
		mixsan_cluster_t *impatient;
		mixsan_pool_t *p;
		mixsan_volume_t *r;
		uint8_t *buf = malloc(OBJ);

		o.readahead_bytes = 1ull << 30; /* over the bound */
		H_CHECK(mixsan_connect(c.mon_addr, &o, &impatient) == -EINVAL);
		o.readahead_bytes = 0;
		H_CHECK(mixsan_connect(c.mon_addr, &o, &impatient) == 0);
		H_CHECK(mixsan_pool_open(impatient, "desk", &p) == 0);
		H_CHECK(mixsan_volume_open(p, "v4vm", NULL, &r) == 0);
		for (int i = 0; i < c.n_osds; i++)
			h_signal_osd(&c, i, SIGSTOP);
		H_CHECK(mixsan_volume_read(r, buf, 65536, 6 * OBJ) == -ETIMEDOUT);
		a = stats(impatient);
		for (int i = 0; i < c.n_osds; i++)
			h_signal_osd(&c, i, SIGCONT);
		H_CHECK(a.cache_used == 0 && a.cache_fetched_bytes == 0);
		H_CHECK(mixsan_volume_read(r, buf, 65536, 6 * OBJ) == 65536);
		H_CHECK(!memcmp(buf, head + 6 * OBJ, 65536));
		b = stats(impatient);
		H_CHECK(b.cache_used > 0);
		H_CHECK(mixsan_volume_close(r) == 0);
		mixsan_pool_close(p);
		mixsan_shutdown(impatient);
		free(buf);
		printf("ok reads failing with every OSD stopped kept nothing, then read right\n");
	}

	for (int i = 0; i < 4; i++)
		H_CHECK(mixsan_volume_close(vm[i]) == 0);
	H_CHECK(mixsan_volume_close(g) == 0);
	mixsan_pool_close(desk);
	mixsan_pool_close(gold);
	mixsan_shutdown(host);
	mixsan_shutdown(admin);
	h_stop(&c);
	free(snap1);
	free(snap2);
	free(head);
	free(mine);
	fprintf(stderr, "vdi_cache: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

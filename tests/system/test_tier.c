/*
 * Cache tiering through the client library (docs/cache-tiering.md), on three
 * OSDs with a base pool and a cache pool in front of it:
 *   1. writeback: writes land in the cache (read raw from the cache pool:
 *      present and dirty) and not in the base; reads, stat, attributes,
 *      removal and re-creation behave as on a plain pool; the caller's own
 *      failing guard is reported as its, not the tier's;
 *   2. the tier's "_tier." attributes are hidden from getxattrs and
 *      refused (EINVAL) in callers' requests; listings show each object
 *      once, neither stubs nor removed objects;
 *   3. reads of objects only the base holds are served from it and
 *      promoted only once missed in promote_min_hits periods (hit_period_s
 *      1): a one-off scan promotes nothing; an object too large for one
 *      request is promoted in steps;
 *   4. volumes (create, write, snapshot, read) work on a tiered pool;
 *   5. readonly: writes go to the base and stub the cached copy before
 *      they are acknowledged; a second client that had the object cached
 *      never reads stale data;
 *   6. OSDs killed (SIGKILL) one after another, each restarted, while three
 *      threads write (and promote) through the tier: no acknowledged write
 *      is lost;
 *   6b. a promotion's claim left behind (its client died) is not served,
 *      and is taken over by a writer after the claim's timeout (30 s);
 *   6c. readonly under races: one client writes a counter while another
 *      reads it (and so promotes it, again and again): no read returns a
 *      value older than the last write acknowledged before it began;
 *   6d. writeback under races: two clients append to objects only the base
 *      holds at first (both promote them at once): no append is lost;
 *   7. leaving writeback for mode none: the dirty copies still answer
 *      for their objects, reads promote nothing, and the agents flush
 *      every dirty copy and evict every clean one; the monitor still
 *      refuses an unforced tier rm (it cannot see copies);
 *   7b. the agents keep a writeback cache within its targets (flushing
 *      past the dirty ratio, evicting past the full ratio); a tier
 *      drained with an OSD killed (SIGKILL) meanwhile, then removed: the
 *      base holds every last write;
 *   8. readonly, none, writeback in turn: the readonly era's copy never
 *      comes back; a request of guards alone is refused, as on a plain
 *      pool, and marks nothing dirty;
 *   9. the same mode changes among four writers on two client handles:
 *      no read of a writer's own object returns anything but its last
 *      acknowledged write (the fence and the routing again).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "map.h"
#include "msg.h"
#include "tier.h"
#include "util.h"

static void set_mode(mixsan_cluster_t *cl, const char *cache, const char *mode)
{
	const char *md[] = {"pool", cache, "mode", mode};

	h_cmd(cl, "pool tier mode", md, 2);
}

/* base and cache, cache in front of base in mode, hit periods of 1 s. */
static void make_tier(mixsan_cluster_t *cl, const char *base, const char *cache,
		      const char *mode)
{
	const char *add[] = {"base", base, "cache", cache, "force", "1"};
	const char *md[] = {"pool", cache, "mode", mode};

	h_pool_create(cl, base, 3, 8, "osd");
	h_pool_create(cl, cache, 3, 8, "osd");
	h_cmd(cl, "pool tier add", add, 3);
	h_pool_set(cl, cache, "hit_period_s", "1");
	h_pool_set(cl, cache, "promote_min_hits", "2");
	h_cmd(cl, "pool tier mode", md, 2);
}

static mixsan_pool_t *open_pool(mixsan_cluster_t *cl, const char *name)
{
	mixsan_pool_t *p;

	if (mixsan_pool_open(cl, name, &p) < 0)
		H_FATAL("pool open %s", name);
	return p;
}

static mixsan_pool_t *open_raw(mixsan_cluster_t *cl, const char *name)
{
	mixsan_pool_t *p = open_pool(cl, name), *raw;

	if (mx_client_pool_open_raw(cl, mixsan_pool_id(p), &raw) < 0)
		H_FATAL("raw pool open %s", name);
	mixsan_pool_close(p);
	return raw;
}

/* Whether the object holds exactly data (len bytes). */
static bool holds(mixsan_pool_t *p, const char *oid, const void *data, size_t len)
{
	size_t cap = len + 16;
	char *buf = malloc(cap);
	int64_t r = mixsan_read(p, oid, buf, cap, 0);
	bool ok = r == (int64_t)len && memcmp(buf, data, len) == 0;

	free(buf);
	return ok;
}

static int getx(mixsan_pool_t *p, const char *oid, const char *name, char *buf, size_t sz)
{
	int r = mixsan_getxattr(p, oid, name, buf, sz - 1);

	buf[r > 0 ? r : 0] = '\0';
	return r;
}

/* A present copy in the cache pool (raw): _tier.p is "1". */
static bool present(mixsan_pool_t *craw, const char *oid)
{
	char v[64];

	return getx(craw, oid, "_tier.p", v, sizeof(v)) == 1 && v[0] == '1';
}

static bool wait_present(mixsan_pool_t *craw, const char *oid, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 50) {
		if (present(craw, oid))
			return true;
		usleep(50000);
	}
	return false;
}

struct seen {
	int n;
	char names[64][64];
	int hidden; /* _tier. names met */
};

static int list_cb(void *arg, const char *oid, size_t len, uint64_t size)
{
	struct seen *s = arg;

	(void)size;
	if (s->n < 64)
		snprintf(s->names[s->n], sizeof(s->names[0]), "%.*s", (int)len, oid);
	s->n++;
	return 0;
}

static int count(const struct seen *s, const char *name)
{
	int k = 0;

	for (int i = 0; i < s->n && i < 64; i++)
		k += strcmp(s->names[i], name) == 0;
	return k;
}

static int xattrs_cb(void *arg, const char *name, const void *v, size_t len)
{
	struct seen *s = arg;

	(void)v;
	(void)len;
	if (strncmp(name, "_tier.", 6) == 0)
		s->hidden++;
	return list_cb(arg, name, strlen(name), 0);
}

/* 1 and 2. Writeback writes and the tier's attributes. */
static void test_writeback(mixsan_cluster_t *cl, mixsan_pool_t *p, mixsan_pool_t *braw,
			   mixsan_pool_t *craw)
{
	struct mixsan_stat st;
	struct seen s;
	char v[64];
	int failed;

	H_CHECK(mixsan_write_full(p, "wb1", "hello", 5) == 0);
	H_CHECK(holds(p, "wb1", "hello", 5));
	H_CHECK(holds(craw, "wb1", "hello", 5));
	H_CHECK(present(craw, "wb1"));
	H_CHECK(getx(craw, "wb1", "_tier.d", v, sizeof(v)) > 0); /* dirty */
	H_CHECK(mixsan_stat(braw, "wb1", &st) == -ENOENT);       /* not in the base */

	H_CHECK(mixsan_write(p, "wb1", "J", 1, 0) == 0);
	H_CHECK(mixsan_append(p, "wb1", "!!", 2) == 0);
	H_CHECK(holds(p, "wb1", "Jello!!", 7));
	H_CHECK(mixsan_truncate(p, "wb1", 4) == 0);
	H_CHECK(mixsan_stat(p, "wb1", &st) == 0 && st.size == 4);
	H_CHECK(mixsan_setxattr(p, "wb1", "color", "blue", 4) == 0);
	H_CHECK(getx(p, "wb1", "color", v, sizeof(v)) == 4 && strcmp(v, "blue") == 0);
	H_CHECK(mixsan_rmxattr(p, "wb1", "color") == 0);
	H_CHECK(getx(p, "wb1", "color", v, sizeof(v)) == -ENODATA);
	H_CHECK(mixsan_rmxattr(p, "wb1", "color") == -ENODATA);
	H_CHECK(mixsan_stat(braw, "wb1", &st) == -ENOENT);

	/* The tier's names: hidden and refused. */
	H_CHECK(mixsan_setxattr(p, "wb1", "a", "1", 1) == 0);
	memset(&s, 0, sizeof(s));
	H_CHECK(mixsan_getxattrs(p, "wb1", xattrs_cb, &s) == 0);
	H_CHECK(s.n == 1 && s.hidden == 0 && count(&s, "a") == 1);
	H_CHECK(getx(p, "wb1", "_tier.p", v, sizeof(v)) == -EINVAL);
	H_CHECK(mixsan_setxattr(p, "wb1", "_tier.p", "0", 1) == -EINVAL);
	H_CHECK(mixsan_rmxattr(p, "wb1", "_tier.d") == -EINVAL);
	H_CHECK(present(craw, "wb1"));

	/* The caller's guard fails: its index, in its own ops. */
	{
		struct mx_osd_op ops[3] = {
			{.op = MX_OP_CMPXATTR, .xname = "a", .data = "1", .data_len = 1},
			{.op = MX_OP_CMPXATTR, .xname = "a", .data = "2", .data_len = 1},
			{.op = MX_OP_SETXATTR, .xname = "b", .data = "x", .data_len = 1},
		};

		H_CHECK(mx_client_write_ops_f(p, "wb1", ops, 3, NULL, &failed) == -ECANCELED);
		H_CHECK(failed == 1);
		ops[1].data = "1";
		H_CHECK(mx_client_write_ops_f(p, "wb1", ops, 3, NULL, &failed) == 0);
		H_CHECK(getx(p, "wb1", "b", v, sizeof(v)) == 1);
		/* Guarded creation of an object absent everywhere. */
		ops[0] = (struct mx_osd_op){.op = MX_OP_CMPXATTR, .xname = "lock", .data = "",
					    .data_len = 0};
		ops[1] = (struct mx_osd_op){.op = MX_OP_SETXATTR, .xname = "lock", .data = "me",
					    .data_len = 2};
		H_CHECK(mx_client_write_ops_f(p, "wb-new", ops, 2, NULL, &failed) == 0);
		H_CHECK(mx_client_write_ops_f(p, "wb-new", ops, 2, NULL, &failed) == -ECANCELED);
		H_CHECK(failed == 0);
	}

	/* A read request of several ops, through the tier. */
	{
		struct mx_osd_op rd[3] = {{.op = MX_OP_READ, .off = 0, .len = 64},
					  {.op = MX_OP_GETXATTR, .xname = "a"},
					  {.op = MX_OP_LISTXATTRS}};
		struct mx_client_read_result res;

		H_CHECK(mx_client_read_ops(p, "wb1", rd, 3, &res) == 0);
		H_CHECK(res.n == 3 && res.ops[0].len == 4 && memcmp(res.ops[0].data, "Jell", 4) == 0);
		H_CHECK(res.ops[1].rval == 0 && res.ops[1].len == 1);
		memset(&s, 0, sizeof(s));
		H_CHECK(mx_client_xattrs_walk(res.ops[2].data, res.ops[2].len, xattrs_cb, &s) == 0);
		H_CHECK(s.hidden == 0 && s.n == 2); /* a and b */
		mx_client_read_result_free(&res);
	}

	/* Removal: gone for readers and listings, kept as a removed copy. */
	H_CHECK(mixsan_remove(p, "wb1") == 0);
	H_CHECK(mixsan_stat(p, "wb1", &st) == -ENOENT);
	H_CHECK(mixsan_read(p, "wb1", v, sizeof(v), 0) == -ENOENT);
	H_CHECK(mixsan_remove(p, "wb1") == -ENOENT);
	H_CHECK(mixsan_rmxattr(p, "wb1", "a") == -ENOENT);
	H_CHECK(mixsan_stat(craw, "wb1", &st) == 0);
	memset(&s, 0, sizeof(s));
	H_CHECK(mixsan_list(p, list_cb, &s) == 0);
	H_CHECK(count(&s, "wb1") == 0 && count(&s, "wb-new") == 1);
	/* And back. */
	H_CHECK(mixsan_write_full(p, "wb1", "again", 5) == 0);
	H_CHECK(holds(p, "wb1", "again", 5));
	memset(&s, 0, sizeof(s));
	H_CHECK(mixsan_getxattrs(p, "wb1", xattrs_cb, &s) == 0 && s.n == 0);
	memset(&s, 0, sizeof(s));
	H_CHECK(mixsan_list(p, list_cb, &s) == 0);
	H_CHECK(count(&s, "wb1") == 1);
	(void)cl;
}

/* 3. Promotion by recency and frequency. */
static void test_promotion(mixsan_pool_t *p, mixsan_pool_t *braw, mixsan_pool_t *craw)
{
	char oid[32], data[64], buf[64];
	struct seen s;
	int promoted = 0;

	/* Objects only the base holds (as after a flush and an eviction). */
	for (int i = 0; i < 10; i++) {
		snprintf(oid, sizeof(oid), "cold%d", i);
		snprintf(data, sizeof(data), "cold data %d", i);
		H_CHECK(mixsan_write_full(braw, oid, data, strlen(data)) == 0);
	}
	/* A one-off scan: served, nothing promoted. */
	for (int i = 0; i < 10; i++) {
		snprintf(oid, sizeof(oid), "cold%d", i);
		snprintf(data, sizeof(data), "cold data %d", i);
		H_CHECK(holds(p, oid, data, strlen(data)));
	}
	memset(&s, 0, sizeof(s));
	H_CHECK(mixsan_list(p, list_cb, &s) == 0);
	for (int i = 0; i < 10; i++) {
		snprintf(oid, sizeof(oid), "cold%d", i);
		H_CHECK(count(&s, oid) == 1);
	}
	usleep(300000); /* any promotion would be done by now */
	for (int i = 0; i < 10; i++) {
		snprintf(oid, sizeof(oid), "cold%d", i);
		promoted += present(craw, oid);
	}
	fprintf(stderr, "tier: after a scan, %d of 10 promoted\n", promoted);
	H_CHECK(promoted == 0);

	/* cold0 read again in another period: promoted. */
	sleep(1);
	H_CHECK(holds(p, "cold0", "cold data 0", 11));
	H_CHECK(wait_present(craw, "cold0", 5000));
	H_CHECK(holds(craw, "cold0", "cold data 0", 11));
	H_CHECK(holds(p, "cold0", "cold data 0", 11));
	for (int i = 1; i < 10; i++) {
		snprintf(oid, sizeof(oid), "cold%d", i);
		H_CHECK(!present(craw, oid));
	}
	memset(&s, 0, sizeof(s));
	H_CHECK(mixsan_list(p, list_cb, &s) == 0);
	H_CHECK(count(&s, "cold0") == 1);

	/* A write always promotes; a large object with many attributes goes
	 * in steps, and arrives whole. */
	{
		size_t big = (6u << 20) + 12345;
		uint8_t *d = malloc(big), *back = malloc(big);
		char name[32], val[32];

		h_fill(7, d, big);
		H_CHECK(mixsan_write_full(braw, "big", d, big) == 0);
		for (int i = 0; i < 20; i++) {
			snprintf(name, sizeof(name), "attr%d", i);
			snprintf(val, sizeof(val), "value %d", i);
			H_CHECK(mixsan_setxattr(braw, "big", name, val, strlen(val)) == 0);
		}
		H_CHECK(mixsan_setxattr(p, "big", "attr20", "new", 3) == 0);
		H_CHECK(present(craw, "big"));
		H_CHECK(mixsan_read(craw, "big", back, big, 0) == (int64_t)big);
		H_CHECK(memcmp(back, d, big) == 0);
		for (int i = 0; i < 20; i++) {
			snprintf(name, sizeof(name), "attr%d", i);
			snprintf(val, sizeof(val), "value %d", i);
			H_CHECK(getx(craw, "big", name, buf, sizeof(buf)) == (int)strlen(val) &&
				strcmp(buf, val) == 0);
		}
		memset(&s, 0, sizeof(s));
		H_CHECK(mixsan_getxattrs(p, "big", xattrs_cb, &s) == 0);
		H_CHECK(s.n == 21 && s.hidden == 0);
		H_CHECK(mixsan_read(p, "big", back, big, 0) == (int64_t)big);
		H_CHECK(memcmp(back, d, big) == 0);
		free(d);
		free(back);
	}
}

/* 4. Volumes on a tiered pool. */
static void test_volumes(mixsan_pool_t *p)
{
	const size_t sz = 4u << 20, blk = 64u << 10;
	uint8_t *a = malloc(blk), *b = malloc(blk), *back = malloc(blk);
	struct mixsan_volume_options so = {.flags = MIXSAN_VOLUME_RDONLY, .snapshot = "s1"};
	mixsan_volume_t *v, *sv;

	h_fill(1, a, blk);
	h_fill(2, b, blk);
	H_CHECK(mixsan_volume_create(p, "vol", 4 * sz, 22) == 0);
	H_CHECK(mixsan_volume_open(p, "vol", NULL, &v) == 0);
	H_CHECK(mixsan_volume_write(v, a, blk, 0) == 0);
	H_CHECK(mixsan_volume_write(v, a, blk, sz + 4096) == 0);
	H_CHECK(mixsan_volume_read(v, back, blk, sz + 4096) == (int64_t)blk);
	H_CHECK(memcmp(back, a, blk) == 0);
	H_CHECK(mixsan_volume_snap_create(v, "s1") == 0);
	H_CHECK(mixsan_volume_write(v, b, blk, 0) == 0);
	H_CHECK(mixsan_volume_read(v, back, blk, 0) == (int64_t)blk);
	H_CHECK(memcmp(back, b, blk) == 0);
	H_CHECK(mixsan_volume_close(v) == 0);
	H_CHECK(mixsan_volume_open(p, "vol", &so, &sv) == 0);
	H_CHECK(mixsan_volume_read(sv, back, blk, 0) == (int64_t)blk);
	H_CHECK(memcmp(back, a, blk) == 0);
	H_CHECK(mixsan_volume_close(sv) == 0);
	H_CHECK(mixsan_volume_open(p, "vol", NULL, &v) == 0);
	H_CHECK(mixsan_volume_read(v, back, blk, 0) == (int64_t)blk);
	H_CHECK(memcmp(back, b, blk) == 0);
	H_CHECK(mixsan_volume_close(v) == 0);
	free(a);
	free(b);
	free(back);
}

/* 5. Readonly: write through one client, read through another. */
static void test_readonly(struct h_cluster *c, mixsan_cluster_t *cl)
{
	mixsan_cluster_t *cl2 = h_connect(c);
	mixsan_pool_t *p1, *p2, *braw, *craw;
	char data[64], v[64];
	struct mixsan_stat st;

	make_tier(cl, "rbase", "rhot", "readonly");
	H_CHECK(mixsan_wait_for_epoch(cl2, mixsan_map_epoch(cl), 10000) == 0);
	p1 = open_pool(cl, "rbase");
	p2 = open_pool(cl2, "rbase");
	braw = open_raw(cl, "rbase");
	craw = open_raw(cl, "rhot");

	H_CHECK(mixsan_write_full(p1, "ro", "version 0", 9) == 0);
	H_CHECK(holds(braw, "ro", "version 0", 9)); /* in the base */
	H_CHECK(!present(craw, "ro"));
	H_CHECK(getx(craw, "ro", "_tier.src", v, sizeof(v)) == 16); /* a stub */
	{
		struct seen s;

		memset(&s, 0, sizeof(s));
		H_CHECK(mixsan_list(p2, list_cb, &s) == 0);
		H_CHECK(s.n == 1 && count(&s, "ro") == 1);
	}
	for (int round = 1; round <= 3; round++) {
		/* Client 2 gets it cached... */
		snprintf(data, sizeof(data), "version %d", round - 1);
		H_CHECK(holds(p2, "ro", data, strlen(data)));
		sleep(1);
		H_CHECK(holds(p2, "ro", data, strlen(data)));
		H_CHECK(wait_present(craw, "ro", 5000));
		H_CHECK(holds(craw, "ro", data, strlen(data)));
		/* ...client 1 writes: stubbed before the acknowledgement. */
		snprintf(data, sizeof(data), "version %d", round);
		H_CHECK(mixsan_write_full(p1, "ro", data, strlen(data)) == 0);
		H_CHECK(!present(craw, "ro"));
		H_CHECK(holds(p2, "ro", data, strlen(data)));
		H_CHECK(holds(braw, "ro", data, strlen(data)));
	}
	H_CHECK(mixsan_setxattr(p1, "ro", "_tier.src", "x", 1) == -EINVAL);
	H_CHECK(mixsan_remove(p1, "ro") == 0);
	H_CHECK(mixsan_stat(p2, "ro", &st) == -ENOENT);
	H_CHECK(mixsan_stat(braw, "ro", &st) == -ENOENT);
	mixsan_pool_close(p1);
	mixsan_pool_close(p2);
	mixsan_pool_close(braw);
	mixsan_pool_close(craw);
	mixsan_shutdown(cl2);
}

/* 6. OSDs killed among writeback writes: no acknowledged write lost. */
enum { KW_THREADS = 3, KW_OBJS = 4 };

struct kwriter {
	mixsan_pool_t *p;
	int id;
	volatile bool *stop;
	/* Per object: the last acknowledged content, and a later write whose
	 * outcome is unknown (it failed), if any. */
	char acked[KW_OBJS][64], maybe[KW_OBJS][64];
	int writes, failures;
};

static void *kwriter(void *arg)
{
	struct kwriter *k = arg;
	char oid[16], data[64];

	for (int w = 0; !__atomic_load_n(k->stop, __ATOMIC_SEQ_CST); w++) {
		int o = w % KW_OBJS;

		snprintf(oid, sizeof(oid), "k%d.%d", k->id, o);
		snprintf(data, sizeof(data), "write %d of %s", w, oid);
		k->writes++;
		if (mixsan_write_full(k->p, oid, data, strlen(data)) == 0) {
			memcpy(k->acked[o], data, sizeof(data));
			k->maybe[o][0] = '\0';
		} else {
			k->failures++;
			memcpy(k->maybe[o], data, sizeof(data));
		}
	}
	return NULL;
}

static void test_kill(struct h_cluster *c, mixsan_cluster_t *cl, mixsan_pool_t *p,
		      mixsan_pool_t *braw)
{
	struct kwriter k[KW_THREADS];
	pthread_t t[KW_THREADS];
	volatile bool stop = false;
	char oid[32], buf[96];

	memset(k, 0, sizeof(k));
	for (int i = 0; i < KW_THREADS; i++) {
		/* Half the objects start in the base only: their first write
		 * promotes them, in the middle of the kills. */
		for (int o = 0; o < KW_OBJS; o += 2) {
			snprintf(oid, sizeof(oid), "k%d.%d", i, o);
			snprintf(k[i].acked[o], sizeof(k[i].acked[o]), "base %s", oid);
			H_CHECK(mixsan_write_full(braw, oid, k[i].acked[o],
						  strlen(k[i].acked[o])) == 0);
		}
		k[i].p = p;
		k[i].id = i;
		k[i].stop = &stop;
		pthread_create(&t[i], NULL, kwriter, &k[i]);
	}
	for (int victim = 1; victim <= 2; victim++) {
		usleep(700000);
		fprintf(stderr, "tier: kill -9 osd.%d among writes\n", victim);
		h_signal_osd(c, victim, SIGKILL);
		sleep(2);
		h_start_osd(c, victim);
		H_CHECK(h_wait_up(c, cl, 3, 60) == 0);
	}
	usleep(700000);
	__atomic_store_n(&stop, true, __ATOMIC_SEQ_CST);
	for (int i = 0; i < KW_THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < KW_THREADS; i++) {
		fprintf(stderr, "tier: writer %d: %d writes, %d failed\n", i, k[i].writes,
			k[i].failures);
		for (int o = 0; o < KW_OBJS; o++) {
			int64_t r;

			snprintf(oid, sizeof(oid), "k%d.%d", i, o);
			r = mixsan_read(p, oid, buf, sizeof(buf) - 1, 0);
			buf[r > 0 ? r : 0] = '\0';
			if (!(r > 0 && (strcmp(buf, k[i].acked[o]) == 0 ||
					strcmp(buf, k[i].maybe[o]) == 0))) {
				fprintf(stderr, "tier: %s holds '%s', last acknowledged '%s'\n",
					oid, buf, k[i].acked[o]);
				H_CHECK(false);
			}
		}
	}
}

/* 6b. A claim whose owner is gone. */
static void test_claim_takeover(mixsan_pool_t *p, mixsan_pool_t *braw, mixsan_pool_t *craw)
{
	static const uint8_t src0[16] = {0};
	uint64_t t0;
	char v[64];

	H_CHECK(mixsan_write_full(braw, "claimed", "base data", 9) == 0);
	H_CHECK(mixsan_write_full(craw, "claimed", "half", 4) == 0);
	H_CHECK(mixsan_setxattr(craw, "claimed", "_tier.src", src0, 16) == 0);
	H_CHECK(mixsan_setxattr(craw, "claimed", "_tier.p", "promoting:gone", 14) == 0);
	H_CHECK(holds(p, "claimed", "base data", 9)); /* a claimed copy is not served */
	t0 = mx_now_ns();
	H_CHECK(mixsan_append(p, "claimed", "+", 1) == 0);
	fprintf(stderr, "tier: a dead claim taken over after %.1f s\n",
		(double)(mx_now_ns() - t0) / 1e9);
	H_CHECK(mx_now_ns() - t0 >= 25ull * 1000000000ull);
	H_CHECK(holds(p, "claimed", "base data+", 10));
	H_CHECK(present(craw, "claimed"));
	H_CHECK(getx(craw, "claimed", "_tier.d", v, sizeof(v)) > 0);
}

struct race {
	mixsan_pool_t *w, *r; /* the writer's and the reader's handles */
	volatile int acked;   /* the last value acknowledged */
	volatile bool done;
	int reads, stale, errors;
	int werr[4], rerr[4]; /* the first failures' codes */
	int nwerr, nrerr;
};

static void *race_writer(void *arg)
{
	struct race *rc = arg;
	char buf[32];

	for (int i = 1; i <= 400; i++) {
		int r;

		snprintf(buf, sizeof(buf), "%d", i);
		r = mixsan_write_full(rc->w, "race", buf, strlen(buf));
		if (r == 0) {
			__atomic_store_n(&rc->acked, i, __ATOMIC_SEQ_CST);
		} else {
			__atomic_add_fetch(&rc->errors, 1, __ATOMIC_SEQ_CST);
			if (rc->nwerr < 4)
				rc->werr[rc->nwerr++] = r;
		}
		if (i % 50 == 0)
			usleep(400000); /* let the reader get it promoted */
	}
	__atomic_store_n(&rc->done, true, __ATOMIC_SEQ_CST);
	return NULL;
}

/* 6c. Readonly: stale reads under races. */
static void test_readonly_race(struct h_cluster *c, mixsan_cluster_t *cl)
{
	mixsan_cluster_t *cl2 = h_connect(c);
	mixsan_pool_t *craw = open_raw(cl, "rhot");
	struct race rc = {0};
	int cached = 0;
	pthread_t t;
	char buf[32];

	H_CHECK(mixsan_wait_for_epoch(cl2, mixsan_map_epoch(cl), 10000) == 0);
	rc.w = open_pool(cl, "rbase");
	rc.r = open_pool(cl2, "rbase");
	H_CHECK(mixsan_write_full(rc.w, "race", "0", 1) == 0);
	pthread_create(&t, NULL, race_writer, &rc);
	while (!__atomic_load_n(&rc.done, __ATOMIC_SEQ_CST)) {
		int before = __atomic_load_n(&rc.acked, __ATOMIC_SEQ_CST);
		int64_t r = mixsan_read(rc.r, "race", buf, sizeof(buf) - 1, 0);

		if (++rc.reads % 100 == 0)
			cached += present(craw, "race");
		if (r <= 0) {
			__atomic_add_fetch(&rc.errors, 1, __ATOMIC_SEQ_CST);
			if (rc.nrerr < 4)
				rc.rerr[rc.nrerr++] = (int)r;
			continue;
		}
		buf[r] = '\0';
		if (atoi(buf) < before) {
			if (rc.stale++ < 5)
				fprintf(stderr, "tier: stale read %s after %d acknowledged\n", buf,
					before);
		}
	}
	pthread_join(t, NULL);
	fprintf(stderr, "tier: readonly race: %d reads, %d stale, %d errors, cached at %d of "
		"%d samples\n", rc.reads, rc.stale, rc.errors, cached, rc.reads / 100);
	for (int i = 0; i < rc.nwerr; i++)
		fprintf(stderr, "tier: readonly race: a write failed: %s\n", strerror(-rc.werr[i]));
	for (int i = 0; i < rc.nrerr; i++)
		fprintf(stderr, "tier: readonly race: a read returned %d (%s)\n", rc.rerr[i],
			rc.rerr[i] < 0 ? strerror(-rc.rerr[i]) : "no data");
	H_CHECK(rc.stale == 0 && rc.errors == 0);
	H_CHECK(cached > 0); /* promoted in the middle of the writes */
	mixsan_pool_close(craw);
	H_CHECK(holds(rc.r, "race", "400", 3));
	mixsan_pool_close(rc.w);
	mixsan_pool_close(rc.r);
	mixsan_shutdown(cl2);
}

struct appender {
	mixsan_pool_t *p;
	char c;
	int errors;
};

static void *appender(void *arg)
{
	struct appender *a = arg;
	char oid[16];

	for (int i = 0; i < 150; i++) {
		snprintf(oid, sizeof(oid), "wrace%d", i % 3);
		if (mixsan_append(a->p, oid, &a->c, 1) < 0)
			a->errors++;
	}
	return NULL;
}

/* 6d. Writeback: concurrent appends from two clients. */
static void test_writeback_race(struct h_cluster *c, mixsan_cluster_t *cl,
				mixsan_pool_t *braw)
{
	mixsan_cluster_t *cl2 = h_connect(c);
	struct appender a = {.c = 'a'}, b = {.c = 'b'};
	pthread_t ta, tb;
	char oid[16], buf[512];

	H_CHECK(mixsan_wait_for_epoch(cl2, mixsan_map_epoch(cl), 10000) == 0);
	for (int k = 0; k < 3; k++) {
		snprintf(oid, sizeof(oid), "wrace%d", k);
		H_CHECK(mixsan_write_full(braw, oid, "base:", 5) == 0);
	}
	a.p = open_pool(cl, "base");
	b.p = open_pool(cl2, "base");
	pthread_create(&ta, NULL, appender, &a);
	pthread_create(&tb, NULL, appender, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	H_CHECK(a.errors == 0 && b.errors == 0);
	for (int k = 0; k < 3; k++) {
		int64_t r;
		int na = 0, nb = 0;

		snprintf(oid, sizeof(oid), "wrace%d", k);
		r = mixsan_read(a.p, oid, buf, sizeof(buf), 0);
		H_CHECK(r == 5 + 100);
		H_CHECK(r >= 5 && memcmp(buf, "base:", 5) == 0);
		for (int64_t i = 5; i < r; i++) {
			na += buf[i] == 'a';
			nb += buf[i] == 'b';
		}
		H_CHECK(na == 50 && nb == 50);
	}
	mixsan_pool_close(a.p);
	mixsan_pool_close(b.p);
	mixsan_shutdown(cl2);
}

/* 7. Mode none after writeback, dirty copies left. */
/* Wait (at most timeout_s) until cache holds no copy; the census then. */
static bool wait_drained(mixsan_cluster_t *cl, mixsan_pool_t *craw, int timeout_s,
			 struct mx_tier_census *cs)
{
	for (int t = 0; t < timeout_s * 5; t++) {
		if (mx_tier_census(cl, mixsan_pool_id(craw), cs) == 0 && cs->present == 0)
			return true;
		usleep(200000);
	}
	return false;
}

static void test_drain(mixsan_cluster_t *cl, mixsan_pool_t *p, mixsan_pool_t *braw,
		       mixsan_pool_t *craw)
{
	const char *md[] = {"pool", "hot", "mode", "none"};
	const char *rm[] = {"base", "base", "cache", "hot"};
	struct mx_tier_census cs;
	char *msg = NULL;

	H_CHECK(mx_tier_census(cl, mixsan_pool_id(craw), &cs) == 0);
	fprintf(stderr, "tier: before draining: %llu objects, %llu copies, %llu dirty\n",
		(unsigned long long)cs.objects, (unsigned long long)cs.present,
		(unsigned long long)cs.dirty);
	H_CHECK(cs.dirty > 0);
	h_cmd(cl, "pool tier mode", md, 2);
	H_CHECK(holds(p, "wb1", "again", 5));
	H_CHECK(mixsan_write_full(p, "wb1", "drain", 5) == 0);
	H_CHECK(holds(p, "wb1", "drain", 5));
	H_CHECK(holds(p, "cold5", "cold data 5", 11));
	/* The agents flush every dirty copy and evict every clean one. */
	H_CHECK(wait_drained(cl, craw, 60, &cs));
	H_CHECK(cs.dirty == 0);
	H_CHECK(holds(braw, "wb1", "drain", 5));
	H_CHECK(holds(p, "wb1", "drain", 5));
	/* The large object with many attributes went in steps, whole. */
	{
		size_t big = (6u << 20) + 12345;
		uint8_t *d = malloc(big);
		char v[32];

		h_fill(7, d, big);
		H_CHECK(holds(braw, "big", d, big));
		H_CHECK(getx(braw, "big", "attr20", v, sizeof(v)) == 3 && strcmp(v, "new") == 0);
		H_CHECK(getx(braw, "big", "attr5", v, sizeof(v)) == 7 &&
			strcmp(v, "value 5") == 0);
		H_CHECK(getx(braw, "big", "_tier.fl", v, sizeof(v)) == -ENODATA);
		free(d);
	}
	H_CHECK(holds(p, "cold5", "cold data 5", 11));
	H_CHECK(!present(craw, "cold5"));
	/* The monitor cannot see copies: unforced, it still refuses (the
	 * command line's tier rm drains, then forces). */
	H_CHECK(mixsan_mon_command(cl, "pool tier rm", rm, 2, &msg) == -EBUSY);
	H_CHECK(msg && strstr(msg, "dirty") != NULL);
	free(msg);
}

/* 7b. The agent by the targets, then a writeback tier removed after it
 * drained, with an OSD killed (SIGKILL) while the agents work: every
 * object read straight from the base afterwards holds its last write. */
#define AG_OBJS 120

static void test_agent(struct h_cluster *c, mixsan_cluster_t *cl)
{
	const char *add[] = {"base", "base5", "cache", "hot5", "force", "1"};
	const char *md[] = {"pool", "hot5", "mode", "none"};
	const char *rm[] = {"base", "base5", "cache", "hot5", "force", "1"};
	mixsan_pool_t *p, *braw, *craw;
	struct mx_tier_census cs = {0};
	char oid[16], data[64];
	bool settled = false;

	h_pool_create(cl, "base5", 3, 8, "osd");
	h_pool_create(cl, "hot5", 3, 8, "osd");
	h_cmd(cl, "pool tier add", add, 3);
	/* Ten copies per PG at most: flushes past 4 dirty, evicts past 8. */
	h_pool_set(cl, "hot5", "target_max_objects", "80");
	set_mode(cl, "hot5", "writeback");
	p = open_pool(cl, "base5");
	braw = open_raw(cl, "base5");
	craw = open_raw(cl, "hot5");
	for (int i = 0; i < AG_OBJS; i++) {
		snprintf(oid, sizeof(oid), "ag%d", i);
		snprintf(data, sizeof(data), "first write of %s", oid);
		H_CHECK(mixsan_write_full(p, oid, data, strlen(data)) == 0);
		if (i % 10 == 0) {
			/* Attributes go with the data, each by its name. */
			H_CHECK(mixsan_setxattr(p, oid, "color", oid, strlen(oid)) == 0);
			H_CHECK(mixsan_setxattr(p, oid, "shape", "round", 5) == 0);
		}
	}
	for (int t = 0; t < 150 && !settled; t++) {
		usleep(200000);
		settled = mx_tier_census(cl, mixsan_pool_id(craw), &cs) == 0 &&
			  cs.present <= 64 && cs.dirty <= 32;
	}
	fprintf(stderr, "tier: after %d writes, the agents leave %llu copies, %llu dirty\n",
		AG_OBJS, (unsigned long long)cs.present, (unsigned long long)cs.dirty);
	H_CHECK(settled);
	H_CHECK(cs.present > 0);
	/* What was evicted is in the base, and reads come back right. */
	for (int i = 0; i < AG_OBJS; i++) {
		snprintf(oid, sizeof(oid), "ag%d", i);
		snprintf(data, sizeof(data), "first write of %s", oid);
		H_CHECK(holds(p, oid, data, strlen(data)));
		if (!present(craw, oid))
			H_CHECK(holds(braw, oid, data, strlen(data)));
	}
	/* Second writes, then drain with an OSD killed in the middle. */
	for (int i = 0; i < AG_OBJS; i++) {
		snprintf(oid, sizeof(oid), "ag%d", i);
		snprintf(data, sizeof(data), "second write of %s", oid);
		H_CHECK(mixsan_write_full(p, oid, data, strlen(data)) == 0);
	}
	h_cmd(cl, "pool tier mode", md, 2);
	if (!c->external) {
		usleep(300000);
		fprintf(stderr, "tier: kill -9 osd.0 while the agents drain\n");
		h_signal_osd(c, 0, SIGKILL);
		sleep(1);
		h_start_osd(c, 0);
		H_CHECK(h_wait_up(c, cl, 3, 60) == 0);
	}
	H_CHECK(wait_drained(cl, craw, 90, &cs));
	h_cmd(cl, "pool tier rm", rm, 3);
	for (int i = 0; i < AG_OBJS; i++) {
		snprintf(oid, sizeof(oid), "ag%d", i);
		snprintf(data, sizeof(data), "second write of %s", oid);
		H_CHECK(holds(p, oid, data, strlen(data)));
		H_CHECK(holds(braw, oid, data, strlen(data)));
		if (i % 10 == 0) {
			H_CHECK(getx(braw, oid, "color", data, sizeof(data)) == (int)strlen(oid) &&
				strcmp(data, oid) == 0);
			H_CHECK(getx(braw, oid, "shape", data, sizeof(data)) == 5 &&
				strcmp(data, "round") == 0);
		}
	}
	mixsan_pool_close(p);
	mixsan_pool_close(braw);
	mixsan_pool_close(craw);
}

/* 8. Step by step: a readonly copy, then mode none,
 * a write, then writeback and a write at an offset: the copy of the
 * readonly era never comes back. */
static void test_mode_steps(mixsan_cluster_t *cl)
{
	const char *add[] = {"base", "base3", "cache", "hot3", "force", "1"};
	mixsan_pool_t *p, *craw;

	h_pool_create(cl, "base3", 3, 8, "osd");
	h_pool_create(cl, "hot3", 3, 8, "osd");
	h_cmd(cl, "pool tier add", add, 3);
	h_pool_set(cl, "hot3", "promote_min_hits", "1");
	set_mode(cl, "hot3", "readonly");
	p = open_pool(cl, "base3");
	craw = open_raw(cl, "hot3");
	H_CHECK(mixsan_write_full(p, "obj", "old", 3) == 0);
	H_CHECK(holds(p, "obj", "old", 3));
	H_CHECK(wait_present(craw, "obj", 5000));
	set_mode(cl, "hot3", "none");
	H_CHECK(mixsan_write_full(p, "obj", "NEW", 3) == 0);
	H_CHECK(holds(p, "obj", "NEW", 3));
	/* Back to readonly is refused while draining. */
	{
		const char *md[] = {"pool", "hot3", "mode", "readonly"};
		char *msg = NULL;

		H_CHECK(mixsan_mon_command(cl, "pool tier mode", md, 2, &msg) == -EBUSY);
		free(msg);
	}
	set_mode(cl, "hot3", "writeback");
	H_CHECK(holds(p, "obj", "NEW", 3));
	H_CHECK(mixsan_write(p, "obj", "x", 1, 2) == 0);
	H_CHECK(holds(p, "obj", "NEx", 3));
	/* A request of guards alone is refused as on a plain pool, and leaves
	 * a clean copy clean. */
	{
		struct mx_osd_op g = {.op = MX_OP_CMPXATTR, .xname = "zz", .data = "", .data_len = 0};
		mixsan_pool_t *braw = open_raw(cl, "base3");
		char v[64];

		H_CHECK(mixsan_write_full(braw, "gclean", "c", 1) == 0);
		H_CHECK(holds(p, "gclean", "c", 1));
		H_CHECK(wait_present(craw, "gclean", 5000));
		H_CHECK(getx(craw, "gclean", "_tier.d", v, sizeof(v)) == -ENODATA);
		H_CHECK(mx_client_write_ops(braw, "gclean", &g, 1, NULL) == -EINVAL);
		H_CHECK(mx_client_write_ops(p, "gclean", &g, 1, NULL) == -EINVAL);
		H_CHECK(getx(craw, "gclean", "_tier.d", v, sizeof(v)) == -ENODATA);
		mixsan_pool_close(braw);
	}
	mixsan_pool_close(p);
	mixsan_pool_close(craw);
}

/* 9. Mode changes among writers on two client handles (each learns of a
 * change when its map comes): readonly, then writeback, none (draining),
 * writeback, none, writeback, none.  Every read a writer makes of its own
 * object returns its last acknowledged write (or the one that failed
 * after it, whose outcome is unknown). */
#define MC_THREADS 4
#define MC_OBJS 6

struct mcwriter {
	mixsan_pool_t *p;
	int id;
	volatile bool *stop;
	int writes, failures, stale;
	char acked[MC_OBJS][48], maybe[MC_OBJS][48];
};

static void *mcwriter(void *arg)
{
	struct mcwriter *k = arg;
	char oid[16], data[48], buf[64];

	for (int w = 0; !__atomic_load_n(k->stop, __ATOMIC_SEQ_CST) && w < 200000; w++) {
		int o = w % MC_OBJS;
		int64_t r;

		snprintf(oid, sizeof(oid), "m%d.%d", k->id, o);
		snprintf(data, sizeof(data), "write %d of %s", w, oid);
		k->writes++;
		if (w % 3 == 0 ? mixsan_write_full(k->p, oid, data, strlen(data)) == 0
			       : mixsan_write(k->p, oid, data, strlen(data), 0) == 0 &&
					 mixsan_truncate(k->p, oid, strlen(data)) == 0) {
			memcpy(k->acked[o], data, sizeof(data));
			k->maybe[o][0] = '\0';
		} else {
			k->failures++;
			memcpy(k->maybe[o], data, sizeof(data));
			continue;
		}
		r = mixsan_read(k->p, oid, buf, sizeof(buf) - 1, 0);
		buf[r > 0 ? r : 0] = '\0';
		if (r < 0 || strcmp(buf, k->acked[o]) != 0) {
			fprintf(stderr, "tier: %s read '%s' (%lld), last acknowledged '%s'\n", oid,
				buf, (long long)r, k->acked[o]);
			k->stale++;
		}
	}
	return NULL;
}

static void test_mode_changes(struct h_cluster *c, mixsan_cluster_t *cl)
{
	static const char *const modes[] = {"writeback", "none", "writeback", "none",
					    "writeback", "none"};
	const char *add[] = {"base", "base4", "cache", "hot4", "force", "1"};
	mixsan_cluster_t *cl2 = h_connect(c);
	mixsan_pool_t *p1, *p2;
	struct mcwriter k[MC_THREADS];
	pthread_t t[MC_THREADS];
	volatile bool stop = false;
	int writes = 0, failures = 0;

	h_pool_create(cl, "base4", 3, 8, "osd");
	h_pool_create(cl, "hot4", 3, 8, "osd");
	h_cmd(cl, "pool tier add", add, 3);
	h_pool_set(cl, "hot4", "promote_min_hits", "1");
	set_mode(cl, "hot4", "readonly");
	p1 = open_pool(cl, "base4");
	p2 = open_pool(cl2, "base4");
	memset(k, 0, sizeof(k));
	for (int i = 0; i < MC_THREADS; i++) {
		k[i].p = i % 2 ? p2 : p1;
		k[i].id = i;
		k[i].stop = &stop;
		pthread_create(&t[i], NULL, mcwriter, &k[i]);
	}
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		usleep(400000 + 200000 * (unsigned)(m % 3));
		set_mode(cl, "hot4", modes[m]);
	}
	usleep(500000);
	__atomic_store_n(&stop, true, __ATOMIC_SEQ_CST);
	for (int i = 0; i < MC_THREADS; i++) {
		pthread_join(t[i], NULL);
		writes += k[i].writes;
		failures += k[i].failures;
		H_CHECK(k[i].stale == 0);
	}
	fprintf(stderr, "tier: %d writes among %zu mode changes, %d failed\n", writes,
		sizeof(modes) / sizeof(modes[0]) + 1, failures);
	H_CHECK(writes > 100);
	/* Every object as last acknowledged, through either handle. */
	for (int i = 0; i < MC_THREADS; i++)
		for (int o = 0; o < MC_OBJS; o++) {
			char oid[16], buf[64];
			int64_t r;

			snprintf(oid, sizeof(oid), "m%d.%d", i, o);
			r = mixsan_read(i % 2 ? p1 : p2, oid, buf, sizeof(buf) - 1, 0);
			buf[r > 0 ? r : 0] = '\0';
			if (!(r > 0 && (strcmp(buf, k[i].acked[o]) == 0 ||
					strcmp(buf, k[i].maybe[o]) == 0))) {
				fprintf(stderr, "tier: %s holds '%s', last acknowledged '%s'\n",
					oid, buf, k[i].acked[o]);
				H_CHECK(false);
			}
		}
	mixsan_pool_close(p1);
	mixsan_pool_close(p2);
	mixsan_shutdown(cl2);
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p, *braw, *craw;

	memset(&c, 0, sizeof(c));
	snprintf(c.mon_args, sizeof(c.mon_args),
		 "--osd-failure-detection --heartbeat-grace 2000 --beacon-grace 6000");
	snprintf(c.osd_args, sizeof(c.osd_args),
		 "--heartbeat-interval 250 --heartbeat-grace 2000 --agent-interval 200");
	h_start(&c, 3);
	cl = h_connect(&c);
	make_tier(cl, "base", "hot", "writeback");
	p = open_pool(cl, "base");
	braw = open_raw(cl, "base");
	craw = open_raw(cl, "hot");

	test_writeback(cl, p, braw, craw);
	test_promotion(p, braw, craw);
	test_volumes(p);
	test_readonly(&c, cl);
	test_readonly_race(&c, cl);
	test_claim_takeover(p, braw, craw);
	test_writeback_race(&c, cl, braw);
	if (c.external)
		fprintf(stderr, "tier: an external cluster: no kill\n");
	else
		test_kill(&c, cl, p, braw);
	test_drain(cl, p, braw, craw);
	test_agent(&c, cl);
	test_mode_steps(cl);
	test_mode_changes(&c, cl);

	/* Every replica of both pools alike (OSDs stopped). */
	{
		struct mx_map *m = mx_client_map_copy(cl);
		int32_t base_id = (int32_t)mixsan_pool_id(p);
		uint64_t objects = 0, base_objects = 0;
		int problems;

		H_CHECK(m != NULL);
		mixsan_pool_close(p);
		mixsan_pool_close(braw);
		problems = h_shutdown_check_replicas(&c, cl, craw, &objects);
		if (m)
			problems += h_check_replicas(&c, m, base_id, &base_objects);
		fprintf(stderr, "tier: %llu cache and %llu base objects alike on every replica? "
			"%d problems\n", (unsigned long long)objects,
			(unsigned long long)base_objects, problems);
		H_CHECK(problems == 0);
		mx_map_free(m);
	}
	h_stop(&c);
	fprintf(stderr, "tier: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

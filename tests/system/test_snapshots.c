/*
 * System test of volume snapshots and clones (docs/volumes.md) against a
 * real cluster (1 monitor, 3 OSDs).  Every state is kept as a model (a
 * copy of the disk's bytes) and the volume, each snapshot and each clone is
 * read back whole against its model after every step:
 *  - snapshots taken between rounds of random writes, discards and zeroing
 *    keep their content; a snapshot opened read-only refuses changes and
 *    its extents never call data a hole;
 *  - removing a snapshot in the middle keeps the ones before and after it
 *    (its copies pass to the one before where they hold its data too);
 *  - rollback brings a snapshot's content (and size) back;
 *  - clones of a protected snapshot read through to it, copy up on write,
 *    discard to zeroes over their parent's data, never change the parent;
 *    a clone of a clone; flatten cuts the link with the content unchanged;
 *  - the rules: no clone of an unprotected snapshot, no removal of a
 *    protected one, no unprotect while clones exist, no removal of a volume
 *    with snapshots.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define ORDER 16
#define OBJ (1u << ORDER)
#define SIZE (20u * OBJ + 5000u)

static mixsan_pool_t *pool;

static void check_model(mixsan_volume_t *v, const uint8_t *model, uint64_t size,
			const char *what)
{
	uint8_t *buf = malloc(size + OBJ);
	int64_t got = mixsan_volume_read(v, buf, size + OBJ, 0);

	if (got != (int64_t)size)
		H_FATAL("%s: read %lld of %llu bytes", what, (long long)got,
			(unsigned long long)size);
	for (uint64_t i = 0; i < size; i++)
		if (buf[i] != model[i])
			H_FATAL("%s: byte %llu is %u, model %u", what, (unsigned long long)i,
				buf[i], model[i]);
	free(buf);
}

/* Open snapshot snap of vol read-only and compare it with model. */
static void check_snap(const char *vol, const char *snap, const uint8_t *model,
		       uint64_t size)
{
	struct mixsan_volume_options o = {.flags = MIXSAN_VOLUME_RDONLY, .snapshot = snap};
	mixsan_volume_t *s;
	char what[64];

	snprintf(what, sizeof(what), "%s@%s", vol, snap);
	H_CHECK(mixsan_volume_open(pool, vol, &o, &s) == 0);
	H_CHECK(mixsan_volume_size(s) == size);
	check_model(s, model, size, what);
	H_CHECK(mixsan_volume_write(s, "x", 1, 0) == -EROFS);
	H_CHECK(mixsan_volume_close(s) == 0);
}

static void random_ops(mixsan_volume_t *v, uint8_t *model, uint64_t size, uint64_t seed,
		       int rounds)
{
	h_volume_random_ops(v, model, size, seed, rounds, 3 * OBJ, false);
}

static int count_snaps_cb(void *arg, const struct mixsan_snap_info *s)
{
	int *n = arg;

	(void)s;
	(*n)++;
	return 0;
}

static int snap_count(mixsan_volume_t *v)
{
	int n = 0;

	H_CHECK(mixsan_volume_snap_list(v, count_snaps_cb, &n) == 0);
	return n;
}

struct objs_ctx {
	char prefix[40];
	int n;
};

static int objs_cb(void *arg, const char *oid, size_t len, uint64_t size)
{
	struct objs_ctx *o = arg;

	(void)len;
	(void)size;
	if (!strncmp(oid, o->prefix, strlen(o->prefix)) && !strstr(oid, "header")) {
		if (o->n < 3)
			fprintf(stderr, "object %s\n", oid);
		o->n++;
	}
	return 0;
}

static int objects_of(mixsan_volume_t *v)
{
	struct mixsan_volume_info info;
	struct objs_ctx o;

	H_CHECK(mixsan_volume_info(v, &info) == 0);
	snprintf(o.prefix, sizeof(o.prefix), "vol.%s.", info.id);
	o.n = 0;
	H_CHECK(mixsan_list(pool, objs_cb, &o) == 0);
	return o.n;
}

int main(int argc, char **argv)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_volume_t *v, *cv, *gv;
	uint8_t *a = calloc(1, SIZE), *b, *cm, *d, *child, *grand;

	memset(&c, 0, sizeof(c));
	/* --cache: the same with the snapshot cache (docs/vdi-cache.md), small
	 * enough that it evicts: no step may read a stale block from it. */
	if (argc > 1 && !strcmp(argv[1], "--cache"))
		c.snap_cache_bytes = 8 * OBJ;
	/* --cache-big: a cache that holds every snapshot read here, so every
	 * read after the first of a snapshot is served from it: a block that
	 * went stale would be read back, and seen. */
	if (argc > 1 && !strcmp(argv[1], "--cache-big"))
		c.snap_cache_bytes = 16 * SIZE;
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "snaps", 3, 32, "osd");
	H_CHECK(mixsan_pool_open(cl, "snaps", &pool) == 0);
	H_CHECK(mixsan_volume_create(pool, "base", SIZE, ORDER) == 0);
	H_CHECK(mixsan_volume_open(pool, "base", NULL, &v) == 0);

	/* s1 (a), s2 (b), s3 (cm), head (d). */
	random_ops(v, a, SIZE, 1, 120);
	H_CHECK(mixsan_volume_snap_create(v, "s1") == 0);
	H_CHECK(mixsan_volume_snap_create(v, "s1") == -EEXIST);
	H_CHECK(mixsan_volume_snap_create(v, "a/b") == -EINVAL);
	b = malloc(SIZE);
	memcpy(b, a, SIZE);
	random_ops(v, b, SIZE, 2, 120);
	check_snap("base", "s1", a, SIZE);
	H_CHECK(mixsan_volume_snap_create(v, "s2") == 0);
	cm = malloc(SIZE);
	memcpy(cm, b, SIZE);
	random_ops(v, cm, SIZE, 3, 120);
	H_CHECK(mixsan_volume_snap_create(v, "s3") == 0);
	d = malloc(SIZE);
	memcpy(d, cm, SIZE);
	random_ops(v, d, SIZE, 4, 120);
	check_model(v, d, SIZE, "head");
	check_snap("base", "s1", a, SIZE);
	check_snap("base", "s2", b, SIZE);
	check_snap("base", "s3", cm, SIZE);
	H_CHECK(snap_count(v) == 3);

	/* A snapshot taken with writes in flight is a point between them. */
	{
		static uint8_t bufs[16][3000];
		mixsan_completion_t *cs[16];

		for (int i = 0; i < 16; i++) {
			uint64_t off = (uint64_t)i * (SIZE / 16);

			h_fill(500 + i, bufs[i], sizeof(bufs[i]));
			memcpy(d + off, bufs[i], sizeof(bufs[i]));
			H_CHECK(mixsan_completion_create(NULL, NULL, &cs[i]) == 0);
			H_CHECK(mixsan_volume_aio_write(v, cs[i], bufs[i], sizeof(bufs[i]),
							off) == 0);
		}
		H_CHECK(mixsan_volume_snap_create(v, "s4") == 0); /* after all 16 */
		for (int i = 0; i < 16; i++) {
			H_CHECK(mixsan_completion_wait(cs[i]) == 0);
			mixsan_completion_release(cs[i]);
		}
		H_CHECK(mixsan_volume_write(v, "after", 5, 0) == 0);
		check_snap("base", "s4", d, SIZE);
		memcpy(d, "after", 5);
		H_CHECK(mixsan_volume_snap_remove(v, "s4") == 0);
	}

	/* Remove the middle one: s1 and s3 keep their content. */
	H_CHECK(mixsan_volume_snap_remove(v, "s2") == 0);
	H_CHECK(mixsan_volume_snap_remove(v, "s2") == -ENOENT);
	check_snap("base", "s1", a, SIZE);
	check_snap("base", "s3", cm, SIZE);
	check_model(v, d, SIZE, "head after removing s2");
	H_CHECK(snap_count(v) == 2);

	/* Rollback to s3, then write again: s3 itself is unchanged. */
	H_CHECK(mixsan_volume_snap_rollback(v, "s3") == 0);
	check_model(v, cm, SIZE, "head rolled back to s3");
	memcpy(d, cm, SIZE);
	random_ops(v, d, SIZE, 5, 60);
	check_snap("base", "s3", cm, SIZE);
	H_CHECK(mixsan_volume_snap_remove(v, "s3") == 0);
	check_snap("base", "s1", a, SIZE);

	/* Rollback across a resize: the snapshot's size comes back. */
	H_CHECK(mixsan_volume_resize(v, 5 * OBJ) == 0);
	H_CHECK(mixsan_volume_snap_rollback(v, "s1") == 0);
	H_CHECK(mixsan_volume_size(v) == SIZE);
	check_model(v, a, SIZE, "head rolled back to s1 after a shrink");
	memcpy(d, a, SIZE);

	/* Clones: only of a protected snapshot. */
	H_CHECK(mixsan_volume_clone(pool, "base", "s1", pool, "child") == -EPERM);
	H_CHECK(mixsan_volume_snap_protect(v, "s1", 1) == 0);
	H_CHECK(mixsan_volume_snap_remove(v, "s1") == -EBUSY);
	H_CHECK(mixsan_volume_clone(pool, "base", "s1", pool, "child") == 0);
	H_CHECK(mixsan_volume_clone(pool, "base", "s1", pool, "child") == -EEXIST);
	H_CHECK(mixsan_volume_snap_protect(v, "s1", 0) == -EBUSY);
	H_CHECK(mixsan_volume_open(pool, "child", NULL, &cv) == 0);
	{
		struct mixsan_volume_parent par;

		H_CHECK(mixsan_volume_parent(cv, &par) == 0);
		H_CHECK(par.pool == mixsan_pool_id(pool) && par.overlap == SIZE);
	}
	check_model(cv, a, SIZE, "new clone");
	/* The clone is empty until it writes. */
	H_CHECK(objects_of(cv) == 0);
	child = malloc(SIZE);
	memcpy(child, a, SIZE);
	random_ops(cv, child, SIZE, 6, 150);
	/* A whole-object discard over the parent's data reads as zeroes. */
	H_CHECK(mixsan_volume_discard(cv, OBJ, 7 * OBJ) == 0);
	memset(child + 7 * OBJ, 0, OBJ);
	check_model(cv, child, SIZE, "clone after writes");
	random_ops(v, d, SIZE, 7, 60); /* the parent's head moves on */
	check_model(cv, child, SIZE, "clone after its parent changed");
	check_snap("base", "s1", a, SIZE);
	check_model(v, d, SIZE, "parent head");

	/* Fast zeroing refuses to write zeroes over the parent's data (part
	 * of an object), and whole objects it zeroes without writing them. */
	H_CHECK(mixsan_volume_write_zeroes(cv, 100, 9 * OBJ + 10, MIXSAN_ZERO_FAST) == -ENOTSUP);
	H_CHECK(mixsan_volume_write_zeroes(cv, OBJ, 9 * OBJ, MIXSAN_ZERO_FAST) == 0);
	memset(child + 9 * OBJ, 0, OBJ);
	check_model(cv, child, SIZE, "clone after fast zeroing");

	/* An object marked in the clone's map but never created (a failure
	 * between the mark and the copy-up): the next partial write still
	 * copies the parent's data up. */
	{
		struct mixsan_volume_info info;
		char oid[64];
		uint8_t byte;
		uint64_t objno = 12;

		H_CHECK(mixsan_volume_info(cv, &info) == 0);
		H_CHECK(mixsan_volume_close(cv) == 0);
		snprintf(oid, sizeof(oid), "vol.%s.%016llx", info.id, (unsigned long long)objno);
		(void)mixsan_remove(pool, oid);
		memcpy(child + objno * OBJ, a + objno * OBJ, OBJ); /* the parent's again */
		snprintf(oid, sizeof(oid), "vol.%s.objmap", info.id);
		H_CHECK(mixsan_read(pool, oid, &byte, 1, objno / 4) == 1);
		byte |= (uint8_t)(3u << (2 * (objno % 4)));
		H_CHECK(mixsan_write(pool, oid, &byte, 1, objno / 4) == 0);
		H_CHECK(mixsan_volume_open(pool, "child", NULL, &cv) == 0);
		check_model(cv, child, SIZE, "clone with a marked, absent object");
		H_CHECK(mixsan_volume_write(cv, "mid", 3, objno * OBJ + 1000) == 0);
		memcpy(child + objno * OBJ + 1000, "mid", 3);
		check_model(cv, child, SIZE, "clone after a write to the marked, absent object");
	}

	/* A clone of the clone. */
	H_CHECK(mixsan_volume_snap_create(cv, "cs") == 0);
	H_CHECK(mixsan_volume_snap_protect(cv, "cs", 1) == 0);
	H_CHECK(mixsan_volume_clone(pool, "child", "cs", pool, "grand") == 0);
	H_CHECK(mixsan_volume_open(pool, "grand", NULL, &gv) == 0);
	grand = malloc(SIZE);
	memcpy(grand, child, SIZE);
	check_model(gv, grand, SIZE, "grandchild");
	random_ops(gv, grand, SIZE, 8, 80);
	random_ops(cv, child, SIZE, 9, 40);
	check_model(gv, grand, SIZE, "grandchild after writes");
	check_model(cv, child, SIZE, "child after writes");
	H_CHECK(mixsan_volume_remove(pool, "child") == -EBUSY); /* open here */

	/* A clone with snapshots is not flattened: they read through too. */
	H_CHECK(mixsan_volume_snap_create(gv, "gs") == 0);
	H_CHECK(mixsan_volume_flatten(gv) == -EBUSY);
	H_CHECK(mixsan_volume_snap_remove(gv, "gs") == 0);

	/* Flatten the grandchild: same content, no parent, the parent's
	 * snapshot can be unprotected and removed. */
	H_CHECK(mixsan_volume_flatten(gv) == 0);
	{
		struct mixsan_volume_parent par;

		H_CHECK(mixsan_volume_parent(gv, &par) == 0 && par.pool == -1);
	}
	check_model(gv, grand, SIZE, "flattened grandchild");
	H_CHECK(mixsan_volume_close(gv) == 0);
	H_CHECK(mixsan_volume_open(pool, "grand", NULL, &gv) == 0);
	check_model(gv, grand, SIZE, "flattened grandchild reopened");
	H_CHECK(mixsan_volume_snap_protect(cv, "cs", 0) == 0);
	H_CHECK(mixsan_volume_snap_remove(cv, "cs") == 0);
	check_model(gv, grand, SIZE, "flattened grandchild, its parent's snapshot gone");
	H_CHECK(mixsan_volume_close(gv) == 0);

	/* Removal rules. */
	H_CHECK(mixsan_volume_close(cv) == 0);
	H_CHECK(mixsan_volume_close(v) == 0);
	H_CHECK(mixsan_volume_remove(pool, "base") == -ENOTEMPTY);
	H_CHECK(mixsan_volume_remove(pool, "child") == 0);
	H_CHECK(mixsan_volume_open(pool, "base", NULL, &v) == 0);
	H_CHECK(mixsan_volume_snap_protect(v, "s1", 0) == 0);
	H_CHECK(mixsan_volume_snap_remove(v, "s1") == 0);
	H_CHECK(snap_count(v) == 0);
	check_model(v, d, SIZE, "parent head at the end");
	H_CHECK(mixsan_volume_close(v) == 0);
	H_CHECK(mixsan_volume_remove(pool, "base") == 0);
	H_CHECK(mixsan_volume_remove(pool, "grand") == 0);
	{
		struct objs_ctx o = {.prefix = "vol."};

		H_CHECK(mixsan_list(pool, objs_cb, &o) == 0);
		o.prefix[0] = 'v'; /* (headers count here too) */
		if (o.n != 0)
			H_FATAL("%d objects left after removing every volume", o.n);
	}

	free(a);
	free(b);
	free(cm);
	free(d);
	free(child);
	free(grand);
	mixsan_pool_close(pool);
	if (c.snap_cache_bytes) {
		struct mixsan_io_stats st;

		mixsan_io_stats(cl, &st);
		printf("snapshot cache: %llu bytes hit, %llu fetched, %llu evicted\n",
		       (unsigned long long)st.cache_hit_bytes,
		       (unsigned long long)st.cache_fetched_bytes,
		       (unsigned long long)st.cache_evicted_bytes);
		H_CHECK(st.cache_hit_bytes > 0);
		H_CHECK(c.snap_cache_bytes > SIZE || st.cache_evicted_bytes > 0);
		H_CHECK(st.cache_used <= st.cache_capacity);
	}
	mixsan_shutdown(cl);
	h_stop(&c);
	fprintf(stderr, "snapshots: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

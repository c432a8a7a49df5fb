/*
 * Flatten against a snapshot taken meanwhile (docs/volumes.md, "Clones";
 * docs/vdi-cache.md): another thread on the writer's handle takes snapshots
 * while flatten copies up.  Flatten may not drop the parent under a
 * snapshot that still reads through it (the snapshot's content would
 * change: a handle opened before, and the snapshot cache, would show the
 * parent's data, one opened after zeroes), so each snapshot is refused
 * while flatten runs, or flatten is refused while one is taken; every
 * snapshot that exists reads the same from handles opened before and after.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define ORDER 16
#define OBJ (1u << ORDER)
#define NOBJ 96u
#define SIZE (NOBJ * OBJ)

static mixsan_pool_t *pool;
static mixsan_volume_t *cv;
static int flat_r;

static void *flatten_main(void *arg)
{
	(void)arg;
	flat_r = mixsan_volume_flatten(cv);
	return NULL;
}

static uint64_t diff_bytes(mixsan_volume_t *v, const uint8_t *model)
{
	uint8_t *buf = malloc(SIZE);
	uint64_t d = 0;

	H_CHECK(mixsan_volume_read(v, buf, SIZE, 0) == (int64_t)SIZE);
	for (uint64_t i = 0; i < SIZE; i++)
		d += buf[i] != model[i];
	free(buf);
	return d;
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_volume_t *v, *after;
	struct mixsan_volume_options so = {.flags = MIXSAN_VOLUME_RDONLY, .snapshot = "cs"};
	uint8_t *a = malloc(SIZE);
	pthread_t th;
	int snap_r;

	memset(&c, 0, sizeof(c));
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "flat", 3, 32, "osd");
	H_CHECK(mixsan_pool_open(cl, "flat", &pool) == 0);
	H_CHECK(mixsan_volume_create(pool, "base", SIZE, ORDER) == 0);
	H_CHECK(mixsan_volume_open(pool, "base", NULL, &v) == 0);
	h_fill(11, a, SIZE);
	H_CHECK(mixsan_volume_write(v, a, SIZE, 0) == 0);
	H_CHECK(mixsan_volume_snap_create(v, "s") == 0);
	H_CHECK(mixsan_volume_snap_protect(v, "s", 1) == 0);
	H_CHECK(mixsan_volume_clone(pool, "base", "s", pool, "child") == 0);
	H_CHECK(mixsan_volume_open(pool, "child", NULL, &cv) == 0);

	H_CHECK(pthread_create(&th, NULL, flatten_main, NULL) == 0);
	usleep(30000); /* flatten is copying up */
	snap_r = mixsan_volume_snap_create(cv, "cs");
	pthread_join(th, NULL);
	printf("snapshot during flatten: %d, flatten: %d\n", snap_r, flat_r);
	if (snap_r == 0 && flat_r == 0) {
		H_CHECK(mixsan_volume_open(pool, "child", &so, &after) == 0);
		uint64_t d = diff_bytes(after, a);

		printf("child@cs opened after the flatten: %llu of %u bytes differ from the "
		       "clone's content when the snapshot was taken\n",
		       (unsigned long long)d, SIZE);
		H_CHECK(d == 0);
		H_CHECK(mixsan_volume_close(after) == 0);
	} else {
		/* The guarded outcomes: one of the two is refused. */
		H_CHECK((snap_r == 0 && flat_r == -EBUSY) || (snap_r == -EBUSY && flat_r == 0));
	}
	H_CHECK(mixsan_volume_close(cv) == 0);
	H_CHECK(mixsan_volume_close(v) == 0);
	mixsan_pool_close(pool);
	free(a);
	fprintf(stderr, "flatten_race: %d failures\n", h_failures);
	mixsan_shutdown(cl);
	h_stop(&c);
	return h_failures ? 1 : 0;
}

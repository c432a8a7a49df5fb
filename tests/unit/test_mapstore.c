/*
 * Unit test of the file map store: commits are durable and reloadable,
 * the history keeps the newest MX_MAP_HISTORY epochs and prunes older
 * ones, a damaged map file is refused, and a backend with a missing hook
 * is never handed out.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mapstore.h"

static int last_status = 1;

static void done(void *arg, int status)
{
	(void)arg;
	last_status = status;
}

int main(void)
{
	const struct mx_mapstore_ops *fs = mx_mapstore_find("file");
	char dir[] = "/tmp/mapstore-test-XXXXXX", cmd[256], path[300];
	struct mx_map *m = mx_map_new(), *got = NULL;
	uint64_t last = MX_MAP_HISTORY + 50;
	void *ctx;

	CHECK(fs != NULL);
	CHECK(mx_mapstore_find("nope") == NULL);
	CHECK(mkdtemp(dir) != NULL);
	CHECK_EQ_INT(fs->open(NULL, dir, &ctx), 0);
	CHECK_EQ_INT(fs->load(ctx, &got), -ENOENT);
	for (uint64_t e = 1; e <= last; e++) {
		m->epoch = e;
		m->next_pool_id = (int32_t)e;
		last_status = 1;
		CHECK_EQ_INT(fs->commit(ctx, m, done, NULL), 0);
		CHECK_EQ_INT(last_status, 0);
	}
	CHECK_EQ_INT(fs->load(ctx, &got), 0);
	CHECK(got && got->epoch == last && got->next_pool_id == (int32_t)last);
	mx_map_free(got);
	CHECK_EQ_INT(fs->get(ctx, last - 5, &got), 0);
	CHECK(got && got->epoch == last - 5 && got->next_pool_id == (int32_t)(last - 5));
	mx_map_free(got);
	got = NULL;
	CHECK_EQ_INT(fs->get(ctx, last - MX_MAP_HISTORY + 1, &got), 0);
	mx_map_free(got);
	got = NULL;
	CHECK_EQ_INT(fs->get(ctx, 10, &got), -ENOENT);
	CHECK_EQ_INT(fs->get(ctx, last - MX_MAP_HISTORY, &got), -ENOENT);
	fs->close(ctx);

	/* Reopen: same newest map, same history. */
	CHECK_EQ_INT(fs->open(NULL, dir, &ctx), 0);
	CHECK_EQ_INT(fs->load(ctx, &got), 0);
	CHECK(got && got->epoch == last);
	mx_map_free(got);
	got = NULL;
	CHECK_EQ_INT(fs->get(ctx, last - 100, &got), 0);
	mx_map_free(got);
	got = NULL;
	fs->close(ctx);

	/* A flipped byte in the map file: refused, not misread. */
	snprintf(path, sizeof(path), "%s/map", dir);
	{
		int fd = open(path, O_RDWR);
		char b;

		CHECK(fd >= 0);
		CHECK(pread(fd, &b, 1, 10) == 1);
		b ^= 0x01;
		CHECK(pwrite(fd, &b, 1, 10) == 1);
		close(fd);
	}
	CHECK_EQ_INT(fs->open(NULL, dir, &ctx), 0);
	CHECK_EQ_INT(fs->load(ctx, &got), -EUCLEAN);
	fs->close(ctx);

	mx_map_free(m);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
	return mx_check_done("mapstore");
}

/*
 * The file map store: one monitor keeps its map in DIR/map, replaced
 * atomically on every commit (write to DIR/map.tmp, fsync, rename, fsync
 * DIR).  After a crash DIR/map is either the old map or the new one, never
 * a mix; a leftover map.tmp is ignored.
 */
#include "mapstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "crc32c.h"
#include "log.h"
#include "util.h"

struct file_store {
	char dir[4096];
};

static int file_open(uv_loop_t *loop, const char *dir, void **ctx)
{
	struct file_store *fs;
	int r = mx_mkdir_p(dir, 0700);

	(void)loop;
	if (r < 0)
		return r;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	snprintf(fs->dir, sizeof(fs->dir), "%s", dir);
	*ctx = fs;
	return 0;
}

static int file_load(void *ctx, struct mx_map **out)
{
	struct file_store *fs = ctx;
	char path[4200];
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint8_t *buf = NULL;
	struct stat st;
	int r;

	snprintf(path, sizeof(path), "%s/map", fs->dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size < 8 || st.st_size > (64 << 20))
		return -EUCLEAN;
	buf = malloc((size_t)st.st_size);
	if (!buf)
		return -ENOMEM;
	r = mx_pread_all(fd, buf, (size_t)st.st_size, 0);
	if (r < 0)
		return r;
	/* Last 4 bytes: CRC-32C of the rest. */
	{
		size_t n = (size_t)st.st_size - 4;
		uint32_t want = (uint32_t)buf[n] | (uint32_t)buf[n + 1] << 8 |
				(uint32_t)buf[n + 2] << 16 | (uint32_t)buf[n + 3] << 24;
		if (mx_crc32c(0, buf, n) != want)
			return -EUCLEAN;
		r = mx_map_decode(buf, n, out);
		return r < 0 ? -EUCLEAN : 0;
	}
}

static int file_write(struct file_store *fs, const struct mx_map *m)
{
	char path[4200], tmp[4200];
	struct mx_wbuf w;
	_cleanup_close_ int fd = -1;
	int r;

	mx_wbuf_init(&w);
	mx_map_encode(m, &w);
	{
		mx_put_u32(&w, mx_crc32c(0, w.data, w.len));
	}
	if (w.err) {
		r = w.err;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/map", fs->dir);
	snprintf(tmp, sizeof(tmp), "%s/map.tmp", fs->dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = mx_pwrite_all(fd, w.data, w.len, 0);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r == 0)
		r = mx_fsync_dir(fs->dir);
out:
	mx_wbuf_free(&w);
	return r;
}

static int file_commit(void *ctx, const struct mx_map *m,
		       void (*done)(void *arg, int status), void *arg)
{
	int r = file_write(ctx, m);

	if (r < 0)
		mx_err("map store: writing epoch %llu failed: %s",
		       (unsigned long long)m->epoch, strerror(-r));
	done(arg, r);
	return 0;
}

static void file_close(void *ctx)
{
	free(ctx);
}

const struct mx_mapstore_ops mx_mapstore_file = {
	.name = "file",
	.open = file_open,
	.load = file_load,
	.commit = file_commit,
	.close = file_close,
};

const struct mx_mapstore_ops *mx_mapstore_find(const char *name)
{
	static const struct mx_mapstore_ops *const backends[] = {&mx_mapstore_file};

	for (size_t i = 0; i < MX_ARRAY_SIZE(backends); i++) {
		const struct mx_mapstore_ops *b = backends[i];

		if (strcmp(b->name, name) != 0)
			continue;
		if (!b->open || !b->load || !b->commit || !b->close) {
			mx_err("map store backend '%s' lacks a required hook", name);
			return NULL;
		}
		return b;
	}
	return NULL;
}

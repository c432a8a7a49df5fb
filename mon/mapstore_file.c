/*
 * The file map store: one monitor keeps its newest map in DIR/map and the
 * maps of recent epochs in DIR/epochs/, so that OSDs can learn the history
 * of their placement groups (docs/recovery.md).
 *
 * Every file is written whole and replaced atomically: write NAME.tmp,
 * fsync, rename over NAME, fsync the folder.  After a crash NAME is either
 * the old content or the new, never a mix; a leftover .tmp is ignored.  A
 * CRC-32C trails every file; a damaged one is refused.
 *
 * Commit order: the epoch's history file first, then DIR/map.  So every
 * epoch up to the one in DIR/map is in the history (unless pruned), and an
 * epoch that is in the history but not in DIR/map (a crash between the two)
 * was never acknowledged and is overwritten by the next commit.
 */
#include "mapstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "crc32c.h"
#include "log.h"
#include "util.h"

struct file_store {
	char dir[4096];
	char epochs[4200];
	uint64_t oldest; /* oldest epoch kept in the history, 0 if unknown */
};

static int write_file(const char *dir, const char *name, const struct mx_wbuf *w)
{
	uint8_t crc[4];
	uint32_t c = mx_crc32c(0, w->data, w->len);

	for (int i = 0; i < 4; i++)
		crc[i] = (uint8_t)(c >> (8 * i));
	return mx_replace_file(dir, name, w->data, w->len, crc, 4);
}

static int read_map(const char *path, struct mx_map **out)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint8_t *buf = NULL;
	struct stat st;
	size_t n;
	uint32_t want;
	int r;

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
	n = (size_t)st.st_size - 4;
	want = (uint32_t)buf[n] | (uint32_t)buf[n + 1] << 8 | (uint32_t)buf[n + 2] << 16 |
	       (uint32_t)buf[n + 3] << 24;
	if (mx_crc32c(0, buf, n) != want)
		return -EUCLEAN;
	r = mx_map_decode(buf, n, out);
	return r < 0 ? -EUCLEAN : 0;
}

static void epoch_name(uint64_t epoch, char *buf, size_t sz)
{
	snprintf(buf, sz, "%016" PRIx64, epoch);
}

static int find_oldest(struct file_store *fs)
{
	DIR *d = opendir(fs->epochs);
	struct dirent *e;
	uint64_t oldest = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char *end;
		uint64_t v;

		if (strlen(e->d_name) != 16)
			continue;
		v = strtoull(e->d_name, &end, 16);
		if (*end == '\0' && v && (!oldest || v < oldest))
			oldest = v;
	}
	closedir(d);
	fs->oldest = oldest;
	return 0;
}

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
	snprintf(fs->epochs, sizeof(fs->epochs), "%s/epochs", dir);
	r = mx_mkdir_p(fs->epochs, 0700);
	if (r == 0)
		r = find_oldest(fs);
	if (r < 0) {
		free(fs);
		return r;
	}
	*ctx = fs;
	return 0;
}

static int file_load(void *ctx, struct mx_map **out)
{
	struct file_store *fs = ctx;
	char path[4200];

	snprintf(path, sizeof(path), "%s/map", fs->dir);
	return read_map(path, out);
}

static int file_get(void *ctx, uint64_t epoch, struct mx_map **out)
{
	struct file_store *fs = ctx;
	char name[32], path[4400];
	int r;

	epoch_name(epoch, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", fs->epochs, name);
	r = read_map(path, out);
	return r == -ENOENT ? -ENOENT : r;
}

static void prune(struct file_store *fs, uint64_t newest)
{
	char name[32], path[4400];

	if (!fs->oldest)
		fs->oldest = newest;
	while (fs->oldest + MX_MAP_HISTORY <= newest) {
		epoch_name(fs->oldest, name, sizeof(name));
		snprintf(path, sizeof(path), "%s/%s", fs->epochs, name);
		(void)unlink(path);
		fs->oldest++;
	}
}

static int file_commit(void *ctx, const struct mx_map *m,
		       void (*done)(void *arg, int status), void *arg)
{
	struct file_store *fs = ctx;
	struct mx_wbuf w;
	char name[32];
	int r;

	mx_wbuf_init(&w);
	mx_map_encode_secret(m, &w); /* the monitors' own copy */
	r = w.err;
	epoch_name(m->epoch, name, sizeof(name));
	if (r == 0)
		r = write_file(fs->epochs, name, &w);
	if (r == 0)
		r = write_file(fs->dir, "map", &w);
	mx_wbuf_free(&w);
	if (r < 0)
		mx_err("map store: writing epoch %llu failed: %s", (unsigned long long)m->epoch,
		       strerror(-r));
	else
		prune(fs, m->epoch);
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
	.get = file_get,
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
		if (!b->open || !b->load || !b->get || !b->commit || !b->close) {
			mx_err("map store backend '%s' lacks a required hook", name);
			return NULL;
		}
		return b;
	}
	return NULL;
}

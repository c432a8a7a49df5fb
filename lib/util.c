/*
 * Implementation of the helpers declared in util.h.
 */
#include "util.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>

void *mx_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p) {
		fputs("out of memory\n", stderr);
		abort();
	}
	return p;
}

char *mx_xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p) {
		fputs("out of memory\n", stderr);
		abort();
	}
	return p;
}

uint64_t mx_hash64(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ull ^ seed;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	/* splitmix64 finaliser: spreads FNV's weak low bits. */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

int mx_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int mx_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int mx_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	(void)close(fd);
	return r;
}

int mx_replace_file(const char *dir, const char *name, const void *data, size_t len,
		    const void *tail, size_t tail_len)
{
	char path[4400], tmp[4400];
	int fd, r;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = mx_pwrite_all(fd, data, len, 0);
	if (r == 0 && tail_len)
		r = mx_pwrite_all(fd, tail, tail_len, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	(void)close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	return r < 0 ? r : mx_fsync_dir(dir);
}

int mx_mkdir_p(const char *path, unsigned mode)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int mx_lock_dir(const char *dir, long *holder)
{
	char path[4200], buf[32];
	ssize_t n;
	int fd, len, r;

	*holder = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/lock", dir) >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		if (e == EWOULDBLOCK) {
			n = pread(fd, buf, sizeof(buf) - 1, 0);
			if (n > 0) {
				buf[n] = '\0';
				*holder = strtol(buf, NULL, 10);
			}
			e = EBUSY;
		}
		(void)close(fd);
		return -e;
	}
	len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	r = ftruncate(fd, 0) < 0 ? -errno : mx_pwrite_all(fd, buf, (size_t)len, 0);
	if (r < 0) {
		(void)close(fd);
		return r;
	}
	return fd;
}

/*
 * faultfs: a FUSE file system that passes everything through to a backing
 * folder, and whose fsync and fdatasync (of files and of folders) fail
 * with EIO while it is told to fail: SIGUSR1 starts the failures, SIGUSR2
 * ends them.  A failing sync first waits HOLD_MS (as a failing disk takes
 * its time), so that whatever the daemon above wrongly does before it
 * learns of the failure has time to show.  The bytes written stay in the
 * backing folder either way, as after a disk's failed cache flush that
 * lost nothing yet; only the daemon above learns that its data is not
 * known to be durable.
 *
 *   faultfs BACKING MOUNTPOINT [HOLD_MS]
 *
 * Runs in the foreground, single-threaded, until it is unmounted (or gets
 * SIGTERM or SIGINT).  Used by tests/system/test_fsync_fail.c to make an
 * OSD's fdatasync fail inside the running daemon (docs/testing.md).
 */
#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int back_fd = -1; /* the backing folder */
static volatile sig_atomic_t failing;
static unsigned hold_ms;

/* A sync that fails: after hold_ms. */
static int sync_failure(void)
{
	struct timespec ts = {.tv_sec = hold_ms / 1000, .tv_nsec = (long)(hold_ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return -EIO;
}

static void on_usr(int sig)
{
	failing = sig == SIGUSR1;
}

/* A path as FUSE gives it ("/a/b") relative to the backing folder. */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	if (fi)
		return fstat((int)fi->fh, st) < 0 ? -errno : 0;
	return fstatat(back_fd, rel(path), st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int fs_access(const char *path, int mask)
{
	return faccessat(back_fd, rel(path), mask, 0) < 0 ? -errno : 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	int fd = openat(back_fd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *e;
	DIR *d;

	(void)off;
	(void)fi;
	(void)flags;
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		int e0 = -errno;

		close(fd);
		return e0;
	}
	while ((e = readdir(d)) != NULL) {
		struct stat st = {.st_ino = e->d_ino, .st_mode = (mode_t)DTTOIF(e->d_type)};

		if (fill(buf, e->d_name, &st, 0, 0))
			break;
	}
	closedir(d);
	return 0;
}

static int fs_mkdir(const char *path, mode_t mode)
{
	return mkdirat(back_fd, rel(path), mode) < 0 ? -errno : 0;
}

static int fs_unlink(const char *path)
{
	return unlinkat(back_fd, rel(path), 0) < 0 ? -errno : 0;
}

static int fs_rmdir(const char *path)
{
	return unlinkat(back_fd, rel(path), AT_REMOVEDIR) < 0 ? -errno : 0;
}

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
	if (flags)
		return -EINVAL;
	return renameat(back_fd, rel(from), back_fd, rel(to)) < 0 ? -errno : 0;
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (fi)
		return fchmod((int)fi->fh, mode) < 0 ? -errno : 0;
	return fchmodat(back_fd, rel(path), mode, 0) < 0 ? -errno : 0;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	int fd, r;

	if (fi)
		return ftruncate((int)fi->fh, size) < 0 ? -errno : 0;
	fd = openat(back_fd, rel(path), O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = ftruncate(fd, size) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	if (fi)
		return futimens((int)fi->fh, tv) < 0 ? -errno : 0;
	return utimensat(back_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int fd = openat(back_fd, rel(path), fi->flags | O_CLOEXEC, mode);

	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	int fd = openat(back_fd, rel(path), (fi->flags & ~O_CREAT) | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int fs_read(const char *path, char *buf, size_t n, off_t off, struct fuse_file_info *fi)
{
	ssize_t r = pread((int)fi->fh, buf, n, off);

	(void)path;
	return r < 0 ? -errno : (int)r;
}

static int fs_write(const char *path, const char *buf, size_t n, off_t off,
		    struct fuse_file_info *fi)
{
	ssize_t r = pwrite((int)fi->fh, buf, n, off);

	(void)path;
	return r < 0 ? -errno : (int)r;
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	return fstatvfs(back_fd, sv) < 0 ? -errno : 0;
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	close((int)fi->fh);
	return 0;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	if (failing)
		return sync_failure();
	return (datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh)) < 0 ? -errno : 0;
}

static int fs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	int fd, r;

	(void)datasync;
	(void)fi;
	if (failing)
		return sync_failure();
	fd = openat(back_fd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static int fs_fallocate(const char *path, int mode, off_t off, off_t len,
			struct fuse_file_info *fi)
{
	(void)path;
	return fallocate((int)fi->fh, mode, off, len) < 0 ? -errno : 0;
}

static const struct fuse_operations ops = {
	.getattr = fs_getattr,
	.access = fs_access,
	.readdir = fs_readdir,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.rename = fs_rename,
	.chmod = fs_chmod,
	.truncate = fs_truncate,
	.utimens = fs_utimens,
	.create = fs_create,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.statfs = fs_statfs,
	.release = fs_release,
	.fsync = fs_fsync,
	.fsyncdir = fs_fsyncdir,
	.fallocate = fs_fallocate,
};

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_usr};
	char *fargv[] = {argv[0], "-f", "-s", "-o", "default_permissions", NULL, NULL};

	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: faultfs BACKING MOUNTPOINT [HOLD_MS]\n");
		return 2;
	}
	if (argc == 4)
		hold_ms = (unsigned)strtoul(argv[3], NULL, 10);
	back_fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (back_fd < 0) {
		fprintf(stderr, "faultfs: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGUSR1, &sa, NULL) < 0 || sigaction(SIGUSR2, &sa, NULL) < 0) {
		perror("faultfs: sigaction");
		return 1;
	}
	umask(0);
	fargv[5] = argv[2];
	return fuse_main(6, fargv, &ops, NULL);
}

/*
 * Small helpers shared by every mixstack component: cleanup attributes,
 * array sizes, checked arithmetic and monotonic time.  Nothing here does I/O.
 */
#ifndef MX_UTIL_H
#define MX_UTIL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MX_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MX_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MX_MAX(a, b) ((a) > (b) ? (a) : (b))
#define MX_UNUSED __attribute__((unused))
#define MX_LIKELY(x) __builtin_expect(!!(x), 1)
#define MX_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MX_PRINTF(a, b) __attribute__((format(printf, a, b)))

static inline void mx_freep(void *p)
{
	free(*(void **)p);
}

static inline void mx_closep(int *fd)
{
	if (*fd >= 0)
		(void)close(*fd);
}

/* Scoped frees: the variable is freed (or closed) when it leaves scope. */
#define _cleanup_free_ __attribute__((cleanup(mx_freep)))
#define _cleanup_close_ __attribute__((cleanup(mx_closep)))

/* Hand a pointer out of a _cleanup_ scope. */
#define MX_TAKE_PTR(p)                                                         \
	({                                                                     \
		__typeof__(p) _tp = (p);                                       \
		(p) = NULL;                                                    \
		_tp;                                                           \
	})

/* Monotonic clock in nanoseconds. */
static inline uint64_t mx_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Monotonic clock in milliseconds: for intervals (a wall clock may step
 * back, and an unsigned difference would then be huge). */
static inline uint64_t mx_mono_ms(void)
{
	return mx_now_ns() / 1000000ull;
}

/* now - then, or 0 when then is later: a time taken after now (a
 * clock read again further down the same pass) is no time at all, not a
 * wrapped difference of half a billion years. */
static inline uint64_t mx_ms_since(uint64_t now, uint64_t then)
{
	return now > then ? now - then : 0;
}

/* Wall clock in milliseconds since the epoch. */
static inline uint64_t mx_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

/* Allocation that cannot fail: aborts on exhaustion.  Used only where
 * recovering from OOM is impossible anyway (daemon start-up tables). */
void *mx_xcalloc(size_t n, size_t size);
char *mx_xstrdup(const char *s);

/* 64-bit FNV-1a then a finaliser: a stable hash used for names on the wire
 * and on disk.  Never change it: placement depends on it. */
uint64_t mx_hash64(const void *data, size_t len, uint64_t seed);

/* Write all of buf at offset, retrying on short writes and EINTR.
 * Returns 0 or a negative errno. */
int mx_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* Read exactly len bytes at offset; a short file yields -EIO.
 * Returns 0 or a negative errno. */
int mx_pread_all(int fd, void *buf, size_t len, uint64_t off);
/* fsync a directory by path.  Returns 0 or a negative errno. */
int mx_fsync_dir(const char *path);
/* Replace dir/name durably with data then tail (tail_len 0: none): written
 * to dir/name.tmp, fsynced, renamed over dir/name, dir fsynced.  A crash
 * leaves the old file or the new one.  0 or a negative errno. */
int mx_replace_file(const char *dir, const char *name, const void *data, size_t len,
		    const void *tail, size_t tail_len);
/* mkdir -p. Returns 0 or a negative errno. */
int mx_mkdir_p(const char *path, unsigned mode);
/* Take dir/lock, an exclusive flock(2) held until the process ends, so that
 * a second daemon on the same folder is refused, also while a killed holder
 * is still exiting.  The file records the holder's pid for messages.
 * Returns the lock's descriptor (left open), -EBUSY with *holder the pid
 * the holder recorded (0 if none), or a negative errno. */
int mx_lock_dir(const char *dir, long *holder);

#endif

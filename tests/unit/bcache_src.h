/*
 * Made-up snapshot content for the snapshot cache's unit tests: every byte
 * follows from its offset and the snapshot id, so any read can be checked,
 * and a fill function counts, delays and fails fetches on demand.
 */
#ifndef MX_TEST_BCACHE_SRC_H
#define MX_TEST_BCACHE_SRC_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "../../client/cache.h"

#define B MX_BCACHE_BLOCK

static inline uint8_t byte_at(uint64_t snap, uint64_t off)
{
	return (uint8_t)((off * 7 + (off >> 12) * 13 + snap * 101) & 0xff);
}

struct src {
	uint64_t snap;
	atomic_uint calls;
	atomic_ullong bytes;
	atomic_int fail;           /* fail this many fetches (-1: all) */
	int err;                   /* with this error (0: -EIO) */
	unsigned delay_us;         /* each fetch takes this long first */
	atomic_uint per_block[64]; /* fetches covering block i */
};

static inline int fill(void *arg, uint8_t *buf, uint64_t off, uint64_t len)
{
	struct src *s = arg;

	s->calls++;
	if (s->delay_us)
		usleep(s->delay_us);
	if (s->fail < 0)
		return s->err ? s->err : -EIO;
	if (s->fail > 0) {
		s->fail--;
		return s->err ? s->err : -EIO;
	}
	for (uint64_t i = 0; i < len; i++)
		buf[i] = byte_at(s->snap, off + i);
	for (uint64_t b = off / B; b < (off + len + B - 1) / B && b < 64; b++)
		s->per_block[b]++;
	s->bytes += len;
	return 0;
}
/* Read [off, off + len) of s's content through c and check every byte:
 * 0, the cache's error, or -EBADMSG. */
static inline int read_check(struct mx_bcache *c, struct src *s, uint64_t size, uint64_t off,
		      uint64_t len, uint64_t ahead, uint64_t limit)
{
	struct mx_bcache_key k = {.pool = 1, .vol = 0xabcdef, .snap = s->snap};
	uint8_t *buf = malloc(len);
	int r = mx_bcache_read(c, &k, size, buf, off, len, ahead, limit, fill, s);

	if (r == 0)
		for (uint64_t i = 0; i < len; i++)
			if (buf[i] != byte_at(s->snap, off + i)) {
				fprintf(stderr, "byte %llu of snap %llu is wrong\n",
					(unsigned long long)(off + i), (unsigned long long)s->snap);
				r = -EBADMSG;
				break;
			}
	free(buf);
	return r;
}

#endif

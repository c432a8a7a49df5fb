/*
 * Unit test of the snapshot cache (client/cache.c, docs/vdi-cache.md),
 * with content made up from its offsets so every byte can be checked:
 *  - reads copy the right bytes, at any alignment, up to a short last
 *    block; a second read fetches nothing;
 *  - read-ahead fetches up to its limit and no further, and only absent
 *    blocks;
 *  - the cache never holds more than its capacity; a scan read once does
 *    not push out blocks read twice (segmented LRU);
 *  - a failed fetch returns its error, keeps nothing, and a later read
 *    fetches again;
 *  - sixteen threads reading the same blocks at once fetch each block once
 *    (the others wait for it); when the fetch they wait for fails, they
 *    get its error, and a later read reads right.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "bcache_src.h"
#include "check.h"

static void test_basic(void)
{
	struct mx_bcache *c = mx_bcache_new(64 * B);
	struct mx_bcache_stats st;
	struct src s = {.snap = 3};
	uint64_t size = 10 * B + 100; /* a short last block */

	CHECK_EQ_INT(read_check(c, &s, size, 100, 5000, 0, size), 0);
	CHECK_EQ_INT(s.calls, 1);
	CHECK_EQ_INT(s.bytes, 2 * B); /* blocks 0 and 1 */
	CHECK_EQ_INT(read_check(c, &s, size, 0, 2 * B, 0, size), 0);
	CHECK_EQ_INT(s.calls, 1); /* all held */
	/* The short last block, and a read across held and absent blocks. */
	CHECK_EQ_INT(read_check(c, &s, size, 10 * B, 100, 0, size), 0);
	CHECK_EQ_INT(read_check(c, &s, size, B + 7, 4 * B, 0, size), 0);
	CHECK_EQ_INT(s.bytes, 2 * B + 100 + 4 * B); /* blocks 2 to 5 */
	/* Another snapshot of the same volume is other content. */
	{
		struct src s2 = {.snap = 4};

		CHECK_EQ_INT(read_check(c, &s2, size, 0, B, 0, size), 0);
		CHECK_EQ_INT(s2.calls, 1);
	}
	mx_bcache_get_stats(c, &st);
	CHECK_EQ_INT(st.capacity, 64 * B);
	CHECK_EQ_INT(st.used, 8 * B);
	CHECK_EQ_INT(st.fetched_bytes, 2 * B + 100 + 4 * B + B);
	CHECK_EQ_INT(st.hit_bytes, 2 * B + (B - 7));
	CHECK_EQ_INT(st.miss_bytes, 5000 + 100 + 3 * B + 7 + B);
	/* Bad arguments. */
	{
		struct mx_bcache_key k = {.pool = 1, .vol = 1, .snap = 1};
		uint8_t x[8];

		CHECK_EQ_INT(mx_bcache_read(c, &k, 8, x, 4, 8, 0, 8, fill, &s), -EINVAL);
	}
	mx_bcache_free(c);
}

static void test_readahead(void)
{
	struct mx_bcache *c = mx_bcache_new(256 * B);
	struct mx_bcache_stats st;
	struct src s = {.snap = 1};
	uint64_t size = 64 * B;

	/* A 4 KiB read with 16 blocks of read-ahead, limited at block 10. */
	CHECK_EQ_INT(read_check(c, &s, size, 2 * B, B, 16 * B, 10 * B), 0);
	CHECK_EQ_INT(s.bytes, 8 * B);
	CHECK_EQ_INT(s.calls, 1);
	/* Read ahead stops at a held block: blocks 10..11 only (12 is held
	 * after the next read). */
	CHECK_EQ_INT(read_check(c, &s, size, 12 * B, B, 0, size), 0);
	CHECK_EQ_INT(read_check(c, &s, size, 10 * B, B, 8 * B, size), 0);
	CHECK_EQ_INT(s.bytes, 8 * B + B + 2 * B);
	mx_bcache_get_stats(c, &st);
	CHECK_EQ_INT(st.readahead_bytes, 7 * B + B);
	CHECK_EQ_INT(st.miss_bytes, 3 * B);
	mx_bcache_free(c);
}

static void test_capacity_and_scan(void)
{
	struct mx_bcache *c = mx_bcache_new(32 * B);
	struct mx_bcache_stats st;
	struct src hot = {.snap = 1}, scan = {.snap = 2};
	uint64_t size = 1024 * B;

	/* 16 hot blocks, read twice (so protected). */
	for (int round = 0; round < 2; round++)
		CHECK_EQ_INT(read_check(c, &hot, size, 0, 16 * B, 0, size), 0);
	CHECK_EQ_INT(hot.bytes, 16 * B);
	/* A scan of 512 blocks read once, in reads of 8 blocks. */
	for (uint64_t off = 0; off < 512 * B; off += 8 * B) {
		CHECK_EQ_INT(read_check(c, &scan, size, off, 8 * B, 0, size), 0);
		mx_bcache_get_stats(c, &st);
		CHECK(st.used <= st.capacity);
	}
	/* The hot blocks are all still held. */
	CHECK_EQ_INT(read_check(c, &hot, size, 0, 16 * B, 0, size), 0);
	CHECK_EQ_INT(hot.bytes, 16 * B);
	mx_bcache_get_stats(c, &st);
	CHECK(st.evicted_bytes >= (512 - 16) * B);
	/* A read bigger than the whole cache still reads right. */
	CHECK_EQ_INT(read_check(c, &scan, size, 0, 100 * B, 0, size), 0);
	mx_bcache_get_stats(c, &st);
	CHECK(st.used <= st.capacity);
	mx_bcache_free(c);
}

static void test_failure(void)
{
	struct mx_bcache *c = mx_bcache_new(64 * B);
	struct mx_bcache_stats st;
	struct src s = {.snap = 9, .fail = 1};
	struct mx_bcache_key k = {.pool = 1, .vol = 0xabcdef, .snap = 9};
	uint8_t buf[B];

	CHECK_EQ_INT(mx_bcache_read(c, &k, 8 * B, buf, 0, B, 4 * B, 8 * B, fill, &s), -EIO);
	mx_bcache_get_stats(c, &st);
	CHECK_EQ_INT(st.used, 0);
	CHECK_EQ_INT(st.fetched_bytes, 0);
	CHECK_EQ_INT(read_check(c, &s, 8 * B, 0, B, 0, 8 * B), 0);
	CHECK_EQ_INT(s.calls, 2);
	mx_bcache_free(c);
}

struct reader {
	int idx;
	struct mx_bcache *c;
	struct src *s;
	int result;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;

	/* Overlapping reads of blocks 0 to 31, in different orders. */
	for (int i = 0; i < 8 && rd->result == 0; i++) {
		uint64_t off = (uint64_t)((i * 5 + rd->idx) % 25) * B;

		rd->result = read_check(rd->c, rd->s, 32 * B, off, 8 * B, 0, 32 * B);
	}
	return NULL;
}

static void test_single_flight(void)
{
	struct mx_bcache *c = mx_bcache_new(64 * B);
	struct mx_bcache_stats st;
	struct src s = {.snap = 5, .delay_us = 2000};
	struct reader rd[16];
	pthread_t th[16];

	for (int i = 0; i < 16; i++) {
		rd[i] = (struct reader){.idx = i, .c = c, .s = &s};
		CHECK_EQ_INT(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
	}
	for (int i = 0; i < 16; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ_INT(rd[i].result, 0);
	}
	for (int b = 0; b < 32; b++)
		CHECK_EQ_INT(s.per_block[b], 1);
	mx_bcache_get_stats(c, &st);
	CHECK_EQ_INT(st.fetched_bytes, 32 * B);
	CHECK(st.waits > 0);
	mx_bcache_free(c);

	/* A fetch others wait for fails: its reader and those waiting for it
	 * get the error (none fetches again in turn: that would make the last
	 * wait as many timeouts as there are readers); a later read reads
	 * right. */
	{
		struct src f = {.snap = 6, .delay_us = 2000, .fail = 1};
		int failed = 0;

		c = mx_bcache_new(64 * B);
		for (int i = 0; i < 16; i++) {
			rd[i] = (struct reader){.idx = 0, .c = c, .s = &f};
			CHECK_EQ_INT(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
		}
		for (int i = 0; i < 16; i++) {
			pthread_join(th[i], NULL);
			CHECK(rd[i].result == 0 || rd[i].result == -EIO);
			failed += rd[i].result == -EIO;
		}
		CHECK(failed >= 1);
		CHECK_EQ_INT(read_check(c, &f, 32 * B, 0, 8 * B, 0, 32 * B), 0);
		mx_bcache_free(c);
	}
}

int main(void)
{
	test_basic();
	test_readahead();
	test_capacity_and_scan();
	test_failure();
	test_single_flight();
	return mx_check_done("bcache");
}

/*
 * The snapshot cache's policies (client/cache.c, docs/vdi-cache.md), beyond
 * the unit test bcache: scans with read-ahead and in 512-byte reads leave
 * the protected segment alone; a huge capacity does not fail reads; the
 * waiters of a failing fetch take its error instead of retrying in turn; a
 * fetch failing for lack of memory lets its waiters fetch for themselves;
 * waits count blocks.  Each prints what it measures.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bcache_src.h"
#include "check.h"

/* 1. The scan of test_capacity_and_scan, but with read-ahead on (the
 * default, and what a sequential scan gets): do the 16 hot blocks stay? */
static void test_scan_with_readahead(void)
{
	struct mx_bcache *c = mx_bcache_new(32 * B);
	struct src hot = {.snap = 1}, scan = {.snap = 2};
	uint64_t size = 1024 * B;

	for (int round = 0; round < 2; round++)
		CHECK_EQ_INT(read_check(c, &hot, size, 0, 16 * B, 0, size), 0);
	for (uint64_t off = 0; off < 512 * B; off += B)
		CHECK_EQ_INT(read_check(c, &scan, size, off, B, 16 * B, size), 0);
	CHECK_EQ_INT(read_check(c, &hot, size, 0, 16 * B, 0, size), 0);
	printf("scan with read-ahead: hot blocks fetched again: %llu of 16\n",
	       (unsigned long long)(hot.bytes / B - 16));
	CHECK_EQ_INT(hot.bytes, 16 * B); /* fails: the scan flushed them */
	mx_bcache_free(c);
}

/* 2. The same scan in 512-byte reads (an NBD client's minimum), no
 * read-ahead: the second read of a block is its "second use". */
static void test_scan_small_reads(void)
{
	struct mx_bcache *c = mx_bcache_new(32 * B);
	struct src hot = {.snap = 1}, scan = {.snap = 2};
	uint64_t size = 1024 * B;

	for (int round = 0; round < 2; round++)
		CHECK_EQ_INT(read_check(c, &hot, size, 0, 16 * B, 0, size), 0);
	for (uint64_t off = 0; off < 512 * B; off += 512)
		CHECK_EQ_INT(read_check(c, &scan, size, off, 512, 0, size), 0);
	CHECK_EQ_INT(read_check(c, &hot, size, 0, 16 * B, 0, size), 0);
	printf("scan in 512-byte reads: hot blocks fetched again: %llu of 16\n",
	       (unsigned long long)(hot.bytes / B - 16));
	CHECK_EQ_INT(hot.bytes, 16 * B);
	mx_bcache_free(c);
}

/* 3. A large cache: the run array is sized by the capacity, not the read. */
static void test_huge_cache(void)
{
	struct mx_bcache *c = mx_bcache_new(1ull << 50); /* cache=1P */
	struct src s = {.snap = 3};

	CHECK(c != NULL);
	if (c) {
		int r = read_check(c, &s, 64 * B, 0, B, 0, 64 * B);

		printf("a 4 KiB read through a cache of 1 PiB: %d\n", r);
		CHECK_EQ_INT(r, 0); /* fails: -ENOMEM, every read */
		mx_bcache_free(c);
	}
}

/* 4. A fetch that keeps failing (every OSD down, op_timeout): each of n
 * readers waiting for the block fetches again in turn, so the last one
 * waits n fetch timeouts, not one. */
struct th {
	struct mx_bcache *c;
	struct src *s;
	int r;
	double secs;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *th_main(void *arg)
{
	struct th *t = arg;
	double t0 = now();

	t->r = read_check(t->c, t->s, 64 * B, 0, B, 0, 64 * B);
	t->secs = now() - t0;
	return NULL;
}

static void test_failing_fetch_latency(void)
{
	struct mx_bcache *c = mx_bcache_new(64 * B);
	struct src s = {.snap = 4, .delay_us = 100000, .fail = -1}; /* 0.1 s "timeout" */
	struct th t[8];
	pthread_t th[8];
	double worst = 0;

	for (int i = 0; i < 8; i++) {
		t[i] = (struct th){.c = c, .s = &s};
		CHECK_EQ_INT(pthread_create(&th[i], NULL, th_main, &t[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ_INT(t[i].r, -EIO);
		if (t[i].secs > worst)
			worst = t[i].secs;
	}
	printf("8 readers of a block whose fetch fails after 0.1 s: %u fetches, slowest "
	       "reader %.2f s\n", (unsigned)s.calls, worst);
	CHECK(worst < 0.3); /* fails: about 0.8 s */
	mx_bcache_free(c);
}

/* 5. waits counts wake-ups, not blocks: a reader waiting for one block is
 * woken by every other fetch that ends meanwhile. */
static void *slow_main(void *arg)
{
	struct th *t = arg;

	t->r = read_check(t->c, t->s, 64 * B, 0, B, 0, 64 * B);
	return NULL;
}

static void test_waits_count(void)
{
	struct mx_bcache *c = mx_bcache_new(64 * B);
	struct src slow = {.snap = 5, .delay_us = 300000}, quick = {.snap = 6, .delay_us = 20000};
	struct th a = {.c = c, .s = &slow}, b = {.c = c, .s = &slow};
	pthread_t ta, tb;
	struct mx_bcache_stats st;

	CHECK_EQ_INT(pthread_create(&ta, NULL, slow_main, &a), 0);
	usleep(50000);
	CHECK_EQ_INT(pthread_create(&tb, NULL, slow_main, &b), 0); /* waits for ta */
	usleep(20000);
	for (int i = 0; i < 5; i++)
		CHECK_EQ_INT(read_check(c, &quick, 64 * B, (uint64_t)i * B, B, 0, 64 * B), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	mx_bcache_get_stats(c, &st);
	printf("one block read waited for: waits = %llu\n", (unsigned long long)st.waits);
	CHECK_EQ_INT(st.waits, 1); /* fails: 6 */
	mx_bcache_free(c);
}

/* 6. A fetch others wait for fails with -ENOMEM (the fetcher's own lack
 * of memory): the waiters fetch for themselves and read right. */
static void test_enomem_waiters(void)
{
	struct mx_bcache *c = mx_bcache_new(64 * B);
	struct src s = {.snap = 7, .delay_us = 50000, .fail = 1, .err = -ENOMEM};
	struct th t[6];
	pthread_t th[6];
	int failed = 0;

	for (int i = 0; i < 6; i++) {
		t[i] = (struct th){.c = c, .s = &s};
		CHECK_EQ_INT(pthread_create(&th[i], NULL, th_main, &t[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		CHECK(t[i].r == 0 || t[i].r == -ENOMEM);
		failed += t[i].r != 0;
	}
	CHECK_EQ_INT(failed, 1);
	mx_bcache_free(c);
}

int main(void)
{
	test_scan_with_readahead();
	test_scan_small_reads();
	test_huge_cache();
	test_failing_fetch_latency();
	test_waits_count();
	test_enomem_waiters();
	return mx_check_done("bcache_policy");
}

/*
 * Many objects: write N (default 10,000) objects of random sizes from 0 to
 * 4 MiB through the asynchronous API, read every one back byte for byte,
 * then stop the cluster and check offline that each object's replicas sit
 * in distinct failure domains (hosts) and are identical.
 *
 * Sizes: every edge size (0, 1, 4095, 4096, 4097, 4 MiB) and otherwise
 * log-uniform over 0..4 MiB, so small and large objects both occur in
 * number.  MIXSAN_TEST_OBJECTS overrides N.  Six OSDs on three hosts.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <signal.h>

#include "harness.h"
#include "internal.h"
#include "map.h"

#define MAX_SIZE (4u << 20)
#define QD 16

struct slot {
	mixsan_completion_t *c;
	uint8_t *buf;
	int idx;
};

static uint32_t size_of(uint64_t seed, int i)
{
	static const uint32_t edges[] = {0, 1, 4095, 4096, 4097, MAX_SIZE};
	uint64_t s = seed ^ ((uint64_t)i * 0x9e3779b97f4a7c15ull);
	double u;

	if ((size_t)i < sizeof(edges) / sizeof(edges[0]))
		return edges[i];
	u = (double)(h_rand(&s) >> 11) / 9007199254740992.0;
	return (uint32_t)(exp(u * log((double)MAX_SIZE + 1.0)) - 1.0);
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	struct slot slots[QD];
	uint64_t seed = (uint64_t)time(NULL);
	const char *env = getenv("MIXSAN_TEST_OBJECTS");
	int n = env ? atoi(env) : 10000;
	uint64_t total = 0, checked = 0;
	uint8_t *expect;
	double t0;

	if (getenv("MIXSAN_TEST_SEED"))
		seed = strtoull(getenv("MIXSAN_TEST_SEED"), NULL, 10);
	fprintf(stderr, "objects: %d objects, seed %llu (MIXSAN_TEST_SEED replays)\n", n,
		(unsigned long long)seed);
	memset(&c, 0, sizeof(c));
	for (int i = 0; i < 6; i++) {
		char loc[64];

		snprintf(loc, sizeof(loc), "host=h%d", i / 2);
		h_set_location(&c, i, loc);
	}
	h_start(&c, 6);
	cl = h_connect(&c);
	h_pool_create(cl, "objects", 3, 128, "host");
	if (mixsan_pool_open(cl, "objects", &p) < 0)
		H_FATAL("pool open");
	for (int k = 0; k < QD; k++) {
		slots[k].buf = malloc(MAX_SIZE);
		slots[k].c = NULL;
		slots[k].idx = -1;
	}
	expect = malloc(MAX_SIZE);
	t0 = (double)clock_gettime(CLOCK_MONOTONIC, &(struct timespec){0});

	/* Write phase: QD requests in flight. */
	for (int i = 0, k = 0; i < n + QD; i++, k = (k + 1) % QD) {
		struct slot *s = &slots[k];
		char name[32];

		if (s->c) {
			int64_t r = mixsan_completion_wait(s->c);

			if (r != 0) {
				fprintf(stderr, "write of obj.%d failed: %s\n", s->idx,
					strerror((int)-r));
				h_failures++;
			}
			mixsan_completion_release(s->c);
			s->c = NULL;
		}
		if (i >= n)
			continue;
		s->idx = i;
		total += size_of(seed, i);
		h_fill(seed + (uint64_t)i, s->buf, size_of(seed, i));
		snprintf(name, sizeof(name), "obj.%d", i);
		mixsan_completion_create(NULL, NULL, &s->c);
		if (mixsan_aio_write_full(p, name, s->c, s->buf, size_of(seed, i)) < 0)
			H_FATAL("submit");
	}
	fprintf(stderr, "objects: wrote %d objects, %llu bytes\n", n,
		(unsigned long long)total);

	/* Read phase. */
	for (int i = 0, k = 0; i < n + QD; i++, k = (k + 1) % QD) {
		struct slot *s = &slots[k];
		char name[32];

		if (s->c) {
			int64_t r = mixsan_completion_wait(s->c);
			uint32_t sz = size_of(seed, s->idx);

			h_fill(seed + (uint64_t)s->idx, expect, sz);
			if (r != (int64_t)sz || memcmp(expect, s->buf, sz) != 0) {
				fprintf(stderr, "obj.%d: read %lld of %u bytes, %s\n", s->idx,
					(long long)r, sz, r == (int64_t)sz ? "content differs" : "");
				h_failures++;
			}
			mixsan_completion_release(s->c);
			s->c = NULL;
		}
		if (i >= n)
			continue;
		s->idx = i;
		snprintf(name, sizeof(name), "obj.%d", i);
		mixsan_completion_create(NULL, NULL, &s->c);
		if (mixsan_aio_read(p, name, s->c, s->buf, MAX_SIZE, 0) < 0)
			H_FATAL("submit");
	}
	fprintf(stderr, "objects: read back and compared %d objects\n", n);

	/* Offline: stop the OSDs, then compare every replica. */
	{
		int problems = h_shutdown_check_replicas(&c, cl, p, &checked);

		fprintf(stderr, "objects: %llu objects checked on every replica, %d problems\n",
			(unsigned long long)checked, problems);
		H_CHECK(problems == 0);
		H_CHECK(checked == (uint64_t)n);
	}
	for (int k = 0; k < QD; k++)
		free(slots[k].buf);
	free(expect);
	(void)t0;
	h_stop(&c);
	fprintf(stderr, "objects: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

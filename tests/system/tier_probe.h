/*
 * What the cache-tiering probes share (test_tier_cleansrc.c,
 * test_tier_flushorder.c): pool handles and the cache object's state read
 * raw.  Static functions: include once per test.
 */
#ifndef MX_TEST_TIER_PROBE_H
#define MX_TEST_TIER_PROBE_H

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

/* After harness.h, internal.h, msg.h and tier.h. */

static mixsan_pool_t *open_raw(mixsan_cluster_t *cl, const char *name, mixsan_pool_t **tiered)
{
	mixsan_pool_t *p, *raw;

	if (mixsan_pool_open(cl, name, &p) < 0)
		H_FATAL("pool open %s", name);
	if (mx_client_pool_open_raw(cl, mixsan_pool_id(p), &raw) < 0)
		H_FATAL("raw pool open %s", name);
	if (tiered)
		*tiered = p;
	else
		mixsan_pool_close(p);
	return raw;
}

/* The raw cache object's state: 1 present, 0 stub (exists, no _tier.p),
 * -1 absent; *dirty says whether _tier.d is set. */
static int cache_state(mixsan_pool_t *craw, const char *oid, bool *dirty)
{
	struct mx_osd_op pr[2] = {mx_op(MX_OP_GETXATTR, MX_TIER_P),
				  mx_op(MX_OP_GETXATTR, MX_TIER_D)};
	struct mx_client_read_result r;
	int e = mx_client_read_ops(craw, oid, pr, 2, &r), s;

	if (e == -ENOENT)
		return -1;
	if (e < 0)
		H_FATAL("cache state of %s: %s", oid, strerror(-e));
	s = r.ops[0].rval == 0 && r.ops[0].len == 1 && *(char *)r.ops[0].data == '1';
	if (dirty)
		*dirty = r.ops[1].rval == 0;
	mx_client_read_result_free(&r);
	return s;
}

/* Wait (at most timeout_s) until the cache copy of oid is in state want
 * (1 present and clean, 0 stub). */
static bool wait_state(mixsan_pool_t *craw, const char *oid, int want, int timeout_s)
{
	for (int t = 0; t < timeout_s * 10; t++) {
		bool dirty = false;
		int s = cache_state(craw, oid, &dirty);

		if (s == want && !dirty)
			return true;
		usleep(100000);
	}
	return false;
}

#endif

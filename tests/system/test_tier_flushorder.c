/*
 * Cache tiering (docs/cache-tiering.md, "The agent"): a late flush of an
 * older copy after a flushed removal.  Two agents may act on one object
 * when a cache PG's primary changes in the middle of a pass.  Agent A reads
 * a dirty copy at version W1 and is held up before its base write;
 * meanwhile the object is removed through the tier, and the new primary's
 * agent flushes the removal (the base object goes, and its _tier.ver with
 * it).  A's base write, exactly as osd/agent.c's base_write sends it, then
 * arrives, within the flush's 2 s bound, and brings the object back in the
 * base.  The removed copy keeps answering ENOENT meanwhile, and the agent,
 * which evicts a removed copy only 10 s after its flush and only while the
 * base object is gone, finds it back and flushes the removal again before
 * it evicts: the object stays removed.  (A write later than the 2 s bound
 * is the timing assumption of docs/cache-tiering.md.)
 *
 * A's request is sent here by the test itself, built as base_write builds
 * it, from the flush read it would have made (osd/agent.c, flush_one), at
 * the same map epoch (no tier change in between).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "msg.h"
#include "tier.h"
#include "tier_probe.h"

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p, *braw, *craw;
	const char *add[] = {"base", "fbase", "cache", "fhot", "force", "1"};
	const char *md[] = {"pool", "fhot", "mode", "writeback"};
	const char *oid = "resurrect";
	struct mx_osd_op rd[6] = {mx_op(MX_OP_GETXATTR, MX_TIER_P), mx_op(MX_OP_GETXATTR, MX_TIER_D),
				  mx_op(MX_OP_GETXATTR, MX_TIER_RM), mx_op(MX_OP_STAT, NULL),
				  mx_op(MX_OP_LISTXATTRS, NULL), mx_op(MX_OP_READ, NULL)};
	struct mx_client_read_result a; /* agent A's flush read */
	struct mx_osd_op q[8];
	uint8_t wbe[16];
	char buf[64];
	unsigned k;
	int64_t n;
	int e;

	memset(&c, 0, sizeof(c));
	snprintf(c.osd_args, sizeof(c.osd_args), "--agent-interval 200");
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "fbase", 3, 8, "osd");
	h_pool_create(cl, "fhot", 3, 8, "osd");
	h_cmd(cl, "pool tier add", add, 3);
	h_cmd(cl, "pool tier mode", md, 2);
	braw = open_raw(cl, "fbase", &p);
	craw = open_raw(cl, "fhot", NULL);

	/* v0 in the base by a flush (its _tier.ver set), the copy evicted. */
	H_CHECK(mixsan_write_full(p, oid, "v0", 2) == 0);
	h_pool_set(cl, "fhot", "target_max_objects", "1");
	H_CHECK(wait_state(craw, oid, 0, 20));
	h_pool_set(cl, "fhot", "target_max_objects", "0");
	n = mixsan_getxattr(braw, oid, MX_TIER_VER, buf, sizeof(buf));
	fprintf(stderr, "flushorder: v0 flushed, base _tier.ver %s\n",
		n == 16 ? "set" : "absent");
	H_CHECK(n == 16);

	/* v1: a dirty copy (no targets now: the agents leave it). */
	H_CHECK(mixsan_write_full(p, oid, "v1", 2) == 0);
	{
		bool dirty = false;

		H_CHECK(cache_state(craw, oid, &dirty) == 1 && dirty);
	}
	/* Agent A's flush read of it (flush_one): version W1. */
	rd[5].len = 4u << 20;
	e = mx_client_read_ops(craw, oid, rd, 6, &a);
	H_CHECK(e == 0);
	if (e != 0)
		H_FATAL("flush read: %s", strerror(-e));
	mx_client_version_be(&a.ver, wbe);
	H_CHECK(a.ops[1].rval == 0 && a.ops[5].len == 2);

	/* The object removed through the tier (acknowledged), and the removal
	 * flushed by "agent B" (the agents, by targets); a removed copy is
	 * evicted only RM_EVICT_AFTER_NS (10 s) later. */
	H_CHECK(mixsan_remove(p, oid) == 0);
	h_pool_set(cl, "fhot", "target_max_objects", "1");
	H_CHECK(wait_state(craw, oid, 1, 20));
	n = mixsan_read(braw, oid, buf, sizeof(buf), 0);
	fprintf(stderr, "flushorder: after the removal's flush, base read: %lld\n", (long long)n);
	H_CHECK(n == -ENOENT);
	n = mixsan_read(p, oid, buf, sizeof(buf), 0);
	fprintf(stderr, "flushorder: through the tier before A's write: %lld\n", (long long)n);
	H_CHECK(n == -ENOENT);

	/* A's base write arrives now (base_write, attempt 0 then 1). */
	for (int attempt = 0; attempt < 2; attempt++) {
		k = 0;
		q[k++] = mx_op_guard(MX_CMP_LT, MX_TIER_VER, wbe, 16);
		if (attempt == 0)
			q[k++] = mx_op(MX_OP_REMOVE, NULL);
		q[k] = mx_op(MX_OP_CREATE, NULL);
		if (attempt == 1)
			q[k].flags = MX_OP_FLAG_EXCL;
		k++;
		q[k] = mx_op(MX_OP_WRITEFULL, NULL);
		q[k].data = a.ops[5].data;
		q[k++].data_len = a.ops[5].len;
		q[k++] = mx_op_setx(MX_TIER_VER, wbe, 16);
		e = mx_client_write_ops(braw, oid, q, k, NULL);
		if (e != -ENOENT && e != -EEXIST)
			break;
	}
	fprintf(stderr, "flushorder: agent A's late base write of W1: %s\n",
		e == 0 ? "accepted" : strerror(-e));
	/* It lands (the base object was gone, so its _tier.ver too): within
	 * the flush's 2 s read bound, before the eviction.  The removed copy
	 * still answers; the agent finds the base object back before it
	 * evicts, flushes the removal again, then evicts. */
	n = mixsan_read(p, oid, buf, sizeof(buf), 0);
	fprintf(stderr, "flushorder: read through the tier after the acknowledged removal: "
		"%lld%s%.*s\n", (long long)n, n > 0 ? " bytes: " : "", n > 0 ? (int)n : 0, buf);
	H_CHECK(n == -ENOENT);
	H_CHECK(wait_state(craw, oid, 0, 60));
	n = mixsan_read(braw, oid, buf, sizeof(buf), 0);
	fprintf(stderr, "flushorder: evicted; base read: %lld\n", (long long)n);
	H_CHECK(n == -ENOENT);
	n = mixsan_read(p, oid, buf, sizeof(buf), 0);
	fprintf(stderr, "flushorder: through the tier: %lld\n", (long long)n);
	H_CHECK(n == -ENOENT);
	h_pool_set(cl, "fhot", "target_max_objects", "0");

	mx_client_read_result_free(&a);
	mixsan_pool_close(p);
	mixsan_pool_close(braw);
	mixsan_pool_close(craw);
	mixsan_shutdown(cl);
	h_stop(&c);
	fprintf(stderr, "flushorder: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

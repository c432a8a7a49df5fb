/*
 * Cache tiering (docs/cache-tiering.md), invariant 4: "every eviction ...
 * records the base's newest version in _tier.src first", so that a
 * promotion that read the base before a newer flush cannot install its
 * older content afterwards (the install is guarded CMP_LE _tier.src B).
 *
 * The flush of a dirty copy whose base write an earlier flush already made
 * (agent A wrote the base, then died before marking the copy clean) finds
 * the base as new (ECANCELED) and marks the copy clean.  Checked here: the
 * copy then records the base's version (B2), so that after its eviction a
 * promotion that read the base at the older B1 ("v1") is refused, and reads
 * return "v2", the last acknowledged write.
 *
 * Agent A's base write and the late promotion's install are sent by the
 * test, built as osd/agent.c's base_write and client/tier.c's promote build
 * them; the flush that finds the base as new and the eviction are the
 * agents' own.
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
	const char *add[] = {"base", "sbase", "cache", "shot", "force", "1"};
	const char *md[] = {"pool", "shot", "mode", "writeback"};
	const char *oid = "stalesrc";
	struct mx_osd_op rd[6] = {mx_op(MX_OP_GETXATTR, MX_TIER_P), mx_op(MX_OP_GETXATTR, MX_TIER_D),
				  mx_op(MX_OP_GETXATTR, MX_TIER_RM), mx_op(MX_OP_STAT, NULL),
				  mx_op(MX_OP_LISTXATTRS, NULL), mx_op(MX_OP_READ, NULL)};
	struct mx_osd_op brd[2] = {mx_op(MX_OP_STAT, NULL), mx_op(MX_OP_READ, NULL)};
	struct mx_client_read_result a, b1;
	struct mx_client_version b2;
	struct mx_osd_op q[8];
	uint8_t wbe[16], b1be[16], b2be[16], src[16];
	char buf[64];
	unsigned k;
	int64_t n;
	int e;

	memset(&c, 0, sizeof(c));
	snprintf(c.osd_args, sizeof(c.osd_args), "--agent-interval 200");
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "sbase", 3, 8, "osd");
	h_pool_create(cl, "shot", 3, 8, "osd");
	h_cmd(cl, "pool tier add", add, 3);
	h_cmd(cl, "pool tier mode", md, 2);
	braw = open_raw(cl, "sbase", &p);
	craw = open_raw(cl, "shot", NULL);

	/* v1 flushed to the base (B1) and evicted: a stub. */
	H_CHECK(mixsan_write_full(p, oid, "v1", 2) == 0);
	h_pool_set(cl, "shot", "target_max_objects", "1");
	H_CHECK(wait_state(craw, oid, 0, 20));
	h_pool_set(cl, "shot", "target_max_objects", "0");
	/* Promoter P's base read now: "v1" at B1 (its cache read saw the stub). */
	brd[1].len = 1024;
	H_CHECK(mx_client_read_ops(braw, oid, brd, 2, &b1) == 0);
	mx_client_version_be(&b1.ver, b1be);

	/* v2: promoted again (from B1) and written: dirty. */
	H_CHECK(mixsan_write_full(p, oid, "v2", 2) == 0);
	/* Agent A: its flush read, and its base write (then it dies). */
	rd[5].len = 4u << 20;
	H_CHECK(mx_client_read_ops(craw, oid, rd, 6, &a) == 0);
	H_CHECK(a.ops[1].rval == 0);
	mx_client_version_be(&a.ver, wbe);
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
		e = mx_client_write_ops(braw, oid, q, k, &b2);
		if (e != -ENOENT && e != -EEXIST)
			break;
	}
	H_CHECK(e == 0);
	mx_client_version_be(&b2, b2be);

	/* The agents: the flush finds the base as new; clean; evicted. */
	h_pool_set(cl, "shot", "target_max_objects", "1");
	H_CHECK(wait_state(craw, oid, 0, 20));
	h_pool_set(cl, "shot", "target_max_objects", "0");
	n = mixsan_getxattr(craw, oid, MX_TIER_SRC, (char *)src, sizeof(src));
	fprintf(stderr, "cleansrc: the stub's _tier.src is %s\n",
		n != 16 ? "absent" : memcmp(src, b2be, 16) == 0 ? "B2 (the base's newest)"
				   : memcmp(src, b1be, 16) == 0 ? "B1 (older than the base)"
								: "other");
	H_CHECK(n == 16 && memcmp(src, b2be, 16) >= 0);

	/* P's install arrives now. */
	k = 0;
	q[k++] = mx_op_guard(MX_CMP_EQ, MX_TIER_P, "", 0);
	q[k++] = mx_op_guard(MX_CMP_LE, MX_TIER_SRC, b1be, 16);
	q[k] = mx_op(MX_OP_WRITEFULL, NULL);
	q[k].data = b1.ops[1].data;
	q[k++].data_len = b1.ops[1].len;
	q[k++] = mx_op_setx(MX_TIER_P, "1", 1);
	q[k++] = mx_op_setx(MX_TIER_SRC, b1be, 16);
	e = mx_client_write_ops(craw, oid, q, k, NULL);
	fprintf(stderr, "cleansrc: the late install of v1 (read at B1): %s\n",
		e == 0 ? "accepted" : strerror(-e));
	n = mixsan_read(p, oid, buf, sizeof(buf), 0);
	fprintf(stderr, "cleansrc: read through the tier: %lld bytes: %.*s\n", (long long)n,
		n > 0 ? (int)n : 0, buf);
	H_CHECK(e == -ECANCELED);
	H_CHECK(n == 2 && memcmp(buf, "v2", 2) == 0);

	mx_client_read_result_free(&a);
	mx_client_read_result_free(&b1);
	mixsan_pool_close(p);
	mixsan_pool_close(braw);
	mixsan_pool_close(craw);
	mixsan_shutdown(cl);
	h_stop(&c);
	fprintf(stderr, "cleansrc: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

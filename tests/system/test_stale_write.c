/*
 * A write that reaches its primary late, after the PG moved on, is refused
 * and changes nothing (docs/osd.md, "Late copies").
 *
 * The late copy is played by a raw connection: a request is encoded under
 * the map of one moment and sent only later, after its "resend" (same
 * client id and tid, the current map) was answered with an error, which
 * leaves no log entry, and after a newer write was acknowledged.  Twice:
 *   1. the primary is marked out (another OSD leads), the request is resent
 *      there, the primary comes back in and leads again; the late copy then
 *      reaches it (what the host_cut rig test once saw with a cut link);
 *   2. a replica is marked out (the primary stays; a new interval).
 * Each time the late copy must be answered ESTALE and the newer attribute
 * must read back; a copy with the current map is served as usual.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "map.h"
#include "msg.h"
#include "util.h"

#define CLIENT_ID 4242ull

static mixsan_cluster_t *g_cl;
static int64_t g_pool_id;

/* Send op as (CLIENT_ID, tid) to the OSD at addr on a fresh connection:
 * the reply's status as an errno (0, -ESTALE...) or a negative transport
 * error (-EPROTO for an unexpected answer). */
static int raw_op(const char *addr, uint64_t tid, const struct mx_msg_osd_op *op)
{
	struct mx_msg_osd_op_reply rep;
	struct mx_msg_hdr h;
	uint8_t *payload;
	struct mx_wbuf w;
	int r;

	mx_wbuf_init(&w);
	mx_enc_osd_op(&w, op);
	r = h_raw_request(addr, MX_MSG_OSD_OP, tid, &w, &h, &payload);
	mx_wbuf_free(&w);
	if (r == 0 && (h.type != MX_MSG_OSD_OP_REPLY || h.tid != tid ||
		       mx_dec_osd_op_reply(payload, h.len, &rep) < 0))
		r = -EPROTO;
	else if (r == 0)
		r = mx_wire_to_errno(rep.status);
	free(payload);
	return r;
}

/* An rmxattr of name on oid under the client's current map. */
static void rmxattr_op(struct mx_msg_osd_op *op, const char *oid, const char *name)
{
	uint32_t pg = 0;
	int32_t acting[3];

	memset(op, 0, sizeof(*op));
	H_CHECK(mx_client_locate(g_cl, g_pool_id, oid, &pg, acting, 3) > 0);
	op->epoch = mixsan_map_epoch(g_cl);
	op->pool = (int32_t)g_pool_id;
	op->pg = pg;
	op->client_id = CLIENT_ID;
	op->name = oid;
	op->name_len = (uint32_t)strlen(oid);
	op->n_ops = 1;
	op->ops[0].op = MX_OP_RMXATTR;
	op->ops[0].xname = name;
}

/* The primary of oid and its address in the client's map. */
static int primary_of(const char *oid, char *addr, size_t sz)
{
	struct mx_map *m = mx_client_map_copy(g_cl);
	int32_t acting[3];
	uint32_t pg;
	int n = mx_client_locate(g_cl, g_pool_id, oid, &pg, acting, 3);

	if (!m || n <= 0) {
		mx_map_free(m);
		return -1;
	}
	if (addr)
		snprintf(addr, sz, "%s", mx_map_osd(m, acting[0])->addr);
	mx_map_free(m);
	return acting[0];
}

static int osd_command(const char *cmd, int id)
{
	char ids[16], *msg = NULL;
	const char *kv[] = {"id", ids};
	int r;

	snprintf(ids, sizeof(ids), "%d", id);
	r = mixsan_mon_command(g_cl, cmd, kv, 1, &msg);
	if (r < 0)
		fprintf(stderr, "stale_write: %s %d: %s (%s)\n", cmd, id, strerror(-r),
			msg ? msg : "");
	free(msg);
	return r;
}

/* Send the "resend" with the current map until the PG serves it (it may
 * be peering): its final answer. */
static int resend(const char *oid, const char *xname, uint64_t tid)
{
	struct mx_msg_osd_op op;
	char addr[MX_ADDR_MAX];
	int r = -EAGAIN;

	for (int i = 0; i < 200 && (r == -EAGAIN || r == -ESTALE); i++) {
		if (i)
			usleep(50 * 1000);
		rmxattr_op(&op, oid, xname);
		if (primary_of(oid, addr, sizeof(addr)) < 0)
			continue;
		r = raw_op(addr, tid, &op);
	}
	return r;
}

/* Wait until the client's map makes osd the primary of oid (want) or not
 * (!want). */
static bool wait_primary(const char *oid, int osd, bool want)
{
	for (int i = 0; i < 600; i++) {
		if ((primary_of(oid, NULL, 0) == osd) == want)
			return true;
		usleep(50 * 1000);
	}
	return false;
}

static void check_xattr(mixsan_pool_t *p, const char *oid, const char *xname, const char *want)
{
	char buf[64] = "";
	int r = mixsan_getxattr(p, oid, xname, buf, sizeof(buf) - 1);

	fprintf(stderr, "stale_write: %s %s: %d '%s'\n", oid, xname, r, r > 0 ? buf : "");
	H_CHECK(r == (int)strlen(want) && memcmp(buf, want, strlen(want)) == 0);
}

int main(void)
{
	struct h_cluster c;
	mixsan_pool_t *p;
	struct mx_msg_osd_op late;
	char addr[MX_ADDR_MAX], why[256];
	const char *oid = "late";
	int prim, replica = -1, r;

	memset(&c, 0, sizeof(c));
	h_start(&c, 3);
	g_cl = h_connect(&c);
	h_pool_create(g_cl, "sw", 3, 8, "osd");
	if (mixsan_pool_open(g_cl, "sw", &p) < 0)
		H_FATAL("pool open");
	g_pool_id = mixsan_pool_id(p);
	H_CHECK(mixsan_write_full(p, oid, "v1", 2) == 0);

	/* 1. The primary moves away and comes back. */
	prim = primary_of(oid, addr, sizeof(addr));
	H_CHECK(prim >= 0);
	rmxattr_op(&late, oid, "x"); /* held back from now on */
	fprintf(stderr, "stale_write: late copy made at epoch %llu for osd.%d\n",
		(unsigned long long)late.epoch, prim);
	H_CHECK(osd_command("osd out", prim) == 0);
	H_CHECK(wait_primary(oid, prim, false));
	r = resend(oid, "x", 1);
	fprintf(stderr, "stale_write: resend at osd.%d: %s\n", primary_of(oid, NULL, 0),
		strerror(-r));
	H_CHECK(r == -ENODATA);
	H_CHECK(osd_command("osd in", prim) == 0);
	H_CHECK(wait_primary(oid, prim, true));
	r = h_wait_health_ok(g_cl, 60, why, sizeof(why));
	if (r < 0)
		fprintf(stderr, "stale_write: not healthy: %s\n", why);
	H_CHECK(r == 0);
	H_CHECK(mixsan_setxattr(p, oid, "x", "kept", 4) == 0);
	r = raw_op(addr, 1, &late);
	fprintf(stderr, "stale_write: late copy at osd.%d: %s\n", prim, strerror(-r));
	H_CHECK(r == -ESTALE);
	check_xattr(p, oid, "x", "kept");

	/* 2. A replica leaves: same primary, new interval. */
	{
		int32_t acting[3];
		uint32_t pg;
		int n = mx_client_locate(g_cl, g_pool_id, oid, &pg, acting, 3);

		for (int i = 1; i < n; i++)
			replica = acting[i];
	}
	H_CHECK(replica >= 0 && replica != prim);
	rmxattr_op(&late, oid, "y");
	H_CHECK(osd_command("osd out", replica) == 0);
	for (int i = 0; i < 600 && mixsan_map_epoch(g_cl) == late.epoch; i++)
		usleep(50 * 1000);
	r = resend(oid, "y", 2);
	H_CHECK(r == -ENODATA);
	H_CHECK(primary_of(oid, NULL, 0) == prim);
	H_CHECK(mixsan_setxattr(p, oid, "y", "kept", 4) == 0);
	r = raw_op(addr, 2, &late);
	fprintf(stderr, "stale_write: late copy at osd.%d after osd.%d left: %s\n", prim,
		replica, strerror(-r));
	H_CHECK(r == -ESTALE);
	check_xattr(p, oid, "y", "kept");
	/* The same request under the current map is served: the refusal is
	 * about the map it was sent under, nothing else. */
	rmxattr_op(&late, oid, "y");
	r = raw_op(addr, 3, &late);
	H_CHECK(r == 0);
	H_CHECK(mixsan_getxattr(p, oid, "y", why, sizeof(why)) == -ENODATA);
	H_CHECK(osd_command("osd in", replica) == 0);
	r = h_wait_health_ok(g_cl, 60, why, sizeof(why));
	H_CHECK(r == 0);

	mixsan_pool_close(p);
	mixsan_shutdown(g_cl);
	h_stop(&c);
	fprintf(stderr, "stale_write: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

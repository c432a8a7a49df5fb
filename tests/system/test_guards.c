/*
 * Ordered guards and versioned requests (docs/protocol.md), on three OSDs:
 *   1. each ordered comparison (LT, LE, GT, GE) below, at and above the
 *      attribute's value: the write is applied where it holds, refused with
 *      ECANCELED where it does not, and then the object is unchanged (data,
 *      attributes and version, read in one request);
 *   2. an absent attribute, or an absent object, is below every operand;
 *   3. malformed guards are EINVAL and change nothing: an attribute of
 *      another length than the operand, an empty operand, unknown flag bits
 *      or comparisons, even behind a guard that does not hold;
 *   4. 16-byte big-endian versions order like (epoch, seq): the forward-only
 *      update of cache tiering (docs/cache-tiering.md) takes newer versions
 *      and refuses the same or older ones;
 *   5. a read request returns data, attributes and the object's version at
 *      once; the version grows with every write and is the one the write
 *      returned; an absent object is ENOENT, a write op in it EINVAL;
 *   6. a request refused by one of its guards says which one failed (the
 *      index of the first guard the OSD answered ECANCELED), and -1 when
 *      it succeeds or fails otherwise;
 *   7. with the primary killed (kill -9), a guarded write and a read request
 *      issued at once are resent to the next primary once the map changes,
 *      and still agree on the version.
 * Then every replica must hold the same objects.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "map.h"
#include "msg.h"
#include "util.h"

static const uint32_t cmps[] = {MX_CMP_LT, MX_CMP_LE, MX_CMP_GT, MX_CMP_GE};
static const char *const cmp_names[] = {"LT", "LE", "GT", "GE"};

/* An object as one read request sees it: data, attribute list, version. */
struct snap {
	int r;
	struct mx_client_read_result res;
};

static void snap_take(mixsan_pool_t *p, const char *oid, struct snap *s)
{
	struct mx_osd_op ops[3] = {
		{.op = MX_OP_READ, .off = 0, .len = 1 << 20},
		{.op = MX_OP_LISTXATTRS},
		{.op = MX_OP_STAT},
	};

	s->r = mx_client_read_ops(p, oid, ops, 3, &s->res);
}

static bool snap_same(const struct snap *a, const struct snap *b)
{
	if (a->r != b->r)
		return false;
	if (a->r < 0)
		return true;
	if (a->res.ver.epoch != b->res.ver.epoch || a->res.ver.seq != b->res.ver.seq ||
	    a->res.n != b->res.n)
		return false;
	for (unsigned i = 0; i < a->res.n; i++)
		if (a->res.ops[i].rval != b->res.ops[i].rval ||
		    a->res.ops[i].len != b->res.ops[i].len ||
		    memcmp(a->res.ops[i].data, b->res.ops[i].data, a->res.ops[i].len) != 0)
			return false;
	return true;
}

/* Run ops on oid and check the result; when it is an error, check that the
 * object did not change. */
static void expect(mixsan_pool_t *p, const char *oid, const struct mx_osd_op *ops, unsigned n,
		   int want, const char *what)
{
	struct snap before, after;
	int r;

	snap_take(p, oid, &before);
	r = mx_client_write_ops(p, oid, ops, n, NULL);
	snap_take(p, oid, &after);
	if (r != want)
		fprintf(stderr, "guards: %s on %s: %s, expected %s\n", what, oid, strerror(-r),
			strerror(-want));
	H_CHECK(r == want);
	if (want < 0 && !snap_same(&before, &after)) {
		fprintf(stderr, "guards: %s on %s changed the object\n", what, oid);
		H_CHECK(false);
	}
	mx_client_read_result_free(&before.res);
	mx_client_read_result_free(&after.res);
}

static int getx(mixsan_pool_t *p, const char *oid, const char *name, char *buf, size_t sz)
{
	int r = mixsan_getxattr(p, oid, name, buf, sz - 1);

	buf[r > 0 ? r : 0] = '\0';
	return r;
}

/* 1. Each comparison against a one-byte value "5". */
static void test_ordered(mixsan_pool_t *p)
{
	static const char *const operands[] = {"4", "5", "6"};
	/* want[operand][cmp]: value 5 OP operand */
	static const int holds[3][4] = {{0, 0, 1, 1}, {0, 1, 0, 1}, {1, 1, 0, 0}};
	const char *oid = "ordered";
	char buf[64], tag[32];

	H_CHECK(mixsan_write_full(p, oid, "payload", 7) == 0);
	H_CHECK(mixsan_setxattr(p, oid, "v", "5", 1) == 0);
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 4; j++) {
			struct mx_osd_op ops[3];
			char what[64];

			snprintf(tag, sizeof(tag), "%s %s", cmp_names[j], operands[i]);
			snprintf(what, sizeof(what), "5 %s", tag);
			ops[0] = mx_op_guard(cmps[j], "v", operands[i], 1);
			ops[1] = mx_op_setx("hit", tag, (uint32_t)strlen(tag));
			ops[2] = (struct mx_osd_op){.op = MX_OP_APPEND, .data = "+", .data_len = 1};
			expect(p, oid, ops, 3, holds[i][j] ? 0 : -ECANCELED, what);
			if (holds[i][j]) {
				H_CHECK(getx(p, oid, "hit", buf, sizeof(buf)) == (int)strlen(tag));
				H_CHECK(strcmp(buf, tag) == 0);
			}
		}
	/* Six held: six appends. */
	H_CHECK(mixsan_read(p, oid, buf, sizeof(buf), 0) == 13);
	H_CHECK(memcmp(buf, "payload++++++", 13) == 0);
	/* Unsigned bytes: 0x80 is above 0x7f. */
	{
		uint8_t hi = 0x80, lo = 0x7f;
		struct mx_osd_op ops[2] = {mx_op_guard(MX_CMP_GT, "b", &lo, 1), mx_op_setx("b", &lo, 1)};

		H_CHECK(mixsan_setxattr(p, oid, "b", &hi, 1) == 0);
		expect(p, oid, ops, 2, 0, "0x80 GT 0x7f");
		ops[0] = mx_op_guard(MX_CMP_GT, "b", &hi, 1);
		expect(p, oid, ops, 2, -ECANCELED, "0x7f GT 0x80");
	}
	/* Two guards: both must hold. */
	{
		struct mx_osd_op ops[3] = {mx_op_guard(MX_CMP_GE, "v", "5", 1),
					   mx_op_guard(MX_CMP_LT, "v", "5", 1), mx_op_setx("x", "1", 1)};

		expect(p, oid, ops, 3, -ECANCELED, "5 GE 5 and 5 LT 5");
		ops[1] = mx_op_guard(MX_CMP_LE, "v", "5", 1);
		expect(p, oid, ops, 3, 0, "5 GE 5 and 5 LE 5");
	}
}

/* 2. Absent attributes and objects are below everything. */
static void test_absent(mixsan_pool_t *p)
{
	static const uint8_t zero[16];
	const char *oid = "absent";
	struct snap s;

	H_CHECK(mixsan_write_full(p, oid, "x", 1) == 0);
	for (int j = 0; j < 4; j++) {
		struct mx_osd_op ops[2] = {mx_op_guard(cmps[j], "none", zero, 16), mx_op_setx("y", "1", 1)};
		char what[64];

		snprintf(what, sizeof(what), "absent %s 0^16", cmp_names[j]);
		/* LT and LE hold, and then set y, not none: none stays absent. */
		expect(p, oid, ops, 2, j < 2 ? 0 : -ECANCELED, what);
	}
	/* An absent object: its attributes are absent.  GE refuses and the
	 * object stays absent; LT creates it. */
	{
		struct mx_osd_op ops[2] = {mx_op_guard(MX_CMP_GE, "ver", "\x01", 1),
					   {.op = MX_OP_WRITEFULL, .data = "new", .data_len = 3}};

		expect(p, "nothing-yet", ops, 2, -ECANCELED, "absent object GE");
		snap_take(p, "nothing-yet", &s);
		H_CHECK(s.r == -ENOENT);
		ops[0] = mx_op_guard(MX_CMP_LT, "ver", "\x01", 1);
		expect(p, "nothing-yet", ops, 2, 0, "absent object LT");
		snap_take(p, "nothing-yet", &s);
		H_CHECK(s.r == 0 && s.res.ops[0].len == 3 &&
			memcmp(s.res.ops[0].data, "new", 3) == 0);
		mx_client_read_result_free(&s.res);
	}
}

/* 3. Malformed guards: EINVAL, nothing changes. */
static void test_malformed(mixsan_pool_t *p)
{
	const char *oid = "malformed";
	struct mx_osd_op ops[3];

	H_CHECK(mixsan_write_full(p, oid, "x", 1) == 0);
	H_CHECK(mixsan_setxattr(p, oid, "v", "5", 1) == 0);
	for (int j = 0; j < 4; j++) {
		char what[64];

		snprintf(what, sizeof(what), "1-byte value %s 2-byte operand", cmp_names[j]);
		ops[0] = mx_op_guard(cmps[j], "v", "55", 2);
		ops[1] = mx_op_setx("v", "9", 1);
		expect(p, oid, ops, 2, -EINVAL, what);
		snprintf(what, sizeof(what), "%s with an empty operand", cmp_names[j]);
		ops[0] = mx_op_guard(cmps[j], "v", "", 0);
		expect(p, oid, ops, 2, -EINVAL, what);
		snprintf(what, sizeof(what), "%s with an unknown bit", cmp_names[j]);
		ops[0] = mx_op_guard(cmps[j] | 0x100u, "v", "6", 1);
		expect(p, oid, ops, 2, -EINVAL, what);
	}
	ops[1] = mx_op_setx("v", "9", 1);
	ops[0] = mx_op_guard(MX_OP_FLAG_EXCL, "v", "5", 1); /* CREATE's flag */
	expect(p, oid, ops, 2, -EINVAL, "equality with flag 1");
	ops[0] = mx_op_guard(0x50u, "v", "5", 1);
	expect(p, oid, ops, 2, -EINVAL, "comparison 0x50");
	ops[0] = mx_op_guard(0x80000000u, "v", "5", 1);
	expect(p, oid, ops, 2, -EINVAL, "flag 0x80000000");
	/* A malformed guard wins over one that does not hold. */
	ops[0] = mx_op_guard(MX_CMP_EQ, "v", "7", 1);
	ops[1] = mx_op_guard(MX_CMP_LT, "v", "77", 2);
	ops[2] = mx_op_setx("v", "9", 1);
	expect(p, oid, ops, 3, -EINVAL, "not holding, then malformed");
	/* A guard after a change, or guards alone. */
	ops[0] = mx_op_setx("w", "1", 1);
	ops[1] = mx_op_guard(MX_CMP_LT, "v", "6", 1);
	expect(p, oid, ops, 2, -EINVAL, "a guard after a change");
	ops[0] = mx_op_guard(MX_CMP_LT, "v", "6", 1);
	expect(p, oid, ops, 1, -EINVAL, "a guard alone");
	/* Equality is as before: lengths may differ (no match). */
	ops[0] = mx_op_guard(MX_CMP_EQ, "v", "55", 2);
	ops[1] = mx_op_setx("v", "9", 1);
	expect(p, oid, ops, 2, -ECANCELED, "equality, other length");
	ops[0] = mx_op_guard(MX_CMP_EQ, "v", "5", 1);
	expect(p, oid, ops, 2, 0, "equality");
}

static bool ver_lt(struct mx_client_version a, struct mx_client_version b)
{
	return a.epoch < b.epoch || (a.epoch == b.epoch && a.seq < b.seq);
}

/* Set tier.ver to v unless it holds v or newer (docs/cache-tiering.md,
 * the flush): 0 or -ECANCELED. */
static int forward(mixsan_pool_t *p, const char *oid, struct mx_client_version v,
		   uint32_t cmp)
{
	uint8_t be[16];
	struct mx_osd_op ops[2];

	mx_client_version_be(&v, be);
	ops[0] = mx_op_guard(cmp, "tier.ver", be, 16);
	ops[1] = mx_op_setx("tier.ver", be, 16);
	return mx_client_write_ops(p, oid, ops, 2, NULL);
}

/* 4. Versions as guard operands. */
static void test_versions(mixsan_pool_t *p)
{
	static const struct mx_client_version order[] = {
		{1, 0}, {1, 1}, {1, 255}, {1, 256}, {1, 0x10000}, {2, 0}, {2, 1}, {255, 7},
		{256, 0}, {0x100000000ull, 0},
	};
	const size_t n = sizeof(order) / sizeof(order[0]);
	const char *oid = "versions";
	struct mx_client_version w[4];
	uint8_t be[16];
	char buf[32];

	/* Increasing versions are taken one after another, each refused
	 * again (equal) and every older one refused too. */
	for (size_t i = 0; i < n; i++) {
		H_CHECK(forward(p, oid, order[i], MX_CMP_LT) == 0);
		H_CHECK(forward(p, oid, order[i], MX_CMP_LT) == -ECANCELED);
		for (size_t j = 0; j < i; j++)
			H_CHECK(forward(p, oid, order[j], MX_CMP_LT) == -ECANCELED);
		H_CHECK(forward(p, oid, order[i], MX_CMP_LE) == 0); /* the install's guard */
	}
	mx_client_version_be(&order[n - 1], be);
	H_CHECK(getx(p, oid, "tier.ver", buf, sizeof(buf)) == 16 && memcmp(buf, be, 16) == 0);

	/* The versions writes return grow, and order as guards say. */
	for (int i = 0; i < 4; i++) {
		struct mx_osd_op op = {.op = MX_OP_WRITE, .off = 0, .data = "v", .data_len = 1};

		H_CHECK(mx_client_write_ops(p, "versions2", &op, 1, &w[i]) == 0);
		if (i > 0)
			H_CHECK(ver_lt(w[i - 1], w[i]));
	}
	H_CHECK(forward(p, "versions2", w[1], MX_CMP_LT) == 0);
	H_CHECK(forward(p, "versions2", w[0], MX_CMP_LT) == -ECANCELED);
	H_CHECK(forward(p, "versions2", w[3], MX_CMP_LT) == 0);
	H_CHECK(forward(p, "versions2", w[2], MX_CMP_LT) == -ECANCELED);
}

static int count_xattr(void *arg, const char *name, const void *v, size_t len)
{
	(void)name;
	(void)v;
	(void)len;
	(*(int *)arg)++;
	return 0;
}

/* 5. Read requests: data, attributes and version at once. */
static void test_read_ops(mixsan_pool_t *p)
{
	const char *oid = "readops";
	struct mx_osd_op rd[5] = {
		{.op = MX_OP_READ, .off = 0, .len = 1 << 20},
		{.op = MX_OP_GETXATTR, .xname = "a"},
		{.op = MX_OP_GETXATTR, .xname = "missing"},
		{.op = MX_OP_LISTXATTRS},
		{.op = MX_OP_STAT},
	};
	struct mx_client_read_result res;
	struct mx_client_version prev = {0, 0};

	for (int i = 0; i < 5; i++) {
		char data[32], a[8];
		struct mx_client_version v;
		struct mx_osd_stat st;
		struct mx_osd_op wr[3];
		int nx = 0;

		snprintf(data, sizeof(data), "round %d of the data", i);
		snprintf(a, sizeof(a), "%d", i);
		wr[0] = (struct mx_osd_op){.op = MX_OP_WRITEFULL, .data = data,
					   .data_len = (uint32_t)strlen(data)};
		wr[1] = mx_op_setx("a", a, (uint32_t)strlen(a));
		wr[2] = mx_op_setx("b", "b", 1);
		memset(&v, 0, sizeof(v));
		H_CHECK(mx_client_write_ops(p, oid, wr, 3, &v) == 0);
		H_CHECK(ver_lt(prev, v));
		prev = v;
		H_CHECK(mx_client_read_ops(p, oid, rd, 5, &res) == 0);
		fprintf(stderr, "guards: write %d: version %llu.%llu, read %llu.%llu\n", i,
			(unsigned long long)v.epoch, (unsigned long long)v.seq,
			(unsigned long long)res.ver.epoch, (unsigned long long)res.ver.seq);
		H_CHECK(res.n == 5);
		H_CHECK(res.ver.epoch == v.epoch && res.ver.seq == v.seq);
		H_CHECK(res.ops[0].rval == 0 && res.ops[0].len == strlen(data) &&
			memcmp(res.ops[0].data, data, strlen(data)) == 0);
		H_CHECK(res.ops[1].rval == 0 && res.ops[1].len == strlen(a) &&
			memcmp(res.ops[1].data, a, strlen(a)) == 0);
		H_CHECK(res.ops[2].rval == -ENODATA && !res.ops[2].data);
		H_CHECK(res.ops[3].rval == 0 &&
			mx_client_xattrs_walk(res.ops[3].data, res.ops[3].len, count_xattr, &nx) ==
				0 &&
			nx == 2);
		H_CHECK(res.ops[4].rval == 0 &&
			mx_osd_stat_decode(res.ops[4].data, res.ops[4].len, &st) == 0 &&
			st.size == strlen(data) && st.ver_epoch == v.epoch && st.ver_seq == v.seq);
		mx_client_read_result_free(&res);
		H_CHECK(res.n == 0);
	}
	/* An empty attribute is present: data, 0 bytes. */
	H_CHECK(mixsan_setxattr(p, oid, "a", "", 0) == 0);
	H_CHECK(mx_client_read_ops(p, oid, &rd[1], 1, &res) == 0);
	H_CHECK(res.n == 1 && res.ops[0].rval == 0 && res.ops[0].data && res.ops[0].len == 0);
	H_CHECK(ver_lt(prev, res.ver));
	mx_client_read_result_free(&res);
	/* No object: ENOENT, nothing to free. */
	H_CHECK(mx_client_read_ops(p, "no-such-object", rd, 5, &res) == -ENOENT);
	H_CHECK(res.n == 0);
	mx_client_read_result_free(&res);
	/* Reads and writes never mix; reads only. */
	{
		struct mx_osd_op mix[2] = {rd[0], mx_op_setx("a", "1", 1)};

		H_CHECK(mx_client_read_ops(p, oid, mix, 2, &res) == -EINVAL);
		H_CHECK(mx_client_write_ops(p, oid, mix, 2, NULL) == -EINVAL);
		H_CHECK(mx_client_read_ops(p, oid, rd, 0, &res) == -EINVAL);
	}
}

/* The primary of oid in the client's map (-1 if none). */
/* 6. Which guard failed, among two. */
static void test_which_guard(mixsan_pool_t *p)
{
	const char *oid = "which";
	struct mx_osd_op ops[3];
	char buf[8];
	int failed = 42;

	ops[0] = mx_op_setx("a", "1", 1);
	ops[1] = mx_op_setx("b", "2", 1);
	H_CHECK(mx_client_write_ops_f(p, oid, ops, 2, NULL, &failed) == 0 && failed == -1);

	ops[0] = mx_op_guard(MX_CMP_EQ, "a", "1", 1);
	ops[1] = mx_op_guard(MX_CMP_EQ, "b", "9", 1); /* does not hold */
	ops[2] = mx_op_setx("c", "3", 1);
	H_CHECK(mx_client_write_ops_f(p, oid, ops, 3, NULL, &failed) == -ECANCELED);
	H_CHECK(failed == 1);

	ops[0] = mx_op_guard(MX_CMP_EQ, "a", "9", 1); /* does not hold */
	ops[1] = mx_op_guard(MX_CMP_EQ, "b", "2", 1);
	H_CHECK(mx_client_write_ops_f(p, oid, ops, 3, NULL, &failed) == -ECANCELED);
	H_CHECK(failed == 0);

	ops[0] = mx_op_guard(MX_CMP_EQ, "a", "9", 1); /* both fail: the first is named */
	ops[1] = mx_op_guard(MX_CMP_GT, "b", "5", 1);
	H_CHECK(mx_client_write_ops_f(p, oid, ops, 3, NULL, &failed) == -ECANCELED);
	H_CHECK(failed == 0);

	ops[0] = mx_op_guard(MX_CMP_LT, "a", "", 0); /* malformed: EINVAL, no index */
	ops[1] = mx_op_guard(MX_CMP_EQ, "b", "9", 1);
	H_CHECK(mx_client_write_ops_f(p, oid, ops, 3, NULL, &failed) == -EINVAL);
	H_CHECK(failed == -1);
	H_CHECK(getx(p, oid, "c", buf, sizeof(buf)) == -ENODATA);

	ops[0] = mx_op_guard(MX_CMP_GE, "a", "1", 1);
	ops[1] = mx_op_guard(MX_CMP_EQ, "b", "2", 1);
	H_CHECK(mx_client_write_ops_f(p, oid, ops, 3, NULL, &failed) == 0 && failed == -1);
	H_CHECK(getx(p, oid, "c", buf, sizeof(buf)) == 1 && buf[0] == '3');
}

static int primary_of(mixsan_cluster_t *cl, int64_t pool, const char *oid)
{
	int32_t acting[3];
	uint32_t pg;

	return mx_client_locate(cl, pool, oid, &pg, acting, 3) > 0 ? acting[0] : -1;
}

/* 6. Resent across a map change. */
static void test_resend(struct h_cluster *c, mixsan_cluster_t *cl, mixsan_pool_t *p)
{
	const char *oid = "resent";
	/* Static: a request still pending after its bound completes at
	 * shutdown, after this function returned. */
	static struct mx_client_version v2;
	static struct mx_client_read_result res;
	struct mx_client_read_result again;
	struct mx_client_stats st0, st1;
	struct mx_client_version v1;
	mixsan_completion_t *cw, *cr;
	struct mx_osd_op wr[3], rd[2] = {
		{.op = MX_OP_READ, .off = 0, .len = 4096},
		{.op = MX_OP_GETXATTR, .xname = "n"},
	};
	uint64_t epoch, sent_epoch;
	int prim, newprim;
	int64_t rw, rr;

	wr[0] = (struct mx_osd_op){.op = MX_OP_WRITEFULL, .data = "one", .data_len = 3};
	wr[1] = mx_op_setx("n", "\x01", 1);
	H_CHECK(mx_client_write_ops(p, oid, wr, 2, &v1) == 0);
	prim = primary_of(cl, mixsan_pool_id(p), oid);
	H_CHECK(prim >= 0);
	epoch = mixsan_map_epoch(cl);
	mx_client_get_stats(cl, &st0);

	fprintf(stderr, "guards: kill -9 osd.%d, the primary of %s, at epoch %llu\n", prim, oid,
		(unsigned long long)epoch);
	h_signal_osd(c, prim, SIGKILL);
	wr[0] = mx_op_guard(MX_CMP_LT, "n", "\x02", 1);
	wr[1] = mx_op_setx("n", "\x02", 1);
	wr[2] = (struct mx_osd_op){.op = MX_OP_WRITEFULL, .data = "two", .data_len = 3};
	H_CHECK(mixsan_completion_create(NULL, NULL, &cw) == 0);
	H_CHECK(mixsan_completion_create(NULL, NULL, &cr) == 0);
	sent_epoch = mixsan_map_epoch(cl);
	/* Both in flight at once: the read sees the object before or after
	 * the write, whole. */
	H_CHECK(mx_client_aio_write_ops_v(p, oid, cw, wr, 3, &v2) == 0);
	H_CHECK(mx_client_aio_read_ops(p, oid, cr, rd, 2, &res) == 0);
	rw = h_wait_completion(cw, 60);
	rr = h_wait_completion(cr, 60);
	newprim = primary_of(cl, mixsan_pool_id(p), oid);
	mx_client_get_stats(cl, &st1);
	fprintf(stderr,
		"guards: after the kill: write %s (version %llu.%llu), read %s (version "
		"%llu.%llu), epoch %llu, primary osd.%d, %llu resends\n",
		strerror((int)-rw), (unsigned long long)v2.epoch, (unsigned long long)v2.seq,
		strerror((int)-rr), (unsigned long long)res.ver.epoch,
		(unsigned long long)res.ver.seq, (unsigned long long)mixsan_map_epoch(cl),
		newprim, (unsigned long long)(st1.resends - st0.resends));
	H_CHECK(rw == 0 && rr == 0);
	H_CHECK(mixsan_map_epoch(cl) > epoch);
	H_CHECK(newprim >= 0 && newprim != prim);
	/* Sent under the old map, to the dead primary: resent at least once
	 * (unless the new map came first, which a 250 ms heartbeat makes
	 * unlikely). */
	H_CHECK(st1.resends > st0.resends || sent_epoch > epoch);
	if (rw == 0) {
		H_CHECK(ver_lt(v1, v2));
		H_CHECK(v2.epoch > v1.epoch); /* written in a later interval */
	}
	if (rw == 0 && rr == 0) {
		bool before = res.ver.epoch == v1.epoch && res.ver.seq == v1.seq;
		bool after = res.ver.epoch == v2.epoch && res.ver.seq == v2.seq;

		H_CHECK(before || after);
		H_CHECK(res.n == 2 && res.ops[0].len == 3 && res.ops[1].len == 1);
		if (res.n == 2 && res.ops[0].len == 3 && res.ops[1].len == 1) {
			H_CHECK(memcmp(res.ops[0].data, after ? "two" : "one", 3) == 0);
			H_CHECK(memcmp(res.ops[1].data, after ? "\x02" : "\x01", 1) == 0);
		}
	}
	if (rr == 0)
		mx_client_read_result_free(&res);
	/* Read again now: the write's version. */
	H_CHECK(mx_client_read_ops(p, oid, rd, 2, &again) == 0);
	H_CHECK(again.ver.epoch == v2.epoch && again.ver.seq == v2.seq);
	H_CHECK(again.n == 2 && again.ops[0].len == 3 &&
		memcmp(again.ops[0].data, "two", 3) == 0);
	mx_client_read_result_free(&again);
	/* The same guard again: the new primary refuses it. */
	expect(p, oid, wr, 3, -ECANCELED, "2 LT 2 on the new primary");
	mixsan_completion_release(cw); /* if pending, freed when it completes */
	mixsan_completion_release(cr);

	h_start_osd(c, prim);
	H_CHECK(h_wait_up(c, cl, 3, 60) == 0);
}

/* One raw request for obj of pool, as a client whose map is of epoch,
 * to the primary: a read of 16 bytes, or a WRITEFULL of "fence" when
 * write; routed by route (0: no route sent, the epoch stands for it), with
 * transaction id tid (0: one of the epoch's).  The reply's status as an
 * errno. */
static int raw_req(mixsan_cluster_t *cl, int64_t pool, const char *obj, uint64_t epoch,
		   uint64_t route, bool write, uint64_t tid)
{
	struct mx_map *m = mx_client_map_copy(cl);
	struct mx_msg_osd_op op = {.pool = (int32_t)pool, .client_id = 4242, .name = obj,
				   .name_len = (uint32_t)strlen(obj), .n_ops = 1};
	struct mx_msg_osd_op_reply rep;
	struct mx_msg_hdr h;
	uint8_t *payload = NULL;
	struct mx_wbuf w;
	char addr[MX_ADDR_MAX];
	int32_t acting[3];
	int r;

	if (!m)
		return -ENOMEM;
	op.epoch = epoch;
	if (route) {
		op.flags = MX_OSD_OP_ROUTED;
		op.route_epoch = route;
	}
	if (mx_client_locate(cl, pool, obj, &op.pg, acting, 3) < 1) {
		mx_map_free(m);
		return -ENOENT;
	}
	if (write) {
		op.ops[0].op = MX_OP_WRITEFULL;
		op.ops[0].data = "fence";
		op.ops[0].data_len = 5;
	} else {
		op.ops[0].op = MX_OP_READ;
		op.ops[0].len = 16;
	}
	snprintf(addr, sizeof(addr), "%s", m->osds[acting[0]].addr);
	mx_map_free(m);
	mx_wbuf_init(&w);
	mx_enc_osd_op(&w, &op);
	r = h_raw_request(addr, MX_MSG_OSD_OP, tid ? tid : 1 + (epoch << 8), &w, &h, &payload);
	mx_wbuf_free(&w);
	if (r == 0 && (h.type != MX_MSG_OSD_OP_REPLY || mx_dec_osd_op_reply(payload, h.len, &rep) < 0))
		r = -EPROTO;
	else if (r == 0)
		r = mx_wire_to_errno(rep.status);
	free(payload);
	return r;
}

static int raw_at_epoch(mixsan_cluster_t *cl, int64_t pool, const char *obj, uint64_t epoch,
			bool write)
{
	return raw_req(cl, pool, obj, epoch, 0, write, 0);
}

/* The same, retried while the OSD has not the map yet (EAGAIN) or still
 * accepts what it is to refuse, for up to 10 s: the last status. */
static int raw_until(mixsan_cluster_t *cl, int64_t pool, const char *obj, uint64_t epoch,
		     bool write, int want)
{
	int r = -ETIMEDOUT;

	for (int i = 0; i < 100; i++) {
		r = raw_at_epoch(cl, pool, obj, epoch, write);
		if (r == want)
			break;
		usleep(100000);
	}
	return r;
}

static int tier_cmd(mixsan_cluster_t *cl, const char *prefix, const char *const *kv, size_t n)
{
	char *msg = NULL;
	int r = mixsan_mon_command(cl, prefix, kv, n, &msg);

	if (r < 0)
		fprintf(stderr, "guards: %s: %s\n", prefix, msg ? msg : strerror(-r));
	free(msg);
	return r;
}

/* The tier fence (docs/cache-tiering.md, "Mode changes and fencing"): after
 * a tier change, the OSDs of both pools refuse requests routed by a map
 * from before it, and serve those of the new map. */
static void test_fence(mixsan_cluster_t *cl, mixsan_pool_t *p)
{
	const char *add[] = {"base", "guards", "cache", "fence-hot", "force", "1"};
	const char *mode[] = {"pool", "fence-hot", "mode", "readonly"};
	const char *none[] = {"pool", "fence-hot", "mode", "none"};
	const char *rm[] = {"base", "guards", "cache", "fence-hot", "force", "1"};
	mixsan_pool_t *hp;
	int64_t base = mixsan_pool_id(p), hot;
	uint64_t e0, e1, e2;
	char got[16];

	h_pool_create(cl, "fence-hot", 3, 8, "osd");
	H_CHECK(mixsan_pool_open(cl, "fence-hot", &hp) == 0);
	hot = mixsan_pool_id(hp);
	H_CHECK(mixsan_write_full(p, "fence.obj", "before", 6) == 0);
	e0 = mixsan_map_epoch(cl);
	H_CHECK(raw_until(cl, base, "fence.obj", e0, false, 0) == 0);

	H_CHECK(tier_cmd(cl, "pool tier add", add, 3) == 0);
	e1 = mixsan_map_epoch(cl);
	H_CHECK(raw_until(cl, base, "fence.obj", e0, false, -EXDEV) == -EXDEV);
	H_CHECK(raw_until(cl, base, "fence.obj", e0, true, -EXDEV) == -EXDEV);
	H_CHECK(raw_until(cl, hot, "fence.obj", e0, true, -EXDEV) == -EXDEV);
	H_CHECK(raw_until(cl, base, "fence.obj", e1, false, 0) == 0);
	H_CHECK(mixsan_read(p, "fence.obj", got, sizeof(got), 0) == 6 && !memcmp(got, "before", 6));
	fprintf(stderr, "guards: tier added at epoch %llu: requests of epoch %llu refused\n",
		(unsigned long long)e1, (unsigned long long)e0);

	H_CHECK(tier_cmd(cl, "pool tier mode", mode, 2) == 0);
	e2 = mixsan_map_epoch(cl);
	H_CHECK(raw_until(cl, hot, "fence.obj", e1, false, -EXDEV) == -EXDEV);
	H_CHECK(raw_until(cl, base, "fence.obj", e1, true, -EXDEV) == -EXDEV);
	H_CHECK(raw_until(cl, base, "fence.obj", e2, false, 0) == 0);
	/* Exactly once: a write that ran under the route of e2 is answered
	 * as it was when sent again after a tier change; one that never ran
	 * is refused, at the epoch of any map, and never runs. */
	H_CHECK(raw_req(cl, base, "fence.obj", e2, e2, true, 777001) == 0);
	H_CHECK(tier_cmd(cl, "pool tier mode", none, 2) == 0);
	{
		uint64_t e3 = mixsan_map_epoch(cl);

		H_CHECK(raw_until(cl, base, "fence.obj", e3, false, 0) == 0);
		H_CHECK(raw_req(cl, base, "fence.obj", e3, e2, true, 777001) == 0);
		H_CHECK(raw_req(cl, base, "fence.obj", e3, e2, true, 777002) == -EXDEV);
		H_CHECK(raw_req(cl, hot, "fence.obj", e3, e2, false, 777003) == -EXDEV);
	}
	/* Draining: the monitor takes our word that nothing is left. */
	H_CHECK(tier_cmd(cl, "pool tier rm", rm, 3) == 0);
	H_CHECK(raw_until(cl, base, "fence.obj", e2, true, -EXDEV) == -EXDEV);
	/* The library's own requests take the new map and go on. */
	H_CHECK(mixsan_write_full(p, "fence.obj", "after", 5) == 0);
	H_CHECK(mixsan_read(p, "fence.obj", got, sizeof(got), 0) == 5 && !memcmp(got, "after", 5));
	mixsan_pool_close(hp);
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	uint64_t objects = 0;
	int problems;

	memset(&c, 0, sizeof(c));
	snprintf(c.mon_args, sizeof(c.mon_args),
		 "--osd-failure-detection --heartbeat-grace 2000 --beacon-grace 6000");
	snprintf(c.osd_args, sizeof(c.osd_args), "--heartbeat-interval 250 --heartbeat-grace 2000");
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "guards", 3, 8, "osd");
	if (mixsan_pool_open(cl, "guards", &p) < 0)
		H_FATAL("pool open");

	test_ordered(p);
	test_absent(p);
	test_malformed(p);
	test_versions(p);
	test_read_ops(p);
	test_which_guard(p);
	test_fence(cl, p);
	if (c.external)
		fprintf(stderr, "guards: an external cluster: no kill\n");
	else
		test_resend(&c, cl, p);

	problems = h_shutdown_check_replicas(&c, cl, p, &objects);
	fprintf(stderr, "guards: %llu objects identical on every replica? %d problems\n",
		(unsigned long long)objects, problems);
	H_CHECK(problems == 0);
	h_stop(&c);
	fprintf(stderr, "guards: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

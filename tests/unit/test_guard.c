/*
 * Unit tests of write-request guards (osd/guard.c): which flags and
 * operands make a guard, equality as it always was, and the ordered
 * comparisons over big-endian byte strings, with an absent attribute
 * below everything and a length mismatch refused.
 */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "guard.h"

static const uint32_t ordered[] = {MX_CMP_LT, MX_CMP_LE, MX_CMP_GT, MX_CMP_GE};

/* A version (epoch, seq) as 16 big-endian bytes. */
static void be_version(uint64_t epoch, uint64_t seq, uint8_t out[16])
{
	for (int i = 0; i < 8; i++) {
		out[i] = (uint8_t)(epoch >> (56 - 8 * i));
		out[8 + i] = (uint8_t)(seq >> (56 - 8 * i));
	}
}

static int holds(uint32_t flags, const char *attr, const char *operand)
{
	return mx_guard_holds(flags, attr, attr ? (uint32_t)strlen(attr) : 0, operand,
			      (uint32_t)strlen(operand));
}

static void test_form(void)
{
	CHECK_EQ_INT(mx_guard_check(MX_CMP_EQ, 0), 0);
	CHECK_EQ_INT(mx_guard_check(MX_CMP_EQ, 5), 0);
	for (size_t i = 0; i < 4; i++) {
		CHECK_EQ_INT(mx_guard_check(ordered[i], 1), 0);
		CHECK_EQ_INT(mx_guard_check(ordered[i], 0), -EINVAL);
		CHECK_EQ_INT(mx_guard_check(ordered[i] | MX_OP_FLAG_EXCL, 1), -EINVAL);
		CHECK_EQ_INT(holds(ordered[i] | 0x100u, "a", "a"), -EINVAL);
	}
	/* Unknown bits, unknown comparisons. */
	CHECK_EQ_INT(mx_guard_check(MX_OP_FLAG_EXCL, 1), -EINVAL);
	CHECK_EQ_INT(mx_guard_check(0x50u, 1), -EINVAL);
	CHECK_EQ_INT(mx_guard_check(0xf0u, 1), -EINVAL);
	CHECK_EQ_INT(mx_guard_check(0x80000000u, 1), -EINVAL);
	CHECK_EQ_INT(holds(0x50u, "a", "a"), -EINVAL);
	CHECK_EQ_INT(holds(MX_CMP_EQ | 1u, NULL, ""), -EINVAL);
}

static void test_equal(void)
{
	CHECK_EQ_INT(holds(MX_CMP_EQ, "abc", "abc"), 1);
	CHECK_EQ_INT(holds(MX_CMP_EQ, "abc", "abd"), 0);
	CHECK_EQ_INT(holds(MX_CMP_EQ, "abc", "ab"), 0); /* lengths differ: no match */
	CHECK_EQ_INT(holds(MX_CMP_EQ, NULL, ""), 1);    /* "" means absent */
	CHECK_EQ_INT(holds(MX_CMP_EQ, "", ""), 1);
	CHECK_EQ_INT(holds(MX_CMP_EQ, NULL, "x"), 0);
	CHECK_EQ_INT(holds(MX_CMP_EQ, "x", ""), 0);
}

static void test_ordered(void)
{
	/* value 5 against operands 4, 5, 6: LT, LE, GT, GE. */
	static const struct {
		const char *op;
		int want[4];
	} t[] = {
		{"4", {0, 0, 1, 1}},
		{"5", {0, 1, 0, 1}},
		{"6", {1, 1, 0, 0}},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		for (size_t j = 0; j < 4; j++)
			CHECK_EQ_INT(holds(ordered[j], "5", t[i].op), t[i].want[j]);
	/* Unsigned bytes: 0x80 is above 0x7f. */
	{
		uint8_t hi = 0x80, lo = 0x7f;

		CHECK_EQ_INT(mx_guard_holds(MX_CMP_GT, &hi, 1, &lo, 1), 1);
		CHECK_EQ_INT(mx_guard_holds(MX_CMP_LT, &lo, 1, &hi, 1), 1);
	}
	/* Absent: below every operand, even all zero bytes. */
	{
		uint8_t zero[16] = {0};

		CHECK_EQ_INT(mx_guard_holds(MX_CMP_LT, NULL, 0, zero, 16), 1);
		CHECK_EQ_INT(mx_guard_holds(MX_CMP_LE, NULL, 0, zero, 16), 1);
		CHECK_EQ_INT(mx_guard_holds(MX_CMP_GT, NULL, 0, zero, 16), 0);
		CHECK_EQ_INT(mx_guard_holds(MX_CMP_GE, NULL, 0, zero, 16), 0);
	}
	/* A present value of another length is a malformed guard, in either
	 * direction, the empty value included. */
	for (size_t j = 0; j < 4; j++) {
		CHECK_EQ_INT(holds(ordered[j], "55", "5"), -EINVAL);
		CHECK_EQ_INT(holds(ordered[j], "5", "55"), -EINVAL);
		CHECK_EQ_INT(holds(ordered[j], "", "5"), -EINVAL);
	}
}

/* Versions as 16 big-endian bytes order like (epoch, seq). */
static void test_versions(void)
{
	static const uint64_t v[][2] = {
		{0, 0}, {0, 1}, {0, 255}, {0, 256}, {1, 0}, {1, 1},
		{7, 0xffffffffffffffffull}, {8, 0}, {0x100, 3}, {0xffffffffffffffffull, 0},
	};
	size_t n = sizeof(v) / sizeof(v[0]);

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++) {
			uint8_t a[16], b[16];
			int want = i < j ? -1 : i > j;

			be_version(v[i][0], v[i][1], a);
			be_version(v[j][0], v[j][1], b);
			CHECK_EQ_INT(mx_guard_holds(MX_CMP_LT, a, 16, b, 16), want < 0);
			CHECK_EQ_INT(mx_guard_holds(MX_CMP_LE, a, 16, b, 16), want <= 0);
			CHECK_EQ_INT(mx_guard_holds(MX_CMP_GT, a, 16, b, 16), want > 0);
			CHECK_EQ_INT(mx_guard_holds(MX_CMP_GE, a, 16, b, 16), want >= 0);
			CHECK_EQ_INT(mx_guard_holds(MX_CMP_EQ, a, 16, b, 16), want == 0);
		}
}

int main(void)
{
	test_form();
	test_equal();
	test_ordered();
	test_versions();
	return mx_check_done("guard");
}

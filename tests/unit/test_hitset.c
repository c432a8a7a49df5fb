/*
 * Unit tests of the client's hit sets (client/hitset.c): misses in one
 * period count once, misses in distinct periods add up, only the newest
 * periods count (four, or promote_min_hits when that is more), pools and
 * objects are apart, and a new period length starts afresh.
 */
#include <stdio.h>

#include "check.h"
#include "../../client/hitset.h"
#include "map.h"

static void test_periods(void)
{
	struct mx_hitsets *h = mx_hitsets_new();

	CHECK(h != NULL);
	/* A scan: each object once, none counted twice. */
	for (int i = 0; i < 100; i++) {
		char oid[16];

		snprintf(oid, sizeof(oid), "obj%d", i);
		CHECK_EQ_INT(mx_hitsets_miss(h, 1, oid, 60, 2, 1000), 1);
	}
	/* Again in the same period (1000..1019 with 60 s periods: 960..1019). */
	CHECK_EQ_INT(mx_hitsets_miss(h, 1, "obj0", 60, 2, 1019), 1);
	/* The next period: two. */
	CHECK_EQ_INT(mx_hitsets_miss(h, 1, "obj0", 60, 2, 1020), 2);
	CHECK_EQ_INT(mx_hitsets_miss(h, 1, "obj0", 60, 2, 1080), 3);
	/* Another pool, another object: apart. */
	CHECK_EQ_INT(mx_hitsets_miss(h, 2, "obj0", 60, 2, 1080), 1);
	CHECK_EQ_INT(mx_hitsets_miss(h, 1, "obj1", 60, 2, 1080), 2);
	CHECK_EQ_INT(mx_hitsets_miss(h, 1, "never", 60, 2, 1080), 1);
	mx_hitsets_free(h);
}

static void test_window(void)
{
	struct mx_hitsets *h = mx_hitsets_new();

	/* Periods 0, 1, 2, 3: four; at period 4 the first has left. */
	for (unsigned p = 0; p < 4; p++)
		CHECK_EQ_INT(mx_hitsets_miss(h, 1, "a", 1, 2, 100 + p), p + 1);
	CHECK_EQ_INT(mx_hitsets_miss(h, 1, "a", 1, 2, 104), 4);
	/* After a long gap: alone again. */
	CHECK_EQ_INT(mx_hitsets_miss(h, 1, "a", 1, 2, 200), 1);
	/* A gap of three periods: still in the window of four. */
	CHECK_EQ_INT(mx_hitsets_miss(h, 1, "a", 1, 2, 203), 2);
	CHECK_EQ_INT(mx_hitsets_miss(h, 1, "a", 1, 2, 207), 1);
	/* promote_min_hits 6 keeps six periods, so 6 can be reached. */
	for (unsigned p = 0; p < 6; p++)
		CHECK_EQ_INT(mx_hitsets_miss(h, 1, "b", 1, 6, 300 + p), p + 1);
	CHECK_EQ_INT(mx_hitsets_miss(h, 1, "b", 1, 6, 306), 6);
	/* And the most ever kept is MX_PROMOTE_HITS_MAX. */
	for (unsigned p = 0; p < MX_PROMOTE_HITS_MAX + 3; p++) {
		unsigned want = p + 1 < MX_PROMOTE_HITS_MAX ? p + 1 : MX_PROMOTE_HITS_MAX;

		CHECK_EQ_INT(mx_hitsets_miss(h, 1, "c", 1, 99, 400 + p), want);
	}
	/* A new period length starts the pool's sets afresh. */
	CHECK_EQ_INT(mx_hitsets_miss(h, 1, "c", 2, 2, 500), 1);
	mx_hitsets_free(h);
	mx_hitsets_free(NULL);
}

int main(void)
{
	test_periods();
	test_window();
	return mx_check_done("hitset");
}

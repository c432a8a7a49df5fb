/*
 * Cache tiering, readonly mode (docs/cache-tiering.md, "Intent markers"):
 * "A mark that has stood unchanged for 150 s by a promoter's clock is a
 * dead writer's and is cleared."
 *
 * A writer's mark is left on an object's stub (the writer died between its
 * mark and its finish: set here on the raw cache object, as ro_mark leaves
 * it).  Readers then read the object through the tier every second, with
 * promote_min_hits 1, for a little more than 150 s.  Checked: the mark is
 * cleared and the object promoted (present in the cache) by the end, and
 * every read returns the base's content.  (A control object without a
 * mark is promoted by the same reads within seconds.)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "msg.h"
#include "tier.h"
#include "util.h"

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p, *cp, *craw;
	const char *add[] = {"base", "dbase", "cache", "dhot", "force", "1"};
	const char *ro[] = {"pool", "dhot", "mode", "readonly"};
	const char *oid = "marked";
	const char *mark = "1 00000000deadbeef.1.1";
	uint64_t t0;
	int reads = 0, bad = 0;
	char buf[64], v[64];
	int64_t n;
	bool promoted = false;

	memset(&c, 0, sizeof(c));
	snprintf(c.osd_args, sizeof(c.osd_args), "--agent-interval 1000");
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "dbase", 3, 8, "osd");
	h_pool_create(cl, "dhot", 3, 8, "osd");
	h_cmd(cl, "pool tier add", add, 3);
	h_pool_set(cl, "dhot", "hit_period_s", "1");
	h_pool_set(cl, "dhot", "promote_min_hits", "1");
	h_cmd(cl, "pool tier mode", ro, 2);
	if (mixsan_pool_open(cl, "dbase", &p) < 0 || mixsan_pool_open(cl, "dhot", &cp) < 0 ||
	    mx_client_pool_open_raw(cl, mixsan_pool_id(cp), &craw) < 0)
		H_FATAL("pool open");

	/* A readonly write: base content, a stub in the cache. */
	H_CHECK(mixsan_write_full(p, oid, "base", 4) == 0);
	/* A writer's mark left behind on the stub. */
	H_CHECK(mixsan_setxattr(craw, oid, MX_TIER_W, mark, strlen(mark)) == 0);

	/* A control: an object with no mark is promoted by the same reads. */
	H_CHECK(mixsan_write_full(p, "unmarked", "base", 4) == 0);
	for (int i = 0; i < 10 && !promoted; i++) {
		H_CHECK(mixsan_read(p, "unmarked", buf, sizeof(buf), 0) == 4);
		n = mixsan_getxattr(craw, "unmarked", MX_TIER_P, v, sizeof(v) - 1);
		promoted = n == 1 && v[0] == '1';
		sleep(1);
	}
	fprintf(stderr, "deadmark: an unmarked object promoted: %s\n", promoted ? "yes" : "no");
	H_CHECK(promoted);
	promoted = false;

	t0 = mx_now_ns();
	while (mx_now_ns() - t0 < 165ull * 1000000000ull) {
		n = mixsan_read(p, oid, buf, sizeof(buf), 0);
		reads++;
		if (!(n == 4 && memcmp(buf, "base", 4) == 0))
			bad++;
		n = mixsan_getxattr(craw, oid, MX_TIER_P, v, sizeof(v) - 1);
		if (n == 1 && v[0] == '1') {
			promoted = true;
			break;
		}
		sleep(1);
	}
	n = mixsan_getxattr(craw, oid, MX_TIER_W, v, sizeof(v) - 1);
	fprintf(stderr, "deadmark: %d reads in %.0f s, %d wrong; promoted: %s; mark %s\n", reads,
		(double)(mx_now_ns() - t0) / 1e9, bad, promoted ? "yes" : "no",
		n > 0 ? "still there" : "gone");
	H_CHECK(bad == 0);
	H_CHECK(promoted);

	mixsan_pool_close(p);
	mixsan_pool_close(cp);
	mixsan_pool_close(craw);
	mixsan_shutdown(cl);
	h_stop(&c);
	fprintf(stderr, "deadmark: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

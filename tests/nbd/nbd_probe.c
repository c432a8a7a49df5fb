/*
 * nbd_probe: what an ordinary NBD client (libnbd) sees of an export.  It
 * prints and checks the size, the transmission flags and the block size
 * constraints; on a writable export it writes a pattern, writes zeroes
 * (plain, NO_HOLE, FAST_ZERO), trims, writes with FUA, flushes, and reads
 * everything back against an in-memory model, and checks that the
 * base:allocation block status agrees with the data; on a read-only export
 * it checks that writes, trims and zeroes are refused by the server (the
 * client-side checks of libnbd are turned off for that) and that the
 * connection keeps serving.
 *
 *   nbd_probe URI [--read-only] [--expect-size N]
 *
 * Prints "ok NAME" / "FAIL NAME: why" per check and "N passed, N failed";
 * exits 1 if any check failed.
 *
 * Two checks go beyond the protocol, which lets a server keep data after a
 * trim and report a hole anywhere: a trimmed, 4 MiB aligned range must read
 * as zeroes and report NBD_STATE_HOLE|NBD_STATE_ZERO, and written data must
 * not be reported as a hole.  Both hold for nbdkit's memory plugin and are
 * what MixSAN's allocation map is to give.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libnbd.h>

/* No run may take longer than this (seconds): libnbd calls have no timeout. */
#define RUN_TIMEOUT 120
/* Largest region the probe writes and reads back. */
#define REGION_MAX (16ULL << 20)
/* Largest single request when the server advertises no maximum. */
#define DEFAULT_MAX_IO (32U << 20)

/* One base:allocation extent. */
struct extent {
	uint64_t off;
	uint64_t len;
	uint32_t flags;
};

/* The run. */
struct probe {
	const char *uri;
	bool read_only;
	int64_t expect_size; /* -1: not given */
	unsigned int passed, failed;

	struct nbd_handle *h;
	int64_t size;
	uint32_t min_block;   /* 1 when not advertised */
	uint32_t max_io;      /* largest request sent */
	uint64_t len;         /* the region [0, len) the probe uses */
	uint8_t *model;       /* what [0, len) holds; from malloc */
	uint8_t *care;        /* 0 where the model says nothing (trimmed); from malloc */
	uint8_t *data;        /* [0, len) as last read; from malloc */
	struct extent *ext;   /* base:allocation of [0, len); from malloc */
	size_t n_ext, cap_ext;
};

__attribute__((format(printf, 4, 5)))
static void report(struct probe *p, bool good, const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("%s %s", good ? "ok" : "FAIL", name);
	if (fmt && *fmt) {
		fputs(good ? " # " : ": ", stdout);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	putchar('\n');
	fflush(stdout);
	if (good)
		p->passed++;
	else
		p->failed++;
}

#define PASS(p, name, ...) report(p, true, name, __VA_ARGS__)
#define FAIL(p, name, ...) report(p, false, name, __VA_ARGS__)

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static void fill(uint8_t *b, size_t len, uint64_t off, unsigned int seed)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t v = (off + i) * 0x9e3779b97f4a7c15ULL + seed * 0xbf58476d1ce4e5b9ULL;

		b[i] = (uint8_t)(v >> 56 | 1); /* never zero */
	}
}

static bool all_zero(const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/* pwrite in requests no larger than the server takes. */
static int write_all(struct probe *p, const uint8_t *buf, uint64_t len, uint64_t off,
		     uint32_t flags)
{
	while (len) {
		uint64_t n = len < p->max_io ? len : p->max_io;

		if (nbd_pwrite(p->h, buf, n, off, flags) < 0)
			return -1;
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int read_all(struct probe *p, uint8_t *buf, uint64_t len, uint64_t off)
{
	while (len) {
		uint64_t n = len < p->max_io ? len : p->max_io;

		if (nbd_pread(p->h, buf, n, off, 0) < 0)
			return -1;
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* Read [0, len) into p->data and compare with the model where it cares. */
static void check_read_back(struct probe *p, const char *name)
{
	if (read_all(p, p->data, p->len, 0) < 0) {
		FAIL(p, name, "read: %s", nbd_get_error());
		return;
	}
	for (uint64_t i = 0; i < p->len; i++) {
		if (p->care[i] && p->data[i] != p->model[i]) {
			FAIL(p, name, "byte %" PRIu64 " is 0x%02x, expected 0x%02x", i, p->data[i],
			     p->model[i]);
			return;
		}
	}
	PASS(p, name, "%" PRIu64 " bytes as expected", p->len);
}

/* ---------------------------------------------------------------------- */
/* What the export says about itself                                       */
/* ---------------------------------------------------------------------- */

static void check_info(struct probe *p)
{
	int64_t min = nbd_get_block_size(p->h, LIBNBD_SIZE_MINIMUM);
	int64_t pref = nbd_get_block_size(p->h, LIBNBD_SIZE_PREFERRED);
	int64_t max = nbd_get_block_size(p->h, LIBNBD_SIZE_MAXIMUM);
	int ro = nbd_is_read_only(p->h);

	p->size = nbd_get_size(p->h);
	printf("# size %" PRId64 "\n", p->size);
	printf("# can_flush %d, can_fua %d, can_trim %d, can_zero %d, can_fast_zero %d, "
	       "can_multi_conn %d, can_cache %d, can_df %d, is_read_only %d, "
	       "base:allocation %d\n",
	       nbd_can_flush(p->h), nbd_can_fua(p->h), nbd_can_trim(p->h), nbd_can_zero(p->h),
	       nbd_can_fast_zero(p->h), nbd_can_multi_conn(p->h), nbd_can_cache(p->h),
	       nbd_can_df(p->h), ro, nbd_can_meta_context(p->h, LIBNBD_CONTEXT_BASE_ALLOCATION));
	printf("# block sizes: minimum %" PRId64 ", preferred %" PRId64 ", maximum %" PRId64
	       " (0: not advertised)\n", min, pref, max);

	if (p->size <= 0)
		FAIL(p, "size", "%" PRId64, p->size);
	else if (p->expect_size >= 0 && p->size != p->expect_size)
		FAIL(p, "size", "%" PRId64 ", expected %" PRId64, p->size, p->expect_size);
	else
		PASS(p, "size", "%" PRId64, p->size);

	if (ro != p->read_only)
		FAIL(p, "is_read_only", "%d on a%s export", ro,
		     p->read_only ? " read-only" : " writable");
	else
		PASS(p, "is_read_only", "%d", ro);

	if (nbd_can_fast_zero(p->h) == 1 && nbd_can_zero(p->h) != 1)
		FAIL(p, "flags", "fast zero without write zeroes (the server MUST set "
		     "NBD_FLAG_SEND_FAST_ZERO to 0 if NBD_FLAG_SEND_WRITE_ZEROES is not set)");
	else
		PASS(p, "flags", NULL);

	p->min_block = min > 0 ? (uint32_t)min : 1;
	p->max_io = max > 0 && max < DEFAULT_MAX_IO ? (uint32_t)max : DEFAULT_MAX_IO;
	if (min == 0 && pref == 0 && max == 0)
		PASS(p, "block_size", "not advertised: the defaults apply");
	else if (!is_pow2((uint64_t)min) || min > 65536 || !is_pow2((uint64_t)pref) ||
		 pref < (min > 512 ? min : 512) || max < pref)
		FAIL(p, "block_size", "%" PRId64 "/%" PRId64 "/%" PRId64 " break the rules of "
		     "\"Size constraints\"", min, pref, max);
	else if (p->size % min)
		FAIL(p, "block_size", "the size is not a multiple of the minimum block size "
		     "(it SHOULD be)");
	else
		PASS(p, "block_size", "%" PRId64 "/%" PRId64 "/%" PRId64, min, pref, max);
	/* Requests the probe sends are multiples of max_io's aligned part. */
	p->max_io = p->max_io / p->min_block * p->min_block;
}

/* ---------------------------------------------------------------------- */
/* Block status                                                            */
/* ---------------------------------------------------------------------- */

static int extent_cb(void *arg, const char *context, uint64_t off, uint32_t *entries,
		     size_t n, int *error)
{
	struct probe *p = arg;

	(void)error;
	if (strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
		return 0;
	for (size_t i = 0; i + 1 < n; i += 2) {
		if (p->n_ext == p->cap_ext) {
			size_t cap = p->cap_ext ? 2 * p->cap_ext : 64;
			struct extent *e = realloc(p->ext, cap * sizeof(*e));

			if (!e)
				return -1;
			p->ext = e;
			p->cap_ext = cap;
		}
		p->ext[p->n_ext++] = (struct extent){off, entries[i], entries[i + 1]};
		off += entries[i];
	}
	return 0;
}

/* Fetch base:allocation for [0, len) into p->ext. */
static int fetch_extents(struct probe *p, const char *name)
{
	uint64_t off = 0;

	p->n_ext = 0;
	for (unsigned int i = 0; off < p->len; i++) {
		nbd_extent_callback cb = {.callback = extent_cb, .user_data = p};
		size_t before = p->n_ext;

		if (i > 100000 || nbd_block_status(p->h, p->len - off, off, cb, 0) < 0) {
			FAIL(p, name, "block status at %" PRIu64 ": %s", off,
			     i > 100000 ? "no progress" : nbd_get_error());
			return -1;
		}
		if (p->n_ext == before || p->ext[before].off != off) {
			FAIL(p, name, "block status at %" PRIu64 " described nothing there", off);
			return -1;
		}
		off = p->ext[p->n_ext - 1].off + p->ext[p->n_ext - 1].len;
	}
	return 0;
}

/* The union of flags over [off, off + len), and whether any extent lacks f. */
static uint32_t flags_over(const struct probe *p, uint64_t off, uint64_t len, uint32_t f,
			   bool *missing)
{
	uint32_t all = 0;

	*missing = false;
	for (size_t i = 0; i < p->n_ext; i++) {
		const struct extent *e = &p->ext[i];

		if (e->off + e->len <= off || e->off >= off + len)
			continue;
		all |= e->flags;
		if ((e->flags & f) != f)
			*missing = true;
	}
	return all;
}

/*
 * Every extent marked NBD_STATE_ZERO reads as zeroes ("if set, the block
 * contents read as all zeroes"); p->data holds [0, len) as just read.
 */
static void check_zero_flag_truthful(struct probe *p, const char *name)
{
	for (size_t i = 0; i < p->n_ext; i++) {
		const struct extent *e = &p->ext[i];
		uint64_t end = e->off + e->len < p->len ? e->off + e->len : p->len;

		if ((e->flags & LIBNBD_STATE_ZERO) && !all_zero(p->data + e->off, end - e->off)) {
			FAIL(p, name, "[%" PRIu64 ", %" PRIu64 ") is reported zero but holds data",
			     e->off, end);
			return;
		}
	}
	PASS(p, name, "%zu extents; every one marked zero reads as zeroes", p->n_ext);
}

/* ---------------------------------------------------------------------- */
/* Writable export                                                         */
/* ---------------------------------------------------------------------- */

/*
 * The region is cut in four quarters q: [0, q) data, [q, 2q) data with a
 * fast zero at its start and a FUA write after it, [2q, 3q) write zeroes
 * (the second half with NO_HOLE), [3q, 4q) trimmed.
 */
static void writable(struct probe *p)
{
	const uint64_t q = p->len / 4;
	bool missing;
	uint32_t f;

	fill(p->model, p->len, 0, 1);
	if (write_all(p, p->model, p->len, 0, 0) < 0) {
		FAIL(p, "write", "%s", nbd_get_error());
		return;
	}
	check_read_back(p, "write_read");

	if (nbd_can_zero(p->h) == 1) {
		if (nbd_zero(p->h, q / 2, 2 * q, 0) < 0 ||
		    nbd_zero(p->h, q / 2, 2 * q + q / 2, LIBNBD_CMD_FLAG_NO_HOLE) < 0)
			FAIL(p, "write_zeroes", "%s", nbd_get_error());
		else
			PASS(p, "write_zeroes", "[%" PRIu64 ", %" PRIu64 "), half with NO_HOLE",
			     2 * q, 3 * q);
		memset(p->model + 2 * q, 0, q);
	}
	if (nbd_can_fast_zero(p->h) == 1) {
		int r = nbd_zero(p->h, q / 4, q, LIBNBD_CMD_FLAG_FAST_ZERO);

		if (r == 0) {
			memset(p->model + q, 0, q / 4);
			PASS(p, "fast_zero", "done");
		} else if (nbd_get_errno() == ENOTSUP) {
			PASS(p, "fast_zero", "refused with ENOTSUP, as the protocol allows");
		} else {
			FAIL(p, "fast_zero", "%s", nbd_get_error());
		}
	}
	if (nbd_can_trim(p->h) == 1) {
		if (nbd_trim(p->h, q, 3 * q, 0) < 0)
			FAIL(p, "trim", "%s", nbd_get_error());
		else
			PASS(p, "trim", "[%" PRIu64 ", %" PRIu64 ")", 3 * q, 4 * q);
		memset(p->model + 3 * q, 0, q);
		memset(p->care + 3 * q, 0, q); /* the protocol promises nothing */
	}
	if (nbd_can_fua(p->h) == 1) {
		uint64_t off = q + q / 2, n = q / 4 < 65536 ? q / 4 : 65536;

		fill(p->model + off, n, off, 2);
		if (write_all(p, p->model + off, n, off, LIBNBD_CMD_FLAG_FUA) < 0)
			FAIL(p, "pwrite_fua", "%s", nbd_get_error());
		else
			PASS(p, "pwrite_fua", "%" PRIu64 " bytes at %" PRIu64, n, off);
	}
	if (nbd_can_flush(p->h) == 1) {
		if (nbd_flush(p->h, 0) < 0)
			FAIL(p, "flush", "%s", nbd_get_error());
		else
			PASS(p, "flush", NULL);
	}
	if (nbd_can_cache(p->h) == 1) {
		if (nbd_cache(p->h, q, 0, 0) < 0)
			FAIL(p, "cache", "%s", nbd_get_error());
		else
			PASS(p, "cache", NULL);
	}
	check_read_back(p, "read_back");

	if (nbd_can_trim(p->h) == 1) {
		if (all_zero(p->data + 3 * q, q))
			PASS(p, "trim_reads_zero", NULL);
		else
			FAIL(p, "trim_reads_zero", "the trimmed range holds data");
	}
	if (nbd_can_meta_context(p->h, LIBNBD_CONTEXT_BASE_ALLOCATION) != 1) {
		PASS(p, "block_status", "skipped: base:allocation not offered");
		return;
	}
	if (fetch_extents(p, "block_status") < 0)
		return;
	check_zero_flag_truthful(p, "block_status_zero_is_zero");
	f = flags_over(p, 0, q, 0, &missing);
	if (f & (LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO))
		FAIL(p, "block_status_data", "written data reported with flags 0x%x", f);
	else
		PASS(p, "block_status_data", "allocated, not zero");
	if (nbd_can_trim(p->h) == 1) {
		f = flags_over(p, 3 * q, q, LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO, &missing);
		if (missing)
			FAIL(p, "block_status_trimmed", "trimmed range reported with flags 0x%x, "
			     "not hole+zero throughout", f);
		else
			PASS(p, "block_status_trimmed", "hole+zero");
	}
}

/* Every kind of write is refused by the server; reads go on. */
static void read_only(struct probe *p)
{
	uint8_t *buf = p->data;
	const uint64_t n = p->len < 65536 ? p->len : 65536;
	int r;

	fill(buf, n, 0, 5); /* differs from whatever the export holds */

	if (read_all(p, p->model, p->len, 0) < 0) {
		FAIL(p, "read", "%s", nbd_get_error());
		return;
	}
	PASS(p, "read", "%" PRIu64 " bytes", p->len);

	/* Let the requests reach the server. */
	if (nbd_set_strict_mode(p->h, 0) < 0) {
		FAIL(p, "strict_mode_off", "%s", nbd_get_error());
		return;
	}
	r = nbd_pwrite(p->h, buf, n, 0, 0);
	if (r == 0 || nbd_get_errno() != EPERM)
		FAIL(p, "read_only_pwrite", "%s", r == 0 ? "accepted" : nbd_get_error());
	else
		PASS(p, "read_only_pwrite", "EPERM");
	r = nbd_trim(p->h, n, 0, 0);
	if (r == 0 || (nbd_get_errno() != EPERM && nbd_get_errno() != EINVAL))
		FAIL(p, "read_only_trim", "%s", r == 0 ? "accepted" : nbd_get_error());
	else
		PASS(p, "read_only_trim", "%s", nbd_get_errno() == EPERM ? "EPERM" :
		     "EINVAL (trim not advertised)");
	r = nbd_zero(p->h, n, 0, 0);
	if (r == 0 || (nbd_get_errno() != EPERM && nbd_get_errno() != EINVAL))
		FAIL(p, "read_only_zero", "%s", r == 0 ? "accepted" : nbd_get_error());
	else
		PASS(p, "read_only_zero", "%s", nbd_get_errno() == EPERM ? "EPERM" :
		     "EINVAL (write zeroes not advertised)");
	if (nbd_set_strict_mode(p->h, LIBNBD_STRICT_MASK) < 0)
		FAIL(p, "strict_mode_on", "%s", nbd_get_error());

	if (nbd_can_flush(p->h) == 1 && nbd_flush(p->h, 0) < 0)
		FAIL(p, "flush", "%s", nbd_get_error());
	check_read_back(p, "read_only_still_serves");
	if (nbd_can_meta_context(p->h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1 &&
	    fetch_extents(p, "block_status") == 0)
		check_zero_flag_truthful(p, "block_status_zero_is_zero");
}

/*
 * With NBD_FLAG_CAN_MULTI_CONN, a write flushed on one connection is seen
 * by another, both ways.
 */
static void multi_conn(struct probe *p)
{
	struct nbd_handle *h2;
	uint8_t buf[4096];
	const uint32_t n = sizeof(buf);

	if (nbd_can_multi_conn(p->h) != 1 || p->read_only || nbd_can_flush(p->h) != 1)
		return;
	h2 = nbd_create();
	if (!h2 || nbd_connect_uri(h2, p->uri) < 0) {
		FAIL(p, "multi_conn", "second connection: %s", nbd_get_error());
		nbd_close(h2);
		return;
	}
	fill(p->model, n, 0, 3);
	if (nbd_pwrite(p->h, p->model, n, 0, 0) < 0 || nbd_flush(p->h, 0) < 0 ||
	    nbd_pread(h2, buf, n, 0, 0) < 0) {
		FAIL(p, "multi_conn", "%s", nbd_get_error());
	} else if (memcmp(buf, p->model, n) != 0) {
		FAIL(p, "multi_conn", "a flushed write is not seen by another connection");
	} else {
		fill(p->model, n, 0, 4);
		if (nbd_pwrite(h2, p->model, n, 0, 0) < 0 || nbd_flush(h2, 0) < 0 ||
		    nbd_pread(p->h, buf, n, 0, 0) < 0)
			FAIL(p, "multi_conn", "%s", nbd_get_error());
		else if (memcmp(buf, p->model, n) != 0)
			FAIL(p, "multi_conn", "a flushed write is not seen by the first connection");
		else
			PASS(p, "multi_conn", "flushed writes seen across connections");
	}
	(void)nbd_shutdown(h2, 0);
	nbd_close(h2);
}

static int64_t parse_size(const char *s)
{
	static const char units[] = "KMG";
	char *end;
	unsigned long long v = strtoull(s, &end, 0);
	const char *u = *end ? strchr(units, *end) : NULL;
	unsigned int shift = u ? 10 * (unsigned int)(u - units + 1) : 0;

	if (u)
		end++;
	if (*end || end == s || v > (unsigned long long)INT64_MAX >> shift)
		return -1;
	return (int64_t)(v << shift);
}

static void on_alarm(int sig)
{
	static const char msg[] = "FAIL run_timeout: the run took too long\n";

	(void)sig;
	(void)!write(STDOUT_FILENO, msg, sizeof(msg) - 1);
	_exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: nbd_probe URI [--read-only] [--expect-size N[K|M|G]]\n");
	exit(2);
}

static int setup_region(struct probe *p)
{
	const uint64_t align = 4ULL * (p->min_block > 4096 ? p->min_block : 4096);
	uint64_t len = (uint64_t)p->size < REGION_MAX ? (uint64_t)p->size : REGION_MAX;

	p->len = len / align * align;
	if (p->len == 0) {
		FAIL(p, "region", "export of %" PRId64 " bytes is too small", p->size);
		return -1;
	}
	p->model = malloc(p->len);
	p->care = malloc(p->len);
	p->data = malloc(p->len);
	if (!p->model || !p->care || !p->data) {
		FAIL(p, "region", "out of memory");
		return -1;
	}
	memset(p->care, 1, p->len);
	return 0;
}

int main(int argc, char **argv)
{
	struct probe p = {.expect_size = -1};

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--read-only"))
			p.read_only = true;
		else if (!strcmp(argv[i], "--expect-size") && i + 1 < argc) {
			p.expect_size = parse_size(argv[++i]);
			if (p.expect_size < 0)
				usage();
		} else if (argv[i][0] != '-' && !p.uri)
			p.uri = argv[i];
		else
			usage();
	}
	if (!p.uri)
		usage();
	signal(SIGALRM, on_alarm);
	alarm(RUN_TIMEOUT);

	p.h = nbd_create();
	if (!p.h || nbd_add_meta_context(p.h, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
	    nbd_connect_uri(p.h, p.uri) < 0) {
		FAIL(&p, "connect", "%s: %s", p.uri, nbd_get_error());
	} else {
		PASS(&p, "connect", "%s", nbd_get_protocol(p.h));
		check_info(&p);
		if (p.size > 0 && setup_region(&p) == 0) {
			if (p.read_only)
				read_only(&p);
			else
				writable(&p);
			multi_conn(&p);
		}
		if (nbd_shutdown(p.h, 0) < 0)
			FAIL(&p, "shutdown", "%s", nbd_get_error());
		else
			PASS(&p, "shutdown", NULL);
	}
	nbd_close(p.h);
	free(p.model);
	free(p.care);
	free(p.data);
	free(p.ext);
	printf("%u passed, %u failed\n", p.passed, p.failed);
	return p.failed || !p.passed ? 1 : 0;
}

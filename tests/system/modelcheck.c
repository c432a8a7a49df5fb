/*
 * modelcheck: a model-based random checker of MixSAN under failures, in the
 * manner of Ceph's ceph_test_rados run with thrashosds.  It starts a
 * cluster with the system-test harness, runs client threads (each its own
 * connection, up to --qd asynchronous requests in flight on distinct
 * objects) that issue a random mix of object operations over one shared key
 * space, keeps in memory what every object may hold, and checks every read,
 * stat and attribute read against that model while a thrasher thread kills,
 * stops and restarts OSDs one at a time (failure detection on, as by
 * default).  At the end it reads every object back, compares the pool's
 * listing with the model, waits for recovery to go quiet, stops the OSDs
 * and compares every replica offline.  A lost acknowledged write, an undone
 * deletion, a stale read, corrupt data, a daemon crash or differing replicas
 * make it exit 1.  The meson test runs it for two minutes; by hand it runs
 * as long as asked (--help).  docs/testing.md describes it for users.
 *
 * Pointed at a cluster it did not start (MIXSAN_TEST_MON, with --actions
 * none) it disrupts nothing itself: whoever runs it cuts hosts or stops
 * daemons meanwhile (tests/rig/host_cut.sh).  A watcher thread takes the
 * thrasher's place and follows the map (watch_map), so that requests that
 * overlap a change of the map get the same allowance as those that overlap
 * a thrasher action.  The final checks that need the daemons' files (their
 * logs, the stores read offline) are left out; the deep scrub of every PG
 * still compares the replicas.
 *
 * NOTES ON THE MODEL
 *
 * Each object has a set of at most MAX_CAND candidate states (struct mobj),
 * one of which the cluster holds.  A state (struct ostate) is existence,
 * size, the data as extents of a deterministic byte pattern (seed, base)
 * with zeroes between them, and up to N_XNAMES attributes as (length,
 * seed), so a state costs a few dozen bytes however large the object.  The
 * checker has at most one request in flight per object (mobj.busy), so the
 * cluster must apply an object's requests in the order the model does.
 * Transitions, all in complete_req() on the thread that owns the object:
 *
 *   candidates --(a mutation ends with the result some candidates predict:
 *       process_mutation)--> those candidates with the mutation applied
 *   candidates --(a read, stat or getxattr result that some candidates
 *       explain: process_read)--> those candidates
 *   candidates --(a mutation ends with an error no candidate predicts, such
 *       as ETIMEDOUT under --op-timeout)--> before and after, deduplicated;
 *       more than MAX_CAND: unknown (counted as a collapse)
 *   candidates --(a result no candidate explains)--> reported, classified
 *       (classify_read, classify_mutation), then unknown
 *   unknown --(a remove ends with 0 or ENOENT)--> definitely absent
 *
 * Unknown objects are not checked; the op chooser sends them a remove next.
 * A remove resets because it is the one operation whose outcome does not
 * depend on the earlier state: write_full keeps the attributes.
 *
 * The client retries a request for ever (unless --op-timeout is given), so
 * every request ends with the result of exactly one application.  One
 * exception is allowed: a remove whose reply was lost with its primary, or
 * that was resent to another primary when the acting set changed, may find
 * no object any more, so ENOENT is accepted from a remove that spanned a
 * disruption (and counted).  A request spanned one when g_drop_gen[primary]
 * changed meanwhile (the thrasher bumps it before and after killing or
 * stopping an OSD: "its primary was hit", marked * in reports), or when a
 * thrasher action was under way (g_action_gen, odd during an action, which
 * lasts until the map shows every OSD up again; marked ~).
 *
 * Classes of problems (enum problem): a read that matches an older state of
 * the object is a lost acknowledged write, unless the same read repeated a
 * moment later gives the current state (a stale read); an object present
 * after an acknowledged remove is a resurrected deletion; the last mutation
 * found applied twice is counted apart; anything else is corruption.
 *
 * Offline at the end (check_copies) every copy of every object on its up
 * set is compared with the model, straight from the OSDs' stores.  A copy
 * that differs is explained where possible (explain_copy) as an earlier
 * state, or as the model's state without one acknowledged mutation, which
 * names the request a replica missed.  The history kept for this and for
 * reports: the last N_MHIST mutations and N_RHIST reads of each object, and
 * the states before its last N_PAST mutations.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "map.h"
#include "msg.h"
#include "placement.h"
#include "store.h"
#include "util.h"

#define MAX_CAND 4   /* candidate states per object before "unknown" */
#define N_PAST 16    /* earlier states kept per object, for diagnosis */
#define N_MHIST 16   /* mutations remembered per object, for reports */
#define N_RHIST 4    /* reads remembered per object, for reports */
#define N_XNAMES 4   /* attribute names the checker uses */
#define XATTR_MAX 256 /* largest attribute value it writes */
#define MAX_REPORTS 25 /* detailed problem reports printed */
#define POOL_NAME "modelcheck"

/* Options ------------------------------------------------------------------- */

enum action { A_KILL, A_STOP, A_RESTART, A_OUT, A_ADD, A_TIERMODE, A__COUNT };
static const char *const action_names[A__COUNT] = {"kill", "stop", "restart", "out",
						     "add", "tiermode"};
#define CACHE_POOL_NAME "modelcheck-cache"

struct opts {
	uint64_t seed;
	unsigned seconds;      /* 0: no time limit */
	uint64_t ops;          /* 0: no limit on requests */
	int osds;
	int clients;
	int qd;
	int objects;
	uint32_t max_size;     /* largest object the checker makes */
	unsigned actions;      /* mask of enum action */
	double interval;       /* mean seconds between thrasher actions */
	double settle;         /* seconds after an action before the next */
	double quiet;          /* log silence taken as the end of recovery */
	int pg_num;
	unsigned op_timeout_ms;
	int max_osds;          /* limit for "add" */
	bool failure_detection; /* the monitor marks silent OSDs down (default) */
	const char *failure_domain; /* of the pool the checker creates */
	const char *read_policy; /* of that pool; NULL: primary (not set) */
	const char *tier;        /* a cache pool in front of it, in this mode */
	bool verbose;
};

static struct opts g_opt = {
	.seconds = 150,
	.osds = 5,
	.clients = 4,
	.qd = 8,
	.objects = 2000,
	.max_size = 256u * 1024u,
	.actions = (1u << A_KILL) | (1u << A_RESTART) | (1u << A_STOP),
	.interval = 3.0,
	.settle = 2.0,
	.quiet = 3.0,
	.pg_num = 64,
	.max_osds = H_MAX_OSDS,
	.failure_detection = true,
	.failure_domain = "osd",
};

/* Operations ---------------------------------------------------------------- */

enum op {
	OP_WRITE_FULL,
	OP_WRITE,
	OP_APPEND,
	OP_TRUNCATE,
	OP_REMOVE,
	OP_SETXATTR,
	OP_RMXATTR,
	/* Reads from here on. */
	OP_READ,
	OP_READ_RANGE,
	OP_STAT,
	OP_GETXATTR,
	OP__COUNT
};
static const char *const op_names[OP__COUNT] = {
	"write_full", "write", "append", "truncate", "remove", "setxattr", "rmxattr",
	"read", "read_range", "stat", "getxattr",
};
/* The mix, in parts of 100. */
static const unsigned op_weight[OP__COUNT] = {12, 14, 8, 6, 3, 7, 4, 18, 12, 8, 8};

static bool is_mutation(int op)
{
	return op < OP_READ;
}

enum problem {
	P_LOST,
	P_RESURRECT,
	P_STALE,
	P_CORRUPT,
	P_DUP,
	P_UNEXPECTED,
	P_DAEMON,
	P_REPLICA,
	P_HEALTH,
	P_SCRUB,
	P__COUNT
};
static const char *const problem_names[P__COUNT] = {
	"lost acknowledged write", "resurrected deletion", "stale read", "corruption",
	"applied twice", "unexpected error", "daemon failure", "replica unlike the model",
	"not HEALTH_OK at the end", "inconsistent PG at the final deep scrub",
};

/* Object states ------------------------------------------------------------- */

/* Bytes [start, end) of an object hold pattern seed from index start - base. */
struct seg {
	uint32_t start, end, base;
	uint64_t seed;
};

struct xav {
	bool present;
	uint16_t len;
	uint64_t seed;
};

struct ostate {
	bool exists;
	uint32_t size;
	uint32_t nseg;
	struct seg *segs; /* From malloc(): nseg extents, sorted, disjoint, below size. */
	struct xav xa[N_XNAMES];
};

/* One request remembered for reports. */
struct hent {
	double t;
	int64_t res;
	uint64_t seed;
	uint32_t off, len;
	int mseq;       /* the model step it made (mobj.nmut then), or -1 */
	uint8_t op, xn, worker;
	bool primary_hit; /* its primary was killed or stopped meanwhile */
	bool in_action;   /* a thrasher action was under way meanwhile */
};

/*
 * The model of one object.  busy is taken (compare-and-swap) by the worker
 * that sends a request on the object and released when it has processed the
 * reply; everything else is touched only by the holder of busy, or in the
 * final verification only by the worker whose slice holds the object.
 */
struct mobj {
	int busy;
	bool unknown;
	int ncand;
	struct ostate cand[MAX_CAND];
	unsigned nmut;              /* mutations processed */
	int npast;                  /* earlier definite states, newest last */
	struct ostate past[N_PAST];
	unsigned past_seq[N_PAST];  /* the mutation (nmut) that followed each */
	unsigned nmhist;            /* mutations seen; the last N_MHIST in mhist */
	struct hent mhist[N_MHIST];
	unsigned nrhist;            /* reads seen; the last N_RHIST in rhist */
	struct hent rhist[N_RHIST];
	uint64_t ver_epoch, ver_seq; /* highest version a stat returned */
};

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Bytes [from, from + n) of the pattern of seed into out.  Every write
 * sends pattern bytes from index 0, so a write's data is (seed, length). */
static void pat_fill(uint64_t seed, uint64_t from, uint32_t n, uint8_t *out)
{
	uint64_t p = from;
	uint32_t i = 0;

	while (i < n) {
		uint64_t word = mix64(seed ^ ((p >> 3) * 0xd6e8feb86659fd93ull));
		uint32_t k = (uint32_t)(p & 7), m = MX_MIN(8 - k, n - i);
		uint8_t b[8];

		memcpy(b, &word, 8);
		memcpy(out + i, b + k, m);
		i += m;
		p += m;
	}
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		H_FATAL("out of memory");
	return p;
}

static void st_free(struct ostate *s)
{
	free(s->segs);
	memset(s, 0, sizeof(*s));
}

static void st_copy(struct ostate *dst, const struct ostate *src)
{
	*dst = *src;
	dst->segs = NULL;
	if (src->nseg) {
		dst->segs = xmalloc(src->nseg * sizeof(*src->segs));
		memcpy(dst->segs, src->segs, src->nseg * sizeof(*src->segs));
	}
}

static bool st_equal(const struct ostate *a, const struct ostate *b)
{
	if (a->exists != b->exists || a->size != b->size || a->nseg != b->nseg)
		return false;
	for (int i = 0; i < N_XNAMES; i++)
		if (a->xa[i].present != b->xa[i].present ||
		    (a->xa[i].present &&
		     (a->xa[i].len != b->xa[i].len || a->xa[i].seed != b->xa[i].seed)))
			return false;
	return a->nseg == 0 || memcmp(a->segs, b->segs, a->nseg * sizeof(*a->segs)) == 0;
}

/* Zero bytes [a, b): drop the extents' parts inside. */
static void st_punch(struct ostate *s, uint32_t a, uint32_t b)
{
	/* At most one extent straddles both ends: one more entry at most. */
	struct seg *v = xmalloc((s->nseg + 1) * sizeof(*v));
	uint32_t n = 0;

	for (uint32_t i = 0; i < s->nseg; i++) {
		struct seg g = s->segs[i];

		if (g.end <= a || g.start >= b) {
			v[n++] = g;
			continue;
		}
		if (g.start < a) {
			v[n] = g;
			v[n++].end = a;
		}
		if (g.end > b) {
			v[n] = g;
			v[n++].start = b;
		}
	}
	free(s->segs);
	s->segs = v;
	s->nseg = n;
}

/* Write len bytes of pattern seed (from index 0) at off. */
static void st_write(struct ostate *s, uint32_t off, uint32_t len, uint64_t seed)
{
	uint32_t i;

	s->exists = true;
	if (len == 0)
		return; /* creates, never extends */
	st_punch(s, off, off + len);
	s->segs = realloc(s->segs, (s->nseg + 1) * sizeof(*s->segs));
	if (!s->segs)
		H_FATAL("out of memory");
	for (i = 0; i < s->nseg && s->segs[i].start < off; i++)
		;
	memmove(&s->segs[i + 1], &s->segs[i], (s->nseg - i) * sizeof(*s->segs));
	s->segs[i] = (struct seg){.start = off, .end = off + len, .base = off, .seed = seed};
	s->nseg++;
	s->size = MX_MAX(s->size, off + len);
}

static void st_truncate(struct ostate *s, uint32_t size)
{
	s->exists = true;
	st_punch(s, size, UINT32_MAX);
	s->size = size;
}

/* Bytes [off, off + n) of state s into out (n within the object). */
static void st_render(const struct ostate *s, uint32_t off, uint32_t n, uint8_t *out)
{
	memset(out, 0, n);
	for (uint32_t i = 0; i < s->nseg; i++) {
		const struct seg *g = &s->segs[i];
		uint32_t a = MX_MAX(g->start, off), b = MX_MIN(g->end, off + n);

		if (a < b)
			pat_fill(g->seed, a - g->base, b - a, out + (a - off));
	}
}

static void st_describe(const struct ostate *s, char *buf, size_t sz)
{
	int n;

	if (!s->exists) {
		snprintf(buf, sz, "absent");
		return;
	}
	n = snprintf(buf, sz, "size %u in %u extents, attrs [", s->size, s->nseg);
	for (int i = 0; i < N_XNAMES && n > 0 && (size_t)n < sz; i++)
		if (s->xa[i].present)
			n += snprintf(buf + n, sz - (size_t)n, " %d:%u", i, s->xa[i].len);
	if (n > 0 && (size_t)n < sz)
		snprintf(buf + n, sz - (size_t)n, " ]");
}

/* Requests and workers ------------------------------------------------------ */

struct worker;

struct req {
	struct worker *w;
	struct req *next_done;  /* on w->done, under w->lock */
	mixsan_completion_t *c; /* NULL when the slot is free */
	int obj;
	uint8_t op, xn;
	uint32_t off, len;
	uint64_t seed;
	uint8_t *buf;           /* From malloc(): g_buf_size bytes, data or destination */
	struct mixsan_stat st;
	int primary;            /* the object's primary when sent, or -1 */
	uint64_t drop_gen;      /* g_drop_gen[primary] when sent */
	uint64_t action_gen;    /* g_action_gen when sent */
	double t_start;
};

struct wstats {
	uint64_t done[OP__COUNT], errors[OP__COUNT];
	uint64_t acked, checked, unchecked, collapses, resets, remove_enoent;
	uint64_t verified, unverifiable, slow;
	double max_lat;
};

struct worker {
	int idx;
	pthread_t thread;
	mixsan_cluster_t *cl;
	mixsan_pool_t *pool;
	uint64_t rng;
	pthread_mutex_t lock;   /* guards done */
	pthread_cond_t cond;
	struct req *done;       /* completed requests, newest first */
	struct req *reqs;       /* From malloc(): g_opt.qd slots */
	int inflight;           /* atomic access (read by supervise) */
	bool finished;          /* atomic access: worker_main returned */
	bool verify;            /* the final pass rather than the load */
	int vobj, vstep;        /* verify: next object of the slice, next check */
	uint8_t *scratch;       /* From malloc(): g_buf_size, expected bytes */
	uint8_t *scratch2;      /* From malloc(): g_buf_size, repeated reads */
	struct wstats st;
};

static struct mobj *g_objs;       /* g_opt.objects entries */
static int *g_primary;            /* per object; atomic access */
static uint64_t g_drop_gen[H_MAX_OSDS]; /* atomic access */
static uint64_t g_action_gen;           /* atomic; odd during a thrasher action */
static size_t g_buf_size;
static bool g_running = true;     /* atomic access: the load goes on */
static uint64_t g_started, g_completed; /* atomic */
static uint64_t g_problems[P__COUNT];   /* atomic */
static unsigned g_reports;              /* atomic */
static volatile sig_atomic_t g_signalled;
static double g_longest_gap, g_longest_gap_end; /* the load's longest time without a reply */
static pthread_mutex_t g_print_lock = PTHREAD_MUTEX_INITIALIZER;
static struct timespec g_t0;

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - g_t0.tv_sec) + (double)(t.tv_nsec - g_t0.tv_nsec) * 1e-9;
}

static bool running(void)
{
	return __atomic_load_n(&g_running, __ATOMIC_ACQUIRE);
}

static void stop_running(void)
{
	__atomic_store_n(&g_running, false, __ATOMIC_RELEASE);
}

static void obj_name(int o, char *buf, size_t sz)
{
	snprintf(buf, sz, "obj.%05d", o);
}

static void xattr_name(int i, char *buf, size_t sz)
{
	snprintf(buf, sz, "user.mc%d", i);
}

static uint64_t rnd(struct worker *w, uint64_t n)
{
	return n ? h_rand(&w->rng) % n : 0;
}

static void describe_req(const struct req *r, char *buf, size_t sz)
{
	switch (r->op) {
	case OP_WRITE_FULL:
	case OP_APPEND:
		snprintf(buf, sz, "%s len %u seed %016" PRIx64, op_names[r->op], r->len, r->seed);
		break;
	case OP_WRITE:
		snprintf(buf, sz, "write %u@%u seed %016" PRIx64, r->len, r->off, r->seed);
		break;
	case OP_TRUNCATE:
		snprintf(buf, sz, "truncate to %u", r->off);
		break;
	case OP_SETXATTR:
		snprintf(buf, sz, "setxattr %d len %u seed %016" PRIx64, r->xn, r->len, r->seed);
		break;
	case OP_RMXATTR:
	case OP_GETXATTR:
		snprintf(buf, sz, "%s %d", op_names[r->op], r->xn);
		break;
	case OP_READ:
	case OP_READ_RANGE:
		snprintf(buf, sz, "%s %u@%u", op_names[r->op], r->len, r->off);
		break;
	default:
		snprintf(buf, sz, "%s", op_names[r->op]);
		break;
	}
}

static void describe_res(int64_t res, char *buf, size_t sz)
{
	if (res < 0)
		snprintf(buf, sz, "%s", strerror((int)-res));
	else
		snprintf(buf, sz, "%" PRId64, res);
}

/* Apply mutation r to state s as the primary plans it on an object in
 * state s; returns the result the client must see (0 or a negative errno,
 * s unchanged then). */
static int64_t st_apply(struct ostate *s, const struct req *r)
{
	switch (r->op) {
	case OP_WRITE_FULL:
		st_truncate(s, 0);
		st_write(s, 0, r->len, r->seed);
		return 0;
	case OP_WRITE:
		st_write(s, r->off, r->len, r->seed);
		return 0;
	case OP_APPEND:
		st_write(s, s->size, r->len, r->seed);
		return 0;
	case OP_TRUNCATE:
		st_truncate(s, r->off);
		return 0;
	case OP_REMOVE:
		if (!s->exists)
			return -ENOENT;
		st_free(s);
		return 0;
	case OP_SETXATTR:
		s->exists = true;
		s->xa[r->xn] = (struct xav){.present = true, .len = (uint16_t)r->len,
					    .seed = r->seed};
		return 0;
	case OP_RMXATTR:
		if (!s->exists)
			return -ENOENT;
		if (!s->xa[r->xn].present)
			return -ENODATA;
		s->xa[r->xn].present = false;
		return 0;
	default:
		abort();
	}
}

/* Whether state s explains the result of read-kind request r (res, with
 * its data in buf or r->st).  scratch takes the expected bytes. */
static bool st_read_matches(const struct ostate *s, const struct req *r, int64_t res,
			    const uint8_t *buf, uint8_t *scratch)
{
	if (!s->exists)
		return res == -ENOENT;
	switch (r->op) {
	case OP_READ:
	case OP_READ_RANGE: {
		uint32_t n = r->off >= s->size ? 0 : MX_MIN(r->len, s->size - r->off);

		if (res != n)
			return false;
		st_render(s, r->off, n, scratch);
		return memcmp(buf, scratch, n) == 0;
	}
	case OP_STAT:
		return res == 0 && r->st.size == s->size;
	case OP_GETXATTR: {
		const struct xav *x = &s->xa[r->xn];

		if (!x->present)
			return res == -ENODATA;
		if (res != x->len)
			return false;
		pat_fill(x->seed, 0, x->len, scratch);
		return memcmp(buf, scratch, x->len) == 0;
	}
	default:
		abort();
	}
}

/* Reports -------------------------------------------------------------------- */

static int cmp_hent_time(const void *a, const void *b)
{
	const struct hent *x = *(const struct hent *const *)a, *y = *(const struct hent *const *)b;

	return (x->t > y->t) - (x->t < y->t);
}

/* The object's last mutations and reads, merged in the order sent. */
static void print_history(const struct mobj *mo)
{
	const struct hent *v[N_MHIST + N_RHIST];
	int n = 0;

	for (unsigned i = mo->nmhist > N_MHIST ? mo->nmhist - N_MHIST : 0; i < mo->nmhist; i++)
		v[n++] = &mo->mhist[i % N_MHIST];
	for (unsigned i = mo->nrhist > N_RHIST ? mo->nrhist - N_RHIST : 0; i < mo->nrhist; i++)
		v[n++] = &mo->rhist[i % N_RHIST];
	qsort(v, (size_t)n, sizeof(v[0]), cmp_hent_time);
	fprintf(stderr, "  last %d mutations and %d reads on the object (oldest first; * its "
			"primary was killed, restarted or stopped meanwhile, ~ another thrasher "
			"action was under way):\n",
		MX_MIN((int)mo->nmhist, N_MHIST), MX_MIN((int)mo->nrhist, N_RHIST));
	for (int i = 0; i < n; i++) {
		const struct hent *h = v[i];
		struct req r = {.op = h->op, .xn = h->xn, .off = h->off, .len = h->len,
				.seed = h->seed};
		char d[128], res[64];

		describe_req(&r, d, sizeof(d));
		describe_res(h->res, res, sizeof(res));
		fprintf(stderr, "    t=%8.3f client %u %-48s -> %s%s\n", h->t, h->worker, d, res,
			h->primary_hit ? " *" : h->in_action ? " ~" : "");
	}
}

/* Count problem p on object obj (-1: none) and, for the first MAX_REPORTS,
 * print what was asked (r, may be NULL) and what came back, what the model
 * holds and the object's history.  Called before the model changes. */
static void vreport(enum problem p, const struct worker *w, const struct req *r, int64_t res,
		    int obj, const char *fmt, va_list ap)
{
	const struct mobj *mo = obj >= 0 ? &g_objs[obj] : NULL;
	char name[32], d[128], rs[64], st[256];

	__atomic_add_fetch(&g_problems[p], 1, __ATOMIC_RELAXED);
	if (__atomic_fetch_add(&g_reports, 1, __ATOMIC_RELAXED) >= MAX_REPORTS)
		return;
	pthread_mutex_lock(&g_print_lock);
	fprintf(stderr, "modelcheck: PROBLEM (%s) at t=%.3f, seed %" PRIu64, problem_names[p],
		now_s(), g_opt.seed);
	if (obj >= 0) {
		obj_name(obj, name, sizeof(name));
		fprintf(stderr, ", %s", name);
	}
	if (r) {
		describe_req(r, d, sizeof(d));
		describe_res(res, rs, sizeof(rs));
		fprintf(stderr, ", client %d: %s -> %s", w ? w->idx : -1, d, rs);
		if (r->op == OP_STAT && res == 0)
			fprintf(stderr, " (size %" PRIu64 ", version %" PRIu64 ".%" PRIu64 ")",
				r->st.size, r->st.version_epoch, r->st.version_seq);
	}
	fputs("\n  ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	if (mo) {
		if (mo->unknown)
			fprintf(stderr, "  model: unknown\n");
		for (int i = 0; i < mo->ncand; i++) {
			st_describe(&mo->cand[i], st, sizeof(st));
			fprintf(stderr, "  model: candidate %d: %s\n", i, st);
		}
		print_history(mo);
	}
	pthread_mutex_unlock(&g_print_lock);
}

/* A problem with request r (may be NULL: then no object either). */
static void __attribute__((format(printf, 5, 6)))
report(enum problem p, const struct worker *w, const struct req *r, int64_t res,
       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(p, w, r, res, r ? r->obj : -1, fmt, ap);
	va_end(ap);
}

/*
 * At the end, once every object is verified: the cluster must come back
 * to HEALTH_OK with every PG active+clean (bounded), and a deep scrub of
 * every PG of the pool must find every replica identical.
 */
static void check_health(mixsan_cluster_t *admin, int32_t pool_id)
{
	struct mx_map *m = mx_client_map_copy(admin);
	const struct mx_pool *p = m ? mx_map_pool_by_id(m, pool_id) : NULL;
	uint32_t bad = 0, failed = 0, objects = 0;
	char why[2048];
	double t = now_s();

	if (h_wait_health_ok(admin, 120, why, sizeof(why)) < 0)
		report(P_HEALTH, NULL, NULL, 0, "no HEALTH_OK within 120 s: %s", why);
	fprintf(stderr, "modelcheck: t=%7.3f health after %.1f s: %s\n", now_s(), now_s() - t,
		why);
	for (uint32_t pg = 0; p && pg < p->pg_num; pg++) {
		struct mx_client_scrub_result res;
		int r = mx_client_pg_scrub(admin, pool_id, pg, MX_SCRUB_DEEP, &res);

		if (r < 0) {
			failed++;
			report(P_SCRUB, NULL, NULL, 0, "deep scrub of pg %d.%x failed: %s", pool_id,
			       pg, strerror(-r));
			continue;
		}
		objects += res.scrubbed;
		if (res.inconsistent || res.errors) {
			bad++;
			report(P_SCRUB, NULL, NULL, 0,
			       "deep scrub of pg %d.%x: %u objects, %u inconsistent, %u errors",
			       pool_id, pg, res.scrubbed, res.inconsistent, res.errors);
		}
	}
	fprintf(stderr, "modelcheck: t=%7.3f deep scrub of %u PGs: %u objects, %u PGs "
			"inconsistent, %u not scrubbed\n",
		now_s(), p ? p->pg_num : 0, objects, bad, failed);
	mx_map_free(m);
}

/* A problem with object obj found without a request. */
static void __attribute__((format(printf, 3, 4)))
report_obj(enum problem p, int obj, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(p, NULL, NULL, 0, obj, fmt, ap);
	va_end(ap);
}

/* The model ------------------------------------------------------------------ */

static void set_unknown(struct mobj *mo)
{
	for (int i = 0; i < mo->ncand; i++)
		st_free(&mo->cand[i]);
	mo->ncand = 0;
	mo->unknown = true;
}

static void set_absent(struct mobj *mo)
{
	set_unknown(mo);
	mo->unknown = false;
	mo->ncand = 1;
}

/* Keep a copy of definite state s, which mutation seq then changed, among
 * the object's earlier states. */
static void push_past(struct mobj *mo, const struct ostate *s, unsigned seq)
{
	if (mo->npast == N_PAST) {
		st_free(&mo->past[0]);
		memmove(&mo->past[0], &mo->past[1], (N_PAST - 1) * sizeof(mo->past[0]));
		memmove(&mo->past_seq[0], &mo->past_seq[1], (N_PAST - 1) * sizeof(unsigned));
		memset(&mo->past[N_PAST - 1], 0, sizeof(mo->past[0]));
		mo->npast--;
	}
	mo->past_seq[mo->npast] = seq;
	st_copy(&mo->past[mo->npast++], s);
}

/* Add s (taken) to v[0..*n) unless an equal state is there. */
static void add_unique(struct ostate *v, int *n, struct ostate *s)
{
	for (int i = 0; i < *n; i++)
		if (st_equal(&v[i], s)) {
			st_free(s);
			return;
		}
	v[(*n)++] = *s;
}

static void replace_cands(struct mobj *mo, struct ostate *v, int n)
{
	for (int i = 0; i < mo->ncand; i++)
		st_free(&mo->cand[i]);
	memcpy(mo->cand, v, (size_t)n * sizeof(*v));
	mo->ncand = n;
}

/* Whether res is an error that says nothing about the object's state. */
static bool is_state_result(int64_t res)
{
	return res >= 0 || res == -ENOENT || res == -ENODATA;
}

/* A mutation's result contradicts every candidate. */
static void classify_mutation(struct worker *w, struct mobj *mo, struct req *r, int64_t res)
{
	bool says_exists = res == 0 || res == -ENODATA;
	bool model_exists = mo->ncand > 0 && mo->cand[0].exists;

	if (!model_exists && says_exists && r->op != OP_SETXATTR)
		report(P_RESURRECT, w, r, res,
		       "the model says the object is absent, the cluster acts on it");
	else
		report(P_LOST, w, r, res,
		       "the result shows the cluster's object differs from every candidate "
		       "of the model");
}

/* h is the request's history entry: its mseq is set when the request takes
 * the object from one definite state to another. */
static void process_mutation(struct worker *w, struct mobj *mo, struct req *r, int64_t res,
			     bool disrupted, struct hent *h)
{
	struct ostate next[2 * MAX_CAND];
	bool resent_remove = false;
	unsigned seq = mo->nmut++;
	int n = 0;

	if (mo->unknown) {
		if (r->op == OP_REMOVE && (res == 0 || res == -ENOENT)) {
			set_absent(mo);
			w->st.resets++;
		}
		return;
	}
	for (int i = 0; i < mo->ncand; i++) {
		struct ostate t;
		int64_t exp;

		st_copy(&t, &mo->cand[i]);
		exp = st_apply(&t, r);
		if (exp == res) {
			add_unique(next, &n, &t);
		} else if (r->op == OP_REMOVE && res == -ENOENT && exp == 0 && disrupted) {
			/* Removed, reply lost with the primary, resent. */
			resent_remove = true;
			add_unique(next, &n, &t);
		} else {
			st_free(&t);
		}
	}
	if (n > 0) {
		if (res == 0)
			w->st.acked++;
		w->st.remove_enoent += resent_remove;
		if (mo->ncand == 1) {
			push_past(mo, &mo->cand[0], seq);
			if (n == 1)
				h->mseq = (int)seq;
		}
		replace_cands(mo, next, n);
		return;
	}
	if (!is_state_result(res)) {
		/* Applied or not: keep both. */
		if (res != -ETIMEDOUT || !g_opt.op_timeout_ms)
			report(P_UNEXPECTED, w, r, res, "a mutation failed");
		for (int i = 0; i < mo->ncand; i++) {
			struct ostate t;

			st_copy(&t, &mo->cand[i]);
			add_unique(next, &n, &t);
			st_copy(&t, &mo->cand[i]);
			if (st_apply(&t, r) == 0)
				add_unique(next, &n, &t);
			else
				st_free(&t);
		}
		if (n > MAX_CAND) {
			for (int i = 0; i < n; i++)
				st_free(&next[i]);
			set_unknown(mo);
			w->st.collapses++;
			return;
		}
		replace_cands(mo, next, n);
		return;
	}
	classify_mutation(w, mo, r, res);
	if (r->op == OP_REMOVE)
		set_absent(mo);
	else
		set_unknown(mo);
}

/* Send read-kind request r again, synchronously, into w->scratch2 (for
 * telling a stale read from a lost write).  Returns its result; *again
 * gets the repeated request. */
static int64_t reread(struct worker *w, const struct req *r, struct req *again)
{
	char name[32], xn[32];

	*again = *r;
	again->buf = w->scratch2;
	obj_name(r->obj, name, sizeof(name));
	switch (r->op) {
	case OP_READ:
	case OP_READ_RANGE:
		return mixsan_read(w->pool, name, again->buf, again->len, again->off);
	case OP_STAT:
		return mixsan_stat(w->pool, name, &again->st);
	default:
		xattr_name(r->xn, xn, sizeof(xn));
		return mixsan_getxattr(w->pool, name, xn, again->buf, XATTR_MAX);
	}
}

static bool any_cand_matches(struct worker *w, const struct mobj *mo, const struct req *r,
			     int64_t res, const uint8_t *buf)
{
	for (int i = 0; i < mo->ncand; i++)
		if (st_read_matches(&mo->cand[i], r, res, buf, w->scratch))
			return true;
	return false;
}

/* Where a read differs from the model's first candidate, in words. */
static void read_difference(struct worker *w, const struct mobj *mo, const struct req *r,
			    int64_t res, char *buf, size_t sz)
{
	const struct ostate *s = &mo->cand[0];
	uint32_t n;

	snprintf(buf, sz, "the result matches no candidate of the model");
	if (!s->exists || res < 0 || (r->op != OP_READ && r->op != OP_READ_RANGE))
		return;
	n = r->off >= s->size ? 0 : MX_MIN(r->len, s->size - r->off);
	if (res != n) {
		snprintf(buf, sz, "%" PRId64 " bytes read, the model has %u there", res, n);
		return;
	}
	st_render(s, r->off, n, w->scratch);
	for (uint32_t i = 0; i < n; i++)
		if (r->buf[i] != w->scratch[i]) {
			uint32_t j = i;

			while (j < n && r->buf[j] != w->scratch[j])
				j++;
			snprintf(buf, sz,
				 "first difference at byte %u (read 0x%02x, expected 0x%02x); "
				 "%u bytes differ from there on in a row",
				 r->off + i, r->buf[i], w->scratch[i], j - i);
			return;
		}
}

/* A read result that no candidate explains: tell what it is and report. */
static void classify_read(struct worker *w, struct mobj *mo, struct req *r, int64_t res)
{
	const struct ostate *cur = &mo->cand[0];
	char diff[256];
	int past = -1;

	read_difference(w, mo, r, res, diff, sizeof(diff));
	for (int i = mo->npast - 1; i >= 0 && past < 0; i--)
		if (st_read_matches(&mo->past[i], r, res, r->buf, w->scratch))
			past = i;
	if (past >= 0) {
		struct req again;
		int64_t res2;
		char st[256];

		st_describe(&mo->past[past], st, sizeof(st));
		usleep(200 * 1000);
		res2 = reread(w, r, &again);
		if (any_cand_matches(w, mo, &again, res2, again.buf))
			report(P_STALE, w, r, res,
			       "the read returned an earlier state (%d changes back: %s); "
			       "repeated, it returns the current one; %s",
			       mo->npast - past, st, diff);
		else if (!cur->exists && mo->past[past].exists)
			report(P_RESURRECT, w, r, res,
			       "the object is back after an acknowledged remove (as %d changes "
			       "back: %s); repeated: %" PRId64,
			       mo->npast - past, st, res2);
		else
			report(P_LOST, w, r, res,
			       "the read returned an earlier state (%d changes back: %s), again "
			       "when repeated (%" PRId64 "); %s",
			       mo->npast - past, st, res2, diff);
		return;
	}
	if (mo->ncand == 1 && mo->nmhist >= 1) {
		/* The last mutation applied a second time? */
		const struct hent *h = &mo->mhist[(mo->nmhist - 1) % N_MHIST];
		struct req m = {.op = h->op, .xn = h->xn, .off = h->off, .len = h->len,
				.seed = h->seed};
		struct ostate t;
		bool dup;

		st_copy(&t, cur);
		dup = h->res == 0 && st_apply(&t, &m) == 0 &&
		      st_read_matches(&t, r, res, r->buf, w->scratch);
		st_free(&t);
		if (dup) {
			report(P_DUP, w, r, res, "the object shows its last %s applied twice",
			       op_names[h->op]);
			return;
		}
	}
	if (!cur->exists && res >= 0)
		report(P_RESURRECT, w, r, res, "the model says the object is absent");
	else if (cur->exists && res == -ENOENT)
		report(P_LOST, w, r, res, "the object is gone; the model says it exists");
	else
		report(P_CORRUPT, w, r, res, "%s", diff);
}

static void process_read(struct worker *w, struct mobj *mo, struct req *r, int64_t res)
{
	struct ostate keep[MAX_CAND];
	int n = 0;

	if (mo->unknown) {
		w->st.unchecked++;
		return;
	}
	if (!is_state_result(res)) {
		if (res != -ETIMEDOUT || !g_opt.op_timeout_ms)
			report(P_UNEXPECTED, w, r, res, "a read failed");
		w->st.unchecked++;
		return;
	}
	for (int i = 0; i < mo->ncand; i++) {
		if (st_read_matches(&mo->cand[i], r, res, r->buf, w->scratch)) {
			st_copy(&keep[n], &mo->cand[i]);
			n++;
		}
	}
	if (n == 0) {
		classify_read(w, mo, r, res);
		set_unknown(mo);
		return;
	}
	w->st.checked++;
	replace_cands(mo, keep, n);
	if (r->op == OP_STAT && res == 0 && !g_opt.tier) {
		/* (Through a tier the version is the serving copy's, in the
		 * cache or the base: docs/cache-tiering.md, "Versions".) */
		if (r->st.version_epoch < mo->ver_epoch ||
		    (r->st.version_epoch == mo->ver_epoch && r->st.version_seq < mo->ver_seq))
			report(P_STALE, w, r, res,
			       "the object's version went back from %" PRIu64 ".%" PRIu64,
			       mo->ver_epoch, mo->ver_seq);
		mo->ver_epoch = r->st.version_epoch;
		mo->ver_seq = r->st.version_seq;
	}
}

/* Workers -------------------------------------------------------------------- */

/* Whether r's primary (when sent) was killed, restarted or stopped, or
 * the object's primary moved, while r was in flight. */
static bool req_primary_hit(const struct req *r)
{
	int p = __atomic_load_n(&g_primary[r->obj], __ATOMIC_ACQUIRE);

	if (p != r->primary)
		return true;
	return p >= 0 && __atomic_load_n(&g_drop_gen[p], __ATOMIC_ACQUIRE) != r->drop_gen;
}

/* Whether a thrasher action was under way at any time while r was in
 * flight. */
static bool req_in_action(const struct req *r)
{
	return (r->action_gen & 1) ||
	       __atomic_load_n(&g_action_gen, __ATOMIC_ACQUIRE) != r->action_gen;
}

static void on_complete(mixsan_completion_t *c, void *arg)
{
	struct req *r = arg;
	struct worker *w = r->w;

	(void)c;
	pthread_mutex_lock(&w->lock);
	r->next_done = w->done;
	w->done = r;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Send r (its fields filled in) on the object's behalf. */
static void submit(struct worker *w, struct req *r)
{
	char name[32], xn[32];
	int e;

	r->w = w;
	r->primary = __atomic_load_n(&g_primary[r->obj], __ATOMIC_ACQUIRE);
	r->drop_gen = r->primary >= 0
			      ? __atomic_load_n(&g_drop_gen[r->primary], __ATOMIC_ACQUIRE)
			      : 0;
	r->action_gen = __atomic_load_n(&g_action_gen, __ATOMIC_ACQUIRE);
	r->t_start = now_s();
	obj_name(r->obj, name, sizeof(name));
	xattr_name(r->xn, xn, sizeof(xn));
	if (r->op == OP_WRITE_FULL || r->op == OP_WRITE || r->op == OP_APPEND ||
	    r->op == OP_SETXATTR)
		pat_fill(r->seed, 0, r->len, r->buf);
	if (mixsan_completion_create(on_complete, r, &r->c) < 0)
		H_FATAL("out of memory");
	switch (r->op) {
	case OP_WRITE_FULL:
		e = mixsan_aio_write_full(w->pool, name, r->c, r->buf, r->len);
		break;
	case OP_WRITE:
		e = mixsan_aio_write(w->pool, name, r->c, r->buf, r->len, r->off);
		break;
	case OP_APPEND:
		e = mixsan_aio_append(w->pool, name, r->c, r->buf, r->len);
		break;
	case OP_TRUNCATE:
		e = mixsan_aio_truncate(w->pool, name, r->c, r->off);
		break;
	case OP_REMOVE:
		e = mixsan_aio_remove(w->pool, name, r->c);
		break;
	case OP_SETXATTR:
		e = mixsan_aio_setxattr(w->pool, name, r->c, xn, r->buf, r->len);
		break;
	case OP_RMXATTR:
		e = mixsan_aio_rmxattr(w->pool, name, r->c, xn);
		break;
	case OP_READ:
	case OP_READ_RANGE:
		e = mixsan_aio_read(w->pool, name, r->c, r->buf, r->len, r->off);
		break;
	case OP_STAT:
		e = mixsan_aio_stat(w->pool, name, r->c, &r->st);
		break;
	case OP_GETXATTR:
		e = mixsan_aio_getxattr(w->pool, name, r->c, xn, r->buf, XATTR_MAX);
		break;
	default:
		abort();
	}
	if (e < 0)
		H_FATAL("cannot send %s on %s: %s", op_names[r->op], name, strerror(-e));
	__atomic_add_fetch(&w->inflight, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&g_started, 1, __ATOMIC_RELAXED);
}

/* A data length: mostly small, sometimes up to the largest object, now and
 * then zero. */
static uint32_t rand_len(struct worker *w)
{
	uint64_t k = rnd(w, 100);

	if (rnd(w, 64) == 0)
		return 0;
	if (k < 60)
		return 1 + (uint32_t)rnd(w, 4096);
	if (k < 90)
		return 1 + (uint32_t)rnd(w, MX_MIN(65536u, g_opt.max_size));
	return 1 + (uint32_t)rnd(w, g_opt.max_size);
}

/* Choose the next request on object o (held busy) into r. */
static void choose(struct worker *w, int o, struct req *r)
{
	const struct mobj *mo = &g_objs[o];
	const struct ostate *s = &mo->cand[0];
	uint32_t size = 0, max = g_opt.max_size;
	uint64_t k;
	int op = 0;

	r->obj = o;
	r->off = r->len = 0;
	r->xn = (uint8_t)rnd(w, N_XNAMES);
	r->seed = h_rand(&w->rng);
	if (mo->unknown) {
		r->op = OP_REMOVE;
		return;
	}
	for (int i = 0; i < mo->ncand; i++)
		size = MX_MAX(size, mo->cand[i].size);
	k = rnd(w, 100);
	while (k >= op_weight[op]) {
		k -= op_weight[op];
		op++;
	}
	r->op = (uint8_t)op;
	switch (op) {
	case OP_WRITE_FULL:
		r->len = rand_len(w);
		break;
	case OP_WRITE: {
		uint32_t len = rand_len(w);

		r->off = (uint32_t)rnd(w, MX_MIN((uint64_t)size + 65536, max));
		r->len = MX_MAX(1u, MX_MIN(len, max - r->off));
		break;
	}
	case OP_APPEND:
		r->len = rand_len(w);
		if ((uint64_t)size + r->len > max)
			r->op = OP_WRITE_FULL;
		break;
	case OP_TRUNCATE:
		r->off = (uint32_t)rnd(w, MX_MIN((uint64_t)size * 2 + 8192, max) + 1);
		break;
	case OP_SETXATTR:
		r->len = (uint32_t)rnd(w, XATTR_MAX + 1);
		break;
	case OP_RMXATTR:
	case OP_GETXATTR:
		/* Mostly an attribute that is there, so both answers come. */
		for (int i = 0; i < N_XNAMES && rnd(w, 4) != 0; i++)
			if (s->xa[(r->xn + i) % N_XNAMES].present) {
				r->xn = (uint8_t)((r->xn + i) % N_XNAMES);
				break;
			}
		break;
	case OP_READ:
		r->len = (uint32_t)g_buf_size;
		break;
	case OP_READ_RANGE:
		r->off = (uint32_t)rnd(w, (uint64_t)s->size + 8192);
		r->len = 1 + (uint32_t)rnd(w, 65536);
		break;
	default:
		break;
	}
}

static struct req *free_slot(struct worker *w)
{
	for (int i = 0; i < g_opt.qd; i++)
		if (!w->reqs[i].c)
			return &w->reqs[i];
	abort();
}

/* Take a free object and send a random request on it.  false when the load
 * is over or no object was free. */
static bool submit_load(struct worker *w, struct req *r)
{
	int o = -1;

	if (!running())
		return false;
	if (g_opt.ops && __atomic_load_n(&g_started, __ATOMIC_RELAXED) >= g_opt.ops) {
		stop_running();
		return false;
	}
	for (int tries = 0; tries < 64 && o < 0; tries++) {
		int cand = (int)rnd(w, (uint64_t)g_opt.objects), zero = 0;

		if (__atomic_compare_exchange_n(&g_objs[cand].busy, &zero, 1, false,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			o = cand;
	}
	if (o < 0)
		return false;
	choose(w, o, r);
	submit(w, r);
	return true;
}

/* The final pass: every object of this worker's slice (objects idx,
 * idx + clients, ...) is read whole, stat'ed and each attribute read.
 * Nothing changes any more, so these run concurrently. */
static bool submit_verify(struct worker *w, struct req *r)
{
	for (;;) {
		if (w->vobj >= g_opt.objects)
			return false;
		if (g_objs[w->vobj].unknown) {
			w->st.unverifiable++;
			w->vobj += g_opt.clients;
			w->vstep = 0;
			continue;
		}
		break;
	}
	r->obj = w->vobj;
	r->off = r->len = 0;
	r->xn = 0;
	r->seed = 0;
	if (w->vstep == 0) {
		r->op = OP_READ;
		r->len = (uint32_t)g_buf_size;
		w->st.verified++;
	} else if (w->vstep == 1) {
		r->op = OP_STAT;
	} else {
		r->op = OP_GETXATTR;
		r->xn = (uint8_t)(w->vstep - 2);
	}
	if (++w->vstep == 2 + N_XNAMES) {
		w->vstep = 0;
		w->vobj += g_opt.clients;
	}
	submit(w, r);
	return true;
}

static void complete_req(struct worker *w, struct req *r)
{
	int64_t res = mixsan_completion_result(r->c);
	struct mobj *mo = &g_objs[r->obj];
	bool hit = req_primary_hit(r), in_action = req_in_action(r);
	double lat = now_s() - r->t_start;
	struct hent *h = is_mutation(r->op) ? &mo->mhist[mo->nmhist++ % N_MHIST]
					    : &mo->rhist[mo->nrhist++ % N_RHIST];

	*h = (struct hent){.t = r->t_start, .res = res, .seed = r->seed, .off = r->off,
			   .len = r->len, .mseq = -1, .op = r->op, .xn = r->xn,
			   .worker = (uint8_t)w->idx, .primary_hit = hit, .in_action = in_action};
	w->st.done[r->op]++;
	if (res < 0)
		w->st.errors[r->op]++;
	w->st.max_lat = MX_MAX(w->st.max_lat, lat);
	w->st.slow += lat > 1.0;
	if (g_opt.verbose && lat > 5.0)
		fprintf(stderr, "modelcheck: t=%.3f client %d: %s on obj.%05d took %.3f s\n",
			now_s(), w->idx, op_names[r->op], r->obj, lat);
	if (is_mutation(r->op))
		process_mutation(w, mo, r, res, hit || in_action, h);
	else
		process_read(w, mo, r, res);
	mixsan_completion_release(r->c);
	r->c = NULL;
	__atomic_sub_fetch(&w->inflight, 1, __ATOMIC_RELAXED);
	if (!w->verify)
		__atomic_store_n(&mo->busy, 0, __ATOMIC_RELEASE);
	__atomic_add_fetch(&g_completed, 1, __ATOMIC_RELAXED);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		struct req *done;
		bool more = true;

		while (w->inflight < g_opt.qd && more)
			more = w->verify ? submit_verify(w, free_slot(w))
					 : submit_load(w, free_slot(w));
		if (w->inflight == 0) {
			if (w->verify || !running())
				break;
			usleep(1000); /* every object tried was busy */
			continue;
		}
		pthread_mutex_lock(&w->lock);
		while (!w->done)
			pthread_cond_wait(&w->cond, &w->lock);
		done = w->done;
		w->done = NULL;
		pthread_mutex_unlock(&w->lock);
		while (done) {
			struct req *next = done->next_done;

			complete_req(w, done);
			done = next;
		}
	}
	__atomic_store_n(&w->finished, true, __ATOMIC_RELEASE);
	return NULL;
}

/* The thrasher ------------------------------------------------------------------ */

struct thrasher {
	struct h_cluster *c;
	mixsan_cluster_t *cl;
	int32_t pool_id;
	uint64_t rng;
	pthread_t thread;
	unsigned counts[A__COUNT];
	unsigned starts[H_MAX_OSDS]; /* times each OSD was started */
};

/* The primary of every object in the client's newest map, into g_primary. */
static void compute_primaries(mixsan_cluster_t *cl, int32_t pool_id)
{
	struct mx_map *m = mx_client_map_copy(cl);
	struct mx_placement *pl = NULL;
	const struct mx_pool *p;
	int *pg_primary;

	if (!m || !(p = mx_map_pool_by_id(m, pool_id)) || mx_placement_new(m, &pl) < 0)
		H_FATAL("cannot compute placement");
	pg_primary = xmalloc(p->pg_num * sizeof(*pg_primary));
	for (uint32_t pg = 0; pg < p->pg_num; pg++) {
		int32_t acting[MX_MAX_SIZE];
		int n = mx_pg_acting(pl, m, p, pg, acting, MX_MAX_SIZE);

		pg_primary[pg] = n > 0 ? acting[0] : -1;
	}
	for (int o = 0; o < g_opt.objects; o++) {
		char name[32];

		obj_name(o, name, sizeof(name));
		__atomic_store_n(&g_primary[o],
				 pg_primary[mx_object_pg(p, name, strlen(name))],
				 __ATOMIC_RELEASE);
	}
	free(pg_primary);
	mx_placement_free(pl);
	mx_map_free(m);
}

static uint64_t osd_incarnation(mixsan_cluster_t *cl, int osd)
{
	struct mx_map *m = mx_client_map_copy(cl);
	const struct mx_osd_info *o = m ? mx_map_osd(m, osd) : NULL;
	uint64_t inc = o ? o->incarnation : 0;

	mx_map_free(m);
	return inc;
}

/* The number of OSDs the client's map holds, up or down. */
static int count_existing_osds(mixsan_cluster_t *cl)
{
	struct mx_map *m = mx_client_map_copy(cl);
	int n = 0;

	for (uint32_t i = 0; m && i < m->max_osd; i++)
		n += m->osds[i].exists;
	mx_map_free(m);
	return n;
}

/* Wait until the map shows osd up in an incarnation after prev: the
 * monitor never marks an OSD down today, so h_wait_up alone cannot tell a
 * restarted OSD from the dead one.  0 or -ETIMEDOUT. */
static int wait_booted(mixsan_cluster_t *cl, int osd, uint64_t prev, int timeout_s)
{
	for (int t = 0; t < timeout_s * 20; t++) {
		struct mx_map *m = mx_client_map_copy(cl);
		const struct mx_osd_info *o = m ? mx_map_osd(m, osd) : NULL;
		bool ok = o && o->exists && o->up && o->incarnation > prev;

		mx_map_free(m);
		if (ok)
			return 0;
		usleep(50 * 1000);
	}
	return -ETIMEDOUT;
}

/* Before and after a daemon that may hold requests goes away. */
static void bump_drop_gen(int osd)
{
	__atomic_add_fetch(&g_drop_gen[osd], 1, __ATOMIC_ACQ_REL);
}

static void tlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tlog(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&g_print_lock);
	fprintf(stderr, "modelcheck: t=%7.3f thrash: ", now_s());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&g_print_lock);
}

static void print_log_tail(const struct h_cluster *c, const char *log)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "tail -n 15 '%s/%s.log' >&2", c->dir, log);
	pthread_mutex_lock(&g_print_lock);
	fprintf(stderr, "---- last lines of %s.log ----\n", log);
	if (system(cmd) != 0)
		fprintf(stderr, "(cannot read it)\n");
	pthread_mutex_unlock(&g_print_lock);
}

/* Daemons that exited without being told to: report, show the end of the
 * log, and start the OSD again so the run can finish. */
static void check_daemons(struct thrasher *t)
{
	struct h_cluster *c = t->c;
	int st;

	for (int i = 0; i < c->n_osds; i++) {
		char log[16];

		if (c->osd_pids[i] <= 0 || waitpid(c->osd_pids[i], &st, WNOHANG) != c->osd_pids[i])
			continue;
		c->osd_pids[i] = 0;
		snprintf(log, sizeof(log), "osd.%d", i);
		report(P_DAEMON, NULL, NULL, 0, "osd.%d exited by itself (status 0x%x); restarting it",
		       i, st);
		print_log_tail(c, log);
		bump_drop_gen(i);
		h_start_osd(c, i);
		t->starts[i]++;
	}
	if (c->mon_pid > 0 && waitpid(c->mon_pid, &st, WNOHANG) == c->mon_pid) {
		c->mon_pid = 0;
		report(P_DAEMON, NULL, NULL, 0, "the monitor exited by itself (status 0x%x)", st);
		print_log_tail(c, "mon");
		stop_running();
	}
}

/* Sleep s seconds, watching the daemons; if idle, return early when the
 * load ends. */
static void nap(struct thrasher *t, double s, bool idle)
{
	double end = now_s() + s;

	while (now_s() < end) {
		if (idle && !running())
			return;
		check_daemons(t);
		usleep(50 * 1000);
	}
}

/* SIGTERM OSDs [from, to) together and reap them, 30 s at most; each must
 * exit with 0.  (An OSD checkpoints its store on the way out, which takes
 * seconds under load: stopping them one by one would add those up.) */
static void term_osds(struct h_cluster *c, int from, int to)
{
	int left = 0, st;

	for (int i = from; i < to; i++)
		if (c->osd_pids[i] > 0) {
			kill(c->osd_pids[i], SIGCONT);
			kill(c->osd_pids[i], SIGTERM);
			left++;
		}
	for (int k = 0; k < 600 && left > 0; k++) {
		for (int i = from; i < to; i++) {
			if (c->osd_pids[i] <= 0 || waitpid(c->osd_pids[i], &st, WNOHANG) != c->osd_pids[i])
				continue;
			c->osd_pids[i] = 0;
			left--;
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				report(P_DAEMON, NULL, NULL, 0,
				       "osd.%d exited badly on SIGTERM (status 0x%x)", i, st);
		}
		if (left > 0)
			usleep(50 * 1000);
	}
	for (int i = from; i < to; i++) {
		if (c->osd_pids[i] <= 0)
			continue;
		report(P_DAEMON, NULL, NULL, 0, "osd.%d did not stop in 30 s after SIGTERM", i);
		kill(c->osd_pids[i], SIGKILL);
		(void)waitpid(c->osd_pids[i], &st, 0);
		c->osd_pids[i] = 0;
	}
}

static int osd_command(struct thrasher *t, const char *cmd, int osd)
{
	char id[16], *msg = NULL;
	const char *kv[] = {"id", id};
	int r;

	snprintf(id, sizeof(id), "%d", osd);
	r = mixsan_mon_command(t->cl, cmd, kv, 1, &msg);
	if (r < 0)
		report(P_DAEMON, NULL, NULL, 0, "'%s' osd.%d: %s (%s)", cmd, osd, strerror(-r),
		       msg ? msg : "");
	free(msg);
	return r;
}

/* A random duration of an outage: 1 to 4 s. */
static double outage(struct thrasher *t)
{
	return 1.0 + (double)(h_rand(&t->rng) % 3000) / 1000.0;
}

/* Start osd i again and wait for the map to show it back (60 s). */
static void restart_osd(struct thrasher *t, int i, uint64_t inc)
{
	h_start_osd(t->c, i);
	t->starts[i]++;
	if (wait_booted(t->cl, i, inc, 60) < 0)
		report(P_DAEMON, NULL, NULL, 0, "osd.%d did not come back in 60 s", i);
}

/* One action of kind a on a random OSD.  At most one OSD is disrupted at a
 * time: each action undoes itself before it returns.  Returns false if the
 * action was not possible (add with no room). */
/* The cache pool's next mode: writeback <-> none (draining), readonly ->
 * writeback.  Requests in flight are not counted as disrupted: a mode
 * change must neither fail nor lose any of them. */
static bool tier_mode_change(struct thrasher *t)
{
	struct mx_map *m;
	const struct mx_pool *p;
	const char *next;
	char *msg = NULL;
	int r;

	if (!g_opt.tier)
		return false;
	m = mx_client_map_copy(t->cl);
	p = m ? mx_map_pool_by_name(m, CACHE_POOL_NAME) : NULL;
	next = p && p->cache_mode == MX_CACHE_WRITEBACK ? "none" : "writeback";
	mx_map_free(m);
	{
		const char *kv[] = {"pool", CACHE_POOL_NAME, "mode", next};

		r = mixsan_mon_command(t->cl, "pool tier mode", kv, 2, &msg);
	}
	tlog("tier mode %s: %s", next, r < 0 ? strerror(-r) : "done");
	if (r < 0)
		report(P_DAEMON, NULL, NULL, 0, "pool tier mode %s: %s", next, msg ? msg : "");
	free(msg);
	t->counts[A_TIERMODE]++;
	return true;
}

static bool thrash_once(struct thrasher *t, enum action a)
{
	struct h_cluster *c = t->c;
	int i = (int)(h_rand(&t->rng) % (uint64_t)c->n_osds);
	uint64_t inc = osd_incarnation(t->cl, i);
	double d = outage(t), t0 = now_s();

	if (a == A_ADD && c->n_osds >= MX_MIN(g_opt.max_osds, H_MAX_OSDS))
		return false;
	if (a == A_TIERMODE)
		return tier_mode_change(t);
	__atomic_add_fetch(&g_action_gen, 1, __ATOMIC_ACQ_REL); /* odd: under way */
	switch (a) {
	case A_KILL:
		tlog("kill -9 osd.%d, restart in %.1f s", i, d);
		bump_drop_gen(i);
		h_signal_osd(c, i, SIGKILL);
		bump_drop_gen(i);
		nap(t, d, false);
		restart_osd(t, i, inc);
		break;
	case A_RESTART:
		tlog("SIGTERM osd.%d, then start it", i);
		bump_drop_gen(i);
		term_osds(c, i, i + 1);
		bump_drop_gen(i);
		restart_osd(t, i, inc);
		break;
	case A_STOP:
		/* With failure detection the OSD may be marked down and boot
		 * again when continued: clients drop their connections to it
		 * then, as if it had been killed.  (The bump after it is up
		 * again, below.) */
		tlog("SIGSTOP osd.%d for %.1f s", i, d);
		if (g_opt.failure_detection)
			bump_drop_gen(i);
		h_signal_osd(c, i, SIGSTOP);
		nap(t, d, false);
		h_signal_osd(c, i, SIGCONT);
		break;
	case A_OUT:
		tlog("osd out osd.%d for %.1f s", i, d);
		if (osd_command(t, "osd out", i) == 0) {
			compute_primaries(t->cl, t->pool_id);
			nap(t, d, false);
			(void)osd_command(t, "osd in", i);
		}
		break;
	case A_ADD:
		i = c->n_osds;
		tlog("add osd.%d", i);
		c->n_osds = i + 1;
		restart_osd(t, i, 0);
		break;
	default:
		abort();
	}
	if (h_wait_up(c, t->cl, c->n_osds, 60) < 0)
		report(P_DAEMON, NULL, NULL, 0, "not every OSD up in the map after 60 s");
	if (a == A_STOP && g_opt.failure_detection)
		bump_drop_gen(i);
	compute_primaries(t->cl, t->pool_id);
	__atomic_add_fetch(&g_action_gen, 1, __ATOMIC_ACQ_REL); /* even: over */
	t->counts[a]++;
	tlog("%s osd.%d: over after %.1f s", action_names[a], i, now_s() - t0);
	return true;
}

/* Following an external cluster's map instead of acting (the thrasher
 * thread's work under MIXSAN_TEST_MON with --actions none).  Each new epoch
 * recomputes the primaries and bumps the disruption counters: g_drop_gen of
 * every OSD whose state changed (down, up again, a new incarnation), and
 * g_action_gen, which is odd while the map shows an OSD down, as during a
 * thrasher action.  So a request that overlaps a change of the map, or an
 * OSD's absence, counts as disrupted in process_mutation. */
static void watch_map(struct thrasher *t)
{
	struct mx_map *prev = NULL;

	while (running()) {
		struct mx_map *m = mx_client_map_copy(t->cl);
		uint64_t g;
		int up = 0, exist = 0;

		if (!m || (prev && m->epoch == prev->epoch)) {
			mx_map_free(m);
			usleep(50 * 1000);
			continue;
		}
		for (uint32_t i = 0; i < m->max_osd && i < H_MAX_OSDS; i++) {
			const struct mx_osd_info *o = &m->osds[i];
			const struct mx_osd_info *p =
				prev && i < prev->max_osd ? &prev->osds[i] : NULL;

			exist += o->exists;
			up += o->exists && o->up;
			if (p && (p->exists != o->exists || p->up != o->up ||
				  p->incarnation != o->incarnation))
				bump_drop_gen((int)i);
		}
		/* Only this thread changes g_action_gen here. */
		g = __atomic_load_n(&g_action_gen, __ATOMIC_ACQUIRE);
		__atomic_add_fetch(&g_action_gen, (g & 1) != (uint64_t)(up < exist) ? 1 : 2,
				   __ATOMIC_ACQ_REL);
		compute_primaries(t->cl, t->pool_id);
		tlog("map epoch %llu: %d of %d OSDs up", (unsigned long long)m->epoch, up, exist);
		mx_map_free(prev);
		prev = m;
	}
	mx_map_free(prev);
}

static void *thrasher_main(void *arg)
{
	struct thrasher *t = arg;
	unsigned n = 0, list[A__COUNT];

	if (t->c->external) {
		watch_map(t);
		return NULL;
	}
	for (int a = 0; a < A__COUNT; a++)
		if (g_opt.actions & (1u << a))
			list[n++] = (unsigned)a;
	for (unsigned k = 0; running(); k++) {
		enum action a;

		/* interval times 0.5 to 1.5 */
		nap(t, g_opt.interval * (0.5 + (double)(h_rand(&t->rng) % 1000) / 1000.0), true);
		if (!running() || n == 0)
			continue;
		a = (enum action)list[h_rand(&t->rng) % n];
		/* With a tier, every third action changes its mode. */
		if (g_opt.tier && (g_opt.actions & (1u << A_TIERMODE))) {
			if (k % 3 == 2)
				a = A_TIERMODE;
			else if (a == A_TIERMODE)
				continue;
		}
		if (thrash_once(t, a))
			nap(t, g_opt.settle, false);
	}
	return NULL;
}

/* Replicas against the model (offline) ---------------------------------------- */

/* One OSD's copy of an object, read straight from its store. */
struct copy {
	bool exists;
	bool too_big;             /* larger than the checker ever makes */
	uint32_t size;
	uint8_t *data;            /* borrowed: g_buf_size bytes */
	bool xa_present[N_XNAMES];
	uint32_t xa_len[N_XNAMES];
	uint8_t xa_val[N_XNAMES][XATTR_MAX];
};

static int copy_load(struct mx_store *st, const struct mx_objkey *key, struct copy *cp)
{
	struct mx_obj_stat s;
	uint32_t got = 0;
	int r = mx_store_stat(st, key, &s);

	memset(cp->xa_present, 0, sizeof(cp->xa_present));
	cp->exists = r == 0;
	cp->too_big = false;
	cp->size = 0;
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (s.size > g_buf_size) {
		cp->too_big = true;
		return 0;
	}
	cp->size = (uint32_t)s.size;
	r = mx_store_read(st, key, 0, cp->size, cp->data, &got);
	if (r < 0)
		return r;
	if (got != cp->size)
		return -EIO;
	for (int i = 0; i < N_XNAMES; i++) {
		char xn[32];
		void *v = NULL;
		uint32_t len = 0;

		xattr_name(i, xn, sizeof(xn));
		r = mx_store_getxattr(st, key, xn, &v, &len);
		if (r == 0) {
			cp->xa_present[i] = true;
			cp->xa_len[i] = len;
			memcpy(cp->xa_val[i], v, MX_MIN(len, (uint32_t)XATTR_MAX));
		}
		free(v);
		if (r < 0 && r != -ENODATA)
			return r;
	}
	return 0;
}

static bool copy_matches(const struct ostate *s, const struct copy *cp, uint8_t *scratch)
{
	if (s->exists != cp->exists)
		return false;
	if (!s->exists)
		return true;
	if (cp->too_big || s->size != cp->size)
		return false;
	st_render(s, 0, s->size, scratch);
	if (memcmp(scratch, cp->data, s->size) != 0)
		return false;
	for (int i = 0; i < N_XNAMES; i++) {
		const struct xav *x = &s->xa[i];

		if (x->present != cp->xa_present[i])
			return false;
		if (!x->present)
			continue;
		if (x->len != cp->xa_len[i])
			return false;
		pat_fill(x->seed, 0, x->len, scratch);
		if (memcmp(scratch, cp->xa_val[i], x->len) != 0)
			return false;
	}
	return true;
}

/* The first difference between copy cp and state s, in words. */
static void copy_difference(const struct ostate *s, const struct copy *cp, uint8_t *scratch,
			    char *buf, size_t sz)
{
	snprintf(buf, sz, "no difference");
	if (s->exists != cp->exists) {
		snprintf(buf, sz, "the copy %s, the model's object %s",
			 cp->exists ? "exists" : "is absent", s->exists ? "exists" : "is absent");
		return;
	}
	if (!s->exists)
		return;
	if (cp->too_big || s->size != cp->size) {
		snprintf(buf, sz, "the copy's size is %s%u, the model's %u",
			 cp->too_big ? "over " : "", cp->size, s->size);
		return;
	}
	st_render(s, 0, s->size, scratch);
	for (uint32_t i = 0; i < s->size; i++)
		if (scratch[i] != cp->data[i]) {
			uint32_t j = i;

			while (j < s->size && scratch[j] != cp->data[j])
				j++;
			snprintf(buf, sz, "data differs from byte %u for %u bytes", i, j - i);
			return;
		}
	for (int i = 0; i < N_XNAMES; i++) {
		const struct xav *x = &s->xa[i];

		if (x->present != cp->xa_present[i] ||
		    (x->present && x->len != cp->xa_len[i])) {
			snprintf(buf, sz, "attribute user.mc%d: the copy's %s, the model's %s", i,
				 cp->xa_present[i] ? "is there" : "is absent",
				 x->present ? "is there" : "is absent");
			return;
		}
		if (!x->present)
			continue;
		pat_fill(x->seed, 0, x->len, scratch);
		if (memcmp(scratch, cp->xa_val[i], x->len) != 0) {
			snprintf(buf, sz, "attribute user.mc%d: the value differs", i);
			return;
		}
	}
}

/* The history entry of model step seq, or NULL if it left the ring. */
static const struct hent *find_step(const struct mobj *mo, unsigned seq)
{
	unsigned first = mo->nmhist > N_MHIST ? mo->nmhist - N_MHIST : 0;

	for (unsigned i = first; i < mo->nmhist; i++)
		if (mo->mhist[i % N_MHIST].mseq == (int)seq)
			return &mo->mhist[i % N_MHIST];
	return NULL;
}

/* Explain a copy that matches no candidate: an earlier state, or the
 * recent history with exactly one mutation missing.  Writes the words into
 * buf. */
static void explain_copy(const struct mobj *mo, const struct copy *cp, uint8_t *scratch,
			 char *buf, size_t sz)
{
	snprintf(buf, sz, "matches no state of the model's recent history");
	for (int k = mo->npast - 1; k >= 0; k--)
		if (copy_matches(&mo->past[k], cp, scratch)) {
			snprintf(buf, sz, "it is the state before the last %u mutations",
				 mo->nmut - mo->past_seq[k]);
			return;
		}
	/* The oldest earlier state from which every mutation is remembered:
	 * replay from there, leaving out each mutation in turn. */
	for (int k = 0; k < mo->npast; k++) {
		const struct hent *steps[N_MHIST];
		unsigned n = mo->nmut - mo->past_seq[k];
		bool complete = n <= N_MHIST;

		for (unsigned q = 0; q < n && complete; q++)
			complete = (steps[q] = find_step(mo, mo->past_seq[k] + q)) != NULL;
		if (!complete)
			continue;
		for (unsigned skip = 0; skip < n; skip++) {
			const struct hent *hs = steps[skip];
			struct ostate t, truth;
			bool match;

			/* Replicas get physical transactions, and only of the
			 * mutations the primary applied: an append is a write
			 * at the size the primary had (truth's). */
			st_copy(&t, &mo->past[k]);
			st_copy(&truth, &mo->past[k]);
			for (unsigned q = 0; q < n; q++) {
				const struct hent *h = steps[q];
				struct req m = {.op = h->op, .xn = h->xn, .off = h->off,
						.len = h->len, .seed = h->seed};

				if (m.op == OP_APPEND) {
					m.op = OP_WRITE;
					m.off = truth.size;
				}
				if (st_apply(&truth, &m) == 0 && q != skip)
					(void)st_apply(&t, &m);
			}
			match = copy_matches(&t, cp, scratch);
			st_free(&t);
			st_free(&truth);
			if (match) {
				struct req m = {.op = hs->op, .xn = hs->xn, .off = hs->off,
						.len = hs->len, .seed = hs->seed};
				char d[128];

				describe_req(&m, d, sizeof(d));
				snprintf(buf, sz,
					 "it is the model's state without the acknowledged '%s' "
					 "sent at t=%.3f by client %u%s",
					 d, hs->t, hs->worker,
					 hs->primary_hit ? " (its primary was killed, restarted or "
							   "stopped meanwhile)"
					 : hs->in_action ? " (during a thrasher action)" : "");
				return;
			}
		}
		return;
	}
}

/*
 * With every OSD stopped: open each store and compare every copy of every
 * object on its up set with the model, so that a replica that missed an
 * acknowledged write is named with the write it missed.  (h_check_replicas
 * then checks the copies against each other and their placement.)
 */
static void check_copies(struct h_cluster *c, const struct mx_map *m, int32_t pool_id)
{
	struct mx_store *st[H_MAX_OSDS] = {0};
	const struct mx_pool *pool = mx_map_pool_by_id(m, pool_id);
	struct mx_placement *pl = NULL;
	uint8_t *scratch = xmalloc(g_buf_size);
	struct copy *cp = xmalloc(sizeof(*cp));

	cp->data = xmalloc(g_buf_size);
	if (!pool || mx_placement_new(m, &pl) < 0)
		H_FATAL("cannot compute placement");
	for (int i = 0; i < c->n_osds; i++) {
		int r = h_open_store(c, i, &st[i]);

		if (r < 0) {
			report(P_DAEMON, NULL, NULL, 0, "osd.%d: the store does not open: %s", i,
			       strerror(-r));
			st[i] = NULL;
		}
	}
	for (int o = 0; o < g_opt.objects; o++) {
		const struct mobj *mo = &g_objs[o];
		int32_t up[MX_MAX_SIZE];
		char name[32];
		struct mx_objkey key = {.pool = pool_id, .name = name};
		int n;

		if (mo->unknown)
			continue;
		obj_name(o, name, sizeof(name));
		key.name_len = (uint32_t)strlen(name);
		key.pg = mx_object_pg(pool, name, key.name_len);
		n = mx_pg_up(pl, pool, key.pg, up, MX_MAX_SIZE);
		for (int k = 0; k < n; k++) {
			bool ok = false;
			char why[400], diff[200];
			int r;

			if (up[k] < 0 || up[k] >= c->n_osds || !st[up[k]])
				continue;
			r = copy_load(st[up[k]], &key, cp);
			if (r < 0) {
				report_obj(P_REPLICA, o, "osd.%d: reading its copy: %s", up[k],
					   strerror(-r));
				continue;
			}
			for (int i = 0; i < mo->ncand && !ok; i++)
				ok = copy_matches(&mo->cand[i], cp, scratch);
			if (ok)
				continue;
			copy_difference(&mo->cand[0], cp, scratch, diff, sizeof(diff));
			explain_copy(mo, cp, scratch, why, sizeof(why));
			report_obj(P_REPLICA, o, "the copy on osd.%d (%s of pg %u) differs from "
				   "the model (%s): %s", up[k], k == 0 ? "primary" : "replica",
				   key.pg, diff, why);
		}
	}
	for (int i = 0; i < c->n_osds; i++)
		mx_store_close(st[i]);
	mx_placement_free(pl);
	free(cp->data);
	free(cp);
	free(scratch);
}

/* Set-up, final checks and the report ---------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: modelcheck [options]\n"
		"A model-based random checker of MixSAN: client threads issue random object\n"
		"operations against a model while a thrasher disrupts OSDs; every read is\n"
		"checked, and at the end every object and every replica.\n"
		"  --seed S              replay the random choices of seed S (also\n"
		"                        $MIXSAN_TEST_SEED; default: from the clock)\n"
		"  --seconds N           load for N seconds (default 150; 0: no limit)\n"
		"  --ops N               stop after N requests (default: no limit)\n"
		"  --osds N              OSDs to start (default 5)\n"
		"  --clients N           client threads, one connection each (default 4)\n"
		"  --qd N                requests in flight per client (default 8)\n"
		"  --objects N           objects in the key space (default 2000)\n"
		"  --max-size BYTES      largest object made (default 262144)\n"
		"  --actions LIST        thrasher actions, comma separated, from kill, stop,\n"
		"                        restart, out, add, tiermode; 'none'; 'all' (default\n"
		"                        kill,restart,stop)\n"
		"  --thrash-interval S   mean seconds between actions (default 3)\n"
		"  --settle S            seconds after an action before the next (default 2)\n"
		"  --recovery-quiet S    at the end, seconds without a line in any daemon log\n"
		"                        taken as the end of recovery (default 3)\n"
		"  --pg-num N            PGs of the pool (default 64)\n"
		"  --op-timeout MS       client operation timeout (default 0: none)\n"
		"  --max-osds N          limit for 'add' (default %d)\n"
		"  --no-failure-detection  the monitor never marks OSDs down (default:\n"
		"                        it does, after 2 s without heartbeats)\n"
		"  --failure-domain D    of the pool it creates (default osd)\n"
		"  --read-policy P       of the pool it creates: primary (default), balance,\n"
		"                        localize (docs/read-policies.md; for localize OSD i\n"
		"                        is on host h<i mod 3>, client k on h<k mod 3>)\n"
		"  --tier MODE           put a cache pool in front of the pool, in mode\n"
		"                        writeback or readonly, with targets a quarter of\n"
		"                        --objects, so the OSDs' agents flush and evict all\n"
		"                        the time (docs/cache-tiering.md); the action\n"
		"                        tiermode then changes its mode (writeback <-> none,\n"
		"                        readonly -> writeback)\n"
		"  --verbose             report requests slower than 5 s\n"
		"With MIXSAN_TEST_MON=IP:PORT[,...] and --actions none it checks a cluster\n"
		"it did not start, disrupted meanwhile by other means; it follows the map\n"
		"instead of thrashing and leaves out the checks of the daemons' logs and\n"
		"stores (the deep scrub of every PG still compares the replicas).\n",
		H_MAX_OSDS);
}

static unsigned parse_actions(const char *s)
{
	char buf[256], *save = NULL, *tok;
	unsigned mask = 0;

	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int a;

		if (strcmp(tok, "none") == 0)
			continue;
		if (strcmp(tok, "all") == 0) {
			mask |= (1u << A__COUNT) - 1;
			continue;
		}
		for (a = 0; a < A__COUNT && strcmp(tok, action_names[a]) != 0; a++)
			;
		if (a == A__COUNT) {
			fprintf(stderr, "modelcheck: unknown action '%s'\n", tok);
			exit(2);
		}
		mask |= 1u << a;
	}
	return mask;
}

static long long num_arg(const char *s, long long lo, long long hi, const char *what)
{
	char *end;
	long long v = strtoll(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "modelcheck: %s must be a number from %lld to %lld\n", what, lo, hi);
		exit(2);
	}
	return v;
}

static double real_arg(const char *s, const char *what)
{
	char *end;
	double v = strtod(s, &end);

	if (*s == '\0' || *end != '\0' || v < 0 || v > 3600) {
		fprintf(stderr, "modelcheck: %s must be a number of seconds\n", what);
		exit(2);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{"seed", required_argument, NULL, 's'},
		{"seconds", required_argument, NULL, 't'},
		{"ops", required_argument, NULL, 'n'},
		{"osds", required_argument, NULL, 'o'},
		{"clients", required_argument, NULL, 'c'},
		{"qd", required_argument, NULL, 'q'},
		{"objects", required_argument, NULL, 'O'},
		{"max-size", required_argument, NULL, 'm'},
		{"actions", required_argument, NULL, 'a'},
		{"thrash-interval", required_argument, NULL, 'i'},
		{"settle", required_argument, NULL, 'S'},
		{"recovery-quiet", required_argument, NULL, 'Q'},
		{"pg-num", required_argument, NULL, 'p'},
		{"op-timeout", required_argument, NULL, 'T'},
		{"max-osds", required_argument, NULL, 'M'},
		{"failure-detection", no_argument, NULL, 'F'},
		{"no-failure-detection", no_argument, NULL, 'N'},
		{"failure-domain", required_argument, NULL, 'D'},
		{"read-policy", required_argument, NULL, 'P'},
		{"tier", required_argument, NULL, 'C'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	bool seconds_set = false;
	int ch;

	g_opt.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	if (getenv("MIXSAN_TEST_SEED"))
		g_opt.seed = strtoull(getenv("MIXSAN_TEST_SEED"), NULL, 10);
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 's': g_opt.seed = strtoull(optarg, NULL, 10); break;
		case 't':
			g_opt.seconds = (unsigned)num_arg(optarg, 0, 100000000, "--seconds");
			seconds_set = true;
			break;
		case 'n': g_opt.ops = (uint64_t)num_arg(optarg, 0, INT64_MAX, "--ops"); break;
		case 'o': g_opt.osds = (int)num_arg(optarg, 3, H_MAX_OSDS, "--osds"); break;
		case 'c': g_opt.clients = (int)num_arg(optarg, 1, 64, "--clients"); break;
		case 'q': g_opt.qd = (int)num_arg(optarg, 1, 256, "--qd"); break;
		case 'O': g_opt.objects = (int)num_arg(optarg, 16, 99999, "--objects"); break;
		case 'm':
			g_opt.max_size = (uint32_t)num_arg(optarg, 4096, 16 << 20, "--max-size");
			break;
		case 'a': g_opt.actions = parse_actions(optarg); break;
		case 'i': g_opt.interval = real_arg(optarg, "--thrash-interval"); break;
		case 'S': g_opt.settle = real_arg(optarg, "--settle"); break;
		case 'Q': g_opt.quiet = real_arg(optarg, "--recovery-quiet"); break;
		case 'p': g_opt.pg_num = (int)num_arg(optarg, 1, 65536, "--pg-num"); break;
		case 'T':
			g_opt.op_timeout_ms = (unsigned)num_arg(optarg, 0, 86400000, "--op-timeout");
			break;
		case 'M': g_opt.max_osds = (int)num_arg(optarg, 3, H_MAX_OSDS, "--max-osds"); break;
		case 'F': g_opt.failure_detection = true; break;
		case 'N': g_opt.failure_detection = false; break;
		case 'D': g_opt.failure_domain = optarg; break;
		case 'P':
			if (strcmp(optarg, "primary") && strcmp(optarg, "balance") &&
			    strcmp(optarg, "localize")) {
				fprintf(stderr, "modelcheck: --read-policy: primary, balance or "
						"localize\n");
				exit(2);
			}
			g_opt.read_policy = optarg;
			break;
		case 'C':
			if (strcmp(optarg, "writeback") && strcmp(optarg, "readonly")) {
				fprintf(stderr, "modelcheck: --tier: writeback or readonly\n");
				exit(2);
			}
			g_opt.tier = optarg;
			break;
		case 'v': g_opt.verbose = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		exit(2);
	}
	if (g_opt.ops && !seconds_set)
		g_opt.seconds = 0;
	if (g_opt.objects < g_opt.clients * g_opt.qd * 2) {
		fprintf(stderr, "modelcheck: --objects must be at least twice clients x qd\n");
		exit(2);
	}
}

/* The cache pool in front of the checker's pool (--tier). */
static void make_tier(mixsan_cluster_t *admin)
{
	char objs[32];
	const char *add[] = {"base", POOL_NAME, "cache", CACHE_POOL_NAME, "force", "1"};
	const char *set[][6] = {
		{"name", CACHE_POOL_NAME, "key", "target_max_objects", "value", objs},
		{"name", CACHE_POOL_NAME, "key", "hit_period_s", "value", "1"},
		{"name", CACHE_POOL_NAME, "key", "promote_min_hits", "value", "1"},
	};
	const char *md[] = {"pool", CACHE_POOL_NAME, "mode", g_opt.tier};
	char *msg = NULL;

	snprintf(objs, sizeof(objs), "%d", g_opt.objects / 4);
	h_pool_create(admin, CACHE_POOL_NAME, 3, 16, g_opt.failure_domain);
	if (mixsan_mon_command(admin, "pool tier add", add, 3, &msg) < 0)
		H_FATAL("pool tier add: %s", msg ? msg : "");
	free(msg);
	for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++) {
		msg = NULL;
		if (mixsan_mon_command(admin, "pool set", set[i], 3, &msg) < 0)
			H_FATAL("pool set: %s", msg ? msg : "");
		free(msg);
	}
	msg = NULL;
	if (mixsan_mon_command(admin, "pool tier mode", md, 2, &msg) < 0)
		H_FATAL("pool tier mode: %s", msg ? msg : "");
	free(msg);
}

static void on_signal(int sig)
{
	if (g_signalled) {
		signal(sig, SIG_DFL);
		raise(sig);
	}
	g_signalled = 1;
}

/* Wait for every worker to finish its phase, printing progress every 10 s
 * and ending the load at the deadline (0: none) or on a signal.  A minute
 * without any reply while requests are in flight is a hang: print what is
 * in flight and return false. */
static bool supervise(struct worker *ws, double deadline)
{
	uint64_t last_done = 0, last_print_done = 0;
	double last_progress = now_s(), last_print = now_s();

	for (;;) {
		uint64_t done = __atomic_load_n(&g_completed, __ATOMIC_RELAXED);
		bool finished = true, inflight = false;
		double t;

		usleep(100 * 1000);
		t = now_s();
		if (g_signalled && running()) {
			fprintf(stderr, "modelcheck: signal: ending the load\n");
			stop_running();
		}
		if (deadline > 0 && t >= deadline && running())
			stop_running();
		if (done != last_done) {
			if (running() && t - last_progress > g_longest_gap) {
				g_longest_gap = t - last_progress;
				g_longest_gap_end = t;
			}
			last_done = done;
			last_progress = t;
		}
		for (int i = 0; i < g_opt.clients; i++) {
			finished &= __atomic_load_n(&ws[i].finished, __ATOMIC_ACQUIRE);
			inflight |= __atomic_load_n(&ws[i].inflight, __ATOMIC_RELAXED) > 0;
		}
		if (finished)
			return true;
		if (t - last_print >= 10.0) {
			uint64_t probs = 0;

			for (int p = 0; p < P__COUNT; p++)
				probs += __atomic_load_n(&g_problems[p], __ATOMIC_RELAXED);
			fprintf(stderr, "modelcheck: t=%7.3f %" PRIu64 " requests done (%.0f/s), "
					"%" PRIu64 " problems\n",
				t, done, (double)(done - last_print_done) / (t - last_print), probs);
			last_print = t;
			last_print_done = done;
		}
		/* After a signal (Ctrl-C reaches the daemons too) wait less. */
		if (t - last_progress > (g_signalled ? 10.0 : 60.0) && inflight) {
			fprintf(stderr, "modelcheck: HANG: no reply for %.0f s; in flight:\n",
				t - last_progress);
			for (int i = 0; i < g_opt.clients; i++)
				for (int k = 0; k < g_opt.qd; k++) {
					const struct req *r = &ws[i].reqs[k];
					char d[128];

					if (!r->c)
						continue;
					describe_req(r, d, sizeof(d));
					fprintf(stderr, "  client %d: obj.%05d %s, primary osd.%d, "
							"sent at t=%.3f\n",
						i, r->obj, d, r->primary, r->t_start);
				}
			return false;
		}
	}
}

static void run_workers(struct worker *ws, bool verify)
{
	for (int i = 0; i < g_opt.clients; i++) {
		ws[i].verify = verify;
		ws[i].finished = false;
		ws[i].vobj = i;
		ws[i].vstep = 0;
		if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0)
			H_FATAL("pthread_create failed");
	}
}

static void join_workers(struct worker *ws)
{
	for (int i = 0; i < g_opt.clients; i++)
		pthread_join(ws[i].thread, NULL);
}

struct listing {
	uint8_t *seen;  /* per object: listed */
	uint64_t *size; /* per object: listed size */
	uint64_t strangers;
};

static int list_cb(void *arg, const char *oid, size_t len, uint64_t size)
{
	struct listing *l = arg;
	char *end;
	long o;

	if (len != 9 || strncmp(oid, "obj.", 4) != 0 ||
	    (o = strtol(oid + 4, &end, 10)) < 0 || o >= g_opt.objects || *end) {
		report(P_CORRUPT, NULL, NULL, 0, "the listing shows an object never written: %.*s",
		       (int)len, oid);
		l->strangers++;
		return 0;
	}
	l->seen[o]++;
	l->size[o] = size;
	return 0;
}

/* The pool's listing against the model: each object the model holds
 * definitely present is listed once with its size, nothing else is. */
static void check_listing(mixsan_pool_t *pool)
{
	struct listing l = {.seen = calloc((size_t)g_opt.objects, 1),
			    .size = calloc((size_t)g_opt.objects, sizeof(uint64_t))};
	int r;

	if (!l.seen || !l.size)
		H_FATAL("out of memory");
	r = mixsan_list(pool, list_cb, &l);
	if (r < 0)
		report(P_UNEXPECTED, NULL, NULL, 0, "listing the pool: %s", strerror(-r));
	for (int o = 0; r >= 0 && o < g_opt.objects; o++) {
		const struct mobj *mo = &g_objs[o];
		bool all_exist = !mo->unknown, none_exist = !mo->unknown, size_ok = false;

		for (int i = 0; i < mo->ncand; i++) {
			all_exist &= mo->cand[i].exists;
			none_exist &= !mo->cand[i].exists;
			size_ok |= mo->cand[i].exists && mo->cand[i].size == l.size[o];
		}
		if (l.seen[o] > 1)
			report_obj(P_CORRUPT, o, "listed %d times", l.seen[o]);
		else if (all_exist && !l.seen[o])
			report_obj(P_LOST, o, "missing from the listing");
		else if (none_exist && l.seen[o])
			report_obj(P_RESURRECT, o, "listed after its remove");
		else if (all_exist && !size_ok)
			report_obj(P_CORRUPT, o, "listed with size %" PRIu64 ", not the model's",
				   l.size[o]);
	}
	free(l.seen);
	free(l.size);
}

/* Wait until no daemon log has grown for quiet_s seconds (max_s at most),
 * and return the seconds waited.  Peering, recovery and backfill log their
 * start and their end, so with no client I/O, quiet logs mean the cluster
 * has finished bringing every copy up to date. */
static double wait_quiet(const struct h_cluster *c, double quiet_s, double max_s)
{
	double t0 = now_s(), changed = t0;
	off_t last = -1;

	while (now_s() - t0 < max_s) {
		off_t total = 0;

		for (int i = -1; i < c->n_osds; i++) {
			char path[400];
			struct stat st;

			if (i < 0)
				snprintf(path, sizeof(path), "%s/mon.log", c->dir);
			else
				snprintf(path, sizeof(path), "%s/osd.%d.log", c->dir, i);
			if (stat(path, &st) == 0)
				total += st.st_size;
		}
		if (total != last) {
			last = total;
			changed = now_s();
		} else if (now_s() - changed >= quiet_s) {
			break;
		}
		usleep(100 * 1000);
	}
	return now_s() - t0;
}

/* Client k (-1: the admin) connects; under localize it is on host
 * h<k mod 3>, beside OSD k mod 3 (and every third OSD after). */
static mixsan_cluster_t *connect_client(struct h_cluster *c, int k)
{
	struct mixsan_options o = {.connect_timeout_ms = 20000,
				   .op_timeout_ms = g_opt.op_timeout_ms};
	char loc[32];
	mixsan_cluster_t *cl;
	int r;

	if (k >= 0 && g_opt.read_policy && strcmp(g_opt.read_policy, "localize") == 0) {
		snprintf(loc, sizeof(loc), "host=h%d", k % 3);
		o.location = loc;
	}
	r = mixsan_connect(c->mon_addr, &o, &cl);

	if (r < 0)
		H_FATAL("cannot connect to %s: %s", c->mon_addr, strerror(-r));
	return cl;
}

/* Daemon logs: every start of an OSD opened its store, no daemon logged
 * an error.  Problems are counted as P_DAEMON. */
static void check_logs(struct h_cluster *c, const struct thrasher *t)
{
	for (int i = 0; i <= c->n_osds; i++) {
		char log[16];
		int errors, opens;

		if (i == c->n_osds)
			snprintf(log, sizeof(log), "mon");
		else
			snprintf(log, sizeof(log), "osd.%d", i);
		errors = h_log_count(c, log, "] error: ");
		if (errors)
			report(P_DAEMON, NULL, NULL, 0, "%s.log has %d error lines", log, errors);
		if (i == c->n_osds)
			continue;
		opens = h_log_count(c, log, "object store open");
		if (opens != (int)t->starts[i])
			report(P_DAEMON, NULL, NULL, 0,
			       "osd.%d started %u times, opened its store %d times", i,
			       t->starts[i], opens);
	}
}

int main(int argc, char **argv)
{
	struct h_cluster c;
	struct thrasher t;
	struct worker *ws;
	struct wstats tot;
	mixsan_cluster_t *admin;
	mixsan_pool_t *apool;
	struct mx_map *m;
	int32_t pool_id;
	uint64_t objects_on_disk = 0, problems = 0, ops = 0;
	int replica_problems = -1;
	double t_load, t_verify, deadline;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &g_t0);
	parse_args(argc, argv);
	g_buf_size = (size_t)g_opt.max_size + 8192;
	fprintf(stderr, "modelcheck: seed %" PRIu64 " (replay with --seed %" PRIu64 ")\n",
		g_opt.seed, g_opt.seed);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);

	memset(&c, 0, sizeof(c));
	if (g_opt.failure_detection) {
		/* Short graces, so that PGs carry on without a dead OSD within
		 * the thrasher's outages. */
		snprintf(c.mon_args, sizeof(c.mon_args),
			 "--heartbeat-grace 2000 --beacon-grace 6000");
		snprintf(c.osd_args, sizeof(c.osd_args),
			 "--heartbeat-interval 250 --heartbeat-grace 2000 --agent-interval 300");
	} else {
		snprintf(c.mon_args, sizeof(c.mon_args), "--no-osd-failure-detection");
	}
	if (g_opt.read_policy && strcmp(g_opt.read_policy, "localize") == 0) {
		for (int i = 0; i < H_MAX_OSDS; i++) {
			char loc[32];

			snprintf(loc, sizeof(loc), "host=h%d", i % 3);
			h_set_location(&c, i, loc);
		}
	}
	h_start(&c, g_opt.osds);
	if (c.external && g_opt.actions) {
		fprintf(stderr, "modelcheck: thrasher actions need daemons it can kill; skipped "
				"under MIXSAN_TEST_MON (--actions none checks that cluster as "
				"it is)\n");
		return 77;
	}
	admin = connect_client(&c, -1);
	if (c.external) {
		struct mx_map *m0 = mx_client_map_copy(admin);
		uint32_t max_osd = m0 ? m0->max_osd : 0;

		mx_map_free(m0);
		if (max_osd > H_MAX_OSDS)
			H_FATAL("the cluster at %s has OSD ids up to %u; the checker follows %d",
				c.mon_addr, max_osd - 1, H_MAX_OSDS);
	}
	h_pool_create(admin, POOL_NAME, 3, g_opt.pg_num, g_opt.failure_domain);
	if (g_opt.read_policy) {
		const char *kv[] = {"name", POOL_NAME, "key", "read_policy", "value",
				    g_opt.read_policy};
		char *msg = NULL;

		if (mixsan_mon_command(admin, "pool set", kv, 3, &msg) < 0)
			H_FATAL("pool set read_policy %s: %s", g_opt.read_policy, msg ? msg : "");
		free(msg);
	}
	if (g_opt.tier)
		make_tier(admin);
	if (mixsan_pool_open(admin, POOL_NAME, &apool) < 0)
		H_FATAL("cannot open pool %s", POOL_NAME);
	pool_id = (int32_t)mixsan_pool_id(apool);

	g_objs = calloc((size_t)g_opt.objects, sizeof(*g_objs));
	g_primary = calloc((size_t)g_opt.objects, sizeof(*g_primary));
	ws = calloc((size_t)g_opt.clients, sizeof(*ws));
	if (!g_objs || !g_primary || !ws)
		H_FATAL("out of memory");
	for (int o = 0; o < g_opt.objects; o++)
		g_objs[o].ncand = 1; /* definitely absent */
	compute_primaries(admin, pool_id);
	for (int i = 0; i < g_opt.clients; i++) {
		struct worker *w = &ws[i];

		w->idx = i;
		w->rng = mix64(g_opt.seed + 0x1000u * (uint64_t)(i + 1));
		pthread_mutex_init(&w->lock, NULL);
		pthread_cond_init(&w->cond, NULL);
		w->reqs = calloc((size_t)g_opt.qd, sizeof(*w->reqs));
		if (!w->reqs)
			H_FATAL("out of memory");
		for (int k = 0; k < g_opt.qd; k++)
			w->reqs[k].buf = xmalloc(g_buf_size);
		w->scratch = xmalloc(g_buf_size);
		w->scratch2 = xmalloc(g_buf_size);
		w->cl = connect_client(&c, i);
		/* A monitor of a quorum may serve the map a moment after the
		 * leader committed it: wait for the pool's epoch. */
		(void)mixsan_wait_for_epoch(w->cl, mixsan_map_epoch(admin), 10000);
		if (mixsan_pool_open(w->cl, POOL_NAME, &w->pool) < 0)
			H_FATAL("cannot open pool %s", POOL_NAME);
	}
	memset(&t, 0, sizeof(t));
	t.c = &c;
	t.cl = admin;
	t.pool_id = pool_id;
	t.rng = mix64(g_opt.seed);
	for (int i = 0; i < c.n_osds; i++)
		t.starts[i] = 1;
	if (c.external)
		fprintf(stderr, "modelcheck: the cluster at %s (not started here), ", c.mon_addr);
	else
		fprintf(stderr, "modelcheck: %d OSDs, ", g_opt.osds);
	fprintf(stderr, "pool of 3 replicas (min_size 2, failure domain %s, reads %s) on %d "
			"PGs, %d clients x %d in flight, %d objects up to %u bytes, ",
		g_opt.failure_domain, g_opt.read_policy ? g_opt.read_policy : "primary",
		g_opt.pg_num, g_opt.clients, g_opt.qd, g_opt.objects, g_opt.max_size);
	if (g_opt.seconds)
		fprintf(stderr, "%u s%s", g_opt.seconds, g_opt.ops ? " or " : "");
	if (g_opt.ops)
		fprintf(stderr, "%" PRIu64 " requests", g_opt.ops);
	if (!g_opt.seconds && !g_opt.ops)
		fprintf(stderr, "no limit (until a signal)");
	fprintf(stderr, ", actions");
	for (int a = 0; a < A__COUNT; a++)
		if (g_opt.actions & (1u << a))
			fprintf(stderr, " %s", action_names[a]);
	fprintf(stderr, "%s\n", g_opt.actions ? "" : " none");

	/* The load, with the thrasher. */
	t_load = now_s();
	deadline = g_opt.seconds ? t_load + g_opt.seconds : 0;
	if (pthread_create(&t.thread, NULL, thrasher_main, &t) != 0)
		H_FATAL("pthread_create failed");
	run_workers(ws, false);
	ok = supervise(ws, deadline);
	stop_running();
	pthread_join(t.thread, NULL);
	if (!ok) {
		h_failures++;
		h_stop(&c);
		fprintf(stderr, "modelcheck: FAIL (hang), seed %" PRIu64 "\n", g_opt.seed);
		_exit(1); /* the workers are stuck in the library */
	}
	join_workers(ws);
	t_load = now_s() - t_load;

	if (c.external) {
		/* Whoever disrupted the cluster has undone it by now. */
		int n = count_existing_osds(admin);

		if (h_wait_up(&c, admin, n, 120) < 0)
			report(P_DAEMON, NULL, NULL, 0,
			       "not every OSD of the map up 120 s after the load (%d of %d)",
			       h_count_up(admin), n);
	} else {
		/* Everything back: start what is down, continue what is stopped. */
		check_daemons(&t);
		for (int i = 0; i < c.n_osds; i++) {
			if (c.osd_pids[i] <= 0) {
				h_start_osd(&c, i);
				t.starts[i]++;
			} else {
				kill(c.osd_pids[i], SIGCONT);
			}
		}
		if (h_wait_up(&c, admin, c.n_osds, 60) < 0)
			report(P_DAEMON, NULL, NULL, 0, "not every OSD up at the end");
	}
	compute_primaries(admin, pool_id);

	/* Every object read back, its listing compared. */
	fprintf(stderr, "modelcheck: t=%7.3f load over; verifying every object\n", now_s());
	t_verify = now_s();
	run_workers(ws, true);
	ok = supervise(ws, 0);
	if (!ok) {
		h_failures++;
		h_stop(&c);
		fprintf(stderr, "modelcheck: FAIL (hang in the final pass), seed %" PRIu64 "\n",
			g_opt.seed);
		_exit(1);
	}
	join_workers(ws);
	check_listing(apool);
	t_verify = now_s() - t_verify;
	check_health(admin, pool_id);

	/* Offline: every replica identical and where placement wants it, once
	 * recovery is over.  Not on a cluster started elsewhere: its stores
	 * and logs are not the checker's to read. */
	if (!c.external)
		fprintf(stderr, "modelcheck: t=%7.3f the daemons' logs quiet after %.1f s; "
				"stopping the OSDs\n",
			now_s(), wait_quiet(&c, g_opt.quiet, g_opt.quiet + 60.0));
	m = mx_client_map_copy(admin);
	{
		uint64_t rr = 0, rb = 0;

		for (int i = 0; i < g_opt.clients; i++) {
			struct mx_client_stats cs;

			mx_client_get_stats(ws[i].cl, &cs);
			rr += cs.replica_reads;
			rb += cs.replica_bounced;
		}
		fprintf(stderr, "modelcheck: reads served by replicas: %" PRIu64 "; sent back to "
				"the primary by a replica: %" PRIu64 "\n", rr, rb);
	}
	for (int i = 0; i < g_opt.clients; i++) {
		mixsan_pool_close(ws[i].pool);
		mixsan_shutdown(ws[i].cl);
	}
	mixsan_pool_close(apool);
	mixsan_shutdown(admin);
	if (c.external) {
		fprintf(stderr, "modelcheck: external cluster: no offline checks of its stores "
				"and logs\n");
		replica_problems = 0;
	} else {
		term_osds(&c, 0, c.n_osds);
		fprintf(stderr, "modelcheck: t=%7.3f OSDs stopped; checking every copy offline\n",
			now_s());
		if (m && !g_opt.tier) {
			check_copies(&c, m, pool_id);
			replica_problems = h_check_replicas(&c, m, pool_id, &objects_on_disk);
		} else if (m) {
			/* Objects live in either pool: the final pass read each
			 * through the tier; here both pools' replicas alike. */
			const struct mx_pool *cp = mx_map_pool_by_name(m, CACHE_POOL_NAME);
			uint64_t in_cache = 0;

			replica_problems = h_check_replicas(&c, m, pool_id, &objects_on_disk);
			if (cp)
				replica_problems += h_check_replicas(&c, m, cp->id, &in_cache);
			objects_on_disk += in_cache;
		}
		check_logs(&c, &t);
		fprintf(stderr, "modelcheck: t=%7.3f offline checks done\n", now_s());
	}
	mx_map_free(m);

	/* The report. */
	memset(&tot, 0, sizeof(tot));
	for (int i = 0; i < g_opt.clients; i++) {
		const struct wstats *s = &ws[i].st;

		for (int k = 0; k < OP__COUNT; k++) {
			tot.done[k] += s->done[k];
			tot.errors[k] += s->errors[k];
		}
		tot.acked += s->acked;
		tot.checked += s->checked;
		tot.unchecked += s->unchecked;
		tot.collapses += s->collapses;
		tot.resets += s->resets;
		tot.remove_enoent += s->remove_enoent;
		tot.verified += s->verified;
		tot.unverifiable += s->unverifiable;
		tot.slow += s->slow;
		tot.max_lat = MX_MAX(tot.max_lat, s->max_lat);
	}
	fprintf(stderr, "modelcheck: requests (errors):");
	for (int k = 0; k < OP__COUNT; k++) {
		fprintf(stderr, " %s %" PRIu64 " (%" PRIu64 ")", op_names[k], tot.done[k],
			tot.errors[k]);
		ops += tot.done[k];
	}
	fputc('\n', stderr);
	fprintf(stderr,
		"modelcheck: %" PRIu64 " requests in %.1f s of load and final pass (%.0f/s); "
		"slowest %.2f s, %" PRIu64 " over 1 s\n",
		ops, t_load + t_verify, (double)ops / (t_load + t_verify), tot.max_lat, tot.slow);
	fprintf(stderr, "modelcheck: longest time without any reply during the load: %.1f s "
			"(until t=%.3f)\n",
		g_longest_gap, g_longest_gap_end);
	fprintf(stderr,
		"modelcheck: %" PRIu64 " writes acknowledged, %" PRIu64 " reads checked (%" PRIu64
		" unchecked), %" PRIu64 " removes answered ENOENT after a resend, %" PRIu64
		" models collapsed (%" PRIu64 " reset); final pass: %" PRIu64
		" objects checked, %" PRIu64 " unknown, in %.1f s\n",
		tot.acked, tot.checked, tot.unchecked, tot.remove_enoent, tot.collapses,
		tot.resets, tot.verified, tot.unverifiable, t_verify);
	fprintf(stderr, "modelcheck: thrasher:");
	for (int a = 0; a < A__COUNT; a++)
		fprintf(stderr, " %s %u", action_names[a], t.counts[a]);
	if (c.external)
		fprintf(stderr, "; replica check: left out (external cluster)\n");
	else
		fprintf(stderr, "; replica check: %" PRIu64 " objects, %d problems\n",
			objects_on_disk, replica_problems);
	fprintf(stderr, "modelcheck: problems:");
	for (int p = 0; p < P__COUNT; p++) {
		fprintf(stderr, " %s %" PRIu64 ";", problem_names[p], g_problems[p]);
		problems += g_problems[p];
	}
	fprintf(stderr, " replica problems %d; harness failures %d\n", replica_problems,
		h_failures);
	if (replica_problems != 0)
		problems++;
	problems += (uint64_t)h_failures;
	if (problems)
		h_failures++; /* keep the folder */
	h_stop(&c);
	fprintf(stderr, "modelcheck: %s, seed %" PRIu64 "\n", problems ? "FAIL" : "PASS",
		g_opt.seed);

	for (int i = 0; i < g_opt.clients; i++) {
		for (int k = 0; k < g_opt.qd; k++)
			free(ws[i].reqs[k].buf);
		free(ws[i].reqs);
		free(ws[i].scratch);
		free(ws[i].scratch2);
		pthread_mutex_destroy(&ws[i].lock);
		pthread_cond_destroy(&ws[i].cond);
	}
	for (int o = 0; o < g_opt.objects; o++) {
		for (int i = 0; i < g_objs[o].ncand; i++)
			st_free(&g_objs[o].cand[i]);
		for (int i = 0; i < g_objs[o].npast; i++)
			st_free(&g_objs[o].past[i]);
	}
	free(g_objs);
	free(g_primary);
	free(ws);
	return problems ? 1 : 0;
}

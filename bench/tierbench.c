/*
 * tierbench: cache tiering on a mixed workload (docs/cache-tiering.md;
 * docs/performance.md, "Cache tiering on a mixed workload").  A fresh
 * local cluster of 1 monitor and 6 OSDs: osd.0-2 of class hdd, whose data
 * folders are DIR/osd.N/data on slow devices that bench/tierbench.sh
 * provides, and osd.3-5 of class ssd on the local disk.  Every run makes
 * a base pool on hdd (3 replicas, failure domain osd), fills it with a
 * fresh set of objects and, in a tiered configuration, puts a cache pool
 * on ssd in front of it (writeback or readonly) with small targets; then
 * it runs a workload through libmixsan's asynchronous calls at a fixed
 * queue depth and prints, as a Markdown table, IOPS, mean and p99 latency
 * and the bytes the hdd and ssd OSD processes read from and wrote to their
 * devices during the job (/proc/PID/io: promotions, flushes and the
 * write-ahead log all show there).  The pools are removed after each run.
 *
 * Workloads, 4 KiB requests, 70% reads and 30% writes:
 *   hot      90% of the requests to 10% of the objects
 *   uniform  every object alike (a working set beyond the cache target)
 *   scan     hot, then one sequential read of every object (whole objects),
 *            then hot again: whether the scan washes the cache out
 *
 * usage: tierbench SECONDS --hdd-dir DIR [--hdd-cgroup CG] [--objects N]
 *            [--obj-kib K] [--qd Q] [--target-kib K]
 *            [--workloads hot,uniform,scan] [--configs none,writeback,readonly]
 *        tierbench --probe DIR
 *
 * Defaults: 512 objects of 256 KiB, queue depth 16, target_max_bytes a
 * quarter of the data (--target-kib), hit_period_s 2 and promote_min_hits 2
 * (an object is promoted on a read miss once it was missed in two periods
 * of 2 s; a write always promotes), the other settings the pool's
 * defaults; configurations none (the base pool alone), writeback and, for
 * the hot set only, readonly.
 *
 * --hdd-cgroup: a cgroup (v1 memory controller folder) that the hdd OSDs
 * are moved into once started, so that its memory limit bounds their page
 * cache, as a disk far larger than RAM would.  --probe: the cost of one
 * durable 4 KiB write (pwrite and fdatasync) and of one direct 4 KiB read
 * in a file under DIR, each the mean of 20.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

#define N_HDD 3
#define N_SSD 3
#define MAX_QD 64
#define IO_SIZE 4096u

enum wl_kind { WL_HOT, WL_UNIFORM, WL_SCAN, WL_FILL };

struct opts {
	double secs;
	const char *hdd_dir;
	const char *cgroup;
	int nobj;
	uint32_t obj_size;
	int qd;
	const char *workloads;
	const char *configs;
	uint64_t target_bytes; /* the cache's target_max_bytes; 0: a quarter of the data */
	int hit_period_s;
	int promote_min_hits;
};

/* The tier's settings for a run (the cache pool's). */
#define HIT_PERIOD_S 2
#define PROMOTE_MIN_HITS 2

/* One request slot of the engine: its completion and buffer (from
 * malloc(), obj_size bytes), submitted at t0, completed at t1. */
struct slot {
	struct engine *e;
	int idx;
	mixsan_completion_t *c;
	uint8_t *buf;
	uint64_t t0, t1;
};

/* Completions are taken in the order they come (the callback queues the
 * slot), so a fast request is never timed behind a slow one. */
struct engine {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done[MAX_QD];
	int ndone;
	struct slot slots[MAX_QD];
};

/* What a job produces: the workload's request generator state. */
struct gen {
	enum wl_kind kind;
	int nobj;
	uint32_t obj_size;
	int next; /* WL_SCAN, WL_FILL: the next object */
	uint64_t rs;
};

struct devio {
	uint64_t hdd_rd, hdd_wr, ssd_rd, ssd_wr;
};

static struct h_cluster g_c;
static struct opts g_o;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static void on_done(mixsan_completion_t *c, void *arg)
{
	struct slot *s = arg;
	struct engine *e = s->e;

	(void)c;
	s->t1 = mx_now_ns();
	pthread_mutex_lock(&e->lock);
	e->done[e->ndone++] = s->idx;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

/* The next request of g into s; false when g has none left. */
static bool submit(mixsan_pool_t *p, struct gen *g, struct slot *s)
{
	char name[32];
	int obj;
	uint64_t off = 0;
	uint32_t len = IO_SIZE;
	bool write = false, full = false;

	switch (g->kind) {
	case WL_HOT:
	case WL_UNIFORM: {
		int nhot = g->nobj / 10 > 0 ? g->nobj / 10 : 1;

		if (g->kind == WL_UNIFORM)
			obj = (int)(h_rand(&g->rs) % (uint64_t)g->nobj);
		else if (h_rand(&g->rs) % 100 < 90)
			obj = (int)(h_rand(&g->rs) % (uint64_t)nhot);
		else
			obj = nhot + (int)(h_rand(&g->rs) % (uint64_t)(g->nobj - nhot));
		write = h_rand(&g->rs) % 100 < 30;
		off = (h_rand(&g->rs) % (g->obj_size / IO_SIZE)) * IO_SIZE;
		break;
	}
	case WL_SCAN:
	case WL_FILL:
		if (g->next >= g->nobj)
			return false;
		obj = g->next++;
		len = g->obj_size;
		write = full = g->kind == WL_FILL;
		break;
	default:
		abort();
	}
	snprintf(name, sizeof(name), "obj.%d", obj);
	if (mixsan_completion_create(on_done, s, &s->c) < 0)
		H_FATAL("completion");
	s->t0 = mx_now_ns();
	if (full)
		(void)mixsan_aio_write_full(p, name, s->c, s->buf, len);
	else if (write)
		(void)mixsan_aio_write(p, name, s->c, s->buf, len, off);
	else
		(void)mixsan_aio_read(p, name, s->c, s->buf, len, off);
	return true;
}

struct result {
	uint64_t n, errors;
	double secs, mean_ms, p99_ms;
};

/* Run g at depth qd until it has no requests left or secs have passed
 * (secs <= 0: no limit).  The rate counts the requests completed by the
 * end; the latencies are those of every request submitted before it (the
 * slowest ones would be left out otherwise). */
static void run(mixsan_pool_t *p, struct gen *g, int qd, double secs, struct result *res)
{
	static struct engine e = {.lock = PTHREAD_MUTEX_INITIALIZER,
				  .cond = PTHREAD_COND_INITIALIZER};
	size_t cap = 1 << 16, n = 0;
	uint64_t *lat = malloc(cap * sizeof(*lat)); /* from malloc(), ns */
	uint64_t start = mx_now_ns(), end, sum = 0, errors = 0, stop, done = 0;
	int inflight = 0;
	bool more = true;

	stop = secs > 0 ? start + (uint64_t)(secs * 1e9) : UINT64_MAX;
	e.ndone = 0;
	for (int k = 0; k < qd; k++) {
		struct slot *s = &e.slots[k];

		s->e = &e;
		s->idx = k;
		if (!s->buf) {
			s->buf = malloc(g->obj_size);
			h_fill((uint64_t)k + 7, s->buf, g->obj_size);
		}
		if (more && (more = submit(p, g, s)))
			inflight++;
	}
	while (inflight > 0) {
		struct slot *s;
		int64_t r;

		pthread_mutex_lock(&e.lock);
		while (e.ndone == 0)
			pthread_cond_wait(&e.cond, &e.lock);
		s = &e.slots[e.done[--e.ndone]];
		pthread_mutex_unlock(&e.lock);
		r = mixsan_completion_result(s->c);
		mixsan_completion_release(s->c);
		s->c = NULL;
		inflight--;
		if (s->t1 <= stop)
			done++;
		if (r < 0) {
			if (errors++ < 3)
				fprintf(stderr, "tierbench: a request failed: %s\n",
					strerror((int)-r));
		}
		if (n == cap) {
			cap *= 2;
			lat = realloc(lat, cap * sizeof(*lat));
		}
		lat[n++] = s->t1 - s->t0;
		sum += s->t1 - s->t0;
		if (more && mx_now_ns() < stop && (more = submit(p, g, s)))
			inflight++;
	}
	end = mx_now_ns();
	if (end > stop)
		end = stop;
	qsort(lat, n, sizeof(*lat), cmp_u64);
	res->n = done;
	res->errors = errors;
	res->secs = (double)(end - start) / 1e9;
	res->mean_ms = n ? (double)sum / (double)n / 1e6 : 0;
	res->p99_ms = n ? (double)lat[n * 99 / 100] / 1e6 : 0;
	free(lat);
}

static void proc_io(pid_t pid, uint64_t *rd, uint64_t *wr)
{
	char path[64], line[128];
	unsigned long long v;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "read_bytes: %llu", &v) == 1)
			*rd += v;
		else if (sscanf(line, "write_bytes: %llu", &v) == 1)
			*wr += v;
	}
	fclose(f);
}

static void devio_now(struct devio *d)
{
	memset(d, 0, sizeof(*d));
	for (int i = 0; i < N_HDD; i++)
		proc_io(g_c.osd_pids[i], &d->hdd_rd, &d->hdd_wr);
	for (int i = N_HDD; i < N_HDD + N_SSD; i++)
		proc_io(g_c.osd_pids[i], &d->ssd_rd, &d->ssd_wr);
}

/* Wait (up to 120 s) until the hdd OSDs have written less than 64 KiB
 * in each of two seconds in a row: what a prefill left to apply or flush
 * is on disk before a job starts. */
static void wait_hdd_quiet(void)
{
	struct devio a, b;
	int quiet = 0, t;

	devio_now(&a);
	for (t = 0; t < 120 && quiet < 2; t++) {
		sleep(1);
		devio_now(&b);
		quiet = b.hdd_wr - a.hdd_wr < (64u << 10) ? quiet + 1 : 0;
		a = b;
	}
	fprintf(stderr, "tierbench: the hdd OSDs %s after %d s\n",
		quiet >= 2 ? "were quiet" : "were still writing", t);
}

static double mib(uint64_t b)
{
	return (double)b / 1048576.0;
}

static bool g_report = true; /* false during the warm-up */

static void row(const char *wl, const char *config, const char *phase, const struct result *r,
		const struct devio *a, const struct devio *b)
{
	if (!g_report)
		return;
	printf("| %s | %s | %s | %.0f | %.2f | %.2f | %.1f | %.1f | %.1f | %.1f | %" PRIu64
	       " |\n",
	       wl, config, phase, (double)r->n / r->secs, r->mean_ms, r->p99_ms,
	       mib(b->hdd_rd - a->hdd_rd), mib(b->hdd_wr - a->hdd_wr), mib(b->ssd_rd - a->ssd_rd),
	       mib(b->ssd_wr - a->ssd_wr), r->errors);
	fflush(stdout);
}

static void cmd(mixsan_cluster_t *cl, const char *prefix, const char *const *kv, size_t n)
{
	char *msg = NULL;
	int r = mixsan_mon_command(cl, prefix, kv, n, &msg);

	if (r < 0)
		H_FATAL("%s: %s (%s)", prefix, strerror(-r), msg ? msg : "");
	free(msg);
}

static void pool_create(mixsan_cluster_t *cl, const char *name, const char *class)
{
	const char *kv[] = {"name", name, "size", "3", "min_size", "2", "pg_num", "32",
			    "failure_domain", "osd", "device_class", class};

	cmd(cl, "pool create", kv, 6);
}

static void pool_set(mixsan_cluster_t *cl, const char *pool, const char *key, uint64_t v)
{
	char val[32];
	const char *kv[] = {"name", pool, "key", key, "value", val};

	snprintf(val, sizeof(val), "%" PRIu64, v);
	cmd(cl, "pool set", kv, 3);
}

/* One workload in one configuration, on pools of its own, removed after. */
static void one_run(mixsan_cluster_t *cl, int k, enum wl_kind wl, const char *config)
{
	static const char *wl_names[] = {"hot set", "uniform", "scan"};
	char base[16], cache[16];
	bool tiered = strcmp(config, "none") != 0;
	struct gen g = {.kind = WL_FILL, .nobj = g_o.nobj, .obj_size = g_o.obj_size,
			.rs = 0x9e3779b97f4a7c15ull + (uint64_t)k};
	struct result r;
	struct devio a, b;
	mixsan_pool_t *p;
	uint64_t t0;

	snprintf(base, sizeof(base), "base%d", k);
	snprintf(cache, sizeof(cache), "cache%d", k);
	pool_create(cl, base, "hdd");
	if (mixsan_pool_open(cl, base, &p) < 0)
		H_FATAL("pool open %s", base);
	t0 = mx_now_ns();
	run(p, &g, g_o.qd, 0, &r);
	if (r.errors)
		H_FATAL("prefill: %" PRIu64 " errors", r.errors);
	mixsan_pool_close(p);
	fprintf(stderr, "tierbench: %s, %s%s: %d objects written to %s in %.1f s\n",
		wl_names[wl], config, g_report ? "" : " (warm-up)", g_o.nobj, base,
		(double)(mx_now_ns() - t0) / 1e9);
	if (tiered) {
		const char *add[] = {"base", base, "cache", cache, "force", "1"};
		const char *md[] = {"pool", cache, "mode", config};
		pool_create(cl, cache, "ssd");
		/* A new pool: the monitor cannot vouch yet that it is empty. */
		cmd(cl, "pool tier add", add, 3);
		pool_set(cl, cache, "target_max_bytes", g_o.target_bytes);
		pool_set(cl, cache, "hit_period_s", (uint64_t)g_o.hit_period_s);
		pool_set(cl, cache, "promote_min_hits", (uint64_t)g_o.promote_min_hits);
		cmd(cl, "pool tier mode", md, 2);
	}
	if (mixsan_pool_open(cl, base, &p) < 0)
		H_FATAL("pool open %s", base);
	g.kind = wl == WL_UNIFORM ? WL_UNIFORM : WL_HOT;
	wait_hdd_quiet();
	devio_now(&a);
	run(p, &g, g_o.qd, g_o.secs, &r);
	devio_now(&b);
	row(wl_names[wl], config, wl == WL_SCAN ? "before the scan" : "", &r, &a, &b);
	if (wl == WL_SCAN) {
		struct gen s = {.kind = WL_SCAN, .nobj = g_o.nobj, .obj_size = g_o.obj_size};

		devio_now(&a);
		run(p, &s, g_o.qd, 0, &r);
		devio_now(&b);
		row(wl_names[wl], config, "the scan (objects/s)", &r, &a, &b);
		devio_now(&a);
		run(p, &g, g_o.qd, g_o.secs, &r);
		devio_now(&b);
		row(wl_names[wl], config, "after the scan", &r, &a, &b);
	}
	mixsan_pool_close(p);
	if (tiered) {
		/* The run's data is not kept: the cache goes without draining. */
		const char *none[] = {"pool", cache, "mode", "none"};
		const char *rm[] = {"base", base, "cache", cache, "force", "1"};
		const char *rmc[] = {"name", cache};

		cmd(cl, "pool tier mode", none, 2);
		cmd(cl, "pool tier rm", rm, 3);
		cmd(cl, "pool rm", rmc, 1);
	}
	{
		const char *rmb[] = {"name", base};

		cmd(cl, "pool rm", rmb, 1);
	}
}

/* The cost of one durable 4 KiB write and one direct 4 KiB read in dir. */
static int probe(const char *dir)
{
	char path[512];
	uint8_t *buf;
	uint64_t rs = 1, t, wsum = 0, rsum = 0;
	const int n = 20;
	int fd;

	snprintf(path, sizeof(path), "%s/tierbench.probe", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || posix_memalign((void **)&buf, 4096, 4096) != 0)
		H_FATAL("%s: %s", path, strerror(errno));
	h_fill(3, buf, 4096);
	/* Allocated and durable first, so the timed writes are overwrites. */
	for (int i = 0; i < 256; i++)
		if (pwrite(fd, buf, 4096, (off_t)i * 4096) != 4096)
			H_FATAL("pwrite: %s", strerror(errno));
	if (fsync(fd) < 0)
		H_FATAL("fsync: %s", strerror(errno));
	for (int i = 0; i < n; i++) {
		off_t off = (off_t)(h_rand(&rs) % 256) * 4096;

		t = mx_now_ns();
		if (pwrite(fd, buf, 4096, off) != 4096 || fdatasync(fd) < 0)
			H_FATAL("durable write: %s", strerror(errno));
		wsum += mx_now_ns() - t;
	}
	close(fd);
	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		H_FATAL("%s (O_DIRECT): %s", path, strerror(errno));
	for (int i = 0; i < n; i++) {
		off_t off = (off_t)(h_rand(&rs) % 256) * 4096;

		t = mx_now_ns();
		if (pread(fd, buf, 4096, off) != 4096)
			H_FATAL("direct read: %s", strerror(errno));
		rsum += mx_now_ns() - t;
	}
	close(fd);
	(void)unlink(path);
	free(buf);
	printf("%s: durable 4 KiB write (pwrite + fdatasync) %.2f ms, direct 4 KiB read %.2f ms "
	       "(mean of %d)\n",
	       dir, (double)wsum / n / 1e6, (double)rsum / n / 1e6, n);
	return 0;
}

/* Move the hdd OSDs into the memory cgroup g_o.cgroup. */
static void hdd_cgroup(void)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/cgroup.procs", g_o.cgroup);
	for (int i = 0; i < N_HDD; i++) {
		f = fopen(path, "we");
		if (!f || fprintf(f, "%d\n", (int)g_c.osd_pids[i]) < 0 || fclose(f) != 0)
			H_FATAL("cannot move osd.%d into %s", i, g_o.cgroup);
	}
}

static void usage(void)
{
	H_FATAL("usage: tierbench SECONDS --hdd-dir DIR [--hdd-cgroup CG] [--objects N] "
		"[--obj-kib K] [--qd Q] [--target-kib K] [--workloads LIST] [--configs LIST] | "
		"tierbench --probe DIR");
}

static bool in_list(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *s = list; (s = strstr(s, word)); s += n)
		if ((s == list || s[-1] == ',') && (s[n] == ',' || s[n] == '\0'))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	static const char *wl_words[] = {"hot", "uniform", "scan"};
	static const char *cfg_words[] = {"none", "writeback", "readonly"};
	mixsan_cluster_t *cl;
	int k = 0;

	if (argc == 3 && strcmp(argv[1], "--probe") == 0)
		return probe(argv[2]);
	if (argc < 2)
		usage();
	g_o = (struct opts){.secs = atof(argv[1]), .nobj = 512, .obj_size = 256u << 10,
			    .qd = 16, .workloads = "hot,uniform,scan",
			    .configs = "none,writeback,readonly", .hit_period_s = HIT_PERIOD_S,
			    .promote_min_hits = PROMOTE_MIN_HITS};
	for (int i = 2; i + 1 < argc; i += 2) {
		const char *o = argv[i], *v = argv[i + 1];

		if (strcmp(o, "--hdd-dir") == 0)
			g_o.hdd_dir = v;
		else if (strcmp(o, "--hdd-cgroup") == 0)
			g_o.cgroup = v;
		else if (strcmp(o, "--objects") == 0)
			g_o.nobj = atoi(v);
		else if (strcmp(o, "--obj-kib") == 0)
			g_o.obj_size = (uint32_t)atoi(v) << 10;
		else if (strcmp(o, "--target-kib") == 0)
			g_o.target_bytes = (uint64_t)atoll(v) << 10;
		else if (strcmp(o, "--qd") == 0)
			g_o.qd = atoi(v);
		else if (strcmp(o, "--workloads") == 0)
			g_o.workloads = v;
		else if (strcmp(o, "--configs") == 0)
			g_o.configs = v;
		else
			usage();
	}
	if (argc % 2 != 0 || !g_o.hdd_dir || g_o.secs <= 0 || g_o.nobj < 10 ||
	    g_o.obj_size < IO_SIZE || g_o.obj_size > (4u << 20) || g_o.qd < 1 ||
	    g_o.qd > MAX_QD)
		usage();

	if (!g_o.target_bytes)
		g_o.target_bytes = (uint64_t)g_o.nobj * g_o.obj_size / 4;
	memset(&g_c, 0, sizeof(g_c));
	for (int i = 0; i < N_HDD + N_SSD; i++) {
		snprintf(g_c.osd_class[i], sizeof(g_c.osd_class[i]), "%s",
			 i < N_HDD ? "hdd" : "ssd");
		if (i < N_HDD) {
			snprintf(g_c.osd_data[i], sizeof(g_c.osd_data[i]), "%s/osd.%d/data",
				 g_o.hdd_dir, i);
			if (mkdir(g_c.osd_data[i], 0700) < 0 && errno != EEXIST)
				H_FATAL("mkdir %s: %s", g_c.osd_data[i], strerror(errno));
		}
	}
	h_start(&g_c, N_HDD + N_SSD);
	if (g_o.cgroup)
		hdd_cgroup();
	cl = h_connect(&g_c);
	printf("%d objects of %u KiB, 4 KiB requests (70%% reads) at queue depth %d, %.0f s "
	       "per job; tier: target_max_bytes %" PRIu64 " KiB (%.0f%% of the data), "
	       "hit_period_s %d, promote_min_hits %d\n\n",
	       g_o.nobj, g_o.obj_size >> 10, g_o.qd, g_o.secs,
	       g_o.target_bytes >> 10,
	       100.0 * (double)g_o.target_bytes / ((double)g_o.nobj * g_o.obj_size), g_o.hit_period_s,
	       g_o.promote_min_hits);
	printf("| workload | tier | phase | IOPS | mean ms | p99 ms | hdd read MiB | "
	       "hdd written MiB | ssd read MiB | ssd written MiB | errors |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
	fflush(stdout);
	/* A warm-up, not reported: the first job on new disks ran at a third
	 * of the rate of the same job later (the OSDs' logs and folders
	 * growing on fresh file systems). */
	g_report = false;
	one_run(cl, k++, WL_HOT, "none");
	g_report = true;
	for (int w = 0; w < 3; w++) {
		if (!in_list(g_o.workloads, wl_words[w]))
			continue;
		/* readonly is for read-mostly work: the hot set alone. */
		for (int m = 0; m < 3; m++)
			if (in_list(g_o.configs, cfg_words[m]) && (m != 2 || w == WL_HOT))
				one_run(cl, k++, (enum wl_kind)w, cfg_words[m]);
	}
	mixsan_shutdown(cl);
	h_stop(&g_c);
	return 0;
}

/*
 * objbench: object I/O through libmixsan against a fresh local cluster
 * (1 monitor, 3 OSDs, a pool of 3 replicas, failure domain osd, OSD data
 * on the local disk).  Every write is durable on all three replicas before
 * it is acknowledged.
 *
 * Jobs: 4 KiB random writes and reads at queue depth 1 and 32 over a
 * prefilled set of 4 MiB objects, then 1 MiB writes and reads at depth 4.
 * Prints IOPS, MiB/s, mean and p99 latency and each OSD's peak RSS, as a
 * Markdown table (to stdout) for docs/performance.md.
 *
 * usage: objbench [SECONDS_PER_JOB]   (default 10)
 *
 * With --auth: the same on a cluster with keys (docs/auth.md): every
 * message carries a MAC, every connection starts with a handshake.
 *
 * With --locality HOSTLOC (bench/locality.sh, on the multi-host rig, the
 * cluster given by MIXSAN_TEST_MON): a pool of 3 replicas with host as
 * the failure domain and read policy localize, 16 objects; the read jobs
 * run twice, by a client reading from primaries and by one on HOSTLOC
 * reading from the nearest replica (docs/read-policies.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "internal.h"
#include "util.h"

static int g_nobj = 64;
#define OBJ_SIZE (4u << 20)
#define MAX_QD 32

struct job {
	const char *name;
	uint32_t bs;
	int qd;
	bool write;
};

struct slot {
	mixsan_completion_t *c;
	uint8_t *buf;
	uint64_t t0;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static void submit(mixsan_pool_t *p, const struct job *j, struct slot *s, uint64_t *rs)
{
	char name[32];
	uint64_t obj = h_rand(rs) % (uint64_t)g_nobj;
	uint64_t off = (h_rand(rs) % (OBJ_SIZE / j->bs)) * j->bs;

	snprintf(name, sizeof(name), "bench.%" PRIu64, obj);
	mixsan_completion_create(NULL, NULL, &s->c);
	s->t0 = mx_now_ns();
	if (j->write)
		mixsan_aio_write(p, name, s->c, s->buf, j->bs, off);
	else
		mixsan_aio_read(p, name, s->c, s->buf, j->bs, off);
}

static void run(mixsan_pool_t *p, const struct job *j, double secs)
{
	struct slot slots[MAX_QD];
	size_t cap = 1 << 20, n = 0;
	uint64_t *lat = malloc(cap * sizeof(*lat));
	uint64_t rs = 12345, start, end, sum = 0;
	int errors = 0;

	for (int k = 0; k < j->qd; k++) {
		slots[k].buf = malloc(j->bs);
		h_fill((uint64_t)k, slots[k].buf, j->bs);
		submit(p, j, &slots[k], &rs);
	}
	start = mx_now_ns();
	end = start + (uint64_t)(secs * 1e9);
	for (int k = 0;; k = (k + 1) % j->qd) {
		struct slot *s = &slots[k];
		int64_t r = mixsan_completion_wait(s->c);
		uint64_t t = mx_now_ns();

		mixsan_completion_release(s->c);
		s->c = NULL;
		if (r < 0)
			errors++;
		if (n == cap) {
			cap *= 2;
			lat = realloc(lat, cap * sizeof(*lat));
		}
		lat[n++] = t - s->t0;
		sum += t - s->t0;
		if (t >= end)
			break;
		submit(p, j, s, &rs);
	}
	end = mx_now_ns();
	for (int k = 0; k < j->qd; k++) {
		if (slots[k].c) {
			(void)mixsan_completion_wait(slots[k].c);
			mixsan_completion_release(slots[k].c);
		}
		free(slots[k].buf);
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	{
		double el = (double)(end - start) / 1e9;
		double iops = (double)n / el;

		printf("| %s | %.0f | %.1f | %.3f | %.3f | %d |\n", j->name, iops,
		       iops * j->bs / 1048576.0, (double)sum / (double)n / 1e6,
		       (double)lat[n * 99 / 100] / 1e6, errors);
		fflush(stdout);
	}
	free(lat);
}

static long peak_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* g_nobj objects of OBJ_SIZE bytes, from fill. */
static void prefill(mixsan_pool_t *p, uint8_t *fill)
{
	h_fill(1, fill, OBJ_SIZE);
	for (int i = 0; i < g_nobj; i++) {
		char name[32];

		snprintf(name, sizeof(name), "bench.%d", i);
		if (mixsan_write_full(p, name, fill, OBJ_SIZE) < 0)
			H_FATAL("prefill");
	}
}

static mixsan_cluster_t *client(struct h_cluster *c, int policy, const char *loc)
{
	struct mixsan_options o = {.connect_timeout_ms = 20000, .read_policy = policy,
				   .location = loc};
	mixsan_cluster_t *cl;

	if (mixsan_connect(c->mon_addr, &o, &cl) < 0)
		H_FATAL("cannot connect to %s", c->mon_addr);
	return cl;
}

/* --locality: reads from primaries, then from the nearest replica. */
static int locality(struct h_cluster *c, const char *loc, double secs)
{
	static const struct job jobs[] = {
		{"4k random read QD1", 4096, 1, false},
		{"4k random read QD32", 4096, 32, false},
		{"1 MiB read QD4", 1u << 20, 4, false},
	};
	const char *kv[] = {"name", "locality", "key", "read_policy", "value", "localize"};
	uint8_t *fill = malloc(OBJ_SIZE);
	mixsan_cluster_t *cl = client(c, MIXSAN_READ_DEFAULT, NULL);
	mixsan_pool_t *p;
	char *msg = NULL;

	g_nobj = 16;
	h_pool_create(cl, "locality", 3, 64, "host");
	if (mixsan_mon_command(cl, "pool set", kv, 3, &msg) < 0)
		H_FATAL("pool set read_policy: %s", msg ? msg : "");
	free(msg);
	if (mixsan_pool_open(cl, "locality", &p) < 0)
		H_FATAL("pool open");
	prefill(p, fill);
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	sleep(2); /* the replicas' leases */
	printf("| job (libmixsan, 3 replicas on 3 hosts, client on %s) | reads from | IOPS | "
	       "MiB/s | mean ms | p99 ms | errors |\n|---|---|---|---|---|---|---|\n", loc);
	for (int k = 0; k < 2; k++) {
		struct mx_client_stats st;

		cl = client(c, k ? MIXSAN_READ_LOCALIZE : MIXSAN_READ_PRIMARY, loc);
		if (mixsan_pool_open(cl, "locality", &p) < 0)
			H_FATAL("pool open");
		for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++) {
			struct job j = jobs[i];
			char name[96];

			snprintf(name, sizeof(name), "%s | %s", jobs[i].name,
				 k ? "the nearest replica" : "the primary");
			j.name = name;
			run(p, &j, secs);
		}
		mx_client_get_stats(cl, &st);
		printf("(%s: %llu reads served by replicas, %llu sent back)\n",
		       k ? "localize" : "primary", (unsigned long long)st.replica_reads,
		       (unsigned long long)st.replica_bounced);
		mixsan_pool_close(p);
		mixsan_shutdown(cl);
	}
	free(fill);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct job jobs[] = {
		{"4k random write QD1", 4096, 1, true},
		{"4k random read QD1", 4096, 1, false},
		{"4k random write QD32", 4096, 32, true},
		{"4k random read QD32", 4096, 32, false},
		{"1 MiB write QD4", 1u << 20, 4, true},
		{"1 MiB read QD4", 1u << 20, 4, false},
	};
	double secs = argc > 1 ? atof(argv[1]) : 10.0;
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	uint8_t *fill = malloc(OBJ_SIZE);

	memset(&c, 0, sizeof(c));
	if (argc > 2 && strcmp(argv[2], "--locality") == 0) {
		if (argc != 4 || !getenv("MIXSAN_TEST_MON"))
			H_FATAL("usage: MIXSAN_TEST_MON=... objbench SECONDS --locality HOSTLOC");
		h_start(&c, 3);
		return locality(&c, argv[3], secs);
	}
	c.auth = argc > 2 && strcmp(argv[2], "--auth") == 0;
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "bench", 3, 128, "osd");
	if (mixsan_pool_open(cl, "bench", &p) < 0)
		H_FATAL("pool open");
	prefill(p, fill);
	printf("| job (libmixsan, 3 replicas, durable%s) | IOPS | MiB/s | mean ms | p99 ms | "
	       "errors |\n", c.auth ? ", with keys" : "");
	printf("|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++)
		run(p, &jobs[i], secs);
	printf("\nPeak RSS per OSD:");
	for (int i = 0; i < c.n_osds; i++)
		printf(" osd.%d %.1f MiB", i, (double)peak_rss_kib(c.osd_pids[i]) / 1024.0);
	printf("\n");
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	free(fill);
	h_stop(&c);
	return 0;
}

/*
 * recbench: how fast a cluster heals, and what its clients feel meanwhile.
 *
 * A fresh local cluster (1 monitor, 5 OSDs, a pool of 3 replicas on 128
 * PGs, failure domain osd, OSD data on the local disk) is filled with
 * DATA_MIB MiB of 4 MiB objects.  Then:
 *
 *   idle latency  4 KiB writes at queue depth 1 for SECONDS, nothing else
 *                 running;
 *   idle repair   osd.4 is killed (SIGKILL) and marked down and out at
 *                 once; the time until the monitor says HEALTH_OK again,
 *                 with no client I/O, and the data osd.4 held over that
 *                 time (the rate recovery reached);
 *   busy repair   the same with osd.3, while a client writes 4 KiB at
 *                 queue depth 1 all along: the time to HEALTH_OK, and the
 *                 client's latency against the idle figure, apart for the
 *                 failover (the first second after the kill, while the
 *                 PGs peer again) and for recovery proper (after it).
 *
 * Prints a Markdown table for docs/performance.md.  OSD options (the
 * recovery throttle) can be passed in MIXSAN_BENCH_OSD_ARGS.
 *
 * usage: recbench [DATA_MIB] [SECONDS]   (default 1024 and 10)
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "util.h"

#define OBJ_SIZE (4u << 20)
#define SMALL_OBJS 256
#define N_OSDS 5

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Latencies of one run of the small-write client, with the times the
 * requests completed. */
struct lat {
	uint64_t *v, *at;
	size_t n, cap;
	int errors;
};

static void lat_add(struct lat *l, uint64_t ns, uint64_t at)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 65536;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		l->at = realloc(l->at, l->cap * sizeof(*l->at));
		if (!l->v || !l->at)
			H_FATAL("out of memory");
	}
	l->v[l->n] = ns;
	l->at[l->n++] = at;
}

/* The latencies of requests completed in [from, to), as a new list. */
static struct lat lat_window(const struct lat *l, uint64_t from, uint64_t to)
{
	struct lat w = {0};

	for (size_t i = 0; i < l->n; i++)
		if (l->at[i] >= from && l->at[i] < to)
			lat_add(&w, l->v[i], l->at[i]);
	return w;
}

static double lat_max_ms(const struct lat *l)
{
	uint64_t m = 0;

	for (size_t i = 0; i < l->n; i++)
		m = l->v[i] > m ? l->v[i] : m;
	return (double)m / 1e6;
}

static double lat_mean_ms(const struct lat *l)
{
	double s = 0;

	for (size_t i = 0; i < l->n; i++)
		s += (double)l->v[i];
	return l->n ? s / (double)l->n / 1e6 : 0;
}

static double lat_p99_ms(struct lat *l)
{
	if (!l->n)
		return 0;
	qsort(l->v, l->n, sizeof(*l->v), cmp_u64);
	return (double)l->v[l->n * 99 / 100] / 1e6;
}

/* The client: 4 KiB writes at random offsets of SMALL_OBJS objects, one
 * at a time, until *stop. */
struct client {
	mixsan_pool_t *pool;
	atomic_bool stop;
	struct lat lat;
	pthread_t thread;
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	uint64_t rs = 777;
	uint8_t buf[4096];

	h_fill(3, buf, sizeof(buf));
	while (!atomic_load(&c->stop)) {
		char name[32];
		uint64_t t0 = mx_now_ns();
		int r;

		snprintf(name, sizeof(name), "small.%" PRIu64, h_rand(&rs) % SMALL_OBJS);
		r = mixsan_write(c->pool, name, buf, sizeof(buf),
				 (h_rand(&rs) % 256) * sizeof(buf));
		if (r < 0) {
			c->lat.errors++;
		} else {
			uint64_t t = mx_now_ns();

			lat_add(&c->lat, t - t0, t);
		}
	}
	return NULL;
}

static void client_start(struct client *c, mixsan_pool_t *pool)
{
	memset(c, 0, sizeof(*c));
	c->pool = pool;
	if (pthread_create(&c->thread, NULL, client_main, c) != 0)
		H_FATAL("pthread_create");
}

static void client_stop(struct client *c)
{
	atomic_store(&c->stop, true);
	pthread_join(c->thread, NULL);
}

/* Seconds until HEALTH_OK (at most limit_s; -1 if never), polled every
 * 100 ms so that the figure is that precise. */
static double wait_healthy(mixsan_cluster_t *cl, uint64_t t0, double limit_s)
{
	for (;;) {
		json_t *j = h_status(cl);
		const char *v = json_string_value(json_object_get(json_object_get(j, "health"),
								  "status"));
		bool ok = v && strcmp(v, "HEALTH_OK") == 0;
		double el = (double)(mx_now_ns() - t0) / 1e9;

		json_decref(j);
		if (ok)
			return el;
		if (el > limit_s)
			return -1;
		usleep(100 * 1000);
	}
}

static uint64_t g_du;

static int du_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag == FTW_F)
		g_du += (uint64_t)st->st_size;
	return 0;
}

/* Bytes of object data under OSD i's folder (its files' sizes). */
static uint64_t osd_bytes(struct h_cluster *c, int i)
{
	char dir[512];

	h_osd_dir(c, i, dir, sizeof(dir));
	g_du = 0;
	(void)nftw(dir, du_cb, 32, FTW_PHYS);
	return g_du;
}

static void mon_cmd(mixsan_cluster_t *cl, const char *prefix, const char *id)
{
	const char *kv[] = {"id", id};
	char *msg = NULL;

	if (mixsan_mon_command(cl, prefix, kv, 1, &msg) < 0)
		H_FATAL("%s %s: %s", prefix, id, msg ? msg : "failed");
	free(msg);
}

/* Kill OSD i, mark it down and out; the seconds until HEALTH_OK.  *t0
 * gets the time of the kill. */
static double lose_osd(struct h_cluster *c, mixsan_cluster_t *cl, int i, uint64_t *t0p)
{
	char id[16];
	uint64_t t0;

	snprintf(id, sizeof(id), "%d", i);
	h_signal_osd(c, i, SIGKILL);
	t0 = *t0p = mx_now_ns();
	mon_cmd(cl, "osd down", id);
	mon_cmd(cl, "osd out", id);
	return wait_healthy(cl, t0, 1800);
}

int main(int argc, char **argv)
{
	unsigned data_mib = argc > 1 ? (unsigned)atoi(argv[1]) : 1024;
	double secs = argc > 2 ? atof(argv[2]) : 10.0;
	const char *osd_args = getenv("MIXSAN_BENCH_OSD_ARGS");
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	struct client idle, busy;
	struct lat failover, steady;
	uint8_t *fill = malloc(OBJ_SIZE);
	uint64_t held4, held3, t0, t_kill;
	double t_idle, t_busy, idle_mean, idle_p99, busy_mean, busy_p99;

	if (!fill || data_mib < 4 || secs <= 0) {
		fprintf(stderr, "usage: recbench [DATA_MIB >= 4] [SECONDS > 0]\n");
		return 2;
	}
	memset(&c, 0, sizeof(c));
	snprintf(c.osd_args, sizeof(c.osd_args), "--heartbeat-interval 500 %s",
		 osd_args ? osd_args : "");
	h_start(&c, N_OSDS);
	cl = h_connect(&c);
	h_pool_create(cl, "bench", 3, 128, "osd");
	if (mixsan_pool_open(cl, "bench", &p) < 0)
		H_FATAL("pool open");

	/* The data. */
	h_fill(1, fill, OBJ_SIZE);
	t0 = mx_now_ns();
	for (unsigned i = 0; i < data_mib / 4; i++) {
		char name[32];

		snprintf(name, sizeof(name), "big.%u", i);
		if (mixsan_write_full(p, name, fill, OBJ_SIZE) < 0)
			H_FATAL("filling the pool");
	}
	for (int i = 0; i < SMALL_OBJS; i++) {
		char name[32];

		snprintf(name, sizeof(name), "small.%d", i);
		if (mixsan_write_full(p, name, fill, 1u << 20) < 0)
			H_FATAL("filling the pool");
	}
	fprintf(stderr, "recbench: %u MiB written in %.1f s\n", data_mib,
		(double)(mx_now_ns() - t0) / 1e9);
	if (wait_healthy(cl, mx_now_ns(), 120) < 0)
		H_FATAL("the cluster is not healthy after filling it");

	/* Idle latency. */
	client_start(&idle, p);
	usleep((useconds_t)(secs * 1e6));
	client_stop(&idle);
	idle_mean = lat_mean_ms(&idle.lat);
	idle_p99 = lat_p99_ms(&idle.lat);

	/* Repair with no client. */
	held4 = osd_bytes(&c, 4);
	t_idle = lose_osd(&c, cl, 4, &t_kill);
	fprintf(stderr, "recbench: idle repair of %.0f MiB: %.1f s\n", (double)held4 / 1048576.0,
		t_idle);

	/* Repair under a client. */
	held3 = osd_bytes(&c, 3);
	client_start(&busy, p);
	usleep(1000 * 1000);
	t_busy = lose_osd(&c, cl, 3, &t_kill);
	client_stop(&busy);
	/* The first second after the kill is the failover (PGs peer again
	 * without it); the rest, until HEALTH_OK, is recovery proper. */
	failover = lat_window(&busy.lat, t_kill, t_kill + 1000000000ull);
	steady = lat_window(&busy.lat, t_kill + 1000000000ull,
			    t_kill + (uint64_t)(t_busy * 1e9));
	busy_mean = lat_mean_ms(&steady);
	busy_p99 = lat_p99_ms(&steady);
	fprintf(stderr, "recbench: busy repair of %.0f MiB: %.1f s\n", (double)held3 / 1048576.0,
		t_busy);

	printf("| recovery (5 OSDs, 3 replicas, %u MiB of 4 MiB objects) | data the lost OSD "
	       "held | time to HEALTH_OK | rate |\n",
	       data_mib);
	printf("|---|---|---|---|\n");
	printf("| one OSD lost, no client I/O | %.0f MiB | %.1f s | %.0f MiB/s |\n",
	       (double)held4 / 1048576.0, t_idle,
	       t_idle > 0 ? (double)held4 / 1048576.0 / t_idle : 0.0);
	printf("| one more OSD lost, a client writing 4 KiB QD1 | %.0f MiB | %.1f s | %.0f MiB/s |\n",
	       (double)held3 / 1048576.0, t_busy,
	       t_busy > 0 ? (double)held3 / 1048576.0 / t_busy : 0.0);
	printf("\n| client: 4 KiB writes, QD1 | requests | mean ms | p99 ms | errors |\n");
	printf("|---|---|---|---|---|\n");
	printf("| idle cluster | %zu | %.3f | %.3f | %d |\n", idle.lat.n, idle_mean, idle_p99,
	       idle.lat.errors);
	printf("| failover: the first second after the kill | %zu | %.3f | %.3f (max %.1f) | |\n",
	       failover.n, lat_mean_ms(&failover), lat_p99_ms(&failover), lat_max_ms(&failover));
	printf("| during recovery, from then to HEALTH_OK | %zu | %.3f | %.3f | %d |\n", steady.n,
	       busy_mean, busy_p99, busy.lat.errors);
	printf("\nDuring recovery the client's mean latency is %.2fx idle, p99 %.2fx.\n",
	       idle_mean > 0 ? busy_mean / idle_mean : 0.0, idle_p99 > 0 ? busy_p99 / idle_p99 : 0.0);

	free(idle.lat.v);
	free(idle.lat.at);
	free(busy.lat.v);
	free(busy.lat.at);
	free(failover.v);
	free(failover.at);
	free(steady.v);
	free(steady.at);
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	free(fill);
	h_stop(&c);
	return t_idle < 0 || t_busy < 0 ? 1 : 0;
}

/*
 * bootstorm: a boot storm of linked clones, replayed through libmixsan.
 *
 * A VDI host boots many desktops at once, each from a linked clone of one
 * golden volume (docs/volumes.md, "Clones"): every clone reads the same
 * snapshot data at the same time.  Booting that many guests under software
 * emulation is out of reach, so bench/boottrace.sh records the block
 * requests of one real boot and this program replays them, for N clones at
 * once, the way the host's one NBD export process would issue them: one
 * cluster connection, the volumes opened read-write, one thread per clone
 * replaying the whole trace in order at queue depth 1.
 *
 *   bootstorm --mon ADDRS --pool POOL --prefix NAME --clones N --trace FILE
 *             [--keyfile F] [--seconds LIMIT] [--verify IMAGE] [--json]
 *             [--cache-mib MIB] [--readahead-kib KIB|off]
 *
 * Clone i (1..N) is the volume NAMEi.  Trace lines (bench/boottrace.sh):
 * "# size BYTES", then "R OFF LEN" (read), "W OFF LEN" (write of a pattern
 * of the clone's own), "F 0 0" (flush), "T OFF LEN" (discard).
 *
 * --verify IMAGE compares every byte read with the golden image at the
 * same offset, except in the 512-byte sectors the clone wrote or discarded
 * before (the clones must be fresh); a sector read that differs makes the
 * exit status 1 (the count of such sectors is reported as mismatches).
 * --seconds (default 600) bounds the storm: past it the program stops
 * with status 2, as on any error.
 *
 * Prints one line per figure: the time until every clone finished its boot
 * ("all up"), the slowest, median and fastest clone, the data read, the
 * read latency, the requests the client sent to the OSDs and the cache's
 * statistics; with --json one JSON object on stdout instead (the lines go
 * to stderr).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

#define SECTOR_SHIFT 9
/* Longer requests are issued in pieces of this size, one after the other,
 * so a clone's buffers stay small whatever the trace holds. */
#define CHUNK_MAX (4u << 20)

struct req {
	char op; /* 'R', 'W', 'F', 'T' */
	uint64_t off;
	uint64_t len;
};

struct trace {
	uint64_t size; /* the image's, from "# size" (0: not given) */
	struct req *r;
	size_t n;
	size_t n_reads;
	uint64_t read_bytes, write_bytes, trim_bytes;
	uint64_t end; /* the highest offset + length of any request */
};

struct args {
	const char *mon, *pool, *prefix, *trace, *keyfile, *verify;
	int clones;
	double seconds;
	bool json;
	/* For the host-local cache of snapshot data (the golden image's) in
	 * libmixsan: -1 when not given (the library's default); readahead 0
	 * is "off".  See storm_options. */
	long cache_mib;
	long readahead_kib;
};

struct clone {
	int idx; /* 1..N */
	char name[MIXSAN_VOLUME_NAME_MAX + 1];
	mixsan_volume_t *v;
	const struct trace *t;
	const uint8_t *img; /* the golden image, mapped (--verify), or NULL */
	uint64_t img_size;
	uint8_t *buf;
	uint8_t *written; /* a bit per sector this clone wrote or discarded */
	uint64_t *lat_ns; /* of each read */
	size_t n_lat;
	uint64_t start_ns, end_ns;
	uint64_t bytes_read;
	size_t reqs_done;
	uint64_t mismatches;
	int err; /* the first error (negative errno), 0 if none */
	char what[128];
};

/* The storm's shared state: the start gate and the count of clones done. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static bool g_go;
static int g_done;

/* ==== The client's options: the one place they are set ====================
 * Every figure of the storm depends on these; a configuration of
 * bench/bootstorm.sh (its CONFIGS) changes only what reaches this function
 * through the command line. */
static void storm_options(struct mixsan_options *o, const struct args *a)
{
	memset(o, 0, sizeof(*o));
	o->connect_timeout_ms = 20000;
	o->keyfile = a->keyfile;
	/* The snapshot cache (docs/vdi-cache.md): -1, not given, the
	 * library's default (no cache; read-ahead 1 MiB). */
	if (a->cache_mib >= 0)
		o->snap_cache_bytes = (uint64_t)a->cache_mib << 20;
	if (a->readahead_kib == 0)
		o->readahead_bytes = MIXSAN_READAHEAD_OFF;
	else if (a->readahead_kib > 0)
		o->readahead_bytes = (uint64_t)a->readahead_kib << 10;
}

/* Statistics of the library's snapshot cache, for the report.  known is
 * false when the connection has no cache. */
struct storm_cache_stats {
	bool known;
	uint64_t hits;            /* bytes of reads served from the cache */
	uint64_t misses;          /* bytes of reads it had to fetch */
	uint64_t fetched_bytes;   /* bytes the cache fetched from the OSDs */
	uint64_t readahead_bytes; /* of them, fetched ahead of any read */
	uint64_t mem_bytes;       /* the cache's size at the end */
};

/* Called once, after the storm and before the connection closes: fill st
 * from the library's cache counters of cl. */
static void storm_cache_stats(mixsan_cluster_t *cl, struct storm_cache_stats *st)
{
	struct mixsan_io_stats io;

	memset(st, 0, sizeof(*st));
	mixsan_io_stats(cl, &io);
	st->known = io.cache_capacity > 0;
	st->hits = io.cache_hit_bytes;
	st->misses = io.cache_miss_bytes;
	st->fetched_bytes = io.cache_fetched_bytes;
	st->readahead_bytes = io.cache_readahead_bytes;
	st->mem_bytes = io.cache_used;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bootstorm --mon ADDRS --pool POOL --prefix NAME --clones N --trace FILE\n"
		"                 [--keyfile F] [--seconds LIMIT] [--verify IMAGE] [--json]\n"
		"                 [--cache-mib MIB] [--readahead-kib KIB|off]\n");
	exit(2);
}

static void die(const char *fmt, ...) MX_PRINTF(1, 2);
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("bootstorm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static long parse_num(const char *opt, const char *s, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > max)
		die("%s: not a number from 0 to %ld: %s", opt, max, s);
	return v;
}

static void parse_args(int argc, char **argv, struct args *a)
{
	enum { O_MON = 256, O_POOL, O_PREFIX, O_CLONES, O_TRACE, O_KEYFILE, O_SECONDS,
	       O_VERIFY, O_JSON, O_CACHE, O_READAHEAD };
	static const struct option opts[] = {
		{"mon", required_argument, NULL, O_MON},
		{"pool", required_argument, NULL, O_POOL},
		{"prefix", required_argument, NULL, O_PREFIX},
		{"clones", required_argument, NULL, O_CLONES},
		{"trace", required_argument, NULL, O_TRACE},
		{"keyfile", required_argument, NULL, O_KEYFILE},
		{"seconds", required_argument, NULL, O_SECONDS},
		{"verify", required_argument, NULL, O_VERIFY},
		{"json", no_argument, NULL, O_JSON},
		{"cache-mib", required_argument, NULL, O_CACHE},
		{"readahead-kib", required_argument, NULL, O_READAHEAD},
		{NULL, 0, NULL, 0},
	};
	int c;

	memset(a, 0, sizeof(*a));
	a->seconds = 600;
	a->cache_mib = -1;
	a->readahead_kib = -1;
	a->keyfile = getenv("MIXSAN_KEYFILE");
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_MON: a->mon = optarg; break;
		case O_POOL: a->pool = optarg; break;
		case O_PREFIX: a->prefix = optarg; break;
		case O_CLONES: a->clones = (int)parse_num("--clones", optarg, 10000); break;
		case O_TRACE: a->trace = optarg; break;
		case O_KEYFILE: a->keyfile = optarg; break;
		case O_SECONDS: {
			char *end;

			a->seconds = strtod(optarg, &end);
			if (end == optarg || *end || !(a->seconds > 0))
				die("--seconds: not a positive number: %s", optarg);
			break;
		}
		case O_VERIFY: a->verify = optarg; break;
		case O_JSON: a->json = true; break;
		case O_CACHE: a->cache_mib = parse_num("--cache-mib", optarg, 1L << 30); break;
		case O_READAHEAD:
			a->readahead_kib = strcmp(optarg, "off") == 0
						   ? 0
						   : parse_num("--readahead-kib", optarg, 1L << 30);
			break;
		default: usage();
		}
	}
	if (optind != argc || !a->mon || !a->pool || !a->prefix || !a->trace || a->clones < 1)
		usage();
	if (a->keyfile && !*a->keyfile)
		a->keyfile = NULL;
}

static void load_trace(const char *path, struct trace *t)
{
	FILE *f = fopen(path, "r");
	char line[256];
	size_t cap = 0, lineno = 0;

	if (!f)
		die("%s: %s", path, strerror(errno));
	memset(t, 0, sizeof(*t));
	while (fgets(line, sizeof(line), f)) {
		struct req r = {0};
		char op[4];
		uint64_t size;

		lineno++;
		if (line[0] == '#') {
			if (sscanf(line, "# size %" SCNu64, &size) == 1)
				t->size = size;
			continue;
		}
		if (line[0] == '\n')
			continue;
		if (sscanf(line, "%3s %" SCNu64 " %" SCNu64, op, &r.off, &r.len) != 3 ||
		    op[1] != '\0' || !strchr("RWFT", op[0]) || (op[0] != 'F' && r.len == 0) ||
		    r.off + r.len < r.off)
			die("%s:%zu: not a request: %s", path, lineno, line);
		r.op = op[0];
		if (t->n == cap) {
			cap = cap ? cap * 2 : 4096;
			t->r = realloc(t->r, cap * sizeof(*t->r));
			if (!t->r)
				die("out of memory");
		}
		t->r[t->n++] = r;
		if (r.op == 'R') {
			t->n_reads++;
			t->read_bytes += r.len;
		} else if (r.op == 'W') {
			t->write_bytes += r.len;
		} else if (r.op == 'T') {
			t->trim_bytes += r.len;
		}
		if (r.op != 'F' && r.off + r.len > t->end)
			t->end = r.off + r.len;
	}
	if (ferror(f))
		die("%s: read error", path);
	fclose(f);
	if (t->n == 0)
		die("%s: no requests", path);
	if (t->size && t->end > t->size)
		die("%s: requests reach byte %" PRIu64 ", beyond the image's %" PRIu64, path,
		    t->end, t->size);
}

/* The pattern clone idx writes at off: 64-bit words of a hash of both. */
static void pattern(uint8_t *buf, uint64_t len, int idx, uint64_t off)
{
	for (uint64_t i = 0; i < len; i += 8) {
		uint64_t x = ((uint64_t)idx << 48) ^ (off + i);

		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
		x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
		x ^= x >> 31;
		memcpy(buf + i, &x, MX_MIN(8, len - i));
	}
}

static void mark_written(struct clone *c, uint64_t off, uint64_t len)
{
	for (uint64_t s = off >> SECTOR_SHIFT; s <= (off + len - 1) >> SECTOR_SHIFT; s++)
		c->written[s >> 3] |= (uint8_t)(1u << (s & 7));
}

static bool was_written(const struct clone *c, uint64_t sector)
{
	return c->written[sector >> 3] & (1u << (sector & 7));
}

/* Compare what the clone read at off with the golden image, sector by
 * sector, leaving out the sectors it changed itself and anything past the
 * image's end. */
static void verify(struct clone *c, const uint8_t *got, uint64_t len, uint64_t off)
{
	uint64_t n = len, pos = 0;

	if (off >= c->img_size)
		return;
	if (off + n > c->img_size)
		n = c->img_size - off;
	while (pos < n) {
		uint64_t at = off + pos;
		uint64_t next = ((at >> SECTOR_SHIFT) + 1) << SECTOR_SHIFT;
		uint64_t piece = MX_MIN(next - at, n - pos);

		if (!was_written(c, at >> SECTOR_SHIFT) && memcmp(got + pos, c->img + at, piece)) {
			if (c->mismatches++ == 0)
				fprintf(stderr, "bootstorm: %s: the read at %" PRIu64 " differs from the "
					"golden image in the sector at byte %" PRIu64 "\n", c->name, off, at);
		}
		pos += piece;
	}
}

/* One request, in pieces of at most CHUNK_MAX.  0 or a negative errno. */
static int replay_one(struct clone *c, const struct req *q)
{
	uint64_t done = 0;
	int64_t r;

	if (q->op == 'F')
		return mixsan_volume_flush(c->v);
	if (q->op == 'T') {
		r = mixsan_volume_discard(c->v, q->len, q->off);
		if (r == 0 && c->written)
			mark_written(c, q->off, q->len);
		return (int)r;
	}
	while (done < q->len) {
		uint64_t off = q->off + done, len = MX_MIN(q->len - done, CHUNK_MAX);

		if (q->op == 'W') {
			pattern(c->buf, len, c->idx, off);
			r = mixsan_volume_write(c->v, c->buf, len, off);
			if (r < 0)
				return (int)r;
			if (c->written)
				mark_written(c, off, len);
		} else {
			uint64_t t0 = mx_now_ns();

			r = mixsan_volume_read(c->v, c->buf, len, off);
			if (r < 0)
				return (int)r;
			if ((uint64_t)r != len)
				return -EIO; /* short: the volume ends before the trace */
			c->lat_ns[c->n_lat++] = mx_now_ns() - t0;
			c->bytes_read += len;
			if (c->img)
				verify(c, c->buf, len, off);
		}
		done += len;
	}
	return 0;
}

static void *clone_main(void *arg)
{
	struct clone *c = arg;

	pthread_mutex_lock(&g_lock);
	while (!g_go)
		pthread_cond_wait(&g_cond, &g_lock);
	pthread_mutex_unlock(&g_lock);

	c->start_ns = mx_now_ns();
	for (size_t i = 0; i < c->t->n && !c->err; i++) {
		const struct req *q = &c->t->r[i];
		int r = replay_one(c, q);

		if (r < 0 && !c->err) {
			c->err = r;
			snprintf(c->what, sizeof(c->what), "request %zu (%c %" PRIu64 " %" PRIu64 ")",
				 i + 1, q->op, q->off, q->len);
		}
		__atomic_store_n(&c->reqs_done, i + 1, __ATOMIC_RELAXED);
	}
	c->end_ns = mx_now_ns();

	pthread_mutex_lock(&g_lock);
	g_done++;
	pthread_cond_broadcast(&g_cond);
	pthread_mutex_unlock(&g_lock);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static double secs(uint64_t ns)
{
	return (double)ns / 1e9;
}

/* The value at quantile q of n sorted values. */
static uint64_t quantile(const uint64_t *v, size_t n, double q)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(q * (double)(n - 1) + 0.5);
	return v[MX_MIN(i, n - 1)];
}

/* The median of n sorted values (of the middle two when n is even). */
static uint64_t median(const uint64_t *v, size_t n)
{
	if (n == 0)
		return 0;
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void json_opt_long(const char *name, long v)
{
	if (v < 0)
		printf("\"%s\": null, ", name);
	else
		printf("\"%s\": %ld, ", name, v);
}

int main(int argc, char **argv)
{
	struct args a;
	struct trace t;
	struct mixsan_options o;
	struct mx_client_stats st0, st1;
	struct storm_cache_stats cs;
	mixsan_cluster_t *cl;
	mixsan_pool_t *pool;
	struct clone *cl_v;
	pthread_t *th;
	uint64_t t0, deadline, all_up = 0, *times, *lat, bytes_read = 0, mismatches = 0;
	size_t n_lat = 0, reqs = 0;
	const uint8_t *img = NULL;
	uint64_t img_size = 0;
	int errors = 0, r;
	FILE *out;

	parse_args(argc, argv, &a);
	load_trace(a.trace, &t);
	if (a.verify) {
		/* Mapped once and shared: the comparisons cost no copies. */
		struct stat sb;
		int fd = open(a.verify, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || fstat(fd, &sb) < 0)
			die("%s: %s", a.verify, strerror(errno));
		img_size = (uint64_t)sb.st_size;
		if (t.size && t.size != img_size)
			die("%s: %" PRIu64 " bytes, the trace's image %" PRIu64, a.verify, img_size,
			    t.size);
		if (img_size < t.end)
			die("%s: %" PRIu64 " bytes, the trace reaches byte %" PRIu64, a.verify,
			    img_size, t.end);
		img = mmap(NULL, img_size, PROT_READ, MAP_SHARED, fd, 0);
		if (img == MAP_FAILED)
			die("%s: mmap: %s", a.verify, strerror(errno));
		close(fd);
	}

	storm_options(&o, &a);
	r = mixsan_connect(a.mon, &o, &cl);
	if (r < 0)
		die("cannot reach the monitors at %s: %s", a.mon,
		    *mixsan_connect_error() ? mixsan_connect_error() : strerror(-r));
	r = mixsan_pool_open(cl, a.pool, &pool);
	if (r < 0)
		die("pool %s: %s", a.pool, r == -ENOENT ? "no such pool" : strerror(-r));

	cl_v = calloc((size_t)a.clones, sizeof(*cl_v));
	th = calloc((size_t)a.clones, sizeof(*th));
	if (!cl_v || !th)
		die("out of memory");
	for (int i = 0; i < a.clones; i++) {
		struct clone *c = &cl_v[i];
		uint64_t chunk = 0;

		for (size_t k = 0; k < t.n; k++)
			if (t.r[k].op == 'R' || t.r[k].op == 'W')
				chunk = MX_MAX(chunk, MX_MIN(t.r[k].len, CHUNK_MAX));
		c->idx = i + 1;
		c->t = &t;
		c->img = img;
		c->img_size = img_size;
		if ((size_t)snprintf(c->name, sizeof(c->name), "%s%d", a.prefix, i + 1) >=
		    sizeof(c->name))
			die("--prefix is too long");
		c->buf = malloc(chunk ? chunk : 1);
		/* A read of n bytes may be cut in ceil(n / CHUNK_MAX) pieces. */
		c->lat_ns = calloc(t.n_reads + t.read_bytes / CHUNK_MAX + 1, sizeof(uint64_t));
		if (!c->buf || !c->lat_ns)
			die("out of memory");
		if (img) {
			c->written = calloc((t.end >> SECTOR_SHIFT) / 8 + 1, 1);
			if (!c->written)
				die("out of memory");
		}
		r = mixsan_volume_open(pool, c->name, NULL, &c->v);
		if (r < 0) {
			fprintf(stderr, "bootstorm: volume %s/%s: %s\n", a.pool, c->name,
				r == -ENOENT ? "no such volume" : strerror(-r));
			break;
		}
		if (mixsan_volume_size(c->v) < t.end) {
			fprintf(stderr, "bootstorm: volume %s/%s: %" PRIu64 " bytes, the trace "
				"reaches byte %" PRIu64 "\n", a.pool, c->name,
				mixsan_volume_size(c->v), t.end);
			r = -EINVAL;
			break;
		}
	}
	if (r < 0) {
		/* Release the locks taken so far: the next run needs them. */
		for (int i = 0; i < a.clones; i++)
			mixsan_volume_close(cl_v[i].v);
		mixsan_pool_close(pool);
		mixsan_shutdown(cl);
		return 2;
	}
	for (int i = 0; i < a.clones; i++)
		if (pthread_create(&th[i], NULL, clone_main, &cl_v[i]))
			die("cannot start a thread");

	/* The storm: every clone starts at once. */
	mx_client_get_stats(cl, &st0);
	t0 = mx_now_ns();
	deadline = t0 + (uint64_t)(a.seconds * 1e9);
	pthread_mutex_lock(&g_lock);
	g_go = true;
	pthread_cond_broadcast(&g_cond);
	while (g_done < a.clones) {
		uint64_t now = mx_now_ns();
		struct timespec ts;
		size_t done = 0;

		if (now >= deadline) {
			for (int i = 0; i < a.clones; i++)
				done += __atomic_load_n(&cl_v[i].reqs_done, __ATOMIC_RELAXED);
			fprintf(stderr, "bootstorm: not done within %g s: %d of %d clones up, "
				"%zu of %zu requests replayed\n", a.seconds, g_done, a.clones, done,
				t.n * (size_t)a.clones);
			fflush(NULL);
			_exit(2); /* the clones' requests may hang: no clean-up */
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&g_cond, &g_lock, &ts);
	}
	pthread_mutex_unlock(&g_lock);
	mx_client_get_stats(cl, &st1);
	for (int i = 0; i < a.clones; i++)
		pthread_join(th[i], NULL);

	times = calloc((size_t)a.clones, sizeof(*times));
	lat = calloc(t.n_reads * (size_t)a.clones + t.read_bytes / CHUNK_MAX * (size_t)a.clones + 1,
		     sizeof(*lat));
	if (!times || !lat)
		die("out of memory");
	for (int i = 0; i < a.clones; i++) {
		struct clone *c = &cl_v[i];

		times[i] = c->end_ns - c->start_ns;
		all_up = MX_MAX(all_up, c->end_ns - t0);
		bytes_read += c->bytes_read;
		reqs += c->reqs_done;
		mismatches += c->mismatches;
		memcpy(lat + n_lat, c->lat_ns, c->n_lat * sizeof(*lat));
		n_lat += c->n_lat;
		if (c->err) {
			errors++;
			fprintf(stderr, "bootstorm: %s: %s: %s\n", c->name, c->what,
				strerror(-c->err));
		}
	}
	qsort(times, (size_t)a.clones, sizeof(*times), cmp_u64);
	qsort(lat, n_lat, sizeof(*lat), cmp_u64);
	storm_cache_stats(cl, &cs);

	/* The report: lines for people, to stdout, or to stderr when stdout
	 * gets the JSON object. */
	out = a.json ? stderr : stdout;
	fprintf(out, "clones              %d (trace: %zu requests, %.1f MiB read, %.1f MiB "
		"written, %.1f MiB discarded)\n", a.clones, t.n, (double)t.read_bytes / 1048576.0,
		(double)t.write_bytes / 1048576.0, (double)t.trim_bytes / 1048576.0);
	if (a.cache_mib >= 0 || a.readahead_kib >= 0) {
		fprintf(out, "cache options       --cache-mib ");
		fprintf(out, a.cache_mib >= 0 ? "%ld" : "default", a.cache_mib);
		fprintf(out, " --readahead-kib ");
		if (a.readahead_kib == 0)
			fprintf(out, "off\n");
		else
			fprintf(out, a.readahead_kib > 0 ? "%ld\n" : "default\n", a.readahead_kib);
	}
	fprintf(out, "all up              %.2f s\n", secs(all_up));
	fprintf(out, "slowest clone       %.2f s\n", secs(times[a.clones - 1]));
	fprintf(out, "median clone        %.2f s\n", secs(median(times, (size_t)a.clones)));
	fprintf(out, "fastest clone       %.2f s\n", secs(times[0]));
	fprintf(out, "read by the clones  %.1f MiB (%.1f MiB/s)\n",
		(double)bytes_read / 1048576.0,
		all_up ? (double)bytes_read / 1048576.0 / secs(all_up) : 0.0);
	fprintf(out, "requests            %zu\n", reqs);
	fprintf(out, "read latency        median %.3f ms, p99 %.3f ms, max %.3f ms\n",
		ms(median(lat, n_lat)), ms(quantile(lat, n_lat, 0.99)),
		ms(n_lat ? lat[n_lat - 1] : 0));
	fprintf(out, "OSD requests        %" PRIu64 " (%" PRIu64 " resent)\n",
		st1.ops - st0.ops, st1.resends - st0.resends);
	fprintf(out, "read from OSDs      %.1f MiB\n",
		(double)(st1.read_bytes - st0.read_bytes) / 1048576.0);
	if (cs.known)
		fprintf(out, "snapshot cache      %.1f MiB hit, %.1f MiB missed, %.1f MiB "
			"fetched (%.1f MiB ahead), %.1f MiB held\n", (double)cs.hits / 1048576.0,
			(double)cs.misses / 1048576.0, (double)cs.fetched_bytes / 1048576.0,
			(double)cs.readahead_bytes / 1048576.0, (double)cs.mem_bytes / 1048576.0);
	else
		fprintf(out, "snapshot cache      no statistics\n");
	if (img)
		fprintf(out, "verified            %" PRIu64 " sectors read differ from %s\n",
			mismatches, a.verify);
	if (errors)
		fprintf(out, "errors              %d clones failed\n", errors);

	if (a.json) {
		printf("{\"clones\": %d, \"trace_requests\": %zu, \"trace_read_bytes\": %" PRIu64
		       ", \"trace_write_bytes\": %" PRIu64 ", ", a.clones, t.n, t.read_bytes,
		       t.write_bytes);
		json_opt_long("cache_mib", a.cache_mib);
		json_opt_long("readahead_kib", a.readahead_kib);
		printf("\"all_up_s\": %.3f, \"slowest_s\": %.3f, \"median_s\": %.3f, "
		       "\"fastest_s\": %.3f, ", secs(all_up), secs(times[a.clones - 1]),
		       secs(median(times, (size_t)a.clones)), secs(times[0]));
		printf("\"bytes_read\": %" PRIu64 ", \"requests\": %zu, \"read_lat_ms_p50\": %.3f, "
		       "\"read_lat_ms_p99\": %.3f, \"osd_ops\": %" PRIu64 ", \"osd_resends\": %"
		       PRIu64 ", \"osd_read_bytes\": %" PRIu64 ", ", bytes_read, reqs,
		       ms(median(lat, n_lat)), ms(quantile(lat, n_lat, 0.99)), st1.ops - st0.ops,
		       st1.resends - st0.resends, st1.read_bytes - st0.read_bytes);
		if (cs.known)
			printf("\"cache\": {\"hit_bytes\": %" PRIu64 ", \"miss_bytes\": %" PRIu64
			       ", \"fetched_bytes\": %" PRIu64 ", \"readahead_bytes\": %" PRIu64
			       ", \"mem_bytes\": %" PRIu64 "}, ", cs.hits, cs.misses, cs.fetched_bytes,
			       cs.readahead_bytes, cs.mem_bytes);
		else
			printf("\"cache\": null, ");
		if (img)
			printf("\"mismatches\": %" PRIu64 ", ", mismatches);
		else
			printf("\"mismatches\": null, ");
		printf("\"errors\": %d}\n", errors);
	}
	fflush(NULL);

	for (int i = 0; i < a.clones; i++) {
		struct clone *c = &cl_v[i];

		r = mixsan_volume_close(c->v);
		if (r < 0) {
			fprintf(stderr, "bootstorm: closing %s: %s\n", c->name, strerror(-r));
			errors++;
		}
		free(c->buf);
		free(c->written);
		free(c->lat_ns);
	}
	mixsan_pool_close(pool);
	mixsan_shutdown(cl);
	if (img)
		munmap((void *)img, img_size);
	free(cl_v);
	free(th);
	free(times);
	free(lat);
	free(t.r);
	if (errors)
		return 2;
	return mismatches ? 1 : 0;
}

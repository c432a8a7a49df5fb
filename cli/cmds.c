/*
 * `mixsan status`, `pool`, `osd` and `object` subcommands.  Every listing
 * prints a table for people or, with --json, one JSON document.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "internal.h"
#include "map.h"
#include "msg.h"
#include "placement.h"
#include "tier.h"
#include "util.h"

/* Reals with 15 significant digits: a ratio of 0.4 prints as 0.4. */
#define JSON_REALS JSON_REAL_PRECISION(15)

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REALS);

	if (s) {
		puts(s);
		free(s);
	}
	json_decref(j);
}

static const char *policy_name(int p)
{
	switch (p) {
	case MX_READ_BALANCE: return "balance";
	case MX_READ_LOCALIZE: return "localize";
	default: return "primary";
	}
}

static double weight_f(uint32_t w)
{
	return (double)w / (double)MX_WEIGHT_ONE;
}

static json_t *pool_json(const struct mx_pool *p)
{
	json_t *j = json_pack("{s:i, s:s, s:i, s:i, s:i, s:s, s:s, s:s, s:s}", "id", p->id, "name",
			      p->name, "size", p->size, "min_size", p->min_size, "pg_num",
			      p->pg_num, "failure_domain", mx_level_name(p->failure_domain),
			      "root", p->root_name, "device_class", p->device_class,
			      "read_policy", policy_name(p->read_policy));

	/* Cache tiering (docs/cache-tiering.md): pool ids, -1 for none; the
	 * ratios as fractions of 1. */
	if (j)
		json_object_update_new(
			j, json_pack("{s:i, s:i, s:s, s:I, s:I, s:f, s:f, s:i, s:i, s:b}",
				     "tier_of", p->tier_of, "tier", p->tier, "cache_mode",
				     mx_cache_mode_name(p->cache_mode), "target_max_bytes",
				     (json_int_t)p->target_max_bytes, "target_max_objects",
				     (json_int_t)p->target_max_objects, "cache_target_dirty_ratio",
				     p->cache_target_dirty_ratio / 1000.0,
				     "cache_target_full_ratio", p->cache_target_full_ratio / 1000.0,
				     "promote_min_hits", p->promote_min_hits, "hit_period_s",
				     (int)p->hit_period_s, "flush_all", p->flush_all != 0));
	return j;
}

/* "cache of cold, writeback", "tier: hot" or "-". */
static void tier_text(const struct mx_map *m, const struct mx_pool *p, char *buf, size_t sz)
{
	const struct mx_pool *q;

	if (p->tier_of >= 0) {
		q = mx_map_pool_by_id(m, p->tier_of);
		snprintf(buf, sz, "cache of %s, %s%s", q ? q->name : "?",
			 mx_cache_mode_name(p->cache_mode), p->flush_all ? ", flushing all" : "");
	} else if (p->tier >= 0) {
		q = mx_map_pool_by_id(m, p->tier);
		snprintf(buf, sz, "tier: %s", q ? q->name : "?");
	} else {
		snprintf(buf, sz, "-");
	}
}

static json_t *osd_json(const struct mx_map *m, uint32_t i)
{
	const struct mx_osd_info *o = &m->osds[i];
	char loc[512];

	mx_loc_format(o->loc, o->nloc, loc, sizeof(loc));
	return json_pack("{s:i, s:s, s:b, s:b, s:f, s:s, s:s, s:I}", "id", (int)i, "addr",
			 o->addr, "up", o->up, "in", o->in, "weight", weight_f(o->weight),
			 "location", loc, "device_class", o->device_class, "up_from",
			 (json_int_t)o->up_from);
}

void human_bytes(double v, char *buf, size_t sz)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	int u = 0;

	while (v >= 1024.0 && u < 5) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, sz, "%.0f %s", v, units[u]);
	else
		snprintf(buf, sz, "%.1f %s", v, units[u]);
}

static json_int_t jint(json_t *o, const char *path)
{
	char key[64];
	const char *dot;
	json_t *v = o;

	while (v && (dot = strchr(path, '.'))) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		v = json_object_get(v, key);
		path = dot + 1;
	}
	v = v ? json_object_get(v, path) : NULL;
	return json_is_integer(v) ? json_integer_value(v) : 0;
}

static double jreal(json_t *o, const char *obj, const char *key)
{
	json_t *v = json_object_get(json_object_get(o, obj), key);

	return json_is_number(v) ? json_number_value(v) : 0.0;
}

/* A monitor command that answers JSON of the given type (JSON_OBJECT,
 * JSON_ARRAY), parsed; NULL if the monitor cannot give it (the reason is
 * printed). */
static json_t *mon_json(mixsan_cluster_t *cl, const char *prefix, const char *const *kv,
			size_t n, json_type type)
{
	char *msg = NULL;
	json_t *j;
	int r = mixsan_mon_command(cl, prefix, kv, n, &msg);

	if (r < 0) {
		cli_fail("%s: %s", prefix, msg && *msg ? msg : cli_errstr(r));
		free(msg);
		return NULL;
	}
	j = json_loads(msg ? msg : "", 0, NULL);
	free(msg);
	if (!j || json_typeof(j) != type) {
		json_decref(j);
		cli_fail("%s: the monitor's answer is not what was asked for", prefix);
		return NULL;
	}
	return j;
}

static void print_status(const struct mx_map *m, const char *fsid, json_t *st)
{
	json_t *health = json_object_get(st, "health");
	json_t *checks = json_object_get(health, "checks");
	json_t *states = json_object_get(json_object_get(st, "pgs"), "by_state");
	json_t *v;
	size_t i;
	char b1[32], b2[32], b3[32];
	json_int_t copies = jint(st, "objects.copies");
	json_int_t deg = jint(st, "objects.degraded"), mis = jint(st, "objects.misplaced");
	double ro = jreal(st, "recovery", "objects_per_s");

	printf("  cluster:\n");
	printf("    id:     %s\n", fsid);
	printf("    health: %s\n", json_string_value(json_object_get(health, "status")));
	json_array_foreach(checks, i, v)
		printf("            %s\n", json_string_value(json_object_get(v, "summary")));
	printf("\n  services:\n");
	printf("    mon: %u daemons (", m->n_mons);
	for (uint32_t k = 0; k < m->n_mons; k++)
		printf("%s%s at %s", k ? ", " : "", m->mons[k].name, m->mons[k].addr);
	printf(")\n");
	printf("    osd: %" JSON_INTEGER_FORMAT " osds: %" JSON_INTEGER_FORMAT " up, %"
	       JSON_INTEGER_FORMAT " in\n",
	       jint(st, "osds.total"), jint(st, "osds.up"), jint(st, "osds.in"));
	printf("    map: epoch %" PRIu64 "\n", m->epoch);
	printf("\n  data:\n");
	printf("    pools:   %u pools, %" JSON_INTEGER_FORMAT " pgs\n", m->n_pools,
	       jint(st, "pgs.total"));
	human_bytes((double)jint(st, "objects.bytes"), b1, sizeof(b1));
	printf("    objects: %" JSON_INTEGER_FORMAT " objects, %s\n", jint(st, "objects.total"),
	       b1);
	human_bytes((double)jint(st, "usage.used_bytes"), b1, sizeof(b1));
	human_bytes((double)jint(st, "usage.avail_bytes"), b2, sizeof(b2));
	human_bytes((double)jint(st, "usage.total_bytes"), b3, sizeof(b3));
	printf("    usage:   %s used, %s / %s avail\n", b1, b2, b3);
	printf("    pgs:     ");
	if (deg)
		printf("%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
		       " objects degraded (%.3f%%)\n             ",
		       deg, copies, copies ? 100.0 * (double)deg / (double)copies : 0.0);
	if (mis)
		printf("%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
		       " objects misplaced (%.3f%%)\n             ",
		       mis, copies, copies ? 100.0 * (double)mis / (double)copies : 0.0);
	json_array_foreach(states, i, v)
		printf("%s%" JSON_INTEGER_FORMAT " %s\n", i ? "             " : "",
		       json_integer_value(json_object_get(v, "count")),
		       json_string_value(json_object_get(v, "state")));
	if (!json_array_size(states))
		printf("none\n");
	if (ro > 0 || deg || mis) {
		json_t *eta = json_object_get(json_object_get(st, "recovery"), "eta_s");

		human_bytes(jreal(st, "recovery", "bytes_per_s"), b1, sizeof(b1));
		printf("\n  io:\n    recovery: %.1f objects/s, %s/s", ro, b1);
		if (json_is_integer(eta))
			printf(", eta %" JSON_INTEGER_FORMAT " s", json_integer_value(eta));
		printf("\n");
	}
}

static int show_status(struct cli *c, mixsan_cluster_t *cl)
{
	struct mx_map *m = mx_client_map_copy(cl);
	json_t *st;
	char fsid[40];

	if (!m)
		return cli_fail("out of memory");
	st = mon_json(cl, "status", NULL, 0, JSON_OBJECT);
	if (!st) {
		mx_map_free(m);
		return 1;
	}
	for (int i = 0; i < 16; i++)
		snprintf(fsid + 2 * i, 3, "%02x", m->fsid[i]);
	if (c->json) {
		json_t *mons = json_array();

		for (uint32_t i = 0; i < m->n_mons; i++)
			json_array_append_new(mons, json_pack("{s:s, s:s}", "name",
							      m->mons[i].name, "addr",
							      m->mons[i].addr));
		json_object_set_new(st, "fsid", json_string(fsid));
		json_object_set_new(st, "mons", mons);
		json_object_set_new(st, "pools", json_integer(m->n_pools));
		print_json(json_incref(st));
	} else {
		print_status(m, fsid, st);
	}
	json_decref(st);
	mx_map_free(m);
	return 0;
}

static volatile sig_atomic_t watch_stop;

static void on_watch_signal(int sig)
{
	(void)sig;
	watch_stop = 1;
}

/* One event as `status --watch` prints it: local time, severity, text. */
static void print_event(json_t *e)
{
	json_int_t ms = jint(e, "stamp_ms");
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char when[32] = "";

	if (localtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	printf("%s.%03d [%s] %s\n", when, (int)(ms % 1000),
	       json_string_value(json_object_get(e, "severity")),
	       json_string_value(json_object_get(e, "text")));
}

/*
 * status --watch [--count N] [--timeout S]: the status, the newest few
 * events, then every new event as it comes (the monitor's `log` polled
 * every second), until SIGINT, N new events or S seconds.
 */
static int watch(struct cli *c, mixsan_cluster_t *cl)
{
	const char *cs = cli_opt(c, "count"), *ts = cli_opt(c, "timeout");
	long count = cs ? strtol(cs, NULL, 10) : 0, seen = 0;
	double timeout = ts ? strtod(ts, NULL) : 0;
	struct timespec t0, now;
	uint64_t after = 0;
	bool first = true;

	signal(SIGINT, on_watch_signal);
	signal(SIGTERM, on_watch_signal);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	printf("\n");
	while (!watch_stop) {
		char arg[32], *msg = NULL;
		const char *kv[4] = {"after", arg, "max", "10"};
		json_t *j, *evs, *e;
		size_t i;
		int r;

		snprintf(arg, sizeof(arg), "%" PRIu64, after);
		r = mixsan_mon_command(cl, "log", kv, first ? 2 : 1, &msg);
		j = r == 0 && msg ? json_loads(msg, 0, NULL) : NULL;
		free(msg);
		evs = json_object_get(j, "events");
		json_array_foreach(evs, i, e) {
			print_event(e);
			after = (uint64_t)jint(e, "seq");
			if (!first)
				seen++;
		}
		if (j && !json_array_size(evs) && first)
			after = (uint64_t)jint(j, "last");
		json_decref(j);
		fflush(stdout);
		first = false;
		if (count > 0 && seen >= count)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (timeout > 0 && (double)(now.tv_sec - t0.tv_sec) +
					   (double)(now.tv_nsec - t0.tv_nsec) / 1e9 >= timeout)
			break;
		usleep(1000000);
	}
	return 0;
}

int cmd_status(struct cli *c)
{
	mixsan_cluster_t *cl;
	int r;

	if (cli_connect(c, &cl) < 0)
		return 1;
	r = show_status(c, cl);
	if (r == 0 && cli_opt(c, "watch")) {
		fflush(stdout);
		r = watch(c, cl);
	}
	mixsan_shutdown(cl);
	return r;
}

/* Run a monitor command and print its answer. */
static int mon_cmd(struct cli *c, const char *prefix, const char *const *kv, size_t n)
{
	mixsan_cluster_t *cl;
	char *msg = NULL;
	int r;

	if (cli_connect(c, &cl) < 0)
		return 1;
	r = mixsan_mon_command(cl, prefix, kv, n, &msg);
	mixsan_shutdown(cl);
	if (r < 0) {
		cli_fail("%s: %s", prefix, msg && *msg ? msg : cli_errstr(r));
		free(msg);
		return 1;
	}
	if (msg && *msg && !c->json)
		printf("%s\n", msg);
	if (c->json)
		print_json(json_pack("{s:s, s:s}", "result", "ok", "message", msg ? msg : ""));
	free(msg);
	return 0;
}

static struct mx_map *get_map(struct cli *c)
{
	mixsan_cluster_t *cl;
	struct mx_map *m;

	if (cli_connect(c, &cl) < 0)
		return NULL;
	m = mx_client_map_copy(cl);
	mixsan_shutdown(cl);
	return m;
}

static int pool_ls(struct cli *c)
{
	struct mx_map *m = get_map(c);

	if (!m)
		return 1;
	if (c->json) {
		json_t *a = json_array();

		for (uint32_t i = 0; i < m->n_pools; i++)
			json_array_append_new(a, pool_json(&m->pools[i]));
		print_json(a);
	} else {
		printf("%-4s %-20s %4s %8s %6s %-8s %-8s %-8s %s\n", "ID", "NAME", "SIZE",
		       "MIN_SIZE", "PGS", "DOMAIN", "CLASS", "READ", "TIER");
		for (uint32_t i = 0; i < m->n_pools; i++) {
			const struct mx_pool *p = &m->pools[i];
			char tier[MX_NAME_MAX + 64];

			tier_text(m, p, tier, sizeof(tier));
			printf("%-4d %-20s %4u %8u %6u %-8s %-8s %-8s %s\n", p->id, p->name, p->size,
			       p->min_size, p->pg_num, mx_level_name(p->failure_domain),
			       p->device_class[0] ? p->device_class : "-",
			       policy_name(p->read_policy), tier);
		}
	}
	mx_map_free(m);
	return 0;
}

static int pool_get(struct cli *c)
{
	struct mx_map *m;
	const struct mx_pool *p;
	json_t *j, *v;
	int r = 0;

	if (c->argc < 1)
		return cli_fail("usage: pool get NAME [KEY]");
	m = get_map(c);
	if (!m)
		return 1;
	p = mx_map_pool_by_name(m, c->argv[0]);
	if (!p) {
		mx_map_free(m);
		return cli_fail("no such pool '%s'", c->argv[0]);
	}
	j = pool_json(p);
	if (c->argc >= 2) {
		v = json_object_get(j, c->argv[1]);
		if (!v) {
			r = cli_fail("no such pool setting '%s'", c->argv[1]);
		} else if (c->json) {
			print_json(json_pack("{s:O}", c->argv[1], v));
		} else {
			char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_REALS);

			if (json_is_string(v))
				printf("%s\n", json_string_value(v));
			else if (s)
				printf("%s\n", s);
			free(s);
		}
		json_decref(j);
	} else if (c->json) {
		print_json(j);
	} else {
		const char *key;

		json_object_foreach(j, key, v) {
			char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_REALS);

			printf("%-25s %s\n", key, json_is_string(v) ? json_string_value(v) : s);
			free(s);
		}
		json_decref(j);
	}
	mx_map_free(m);
	return r;
}

struct names {
	char **v;
	size_t n, cap;
};

static int names_cb(void *arg, const char *oid, size_t len, uint64_t size)
{
	struct names *l = arg;

	(void)size;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		char **v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = strndup(oid, len);
	if (!l->v[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

/* A drained cache holds stubs only: remove them once it is a plain pool
 * again, so that it may become a cache again (tier add wants it empty). */
static void empty_former_cache(mixsan_cluster_t *cl, int64_t id)
{
	struct names l = {0};
	mixsan_pool_t *p;
	size_t gone = 0;

	if (mx_client_pool_open_raw(cl, id, &p) < 0)
		return;
	if (mixsan_list(p, names_cb, &l) == 0)
		for (size_t i = 0; i < l.n; i++)
			gone += mixsan_remove(p, l.v[i]) == 0;
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i]);
	free(l.v);
	mixsan_pool_close(p);
	if (gone)
		printf("removed the %zu stubs left in the former cache\n", gone);
}

/* Wait (30 s at most) for a map showing cache id in mode none, fenced
 * after tier_epoch.  0 or -ETIMEDOUT. */
static int wait_draining(mixsan_cluster_t *cl, int64_t id, uint64_t tier_epoch)
{
	for (int i = 0; i < 300; i++) {
		struct mx_map *m = mx_client_map_copy(cl);
		const struct mx_pool *p = m ? mx_map_pool_by_id(m, (int32_t)id) : NULL;
		bool ok = p && p->cache_mode == MX_CACHE_NONE && p->tier_epoch > tier_epoch;
		uint64_t e = m ? m->epoch : 0;

		mx_map_free(m);
		if (ok)
			return 0;
		(void)mixsan_wait_for_epoch(cl, e + 1, 100);
	}
	return -ETIMEDOUT;
}

/*
 * `pool tier rm BASE CACHE [--timeout S]` (docs/cache-tiering.md, "Commands
 * and map"): mode none first (the cache drains: the agents flush every
 * dirty copy and evict every clean one, and no client makes a new one),
 * then wait until the cache holds no copy, then remove the link.  The
 * monitor cannot see copies, so the removal goes with force=1 once this
 * census found none, on a map at or after the mode change: from then on
 * none can appear.
 */
static int tier_rm_drained(struct cli *c, const char *base, const char *cache)
{
	const char *ts = cli_opt(c, "timeout");
	double timeout = ts ? strtod(ts, NULL) : 600;
	const char *md[] = {"pool", cache, "mode", "none"};
	const char *kv[] = {"base", base, "cache", cache, "force", "1"};
	struct mx_tier_census cs = {0};
	mixsan_cluster_t *cl;
	const struct mx_pool *p;
	struct timespec t0, now;
	struct mx_map *m;
	char *msg = NULL;
	int64_t id;
	int r;

	if (!(timeout > 0))
		return cli_fail("bad timeout '%s'", ts);
	if (cli_connect(c, &cl) < 0)
		return 1;
	m = mx_client_map_copy(cl);
	p = m ? mx_map_pool_by_name(m, cache) : NULL;
	if (!p || p->tier_of < 0) {
		/* Not a cache: the monitor says why. */
		mx_map_free(m);
		r = mixsan_mon_command(cl, "pool tier rm", kv, 2, &msg);
		goto done;
	}
	id = p->id;
	if (p->cache_mode == MX_CACHE_NONE && !p->flush_all) {
		/* Never routed through: nothing to drain. */
		mx_map_free(m);
		r = mixsan_mon_command(cl, "pool tier rm", kv, 2, &msg);
		goto done;
	}
	if (p->cache_mode != MX_CACHE_NONE) {
		r = mixsan_mon_command(cl, "pool tier mode", md, 2, &msg);
		if (r < 0) {
			mx_map_free(m);
			goto done;
		}
		printf("%s\n", msg);
		free(msg);
		msg = NULL;
		/* Our census must come after the fence: on a map that shows
		 * the cache draining, by a change after the one we saw. */
		r = wait_draining(cl, id, p->tier_epoch);
		if (r < 0) {
			mx_map_free(m);
			goto done;
		}
	}
	mx_map_free(m);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned round = 0;; round++) {
		r = mx_tier_census(cl, id, &cs);
		if (r < 0)
			goto done;
		if (cs.present == 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9 >
		    timeout) {
			cli_fail("pool '%s' still holds %" PRIu64 " copies (%" PRIu64
				 " dirty) after %.0f s: its tier stays (the agents flush only "
				 "what they can reach; --yes-i-really-mean-it removes it all the "
				 "same, losing the dirty ones)", cache, cs.present, cs.dirty, timeout);
			mixsan_shutdown(cl);
			return 1;
		}
		if (round % 5 == 0)
			printf("draining %s: %" PRIu64 " copies left, %" PRIu64 " dirty\n", cache,
			       cs.present, cs.dirty);
		fflush(stdout);
		sleep(1);
	}
	r = mixsan_mon_command(cl, "pool tier rm", kv, 3, &msg);
	if (r >= 0)
		empty_former_cache(cl, id);
done:
	mixsan_shutdown(cl);
	if (r < 0) {
		cli_fail("pool tier rm: %s", msg && *msg ? msg : cli_errstr(r));
		free(msg);
		return 1;
	}
	if (c->json)
		print_json(json_pack("{s:s, s:s}", "result", "ok", "message", msg ? msg : ""));
	else if (msg && *msg)
		printf("%s\n", msg);
	free(msg);
	return 0;
}

/* `pool tier add BASE CACHE [--yes-i-really-mean-it]`, `pool tier mode CACHE
 * MODE`, `pool tier rm BASE CACHE [--timeout S] [--yes-i-really-mean-it]`
 * (docs/cache-tiering.md). */
static int pool_tier(struct cli *c)
{
	const char *what = c->argc > 0 ? c->argv[0] : "";
	const char *kv[6];

	if (strcmp(what, "add") == 0 || strcmp(what, "rm") == 0) {
		size_t n = 2;

		if (c->argc != 3)
			return cli_fail("usage: pool tier %s BASE CACHE [--yes-i-really-mean-it]",
					what);
		kv[0] = "base", kv[1] = c->argv[1];
		kv[2] = "cache", kv[3] = c->argv[2];
		/* The operator's word: for add, that CACHE is empty when the
		 * monitor cannot tell; for rm, that the dirty objects a flush
		 * of all has not reached may be lost. */
		if (c->yes)
			kv[4] = "force", kv[5] = "1", n++;
		else if (what[0] == 'r')
			return tier_rm_drained(c, c->argv[1], c->argv[2]);
		return mon_cmd(c, what[0] == 'a' ? "pool tier add" : "pool tier rm", kv, n);
	}
	if (strcmp(what, "mode") == 0) {
		if (c->argc != 3)
			return cli_fail("usage: pool tier mode CACHE writeback|readonly|none");
		kv[0] = "pool", kv[1] = c->argv[1];
		kv[2] = "mode", kv[3] = c->argv[2];
		return mon_cmd(c, "pool tier mode", kv, 2);
	}
	return cli_fail("usage: pool tier add BASE CACHE | pool tier mode CACHE "
			"writeback|readonly|none | pool tier rm BASE CACHE [--timeout S] "
			"[--yes-i-really-mean-it]");
}

int cmd_pool(struct cli *c, const char *sub)
{
	if (strcmp(sub, "ls") == 0)
		return pool_ls(c);
	if (strcmp(sub, "get") == 0)
		return pool_get(c);
	if (strcmp(sub, "create") == 0) {
		static const char *const map[][2] = {
			{"size", "size"}, {"min-size", "min_size"}, {"pg-num", "pg_num"},
			{"failure-domain", "failure_domain"}, {"class", "device_class"},
			{"root", "root"}, {"read-policy", "read_policy"},
		};
		const char *kv[2 * 9];
		size_t n = 0;

		if (c->argc != 1)
			return cli_fail("usage: pool create NAME [--size N] [--min-size N] ...");
		kv[2 * n] = "name";
		kv[2 * n++ + 1] = c->argv[0];
		for (size_t i = 0; i < MX_ARRAY_SIZE(map); i++) {
			const char *v = cli_opt(c, map[i][0]);

			if (v) {
				kv[2 * n] = map[i][1];
				kv[2 * n++ + 1] = v;
			}
		}
		for (int i = 0; i < c->n_opts; i++) {
			bool known = false;

			for (size_t k = 0; k < MX_ARRAY_SIZE(map); k++)
				known |= strcmp(c->opt_keys[i], map[k][0]) == 0;
			if (!known)
				return cli_fail("unknown option --%s", c->opt_keys[i]);
		}
		return mon_cmd(c, "pool create", kv, n);
	}
	if (strcmp(sub, "set") == 0) {
		const char *kv[6];

		if (c->argc != 3)
			return cli_fail("usage: pool set NAME KEY VALUE");
		kv[0] = "name", kv[1] = c->argv[0];
		kv[2] = "key", kv[3] = c->argv[1];
		kv[4] = "value", kv[5] = c->argv[2];
		return mon_cmd(c, "pool set", kv, 3);
	}
	if (strcmp(sub, "rm") == 0) {
		const char *kv[2];

		if (c->argc != 1)
			return cli_fail("usage: pool rm NAME --yes-i-really-mean-it");
		if (!c->yes)
			return cli_fail("removing pool '%s' destroys its data; add "
					"--yes-i-really-mean-it", c->argv[0]);
		kv[0] = "name", kv[1] = c->argv[0];
		return mon_cmd(c, "pool rm", kv, 1);
	}
	if (strcmp(sub, "tier") == 0)
		return pool_tier(c);
	return cli_fail("unknown command 'pool %s' (create, ls, get, set, rm, tier)", sub);
}

static int osd_ls(struct cli *c)
{
	struct mx_map *m = get_map(c);

	if (!m)
		return 1;
	if (c->json) {
		json_t *a = json_array();

		for (uint32_t i = 0; i < m->max_osd; i++)
			if (m->osds[i].exists)
				json_array_append_new(a, osd_json(m, i));
		print_json(a);
	} else {
		printf("%-5s %-22s %-5s %-4s %7s %-6s %s\n", "ID", "ADDRESS", "STATE", "IN",
		       "WEIGHT", "CLASS", "LOCATION");
		for (uint32_t i = 0; i < m->max_osd; i++) {
			const struct mx_osd_info *o = &m->osds[i];
			char loc[512];

			if (!o->exists)
				continue;
			mx_loc_format(o->loc, o->nloc, loc, sizeof(loc));
			printf("%-5u %-22s %-5s %-4s %7.3f %-6s %s\n", i, o->addr,
			       o->up ? "up" : "down", o->in ? "in" : "out", weight_f(o->weight),
			       o->device_class[0] ? o->device_class : "-", loc);
		}
	}
	mx_map_free(m);
	return 0;
}

/* The hierarchy as a tree: buckets from the root down, OSDs as leaves. */
struct tnode {
	int level;
	char name[MX_NAME_MAX];
	int32_t osd; /* -1 for buckets */
	uint32_t weight;
	struct tnode *kids[256];
	int n_kids;
};

static struct tnode *tnode_child(struct tnode *t, int level, const char *name, int32_t osd)
{
	struct tnode *k;

	for (int i = 0; i < t->n_kids; i++)
		if (t->kids[i]->level == level && t->kids[i]->osd == osd &&
		    strcmp(t->kids[i]->name, name) == 0)
			return t->kids[i];
	if (t->n_kids >= 256)
		return NULL;
	k = mx_xcalloc(1, sizeof(*k));
	k->level = level;
	k->osd = osd;
	snprintf(k->name, sizeof(k->name), "%s", name);
	t->kids[t->n_kids++] = k;
	return k;
}

static void tnode_free(struct tnode *t)
{
	for (int i = 0; i < t->n_kids; i++)
		tnode_free(t->kids[i]);
	free(t);
}

static uint32_t tnode_weigh(struct tnode *t, const struct mx_map *m)
{
	if (t->osd >= 0)
		return t->weight = m->osds[t->osd].in ? m->osds[t->osd].weight : 0;
	t->weight = 0;
	for (int i = 0; i < t->n_kids; i++)
		t->weight += tnode_weigh(t->kids[i], m);
	return t->weight;
}

static json_t *tnode_json(const struct tnode *t, const struct mx_map *m)
{
	json_t *j, *kids;

	if (t->osd >= 0) {
		j = osd_json(m, (uint32_t)t->osd);
		json_object_set_new(j, "type", json_string("osd"));
		return j;
	}
	kids = json_array();
	for (int i = 0; i < t->n_kids; i++)
		json_array_append_new(kids, tnode_json(t->kids[i], m));
	return json_pack("{s:s, s:s, s:f, s:o}", "type", mx_level_name(t->level), "name",
			 t->name, "weight", weight_f(t->weight), "children", kids);
}

static void tnode_print(const struct tnode *t, const struct mx_map *m, int depth)
{
	if (t->osd >= 0) {
		const struct mx_osd_info *o = &m->osds[t->osd];

		printf("%*sosd.%d  %.3f  %s %s%s%s\n", depth * 4, "", t->osd, weight_f(t->weight),
		       o->up ? "up" : "down", o->in ? "in" : "out",
		       o->device_class[0] ? "  class " : "", o->device_class);
		return;
	}
	printf("%*s%s %s  %.3f\n", depth * 4, "", mx_level_name(t->level), t->name,
	       weight_f(t->weight));
	for (int i = 0; i < t->n_kids; i++)
		tnode_print(t->kids[i], m, depth + 1);
}

static int osd_tree(struct cli *c)
{
	struct mx_map *m = get_map(c);
	struct tnode *top;

	if (!m)
		return 1;
	top = mx_xcalloc(1, sizeof(*top));
	top->osd = -1;
	for (uint32_t i = 0; i < m->max_osd; i++) {
		const struct mx_osd_info *o = &m->osds[i];
		struct tnode *t = top;

		if (!o->exists)
			continue;
		for (int l = (int)o->nloc - 1; l >= 0 && t; l--)
			t = tnode_child(t, o->loc[l].level, o->loc[l].name, -1);
		if (t)
			(void)tnode_child(t, MX_LEVEL_OSD, "", (int32_t)i);
	}
	for (int i = 0; i < top->n_kids; i++)
		tnode_weigh(top->kids[i], m);
	if (c->json) {
		json_t *a = json_array();

		for (int i = 0; i < top->n_kids; i++)
			json_array_append_new(a, tnode_json(top->kids[i], m));
		print_json(a);
	} else {
		for (int i = 0; i < top->n_kids; i++)
			tnode_print(top->kids[i], m, 0);
	}
	tnode_free(top);
	mx_map_free(m);
	return 0;
}

int cmd_osd(struct cli *c, const char *sub)
{
	if (strcmp(sub, "ls") == 0)
		return osd_ls(c);
	if (strcmp(sub, "tree") == 0)
		return osd_tree(c);
	if (strcmp(sub, "out") == 0 || strcmp(sub, "in") == 0 || strcmp(sub, "down") == 0 ||
	    strcmp(sub, "rm") == 0) {
		char prefix[32];
		const char *kv[2];

		if (c->argc != 1)
			return cli_fail("usage: osd %s ID", sub);
		snprintf(prefix, sizeof(prefix), "osd %s", sub);
		kv[0] = "id", kv[1] = c->argv[0];
		return mon_cmd(c, prefix, kv, 1);
	}
	if (strcmp(sub, "reweight") == 0) {
		const char *kv[4];

		if (c->argc != 2)
			return cli_fail("usage: osd reweight ID WEIGHT");
		kv[0] = "id", kv[1] = c->argv[0];
		kv[2] = "weight", kv[3] = c->argv[1];
		return mon_cmd(c, "osd reweight", kv, 2);
	}
	return cli_fail("unknown command 'osd %s' (ls, tree, out, in, down, reweight, rm)", sub);
}

int cmd_balancer(struct cli *c, const char *sub)
{
	const char *kv[6];
	size_t n = 0;
	const char *v;

	if (strcmp(sub, "run") != 0)
		return cli_fail("unknown command 'balancer %s' (run)", sub);
	if (c->argc > 1)
		return cli_fail("usage: balancer run [POOL] [--max-deviation D] [--max-changes N]");
	if (!c->yes)
		return cli_fail("the balancer moves PGs, and moving a PG that holds data needs "
				"backfill, which this version does not have yet; for pools without "
				"data add --yes-i-really-mean-it (new pools are balanced at creation)");
	if (c->argc == 1) {
		kv[2 * n] = "pool";
		kv[2 * n++ + 1] = c->argv[0];
	}
	if ((v = cli_opt(c, "max-deviation"))) {
		kv[2 * n] = "max_deviation";
		kv[2 * n++ + 1] = v;
	}
	if ((v = cli_opt(c, "max-changes"))) {
		kv[2 * n] = "max_changes";
		kv[2 * n++ + 1] = v;
	}
	return mon_cmd(c, "balancer run", kv, n);
}

/* Monitors: `mon status` is answered by the monitor asked (the first of
 * --mon), the others by the leader (docs/monitor-quorum.md). */
int cmd_mon(struct cli *c, const char *sub)
{
	const char *kv[6];

	if (strcmp(sub, "status") == 0) {
		if (c->argc != 0)
			return cli_fail("usage: mon status");
		return mon_cmd(c, "mon status", NULL, 0);
	}
	if (strcmp(sub, "add") == 0) {
		if (c->argc != 3)
			return cli_fail("usage: mon add NAME CLIENT_IP:PORT RAFT_IP:PORT");
		kv[0] = "name", kv[1] = c->argv[0];
		kv[2] = "addr", kv[3] = c->argv[1];
		kv[4] = "raft_addr", kv[5] = c->argv[2];
		return mon_cmd(c, "mon add", kv, 3);
	}
	if (strcmp(sub, "rm") == 0) {
		if (c->argc != 1)
			return cli_fail("usage: mon rm NAME");
		kv[0] = "name", kv[1] = c->argv[0];
		return mon_cmd(c, "mon rm", kv, 1);
	}
	return cli_fail("unknown command 'mon %s' (status, add, rm)", sub);
}

/* Objects ----------------------------------------------------------------- */

struct ls_ctx {
	json_t *arr;
	uint64_t n;
};

static int ls_cb(void *arg, const char *oid, size_t oid_len, uint64_t size)
{
	struct ls_ctx *l = arg;

	(void)oid_len;
	l->n++;
	if (l->arr)
		json_array_append_new(l->arr, json_pack("{s:s, s:I}", "name", oid, "size",
							(json_int_t)size));
	else
		printf("%s\n", oid);
	return 0;
}

static int read_all(int fd, uint8_t **out, size_t *len)
{
	size_t cap = 1 << 20, n = 0;
	uint8_t *b = malloc(cap);

	if (!b)
		return -ENOMEM;
	for (;;) {
		ssize_t r;

		if (n == cap) {
			uint8_t *nb;

			if (cap >= MX_MSG_MAX_DATA) {
				free(b);
				return -EFBIG;
			}
			cap *= 2;
			nb = realloc(b, cap);
			if (!nb) {
				free(b);
				return -ENOMEM;
			}
			b = nb;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(b);
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*out = b;
	*len = n;
	return 0;
}

int cmd_object(struct cli *c, const char *sub)
{
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	int r, ret = 0;

	if (c->argc < 1)
		return cli_fail("usage: object %s POOL ...", sub);
	if (cli_connect(c, &cl) < 0)
		return 1;
	r = mixsan_pool_open(cl, c->argv[0], &p);
	if (r < 0) {
		mixsan_shutdown(cl);
		return cli_fail("no such pool '%s'", c->argv[0]);
	}
	if (strcmp(sub, "ls") == 0) {
		struct ls_ctx l = {.arr = c->json ? json_array() : NULL};

		r = mixsan_list(p, ls_cb, &l);
		if (r < 0)
			ret = cli_fail("listing pool '%s': %s", c->argv[0], cli_errstr(r));
		else if (l.arr)
			print_json(l.arr);
		if (r < 0 && l.arr)
			json_decref(l.arr);
	} else if (c->argc < 2) {
		ret = cli_fail("usage: object %s POOL NAME", sub);
	} else if (strcmp(sub, "put") == 0) {
		uint8_t *buf = NULL;
		size_t len = 0;
		int fd = 0;

		if (c->argc != 3) {
			ret = cli_fail("usage: object put POOL NAME FILE|-");
			goto out;
		}
		if (strcmp(c->argv[2], "-") != 0)
			fd = open(c->argv[2], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			ret = cli_fail("cannot open %s: %s", c->argv[2], strerror(errno));
			goto out;
		}
		r = read_all(fd, &buf, &len);
		if (fd > 0)
			close(fd);
		if (r < 0) {
			ret = cli_fail("cannot read %s: %s", c->argv[2], cli_errstr(r));
			goto out;
		}
		r = mixsan_write_full(p, c->argv[1], buf, len);
		free(buf);
		if (r < 0)
			ret = cli_fail("writing %s: %s", c->argv[1], cli_errstr(r));
	} else if (strcmp(sub, "get") == 0) {
		struct mixsan_stat st;
		uint8_t *buf;
		int fd = 1;
		int64_t got;

		if (c->argc != 3) {
			ret = cli_fail("usage: object get POOL NAME FILE|-");
			goto out;
		}
		r = mixsan_stat(p, c->argv[1], &st);
		if (r < 0) {
			ret = cli_fail("reading %s: %s", c->argv[1], cli_errstr(r));
			goto out;
		}
		buf = malloc(st.size ? st.size : 1);
		if (!buf) {
			ret = cli_fail("out of memory");
			goto out;
		}
		got = mixsan_read(p, c->argv[1], buf, st.size, 0);
		if (got < 0) {
			free(buf);
			ret = cli_fail("reading %s: %s", c->argv[1], strerror((int)-got));
			goto out;
		}
		if (strcmp(c->argv[2], "-") != 0)
			fd = open(c->argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			free(buf);
			ret = cli_fail("cannot create %s: %s", c->argv[2], strerror(errno));
			goto out;
		}
		for (int64_t off = 0; off < got;) {
			ssize_t w = write(fd, buf + off, (size_t)(got - off));

			if (w < 0) {
				ret = cli_fail("writing output: %s", strerror(errno));
				break;
			}
			off += w;
		}
		if (fd > 1)
			close(fd);
		free(buf);
	} else if (strcmp(sub, "rm") == 0) {
		r = mixsan_remove(p, c->argv[1]);
		if (r < 0)
			ret = cli_fail("removing %s: %s", c->argv[1], cli_errstr(r));
	} else if (strcmp(sub, "stat") == 0) {
		struct mixsan_stat st;

		r = mixsan_stat(p, c->argv[1], &st);
		if (r < 0) {
			ret = cli_fail("%s: %s", c->argv[1], cli_errstr(r));
		} else if (c->json) {
			char ver[48];

			snprintf(ver, sizeof(ver), "%" PRIu64 ".%" PRIu64, st.version_epoch,
				 st.version_seq);
			print_json(json_pack("{s:s, s:s, s:I, s:I, s:s}", "pool", c->argv[0],
					     "name", c->argv[1], "size", (json_int_t)st.size,
					     "mtime_ms", (json_int_t)st.mtime_ms, "version", ver));
		} else {
			printf("%s/%s size %" PRIu64 " version %" PRIu64 ".%" PRIu64
			       " mtime_ms %" PRIu64 "\n",
			       c->argv[0], c->argv[1], st.size, st.version_epoch,
			       st.version_seq, st.mtime_ms);
		}
	} else if (strcmp(sub, "locate") == 0) {
		int32_t acting[MX_MAX_SIZE];
		uint32_t pg;
		int n = mx_client_locate(cl, mixsan_pool_id(p), c->argv[1], &pg, acting,
					 MX_MAX_SIZE);

		if (n < 0) {
			ret = cli_fail("%s: %s", c->argv[1], strerror(-n));
		} else if (c->json) {
			json_t *a = json_array();

			for (int i = 0; i < n; i++)
				json_array_append_new(a, json_integer(acting[i]));
			print_json(json_pack("{s:s, s:s, s:i, s:o, s:i}", "pool", c->argv[0],
					     "name", c->argv[1], "pg", (int)pg, "acting", a,
					     "primary", n ? acting[0] : -1));
		} else {
			printf("%s/%s pg %" PRId64 ".%x acting [", c->argv[0], c->argv[1],
			       mixsan_pool_id(p), pg);
			for (int i = 0; i < n; i++)
				printf("%s%d", i ? "," : "", acting[i]);
			printf("] primary %d\n", n ? acting[0] : -1);
		}
	} else {
		ret = cli_fail("unknown command 'object %s' (put, get, rm, ls, stat, locate)", sub);
	}
out:
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	return ret;
}

/* pg scrub|deep-scrub|repair POOL PG: PG is the PG number in hex, as
 * `object locate` prints it after the pool id ("pg 1.1f": 1f). */
/* `pg ls [POOL] [--state S]`: the monitor's view of every PG. */
static int pg_ls(struct cli *c)
{
	const char *kv[4];
	size_t n = 0, i;
	mixsan_cluster_t *cl;
	json_t *a, *e;

	if (c->argc > 1)
		return cli_fail("usage: pg ls [POOL] [--state STATE]");
	if (c->argc == 1) {
		kv[2 * n] = "pool";
		kv[2 * n++ + 1] = c->argv[0];
	}
	if (cli_opt(c, "state")) {
		kv[2 * n] = "state";
		kv[2 * n++ + 1] = cli_opt(c, "state");
	}
	if (cli_connect(c, &cl) < 0)
		return 1;
	a = mon_json(cl, "pg ls", kv, n, JSON_ARRAY);
	mixsan_shutdown(cl);
	if (!a)
		return 1;
	if (c->json) {
		print_json(a);
		return 0;
	}
	printf("%-8s %-36s %7s %8s %10s %8s %9s\n", "PG", "STATE", "PRIMARY", "OBJECTS",
	       "BYTES", "DEGRADED", "MISPLACED");
	json_array_foreach(a, i, e) {
		char pri[16];
		int p = (int)json_integer_value(json_object_get(e, "primary"));

		if (p >= 0)
			snprintf(pri, sizeof(pri), "osd.%d", p);
		else
			snprintf(pri, sizeof(pri), "-");
		printf("%-8s %-36s %7s %8" JSON_INTEGER_FORMAT " %10" JSON_INTEGER_FORMAT
		       " %8" JSON_INTEGER_FORMAT " %9" JSON_INTEGER_FORMAT "\n",
		       json_string_value(json_object_get(e, "pgid")),
		       json_string_value(json_object_get(e, "state")), pri,
		       json_integer_value(json_object_get(e, "objects")),
		       json_integer_value(json_object_get(e, "bytes")),
		       json_integer_value(json_object_get(e, "degraded")),
		       json_integer_value(json_object_get(e, "misplaced")));
	}
	json_decref(a);
	return 0;
}

int cmd_pg(struct cli *c, const char *sub)
{
	struct mx_client_scrub_result res;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	uint32_t flags;
	unsigned long pg;
	char *end;
	int r, ret = 0;

	if (strcmp(sub, "ls") == 0)
		return pg_ls(c);
	if (strcmp(sub, "scrub") == 0)
		flags = 0;
	else if (strcmp(sub, "deep-scrub") == 0)
		flags = MX_SCRUB_DEEP;
	else if (strcmp(sub, "repair") == 0)
		flags = MX_SCRUB_DEEP | MX_SCRUB_REPAIR;
	else
		return cli_fail("unknown command 'pg %s' (ls, scrub, deep-scrub, repair)", sub);
	if (c->argc != 2)
		return cli_fail("usage: pg %s POOL PG (PG in hex, as object locate prints it)",
				sub);
	errno = 0;
	pg = strtoul(c->argv[1], &end, 16);
	if (errno || !c->argv[1][0] || *end || pg >= UINT32_MAX)
		return cli_fail("bad PG '%s' (hex, as object locate prints it)", c->argv[1]);
	if (cli_connect(c, &cl) < 0)
		return 1;
	r = mixsan_pool_open(cl, c->argv[0], &p);
	if (r < 0) {
		mixsan_shutdown(cl);
		return cli_fail("pool %s: %s", c->argv[0], cli_errstr(r));
	}
	r = mx_client_pg_scrub(cl, mixsan_pool_id(p), (uint32_t)pg, flags, &res);
	if (r < 0) {
		ret = cli_fail("pg %" PRId64 ".%lx: %s: %s", mixsan_pool_id(p), pg, sub,
			       cli_errstr(r));
	} else if (c->json) {
		print_json(json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:I}", "pool", c->argv[0],
				     "command", sub, "pg", (int)pg, "objects",
				     (json_int_t)res.scrubbed, "inconsistent",
				     (json_int_t)res.inconsistent, "repaired",
				     (json_int_t)res.repaired, "errors", (json_int_t)res.errors));
	} else {
		printf("pg %" PRId64 ".%lx %s: %u objects, %u inconsistent, %u repaired, "
		       "%u errors\n",
		       mixsan_pool_id(p), pg, sub, res.scrubbed, res.inconsistent, res.repaired,
		       res.errors);
	}
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	return ret;
}

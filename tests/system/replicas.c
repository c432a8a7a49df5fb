/*
 * Offline replica checks for system tests: read every OSD's object store
 * directly and compare the copies of each object.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "harness.h"
#include "internal.h"
#include "map.h"
#include "placement.h"
#include "store.h"
#include "util.h"

struct seen {
	char *name;
	uint32_t len;
	uint32_t pg;
	int copies;
	int32_t holders[H_MAX_OSDS];
};

struct collect {
	struct seen *v;
	size_t n, cap;
	int osd;
};

static int cmp_seen(const void *a, const void *b)
{
	const struct seen *x = a, *y = b;
	int c = memcmp(x->name, y->name, MX_MIN(x->len, y->len));

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int collect_cb(void *arg, const struct mx_objkey *key, const struct mx_obj_stat *st)
{
	struct collect *c = arg;
	struct seen *s;

	(void)st;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 1024;
		c->v = realloc(c->v, c->cap * sizeof(*c->v));
		if (!c->v)
			abort();
	}
	s = &c->v[c->n++];
	memset(s, 0, sizeof(*s));
	s->name = malloc(key->name_len);
	memcpy(s->name, key->name, key->name_len);
	s->len = key->name_len;
	s->pg = key->pg;
	s->copies = 1;
	s->holders[0] = c->osd;
	return 0;
}

struct xa {
	char names[64][256];
	uint32_t crc[64];
	int n;
};

static int xa_cb(void *arg, const char *name, const void *v, uint32_t len)
{
	struct xa *x = arg;
	if (x->n < 64) {
		snprintf(x->names[x->n], sizeof(x->names[0]), "%s", name);
		x->crc[x->n++] = mx_crc32c(0, v, len) ^ len;
	}
	return 0;
}

static const char *domain_of(const struct mx_map *m, int32_t osd, int level, char *buf)
{
	const struct mx_osd_info *o = &m->osds[osd];

	if (level == MX_LEVEL_OSD) {
		sprintf(buf, "osd.%d", osd);
		return buf;
	}
	for (uint8_t i = 0; i < o->nloc; i++)
		if (o->loc[i].level == level)
			return o->loc[i].name;
	return "?";
}

int h_open_store(const struct h_cluster *c, int i, struct mx_store **out)
{
	char dir[400];

	h_osd_dir(c, i, dir, sizeof(dir));
	strcat(dir, "/store");
	return mx_store_open(dir, NULL, out);
}

int h_check_replicas(struct h_cluster *c, const struct mx_map *m, int32_t pool_id,
		     uint64_t *objects)
{
	struct mx_store *st[H_MAX_OSDS] = {0};
	const struct mx_pool *pool = mx_map_pool_by_id(m, pool_id);
	struct mx_placement *pl = NULL;
	struct collect all = {0};
	int problems = 0;
	uint8_t *a = malloc(64u << 20), *b = malloc(64u << 20);

	if (!pool || mx_placement_new(m, &pl) < 0 || !a || !b)
		H_FATAL("cannot prepare the replica check");
	for (int i = 0; i < c->n_osds; i++) {
		int r = h_open_store(c, i, &st[i]);

		if (r < 0) {
			fprintf(stderr, "osd.%d: store does not open: %s\n", i, strerror(-r));
			problems++;
			continue;
		}
		all.osd = i;
		(void)mx_store_list(st[i], pool_id, UINT32_MAX, NULL, 0, collect_cb, &all);
	}
	qsort(all.v, all.n, sizeof(*all.v), cmp_seen);
	/* Merge duplicates: one entry per object with its holders. */
	{
		size_t w = 0;

		for (size_t i = 0; i < all.n; i++) {
			if (w > 0 && cmp_seen(&all.v[w - 1], &all.v[i]) == 0) {
				struct seen *s = &all.v[w - 1];

				if (s->copies < H_MAX_OSDS)
					s->holders[s->copies++] = all.v[i].holders[0];
				free(all.v[i].name);
				continue;
			}
			all.v[w++] = all.v[i];
		}
		all.n = w;
	}
	for (size_t i = 0; i < all.n; i++) {
		struct seen *s = &all.v[i];
		int32_t acting[MX_MAX_SIZE];
		uint32_t pg = mx_object_pg(pool, s->name, s->len);
		int n = mx_pg_up(pl, pool, pg, acting, MX_MAX_SIZE);
		struct mx_objkey key = {.pool = pool_id, .pg = pg, .name = s->name,
					.name_len = s->len};
		struct mx_obj_stat s0, s1;
		struct xa x0, x1;
		char d1[32], d2[32];

		if (pg != s->pg || n != s->copies) {
			fprintf(stderr, "object %.*s: %d copies, placement wants %d (pg %u/%u)\n",
				(int)s->len, s->name, s->copies, n, s->pg, pg);
			problems++;
			continue;
		}
		for (int k = 0; k < n; k++) {
			bool found = false;

			for (int j = 0; j < s->copies; j++)
				found |= s->holders[j] == acting[k];
			if (!found) {
				fprintf(stderr, "object %.*s: missing on osd.%d\n", (int)s->len,
					s->name, acting[k]);
				problems++;
			}
			for (int j = 0; j < k; j++)
				if (strcmp(domain_of(m, acting[j], pool->failure_domain, d1),
					   domain_of(m, acting[k], pool->failure_domain, d2)) == 0) {
					fprintf(stderr, "object %.*s: two replicas in %s\n",
						(int)s->len, s->name, d1);
					problems++;
				}
		}
		if (!st[acting[0]] || mx_store_stat(st[acting[0]], &key, &s0) < 0) {
			problems++;
			continue;
		}
		memset(&x0, 0, sizeof(x0));
		(void)mx_store_listxattrs(st[acting[0]], &key, xa_cb, &x0);
		for (int k = 1; k < n; k++) {
			uint32_t g0 = 0, g1 = 0;
			struct mx_store *o = st[acting[k]];

			if (!o || mx_store_stat(o, &key, &s1) < 0 || s1.size != s0.size ||
			    mx_version_cmp(s1.version, s0.version) != 0) {
				fprintf(stderr, "object %.*s: osd.%d differs in size or version\n",
					(int)s->len, s->name, acting[k]);
				problems++;
				continue;
			}
			memset(&x1, 0, sizeof(x1));
			(void)mx_store_listxattrs(o, &key, xa_cb, &x1);
			if (x0.n != x1.n || memcmp(x0.crc, x1.crc, sizeof(x0.crc)) != 0 ||
			    memcmp(x0.names, x1.names, sizeof(x0.names)) != 0) {
				fprintf(stderr, "object %.*s: osd.%d attributes differ\n",
					(int)s->len, s->name, acting[k]);
				problems++;
			}
			if (s0.size > (64u << 20))
				continue;
			if (mx_store_read(st[acting[0]], &key, 0, (uint32_t)s0.size, a, &g0) < 0 ||
			    mx_store_read(o, &key, 0, (uint32_t)s0.size, b, &g1) < 0 || g0 != g1 ||
			    memcmp(a, b, g0) != 0) {
				fprintf(stderr, "object %.*s: osd.%d data differs\n", (int)s->len,
					s->name, acting[k]);
				problems++;
			}
		}
	}
	*objects = all.n;
	for (size_t i = 0; i < all.n; i++)
		free(all.v[i].name);
	free(all.v);
	for (int i = 0; i < c->n_osds; i++)
		mx_store_close(st[i]);
	mx_placement_free(pl);
	free(a);
	free(b);
	return problems;
}

int h_shutdown_check_replicas(struct h_cluster *c, mixsan_cluster_t *cl, mixsan_pool_t *p,
			      uint64_t *objects)
{
	struct mx_map *m = mx_client_map_copy(cl);
	int32_t pool_id = (int32_t)mixsan_pool_id(p);
	char why[1024];
	int problems;

	if (!m)
		H_FATAL("no map");
	/* Recovery runs in the background (throttled while clients write):
	 * the copies are compared once the cluster says it is over. */
	if (h_wait_health_ok(cl, 180, why, sizeof(why)) < 0) {
		fprintf(stderr, "not HEALTH_OK after 180 s: %s\n", why);
		h_failures++;
	}
	mx_map_free(m);
	m = mx_client_map_copy(cl);
	if (!m)
		H_FATAL("no map");
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	for (int i = 0; i < c->n_osds; i++)
		h_signal_osd(c, i, SIGTERM);
	problems = h_check_replicas(c, m, pool_id, objects);
	mx_map_free(m);
	return problems;
}

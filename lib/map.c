/*
 * The cluster map's encoding, validation and small mutations.
 *
 * Encoding (little-endian):
 *   u32 magic "MXMP", u16 format version,
 *   then sections: u16 id, u32 length, body.  Unknown sections are skipped.
 *   Inside the OSD and pool sections every record is a u32 length and a
 *   body, and a decoder ignores bytes after the fields it knows, so newer
 *   encoders may append fields.
 */
#include "map.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAP_MAGIC 0x504d584du /* "MXMP" */
#define MAP_FORMAT 1

enum {
	SEC_HEADER = 1,
	SEC_MONS = 2,
	SEC_OSDS = 3,
	SEC_POOLS = 4,
	SEC_UPMAPS = 5, /* optional */
	SEC_PRIMARY_TEMP = 6, /* optional */
	SEC_MON_QUORUM = 7, /* optional: the monitors' Raft ids and addresses */
	SEC_AUTH = 8,       /* optional: authentication is required */
	SEC_AUTH_DB = 9,    /* optional, monitors only: keys and the service secret */
};

static const char *const level_names[MX_LEVEL_COUNT] = {
	"osd", "host", "chassis", "rack", "row", "datacenter", "zone", "region", "root",
};

int mx_level_from_name(const char *name)
{
	for (int i = 0; i < MX_LEVEL_COUNT; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

const char *mx_level_name(int level)
{
	if (level < 0 || level >= MX_LEVEL_COUNT)
		return "?";
	return level_names[level];
}

struct mx_map *mx_map_new(void)
{
	struct mx_map *m = calloc(1, sizeof(*m));

	if (m)
		m->next_pool_id = 1;
	return m;
}

void mx_map_free(struct mx_map *m)
{
	if (!m)
		return;
	free(m->mons);
	free(m->osds);
	free(m->pools);
	free(m->upmaps);
	free(m->ptemps);
	if (m->auth) {
		explicit_bzero(m->auth, m->n_auth * sizeof(*m->auth));
		free(m->auth);
	}
	explicit_bzero(m->service_secret, sizeof(m->service_secret));
	free(m);
}

static void *dup_array(const void *p, size_t n, size_t size, bool *fail)
{
	void *d;

	if (n == 0)
		return NULL;
	d = malloc(n * size);
	if (!d) {
		*fail = true;
		return NULL;
	}
	memcpy(d, p, n * size);
	return d;
}

struct mx_map *mx_map_dup(const struct mx_map *m)
{
	struct mx_map *d = malloc(sizeof(*d));
	bool fail = false;

	if (!d)
		return NULL;
	*d = *m;
	d->mons = dup_array(m->mons, m->n_mons, sizeof(*m->mons), &fail);
	d->osds = dup_array(m->osds, m->max_osd, sizeof(*m->osds), &fail);
	d->pools = dup_array(m->pools, m->n_pools, sizeof(*m->pools), &fail);
	d->upmaps = dup_array(m->upmaps, m->n_upmaps, sizeof(*m->upmaps), &fail);
	d->ptemps = dup_array(m->ptemps, m->n_ptemps, sizeof(*m->ptemps), &fail);
	d->auth = dup_array(m->auth, m->n_auth, sizeof(*m->auth), &fail);
	if (fail) {
		mx_map_free(d);
		return NULL;
	}
	return d;
}

bool mx_valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= MX_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && c != '-' && c != '_' && c != '.')
			return false;
	}
	return true;
}

static bool valid_class(const char *s)
{
	return s[0] == '\0' || (strlen(s) < MX_CLASS_MAX && mx_valid_name(s));
}

int mx_pool_validate(const struct mx_pool *p)
{
	if (!mx_valid_name(p->name) || !mx_valid_name(p->root_name))
		return -EINVAL;
	if (p->size < 1 || p->size > MX_MAX_SIZE)
		return -EINVAL;
	if (p->min_size < 1 || p->min_size > p->size)
		return -EINVAL;
	if (p->pg_num < 1 || p->pg_num > MX_MAX_PG_NUM)
		return -EINVAL;
	if (p->failure_domain >= MX_LEVEL_ROOT)
		return -EINVAL;
	if (!valid_class(p->device_class))
		return -EINVAL;
	if (p->read_policy > MX_READ_LOCALIZE || p->cache_mode > MX_CACHE_READONLY)
		return -EINVAL;
	/* Tiering: a cache or a base or neither, never linked to itself;
	 * a mode and flush_all only on a cache. */
	if (p->tier_of < -1 || p->tier < -1 || (p->tier_of >= 0 && p->tier >= 0) ||
	    p->tier_of == p->id || p->tier == p->id)
		return -EINVAL;
	if (p->tier_of < 0 && (p->cache_mode != MX_CACHE_NONE || p->flush_all))
		return -EINVAL;
	if (p->flush_all > 1)
		return -EINVAL;
	if (p->cache_target_full_ratio > 1000 ||
	    p->cache_target_dirty_ratio > p->cache_target_full_ratio)
		return -EINVAL;
	if (p->promote_min_hits < MX_PROMOTE_HITS_MIN || p->promote_min_hits > MX_PROMOTE_HITS_MAX)
		return -EINVAL;
	if (p->hit_period_s < MX_HIT_PERIOD_MIN || p->hit_period_s > MX_HIT_PERIOD_MAX)
		return -EINVAL;
	return 0;
}

void mx_pool_init(struct mx_pool *p)
{
	memset(p, 0, sizeof(*p));
	p->tier_of = -1;
	p->tier = -1;
	p->cache_mode = MX_CACHE_NONE;
	p->cache_target_dirty_ratio = MX_CACHE_DIRTY_RATIO_DEFAULT;
	p->cache_target_full_ratio = MX_CACHE_FULL_RATIO_DEFAULT;
	p->promote_min_hits = MX_PROMOTE_HITS_DEFAULT;
	p->hit_period_s = MX_HIT_PERIOD_DEFAULT;
}

bool mx_map_tiers_valid(const struct mx_map *m)
{
	for (uint32_t i = 0; i < m->n_pools; i++) {
		const struct mx_pool *p = &m->pools[i], *q;

		if (p->tier_of >= 0 &&
		    (!(q = mx_map_pool_by_id(m, p->tier_of)) || q->tier != p->id))
			return false;
		if (p->tier >= 0 && (!(q = mx_map_pool_by_id(m, p->tier)) || q->tier_of != p->id))
			return false;
	}
	return true;
}

static const char *const cache_mode_names[] = {"none", "writeback", "readonly"};

const char *mx_cache_mode_name(int mode)
{
	if (mode < 0 || mode > MX_CACHE_READONLY)
		return "?";
	return cache_mode_names[mode];
}

int mx_cache_mode_from_name(const char *name)
{
	for (int i = 0; i <= MX_CACHE_READONLY; i++)
		if (strcmp(name, cache_mode_names[i]) == 0)
			return i;
	return -EINVAL;
}

const char *mx_osd_loc_name(const struct mx_osd_info *o, int level)
{
	for (int i = 0; o && i < o->nloc; i++)
		if (o->loc[i].level == level)
			return o->loc[i].name;
	return NULL;
}

int mx_loc_parse(const char *s, struct mx_loc *loc, uint8_t *nloc)
{
	char buf[1024];
	char *save = NULL;
	uint8_t n = 0;
	bool have_root = false;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	for (char *tok = strtok_r(buf, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
		char *eq = strchr(tok, '=');
		int level;

		if (!eq)
			return -EINVAL;
		*eq = '\0';
		level = mx_level_from_name(tok);
		if (level <= MX_LEVEL_OSD || !mx_valid_name(eq + 1) || n >= MX_LOC_MAX)
			return -EINVAL;
		for (uint8_t i = 0; i < n; i++)
			if (loc[i].level == level)
				return -EINVAL;
		loc[n].level = (uint8_t)level;
		snprintf(loc[n].name, sizeof(loc[n].name), "%s", eq + 1);
		if (level == MX_LEVEL_ROOT)
			have_root = true;
		n++;
	}
	if (!have_root) {
		if (n >= MX_LOC_MAX)
			return -EINVAL;
		loc[n].level = MX_LEVEL_ROOT;
		strcpy(loc[n].name, "default");
		n++;
	}
	/* Sort leaf first (insertion sort: at most MX_LOC_MAX entries). */
	for (uint8_t i = 1; i < n; i++) {
		struct mx_loc t = loc[i];
		int j = i - 1;

		while (j >= 0 && loc[j].level > t.level) {
			loc[j + 1] = loc[j];
			j--;
		}
		loc[j + 1] = t;
	}
	*nloc = n;
	return 0;
}

void mx_loc_format(const struct mx_loc *loc, uint8_t nloc, char *buf, size_t sz)
{
	size_t used = 0;

	buf[0] = '\0';
	for (uint8_t i = 0; i < nloc && used < sz; i++) {
		int n = snprintf(buf + used, sz - used, "%s%s=%s", i ? "," : "",
				 mx_level_name(loc[i].level), loc[i].name);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

static bool loc_valid(const struct mx_loc *loc, uint8_t nloc)
{
	if (nloc == 0 || nloc > MX_LOC_MAX)
		return false;
	for (uint8_t i = 0; i < nloc; i++) {
		if (loc[i].level == MX_LEVEL_OSD || loc[i].level >= MX_LEVEL_COUNT)
			return false;
		if (i > 0 && loc[i].level <= loc[i - 1].level)
			return false;
		if (!mx_valid_name(loc[i].name))
			return false;
	}
	return loc[nloc - 1].level == MX_LEVEL_ROOT;
}

const struct mx_pool *mx_map_pool_by_id(const struct mx_map *m, int32_t id)
{
	for (uint32_t i = 0; i < m->n_pools; i++)
		if (m->pools[i].id == id)
			return &m->pools[i];
	return NULL;
}

const struct mx_pool *mx_map_pool_by_name(const struct mx_map *m, const char *name)
{
	for (uint32_t i = 0; i < m->n_pools; i++)
		if (strcmp(m->pools[i].name, name) == 0)
			return &m->pools[i];
	return NULL;
}

const struct mx_osd_info *mx_map_osd(const struct mx_map *m, int32_t id)
{
	if (id < 0 || (uint32_t)id >= m->max_osd || !m->osds[id].exists)
		return NULL;
	return &m->osds[id];
}

int mx_map_set_max_osd(struct mx_map *m, uint32_t max_osd)
{
	struct mx_osd_info *o;

	if (max_osd > MX_MAX_OSDS)
		return -EINVAL;
	if (max_osd <= m->max_osd)
		return 0;
	o = realloc(m->osds, max_osd * sizeof(*o));
	if (!o)
		return -ENOMEM;
	memset(o + m->max_osd, 0, (max_osd - m->max_osd) * sizeof(*o));
	m->osds = o;
	m->max_osd = max_osd;
	return 0;
}

int mx_map_add_pool(struct mx_map *m, const struct mx_pool *p)
{
	struct mx_pool *np;
	uint32_t at;
	int r = mx_pool_validate(p);

	if (r < 0)
		return r;
	if (m->n_pools >= MX_MAX_POOLS)
		return -ENOSPC;
	if (mx_map_pool_by_name(m, p->name) || mx_map_pool_by_id(m, p->id))
		return -EEXIST;
	np = realloc(m->pools, (m->n_pools + 1) * sizeof(*np));
	if (!np)
		return -ENOMEM;
	m->pools = np;
	for (at = 0; at < m->n_pools && m->pools[at].id < p->id; at++)
		;
	memmove(&np[at + 1], &np[at], (m->n_pools - at) * sizeof(*np));
	np[at] = *p;
	m->n_pools++;
	return 0;
}

static int upmap_cmp(const void *a, const void *b)
{
	const struct mx_pg_upmap *x = a, *y = b;

	if (x->pool != y->pool)
		return x->pool < y->pool ? -1 : 1;
	return (x->pg > y->pg) - (x->pg < y->pg);
}

const struct mx_pg_upmap *mx_map_upmap(const struct mx_map *m, int32_t pool, uint32_t pg)
{
	struct mx_pg_upmap key = {.pool = pool, .pg = pg};

	if (!m->n_upmaps)
		return NULL;
	return bsearch(&key, m->upmaps, m->n_upmaps, sizeof(key), upmap_cmp);
}

int mx_map_set_upmaps(struct mx_map *m, int32_t pool, const struct mx_pg_upmap *u, uint32_t n)
{
	struct mx_pg_upmap *nu;
	uint32_t keep = 0;

	for (uint32_t i = 0; i < n; i++)
		if (u[i].n == 0 || u[i].n > MX_MAX_SIZE || (pool >= 0 && u[i].pool != pool))
			return -EINVAL;
	for (uint32_t i = 0; i < m->n_upmaps; i++)
		keep += pool >= 0 && m->upmaps[i].pool != pool;
	nu = malloc(((size_t)keep + n + 1) * sizeof(*nu));
	if (!nu)
		return -ENOMEM;
	keep = 0;
	for (uint32_t i = 0; i < m->n_upmaps; i++)
		if (pool >= 0 && m->upmaps[i].pool != pool)
			nu[keep++] = m->upmaps[i];
	if (n)
		memcpy(nu + keep, u, n * sizeof(*u));
	qsort(nu, keep + n, sizeof(*nu), upmap_cmp);
	for (uint32_t i = 1; i < keep + n; i++) {
		if (upmap_cmp(&nu[i - 1], &nu[i]) == 0) {
			free(nu); /* two exceptions for one PG */
			return -EINVAL;
		}
	}
	free(m->upmaps);
	m->upmaps = nu;
	m->n_upmaps = keep + n;
	return 0;
}

static int ptemp_cmp(const void *a, const void *b)
{
	const struct mx_primary_temp *x = a, *y = b;

	if (x->pool != y->pool)
		return x->pool < y->pool ? -1 : 1;
	return (x->pg > y->pg) - (x->pg < y->pg);
}

int32_t mx_map_primary_temp(const struct mx_map *m, int32_t pool, uint32_t pg)
{
	struct mx_primary_temp key = {.pool = pool, .pg = pg};
	const struct mx_primary_temp *t;

	if (!m->n_ptemps)
		return -1;
	t = bsearch(&key, m->ptemps, m->n_ptemps, sizeof(key), ptemp_cmp);
	return t ? t->osd : -1;
}

int mx_map_set_primary_temp(struct mx_map *m, int32_t pool, uint32_t pg, int32_t osd)
{
	struct mx_primary_temp key = {.pool = pool, .pg = pg, .osd = osd};
	struct mx_primary_temp *t = m->n_ptemps ? bsearch(&key, m->ptemps, m->n_ptemps,
							  sizeof(key), ptemp_cmp)
						: NULL;
	uint32_t at = 0;

	if (t) {
		if (osd >= 0) {
			t->osd = osd;
		} else {
			at = (uint32_t)(t - m->ptemps);
			memmove(t, t + 1, (m->n_ptemps - at - 1) * sizeof(*t));
			m->n_ptemps--;
		}
		return 0;
	}
	if (osd < 0)
		return 0;
	t = realloc(m->ptemps, (m->n_ptemps + 1) * sizeof(*t));
	if (!t)
		return -ENOMEM;
	m->ptemps = t;
	while (at < m->n_ptemps && ptemp_cmp(&m->ptemps[at], &key) < 0)
		at++;
	memmove(&m->ptemps[at + 1], &m->ptemps[at], (m->n_ptemps - at) * sizeof(*t));
	m->ptemps[at] = key;
	m->n_ptemps++;
	return 0;
}

int mx_map_remove_pool(struct mx_map *m, int32_t id)
{
	for (uint32_t i = 0; i < m->n_pools; i++) {
		if (m->pools[i].id != id)
			continue;
		memmove(&m->pools[i], &m->pools[i + 1],
			(m->n_pools - i - 1) * sizeof(*m->pools));
		m->n_pools--;
		(void)mx_map_set_upmaps(m, id, NULL, 0);
		for (uint32_t k = 0; k < m->n_ptemps;)
			if (m->ptemps[k].pool == id)
				(void)mx_map_set_primary_temp(m, id, m->ptemps[k].pg, -1);
			else
				k++;
		return 0;
	}
	return -ENOENT;
}

/* Encoding ------------------------------------------------------------ */

static size_t sec_begin(struct mx_wbuf *w, uint16_t id)
{
	size_t at;

	mx_put_u16(w, id);
	at = w->len;
	mx_put_u32(w, 0);
	return at;
}

static void sec_end(struct mx_wbuf *w, size_t at)
{
	mx_wbuf_patch_u32(w, at, (uint32_t)(w->len - at - 4));
}

static void encode_osd(struct mx_wbuf *w, const struct mx_osd_info *o)
{
	size_t at = w->len;

	mx_put_u32(w, 0);
	mx_put_u8(w, o->up);
	mx_put_u8(w, o->in);
	mx_put_u32(w, o->weight);
	mx_put_str(w, o->addr);
	mx_put_u64(w, o->up_from);
	mx_put_u64(w, o->incarnation);
	mx_put_u8(w, o->nloc);
	for (uint8_t i = 0; i < o->nloc; i++) {
		mx_put_u8(w, o->loc[i].level);
		mx_put_str(w, o->loc[i].name);
	}
	mx_put_str(w, o->device_class);
	mx_put_bytes(w, o->uuid, 16);
	mx_put_u8(w, o->space);
	mx_wbuf_patch_u32(w, at, (uint32_t)(w->len - at - 4));
}

static void encode_pool(struct mx_wbuf *w, const struct mx_pool *p)
{
	size_t at = w->len;

	mx_put_u32(w, 0);
	mx_put_i32(w, p->id);
	mx_put_str(w, p->name);
	mx_put_u8(w, p->size);
	mx_put_u8(w, p->min_size);
	mx_put_u32(w, p->pg_num);
	mx_put_u8(w, p->failure_domain);
	mx_put_str(w, p->root_name);
	mx_put_str(w, p->device_class);
	mx_put_u8(w, p->read_policy);
	mx_put_i32(w, p->tier_of);
	mx_put_i32(w, p->tier);
	mx_put_u8(w, p->cache_mode);
	mx_put_u64(w, p->created_epoch);
	/* Appended with the cache settings (see decode_pool). */
	mx_put_u64(w, p->target_max_bytes);
	mx_put_u64(w, p->target_max_objects);
	mx_put_u16(w, p->cache_target_dirty_ratio);
	mx_put_u16(w, p->cache_target_full_ratio);
	mx_put_u8(w, p->promote_min_hits);
	mx_put_u32(w, p->hit_period_s);
	mx_put_u8(w, p->flush_all);
	mx_put_u64(w, p->tier_epoch); /* appended after the cache settings */
	mx_wbuf_patch_u32(w, at, (uint32_t)(w->len - at - 4));
}

static void map_encode(const struct mx_map *m, struct mx_wbuf *w, bool secret);

void mx_map_encode(const struct mx_map *m, struct mx_wbuf *w)
{
	map_encode(m, w, false);
}

void mx_map_encode_secret(const struct mx_map *m, struct mx_wbuf *w)
{
	map_encode(m, w, true);
}

struct mx_auth_entity *mx_map_auth_find(const struct mx_map *m, const char *name)
{
	for (uint32_t i = 0; i < m->n_auth; i++)
		if (strcmp(m->auth[i].name, name) == 0)
			return &m->auth[i];
	return NULL;
}

int mx_map_auth_set(struct mx_map *m, const struct mx_auth_entity *e)
{
	struct mx_auth_entity *old = mx_map_auth_find(m, e->name), *n;
	uint32_t at = 0;

	if (old) {
		*old = *e;
		return 0;
	}
	n = realloc(m->auth, (m->n_auth + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	m->auth = n;
	while (at < m->n_auth && strcmp(m->auth[at].name, e->name) < 0)
		at++;
	memmove(&m->auth[at + 1], &m->auth[at], (m->n_auth - at) * sizeof(*n));
	m->auth[at] = *e;
	m->n_auth++;
	return 0;
}

int mx_map_auth_rm(struct mx_map *m, const char *name)
{
	struct mx_auth_entity *e = mx_map_auth_find(m, name);
	uint32_t at;

	if (!e)
		return -ENOENT;
	at = (uint32_t)(e - m->auth);
	memmove(e, e + 1, (m->n_auth - at - 1) * sizeof(*e));
	m->n_auth--;
	explicit_bzero(&m->auth[m->n_auth], sizeof(*e));
	return 0;
}

static void map_encode(const struct mx_map *m, struct mx_wbuf *w, bool secret)
{
	size_t at;
	uint32_t n_exist = 0;

	mx_put_u32(w, MAP_MAGIC);
	mx_put_u16(w, MAP_FORMAT);

	at = sec_begin(w, SEC_HEADER);
	mx_put_u64(w, m->epoch);
	mx_put_bytes(w, m->fsid, 16);
	mx_put_u64(w, m->modified_ms);
	mx_put_i32(w, m->next_pool_id);
	sec_end(w, at);

	at = sec_begin(w, SEC_MONS);
	mx_put_u32(w, m->n_mons);
	for (uint32_t i = 0; i < m->n_mons; i++) {
		mx_put_str(w, m->mons[i].name);
		mx_put_str(w, m->mons[i].addr);
	}
	sec_end(w, at);
	if (m->n_mons && m->mons[0].raft_id) {
		at = sec_begin(w, SEC_MON_QUORUM);
		mx_put_u32(w, m->n_mons);
		for (uint32_t i = 0; i < m->n_mons; i++) {
			mx_put_u64(w, m->mons[i].raft_id);
			mx_put_str(w, m->mons[i].raft_addr);
		}
		sec_end(w, at);
	}

	at = sec_begin(w, SEC_OSDS);
	mx_put_u32(w, m->max_osd);
	for (uint32_t i = 0; i < m->max_osd; i++)
		n_exist += m->osds[i].exists;
	mx_put_u32(w, n_exist);
	for (uint32_t i = 0; i < m->max_osd; i++) {
		if (!m->osds[i].exists)
			continue;
		mx_put_u32(w, i);
		encode_osd(w, &m->osds[i]);
	}
	sec_end(w, at);

	at = sec_begin(w, SEC_POOLS);
	mx_put_u32(w, m->n_pools);
	for (uint32_t i = 0; i < m->n_pools; i++)
		encode_pool(w, &m->pools[i]);
	sec_end(w, at);

	if (m->n_upmaps) {
		at = sec_begin(w, SEC_UPMAPS);
		mx_put_u32(w, m->n_upmaps);
		for (uint32_t i = 0; i < m->n_upmaps; i++) {
			const struct mx_pg_upmap *u = &m->upmaps[i];

			mx_put_i32(w, u->pool);
			mx_put_u32(w, u->pg);
			mx_put_u8(w, u->n);
			for (uint8_t k = 0; k < u->n; k++) {
				mx_put_i32(w, u->from[k]);
				mx_put_i32(w, u->to[k]);
			}
		}
		sec_end(w, at);
	}
	if (m->n_ptemps) {
		at = sec_begin(w, SEC_PRIMARY_TEMP);
		mx_put_u32(w, m->n_ptemps);
		for (uint32_t i = 0; i < m->n_ptemps; i++) {
			mx_put_i32(w, m->ptemps[i].pool);
			mx_put_u32(w, m->ptemps[i].pg);
			mx_put_i32(w, m->ptemps[i].osd);
		}
		sec_end(w, at);
	}
	if (m->auth_required || m->n_auth) {
		/* Public: who exists, with which caps and key generation (OSDs
		 * refuse tickets of removed or rotated keys). */
		at = sec_begin(w, SEC_AUTH);
		mx_put_u8(w, m->auth_required);
		mx_put_u32(w, m->n_auth);
		for (uint32_t k = 0; k < m->n_auth; k++) {
			mx_put_str(w, m->auth[k].name);
			mx_put_str(w, m->auth[k].caps);
			mx_put_u32(w, m->auth[k].generation);
		}
		sec_end(w, at);
	}
	if (secret && (m->have_secret || m->n_auth)) {
		/* Secret: the service secret and the keys, in the same order. */
		at = sec_begin(w, SEC_AUTH_DB);
		mx_put_u8(w, m->have_secret);
		mx_put_bytes(w, m->service_secret, sizeof(m->service_secret));
		mx_put_u32(w, m->n_auth);
		for (uint32_t k = 0; k < m->n_auth; k++)
			mx_put_bytes(w, m->auth[k].key, sizeof(m->auth[k].key));
		sec_end(w, at);
	}
}

static void decode_osd(struct mx_rbuf *outer, struct mx_osd_info *o)
{
	uint32_t len;
	const void *body = mx_get_blob(outer, &len, 1u << 20);
	struct mx_rbuf r;

	if (!body)
		return;
	mx_rbuf_init(&r, body, len);
	o->exists = true;
	o->up = mx_get_u8(&r) != 0;
	o->in = mx_get_u8(&r) != 0;
	o->weight = mx_get_u32(&r);
	mx_get_str(&r, o->addr, sizeof(o->addr));
	o->up_from = mx_get_u64(&r);
	o->incarnation = mx_get_u64(&r);
	o->nloc = mx_get_u8(&r);
	if (o->nloc > MX_LOC_MAX)
		mx_rbuf_fail(&r);
	for (uint8_t i = 0; i < o->nloc && !r.err; i++) {
		o->loc[i].level = mx_get_u8(&r);
		mx_get_str(&r, o->loc[i].name, sizeof(o->loc[i].name));
	}
	mx_get_str(&r, o->device_class, sizeof(o->device_class));
	{
		const void *u = mx_get_bytes(&r, 16);

		if (u)
			memcpy(o->uuid, u, 16);
	}
	/* Appended later: absent from older encodings. */
	if (!r.err && mx_rbuf_left(&r) > 0) {
		o->space = mx_get_u8(&r);
		if (o->space > MX_SPACE_FULL)
			mx_rbuf_fail(&r);
	}
	if (!r.err && (!loc_valid(o->loc, o->nloc) || !valid_class(o->device_class)))
		mx_rbuf_fail(&r);
	if (r.err)
		mx_rbuf_fail(outer);
}

static void decode_pool(struct mx_rbuf *outer, struct mx_pool *p)
{
	uint32_t len;
	const void *body = mx_get_blob(outer, &len, 1u << 20);
	struct mx_rbuf r;

	if (!body)
		return;
	mx_rbuf_init(&r, body, len);
	p->id = mx_get_i32(&r);
	mx_get_str(&r, p->name, sizeof(p->name));
	p->size = mx_get_u8(&r);
	p->min_size = mx_get_u8(&r);
	p->pg_num = mx_get_u32(&r);
	p->failure_domain = mx_get_u8(&r);
	mx_get_str(&r, p->root_name, sizeof(p->root_name));
	mx_get_str(&r, p->device_class, sizeof(p->device_class));
	p->read_policy = mx_get_u8(&r);
	p->tier_of = mx_get_i32(&r);
	p->tier = mx_get_i32(&r);
	p->cache_mode = mx_get_u8(&r);
	p->created_epoch = mx_get_u64(&r);
	/* The cache settings were appended later: a record that ends here
	 * was encoded before them, and its pool has the defaults (those of
	 * mx_pool_init, which every pool had implicitly then).  A record
	 * that has them has all of them. */
	p->cache_target_dirty_ratio = MX_CACHE_DIRTY_RATIO_DEFAULT;
	p->cache_target_full_ratio = MX_CACHE_FULL_RATIO_DEFAULT;
	p->promote_min_hits = MX_PROMOTE_HITS_DEFAULT;
	p->hit_period_s = MX_HIT_PERIOD_DEFAULT;
	if (!r.err && mx_rbuf_left(&r) > 0) {
		p->target_max_bytes = mx_get_u64(&r);
		p->target_max_objects = mx_get_u64(&r);
		p->cache_target_dirty_ratio = mx_get_u16(&r);
		p->cache_target_full_ratio = mx_get_u16(&r);
		p->promote_min_hits = mx_get_u8(&r);
		p->hit_period_s = mx_get_u32(&r);
		p->flush_all = mx_get_u8(&r);
	}
	/* tier_epoch came after them: absent in older records (0). */
	if (!r.err && mx_rbuf_left(&r) > 0)
		p->tier_epoch = mx_get_u64(&r);
	if (!r.err && mx_pool_validate(p) < 0)
		mx_rbuf_fail(&r);
	if (r.err)
		mx_rbuf_fail(outer);
}

static int decode_section(struct mx_map *m, uint16_t id, struct mx_rbuf *r)
{
	switch (id) {
	case SEC_HEADER: {
		const void *fsid;

		m->epoch = mx_get_u64(r);
		fsid = mx_get_bytes(r, 16);
		if (fsid)
			memcpy(m->fsid, fsid, 16);
		m->modified_ms = mx_get_u64(r);
		m->next_pool_id = mx_get_i32(r);
		break;
	}
	case SEC_MONS: {
		uint32_t n = mx_get_u32(r);

		if (r->err || n > MX_MAX_MONS)
			return -EBADMSG;
		m->mons = calloc(n ? n : 1, sizeof(*m->mons));
		if (!m->mons)
			return -ENOMEM;
		m->n_mons = n;
		for (uint32_t i = 0; i < n; i++) {
			mx_get_str(r, m->mons[i].name, sizeof(m->mons[i].name));
			mx_get_str(r, m->mons[i].addr, sizeof(m->mons[i].addr));
		}
		break;
	}
	case SEC_OSDS: {
		uint32_t max = mx_get_u32(r);
		uint32_t n = mx_get_u32(r);

		if (r->err || max > MX_MAX_OSDS || n > max)
			return -EBADMSG;
		if (max && mx_map_set_max_osd(m, max) < 0)
			return -ENOMEM;
		for (uint32_t i = 0; i < n && !r->err; i++) {
			uint32_t oid = mx_get_u32(r);

			if (oid >= max || m->osds[oid].exists)
				return -EBADMSG;
			decode_osd(r, &m->osds[oid]);
		}
		break;
	}
	case SEC_POOLS: {
		uint32_t n = mx_get_u32(r);

		if (r->err || n > MX_MAX_POOLS)
			return -EBADMSG;
		for (uint32_t i = 0; i < n && !r->err; i++) {
			struct mx_pool p;
			int e;

			memset(&p, 0, sizeof(p));
			decode_pool(r, &p);
			if (r->err)
				break;
			e = mx_map_add_pool(m, &p);
			if (e < 0)
				return e == -ENOMEM ? e : -EBADMSG;
		}
		break;
	}
	case SEC_UPMAPS: {
		uint32_t n = mx_get_u32(r);

		if (r->err || n > MX_MAX_POOLS * (uint32_t)MX_MAX_PG_NUM || n > mx_rbuf_left(r) / 9)
			return -EBADMSG;
		m->upmaps = calloc(n ? n : 1, sizeof(*m->upmaps));
		if (!m->upmaps)
			return -ENOMEM;
		for (uint32_t i = 0; i < n && !r->err; i++) {
			struct mx_pg_upmap *u = &m->upmaps[i];

			u->pool = mx_get_i32(r);
			u->pg = mx_get_u32(r);
			u->n = mx_get_u8(r);
			if (u->n == 0 || u->n > MX_MAX_SIZE) {
				mx_rbuf_fail(r);
				break;
			}
			for (uint8_t k = 0; k < u->n; k++) {
				u->from[k] = mx_get_i32(r);
				u->to[k] = mx_get_i32(r);
			}
			if (i > 0 && upmap_cmp(&m->upmaps[i - 1], u) >= 0)
				mx_rbuf_fail(r); /* must be sorted and unique */
		}
		m->n_upmaps = n;
		break;
	}
	case SEC_PRIMARY_TEMP: {
		uint32_t n = mx_get_u32(r);

		if (r->err || n > mx_rbuf_left(r) / 12)
			return -EBADMSG;
		m->ptemps = calloc(n ? n : 1, sizeof(*m->ptemps));
		if (!m->ptemps)
			return -ENOMEM;
		for (uint32_t i = 0; i < n && !r->err; i++) {
			struct mx_primary_temp *t = &m->ptemps[i];

			t->pool = mx_get_i32(r);
			t->pg = mx_get_u32(r);
			t->osd = mx_get_i32(r);
			if (t->osd < 0 || (i > 0 && ptemp_cmp(&m->ptemps[i - 1], t) >= 0))
				mx_rbuf_fail(r); /* sorted, unique, an OSD each */
		}
		m->n_ptemps = n;
		break;
	}
	case SEC_MON_QUORUM: {
		/* After SEC_MONS, one entry per monitor, in its order. */
		uint32_t n = mx_get_u32(r);

		if (r->err || n != m->n_mons || n == 0)
			return -EBADMSG;
		for (uint32_t i = 0; i < n && !r->err; i++) {
			m->mons[i].raft_id = mx_get_u64(r);
			mx_get_str(r, m->mons[i].raft_addr, sizeof(m->mons[i].raft_addr));
			if (m->mons[i].raft_id == 0)
				mx_rbuf_fail(r);
		}
		break;
	}
	case SEC_AUTH: {
		uint32_t n;

		m->auth_required = mx_get_u8(r) != 0;
		n = mx_get_u32(r);
		if (r->err || m->auth || n > 65536 || n > mx_rbuf_left(r) / 8)
			return -EBADMSG;
		m->auth = calloc(n ? n : 1, sizeof(*m->auth));
		if (!m->auth)
			return -ENOMEM;
		for (uint32_t k = 0; k < n && !r->err; k++) {
			struct mx_auth_entity *e = &m->auth[k];

			mx_get_str(r, e->name, sizeof(e->name));
			mx_get_str(r, e->caps, sizeof(e->caps));
			e->generation = mx_get_u32(r);
			if (k > 0 && strcmp(m->auth[k - 1].name, e->name) >= 0)
				mx_rbuf_fail(r); /* sorted, unique */
		}
		m->n_auth = n;
		break;
	}
	case SEC_AUTH_DB: {
		/* After SEC_AUTH: its keys, in its order. */
		const void *sec;
		uint32_t n;

		m->have_secret = mx_get_u8(r) != 0;
		sec = mx_get_bytes(r, sizeof(m->service_secret));
		if (sec)
			memcpy(m->service_secret, sec, sizeof(m->service_secret));
		n = mx_get_u32(r);
		if (r->err || n != m->n_auth)
			return -EBADMSG;
		for (uint32_t k = 0; k < n && !r->err; k++) {
			const void *key = mx_get_bytes(r, sizeof(m->auth[k].key));

			if (key)
				memcpy(m->auth[k].key, key, sizeof(m->auth[k].key));
		}
		break;
	}
	default:
		break; /* a newer section: skip */
	}
	return r->err ? -EBADMSG : 0;
}

int mx_map_decode(const void *data, size_t len, struct mx_map **out)
{
	struct mx_map *m;
	struct mx_rbuf r;
	unsigned seen = 0;

	*out = NULL;
	mx_rbuf_init(&r, data, len);
	if (mx_get_u32(&r) != MAP_MAGIC || mx_get_u16(&r) != MAP_FORMAT || r.err)
		return -EBADMSG;
	m = mx_map_new();
	if (!m)
		return -ENOMEM;
	while (mx_rbuf_left(&r) > 0) {
		uint16_t id = mx_get_u16(&r);
		uint32_t slen;
		const void *body = mx_get_blob(&r, &slen, UINT32_MAX);
		struct mx_rbuf s;
		int e;

		if (r.err)
			goto bad;
		if (id < 32) {
			if (seen & (1u << id))
				goto bad; /* a repeated section */
			seen |= 1u << id;
		}
		mx_rbuf_init(&s, body, slen);
		e = decode_section(m, id, &s);
		if (e < 0) {
			mx_map_free(m);
			return e;
		}
	}
	/* Every known section must be there: a truncated map never passes. */
	if ((seen & 0x1e) != 0x1e)
		goto bad;
	if (!mx_map_tiers_valid(m))
		goto bad;
	*out = m;
	return 0;
bad:
	mx_map_free(m);
	return -EBADMSG;
}

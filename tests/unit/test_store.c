/*
 * Unit tests of osd/store.c.  On a real temporary folder: the API
 * (writes, partial overwrites, holes, truncation, removal, attributes,
 * listings, versions), reopening after a clean close, after a checkpoint
 * and a kill, after a kill alone and with a tiny log, bit rot, damaged
 * metadata and log, injected EIO and ENOSPC, malformed transactions, and
 * the PG log and info (order, bound, trims, request identities, resets,
 * PG removal, listing, log files).  Then the crash sweep: a random
 * workload of transactions (most of them logged) and PG updates runs
 * against a simulated disk whose write cache loses, keeps or tears
 * unsynced writes and folder changes at a power cut; the cut falls at
 * every I/O call of the workload in turn, for many seeds, and every
 * surviving image is reopened (and sometimes cut again during recovery)
 * and compared with an in-memory model, PG logs, infos and request index
 * included.  MX_STORE_CRASH_SEEDS sets the number of seeds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "check.h"
#include "crc32c.h"
#include "store.h"
#include "util.h"

/* ---- Small helpers ------------------------------------------------------ */

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static struct mx_objkey K(int32_t pool, uint32_t pg, const char *name)
{
	struct mx_objkey k = { pool, pg, name, (uint32_t)strlen(name) };

	return k;
}

static struct mx_txn_op OPW(uint64_t off, const void *data, uint32_t len)
{
	struct mx_txn_op op = { .type = MX_TXN_WRITE, .off = off, .data = data,
				.len = len };
	return op;
}

static struct mx_txn_op OPT(uint64_t size)
{
	struct mx_txn_op op = { .type = MX_TXN_TRUNCATE, .size = size };
	return op;
}

static struct mx_txn_op OPR(void)
{
	struct mx_txn_op op = { .type = MX_TXN_REMOVE };
	return op;
}

static struct mx_txn_op OPC(void)
{
	struct mx_txn_op op = { .type = MX_TXN_CREATE };
	return op;
}

static struct mx_txn_op OPS(const char *xname, const void *val, uint32_t len)
{
	struct mx_txn_op op = { .type = MX_TXN_SETXATTR, .xname = xname,
				.data = val, .len = len };
	return op;
}

static struct mx_txn_op OPX(const char *xname)
{
	struct mx_txn_op op = { .type = MX_TXN_RMXATTR, .xname = xname };
	return op;
}

static int rm_cb(const char *path, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *path)
{
	(void)nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static char tmp_root[512];

/* A fresh folder path under the test's temporary root (not created). */
static void tmp_path(char *out, size_t sz, const char *leaf)
{
	(void)snprintf(out, sz, "%s/%s", tmp_root, leaf);
}

/* ---- Reference model ---------------------------------------------------- */

#define M_KEYS 32
#define M_XA 8
#define M_PGS 16
#define M_REQS 1024

struct mxa {
	char name[MX_XATTR_NAME_MAX + 1];
	uint8_t *val; /* From malloc() */
	uint32_t len;
};

struct mobj {
	int32_t pool;
	uint32_t pg;
	char name[MX_OBJ_NAME_MAX];
	uint32_t name_len;
	bool exists;
	uint8_t *data; /* From malloc(), cap bytes */
	uint64_t size, cap;
	struct mx_version ver;
	struct mxa xa[M_XA]; /* sorted by name */
	int n_xa;
};

/* A PG log entry of the model. */
struct ment {
	struct mx_version ver;
	uint8_t kind;
	uint64_t client_id, tid;
	uint32_t name_len;
	char *name; /* From malloc() */
};

struct mpg {
	int32_t pool;
	uint32_t pg;
	struct mx_version last;
	struct mx_version lu, tail;
	uint64_t les, lec;
	uint8_t n_acting;
	int32_t acting[MX_PG_ACTING_MAX];
	uint32_t flags;
	uint64_t wb_lost;
	struct ment *log; /* From malloc(): oldest first */
	int n_log, cap_log;
};

/* A request identity the workload used, to ask find_req about. */
struct mreq {
	int32_t pool;
	uint32_t pg;
	uint64_t client_id, tid;
};

struct model {
	struct mobj o[M_KEYS];
	int n;
	struct mpg pg[M_PGS];
	int n_pg;
	uint32_t log_max; /* the store's pg_log_max */
	struct mreq reqs[M_REQS];
	int n_reqs;
};

static void mpg_log_clear(struct mpg *p)
{
	for (int j = 0; j < p->n_log; j++)
		free(p->log[j].name);
	free(p->log);
	p->log = NULL;
	p->n_log = p->cap_log = 0;
}

static void model_free(struct model *m)
{
	for (int i = 0; i < m->n; i++) {
		free(m->o[i].data);
		for (int j = 0; j < m->o[i].n_xa; j++)
			free(m->o[i].xa[j].val);
	}
	for (int i = 0; i < m->n_pg; i++)
		mpg_log_clear(&m->pg[i]);
	memset(m, 0, sizeof(*m));
}

static void model_copy(struct model *dst, const struct model *src)
{
	memcpy(dst, src, sizeof(*dst));
	for (int i = 0; i < src->n_pg; i++) {
		struct mpg *p = &dst->pg[i];

		p->log = mx_xcalloc((size_t)p->cap_log + 1, sizeof(*p->log));
		for (int j = 0; j < p->n_log; j++) {
			p->log[j] = src->pg[i].log[j];
			p->log[j].name = mx_xcalloc(1, p->log[j].name_len + 1);
			memcpy(p->log[j].name, src->pg[i].log[j].name,
			       p->log[j].name_len);
		}
	}
	for (int i = 0; i < src->n; i++) {
		struct mobj *o = &dst->o[i];

		o->data = NULL;
		if (src->o[i].cap) {
			o->data = mx_xcalloc(1, src->o[i].cap);
			memcpy(o->data, src->o[i].data, src->o[i].size);
		}
		for (int j = 0; j < o->n_xa; j++) {
			o->xa[j].val = mx_xcalloc(1, o->xa[j].len + 1);
			memcpy(o->xa[j].val, src->o[i].xa[j].val, o->xa[j].len);
		}
	}
}

static struct mobj *model_obj(struct model *m, const struct mx_objkey *k)
{
	struct mobj *o;

	for (int i = 0; i < m->n; i++) {
		o = &m->o[i];
		if (o->pool == k->pool && o->pg == k->pg &&
		    o->name_len == k->name_len &&
		    !memcmp(o->name, k->name, k->name_len))
			return o;
	}
	if (m->n == M_KEYS)
		abort();
	o = &m->o[m->n++];
	memset(o, 0, sizeof(*o));
	o->pool = k->pool;
	o->pg = k->pg;
	o->name_len = k->name_len;
	memcpy(o->name, k->name, k->name_len);
	return o;
}

static void mobj_grow(struct mobj *o, uint64_t size)
{
	if (size > o->cap) {
		uint64_t cap = MX_MAX(size, o->cap * 2);

		o->data = realloc(o->data, cap);
		if (!o->data)
			abort();
		o->cap = cap;
	}
	if (size > o->size)
		memset(o->data + o->size, 0, size - o->size);
}

static void mobj_xa_clear(struct mobj *o)
{
	for (int j = 0; j < o->n_xa; j++)
		free(o->xa[j].val);
	o->n_xa = 0;
}

static struct mpg *model_pg(struct model *m, int32_t pool, uint32_t pg)
{
	struct mpg *p;

	for (int i = 0; i < m->n_pg; i++)
		if (m->pg[i].pool == pool && m->pg[i].pg == pg)
			return &m->pg[i];
	if (m->n_pg == M_PGS)
		abort();
	p = &m->pg[m->n_pg++];
	memset(p, 0, sizeof(*p));
	p->pool = pool;
	p->pg = pg;
	return p;
}

static uint32_t model_log_max(const struct model *m)
{
	return m->log_max ? m->log_max : MX_PG_LOG_MAX_DEFAULT;
}

static void model_note_req(struct model *m, int32_t pool, uint32_t pg,
			   uint64_t client_id, uint64_t tid)
{
	if ((client_id || tid) && m->n_reqs < M_REQS)
		m->reqs[m->n_reqs++] = (struct mreq){ pool, pg, client_id, tid };
}

/* Drop p's oldest entry; the tail moves up to it. */
static void mpg_pop(struct mpg *p)
{
	if (mx_version_cmp(p->log[0].ver, p->tail) > 0)
		p->tail = p->log[0].ver;
	free(p->log[0].name);
	memmove(&p->log[0], &p->log[1], (size_t)(p->n_log - 1) * sizeof(*p->log));
	p->n_log--;
}

/* Append an entry (newer than all) and apply the bound. */
static void mpg_push(struct model *m, struct mpg *p, struct mx_version v,
		     uint8_t kind, const char *name, uint32_t len,
		     uint64_t client_id, uint64_t tid)
{
	struct ment *e;

	if (p->n_log == p->cap_log) {
		p->cap_log = p->cap_log ? p->cap_log * 2 : 8;
		p->log = realloc(p->log, (size_t)p->cap_log * sizeof(*p->log));
		if (!p->log)
			abort();
	}
	e = &p->log[p->n_log++];
	e->ver = v;
	e->kind = kind;
	e->client_id = client_id;
	e->tid = tid;
	e->name_len = len;
	e->name = mx_xcalloc(1, len + 1);
	memcpy(e->name, name, len);
	p->lu = v;
	while ((uint32_t)p->n_log > model_log_max(m))
		mpg_pop(p);
	model_note_req(m, p->pool, p->pg, client_id, tid);
}

static void model_trim(struct model *m, int32_t pool, uint32_t pg,
		       struct mx_version upto)
{
	struct mpg *p = model_pg(m, pool, pg);

	if (mx_version_cmp(upto, p->lu) > 0)
		upto = p->lu;
	while (p->n_log && mx_version_cmp(p->log[0].ver, upto) <= 0)
		mpg_pop(p);
	if (mx_version_cmp(upto, p->tail) > 0)
		p->tail = upto;
}

static void model_reset(struct model *m, int32_t pool, uint32_t pg,
			const struct mx_pglog_entry *e, size_t n,
			struct mx_version tail)
{
	struct mpg *p = model_pg(m, pool, pg);

	mpg_log_clear(p);
	p->tail = p->lu = tail;
	for (size_t i = 0; i < n; i++)
		mpg_push(m, p, e[i].version, e[i].kind, e[i].name,
			 e[i].name_len, e[i].client_id, e[i].tid);
}

static void model_info(struct model *m, int32_t pool, uint32_t pg,
		       const struct mx_pg_info *in)
{
	struct mpg *p = model_pg(m, pool, pg);

	p->les = in->les;
	p->lec = in->lec;
	p->n_acting = in->n_acting;
	memset(p->acting, 0, sizeof(p->acting));
	memcpy(p->acting, in->acting, in->n_acting * sizeof(p->acting[0]));
	p->flags = in->flags;
	p->wb_lost = in->wb_lost;
}

static void model_remove(struct model *m, int32_t pool, uint32_t pg)
{
	struct mpg *p = model_pg(m, pool, pg);

	for (int i = 0; i < m->n; i++) {
		struct mobj *o = &m->o[i];

		if (o->pool != pool || o->pg != pg)
			continue;
		o->exists = false;
		o->size = 0;
		for (int j = 0; j < o->n_xa; j++)
			free(o->xa[j].val);
		o->n_xa = 0;
	}
	mpg_log_clear(p);
	p->last = p->lu = p->tail = (struct mx_version){ 0, 0 };
	p->les = p->lec = 0;
	p->n_acting = 0;
	memset(p->acting, 0, sizeof(p->acting));
	p->flags = 0;
	p->wb_lost = 0;
}

/* Whether the store should know the PG (store.h). */
static bool model_pg_live(const struct model *m, const struct mpg *p)
{
	for (int i = 0; i < m->n; i++)
		if (m->o[i].pool == p->pool && m->o[i].pg == p->pg &&
		    m->o[i].exists)
			return true;
	return p->n_log || p->last.epoch || p->last.seq || p->lu.epoch ||
	       p->lu.seq || p->tail.epoch || p->tail.seq || p->les ||
	       p->lec || p->n_acting || p->flags || p->wb_lost;
}

static void model_apply(struct model *m, const struct mx_txn *t)
{
	struct mobj *o = model_obj(m, &t->key);
	struct mpg *p;

	for (uint32_t i = 0; i < t->n_ops; i++) {
		const struct mx_txn_op *op = &t->ops[i];
		int j;

		switch (op->type) {
		case MX_TXN_WRITE:
			o->exists = true;
			if (!op->len)
				break;
			mobj_grow(o, op->off + op->len);
			memcpy(o->data + op->off, op->data, op->len);
			o->size = MX_MAX(o->size, op->off + op->len);
			break;
		case MX_TXN_TRUNCATE:
			o->exists = true;
			mobj_grow(o, op->size);
			o->size = op->size;
			break;
		case MX_TXN_REMOVE:
			o->exists = false;
			o->size = 0;
			mobj_xa_clear(o);
			break;
		case MX_TXN_CREATE:
			o->exists = true;
			break;
		case MX_TXN_SETXATTR:
			o->exists = true;
			for (j = 0; j < o->n_xa; j++)
				if (strcmp(o->xa[j].name, op->xname) >= 0)
					break;
			if (j == o->n_xa || strcmp(o->xa[j].name, op->xname)) {
				if (o->n_xa == M_XA)
					abort();
				memmove(&o->xa[j + 1], &o->xa[j],
					(size_t)(o->n_xa - j) * sizeof(o->xa[0]));
				o->n_xa++;
				strcpy(o->xa[j].name, op->xname);
			} else {
				free(o->xa[j].val);
			}
			o->xa[j].val = mx_xcalloc(1, op->len + 1);
			if (op->len)
				memcpy(o->xa[j].val, op->data, op->len);
			o->xa[j].len = op->len;
			break;
		case MX_TXN_RMXATTR:
			for (j = 0; j < o->n_xa; j++)
				if (!strcmp(o->xa[j].name, op->xname))
					break;
			if (j < o->n_xa) {
				free(o->xa[j].val);
				memmove(&o->xa[j], &o->xa[j + 1],
					(size_t)(o->n_xa - j - 1) *
						sizeof(o->xa[0]));
				o->n_xa--;
			}
			break;
		default:
			abort();
		}
	}
	if (o->exists)
		o->ver = t->version;
	p = model_pg(m, t->key.pool, t->key.pg);
	if (mx_version_cmp(t->version, p->last) > 0)
		p->last = t->version;
	if (t->log)
		mpg_push(m, p, t->version,
			 o->exists ? MX_LOG_MODIFY : MX_LOG_DELETE, t->key.name,
			 t->key.name_len, t->client_id, t->tid);
}

/* ---- Comparing a store with the model ----------------------------------- */

struct xa_seen {
	const struct mobj *o;
	int n;
	int bad;
};

static int xa_cb(void *arg, const char *xname, const void *value, uint32_t len)
{
	struct xa_seen *s = arg;

	if (s->n >= s->o->n_xa || strcmp(xname, s->o->xa[s->n].name) ||
	    len != s->o->xa[s->n].len ||
	    (len && memcmp(value, s->o->xa[s->n].val, len)))
		s->bad++;
	s->n++;
	return 0;
}

struct list_seen {
	const struct model *m;
	int n;
	int bad;
	struct mx_objkey prev;
	char prev_name[MX_OBJ_NAME_MAX];
};

static int list_cb(void *arg, const struct mx_objkey *k,
		   const struct mx_obj_stat *os)
{
	struct list_seen *s = arg;
	const struct mobj *o = NULL;

	for (int i = 0; i < s->m->n; i++) {
		const struct mobj *c = &s->m->o[i];

		if (c->pool == k->pool && c->pg == k->pg &&
		    c->name_len == k->name_len &&
		    !memcmp(c->name, k->name, k->name_len))
			o = c;
	}
	if (!o || !o->exists || os->size != o->size ||
	    mx_version_cmp(os->version, o->ver))
		s->bad++;
	if (s->n) {
		/* (pool, pg, name) order */
		int c = s->prev.pool != k->pool ? (s->prev.pool < k->pool ? -1 : 1) :
			s->prev.pg != k->pg ? (s->prev.pg < k->pg ? -1 : 1) :
			0;

		if (!c) {
			c = memcmp(s->prev_name, k->name,
				   MX_MIN(s->prev.name_len, k->name_len));
			if (!c)
				c = s->prev.name_len < k->name_len ? -1 : 1;
		}
		if (c >= 0)
			s->bad++;
	}
	s->prev = *k;
	memcpy(s->prev_name, k->name, k->name_len);
	s->n++;
	return 0;
}

struct walk_seen {
	const struct mpg *p;
	int at; /* the next model entry expected */
	int bad;
};

static int walk_cb(void *arg, const struct mx_pglog_entry *e)
{
	struct walk_seen *s = arg;
	const struct ment *x = s->at < s->p->n_log ? &s->p->log[s->at] : NULL;

	if (!x || mx_version_cmp(e->version, x->ver) || e->kind != x->kind ||
	    e->client_id != x->client_id || e->tid != x->tid ||
	    e->name_len != x->name_len || memcmp(e->name, x->name, x->name_len))
		s->bad++;
	s->at++;
	return 0;
}

struct pgs_seen {
	int32_t pool[64];
	uint32_t pg[64];
	int n;
};

static int pgs_cb(void *arg, int32_t pool, uint32_t pg)
{
	struct pgs_seen *s = arg;

	if (s->n < 64) {
		s->pool[s->n] = pool;
		s->pg[s->n] = pg;
	}
	s->n++;
	return 0;
}

/* A difference found by verify_pgs() or verify(): counted in their bad,
 * printed when loud. */
#define VFAIL(...)                                                             \
	do {                                                                   \
		bad++;                                                         \
		if (loud)                                                      \
			fprintf(stderr, "  verify: " __VA_ARGS__);             \
	} while (0)

/* Compare the PG logs, infos, request index and PG list of st with m.
 * Returns the number of differences; prints them when loud. */
static int verify_pgs(struct mx_store *st, const struct model *m, bool loud)
{
	struct pgs_seen ps = { .n = 0 };
	int bad = 0, live = 0, r;

	for (int i = 0; i < m->n_pg; i++) {
		const struct mpg *p = &m->pg[i];
		bool is_live = model_pg_live(m, p);
		struct walk_seen ws = { .p = p };
		struct mx_pg_info in;

		r = mx_store_pg_info_get(st, p->pool, p->pg, &in);
		live += is_live;
		if (!is_live) {
			static const struct mx_pg_info zi;

			if (r != -ENOENT || memcmp(&in, &zi, sizeof(in)))
				VFAIL("pg %d should be unknown (%d)\n", i, r);
		} else if (r || mx_version_cmp(in.last_update, p->lu) ||
			   mx_version_cmp(in.log_tail, p->tail) ||
			   in.les != p->les || in.lec != p->lec ||
			   in.n_acting != p->n_acting ||
			   memcmp(in.acting, p->acting, sizeof(in.acting)) ||
			   in.flags != p->flags || in.wb_lost != p->wb_lost) {
			VFAIL("pg %d info r=%d lu %llu.%llu/%llu.%llu tail "
			      "%llu.%llu/%llu.%llu les %llu/%llu\n",
			      i, r, (unsigned long long)in.last_update.epoch,
			      (unsigned long long)in.last_update.seq,
			      (unsigned long long)p->lu.epoch,
			      (unsigned long long)p->lu.seq,
			      (unsigned long long)in.log_tail.epoch,
			      (unsigned long long)in.log_tail.seq,
			      (unsigned long long)p->tail.epoch,
			      (unsigned long long)p->tail.seq,
			      (unsigned long long)in.les,
			      (unsigned long long)p->les);
		}
		r = mx_store_pg_log_walk(st, p->pool, p->pg,
					 (struct mx_version){ 0, 0 }, walk_cb,
					 &ws);
		if (r || ws.bad || ws.at != p->n_log)
			VFAIL("pg %d log r=%d bad=%d n=%d/%d\n", i, r, ws.bad,
			      ws.at, p->n_log);
		if (p->n_log > 1) {
			/* From the middle: exactly the newer entries. */
			ws = (struct walk_seen){ .p = p, .at = p->n_log / 2 };
			r = mx_store_pg_log_walk(st, p->pool, p->pg,
						 p->log[p->n_log / 2 - 1].ver,
						 walk_cb, &ws);
			if (r || ws.bad || ws.at != p->n_log)
				VFAIL("pg %d log from the middle\n", i);
		}
	}
	for (int i = 0; i < m->n_reqs; i++) {
		const struct mreq *q = &m->reqs[i];
		const struct mpg *p = NULL;
		struct mx_version v = { 7, 7 }, want = { 0, 0 };
		bool found = false;

		for (int j = 0; j < m->n_pg; j++)
			if (m->pg[j].pool == q->pool && m->pg[j].pg == q->pg)
				p = &m->pg[j];
		for (int j = 0; p && j < p->n_log; j++)
			if (p->log[j].client_id == q->client_id &&
			    p->log[j].tid == q->tid) {
				found = true;
				want = p->log[j].ver;
			}
		r = mx_store_pg_find_req(st, q->pool, q->pg, q->client_id,
					 q->tid, &v);
		if (found ? r || mx_version_cmp(v, want) : r != -ENOENT)
			VFAIL("find_req %d (%llu, %llu): %d\n", i,
			      (unsigned long long)q->client_id,
			      (unsigned long long)q->tid, r);
	}
	r = mx_store_list_pgs(st, pgs_cb, &ps);
	if (r || ps.n != live)
		VFAIL("list_pgs r=%d n=%d/%d\n", r, ps.n, live);
	for (int i = 0; i < MX_MIN(ps.n, 64); i++) {
		bool ok = false;

		for (int j = 0; j < m->n_pg; j++)
			if (m->pg[j].pool == ps.pool[i] &&
			    m->pg[j].pg == ps.pg[i])
				ok = model_pg_live(m, &m->pg[j]);
		if (i && (ps.pool[i - 1] > ps.pool[i] ||
			  (ps.pool[i - 1] == ps.pool[i] &&
			   ps.pg[i - 1] >= ps.pg[i])))
			ok = false;
		if (!ok)
			VFAIL("list_pgs: %d.%u\n", (int)ps.pool[i], ps.pg[i]);
	}
	return bad;
}

/* Compare everything the store shows with m.  Returns the number of
 * differences; prints them when loud. */
static int verify(struct mx_store *st, const struct model *m, bool loud)
{
	struct mx_store_stats ss;
	struct list_seen ls = { .m = m };
	uint64_t objects = 0, bytes = 0, vr = 1;
	int bad = 0, r;

	for (int i = 0; i < m->n; i++) {
		const struct mobj *o = &m->o[i];
		struct mx_objkey k = { o->pool, o->pg, o->name, o->name_len };
		struct mx_obj_stat os;
		struct xa_seen xs = { .o = o };
		uint8_t *buf;
		uint32_t got;

		r = mx_store_stat(st, &k, &os);
		if (!o->exists) {
			if (r != -ENOENT)
				VFAIL("obj %d should be absent (%d)\n", i, r);
			continue;
		}
		objects++;
		bytes += o->size;
		if (r) {
			VFAIL("obj %d stat %d\n", i, r);
			continue;
		}
		if (os.size != o->size || mx_version_cmp(os.version, o->ver))
			VFAIL("obj %d size %llu/%llu ver %llu.%llu/%llu.%llu\n",
			      i, (unsigned long long)os.size,
			      (unsigned long long)o->size,
			      (unsigned long long)os.version.epoch,
			      (unsigned long long)os.version.seq,
			      (unsigned long long)o->ver.epoch,
			      (unsigned long long)o->ver.seq);
		if (os.mtime_ms == 0)
			VFAIL("obj %d mtime 0\n", i);
		/* Room for what the store may hold, right or wrong. */
		buf = mx_xcalloc(1, MX_MAX(os.size, o->size) + 9064);
		r = mx_store_read(st, &k, 0, (uint32_t)o->size + 64, buf, &got);
		if (r || got != o->size ||
		    (o->size && memcmp(buf, o->data, o->size)))
			VFAIL("obj %d read %d got %u of %llu\n", i, r, got,
			      (unsigned long long)o->size);
		if (o->size) {
			uint64_t off = rnd(&vr) % o->size;
			uint32_t len = (uint32_t)(rnd(&vr) % (o->size - off + 9000));

			r = mx_store_read(st, &k, off, len, buf, &got);
			if (r || got != MX_MIN(len, o->size - off) ||
			    memcmp(buf, o->data + off, got))
				VFAIL("obj %d sub-read %d\n", i, r);
		}
		free(buf);
		r = mx_store_listxattrs(st, &k, xa_cb, &xs);
		if (r || xs.bad || xs.n != o->n_xa)
			VFAIL("obj %d xattrs r=%d bad=%d n=%d/%d\n", i, r,
			      xs.bad, xs.n, o->n_xa);
	}
	r = mx_store_list(st, -1, UINT32_MAX, NULL, 0, list_cb, &ls);
	if (r || ls.bad || (uint64_t)ls.n != objects)
		VFAIL("list r=%d bad=%d n=%d/%llu\n", r, ls.bad, ls.n,
		      (unsigned long long)objects);
	for (int i = 0; i < m->n_pg; i++) {
		struct mx_version v =
			mx_store_pg_last(st, m->pg[i].pool, m->pg[i].pg);

		if (mx_version_cmp(v, m->pg[i].last))
			VFAIL("pg %d last %llu.%llu/%llu.%llu\n", i,
			      (unsigned long long)v.epoch,
			      (unsigned long long)v.seq,
			      (unsigned long long)m->pg[i].last.epoch,
			      (unsigned long long)m->pg[i].last.seq);
	}
	bad += verify_pgs(st, m, loud);
	mx_store_get_stats(st, &ss);
	if (ss.objects != objects || ss.bytes != bytes || ss.csum_errors)
		VFAIL("stats objects %llu/%llu bytes %llu/%llu csum %llu\n",
		      (unsigned long long)ss.objects,
		      (unsigned long long)objects,
		      (unsigned long long)ss.bytes, (unsigned long long)bytes,
		      (unsigned long long)ss.csum_errors);
	return bad;
}
#undef VFAIL

/* Queue and commit t, and apply it to the model. */
static int txn_run(struct mx_store *st, struct model *m, const struct mx_txn *t)
{
	int r = mx_store_queue(st, t);

	if (!r)
		r = mx_store_commit(st);
	if (!r)
		model_apply(m, t);
	return r;
}

/* Queue and commit one transaction, and apply it to the model. */
static int do_txn(struct mx_store *st, struct model *m, struct mx_objkey k,
		  struct mx_version v, uint32_t n, const struct mx_txn_op *ops)
{
	struct mx_txn t = { .key = k, .version = v, .n_ops = n, .ops = ops };

	return txn_run(st, m, &t);
}

/* ---- The random workload ------------------------------------------------ */

#define WL_KEYS 7
#define WL_MAX_SIZE 40000u

static const char *const wl_xnames[] = { "user.a", "user.b", "_", "snapset",
					 NULL /* the 255-byte one */ };

struct wl {
	uint64_t rng;
	uint64_t epoch;
	uint64_t seq;
	uint64_t tid;
	char long_name[MX_OBJ_NAME_MAX];
	char bin_name[40];
	char long_xname[MX_XATTR_NAME_MAX + 1];
	struct mx_objkey keys[WL_KEYS];
};

static void wl_init(struct wl *w, uint64_t seed)
{
	memset(w, 0, sizeof(*w));
	w->rng = seed;
	w->epoch = 1;
	memset(w->long_name, 'n', sizeof(w->long_name));
	w->long_name[MX_OBJ_NAME_MAX - 1] = 'z';
	for (unsigned i = 0; i < sizeof(w->bin_name); i++)
		w->bin_name[i] = (char)(1 + (i * 37) % 255);
	memset(w->long_xname, 'x', MX_XATTR_NAME_MAX);
	w->keys[0] = K(1, 0, "a");
	w->keys[1] = K(1, 0, "obj/with/slashes and spaces");
	w->keys[2] = (struct mx_objkey){ 1, 0, w->bin_name, sizeof(w->bin_name) };
	w->keys[3] = (struct mx_objkey){ 1, 7, w->long_name, MX_OBJ_NAME_MAX };
	w->keys[4] = K(1, 7, "b");
	w->keys[5] = K(2, 0, "a");
	w->keys[6] = K(2, 3, "rbd_data.1.0000000000000000");
}

enum { ACT_TXN, ACT_INFO, ACT_TRIM, ACT_RESET, ACT_REMOVE };
#define WL_RESET_MAX 4

/* A generated step: a transaction and the buffers it owns, or a PG
 * update of (pool, pg). */
struct tx {
	int act;
	struct mx_txn t;
	struct mx_txn_op ops[3];
	uint8_t *bufs[3]; /* From malloc() */
	int32_t pool;
	uint32_t pg;
	struct mx_pg_info info;	     /* ACT_INFO */
	struct mx_version ver;	     /* ACT_TRIM bound, ACT_RESET tail */
	struct mx_pglog_entry ents[WL_RESET_MAX]; /* ACT_RESET */
	size_t n_ents;
};

static void tx_free(struct tx *x)
{
	for (int i = 0; i < 3; i++)
		free(x->bufs[i]);
	memset(x, 0, sizeof(*x));
}

/* len random bytes, eight per draw (the sweep regenerates its workload
 * for every cut, so this is much of its time). */
static void fill_rnd(uint64_t *r, uint8_t *p, uint32_t len)
{
	for (uint32_t j = 0; j < len; j += 8) {
		uint64_t v = rnd(r);

		memcpy(p + j, &v, MX_MIN(8u, len - j));
	}
}

static void wl_gen(struct wl *w, struct tx *x)
{
	uint64_t *r = &w->rng;
	uint32_t n = 1 + (uint32_t)(rnd(r) % 3 == 0 ? rnd(r) % 3 : 0);

	memset(x, 0, sizeof(*x));
	x->t.key = w->keys[rnd(r) % WL_KEYS];
	if (rnd(r) % 16 == 0)
		w->epoch++;
	x->t.version = (struct mx_version){ w->epoch, ++w->seq };
	x->t.n_ops = n;
	x->t.ops = x->ops;
	for (uint32_t i = 0; i < n; i++) {
		struct mx_txn_op *op = &x->ops[i];
		unsigned c = (unsigned)(rnd(r) % 100);
		uint32_t len;
		uint64_t off;
		const char *xn;

		if (c < 50) {
			if (rnd(r) % 3 == 0) {
				off = (rnd(r) % 6) * MX_STORE_BLOCK;
				len = MX_STORE_BLOCK * (1 + (uint32_t)(rnd(r) % 2));
			} else {
				off = rnd(r) % 24000;
				len = 1 + (uint32_t)(rnd(r) % 9000);
			}
			if (rnd(r) % 25 == 0)
				len = 0;
			if (off + len > WL_MAX_SIZE)
				len = (uint32_t)(WL_MAX_SIZE - off);
			x->bufs[i] = mx_xcalloc(1, len + 1);
			fill_rnd(r, x->bufs[i], len);
			*op = OPW(off, x->bufs[i], len);
		} else if (c < 62) {
			off = rnd(r) % 2 ? (rnd(r) % 7) * MX_STORE_BLOCK :
					   rnd(r) % 30000;
			*op = OPT(off);
		} else if (c < 68) {
			*op = OPR();
		} else if (c < 84) {
			xn = wl_xnames[rnd(r) % MX_ARRAY_SIZE(wl_xnames)];
			len = (uint32_t)(rnd(r) % 4 == 0 ? rnd(r) % 3000 :
							    rnd(r) % 40);
			x->bufs[i] = mx_xcalloc(1, len + 1);
			fill_rnd(r, x->bufs[i], len);
			*op = OPS(xn ? xn : w->long_xname, x->bufs[i], len);
		} else if (c < 93) {
			xn = wl_xnames[rnd(r) % MX_ARRAY_SIZE(wl_xnames)];
			*op = OPX(xn ? xn : w->long_xname);
		} else {
			*op = OPC();
		}
	}
	/* Most transactions are logged, most of those with a request
	 * identity. */
	if (rnd(r) % 5) {
		x->t.log = true;
		if (rnd(r) % 4) {
			x->t.client_id = 1 + rnd(r) % 3;
			x->t.tid = ++w->tid;
		}
	}
}

/* A PG update: new info, a trim, a log reset or a removal, of one of the
 * workload's PGs.  Reset logs hold versions up to the current one, so that
 * later transactions stay in order. */
static void wl_gen_pg(struct wl *w, struct tx *x)
{
	uint64_t *r = &w->rng;
	const struct mx_objkey *k = &w->keys[rnd(r) % WL_KEYS];
	unsigned c = (unsigned)(rnd(r) % 100);

	memset(x, 0, sizeof(*x));
	x->pool = k->pool;
	x->pg = k->pg;
	if (c < 35) {
		x->act = ACT_INFO;
		if (rnd(r) % 6 == 0)
			return; /* all zero */
		x->info.les = w->epoch;
		x->info.lec = rnd(r) % (w->epoch + 1);
		x->info.n_acting = (uint8_t)(rnd(r) % (MX_PG_ACTING_MAX + 1));
		for (unsigned i = 0; i < x->info.n_acting; i++)
			x->info.acting[i] = (int32_t)(rnd(r) % 12) - 1;
		x->info.flags = rnd(r) % 3 ? (uint32_t)rnd(r) : 0;
		x->info.wb_lost = rnd(r) % 4 ? 0 : rnd(r) % (w->epoch + 1);
		/* Ignored by the store: the log decides them. */
		x->info.last_update = (struct mx_version){ 99, 99 };
	} else if (c < 70) {
		x->act = ACT_TRIM;
		x->ver.epoch = w->epoch > 1 ? w->epoch - rnd(r) % 2 : w->epoch;
		x->ver.seq = rnd(r) % (w->seq + 3);
	} else if (c < 90) {
		uint64_t n = rnd(r) % (WL_RESET_MAX + 1);
		uint64_t span = n + rnd(r) % 4;

		span = MX_MIN(w->seq, span); /* (MX_MIN evaluates twice) */

		x->act = ACT_RESET;
		n = MX_MIN(n, span);
		if (rnd(r) % 4)
			x->ver = (struct mx_version){ w->epoch, w->seq - span };
		for (uint64_t i = 0; i < n; i++) {
			struct mx_pglog_entry *e = &x->ents[i];
			const struct mx_objkey *nk = &w->keys[rnd(r) % WL_KEYS];

			e->version = (struct mx_version){ w->epoch,
							  w->seq - span + 1 + i };
			e->kind = rnd(r) % 3 ? MX_LOG_MODIFY : MX_LOG_DELETE;
			e->name = nk->name;
			e->name_len = nk->name_len;
			if (rnd(r) % 2) {
				e->client_id = 4;
				e->tid = ++w->tid;
			}
		}
		x->n_ents = (size_t)n;
	} else {
		x->act = ACT_REMOVE;
	}
}

/* One step of the workload: mostly transactions, a fifth PG updates. */
static void wl_step(struct wl *w, struct tx *x)
{
	if (rnd(&w->rng) % 5 == 0)
		wl_gen_pg(w, x);
	else
		wl_gen(w, x);
}

static int tx_queue(struct mx_store *st, const struct tx *x)
{
	switch (x->act) {
	case ACT_INFO:
		return mx_store_queue_pg_info(st, x->pool, x->pg, &x->info);
	case ACT_TRIM:
		return mx_store_pg_trim(st, x->pool, x->pg, x->ver);
	case ACT_RESET:
		return mx_store_pg_log_reset(st, x->pool, x->pg, x->ents,
					     x->n_ents, x->ver);
	case ACT_REMOVE:
		return mx_store_pg_remove(st, x->pool, x->pg);
	default:
		return mx_store_queue(st, &x->t);
	}
}

static void tx_model(struct model *m, const struct tx *x)
{
	switch (x->act) {
	case ACT_INFO:
		model_info(m, x->pool, x->pg, &x->info);
		break;
	case ACT_TRIM:
		model_trim(m, x->pool, x->pg, x->ver);
		break;
	case ACT_RESET:
		model_reset(m, x->pool, x->pg, x->ents, x->n_ents, x->ver);
		break;
	case ACT_REMOVE:
		model_remove(m, x->pool, x->pg);
		break;
	default:
		model_apply(m, &x->t);
		break;
	}
}

/* ---- A wrapper over the real system: kill switch and fault injection ---- */

enum wclass { W_WAL_WRITE, W_DATA_WRITE, W_WAL_SYNC, W_FSYNC, W_OTHER, W_N };

struct wrapio {
	struct mx_store_io io;
	bool killed;	  /* every call fails, as if the process died */
	int fail_class;	  /* enum wclass to fail */
	int fail_nth;	  /* fail the nth call of that class (1-based) */
	bool fail_on;	  /* and every one after it */
	int fail_err;
	int count[W_N];
	char is_wal[4096]; /* per fd */
	char is_data[4096];
};

static const struct mx_store_io *sysio = &mx_store_io_default;

/* Count a call of class c; returns the error to inject, or 0. */
static int w_hit(struct wrapio *w, int c)
{
	if (w->killed)
		return -EIO;
	if (++w->count[c] >= w->fail_nth && c == w->fail_class &&
	    (w->count[c] == w->fail_nth || w->fail_on))
		return w->fail_err;
	return 0;
}

static int w_open(void *ctx, const char *path, int flags, mode_t mode)
{
	struct wrapio *w = ctx;
	int fd, r = w_hit(w, W_OTHER);
	size_t n = strlen(path);

	if (r)
		return r;
	fd = sysio->open(NULL, path, flags, mode);
	if (fd >= 0 && fd < 4096) {
		/* A new store's log is opened as wal.tmp and renamed. */
		w->is_wal[fd] = (n >= 4 && !strcmp(path + n - 4, "/wal")) ||
				(n >= 8 && !strcmp(path + n - 8, "/wal.tmp"));
		w->is_data[fd] = n >= 2 && !strcmp(path + n - 2, ".d");
	}
	return fd;
}

static int w_close(void *ctx, int fd)
{
	(void)ctx;
	return sysio->close(NULL, fd); /* a dead process's fds close too */
}

static ssize_t w_pread(void *ctx, int fd, void *buf, size_t len, uint64_t off)
{
	int r = w_hit(ctx, W_OTHER);

	return r ? r : sysio->pread(NULL, fd, buf, len, off);
}

static ssize_t w_pwrite(void *ctx, int fd, const void *buf, size_t len,
			uint64_t off)
{
	struct wrapio *w = ctx;
	int c = fd < 4096 && w->is_wal[fd]  ? W_WAL_WRITE :
		fd < 4096 && w->is_data[fd] ? W_DATA_WRITE :
					      W_OTHER;
	int r = w_hit(w, c);

	return r ? r : sysio->pwrite(NULL, fd, buf, len, off);
}

static int w_fdatasync(void *ctx, int fd)
{
	struct wrapio *w = ctx;
	int r = w_hit(w, fd < 4096 && w->is_wal[fd] ? W_WAL_SYNC : W_FSYNC);

	return r ? r : sysio->fdatasync(NULL, fd);
}

static int w_fsync(void *ctx, int fd)
{
	int r = w_hit(ctx, W_FSYNC);

	return r ? r : sysio->fsync(NULL, fd);
}

static int w_ftruncate(void *ctx, int fd, uint64_t size)
{
	int r = w_hit(ctx, W_OTHER);

	return r ? r : sysio->ftruncate(NULL, fd, size);
}

static int w_fstat_size(void *ctx, int fd, uint64_t *size)
{
	int r = w_hit(ctx, W_OTHER);

	return r ? r : sysio->fstat_size(NULL, fd, size);
}

static int w_rename(void *ctx, const char *from, const char *to)
{
	int r = w_hit(ctx, W_OTHER);

	return r ? r : sysio->rename(NULL, from, to);
}

static int w_unlink(void *ctx, const char *path)
{
	int r = w_hit(ctx, W_OTHER);

	return r ? r : sysio->unlink(NULL, path);
}

static int w_mkdir(void *ctx, const char *path, mode_t mode)
{
	int r = w_hit(ctx, W_OTHER);

	return r ? r : sysio->mkdir(NULL, path, mode);
}

static int w_listdir(void *ctx, const char *path,
		     int (*cb)(void *arg, const char *name), void *arg)
{
	int r = w_hit(ctx, W_OTHER);

	return r ? r : sysio->listdir(NULL, path, cb, arg);
}

static int w_fsync_dir(void *ctx, const char *path)
{
	int r = w_hit(ctx, W_FSYNC);

	return r ? r : sysio->fsync_dir(NULL, path);
}

static int w_clone(void *ctx, int fd, uint64_t off, int src_fd,
		   uint64_t src_off, uint64_t len)
{
	int r = w_hit(ctx, W_DATA_WRITE);

	return r ? r : sysio->clone(NULL, fd, off, src_fd, src_off, len);
}

static int w_syncfs(void *ctx, int fd)
{
	int r = w_hit(ctx, W_FSYNC);

	return r ? r : sysio->syncfs(NULL, fd);
}

static void wrapio_init(struct wrapio *w)
{
	memset(w, 0, sizeof(*w));
	w->io = (struct mx_store_io){ w_open,	   w_close,	w_pread,
				      w_pwrite,	   w_fdatasync, w_fsync,
				      w_ftruncate, w_fstat_size, w_rename,
				      w_unlink,	   w_mkdir,	w_listdir,
				      w_fsync_dir, w };
	w->io.clone = w_clone;
	w->io.syncfs = w_syncfs;
	w->fail_class = -1;
}

/* Close st as a killed process would: nothing more reaches the disk. */
static void kill_store(struct mx_store *st, struct wrapio *w)
{
	w->killed = true;
	mx_store_close(st);
	w->killed = false;
}

/* ---- Test 1: the API on a real folder ----------------------------------- */

struct names {
	char v[16][16];
	int n;
	int stop_at;
};

static int names_cb(void *arg, const struct mx_objkey *k,
		    const struct mx_obj_stat *os)
{
	struct names *s = arg;

	(void)os;
	if (s->n < 16) {
		memcpy(s->v[s->n], k->name, MX_MIN(k->name_len, 15u));
		s->v[s->n][MX_MIN(k->name_len, 15u)] = '\0';
	}
	s->n++;
	return s->n == s->stop_at ? 42 : 0;
}

static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *p = mx_xcalloc(1, len + 1);

	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + seed + (i >> 9));
	return p;
}

static bool read_eq(struct mx_store *st, struct mx_objkey k, uint64_t off,
		    uint32_t len, const uint8_t *want, uint32_t want_len)
{
	uint8_t *buf = mx_xcalloc(1, len + 1);
	uint32_t got = 12345;
	int r = mx_store_read(st, &k, off, len, buf, &got);
	bool ok = !r && got == want_len && !memcmp(buf, want, want_len);

	free(buf);
	return ok;
}

static void test_api(void)
{
	char dir[600];
	struct mx_store *st;
	struct model m = { 0 };
	struct mx_objkey k1 = K(1, 2, "obj1"), k2 = K(1, 2, "obj2");
	struct mx_obj_stat os;
	struct mx_store_stats ss;
	uint8_t *d = pattern(70000, 1), *e = pattern(70000, 99);
	uint8_t zeros[8192] = { 0 };
	uint64_t seq = 0;
	struct mx_txn_op ops[4];
	void *val;
	uint32_t vlen;
	struct names nm;

	tmp_path(dir, sizeof(dir), "api"); /* the store makes the folder */
	CHECK_EQ_INT(mx_store_open(dir, NULL, &st), 0);
	if (!st)
		return;
	CHECK_EQ_INT(mx_store_stat(st, &k1, &os), -ENOENT);

	/* Write, read back whole and in parts. */
	ops[0] = OPW(0, d, 10000);
	CHECK_EQ_INT(do_txn(st, &m, k1, (struct mx_version){ 1, ++seq }, 1, ops), 0);
	CHECK_EQ_INT(mx_store_stat(st, &k1, &os), 0);
	CHECK_EQ_INT(os.size, 10000);
	CHECK_EQ_INT(os.version.seq, 1);
	CHECK(os.mtime_ms > 0);
	CHECK(read_eq(st, k1, 0, 10000, d, 10000));
	CHECK(read_eq(st, k1, 4000, 300, d + 4000, 300));
	CHECK(read_eq(st, k1, 9990, 100, d + 9990, 10));
	CHECK(read_eq(st, k1, 10000, 100, d, 0));
	CHECK(read_eq(st, k1, 20000, 100, d, 0));
	CHECK(read_eq(st, k1, 4096, 4096, d + 4096, 4096));
	CHECK(read_eq(st, k1, 8192, 4096, d + 8192, 10000 - 8192));

	/* Partial overwrite inside one block and across blocks. */
	ops[0] = OPW(5000, e, 100);
	ops[1] = OPW(8000, e + 100, 300);
	CHECK_EQ_INT(do_txn(st, &m, k1, (struct mx_version){ 1, ++seq }, 2, ops), 0);
	CHECK_EQ_INT(verify(st, &m, true), 0);

	/* Append by offset, leaving a hole. */
	ops[0] = OPW(12000, e, 50);
	CHECK_EQ_INT(do_txn(st, &m, k1, (struct mx_version){ 1, ++seq }, 1, ops), 0);
	CHECK(read_eq(st, k1, 10000, 2000, zeros, 2000));
	CHECK(read_eq(st, k1, 12000, 100, e, 50));

	/* Truncate: shrink into a block, grow with zeroes. */
	ops[0] = OPT(4500);
	CHECK_EQ_INT(do_txn(st, &m, k1, (struct mx_version){ 1, ++seq }, 1, ops), 0);
	CHECK_EQ_INT(mx_store_stat(st, &k1, &os), 0);
	CHECK_EQ_INT(os.size, 4500);
	ops[0] = OPT(9000);
	CHECK_EQ_INT(do_txn(st, &m, k1, (struct mx_version){ 1, ++seq }, 1, ops), 0);
	CHECK(read_eq(st, k1, 4500, 4500, zeros, 4500));
	CHECK_EQ_INT(verify(st, &m, true), 0);

	/* Remove, then recreate: nothing of the old object shows. */
	ops[0] = OPS("user.x", "1", 1);
	CHECK_EQ_INT(do_txn(st, &m, k1, (struct mx_version){ 1, ++seq }, 1, ops), 0);
	ops[0] = OPR();
	CHECK_EQ_INT(do_txn(st, &m, k1, (struct mx_version){ 2, ++seq }, 1, ops), 0);
	CHECK_EQ_INT(mx_store_stat(st, &k1, &os), -ENOENT);
	CHECK_EQ_INT(mx_store_read(st, &k1, 0, 10, zeros, &vlen), -ENOENT);
	CHECK_EQ_INT(mx_store_getxattr(st, &k1, "user.x", &val, &vlen), -ENOENT);
	CHECK_EQ_INT(mx_store_pg_last(st, 1, 2).epoch, 2);
	ops[0] = OPW(0, e, 10);
	ops[1] = OPT(6000);
	CHECK_EQ_INT(do_txn(st, &m, k1, (struct mx_version){ 2, ++seq }, 2, ops), 0);
	CHECK(read_eq(st, k1, 0, 10, e, 10));
	CHECK(read_eq(st, k1, 10, 5990, zeros, 5990));
	CHECK_EQ_INT(mx_store_getxattr(st, &k1, "user.x", &val, &vlen), -ENODATA);
	/* Remove and write again in one transaction, at an offset. */
	ops[0] = OPR();
	ops[1] = OPW(100, d, 20);
	CHECK_EQ_INT(do_txn(st, &m, k1, (struct mx_version){ 2, ++seq }, 2, ops), 0);
	CHECK(read_eq(st, k1, 0, 100, zeros, 100));
	CHECK_EQ_INT(verify(st, &m, true), 0);

	/* Attributes. */
	ops[0] = OPS("b", "beta", 4);
	ops[1] = OPS("a", "alpha", 5);
	ops[2] = OPS("c", NULL, 0);
	ops[3] = OPS("b", "BETA", 4);
	CHECK_EQ_INT(do_txn(st, &m, k2, (struct mx_version){ 2, ++seq }, 4, ops), 0);
	CHECK_EQ_INT(mx_store_stat(st, &k2, &os), 0); /* setxattr creates */
	CHECK_EQ_INT(os.size, 0);
	CHECK_EQ_INT(mx_store_getxattr(st, &k2, "b", &val, &vlen), 0);
	CHECK(vlen == 4 && !memcmp(val, "BETA", 4));
	free(val);
	CHECK_EQ_INT(mx_store_getxattr(st, &k2, "c", &val, &vlen), 0);
	CHECK_EQ_INT(vlen, 0);
	free(val);
	CHECK_EQ_INT(mx_store_getxattr(st, &k2, "d", &val, &vlen), -ENODATA);
	ops[0] = OPX("b");
	ops[1] = OPX("nope");
	CHECK_EQ_INT(do_txn(st, &m, k2, (struct mx_version){ 2, ++seq }, 2, ops), 0);
	CHECK_EQ_INT(mx_store_getxattr(st, &k2, "b", &val, &vlen), -ENODATA);
	{
		uint8_t *big = pattern(MX_XATTR_VALUE_MAX, 5);

		ops[0] = OPS("big", big, MX_XATTR_VALUE_MAX);
		CHECK_EQ_INT(do_txn(st, &m, k2, (struct mx_version){ 2, ++seq }, 1, ops), 0);
		CHECK_EQ_INT(mx_store_getxattr(st, &k2, "big", &val, &vlen), 0);
		CHECK(vlen == MX_XATTR_VALUE_MAX && !memcmp(val, big, vlen));
		free(val);
		free(big);
	}
	/* rmxattr of an absent object does not create it. */
	{
		struct mx_objkey k3 = K(1, 2, "ghost");

		ops[0] = OPX("a");
		CHECK_EQ_INT(do_txn(st, &m, k3, (struct mx_version){ 2, ++seq }, 1, ops), 0);
		CHECK_EQ_INT(mx_store_stat(st, &k3, &os), -ENOENT);
		ops[0] = OPR();
		CHECK_EQ_INT(do_txn(st, &m, k3, (struct mx_version){ 2, ++seq }, 1, ops), 0);
		CHECK_EQ_INT(mx_store_pg_last(st, 1, 2).seq, seq);
	}
	/* Create: empty if absent, no change if present. */
	ops[0] = OPC();
	CHECK_EQ_INT(do_txn(st, &m, k1, (struct mx_version){ 2, ++seq }, 1, ops), 0);
	CHECK_EQ_INT(mx_store_stat(st, &k1, &os), 0);
	CHECK_EQ_INT(os.size, 120);
	CHECK_EQ_INT(verify(st, &m, true), 0);

	/* Staged transactions: invisible until committed. */
	{
		struct mx_txn t = { .key = k1, .version = { 3, ++seq },
				    .n_ops = 1, .ops = ops };
		struct mx_txn t2 = { .key = K(1, 2, "new"),
				     .version = { 3, ++seq }, .n_ops = 1,
				     .ops = ops };

		ops[0] = OPW(0, e, 1000);
		CHECK_EQ_INT(mx_store_queue(st, &t), 0);
		CHECK_EQ_INT(mx_store_queue(st, &t2), 0);
		CHECK(mx_store_pending(st, &k1));
		CHECK(mx_store_pending(st, &t2.key));
		CHECK(!mx_store_pending(st, &k2));
		CHECK_EQ_INT(mx_store_pending_count(st), 2);
		CHECK_EQ_INT(mx_store_stat(st, &t2.key, &os), -ENOENT);
		CHECK(read_eq(st, k1, 100, 20, d, 20));
		/* A checkpoint with staged transactions keeps them. */
		CHECK_EQ_INT(mx_store_checkpoint(st), 0);
		CHECK_EQ_INT(mx_store_commit(st), 0);
		model_apply(&m, &t);
		model_apply(&m, &t2);
		CHECK(!mx_store_pending(st, &k1));
		CHECK_EQ_INT(mx_store_pending_count(st), 0);
		CHECK(read_eq(st, k1, 0, 1000, e, 1000));
		CHECK_EQ_INT(mx_store_commit(st), 0); /* nothing staged */
	}

	/* A larger object, unaligned everything, and a sparse one. */
	{
		struct mx_objkey kb = K(1, 3, "big");
		uint8_t *big = pattern(1 << 20, 3);

		ops[0] = OPW(777, big, 1 << 20);
		ops[1] = OPW(64ull << 20, "tail", 4);
		CHECK_EQ_INT(do_txn(st, &m, kb, (struct mx_version){ 3, ++seq }, 2, ops), 0);
		CHECK(read_eq(st, kb, 777 + 5000, 70000, big + 5000, 70000));
		CHECK(read_eq(st, kb, 32ull << 20, 8192, zeros, 8192));
		CHECK(read_eq(st, kb, (64ull << 20) - 2, 100,
			      (const uint8_t *)"\0\0tail", 6));
		free(big);
	}

	/* Listing: order, cursor, early stop, other PGs and pools. */
	for (int i = 0; i < 10; i++) {
		char nbuf[8];

		(void)snprintf(nbuf, sizeof(nbuf), "k%02d", 9 - i);
		ops[0] = OPW(0, nbuf, 3);
		CHECK_EQ_INT(do_txn(st, &m, K(5, 1, nbuf), (struct mx_version){ 3, ++seq },
				    1, ops), 0);
	}
	ops[0] = OPC();
	CHECK_EQ_INT(do_txn(st, &m, K(5, 0, "z"), (struct mx_version){ 3, ++seq }, 1, ops), 0);
	CHECK_EQ_INT(do_txn(st, &m, K(6, 0, "a"), (struct mx_version){ 3, ++seq }, 1, ops), 0);
	memset(&nm, 0, sizeof(nm));
	CHECK_EQ_INT(mx_store_list(st, 5, 1, NULL, 0, names_cb, &nm), 0);
	CHECK_EQ_INT(nm.n, 10);
	CHECK(!strcmp(nm.v[0], "k00") && !strcmp(nm.v[9], "k09"));
	memset(&nm, 0, sizeof(nm));
	CHECK_EQ_INT(mx_store_list(st, 5, 1, "k04", 3, names_cb, &nm), 0);
	CHECK_EQ_INT(nm.n, 5);
	CHECK(!strcmp(nm.v[0], "k05"));
	memset(&nm, 0, sizeof(nm));
	CHECK_EQ_INT(mx_store_list(st, 5, 1, "k045", 4, names_cb, &nm), 0);
	CHECK_EQ_INT(nm.n, 5);
	memset(&nm, 0, sizeof(nm));
	nm.stop_at = 3;
	CHECK_EQ_INT(mx_store_list(st, 5, 1, NULL, 0, names_cb, &nm), 42);
	CHECK_EQ_INT(nm.n, 3);
	memset(&nm, 0, sizeof(nm));
	CHECK_EQ_INT(mx_store_list(st, 5, UINT32_MAX, NULL, 0, names_cb, &nm), 0);
	CHECK_EQ_INT(nm.n, 11);
	CHECK(!strcmp(nm.v[0], "z")); /* pg 0 before pg 1 */
	memset(&nm, 0, sizeof(nm));
	CHECK_EQ_INT(mx_store_list(st, 5, 9, NULL, 0, names_cb, &nm), 0);
	CHECK_EQ_INT(nm.n, 0);
	CHECK_EQ_INT(verify(st, &m, true), 0);

	/* Versions: pg_last keeps the highest, removals included. */
	CHECK_EQ_INT(mx_store_pg_last(st, 5, 1).seq, seq - 2);
	CHECK_EQ_INT(mx_store_pg_last(st, 9, 9).seq, 0);
	ops[0] = OPR();
	CHECK_EQ_INT(do_txn(st, &m, K(5, 0, "z"), (struct mx_version){ 4, ++seq }, 1, ops), 0);
	CHECK_EQ_INT(mx_store_pg_last(st, 5, 0).epoch, 4);

	mx_store_get_stats(st, &ss);
	CHECK(ss.commits > 20);
	CHECK(ss.checkpoints >= 2); /* open, and the explicit one */
	CHECK(ss.wal_bytes > 0);
	CHECK_EQ_INT(mx_store_checkpoint(st), 0);
	mx_store_get_stats(st, &ss);
	CHECK_EQ_INT(ss.wal_bytes, 0);

	/* Reopen after a clean close: everything is the same. */
	mx_store_close(st);
	CHECK_EQ_INT(mx_store_open(dir, NULL, &st), 0);
	if (st) {
		CHECK_EQ_INT(verify(st, &m, true), 0);
		CHECK_EQ_INT(mx_store_pg_last(st, 5, 0).epoch, 4);
		mx_store_close(st);
	}
	model_free(&m);
	free(d);
	free(e);
}

/* Reopen in each way a process can stop, with the random workload. */
static void test_reopen(void)
{
	static const char *const modes[] = { "clean close", "checkpoint+kill",
					     "kill", "tiny log + kill" };

	for (int mode = 0; mode < 4; mode++) {
		char dir[600], leaf[64];
		struct mx_store_opts opts = { 0 };
		struct wrapio w;
		struct model m = { 0 };
		struct mx_store *st;
		struct mx_store_stats ss;
		struct wl wl;

		(void)snprintf(leaf, sizeof(leaf), "reopen%d", mode);
		tmp_path(dir, sizeof(dir), leaf);
		wrapio_init(&w);
		opts.io = &w.io;
		if (mode == 3) {
			opts.wal_checkpoint_bytes = 9000;
			opts.pg_log_max = 5;
			m.log_max = 5;
		}
		wl_init(&wl, 1000 + (uint64_t)mode);
		CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
		if (!st)
			continue;
		for (int round = 0; round < 3; round++) {
			for (int i = 0; i < 40; i++) {
				struct tx x[3];
				int n = 1 + (int)(rnd(&wl.rng) % 3);

				for (int j = 0; j < n; j++) {
					wl_step(&wl, &x[j]);
					CHECK_EQ_INT(tx_queue(st, &x[j]), 0);
				}
				CHECK_EQ_INT(mx_store_commit(st), 0);
				for (int j = 0; j < n; j++) {
					tx_model(&m, &x[j]);
					tx_free(&x[j]);
				}
			}
			if (mode == 3) {
				mx_store_get_stats(st, &ss);
				CHECK(ss.checkpoints > 5);
			}
			if (mode == 1)
				CHECK_EQ_INT(mx_store_checkpoint(st), 0);
			if (mode == 0)
				mx_store_close(st);
			else
				kill_store(st, &w);
			CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
			if (!st)
				break;
			if (verify(st, &m, true))
				fprintf(stderr, "test_reopen: mode '%s' round %d\n",
					modes[mode], round);
			CHECK_EQ_INT(verify(st, &m, false), 0);
		}
		mx_store_close(st);
		model_free(&m);
	}
}

/* Many objects: more than the store keeps files open for (256), more
 * than the index's first table (1024), in 13 PGs. */
#define MANY 1500
#define MANY_PGS 41 /* more than a checkpoint takes at once (CKPT_CHUNK) */

static void many_expect(int i, uint8_t *buf)
{
	for (int j = 0; j < 300; j++)
		buf[j] = (uint8_t)(i * 31 + j);
	if (i % 3 == 0)
		memset(buf + 10, 0xee, 10);
}

static int many_check(struct mx_store *st)
{
	uint8_t want[300], got_buf[400];
	int bad = 0;

	for (int i = 0; i < MANY; i++) {
		char name[16];
		struct mx_objkey k;
		uint32_t got;
		int r;

		(void)snprintf(name, sizeof(name), "m%05d", i);
		k = K(4, (uint32_t)(i % MANY_PGS), name);
		r = mx_store_read(st, &k, (uint64_t)(i % 5000), 400, got_buf, &got);
		if (i % 7 == 0) {
			bad += r != -ENOENT;
			continue;
		}
		many_expect(i, want);
		bad += r || got != 300 || memcmp(got_buf, want, 300);
	}
	return bad;
}

static int count_cb(void *arg, const struct mx_objkey *k,
		    const struct mx_obj_stat *os)
{
	(void)k;
	(void)os;
	(*(int *)arg)++;
	return 0;
}

static void test_many(void)
{
	char dir[600];
	struct mx_store *st;
	struct mx_store_stats ss;
	uint8_t data[300];
	int n = 0, live = 0;
	uint64_t bytes = 0, last[MANY_PGS] = { 0 };

	tmp_path(dir, sizeof(dir), "many");
	CHECK_EQ_INT(mx_store_open(dir, NULL, &st), 0);
	if (!st)
		return;
	for (int pass = 0; pass < 3; pass++) {
		for (int i = 0; i < MANY; i++) {
			char name[16];
			struct mx_txn_op op;
			struct mx_txn t;

			if ((pass == 1 && i % 3) || (pass == 2 && i % 7))
				continue;
			(void)snprintf(name, sizeof(name), "m%05d", i);
			for (int j = 0; j < 300; j++)
				data[j] = (uint8_t)(i * 31 + j);
			if (pass == 0)
				op = OPW((uint64_t)(i % 5000), data, 300);
			else if (pass == 1)
				op = OPW((uint64_t)(i % 5000) + 10, data + 200, 10);
			else
				op = OPR();
			if (pass == 1)
				memset(data + 200, 0xee, 10);
			t = (struct mx_txn){
				.key = K(4, (uint32_t)(i % MANY_PGS), name),
				.version = { 1, (uint64_t)(pass * MANY + i + 1) },
				.n_ops = 1,
				.ops = &op,
				/* Logged: every PG's pg file is written at
				 * the checkpoint. */
				.log = true,
				.client_id = 9,
				.tid = (uint64_t)(pass * MANY + i + 1)
			};
			CHECK_EQ_INT(mx_store_queue(st, &t), 0);
			last[i % MANY_PGS] = t.version.seq;
			if (i % 50 == 49)
				CHECK_EQ_INT(mx_store_commit(st), 0);
		}
		CHECK_EQ_INT(mx_store_commit(st), 0);
	}
	for (int i = 0; i < MANY; i++) {
		if (i % 7 == 0)
			continue;
		live++;
		bytes += (uint64_t)(i % 5000) + 300;
	}
	CHECK_EQ_INT(many_check(st), 0);
	CHECK_EQ_INT(mx_store_list(st, 4, UINT32_MAX, NULL, 0, count_cb, &n), 0);
	CHECK_EQ_INT(n, live);
	mx_store_close(st);
	CHECK_EQ_INT(mx_store_open(dir, NULL, &st), 0);
	if (!st)
		return;
	CHECK_EQ_INT(many_check(st), 0);
	mx_store_get_stats(st, &ss);
	CHECK_EQ_INT(ss.objects, live);
	CHECK_EQ_INT(ss.bytes, bytes);
	/* Per-PG usage adds up to the store's. */
	{
		uint64_t po = 0, pb = 0;

		for (uint32_t pg = 0; pg <= MANY_PGS; pg++) {
			uint64_t o, b;

			mx_store_pg_usage(st, 4, pg, &o, &b);
			po += o;
			pb += b;
		}
		CHECK_EQ_INT(po, live);
		CHECK_EQ_INT(pb, bytes);
	}
	/* Every PG's pg file came back, the last chunk's too. */
	for (uint32_t pg = 0; pg < MANY_PGS; pg++) {
		struct mx_pg_info info;

		CHECK_EQ_INT(mx_store_pg_info_get(st, 4, pg, &info), 0);
		CHECK_EQ_INT(info.last_update.seq, last[pg]);
	}
	mx_store_close(st);
}

/* ---- Test 3: bit rot and damaged files ---------------------------------- */

/* Path of the (last) file under dir/pgs/<pgdir> whose name starts with
 * prefix and ends in suffix. */
static bool find_file(const char *dir, const char *pgdir, const char *prefix,
		      const char *suffix, char *out, size_t outsz)
{
	char path[700];
	struct dirent *de;
	bool found = false;
	DIR *d;

	(void)snprintf(path, sizeof(path), "%s/pgs/%s", dir, pgdir);
	d = opendir(path);
	if (!d)
		return false;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name), m = strlen(suffix);

		if (!strncmp(de->d_name, prefix, strlen(prefix)) && n >= m &&
		    !strcmp(de->d_name + n - m, suffix) &&
		    snprintf(out, outsz, "%s/%s", path, de->d_name) < (int)outsz)
			found = true;
	}
	(void)closedir(d);
	return found;
}

static void flip_byte(const char *path, uint64_t off, uint8_t mask)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	uint8_t b = 0;

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK_EQ_INT(pread(fd, &b, 1, (off_t)off), 1);
	b ^= mask;
	CHECK_EQ_INT(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

static void test_bitrot(void)
{
	char dir[600], path[800];
	struct mx_store *st;
	struct mx_objkey k = K(3, 4, "rotten");
	struct mx_store_stats ss;
	struct model m = { 0 };
	struct mx_txn_op op;
	uint8_t *d = pattern(3 * 4096 + 100, 7), *buf = mx_xcalloc(1, 20000);
	uint32_t got;

	tmp_path(dir, sizeof(dir), "bitrot");
	CHECK_EQ_INT(mx_store_open(dir, NULL, &st), 0);
	if (!st)
		return;
	op = OPW(0, d, 3 * 4096 + 100);
	CHECK_EQ_INT(do_txn(st, &m, k, (struct mx_version){ 1, 1 }, 1, &op), 0);
	mx_store_close(st);

	CHECK(find_file(dir, "00000003.00000004", "", ".d", path, sizeof(path)));
	flip_byte(path, 4096 + 1234, 0x10);
	CHECK_EQ_INT(mx_store_open(dir, NULL, &st), 0);
	if (!st)
		return;
	memset(buf, 0xaa, 20000);
	CHECK_EQ_INT(mx_store_read(st, &k, 4096 + 1000, 10, buf, &got), -EIO);
	CHECK_EQ_INT(got, 0);
	CHECK_EQ_INT(buf[0], 0); /* no bad bytes handed out */
	CHECK_EQ_INT(mx_store_read(st, &k, 0, 20000, buf, &got), -EIO);
	CHECK(read_eq(st, k, 0, 4096, d, 4096));
	CHECK(read_eq(st, k, 8192, 9000, d + 8192, 4096 + 100));
	CHECK(read_eq(st, k, 100, 3996, d + 100, 3996));
	mx_store_get_stats(st, &ss);
	CHECK_EQ_INT(ss.csum_errors, 2);
	/* Rewriting the damaged block heals it. */
	op = OPW(4096, d + 4096, 4096);
	CHECK_EQ_INT(do_txn(st, &m, k, (struct mx_version){ 1, 2 }, 1, &op), 0);
	CHECK(read_eq(st, k, 0, 20000, d, 3 * 4096 + 100));
	mx_store_close(st);

	/* Damaged metadata: the store refuses to open. */
	CHECK(find_file(dir, "00000003.00000004", "", ".m", path, sizeof(path)));
	flip_byte(path, 20, 0x01);
	CHECK_EQ_INT(mx_store_open(dir, NULL, &st), -EUCLEAN);
	flip_byte(path, 20, 0x01);
	CHECK_EQ_INT(mx_store_open(dir, NULL, &st), 0);
	if (st) {
		CHECK_EQ_INT(verify(st, &m, true), 0);
		mx_store_close(st);
	}

	/* A damaged log header: -EUCLEAN. */
	(void)snprintf(path, sizeof(path), "%s/wal", dir);
	flip_byte(path, 0, 0xff);
	flip_byte(path, 512, 0xff);
	CHECK_EQ_INT(mx_store_open(dir, NULL, &st), -EUCLEAN);
	free(d);
	free(buf);
	model_free(&m);
}

/* Damage inside the log: in a frame followed by valid ones it is detected;
 * in the last frame it cannot be told from a torn write (documented). */
static void test_log_damage(void)
{
	for (int last = 0; last < 2; last++) {
		char dir[600], path[700];
		struct mx_store_opts opts = { 0 };
		struct wrapio w;
		struct mx_store *st;
		struct model m = { 0 };
		struct mx_txn_op op;
		uint8_t *d = pattern(3000, 11);
		uint64_t frame_off[3], off = 4096;

		tmp_path(dir, sizeof(dir), last ? "logdmg1" : "logdmg0");
		wrapio_init(&w);
		opts.io = &w.io;
		CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
		if (!st)
			return;
		for (int i = 0; i < 3; i++) {
			struct mx_store_stats ss;

			frame_off[i] = off;
			op = OPW(0, d, 1000 + 1000 * (uint32_t)i);
			CHECK_EQ_INT(do_txn(st, &m, K(1, 1, "x"),
					    (struct mx_version){ 1, (uint64_t)i + 1 },
					    1, &op), 0);
			mx_store_get_stats(st, &ss);
			off = 4096 + ss.wal_bytes;
		}
		kill_store(st, &w);
		(void)snprintf(path, sizeof(path), "%s/wal", dir);
		flip_byte(path, frame_off[last ? 2 : 0] + 200, 0x04);
		if (!last) {
			CHECK_EQ_INT(mx_store_open(dir, NULL, &st), -EUCLEAN);
		} else {
			CHECK_EQ_INT(mx_store_open(dir, NULL, &st), 0);
			if (st) {
				struct mx_obj_stat os;
				struct mx_objkey k = K(1, 1, "x");

				CHECK_EQ_INT(mx_store_stat(st, &k, &os), 0);
				CHECK_EQ_INT(os.size, 2000);
				mx_store_close(st);
			}
		}
		model_free(&m);
		free(d);
	}
}

/* ---- Unsynced commits (docs/cache-modes.md) ------------------------------ */

/* Queue one logged write of len bytes to name at version (1, seq), with
 * request identity (7, seq). */
/* One logged WRITE of d at off of k, staged at version 1.seq, with the
 * request identity (client, seq) unless client is 0. */
static void queue_write(struct mx_store *st, struct mx_objkey k, uint64_t seq,
			uint64_t off, const uint8_t *d, uint32_t len,
			uint64_t client)
{
	struct mx_txn_op op = OPW(off, d, len);
	struct mx_txn t = { .key = k,
			    .version = { 1, seq },
			    .n_ops = 1,
			    .ops = &op,
			    .log = true,
			    .client_id = client,
			    .tid = client ? seq : 0 };

	CHECK_EQ_INT(mx_store_queue(st, &t), 0);
}

static void wb_queue(struct mx_store *st, const char *name, uint64_t seq,
		     const uint8_t *d, uint32_t len)
{
	queue_write(st, K(1, 1, name), seq, 0, d, len, 7);
}

static int wb_count_cb(void *arg, const struct mx_pglog_entry *e)
{
	(void)e;
	(*(int *)arg)++;
	return 0;
}

/* Unsynced transactions are pending and invisible until a sync; find_req
 * sees them; a PG walk syncs; a kill (the page cache survives) keeps
 * them; a lost unsynced frame followed by an intact later one replays as
 * a prefix; a damaged synced frame followed by one written after its sync
 * is still damage. */
/* The write-back hint: given to the io for a write of 64 KiB or more as
 * it reaches the object's file, not for a small one, and not when replay
 * applies the same write again after a crash. */
static unsigned wb_hints;
static uint64_t wb_hint_len;

static void count_writeback(void *ctx, int fd, uint64_t off, uint64_t len)
{
	(void)ctx;
	(void)fd;
	(void)off;
	wb_hints++;
	wb_hint_len = len;
}

static void test_writeback_hint(void)
{
	const uint32_t big = 128u << 10;
	uint8_t *d = pattern(big, 3);
	struct mx_store_opts opts = { 0 };
	struct mx_obj_stat os;
	struct mx_objkey kb = K(1, 1, "big");
	struct wrapio w;
	struct mx_store *st;
	char dir[600];

	tmp_path(dir, sizeof(dir), "wbhint");
	wrapio_init(&w);
	w.io.writeback = count_writeback;
	opts.io = &w.io;
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		goto out;
	wb_queue(st, "big", 1, d, big);
	wb_queue(st, "small", 2, d, 4096);
	CHECK_EQ_INT(mx_store_commit(st), 0);
	CHECK_EQ_INT(wb_hints, 1);
	CHECK_EQ_INT(wb_hint_len, big);
	kill_store(st, &w); /* the log replays at the next open */
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		goto out;
	CHECK_EQ_INT(wb_hints, 1);
	CHECK_EQ_INT(mx_store_stat(st, &kb, &os), 0);
	CHECK_EQ_INT(os.size, big);
	/* An unsynced frame that large starts its own write-back, over the
	 * whole frame; a small one does not. */
	wb_queue(st, "small", 3, d, 4096);
	CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
	CHECK_EQ_INT(wb_hints, 1);
	wb_queue(st, "big", 4, d, big);
	CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
	CHECK_EQ_INT(wb_hints, 2);
	CHECK(wb_hint_len > big);
	mx_store_close(st);
out:
	free(d);
}

/* The default I/O's sync_many, which a checkpoint syncs its files and
 * folders with, from several threads: 0 when every one syncs, and an
 * error that any one of them meets, wherever it is in the lists. */
static void test_sync_many(void)
{
	const struct mx_store_io *io = &mx_store_io_default;
	enum { N = 40 };
	int fds[N];
	char dir[600], path[700], missing[700];
	const char *dirs[2];

	tmp_path(dir, sizeof(dir), "syncmany");
	CHECK_EQ_INT(mkdir(dir, 0755), 0);
	for (int i = 0; i < N; i++) {
		(void)snprintf(path, sizeof(path), "%s/f%d", dir, i);
		fds[i] = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		CHECK(fds[i] >= 0);
		CHECK(pwrite(fds[i], path, strlen(path), 0) == (ssize_t)strlen(path));
	}
	(void)snprintf(missing, sizeof(missing), "%s/none", dir);
	dirs[0] = dir;
	dirs[1] = missing;
	CHECK_EQ_INT(io->sync_many(io->ctx, NULL, 0, NULL, 0), 0);
	CHECK_EQ_INT(io->sync_many(io->ctx, fds, N, dirs, 1), 0);
	CHECK_EQ_INT(io->sync_many(io->ctx, fds, 1, NULL, 0), 0);
	CHECK_EQ_INT(io->sync_many(io->ctx, fds, N, dirs, 2), -ENOENT);
	{
		int bad = fds[N / 2];

		fds[N / 2] = -1;
		CHECK_EQ_INT(io->sync_many(io->ctx, fds, N, dirs, 1), -EBADF);
		fds[N / 2] = bad;
	}
	for (int i = 0; i < N; i++)
		(void)close(fds[i]);
}

/* Write-back frames of 700 KiB, then of 4 KiB, each synced after: the
 * buffers kept for reuse stay within the staging frame's 8 MiB and the
 * spares' 1 MiB (sixteen spares of 1 MiB each were kept before), and
 * every object reads back whole. */
static void test_wb_kept(void)
{
	const uint32_t big = 700u << 10;
	uint8_t *d = pattern(big, 9);
	char dir[600], name[32];
	struct mx_store_stats ss;
	struct mx_obj_stat os;
	struct mx_store *st;
	uint64_t seq = 0;

	tmp_path(dir, sizeof(dir), "wbkept");
	CHECK_EQ_INT(mx_store_open(dir, NULL, &st), 0);
	if (!st)
		goto out;
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 24; i++) {
			(void)snprintf(name, sizeof(name), "o%d.%d", round, i);
			wb_queue(st, name, ++seq, d, round ? 4096 : big);
			if (round == 0 && i == 0) {
				/* The staging frame is sized to its record, not
				 * doubled to the next power of two. */
				mx_store_get_stats(st, &ss);
				CHECK(ss.kept_bytes < big + 8192);
			}
			CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
		}
		CHECK_EQ_INT(mx_store_sync(st), 0);
		mx_store_get_stats(st, &ss);
		CHECK(ss.kept_bytes <= (8u << 20) + (1u << 20));
	}
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 24; i++) {
			struct mx_objkey k;

			(void)snprintf(name, sizeof(name), "o%d.%d", round, i);
			k = K(1, 1, name);
			CHECK_EQ_INT(mx_store_stat(st, &k, &os), 0);
			CHECK_EQ_INT(os.size, round ? 4096 : big);
		}
	mx_store_close(st);
out:
	free(d);
}

static void clone_queue(struct mx_store *st, const char *name, uint64_t seq,
			uint64_t off, const uint8_t *d, uint32_t len)
{
	queue_write(st, K(1, 3, name), seq, off, d, len, 0);
}

#define CL_N 12
#define CL_OBJ (1u << 20)

static void clone_check(struct mx_store *st, uint8_t *const want[CL_N],
			const char *when)
{
	for (int i = 0; i < CL_N; i++) {
		char name[16];

		(void)snprintf(name, sizeof(name), "c%d", i);
		if (!read_eq(st, K(1, 3, name), 0, CL_OBJ, want[i], CL_OBJ)) {
			fprintf(stderr, "clone on XFS: %s differs %s\n", name, when);
			CHECK(!"an object written by clones reads back");
			return;
		}
	}
}

/* Large writes written once, on a filesystem that clones: XFS with
 * reflinks on a loop device over a file in the test's folder (root; the
 * test is skipped without it, and fails without mkfs.xfs, which
 * scripts/install-deps.sh installs).  Whole-block writes of 64 KiB and
 * more are applied by cloning the log's blocks, and what they wrote stays
 * right while the log's blocks are written over again and again (an
 * 8 MiB log checkpoints and starts again from the top every few writes),
 * after a clean reopen, and after a kill that leaves them to replay, which
 * clones them again. */
static void test_clone_xfs(void)
{
	struct mx_store_opts o = { .wal_checkpoint_bytes = 8u << 20 };
	char img[600], mnt[600], dir[700], cmd[3200], name[16];
	uint8_t *want[CL_N], *p;
	struct mx_store_stats ss;
	struct mx_store *st = NULL;
	struct wrapio w;
	uint64_t seq = 0;

	if (geteuid() != 0) {
		fprintf(stderr, "clone on XFS: skipped (needs root for a loop mount)\n");
		return;
	}
	tmp_path(img, sizeof(img), "xfs.img");
	tmp_path(mnt, sizeof(mnt), "xfs");
	(void)snprintf(cmd, sizeof(cmd),
		       "truncate -s 1G %s && mkfs.xfs -q -m reflink=1 %s && "
		       "mkdir -p %s && mount -o loop %s %s",
		       img, img, mnt, img, mnt);
	if (system(cmd) != 0) {
		CHECK(!"an XFS file system on a loop device (mkfs.xfs, mount)");
		return;
	}
	(void)snprintf(dir, sizeof(dir), "%s/s", mnt);
	wrapio_init(&w);
	o.io = &w.io;
	CHECK_EQ_INT(mx_store_open(dir, &o, &st), 0);
	if (!st)
		goto out;
	/* Whole objects, durable commits; then the middle half of each,
	 * unsynced, and a small write that is copied. */
	for (int i = 0; i < CL_N; i++) {
		(void)snprintf(name, sizeof(name), "c%d", i);
		want[i] = pattern(CL_OBJ, (unsigned)i);
		clone_queue(st, name, ++seq, 0, want[i], CL_OBJ);
		CHECK_EQ_INT(mx_store_commit(st), 0);
	}
	for (int i = 0; i < CL_N; i++) {
		(void)snprintf(name, sizeof(name), "c%d", i);
		p = pattern(CL_OBJ / 2, 100u + (unsigned)i);
		memcpy(want[i] + CL_OBJ / 4, p, CL_OBJ / 2);
		clone_queue(st, name, ++seq, CL_OBJ / 4, p, CL_OBJ / 2);
		free(p);
		CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
		p = pattern(1000, 200u + (unsigned)i);
		memcpy(want[i] + 5, p, 1000);
		clone_queue(st, name, ++seq, 5, p, 1000);
		free(p);
		CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
	}
	CHECK_EQ_INT(mx_store_sync(st), 0);
	mx_store_get_stats(st, &ss);
	CHECK(ss.cloned_bytes >= (uint64_t)CL_N * CL_OBJ * 3 / 2);
	CHECK(ss.checkpoints >= 2); /* the log's blocks were written over */
	clone_check(st, want, "after its writes");
	mx_store_close(st);
	st = NULL;
	CHECK_EQ_INT(mx_store_open(dir, &o, &st), 0);
	if (!st)
		goto out;
	clone_check(st, want, "after a reopen");
	/* Left to replay: one durable frame of four whole objects whose
	 * apply fails (no clone and no copy reaches the data files), then a
	 * kill.  Only replay can put them in place. */
	for (int i = 0; i < 4; i++) {
		(void)snprintf(name, sizeof(name), "c%d", i);
		free(want[i]);
		want[i] = pattern(CL_OBJ, 300u + (unsigned)i);
		clone_queue(st, name, ++seq, 0, want[i], CL_OBJ);
	}
	w.fail_class = W_DATA_WRITE;
	w.fail_nth = w.count[W_DATA_WRITE] + 1;
	w.fail_on = true;
	w.fail_err = -EIO;
	CHECK(mx_store_commit(st) == -EIO);
	w.fail_class = -1;
	w.fail_on = false;
	kill_store(st, &w);
	st = NULL;
	CHECK_EQ_INT(mx_store_open(dir, &o, &st), 0);
	if (!st)
		goto out;
	mx_store_get_stats(st, &ss);
	CHECK(ss.cloned_bytes >= 4ull * CL_OBJ); /* replay cloned them */
	fprintf(stderr, "clone on XFS: %d objects of 1 MiB written by clones, "
		"right after a reopen and after a kill; replay cloned %llu MiB\n",
		CL_N, (unsigned long long)(ss.cloned_bytes >> 20));
	clone_check(st, want, "after a kill and replay");
	mx_store_close(st);
	st = NULL;
out:
	if (st)
		mx_store_close(st);
	for (int i = 0; i < CL_N && seq; i++)
		free(want[i]);
	(void)snprintf(cmd, sizeof(cmd), "umount %s", mnt);
	CHECK_EQ_INT(system(cmd), 0);
}

/* A split sync covers the frames written before it began, and only those:
 * a frame written while it ran stays unsynced, pending and invisible, and
 * request identities stay findable on both sides of the split. */
static void test_wb_split(void)
{
	uint8_t *d = pattern(3000, 9);
	char dir[600];
	struct mx_store_opts opts = { 0 };
	struct mx_store_sync sy, sy2;
	struct mx_store_stats ss;
	struct mx_obj_stat os;
	struct mx_objkey kx = K(1, 1, "x"), ky = K(1, 1, "y"), kz = K(1, 1, "z");
	struct mx_version v;
	struct wrapio w;
	struct mx_store *st;
	uint64_t t0, tx;

	tmp_path(dir, sizeof(dir), "wbsplit");
	wrapio_init(&w);
	opts.io = &w.io;
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		goto out;
	/* Nothing unsynced: nothing to begin, and everything is durable. */
	CHECK_EQ_INT(mx_store_sync_begin(st, &sy), 0);
	t0 = mx_store_log_seq(st);
	CHECK(mx_store_durable(st, t0));
	wb_queue(st, "x", 1, d, 1000);
	CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
	tx = mx_store_log_seq(st);
	CHECK_EQ_INT(tx, t0 + 1);
	CHECK(!mx_store_durable(st, tx));
	CHECK_EQ_INT(mx_store_sync_begin(st, &sy), 1);
	CHECK_EQ_INT(sy.ticket, tx);
	/* While it runs the store logs on: y, then z, under the same name
	 * as x (staged behind x's unsynced frame). */
	wb_queue(st, "y", 2, d, 2000);
	CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
	mx_store_sync_run(&sy);
	CHECK_EQ_INT(sy.result, 0);
	wb_queue(st, "x", 3, d, 3000);
	CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
	CHECK_EQ_INT(mx_store_sync_end(st, &sy), 0);
	CHECK(mx_store_durable(st, tx));
	CHECK(!mx_store_durable(st, mx_store_log_seq(st)));
	/* x's first write is applied; y and x's second still pending. */
	CHECK_EQ_INT(mx_store_stat(st, &kx, &os), 0);
	CHECK_EQ_INT(os.size, 1000);
	CHECK(mx_store_pending(st, &kx));
	CHECK(mx_store_pending(st, &ky));
	CHECK_EQ_INT(mx_store_stat(st, &ky, &os), -ENOENT);
	CHECK(mx_store_unsynced(st));
	for (uint64_t tid = 1; tid <= 3; tid++) {
		CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 7, tid, &v), 0);
		CHECK_EQ_INT(v.seq, tid);
	}
	/* Ending the same sync again, or an older one, changes nothing. */
	CHECK_EQ_INT(mx_store_sync_end(st, &sy), 0);
	CHECK(mx_store_pending(st, &ky));
	/* A second split sync covers the rest. */
	CHECK_EQ_INT(mx_store_sync_begin(st, &sy2), 1);
	mx_store_sync_run(&sy2);
	CHECK_EQ_INT(mx_store_sync_end(st, &sy2), 0);
	CHECK(!mx_store_unsynced(st));
	CHECK(!mx_store_pending(st, &kx));
	CHECK_EQ_INT(mx_store_stat(st, &kx, &os), 0);
	CHECK_EQ_INT(os.size, 3000);
	CHECK_EQ_INT(mx_store_stat(st, &ky, &os), 0);
	CHECK_EQ_INT(os.size, 2000);
	for (uint64_t tid = 1; tid <= 3; tid++)
		CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 7, tid, &v), 0);
	/* A full sync while a split one is out: the split one's end finds
	 * its frames applied already. */
	wb_queue(st, "z", 4, d, 500);
	CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
	CHECK_EQ_INT(mx_store_sync_begin(st, &sy), 1);
	CHECK_EQ_INT(mx_store_sync(st), 0);
	mx_store_sync_run(&sy);
	CHECK_EQ_INT(mx_store_sync_end(st, &sy), 0);
	CHECK_EQ_INT(mx_store_stat(st, &kz, &os), 0);
	CHECK(!mx_store_unsynced(st));
	mx_store_get_stats(st, &ss);
	CHECK(ss.syncs >= 4);
	/* A failed split sync makes the store fatal. */
	wb_queue(st, "z", 5, d, 700);
	CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
	CHECK_EQ_INT(mx_store_sync_begin(st, &sy), 1);
	sy.result = -EIO; /* as mx_store_sync_run() reports a failed fdatasync */
	CHECK_EQ_INT(mx_store_sync_end(st, &sy), -EIO);
	CHECK_EQ_INT(mx_store_commit(st), -EIO);
	CHECK_EQ_INT(mx_store_sync_begin(st, &sy), -EIO);
	mx_store_close(st);
	/* Replay: z's second write was lost with the failed sync or kept, and
	 * everything the split syncs covered is there. */
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		goto out;
	CHECK_EQ_INT(mx_store_stat(st, &kx, &os), 0);
	CHECK_EQ_INT(os.size, 3000);
	CHECK_EQ_INT(mx_store_stat(st, &ky, &os), 0);
	CHECK_EQ_INT(mx_store_stat(st, &kz, &os), 0);
	CHECK(os.size == 500 || os.size == 700);
	mx_store_close(st);
out:
	free(d);
}

static void test_wb_basics(void)
{
	uint8_t *d = pattern(3000, 5);
	char dir[600], path[700];
	struct mx_store_opts opts = { 0 };
	struct mx_store_stats ss;
	struct mx_obj_stat os;
	struct mx_objkey kx = K(1, 1, "x"), ky = K(1, 1, "y"), kz = K(1, 1, "z");
	struct mx_version v;
	struct wrapio w;
	struct mx_store *st;
	uint64_t off[3];
	int n = 0;

	tmp_path(dir, sizeof(dir), "wb0");
	wrapio_init(&w);
	opts.io = &w.io;
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		goto out;
	wb_queue(st, "x", 1, d, 1000);
	CHECK_EQ_INT(mx_store_commit(st), 0);
	wb_queue(st, "y", 2, d, 2000);
	CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
	CHECK(mx_store_unsynced(st));
	CHECK(mx_store_pending(st, &ky));
	CHECK_EQ_INT(mx_store_stat(st, &ky, &os), -ENOENT);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 7, 2, &v), 0);
	CHECK_EQ_INT(v.seq, 2);
	mx_store_get_stats(st, &ss);
	CHECK_EQ_INT(ss.unsynced_commits, 1);
	/* A PG walk sees every logged write: it syncs. */
	CHECK_EQ_INT(mx_store_pg_log_walk(st, 1, 1, (struct mx_version){ 0, 0 },
					  wb_count_cb, &n),
		     0);
	CHECK_EQ_INT(n, 2);
	CHECK(!mx_store_unsynced(st));
	CHECK_EQ_INT(mx_store_stat(st, &ky, &os), 0);
	CHECK_EQ_INT(os.size, 2000);
	wb_queue(st, "z", 3, d, 3000);
	CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
	kill_store(st, &w); /* the page cache keeps the unsynced frame */
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		goto out;
	CHECK_EQ_INT(mx_store_stat(st, &kz, &os), 0);
	CHECK_EQ_INT(os.size, 3000);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 7, 3, &v), 0);
	mx_store_close(st);

	/* Frames x (synced), y and z (unsynced); y lost, z kept: x only. */
	for (int synced = 0; synced < 2; synced++) {
		tmp_path(dir, sizeof(dir), synced ? "wb2" : "wb1");
		CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
		if (!st)
			goto out;
		for (int i = 0; i < 3; i++) {
			mx_store_get_stats(st, &ss);
			off[i] = 4096 + ss.wal_bytes;
			wb_queue(st, i == 0 ? "x" : i == 1 ? "y" : "z",
				 (uint64_t)i + 1, d, 1000);
			CHECK_EQ_INT(i == 0 ? mx_store_commit(st) :
					      mx_store_commit_unsynced(st),
				     0);
			/* With synced, y is fdatasynced before z is written:
			 * z's horizon proves y was durable. */
			if (synced && i == 1)
				CHECK_EQ_INT(mx_store_sync(st), 0);
		}
		kill_store(st, &w);
		(void)snprintf(path, sizeof(path), "%s/wal", dir);
		flip_byte(path, off[1] + 200, 0x04);
		if (synced) {
			CHECK_EQ_INT(mx_store_open(dir, &opts, &st), -EUCLEAN);
			continue;
		}
		CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
		if (!st)
			goto out;
		CHECK_EQ_INT(mx_store_stat(st, &kx, &os), 0);
		CHECK_EQ_INT(mx_store_stat(st, &ky, &os), -ENOENT);
		CHECK_EQ_INT(mx_store_stat(st, &kz, &os), -ENOENT);
		mx_store_close(st);
	}

	/* Past unsynced_max bytes a commit syncs by itself; from half of it
	 * a sync apart is due. */
	tmp_path(dir, sizeof(dir), "wb3");
	opts.unsynced_max = 4000;
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		goto out;
	CHECK(!mx_store_sync_due(st));
	wb_queue(st, "x", 1, d, 1000);
	CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
	CHECK(mx_store_unsynced(st)); /* about 1.5 KB */
	CHECK(!mx_store_sync_due(st));
	wb_queue(st, "y", 2, d, 1000);
	CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
	CHECK(mx_store_unsynced(st)); /* 3 KB */
	CHECK(mx_store_sync_due(st));
	{
		struct mx_store_sync sy;

		CHECK_EQ_INT(mx_store_sync_begin(st, &sy), 1);
		mx_store_sync_run(&sy);
		CHECK_EQ_INT(mx_store_sync_end(st, &sy), 0);
	}
	CHECK(!mx_store_unsynced(st));
	CHECK(!mx_store_sync_due(st));
	CHECK_EQ_INT(mx_store_stat(st, &ky, &os), 0);
	wb_queue(st, "x", 3, d, 1000);
	CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
	wb_queue(st, "y", 4, d, 1000);
	CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
	CHECK(mx_store_sync_due(st)); /* nobody synced apart: */
	wb_queue(st, "z", 5, d, 1000);
	CHECK_EQ_INT(mx_store_commit_unsynced(st), 0);
	CHECK(!mx_store_unsynced(st)); /* 4.5 KB: synced and applied */
	CHECK_EQ_INT(mx_store_stat(st, &kz, &os), 0);
	mx_store_close(st);
out:
	free(d);
}

/* ---- Test 4: injected I/O errors ---------------------------------------- */

static void test_faults(void)
{
	static const struct {
		const char *what;
		int cls, nth, err;
		int present; /* 0 absent, 1 present, 2 either */
		bool in_ckpt;
	} cases[] = {
		{ "ENOSPC writing the log", W_WAL_WRITE, 1, -ENOSPC, 0, false },
		{ "EIO writing the log", W_WAL_WRITE, 1, -EIO, 0, false },
		{ "EIO from the log's fdatasync", W_WAL_SYNC, 1, -EIO, 2, false },
		{ "ENOSPC writing a data file", W_DATA_WRITE, 1, -ENOSPC, 1, false },
		{ "EIO from fsync in checkpoint", W_FSYNC, 1, -EIO, 0, true },
		{ "EIO from the 3rd fsync in checkpoint", W_FSYNC, 3, -EIO, 0, true },
	};

	for (unsigned c = 0; c < MX_ARRAY_SIZE(cases); c++) {
		char dir[600], leaf[32];
		struct mx_store_opts opts = { 0 };
		struct wrapio w;
		struct mx_store *st;
		struct model m = { 0 }, m2 = { 0 };
		struct mx_txn_op ops[2];
		uint8_t *d = pattern(9000, c);
		struct mx_txn t;
		uint8_t b[4];
		uint32_t got;
		int r;

		(void)snprintf(leaf, sizeof(leaf), "fault%u", c);
		tmp_path(dir, sizeof(dir), leaf);
		wrapio_init(&w);
		opts.io = &w.io;
		CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
		if (!st)
			continue;
		ops[0] = OPW(0, d, 5000);
		ops[1] = OPS("v", "1", 1);
		CHECK_EQ_INT(do_txn(st, &m, K(1, 1, "keep"), (struct mx_version){ 1, 1 },
				    2, ops), 0);
		ops[0] = OPW(100, d + 100, 8000);
		CHECK_EQ_INT(do_txn(st, &m, K(1, 2, "keep2"), (struct mx_version){ 1, 2 },
				    1, ops), 0);
		memset(w.count, 0, sizeof(w.count));
		w.fail_class = cases[c].cls;
		w.fail_nth = cases[c].nth;
		w.fail_err = cases[c].err;
		ops[0] = OPW(3000, d + 3000, 6000);
		t = (struct mx_txn){ .key = K(1, 1, "keep"), .version = { 1, 3 },
				     .n_ops = 1, .ops = ops };
		if (cases[c].in_ckpt) {
			CHECK_EQ_INT(mx_store_checkpoint(st), cases[c].err);
		} else {
			CHECK_EQ_INT(mx_store_queue(st, &t), 0);
			CHECK_EQ_INT(mx_store_commit(st), cases[c].err);
		}
		/* Fatal: every call now returns the error. */
		CHECK_EQ_INT(mx_store_queue(st, &t), cases[c].err);
		CHECK_EQ_INT(mx_store_commit(st), cases[c].err);
		CHECK_EQ_INT(mx_store_read(st, &t.key, 0, 4, b, &got), cases[c].err);
		CHECK_EQ_INT(mx_store_checkpoint(st), cases[c].err);
		mx_store_close(st);

		/* The committed data is all there after a restart. */
		CHECK_EQ_INT(mx_store_open(dir, NULL, &st), 0);
		if (!st)
			continue;
		model_copy(&m2, &m);
		model_apply(&m2, &t);
		r = verify(st, &m, false);
		if (cases[c].present == 1 || (cases[c].present == 2 && r))
			r = verify(st, &m2, false);
		if (r) {
			fprintf(stderr, "test_faults: %s\n", cases[c].what);
			(void)verify(st, cases[c].present ? &m2 : &m, true);
		}
		CHECK_EQ_INT(r, 0);
		mx_store_close(st);
		model_free(&m);
		model_free(&m2);
		free(d);
	}
}

/* ---- Test 5: malformed transactions ------------------------------------- */

static void test_invalid(void)
{
	char dir[600], longname[MX_OBJ_NAME_MAX + 2], longx[MX_XATTR_NAME_MAX + 2];
	struct mx_store *st;
	struct mx_txn_op op;
	struct mx_txn t;
	struct mx_objkey k = K(1, 1, "ok");
	struct mx_store_stats ss;

	tmp_path(dir, sizeof(dir), "invalid");
	CHECK_EQ_INT(mx_store_open(dir, NULL, &st), 0);
	if (!st)
		return;
	memset(longname, 'a', sizeof(longname));
	memset(longx, 'x', sizeof(longx));
	longx[MX_XATTR_NAME_MAX + 1] = '\0';

#define BAD(key_, op_)                                                         \
	do {                                                                   \
		op = (op_);                                                    \
		t = (struct mx_txn){ .key = (key_), .version = { 1, 1 },      \
				     .n_ops = 1, .ops = &op };                 \
		CHECK_EQ_INT(mx_store_queue(st, &t), -EINVAL);                 \
	} while (0)

	BAD(((struct mx_objkey){ 1, 1, longname, MX_OBJ_NAME_MAX + 1 }), OPC());
	BAD(((struct mx_objkey){ 1, 1, "a\0b", 3 }), OPC());
	BAD(((struct mx_objkey){ 1, 1, "", 0 }), OPC());
	BAD(((struct mx_objkey){ 1, 1, NULL, 3 }), OPC());
	BAD(((struct mx_objkey){ -1, 1, "a", 1 }), OPC());
	BAD(((struct mx_objkey){ 1, UINT32_MAX, "a", 1 }), OPC());
	BAD(k, OPW(MX_OBJ_SIZE_MAX - 10, "0123456789ab", 12));
	BAD(k, OPW(MX_OBJ_SIZE_MAX + 1, "", 0));
	BAD(k, OPW(0, NULL, 5));
	BAD(k, OPT(MX_OBJ_SIZE_MAX + 1));
	BAD(k, ((struct mx_txn_op){ .type = 0 }));
	BAD(k, ((struct mx_txn_op){ .type = 7 }));
	BAD(k, ((struct mx_txn_op){ .type = 255 }));
	BAD(k, OPS(longx, "v", 1));
	BAD(k, OPS("", "v", 1));
	BAD(k, OPS(NULL, "v", 1));
	BAD(k, OPS("n", "v", MX_XATTR_VALUE_MAX + 1));
	BAD(k, OPX(longx));
	BAD(k, OPX(""));
#undef BAD
	t = (struct mx_txn){ .key = k, .version = { 1, 1 }, .n_ops = 0,
			     .ops = &op };
	CHECK_EQ_INT(mx_store_queue(st, &t), -EINVAL); /* no ops */
	t = (struct mx_txn){ .key = k, .version = { 1, 1 }, .n_ops = 1,
			     .ops = NULL };
	CHECK_EQ_INT(mx_store_queue(st, &t), -EINVAL);
	CHECK_EQ_INT(mx_store_queue(st, NULL), -EINVAL);
	CHECK_EQ_INT(mx_store_pending_count(st), 0);
	/* The limits themselves are fine. */
	longname[MX_OBJ_NAME_MAX] = '\0';
	longx[MX_XATTR_NAME_MAX] = '\0';
	op = OPS(longx, "v", 1);
	t = (struct mx_txn){ .key = { 1, 1, longname, MX_OBJ_NAME_MAX },
			     .version = { 1, 1 }, .n_ops = 1, .ops = &op };
	CHECK_EQ_INT(mx_store_queue(st, &t), 0);
	op = OPT(MX_OBJ_SIZE_MAX);
	t = (struct mx_txn){ .key = k, .version = { 1, 2 }, .n_ops = 1,
			     .ops = &op };
	CHECK_EQ_INT(mx_store_queue(st, &t), 0);
	op = OPT(0);
	CHECK_EQ_INT(mx_store_queue(st, &t), 0);
	CHECK_EQ_INT(mx_store_commit(st), 0);
	mx_store_get_stats(st, &ss);
	CHECK_EQ_INT(ss.objects, 2);
	CHECK_EQ_INT(ss.bytes, 0);
	mx_store_close(st);
	CHECK_EQ_INT(mx_store_open(NULL, NULL, &st), -EINVAL);
	CHECK_EQ_INT(mx_store_open(dir, NULL, NULL), -EINVAL);

	/* Objects without a log: damaged. */
	{
		char path[700];

		(void)snprintf(path, sizeof(path), "%s/wal", dir);
		CHECK_EQ_INT(unlink(path), 0);
		CHECK_EQ_INT(mx_store_open(dir, NULL, &st), -EUCLEAN);
	}
}

/* ---- Test 6: PG log, PG info, PG removal -------------------------------- */

static struct mx_version V(uint64_t epoch, uint64_t seq)
{
	return (struct mx_version){ epoch, seq };
}

/* Queue and commit a logged one-op transaction, and apply it to m. */
static int log_txn(struct mx_store *st, struct model *m, struct mx_objkey k,
		   struct mx_version v, struct mx_txn_op op,
		   uint64_t client_id, uint64_t tid)
{
	struct mx_txn t = { .key = k, .version = v, .n_ops = 1, .ops = &op,
			    .log = true, .client_id = client_id, .tid = tid };

	return txn_run(st, m, &t);
}

/* Stage a logged one-op transaction (not applied to any model). */
static int log_queue(struct mx_store *st, struct mx_objkey k,
		     struct mx_version v, struct mx_txn_op op)
{
	struct mx_txn t = { .key = k, .version = v, .n_ops = 1, .ops = &op,
			    .log = true };

	return mx_store_queue(st, &t);
}

/* The model applies the store's bound again (a reopen with a smaller
 * pg_log_max). */
static void model_rebound(struct model *m, uint32_t log_max)
{
	m->log_max = log_max;
	for (int i = 0; i < m->n_pg; i++)
		while ((uint32_t)m->pg[i].n_log > log_max)
			mpg_pop(&m->pg[i]);
}

struct kinds_seen {
	uint8_t kind[16];
	uint64_t seq[16];
	int n;
};

static int kinds_cb(void *arg, const struct mx_pglog_entry *e)
{
	struct kinds_seen *s = arg;

	if (s->n < 16) {
		s->kind[s->n] = e->kind;
		s->seq[s->n] = e->version.seq;
	}
	s->n++;
	return 0;
}

static int stop_cb(void *arg, const struct mx_pglog_entry *e)
{
	(void)e;
	return ++*(int *)arg == 2 ? 99 : 0;
}

static int stop_pgs_cb(void *arg, int32_t pool, uint32_t pg)
{
	(void)pool;
	(void)pg;
	return ++*(int *)arg == 1 ? 7 : 0;
}

/* Logged transactions: kinds, request identities, order, staging, info,
 * listing, and all of it across a clean reopen and a kill. */
static void test_pglog_basic(void)
{
	char dir[600];
	struct mx_store_opts opts = { 0 };
	struct wrapio w;
	struct mx_store *st;
	struct model m = { 0 };
	struct mx_pg_info in, zi = { 0 };
	struct kinds_seen ks = { .n = 0 };
	struct mx_version v;
	struct mx_txn t;
	struct mx_txn_op op;
	int n = 0;

	tmp_path(dir, sizeof(dir), "pglog");
	wrapio_init(&w);
	opts.io = &w.io;
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		return;
	/* Nothing known yet. */
	CHECK_EQ_INT(mx_store_pg_info_get(st, 1, 1, &in), -ENOENT);
	CHECK(!memcmp(&in, &zi, sizeof(in)));
	CHECK_EQ_INT(mx_store_pg_log_walk(st, 1, 1, V(0, 0), kinds_cb, &ks), 0);
	CHECK_EQ_INT(ks.n, 0);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 10, 1, &v), -ENOENT);
	CHECK_EQ_INT(mx_store_list_pgs(st, pgs_cb, &(struct pgs_seen){ .n = 0 }), 0);

	/* Kinds: modify, create, delete, and a no-op on an absent object
	 * (absent afterwards: a delete). */
	CHECK_EQ_INT(log_txn(st, &m, K(1, 1, "a"), V(1, 1), OPW(0, "x", 1), 10, 1), 0);
	CHECK_EQ_INT(log_txn(st, &m, K(1, 1, "b"), V(1, 2), OPC(), 10, 2), 0);
	CHECK_EQ_INT(log_txn(st, &m, K(1, 1, "a"), V(1, 3), OPR(), 10, 3), 0);
	CHECK_EQ_INT(log_txn(st, &m, K(1, 1, "ghost"), V(1, 4), OPX("u"), 0, 0), 0);
	/* An unlogged transaction may carry any version and adds nothing. */
	op = OPW(0, "y", 1);
	CHECK_EQ_INT(do_txn(st, &m, K(1, 1, "b"), V(1, 1), 1, &op), 0);
	CHECK_EQ_INT(mx_store_pg_log_walk(st, 1, 1, V(0, 0), kinds_cb, &ks), 0);
	CHECK_EQ_INT(ks.n, 4);
	CHECK(ks.kind[0] == MX_LOG_MODIFY && ks.kind[1] == MX_LOG_MODIFY &&
	      ks.kind[2] == MX_LOG_DELETE && ks.kind[3] == MX_LOG_DELETE);
	CHECK(ks.seq[0] == 1 && ks.seq[3] == 4);
	CHECK_EQ_INT(mx_store_pg_log_walk(st, 1, 1, V(1, 3), stop_cb, &n), 0);
	CHECK_EQ_INT(n, 1);
	n = 0;
	CHECK_EQ_INT(mx_store_pg_log_walk(st, 1, 1, V(0, 9), stop_cb, &n), 99);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 10, 3, &v), 0);
	CHECK(!mx_version_cmp(v, V(1, 3)));
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 10, 99, &v), -ENOENT);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 0, 0, &v), -ENOENT);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 2, 10, 3, &v), -ENOENT);
	CHECK_EQ_INT(mx_store_pg_info_get(st, 1, 1, &in), 0);
	CHECK(!mx_version_cmp(in.last_update, V(1, 4)));
	CHECK(!mx_version_cmp(in.log_tail, V(0, 0)));
	CHECK_EQ_INT(verify(st, &m, true), 0);

	/* Order: a logged version must exceed last_update, staged ones
	 * included. */
	CHECK_EQ_INT(log_queue(st, K(1, 1, "b"), V(1, 4), OPC()), -EINVAL);
	CHECK_EQ_INT(log_queue(st, K(1, 1, "b"), V(1, 3), OPC()), -EINVAL);
	CHECK_EQ_INT(log_queue(st, K(1, 1, "b"), V(0, 99), OPC()), -EINVAL);
	CHECK_EQ_INT(log_queue(st, K(1, 9, "b"), V(0, 0), OPC()), -EINVAL);
	CHECK_EQ_INT(mx_store_pending_count(st), 0);
	t = (struct mx_txn){ .key = K(1, 1, "b"), .version = V(1, 10),
			     .n_ops = 1, .ops = &op, .log = true,
			     .client_id = 11, .tid = 1 };
	op = OPW(0, "z", 1);
	CHECK_EQ_INT(mx_store_queue(st, &t), 0);
	CHECK_EQ_INT(log_queue(st, K(1, 1, "c"), V(1, 9), OPC()), -EINVAL);
	CHECK_EQ_INT(log_queue(st, K(1, 1, "c"), V(1, 10), OPC()), -EINVAL);
	/* Staged entries are invisible. */
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 11, 1, &v), -ENOENT);
	CHECK_EQ_INT(mx_store_pg_info_get(st, 1, 1, &in), 0);
	CHECK(!mx_version_cmp(in.last_update, V(1, 4)));
	CHECK_EQ_INT(mx_store_commit(st), 0);
	model_apply(&m, &t);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 11, 1, &v), 0);
	CHECK(!mx_version_cmp(v, V(1, 10)));

	/* Info: validated, staged, round trip; last_update and log_tail
	 * come from the log, not from the caller. */
	memset(&in, 0, sizeof(in));
	in.n_acting = MX_PG_ACTING_MAX + 1;
	CHECK_EQ_INT(mx_store_queue_pg_info(st, 1, 1, &in), -EINVAL);
	CHECK_EQ_INT(mx_store_queue_pg_info(st, 1, 1, NULL), -EINVAL);
	CHECK_EQ_INT(mx_store_queue_pg_info(st, -1, 1, &in), -EINVAL);
	CHECK_EQ_INT(mx_store_queue_pg_info(st, 1, UINT32_MAX, &in), -EINVAL);
	in = (struct mx_pg_info){ .last_update = V(9, 9), .log_tail = V(8, 8),
				  .les = 7, .lec = 5, .n_acting = 3,
				  .acting = { 4, -1, 2 }, .flags = 0x81, .wb_lost = 6 };
	CHECK_EQ_INT(mx_store_queue_pg_info(st, 1, 1, &in), 0);
	model_info(&m, 1, 1, &in);
	CHECK_EQ_INT(mx_store_pg_info_get(st, 1, 1, &in), 0);
	CHECK_EQ_INT(in.les, 0); /* staged */
	CHECK_EQ_INT(mx_store_commit(st), 0);
	CHECK_EQ_INT(mx_store_pg_info_get(st, 1, 1, &in), 0);
	CHECK(in.les == 7 && in.lec == 5 && in.n_acting == 3 &&
	      in.acting[0] == 4 && in.acting[1] == -1 && in.acting[2] == 2 &&
	      in.acting[3] == 0 && in.flags == 0x81 && in.wb_lost == 6);
	CHECK(!mx_version_cmp(in.last_update, V(1, 10)));

	/* Listing: an info-only PG, an object-only PG, in (pool, pg) order;
	 * a non-zero return stops. */
	in = (struct mx_pg_info){ .lec = 1 };
	CHECK_EQ_INT(mx_store_queue_pg_info(st, 3, 5, &in), 0);
	model_info(&m, 3, 5, &in);
	op = OPC();
	CHECK_EQ_INT(do_txn(st, &m, K(0, 9, "o"), V(1, 1), 1, &op), 0);
	CHECK_EQ_INT(mx_store_commit(st), 0);
	n = 0;
	CHECK_EQ_INT(mx_store_list_pgs(st, stop_pgs_cb, &n), 7);
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_INT(mx_store_list_pgs(NULL, stop_pgs_cb, &n), -EINVAL);
	CHECK_EQ_INT(verify(st, &m, true), 0);

	/* Clean close and reopen, then a kill (replay only). */
	mx_store_close(st);
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		return;
	CHECK_EQ_INT(verify(st, &m, true), 0);
	CHECK_EQ_INT(log_txn(st, &m, K(1, 1, "b"), V(2, 1), OPW(5, "k", 1), 12, 1), 0);
	in = (struct mx_pg_info){ .les = 2, .lec = 2, .n_acting = 1,
				  .acting = { 3 } };
	CHECK_EQ_INT(mx_store_queue_pg_info(st, 1, 1, &in), 0);
	CHECK_EQ_INT(mx_store_commit(st), 0);
	model_info(&m, 1, 1, &in);
	kill_store(st, &w);
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		return;
	CHECK_EQ_INT(verify(st, &m, true), 0);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 12, 1, &v), 0);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 10, 2, &v), 0);
	/* Order still holds after the restart. */
	CHECK_EQ_INT(log_queue(st, K(1, 1, "b"), V(2, 1), OPC()), -EINVAL);
	mx_store_close(st);
	model_free(&m);
}

/* The bound, explicit trims, and request identities of trimmed entries;
 * then a reopen with a smaller bound. */
static void test_pglog_trim(void)
{
	char dir[600];
	struct mx_store_opts opts = { .pg_log_max = 4 };
	struct mx_store *st;
	struct model m = { .log_max = 4 };
	struct mx_pg_info in;
	struct mx_version v;

	tmp_path(dir, sizeof(dir), "pgtrim");
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		return;
	for (uint64_t i = 1; i <= 10; i++)
		CHECK_EQ_INT(log_txn(st, &m, K(1, 1, i % 2 ? "odd" : "even"),
				     V(1, i), OPW(i, "d", 1), 7, i), 0);
	CHECK_EQ_INT(mx_store_pg_info_get(st, 1, 1, &in), 0);
	CHECK(!mx_version_cmp(in.log_tail, V(1, 6)));
	CHECK(!mx_version_cmp(in.last_update, V(1, 10)));
	for (uint64_t i = 1; i <= 10; i++)
		CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 7, i, &v),
			     i <= 6 ? -ENOENT : 0);
	CHECK_EQ_INT(verify(st, &m, true), 0);

	/* Explicit trim: staged, then entries <= 8 go. */
	CHECK_EQ_INT(mx_store_pg_trim(st, 1, 1, V(1, 8)), 0);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 7, 7, &v), 0);
	CHECK_EQ_INT(mx_store_commit(st), 0);
	model_trim(&m, 1, 1, V(1, 8));
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 7, 8, &v), -ENOENT);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 7, 9, &v), 0);
	CHECK_EQ_INT(mx_store_pg_info_get(st, 1, 1, &in), 0);
	CHECK(!mx_version_cmp(in.log_tail, V(1, 8)));
	CHECK_EQ_INT(verify(st, &m, true), 0);
	/* A trim below the tail changes nothing; one of an unknown PG
	 * stages nothing. */
	CHECK_EQ_INT(mx_store_pg_trim(st, 1, 1, V(1, 2)), 0);
	CHECK_EQ_INT(mx_store_commit(st), 0);
	model_trim(&m, 1, 1, V(1, 2));
	CHECK_EQ_INT(mx_store_pg_trim(st, 4, 4, V(1, 2)), 0);
	CHECK_EQ_INT(mx_store_pending_count(st), 0);
	CHECK_EQ_INT(mx_store_pg_trim(st, -1, 4, V(1, 2)), -EINVAL);
	CHECK_EQ_INT(verify(st, &m, true), 0);

	/* Trim past last_update: the log empties, the tail stops at
	 * last_update, and the PG is still known. */
	CHECK_EQ_INT(mx_store_pg_trim(st, 1, 1, V(5, 0)), 0);
	CHECK_EQ_INT(mx_store_commit(st), 0);
	model_trim(&m, 1, 1, V(5, 0));
	CHECK_EQ_INT(mx_store_pg_info_get(st, 1, 1, &in), 0);
	CHECK(!mx_version_cmp(in.log_tail, V(1, 10)));
	CHECK(!mx_version_cmp(in.last_update, V(1, 10)));
	CHECK_EQ_INT(verify(st, &m, true), 0);
	/* A trim staged before an append cannot drop it. */
	CHECK_EQ_INT(mx_store_pg_trim(st, 1, 1, V(9, 9)), 0);
	model_trim(&m, 1, 1, V(9, 9));
	CHECK_EQ_INT(log_txn(st, &m, K(1, 1, "odd"), V(1, 11), OPC(), 7, 11), 0);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 7, 11, &v), 0);
	for (uint64_t i = 12; i <= 14; i++)
		CHECK_EQ_INT(log_txn(st, &m, K(1, 1, "odd"), V(2, i), OPC(), 7, i), 0);
	CHECK_EQ_INT(verify(st, &m, true), 0);

	/* Reopen: the log and the index come back. */
	mx_store_close(st);
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		return;
	CHECK_EQ_INT(verify(st, &m, true), 0);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 7, 12, &v), 0);
	CHECK(!mx_version_cmp(v, V(2, 12)));
	mx_store_close(st);

	/* A smaller bound trims at open, durably. */
	opts.pg_log_max = 2;
	model_rebound(&m, 2);
	for (int round = 0; round < 2; round++) {
		CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
		if (!st)
			return;
		CHECK_EQ_INT(verify(st, &m, true), 0);
		CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 7, 12, &v), -ENOENT);
		mx_store_close(st);
	}
	model_free(&m);
}

/* Replacing a PG's log: validation, the result, the bound, persistence. */
static void test_pglog_reset(void)
{
	char dir[600], longname[MX_OBJ_NAME_MAX + 1];
	struct mx_store_opts opts = { .pg_log_max = 3 };
	struct wrapio w;
	struct mx_store *st;
	struct model m = { .log_max = 3 };
	struct mx_pg_info in;
	struct mx_version v;
	struct mx_pglog_entry e[5];

	tmp_path(dir, sizeof(dir), "pgreset");
	wrapio_init(&w);
	opts.io = &w.io;
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		return;
	memset(longname, 'L', sizeof(longname));
	for (uint64_t i = 1; i <= 3; i++)
		CHECK_EQ_INT(log_txn(st, &m, K(1, 1, "obj"), V(3, i),
				     OPW(0, "v", 1), 9, i), 0);

#define ENT(i, ep, sq, k, nm, nl, c, t_)                                       \
	e[i] = (struct mx_pglog_entry){ .version = { ep, sq }, .kind = k,      \
					.name = nm, .name_len = nl,            \
					.client_id = c, .tid = t_ }
	ENT(0, 1, 3, MX_LOG_MODIFY, "x", 1, 11, 1);
	ENT(1, 1, 5, MX_LOG_DELETE, "y", 1, 11, 2);
	ENT(2, 2, 1, MX_LOG_MODIFY, longname, MX_OBJ_NAME_MAX, 0, 0);
	/* Invalid: order, tail, kind, names, NULL entries. */
	CHECK_EQ_INT(mx_store_pg_log_reset(st, 1, 1, e, 3, V(1, 3)), -EINVAL);
	CHECK_EQ_INT(mx_store_pg_log_reset(st, 1, 1, e, 3, V(9, 0)), -EINVAL);
	CHECK_EQ_INT(mx_store_pg_log_reset(st, 1, 1, NULL, 1, V(0, 0)), -EINVAL);
	CHECK_EQ_INT(mx_store_pg_log_reset(st, -1, 1, e, 3, V(0, 0)), -EINVAL);
	e[1].version = V(1, 3); /* duplicate */
	CHECK_EQ_INT(mx_store_pg_log_reset(st, 1, 1, e, 3, V(1, 2)), -EINVAL);
	e[1].version = V(1, 2); /* unsorted */
	CHECK_EQ_INT(mx_store_pg_log_reset(st, 1, 1, e, 3, V(1, 1)), -EINVAL);
	e[1].version = V(1, 5);
	e[1].kind = 3;
	CHECK_EQ_INT(mx_store_pg_log_reset(st, 1, 1, e, 3, V(1, 2)), -EINVAL);
	e[1].kind = 0;
	CHECK_EQ_INT(mx_store_pg_log_reset(st, 1, 1, e, 3, V(1, 2)), -EINVAL);
	e[1].kind = MX_LOG_DELETE;
	e[1].name = "a\0b";
	e[1].name_len = 3;
	CHECK_EQ_INT(mx_store_pg_log_reset(st, 1, 1, e, 3, V(1, 2)), -EINVAL);
	e[1].name_len = 0;
	CHECK_EQ_INT(mx_store_pg_log_reset(st, 1, 1, e, 3, V(1, 2)), -EINVAL);
	e[1].name = NULL;
	e[1].name_len = 1;
	CHECK_EQ_INT(mx_store_pg_log_reset(st, 1, 1, e, 3, V(1, 2)), -EINVAL);
	e[2].name_len = MX_OBJ_NAME_MAX + 1;
	e[1].name = "y";
	CHECK_EQ_INT(mx_store_pg_log_reset(st, 1, 1, e, 3, V(1, 2)), -EINVAL);
	e[2].name_len = MX_OBJ_NAME_MAX;
	CHECK_EQ_INT(mx_store_pending_count(st), 0);

	/* Valid: the log becomes exactly these, last_update goes down to
	 * the last one, the old request identities are gone. */
	CHECK_EQ_INT(mx_store_pg_log_reset(st, 1, 1, e, 3, V(1, 2)), 0);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 9, 3, &v), 0); /* staged */
	CHECK_EQ_INT(mx_store_commit(st), 0);
	model_reset(&m, 1, 1, e, 3, V(1, 2));
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 9, 3, &v), -ENOENT);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 11, 2, &v), 0);
	CHECK(!mx_version_cmp(v, V(1, 5)));
	CHECK_EQ_INT(mx_store_pg_info_get(st, 1, 1, &in), 0);
	CHECK(!mx_version_cmp(in.last_update, V(2, 1)));
	CHECK(!mx_version_cmp(in.log_tail, V(1, 2)));
	CHECK_EQ_INT(verify(st, &m, true), 0); /* the object is untouched */
	/* The lowered last_update admits versions above it. */
	CHECK_EQ_INT(log_txn(st, &m, K(1, 1, "obj"), V(2, 2), OPC(), 0, 0), 0);

	/* More entries than the bound: the newest stay, the tail follows. */
	ENT(3, 2, 7, MX_LOG_MODIFY, "w", 1, 12, 1);
	ENT(4, 2, 9, MX_LOG_MODIFY, "w", 1, 12, 2);
	CHECK_EQ_INT(mx_store_pg_log_reset(st, 1, 1, e, 5, V(0, 0)), 0);
	CHECK_EQ_INT(mx_store_commit(st), 0);
	model_reset(&m, 1, 1, e, 5, V(0, 0));
	CHECK_EQ_INT(mx_store_pg_info_get(st, 1, 1, &in), 0);
	CHECK(!mx_version_cmp(in.log_tail, V(1, 5)));
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 11, 1, &v), -ENOENT);
	CHECK_EQ_INT(verify(st, &m, true), 0);
	mx_store_close(st);
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		return;
	CHECK_EQ_INT(verify(st, &m, true), 0);

	/* An empty log: last_update is the tail.  Then a reset staged with
	 * transactions around it, lost to a kill, replayed. */
	CHECK_EQ_INT(mx_store_pg_log_reset(st, 1, 1, NULL, 0, V(2, 5)), 0);
	CHECK_EQ_INT(mx_store_commit(st), 0);
	model_reset(&m, 1, 1, NULL, 0, V(2, 5));
	CHECK_EQ_INT(mx_store_pg_info_get(st, 1, 1, &in), 0);
	CHECK(!mx_version_cmp(in.last_update, V(2, 5)));
	CHECK_EQ_INT(verify(st, &m, true), 0);
	{
		struct mx_txn_op op = OPW(0, "q", 1);
		struct mx_txn t1 = { .key = K(1, 1, "obj"), .version = V(2, 6),
				     .n_ops = 1, .ops = &op, .log = true,
				     .client_id = 13, .tid = 1 };
		struct mx_txn t2 = t1;

		t2.version = V(1, 9);
		t2.tid = 2;
		CHECK_EQ_INT(mx_store_queue(st, &t1), 0);
		CHECK_EQ_INT(mx_store_pg_log_reset(st, 1, 1, e, 2, V(1, 1)), 0);
		CHECK_EQ_INT(mx_store_queue(st, &t2), 0);
		CHECK_EQ_INT(mx_store_commit(st), 0);
		model_apply(&m, &t1);
		model_reset(&m, 1, 1, e, 2, V(1, 1));
		model_apply(&m, &t2);
	}
	kill_store(st, &w);
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		return;
	CHECK_EQ_INT(verify(st, &m, true), 0);
	mx_store_close(st);
#undef ENT
	model_free(&m);
}

/* Count the entries of dir/pgs/pgdir whose names start with prefix or
 * end with suffix. */
static int count_files(const char *dir, const char *pgdir, const char *prefix,
		       const char *suffix)
{
	char path[700];
	struct dirent *de;
	int n = 0;
	DIR *d;

	(void)snprintf(path, sizeof(path), "%s/pgs/%s", dir, pgdir);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name), sl = suffix ? strlen(suffix) : 0;

		if ((prefix && !strncmp(de->d_name, prefix, strlen(prefix))) ||
		    (suffix && l >= sl && !strcmp(de->d_name + l - sl, suffix)))
			n++;
	}
	(void)closedir(d);
	return n;
}

/* Removing a PG: with staged transactions before and after it, across a
 * checkpoint (files gone), a clean reopen and a kill. */
static void test_pg_remove(void)
{
	char dir[600];
	struct mx_store_opts opts = { 0 };
	struct wrapio w;
	struct mx_store *st;
	struct model m = { 0 };
	struct mx_pg_info in = { .les = 3, .n_acting = 2, .acting = { 1, 2 } };
	struct mx_txn_op ops[2];
	struct mx_version v;
	uint8_t *d = pattern(9000, 4);

	tmp_path(dir, sizeof(dir), "pgremove");
	wrapio_init(&w);
	opts.io = &w.io;
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		return;
	ops[0] = OPW(0, d, 9000);
	ops[1] = OPS("user.k", "v", 1);
	CHECK_EQ_INT(do_txn(st, &m, K(1, 1, "a"), V(1, 1), 2, ops), 0);
	CHECK_EQ_INT(log_txn(st, &m, K(1, 1, "b"), V(1, 5), OPW(10, d, 100), 5, 1), 0);
	CHECK_EQ_INT(log_txn(st, &m, K(1, 2, "c"), V(1, 2), OPW(0, d, 10), 5, 2), 0);
	CHECK_EQ_INT(mx_store_queue_pg_info(st, 1, 1, &in), 0);
	CHECK_EQ_INT(mx_store_commit(st), 0);
	model_info(&m, 1, 1, &in);
	CHECK_EQ_INT(mx_store_checkpoint(st), 0);

	/* A write staged before the removal goes with it; a logged write
	 * after it starts the PG again (last_update is back to zero, so a
	 * low version is fine). */
	{
		struct mx_txn_op op = OPW(0, d, 50);
		struct mx_txn t1 = { .key = K(1, 1, "a"), .version = V(1, 6),
				     .n_ops = 1, .ops = &op };
		struct mx_txn t2 = { .key = K(1, 1, "n"), .version = V(1, 1),
				     .n_ops = 1, .ops = &op, .log = true,
				     .client_id = 6, .tid = 1 };

		CHECK_EQ_INT(mx_store_queue(st, &t1), 0);
		CHECK_EQ_INT(mx_store_pg_remove(st, 1, 1), 0);
		CHECK(mx_store_pending(st, &t1.key));
		CHECK(mx_store_pending(st, &(struct mx_objkey){ 1, 1, "b", 1 }));
		CHECK_EQ_INT(mx_store_queue(st, &t2), 0);
		CHECK_EQ_INT(mx_store_commit(st), 0);
		model_apply(&m, &t1);
		model_remove(&m, 1, 1);
		model_apply(&m, &t2);
	}
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 1, 5, 1, &v), -ENOENT);
	CHECK_EQ_INT(mx_store_pg_find_req(st, 1, 2, 5, 2, &v), 0);
	CHECK_EQ_INT(mx_store_pg_last(st, 1, 1).seq, 1);
	CHECK_EQ_INT(verify(st, &m, true), 0);

	/* Remove it for good. */
	CHECK_EQ_INT(mx_store_pg_remove(st, 1, 1), 0);
	CHECK_EQ_INT(mx_store_commit(st), 0);
	model_remove(&m, 1, 1);
	CHECK_EQ_INT(mx_store_pg_info_get(st, 1, 1, &in), -ENOENT);
	CHECK_EQ_INT(mx_store_pg_last(st, 1, 1).seq, 0);
	CHECK_EQ_INT(verify(st, &m, true), 0);
	CHECK_EQ_INT(mx_store_pg_remove(st, 7, 7), 0); /* unknown: nothing */
	CHECK_EQ_INT(mx_store_pending_count(st), 0);
	CHECK_EQ_INT(mx_store_pg_remove(st, 1, UINT32_MAX), -EINVAL);
	CHECK_EQ_INT(mx_store_checkpoint(st), 0);
	CHECK_EQ_INT(count_files(dir, "00000001.00000001", "log.", ".d"), 0);
	CHECK_EQ_INT(count_files(dir, "00000001.00000001", NULL, ".m"), 0);
	CHECK_EQ_INT(count_files(dir, "00000001.00000002", "log.", NULL), 1);
	mx_store_close(st);
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		return;
	CHECK_EQ_INT(verify(st, &m, true), 0);

	/* Removal lost to a kill before any checkpoint: replayed. */
	CHECK_EQ_INT(mx_store_pg_remove(st, 1, 2), 0);
	CHECK_EQ_INT(mx_store_commit(st), 0);
	model_remove(&m, 1, 2);
	kill_store(st, &w);
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		return;
	CHECK_EQ_INT(verify(st, &m, true), 0);
	CHECK_EQ_INT(count_files(dir, "00000001.00000002", "log.", ".d"), 0);
	mx_store_close(st);
	model_free(&m);
	free(d);
}

/* The per-PG log file: compaction keeps one file, damage is detected,
 * a stray file is dropped, and a version 1 pg file still loads. */
static void test_pglog_files(void)
{
	char dir[600], path[800], name[300];
	struct mx_store_opts opts = { .pg_log_max = 6 };
	struct mx_store *st;
	struct model m = { .log_max = 6 };
	struct mx_pg_info in;
	struct mx_wbuf wb;
	int fd;

	tmp_path(dir, sizeof(dir), "pgfiles");
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		return;
	/* 300-byte names: a few checkpoints fill the dead prefix. */
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	for (uint64_t i = 1; i <= 60; i++) {
		struct mx_txn_op op = OPC();
		struct mx_txn t = { .n_ops = 1, .ops = &op, .version = V(1, i),
				    .log = true, .client_id = 3, .tid = i };

		(void)snprintf(name, sizeof(name), "%03llu",
			       (unsigned long long)(i % 16));
		name[3] = 'n';
		t.key = K(2, 2, name);
		CHECK_EQ_INT(mx_store_queue(st, &t), 0);
		model_apply(&m, &t); /* committed just below */
		if (i % 3 == 0)
			CHECK_EQ_INT(mx_store_commit(st), 0);
		if (i % 6 == 0)
			CHECK_EQ_INT(mx_store_checkpoint(st), 0);
	}
	CHECK_EQ_INT(count_files(dir, "00000002.00000002", "log.", NULL), 1);
	CHECK(!find_file(dir, "00000002.00000002", "", "log.1", path, sizeof(path)));
	CHECK_EQ_INT(verify(st, &m, true), 0);
	mx_store_close(st);
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		return;
	CHECK_EQ_INT(verify(st, &m, true), 0);
	mx_store_close(st);

	/* A damaged entry: the open refuses the store. */
	CHECK(find_file(dir, "00000002.00000002", "log.", "", path, sizeof(path)));
	{
		struct stat sb;

		CHECK_EQ_INT(stat(path, &sb), 0);
		flip_byte(path, (uint64_t)sb.st_size - 10, 0x20);
		CHECK_EQ_INT(mx_store_open(dir, &opts, &st), -EUCLEAN);
		flip_byte(path, (uint64_t)sb.st_size - 10, 0x20);
	}
	/* A stray log file (a crashed compaction's) goes at the next open. */
	(void)snprintf(path, sizeof(path), "%s/pgs/00000002.00000002/log.999", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		return;
	CHECK_EQ_INT(access(path, F_OK), -1);
	CHECK_EQ_INT(verify(st, &m, true), 0);
	mx_store_close(st);

	/* A version 1 pg file (before the log): last version only. */
	(void)snprintf(path, sizeof(path), "%s/pgs/00000003.00000003", dir);
	CHECK_EQ_INT(mkdir(path, 0755), 0);
	(void)snprintf(path, sizeof(path), "%s/pgs/00000003.00000003/pg", dir);
	mx_wbuf_init(&wb);
	mx_put_u32(&wb, 0x4750584d);
	mx_put_u32(&wb, 1);
	mx_put_i32(&wb, 3);
	mx_put_u32(&wb, 3);
	mx_put_u64(&wb, 4);
	mx_put_u64(&wb, 5);
	mx_put_u32(&wb, mx_crc32c(0, wb.data, wb.len));
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0 && write(fd, wb.data, wb.len) == (ssize_t)wb.len);
	if (fd >= 0)
		close(fd);
	mx_wbuf_free(&wb);
	CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
	if (!st)
		return;
	CHECK(!mx_version_cmp(mx_store_pg_last(st, 3, 3), V(4, 5)));
	CHECK_EQ_INT(mx_store_pg_info_get(st, 3, 3, &in), 0);
	CHECK(!mx_version_cmp(in.last_update, V(0, 0)));
	model_pg(&m, 3, 3)->last = V(4, 5);
	CHECK_EQ_INT(verify(st, &m, true), 0);
	mx_store_close(st);
	model_free(&m);
}

/* ---- A simulated disk with a volatile write cache ----------------------- */

/*
 * Files have two contents: what reads see (the page cache) and what is on
 * the medium.  Every write, truncate and clone since a file's last fsync
 * or fdatasync is volatile, and so is every change to a folder (create,
 * rename, unlink, mkdir) until that folder is fsynced; a syncfs makes
 * everything durable.  At the cut (the cut_at-th call; a write at the cut
 * reaches the cache first) a mode decides what survives a power cut:
 * nothing volatile, everything, a random subset (whole writes, or single
 * 512-byte sectors of them, and folder changes), or everything but the
 * last write, of which only a prefix of sectors lands.  Or the cut is a
 * kill of the process: everything stays, still volatile.  Calls after the
 * cut fail with EIO.  md_crash() builds the disk the next process starts
 * on.
 */

#define MD_ROOT "/m"
#define MD_MAXFD 1024
#define MD_SECTOR 512u

struct vop {
	bool trunc;
	uint64_t off;  /* write offset, or a truncate's length */
	size_t len;
	uint8_t *data; /* From malloc() */
	uint64_t gseq; /* order among all writes of the disk */
};

struct mnode {
	bool dir;
	uint8_t *cur; /* From malloc(): what reads see */
	size_t cur_len, cur_cap;
	uint8_t *dur; /* From malloc(): on the medium */
	size_t dur_len, dur_cap;
	struct vop *v; /* From malloc(): since the last sync, oldest first */
	size_t n_v, cap_v;
};

struct nsent {
	char *path; /* From malloc() */
	int node;
};

struct ns {
	struct nsent *e; /* From malloc() */
	size_t n, cap;
};

enum { DOP_LINK, DOP_UNLINK, DOP_RENAME };

struct dop {
	int kind;
	char *parent, *a, *b; /* From malloc() */
	int node;
};

enum mclass { MC_LOG, MC_APPLY, MC_CKPT, MC_OTHER, MC_N };
static const char *const mclass_names[MC_N] = {
	"log write/sync", "data-file apply", "checkpoint", "open/read/other"
};

enum { CR_DROP, CR_KEEP, CR_RANDOM, CR_TORN_LAST, CR_KILL, CR_N };
static const char *const cr_names[CR_N] = { "drop volatile", "keep volatile",
					    "random subset", "torn last write",
					    "a kill (the cache kept, still volatile)" };

struct memdisk {
	struct mx_store_io io;
	struct mnode *nodes; /* From malloc() */
	size_t n_nodes, cap_nodes;
	struct ns cur, dur;
	struct dop *dops; /* From malloc(): unsynced folder changes */
	size_t n_dops, cap_dops;
	int fdnode[MD_MAXFD];
	char fdkind[MD_MAXFD]; /* 'w' log, 'd' data, 't' temporary, 'o' */
	long calls, cut_at;
	bool dead, paused;
	int cut_class;
	uint64_t gseq;
	long clones; /* md_clone() calls that cloned */
	int clone_err; /* every md_clone() fails with it, if not 0 */
	uint64_t rng;  /* md_sync_many()'s order */
	long many;     /* md_sync_many() calls */
};

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		abort();
	return p;
}

static int ns_find(const struct ns *ns, const char *path)
{
	for (size_t i = 0; i < ns->n; i++)
		if (!strcmp(ns->e[i].path, path))
			return (int)i;
	return -1;
}

static void ns_set(struct ns *ns, const char *path, int node)
{
	int i = ns_find(ns, path);

	if (i >= 0) {
		ns->e[i].node = node;
		return;
	}
	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? ns->cap * 2 : 16;
		ns->e = xrealloc(ns->e, ns->cap * sizeof(*ns->e));
	}
	ns->e[ns->n].path = mx_xstrdup(path);
	ns->e[ns->n++].node = node;
}

static void ns_del(struct ns *ns, int i)
{
	free(ns->e[i].path);
	ns->e[i] = ns->e[--ns->n];
}

static void ns_free(struct ns *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->e[i].path);
	free(ns->e);
	memset(ns, 0, sizeof(*ns));
}

static void ns_copy(struct ns *dst, const struct ns *src)
{
	memset(dst, 0, sizeof(*dst));
	for (size_t i = 0; i < src->n; i++)
		ns_set(dst, src->e[i].path, src->e[i].node);
}

/* The folder part of path ("/m/s/wal" -> "/m/s"). */
static void parent_of(const char *path, char *out, size_t sz)
{
	const char *sl = strrchr(path, '/');
	size_t n = sl ? (size_t)(sl - path) : 0;

	if (n >= sz)
		n = sz - 1;
	memcpy(out, path, n);
	out[n] = '\0';
}

static int md_node_new(struct memdisk *md, bool dir)
{
	if (md->n_nodes == md->cap_nodes) {
		md->cap_nodes = md->cap_nodes ? md->cap_nodes * 2 : 32;
		md->nodes = xrealloc(md->nodes, md->cap_nodes * sizeof(*md->nodes));
	}
	memset(&md->nodes[md->n_nodes], 0, sizeof(*md->nodes));
	md->nodes[md->n_nodes].dir = dir;
	return (int)md->n_nodes++;
}

/* Set the length of a byte buffer, zero-filling growth. */
static void bytes_setlen(uint8_t **p, size_t *len, size_t *cap, size_t n)
{
	if (n > *cap) {
		size_t c = MX_MAX(n, *cap * 2);

		*p = xrealloc(*p, c);
		*cap = c;
	}
	if (n > *len)
		memset(*p + *len, 0, n - *len);
	*len = n;
}

static void md_dop(struct memdisk *md, int kind, const char *a, const char *b,
		   int node)
{
	char parent[512];
	struct dop *d;

	if (md->n_dops == md->cap_dops) {
		md->cap_dops = md->cap_dops ? md->cap_dops * 2 : 32;
		md->dops = xrealloc(md->dops, md->cap_dops * sizeof(*md->dops));
	}
	parent_of(a, parent, sizeof(parent));
	d = &md->dops[md->n_dops++];
	d->kind = kind;
	d->parent = mx_xstrdup(parent);
	d->a = mx_xstrdup(a);
	d->b = b ? mx_xstrdup(b) : NULL;
	d->node = node;
}

static void dop_free(struct dop *d)
{
	free(d->parent);
	free(d->a);
	free(d->b);
}

static void dop_apply(struct ns *ns, const struct dop *d)
{
	int i;

	switch (d->kind) {
	case DOP_LINK:
		ns_set(ns, d->a, d->node);
		break;
	case DOP_UNLINK:
		i = ns_find(ns, d->a);
		if (i >= 0 && ns->e[i].node == d->node)
			ns_del(ns, i);
		break;
	default:
		i = ns_find(ns, d->a);
		if (i >= 0 && ns->e[i].node == d->node) {
			ns_del(ns, i);
			ns_set(ns, d->b, d->node);
		}
		break;
	}
}

static void vop_add(struct memdisk *md, struct mnode *nd, bool trunc,
		    uint64_t off, const void *data, size_t len)
{
	struct vop *v;

	if (nd->n_v == nd->cap_v) {
		nd->cap_v = nd->cap_v ? nd->cap_v * 2 : 8;
		nd->v = xrealloc(nd->v, nd->cap_v * sizeof(*nd->v));
	}
	v = &nd->v[nd->n_v++];
	v->trunc = trunc;
	v->off = off;
	v->len = len;
	v->data = NULL;
	if (len) {
		v->data = mx_xcalloc(1, len);
		memcpy(v->data, data, len);
	}
	v->gseq = ++md->gseq;
}

/* Make everything volatile durable: replaying the volatile writes and
 * truncates in order over the medium gives what reads see, at the cost of
 * the volatile bytes only (not of the whole file, as a copy would). */
static void node_sync(struct mnode *nd)
{
	for (size_t i = 0; i < nd->n_v; i++) {
		const struct vop *v = &nd->v[i];

		if (v->trunc) {
			bytes_setlen(&nd->dur, &nd->dur_len, &nd->dur_cap,
				     v->off);
		} else {
			if (v->off + v->len > nd->dur_len)
				bytes_setlen(&nd->dur, &nd->dur_len,
					     &nd->dur_cap, v->off + v->len);
			if (v->len)
				memcpy(nd->dur + v->off, v->data, v->len);
		}
		free(v->data);
	}
	nd->n_v = 0;
}

/* Count a call of class cls; true if the power fails at it. */
static bool md_cut(struct memdisk *md, int cls)
{
	if (md->paused)
		return false;
	if (++md->calls != md->cut_at)
		return false;
	md->cut_class = cls;
	md->dead = true;
	return true;
}

static struct mnode *md_fd(struct memdisk *md, int fd)
{
	if (fd < 3 || fd >= MD_MAXFD + 3 || md->fdnode[fd - 3] < 0)
		abort(); /* the store used a bad fd */
	return &md->nodes[md->fdnode[fd - 3]];
}

static char md_kind(struct memdisk *md, int fd)
{
	return md->fdkind[fd - 3];
}

static int md_open(void *ctx, const char *path, int flags, mode_t mode)
{
	struct memdisk *md = ctx;
	char parent[512];
	size_t n = strlen(path);
	int i, node, slot;

	(void)mode;
	if (md->dead || md_cut(md, MC_OTHER))
		return -EIO;
	if (!(flags & O_CLOEXEC))
		abort(); /* house rule */
	i = ns_find(&md->cur, path);
	if (i >= 0) {
		node = md->cur.e[i].node;
		if (md->nodes[node].dir)
			return -EISDIR;
	} else {
		if (!(flags & O_CREAT))
			return -ENOENT;
		parent_of(path, parent, sizeof(parent));
		i = ns_find(&md->cur, parent);
		if (i < 0 || !md->nodes[md->cur.e[i].node].dir)
			return -ENOENT;
		node = md_node_new(md, false);
		ns_set(&md->cur, path, node);
		md_dop(md, DOP_LINK, path, NULL, node);
	}
	if ((flags & O_TRUNC) && md->nodes[node].cur_len) {
		struct mnode *nd = &md->nodes[node];

		nd->cur_len = 0;
		vop_add(md, nd, true, 0, NULL, 0);
	}
	for (slot = 0; slot < MD_MAXFD && md->fdnode[slot] >= 0; slot++)
		;
	if (slot == MD_MAXFD)
		return -EMFILE;
	md->fdnode[slot] = node;
	md->fdkind[slot] = (n >= 4 && !strcmp(path + n - 4, "/wal")) ||
					   (n >= 8 && !strcmp(path + n - 8, "/wal.tmp")) ?
				   'w' :
			   n >= 2 && !strcmp(path + n - 2, ".d")    ? 'd' :
			   n >= 4 && !strcmp(path + n - 4, ".tmp")  ? 't' :
								      'o';
	return slot + 3;
}

static int md_close(void *ctx, int fd)
{
	struct memdisk *md = ctx;

	(void)md_fd(md, fd);
	md->fdnode[fd - 3] = -1;
	if (md->dead || md_cut(md, MC_OTHER))
		return -EIO;
	return 0;
}

static ssize_t md_pread(void *ctx, int fd, void *buf, size_t len, uint64_t off)
{
	struct memdisk *md = ctx;
	struct mnode *nd = md_fd(md, fd);
	size_t n;

	if (md->dead ||
	    md_cut(md, md_kind(md, fd) == 'd' ? MC_APPLY : MC_OTHER))
		return -EIO;
	if (off >= nd->cur_len)
		return 0;
	n = MX_MIN(len, nd->cur_len - off);
	memcpy(buf, nd->cur + off, n);
	return (ssize_t)n;
}

/* A write that reaches the cache even when the power fails at it. */
static void md_put(struct memdisk *md, struct mnode *nd, const void *buf,
		   size_t len, uint64_t off)
{
	if (off + len > nd->cur_len)
		bytes_setlen(&nd->cur, &nd->cur_len, &nd->cur_cap, off + len);
	memcpy(nd->cur + off, buf, len);
	vop_add(md, nd, false, off, buf, len);
}

static ssize_t md_pwrite(void *ctx, int fd, const void *buf, size_t len,
			 uint64_t off)
{
	struct memdisk *md = ctx;
	struct mnode *nd = md_fd(md, fd);
	char k = md_kind(md, fd);
	bool cut;

	if (md->dead)
		return -EIO;
	cut = md_cut(md, k == 'w' ? (off < 4096 ? MC_CKPT : MC_LOG) :
			 k == 'd' ? MC_APPLY :
				    MC_CKPT);
	md_put(md, nd, buf, len, off);
	return cut ? -EIO : (ssize_t)len;
}

/* A reflink as the store may ask for one: whole blocks of the log into a
 * data file.  The destination then reads as the source did; like a write
 * the change is volatile until the destination's fsync (as XFS commits a
 * remap) and may be torn by a power cut. */
static int md_clone(void *ctx, int fd, uint64_t off, int src_fd,
		    uint64_t src_off, uint64_t len)
{
	struct memdisk *md = ctx;
	struct mnode *nd = md_fd(md, fd), *src = md_fd(md, src_fd);
	bool cut;

	if (md_kind(md, fd) != 'd' || md_kind(md, src_fd) != 'w' ||
	    off % MX_STORE_BLOCK || src_off % MX_STORE_BLOCK ||
	    len % MX_STORE_BLOCK || len == 0 || src_off + len > src->cur_len)
		abort(); /* not what the store may ask for */
	if (md->dead)
		return -EIO;
	cut = md_cut(md, MC_APPLY);
	if (md->clone_err)
		return cut ? -EIO : md->clone_err;
	md->clones++;
	md_put(md, nd, src->cur + src_off, (size_t)len, off);
	return cut ? -EIO : 0;
}

static int md_sync(void *ctx, int fd, bool data)
{
	struct memdisk *md = ctx;
	struct mnode *nd = md_fd(md, fd);

	if (md->dead ||
	    md_cut(md, data && md_kind(md, fd) == 'w' ? MC_LOG : MC_CKPT))
		return -EIO;
	node_sync(nd);
	return 0;
}

static int md_fdatasync(void *ctx, int fd)
{
	return md_sync(ctx, fd, true);
}

static int md_fsync(void *ctx, int fd)
{
	return md_sync(ctx, fd, false);
}

static int md_ftruncate(void *ctx, int fd, uint64_t size)
{
	struct memdisk *md = ctx;
	struct mnode *nd = md_fd(md, fd);

	if (md->dead ||
	    md_cut(md, md_kind(md, fd) == 'd' ? MC_APPLY : MC_CKPT))
		return -EIO;
	bytes_setlen(&nd->cur, &nd->cur_len, &nd->cur_cap, size);
	vop_add(md, nd, true, size, NULL, 0);
	return 0;
}

static int md_fstat_size(void *ctx, int fd, uint64_t *size)
{
	struct memdisk *md = ctx;
	struct mnode *nd = md_fd(md, fd);

	if (md->dead || md_cut(md, MC_OTHER))
		return -EIO;
	*size = nd->cur_len;
	return 0;
}

static int md_rename(void *ctx, const char *from, const char *to)
{
	struct memdisk *md = ctx;
	char pf[512], pt[512];
	int i, node;

	if (md->dead || md_cut(md, MC_CKPT))
		return -EIO;
	parent_of(from, pf, sizeof(pf));
	parent_of(to, pt, sizeof(pt));
	if (strcmp(pf, pt))
		abort(); /* the store renames within a folder only */
	i = ns_find(&md->cur, from);
	if (i < 0)
		return -ENOENT;
	node = md->cur.e[i].node;
	ns_del(&md->cur, i);
	ns_set(&md->cur, to, node);
	md_dop(md, DOP_RENAME, from, to, node);
	return 0;
}

static int md_unlink(void *ctx, const char *path)
{
	struct memdisk *md = ctx;
	int i;

	if (md->dead || md_cut(md, MC_CKPT))
		return -EIO;
	i = ns_find(&md->cur, path);
	if (i < 0)
		return -ENOENT;
	if (md->nodes[md->cur.e[i].node].dir)
		return -EISDIR;
	md_dop(md, DOP_UNLINK, path, NULL, md->cur.e[i].node);
	ns_del(&md->cur, i);
	return 0;
}

static int md_mkdir(void *ctx, const char *path, mode_t mode)
{
	struct memdisk *md = ctx;
	char parent[512];
	int i, node;

	(void)mode;
	if (md->dead || md_cut(md, MC_OTHER))
		return -EIO;
	if (ns_find(&md->cur, path) >= 0)
		return -EEXIST;
	parent_of(path, parent, sizeof(parent));
	i = ns_find(&md->cur, parent);
	if (i < 0 || !md->nodes[md->cur.e[i].node].dir)
		return -ENOENT;
	node = md_node_new(md, true);
	ns_set(&md->cur, path, node);
	md_dop(md, DOP_LINK, path, NULL, node);
	return 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int md_listdir(void *ctx, const char *path,
		      int (*cb)(void *arg, const char *name), void *arg)
{
	struct memdisk *md = ctx;
	char parent[512];
	const char **v;
	size_t n = 0;
	int i, r = 0;

	if (md->dead || md_cut(md, MC_OTHER))
		return -EIO;
	i = ns_find(&md->cur, path);
	if (i < 0)
		return -ENOENT;
	if (!md->nodes[md->cur.e[i].node].dir)
		return -ENOTDIR;
	v = mx_xcalloc(md->cur.n + 1, sizeof(*v));
	for (size_t j = 0; j < md->cur.n; j++) {
		parent_of(md->cur.e[j].path, parent, sizeof(parent));
		if (!strcmp(parent, path))
			v[n++] = strrchr(md->cur.e[j].path, '/') + 1;
	}
	qsort(v, n, sizeof(*v), str_cmp);
	for (size_t j = 0; j < n && !r; j++)
		r = cb(arg, v[j]);
	free(v);
	return r;
}

static int md_fsync_dir(void *ctx, const char *path)
{
	struct memdisk *md = ctx;
	size_t j = 0;

	if (md->dead || md_cut(md, MC_CKPT))
		return -EIO;
	if (ns_find(&md->cur, path) < 0)
		return -ENOENT;
	for (size_t i = 0; i < md->n_dops; i++) {
		if (!strcmp(md->dops[i].parent, path)) {
			dop_apply(&md->dur, &md->dops[i]);
			dop_free(&md->dops[i]);
		} else {
			md->dops[j++] = md->dops[i];
		}
	}
	md->n_dops = j;
	return 0;
}

/* Everything volatile becomes durable: file contents, lengths and names. */
static int md_syncfs(void *ctx, int fd)
{
	struct memdisk *md = ctx;

	(void)md_fd(md, fd);
	if (md->dead || md_cut(md, MC_OTHER))
		return -EIO;
	for (size_t i = 0; i < md->n_nodes; i++)
		node_sync(&md->nodes[i]);
	for (size_t i = 0; i < md->n_dops; i++) {
		dop_apply(&md->dur, &md->dops[i]);
		dop_free(&md->dops[i]);
	}
	md->n_dops = 0;
	return 0;
}

/* The syncs of a batch one by one, in a random order (a disk that runs
 * them at once may finish them in any), each tried whatever the others
 * return; the first error. */
static int md_sync_many(void *ctx, const int *fds, size_t n_fds,
			const char *const *dirs, size_t n_dirs)
{
	struct memdisk *md = ctx;
	size_t n = n_fds + n_dirs, *order = mx_xcalloc(n ? n : 1, sizeof(*order));
	int err = 0;

	md->many++;
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j, t;

		md->rng = md->rng * 6364136223846793005ull + 1442695040888963407ull;
		j = (size_t)((md->rng >> 33) % i);
		t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < n; i++) {
		size_t k = order[i];
		int r = k < n_fds ? md_fsync(md, fds[k]) : md_fsync_dir(md, dirs[k - n_fds]);

		if (r && !err)
			err = r;
	}
	free(order);
	return err;
}

/* A disk holding only the root folder, durably (with_root), or nothing. */
static struct memdisk *md_new(bool with_root)
{
	struct memdisk *md = mx_xcalloc(1, sizeof(*md));

	md->io = (struct mx_store_io){ md_open,	    md_close,	  md_pread,
				       md_pwrite,   md_fdatasync, md_fsync,
				       md_ftruncate, md_fstat_size, md_rename,
				       md_unlink,   md_mkdir,	  md_listdir,
				       md_fsync_dir, md };
	md->io.clone = md_clone;
	md->io.syncfs = md_syncfs;
	md->io.sync_many = md_sync_many;
	for (int i = 0; i < MD_MAXFD; i++)
		md->fdnode[i] = -1;
	if (with_root) {
		int root = md_node_new(md, true);

		ns_set(&md->cur, MD_ROOT, root);
		ns_set(&md->dur, MD_ROOT, root);
	}
	return md;
}

static void md_free(struct memdisk *md)
{
	if (!md)
		return;
	for (size_t i = 0; i < md->n_nodes; i++) {
		struct mnode *nd = &md->nodes[i];

		free(nd->cur);
		free(nd->dur);
		for (size_t j = 0; j < nd->n_v; j++)
			free(nd->v[j].data);
		free(nd->v);
	}
	free(md->nodes);
	ns_free(&md->cur);
	ns_free(&md->dur);
	for (size_t i = 0; i < md->n_dops; i++)
		dop_free(&md->dops[i]);
	free(md->dops);
	free(md);
}

/* What survives of one file's content under mode. */
static void crash_content(const struct mnode *nd, int mode, uint64_t *r,
			  uint64_t last_gseq, uint8_t **out, size_t *out_len)
{
	uint8_t *b = NULL;
	size_t len = 0, cap = 0;

	bytes_setlen(&b, &len, &cap, nd->dur_len);
	if (nd->dur_len)
		memcpy(b, nd->dur, nd->dur_len);
	for (size_t i = 0; i < nd->n_v; i++) {
		const struct vop *v = &nd->v[i];
		bool keep, torn = false;
		uint64_t s0, s1, k = 0;

		switch (mode) {
		case CR_DROP:
			keep = false;
			break;
		case CR_KEEP:
			keep = true;
			break;
		case CR_RANDOM:
			keep = rnd(r) % 2;
			torn = keep && !v->trunc && rnd(r) % 3 == 0;
			break;
		default:
			keep = true;
			torn = !v->trunc && v->gseq == last_gseq;
			break;
		}
		if (!keep)
			continue;
		if (v->trunc) {
			bytes_setlen(&b, &len, &cap, v->off);
			continue;
		}
		s0 = v->off / MD_SECTOR;
		s1 = (v->off + v->len + MD_SECTOR - 1) / MD_SECTOR;
		if (torn && mode == CR_TORN_LAST)
			k = rnd(r) % (s1 - s0 + 1); /* sectors that land */
		for (uint64_t s = s0; s < s1; s++) {
			uint64_t lo = MX_MAX(v->off, s * MD_SECTOR);
			uint64_t hi = MX_MIN(v->off + v->len, (s + 1) * MD_SECTOR);

			if (torn && mode == CR_TORN_LAST && s - s0 >= k)
				break;
			if (torn && mode == CR_RANDOM && rnd(r) % 2)
				continue;
			if (hi > len)
				bytes_setlen(&b, &len, &cap, hi);
			memcpy(b + lo, v->data + (lo - v->off), hi - lo);
		}
	}
	*out = b;
	*out_len = len;
}

static char *dup_or_null(const char *p)
{
	return p ? mx_xstrdup(p) : NULL;
}

/* The process is killed at the cut: the next one starts on the same disk,
 * whose cache survives and stays volatile (a power cut may follow). */
static struct memdisk *md_kill(const struct memdisk *md)
{
	struct memdisk *nd = md_new(false);

	for (size_t i = 0; i < md->n_nodes; i++) {
		const struct mnode *on = &md->nodes[i];
		int n = md_node_new(nd, on->dir);
		struct mnode *nn = &nd->nodes[n];

		bytes_setlen(&nn->cur, &nn->cur_len, &nn->cur_cap, on->cur_len);
		if (on->cur_len)
			memcpy(nn->cur, on->cur, on->cur_len);
		bytes_setlen(&nn->dur, &nn->dur_len, &nn->dur_cap, on->dur_len);
		if (on->dur_len)
			memcpy(nn->dur, on->dur, on->dur_len);
		for (size_t j = 0; j < on->n_v; j++) {
			const struct vop *v = &on->v[j];

			vop_add(nd, nn, v->trunc, v->off, v->data, v->len);
			nn->v[j].gseq = v->gseq;
		}
	}
	ns_copy(&nd->cur, &md->cur);
	ns_copy(&nd->dur, &md->dur);
	nd->dops = xrealloc(NULL, md->n_dops * sizeof(*nd->dops));
	nd->cap_dops = nd->n_dops = md->n_dops;
	for (size_t i = 0; i < md->n_dops; i++) {
		const struct dop *d = &md->dops[i];

		nd->dops[i] = (struct dop){ d->kind, dup_or_null(d->parent),
					    dup_or_null(d->a), dup_or_null(d->b),
					    d->node };
	}
	nd->gseq = md->gseq;
	return nd;
}

/* The image that survives a power failure of md, as a fresh disk, or
 * after a kill (CR_KILL) md as it is. */
static struct memdisk *md_crash(const struct memdisk *md, uint64_t seed,
				int mode)
{
	struct memdisk *nd;
	char parent[512];
	uint64_t r = seed, last = 0;
	struct ns img;
	int *map;
	bool changed;

	if (mode == CR_KILL)
		return md_kill(md);
	nd = md_new(false);
	ns_copy(&img, &md->dur);
	for (size_t i = 0; i < md->n_dops; i++) {
		bool keep = mode == CR_KEEP ||
			    ((mode == CR_RANDOM || mode == CR_TORN_LAST) &&
			     rnd(&r) % 2);

		if (keep)
			dop_apply(&img, &md->dops[i]);
	}
	/* Names in folders that did not survive are gone. */
	do {
		changed = false;
		for (size_t i = 0; i < img.n; i++) {
			int j;

			if (!strcmp(img.e[i].path, MD_ROOT))
				continue;
			parent_of(img.e[i].path, parent, sizeof(parent));
			j = ns_find(&img, parent);
			if (j < 0 || !md->nodes[img.e[j].node].dir) {
				ns_del(&img, (int)i);
				changed = true;
				break;
			}
		}
	} while (changed);
	for (size_t i = 0; i < md->n_nodes; i++)
		for (size_t j = 0; j < md->nodes[i].n_v; j++)
			if (!md->nodes[i].v[j].trunc)
				last = MX_MAX(last, md->nodes[i].v[j].gseq);
	map = mx_xcalloc(md->n_nodes, sizeof(*map));
	for (size_t i = 0; i < md->n_nodes; i++)
		map[i] = -1;
	for (size_t i = 0; i < img.n; i++) {
		int old = img.e[i].node;

		if (map[old] < 0) {
			const struct mnode *on = &md->nodes[old];
			struct mnode *nn;
			int n = md_node_new(nd, on->dir);

			map[old] = n;
			nn = &nd->nodes[n];
			if (!on->dir) {
				crash_content(on, mode, &r, last, &nn->cur,
					      &nn->cur_len);
				nn->cur_cap = nn->cur_len;
				nn->dur = xrealloc(NULL, nn->cur_len);
				nn->dur_cap = nn->cur_len;
				if (nn->cur_len)
					memcpy(nn->dur, nn->cur, nn->cur_len);
				nn->dur_len = nn->cur_len;
			}
		}
		ns_set(&nd->cur, img.e[i].path, map[old]);
		ns_set(&nd->dur, img.e[i].path, map[old]);
	}
	free(map);
	ns_free(&img);
	return nd;
}

/* ---- Test 2: the crash sweep -------------------------------------------- */

#define CHAIN_MAX 40

struct session {
	struct model m;	  /* what every acknowledged commit made */
	struct model alt; /* m and the commit in flight at the cut */
	bool has_alt;
	struct wl wl;
	uint64_t ckpt_bytes;
	uint32_t log_max;
	uint64_t clone_min; /* whole-block writes from this size are cloned */
	int clone_err;	    /* the disk's clones fail with it, if not 0 */
	bool one_by_one;    /* the disk has no sync_many */
	int failures;
	long in_flight_present, in_flight_absent;
	/* Writeback (test_crash_wb): the states after each commit since the
	 * last sync, oldest first.  A power cut may leave any of them (a
	 * prefix of the unsynced commits), never one with a synced commit
	 * missing. */
	bool wb;
	struct model chain[CHAIN_MAX];
	int n_chain;
	long wb_prefix_lost, wb_unsynced, wb_split;
	long clone_misaligned; /* the stores' stats, summed at each close */
	long clone_refused;    /* stores that turned cloning off */
	/* The last cut was a kill, and no power cut came after it: every
	 * acknowledged commit must be there at the next open. */
	bool killed;
};

struct crash_totals {
	long runs, cut_points, second_cuts, failures;
	long by_class[MC_N], by_mode[CR_N];
	long present, absent;
	long prefix_lost, unsynced, split;
	long clones, clone_misaligned, clone_refused;
	int failed_seeds_shown;
};

/* Open the store on md and check it shows m, or alt if a commit was in
 * flight at the last cut (then alt becomes m).  NULL if the power failed
 * during the open. */
static struct mx_store *s_open(struct session *s, struct memdisk *md)
{
	struct mx_store_opts opts = { .io = &md->io,
				      .wal_checkpoint_bytes = s->ckpt_bytes,
				      .pg_log_max = s->log_max,
				      .clone_min = s->clone_min };
	struct mx_store *st;
	bool killed = s->killed;
	int r;

	md->clone_err = s->clone_err;
	md->io.sync_many = s->one_by_one ? NULL : md_sync_many;
	md->rng ^= (uint64_t)md->calls * 0x9e3779b97f4a7c15ull;
	r = mx_store_open(MD_ROOT "/s", &opts, &st);
	s->killed = false; /* a cut in this open is a power cut */
	if (r) {
		if (!md->dead) {
			fprintf(stderr, "  open failed on a live disk: %d\n", r);
			s->failures++;
		}
		return NULL;
	}
	md->paused = true; /* checking is not part of the workload */
	if (s->n_chain) {
		int k = -1;

		if (verify(st, &s->m, false) == 0)
			k = 0;
		for (int i = s->n_chain; k < 0 && i-- > 0;)
			if (verify(st, &s->chain[i], false) == 0) {
				model_free(&s->m);
				s->m = s->chain[i];
				memset(&s->chain[i], 0, sizeof(s->chain[i]));
				k = i + 1;
			}
		if (k < 0) {
			fprintf(stderr, "  store is no prefix of the commits "
					"since the last sync:\n");
			(void)verify(st, &s->m, true);
			s->failures++;
		} else if (killed && k < s->n_chain - 1) {
			/* A kill keeps the cache: at most the commit in
			 * flight at the cut may be missing. */
			fprintf(stderr, "  a kill lost %d acknowledged commits\n",
				s->n_chain - 1 - k);
			s->failures++;
		} else if (k < s->n_chain) {
			s->wb_prefix_lost++;
		}
		for (int i = 0; i < s->n_chain; i++)
			model_free(&s->chain[i]);
		s->n_chain = 0;
		md->paused = false;
		return st;
	}
	if (verify(st, &s->m, false) == 0) {
		if (s->has_alt)
			s->in_flight_absent++;
	} else if (s->has_alt && verify(st, &s->alt, false) == 0) {
		model_free(&s->m);
		s->m = s->alt;
		memset(&s->alt, 0, sizeof(s->alt));
		s->in_flight_present++;
	} else {
		fprintf(stderr, "  store differs from the acknowledged state:\n");
		(void)verify(st, &s->m, true);
		if (s->has_alt) {
			fprintf(stderr, "  and from it plus the commit in flight:\n");
			(void)verify(st, &s->alt, true);
		}
		s->failures++;
	}
	if (s->has_alt)
		model_free(&s->alt);
	s->has_alt = false;
	md->paused = false;
	return st;
}

static void s_close(struct session *s, struct mx_store *st)
{
	struct mx_store_stats ss;

	mx_store_get_stats(st, &ss);
	s->clone_misaligned += (long)ss.clone_misaligned;
	s->clone_refused += ss.clone_refused != 0;
	mx_store_close(st);
}

/* One power-on period: open (and check), then steps commits of 1-3
 * transactions with a checkpoint after every 8th and a clean close and
 * reopen after step reopen_at, then close.  False if the power failed. */
static bool s_run(struct session *s, struct memdisk *md, int steps,
		  int reopen_at)
{
	struct mx_store *st = s_open(s, md);

	if (!st)
		return false;
	for (int i = 0; i < steps; i++) {
		struct tx x[3];
		int n = 1 + (int)(rnd(&s->wl.rng) % 3), r;

		for (int j = 0; j < n; j++) {
			wl_step(&s->wl, &x[j]);
			r = tx_queue(st, &x[j]);
			if (r) {
				fprintf(stderr, "  queue: %d\n", r);
				s->failures++;
			}
		}
		r = mx_store_commit(st);
		if (r) {
			if (!md->dead) {
				fprintf(stderr, "  commit: %d\n", r);
				s->failures++;
			}
			model_copy(&s->alt, &s->m);
			for (int j = 0; j < n; j++)
				tx_model(&s->alt, &x[j]);
			s->has_alt = true;
		} else {
			for (int j = 0; j < n; j++)
				tx_model(&s->m, &x[j]);
		}
		for (int j = 0; j < n; j++)
			tx_free(&x[j]);
		if (r) {
			s_close(s, st);
			return false;
		}
		if (i % 8 == 7 && mx_store_checkpoint(st)) {
			if (!md->dead)
				s->failures++;
			s_close(s, st);
			return false;
		}
		if (i == reopen_at) {
			s_close(s, st);
			if (md->dead)
				return false;
			st = s_open(s, md);
			if (!st)
				return false;
		}
	}
	s_close(s, st);
	return !md->dead;
}

/* The newest state the workload made: the last of the chain, or m. */
static struct model *s_cur(struct session *s)
{
	return s->n_chain ? &s->chain[s->n_chain - 1] : &s->m;
}

/* Everything so far is durable: the newest state is the only one. */
static void s_synced(struct session *s)
{
	if (!s->n_chain)
		return;
	model_free(&s->m);
	s->m = s->chain[s->n_chain - 1];
	memset(&s->chain[s->n_chain - 1], 0, sizeof(s->chain[0]));
	for (int i = 0; i < s->n_chain - 1; i++)
		model_free(&s->chain[i]);
	s->n_chain = 0;
}

/* A split sync (mx_store_sync_begin/run/end) made the first k states of
 * the chain durable: the k-th is the base now, later ones stay possible. */
static void s_synced_upto(struct session *s, int k)
{
	if (k <= 0)
		return;
	model_free(&s->m);
	s->m = s->chain[k - 1];
	for (int i = 0; i < k - 1; i++)
		model_free(&s->chain[i]);
	memmove(&s->chain[0], &s->chain[k], (size_t)(s->n_chain - k) * sizeof(s->chain[0]));
	memset(&s->chain[s->n_chain - k], 0, (size_t)k * sizeof(s->chain[0]));
	s->n_chain -= k;
}

/* s_run in writeback: each step commits unsynced (3 in 5), commits with a
 * sync (1 in 5), or commits unsynced and then syncs (1 in 5); a
 * checkpoint after every 8th step.  Every commit's state joins the chain
 * until a sync makes it the only one.  A split sync begins after some
 * steps, runs its fdatasync a few steps later and ends after a few more,
 * covering only the commits before its beginning; a full sync or a
 * checkpoint in between covers it. */
static bool s_run_wb(struct session *s, struct memdisk *md, int steps,
		     int reopen_at)
{
	struct mx_store *st = s_open(s, md);
	struct mx_store_sync sy;
	int sy_on = 0; /* 1: begun, 2: run, its end to come */
	int sy_k = 0;

	if (!st)
		return false;
	for (int i = 0; i < steps; i++) {
		struct tx x[3];
		int n = 1 + (int)(rnd(&s->wl.rng) % 3), r;
		int how = (int)(rnd(&s->wl.rng) % 5);
		struct model *next;

		for (int j = 0; j < n; j++) {
			wl_step(&s->wl, &x[j]);
			r = tx_queue(st, &x[j]);
			if (r) {
				fprintf(stderr, "  queue: %d\n", r);
				s->failures++;
			}
		}
		if (s->n_chain >= CHAIN_MAX)
			abort(); /* steps per period < CHAIN_MAX */
		next = &s->chain[s->n_chain];
		model_copy(next, s_cur(s));
		for (int j = 0; j < n; j++) {
			tx_model(next, &x[j]);
			tx_free(&x[j]);
		}
		s->n_chain++;
		r = how == 4 ? mx_store_commit(st) : mx_store_commit_unsynced(st);
		if (!r && how == 3)
			r = mx_store_sync(st);
		if (!r && how != 4 && how != 3)
			s->wb_unsynced++;
		if (!r && !mx_store_unsynced(st)) {
			s_synced(s);
			sy_k = 0;
		}
		if (!r && sy_on == 1 && rnd(&s->wl.rng) % 2) {
			mx_store_sync_run(&sy); /* done; its end comes later */
			sy_on = 2;
		} else if (!r && sy_on == 2 && rnd(&s->wl.rng) % 2) {
			r = mx_store_sync_end(st, &sy);
			sy_on = 0;
			if (!r) {
				s->wb_split++;
				s_synced_upto(s, sy_k);
				if (!mx_store_unsynced(st))
					s_synced(s);
			}
		} else if (!r && !sy_on && rnd(&s->wl.rng) % 3 == 0 &&
			   mx_store_sync_begin(st, &sy) == 1) {
			sy_on = 1;
			sy_k = s->n_chain;
		}
		if (!r && i % 8 == 7) {
			r = mx_store_checkpoint(st);
			if (!r) {
				s_synced(s);
				sy_k = 0;
			}
		}
		if (r) {
			if (!md->dead) {
				fprintf(stderr, "  commit/sync: %d\n", r);
				s->failures++;
			}
			s_close(s, st);
			return false;
		}
		if (i == reopen_at) {
			s_close(s, st);
			sy_on = 0;
			if (md->dead)
				return false;
			s_synced(s);
			st = s_open(s, md);
			if (!st)
				return false;
		}
	}
	s_close(s, st);
	if (md->dead)
		return false;
	s_synced(s);
	return true;
}

/* Open, check and close with no power failure. */
static void s_final(struct session *s, struct memdisk *md)
{
	struct mx_store *st;

	md->cut_at = 0;
	st = s_open(s, md);
	if (!st) {
		fprintf(stderr, "  final open failed\n");
		s->failures++;
		return;
	}
	s_close(s, st);
}

/* Run the workload of seed with the power failing at call cut (0: never),
 * then recover, sometimes failing the power again during recovery or the
 * commits after it, and check every time.  Returns the number of calls the
 * first period made. */
static long run_one(uint64_t seed, long cut, struct crash_totals *ct,
		    bool wb)
{
	struct session *s = mx_xcalloc(1, sizeof(*s));
	struct memdisk *md = md_new(true), *md2, *md3;
	uint64_t cr = seed * 1000003u + (uint64_t)cut;
	long calls;
	int mode;

	wl_init(&s->wl, seed);
	s->ckpt_bytes = seed % 3 == 0 ? 6000 : seed % 3 == 1 ? 24000 : 1u << 20;
	/* Small bounds trim by count all the time; 0 is the default. */
	s->log_max = (uint32_t[]){ 3, 5, 9, 0 }[seed % 4];
	s->m.log_max = s->log_max;
	/* Four seeds in five apply whole-block writes by cloning the log's
	 * blocks (md_clone()); the fifth copies them all.  (Five: prime to
	 * the moduli above, so both ways meet every log size and bound.) */
	s->clone_min = seed % 5 == 4 ? UINT64_MAX : MX_STORE_BLOCK;
	/* And a disk whose clones fail: one that cannot clone (the store
	 * copies from then on), or one that fails each for the moment (the
	 * store copies that write). */
	s->clone_err = seed % 7 == 3 ? -EOPNOTSUPP : seed % 7 == 5 ? -EIO : 0;
	/* A checkpoint's syncs go to the disk together, in any order
	 * (md_sync_many()), except on one seed in two, one after the other. */
	s->one_by_one = seed % 2 == 1;
	md->cut_at = cut;
	s->wb = wb;
	if (wb ? s_run_wb(s, md, 24, 12) : s_run(s, md, 24, 12)) {
		calls = md->calls;
		s_final(s, md);
	} else {
		calls = md->calls;
		ct->by_class[md->cut_class]++;
		mode = (int)(rnd(&cr) % CR_N);
		ct->by_mode[mode]++;
		md2 = md_crash(md, rnd(&cr), mode);
		s->killed = mode == CR_KILL;
		if (rnd(&cr) % 2)
			md2->cut_at = 1 + (long)(rnd(&cr) % 160);
		if (wb ? s_run_wb(s, md2, 3, -1) : s_run(s, md2, 3, -1)) {
			s_final(s, md2);
		} else {
			ct->second_cuts++;
			md3 = md_crash(md2, rnd(&cr), (int)(rnd(&cr) % CR_N));
			s_final(s, md3);
			ct->clones += md3->clones;
			md_free(md3);
		}
		ct->clones += md2->clones;
		md_free(md2);
	}
	ct->present += s->in_flight_present;
	ct->absent += s->in_flight_absent;
	ct->prefix_lost += s->wb_prefix_lost;
	ct->unsynced += s->wb_unsynced;
	ct->split += s->wb_split;
	if (s->failures) {
		ct->failures += s->failures;
		if (ct->failed_seeds_shown++ < 10)
			fprintf(stderr,
				"crash sweep: seed %llu cut %ld failed "
				"(MX_STORE_CRASH_ONLY=%llu:%ld reruns it)\n",
				(unsigned long long)seed, cut,
				(unsigned long long)seed, cut);
	}
	ct->clones += md->clones;
	ct->clone_misaligned += s->clone_misaligned;
	ct->clone_refused += s->clone_refused;
	ct->runs++;
	model_free(&s->m);
	model_free(&s->alt);
	for (int i = 0; i < s->n_chain; i++)
		model_free(&s->chain[i]);
	free(s);
	md_free(md);
	return calls;
}

static void test_crash(void)
{
	const char *env = getenv("MX_STORE_CRASH_SEEDS");
	const char *only = getenv("MX_STORE_CRASH_ONLY");
	long seeds = env ? atol(env) : 40;
	struct crash_totals ct = { 0 };
	uint64_t t0 = mx_now_ns();

	if (only) {
		unsigned long long seed = 0;
		long cut = 0;

		if (sscanf(only, "%llu:%ld", &seed, &cut) == 2)
			(void)run_one(seed, cut, &ct, false);
		CHECK_EQ_INT(ct.failures, 0);
		return;
	}
	for (long seed = 1; seed <= seeds; seed++) {
		long total = run_one((uint64_t)seed, 0, &ct, false);

		for (long cut = 1; cut <= total; cut++)
			(void)run_one((uint64_t)seed, cut, &ct, false);
		ct.cut_points += total;
	}
	fprintf(stderr,
		"crash sweep: %ld seeds, %ld cut points (every I/O call), "
		"%ld runs, %ld second cuts (in recovery or the commits after), %.1f s\n",
		seeds, ct.cut_points, ct.runs, ct.second_cuts,
		(double)(mx_now_ns() - t0) / 1e9);
	fprintf(stderr, "  cut at:");
	for (int i = 0; i < MC_N; i++)
		fprintf(stderr, " %s %ld%s", mclass_names[i], ct.by_class[i],
			i + 1 < MC_N ? "," : "\n");
	fprintf(stderr, "  survivors:");
	for (int i = 0; i < CR_N; i++)
		fprintf(stderr, " %s %ld%s", cr_names[i], ct.by_mode[i],
			i + 1 < CR_N ? "," : "\n");
	fprintf(stderr,
		"  commit in flight at the cut: present %ld, absent %ld; "
		"writes applied by clone %ld\n",
		ct.present, ct.absent, ct.clones);
	CHECK(ct.cut_points > 0);
	CHECK(ct.clones > 0);
	CHECK_EQ_INT(ct.clone_misaligned, 0); /* no padded write misplaced */
	CHECK(ct.clone_refused > 0);	      /* a disk that cannot clone */
	CHECK_EQ_INT(ct.failures, 0);
}

/* The crash sweep with unsynced commits (docs/cache-modes.md): after every
 * power cut the store shows the state of the last sync followed by a
 * prefix of the commits after it. */
static void test_crash_wb(void)
{
	const char *env = getenv("MX_STORE_CRASH_SEEDS");
	const char *only = getenv("MX_STORE_WB_ONLY");

	if (only && !strchr(only, ':'))
		only = NULL; /* just this test */
	long seeds = env ? atol(env) : 15;
	struct crash_totals ct = { 0 };
	uint64_t t0 = mx_now_ns();

	if (only) {
		unsigned long long seed = 0;
		long cut = 0;

		if (sscanf(only, "%llu:%ld", &seed, &cut) == 2)
			(void)run_one(seed, cut, &ct, true);
		CHECK_EQ_INT(ct.failures, 0);
		return;
	}
	for (long seed = 1; seed <= seeds; seed++) {
		long total = run_one((uint64_t)seed, 0, &ct, true);

		for (long cut = 1; cut <= total; cut++)
			(void)run_one((uint64_t)seed, cut, &ct, true);
		ct.cut_points += total;
	}
	fprintf(stderr,
		"writeback crash sweep: %ld seeds, %ld cut points, %ld second "
		"cuts, %ld unsynced commits, %ld split syncs, %ld recoveries "
		"lost an unsynced suffix, %ld writes applied by clone, %.1f s\n",
		seeds, ct.cut_points, ct.second_cuts, ct.unsynced, ct.split,
		ct.prefix_lost, ct.clones, (double)(mx_now_ns() - t0) / 1e9);
	CHECK(ct.cut_points > 0);
	CHECK(ct.split > 0);
	CHECK(ct.clones > 0);
	CHECK_EQ_INT(ct.clone_misaligned, 0);
	CHECK(ct.prefix_lost > 0); /* the sweep reached the interesting case */
	CHECK_EQ_INT(ct.failures, 0);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	bool wb_only = getenv("MX_STORE_WB_ONLY") != NULL;
	bool crash_only = getenv("MX_STORE_CRASH_ONLY") != NULL || wb_only;

	(void)snprintf(tmp_root, sizeof(tmp_root), "%s/mx-store-XXXXXX",
		       t && *t ? t : "/tmp");
	if (!mkdtemp(tmp_root)) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	if (!crash_only) {
		test_api();
		test_reopen();
		test_many();
		test_bitrot();
		test_log_damage();
		test_faults();
		test_invalid();
		test_pglog_basic();
		test_pglog_trim();
		test_pglog_reset();
		test_pg_remove();
		test_pglog_files();
		test_wb_basics();
		test_wb_split();
		test_wb_kept();
		test_writeback_hint();
		test_sync_many();
		test_clone_xfs();
	}
	if (!wb_only)
		test_crash();
	if (!crash_only || wb_only)
		test_crash_wb();
	rm_rf(tmp_root);
	return mx_check_done("store");
}

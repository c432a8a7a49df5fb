/*
 * Unit tests of osd/store.c.  On a real temporary folder: the API
 * (writes, partial overwrites, holes, truncation, removal, attributes,
 * listings, versions), reopening after a clean close, after a checkpoint
 * and a kill, after a kill alone and with a tiny log, bit rot, damaged
 * metadata and log, injected EIO and ENOSPC, and malformed transactions.
 * Then the crash sweep: a random workload runs against a simulated disk
 * whose write cache loses, keeps or tears unsynced writes and folder
 * changes at a power cut; the cut falls at every I/O call of the workload
 * in turn, for many seeds, and every surviving image is reopened (and
 * sometimes cut again during recovery) and compared with an in-memory
 * model.  MX_STORE_CRASH_SEEDS sets the number of seeds.
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

#include "check.h"
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

struct mpg {
	int32_t pool;
	uint32_t pg;
	struct mx_version last;
};

struct model {
	struct mobj o[M_KEYS];
	int n;
	struct mpg pg[M_PGS];
	int n_pg;
};

static void model_free(struct model *m)
{
	for (int i = 0; i < m->n; i++) {
		free(m->o[i].data);
		for (int j = 0; j < m->o[i].n_xa; j++)
			free(m->o[i].xa[j].val);
	}
	memset(m, 0, sizeof(*m));
}

static void model_copy(struct model *dst, const struct model *src)
{
	memcpy(dst, src, sizeof(*dst));
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

static void model_apply(struct model *m, const struct mx_txn *t)
{
	struct mobj *o = model_obj(m, &t->key);
	struct mpg *p = NULL;

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
	for (int i = 0; i < m->n_pg; i++)
		if (m->pg[i].pool == t->key.pool && m->pg[i].pg == t->key.pg)
			p = &m->pg[i];
	if (!p) {
		if (m->n_pg == M_PGS)
			abort();
		p = &m->pg[m->n_pg++];
		p->pool = t->key.pool;
		p->pg = t->key.pg;
		p->last = (struct mx_version){ 0, 0 };
	}
	if (mx_version_cmp(t->version, p->last) > 0)
		p->last = t->version;
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

/* Compare everything the store shows with m.  Returns the number of
 * differences; prints them when loud. */
static int verify(struct mx_store *st, const struct model *m, bool loud)
{
	struct mx_store_stats ss;
	struct list_seen ls = { .m = m };
	uint64_t objects = 0, bytes = 0, vr = 1;
	int bad = 0, r;

#define VFAIL(...)                                                             \
	do {                                                                   \
		bad++;                                                         \
		if (loud)                                                      \
			fprintf(stderr, "  verify: " __VA_ARGS__);             \
	} while (0)

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
	mx_store_get_stats(st, &ss);
	if (ss.objects != objects || ss.bytes != bytes || ss.csum_errors)
		VFAIL("stats objects %llu/%llu bytes %llu/%llu csum %llu\n",
		      (unsigned long long)ss.objects,
		      (unsigned long long)objects,
		      (unsigned long long)ss.bytes, (unsigned long long)bytes,
		      (unsigned long long)ss.csum_errors);
#undef VFAIL
	return bad;
}

/* Queue and commit one transaction, and apply it to the model. */
static int do_txn(struct mx_store *st, struct model *m, struct mx_objkey k,
		  struct mx_version v, uint32_t n, const struct mx_txn_op *ops)
{
	struct mx_txn t = { k, v, n, ops };
	int r = mx_store_queue(st, &t);

	if (!r)
		r = mx_store_commit(st);
	if (!r)
		model_apply(m, &t);
	return r;
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

/* A generated transaction and the buffers it owns. */
struct tx {
	struct mx_txn t;
	struct mx_txn_op ops[3];
	uint8_t *bufs[3]; /* From malloc() */
};

static void tx_free(struct tx *x)
{
	for (int i = 0; i < 3; i++)
		free(x->bufs[i]);
	memset(x, 0, sizeof(*x));
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
			for (uint32_t j = 0; j < len; j++)
				x->bufs[i][j] = (uint8_t)rnd(r);
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
			for (uint32_t j = 0; j < len; j++)
				x->bufs[i][j] = (uint8_t)rnd(r);
			*op = OPS(xn ? xn : w->long_xname, x->bufs[i], len);
		} else if (c < 93) {
			xn = wl_xnames[rnd(r) % MX_ARRAY_SIZE(wl_xnames)];
			*op = OPX(xn ? xn : w->long_xname);
		} else {
			*op = OPC();
		}
	}
}

/* ---- A wrapper over the real system: kill switch and fault injection ---- */

enum wclass { W_WAL_WRITE, W_DATA_WRITE, W_WAL_SYNC, W_FSYNC, W_OTHER, W_N };

struct wrapio {
	struct mx_store_io io;
	bool killed;	  /* every call fails, as if the process died */
	int fail_class;	  /* enum wclass to fail */
	int fail_nth;	  /* fail the nth call of that class (1-based) */
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
	if (++w->count[c] == w->fail_nth && c == w->fail_class)
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

static void wrapio_init(struct wrapio *w)
{
	memset(w, 0, sizeof(*w));
	w->io = (struct mx_store_io){ w_open,	   w_close,	w_pread,
				      w_pwrite,	   w_fdatasync, w_fsync,
				      w_ftruncate, w_fstat_size, w_rename,
				      w_unlink,	   w_mkdir,	w_listdir,
				      w_fsync_dir, w };
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
		struct mx_txn t = { k1, { 3, ++seq }, 1, ops };
		struct mx_txn t2 = { K(1, 2, "new"), { 3, ++seq }, 1, ops };

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
		if (mode == 3)
			opts.wal_checkpoint_bytes = 9000;
		wl_init(&wl, 1000 + (uint64_t)mode);
		CHECK_EQ_INT(mx_store_open(dir, &opts, &st), 0);
		if (!st)
			continue;
		for (int round = 0; round < 3; round++) {
			for (int i = 0; i < 40; i++) {
				struct tx x[3];
				int n = 1 + (int)(rnd(&wl.rng) % 3);

				for (int j = 0; j < n; j++) {
					wl_gen(&wl, &x[j]);
					CHECK_EQ_INT(mx_store_queue(st, &x[j].t), 0);
				}
				CHECK_EQ_INT(mx_store_commit(st), 0);
				for (int j = 0; j < n; j++) {
					model_apply(&m, &x[j].t);
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
		k = K(4, (uint32_t)(i % 13), name);
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
	uint64_t bytes = 0;

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
			t = (struct mx_txn){ K(4, (uint32_t)(i % 13), name),
					     { 1, (uint64_t)(pass * MANY + i + 1) },
					     1, &op };
			CHECK_EQ_INT(mx_store_queue(st, &t), 0);
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
	mx_store_close(st);
}

/* ---- Test 3: bit rot and damaged files ---------------------------------- */

/* Path of the (last) file ending in suffix under dir/pgs/<pgdir>. */
static bool find_file(const char *dir, const char *pgdir, const char *suffix,
		      char *out, size_t outsz)
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

		if (n >= m && !strcmp(de->d_name + n - m, suffix) &&
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

	CHECK(find_file(dir, "00000003.00000004", ".d", path, sizeof(path)));
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
	CHECK(find_file(dir, "00000003.00000004", ".m", path, sizeof(path)));
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
		t = (struct mx_txn){ K(1, 1, "keep"), { 1, 3 }, 1, ops };
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
		t = (struct mx_txn){ (key_), { 1, 1 }, 1, &op };               \
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
	t = (struct mx_txn){ k, { 1, 1 }, 0, &op };
	CHECK_EQ_INT(mx_store_queue(st, &t), -EINVAL); /* no ops */
	t = (struct mx_txn){ k, { 1, 1 }, 1, NULL };
	CHECK_EQ_INT(mx_store_queue(st, &t), -EINVAL);
	CHECK_EQ_INT(mx_store_queue(st, NULL), -EINVAL);
	CHECK_EQ_INT(mx_store_pending_count(st), 0);
	/* The limits themselves are fine. */
	longname[MX_OBJ_NAME_MAX] = '\0';
	longx[MX_XATTR_NAME_MAX] = '\0';
	op = OPS(longx, "v", 1);
	t = (struct mx_txn){ { 1, 1, longname, MX_OBJ_NAME_MAX }, { 1, 1 }, 1, &op };
	CHECK_EQ_INT(mx_store_queue(st, &t), 0);
	op = OPT(MX_OBJ_SIZE_MAX);
	t = (struct mx_txn){ k, { 1, 2 }, 1, &op };
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

/* ---- A simulated disk with a volatile write cache ----------------------- */

/*
 * Files have two contents: what reads see (the page cache) and what is on
 * the medium.  Every write and truncate since a file's last fsync or
 * fdatasync is volatile, and so is every change to a folder (create,
 * rename, unlink, mkdir) until that folder is fsynced.  At the power cut
 * (the cut_at-th call; a write at the cut reaches the cache first) a mode
 * decides what survives: nothing volatile, everything, a random subset
 * (whole writes, or single 512-byte sectors of them, and folder changes),
 * or everything but the last write, of which only a prefix of sectors
 * lands.  Calls after the cut fail with EIO.  md_crash() builds the
 * surviving image as a fresh disk.
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
	size_t dur_len;
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

enum { CR_DROP, CR_KEEP, CR_RANDOM, CR_TORN_LAST, CR_N };
static const char *const cr_names[CR_N] = { "drop volatile", "keep volatile",
					    "random subset", "torn last write" };

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

static void node_sync(struct mnode *nd)
{
	nd->dur = xrealloc(nd->dur, nd->cur_len);
	if (nd->cur_len)
		memcpy(nd->dur, nd->cur, nd->cur_len);
	nd->dur_len = nd->cur_len;
	for (size_t i = 0; i < nd->n_v; i++)
		free(nd->v[i].data);
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
	/* The write reaches the cache even when the power fails now. */
	if (off + len > nd->cur_len)
		bytes_setlen(&nd->cur, &nd->cur_len, &nd->cur_cap, off + len);
	memcpy(nd->cur + off, buf, len);
	vop_add(md, nd, false, off, buf, len);
	return cut ? -EIO : (ssize_t)len;
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

/* A disk holding only the root folder, durably (with_root), or nothing. */
static struct memdisk *md_new(bool with_root)
{
	struct memdisk *md = mx_xcalloc(1, sizeof(*md));

	md->io = (struct mx_store_io){ md_open,	    md_close,	  md_pread,
				       md_pwrite,   md_fdatasync, md_fsync,
				       md_ftruncate, md_fstat_size, md_rename,
				       md_unlink,   md_mkdir,	  md_listdir,
				       md_fsync_dir, md };
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

/* The image that survives a power failure of md, as a fresh disk. */
static struct memdisk *md_crash(const struct memdisk *md, uint64_t seed,
				int mode)
{
	struct memdisk *nd = md_new(false);
	char parent[512];
	uint64_t r = seed, last = 0;
	struct ns img;
	int *map;
	bool changed;

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

struct session {
	struct model m;	  /* what every acknowledged commit made */
	struct model alt; /* m and the commit in flight at the cut */
	bool has_alt;
	struct wl wl;
	uint64_t ckpt_bytes;
	int failures;
	long in_flight_present, in_flight_absent;
};

struct crash_totals {
	long runs, cut_points, second_cuts, failures;
	long by_class[MC_N], by_mode[CR_N];
	long present, absent;
	int failed_seeds_shown;
};

/* Open the store on md and check it shows m, or alt if a commit was in
 * flight at the last cut (then alt becomes m).  NULL if the power failed
 * during the open. */
static struct mx_store *s_open(struct session *s, struct memdisk *md)
{
	struct mx_store_opts opts = { &md->io, s->ckpt_bytes };
	struct mx_store *st;
	int r = mx_store_open(MD_ROOT "/s", &opts, &st);

	if (r) {
		if (!md->dead) {
			fprintf(stderr, "  open failed on a live disk: %d\n", r);
			s->failures++;
		}
		return NULL;
	}
	md->paused = true; /* checking is not part of the workload */
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
			wl_gen(&s->wl, &x[j]);
			r = mx_store_queue(st, &x[j].t);
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
				model_apply(&s->alt, &x[j].t);
			s->has_alt = true;
		} else {
			for (int j = 0; j < n; j++)
				model_apply(&s->m, &x[j].t);
		}
		for (int j = 0; j < n; j++)
			tx_free(&x[j]);
		if (r) {
			mx_store_close(st);
			return false;
		}
		if (i % 8 == 7 && mx_store_checkpoint(st)) {
			if (!md->dead)
				s->failures++;
			mx_store_close(st);
			return false;
		}
		if (i == reopen_at) {
			mx_store_close(st);
			if (md->dead)
				return false;
			st = s_open(s, md);
			if (!st)
				return false;
		}
	}
	mx_store_close(st);
	return !md->dead;
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
	mx_store_close(st);
}

/* Run the workload of seed with the power failing at call cut (0: never),
 * then recover, sometimes failing the power again during recovery or the
 * commits after it, and check every time.  Returns the number of calls the
 * first period made. */
static long run_one(uint64_t seed, long cut, struct crash_totals *ct)
{
	struct session *s = mx_xcalloc(1, sizeof(*s));
	struct memdisk *md = md_new(true), *md2, *md3;
	uint64_t cr = seed * 1000003u + (uint64_t)cut;
	long calls;
	int mode;

	wl_init(&s->wl, seed);
	s->ckpt_bytes = seed % 3 == 0 ? 6000 : seed % 3 == 1 ? 24000 : 1u << 20;
	md->cut_at = cut;
	if (s_run(s, md, 24, 12)) {
		calls = md->calls;
		s_final(s, md);
	} else {
		calls = md->calls;
		ct->by_class[md->cut_class]++;
		mode = (int)(rnd(&cr) % CR_N);
		ct->by_mode[mode]++;
		md2 = md_crash(md, rnd(&cr), mode);
		if (rnd(&cr) % 2)
			md2->cut_at = 1 + (long)(rnd(&cr) % 160);
		if (s_run(s, md2, 3, -1)) {
			s_final(s, md2);
		} else {
			ct->second_cuts++;
			md3 = md_crash(md2, rnd(&cr), (int)(rnd(&cr) % CR_N));
			s_final(s, md3);
			md_free(md3);
		}
		md_free(md2);
	}
	ct->present += s->in_flight_present;
	ct->absent += s->in_flight_absent;
	if (s->failures) {
		ct->failures += s->failures;
		if (ct->failed_seeds_shown++ < 10)
			fprintf(stderr,
				"crash sweep: seed %llu cut %ld failed "
				"(MX_STORE_CRASH_ONLY=%llu:%ld reruns it)\n",
				(unsigned long long)seed, cut,
				(unsigned long long)seed, cut);
	}
	ct->runs++;
	model_free(&s->m);
	model_free(&s->alt);
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
			(void)run_one(seed, cut, &ct);
		CHECK_EQ_INT(ct.failures, 0);
		return;
	}
	for (long seed = 1; seed <= seeds; seed++) {
		long total = run_one((uint64_t)seed, 0, &ct);

		for (long cut = 1; cut <= total; cut++)
			(void)run_one((uint64_t)seed, cut, &ct);
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
		"  commit in flight at the cut: present %ld, absent %ld\n",
		ct.present, ct.absent);
	CHECK(ct.cut_points > 0);
	CHECK_EQ_INT(ct.failures, 0);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	bool crash_only = getenv("MX_STORE_CRASH_ONLY") != NULL;

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
	}
	test_crash();
	rm_rf(tmp_root);
	return mx_check_done("store");
}

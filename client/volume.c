/*
 * Block volumes on objects (docs/volumes.md): a directory object names the
 * volumes, a header object holds each one's size, object size and writer's
 * lock, its data lives in objects of one size, and an allocation map object
 * says which of them may exist.
 *
 * Threads: the caller's threads start requests; their parts complete on
 * the library's thread (callbacks that never block); a writer's handle has
 * one more thread that renews its lock.  v->lock guards the allocation map,
 * the request lists and the lease.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "list.h"
#include "log.h"
#include "msg.h"
#include "util.h"

#define DIR_OID "vol_directory"
#define LEASE_DEFAULT_MS 30000u
#define LOCK_VALUE_MAX 160

/* Allocation map: 2 bits per object. */
#define MAP_ABSENT 0u
#define MAP_EXISTS 1u

enum vkind { V_READ, V_WRITE, V_DISCARD, V_ZERO, V_FLUSH };

struct vreq;

/* One object's part of a request. */
struct vpart {
	struct mx_list link; /* v->map_wait, v->map_sent */
	struct vreq *req;
	uint64_t objno;
	uint64_t off, len;   /* within the object */
	uint8_t *buf;        /* read destination or write source */
	uint8_t *own;        /* From malloc(): zeroes we write */
	uint8_t op;          /* MX_OP_* sent, 0: nothing to send */
	char oid[64];
	mixsan_completion_t *c;
	bool removes;        /* a whole-object removal: clears its map bit */
	bool raced;          /* a write to the object started meanwhile */
	bool waits;          /* req_start's own: sent once the map is durable */
	struct mx_list rm_link; /* v->removing */
};

/* A caller's request. */
struct vreq {
	struct mx_list link; /* v->inflight, in start order */
	mixsan_volume_t *v;
	enum vkind kind;
	mixsan_completion_t *user;
	uint64_t seq;
	unsigned pending;    /* parts outstanding, +1 while starting */
	int err;
	int64_t result;
	struct vpart *parts;
	unsigned n_parts;
};

struct mixsan_volume {
	mixsan_pool_t *pool;
	char name[MIXSAN_VOLUME_NAME_MAX + 1];
	char id[17];
	char hdr_oid[48];
	char map_oid[48];
	unsigned order;
	uint64_t obj_size;
	bool rdonly;

	pthread_mutex_t lock;
	pthread_cond_t cond; /* idle, renewer wake-ups */
	uint64_t size;

	/* The allocation map (the writer's copy is authoritative). */
	uint8_t *map;
	size_t map_len;         /* bytes: objects / 4, rounded up */
	size_t dirty_lo, dirty_hi; /* bytes to write; lo == hi: none */
	bool map_busy;          /* a map write is in flight */
	uint8_t *map_out;       /* its data */
	struct mx_list map_wait; /* struct vpart waiting for the next map write */
	struct mx_list map_sent; /* ... for the one in flight */
	struct mx_list removing; /* struct vpart removals in flight */
	int map_err;            /* the last map write's failure, for flush */

	/* Requests in start order, for flush. */
	struct mx_list inflight;
	uint64_t next_seq;

	/* The writer's lock. */
	char lock_val[LOCK_VALUE_MAX];
	char owner[96];
	unsigned lease_ms;
	uint64_t lease_end_ms;   /* by our clock; 0: not held */
	bool lock_lost;
	bool stopping;
	pthread_t renewer;
	bool renewer_started;
};

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t wait_release(mixsan_completion_t *c)
{
	int64_t r = mixsan_completion_wait(c);

	mixsan_completion_release(c);
	return r;
}

/* Run ops on oid and wait for them. */
static int write_ops_sync(mixsan_pool_t *p, const char *oid, const struct mx_osd_op *ops,
			  unsigned n)
{
	mixsan_completion_t *c;
	int r = mixsan_completion_create(NULL, NULL, &c);

	if (r < 0)
		return r;
	r = mx_client_aio_write_ops(p, oid, c, ops, n);
	if (r < 0) {
		mixsan_completion_release(c);
		return r;
	}
	return (int)wait_release(c);
}

static struct mx_osd_op xattr_op(uint8_t code, const char *name, const char *value)
{
	struct mx_osd_op o = {.op = code, .xname = name};

	if (value) {
		o.data = value;
		o.data_len = (uint32_t)strlen(value);
	}
	return o;
}

static int check_name(const char *name)
{
	size_t n;

	if (!name)
		return -EINVAL;
	n = strlen(name);
	if (n == 0 || n > MIXSAN_VOLUME_NAME_MAX || strpbrk(name, "/@"))
		return -EINVAL;
	return 0;
}

static void obj_name(char *out, size_t n, const char *id, uint64_t objno)
{
	snprintf(out, n, "vol.%s.%016" PRIx64, id, objno);
}

/* The volume's id from the directory: 0, -ENOENT or an error. */
static int lookup_id(mixsan_pool_t *p, const char *name, char id[17])
{
	char key[8 + MIXSAN_VOLUME_NAME_MAX];
	int r;

	snprintf(key, sizeof(key), "name.%s", name);
	r = mixsan_getxattr(p, DIR_OID, key, id, 16);
	if (r == -ENODATA || r == -ENOENT || r == -ERANGE)
		return -ENOENT;
	if (r < 0)
		return r;
	if (r != 16)
		return -ENOENT;
	id[16] = '\0';
	return 0;
}

/* Header --------------------------------------------------------------- */

struct header {
	uint64_t size;
	unsigned order;
	char lock[LOCK_VALUE_MAX];
	bool has_size, has_order;
};

static int header_cb(void *arg, const char *name, const void *value, size_t len)
{
	struct header *h = arg;
	char buf[LOCK_VALUE_MAX];

	if (len >= sizeof(buf))
		return 0;
	memcpy(buf, value, len);
	buf[len] = '\0';
	if (!strcmp(name, "size")) {
		h->size = strtoull(buf, NULL, 10);
		h->has_size = true;
	} else if (!strcmp(name, "order")) {
		h->order = (unsigned)strtoul(buf, NULL, 10);
		h->has_order = true;
	} else if (!strcmp(name, "lock")) {
		memcpy(h->lock, buf, len + 1);
	}
	return 0;
}

static int header_read(mixsan_pool_t *p, const char *oid, struct header *h)
{
	int r;

	memset(h, 0, sizeof(*h));
	r = mixsan_getxattrs(p, oid, header_cb, h);
	if (r < 0)
		return r;
	if (!h->has_size || !h->has_order || h->order < MIXSAN_VOLUME_ORDER_MIN ||
	    h->order > MIXSAN_VOLUME_ORDER_MAX)
		return -EBADMSG;
	return 0;
}

/* The lock value: "owner lease_end_ms". */
static uint64_t lock_expiry(const char *val)
{
	const char *sp = strrchr(val, ' ');

	return sp ? strtoull(sp + 1, NULL, 10) : 0;
}

static int size_check(uint64_t size, unsigned order)
{
	uint64_t objs = (size + (1ull << order) - 1) >> order;

	return objs > MIXSAN_VOLUME_OBJECTS_MAX ? -EINVAL : 0;
}

/* Create, remove, list ------------------------------------------------- */

int mixsan_volume_create(mixsan_pool_t *p, const char *name, uint64_t size, unsigned order)
{
	char id[17], hdr[48], key[8 + MIXSAN_VOLUME_NAME_MAX], idkey[24];
	char sz[24], ord[8];
	uint64_t rnd;
	int r;

	if (!p || check_name(name) < 0)
		return -EINVAL;
	if (order == 0)
		order = MIXSAN_VOLUME_ORDER_DEFAULT;
	if (order < MIXSAN_VOLUME_ORDER_MIN || order > MIXSAN_VOLUME_ORDER_MAX ||
	    size_check(size, order) < 0)
		return -EINVAL;
	r = lookup_id(p, name, id);
	if (r == 0)
		return -EEXIST;
	if (r != -ENOENT)
		return r;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -EIO;
	snprintf(id, sizeof(id), "%016" PRIx64, rnd);
	snprintf(hdr, sizeof(hdr), "vol.%s.header", id);
	snprintf(sz, sizeof(sz), "%" PRIu64, size);
	snprintf(ord, sizeof(ord), "%u", order);
	{
		struct mx_osd_op ops[] = {
			{.op = MX_OP_CREATE, .flags = MX_OP_FLAG_EXCL},
			xattr_op(MX_OP_SETXATTR, "size", sz),
			xattr_op(MX_OP_SETXATTR, "order", ord),
			xattr_op(MX_OP_SETXATTR, "features", "0"),
		};

		r = write_ops_sync(p, hdr, ops, 4);
		if (r < 0)
			return r;
	}
	/* The header first, then the name: a listed volume has a header. */
	snprintf(key, sizeof(key), "name.%s", name);
	snprintf(idkey, sizeof(idkey), "id.%s", id);
	{
		struct mx_osd_op ops[] = {
			xattr_op(MX_OP_CMPXATTR, key, ""),
			xattr_op(MX_OP_SETXATTR, key, id),
			xattr_op(MX_OP_SETXATTR, idkey, name),
		};

		r = write_ops_sync(p, DIR_OID, ops, 3);
	}
	if (r < 0) {
		(void)mixsan_remove(p, hdr);
		return r == -ECANCELED ? -EEXIST : r;
	}
	return 0;
}

struct list_ctx {
	char **names;
	size_t n, cap;
};

static int list_cb(void *arg, const char *name, const void *value, size_t len)
{
	struct list_ctx *lc = arg;
	char **nn;

	(void)value;
	(void)len;
	if (strncmp(name, "name.", 5) != 0)
		return 0;
	if (lc->n == lc->cap) {
		lc->cap = lc->cap ? 2 * lc->cap : 16;
		nn = realloc(lc->names, lc->cap * sizeof(*nn));
		if (!nn)
			return -ENOMEM;
		lc->names = nn;
	}
	lc->names[lc->n] = strdup(name + 5);
	if (!lc->names[lc->n])
		return -ENOMEM;
	lc->n++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mixsan_volume_list(mixsan_pool_t *p, int (*cb)(void *arg, const char *name), void *arg)
{
	struct list_ctx lc = {0};
	int r;

	if (!p || !cb)
		return -EINVAL;
	r = mixsan_getxattrs(p, DIR_OID, list_cb, &lc);
	if (r == -ENOENT)
		r = 0;
	if (r == 0 && lc.n)
		qsort(lc.names, lc.n, sizeof(*lc.names), cmp_str);
	for (size_t i = 0; i < lc.n; i++) {
		if (r == 0)
			r = cb(arg, lc.names[i]);
		free(lc.names[i]);
	}
	free(lc.names);
	return r;
}

/* Allocation map --------------------------------------------------------- */

static unsigned map_get(const mixsan_volume_t *v, uint64_t objno)
{
	if (objno / 4 >= v->map_len)
		return MAP_ABSENT;
	return (v->map[objno / 4] >> (2 * (objno % 4))) & 3u;
}

static void map_dirty(mixsan_volume_t *v, size_t byte)
{
	if (v->dirty_lo == v->dirty_hi) {
		v->dirty_lo = byte;
		v->dirty_hi = byte + 1;
	} else {
		v->dirty_lo = MX_MIN(v->dirty_lo, byte);
		v->dirty_hi = MX_MAX(v->dirty_hi, byte + 1);
	}
}

static void map_set(mixsan_volume_t *v, uint64_t objno, unsigned val)
{
	size_t b = objno / 4;
	unsigned sh = 2 * (objno % 4);
	uint8_t nv = (uint8_t)((v->map[b] & ~(3u << sh)) | (val << sh));

	if (nv != v->map[b]) {
		v->map[b] = nv;
		map_dirty(v, b);
	}
}

static int map_resize(mixsan_volume_t *v, uint64_t size)
{
	uint64_t objs = (size + v->obj_size - 1) >> v->order;
	size_t len = (size_t)((objs + 3) / 4);
	uint8_t *m;

	if (len <= v->map_len)
		return 0;
	m = realloc(v->map, len);
	if (!m)
		return -ENOMEM;
	memset(m + v->map_len, 0, len - v->map_len);
	v->map = m;
	v->map_len = len;
	return 0;
}

/* Read the stored map into v->map (sized for v->size). */
static int map_load(mixsan_volume_t *v)
{
	int64_t r;

	if (map_resize(v, v->size) < 0)
		return -ENOMEM;
	if (!v->map_len)
		return 0;
	r = mixsan_read(v->pool, v->map_oid, v->map, v->map_len, 0);
	if (r == -ENOENT)
		r = 0;
	if (r < 0)
		return (int)r;
	memset(v->map + r, 0, v->map_len - (size_t)r);
	return 0;
}

static void part_send(mixsan_volume_t *v, struct vpart *pt);
static void part_done(struct vpart *pt, int err);
static void map_kick(mixsan_volume_t *v);

static void map_write_done(mixsan_completion_t *c, void *arg)
{
	mixsan_volume_t *v = arg;
	int64_t r = mixsan_completion_result(c);
	struct mx_list sent, *pos, *tmp;

	mixsan_completion_release(c);
	mx_list_init(&sent);
	pthread_mutex_lock(&v->lock);
	free(v->map_out);
	v->map_out = NULL;
	v->map_busy = false;
	mx_list_splice_tail(&sent, &v->map_sent);
	if (r < 0) {
		v->map_err = (int)r;
		map_dirty(v, 0); /* write it all again next time */
		map_dirty(v, v->map_len - 1);
	}
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	mx_list_for_each_safe(pos, tmp, &sent) {
		struct vpart *pt = mx_list_entry(pos, struct vpart, link);

		mx_list_del(&pt->link);
		if (r < 0)
			part_done(pt, (int)r);
		else
			part_send(v, pt);
	}
	pthread_mutex_lock(&v->lock);
	map_kick(v);
	pthread_mutex_unlock(&v->lock);
}

/* Start a map write if one is due and none is in flight.  Called with
 * v->lock held. */
static void map_kick(mixsan_volume_t *v)
{
	mixsan_completion_t *c;
	size_t lo = v->dirty_lo, hi = v->dirty_hi;
	int r;

	if (v->map_busy || lo == hi || v->rdonly)
		return;
	v->map_out = malloc(hi - lo);
	if (!v->map_out || mixsan_completion_create(map_write_done, v, &c) < 0) {
		free(v->map_out);
		v->map_out = NULL;
		return; /* retried at the next kick */
	}
	memcpy(v->map_out, v->map + lo, hi - lo);
	v->dirty_lo = v->dirty_hi = 0;
	v->map_busy = true;
	mx_list_splice_tail(&v->map_sent, &v->map_wait);
	r = mixsan_aio_write(v->pool, v->map_oid, c, v->map_out, hi - lo, lo);
	if (r < 0) {
		/* Only on shutdown: fail what waits. */
		pthread_mutex_unlock(&v->lock);
		mx_completion_finish(c, r);
		pthread_mutex_lock(&v->lock);
	}
}

/* Requests ------------------------------------------------------------- */

static void req_finish(struct vreq *q);

static void flushes_check(mixsan_volume_t *v, struct mx_list *done)
{
	/* A flush ends when no request started before it is in flight. */
	while (!mx_list_empty(&v->inflight)) {
		struct vreq *q = mx_list_entry(v->inflight.next, struct vreq, link);

		if (q->kind != V_FLUSH || q->pending)
			break;
		mx_list_del(&q->link);
		mx_list_add_tail(done, &q->link);
	}
}

static void req_finish(struct vreq *q)
{
	mixsan_volume_t *v = q->v;
	struct mx_list done, *pos, *tmp;
	int64_t res = q->err ? q->err : q->result;

	mx_list_init(&done);
	pthread_mutex_lock(&v->lock);
	if (q->kind == V_FLUSH) {
		/* Its parts are done: it waits only for what started before. */
		q->pending = 0;
	} else {
		mx_list_del(&q->link);
	}
	flushes_check(v, &done);
	if (mx_list_empty(&v->inflight))
		pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	if (q->kind != V_FLUSH) {
		for (unsigned i = 0; i < q->n_parts; i++) {
			if (q->parts[i].c)
				mixsan_completion_release(q->parts[i].c);
			free(q->parts[i].own);
		}
		free(q->parts);
		mx_completion_finish(q->user, res);
		free(q);
	}
	mx_list_for_each_safe(pos, tmp, &done) {
		struct vreq *f = mx_list_entry(pos, struct vreq, link);

		mx_list_del(&f->link);
		pthread_mutex_lock(&v->lock);
		res = v->map_err;
		v->map_err = 0;
		pthread_mutex_unlock(&v->lock);
		mx_completion_finish(f->user, res);
		free(f);
	}
}

static void req_put(struct vreq *q)
{
	bool last;

	pthread_mutex_lock(&q->v->lock);
	last = --q->pending == 0;
	pthread_mutex_unlock(&q->v->lock);
	if (last)
		req_finish(q);
}

static void part_done(struct vpart *pt, int err)
{
	struct vreq *q = pt->req;

	if (err < 0) {
		pthread_mutex_lock(&q->v->lock);
		if (!q->err)
			q->err = err;
		pthread_mutex_unlock(&q->v->lock);
	}
	req_put(q);
}

static void part_cb(mixsan_completion_t *c, void *arg)
{
	struct vpart *pt = arg;
	mixsan_volume_t *v = pt->req->v;
	int64_t r = mixsan_completion_result(c);

	if (pt->op == MX_OP_READ) {
		if (r == -ENOENT)
			r = 0; /* never written: zeroes */
		if (r >= 0 && (uint64_t)r < pt->len)
			memset(pt->buf + r, 0, pt->len - (uint64_t)r);
	} else if (pt->op == MX_OP_REMOVE) {
		if (r == -ENOENT)
			r = 0;
		pthread_mutex_lock(&v->lock);
		mx_list_del(&pt->rm_link);
		if (r == 0 && !pt->raced) {
			map_set(v, pt->objno, MAP_ABSENT);
			map_kick(v);
		}
		pthread_mutex_unlock(&v->lock);
	}
	part_done(pt, r < 0 ? (int)r : 0);
}

static void part_send(mixsan_volume_t *v, struct vpart *pt)
{
	int r = mixsan_completion_create(part_cb, pt, &pt->c);

	if (r < 0) {
		part_done(pt, r);
		return;
	}
	switch (pt->op) {
	case MX_OP_READ:
		r = mixsan_aio_read(v->pool, pt->oid, pt->c, pt->buf, pt->len, pt->off);
		break;
	case MX_OP_WRITE:
		r = mixsan_aio_write(v->pool, pt->oid, pt->c, pt->buf, pt->len, pt->off);
		break;
	case MX_OP_TRUNCATE:
		r = mixsan_aio_truncate(v->pool, pt->oid, pt->c, pt->off);
		break;
	case MX_OP_REMOVE:
		r = mixsan_aio_remove(v->pool, pt->oid, pt->c);
		break;
	default:
		r = -EINVAL;
	}
	if (r < 0) {
		mixsan_completion_release(pt->c);
		pt->c = NULL;
		part_done(pt, r);
	}
}

/* Whether objno has a map update not yet durable (a write to it must wait
 * for it too).  Called with v->lock held. */
static bool mark_pending(mixsan_volume_t *v, uint64_t objno)
{
	struct mx_list *pos;

	mx_list_for_each(pos, &v->map_wait)
		if (mx_list_entry(pos, struct vpart, link)->objno == objno)
			return true;
	mx_list_for_each(pos, &v->map_sent)
		if (mx_list_entry(pos, struct vpart, link)->objno == objno)
			return true;
	return false;
}

/* A part that may create its object: mark the map first (write-ahead).
 * Called with v->lock held; true if the part must wait for the map. */
static bool part_mark(mixsan_volume_t *v, struct vpart *pt)
{
	struct mx_list *pos;

	mx_list_for_each(pos, &v->removing) {
		struct vpart *rm = mx_list_entry(pos, struct vpart, rm_link);

		if (rm->objno == pt->objno)
			rm->raced = true;
	}
	if (map_get(v, pt->objno) != MAP_ABSENT) {
		if (!mark_pending(v, pt->objno))
			return false;
		/* Marked by a write whose map update is not durable yet: wait
		 * for the next map write, which follows that one. */
		map_dirty(v, pt->objno / 4);
	}
	map_set(v, pt->objno, MAP_EXISTS);
	mx_list_add_tail(&v->map_wait, &pt->link);
	return true;
}

static int lock_usable(mixsan_volume_t *v)
{
	if (v->rdonly)
		return -EROFS;
	if (v->lock_lost || wall_ms() >= v->lease_end_ms)
		return -ENOLCK;
	return 0;
}

/* Split [off, off + len) into per-object parts and start them. */
static int req_start(mixsan_volume_t *v, mixsan_completion_t *user, enum vkind kind,
		     uint8_t *buf, uint64_t len, uint64_t off, unsigned zflags)
{
	struct vreq *q;
	uint64_t end, at;
	unsigned n = 0;
	int r = 0;

	if (!v || !user || (len && !buf && (kind == V_READ || kind == V_WRITE)))
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->v = v;
	q->kind = kind;
	q->user = user;
	pthread_mutex_lock(&v->lock);
	if (kind != V_READ && kind != V_FLUSH)
		r = lock_usable(v);
	if (r == 0 && kind != V_FLUSH) {
		if (off > v->size || len > v->size - off) {
			if (kind != V_READ || off > v->size)
				r = -EINVAL;
			else
				len = v->size - off; /* a read stops at the end */
		}
	}
	if (r < 0) {
		pthread_mutex_unlock(&v->lock);
		free(q);
		return r;
	}
	q->result = kind == V_READ ? (int64_t)len : 0;
	end = off + len;
	if (kind != V_FLUSH && len) {
		n = (unsigned)(((end - 1) >> v->order) - (off >> v->order) + 1);
		q->parts = calloc(n, sizeof(*q->parts));
		if (!q->parts) {
			pthread_mutex_unlock(&v->lock);
			free(q);
			return -ENOMEM;
		}
	}
	q->n_parts = n;
	/* Fast zeroing refuses before anything changes. */
	if (kind == V_ZERO && (zflags & MIXSAN_ZERO_FAST)) {
		for (at = off; at < end; at = ((at >> v->order) + 1) << v->order) {
			uint64_t objno = at >> v->order, ostart = objno << v->order;
			uint64_t oend = MX_MIN(ostart + v->obj_size, v->size);
			uint64_t e = MX_MIN(end, oend);

			if (map_get(v, objno) != MAP_ABSENT && at > ostart && e < oend) {
				pthread_mutex_unlock(&v->lock);
				free(q->parts);
				free(q);
				return -ENOTSUP;
			}
		}
	}
	mx_completion_arm(user);
	q->seq = ++v->next_seq;
	q->pending = n + 1;
	mx_list_add_tail(&v->inflight, &q->link);
	at = off;
	for (unsigned i = 0; i < n; i++) {
		struct vpart *pt = &q->parts[i];
		uint64_t objno = at >> v->order, ostart = objno << v->order;
		uint64_t oend = MX_MIN(ostart + v->obj_size, v->size);
		uint64_t e = MX_MIN(end, ostart + v->obj_size);
		bool present = map_get(v, objno) != MAP_ABSENT;

		pt->req = q;
		pt->objno = objno;
		pt->off = at - ostart;
		pt->len = e - at;
		mx_list_init(&pt->link);
		mx_list_init(&pt->rm_link);
		obj_name(pt->oid, sizeof(pt->oid), v->id, objno);
		switch (kind) {
		case V_READ:
			pt->buf = buf + (at - off);
			/* The writer's map is exact about absence. */
			if (!v->rdonly && !present) {
				memset(pt->buf, 0, pt->len);
				pt->op = 0;
			} else {
				pt->op = MX_OP_READ;
			}
			break;
		case V_WRITE:
			pt->buf = buf + (at - off);
			pt->op = MX_OP_WRITE;
			break;
		case V_DISCARD:
		case V_ZERO:
			if (!present) {
				pt->op = 0; /* reads as zeroes already */
			} else if (at == ostart && e >= oend) {
				pt->op = MX_OP_REMOVE;
				pt->removes = true;
			} else if (e >= oend) {
				pt->op = MX_OP_TRUNCATE; /* the tail: cut */
			} else {
				pt->own = calloc(1, pt->len);
				if (!pt->own) {
					pt->op = 0;
					if (!q->err)
						q->err = -ENOMEM;
					break;
				}
				pt->buf = pt->own;
				pt->op = MX_OP_WRITE;
			}
			break;
		case V_FLUSH:
			break;
		}
		at = e;
	}
	/* Decide who waits for the map under the lock, send after it. */
	for (unsigned i = 0; i < n; i++) {
		struct vpart *pt = &q->parts[i];

		if (pt->op == MX_OP_WRITE || pt->op == MX_OP_TRUNCATE) {
			pt->waits = part_mark(v, pt); /* then map_write_done sends it */
		} else if (pt->op == MX_OP_REMOVE) {
			struct mx_list *pos;

			mx_list_add_tail(&v->removing, &pt->rm_link);
			/* A write still waiting for the map would recreate it. */
			mx_list_for_each(pos, &v->map_wait)
				if (mx_list_entry(pos, struct vpart, link)->objno == pt->objno)
					pt->raced = true;
			mx_list_for_each(pos, &v->map_sent)
				if (mx_list_entry(pos, struct vpart, link)->objno == pt->objno)
					pt->raced = true;
		}
	}
	map_kick(v);
	pthread_mutex_unlock(&v->lock);
	for (unsigned i = 0; i < n; i++) {
		struct vpart *pt = &q->parts[i];

		if (pt->waits)
			continue;
		if (pt->op)
			part_send(v, pt);
		else
			part_done(pt, 0);
	}
	req_put(q);
	return 0;
}

int mixsan_volume_aio_read(mixsan_volume_t *v, mixsan_completion_t *c, void *buf, size_t len,
			   uint64_t off)
{
	return req_start(v, c, V_READ, buf, len, off, 0);
}

int mixsan_volume_aio_write(mixsan_volume_t *v, mixsan_completion_t *c, const void *buf,
			    size_t len, uint64_t off)
{
	return req_start(v, c, V_WRITE, (uint8_t *)(uintptr_t)buf, len, off, 0);
}

int mixsan_volume_aio_discard(mixsan_volume_t *v, mixsan_completion_t *c, uint64_t len,
			      uint64_t off)
{
	return req_start(v, c, V_DISCARD, NULL, len, off, 0);
}

int mixsan_volume_aio_write_zeroes(mixsan_volume_t *v, mixsan_completion_t *c, uint64_t len,
				   uint64_t off, unsigned flags)
{
	if (flags & ~MIXSAN_ZERO_FAST)
		return -EINVAL;
	return req_start(v, c, V_ZERO, NULL, len, off, flags);
}

int mixsan_volume_aio_flush(mixsan_volume_t *v, mixsan_completion_t *c)
{
	return req_start(v, c, V_FLUSH, NULL, 0, 0, 0);
}

#define SYNC_VOL(call)                                                          \
	do {                                                                    \
		mixsan_completion_t *c_;                                        \
		int r_ = mixsan_completion_create(NULL, NULL, &c_);             \
		if (r_ < 0)                                                     \
			return r_;                                              \
		r_ = (call);                                                    \
		if (r_ < 0) {                                                   \
			mixsan_completion_release(c_);                          \
			return r_;                                              \
		}                                                               \
		return wait_release(c_);                                        \
	} while (0)

int64_t mixsan_volume_read(mixsan_volume_t *v, void *buf, size_t len, uint64_t off)
{
	SYNC_VOL(mixsan_volume_aio_read(v, c_, buf, len, off));
}

int mixsan_volume_write(mixsan_volume_t *v, const void *buf, size_t len, uint64_t off)
{
	SYNC_VOL(mixsan_volume_aio_write(v, c_, buf, len, off));
}

int mixsan_volume_discard(mixsan_volume_t *v, uint64_t len, uint64_t off)
{
	SYNC_VOL(mixsan_volume_aio_discard(v, c_, len, off));
}

int mixsan_volume_write_zeroes(mixsan_volume_t *v, uint64_t len, uint64_t off,
			       unsigned flags)
{
	SYNC_VOL(mixsan_volume_aio_write_zeroes(v, c_, len, off, flags));
}

int mixsan_volume_flush(mixsan_volume_t *v)
{
	SYNC_VOL(mixsan_volume_aio_flush(v, c_));
}

/* The writer's lock ------------------------------------------------------ */

static void lock_value(mixsan_volume_t *v, char *out, size_t n, uint64_t expires)
{
	snprintf(out, n, "%s %" PRIu64, v->owner, expires);
}

/* Compare-and-set the header's lock attribute from old ("" absent) to nv
 * (NULL: remove it).  0, -ECANCELED (it held something else), or an
 * error. */
static int lock_cas(mixsan_volume_t *v, const char *old, const char *nv)
{
	struct mx_osd_op ops[2] = {
		xattr_op(MX_OP_CMPXATTR, "lock", old),
		nv ? xattr_op(MX_OP_SETXATTR, "lock", nv) : xattr_op(MX_OP_RMXATTR, "lock", NULL),
	};

	return write_ops_sync(v->pool, v->hdr_oid, ops, 2);
}

static unsigned skew_ms(const mixsan_volume_t *v)
{
	return v->lease_ms / 6;
}

/* Take the lock: 0, -EBUSY while another holder's lease runs. */
static int lock_take(mixsan_volume_t *v, const char *current)
{
	char cur[LOCK_VALUE_MAX], nv[LOCK_VALUE_MAX];
	struct header h;
	int r;

	snprintf(cur, sizeof(cur), "%s", current);
	for (int tries = 0; tries < 5; tries++) {
		uint64_t now = wall_ms();

		if (cur[0] && lock_expiry(cur) + skew_ms(v) > now)
			return -EBUSY;
		lock_value(v, nv, sizeof(nv), now + v->lease_ms);
		r = lock_cas(v, cur, nv);
		if (r == 0) {
			memcpy(v->lock_val, nv, sizeof(nv));
			v->lease_end_ms = now + v->lease_ms;
			if (cur[0])
				mx_info("volume %s: took over the lock of %s, whose lease ran out",
					v->name, cur);
			return 0;
		}
		if (r != -ECANCELED)
			return r;
		r = header_read(v->pool, v->hdr_oid, &h);
		if (r < 0)
			return r;
		memcpy(cur, h.lock, sizeof(cur));
	}
	return -EBUSY;
}

static void *renewer_main(void *arg)
{
	mixsan_volume_t *v = arg;

	pthread_mutex_lock(&v->lock);
	while (!v->stopping && !v->lock_lost) {
		char old[LOCK_VALUE_MAX], nv[LOCK_VALUE_MAX];
		uint64_t now = wall_ms(), due = v->lease_end_ms - v->lease_ms * 2 / 3;
		struct timespec ts;
		int r;

		if (now < due) {
			uint64_t at = due;

			ts.tv_sec = (time_t)(at / 1000);
			ts.tv_nsec = (long)(at % 1000) * 1000000;
			pthread_cond_timedwait(&v->cond, &v->lock, &ts);
			continue;
		}
		memcpy(old, v->lock_val, sizeof(old));
		lock_value(v, nv, sizeof(nv), now + v->lease_ms);
		pthread_mutex_unlock(&v->lock);
		r = lock_cas(v, old, nv);
		pthread_mutex_lock(&v->lock);
		if (r == 0) {
			memcpy(v->lock_val, nv, sizeof(nv));
			v->lease_end_ms = now + v->lease_ms;
		} else if (r == -ECANCELED || r == -ENOENT) {
			v->lock_lost = true;
			mx_warn("volume %s: lost the writer's lock (another writer took it): "
				"writes now fail", v->name);
		} else {
			/* Try again in a second; I/O stops when the lease ends. */
			ts.tv_sec = (time_t)(wall_ms() / 1000 + 1);
			ts.tv_nsec = 0;
			pthread_cond_timedwait(&v->cond, &v->lock, &ts);
		}
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

/* Open and close --------------------------------------------------------- */

static void volume_free(mixsan_volume_t *v)
{
	pthread_mutex_destroy(&v->lock);
	pthread_cond_destroy(&v->cond);
	free(v->map);
	free(v);
}

int mixsan_volume_open(mixsan_pool_t *p, const char *name,
		       const struct mixsan_volume_options *opts, mixsan_volume_t **out)
{
	mixsan_volume_t *v;
	struct header h;
	char host[64] = "";
	uint64_t nonce = 0;
	pthread_condattr_t ca;
	int r;

	if (!p || !out || check_name(name) < 0)
		return -EINVAL;
	if (opts && (opts->flags & ~MIXSAN_VOLUME_RDONLY))
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->pool = p;
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->rdonly = opts && (opts->flags & MIXSAN_VOLUME_RDONLY);
	v->lease_ms = opts && opts->lease_ms ? opts->lease_ms : LEASE_DEFAULT_MS;
	pthread_mutex_init(&v->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_REALTIME);
	pthread_cond_init(&v->cond, &ca);
	pthread_condattr_destroy(&ca);
	mx_list_init(&v->map_wait);
	mx_list_init(&v->map_sent);
	mx_list_init(&v->removing);
	mx_list_init(&v->inflight);
	r = lookup_id(p, name, v->id);
	if (r < 0)
		goto fail;
	snprintf(v->hdr_oid, sizeof(v->hdr_oid), "vol.%s.header", v->id);
	snprintf(v->map_oid, sizeof(v->map_oid), "vol.%s.objmap", v->id);
	r = header_read(p, v->hdr_oid, &h);
	if (r < 0)
		goto fail;
	if (!v->rdonly) {
		(void)gethostname(host, sizeof(host) - 1);
		(void)getrandom(&nonce, sizeof(nonce), 0);
		snprintf(v->owner, sizeof(v->owner), "%016" PRIx64 "@%s:%d", nonce, host,
			 (int)getpid());
		r = lock_take(v, h.lock);
		if (r < 0)
			goto fail;
		/* What the previous writer left is what we start from. */
		r = header_read(p, v->hdr_oid, &h);
		if (r < 0)
			goto fail_unlock;
	}
	v->size = h.size;
	v->order = h.order;
	v->obj_size = 1ull << h.order;
	r = map_load(v);
	if (r < 0)
		goto fail_unlock;
	if (!v->rdonly) {
		if (pthread_create(&v->renewer, NULL, renewer_main, v) != 0) {
			r = -EAGAIN;
			goto fail_unlock;
		}
		v->renewer_started = true;
	}
	*out = v;
	return 0;
fail_unlock:
	if (!v->rdonly)
		(void)lock_cas(v, v->lock_val, NULL);
fail:
	volume_free(v);
	return r;
}

/* Wait until nothing is in flight and the map is written.  0 or the map's
 * last write error. */
static int volume_drain(mixsan_volume_t *v)
{
	int r;

	pthread_mutex_lock(&v->lock);
	for (;;) {
		struct timespec ts;
		uint64_t at;

		if (mx_list_empty(&v->inflight) && !v->map_busy &&
		    (v->dirty_lo == v->dirty_hi || v->rdonly))
			break;
		map_kick(v);
		at = wall_ms() + 100;
		ts.tv_sec = (time_t)(at / 1000);
		ts.tv_nsec = (long)(at % 1000) * 1000000;
		pthread_cond_timedwait(&v->cond, &v->lock, &ts);
	}
	r = v->map_err;
	pthread_mutex_unlock(&v->lock);
	return r;
}

static void renewer_stop(mixsan_volume_t *v)
{
	if (!v->renewer_started)
		return;
	pthread_mutex_lock(&v->lock);
	v->stopping = true;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	pthread_join(v->renewer, NULL);
	v->renewer_started = false;
}

int mixsan_volume_close(mixsan_volume_t *v)
{
	int r, r2;

	if (!v)
		return 0;
	r = volume_drain(v);
	renewer_stop(v);
	if (!v->rdonly && !v->lock_lost) {
		r2 = lock_cas(v, v->lock_val, NULL);
		if (r2 < 0 && r2 != -ECANCELED && r == 0)
			r = r2;
	}
	volume_free(v);
	return r;
}

/* Size, info, extents ------------------------------------------------------ */

uint64_t mixsan_volume_size(mixsan_volume_t *v)
{
	uint64_t s;

	pthread_mutex_lock(&v->lock);
	s = v->size;
	pthread_mutex_unlock(&v->lock);
	return s;
}

/* A reader's view of the map: read it again (the writer changes it). */
static int map_refresh(mixsan_volume_t *v)
{
	struct header h;
	uint8_t *m;
	size_t len;
	int64_t r;

	if (!v->rdonly)
		return 0;
	r = header_read(v->pool, v->hdr_oid, &h);
	if (r < 0)
		return (int)r;
	len = (size_t)((((h.size + v->obj_size - 1) >> v->order) + 3) / 4);
	m = calloc(1, len ? len : 1);
	if (!m)
		return -ENOMEM;
	r = len ? mixsan_read(v->pool, v->map_oid, m, len, 0) : 0;
	if (r < 0 && r != -ENOENT) {
		free(m);
		return (int)r;
	}
	pthread_mutex_lock(&v->lock);
	free(v->map);
	v->map = m;
	v->map_len = len;
	v->size = h.size;
	pthread_mutex_unlock(&v->lock);
	return 0;
}

int mixsan_volume_info(mixsan_volume_t *v, struct mixsan_volume_info *out)
{
	struct header h;
	uint64_t used = 0;
	int r;

	if (!v || !out)
		return -EINVAL;
	r = map_refresh(v);
	if (r < 0)
		return r;
	r = header_read(v->pool, v->hdr_oid, &h);
	if (r < 0)
		return r;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&v->lock);
	snprintf(out->name, sizeof(out->name), "%s", v->name);
	memcpy(out->id, v->id, sizeof(out->id));
	out->size = v->size;
	out->order = v->order;
	out->object_size = v->obj_size;
	out->objects = (v->size + v->obj_size - 1) >> v->order;
	for (uint64_t i = 0; i < out->objects; i++)
		used += map_get(v, i) != MAP_ABSENT;
	out->objects_used = used;
	pthread_mutex_unlock(&v->lock);
	if (h.lock[0]) {
		const char *sp = strrchr(h.lock, ' ');
		size_t n = sp ? (size_t)(sp - h.lock) : strlen(h.lock);

		n = MX_MIN(n, sizeof(out->lock_owner) - 1);
		memcpy(out->lock_owner, h.lock, n);
		out->lock_expires_ms = lock_expiry(h.lock);
	}
	return 0;
}

int mixsan_volume_extents(mixsan_volume_t *v, uint64_t off, uint64_t len,
			  int (*cb)(void *arg, uint64_t off, uint64_t len, int data),
			  void *arg)
{
	uint64_t end, at, objs, first;
	uint8_t *bits;
	int r;

	if (!v || !cb)
		return -EINVAL;
	r = map_refresh(v);
	if (r < 0)
		return r;
	pthread_mutex_lock(&v->lock);
	if (off > v->size || len > v->size - off) {
		pthread_mutex_unlock(&v->lock);
		return -EINVAL;
	}
	end = off + len;
	if (len == 0) {
		pthread_mutex_unlock(&v->lock);
		return 0;
	}
	first = off >> v->order;
	objs = ((end - 1) >> v->order) - first + 1;
	bits = malloc(objs);
	if (!bits) {
		pthread_mutex_unlock(&v->lock);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < objs; i++)
		bits[i] = map_get(v, first + i) != MAP_ABSENT;
	pthread_mutex_unlock(&v->lock);
	at = off;
	r = 0;
	while (at < end && r == 0) {
		uint64_t i = (at >> v->order) - first, e = at;
		int data = bits[i];

		while (e < end && bits[(e >> v->order) - first] == data)
			e = MX_MIN(end, (((e >> v->order) + 1) << v->order));
		r = cb(arg, at, e - at, data);
		at = e;
	}
	free(bits);
	return r;
}

int mixsan_volume_resize(mixsan_volume_t *v, uint64_t size)
{
	char sz[24];
	uint64_t old;
	int r;

	if (!v)
		return -EINVAL;
	if (v->rdonly)
		return -EROFS;
	if (size_check(size, v->order) < 0)
		return -EINVAL;
	pthread_mutex_lock(&v->lock);
	r = lock_usable(v);
	old = v->size;
	if (r == 0 && size > old)
		r = map_resize(v, size);
	pthread_mutex_unlock(&v->lock);
	if (r < 0)
		return r;
	if (size < old) {
		r = mixsan_volume_discard(v, old - size, size);
		if (r == 0)
			r = volume_drain(v);
		if (r < 0)
			return r;
	}
	snprintf(sz, sizeof(sz), "%" PRIu64, size);
	{
		struct mx_osd_op ops[] = {
			xattr_op(MX_OP_CMPXATTR, "lock", v->lock_val),
			xattr_op(MX_OP_SETXATTR, "size", sz),
		};

		r = write_ops_sync(v->pool, v->hdr_oid, ops, 2);
	}
	if (r == -ECANCELED)
		r = -ENOLCK;
	if (r < 0)
		return r;
	pthread_mutex_lock(&v->lock);
	v->size = size;
	pthread_mutex_unlock(&v->lock);
	return 0;
}

int mixsan_volume_remove(mixsan_pool_t *p, const char *name)
{
	char id[17], key[8 + MIXSAN_VOLUME_NAME_MAX], idkey[24];
	mixsan_volume_t *v;
	int r;

	if (!p || check_name(name) < 0)
		return -EINVAL;
	r = lookup_id(p, name, id);
	if (r < 0)
		return r;
	r = mixsan_volume_open(p, name, NULL, &v);
	if (r == 0) {
		/* Data first, then the map and the header, the name last: an
		 * interrupted removal is finished by running it again. */
		r = mixsan_volume_discard(v, v->size, 0);
		if (r == 0)
			r = volume_drain(v);
		renewer_stop(v);
		if (r == 0) {
			r = mixsan_remove(p, v->map_oid);
			if (r == -ENOENT)
				r = 0;
		}
		if (r == 0)
			r = mixsan_remove(p, v->hdr_oid);
		volume_free(v);
		if (r < 0)
			return r;
	} else if (r != -ENOENT && r != -EBADMSG) {
		return r; /* -EBUSY: in use */
	}
	snprintf(key, sizeof(key), "name.%s", name);
	snprintf(idkey, sizeof(idkey), "id.%s", id);
	{
		struct mx_osd_op ops[] = {
			xattr_op(MX_OP_CMPXATTR, key, id),
			xattr_op(MX_OP_RMXATTR, key, NULL),
			xattr_op(MX_OP_RMXATTR, idkey, NULL),
		};

		r = write_ops_sync(p, DIR_OID, ops, 3);
	}
	return r == -ECANCELED ? -ENOENT : r;
}

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
#include "cache.h"
#include "list.h"
#include "log.h"
#include "msg.h"
#include "placement.h"
#include "util.h"

#define DIR_OID "vol_directory"
#define LEASE_DEFAULT_MS 30000u
#define LOCK_VALUE_MAX 160

/* Allocation map: 2 bits per object. */
#define MAP_ABSENT 0u
#define MAP_EXISTS 1u /* unchanged since the latest snapshot: copy before a change */
#define MAP_DIRTY 3u  /* changed (or created) since the latest snapshot */

enum vkind { V_READ, V_WRITE, V_DISCARD, V_ZERO, V_FLUSH };

/* req_start's flags beside MIXSAN_ZERO_FAST: a FUA write. */
#define REQ_FUA 0x100u

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
	bool wb;             /* a writeback write: durable only after a flush */
	struct mx_client_version ver; /* a writeback write's, from its reply */
	struct mx_list rm_link; /* v->removing */
	struct mx_list wlink;   /* v->writing: a change that may create the object */
};

/* A caller's request. */
struct vreq {
	struct mx_list link; /* v->inflight, in start order */
	mixsan_volume_t *v;
	enum vkind kind;
	mixsan_completion_t *user;
	uint64_t seq;
	unsigned pending;    /* parts outstanding, +1 while starting */
	bool fua;            /* V_WRITE: durable before it completes */
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
	struct mx_list writing;  /* struct vpart (wlink) changes in flight */
	int map_err;            /* the last map write's failure, for flush */
	unsigned map_fails;     /* map writes failed so far */

	/* Requests in start order, for flush. */
	struct mx_list inflight;
	uint64_t next_seq;

	/* Writeback (docs/cache-modes.md): the objects with a writeback write
	 * completed since the last flush took them, each with the least
	 * version epoch of those writes (an open-addressing table: as many
	 * entries as objects written, not as the volume has). */
	int cache_mode;          /* MIXSAN_CACHE_* */
	struct wbent *wb_tab;    /* From malloc(): wb_cap slots */
	size_t wb_cap;           /* 0 or a power of two */
	size_t wb_n;             /* slots in use */
	/* Flushes that took objects, oldest first, until they complete: a
	 * flush completes after every earlier one, and with its error. */
	struct wbflush *wb_head, *wb_tail;
	unsigned wb_flushing;    /* flushes not yet completed (drain waits) */

	/* The writer's lock. */
	char lock_val[LOCK_VALUE_MAX];
	char owner[96];
	unsigned lease_ms;
	uint64_t lease_end_ms;   /* by our clock; 0: not held */
	bool lock_lost;
	bool stopping;
	pthread_t renewer;
	bool renewer_started;

	/* Snapshots and clones. */
	uint64_t snap_id;        /* 0: the head; else this snapshot (read-only) */
	struct snapinfo *snaps;  /* live snapshots by id (From malloc()) */
	size_t n_snaps;
	uint64_t snap_seq;
	mixsan_volume_t *parent; /* a clone's parent, at its snapshot */
	mixsan_pool_t *parent_pool;
	int64_t parent_pool_id;
	char parent_id[17];
	uint64_t parent_snap, overlap;
	bool unlinked;           /* flattened: the parent is kept open, unused */
	uint8_t *known;          /* a clone's objects seen to exist (a bit each) */
	uint64_t *copying;       /* objects being copied (COW, copy-up) */
	size_t n_copying, cap_copying;
	bool frozen;             /* a snapshot is being taken: changes wait */
	bool flattening;         /* flatten runs: no snapshot may be taken */
	unsigned starting;       /* changes between their start and inflight */

	/* A snapshot's reads through the snapshot cache: where the last read
	 * was, and how random the reads have been of late (0 to 3; read-ahead
	 * below 2). */
	uint64_t ra_off, ra_end;
	unsigned ra_random;
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

/* A snapshot as the header keeps it: snap.<ID hex> = "size time prot name". */
struct snapinfo {
	uint64_t id;
	uint64_t size;
	uint64_t time_ms;
	unsigned prot; /* 0 no, 1 protected, 2 being unprotected */
	unsigned children;
	char name[MIXSAN_SNAP_NAME_MAX + 1];
};

struct header {
	uint64_t size;
	unsigned order;
	char lock[LOCK_VALUE_MAX];
	bool has_size, has_order;
	uint64_t snap_seq;
	struct snapinfo *snaps; /* From malloc(), by id */
	size_t n_snaps;
	int err;
	/* A clone's parent: parent = "POOL ID SNAPID OVERLAP" */
	bool has_parent;
	int64_t parent_pool;
	char parent_id[17];
	uint64_t parent_snap, overlap;
	/* Clones of our snapshots: child.<POOL>.<ID> = SNAPID */
	uint64_t *child_snaps; /* From malloc() */
	size_t n_children;
};

static void header_free(struct header *h)
{
	free(h->snaps);
	free(h->child_snaps);
	h->snaps = NULL;
	h->child_snaps = NULL;
}

static int snap_cmp(const void *a, const void *b)
{
	const struct snapinfo *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static int header_cb(void *arg, const char *name, const void *value, size_t len)
{
	struct header *h = arg;
	char buf[256];

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
		if (len < sizeof(h->lock))
			memcpy(h->lock, buf, len + 1);
	} else if (!strcmp(name, "snap_seq")) {
		h->snap_seq = strtoull(buf, NULL, 10);
	} else if (!strncmp(name, "snap.", 5)) {
		struct snapinfo si = {.id = strtoull(name + 5, NULL, 16)};
		struct snapinfo *ns;
		unsigned prot = 0;
		int at = 0;

		if (sscanf(buf, "%" SCNu64 " %" SCNu64 " %u %n", &si.size, &si.time_ms, &prot,
			   &at) < 3 || !at)
			return 0;
		si.prot = prot;
		snprintf(si.name, sizeof(si.name), "%s", buf + at);
		ns = realloc(h->snaps, (h->n_snaps + 1) * sizeof(*ns));
		if (!ns) {
			h->err = -ENOMEM;
			return 0;
		}
		h->snaps = ns;
		h->snaps[h->n_snaps++] = si;
	} else if (!strcmp(name, "parent")) {
		h->has_parent = sscanf(buf, "%" SCNd64 " %16s %" SCNu64 " %" SCNu64, &h->parent_pool,
				       h->parent_id, &h->parent_snap, &h->overlap) == 4;
	} else if (!strncmp(name, "child.", 6)) {
		uint64_t *nc = realloc(h->child_snaps, (h->n_children + 1) * sizeof(*nc));

		if (!nc) {
			h->err = -ENOMEM;
			return 0;
		}
		h->child_snaps = nc;
		h->child_snaps[h->n_children++] = strtoull(buf, NULL, 10);
	}
	return 0;
}

static int header_read(mixsan_pool_t *p, const char *oid, struct header *h)
{
	int r;

	memset(h, 0, sizeof(*h));
	r = mixsan_getxattrs(p, oid, header_cb, h);
	if (r == 0)
		r = h->err;
	if (r == 0 && (!h->has_size || !h->has_order || h->order < MIXSAN_VOLUME_ORDER_MIN ||
		       h->order > MIXSAN_VOLUME_ORDER_MAX))
		r = -EBADMSG;
	if (r < 0) {
		header_free(h);
		return r;
	}
	if (h->n_snaps)
		qsort(h->snaps, h->n_snaps, sizeof(*h->snaps), snap_cmp);
	for (size_t i = 0; i < h->n_children; i++)
		for (size_t j = 0; j < h->n_snaps; j++)
			if (h->snaps[j].id == h->child_snaps[i])
				h->snaps[j].children++;
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

/* A new volume's header, under a fresh id (out): its size, object size and,
 * for a clone, its parent. */
static int header_create(mixsan_pool_t *p, uint64_t size, unsigned order, const char *parent,
			 char id[17])
{
	char hdr[48], sz[24], ord[8];
	uint64_t rnd;

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -EIO;
	snprintf(id, 17, "%016" PRIx64, rnd);
	snprintf(hdr, sizeof(hdr), "vol.%s.header", id);
	snprintf(sz, sizeof(sz), "%" PRIu64, size);
	snprintf(ord, sizeof(ord), "%u", order);
	{
		struct mx_osd_op ops[] = {
			{.op = MX_OP_CREATE, .flags = MX_OP_FLAG_EXCL},
			xattr_op(MX_OP_SETXATTR, "size", sz),
			xattr_op(MX_OP_SETXATTR, "order", ord),
			xattr_op(MX_OP_SETXATTR, "features", "0"),
			xattr_op(MX_OP_SETXATTR, "parent", parent),
		};

		return write_ops_sync(p, hdr, ops, parent ? 5 : 4);
	}
}

/* Name a volume in the directory, once: 0 or -EEXIST.  Its header exists
 * already, so a listed volume always has one. */
static int dir_add(mixsan_pool_t *p, const char *name, const char *id)
{
	char key[8 + MIXSAN_VOLUME_NAME_MAX], idkey[24];
	struct mx_osd_op ops[3];
	int r;

	snprintf(key, sizeof(key), "name.%s", name);
	snprintf(idkey, sizeof(idkey), "id.%s", id);
	ops[0] = xattr_op(MX_OP_CMPXATTR, key, "");
	ops[1] = xattr_op(MX_OP_SETXATTR, key, id);
	ops[2] = xattr_op(MX_OP_SETXATTR, idkey, name);
	r = write_ops_sync(p, DIR_OID, ops, 3);
	return r == -ECANCELED ? -EEXIST : r;
}

static void header_remove(mixsan_pool_t *p, const char *id)
{
	char hdr[48];

	snprintf(hdr, sizeof(hdr), "vol.%s.header", id);
	(void)mixsan_remove(p, hdr);
}

int mixsan_volume_create(mixsan_pool_t *p, const char *name, uint64_t size, unsigned order)
{
	char id[17];
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
	r = header_create(p, size, order, NULL, id);
	if (r < 0)
		return r;
	r = dir_add(p, name, id);
	if (r < 0)
		header_remove(p, id);
	return r;
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
static void cond_wait_ms(mixsan_volume_t *v, unsigned ms);
static int map_flush_locked(mixsan_volume_t *v);

static bool lock_gone(const mixsan_volume_t *v)
{
	return v->lock_lost || wall_ms() >= v->lease_end_ms;
}

static void map_write_done(mixsan_completion_t *c, void *arg)
{
	mixsan_volume_t *v = arg;
	int64_t r = mixsan_completion_result(c);
	struct mx_list sent, *pos, *tmp;
	bool again;

	mixsan_completion_release(c);
	mx_list_init(&sent);
	pthread_mutex_lock(&v->lock);
	free(v->map_out);
	v->map_out = NULL;
	v->map_busy = false;
	mx_list_splice_tail(&sent, &v->map_sent);
	if (r < 0) {
		v->map_err = (int)r;
		v->map_fails++;
		if (!lock_gone(v)) {
			map_dirty(v, 0); /* write it all again next time */
			map_dirty(v, v->map_len - 1);
		}
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
	/* After a failure only parts that wait try again (each failure fails
	 * those it carried, so this ends); the rest waits for the next kick. */
	again = r >= 0 || !mx_list_empty(&v->map_wait);
	if (again)
		map_kick(v);
	pthread_mutex_unlock(&v->lock);
}

/* Start a map write if one is due and none is in flight.  Once the lock is
 * gone (another writer may own the map now) not a byte more is written:
 * what waits for the map fails with -ENOLCK.  Called with v->lock held
 * (dropped and taken again when the write fails at once). */
static void map_kick(mixsan_volume_t *v)
{
	mixsan_completion_t *c;
	size_t lo = v->dirty_lo, hi = v->dirty_hi;
	bool gone;
	int r = 0;

	if (v->map_busy || v->rdonly)
		return;
	gone = lock_gone(v);
	if (gone ? mx_list_empty(&v->map_wait) : lo == hi)
		return;
	if (mixsan_completion_create(map_write_done, v, &c) < 0)
		return; /* retried at the next kick */
	mx_completion_arm(c);
	v->map_busy = true;
	mx_list_splice_tail(&v->map_sent, &v->map_wait);
	if (gone) {
		r = -ENOLCK;
	} else {
		v->map_out = malloc(hi - lo);
		if (!v->map_out) {
			r = -ENOMEM;
		} else {
			memcpy(v->map_out, v->map + lo, hi - lo);
			v->dirty_lo = v->dirty_hi = 0;
			r = mixsan_aio_write(v->pool, v->map_oid, c, v->map_out, hi - lo, lo);
		}
	}
	if (r < 0) {
		pthread_mutex_unlock(&v->lock);
		mx_completion_finish(c, r);
		pthread_mutex_lock(&v->lock);
	}
}

/* Writeback flushes (docs/cache-modes.md) ------------------------------ */

/* An object written back since the last flush, and its writes' least
 * version epoch.  objno + 1, so that 0 marks a free slot. */
struct wbent {
	uint64_t key;
	uint64_t epoch;
};

static size_t wb_slot(const struct wbent *tab, size_t cap, uint64_t key)
{
	size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);

	while (tab[i].key && tab[i].key != key)
		i = (i + 1) & (cap - 1);
	return i;
}

/* Note that objno holds a writeback write to flush, of version epoch
 * epoch.  v->lock held. */
static void wb_mark(mixsan_volume_t *v, uint64_t objno, uint64_t epoch)
{
	uint64_t key = objno + 1;
	size_t i;

	if ((v->wb_n + 1) * 2 > v->wb_cap) {
		size_t cap = v->wb_cap ? 2 * v->wb_cap : 64;
		struct wbent *t = calloc(cap, sizeof(*t));

		if (!t) {
			/* Cannot remember it: the next flush fails instead. */
			v->map_err = v->map_err ? v->map_err : -ENOMEM;
			return;
		}
		for (size_t k = 0; k < v->wb_cap; k++)
			if (v->wb_tab[k].key)
				t[wb_slot(t, cap, v->wb_tab[k].key)] = v->wb_tab[k];
		free(v->wb_tab);
		v->wb_tab = t;
		v->wb_cap = cap;
	}
	i = wb_slot(v->wb_tab, v->wb_cap, key);
	if (!v->wb_tab[i].key) {
		v->wb_tab[i].key = key;
		v->wb_tab[i].epoch = epoch;
		v->wb_n++;
	} else {
		v->wb_tab[i].epoch = MX_MIN(v->wb_tab[i].epoch, epoch);
	}
}

/* A flush's FLUSH requests, one per PG written since the last flush. */
struct wbflush {
	struct wbflush *next; /* v->wb_head list */
	mixsan_volume_t *v;
	mixsan_completion_t *user;
	pthread_mutex_t lock;
	unsigned pending;
	int err;
	bool eio;     /* a PG said EIO: writes may be lost */
	bool done;    /* every FLUSH answered */
	int inherit;  /* an earlier flush's error, v->lock held */
	/* From malloc(): the objects it took, their least version epochs and
	 * PGs, to retake on failure */
	uint64_t *objs, *eps;
	uint32_t *pgs;
	size_t n_objs;
	uint8_t *lost; /* From malloc(): per PG of the pool, answered EIO (NULL:
			  none sent) */
};

/* One FLUSH of a wbflush. */
struct wbpart {
	struct wbflush *f;
	uint32_t pg;
};

static void wbflush_free(struct wbflush *f)
{
	pthread_mutex_destroy(&f->lock);
	free(f->objs);
	free(f->eps);
	free(f->pgs);
	free(f->lost);
	free(f);
}

/* One part of f done with result r (0 or a negative errno); the last one
 * makes f done, and every done flush at the head of the volume's list
 * completes, in order: an EIO first (some writes may be lost), else its
 * own error, else an earlier flush's (what that one vouched for was
 * completed before this one started). */
static void wbflush_put(struct wbflush *f, int r)
{
	mixsan_volume_t *v = f->v;
	struct wbflush *ready = NULL, **rt = &ready;
	bool last;

	pthread_mutex_lock(&f->lock);
	if (r < 0 && !f->err)
		f->err = r;
	last = --f->pending == 0;
	pthread_mutex_unlock(&f->lock);
	if (!last)
		return;
	pthread_mutex_lock(&v->lock);
	/* Not known durable: the next flush asks again; but a PG that said
	 * EIO (writes may be lost) has said it once, as fsync does. */
	for (size_t i = 0; f->err && i < f->n_objs; i++)
		if (!f->lost || !f->lost[f->pgs[i]])
			wb_mark(v, f->objs[i], f->eps[i]);
	f->done = true;
	while (v->wb_head && v->wb_head->done) {
		struct wbflush *h = v->wb_head;

		v->wb_head = h->next;
		if (!v->wb_head)
			v->wb_tail = NULL;
		if (h->eio || h->inherit == -EIO)
			h->err = -EIO;
		else if (!h->err)
			h->err = h->inherit;
		if (v->wb_head && h->err && !v->wb_head->inherit)
			v->wb_head->inherit = h->err;
		h->next = NULL;
		*rt = h;
		rt = &h->next;
		v->wb_flushing--;
	}
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock); /* v may be closed from here on */
	while (ready) {
		struct wbflush *n = ready->next;

		mx_completion_finish(ready->user, ready->err);
		wbflush_free(ready);
		ready = n;
	}
}

static void wbflush_part_cb(mixsan_completion_t *c, void *arg)
{
	struct wbpart *part = arg;
	struct wbflush *f = part->f;
	int64_t r = mixsan_completion_result(c);

	mixsan_completion_release(c);
	if (r == -MX_EWBLOST) {
		/* Not any EIO: this PG's writes may be lost (reported once);
		 * after another error they are flushed again. */
		pthread_mutex_lock(&f->lock);
		f->lost[part->pg] = 1;
		f->eio = true;
		pthread_mutex_unlock(&f->lock);
		r = -EIO;
	}
	free(part);
	wbflush_put(f, r < 0 ? (int)r : 0);
}

/* Send f's FLUSH requests: one per PG of pool among its objects, each
 * vouching for its objects' writes from the least of their epochs on.
 * f->lost has pool->pg_num bytes.  0 or a negative errno (the parts not
 * sent). */
static int wbflush_send(struct wbflush *f, const struct mx_pool *pool)
{
	mixsan_volume_t *v = f->v;
	uint64_t *since = NULL; /* per PG: the least epoch; UINT64_MAX: none */
	size_t *first = NULL;   /* per PG: the object its FLUSH names */
	char oid[64];
	int r;

	since = malloc(pool->pg_num * sizeof(*since));
	first = malloc(pool->pg_num * sizeof(*first));
	if (!since || !first) {
		r = -ENOMEM;
		goto out;
	}
	for (uint32_t pg = 0; pg < pool->pg_num; pg++)
		since[pg] = UINT64_MAX;
	for (size_t i = 0; i < f->n_objs; i++) {
		obj_name(oid, sizeof(oid), v->id, f->objs[i]);
		f->pgs[i] = mx_object_pg(pool, oid, strlen(oid));
		if (since[f->pgs[i]] == UINT64_MAX)
			first[f->pgs[i]] = i;
		since[f->pgs[i]] = MX_MIN(since[f->pgs[i]], f->eps[i]);
	}
	r = 0;
	for (uint32_t pg = 0; pg < pool->pg_num && r == 0; pg++) {
		mixsan_completion_t *c;
		struct wbpart *part;

		if (since[pg] == UINT64_MAX)
			continue;
		part = malloc(sizeof(*part));
		if (!part) {
			r = -ENOMEM;
			break;
		}
		part->f = f;
		part->pg = pg;
		r = mixsan_completion_create(wbflush_part_cb, part, &c);
		if (r < 0) {
			free(part);
			break;
		}
		pthread_mutex_lock(&f->lock);
		f->pending++;
		pthread_mutex_unlock(&f->lock);
		obj_name(oid, sizeof(oid), v->id, f->objs[first[pg]]);
		r = mx_client_aio_flush_pg(v->pool, oid, c, since[pg]);
		if (r < 0) {
			mixsan_completion_release(c); /* never taken */
			free(part);
			wbflush_put(f, r);
		}
	}
out:
	free(since);
	free(first);
	return r;
}

/* Flush v's writeback writes for the flush request user, whose earlier
 * requests have all completed: take the objects written since the last
 * flush, and send one FLUSH to each distinct PG among them (to one of its
 * objects); user completes when all are done and every earlier flush has
 * completed (wbflush_put says with what), or with err.  0 if it took
 * user, or a negative errno: nothing to flush or wait for (the caller
 * completes user itself). */
static int wb_flush_start(mixsan_volume_t *v, mixsan_completion_t *user, int err)
{
	struct wbflush *f;
	size_t n = 0;
	int r;

	pthread_mutex_lock(&v->lock);
	if (v->cache_mode == MIXSAN_CACHE_WRITETHROUGH || err ||
	    (v->wb_n == 0 && !v->wb_head)) {
		pthread_mutex_unlock(&v->lock);
		return -ENOENT;
	}
	f = calloc(1, sizeof(*f));
	if (f) {
		pthread_mutex_init(&f->lock, NULL);
		if (v->wb_n) {
			f->objs = malloc(v->wb_n * sizeof(*f->objs));
			f->eps = malloc(v->wb_n * sizeof(*f->eps));
			f->pgs = calloc(v->wb_n, sizeof(*f->pgs)); /* PG 0 until sent */
		}
	}
	if (!f || (v->wb_n && (!f->objs || !f->eps || !f->pgs))) {
		pthread_mutex_unlock(&v->lock);
		if (f)
			wbflush_free(f);
		mx_completion_finish(user, -ENOMEM);
		return 0;
	}
	for (size_t k = 0; k < v->wb_cap && n < v->wb_n; k++) {
		if (!v->wb_tab[k].key)
			continue;
		f->objs[n] = v->wb_tab[k].key - 1;
		f->eps[n++] = v->wb_tab[k].epoch;
	}
	f->n_objs = n;
	if (v->wb_tab)
		memset(v->wb_tab, 0, v->wb_cap * sizeof(*v->wb_tab));
	v->wb_n = 0;
	f->v = v;
	f->user = user;
	f->pending = 1; /* ours, while sending */
	if (v->wb_tail)
		v->wb_tail->next = f;
	else
		v->wb_head = f;
	v->wb_tail = f;
	v->wb_flushing++;
	pthread_mutex_unlock(&v->lock);
	r = 0;
	if (f->n_objs) {
		struct mx_map *m = mx_client_map_copy(mx_client_pool_cluster(v->pool));
		const struct mx_pool *pool =
			m ? mx_map_pool_by_id(m, (int32_t)mixsan_pool_id(v->pool)) : NULL;

		if (!pool)
			r = m ? -ENOENT : -ENOMEM;
		else if (!pool->pg_num || !(f->lost = calloc(pool->pg_num, 1)))
			r = -ENOMEM;
		else
			r = wbflush_send(f, pool);
		mx_map_free(m);
	}
	wbflush_put(f, r); /* ours: the last one done completes it */
	return 0;
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
	int flush_err = 0;

	mx_list_init(&done);
	pthread_mutex_lock(&v->lock);
	if (q->kind == V_FLUSH) {
		/* Its parts are done: it waits only for what started before. */
		q->pending = 0;
	} else {
		mx_list_del(&q->link);
	}
	flushes_check(v, &done);
	if (!mx_list_empty(&done)) {
		/* What the flushes report, read once: after the first one
		 * completes the handle may be closed and gone. */
		flush_err = v->map_err;
		v->map_err = 0;
	}
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
		if (wb_flush_start(v, f->user, flush_err) < 0)
			mx_completion_finish(f->user, flush_err);
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

	if (err < 0 || !mx_list_empty(&pt->wlink)) {
		pthread_mutex_lock(&q->v->lock);
		if (err < 0 && !q->err)
			q->err = err;
		mx_list_del(&pt->wlink);
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
	} else if (pt->wb && r >= 0) {
		pthread_mutex_lock(&v->lock);
		wb_mark(v, pt->objno, pt->ver.epoch);
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
		if (pt->wb) {
			struct mx_osd_op o = {.op = MX_OP_WRITE, .off = pt->off,
					      .data = pt->buf, .data_len = (uint32_t)pt->len};

			r = mx_client_aio_write_ops_wb(v->pool, pt->oid, pt->c, &o, 1, &pt->ver);
		} else {
			r = mixsan_aio_write(v->pool, pt->oid, pt->c, pt->buf, pt->len, pt->off);
		}
		break;
	case MX_OP_TRUNCATE:
		r = mixsan_aio_truncate(v->pool, pt->oid, pt->c, pt->off);
		break;
	case MX_OP_WRITEFULL: /* empty: a clone's object of zeroes */
		r = mixsan_aio_write_full(v->pool, pt->oid, pt->c, NULL, 0);
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
	map_set(v, pt->objno, MAP_DIRTY);
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

static int prepare_changes(mixsan_volume_t *v, enum vkind kind, uint64_t off, uint64_t len);

/* Whether zeroing [off, off + len) would write zeroes somewhere: inside an
 * object with data (not its whole or its tail), or anywhere but a whole
 * object over a clone's parent. */
static bool zero_writes(mixsan_volume_t *v, uint64_t off, uint64_t len)
{
	uint64_t end, size;
	bool w = false;

	pthread_mutex_lock(&v->lock);
	size = v->size;
	end = off <= size && len <= size - off ? off + len : off;
	for (uint64_t at = off; at < end && !w;) {
		uint64_t objno = at >> v->order, ostart = objno << v->order;
		uint64_t oend = MX_MIN(ostart + v->obj_size, size);
		uint64_t e = MX_MIN(end, ostart + v->obj_size);
		bool whole = at == ostart && e >= oend;

		if (v->parent && ostart < v->overlap)
			w = !whole;
		else
			w = map_get(v, objno) != MAP_ABSENT && e < oend;
		at = e;
	}
	pthread_mutex_unlock(&v->lock);
	return w;
}
static int unlink_parent(mixsan_volume_t *v);
static int read_fallback(mixsan_volume_t *v, uint64_t objno, uint8_t *buf, uint64_t off,
			 uint64_t len);
static int read_sync(mixsan_volume_t *v, uint8_t *buf, uint64_t len, uint64_t off);
static void change_started(mixsan_volume_t *v);

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
	if (kind == V_READ && (v->snap_id || v->parent)) {
		/* Snapshots and clones read object by object, here. */
		int64_t got = read_sync(v, buf, len, off);

		if (got < 0)
			return (int)got;
		mx_completion_arm(user);
		mx_completion_finish(user, got);
		return 0;
	}
	if (kind == V_ZERO && (zflags & MIXSAN_ZERO_FAST) && zero_writes(v, off, len))
		return -ENOTSUP; /* refused before anything changes */
	if (kind != V_READ && kind != V_FLUSH) {
		/* Copies a snapshot or a clone needs first (counts as started
		 * so a snapshot waits for it). */
		r = prepare_changes(v, kind, off, len);
		if (r < 0)
			return r;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		if (kind != V_READ && kind != V_FLUSH)
			change_started(v);
		return -ENOMEM;
	}
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
	if (kind != V_READ && kind != V_FLUSH && v->starting) {
		v->starting--; /* in v->inflight from here on (or failed) */
		pthread_cond_broadcast(&v->cond);
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
		mx_list_init(&pt->wlink);
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
			pt->wb = v->cache_mode != MIXSAN_CACHE_WRITETHROUGH &&
				 !(zflags & REQ_FUA);
			break;
		case V_DISCARD:
		case V_ZERO: {
			/* A clone keeps an object that reads as zeroes where its
			 * parent has data: it never removes or cuts one there. */
			bool under = v->parent && ostart < v->overlap;

			if (!present && !under) {
				pt->op = 0; /* reads as zeroes already */
			} else if (at == ostart && e >= oend) {
				pt->op = under ? MX_OP_WRITEFULL : MX_OP_REMOVE;
				pt->removes = !under;
			} else if (e >= oend && !under) {
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
		}
		case V_FLUSH:
			break;
		}
		at = e;
	}
	/* Decide who waits for the map under the lock, send after it. */
	for (unsigned i = 0; i < n; i++) {
		struct vpart *pt = &q->parts[i];

		if (pt->op == MX_OP_WRITE || pt->op == MX_OP_TRUNCATE ||
		    pt->op == MX_OP_WRITEFULL) {
			pt->waits = part_mark(v, pt); /* then map_write_done sends it */
			mx_list_add_tail(&v->writing, &pt->wlink);
		} else if (pt->op == MX_OP_REMOVE) {
			struct mx_list *pos;

			mx_list_add_tail(&v->removing, &pt->rm_link);
			/* A change in flight (sent, or waiting for the map)
			 * may land after the removal and create the object
			 * again: keep the mark then. */
			mx_list_for_each(pos, &v->writing)
				if (mx_list_entry(pos, struct vpart, wlink)->objno == pt->objno)
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

int mixsan_volume_aio_write_flags(mixsan_volume_t *v, mixsan_completion_t *c, const void *buf,
				  size_t len, uint64_t off, unsigned flags)
{
	if (flags & ~MIXSAN_WRITE_FUA)
		return -EINVAL;
	return req_start(v, c, V_WRITE, (uint8_t *)(uintptr_t)buf, len, off,
			 (flags & MIXSAN_WRITE_FUA) ? REQ_FUA : 0);
}

int mixsan_volume_cache_mode(mixsan_volume_t *v)
{
	return v ? v->cache_mode : -EINVAL;
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

int64_t mixsan_volume_read(mixsan_volume_t *v, void *buf, size_t len, uint64_t off)
{
	MX_SYNC(mixsan_volume_aio_read(v, c_, buf, len, off));
}

int mixsan_volume_write(mixsan_volume_t *v, const void *buf, size_t len, uint64_t off)
{
	MX_SYNC(mixsan_volume_aio_write(v, c_, buf, len, off));
}

int mixsan_volume_write_flags(mixsan_volume_t *v, const void *buf, size_t len, uint64_t off,
			      unsigned flags)
{
	MX_SYNC(mixsan_volume_aio_write_flags(v, c_, buf, len, off, flags));
}

int mixsan_volume_discard(mixsan_volume_t *v, uint64_t len, uint64_t off)
{
	MX_SYNC(mixsan_volume_aio_discard(v, c_, len, off));
}

int mixsan_volume_write_zeroes(mixsan_volume_t *v, uint64_t len, uint64_t off,
			       unsigned flags)
{
	MX_SYNC(mixsan_volume_aio_write_zeroes(v, c_, len, off, flags));
}

int mixsan_volume_flush(mixsan_volume_t *v)
{
	MX_SYNC(mixsan_volume_aio_flush(v, c_));
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

/* Change the header with ops (at most 3), only while we hold the lock:
 * -ENOLCK if another writer took it. */
static int header_guarded(mixsan_volume_t *v, const struct mx_osd_op *ops, unsigned n)
{
	char mine[LOCK_VALUE_MAX];
	struct mx_osd_op all[4];
	int r = -ECANCELED;

	/* The renewer rewrites the lock's value: a mismatch with a value it
	 * replaced meanwhile is tried again with the new one. */
	for (int tries = 0; tries < 3 && r == -ECANCELED; tries++) {
		pthread_mutex_lock(&v->lock);
		if (tries && !strcmp(mine, v->lock_val)) {
			pthread_mutex_unlock(&v->lock);
			break;
		}
		memcpy(mine, v->lock_val, sizeof(mine));
		pthread_mutex_unlock(&v->lock);
		all[0] = xattr_op(MX_OP_CMPXATTR, "lock", mine);
		memcpy(all + 1, ops, n * sizeof(*ops));
		r = write_ops_sync(v->pool, v->hdr_oid, all, n + 1);
	}
	return r == -ECANCELED ? -ENOLCK : r;
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
		header_free(&h);
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
	if (v->parent)
		mixsan_volume_close(v->parent);
	mixsan_pool_close(v->parent_pool);
	pthread_mutex_destroy(&v->lock);
	pthread_cond_destroy(&v->cond);
	free(v->map);
	free(v->snaps);
	free(v->copying);
	free(v->known);
	free(v->wb_tab);
	free(v);
}

/* Take the header's snapshots and parent into v (h's arrays move). */
static void header_apply(mixsan_volume_t *v, struct header *h)
{
	free(v->snaps);
	v->snaps = h->snaps;
	v->n_snaps = h->n_snaps;
	h->snaps = NULL;
	v->snap_seq = h->snap_seq;
	header_free(h);
}

static const struct snapinfo *snap_by_name(const mixsan_volume_t *v, const char *name)
{
	for (size_t i = 0; i < v->n_snaps; i++)
		if (!strcmp(v->snaps[i].name, name))
			return &v->snaps[i];
	return NULL;
}

static const struct snapinfo *snap_by_id(const mixsan_volume_t *v, uint64_t id)
{
	for (size_t i = 0; i < v->n_snaps; i++)
		if (v->snaps[i].id == id)
			return &v->snaps[i];
	return NULL;
}

static void snap_map_oid(const mixsan_volume_t *v, uint64_t id, char *out, size_t n)
{
	snprintf(out, n, "vol.%s.objmap.%016" PRIx64, v->id, id);
}

static void copy_oid(const mixsan_volume_t *v, uint64_t objno, uint64_t snap, char *out,
		     size_t n)
{
	snprintf(out, n, "vol.%s.%016" PRIx64 ".%016" PRIx64, v->id, objno, snap);
}

static int volume_open_id(mixsan_pool_t *p, const char *id, const char *name,
			  const struct mixsan_volume_options *opts, uint64_t snap_id,
			  mixsan_volume_t **out);

/* A clone opens its parent read-only at the snapshot it was made of. */
static int parent_open(mixsan_volume_t *v, const struct header *h)
{
	int r;

	v->parent_pool_id = h->parent_pool;
	memcpy(v->parent_id, h->parent_id, sizeof(v->parent_id));
	v->parent_snap = h->parent_snap;
	v->overlap = h->overlap;
	r = mx_client_pool_open_id(mx_client_pool_cluster(v->pool), h->parent_pool,
				   &v->parent_pool);
	if (r < 0)
		return r;
	return volume_open_id(v->parent_pool, h->parent_id, NULL,
			      &(struct mixsan_volume_options){.flags = MIXSAN_VOLUME_RDONLY},
			      h->parent_snap, &v->parent);
}

int mixsan_volume_open(mixsan_pool_t *p, const char *name,
		       const struct mixsan_volume_options *opts, mixsan_volume_t **out)
{
	char id[17];
	int r;

	if (!p || !out || check_name(name) < 0)
		return -EINVAL;
	if (opts && (opts->flags & ~MIXSAN_VOLUME_RDONLY))
		return -EINVAL;
	if (opts && (opts->cache_mode < MIXSAN_CACHE_WRITETHROUGH ||
		     opts->cache_mode > MIXSAN_CACHE_NONE))
		return -EINVAL;
	r = lookup_id(p, name, id);
	if (r < 0)
		return r;
	return volume_open_id(p, id, name, opts, 0, out);
}

static int volume_open_id(mixsan_pool_t *p, const char *id, const char *name,
			  const struct mixsan_volume_options *opts, uint64_t snap_id,
			  mixsan_volume_t **out)
{
	mixsan_volume_t *v;
	struct header h;
	char host[64] = "";
	uint64_t nonce = 0;
	pthread_condattr_t ca;
	int r;

	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->pool = p;
	snprintf(v->name, sizeof(v->name), "%s", name ? name : id);
	v->rdonly = (opts && (opts->flags & MIXSAN_VOLUME_RDONLY)) || snap_id ||
		    (opts && opts->snapshot);
	v->lease_ms = opts && opts->lease_ms ? opts->lease_ms : LEASE_DEFAULT_MS;
	v->cache_mode = opts ? opts->cache_mode : MIXSAN_CACHE_WRITETHROUGH;
	pthread_mutex_init(&v->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_REALTIME);
	pthread_cond_init(&v->cond, &ca);
	pthread_condattr_destroy(&ca);
	mx_list_init(&v->map_wait);
	mx_list_init(&v->map_sent);
	mx_list_init(&v->removing);
	mx_list_init(&v->writing);
	mx_list_init(&v->inflight);
	memcpy(v->id, id, sizeof(v->id));
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
		header_free(&h);
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
	if (h.has_parent) {
		r = parent_open(v, &h);
		if (r < 0) {
			header_free(&h);
			goto fail_unlock;
		}
	}
	header_apply(v, &h);
	if (opts && opts->snapshot) {
		const struct snapinfo *si = snap_by_name(v, opts->snapshot);

		if (!si) {
			r = -ENOENT;
			goto fail;
		}
		snap_id = si->id;
	}
	if (snap_id) {
		const struct snapinfo *si = snap_by_id(v, snap_id);

		if (!si) {
			r = -ENOENT;
			goto fail;
		}
		v->snap_id = snap_id;
		v->size = si->size;
		snap_map_oid(v, snap_id, v->map_oid, sizeof(v->map_oid));
	}
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
	int r = 0;

	pthread_mutex_lock(&v->lock);
	while (!mx_list_empty(&v->inflight) || v->starting || v->wb_flushing) {
		map_kick(v);
		cond_wait_ms(v, 100);
	}
	if (!v->rdonly)
		r = map_flush_locked(v);
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
	/* Writeback: what was written since the last flush is made durable. */
	r = !v->rdonly && v->cache_mode != MIXSAN_CACHE_WRITETHROUGH ? mixsan_volume_flush(v) : 0;
	r2 = volume_drain(v);
	if (r == 0)
		r = r2;
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

/* A reader's view of the map: read it again (the writer changes it).  1
 * if it read the header (its lock value then in lock, if not NULL), 0 if
 * there was nothing to read, or an error. */
static int map_refresh(mixsan_volume_t *v, char lock[LOCK_VALUE_MAX])
{
	struct header h;
	uint8_t *m;
	size_t len;
	int64_t r;

	if (!v->rdonly || v->snap_id)
		return 0; /* the writer's map is exact; a snapshot's does not change */
	r = header_read(v->pool, v->hdr_oid, &h);
	if (r < 0)
		return (int)r;
	len = (size_t)((((h.size + v->obj_size - 1) >> v->order) + 3) / 4);
	m = calloc(1, len ? len : 1);
	if (!m) {
		header_free(&h);
		return -ENOMEM;
	}
	r = len ? mixsan_read(v->pool, v->map_oid, m, len, 0) : 0;
	if (r < 0 && r != -ENOENT) {
		header_free(&h);
		free(m);
		return (int)r;
	}
	if (lock)
		memcpy(lock, h.lock, LOCK_VALUE_MAX);
	pthread_mutex_lock(&v->lock);
	free(v->map);
	v->map = m;
	v->map_len = len;
	v->size = h.size;
	header_apply(v, &h);
	pthread_mutex_unlock(&v->lock);
	return 1;
}

int mixsan_volume_locate(mixsan_volume_t *v, uint64_t off,
			 struct mixsan_volume_location *out)
{
	mixsan_cluster_t *cl;
	struct mx_map *m;
	const struct mx_osd_info *o;
	uint64_t objno;
	int n;

	if (!v || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&v->lock);
	if (off >= v->size) {
		pthread_mutex_unlock(&v->lock);
		return -EINVAL;
	}
	objno = off >> v->order;
	out->allocated = map_get(v, objno) != MAP_ABSENT;
	pthread_mutex_unlock(&v->lock);
	obj_name(out->object, sizeof(out->object), v->id, objno);
	cl = mx_client_pool_cluster(v->pool);
	out->pool = mixsan_pool_id(v->pool);
	n = mx_client_locate(cl, out->pool, out->object, &out->pg, out->acting,
			     MIXSAN_LOCATE_MAX);
	if (n <= 0)
		return n < 0 && n != -ENOENT ? n : -EAGAIN;
	out->n_acting = n;
	m = mx_client_map_copy(cl);
	o = m ? mx_map_osd(m, out->acting[0]) : NULL;
	if (o) {
		const char *host = mx_osd_loc_name(o, MX_LEVEL_HOST);

		snprintf(out->primary_addr, sizeof(out->primary_addr), "%s", o->addr);
		snprintf(out->primary_host, sizeof(out->primary_host), "%s", host ? host : "");
	}
	mx_map_free(m);
	return 0;
}

int mixsan_volume_info(mixsan_volume_t *v, struct mixsan_volume_info *out)
{
	char lock[LOCK_VALUE_MAX];
	struct header h;
	uint64_t used = 0;
	int r;

	if (!v || !out)
		return -EINVAL;
	r = map_refresh(v, lock);
	if (r == 0) {
		/* The map needed no reading: the header, for the lock. */
		r = header_read(v->pool, v->hdr_oid, &h);
		if (r == 0) {
			memcpy(lock, h.lock, sizeof(lock));
			header_free(&h);
		}
	}
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
	if (lock[0]) {
		const char *sp = strrchr(lock, ' ');
		size_t n = sp ? (size_t)(sp - lock) : strlen(lock);

		n = MX_MIN(n, sizeof(out->lock_owner) - 1);
		memcpy(out->lock_owner, lock, n);
		out->lock_expires_ms = lock_expiry(lock);
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
	r = map_refresh(v, NULL);
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
		bits[i] = map_get(v, first + i) != MAP_ABSENT ||
			  (v->parent && ((first + i) << v->order) < v->overlap);
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

/* Discard a range of any length, 4096 objects a request (a request holds
 * one part per object). */
static int discard_range(mixsan_volume_t *v, uint64_t off, uint64_t len)
{
	uint64_t step = v->obj_size << 12;
	int r = 0;

	while (len && r == 0) {
		uint64_t n = MX_MIN(len, step - off % step);

		r = mixsan_volume_discard(v, n, off);
		off += n;
		len -= n;
	}
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
		r = discard_range(v, size, old - size);
		if (r == 0)
			r = volume_drain(v);
		if (r < 0)
			return r;
	}
	snprintf(sz, sizeof(sz), "%" PRIu64, size);
	{
		struct mx_osd_op op = xattr_op(MX_OP_SETXATTR, "size", sz);

		r = header_guarded(v, &op, 1);
	}
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
	if (r == 0 && v->n_snaps) {
		mixsan_volume_close(v);
		return -ENOTEMPTY; /* its snapshots go first */
	}
	if (r == 0) {
		/* Data first, then the map and the header, the name last: an
		 * interrupted removal is finished by running it again.  A
		 * clone's objects are removed as any (no parent to show). */
		v->overlap = 0;
		r = discard_range(v, 0, v->size);
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
		if (r == 0 && v->parent)
			r = unlink_parent(v);
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

/* Snapshots and clones (docs/volumes.md, "Snapshots", "Clones") --------- */

static void change_started(mixsan_volume_t *v)
{
	pthread_mutex_lock(&v->lock);
	if (v->starting)
		v->starting--;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

static void cond_wait_ms(mixsan_volume_t *v, unsigned ms)
{
	struct timespec ts;
	uint64_t at = wall_ms() + ms;

	ts.tv_sec = (time_t)(at / 1000);
	ts.tv_nsec = (long)(at % 1000) * 1000000;
	pthread_cond_timedwait(&v->cond, &v->lock, &ts);
}

/* Make every map change so far durable: 0, or the error of a map write
 * that failed meanwhile (-ENOLCK once the lock is gone).  Called with
 * v->lock held. */
static int map_flush_locked(mixsan_volume_t *v)
{
	unsigned fails = v->map_fails;

	while (v->dirty_lo != v->dirty_hi || v->map_busy) {
		if (v->map_fails != fails)
			return v->map_err;
		if (!v->map_busy && lock_gone(v))
			return -ENOLCK;
		map_kick(v);
		cond_wait_ms(v, 50);
	}
	return v->map_fails != fails ? v->map_err : 0;
}

/* Mark objno changed since the latest snapshot, durably. */
static int mark_sync(mixsan_volume_t *v, uint64_t objno)
{
	int r;

	pthread_mutex_lock(&v->lock);
	map_set(v, objno, MAP_DIRTY);
	r = map_flush_locked(v);
	pthread_mutex_unlock(&v->lock);
	return r;
}

static bool copying_has(const mixsan_volume_t *v, uint64_t objno)
{
	for (size_t i = 0; i < v->n_copying; i++)
		if (v->copying[i] == objno)
			return true;
	return false;
}

/* The latest live snapshot's id, 0 if none.  v->lock held. */
static uint64_t latest_snap(const mixsan_volume_t *v)
{
	return v->n_snaps ? v->snaps[v->n_snaps - 1].id : 0;
}

/* Create oid holding data (len 0: empty) unless it exists: 0 either way. */
static int create_copy(mixsan_pool_t *p, const char *oid, const uint8_t *data, size_t len)
{
	struct mx_osd_op ops[2] = {
		{.op = MX_OP_CREATE, .flags = MX_OP_FLAG_EXCL},
		{.op = MX_OP_WRITE, .data = data, .data_len = (uint32_t)len},
	};
	int r = write_ops_sync(p, oid, ops, len ? 2 : 1);

	return r == -EEXIST ? 0 : r;
}

static bool all_zero(const uint8_t *b, size_t n)
{
	return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

/* Before object objno changes: a clone copies up what its parent holds for
 * it (whole_drop: the change drops the whole object, nothing to copy up);
 * an object unchanged since the latest snapshot is copied for it first. */
static bool known_get(const mixsan_volume_t *v, uint64_t objno)
{
	return v->known && (v->known[objno / 8] >> (objno % 8)) & 1u;
}

static void known_set(mixsan_volume_t *v, uint64_t objno)
{
	if (!v->known)
		v->known = calloc(1, MIXSAN_VOLUME_OBJECTS_MAX / 8);
	if (v->known && objno < MIXSAN_VOLUME_OBJECTS_MAX)
		v->known[objno / 8] |= (uint8_t)(1u << (objno % 8));
}

static int prepare_object(mixsan_volume_t *v, uint64_t objno, bool whole_drop)
{
	uint64_t ostart = objno << v->order, snap;
	uint8_t *buf = NULL;
	char oid[96];
	bool copyup, cow, exists = false;
	unsigned st;
	int r = 0;

	pthread_mutex_lock(&v->lock);
	while (copying_has(v, objno))
		cond_wait_ms(v, 50);
	st = map_get(v, objno);
	snap = latest_snap(v);
	/* A clone copies up unless it knows the object exists: marked is not
	 * enough (marked first, created second: a failure between leaves it
	 * marked and absent). */
	copyup = v->parent && ostart < v->overlap && !whole_drop && !known_get(v, objno);
	cow = st == MAP_EXISTS && snap;
	if (!copyup && !cow) {
		pthread_mutex_unlock(&v->lock);
		return 0;
	}
	if (v->n_copying == v->cap_copying) {
		size_t nc = v->cap_copying ? 2 * v->cap_copying : 16;
		uint64_t *a = realloc(v->copying, nc * sizeof(*a));

		if (!a) {
			pthread_mutex_unlock(&v->lock);
			return -ENOMEM;
		}
		v->copying = a;
		v->cap_copying = nc;
	}
	v->copying[v->n_copying++] = objno;
	pthread_mutex_unlock(&v->lock);

	buf = malloc(v->obj_size);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	obj_name(oid, sizeof(oid), v->id, objno);
	if (copyup && st != MAP_ABSENT) {
		struct mixsan_stat sst;

		r = mixsan_stat(v->pool, oid, &sst);
		copyup = r == -ENOENT;
		exists = r == 0;
		if (r == -ENOENT)
			r = 0;
		if (r < 0)
			goto out;
	}
	if (copyup) {
		/* Mark first (write-ahead), then the whole object at once. */
		uint64_t n = MX_MIN(v->obj_size, v->overlap - ostart);

		r = read_fallback(v, objno, buf, 0, n);
		if (r == 0)
			r = mark_sync(v, objno);
		if (r == 0)
			r = create_copy(v->pool, oid, buf, all_zero(buf, n) ? 0 : n);
		exists = r == 0;
	}
	if (r == 0 && cow) {
		/* The copy first, then the mark that says it is made.  An object
		 * marked but absent holds zeroes, or a clone's parent's data. */
		int64_t got = mixsan_read(v->pool, oid, buf, v->obj_size, 0);

		if (got >= 0)
			exists = true;
		if (got == -ENOENT) {
			got = (int64_t)MX_MIN(v->obj_size, mixsan_volume_size(v) - ostart);
			r = read_fallback(v, objno, buf, 0, (uint64_t)got);
			if (r == 0 && all_zero(buf, (size_t)got))
				got = 0;
		}
		copy_oid(v, objno, snap, oid, sizeof(oid));
		if (r == 0)
			r = got < 0 ? (int)got : create_copy(v->pool, oid, buf, (size_t)got);
		if (r == 0)
			r = mark_sync(v, objno);
	}
out:
	free(buf);
	pthread_mutex_lock(&v->lock);
	if (r == 0 && exists && v->parent)
		known_set(v, objno);
	for (size_t i = 0; i < v->n_copying; i++)
		if (v->copying[i] == objno) {
			v->copying[i] = v->copying[--v->n_copying];
			break;
		}
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	return r;
}

static int prepare_changes(mixsan_volume_t *v, enum vkind kind, uint64_t off, uint64_t len)
{
	uint64_t end = off + len, size;
	int r = 0;

	pthread_mutex_lock(&v->lock);
	while (v->frozen)
		cond_wait_ms(v, 50);
	v->starting++;
	size = v->size;
	pthread_mutex_unlock(&v->lock);
	if (v->rdonly || !len || off > size || len > size - off)
		return 0; /* req_start refuses it */
	for (uint64_t at = off; at < end && r == 0;) {
		uint64_t objno = at >> v->order, ostart = objno << v->order;
		uint64_t oend = MX_MIN(ostart + v->obj_size, size);
		uint64_t e = MX_MIN(end, ostart + v->obj_size);
		bool whole = at == ostart && e >= oend && kind != V_WRITE;

		r = prepare_object(v, objno, whole);
		at = e;
	}
	if (r < 0)
		change_started(v);
	return r;
}

/* Data of [off, off + len) of object objno where v holds none: the
 * parent's (within the overlap) or zeroes. */
static int read_fallback(mixsan_volume_t *v, uint64_t objno, uint8_t *buf, uint64_t off,
			 uint64_t len)
{
	uint64_t at = (objno << v->order) + off, n = 0;
	int64_t r;

	if (v->parent && at < v->overlap) {
		n = MX_MIN(len, v->overlap - at);
		r = mixsan_volume_read(v->parent, buf, n, at);
		if (r < 0)
			return (int)r;
		n = (uint64_t)r;
	}
	memset(buf + n, 0, len - n);
	return 0;
}

/* Read oid into buf; 1 if it exists (zeroes past its end), 0 if not. */
static int read_obj(mixsan_pool_t *p, const char *oid, uint8_t *buf, uint64_t off,
		    uint64_t len)
{
	int64_t r = mixsan_read(p, oid, buf, len, off);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return (int)r;
	memset(buf + r, 0, len - (uint64_t)r);
	return 1;
}

/* The ids of the live snapshots at or after v's, copied under the lock. */
static int snap_ids(mixsan_volume_t *v, uint64_t **out, size_t *n_out)
{
	size_t n = 0;

	pthread_mutex_lock(&v->lock);
	*out = malloc((v->n_snaps ? v->n_snaps : 1) * sizeof(**out));
	if (*out)
		for (size_t i = 0; i < v->n_snaps; i++)
			if (v->snaps[i].id >= v->snap_id)
				(*out)[n++] = v->snaps[i].id;
	pthread_mutex_unlock(&v->lock);
	*n_out = n;
	return *out ? 0 : -ENOMEM;
}

/* Read the first of the copies made for snapshots ids[0..n) that exists:
 * its index, n if none does (buf untouched then), or an error. */
static int first_copy(mixsan_volume_t *v, uint64_t objno, const uint64_t *ids, size_t n,
		      uint8_t *buf, uint64_t off, uint64_t len)
{
	char oid[96];

	for (size_t i = 0; i < n; i++) {
		int r;

		copy_oid(v, objno, ids[i], oid, sizeof(oid));
		r = read_obj(v->pool, oid, buf, off, len);
		if (r != 0)
			return r < 0 ? r : (int)i;
	}
	return (int)n;
}

/* A snapshot's data of an object: the oldest copy made for a snapshot at
 * or after it, else the head.  Copies are made (and handed down to earlier
 * snapshots) before what they replace changes or goes, so having read a
 * later source, look again at the earlier ones: a copy that appeared
 * meanwhile holds the snapshot's data and wins. */
static int read_snap_obj(mixsan_volume_t *v, uint64_t objno, uint8_t *buf, uint64_t off,
			 uint64_t len)
{
	uint64_t *ids;
	struct header h;
	char oid[64];
	size_t n;
	int i, r;

	r = snap_ids(v, &ids, &n);
	if (r < 0)
		return r;
	i = first_copy(v, objno, ids, n, buf, off, len);
	if (i >= 0 && (size_t)i < n) {
		r = i > 0 ? first_copy(v, objno, ids, (size_t)i, buf, off, len) : 0;
		free(ids);
		return r < 0 ? r : 0;
	}
	free(ids);
	if (i < 0)
		return i;
	obj_name(oid, sizeof(oid), v->id, objno);
	r = read_obj(v->pool, oid, buf, off, len);
	if (r == 0)
		r = read_fallback(v, objno, buf, off, len);
	if (r < 0)
		return r;
	/* Snapshots taken since we looked count too.  Without them the head
	 * read may be newer than the snapshot (a copy made for one we do not
	 * know of holds its data): fail rather than return it, and so have
	 * the snapshot cache keep it for ever. */
	r = header_read(v->pool, v->hdr_oid, &h);
	if (r < 0)
		return r;
	pthread_mutex_lock(&v->lock);
	header_apply(v, &h);
	r = snap_by_id(v, v->snap_id) ? 0 : -ENOENT; /* removed: no content left */
	pthread_mutex_unlock(&v->lock);
	if (r < 0)
		return r;
	r = snap_ids(v, &ids, &n);
	if (r < 0)
		return r;
	i = first_copy(v, objno, ids, n, buf, off, len);
	free(ids);
	return i < 0 ? i : 0;
}

static int read_sync_obj(mixsan_volume_t *v, uint64_t objno, uint8_t *buf, uint64_t off,
			 uint64_t len)
{
	char oid[64];
	unsigned st;
	int r;

	pthread_mutex_lock(&v->lock);
	st = map_get(v, objno);
	pthread_mutex_unlock(&v->lock);
	if (v->snap_id) {
		if (st == MAP_ABSENT)
			return read_fallback(v, objno, buf, off, len);
		return read_snap_obj(v, objno, buf, off, len);
	}
	if (!v->rdonly && st == MAP_ABSENT)
		return read_fallback(v, objno, buf, off, len);
	obj_name(oid, sizeof(oid), v->id, objno);
	r = read_obj(v->pool, oid, buf, off, len);
	if (r == 0)
		r = read_fallback(v, objno, buf, off, len);
	return r < 0 ? r : 0;
}

/* The snapshot cache (docs/vdi-cache.md) ---------------------------------
 *
 * A snapshot's content never changes while it exists, and its name (pool,
 * volume id, snapshot id) is never given to other content: pool ids are
 * not reused, volume ids are 64 random bits, snapshot ids only grow.  So
 * its blocks are cached with no invalidation, and every handle open at the
 * snapshot (each clone's parent) shares them. */

/* How much to read ahead of a snapshot read at off: the window while
 * the handle's reads have been sequential of late, none while random.  A
 * read continues a stream if it starts between the last one's start and a
 * window past its end. */
static uint64_t stream_ahead(mixsan_volume_t *v, uint64_t off, uint64_t len, uint64_t window)
{
	bool seq;
	uint64_t ahead;

	if (!window)
		return 0;
	pthread_mutex_lock(&v->lock);
	seq = off >= v->ra_off && off <= v->ra_end + window;
	if (seq && v->ra_random > 0)
		v->ra_random--;
	else if (!seq && v->ra_random < 3)
		v->ra_random++;
	v->ra_off = off;
	v->ra_end = off + len;
	ahead = v->ra_random < 2 ? window : 0;
	pthread_mutex_unlock(&v->lock);
	return ahead;
}

struct cache_fill {
	mixsan_volume_t *v;
	uint64_t objno;
};

static int cache_fill(void *arg, uint8_t *buf, uint64_t off, uint64_t len)
{
	struct cache_fill *f = arg;

	return read_sync_obj(f->v, f->objno, buf, off - (f->objno << f->v->order), len);
}

static int read_sync(mixsan_volume_t *v, uint8_t *buf, uint64_t len, uint64_t off)
{
	uint64_t size = mixsan_volume_size(v), end, ahead = 0;
	struct mx_bcache *cache = NULL;
	struct mx_bcache_key key;
	int r = 0;

	if (off > size)
		return -EINVAL;
	len = MX_MIN(len, size - off);
	end = off + len;
	if (v->snap_id && v->cache_mode != MIXSAN_CACHE_NONE)
		cache = mx_client_cache(mx_client_pool_cluster(v->pool), &ahead);
	if (cache) {
		key.pool = mixsan_pool_id(v->pool);
		key.vol = strtoull(v->id, NULL, 16);
		key.snap = v->snap_id;
		ahead = stream_ahead(v, off, len, ahead);
	}
	for (uint64_t at = off; at < end && r == 0;) {
		uint64_t objno = at >> v->order, ostart = objno << v->order;
		uint64_t e = MX_MIN(end, ostart + v->obj_size);
		struct cache_fill f = {v, objno};

		if (cache)
			r = mx_bcache_read(cache, &key, size, buf + (at - off), at, e - at,
					   ahead > at - off ? ahead - (at - off) : 0,
					   MX_MIN(ostart + v->obj_size, size), cache_fill, &f);
		else
			r = read_sync_obj(v, objno, buf + (at - off), at - ostart, e - at);
		at = e;
	}
	return r < 0 ? r : (int)MX_MIN(len, (uint64_t)INT32_MAX);
}

static int check_snap_name(const char *name)
{
	size_t n;

	if (!name)
		return -EINVAL;
	n = strlen(name);
	return n == 0 || n > MIXSAN_SNAP_NAME_MAX || strpbrk(name, "/@") || name[0] == ' '
		       ? -EINVAL
		       : 0;
}

static int writer_check(mixsan_volume_t *v)
{
	int r;

	if (!v)
		return -EINVAL;
	pthread_mutex_lock(&v->lock);
	r = lock_usable(v);
	pthread_mutex_unlock(&v->lock);
	return r;
}

/* A snapshot's header attribute: its name and value. */
static void snap_attr(const struct snapinfo *si, char key[32], char val[256])
{
	snprintf(key, 32, "snap.%016" PRIx64, si->id);
	snprintf(val, 256, "%" PRIu64 " %" PRIu64 " %u %s", si->size, si->time_ms, si->prot,
		 si->name);
}

/* Write a snapshot's header attribute, guarded by our lock. */
static int snap_attr_set(mixsan_volume_t *v, const struct snapinfo *si, const char *seq)
{
	char key[32], val[256];
	struct mx_osd_op ops[2];
	unsigned n = 0;

	snap_attr(si, key, val);
	if (seq)
		ops[n++] = xattr_op(MX_OP_SETXATTR, "snap_seq", seq);
	ops[n++] = xattr_op(MX_OP_SETXATTR, key, val);
	return header_guarded(v, ops, n);
}

/* Stop changes and wait for those in flight (a snapshot is a point in the
 * sequence of writes). */
static void freeze(mixsan_volume_t *v)
{
	pthread_mutex_lock(&v->lock);
	while (v->frozen)
		cond_wait_ms(v, 50);
	v->frozen = true;
	while (v->starting || !mx_list_empty(&v->inflight))
		cond_wait_ms(v, 50);
	pthread_mutex_unlock(&v->lock);
}

static void thaw(mixsan_volume_t *v)
{
	pthread_mutex_lock(&v->lock);
	v->frozen = false;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

int mixsan_volume_snap_create(mixsan_volume_t *v, const char *name)
{
	struct snapinfo si = {0};
	char seq[24], oid[64];
	uint8_t *copy = NULL;
	size_t len;
	int r;

	if (check_snap_name(name) < 0)
		return -EINVAL;
	r = writer_check(v);
	if (r < 0)
		return r;
	freeze(v);
	pthread_mutex_lock(&v->lock);
	/* A clone being flattened takes no snapshot: it would read through
	 * to the parent flatten is about to drop. */
	r = snap_by_name(v, name) ? -EEXIST : v->flattening ? -EBUSY : map_flush_locked(v);
	len = v->map_len;
	if (r == 0 && len) {
		copy = malloc(len);
		if (!copy)
			r = -ENOMEM;
		else
			memcpy(copy, v->map, len);
	}
	si.id = v->snap_seq + 1;
	si.size = v->size;
	pthread_mutex_unlock(&v->lock);
	if (r < 0)
		goto out;
	si.time_ms = wall_ms();
	snprintf(si.name, sizeof(si.name), "%s", name);
	/* 1. The snapshot's map, 2. every object "copy before change", 3. the
	 * snapshot in the header (the commit point).  A crash before 3 leaves
	 * objects copied needlessly, never a snapshot without its copies. */
	snap_map_oid(v, si.id, oid, sizeof(oid));
	r = mixsan_write_full(v->pool, oid, copy, len);
	if (r < 0)
		goto out;
	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i < v->map_len; i++) {
		uint8_t b = v->map[i], nb = b;

		for (unsigned k = 0; k < 4; k++)
			if (((b >> (2 * k)) & 3u) == MAP_DIRTY)
				nb = (uint8_t)(nb & ~(2u << (2 * k))); /* 3 -> 1 */
		if (nb != b) {
			v->map[i] = nb;
			map_dirty(v, i);
		}
	}
	r = map_flush_locked(v);
	pthread_mutex_unlock(&v->lock);
	if (r < 0)
		goto out;
	snprintf(seq, sizeof(seq), "%" PRIu64, si.id);
	r = snap_attr_set(v, &si, seq);
	if (r == 0) {
		struct snapinfo *ns;

		pthread_mutex_lock(&v->lock);
		ns = realloc(v->snaps, (v->n_snaps + 1) * sizeof(*ns));
		if (ns) {
			v->snaps = ns;
			v->snaps[v->n_snaps++] = si;
		}
		v->snap_seq = si.id;
		pthread_mutex_unlock(&v->lock);
		if (!ns)
			r = -ENOMEM;
	}
out:
	free(copy);
	thaw(v);
	return r;
}

/* The header's current snapshots into v. */
static int snaps_reload(mixsan_volume_t *v)
{
	struct header h;
	int r = header_read(v->pool, v->hdr_oid, &h);

	if (r < 0)
		return r;
	pthread_mutex_lock(&v->lock);
	header_apply(v, &h);
	pthread_mutex_unlock(&v->lock);
	return 0;
}

int mixsan_volume_snap_list(mixsan_volume_t *v,
			    int (*cb)(void *arg, const struct mixsan_snap_info *s), void *arg)
{
	struct header h;
	int r;

	if (!v || !cb)
		return -EINVAL;
	r = header_read(v->pool, v->hdr_oid, &h);
	if (r < 0)
		return r;
	for (size_t i = 0; i < h.n_snaps && r == 0; i++) {
		struct mixsan_snap_info o = {
			.id = h.snaps[i].id,
			.size = h.snaps[i].size,
			.time_ms = h.snaps[i].time_ms,
			.protected_ = h.snaps[i].prot == 1,
			.children = h.snaps[i].children,
		};

		snprintf(o.name, sizeof(o.name), "%s", h.snaps[i].name);
		r = cb(arg, &o);
	}
	header_free(&h);
	return r;
}

/* The snapshot named name in the header, with its children counted. */
static int snap_lookup(mixsan_volume_t *v, const char *name, struct snapinfo *out)
{
	struct header h;
	int r = header_read(v->pool, v->hdr_oid, &h);

	if (r < 0)
		return r;
	r = -ENOENT;
	for (size_t i = 0; i < h.n_snaps; i++)
		if (!strcmp(h.snaps[i].name, name)) {
			*out = h.snaps[i];
			r = 0;
		}
	header_free(&h);
	return r;
}

int mixsan_volume_snap_protect(mixsan_volume_t *v, const char *name, int protect)
{
	struct snapinfo si;
	int r;

	if (check_snap_name(name) < 0)
		return -EINVAL;
	r = writer_check(v);
	if (r == 0)
		r = snap_lookup(v, name, &si);
	if (r < 0)
		return r;
	if (!protect) {
		/* In two steps, as a clone adds its record only while the
		 * snapshot reads "protected": first "being unprotected", then,
		 * with no clone recorded meanwhile, "not protected". */
		if (si.children)
			return -EBUSY;
		si.prot = 2;
		r = snap_attr_set(v, &si, NULL);
		if (r == 0)
			r = snap_lookup(v, name, &si);
		if (r == 0 && si.children) {
			si.prot = 1;
			r = snap_attr_set(v, &si, NULL);
			if (r == 0)
				r = -EBUSY;
		}
		if (r < 0)
			return r;
	}
	si.prot = protect ? 1 : 0;
	r = snap_attr_set(v, &si, NULL);
	return r < 0 ? r : snaps_reload(v);
}

/* The snapshot's map (2 bits an object), sized for its size. */
static int snap_map_read(mixsan_volume_t *v, const struct snapinfo *si, uint8_t **out,
			 size_t *len_out)
{
	size_t len = (size_t)((((si->size + v->obj_size - 1) >> v->order) + 3) / 4);
	uint8_t *m = calloc(1, len ? len : 1);
	char oid[64];
	int64_t r;

	if (!m)
		return -ENOMEM;
	snap_map_oid(v, si->id, oid, sizeof(oid));
	r = len ? mixsan_read(v->pool, oid, m, len, 0) : 0;
	if (r < 0 && r != -ENOENT) {
		free(m);
		return (int)r;
	}
	*out = m;
	*len_out = len;
	return 0;
}

static unsigned bits_get(const uint8_t *m, size_t len, uint64_t objno)
{
	return objno / 4 < len ? (m[objno / 4] >> (2 * (objno % 4))) & 3u : 0;
}

int mixsan_volume_snap_remove(mixsan_volume_t *v, const char *name)
{
	const struct snapinfo *prev = NULL;
	struct snapinfo si, prev_si = {0};
	uint8_t *mx = NULL, *mp = NULL, *buf = NULL;
	size_t lx = 0, lp = 0;
	char key[32], oid[96];
	uint64_t objs;
	int r;

	if (check_snap_name(name) < 0)
		return -EINVAL;
	r = writer_check(v);
	if (r == 0)
		r = snaps_reload(v);
	if (r == 0)
		r = snap_lookup(v, name, &si);
	if (r < 0)
		return r;
	if (si.prot)
		return -EBUSY;
	/* From here on no change copies for it: writes started before are
	 * let finish, the writer forgets it, then the copies are handed down
	 * (a copy made now for the previous snapshot holds the same data). */
	freeze(v);
	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i < v->n_snaps; i++)
		if (v->snaps[i].id == si.id) {
			memmove(v->snaps + i, v->snaps + i + 1,
				(v->n_snaps - i - 1) * sizeof(*v->snaps));
			v->n_snaps--;
			break;
		}
	for (size_t i = 0; i < v->n_snaps; i++)
		if (v->snaps[i].id < si.id)
			prev_si = v->snaps[i];
	pthread_mutex_unlock(&v->lock);
	thaw(v);
	if (prev_si.id)
		prev = &prev_si;
	r = snap_map_read(v, &si, &mx, &lx);
	if (r == 0 && prev)
		r = snap_map_read(v, prev, &mp, &lp);
	buf = malloc(v->obj_size);
	if (r == 0 && !buf)
		r = -ENOMEM;
	/* Each copy made for this snapshot either goes, or, where it also
	 * holds the previous live snapshot's data (that one has no copy of its
	 * own), becomes that snapshot's copy.  Rerun after a crash, it goes on
	 * where it stopped. */
	/* A copy may exist for an object the snapshot did not hold (made when
	 * it was the latest live one and the object changed): every object
	 * the volume has had is looked at. */
	objs = (si.size + v->obj_size - 1) >> v->order;
	pthread_mutex_lock(&v->lock);
	objs = MX_MAX(objs, (uint64_t)v->map_len * 4);
	pthread_mutex_unlock(&v->lock);
	for (uint64_t n = 0; n < objs && r == 0; n++) {
		char poid[96];
		int64_t got;

		copy_oid(v, n, si.id, oid, sizeof(oid));
		got = mixsan_read(v->pool, oid, buf, v->obj_size, 0);
		if (got == -ENOENT)
			continue;
		if (got < 0) {
			r = (int)got;
			break;
		}
		if (prev && bits_get(mx, lx, n) && bits_get(mp, lp, n)) {
			copy_oid(v, n, prev->id, poid, sizeof(poid));
			r = create_copy(v->pool, poid, buf, (size_t)got);
		}
		if (r == 0) {
			r = mixsan_remove(v->pool, oid);
			if (r == -ENOENT)
				r = 0;
		}
	}
	if (r == 0) {
		struct mx_osd_op op;

		snprintf(key, sizeof(key), "snap.%016" PRIx64, si.id);
		op = xattr_op(MX_OP_RMXATTR, key, NULL);
		r = header_guarded(v, &op, 1);
	}
	if (r == 0) {
		snap_map_oid(v, si.id, oid, sizeof(oid));
		(void)mixsan_remove(v->pool, oid);
		r = snaps_reload(v);
	}
	free(mx);
	free(mp);
	free(buf);
	return r;
}

int mixsan_volume_snap_rollback(mixsan_volume_t *v, const char *name)
{
	struct mixsan_volume_options o = {.flags = MIXSAN_VOLUME_RDONLY, .snapshot = name};
	mixsan_volume_t *sv;
	uint8_t *buf;
	uint64_t objs, size;
	int r;

	if (check_snap_name(name) < 0)
		return -EINVAL;
	r = writer_check(v);
	if (r < 0)
		return r;
	r = volume_open_id(v->pool, v->id, v->name, &o, 0, &sv);
	if (r < 0)
		return r;
	size = sv->size;
	buf = malloc(v->obj_size);
	if (!buf) {
		mixsan_volume_close(sv);
		return -ENOMEM;
	}
	if (size > mixsan_volume_size(v))
		r = mixsan_volume_resize(v, size);
	objs = (size + v->obj_size - 1) >> v->order;
	for (uint64_t n = 0; n < objs && r == 0; n++) {
		uint64_t ostart = n << v->order, len = MX_MIN(v->obj_size, size - ostart);
		bool there, here;

		pthread_mutex_lock(&v->lock);
		here = map_get(v, n) != MAP_ABSENT;
		pthread_mutex_unlock(&v->lock);
		there = map_get(sv, n) != MAP_ABSENT || (v->parent && ostart < v->overlap);
		if (!there && !here)
			continue;
		if (!there) {
			r = mixsan_volume_discard(v, len, ostart);
			continue;
		}
		r = read_sync_obj(sv, n, buf, 0, len);
		if (r == 0)
			r = mixsan_volume_write(v, buf, len, ostart);
	}
	if (r == 0 && size < mixsan_volume_size(v))
		r = mixsan_volume_resize(v, size);
	if (r == 0)
		r = mixsan_volume_flush(v);
	free(buf);
	mixsan_volume_close(sv);
	return r;
}

int mixsan_volume_clone(mixsan_pool_t *p, const char *parent, const char *snap,
			mixsan_pool_t *cp, const char *clone)
{
	struct mixsan_volume_options o = {.flags = MIXSAN_VOLUME_RDONLY};
	char cid[17], ckey[48], par[96], sid[24];
	struct snapinfo si;
	mixsan_volume_t *pv;
	int r;

	if (!p || !cp || check_name(parent) < 0 || check_name(clone) < 0 ||
	    check_snap_name(snap) < 0)
		return -EINVAL;
	r = lookup_id(cp, clone, cid);
	if (r == 0)
		return -EEXIST;
	if (r != -ENOENT)
		return r;
	r = mixsan_volume_open(p, parent, &o, &pv);
	if (r < 0)
		return r;
	r = snap_lookup(pv, snap, &si);
	if (r == 0 && si.prot != 1)
		r = -EPERM;
	if (r < 0)
		goto out;
	snprintf(par, sizeof(par), "%" PRId64 " %s %" PRIu64 " %" PRIu64, mixsan_pool_id(p),
		 pv->id, si.id, si.size);
	r = header_create(cp, si.size, pv->order, par, cid);
	if (r < 0)
		goto out;
	/* The parent learns of its child before the name appears: a snapshot
	 * with a listed clone is never unprotected. */
	snprintf(ckey, sizeof(ckey), "child.%" PRId64 ".%s", mixsan_pool_id(cp), cid);
	snprintf(sid, sizeof(sid), "%" PRIu64, si.id);
	{
		/* Only while the snapshot still reads "protected". */
		char skey[32], sval[256];
		struct mx_osd_op ops[2];

		snap_attr(&si, skey, sval);
		ops[0] = xattr_op(MX_OP_CMPXATTR, skey, sval);
		ops[1] = xattr_op(MX_OP_SETXATTR, ckey, sid);
		r = write_ops_sync(p, pv->hdr_oid, ops, 2);
		if (r == -ECANCELED)
			r = -EPERM;
	}
	if (r == 0) {
		r = dir_add(cp, clone, cid);
		if (r < 0)
			(void)mixsan_rmxattr(p, pv->hdr_oid, ckey);
	}
	if (r < 0)
		header_remove(cp, cid);
out:
	mixsan_volume_close(pv);
	return r;
}

/* Drop the parent's record of clone v. */
static int unlink_parent(mixsan_volume_t *v)
{
	char ckey[48], hdr[48];
	int r;

	snprintf(ckey, sizeof(ckey), "child.%" PRId64 ".%s", mixsan_pool_id(v->pool), v->id);
	snprintf(hdr, sizeof(hdr), "vol.%s.header", v->parent_id);
	r = mixsan_rmxattr(v->parent_pool, hdr, ckey);
	return r == -ENODATA || r == -ENOENT ? 0 : r;
}

int mixsan_volume_flatten(mixsan_volume_t *v)
{
	uint64_t objs;
	int r = writer_check(v);

	if (r < 0)
		return r;
	if (!v->parent || v->unlinked)
		return -EINVAL;
	/* Its snapshots read through to the parent too: none may exist, nor
	 * be taken meanwhile (one being taken holds frozen). */
	pthread_mutex_lock(&v->lock);
	if (v->n_snaps || v->frozen || v->flattening)
		r = -EBUSY;
	else
		v->flattening = true;
	pthread_mutex_unlock(&v->lock);
	if (r < 0)
		return r;
	objs = (MX_MIN(v->overlap, mixsan_volume_size(v)) + v->obj_size - 1) >> v->order;
	for (uint64_t n = 0; n < objs && r == 0; n++)
		r = prepare_object(v, n, false);
	if (r == 0) {
		struct mx_osd_op op = xattr_op(MX_OP_RMXATTR, "parent", NULL);

		r = header_guarded(v, &op, 1);
	}
	if (r == 0)
		r = unlink_parent(v);
	if (r == 0) {
		/* Reads in flight may still use the parent: it stays open,
		 * unused, until the handle closes. */
		pthread_mutex_lock(&v->lock);
		v->overlap = 0;
		v->unlinked = true;
		pthread_mutex_unlock(&v->lock);
	}
	pthread_mutex_lock(&v->lock);
	v->flattening = false;
	pthread_mutex_unlock(&v->lock);
	return r;
}

int mixsan_volume_parent(mixsan_volume_t *v, struct mixsan_volume_parent *out)
{
	if (!v || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->pool = v->parent && !v->unlinked ? v->parent_pool_id : -1;
	if (out->pool >= 0) {
		memcpy(out->volume_id, v->parent_id, sizeof(out->volume_id));
		out->snap_id = v->parent_snap;
		out->overlap = v->overlap;
	}
	return 0;
}

/*
 * The snapshot cache (docs/vdi-cache.md).
 *
 * Blocks of MX_BCACHE_BLOCK bytes in a hash table, each either being
 * fetched (FILLING: its fetcher owns it, readers wait) or holding data
 * (VALID, on one of two LRU lists).  Replacement is a segmented LRU: a new
 * block starts on probation and moves to the protected segment on its
 * second use; victims come from probation first.  So data read once (a scan,
 * a read-ahead nobody used) leaves before data read again and again, as
 * boot data is by every clone.
 */
#include "cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "list.h"
#include "util.h"

#define BLK MX_BCACHE_BLOCK
#define PROTECTED_SHARE 80 /* per cent of the capacity */

enum { E_FILLING, E_VALID, E_FAILED };

struct bentry {
	struct bentry *hnext;
	struct mx_list lru;
	struct mx_bcache_key k;
	uint64_t blk;
	uint32_t len; /* bytes held: BLK but at the end of the content */
	uint8_t state;
	bool protected;
	bool used;         /* read by a request (not only read ahead) */
	uint16_t last_end; /* where in the block the last use ended */
	uint32_t waiters;  /* readers waiting for its fetch: kept while > 0 */
	int err;           /* E_FAILED: the fetch's error, for its waiters */
	uint8_t data[];
};

struct mx_bcache {
	pthread_mutex_t lock;
	pthread_cond_t filled; /* a fetch ended */
	struct bentry **buckets;
	uint64_t mask;
	uint64_t cap;          /* blocks */
	uint64_t n;            /* blocks held or being fetched */
	uint64_t n_protected;
	struct mx_list probation, protected; /* least recently used first */
	struct mx_bcache_stats st;
};

struct mx_bcache *mx_bcache_new(uint64_t bytes)
{
	struct mx_bcache *c = calloc(1, sizeof(*c));
	uint64_t nb = 64;

	if (!c)
		return NULL;
	c->cap = MX_MAX(bytes / BLK, 8);
	while (nb < c->cap && nb < (1ull << 24))
		nb <<= 1;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	c->mask = nb - 1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->filled, NULL);
	mx_list_init(&c->probation);
	mx_list_init(&c->protected);
	c->st.capacity = c->cap * BLK;
	return c;
}

void mx_bcache_free(struct mx_bcache *c)
{
	if (!c)
		return;
	for (uint64_t i = 0; i <= c->mask; i++)
		for (struct bentry *e = c->buckets[i], *next; e; e = next) {
			next = e->hnext;
			free(e);
		}
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->filled);
	free(c);
}

static uint64_t hash(const struct mx_bcache_key *k, uint64_t blk)
{
	uint64_t h = (uint64_t)k->pool * 0x9e3779b97f4a7c15ull;

	h = (h ^ k->vol) * 0xbf58476d1ce4e5b9ull;
	h = (h ^ k->snap) * 0x94d049bb133111ebull;
	h = (h ^ blk) * 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 31);
}

static bool same(const struct bentry *e, const struct mx_bcache_key *k, uint64_t blk)
{
	return e->blk == blk && e->k.vol == k->vol && e->k.snap == k->snap &&
	       e->k.pool == k->pool;
}

static struct bentry *lookup(struct mx_bcache *c, const struct mx_bcache_key *k, uint64_t blk)
{
	struct bentry *e = c->buckets[hash(k, blk) & c->mask];

	while (e && (!same(e, k, blk) || e->state == E_FAILED))
		e = e->hnext;
	return e;
}

static void unhash(struct mx_bcache *c, struct bentry *e)
{
	struct bentry **pp = &c->buckets[hash(&e->k, e->blk) & c->mask];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	c->n--;
}

/* A use of a held block: from probation to protected, or to the
 * protected segment's recent end; the protected segment's least recent
 * go back to probation when it outgrows its share. */
static void touch(struct mx_bcache *c, struct bentry *e)
{
	mx_list_del(&e->lru);
	if (!e->protected) {
		e->protected = true;
		c->n_protected++;
	}
	mx_list_add_tail(&c->protected, &e->lru);
	while (c->n_protected > c->cap * PROTECTED_SHARE / 100) {
		struct bentry *old = mx_list_entry(c->protected.next, struct bentry, lru);

		mx_list_del(&old->lru);
		old->protected = false;
		c->n_protected--;
		mx_list_add_tail(&c->probation, &old->lru);
	}
}

/* A request read [from, to) of held block e (offsets in the block).  Only
 * a second use promotes: not the first read of a block read ahead, nor a
 * read that continues the last one inside the block (a stream of reads
 * smaller than a block). */
static void use(struct mx_bcache *c, struct bentry *e, uint64_t from, uint64_t to)
{
	bool again = e->used && !(from != 0 && from == e->last_end);

	e->used = true;
	e->last_end = (uint16_t)to;
	if (again || e->protected) {
		touch(c, e);
		return;
	}
	mx_list_del(&e->lru);
	mx_list_add_tail(&c->probation, &e->lru);
}

/* Drop held blocks, probation first, until the cache fits its capacity
 * (blocks being fetched are not held yet and stay). */
static void evict(struct mx_bcache *c)
{
	while (c->n > c->cap) {
		struct mx_list *lists[2] = {&c->probation, &c->protected}, *pos;
		struct bentry *e = NULL;

		/* (A block a woken reader has yet to copy stays.) */
		for (int l = 0; l < 2 && !e; l++)
			mx_list_for_each(pos, lists[l])
				if (!mx_list_entry(pos, struct bentry, lru)->waiters) {
					e = mx_list_entry(pos, struct bentry, lru);
					break;
				}
		if (!e)
			return;
		mx_list_del(&e->lru);
		if (e->protected)
			c->n_protected--;
		unhash(c, e);
		c->st.evicted_bytes += e->len;
		free(e);
	}
}

/* Copy the part of block e that [off, end) covers into buf (which holds
 * [off, end)). */
static uint64_t copy_out(const struct bentry *e, uint8_t *buf, uint64_t off, uint64_t end)
{
	uint64_t bs = e->blk * BLK, from = MX_MAX(bs, off), to = MX_MIN(bs + e->len, end);

	if (to <= from)
		return 0;
	memcpy(buf + (from - off), e->data + (from - bs), to - from);
	return to - from;
}

/* Fetch the nrun blocks from b (entries FILLING, owned by us) with fill,
 * and make them VALID, or drop them on failure.  Called and returns with
 * c->lock held; drops it while fetching.  Copies the request's part
 * [off, end) into buf. */
static int fetch_run(struct mx_bcache *c, uint64_t size, struct bentry **run, uint64_t b,
		     uint64_t nrun, uint8_t *buf, uint64_t off, uint64_t end,
		     mx_bcache_fill_fn fill, void *arg)
{
	uint64_t from = b * BLK, to = MX_MIN((b + nrun) * BLK, size);
	uint8_t *tmp = malloc(to - from);
	int r = tmp ? 0 : -ENOMEM;

	pthread_mutex_unlock(&c->lock);
	if (r == 0)
		r = fill(arg, tmp, from, to - from);
	pthread_mutex_lock(&c->lock);
	for (uint64_t i = 0; i < nrun; i++) {
		struct bentry *e = run[i];

		if (r < 0) {
			if (e->waiters) {
				/* Its waiters take the error (a fetch that timed
				 * out is not tried again by each in turn), but
				 * for our own lack of memory (err 0: they fetch
				 * for themselves).  The last of them frees it. */
				e->state = E_FAILED;
				e->err = r == -ENOMEM ? 0 : r;
			} else {
				unhash(c, e);
				free(e);
			}
			continue;
		}
		memcpy(e->data, tmp + (e->blk * BLK - from), e->len);
		e->state = E_VALID;
		mx_list_add_tail(&c->probation, &e->lru);
		if (copy_out(e, buf, off, end)) {
			e->used = true;
			e->last_end = (uint16_t)(MX_MIN(e->blk * BLK + e->len, end) - e->blk * BLK);
		}
	}
	if (r == 0) {
		uint64_t want = MX_MIN(to, end) - MX_MAX(from, off);

		c->st.fetched_bytes += to - from;
		c->st.miss_bytes += want;
		c->st.readahead_bytes += to > end ? to - MX_MAX(from, end) : 0;
		c->st.used = c->n * BLK;
	}
	pthread_cond_broadcast(&c->filled);
	free(tmp);
	return r;
}

int mx_bcache_read(struct mx_bcache *c, const struct mx_bcache_key *k, uint64_t size,
		   uint8_t *buf, uint64_t off, uint64_t len, uint64_t ahead, uint64_t limit,
		   mx_bcache_fill_fn fill, void *arg)
{
	uint64_t end = off + len, b, last, want_last, max_run;
	struct bentry **run;
	int r = 0;

	if (!len)
		return 0;
	if (end > size || limit > size)
		return -EINVAL;
	b = off / BLK;
	last = (end - 1) / BLK;
	want_last = last;
	if (ahead > len && limit > end) /* off + ahead, without wrapping */
		want_last = (off + MX_MIN(ahead, limit - off) - 1) / BLK;
	/* A run is at most a quarter of the cache, and no longer than the
	 * read and its read-ahead. */
	max_run = MX_MIN(MX_MAX(c->cap / 4, 1), want_last - b + 1);
	run = malloc(max_run * sizeof(*run));
	if (!run)
		return -ENOMEM;
	pthread_mutex_lock(&c->lock);
	while (b <= last && r == 0) {
		struct bentry *e = lookup(c, k, b);
		uint64_t nrun = 0;

		if (e && e->state == E_VALID) {
			uint64_t bs = b * BLK, n = copy_out(e, buf, off, end);

			c->st.hit_bytes += n;
			use(c, e, MX_MAX(bs, off) - bs, MX_MAX(bs, off) - bs + n);
			b++;
			continue;
		}
		if (e) { /* being fetched by another reader: its outcome */
			c->st.waits++;
			e->waiters++;
			while (e->state == E_FILLING)
				pthread_cond_wait(&c->filled, &c->lock);
			e->waiters--;
			if (e->state == E_FAILED) {
				r = e->err;
				if (!e->waiters) {
					unhash(c, e);
					free(e);
				}
			}
			continue; /* held (kept while we waited), failed, or to fetch */
		}
		/* A run of absent blocks from b, read ahead past the request
		 * if asked, up to the first block held or being fetched. */
		while (nrun < max_run && b + nrun <= want_last &&
		       (nrun == 0 || !lookup(c, k, b + nrun))) {
			uint64_t bs = (b + nrun) * BLK;
			struct bentry *ne = malloc(sizeof(*ne) + BLK);

			if (!ne)
				break;
			memset(ne, 0, sizeof(*ne));
			ne->k = *k;
			ne->blk = b + nrun;
			ne->len = (uint32_t)MX_MIN((uint64_t)BLK, size - bs);
			ne->state = E_FILLING;
			mx_list_init(&ne->lru);
			ne->hnext = c->buckets[hash(k, ne->blk) & c->mask];
			c->buckets[hash(k, ne->blk) & c->mask] = ne;
			c->n++;
			run[nrun++] = ne;
		}
		if (!nrun) { /* no memory for an entry: read past the cache */
			uint64_t from = MX_MAX(b * BLK, off), to = MX_MIN((b + 1) * BLK, end);

			pthread_mutex_unlock(&c->lock);
			r = fill(arg, buf + (from - off), from, to - from);
			pthread_mutex_lock(&c->lock);
			b++;
			continue;
		}
		r = fetch_run(c, size, run, b, nrun, buf, off, end, fill, arg);
		b += nrun;
		evict(c);
	}
	c->st.used = c->n * BLK;
	pthread_mutex_unlock(&c->lock);
	free(run);
	return r;
}

void mx_bcache_get_stats(struct mx_bcache *c, struct mx_bcache_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->st;
	pthread_mutex_unlock(&c->lock);
}

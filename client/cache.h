/*
 * The snapshot cache (docs/vdi-cache.md): a RAM cache, shared by every
 * volume a cluster handle opens, of data that never changes: the content of
 * volume snapshots, named by (pool, volume id, snapshot id).  Clones read
 * their parent at a protected snapshot, so every clone of one golden image
 * on a host shares its entries; no write can make an entry stale.
 */
#ifndef MX_CLIENT_CACHE_H
#define MX_CLIENT_CACHE_H

#include <stdint.h>

#define MX_BCACHE_BLOCK 4096u /* the unit of caching */

struct mx_bcache;

/* What is cached: one snapshot of one volume. */
struct mx_bcache_key {
	int64_t pool;
	uint64_t vol;  /* the volume's id */
	uint64_t snap; /* the snapshot's id */
};

struct mx_bcache_stats {
	uint64_t capacity, used;   /* bytes */
	uint64_t hit_bytes;        /* read from the cache */
	uint64_t miss_bytes;       /* read while absent, so fetched */
	uint64_t fetched_bytes;    /* fetched from the OSDs, read-ahead included */
	uint64_t readahead_bytes;  /* of those, fetched ahead of a read */
	uint64_t evicted_bytes;
	uint64_t waits;            /* blocks another reader was fetching */
};

/* Fetch [off, off + len) of the content into buf: 0 or a negative errno. */
typedef int (*mx_bcache_fill_fn)(void *arg, uint8_t *buf, uint64_t off, uint64_t len);

/* A cache of at most bytes (at least a few blocks), or NULL (no memory). */
struct mx_bcache *mx_bcache_new(uint64_t bytes);
void mx_bcache_free(struct mx_bcache *c);

/* Read [off, off + len) of the content k names, whose size is size
 * (off + len <= size), into buf: blocks the cache holds are copied, the
 * others fetched with fill (at most one fetch of a block at a time: a
 * reader of a block being fetched waits for it) and kept.  ahead: on a
 * miss, fetch up to this many bytes from off on, within [off, limit)
 * (read-ahead; limit <= size, e.g. the end of an object).  0 or fill's
 * error. */
int mx_bcache_read(struct mx_bcache *c, const struct mx_bcache_key *k, uint64_t size,
		   uint8_t *buf, uint64_t off, uint64_t len, uint64_t ahead, uint64_t limit,
		   mx_bcache_fill_fn fill, void *arg);

void mx_bcache_get_stats(struct mx_bcache *c, struct mx_bcache_stats *out);

#endif

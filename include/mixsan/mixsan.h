/*
 * libmixsan: the public C API of MixSAN, a distributed object store.
 *
 * A program connects to the cluster's monitors, which hand it the cluster
 * map; from the map the library computes where every object lives and talks
 * straight to the OSD that is primary for it.  When the map changes or a
 * connection drops, requests are retried transparently.
 *
 * Conventions:
 *  - Functions return 0 (or a non-negative count) on success and a negative
 *    errno on failure.  Pointers out are valid only on success.
 *  - Every function may be called from any thread.
 *  - Asynchronous calls take a completion; its callback runs on the
 *    library's own thread and must not block (it may start more requests).
 *    Buffers given to an asynchronous call must stay valid until it
 *    completes.
 *  - Object names are 1 to 1024 bytes without NUL; attribute names 1 to 255
 *    bytes; attribute values up to 64 KiB; one read or write up to 64 MiB.
 *
 * Errors of note: -ENOENT (no such object or pool), -ENODATA (no such
 * attribute), -ERANGE (buffer too small), -ETIMEDOUT (the operation timeout
 * passed), -EIO (the data failed its checksum on every copy tried), -EINVAL
 * (bad argument), -ENOTCONN (the cluster is shut down).
 */
#ifndef MIXSAN_H
#define MIXSAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MIXSAN_VERSION_MAJOR 0
#define MIXSAN_VERSION_MINOR 1
#define MIXSAN_VERSION_PATCH 0

typedef struct mixsan_cluster mixsan_cluster_t;
typedef struct mixsan_pool mixsan_pool_t;
typedef struct mixsan_completion mixsan_completion_t;
typedef void (*mixsan_callback_t)(mixsan_completion_t *c, void *arg);

/* The library's version; any pointer may be NULL. */
void mixsan_version(int *major, int *minor, int *patch);

struct mixsan_options {
	/* Give up on a request, or a monitor command, after this long with
	 * -ETIMEDOUT (0: retry for ever, the default, as a disk does). */
	unsigned op_timeout_ms;
	/* How long mixsan_connect waits for the first map (0: 10 s). */
	unsigned connect_timeout_ms;
	/* The key file of the entity to act as (one line "NAME KEY", mode
	 * 0600), for a cluster that requires authentication; NULL: none. */
	const char *keyfile;
	/* Which member of a PG serves this client's reads
	 * (docs/read-policies.md): MIXSAN_READ_DEFAULT, the pool's policy;
	 * or MIXSAN_READ_PRIMARY, _BALANCE (a random member), _LOCALIZE (the
	 * nearest to location).  Replicas serve reads only in pools whose
	 * own policy is balance or localize: elsewhere they go to the primary. */
	int read_policy;
	/* This client's place in the hierarchy, as an OSD's: "host=H
	 * rack=R ..."; NULL: none (localize then reads from the primary). */
	const char *location;
	/* A RAM cache of snapshot data (docs/vdi-cache.md), shared by every
	 * volume this handle opens: the clones of one golden image read its
	 * blocks from here, fetched once.  Snapshots never change, so no
	 * write leaves a stale entry.  Bytes; 0: no cache. */
	uint64_t snap_cache_bytes;
	/* On a miss in that cache, read this much from the read's start
	 * (within the objects the read touches) while the reader reads
	 * sequentially.  0: 1 MiB; MIXSAN_READAHEAD_OFF: never; at most
	 * 64 MiB (-EINVAL). */
	uint64_t readahead_bytes;
};

#define MIXSAN_READAHEAD_OFF UINT64_MAX

#define MIXSAN_READ_DEFAULT 0
#define MIXSAN_READ_PRIMARY 1
#define MIXSAN_READ_BALANCE 2
#define MIXSAN_READ_LOCALIZE 3

/* Connect to the monitors ("ip:port[,ip:port...]") and wait for the
 * cluster map.  opts may be NULL.  -ETIMEDOUT if no monitor answered. */
int mixsan_connect(const char *mons, const struct mixsan_options *opts,
		   mixsan_cluster_t **out);
/* Why the last mixsan_connect of this thread failed, in words ("" if
 * there is nothing more to say than its errno). */
const char *mixsan_connect_error(void);
/* Finish and release everything.  Requests still in flight complete with
 * -ENOTCONN.  Accepts NULL. */
void mixsan_shutdown(mixsan_cluster_t *cl);
/* The epoch of the newest map the library holds. */
uint64_t mixsan_map_epoch(mixsan_cluster_t *cl);
/* Wait until the library holds a map of at least epoch (timeout_ms 0:
 * for ever).  0 or -ETIMEDOUT. */
int mixsan_wait_for_epoch(mixsan_cluster_t *cl, uint64_t epoch, unsigned timeout_ms);

/* What the client moved, and its snapshot cache's figures (all 0 when
 * it has none). */
struct mixsan_io_stats {
	uint64_t ops;               /* requests sent to OSDs */
	uint64_t read_bytes;        /* data OSDs returned for reads */
	uint64_t cache_capacity;    /* bytes */
	uint64_t cache_used;
	uint64_t cache_hit_bytes;   /* reads served from the cache */
	uint64_t cache_miss_bytes;  /* reads that had to be fetched */
	uint64_t cache_fetched_bytes;   /* fetched into it, read-ahead included */
	uint64_t cache_readahead_bytes; /* of those, ahead of a read */
	uint64_t cache_evicted_bytes;
	uint64_t cache_waits;       /* blocks another reader was fetching */
};
void mixsan_io_stats(mixsan_cluster_t *cl, struct mixsan_io_stats *out);

/* Run an administrative command on the monitors ("pool create",
 * "pool rm", "pool set", "pool tier add", "pool tier mode", "pool tier rm",
 * "osd out", "osd in", "osd down", "osd reweight", "osd rm") with n_args
 * key/value pairs (kv[2i] the key, kv[2i+1] the value).  *message, if not
 * NULL, gets the monitor's words (free() it).
 * Returns 0 or a negative errno; on success the library waits until it
 * holds the map the command produced.  With an op_timeout_ms, a command
 * that no monitor answered by then fails with -ETIMEDOUT (it may still take
 * effect, as when a leader was lost before the outcome was known). */
int mixsan_mon_command(mixsan_cluster_t *cl, const char *prefix, const char *const *kv,
		       size_t n_args, char **message);

/* Open a pool by name.  -ENOENT if there is none. */
int mixsan_pool_open(mixsan_cluster_t *cl, const char *name, mixsan_pool_t **out);
/* Close a pool handle (requests on it must have completed).  Accepts NULL. */
void mixsan_pool_close(mixsan_pool_t *p);
/* The pool's numeric id. */
int64_t mixsan_pool_id(mixsan_pool_t *p);

struct mixsan_stat {
	uint64_t size;
	uint64_t mtime_ms;     /* wall clock of the last change, ms since 1970 */
	uint64_t version_epoch; /* the object's version: (epoch, seq) */
	uint64_t version_seq;
};

/* Synchronous object operations ----------------------------------------- */

/* Read up to len bytes at off.  Returns the count read (short at the end of
 * the object) or a negative errno. */
int64_t mixsan_read(mixsan_pool_t *p, const char *oid, void *buf, size_t len, uint64_t off);
/* Write len bytes at off, creating the object and extending it as needed. */
int mixsan_write(mixsan_pool_t *p, const char *oid, const void *buf, size_t len,
		 uint64_t off);
/* Replace the whole object with buf. */
int mixsan_write_full(mixsan_pool_t *p, const char *oid, const void *buf, size_t len);
/* Append buf at the end of the object. */
int mixsan_append(mixsan_pool_t *p, const char *oid, const void *buf, size_t len);
/* Cut or extend (with zeroes) the object to size. */
int mixsan_truncate(mixsan_pool_t *p, const char *oid, uint64_t size);
/* Remove the object.  -ENOENT if there is none. */
int mixsan_remove(mixsan_pool_t *p, const char *oid);
int mixsan_stat(mixsan_pool_t *p, const char *oid, struct mixsan_stat *st);
/* Copy attribute name into buf; returns its length, -ERANGE if len is too
 * small, -ENODATA if absent. */
int mixsan_getxattr(mixsan_pool_t *p, const char *oid, const char *name, void *buf,
		    size_t len);
int mixsan_setxattr(mixsan_pool_t *p, const char *oid, const char *name,
		    const void *value, size_t len);
int mixsan_rmxattr(mixsan_pool_t *p, const char *oid, const char *name);
/* Call cb for each attribute; a non-zero return from cb stops the walk and
 * is returned. */
int mixsan_getxattrs(mixsan_pool_t *p, const char *oid,
		     int (*cb)(void *arg, const char *name, const void *value, size_t len),
		     void *arg);
/* Call cb for each object of the pool (in placement-group order); a
 * non-zero return from cb stops the walk and is returned. */
int mixsan_list(mixsan_pool_t *p,
		int (*cb)(void *arg, const char *oid, size_t oid_len, uint64_t size),
		void *arg);

/* Asynchronous operations ------------------------------------------------ */

/* cb (may be NULL) runs on the library's thread when the request ends. */
int mixsan_completion_create(mixsan_callback_t cb, void *arg, mixsan_completion_t **out);
/* Block until complete; returns the result. */
int64_t mixsan_completion_wait(mixsan_completion_t *c);
int mixsan_completion_is_complete(mixsan_completion_t *c);
/* The result: as the synchronous call would return. */
int64_t mixsan_completion_result(mixsan_completion_t *c);
/* Release; a completion still pending is released when it completes (one
 * that no call accepted, e.g. after an error, is freed at once). */
void mixsan_completion_release(mixsan_completion_t *c);

int mixsan_aio_read(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c, void *buf,
		    size_t len, uint64_t off);
int mixsan_aio_write(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
		     const void *buf, size_t len, uint64_t off);
int mixsan_aio_write_full(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			  const void *buf, size_t len);
int mixsan_aio_append(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
		      const void *buf, size_t len);
int mixsan_aio_truncate(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			uint64_t size);
int mixsan_aio_remove(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c);
/* st must stay valid until completion. */
int mixsan_aio_stat(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
		    struct mixsan_stat *st);
int mixsan_aio_getxattr(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			const char *name, void *buf, size_t len);
int mixsan_aio_setxattr(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			const char *name, const void *value, size_t len);
int mixsan_aio_rmxattr(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
		       const char *name);

/* Block volumes ---------------------------------------------------------
 *
 * A volume is a virtual disk of a fixed (resizable) size, kept in a pool as
 * objects of one size (a power of two, 4 MiB by default).  Volumes are thin:
 * untouched ranges store nothing and read as zeroes; an allocation map
 * tells which ranges may hold data.  One writer at a time: opening a volume
 * for writing takes its lock, a lease the library renews; another writer is
 * refused (-EBUSY) until the holder closes it or its lease runs out.
 * Every write is durable on every replica when it completes.
 * (docs/volumes.md.)
 *
 * Names are 1 to 200 bytes, any but NUL, '/' and '@'.  Offsets and lengths
 * are in bytes; the volume calls take no alignment.
 *
 * Volume calls may block (a snapshot being taken, the copies a snapshot or
 * a clone needs before a change, reads of snapshots and clones): unlike
 * the object calls, they must not be made from a completion callback.
 * All writers of one volume should use the same lease.
 */

typedef struct mixsan_volume mixsan_volume_t;

#define MIXSAN_VOLUME_NAME_MAX 200
#define MIXSAN_VOLUME_ORDER_DEFAULT 22 /* 4 MiB objects */
#define MIXSAN_VOLUME_ORDER_MIN 12
#define MIXSAN_VOLUME_ORDER_MAX 26
/* The allocation map's bound: a volume has at most this many objects. */
#define MIXSAN_VOLUME_OBJECTS_MAX (1ull << 24)

/* Create a volume of size bytes with objects of 2^order bytes (order 0:
 * the default).  -EEXIST if the name is taken, -EINVAL for a bad name,
 * order, or a size beyond MIXSAN_VOLUME_OBJECTS_MAX objects. */
int mixsan_volume_create(mixsan_pool_t *p, const char *name, uint64_t size, unsigned order);
/* Remove a volume and all its data.  -ENOENT if there is none, -EBUSY if a
 * writer holds it. */
int mixsan_volume_remove(mixsan_pool_t *p, const char *name);
/* Call cb for each volume of the pool, in name order; a non-zero return
 * from cb stops the walk and is returned. */
int mixsan_volume_list(mixsan_pool_t *p, int (*cb)(void *arg, const char *name), void *arg);

#define MIXSAN_VOLUME_RDONLY 1u /* open without the writer's lock */

/* Disk cache modes (docs/cache-modes.md). */
#define MIXSAN_CACHE_WRITETHROUGH 0 /* a write completes when durable on every replica */
#define MIXSAN_CACHE_WRITEBACK 1    /* when logged on every replica; flush makes it durable */
#define MIXSAN_CACHE_NONE 2         /* writeback, and no client-side caching of data */

struct mixsan_volume_options {
	unsigned flags;    /* MIXSAN_VOLUME_* */
	/* Open this snapshot (read-only) instead of the volume's head. */
	const char *snapshot;
	/* The writer's lease (0: 30 s).  The holder stops writing when it
	 * could not renew it in time; another writer may take the volume over
	 * a sixth of the lease after it ran out (the clock skew allowed
	 * between hosts). */
	unsigned lease_ms;
	/* MIXSAN_CACHE_*; 0: writethrough.  In writeback and none a write
	 * completes once every OSD of its PG has logged it (not yet synced):
	 * a power cut of those OSDs may lose it until a flush (or a FUA
	 * write, MIXSAN_WRITE_FUA) completes after it.  What survives is a
	 * prefix: nothing completed before a completed flush is lost. */
	int cache_mode;
};

/* Open a volume of pool p (which must stay open until mixsan_volume_close).
 * opts may be NULL (read-write, default lease).  -ENOENT, -EBUSY (another
 * writer holds the lock). */
int mixsan_volume_open(mixsan_pool_t *p, const char *name,
		       const struct mixsan_volume_options *opts, mixsan_volume_t **out);
/* Wait for every request in flight, release the lock, free the handle.
 * Returns the first error of the final flush or lock release (the handle
 * is freed whatever happens).  Accepts NULL. */
int mixsan_volume_close(mixsan_volume_t *v);

struct mixsan_volume_info {
	char name[MIXSAN_VOLUME_NAME_MAX + 1];
	char id[17];            /* hex, in the volume's object names */
	uint64_t size;
	unsigned order;
	uint64_t object_size;
	uint64_t objects;       /* objects the size spans */
	uint64_t objects_used;  /* of them, marked in the allocation map */
	char lock_owner[128];   /* the writer's identity, "" when free */
	uint64_t lock_expires_ms; /* its lease, wall clock (ms since 1970) */
};
int mixsan_volume_info(mixsan_volume_t *v, struct mixsan_volume_info *out);
uint64_t mixsan_volume_size(mixsan_volume_t *v);

/* Where the volume's byte at off lives, in the client's current map, for
 * placing a VM beside its disk (docs/volumes.md, "Locality"): the data
 * object, its PG, the acting set with the primary first, and the primary's
 * address and host ("" if its location names none).  allocated: the object
 * holds data of this volume (a clone reads an unallocated one from its
 * parent).  0, -EINVAL (off beyond the end) or -EAGAIN (no map, or no OSD
 * for the PG). */
#define MIXSAN_LOCATE_MAX 10
struct mixsan_volume_location {
	char object[64];
	int64_t pool;
	uint32_t pg;
	int n_acting;
	int32_t acting[MIXSAN_LOCATE_MAX];
	char primary_addr[64];
	char primary_host[64];
	int allocated;
};
int mixsan_volume_locate(mixsan_volume_t *v, uint64_t off,
			 struct mixsan_volume_location *out);
/* Grow or shrink.  Shrinking drops the data beyond the new end first, so a
 * failure half-way leaves the old size with the data inside the new size
 * intact. */
int mixsan_volume_resize(mixsan_volume_t *v, uint64_t size);

/* Call cb for the extents of [off, off + len) in order: data is 1 where the
 * allocation map says the range may hold data, 0 where it surely reads as
 * zeroes.  A non-zero return from cb stops the walk and is returned. */
int mixsan_volume_extents(mixsan_volume_t *v, uint64_t off, uint64_t len,
			  int (*cb)(void *arg, uint64_t off, uint64_t len, int data),
			  void *arg);

/* I/O.  Reads return the count read (short only past the end of the
 * volume); writes past the end are -EINVAL; a handle opened read-only
 * refuses changes with -EROFS; a writer that lost its lock gets -ENOLCK. */
#define MIXSAN_ZERO_FAST 1u /* write_zeroes: -ENOTSUP rather than write zeroes */

int mixsan_volume_aio_read(mixsan_volume_t *v, mixsan_completion_t *c, void *buf, size_t len,
			   uint64_t off);
int mixsan_volume_aio_write(mixsan_volume_t *v, mixsan_completion_t *c, const void *buf,
			    size_t len, uint64_t off);
/* A write with flags: MIXSAN_WRITE_FUA completes only when it is durable
 * on every replica, whatever the cache mode (NBD's FUA). */
#define MIXSAN_WRITE_FUA 1u
int mixsan_volume_aio_write_flags(mixsan_volume_t *v, mixsan_completion_t *c, const void *buf,
				  size_t len, uint64_t off, unsigned flags);
/* The cache mode the volume was opened with (MIXSAN_CACHE_*). */
int mixsan_volume_cache_mode(mixsan_volume_t *v);
/* Drop the data of a range: whole objects are removed, the rest reads as
 * zeroes afterwards. */
int mixsan_volume_aio_discard(mixsan_volume_t *v, mixsan_completion_t *c, uint64_t len,
			      uint64_t off);
int mixsan_volume_aio_write_zeroes(mixsan_volume_t *v, mixsan_completion_t *c, uint64_t len,
				   uint64_t off, unsigned flags);
/* Complete when every write, discard and zeroing started before it has
 * completed and is durable on every replica: in writethrough they are
 * when they complete; in writeback and none the flush then asks each PG
 * written since the last flush to sync (docs/cache-modes.md).  A failed
 * flush keeps those PGs for the next one, except that -EIO says some of
 * those writes may be lost (every OSD that held them restarted after its
 * host lost power): said once, as fsync(2) says a write-back error, and
 * the next flush vouches only for writes after it. */
int mixsan_volume_aio_flush(mixsan_volume_t *v, mixsan_completion_t *c);

int64_t mixsan_volume_read(mixsan_volume_t *v, void *buf, size_t len, uint64_t off);
int mixsan_volume_write(mixsan_volume_t *v, const void *buf, size_t len, uint64_t off);
int mixsan_volume_write_flags(mixsan_volume_t *v, const void *buf, size_t len, uint64_t off,
			      unsigned flags);
int mixsan_volume_discard(mixsan_volume_t *v, uint64_t len, uint64_t off);
int mixsan_volume_write_zeroes(mixsan_volume_t *v, uint64_t len, uint64_t off,
			       unsigned flags);
int mixsan_volume_flush(mixsan_volume_t *v);

/* Snapshots and clones ---------------------------------------------------
 *
 * A snapshot keeps the volume's content as it was when taken; it costs
 * nothing until the volume is written, and then one copy of each object
 * the first time it changes.  Snapshots are taken, removed and rolled back
 * by the writer (a handle opened for writing).  A clone is a new volume
 * whose content starts as a protected snapshot of another (its parent):
 * it reads through to the parent until it writes, and a write copies up
 * only the object it touches.  A protected snapshot cannot be removed, nor
 * unprotected while clones of it exist; flatten copies everything a clone
 * still reads from its parent and cuts the link.
 */
#define MIXSAN_SNAP_NAME_MAX 100

struct mixsan_snap_info {
	char name[MIXSAN_SNAP_NAME_MAX + 1];
	uint64_t id;
	uint64_t size;
	uint64_t time_ms;   /* wall clock when taken */
	int protected_;     /* clones may be made of it */
	unsigned children;  /* clones of it */
};

/* -EEXIST, -EINVAL (bad name: 1 to 100 bytes, no '/' or '@'), -EROFS. */
int mixsan_volume_snap_create(mixsan_volume_t *v, const char *name);
/* Call cb for each snapshot, oldest first; a non-zero return stops. */
int mixsan_volume_snap_list(mixsan_volume_t *v,
			    int (*cb)(void *arg, const struct mixsan_snap_info *s), void *arg);
/* -ENOENT, -EBUSY (protected). */
int mixsan_volume_snap_remove(mixsan_volume_t *v, const char *name);
/* Make the volume's content the snapshot's again (its size too). */
int mixsan_volume_snap_rollback(mixsan_volume_t *v, const char *name);
/* protect 1: clones may be made; 0: -EBUSY while clones exist. */
int mixsan_volume_snap_protect(mixsan_volume_t *v, const char *name, int protect);

/* Create clone (in pool cp) of snapshot snap of volume parent (in pool p);
 * the snapshot must be protected (-EPERM otherwise). */
int mixsan_volume_clone(mixsan_pool_t *p, const char *parent, const char *snap,
			mixsan_pool_t *cp, const char *clone);
/* Copy into the clone everything it still reads from its parent, then cut
 * the link (the handle must be the writer). */
int mixsan_volume_flatten(mixsan_volume_t *v);

struct mixsan_volume_parent {
	int64_t pool;      /* -1: not a clone */
	char volume_id[17];
	uint64_t snap_id;
	uint64_t overlap;  /* bytes of the parent the clone can see */
};
int mixsan_volume_parent(mixsan_volume_t *v, struct mixsan_volume_parent *out);

#ifdef __cplusplus
}
#endif

#endif

/*
 * libmixsan's internals shared with mixstack's own tools (the command line
 * and tests), never exported from the shared library.
 */
#ifndef MX_CLIENT_INTERNAL_H
#define MX_CLIENT_INTERNAL_H

#include <stdint.h>

#include "map.h"
#include "msg.h"
#include "mixsan/mixsan.h"

/* A copy of the newest map the library holds (free with mx_map_free), or
 * NULL on allocation failure. */
struct mx_map *mx_client_map_copy(mixsan_cluster_t *cl);

/* Where an object lives: its PG and acting set (primary first).
 * Returns the acting set's size or a negative errno. */
int mx_client_locate(mixsan_cluster_t *cl, int64_t pool, const char *oid, uint32_t *pg,
		     int32_t *acting, int max);

/* What a scrub found (docs/recovery.md, "Scrub"). */
struct mx_client_scrub_result {
	uint32_t scrubbed;     /* objects compared */
	uint32_t inconsistent; /* objects some member holds differently */
	uint32_t repaired;     /* of those, made consistent again */
	uint32_t errors;       /* members not scrubbed, objects not repaired */
};

/* Scrub PG (pool, pg) on its primary: flags MX_SCRUB_DEEP and/or
 * MX_SCRUB_REPAIR (lib/msg.h).  Sent like an object request, retried while
 * the PG moves, peers or is being scrubbed already, until the cluster's
 * op timeout.  0 and *out, or a negative errno (-ENOENT: no such pool or
 * PG, -ETIMEDOUT, or the scrub's own failure). */
int mx_client_pg_scrub(mixsan_cluster_t *cl, int64_t pool, uint32_t pg, uint32_t flags,
		       struct mx_client_scrub_result *out);

/* A new key sealed under the key of keyfile's entity, in base64 (what the
 * monitors take for auth add and auth rotate).  0 or a negative errno. */
int mx_client_seal_key(const char *keyfile, const uint8_t key[32], char *b64, size_t sz);
/* As the administrator whose key file is keyfile, make a key for name with
 * caps (docs/auth.md) and write it to out (0600, replaced).  0 or a
 * negative errno. */
int mx_client_auth_add(mixsan_cluster_t *cl, const char *keyfile, const char *name,
		       const char *caps, const char *out);

/* The body of a synchronous call: run call (an asynchronous one, given the
 * completion c_) and wait for its result. */
#define MX_SYNC(call)                                                          \
	do {                                                                   \
		mixsan_completion_t *c_;                                       \
		int64_t r_ = mixsan_completion_create(NULL, NULL, &c_);        \
		if (r_ < 0)                                                    \
			return r_;                                             \
		r_ = (call);                                                   \
		if (r_ == 0)                                                   \
			r_ = mixsan_completion_wait(c_);                       \
		mixsan_completion_release(c_); /* done, or never taken */     \
		return r_;                                                     \
	} while (0)

/* Complete c with result as the library does (runs its callback). */
void mx_completion_finish(mixsan_completion_t *c, int64_t result);
/* Mark c taken by a request (it will complete): from then on releasing it
 * before completion defers the free to the completion.  A completion no
 * request took is freed by mixsan_completion_release at once. */
void mx_completion_arm(mixsan_completion_t *c);

/* An object's version (docs/protocol.md): a write's, as its reply says.
 * As 16 big-endian bytes (mx_client_version_be) its byte order is its
 * order, for the ordered guards (MX_CMP_LT... in lib/msg.h). */
struct mx_client_version {
	uint64_t epoch, seq;
};

static inline void mx_client_version_be(const struct mx_client_version *v, uint8_t out[16])
{
	for (int i = 0; i < 8; i++) {
		out[i] = (uint8_t)(v->epoch >> (56 - 8 * i));
		out[8 + i] = (uint8_t)(v->seq >> (56 - 8 * i));
	}
}

/* Object requests to a base pool whose cache tier is active (writeback,
 * readonly, or draining in mode none) run through the tier (client/tier.h,
 * docs/cache-tiering.md), these below included: a request is then applied
 * atomically to the copy that answers for the object, the versions are that
 * copy's, attribute names under "_tier." are EINVAL, and a REMOVE must be a
 * request's last op.  mx_client_pool_open_raw's handles never go through a
 * tier. */

/* Send ops (writes and CMPXATTR guards, lib/msg.h) to oid as one request,
 * applied atomically.  Buffers and names are copied or must stay valid as
 * for any asynchronous call.  c gets 0, the request's error, or the first
 * failing op's (-ECANCELED: a guard did not hold; -EINVAL: a malformed
 * guard, or another refused op). */
int mx_client_aio_write_ops(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			    const struct mx_osd_op *ops, unsigned n);
/* The same, and on success *ver (unless ver is NULL) gets the version the
 * write gave the object; a resent request that the primary had applied
 * already gets the same.  ver must stay valid until c completes; it is
 * not written on failure. */
int mx_client_aio_write_ops_v(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			      const struct mx_osd_op *ops, unsigned n,
			      struct mx_client_version *ver);
/* The synchronous form: 0 or a negative errno as above. */
/* mx_client_aio_write_ops as a writeback write (MX_OSD_OP_WRITEBACK,
 * docs/cache-modes.md): it completes once every OSD of the acting set has
 * logged it, and *ver (if not NULL) gets its version; mx_client_aio_flush_pg
 * of its object makes it durable. */
int mx_client_aio_write_ops_wb(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			       const struct mx_osd_op *ops, unsigned n,
			       struct mx_client_version *ver);
/* FLUSH the PG of oid (oid itself is not touched): completes when every
 * write the PG's OSDs acknowledged before it is durable on each of them.
 * since is the least version epoch of the writes it vouches for (0: every
 * write): -MX_EWBLOST if the PG found some of those may be lost to a power
 * cut of every OSD that held them.  0 or a negative errno, as an object
 * request. */
int mx_client_aio_flush_pg(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			   uint64_t since);
int mx_client_write_ops(mixsan_pool_t *p, const char *oid, const struct mx_osd_op *ops,
			unsigned n, struct mx_client_version *ver);
/* The same again, and *failed (unless NULL) says which guard did not hold
 * when c gets -ECANCELED: the index of the first op the OSD answered
 * ECANCELED (docs/cache-tiering.md, "Two new OSD primitives"); -1 in every
 * other case.  failed must stay valid until c completes. */
int mx_client_aio_write_ops_f(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			      const struct mx_osd_op *ops, unsigned n,
			      struct mx_client_version *ver, int *failed);
int mx_client_write_ops_f(mixsan_pool_t *p, const char *oid, const struct mx_osd_op *ops,
			  unsigned n, struct mx_client_version *ver, int *failed);

/* One op's result in a read request. */
struct mx_client_op_result {
	int rval;     /* 0, or this op's negative errno (-ENODATA: no such attribute) */
	void *data;   /* From malloc(), if rval is 0 (never NULL then, even for 0
			 bytes): READ's bytes, GETXATTR's value, STAT's record
			 (mx_osd_stat_decode), LISTXATTRS's list
			 (mx_client_xattrs_walk) */
	uint32_t len; /* bytes at data */
};

/* What a read request returned: each op's result, in order, and the
 * object's version when the OSD read it, all from one moment. */
struct mx_client_read_result {
	struct mx_client_version ver;
	unsigned n; /* ops[0..n) */
	struct mx_client_op_result ops[MX_MSG_MAX_OPS];
};

/* Free the data r holds (not r itself) and empty it; NULL is fine. */
void mx_client_read_result_free(struct mx_client_read_result *r);

/*
 * Send n read ops (READ, STAT, GETXATTR, LISTXATTRS; READ lengths at most
 * MX_MSG_MAX_DATA in all) to oid as one request, retried and resent across
 * map changes like every request.  Always to the PG's primary, whatever
 * the read policy: simplest, and the version read is then the one the
 * primary's next guarded write compares with.  Names are copied.
 *
 * out is emptied at once and must stay valid until c completes; c gets 0
 * with out filled (free with mx_client_read_result_free), or a negative
 * errno with out empty (-ENOENT: the object does not exist; -EINVAL:
 * another op, or too much to read).  A missing attribute is not a
 * failure: its op's rval says -ENODATA.
 */
int mx_client_aio_read_ops(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			   const struct mx_osd_op *ops, unsigned n,
			   struct mx_client_read_result *out);
/* The synchronous form: 0 or a negative errno as above. */
int mx_client_read_ops(mixsan_pool_t *p, const char *oid, const struct mx_osd_op *ops,
		       unsigned n, struct mx_client_read_result *out);

/* Walk a LISTXATTRS result (data, len bytes): cb for each attribute until
 * it returns non-zero.  0, cb's value, or -EBADMSG. */
int mx_client_xattrs_walk(const void *data, uint32_t len,
			  int (*cb)(void *arg, const char *name, const void *value, size_t len),
			  void *arg);

/* mixsan_list of one PG of p's pool (never through a tier): cb for each
 * object in name order.  0, cb's value, or a negative errno. */
int mx_client_list_pg(mixsan_pool_t *p, uint32_t pg,
		      int (*cb)(void *arg, const char *oid, size_t oid_len, uint64_t size),
		      void *arg);

/* A pool handle by id (-ENOENT if the map has none), and a pool's cluster. */
int mx_client_pool_open_id(mixsan_cluster_t *cl, int64_t id, mixsan_pool_t **out);
mixsan_cluster_t *mx_client_pool_cluster(mixsan_pool_t *p);

/* Counters of the client's retries, for tests. */
struct mx_client_stats {
	uint64_t ops;
	uint64_t resends;
	uint64_t maps;
	uint64_t replica_reads;   /* served by a replica (a read policy) */
	uint64_t replica_bounced; /* sent back to the primary by a replica */
	uint64_t read_bytes;      /* data returned by OSDs for reads */
};
void mx_client_get_stats(mixsan_cluster_t *cl, struct mx_client_stats *out);

/* The handle's snapshot cache (NULL: none) and its read-ahead in bytes
 * (0: none). */
struct mx_bcache;
struct mx_bcache *mx_client_cache(mixsan_cluster_t *cl, uint64_t *readahead);

#endif

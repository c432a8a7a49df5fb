/*
 * libmixsan's internals shared with mixstack's own tools (the command line
 * and tests), never exported from the shared library.
 */
#ifndef MX_CLIENT_INTERNAL_H
#define MX_CLIENT_INTERNAL_H

#include <stdint.h>

#include "map.h"
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

/* Send ops (writes and CMPXATTR guards, lib/msg.h) to oid as one request,
 * applied atomically.  Buffers and names are copied or must stay valid as
 * for any asynchronous call.  c gets 0, the request's error, or the first
 * failing op's (-ECANCELED: a guard did not match). */
struct mx_osd_op;
int mx_client_aio_write_ops(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			    const struct mx_osd_op *ops, unsigned n);

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

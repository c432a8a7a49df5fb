/*
 * Cache tiering in the client library (docs/cache-tiering.md): requests to
 * a base pool whose cache is in mode writeback or readonly are handed by
 * cop_submit to a few worker threads of the cluster handle, which run each
 * one as a short sequence of guarded requests on the two pools through raw
 * pool handles (never routed again), then complete the caller's request.
 * tier.c holds that; client.c lends it the accessors below.
 */
#ifndef MX_CLIENT_TIER_H
#define MX_CLIENT_TIER_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

struct cop;
struct mx_tier;

/* The tier's attributes (docs/cache-tiering.md, "The state of an object in
 * the cache pool"), hidden from clients of a tiered pool. */
#define MX_TIER_PREFIX "_tier."
#define MX_TIER_P "_tier.p"     /* cache: "1" present; "promoting:N" claimed */
#define MX_TIER_SRC "_tier.src" /* cache: base version recorded (16 bytes) */
#define MX_TIER_D "_tier.d"     /* cache: dirty, a nonce per write */
#define MX_TIER_RM "_tier.rm"   /* cache: a present copy of a removed object */
#define MX_TIER_W "_tier.w"     /* cache: readonly writers' mark */
#define MX_TIER_VER "_tier.ver" /* base: the cache version flushed last */
#define MX_TIER_FL "_tier.fl"   /* base: a flush in steps under way */

/* How requests to a base pool go through its cache, from the map the
 * library holds (docs/cache-tiering.md, "Mode changes and fencing"). */
struct mx_tier_route {
	int32_t base, cache;
	/* MX_CACHE_WRITEBACK, MX_CACHE_READONLY, or MX_CACHE_NONE: the cache
	 * is draining (mode none after writeback or readonly, flush_all set):
	 * present copies stay the authority for their objects, nothing is
	 * promoted, and writes to objects without a copy go to the base. */
	int mode;
	unsigned min_hits; /* the cache pool's promote_min_hits */
	unsigned period_s; /* its hit_period_s */
	uint64_t epoch;    /* the map's: every step is fenced at it */
};

/* client.c ---------------------------------------------------------------- */

/* Whether requests to pool go through a cache tier now, and how (*rt);
 * rt->epoch is the map's either way. */
bool mx_client_tier_route(mixsan_cluster_t *cl, int32_t pool, struct mx_tier_route *rt);
/* A pool handle whose requests go to pool id itself, never through a
 * tier (free with mixsan_pool_close).  0 or -ENOENT, -ENOMEM. */
int mx_client_pool_open_raw(mixsan_cluster_t *cl, int64_t id, mixsan_pool_t **out);
/* The same, for the steps of a request routed at map epoch epoch: each
 * fails with -ESTALE, unsent, once the library's map shows a newer
 * tier_epoch for the pool, and with -ETIMEDOUT at deadline_ns (0: the
 * handle's op timeout only). */
int mx_client_pool_open_fenced(mixsan_cluster_t *cl, int64_t id, uint64_t epoch,
			       uint64_t deadline_ns, mixsan_pool_t **out);
/* This handle's client id (a request identity's half). */
uint64_t mx_client_id(mixsan_cluster_t *cl);

/* A submitted object request: its object name and its ops (names point
 * into op, valid until it is answered).  Returns the op count. */
const char *mx_cop_oid(const struct cop *op);
unsigned mx_cop_ops(const struct cop *op, struct mx_osd_op *out);
/* Answer op and free it, as an OSD's reply would: err 0 or a negative
 * errno; res (a read's results, one per op of op, data copied out; NULL
 * for a write); ver, the version read or written (NULL: none); failed,
 * the caller's failing guard when err is -ECANCELED (-1: none). */
void mx_cop_answer(struct cop *op, int err, const struct mx_client_read_result *res,
		   const struct mx_client_version *ver, int failed);

/* tier.c ------------------------------------------------------------------ */

/* The workers of cl (started at once); called under cl's lock, so it
 * takes no lock of cl's.  0 or a negative errno. */
int mx_tier_new(mixsan_cluster_t *cl, struct mx_tier **out);
/* Run every request queued, stop the workers and free t (NULL is fine).
 * The cluster's loop must still run. */
void mx_tier_free(struct mx_tier *t);
/* Whether op may go to a tiered pool: -EINVAL if it names an attribute
 * under the tier's prefix "_tier.", else 0. */
int mx_tier_check(const struct cop *op);
/* Queue op (its completion armed) for a worker, which answers it; called
 * under cl's lock.  0, or -ENOMEM (op is left to the caller). */
int mx_tier_submit(struct mx_tier *t, const struct mx_tier_route *rt, struct cop *op);
/* mixsan_list of a tiered base pool: the objects of both pools, each
 * once, stubs, copies being promoted and removed copies hidden. */
int mx_tier_list(mixsan_cluster_t *cl, const struct mx_tier_route *rt,
		 int (*cb)(void *arg, const char *oid, size_t oid_len, uint64_t size),
		 void *arg);

/* What a cache pool holds: its objects (stubs included), present copies
 * (their bytes) and, of those, dirty ones. */
struct mx_tier_census {
	uint64_t objects, present, present_bytes, dirty;
};
/* Count them, object by object.  0 or a negative errno. */
int mx_tier_census(mixsan_cluster_t *cl, int64_t cache, struct mx_tier_census *out);

#endif

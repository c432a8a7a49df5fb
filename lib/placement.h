/*
 * Placement: object name -> placement group -> ordered list of OSDs.
 *
 * Pure functions of the cluster map, shared by clients and OSDs so that both
 * compute the same answer without asking anyone.  The OSD hierarchy is built
 * from each OSD's location (root/.../host/osd).  A pool's rule ranks the
 * OSDs under its root by weighted straw2 keys, one per OSD, and takes the
 * best OSD of each of the first `size` distinct buckets of its
 * failure-domain level.  A change of one OSD's weight only moves data to or
 * from that OSD, and a new OSD takes data only for itself, whatever the
 * hierarchy.  All arithmetic is integer, so every machine computes the same
 * placement.  The map's upmaps (per-PG exceptions set by lib/balancer.c) are
 * applied to the rule's result while they are valid.
 */
#ifndef MX_PLACEMENT_H
#define MX_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "map.h"

/* The hierarchy compiled from one map; immutable once built. */
struct mx_placement;

/* Build the hierarchy of map.  OSDs that do not exist or are out (!in) or
 * weigh 0 take no data.  The map's upmaps are copied: the placement keeps
 * no pointer into map, which may be freed first.  Returns 0 and *out, or
 * a negative errno (-EINVAL for a malformed map, including an upmap with
 * no pair or more than MX_MAX_SIZE). */
int mx_placement_new(const struct mx_map *map, struct mx_placement **out);
void mx_placement_free(struct mx_placement *pl);

/* The stable hash of an object name (never changes between releases). */
uint32_t mx_object_hash(const char *name, size_t len);
/* The PG of an object: stable modulo of its hash by pool->pg_num, so that
 * growing pg_num splits PGs rather than reshuffling them. */
uint32_t mx_object_pg(const struct mx_pool *pool, const char *name, size_t len);

/* The "up" set of a PG: the OSDs the rule chooses, in order (first is the
 * primary), each in a distinct failure domain, then the PG's upmap applied
 * as mx_pg_upmap_apply() does.  Fills osds[0..n) with at most max entries
 * and returns n (which may be below pool->size when the hierarchy has too
 * few failure domains), or a negative errno.  OSDs that are down still
 * appear here; they are mapped but not serving.  Does not allocate. */
int mx_pg_up(const struct mx_placement *pl, const struct mx_pool *pool,
	     uint32_t pg, int32_t *osds, int max);

/* The same without the upmaps: the rule's own result. */
int mx_pg_up_raw(const struct mx_placement *pl, const struct mx_pool *pool,
		 uint32_t pg, int32_t *osds, int max);

/*
 * Apply upmap u to the up set osds[0..n) of a PG of pool, in place, as
 * mx_pg_up() does.  The pairs are taken in order; pair i replaces from[i]
 * by to[i] if from[i] is in the set and to[i] may take the replica: it
 * exists, is in, weighs more than 0, is of the pool's device class, lies
 * under the pool's root, is not in the set yet, and its failure domain
 * (pool->failure_domain level) is not that of another member of the set.
 * Any other pair is ignored.  u->pool and u->pg are not looked at.
 * Returns the mask of the pairs applied (bit i: pair i), or -EINVAL.
 */
int mx_pg_upmap_apply(const struct mx_placement *pl, const struct mx_pool *pool,
		      const struct mx_pg_upmap *u, int32_t *osds, int n);

/*
 * Whether OSD osd may hold data of pool (the conditions on to[i] above but
 * the last two), and if so its failure domain at pool->failure_domain
 * level: an opaque id, equal for two OSDs exactly when they share that
 * domain, never INT32_MIN.  Returns 0 and *domain, -ENOENT if the OSD may
 * not hold the pool's data, or -EINVAL.
 */
int mx_placement_osd_domain(const struct mx_placement *pl,
			    const struct mx_pool *pool, int32_t osd,
			    int32_t *domain);

/* The "acting" set: the up set without the OSDs that are down, order kept
 * but for the PG's primary_temp OSD (if it is a member), which goes first.
 * The first entry is the primary.  Returns the count or a negative errno. */
int mx_pg_acting(const struct mx_placement *pl, const struct mx_map *map,
		 const struct mx_pool *pool, uint32_t pg, int32_t *osds, int max);

/* A memo of acting sets, for one thread: mx_pg_acting is a pure function
 * of the map (an epoch names one map) and the PG, and costs thousands of
 * instructions, once per request without it.  Direct-mapped; an entry of
 * another epoch is a miss.  Zero it (calloc) before use. */
#define MX_ACTING_MEMO_SLOTS 1024
struct mx_acting_entry {
	uint64_t epoch; /* 0: empty */
	int32_t pool;
	uint32_t pg;
	int n;
	int32_t osds[MX_MAX_SIZE];
};
struct mx_acting_memo {
	struct mx_acting_entry e[MX_ACTING_MEMO_SLOTS];
};
/* mx_pg_acting through the memo; pl must be the one built from map. */
int mx_pg_acting_memo(struct mx_acting_memo *memo, const struct mx_placement *pl,
		      const struct mx_map *map, const struct mx_pool *pool, uint32_t pg,
		      int32_t *osds, int max);

#endif

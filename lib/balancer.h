/*
 * The upmap balancer: chooses per-PG exceptions to the placement rule
 * (struct mx_pg_upmap in the cluster map) so that every OSD holds close to
 * its weight share of PG replicas, which straw2's independent draws alone
 * cannot give at ~100 PGs per OSD.  It is a pure function of the map: the
 * monitor runs it and stores the result with mx_map_set_upmaps(), and
 * placement (lib/placement.c) applies it.  docs/placement.md describes the
 * algorithm.
 */
#ifndef MX_BALANCER_H
#define MX_BALANCER_H

#include <stdint.h>

#include "map.h"

/* What one run of mx_balance() did and found.  Deviations are relative:
 * (count - share) / share, for the OSD farthest from its share. */
struct mx_balance_stats {
	uint32_t moves;          /* replica moves made (<= max_changes) */
	uint32_t dropped;        /* old pairs dropped: inert or invalid */
	uint32_t n_upmaps;       /* PGs with an upmap in the result */
	uint32_t n_pairs;        /* pairs in the result */
	uint32_t outside_before; /* OSDs outside the band with the old upmaps */
	uint32_t outside_after;  /* OSDs outside the band with the result */
	double max_dev_raw;      /* without any upmap */
	double max_dev_before;   /* with the valid pairs of the old upmaps */
	double max_dev_after;    /* with the result */
};

/*
 * Balance the PG replicas of pool (-1: all pools of m) over their OSDs.
 *
 * An OSD's share is, summed over those pools, the pool's replica count
 * times the OSD's weight over the total weight of the OSDs that may hold
 * the pool's data (in, weight > 0, of its device class, under its root).
 * Starting from the map's upmaps, with the pairs that no longer apply
 * dropped, the balancer moves one replica at a time from the fullest OSD
 * to the emptiest one that may take it, until every OSD's count is within
 * max_deviation (0.10: +-10%) of its share, no move helps, or max_changes
 * moves are made.
 *
 * On success returns 0 and in *out the complete new set of upmaps for
 * pool (for every pool if -1), sorted by (pool, pg), *n_out of them; the
 * caller frees *out with free() (NULL when *n_out is 0) and normally
 * passes it to mx_map_set_upmaps(m, pool, *out, *n_out).  Fills *st if
 * st is not NULL.  The result depends on nothing but the arguments.
 * Returns -EINVAL for bad arguments or a malformed map, -ENOENT for a
 * pool that does not exist, -ENOMEM.  m is not modified.
 */
int mx_balance(const struct mx_map *m, int32_t pool, uint32_t max_changes,
	       double max_deviation, struct mx_pg_upmap **out, uint32_t *n_out,
	       struct mx_balance_stats *st);

#endif

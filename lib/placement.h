/*
 * Placement: object name -> placement group -> ordered list of OSDs.
 *
 * Pure functions of the cluster map, shared by clients and OSDs so that both
 * compute the same answer without asking anyone.  The OSD hierarchy is built
 * from each OSD's location (root/.../host/osd); a pool's rule walks down from
 * its root and chooses `size` distinct buckets of its failure-domain level,
 * then one OSD under each, by weighted straw2 draws (a change of one item's
 * weight only moves data to or from that item).  All arithmetic is integer,
 * so every machine computes the same placement.
 */
#ifndef MX_PLACEMENT_H
#define MX_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "map.h"

/* The hierarchy compiled from one map; immutable once built. */
struct mx_placement;

/* Build the hierarchy of map.  OSDs that do not exist or are out (!in) or
 * weigh 0 take no data.  Returns 0 and *out, or a negative errno. */
int mx_placement_new(const struct mx_map *map, struct mx_placement **out);
void mx_placement_free(struct mx_placement *pl);

/* The stable hash of an object name (never changes between releases). */
uint32_t mx_object_hash(const char *name, size_t len);
/* The PG of an object: stable modulo of its hash by pool->pg_num, so that
 * growing pg_num splits PGs rather than reshuffling them. */
uint32_t mx_object_pg(const struct mx_pool *pool, const char *name, size_t len);

/* The "up" set of a PG: the OSDs the rule chooses, in order (first is the
 * primary), each in a distinct failure domain.  Fills osds[0..n) with at
 * most max entries and returns n (which may be below pool->size when the
 * hierarchy has too few failure domains), or a negative errno.  OSDs that
 * are down still appear here; they are mapped but not serving. */
int mx_pg_up(const struct mx_placement *pl, const struct mx_pool *pool,
	     uint32_t pg, int32_t *osds, int max);

/* The "acting" set: the up set without the OSDs that are down, order kept.
 * The first entry is the primary.  Returns the count or a negative errno. */
int mx_pg_acting(const struct mx_placement *pl, const struct mx_map *map,
		 const struct mx_pool *pool, uint32_t pg, int32_t *osds, int max);

#endif

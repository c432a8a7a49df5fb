/*
 * Hit sets (docs/cache-tiering.md, "Promotion by recency and frequency"):
 * the objects a client missed in a cache pool, one set per hit period, so
 * that an object is promoted only once it was missed in promote_min_hits
 * distinct periods.  Plain data, no I/O and no clock of its own (the
 * caller gives the time), no locking (the caller's).
 */
#ifndef MX_CLIENT_HITSET_H
#define MX_CLIENT_HITSET_H

#include <stdint.h>

#define MX_HITSET_KEPT 4 /* periods counted, at least */

struct mx_hitsets;

/* An empty collection (free with mx_hitsets_free), or NULL. */
struct mx_hitsets *mx_hitsets_new(void);
void mx_hitsets_free(struct mx_hitsets *h);

/*
 * Count a miss of (pool, oid) at now_s seconds (any monotonic clock), in
 * periods of period_s seconds, and return the number of periods it was
 * missed in (this one included) among the newest max(MX_HITSET_KEPT,
 * min_hits) periods, min_hits at most MX_PROMOTE_HITS_MAX: the object
 * qualifies for promotion when that reaches min_hits.  A Bloom filter per
 * period and pool: a false positive may promote an object early, never
 * late.  A pool's period length changing starts its sets afresh.
 * Returns 0 on allocation failure (nothing promoted).
 */
unsigned mx_hitsets_miss(struct mx_hitsets *h, int32_t pool, const char *oid,
			 unsigned period_s, unsigned min_hits, uint64_t now_s);

#endif

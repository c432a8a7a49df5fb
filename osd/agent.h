/*
 * The tiering agent of an OSD (docs/cache-tiering.md, "The agent"): a
 * thread with a cluster handle of its own that flushes dirty copies of the
 * cache-pool PGs this OSD is primary of to their base pool and evicts
 * clean ones, by the pool's targets, or all of them while the cache
 * drains.  Every action is a guarded request, as any client's.
 */
#ifndef MX_OSD_AGENT_H
#define MX_OSD_AGENT_H

#include <stdbool.h>
#include <stdint.h>

struct mx_agent;

struct mx_agent_config {
	const char *mons;    /* the monitors, as --mon */
	const char *keyfile; /* the OSD's key file; NULL: no authentication */
	unsigned interval_ms; /* between passes; 0: 1000 */
};

/* What the agent has done (for the log and for tests). */
struct mx_agent_stats {
	uint64_t passes, flushed, evicted, failed;
};

/* Start the thread.  It connects only once mx_agent_want(true).  0 or a
 * negative errno. */
int mx_agent_start(const struct mx_agent_config *cfg, struct mx_agent **out);
/* Whether the cluster has a cache tier (the OSD's map says so), and this
 * OSD's id (-1: none yet). */
void mx_agent_want(struct mx_agent *a, bool want, int32_t id);
void mx_agent_stats(struct mx_agent *a, struct mx_agent_stats *out);
/* Stop the thread (after its request in flight, bounded by the handle's
 * op timeout) and free a (NULL is fine). */
void mx_agent_stop(struct mx_agent *a);

#endif

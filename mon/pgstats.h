/*
 * The monitor's view of PG health (docs/health.md): the newest statistics
 * each primary reported for its PGs (MON_PG_STATS), the OSDs' disk usage,
 * the health verdict computed from them, and the cluster event log.
 *
 * Kept in memory only, never in the map: after a monitor restart every PG
 * is "unknown" until its primary reports again (within a second).  Pure
 * functions of their arguments and the time they are given, no I/O, so
 * they are unit-tested.
 */
#ifndef MX_MON_PGSTATS_H
#define MX_MON_PGSTATS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"
#include "msg.h"
#include "placement.h"
#include "util.h"

struct mx_pgstats_cfg {
	uint32_t stale_ms;    /* a PG whose primary has not reported for this long is stale */
	uint32_t inactive_ms; /* PGs inactive for longer than this: HEALTH_ERR */
	double nearfull;      /* OSD file system usage ratios: WARN, ERR */
	double backfillfull;  /* no backfill into it */
	double full;
};

enum { MX_HEALTH_OK = 0, MX_HEALTH_WARN, MX_HEALTH_ERR };

const char *mx_health_name(int status);

#define MX_HEALTH_MAX_CHECKS 16
#define MX_HEALTH_MAX_STATES 64

struct mx_health_check {
	int severity; /* MX_HEALTH_WARN or MX_HEALTH_ERR */
	char code[32];  /* "OSD_DOWN", "PG_DEGRADED", ... */
	char text[240];
};

struct mx_state_count {
	uint32_t state; /* MX_PGS_* */
	uint64_t n;
};

struct mx_health {
	int status;
	int n_checks;
	struct mx_health_check checks[MX_HEALTH_MAX_CHECKS];
	/* OSDs */
	uint32_t osds, osds_up, osds_in;
	uint32_t n_nearfull, n_full;
	int32_t nearfull[32], full[32]; /* the first ones */
	/* PGs: counts per distinct state set, most frequent first */
	uint64_t pgs;
	int n_states;
	struct mx_state_count states[MX_HEALTH_MAX_STATES];
	uint64_t pgs_active, pgs_clean, pgs_inactive, pgs_stuck_inactive, pgs_stale,
		pgs_unknown, pgs_peering, pgs_incomplete, pgs_degraded, pgs_undersized,
		pgs_recovering, pgs_backfilling, pgs_remapped, pgs_inconsistent;
	/* Objects (primary counts) and copies (objects x pool size) */
	uint64_t objects, bytes, copies, degraded, misplaced;
	/* File systems of the OSDs that are up */
	uint64_t fs_total, fs_used, fs_avail;
	/* Recovery over the last seconds; eta_s < 0: unknown or nothing to do */
	double rec_objects_s, rec_bytes_s;
	int64_t eta_s;
};

struct mx_pgstats;

struct mx_pgstats *mx_pgstats_new(const struct mx_pgstats_cfg *cfg);
void mx_pgstats_free(struct mx_pgstats *ps);

/* A new map (and at start): learn every PG's primary; forget the
 * statistics of PGs whose reporter is no longer their primary and of PGs
 * that are gone.  0 or -ENOMEM (then nothing changed). */
int mx_pgstats_map(struct mx_pgstats *ps, const struct mx_map *m,
		   const struct mx_placement *pl, uint64_t now_ms);

/* An OSD's report (records walked here), under the map last given to
 * mx_pgstats_map.  Records of PGs the reporter is not the primary of are
 * ignored, and the whole report if the reporter is not up in that
 * incarnation.  Returns the number of records kept or -EBADMSG. */
int mx_pgstats_report(struct mx_pgstats *ps, const struct mx_map *m,
		      struct mx_msg_pg_stats *r, uint64_t now_ms);

/* Once a second: sample the recovery counters for the rates. */
void mx_pgstats_tick(struct mx_pgstats *ps, uint64_t now_ms);
/* The disk state (enum mx_osd_space) OSD id's latest report under m calls
 * for, by the ratios; -1 if it has not reported in this incarnation. */
int mx_pgstats_space(const struct mx_pgstats *ps, const struct mx_map *m, int32_t id);

/* How many objects pool holds, summed from its PGs' latest reports (each
 * PG's count is its primary's).  Returns 0 with the sum in *objects when
 * the monitor can vouch for every PG of the pool: a report from its
 * current primary, no older than stale_ms, of an active PG (a primary
 * that has peered holds every object of the PG).  Otherwise -EAGAIN, with
 * how many PGs it cannot vouch for in *unsure and in *objects the sum of
 * the fresh reports only, a lower bound (a PG still peering may not count
 * all its objects yet, but those it counts are there); -ENOENT if it knows
 * no PG of the pool. */
int mx_pgstats_pool_objects(const struct mx_pgstats *ps, int32_t pool, uint64_t now_ms,
			    uint64_t *objects, uint32_t *unsure);

/* The health of the cluster now. */
void mx_pgstats_health(struct mx_pgstats *ps, const struct mx_map *m, uint64_t now_ms,
		       struct mx_health *h);

/* JSON of a health summary (the `status` command's answer, docs/health.md). */
json_t *mx_health_json(const struct mx_health *h);
/* Every PG (of pool, if >= 0; whose state name contains state, if given) as
 * a JSON array: pgid, state, primary, objects, bytes, degraded, misplaced,
 * scrub_ms, deep_scrub_ms. */
json_t *mx_pgstats_ls(const struct mx_pgstats *ps, uint64_t now_ms, int32_t pool,
		      const char *state);

/* "60 active+clean, 4 active+recovering+degraded; 120/360 objects
 * degraded (33.3%)": the PG summary of the event log. */
void mx_health_pgmap(const struct mx_health *h, char *buf, size_t sz);

/* The cluster event log: a ring of the newest events. */
#define MX_EVLOG_MAX 1000

struct mx_evlog;

struct mx_evlog *mx_evlog_new(void);
void mx_evlog_free(struct mx_evlog *l);
/* Add an event (severity MX_HEALTH_*); returns its sequence number. */
uint64_t mx_evlog_add(struct mx_evlog *l, uint64_t now_ms, int severity, const char *fmt, ...)
	MX_PRINTF(4, 5);
uint64_t mx_evlog_last(const struct mx_evlog *l);
/* {"last": seq, "events": [{"seq", "stamp_ms", "severity", "text"}...]}:
 * the events after seq `after` (the newest `max` when after is 0 and max
 * is not 0), oldest first, no more than about max_bytes of text. */
json_t *mx_evlog_json(const struct mx_evlog *l, uint64_t after, uint32_t max,
		      size_t max_bytes);

#endif

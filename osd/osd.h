/*
 * mixsan-osd: one daemon per data device.  It stores objects in its object
 * store, serves client requests for the placement groups it is primary of,
 * and replicates every update to the other OSDs of the PG's acting set.
 *
 * See osd.c for the request state machine and its invariants.
 */
#ifndef MX_OSD_H
#define MX_OSD_H

#include <stdbool.h>
#include <stdint.h>

struct mx_osd_config {
	const char *data_dir;
	const char *mon_addr;
	/* Key file ("osd.N KEY", 0600) for a cluster with authentication
	 * (docs/auth.md); NULL: DIR/keyring if it exists, else none. */
	const char *keyfile;
	const char *addr;     /* listen address, "ip:port" (port 0: any) */
	const char *location; /* "host=h1 rack=r1" */
	const char *device_class;
	uint32_t weight;      /* 16.16; 0 = keep the map's (1.0 for a new OSD) */
	int32_t id;           /* -1: from the data folder, else allocate */
	uint32_t heartbeat_interval_ms; /* 0: 1000 */
	uint32_t heartbeat_grace_ms;    /* 0: 5000 */
	uint32_t beacon_interval_ms;    /* 0: 2000 */
	uint32_t pg_log_max;            /* entries kept per PG log; 0: the store's */
	uint32_t wal_mib;               /* log size before a checkpoint; 0: the store's */
	bool sync_inline;               /* durable commits fdatasync on the loop */
	bool no_clone;                  /* large writes copied even where cloning works */
	/* Scheduled scrubs of the PGs this OSD is primary of, in seconds:
	 * light and deep; 0 never.  main() sets the defaults (86400, 604800). */
	uint32_t scrub_interval_s;
	uint32_t deep_scrub_interval_s;
	/* Recovery throttle (docs/recovery.md, "Throttle"): pushes and pulls
	 * this OSD keeps in flight as a primary, when idle and while clients
	 * are writing or reading here, and the byte rates it keeps to then
	 * (bytes per second; 0 no limit).  main() sets the defaults. */
	uint32_t recovery_max_active;
	uint32_t recovery_max_active_busy;
	uint64_t recovery_max_rate;
	uint64_t recovery_busy_rate;
	/* Share of the disk at which this OSD refuses new data whatever the
	 * map says (0: never); main() sets the default, 0.97. */
	double failsafe_full_ratio;
	/* Never ask for a primary_temp: a primary fetches its whole copy
	 * itself, its PG waiting meanwhile (tests use it). */
	bool no_primary_temp;
	/* Between the tiering agent's passes (ms; 0: 1000). */
	uint32_t agent_interval_ms;
};

/* Run the OSD until SIGTERM/SIGINT.  Returns 0 or a negative errno. */
int mx_osd_run(const struct mx_osd_config *cfg);

#endif

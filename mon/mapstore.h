/*
 * Where a monitor keeps the cluster map.  Backends sit behind an ops struct
 * so the single-monitor file store can be replaced by a replicated log
 * (several monitors agreeing through Raft) without touching the monitor's
 * logic.  A backend is registered by name and refused at start-up if any
 * hook is missing.
 *
 * Contract: commit() makes the map durable (and, for a replicated backend,
 * agreed) before calling done(arg, 0); on failure done gets a negative
 * errno and the monitor keeps its previous map.  done may run before
 * commit() returns (the file backend does) or later on the loop thread.
 * Commits complete in the order they were made.
 */
#ifndef MX_MAPSTORE_H
#define MX_MAPSTORE_H

#include <uv.h>

#include "map.h"

/* How many recent epochs a map store keeps for get(). */
#define MX_MAP_HISTORY 1000

struct mx_mapstore_ops {
	const char *name;
	/* Open the store under dir.  0 and *ctx, or a negative errno. */
	int (*open)(uv_loop_t *loop, const char *dir, void **ctx);
	/* Load the newest committed map.  -ENOENT if there is none yet. */
	int (*load)(void *ctx, struct mx_map **out);
	/* Load the committed map of an older epoch (one of the newest
	 * MX_MAP_HISTORY).  -ENOENT if it is not kept. */
	int (*get)(void *ctx, uint64_t epoch, struct mx_map **out);
	int (*commit)(void *ctx, const struct mx_map *m,
		      void (*done)(void *arg, int status), void *arg);
	void (*close)(void *ctx);
};

extern const struct mx_mapstore_ops mx_mapstore_file;

/* The backend called name, or NULL; a backend with a missing hook is
 * reported and treated as absent. */
const struct mx_mapstore_ops *mx_mapstore_find(const char *name);

#endif

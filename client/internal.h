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

/* Counters of the client's retries, for tests. */
struct mx_client_stats {
	uint64_t ops;
	uint64_t resends;
	uint64_t maps;
};
void mx_client_get_stats(mixsan_cluster_t *cl, struct mx_client_stats *out);

#endif

/*
 * The cluster map: what every monitor, OSD and client agrees on.  It names
 * the monitors, the OSDs (address, up/down, in/out, weight, location in the
 * hierarchy, device class) and the pools (replica counts, PG count, placement
 * rule, tiering settings), stamped with an epoch that grows with every change.
 *
 * The map is plain data: this file has no I/O.  It is encoded with a format
 * version and length-prefixed sections so that later fields can be appended
 * without breaking older decoders (they skip what they do not know).
 */
#ifndef MX_MAP_H
#define MX_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MX_NAME_MAX 64       /* pool, host, bucket and monitor names */
#define MX_CLASS_MAX 32      /* device class label */
#define MX_ADDR_MAX 64       /* "ip:port" */
#define MX_LOC_MAX 8         /* levels in an OSD's location */
#define MX_MAX_OSDS 65536
#define MX_MAX_POOLS 4096
#define MX_MAX_MONS 16
#define MX_MAX_SIZE 10       /* replicas per pool */
#define MX_MAX_PG_NUM 65536

/* 16.16 fixed point: MX_WEIGHT_ONE is a weight of 1.0. */
#define MX_WEIGHT_ONE 0x10000u

/* Levels of the hierarchy, leaf first.  The numbers are on the wire. */
enum mx_level {
	MX_LEVEL_OSD = 0,
	MX_LEVEL_HOST = 1,
	MX_LEVEL_CHASSIS = 2,
	MX_LEVEL_RACK = 3,
	MX_LEVEL_ROW = 4,
	MX_LEVEL_DATACENTER = 5,
	MX_LEVEL_ZONE = 6,
	MX_LEVEL_REGION = 7,
	MX_LEVEL_ROOT = 8,
	MX_LEVEL_COUNT
};

/* "host" -> MX_LEVEL_HOST, or -1. */
int mx_level_from_name(const char *name);
const char *mx_level_name(int level);

struct mx_loc {
	uint8_t level; /* enum mx_level, never MX_LEVEL_OSD */
	char name[MX_NAME_MAX];
};

struct mx_osd_info {
	bool exists;
	bool up;
	bool in;
	uint32_t weight; /* 16.16, the OSD's share of data (e.g. its capacity in TiB) */
	char addr[MX_ADDR_MAX];
	uint64_t up_from;  /* epoch at which it last came up */
	uint64_t incarnation; /* grows at every boot; tells restarts apart */
	uint8_t nloc;
	struct mx_loc loc[MX_LOC_MAX]; /* strictly increasing levels, e.g.
					 host=h1 rack=r1 root=default */
	char device_class[MX_CLASS_MAX]; /* "" = none */
	uint8_t uuid[16];
	uint8_t space; /* enum mx_osd_space: how full its disk is */
};

/* An OSD's disk, as the monitor last judged it from the OSD's reports
 * (docs/recovery.md, "Disk full"). */
enum mx_osd_space {
	MX_SPACE_OK = 0,
	MX_SPACE_NEARFULL = 1, /* a warning */
	MX_SPACE_BACKFILLFULL = 2, /* no backfill into it */
	MX_SPACE_FULL = 3,     /* its PGs refuse writes that add data */
};

enum mx_read_policy {
	MX_READ_PRIMARY = 0,
	MX_READ_BALANCE = 1,
	MX_READ_LOCALIZE = 2,
};

enum mx_cache_mode {
	MX_CACHE_NONE = 0,
	MX_CACHE_WRITEBACK = 1,
	MX_CACHE_READONLY = 2,
};

struct mx_pool {
	int32_t id;
	char name[MX_NAME_MAX];
	uint8_t size;       /* replicas */
	uint8_t min_size;   /* fewest replicas that still serve I/O */
	uint32_t pg_num;
	/* Placement rule: start at the bucket root_name (a bucket of level
	 * MX_LEVEL_ROOT), choose `size` distinct buckets of failure_domain
	 * level, one OSD under each, only OSDs of device_class if set. */
	uint8_t failure_domain; /* enum mx_level */
	char root_name[MX_NAME_MAX];
	char device_class[MX_CLASS_MAX];
	uint8_t read_policy; /* enum mx_read_policy */
	/* Cache tiering (docs/cache-tiering.md).  A pool is a cache (tier_of
	 * set), a base (tier set) or neither, never both; the links are
	 * mutual: pool A's tier is B exactly when B's tier_of is A
	 * (mx_map_tiers_valid).  The cache settings after created_epoch only
	 * matter on a cache pool; every pool carries them, with the defaults
	 * of mx_pool_init until set.  The client library routes requests by
	 * them (client/tier.c); the OSDs' agents flush and evict by them
	 * (osd/agent.c). */
	int32_t tier_of;    /* a cache: the id of its base pool; -1 none */
	int32_t tier;       /* a base: the id of its cache pool; -1 none */
	uint8_t cache_mode; /* enum mx_cache_mode; MX_CACHE_NONE unless a cache */
	uint64_t created_epoch;
	uint64_t target_max_bytes;   /* 0: unset */
	uint64_t target_max_objects; /* 0: unset */
	uint16_t cache_target_dirty_ratio; /* per mille of the target, <= full */
	uint16_t cache_target_full_ratio;  /* per mille of the target, <= 1000 */
	uint8_t promote_min_hits;  /* MX_PROMOTE_HITS_MIN..MX_PROMOTE_HITS_MAX */
	uint32_t hit_period_s;     /* MX_HIT_PERIOD_MIN..MX_HIT_PERIOD_MAX */
	uint8_t flush_all;         /* 0 or 1: the agent flushes every dirty object */
	/* The epoch of the last change to this pool's tier link or mode: OSDs
	 * refuse client requests of an older map (docs/cache-tiering.md,
	 * "Mode changes and fencing").  0: never tiered. */
	uint64_t tier_epoch;
};

/* Defaults and bounds of the cache settings. */
#define MX_CACHE_DIRTY_RATIO_DEFAULT 400 /* per mille */
#define MX_CACHE_FULL_RATIO_DEFAULT 800
#define MX_PROMOTE_HITS_DEFAULT 2
#define MX_PROMOTE_HITS_MIN 1
#define MX_PROMOTE_HITS_MAX 16
#define MX_HIT_PERIOD_DEFAULT 60 /* seconds */
#define MX_HIT_PERIOD_MIN 1
#define MX_HIT_PERIOD_MAX 3600

/* An exception to the placement rule for one PG, set by the balancer:
 * in the rule's result, OSD from[i] is replaced by to[i].  Applied only
 * while valid (to[i] exists, is in, and keeps the failure domains apart). */
struct mx_pg_upmap {
	int32_t pool;
	uint32_t pg;
	uint8_t n;
	int32_t from[MX_MAX_SIZE];
	int32_t to[MX_MAX_SIZE];
};

/* A PG's primary for now, set by the monitor at its primary's request
 * (docs/recovery.md, "primary_temp"): placement puts osd first in the
 * acting set while it is an acting member. */
struct mx_primary_temp {
	int32_t pool;
	uint32_t pg;
	int32_t osd;
};

struct mx_mon_info {
	char name[MX_NAME_MAX];
	char addr[MX_ADDR_MAX];      /* client service */
	/* In a quorum (docs/monitor-quorum.md); 0 and "" for a standalone
	 * monitor. */
	uint64_t raft_id;
	char raft_addr[MX_ADDR_MAX];
};

/* An entity of the auth database (docs/auth.md): monitors only. */
struct mx_auth_entity {
	char name[64];
	uint8_t key[32];
	char caps[192];
	uint32_t generation; /* grows at every rotation */
};

struct mx_map {
	uint64_t epoch;
	uint8_t fsid[16];
	uint64_t modified_ms; /* wall clock of the last change */
	uint32_t n_mons;
	struct mx_mon_info *mons; /* From malloc(); n_mons entries. */
	uint32_t max_osd;
	struct mx_osd_info *osds; /* From malloc(); max_osd entries, index = id. */
	uint32_t n_pools;
	struct mx_pool *pools; /* From malloc(); n_pools entries, sorted by id. */
	int32_t next_pool_id;
	uint32_t n_upmaps;
	struct mx_pg_upmap *upmaps; /* From malloc(); sorted by (pool, pg). */
	uint32_t n_ptemps;
	struct mx_primary_temp *ptemps; /* From malloc(); sorted by (pool, pg). */
	/* Authentication (docs/auth.md).  auth_required is public; the rest
	 * is the monitors' secret, encoded only by mx_map_encode_secret. */
	bool auth_required;
	bool have_secret;
	uint8_t service_secret[32];
	uint32_t n_auth;
	struct mx_auth_entity *auth; /* From malloc(); sorted by name. */
};

struct mx_map *mx_map_new(void);
void mx_map_free(struct mx_map *m);
/* Deep copy.  Returns NULL on allocation failure. */
struct mx_map *mx_map_dup(const struct mx_map *m);

/* Encode the map as everyone may see it (no secrets).  Errors latch in
 * w->err. */
void mx_map_encode(const struct mx_map *m, struct mx_wbuf *w);
/* The whole map with the auth database: for the monitors' own storage and
 * log, never for the network. */
void mx_map_encode_secret(const struct mx_map *m, struct mx_wbuf *w);
/* The auth entity called name, or NULL. */
struct mx_auth_entity *mx_map_auth_find(const struct mx_map *m, const char *name);
/* Add (or replace) an entity, keeping the order.  0 or -ENOMEM. */
int mx_map_auth_set(struct mx_map *m, const struct mx_auth_entity *e);
/* Remove; 0 or -ENOENT. */
int mx_map_auth_rm(struct mx_map *m, const char *name);
/* Decode a map.  Returns 0 and a new map in *out, or -EBADMSG for any
 * malformed input (bounds, counts, names, levels are all checked). */
int mx_map_decode(const void *data, size_t len, struct mx_map **out);

const struct mx_pool *mx_map_pool_by_id(const struct mx_map *m, int32_t id);
const struct mx_pool *mx_map_pool_by_name(const struct mx_map *m, const char *name);
const struct mx_osd_info *mx_map_osd(const struct mx_map *m, int32_t id);

/* Mutations used by the monitor.  Each returns 0 or a negative errno and
 * leaves the map unchanged on failure; none touches the epoch. */
int mx_map_set_max_osd(struct mx_map *m, uint32_t max_osd);
int mx_map_add_pool(struct mx_map *m, const struct mx_pool *p);
int mx_map_remove_pool(struct mx_map *m, int32_t id);
/* The upmap of (pool, pg), or NULL. */
const struct mx_pg_upmap *mx_map_upmap(const struct mx_map *m, int32_t pool, uint32_t pg);
/* Replace every upmap of pool (pool -1: all) with the n given (copied,
 * any order).  0 or -ENOMEM/-EINVAL. */
int mx_map_set_upmaps(struct mx_map *m, int32_t pool, const struct mx_pg_upmap *u, uint32_t n);
/* The primary_temp OSD of (pool, pg), or -1. */
int32_t mx_map_primary_temp(const struct mx_map *m, int32_t pool, uint32_t pg);
/* Set (osd >= 0) or clear (osd < 0) the primary_temp of (pool, pg).
 * 0 or -ENOMEM. */
int mx_map_set_primary_temp(struct mx_map *m, int32_t pool, uint32_t pg, int32_t osd);

/* Zero *p, then set what a new pool has before anything is chosen: no
 * tier links (-1), cache mode none and the cache settings' defaults. */
void mx_pool_init(struct mx_pool *p);

/* Check a location, a pool definition or a name for validity. */
bool mx_valid_name(const char *s);
int mx_pool_validate(const struct mx_pool *p);
/* Whether every tier link of m names an existing pool that links back. */
bool mx_map_tiers_valid(const struct mx_map *m);
/* "none", "writeback", "readonly"; and back (-EINVAL if unknown). */
const char *mx_cache_mode_name(int mode);
int mx_cache_mode_from_name(const char *name);

/* Parse "host=h1 rack=r1 root=default" (space or comma separated) into
 * levels sorted leaf first.  A missing root becomes root=default.
 * Returns 0 or -EINVAL. */
int mx_loc_parse(const char *s, struct mx_loc *loc, uint8_t *nloc);
/* The name of the bucket of level that OSD o's location names, or NULL. */
const char *mx_osd_loc_name(const struct mx_osd_info *o, int level);
/* Format as "host=h1,root=default" into buf. */
void mx_loc_format(const struct mx_loc *loc, uint8_t nloc, char *buf, size_t sz);

#endif

/*
 * nbdkit-mixsan-plugin: serve MixSAN volumes over NBD (docs/volumes.md,
 * "The NBD export").
 *
 *   nbdkit mixsan mon=127.0.0.1:6789 pool=rbd [volume=disk] [keyfile=F] [lease=MS]
 *          [read_policy=balance|localize location="host=H"]
 *          [cache=writethrough|writeback|none] [cache=SIZE] [readahead=SIZE|off]
 *
 * With volume=, every export name serves that volume; without it, the
 * export name is the volume's name and NBD_OPT_LIST lists the pool's
 * volumes.  nbdkit -r (or readonly=1) opens volumes without the writer's
 * lock.  Connections to one volume share one handle, so every connection
 * sees every acknowledged write (multi-conn) and the process holds the
 * volume's lock once.  The cache mode (docs/cache-modes.md): in
 * writethrough (the default) writes are durable on every replica when they
 * complete, so FUA is free and flush waits only for writes in flight; in
 * writeback and none a write completes once every replica has logged it,
 * a flush makes everything completed before it durable, and a FUA write
 * goes out writethrough.
 */
#define NBDKIT_API_VERSION 2
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-plugin.h>

#include "mixsan/mixsan.h"

#define MIN_BLOCK 512u
#define PREF_BLOCK 4096u
#define MAX_REQUEST (32u << 20)
#define MX_CACHE_PIECE (4u << 20)
#define DEFAULT_CACHE (256ull << 20) /* the snapshot cache, docs/vdi-cache.md */

static char *cfg_mon;
static char *cfg_pool;
static char *cfg_volume;
static char *cfg_snapshot;
static char *cfg_keyfile;
static char *cfg_location;
static int cfg_read_policy; /* MIXSAN_READ_* */
static unsigned cfg_lease_ms;
static bool cfg_readonly;
static uint64_t cfg_cache = DEFAULT_CACHE;
static int cfg_cache_mode = MIXSAN_CACHE_WRITETHROUGH;
static uint64_t cfg_readahead; /* 0: the library's default */

static mixsan_cluster_t *cluster;
static mixsan_pool_t *pool;

/* Open volumes, shared by the connections to them. */
struct export {
	struct export *next;
	char *name;
	bool rdonly;
	unsigned refs;
	mixsan_volume_t *vol;
};

static pthread_mutex_t exports_lock = PTHREAD_MUTEX_INITIALIZER;
static struct export *exports;

struct conn {
	struct export *ex;
	bool rdonly;
};

static void mixsan_unload(void)
{
	struct export *e, *next;

	for (e = exports; e; e = next) {
		next = e->next;
		(void)mixsan_volume_close(e->vol);
		free(e->name);
		free(e);
	}
	exports = NULL;
	mixsan_pool_close(pool);
	mixsan_shutdown(cluster);
	free(cfg_mon);
	free(cfg_pool);
	free(cfg_volume);
	free(cfg_snapshot);
	free(cfg_keyfile);
	free(cfg_location);
}

static int set_str(char **dst, const char *value)
{
	free(*dst);
	*dst = strdup(value);
	if (!*dst) {
		nbdkit_error("strdup: %m");
		return -1;
	}
	return 0;
}

static int mixsan_config(const char *key, const char *value)
{
	if (!strcmp(key, "mon"))
		return set_str(&cfg_mon, value);
	if (!strcmp(key, "pool"))
		return set_str(&cfg_pool, value);
	if (!strcmp(key, "volume"))
		return set_str(&cfg_volume, value);
	if (!strcmp(key, "snapshot"))
		return set_str(&cfg_snapshot, value);
	if (!strcmp(key, "keyfile"))
		return set_str(&cfg_keyfile, value);
	if (!strcmp(key, "location"))
		return set_str(&cfg_location, value);
	if (!strcmp(key, "read_policy")) {
		static const char *const names[] = {"default", "primary", "balance", "localize"};

		for (int i = 0; i < 4; i++)
			if (!strcmp(value, names[i])) {
				cfg_read_policy = i;
				return 0;
			}
		nbdkit_error("read_policy must be default, primary, balance or localize: %s",
			     value);
		return -1;
	}
	if (!strcmp(key, "lease")) {
		char *end;
		unsigned long v = strtoul(value, &end, 10);

		if (*end || v < 1000 || v > 3600000) {
			nbdkit_error("lease must be milliseconds between 1000 and 3600000: %s",
				     value);
			return -1;
		}
		cfg_lease_ms = (unsigned)v;
		return 0;
	}
	if (!strcmp(key, "cache")) {
		/* A mode word, or the snapshot cache's size. */
		static const char *const modes[] = {"writethrough", "writeback", "none"};
		int64_t v;

		for (int i = 0; i < 3; i++)
			if (!strcmp(value, modes[i])) {
				cfg_cache_mode = i; /* MIXSAN_CACHE_* */
				return 0;
			}
		if (value[0] < '0' || value[0] > '9') {
			nbdkit_error("cache must be writethrough, writeback, none or a size: %s",
				     value);
			return -1;
		}
		v = nbdkit_parse_size(value);

		if (v < 0)
			return -1;
		cfg_cache = (uint64_t)v;
		return 0;
	}
	if (!strcmp(key, "readahead")) {
		int64_t v;

		if (!strcmp(value, "off")) {
			cfg_readahead = MIXSAN_READAHEAD_OFF;
			return 0;
		}
		v = nbdkit_parse_size(value);
		if (v < 0)
			return -1;
		if (v < 4096 || v > (64 << 20)) {
			nbdkit_error("readahead must be off or between 4K and 64M: %s", value);
			return -1;
		}
		cfg_readahead = (uint64_t)v;
		return 0;
	}
	if (!strcmp(key, "readonly")) {
		int r = nbdkit_parse_bool(value);

		if (r < 0)
			return -1;
		cfg_readonly = r;
		return 0;
	}
	nbdkit_error("unknown parameter '%s' (mon, pool, volume, snapshot, keyfile, lease, "
		     "readonly, read_policy, location, cache, readahead)", key);
	return -1;
}

static int mixsan_config_complete(void)
{
	const char *env = getenv("MIXSAN_MON"), *kenv = getenv("MIXSAN_KEYFILE");

	if (!cfg_mon && env && set_str(&cfg_mon, env) < 0)
		return -1;
	if (!cfg_keyfile && kenv && set_str(&cfg_keyfile, kenv) < 0)
		return -1;
	if (!cfg_mon || !cfg_pool) {
		nbdkit_error("mon= (or $MIXSAN_MON) and pool= are required");
		return -1;
	}
	if (cfg_snapshot && !cfg_volume) {
		nbdkit_error("snapshot= needs volume= (or export VOLUME@SNAPSHOT by name)");
		return -1;
	}
	return 0;
}

#define mixsan_config_help                                                     \
	"mon=<ADDR[,ADDR]>    The monitors (default $MIXSAN_MON).\n"           \
	"pool=<POOL>          (required) The pool holding the volumes.\n"      \
	"volume=<NAME>        Serve this volume (default: the export name,\n" \
	"                     VOLUME or VOLUME@SNAPSHOT).\n"                  \
	"snapshot=<NAME>      Serve this snapshot of volume= (read-only).\n"   \
	"keyfile=<FILE>       The key to act as, for a cluster with keys\n"   \
	"                     (default $MIXSAN_KEYFILE).\n"                   \
	"lease=<MS>           The writer's lease (default 30000).\n"           \
	"readonly=<BOOL>      Open volumes read-only, without the lock.\n"     \
	"read_policy=<P>      Reads from: default (the pool's), primary,\n"   \
	"                     balance, localize (docs/read-policies.md).\n"  \
	"location=<LOC>       This host's place, \"host=H rack=R\" (localize).\n" \
	"cache=<MODE>         writethrough (default), writeback or none\n"   \
	"                     (docs/cache-modes.md).\n"                    \
	"cache=<SIZE>         RAM cache of snapshot data shared by every clone\n" \
	"                     served (default 256M; 0: none).\n"            \
	"readahead=<SIZE>|off Read-ahead of that cache (default 1M)."

/* Connect after nbdkit forks: the library runs its own thread. */
static int mixsan_after_fork(void)
{
	struct mixsan_options o = {.connect_timeout_ms = 10000, .keyfile = cfg_keyfile,
				   .read_policy = cfg_read_policy, .location = cfg_location,
				   .snap_cache_bytes = cfg_cache, .readahead_bytes = cfg_readahead};
	int r = mixsan_connect(cfg_mon, &o, &cluster);

	if (r < 0) {
		nbdkit_error("cannot reach the monitors at %s: %s", cfg_mon,
			     *mixsan_connect_error() ? mixsan_connect_error() : strerror(-r));
		return -1;
	}
	r = mixsan_pool_open(cluster, cfg_pool, &pool);
	if (r < 0) {
		nbdkit_error("pool %s: %s", cfg_pool, r == -ENOENT ? "no such pool" : strerror(-r));
		return -1;
	}
	return 0;
}

static int list_cb(void *arg, const char *name)
{
	return nbdkit_add_export(arg, name, NULL);
}

static int mixsan_list_exports(int readonly, int is_tls, struct nbdkit_exports *exps)
{
	int r;

	if (cfg_volume)
		return nbdkit_add_export(exps, "", cfg_volume);
	r = mixsan_volume_list(pool, list_cb, exps);
	if (r < 0) {
		nbdkit_error("listing the volumes of pool %s: %s", cfg_pool, strerror(-r));
		return -1;
	}
	return 0;
}

static const char *mixsan_default_export(int readonly, int is_tls)
{
	return cfg_volume ? "" : NULL;
}

/* The shared handle of a volume, opened at its first connection. */
static struct export *export_get(const char *name, bool rdonly)
{
	struct mixsan_volume_options o = {
		.flags = rdonly ? MIXSAN_VOLUME_RDONLY : 0,
		.lease_ms = cfg_lease_ms,
		.cache_mode = cfg_cache_mode,
	};
	char vol[MIXSAN_VOLUME_NAME_MAX + MIXSAN_SNAP_NAME_MAX + 2], *at;
	struct export *e;
	int r;

	/* VOLUME@SNAPSHOT: the snapshot, read-only. */
	snprintf(vol, sizeof(vol), "%s", name);
	at = strchr(vol, '@');
	if (at) {
		*at = '\0';
		o.snapshot = at + 1;
		o.flags = MIXSAN_VOLUME_RDONLY;
	}
	pthread_mutex_lock(&exports_lock);
	for (e = exports; e; e = e->next)
		if (!strcmp(e->name, name) && e->rdonly == rdonly)
			break;
	if (e) {
		e->refs++;
		pthread_mutex_unlock(&exports_lock);
		return e;
	}
	e = calloc(1, sizeof(*e));
	if (!e || !(e->name = strdup(name))) {
		pthread_mutex_unlock(&exports_lock);
		free(e);
		nbdkit_error("out of memory");
		return NULL;
	}
	r = mixsan_volume_open(pool, vol, &o, &e->vol);
	if (r < 0) {
		pthread_mutex_unlock(&exports_lock);
		if (r == -ENOENT)
			nbdkit_error("no volume or snapshot %s in pool %s", name, cfg_pool);
		else if (r == -EBUSY)
			nbdkit_error("volume %s is open for writing elsewhere (its lock is "
				     "held); serve it read-only or stop the other writer",
				     name);
		else
			nbdkit_error("opening volume %s: %s", name, strerror(-r));
		nbdkit_set_error(-r);
		free(e->name);
		free(e);
		return NULL;
	}
	e->rdonly = rdonly;
	e->refs = 1;
	e->next = exports;
	exports = e;
	pthread_mutex_unlock(&exports_lock);
	nbdkit_debug("opened volume %s%s", name, rdonly ? " read-only" : "");
	return e;
}

/* The last connection closes the volume (and frees its lock). */
static void export_put(struct export *e)
{
	struct export **pp;
	int r;

	pthread_mutex_lock(&exports_lock);
	if (--e->refs > 0) {
		pthread_mutex_unlock(&exports_lock);
		return;
	}
	for (pp = &exports; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	/* Closed under the lock: a connection arriving meanwhile must not
	 * find the writer's lock still held by this handle. */
	r = mixsan_volume_close(e->vol);
	pthread_mutex_unlock(&exports_lock);
	if (r < 0)
		nbdkit_error("closing volume %s: %s", e->name, strerror(-r));
	free(e->name);
	free(e);
}

static void *mixsan_open(int readonly)
{
	const char *name = cfg_volume ? cfg_volume : nbdkit_export_name();
	char full[MIXSAN_VOLUME_NAME_MAX + MIXSAN_SNAP_NAME_MAX + 2];
	struct conn *h;

	if (cfg_volume && cfg_snapshot) {
		snprintf(full, sizeof(full), "%s@%s", cfg_volume, cfg_snapshot);
		name = full;
	}
	if (!name || !*name) {
		nbdkit_error("no volume: give volume= or use the volume's name as the export "
			     "name");
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		nbdkit_error("out of memory");
		return NULL;
	}
	h->rdonly = readonly || cfg_readonly || strchr(name, '@');
	h->ex = export_get(name, h->rdonly);
	if (!h->ex) {
		free(h);
		return NULL;
	}
	return h;
}

static void mixsan_close(void *handle)
{
	struct conn *h = handle;

	export_put(h->ex);
	free(h);
}

static int64_t mixsan_get_size(void *handle)
{
	struct conn *h = handle;

	return (int64_t)mixsan_volume_size(h->ex->vol);
}

static int mixsan_block_size(void *handle, uint32_t *minimum, uint32_t *preferred,
			     uint32_t *maximum)
{
	*minimum = MIN_BLOCK;
	*preferred = PREF_BLOCK;
	*maximum = MAX_REQUEST;
	return 0;
}

static int mixsan_can_write(void *handle)
{
	return !((struct conn *)handle)->rdonly;
}

static int mixsan_can_true(void *handle)
{
	return 1;
}

static int mixsan_can_fua(void *handle)
{
	return NBDKIT_FUA_NATIVE;
}

static int mixsan_can_cache(void *handle)
{
	return NBDKIT_CACHE_NATIVE;
}

/* Requests must keep to the advertised minimum block size, except a tail
 * that ends at the end of a volume whose size is not a multiple of it. */
static int check_aligned(struct conn *h, uint32_t count, uint64_t offset)
{
	uint64_t size = mixsan_volume_size(h->ex->vol);

	if (offset % MIN_BLOCK == 0 && (count % MIN_BLOCK == 0 || offset + count == size))
		return 0;
	nbdkit_error("request %" PRIu64 "+%u is not aligned to %u bytes", offset, count,
		     MIN_BLOCK);
	nbdkit_set_error(EINVAL);
	return -1;
}

/* Reads and writes carry at most the advertised maximum. */
static int check_payload(uint32_t count)
{
	if (count <= MAX_REQUEST)
		return 0;
	nbdkit_error("request of %u bytes is over the maximum of %u", count, MAX_REQUEST);
	nbdkit_set_error(EINVAL);
	return -1;
}

static int fail(const char *what, uint32_t count, uint64_t offset, int err)
{
	nbdkit_error("%s %" PRIu64 "+%u: %s", what, offset, count, strerror(err));
	/* What NBD has words for passes; the rest (a lost lock, a timeout,
	 * a checksum failure on every copy...) is an I/O error. */
	switch (err) {
	case EINVAL:
	case ENOSPC:
	case ENOTSUP:
	case EPERM:
	case ENOMEM:
	case EOVERFLOW:
		nbdkit_set_error(err);
		break;
	default:
		nbdkit_set_error(EIO);
	}
	return -1;
}

static int mixsan_pread(void *handle, void *buf, uint32_t count, uint64_t offset,
			uint32_t flags)
{
	struct conn *h = handle;
	int64_t r;

	if (check_payload(count) < 0 || check_aligned(h, count, offset) < 0)
		return -1;
	r = mixsan_volume_read(h->ex->vol, buf, count, offset);
	if (r < 0)
		return fail("read", count, offset, (int)-r);
	if ((uint64_t)r != count)
		return fail("read", count, offset, EINVAL);
	return 0;
}

static int mixsan_pwrite(void *handle, const void *buf, uint32_t count, uint64_t offset,
			 uint32_t flags)
{
	struct conn *h = handle;
	int r;

	if (check_payload(count) < 0 || check_aligned(h, count, offset) < 0)
		return -1;
	r = mixsan_volume_write_flags(h->ex->vol, buf, count, offset,
				      (flags & NBDKIT_FLAG_FUA) ? MIXSAN_WRITE_FUA : 0);
	return r < 0 ? fail("write", count, offset, -r) : 0;
}

static int mixsan_flush(void *handle, uint32_t flags)
{
	struct conn *h = handle;
	int r = mixsan_volume_flush(h->ex->vol);

	return r < 0 ? fail("flush", 0, 0, -r) : 0;
}

static int mixsan_trim(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
	struct conn *h = handle;
	int r;

	if (check_aligned(h, count, offset) < 0)
		return -1;
	r = mixsan_volume_discard(h->ex->vol, count, offset);
	return r < 0 ? fail("trim", count, offset, -r) : 0;
}

static int mixsan_zero(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
	struct conn *h = handle;
	int r;

	if (check_aligned(h, count, offset) < 0)
		return -1;
	r = mixsan_volume_write_zeroes(h->ex->vol, count, offset,
				       (flags & NBDKIT_FLAG_FAST_ZERO) ? MIXSAN_ZERO_FAST : 0);
	if (r == -ENOTSUP) {
		nbdkit_set_error(ENOTSUP); /* fast zeroing refused, nothing changed */
		return -1;
	}
	return r < 0 ? fail("zero", count, offset, -r) : 0;
}

/* CACHE: read the range ahead (the library keeps no cache; this warms the
 * OSDs' page cache), in bounded pieces, and drop the data. */
static int mixsan_cache(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
	struct conn *h = handle;
	uint32_t piece = MX_CACHE_PIECE;
	uint8_t *buf = malloc(piece);
	int64_t r = 0;

	if (!buf)
		return fail("cache", count, offset, ENOMEM);
	while (count && r >= 0) {
		uint32_t n = count < piece ? count : piece;

		r = mixsan_volume_read(h->ex->vol, buf, n, offset);
		offset += n;
		count -= n;
	}
	free(buf);
	return r < 0 ? fail("cache", count, offset, (int)-r) : 0;
}

struct extents_ctx {
	struct nbdkit_extents *ex;
	bool one;
	int err;
};

static int extent_cb(void *arg, uint64_t off, uint64_t len, int data)
{
	struct extents_ctx *x = arg;

	if (nbdkit_add_extent(x->ex, off, len, data ? 0 : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO) <
	    0) {
		x->err = errno ? errno : EIO;
		return 1;
	}
	return x->one ? 1 : 0; /* REQ_ONE: the first extent is enough */
}

static int mixsan_extents(void *handle, uint32_t count, uint64_t offset, uint32_t flags,
			  struct nbdkit_extents *ex)
{
	struct conn *h = handle;
	struct extents_ctx x = {.ex = ex, .one = flags & NBDKIT_FLAG_REQ_ONE};
	int r = mixsan_volume_extents(h->ex->vol, offset, count, extent_cb, &x);

	if (x.err)
		return fail("block status", count, offset, x.err);
	if (r < 0)
		return fail("block status", count, offset, -r);
	return 0;
}

static void mixsan_dump_plugin(void)
{
	int major, minor, patch;

	mixsan_version(&major, &minor, &patch);
	printf("mixsan_version=%d.%d.%d\n", major, minor, patch);
}

static struct nbdkit_plugin plugin = {
	.name = "mixsan",
	.longname = "MixSAN block volumes",
	.version = "0.1.0",
	.description = "Serves MixSAN volumes over NBD.",
	.unload = mixsan_unload,
	.config = mixsan_config,
	.config_complete = mixsan_config_complete,
	.config_help = mixsan_config_help,
	.after_fork = mixsan_after_fork,
	.list_exports = mixsan_list_exports,
	.default_export = mixsan_default_export,
	.open = mixsan_open,
	.close = mixsan_close,
	.get_size = mixsan_get_size,
	.block_size = mixsan_block_size,
	.can_write = mixsan_can_write,
	.can_flush = mixsan_can_true,
	.can_trim = mixsan_can_true,
	.can_zero = mixsan_can_true,
	.can_fast_zero = mixsan_can_true,
	.can_fua = mixsan_can_fua,
	.can_multi_conn = mixsan_can_true,
	.can_extents = mixsan_can_true,
	.can_cache = mixsan_can_cache,
	.pread = mixsan_pread,
	.pwrite = mixsan_pwrite,
	.flush = mixsan_flush,
	.trim = mixsan_trim,
	.zero = mixsan_zero,
	.extents = mixsan_extents,
	.cache = mixsan_cache,
	.dump_plugin = mixsan_dump_plugin,
	.errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN(plugin)

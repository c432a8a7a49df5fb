/*
 * The system-test harness: real daemons (one monitor, N OSDs) on loopback
 * ports in a temporary folder, which tests kill, stop and restart.
 *
 * Environment:
 *   MIXSAN_BUILD_ROOT  where the daemons were built (set by meson)
 *   MIXSAN_TEST_KEEP   keep the temporary folder (and print it)
 *   MIXSAN_TEST_MON    use an already-running cluster at this monitor
 *                      address instead of starting one (for debugging under
 *                      gdb); tests that kill daemons skip themselves then.
 */
#ifndef MX_HARNESS_H
#define MX_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "mixsan/mixsan.h"

#define H_MAX_OSDS 16
#define H_MAX_MONS 5

struct h_cluster {
	char dir[256];
	char mon_addr[64 * H_MAX_MONS]; /* all monitors, comma separated */
	int mon_port;
	pid_t mon_pid;
	/* A quorum (docs/monitor-quorum.md): set n_mons > 0 before h_start
	 * to start that many monitors a, b, c... with --mons (logs mon.a,
	 * mon.b...); 0 starts one standalone monitor (log "mon"). */
	int n_mons;
	pid_t mon_pids[H_MAX_MONS];
	char mon_addrs[H_MAX_MONS][32];
	char mon_raft[H_MAX_MONS][32];
	char mon_spec[64 * 2 * H_MAX_MONS];
	int n_osds;
	pid_t osd_pids[H_MAX_OSDS];
	char osd_loc[H_MAX_OSDS][64];
	char osd_class[H_MAX_OSDS][32]; /* --class of OSD i; "" none */
	/* OSD i's data folder if set (an existing folder, e.g. on another
	 * file system; left in place by h_stop), else DIR/osd.i. */
	char osd_data[H_MAX_OSDS][256];
	bool external;
	/* Extra arguments for the daemons, space separated (set before
	 * h_start / h_start_osd). */
	char mon_args[256];
	char osd_args[256];
	/* If set, every OSD's folder is a tmpfs of this many MiB, mounted
	 * before the OSD first starts and unmounted by h_stop (kept data is
	 * lost then); the test exits 77 (skipped) if it cannot mount. */
	unsigned osd_tmpfs_mib;
	bool osd_mounted[H_MAX_OSDS];
	/* Authentication (docs/auth.md): set before h_start to create the
	 * cluster with --auth; the admin key is then in admin_key, each OSD's
	 * in its folder, and h_connect uses the admin key. */
	bool auth;
	char admin_key[300];
	/* Secured Raft links: set mon_key before h_start with n_mons > 0 to
	 * make a monitor key (DIR/mon.key) that every monitor gets with
	 * --mon-keyfile mon_keyfile; a test may point mon_keyfile elsewhere
	 * before h_start_mon. */
	bool mon_key;
	char mon_keyfile[300];
	/* h_connect's snapshot cache (docs/vdi-cache.md), bytes; 0: none. */
	uint64_t snap_cache_bytes;
};

/* Start a monitor and n OSDs (all in one host unless locations are given
 * with h_set_location before), wait until all are up.  Exits on failure. */
void h_start(struct h_cluster *c, int n_osds);
/* Give OSD i a location before h_start / h_start_osd. */
void h_set_location(struct h_cluster *c, int i, const char *loc);
void h_start_osd(struct h_cluster *c, int i);
/* In a quorum: (re)start monitor i, send it sig (SIGKILL/SIGTERM reap it). */
void h_start_mon(struct h_cluster *c, int i);
/* Start monitor i with an empty folder and --join (for `mon add`). */
void h_join_mon(struct h_cluster *c, int i);
void h_signal_mon(struct h_cluster *c, int i, int sig);
/* Monitor i's `mon status` answer (see docs/monitor-quorum.md) into buf;
 * 0 or a negative errno. */
int h_mon_status(struct h_cluster *c, int i, char *buf, size_t sz);
/* The index of the monitor that leads, as monitor `ask` sees it; -1 if
 * none. */
int h_mon_leader(struct h_cluster *c, int ask);
/* Ask the monitor at addr alone, on a blocking socket, for the map of
 * epoch (0: its newest).  0 and *out (free with mx_map_free), or a
 * negative errno (-EAGAIN: it redirected; -ENOENT: not kept). */
struct mx_map;
int h_fetch_map(const char *addr, uint64_t epoch, struct mx_map **out);
/* A blocking TCP connection to addr with 5 s timeouts: fd or -errno. */
int h_raw_connect(const char *addr);
/* One message (type, tid, payload w) on a fresh connection to addr, and
 * the first answer: its header in *h and payload in *payload (free()).
 * 0 or a negative errno (then *payload is NULL). */
struct mx_wbuf;
struct mx_msg_hdr;
int h_raw_request(const char *addr, uint16_t type, uint64_t tid, const struct mx_wbuf *w,
		  struct mx_msg_hdr *h, uint8_t **payload);
/* Write (wr) or read exactly n bytes: 0, -ECONNRESET at EOF, or -errno. */
int h_io_all(int fd, void *buf, size_t n, bool wr);
/* Send sig to OSD i and, for SIGKILL/SIGTERM, reap it. */
void h_signal_osd(struct h_cluster *c, int i, int sig);
/* The number of OSDs up in the client's map. */
int h_count_up(mixsan_cluster_t *cl);
/* Wait until the map shows n OSDs up (timeout in s).  0 or -ETIMEDOUT. */
int h_wait_up(struct h_cluster *c, mixsan_cluster_t *cl, int n, int timeout_s);
/* Wait up to timeout_s for c: its result, or -ETIMEDOUT (still pending). */
int64_t h_wait_completion(mixsan_completion_t *c, int timeout_s);
/* Stop everything (SIGTERM, then SIGKILL) and remove the folder. */
void h_stop(struct h_cluster *c);
/* Connect a client (exits on failure). */
mixsan_cluster_t *h_connect(struct h_cluster *c);
/* A monitor command that must succeed (exits on failure, with the
 * monitor's reason), and "pool set" of one key. */
void h_cmd(mixsan_cluster_t *cl, const char *prefix, const char *const *kv, size_t n);
void h_pool_set(mixsan_cluster_t *cl, const char *pool, const char *key, const char *val);
/* Create a pool (exits on failure). */
void h_pool_create(mixsan_cluster_t *cl, const char *name, int size, int pg_num,
		   const char *failure_domain);
/* The path of OSD i's data folder. */
void h_osd_dir(const struct h_cluster *c, int i, char *buf, size_t sz);
/* Count lines of a daemon's log containing needle (log: "mon" or "osd.N"). */
int h_log_count(const struct h_cluster *c, const char *log, const char *needle);

/* Damage a stored block: find the file under dir that holds needle (nlen
 * bytes) at a 4 KiB-aligned offset and flip one bit at that offset + delta.
 * Returns 1 if done, 0 if no file holds needle. */
int h_flip_in_tree(const char *dir, const uint8_t *needle, size_t nlen, size_t delta);

/* The monitor's `status` answer (docs/health.md), parsed (free with
 * json_decref), or NULL. */
struct json_t;
struct json_t *h_status(mixsan_cluster_t *cl);
/* Wait up to timeout_s for HEALTH_OK with every PG active+clean.  0, or
 * -ETIMEDOUT with the last verdict and its checks in why. */
int h_wait_health_ok(mixsan_cluster_t *cl, int timeout_s, char *why, size_t sz);

/* Deterministic pseudo-random numbers (xorshift64*). */
uint64_t h_rand(uint64_t *state);
/* rounds of random writes (60%), discards (20%) and zeroing (20%; half of
 * it MIXSAN_ZERO_FAST where fast_zero, which may be refused) of up to
 * max_len bytes on volume v, mirrored in model (size bytes). */
void h_volume_random_ops(mixsan_volume_t *v, uint8_t *model, uint64_t size, uint64_t seed,
			 int rounds, uint64_t max_len, bool fast_zero);
void h_fill(uint64_t seed, void *buf, size_t len);

/* Test bookkeeping: like CHECK in unit tests. */
extern int h_failures;
#define H_CHECK(cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			h_failures++;                                          \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,  \
				__LINE__, #cond);                              \
		}                                                              \
	} while (0)
#define H_FATAL(...)                                                           \
	do {                                                                   \
		fprintf(stderr, "FATAL %s:%d: ", __FILE__, __LINE__);          \
		fprintf(stderr, __VA_ARGS__);                                  \
		fputc('\n', stderr);                                           \
		exit(1);                                                       \
	} while (0)

#endif

struct mx_map;
struct mx_store;
/* Open OSD i's object store (the OSD stopped).  0 or a negative errno. */
int h_open_store(const struct h_cluster *c, int i, struct mx_store **out);
/* With every OSD stopped: open each OSD's object store and check that every
 * object of pool_id sits exactly on its acting set under map m, in distinct
 * failure domains, with identical size, version, attributes and data on
 * every replica.  Returns the number of problems; *objects gets the count
 * of distinct objects seen. */
int h_check_replicas(struct h_cluster *c, const struct mx_map *m, int32_t pool_id,
		     uint64_t *objects);
/* The end of a test: wait (up to 180 s) for HEALTH_OK, close p and cl, stop
 * every OSD (SIGTERM), then
 * h_check_replicas of p's pool under the client's last map. */
int h_shutdown_check_replicas(struct h_cluster *c, mixsan_cluster_t *cl, mixsan_pool_t *p,
			      uint64_t *objects);

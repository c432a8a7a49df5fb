/*
 * The OSD daemon's internals, shared by its parts: osd.c (sessions,
 * client requests, replication, heartbeats, the monitor, start-up), pg.c
 * (peering, recovery, backfill, the map history), scrub.c and pgstats.c.
 * Nothing here is an interface outside mixsan-osd.
 */
#ifndef MX_OSD_INT_H
#define MX_OSD_INT_H

#include "osd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "crc32c.h"
#include "list.h"
#include "log.h"
#include "map.h"
#include "authconn.h"
#include "bootmark.h"
#include "monlist.h"
#include "msg.h"
#include "net.h"
#include "peering.h"
#include "placement.h"
#include "store.h"
#include "util.h"

#define DEDUP_SLOTS 4096
#define PG_BUCKETS 4096
#define LIST_MAX_ENTRIES 4096
#define LIST_MAX_BYTES (1u << 20)
#define MON_RETRY_MS 500
#define PEER_RETRY_MS 200
#define PG_TICK_MS 500
/* Read leases (docs/read-policies.md): their length, and how long a new
 * interval waits when a lease of an earlier one may still run (10 % for
 * clock rates, and 100 ms). */
#define MX_READ_LEASE_NS (3000ull * 1000000ull)
#define MX_LEASE_WAIT_NS (MX_READ_LEASE_NS + MX_READ_LEASE_NS / 10 + 100ull * 1000000ull)
#define REC_SLOTS_MAX 64
#define STATS_TICK_MS 250  /* look for PG state changes to report */
#define STATS_EVERY_MS 1000 /* report to the monitor at least this often */

/* An accepted connection: a client or a primary replicating to us.
 * Reference-counted: requests in flight hold a reference so their reply can
 * find out whether the connection is still there. */
struct session {
	struct mx_conn *conn; /* NULL once closed */
	int refs;
};

/* An outgoing connection to a peer OSD, for replication. */
struct peer {
	struct osd *osd;
	int32_t id;
	struct mx_conn *conn;
	char addr[MX_ADDR_MAX];
	uint64_t incarnation;
	struct mx_list pending; /* struct repop_out, in send order */
	uv_timer_t retry;
	bool timer_init;
	/* Heartbeats */
	bool hb;               /* shares a PG with us: ping it */
	uint64_t last_rx_ns;   /* last PONG (or when pinging began) */
	uint64_t last_report_ns;
	uint64_t hb_incarnation; /* the life of the peer being pinged */
	int refused;           /* connection attempts refused in a row */
	uint64_t gen;          /* bumped on every new connection */
	/* Read leases (docs/read-policies.md): */
	uint64_t grant_ns;     /* our PING time its last fitting PONG answered */
	uint64_t pong_epoch;   /* the newest epoch its PONGs carried, any life */
	uint64_t rlease_until_ns; /* its lease to us, as its primary, by our clock */
	uint64_t rlease_epoch; /* its map epoch when it granted that */
};

struct pgstate;
struct scrub;

/* A client write in progress on the primary. */
struct pop {
	struct mx_list commit_link; /* in osd->commit_pops, then maybe
				     * osd->sync_pops, while !local_done */
	struct mx_list pg_link;     /* in pg->pops until finished */
	struct pgstate *pg;         /* NULL once finished or failed over */
	struct session *s;
	uint64_t tid;
	uint64_t client_id;
	int waiting;     /* replica acknowledgements still to come */
	bool local_done; /* committed in our store */
	int status;      /* first error, or 0 */
	struct mx_version ver;
	uint8_t n_ops;
	int32_t rvals[MX_MSG_MAX_OPS];
	char *name;      /* From malloc(): the object's name */
	uint32_t name_len;
	/* The encoded REPOP, logged (MX_REPOP_LOG), sent to every complete
	 * member without a copy each; and the same without the flag, for
	 * members still recovering, made when first needed. */
	struct mx_shared *repop;
	struct mx_shared *repop_nolog;
	int refs;        /* repop_out entries + 1 while not finished */
	bool flush;      /* a FLUSH: no transaction; local_done after a sync */
	bool wb;         /* a writeback write: an unsynced commit suffices */
	uint64_t ticket; /* in sync_pops: the frames it waits for */
};

struct repop_out {
	struct mx_list link;
	struct pop *pop;
	uint64_t tid;
	bool nolog; /* send repop_nolog */
	bool sync;  /* an OSD_SYNC for a FLUSH (pop->flush), not a REPOP */
};

/* A reply (REPOP_REPLY, ACTIVATE_REPLY, PUSH_REPLY) waiting for the local
 * commit that makes what it acknowledges durable. */
struct rwait {
	struct mx_list link;
	struct session *s;
	uint64_t tid;
	uint16_t type;
	struct mx_wbuf w; /* the encoded reply */
	uint64_t ticket;  /* in sync_rwaits: the frames it waits for */
};

/* A message kept for later: a client op waiting for its PG to activate,
 * or a peer's message stamped with an epoch newer than our map. */
struct held {
	struct mx_list link;
	struct session *s; /* holds a reference */
	uint16_t type;
	uint64_t tid;
	uint64_t epoch; /* deferred until our map reaches it */
	uint64_t ns;    /* when it was held */
	uint64_t ticket; /* osd->sync_ops: runs once the store holds it durable */
	uint64_t khash;  /* osd->sync_ops: its object (key_hash) */
	uint32_t len;
	uint8_t *payload; /* From malloc() */
};

/* A PG log in memory (a peer's, from its notify, or ours). */
struct pglog {
	struct mx_pg_info info;
	struct mx_pglog_entry *e; /* From malloc(); names from malloc() too */
	size_t n, cap;
};

/* An object some copy must receive (pull to the primary, or push to a
 * member). */
struct missing {
	struct missing *next;
	char *name; /* From malloc() */
	uint32_t len;
	bool inflight; /* requested or sent, no answer yet */
	bool dirty;    /* written while in flight: send again after */
	uint64_t gen;  /* connection generation it was sent on */
	uint64_t tid;  /* of the push */
};

#define PRIOR_MAX 16

struct pgpeer {
	int32_t osd;
	bool answered;
	bool suspect; /* its copy may lack writes it acknowledged (MX_PGI_SUSPECT) */
	uint64_t gen; /* connection generation the query went on */
	struct pglog log;
	/* A stray (outside the acting set) once the PG is clean: */
	bool rm_sent, rm_done; /* PG_REMOVE sent; answered */
	uint64_t rm_gen;       /* connection generation it went on */
};

enum { ROLE_NONE = 0, ROLE_PRIMARY, ROLE_REPLICA };
/* Primary states (see the state machine at the top). */
enum { PG_PEERING = 1, PG_SCANNING, PG_PULLING, PG_ACTIVATING, PG_ACTIVE, PG_STUCK,
       PG_WAIT_TEMP };
/* Replica states. */
enum { R_WAITING = 1, R_RECOVERING, R_ACTIVE };
/* A member as the primary sees it. */
enum { M_NONE = 0, M_RECOVERING, M_COMPLETE };

struct member {
	int state;
	bool acked;     /* its les for this interval is durable */
	bool act_sent;
	bool act_acked; /* recovering: it accepts this interval's pushes */
	bool backfill;  /* recovering from a wiped copy */
	uint64_t act_gen;
	uint64_t act_ns; /* when the activation was last sent */
	struct missing *miss;
	int n_miss;
	uint64_t progress_ns; /* recovering: last activation answer or push done */
	bool stall_warned;
};

/* What the PG statistics remember of a PG between two reports (NOTES ON
 * PG STATISTICS). */
struct pgstat_track {
	bool reported;        /* sent_state is valid */
	uint32_t sent_state;  /* MX_PGS_* last sent */
	uint64_t interval;    /* of the last sample of missing */
	uint64_t missing;     /* copies still to recover then */
	uint64_t recovered_objects, recovered_bytes; /* cumulative */
	uint64_t scrub_ms, deep_scrub_ms; /* wall clock of the last ones; 0 none */
	bool inconsistent;    /* the last scrub left differences unrepaired */
};

struct pgstate {
	struct pgstate *next;
	int32_t pool;
	uint32_t pg;
	struct mx_version lu; /* last_update as staged in our store */
	uint64_t interval;    /* first epoch of the current interval; 0: unknown */
	uint8_t n_up, n_acting;
	int32_t up[MX_MAX_SIZE], acting[MX_MAX_SIZE];
	uint64_t inc[MX_MAX_SIZE]; /* incarnations of the acting members */
	int role, state;
	/* Primary: writeback writes acknowledged with a version epoch below
	 * this may be lost (docs/cache-modes.md); set by peering. */
	uint64_t wb_lost;
	/* Primary: peering. */
	int n_peers;
	struct pgpeer peers[PRIOR_MAX]; /* peers[0] is ourselves */
	int auth;
	struct missing *pulls;
	int n_pulls;
	/* PG_SCANNING: the authority's listing, chunk by chunk. */
	char *scan_cursor;  /* From malloc(): the last name received; NULL at first */
	uint64_t scan_tid, scan_gen;
	char **scan_names;  /* From malloc(), each too: every name it holds */
	size_t scan_n, scan_cap;
	struct member mem[MX_MAX_SIZE]; /* by acting index; mem[0] is us */
	bool warned;
	int32_t temp_want;   /* PG_WAIT_TEMP: the OSD asked for as primary */
	uint64_t temp_since_ns; /* when we began to wait for it */
	bool no_temp;        /* none came: fetch our copy ourselves instead */
	struct mx_list ops;  /* struct held: client ops waiting for activation
				or for the end of a scrub (writes) */
	struct mx_list pops; /* struct pop in flight */
	/* Primary: scrub (see NOTES ON SCRUB). */
	struct scrub *scrub;  /* From malloc(): the scrub in progress; NULL if none */
	uint64_t scrub_ns, deep_scrub_ns; /* monotonic time of the last ones; 0: none */
	struct pgstat_track st; /* PG statistics */
	/* Primary: not active before this (monotonic ns; 0: no wait), while
	 * read leases of earlier intervals may run (docs/read-policies.md). */
	uint64_t lease_wait_ns;
	bool lease_warned;
};

struct dedup {
	uint64_t client_id, tid;
	int32_t status;
	struct mx_version ver;
	uint8_t n_ops;
	int32_t rvals[MX_MSG_MAX_OPS];
};

struct osd {
	const struct mx_osd_config *cfg;
	struct mx_bootmark boot; /* suspect_below: docs/cache-modes.md */
	uv_loop_t *loop;
	uv_tcp_t server;
	uv_check_t check;
	struct mx_netbatch batch; /* replies and REPOPs, one write per peer */
	uv_signal_t sigterm, sigint;
	uv_timer_t mon_timer;
	uv_timer_t hb_timer;
	uint32_t hb_interval_ms, hb_grace_ms, beacon_ms;
	uint64_t last_beacon_ns;
	char addr[MX_ADDR_MAX]; /* bound address, announced to the monitor */
	char store_dir[4096];
	int lock_fd;               /* data_dir/lock, held while running */
	char keyfile[4200];        /* the key file in use; "" none */
	struct mx_agent *agent;    /* cache tiering's agent (agent.c) */
	int32_t id;
	uint8_t uuid[16];
	struct mx_store *store;
	struct mx_map *map;        /* newest map; owned */
	struct mx_placement *pl;   /* of map; owned */
	struct mx_acting_memo acting; /* acting sets of map's PGs, as asked for */
	struct mx_conn *mon;
	struct mx_monlist monl;  /* the monitors known (docs/monitor-quorum.md) */
	/* Authentication (docs/auth.md): our key and ticket, and how we
	 * check those who connect. */
	bool use_auth;
	struct mx_auth_client auth;
	struct mx_auth_server auth_srv;
	uint64_t renew_ns;
	unsigned mon_delay_ms;   /* before the next connection (a redirect's) */
	struct mx_monlive mon_live; /* the session's liveness (mon_check) */
	bool mon_connected;
	bool booted;
	bool booting;
	bool stopping;
	uint64_t next_tid;
	struct peer **peers; /* indexed by OSD id; n_peers entries */
	uint32_t n_peers;
	struct mx_list commit_pops;   /* struct pop waiting for the local commit */
	struct mx_list commit_rwaits; /* struct rwait waiting for the local commit */
	/* Writeback (docs/cache-modes.md): records staged by writeback writes
	 * and REPOPs since the last commit; when they are all that is staged
	 * and nothing asked for a sync, the group commit is unsynced. */
	size_t wb_records;
	bool sync_wanted;      /* a FLUSH, or a reply that needs durability */
	/* The pipelined group commit (docs/osd.md, "Group commit"): a commit
	 * that needs durability is logged unsynced, and one fdatasync at a
	 * time runs on a worker thread while the loop logs the next groups.
	 * What waits for durability is here, in commit order, each with the
	 * ticket (mx_store_log_seq()) its frames are below. */
	struct mx_list sync_pops;   /* struct pop, by commit_link */
	struct mx_list sync_rwaits; /* struct rwait */
	/* Client requests that would read an object's unsynced frames wait
	 * here for the worker's sync (docs/osd.md, "Reads of unsynced
	 * writes"), and requests for the same object queue behind them:
	 * struct held, in arrival order, tickets not decreasing. */
	struct mx_list sync_ops;
	bool op_retry;          /* handle_op runs a request from sync_ops */
	bool op_again;          /* and it must wait again, for again_ticket */
	uint64_t again_ticket;
	uint64_t ops_waited;    /* requests that waited there */
	uv_work_t sync_work;
	struct mx_store_sync sync;
	bool sync_running;
	/* The write-back timer found unsynced frames: the next sync that
	 * begins covers them (wb_tick). */
	bool wb_due;
	bool sync_inline; /* --sync-inline: every fdatasync on the loop */
	uv_timer_t wb_timer;   /* syncs what stayed unsynced for a while */
	struct pgstate *pgs[PG_BUCKETS];
	struct dedup *dedup; /* DEDUP_SLOTS entries */
	/* Map history: hist[e - hist_base] holds epoch e (NULL while being
	 * fetched from the monitor); the newest is map/pl above. */
	struct mx_map **hist;
	struct mx_placement **hist_pl;
	uint64_t hist_base;
	size_t hist_len;
	bool hist_ready; /* every epoch from hist_base to the newest is here */
	struct mx_list deferred; /* struct held: peer messages from the future */
	uint64_t deferred_warned_ns;
	uv_timer_t pg_timer;
	int n_scrubs; /* PGs with a scrub in progress */
	/* Recovery throttle (see NOTES ON THE RECOVERY THROTTLE). */
	struct rec_slot {
		uint64_t tid, ns;
	} rec[REC_SLOTS_MAX];   /* pushes and pulls in flight */
	int n_rec;
	size_t rec_cursor;      /* PG bucket the next pump starts at */
	int64_t rec_tokens;     /* bytes the rate allows now; may go below 0 */
	uint64_t rec_refill_ns; /* when rec_tokens was last refilled */
	uint64_t client_ns;     /* last client request or replicated write */
	uv_timer_t rec_timer;   /* pumps again once the rate allows */
	uint32_t rec_active, rec_active_busy;
	uint64_t rec_rate, rec_busy_rate;
	/* Our disk (space_used_ratio). */
	uint64_t fs_ns;             /* when statvfs last ran; 0: never */
	uint64_t fs_total, fs_used; /* bytes, as it said then */
	uint64_t fs_queued;         /* bytes queued to the store since */
	uint64_t fs_frees;          /* removals and truncations since the
				       last checkpoint space_tick forced */
	uv_timer_t stats_timer;
	uint64_t stats_sent_ns; /* when the last PG_STATS went */
};


/* osd.c, pg.c, scrub.c, pgstats.c: what each offers the others. */

struct list_ctx {
	struct mx_wbuf *w;
	uint32_t n, max;
	bool more;
};

/* osd.c */
void dispatch(struct osd *osd, struct session *s, uint16_t type, uint64_t tid, uint8_t *payload,
	      uint32_t len);
void session_put(struct session *s);
int session_send(struct session *s, uint16_t type, uint64_t tid, struct mx_wbuf *w);
struct pgstate *pg_get(struct osd *osd, int32_t pool, uint32_t pg);
struct pgstate *pg_find(struct osd *osd, int32_t pool, uint32_t pg);
void fatal_store(int r);
void commit_now(struct osd *osd);
void commit_group(struct osd *osd);
void reply_after_commit_wb(struct osd *osd, struct session *s, uint16_t type, uint64_t tid,
			   struct mx_wbuf *w);
void handle_sync(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
		 uint32_t len);
void flush_if_pending(struct osd *osd, const struct mx_objkey *key);
void pop_unref(struct pop *p);
void reply_after_commit(struct osd *osd, struct session *s, uint16_t type, uint64_t tid,
			struct mx_wbuf *w);
void pop_finish(struct osd *osd, struct pop *p);
struct peer *peer_get(struct osd *osd, int32_t id);
uint64_t lease_left_ns(struct osd *osd);
void repop_send(struct osd *osd, struct peer *p, struct repop_out *ro);
struct missing *missing_find(struct missing *l, const char *name, uint32_t len);
void space_note_txn(struct osd *osd, const struct mx_txn *txn);
bool space_failsafe(struct osd *osd);
void space_tick(struct osd *osd);
uint8_t osd_space(const struct osd *osd, int32_t id);
void hold(struct osd *osd, struct mx_list *l, struct session *s, uint16_t type,
	  uint64_t tid, uint64_t epoch, const uint8_t *payload, uint32_t len);
void handle_op(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
	       uint32_t len);
int list_cb(void *arg, const struct mx_objkey *key, const struct mx_obj_stat *st);
void peer_kick(struct osd *osd, struct peer *p);
/* pg.c */
int encode_object(struct osd *osd, const struct mx_pg_ref *ref, const char *name,
		  uint32_t len, struct mx_wbuf *w);
int apply_object(struct osd *osd, const struct mx_msg_pg_object *o);
int replica_check(struct osd *osd, struct session *s, uint16_t type, uint64_t tid,
		  uint64_t epoch, int32_t pool, uint32_t pg, uint64_t interval,
		  const uint8_t *payload, uint32_t len, struct pgstate **out);
void handle_repop(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
		  uint32_t len);
void handle_pg_query(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
		     uint32_t len);
void handle_pg_activate(struct osd *osd, struct session *s, uint64_t tid,
			uint8_t *payload, uint32_t len);
void handle_pg_push(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
		    uint32_t len);
void handle_pg_pull(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
		    uint32_t len);
void handle_pg_remove(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
		      uint32_t len);
void handle_pg_scan(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
		    uint32_t len);
uint64_t peer_send_tid(struct osd *osd, int32_t id, uint16_t type, struct mx_wbuf *w,
		       uint64_t *tid);
bool maybe_lost(struct osd *osd, int32_t id, uint64_t gen);
struct mx_pg_ref pg_ref(struct osd *osd, const struct pgstate *pgs);
const struct mx_pool *pg_pool(struct osd *osd, const struct pgstate *pgs);
void run_held_ops(struct osd *osd, struct pgstate *pgs);
void pg_clear_primary(struct osd *osd, struct pgstate *pgs);
void pg_send_query(struct osd *osd, struct pgstate *pgs, struct pgpeer *pp);
void pg_send_scan(struct osd *osd, struct pgstate *pgs);
int member_index(const struct pgstate *pgs, int32_t id);
void pg_try_peer(struct osd *osd, struct pgstate *pgs);
void rec_done(struct osd *osd, uint64_t tid);
void rec_requeue_lost(struct osd *osd, struct missing *m, int32_t to);
void pg_send_activate(struct osd *osd, struct pgstate *pgs, int i, uint64_t les,
		      bool with_log);
void pg_remove_strays(struct osd *osd, struct pgstate *pgs);
void on_pg_notify(struct osd *osd, struct peer *p, uint8_t *payload, uint32_t len);
void on_pg_activate_reply(struct osd *osd, struct peer *p, uint8_t *payload, uint32_t len);
void on_pg_push_reply(struct osd *osd, struct peer *p, uint64_t tid, uint8_t *payload,
		      uint32_t len);
void on_scan_reply(struct osd *osd, struct peer *p, uint64_t tid, uint8_t *payload,
		   uint32_t len);
void on_pg_remove_reply(struct osd *osd, struct peer *p, uint8_t *payload, uint32_t len);
void on_pull_answer(struct osd *osd, struct peer *p, uint8_t *payload, uint32_t len);
void hist_check_ready(struct osd *osd);
void hist_drop(struct osd *osd, uint64_t upto);
void hist_put(struct osd *osd, struct mx_map *m, struct mx_placement *pl);
void pgs_update(struct osd *osd);
void replay_deferred(struct osd *osd);
void pg_tick(uv_timer_t *t);
void peer_on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, uint8_t *payload);
void pg_tick_one(struct osd *osd, struct pgstate *pgs);
/* pgstats.c */
void stats_tick(uv_timer_t *t);
/* scrub.c */
void on_scrub_map_reply(struct osd *osd, struct peer *p, uint64_t tid, uint8_t *payload,
			uint32_t len);
bool scrub_on_pull_answer(struct osd *osd, struct peer *p, uint64_t tid, uint8_t *payload,
			  uint32_t len);
bool scrub_on_push_reply(struct osd *osd, struct peer *p, uint64_t tid, uint8_t *payload,
			 uint32_t len);
bool scrub_is_deep(const struct scrub *sc);
void scrub_free(struct scrub *sc);
void scrub_abort(struct osd *osd, struct pgstate *pgs);
void handle_pg_scrub(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
		     uint32_t len);
void handle_scrub_map(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
		      uint32_t len);
void scrub_tick(struct osd *osd, struct pgstate *pgs);
void scrub_schedule(struct osd *osd);

#endif

/*
 * mixsan-osd: the OSD daemon.
 *
 * One thread, one libuv loop, no locks.  The OSD listens for clients and
 * for primaries of the PGs it replicates, keeps a connection to the
 * monitor (booting and subscribing to map epochs), and keeps one outgoing
 * connection per peer OSD it replicates to.
 *
 * NOTES ON THE REQUEST STATE MACHINE
 *
 * A client request (MX_MSG_OSD_OP) on the primary:
 *
 *   received --(map older than the client's)--> EAGAIN reply, client retries
 *   received --(not primary in my map)--------> ESTALE reply with my epoch
 *   received --(acting set < min_size)--------> EAGAIN reply
 *   received --(reads)--> executed on committed state --> replied
 *   received --(writes)--> planned (plan_write: logical ops become a
 *       physical transaction with a new version) --> queued in the store and
 *       sent to every other acting OSD (REPOP) --> waiting
 *   waiting --(local commit: on_check)--> local_done
 *   waiting --(REPOP_REPLY from each replica)--> acks
 *   local_done and all acks --> replied (pop_finish)
 *
 * Invariants:
 *  - A write is acknowledged to a client only when it is durable in the
 *    store of every OSD of the acting set (local commit and every replica's
 *    REPOP_REPLY, which a replica sends only after its own commit).
 *  - The store never holds two staged transactions on one object: a request
 *    touching an object with a staged transaction commits first
 *    (flush_if_pending), so planning always reads committed state and a
 *    read never sees an uncommitted write.
 *  - Replication to one peer is in order: REPOPs go over one connection in
 *    the order they were planned; after a reconnection the unacknowledged
 *    ones are resent in the same order.  Replicated transactions are
 *    physical (absolute bytes, sizes and versions), so a resent one that
 *    was already applied changes nothing.
 *  - A failed store commit (EIO, ENOSPC) stops the daemon: nothing that
 *    store holds can be trusted until it is reopened and replayed.
 *
 * Heartbeats (docs/recovery.md): every heartbeat interval the OSD pings each
 * peer it shares a PG with (hb_tick) and reports to the monitor a peer
 * silent for longer than the grace, or one whose port refuses connections
 * twice in a row; it also sends the monitor a beacon.  The monitor decides.
 *
 * NOTES ON PEERING AND RECOVERY (docs/recovery.md, "What is built")
 *
 * Every write is logged (txn.log with the request identity); replicas log
 * the REPOPs flagged MX_REPOP_LOG.  A resend is recognised among the writes
 * in flight (pg->pops) or in the PG log (mx_store_pg_find_req).
 *
 * Each OSD keeps the maps since it booted plus the older epochs it fetches
 * (hist_put, want_epoch).  pgs_update recomputes every PG's interval on each
 * map: its first epoch such that up set, acting set and the incarnations of
 * the acting members are unchanged since.  A new interval fails the PG's
 * writes in flight with EAGAIN (pg_fail_pops) and restarts peering.
 *
 * Primary (pg->state):
 *   PEERING   --(pg_start_peering: PG_QUERY to the prior set)
 *             --(on_pg_notify: every acting member answered and
 *                mx_peering_blocked_by() == -1; pg_try_peer)-->
 *   SCANNING  if another copy is authoritative and ours predates its log
 *             tail (pg_try_peer): PG_SCAN lists its copy chunk by chunk
 *             (handle_pg_scan there, on_scan_reply here); objects in
 *             another version there or missing here, and objects here it
 *             lacks, become the pulls -->
 *   PULLING   if another copy is authoritative: PG_PULL each object of
 *             mx_log_diff(auth, mine), or of the scan (on_pull_answer
 *             applies it unlogged); then pg_pulls_done adopts its log and
 *             les
 *   ACTIVATING (pg_activate: our les persisted; per member: PG_ACTIVATE
 *             complete, or recovering + PG_PUSH of each missing object and
 *             a final PG_ACTIVATE with our log: member_maybe_complete;
 *             backfill = wipe + push everything)
 *   ACTIVE    once min_size members (us included) have made their les
 *             durable (pg_check_active); held client ops run then.
 *   ACTIVE and clean (size members, acting == up, every member complete
 *             and acked): pg_remove_strays sends PG_REMOVE to every other
 *             OSD of the prior set that is up; on_pg_remove_reply.
 *   STUCK     our log cannot be replaced by the authority's (store
 *             error): the PG serves nothing until the next interval.
 * Replica (R_WAITING -> R_RECOVERING -> R_ACTIVE): handle_pg_activate;
 * REPOP, PUSH and ACTIVATE are accepted only for our current interval
 * (replica_check), deferred while our map is older than the message.
 * Stray (ROLE_NONE, a copy outside the acting set): answers PG_QUERY and
 * PG_SCAN like anyone; handle_pg_remove drops the copy only when its own
 * map agrees that the sender is the primary of the PG's current interval,
 * which the message names, and that the stray is outside its up and
 * acting sets, with a les older than that interval.
 * A copy never persists a les or a log it does not fully hold.
 * Lost messages: everything is re-sent by pg_tick when the connection it
 * went on was replaced (connection generations), never over a live one.
 */
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
};

struct pgstate;
struct scrub;

/* A client write in progress on the primary. */
struct pop {
	struct mx_list commit_link; /* in osd->commit_pops while !local_done */
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
	uint8_t *repop;  /* From malloc(): the encoded logged REPOP payload */
	size_t repop_len;
	uint8_t *repop_nolog; /* From malloc(): the same without MX_REPOP_LOG */
	size_t repop_nolog_len;
	int refs;        /* repop_out entries + 1 while not finished */
};

struct repop_out {
	struct mx_list link;
	struct pop *pop;
	uint64_t tid;
	bool nolog; /* send repop_nolog */
};

/* A reply (REPOP_REPLY, ACTIVATE_REPLY, PUSH_REPLY) waiting for the local
 * commit that makes what it acknowledges durable. */
struct rwait {
	struct mx_list link;
	struct session *s;
	uint64_t tid;
	uint16_t type;
	struct mx_wbuf w; /* the encoded reply */
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
	uv_loop_t *loop;
	uv_tcp_t server;
	uv_check_t check;
	uv_signal_t sigterm, sigint;
	uv_timer_t mon_timer;
	uv_timer_t hb_timer;
	uint32_t hb_interval_ms, hb_grace_ms, beacon_ms;
	uint64_t last_beacon_ns;
	char addr[MX_ADDR_MAX]; /* bound address, announced to the monitor */
	char store_dir[4096];
	int32_t id;
	uint8_t uuid[16];
	struct mx_store *store;
	struct mx_map *map;        /* newest map; owned */
	struct mx_placement *pl;   /* of map; owned */
	struct mx_conn *mon;
	bool mon_connected;
	bool booted;
	bool booting;
	bool stopping;
	uint64_t next_tid;
	struct peer **peers; /* indexed by OSD id; n_peers entries */
	uint32_t n_peers;
	struct mx_list commit_pops;   /* struct pop waiting for the local commit */
	struct mx_list commit_rwaits; /* struct rwait waiting for the local commit */
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

static struct osd g_osd;

static void peer_kick(struct osd *osd, struct peer *p);
static void rec_pump(struct osd *osd);
static void mon_connect(struct osd *osd);
static bool pg_members(const struct mx_map *m, const struct mx_placement *pl, int32_t pool_id,
		       uint32_t pg, int32_t *up, int *nu, int32_t *act, int *na, uint64_t *inc);
static uint64_t pg_interval_first(struct osd *osd, int32_t pool_id, uint32_t pg,
				  const int32_t *up, int nu, const int32_t *act, int na,
				  const uint64_t *inc);

/* Sessions -------------------------------------------------------------- */

static void session_put(struct session *s)
{
	if (--s->refs == 0)
		free(s);
}

static int session_send(struct session *s, uint16_t type, uint64_t tid, struct mx_wbuf *w)
{
	if (!s->conn) {
		mx_wbuf_free(w);
		return -ENOTCONN;
	}
	return mx_conn_send(s->conn, type, tid, w);
}

/* PG state --------------------------------------------------------------- */

static struct pgstate *pg_get(struct osd *osd, int32_t pool, uint32_t pg)
{
	uint64_t h = mx_hash64(&pg, sizeof(pg), (uint64_t)(uint32_t)pool) % PG_BUCKETS;
	struct pgstate *s;

	for (s = osd->pgs[h]; s; s = s->next)
		if (s->pool == pool && s->pg == pg)
			return s;
	s = mx_xcalloc(1, sizeof(*s));
	s->pool = pool;
	s->pg = pg;
	{
		struct mx_pg_info info;
		struct mx_version last = mx_store_pg_last(osd->store, pool, pg);

		(void)mx_store_pg_info_get(osd->store, pool, pg, &info);
		s->lu = info.last_update;
		/* Unlogged versions count too: a new version must exceed them. */
		if (mx_version_cmp(last, s->lu) > 0)
			s->lu = last;
	}
	mx_list_init(&s->ops);
	mx_list_init(&s->pops);
	s->next = osd->pgs[h];
	osd->pgs[h] = s;
	return s;
}

static struct pgstate *pg_find(struct osd *osd, int32_t pool, uint32_t pg)
{
	uint64_t h = mx_hash64(&pg, sizeof(pg), (uint64_t)(uint32_t)pool) % PG_BUCKETS;

	for (struct pgstate *s = osd->pgs[h]; s; s = s->next)
		if (s->pool == pool && s->pg == pg)
			return s;
	return NULL;
}

/* Store commits ----------------------------------------------------------- */

static void fatal_store(int r)
{
	mx_err("object store commit failed: %s; stopping (restart replays the log)",
	       strerror(-r));
	exit(1);
}

static void pop_finish(struct osd *osd, struct pop *p);
static void scrub_abort(struct osd *osd, struct pgstate *pgs);
static void scrub_tick(struct osd *osd, struct pgstate *pgs);
static void scrub_schedule(struct osd *osd);
static void scrub_free(struct scrub *sc);

/* Commit everything staged, then release what waited for it. */
static void commit_now(struct osd *osd)
{
	struct mx_list pops, rwaits, *pos, *tmp;
	int r;

	if (mx_store_pending_count(osd->store) == 0)
		return;
	r = mx_store_commit(osd->store);
	if (r < 0)
		fatal_store(r);
	mx_list_init(&pops);
	mx_list_init(&rwaits);
	mx_list_splice_tail(&pops, &osd->commit_pops);
	mx_list_splice_tail(&rwaits, &osd->commit_rwaits);
	mx_list_for_each_safe(pos, tmp, &rwaits) {
		struct rwait *w = mx_list_entry(pos, struct rwait, link);

		mx_list_del(pos);
		(void)session_send(w->s, w->type, w->tid, &w->w);
		session_put(w->s);
		free(w);
	}
	mx_list_for_each_safe(pos, tmp, &pops) {
		struct pop *p = mx_list_entry(pos, struct pop, commit_link);

		mx_list_del(pos);
		p->local_done = true;
		if (p->waiting == 0)
			pop_finish(osd, p);
	}
}

static void flush_if_pending(struct osd *osd, const struct mx_objkey *key)
{
	if (mx_store_pending(osd->store, key))
		commit_now(osd);
}

/* Runs once per loop iteration after I/O: group commit. */
static void on_check(uv_check_t *h)
{
	commit_now(h->data);
}

/* Replies ----------------------------------------------------------------- */

static void reply_status(struct osd *osd, struct session *s, uint64_t tid, int err)
{
	struct mx_wbuf w;

	mx_wbuf_init(&w);
	mx_enc_osd_op_reply_head(&w, mx_errno_to_wire(err), osd->map ? osd->map->epoch : 0, 0,
				 0, 0);
	(void)session_send(s, MX_MSG_OSD_OP_REPLY, tid, &w);
}

static struct dedup *dedup_slot(struct osd *osd, uint64_t client_id, uint64_t tid)
{
	uint64_t k[2] = {client_id, tid};

	return &osd->dedup[mx_hash64(k, sizeof(k), 0) % DEDUP_SLOTS];
}

static void pop_unref(struct pop *p)
{
	if (--p->refs == 0) {
		free(p->repop);
		free(p->repop_nolog);
		free(p->name);
		free(p);
	}
}

/* Send w as a reply on s after the next commit. */
static void reply_after_commit(struct osd *osd, struct session *s, uint16_t type, uint64_t tid,
			       struct mx_wbuf *w)
{
	struct rwait *rw = mx_xcalloc(1, sizeof(*rw));

	rw->s = s;
	s->refs++;
	rw->tid = tid;
	rw->type = type;
	rw->w = *w;
	mx_list_add_tail(&osd->commit_rwaits, &rw->link);
}

static void pop_finish(struct osd *osd, struct pop *p)
{
	struct mx_wbuf w;
	struct dedup *d;

	if (p->pg) {
		mx_list_del(&p->pg_link);
		p->pg = NULL;
	}
	if (p->status == 0) {
		d = dedup_slot(osd, p->client_id, p->tid);
		d->client_id = p->client_id;
		d->tid = p->tid;
		d->status = 0;
		d->ver = p->ver;
		d->n_ops = p->n_ops;
		memcpy(d->rvals, p->rvals, sizeof(d->rvals));
	}
	mx_wbuf_init(&w);
	mx_enc_osd_op_reply_head(&w, mx_errno_to_wire(p->status), osd->map->epoch,
				 p->ver.epoch, p->ver.seq, p->status ? 0 : p->n_ops);
	for (uint8_t i = 0; !p->status && i < p->n_ops; i++)
		mx_enc_osd_op_result(&w, p->rvals[i], NULL, 0);
	(void)session_send(p->s, MX_MSG_OSD_OP_REPLY, p->tid, &w);
	session_put(p->s);
	p->s = NULL;
	pop_unref(p);
}

/* Reads ------------------------------------------------------------------- */

static bool reserved_xattr(const char *name)
{
	return strncmp(name, MX_XATTR_RESERVED, strlen(MX_XATTR_RESERVED)) == 0;
}

static int list_xattr_cb(void *arg, const char *xname, const void *value, uint32_t len)
{
	struct mx_wbuf *w = arg;

	if (reserved_xattr(xname))
		return 0;
	mx_put_str(w, xname);
	mx_put_blob(w, value, len);
	return w->err;
}

static int count_xattr_cb(void *arg, const char *xname, const void *value, uint32_t len)
{
	(void)value;
	(void)len;
	if (!reserved_xattr(xname))
		(*(uint32_t *)arg)++;
	return 0;
}

static void do_reads(struct osd *osd, struct session *s, uint64_t tid,
		     const struct mx_msg_osd_op *m, const struct mx_objkey *key)
{
	struct mx_obj_stat st;
	struct mx_wbuf w;
	int r = mx_store_stat(osd->store, key, &st);

	if (r < 0) {
		reply_status(osd, s, tid, r);
		return;
	}
	mx_wbuf_init(&w);
	mx_enc_osd_op_reply_head(&w, 0, osd->map->epoch, st.version.epoch, st.version.seq,
				 m->n_ops);
	for (uint8_t i = 0; i < m->n_ops; i++) {
		const struct mx_osd_op *o = &m->ops[i];

		switch (o->op) {
		case MX_OP_READ: {
			uint32_t len = o->len, got = 0;
			size_t at;
			uint8_t *dst;

			if (o->off >= st.size)
				len = 0;
			else if (o->off + len > st.size)
				len = (uint32_t)(st.size - o->off);
			dst = mx_enc_osd_op_result_reserve(&w, 0, len, &at);
			if (!dst) {
				r = -ENOMEM;
				goto fail;
			}
			r = len ? mx_store_read(osd->store, key, o->off, len, dst, &got) : 0;
			if (r < 0) {
				if (r == -EIO)
					mx_err("checksum mismatch reading pool %d pg %u object "
					       "'%.*s' at %" PRIu64 "+%u",
					       key->pool, key->pg, (int)key->name_len, key->name,
					       o->off, len);
				goto fail;
			}
			mx_enc_osd_op_result_finish(&w, at, 0, got);
			break;
		}
		case MX_OP_STAT: {
			struct mx_wbuf sb;
			struct mx_osd_stat os = {
				.size = st.size,
				.ver_epoch = st.version.epoch,
				.ver_seq = st.version.seq,
				.mtime_ms = st.mtime_ms,
			};

			mx_wbuf_init(&sb);
			mx_osd_stat_encode(&sb, &os);
			mx_enc_osd_op_result(&w, 0, sb.data, (uint32_t)sb.len);
			mx_wbuf_free(&sb);
			break;
		}
		case MX_OP_GETXATTR: {
			void *val = NULL;
			uint32_t len = 0;

			r = reserved_xattr(o->xname)
				    ? -ENODATA
				    : mx_store_getxattr(osd->store, key, o->xname, &val, &len);
			if (r == -ENODATA) {
				mx_enc_osd_op_result(&w, mx_errno_to_wire(r), NULL, 0);
				break;
			}
			if (r < 0)
				goto fail;
			mx_enc_osd_op_result(&w, 0, val, len);
			free(val);
			break;
		}
		case MX_OP_LISTXATTRS: {
			struct mx_wbuf lb;
			uint32_t n = 0;

			mx_wbuf_init(&lb);
			(void)mx_store_listxattrs(osd->store, key, count_xattr_cb, &n);
			mx_put_u32(&lb, n);
			r = mx_store_listxattrs(osd->store, key, list_xattr_cb, &lb);
			if (r < 0 || lb.err) {
				r = r < 0 ? r : lb.err;
				mx_wbuf_free(&lb);
				goto fail;
			}
			mx_enc_osd_op_result(&w, 0, lb.data, (uint32_t)lb.len);
			mx_wbuf_free(&lb);
			break;
		}
		default:
			r = -EINVAL;
			goto fail;
		}
	}
	(void)session_send(s, MX_MSG_OSD_OP_REPLY, tid, &w);
	return;
fail:
	mx_wbuf_free(&w);
	reply_status(osd, s, tid, r);
}

/* Writes ------------------------------------------------------------------ */

/* Turn the logical ops of a request into one physical transaction on the
 * committed state of the object.  Fills txops (at most MX_TXN_MAX_OPS
 * entries) and rvals; returns the op count or a negative errno (nothing
 * changes). */
static int plan_write(struct osd *osd, const struct mx_msg_osd_op *m,
		      const struct mx_objkey *key, struct mx_txn_op *txops, int32_t *rvals)
{
	struct mx_obj_stat st;
	bool exists = mx_store_stat(osd->store, key, &st) == 0;
	uint64_t size = exists ? st.size : 0;
	int n = 0;

	for (uint8_t i = 0; i < m->n_ops; i++) {
		const struct mx_osd_op *o = &m->ops[i];
		struct mx_txn_op *t = &txops[n];

		memset(t, 0, sizeof(*t));
		rvals[i] = 0;
		switch (o->op) {
		case MX_OP_WRITE:
			if (o->off > MX_OBJ_SIZE_MAX || o->data_len > MX_OBJ_SIZE_MAX - o->off)
				return -EFBIG;
			t->type = MX_TXN_WRITE;
			t->off = o->off;
			t->data = o->data;
			t->len = o->data_len;
			if (o->data_len == 0)
				t->type = MX_TXN_CREATE; /* creates, never extends */
			else
				size = MX_MAX(size, o->off + o->data_len);
			exists = true;
			n++;
			break;
		case MX_OP_WRITEFULL:
			t->type = MX_TXN_TRUNCATE;
			t->size = 0;
			n++;
			t = &txops[n];
			memset(t, 0, sizeof(*t));
			t->type = o->data_len ? MX_TXN_WRITE : MX_TXN_CREATE;
			t->off = 0;
			t->data = o->data;
			t->len = o->data_len;
			size = o->data_len;
			exists = true;
			n++;
			break;
		case MX_OP_APPEND:
			if (o->data_len > MX_OBJ_SIZE_MAX - size)
				return -EFBIG;
			t->type = o->data_len ? MX_TXN_WRITE : MX_TXN_CREATE;
			t->off = size;
			t->data = o->data;
			t->len = o->data_len;
			size += o->data_len;
			exists = true;
			n++;
			break;
		case MX_OP_TRUNCATE:
			if (o->off > MX_OBJ_SIZE_MAX)
				return -EFBIG;
			t->type = MX_TXN_TRUNCATE;
			t->size = o->off;
			size = o->off;
			exists = true;
			n++;
			break;
		case MX_OP_REMOVE:
			if (!exists)
				return -ENOENT;
			t->type = MX_TXN_REMOVE;
			size = 0;
			exists = false;
			n++;
			break;
		case MX_OP_CREATE:
			if (exists && (o->flags & MX_OP_FLAG_EXCL))
				return -EEXIST;
			t->type = MX_TXN_CREATE;
			exists = true;
			n++;
			break;
		case MX_OP_SETXATTR:
			if (!o->xname[0] || strlen(o->xname) > MX_XATTR_NAME_MAX ||
			    o->data_len > MX_XATTR_VALUE_MAX || reserved_xattr(o->xname))
				return -EINVAL;
			t->type = MX_TXN_SETXATTR;
			t->xname = o->xname;
			t->data = o->data;
			t->len = o->data_len;
			exists = true;
			n++;
			break;
		case MX_OP_RMXATTR: {
			void *v = NULL;
			uint32_t l;
			int r;

			if (reserved_xattr(o->xname))
				return -EINVAL;
			if (!exists)
				return -ENOENT;
			if (i == 0) {
				r = mx_store_getxattr(osd->store, key, o->xname, &v, &l);
				free(v);
				if (r < 0)
					return r;
			}
			t->type = MX_TXN_RMXATTR;
			t->xname = o->xname;
			n++;
			break;
		}
		default:
			return -EINVAL;
		}
	}
	(void)exists;
	return n;
}

static void encode_repop(struct mx_wbuf *w, const struct mx_msg_osd_op *m,
			 const struct mx_txn *txn, uint64_t epoch, uint64_t interval, bool log)
{
	struct mx_msg_repop rp;

	memset(&rp, 0, sizeof(rp));
	rp.tail.interval = interval;
	rp.tail.flags = log ? MX_REPOP_LOG : 0;
	rp.tail.client_id = txn->client_id;
	rp.tail.tid = txn->tid;
	rp.epoch = epoch;
	rp.pool = m->pool;
	rp.pg = m->pg;
	rp.name = m->name;
	rp.name_len = m->name_len;
	rp.ver_epoch = txn->version.epoch;
	rp.ver_seq = txn->version.seq;
	rp.n_ops = (uint8_t)txn->n_ops;
	for (uint32_t i = 0; i < txn->n_ops; i++) {
		rp.ops[i].type = txn->ops[i].type;
		rp.ops[i].off = txn->ops[i].off;
		rp.ops[i].size = txn->ops[i].size;
		rp.ops[i].xname = txn->ops[i].xname;
		rp.ops[i].data = txn->ops[i].data;
		rp.ops[i].data_len = txn->ops[i].len;
	}
	mx_enc_repop(w, &rp);
}

static struct peer *peer_get(struct osd *osd, int32_t id)
{
	struct peer *p;

	if ((uint32_t)id >= osd->n_peers) {
		uint32_t n = (uint32_t)id + 1;
		struct peer **np = realloc(osd->peers, n * sizeof(*np));

		if (!np)
			return NULL;
		memset(np + osd->n_peers, 0, (n - osd->n_peers) * sizeof(*np));
		osd->peers = np;
		osd->n_peers = n;
	}
	p = osd->peers[id];
	if (!p) {
		p = mx_xcalloc(1, sizeof(*p));
		p->osd = osd;
		p->id = id;
		mx_list_init(&p->pending);
		osd->peers[id] = p;
	}
	return p;
}

static void repop_send(struct osd *osd, struct peer *p, struct repop_out *ro)
{
	struct mx_wbuf w;
	uint8_t *d;

	if (!p->conn)
		return;
	mx_wbuf_init(&w);
	if (ro->nolog) {
		d = mx_wbuf_reserve(&w, ro->pop->repop_nolog_len);
		if (d) {
			memcpy(d, ro->pop->repop_nolog, ro->pop->repop_nolog_len);
			w.len = ro->pop->repop_nolog_len;
		}
	} else {
		d = mx_wbuf_reserve(&w, ro->pop->repop_len);
		if (d) {
			memcpy(d, ro->pop->repop, ro->pop->repop_len);
			w.len = ro->pop->repop_len;
		}
	}
	(void)mx_conn_send(p->conn, MX_MSG_OSD_REPOP, ro->tid, &w);
	(void)osd;
}

static struct missing *missing_find(struct missing *l, const char *name, uint32_t len)
{
	for (; l; l = l->next)
		if (l->len == len && memcmp(l->name, name, len) == 0)
			return l;
	return NULL;
}

static void reply_done(struct osd *osd, struct session *s, uint64_t tid, int32_t status,
		       struct mx_version ver, uint8_t n_ops, const int32_t *rvals)
{
	struct mx_wbuf w;

	mx_wbuf_init(&w);
	mx_enc_osd_op_reply_head(&w, status, osd->map->epoch, ver.epoch, ver.seq, n_ops);
	for (uint8_t i = 0; i < n_ops; i++)
		mx_enc_osd_op_result(&w, rvals ? rvals[i] : 0, NULL, 0);
	(void)session_send(s, MX_MSG_OSD_OP_REPLY, tid, &w);
}

/* A write on an active PG (pgs->state == PG_ACTIVE, we are its primary).
 * Every write is logged with its request identity: a resend is found in
 * the PG log (mx_store_pg_find_req) or among the writes in flight, and
 * answered without a second application. */
/*
 * Disk space (docs/recovery.md, "Disk full").  The monitor judges every
 * OSD's disk from its reports and marks it nearfull, backfillfull or full
 * in the map; a primary refuses with ENOSPC every write that may add data
 * to a PG with a full member, and, whatever the map says, once its own
 * disk has reached the failsafe ratio.  Removals, attribute removals and
 * truncations go on, so space can be freed.  A member past the failsafe
 * ratio refuses pushes (recovery waits), and no backfill goes to a member
 * marked backfillfull.
 */
#define FS_CHECK_NS (50ull * 1000000ull)

/* The share of our disk in use: statvfs at most every FS_CHECK_NS, plus
 * the bytes queued since. */
static double space_used_ratio(struct osd *osd)
{
	uint64_t now = mx_now_ns();

	if (!osd->fs_ns || now - osd->fs_ns > FS_CHECK_NS) {
		struct statvfs sv;

		if (statvfs(osd->cfg->data_dir, &sv) == 0 && sv.f_blocks) {
			osd->fs_total = (uint64_t)sv.f_blocks * sv.f_frsize;
			osd->fs_used = osd->fs_total - (uint64_t)sv.f_bavail * sv.f_frsize;
			osd->fs_queued = 0;
		}
		osd->fs_ns = now;
	}
	if (!osd->fs_total)
		return 0;
	return (double)(osd->fs_used + osd->fs_queued) / (double)osd->fs_total;
}

/* Count the transaction's removals and truncations: they free space only
 * at the store's next checkpoint, which space_tick brings forward when
 * the disk is short of room. */
static void space_note_txn(struct osd *osd, const struct mx_txn *txn)
{
	for (uint32_t i = 0; i < txn->n_ops; i++)
		if (txn->ops[i].type == MX_TXN_REMOVE || txn->ops[i].type == MX_TXN_TRUNCATE)
			osd->fs_frees++;
}

static bool space_failsafe(struct osd *osd)
{
	return osd->cfg->failsafe_full_ratio > 0 &&
	       space_used_ratio(osd) >= osd->cfg->failsafe_full_ratio;
}

static void space_tick(struct osd *osd)
{
	const struct mx_osd_info *me = osd->map ? mx_map_osd(osd->map, osd->id) : NULL;
	int r;

	if (!osd->fs_frees || ((!me || me->space == MX_SPACE_OK) && !space_failsafe(osd)))
		return;
	commit_now(osd);
	r = mx_store_checkpoint(osd->store);
	if (r < 0)
		fatal_store(r);
	osd->fs_frees = 0;
	osd->fs_ns = 0; /* measure again */
	mx_info("disk %.0f%% full: checkpoint to free the space of removed data",
		100.0 * space_used_ratio(osd));
}

static uint8_t osd_space(const struct osd *osd, int32_t id)
{
	const struct mx_osd_info *o = mx_map_osd(osd->map, id);

	return o ? o->space : MX_SPACE_OK;
}

/* Whether a request may add data (anything but removals and truncation). */
static bool op_adds_data(const struct mx_msg_osd_op *m)
{
	for (uint8_t i = 0; i < m->n_ops; i++)
		if (mx_op_is_write(m->ops[i].op) && m->ops[i].op != MX_OP_REMOVE &&
		    m->ops[i].op != MX_OP_RMXATTR && m->ops[i].op != MX_OP_TRUNCATE)
			return true;
	return false;
}

/* 0, or -ENOSPC if the PG takes no new data now. */
static int space_check(struct osd *osd, const struct pgstate *pgs,
		       const struct mx_msg_osd_op *m)
{
	if (!op_adds_data(m))
		return 0;
	for (int i = 0; i < pgs->n_acting; i++)
		if (osd_space(osd, pgs->acting[i]) == MX_SPACE_FULL)
			return -ENOSPC;
	return space_failsafe(osd) ? -ENOSPC : 0;
}

static void do_writes(struct osd *osd, struct session *s, uint64_t tid,
		      const struct mx_msg_osd_op *m, const struct mx_objkey *key,
		      struct pgstate *pgs)
{
	struct mx_txn_op txops[MX_TXN_MAX_OPS];
	struct mx_txn txn;
	struct dedup *d;
	struct mx_wbuf w;
	struct mx_list *pos, *tmp;
	struct mx_version v;
	struct pop *p;
	int n, r;

	d = dedup_slot(osd, m->client_id, tid);
	if (m->client_id && d->client_id == m->client_id && d->tid == tid) {
		/* A resend of a request we completed: same answer again. */
		reply_done(osd, s, tid, d->status, d->ver, d->n_ops, d->rvals);
		return;
	}
	if (m->client_id) {
		mx_list_for_each_safe(pos, tmp, &pgs->pops) {
			p = mx_list_entry(pos, struct pop, pg_link);
			if (p->client_id == m->client_id && p->tid == tid && p->s) {
				/* Still in flight: answer the resend instead. */
				session_put(p->s);
				p->s = s;
				s->refs++;
				return;
			}
		}
		commit_now(osd); /* find_req sees committed entries */
		if (mx_store_pg_find_req(osd->store, key->pool, key->pg, m->client_id, tid, &v) ==
		    0) {
			/* Applied (and, the PG being active, on every complete
			 * member) before a failure; its reply was lost. */
			reply_done(osd, s, tid, 0, v, m->n_ops, NULL);
			return;
		}
	}
	r = space_check(osd, pgs, m);
	if (r < 0) {
		reply_status(osd, s, tid, r);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		reply_status(osd, s, tid, -ENOMEM);
		return;
	}
	n = plan_write(osd, m, key, txops, p->rvals);
	if (n < 0) {
		free(p);
		reply_status(osd, s, tid, n);
		return;
	}
	memset(&txn, 0, sizeof(txn));
	txn.key = *key;
	/* Versions grow along the PG's history, across intervals. */
	txn.version.epoch = MX_MAX(osd->map->epoch, pgs->lu.epoch);
	txn.version.seq = pgs->lu.seq + 1;
	txn.n_ops = (uint32_t)n;
	txn.ops = txops;
	txn.log = true;
	txn.client_id = m->client_id;
	txn.tid = m->client_id ? tid : 0;
	r = mx_store_queue(osd->store, &txn);
	for (int i = 0; i < n && r == 0; i++)
		osd->fs_queued += txops[i].len;
	if (r == 0)
		space_note_txn(osd, &txn);
	if (r < 0) {
		free(p);
		reply_status(osd, s, tid, r);
		return;
	}
	pgs->lu = txn.version;
	p->s = s;
	s->refs++;
	p->tid = tid;
	p->client_id = m->client_id;
	p->ver = txn.version;
	p->n_ops = m->n_ops;
	p->refs = 1;
	p->pg = pgs;
	p->name = mx_xcalloc(1, key->name_len + 1);
	memcpy(p->name, key->name, key->name_len);
	p->name_len = key->name_len;
	mx_list_add_tail(&pgs->pops, &p->pg_link);
	mx_list_add_tail(&osd->commit_pops, &p->commit_link);
	if (pgs->n_acting > 1) {
		mx_wbuf_init(&w);
		encode_repop(&w, m, &txn, osd->map->epoch, pgs->interval, true);
		if (w.err) {
			/* Queued locally already: fail loudly rather than diverge. */
			mx_err("cannot encode a replicated write: out of memory");
			exit(1);
		}
		p->repop = w.data;
		p->repop_len = w.len;
		mx_wbuf_init(&w);
		encode_repop(&w, m, &txn, osd->map->epoch, pgs->interval, false);
		if (w.err) {
			mx_err("cannot encode a replicated write: out of memory");
			exit(1);
		}
		p->repop_nolog = w.data;
		p->repop_nolog_len = w.len;
		for (int i = 1; i < pgs->n_acting; i++) {
			struct member *mb = &pgs->mem[i];
			struct peer *pe;
			struct repop_out *ro;

			if (mb->state == M_NONE)
				continue;
			if (mb->state == M_RECOVERING) {
				struct missing *ms = missing_find(mb->miss, key->name, key->name_len);

				if (ms) {
					/* It gets the whole object by push; one in
					 * flight is stale now: push again after. */
					if (ms->inflight)
						ms->dirty = true;
					continue;
				}
			}
			pe = peer_get(osd, pgs->acting[i]);
			ro = calloc(1, sizeof(*ro));
			if (!pe || !ro) {
				mx_err("out of memory replicating a write");
				exit(1);
			}
			ro->pop = p;
			ro->tid = ++osd->next_tid;
			ro->nolog = mb->state != M_COMPLETE;
			p->refs++;
			p->waiting++;
			mx_list_add_tail(&pe->pending, &ro->link);
			if (pe->conn)
				repop_send(osd, pe, ro);
			else
				peer_kick(osd, pe);
		}
	}
}

/* Client requests --------------------------------------------------------- */

/* Keep a copy of a message on list l, with a reference to its session. */
static void hold(struct osd *osd, struct mx_list *l, struct session *s, uint16_t type,
		 uint64_t tid, uint64_t epoch, const uint8_t *payload, uint32_t len)
{
	struct held *h = mx_xcalloc(1, sizeof(*h));

	(void)osd;
	h->s = s;
	s->refs++;
	h->type = type;
	h->tid = tid;
	h->epoch = epoch;
	h->ns = mx_now_ns();
	h->len = len;
	h->payload = mx_xcalloc(1, len ? len : 1);
	memcpy(h->payload, payload, len);
	mx_list_add_tail(l, &h->link);
}

static void handle_op(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
		      uint32_t len)
{
	struct mx_msg_osd_op m;
	const struct mx_pool *pool;
	struct mx_objkey key;
	struct pgstate *pgs;
	int32_t acting[MX_MAX_SIZE];
	int n, r;

	osd->client_ns = mx_now_ns(); /* recovery yields (rec_may_start) */
	r = mx_dec_osd_op(payload, len, &m);
	if (r < 0) {
		mx_warn("%s: malformed OSD request", s->conn->peer);
		reply_status(osd, s, tid, -EBADMSG);
		return;
	}
	if (!osd->map || !osd->booted || m.epoch > osd->map->epoch) {
		reply_status(osd, s, tid, -EAGAIN);
		return;
	}
	pool = mx_map_pool_by_id(osd->map, m.pool);
	if (!pool) {
		reply_status(osd, s, tid, -ENOENT);
		return;
	}
	if (m.pg >= pool->pg_num) {
		reply_status(osd, s, tid, -EINVAL);
		return;
	}
	n = mx_pg_acting(osd->pl, osd->map, pool, m.pg, acting, MX_MAX_SIZE);
	if (n <= 0 || acting[0] != osd->id) {
		reply_status(osd, s, tid, -ESTALE);
		return;
	}
	if (n < pool->min_size) {
		reply_status(osd, s, tid, -EAGAIN);
		return;
	}
	pgs = pg_get(osd, m.pool, m.pg);
	if (pgs->role != ROLE_PRIMARY || pgs->state != PG_ACTIVE) {
		/* Peering or recovering the primary's own copy: the op waits
		 * for activation (never served from a copy that may be stale). */
		hold(osd, &pgs->ops, s, MX_MSG_OSD_OP, tid, 0, payload, len);
		return;
	}
	if (pgs->scrub && mx_op_is_write(m.ops[0].op)) {
		/* Scrubbing: writes wait until the maps are compared and
		 * the repairs done (scrub_finish runs them). */
		hold(osd, &pgs->ops, s, MX_MSG_OSD_OP, tid, 0, payload, len);
		return;
	}
	key.pool = m.pool;
	key.pg = m.pg;
	key.name = m.name;
	key.name_len = m.name_len;
	flush_if_pending(osd, &key);
	if (mx_op_is_write(m.ops[0].op))
		do_writes(osd, s, tid, &m, &key, pgs);
	else
		do_reads(osd, s, tid, &m, &key);
}

struct list_ctx {
	struct mx_wbuf *w;
	uint32_t n, max;
	bool more;
};

static int list_cb(void *arg, const struct mx_objkey *key, const struct mx_obj_stat *st)
{
	struct list_ctx *lc = arg;
	struct mx_list_entry e = {
		.name = key->name,
		.name_len = key->name_len,
		.size = st->size,
		.ver_epoch = st->version.epoch,
		.ver_seq = st->version.seq,
	};

	if (lc->n >= lc->max || lc->w->len > LIST_MAX_BYTES) {
		lc->more = true;
		return 1;
	}
	mx_enc_list_reply_entry(lc->w, &e);
	lc->n++;
	return 0;
}

static void handle_list(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
			uint32_t len)
{
	struct mx_msg_osd_list m;
	const struct mx_pool *pool;
	struct list_ctx lc;
	struct mx_wbuf w;
	int32_t acting[MX_MAX_SIZE];
	size_t at;
	int n, r;

	r = mx_dec_osd_list(payload, len, &m);
	if (r < 0) {
		mx_warn("%s: malformed list request", s->conn->peer);
		(void)mx_conn_send_error(s->conn, tid, -EBADMSG, "malformed list request");
		return;
	}
	mx_wbuf_init(&w);
	if (!osd->map || !osd->booted || m.epoch > osd->map->epoch) {
		r = -EAGAIN;
		goto fail;
	}
	pool = mx_map_pool_by_id(osd->map, m.pool);
	if (!pool || m.pg >= pool->pg_num) {
		r = -ENOENT;
		goto fail;
	}
	n = mx_pg_acting(osd->pl, osd->map, pool, m.pg, acting, MX_MAX_SIZE);
	if (n <= 0 || acting[0] != osd->id) {
		r = -ESTALE;
		goto fail;
	}
	commit_now(osd);
	at = mx_enc_list_reply_begin(&w, 0, osd->map->epoch);
	lc.w = &w;
	lc.n = 0;
	lc.max = m.max && m.max < LIST_MAX_ENTRIES ? m.max : LIST_MAX_ENTRIES;
	lc.more = false;
	r = mx_store_list(osd->store, m.pool, m.pg, m.cursor_len ? m.cursor : NULL,
			  m.cursor_len, list_cb, &lc);
	if (r < 0) {
		mx_wbuf_reset(&w);
		goto fail;
	}
	mx_enc_list_reply_end(&w, at, lc.n, !lc.more);
	(void)session_send(s, MX_MSG_OSD_LIST_REPLY, tid, &w);
	return;
fail:
	at = mx_enc_list_reply_begin(&w, mx_errno_to_wire(r), osd->map ? osd->map->epoch : 0);
	mx_enc_list_reply_end(&w, at, 0, true);
	(void)session_send(s, MX_MSG_OSD_LIST_REPLY, tid, &w);
}

/* PG logs in memory ------------------------------------------------------- */

static void pglog_free(struct pglog *l)
{
	for (size_t i = 0; i < l->n; i++)
		free((char *)l->e[i].name);
	free(l->e);
	memset(l, 0, sizeof(*l));
}

static int pglog_add(void *arg, const struct mx_pglog_entry *e)
{
	struct pglog *l = arg;
	char *name;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->e = realloc(l->e, l->cap * sizeof(*l->e));
		if (!l->e) {
			mx_err("out of memory");
			exit(1);
		}
	}
	name = mx_xcalloc(1, e->name_len + 1);
	memcpy(name, e->name, e->name_len);
	l->e[l->n] = *e;
	l->e[l->n].name = name;
	l->n++;
	return 0;
}

/* Our committed info and whole log (commits what is staged first). */
static void pglog_load(struct osd *osd, int32_t pool, uint32_t pg, struct pglog *l)
{
	static const struct mx_version zero;

	commit_now(osd);
	pglog_free(l);
	(void)mx_store_pg_info_get(osd->store, pool, pg, &l->info);
	(void)mx_store_pg_log_walk(osd->store, pool, pg, zero, pglog_add, l);
}

static void pglog_copy(struct pglog *to, const struct pglog *from)
{
	pglog_free(to);
	to->info = from->info;
	for (size_t i = 0; i < from->n; i++)
		(void)pglog_add(to, &from->e[i]);
}

static void info_to_wire(const struct mx_pg_info *i, struct mx_wire_pg_info *w)
{
	memset(w, 0, sizeof(*w));
	w->lu_epoch = i->last_update.epoch;
	w->lu_seq = i->last_update.seq;
	w->tail_epoch = i->log_tail.epoch;
	w->tail_seq = i->log_tail.seq;
	w->les = i->les;
	w->lec = i->lec;
	w->n_acting = (uint8_t)MX_MIN(i->n_acting, MX_MAX_SIZE);
	memcpy(w->acting, i->acting, w->n_acting * sizeof(int32_t));
}

static void info_from_wire(const struct mx_wire_pg_info *w, struct mx_pg_info *i)
{
	memset(i, 0, sizeof(*i));
	i->last_update = (struct mx_version){w->lu_epoch, w->lu_seq};
	i->log_tail = (struct mx_version){w->tail_epoch, w->tail_seq};
	i->les = w->les;
	i->lec = w->lec;
	i->n_acting = (uint8_t)MX_MIN(w->n_acting, MX_PG_ACTING_MAX);
	memcpy(i->acting, w->acting, i->n_acting * sizeof(int32_t));
}

static void entry_to_wire(const struct mx_pglog_entry *e, struct mx_wire_log_entry *w)
{
	w->ver_epoch = e->version.epoch;
	w->ver_seq = e->version.seq;
	w->kind = e->kind;
	w->name = e->name;
	w->name_len = e->name_len;
	w->client_id = e->client_id;
	w->tid = e->tid;
}

static void entry_from_wire(const struct mx_wire_log_entry *w, struct mx_pglog_entry *e)
{
	e->version = (struct mx_version){w->ver_epoch, w->ver_seq};
	e->kind = w->kind;
	e->name = w->name;
	e->name_len = w->name_len;
	e->client_id = w->client_id;
	e->tid = w->tid;
}

struct enc_log_ctx {
	struct mx_wbuf *w;
	uint32_t n;
};

static int enc_log_cb(void *arg, const struct mx_pglog_entry *e)
{
	struct enc_log_ctx *c = arg;
	struct mx_wire_log_entry we;

	entry_to_wire(e, &we);
	mx_enc_pg_log_entry(c->w, &we);
	c->n++;
	return c->w->err;
}

static void missing_free(struct missing **l, int *n)
{
	while (*l) {
		struct missing *m = *l;

		*l = m->next;
		free(m->name);
		free(m);
	}
	if (n)
		*n = 0;
}

static int missing_add(struct missing **l, int *n, const char *name, uint32_t len)
{
	struct missing *m;

	if (missing_find(*l, name, len))
		return 0;
	m = mx_xcalloc(1, sizeof(*m));
	m->name = mx_xcalloc(1, len + 1);
	memcpy(m->name, name, len);
	m->len = len;
	m->next = *l;
	*l = m;
	(*n)++;
	return 0;
}

static void missing_del(struct missing **l, int *n, struct missing *x)
{
	for (struct missing **pp = l; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			free(x->name);
			free(x);
			(*n)--;
			return;
		}
}

/* Objects moved by recovery ----------------------------------------------- */

static int obj_xattr_cb(void *arg, const char *xname, const void *value, uint32_t len)
{
	struct enc_log_ctx *c = arg;

	mx_enc_pg_object_xattr(c->w, xname, value, len);
	c->n++;
	return c->w->err;
}

/* Encode an object's whole committed state (or its absence) as a PG_PUSH
 * payload.  0 or a negative errno (w is then unusable). */
static int encode_object(struct osd *osd, const struct mx_pg_ref *ref, const char *name,
			 uint32_t len, struct mx_wbuf *w)
{
	struct mx_objkey key = {.pool = ref->pool, .pg = ref->pg, .name = name, .name_len = len};
	struct mx_msg_pg_object o;
	struct mx_obj_stat st;
	struct enc_log_ctx c = {.w = w};
	uint8_t *data = NULL;
	uint32_t got = 0;
	size_t at;
	int r;

	flush_if_pending(osd, &key);
	memset(&o, 0, sizeof(o));
	o.ref = *ref;
	o.name = name;
	o.name_len = len;
	r = mx_store_stat(osd->store, &key, &st);
	if (r < 0 && r != -ENOENT)
		return r;
	o.exists = r == 0;
	if (o.exists) {
		if (st.size > MX_MSG_MAX_DATA)
			return -EFBIG;
		o.ver_epoch = st.version.epoch;
		o.ver_seq = st.version.seq;
		o.mtime_ms = st.mtime_ms;
		data = malloc(st.size ? st.size : 1);
		if (!data)
			return -ENOMEM;
		r = st.size ? mx_store_read(osd->store, &key, 0, (uint32_t)st.size, data, &got) : 0;
		if (r < 0) {
			free(data);
			return r;
		}
	}
	at = mx_enc_pg_object_head(w, &o);
	if (o.exists) {
		r = mx_store_listxattrs(osd->store, &key, obj_xattr_cb, &c);
		if (r < 0) {
			free(data);
			return r;
		}
	}
	mx_enc_pg_object_end(w, at, c.n, data, got);
	free(data);
	return w->err;
}

/* Stage making our copy of an object exactly what o says (unlogged: the log
 * is adopted separately, once every object it names is here). */
static int apply_object(struct osd *osd, const struct mx_msg_pg_object *o)
{
	struct mx_objkey key = {.pool = o->ref.pool, .pg = o->ref.pg, .name = o->name,
				.name_len = o->name_len};
	struct mx_txn_op *ops;
	struct mx_txn txn;
	struct mx_obj_stat st;
	struct mx_rbuf r = o->xattrs;
	bool here;
	uint32_t n = 0;
	int ret;

	flush_if_pending(osd, &key);
	here = mx_store_stat(osd->store, &key, &st) == 0;
	if (!o->exists && !here)
		return 0;
	ops = calloc(o->n_xattrs + 3, sizeof(*ops));
	if (!ops)
		return -ENOMEM;
	if (here)
		ops[n++].type = MX_TXN_REMOVE;
	if (o->exists) {
		ops[n++].type = MX_TXN_CREATE;
		if (o->data_len) {
			ops[n].type = MX_TXN_WRITE;
			ops[n].data = o->data;
			ops[n++].len = o->data_len;
		}
		for (uint32_t i = 0; i < o->n_xattrs; i++) {
			uint16_t l = mx_get_u16(&r);
			const char *xn = mx_get_bytes(&r, l);
			uint32_t vl;
			const void *v = mx_get_blob(&r, &vl, MX_MSG_MAX_DATA);

			if (r.err || l == 0 || xn[l - 1] != '\0') {
				free(ops);
				return -EBADMSG;
			}
			ops[n].type = MX_TXN_SETXATTR;
			ops[n].xname = xn;
			ops[n].data = v;
			ops[n++].len = vl;
		}
	}
	memset(&txn, 0, sizeof(txn));
	txn.key = key;
	txn.version = (struct mx_version){o->ver_epoch, o->ver_seq};
	if (!o->exists)
		txn.version = st.version;
	txn.n_ops = n;
	txn.ops = ops;
	ret = mx_store_queue(osd->store, &txn);
	if (ret == 0)
		space_note_txn(osd, &txn);
	free(ops);
	return ret;
}
/* Replica side ------------------------------------------------------------- */

static void send_ack(struct session *s, uint16_t type, uint64_t tid, int err,
		     const struct mx_pg_ref *ref, struct osd *osd, bool after_commit)
{
	struct mx_msg_pg_ack a = {.status = mx_errno_to_wire(err), .ref = *ref};
	struct mx_wbuf w;

	a.ref.epoch = osd->map ? osd->map->epoch : 0;
	mx_wbuf_init(&w);
	mx_enc_pg_ack(&w, &a);
	if (after_commit)
		reply_after_commit(osd, s, type, tid, &w);
	else
		(void)session_send(s, type, tid, &w);
}

/* Whether a message from a primary for (pool, pg) in interval may be
 * applied: 1 if it was deferred (our map is older than its epoch, or our
 * map history is incomplete: it is replayed later), 0 and *out if we are a
 * replica of that PG in that interval, -ESTALE otherwise. */
static int replica_check(struct osd *osd, struct session *s, uint16_t type, uint64_t tid,
			 uint64_t epoch, int32_t pool, uint32_t pg, uint64_t interval,
			 const uint8_t *payload, uint32_t len, struct pgstate **out)
{
	struct pgstate *pgs;

	if (!osd->map || epoch > osd->map->epoch || !osd->hist_ready) {
		hold(osd, &osd->deferred, s, type, tid, epoch, payload, len);
		return 1;
	}
	if (pool < 0 || pg == UINT32_MAX)
		return -ESTALE;
	pgs = pg_get(osd, pool, pg);
	if (pgs->role != ROLE_REPLICA || pgs->interval != interval)
		return -ESTALE;
	*out = pgs;
	return 0;
}

static void handle_repop(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
			 uint32_t len)
{
	struct mx_msg_repop m;
	struct mx_txn_op txops[MX_TXN_MAX_OPS];
	struct mx_txn txn;
	struct pgstate *pgs = NULL;
	struct mx_wbuf b;
	struct mx_msg_repop_reply rr = {0};
	int r;

	osd->client_ns = mx_now_ns();
	r = mx_dec_repop(payload, len, &m);
	if (r < 0) {
		mx_warn("%s: malformed replicated write", s->conn->peer);
		(void)mx_conn_send_error(s->conn, tid, -EBADMSG, "malformed replicated write");
		return;
	}
	r = replica_check(osd, s, MX_MSG_OSD_REPOP, tid, m.epoch, m.pool, m.pg, m.tail.interval,
			  payload, len, &pgs);
	if (r == 1)
		return;
	if (r == 0 && pgs->state == R_WAITING)
		r = -ESTALE; /* not activated: the primary sends ACTIVATE first */
	memset(&txn, 0, sizeof(txn));
	txn.key.pool = m.pool;
	txn.key.pg = m.pg;
	txn.key.name = m.name;
	txn.key.name_len = m.name_len;
	txn.version.epoch = m.ver_epoch;
	txn.version.seq = m.ver_seq;
	txn.n_ops = m.n_ops;
	txn.ops = txops;
	for (uint8_t i = 0; i < m.n_ops; i++) {
		memset(&txops[i], 0, sizeof(txops[i]));
		txops[i].type = m.ops[i].type;
		txops[i].off = m.ops[i].off;
		txops[i].size = m.ops[i].size;
		txops[i].xname = m.ops[i].xname;
		txops[i].data = m.ops[i].data;
		txops[i].len = m.ops[i].data_len;
	}
	if (r == 0) {
		/* A recovering copy applies writes unlogged: it adopts the
		 * primary's log when it holds everything the log names. */
		txn.log = (m.tail.flags & MX_REPOP_LOG) && pgs->state == R_ACTIVE;
		txn.client_id = m.tail.client_id;
		txn.tid = m.tail.tid;
		if (txn.log && mx_version_cmp(txn.version, pgs->lu) <= 0) {
			/* A resend of a write we hold already. */
			mx_wbuf_init(&b);
			rr.epoch = osd->map->epoch;
			mx_enc_repop_reply(&b, &rr);
			reply_after_commit(osd, s, MX_MSG_OSD_REPOP_REPLY, tid, &b);
			return;
		}
		flush_if_pending(osd, &txn.key);
		r = mx_store_queue(osd->store, &txn);
		for (uint8_t i = 0; i < m.n_ops && r == 0; i++)
			osd->fs_queued += m.ops[i].data_len;
		if (r == 0)
			space_note_txn(osd, &txn);
	}
	mx_wbuf_init(&b);
	rr.epoch = osd->map ? osd->map->epoch : 0;
	if (r < 0) {
		rr.status = mx_errno_to_wire(r);
		if (r != -ESTALE)
			mx_warn("%s: replicated write refused: %s", s->conn->peer, strerror(-r));
		mx_enc_repop_reply(&b, &rr);
		(void)session_send(s, MX_MSG_OSD_REPOP_REPLY, tid, &b);
		return;
	}
	if (txn.log)
		pgs->lu = txn.version;
	mx_enc_repop_reply(&b, &rr);
	reply_after_commit(osd, s, MX_MSG_OSD_REPOP_REPLY, tid, &b);
}

/* PG_QUERY: our info and whole log, from any OSD (answering changes
 * nothing).  Deferred until our map reaches the query's epoch, so that we
 * no longer accept writes of an older interval once we have answered. */
static void handle_pg_query(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
			    uint32_t len)
{
	static const struct mx_version zero;
	struct mx_pg_ref ref;
	struct mx_pg_info info;
	struct mx_wire_pg_info wi;
	struct enc_log_ctx c;
	struct mx_wbuf w;
	size_t at;

	if (mx_dec_pg_query(payload, len, &ref) < 0 || ref.pool < 0 || ref.pg == UINT32_MAX) {
		(void)mx_conn_send_error(s->conn, tid, -EBADMSG, "malformed PG query");
		return;
	}
	if (!osd->map || ref.epoch > osd->map->epoch || !osd->hist_ready) {
		hold(osd, &osd->deferred, s, MX_MSG_PG_QUERY, tid, ref.epoch, payload, len);
		return;
	}
	commit_now(osd);
	(void)mx_store_pg_info_get(osd->store, ref.pool, ref.pg, &info);
	info_to_wire(&info, &wi);
	mx_wbuf_init(&w);
	at = mx_enc_pg_notify_head(&w, 0, &ref, &wi);
	c.w = &w;
	c.n = 0;
	(void)mx_store_pg_log_walk(osd->store, ref.pool, ref.pg, zero, enc_log_cb, &c);
	mx_enc_pg_notify_end(&w, at, c.n);
	(void)session_send(s, MX_MSG_PG_NOTIFY, tid, &w);
}

/*
 * PG_ACTIVATE from the primary of our interval:
 *   les == 0, !with_log: we are recovering: apply this interval's writes and
 *       pushes unlogged, persist nothing yet;
 *   les == 0, with_log: backfill: wipe the PG first, then as above;
 *   les != 0: we hold everything: persist les (and adopt the log that
 *       follows if with_log), then log every write.
 * The reply goes after the commit that makes it durable.
 */
static void handle_pg_activate(struct osd *osd, struct session *s, uint64_t tid,
			       uint8_t *payload, uint32_t len)
{
	struct mx_msg_pg_activate m;
	struct pgstate *pgs = NULL;
	struct mx_pglog_entry *ents = NULL;
	struct mx_pg_info info;
	int r;

	if (mx_dec_pg_activate(payload, len, &m) < 0) {
		(void)mx_conn_send_error(s->conn, tid, -EBADMSG, "malformed PG activate");
		return;
	}
	r = replica_check(osd, s, MX_MSG_PG_ACTIVATE, tid, m.ref.epoch, m.ref.pool, m.ref.pg,
			  m.ref.interval, payload, len, &pgs);
	if (r == 1)
		return;
	if (r < 0) {
		send_ack(s, MX_MSG_PG_ACTIVATE_REPLY, tid, r, &m.ref, osd, false);
		return;
	}
	if (m.les == 0) {
		if (m.with_log) {
			r = mx_store_pg_remove(osd->store, m.ref.pool, m.ref.pg);
			if (r < 0)
				fatal_store(r);
			pgs->lu = (struct mx_version){0, 0};
			mx_info("pg %d.%u: backfill from the primary: copy wiped", m.ref.pool,
				m.ref.pg);
		}
		pgs->state = R_RECOVERING;
		send_ack(s, MX_MSG_PG_ACTIVATE_REPLY, tid, 0, &m.ref, osd, true);
		return;
	}
	if (m.with_log) {
		struct mx_version tail = {m.tail_epoch, m.tail_seq};

		ents = calloc(m.n ? m.n : 1, sizeof(*ents));
		if (!ents) {
			send_ack(s, MX_MSG_PG_ACTIVATE_REPLY, tid, -ENOMEM, &m.ref, osd, false);
			return;
		}
		for (uint32_t i = 0; i < m.n; i++) {
			struct mx_wire_log_entry we;

			if (mx_pg_log_next(&m.entries, &we) < 0) {
				free(ents);
				send_ack(s, MX_MSG_PG_ACTIVATE_REPLY, tid, -EBADMSG, &m.ref, osd,
					 false);
				return;
			}
			entry_from_wire(&we, &ents[i]);
		}
		commit_now(osd);
		r = mx_store_pg_log_reset(osd->store, m.ref.pool, m.ref.pg, ents, m.n, tail);
		if (r < 0) {
			mx_warn("pg %d.%u: cannot adopt the primary's log: %s", m.ref.pool,
				m.ref.pg, strerror(-r));
			free(ents);
			send_ack(s, MX_MSG_PG_ACTIVATE_REPLY, tid, r, &m.ref, osd, false);
			return;
		}
		pgs->lu = m.n ? ents[m.n - 1].version : tail;
		free(ents);
	}
	(void)mx_store_pg_info_get(osd->store, m.ref.pool, m.ref.pg, &info);
	info.les = m.les;
	info.n_acting = pgs->n_acting;
	memset(info.acting, 0, sizeof(info.acting));
	memcpy(info.acting, pgs->acting, pgs->n_acting * sizeof(int32_t));
	r = mx_store_queue_pg_info(osd->store, m.ref.pool, m.ref.pg, &info);
	if (r < 0)
		fatal_store(r);
	if (pgs->state != R_ACTIVE)
		mx_info("pg %d.%u: active replica (les %" PRIu64 "%s)", m.ref.pool, m.ref.pg,
			m.les, m.with_log ? ", recovered" : "");
	pgs->state = R_ACTIVE;
	send_ack(s, MX_MSG_PG_ACTIVATE_REPLY, tid, 0, &m.ref, osd, true);
}

/* PG_PUSH from the primary of our interval: one object, or its absence. */
static void handle_pg_push(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
			   uint32_t len)
{
	struct mx_msg_pg_object o;
	struct pgstate *pgs = NULL;
	int r;

	if (mx_dec_pg_object(payload, len, &o) < 0) {
		(void)mx_conn_send_error(s->conn, tid, -EBADMSG, "malformed PG push");
		return;
	}
	r = replica_check(osd, s, MX_MSG_PG_PUSH, tid, o.ref.epoch, o.ref.pool, o.ref.pg,
			  o.ref.interval, payload, len, &pgs);
	if (r == 1)
		return;
	if (r == 0 && pgs->state == R_WAITING)
		r = -ESTALE;
	if (r == 0 && o.exists && space_failsafe(osd))
		r = -ENOSPC; /* the primary tries again later */
	if (r == 0) {
		r = apply_object(osd, &o);
		osd->fs_queued += o.data_len;
	}
	send_ack(s, MX_MSG_PG_PUSH_REPLY, tid, r, &o.ref, osd, r == 0);
}

/* PG_PULL from a primary making itself authoritative: answer with a
 * PG_PUSH carrying our committed copy of the object (or its absence). */
static void handle_pg_pull(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
			   uint32_t len)
{
	struct mx_msg_pg_pull m;
	struct mx_wbuf w;
	int r;

	if (mx_dec_pg_pull(payload, len, &m) < 0 || m.ref.pool < 0) {
		(void)mx_conn_send_error(s->conn, tid, -EBADMSG, "malformed PG pull");
		return;
	}
	mx_wbuf_init(&w);
	r = encode_object(osd, &m.ref, m.name, m.name_len, &w);
	if (r < 0) {
		struct mx_msg_pg_object o = {.status = mx_errno_to_wire(r), .ref = m.ref,
					     .name = m.name, .name_len = m.name_len};
		size_t at;

		mx_wbuf_reset(&w);
		at = mx_enc_pg_object_head(&w, &o);
		mx_enc_pg_object_end(&w, at, 0, NULL, 0);
	}
	(void)session_send(s, MX_MSG_PG_PUSH, tid, &w);
}
/*
 * PG_REMOVE from the primary of an interval in which the PG went clean
 * (pg_remove_strays): our copy is a stray.  Every later peering hears
 * from a member of that interval (whose les is at least that interval) or
 * waits for one, so no acknowledged write depends on our copy any more.
 * It is removed only if, in our map, which has reached the message's
 * epoch: the PG's current interval is the message's (so the PG did not
 * move on, and we were not a member since it began), we are in neither
 * its up nor its acting set, the sender is its primary, and our copy's
 * les is older than that interval.  Anything else is refused with ESTALE
 * (the primary of the PG's next interval asks again if the copy is still
 * a stray then).
 */
static void handle_pg_remove(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
			     uint32_t len)
{
	struct mx_msg_pg_remove m;
	int32_t up[MX_MAX_SIZE], act[MX_MAX_SIZE];
	uint64_t inc[MX_MAX_SIZE];
	int nu = 0, na = 0, r = 0;
	struct pgstate *pgs;
	struct mx_pg_info info;

	if (mx_dec_pg_remove(payload, len, &m) < 0) {
		(void)mx_conn_send_error(s->conn, tid, -EBADMSG, "malformed PG remove");
		return;
	}
	if (!osd->map || m.ref.epoch > osd->map->epoch || !osd->hist_ready) {
		hold(osd, &osd->deferred, s, MX_MSG_PG_REMOVE, tid, m.ref.epoch, payload, len);
		return;
	}
	if (!pg_members(osd->map, osd->pl, m.ref.pool, m.ref.pg, up, &nu, act, &na, inc) ||
	    na == 0 || act[0] != m.from)
		r = -ESTALE;
	for (int i = 0; i < nu && r == 0; i++)
		if (up[i] == osd->id)
			r = -ESTALE;
	for (int i = 0; i < na && r == 0; i++)
		if (act[i] == osd->id)
			r = -ESTALE;
	if (r == 0 &&
	    pg_interval_first(osd, m.ref.pool, m.ref.pg, up, nu, act, na, inc) != m.ref.interval)
		r = -ESTALE; /* the PG moved on since it went clean there */
	pgs = pg_find(osd, m.ref.pool, m.ref.pg);
	if (r == 0 && pgs && pgs->role != ROLE_NONE)
		r = -ESTALE;
	if (r == 0) {
		commit_now(osd);
		(void)mx_store_pg_info_get(osd->store, m.ref.pool, m.ref.pg, &info);
		if (info.les >= m.ref.interval)
			r = -ESTALE;
	}
	if (r < 0) {
		mx_debug("pg %d.%u: refused to remove our copy for osd.%d", m.ref.pool, m.ref.pg,
			 m.from);
		send_ack(s, MX_MSG_PG_REMOVE_REPLY, tid, r, &m.ref, osd, false);
		return;
	}
	r = mx_store_pg_remove(osd->store, m.ref.pool, m.ref.pg);
	if (r < 0)
		fatal_store(r);
	if (pgs)
		pgs->lu = (struct mx_version){0, 0};
	mx_info("pg %d.%u: stray copy removed (clean on osd.%d in interval %" PRIu64 ")",
		m.ref.pool, m.ref.pg, m.from, m.ref.interval);
	send_ack(s, MX_MSG_PG_REMOVE_REPLY, tid, 0, &m.ref, osd, true);
}
/* PG_SCAN from a primary that backfills itself from our copy: the next
 * chunk of our committed listing, names with versions, as a list reply.
 * Deferred like PG_QUERY until our map reaches the sender's. */
static void handle_pg_scan(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
			   uint32_t len)
{
	struct mx_msg_pg_scan m;
	struct list_ctx lc;
	struct mx_wbuf w;
	size_t at;
	int r;

	if (mx_dec_pg_scan(payload, len, &m) < 0) {
		(void)mx_conn_send_error(s->conn, tid, -EBADMSG, "malformed PG scan");
		return;
	}
	if (!osd->map || m.ref.epoch > osd->map->epoch || !osd->hist_ready) {
		hold(osd, &osd->deferred, s, MX_MSG_PG_SCAN, tid, m.ref.epoch, payload, len);
		return;
	}
	commit_now(osd);
	mx_wbuf_init(&w);
	at = mx_enc_list_reply_begin(&w, 0, osd->map->epoch);
	lc.w = &w;
	lc.n = 0;
	lc.max = LIST_MAX_ENTRIES;
	lc.more = false;
	r = mx_store_list(osd->store, m.ref.pool, m.ref.pg, m.cursor_len ? m.cursor : NULL,
			  m.cursor_len, list_cb, &lc);
	if (r < 0) {
		mx_wbuf_reset(&w);
		at = mx_enc_list_reply_begin(&w, mx_errno_to_wire(r), osd->map->epoch);
		lc.n = 0;
		lc.more = false;
	}
	mx_enc_list_reply_end(&w, at, lc.n, !lc.more);
	(void)session_send(s, MX_MSG_OSD_LIST_REPLY, tid, &w);
}

/* Primary side: peering and recovery ------------------------------------- */

/* Send to a peer over our connection to it; returns the connection's
 * generation, 0 if there is none yet (the tick sends again). */
static uint64_t peer_send_tid(struct osd *osd, int32_t id, uint16_t type, struct mx_wbuf *w,
			      uint64_t *tid)
{
	struct peer *p = peer_get(osd, id);

	*tid = ++osd->next_tid;
	if (p && !p->conn)
		peer_kick(osd, p);
	if (!p || !p->conn) {
		mx_wbuf_free(w);
		return 0;
	}
	(void)mx_conn_send(p->conn, type, *tid, w);
	return p->gen;
}

static uint64_t peer_send(struct osd *osd, int32_t id, uint16_t type, struct mx_wbuf *w)
{
	uint64_t tid;

	return peer_send_tid(osd, id, type, w, &tid);
}

/* Whether something sent with connection generation gen to osd id may be
 * lost (never sent, or the connection was replaced since). */
static bool maybe_lost(struct osd *osd, int32_t id, uint64_t gen)
{
	struct peer *p = peer_get(osd, id);

	return gen == 0 || !p || !p->conn || p->gen != gen;
}

static struct mx_pg_ref pg_ref(struct osd *osd, const struct pgstate *pgs)
{
	return (struct mx_pg_ref){.epoch = osd->map->epoch, .pool = pgs->pool, .pg = pgs->pg,
				  .interval = pgs->interval};
}

static const struct mx_pool *pg_pool(struct osd *osd, const struct pgstate *pgs)
{
	return mx_map_pool_by_id(osd->map, pgs->pool);
}

/* The intervals of a PG over our whole map history; *out from malloc(). */
static int hist_intervals(struct osd *osd, const struct pgstate *pgs, struct mx_interval **out)
{
	size_t n = osd->hist_len;
	const struct mx_map **maps = calloc(n, sizeof(*maps));
	const struct mx_placement **pls = calloc(n, sizeof(*pls));
	int k;

	*out = NULL;
	if (!maps || !pls) {
		free(maps);
		free(pls);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		maps[i] = osd->hist[i];
		pls[i] = osd->hist_pl[i];
	}
	k = mx_pg_intervals((const struct mx_map *const *)maps,
			    (const struct mx_placement *const *)pls, n, pgs->pool, pgs->pg, NULL, 0);
	if (k > 0) {
		*out = calloc((size_t)k, sizeof(**out));
		if (!*out)
			k = -ENOMEM;
		else
			k = mx_pg_intervals((const struct mx_map *const *)maps,
					    (const struct mx_placement *const *)pls, n, pgs->pool,
					    pgs->pg, *out, (size_t)k);
	}
	free(maps);
	free(pls);
	return k;
}

static void run_held_ops(struct osd *osd, struct pgstate *pgs)
{
	struct mx_list l, *pos, *tmp;

	mx_list_init(&l);
	mx_list_splice_tail(&l, &pgs->ops);
	mx_list_for_each_safe(pos, tmp, &l) {
		struct held *h = mx_list_entry(pos, struct held, link);

		mx_list_del(pos);
		if (h->s->conn)
			handle_op(osd, h->s, h->tid, h->payload, h->len);
		session_put(h->s);
		free(h->payload);
		free(h);
	}
}

/* The interval ended: writes still waiting for replicas fail with EAGAIN
 * (the client resends; the PG log recognises what was applied), and
 * replicas no longer block them. */
static void pg_fail_pops(struct osd *osd, struct pgstate *pgs)
{
	struct mx_list *pos, *tmp;

	if (mx_list_empty(&pgs->pops))
		return;
	for (uint32_t i = 0; i < osd->n_peers; i++) {
		struct peer *pe = osd->peers[i];

		if (!pe)
			continue;
		mx_list_for_each_safe(pos, tmp, &pe->pending) {
			struct repop_out *ro = mx_list_entry(pos, struct repop_out, link);

			if (ro->pop->pg != pgs)
				continue;
			mx_list_del(pos);
			ro->pop->waiting--;
			pop_unref(ro->pop);
			free(ro);
		}
	}
	mx_list_for_each_safe(pos, tmp, &pgs->pops) {
		struct pop *p = mx_list_entry(pos, struct pop, pg_link);

		mx_list_del(pos);
		p->pg = NULL;
		if (!p->status)
			p->status = -EAGAIN;
		if (p->waiting == 0 && p->local_done && p->s)
			pop_finish(osd, p);
	}
}

static void rec_done(struct osd *osd, uint64_t tid);

/* Objects no longer to be sent: their throttle slots are free again. */
static void missing_free_rec(struct osd *osd, struct missing **l, int *n)
{
	for (struct missing *m = *l; m; m = m->next)
		if (m->inflight)
			rec_done(osd, m->tid);
	missing_free(l, n);
}

static void pg_clear_primary(struct osd *osd, struct pgstate *pgs)
{
	for (int i = 0; i < pgs->n_peers; i++)
		pglog_free(&pgs->peers[i].log);
	pgs->n_peers = 0;
	missing_free_rec(osd, &pgs->pulls, &pgs->n_pulls);
	free(pgs->scan_cursor);
	pgs->scan_cursor = NULL;
	for (size_t i = 0; i < pgs->scan_n; i++)
		free(pgs->scan_names[i]);
	free(pgs->scan_names);
	pgs->scan_names = NULL;
	pgs->scan_n = pgs->scan_cap = 0;
	for (int i = 0; i < MX_MAX_SIZE; i++) {
		missing_free_rec(osd, &pgs->mem[i].miss, &pgs->mem[i].n_miss);
		memset(&pgs->mem[i], 0, sizeof(pgs->mem[i]));
	}
	pgs->state = 0;
	pgs->auth = -1;
	pgs->warned = false;
}

static void pg_try_peer(struct osd *osd, struct pgstate *pgs);

static void pg_send_query(struct osd *osd, struct pgstate *pgs, struct pgpeer *pp)
{
	const struct mx_osd_info *o = mx_map_osd(osd->map, pp->osd);
	struct mx_pg_ref ref = pg_ref(osd, pgs);
	struct mx_wbuf w;

	if (!o || !o->up)
		return;
	mx_wbuf_init(&w);
	mx_enc_pg_query(&w, &ref);
	pp->gen = peer_send(osd, pp->osd, MX_MSG_PG_QUERY, &w);
}

/* Peering starts (a new interval in which we are primary): ask every OSD
 * of the prior set for its info and log. */
static void pg_start_peering(struct osd *osd, struct pgstate *pgs)
{
	struct mx_interval *iv = NULL;
	int32_t prior[PRIOR_MAX];
	size_t np = 0;
	int n = hist_intervals(osd, pgs, &iv);

	scrub_abort(osd, pgs);
	pg_clear_primary(osd, pgs);
	pgs->no_temp = false;
	pgs->state = PG_PEERING;
	pgs->peers[0].osd = osd->id;
	pgs->peers[0].answered = true;
	pglog_load(osd, pgs->pool, pgs->pg, &pgs->peers[0].log);
	pgs->n_peers = 1;
	if (n > 0)
		np = mx_prior_set(iv, (size_t)n, 0, pgs->up, pgs->n_up, prior, PRIOR_MAX);
	for (int i = 0; i < pgs->n_acting && np < PRIOR_MAX; i++) {
		bool have = false;

		for (size_t k = 0; k < np; k++)
			have |= prior[k] == pgs->acting[i];
		if (!have)
			prior[np++] = pgs->acting[i];
	}
	free(iv);
	for (size_t k = 0; k < np && pgs->n_peers < PRIOR_MAX; k++) {
		struct pgpeer *pp;

		if (prior[k] == osd->id)
			continue;
		pp = &pgs->peers[pgs->n_peers++];
		memset(pp, 0, sizeof(*pp));
		pp->osd = prior[k];
		pg_send_query(osd, pgs, pp);
	}
	mx_info("pg %d.%u: peering in interval %" PRIu64 " (%d OSDs to hear from)", pgs->pool,
		pgs->pg, pgs->interval, pgs->n_peers - 1);
	pg_try_peer(osd, pgs);
}

static struct pgpeer *pg_peer(struct pgstate *pgs, int32_t id)
{
	for (int i = 0; i < pgs->n_peers; i++)
		if (pgs->peers[i].osd == id)
			return &pgs->peers[i];
	return NULL;
}

struct need_ctx {
	struct missing **l;
	int *n;
};

static int need_cb(void *arg, const char *name, uint32_t len, int what, struct mx_version v)
{
	struct need_ctx *c = arg;

	(void)what;
	(void)v;
	/* Objects, deletes and divergent ones alike: the receiver is told
	 * the authority's whole state of the object (or its absence). */
	return missing_add(c->l, c->n, name, len);
}

static int list_missing_cb(void *arg, const struct mx_objkey *key, const struct mx_obj_stat *st)
{
	struct need_ctx *c = arg;

	(void)st;
	return missing_add(c->l, c->n, key->name, key->name_len);
}

static void pg_activate(struct osd *osd, struct pgstate *pgs);
static void pg_send_pull(struct osd *osd, struct pgstate *pgs, struct missing *m);
static void pg_send_scan(struct osd *osd, struct pgstate *pgs);

static void pg_pulls_done(struct osd *osd, struct pgstate *pgs)
{
	struct pgpeer *auth = &pgs->peers[pgs->auth];
	struct mx_pg_info info;
	int r;

	commit_now(osd);
	r = mx_store_pg_log_reset(osd->store, pgs->pool, pgs->pg, auth->log.e, auth->log.n,
				  auth->log.info.log_tail);
	if (r < 0) {
		mx_err("pg %d.%u: cannot adopt the log of osd.%d: %s", pgs->pool, pgs->pg,
		       auth->osd, strerror(-r));
		pgs->state = PG_STUCK;
		return;
	}
	(void)mx_store_pg_info_get(osd->store, pgs->pool, pgs->pg, &info);
	info.les = auth->log.info.les;
	r = mx_store_queue_pg_info(osd->store, pgs->pool, pgs->pg, &info);
	if (r < 0)
		fatal_store(r);
	commit_now(osd);
	if (mx_version_cmp(auth->log.info.last_update, pgs->lu) > 0)
		pgs->lu = auth->log.info.last_update;
	pglog_copy(&pgs->peers[0].log, &auth->log);
	pgs->peers[0].log.info.les = auth->log.info.les;
	mx_info("pg %d.%u: adopted the authoritative log of osd.%d", pgs->pool, pgs->pg,
		auth->osd);
	pg_activate(osd, pgs);
}

/* Ask the authority for the next chunk of its listing (PG_SCAN). */
static void pg_send_scan(struct osd *osd, struct pgstate *pgs)
{
	struct mx_msg_pg_scan sc = {.ref = pg_ref(osd, pgs)};
	struct mx_wbuf w;

	if (pgs->scan_cursor) {
		sc.cursor = pgs->scan_cursor;
		sc.cursor_len = (uint32_t)strlen(pgs->scan_cursor);
	}
	mx_wbuf_init(&w);
	mx_enc_pg_scan(&w, &sc);
	pgs->scan_gen =
		peer_send_tid(osd, pgs->peers[pgs->auth].osd, MX_MSG_PG_SCAN, &w, &pgs->scan_tid);
}

static int member_index(const struct pgstate *pgs, int32_t id)
{
	for (int i = 1; i < pgs->n_acting; i++)
		if (pgs->acting[i] == id)
			return i;
	return -1;
}

/*
 * primary_temp requests (docs/recovery.md): a primary waiting in
 * PG_WAIT_TEMP wants its authority to lead for now; a primary that leads
 * by a primary_temp wants it cleared once every member is complete.  Every
 * tick, one "pg primary-temp" command carries them all to the monitor
 * (again and again until a new map starts a new interval: the command is
 * idempotent).
 */
#define PULLS_BEFORE_TEMP 32
#define TEMP_WAIT_NS (5ull * 1000000000ull) /* then fetch it ourselves */
#define TEMP_SET_MAX 3000

/* Whether we lead pgs by a primary_temp that has done its work. */
static bool temp_done(struct osd *osd, const struct pgstate *pgs)
{
	if (pgs->state != PG_ACTIVE ||
	    mx_map_primary_temp(osd->map, pgs->pool, pgs->pg) != osd->id)
		return false;
	for (int i = 0; i < pgs->n_acting; i++)
		if (pgs->mem[i].state != M_COMPLETE || !pgs->mem[i].acked)
			return false;
	return true;
}

static void temp_send(struct osd *osd)
{
	char set[TEMP_SET_MAX + 64];
	size_t at = 0;
	struct mx_msg_command c = {.prefix = "pg primary-temp", .n_args = 1};
	struct mx_wbuf w;

	if (!osd->mon || !osd->map)
		return;
	for (size_t b = 0; b < PG_BUCKETS && at < TEMP_SET_MAX; b++)
		for (struct pgstate *pgs = osd->pgs[b]; pgs && at < TEMP_SET_MAX;
		     pgs = pgs->next) {
			int32_t want;
			int k;

			if (pgs->role != ROLE_PRIMARY)
				continue;
			if (pgs->state == PG_WAIT_TEMP)
				want = pgs->temp_want;
			else if (temp_done(osd, pgs))
				want = -1;
			else
				continue;
			k = snprintf(set + at, sizeof(set) - at, "%s%d.%u:%d", at ? "," : "",
				     pgs->pool, pgs->pg, want);
			if (k > 0)
				at += (size_t)k;
		}
	if (!at)
		return;
	c.keys[0] = "set";
	c.vals[0] = set;
	mx_wbuf_init(&w);
	mx_enc_command(&w, &c);
	(void)mx_conn_send(osd->mon, MX_MSG_MON_COMMAND, ++osd->next_tid, &w);
}

/* Every acting member and one member of every maybe-rw interval since the
 * newest les has answered: choose the authority. */
static void pg_try_peer(struct osd *osd, struct pgstate *pgs)
{
	struct mx_pg_info infos[PRIOR_MAX];
	int32_t ids[PRIOR_MAX];
	int idx[PRIOR_MAX];
	struct mx_interval *iv = NULL;
	uint64_t since = 0;
	size_t k = 0;
	int n, blocked, a, r;
	struct need_ctx nc = {&pgs->pulls, &pgs->n_pulls};

	if (pgs->state != PG_PEERING)
		return;
	for (int i = 0; i < pgs->n_acting; i++) {
		struct pgpeer *pp = pg_peer(pgs, pgs->acting[i]);

		if (!pp || !pp->answered)
			return;
	}
	for (int i = 0; i < pgs->n_peers; i++) {
		if (!pgs->peers[i].answered)
			continue;
		infos[k] = pgs->peers[i].log.info;
		ids[k] = pgs->peers[i].osd;
		idx[k] = i;
		since = MX_MAX(since, infos[k].les);
		k++;
	}
	n = hist_intervals(osd, pgs, &iv);
	blocked = n > 0 ? mx_peering_blocked_by(iv, (size_t)n, since, ids, k) : -1;
	if (blocked >= 0) {
		if (!pgs->warned)
			mx_info("pg %d.%u: incomplete: waiting for an OSD of interval "
				"[%" PRIu64 ",%" PRIu64 "]",
				pgs->pool, pgs->pg, iv[blocked].first, iv[blocked].last);
		pgs->warned = true;
		free(iv);
		return;
	}
	free(iv);
	a = mx_choose_auth(infos, k);
	pgs->auth = idx[a];
	if (pgs->auth == 0) {
		pg_activate(osd, pgs);
		return;
	}
	r = mx_log_diff(pgs->peers[pgs->auth].log.e, pgs->peers[pgs->auth].log.n,
			&pgs->peers[pgs->auth].log.info, pgs->peers[0].log.e, pgs->peers[0].log.n,
			&pgs->peers[0].log.info, need_cb, &nc);
	if ((r != 0 || pgs->n_pulls > PULLS_BEFORE_TEMP) && !pgs->no_temp &&
	    !osd->cfg->no_primary_temp &&
	    member_index(pgs, pgs->peers[pgs->auth].osd) > 0) {
		/* Much to fetch, and the authority is a member: it leads for
		 * now (docs/recovery.md, "primary_temp"); I/O waits only for
		 * the next map, not for the copy. */
		missing_free_rec(osd, &pgs->pulls, &pgs->n_pulls);
		mx_info("pg %d.%u: osd.%d is authoritative and our copy %s: asking for it as "
			"the primary for now",
			pgs->pool, pgs->pg, pgs->peers[pgs->auth].osd,
			r ? "predates its log" : "misses many objects");
		pgs->state = PG_WAIT_TEMP;
		pgs->temp_want = pgs->peers[pgs->auth].osd;
		pgs->temp_since_ns = mx_now_ns();
		temp_send(osd);
		return;
	}
	if (r != 0) {
		/* Our copy is older than the authority's log tail: backfill
		 * ourselves from its listing (on_scan_reply), then pull. */
		missing_free_rec(osd, &pgs->pulls, &pgs->n_pulls);
		mx_info("pg %d.%u: osd.%d is authoritative and our copy predates its log: "
			"backfilling ourselves from it",
			pgs->pool, pgs->pg, pgs->peers[pgs->auth].osd);
		pgs->state = PG_SCANNING;
		pg_send_scan(osd, pgs);
		return;
	}
	mx_info("pg %d.%u: osd.%d is authoritative; pulling %d objects", pgs->pool, pgs->pg,
		pgs->peers[pgs->auth].osd, pgs->n_pulls);
	pgs->state = PG_PULLING;
	if (pgs->n_pulls == 0) {
		pg_pulls_done(osd, pgs);
		return;
	}
	rec_pump(osd);
}

/*
 * NOTES ON THE RECOVERY THROTTLE.  Every push (an object to a recovering
 * member) and every pull (an object to us from the authority) is one
 * recovery op.  A primary keeps at most rec_active of them in flight, or
 * rec_active_busy while clients are using this OSD (a client request or a
 * replicated write arrived in the last CLIENT_BUSY_NS), and when a rate is
 * set it spends a byte budget refilled at that rate (rec_busy_rate while
 * busy, never above rec_rate): an op starts only while the budget is not
 * negative, and costs its bytes (a push when sent, a pull when answered).
 * So an idle cluster recovers as fast as its disks and network go, and a
 * busy one leaves them to its clients.
 *
 * rec_pump starts every op the throttle allows, walking the PGs from the
 * bucket where it last stopped, so that each PG gets its turn.  It runs
 * when a slot frees (an answer comes), when ops become possible (an
 * activation is acknowledged, a listing is done), from the tick, and from
 * rec_timer once the budget has refilled.  A slot whose answer never came
 * (the connection was replaced: the tick sends the op again) is freed
 * then, or after REC_LOST_NS at the latest.
 */
#define REC_LOST_NS (10ull * 1000000000ull)
#define CLIENT_BUSY_NS (2000ull * 1000000ull)

static void pg_send_push(struct osd *osd, struct pgstate *pgs, int i, struct missing *m);

static void rec_timer_cb(uv_timer_t *t)
{
	rec_pump(t->data);
}

/* May one more recovery op start now?  If only the budget forbids it,
 * rec_timer is armed for when it allows one. */
static bool rec_may_start(struct osd *osd)
{
	uint64_t now = mx_now_ns();
	bool busy = osd->client_ns && now - osd->client_ns < CLIENT_BUSY_NS;
	uint64_t rate = busy ? osd->rec_busy_rate : 0;
	double add;

	if (osd->rec_rate && (!rate || osd->rec_rate < rate))
		rate = osd->rec_rate;
	if (osd->n_rec >= (int)(busy ? osd->rec_active_busy : osd->rec_active))
		return false;
	if (!rate) {
		osd->rec_tokens = 0;
		osd->rec_refill_ns = now;
		return true;
	}
	/* Refill, keeping at most a tenth of a second's worth. */
	add = (double)(now - osd->rec_refill_ns) * (double)rate / 1e9;
	osd->rec_refill_ns = now;
	if ((double)osd->rec_tokens + add > (double)rate / 10)
		osd->rec_tokens = (int64_t)(rate / 10);
	else
		osd->rec_tokens += (int64_t)add;
	if (osd->rec_tokens >= 0)
		return true;
	if (!uv_is_active((uv_handle_t *)&osd->rec_timer))
		uv_timer_start(&osd->rec_timer, rec_timer_cb,
			       (uint64_t)(-osd->rec_tokens) * 1000 / rate + 1, 0);
	return false;
}

static void rec_start(struct osd *osd, uint64_t tid, size_t bytes)
{
	if (osd->n_rec < REC_SLOTS_MAX)
		osd->rec[osd->n_rec++] = (struct rec_slot){tid, mx_now_ns()};
	osd->rec_tokens -= (int64_t)bytes;
}

/* The op sent with tid is over (answered, or given up for lost). */
static void rec_done(struct osd *osd, uint64_t tid)
{
	for (int i = 0; i < osd->n_rec; i++)
		if (osd->rec[i].tid == tid) {
			osd->rec[i] = osd->rec[--osd->n_rec];
			return;
		}
}

static void rec_expire(struct osd *osd)
{
	uint64_t now = mx_now_ns();

	for (int i = 0; i < osd->n_rec;)
		if (now - osd->rec[i].ns > REC_LOST_NS)
			osd->rec[i] = osd->rec[--osd->n_rec];
		else
			i++;
}

/* m went out on a connection since replaced: it is to be sent again. */
static void rec_requeue_lost(struct osd *osd, struct missing *m, int32_t to)
{
	if (m->inflight && maybe_lost(osd, to, m->gen)) {
		rec_done(osd, m->tid);
		m->inflight = false;
	}
}

static void pg_send_pull(struct osd *osd, struct pgstate *pgs, struct missing *m)
{
	struct mx_msg_pg_pull pl = {.ref = pg_ref(osd, pgs), .name = m->name, .name_len = m->len};
	struct mx_wbuf w;

	mx_wbuf_init(&w);
	mx_enc_pg_pull(&w, &pl);
	m->gen = peer_send_tid(osd, pgs->peers[pgs->auth].osd, MX_MSG_PG_PULL, &w, &m->tid);
	m->inflight = true;
	rec_start(osd, m->tid, 0); /* its bytes are counted when they come */
}

/* Start the PG's recovery ops the throttle allows; false once it allows
 * no more. */
static bool pg_recover_some(struct osd *osd, struct pgstate *pgs)
{
	if (pgs->role != ROLE_PRIMARY)
		return true;
	if (pgs->state == PG_PULLING) {
		for (struct missing *m = pgs->pulls; m; m = m->next) {
			if (m->inflight)
				continue;
			if (!rec_may_start(osd))
				return false;
			pg_send_pull(osd, pgs, m);
		}
	} else if (pgs->state == PG_ACTIVATING || pgs->state == PG_ACTIVE) {
		for (int i = 1; i < pgs->n_acting; i++) {
			struct member *mb = &pgs->mem[i];

			if (mb->state != M_RECOVERING || !mb->act_acked)
				continue;
			if (mb->backfill && osd_space(osd, pgs->acting[i]) >= MX_SPACE_BACKFILLFULL)
				continue; /* waits until it has room */
			for (struct missing *m = mb->miss; m; m = m->next) {
				if (m->inflight)
					continue;
				if (!rec_may_start(osd))
					return false;
				pg_send_push(osd, pgs, i, m);
			}
		}
	}
	return true;
}

static void rec_pump(struct osd *osd)
{
	for (size_t k = 0; k < PG_BUCKETS; k++) {
		size_t b = (osd->rec_cursor + k) % PG_BUCKETS;

		for (struct pgstate *pgs = osd->pgs[b]; pgs; pgs = pgs->next)
			if (!pg_recover_some(osd, pgs)) {
				osd->rec_cursor = b;
				return;
			}
	}
}

static void pg_send_activate(struct osd *osd, struct pgstate *pgs, int i, uint64_t les,
			     bool with_log)
{
	struct mx_msg_pg_activate a;
	struct mx_wbuf w;
	size_t at;
	uint32_t n = 0;

	memset(&a, 0, sizeof(a));
	a.ref = pg_ref(osd, pgs);
	a.les = les;
	a.with_log = with_log;
	mx_wbuf_init(&w);
	if (with_log && les) {
		/* Our current log: every write planned so far is committed
		 * first, and its REPOP precedes this message on the wire. */
		static const struct mx_version zero;
		struct mx_pg_info info;
		struct enc_log_ctx c = {.w = &w};

		commit_now(osd);
		(void)mx_store_pg_info_get(osd->store, pgs->pool, pgs->pg, &info);
		a.tail_epoch = info.log_tail.epoch;
		a.tail_seq = info.log_tail.seq;
		at = mx_enc_pg_activate_head(&w, &a);
		(void)mx_store_pg_log_walk(osd->store, pgs->pool, pgs->pg, zero, enc_log_cb, &c);
		n = c.n;
	} else {
		at = mx_enc_pg_activate_head(&w, &a);
	}
	mx_enc_pg_activate_end(&w, at, n);
	pgs->mem[i].act_sent = true;
	pgs->mem[i].act_gen = peer_send(osd, pgs->acting[i], MX_MSG_PG_ACTIVATE, &w);
}

static void pg_send_push(struct osd *osd, struct pgstate *pgs, int i, struct missing *m)
{
	struct mx_pg_ref ref = pg_ref(osd, pgs);
	struct mx_wbuf w;
	size_t bytes;
	int r;

	mx_wbuf_init(&w);
	r = encode_object(osd, &ref, m->name, m->len, &w);
	if (r < 0) {
		mx_wbuf_free(&w);
		mx_err("pg %d.%u: cannot read object '%s' to push: %s", pgs->pool, pgs->pg,
		       m->name, strerror(-r));
		return;
	}
	m->inflight = true;
	m->dirty = false;
	bytes = w.len;
	m->gen = peer_send_tid(osd, pgs->acting[i], MX_MSG_PG_PUSH, &w, &m->tid);
	rec_start(osd, m->tid, bytes);
}

/*
 * Once the PG is clean in our interval (active, size members, acting ==
 * up, every member complete with a durable les), every other OSD of the
 * prior set holds a stray copy: tell each one that is up to remove it
 * (handle_pg_remove).  Before that, a stray may hold the only copy of
 * acknowledged writes of an older interval, so it stays and takes part in
 * peering.  Re-sent by pg_tick while the message may have been lost.
 */
static void pg_remove_strays(struct osd *osd, struct pgstate *pgs)
{
	const struct mx_pool *pool = pg_pool(osd, pgs);

	if (pgs->state != PG_ACTIVE || !pool || pgs->n_acting != pool->size ||
	    pgs->n_up != pgs->n_acting ||
	    memcmp(pgs->up, pgs->acting, pgs->n_acting * sizeof(*pgs->acting)) != 0)
		return;
	for (int i = 0; i < pgs->n_acting; i++)
		if (pgs->mem[i].state != M_COMPLETE || !pgs->mem[i].acked)
			return;
	for (int k = 1; k < pgs->n_peers; k++) {
		struct pgpeer *pp = &pgs->peers[k];
		const struct mx_osd_info *o = mx_map_osd(osd->map, pp->osd);
		struct mx_msg_pg_remove rm = {.ref = pg_ref(osd, pgs), .from = osd->id};
		struct mx_wbuf w;
		bool member = false;

		for (int i = 0; i < pgs->n_acting; i++)
			member |= pgs->acting[i] == pp->osd;
		if (member || pp->rm_done || !o || !o->up ||
		    (pp->rm_sent && !maybe_lost(osd, pp->osd, pp->rm_gen)))
			continue;
		mx_wbuf_init(&w);
		mx_enc_pg_remove(&w, &rm);
		pp->rm_sent = true;
		pp->rm_gen = peer_send(osd, pp->osd, MX_MSG_PG_REMOVE, &w);
	}
}

static void pg_check_active(struct osd *osd, struct pgstate *pgs)
{
	const struct mx_pool *pool = pg_pool(osd, pgs);
	int acked = 0;

	if (pgs->state != PG_ACTIVATING || !pool)
		return;
	for (int i = 0; i < pgs->n_acting; i++)
		acked += pgs->mem[i].acked;
	if (acked < pool->min_size)
		return;
	pgs->state = PG_ACTIVE;
	mx_info("pg %d.%u: active in interval %" PRIu64 " (%d of %d members complete)", pgs->pool,
		pgs->pg, pgs->interval, acked, pgs->n_acting);
	run_held_ops(osd, pgs);
	pg_remove_strays(osd, pgs);
}

/* A recovering member has every object: it adopts our log and les. */
static void member_maybe_complete(struct osd *osd, struct pgstate *pgs, int i)
{
	struct member *mb = &pgs->mem[i];

	if (mb->state != M_RECOVERING || mb->n_miss)
		return;
	mb->state = M_COMPLETE;
	mb->acked = false;
	pg_send_activate(osd, pgs, i, pgs->interval, true);
	mx_info("pg %d.%u: osd.%d recovered", pgs->pool, pgs->pg, pgs->acting[i]);
}

/* We hold the authoritative state: make our les durable and bring every
 * other acting member up to date. */
static void pg_activate(struct osd *osd, struct pgstate *pgs)
{
	struct mx_pg_info info;
	struct pglog *mine = &pgs->peers[0].log;
	int r;

	pgs->state = PG_ACTIVATING;
	commit_now(osd);
	(void)mx_store_pg_info_get(osd->store, pgs->pool, pgs->pg, &info);
	info.les = pgs->interval;
	info.n_acting = pgs->n_acting;
	memset(info.acting, 0, sizeof(info.acting));
	memcpy(info.acting, pgs->acting, pgs->n_acting * sizeof(int32_t));
	r = mx_store_queue_pg_info(osd->store, pgs->pool, pgs->pg, &info);
	if (r < 0)
		fatal_store(r);
	commit_now(osd);
	pgs->mem[0].state = M_COMPLETE;
	pgs->mem[0].acked = true;
	for (int i = 1; i < pgs->n_acting; i++) {
		struct member *mb = &pgs->mem[i];
		struct pgpeer *pp = pg_peer(pgs, pgs->acting[i]);
		struct need_ctx nc = {&mb->miss, &mb->n_miss};

		/* pg_try_peer waited for every acting member's answer. */
		r = pp ? mx_log_diff(mine->e, mine->n, &mine->info, pp->log.e, pp->log.n,
				     &pp->log.info, need_cb, &nc)
		       : 1;
		if (r == 1) {
			missing_free_rec(osd, &mb->miss, &mb->n_miss);
			(void)mx_store_list(osd->store, pgs->pool, pgs->pg, NULL, 0,
					    list_missing_cb, &nc);
			mb->state = M_RECOVERING;
			mb->backfill = true;
			mx_info("pg %d.%u: osd.%d needs a backfill (%d objects)", pgs->pool,
				pgs->pg, pgs->acting[i], mb->n_miss);
			pg_send_activate(osd, pgs, i, 0, true);
		} else if (mb->n_miss == 0) {
			mb->state = M_COMPLETE;
			pg_send_activate(osd, pgs, i, pgs->interval, false);
		} else {
			mb->state = M_RECOVERING;
			mx_info("pg %d.%u: osd.%d misses %d objects", pgs->pool, pgs->pg,
				pgs->acting[i], mb->n_miss);
			pg_send_activate(osd, pgs, i, 0, false);
		}
	}
	pg_check_active(osd, pgs);
}


static void on_pg_notify(struct osd *osd, struct peer *p, uint8_t *payload, uint32_t len)
{
	struct mx_msg_pg_notify m;
	struct pgstate *pgs;
	struct pgpeer *pp;

	if (mx_dec_pg_notify(payload, len, &m) < 0)
		return;
	pgs = pg_find(osd, m.ref.pool, m.ref.pg);
	if (!pgs || pgs->role != ROLE_PRIMARY || pgs->state != PG_PEERING ||
	    pgs->interval != m.ref.interval || m.status)
		return;
	pp = pg_peer(pgs, p->id);
	if (!pp || pp->answered)
		return;
	pglog_free(&pp->log);
	info_from_wire(&m.info, &pp->log.info);
	for (uint32_t i = 0; i < m.n; i++) {
		struct mx_wire_log_entry we;
		struct mx_pglog_entry e;

		if (mx_pg_log_next(&m.entries, &we) < 0) {
			pglog_free(&pp->log);
			return;
		}
		entry_from_wire(&we, &e);
		(void)pglog_add(&pp->log, &e);
	}
	pp->answered = true;
	pg_try_peer(osd, pgs);
}

static void on_pg_activate_reply(struct osd *osd, struct peer *p, uint8_t *payload, uint32_t len)
{
	struct mx_msg_pg_ack a;
	struct pgstate *pgs;
	int i;

	if (mx_dec_pg_ack(payload, len, &a) < 0)
		return;
	pgs = pg_find(osd, a.ref.pool, a.ref.pg);
	if (!pgs || pgs->role != ROLE_PRIMARY || pgs->interval != a.ref.interval ||
	    (pgs->state != PG_ACTIVATING && pgs->state != PG_ACTIVE))
		return;
	i = member_index(pgs, p->id);
	if (i < 0)
		return;
	if (a.status) {
		/* Refused: its map does not yet show it a member of this
		 * interval (it was marked down and is booting again, say).
		 * Nothing will come later over this connection: the tick
		 * sends the activation again until the member takes it or
		 * the PG moves on. */
		mx_debug("pg %d.%u: osd.%d refused the activation: %s", pgs->pool, pgs->pg, p->id,
			 strerror(-mx_wire_to_errno(a.status)));
		pgs->mem[i].act_gen = 0;
		return;
	}
	if (pgs->mem[i].state == M_COMPLETE) {
		pgs->mem[i].acked = true;
		pg_check_active(osd, pgs);
		pg_remove_strays(osd, pgs);
	} else if (pgs->mem[i].state == M_RECOVERING && !pgs->mem[i].act_acked) {
		/* It accepts this interval's pushes now. */
		pgs->mem[i].act_acked = true;
		pgs->mem[i].progress_ns = mx_now_ns();
		member_maybe_complete(osd, pgs, i);
		rec_pump(osd);
	}
}

static void on_pg_push_reply(struct osd *osd, struct peer *p, uint64_t tid, uint8_t *payload,
			     uint32_t len)
{
	struct mx_msg_pg_ack a;
	struct pgstate *pgs;
	struct member *mb;
	struct missing *m;
	int i;

	if (mx_dec_pg_ack(payload, len, &a) < 0)
		return;
	pgs = pg_find(osd, a.ref.pool, a.ref.pg);
	if (!pgs || pgs->role != ROLE_PRIMARY || pgs->interval != a.ref.interval)
		return;
	i = member_index(pgs, p->id);
	if (i < 0 || pgs->mem[i].state != M_RECOVERING)
		return;
	mb = &pgs->mem[i];
	for (m = mb->miss; m && !(m->inflight && m->tid == tid); m = m->next)
		;
	if (!m)
		return;
	if (a.status) {
		mx_warn("pg %d.%u: osd.%d refused a push of '%s': %s", pgs->pool, pgs->pg, p->id,
			m->name, strerror(-mx_wire_to_errno(a.status)));
		m->gen = 0; /* the next tick sends it again */
		return;
	}
	if (m->dirty) {
		m->inflight = false; /* written meanwhile: push it again */
		rec_pump(osd);
		return;
	}
	missing_del(&mb->miss, &mb->n_miss, m);
	mb->progress_ns = mx_now_ns();
	member_maybe_complete(osd, pgs, i);
	rec_pump(osd);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One of our objects: pull it (its absence) if the authority lacks it. */
static int scan_local_cb(void *arg, const struct mx_objkey *key, const struct mx_obj_stat *st)
{
	struct pgstate *pgs = arg;
	char *name = mx_xcalloc(1, key->name_len + 1);
	bool have;

	(void)st;
	memcpy(name, key->name, key->name_len);
	have = bsearch(&name, pgs->scan_names, pgs->scan_n, sizeof(*pgs->scan_names),
		       cmp_name) != NULL;
	free(name);
	return have ? 0 : missing_add(&pgs->pulls, &pgs->n_pulls, key->name, key->name_len);
}

/*
 * A chunk of the authority's listing (the MX_MSG_OSD_LIST_REPLY to our
 * PG_SCAN with that tid): every object it holds in another version than
 * ours, or that we lack, is to be pulled.  After the last chunk, so is
 * every object we hold and it does not (the pull brings its absence).
 * The authority does not change meanwhile: it answered our query, so it
 * takes writes only from the primary of our interval, which is us.
 */
static void on_scan_reply(struct osd *osd, struct peer *p, uint64_t tid, uint8_t *payload,
			  uint32_t len)
{
	struct mx_msg_osd_list_reply lr;
	struct mx_list_entry e;
	struct pgstate *pgs = NULL;

	if (mx_dec_osd_list_reply(payload, len, &lr) < 0)
		return;
	for (size_t b = 0; b < PG_BUCKETS && !pgs; b++)
		for (struct pgstate *x = osd->pgs[b]; x && !pgs; x = x->next)
			if (x->role == ROLE_PRIMARY && x->state == PG_SCANNING &&
			    x->scan_tid == tid && x->peers[x->auth].osd == p->id)
				pgs = x;
	if (!pgs)
		return;
	if (lr.status) {
		mx_warn("pg %d.%u: osd.%d could not list its copy: %s", pgs->pool, pgs->pg, p->id,
			strerror(-mx_wire_to_errno(lr.status)));
		pgs->scan_gen = 0; /* the tick asks again */
		return;
	}
	commit_now(osd);
	for (uint32_t i = 0; i < lr.n; i++) {
		struct mx_objkey key = {.pool = pgs->pool, .pg = pgs->pg};
		struct mx_obj_stat st;
		struct mx_version v;
		int r;

		if (mx_list_next(&lr, &e) < 0) {
			pgs->scan_gen = 0;
			return;
		}
		key.name = e.name;
		key.name_len = e.name_len;
		v = (struct mx_version){e.ver_epoch, e.ver_seq};
		r = mx_store_stat(osd->store, &key, &st);
		if (r < 0 || mx_version_cmp(st.version, v) != 0)
			(void)missing_add(&pgs->pulls, &pgs->n_pulls, e.name, e.name_len);
		if (pgs->scan_n == pgs->scan_cap) {
			pgs->scan_cap = pgs->scan_cap ? 2 * pgs->scan_cap : 64;
			pgs->scan_names = realloc(pgs->scan_names,
						  pgs->scan_cap * sizeof(*pgs->scan_names));
			if (!pgs->scan_names) {
				mx_err("out of memory");
				exit(1);
			}
		}
		pgs->scan_names[pgs->scan_n] = mx_xcalloc(1, e.name_len + 1);
		memcpy(pgs->scan_names[pgs->scan_n], e.name, e.name_len);
		free(pgs->scan_cursor);
		pgs->scan_cursor = mx_xcalloc(1, e.name_len + 1);
		memcpy(pgs->scan_cursor, e.name, e.name_len);
		pgs->scan_n++;
	}
	if (!lr.done) {
		pg_send_scan(osd, pgs);
		return;
	}
	qsort(pgs->scan_names, pgs->scan_n, sizeof(*pgs->scan_names), cmp_name);
	(void)mx_store_list(osd->store, pgs->pool, pgs->pg, NULL, 0, scan_local_cb, pgs);
	mx_info("pg %d.%u: backfilling ourselves from osd.%d (%zu objects there): "
		"pulling %d objects",
		pgs->pool, pgs->pg, p->id, pgs->scan_n, pgs->n_pulls);
	pgs->state = PG_PULLING;
	if (pgs->n_pulls == 0) {
		pg_pulls_done(osd, pgs);
		return;
	}
	rec_pump(osd);
}

static void on_pg_remove_reply(struct osd *osd, struct peer *p, uint8_t *payload, uint32_t len)
{
	struct mx_msg_pg_ack a;
	struct pgstate *pgs;
	struct pgpeer *pp;

	if (mx_dec_pg_ack(payload, len, &a) < 0)
		return;
	pgs = pg_find(osd, a.ref.pool, a.ref.pg);
	if (!pgs || pgs->role != ROLE_PRIMARY || pgs->interval != a.ref.interval)
		return;
	pp = pg_peer(pgs, p->id);
	if (!pp || !pp->rm_sent)
		return;
	/* Refused (ESTALE): its map says the PG moved on; so will ours. */
	pp->rm_done = true;
	if (!a.status)
		mx_info("pg %d.%u: osd.%d removed its stray copy", pgs->pool, pgs->pg, p->id);
}

/* The authority's answer to a pull: apply it to our copy. */
static void on_pull_answer(struct osd *osd, struct peer *p, uint8_t *payload, uint32_t len)
{
	struct mx_msg_pg_object o;
	struct pgstate *pgs;
	struct missing *m;
	int r;

	if (mx_dec_pg_object(payload, len, &o) < 0)
		return;
	pgs = pg_find(osd, o.ref.pool, o.ref.pg);
	if (!pgs || pgs->role != ROLE_PRIMARY || pgs->state != PG_PULLING ||
	    pgs->interval != o.ref.interval || pgs->peers[pgs->auth].osd != p->id)
		return;
	m = missing_find(pgs->pulls, o.name, o.name_len);
	if (!m)
		return;
	if (o.status) {
		mx_warn("pg %d.%u: osd.%d could not send '%s': %s", pgs->pool, pgs->pg, p->id,
			m->name, strerror(-mx_wire_to_errno(o.status)));
		m->gen = 0; /* the next tick asks again */
		return;
	}
	r = apply_object(osd, &o);
	if (r < 0) {
		mx_err("pg %d.%u: cannot apply pulled object '%s': %s", pgs->pool, pgs->pg,
		       m->name, strerror(-r));
		m->gen = 0;
		return;
	}
	osd->rec_tokens -= (int64_t)len;
	missing_del(&pgs->pulls, &pgs->n_pulls, m);
	if (pgs->n_pulls == 0)
		pg_pulls_done(osd, pgs);
	rec_pump(osd);
}

/*
 * Scrub (docs/recovery.md, "Scrub") ----------------------------------------
 *
 * NOTES ON SCRUB.  A scrub runs on the primary, one at a time per PG
 * (pgs->scrub), started by a client's PG_SCRUB (handle_pg_scrub) or by the
 * schedule (scrub_schedule, from pg_tick).  Only an ACTIVE PG is scrubbed,
 * and only its members that are complete with a durable les.
 *
 *   SC_DRAIN  (scrub_start) the PG's new client writes are held (handle_op
 *             queues them on pgs->ops, as during peering); we wait until
 *             the writes in flight are finished (scrub_advance, pg_tick)
 *   SC_GATHER (scrub_advance) our own scrub map is built at once
 *             (scrub_build); every other member is asked for its map
 *             (SCRUB_MAP: handle_scrub_map there, on_scrub_map_reply here)
 *   compare   (scrub_compare) every object named by any map: a member
 *             lacking it, holding another version, size or attribute
 *             digest, another data digest (deep), or a damaged copy makes
 *             it inconsistent (logged at warn).  The good copy is the
 *             primary's unless it is damaged or in the minority, then one
 *             that is undamaged and matches the majority.
 *   SC_REPAIR (repair only) the good copy is pulled to the primary if the
 *             primary's is bad (PG_PULL; scrub_on_pull_answer), then pushed
 *             to every other bad member (PG_PUSH; scrub_on_push_reply),
 *             both as recovery does (encode_object, apply_object)
 *   done      (scrub_finish) the client gets the counts, held writes run.
 * Writes stay held through the whole scrub, which is bounded by
 * SCRUB_TIMEOUT_MS (scrub_tick fails it with ETIMEDOUT); a new interval
 * ends it with EAGAIN (scrub_abort from pgs_update).  Requests that a
 * replaced connection may have lost are sent again by scrub_tick.
 */

#define SCRUB_TIMEOUT_MS 30000
#define SCRUB_READ_CHUNK (1u << 20)

enum { SC_DRAIN = 1, SC_GATHER, SC_REPAIR };

/* One object of a scrub map. */
struct scrub_obj {
	char *name; /* From malloc(), NUL-terminated */
	uint32_t len;
	struct mx_version ver;
	uint64_t size;
	uint32_t attr, data; /* digests */
	uint8_t flags;       /* MX_SCRUB_E_* */
};

/* A member's scrub map, as the primary gathers it. */
struct scrub_map {
	bool answered;
	int status;        /* 0, or why the member could not be scrubbed */
	uint64_t tid, gen; /* of the request */
	struct scrub_obj *o; /* From malloc(); sorted by name */
	size_t n;
};

/* An object to repair. */
struct repair {
	struct repair *next;
	char *name; /* From malloc() */
	uint32_t len;
	int auth;       /* acting index of the good copy */
	uint32_t bad;   /* acting indexes still to repair (bit i) */
	uint32_t busy;  /* of those, a push or pull is in flight */
	uint64_t tid[MX_MAX_SIZE], gen[MX_MAX_SIZE];
	bool failed;
};

struct scrub {
	uint32_t flags;     /* MX_SCRUB_* */
	struct session *s;  /* the client to answer (a reference); NULL if scheduled */
	uint64_t tid;
	uint64_t start_ns;
	int phase;
	uint32_t members;   /* acting indexes scrubbed (bit i) */
	struct scrub_map maps[MX_MAX_SIZE];
	struct repair *rep; /* From malloc(), each */
	struct mx_msg_pg_scrub_reply res;
};

static void scrub_objs_free(struct scrub_obj *o, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(o[i].name);
	free(o);
}

static void scrub_free(struct scrub *sc)
{
	if (!sc)
		return;
	for (int i = 0; i < MX_MAX_SIZE; i++)
		scrub_objs_free(sc->maps[i].o, sc->maps[i].n);
	while (sc->rep) {
		struct repair *r = sc->rep;

		sc->rep = r->next;
		free(r->name);
		free(r);
	}
	if (sc->s)
		session_put(sc->s);
	free(sc);
}

struct scrub_build_ctx {
	struct scrub_obj *o;
	size_t n, cap;
};

static int scrub_list_cb(void *arg, const struct mx_objkey *key, const struct mx_obj_stat *st)
{
	struct scrub_build_ctx *c = arg;
	struct scrub_obj *x;

	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		struct scrub_obj *o = realloc(c->o, cap * sizeof(*o));

		if (!o)
			return -ENOMEM;
		c->o = o;
		c->cap = cap;
	}
	x = &c->o[c->n++];
	memset(x, 0, sizeof(*x));
	x->name = mx_xcalloc(1, key->name_len + 1);
	memcpy(x->name, key->name, key->name_len);
	x->len = key->name_len;
	x->ver = st->version;
	x->size = st->size;
	return 0;
}

static int scrub_xattr_cb(void *arg, const char *xname, const void *value, uint32_t len)
{
	uint32_t *crc = arg;
	uint8_t l[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
			(uint8_t)(len >> 24)};

	*crc = mx_crc32c(*crc, xname, strlen(xname) + 1);
	*crc = mx_crc32c(*crc, l, sizeof(l));
	*crc = mx_crc32c(*crc, value, len);
	return 0;
}

static int cmp_scrub_obj(const void *a, const void *b)
{
	const struct scrub_obj *x = a, *y = b;
	int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Build our scrub map of (pool, pg) from committed state: per object its
 * version, size, attribute digest and, if deep, the CRC-32C of its data read
 * through mx_store_read (a block failing its checksum marks the object
 * damaged).  The caller commits first.  *out is from malloc(), sorted by
 * name.  0, or a negative errno (store error). */
static int scrub_build(struct osd *osd, int32_t pool, uint32_t pg, bool deep,
		       struct scrub_obj **out, size_t *n)
{
	struct scrub_build_ctx c = {0};
	uint8_t *buf = NULL;
	int r;

	r = mx_store_list(osd->store, pool, pg, NULL, 0, scrub_list_cb, &c);
	if (r < 0)
		goto fail;
	if (deep)
		buf = mx_xcalloc(1, SCRUB_READ_CHUNK);
	for (size_t i = 0; i < c.n; i++) {
		struct scrub_obj *x = &c.o[i];
		struct mx_objkey key = {.pool = pool, .pg = pg, .name = x->name,
					.name_len = x->len};

		r = mx_store_listxattrs(osd->store, &key, scrub_xattr_cb, &x->attr);
		if (r < 0)
			goto fail;
		for (uint64_t off = 0; deep && off < x->size;) {
			uint32_t got = 0;

			r = mx_store_read(osd->store, &key, off, SCRUB_READ_CHUNK, buf, &got);
			if (r == -EIO) {
				x->flags |= MX_SCRUB_E_DAMAGED;
				x->data = 0;
				break;
			}
			if (r < 0)
				goto fail;
			if (got == 0)
				break;
			x->data = mx_crc32c(x->data, buf, got);
			off += got;
		}
	}
	free(buf);
	qsort(c.o, c.n, sizeof(*c.o), cmp_scrub_obj);
	*out = c.o;
	*n = c.n;
	return 0;
fail:
	free(buf);
	scrub_objs_free(c.o, c.n);
	return r;
}

static void scrub_send_map_req(struct osd *osd, struct pgstate *pgs, int i)
{
	struct mx_msg_scrub_map_req q = {.ref = pg_ref(osd, pgs),
					 .flags = pgs->scrub->flags & MX_SCRUB_DEEP};
	struct scrub_map *sm = &pgs->scrub->maps[i];
	struct mx_wbuf w;

	mx_wbuf_init(&w);
	mx_enc_scrub_map_req(&w, &q);
	sm->gen = peer_send_tid(osd, pgs->acting[i], MX_MSG_PG_SCRUB_MAP, &w, &sm->tid);
}

/* A scrub that ran to its end sets the PG's scrub stamps and whether it
 * is inconsistent (what it found minus what it repaired) for the PG
 * statistics; one that failed changes neither. */
static void pgstat_note_scrub(struct pgstate *pgs, const struct scrub *sc, int status)
{
	uint64_t now = mx_wall_ms();

	if (status < 0)
		return;
	pgs->st.scrub_ms = now;
	if (sc->flags & MX_SCRUB_DEEP)
		pgs->st.deep_scrub_ms = now;
	pgs->st.inconsistent = sc->res.inconsistent > sc->res.repaired;
}

/* End the PG's scrub: answer the client (status, or the counts), release
 * the held writes. */
static void scrub_finish(struct osd *osd, struct pgstate *pgs, int status)
{
	struct scrub *sc = pgs->scrub;
	struct mx_wbuf w;
	uint64_t now = mx_now_ns();

	if (!sc)
		return;
	pgs->scrub = NULL;
	sc->res.status = mx_errno_to_wire(status);
	sc->res.epoch = osd->map ? osd->map->epoch : 0;
	/* A failed scheduled scrub waits for its next turn too. */
	pgs->scrub_ns = now;
	if (sc->flags & MX_SCRUB_DEEP)
		pgs->deep_scrub_ns = now;
	pgstat_note_scrub(pgs, sc, status);
	if (status < 0)
		mx_warn("pg %d.%u: %sscrub failed: %s", pgs->pool, pgs->pg,
			sc->flags & MX_SCRUB_DEEP ? "deep " : "", strerror(-status));
	else
		mx_log(sc->res.inconsistent || sc->res.errors ? MX_LOG_WARN : MX_LOG_INFO,
		       "pg %d.%u: %sscrub%s: %u objects, %u inconsistent, %u repaired, %u errors",
		       pgs->pool, pgs->pg, sc->flags & MX_SCRUB_DEEP ? "deep " : "",
		       sc->flags & MX_SCRUB_REPAIR ? " and repair" : "", sc->res.scrubbed,
		       sc->res.inconsistent, sc->res.repaired, sc->res.errors);
	if (sc->s) {
		mx_wbuf_init(&w);
		mx_enc_pg_scrub_reply(&w, &sc->res);
		(void)session_send(sc->s, MX_MSG_PG_SCRUB_REPLY, sc->tid, &w);
	}
	scrub_free(sc);
	osd->n_scrubs--;
	run_held_ops(osd, pgs);
}

/* The PG's interval ended (pgs_update): the scrub ends with EAGAIN. */
static void scrub_abort(struct osd *osd, struct pgstate *pgs)
{
	scrub_finish(osd, pgs, -EAGAIN);
}

static void repair_send(struct osd *osd, struct pgstate *pgs, struct repair *rp);
static void scrub_advance(struct osd *osd, struct pgstate *pgs);

static bool scrub_same(const struct scrub_obj *a, const struct scrub_obj *b, bool deep)
{
	if (!a || !b)
		return a == b;
	return mx_version_cmp(a->ver, b->ver) == 0 && a->size == b->size && a->attr == b->attr &&
	       (!deep || a->data == b->data);
}

static void scrub_log_diff(const struct pgstate *pgs, int32_t osd_id, const struct scrub_obj *x,
			   const struct scrub_obj *g, const char *name, bool deep)
{
	const char *why;

	if (x && (x->flags & MX_SCRUB_E_DAMAGED))
		why = "damaged (a block fails its checksum)";
	else if (!g)
		why = "present, the good copy is absent";
	else if (!x)
		why = "missing";
	else if (mx_version_cmp(x->ver, g->ver) != 0)
		why = "another version";
	else if (x->size != g->size)
		why = "another size";
	else if (x->attr != g->attr)
		why = "other attributes";
	else if (deep && x->data != g->data)
		why = "other data";
	else
		why = "inconsistent";
	mx_warn("pg %d.%u: scrub: object '%s' on osd.%d: %s", pgs->pool, pgs->pg, name, osd_id,
		why);
}

/* Compare the gathered maps (see NOTES ON SCRUB); with repair, start it. */
static void scrub_compare(struct osd *osd, struct pgstate *pgs)
{
	struct scrub *sc = pgs->scrub;
	bool deep = sc->flags & MX_SCRUB_DEEP;
	size_t at[MX_MAX_SIZE] = {0};
	int n = pgs->n_acting;

	for (;;) {
		const struct scrub_obj *e[MX_MAX_SIZE] = {0}, *low = NULL;
		int votes[MX_MAX_SIZE] = {0}, auth = -1;
		uint32_t bad = 0;

		/* The lowest name not yet compared, across the maps. */
		for (int i = 0; i < n; i++) {
			struct scrub_map *sm = &sc->maps[i];

			if ((sc->members & (1u << i)) && at[i] < sm->n &&
			    (!low || cmp_scrub_obj(&sm->o[at[i]], low) < 0))
				low = &sm->o[at[i]];
		}
		if (!low)
			break;
		for (int i = 0; i < n; i++) {
			struct scrub_map *sm = &sc->maps[i];

			if ((sc->members & (1u << i)) && at[i] < sm->n &&
			    cmp_scrub_obj(&sm->o[at[i]], low) == 0)
				e[i] = &sm->o[at[i]];
		}
		sc->res.scrubbed++;
		/* Votes: undamaged copies (absence included) that agree. */
		for (int i = 0; i < n; i++) {
			if (!(sc->members & (1u << i)) || (e[i] && (e[i]->flags & MX_SCRUB_E_DAMAGED)))
				continue;
			for (int j = 0; j < n; j++)
				if ((sc->members & (1u << j)) &&
				    !(e[j] && (e[j]->flags & MX_SCRUB_E_DAMAGED)) &&
				    scrub_same(e[i], e[j], deep))
					votes[i]++;
		}
		for (int i = 0; i < n; i++)
			if (votes[i] && (auth < 0 || votes[i] > votes[auth]))
				auth = i;
		if (auth >= 0 && votes[0] == votes[auth])
			auth = 0; /* the primary's, unless damaged or in the minority */
		for (int i = 0; i < n; i++) {
			if (!(sc->members & (1u << i)))
				continue;
			if ((e[i] && (e[i]->flags & MX_SCRUB_E_DAMAGED)) ||
			    (auth >= 0 && !scrub_same(e[i], e[auth], deep)))
				bad |= 1u << i;
		}
		if (bad) {
			sc->res.inconsistent++;
			for (int i = 0; i < n; i++)
				if (bad & (1u << i))
					scrub_log_diff(pgs, pgs->acting[i], e[i],
						       auth >= 0 ? e[auth] : NULL, low->name, deep);
			if (auth < 0) {
				mx_warn("pg %d.%u: scrub: object '%s': no good copy", pgs->pool,
					pgs->pg, low->name);
				sc->res.errors++;
			} else if (sc->flags & MX_SCRUB_REPAIR) {
				struct repair *rp = mx_xcalloc(1, sizeof(*rp));

				rp->name = mx_xcalloc(1, low->len + 1);
				memcpy(rp->name, low->name, low->len);
				rp->len = low->len;
				rp->auth = auth;
				rp->bad = bad;
				rp->next = sc->rep;
				sc->rep = rp;
			}
		}
		for (int i = 0; i < n; i++)
			if (e[i])
				at[i]++;
	}
	if (!sc->rep) {
		scrub_finish(osd, pgs, 0);
		return;
	}
	sc->phase = SC_REPAIR;
	for (struct repair *rp = sc->rep; rp; rp = rp->next)
		repair_send(osd, pgs, rp);
	scrub_advance(osd, pgs);
}

/* Send what a repair needs next: the pull to us if our copy is bad, else a
 * push of our copy to every bad member with nothing in flight. */
static void repair_send(struct osd *osd, struct pgstate *pgs, struct repair *rp)
{
	if (rp->failed)
		return;
	if (rp->bad & 1u) {
		struct mx_msg_pg_pull pl = {.ref = pg_ref(osd, pgs), .name = rp->name,
					    .name_len = rp->len};
		struct mx_wbuf w;

		if (rp->busy & 1u)
			return;
		mx_wbuf_init(&w);
		mx_enc_pg_pull(&w, &pl);
		rp->busy |= 1u;
		rp->gen[0] = peer_send_tid(osd, pgs->acting[rp->auth], MX_MSG_PG_PULL, &w,
					   &rp->tid[0]);
		return;
	}
	for (int i = 1; i < pgs->n_acting; i++) {
		struct mx_pg_ref ref = pg_ref(osd, pgs);
		struct mx_wbuf w;
		int r;

		if (!(rp->bad & (1u << i)) || (rp->busy & (1u << i)))
			continue;
		mx_wbuf_init(&w);
		r = encode_object(osd, &ref, rp->name, rp->len, &w);
		if (r < 0) {
			mx_wbuf_free(&w);
			mx_err("pg %d.%u: repair: cannot read '%s': %s", pgs->pool, pgs->pg,
			       rp->name, strerror(-r));
			rp->failed = true;
			return;
		}
		rp->busy |= 1u << i;
		rp->gen[i] = peer_send_tid(osd, pgs->acting[i], MX_MSG_PG_PUSH, &w, &rp->tid[i]);
	}
}

/* Move the PG's scrub on as far as it goes now. */
static void scrub_advance(struct osd *osd, struct pgstate *pgs)
{
	struct scrub *sc = pgs->scrub;
	bool done = true;

	if (!sc)
		return;
	if (sc->phase == SC_DRAIN) {
		const struct mx_pool *pool = pg_pool(osd, pgs);
		int r;

		if (!mx_list_empty(&pgs->pops))
			return;
		commit_now(osd);
		sc->phase = SC_GATHER;
		for (int i = 0; i < pgs->n_acting; i++)
			if (pgs->mem[i].state == M_COMPLETE && pgs->mem[i].acked)
				sc->members |= 1u << i;
		if (pool && pgs->n_acting < pool->size)
			mx_info("pg %d.%u: scrubbing %d of %u copies (degraded)", pgs->pool,
				pgs->pg, pgs->n_acting, pool->size);
		r = scrub_build(osd, pgs->pool, pgs->pg, sc->flags & MX_SCRUB_DEEP, &sc->maps[0].o,
				&sc->maps[0].n);
		if (r < 0) {
			scrub_finish(osd, pgs, r);
			return;
		}
		sc->maps[0].answered = true;
		for (int i = 1; i < pgs->n_acting; i++)
			if (sc->members & (1u << i))
				scrub_send_map_req(osd, pgs, i);
	}
	if (sc->phase == SC_GATHER) {
		for (int i = 0; i < pgs->n_acting; i++)
			if ((sc->members & (1u << i)) && !sc->maps[i].answered)
				return;
		scrub_compare(osd, pgs); /* finishes, or moves to SC_REPAIR */
		return;
	}
	for (struct repair *rp = sc->rep; rp; rp = rp->next)
		if (!rp->failed && rp->bad)
			done = false;
	if (!done)
		return;
	for (struct repair *rp = sc->rep; rp; rp = rp->next) {
		if (rp->failed)
			sc->res.errors++;
		else
			sc->res.repaired++;
	}
	scrub_finish(osd, pgs, 0);
}

static int scrub_start(struct osd *osd, struct pgstate *pgs, uint32_t flags, struct session *s,
		       uint64_t tid)
{
	struct scrub *sc;

	if (pgs->scrub)
		return -EBUSY;
	sc = mx_xcalloc(1, sizeof(*sc));
	sc->flags = flags;
	sc->s = s;
	if (s)
		s->refs++;
	sc->tid = tid;
	sc->start_ns = mx_now_ns();
	sc->phase = SC_DRAIN;
	pgs->scrub = sc;
	osd->n_scrubs++;
	mx_info("pg %d.%u: %sscrub%s starts", pgs->pool, pgs->pg,
		flags & MX_SCRUB_DEEP ? "deep " : "", flags & MX_SCRUB_REPAIR ? " and repair" : "");
	scrub_advance(osd, pgs);
	return 0;
}

static void reply_scrub_status(struct osd *osd, struct session *s, uint64_t tid, int err)
{
	struct mx_msg_pg_scrub_reply rr = {.status = mx_errno_to_wire(err),
					   .epoch = osd->map ? osd->map->epoch : 0};
	struct mx_wbuf w;

	mx_wbuf_init(&w);
	mx_enc_pg_scrub_reply(&w, &rr);
	(void)session_send(s, MX_MSG_PG_SCRUB_REPLY, tid, &w);
}

/* PG_SCRUB from a client: the checks of handle_op, then the PG must be
 * active here and not scrubbing already (EBUSY). */
static void handle_pg_scrub(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
			    uint32_t len)
{
	struct mx_msg_pg_scrub m;
	const struct mx_pool *pool;
	struct pgstate *pgs;
	int32_t acting[MX_MAX_SIZE];
	int n;

	if (mx_dec_pg_scrub(payload, len, &m) < 0) {
		(void)mx_conn_send_error(s->conn, tid, -EBADMSG, "malformed scrub request");
		return;
	}
	if (!osd->map || !osd->booted || m.epoch > osd->map->epoch) {
		reply_scrub_status(osd, s, tid, -EAGAIN);
		return;
	}
	pool = mx_map_pool_by_id(osd->map, m.pool);
	if (!pool || m.pg >= pool->pg_num) {
		reply_scrub_status(osd, s, tid, pool ? -EINVAL : -ENOENT);
		return;
	}
	n = mx_pg_acting(osd->pl, osd->map, pool, m.pg, acting, MX_MAX_SIZE);
	if (n <= 0 || acting[0] != osd->id) {
		reply_scrub_status(osd, s, tid, -ESTALE);
		return;
	}
	pgs = pg_get(osd, m.pool, m.pg);
	if (pgs->role != ROLE_PRIMARY || pgs->state != PG_ACTIVE) {
		reply_scrub_status(osd, s, tid, -EAGAIN);
		return;
	}
	if (scrub_start(osd, pgs, m.flags, s, tid) < 0)
		reply_scrub_status(osd, s, tid, -EBUSY);
}

/* SCRUB_MAP from the primary of our current interval: our scrub map of the
 * PG, from committed state (what we staged is committed first, so every
 * replicated write acknowledged before the request is in it). */
static void handle_scrub_map(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
			     uint32_t len)
{
	struct mx_msg_scrub_map_req q;
	struct pgstate *pgs = NULL;
	struct scrub_obj *o = NULL;
	struct mx_pg_ref ref;
	struct mx_wbuf w;
	size_t n = 0, at;
	int r;

	if (mx_dec_scrub_map_req(payload, len, &q) < 0) {
		(void)mx_conn_send_error(s->conn, tid, -EBADMSG, "malformed scrub map request");
		return;
	}
	r = replica_check(osd, s, MX_MSG_PG_SCRUB_MAP, tid, q.ref.epoch, q.ref.pool, q.ref.pg,
			  q.ref.interval, payload, len, &pgs);
	if (r == 1)
		return;
	if (r == 0 && pgs->state != R_ACTIVE)
		r = -ESTALE;
	if (r == 0) {
		commit_now(osd);
		r = scrub_build(osd, q.ref.pool, q.ref.pg, q.flags & MX_SCRUB_DEEP, &o, &n);
	}
	ref = q.ref;
	ref.epoch = osd->map ? osd->map->epoch : 0;
	mx_wbuf_init(&w);
	at = mx_enc_scrub_map_head(&w, mx_errno_to_wire(r), &ref, q.flags);
	for (size_t i = 0; i < n; i++) {
		struct mx_scrub_entry e = {.name = o[i].name, .name_len = o[i].len,
					   .ver_epoch = o[i].ver.epoch, .ver_seq = o[i].ver.seq,
					   .size = o[i].size, .attr_digest = o[i].attr,
					   .data_digest = o[i].data, .flags = o[i].flags};

		mx_enc_scrub_entry(&w, &e);
	}
	mx_enc_scrub_map_end(&w, at, (uint32_t)n);
	scrub_objs_free(o, n);
	if (r < 0 && r != -ESTALE)
		mx_warn("pg %d.%u: cannot build a scrub map: %s", q.ref.pool, q.ref.pg,
			strerror(-r));
	(void)session_send(s, MX_MSG_PG_SCRUB_MAP_REPLY, tid, &w);
}

static struct pgstate *scrub_pg(struct osd *osd, const struct mx_pg_ref *ref)
{
	struct pgstate *pgs = pg_find(osd, ref->pool, ref->pg);

	if (!pgs || pgs->role != ROLE_PRIMARY || pgs->interval != ref->interval || !pgs->scrub)
		return NULL;
	return pgs;
}

static void on_scrub_map_reply(struct osd *osd, struct peer *p, uint64_t tid, uint8_t *payload,
			       uint32_t len)
{
	struct mx_msg_scrub_map m;
	struct pgstate *pgs;
	struct scrub_map *sm;
	int i;

	if (mx_dec_scrub_map(payload, len, &m) < 0)
		return;
	pgs = scrub_pg(osd, &m.ref);
	if (!pgs || pgs->scrub->phase != SC_GATHER)
		return;
	i = member_index(pgs, p->id);
	if (i < 0 || !(pgs->scrub->members & (1u << i)))
		return;
	sm = &pgs->scrub->maps[i];
	if (sm->answered || sm->tid != tid)
		return;
	sm->answered = true;
	sm->status = mx_wire_to_errno(m.status);
	if (!sm->status) {
		sm->o = mx_xcalloc(m.n ? m.n : 1, sizeof(*sm->o));
		for (uint32_t k = 0; k < m.n; k++) {
			struct mx_scrub_entry e;
			struct scrub_obj *x = &sm->o[k];

			if (mx_scrub_entry_next(&m.entries, &e) < 0) {
				sm->status = -EBADMSG;
				break;
			}
			x->name = mx_xcalloc(1, e.name_len + 1);
			memcpy(x->name, e.name, e.name_len);
			x->len = e.name_len;
			x->ver = (struct mx_version){e.ver_epoch, e.ver_seq};
			x->size = e.size;
			x->attr = e.attr_digest;
			x->data = e.data_digest;
			x->flags = e.flags;
			sm->n++;
		}
		qsort(sm->o, sm->n, sizeof(*sm->o), cmp_scrub_obj);
	}
	if (sm->status) {
		/* Not compared: counted as an error. */
		mx_warn("pg %d.%u: osd.%d could not be scrubbed: %s", pgs->pool, pgs->pg, p->id,
			strerror(-sm->status));
		pgs->scrub->members &= ~(1u << i);
		pgs->scrub->res.errors++;
	}
	scrub_advance(osd, pgs);
}

static struct repair *repair_find(struct scrub *sc, int i, uint64_t tid)
{
	for (struct repair *rp = sc->rep; rp; rp = rp->next)
		if ((rp->busy & (1u << i)) && rp->tid[i] == tid)
			return rp;
	return NULL;
}

/* A PG_PUSH on a peer connection answering a repair's pull: our copy
 * becomes the good one, then it goes to the other bad members.  Whether
 * the message was ours. */
static bool scrub_on_pull_answer(struct osd *osd, struct peer *p, uint64_t tid, uint8_t *payload,
				 uint32_t len)
{
	struct mx_msg_pg_object o;
	struct pgstate *pgs;
	struct repair *rp;
	int r;

	if (mx_dec_pg_object(payload, len, &o) < 0)
		return false;
	pgs = scrub_pg(osd, &o.ref);
	if (!pgs || pgs->scrub->phase != SC_REPAIR)
		return false;
	rp = repair_find(pgs->scrub, 0, tid);
	if (!rp || pgs->acting[rp->auth] != p->id)
		return false;
	rp->busy &= ~1u;
	r = o.status ? mx_wire_to_errno(o.status) : apply_object(osd, &o);
	if (r == 0) {
		commit_now(osd);
		if (mx_version_cmp((struct mx_version){o.ver_epoch, o.ver_seq}, pgs->lu) > 0)
			pgs->lu = (struct mx_version){o.ver_epoch, o.ver_seq};
		rp->bad &= ~1u;
		mx_info("pg %d.%u: repair: '%s' restored here from osd.%d", pgs->pool, pgs->pg,
			rp->name, p->id);
	} else {
		mx_err("pg %d.%u: repair: cannot get '%s' from osd.%d: %s", pgs->pool, pgs->pg,
		       rp->name, p->id, strerror(-r));
		rp->failed = true;
	}
	repair_send(osd, pgs, rp);
	scrub_advance(osd, pgs);
	return true;
}

/* A PG_PUSH_REPLY answering a repair's push.  Whether it was ours. */
static bool scrub_on_push_reply(struct osd *osd, struct peer *p, uint64_t tid, uint8_t *payload,
				uint32_t len)
{
	struct mx_msg_pg_ack a;
	struct pgstate *pgs;
	struct repair *rp;
	int i;

	if (mx_dec_pg_ack(payload, len, &a) < 0)
		return false;
	pgs = scrub_pg(osd, &a.ref);
	if (!pgs || pgs->scrub->phase != SC_REPAIR)
		return false;
	i = member_index(pgs, p->id);
	if (i < 0 || !(rp = repair_find(pgs->scrub, i, tid)))
		return false;
	rp->busy &= ~(1u << i);
	if (a.status) {
		mx_err("pg %d.%u: repair: osd.%d refused '%s': %s", pgs->pool, pgs->pg, p->id,
		       rp->name, strerror(-mx_wire_to_errno(a.status)));
		rp->failed = true;
	} else {
		rp->bad &= ~(1u << i);
		mx_info("pg %d.%u: repair: '%s' restored on osd.%d", pgs->pool, pgs->pg, rp->name,
			p->id);
	}
	scrub_advance(osd, pgs);
	return true;
}

/* Every PG_TICK_MS: move a draining scrub on, send again what a replaced
 * connection may have lost, and end a scrub that takes too long. */
static void scrub_tick(struct osd *osd, struct pgstate *pgs)
{
	struct scrub *sc = pgs->scrub;

	if (!sc)
		return;
	if (mx_now_ns() - sc->start_ns > (uint64_t)SCRUB_TIMEOUT_MS * 1000000) {
		scrub_finish(osd, pgs, -ETIMEDOUT);
		return;
	}
	if (sc->phase == SC_GATHER) {
		for (int i = 1; i < pgs->n_acting; i++)
			if ((sc->members & (1u << i)) && !sc->maps[i].answered &&
			    maybe_lost(osd, pgs->acting[i], sc->maps[i].gen))
				scrub_send_map_req(osd, pgs, i);
	} else if (sc->phase == SC_REPAIR) {
		for (struct repair *rp = sc->rep; rp; rp = rp->next) {
			for (int i = 0; i < pgs->n_acting; i++)
				if ((rp->busy & (1u << i)) &&
				    maybe_lost(osd, pgs->acting[i ? i : rp->auth], rp->gen[i]))
					rp->busy &= ~(1u << i);
			repair_send(osd, pgs, rp);
		}
	}
	scrub_advance(osd, pgs);
}

/* Scheduled scrubs: at most one at a time on this OSD, of an active PG we
 * are primary of whose last (deep) scrub is older than the interval. */
static void scrub_schedule(struct osd *osd)
{
	uint64_t now = mx_now_ns();
	uint64_t li = (uint64_t)osd->cfg->scrub_interval_s * 1000000000ull;
	uint64_t di = (uint64_t)osd->cfg->deep_scrub_interval_s * 1000000000ull;

	if (osd->n_scrubs || (!li && !di))
		return;
	for (size_t b = 0; b < PG_BUCKETS; b++) {
		for (struct pgstate *pgs = osd->pgs[b]; pgs; pgs = pgs->next) {
			if (pgs->role != ROLE_PRIMARY || pgs->state != PG_ACTIVE)
				continue;
			/* The interval counts from when we first see the PG. */
			if (!pgs->scrub_ns)
				pgs->scrub_ns = now;
			if (!pgs->deep_scrub_ns)
				pgs->deep_scrub_ns = now;
			if (di && now - pgs->deep_scrub_ns >= di) {
				(void)scrub_start(osd, pgs, MX_SCRUB_DEEP, NULL, 0);
				return;
			}
			if (li && now - pgs->scrub_ns >= li) {
				(void)scrub_start(osd, pgs, 0, NULL, 0);
				return;
			}
		}
	}
}

/* Messages on our connections to peers: answers to what we sent. */
static void peer_on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, uint8_t *payload)
{
	struct peer *p = c->owner_data;
	struct osd *osd = c->owner;
	struct mx_msg_repop_reply rr;
	struct mx_list *pos, *tmp;

	switch (h->type) {
	case MX_MSG_PONG:
		p->last_rx_ns = mx_now_ns();
		return;
	case MX_MSG_PG_NOTIFY:
		on_pg_notify(osd, p, payload, h->len);
		return;
	case MX_MSG_PG_ACTIVATE_REPLY:
		on_pg_activate_reply(osd, p, payload, h->len);
		return;
	case MX_MSG_PG_PUSH_REPLY:
		rec_done(osd, h->tid);
		if (!scrub_on_push_reply(osd, p, h->tid, payload, h->len))
			on_pg_push_reply(osd, p, h->tid, payload, h->len);
		return;
	case MX_MSG_PG_PUSH:
		rec_done(osd, h->tid);
		if (!scrub_on_pull_answer(osd, p, h->tid, payload, h->len))
			on_pull_answer(osd, p, payload, h->len);
		return;
	case MX_MSG_PG_SCRUB_MAP_REPLY:
		on_scrub_map_reply(osd, p, h->tid, payload, h->len);
		return;
	case MX_MSG_PG_REMOVE_REPLY:
		on_pg_remove_reply(osd, p, payload, h->len);
		return;
	case MX_MSG_OSD_LIST_REPLY:
		on_scan_reply(osd, p, h->tid, payload, h->len);
		return;
	case MX_MSG_ERROR_REPLY:
		mx_warn("osd.%d: could not decode one of our messages", p->id);
		return;
	case MX_MSG_OSD_REPOP_REPLY:
		if (mx_dec_repop_reply(payload, h->len, &rr) == 0)
			break;
		/* fall through */
	default:
		mx_warn("osd.%d: unexpected message type %u from a peer", p->id, h->type);
		mx_conn_close(c, -EPROTO);
		return;
	}
	mx_list_for_each_safe(pos, tmp, &p->pending) {
		struct repop_out *ro = mx_list_entry(pos, struct repop_out, link);
		struct pop *op = ro->pop;

		if (ro->tid != h->tid)
			continue;
		mx_list_del(pos);
		if (rr.status) {
			int e = mx_wire_to_errno(rr.status);

			/* ESTALE: the replica is in another interval; so will
			 * we be: the client resends. */
			if (e != -ESTALE)
				mx_err("osd.%d refused a replicated write: %s", p->id,
				       strerror(-e));
			if (!op->status)
				op->status = e == -ESTALE ? -EAGAIN : -EIO;
		}
		op->waiting--;
		free(ro);
		if (op->waiting == 0 && op->local_done && op->s)
			pop_finish(osd, op);
		pop_unref(op);
		return;
	}
}

/* A member recovering without progress for STALL_NS: say where it stands
 * (once per stall), for the operator and the tests' logs. */
#define STALL_NS (20ull * 1000000000ull)

static void recovery_stall_check(struct osd *osd, struct pgstate *pgs, int i)
{
	struct member *mb = &pgs->mem[i];
	const struct peer *p = peer_get(osd, pgs->acting[i]);
	const struct missing *m = mb->miss;
	uint64_t now = mx_now_ns();
	int inflight = 0;

	if (!mb->progress_ns)
		mb->progress_ns = now;
	if (mb->stall_warned || now - mb->progress_ns < STALL_NS)
		return;
	mb->stall_warned = true;
	for (const struct missing *x = mb->miss; x; x = x->next)
		inflight += x->inflight;
	mx_warn("pg %d.%u: recovery of osd.%d stalled for %llu s: activation %s%s, %d objects "
		"to push, %d in flight (first '%s' %s gen %llu), connection %s gen %llu, "
		"%d recovery ops in flight here",
		pgs->pool, pgs->pg, pgs->acting[i],
		(unsigned long long)((now - mb->progress_ns) / 1000000000ull),
		mb->act_sent ? "sent" : "not sent", mb->act_acked ? " and answered" : "",
		mb->n_miss, inflight, m ? m->name : "-", m && m->inflight ? "in flight" : "waiting",
		(unsigned long long)(m ? m->gen : 0), p && p->conn ? "up" : "down",
		(unsigned long long)(p ? p->gen : 0), osd->n_rec);
}

/* Every PG_TICK_MS: send again what a lost connection may have dropped. */
static void pg_tick_one(struct osd *osd, struct pgstate *pgs)
{
	if (pgs->role != ROLE_PRIMARY)
		return;
	switch (pgs->state) {
	case PG_PEERING:
		for (int i = 1; i < pgs->n_peers; i++)
			if (!pgs->peers[i].answered &&
			    maybe_lost(osd, pgs->peers[i].osd, pgs->peers[i].gen))
				pg_send_query(osd, pgs, &pgs->peers[i]);
		break;
	case PG_SCANNING:
		if (maybe_lost(osd, pgs->peers[pgs->auth].osd, pgs->scan_gen))
			pg_send_scan(osd, pgs);
		break;
	case PG_PULLING:
		for (struct missing *m = pgs->pulls; m; m = m->next)
			rec_requeue_lost(osd, m, pgs->peers[pgs->auth].osd);
		break;
	case PG_WAIT_TEMP:
		if (mx_now_ns() - pgs->temp_since_ns > TEMP_WAIT_NS) {
			/* The monitor did not (or would not) make it so. */
			mx_warn("pg %d.%u: no primary_temp for osd.%d after %llu s; fetching our "
				"copy ourselves",
				pgs->pool, pgs->pg, pgs->temp_want,
				(unsigned long long)(TEMP_WAIT_NS / 1000000000ull));
			pgs->no_temp = true;
			pgs->state = PG_PEERING;
			pg_try_peer(osd, pgs);
		}
		break;
	case PG_ACTIVATING:
	case PG_ACTIVE:
		for (int i = 1; i < pgs->n_acting; i++) {
			struct member *mb = &pgs->mem[i];
			bool lost = maybe_lost(osd, pgs->acting[i], mb->act_gen);

			if (mb->state == M_RECOVERING)
				recovery_stall_check(osd, pgs, i);
			if (mb->state == M_COMPLETE && !mb->acked && lost) {
				pg_send_activate(osd, pgs, i, pgs->interval, true);
			} else if (mb->state == M_RECOVERING && !mb->act_acked && lost) {
				pg_send_activate(osd, pgs, i, 0, mb->backfill);
			} else if (mb->state == M_RECOVERING && mb->act_acked) {
				for (struct missing *m = mb->miss; m; m = m->next)
					rec_requeue_lost(osd, m, pgs->acting[i]);
			}
		}
		pg_remove_strays(osd, pgs);
		break;
	default:
		break;
	}
}

/* Map history --------------------------------------------------------------- */

#define HIST_MAX 1000

static void hist_request(struct osd *osd, uint64_t epoch)
{
	struct mx_msg_get_map gm = {.want_epoch = epoch};
	struct mx_wbuf w;

	if (!osd->mon)
		return;
	mx_wbuf_init(&w);
	mx_enc_get_map(&w, &gm);
	(void)mx_conn_send(osd->mon, MX_MSG_MON_GET_MAP, ++osd->next_tid, &w);
}

static void hist_check_ready(struct osd *osd)
{
	osd->hist_ready = osd->hist_len > 0;
	for (size_t i = 0; i < osd->hist_len && osd->hist_ready; i++)
		osd->hist_ready = osd->hist[i] != NULL;
}

/* Forget every epoch up to and including upto. */
static void hist_drop(struct osd *osd, uint64_t upto)
{
	size_t k = 0;

	while (k < osd->hist_len && osd->hist_base + k <= upto && k + 1 < osd->hist_len)
		k++;
	for (size_t i = 0; i < k; i++) {
		if (osd->hist[i] != osd->map) {
			mx_placement_free(osd->hist_pl[i]);
			mx_map_free(osd->hist[i]);
		}
	}
	memmove(osd->hist, osd->hist + k, (osd->hist_len - k) * sizeof(*osd->hist));
	memmove(osd->hist_pl, osd->hist_pl + k, (osd->hist_len - k) * sizeof(*osd->hist_pl));
	osd->hist_len -= k;
	osd->hist_base += k;
}

/* Keep map m (with its placement pl) in the history; the history owns
 * both.  Missing epochs are requested from the monitor. */
static void hist_put(struct osd *osd, struct mx_map *m, struct mx_placement *pl)
{
	uint64_t e = m->epoch;

	if (osd->hist_len == 0) {
		osd->hist_base = e > HIST_MAX ? e - HIST_MAX + 1 : 1;
	}
	if (e < osd->hist_base) {
		mx_placement_free(pl);
		mx_map_free(m);
		return;
	}
	if (e >= osd->hist_base + osd->hist_len) {
		size_t n = (size_t)(e - osd->hist_base + 1), old = osd->hist_len;

		osd->hist = realloc(osd->hist, n * sizeof(*osd->hist));
		osd->hist_pl = realloc(osd->hist_pl, n * sizeof(*osd->hist_pl));
		if (!osd->hist || !osd->hist_pl) {
			mx_err("out of memory");
			exit(1);
		}
		for (size_t i = old; i < n; i++) {
			osd->hist[i] = NULL;
			osd->hist_pl[i] = NULL;
		}
		osd->hist_len = n;
		for (size_t i = old; i + 1 < n; i++)
			hist_request(osd, osd->hist_base + i);
	}
	if (osd->hist[e - osd->hist_base]) {
		mx_placement_free(pl);
		mx_map_free(m);
	} else {
		osd->hist[e - osd->hist_base] = m;
		osd->hist_pl[e - osd->hist_base] = pl;
	}
	if (osd->hist_len > HIST_MAX)
		hist_drop(osd, osd->hist_base + (osd->hist_len - HIST_MAX) - 1);
	hist_check_ready(osd);
}

static bool pg_members(const struct mx_map *m, const struct mx_placement *pl, int32_t pool_id,
		       uint32_t pg, int32_t *up, int *nu, int32_t *act, int *na, uint64_t *inc)
{
	const struct mx_pool *pool = mx_map_pool_by_id(m, pool_id);

	if (!pool || pg >= pool->pg_num)
		return false;
	*nu = mx_pg_up(pl, pool, pg, up, MX_MAX_SIZE);
	*na = mx_pg_acting(pl, m, pool, pg, act, MX_MAX_SIZE);
	if (*nu < 0 || *na < 0)
		return false;
	for (int i = 0; i < *na; i++) {
		const struct mx_osd_info *o = mx_map_osd(m, act[i]);

		inc[i] = o ? o->incarnation : 0;
	}
	return true;
}

/* The first epoch of the current interval of (pool_id, pg), whose members
 * in the newest map are up, act and inc: walk the map history back while
 * they stay the same. */
static uint64_t pg_interval_first(struct osd *osd, int32_t pool_id, uint32_t pg,
				  const int32_t *up, int nu, const int32_t *act, int na,
				  const uint64_t *inc)
{
	uint64_t first = osd->map->epoch;

	for (uint64_t e = osd->map->epoch; e > osd->hist_base; e--) {
		size_t k = (size_t)(e - 1 - osd->hist_base);
		int32_t u2[MX_MAX_SIZE], a2[MX_MAX_SIZE];
		uint64_t i2[MX_MAX_SIZE];
		int nu2, na2;

		if (!pg_members(osd->hist[k], osd->hist_pl[k], pool_id, pg, u2, &nu2, a2, &na2,
				i2) ||
		    nu2 != nu || na2 != na || memcmp(u2, up, (size_t)nu * sizeof(*up)) ||
		    memcmp(a2, act, (size_t)na * sizeof(*act)) ||
		    memcmp(i2, inc, (size_t)na * sizeof(*inc)))
			break;
		first = e - 1;
	}
	return first;
}

/*
 * Recompute every PG's interval from the newest map.  The interval is
 * identified by its first epoch, which every OSD computes alike from the
 * map history: the PG's up set, acting set and the incarnations of its
 * acting members stayed the same since.  (Counting incarnations makes a
 * restarted member start a new interval, so it is peered and recovered
 * even when it was never marked down.)
 */
static void pgs_update(struct osd *osd)
{
	const struct mx_map *m = osd->map;

	if (!osd->hist_ready || !osd->booted)
		return;
	for (uint32_t pi = 0; pi < m->n_pools; pi++) {
		const struct mx_pool *pool = &m->pools[pi];

		for (uint32_t pg = 0; pg < pool->pg_num; pg++) {
			int32_t up[MX_MAX_SIZE], act[MX_MAX_SIZE];
			uint64_t inc[MX_MAX_SIZE];
			int nu, na;
			bool mine = false, same;
			struct pgstate *pgs = pg_find(osd, pool->id, pg);
			uint64_t first;

			if (!pg_members(m, osd->pl, pool->id, pg, up, &nu, act, &na, inc))
				continue;
			for (int i = 0; i < na; i++)
				mine |= act[i] == osd->id;
			if (!mine && (!pgs || pgs->role == ROLE_NONE))
				continue;
			if (!pgs)
				pgs = pg_get(osd, pool->id, pg);
			same = pgs->interval && pgs->n_up == nu && pgs->n_acting == na &&
			       !memcmp(pgs->up, up, (size_t)nu * sizeof(*up)) &&
			       !memcmp(pgs->acting, act, (size_t)na * sizeof(*act)) &&
			       !memcmp(pgs->inc, inc, (size_t)na * sizeof(*inc));
			if (same)
				continue;
			first = pg_interval_first(osd, pool->id, pg, up, nu, act, na, inc);
			pg_fail_pops(osd, pgs);
			scrub_abort(osd, pgs);
			pg_clear_primary(osd, pgs);
			pgs->n_up = (uint8_t)nu;
			pgs->n_acting = (uint8_t)na;
			memcpy(pgs->up, up, sizeof(up));
			memcpy(pgs->acting, act, sizeof(act));
			memcpy(pgs->inc, inc, sizeof(inc));
			pgs->interval = first;
			if (na > 0 && act[0] == osd->id) {
				pgs->role = ROLE_PRIMARY;
				if (na >= pool->min_size) {
					pg_start_peering(osd, pgs);
				} else {
					mx_info("pg %d.%u: interval %" PRIu64 ": %d of min_size %u "
						"members; waiting",
						pool->id, pg, first, na, pool->min_size);
					run_held_ops(osd, pgs); /* EAGAIN: below min_size */
				}
			} else {
				pgs->role = mine ? ROLE_REPLICA : ROLE_NONE;
				pgs->state = R_WAITING;
				mx_debug("pg %d.%u: interval %" PRIu64 ": %s", pool->id, pg, first,
					 mine ? "replica" : "not a member");
				run_held_ops(osd, pgs); /* ESTALE: not the primary */
			}
		}
	}
}

static void dispatch(struct osd *osd, struct session *s, uint16_t type, uint64_t tid,
		     uint8_t *payload, uint32_t len);

/* Messages that waited for a newer map (or the history) get another go. */
static void replay_deferred(struct osd *osd)
{
	struct mx_list l, *pos, *tmp;

	if (!osd->hist_ready || mx_list_empty(&osd->deferred))
		return;
	mx_list_init(&l);
	mx_list_splice_tail(&l, &osd->deferred);
	mx_list_for_each_safe(pos, tmp, &l) {
		struct held *h = mx_list_entry(pos, struct held, link);

		mx_list_del(pos);
		if (h->s->conn)
			dispatch(osd, h->s, h->type, h->tid, h->payload, h->len);
		session_put(h->s);
		free(h->payload);
		free(h);
	}
}

/* Peer messages deferred for long: say why (our map or history behind). */
static void deferred_check(struct osd *osd)
{
	const struct held *h;
	uint64_t now = mx_now_ns();
	size_t missing = 0, n = 0;

	if (mx_list_empty(&osd->deferred))
		return;
	h = mx_list_entry(osd->deferred.next, struct held, link);
	if (now - h->ns < STALL_NS / 2 || now - osd->deferred_warned_ns < STALL_NS)
		return;
	osd->deferred_warned_ns = now;
	for (struct mx_list *pos = osd->deferred.next; pos != &osd->deferred; pos = pos->next)
		n++;
	for (size_t i = 0; i < osd->hist_len; i++)
		missing += !osd->hist[i];
	mx_warn("%zu peer messages deferred, the oldest for %llu s (type %u, epoch %llu): our "
		"map is at epoch %llu, %s, history from epoch %llu%s, %zu epochs missing",
		n, (unsigned long long)((now - h->ns) / 1000000000ull), h->type,
		(unsigned long long)h->epoch, (unsigned long long)(osd->map ? osd->map->epoch : 0),
		osd->booted ? "booted" : "not booted", (unsigned long long)osd->hist_base,
		osd->hist_ready ? " complete" : " incomplete", missing);
}

static void pg_tick(uv_timer_t *t)
{
	struct osd *osd = t->data;
	static unsigned ticks;

	if (!osd->map || osd->stopping)
		return;
	if (!osd->hist_ready && osd->mon && ++ticks % 8 == 0)
		for (size_t i = 0; i < osd->hist_len; i++)
			if (!osd->hist[i])
				hist_request(osd, osd->hist_base + i);
	for (size_t b = 0; b < PG_BUCKETS; b++)
		for (struct pgstate *pgs = osd->pgs[b]; pgs; pgs = pgs->next) {
			pg_tick_one(osd, pgs);
			scrub_tick(osd, pgs);
		}
	rec_expire(osd);
	rec_pump(osd);
	space_tick(osd);
	temp_send(osd);
	deferred_check(osd);
	scrub_schedule(osd);
}
static void peer_retry_cb(uv_timer_t *t)
{
	struct peer *p = t->data;

	peer_kick(p->osd, p);
}

static void peer_retry_later(struct osd *osd, struct peer *p)
{
	if (!p->timer_init) {
		uv_timer_init(osd->loop, &p->retry);
		p->retry.data = p;
		p->timer_init = true;
	}
	uv_timer_start(&p->retry, peer_retry_cb, PEER_RETRY_MS, 0);
}

static void peer_on_close(struct mx_conn *c, int err)
{
	struct peer *p = c->owner_data;
	struct osd *osd = c->owner;

	if (p->conn == c)
		p->conn = NULL;
	if (osd->stopping)
		return;
	if (err == UV_ECONNREFUSED)
		p->refused++;
	if (!mx_list_empty(&p->pending)) {
		mx_info("osd.%d: connection lost (%s); %s", p->id,
			err ? uv_strerror(err) : "closed", "retrying");
		peer_retry_later(osd, p);
	}
}

static void peer_on_connect(struct mx_conn *c)
{
	struct peer *p = c->owner_data;

	p->refused = 0;
}

static const struct mx_conn_ops peer_ops = {
	.on_msg = peer_on_msg,
	.on_close = peer_on_close,
	.on_connect = peer_on_connect,
};

/* Make sure a connection to p exists, at its address in the current map,
 * and (re)send everything unacknowledged in order. */
static void peer_kick(struct osd *osd, struct peer *p)
{
	const struct mx_osd_info *o = mx_map_osd(osd->map, p->id);
	struct mx_list *pos, *tmp;
	struct mx_conn *c;

	if (p->conn || !o || !o->up || osd->stopping)
		return;
	if (mx_conn_connect(osd->loop, o->addr, &peer_ops, osd, &c) < 0) {
		peer_retry_later(osd, p);
		return;
	}
	c->owner_data = p;
	p->conn = c;
	p->gen++;
	snprintf(p->addr, sizeof(p->addr), "%s", o->addr);
	p->incarnation = o->incarnation;
	mx_list_for_each_safe(pos, tmp, &p->pending)
		repop_send(osd, p, mx_list_entry(pos, struct repop_out, link));
}

/* Heartbeats ---------------------------------------------------------------- */

static void report_failure(struct osd *osd, struct peer *p, uint64_t silent_ns, bool now)
{
	const struct mx_osd_info *o = mx_map_osd(osd->map, p->id);
	struct mx_msg_osd_failure f;
	struct mx_wbuf w;

	if (!o || !o->up || !osd->mon || !osd->booted)
		return;
	memset(&f, 0, sizeof(f));
	f.reporter = osd->id;
	f.target = p->id;
	f.target_incarnation = o->incarnation;
	f.epoch = osd->map->epoch;
	f.silent_ms = (uint32_t)MX_MIN(silent_ns / 1000000ull, UINT32_MAX);
	f.flags = now ? MX_FAILURE_IMMEDIATE : 0;
	mx_wbuf_init(&w);
	mx_enc_osd_failure(&w, &f);
	if (mx_conn_send(osd->mon, MX_MSG_MON_OSD_FAILURE, ++osd->next_tid, &w) == 0) {
		mx_info("reporting osd.%d as failed (%s)", p->id,
			now ? "connection refused" : "no heartbeat reply");
		p->last_report_ns = mx_now_ns();
	}
}

/* Which peers share a PG with us: recomputed on every map. */
static void hb_update_peers(struct osd *osd)
{
	uint64_t now = mx_now_ns();

	for (uint32_t i = 0; i < osd->n_peers; i++)
		if (osd->peers[i])
			osd->peers[i]->hb = false;
	for (uint32_t pi = 0; pi < osd->map->n_pools; pi++) {
		const struct mx_pool *pool = &osd->map->pools[pi];

		for (uint32_t pg = 0; pg < pool->pg_num; pg++) {
			int32_t up[MX_MAX_SIZE];
			int n = mx_pg_up(osd->pl, pool, pg, up, MX_MAX_SIZE);
			bool mine = false;

			for (int k = 0; k < n; k++)
				mine |= up[k] == osd->id;
			if (!mine)
				continue;
			for (int k = 0; k < n; k++) {
				struct peer *p;

				if (up[k] == osd->id)
					continue;
				p = peer_get(osd, up[k]);
				if (p && !p->hb) {
					const struct mx_osd_info *o = mx_map_osd(osd->map, up[k]);
					uint64_t inc = o ? o->incarnation : 0;

					/* A new peer, or a new life of one: its
					 * grace starts now. */
					if (!p->last_rx_ns || p->hb_incarnation != inc) {
						p->last_rx_ns = now;
						p->refused = 0;
						p->hb_incarnation = inc;
					}
					p->hb = true;
				}
			}
		}
	}
}

static void hb_tick(uv_timer_t *t)
{
	struct osd *osd = t->data;
	uint64_t now = mx_now_ns();
	uint64_t grace = (uint64_t)osd->hb_grace_ms * 1000000ull;

	if (!osd->map || !osd->booted || osd->stopping)
		return;
	for (uint32_t i = 0; i < osd->n_peers; i++) {
		struct peer *p = osd->peers[i];
		const struct mx_osd_info *o;
		bool due;

		if (!p || !p->hb)
			continue;
		o = mx_map_osd(osd->map, p->id);
		if (!o || !o->up) {
			p->last_rx_ns = now; /* the monitor knows; start afresh */
			continue;
		}
		due = now - p->last_report_ns > (uint64_t)osd->hb_interval_ms * 1000000ull;
		if (p->refused >= 2 && due)
			report_failure(osd, p, now - p->last_rx_ns, true);
		else if (now - p->last_rx_ns > grace && due)
			report_failure(osd, p, now - p->last_rx_ns, false);
		if (!p->conn) {
			peer_kick(osd, p);
		} else {
			struct mx_wbuf w;

			mx_wbuf_init(&w);
			(void)mx_conn_send(p->conn, MX_MSG_PING, now, &w);
		}
	}
	if (osd->mon && now - osd->last_beacon_ns >= (uint64_t)osd->beacon_ms * 1000000ull) {
		struct mx_msg_osd_beacon b = {.osd_id = osd->id, .epoch = osd->map->epoch};
		const struct mx_osd_info *me = mx_map_osd(osd->map, osd->id);
		struct mx_wbuf w;

		b.incarnation = me ? me->incarnation : 0;
		mx_wbuf_init(&w);
		mx_enc_osd_beacon(&w, &b);
		(void)mx_conn_send(osd->mon, MX_MSG_MON_OSD_BEACON, ++osd->next_tid, &w);
		osd->last_beacon_ns = now;
	}
}

/* PG statistics ------------------------------------------------------------ */

/*
 * NOTES ON PG STATISTICS (docs/health.md)
 *
 * Every STATS_EVERY_MS, and within STATS_TICK_MS of a change of any of its
 * PGs' state bits, the OSD sends the monitor MON_PG_STATS: the usage of the
 * file system of its data folder and one record per PG it is the primary
 * of.  Everything is derived from what the primary holds anyway, so a
 * report costs a walk of the PG table and no I/O:
 *  - state bits from pgs->state and the members' states;
 *  - objects and bytes from the store's per-PG counters;
 *  - degraded copies: what acting members still miss (their n_miss, a
 *    backfilled member's counting every object the primary listed for
 *    it), what the primary pulls, and every object once per member the PG
 *    lacks (size - acting);
 *  - misplaced copies: a backfilled member's missing objects while an old
 *    copy of the PG is still up outside the acting set (the data exists,
 *    it only moves);
 *  - recovered objects: the fall of the count of missing copies between
 *    two samples of one interval, cumulative; bytes are estimated from the
 *    PG's mean object size (the count is exact, the bytes approximate).
 */

static bool pgstat_stray_up(struct osd *osd, const struct pgstate *pgs)
{
	for (int k = 1; k < pgs->n_peers; k++) {
		const struct pgpeer *pp = &pgs->peers[k];
		const struct mx_osd_info *o = mx_map_osd(osd->map, pp->osd);
		bool member = false;

		for (int i = 0; i < pgs->n_acting; i++)
			member |= pgs->acting[i] == pp->osd;
		if (!member && pp->answered && o && o->up)
			return true;
	}
	return false;
}

/* The record of a PG we are primary of; false if we do not report it. */
static bool pgstat_fill(struct osd *osd, struct pgstate *pgs, struct mx_pg_stat *out)
{
	const struct mx_pool *pool = pg_pool(osd, pgs);
	uint64_t missing = 0;
	uint32_t st = 0;
	bool clean = true;

	if (pgs->role != ROLE_PRIMARY || !pgs->interval || !pool)
		return false;
	memset(out, 0, sizeof(*out));
	out->pool = pgs->pool;
	out->pg = pgs->pg;
	out->interval = pgs->interval;
	mx_store_pg_usage(osd->store, pgs->pool, pgs->pg, &out->objects, &out->bytes);
	switch (pgs->state) {
	case PG_PEERING:
		st |= pgs->warned ? MX_PGS_INCOMPLETE : MX_PGS_PEERING;
		break;
	case PG_SCANNING:
		st |= MX_PGS_PEERING | MX_PGS_BACKFILLING;
		break;
	case PG_PULLING:
		st |= MX_PGS_PEERING | MX_PGS_RECOVERING;
		out->degraded += (uint64_t)pgs->n_pulls;
		missing += (uint64_t)pgs->n_pulls;
		break;
	case PG_ACTIVATING:
		st |= MX_PGS_ACTIVATING;
		break;
	case PG_ACTIVE:
		st |= MX_PGS_ACTIVE;
		break;
	case PG_STUCK:
		st |= MX_PGS_INCOMPLETE;
		break;
	default:
		break; /* fewer than min_size members: nothing but undersized */
	}
	if (pgs->state == PG_ACTIVATING || pgs->state == PG_ACTIVE) {
		bool stray = false, stray_known = false;

		for (int i = 0; i < pgs->n_acting; i++) {
			const struct member *mb = &pgs->mem[i];

			if (mb->state != M_COMPLETE || !mb->acked)
				clean = false;
			if (i == 0 || mb->state != M_RECOVERING)
				continue;
			st |= mb->backfill ? MX_PGS_BACKFILLING : MX_PGS_RECOVERING;
			missing += (uint64_t)mb->n_miss;
			if (mb->backfill && !stray_known) {
				stray = pgstat_stray_up(osd, pgs);
				stray_known = true;
			}
			if (mb->backfill && stray)
				out->misplaced += (uint64_t)mb->n_miss;
			else
				out->degraded += (uint64_t)mb->n_miss;
		}
	} else {
		clean = false;
	}
	if (pgs->n_acting < pool->size) {
		st |= MX_PGS_UNDERSIZED | MX_PGS_DEGRADED;
		out->degraded += out->objects * (uint64_t)(pool->size - pgs->n_acting);
		clean = false;
	}
	/* Remapped: the acting set is not the up set without its down OSDs
	 * (a down member is only undersized). */
	{
		int32_t upu[MX_MAX_SIZE];
		int nu = 0;

		for (int i = 0; i < pgs->n_up; i++) {
			const struct mx_osd_info *o = mx_map_osd(osd->map, pgs->up[i]);

			if (o && o->up)
				upu[nu++] = pgs->up[i];
		}
		if (nu != pgs->n_acting ||
		    memcmp(upu, pgs->acting, (size_t)nu * sizeof(*upu)) != 0) {
			st |= MX_PGS_REMAPPED;
			clean = false;
		}
		if (pgs->n_up != pgs->n_acting)
			clean = false;
	}
	if (out->degraded)
		st |= MX_PGS_DEGRADED;
	if (clean && (st & MX_PGS_ACTIVE) && !out->degraded && !out->misplaced)
		st |= MX_PGS_CLEAN;
	if (pgs->scrub)
		st |= MX_PGS_SCRUBBING | ((pgs->scrub->flags & MX_SCRUB_DEEP) ? MX_PGS_DEEP : 0);
	if (pgs->st.inconsistent)
		st |= MX_PGS_INCONSISTENT;
	out->state = st;

	/* Recovery progress: the fall of missing copies within one interval. */
	if (pgs->st.interval == pgs->interval && missing < pgs->st.missing) {
		uint64_t done = pgs->st.missing - missing;

		pgs->st.recovered_objects += done;
		if (out->objects)
			pgs->st.recovered_bytes += done * (out->bytes / out->objects);
	}
	pgs->st.interval = pgs->interval;
	pgs->st.missing = missing;
	out->recovered_objects = pgs->st.recovered_objects;
	out->recovered_bytes = pgs->st.recovered_bytes;
	out->scrub_ms = pgs->st.scrub_ms;
	out->deep_scrub_ms = pgs->st.deep_scrub_ms;
	return true;
}

static void stats_tick(uv_timer_t *t)
{
	struct osd *osd = t->data;
	const struct mx_osd_info *me;
	struct mx_msg_pg_stats h;
	struct statvfs vfs;
	struct mx_wbuf w;
	uint64_t now = mx_now_ns();
	bool changed = false;
	uint32_t n = 0;
	size_t at;

	if (!osd->map || !osd->booted || !osd->mon || !osd->mon_connected || osd->stopping)
		return;
	me = mx_map_osd(osd->map, osd->id);
	memset(&h, 0, sizeof(h));
	h.osd_id = osd->id;
	h.incarnation = me ? me->incarnation : 0;
	h.epoch = osd->map->epoch;
	h.stamp_ms = mx_wall_ms();
	if (statvfs(osd->cfg->data_dir, &vfs) == 0) {
		h.fs_total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
		h.fs_avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
		h.fs_used = (uint64_t)(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
	}
	mx_wbuf_init(&w);
	at = mx_enc_pg_stats_head(&w, &h);
	for (size_t b = 0; b < PG_BUCKETS; b++) {
		for (struct pgstate *pgs = osd->pgs[b]; pgs; pgs = pgs->next) {
			struct mx_pg_stat ps;

			if (!pgstat_fill(osd, pgs, &ps))
				continue;
			if (!pgs->st.reported || pgs->st.sent_state != ps.state)
				changed = true;
			pgs->st.reported = true;
			pgs->st.sent_state = ps.state;
			mx_enc_pg_stat(&w, &ps);
			n++;
		}
	}
	mx_enc_pg_stats_end(&w, at, n);
	if (!changed && now - osd->stats_sent_ns < (uint64_t)STATS_EVERY_MS * 1000000ull) {
		mx_wbuf_free(&w);
		return;
	}
	if (mx_conn_send(osd->mon, MX_MSG_MON_PG_STATS, ++osd->next_tid, &w) == 0)
		osd->stats_sent_ns = now;
}

/* Incoming connections ----------------------------------------------------- */

static void dispatch(struct osd *osd, struct session *s, uint16_t type, uint64_t tid,
		     uint8_t *payload, uint32_t len)
{
	switch (type) {
	case MX_MSG_OSD_OP:
		handle_op(osd, s, tid, payload, len);
		return;
	case MX_MSG_OSD_REPOP:
		handle_repop(osd, s, tid, payload, len);
		return;
	case MX_MSG_OSD_LIST:
		handle_list(osd, s, tid, payload, len);
		return;
	case MX_MSG_PG_QUERY:
		handle_pg_query(osd, s, tid, payload, len);
		return;
	case MX_MSG_PG_ACTIVATE:
		handle_pg_activate(osd, s, tid, payload, len);
		return;
	case MX_MSG_PG_PUSH:
		handle_pg_push(osd, s, tid, payload, len);
		return;
	case MX_MSG_PG_PULL:
		handle_pg_pull(osd, s, tid, payload, len);
		return;
	case MX_MSG_PG_REMOVE:
		handle_pg_remove(osd, s, tid, payload, len);
		return;
	case MX_MSG_PG_SCAN:
		handle_pg_scan(osd, s, tid, payload, len);
		return;
	case MX_MSG_PG_SCRUB:
		handle_pg_scrub(osd, s, tid, payload, len);
		return;
	case MX_MSG_PG_SCRUB_MAP:
		handle_scrub_map(osd, s, tid, payload, len);
		return;
	case MX_MSG_PING: {
		struct mx_wbuf w;

		mx_wbuf_init(&w);
		(void)session_send(s, MX_MSG_PONG, tid, &w);
		return;
	}
	default:
		mx_warn("%s: unknown message type %u", s->conn->peer, type);
		(void)mx_conn_send_error(s->conn, tid, -ENOTSUP, "unknown message type");
	}
}

static void on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, uint8_t *payload)
{
	dispatch(c->owner, c->owner_data, h->type, h->tid, payload, h->len);
}

static void on_close(struct mx_conn *c, int err)
{
	struct session *s = c->owner_data;

	(void)err;
	s->conn = NULL;
	session_put(s);
}

static const struct mx_conn_ops session_ops = {
	.on_msg = on_msg,
	.on_close = on_close,
};

static void on_connection(uv_stream_t *server, int status)
{
	struct osd *osd = server->data;
	struct session *s;
	struct mx_conn *c;

	if (status < 0)
		return;
	s = calloc(1, sizeof(*s));
	if (!s)
		return;
	if (mx_conn_accept(server, &session_ops, osd, &c) < 0) {
		free(s);
		return;
	}
	s->conn = c;
	s->refs = 1;
	c->owner_data = s;
}

/* Monitor ------------------------------------------------------------------ */

static void send_boot(struct osd *osd)
{
	struct mx_msg_osd_boot b;
	struct mx_wbuf w;

	memset(&b, 0, sizeof(b));
	b.osd_id = osd->id;
	memcpy(b.uuid, osd->uuid, 16);
	b.addr = osd->addr;
	b.weight = osd->cfg->weight;
	b.location = osd->cfg->location;
	b.device_class = osd->cfg->device_class;
	mx_wbuf_init(&w);
	mx_enc_osd_boot(&w, &b);
	osd->booting = true;
	(void)mx_conn_send(osd->mon, MX_MSG_MON_OSD_BOOT, ++osd->next_tid, &w);
}

static void subscribe(struct osd *osd)
{
	struct mx_msg_get_map gm = {.have_epoch = osd->map ? osd->map->epoch : 0,
				    .subscribe = true};
	struct mx_wbuf w;

	mx_wbuf_init(&w);
	mx_enc_get_map(&w, &gm);
	(void)mx_conn_send(osd->mon, MX_MSG_MON_GET_MAP, ++osd->next_tid, &w);
}

static int save_whoami(struct osd *osd)
{
	char path[4200], tmp[4200], buf[32];
	_cleanup_close_ int fd = -1;
	int n = snprintf(buf, sizeof(buf), "%d\n", osd->id);
	int r;

	snprintf(path, sizeof(path), "%s/whoami", osd->cfg->data_dir);
	snprintf(tmp, sizeof(tmp), "%s/whoami.tmp", osd->cfg->data_dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = mx_pwrite_all(fd, buf, (size_t)n, 0);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r == 0)
		r = mx_fsync_dir(osd->cfg->data_dir);
	return r;
}

static void apply_map(struct osd *osd, struct mx_map *m)
{
	struct mx_placement *pl;
	const struct mx_osd_info *me;
	int r = mx_placement_new(m, &pl);

	if (r < 0) {
		mx_err("cannot compute placement for epoch %llu: %s",
		       (unsigned long long)m->epoch, strerror(-r));
		mx_map_free(m);
		return;
	}
	osd->map = m;
	osd->pl = pl;
	hist_put(osd, m, pl); /* owns both from now */
	mx_debug("map epoch %llu", (unsigned long long)m->epoch);
	/* Peers that restarted elsewhere: reconnect to the new address. */
	for (uint32_t i = 0; i < osd->n_peers; i++) {
		struct peer *p = osd->peers[i];
		const struct mx_osd_info *o;

		if (!p)
			continue;
		o = mx_map_osd(m, p->id);
		if (p->conn && o && (o->incarnation != p->incarnation ||
				     strcmp(o->addr, p->addr) != 0))
			mx_conn_close(p->conn, 0);
		else if (!p->conn && !mx_list_empty(&p->pending))
			peer_kick(osd, p);
	}
	hb_update_peers(osd);
	/* A map that says we are down (or elsewhere) while we run: boot again. */
	me = mx_map_osd(m, osd->id);
	if (osd->booted && !osd->booting &&
	    (!me || !me->up || strcmp(me->addr, osd->addr) != 0)) {
		mx_warn("map epoch %llu marks this OSD down; booting again",
			(unsigned long long)m->epoch);
		osd->booted = false;
		send_boot(osd);
	}
	pgs_update(osd);
	replay_deferred(osd);
}

static void mon_on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, uint8_t *payload)
{
	struct osd *osd = c->owner;

	switch (h->type) {
	case MX_MSG_MON_OSD_BOOT_REPLY: {
		struct mx_msg_osd_boot_reply br;

		if (mx_dec_osd_boot_reply(payload, h->len, &br) < 0)
			break;
		osd->booting = false;
		if (br.status) {
			mx_err("the monitor refused this OSD: %s", br.message);
			exit(1);
		}
		if (osd->id != br.osd_id) {
			osd->id = br.osd_id;
			if (save_whoami(osd) < 0) {
				mx_err("cannot record the OSD id in %s", osd->cfg->data_dir);
				exit(1);
			}
		}
		if (!osd->booted)
			mx_info("osd.%d up at %s (epoch %llu)", osd->id, osd->addr,
				(unsigned long long)br.epoch);
		osd->booted = true;
		subscribe(osd);
		if (osd->map) {
			pgs_update(osd);
			replay_deferred(osd);
		}
		return;
	}
	case MX_MSG_MON_MAP: {
		struct mx_msg_map mm;
		struct mx_map *m;

		if (mx_dec_map(payload, h->len, &mm) < 0)
			break;
		if (mm.status && osd->map && mm.epoch < osd->map->epoch) {
			/* The monitor no longer keeps that epoch: our history
			 * starts after it. */
			hist_drop(osd, mm.epoch);
			hist_check_ready(osd);
			pgs_update(osd);
			replay_deferred(osd);
			return;
		}
		if (mm.map_len == 0)
			return;
		if (osd->map && mm.epoch <= osd->map->epoch) {
			struct mx_placement *pl;

			if (mm.epoch < osd->hist_base ||
			    osd->hist[mm.epoch - osd->hist_base] ||
			    mx_map_decode(mm.map, mm.map_len, &m) < 0)
				return;
			if (mx_placement_new(m, &pl) < 0) {
				mx_map_free(m);
				return;
			}
			hist_put(osd, m, pl);
			pgs_update(osd);
			replay_deferred(osd);
			return;
		}
		if (mx_map_decode(mm.map, mm.map_len, &m) < 0)
			break;
		apply_map(osd, m);
		return;
	}
	case MX_MSG_MON_COMMAND_REPLY: {
		/* To our primary_temp requests (temp_send): the map tells. */
		struct mx_msg_command_reply cr;

		if (mx_dec_command_reply(payload, h->len, &cr) < 0)
			break;
		if (cr.status)
			mx_debug("primary-temp request: %s", cr.message);
		return;
	}
	case MX_MSG_ERROR_REPLY:
		break;
	default:
		break;
	}
	mx_warn("unexpected or malformed message type %u from the monitor", h->type);
}

static void mon_retry_cb(uv_timer_t *t)
{
	mon_connect(t->data);
}

static void mon_on_close(struct mx_conn *c, int err)
{
	struct osd *osd = c->owner;

	osd->mon = NULL;
	osd->mon_connected = false;
	osd->booting = false;
	if (osd->stopping)
		return;
	mx_warn("monitor connection lost (%s); retrying", err ? uv_strerror(err) : "closed");
	uv_timer_start(&osd->mon_timer, mon_retry_cb, MON_RETRY_MS, 0);
}

static void mon_on_connect(struct mx_conn *c)
{
	struct osd *osd = c->owner;

	osd->mon_connected = true;
	send_boot(osd);
}

static const struct mx_conn_ops mon_ops = {
	.on_msg = mon_on_msg,
	.on_close = mon_on_close,
	.on_connect = mon_on_connect,
};

static void mon_connect(struct osd *osd)
{
	int r = mx_conn_connect(osd->loop, osd->cfg->mon_addr, &mon_ops, osd, &osd->mon);

	if (r < 0) {
		osd->mon = NULL;
		mx_warn("cannot connect to the monitor at %s: %s", osd->cfg->mon_addr,
			uv_strerror(r));
		uv_timer_start(&osd->mon_timer, mon_retry_cb, MON_RETRY_MS, 0);
	}
}

/* Start-up and shutdown ---------------------------------------------------- */

static int load_identity(struct osd *osd)
{
	char path[4200], buf[64];
	int fd, r;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/uuid", osd->cfg->data_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, osd->uuid, 16);
		close(fd);
		if (n != 16)
			return -EUCLEAN;
	} else {
		if (getrandom(osd->uuid, 16, 0) != 16)
			return -EIO;
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		r = mx_pwrite_all(fd, osd->uuid, 16, 0);
		if (r == 0 && fsync(fd) < 0)
			r = -errno;
		close(fd);
		if (r < 0)
			return r;
		r = mx_fsync_dir(osd->cfg->data_dir);
		if (r < 0)
			return r;
	}
	osd->id = osd->cfg->id;
	snprintf(path, sizeof(path), "%s/whoami", osd->cfg->data_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			return -EUCLEAN;
		buf[n] = '\0';
		if (osd->cfg->id >= 0 && atoi(buf) != osd->cfg->id)
			return -EEXIST;
		osd->id = atoi(buf);
	}
	return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
	struct osd *osd = arg;

	if (uv_is_closing(h))
		return;
	if (h->type == UV_TCP && h != (uv_handle_t *)&osd->server && h->data)
		mx_conn_close(h->data, 0);
	else
		uv_close(h, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	struct osd *osd = sig->data;

	mx_info("signal %d: shutting down", signum);
	commit_now(osd);
	osd->stopping = true;
	uv_walk(osd->loop, close_walk, osd);
}

int mx_osd_run(const struct mx_osd_config *cfg)
{
	struct osd *osd = &g_osd;
	int r;

	memset(osd, 0, sizeof(*osd));
	osd->cfg = cfg;
	osd->loop = uv_default_loop();
	mx_list_init(&osd->commit_pops);
	mx_list_init(&osd->commit_rwaits);
	mx_list_init(&osd->deferred);
	osd->dedup = mx_xcalloc(DEDUP_SLOTS, sizeof(*osd->dedup));
	osd->next_tid = 1;

	r = mx_mkdir_p(cfg->data_dir, 0700);
	if (r < 0)
		return mx_log_errno(r, "cannot create %s", cfg->data_dir);
	r = load_identity(osd);
	if (r < 0)
		return mx_log_errno(r, "cannot read the OSD identity in %s", cfg->data_dir);
	snprintf(osd->store_dir, sizeof(osd->store_dir), "%s/store", cfg->data_dir);
	{
		struct mx_store_opts so = {.pg_log_max = cfg->pg_log_max};

		r = mx_store_open(osd->store_dir, &so, &osd->store);
	}
	if (r < 0)
		return mx_log_errno(r, "cannot open the object store in %s", osd->store_dir);
	{
		struct mx_store_stats st;

		mx_store_get_stats(osd->store, &st);
		mx_info("object store open: %" PRIu64 " objects, %" PRIu64 " bytes", st.objects,
			st.bytes);
	}
	r = mx_listen(osd->loop, &osd->server, cfg->addr, on_connection, osd->addr,
		      sizeof(osd->addr));
	if (r < 0)
		return mx_log_errno(r, "cannot listen on %s", cfg->addr);
	osd->server.data = osd;
	uv_check_init(osd->loop, &osd->check);
	osd->check.data = osd;
	uv_check_start(&osd->check, on_check);
	uv_timer_init(osd->loop, &osd->mon_timer);
	osd->mon_timer.data = osd;
	osd->hb_interval_ms = cfg->heartbeat_interval_ms ? cfg->heartbeat_interval_ms : 1000;
	osd->hb_grace_ms = cfg->heartbeat_grace_ms ? cfg->heartbeat_grace_ms : 5000;
	osd->beacon_ms = cfg->beacon_interval_ms ? cfg->beacon_interval_ms : 2000;
	uv_timer_init(osd->loop, &osd->hb_timer);
	osd->hb_timer.data = osd;
	uv_timer_start(&osd->hb_timer, hb_tick, osd->hb_interval_ms, osd->hb_interval_ms);
	uv_timer_init(osd->loop, &osd->pg_timer);
	osd->pg_timer.data = osd;
	uv_timer_init(osd->loop, &osd->rec_timer);
	osd->rec_timer.data = osd;
	osd->rec_active = MX_MIN(MX_MAX(cfg->recovery_max_active, 1u), REC_SLOTS_MAX);
	osd->rec_active_busy = MX_MIN(MX_MAX(cfg->recovery_max_active_busy, 1u), REC_SLOTS_MAX);
	osd->rec_rate = cfg->recovery_max_rate;
	osd->rec_busy_rate = cfg->recovery_busy_rate;
	uv_timer_start(&osd->pg_timer, pg_tick, PG_TICK_MS, PG_TICK_MS);
	uv_timer_init(osd->loop, &osd->stats_timer);
	osd->stats_timer.data = osd;
	uv_timer_start(&osd->stats_timer, stats_tick, STATS_TICK_MS, STATS_TICK_MS);
	uv_signal_init(osd->loop, &osd->sigterm);
	osd->sigterm.data = osd;
	uv_signal_start(&osd->sigterm, on_signal, SIGTERM);
	uv_signal_init(osd->loop, &osd->sigint);
	osd->sigint.data = osd;
	uv_signal_start(&osd->sigint, on_signal, SIGINT);
	mon_connect(osd);

	uv_run(osd->loop, UV_RUN_DEFAULT);

	commit_now(osd);
	mx_store_close(osd->store);
	for (size_t i = 0; i < osd->hist_len; i++) {
		mx_placement_free(osd->hist_pl[i]);
		mx_map_free(osd->hist[i]);
	}
	free(osd->hist);
	free(osd->hist_pl);
	for (uint32_t i = 0; i < osd->n_peers; i++) {
		struct peer *p = osd->peers[i];
		struct mx_list *pos, *tmp;

		if (!p)
			continue;
		mx_list_for_each_safe(pos, tmp, &p->pending) {
			struct repop_out *ro = mx_list_entry(pos, struct repop_out, link);

			mx_list_del(pos);
			pop_unref(ro->pop);
			free(ro);
		}
		free(p);
	}
	free(osd->peers);
	for (size_t i = 0; i < PG_BUCKETS; i++) {
		while (osd->pgs[i]) {
			struct pgstate *n = osd->pgs[i]->next;

			pg_clear_primary(osd, osd->pgs[i]);
			scrub_free(osd->pgs[i]->scrub);
			free(osd->pgs[i]);
			osd->pgs[i] = n;
		}
	}
	free(osd->dedup);
	(void)uv_loop_close(osd->loop);
	mx_info("stopped");
	return 0;
}

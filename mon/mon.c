/*
 * mixsan-mon: keeps the cluster map and serves it.
 *
 * One event loop, no threads.  The monitor holds the committed map; every
 * change (an OSD booting, a command) is applied to a copy, stamped with the
 * next epoch and handed to the map store; only when the store reports the
 * commit does the copy become the current map, get pushed to subscribers and
 * the requester get its reply.  Commits are serialised: a change waits while
 * another is in flight, so epochs never fork.
 *
 * Invariants:
 *  - The epoch of the served map never decreases, across restarts too
 *    (the store returns the newest committed map).
 *  - A subscriber receives every epoch after the one it reported, or a
 *    newer full map; never an older one.
 *
 * Failure detection (docs/recovery.md): OSDs report peers that stopped
 * answering (MON_OSD_FAILURE) and send beacons.  The monitor marks an OSD
 * down once enough distinct OSDs report the same incarnation of it
 * (handle_failure), or when its beacons stop (on_tick); it marks an OSD out
 * once it has been down for the down-out interval (on_tick).  A report about
 * an older incarnation (the OSD restarted since) is ignored.
 *
 * Health (docs/health.md): every primary reports its PGs (MON_PG_STATS);
 * the monitor keeps the newest report of each PG in memory (pgstats.c),
 * judges the cluster's health from them and the map, and keeps an event
 * log of what changed: OSDs and pools (commit_done compares each new map
 * with the last), the health verdict and the PG summary (health_tick).
 * The `status` and `log` commands answer from these, without a new epoch.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "auth.h"
#include "authconn.h"
#include "commands.h"
#include "log.h"
#include "map.h"
#include "mapstore.h"
#include "msg.h"
#include "net.h"
#include "pgstats.h"
#include "placement.h"
#include "quorum.h"
#include "util.h"

struct deferred {
	struct deferred *next;
	struct session *s;
	uint16_t type;
	uint64_t tid;
	uint32_t len;
	uint8_t payload[];
};

struct session {
	struct session *next, *prev;
	struct mx_conn *conn;
	bool subscribed;
	uint64_t sent_epoch;
	uint64_t since_ms; /* connected at */
};

/* What the monitor knows of each OSD beyond the map (not persisted: after
 * a monitor restart every clock starts again).  Its times are of the
 * monotonic clock (mx_mono_ms): a wall clock stepped back by a
 * millisecond made "now - last beacon" wrap and marked a live OSD down. */
#define MAX_REPORTERS 8
struct osd_track {
	uint64_t incarnation;
	uint64_t last_beacon_ms;
	uint64_t down_since_ms;
	bool auto_out; /* marked out by the monitor, not by hand */
	int n_reporters;
	int32_t reporter[MAX_REPORTERS];
	uint64_t reported_ms[MAX_REPORTERS];
};

struct mon_config {
	bool failure_detection;
	uint32_t grace_ms;          /* reports older than 2x this are forgotten */
	uint32_t min_reporters;
	uint32_t beacon_grace_ms;
	uint32_t down_out_ms;       /* 0: never mark out automatically */
	uint32_t tick_stall_ms;     /* fault injection: the tick stalls */
};

struct mon {
	uv_loop_t *loop;
	uv_tcp_t server;
	uv_signal_t sigterm, sigint;
	uv_timer_t tick;
	struct mon_config cfg;
	struct osd_track *track; /* From malloc(); n_track entries, by OSD id */
	uint32_t n_track;
	char name[MX_NAME_MAX];
	char addr[MX_ADDR_MAX];
	const struct mx_mapstore_ops *store;
	void *store_ctx;
	/* In a quorum (docs/monitor-quorum.md); NULL when standalone. */
	struct mx_quorum *q;
	struct mx_mon_info *initial; /* --mons, n_initial entries */
	uint32_t n_initial;
	uint64_t leaderless_since_ms;
	struct change *inflight; /* the change being committed */
	struct change *member_change; /* a mon add/rm in flight */
	struct change *member_ready;  /* its Raft step done, waiting to commit */
	/* Requests that change the map, waiting while a commit is in flight
	 * (with a quorum, commits take a round trip). */
	struct deferred *defer_head, **defer_tail;
	bool draining;
	bool stopping;
	/* Authentication (docs/auth.md). */
	struct mx_auth_server auth_srv;
	bool auth_create;          /* --auth: the first map requires keys */
	const char *admin_keyfile; /* where the first map's admin key goes */
	struct mx_map *map;   /* committed; owned */
	struct mx_placement *pl; /* of map; owned (NULL if it cannot be computed) */
	struct mx_wbuf map_enc; /* encoding of map, for pushes */
	struct session sessions; /* list head */
	bool committing;
	/* Health */
	struct mx_pgstats_cfg pg_cfg;
	struct mx_pgstats *pgstats;
	struct mx_evlog *evlog;
	int last_health;          /* -1 before the first verdict */
	char last_checks[512];    /* codes of the last verdict's checks */
	char last_pgmap[1024];    /* the last PG summary logged */
	uint64_t last_pgmap_ms;
};

/* A change waiting for its commit. */
struct change {
	struct mon *mon;
	struct mx_map *next;      /* owned until committed */
	struct session *s;        /* requester (NULL if gone) */
	uint16_t reply_type;
	uint64_t tid;
	int32_t osd_id;
	int status;
	char msg[512];
	char why[160]; /* the monitor's own reason for a change, for the event log */
	bool admin_key;  /* the first map: write its admin key once committed */
	bool close_after; /* its requester's key changed: close after the reply */
	uint8_t key[MX_KEY_LEN];
	/* mon add / mon rm */
	bool member_add;
	bool then_raft;  /* add: the map is committed, the Raft step follows */
	char member_name[MX_NAME_MAX];
	char member_raft[MX_ADDR_MAX];
	uint64_t member_id;
};

static struct mon g_mon;

static void encode_current(struct mon *mon)
{
	mx_wbuf_reset(&mon->map_enc);
	mx_map_encode(mon->map, &mon->map_enc);
}

static void send_map(struct mon *mon, struct session *s, uint64_t tid)
{
	struct mx_wbuf w;
	struct mx_msg_map mm = {
		.status = 0,
		.epoch = mon->map->epoch,
		.map = mon->map_enc.data,
		.map_len = (uint32_t)mon->map_enc.len,
	};

	mx_wbuf_init(&w);
	mx_enc_map(&w, &mm);
	if (mx_conn_send(s->conn, MX_MSG_MON_MAP, tid, &w) == 0)
		s->sent_epoch = mon->map->epoch;
}

/* The map of an older epoch, from the store's history. */
static void send_old_map(struct mon *mon, struct session *s, uint64_t tid, uint64_t epoch)
{
	struct mx_msg_map mm = {.epoch = epoch};
	struct mx_map *old = NULL;
	struct mx_wbuf w, enc;
	int r = -ENOENT;

	mx_wbuf_init(&enc);
	if (epoch == mon->map->epoch) {
		r = 0;
		mx_map_encode(mon->map, &enc);
	} else if (epoch < mon->map->epoch) {
		r = mon->store->get(mon->store_ctx, epoch, &old);
		if (r == 0)
			mx_map_encode(old, &enc);
	}
	mx_map_free(old);
	mm.status = mx_errno_to_wire(r);
	if (r == 0) {
		mm.map = enc.data;
		mm.map_len = (uint32_t)enc.len;
	}
	mx_wbuf_init(&w);
	mx_enc_map(&w, &mm);
	(void)mx_conn_send(s->conn, MX_MSG_MON_MAP, tid, &w);
	mx_wbuf_free(&enc);
}

static void push_map(struct mon *mon)
{
	for (struct session *s = mon->sessions.next; s != &mon->sessions; s = s->next)
		if (s->subscribed && s->sent_epoch < mon->map->epoch)
			send_map(mon, s, 0);
}

static void reply_change(struct change *ch)
{
	struct mx_wbuf w;

	if (!ch->s)
		return;
	mx_wbuf_init(&w);
	if (ch->reply_type == MX_MSG_MON_OSD_BOOT_REPLY) {
		struct mx_msg_osd_boot_reply r = {
			.status = mx_errno_to_wire(ch->status),
			.osd_id = ch->osd_id,
			.epoch = ch->mon->map->epoch,
			.message = ch->msg,
		};
		mx_enc_osd_boot_reply(&w, &r);
	} else {
		struct mx_msg_command_reply r = {
			.status = mx_errno_to_wire(ch->status),
			.epoch = ch->mon->map->epoch,
			.message = ch->msg,
		};
		mx_enc_command_reply(&w, &r);
	}
	(void)mx_conn_send(ch->s->conn, ch->reply_type, ch->tid, &w);
}

/* A new map: its placement, and the PGs' primaries for the statistics. */
static void map_changed(struct mon *mon)
{
	struct mx_placement *pl = NULL;

	if (mx_placement_new(mon->map, &pl) < 0)
		pl = NULL;
	mx_placement_free(mon->pl);
	mon->pl = pl;
	if (mx_pgstats_map(mon->pgstats, mon->map, mon->pl, mx_wall_ms()) < 0)
		mx_warn("out of memory for the PG statistics");
}

/* The name of pool id in m, for messages. */
static const char *pool_name(const struct mx_map *m, int32_t id)
{
	const struct mx_pool *p = mx_map_pool_by_id(m, id);

	return p ? p->name : "?";
}

/* The event log's lines for what changed from map o to map n. */
static void log_map_events(struct mon *mon, const struct mx_map *o, const struct mx_map *n,
			   const char *why)
{
	uint64_t now = mx_wall_ms();
	uint32_t max = MX_MAX(o->max_osd, n->max_osd);
	char sep[4] = "";

	if (why && *why)
		snprintf(sep, sizeof(sep), ": ");
	else
		why = "";
	for (uint32_t i = 0; i < max; i++) {
		const struct mx_osd_info *a = i < o->max_osd && o->osds[i].exists ? &o->osds[i] : NULL;
		const struct mx_osd_info *b = i < n->max_osd && n->osds[i].exists ? &n->osds[i] : NULL;

		if (!a && b) {
			char loc[256];

			mx_loc_format(b->loc, b->nloc, loc, sizeof(loc));
			mx_evlog_add(mon->evlog, now, MX_HEALTH_OK, "osd.%u added (%s)", i, loc);
		} else if (a && !b) {
			mx_evlog_add(mon->evlog, now, MX_HEALTH_OK, "osd.%u removed", i);
			continue;
		}
		if (!b)
			continue;
		if ((!a || !a->up) && b->up)
			mx_evlog_add(mon->evlog, now, MX_HEALTH_OK, "osd.%u up: booted at %s", i,
				     b->addr);
		else if (a && a->up && b->up && a->incarnation != b->incarnation)
			mx_evlog_add(mon->evlog, now, MX_HEALTH_WARN,
				     "osd.%u restarted: booted again at %s", i, b->addr);
		else if (a && a->up && !b->up)
			mx_evlog_add(mon->evlog, now, MX_HEALTH_WARN, "osd.%u down%s%s", i, sep, why);
		if (a && a->in && !b->in)
			mx_evlog_add(mon->evlog, now, MX_HEALTH_WARN, "osd.%u out%s%s", i, sep, why);
		else if (a && !a->in && b->in)
			mx_evlog_add(mon->evlog, now, MX_HEALTH_OK, "osd.%u in", i);
		if (a && a->weight != b->weight)
			mx_evlog_add(mon->evlog, now, MX_HEALTH_OK, "osd.%u reweighted to %.4f", i,
				     (double)b->weight / (double)MX_WEIGHT_ONE);
	}
	for (uint32_t i = 0; i < n->n_pools; i++) {
		const struct mx_pool *b = &n->pools[i];
		const struct mx_pool *a = mx_map_pool_by_id(o, b->id);

		if (!a)
			mx_evlog_add(mon->evlog, now, MX_HEALTH_OK,
				     "pool '%s' (id %d) created: size %u, min_size %u, %u pgs",
				     b->name, b->id, b->size, b->min_size, b->pg_num);
		else if (a->pg_num != b->pg_num)
			mx_evlog_add(mon->evlog, now, MX_HEALTH_OK, "pool '%s': pg_num %u -> %u",
				     b->name, a->pg_num, b->pg_num);
		if (a && a->tier_of != b->tier_of && b->tier_of >= 0)
			mx_evlog_add(mon->evlog, now, MX_HEALTH_OK,
				     "pool '%s' is now the cache tier of '%s'", b->name,
				     pool_name(n, b->tier_of));
		else if (a && a->tier_of != b->tier_of)
			mx_evlog_add(mon->evlog, now, MX_HEALTH_OK,
				     "pool '%s' is no longer the cache tier of '%s'", b->name,
				     pool_name(o, a->tier_of));
		if (a && a->cache_mode != b->cache_mode)
			mx_evlog_add(mon->evlog, now, MX_HEALTH_OK, "pool '%s': cache mode %s -> %s",
				     b->name, mx_cache_mode_name(a->cache_mode),
				     mx_cache_mode_name(b->cache_mode));
	}
	for (uint32_t i = 0; i < o->n_pools; i++)
		if (!mx_map_pool_by_id(n, o->pools[i].id))
			mx_evlog_add(mon->evlog, now, MX_HEALTH_OK, "pool '%s' (id %d) removed",
				     o->pools[i].name, o->pools[i].id);
}

static void run_deferred(struct mon *mon);
static bool leading(struct mon *mon);
static void health_log(struct mon *mon, bool sample);
static void member_raft_add(struct mon *mon, struct change *ch);
static void member_map_rm(struct mon *mon, struct change *ch);

/* Authentication ----------------------------------------------------------- */

static int auth_lookup(void *arg, const char *entity, uint8_t key[MX_KEY_LEN],
		       char caps[MX_CAPS_MAX], uint32_t *generation)
{
	struct mon *mon = arg;
	const struct mx_auth_entity *e = mx_map_auth_find(mon->map, entity);

	if (mon->map->epoch == 0)
		return -EAGAIN; /* no map yet: ask again (or another monitor) */
	if (!mon->map->auth_required)
		return -ENOTSUP;
	if (!e)
		return -ENOENT;
	memcpy(key, e->key, MX_KEY_LEN);
	snprintf(caps, MX_CAPS_MAX, "%s", e->caps);
	*generation = e->generation;
	return 0;
}

static const uint8_t *auth_secret(void *arg)
{
	struct mon *mon = arg;

	return mon->map->have_secret ? mon->map->service_secret : NULL;
}

/* After a map change: sessions of removed or rotated keys end (and every
 * unauthenticated one once keys are required). */
static void auth_map_changed(struct mon *mon)
{
	mon->auth_srv.required = mon->map->auth_required;
	if (!mon->map->auth_required)
		return;
	for (struct session *s = mon->sessions.next, *n; s != &mon->sessions; s = n) {
		const struct mx_auth_entity *e;

		n = s->next;
		if (s->conn->closing)
			continue;
		if (s->conn->sec != MX_SEC_ON) {
			if (s->conn->sec == MX_SEC_NONE)
				mx_conn_close(s->conn, -EACCES);
			continue;
		}
		e = mx_map_auth_find(mon->map, s->conn->entity);
		if (!e || e->generation != s->conn->generation) {
			mx_info("%s: %s's key was %s: session closed", s->conn->peer,
				s->conn->entity, e ? "changed" : "removed");
			/* The requester of the change gets its answer first. */
			if (mon->inflight && mon->inflight->s == s)
				mon->inflight->close_after = true;
			else
				mx_conn_close(s->conn, -EACCES);
		}
	}
}

/* The first map of a cluster with authentication: a service secret and
 * the administrator's key (written to --admin-keyfile once committed). */
static int auth_bootstrap(struct mx_map *m, uint8_t admin_key[MX_KEY_LEN])
{
	struct mx_auth_entity e;

	memset(&e, 0, sizeof(e));
	snprintf(e.name, sizeof(e.name), "client.admin");
	snprintf(e.caps, sizeof(e.caps), "admin");
	e.generation = 1;
	if (mx_key_random(e.key) < 0 || mx_key_random(m->service_secret) < 0)
		return -EIO;
	memcpy(admin_key, e.key, MX_KEY_LEN);
	m->have_secret = true;
	m->auth_required = true;
	return mx_map_auth_set(m, &e);
}

static void write_admin_key(struct mon *mon, const uint8_t key[MX_KEY_LEN])
{
	int r;

	if (!mon->admin_keyfile)
		return;
	r = mx_keyfile_write(mon->admin_keyfile, "client.admin", key, true);
	if (r < 0)
		mx_err("cannot write the admin key to %s: %s", mon->admin_keyfile, strerror(-r));
	else
		mx_info("the admin key is in %s", mon->admin_keyfile);
}

/* m (owned) becomes the current map: logged, pushed to subscribers. */
static void install_map(struct mon *mon, struct mx_map *m, const char *why, const char *msg)
{
	log_map_events(mon, mon->map, m, why);
	mx_map_free(mon->map);
	mon->map = m;
	map_changed(mon);
	encode_current(mon);
	mx_info("epoch %llu: %s", (unsigned long long)mon->map->epoch, msg);
	push_map(mon);
	auth_map_changed(mon);
	/* A map change (an OSD down, say) changes the verdict at once: log it
	 * now, not at the next tick, which may come after it is over. */
	if (leading(mon) && mon->map->epoch > 1)
		health_log(mon, false);
}

static void commit_done(void *arg, int status)
{
	struct change *ch = arg;
	struct mon *mon = ch->mon;

	mon->committing = false;
	if (status == -ESTALE || status == -EAGAIN || status == -ENOTCONN) {
		ch->status = -EAGAIN;
		snprintf(ch->msg, sizeof(ch->msg), "%s",
			 status == -ESTALE ? "the change was superseded by a newer map; try again" :
			 status == -ENOTCONN ? "this monitor is not leading now; try again" :
			 "this monitor lost its leadership before the change committed (it may "
			 "still commit); try again");
		mx_map_free(ch->next);
	} else if (status < 0) {
		ch->status = status;
		snprintf(ch->msg, sizeof(ch->msg), "the map could not be stored: %s",
			 strerror(-status));
		mx_map_free(ch->next);
	} else if (mon->q) {
		/* Applied already, from the log (q_apply). */
		mx_map_free(ch->next);
	} else {
		install_map(mon, ch->next, ch->why, ch->msg);
	}
	mon->inflight = NULL;
	if (status == 0 && ch->admin_key)
		write_admin_key(mon, ch->key);
	explicit_bzero(ch->key, sizeof(ch->key));
	if (ch->then_raft) {
		if (mon->member_change == ch)
			mon->member_change = NULL;
		ch->then_raft = false;
		if (status == 0) {
			ch->next = NULL;
			member_raft_add(mon, ch);
			run_deferred(mon);
			return;
		}
	}
	ch->next = NULL;
	reply_change(ch);
	if (ch->close_after && ch->s)
		mx_conn_close_after_send(ch->s->conn, -EACCES);
	free(ch);
	run_deferred(mon);
}

/* Commit next (taken) as the following epoch, then reply. */
static void propose(struct mon *mon, struct change *ch)
{
	ch->next->epoch = mon->map->epoch + 1;
	ch->next->modified_ms = mx_wall_ms();
	if (mx_mon_prune_primary_temps(ch->next) > 0)
		mx_debug("stale primary-temp entries dropped");
	mon->committing = true;
	mon->inflight = ch;
	if (mon->q) {
		int r = mx_quorum_propose(mon->q, ch->next, commit_done, ch);

		if (r < 0) /* refused at once: nothing was appended */
			commit_done(ch, r == -EAGAIN ? -ENOTCONN : r);
		return;
	}
	(void)mon->store->commit(mon->store_ctx, ch->next, commit_done, ch);
}

static struct change *change_new(struct mon *mon, struct session *s, uint16_t type,
				 uint64_t tid)
{
	struct change *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return NULL;
	ch->mon = mon;
	ch->s = s;
	ch->reply_type = type;
	ch->tid = tid;
	ch->next = mx_map_dup(mon->map);
	if (!ch->next) {
		free(ch);
		return NULL;
	}
	return ch;
}

static void handle_osd_boot(struct mon *mon, struct session *s, uint64_t tid,
			    const struct mx_msg_osd_boot *b)
{
	struct change *ch = change_new(mon, s, MX_MSG_MON_OSD_BOOT_REPLY, tid);
	int r;

	if (!ch) {
		(void)mx_conn_send_error(s->conn, tid, -ENOMEM, "out of memory");
		return;
	}
	r = mx_mon_osd_boot(ch->next, b, ch->msg, sizeof(ch->msg));
	if (r >= 0) {
		/* Every client must be able to compute placement from the map:
		 * refuse a location that makes the hierarchy inconsistent (a
		 * bucket under two parents). */
		struct mx_placement *pl = NULL;
		int e = mx_placement_new(ch->next, &pl);

		mx_placement_free(pl);
		if (e < 0) {
			snprintf(ch->msg, sizeof(ch->msg),
				 "location '%s' conflicts with the hierarchy (a bucket "
				 "cannot have two parents)", b->location);
			r = -EINVAL;
		}
	}
	if (r < 0) {
		mx_warn("%s: osd boot refused: %s", s->conn->peer, ch->msg);
		ch->status = r;
		ch->osd_id = -1;
		mx_map_free(ch->next);
		ch->next = NULL;
		reply_change(ch);
		free(ch);
		return;
	}
	ch->osd_id = r;
	/* An OSD the monitor marked out because it stayed down comes back
	 * in when it boots; one marked out by hand stays out. */
	if ((uint32_t)r < mon->n_track && mon->track[r].auto_out) {
		ch->next->osds[r].in = true;
		mon->track[r].auto_out = false;
	}
	propose(mon, ch);
}

static void handle_command(struct mon *mon, struct session *s, uint64_t tid,
			   const struct mx_msg_command *c)
{
	struct change *ch = change_new(mon, s, MX_MSG_MON_COMMAND_REPLY, tid);
	/* The statistics describe mon->map's PGs, and ch->next is a copy of
	 * it: the same pools. */
	const struct mx_mon_cmd_env env = {.pgstats = mon->pgstats, .now_ms = mx_wall_ms()};
	int r;

	if (!ch) {
		(void)mx_conn_send_error(s->conn, tid, -ENOMEM, "out of memory");
		return;
	}
	r = mx_mon_command_env(ch->next, c, &env, ch->msg, sizeof(ch->msg));
	if (r <= 0) {
		if (r < 0)
			mx_info("%s: command '%s' refused: %s", s->conn->peer, c->prefix,
				ch->msg);
		ch->status = r;
		mx_map_free(ch->next);
		ch->next = NULL;
		reply_change(ch);
		free(ch);
		return;
	}
	propose(mon, ch);
}

/* The track of OSD id; a new incarnation's starts with its beacon clock
 * at now, the caller's reading of the clock (mx_mono_ms), so that one
 * pass compares against one time. */
static struct osd_track *track_of(struct mon *mon, int32_t id, uint64_t now)
{
	const struct mx_osd_info *o = mx_map_osd(mon->map, id);
	struct osd_track *t;

	if (!o)
		return NULL;
	if ((uint32_t)id >= mon->n_track) {
		uint32_t n = (uint32_t)id + 1;
		struct osd_track *nt = realloc(mon->track, n * sizeof(*nt));

		if (!nt)
			return NULL;
		memset(nt + mon->n_track, 0, (n - mon->n_track) * sizeof(*nt));
		mon->track = nt;
		mon->n_track = n;
	}
	t = &mon->track[id];
	if (t->incarnation != o->incarnation) {
		/* A new life: forget what was said of the old one. */
		memset(t, 0, sizeof(*t));
		t->incarnation = o->incarnation;
		t->last_beacon_ms = now;
	}
	return t;
}

/* Mark OSD id down or out (what: "down" or "out") in the next epoch. */
/* An OSD's report may move its disk state (docs/recovery.md, "Disk full"):
 * record the new one in the map. */
static void update_space(struct mon *mon, int32_t id)
{
	int want = mx_pgstats_space(mon->pgstats, mon->map, id);
	const struct mx_osd_info *o = mx_map_osd(mon->map, id);
	static const char *const names[] = {"has room again", "nearfull", "backfillfull",
					    "full"};
	struct change *ch;

	if (want < 0 || !o || o->space == want || mon->committing)
		return;
	ch = change_new(mon, NULL, MX_MSG_MON_COMMAND_REPLY, 0);
	if (!ch)
		return;
	ch->next->osds[id].space = (uint8_t)want;
	snprintf(ch->msg, sizeof(ch->msg), "osd.%d %s", id, names[want]);
	snprintf(ch->why, sizeof(ch->why), "disk %s", names[want]);
	mx_evlog_add(mon->evlog, mx_wall_ms(), want >= MX_SPACE_FULL ? MX_HEALTH_ERR :
		     want > MX_SPACE_OK ? MX_HEALTH_WARN : MX_HEALTH_OK, "osd.%d %s", id,
		     names[want]);
	propose(mon, ch);
}

static void mark_osd(struct mon *mon, int32_t id, bool down, const char *reason)
{
	struct change *ch = change_new(mon, NULL, MX_MSG_MON_COMMAND_REPLY, 0);
	struct mx_osd_info *o;

	if (!ch)
		return;
	o = &ch->next->osds[id];
	if (down)
		o->up = false;
	else
		o->in = false;
	snprintf(ch->msg, sizeof(ch->msg), "osd.%d marked %s: %s", id, down ? "down" : "out",
		 reason);
	snprintf(ch->why, sizeof(ch->why), "%s", reason);
	propose(mon, ch);
}

static uint32_t osds_up(const struct mx_map *m)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < m->max_osd; i++)
		n += m->osds[i].exists && m->osds[i].up;
	return n;
}

/* The failure domain a reporter counts in: its host (the OSD itself when
 * its location names none). */
static void report_domain(const struct mx_map *m, int32_t id, char *buf, size_t sz)
{
	const char *host = mx_osd_loc_name(mx_map_osd(m, id), MX_LEVEL_HOST);

	if (host)
		snprintf(buf, sz, "host %s", host);
	else
		snprintf(buf, sz, "osd.%d", id);
}

struct domains {
	char name[MAX_REPORTERS][MX_NAME_MAX + 8];
	uint32_t n;
};

static void domains_add(struct domains *ds, const struct mx_map *m, int32_t id)
{
	char d[MX_NAME_MAX + 8];

	if (ds->n == MAX_REPORTERS)
		return;
	report_domain(m, id, d, sizeof(d));
	for (uint32_t j = 0; j < ds->n; j++)
		if (strcmp(ds->name[j], d) == 0)
			return;
	snprintf(ds->name[ds->n++], sizeof(ds->name[0]), "%s", d);
}

/* How many distinct domains the ids span. */
static uint32_t count_domains(const struct mx_map *m, const int32_t *ids, int n)
{
	struct domains ds = {.n = 0};

	for (int i = 0; i < n; i++)
		domains_add(&ds, m, ids[i]);
	return ds.n;
}

/* Domains with an up OSD other than target, counting no further than
 * cap: how many distinct domains reports can come from at all. */
static uint32_t domains_up(const struct mx_map *m, int32_t target, uint32_t cap)
{
	struct domains ds = {.n = 0};

	for (uint32_t i = 0; i < m->max_osd && ds.n < cap; i++)
		if (m->osds[i].exists && m->osds[i].up && (int32_t)i != target)
			domains_add(&ds, m, (int32_t)i);
	return ds.n;
}

static void handle_failure(struct mon *mon, const struct mx_msg_osd_failure *f)
{
	const struct mx_osd_info *o = mx_map_osd(mon->map, f->target);
	const struct mx_osd_info *rep = mx_map_osd(mon->map, f->reporter);
	uint64_t now = mx_mono_ms(); /* failure-detection clocks are monotonic */
	struct osd_track *t;
	uint32_t needed, needed_dom, doms;
	int i;

	if (!mon->cfg.failure_detection || !o || !o->up || !rep || !rep->up ||
	    f->reporter == f->target || o->incarnation != f->target_incarnation)
		return;
	t = track_of(mon, f->target, now);
	if (!t)
		return;
	/* Forget stale reports, then count this reporter once. */
	for (i = 0; i < t->n_reporters;) {
		if (mx_ms_since(now, t->reported_ms[i]) > 2ull * mon->cfg.grace_ms ||
		    !mx_map_osd(mon->map, t->reporter[i])) {
			t->reporter[i] = t->reporter[t->n_reporters - 1];
			t->reported_ms[i] = t->reported_ms[t->n_reporters - 1];
			t->n_reporters--;
			continue;
		}
		if (t->reporter[i] == f->reporter)
			break;
		i++;
	}
	if (i == t->n_reporters && t->n_reporters < MAX_REPORTERS)
		t->n_reporters++;
	if (i < MAX_REPORTERS) {
		t->reporter[i] = f->reporter;
		t->reported_ms[i] = now;
	}
	/* min_reporters OSDs, from as many hosts (as far as there are hosts
	 * to report): the OSDs of one host cut off from the others must not
	 * mark the others down between them (Ceph's reporter subtree). */
	needed = MX_MIN(mon->cfg.min_reporters, MX_MAX(1u, osds_up(mon->map) - 1));
	needed_dom = MX_MIN(needed, MX_MAX(1u, domains_up(mon->map, f->target, needed)));
	doms = count_domains(mon->map, t->reporter, t->n_reporters);
	mx_info("osd.%d reports osd.%d %s (%u ms); %d of %u reporters, %u of %u hosts needed",
		f->reporter, f->target,
		(f->flags & MX_FAILURE_IMMEDIATE) ? "refusing connections" : "silent",
		f->silent_ms, t->n_reporters, needed, doms, needed_dom);
	if ((uint32_t)t->n_reporters >= needed && doms >= needed_dom && !mon->committing) {
		char why[128];

		snprintf(why, sizeof(why), "reported failed by %d OSDs", t->n_reporters);
		t->down_since_ms = now;
		t->n_reporters = 0;
		mark_osd(mon, f->target, true, why);
	}
}

/* Once a second: sample recovery for its rate; log a new verdict, or a
 * new PG summary (at most every 2 s, as it moves during recovery). */
static void health_tick(struct mon *mon)
{
	health_log(mon, true);
}

/* Log a new verdict (sample: also the recovery rate and the PG summary). */
static void health_log(struct mon *mon, bool sample)
{
	struct mx_health *h = malloc(sizeof(*h));
	uint64_t now = mx_wall_ms();
	char checks[512], pgmap[1024];
	size_t at = 0;

	if (!h)
		return;
	if (sample)
		mx_pgstats_tick(mon->pgstats, now);
	mx_pgstats_health(mon->pgstats, mon->map, now, h);
	checks[0] = '\0';
	for (int i = 0; i < h->n_checks && at + 1 < sizeof(checks); i++) {
		int k = snprintf(checks + at, sizeof(checks) - at, "%s%s", i ? " " : "",
				 h->checks[i].code);

		if (k < 0 || (size_t)k >= sizeof(checks) - at)
			break;
		at += (size_t)k;
	}
	if (h->status != mon->last_health || strcmp(checks, mon->last_checks) != 0) {
		char text[1024];
		size_t t = 0;

		text[0] = '\0';
		for (int i = 0; i < h->n_checks && t + 1 < sizeof(text); i++) {
			int k = snprintf(text + t, sizeof(text) - t, "%s%s", i ? "; " : ": ",
					 h->checks[i].text);

			if (k < 0 || (size_t)k >= sizeof(text) - t)
				break;
			t += (size_t)k;
		}
		mx_evlog_add(mon->evlog, now, h->status, "health %s%s", mx_health_name(h->status),
			     text);
		mon->last_health = h->status;
		snprintf(mon->last_checks, sizeof(mon->last_checks), "%s", checks);
	}
	mx_health_pgmap(h, pgmap, sizeof(pgmap));
	if (sample && strcmp(pgmap, mon->last_pgmap) != 0 &&
	    mx_ms_since(now, mon->last_pgmap_ms) >= 2000) {
		mx_evlog_add(mon->evlog, now, MX_HEALTH_OK, "pgmap: %s", pgmap);
		snprintf(mon->last_pgmap, sizeof(mon->last_pgmap), "%s", pgmap);
		mon->last_pgmap_ms = now;
	}
	free(h);
}

static void reply_text(struct session *s, uint64_t tid, int err, uint64_t epoch,
		       const char *text)
{
	struct mx_msg_command_reply r = {
		.status = mx_errno_to_wire(err),
		.epoch = epoch,
		.message = text,
	};
	struct mx_wbuf w;

	mx_wbuf_init(&w);
	mx_enc_command_reply(&w, &r);
	(void)mx_conn_send(s->conn, MX_MSG_MON_COMMAND_REPLY, tid, &w);
}

static const char *cmd_arg(const struct mx_msg_command *c, const char *key)
{
	for (uint16_t i = 0; i < c->n_args; i++)
		if (strcmp(c->keys[i], key) == 0)
			return c->vals[i];
	return NULL;
}

/* The largest answer a command reply carries (a string of u16 length). */
#define REPLY_MAX 60000

/*
 * `status`: the health summary as JSON (docs/health.md).
 * `log [after SEQ] [max N]`: the events after SEQ (the newest N), as JSON.
 * `pg ls [pool NAME] [state S]`: every PG with its state and counts.
 * Neither changes the map.  Returns false for other commands.
 */
static bool health_command(struct mon *mon, struct session *s, uint64_t tid,
			   const struct mx_msg_command *c)
{
	json_t *j;
	char *text;

	if (strcmp(c->prefix, "status") == 0) {
		struct mx_health *h = malloc(sizeof(*h));

		if (!h) {
			reply_text(s, tid, -ENOMEM, mon->map->epoch, "out of memory");
			return true;
		}
		mx_pgstats_health(mon->pgstats, mon->map, mx_wall_ms(), h);
		j = mx_health_json(h);
		free(h);
		if (j) {
			json_object_set_new(j, "epoch", json_integer((json_int_t)mon->map->epoch));
			json_object_set_new(j, "log_last",
					    json_integer((json_int_t)mx_evlog_last(mon->evlog)));
		}
	} else if (strcmp(c->prefix, "pg ls") == 0) {
		const char *pn = cmd_arg(c, "pool");
		const struct mx_pool *pool = pn ? mx_map_pool_by_name(mon->map, pn) : NULL;

		if (pn && !pool) {
			reply_text(s, tid, -ENOENT, mon->map->epoch, "no such pool");
			return true;
		}
		j = mx_pgstats_ls(mon->pgstats, mx_wall_ms(), pool ? pool->id : -1,
				  cmd_arg(c, "state"));
	} else if (strcmp(c->prefix, "log") == 0) {
		const char *a = cmd_arg(c, "after"), *m = cmd_arg(c, "max");
		char *end;
		unsigned long long after = 0, max = 0;

		if (a)
			after = strtoull(a, &end, 10);
		if (m)
			max = strtoull(m, &end, 10);
		j = mx_evlog_json(mon->evlog, after, (uint32_t)MX_MIN(max, MX_EVLOG_MAX),
				  REPLY_MAX - 8000);
	} else {
		return false;
	}
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text || strlen(text) > REPLY_MAX)
		reply_text(s, tid, -ENOMEM, mon->map->epoch, "answer too large");
	else
		reply_text(s, tid, 0, mon->map->epoch, text);
	free(text);
	return true;
}



/* May this session send this message?  (docs/auth.md, "Authorization") */
static bool permitted(struct mon *mon, struct session *s, const struct mx_msg_hdr *h,
		      const uint8_t *payload, char *why, size_t sz)
{
	const struct mx_conn *c = s->conn;

	if (!mon->map->auth_required)
		return true;
	if (c->sec != MX_SEC_ON) {
		snprintf(why, sz, "authentication required");
		return false;
	}
	switch (h->type) {
	case MX_MSG_MON_COMMAND: {
		static const char *const open_cmds[] = {"status", "log", "pg ls", "mon status"};
		struct mx_msg_command cmd;

		if (mx_dec_command(payload, h->len, &cmd) < 0) {
			snprintf(why, sz, "malformed command");
			return false;
		}
		if (c->caps.admin)
			return true;
		for (size_t i = 0; i < sizeof(open_cmds) / sizeof(open_cmds[0]); i++)
			if (strcmp(cmd.prefix, open_cmds[i]) == 0)
				return true;
		if (strcmp(cmd.prefix, "pg primary-temp") == 0 && c->caps.osd)
			return true;
		snprintf(why, sz, "permission denied: %s may not run '%s' (needs admin)",
			 c->entity, cmd.prefix);
		return false;
	}
	case MX_MSG_MON_OSD_BOOT: {
		struct mx_msg_osd_boot b;
		char want[32];

		if (mx_dec_osd_boot(payload, h->len, &b) < 0) {
			snprintf(why, sz, "malformed boot");
			return false;
		}
		snprintf(want, sizeof(want), "osd.%d", b.osd_id);
		if (c->caps.osd && strcmp(c->entity, want) == 0)
			return true;
		snprintf(why, sz, "permission denied: %s may not boot as %s", c->entity, want);
		return false;
	}
	case MX_MSG_MON_OSD_BEACON:
	case MX_MSG_MON_OSD_FAILURE:
	case MX_MSG_MON_PG_STATS: {
		/* An OSD speaks for itself only. */
		struct mx_msg_osd_beacon b;
		struct mx_msg_osd_failure f;
		struct mx_msg_pg_stats ps;
		int32_t id = -1;
		char want[32];

		if (h->type == MX_MSG_MON_OSD_BEACON && mx_dec_osd_beacon(payload, h->len, &b) == 0)
			id = b.osd_id;
		else if (h->type == MX_MSG_MON_OSD_FAILURE &&
			 mx_dec_osd_failure(payload, h->len, &f) == 0)
			id = f.reporter;
		else if (h->type == MX_MSG_MON_PG_STATS && mx_dec_pg_stats(payload, h->len, &ps) == 0)
			id = ps.osd_id;
		snprintf(want, sizeof(want), "osd.%d", id);
		if (c->caps.osd && id >= 0 && strcmp(c->entity, want) == 0)
			return true;
		snprintf(why, sz, "permission denied: %s may not report as %s", c->entity, want);
		return false;
	}
	default:
		return true;
	}
}

/* The key an administrator sent for NAME, sealed under its own key. */
static int unseal_key(struct mon *mon, struct session *s, const char *b64,
		      uint8_t key[MX_KEY_LEN], char *err, size_t errsz)
{
	const struct mx_auth_entity *me = mx_map_auth_find(mon->map, s->conn->entity);
	uint8_t blob[MX_KEY_LEN + MX_SEAL_OVERHEAD];

	if (!b64 || mx_b64_decode(b64, blob, sizeof(blob)) != (int)sizeof(blob) || !me ||
	    mx_unseal(me->key, blob, sizeof(blob), key) < 0) {
		snprintf(err, errsz, "the new key must come sealed under the requester's own key");
		return -EINVAL;
	}
	return 0;
}

/* Generations only grow, across removals too (a name removed and added
 * again must not revive old tickets): the epoch the change commits in. */
static uint32_t next_generation(struct mon *mon)
{
	return (uint32_t)(mon->map->epoch + 1);
}

static int count_admins(const struct mx_map *m, const char *except)
{
	int n = 0;

	for (uint32_t i = 0; i < m->n_auth; i++)
		if (strcmp(m->auth[i].caps, "admin") == 0 && strcmp(m->auth[i].name, except) != 0)
			n++;
	return n;
}

/*
 * auth add NAME caps=C key=SEALED | auth ls | auth get NAME | auth caps NAME caps=C
 * | auth rotate NAME key=SEALED | auth rm NAME.  Keys travel sealed under the
 * administrator's own key (docs/auth.md).  Returns false for other commands.
 */
static bool auth_command(struct mon *mon, struct session *s, uint64_t tid,
			 const struct mx_msg_command *c)
{
	const char *name = cmd_arg(c, "name"), *caps = cmd_arg(c, "caps");
	const struct mx_auth_entity *cur;
	struct mx_auth_entity e;
	struct change *ch;
	char err[200];

	if (strncmp(c->prefix, "auth ", 5) != 0)
		return false;
	if (!mon->map->auth_required || s->conn->sec != MX_SEC_ON) {
		reply_text(s, tid, -ENOTSUP, mon->map->epoch,
			   "authentication is not enabled on this cluster (create it with --auth)");
		return true;
	}
	if (strcmp(c->prefix, "auth ls") == 0) {
		char *text = malloc(REPLY_MAX);
		size_t at = 0;

		if (!text) {
			reply_text(s, tid, -ENOMEM, mon->map->epoch, "out of memory");
			return true;
		}
		text[0] = '\0';
		for (uint32_t i = 0; i < mon->map->n_auth && at + 300 < REPLY_MAX; i++)
			at += (size_t)snprintf(text + at, REPLY_MAX - at, "%s%s caps '%s' generation %u",
					       i ? "\n" : "", mon->map->auth[i].name,
					       mon->map->auth[i].caps, mon->map->auth[i].generation);
		reply_text(s, tid, 0, mon->map->epoch, text);
		free(text);
		return true;
	}
	if (!name || !mx_entity_valid(name)) {
		reply_text(s, tid, -EINVAL, mon->map->epoch,
			   "an entity name is needed: client.NAME or osd.ID");
		return true;
	}
	cur = mx_map_auth_find(mon->map, name);
	if (strcmp(c->prefix, "auth get") == 0) {
		const struct mx_auth_entity *me = mx_map_auth_find(mon->map, s->conn->entity);
		char b64[128], text[160];
		struct mx_wbuf w;

		if (!cur || !me) {
			reply_text(s, tid, -ENOENT, mon->map->epoch, "no such entity");
			return true;
		}
		mx_wbuf_init(&w);
		if (mx_seal(me->key, cur->key, MX_KEY_LEN, &w) < 0 ||
		    mx_b64_encode(w.data, w.len, b64, sizeof(b64)) < 0) {
			mx_wbuf_free(&w);
			reply_text(s, tid, -EIO, mon->map->epoch, "cannot seal the key");
			return true;
		}
		mx_wbuf_free(&w);
		snprintf(text, sizeof(text), "sealed %s", b64);
		reply_text(s, tid, 0, mon->map->epoch, text);
		return true;
	}
	memset(&e, 0, sizeof(e));
	if (cur)
		e = *cur;
	snprintf(e.name, sizeof(e.name), "%s", name);
	if (strcmp(c->prefix, "auth add") == 0 || strcmp(c->prefix, "auth caps") == 0) {
		struct mx_caps parsed;
		bool add = c->prefix[5] == 'a';

		if (add == (cur != NULL)) {
			reply_text(s, tid, add ? -EEXIST : -ENOENT, mon->map->epoch,
				   add ? "that entity exists already (auth rotate changes its key)"
				       : "no such entity");
			return true;
		}
		if (mx_caps_parse(caps, &parsed, err, sizeof(err)) < 0) {
			reply_text(s, tid, -EINVAL, mon->map->epoch, err);
			return true;
		}
		if (!add && strcmp(cur->caps, "admin") == 0 && strcmp(caps, "admin") != 0 &&
		    count_admins(mon->map, name) == 0) {
			reply_text(s, tid, -EPERM, mon->map->epoch,
				   "that is the last administrator; it keeps its caps");
			return true;
		}
		snprintf(e.caps, sizeof(e.caps), "%s", caps);
		if ((strncmp(name, "osd.", 4) == 0) != parsed.osd) {
			reply_text(s, tid, -EINVAL, mon->map->epoch,
				   "osd.N entities take caps 'osd', and only they do");
			return true;
		}
		/* A new generation: sessions and tickets of the old caps end. */
		e.generation = next_generation(mon);
		if (add) {
			if (unseal_key(mon, s, cmd_arg(c, "key"), e.key, err, sizeof(err)) < 0) {
				reply_text(s, tid, -EINVAL, mon->map->epoch, err);
				return true;
			}
		}
	} else if (strcmp(c->prefix, "auth rotate") == 0) {
		if (!cur) {
			reply_text(s, tid, -ENOENT, mon->map->epoch, "no such entity");
			return true;
		}
		if (unseal_key(mon, s, cmd_arg(c, "key"), e.key, err, sizeof(err)) < 0) {
			reply_text(s, tid, -EINVAL, mon->map->epoch, err);
			return true;
		}
		e.generation = next_generation(mon);
	} else if (strcmp(c->prefix, "auth rm") == 0) {
		if (!cur) {
			reply_text(s, tid, -ENOENT, mon->map->epoch, "no such entity");
			return true;
		}
		if (strcmp(cur->caps, "admin") == 0 && count_admins(mon->map, name) == 0) {
			reply_text(s, tid, -EPERM, mon->map->epoch,
				   "that is the last administrator; it cannot be removed");
			return true;
		}
	} else {
		reply_text(s, tid, -EINVAL, mon->map->epoch,
			   "unknown auth command (add, ls, get, caps, rotate, rm)");
		return true;
	}
	ch = change_new(mon, s, MX_MSG_MON_COMMAND_REPLY, tid);
	if (!ch) {
		explicit_bzero(&e, sizeof(e));
		reply_text(s, tid, -ENOMEM, mon->map->epoch, "out of memory");
		return true;
	}
	if (strcmp(c->prefix, "auth rm") == 0) {
		(void)mx_map_auth_rm(ch->next, name);
		snprintf(ch->msg, sizeof(ch->msg), "%s removed: its key no longer works", name);
	} else if (mx_map_auth_set(ch->next, &e) < 0) {
		explicit_bzero(&e, sizeof(e));
		mx_map_free(ch->next);
		free(ch);
		reply_text(s, tid, -ENOMEM, mon->map->epoch, "out of memory");
		return true;
	} else {
		snprintf(ch->msg, sizeof(ch->msg), "%s %s (caps '%s', generation %u)", name,
			 c->prefix[5] == 'a' ? "added" : c->prefix[5] == 'c' ? "given new caps" :
			 "has a new key", e.caps, e.generation);
	}
	explicit_bzero(&e, sizeof(e));
	snprintf(ch->why, sizeof(ch->why), "%s", c->prefix);
	propose(mon, ch);
	return true;
}

/* The quorum (docs/monitor-quorum.md) ------------------------------------- */

/* Standalone, or the ready leader: this monitor changes the map. */
static bool leading(struct mon *mon)
{
	return !mon->q || mx_quorum_ready(mon->q);
}

static const struct mx_mon_info *mon_by_id(struct mon *mon, uint64_t id)
{
	for (uint32_t i = 0; i < mon->map->n_mons; i++)
		if (mon->map->mons[i].raft_id == id)
			return &mon->map->mons[i];
	for (uint32_t i = 0; i < mon->n_initial; i++)
		if (mon->initial[i].raft_id == id)
			return &mon->initial[i];
	return NULL;
}

static void send_redirect(struct mon *mon, struct session *s, uint64_t tid)
{
	const struct mx_mon_info *l = mon->q ? mon_by_id(mon, mx_quorum_leader(mon->q)) : NULL;
	struct mx_msg_mon_redirect rd = {.leader = l ? l->addr : ""};
	char msg[320];
	struct mx_wbuf w;

	if (l)
		snprintf(msg, sizeof(msg), "mon.%s is not the leader; mon.%s at %s is", mon->name,
			 l->name, l->addr);
	else
		snprintf(msg, sizeof(msg), "mon.%s knows no leader (not in a quorum)", mon->name);
	rd.message = msg;
	mx_wbuf_init(&w);
	mx_enc_mon_redirect(&w, &rd);
	(void)mx_conn_send(s->conn, MX_MSG_MON_REDIRECT, tid, &w);
}

static void store_sync_done(void *arg, int status)
{
	*(int *)arg = status;
}

/* A committed map from the log: stored locally, then current. */
static void q_apply(void *arg, struct mx_map *m)
{
	struct mon *mon = arg;
	struct change *ch = mon->inflight;
	int st = 1;

	(void)mon->store->commit(mon->store_ctx, m, store_sync_done, &st);
	if (st != 0) {
		/* The log has it; this monitor cannot keep up.  Stop: the
		 * others serve, and a restart replays the log. */
		mx_err("cannot store committed map epoch %llu: %s; stopping",
		       (unsigned long long)m->epoch, strerror(st < 0 ? -st : EIO));
		exit(1);
	}
	if (ch && ch->next && ch->next->epoch == m->epoch)
		install_map(mon, m, ch->why, ch->msg);
	else
		install_map(mon, m, "", "committed");
}

static void quorum_fix_map(struct mon *mon);

static const struct mx_map *q_current(void *arg)
{
	return ((struct mon *)arg)->map;
}

/* Elected: start the failure-detection clocks again, and make the first
 * map (or list the quorum in a map from a standalone monitor). */
static void q_leading(void *arg)
{
	struct mon *mon = arg;
	uint64_t now = mx_wall_ms();

	for (uint32_t i = 0; i < mon->n_track; i++) {
		mon->track[i].last_beacon_ms = mx_mono_ms();
		mon->track[i].n_reporters = 0;
		mon->track[i].down_since_ms = 0;
	}
	mx_evlog_add(mon->evlog, now, MX_HEALTH_OK, "mon.%s leads the quorum at epoch %llu",
		     mon->name, (unsigned long long)mon->map->epoch);
	/* Statistics of an earlier term are stale: the OSDs report again. */
	{
		struct mx_pgstats *ps = mx_pgstats_new(&mon->pg_cfg);

		if (ps) {
			mx_pgstats_free(mon->pgstats);
			mon->pgstats = ps;
			map_changed(mon);
		}
	}
	quorum_fix_map(mon);
}

/* The first map of a new quorum, or the quorum listed in a map made by a
 * standalone monitor; again at every tick until it commits. */
static void quorum_fix_map(struct mon *mon)
{
	struct change *ch;

	if (mon->map->epoch != 0 && mon->map->n_mons && mon->map->mons[0].raft_id)
		return;
	if (mon->committing || !mon->n_initial)
		return;
	ch = change_new(mon, NULL, MX_MSG_MON_COMMAND_REPLY, 0);
	if (!ch)
		return;
	if (mon->map->epoch == 0 &&
	    (getrandom(ch->next->fsid, sizeof(ch->next->fsid), 0) != sizeof(ch->next->fsid) ||
	     (mon->auth_create && auth_bootstrap(ch->next, ch->key) < 0))) {
		mx_map_free(ch->next);
		free(ch);
		return;
	}
	ch->admin_key = mon->map->epoch == 0 && mon->auth_create;
	free(ch->next->mons);
	ch->next->mons = mx_xcalloc(mon->n_initial, sizeof(*ch->next->mons));
	memcpy(ch->next->mons, mon->initial, mon->n_initial * sizeof(*mon->initial));
	ch->next->n_mons = mon->n_initial;
	snprintf(ch->msg, sizeof(ch->msg), "%s", mon->map->epoch ? "the quorum listed in the map"
							     : "a new cluster map");
	propose(mon, ch);
}

/* A monitor that has known no leader for 3 s sends its clients away. */
static void quorum_tick(struct mon *mon)
{
	uint64_t now = mx_wall_ms();

	if (!mon->q)
		return;
	if (mx_quorum_leader(mon->q)) {
		mon->leaderless_since_ms = 0;
		return;
	}
	if (!mon->leaderless_since_ms) {
		mon->leaderless_since_ms = now;
		return;
	}
	if (mx_ms_since(now, mon->leaderless_since_ms) < 3000)
		return;
	/* Those connected for a second at least: a short question (`mon
	 * status`) still gets its answer. */
	for (struct session *s = mon->sessions.next, *n; s != &mon->sessions; s = n) {
		n = s->next;
		if (!s->conn->closing && mx_ms_since(now, s->since_ms) >= 1000)
			mx_conn_close(s->conn, 0);
	}
}

static void mon_status(struct mon *mon, struct session *s, uint64_t tid)
{
	char text[2048], line[256];
	size_t at;

	if (mon->q)
		mx_quorum_describe(mon->q, line, sizeof(line));
	else
		snprintf(line, sizeof(line), "role standalone");
	at = (size_t)snprintf(text, sizeof(text), "mon.%s %s epoch %llu", mon->name, line,
			      (unsigned long long)mon->map->epoch);
	if (mon->q) {
		const struct mx_mon_info *l = mon_by_id(mon, mx_quorum_leader(mon->q));

		at += (size_t)snprintf(text + at, sizeof(text) - at, " leader_name %s",
				       l ? l->name : "-");
	}
	for (uint32_t i = 0; i < mon->map->n_mons && at < sizeof(text); i++)
		at += (size_t)snprintf(text + at, sizeof(text) - at, "\nmon.%s %s%s%s",
				       mon->map->mons[i].name, mon->map->mons[i].addr,
				       mon->map->mons[i].raft_addr[0] ? " raft " : "",
				       mon->map->mons[i].raft_addr);
	reply_text(s, tid, 0, mon->map->epoch, text);
}

/*
 * mon add / mon rm (docs/monitor-quorum.md, "Changing the quorum").  The
 * map always lists every Raft voter: add commits the map first, then the
 * Raft change; rm the Raft change first, then the map.  Both can be run
 * again after any failure: a step already done is skipped.
 */
static void member_reply(struct mon *mon, struct change *ch, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void member_reply(struct mon *mon, struct change *ch, int status, const char *fmt, ...)
{
	va_list ap;

	if (mon->member_change == ch)
		mon->member_change = NULL;
	ch->status = status;
	va_start(ap, fmt);
	vsnprintf(ch->msg, sizeof(ch->msg), fmt, ap);
	va_end(ap);
	mx_map_free(ch->next);
	ch->next = NULL;
	reply_change(ch);
	free(ch);
}

/* rm: the Raft step is done; now the map without the monitor. */
static void member_map_rm(struct mon *mon, struct change *ch)
{
	uint32_t n, k;

	if (mon->committing) {
		mon->member_ready = ch; /* run_deferred comes back here */
		return;
	}
	mx_map_free(ch->next);
	ch->next = mx_map_dup(mon->map);
	if (!ch->next) {
		member_reply(mon, ch, -ENOMEM, "out of memory");
		return;
	}
	n = ch->next->n_mons;
	for (k = 0; k < n && strcmp(ch->next->mons[k].name, ch->member_name) != 0; k++)
		;
	if (k == n) {
		member_reply(mon, ch, 0, "mon.%s removed", ch->member_name);
		return;
	}
	memmove(&ch->next->mons[k], &ch->next->mons[k + 1], (n - k - 1) * sizeof(*ch->next->mons));
	ch->next->n_mons = n - 1;
	if (mon->member_change == ch)
		mon->member_change = NULL;
	snprintf(ch->msg, sizeof(ch->msg), "mon.%s removed", ch->member_name);
	propose(mon, ch);
}

static void member_done(void *arg, int status)
{
	struct change *ch = arg;
	struct mon *mon = ch->mon;

	if (status < 0) {
		member_reply(mon, ch, status,
			     "the quorum change for mon.%s failed: %s%s", ch->member_name,
			     strerror(-status),
			     ch->member_add ? " (it is in the map: start it with --join and run "
					      "mon add again, or mon rm it)" : "; run mon rm again");
		return;
	}
	if (ch->member_add) {
		member_reply(mon, ch, 0, "mon.%s added to the quorum", ch->member_name);
		return;
	}
	if (!leading(mon)) {
		member_reply(mon, ch, -EAGAIN, "mon.%s left the quorum, but leadership moved "
			     "before the map followed; run mon rm again", ch->member_name);
		return;
	}
	member_map_rm(mon, ch);
}

/* add: the map lists the monitor; now the Raft step. */
static void member_raft_add(struct mon *mon, struct change *ch)
{
	int r = mx_quorum_add(mon->q, ch->member_id, ch->member_raft, member_done, ch);

	if (r == 1)
		member_reply(mon, ch, 0, "mon.%s is in the quorum", ch->member_name);
	else if (r < 0)
		member_done(ch, r);
	else
		mon->member_change = ch;
}

static void member_command(struct mon *mon, struct session *s, uint64_t tid,
			   const struct mx_msg_command *c, bool add)
{
	const char *name = cmd_arg(c, "name");
	const struct mx_mon_info *cur = NULL;
	struct change *ch;
	int r;

	if (!mon->q) {
		reply_text(s, tid, -ENOTSUP, mon->map->epoch,
			   "this monitor runs standalone (started without --mons)");
		return;
	}
	if (mon->member_change || mon->member_ready || mon->committing) {
		reply_text(s, tid, -EBUSY, mon->map->epoch,
			   "another change is in flight; try again");
		return;
	}
	if (!name || !mx_valid_name(name)) {
		reply_text(s, tid, -EINVAL, mon->map->epoch, "a valid monitor name is needed");
		return;
	}
	for (uint32_t i = 0; i < mon->map->n_mons; i++)
		if (strcmp(mon->map->mons[i].name, name) == 0)
			cur = &mon->map->mons[i];
	ch = change_new(mon, s, MX_MSG_MON_COMMAND_REPLY, tid);
	if (!ch) {
		reply_text(s, tid, -ENOMEM, mon->map->epoch, "out of memory");
		return;
	}
	snprintf(ch->member_name, sizeof(ch->member_name), "%s", name);
	ch->member_add = add;
	if (add) {
		const char *addr = cmd_arg(c, "addr"), *raddr = cmd_arg(c, "raft_addr");
		char spec[256], err[160];
		struct mx_mon_info *one = NULL, *nm;
		uint32_t n = mon->map->n_mons, n1;

		snprintf(spec, sizeof(spec), "%s=%s/%s", name, addr ? addr : "",
			 raddr ? raddr : "");
		r = mx_quorum_parse_mons(spec, &one, &n1, err, sizeof(err));
		for (uint32_t i = 0; r == 0 && i < n; i++) {
			const struct mx_mon_info *m = &mon->map->mons[i];

			if (m == cur) {
				if (strcmp(m->addr, one->addr) || strcmp(m->raft_addr, one->raft_addr)) {
					snprintf(err, sizeof(err), "mon.%s is in the map with other "
						 "addresses (mon rm it first)", name);
					r = -EEXIST;
				}
			} else if (m->raft_id == one->raft_id || !strcmp(m->addr, one->addr) ||
				   !strcmp(m->raft_addr, one->raft_addr)) {
				snprintf(err, sizeof(err), "an address of mon.%s is taken", name);
				r = -EEXIST;
			}
		}
		if (r == 0 && !cur && n >= MX_MAX_MONS) {
			snprintf(err, sizeof(err), "the quorum is full");
			r = -ENOSPC;
		}
		if (r < 0) {
			free(one);
			member_reply(mon, ch, r, "%s", err);
			return;
		}
		ch->member_id = one->raft_id;
		snprintf(ch->member_raft, sizeof(ch->member_raft), "%s", one->raft_addr);
		if (cur) {
			free(one);
			member_raft_add(mon, ch);
			return;
		}
		/* First the map, so that every voter is in it (commit_done
		 * goes on with member_raft_add). */
		nm = realloc(ch->next->mons, (n + 1) * sizeof(*nm));
		if (!nm) {
			free(one);
			member_reply(mon, ch, -ENOMEM, "out of memory");
			return;
		}
		nm[n] = *one;
		ch->next->mons = nm;
		ch->next->n_mons = n + 1;
		snprintf(ch->msg, sizeof(ch->msg), "mon.%s listed at %s (raft %s)", name,
			 one->addr, one->raft_addr);
		free(one);
		ch->then_raft = true;
		mon->member_change = ch;
		propose(mon, ch);
		return;
	}
	if (!cur) {
		member_reply(mon, ch, -ENOENT, "no such monitor");
		return;
	}
	if (mon->map->n_mons == 1) {
		member_reply(mon, ch, -EINVAL, "the last monitor cannot be removed");
		return;
	}
	ch->member_id = cur->raft_id;
	if (ch->member_id == mx_quorum_leader(mon->q)) {
		mx_quorum_transfer(mon->q);
		member_reply(mon, ch, -EAGAIN, "that monitor leads the quorum: leadership is "
			     "being handed to another; run the command again");
		return;
	}
	r = mx_quorum_remove(mon->q, ch->member_id, member_done, ch);
	if (r == 1)
		member_map_rm(mon, ch);
	else if (r < 0)
		member_done(ch, r);
	else
		mon->member_change = ch;
}

static void on_tick(uv_timer_t *timer)
{
	struct mon *mon = timer->data;
	uint64_t now = mx_mono_ms(); /* beacons and down times: monotonic */

	if (mon->stopping)
		return;
	quorum_tick(mon);
	if (mon->q && leading(mon) && !mon->committing)
		quorum_fix_map(mon);
	if (!leading(mon) || mon->map->epoch == 0)
		return;
	health_tick(mon);
	if (mon->cfg.tick_stall_ms) {
		struct timespec ts = {.tv_sec = mon->cfg.tick_stall_ms / 1000,
				      .tv_nsec = (long)(mon->cfg.tick_stall_ms % 1000) * 1000000};

		nanosleep(&ts, NULL);
	}
	if (!mon->cfg.failure_detection || mon->committing)
		return;
	for (uint32_t id = 0; id < mon->map->max_osd; id++) {
		const struct mx_osd_info *o = &mon->map->osds[id];
		struct osd_track *t;

		if (!o->exists)
			continue;
		t = track_of(mon, (int32_t)id, now);
		if (!t)
			continue;
		if (o->up && mx_ms_since(now, t->last_beacon_ms) > mon->cfg.beacon_grace_ms) {
			t->down_since_ms = now;
			mark_osd(mon, (int32_t)id, true, "no beacon");
			return; /* one change per tick */
		}
		if (!o->up && !t->down_since_ms)
			t->down_since_ms = now;
		if (!o->up && o->in && mon->cfg.down_out_ms &&
		    mx_ms_since(now, t->down_since_ms) > mon->cfg.down_out_ms) {
			t->auto_out = true;
			mark_osd(mon, (int32_t)id, false, "down for longer than the down-out interval");
			return;
		}
	}
}

/* Keep a map-changing request until the commit in flight is done. */
static void defer_msg(struct mon *mon, struct session *s, const struct mx_msg_hdr *h,
		      const uint8_t *payload)
{
	struct deferred *d = malloc(sizeof(*d) + h->len);

	if (!d) {
		(void)mx_conn_send_error(s->conn, h->tid, -ENOMEM, "out of memory");
		return;
	}
	d->next = NULL;
	d->s = s;
	d->type = h->type;
	d->tid = h->tid;
	d->len = h->len;
	memcpy(d->payload, payload, h->len);
	*mon->defer_tail = d;
	mon->defer_tail = &d->next;
}

static void on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, uint8_t *payload);

/* After a commit: a quorum change whose map waits, then the requests that
 * waited, until one starts a commit. */
static void run_deferred(struct mon *mon)
{
	if (mon->member_ready && !mon->committing) {
		struct change *ch = mon->member_ready;

		mon->member_ready = NULL;
		member_map_rm(mon, ch);
	}
	mon->draining = true;
	while (mon->defer_head && !mon->committing) {
		struct deferred *d = mon->defer_head;
		struct mx_msg_hdr h = {.type = d->type, .tid = d->tid, .len = d->len};

		mon->defer_head = d->next;
		if (!mon->defer_head)
			mon->defer_tail = &mon->defer_head;
		on_msg(d->s->conn, &h, d->payload);
		free(d);
	}
	mon->draining = false;
}

static void drop_deferred(struct mon *mon, struct session *s)
{
	struct deferred **pp = &mon->defer_head;

	while (*pp) {
		struct deferred *d = *pp;

		if (d->s == s) {
			*pp = d->next;
			free(d);
		} else {
			pp = &d->next;
		}
	}
	mon->defer_tail = &mon->defer_head;
	while (*mon->defer_tail)
		mon->defer_tail = &(*mon->defer_tail)->next;
}

static void on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, uint8_t *payload)
{
	struct session *s = c->owner_data;
	struct mon *mon = c->owner;
	int r;

	if (mon->stopping)
		return;
	{
		char why[200];

		if (!permitted(mon, s, h, payload, why, sizeof(why))) {
			mx_info("%s: %s", c->peer, why);
			if (h->type == MX_MSG_MON_COMMAND) {
				reply_text(s, h->tid, -EACCES, mon->map->epoch, why);
			} else if (h->type == MX_MSG_MON_OSD_BOOT) {
				struct mx_msg_osd_boot_reply br = {
					.status = mx_errno_to_wire(-EACCES), .osd_id = -1,
					.epoch = mon->map->epoch, .message = why,
				};
				struct mx_wbuf w;

				mx_wbuf_init(&w);
				mx_enc_osd_boot_reply(&w, &br);
				(void)mx_conn_send(c, MX_MSG_MON_OSD_BOOT_REPLY, h->tid, &w);
			} else {
				(void)mx_conn_send_error(c, h->tid, -EACCES, why);
			}
			return;
		}
	}
	/* Only the leader answers what changes or watches the cluster; a
	 * monitor without a map yet answers nothing but PING and mon status. */
	switch (h->type) {
	case MX_MSG_PING:
		break;
	case MX_MSG_MON_GET_MAP:
		if (mon->map->epoch == 0) {
			send_redirect(mon, s, h->tid);
			return;
		}
		break;
	case MX_MSG_MON_COMMAND: {
		struct mx_msg_command cmd;

		if (mx_dec_command(payload, h->len, &cmd) == 0 &&
		    strcmp(cmd.prefix, "mon status") == 0) {
			mon_status(mon, s, h->tid);
			return;
		}
	}
		/* fall through */
	default:
		if (!leading(mon) || mon->map->epoch == 0) {
			/* Reports to a monitor that is not the leader are
			 * redirected too: the sender moves. */
			send_redirect(mon, s, h->tid);
			return;
		}
		if ((h->type == MX_MSG_MON_OSD_BOOT || h->type == MX_MSG_MON_COMMAND) &&
		    (mon->committing || (mon->defer_head && !mon->draining))) {
			defer_msg(mon, s, h, payload);
			return;
		}
		break;
	}

	switch (h->type) {
	case MX_MSG_MON_GET_MAP: {
		struct mx_msg_get_map gm;

		r = mx_dec_get_map(payload, h->len, &gm);
		if (r < 0)
			break;
		if (gm.want_epoch) {
			send_old_map(mon, s, h->tid, gm.want_epoch);
			return;
		}
		if (gm.subscribe)
			s->subscribed = true;
		if (gm.have_epoch < mon->map->epoch || !gm.subscribe)
			send_map(mon, s, h->tid);
		return;
	}
	case MX_MSG_MON_OSD_BOOT: {
		struct mx_msg_osd_boot b;

		r = mx_dec_osd_boot(payload, h->len, &b);
		if (r < 0)
			break;
		handle_osd_boot(mon, s, h->tid, &b);
		return;
	}
	case MX_MSG_MON_COMMAND: {
		struct mx_msg_command cmd;

		r = mx_dec_command(payload, h->len, &cmd);
		if (r < 0)
			break;
		if (strcmp(cmd.prefix, "mon add") == 0 || strcmp(cmd.prefix, "mon rm") == 0)
			member_command(mon, s, h->tid, &cmd, cmd.prefix[4] == 'a');
		else if (auth_command(mon, s, h->tid, &cmd))
			;
		else if (!health_command(mon, s, h->tid, &cmd))
			handle_command(mon, s, h->tid, &cmd);
		return;
	}
	case MX_MSG_MON_OSD_FAILURE: {
		struct mx_msg_osd_failure f;

		r = mx_dec_osd_failure(payload, h->len, &f);
		if (r < 0)
			break;
		handle_failure(mon, &f);
		return;
	}
	case MX_MSG_MON_OSD_BEACON: {
		struct mx_msg_osd_beacon b;
		const struct mx_osd_info *o;
		struct osd_track *t;

		r = mx_dec_osd_beacon(payload, h->len, &b);
		if (r < 0)
			break;
		o = mx_map_osd(mon->map, b.osd_id);
		if (o && o->incarnation == b.incarnation) {
			uint64_t now = mx_mono_ms();

			t = track_of(mon, b.osd_id, now);
			if (t)
				t->last_beacon_ms = now;
		}
		return;
	}
	case MX_MSG_MON_PG_STATS: {
		struct mx_msg_pg_stats ps;

		r = mx_dec_pg_stats(payload, h->len, &ps);
		if (r < 0 || mx_pgstats_report(mon->pgstats, mon->map, &ps, mx_wall_ms()) < 0) {
			/* No reply to a report: log and drop it. */
			mx_warn("%s: malformed PG statistics (%u bytes)", c->peer, h->len);
			return;
		}
		update_space(mon, ps.osd_id);
		return;
	}
	case MX_MSG_PING: {
		struct mx_wbuf w;

		mx_wbuf_init(&w);
		(void)mx_conn_send(c, MX_MSG_PONG, h->tid, &w);
		return;
	}
	default:
		mx_warn("%s: unknown message type %u", c->peer, h->type);
		(void)mx_conn_send_error(c, h->tid, -ENOTSUP, "unknown message type");
		return;
	}
	mx_warn("%s: malformed message of type %u (%u bytes)", c->peer, h->type, h->len);
	(void)mx_conn_send_error(c, h->tid, -EBADMSG, "malformed message");
}

static void on_close(struct mx_conn *c, int err)
{
	struct session *s = c->owner_data;
	struct mon *mon = c->owner;

	if (err < 0 && err != UV_ECONNRESET)
		mx_debug("%s: connection closed: %s", c->peer, uv_strerror(err));
	/* Changes in flight reply to no one now. */
	if (mon->inflight && mon->inflight->s == s)
		mon->inflight->s = NULL;
	if (mon->member_change && mon->member_change->s == s)
		mon->member_change->s = NULL;
	drop_deferred(mon, s);
	s->prev->next = s->next;
	s->next->prev = s->prev;
	free(s);
}

static const struct mx_conn_ops mon_conn_ops = {
	.on_msg = on_msg,
	.on_close = on_close,
};

static void on_connection(uv_stream_t *server, int status)
{
	struct mon *mon = server->data;
	struct session *s;
	struct mx_conn *c;

	if (status < 0) {
		mx_warn("accept: %s", uv_strerror(status));
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return;
	if (mx_conn_accept(server, &mon_conn_ops, mon, &c) < 0) {
		free(s);
		return;
	}
	mx_conn_auth_server(c, &mon->auth_srv);
	s->conn = c;
	s->since_ms = mx_wall_ms();
	c->owner_data = s;
	s->next = mon->sessions.next;
	s->prev = &mon->sessions;
	mon->sessions.next->prev = s;
	mon->sessions.next = s;
}

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h)) {
		if (h->type == UV_TCP && h->data && h != (uv_handle_t *)&g_mon.server)
			mx_conn_close(h->data, 0);
		else
			uv_close(h, NULL);
	}
}

static void quorum_closed(void *arg)
{
	g_mon.q = NULL;
	uv_walk(arg, close_walk, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	struct mon *mon = &g_mon;

	mx_info("signal %d: shutting down", signum);
	if (mon->stopping)
		return;
	mon->stopping = true;
	/* The log's own handles first: they are not ours to close. */
	if (mon->q)
		mx_quorum_close(mon->q, quorum_closed, sig->loop);
	else
		uv_walk(sig->loop, close_walk, NULL);
}

static void usage(FILE *f)
{
	fputs("usage: mixsan-mon --data DIR [--addr IP:PORT] [--name NAME] [--store file]\n"
	      "                  [--mons NAME=IP:PORT/IP:PORT,... | --join --raft-addr IP:PORT]\n"
	      "                  [--auth --admin-keyfile FILE] [--auth-ticket-ttl S]\n"
	      "                  [--mon-keyfile FILE | --trust-raft-network]\n"
	      "                  [--log-level error|warn|info|debug]\n"
	      "                  [--no-osd-failure-detection] [--heartbeat-grace MS]\n"
	      "                  [--min-down-reporters N] [--beacon-grace MS]\n"
	      "                  [--down-out-interval S] [--pg-stale-grace MS]\n"
	      "                  [--pg-inactive-grace MS] [--nearfull-ratio R]\n"
	      "                  [--backfillfull-ratio R] [--full-ratio R]\n"
	      "                  [--inject-tick-stall MS]\n"
	      "Keeps the MixSAN cluster map under DIR and serves it on IP:PORT\n"
	      "(default 127.0.0.1:6789).  It marks OSDs down on their peers' reports\n"
	      "(grace 5000 ms, 2 reporters) or missing beacons (20000 ms), and out\n"
	      "after the down-out interval (600 s; 0: never), unless\n"
	      "--no-osd-failure-detection is given.  A PG whose primary has not\n"
	      "reported for the stale grace (5000 ms) is stale; PGs inactive for\n"
	      "longer than the inactive grace (10000 ms) make the health an error;\n"
	      "an OSD whose file system is used to the nearfull ratio (0.85) is a\n"
	      "warning, to the full ratio (0.95) an error: the map marks it so, and\n"
	      "its PGs refuse new data; from the backfillfull ratio (0.90) no\n"
	      "backfill goes to it.\n"
	      "With --mons the monitor is one of a quorum that keeps the map in a\n"
	      "replicated log (Raft): NAME=CLIENT_ADDR/RAFT_ADDR for every member,\n"
	      "the same list on each; its own entry is the one called --name.  With\n"
	      "--join it waits to be added by `mixsan mon add` (docs/monitor-quorum.md).\n"
	      "With --auth a new cluster requires keys (docs/auth.md): the admin key is\n"
	      "written to --admin-keyfile; tickets last --auth-ticket-ttl S (3600).\n"
	      "--mon-keyfile names the monitor key, the same on every monitor: it\n"
	      "authenticates and encrypts the Raft links; a quorum with keys needs it\n"
	      "(or --trust-raft-network: the network between the monitors is private).\n"
	      "--inject-tick-stall makes a fault for tests: each second's tick stalls\n"
	      "MS ms after its health pass, as a monitor slowed by its host would.\n", f);
}

static int parse_level(const char *s)
{
	static const char *names[] = {"error", "warn", "info", "debug"};

	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

/* Whether this monitor's log has been started before (its folder holds
 * files). */
static bool quorum_started(const char *data)
{
	char path[4200];
	DIR *d;
	struct dirent *e;
	bool any = false;

	snprintf(path, sizeof(path), "%s/raft", data);
	d = opendir(path);
	if (!d)
		return false;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			any = true;
	closedir(d);
	return any;
}

static void store_init_done(void *arg, int status)
{
	*(int *)arg = status;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"data", required_argument, NULL, 'd'},
		{"addr", required_argument, NULL, 'a'},
		{"name", required_argument, NULL, 'n'},
		{"store", required_argument, NULL, 's'},
		{"log-level", required_argument, NULL, 'l'},
		{"osd-failure-detection", no_argument, NULL, 'F'},
		{"no-osd-failure-detection", no_argument, NULL, 'N'},
		{"heartbeat-grace", required_argument, NULL, 'G'},
		{"min-down-reporters", required_argument, NULL, 'R'},
		{"beacon-grace", required_argument, NULL, 'B'},
		{"down-out-interval", required_argument, NULL, 'O'},
		{"pg-stale-grace", required_argument, NULL, 'S'},
		{"pg-inactive-grace", required_argument, NULL, 'I'},
		{"nearfull-ratio", required_argument, NULL, 'f'},
		{"full-ratio", required_argument, NULL, 'u'},
		{"backfillfull-ratio", required_argument, NULL, 'b'},
		{"mons", required_argument, NULL, 'M'},
		{"join", no_argument, NULL, 'J'},
		{"raft-addr", required_argument, NULL, 'r'},
		{"auth", no_argument, NULL, 'A'},
		{"admin-keyfile", required_argument, NULL, 'K'},
		{"auth-ticket-ttl", required_argument, NULL, 'T'},
		{"trust-raft-network", no_argument, NULL, 'X'},
		{"mon-keyfile", required_argument, NULL, 'm'},
		{"inject-tick-stall", required_argument, NULL, 'i'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct mon *mon = &g_mon;
	struct mx_mon_info self;
	uint8_t admin_key[MX_KEY_LEN];
	char *end;
	const char *data = NULL, *store = "file", *mons_spec = NULL, *raft_addr = NULL;
	const char *mon_keyfile = NULL;
	uint8_t link_key[MX_KEY_LEN];
	bool join = false, addr_given = false, trust_raft = false;
	int level = MX_LOG_INFO, c, r, lock_fd;

	snprintf(mon->addr, sizeof(mon->addr), "127.0.0.1:6789");
	snprintf(mon->name, sizeof(mon->name), "a");
	mon->cfg.failure_detection = true;
	mon->cfg.grace_ms = 5000;
	mon->cfg.min_reporters = 2;
	mon->cfg.beacon_grace_ms = 20000;
	mon->cfg.down_out_ms = 600000;
	mon->pg_cfg.stale_ms = 5000;
	mon->pg_cfg.inactive_ms = 10000;
	mon->pg_cfg.nearfull = 0.85;
	mon->pg_cfg.backfillfull = 0.90;
	mon->pg_cfg.full = 0.95;
	while ((c = getopt_long(argc, argv, "d:a:n:s:l:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': data = optarg; break;
		case 'a':
			snprintf(mon->addr, sizeof(mon->addr), "%s", optarg);
			addr_given = true;
			break;
		case 'M': mons_spec = optarg; break;
		case 'J': join = true; break;
		case 'r': raft_addr = optarg; break;
		case 'A': mon->auth_create = true; break;
		case 'X': trust_raft = true; break;
		case 'm': mon_keyfile = optarg; break;
		case 'K': mon->admin_keyfile = optarg; break;
		case 'T': {
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || !*optarg || v == 0 || v * 1000 > MX_TICKET_TTL_MAX_MS) {
				fprintf(stderr, "mixsan-mon: bad ticket lifetime '%s'\n", optarg);
				return 2;
			}
			mon->auth_srv.ticket_ttl_ms = (uint32_t)(v * 1000);
			break;
		}
		case 'n':
			if (!mx_valid_name(optarg)) {
				fprintf(stderr, "mixsan-mon: bad name '%s'\n", optarg);
				return 2;
			}
			snprintf(mon->name, sizeof(mon->name), "%s", optarg);
			break;
		case 's': store = optarg; break;
		case 'l':
			level = parse_level(optarg);
			if (level < 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 'F': mon->cfg.failure_detection = true; break;
		case 'N': mon->cfg.failure_detection = false; break;
		case 'f':
		case 'b':
		case 'u': {
			double v = strtod(optarg, &end);

			if (*end || !*optarg || !(v > 0.0) || v > 1.0) {
				fprintf(stderr, "mixsan-mon: bad ratio '%s'\n", optarg);
				return 2;
			}
			if (c == 'f')
				mon->pg_cfg.nearfull = v;
			else if (c == 'b')
				mon->pg_cfg.backfillfull = v;
			else
				mon->pg_cfg.full = v;
			break;
		}
		case 'i':
		case 'S':
		case 'I':
		case 'G':
		case 'R':
		case 'B':
		case 'O': {
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || !*optarg || v > 86400000ul || (c != 'O' && c != 'i' && v == 0)) {
				fprintf(stderr, "mixsan-mon: bad value '%s'\n", optarg);
				return 2;
			}
			if (c == 'S')
				mon->pg_cfg.stale_ms = (uint32_t)v;
			else if (c == 'I')
				mon->pg_cfg.inactive_ms = (uint32_t)v;
			else if (c == 'G')
				mon->cfg.grace_ms = (uint32_t)v;
			else if (c == 'R')
				mon->cfg.min_reporters = (uint32_t)v;
			else if (c == 'B')
				mon->cfg.beacon_grace_ms = (uint32_t)v;
			else if (c == 'i')
				mon->cfg.tick_stall_ms = (uint32_t)v;
			else
				mon->cfg.down_out_ms = (uint32_t)(v * 1000);
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!data || optind != argc) {
		usage(stderr);
		return 2;
	}
	mx_log_init("mixsan-mon", level);
	mon->auth_srv.monitor = true;
	mon->auth_srv.arg = mon;
	mon->auth_srv.lookup = auth_lookup;
	mon->auth_srv.secret = auth_secret;
	if (!mon->auth_srv.ticket_ttl_ms)
		mon->auth_srv.ticket_ttl_ms = 3600 * 1000;
	if (mon->auth_create && !mon->admin_keyfile) {
		mx_err("--auth needs --admin-keyfile FILE (where the admin key is written)");
		return 2;
	}
	if (mon_keyfile && trust_raft) {
		mx_err("--mon-keyfile secures the Raft links, --trust-raft-network leaves them "
		       "open: give one of them");
		return 2;
	}
	if (mon_keyfile) {
		r = mx_monkey_read(mon_keyfile, link_key);
		if (r < 0) {
			mx_err("cannot use %s as the monitor key: %s", mon_keyfile,
			       r == -EINVAL ? "it holds no key named \"mon\" (mixsan auth mon-key "
					      "FILE makes one)"
			       : r == -EPERM ? "others can read it (chmod 600 it)"
					     : strerror(-r));
			return 2;
		}
	}
	/* A peer of the log that dies mid-send must not take us with it. */
	signal(SIGPIPE, SIG_IGN);
	memset(&self, 0, sizeof(self));
	if (mons_spec && join) {
		mx_err("--mons and --join exclude each other");
		return 2;
	}
	if (mons_spec) {
		char err[200];

		if (mx_quorum_parse_mons(mons_spec, &mon->initial, &mon->n_initial, err,
					 sizeof(err)) < 0) {
			mx_err("--mons: %s", err);
			return 2;
		}
		for (uint32_t i = 0; i < mon->n_initial; i++)
			if (strcmp(mon->initial[i].name, mon->name) == 0)
				self = mon->initial[i];
		if (!self.raft_id) {
			mx_err("--mons does not list this monitor (--name %s)", mon->name);
			return 2;
		}
		if ((addr_given && strcmp(mon->addr, self.addr) != 0) ||
		    (raft_addr && strcmp(raft_addr, self.raft_addr) != 0)) {
			mx_err("--addr/--raft-addr differ from this monitor's entry in --mons");
			return 2;
		}
		snprintf(mon->addr, sizeof(mon->addr), "%s", self.addr);
	} else if (join) {
		struct sockaddr_in a;

		if (!raft_addr || mx_parse_addr(raft_addr, &a) < 0 || !addr_given) {
			mx_err("--join needs --addr IP:PORT and --raft-addr IP:PORT (those given "
			       "to mon add)");
			return 2;
		}
		snprintf(self.name, sizeof(self.name), "%.63s", mon->name);
		snprintf(self.addr, sizeof(self.addr), "%.63s", mon->addr);
		snprintf(self.raft_addr, sizeof(self.raft_addr), "%.63s", raft_addr);
		self.raft_id = mx_quorum_id(mon->name);
	} else if (raft_addr) {
		mx_err("--raft-addr needs --mons or --join");
		return 2;
	}
	mon->loop = uv_default_loop();
	mon->sessions.next = mon->sessions.prev = &mon->sessions;
	mx_wbuf_init(&mon->map_enc);

	r = mx_mkdir_p(data, 0700);
	if (r < 0)
		return -mx_log_errno(r, "cannot create %s", data);
	{
		long holder;

		lock_fd = mx_lock_dir(data, &holder);
		if (lock_fd == -EBUSY) {
			if (holder > 0)
				mx_err("%s is in use by process %ld, another monitor", data,
				       holder);
			else
				mx_err("%s is in use by another monitor", data);
			return 1;
		}
		if (lock_fd < 0)
			return -mx_log_errno(lock_fd, "cannot lock %s", data);
	}
	mon->store = mx_mapstore_find(store);
	if (!mon->store) {
		mx_err("unknown map store '%s'", store);
		return 1;
	}
	r = mon->store->open(mon->loop, data, &mon->store_ctx);
	if (r < 0)
		return -mx_log_errno(r, "cannot open map store in %s", data);
	mon->defer_tail = &mon->defer_head;
	r = mon->store->load(mon->store_ctx, &mon->map);
	if (r == -ENOENT && self.raft_id) {
		/* The first map comes from the log (the first leader makes it). */
		mon->map = mx_map_new();
		if (!mon->map)
			return 1;
		mx_info("no map yet: waiting for the quorum");
	} else if (r == 0 && join && !quorum_started(data)) {
		mx_err("--join needs an empty folder: this one holds a map already");
		return 2;
	} else if (r == 0 && self.raft_id && mon->n_initial > 1 && !quorum_started(data)) {
		mx_err("this monitor has a map of its own: it can start a quorum of one only "
		       "(--mons listing just itself), then grow it with `mixsan mon add`");
		return 2;
	} else if (r == -ENOENT) {
		struct mx_map *m = mx_map_new();
		int st = 1;

		if (!m || getrandom(m->fsid, sizeof(m->fsid), 0) != sizeof(m->fsid))
			return 1;
		m->mons = mx_xcalloc(1, sizeof(*m->mons));
		m->n_mons = 1;
		snprintf(m->mons[0].name, sizeof(m->mons[0].name), "%.63s", mon->name);
		snprintf(m->mons[0].addr, sizeof(m->mons[0].addr), "%.63s", mon->addr);
		m->epoch = 1;
		m->modified_ms = mx_wall_ms();
		if (mon->auth_create && auth_bootstrap(m, admin_key) < 0)
			return 1;
		(void)mon->store->commit(mon->store_ctx, m, store_init_done, &st);
		if (st != 0) {
			mx_map_free(m);
			return -mx_log_errno(st < 0 ? st : -EIO, "cannot create the first map");
		}
		mon->map = m;
		mx_info("created a new cluster map (epoch 1)%s",
			mon->auth_create ? " with authentication" : "");
		if (mon->auth_create)
			write_admin_key(mon, admin_key);
		explicit_bzero(admin_key, sizeof(admin_key));
	} else if (r < 0) {
		return -mx_log_errno(r, "cannot load the cluster map from %s", data);
	} else {
		mx_info("loaded cluster map epoch %llu", (unsigned long long)mon->map->epoch);
	}
	encode_current(mon);
	mon->auth_srv.required = mon->map->auth_required;
	/* The monitors' Raft traffic carries the keys: with keys, the links
	 * are secured with the monitor key (docs/monitor-quorum.md, "The Raft
	 * link"), unless the operator vouches for the network. */
	if (self.raft_id && (mon->auth_create || mon->map->auth_required) && !mon_keyfile &&
	    !trust_raft) {
		mx_err("a quorum with keys needs the monitor key on its Raft links: give every "
		       "monitor the same --mon-keyfile (`mixsan auth mon-key FILE` makes one), "
		       "or --trust-raft-network if only the monitors can reach that network "
		       "(docs/auth.md)");
		return 2;
	}
	mon->pgstats = mx_pgstats_new(&mon->pg_cfg);
	mon->evlog = mx_evlog_new();
	if (!mon->pgstats || !mon->evlog)
		return -mx_log_errno(-ENOMEM, "cannot start");
	mon->last_health = -1;
	map_changed(mon);
	mx_evlog_add(mon->evlog, mx_wall_ms(), MX_HEALTH_OK, "mon.%s started at map epoch %llu",
		     mon->name, (unsigned long long)mon->map->epoch);
	if (!self.raft_id)
		explicit_bzero(link_key, sizeof(link_key)); /* unused alone */
	if (self.raft_id) {
		struct mx_quorum_hooks hooks = {
			.arg = mon, .current = q_current, .apply = q_apply, .leading = q_leading,
		};
		char err[300];

		r = mx_quorum_open(mon->loop, data, &self, join ? NULL : mon->initial,
				   mon->n_initial, mon_keyfile ? link_key : NULL, &hooks, &mon->q,
				   err, sizeof(err));
		explicit_bzero(link_key, sizeof(link_key));
		if (r < 0) {
			mx_err("cannot start the replicated log: %s", err);
			return 1;
		}
		mx_info("mon.%s in the quorum: raft %s (id %llx)", mon->name, self.raft_addr,
			(unsigned long long)self.raft_id);
	}

	r = mx_listen(mon->loop, &mon->server, mon->addr, on_connection, NULL, 0);
	if (r < 0)
		return -mx_log_errno(r, "cannot listen on %s", mon->addr);
	mon->server.data = mon;
	uv_timer_init(mon->loop, &mon->tick);
	mon->tick.data = mon;
	uv_timer_start(&mon->tick, on_tick, 1000, 1000);
	uv_signal_init(mon->loop, &mon->sigterm);
	uv_signal_start(&mon->sigterm, on_signal, SIGTERM);
	uv_signal_init(mon->loop, &mon->sigint);
	uv_signal_start(&mon->sigint, on_signal, SIGINT);
	mx_info("mon.%s serving on %s", mon->name, mon->addr);
	uv_run(mon->loop, UV_RUN_DEFAULT);

	mon->store->close(mon->store_ctx);
	free(mon->initial);
	while (mon->defer_head) {
		struct deferred *d = mon->defer_head;

		mon->defer_head = d->next;
		free(d);
	}
	free(mon->track);
	mx_pgstats_free(mon->pgstats);
	mx_evlog_free(mon->evlog);
	mx_placement_free(mon->pl);
	mx_map_free(mon->map);
	mx_wbuf_free(&mon->map_enc);
	(void)uv_loop_close(mon->loop);
	(void)close(lock_fd);
	mx_info("stopped");
	return 0;
}

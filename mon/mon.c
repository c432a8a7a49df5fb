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
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "commands.h"
#include "log.h"
#include "map.h"
#include "mapstore.h"
#include "msg.h"
#include "net.h"
#include "pgstats.h"
#include "placement.h"
#include "util.h"

struct session {
	struct session *next, *prev;
	struct mx_conn *conn;
	bool subscribed;
	uint64_t sent_epoch;
};

/* What the monitor knows of each OSD beyond the map (not persisted: after
 * a monitor restart every clock starts again). */
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
	}
	for (uint32_t i = 0; i < o->n_pools; i++)
		if (!mx_map_pool_by_id(n, o->pools[i].id))
			mx_evlog_add(mon->evlog, now, MX_HEALTH_OK, "pool '%s' (id %d) removed",
				     o->pools[i].name, o->pools[i].id);
}

static void commit_done(void *arg, int status)
{
	struct change *ch = arg;
	struct mon *mon = ch->mon;

	mon->committing = false;
	if (status < 0) {
		ch->status = status;
		snprintf(ch->msg, sizeof(ch->msg), "the map could not be stored: %s",
			 strerror(-status));
		mx_map_free(ch->next);
	} else {
		log_map_events(mon, mon->map, ch->next, ch->why);
		mx_map_free(mon->map);
		mon->map = ch->next;
		map_changed(mon);
		encode_current(mon);
		mx_info("epoch %llu: %s", (unsigned long long)mon->map->epoch, ch->msg);
		push_map(mon);
	}
	reply_change(ch);
	free(ch);
}

/* Commit next (taken) as the following epoch, then reply. */
static void propose(struct mon *mon, struct change *ch)
{
	ch->next->epoch = mon->map->epoch + 1;
	ch->next->modified_ms = mx_wall_ms();
	if (mx_mon_prune_primary_temps(ch->next) > 0)
		mx_debug("stale primary-temp entries dropped");
	mon->committing = true;
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
	int r;

	if (!ch) {
		(void)mx_conn_send_error(s->conn, tid, -ENOMEM, "out of memory");
		return;
	}
	r = mx_mon_command(ch->next, c, ch->msg, sizeof(ch->msg));
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

static struct osd_track *track_of(struct mon *mon, int32_t id)
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
		t->last_beacon_ms = mx_wall_ms();
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

static void handle_failure(struct mon *mon, const struct mx_msg_osd_failure *f)
{
	const struct mx_osd_info *o = mx_map_osd(mon->map, f->target);
	const struct mx_osd_info *rep = mx_map_osd(mon->map, f->reporter);
	uint64_t now = mx_wall_ms();
	struct osd_track *t;
	uint32_t needed;
	int i;

	if (!mon->cfg.failure_detection || !o || !o->up || !rep || !rep->up ||
	    f->reporter == f->target || o->incarnation != f->target_incarnation)
		return;
	t = track_of(mon, f->target);
	if (!t)
		return;
	/* Forget stale reports, then count this reporter once. */
	for (i = 0; i < t->n_reporters;) {
		if (now - t->reported_ms[i] > 2ull * mon->cfg.grace_ms ||
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
	needed = MX_MIN(mon->cfg.min_reporters, MX_MAX(1u, osds_up(mon->map) - 1));
	mx_info("osd.%d reports osd.%d %s (%u ms); %d of %u reporters needed",
		f->reporter, f->target,
		(f->flags & MX_FAILURE_IMMEDIATE) ? "refusing connections" : "silent",
		f->silent_ms, t->n_reporters, needed);
	if ((uint32_t)t->n_reporters >= needed) {
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
	struct mx_health *h = malloc(sizeof(*h));
	uint64_t now = mx_wall_ms();
	char checks[512], pgmap[1024];
	size_t at = 0;

	if (!h)
		return;
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
	if (strcmp(pgmap, mon->last_pgmap) != 0 && now - mon->last_pgmap_ms >= 2000) {
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

static void on_tick(uv_timer_t *timer)
{
	struct mon *mon = timer->data;
	uint64_t now = mx_wall_ms();

	health_tick(mon);
	if (!mon->cfg.failure_detection || mon->committing)
		return;
	for (uint32_t id = 0; id < mon->map->max_osd; id++) {
		const struct mx_osd_info *o = &mon->map->osds[id];
		struct osd_track *t;

		if (!o->exists)
			continue;
		t = track_of(mon, (int32_t)id);
		if (!t)
			continue;
		if (o->up && now - t->last_beacon_ms > mon->cfg.beacon_grace_ms) {
			t->down_since_ms = now;
			mark_osd(mon, (int32_t)id, true, "no beacon");
			return; /* one change per tick */
		}
		if (!o->up && !t->down_since_ms)
			t->down_since_ms = now;
		if (!o->up && o->in && mon->cfg.down_out_ms &&
		    now - t->down_since_ms > mon->cfg.down_out_ms) {
			t->auto_out = true;
			mark_osd(mon, (int32_t)id, false, "down for longer than the down-out interval");
			return;
		}
	}
}

static void on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, uint8_t *payload)
{
	struct session *s = c->owner_data;
	struct mon *mon = c->owner;
	int r;

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
		if (!health_command(mon, s, h->tid, &cmd))
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
		if (o && o->incarnation == b.incarnation && (t = track_of(mon, b.osd_id)))
			t->last_beacon_ms = mx_wall_ms();
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

	if (err < 0 && err != UV_ECONNRESET)
		mx_debug("%s: connection closed: %s", c->peer, uv_strerror(err));
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
	s->conn = c;
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

static void on_signal(uv_signal_t *sig, int signum)
{
	mx_info("signal %d: shutting down", signum);
	uv_walk(sig->loop, close_walk, NULL);
}

static void usage(FILE *f)
{
	fputs("usage: mixsan-mon --data DIR [--addr IP:PORT] [--name NAME] [--store file]\n"
	      "                  [--log-level error|warn|info|debug]\n"
	      "                  [--no-osd-failure-detection] [--heartbeat-grace MS]\n"
	      "                  [--min-down-reporters N] [--beacon-grace MS]\n"
	      "                  [--down-out-interval S] [--pg-stale-grace MS]\n"
	      "                  [--pg-inactive-grace MS] [--nearfull-ratio R]\n"
	      "                  [--backfillfull-ratio R] [--full-ratio R]\n"
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
	      "backfill goes to it.\n", f);
}

static int parse_level(const char *s)
{
	static const char *names[] = {"error", "warn", "info", "debug"};

	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
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
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct mon *mon = &g_mon;
	char *end;
	const char *data = NULL, *store = "file";
	int level = MX_LOG_INFO, c, r;

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
		case 'a': snprintf(mon->addr, sizeof(mon->addr), "%s", optarg); break;
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
		case 'S':
		case 'I':
		case 'G':
		case 'R':
		case 'B':
		case 'O': {
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || !*optarg || v > 86400000ul || (c != 'O' && v == 0)) {
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
	signal(SIGPIPE, SIG_IGN);
	mon->loop = uv_default_loop();
	mon->sessions.next = mon->sessions.prev = &mon->sessions;
	mx_wbuf_init(&mon->map_enc);

	mon->store = mx_mapstore_find(store);
	if (!mon->store) {
		mx_err("unknown map store '%s'", store);
		return 1;
	}
	r = mon->store->open(mon->loop, data, &mon->store_ctx);
	if (r < 0)
		return -mx_log_errno(r, "cannot open map store in %s", data);
	r = mon->store->load(mon->store_ctx, &mon->map);
	if (r == -ENOENT) {
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
		(void)mon->store->commit(mon->store_ctx, m, store_init_done, &st);
		if (st != 0) {
			mx_map_free(m);
			return -mx_log_errno(st < 0 ? st : -EIO, "cannot create the first map");
		}
		mon->map = m;
		mx_info("created a new cluster map (epoch 1)");
	} else if (r < 0) {
		return -mx_log_errno(r, "cannot load the cluster map from %s", data);
	} else {
		mx_info("loaded cluster map epoch %llu", (unsigned long long)mon->map->epoch);
	}
	encode_current(mon);
	mon->pgstats = mx_pgstats_new(&mon->pg_cfg);
	mon->evlog = mx_evlog_new();
	if (!mon->pgstats || !mon->evlog)
		return -mx_log_errno(-ENOMEM, "cannot start");
	mon->last_health = -1;
	map_changed(mon);
	mx_evlog_add(mon->evlog, mx_wall_ms(), MX_HEALTH_OK, "mon.%s started at map epoch %llu",
		     mon->name, (unsigned long long)mon->map->epoch);

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
	free(mon->track);
	mx_pgstats_free(mon->pgstats);
	mx_evlog_free(mon->evlog);
	mx_placement_free(mon->pl);
	mx_map_free(mon->map);
	mx_wbuf_free(&mon->map_enc);
	(void)uv_loop_close(mon->loop);
	mx_info("stopped");
	return 0;
}

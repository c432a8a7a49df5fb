/*
 * libmixsan: the client library (see include/mixsan/mixsan.h).
 *
 * The library runs one thread with a libuv loop per cluster handle.  Calls
 * from the application put requests on a submission list (under a mutex)
 * and wake the loop; everything else happens on the loop thread without
 * locks: the monitor session, the OSD sessions, placement and retries.
 *
 * NOTES ON A REQUEST'S LIFE (struct cop)
 *
 *   submitted --(cop_send: placement gives a primary)--> in flight on that
 *       OSD's session
 *   submitted --(no map, no primary)--> parked
 *   in flight --(reply 0 or a final error)--> completed
 *   in flight --(ESTALE: the OSD is not primary; EAGAIN: not ready)
 *       --> parked with a back-off
 *   in flight --(the session drops)--> parked
 *   in flight --(a new map moves the PG's primary)--> sent to the new one
 *   parked --(back-off over, or a new map)--> cop_send again
 *   any --(op timeout passed)--> completed with -ETIMEDOUT
 *
 * A request keeps its tid through every resend, so an OSD that already
 * executed it answers from its record instead of applying it twice.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "internal.h"
#include "authconn.h"
#include "tier.h"
#include "cache.h"
#include "list.h"
#include "log.h"
#include "monlist.h"
#include "msg.h"
#include "net.h"
#include "placement.h"
#include "store.h"
#include "util.h"

#define TICK_MS 20
#define MX_DEFAULT_READAHEAD (1u << 20)
#define MX_MAX_READAHEAD (64u << 20)
#define MON_RETRY_MS 300
#define BACKOFF_MIN_MS 5
#define BACKOFF_MAX_MS 500

struct mixsan_completion {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	mixsan_callback_t cb;
	void *arg;
	bool done;
	bool released;
	bool armed; /* a request took it: it completes one day */
	int64_t result;
};

enum cop_kind { COP_OBJ, COP_LIST, COP_SCRUB };

/* A holder for the raw reply of requests whose results the caller's thread
 * decodes (listings). */
struct reply_copy {
	uint8_t *data; /* From malloc(). */
	uint32_t len;
};

struct cop {
	struct mx_list link;
	mixsan_cluster_t *cl;
	enum cop_kind kind;
	int32_t pool;
	char *name; /* From malloc(), NUL-terminated (oid, or list cursor) */
	uint32_t name_len;
	uint32_t pg; /* COP_LIST, COP_SCRUB: the PG */
	uint32_t scrub_flags; /* COP_SCRUB: MX_SCRUB_* */
	struct mx_osd_op op;
	char xname[MX_XATTR_NAME_MAX + 1];
	struct mx_osd_op *more; /* From malloc(): ops after op (compound writes) */
	uint8_t n_more;
	void *rbuf; /* READ, GETXATTR destination */
	size_t rlen;
	struct mixsan_stat *st_out;
	struct reply_copy *copy_out;
	struct mx_client_read_result *read_out; /* a read request's results */
	struct mx_client_version *ver_out;      /* a write's version; NULL: unwanted */
	int *failed_out; /* a refused write: the failing guard's index, or -1 */
	uint64_t tid;
	int32_t target; /* OSD it is in flight to, or -1 */
	bool replica;   /* a read in flight to a replica (read policy) */
	bool to_primary; /* a replica sent it back: the primary's now */
	uint32_t osd_flags; /* more MX_OSD_OP_* flags (MX_OSD_OP_WRITEBACK) */
	bool raw;        /* from a raw pool handle: never routed through a tier */
	/* A step of a tiered request routed at this map epoch (0: none): it
	 * fails with ESTALE, unsent, once the pool's tier_epoch is newer. */
	uint64_t fence_epoch;
	/* The epoch it was routed by, sent with it: an OSD whose pool had a
	 * tier change since refuses it (EXDEV), unrun; 0 until first sent,
	 * UINT64_MAX for a raw request without a fence. */
	uint64_t route_epoch;
	struct mx_conn *sent_on; /* the connection it went out on */
	uint64_t retry_at_ns;
	uint64_t deadline_ns; /* 0: none */
	unsigned attempts;
	mixsan_completion_t *comp;
};

struct osdsess {
	struct mx_conn *conn;
	char addr[MX_ADDR_MAX];
	uint64_t incarnation;
	struct mx_list inflight; /* struct cop */
};

struct moncmd {
	struct mx_list link;
	uint64_t tid;
	struct mx_wbuf payload; /* encoded command, kept for resends */
	uint64_t deadline_ns;   /* 0: none (see on_tick) */
	bool done;
	int result;
	uint64_t epoch;
	char *message;
};

struct mixsan_cluster {
	pthread_t thread;
	pthread_mutex_t lock; /* guards: submit, map (pointer), cmds done, stopping */
	pthread_cond_t cond;  /* map changes and command completions */
	uv_loop_t loop;
	uv_async_t wake;
	struct mx_netbatch batch; /* requests, one write per OSD per iteration */
	uv_timer_t tick;
	uv_timer_t mon_timer;
	struct mx_list submit; /* struct cop, from any thread */
	bool stopping;
	struct mixsan_options opts;

	/* Loop thread only below (map also read under lock). */
	struct mx_monlist monl;
	unsigned mon_delay_ms; /* before the next connection (a redirect's) */
	/* Authentication (docs/auth.md): our key, and the ticket for OSDs. */
	bool use_auth;
	struct mx_auth_client auth;
	char auth_error[256];  /* the last refusal, for mixsan_connect */
	uint64_t renew_ms;     /* last ticket renewal asked */
	struct mx_conn *mon;
	struct mx_monlive mon_live; /* the session's liveness (mon_check) */
	struct mx_map *map;
	struct mx_placement *pl;
	struct mx_acting_memo acting; /* acting sets of map's PGs (loop thread) */
	struct osdsess **sess;
	uint32_t n_sess;
	struct mx_list parked;  /* struct cop */
	struct mx_list cmds;    /* struct moncmd awaiting replies */
	uint64_t next_tid;
	uint64_t client_id;
	struct mx_client_stats stats; /* atomics: read from any thread */
	/* Read policy (docs/read-policies.md): our location, and the state
	 * of the balance policy's random choice. */
	struct mx_loc loc[MX_LOC_MAX];
	uint8_t nloc;
	uint64_t rng;
	struct mx_bcache *cache; /* snapshot data (docs/vdi-cache.md) */
	struct mx_tier *tier;    /* cache tiering's workers, made on first use
				    (under lock); NULL: none yet */
	bool tier_closing;       /* shutting down: nothing goes to the tier */
};

struct mixsan_pool {
	mixsan_cluster_t *cl;
	int32_t id;
	bool raw; /* requests go to this pool itself, whatever its tier */
	uint64_t fence_epoch; /* raw: its requests' fence_epoch (struct cop) */
	uint64_t deadline_ns; /* raw: its requests' latest deadline (0: none) */
};

static void cop_send(mixsan_cluster_t *cl, struct cop *op);
static bool tier_route_locked(mixsan_cluster_t *cl, int32_t pool, struct mx_tier_route *rt);
static void tier_hand(mixsan_cluster_t *cl, struct cop *op, const struct mx_tier_route *rt);
static void mon_connect(mixsan_cluster_t *cl);

/* Transaction ids come from any thread. */
static uint64_t new_tid(mixsan_cluster_t *cl)
{
	return __atomic_add_fetch(&cl->next_tid, 1, __ATOMIC_RELAXED);
}

void mixsan_version(int *major, int *minor, int *patch)
{
	if (major)
		*major = MIXSAN_VERSION_MAJOR;
	if (minor)
		*minor = MIXSAN_VERSION_MINOR;
	if (patch)
		*patch = MIXSAN_VERSION_PATCH;
}

/* Completions ----------------------------------------------------------- */

int mixsan_completion_create(mixsan_callback_t cb, void *arg, mixsan_completion_t **out)
{
	mixsan_completion_t *c = calloc(1, sizeof(*c));

	if (!out)
		return -EINVAL;
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->cb = cb;
	c->arg = arg;
	*out = c;
	return 0;
}

static void complete(mixsan_completion_t *c, int64_t result);

void mx_completion_finish(mixsan_completion_t *c, int64_t result)
{
	complete(c, result);
}

void mx_completion_arm(mixsan_completion_t *c)
{
	pthread_mutex_lock(&c->lock);
	c->armed = true;
	pthread_mutex_unlock(&c->lock);
}

/* Undo mx_completion_arm for a request that was never submitted. */
static void completion_disarm(mixsan_completion_t *c)
{
	pthread_mutex_lock(&c->lock);
	c->armed = false;
	pthread_mutex_unlock(&c->lock);
}

static void completion_destroy(mixsan_completion_t *c)
{
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

static void complete(mixsan_completion_t *c, int64_t result)
{
	bool release;

	pthread_mutex_lock(&c->lock);
	c->result = result;
	pthread_mutex_unlock(&c->lock);
	if (c->cb)
		c->cb(c, c->arg);
	pthread_mutex_lock(&c->lock);
	c->done = true;
	release = c->released;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (release)
		completion_destroy(c);
}

int64_t mixsan_completion_wait(mixsan_completion_t *c)
{
	int64_t r;

	pthread_mutex_lock(&c->lock);
	while (!c->done)
		pthread_cond_wait(&c->cond, &c->lock);
	r = c->result;
	pthread_mutex_unlock(&c->lock);
	return r;
}

int mixsan_completion_is_complete(mixsan_completion_t *c)
{
	int d;

	pthread_mutex_lock(&c->lock);
	d = c->done;
	pthread_mutex_unlock(&c->lock);
	return d;
}

int64_t mixsan_completion_result(mixsan_completion_t *c)
{
	int64_t r;

	pthread_mutex_lock(&c->lock);
	r = c->result;
	pthread_mutex_unlock(&c->lock);
	return r;
}

void mixsan_completion_release(mixsan_completion_t *c)
{
	bool now;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->released = true;
	now = c->done || !c->armed; /* never taken by a request: free now */
	pthread_mutex_unlock(&c->lock);
	if (now)
		completion_destroy(c);
}

/* Requests ------------------------------------------------------------------ */

static void cop_free(struct cop *op)
{
	free(op->more);
	free(op->name);
	free(op);
}

static void cop_complete(struct cop *op, int64_t result)
{
	mx_list_del(&op->link);
	complete(op->comp, result);
	cop_free(op);
}

static void cop_park(mixsan_cluster_t *cl, struct cop *op, unsigned delay_ms)
{
	mx_list_del(&op->link);
	op->target = -1;
	op->retry_at_ns = mx_now_ns() + (uint64_t)delay_ms * 1000000ull;
	mx_list_add_tail(&cl->parked, &op->link);
}

static unsigned backoff_ms(struct cop *op)
{
	unsigned d = BACKOFF_MIN_MS << MX_MIN(op->attempts, 10u);

	return MX_MIN(d, (unsigned)BACKOFF_MAX_MS);
}

/* The counters are bumped on the loop thread and read from any thread
 * (mx_client_get_stats). */
static void stat_inc(uint64_t *counter)
{
	__atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

/* Send the request again after a back-off. */
static void cop_retry(mixsan_cluster_t *cl, struct cop *op)
{
	op->attempts++;
	stat_inc(&cl->stats.resends);
	cop_park(cl, op, backoff_ms(op));
}

/* A reply's status: ESTALE (the OSD is not primary), EAGAIN (not ready) and,
 * where busy_retries, EBUSY park the request for a retry; any other error
 * completes it.  Our map is newer or equal: the OSD catches up soon.  Older:
 * the monitor's push will bring the newer map.  True when the request was
 * parked or completed, false for a success status. */
static bool retry_or_fail(mixsan_cluster_t *cl, struct cop *op, int err, bool busy_retries)
{
	if (err == -ESTALE || err == -EAGAIN || (busy_retries && err == -EBUSY)) {
		cop_retry(cl, op);
		return true;
	}
	if (err < 0) {
		cop_complete(op, err);
		return true;
	}
	return false;
}

/* Complete with a copy of the raw reply in op->copy_out. */
static void cop_complete_copy(struct cop *op, const uint8_t *payload, uint32_t len)
{
	op->copy_out->data = malloc(len);
	if (!op->copy_out->data) {
		cop_complete(op, -ENOMEM);
		return;
	}
	memcpy(op->copy_out->data, payload, len);
	op->copy_out->len = len;
	cop_complete(op, 0);
}

/* A replica would not serve the read (its lease, its map, its state):
 * to the primary at once. */
static void replica_bounce(mixsan_cluster_t *cl, struct cop *op)
{
	stat_inc(&cl->stats.replica_bounced);
	op->to_primary = true;
	cop_park(cl, op, 0);
	cop_send(cl, op);
}

/* The i-th op of op's request. */
static const struct mx_osd_op *cop_op(const struct cop *op, unsigned i)
{
	return i == 0 ? &op->op : &op->more[i - 1];
}

/* A read request's answer (mx_client_aio_read_ops) into op->read_out:
 * each op's result copied, its rval kept, and the object's version. */
static void read_result_fill(mixsan_cluster_t *cl, struct cop *op,
			     const struct mx_msg_osd_op_reply *r)
{
	struct mx_client_read_result *out = op->read_out;

	if (r->n_ops != 1u + op->n_more) {
		cop_complete(op, -EBADMSG);
		return;
	}
	for (uint8_t i = 0; i < r->n_ops; i++) {
		struct mx_client_op_result *o = &out->ops[i];

		out->n = i + 1u;
		o->rval = mx_wire_to_errno(r->res[i].rval);
		if (o->rval < 0)
			continue;
		o->data = malloc(r->res[i].data_len ? r->res[i].data_len : 1);
		if (!o->data) {
			mx_client_read_result_free(out);
			cop_complete(op, -ENOMEM);
			return;
		}
		memcpy(o->data, r->res[i].data, r->res[i].data_len);
		o->len = r->res[i].data_len;
		if (cop_op(op, i)->op == MX_OP_READ)
			__atomic_add_fetch(&cl->stats.read_bytes, o->len, __ATOMIC_RELAXED);
	}
	out->ver.epoch = r->ver_epoch;
	out->ver.seq = r->ver_seq;
	cop_complete(op, 0);
}

static void failed_note(struct cop *op, const struct mx_msg_osd_op_reply *r);
static void cop_answer(mixsan_cluster_t *cl, struct cop *op, const struct mx_msg_osd_op_reply *r);

static void handle_obj_reply(mixsan_cluster_t *cl, struct cop *op, uint8_t *payload,
			     uint32_t len)
{
	struct mx_msg_osd_op_reply r;

	if (mx_dec_osd_op_reply(payload, len, &r) < 0) {
		cop_complete(op, -EBADMSG);
		return;
	}
	/* A replica's "no such object" is as good as the primary's (it holds
	 * every acknowledged write); any other failure (its refusal, an I/O
	 * error of its copy) is the primary's to answer. */
	if (op->replica && r.status && mx_wire_to_errno(r.status) != -ENOENT) {
		replica_bounce(cl, op);
		return;
	}
	if (op->replica)
		stat_inc(&cl->stats.replica_reads);
	if (mx_wire_to_errno(r.status) == -EXDEV) {
		/* Refused by the fence, and never to run: a tier's step goes
		 * back to the tier (ESTALE: it starts again), any other
		 * request is routed again by the newer map. */
		if (op->fence_epoch || op->raw) {
			cop_complete(op, -ESTALE);
		} else {
			op->route_epoch = 0;
			cop_retry(cl, op);
		}
		return;
	}
	failed_note(op, &r);
	if (retry_or_fail(cl, op, mx_wire_to_errno(r.status), false))
		return;
	cop_answer(cl, op, &r);
}

/* A refused write: which guard did not hold, the first op answered
 * ECANCELED, for the caller that asked (mx_client_aio_write_ops_f). */
static void failed_note(struct cop *op, const struct mx_msg_osd_op_reply *r)
{
	if (!op->failed_out || mx_wire_to_errno(r->status) != -ECANCELED)
		return;
	for (uint8_t i = 0; i < r->n_ops && i < 1u + op->n_more; i++)
		if (mx_wire_to_errno(r->res[i].rval) == -ECANCELED) {
			*op->failed_out = i;
			return;
		}
}

/* Complete op with a successful reply r: each op's result to where the
 * caller asked for it. */
static void cop_answer(mixsan_cluster_t *cl, struct cop *op, const struct mx_msg_osd_op_reply *r0)
{
	const struct mx_msg_osd_op_reply r = *r0;
	int err;

	if (r.n_ops < 1) {
		cop_complete(op, -EBADMSG);
		return;
	}
	if (op->read_out) {
		read_result_fill(cl, op, &r);
		return;
	}
	for (uint8_t i = 0; i < r.n_ops; i++) {
		err = mx_wire_to_errno(r.res[i].rval);
		if (err < 0) {
			cop_complete(op, err);
			return;
		}
	}
	if (op->ver_out) {
		op->ver_out->epoch = r.ver_epoch;
		op->ver_out->seq = r.ver_seq;
	}
	switch (op->op.op) {
	case MX_OP_READ: {
		uint32_t n = MX_MIN(r.res[0].data_len, (uint32_t)op->rlen);

		memcpy(op->rbuf, r.res[0].data, n);
		__atomic_add_fetch(&cl->stats.read_bytes, n, __ATOMIC_RELAXED);
		cop_complete(op, n);
		return;
	}
	case MX_OP_GETXATTR:
		if (r.res[0].data_len > op->rlen) {
			cop_complete(op, -ERANGE);
			return;
		}
		memcpy(op->rbuf, r.res[0].data, r.res[0].data_len);
		cop_complete(op, r.res[0].data_len);
		return;
	case MX_OP_STAT: {
		struct mx_osd_stat s;

		if (mx_osd_stat_decode(r.res[0].data, r.res[0].data_len, &s) < 0) {
			cop_complete(op, -EBADMSG);
			return;
		}
		op->st_out->size = s.size;
		op->st_out->mtime_ms = s.mtime_ms;
		op->st_out->version_epoch = s.ver_epoch;
		op->st_out->version_seq = s.ver_seq;
		cop_complete(op, 0);
		return;
	}
	case MX_OP_LISTXATTRS:
		op->copy_out->data = malloc(r.res[0].data_len ? r.res[0].data_len : 1);
		if (!op->copy_out->data) {
			cop_complete(op, -ENOMEM);
			return;
		}
		memcpy(op->copy_out->data, r.res[0].data, r.res[0].data_len);
		op->copy_out->len = r.res[0].data_len;
		cop_complete(op, 0);
		return;
	default:
		cop_complete(op, 0);
		return;
	}
}

static void handle_list_reply(mixsan_cluster_t *cl, struct cop *op, uint8_t *payload,
			      uint32_t len)
{
	struct mx_msg_osd_list_reply r;

	if (mx_dec_osd_list_reply(payload, len, &r) < 0) {
		cop_complete(op, -EBADMSG);
		return;
	}
	if (retry_or_fail(cl, op, mx_wire_to_errno(r.status), false))
		return;
	cop_complete_copy(op, payload, len);
}

/* A scrub's answer: EBUSY (another scrub of the PG runs), EAGAIN and
 * ESTALE are retried; the counts go to copy_out as the raw reply. */
static void handle_scrub_reply(mixsan_cluster_t *cl, struct cop *op, uint8_t *payload,
			       uint32_t len)
{
	struct mx_msg_pg_scrub_reply r;

	if (mx_dec_pg_scrub_reply(payload, len, &r) < 0) {
		cop_complete(op, -EBADMSG);
		return;
	}
	if (retry_or_fail(cl, op, mx_wire_to_errno(r.status), true))
		return;
	cop_complete_copy(op, payload, len);
}

static void sess_on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, uint8_t *payload)
{
	mixsan_cluster_t *cl = c->owner;
	struct osdsess *s = c->owner_data;
	struct mx_list *pos, *tmp;

	mx_list_for_each_safe(pos, tmp, &s->inflight) {
		struct cop *op = mx_list_entry(pos, struct cop, link);

		if (op->tid != h->tid)
			continue;
		if (h->type == MX_MSG_OSD_OP_REPLY && op->kind == COP_OBJ)
			handle_obj_reply(cl, op, payload, h->len);
		else if (h->type == MX_MSG_OSD_LIST_REPLY && op->kind == COP_LIST)
			handle_list_reply(cl, op, payload, h->len);
		else if (h->type == MX_MSG_PG_SCRUB_REPLY && op->kind == COP_SCRUB)
			handle_scrub_reply(cl, op, payload, h->len);
		else if (h->type == MX_MSG_ERROR_REPLY && op->replica)
			replica_bounce(cl, op);
		else if (h->type == MX_MSG_ERROR_REPLY) {
			struct mx_msg_error_reply er;

			if (mx_dec_error_reply(payload, h->len, &er) == 0)
				cop_complete(op, mx_wire_to_errno(er.status));
			else
				cop_complete(op, -EBADMSG);
		} else {
			cop_complete(op, -EBADMSG);
		}
		return;
	}
	/* A late reply to a request that moved elsewhere: ignore it. */
}

static void sess_on_close(struct mx_conn *c, int err)
{
	mixsan_cluster_t *cl = c->owner;
	struct osdsess *s = c->owner_data;
	struct mx_list *pos, *tmp;

	if (s->conn == c)
		s->conn = NULL;
	/* Our ticket ran out at the OSD: ask for a new one now. */
	if (err == -EKEYEXPIRED || (c->auth_error[0] && strstr(c->auth_error, "expired")))
		cl->renew_ms = 0;
	mx_list_for_each_safe(pos, tmp, &s->inflight) {
		struct cop *op = mx_list_entry(pos, struct cop, link);

		if (op->sent_on != c)
			continue; /* already sent again on a newer connection */
		cop_retry(cl, op);
	}
}

static const struct mx_conn_ops sess_ops = {
	.on_msg = sess_on_msg,
	.on_close = sess_on_close,
};

static struct osdsess *sess_get(mixsan_cluster_t *cl, int32_t id)
{
	const struct mx_osd_info *o = mx_map_osd(cl->map, id);
	struct osdsess *s;

	if (!o)
		return NULL;
	if ((uint32_t)id >= cl->n_sess) {
		uint32_t n = (uint32_t)id + 1;
		struct osdsess **ns = realloc(cl->sess, n * sizeof(*ns));

		if (!ns)
			return NULL;
		memset(ns + cl->n_sess, 0, (n - cl->n_sess) * sizeof(*ns));
		cl->sess = ns;
		cl->n_sess = n;
	}
	s = cl->sess[id];
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return NULL;
		mx_list_init(&s->inflight);
		cl->sess[id] = s;
	}
	if (s->conn && (s->incarnation != o->incarnation || strcmp(s->addr, o->addr) != 0)) {
		mx_conn_close(s->conn, 0); /* its requests get parked */
		s->conn = NULL;
	}
	if (!s->conn) {
		if (mx_conn_connect(&cl->loop, o->addr, &sess_ops, cl, &s->conn) < 0) {
			s->conn = NULL;
			return NULL;
		}
		if (cl->use_auth)
			mx_conn_auth_client(s->conn, &cl->auth, MX_AUTH_MODE_TICKET);
		s->conn->owner_data = s;
		snprintf(s->addr, sizeof(s->addr), "%s", o->addr);
		s->incarnation = o->incarnation;
	}
	return s;
}

/* How near OSD id is to us: the lowest level of the hierarchy at which
 * its location and ours name the same bucket (MX_LEVEL_COUNT: none). */
static int distance(const mixsan_cluster_t *cl, int32_t id)
{
	const struct mx_osd_info *o = mx_map_osd(cl->map, id);
	int d = MX_LEVEL_COUNT;

	for (int j = 0; j < cl->nloc; j++) {
		const char *name = mx_osd_loc_name(o, cl->loc[j].level);

		if (name && cl->loc[j].level < d && strcmp(name, cl->loc[j].name) == 0)
			d = cl->loc[j].level;
	}
	return d;
}

/* Which member of acting[0..n) serves a read (docs/read-policies.md):
 * its index, 0 for the primary. */
static int read_member(mixsan_cluster_t *cl, const struct mx_pool *pool, const int32_t *acting,
		       int n)
{
	int policy = cl->opts.read_policy ? cl->opts.read_policy - 1 : pool->read_policy;
	int best = 0, bestd;

	if (n <= 1 || pool->read_policy == MX_READ_PRIMARY)
		return 0; /* the pool's replicas serve no reads */
	switch (policy) {
	case MX_READ_BALANCE:
		cl->rng ^= cl->rng << 13;
		cl->rng ^= cl->rng >> 7;
		cl->rng ^= cl->rng << 17;
		return (int)(cl->rng % (uint64_t)n);
	case MX_READ_LOCALIZE:
		bestd = distance(cl, acting[0]);
		for (int i = 1; i < n; i++) {
			int d = distance(cl, acting[i]);

			if (d < bestd) {
				best = i;
				bestd = d;
			}
		}
		return best;
	default:
		return 0;
	}
}

/* The OSD to send op to: the primary, or for a read the member its read
 * policy picks (op->replica then).  A negative errno if none. */
static int cop_target(mixsan_cluster_t *cl, struct cop *op)
{
	const struct mx_pool *pool;
	int32_t acting[MX_MAX_SIZE];
	int n, i = 0;

	op->replica = false;
	if (!cl->map)
		return -EAGAIN;
	pool = mx_map_pool_by_id(cl->map, op->pool);
	if (!pool)
		return -ENOENT;
	if (op->kind == COP_OBJ)
		op->pg = mx_object_pg(pool, op->name, op->name_len);
	else if (op->pg >= pool->pg_num)
		return -ENOENT;
	n = mx_pg_acting_memo(&cl->acting, cl->pl, cl->map, pool, op->pg, acting, MX_MAX_SIZE);
	if (n <= 0)
		return -EAGAIN;
	if (op->kind == COP_OBJ && !mx_op_is_write(op->op.op) && !op->to_primary)
		i = read_member(cl, pool, acting, n);
	op->replica = i > 0;
	return acting[i];
}

/* After a new map: may op stay where it is in flight?  A write, or a read
 * sent to the primary, while that is still the primary; a replica read
 * while its target is still a replica. */
static bool cop_stays(mixsan_cluster_t *cl, const struct cop *op)
{
	const struct mx_pool *pool = cl->map ? mx_map_pool_by_id(cl->map, op->pool) : NULL;
	int32_t acting[MX_MAX_SIZE];
	int n;

	if (!pool || (op->kind != COP_OBJ && op->pg >= pool->pg_num))
		return false;
	n = mx_pg_acting_memo(&cl->acting, cl->pl, cl->map, pool,
			      op->kind == COP_OBJ ? mx_object_pg(pool, op->name, op->name_len)
						  : op->pg,
			      acting, MX_MAX_SIZE);
	if (n <= 0)
		return false;
	if (!op->replica)
		return acting[0] == op->target;
	for (int i = 1; i < n; i++)
		if (acting[i] == op->target)
			return true;
	return false;
}

static void cop_send(mixsan_cluster_t *cl, struct cop *op)
{
	struct osdsess *s;
	struct mx_wbuf w;
	int target;

	if (op->deadline_ns && mx_now_ns() >= op->deadline_ns) {
		cop_complete(op, -ETIMEDOUT);
		return;
	}
	if (op->kind == COP_OBJ && cl->map && !op->route_epoch) {
		/* Routed now, at its first sending (docs/cache-tiering.md,
		 * "Mode changes and fencing"); a resend keeps the route, and
		 * the OSD, which knows whether it ran, refuses it if the tier
		 * changed since. */
		const struct mx_pool *pool = mx_map_pool_by_id(cl->map, op->pool);
		struct mx_tier_route rt;

		if (op->fence_epoch) {
			if (pool && pool->tier_epoch > op->fence_epoch) {
				cop_complete(op, -ESTALE); /* the tier starts again */
				return;
			}
			op->route_epoch = op->fence_epoch;
		} else if (op->raw) {
			op->route_epoch = UINT64_MAX;
		} else if (op->comp && tier_route_locked(cl, op->pool, &rt)) {
			/* Submitted, or refused by an OSD's fence, before our map
			 * showed the pool's tier: it goes through the tier. */
			mx_list_del(&op->link);
			tier_hand(cl, op, &rt);
			return;
		} else {
			op->route_epoch = cl->map->epoch;
		}
	}
	target = cop_target(cl, op);
	if (target == -ENOENT) {
		cop_complete(op, -ENOENT);
		return;
	}
	if (target < 0 || !(s = sess_get(cl, target))) {
		op->attempts++;
		cop_park(cl, op, backoff_ms(op));
		return;
	}
	mx_wbuf_init(&w);
	if (op->kind == COP_OBJ) {
		struct mx_msg_osd_op m;

		memset(&m, 0, sizeof(m));
		m.epoch = cl->map->epoch;
		m.pool = op->pool;
		m.pg = op->pg;
		m.client_id = cl->client_id;
		m.flags = (op->replica ? MX_OSD_OP_REPLICA_READ : 0) | op->osd_flags |
			  MX_OSD_OP_ROUTED;
		m.route_epoch = op->route_epoch;
		m.name = op->name;
		m.name_len = op->name_len;
		m.n_ops = (uint8_t)(1 + op->n_more);
		m.ops[0] = op->op;
		for (uint8_t i = 0; i < op->n_more; i++)
			m.ops[1 + i] = op->more[i];
		mx_enc_osd_op(&w, &m);
	} else if (op->kind == COP_SCRUB) {
		struct mx_msg_pg_scrub m = {.epoch = cl->map->epoch, .pool = op->pool,
					    .pg = op->pg, .flags = op->scrub_flags};

		mx_enc_pg_scrub(&w, &m);
	} else {
		struct mx_msg_osd_list m = {
			.epoch = cl->map->epoch,
			.pool = op->pool,
			.pg = op->pg,
			.cursor = op->name,
			.cursor_len = op->name_len,
			.max = 1024,
		};
		mx_enc_osd_list(&w, &m);
	}
	mx_list_del(&op->link);
	op->target = target;
	op->sent_on = s->conn;
	mx_list_add_tail(&s->inflight, &op->link);
	if (mx_conn_send(s->conn,
			 op->kind == COP_OBJ     ? MX_MSG_OSD_OP
			 : op->kind == COP_SCRUB ? MX_MSG_PG_SCRUB
						 : MX_MSG_OSD_LIST,
			 op->tid, &w) < 0) {
		op->attempts++;
		cop_park(cl, op, backoff_ms(op));
	}
}

/* Map changes: requests whose primary moved go to the new one, parked ones
 * are tried again at once. */
static void reroute(mixsan_cluster_t *cl)
{
	struct mx_list all, *pos, *tmp;

	mx_list_init(&all);
	for (uint32_t i = 0; i < cl->n_sess; i++) {
		struct osdsess *s = cl->sess[i];

		if (!s)
			continue;
		mx_list_for_each_safe(pos, tmp, &s->inflight) {
			struct cop *op = mx_list_entry(pos, struct cop, link);

			if (!cop_stays(cl, op)) {
				mx_list_del(pos);
				mx_list_add_tail(&all, pos);
			}
		}
	}
	mx_list_splice_tail(&all, &cl->parked);
	mx_list_for_each_safe(pos, tmp, &all)
		cop_send(cl, mx_list_entry(pos, struct cop, link));
}

static void cmd_done(mixsan_cluster_t *cl, struct moncmd *mc, int result, uint64_t epoch,
		     const char *message);

/* The monitor session: ping it, and give it up (mon_on_close moves to the
 * next monitor) when it has been silent for the grace, connected or still
 * connecting.  A monitor whose host is cut off never closes the
 * connection itself, and no new map would come through it. */
static void mon_check(mixsan_cluster_t *cl, uint64_t now)
{
	struct mx_wbuf w;

	if (!cl->mon)
		return;
	switch (mx_monlive_tick(&cl->mon_live, now / 1000000, cl->mon->connected)) {
	case MX_MONLIVE_PING:
		mx_wbuf_init(&w);
		(void)mx_conn_send(cl->mon, MX_MSG_PING, new_tid(cl), &w);
		break;
	case MX_MONLIVE_GIVE_UP:
		mx_conn_close(cl->mon, -ETIMEDOUT);
		break;
	default:
		break;
	}
}

static void on_tick(uv_timer_t *t)
{
	mixsan_cluster_t *cl = t->data;
	uint64_t now = mx_now_ns();
	struct mx_list due, *pos, *tmp;

	mon_check(cl, now);
	mx_list_init(&due);
	mx_list_for_each_safe(pos, tmp, &cl->parked) {
		struct cop *op = mx_list_entry(pos, struct cop, link);

		if (op->retry_at_ns <= now || (op->deadline_ns && op->deadline_ns <= now)) {
			mx_list_del(pos);
			mx_list_add_tail(&due, pos);
		}
	}
	mx_list_for_each_safe(pos, tmp, &due)
		cop_send(cl, mx_list_entry(pos, struct cop, link));
	/* A ticket with a third of its life left: ask for a new one. */
	if (cl->use_auth && cl->mon && cl->mon->sec == MX_SEC_ON &&
	    mx_auth_ticket_due(&cl->auth, mx_wall_ms()) && now - cl->renew_ms > 1000000000ull) {
		cl->renew_ms = now;
		(void)mx_authconn_renew(cl->mon);
	}
	/* Monitor commands past their deadline: no monitor that could run
	 * them answered (none knows a leader, or none is reachable). */
	mx_list_for_each_safe(pos, tmp, &cl->cmds) {
		struct moncmd *mc = mx_list_entry(pos, struct moncmd, link);

		if (mc->deadline_ns && mc->deadline_ns <= now)
			cmd_done(cl, mc, -ETIMEDOUT, 0,
				 "no answer within the operation timeout (no monitor reached "
				 "knows a leader?); the change may still be made");
	}
	/* In-flight requests past their deadline. */
	for (uint32_t i = 0; i < cl->n_sess; i++) {
		struct osdsess *s = cl->sess[i];

		if (!s)
			continue;
		mx_list_for_each_safe(pos, tmp, &s->inflight) {
			struct cop *op = mx_list_entry(pos, struct cop, link);

			if (op->deadline_ns && op->deadline_ns <= now)
				cop_complete(op, -ETIMEDOUT);
		}
	}
}

/* The monitor session ------------------------------------------------------ */

static void set_map(mixsan_cluster_t *cl, struct mx_map *m)
{
	struct mx_placement *pl;

	if (mx_placement_new(m, &pl) < 0) {
		mx_map_free(m);
		return;
	}
	pthread_mutex_lock(&cl->lock);
	mx_map_free(cl->map);
	cl->map = m;
	pthread_cond_broadcast(&cl->cond);
	pthread_mutex_unlock(&cl->lock);
	mx_placement_free(cl->pl);
	cl->pl = pl;
	stat_inc(&cl->stats.maps);
	reroute(cl);
}

static void mon_subscribe(mixsan_cluster_t *cl)
{
	struct mx_msg_get_map gm = {.have_epoch = cl->map ? cl->map->epoch : 0,
				    .subscribe = true};
	struct mx_wbuf w;

	mx_wbuf_init(&w);
	mx_enc_get_map(&w, &gm);
	(void)mx_conn_send(cl->mon, MX_MSG_MON_GET_MAP, new_tid(cl), &w);
}

static void cmd_send(mixsan_cluster_t *cl, struct moncmd *mc)
{
	struct mx_wbuf w;
	uint8_t *d;

	if (!cl->mon)
		return;
	mx_wbuf_init(&w);
	d = mx_wbuf_reserve(&w, mc->payload.len);
	if (d) {
		memcpy(d, mc->payload.data, mc->payload.len);
		w.len = mc->payload.len;
	}
	(void)mx_conn_send(cl->mon, MX_MSG_MON_COMMAND, mc->tid, &w);
}

static void cmd_done(mixsan_cluster_t *cl, struct moncmd *mc, int result, uint64_t epoch,
		     const char *message)
{
	mx_list_del(&mc->link);
	pthread_mutex_lock(&cl->lock);
	mc->result = result;
	mc->epoch = epoch;
	mc->message = message ? strdup(message) : NULL;
	mc->done = true;
	pthread_cond_broadcast(&cl->cond);
	pthread_mutex_unlock(&cl->lock);
}

static void mon_on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, uint8_t *payload)
{
	mixsan_cluster_t *cl = c->owner;
	struct mx_list *pos, *tmp;

	mx_monlive_heard(&cl->mon_live, mx_now_ns() / 1000000);
	switch (h->type) {
	case MX_MSG_MON_MAP: {
		struct mx_msg_map mm;
		struct mx_map *m;

		if (mx_dec_map(payload, h->len, &mm) < 0 || !mm.map_len)
			return;
		if (cl->map && mm.epoch <= cl->map->epoch)
			return;
		if (mx_map_decode(mm.map, mm.map_len, &m) < 0)
			return;
		mx_monlist_learn(&cl->monl, m);
		set_map(cl, m);
		return;
	}
	case MX_MSG_MON_REDIRECT: {
		/* Not the leader (or none known): commands go elsewhere. */
		struct mx_msg_mon_redirect rd;

		if (mx_dec_mon_redirect(payload, h->len, &rd) < 0)
			return;
		cl->mon_delay_ms = mx_monlist_redirect(&cl->monl, rd.leader);
		mx_conn_close(c, 0);
		return;
	}
	case MX_MSG_MON_COMMAND_REPLY:
	case MX_MSG_ERROR_REPLY:
		if (h->type == MX_MSG_ERROR_REPLY) {
			/* "authentication required": no use waiting for a map. */
			struct mx_msg_error_reply er;

			if (mx_dec_error_reply(payload, h->len, &er) == 0 &&
			    mx_wire_to_errno(er.status) == -EACCES) {
				pthread_mutex_lock(&cl->lock);
				snprintf(cl->auth_error, sizeof(cl->auth_error), "%s%s", er.message,
					 cl->use_auth ? "" : "; give a key file (--keyfile)");
				pthread_cond_broadcast(&cl->cond);
				pthread_mutex_unlock(&cl->lock);
			}
		}
		mx_list_for_each_safe(pos, tmp, &cl->cmds) {
			struct moncmd *mc = mx_list_entry(pos, struct moncmd, link);

			if (mc->tid != h->tid)
				continue;
			if (h->type == MX_MSG_MON_COMMAND_REPLY) {
				struct mx_msg_command_reply r;

				if (mx_dec_command_reply(payload, h->len, &r) < 0)
					cmd_done(cl, mc, -EBADMSG, 0, "malformed reply");
				else
					cmd_done(cl, mc, mx_wire_to_errno(r.status), r.epoch,
						 r.message);
			} else {
				struct mx_msg_error_reply r;

				if (mx_dec_error_reply(payload, h->len, &r) < 0)
					cmd_done(cl, mc, -EBADMSG, 0, "malformed reply");
				else
					cmd_done(cl, mc, mx_wire_to_errno(r.status), 0,
						 r.message);
			}
			return;
		}
		return;
	default:
		return;
	}
}

static void mon_retry_cb(uv_timer_t *t)
{
	mon_connect(t->data);
}

static void mon_on_close(struct mx_conn *c, int err)
{
	mixsan_cluster_t *cl = c->owner;

	if (cl->mon == c)
		cl->mon = NULL;
	if (c->auth_error[0] && err != -EAGAIN) {
		/* Refused: say why to whoever waits (mixsan_connect, commands). */
		struct mx_list *pos, *tmp;

		pthread_mutex_lock(&cl->lock);
		snprintf(cl->auth_error, sizeof(cl->auth_error), "%s", c->auth_error);
		pthread_cond_broadcast(&cl->cond);
		pthread_mutex_unlock(&cl->lock);
		mx_list_for_each_safe(pos, tmp, &cl->cmds)
			cmd_done(cl, mx_list_entry(pos, struct moncmd, link), err < 0 ? err : -EACCES,
				 0, c->auth_error);
	}
	if (cl->stopping)
		return;
	if (cl->mon_delay_ms) {
		/* Redirected: the list points where to go already. */
		uv_timer_start(&cl->mon_timer, mon_retry_cb, cl->mon_delay_ms, 0);
		cl->mon_delay_ms = 0;
		return;
	}
	mx_monlist_next(&cl->monl);
	uv_timer_start(&cl->mon_timer, mon_retry_cb, MON_RETRY_MS, 0);
}

static void mon_on_connect(struct mx_conn *c)
{
	mixsan_cluster_t *cl = c->owner;
	struct mx_list *pos, *tmp;

	mx_monlive_heard(&cl->mon_live, mx_now_ns() / 1000000);
	mon_subscribe(cl);
	mx_list_for_each_safe(pos, tmp, &cl->cmds)
		cmd_send(cl, mx_list_entry(pos, struct moncmd, link));
}

static const struct mx_conn_ops mon_ops = {
	.on_msg = mon_on_msg,
	.on_close = mon_on_close,
	.on_connect = mon_on_connect,
};

static void mon_connect(mixsan_cluster_t *cl)
{
	if (cl->stopping || cl->mon)
		return;
	mx_monlive_start(&cl->mon_live, mx_now_ns() / 1000000);
	if (mx_conn_connect(&cl->loop, mx_monlist_current(&cl->monl), &mon_ops, cl, &cl->mon) == 0) {
		if (cl->use_auth)
			mx_conn_auth_client(cl->mon, &cl->auth, MX_AUTH_MODE_KEY);
	} else {
		cl->mon = NULL;
		mx_monlist_next(&cl->monl);
		uv_timer_start(&cl->mon_timer, mon_retry_cb, MON_RETRY_MS, 0);
	}
}

/* The loop thread ------------------------------------------------------------- */

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (uv_is_closing(h))
		return;
	if (h->type == UV_TCP && h->data)
		mx_conn_close(h->data, 0);
	else
		uv_close(h, NULL);
}

static void fail_all(mixsan_cluster_t *cl)
{
	struct mx_list *pos, *tmp;

	mx_list_for_each_safe(pos, tmp, &cl->parked)
		cop_complete(mx_list_entry(pos, struct cop, link), -ENOTCONN);
	for (uint32_t i = 0; i < cl->n_sess; i++) {
		struct osdsess *s = cl->sess[i];

		if (!s)
			continue;
		mx_list_for_each_safe(pos, tmp, &s->inflight)
			cop_complete(mx_list_entry(pos, struct cop, link), -ENOTCONN);
	}
	mx_list_for_each_safe(pos, tmp, &cl->cmds)
		cmd_done(cl, mx_list_entry(pos, struct moncmd, link), -ENOTCONN, 0, NULL);
}

static void on_wake(uv_async_t *a)
{
	mixsan_cluster_t *cl = a->data;
	struct mx_list batch, *pos, *tmp;
	bool stopping;

	mx_list_init(&batch);
	pthread_mutex_lock(&cl->lock);
	mx_list_splice_tail(&batch, &cl->submit);
	stopping = cl->stopping;
	pthread_mutex_unlock(&cl->lock);
	if (stopping) {
		mx_list_for_each_safe(pos, tmp, &batch)
			cop_complete(mx_list_entry(pos, struct cop, link), -ENOTCONN);
		fail_all(cl);
		uv_walk(&cl->loop, close_walk, NULL);
		return;
	}
	mx_list_for_each_safe(pos, tmp, &batch) {
		struct cop *op = mx_list_entry(pos, struct cop, link);

		if (op->kind == COP_OBJ && op->comp == NULL) {
			/* A command carrier (see mixsan_mon_command). */
			struct moncmd *mc = (struct moncmd *)op->rbuf;

			mx_list_del(pos);
			mx_list_add_tail(&cl->cmds, &mc->link);
			cmd_send(cl, mc);
			cop_free(op);
			continue;
		}
		stat_inc(&cl->stats.ops);
		cop_send(cl, op);
	}
}

static void *loop_main(void *arg)
{
	mixsan_cluster_t *cl = arg;
	/* Without a batch every send is written at once: slower, not wrong. */
	bool batched = mx_netbatch_start(&cl->loop, &cl->batch) == 0;

	uv_run(&cl->loop, UV_RUN_DEFAULT);
	if (batched)
		mx_netbatch_end(&cl->batch);
	/* Sessions' on_close may have parked requests after fail_all. */
	fail_all(cl);
	return NULL;
}

static void wake(mixsan_cluster_t *cl)
{
	uv_async_send(&cl->wake);
}

/* Public API: cluster ---------------------------------------------------------- */

static void cluster_free(mixsan_cluster_t *cl)
{
	for (uint32_t i = 0; i < cl->n_sess; i++)
		free(cl->sess[i]);
	free(cl->sess);
	mx_placement_free(cl->pl);
	mx_map_free(cl->map);
	mx_bcache_free(cl->cache);
	explicit_bzero(&cl->auth, sizeof(cl->auth));
	pthread_mutex_destroy(&cl->lock);
	pthread_cond_destroy(&cl->cond);
	free(cl);
}

/* ms from now for a timed wait on cl->cond: by the monotonic clock, so a
 * wall clock stepped meanwhile neither cuts nor stretches the wait. */
static void deadline(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int mixsan_wait_for_epoch(mixsan_cluster_t *cl, uint64_t epoch, unsigned timeout_ms)
{
	struct timespec ts;
	int r = 0;

	if (!cl)
		return -EINVAL;
	deadline(&ts, timeout_ms);
	pthread_mutex_lock(&cl->lock);
	while (!cl->stopping && (!cl->map || cl->map->epoch < epoch)) {
		if (timeout_ms == 0) {
			pthread_cond_wait(&cl->cond, &cl->lock);
		} else if (pthread_cond_timedwait(&cl->cond, &cl->lock, &ts) == ETIMEDOUT) {
			r = -ETIMEDOUT;
			break;
		}
	}
	if (cl->stopping)
		r = -ENOTCONN;
	pthread_mutex_unlock(&cl->lock);
	return r;
}

static __thread char t_connect_error[300];

const char *mixsan_connect_error(void)
{
	return t_connect_error;
}

/* The first map, or a refusal of our key (no use waiting then). */
static int connect_wait(mixsan_cluster_t *cl)
{
	struct timespec ts;
	int r = 0;

	deadline(&ts, cl->opts.connect_timeout_ms);
	pthread_mutex_lock(&cl->lock);
	while (!cl->map && !cl->auth_error[0]) {
		if (pthread_cond_timedwait(&cl->cond, &cl->lock, &ts) == ETIMEDOUT) {
			r = -ETIMEDOUT;
			break;
		}
	}
	if (!cl->map && cl->auth_error[0]) {
		snprintf(t_connect_error, sizeof(t_connect_error), "%s", cl->auth_error);
		r = -EACCES;
	} else if (r == -ETIMEDOUT) {
		snprintf(t_connect_error, sizeof(t_connect_error),
			 "no monitor answered within %u ms", cl->opts.connect_timeout_ms);
	}
	pthread_mutex_unlock(&cl->lock);
	return r;
}

static void on_ticket(void *arg)
{
	mixsan_cluster_t *cl = arg;

	pthread_mutex_lock(&cl->lock);
	cl->auth_error[0] = '\0';
	pthread_mutex_unlock(&cl->lock);
}

int mixsan_connect(const char *mons, const struct mixsan_options *opts,
		   mixsan_cluster_t **out)
{
	mixsan_cluster_t *cl;
	int r;

	t_connect_error[0] = '\0';
	if (!out)
		return -EINVAL;
	signal(SIGPIPE, SIG_IGN);
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return -ENOMEM;
	pthread_mutex_init(&cl->lock, NULL);
	{
		/* Timed waits (deadline()) by the monotonic clock. */
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&cl->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	mx_list_init(&cl->submit);
	mx_list_init(&cl->parked);
	mx_list_init(&cl->cmds);
	if (opts)
		cl->opts = *opts;
	if (!cl->opts.connect_timeout_ms)
		cl->opts.connect_timeout_ms = 10000;
	r = mx_monlist_parse(&cl->monl, mons);
	if (r < 0) {
		snprintf(t_connect_error, sizeof(t_connect_error),
			 "bad monitor address list '%s' (IP:PORT[,IP:PORT...])", mons ? mons : "");
		cluster_free(cl);
		return r;
	}
	if (cl->opts.keyfile) {
		r = mx_keyfile_read(cl->opts.keyfile, cl->auth.entity, cl->auth.key);
		if (r < 0) {
			snprintf(t_connect_error, sizeof(t_connect_error), "key file %s: %s",
				 cl->opts.keyfile,
				 r == -EPERM ? "others may read it (chmod 600 it)" :
				 r == -EINVAL ? "not one line 'NAME KEY'" : strerror(-r));
			cluster_free(cl);
			return r;
		}
		cl->use_auth = true;
		cl->auth.on_ticket = on_ticket;
		cl->auth.arg = cl;
		cl->opts.keyfile = NULL; /* not kept: the caller's string */
	}
	if (cl->opts.read_policy < MIXSAN_READ_DEFAULT ||
	    cl->opts.read_policy > MIXSAN_READ_LOCALIZE) {
		snprintf(t_connect_error, sizeof(t_connect_error), "unknown read policy %d",
			 cl->opts.read_policy);
		cluster_free(cl);
		return -EINVAL;
	}
	if (cl->opts.location && cl->opts.location[0] &&
	    mx_loc_parse(cl->opts.location, cl->loc, &cl->nloc) < 0) {
		snprintf(t_connect_error, sizeof(t_connect_error),
			 "bad location '%s' (like \"host=H rack=R\")", cl->opts.location);
		cluster_free(cl);
		return -EINVAL;
	}
	cl->opts.location = NULL; /* not kept: the caller's string */
	if (cl->opts.snap_cache_bytes) {
		cl->cache = mx_bcache_new(cl->opts.snap_cache_bytes);
		if (!cl->cache) {
			snprintf(t_connect_error, sizeof(t_connect_error),
				 "no memory for a snapshot cache of %" PRIu64 " bytes",
				 cl->opts.snap_cache_bytes);
			cluster_free(cl);
			return -ENOMEM;
		}
	}
	if (!cl->opts.readahead_bytes)
		cl->opts.readahead_bytes = MX_DEFAULT_READAHEAD;
	else if (cl->opts.readahead_bytes == MIXSAN_READAHEAD_OFF)
		cl->opts.readahead_bytes = 0;
	else if (cl->opts.readahead_bytes > MX_MAX_READAHEAD) {
		snprintf(t_connect_error, sizeof(t_connect_error),
			 "read-ahead of %" PRIu64 " bytes: at most %u", cl->opts.readahead_bytes,
			 MX_MAX_READAHEAD);
		cluster_free(cl);
		return -EINVAL;
	}
	if (getrandom(&cl->client_id, sizeof(cl->client_id), 0) != sizeof(cl->client_id) ||
	    cl->client_id == 0)
		cl->client_id = mx_now_ns() | 1;
	cl->rng = cl->client_id | 1;
	cl->next_tid = 1;
	r = uv_loop_init(&cl->loop);
	if (r < 0) {
		cluster_free(cl);
		return r;
	}
	uv_async_init(&cl->loop, &cl->wake, on_wake);
	cl->wake.data = cl;
	uv_timer_init(&cl->loop, &cl->tick);
	cl->tick.data = cl;
	uv_timer_start(&cl->tick, on_tick, TICK_MS, TICK_MS);
	uv_timer_init(&cl->loop, &cl->mon_timer);
	cl->mon_timer.data = cl;
	mon_connect(cl);
	r = pthread_create(&cl->thread, NULL, loop_main, cl);
	if (r != 0) {
		uv_walk(&cl->loop, close_walk, NULL);
		uv_run(&cl->loop, UV_RUN_DEFAULT);
		(void)uv_loop_close(&cl->loop);
		cluster_free(cl);
		return -r;
	}
	r = connect_wait(cl);
	if (r < 0) {
		mixsan_shutdown(cl);
		return r;
	}
	*out = cl;
	return 0;
}

void mixsan_shutdown(mixsan_cluster_t *cl)
{
	struct mx_tier *t;

	if (!cl)
		return;
	/* The tier's workers first: their requests need the loop.  No request
	 * is handed to them once tier_closing is set. */
	pthread_mutex_lock(&cl->lock);
	cl->tier_closing = true;
	t = cl->tier;
	cl->tier = NULL;
	pthread_mutex_unlock(&cl->lock);
	mx_tier_free(t);
	pthread_mutex_lock(&cl->lock);
	cl->stopping = true;
	pthread_cond_broadcast(&cl->cond);
	pthread_mutex_unlock(&cl->lock);
	wake(cl);
	pthread_join(cl->thread, NULL);
	(void)uv_loop_close(&cl->loop);
	cluster_free(cl);
}

uint64_t mixsan_map_epoch(mixsan_cluster_t *cl)
{
	uint64_t e;

	pthread_mutex_lock(&cl->lock);
	e = cl->map ? cl->map->epoch : 0;
	pthread_mutex_unlock(&cl->lock);
	return e;
}

struct mx_map *mx_client_map_copy(mixsan_cluster_t *cl)
{
	struct mx_map *m = NULL;

	pthread_mutex_lock(&cl->lock);
	if (cl->map)
		m = mx_map_dup(cl->map);
	pthread_mutex_unlock(&cl->lock);
	return m;
}

int mx_client_locate(mixsan_cluster_t *cl, int64_t pool, const char *oid, uint32_t *pg,
		     int32_t *acting, int max)
{
	struct mx_map *m = mx_client_map_copy(cl);
	struct mx_placement *pl = NULL;
	const struct mx_pool *p;
	int r;

	if (!m)
		return -ENOMEM;
	p = mx_map_pool_by_id(m, (int32_t)pool);
	if (!p) {
		r = -ENOENT;
		goto out;
	}
	r = mx_placement_new(m, &pl);
	if (r < 0)
		goto out;
	*pg = mx_object_pg(p, oid, strlen(oid));
	r = mx_pg_acting(pl, m, p, *pg, acting, max);
out:
	mx_placement_free(pl);
	mx_map_free(m);
	return r;
}

void mx_client_get_stats(mixsan_cluster_t *cl, struct mx_client_stats *out)
{
	out->ops = __atomic_load_n(&cl->stats.ops, __ATOMIC_RELAXED);
	out->resends = __atomic_load_n(&cl->stats.resends, __ATOMIC_RELAXED);
	out->maps = __atomic_load_n(&cl->stats.maps, __ATOMIC_RELAXED);
	out->replica_reads = __atomic_load_n(&cl->stats.replica_reads, __ATOMIC_RELAXED);
	out->replica_bounced = __atomic_load_n(&cl->stats.replica_bounced, __ATOMIC_RELAXED);
	out->read_bytes = __atomic_load_n(&cl->stats.read_bytes, __ATOMIC_RELAXED);
}

struct mx_bcache *mx_client_cache(mixsan_cluster_t *cl, uint64_t *readahead)
{
	*readahead = cl->opts.readahead_bytes;
	return cl->cache;
}

void mixsan_io_stats(mixsan_cluster_t *cl, struct mixsan_io_stats *out)
{
	struct mx_bcache_stats cs = {0};

	memset(out, 0, sizeof(*out));
	if (!cl)
		return;
	out->ops = __atomic_load_n(&cl->stats.ops, __ATOMIC_RELAXED);
	out->read_bytes = __atomic_load_n(&cl->stats.read_bytes, __ATOMIC_RELAXED);
	if (cl->cache)
		mx_bcache_get_stats(cl->cache, &cs);
	out->cache_capacity = cs.capacity;
	out->cache_used = cs.used;
	out->cache_hit_bytes = cs.hit_bytes;
	out->cache_miss_bytes = cs.miss_bytes;
	out->cache_fetched_bytes = cs.fetched_bytes;
	out->cache_readahead_bytes = cs.readahead_bytes;
	out->cache_evicted_bytes = cs.evicted_bytes;
	out->cache_waits = cs.waits;
}

int mixsan_mon_command(mixsan_cluster_t *cl, const char *prefix, const char *const *kv,
		       size_t n_args, char **message)
{
	struct mx_msg_command m;
	struct moncmd *mc;
	struct cop *carrier;
	uint64_t epoch;
	int r;

	if (message)
		*message = NULL;
	if (!cl || !prefix || n_args > MX_CMD_MAX_ARGS || (n_args && !kv))
		return -EINVAL;
	memset(&m, 0, sizeof(m));
	m.prefix = prefix;
	m.n_args = (uint16_t)n_args;
	for (size_t i = 0; i < n_args; i++) {
		if (!kv[2 * i] || !kv[2 * i + 1])
			return -EINVAL;
		m.keys[i] = kv[2 * i];
		m.vals[i] = kv[2 * i + 1];
	}
	mc = calloc(1, sizeof(*mc));
	carrier = calloc(1, sizeof(*carrier));
	if (!mc || !carrier) {
		free(mc);
		free(carrier);
		return -ENOMEM;
	}
	mx_list_init(&mc->link);
	mx_wbuf_init(&mc->payload);
	mx_enc_command(&mc->payload, &m);
	if (mc->payload.err) {
		r = mc->payload.err;
		mx_wbuf_free(&mc->payload);
		free(mc);
		free(carrier);
		return r;
	}
	/* The command travels to the loop thread inside a carrier request
	 * without a completion. */
	carrier->kind = COP_OBJ;
	carrier->rbuf = mc;
	mx_list_init(&carrier->link);
	if (cl->opts.op_timeout_ms)
		mc->deadline_ns = mx_now_ns() + (uint64_t)cl->opts.op_timeout_ms * 1000000ull;
	pthread_mutex_lock(&cl->lock);
	mc->tid = new_tid(cl);
	if (cl->stopping) {
		pthread_mutex_unlock(&cl->lock);
		mx_wbuf_free(&mc->payload);
		free(mc);
		free(carrier);
		return -ENOTCONN;
	}
	mx_list_add_tail(&cl->submit, &carrier->link);
	pthread_mutex_unlock(&cl->lock);
	wake(cl);
	pthread_mutex_lock(&cl->lock);
	while (!mc->done)
		pthread_cond_wait(&cl->cond, &cl->lock);
	pthread_mutex_unlock(&cl->lock);
	r = mc->result;
	epoch = mc->epoch;
	if (message)
		*message = mc->message;
	else
		free(mc->message);
	mx_wbuf_free(&mc->payload);
	free(mc);
	if (r == 0 && epoch)
		(void)mixsan_wait_for_epoch(cl, epoch, 10000);
	return r;
}

/* Public API: pools and objects -------------------------------------------------- */

int mixsan_pool_open(mixsan_cluster_t *cl, const char *name, mixsan_pool_t **out)
{
	const struct mx_pool *pool;
	mixsan_pool_t *p;
	int32_t id = -1;

	if (!cl || !name || !out)
		return -EINVAL;
	pthread_mutex_lock(&cl->lock);
	pool = cl->map ? mx_map_pool_by_name(cl->map, name) : NULL;
	if (pool)
		id = pool->id;
	pthread_mutex_unlock(&cl->lock);
	if (id < 0)
		return -ENOENT;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cl = cl;
	p->id = id;
	*out = p;
	return 0;
}

int mx_client_pool_open_id(mixsan_cluster_t *cl, int64_t id, mixsan_pool_t **out)
{
	mixsan_pool_t *p;
	bool found;

	pthread_mutex_lock(&cl->lock);
	found = cl->map && id >= INT32_MIN && id <= INT32_MAX &&
		mx_map_pool_by_id(cl->map, (int32_t)id);
	pthread_mutex_unlock(&cl->lock);
	if (!found)
		return -ENOENT;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cl = cl;
	p->id = (int32_t)id;
	*out = p;
	return 0;
}

mixsan_cluster_t *mx_client_pool_cluster(mixsan_pool_t *p)
{
	return p->cl;
}

int mx_client_pool_open_raw(mixsan_cluster_t *cl, int64_t id, mixsan_pool_t **out)
{
	return mx_client_pool_open_fenced(cl, id, 0, 0, out);
}

int mx_client_pool_open_fenced(mixsan_cluster_t *cl, int64_t id, uint64_t epoch,
			       uint64_t deadline_ns, mixsan_pool_t **out)
{
	int r = mx_client_pool_open_id(cl, id, out);

	if (r == 0) {
		(*out)->raw = true;
		(*out)->fence_epoch = epoch;
		(*out)->deadline_ns = deadline_ns;
	}
	return r;
}

uint64_t mx_client_id(mixsan_cluster_t *cl)
{
	return cl->client_id;
}

/* Requests as cache tiering sees them (tier.h). */

const char *mx_cop_oid(const struct cop *op)
{
	return op->name;
}

unsigned mx_cop_ops(const struct cop *op, struct mx_osd_op *out)
{
	for (unsigned i = 0; i < 1u + op->n_more; i++)
		out[i] = *cop_op(op, i);
	return 1u + op->n_more;
}

void mx_cop_answer(struct cop *op, int err, const struct mx_client_read_result *res,
		   const struct mx_client_version *ver, int failed)
{
	struct mx_msg_osd_op_reply r;
	unsigned n = 1u + op->n_more;

	memset(&r, 0, sizeof(r));
	if (err == -ESTALE || err == -EAGAIN)
		err = -EIO; /* retried below us already; never parked here */
	r.status = mx_errno_to_wire(err);
	r.n_ops = (uint8_t)n;
	if (res) {
		assert(res->n == n);
		for (unsigned i = 0; i < n; i++) {
			r.res[i].rval = mx_errno_to_wire(res->ops[i].rval);
			r.res[i].data = res->ops[i].data;
			r.res[i].data_len = res->ops[i].len;
		}
	} else if (err == -ECANCELED && failed >= 0 && (unsigned)failed < n) {
		r.res[failed].rval = mx_errno_to_wire(err);
	}
	if (ver) {
		r.ver_epoch = ver->epoch;
		r.ver_seq = ver->seq;
	}
	failed_note(op, &r);
	if (err < 0) {
		cop_complete(op, err);
		return;
	}
	cop_answer(op->cl, op, &r);
}

void mixsan_pool_close(mixsan_pool_t *p)
{
	free(p);
}

int64_t mixsan_pool_id(mixsan_pool_t *p)
{
	return p->id;
}

static int check_oid(const char *oid)
{
	size_t n;

	if (!oid)
		return -EINVAL;
	n = strlen(oid);
	return n == 0 || n > MX_OBJ_NAME_MAX ? -EINVAL : 0;
}

static int check_xname(const char *name)
{
	size_t n;

	if (!name)
		return -EINVAL;
	n = strlen(name);
	return n == 0 || n > MX_XATTR_NAME_MAX ? -EINVAL : 0;
}

static struct cop *cop_new(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			   uint8_t opcode)
{
	struct cop *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->name = strdup(oid);
	if (!op->name) {
		free(op);
		return NULL;
	}
	op->cl = p->cl;
	op->kind = COP_OBJ;
	op->pool = p->id;
	op->name_len = (uint32_t)strlen(oid);
	op->op.op = opcode;
	op->comp = c;
	op->target = -1;
	op->raw = p->raw;
	op->fence_epoch = p->fence_epoch;
	op->deadline_ns = p->deadline_ns;
	mx_list_init(&op->link);
	return op;
}

/* Under cl->lock: whether requests to pool go through its cache tier, and
 * how: while the pool has a cache in mode writeback or readonly, or in mode
 * none while it may hold copies (flush_all: docs/cache-tiering.md, "Mode
 * changes and fencing").  rt->epoch is the map's either way. */
static bool tier_route_locked(mixsan_cluster_t *cl, int32_t pool, struct mx_tier_route *rt)
{
	const struct mx_pool *b, *c;

	rt->epoch = cl->map ? cl->map->epoch : 0;
	b = cl->map ? mx_map_pool_by_id(cl->map, pool) : NULL;
	if (!b || b->tier < 0)
		return false;
	c = mx_map_pool_by_id(cl->map, b->tier);
	if (!c)
		return false;
	if (c->cache_mode == MX_CACHE_NONE && !c->flush_all)
		return false;
	rt->base = b->id;
	rt->cache = c->id;
	rt->mode = c->cache_mode;
	rt->min_hits = c->promote_min_hits;
	rt->period_s = c->hit_period_s;
	return true;
}

/* Hand op (its completion armed) to the tier's workers. */
static void tier_hand(mixsan_cluster_t *cl, struct cop *op, const struct mx_tier_route *rt)
{
	int r;

	pthread_mutex_lock(&cl->lock);
	r = cl->tier_closing ? -ENOTCONN : 0;
	if (r == 0 && !cl->tier)
		r = mx_tier_new(cl, &cl->tier);
	if (r == 0)
		r = mx_tier_check(op);
	if (r == 0)
		r = mx_tier_submit(cl->tier, rt, op);
	pthread_mutex_unlock(&cl->lock);
	if (r < 0)
		cop_complete(op, r);
}

bool mx_client_tier_route(mixsan_cluster_t *cl, int32_t pool, struct mx_tier_route *rt)
{
	bool r;

	pthread_mutex_lock(&cl->lock);
	r = tier_route_locked(cl, pool, rt);
	pthread_mutex_unlock(&cl->lock);
	return r;
}

static int cop_submit(mixsan_cluster_t *cl, struct cop *op)
{
	struct mx_tier_route rt;

	pthread_mutex_lock(&cl->lock);
	if (cl->stopping) {
		pthread_mutex_unlock(&cl->lock);
		cop_free(op);
		return -ENOTCONN;
	}
	if (op->kind == COP_OBJ && op->comp && !op->raw && tier_route_locked(cl, op->pool, &rt)) {
		/* A tiered pool: a worker runs it as guarded requests on the
		 * two pools (tier.c) and completes it. */
		int r = cl->tier_closing ? -ENOTCONN : 0;

		if (r == 0 && !cl->tier)
			r = mx_tier_new(cl, &cl->tier);
		if (r == 0)
			r = mx_tier_check(op);
		if (r == 0) {
			mx_completion_arm(op->comp);
			r = mx_tier_submit(cl->tier, &rt, op);
			if (r < 0)
				completion_disarm(op->comp);
		}
		pthread_mutex_unlock(&cl->lock);
		if (r < 0)
			cop_free(op);
		return r;
	}
	op->tid = new_tid(cl);
	mx_completion_arm(op->comp);
	if (cl->opts.op_timeout_ms) {
		uint64_t d = mx_now_ns() + (uint64_t)cl->opts.op_timeout_ms * 1000000ull;

		if (!op->deadline_ns || d < op->deadline_ns)
			op->deadline_ns = d;
	}
	mx_list_add_tail(&cl->submit, &op->link);
	pthread_mutex_unlock(&cl->lock);
	wake(cl);
	return 0;
}

static int aio_data(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c, uint8_t opcode,
		    const void *buf, size_t len, uint64_t off)
{
	struct cop *op;

	if (!p || !c || check_oid(oid) < 0 || len > MX_MSG_MAX_DATA || (len && !buf))
		return -EINVAL;
	op = cop_new(p, oid, c, opcode);
	if (!op)
		return -ENOMEM;
	op->op.data = buf;
	op->op.data_len = (uint32_t)len;
	op->op.off = off;
	return cop_submit(p->cl, op);
}

int mixsan_aio_read(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c, void *buf,
		    size_t len, uint64_t off)
{
	struct cop *op;

	if (!p || !c || check_oid(oid) < 0 || len > MX_MSG_MAX_DATA || (len && !buf))
		return -EINVAL;
	op = cop_new(p, oid, c, MX_OP_READ);
	if (!op)
		return -ENOMEM;
	op->op.off = off;
	op->op.len = (uint32_t)len;
	op->rbuf = buf;
	op->rlen = len;
	return cop_submit(p->cl, op);
}

int mixsan_aio_write(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
		     const void *buf, size_t len, uint64_t off)
{
	return aio_data(p, oid, c, MX_OP_WRITE, buf, len, off);
}

int mixsan_aio_write_full(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			  const void *buf, size_t len)
{
	return aio_data(p, oid, c, MX_OP_WRITEFULL, buf, len, 0);
}

int mixsan_aio_append(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
		      const void *buf, size_t len)
{
	return aio_data(p, oid, c, MX_OP_APPEND, buf, len, 0);
}

int mixsan_aio_truncate(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			uint64_t size)
{
	return aio_data(p, oid, c, MX_OP_TRUNCATE, NULL, 0, size);
}

/* A request of ops[0..n) on oid, names copied (the caller checked them). */
static struct cop *cop_new_ops(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			       const struct mx_osd_op *ops, unsigned n)
{
	size_t names = 0;
	struct cop *op;
	char *at;

	for (unsigned i = 1; i < n; i++)
		if (ops[i].xname)
			names += strlen(ops[i].xname) + 1;
	op = cop_new(p, oid, c, ops[0].op);
	if (!op)
		return NULL;
	op->op = ops[0];
	if (ops[0].xname) {
		snprintf(op->xname, sizeof(op->xname), "%s", ops[0].xname);
		op->op.xname = op->xname;
	}
	if (n > 1) {
		op->more = malloc((n - 1) * sizeof(*op->more) + names);
		if (!op->more) {
			cop_free(op);
			return NULL;
		}
		at = (char *)(op->more + (n - 1));
		for (unsigned i = 1; i < n; i++) {
			op->more[i - 1] = ops[i];
			if (ops[i].xname) {
				size_t l = strlen(ops[i].xname) + 1;

				memcpy(at, ops[i].xname, l);
				op->more[i - 1].xname = at;
				at += l;
			}
		}
		op->n_more = (uint8_t)(n - 1);
	}
	return op;
}

int mx_client_aio_write_ops_v(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			      const struct mx_osd_op *ops, unsigned n,
			      struct mx_client_version *ver)
{
	return mx_client_aio_write_ops_f(p, oid, c, ops, n, ver, NULL);
}

/* A write request of ops, checked (-EINVAL) and built (-ENOMEM), not yet
 * submitted. */
static int write_ops_new(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			 const struct mx_osd_op *ops, unsigned n, struct cop **out)
{
	if (!p || !c || !ops || check_oid(oid) < 0 || n == 0 || n > MX_MSG_MAX_OPS)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		if (!mx_op_is_write(ops[i].op) || ops[i].data_len > MX_MSG_MAX_DATA)
			return -EINVAL;
		if (ops[i].xname && check_xname(ops[i].xname) < 0)
			return -EINVAL;
	}
	*out = cop_new_ops(p, oid, c, ops, n);
	return *out ? 0 : -ENOMEM;
}

int mx_client_aio_write_ops_f(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			      const struct mx_osd_op *ops, unsigned n,
			      struct mx_client_version *ver, int *failed)
{
	struct cop *op;
	int r = write_ops_new(p, oid, c, ops, n, &op);

	if (r < 0)
		return r;
	op->ver_out = ver;
	op->failed_out = failed;
	if (failed)
		*failed = -1;
	return cop_submit(p->cl, op);
}

int mx_client_aio_write_ops(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			    const struct mx_osd_op *ops, unsigned n)
{
	return mx_client_aio_write_ops_v(p, oid, c, ops, n, NULL);
}

int mx_client_aio_write_ops_wb(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			       const struct mx_osd_op *ops, unsigned n,
			       struct mx_client_version *ver)
{
	struct cop *op;
	int r = write_ops_new(p, oid, c, ops, n, &op);

	if (r < 0)
		return r;
	op->osd_flags = MX_OSD_OP_WRITEBACK;
	op->ver_out = ver;
	return cop_submit(p->cl, op);
}

int mx_client_aio_flush_pg(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			   uint64_t since)
{
	struct mx_osd_op fl = {.op = MX_OP_FLUSH, .flags = MX_OP_FLAG_SINCE, .off = since};
	struct cop *op;

	if (!p || !c || check_oid(oid) < 0)
		return -EINVAL;
	op = cop_new_ops(p, oid, c, &fl, 1);
	if (!op)
		return -ENOMEM;
	op->to_primary = true; /* only the primary answers a FLUSH */
	return cop_submit(p->cl, op);
}

void mx_client_read_result_free(struct mx_client_read_result *r)
{
	if (!r)
		return;
	for (unsigned i = 0; i < r->n && i < MX_MSG_MAX_OPS; i++)
		free(r->ops[i].data);
	memset(r, 0, sizeof(*r));
}

int mx_client_aio_read_ops(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			   const struct mx_osd_op *ops, unsigned n,
			   struct mx_client_read_result *out)
{
	uint64_t want = 0;
	struct cop *op;

	if (!p || !c || !ops || !out || check_oid(oid) < 0 || n == 0 || n > MX_MSG_MAX_OPS)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		switch (ops[i].op) {
		case MX_OP_READ:
			want += ops[i].len;
			break;
		case MX_OP_GETXATTR:
			if (check_xname(ops[i].xname) < 0)
				return -EINVAL;
			break;
		case MX_OP_STAT:
		case MX_OP_LISTXATTRS:
			break;
		default:
			return -EINVAL; /* a request either reads or writes */
		}
	}
	if (want > MX_MSG_MAX_DATA)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	op = cop_new_ops(p, oid, c, ops, n);
	if (!op)
		return -ENOMEM;
	op->read_out = out;
	/* Never to a replica (read policies): the version comes from the
	 * primary, which evaluates the guards of the writes that follow. */
	op->to_primary = true;
	return cop_submit(p->cl, op);
}

int mixsan_aio_remove(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c)
{
	return aio_data(p, oid, c, MX_OP_REMOVE, NULL, 0, 0);
}

int mixsan_aio_stat(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
		    struct mixsan_stat *st)
{
	struct cop *op;

	if (!p || !c || !st || check_oid(oid) < 0)
		return -EINVAL;
	op = cop_new(p, oid, c, MX_OP_STAT);
	if (!op)
		return -ENOMEM;
	op->st_out = st;
	return cop_submit(p->cl, op);
}

static struct cop *xattr_op(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			    uint8_t opcode, const char *name)
{
	struct cop *op = cop_new(p, oid, c, opcode);

	if (!op)
		return NULL;
	snprintf(op->xname, sizeof(op->xname), "%s", name);
	op->op.xname = op->xname;
	return op;
}

int mixsan_aio_getxattr(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			const char *name, void *buf, size_t len)
{
	struct cop *op;

	if (!p || !c || check_oid(oid) < 0 || check_xname(name) < 0 || (len && !buf))
		return -EINVAL;
	op = xattr_op(p, oid, c, MX_OP_GETXATTR, name);
	if (!op)
		return -ENOMEM;
	op->rbuf = buf;
	op->rlen = len;
	return cop_submit(p->cl, op);
}

int mixsan_aio_setxattr(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
			const char *name, const void *value, size_t len)
{
	struct cop *op;

	if (!p || !c || check_oid(oid) < 0 || check_xname(name) < 0 ||
	    len > MX_XATTR_VALUE_MAX || (len && !value))
		return -EINVAL;
	op = xattr_op(p, oid, c, MX_OP_SETXATTR, name);
	if (!op)
		return -ENOMEM;
	op->op.data = value;
	op->op.data_len = (uint32_t)len;
	return cop_submit(p->cl, op);
}

int mixsan_aio_rmxattr(mixsan_pool_t *p, const char *oid, mixsan_completion_t *c,
		       const char *name)
{
	struct cop *op;

	if (!p || !c || check_oid(oid) < 0 || check_xname(name) < 0)
		return -EINVAL;
	op = xattr_op(p, oid, c, MX_OP_RMXATTR, name);
	if (!op)
		return -ENOMEM;
	return cop_submit(p->cl, op);
}

/* Synchronous forms: an asynchronous call and a wait. */

static int64_t sync_read(mixsan_pool_t *p, const char *oid, void *buf, size_t len,
			 uint64_t off)
{
	MX_SYNC(mixsan_aio_read(p, oid, c_, buf, len, off));
}

int64_t mixsan_read(mixsan_pool_t *p, const char *oid, void *buf, size_t len, uint64_t off)
{
	return sync_read(p, oid, buf, len, off);
}

int mixsan_write(mixsan_pool_t *p, const char *oid, const void *buf, size_t len, uint64_t off)
{
	MX_SYNC(mixsan_aio_write(p, oid, c_, buf, len, off));
}

int mixsan_write_full(mixsan_pool_t *p, const char *oid, const void *buf, size_t len)
{
	MX_SYNC(mixsan_aio_write_full(p, oid, c_, buf, len));
}

int mixsan_append(mixsan_pool_t *p, const char *oid, const void *buf, size_t len)
{
	MX_SYNC(mixsan_aio_append(p, oid, c_, buf, len));
}

int mixsan_truncate(mixsan_pool_t *p, const char *oid, uint64_t size)
{
	MX_SYNC(mixsan_aio_truncate(p, oid, c_, size));
}

int mixsan_remove(mixsan_pool_t *p, const char *oid)
{
	MX_SYNC(mixsan_aio_remove(p, oid, c_));
}

int mixsan_stat(mixsan_pool_t *p, const char *oid, struct mixsan_stat *st)
{
	MX_SYNC(mixsan_aio_stat(p, oid, c_, st));
}

int mixsan_getxattr(mixsan_pool_t *p, const char *oid, const char *name, void *buf,
		    size_t len)
{
	MX_SYNC(mixsan_aio_getxattr(p, oid, c_, name, buf, len));
}

int mixsan_setxattr(mixsan_pool_t *p, const char *oid, const char *name, const void *value,
		    size_t len)
{
	MX_SYNC(mixsan_aio_setxattr(p, oid, c_, name, value, len));
}

int mixsan_rmxattr(mixsan_pool_t *p, const char *oid, const char *name)
{
	MX_SYNC(mixsan_aio_rmxattr(p, oid, c_, name));
}

int mx_client_write_ops(mixsan_pool_t *p, const char *oid, const struct mx_osd_op *ops,
			unsigned n, struct mx_client_version *ver)
{
	MX_SYNC(mx_client_aio_write_ops_v(p, oid, c_, ops, n, ver));
}

int mx_client_write_ops_f(mixsan_pool_t *p, const char *oid, const struct mx_osd_op *ops,
			  unsigned n, struct mx_client_version *ver, int *failed)
{
	MX_SYNC(mx_client_aio_write_ops_f(p, oid, c_, ops, n, ver, failed));
}

int mx_client_read_ops(mixsan_pool_t *p, const char *oid, const struct mx_osd_op *ops,
		       unsigned n, struct mx_client_read_result *out)
{
	MX_SYNC(mx_client_aio_read_ops(p, oid, c_, ops, n, out));
}

static int64_t sync_copy(mixsan_pool_t *p, struct cop *op, struct reply_copy *rc)
{
	mixsan_completion_t *c;
	int64_t r = mixsan_completion_create(NULL, NULL, &c);

	if (r < 0) {
		cop_free(op);
		return r;
	}
	op->comp = c;
	op->copy_out = rc;
	r = cop_submit(p->cl, op);
	if (r == 0)
		r = mixsan_completion_wait(c);
	else
		c->done = true;
	mixsan_completion_release(c);
	return r;
}

int mx_client_xattrs_walk(const void *data, uint32_t len,
			  int (*cb)(void *arg, const char *name, const void *value, size_t len),
			  void *arg)
{
	struct mx_rbuf r;
	uint32_t n;
	int ret = 0;

	mx_rbuf_init(&r, data, len);
	n = mx_get_u32(&r);
	for (uint32_t i = 0; i < n && !r.err && ret == 0; i++) {
		char name[MX_XATTR_NAME_MAX + 1];
		const void *v;
		uint32_t vl;

		mx_get_str(&r, name, sizeof(name));
		v = mx_get_blob(&r, &vl, MX_XATTR_VALUE_MAX);
		if (r.err)
			break;
		ret = cb(arg, name, v, vl);
	}
	if (r.err && ret == 0)
		ret = -EBADMSG;
	return ret;
}

int mixsan_getxattrs(mixsan_pool_t *p, const char *oid,
		     int (*cb)(void *arg, const char *name, const void *value, size_t len),
		     void *arg)
{
	struct reply_copy rc = {0};
	struct cop *op;
	int64_t e;
	int ret;

	if (!p || !cb || check_oid(oid) < 0)
		return -EINVAL;
	op = cop_new(p, oid, NULL, MX_OP_LISTXATTRS);
	if (!op)
		return -ENOMEM;
	e = sync_copy(p, op, &rc);
	if (e < 0)
		return (int)e;
	ret = mx_client_xattrs_walk(rc.data, rc.len, cb, arg);
	free(rc.data);
	return ret;
}

/* List PG pg of p's pool: cb for each object, in name order. */
static int list_pg(mixsan_pool_t *p, uint32_t pg,
		   int (*cb)(void *arg, const char *oid, size_t oid_len, uint64_t size),
		   void *arg)
{
	char cursor[MX_OBJ_NAME_MAX + 1];
	bool done = false;
	int ret = 0;

	cursor[0] = '\0';
	while (!done && ret == 0) {
		struct reply_copy rc = {0};
		struct mx_msg_osd_list_reply lr;
		struct cop *op = calloc(1, sizeof(*op));
		int64_t e;

		if (!op)
			return -ENOMEM;
		op->name = strdup(cursor);
		if (!op->name) {
			free(op);
			return -ENOMEM;
		}
		op->cl = p->cl;
		op->kind = COP_LIST;
		op->pool = p->id;
		op->pg = pg;
		op->name_len = (uint32_t)strlen(cursor);
		op->target = -1;
		op->deadline_ns = p->deadline_ns;
		mx_list_init(&op->link);
		e = sync_copy(p, op, &rc);
		if (e < 0)
			return (int)e;
		if (mx_dec_osd_list_reply(rc.data, rc.len, &lr) < 0) {
			free(rc.data);
			return -EBADMSG;
		}
		done = lr.done;
		for (uint32_t i = 0; i < lr.n && ret == 0; i++) {
			struct mx_list_entry le;
			char name[MX_OBJ_NAME_MAX + 1];

			if (mx_list_next(&lr, &le) < 0) {
				ret = -EBADMSG;
				break;
			}
			memcpy(name, le.name, le.name_len);
			name[le.name_len] = '\0';
			ret = cb(arg, name, le.name_len, le.size);
			memcpy(cursor, name, le.name_len + 1);
		}
		if (lr.n == 0)
			done = true;
		free(rc.data);
	}
	return ret;
}

int mx_client_list_pg(mixsan_pool_t *p, uint32_t pg,
		      int (*cb)(void *arg, const char *oid, size_t oid_len, uint64_t size),
		      void *arg)
{
	if (!p || !cb || pg == UINT32_MAX)
		return -EINVAL;
	return list_pg(p, pg, cb, arg);
}

int mixsan_list(mixsan_pool_t *p,
		int (*cb)(void *arg, const char *oid, size_t oid_len, uint64_t size),
		void *arg)
{
	const struct mx_pool *pool;
	struct mx_tier_route rt;
	uint32_t pg_num;
	int ret = 0;

	if (!p || !cb)
		return -EINVAL;
	if (!p->raw && mx_client_tier_route(p->cl, p->id, &rt))
		return mx_tier_list(p->cl, &rt, cb, arg);
	pthread_mutex_lock(&p->cl->lock);
	pool = p->cl->map ? mx_map_pool_by_id(p->cl->map, p->id) : NULL;
	pg_num = pool ? pool->pg_num : 0;
	pthread_mutex_unlock(&p->cl->lock);
	if (!pool)
		return -ENOENT;
	for (uint32_t pg = 0; pg < pg_num && ret == 0; pg++)
		ret = list_pg(p, pg, cb, arg);
	return ret;
}

int mx_client_pg_scrub(mixsan_cluster_t *cl, int64_t pool, uint32_t pg, uint32_t flags,
		       struct mx_client_scrub_result *out)
{
	struct mixsan_pool p = {.cl = cl, .id = (int32_t)pool};
	struct mx_msg_pg_scrub_reply r;
	struct reply_copy rc = {0};
	struct cop *op;
	int64_t e;

	if (!cl || !out || pool < 0 || pool > INT32_MAX || pg == UINT32_MAX ||
	    (flags & ~(uint32_t)(MX_SCRUB_DEEP | MX_SCRUB_REPAIR)))
		return -EINVAL;
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->name = strdup("");
	if (!op->name) {
		free(op);
		return -ENOMEM;
	}
	op->cl = cl;
	op->kind = COP_SCRUB;
	op->pool = (int32_t)pool;
	op->pg = pg;
	op->scrub_flags = flags;
	op->target = -1;
	mx_list_init(&op->link);
	e = sync_copy(&p, op, &rc);
	if (e < 0)
		return (int)e;
	if (mx_dec_pg_scrub_reply(rc.data, rc.len, &r) < 0) {
		free(rc.data);
		return -EBADMSG;
	}
	free(rc.data);
	out->scrubbed = r.scrubbed;
	out->inconsistent = r.inconsistent;
	out->repaired = r.repaired;
	out->errors = r.errors;
	return 0;
}

/*
 * PGs on the OSD: peering, recovery, backfill and the map history they
 * need (docs/recovery.md).
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
 * Lost and refused messages: everything is re-sent by pg_tick when the
 * connection it went on was replaced (connection generations); a refused
 * activation, push or pull (the member's map behind ours) is re-sent at the
 * next tick too.  Nothing else is re-sent over a live connection.
 */
#include "osd_int.h"

#define STALL_NS (20ull * 1000000000ull) /* recovery_stall_check, deferred_check */

static void rec_pump(struct osd *osd);
static bool pg_members(const struct mx_map *m, const struct mx_placement *pl, int32_t pool_id,
		       uint32_t pg, int32_t *up, int *nu, int32_t *act, int *na, uint64_t *inc);
static uint64_t pg_interval_first(struct osd *osd, int32_t pool_id, uint32_t pg,
				  const int32_t *up, int nu, const int32_t *act, int na,
				  const uint64_t *inc);

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
	w->wb_lost = i->wb_lost;
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
	i->wb_lost = w->wb_lost;
}

/* Whether our copy with this info may lack writes it acknowledged: this
 * OSD restarted after its host did, and the copy has not gone active
 * since (docs/cache-modes.md). */
static bool copy_suspect(const struct osd *osd, const struct mx_pg_info *info)
{
	return info->les < osd->boot.suspect_below;
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
int encode_object(struct osd *osd, const struct mx_pg_ref *ref, const char *name,
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
int apply_object(struct osd *osd, const struct mx_msg_pg_object *o)
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

/* A peer's message that needs our map at its epoch and our whole map
 * history is kept until both are here (replay_deferred); true if so. */
static bool defer_until_map(struct osd *osd, struct session *s, uint16_t type, uint64_t tid,
			    uint64_t epoch, const uint8_t *payload, uint32_t len)
{
	/* Also while booting again (marked down, say, after a SIGSTOP): our
	 * PGs keep their old intervals until the boot is answered
	 * (pgs_update waits for it), and a primary's activation for the new
	 * interval answered "stale" meanwhile would never be sent again. */
	if (osd->map && epoch <= osd->map->epoch && osd->hist_ready && osd->booted)
		return false;
	hold(osd, &osd->deferred, s, type, tid, epoch, payload, len);
	return true;
}

/* Whether a message from a primary for (pool, pg) in interval may be
 * applied: 1 if it was deferred (our map is older than its epoch, our map
 * history is incomplete, or we are booting again: it is replayed later),
 * 0 and *out if we are a
 * replica of that PG in that interval, -ESTALE otherwise. */
int replica_check(struct osd *osd, struct session *s, uint16_t type, uint64_t tid,
		  uint64_t epoch, int32_t pool, uint32_t pg, uint64_t interval,
		  const uint8_t *payload, uint32_t len, struct pgstate **out)
{
	struct pgstate *pgs;

	if (defer_until_map(osd, s, type, tid, epoch, payload, len))
		return 1;
	if (pool < 0 || pg == UINT32_MAX)
		return -ESTALE;
	pgs = pg_get(osd, pool, pg);
	if (pgs->role != ROLE_REPLICA || pgs->interval != interval)
		return -ESTALE;
	*out = pgs;
	return 0;
}

void handle_repop(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
		  uint32_t len)
{
	struct mx_msg_repop m;
	struct mx_txn_op txops[MX_TXN_MAX_OPS];
	struct mx_txn txn;
	struct pgstate *pgs = NULL;
	struct mx_wbuf b;
	struct mx_msg_repop_reply rr = {0};
	size_t staged;
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
		/* A REPOP of writes only stages behind what the object has
		 * pending (the store orders them); anything else commits
		 * that first. */
		bool plain = true;

		for (uint8_t i = 0; i < m.n_ops; i++)
			plain = plain && m.ops[i].type == MX_TXN_WRITE;
		if (!plain)
			flush_if_pending(osd, &txn.key);
		staged = mx_store_pending_count(osd->store);
		r = mx_store_queue(osd->store, &txn);
		if (r == 0 && (m.tail.flags & MX_REPOP_WRITEBACK))
			osd->wb_records += mx_store_pending_count(osd->store) - staged;
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
	if (m.tail.flags & MX_REPOP_WRITEBACK)
		reply_after_commit_wb(osd, s, MX_MSG_OSD_REPOP_REPLY, tid, &b);
	else
		reply_after_commit(osd, s, MX_MSG_OSD_REPOP_REPLY, tid, &b);
}

/* OSD_SYNC from a primary serving a FLUSH (docs/cache-modes.md): every
 * REPOP it sent us before came first on this connection and is staged or
 * logged; commit and sync it all, then answer.  Any interval: a sync is
 * harmless, and the primary judges whether its FLUSH still holds. */
void handle_sync(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
		 uint32_t len)
{
	struct mx_msg_osd_sync m;
	struct mx_msg_repop_reply rr = {0};
	struct mx_wbuf b;

	if (mx_dec_osd_sync(payload, len, &m) < 0) {
		mx_warn("%s: malformed sync request", s->conn->peer);
		(void)mx_conn_send_error(s->conn, tid, -EBADMSG, "malformed sync request");
		return;
	}
	commit_now(osd);
	rr.epoch = osd->map ? osd->map->epoch : 0;
	mx_wbuf_init(&b);
	mx_enc_repop_reply(&b, &rr);
	(void)session_send(s, MX_MSG_OSD_SYNC_REPLY, tid, &b);
}

/* PG_QUERY: our info and whole log, from any OSD (answering changes
 * nothing).  Deferred until our map reaches the query's epoch, so that we
 * no longer accept writes of an older interval once we have answered. */
void handle_pg_query(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
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
	if (defer_until_map(osd, s, MX_MSG_PG_QUERY, tid, ref.epoch, payload, len))
		return;
	commit_now(osd);
	(void)mx_store_pg_info_get(osd->store, ref.pool, ref.pg, &info);
	info_to_wire(&info, &wi);
	wi.flags = copy_suspect(osd, &info) ? MX_PGI_SUSPECT : 0;
	mx_wbuf_init(&w);
	at = mx_enc_pg_notify_head(&w, 0, &ref, &wi);
	c.w = &w;
	c.n = 0;
	(void)mx_store_pg_log_walk(osd->store, ref.pool, ref.pg, zero, enc_log_cb, &c);
	mx_enc_pg_notify_end(&w, at, c.n, &wi);
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
void handle_pg_activate(struct osd *osd, struct session *s, uint64_t tid,
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
			if (m.wb_lost) {
				/* The wiped copy keeps the PG's loss (L2). */
				struct mx_pg_info wi = {.wb_lost = m.wb_lost};

				r = mx_store_queue_pg_info(osd->store, m.ref.pool, m.ref.pg,
							   &wi);
				if (r < 0)
					fatal_store(r);
			}
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
	info.wb_lost = MX_MAX(info.wb_lost, m.wb_lost);
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
void handle_pg_push(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
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
void handle_pg_pull(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
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
void handle_pg_remove(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
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
	if (defer_until_map(osd, s, MX_MSG_PG_REMOVE, tid, m.ref.epoch, payload, len))
		return;
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
void handle_pg_scan(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
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
	if (defer_until_map(osd, s, MX_MSG_PG_SCAN, tid, m.ref.epoch, payload, len))
		return;
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
uint64_t peer_send_tid(struct osd *osd, int32_t id, uint16_t type, struct mx_wbuf *w,
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
bool maybe_lost(struct osd *osd, int32_t id, uint64_t gen)
{
	struct peer *p = peer_get(osd, id);

	return gen == 0 || !p || !p->conn || p->gen != gen;
}

struct mx_pg_ref pg_ref(struct osd *osd, const struct pgstate *pgs)
{
	return (struct mx_pg_ref){.epoch = osd->map->epoch, .pool = pgs->pool, .pg = pgs->pg,
				  .interval = pgs->interval};
}

const struct mx_pool *pg_pool(struct osd *osd, const struct pgstate *pgs)
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

void run_held_ops(struct osd *osd, struct pgstate *pgs)
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


/* Objects no longer to be sent: their throttle slots are free again. */
static void missing_free_rec(struct osd *osd, struct missing **l, int *n)
{
	for (struct missing *m = *l; m; m = m->next)
		if (m->inflight)
			rec_done(osd, m->tid);
	missing_free(l, n);
}

void pg_clear_primary(struct osd *osd, struct pgstate *pgs)
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


void pg_send_query(struct osd *osd, struct pgstate *pgs, struct pgpeer *pp)
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
	pgs->peers[0].suspect = copy_suspect(osd, &pgs->peers[0].log.info);
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
	/* With the authority's les, the loss peering found: a crash before
	 * pg_activate must not leave a trusted copy that forgot it. */
	info.wb_lost = MX_MAX(info.wb_lost, pgs->wb_lost);
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
void pg_send_scan(struct osd *osd, struct pgstate *pgs)
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

int member_index(const struct pgstate *pgs, int32_t id)
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
#define ACT_RESEND_NS (5ull * 1000000000ull) /* an unanswered recovery activation */
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

/*
 * Might a member of an interval since the last active one (since: the
 * newest les we heard of) still serve reads under a lease?  Only if the
 * pool allowed replica reads in some map since then, and some member of
 * those intervals did not answer our query (an answer means it switched
 * to our interval).  docs/read-policies.md, "A new interval waits".
 */
static bool leases_may_run(struct osd *osd, const struct pgstate *pgs,
			   const struct mx_interval *iv, size_t n, uint64_t since)
{
	bool replica_reads = false;

	if (since == 0)
		return false; /* never active: nothing was read */
	/* A map missing in our history (a gap being filled) may have
	 * allowed replica reads. */
	for (uint64_t e = MX_MAX(since, osd->hist_base);
	     !replica_reads && e < osd->hist_base + osd->hist_len; e++) {
		const struct mx_map *m = osd->hist[e - osd->hist_base];
		const struct mx_pool *p = m ? mx_map_pool_by_id(m, pgs->pool) : NULL;

		replica_reads = !m || (p && p->read_policy != MX_READ_PRIMARY);
	}
	if (!replica_reads) {
		const struct mx_pool *p = mx_map_pool_by_id(osd->map, pgs->pool);

		replica_reads = p && p->read_policy != MX_READ_PRIMARY;
	}
	if (!replica_reads)
		return false;
	for (size_t k = 0; k < n; k++) {
		if (iv[k].last < since)
			continue;
		for (int i = 0; i < iv[k].n_acting; i++) {
			int32_t a = iv[k].acting[i];
			bool heard = a == osd->id;

			for (int j = 1; j < pgs->n_peers && !heard; j++)
				heard = pgs->peers[j].osd == a && pgs->peers[j].answered;
			if (!heard)
				return true;
		}
	}
	return false;
}

/* Every acting member and one member of every maybe-rw interval since the
 * newest les has answered: choose the authority. */
void pg_try_peer(struct osd *osd, struct pgstate *pgs)
{
	struct mx_pg_info infos[PRIOR_MAX];
	bool suspect[PRIOR_MAX];
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
		suspect[k] = pgs->peers[i].suspect;
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
	pgs->lease_wait_ns = 0;
	pgs->lease_warned = false;
	if (n > 0 && leases_may_run(osd, pgs, iv, (size_t)n, since))
		pgs->lease_wait_ns = mx_now_ns() + MX_LEASE_WAIT_NS;
	free(iv);
	pgs->wb_lost = mx_wb_lost(infos, suspect, k, pgs->interval);
	if (pgs->wb_lost && pgs->wb_lost == pgs->interval) /* found by this peering */
		mx_warn("pg %d.%u: every copy of the last active interval restarted after its "
			"host did: writeback writes acknowledged before epoch %" PRIu64
			" may be lost, and flushes for them fail",
			pgs->pool, pgs->pg, pgs->wb_lost);
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
void rec_done(struct osd *osd, uint64_t tid)
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
void rec_requeue_lost(struct osd *osd, struct missing *m, int32_t to)
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

void pg_send_activate(struct osd *osd, struct pgstate *pgs, int i, uint64_t les,
		      bool with_log)
{
	struct mx_msg_pg_activate a;
	struct mx_wbuf w;
	size_t at;
	uint32_t n = 0;

	memset(&a, 0, sizeof(a));
	a.ref = pg_ref(osd, pgs);
	a.les = les;
	a.wb_lost = pgs->wb_lost;
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
	mx_enc_pg_activate_end(&w, at, n, &a);
	pgs->mem[i].act_sent = true;
	pgs->mem[i].act_ns = mx_now_ns();
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
void pg_remove_strays(struct osd *osd, struct pgstate *pgs)
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
	if (pgs->lease_wait_ns && mx_now_ns() < pgs->lease_wait_ns) {
		/* pg_tick_one looks again. */
		if (!pgs->lease_warned)
			mx_info("pg %d.%u: a member of an earlier interval did not answer: waiting "
				"%llu ms for its read leases to run out",
				pgs->pool, pgs->pg,
				(unsigned long long)((pgs->lease_wait_ns - mx_now_ns()) / 1000000));
		pgs->lease_warned = true;
		return;
	}
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
	info.wb_lost = MX_MAX(info.wb_lost, pgs->wb_lost);
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


void on_pg_notify(struct osd *osd, struct peer *p, uint8_t *payload, uint32_t len)
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
	pp->suspect = (m.info.flags & MX_PGI_SUSPECT) != 0;
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

void on_pg_activate_reply(struct osd *osd, struct peer *p, uint8_t *payload, uint32_t len)
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

void on_pg_push_reply(struct osd *osd, struct peer *p, uint64_t tid, uint8_t *payload,
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
void on_scan_reply(struct osd *osd, struct peer *p, uint64_t tid, uint8_t *payload,
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

void on_pg_remove_reply(struct osd *osd, struct peer *p, uint8_t *payload, uint32_t len)
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
void on_pull_answer(struct osd *osd, struct peer *p, uint8_t *payload, uint32_t len)
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

void hist_check_ready(struct osd *osd)
{
	osd->hist_ready = osd->hist_len > 0;
	for (size_t i = 0; i < osd->hist_len && osd->hist_ready; i++)
		osd->hist_ready = osd->hist[i] != NULL;
}

/* Forget every epoch up to and including upto. */
void hist_drop(struct osd *osd, uint64_t upto)
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
void hist_put(struct osd *osd, struct mx_map *m, struct mx_placement *pl)
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
void pgs_update(struct osd *osd)
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

/* Messages that waited for a newer map (or the history) get another go. */
void replay_deferred(struct osd *osd)
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

void pg_tick(uv_timer_t *t)
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

/* Messages on our connections to peers: answers to what we sent. */
void peer_on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, uint8_t *payload)
{
	struct peer *p = c->owner_data;
	struct osd *osd = c->owner;
	struct mx_msg_repop_reply rr;
	struct mx_list *pos, *tmp;

	switch (h->type) {
	case MX_MSG_PONG: {
		struct mx_msg_pong pg;

		p->last_rx_ns = mx_now_ns();
		if (mx_dec_pong(payload, h->len, &pg) < 0 || !osd->map || h->tid > p->last_rx_ns)
			return;
		/* Our PING's send time is its tid (docs/read-policies.md). */
		if (mx_lease_pong_grants(&p->pong_epoch, pg.epoch, osd->map->epoch) &&
		    h->tid > p->grant_ns)
			p->grant_ns = h->tid;
		p->rlease_until_ns = h->tid + MX_MIN(pg.lease_ns, MX_READ_LEASE_NS);
		p->rlease_epoch = pg.epoch;
		return;
	}
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
	case MX_MSG_OSD_SYNC_REPLY:
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
void pg_tick_one(struct osd *osd, struct pgstate *pgs)
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
		pg_check_active(osd, pgs); /* a lease wait may be over */
		for (int i = 1; i < pgs->n_acting; i++) {
			struct member *mb = &pgs->mem[i];
			bool lost = maybe_lost(osd, pgs->acting[i], mb->act_gen);

			if (mb->state == M_RECOVERING)
				recovery_stall_check(osd, pgs, i);
			if (mb->state == M_COMPLETE && !mb->acked && lost) {
				pg_send_activate(osd, pgs, i, pgs->interval, true);
			} else if (mb->state == M_RECOVERING && !mb->act_acked &&
				   (lost || (!mb->backfill &&
					     mx_now_ns() - mb->act_ns > ACT_RESEND_NS))) {
				/* Unanswered on a live connection too: a recovery
				 * activation only marks the member recovering, so
				 * sending it again is harmless (a backfill one wipes
				 * the copy: only after a lost connection). */
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

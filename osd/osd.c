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
 *   received --(a write sent under a map older than the PG's interval)
 *       --> ESTALE reply with my epoch (a late copy: docs/osd.md)
 *   received --(acting set < min_size)--------> EAGAIN reply
 *   received --(reads)--> executed on committed state --> replied
 *   received --(writes)--> planned (plan_write: logical ops become a
 *       physical transaction with a new version) --> queued in the store and
 *       sent to every other acting OSD (REPOP) --> waiting
 *   waiting --(local commit: on_check; a durable one when the worker's
 *       fdatasync that covers it ends)--> local_done
 *   waiting --(REPOP_REPLY from each replica)--> acks
 *   local_done and all acks --> replied (pop_finish)
 *
 * Invariants:
 *  - A write is acknowledged to a client only when it is durable in the
 *    store of every OSD of the acting set (local commit and every replica's
 *    REPOP_REPLY, which a replica sends only after its own commit).
 *  - The store never holds two staged transactions on one object: a request
 *    touching an object with a staged (or unsynced) transaction waits for
 *    them to be durable and applied (wait_synced, on the worker's sync;
 *    other paths sync on the loop, flush_if_pending), so planning always
 *    reads committed state and a read never sees an uncommitted write.  One exception: a
 *    request of WRITE ops only (plain_writes), whose plan does not read
 *    the object's state, stages behind them; the store applies them in
 *    order (docs/cache-modes.md).
 *  - A durable group commit logs its frame unsynced and one fdatasync at a
 *    time runs on a worker (sync_kick); what waits is released when a sync
 *    that began after its frame was written ends.  Synchronous commits
 *    (commit_now) release everything logged before them.  Write-back frames
 *    half way to the store's unsynced bound start such a sync too, so the
 *    commit that reaches the bound seldom syncs on the loop, and so does the
 *    write-back timer (wb_tick) for frames left unsynced.
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
 * PGs, peering and recovery are in pg.c, scrub in scrub.c, the statistics
 * for the monitor in pgstats.c; osd_int.h holds what they share.
 */
#include "osd_int.h"

#include "agent.h"
#include "guard.h"

static struct osd g_osd;

/* A durable group commit of this many bytes or more syncs on the loop. */
#ifndef SYNC_INLINE_BYTES
#define SYNC_INLINE_BYTES (256u << 10)
#endif

/* How long a writeback write may stay unsynced with no FLUSH. */
#define WB_SYNC_MS 1000

static void mon_connect(struct osd *osd);

/* Sessions -------------------------------------------------------------- */

void session_put(struct session *s)
{
	if (--s->refs == 0)
		free(s);
}

int session_send(struct session *s, uint16_t type, uint64_t tid, struct mx_wbuf *w)
{
	if (!s->conn) {
		mx_wbuf_free(w);
		return -ENOTCONN;
	}
	return mx_conn_send(s->conn, type, tid, w);
}

/* PG state --------------------------------------------------------------- */

struct pgstate *pg_get(struct osd *osd, int32_t pool, uint32_t pg)
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
		struct mx_version last;

		/* First: it syncs, so the last version counts unsynced writes. */
		(void)mx_store_pg_info_get(osd->store, pool, pg, &info);
		last = mx_store_pg_last(osd->store, pool, pg);
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

struct pgstate *pg_find(struct osd *osd, int32_t pool, uint32_t pg)
{
	uint64_t h = mx_hash64(&pg, sizeof(pg), (uint64_t)(uint32_t)pool) % PG_BUCKETS;

	for (struct pgstate *s = osd->pgs[h]; s; s = s->next)
		if (s->pool == pool && s->pg == pg)
			return s;
	return NULL;
}

/* Store commits ----------------------------------------------------------- */

void fatal_store(int r)
{
	mx_err("object store commit failed: %s; stopping (restart replays the log)",
	       strerror(-r));
	exit(1);
}


/* Release what waited for a commit: replies go out, pops are done
 * locally.  Every rwait of rwaits, and every pop of pops by commit_link. */
static void release_waits(struct osd *osd, struct mx_list *pops, struct mx_list *rwaits)
{
	struct mx_list *pos, *tmp;

	mx_list_for_each_safe(pos, tmp, rwaits) {
		struct rwait *w = mx_list_entry(pos, struct rwait, link);

		mx_list_del(pos);
		(void)session_send(w->s, w->type, w->tid, &w->w);
		session_put(w->s);
		free(w);
	}
	mx_list_for_each_safe(pos, tmp, pops) {
		struct pop *p = mx_list_entry(pos, struct pop, commit_link);

		mx_list_del(pos);
		p->local_done = true;
		if (p->waiting == 0)
			pop_finish(osd, p);
	}
}

/* Release what waited for frames the store now holds durable: the front
 * of sync_rwaits and sync_pops, up to the first whose ticket is not. */
static void release_synced(struct osd *osd)
{
	struct mx_list pops, rwaits, *pos, *tmp;

	mx_list_init(&pops);
	mx_list_init(&rwaits);
	mx_list_for_each_safe(pos, tmp, &osd->sync_rwaits) {
		struct rwait *w = mx_list_entry(pos, struct rwait, link);

		if (!mx_store_durable(osd->store, w->ticket))
			break;
		mx_list_del(pos);
		mx_list_add_tail(&rwaits, pos);
	}
	mx_list_for_each_safe(pos, tmp, &osd->sync_pops) {
		struct pop *p = mx_list_entry(pos, struct pop, commit_link);

		if (!mx_store_durable(osd->store, p->ticket))
			break;
		mx_list_del(pos);
		mx_list_add_tail(&pops, pos);
	}
	release_waits(osd, &pops, &rwaits);
}

static void sync_kick(struct osd *osd);

/* The requests of sync_ops whose frames are durable now get their next
 * go, in order (handle_op, which checks everything again).  One whose
 * object has frames pending again (a write queued behind it ran first)
 * stays at the head with a new ticket, and the rest wait behind it for the
 * next sync.  From the loop's top only (the worker's end, the check
 * phase), never from inside another request's handling. */
static void run_synced_ops(struct osd *osd)
{
	while (!mx_list_empty(&osd->sync_ops)) {
		struct held *h = mx_list_entry(osd->sync_ops.next, struct held, link);

		if (!mx_store_durable(osd->store, h->ticket))
			break;
		if (h->s->conn && !osd->stopping) {
			osd->op_retry = true;
			osd->op_again = false;
			handle_op(osd, h->s, h->tid, h->payload, h->len);
			osd->op_retry = false;
			if (osd->op_again) {
				h->ticket = osd->again_ticket;
				sync_kick(osd);
				break;
			}
		}
		mx_list_del(&h->link);
		session_put(h->s);
		free(h->payload);
		free(h);
	}
}

static void sync_work_cb(uv_work_t *req)
{
	struct osd *osd = req->data;

	mx_store_sync_run(&osd->sync);
}

/* Back on the loop: the frames below the ticket are durable (or the
 * store failed); release what waited for them, and sync what was logged
 * since if anything waits for that. */
static void sync_done(struct osd *osd, int status)
{
	int r;

	osd->sync_running = false;
	if (status < 0)
		osd->sync.result = status; /* not run (nothing cancels it) */
	r = mx_store_sync_end(osd->store, &osd->sync);
	if (r < 0)
		fatal_store(r);
	release_synced(osd);
}

static void sync_after_cb(uv_work_t *req, int status)
{
	struct osd *osd = req->data;

	sync_done(osd, status);
	run_synced_ops(osd);
	sync_kick(osd);
}

/* Start a sync on a worker if something waits for durability, the
 * write-back timer asked for one, or the unsynced write-back frames are
 * half way to the store's bound (so the commit that would reach it does not
 * sync on the loop; not under --sync-inline, which keeps every sync on the
 * loop), and none runs.  One at a time: each covers every frame logged
 * before it began, so the groups logged while one runs share the next. */
static void sync_kick(struct osd *osd)
{
	int r;

	if (osd->sync_running || osd->stopping)
		return;
	if (mx_list_empty(&osd->sync_pops) && mx_list_empty(&osd->sync_rwaits) &&
	    mx_list_empty(&osd->sync_ops) && !osd->wb_due &&
	    (osd->sync_inline || !mx_store_sync_due(osd->store)))
		return;
	r = mx_store_sync_begin(osd->store, &osd->sync);
	if (r < 0)
		fatal_store(r);
	osd->wb_due = false; /* this sync covers what the timer saw, or none is left */
	if (r == 0) {
		release_synced(osd); /* a sync on the loop covered them */
		return;
	}
	osd->sync_work.data = osd;
	if (uv_queue_work(osd->loop, &osd->sync_work, sync_work_cb, sync_after_cb) < 0) {
		/* Only for a NULL callback in libuv; were it to fail, sync
		 * here.  Held requests run at the check phase, not inside the
		 * request that may have called this. */
		sync_work_cb(&osd->sync_work);
		sync_done(osd, 0);
		return;
	}
	osd->sync_running = true;
}

/* Commit everything staged (unsynced when allowed), then release what
 * waited for it.  Unsynced exactly when every staged record came from a
 * writeback write or REPOP and nothing asked for a sync; otherwise what
 * waits needs everything logged so far durable (docs/cache-modes.md).
 * With now (or --sync-inline) one fdatasync here makes it so; otherwise
 * the frame is logged unsynced and what waits is released when a sync on
 * a worker covers it (sync_kick). */
static void commit_release(struct osd *osd, bool sync, bool now)
{
	struct mx_list pops, rwaits, *pos, *tmp;
	size_t staged = mx_store_pending_count(osd->store);
	uint64_t ticket;
	int r;

	sync = sync || osd->sync_wanted || osd->wb_records != staged;
	/* A sync inside the store (a PG-level read) may have covered what a
	 * worker's sync still runs for: that goes first, in order. */
	release_synced(osd);
	/* Nothing to commit: the replies waiting for a commit wait for
	 * nothing (what they answer for is on disk already), so they go out
	 * now.  (A recovery activation changes nothing in the store: its
	 * reply waited here until some other write came, and on an idle
	 * OSD that recovery stalled.) */
	if (staged == 0 && mx_list_empty(&osd->commit_rwaits) &&
	    mx_list_empty(&osd->commit_pops) && !(sync && mx_store_unsynced(osd->store)))
		return;
	now = now || osd->sync_inline ||
	      mx_store_pending_bytes(osd->store) >= SYNC_INLINE_BYTES;
	if (sync && now)
		r = staged > 0 ? mx_store_commit(osd->store) : mx_store_sync(osd->store);
	else
		r = staged > 0 ? mx_store_commit_unsynced(osd->store) : 0;
	if (r < 0)
		fatal_store(r);
	osd->wb_records = 0;
	osd->sync_wanted = false;
	mx_list_init(&pops);
	mx_list_init(&rwaits);
	mx_list_splice_tail(&pops, &osd->commit_pops);
	mx_list_splice_tail(&rwaits, &osd->commit_rwaits);
	ticket = mx_store_log_seq(osd->store);
	if (sync && !mx_store_durable(osd->store, ticket)) {
		mx_list_for_each_safe(pos, tmp, &rwaits) {
			struct rwait *w = mx_list_entry(pos, struct rwait, link);

			w->ticket = ticket;
			mx_list_del(pos);
			mx_list_add_tail(&osd->sync_rwaits, pos);
		}
		mx_list_for_each_safe(pos, tmp, &pops) {
			struct pop *p = mx_list_entry(pos, struct pop, commit_link);

			p->ticket = ticket;
			mx_list_del(pos);
			mx_list_add_tail(&osd->sync_pops, pos);
		}
		sync_kick(osd);
		return;
	}
	/* Durable, or an unsynced commit was all they asked for.  What
	 * waited for a sync in flight that this one covered goes first. */
	release_synced(osd);
	release_waits(osd, &pops, &rwaits);
	sync_kick(osd); /* write-back frames half way to the bound */
}

/* Commit everything staged and sync everything logged: afterwards every
 * write this OSD holds is durable. */
void commit_now(struct osd *osd)
{
	commit_release(osd, true, true);
}

/* The group commit: unsynced if only writeback records are staged; a
 * durable one syncs on a worker. */
void commit_group(struct osd *osd)
{
	commit_release(osd, false, false);
}

/* A request touching an object with a staged or unsynced transaction:
 * commit and sync first, so it sees committed state. */
void flush_if_pending(struct osd *osd, const struct mx_objkey *key)
{
	if (mx_store_pending(osd->store, key))
		commit_now(osd);
}

/* Runs once per loop iteration after I/O: the REPOPs and replies of this
 * iteration go out, then the group commit, then the replies it releases. */
static void on_check(uv_check_t *h)
{
	struct osd *osd = h->data;

	mx_netbatch_flush(&osd->batch);
	run_synced_ops(osd);
	commit_group(osd);
	mx_netbatch_flush(&osd->batch);
}

/* Unsynced writes do not wait for a FLUSH for ever: bounded in time as
 * the store bounds them in bytes. */
static void wb_tick(uv_timer_t *t)
{
	struct osd *osd = t->data;

	/* On a worker: one that runs now covers only the frames logged before
	 * it began, so the next one (started when it ends) covers the rest. */
	if (!mx_store_unsynced(osd->store))
		return;
	if (osd->sync_inline) {
		commit_now(osd);
		return;
	}
	osd->wb_due = true;
	sync_kick(osd);
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

void pop_unref(struct pop *p)
{
	if (--p->refs == 0) {
		mx_shared_unref(p->repop);
		mx_shared_unref(p->repop_nolog);
		free(p->name);
		free(p);
	}
}

/* Send w as a reply on s after the next commit, synced or not: for a
 * writeback REPOP. */
void reply_after_commit_wb(struct osd *osd, struct session *s, uint16_t type, uint64_t tid,
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

/* Send w as a reply on s after the next commit has made it durable. */
void reply_after_commit(struct osd *osd, struct session *s, uint16_t type, uint64_t tid,
			struct mx_wbuf *w)
{
	reply_after_commit_wb(osd, s, type, tid, w);
	osd->sync_wanted = true;
}

void pop_finish(struct osd *osd, struct pop *p)
{
	struct mx_wbuf w;
	struct dedup *d;

	if (p->pg) {
		mx_list_del(&p->pg_link);
		p->pg = NULL;
	}
	if (p->status == 0 && !p->flush) {
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

/*
 * The guards (CMPXATTR) of a write request, on the committed state of the
 * object as the request arrives.  Evaluated on the primary only, before
 * any change is planned: replicas, peering and log replay see physical
 * transactions, never a guard.  A request's guards come first, and it has
 * at least one op that is not a guard.  Returns 0 if every guard holds;
 * -EINVAL if the request's guards are malformed (flags, name, place, or an
 * ordered comparison with an operand of another length than the value),
 * whatever the other guards say; else -ECANCELED if one does not hold,
 * with rvals[i] (wire codes, one per op) ECANCELED for each guard i that
 * does not hold and 0 for every other op, so the client can tell which of
 * its guards failed (docs/cache-tiering.md); or the store's error.
 */
static int check_guards(struct osd *osd, const struct mx_msg_osd_op *m,
			const struct mx_objkey *key, bool exists, int32_t *rvals)
{
	uint8_t n_guards = 0;
	bool canceled = false;

	for (uint8_t i = 0; i < m->n_ops; i++)
		rvals[i] = 0;

	while (n_guards < m->n_ops && m->ops[n_guards].op == MX_OP_CMPXATTR)
		n_guards++;
	if (n_guards == m->n_ops)
		return -EINVAL; /* a guard alone changes nothing */
	for (uint8_t i = 0; i < m->n_ops; i++) {
		const struct mx_osd_op *o = &m->ops[i];

		if (o->op == MX_OP_CMPXATTR &&
		    (i >= n_guards || !o->xname[0] || strlen(o->xname) > MX_XATTR_NAME_MAX ||
		     reserved_xattr(o->xname) || mx_guard_check(o->flags, o->data_len) < 0))
			return -EINVAL;
	}
	for (uint8_t i = 0; i < n_guards; i++) {
		const struct mx_osd_op *o = &m->ops[i];
		void *v = NULL;
		uint32_t l = 0;
		int r;

		r = exists ? mx_store_getxattr(osd->store, key, o->xname, &v, &l) : -ENODATA;
		if (r < 0 && r != -ENODATA)
			return r;
		r = mx_guard_holds(o->flags, v, l, o->data, o->data_len);
		free(v);
		if (r < 0)
			return r;
		if (r == 0) {
			rvals[i] = mx_errno_to_wire(-ECANCELED);
			canceled = true;
		}
	}
	return canceled ? -ECANCELED : 0;
}

/* Turn the logical ops of a request into one physical transaction on the
 * committed state of the object.  Fills txops (at most MX_TXN_MAX_OPS
 * entries) and rvals; returns the op count or a negative errno (nothing
 * changes; on -ECANCELED, rvals say which guards did not hold). */
static int plan_write(struct osd *osd, const struct mx_msg_osd_op *m,
		      const struct mx_objkey *key, struct mx_txn_op *txops, int32_t *rvals)
{
	struct mx_obj_stat st;
	bool exists = mx_store_stat(osd->store, key, &st) == 0;
	uint64_t size = exists ? st.size : 0;
	bool changed = false; /* an op before this one changes the object */
	int n = 0, r;

	r = check_guards(osd, m, key, exists, rvals);
	if (r < 0)
		return r;
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

			if (reserved_xattr(o->xname))
				return -EINVAL;
			if (!exists)
				return -ENOENT;
			if (!changed) {
				/* Only guards before it: the attribute must
				 * be there (ENODATA otherwise), as without
				 * them. */
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
		case MX_OP_CMPXATTR:
			break; /* evaluated by check_guards */
		default:
			return -EINVAL;
		}
		changed |= o->op != MX_OP_CMPXATTR;
	}
	(void)exists;
	return n > 0 ? n : -EINVAL;
}

static void encode_repop(struct mx_wbuf *w, const struct mx_msg_osd_op *m,
			 const struct mx_txn *txn, uint64_t epoch, uint64_t interval)
{
	struct mx_msg_repop rp;

	memset(&rp, 0, sizeof(rp));
	rp.tail.interval = interval;
	rp.tail.flags = MX_REPOP_LOG |
			((m->flags & MX_OSD_OP_WRITEBACK) ? MX_REPOP_WRITEBACK : 0);
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

struct peer *peer_get(struct osd *osd, int32_t id)
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

void repop_send(struct osd *osd, struct peer *p, struct repop_out *ro)
{
	struct mx_wbuf w;
	struct pop *pop = ro->pop;

	if (!p->conn)
		return;
	mx_wbuf_init(&w);
	if (ro->sync) {
		struct mx_msg_osd_sync sy = {.epoch = osd->map ? osd->map->epoch : 0};

		if (ro->pop->pg) {
			sy.pool = ro->pop->pg->pool;
			sy.pg = ro->pop->pg->pg;
		}
		mx_enc_osd_sync(&w, &sy);
		(void)mx_conn_send(p->conn, MX_MSG_OSD_SYNC, ro->tid, &w);
		return;
	}
	if (ro->nolog && !pop->repop_nolog) {
		mx_put_bytes(&w, pop->repop->data, pop->repop->len);
		if (!w.err)
			mx_repop_clear_log(w.data, w.len);
		pop->repop_nolog = mx_shared_new(&w); /* NULL if w.err */
		if (!pop->repop_nolog) {
			mx_err("out of memory replicating a write");
			exit(1);
		}
	}
	(void)mx_conn_send_shared(p->conn, MX_MSG_OSD_REPOP, ro->tid,
				  ro->nolog ? pop->repop_nolog : pop->repop);
}

struct missing *missing_find(struct missing *l, const char *name, uint32_t len)
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
void space_note_txn(struct osd *osd, const struct mx_txn *txn)
{
	for (uint32_t i = 0; i < txn->n_ops; i++)
		if (txn->ops[i].type == MX_TXN_REMOVE || txn->ops[i].type == MX_TXN_TRUNCATE)
			osd->fs_frees++;
}

bool space_failsafe(struct osd *osd)
{
	return osd->cfg->failsafe_full_ratio > 0 &&
	       space_used_ratio(osd) >= osd->cfg->failsafe_full_ratio;
}

void space_tick(struct osd *osd)
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

uint8_t osd_space(const struct osd *osd, int32_t id)
{
	const struct mx_osd_info *o = mx_map_osd(osd->map, id);

	return o ? o->space : MX_SPACE_OK;
}

/* Whether a request may add data (anything but removals and truncation). */
static bool op_adds_data(const struct mx_msg_osd_op *m)
{
	for (uint8_t i = 0; i < m->n_ops; i++)
		if (mx_op_is_write(m->ops[i].op) && m->ops[i].op != MX_OP_REMOVE &&
		    m->ops[i].op != MX_OP_RMXATTR && m->ops[i].op != MX_OP_TRUNCATE &&
		    m->ops[i].op != MX_OP_CMPXATTR)
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
	size_t staged;
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
		commit_group(osd); /* find_req sees logged entries */
		if (mx_store_pg_find_req(osd->store, key->pool, key->pg, m->client_id, tid, &v) ==
		    0) {
			/* Applied (and, the PG being active, on every complete
			 * member) before a failure; its reply was lost.  Its
			 * frame may still be syncing: durable first. */
			if (mx_store_unsynced(osd->store))
				commit_now(osd);
			reply_done(osd, s, tid, 0, v, m->n_ops, NULL);
			return;
		}
	}
	{
		const struct mx_pool *pool = mx_map_pool_by_id(osd->map, m->pool);

		if (pool && m->route_epoch < pool->tier_epoch) {
			/* Routed by a map from before the pool's last tier
			 * change, and not run (a run would have been found
			 * above): it never runs, and the client routes it
			 * again by the new map, sure that it had no effect
			 * (docs/cache-tiering.md, "Mode changes and fencing"). */
			reply_status(osd, s, tid, -EXDEV);
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
	if (n == -ECANCELED) {
		/* A guard did not hold: each op's result says which. */
		reply_done(osd, s, tid, mx_errno_to_wire(n), (struct mx_version){0, 0}, m->n_ops,
			   p->rvals);
		free(p);
		return;
	}
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
	staged = mx_store_pending_count(osd->store);
	r = mx_store_queue(osd->store, &txn);
	if (r == 0 && (m->flags & MX_OSD_OP_WRITEBACK))
		osd->wb_records += mx_store_pending_count(osd->store) - staged;
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
		encode_repop(&w, m, &txn, osd->map->epoch, pgs->interval);
		if (w.err) {
			/* Queued locally already: fail loudly rather than diverge. */
			mx_err("cannot encode a replicated write: out of memory");
			exit(1);
		}
		p->repop = mx_shared_new(&w);
		if (!p->repop) {
			mx_err("cannot encode a replicated write: out of memory");
			exit(1);
		}
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

/* A request of WRITE ops only: its plan does not depend on the object's
 * state, so it may be staged behind the object's staged or unsynced
 * transactions (the store orders them) instead of syncing them first,
 * writeback or not.  Everything else plans on committed state
 * (wait_synced). */
static bool plain_writes(const struct mx_msg_osd_op *m)
{
	for (uint8_t i = 0; i < m->n_ops; i++)
		if (m->ops[i].op != MX_OP_WRITE)
			return false;
	return true;
}

/* A FLUSH on an active PG we are primary of (docs/cache-modes.md): a pop
 * with no transaction.  Locally it is done at the next commit, which it
 * makes a sync; each other member of the acting set gets an OSD_SYNC on
 * the replication connection, behind every REPOP sent to it before, and
 * answers once its own store is synced.  The reply goes out when all of
 * that is done, or EAGAIN if the interval ends first (pg_fail_pops), and
 * the client sends the FLUSH again to the PG's primary. */
static void do_flush(struct osd *osd, struct session *s, uint64_t tid,
		     const struct mx_msg_osd_op *m, struct pgstate *pgs, int status)
{
	struct pop *p = mx_xcalloc(1, sizeof(*p));

	p->status = status; /* the answer once synced, unless worse */
	p->s = s;
	s->refs++;
	p->tid = tid;
	p->client_id = 0; /* never recorded for resends: a FLUSH is idempotent */
	p->n_ops = m->n_ops;
	p->refs = 1;
	p->pg = pgs;
	p->flush = true;
	mx_list_add_tail(&pgs->pops, &p->pg_link);
	mx_list_add_tail(&osd->commit_pops, &p->commit_link);
	osd->sync_wanted = true;
	for (int i = 1; i < pgs->n_acting; i++) {
		struct peer *pe;
		struct repop_out *ro;

		if (pgs->mem[i].state == M_NONE)
			continue;
		pe = peer_get(osd, pgs->acting[i]);
		ro = calloc(1, sizeof(*ro));
		if (!pe || !ro) {
			mx_err("out of memory sending a flush");
			exit(1);
		}
		ro->pop = p;
		ro->tid = ++osd->next_tid;
		ro->sync = true;
		p->refs++;
		p->waiting++;
		mx_list_add_tail(&pe->pending, &ro->link);
		if (pe->conn)
			repop_send(osd, pe, ro);
		else
			peer_kick(osd, pe);
	}
}

/* Client requests --------------------------------------------------------- */

/* Keep a copy of a message on list l, with a reference to its session. */
static struct held *hold_one(struct mx_list *l, struct session *s, uint16_t type,
			     uint64_t tid, uint64_t epoch, const uint8_t *payload, uint32_t len);

void hold(struct osd *osd, struct mx_list *l, struct session *s, uint16_t type,
	  uint64_t tid, uint64_t epoch, const uint8_t *payload, uint32_t len)
{
	(void)osd;
	(void)hold_one(l, s, type, tid, epoch, payload, len);
}

static struct held *hold_one(struct mx_list *l, struct session *s, uint16_t type,
			     uint64_t tid, uint64_t epoch, const uint8_t *payload, uint32_t len)
{
	struct held *h = mx_xcalloc(1, sizeof(*h));

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
	return h;
}

static uint64_t key_hash(const struct mx_objkey *k)
{
	return mx_hash64(k->name, k->name_len, (uint64_t)(uint32_t)k->pool << 32 | k->pg);
}

/*
 * A client request for an object that has a request waiting in sync_ops
 * waits behind it, whatever it is, so that one connection's requests for
 * one object keep their order.  Checked before anything else can hold the
 * request elsewhere (a PG's queue while it peers or scrubs).  True if
 * held.
 */
static bool wait_behind(struct osd *osd, struct session *s, uint64_t tid,
			const uint8_t *payload, uint32_t len, const struct mx_objkey *key)
{
	uint64_t kh;
	struct held *h;
	bool behind = false;

	if (osd->op_retry || mx_list_empty(&osd->sync_ops))
		return false;
	kh = key_hash(key);
	for (struct mx_list *pos = osd->sync_ops.next; pos != &osd->sync_ops && !behind;
	     pos = pos->next)
		behind = mx_list_entry(pos, struct held, link)->khash == kh;
	if (!behind)
		return false;
	h = hold_one(&osd->sync_ops, s, MX_MSG_OSD_OP, tid, 0, payload, len);
	h->ticket = mx_store_log_seq(osd->store);
	h->khash = kh;
	osd->ops_waited++;
	return true;
}

/*
 * Before a client request for key is served (docs/osd.md, "Reads of
 * unsynced writes").  A request that plans on the object's committed state
 * (a read, or a write other than plain WRITEs) while the object has frames
 * not yet applied waits in sync_ops for the worker's sync that makes them
 * durable, instead of syncing on the loop, which would stall every other
 * request for an fdatasync.  True if held.  A request on its next go from
 * sync_ops (op_retry) that must wait again is left where it is, at the
 * head, with the new ticket in again_ticket (run_synced_ops).
 */
static bool wait_synced(struct osd *osd, struct session *s, uint64_t tid,
			const uint8_t *payload, uint32_t len, const struct mx_objkey *key,
			bool plain)
{
	uint64_t ticket;
	struct held *h;

	if (plain || !mx_store_pending(osd->store, key))
		return false;
	if (osd->sync_inline) {
		commit_now(osd);
		return false;
	}
	/* What is staged for it goes into the log now; the worker's sync
	 * then covers it. */
	commit_group(osd);
	ticket = mx_store_log_seq(osd->store);
	if (mx_store_durable(osd->store, ticket)) {
		flush_if_pending(osd, key);
		return false;
	}
	if (osd->op_retry) {
		osd->op_again = true;
		osd->again_ticket = ticket;
		return true;
	}
	h = hold_one(&osd->sync_ops, s, MX_MSG_OSD_OP, tid, 0, payload, len);
	h->ticket = ticket;
	h->khash = key_hash(key);
	osd->ops_waited++;
	sync_kick(osd);
	return true;
}

/*
 * Our lease as a whole (docs/read-policies.md, "Leases"): until the
 * earliest grant among the peers we ping that are up in our map, D after
 * the PING each last answered with a map not newer than ours.  What a
 * replica that pings us may serve reads for, as our replica.
 */
uint64_t lease_left_ns(struct osd *osd)
{
	uint64_t now = mx_now_ns(), until = now + MX_READ_LEASE_NS;

	if (!osd->map || !osd->booted)
		return 0;
	for (uint32_t i = 0; i < osd->n_peers; i++) {
		const struct peer *p = osd->peers[i];
		const struct mx_osd_info *o;

		if (!p || !p->hb || !(o = mx_map_osd(osd->map, p->id)) || !o->up)
			continue;
		until = MX_MIN(until, p->grant_ns + MX_READ_LEASE_NS);
	}
	return until > now ? until - now : 0;
}

/* Does our state of the PG follow our map?  Only while the map history is
 * complete (pgs_update waits for it) and for the very acting set of our
 * map: until then pgs may be an ended interval's. */
static bool pg_follows_map(const struct osd *osd, const struct pgstate *pgs,
			   const int32_t *acting, int n)
{
	return osd->hist_ready && pgs->n_acting == n &&
	       memcmp(pgs->acting, acting, (size_t)n * sizeof(*acting)) == 0;
}

/* May we serve this read as a replica?  docs/read-policies.md, "Serving
 * a read on replica R". */
static bool replica_may_read(struct osd *osd, const struct mx_msg_osd_op *m,
			     const struct mx_pool *pool, const int32_t *acting, int n)
{
	struct pgstate *pgs = pg_find(osd, m->pool, m->pg);
	struct peer *p;
	bool member = false;

	/* A pgs that does not follow our map may still be R_ACTIVE in an
	 * interval that ended, though the map shows us a member under the
	 * same primary again, after an interval without us that acknowledged
	 * writes. */
	if (pool->read_policy == MX_READ_PRIMARY || !pgs || pgs->role != ROLE_REPLICA ||
	    pgs->state != R_ACTIVE || n <= 1 || !pg_follows_map(osd, pgs, acting, n))
		return false;
	for (int i = 1; i < n; i++)
		member |= acting[i] == osd->id;
	if (!member)
		return false;
	p = (uint32_t)acting[0] < osd->n_peers ? osd->peers[acting[0]] : NULL;
	return p && p->rlease_until_ns > mx_now_ns() && osd->map->epoch >= p->rlease_epoch;
}

void handle_op(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
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
	if (!mx_op_is_write(m.ops[0].op) && m.route_epoch < pool->tier_epoch) {
		/* Routed by a map from before the pool's last tier change:
		 * the client routes it again by the new map (docs/cache-
		 * tiering.md, "Mode changes and fencing").  Writes are
		 * refused so in do_writes, once known not to have run. */
		reply_status(osd, s, tid, -EXDEV);
		return;
	}
	key.pool = m.pool;
	key.pg = m.pg;
	key.name = m.name;
	key.name_len = m.name_len;
	if (wait_behind(osd, s, tid, payload, len, &key))
		return;
	n = mx_pg_acting_memo(&osd->acting, osd->pl, osd->map, pool, m.pg, acting, MX_MAX_SIZE);
	if (n > 0 && acting[0] != osd->id && (m.flags & MX_OSD_OP_REPLICA_READ)) {
		/* A read sent to us as a replica: served if our lease holds,
		 * else back to the primary (the client goes there at once). */
		if (!replica_may_read(osd, &m, pool, acting, n)) {
			reply_status(osd, s, tid, -ESTALE);
			return;
		}
		if (wait_synced(osd, s, tid, payload, len, &key, false))
			return;
		do_reads(osd, s, tid, &m, &key);
		return;
	}
	if (n <= 0 || acting[0] != osd->id) {
		reply_status(osd, s, tid, -ESTALE);
		return;
	}
	if (n < pool->min_size) {
		reply_status(osd, s, tid, -EAGAIN);
		return;
	}
	pgs = pg_get(osd, m.pool, m.pg);
	if (!pg_follows_map(osd, pgs, acting, n)) {
		/* Our PG state lags our map (a gap in the map history being
		 * filled), and may be an interval's that has ended: nothing is
		 * served from it. */
		reply_status(osd, s, tid, -EAGAIN);
		return;
	}
	if (mx_op_is_write(m.ops[0].op) && m.epoch < pgs->interval) {
		/* Sent under a map older than the PG's interval: a copy that
		 * the network held back across the change.  The client has
		 * sent the request again since, and that answer may have been
		 * an error, which leaves no log entry to recognise it by: this
		 * copy must not run now (docs/osd.md, "Late copies"). */
		reply_status(osd, s, tid, -ESTALE);
		return;
	}
	if (pgs->role != ROLE_PRIMARY || pgs->state != PG_ACTIVE) {
		/* Peering or recovering the primary's own copy: the op waits
		 * for activation (never served from a copy that may be stale). */
		hold(osd, &pgs->ops, s, MX_MSG_OSD_OP, tid, 0, payload, len);
		return;
	}
	if (m.ops[0].op == MX_OP_FLUSH) {
		int status = 0;

		if ((m.ops[0].flags & MX_OP_FLAG_SINCE) && m.ops[0].off < pgs->wb_lost) {
			/* It vouches for writes from before the interval in
			 * which peering found every copy that held them
			 * restarted after a host reboot (docs/cache-modes.md).
			 * It still syncs what there is, then says so. */
			mx_warn("pg %d.%u: a flush for writes from epoch %" PRIu64
				" on fails: writes before epoch %" PRIu64 " may be lost",
				pgs->pool, pgs->pg, m.ops[0].off, pgs->wb_lost);
			status = -MX_EWBLOST;
		}
		do_flush(osd, s, tid, &m, pgs, status);
		return;
	}
	if (pgs->scrub && mx_op_is_write(m.ops[0].op)) {
		/* Scrubbing: writes wait until the maps are compared and
		 * the repairs done (scrub_finish runs them). */
		hold(osd, &pgs->ops, s, MX_MSG_OSD_OP, tid, 0, payload, len);
		return;
	}
	if (wait_synced(osd, s, tid, payload, len, &key, plain_writes(&m)))
		return;
	if (mx_op_is_write(m.ops[0].op))
		do_writes(osd, s, tid, &m, &key, pgs);
	else
		do_reads(osd, s, tid, &m, &key);
}

int list_cb(void *arg, const struct mx_objkey *key, const struct mx_obj_stat *st)
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
	n = mx_pg_acting_memo(&osd->acting, osd->pl, osd->map, pool, m.pg, acting, MX_MAX_SIZE);
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

/* Connections to peers ------------------------------------------------------ */

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
void peer_kick(struct osd *osd, struct peer *p)
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
	if (osd->use_auth)
		mx_conn_auth_client(c, &osd->auth, MX_AUTH_MODE_TICKET);
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

/* The monitor session: ping it, and give it up (on_close moves to the
 * next monitor) when it has been silent for the grace, connected or still
 * connecting.  A monitor whose host is cut off never closes the
 * connection itself, and failure reports and beacons sent into it would be
 * lost while another monitor leads. */
static void mon_check(struct osd *osd)
{
	struct mx_wbuf w;

	if (!osd->mon || osd->stopping)
		return;
	switch (mx_monlive_tick(&osd->mon_live, mx_now_ns() / 1000000, osd->mon_connected)) {
	case MX_MONLIVE_PING:
		mx_wbuf_init(&w);
		(void)mx_conn_send(osd->mon, MX_MSG_PING, ++osd->next_tid, &w);
		break;
	case MX_MONLIVE_GIVE_UP:
		mx_warn("the monitor at %s has been silent for %u ms",
			mx_monlist_current(&osd->monl), MX_MON_GRACE_MS);
		mx_conn_close(osd->mon, -ETIMEDOUT);
		break;
	default:
		break;
	}
}

static void hb_tick(uv_timer_t *t)
{
	struct osd *osd = t->data;
	uint64_t now = mx_now_ns();
	uint64_t grace = (uint64_t)osd->hb_grace_ms * 1000000ull;

	mon_check(osd);
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
	/* A ticket with a third of its life left: ask for a new one. */
	if (osd->use_auth && osd->mon && osd->mon->sec == MX_SEC_ON &&
	    mx_auth_ticket_due(&osd->auth, mx_wall_ms()) && now - osd->renew_ns > 1000000000ull) {
		osd->renew_ns = now;
		(void)mx_authconn_renew(osd->mon);
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

/* Incoming connections ----------------------------------------------------- */

void dispatch(struct osd *osd, struct session *s, uint16_t type, uint64_t tid, uint8_t *payload,
	      uint32_t len)
{
	switch (type) {
	case MX_MSG_OSD_OP:
		handle_op(osd, s, tid, payload, len);
		return;
	case MX_MSG_OSD_REPOP:
		handle_repop(osd, s, tid, payload, len);
		return;
	case MX_MSG_OSD_SYNC:
		handle_sync(osd, s, tid, payload, len);
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
		struct mx_msg_pong pg = {.epoch = osd->map ? osd->map->epoch : 0,
					 .lease_ns = lease_left_ns(osd)};
		struct mx_wbuf w;

		mx_wbuf_init(&w);
		mx_enc_pong(&w, &pg);
		(void)session_send(s, MX_MSG_PONG, tid, &w);
		return;
	}
	default:
		mx_warn("%s: unknown message type %u", s->conn->peer, type);
		(void)mx_conn_send_error(s->conn, tid, -ENOTSUP, "unknown message type");
	}
}

/* May the peer of c send this?  (docs/auth.md, "Authorization") */
static bool osd_permitted(struct osd *osd, struct mx_conn *c, const struct mx_msg_hdr *h,
			  const uint8_t *payload, char *why, size_t sz)
{
	const struct mx_auth_entity *e;

	if (!osd->use_auth)
		return true;
	if (c->sec != MX_SEC_ON) {
		snprintf(why, sz, "authentication required");
		return false;
	}
	if (c->expires_ms && c->expires_ms <= mx_wall_ms()) {
		/* No error: the client sends it again on a new session, with
		 * its renewed ticket. */
		snprintf(why, sz, "the ticket of %s expired: authenticate again", c->entity);
		return false;
	}
	/* A ticket of a key removed or changed since it was issued. */
	e = osd->map ? mx_map_auth_find(osd->map, c->entity) : NULL;
	if (osd->map && (!e || e->generation != c->generation)) {
		snprintf(why, sz, "%s's key was %s: its ticket no longer counts", c->entity,
			 e ? "changed" : "removed");
		return false;
	}
	switch (h->type) {
	case MX_MSG_PING:
		return true;
	case MX_MSG_OSD_OP:
	case MX_MSG_OSD_LIST: {
		struct mx_msg_osd_op m;
		struct mx_msg_osd_list l;
		const struct mx_pool *pool;
		int32_t pool_id;
		bool write = false;

		if (c->caps.osd || c->caps.admin)
			return true;
		if (h->type == MX_MSG_OSD_OP) {
			if (mx_dec_osd_op(payload, h->len, &m) < 0) {
				snprintf(why, sz, "malformed request");
				return false;
			}
			pool_id = m.pool;
			for (int i = 0; i < m.n_ops; i++)
				write = write || mx_op_is_write(m.ops[i].op);
		} else {
			if (mx_dec_osd_list(payload, h->len, &l) < 0) {
				snprintf(why, sz, "malformed request");
				return false;
			}
			pool_id = l.pool;
		}
		pool = osd->map ? mx_map_pool_by_id(osd->map, pool_id) : NULL;
		/* An OSD may: its tiering agent flushes and evicts as a
		 * client, and an OSD's key moves every object anyway. */
		if (c->caps.osd || mx_caps_allow_pool(&c->caps, pool ? pool->name : NULL, write))
			return true;
		snprintf(why, sz, "permission denied: %s may not %s pool %s", c->entity,
			 write ? "write to" : "read", pool ? pool->name : "(unknown)");
		return false;
	}
	default:
		/* Replication, peering, recovery, scrub: OSDs (and scrub
		 * commands from administrators). */
		if (c->caps.osd || (c->caps.admin && h->type == MX_MSG_PG_SCRUB))
			return true;
		snprintf(why, sz, "permission denied: %s is not an OSD", c->entity);
		return false;
	}
}

static void on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, uint8_t *payload)
{
	char why[200];

	if (!osd_permitted(c->owner, c, h, payload, why, sizeof(why))) {
		mx_info("%s: %s", c->peer, why);
		if (strstr(why, "expired")) {
			mx_conn_close(c, -EKEYEXPIRED);
			return;
		}
		(void)mx_conn_send_error(c, h->tid, strstr(why, "denied") ? -EPERM : -EACCES, why);
		if (!strstr(why, "denied"))
			mx_conn_close_after_send(c, -EACCES);
		return;
	}
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
	if (osd->use_auth)
		mx_conn_auth_server(c, &osd->auth_srv);
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
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", osd->id);

	return mx_replace_file(osd->cfg->data_dir, "whoami", buf, (size_t)n, NULL, 0);
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
	{
		bool tiered = false;

		for (uint32_t i = 0; i < m->n_pools; i++)
			tiered |= m->pools[i].tier_of >= 0;
		mx_agent_want(osd->agent, tiered, osd->id);
	}
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

	mx_monlive_heard(&osd->mon_live, mx_now_ns() / 1000000);
	switch (h->type) {
	case MX_MSG_PONG:
		return;
	case MX_MSG_MON_OSD_BOOT_REPLY: {
		struct mx_msg_osd_boot_reply br;

		if (mx_dec_osd_boot_reply(payload, h->len, &br) < 0)
			break;
		osd->booting = false;
		if (br.status) {
			int e = mx_wire_to_errno(br.status);

			/* A leader change under way: boot again shortly. */
			if (e == -EAGAIN || e == -EBUSY || e == -ENOMEM) {
				mx_warn("boot not done (%s); trying again", br.message);
				mx_conn_close(c, 0);
				return;
			}
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
		mx_monlist_learn(&osd->monl, m);
		apply_map(osd, m);
		return;
	}
	case MX_MSG_MON_REDIRECT: {
		/* This monitor is not the leader: boot, beacons and reports go
		 * to the one it names (or to the next, if it names none). */
		struct mx_msg_mon_redirect rd;

		if (mx_dec_mon_redirect(payload, h->len, &rd) < 0)
			break;
		mx_info("%s", rd.message);
		osd->mon_delay_ms = mx_monlist_redirect(&osd->monl, rd.leader);
		mx_conn_close(c, 0);
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
	case MX_MSG_ERROR_REPLY: {
		struct mx_msg_error_reply er;

		if (mx_dec_error_reply(payload, h->len, &er) == 0) {
			/* "authentication required" and the like: say so. */
			mx_err("the monitor refused us: %s", er.message);
			return;
		}
		break;
	}
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
	if (osd->mon_delay_ms) {
		uv_timer_start(&osd->mon_timer, mon_retry_cb, osd->mon_delay_ms, 0);
		osd->mon_delay_ms = 0;
		return;
	}
	mx_warn("monitor connection to %s lost (%s); trying the next",
		mx_monlist_current(&osd->monl), err ? uv_strerror(err) : "closed");
	mx_monlist_next(&osd->monl);
	uv_timer_start(&osd->mon_timer, mon_retry_cb, MON_RETRY_MS, 0);
}

static void mon_on_connect(struct mx_conn *c)
{
	struct osd *osd = c->owner;
	const struct mx_osd_info *me = osd->map ? mx_map_osd(osd->map, osd->id) : NULL;

	osd->mon_connected = true;
	mx_monlive_heard(&osd->mon_live, mx_now_ns() / 1000000);
	/* Back with a monitor (the leader changed, or the connection broke)
	 * while the map shows us up here: no new boot (it would make every
	 * PG of ours start a new interval), only the subscription.  A map
	 * that marks us down makes us boot (apply_map). */
	if (osd->booted && me && me->up && strcmp(me->addr, osd->addr) == 0) {
		subscribe(osd);
		return;
	}
	send_boot(osd);
}

static const struct mx_conn_ops mon_ops = {
	.on_msg = mon_on_msg,
	.on_close = mon_on_close,
	.on_connect = mon_on_connect,
};

static void mon_connect(struct osd *osd)
{
	const char *addr = mx_monlist_current(&osd->monl);
	int r = mx_conn_connect(osd->loop, addr, &mon_ops, osd, &osd->mon);

	mx_monlive_start(&osd->mon_live, mx_now_ns() / 1000000);
	if (r == 0 && osd->use_auth)
		mx_conn_auth_client(osd->mon, &osd->auth, MX_AUTH_MODE_KEY);
	if (r < 0) {
		osd->mon = NULL;
		mx_warn("cannot connect to the monitor at %s: %s", addr, uv_strerror(r));
		mx_monlist_next(&osd->monl);
		uv_timer_start(&osd->mon_timer, mon_retry_cb, MON_RETRY_MS, 0);
	}
}

/* Start-up and shutdown ---------------------------------------------------- */

static const uint8_t *osd_secret(void *arg)
{
	struct osd *osd = arg;

	return osd->auth.have_secret ? osd->auth.secret : NULL;
}

/* The key file: --keyfile, else DIR/keyring if there. */
static int auth_init(struct osd *osd)
{
	char path[4200];
	const char *kf = osd->cfg->keyfile;
	int r;

	if (!kf) {
		snprintf(path, sizeof(path), "%s/keyring", osd->cfg->data_dir);
		if (access(path, F_OK) != 0)
			return 0;
		kf = path;
	}
	r = mx_keyfile_read(kf, osd->auth.entity, osd->auth.key);
	snprintf(osd->keyfile, sizeof(osd->keyfile), "%s", r == 0 ? kf : "");
	if (r < 0)
		return mx_log_errno(r, "cannot use the key file %s%s", kf,
				    r == -EPERM ? " (others may read it: chmod 600)" : "");
	if (strncmp(osd->auth.entity, "osd.", 4) != 0)
		return mx_log_errno(-EINVAL, "%s holds the key of %s, not of an OSD", kf,
				    osd->auth.entity);
	{
		int32_t kid = (int32_t)strtol(osd->auth.entity + 4, NULL, 10);

		/* The key names the OSD: a new one takes that id. */
		if (osd->id >= 0 && osd->id != kid)
			return mx_log_errno(-EINVAL, "%s holds the key of %s, but this is osd.%d", kf,
					    osd->auth.entity, osd->id);
		osd->id = kid;
	}
	osd->use_auth = true;
	osd->auth_srv.required = true;
	osd->auth_srv.arg = osd;
	osd->auth_srv.secret = osd_secret;
	mx_info("authenticating as %s", osd->auth.entity);
	return 0;
}

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

struct max_les_ctx {
	struct mx_store *store;
	uint64_t les;
};

static int max_les_cb(void *arg, int32_t pool, uint32_t pg)
{
	struct max_les_ctx *x = arg;
	struct mx_pg_info info;

	if (mx_store_pg_info_get(x->store, pool, pg, &info) == 0)
		x->les = MX_MAX(x->les, info.les);
	return 0;
}

/* The boot mark (docs/cache-modes.md, "A power cut of every OSD that holds
 * a write"): after an unclean stop under another kernel boot, every copy
 * this store holds may lack its unsynced tail until it peers again. */
static int boot_mark(struct osd *osd)
{
	struct max_les_ctx x = {.store = osd->store};
	int r = mx_store_list_pgs(osd->store, max_les_cb, &x);

	if (r < 0)
		return r;
	r = mx_bootmark_start(osd->cfg->data_dir, MX_BOOT_ID_PATH, x.les, &osd->boot);
	if (r < 0)
		return r;
	if (osd->boot.damaged)
		mx_warn("the boot mark in %s was damaged: written again", osd->cfg->data_dir);
	if (osd->boot.rebooted)
		mx_warn("the host restarted since this OSD last ran, and the OSD had not stopped "
			"cleanly (or no mark says so): its unsynced writes may be lost; copies of "
			"PGs that went active before epoch %" PRIu64 " are suspect until they peer "
			"again",
			osd->boot.suspect_below);
	else if (osd->boot.suspect_below)
		mx_info("copies of PGs that went active before epoch %" PRIu64 " are suspect "
			"(an earlier restart after a host reboot)",
			osd->boot.suspect_below);
	return 0;
}

int mx_osd_run(const struct mx_osd_config *cfg)
{
	struct osd *osd = &g_osd;
	int r;

	memset(osd, 0, sizeof(*osd));
	osd->cfg = cfg;
	osd->loop = uv_default_loop();
	osd->sync_inline = cfg->sync_inline;
	mx_list_init(&osd->commit_pops);
	mx_list_init(&osd->commit_rwaits);
	mx_list_init(&osd->sync_pops);
	mx_list_init(&osd->sync_rwaits);
	mx_list_init(&osd->deferred);
	mx_list_init(&osd->sync_ops);
	osd->dedup = mx_xcalloc(DEDUP_SLOTS, sizeof(*osd->dedup));
	osd->next_tid = 1;

	r = mx_mkdir_p(cfg->data_dir, 0700);
	if (r < 0)
		return mx_log_errno(r, "cannot create %s", cfg->data_dir);
	{
		long holder;

		osd->lock_fd = mx_lock_dir(cfg->data_dir, &holder);
		if (osd->lock_fd == -EBUSY && holder > 0)
			return mx_log_errno(-EBUSY, "%s is in use by process %ld, another OSD",
					    cfg->data_dir, holder);
		if (osd->lock_fd == -EBUSY)
			return mx_log_errno(-EBUSY, "%s is in use by another OSD", cfg->data_dir);
		if (osd->lock_fd < 0)
			return mx_log_errno(osd->lock_fd, "cannot lock %s", cfg->data_dir);
	}
	r = load_identity(osd);
	if (r < 0)
		return mx_log_errno(r, "cannot read the OSD identity in %s", cfg->data_dir);
	snprintf(osd->store_dir, sizeof(osd->store_dir), "%s/store", cfg->data_dir);
	{
		struct mx_store_opts so = {.pg_log_max = cfg->pg_log_max,
					   .wal_checkpoint_bytes = (uint64_t)cfg->wal_mib << 20,
					   .clone_min = cfg->no_clone ? UINT64_MAX : 0};

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
	r = boot_mark(osd);
	if (r < 0)
		return mx_log_errno(r, "cannot keep the boot mark in %s", cfg->data_dir);
	r = mx_listen(osd->loop, &osd->server, cfg->addr, on_connection, osd->addr,
		      sizeof(osd->addr));
	if (r < 0)
		return mx_log_errno(r, "cannot listen on %s", cfg->addr);
	osd->server.data = osd;
	uv_check_init(osd->loop, &osd->check);
	osd->check.data = osd;
	uv_check_start(&osd->check, on_check);
	r = mx_netbatch_start(osd->loop, &osd->batch);
	if (r < 0)
		return mx_log_errno(r, "cannot start the output batch");
	uv_timer_init(osd->loop, &osd->mon_timer);
	osd->mon_timer.data = osd;
	if (mx_monlist_parse(&osd->monl, cfg->mon_addr) < 0)
		return mx_log_errno(-EINVAL, "bad monitor address list '%s'", cfg->mon_addr);
	r = auth_init(osd);
	if (r < 0)
		return r;
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
	uv_timer_init(osd->loop, &osd->wb_timer);
	osd->wb_timer.data = osd;
	uv_timer_start(&osd->wb_timer, wb_tick, WB_SYNC_MS, WB_SYNC_MS);
	uv_timer_init(osd->loop, &osd->stats_timer);
	osd->stats_timer.data = osd;
	uv_timer_start(&osd->stats_timer, stats_tick, STATS_TICK_MS, STATS_TICK_MS);
	uv_signal_init(osd->loop, &osd->sigterm);
	osd->sigterm.data = osd;
	uv_signal_start(&osd->sigterm, on_signal, SIGTERM);
	uv_signal_init(osd->loop, &osd->sigint);
	osd->sigint.data = osd;
	uv_signal_start(&osd->sigint, on_signal, SIGINT);
	{
		struct mx_agent_config ac = {.mons = cfg->mon_addr,
					     .keyfile = osd->keyfile[0] ? osd->keyfile : NULL,
					     .interval_ms = cfg->agent_interval_ms};

		r = mx_agent_start(&ac, &osd->agent);
		if (r < 0)
			return mx_log_errno(r, "cannot start the tiering agent");
	}
	mon_connect(osd);

	uv_run(osd->loop, UV_RUN_DEFAULT); /* until a sync on a worker ends too */
	mx_netbatch_end(&osd->batch);

	mx_agent_stop(osd->agent);
	commit_now(osd);
	{
		struct mx_store_stats st;

		mx_store_get_stats(osd->store, &st);
		mx_info("object store closing: %" PRIu64 " commits, %" PRIu64
			" unsynced, %" PRIu64 " log syncs, %" PRIu64 " checkpoints, %"
			PRIu64 " MiB cloned%s%s%s",
			st.commits, st.unsynced_commits, st.syncs, st.checkpoints,
			st.cloned_bytes >> 20,
			st.clone_refused ? " (the file system cannot clone: " : "",
			st.clone_refused ? strerror(st.clone_refused) : "",
			st.clone_refused ? ")" : "");
		mx_info("%" PRIu64 " requests waited for a sync of their object's frames",
			osd->ops_waited);
	}
	/* Everything synced: nothing for a reboot to take (if the sync
	 * fails, the stop is not a clean one). */
	r = mx_store_sync(osd->store);
	mx_store_close(osd->store);
	if (r == 0)
		r = mx_bootmark_clean(cfg->data_dir, MX_BOOT_ID_PATH, &osd->boot);
	if (r < 0)
		mx_warn("the stop is not marked clean in %s: %s", cfg->data_dir, strerror(-r));
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
	while (!mx_list_empty(&osd->sync_ops)) {
		struct held *h = mx_list_entry(osd->sync_ops.next, struct held, link);

		mx_list_del(&h->link);
		session_put(h->s);
		free(h->payload);
		free(h);
	}
	free(osd->dedup);
	(void)uv_loop_close(osd->loop);
	(void)close(osd->lock_fd);
	mx_info("stopped");
	return 0;
}

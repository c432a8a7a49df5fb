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
#include "osd_int.h"

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

void scrub_free(struct scrub *sc)
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
void scrub_abort(struct osd *osd, struct pgstate *pgs)
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
void handle_pg_scrub(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
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
	n = mx_pg_acting_memo(&osd->acting, osd->pl, osd->map, pool, m.pg, acting, MX_MAX_SIZE);
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
void handle_scrub_map(struct osd *osd, struct session *s, uint64_t tid, uint8_t *payload,
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

void on_scrub_map_reply(struct osd *osd, struct peer *p, uint64_t tid, uint8_t *payload,
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
bool scrub_on_pull_answer(struct osd *osd, struct peer *p, uint64_t tid, uint8_t *payload,
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
bool scrub_on_push_reply(struct osd *osd, struct peer *p, uint64_t tid, uint8_t *payload,
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
void scrub_tick(struct osd *osd, struct pgstate *pgs)
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
void scrub_schedule(struct osd *osd)
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

bool scrub_is_deep(const struct scrub *sc)
{
	return sc->flags & MX_SCRUB_DEEP;
}

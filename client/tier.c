/*
 * Cache tiering, the client's part (docs/cache-tiering.md, "Who does
 * what"): a request to a base pool whose cache pool is in mode writeback
 * or readonly, or draining in mode none, runs here, on one of a few worker threads of the cluster
 * handle, as straight-line synchronous steps: guarded requests on raw
 * handles of the two pools, then the caller's answer.  The OSDs keep no
 * tiering state; every step is a guarded request, so two clients (and
 * the OSDs' agents, osd/agent.c) acting on one object cannot break an
 * invariant.  Every step is fenced at the epoch the request was routed by
 * ("Mode changes and fencing"): one that meets the fence has not run, and
 * run() routes the request again.
 *
 * THE STATE OF AN OBJECT IN THE CACHE POOL (attributes under "_tier.")
 *
 *   absent      no cache object: the base is authoritative
 *   stub        no _tier.p: the base is authoritative; _tier.src = the
 *               newest base version recorded (eviction, readonly write)
 *   claimed     _tier.p = "promoting:N": a promotion in steps by N
 *   present     _tier.p = "1": the authority for its object; dirty when
 *               _tier.d is set (writeback writes), and removed when
 *               _tier.rm is set (it stands for "no such object")
 *
 * Transitions made here:
 *   absent/stub --(promote: one request, or claim, copy, finish)--> present
 *   absent/stub --(promote of an object the base lacks)--> present, removed
 *   claimed     --(abandon, or another's takeover after
 *                  PROMOTE_TIMEOUT_NS)--> stub
 *   present     --(wb_write)--> present, dirty (removed if it removes)
 *   any         --(ro_mark, before a readonly base write)--> stub, one
 *                  more writer in _tier.w
 *   stub        --(ro_finish, after it)--> one writer fewer, _tier.src = B
 *   present     --(draining: nothing)--> only the agents' flush and evict
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier.h"
#include "buf.h"
#include "hitset.h"
#include "map.h"
#include "msg.h"
#include "stood.h"
#include "store.h"
#include "util.h"

#define TIER_WORKERS 4
#define TIER_PREFIX MX_TIER_PREFIX
#define A_P MX_TIER_P
#define A_SRC MX_TIER_SRC
#define A_D MX_TIER_D
#define A_RM MX_TIER_RM
#define A_W MX_TIER_W

#define PROMOTE_CHUNK (4u << 20)       /* bytes per copy request */
#define PROMOTE_TIMEOUT_NS (30ull * 1000000000ull) /* a claim's takeover */
/* A tenth of stub_grace_s (one hour): a sequence whose base read is older
 * is abandoned (invariant 6). */
#define BASE_READ_MAX_NS (360ull * 1000000000ull)
#define JOB_DEADLINE_NS (120ull * 1000000000ull)
/* A writer's mark that has stood unchanged this long is a dead writer's:
 * a request of a job is never sent after the job's deadline, and this
 * leaves half a minute for one to arrive. */
#define MARK_TIMEOUT_NS (JOB_DEADLINE_NS + 30ull * 1000000000ull)

struct job {
	struct job *next;
	struct mx_tier_route rt;
	struct cop *op;
};

struct mx_tier {
	mixsan_cluster_t *cl;
	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t cond;
	struct job *head, **tail; /* queued requests */
	bool stopping;
	pthread_t threads[TIER_WORKERS];
	unsigned n_threads;
	struct mx_hitsets *hits;
	uint64_t nonce;
	struct mx_stood stood; /* claims and marks seen in the way */
};

/* One request as a worker runs it. */
struct ctx {
	struct mx_tier *t;
	struct mx_tier_route rt;
	struct cop *op;  /* NULL once answered */
	char oid[MX_OBJ_NAME_MAX + 1]; /* a copy: the promotion after a
					  read's answer outlives op */
	struct mx_osd_op ops[MX_MSG_MAX_OPS]; /* the caller's, names in op */
	unsigned n;
	mixsan_pool_t *base, *cache; /* raw handles, fenced at rt.epoch */
	uint64_t deadline_ns;
	bool restart; /* a step met the fence unanswered: route again */
};

/* Answer the caller, unless a step met the fence (-ESTALE): then the
 * request has had no effect yet and run() routes it again. */
static void reply(struct ctx *x, int err, const struct mx_client_read_result *res,
		  const struct mx_client_version *ver, int failed)
{
	if (!x->op)
		return;
	if (err == -ESTALE) {
		x->restart = true;
		return;
	}
	mx_cop_answer(x->op, err, res, ver, failed);
	x->op = NULL;
}

/* Ops --------------------------------------------------------------------- */

static bool tier_name(const char *name)
{
	return name && strncmp(name, TIER_PREFIX, strlen(TIER_PREFIX)) == 0;
}

/* A GETXATTR result that holds exactly s. */
static bool attr_is(const struct mx_client_op_result *o, const char *s)
{
	size_t l = strlen(s);

	return o->rval == 0 && o->len == l && memcmp(o->data, s, l) == 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static unsigned backoff(unsigned attempt)
{
	unsigned d = 2u << (attempt < 7 ? attempt : 7);

	return d > 200 ? 200 : d;
}

static void nonce(struct mx_tier *t, char *buf, size_t sz)
{
	uint64_t k;

	pthread_mutex_lock(&t->lock);
	k = ++t->nonce;
	pthread_mutex_unlock(&t->lock);
	snprintf(buf, sz, "%016llx.%llx.%llx", (unsigned long long)mx_client_id(t->cl),
		 (unsigned long long)mx_now_ns(), (unsigned long long)k);
}

/* Count a miss of x's object in the hit sets; true if it is now to be
 * promoted ("Promotion by recency and frequency"). */
static bool hit_miss(struct ctx *x)
{
	unsigned n;

	pthread_mutex_lock(&x->t->lock);
	n = mx_hitsets_miss(x->t->hits, x->rt.base, x->oid, x->rt.period_s, x->rt.min_hits,
			    mx_now_ns() / 1000000000ull);
	pthread_mutex_unlock(&x->t->lock);
	return n >= x->rt.min_hits;
}

/* Attribute lists ---------------------------------------------------------- */

struct xlist {
	unsigned n;
	struct mx_wbuf w;
	/* for collecting (promotion) */
	char (*names)[MX_XATTR_NAME_MAX + 1]; /* From malloc() */
	const void **values;                  /* into the LISTXATTRS result */
	uint32_t *lens;                       /* From malloc() */
	unsigned cap;
};

static int count_cb(void *arg, const char *name, const void *v, size_t len)
{
	struct xlist *l = arg;

	(void)v;
	(void)len;
	if (!tier_name(name))
		l->n++;
	return 0;
}

static int put_cb(void *arg, const char *name, const void *v, size_t len)
{
	struct xlist *l = arg;

	if (!tier_name(name)) {
		mx_put_str(&l->w, name);
		mx_put_blob(&l->w, v, (uint32_t)len);
	}
	return 0;
}

/* Take the tier's attributes out of every LISTXATTRS result of res. */
static int hide_tier_attrs(const struct mx_osd_op *ops, struct mx_client_read_result *res)
{
	for (unsigned i = 0; i < res->n; i++) {
		struct mx_client_op_result *o = &res->ops[i];
		struct xlist l = {0};

		if (ops[i].op != MX_OP_LISTXATTRS || o->rval < 0)
			continue;
		if (mx_client_xattrs_walk(o->data, o->len, count_cb, &l) < 0)
			return -EBADMSG;
		mx_wbuf_init(&l.w);
		mx_put_u32(&l.w, l.n);
		(void)mx_client_xattrs_walk(o->data, o->len, put_cb, &l);
		if (l.w.err) {
			mx_wbuf_free(&l.w);
			return -ENOMEM;
		}
		free(o->data);
		o->data = l.w.data; /* taken over */
		o->len = (uint32_t)l.w.len;
	}
	return 0;
}

static int collect_cb(void *arg, const char *name, const void *v, size_t len)
{
	struct xlist *l = arg;

	if (tier_name(name))
		return 0;
	if (l->n == l->cap) {
		unsigned cap = l->cap ? 2 * l->cap : 16;
		void *a = realloc(l->names, cap * sizeof(*l->names));

		if (!a)
			return -ENOMEM;
		l->names = a;
		a = realloc(l->values, cap * sizeof(*l->values));
		if (!a)
			return -ENOMEM;
		l->values = a;
		a = realloc(l->lens, cap * sizeof(*l->lens));
		if (!a)
			return -ENOMEM;
		l->lens = a;
		l->cap = cap;
	}
	snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
	l->values[l->n] = v;
	l->lens[l->n] = (uint32_t)len;
	l->n++;
	return 0;
}

static void xlist_free(struct xlist *l)
{
	free(l->names);
	free(l->values);
	free(l->lens);
}

/* Promotion ---------------------------------------------------------------- */

/* Leave a claimed copy as a stub again (our claim, or another's that
 * timed out): emptied, _tier.src kept. */
static int unclaim(struct ctx *x, const char *claim, const uint8_t *src, uint32_t src_len)
{
	struct mx_osd_op q[4];
	unsigned k = 0;

	q[k++] = mx_op_guard(MX_CMP_EQ, A_P, claim, (uint32_t)strlen(claim));
	q[k++] = mx_op(MX_OP_REMOVE, NULL);
	q[k++] = mx_op(MX_OP_CREATE, NULL);
	if (src_len)
		q[k++] = mx_op_setx(A_SRC, src, src_len);
	return mx_client_write_ops(x->cache, x->oid, q, k, NULL);
}

/* The next value of our claim: "promoting:NONCE:STEP".  Each step of a
 * promotion moves it on, so a waiter's takeover clock restarts while the
 * promotion makes progress. */
static void claim_next(char *claim, size_t sz, const char *base, unsigned step)
{
	snprintf(claim, sz, "%s:%u", base, step);
}

/* Copy the rest of a large object under our claim (*claim, moved on at
 * each step): data after the first read (the base still at version bv),
 * then the attributes.  0, or -EAGAIN when the claim was lost or the base
 * moved. */
static int promote_steps(struct ctx *x, char *claim, size_t claim_sz, const char *cbase,
			 const uint8_t *bbe, const struct mx_client_version *bv, uint64_t size,
			 uint64_t have, const struct xlist *attrs, uint64_t t0)
{
	struct mx_osd_op q[MX_MSG_MAX_OPS];
	char next[96];
	unsigned step = 0;
	int r;

	for (uint64_t off = have; off < size; off += PROMOTE_CHUNK) {
		struct mx_osd_op rd[2] = {mx_op(MX_OP_STAT, NULL), mx_op(MX_OP_READ, NULL)};
		struct mx_client_read_result res;

		rd[1].off = off;
		rd[1].len = PROMOTE_CHUNK;
		r = mx_client_read_ops(x->base, x->oid, rd, 2, &res);
		if (r < 0)
			return r == -ENOENT ? -EAGAIN : r;
		if (res.ver.epoch != bv->epoch || res.ver.seq != bv->seq ||
		    mx_now_ns() - t0 > BASE_READ_MAX_NS) {
			mx_client_read_result_free(&res);
			return -EAGAIN; /* the base moved on: start again */
		}
		claim_next(next, sizeof(next), cbase, ++step);
		q[0] = mx_op_guard(MX_CMP_EQ, A_P, claim, (uint32_t)strlen(claim));
		q[1] = mx_op(MX_OP_WRITE, NULL);
		q[1].off = off;
		q[1].data = res.ops[1].data;
		q[1].data_len = res.ops[1].len;
		q[2] = mx_op_setx(A_P, next, (uint32_t)strlen(next));
		r = mx_client_write_ops(x->cache, x->oid, q, 3, NULL);
		mx_client_read_result_free(&res);
		if (r < 0)
			return r == -ECANCELED ? -EAGAIN : r;
		snprintf(claim, claim_sz, "%s", next);
	}
	for (unsigned i = 0; i < attrs->n;) {
		unsigned k = 0;

		claim_next(next, sizeof(next), cbase, ++step);
		q[k++] = mx_op_guard(MX_CMP_EQ, A_P, claim, (uint32_t)strlen(claim));
		q[k++] = mx_op_setx(A_P, next, (uint32_t)strlen(next));
		while (i < attrs->n && k < MX_MSG_MAX_OPS) {
			q[k++] = mx_op_setx(attrs->names[i], attrs->values[i], attrs->lens[i]);
			i++;
		}
		r = mx_client_write_ops(x->cache, x->oid, q, k, NULL);
		if (r < 0)
			return r == -ECANCELED ? -EAGAIN : r;
		snprintf(claim, claim_sz, "%s", next);
	}
	if (mx_now_ns() - t0 > BASE_READ_MAX_NS)
		return -EAGAIN;
	q[0] = mx_op_guard(MX_CMP_EQ, A_P, claim, (uint32_t)strlen(claim));
	q[1] = mx_op_setx(A_P, "1", 1);
	q[2] = mx_op_setx(A_SRC, bbe, 16);
	r = mx_client_write_ops(x->cache, x->oid, q, 3, NULL);
	return r == -ECANCELED ? -EAGAIN : r;
}

/* Whether something in x's object's way (another's claim, or readonly
 * writers' mark: seen, as read) has stood unchanged for timeout_ns by this
 * handle's clock, over every request that met it.  The first sighting of
 * a value starts the clock (a collision in the table starts it again).
 * The clock is read under the lock: a promotion runs on after its read's
 * answer, so two workers may meet the same value at once, and a reading
 * taken before the other's first sighting would pass for a dead writer's
 * (stood.h). */
static bool stood(struct ctx *x, const char *seen, uint64_t timeout_ns)
{
	struct mx_tier *t = x->t;
	uint64_t key = mx_hash64(seen, strlen(seen),
				 mx_hash64(x->oid, strlen(x->oid), (uint64_t)(uint32_t)x->rt.base)) |
		       1;
	bool r;

	pthread_mutex_lock(&t->lock);
	r = mx_stood(&t->stood, key, mx_now_ns(), timeout_ns);
	pthread_mutex_unlock(&t->lock);
	return r;
}

/*
 * Make x's object present in the cache ("Promote"): read the base (data,
 * attributes, version B) and install it guarded on "_tier.p absent" and
 * "_tier.src <= B" (invariant 4), in one request when it fits, else under
 * a claim.  An object the base lacks becomes a present, removed copy.
 * Returns 0 when the object is present (by us or another), -EAGAIN to try
 * again at once, -EBUSY when another's claim is in the way (try later), or
 * an error.
 */
static int promote(struct ctx *x)
{
	struct mx_osd_op pr[3] = {{.op = MX_OP_GETXATTR, .xname = A_P},
				  {.op = MX_OP_GETXATTR, .xname = A_SRC},
				  {.op = MX_OP_GETXATTR, .xname = A_W}};
	/* Readonly: no install while writers are between their mark and
	 * their finish ("Intent markers"). */
	const bool ro = x->rt.mode == MX_CACHE_READONLY;
	struct mx_osd_op rd[3] = {mx_op(MX_OP_STAT, NULL), mx_op(MX_OP_LISTXATTRS, NULL),
				  mx_op(MX_OP_READ, NULL)};
	struct mx_osd_op q[MX_MSG_MAX_OPS];
	struct mx_client_read_result cres, bres;
	struct xlist attrs = {0};
	struct mx_osd_stat st;
	uint8_t src[16], bbe[16];
	uint32_t src_len = 0;
	uint64_t t0;
	unsigned k = 0;
	int r;

	/* The cache's state. */
	r = mx_client_read_ops(x->cache, x->oid, pr, 3, &cres);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0) {
		char seen[96];

		if (attr_is(&cres.ops[0], "1")) {
			mx_client_read_result_free(&cres);
			return 0;
		}
		if (cres.ops[1].rval == 0 && cres.ops[1].len == 16) {
			memcpy(src, cres.ops[1].data, 16);
			src_len = 16;
		}
		if (cres.ops[0].rval == 0) {
			/* Claimed by a promotion in steps: wait, or take it
			 * over once the same claim has stood too long. */
			snprintf(seen, sizeof(seen), "%.*s", (int)cres.ops[0].len,
				 (const char *)cres.ops[0].data);
			mx_client_read_result_free(&cres);
			if (!stood(x, seen, PROMOTE_TIMEOUT_NS))
				return -EBUSY;
			r = unclaim(x, seen, src, src_len);
			return r == 0 || r == -ECANCELED ? -EAGAIN : r;
		}
		if (ro && cres.ops[2].rval == 0) {
			/* Writers' mark: wait, or clear a dead writer's. */
			struct mx_osd_op cq[2] = {
				mx_op_guard(MX_CMP_EQ, A_W, cres.ops[2].data, cres.ops[2].len),
				{.op = MX_OP_RMXATTR, .xname = A_W}};

			snprintf(seen, sizeof(seen), "w:%.*s", (int)cres.ops[2].len,
				 (const char *)cres.ops[2].data);
			if (!stood(x, seen, MARK_TIMEOUT_NS)) {
				mx_client_read_result_free(&cres);
				return -EBUSY;
			}
			r = mx_client_write_ops(x->cache, x->oid, cq, 2, NULL);
			mx_client_read_result_free(&cres);
			return r == 0 || r == -ECANCELED ? -EAGAIN : r;
		}
		mx_client_read_result_free(&cres);
	}

	/* The base's content and version B. */
	rd[2].len = PROMOTE_CHUNK;
	t0 = mx_now_ns();
	r = mx_client_read_ops(x->base, x->oid, rd, 3, &bres);
	if (r == -ENOENT) {
		/* Absent in the base: a present copy that says so, guarded on
		 * the cache's state as read (invariant 5). */
		q[k++] = mx_op_guard(MX_CMP_EQ, A_P, "", 0);
		q[k++] = mx_op_guard(MX_CMP_EQ, A_SRC, src, src_len);
		if (ro)
			q[k++] = mx_op_guard(MX_CMP_EQ, A_W, "", 0);
		q[k++] = mx_op(MX_OP_CREATE, NULL);
		q[k++] = mx_op_setx(A_P, "1", 1);
		q[k++] = mx_op_setx(A_RM, "1", 1);
		r = mx_client_write_ops(x->cache, x->oid, q, k, NULL);
		return r == -ECANCELED ? -EAGAIN : r;
	}
	if (r < 0)
		return r;
	mx_client_version_be(&bres.ver, bbe);
	if (bres.ops[0].rval < 0 || bres.ops[1].rval < 0 || bres.ops[2].rval < 0 ||
	    mx_osd_stat_decode(bres.ops[0].data, bres.ops[0].len, &st) < 0) {
		mx_client_read_result_free(&bres);
		return -EIO;
	}
	r = mx_client_xattrs_walk(bres.ops[1].data, bres.ops[1].len, collect_cb, &attrs);
	if (r < 0)
		goto out;
	if (st.size <= bres.ops[2].len && attrs.n + 6 <= MX_MSG_MAX_OPS) {
		/* It fits one request. */
		q[k++] = mx_op_guard(MX_CMP_EQ, A_P, "", 0);
		q[k++] = mx_op_guard(MX_CMP_LE, A_SRC, bbe, 16);
		if (ro)
			q[k++] = mx_op_guard(MX_CMP_EQ, A_W, "", 0);
		q[k] = mx_op(MX_OP_WRITEFULL, NULL);
		q[k].data = bres.ops[2].data;
		q[k++].data_len = bres.ops[2].len;
		for (unsigned i = 0; i < attrs.n; i++)
			q[k++] = mx_op_setx(attrs.names[i], attrs.values[i], attrs.lens[i]);
		q[k++] = mx_op_setx(A_P, "1", 1);
		q[k++] = mx_op_setx(A_SRC, bbe, 16);
		r = mx_now_ns() - t0 > BASE_READ_MAX_NS
			    ? -EAGAIN
			    : mx_client_write_ops(x->cache, x->oid, q, k, NULL);
		if (r == -ECANCELED)
			r = -EAGAIN;
	} else {
		/* In steps: claim, copy, finish. */
		char cbase[64] = "promoting:", claim[96];

		nonce(x->t, cbase + strlen(cbase), sizeof(cbase) - strlen(cbase));
		claim_next(claim, sizeof(claim), cbase, 0);
		q[k++] = mx_op_guard(MX_CMP_EQ, A_P, "", 0);
		q[k++] = mx_op_guard(MX_CMP_LE, A_SRC, bbe, 16);
		if (ro)
			q[k++] = mx_op_guard(MX_CMP_EQ, A_W, "", 0);
		q[k] = mx_op(MX_OP_WRITEFULL, NULL);
		q[k].data = bres.ops[2].data;
		q[k++].data_len = bres.ops[2].len;
		q[k++] = mx_op_setx(A_P, claim, (uint32_t)strlen(claim));
		q[k++] = mx_op_setx(A_SRC, bbe, 16);
		r = mx_client_write_ops(x->cache, x->oid, q, k, NULL);
		if (r == -ECANCELED) {
			r = -EAGAIN;
			goto out;
		}
		if (r < 0)
			goto out;
		r = promote_steps(x, claim, sizeof(claim), cbase, bbe, &bres.ver, st.size,
				  bres.ops[2].len, &attrs, t0);
		if (r < 0)
			(void)unclaim(x, claim, bbe, 16);
	}
out:
	xlist_free(&attrs);
	mx_client_read_result_free(&bres);
	return r;
}

/* Reads -------------------------------------------------------------------- */

/* A read request (READ, STAT, GETXATTR, LISTXATTRS): from a present copy,
 * probed in the same request; else from the base, counting a miss and
 * promoting the object if it qualifies. */
static void tier_read(struct ctx *x)
{
	struct mx_osd_op q[MX_MSG_MAX_OPS];
	struct mx_client_read_result res, out;
	int r;

	if (x->n + 2 > MX_MSG_MAX_OPS) {
		reply(x, -E2BIG, NULL, NULL, -1);
		return;
	}
	q[0] = (struct mx_osd_op){.op = MX_OP_GETXATTR, .xname = A_P};
	q[1] = (struct mx_osd_op){.op = MX_OP_GETXATTR, .xname = A_RM};
	memcpy(q + 2, x->ops, x->n * sizeof(q[0]));
	r = mx_client_read_ops(x->cache, x->oid, q, x->n + 2, &res);
	if (r == 0 && attr_is(&res.ops[0], "1")) {
		if (res.ops[1].rval == 0) {
			mx_client_read_result_free(&res);
			reply(x, -ENOENT, NULL, NULL, -1); /* removed */
			return;
		}
		memset(&out, 0, sizeof(out));
		out.ver = res.ver;
		out.n = x->n;
		memcpy(out.ops, res.ops + 2, x->n * sizeof(out.ops[0]));
		r = hide_tier_attrs(x->ops, &out);
		reply(x, r, r == 0 ? &out : NULL, &out.ver, -1);
		memcpy(res.ops + 2, out.ops, x->n * sizeof(out.ops[0])); /* to free */
		mx_client_read_result_free(&res);
		return;
	}
	if (r == 0)
		mx_client_read_result_free(&res);
	else if (r != -ENOENT) {
		reply(x, r, NULL, NULL, -1);
		return;
	}
	r = mx_client_read_ops(x->base, x->oid, x->ops, x->n, &res);
	if (r == 0)
		r = hide_tier_attrs(x->ops, &res);
	reply(x, r, r == 0 ? &res : NULL, r == 0 ? &res.ver : NULL, -1);
	mx_client_read_result_free(&res);
	if (r == 0 && x->rt.mode != MX_CACHE_NONE && hit_miss(x)) {
		/* Promoted after the answer; a failure costs only the copy. */
		for (unsigned a = 0; a < 5; a++)
			if (promote(x) != -EAGAIN)
				break;
	}
}

/* Writes ------------------------------------------------------------------- */

static bool creates(uint8_t op)
{
	return op == MX_OP_WRITE || op == MX_OP_WRITEFULL || op == MX_OP_APPEND ||
	       op == MX_OP_TRUNCATE || op == MX_OP_CREATE || op == MX_OP_SETXATTR;
}

/* Whether the request changes anything (not guards alone). */
static bool mutates(const struct ctx *x)
{
	for (unsigned i = 0; i < x->n; i++)
		if (x->ops[i].op != MX_OP_CMPXATTR)
			return true;
	return false;
}

/*
 * The request of a writeback write on a present copy: the tier's guards
 * (present; removed or not as `removed` says; for a removal, _tier.src as
 * read), the caller's ops (a removal turned into an empty, removed, dirty
 * copy keeping _tier.src), then the dirty mark.  Returns the op count, or
 * -E2BIG; *n_guards gets the number of the tier's guards in front.
 */
static int wb_build(const struct ctx *x, bool removed, const uint8_t *src, uint32_t src_len,
		    const char *d, struct mx_osd_op *q, unsigned *n_guards)
{
	struct mx_osd_op tmp[3 * MX_MSG_MAX_OPS];
	unsigned k = 0;
	bool removes = false;

	tmp[k++] = mx_op_guard(MX_CMP_EQ, A_P, "1", 1);
	tmp[k++] = removed ? mx_op_guard(MX_CMP_EQ, A_RM, "1", 1) : mx_op_guard(MX_CMP_EQ, A_RM, "", 0);
	for (unsigned i = 0; i < x->n; i++)
		if (x->ops[i].op == MX_OP_REMOVE)
			removes = true;
	if (removes)
		tmp[k++] = mx_op_guard(MX_CMP_EQ, A_SRC, src, src_len);
	*n_guards = k;
	for (unsigned i = 0; i < x->n; i++) {
		struct mx_osd_op o = x->ops[i];

		if (o.op == MX_OP_REMOVE) {
			tmp[k++] = o;
			tmp[k++] = mx_op(MX_OP_CREATE, NULL);
			tmp[k++] = mx_op_setx(A_P, "1", 1);
			if (src_len)
				tmp[k++] = mx_op_setx(A_SRC, src, src_len);
			tmp[k++] = mx_op_setx(A_RM, "1", 1);
			continue;
		}
		if (removed && o.op == MX_OP_CREATE)
			o.flags &= ~(uint32_t)MX_OP_FLAG_EXCL; /* it does not exist */
		tmp[k++] = o;
	}
	if (removed && !removes)
		tmp[k++] = (struct mx_osd_op){.op = MX_OP_RMXATTR, .xname = A_RM};
	tmp[k++] = mx_op_setx(A_D, d, (uint32_t)strlen(d));
	if (k > MX_MSG_MAX_OPS)
		return -E2BIG;
	memcpy(q, tmp, k * sizeof(q[0]));
	return (int)k;
}

/* Whether, on a removed copy, the caller's request removes the object or
 * an attribute before anything creates it: then it is ENOENT, as on any
 * absent object. */
static bool removes_absent(const struct ctx *x)
{
	for (unsigned i = 0; i < x->n; i++) {
		if (x->ops[i].op == MX_OP_REMOVE || x->ops[i].op == MX_OP_RMXATTR)
			return true;
		if (creates(x->ops[i].op))
			return false;
	}
	return false;
}

/* A writeback write: to the present copy, promoted first if need be
 * ("Writeback", "Write"). */
static void wb_write(struct ctx *x)
{
	struct mx_osd_op q[MX_MSG_MAX_OPS];
	struct mx_client_version ver;
	bool removed = false, removes = false;
	uint8_t src[16];
	uint32_t src_len = 0;
	unsigned n_guards;
	char d[64];
	int r, failed;

	for (unsigned i = 0; i < x->n; i++) {
		if (x->ops[i].op != MX_OP_REMOVE)
			continue;
		if (i + 1 != x->n) {
			/* A removal turns into several ops of the tier's:
			 * only as the request's last. */
			reply(x, -EINVAL, NULL, NULL, -1);
			return;
		}
		removes = true;
	}
	nonce(x->t, d, sizeof(d));
	for (unsigned attempt = 0;; attempt++) {
		if (mx_now_ns() > x->deadline_ns) {
			reply(x, -ETIMEDOUT, NULL, NULL, -1);
			return;
		}
		if (removes) {
			struct mx_osd_op g = {.op = MX_OP_GETXATTR, .xname = A_SRC};
			struct mx_client_read_result res;

			src_len = 0;
			r = mx_client_read_ops(x->cache, x->oid, &g, 1, &res);
			if (r == 0 && res.ops[0].rval == 0 && res.ops[0].len == 16) {
				memcpy(src, res.ops[0].data, 16);
				src_len = 16;
			}
			if (r == 0)
				mx_client_read_result_free(&res);
			else if (r != -ENOENT) {
				reply(x, r, NULL, NULL, -1);
				return;
			}
		}
		if (removed && removes_absent(x)) {
			reply(x, -ENOENT, NULL, NULL, -1);
			return;
		}
		r = wb_build(x, removed, src, src_len, d, q, &n_guards);
		if (r < 0) {
			reply(x, r, NULL, NULL, -1);
			return;
		}
		r = mx_client_write_ops_f(x->cache, x->oid, q, (unsigned)r, &ver, &failed);
		if (r == 0) {
			reply(x, 0, NULL, &ver, -1);
			return;
		}
		if (r != -ECANCELED) {
			reply(x, r, NULL, NULL, -1);
			return;
		}
		if (failed < 0) {
			reply(x, -EIO, NULL, NULL, -1); /* refused, not saying why */
			return;
		}
		if (failed >= (int)n_guards) {
			/* The caller's own guard: that is the answer. */
			reply(x, r, NULL, NULL, failed - (int)n_guards);
			return;
		}
		if (failed == 1) {
			removed = !removed;
			continue;
		}
		if (failed == 0 && x->rt.mode == MX_CACHE_NONE) {
			/* Draining: no copy, and none can appear (nothing
			 * promotes now): the base is the authority. */
			r = mx_client_write_ops_f(x->base, x->oid, x->ops, x->n, &ver, &failed);
			reply(x, r, NULL, r == 0 ? &ver : NULL, failed);
			return;
		}
		if (failed == 0) {
			/* Not present: promote ("a write always promotes"). */
			r = promote(x);
			if (r == -EBUSY || (r == -EAGAIN && attempt > 3))
				sleep_ms(backoff(attempt));
			else if (r < 0 && r != -EAGAIN) {
				reply(x, r, NULL, NULL, -1);
				return;
			}
			continue;
		}
		/* _tier.src changed under a removal: read it again. */
	}
}

/* Readonly writes ------------------------------------------------------- */

/* The cache object's tiering state, as one read request sees it. */
struct cstate {
	bool exists, present, dirty;
	char p[96];       /* _tier.p; "" absent */
	uint8_t src[16];
	uint32_t src_len; /* 0: no version recorded */
	char w[96];       /* the writers' mark, "COUNT NONCE"; "" absent */
	unsigned writers; /* its count */
};

/* Read it.  0 (absent: !cs->exists) or an error. */
static int cache_state(struct ctx *x, struct cstate *cs)
{
	struct mx_osd_op pr[4] = {{.op = MX_OP_GETXATTR, .xname = A_P},
				  {.op = MX_OP_GETXATTR, .xname = A_SRC},
				  {.op = MX_OP_GETXATTR, .xname = A_D},
				  {.op = MX_OP_GETXATTR, .xname = A_W}};
	struct mx_client_read_result res;
	int r;

	memset(cs, 0, sizeof(*cs));
	r = mx_client_read_ops(x->cache, x->oid, pr, 4, &res);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	cs->exists = true;
	cs->present = attr_is(&res.ops[0], "1");
	if (res.ops[0].rval == 0)
		snprintf(cs->p, sizeof(cs->p), "%.*s", (int)res.ops[0].len,
			 (const char *)res.ops[0].data);
	cs->dirty = res.ops[2].rval == 0;
	if (res.ops[1].rval == 0 && res.ops[1].len == 16) {
		memcpy(cs->src, res.ops[1].data, 16);
		cs->src_len = 16;
	}
	if (res.ops[3].rval == 0 && res.ops[3].len < sizeof(cs->w)) {
		memcpy(cs->w, res.ops[3].data, res.ops[3].len);
		cs->w[res.ops[3].len] = '\0';
		cs->writers = (unsigned)strtoul(cs->w, NULL, 10);
	} else if (res.ops[3].rval == 0) {
		r = -EIO; /* not a mark of ours */
	}
	mx_client_read_result_free(&res);
	return r;
}

/* A mark for n writers.  Every change of a mark gets a fresh nonce, so a
 * mark that reads the same twice has not changed in between (the dead
 * writer's test in promote). */
static void mark_value(struct ctx *x, char *buf, size_t sz, unsigned n)
{
	int l = snprintf(buf, sz, "%u ", n);

	nonce(x->t, buf + l, sz - (size_t)l);
}

/* Whether the version recorded in cs is older than b (16 bytes). */
static bool src_older(const struct cstate *cs, const uint8_t *b)
{
	return cs->src_len == 0 || memcmp(cs->src, b, 16) < 0;
}

/*
 * Mark the object before a readonly write to the base ("Intent markers"):
 * one more writer in _tier.w, and any copy gone (a stub keeping
 * _tier.src), so no copy older than the write is served or installed until
 * ro_finish.  0 or an error.
 */
static int ro_mark(struct ctx *x)
{
	struct mx_osd_op q[7];
	struct cstate cs;
	char w[96];
	unsigned k;
	int r;

	for (unsigned attempt = 0;; attempt++) {
		if (mx_now_ns() > x->deadline_ns)
			return -ETIMEDOUT;
		r = cache_state(x, &cs);
		if (r < 0)
			return r;
		if (cs.dirty)
			return -EIO; /* readonly never leaves a copy dirty */
		k = 0;
		if (!cs.exists) {
			q[k++] = (struct mx_osd_op){.op = MX_OP_CREATE, .flags = MX_OP_FLAG_EXCL};
			mark_value(x, w, sizeof(w), 1);
			q[k++] = mx_op_setx(A_W, w, (uint32_t)strlen(w));
		} else {
			mark_value(x, w, sizeof(w), cs.writers + 1);
			q[k++] = mx_op_guard(MX_CMP_EQ, A_W, cs.w, (uint32_t)strlen(cs.w));
			q[k++] = mx_op_guard(MX_CMP_EQ, A_D, "", 0);
			q[k++] = mx_op(MX_OP_REMOVE, NULL);
			q[k++] = mx_op(MX_OP_CREATE, NULL);
			if (cs.src_len)
				q[k++] = mx_op_setx(A_SRC, cs.src, 16);
			q[k++] = mx_op_setx(A_W, w, (uint32_t)strlen(w));
		}
		r = mx_client_write_ops(x->cache, x->oid, q, k, NULL);
		if (r != -ECANCELED && r != -EEXIST)
			return r;
		if (attempt > 2)
			sleep_ms(backoff(attempt));
	}
}

/*
 * After the base write produced version b (readonly; NULL: the write
 * surely did not run): take our writer off the mark, and record b in
 * _tier.src unless as new a version is recorded, emptying a copy (or a
 * claim) older than b.  0 or an error.
 */
static int ro_finish(struct ctx *x, const uint8_t *b)
{
	struct mx_osd_op q[8];
	struct cstate cs;
	char w[96];
	unsigned k;
	bool older;
	int r;

	for (unsigned attempt = 0;; attempt++) {
		if (mx_now_ns() > x->deadline_ns)
			return -ETIMEDOUT;
		r = cache_state(x, &cs);
		if (r < 0)
			return r;
		k = 0;
		if (!cs.exists) {
			if (!b)
				return 0;
			/* Gone: a stub all the same. */
			q[k++] = (struct mx_osd_op){.op = MX_OP_CREATE, .flags = MX_OP_FLAG_EXCL};
			q[k++] = mx_op_setx(A_SRC, b, 16);
		} else {
			older = b && src_older(&cs, b);
			mark_value(x, w, sizeof(w), cs.writers ? cs.writers - 1 : 0);
			q[k++] = mx_op_guard(MX_CMP_EQ, A_W, cs.w, (uint32_t)strlen(cs.w));
			q[k++] = mx_op_guard(MX_CMP_EQ, A_P, cs.p, (uint32_t)strlen(cs.p));
			q[k++] = mx_op_guard(MX_CMP_EQ, A_SRC, cs.src, cs.src_len);
			if (cs.p[0] && older) {
				/* A copy or claim made after a dead writer's mark
				 * was cleared, older than our write: it goes. */
				q[k++] = mx_op(MX_OP_REMOVE, NULL);
				q[k++] = mx_op(MX_OP_CREATE, NULL);
				if (cs.writers > 1)
					q[k++] = mx_op_setx(A_W, w, (uint32_t)strlen(w));
			} else if (cs.writers > 1) {
				q[k++] = mx_op_setx(A_W, w, (uint32_t)strlen(w));
			} else if (cs.writers == 1) {
				q[k++] = (struct mx_osd_op){.op = MX_OP_RMXATTR, .xname = A_W};
			}
			if (older)
				q[k++] = mx_op_setx(A_SRC, b, 16);
		}
		r = mx_client_write_ops(x->cache, x->oid, q, k, NULL);
		if (r != -ECANCELED && r != -EEXIST)
			return r;
		if (attempt > 2)
			sleep_ms(backoff(attempt));
	}
}

/*
 * After a base write of the readonly mode produced version b, under a
 * route of another mode (the mode changed between the steps): a clean
 * copy older than b goes; a dirty one older than b hides the write, which
 * is then not acknowledged.  0, -EIO, or an error.
 */
static int wb_finish(struct ctx *x, const uint8_t *b)
{
	struct mx_osd_op q[5];
	struct cstate cs;
	int r;

	for (unsigned attempt = 0;; attempt++) {
		if (mx_now_ns() > x->deadline_ns)
			return -ETIMEDOUT;
		r = cache_state(x, &cs);
		if (r < 0 || !cs.exists || !cs.present || !src_older(&cs, b))
			return r;
		if (cs.dirty)
			return -EIO;
		q[0] = mx_op_guard(MX_CMP_EQ, A_P, "1", 1);
		q[1] = mx_op_guard(MX_CMP_EQ, A_D, "", 0);
		q[2] = mx_op_guard(MX_CMP_EQ, A_SRC, cs.src, cs.src_len);
		q[3] = mx_op(MX_OP_REMOVE, NULL);
		q[4] = mx_op(MX_OP_CREATE, NULL);
		r = mx_client_write_ops(x->cache, x->oid, q, 5, NULL);
		if (r != -ECANCELED)
			return r;
		if (attempt > 2)
			sleep_ms(backoff(attempt));
	}
}

static int open_handles(struct ctx *x);
static bool reroute(struct ctx *x);

/* Whether err says for sure that a request did not run. */
static bool did_not_run(int err)
{
	return err != -ETIMEDOUT && err != -EIO && err != -ENOTCONN && err != -ECONNRESET;
}

/* A readonly-mode write ("Readonly", "Write"): mark the object, write the
 * base, then finish (record the version, unmark), then acknowledged. */
static void ro_write(struct ctx *x)
{
	struct mx_client_version b;
	uint8_t bbe[16];
	int r, failed;

	r = ro_mark(x);
	if (r < 0) {
		reply(x, r, NULL, NULL, -1);
		return;
	}
	r = mx_client_write_ops_f(x->base, x->oid, x->ops, x->n, &b, &failed);
	if (r < 0) {
		/* A write that may yet land keeps the mark until it is a
		 * dead writer's; one that surely did not run drops it. */
		if (r != -ESTALE && did_not_run(r) && x->rt.mode == MX_CACHE_READONLY) {
			(void)ro_finish(x, NULL);
		}
		reply(x, r, NULL, NULL, failed);
		return;
	}
	/* The write ran: finish it under whatever route holds now. */
	mx_client_version_be(&b, bbe);
	for (;;) {
		r = x->rt.mode == MX_CACHE_READONLY ? ro_finish(x, bbe) : wb_finish(x, bbe);
		if (r != -ESTALE)
			break;
		if (!reroute(x)) {
			r = x->restart ? -ETIMEDOUT : 0; /* no tier now: done */
			break;
		}
	}
	x->restart = false;
	reply(x, r, NULL, r == 0 ? &b : NULL, -1);
}

/* Workers ------------------------------------------------------------------ */

static void close_handles(struct ctx *x)
{
	mixsan_pool_close(x->base);
	mixsan_pool_close(x->cache);
	x->base = x->cache = NULL;
}

static int open_handles(struct ctx *x)
{
	mixsan_cluster_t *cl = x->t->cl;
	int r;

	close_handles(x);
	r = mx_client_pool_open_fenced(cl, x->rt.base, x->rt.epoch, x->deadline_ns, &x->base);
	if (r == 0 && x->rt.cache >= 0)
		r = mx_client_pool_open_fenced(cl, x->rt.cache, x->rt.epoch, x->deadline_ns,
					       &x->cache);
	return r;
}

/* After a step met the fence: the route of the library's map now (which
 * shows the change) and handles fenced at it.  True if the pool is still
 * tiered; false if not (x->rt.cache < 0, x->base open for a direct
 * request) or on an error (x->restart set). */
static bool reroute(struct ctx *x)
{
	int32_t base = x->rt.base;
	bool tiered;

	x->restart = false;
	tiered = mx_client_tier_route(x->t->cl, base, &x->rt);
	if (!tiered) {
		x->rt.base = base;
		x->rt.cache = -1;
	}
	if (mx_now_ns() > x->deadline_ns || open_handles(x) < 0) {
		x->restart = true;
		return false;
	}
	return tiered;
}

/* The request with no tier in the way: straight to the base. */
static void direct(struct ctx *x, bool reads)
{
	struct mx_client_read_result res;
	struct mx_client_version ver;
	int r, failed;

	if (reads) {
		r = mx_client_read_ops(x->base, x->oid, x->ops, x->n, &res);
		reply(x, r, r == 0 ? &res : NULL, r == 0 ? &res.ver : NULL, -1);
		if (r == 0)
			mx_client_read_result_free(&res);
		return;
	}
	r = mx_client_write_ops_f(x->base, x->oid, x->ops, x->n, &ver, &failed);
	reply(x, r, NULL, r == 0 ? &ver : NULL, failed);
}

static int flush_pg(mixsan_pool_t *p, const char *oid, uint64_t since)
{
	MX_SYNC(mx_client_aio_flush_pg(p, oid, c_, since));
}

/* A FLUSH (docs/cache-modes.md) of the PG of x's object: the tier's own
 * steps are durable when answered, but writes sent straight to the base
 * before the tier came may not be: both pools' PGs are flushed. */
static void tier_flush(struct ctx *x)
{
	/* The epoch it vouches from; a request without one asks no check. */
	uint64_t since = (x->ops[0].flags & MX_OP_FLAG_SINCE) ? x->ops[0].off : UINT64_MAX;
	int r = x->cache ? flush_pg(x->cache, x->oid, since) : 0;

	if (r == 0)
		r = flush_pg(x->base, x->oid, since);
	reply(x, r, NULL, NULL, -1);
}

static void run(struct mx_tier *t, struct job *j)
{
	struct ctx *x = calloc(1, sizeof(*x));
	bool reads = true, tiered = true;

	if (!x) {
		mx_cop_answer(j->op, -ENOMEM, NULL, NULL, -1);
		return;
	}
	x->t = t;
	x->rt = j->rt;
	x->op = j->op;
	snprintf(x->oid, sizeof(x->oid), "%s", mx_cop_oid(j->op));
	x->n = mx_cop_ops(j->op, x->ops);
	x->deadline_ns = mx_now_ns() + JOB_DEADLINE_NS;
	for (unsigned i = 0; i < x->n; i++)
		reads &= !mx_op_is_write(x->ops[i].op);
	if (!reads && !mutates(x)) {
		reply(x, -EINVAL, NULL, NULL, -1); /* guards alone, as an OSD says */
		free(x);
		return;
	}
	if (open_handles(x) < 0)
		x->restart = true;
	/* Each pass under one route; a step that met the fence sends the
	 * request round again under the route of the newer map. */
	for (;;) {
		if (x->restart)
			reply(x, -ETIMEDOUT, NULL, NULL, -1); /* routing failed */
		else if (x->n == 1 && x->ops[0].op == MX_OP_FLUSH)
			tier_flush(x);
		else if (!tiered)
			direct(x, reads);
		else if (reads)
			tier_read(x);
		else if (x->rt.mode == MX_CACHE_READONLY)
			ro_write(x);
		else
			wb_write(x);
		if (!x->restart || !x->op)
			break;
		tiered = reroute(x);
	}
	if (x->op) {
		x->restart = false;
		reply(x, -EIO, NULL, NULL, -1);
	}
	close_handles(x);
	free(x);
}

static void *worker(void *arg)
{
	struct mx_tier *t = arg;
	struct job *j;

	pthread_mutex_lock(&t->lock);
	for (;;) {
		while (!t->head && !t->stopping)
			pthread_cond_wait(&t->cond, &t->lock);
		j = t->head;
		if (!j)
			break; /* stopping, nothing left */
		t->head = j->next;
		if (!t->head)
			t->tail = &t->head;
		pthread_mutex_unlock(&t->lock);
		run(t, j);
		free(j);
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

int mx_tier_new(mixsan_cluster_t *cl, struct mx_tier **out)
{
	struct mx_tier *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->cl = cl;
	t->hits = mx_hitsets_new();
	if (!t->hits) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->tail = &t->head;
	for (unsigned i = 0; i < TIER_WORKERS; i++) {
		if (pthread_create(&t->threads[i], NULL, worker, t) != 0)
			break;
		t->n_threads++;
	}
	if (t->n_threads == 0) {
		mx_hitsets_free(t->hits);
		pthread_mutex_destroy(&t->lock);
		pthread_cond_destroy(&t->cond);
		free(t);
		return -EAGAIN;
	}
	*out = t;
	return 0;
}

void mx_tier_free(struct mx_tier *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	t->stopping = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	for (unsigned i = 0; i < t->n_threads; i++)
		pthread_join(t->threads[i], NULL);
	mx_hitsets_free(t->hits);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t);
}

int mx_tier_check(const struct cop *op)
{
	struct mx_osd_op ops[MX_MSG_MAX_OPS];
	unsigned n = mx_cop_ops(op, ops);

	for (unsigned i = 0; i < n; i++)
		if (tier_name(ops[i].xname))
			return -EINVAL;
	return 0;
}

int mx_tier_submit(struct mx_tier *t, const struct mx_tier_route *rt, struct cop *op)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	j->rt = *rt;
	j->op = op;
	pthread_mutex_lock(&t->lock);
	*t->tail = j;
	t->tail = &j->next;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

/* Listing ------------------------------------------------------------------ */

struct names {
	char **v; /* From malloc(), each from malloc() */
	uint64_t *size;
	size_t n, cap;
};

static int names_cb(void *arg, const char *oid, size_t len, uint64_t size)
{
	struct names *s = arg;

	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		void *a = realloc(s->v, cap * sizeof(*s->v));

		if (!a)
			return -ENOMEM;
		s->v = a;
		a = realloc(s->size, cap * sizeof(*s->size));
		if (!a)
			return -ENOMEM;
		s->size = a;
		s->cap = cap;
	}
	s->v[s->n] = strndup(oid, len);
	if (!s->v[s->n])
		return -ENOMEM;
	s->size[s->n++] = size;
	return 0;
}

static void names_free(struct names *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	free(s->size);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mx_tier_list(mixsan_cluster_t *cl, const struct mx_tier_route *rt,
		 int (*cb)(void *arg, const char *oid, size_t oid_len, uint64_t size),
		 void *arg)
{
	struct mx_osd_op pr[3] = {{.op = MX_OP_GETXATTR, .xname = A_P},
				  {.op = MX_OP_GETXATTR, .xname = A_RM},
				  {.op = MX_OP_STAT}};
	struct names cache = {0}, seen = {0}, base = {0};
	mixsan_pool_t *bp = NULL, *cp = NULL;
	int r;

	r = mx_client_pool_open_raw(cl, rt->base, &bp);
	if (r == 0)
		r = mx_client_pool_open_raw(cl, rt->cache, &cp);
	if (r == 0)
		r = mixsan_list(cp, names_cb, &cache);
	/* The cache's present copies answer for their objects (removed
	 * ones as absent); stubs and claimed copies leave it to the base. */
	for (size_t i = 0; i < cache.n && r == 0; i++) {
		struct mx_client_read_result res;
		struct mx_osd_stat st;
		int e = mx_client_read_ops(cp, cache.v[i], pr, 3, &res);

		if (e == -ENOENT)
			continue;
		if (e < 0) {
			r = e;
			break;
		}
		if (attr_is(&res.ops[0], "1")) {
			r = names_cb(&seen, cache.v[i], strlen(cache.v[i]), 0);
			if (r == 0 && res.ops[1].rval < 0 && res.ops[2].rval == 0 &&
			    mx_osd_stat_decode(res.ops[2].data, res.ops[2].len, &st) == 0)
				r = cb(arg, cache.v[i], strlen(cache.v[i]), st.size);
		}
		mx_client_read_result_free(&res);
	}
	if (r == 0) {
		if (seen.n)
			qsort(seen.v, seen.n, sizeof(*seen.v), cmp_str);
		r = mixsan_list(bp, names_cb, &base);
	}
	for (size_t i = 0; i < base.n && r == 0; i++) {
		const char *k = base.v[i];

		if (seen.n && bsearch(&k, seen.v, seen.n, sizeof(*seen.v), cmp_str))
			continue;
		r = cb(arg, k, strlen(k), base.size[i]);
	}
	names_free(&cache);
	names_free(&seen);
	names_free(&base);
	mixsan_pool_close(bp);
	mixsan_pool_close(cp);
	return r;
}

/* The census ------------------------------------------------------------- */

struct census {
	mixsan_pool_t *cache;
	struct mx_tier_census *out;
	int err;
};

static int census_cb(void *arg, const char *oid, size_t len, uint64_t size)
{
	struct census *c = arg;
	struct mx_osd_op pr[2] = {{.op = MX_OP_GETXATTR, .xname = A_P},
				  {.op = MX_OP_GETXATTR, .xname = A_D}};
	struct mx_client_read_result res;
	int r;

	(void)len;
	c->out->objects++;
	r = mx_client_read_ops(c->cache, oid, pr, 2, &res);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (attr_is(&res.ops[0], "1")) {
		c->out->present++;
		c->out->present_bytes += size;
		if (res.ops[1].rval == 0)
			c->out->dirty++;
	}
	mx_client_read_result_free(&res);
	return 0;
}

int mx_tier_census(mixsan_cluster_t *cl, int64_t cache, struct mx_tier_census *out)
{
	struct census c = {.out = out};
	int r;

	memset(out, 0, sizeof(*out));
	r = mx_client_pool_open_raw(cl, cache, &c.cache);
	if (r < 0)
		return r;
	r = mixsan_list(c.cache, census_cb, &c);
	mixsan_pool_close(c.cache);
	return r;
}

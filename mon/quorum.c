/*
 * The monitors' replicated log: libraft driving a state machine whose
 * entries are whole maps (docs/monitor-quorum.md).
 *
 * The state machine's rule, the same on every monitor:
 *     apply(M): M.epoch > current.epoch ? hand M to the monitor : skip (stale)
 * A ready leader proposes only current+1 and one change at a time, after a
 * barrier of its term, so in a healthy quorum every entry is exactly the next
 * epoch; the rule makes a superseded entry of a deposed leader harmless and
 * lets a monitor that joins late start from any newer whole map.
 */
#include "quorum.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <raft.h>
#include <raft/uv.h>

#include "log.h"
#include "msg.h"
#include "net.h"
#include "raft_tcp.h"
#include "util.h"

/* Election timeout and heartbeat (ms): a new leader ~1.5-2x the election
 * timeout after the old one dies (docs/monitor-quorum.md). */
#define ELECTION_MS 1000
#define HEARTBEAT_MS 100
/* Snapshot every 64 entries, keeping 32 behind it for slow followers. */
#define SNAP_THRESHOLD 64
#define SNAP_TRAILING 32
#define POLL_MS 50

struct mx_quorum {
	uv_loop_t *loop;
	struct raft raft;
	struct raft_io io;
	struct raft_uv_transport *transport; /* mx_raft_tcp_new */
	struct raft_fsm fsm;
	struct mx_quorum_hooks hooks;
	uv_timer_t poll;
	raft_term barrier_term; /* barrier asked in this term */
	raft_term ready_term;   /* barrier of this term committed */
	bool changing;          /* a membership change in flight */
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
	int open_handles;       /* raft and the poll timer */
	char raft_dir[4200];
};

struct apply_req {
	struct raft_apply req;
	void (*done)(void *arg, int status);
	void *arg;
};

struct change_req {
	struct raft_change req;
	struct mx_quorum *q;
	uint64_t id;
	bool promote; /* after the add: make it a voter */
	void (*done)(void *arg, int status);
	void *arg;
};

uint64_t mx_quorum_id(const char *name)
{
	uint64_t id = raft_digest(name, 0);

	return id ? id : 1;
}

int mx_quorum_parse_mons(const char *spec, struct mx_mon_info **out, uint32_t *n, char *err,
			 size_t errsz)
{
	_cleanup_free_ char *copy = strdup(spec ? spec : "");
	struct mx_mon_info *mons = NULL;
	uint32_t k = 0;
	char *save = NULL;

	*out = NULL;
	*n = 0;
	if (!copy)
		return -ENOMEM;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '='), *slash = eq ? strchr(eq, '/') : NULL;
		struct sockaddr_in a;
		struct mx_mon_info *nm;

		if (!eq || !slash) {
			snprintf(err, errsz, "'%s': expected NAME=CLIENT_ADDR/RAFT_ADDR", t);
			goto bad;
		}
		*eq = *slash = '\0';
		if (!mx_valid_name(t) || mx_parse_addr(eq + 1, &a) < 0 ||
		    mx_parse_addr(slash + 1, &a) < 0) {
			snprintf(err, errsz, "'%s': bad name or address (IPv4 IP:PORT)", t);
			goto bad;
		}
		if (k >= MX_MAX_MONS) {
			snprintf(err, errsz, "more than %d monitors", MX_MAX_MONS);
			goto bad;
		}
		nm = realloc(mons, (k + 1) * sizeof(*mons));
		if (!nm)
			goto bad;
		mons = nm;
		memset(&mons[k], 0, sizeof(mons[k]));
		snprintf(mons[k].name, sizeof(mons[k].name), "%s", t);
		snprintf(mons[k].addr, sizeof(mons[k].addr), "%s", eq + 1);
		snprintf(mons[k].raft_addr, sizeof(mons[k].raft_addr), "%s", slash + 1);
		mons[k].raft_id = mx_quorum_id(t);
		for (uint32_t i = 0; i < k; i++) {
			if (mons[i].raft_id == mons[k].raft_id ||
			    strcmp(mons[i].addr, mons[k].addr) == 0 ||
			    strcmp(mons[i].raft_addr, mons[k].raft_addr) == 0 ||
			    strcmp(mons[i].addr, mons[k].raft_addr) == 0 ||
			    strcmp(mons[i].raft_addr, mons[k].addr) == 0) {
				snprintf(err, errsz, "monitor '%s' repeats a name or address", t);
				goto bad;
			}
		}
		if (strcmp(mons[k].addr, mons[k].raft_addr) == 0) {
			snprintf(err, errsz, "monitor '%s': one address for both services", t);
			goto bad;
		}
		k++;
	}
	if (k == 0) {
		snprintf(err, errsz, "no monitor listed");
		goto bad;
	}
	*out = mons;
	*n = k;
	return 0;
bad:
	free(mons);
	return -EINVAL;
}

/* The state machine ------------------------------------------------------ */

/*
 * Entries and snapshots: u32 length of the encoded map, the map, zeros up to
 * a multiple of 8 bytes.  libraft's disk log pads entries to 8 bytes and
 * does not give the payload back at its own length otherwise (entries of
 * other lengths came back shifted when read from disk).
 */
static int entry_encode(const struct mx_map *m, bool raft_mem, struct raft_buffer *out)
{
	struct mx_wbuf w;
	size_t len;
	uint8_t *p;

	mx_wbuf_init(&w);
	mx_map_encode_secret(m, &w); /* the log is the monitors' own */
	if (w.err || w.len > UINT32_MAX - 16) {
		mx_wbuf_free(&w);
		return -ENOMEM;
	}
	len = (4 + w.len + 7) & ~(size_t)7;
	p = raft_mem ? raft_malloc(len) : malloc(len);
	if (!p) {
		mx_wbuf_free(&w);
		return -ENOMEM;
	}
	memset(p, 0, len);
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(w.len >> (8 * i));
	memcpy(p + 4, w.data, w.len);
	mx_wbuf_free(&w);
	out->base = p;
	out->len = len;
	return 0;
}

static int entry_decode(const struct raft_buffer *b, struct mx_map **out)
{
	const uint8_t *p = b->base;
	size_t n;

	*out = NULL;
	if (b->len < 4 || (b->len & 7))
		return -EBADMSG;
	n = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
	if (n > b->len - 4 || b->len - 4 - n >= 8)
		return -EBADMSG;
	return mx_map_decode(p + 4, n, out);
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	struct mx_quorum *q = fsm->data;
	const struct mx_map *cur = q->hooks.current(q->hooks.arg);
	struct mx_map *m;
	int r = entry_decode(buf, &m);

	*result = NULL;
	if (r < 0) {
		/* Every monitor sees the same bytes: skipping is deterministic. */
		mx_err("log entry of %zu bytes is not a map: %s", buf->len, strerror(-r));
		return 0;
	}
	if (m->epoch <= cur->epoch) {
		mx_debug("log entry for epoch %llu superseded (at %llu)",
			 (unsigned long long)m->epoch, (unsigned long long)cur->epoch);
		mx_map_free(m);
		return 0;
	}
	q->hooks.apply(q->hooks.arg, m);
	*result = q; /* any non-NULL: applied */
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct mx_quorum *q = fsm->data;
	struct raft_buffer *b = malloc(sizeof(*b));

	if (!b)
		return RAFT_NOMEM;
	/* Freed by fsm_finalize. */
	if (entry_encode(q->hooks.current(q->hooks.arg), false, b) < 0) {
		free(b);
		return RAFT_NOMEM;
	}
	*bufs = b;
	*n_bufs = 1;
	return 0;
}

static int fsm_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	(void)fsm;
	for (unsigned i = 0; i < *n_bufs; i++)
		free((*bufs)[i].base);
	free(*bufs);
	*bufs = NULL;
	*n_bufs = 0;
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct mx_quorum *q = fsm->data;
	struct mx_map *m;
	int r = entry_decode(buf, &m);

	if (r < 0) {
		/* libraft frees the buffer itself after a failed restore. */
		mx_err("snapshot of %zu bytes is not a map: %s", buf->len, strerror(-r));
		return RAFT_CORRUPT;
	}
	raft_free(buf->base);
	if (m->epoch > q->hooks.current(q->hooks.arg)->epoch) {
		mx_info("map epoch %llu restored from a snapshot", (unsigned long long)m->epoch);
		q->hooks.apply(q->hooks.arg, m);
	} else {
		mx_map_free(m);
	}
	return 0;
}

/* Leadership -------------------------------------------------------------- */

bool mx_quorum_ready(struct mx_quorum *q)
{
	/* Not while handing the leadership over: proposals are refused then. */
	return !q->closing && raft_state(&q->raft) == RAFT_LEADER &&
	       q->ready_term == q->raft.current_term && !q->raft.transfer;
}

uint64_t mx_quorum_leader(struct mx_quorum *q)
{
	raft_id id = 0;
	const char *addr = NULL;
	int st = raft_state(&q->raft);

	if (q->closing || (st != RAFT_LEADER && st != RAFT_FOLLOWER))
		return 0;
	raft_leader(&q->raft, &id, &addr);
	return id;
}

static void barrier_cb(struct raft_barrier *req, int status)
{
	struct mx_quorum *q = req->data;
	raft_term term = q->barrier_term;

	free(req);
	if (q->closing)
		return;
	if (status != 0) {
		mx_info("leader barrier failed: %s", raft_strerror(status));
		q->barrier_term = 0; /* ask again if still leader */
		return;
	}
	if (raft_state(&q->raft) == RAFT_LEADER && q->raft.current_term == term) {
		q->ready_term = term;
		mx_info("leading the quorum (term %llu)", (unsigned long long)term);
		q->hooks.leading(q->hooks.arg);
	}
}

static void on_poll(uv_timer_t *t)
{
	struct mx_quorum *q = t->data;
	struct raft_barrier *b;

	if (q->closing || raft_state(&q->raft) != RAFT_LEADER ||
	    q->barrier_term == q->raft.current_term)
		return;
	b = calloc(1, sizeof(*b));
	if (!b)
		return;
	b->data = q;
	q->barrier_term = q->raft.current_term;
	if (raft_barrier(&q->raft, b, barrier_cb) != 0) {
		free(b);
		q->barrier_term = 0;
	}
}

void mx_quorum_describe(struct mx_quorum *q, char *buf, size_t sz)
{
	static const char *roles[] = {"unavailable", "follower", "candidate", "leader"};
	int st = raft_state(&q->raft);

	snprintf(buf, sz, "role %s%s term %llu leader %llx committed %llu applied %llu",
		 st >= 0 && st <= 3 ? roles[st] : "?",
		 st == RAFT_LEADER && !mx_quorum_ready(q) ? " (not ready)" : "",
		 (unsigned long long)q->raft.current_term,
		 (unsigned long long)mx_quorum_leader(q),
		 (unsigned long long)q->raft.commit_index,
		 (unsigned long long)raft_last_applied(&q->raft));
}

/* Proposals ---------------------------------------------------------------- */

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	struct apply_req *ar = req->data;

	if (status != 0)
		mx_info("map proposal not committed here: %s", raft_strerror(status));
	ar->done(ar->arg, status != 0 ? -EAGAIN : result ? 0 : -ESTALE);
	free(ar);
}

int mx_quorum_propose(struct mx_quorum *q, const struct mx_map *m,
		      void (*done)(void *arg, int status), void *arg)
{
	struct apply_req *ar;
	struct raft_buffer b;
	int r;

	if (!mx_quorum_ready(q))
		return -EAGAIN;
	ar = calloc(1, sizeof(*ar));
	if (!ar)
		return -ENOMEM;
	if (entry_encode(m, true, &b) < 0) {
		free(ar);
		return -ENOMEM;
	}
	ar->done = done;
	ar->arg = arg;
	ar->req.data = ar;
	r = raft_apply(&q->raft, &ar->req, &b, 1, apply_cb);
	if (r != 0) {
		mx_info("map proposal refused: %s", raft_strerror(r));
		raft_free(b.base);
		free(ar);
		return r == RAFT_NOMEM ? -ENOMEM : -EAGAIN;
	}
	return 0;
}

/* Membership --------------------------------------------------------------- */

static int raft_to_errno(int rv)
{
	switch (rv) {
	case 0: return 0;
	case RAFT_NOMEM: return -ENOMEM;
	case RAFT_BADID:
	case RAFT_NOTFOUND: return -ENOENT;
	case RAFT_DUPLICATEID:
	case RAFT_DUPLICATEADDRESS: return -EEXIST;
	case RAFT_CANTCHANGE: return -EBUSY;
	case RAFT_NOTLEADER:
	case RAFT_LEADERSHIPLOST: return -EAGAIN;
	case RAFT_NOCONNECTION: return -ETIMEDOUT;
	default: return -EIO;
	}
}

static void change_cb(struct raft_change *req, int status)
{
	struct change_req *cr = req->data;
	struct mx_quorum *q = cr->q;

	if (status == 0 && cr->promote && !q->closing) {
		int r;

		cr->promote = false;
		r = raft_assign(&q->raft, &cr->req, cr->id, RAFT_VOTER, change_cb);
		if (r == 0)
			return;
		status = r;
	}
	q->changing = false;
	if (status != 0)
		mx_warn("quorum change for %llx failed: %s", (unsigned long long)cr->id,
			raft_strerror(status));
	cr->done(cr->arg, raft_to_errno(status));
	/* libraft 0.15 may keep a pointer to a change it refused at once:
	 * leave that one allocated rather than free it under its feet. */
	if (raft_state(&q->raft) != RAFT_LEADER || q->raft.leader_state.change != &cr->req)
		free(cr);
}

int mx_quorum_role_of(struct mx_quorum *q, uint64_t id)
{
	const struct raft_configuration *c = &q->raft.configuration;

	for (unsigned i = 0; i < c->n; i++)
		if (c->servers[i].id == id)
			return c->servers[i].role == RAFT_VOTER ? 2 : 1;
	return 0;
}

/* Idempotent: an add of a spare only promotes it; of a voter, nothing. */
static int change_start(struct mx_quorum *q, uint64_t id, const char *raft_addr,
			void (*done)(void *arg, int status), void *arg)
{
	struct change_req *cr;
	int role = mx_quorum_role_of(q, id), r;

	if (!mx_quorum_ready(q))
		return -EAGAIN;
	if (q->changing)
		return -EBUSY;
	if (raft_addr ? role == 2 : role == 0)
		return 1; /* nothing to do */
	cr = calloc(1, sizeof(*cr));
	if (!cr)
		return -ENOMEM;
	cr->q = q;
	cr->id = id;
	cr->done = done;
	cr->arg = arg;
	cr->req.data = cr;
	if (raft_addr && role == 1) {
		r = raft_assign(&q->raft, &cr->req, id, RAFT_VOTER, change_cb);
	} else if (raft_addr) {
		cr->promote = true;
		r = raft_add(&q->raft, &cr->req, id, raft_addr, change_cb);
	} else {
		r = raft_remove(&q->raft, &cr->req, id, change_cb);
	}
	if (r != 0) {
		free(cr);
		return raft_to_errno(r);
	}
	q->changing = true;
	return 0;
}

int mx_quorum_add(struct mx_quorum *q, uint64_t id, const char *raft_addr,
		  void (*done)(void *arg, int status), void *arg)
{
	return change_start(q, id, raft_addr, done, arg);
}

int mx_quorum_remove(struct mx_quorum *q, uint64_t id, void (*done)(void *arg, int status),
		     void *arg)
{
	return change_start(q, id, NULL, done, arg);
}

static void transfer_cb(struct raft_transfer *req)
{
	free(req);
}

void mx_quorum_transfer(struct mx_quorum *q)
{
	struct raft_transfer *t = calloc(1, sizeof(*t));

	if (t && raft_transfer(&q->raft, t, 0, transfer_cb) != 0)
		free(t);
}

/* Start and stop ------------------------------------------------------------ */

int mx_quorum_open(uv_loop_t *loop, const char *dir, const struct mx_mon_info *self,
		   const struct mx_mon_info *initial, uint32_t n_initial,
		   const uint8_t *link_key,
		   const struct mx_quorum_hooks *hooks, struct mx_quorum **out, char *err,
		   size_t errsz)
{
	struct mx_quorum *q = calloc(1, sizeof(*q));
	int rv;

	*out = NULL;
	if (!q)
		return -ENOMEM;
	q->loop = loop;
	q->hooks = *hooks;
	snprintf(q->raft_dir, sizeof(q->raft_dir), "%s/raft", dir);
	if (mkdir(q->raft_dir, 0700) < 0 && errno != EEXIST) {
		rv = -errno;
		snprintf(err, errsz, "cannot create %s: %s", q->raft_dir, strerror(errno));
		free(q);
		return rv;
	}
	rv = mx_raft_tcp_new(loop, link_key, &q->transport);
	if (rv != 0) {
		snprintf(err, errsz, "raft transport: %s", strerror(-rv));
		free(q);
		return rv;
	}
	rv = raft_uv_init(&q->io, loop, q->raft_dir, q->transport);
	if (rv != 0) {
		snprintf(err, errsz, "raft log in %s: %s", q->raft_dir, q->io.errmsg);
		mx_raft_tcp_free(q->transport);
		free(q);
		return -EIO;
	}
	q->fsm.version = 2;
	q->fsm.data = q;
	q->fsm.apply = fsm_apply;
	q->fsm.snapshot = fsm_snapshot;
	q->fsm.snapshot_finalize = fsm_finalize;
	q->fsm.restore = fsm_restore;
	rv = raft_init(&q->raft, &q->io, &q->fsm, self->raft_id, self->raft_addr);
	if (rv != 0) {
		snprintf(err, errsz, "raft: %s", raft_errmsg(&q->raft));
		goto fail_io;
	}
	if (initial) {
		struct raft_configuration conf;

		raft_configuration_init(&conf);
		for (uint32_t i = 0; i < n_initial && rv == 0; i++)
			rv = raft_configuration_add(&conf, initial[i].raft_id, initial[i].raft_addr,
						    RAFT_VOTER);
		if (rv == 0)
			rv = raft_bootstrap(&q->raft, &conf);
		raft_configuration_close(&conf);
		if (rv == 0)
			mx_info("quorum of %u bootstrapped", n_initial);
		else if (rv == RAFT_CANTBOOTSTRAP)
			rv = 0; /* started before: the log knows the quorum */
		if (rv != 0) {
			snprintf(err, errsz, "raft bootstrap: %s", raft_strerror(rv));
			goto fail_raft;
		}
	}
	raft_set_election_timeout(&q->raft, ELECTION_MS);
	raft_set_heartbeat_timeout(&q->raft, HEARTBEAT_MS);
	raft_set_snapshot_threshold(&q->raft, SNAP_THRESHOLD);
	raft_set_snapshot_trailing(&q->raft, SNAP_TRAILING);
	raft_set_pre_vote(&q->raft, true);
	rv = raft_start(&q->raft);
	if (rv != 0) {
		snprintf(err, errsz, "raft start: %s (%s)", raft_strerror(rv), raft_errmsg(&q->raft));
		goto fail_raft;
	}
	uv_timer_init(loop, &q->poll);
	q->poll.data = q;
	uv_timer_start(&q->poll, on_poll, POLL_MS, POLL_MS);
	*out = q;
	return 0;

fail_raft:
	/* raft_init succeeded: raft_close is the only way out; run the loop
	 * until it is done. */
	q->closing = true;
	raft_close(&q->raft, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	raft_uv_close(&q->io);
	mx_raft_tcp_free(q->transport);
	free(q);
	return -EIO;
fail_io:
	raft_uv_close(&q->io);
	mx_raft_tcp_free(q->transport);
	free(q);
	return -EIO;
}

static void close_step(struct mx_quorum *q)
{
	if (--q->open_handles > 0)
		return;
	raft_uv_close(&q->io);
	mx_raft_tcp_free(q->transport);
	if (q->close_cb)
		q->close_cb(q->close_arg);
	free(q);
}

static void raft_closed(struct raft *r)
{
	close_step(r->data);
}

static void poll_closed(uv_handle_t *h)
{
	close_step(h->data);
}

void mx_quorum_close(struct mx_quorum *q, void (*cb)(void *arg), void *arg)
{
	q->closing = true;
	q->close_cb = cb;
	q->close_arg = arg;
	q->open_handles = 2;
	q->raft.data = q;
	uv_close((uv_handle_t *)&q->poll, poll_closed);
	raft_close(&q->raft, raft_closed);
}

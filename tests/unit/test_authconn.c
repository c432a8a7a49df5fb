/*
 * End-to-end tests of connection authentication (docs/auth.md) through the
 * real lib/net.c and lib/authconn.c: one process, one libuv loop, TCP on
 * 127.0.0.1 with ports chosen by the kernel.  A server plays a "monitor"
 * (keys, from a small table in this file, and tickets it issues) or an "OSD"
 * (tickets only) and echoes every application message; clients authenticate
 * with a key or a ticket and send their messages right after connecting; a
 * byte-forwarding proxy in the same loop flips bits in, replays, drops or
 * reorders frames after the handshake, and records handshakes that raw
 * sockets then replay.  Every wait is bounded by a timer: a case that hangs
 * fails instead of blocking the suite.  `test_authconn renewal` runs one case
 * (after "key", whose tickets the others use).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

#include "auth.h"
#include "authconn.h"
#include "check.h"
#include "log.h"
#include "msg.h"
#include "net.h"

#define WAIT_MS 5000 /* the longest any single wait may take */
#define MAX_CONNS 8
#define N_MSGS 3     /* application messages a client sends at once */

static uv_loop_t loop;

/* Waiting, bounded --------------------------------------------------------- */

static uv_timer_t guard; /* ends a wait that takes too long */
static bool guard_fired;
static uv_timer_t nap; /* for waits of a given length */
static bool nap_over;

static void guard_cb(uv_timer_t *t)
{
	(void)t;
	guard_fired = true;
}

static void nap_cb(uv_timer_t *t)
{
	(void)t;
	nap_over = true;
}

static void fail_wait(const char *what, int line)
{
	mx_check_count++;
	mx_check_failures++;
	fprintf(stderr, "%s:%d: timed out after %d ms waiting for %s\n", __FILE__, line, WAIT_MS,
		what);
}

/* Run the loop until cond holds, for at most WAIT_MS; a timeout is a
 * failure.  Evaluates to whether cond held. */
#define WAIT_FOR(cond)                                                         \
	({                                                                     \
		bool _ok;                                                      \
		guard_fired = false;                                           \
		(void)uv_timer_start(&guard, guard_cb, WAIT_MS, 0);            \
		while (!(cond) && !guard_fired)                                \
			(void)uv_run(&loop, UV_RUN_ONCE);                      \
		(void)uv_timer_stop(&guard);                                   \
		_ok = (cond);                                                  \
		if (!_ok)                                                      \
			fail_wait(#cond, __LINE__);                            \
		_ok;                                                           \
	})

/* Let the loop run for ms milliseconds. */
static void run_for(uint64_t ms)
{
	nap_over = false;
	(void)uv_timer_start(&nap, nap_cb, ms, 0);
	while (!nap_over)
		(void)uv_run(&loop, UV_RUN_ONCE);
}

/* stderr capture: which check closed a connection is only in the log. ------ */

static int saved_stderr = -1, capture_fd = -1;

static void capture_begin(void)
{
	fflush(stderr);
	capture_fd = memfd_create("authconn-log", MFD_CLOEXEC);
	saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
	if (capture_fd >= 0 && saved_stderr >= 0)
		(void)dup2(capture_fd, STDERR_FILENO);
}

/* What was logged since capture_begin (from malloc(); the caller frees it).
 * It is copied to the real stderr too, so that nothing is hidden. */
static char *capture_end(void)
{
	char *text;
	off_t n;

	fflush(stderr);
	if (saved_stderr >= 0) {
		(void)dup2(saved_stderr, STDERR_FILENO);
		(void)close(saved_stderr);
		saved_stderr = -1;
	}
	if (capture_fd < 0)
		return calloc(1, 1);
	n = lseek(capture_fd, 0, SEEK_END);
	text = calloc(1, n > 0 ? (size_t)n + 1 : 1);
	if (text && n > 0 && pread(capture_fd, text, (size_t)n, 0) != n)
		text[0] = '\0';
	(void)close(capture_fd);
	capture_fd = -1;
	if (text)
		fputs(text, stderr);
	return text;
}

/* The monitor's auth database: entity -> key, caps, generation. ------------ */

struct db_entry {
	const char *name;
	uint8_t key[MX_KEY_LEN];
	const char *caps;
	uint32_t generation;
	bool removed;
};

struct authdb {
	struct db_entry e[4];
	int n;
	uint8_t secret[MX_KEY_LEN]; /* the service secret */
	bool no_secret;             /* secret() answers NULL */
	bool no_map;                /* lookup() answers -EAGAIN */
};

static int db_lookup(void *arg, const char *entity, uint8_t key[MX_KEY_LEN],
		     char caps[MX_CAPS_MAX], uint32_t *generation)
{
	struct authdb *db = arg;

	if (db->no_map)
		return -EAGAIN;
	for (int i = 0; i < db->n; i++) {
		const struct db_entry *e = &db->e[i];

		if (!e->removed && strcmp(e->name, entity) == 0) {
			memcpy(key, e->key, MX_KEY_LEN);
			snprintf(caps, MX_CAPS_MAX, "%s", e->caps);
			*generation = e->generation;
			return 0;
		}
	}
	return -ENOENT;
}

static const uint8_t *db_secret(void *arg)
{
	const struct authdb *db = arg;

	return db->no_secret ? NULL : db->secret;
}

static struct authdb db; /* the cluster's: client.admin, client.rw, osd.3 */

static struct db_entry *db_find(struct authdb *d, const char *name)
{
	for (int i = 0; i < d->n; i++)
		if (strcmp(d->e[i].name, name) == 0)
			return &d->e[i];
	return NULL;
}

static void db_add(struct authdb *d, const char *name, const char *caps)
{
	struct db_entry *e = &d->e[d->n++];

	e->name = name;
	e->caps = caps;
	e->generation = 1;
	CHECK_EQ_INT(mx_key_random(e->key), 0);
}

static struct mx_auth_server monitor_auth(struct authdb *d, uint32_t ttl_ms)
{
	return (struct mx_auth_server){
		.required = true, .monitor = true, .ticket_ttl_ms = ttl_ms,
		.arg = d, .lookup = db_lookup, .secret = db_secret,
	};
}

static struct mx_auth_server osd_auth(struct authdb *d)
{
	return (struct mx_auth_server){
		.required = true, .monitor = false, .arg = d, .secret = db_secret,
	};
}

/* Credentials for entity, with its key from the table. */
static void creds_init(struct mx_auth_client *a, const char *entity)
{
	const struct db_entry *e = db_find(&db, entity);

	memset(a, 0, sizeof(*a));
	snprintf(a->entity, sizeof(a->entity), "%s", entity);
	if (e)
		memcpy(a->key, e->key, MX_KEY_LEN);
	else
		CHECK_EQ_INT(mx_key_random(a->key), 0);
}

/* Whether two sets of credentials hold the same ticket and secrets. */
static bool creds_same(const struct mx_auth_client *a, const struct mx_auth_client *b)
{
	return strcmp(a->entity, b->entity) == 0 && memcmp(a->key, b->key, MX_KEY_LEN) == 0 &&
	       a->ticket_len == b->ticket_len &&
	       memcmp(a->ticket, b->ticket, a->ticket_len) == 0 &&
	       memcmp(a->ticket_key, b->ticket_key, MX_KEY_LEN) == 0 &&
	       a->ticket_expires_ms == b->ticket_expires_ms &&
	       a->ticket_got_ms == b->ticket_got_ms && strcmp(a->caps, b->caps) == 0 &&
	       a->have_secret == b->have_secret &&
	       memcmp(a->secret, b->secret, MX_KEY_LEN) == 0;
}

/* The server: accepts, authenticates (or not), echoes. --------------------- */

struct server {
	uv_tcp_t listener;
	bool listener_closed;
	char addr[64];
	const struct mx_auth_server *auth; /* NULL: no authentication */
	struct mx_conn *conns[MAX_CONNS];  /* open connections */
	int n_open, n_accepted;
	int close_err;                     /* of the last connection closed */
	/* What the owner saw: application messages only. */
	int delivered;
	uint64_t tids[16];
	bool unsecured_delivery; /* one arrived on a connection not (yet) secure */
	char entity[MX_ENTITY_MAX];
	struct mx_caps caps;
};

static void server_on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, uint8_t *payload)
{
	struct server *s = c->owner;
	struct mx_wbuf w;

	if (s->delivered < (int)MX_ARRAY_SIZE(s->tids))
		s->tids[s->delivered] = h->tid;
	s->delivered++;
	if (s->auth && c->sec != MX_SEC_ON)
		s->unsecured_delivery = true;
	snprintf(s->entity, sizeof(s->entity), "%s", c->entity);
	s->caps = c->caps;
	/* Echo: a PONG with the same tid and payload. */
	mx_wbuf_init(&w);
	mx_put_bytes(&w, payload, h->len);
	(void)mx_conn_send(c, MX_MSG_PONG, h->tid, &w);
}

static void server_on_close(struct mx_conn *c, int err)
{
	struct server *s = c->owner;

	for (int i = 0; i < MAX_CONNS; i++)
		if (s->conns[i] == c)
			s->conns[i] = NULL;
	s->n_open--;
	s->close_err = err;
}

static const struct mx_conn_ops server_ops = {
	.on_msg = server_on_msg,
	.on_close = server_on_close,
};

static void server_on_connection(uv_stream_t *l, int status)
{
	struct server *s = l->data;
	struct mx_conn *c;

	CHECK_EQ_INT(status, 0);
	if (status < 0 || mx_conn_accept(l, &server_ops, s, &c) < 0)
		return;
	mx_conn_auth_server(c, s->auth);
	s->n_open++;
	s->n_accepted++;
	for (int i = 0; i < MAX_CONNS; i++)
		if (!s->conns[i]) {
			s->conns[i] = c;
			break;
		}
}

static void server_start(struct server *s, const struct mx_auth_server *auth)
{
	memset(s, 0, sizeof(*s));
	s->auth = auth;
	CHECK_EQ_INT(mx_listen(&loop, &s->listener, "127.0.0.1:0", server_on_connection, s->addr,
			       sizeof(s->addr)),
		     0);
	s->listener.data = s;
}

static void listener_closed_cb(uv_handle_t *h)
{
	*(bool *)h->data = true;
}

static void server_stop(struct server *s)
{
	for (int i = 0; i < MAX_CONNS; i++)
		if (s->conns[i])
			mx_conn_close(s->conns[i], 0);
	s->listener.data = &s->listener_closed;
	uv_close((uv_handle_t *)&s->listener, listener_closed_cb);
	(void)WAIT_FOR(s->n_open == 0 && s->listener_closed);
}

/* The client: connects, sends N_MSGS PINGs at once, checks the echoes. ----- */

#define MAX_TIDS 16

struct client {
	struct mx_conn *c;
	int sent;
	size_t extra[MAX_TIDS + 1]; /* pattern bytes after "message TID", by tid */
	bool send_on_connect;       /* one more message from on_connect */
	bool close_on_connect;
	int replies;   /* PONGs received, each checked */
	bool order_ok; /* every PONG had the next tid and its payload */
	int error_replies;
	char error_message[256];
	bool connected, closed;
	int close_err;
	char auth_error[256];
	struct mx_auth_client *creds;
	uint8_t mode;
};

static int client_send(struct client *cl, size_t extra);

static void client_on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, uint8_t *payload)
{
	struct client *cl = c->owner;
	char want[32];

	if (h->type == MX_MSG_PONG) {
		uint64_t tid = (uint64_t)cl->replies + 1;
		int n = snprintf(want, sizeof(want), "message %llu", (unsigned long long)tid);
		size_t extra = tid <= MAX_TIDS ? cl->extra[tid] : 0;

		if (h->tid != tid || h->len != (size_t)n + extra ||
		    memcmp(payload, want, (size_t)n) != 0)
			cl->order_ok = false;
		for (size_t i = 0; cl->order_ok && i < extra; i++)
			if (payload[(size_t)n + i] != (uint8_t)(i * 7 + tid))
				cl->order_ok = false;
		cl->replies++;
	} else if (h->type == MX_MSG_ERROR_REPLY) {
		struct mx_msg_error_reply er;

		cl->error_replies++;
		if (mx_dec_error_reply(payload, h->len, &er) == 0)
			snprintf(cl->error_message, sizeof(cl->error_message), "%s", er.message);
	}
}

static void client_on_connect(struct mx_conn *c)
{
	struct client *cl = c->owner;

	cl->connected = true;
	if (cl->close_on_connect)
		mx_conn_close(c, 0);
	else if (cl->send_on_connect)
		CHECK_EQ_INT(client_send(cl, 0), 0);
}

static void client_on_close(struct mx_conn *c, int err)
{
	struct client *cl = c->owner;

	cl->closed = true;
	cl->close_err = err;
	snprintf(cl->auth_error, sizeof(cl->auth_error), "%s", c->auth_error);
	cl->c = NULL;
}

static const struct mx_conn_ops client_ops = {
	.on_msg = client_on_msg,
	.on_close = client_on_close,
	.on_connect = client_on_connect,
};

/* Send the next message: "message TID" and extra bytes of a pattern. */
static int client_send(struct client *cl, size_t extra)
{
	struct mx_wbuf w;
	char text[32];
	uint64_t tid;
	uint8_t *p;
	int n;

	if (!cl->c)
		return -ENOTCONN;
	tid = (uint64_t)++cl->sent;
	n = snprintf(text, sizeof(text), "message %llu", (unsigned long long)tid);
	CHECK(tid <= MAX_TIDS);
	if (tid <= MAX_TIDS)
		cl->extra[tid] = extra;
	mx_wbuf_init(&w);
	mx_put_bytes(&w, text, (size_t)n);
	p = extra ? mx_wbuf_reserve(&w, extra) : NULL;
	if (p) {
		for (size_t i = 0; i < extra; i++)
			p[i] = (uint8_t)(i * 7 + tid);
		w.len += extra;
	}
	return mx_conn_send(cl->c, MX_MSG_PING, tid, &w);
}

/* Connect to addr, with creds in mode (creds NULL: no authentication), and
 * send N_MSGS messages at once: they must wait for the handshake. */
static void client_start(struct client *cl, const char *addr, struct mx_auth_client *creds,
			 uint8_t mode)
{
	memset(cl, 0, sizeof(*cl));
	cl->order_ok = true;
	cl->creds = creds;
	cl->mode = mode;
	CHECK_EQ_INT(mx_conn_connect(&loop, addr, &client_ops, cl, &cl->c), 0);
	if (!cl->c) {
		cl->closed = true;
		return;
	}
	if (creds)
		mx_conn_auth_client(cl->c, creds, mode);
	for (int i = 0; i < N_MSGS; i++)
		CHECK_EQ_INT(client_send(cl, 0), 0);
}

static void client_stop(struct client *cl)
{
	if (cl->c)
		mx_conn_close(cl->c, 0);
	(void)WAIT_FOR(cl->closed);
}

/* A complete, successful exchange: every message echoed, in order. */
static bool client_done(const struct client *cl)
{
	return cl->replies >= cl->sent || cl->closed;
}

/* The proxy: forwards bytes, frame by frame, and may alter one frame. ------ */

enum px_action {
	PX_NONE,
	PX_FLIP_MAC,     /* one bit of the frame's MAC */
	PX_FLIP_PAYLOAD, /* one bit of the payload, CRCs recomputed */
	PX_FLIP_TID,     /* one bit of the header's tid, CRC recomputed */
	PX_DUP,          /* the frame twice (a replay) */
	PX_DROP,         /* not at all */
	PX_SWAP,         /* after the next one */
	PX_REFLECT,      /* passed on, and sent back to its sender in place of
			    the other end's next frame */
};

enum { TO_SERVER = 0, TO_CLIENT = 1 };

struct proxy;

struct px_dir {
	uint8_t *buf; /* From malloc(): bytes not forwarded yet (a partial frame) */
	size_t len, cap;
	int app_frames; /* frames with a MAC seen so far */
	uint8_t *held;  /* From malloc(): PX_SWAP's frame, sent after the next */
	size_t held_len;
	int drop;       /* frames with a MAC to drop (PX_REFLECT) */
};

struct pair {
	struct proxy *px;
	uv_tcp_t down, up; /* from the client; to the server */
	uv_connect_t creq;
	int open_handles;
	bool closing;
	bool eof[2]; /* a direction's sender is done */
	struct px_dir dir[2];
};

struct proxy {
	uv_tcp_t listener;
	bool listener_closed;
	char addr[64];
	char target[64];
	int dir;              /* the direction the action applies to */
	enum px_action action;
	int nth;              /* to the nth frame with a MAC (from 0) */
	int acted;
	bool record;
	struct mx_wbuf rec[2]; /* each direction's bytes as received */
	int pairs_open;
};

struct px_write {
	uv_write_t req;
	size_t len;
	uint8_t data[];
};

static void px_handle_closed(uv_handle_t *h)
{
	struct pair *p = h->data;

	if (--p->open_handles > 0)
		return;
	for (int d = 0; d < 2; d++) {
		free(p->dir[d].buf);
		free(p->dir[d].held);
	}
	p->px->pairs_open--;
	free(p);
}

static void pair_close(struct pair *p)
{
	if (p->closing)
		return;
	p->closing = true;
	uv_close((uv_handle_t *)&p->down, px_handle_closed);
	uv_close((uv_handle_t *)&p->up, px_handle_closed);
}

static void px_write_cb(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

static void px_write(struct pair *p, uv_tcp_t *to, const uint8_t *data, size_t n)
{
	struct px_write *w;
	uv_buf_t b;

	if (p->closing || n == 0)
		return;
	w = malloc(sizeof(*w) + n);
	if (!w) {
		pair_close(p);
		return;
	}
	memcpy(w->data, data, n);
	w->len = n;
	b = uv_buf_init((char *)w->data, (unsigned)n);
	if (uv_write(&w->req, (uv_stream_t *)to, &b, 1, px_write_cb) < 0) {
		free(w);
		pair_close(p);
	}
}

/* Frames that travel before the handshake ends carry no MAC. */
static bool px_no_mac(int d, uint16_t type)
{
	if (d == TO_SERVER)
		return type == MX_MSG_AUTH_HELLO || type == MX_MSG_AUTH_PROOF;
	return type == MX_MSG_AUTH_CHALLENGE || type == MX_MSG_AUTH_DONE;
}

static void px_tamper(struct pair *p, struct px_dir *x, uv_tcp_t *to, uint8_t *f, size_t flen,
		      const struct mx_msg_hdr *h)
{
	uv_tcp_t *back = to == &p->up ? &p->down : &p->up;

	switch (p->px->action) {
	case PX_NONE:
		px_write(p, to, f, flen);
		return;
	case PX_FLIP_MAC:
		f[flen - 1] ^= 0x01;
		px_write(p, to, f, flen);
		break;
	case PX_FLIP_PAYLOAD:
		/* A CRC is no defence against a deliberate change: recompute it,
		 * so that only the MAC can tell. */
		CHECK(h->len > 0);
		f[MX_MSG_HDR_LEN] ^= 0x01;
		mx_msg_hdr_encode(f, h->type, h->tid, f + MX_MSG_HDR_LEN, h->len);
		px_write(p, to, f, flen);
		break;
	case PX_FLIP_TID:
		mx_msg_hdr_encode(f, h->type, h->tid ^ 1, f + MX_MSG_HDR_LEN, h->len);
		px_write(p, to, f, flen);
		break;
	case PX_DUP:
		px_write(p, to, f, flen);
		px_write(p, to, f, flen);
		break;
	case PX_DROP:
		break;
	case PX_SWAP:
		x->held = malloc(flen);
		if (x->held) {
			memcpy(x->held, f, flen);
			x->held_len = flen;
		}
		break;
	case PX_REFLECT:
		/* The sender's own frame in place of its peer's with the same
		 * sequence number: only the direction in the MAC differs. */
		px_write(p, to, f, flen);
		px_write(p, back, f, flen);
		p->dir[x == &p->dir[TO_SERVER] ? TO_CLIENT : TO_SERVER].drop++;
		break;
	}
	p->px->acted++;
}

/* Bytes from one side: forward them whole frames at a time, the chosen one
 * altered. */
static void px_forward(struct pair *p, int d, const uint8_t *data, size_t n)
{
	struct proxy *px = p->px;
	struct px_dir *x = &p->dir[d];
	uv_tcp_t *to = d == TO_SERVER ? &p->up : &p->down;

	if (px->record)
		mx_put_bytes(&px->rec[d], data, n);
	if (x->cap - x->len < n) {
		size_t cap = x->len + n;
		uint8_t *nb = realloc(x->buf, cap);

		if (!nb) {
			pair_close(p);
			return;
		}
		x->buf = nb;
		x->cap = cap;
	}
	memcpy(x->buf + x->len, data, n);
	x->len += n;
	while (x->len >= MX_MSG_HDR_LEN) {
		struct mx_msg_hdr h;
		size_t flen;
		bool mac;

		if (mx_msg_hdr_decode(x->buf, &h) < 0) {
			/* Not ours to judge: pass it on as it is. */
			px_write(p, to, x->buf, x->len);
			x->len = 0;
			break;
		}
		mac = !px_no_mac(d, h.type);
		flen = MX_MSG_HDR_LEN + (size_t)h.len + (mac ? MX_MAC_LEN : 0);
		if (x->len < flen)
			break;
		if (mac && d == px->dir && x->app_frames++ == px->nth) {
			px_tamper(p, x, to, x->buf, flen, &h);
		} else if (mac && x->drop > 0) {
			x->drop--;
		} else {
			px_write(p, to, x->buf, flen);
			if (x->held) {
				px_write(p, to, x->held, x->held_len);
				free(x->held);
				x->held = NULL;
			}
		}
		memmove(x->buf, x->buf + flen, x->len - flen);
		x->len -= flen;
	}
}

static void px_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	buf->base = malloc(suggested);
	buf->len = buf->base ? suggested : 0;
}

static void px_shutdown_cb(uv_shutdown_t *req, int status)
{
	struct pair *p = req->data;

	(void)status;
	free(req);
	/* Both directions finished: nothing more to carry. */
	if (p->eof[TO_SERVER] && p->eof[TO_CLIENT])
		pair_close(p);
}

/* One side is done sending: pass the half-close on, so that what was sent
 * before it (a refusal, say) still arrives. */
static void px_eof(struct pair *p, int d)
{
	uv_shutdown_t *req;

	p->eof[d] = true;
	(void)uv_read_stop((uv_stream_t *)(d == TO_SERVER ? &p->down : &p->up));
	req = malloc(sizeof(*req));
	if (!req) {
		pair_close(p);
		return;
	}
	req->data = p;
	if (uv_shutdown(req, (uv_stream_t *)(d == TO_SERVER ? &p->up : &p->down),
			px_shutdown_cb) < 0) {
		free(req);
		pair_close(p);
	}
}

static void px_read(struct pair *p, int d, ssize_t n, const uv_buf_t *buf)
{
	if (n > 0 && !p->closing)
		px_forward(p, d, (const uint8_t *)buf->base, (size_t)n);
	free(buf->base);
	if (n == UV_EOF && !p->closing)
		px_eof(p, d);
	else if (n < 0)
		pair_close(p);
}

static void px_read_down(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	px_read(s->data, TO_SERVER, n, buf);
}

static void px_read_up(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	px_read(s->data, TO_CLIENT, n, buf);
}

static void px_connected(uv_connect_t *req, int status)
{
	struct pair *p = req->data;

	if (p->closing)
		return;
	if (status < 0 || uv_read_start((uv_stream_t *)&p->down, px_alloc, px_read_down) < 0 ||
	    uv_read_start((uv_stream_t *)&p->up, px_alloc, px_read_up) < 0)
		pair_close(p);
}

static void px_on_connection(uv_stream_t *l, int status)
{
	struct proxy *px = l->data;
	struct pair *p = calloc(1, sizeof(*p));
	struct sockaddr_in sin;

	CHECK(status == 0 && p);
	if (status < 0 || !p) {
		free(p);
		return;
	}
	p->px = px;
	px->pairs_open++;
	(void)uv_tcp_init(&loop, &p->down);
	(void)uv_tcp_init(&loop, &p->up);
	p->open_handles = 2;
	p->down.data = p->up.data = p->creq.data = p;
	CHECK_EQ_INT(mx_parse_addr(px->target, &sin), 0);
	if (uv_accept(l, (uv_stream_t *)&p->down) < 0 ||
	    uv_tcp_connect(&p->creq, &p->up, (const struct sockaddr *)&sin, px_connected) < 0)
		pair_close(p);
}

/* A proxy to target that applies action to the nth frame with a MAC going
 * in direction dir. */
static void proxy_start(struct proxy *px, const char *target, int dir, enum px_action action,
			int nth)
{
	memset(px, 0, sizeof(*px));
	snprintf(px->target, sizeof(px->target), "%s", target);
	px->dir = dir;
	px->action = action;
	px->nth = nth;
	mx_wbuf_init(&px->rec[0]);
	mx_wbuf_init(&px->rec[1]);
	CHECK_EQ_INT(mx_listen(&loop, &px->listener, "127.0.0.1:0", px_on_connection, px->addr,
			       sizeof(px->addr)),
		     0);
	px->listener.data = px;
}

static void proxy_stop(struct proxy *px)
{
	px->listener.data = &px->listener_closed;
	uv_close((uv_handle_t *)&px->listener, listener_closed_cb);
	(void)WAIT_FOR(px->pairs_open == 0 && px->listener_closed);
	mx_wbuf_free(&px->rec[0]);
	mx_wbuf_free(&px->rec[1]);
}

/* Raw sockets: replay recorded bytes and collect the answer. --------------- */

struct raw {
	uv_tcp_t tcp;
	uv_connect_t creq;
	const uint8_t *send; /* not owned */
	size_t send_len;
	struct mx_wbuf got;  /* every byte the other end sent */
	bool closed;
};

static void raw_closed(uv_handle_t *h)
{
	struct raw *r = h->data;

	r->closed = true;
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct raw *r = s->data;

	if (n > 0)
		mx_put_bytes(&r->got, buf->base, (size_t)n);
	free(buf->base);
	if (n < 0 && !uv_is_closing((uv_handle_t *)&r->tcp))
		uv_close((uv_handle_t *)&r->tcp, raw_closed);
}

static void raw_write_cb(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

/* Send r's bytes and read until the other end closes. */
static void raw_go(struct raw *r)
{
	uv_write_t *req = malloc(sizeof(*req));
	uv_buf_t b = uv_buf_init((char *)r->send, (unsigned)r->send_len);

	if (!req || uv_write(req, (uv_stream_t *)&r->tcp, &b, 1, raw_write_cb) < 0 ||
	    uv_read_start((uv_stream_t *)&r->tcp, px_alloc, raw_read) < 0) {
		free(req);
		uv_close((uv_handle_t *)&r->tcp, raw_closed);
	}
}

static void raw_connected(uv_connect_t *req, int status)
{
	struct raw *r = req->data;

	CHECK_EQ_INT(status, 0);
	if (status < 0) {
		if (!uv_is_closing((uv_handle_t *)&r->tcp))
			uv_close((uv_handle_t *)&r->tcp, raw_closed);
		return;
	}
	raw_go(r);
}

/* Connect to addr, send bytes, collect the answer until the server closes. */
static void raw_replay(struct raw *r, const char *addr, const uint8_t *bytes, size_t len)
{
	struct sockaddr_in sin;

	memset(r, 0, sizeof(*r));
	mx_wbuf_init(&r->got);
	r->send = bytes;
	r->send_len = len;
	CHECK_EQ_INT(mx_parse_addr(addr, &sin), 0);
	(void)uv_tcp_init(&loop, &r->tcp);
	r->tcp.data = r;
	r->creq.data = r;
	if (uv_tcp_connect(&r->creq, &r->tcp, (const struct sockaddr *)&sin, raw_connected) < 0) {
		CHECK(0);
		uv_close((uv_handle_t *)&r->tcp, raw_closed);
	}
	if (!WAIT_FOR(r->closed) && !uv_is_closing((uv_handle_t *)&r->tcp)) {
		uv_close((uv_handle_t *)&r->tcp, raw_closed);
		(void)WAIT_FOR(r->closed);
	}
}

/* The frames of a byte stream without MACs (a handshake): the type of each,
 * and the first AUTH_DONE decoded into done (pointing into bytes). */
static int parse_handshake(const uint8_t *bytes, size_t len, uint16_t *types, int max,
			   struct mx_msg_auth_done *done, bool *have_done)
{
	size_t at = 0;
	int n = 0;

	*have_done = false;
	while (len - at >= MX_MSG_HDR_LEN) {
		struct mx_msg_hdr h;

		if (mx_msg_hdr_decode(bytes + at, &h) < 0 || len - at < MX_MSG_HDR_LEN + h.len)
			break;
		if (n < max)
			types[n] = h.type;
		n++;
		if (h.type == MX_MSG_AUTH_DONE && !*have_done)
			*have_done =
				mx_dec_auth_done(bytes + at + MX_MSG_HDR_LEN, h.len, done) == 0;
		at += MX_MSG_HDR_LEN + h.len;
	}
	return n;
}

/* A fake server: sends recorded bytes to whoever connects, then reads and
 * drops what comes until the other end closes. */
struct fake {
	uv_tcp_t listener;
	bool listener_closed;
	char addr[64];
	struct raw conn;
	bool accepted;
	const uint8_t *send;
	size_t send_len;
};

static void fake_on_connection(uv_stream_t *l, int status)
{
	struct fake *f = l->data;

	CHECK(status == 0 && !f->accepted);
	if (status < 0 || f->accepted)
		return;
	f->accepted = true;
	memset(&f->conn, 0, sizeof(f->conn));
	mx_wbuf_init(&f->conn.got);
	f->conn.send = f->send;
	f->conn.send_len = f->send_len;
	(void)uv_tcp_init(&loop, &f->conn.tcp);
	f->conn.tcp.data = &f->conn;
	if (uv_accept(l, (uv_stream_t *)&f->conn.tcp) < 0) {
		uv_close((uv_handle_t *)&f->conn.tcp, raw_closed);
		return;
	}
	raw_go(&f->conn);
}

/* Case 1: a key-mode handshake with a monitor. ----------------------------- */

static struct mx_auth_client rw_creds;  /* client.rw, with its ticket after case 1 */
static struct mx_auth_client osd_creds; /* osd.3 */
static int rw_tickets;                  /* on_ticket calls for rw_creds */

static void count_ticket(void *arg)
{
	(*(int *)arg)++;
}

/* Authenticate creds with a key to a monitor and exchange messages; the
 * server must see the entity with want_caps. */
static void key_handshake(struct mx_auth_client *creds, const char *want_caps)
{
	struct mx_auth_server ma = monitor_auth(&db, 60000);
	struct server s;
	struct client cl;
	struct mx_caps caps;
	char err[128];
	uint64_t now;

	server_start(&s, &ma);
	client_start(&cl, s.addr, creds, MX_AUTH_MODE_KEY);
	/* Sent before the connection is up, and one from on_connect (during
	 * the handshake): all wait for it, and keep their order.  One is
	 * larger than a read chunk. */
	CHECK_EQ_INT(client_send(&cl, 3u << 20), 0);
	cl.send_on_connect = true;
	CHECK(WAIT_FOR(cl.replies == N_MSGS + 2 || cl.closed));
	CHECK(!cl.closed);
	CHECK(cl.c && cl.c->sec == MX_SEC_ON);
	CHECK_EQ_INT(cl.sent, N_MSGS + 2);
	CHECK_EQ_INT(cl.replies, N_MSGS + 2);
	CHECK(cl.order_ok);
	CHECK_EQ_INT(s.delivered, N_MSGS + 2);
	for (int i = 0; i < N_MSGS + 2; i++)
		CHECK_EQ_INT(s.tids[i], i + 1);
	CHECK(!s.unsecured_delivery);
	CHECK(strcmp(s.entity, creds->entity) == 0);
	CHECK_EQ_INT(mx_caps_parse(want_caps, &caps, err, sizeof(err)), 0);
	CHECK(memcmp(&s.caps, &caps, sizeof(caps)) == 0);
	/* The ticket, its key and lifetime, the caps. */
	now = mx_wall_ms();
	CHECK(creds->ticket_len > 0);
	CHECK(creds->ticket_expires_ms > now && creds->ticket_expires_ms <= now + 60000);
	CHECK(strcmp(creds->caps, want_caps) == 0);
	CHECK(!mx_auth_ticket_due(creds, now));
	client_stop(&cl);
	server_stop(&s);
	CHECK_EQ_INT(s.n_accepted, 1);
}

static void test_key_mode(void)
{
	struct mx_auth_client admin;
	struct mx_ticket t;

	fprintf(stderr, "== key mode\n");
	creds_init(&rw_creds, "client.rw");
	rw_creds.on_ticket = count_ticket;
	rw_creds.arg = &rw_tickets;
	key_handshake(&rw_creds, "rw pool=rbd,images");
	CHECK_EQ_INT(rw_tickets, 1);
	/* A client does not get the service secret. */
	CHECK(!rw_creds.have_secret);
	/* The ticket is what the monitor says, sealed with the service secret. */
	CHECK_EQ_INT(mx_ticket_open(db.secret, rw_creds.ticket, rw_creds.ticket_len, &t), 0);
	CHECK(strcmp(t.entity, "client.rw") == 0 && strcmp(t.caps, "rw pool=rbd,images") == 0);
	CHECK(memcmp(t.key, rw_creds.ticket_key, MX_KEY_LEN) == 0);
	CHECK(t.expires_ms == rw_creds.ticket_expires_ms);

	creds_init(&admin, "client.admin");
	key_handshake(&admin, "admin");
	CHECK(!admin.have_secret);

	/* An OSD does. */
	creds_init(&osd_creds, "osd.3");
	key_handshake(&osd_creds, "osd");
	CHECK(osd_creds.have_secret);
	CHECK(memcmp(osd_creds.secret, db.secret, MX_KEY_LEN) == 0);
}

/* Case 2: the ticket from case 1, to an OSD. -------------------------------- */

static void ticket_handshake(struct mx_auth_client *creds, const char *want_caps)
{
	struct mx_auth_server oa = osd_auth(&db);
	struct server s;
	struct client cl;
	struct mx_caps caps;
	char err[128];

	server_start(&s, &oa);
	client_start(&cl, s.addr, creds, MX_AUTH_MODE_TICKET);
	CHECK(WAIT_FOR(client_done(&cl)));
	CHECK(!cl.closed);
	CHECK_EQ_INT(cl.replies, N_MSGS);
	CHECK(cl.order_ok);
	CHECK_EQ_INT(s.delivered, N_MSGS);
	CHECK(!s.unsecured_delivery);
	CHECK(strcmp(s.entity, creds->entity) == 0);
	CHECK_EQ_INT(mx_caps_parse(want_caps, &caps, err, sizeof(err)), 0);
	CHECK(memcmp(&s.caps, &caps, sizeof(caps)) == 0);
	/* Renewal is for monitor connections only. */
	if (cl.c)
		CHECK_EQ_INT(mx_authconn_renew(cl.c), -EINVAL);
	client_stop(&cl);
	server_stop(&s);
}

static void test_ticket_mode(void)
{
	fprintf(stderr, "== ticket mode\n");
	ticket_handshake(&rw_creds, "rw pool=rbd,images");
	/* OSD to OSD, with the OSD's own ticket. */
	ticket_handshake(&osd_creds, "osd");
}

/* Case 3: refusals. ---------------------------------------------------------- */

/* Connect with creds in mode to a server checking with auth: the client must
 * be refused with err and a message containing want, and the server's owner
 * must receive nothing. */
static void expect_refusal(const struct mx_auth_server *auth, struct mx_auth_client *creds,
			   uint8_t mode, int err, const char *want)
{
	struct server s;
	struct client cl;

	server_start(&s, auth);
	client_start(&cl, s.addr, creds, mode);
	CHECK(WAIT_FOR(cl.closed));
	CHECK_EQ_INT(cl.close_err, err);
	if (!strstr(cl.auth_error, want)) {
		fprintf(stderr, "refusal: got \"%s\", want \"%s\"\n", cl.auth_error, want);
		CHECK(strstr(cl.auth_error, want));
	}
	CHECK_EQ_INT(cl.replies, 0);
	CHECK(WAIT_FOR(s.n_open == 0));
	CHECK_EQ_INT(s.delivered, 0);
	client_stop(&cl);
	server_stop(&s);
}

static void test_refusals(void)
{
	struct mx_auth_server ma = monitor_auth(&db, 60000), oa = osd_auth(&db);
	struct mx_auth_server short_ma = monitor_auth(&db, 1);
	struct authdb other = {0}, none = {.no_secret = true};
	struct mx_auth_server other_oa = osd_auth(&other), none_oa = osd_auth(&none);
	struct mx_auth_client a, expired;
	struct server s;
	struct client cl;

	fprintf(stderr, "== refusals\n");
	creds_init(&a, "client.nobody");
	expect_refusal(&ma, &a, MX_AUTH_MODE_KEY, -EACCES, "client.nobody has no key here");

	/* A wrong key.  The monitor proves itself first (in AUTH_CHALLENGE),
	 * so it is the client that finds the keys differ; the monitor's own
	 * refusal of a wrong proof is checked by the replays below. */
	creds_init(&a, "client.rw");
	a.key[0] ^= 0x80;
	expect_refusal(&ma, &a, MX_AUTH_MODE_KEY, -EACCES,
		       "does not match our key for client.rw: the key is wrong");

	/* A monitor without its map (and auth database) yet. */
	db.no_map = true;
	creds_init(&a, "client.rw");
	expect_refusal(&ma, &a, MX_AUTH_MODE_KEY, -EAGAIN, "has no map yet");
	db.no_map = false;

	/* Not a valid entity name at all. */
	creds_init(&a, "mon.a");
	expect_refusal(&ma, &a, MX_AUTH_MODE_KEY, -EACCES, "not an entity name");

	/* A key to an OSD. */
	expect_refusal(&oa, &rw_creds, MX_AUTH_MODE_KEY, -EACCES, "an OSD takes tickets");

	/* A ticket sealed with another secret. */
	CHECK_EQ_INT(mx_key_random(other.secret), 0);
	expect_refusal(&other_oa, &rw_creds, MX_AUTH_MODE_TICKET, -EACCES,
		       "sealed with another secret");

	/* An altered ticket. */
	a = rw_creds;
	a.on_ticket = NULL;
	a.ticket[a.ticket_len / 2] ^= 0x04;
	expect_refusal(&oa, &a, MX_AUTH_MODE_TICKET, -EACCES, "the ticket is not valid");

	/* An OSD that does not know the service secret yet. */
	expect_refusal(&none_oa, &rw_creds, MX_AUTH_MODE_TICKET, -EAGAIN,
		       "cannot check tickets yet");

	/* No ticket at all: the client does not even try. */
	creds_init(&a, "client.rw");
	expect_refusal(&oa, &a, MX_AUTH_MODE_TICKET, -EACCES, "has no ticket yet");

	/* An expired ticket: a monitor that issues 1 ms tickets. */
	creds_init(&expired, "client.rw");
	server_start(&s, &short_ma);
	client_start(&cl, s.addr, &expired, MX_AUTH_MODE_KEY);
	CHECK(WAIT_FOR(client_done(&cl)));
	CHECK_EQ_INT(cl.replies, N_MSGS);
	client_stop(&cl);
	server_stop(&s);
	CHECK(expired.ticket_len > 0);
	run_for(20);
	CHECK(mx_wall_ms() > expired.ticket_expires_ms);
	CHECK(mx_auth_ticket_due(&expired, mx_wall_ms()));
	expect_refusal(&oa, &expired, MX_AUTH_MODE_TICKET, -EKEYEXPIRED,
		       "the ticket of client.rw expired");
}

/* Without credentials, to a server that requires them. */
static void test_unauthenticated(void)
{
	struct mx_auth_server ma = monitor_auth(&db, 60000), oa = osd_auth(&db);
	const struct mx_auth_server *servers[] = {&ma, &oa};

	fprintf(stderr, "== unauthenticated client\n");
	for (size_t i = 0; i < MX_ARRAY_SIZE(servers); i++) {
		struct server s;
		struct client cl;

		server_start(&s, servers[i]);
		client_start(&cl, s.addr, NULL, 0);
		CHECK(WAIT_FOR(cl.closed));
		CHECK_EQ_INT(cl.error_replies, 1);
		CHECK(strstr(cl.error_message, "authentication required"));
		CHECK_EQ_INT(cl.replies, 0);
		CHECK(WAIT_FOR(s.n_open == 0));
		CHECK_EQ_INT(s.delivered, 0);
		CHECK_EQ_INT(s.close_err, -EACCES);
		server_stop(&s);
	}
}

/* Case 4: tampering after the handshake. -------------------------------------- */

/* Through a proxy that applies action to the nth frame with a MAC in
 * direction dir: the receiving end (for PX_REFLECT, the sending end) must
 * close ("message authentication failed") having delivered exactly
 * want_delivered messages. */
static void expect_tamper_caught(const char *what, uint8_t mode, int dir, enum px_action action,
				 int nth, int want_delivered)
{
	struct mx_auth_server ma = monitor_auth(&db, 60000), oa = osd_auth(&db);
	struct server s;
	struct proxy px;
	struct client cl;
	char *log;

	fprintf(stderr, "-- %s\n", what);
	server_start(&s, mode == MX_AUTH_MODE_KEY ? &ma : &oa);
	proxy_start(&px, s.addr, dir, action, nth);
	capture_begin();
	client_start(&cl, px.addr, &rw_creds, mode);
	(void)WAIT_FOR(cl.closed && s.n_open == 0);
	log = capture_end();
	CHECK_EQ_INT(px.acted, 1);
	if (dir == TO_SERVER && action != PX_REFLECT) {
		/* The frames before the altered one arrive, it and those after
		 * do not. */
		CHECK_EQ_INT(s.delivered, want_delivered);
		for (int i = 0; i < s.delivered && i < N_MSGS; i++)
			CHECK_EQ_INT(s.tids[i], i + 1);
		CHECK_EQ_INT(s.close_err, -EBADMSG);
		CHECK(cl.replies <= want_delivered);
	} else {
		/* The server answered everything; the client takes the replies
		 * before the altered one. */
		CHECK_EQ_INT(cl.replies, want_delivered);
		CHECK_EQ_INT(cl.close_err, -EBADMSG);
	}
	CHECK(cl.order_ok);
	CHECK(!s.unsecured_delivery);
	CHECK(log && strstr(log, "message authentication failed"));
	free(log);
	client_stop(&cl);
	proxy_stop(&px);
	server_stop(&s);
}

static void test_tampering(void)
{
	struct mx_auth_server ma = monitor_auth(&db, 60000);
	struct server s;
	struct proxy px;
	struct client cl;

	fprintf(stderr, "== tampering\n");
	/* The proxy itself changes nothing when told to change nothing. */
	server_start(&s, &ma);
	proxy_start(&px, s.addr, TO_SERVER, PX_NONE, 0);
	client_start(&cl, px.addr, &rw_creds, MX_AUTH_MODE_KEY);
	CHECK(WAIT_FOR(client_done(&cl)));
	CHECK_EQ_INT(cl.replies, N_MSGS);
	CHECK_EQ_INT(s.delivered, N_MSGS);
	client_stop(&cl);
	proxy_stop(&px);
	server_stop(&s);

	expect_tamper_caught("a bit of the first frame's MAC", MX_AUTH_MODE_KEY, TO_SERVER,
			     PX_FLIP_MAC, 0, 0);
	expect_tamper_caught("a bit of the first frame's payload, CRC fixed", MX_AUTH_MODE_KEY,
			     TO_SERVER, PX_FLIP_PAYLOAD, 0, 0);
	expect_tamper_caught("a bit of the second frame's payload, CRC fixed (ticket mode)",
			     MX_AUTH_MODE_TICKET, TO_SERVER, PX_FLIP_PAYLOAD, 1, 1);
	expect_tamper_caught("a bit of the second frame's tid, CRC fixed", MX_AUTH_MODE_KEY,
			     TO_SERVER, PX_FLIP_TID, 1, 1);
	expect_tamper_caught("the second frame replayed", MX_AUTH_MODE_KEY, TO_SERVER, PX_DUP, 1,
			     2);
	expect_tamper_caught("the second frame dropped", MX_AUTH_MODE_KEY, TO_SERVER, PX_DROP, 1,
			     1);
	expect_tamper_caught("the first two frames swapped", MX_AUTH_MODE_KEY, TO_SERVER,
			     PX_SWAP, 0, 0);
	expect_tamper_caught("the client's first frame reflected back to it", MX_AUTH_MODE_KEY,
			     TO_SERVER, PX_REFLECT, 0, 0);
	expect_tamper_caught("a reply's payload altered, CRC fixed", MX_AUTH_MODE_KEY,
			     TO_CLIENT, PX_FLIP_PAYLOAD, 1, 1);
	expect_tamper_caught("a reply dropped (ticket mode)", MX_AUTH_MODE_TICKET, TO_CLIENT,
			     PX_DROP, 0, 0);
}

/* Case 5: replayed handshakes. ------------------------------------------------ */

/* Record a successful handshake and its messages through a proxy: both
 * directions' bytes are left in rec (from malloc(); the caller frees them). */
static void record_session(const struct mx_auth_server *auth, struct mx_auth_client *creds,
			   uint8_t mode, struct mx_wbuf rec[2])
{
	struct server s;
	struct proxy px;
	struct client cl;

	server_start(&s, auth);
	proxy_start(&px, s.addr, TO_SERVER, PX_NONE, 0);
	px.record = true;
	client_start(&cl, px.addr, creds, mode);
	CHECK(WAIT_FOR(client_done(&cl)));
	CHECK_EQ_INT(cl.replies, N_MSGS);
	client_stop(&cl);
	CHECK(WAIT_FOR(px.pairs_open == 0));
	for (int d = 0; d < 2; d++) {
		rec[d] = px.rec[d];
		mx_wbuf_init(&px.rec[d]);
	}
	proxy_stop(&px);
	server_stop(&s);
}

/* Replay to a fresh server the client's bytes of a recorded session: the
 * server's new nonce makes the old proof wrong. */
static void replay_to_server(const struct mx_auth_server *auth, const struct mx_wbuf *rec,
			     const char *want)
{
	struct server s;
	struct raw r;
	struct mx_msg_auth_done d;
	uint16_t types[8];
	bool have_done;
	int n;

	server_start(&s, auth);
	raw_replay(&r, s.addr, rec->data, rec->len);
	CHECK(WAIT_FOR(s.n_open == 0));
	CHECK_EQ_INT(s.delivered, 0);
	n = parse_handshake(r.got.data, r.got.len, types, 8, &d, &have_done);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(types[0], MX_MSG_AUTH_CHALLENGE);
	CHECK(have_done);
	if (have_done) {
		CHECK_EQ_INT(mx_wire_to_errno(d.status), -EACCES);
		if (!strstr(d.message, want)) {
			fprintf(stderr, "replay: got \"%s\", want \"%s\"\n", d.message, want);
			CHECK(0);
		}
		CHECK_EQ_INT(d.ticket_len, 0);
		CHECK_EQ_INT(d.sealed_len, 0);
	}
	mx_wbuf_free(&r.got);
	server_stop(&s);
}

/* Replay to a client the server's bytes of a recorded session: the client's
 * new nonce makes the old server proof wrong, and nothing of it is taken. */
static void replay_to_client(struct mx_auth_client *creds, uint8_t mode,
			     const struct mx_wbuf *rec)
{
	struct fake f;
	struct client cl;
	struct mx_auth_client before = *creds;

	memset(&f, 0, sizeof(f));
	f.send = rec->data;
	f.send_len = rec->len;
	CHECK_EQ_INT(mx_listen(&loop, &f.listener, "127.0.0.1:0", fake_on_connection, f.addr,
			       sizeof(f.addr)),
		     0);
	f.listener.data = &f;
	client_start(&cl, f.addr, creds, mode);
	CHECK(WAIT_FOR(cl.closed));
	CHECK_EQ_INT(cl.close_err, -EACCES);
	CHECK(strstr(cl.auth_error, "does not match our key"));
	CHECK_EQ_INT(cl.replies, 0);
	/* The replayed grant was not taken. */
	CHECK(creds_same(&before, creds));
	if (f.accepted) {
		CHECK(WAIT_FOR(f.conn.closed));
		mx_wbuf_free(&f.conn.got);
	}
	f.listener.data = &f.listener_closed;
	uv_close((uv_handle_t *)&f.listener, listener_closed_cb);
	(void)WAIT_FOR(f.listener_closed);
}

static void test_replay(void)
{
	struct mx_auth_server ma = monitor_auth(&db, 60000), oa = osd_auth(&db);
	struct mx_wbuf rec[2];

	fprintf(stderr, "== replayed handshakes\n");
	record_session(&ma, &rw_creds, MX_AUTH_MODE_KEY, rec);
	replay_to_server(&ma, &rec[TO_SERVER], "wrong key for client.rw");
	replay_to_client(&rw_creds, MX_AUTH_MODE_KEY, &rec[TO_CLIENT]);
	mx_wbuf_free(&rec[0]);
	mx_wbuf_free(&rec[1]);

	/* A captured ticket and proof are worth as little. */
	record_session(&oa, &rw_creds, MX_AUTH_MODE_TICKET, rec);
	replay_to_server(&oa, &rec[TO_SERVER], "wrong key for client.rw");
	replay_to_client(&rw_creds, MX_AUTH_MODE_TICKET, &rec[TO_CLIENT]);
	mx_wbuf_free(&rec[0]);
	mx_wbuf_free(&rec[1]);
}

/* Out of turn, malformed, closed early. -------------------------------------- */

/* Append a frame (no MAC) with payload p to out; p is emptied. */
static void put_frame(struct mx_wbuf *out, uint16_t type, struct mx_wbuf *p)
{
	uint8_t hdr[MX_MSG_HDR_LEN];

	mx_msg_hdr_encode(hdr, type, 0, p->data, (uint32_t)p->len);
	mx_put_bytes(out, hdr, sizeof(hdr));
	mx_put_bytes(out, p->data, p->len);
	mx_wbuf_free(p);
}

static void put_hello(struct mx_wbuf *out, uint8_t mode, const char *entity)
{
	static const uint8_t nonce[MX_NONCE_LEN] = {1, 2, 3};
	struct mx_msg_auth_hello h = {.mode = mode, .entity = entity, .nonce = nonce};
	struct mx_wbuf p;

	mx_wbuf_init(&p);
	mx_enc_auth_hello(&p, &h);
	put_frame(out, MX_MSG_AUTH_HELLO, &p);
}

static void put_proof(struct mx_wbuf *out)
{
	static const uint8_t proof[MX_HMAC_LEN] = {9, 9, 9};
	struct mx_msg_auth_proof pr = {.proof = proof};
	struct mx_wbuf p;

	mx_wbuf_init(&p);
	mx_enc_auth_proof(&p, &pr);
	put_frame(out, MX_MSG_AUTH_PROOF, &p);
}

/* Send bytes to a server checking with auth: it must close having delivered
 * nothing, after an AUTH_DONE with err and a message containing want (want
 * NULL: no AUTH_DONE). */
static void expect_raw_refused(const struct mx_auth_server *auth, struct mx_wbuf *bytes,
			       int err, const char *want)
{
	struct server s;
	struct raw r;
	struct mx_msg_auth_done d;
	uint16_t types[8];
	bool have_done;

	server_start(&s, auth);
	raw_replay(&r, s.addr, bytes->data, bytes->len);
	CHECK(WAIT_FOR(s.n_open == 0));
	CHECK_EQ_INT(s.delivered, 0);
	(void)parse_handshake(r.got.data, r.got.len, types, 8, &d, &have_done);
	CHECK(have_done == (want != NULL));
	if (want && have_done) {
		CHECK_EQ_INT(mx_wire_to_errno(d.status), err);
		if (!strstr(d.message, want)) {
			fprintf(stderr, "raw: got \"%s\", want \"%s\"\n", d.message, want);
			CHECK(0);
		}
	}
	mx_wbuf_free(&r.got);
	mx_wbuf_free(bytes);
	server_stop(&s);
}

static void test_protocol(void)
{
	struct mx_auth_server ma = monitor_auth(&db, 60000);
	struct mx_wbuf b, p;
	struct fake f;
	struct client cl;

	fprintf(stderr, "== out of turn, malformed, closed early\n");
	mx_wbuf_init(&b);
	put_proof(&b);
	expect_raw_refused(&ma, &b, -EPROTO, "AUTH_PROOF out of turn");

	mx_wbuf_init(&b);
	put_hello(&b, MX_AUTH_MODE_KEY, "client.rw");
	put_hello(&b, MX_AUTH_MODE_KEY, "client.rw");
	expect_raw_refused(&ma, &b, -EPROTO, "AUTH_HELLO out of turn");

	mx_wbuf_init(&b);
	put_hello(&b, 7, "client.rw");
	expect_raw_refused(&ma, &b, -EBADMSG, "malformed AUTH_HELLO");

	/* A renewal, or the server's own message, before any handshake. */
	mx_wbuf_init(&b);
	mx_wbuf_init(&p);
	put_frame(&b, MX_MSG_AUTH_RENEW, &p);
	expect_raw_refused(&ma, &b, 0, NULL);
	mx_wbuf_init(&b);
	mx_put_u32(&p, 0);
	put_frame(&b, MX_MSG_AUTH_DONE, &p);
	expect_raw_refused(&ma, &b, 0, NULL);

	/* A "server" that talks before the handshake is done. */
	memset(&f, 0, sizeof(f));
	mx_wbuf_init(&b);
	mx_put_str(&p, "hello");
	put_frame(&b, MX_MSG_PING, &p);
	f.send = b.data;
	f.send_len = b.len;
	CHECK_EQ_INT(mx_listen(&loop, &f.listener, "127.0.0.1:0", fake_on_connection, f.addr,
			       sizeof(f.addr)),
		     0);
	f.listener.data = &f;
	client_start(&cl, f.addr, &rw_creds, MX_AUTH_MODE_KEY);
	CHECK(WAIT_FOR(cl.closed));
	CHECK_EQ_INT(cl.close_err, -EPROTO);
	CHECK_EQ_INT(cl.replies + cl.error_replies, 0);
	if (f.accepted) {
		CHECK(WAIT_FOR(f.conn.closed));
		mx_wbuf_free(&f.conn.got);
	}
	f.listener.data = &f.listener_closed;
	uv_close((uv_handle_t *)&f.listener, listener_closed_cb);
	(void)WAIT_FOR(f.listener_closed);
	mx_wbuf_free(&b);

	/* Closed by its owner before, or as soon as, it is connected: the held
	 * messages go nowhere (and are freed). */
	for (int when = 0; when < 2; when++) {
		struct server s;

		server_start(&s, &ma);
		client_start(&cl, s.addr, &rw_creds, MX_AUTH_MODE_KEY);
		if (when == 0 && cl.c)
			mx_conn_close(cl.c, 0);
		else
			cl.close_on_connect = true;
		CHECK(WAIT_FOR(cl.closed));
		CHECK_EQ_INT(cl.close_err, 0);
		CHECK(WAIT_FOR(s.n_open == 0));
		CHECK_EQ_INT(s.delivered, 0);
		server_stop(&s);
	}
}

/* Case 6: renewing the ticket on a monitor connection. ------------------------ */

static void test_renewal(void)
{
	struct mx_auth_server ma = monitor_auth(&db, 60000);
	struct db_entry *e = db_find(&db, "client.rw");
	uint8_t old_key[MX_KEY_LEN];
	struct mx_auth_client before;
	struct server s;
	struct client cl;
	int tickets;

	fprintf(stderr, "== renewal\n");
	server_start(&s, &ma);
	client_start(&cl, s.addr, &rw_creds, MX_AUTH_MODE_KEY);
	CHECK(WAIT_FOR(client_done(&cl)));
	CHECK_EQ_INT(cl.replies, N_MSGS);
	tickets = rw_tickets;
	before = rw_creds;
	run_for(5); /* a later expiry */
	/* A message right behind the renewal: sequence numbers still agree
	 * for the frames around it. */
	CHECK(cl.c && mx_authconn_renew(cl.c) == 0);
	CHECK_EQ_INT(client_send(&cl, 0), 0);
	CHECK(WAIT_FOR((rw_tickets == tickets + 1 && cl.replies == N_MSGS + 1) || cl.closed));
	CHECK(!cl.closed);
	CHECK_EQ_INT(rw_tickets, tickets + 1);
	CHECK(rw_creds.ticket_len > 0);
	CHECK(rw_creds.ticket_len != before.ticket_len ||
	      memcmp(rw_creds.ticket, before.ticket, before.ticket_len) != 0);
	CHECK(memcmp(rw_creds.ticket_key, before.ticket_key, MX_KEY_LEN) != 0);
	CHECK(rw_creds.ticket_expires_ms > before.ticket_expires_ms);
	CHECK(strcmp(rw_creds.caps, "rw pool=rbd,images") == 0);
	CHECK_EQ_INT(cl.replies, N_MSGS + 1);
	CHECK(cl.order_ok);
	CHECK_EQ_INT(s.delivered, N_MSGS + 1);

	/* The key rotated meanwhile: this connection proved the old one. */
	tickets = rw_tickets;
	before = rw_creds;
	memcpy(old_key, e->key, MX_KEY_LEN);
	CHECK_EQ_INT(mx_key_random(e->key), 0);
	e->generation++;
	CHECK(cl.c && mx_authconn_renew(cl.c) == 0);
	CHECK(WAIT_FOR(cl.closed));
	memcpy(e->key, old_key, MX_KEY_LEN);
	e->generation--;
	CHECK_EQ_INT(cl.close_err, -EACCES);
	if (!strstr(cl.auth_error, "rotated")) {
		fprintf(stderr, "rotated: got \"%s\"\n", cl.auth_error);
		CHECK(0);
	}
	CHECK_EQ_INT(rw_tickets, tickets);
	CHECK(creds_same(&before, &rw_creds));
	CHECK(WAIT_FOR(s.n_open == 0));

	/* Revoked meanwhile: the renewal is refused and the connection ends. */
	client_start(&cl, s.addr, &rw_creds, MX_AUTH_MODE_KEY);
	CHECK(WAIT_FOR(client_done(&cl)));
	CHECK_EQ_INT(cl.replies, N_MSGS);
	tickets = rw_tickets;
	before = rw_creds;
	e->removed = true;
	CHECK(cl.c && mx_authconn_renew(cl.c) == 0);
	CHECK(WAIT_FOR(cl.closed));
	e->removed = false;
	CHECK_EQ_INT(cl.close_err, -EACCES);
	CHECK(strstr(cl.auth_error, "client.rw has no valid key here"));
	CHECK_EQ_INT(rw_tickets, tickets);
	CHECK(creds_same(&before, &rw_creds));
	CHECK(WAIT_FOR(s.n_open == 0));
	CHECK_EQ_INT(s.delivered, 2 * N_MSGS + 1);
	server_stop(&s);
}

/* Case 7: without authentication. ---------------------------------------------- */

static void test_plain(void)
{
	struct mx_auth_server optional = monitor_auth(&db, 60000);
	struct server s;
	struct client cl;

	fprintf(stderr, "== without authentication\n");
	/* A server with no auth at all. */
	server_start(&s, NULL);
	client_start(&cl, s.addr, NULL, 0);
	CHECK(WAIT_FOR(client_done(&cl)));
	CHECK(!cl.closed);
	CHECK_EQ_INT(cl.replies, N_MSGS);
	CHECK(cl.order_ok);
	CHECK_EQ_INT(s.delivered, N_MSGS);
	CHECK(strcmp(s.entity, "") == 0);
	if (cl.c) {
		CHECK_EQ_INT(cl.c->sec, MX_SEC_NONE);
		CHECK_EQ_INT(mx_authconn_renew(cl.c), -EINVAL);
	}
	client_stop(&cl);
	server_stop(&s);

	/* Authentication configured but not required: both kinds of client. */
	optional.required = false;
	server_start(&s, &optional);
	client_start(&cl, s.addr, NULL, 0);
	CHECK(WAIT_FOR(client_done(&cl)));
	CHECK_EQ_INT(cl.replies, N_MSGS);
	CHECK(strcmp(s.entity, "") == 0);
	client_stop(&cl);
	server_stop(&s);

	server_start(&s, &optional);
	client_start(&cl, s.addr, &rw_creds, MX_AUTH_MODE_KEY);
	CHECK(WAIT_FOR(client_done(&cl)));
	CHECK_EQ_INT(cl.replies, N_MSGS);
	CHECK(cl.order_ok);
	CHECK(!s.unsecured_delivery);
	CHECK(strcmp(s.entity, "client.rw") == 0);
	client_stop(&cl);
	server_stop(&s);

	/* Credentials, to a server without authentication: a clear refusal. */
	expect_refusal(NULL, &rw_creds, MX_AUTH_MODE_KEY, -ENOTSUP,
		       "authentication is not enabled");
	expect_refusal(NULL, &rw_creds, MX_AUTH_MODE_TICKET, -ENOTSUP,
		       "authentication is not enabled");
}

static void count_handle(uv_handle_t *h, void *arg)
{
	if (h != (uv_handle_t *)&guard && h != (uv_handle_t *)&nap)
		(*(int *)arg)++;
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{"key", test_key_mode},           /* first: the others use its tickets */
	{"ticket", test_ticket_mode},
	{"refusals", test_refusals},
	{"unauthenticated", test_unauthenticated},
	{"tampering", test_tampering},
	{"replay", test_replay},
	{"protocol", test_protocol},
	{"renewal", test_renewal},
	{"plain", test_plain},
};

/* test_authconn [CASE...]: every case, or "key" and those named. */
int main(int argc, char **argv)
{
	/* As every daemon does: a write to a connection the other end has
	 * closed (which these tests do on purpose) is an error, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	mx_log_init("test_authconn", MX_LOG_WARN);
	CHECK_EQ_INT(uv_loop_init(&loop), 0);
	(void)uv_timer_init(&loop, &guard);
	(void)uv_timer_init(&loop, &nap);

	db_add(&db, "client.admin", "admin");
	db_add(&db, "client.rw", "rw pool=rbd,images");
	db_add(&db, "osd.3", "osd");
	CHECK_EQ_INT(mx_key_random(db.secret), 0);

	for (size_t i = 0; i < MX_ARRAY_SIZE(cases); i++) {
		bool run = argc < 2 || i == 0;
		int handles = 0;

		for (int a = 1; a < argc && !run; a++)
			run = strcmp(argv[a], cases[i].name) == 0;
		if (!run)
			continue;
		cases[i].fn();
		/* Each case closes everything it opened. */
		uv_walk(&loop, count_handle, &handles);
		if (handles) {
			fprintf(stderr, "%s: %d handles left open\n", cases[i].name, handles);
			CHECK_EQ_INT(handles, 0);
		}
	}

	uv_close((uv_handle_t *)&guard, NULL);
	uv_close((uv_handle_t *)&nap, NULL);
	(void)uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_EQ_INT(uv_loop_close(&loop), 0);
	return mx_check_done("authconn");
}

/*
 * The monitors' Raft transport (docs/monitor-quorum.md, "The Raft link"):
 * TCP connections that libraft sees as plain streams, with a monitor key
 * authenticated and encrypted (lib/tunnel.h), and bounded in how long they
 * may hang.
 *
 * libraft reads and writes a uv_stream_t.  Each connection here is a TCP
 * socket and a socketpair: libraft gets one end of the pair (a uv_pipe_t
 * it owns), and the link relays between the other end and the socket,
 * sealing what libraft writes into frames and opening the frames that
 * arrive.  So libraft's messages never cross the network in the clear, and
 * nothing reaches libraft that a holder of the monitor key did not send in
 * this connection, in this order.
 *
 * Why the bounds: a peer cut off by a partition that drops packets leaves
 * a connection waiting on the kernel: an established one retransmits with
 * a backoff that grows to two minutes, and a connection attempt resends
 * its SYN at 1, 3, 7 ... 63 s.  On the rig (tests/rig/mon_partition.sh) a
 * monitor healed after a minute's partition took 15 to 35 s before its
 * peers' messages reached it again.  So an attempt (connect, handshake and
 * the first frame) gets MX_RAFT_CONNECT_MS, and an established socket
 * TCP_USER_TIMEOUT of MX_RAFT_USER_TIMEOUT_MS: data left unacknowledged
 * that long makes the kernel drop the connection, and libraft reconnects.
 *
 * A link (struct link), all on the loop thread:
 *   client: CONNECTING --(TCP up: HELLO sent)--> HANDSHAKE
 *           --(CHALLENGE checked: PROOF and the preamble frame, our id,
 *              the id we connect to and our address, sent; libraft gets its
 *              stream)--> OPEN
 *   server: HANDSHAKE --(HELLO: CHALLENGE sent; PROOF checked)--> PREAMBLE
 *           --(first frame: the peer's id and address, and our id;
 *              libraft's accept callback gets its stream)--> OPEN
 *   OPEN: frames from the socket go, opened, to the pair; bytes from the
 *         pair go, sealed, to the socket.  A side whose writes queue up
 *         past RELAY_HIGH stops the reads that feed it until they drain.
 *   any --(refusal, a bad frame, EOF or an error on either side, the
 *          deadline of an attempt, the transport closing)--> CLOSING: its
 *          handles closed; when the last is, a connect request still
 *          unanswered gets RAFT_NOCONNECTION (RAFT_CANCELED once the
 *          transport closes) and the link is freed.
 * Closing the transport closes the listener, the timer and every link; its
 * callback runs when all are gone.
 */
#include "raft_tcp.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <raft.h>

#include "list.h"
#include "log.h"
#include "net.h"
#include "tunnel.h"
#include "util.h"

#define HANDSHAKE_MS 5000        /* an incoming link's handshake and preamble */
#define TICK_MS 250
#define HANDSHAKES_MAX 64        /* incoming links not yet OPEN */
#define RELAY_CHUNK (64u * 1024u)
#define RELAY_HIGH (8u << 20)    /* queued bytes that stop the feeding side */
#define RELAY_LOW (1u << 20)     /* ... and let it go again */
#define WARN_EVERY_MS 10000
#define WARNED_MAX 8
#define ADDR_MAX 64

enum lstate { L_CONNECTING, L_HANDSHAKE, L_PREAMBLE, L_OPEN, L_CLOSING };

struct rtcp {
	struct raft_uv_transport outer;  /* what libraft uses; outer.impl = this */
	uv_loop_t *loop;
	bool keyed;
	uint8_t key[MX_KEY_LEN];
	raft_id id;
	char address[ADDR_MAX];
	uv_tcp_t listener;
	bool listening;
	uv_timer_t timer;
	bool timer_ready;                /* initialised (at listen or connect) */
	bool closing;
	int open_handles;                /* listener, timer */
	raft_uv_accept_cb accept_cb;
	raft_uv_transport_close_cb close_cb;
	struct mx_list links;
	int n_handshakes;                /* incoming, not yet OPEN */
	struct warned {
		const char *why;
		uint64_t ms;
		unsigned skipped;
	} warned[WARNED_MAX];
};

struct link {
	struct mx_list node;
	struct rtcp *t;
	bool server;
	enum lstate st;
	int open;                        /* handles not yet closed */
	uv_tcp_t tcp;
	uv_connect_t creq;
	struct raft_uv_connect *req;     /* client: libraft's, until answered */
	raft_id target;                  /* client: the Raft id it connects to */
	uint64_t deadline_ms;
	struct mx_tun tun;
	uint8_t *rbuf;                   /* from the socket, not yet used */
	size_t rlen, rcap;
	uv_pipe_t relay;                 /* our end of the pair */
	bool relay_init;
	uv_pipe_t *raft_end;             /* libraft's end until handed over */
	bool tcp_paused, relay_paused;
	bool hello_seen;                 /* server: the HELLO was answered */
	uint8_t pbuf[RELAY_CHUNK];       /* reads from the pair */
	char peer[ADDR_MAX];
};

struct wreq {
	uv_write_t w;
	struct link *l;
	size_t len;
	uint8_t data[];
};

static void link_close(struct link *l);
static void tcp_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void relay_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void rbuf_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void pbuf_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* Refusals are logged, at most one line per reason every WARN_EVERY_MS:
 * a monitor without the key retries every second.  (Reasons are static
 * strings, told apart by address.) */
static void refusal(struct rtcp *t, const char *what, const char *peer, const char *why)
{
	uint64_t now = uv_now(t->loop);
	struct warned *w = NULL;

	for (int i = 0; i < WARNED_MAX && !w; i++)
		if (t->warned[i].why == why || !t->warned[i].why)
			w = &t->warned[i];
	if (!w)
		w = &t->warned[WARNED_MAX - 1];
	if (w->why == why && now - w->ms < WARN_EVERY_MS) {
		w->skipped++;
		return;
	}
	if (w->why == why && w->skipped)
		mx_warn("raft: %u more like the next one", w->skipped);
	w->why = why;
	w->ms = now;
	w->skipped = 0;
	mx_warn("raft: %s %s: %s", what, peer, why);
}

static void maybe_closed(struct rtcp *t)
{
	if (t->closing && t->open_handles == 0 && mx_list_empty(&t->links) && t->close_cb) {
		raft_uv_transport_close_cb cb = t->close_cb;

		t->close_cb = NULL;
		cb(&t->outer);
	}
}

static void free_raft_end(uv_handle_t *h)
{
	raft_free(h);
}

static void link_handle_closed(uv_handle_t *h)
{
	struct link *l = h->data;
	struct rtcp *t = l->t;

	if (--l->open > 0)
		return;
	if (l->req) {
		struct raft_uv_connect *req = l->req;

		l->req = NULL;
		req->cb(req, NULL, t->closing ? RAFT_CANCELED : RAFT_NOCONNECTION);
	}
	mx_list_del(&l->node);
	mx_tun_free(&l->tun);
	free(l->rbuf);
	free(l);
	maybe_closed(t);
}

static void link_close(struct link *l)
{
	if (l->st == L_CLOSING)
		return;
	if (l->server && l->st != L_OPEN)
		l->t->n_handshakes--;
	l->st = L_CLOSING;
	l->open = 1;
	uv_close((uv_handle_t *)&l->tcp, link_handle_closed);
	if (l->relay_init) {
		l->open++;
		uv_close((uv_handle_t *)&l->relay, link_handle_closed);
	}
	if (l->raft_end) {
		uv_close((uv_handle_t *)l->raft_end, free_raft_end);
		l->raft_end = NULL;
	}
}

/* Writes ------------------------------------------------------------------ */

static void write_cb(uv_write_t *w, int status)
{
	struct wreq *wr = (struct wreq *)w;
	struct link *l = wr->l;
	bool to_tcp = w->handle == (uv_stream_t *)&l->tcp;

	free(wr);
	if (l->st == L_CLOSING)
		return;
	if (status < 0) {
		link_close(l);
		return;
	}
	/* The side that fed this one may go on once it has drained. */
	if (to_tcp && l->relay_paused &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&l->tcp) < RELAY_LOW) {
		l->relay_paused = false;
		if (uv_read_start((uv_stream_t *)&l->relay, pbuf_alloc, relay_read_cb) < 0)
			link_close(l);
	} else if (!to_tcp && l->tcp_paused &&
		   uv_stream_get_write_queue_size((uv_stream_t *)&l->relay) < RELAY_LOW) {
		l->tcp_paused = false;
		if (uv_read_start((uv_stream_t *)&l->tcp, rbuf_alloc, tcp_read_cb) < 0)
			link_close(l);
	}
}

/* A buffer of len bytes to fill, then send with send_buf. */
static struct wreq *new_buf(struct link *l, size_t len)
{
	struct wreq *wr = malloc(sizeof(*wr) + len);

	if (wr) {
		wr->l = l;
		wr->len = len;
	}
	return wr;
}

static int send_buf(struct link *l, uv_stream_t *to, struct wreq *wr)
{
	uv_buf_t b = uv_buf_init((char *)wr->data, (unsigned)wr->len);
	int r = uv_write(&wr->w, to, &b, 1, write_cb);

	if (r < 0)
		free(wr);
	(void)l;
	return r;
}

static int send_raw(struct link *l, const void *p, size_t len)
{
	struct wreq *wr = new_buf(l, len);

	if (!wr)
		return -ENOMEM;
	memcpy(wr->data, p, len);
	return send_buf(l, (uv_stream_t *)&l->tcp, wr);
}

static int send_frame(struct link *l, const void *p, uint32_t len)
{
	struct wreq *wr = new_buf(l, mx_tun_frame_size(&l->tun, len));

	if (!wr)
		return -ENOMEM;
	if (mx_tun_seal(&l->tun, p, len, wr->data) < 0) {
		free(wr);
		return -EIO;
	}
	return send_buf(l, (uv_stream_t *)&l->tcp, wr);
}

/* The pair ---------------------------------------------------------------- */

static void pbuf_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct link *l = h->data;

	(void)suggested;
	*buf = uv_buf_init((char *)l->pbuf, sizeof(l->pbuf));
}

/* What libraft wrote: sealed, to the socket. */
static void relay_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct link *l = s->data;

	(void)buf;
	if (l->st == L_CLOSING || n == 0)
		return;
	if (n < 0 || send_frame(l, l->pbuf, (uint32_t)n) < 0) {
		link_close(l); /* libraft closed its end, or the socket failed */
		return;
	}
	if (uv_stream_get_write_queue_size((uv_stream_t *)&l->tcp) > RELAY_HIGH) {
		l->relay_paused = true;
		uv_read_stop((uv_stream_t *)&l->relay);
	}
}

/* The socketpair: one end for libraft (raft_malloc'd: libraft frees it),
 * one for the relay.  0 or a negative errno. */
static int make_pair(struct link *l)
{
	struct rtcp *t = l->t;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	l->raft_end = raft_malloc(sizeof(*l->raft_end));
	if (!l->raft_end) {
		close(sv[0]);
		close(sv[1]);
		return -ENOMEM;
	}
	uv_pipe_init(t->loop, l->raft_end, 0);
	uv_pipe_init(t->loop, &l->relay, 0);
	l->relay.data = l;
	l->relay_init = true;
	if (uv_pipe_open(l->raft_end, sv[0]) < 0) {
		close(sv[0]);
		close(sv[1]);
		return -EIO;
	}
	if (uv_pipe_open(&l->relay, sv[1]) < 0) {
		close(sv[1]);
		return -EIO;
	}
	return uv_read_start((uv_stream_t *)&l->relay, pbuf_alloc, relay_read_cb) < 0 ? -EIO : 0;
}

/* The socket -------------------------------------------------------------- */

static void rbuf_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct link *l = h->data;

	(void)suggested;
	if (l->rcap - l->rlen < RELAY_CHUNK) {
		size_t cap = l->rlen + RELAY_CHUNK;
		uint8_t *p = realloc(l->rbuf, cap);

		if (!p) {
			*buf = uv_buf_init(NULL, 0); /* UV_ENOBUFS: the link closes */
			return;
		}
		l->rbuf = p;
		l->rcap = cap;
	}
	*buf = uv_buf_init((char *)l->rbuf + l->rlen, (unsigned)(l->rcap - l->rlen));
}

#define PREAMBLE_LEN 18                /* id, target, address length */

/* The server's first frame: the client's Raft id, the id it meant to reach
 * and the client's address.  The monitor key is the same on every monitor,
 * so the handshake alone does not tell which monitor answered: a link
 * redirected to another one (which would then count, say, a vote meant for
 * someone else) is refused here.  0, -EBADMSG (malformed), -EXDEV (meant
 * for another monitor) or -EIO. */
static int on_preamble(struct link *l, const uint8_t *p, uint32_t len)
{
	struct rtcp *t = l->t;
	char addr[ADDR_MAX];
	uint64_t id = 0, target = 0;
	uint16_t alen;
	uv_pipe_t *end;

	if (len < PREAMBLE_LEN)
		return -EBADMSG;
	for (int i = 0; i < 8; i++) {
		id |= (uint64_t)p[i] << (8 * i);
		target |= (uint64_t)p[8 + i] << (8 * i);
	}
	alen = (uint16_t)(p[16] | p[17] << 8);
	if (id == 0 || alen == 0 || alen >= ADDR_MAX || PREAMBLE_LEN + (uint32_t)alen != len ||
	    memchr(p + PREAMBLE_LEN, 0, alen))
		return -EBADMSG;
	if (target != t->id)
		return -EXDEV;
	memcpy(addr, p + PREAMBLE_LEN, alen);
	addr[alen] = 0;
	if (make_pair(l) < 0)
		return -EIO;
	l->st = L_OPEN;
	t->n_handshakes--;
	end = l->raft_end;
	l->raft_end = NULL;
	t->accept_cb(&t->outer, id, addr, (uv_stream_t *)end);
	return 0;
}

/* Client: the server's proof is good; ours, then our id and address, then
 * libraft may write. */
static int client_open(struct link *l, uint8_t proof[MX_TUN_PROOF_LEN])
{
	struct rtcp *t = l->t;
	size_t alen = strlen(t->address);
	uint8_t pre[PREAMBLE_LEN + ADDR_MAX];
	struct raft_uv_connect *req = l->req;
	uv_pipe_t *end;

	for (int i = 0; i < 8; i++) {
		pre[i] = (uint8_t)(t->id >> (8 * i));
		pre[8 + i] = (uint8_t)(l->target >> (8 * i));
	}
	pre[16] = (uint8_t)alen;
	pre[17] = (uint8_t)(alen >> 8);
	memcpy(pre + PREAMBLE_LEN, t->address, alen);
	if (send_raw(l, proof, MX_TUN_PROOF_LEN) < 0 ||
	    send_frame(l, pre, (uint32_t)(PREAMBLE_LEN + alen)) < 0 || make_pair(l) < 0)
		return -EIO;
	l->st = L_OPEN;
	l->req = NULL;
	end = l->raft_end;
	l->raft_end = NULL;
	req->cb(req, (uv_stream_t *)end, 0);
	return 0;
}

/* Use what the socket brought: handshake messages, then frames.  0, or
 * negative: close the link. */
static int consume(struct link *l)
{
	struct rtcp *t = l->t;
	const char *why = NULL;
	size_t at = 0;
	int r = 0;

	while (r == 0 && l->st != L_CLOSING) {
		size_t left = l->rlen - at;
		uint8_t *p = l->rbuf + at;

		if (l->st == L_HANDSHAKE && l->server && !l->hello_seen) {
			uint8_t out[MX_TUN_CHALLENGE_LEN];

			if (left < MX_TUN_HELLO_LEN)
				break;
			r = mx_tun_on_hello(&l->tun, p, out, &why);
			if (r == 0)
				r = send_raw(l, out, sizeof(out));
			at += MX_TUN_HELLO_LEN;
			l->hello_seen = true;
			continue;
		}
		if (l->st == L_HANDSHAKE && l->server) {
			if (left < MX_TUN_PROOF_LEN)
				break;
			r = mx_tun_on_proof(&l->tun, p, &why);
			at += MX_TUN_PROOF_LEN;
			if (r == 0)
				l->st = L_PREAMBLE;
			continue;
		}
		if (l->st == L_HANDSHAKE) {
			uint8_t proof[MX_TUN_PROOF_LEN];

			if (left < MX_TUN_CHALLENGE_LEN)
				break;
			r = mx_tun_on_challenge(&l->tun, p, proof, &why);
			at += MX_TUN_CHALLENGE_LEN;
			if (r == 0)
				r = client_open(l, proof);
			continue;
		}
		/* PREAMBLE or OPEN: a frame. */
		if (left < MX_TUN_HDR_LEN)
			break;
		{
			int64_t len = mx_tun_frame_len(p);
			size_t whole;
			struct wreq *wr;

			if (len < 0) {
				why = "a malformed frame";
				r = -EBADMSG;
				break;
			}
			whole = mx_tun_frame_size(&l->tun, (uint32_t)len);
			if (left < whole)
				break;
			wr = new_buf(l, (size_t)len);
			if (!wr) {
				r = -ENOMEM;
				break;
			}
			if (mx_tun_open(&l->tun, p, (uint32_t)len, wr->data) < 0) {
				free(wr);
				why = "a frame that does not authenticate (altered, replayed or "
				      "out of order)";
				r = -EBADMSG;
				break;
			}
			at += whole;
			if (l->st == L_PREAMBLE) {
				r = on_preamble(l, wr->data, (uint32_t)len);
				if (r == -EXDEV)
					why = "the peer meant to reach another monitor";
				else if (r < 0)
					why = "a malformed first frame";
				free(wr);
				continue;
			}
			r = send_buf(l, (uv_stream_t *)&l->relay, wr);
		}
	}
	if (at) {
		memmove(l->rbuf, l->rbuf + at, l->rlen - at);
		l->rlen -= at;
	}
	if (r < 0 && why)
		refusal(t, l->server ? "refused the connection from" : "refused the monitor at",
			l->peer, why);
	return r;
}

static void tcp_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct link *l = s->data;

	(void)buf;
	if (l->st == L_CLOSING || n == 0)
		return;
	if (n < 0) {
		link_close(l);
		return;
	}
	l->rlen += (size_t)n;
	if (consume(l) < 0) {
		link_close(l);
		return;
	}
	if (l->st == L_OPEN && l->relay_init &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&l->relay) > RELAY_HIGH) {
		l->tcp_paused = true;
		uv_read_stop((uv_stream_t *)&l->tcp);
	}
}

static void tune_socket(struct link *l)
{
	unsigned ms = MX_RAFT_USER_TIMEOUT_MS;
	uv_os_fd_t fd;

	(void)uv_tcp_nodelay(&l->tcp, 1);
	if (uv_fileno((uv_handle_t *)&l->tcp, &fd) == 0 &&
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms)) < 0)
		mx_warn("raft: cannot set TCP_USER_TIMEOUT: %s", strerror(errno));
}

static struct link *link_new(struct rtcp *t, bool server)
{
	struct link *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->t = t;
	l->server = server;
	mx_tun_init(&l->tun, server, t->keyed ? t->key : NULL);
	uv_tcp_init(t->loop, &l->tcp);
	l->tcp.data = l;
	mx_list_add_tail(&t->links, &l->node);
	return l;
}

/* Deadlines of attempts and handshakes. */
static void timer_cb(uv_timer_t *timer)
{
	struct rtcp *t = timer->data;
	uint64_t now = uv_now(t->loop);
	struct mx_list *pos, *next;

	for (pos = t->links.next; pos != &t->links; pos = next) {
		struct link *l = mx_list_entry(pos, struct link, node);

		next = pos->next;
		if (l->st != L_OPEN && l->st != L_CLOSING && l->deadline_ms <= now) {
			if (l->server)
				refusal(t, "dropped the connection from", l->peer,
					"no handshake in time");
			link_close(l);
		}
	}
}

static void start_timer(struct rtcp *t)
{
	if (t->timer_ready)
		return;
	/* Here, not at creation: a transport libraft never started is freed
	 * without a close, and must hold no handle. */
	uv_timer_init(t->loop, &t->timer);
	t->timer.data = t;
	t->timer_ready = true;
	t->open_handles++;
	uv_timer_start(&t->timer, timer_cb, TICK_MS, TICK_MS);
}

/* The transport ----------------------------------------------------------- */

static int rt_init(struct raft_uv_transport *outer, raft_id id, const char *address)
{
	struct rtcp *t = outer->impl;

	if (strlen(address) >= ADDR_MAX) {
		snprintf(outer->errmsg, sizeof(outer->errmsg), "address too long");
		return RAFT_INVALID;
	}
	t->id = id;
	snprintf(t->address, sizeof(t->address), "%s", address);
	return 0;
}

/* The incoming link that has been in its handshake longest (links are
 * kept in the order they came). */
static struct link *oldest_handshake(struct rtcp *t)
{
	struct mx_list *pos;

	for (pos = t->links.next; pos != &t->links; pos = pos->next) {
		struct link *l = mx_list_entry(pos, struct link, node);

		if (l->server && l->st != L_OPEN && l->st != L_CLOSING)
			return l;
	}
	return NULL; /* not reached: n_handshakes counts them */
}

static void connection_cb(uv_stream_t *server, int status)
{
	struct rtcp *t = server->data;
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	struct link *l;

	if (status < 0 || t->closing)
		return;
	l = link_new(t, true);
	if (!l) {
		/* Out of memory: take the connection off the backlog all the
		 * same, or libuv stops watching the listener. */
		uv_tcp_t *tmp = malloc(sizeof(*tmp));

		if (tmp) {
			uv_tcp_init(t->loop, tmp);
			(void)uv_accept(server, (uv_stream_t *)tmp);
			uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
		}
		return;
	}
	l->st = L_HANDSHAKE;
	t->n_handshakes++;
	l->deadline_ms = uv_now(t->loop) + HANDSHAKE_MS;
	if (uv_accept(server, (uv_stream_t *)&l->tcp) < 0) {
		link_close(l);
		return;
	}
	if (uv_tcp_getpeername(&l->tcp, (struct sockaddr *)&ss, &len) == 0 &&
	    ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
		char ip[INET_ADDRSTRLEN];

		uv_ip4_name(sin, ip, sizeof(ip));
		snprintf(l->peer, sizeof(l->peer), "%s:%u", ip, ntohs(sin->sin_port));
	}
	if (t->n_handshakes > HANDSHAKES_MAX) {
		/* Drop the oldest, not the newest: anyone who can reach the
		 * port could otherwise hold every slot with idle connections
		 * and keep the monitors from ever connecting here.  A real
		 * handshake takes a round trip. */
		struct link *old = oldest_handshake(t);

		refusal(t, "dropped the connection from", old->peer,
			"too many handshakes under way (the oldest dropped)");
		link_close(old);
	}
	tune_socket(l);
	if (uv_read_start((uv_stream_t *)&l->tcp, rbuf_alloc, tcp_read_cb) < 0)
		link_close(l);
}

static int rt_listen(struct raft_uv_transport *outer, raft_uv_accept_cb cb)
{
	struct rtcp *t = outer->impl;
	struct sockaddr_in sin;
	int r;

	t->accept_cb = cb;
	if (mx_parse_addr(t->address, &sin) < 0) {
		snprintf(outer->errmsg, sizeof(outer->errmsg), "bad address %s", t->address);
		return RAFT_INVALID;
	}
	start_timer(t);
	uv_tcp_init(t->loop, &t->listener);
	t->listener.data = t;
	t->listening = true;
	t->open_handles++;
	r = uv_tcp_bind(&t->listener, (struct sockaddr *)&sin, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&t->listener, 64, connection_cb);
	if (r < 0) {
		snprintf(outer->errmsg, sizeof(outer->errmsg), "listen on %s: %s", t->address,
			 uv_strerror(r));
		return RAFT_IOERR;
	}
	return 0;
}

static void connected_cb(uv_connect_t *creq, int status)
{
	struct link *l = creq->data;
	uint8_t hello[MX_TUN_HELLO_LEN];

	if (l->st == L_CLOSING)
		return;
	if (status < 0 || mx_tun_hello(&l->tun, hello) < 0) {
		link_close(l);
		return;
	}
	l->st = L_HANDSHAKE;
	tune_socket(l);
	if (send_raw(l, hello, sizeof(hello)) < 0 ||
	    uv_read_start((uv_stream_t *)&l->tcp, rbuf_alloc, tcp_read_cb) < 0)
		link_close(l);
}

static int rt_connect(struct raft_uv_transport *outer, struct raft_uv_connect *req, raft_id id,
		      const char *address, raft_uv_connect_cb cb)
{
	struct rtcp *t = outer->impl;
	struct sockaddr_in sin;
	struct link *l;

	if (mx_parse_addr(address, &sin) < 0) {
		snprintf(outer->errmsg, sizeof(outer->errmsg), "bad address %s", address);
		return RAFT_INVALID;
	}
	start_timer(t);
	l = link_new(t, false);
	if (!l)
		return RAFT_NOMEM;
	req->cb = cb;
	l->req = req;
	l->target = id;
	l->st = L_CONNECTING;
	l->deadline_ms = uv_now(t->loop) + MX_RAFT_CONNECT_MS;
	snprintf(l->peer, sizeof(l->peer), "%s", address);
	l->creq.data = l;
	if (uv_tcp_connect(&l->creq, &l->tcp, (struct sockaddr *)&sin, connected_cb) < 0)
		link_close(l); /* answered RAFT_NOCONNECTION once closed */
	return 0;
}

static void part_closed(uv_handle_t *h)
{
	struct rtcp *t = h->data;

	t->open_handles--;
	maybe_closed(t);
}

static void rt_close(struct raft_uv_transport *outer, raft_uv_transport_close_cb cb)
{
	struct rtcp *t = outer->impl;
	struct mx_list *pos, *next;

	t->close_cb = cb;
	t->closing = true;
	if (t->listening)
		uv_close((uv_handle_t *)&t->listener, part_closed);
	if (t->timer_ready)
		uv_close((uv_handle_t *)&t->timer, part_closed);
	for (pos = t->links.next; pos != &t->links; pos = next) {
		next = pos->next;
		link_close(mx_list_entry(pos, struct link, node));
	}
	maybe_closed(t);
}

int mx_raft_tcp_new(uv_loop_t *loop, const uint8_t *key, struct raft_uv_transport **out)
{
	struct rtcp *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->loop = loop;
	t->keyed = key != NULL;
	if (key)
		memcpy(t->key, key, MX_KEY_LEN);
	mx_list_init(&t->links);
	t->outer.impl = t;
	t->outer.init = rt_init;
	t->outer.listen = rt_listen;
	t->outer.connect = rt_connect;
	t->outer.close = rt_close;
	*out = &t->outer;
	return 0;
}

void mx_raft_tcp_free(struct raft_uv_transport *outer)
{
	struct rtcp *t;

	if (!outer)
		return;
	t = outer->impl;
	OPENSSL_cleanse(t->key, sizeof(t->key));
	free(t);
}

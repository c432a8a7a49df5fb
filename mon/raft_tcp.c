/*
 * The monitors' Raft transport: libraft's own TCP transport, wrapped so that
 * a connection to an unreachable peer never hangs for long.
 *
 * Why: libraft's TCP transport has no timeouts of its own.  A peer cut off
 * by a partition that drops packets leaves the connections to it waiting on
 * the kernel: an established one retransmits with a backoff that grows to
 * two minutes (its queued messages wait for the next retransmission after
 * the partition heals), and a connection attempt resends its SYN at 1, 3,
 * 7 ... 63 s before it fails.  On the rig (tests/rig/mon_partition.sh) a
 * monitor healed after a minute's partition took 15 to 35 s before its
 * peers' messages reached it again, and two monitors, one of them just
 * healed, could not elect a leader for as long: the healed one's messages
 * to the other were stuck in such a connection.
 *
 * So, between libraft and its transport:
 *  - connect: a connection attempt not completed within MX_RAFT_CONNECT_MS
 *    is answered RAFT_NOCONNECTION at once (connect_timeout_cb); libraft
 *    tries again after its retry delay, with a new socket whose SYN is sent
 *    at once.  The attempt it gave up stays with the inner transport until
 *    that one ends it; a stream it still yields is closed (connect_cb).
 *  - every established outgoing stream gets TCP_USER_TIMEOUT: data left
 *    unacknowledged for MX_RAFT_USER_TIMEOUT_MS makes the kernel close the
 *    connection, the write fails and libraft reconnects.
 *  - listen and accept pass through (an incoming stream only receives).
 *
 * State of an attempt (struct attempt), all on the loop thread:
 *   pending --(inner connect_cb)--> answered with the inner result, freed
 *   pending --(deadline: connect_timeout_cb)--> given up (req = NULL),
 *       answered RAFT_NOCONNECTION
 *   given up --(inner connect_cb)--> its stream closed, freed
 * Closing the transport closes the inner one, which cancels every attempt
 * (RAFT_CANCELED, passed on for those still pending), and the timer; the
 * close callback runs once both are closed and no attempt is left.
 */
#include "raft_tcp.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <raft.h>

#include "list.h"
#include "log.h"

struct rtcp {
	struct raft_uv_transport outer;  /* what libraft uses; outer.impl = this */
	struct raft_uv_transport inner;  /* libraft's TCP transport; inner.data = this */
	uv_loop_t *loop;
	uv_timer_t timer;                /* runs while an attempt is pending */
	bool timer_ready;                /* initialised (at the first connect) */
	bool closing;                    /* rt_close called */
	int open_parts;                  /* while closing: inner, timer */
	raft_uv_accept_cb accept_cb;
	raft_uv_transport_close_cb close_cb;
	struct mx_list attempts;         /* struct attempt, oldest first */
};

struct attempt {
	struct mx_list link;
	struct rtcp *t;
	struct raft_uv_connect inner_req; /* given to the inner transport */
	struct raft_uv_connect *req;      /* libraft's; NULL once answered */
	uint64_t deadline_ms;
};

static uint64_t loop_ms(struct rtcp *t)
{
	return uv_now(t->loop);
}

static void free_stream(uv_handle_t *h)
{
	raft_free(h);
}

/* Every handle closed and every attempt ended: tell libraft. */
static void maybe_closed(struct rtcp *t)
{
	if (t->closing && t->open_parts == 0 && mx_list_empty(&t->attempts) && t->close_cb) {
		raft_uv_transport_close_cb cb = t->close_cb;

		t->close_cb = NULL;
		cb(&t->outer);
	}
}

static void tune_stream(struct uv_stream_s *stream)
{
	unsigned ms = MX_RAFT_USER_TIMEOUT_MS;
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)stream, &fd) == 0 &&
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms)) < 0)
		mx_warn("raft: cannot set TCP_USER_TIMEOUT: %s", strerror(errno));
}

static void connect_cb(struct raft_uv_connect *inner_req, struct uv_stream_s *stream,
		       int status)
{
	struct attempt *a = inner_req->data;
	struct rtcp *t = a->t;
	struct raft_uv_connect *req = a->req;

	mx_list_del(&a->link);
	free(a);
	if (!req) {
		/* Given up already: libraft has moved on. */
		if (status == 0)
			uv_close((uv_handle_t *)stream, free_stream);
	} else {
		if (status == 0)
			tune_stream(stream);
		req->cb(req, stream, status);
	}
	if (mx_list_empty(&t->attempts) && !t->closing)
		uv_timer_stop(&t->timer);
	maybe_closed(t);
}

static void connect_timeout_cb(uv_timer_t *timer)
{
	struct rtcp *t = timer->data;
	uint64_t now = loop_ms(t);
	struct mx_list *pos;

	mx_list_for_each(pos, &t->attempts) {
		struct attempt *a = mx_list_entry(pos, struct attempt, link);
		struct raft_uv_connect *req = a->req;

		if (!req || a->deadline_ms > now)
			continue;
		/* The list is not changed by the callback: libraft only
		 * schedules its next try. */
		a->req = NULL;
		req->cb(req, NULL, RAFT_NOCONNECTION);
	}
}

static int rt_init(struct raft_uv_transport *outer, raft_id id, const char *address)
{
	struct rtcp *t = outer->impl;
	int rv = t->inner.init(&t->inner, id, address);

	if (rv != 0)
		memcpy(outer->errmsg, t->inner.errmsg, sizeof(outer->errmsg));
	return rv;
}

static void accept_cb(struct raft_uv_transport *inner, raft_id id, const char *address,
		      struct uv_stream_s *stream)
{
	struct rtcp *t = inner->data;

	t->accept_cb(&t->outer, id, address, stream);
}

static int rt_listen(struct raft_uv_transport *outer, raft_uv_accept_cb cb)
{
	struct rtcp *t = outer->impl;
	int rv;

	t->accept_cb = cb;
	rv = t->inner.listen(&t->inner, accept_cb);
	if (rv != 0)
		memcpy(outer->errmsg, t->inner.errmsg, sizeof(outer->errmsg));
	return rv;
}

static int rt_connect(struct raft_uv_transport *outer, struct raft_uv_connect *req, raft_id id,
		      const char *address, raft_uv_connect_cb cb)
{
	struct rtcp *t = outer->impl;
	struct attempt *a = calloc(1, sizeof(*a));
	int rv;

	if (!a)
		return RAFT_NOMEM;
	if (!t->timer_ready) {
		/* Here, not at creation: a transport libraft never started
		 * is freed without a close, and must hold no handle. */
		uv_timer_init(t->loop, &t->timer);
		t->timer.data = t;
		t->timer_ready = true;
	}
	req->cb = cb;
	a->t = t;
	a->req = req;
	a->inner_req.data = a;
	a->deadline_ms = loop_ms(t) + MX_RAFT_CONNECT_MS;
	rv = t->inner.connect(&t->inner, &a->inner_req, id, address, connect_cb);
	if (rv != 0) {
		memcpy(outer->errmsg, t->inner.errmsg, sizeof(outer->errmsg));
		free(a);
		return rv;
	}
	mx_list_add_tail(&t->attempts, &a->link);
	if (!uv_is_active((uv_handle_t *)&t->timer))
		uv_timer_start(&t->timer, connect_timeout_cb, MX_RAFT_CONNECT_MS / 4,
			       MX_RAFT_CONNECT_MS / 4);
	return 0;
}

static void inner_closed(struct raft_uv_transport *inner)
{
	struct rtcp *t = inner->data;

	t->open_parts--;
	maybe_closed(t);
}

static void timer_closed(uv_handle_t *h)
{
	struct rtcp *t = h->data;

	t->open_parts--;
	maybe_closed(t);
}

/* libraft calls this right after closing its clients in the same loop
 * turn, so no attempt is given up in between (a client being closed
 * expects only RAFT_CANCELED). */
static void rt_close(struct raft_uv_transport *outer, raft_uv_transport_close_cb cb)
{
	struct rtcp *t = outer->impl;

	t->close_cb = cb;
	t->closing = true;
	t->open_parts = 1;
	if (t->timer_ready) {
		t->open_parts++;
		uv_close((uv_handle_t *)&t->timer, timer_closed);
	}
	t->inner.close(&t->inner, inner_closed);
}

int mx_raft_tcp_new(uv_loop_t *loop, struct raft_uv_transport **out)
{
	struct rtcp *t = calloc(1, sizeof(*t));
	int rv;

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->loop = loop;
	mx_list_init(&t->attempts);
	rv = raft_uv_tcp_init(&t->inner, loop);
	if (rv != 0) {
		free(t);
		return -EIO;
	}
	t->inner.data = t;
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
	raft_uv_tcp_close(&t->inner);
	free(t);
}

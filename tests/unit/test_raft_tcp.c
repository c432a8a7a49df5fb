/*
 * The monitors' Raft transport (mon/raft_tcp.c) on one loop, as libraft
 * uses it: connect, accept, bulk bytes through a link whose reader lags
 * (the relays pause and must resume), a wrong key, and closing with a
 * connect under way.
 */
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "auth.h"
#include "check.h"
#include "raft_tcp.h"

#define BULK (48u << 20)
#define CHUNK (1u << 20)

static uv_loop_t *loop;
static uv_stream_t *accepted, *connected;
static int connect_status = 1, n_accepted, close_order, canceled_at, closed_at;
static size_t received;
static bool read_done;
static int read_status;
static char rbuf[64 * 1024];

static void free_stream(uv_handle_t *h)
{
	raft_free(h);
}

static void accept_cb(struct raft_uv_transport *t, raft_id id, const char *address,
		      uv_stream_t *s)
{
	(void)t;
	(void)id;
	(void)address;
	n_accepted++;
	accepted = s;
}

static void connect_cb(struct raft_uv_connect *req, uv_stream_t *s, int status)
{
	(void)req;
	connect_status = status;
	connected = s;
	if (status == RAFT_CANCELED)
		canceled_at = ++close_order;
}

static void transport_closed(struct raft_uv_transport *t)
{
	(void)t;
	closed_at = ++close_order;
}

static void alloc_cb(uv_handle_t *h, size_t n, uv_buf_t *b)
{
	(void)h;
	(void)n;
	*b = uv_buf_init(rbuf, sizeof(rbuf));
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	(void)b;
	if (n > 0)
		received += (size_t)n;
	if (n < 0 || received == BULK) {
		read_done = true;
		read_status = n < 0 ? (int)n : 0;
		uv_read_stop(s);
	}
}

static void start_reading(uv_timer_t *timer)
{
	(void)timer;
	uv_read_start(accepted, alloc_cb, read_cb);
}

static void write_done(uv_write_t *w, int status)
{
	(void)status;
	free(w);
}

static bool run_until(bool (*done)(void), int ms)
{
	uint64_t end = uv_now(loop) + (uint64_t)ms;

	while (!done() && uv_now(loop) < end)
		uv_run(loop, UV_RUN_ONCE);
	return done();
}

static bool is_connected(void)
{
	return connect_status != 1 && (connect_status != 0 || n_accepted);
}

static bool is_answered(void)
{
	return connect_status != 1;
}

static void timer_done(uv_timer_t *timer)
{
	(void)timer;
}

static bool is_read_done(void)
{
	return read_done;
}

static bool is_closed(void)
{
	return closed_at != 0;
}

static struct raft_uv_transport *transport(const uint8_t *key, raft_id id, const char *addr)
{
	struct raft_uv_transport *t = NULL;

	CHECK(mx_raft_tcp_new(loop, key, &t) == 0);
	CHECK(t->init(t, id, addr) == 0);
	return t;
}

static void close_transport(struct raft_uv_transport *t)
{
	closed_at = 0;
	t->close(t, transport_closed);
	CHECK(run_until(is_closed, 5000));
	mx_raft_tcp_free(t);
}

static int free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(fd, (struct sockaddr *)&sin, &len);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* 48 MiB through a link whose reader starts late: both relays pause, and
 * must go on once the reader drains them. */
static void test_bulk(void)
{
	uint8_t key[MX_KEY_LEN];
	char saddr[32];
	struct raft_uv_transport *s, *c;
	struct raft_uv_connect req;
	static uint8_t data[CHUNK];
	uv_timer_t timer;

	memset(key, 7, sizeof(key));
	snprintf(saddr, sizeof(saddr), "127.0.0.1:%d", free_port());
	s = transport(key, 1, saddr);
	c = transport(key, 2, "127.0.0.1:1");
	n_accepted = 0;
	connect_status = 1;
	CHECK(s->listen(s, accept_cb) == 0);
	CHECK(c->connect(c, &req, 1, saddr, connect_cb) == 0);
	CHECK(run_until(is_connected, 5000));
	CHECK_EQ_INT(connect_status, 0);
	CHECK_EQ_INT(n_accepted, 1);
	if (connect_status != 0 || !n_accepted)
		return;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	for (unsigned i = 0; i < BULK / CHUNK; i++) {
		uv_write_t *w = malloc(sizeof(*w));
		uv_buf_t b = uv_buf_init((char *)data, CHUNK);

		CHECK(uv_write(w, connected, &b, 1, write_done) == 0);
	}
	uv_timer_init(loop, &timer);
	uv_timer_start(&timer, start_reading, 1500, 0);
	run_until(is_read_done, 30000);
	fprintf(stderr, "raft_tcp: %zu of %u bytes through, status %s\n", received, BULK,
		read_status ? uv_strerror(read_status) : "ok");
	CHECK_EQ_INT(received, BULK);
	CHECK_EQ_INT(read_status, 0);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_close((uv_handle_t *)accepted, free_stream);
	uv_close((uv_handle_t *)connected, free_stream);
	close_transport(c);
	close_transport(s);
}

/* Another key: the attempt fails, nothing is accepted. */
static void test_wrong_key(void)
{
	uint8_t k1[MX_KEY_LEN], k2[MX_KEY_LEN];
	char saddr[32];
	struct raft_uv_transport *s, *c;
	struct raft_uv_connect req;

	memset(k1, 1, sizeof(k1));
	memset(k2, 2, sizeof(k2));
	snprintf(saddr, sizeof(saddr), "127.0.0.1:%d", free_port());
	s = transport(k1, 1, saddr);
	c = transport(k2, 2, "127.0.0.1:1");
	n_accepted = 0;
	connect_status = 1;
	CHECK(s->listen(s, accept_cb) == 0);
	CHECK(c->connect(c, &req, 1, saddr, connect_cb) == 0);
	CHECK(run_until(is_connected, 5000));
	CHECK_EQ_INT(connect_status, RAFT_NOCONNECTION);
	CHECK_EQ_INT(n_accepted, 0);
	close_transport(c);
	close_transport(s);
}

/* A link that reaches another monitor than the one it was meant for (same
 * key): the listener refuses it, libraft never sees it. */
static void test_wrong_target(void)
{
	uint8_t key[MX_KEY_LEN];
	char saddr[32];
	struct raft_uv_transport *s, *c;
	struct raft_uv_connect req;
	uv_timer_t timer;

	memset(key, 4, sizeof(key));
	snprintf(saddr, sizeof(saddr), "127.0.0.1:%d", free_port());
	s = transport(key, 1, saddr);
	c = transport(key, 2, "127.0.0.1:1");
	n_accepted = 0;
	connect_status = 1;
	connected = NULL;
	CHECK(s->listen(s, accept_cb) == 0);
	CHECK(c->connect(c, &req, 3, saddr, connect_cb) == 0);
	CHECK(run_until(is_answered, 5000));
	CHECK_EQ_INT(connect_status, 0);
	/* Give the preamble time to arrive. */
	uv_timer_init(loop, &timer);
	uv_timer_start(&timer, timer_done, 500, 0);
	while (uv_is_active((uv_handle_t *)&timer))
		uv_run(loop, UV_RUN_ONCE);
	CHECK_EQ_INT(n_accepted, 0);
	uv_close((uv_handle_t *)&timer, NULL);
	if (connect_status == 0 && connected)
		uv_close((uv_handle_t *)connected, free_stream);
	connected = NULL;
	close_transport(c);
	close_transport(s);
}

/* Idle connections that never send a HELLO, more than the listener keeps
 * in handshake: a monitor connecting after them still gets in. */
static void test_idle_flood(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	uint8_t key[MX_KEY_LEN];
	char saddr[32];
	struct raft_uv_transport *s, *c;
	struct raft_uv_connect req;
	int port = free_port(), fds[80];

	memset(key, 5, sizeof(key));
	snprintf(saddr, sizeof(saddr), "127.0.0.1:%d", port);
	s = transport(key, 1, saddr);
	c = transport(key, 2, "127.0.0.1:1");
	CHECK(s->listen(s, accept_cb) == 0);
	sin.sin_port = htons((uint16_t)port);
	for (int i = 0; i < 80; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		CHECK(connect(fds[i], (struct sockaddr *)&sin, sizeof(sin)) == 0);
		uv_run(loop, UV_RUN_NOWAIT);
	}
	for (int i = 0; i < 20; i++)
		uv_run(loop, UV_RUN_NOWAIT);
	n_accepted = 0;
	connect_status = 1;
	CHECK(c->connect(c, &req, 1, saddr, connect_cb) == 0);
	CHECK(run_until(is_connected, 5000));
	CHECK_EQ_INT(connect_status, 0);
	CHECK_EQ_INT(n_accepted, 1);
	if (connect_status == 0) {
		uv_close((uv_handle_t *)connected, free_stream);
		connected = NULL;
	}
	if (n_accepted) {
		uv_close((uv_handle_t *)accepted, free_stream);
		accepted = NULL;
	}
	for (int i = 0; i < 80; i++)
		close(fds[i]);
	close_transport(c);
	close_transport(s);
}

/* Closing with an attempt under way (a listener that never answers the
 * handshake): the attempt is canceled, then the transport reports closed. */
static void test_close_pending(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char saddr[32];
	uint8_t key[MX_KEY_LEN];
	struct raft_uv_transport *c;
	struct raft_uv_connect req;

	memset(key, 3, sizeof(key));
	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	listen(fd, 4);
	getsockname(fd, (struct sockaddr *)&sin, &len);
	snprintf(saddr, sizeof(saddr), "127.0.0.1:%d", ntohs(sin.sin_port));
	c = transport(key, 2, "127.0.0.1:1");
	connect_status = 1;
	close_order = canceled_at = 0;
	CHECK(c->connect(c, &req, 1, saddr, connect_cb) == 0);
	for (int i = 0; i < 20; i++)
		uv_run(loop, UV_RUN_NOWAIT);
	close_transport(c);
	CHECK_EQ_INT(connect_status, RAFT_CANCELED);
	CHECK_EQ_INT(canceled_at, 1);
	CHECK_EQ_INT(closed_at, 2);
	close(fd);
}

int main(void)
{
	loop = uv_default_loop();
	test_wrong_key();
	test_close_pending();
	test_wrong_target();
	test_idle_flood();
	test_bulk();
	uv_run(loop, UV_RUN_NOWAIT);
	return mx_check_done("raft_tcp");
}

/*
 * Output batching of lib/net.c (struct mx_netbatch): frames sent on a loop
 * with a batch are held per connection and written together, in order, at
 * the loop's check or prepare phase, on mx_netbatch_flush(), when a
 * connection holds MX_NETBATCH_FRAMES frames or MX_NETBATCH_BYTES bytes,
 * and before a close.  The far end of each connection is a plain blocking
 * socket read by this test, so what has reached the kernel is seen as it
 * is: nothing while frames are held, then every frame whole and in order.
 * Every read is bounded by a poll timeout.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "check.h"
#include "crc32c.h"
#include "msg.h"
#include "net.h"

#define WAIT_MS 5000

static uv_loop_t loop;
static struct mx_netbatch batch;
static int listen_fd = -1;
static char listen_addr[64];

/* The library side of one connection. */
struct end {
	struct mx_conn *c;
	bool connected;
	bool closed;
	int close_err;
	int closes;
	int fd; /* the far end: a blocking socket */
};

static void on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, uint8_t *payload)
{
	(void)c;
	(void)h;
	(void)payload;
}

static void on_close(struct mx_conn *c, int err)
{
	struct end *e = c->owner;

	e->closed = true;
	e->close_err = err;
	e->closes++;
	e->c = NULL;
}

static void on_connect(struct mx_conn *c)
{
	((struct end *)c->owner)->connected = true;
}

static const struct mx_conn_ops ops = {on_msg, on_close, on_connect};

static void run_until(bool *flag)
{
	uint64_t until = uv_hrtime() + (uint64_t)WAIT_MS * 1000000;

	while (!*flag && uv_hrtime() < until)
		(void)uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(*flag);
}

static void listen_raw(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);

	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(listen_fd >= 0);
	CHECK_EQ_INT(bind(listen_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	CHECK_EQ_INT(listen(listen_fd, 8), 0);
	CHECK_EQ_INT(getsockname(listen_fd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(listen_addr, sizeof(listen_addr), "127.0.0.1:%u", ntohs(sin.sin_port));
}

static void end_open(struct end *e)
{
	memset(e, 0, sizeof(*e));
	e->fd = -1;
	CHECK_EQ_INT(mx_conn_connect(&loop, listen_addr, &ops, e, &e->c), 0);
	run_until(&e->connected);
	e->fd = accept(listen_fd, NULL, NULL);
	CHECK(e->fd >= 0);
}

static void end_close(struct end *e)
{
	if (e->c)
		mx_conn_close(e->c, 0);
	run_until(&e->closed);
	CHECK_EQ_INT(e->closes, 1);
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
}

/* Bytes the far end can read now, without waiting. */
static ssize_t readable_now(int fd)
{
	uint8_t b[65536];
	ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT | MSG_PEEK);

	return n < 0 && errno == EAGAIN ? 0 : n;
}

/* Read exactly len bytes from fd, each wait bounded; false on EOF or a
 * timeout. */
static bool read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, WAIT_MS) != 1)
			return false;
		n = read(fd, buf + got, len - got);
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

/* A frame's payload: len bytes that tell tid apart. */
static void fill(uint8_t *p, size_t len, uint64_t tid)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(tid * 131 + i);
}

static int send_one(struct mx_conn *c, uint64_t tid, size_t len)
{
	struct mx_wbuf w;
	uint8_t *p;

	mx_wbuf_init(&w);
	p = mx_wbuf_reserve(&w, len);
	if (p) {
		fill(p, len, tid);
		w.len += len;
	}
	return mx_conn_send(c, MX_MSG_PING, tid, &w);
}

/* Read one frame from fd and check it is (tid, len) and whole: its header,
 * its payload CRC and its bytes; with key, also its MAC, sequence seq. */
static void expect_frame(int fd, uint64_t tid, size_t len, const uint8_t *key, uint64_t seq)
{
	uint8_t hdr[MX_MSG_HDR_LEN];
	uint8_t *p = malloc(len ? len : 1), *want = malloc(len ? len : 1);
	struct mx_msg_hdr h;

	CHECK(read_full(fd, hdr, sizeof(hdr)));
	CHECK_EQ_INT(mx_msg_hdr_decode(hdr, &h), 0);
	CHECK_EQ_INT(h.type, MX_MSG_PING);
	CHECK_EQ_INT(h.tid, tid);
	CHECK_EQ_INT(h.len, len);
	if (h.len != len) {
		free(p);
		free(want);
		return;
	}
	CHECK(read_full(fd, p, len));
	CHECK_EQ_INT(mx_msg_payload_check(&h, p), 0);
	fill(want, len, tid);
	CHECK(memcmp(p, want, len) == 0);
	if (key) {
		uint8_t mac[MX_MAC_LEN], got[MX_MAC_LEN];

		CHECK(read_full(fd, got, sizeof(got)));
		mx_frame_mac(key, true, seq, hdr, p, len, mac);
		CHECK(memcmp(mac, got, MX_MAC_LEN) == 0);
	}
	free(p);
	free(want);
}

/* Frames wait until the flush, then go out in one write, in order. */
static void test_held_until_flush(void)
{
	struct end e;
	uint64_t f0, n0;

	end_open(&e);
	f0 = batch.flushes;
	n0 = batch.frames;
	CHECK_EQ_INT(send_one(e.c, 1, 100), 0);
	CHECK_EQ_INT(send_one(e.c, 2, 0), 0);
	CHECK_EQ_INT(send_one(e.c, 3, 5000), 0);
	CHECK_EQ_INT(e.c->out_n, 3);
	CHECK_EQ_INT(readable_now(e.fd), 0);
	mx_netbatch_flush(&batch);
	CHECK_EQ_INT(e.c->out_n, 0);
	CHECK_EQ_INT(batch.flushes - f0, 1);
	CHECK_EQ_INT(batch.frames - n0, 3);
	expect_frame(e.fd, 1, 100, NULL, 0);
	expect_frame(e.fd, 2, 0, NULL, 0);
	expect_frame(e.fd, 3, 5000, NULL, 0);
	end_close(&e);
}

/* The loop writes what is held once its I/O callbacks have run. */
static void test_flushed_by_loop(void)
{
	struct end e;
	uint64_t f0;

	end_open(&e);
	f0 = batch.flushes;
	CHECK_EQ_INT(send_one(e.c, 7, 10), 0);
	CHECK_EQ_INT(send_one(e.c, 8, 20), 0);
	CHECK_EQ_INT(readable_now(e.fd), 0);
	(void)uv_run(&loop, UV_RUN_NOWAIT);
	CHECK_EQ_INT(batch.flushes - f0, 1);
	expect_frame(e.fd, 7, 10, NULL, 0);
	expect_frame(e.fd, 8, 20, NULL, 0);
	end_close(&e);
}

/* Sends before the connection is up are held, then written once it is. */
static void test_before_connect(void)
{
	struct end e;

	memset(&e, 0, sizeof(e));
	CHECK_EQ_INT(mx_conn_connect(&loop, listen_addr, &ops, &e, &e.c), 0);
	CHECK_EQ_INT(send_one(e.c, 11, 300), 0);
	CHECK_EQ_INT(send_one(e.c, 12, 400), 0);
	run_until(&e.connected);
	e.fd = accept(listen_fd, NULL, NULL);
	CHECK(e.fd >= 0);
	(void)uv_run(&loop, UV_RUN_NOWAIT);
	expect_frame(e.fd, 11, 300, NULL, 0);
	expect_frame(e.fd, 12, 400, NULL, 0);
	end_close(&e);
}

/* A connection holds at most MX_NETBATCH_FRAMES frames and about
 * MX_NETBATCH_BYTES bytes: beyond, it writes at once. */
static void test_bounds(void)
{
	struct end e;
	uint64_t f0, n0;
	unsigned total = 2 * MX_NETBATCH_FRAMES + 5;

	end_open(&e);
	f0 = batch.flushes;
	n0 = batch.frames;
	for (unsigned i = 0; i < total; i++)
		CHECK_EQ_INT(send_one(e.c, 100 + i, 64), 0);
	CHECK_EQ_INT(batch.flushes - f0, 2);
	CHECK_EQ_INT(batch.frames - n0, 2 * MX_NETBATCH_FRAMES);
	CHECK_EQ_INT(e.c->out_n, 5);
	mx_netbatch_flush(&batch);
	for (unsigned i = 0; i < total; i++)
		expect_frame(e.fd, 100 + i, 64, NULL, 0);

	f0 = batch.flushes;
	CHECK_EQ_INT(send_one(e.c, 500, MX_NETBATCH_BYTES / 2), 0);
	CHECK_EQ_INT(batch.flushes - f0, 0);
	CHECK_EQ_INT(send_one(e.c, 501, MX_NETBATCH_BYTES / 2), 0);
	CHECK_EQ_INT(batch.flushes - f0, 1);
	CHECK_EQ_INT(e.c->out_n, 0);
	/* The kernel takes part of 1 MiB; the loop writes the rest. */
	for (int i = 0; i < 2; i++) {
		uint8_t hdr[MX_MSG_HDR_LEN];
		uint8_t *p = malloc(MX_NETBATCH_BYTES / 2);
		struct mx_msg_hdr h;
		size_t got = 0;

		while (got < sizeof(hdr) + MX_NETBATCH_BYTES / 2) {
			(void)uv_run(&loop, UV_RUN_NOWAIT);
			ssize_t n = got < sizeof(hdr) ?
				recv(e.fd, hdr + got, sizeof(hdr) - got, MSG_DONTWAIT) :
				recv(e.fd, p + got - sizeof(hdr),
				     sizeof(hdr) + MX_NETBATCH_BYTES / 2 - got, MSG_DONTWAIT);

			if (n > 0)
				got += (size_t)n;
			else if (n == 0 || errno != EAGAIN)
				break;
		}
		CHECK_EQ_INT(got, sizeof(hdr) + MX_NETBATCH_BYTES / 2);
		CHECK_EQ_INT(mx_msg_hdr_decode(hdr, &h), 0);
		CHECK_EQ_INT(h.tid, 500 + i);
		CHECK_EQ_INT(mx_msg_payload_check(&h, p), 0);
		free(p);
	}
	end_close(&e);
}

/* A shared payload held on two connections keeps its references until
 * both frames are written, then drops them. */
static void test_shared(void)
{
	struct end a, b;
	struct mx_wbuf w;
	struct mx_shared *sh;
	uint8_t *p;

	end_open(&a);
	end_open(&b);
	mx_wbuf_init(&w);
	p = mx_wbuf_reserve(&w, 3000);
	CHECK(p != NULL);
	fill(p, 3000, 42);
	w.len += 3000;
	sh = mx_shared_new(&w);
	CHECK(sh != NULL);
	CHECK_EQ_INT(mx_conn_send_shared(a.c, MX_MSG_PING, 42, sh), 0);
	CHECK_EQ_INT(mx_conn_send_shared(b.c, MX_MSG_PING, 42, sh), 0);
	CHECK_EQ_INT(sh->refs, 3);
	CHECK_EQ_INT(readable_now(a.fd), 0);
	(void)uv_run(&loop, UV_RUN_NOWAIT);
	expect_frame(a.fd, 42, 3000, NULL, 0);
	expect_frame(b.fd, 42, 3000, NULL, 0);
	CHECK_EQ_INT(sh->refs, 1);
	mx_shared_unref(sh);
	end_close(&a);
	end_close(&b);
}

/* Closing writes what is held first: after a shutdown the far end reads
 * every frame, then the end of the stream. */
static void test_close(void)
{
	struct end e;
	uint8_t b;

	end_open(&e);
	CHECK_EQ_INT(send_one(e.c, 21, 50), 0);
	CHECK_EQ_INT(send_one(e.c, 22, 60), 0);
	mx_conn_close_after_send(e.c, 0);
	CHECK_EQ_INT(send_one(e.c, 23, 70), -ENOTCONN);
	run_until(&e.closed);
	expect_frame(e.fd, 21, 50, NULL, 0);
	expect_frame(e.fd, 22, 60, NULL, 0);
	CHECK_EQ_INT(read(e.fd, &b, 1), 0);
	end_close(&e);

	end_open(&e);
	CHECK_EQ_INT(send_one(e.c, 31, 50), 0);
	CHECK_EQ_INT(send_one(e.c, 32, 60), 0);
	mx_conn_close(e.c, 0);
	run_until(&e.closed);
	expect_frame(e.fd, 31, 50, NULL, 0);
	expect_frame(e.fd, 32, 60, NULL, 0);
	end_close(&e);
}

/* The far end goes away while frames are held: the write fails or the
 * read sees the end, the connection closes once, nothing leaks. */
static void test_peer_gone(void)
{
	struct end e;

	end_open(&e);
	close(e.fd);
	e.fd = -1;
	for (int i = 0; i < 20 && e.c; i++) {
		(void)send_one(e.c, 60 + (uint64_t)i, 200000);
		(void)uv_run(&loop, UV_RUN_NOWAIT);
	}
	run_until(&e.closed);
	CHECK_EQ_INT(e.closes, 1);
}

/* Secured frames: MACs computed in send order, so held frames verify in
 * order at the far end. */
static void test_mac(void)
{
	struct end e;
	uint8_t key[MX_KEY_LEN];

	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 1);
	end_open(&e);
	e.c->auth_initiator = true;
	mx_conn_secure(e.c, key);
	for (uint64_t i = 0; i < 5; i++)
		CHECK_EQ_INT(send_one(e.c, 70 + i, 10 * i), 0);
	CHECK_EQ_INT(e.c->out_n, 5);
	mx_netbatch_flush(&batch);
	for (uint64_t i = 0; i < 5; i++)
		expect_frame(e.fd, 70 + i, 10 * i, key, i);
	end_close(&e);
}

/* After mx_netbatch_end what was held is written and later sends go out
 * at once. */
static void test_end(void)
{
	struct end e;
	uint64_t f0;

	end_open(&e);
	CHECK_EQ_INT(send_one(e.c, 81, 10), 0);
	mx_netbatch_end(&batch);
	expect_frame(e.fd, 81, 10, NULL, 0);
	f0 = batch.flushes;
	CHECK_EQ_INT(send_one(e.c, 82, 10), 0);
	CHECK_EQ_INT(e.c->out_n, 0);
	expect_frame(e.fd, 82, 10, NULL, 0);
	CHECK_EQ_INT(batch.flushes, f0);
	end_close(&e);
}

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int main(void)
{
	CHECK_EQ_INT(uv_loop_init(&loop), 0);
	CHECK_EQ_INT(mx_netbatch_start(&loop, &batch), 0);
	listen_raw();
	test_held_until_flush();
	test_flushed_by_loop();
	test_before_connect();
	test_bounds();
	test_shared();
	test_close();
	test_peer_gone();
	test_mac();
	test_end();
	uv_walk(&loop, close_walk, NULL);
	(void)uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_EQ_INT(uv_loop_close(&loop), 0);
	close(listen_fd);
	return mx_check_done("test_net");
}

/*
 * Bad input to the daemons: truncated, oversized, garbage, corrupted and
 * unknown messages to the monitor's and an OSD's ports.  Each gets a clean
 * error reply or a closed connection, is logged, and the daemon keeps
 * serving a client that works throughout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crc32c.h"
#include "harness.h"
#include "internal.h"
#include "map.h"
#include "msg.h"

static int dial(const char *addr)
{
	struct sockaddr_in sin;
	char host[64];
	const char *colon = strrchr(addr, ':');
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	inet_pton(AF_INET, host, &sin.sin_addr);
	sin.sin_port = htons((uint16_t)atoi(colon + 1));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		H_FATAL("connect %s: %s", addr, strerror(errno));
	return fd;
}

/* Wait for the peer to close: 1 if it did within 5 s, 0 if not. */
static int closed_by_peer(int fd)
{
	char buf[4096];

	for (int i = 0; i < 50; i++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 1;
	}
	return 0;
}

static void send_frame(int fd, uint16_t type, uint64_t tid, const void *payload, uint32_t len)
{
	uint8_t hdr[MX_MSG_HDR_LEN];

	mx_msg_hdr_encode(hdr, type, tid, payload, len);
	if (write(fd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr) ||
	    (len && write(fd, payload, len) != (ssize_t)len))
		H_FATAL("write: %s", strerror(errno));
}

/* Read one reply frame; returns its type (payload into buf), or -1. */
static int read_frame(int fd, uint8_t *buf, size_t cap, uint32_t *len)
{
	uint8_t hdr[MX_MSG_HDR_LEN];
	struct mx_msg_hdr h;
	size_t got = 0;

	while (got < sizeof(hdr)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 5000) <= 0)
			return -1;
		n = read(fd, hdr + got, sizeof(hdr) - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	if (mx_msg_hdr_decode(hdr, &h) < 0 || h.len > cap)
		return -1;
	got = 0;
	while (got < h.len) {
		ssize_t n = read(fd, buf + got, h.len - got);

		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	*len = h.len;
	return h.type;
}

/* A client that must keep working whatever the attacks do. */
static void client_works(mixsan_pool_t *p, int round)
{
	char name[32], buf[64], got[64];

	snprintf(name, sizeof(name), "canary.%d", round);
	snprintf(buf, sizeof(buf), "round %d", round);
	H_CHECK(mixsan_write_full(p, name, buf, strlen(buf)) == 0);
	H_CHECK(mixsan_read(p, name, got, sizeof(got), 0) == (int64_t)strlen(buf));
	H_CHECK(memcmp(got, buf, strlen(buf)) == 0);
}

static void attack(const char *addr, bool is_osd, mixsan_pool_t *p, int *round)
{
	static uint8_t buf[1 << 20];
	uint32_t len;
	int fd, t;

	/* 1. Garbage (an HTTP request) instead of a frame: closed. */
	fd = dial(addr);
	{
		const char *g = "GET / HTTP/1.1\r\nHost: x\r\n\r\n0123456789";

		H_CHECK(write(fd, g, strlen(g)) == (ssize_t)strlen(g));
	}
	H_CHECK(closed_by_peer(fd));
	close(fd);
	client_works(p, (*round)++);

	/* 2. A truncated header, then the client goes away. */
	fd = dial(addr);
	H_CHECK(write(fd, "MXS1\x01", 5) == 5);
	close(fd);
	client_works(p, (*round)++);

	/* 3. A header announcing an oversized payload: closed. */
	fd = dial(addr);
	{
		uint8_t hdr[MX_MSG_HDR_LEN];

		mx_msg_hdr_encode(hdr, MX_MSG_OSD_OP, 1, "", 0);
		/* Patch the length to 1 GiB and fix the header CRC. */
		hdr[16] = 0, hdr[17] = 0, hdr[18] = 0, hdr[19] = 0x40;
		{
			uint32_t crc = mx_crc32c(0, hdr, 28);

			for (int i = 0; i < 4; i++)
				hdr[28 + i] = (uint8_t)(crc >> (8 * i));
		}
		H_CHECK(write(fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr));
	}
	H_CHECK(closed_by_peer(fd));
	close(fd);

	/* 4. A payload whose CRC does not match: closed. */
	fd = dial(addr);
	{
		uint8_t hdr[MX_MSG_HDR_LEN];

		mx_msg_hdr_encode(hdr, MX_MSG_PING, 1, "abcd", 4);
		H_CHECK(write(fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr));
		H_CHECK(write(fd, "abce", 4) == 4);
	}
	H_CHECK(closed_by_peer(fd));
	close(fd);
	client_works(p, (*round)++);

	/* 5. An unknown message type: an error reply, and the connection
	 * keeps working (a ping after it is answered). */
	fd = dial(addr);
	send_frame(fd, 999, 77, "zzz", 3);
	t = read_frame(fd, buf, sizeof(buf), &len);
	H_CHECK(t == MX_MSG_ERROR_REPLY);
	if (t == MX_MSG_ERROR_REPLY) {
		struct mx_msg_error_reply er;

		H_CHECK(mx_dec_error_reply(buf, len, &er) == 0);
		H_CHECK(mx_wire_to_errno(er.status) == -ENOTSUP);
	}
	send_frame(fd, MX_MSG_PING, 78, NULL, 0);
	H_CHECK(read_frame(fd, buf, sizeof(buf), &len) == MX_MSG_PONG);

	/* 6. A well-framed request whose payload is garbage: an error
	 * reply, connection kept. */
	{
		uint8_t junk[200];

		h_fill(99, junk, sizeof(junk));
		send_frame(fd, is_osd ? MX_MSG_OSD_OP : MX_MSG_MON_COMMAND, 79, junk,
			   sizeof(junk));
		t = read_frame(fd, buf, sizeof(buf), &len);
		if (is_osd) {
			struct mx_msg_osd_op_reply r;

			H_CHECK(t == MX_MSG_OSD_OP_REPLY);
			H_CHECK(t == MX_MSG_OSD_OP_REPLY && mx_dec_osd_op_reply(buf, len, &r) == 0 &&
				mx_wire_to_errno(r.status) == -EBADMSG);
		} else {
			H_CHECK(t == MX_MSG_ERROR_REPLY);
		}
		/* Truncated payloads of a real request type. */
		for (uint32_t n = 0; n < 12; n++) {
			send_frame(fd, is_osd ? MX_MSG_OSD_LIST : MX_MSG_MON_OSD_BOOT, 80 + n, junk,
				   n);
			t = read_frame(fd, buf, sizeof(buf), &len);
			H_CHECK(t == (is_osd ? MX_MSG_OSD_LIST_REPLY : MX_MSG_ERROR_REPLY) ||
				t == MX_MSG_ERROR_REPLY);
		}
		send_frame(fd, MX_MSG_PING, 99, NULL, 0);
		H_CHECK(read_frame(fd, buf, sizeof(buf), &len) == MX_MSG_PONG);
	}
	close(fd);
	client_works(p, (*round)++);

	/* 7. Semantically bad requests to the monitor: refused with reasons. */
	if (!is_osd) {
		struct mx_msg_command cmd = {.prefix = "pool create", .n_args = 1};
		struct mx_msg_command_reply cr;
		struct mx_wbuf w;

		cmd.keys[0] = "name";
		cmd.vals[0] = "bad name!";
		mx_wbuf_init(&w);
		mx_enc_command(&w, &cmd);
		fd = dial(addr);
		send_frame(fd, MX_MSG_MON_COMMAND, 5, w.data, (uint32_t)w.len);
		t = read_frame(fd, buf, sizeof(buf), &len);
		H_CHECK(t == MX_MSG_MON_COMMAND_REPLY && mx_dec_command_reply(buf, len, &cr) == 0 &&
			mx_wire_to_errno(cr.status) == -EINVAL && strlen(cr.message) > 0);
		close(fd);
		mx_wbuf_free(&w);
	}
	/* 8. Many connections opened and dropped at once. */
	{
		int fds[64];

		for (int i = 0; i < 64; i++)
			fds[i] = dial(addr);
		for (int i = 0; i < 64; i++) {
			if (i % 2)
				H_CHECK(write(fds[i], "MXS1garbagegarbagegarbagegarbage", 32) == 32);
			close(fds[i]);
		}
	}
	client_works(p, (*round)++);
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	struct mx_map *m;
	char osd_addr[64];
	int round = 0;

	memset(&c, 0, sizeof(c));
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "bad", 3, 8, "osd");
	if (mixsan_pool_open(cl, "bad", &p) < 0)
		H_FATAL("pool open");
	client_works(p, round++);
	m = mx_client_map_copy(cl);
	snprintf(osd_addr, sizeof(osd_addr), "%s", m->osds[1].addr);
	mx_map_free(m);

	attack(c.mon_addr, false, p, &round);
	attack(osd_addr, true, p, &round);

	/* Everyone else is still served, and a new client can connect. */
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	cl = h_connect(&c);
	if (mixsan_pool_open(cl, "bad", &p) < 0)
		H_FATAL("pool open");
	client_works(p, round++);
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	/* The daemons logged what they refused. */
	H_CHECK(h_log_count(&c, "mon", "bad frame header") >= 1);
	H_CHECK(h_log_count(&c, "mon", "unknown message type") >= 1);
	H_CHECK(h_log_count(&c, "mon", "malformed") >= 1);
	H_CHECK(h_log_count(&c, "osd.1", "bad frame header") >= 1);
	H_CHECK(h_log_count(&c, "osd.1", "payload checksum mismatch") >= 1);
	H_CHECK(h_log_count(&c, "osd.1", "unknown message type") >= 1);
	H_CHECK(h_log_count(&c, "osd.1", "malformed") >= 1);
	h_stop(&c);
	fprintf(stderr, "bad_input: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

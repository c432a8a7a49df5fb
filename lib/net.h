/*
 * Message connections over TCP on a libuv loop, shared by monitors, OSDs
 * and the client library.  A connection frames messages (see msg.h), checks
 * their CRCs and hands each complete message to its owner; a frame that is
 * malformed (bad magic, version, size or CRC) is logged and the connection
 * closed, which never disturbs any other connection.
 *
 * Lifetime: a connection is created by mx_conn_connect() or
 * mx_conn_accept() and lives until ops->on_close() has returned, after which
 * it is freed; the owner drops its pointer in on_close.  mx_conn_close() may
 * be called at any time, also from inside on_msg.
 */
#ifndef MX_NET_H
#define MX_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "msg.h"

struct mx_conn;

struct mx_conn_ops {
	/* A complete message whose CRCs match.  payload (h->len bytes) may be
	 * modified and is valid only during the call. */
	void (*on_msg)(struct mx_conn *c, const struct mx_msg_hdr *h, uint8_t *payload);
	/* The connection is gone (err: 0 for a clean close or EOF, else a
	 * negative errno).  Called exactly once; c is freed on return. */
	void (*on_close)(struct mx_conn *c, int err);
	/* Outgoing connections: the connect succeeded.  Optional. */
	void (*on_connect)(struct mx_conn *c);
};

struct mx_conn {
	uv_tcp_t tcp;
	const struct mx_conn_ops *ops;
	void *owner;      /* the owner's context */
	void *owner_data; /* free for the owner's use */
	char peer[64];    /* "ip:port" of the other side */
	bool closing;
	bool connected;
	int close_err;
	uint8_t *rbuf; /* From malloc(): bytes received, [rstart, rend) unread */
	size_t rstart, rend, rcap;
	uint64_t queued_bytes; /* written but not yet completed */
	uint64_t msgs_in, msgs_out;
};

/* Parse "a.b.c.d:port" (IPv4 literal).  0 or -EINVAL. */
int mx_parse_addr(const char *s, struct sockaddr_in *out);

/* Listen on addr ("ip:port", port 0 for any); the actual address is
 * written to bound (may be NULL).  0 or a negative errno. */
int mx_listen(uv_loop_t *loop, uv_tcp_t *server, const char *addr, uv_connection_cb cb,
	      char *bound, size_t boundsz);

/* Accept one pending connection on server. */
int mx_conn_accept(uv_stream_t *server, const struct mx_conn_ops *ops, void *owner,
		   struct mx_conn **out);
/* Start connecting to addr.  Messages may be sent at once; they go out when
 * the connection is up.  Failure is reported through on_close. */
int mx_conn_connect(uv_loop_t *loop, const char *addr, const struct mx_conn_ops *ops,
		    void *owner, struct mx_conn **out);

/* Send a message whose payload is in w.  The payload bytes are taken: w is
 * left empty (re-initialised) whatever the result.  0 or a negative errno
 * (-ENOTCONN on a closing connection, w->err if encoding failed). */
int mx_conn_send(struct mx_conn *c, uint16_t type, uint64_t tid, struct mx_wbuf *w);
/* Send an error reply for a request that could not be served. */
int mx_conn_send_error(struct mx_conn *c, uint64_t tid, int err, const char *message);

/* Close (idempotent).  err is passed to on_close. */
void mx_conn_close(struct mx_conn *c, int err);

#endif

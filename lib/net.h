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

#include "auth.h"
#include "buf.h"
#include "list.h"
#include "msg.h"

struct mx_conn;
struct mx_netbatch;
struct write_req;
struct mx_auth_client;
struct mx_auth_server;
struct mx_auth_hs;
struct mx_held;

/* A connection's security state (docs/auth.md). */
enum {
	MX_SEC_NONE,      /* no authentication on this connection */
	MX_SEC_HANDSHAKE, /* only AUTH_* frames pass; the owner's sends wait */
	MX_SEC_ON,        /* authenticated: every frame carries a MAC */
};

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
	/* Authentication (docs/auth.md, lib/authconn.c). */
	uint8_t sec;                      /* MX_SEC_* */
	bool auth_initiator;              /* this end sent the HELLO */
	uint8_t auth_mode;                /* MX_AUTH_MODE_* (initiator) */
	struct mx_auth_client *auth_client; /* outgoing: our credentials */
	const struct mx_auth_server *auth_server; /* incoming: how to check */
	struct mx_auth_hs *hs;            /* the handshake under way */
	uint8_t mac_key[MX_KEY_LEN];
	void *mac_ctx;                    /* EVP_CIPHER_CTX keyed with mac_key */
	uint64_t seq_in, seq_out;
	struct mx_held *held_head, **held_tail; /* sends waiting for the handshake */
	char entity[MX_ENTITY_MAX];       /* the authenticated peer (incoming) */
	struct mx_caps caps;              /* its capabilities */
	uint32_t generation;              /* of its key, when it authenticated */
	uint64_t expires_ms;              /* with a ticket: when the session ends */
	char auth_error[256];             /* why authentication failed */
	/* Incoming with authentication required: the handshake's deadline. */
	uv_timer_t hs_timer;
	bool hs_timer_init;
	int open_handles;                 /* while closing: tcp, hs_timer */
	/* Frames held for the loop's batch (mx_netbatch), oldest first. */
	struct write_req *out_head, **out_tail;
	unsigned out_n;
	size_t out_bytes;
	struct mx_netbatch *batch; /* the batch it waits in, or NULL */
	struct mx_list batch_link; /* in batch->dirty while it waits */
};

/*
 * Output batching for one loop.  Once a batch is started on a loop, frames
 * that the loop's thread sends on that loop's connections are not written
 * at once: each connection collects them, and they go out in one write
 * (one writev) per connection when the loop has run its I/O callbacks
 * (check phase), before it next waits for I/O (prepare phase), when the
 * owner calls mx_netbatch_flush(), or once a connection holds
 * MX_NETBATCH_FRAMES frames or MX_NETBATCH_BYTES bytes.  Frames keep their
 * order on each connection.  Closing a connection writes what it holds
 * first, as an unbatched send would have.  On loops without a batch sends
 * are written at once.  As for every libuv handle, a connection is used on
 * its loop's thread only.  The batch's handles do not keep the loop alive:
 * an owner closes its connections (which writes what they hold) before its
 * loop stops, and mx_netbatch_end writes anything left.
 */
#define MX_NETBATCH_FRAMES 64
#define MX_NETBATCH_BYTES (1u << 20)
struct mx_netbatch {
	uv_loop_t *loop;
	uv_prepare_t prepare;
	uv_check_t check;
	struct mx_list dirty; /* connections holding frames */
	uint64_t flushes, frames; /* writes made, frames they carried */
};
/* Start b on loop.  Call on the thread that runs the loop, which must
 * outlive b's use; the handles are closed with the loop's others
 * (uv_walk), and do not keep the loop alive.  0 or a negative errno. */
int mx_netbatch_start(uv_loop_t *loop, struct mx_netbatch *b);
/* Write what every connection holds now. */
void mx_netbatch_flush(struct mx_netbatch *b);
/* Stop batching on this thread (after the loop has run; before b is
 * freed): what is held is written, later sends are written at once. */
void mx_netbatch_end(struct mx_netbatch *b);

/* An incoming connection that has not finished its handshake this long
 * after it was accepted is closed (docs/auth.md). */
#define MX_AUTH_HANDSHAKE_MS 5000

/* The MAC of a frame as a connection computes it (docs/auth.md), for
 * tests that speak the protocol by hand: key, the direction (from the end
 * that started the handshake or not), the frame's sequence number in it. */
void mx_frame_mac(const uint8_t key[MX_KEY_LEN], bool from_initiator, uint64_t seq,
		  const uint8_t *hdr, const void *payload, size_t len, uint8_t out[MX_MAC_LEN]);

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
/* A payload sent on several connections of one loop without a copy for
 * each: reference-counted, used on the loop's thread only.  Its CRC is
 * computed once. */
struct mx_shared {
	unsigned refs;
	uint8_t *data; /* From malloc() */
	size_t len;
	uint32_t crc;
};
/* Take w's payload into a new shared payload (one reference); NULL if w
 * failed to encode or memory ran out (w is emptied either way). */
struct mx_shared *mx_shared_new(struct mx_wbuf *w);
/* Drop a reference; the last frees it.  Accepts NULL. */
void mx_shared_unref(struct mx_shared *sh);
/* mx_conn_send of a shared payload: the frame holds a reference until it
 * has been written. */
int mx_conn_send_shared(struct mx_conn *c, uint16_t type, uint64_t tid, struct mx_shared *sh);
/* Send an error reply for a request that could not be served. */
int mx_conn_send_error(struct mx_conn *c, uint64_t tid, int err, const char *message);

/* Authenticate this outgoing connection with a's credentials in mode
 * (MX_AUTH_MODE_KEY to a monitor, MX_AUTH_MODE_TICKET to an OSD); call
 * right after mx_conn_connect.  The owner's sends wait until it is done. */
void mx_conn_auth_client(struct mx_conn *c, struct mx_auth_client *a, uint8_t mode);
/* Check incoming connections with s; call right after mx_conn_accept. */
void mx_conn_auth_server(struct mx_conn *c, const struct mx_auth_server *s);
/* The handshake is done: frames carry MACs under key from now on, and the
 * sends that waited go out.  (For lib/authconn.c.) */
void mx_conn_secure(struct mx_conn *c, const uint8_t key[MX_KEY_LEN]);
/* Send during the handshake, before mx_conn_secure (lib/authconn.c). */
int mx_conn_send_now(struct mx_conn *c, uint16_t type, uint64_t tid, struct mx_wbuf *w);

/* Close once what was sent has gone out (a refusal that must arrive). */
void mx_conn_close_after_send(struct mx_conn *c, int err);

/* Close (idempotent).  err is passed to on_close. */
void mx_conn_close(struct mx_conn *c, int err);

#endif

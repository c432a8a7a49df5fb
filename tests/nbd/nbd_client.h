/*
 * A minimal NBD client over raw sockets, for tests that must send what a
 * real client never would: the fixed newstyle handshake one option at a
 * time, requests with any header, and replies read and checked against the
 * protocol (cookies, chunk bounds, the DONE flag).  Every socket operation
 * is bounded by a timeout, so a server that stops answering makes a call
 * fail with -ETIMEDOUT instead of hanging the test.
 *
 * Calls return 0 (or a length) on success and a negative errno when the
 * connection failed: -ECONNRESET when the server closed it, -ETIMEDOUT when
 * it did not answer in time, -EPROTO when what it sent breaks the protocol
 * (conn->why says how).  An NBD error in a reply is not a failure of the
 * call: it is reported in struct nbd_result.
 */
#ifndef NBD_CLIENT_H
#define NBD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nbd_wire.h"

/* Seconds every send, receive and connect may take. */
#define NBD_IO_TIMEOUT 10

/* Where the server listens: exactly one of the two is set. */
struct nbd_addr {
	const char *unix_path;
	const char *tcp; /* "HOST:PORT" */
};

/* What to negotiate before NBD_OPT_GO (see nbd_conn_connect()). */
struct nbd_session_opts {
	const char *export;    /* export name, "" for the default */
	bool structured;       /* send NBD_OPT_STRUCTURED_REPLY */
	bool meta;             /* select base:allocation if offered (needs structured) */
};

/* One connection.  Owned by its user; nbd_conn_close() ends it. */
struct nbd_conn {
	int fd;                      /* -1 when closed */
	uint16_t hs_flags;           /* handshake flags from the greeting */
	bool structured;             /* structured replies acknowledged */
	bool meta;                   /* a metadata context was selected */
	uint32_t meta_id;            /* its id, for NBD_REPLY_TYPE_BLOCK_STATUS */
	struct nbd_export_info info; /* from the NBD_OPT_GO that succeeded */
	uint64_t next_cookie;
	char why[192];               /* what broke the protocol, for -EPROTO */
};

/* The outcome of one request whose reply arrived. */
struct nbd_result {
	uint32_t error;         /* 0, or the first NBD error of the reply */
	char msg[160];          /* the server's message with that error, if any */
	bool simple;            /* answered by a simple reply */
	unsigned int chunks;    /* structured chunks received */
	unsigned int content;   /* of which data or hole chunks */
	unsigned int extents;   /* block status descriptors received */
	uint32_t first_ext_len; /* first descriptor */
	uint32_t first_ext_flags;
	uint64_t ext_total;     /* sum of descriptor lengths */
};

/* A request header with the right magic; nbd_cmd() sets the cookie. */
static inline struct nbd_request nbd_req(uint16_t type, uint16_t flags, uint64_t offset,
					 uint32_t len)
{
	struct nbd_request rq = {
		.magic = NBD_REQUEST_MAGIC,
		.flags = flags,
		.type = type,
		.offset = offset,
		.len = len,
	};

	return rq;
}

/* Called for each non-final option reply, with its payload. */
typedef int (*nbd_opt_cb)(void *arg, const struct nbd_opt_reply *r, const uint8_t *data);

void nbd_conn_init(struct nbd_conn *c);
int nbd_conn_dial(struct nbd_conn *c, const struct nbd_addr *a);
int nbd_conn_greet(struct nbd_conn *c, uint32_t client_flags);
int nbd_conn_connect(struct nbd_conn *c, const struct nbd_addr *a,
		     const struct nbd_session_opts *o);
void nbd_conn_close(struct nbd_conn *c);
const char *nbd_conn_strerror(const struct nbd_conn *c, int r);

int nbd_send_all(struct nbd_conn *c, const void *buf, size_t len);
int nbd_recv_all(struct nbd_conn *c, void *buf, size_t len);
int nbd_wait_closed(struct nbd_conn *c);

int nbd_opt_send(struct nbd_conn *c, uint32_t option, const void *data, uint32_t len);
int nbd_opt_finish(struct nbd_conn *c, uint32_t option, nbd_opt_cb cb, void *arg,
		   uint32_t *final);
int nbd_opt_run(struct nbd_conn *c, uint32_t option, const void *data, uint32_t len,
		nbd_opt_cb cb, void *arg, uint32_t *final);
int nbd_opt_info(struct nbd_conn *c, uint32_t option, const char *export,
		 struct nbd_export_info *ei, uint32_t *final);

int nbd_cmd(struct nbd_conn *c, struct nbd_request *rq, const void *wdata, size_t wlen,
	    void *rbuf, struct nbd_result *res);
int nbd_cmd_read(struct nbd_conn *c, uint64_t offset, uint32_t len, void *buf,
		 struct nbd_result *res);
int nbd_cmd_write(struct nbd_conn *c, uint64_t offset, uint32_t len, const void *buf,
		  struct nbd_result *res);
int nbd_send_disc(struct nbd_conn *c);

#endif

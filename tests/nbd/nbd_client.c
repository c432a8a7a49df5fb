/*
 * The raw NBD client of the protocol tests (see nbd_client.h): sockets with
 * timeouts, the fixed newstyle handshake, requests and the checking of
 * replies.  Any call that returns a negative errno has closed the
 * connection: after a timeout or a protocol break the stream can no longer
 * be trusted to be in step.
 */
#include "nbd_client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Largest payload of an option reply or a non-data chunk we accept. */
#define MAX_SMALL_PAYLOAD (16U << 20)
/* Largest read reply we drain without a buffer to keep the stream in step. */
#define MAX_DRAIN (64U << 20)

void nbd_conn_init(struct nbd_conn *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void nbd_conn_close(struct nbd_conn *c)
{
	if (c->fd >= 0)
		(void)close(c->fd);
	c->fd = -1;
}

/* Close c and record why the protocol was broken; returns -EPROTO. */
__attribute__((format(printf, 2, 3)))
static int broke(struct nbd_conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	nbd_conn_close(c);
	return -EPROTO;
}

/* Close c and pass r on. */
static int failed(struct nbd_conn *c, int r)
{
	nbd_conn_close(c);
	return r;
}

const char *nbd_conn_strerror(const struct nbd_conn *c, int r)
{
	switch (-r) {
	case ECONNRESET:
		return "the server closed the connection";
	case ETIMEDOUT:
		return "no answer within the timeout";
	case EPROTO:
	case EACCES:
	case EOPNOTSUPP:
		return c->why;
	default:
		return strerror(-r);
	}
}

static int set_timeouts(int fd)
{
	struct timeval tv = {.tv_sec = NBD_IO_TIMEOUT};

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

static int dial_unix(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd, r;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = set_timeouts(fd);
	if (r == 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		r = errno == EINPROGRESS ? -ETIMEDOUT : -errno;
	if (r < 0) {
		(void)close(fd);
		return r;
	}
	return fd;
}

/* Split "HOST:PORT" or "[HOST]:PORT" into host and port. */
static int split_host_port(const char *s, char *host, size_t cap, const char **port)
{
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t n;

	if (!colon || !colon[1])
		return -EINVAL;
	n = (size_t)(colon - s);
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		h = s + 1;
		n -= 2;
	}
	if (n == 0 || n >= cap)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = colon + 1;
	return 0;
}

static int dial_tcp(const char *hostport)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res, *ai;
	const char *port;
	char host[256];
	int fd = -EHOSTUNREACH, r;

	r = split_host_port(hostport, host, sizeof(host), &port);
	if (r < 0)
		return r;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		int one = 1;

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			fd = -errno;
			continue;
		}
		/* SO_SNDTIMEO bounds connect() as well. */
		r = set_timeouts(fd);
		if (r == 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
			r = errno == EINPROGRESS ? -ETIMEDOUT : -errno;
		if (r == 0)
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (r == 0)
			break;
		(void)close(fd);
		fd = r;
	}
	freeaddrinfo(res);
	return fd;
}

/* Open a socket to the server; c must be closed.  Returns 0 or -errno. */
int nbd_conn_dial(struct nbd_conn *c, const struct nbd_addr *a)
{
	int fd;

	nbd_conn_close(c);
	nbd_conn_init(c);
	fd = a->unix_path ? dial_unix(a->unix_path) : dial_tcp(a->tcp);
	if (fd < 0)
		return fd;
	c->fd = fd;
	return 0;
}

int nbd_send_all(struct nbd_conn *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (c->fd < 0)
		return -ECONNRESET;
	while (len) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return failed(c, -ETIMEDOUT);
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return failed(c, -ECONNRESET);
		if (n < 0)
			return failed(c, -errno);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int nbd_recv_all(struct nbd_conn *c, void *buf, size_t len)
{
	uint8_t *p = buf;

	if (c->fd < 0)
		return -ECONNRESET;
	while (len) {
		ssize_t n = recv(c->fd, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return failed(c, -ETIMEDOUT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return failed(c, -ECONNRESET);
		if (n < 0)
			return failed(c, -errno);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read and drop len bytes. */
static int drain(struct nbd_conn *c, uint64_t len)
{
	uint8_t scratch[65536];

	while (len) {
		size_t n = len < sizeof(scratch) ? (size_t)len : sizeof(scratch);
		int r = nbd_recv_all(c, scratch, n);

		if (r < 0)
			return r;
		len -= n;
	}
	return 0;
}

/*
 * Wait for the server to close the connection, dropping whatever it sends
 * first.  Returns 0 when it closed, -ETIMEDOUT when it did not within the
 * timeout.  c is closed afterwards either way.
 */
int nbd_wait_closed(struct nbd_conn *c)
{
	uint8_t scratch[4096];
	size_t total = 0;

	while (c->fd >= 0 && total < MAX_DRAIN) {
		ssize_t n = recv(c->fd, scratch, sizeof(scratch), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return failed(c, 0);
		if (n < 0)
			return failed(c, errno == EAGAIN ? -ETIMEDOUT : -errno);
		total += (size_t)n;
	}
	return failed(c, -ETIMEDOUT);
}

/* Read the greeting and answer with client_flags. */
int nbd_conn_greet(struct nbd_conn *c, uint32_t client_flags)
{
	uint8_t buf[NBD_GREETING_LEN], flags[4];
	struct nbd_greeting g;
	int r;

	r = nbd_recv_all(c, buf, sizeof(buf));
	if (r < 0)
		return r;
	if (nbd_greeting_decode(buf, &g) < 0)
		return broke(c, "greeting is not NBDMAGIC, IHAVEOPT (oldstyle server?)");
	c->hs_flags = g.flags;
	nbd_put32(flags, client_flags);
	return nbd_send_all(c, flags, sizeof(flags));
}

/* Send one option with its data. */
int nbd_opt_send(struct nbd_conn *c, uint32_t option, const void *data, uint32_t len)
{
	uint8_t hdr[NBD_OPT_HDR_LEN];
	int r;

	nbd_opt_hdr_encode(hdr, NBD_OPT_MAGIC, option, len);
	r = nbd_send_all(c, hdr, sizeof(hdr));
	if (r == 0 && len)
		r = nbd_send_all(c, data, len);
	return r;
}

/* Read one option reply; *data gets its payload (from malloc, NUL-ended). */
static int opt_recv(struct nbd_conn *c, struct nbd_opt_reply *rep, uint8_t **data)
{
	uint8_t hdr[NBD_OPT_REPLY_HDR_LEN];
	int r;

	*data = NULL;
	r = nbd_recv_all(c, hdr, sizeof(hdr));
	if (r < 0)
		return r;
	if (nbd_opt_reply_hdr_decode(hdr, rep) < 0)
		return broke(c, "option reply magic 0x%016llx",
			     (unsigned long long)nbd_get64(hdr));
	if (rep->len > MAX_SMALL_PAYLOAD)
		return broke(c, "option reply of %u bytes", rep->len);
	*data = malloc((size_t)rep->len + 1);
	if (!*data)
		return failed(c, -ENOMEM);
	r = nbd_recv_all(c, *data, rep->len);
	if (r < 0) {
		free(*data);
		*data = NULL;
		return r;
	}
	(*data)[rep->len] = '\0';
	return 0;
}

/*
 * Read the replies to option until the final one (NBD_REP_ACK or an error),
 * which goes to *final.  Other replies go to cb (if not NULL); a negative
 * value from cb ends the connection and is returned.
 */
int nbd_opt_finish(struct nbd_conn *c, uint32_t option, nbd_opt_cb cb, void *arg,
		   uint32_t *final)
{
	for (unsigned int i = 0; i < 100000; i++) {
		struct nbd_opt_reply rep;
		uint8_t *data;
		int r;

		r = opt_recv(c, &rep, &data);
		if (r < 0)
			return r;
		if (rep.option != option) {
			free(data);
			return broke(c, "reply to option %u carries option %u", option,
				     rep.option);
		}
		if (rep.type == NBD_REP_ACK || (rep.type & NBD_REP_FLAG_ERROR)) {
			if (rep.type == NBD_REP_ACK && rep.len) {
				free(data);
				return broke(c, "NBD_REP_ACK with %u bytes of data", rep.len);
			}
			free(data);
			*final = rep.type;
			return 0;
		}
		r = cb ? cb(arg, &rep, data) : 0;
		free(data);
		if (r < 0)
			return failed(c, r);
	}
	return broke(c, "option %u: no final reply after 100000 replies", option);
}

int nbd_opt_run(struct nbd_conn *c, uint32_t option, const void *data, uint32_t len,
		nbd_opt_cb cb, void *arg, uint32_t *final)
{
	int r = nbd_opt_send(c, option, data, len);

	return r < 0 ? r : nbd_opt_finish(c, option, cb, arg, final);
}

struct info_arg {
	struct nbd_conn *c;
	struct nbd_export_info *ei;
};

static int info_cb(void *arg, const struct nbd_opt_reply *rep, const uint8_t *data)
{
	struct info_arg *ia = arg;

	if (rep->type != NBD_REP_INFO) {
		snprintf(ia->c->why, sizeof(ia->c->why), "%s in a reply to NBD_OPT_INFO/GO",
			 nbd_rep_name(rep->type));
		return -EPROTO;
	}
	if (nbd_info_reply_decode(data, rep->len, ia->ei) < 0) {
		snprintf(ia->c->why, sizeof(ia->c->why),
			 "NBD_REP_INFO of %u bytes does not fit its type", rep->len);
		return -EPROTO;
	}
	return 0;
}

/*
 * Send NBD_OPT_INFO or NBD_OPT_GO for export, asking for NBD_INFO_BLOCK_SIZE
 * (this client honours size constraints), and collect the information into
 * *ei.  *final is the last reply type.  On NBD_REP_ACK the information is
 * checked (NBD_INFO_EXPORT present, NBD_FLAG_HAS_FLAGS set, legal block
 * sizes), and for NBD_OPT_GO kept in c->info: the transmission phase has
 * begun.
 */
int nbd_opt_info(struct nbd_conn *c, uint32_t option, const char *export,
		 struct nbd_export_info *ei, uint32_t *final)
{
	static const uint16_t want[] = {NBD_INFO_BLOCK_SIZE};
	struct info_arg ia = {.c = c, .ei = ei};
	uint8_t buf[NBD_MAX_STRING + 16];
	int len, r;

	memset(ei, 0, sizeof(*ei));
	len = nbd_info_request_encode(buf, sizeof(buf), export, want, 1);
	if (len < 0)
		return len;
	r = nbd_opt_run(c, option, buf, (uint32_t)len, info_cb, &ia, final);
	if (r < 0 || *final != NBD_REP_ACK)
		return r;
	if (!ei->has_export)
		return broke(c, "NBD_REP_ACK without NBD_INFO_EXPORT");
	if (!(ei->eflags & NBD_FLAG_HAS_FLAGS))
		return broke(c, "transmission flags 0x%04x lack NBD_FLAG_HAS_FLAGS", ei->eflags);
	if (ei->has_block_size &&
	    nbd_block_size_check(ei->min_block, ei->pref_block, ei->max_block) < 0)
		return broke(c, "illegal block sizes: minimum %u, preferred %u, maximum %u",
			     ei->min_block, ei->pref_block, ei->max_block);
	if (option == NBD_OPT_GO)
		c->info = *ei;
	return 0;
}

struct meta_arg {
	struct nbd_conn *c;
};

static int meta_cb(void *arg, const struct nbd_opt_reply *rep, const uint8_t *data)
{
	struct meta_arg *ma = arg;

	if (rep->type != NBD_REP_META_CONTEXT || rep->len < 4) {
		snprintf(ma->c->why, sizeof(ma->c->why), "%s of %u bytes to SET_META_CONTEXT",
			 nbd_rep_name(rep->type), rep->len);
		return -EPROTO;
	}
	if (rep->len - 4 == strlen("base:allocation") &&
	    memcmp(data + 4, "base:allocation", rep->len - 4) == 0) {
		ma->c->meta = true;
		ma->c->meta_id = nbd_get32(data);
	}
	return 0;
}

/*
 * Negotiate structured replies: -EOPNOTSUPP if the server does not know
 * them (NBD_REP_ERR_UNSUP, which clients SHOULD be prepared for), -EACCES
 * for any other refusal.
 */
static int negotiate_structured(struct nbd_conn *c)
{
	uint32_t final;
	int r = nbd_opt_run(c, NBD_OPT_STRUCTURED_REPLY, NULL, 0, NULL, NULL, &final);

	if (r < 0)
		return r;
	if (final != NBD_REP_ACK) {
		snprintf(c->why, sizeof(c->why), "NBD_OPT_STRUCTURED_REPLY: %s",
			 nbd_rep_name(final));
		return failed(c, final == NBD_REP_ERR_UNSUP ? -EOPNOTSUPP : -EACCES);
	}
	c->structured = true;
	return 0;
}

/*
 * Select base:allocation.  A server that does not offer it is no failure:
 * c->meta stays false (and no context is selected, even after an error).
 */
static int negotiate_meta(struct nbd_conn *c, const char *export)
{
	static const char *const q[] = {"base:allocation"};
	struct meta_arg ma = {.c = c};
	uint8_t buf[NBD_MAX_STRING + 64];
	uint32_t final;
	int len, r;

	len = nbd_meta_request_encode(buf, sizeof(buf), export, q, 1);
	if (len < 0)
		return failed(c, len);
	r = nbd_opt_run(c, NBD_OPT_SET_META_CONTEXT, buf, (uint32_t)len, meta_cb, &ma, &final);
	if (r < 0)
		return r;
	if (final != NBD_REP_ACK)
		c->meta = false;
	return 0;
}

/*
 * Connect, handshake and enter the transmission phase with NBD_OPT_GO, as
 * o asks.  Returns 0, -EOPNOTSUPP when structured replies were asked for
 * and the server has none, -EACCES when the server refused an option
 * (c->why says which), or another negative errno.
 */
int nbd_conn_connect(struct nbd_conn *c, const struct nbd_addr *a,
		     const struct nbd_session_opts *o)
{
	struct nbd_export_info ei;
	uint32_t final;
	int r;

	r = nbd_conn_dial(c, a);
	if (r == 0)
		r = nbd_conn_greet(c, NBD_FLAG_C_FIXED_NEWSTYLE);
	if (r < 0)
		return r;
	if (!(c->hs_flags & NBD_FLAG_FIXED_NEWSTYLE))
		return broke(c, "server does not offer fixed newstyle negotiation");
	if (o->structured && (r = negotiate_structured(c)) < 0)
		return r;
	if (o->meta && (r = negotiate_meta(c, o->export)) < 0)
		return r;
	r = nbd_opt_info(c, NBD_OPT_GO, o->export, &ei, &final);
	if (r < 0)
		return r;
	if (final != NBD_REP_ACK) {
		snprintf(c->why, sizeof(c->why), "NBD_OPT_GO: %s", nbd_rep_name(final));
		return failed(c, -EACCES);
	}
	return 0;
}

/* What reading the chunks of one structured reply has found so far. */
struct chunk_state {
	const struct nbd_request *rq;
	uint8_t *rbuf;      /* read destination, rq->len bytes, or NULL */
	uint64_t covered;   /* bytes of the read described by content chunks */
	unsigned int status_chunks;
};

/* NBD_REPLY_TYPE_OFFSET_DATA or _OFFSET_HOLE: bounds-checked into rbuf. */
static int content_chunk(struct nbd_conn *c, const struct nbd_reply_hdr *h,
			 struct chunk_state *st, struct nbd_result *res)
{
	const struct nbd_request *rq = st->rq;
	uint8_t fixed[12];
	uint64_t off, n;
	int r;

	if (rq->type != NBD_CMD_READ)
		return broke(c, "content chunk in a reply to %s", nbd_cmd_name(rq->type));
	if (h->type == NBD_REPLY_TYPE_OFFSET_DATA ? h->len < 9 : h->len != 12)
		return broke(c, "content chunk type %u of length %u", h->type, h->len);
	r = nbd_recv_all(c, fixed, h->type == NBD_REPLY_TYPE_OFFSET_DATA ? 8 : 12);
	if (r < 0)
		return r;
	off = nbd_get64(fixed);
	n = h->type == NBD_REPLY_TYPE_OFFSET_DATA ? h->len - 8U : nbd_get32(fixed + 8);
	if (n == 0 || off < rq->offset || off - rq->offset > rq->len ||
	    n > rq->len - (off - rq->offset))
		return broke(c, "content chunk [%llu, +%llu) outside the read [%llu, +%u)",
			     (unsigned long long)off, (unsigned long long)n,
			     (unsigned long long)rq->offset, rq->len);
	res->content++;
	st->covered += n;
	if (h->type == NBD_REPLY_TYPE_OFFSET_HOLE) {
		if (st->rbuf)
			memset(st->rbuf + (off - rq->offset), 0, (size_t)n);
		return 0;
	}
	if (st->rbuf)
		return nbd_recv_all(c, st->rbuf + (off - rq->offset), (size_t)n);
	return drain(c, n);
}

/* NBD_REPLY_TYPE_BLOCK_STATUS: descriptors counted into res. */
static int status_chunk(struct nbd_conn *c, const struct nbd_reply_hdr *h,
			struct chunk_state *st, struct nbd_result *res)
{
	uint8_t *p;
	int r;

	if (st->rq->type != NBD_CMD_BLOCK_STATUS)
		return broke(c, "block status chunk in a reply to %s",
			     nbd_cmd_name(st->rq->type));
	if (h->len < 12 || (h->len - 4) % 8 || h->len > MAX_SMALL_PAYLOAD)
		return broke(c, "block status chunk of length %u", h->len);
	p = malloc(h->len);
	if (!p)
		return failed(c, -ENOMEM);
	r = nbd_recv_all(c, p, h->len);
	if (r == 0 && (!c->meta || nbd_get32(p) != c->meta_id))
		r = broke(c, "block status for context id %u, not the selected %u",
			  nbd_get32(p), c->meta_id);
	for (uint32_t i = 4; r == 0 && i < h->len; i += 8) {
		uint32_t len = nbd_get32(p + i), flags = nbd_get32(p + i + 4);

		if (len == 0) {
			r = broke(c, "block status descriptor of length 0");
			break;
		}
		if (res->extents++ == 0) {
			res->first_ext_len = len;
			res->first_ext_flags = flags;
		}
		res->ext_total += len;
	}
	free(p);
	st->status_chunks++;
	return r;
}

/* An error chunk: the first error and its message go to res. */
static int error_chunk(struct nbd_conn *c, const struct nbd_reply_hdr *h,
		       struct nbd_result *res)
{
	struct nbd_error_chunk e;
	uint8_t *p;
	int r;

	if (h->len > MAX_SMALL_PAYLOAD)
		return broke(c, "error chunk of length %u", h->len);
	p = malloc(h->len ? h->len : 1);
	if (!p)
		return failed(c, -ENOMEM);
	r = nbd_recv_all(c, p, h->len);
	if (r == 0 && nbd_error_chunk_decode(p, h->len, h->type, &e) < 0)
		r = broke(c, "malformed error chunk type 0x%04x, length %u", h->type, h->len);
	if (r == 0 && !res->error) {
		res->error = e.error;
		snprintf(res->msg, sizeof(res->msg), "%.*s", (int)e.msg_len, (const char *)e.msg);
	}
	free(p);
	return r;
}

static int one_chunk(struct nbd_conn *c, const struct nbd_reply_hdr *h,
		     struct chunk_state *st, struct nbd_result *res)
{
	res->chunks++;
	switch (h->type) {
	case NBD_REPLY_TYPE_NONE:
		if (h->len || !(h->flags & NBD_REPLY_FLAG_DONE))
			return broke(c, "NBD_REPLY_TYPE_NONE of length %u, flags 0x%x",
				     h->len, h->flags);
		return 0;
	case NBD_REPLY_TYPE_OFFSET_DATA:
	case NBD_REPLY_TYPE_OFFSET_HOLE:
		return content_chunk(c, h, st, res);
	case NBD_REPLY_TYPE_BLOCK_STATUS:
		return status_chunk(c, h, st, res);
	default:
		if (h->type & NBD_REPLY_TYPE_FLAG_ERROR)
			return error_chunk(c, h, res);
		return broke(c, "unknown chunk type %u", h->type);
	}
}

/* A simple reply to rq; for a successful read its data follows. */
static int simple_reply(struct nbd_conn *c, const struct nbd_request *rq,
			const struct nbd_reply_hdr *h, void *rbuf, struct nbd_result *res)
{
	res->simple = true;
	res->error = h->error;
	if (c->structured && rq->type == NBD_CMD_READ)
		return broke(c, "simple reply to a read after structured replies were negotiated");
	if (rq->type == NBD_CMD_BLOCK_STATUS && h->error == 0)
		return broke(c, "successful block status in a simple reply");
	if (rq->type != NBD_CMD_READ || h->error)
		return 0;
	if (rbuf)
		return nbd_recv_all(c, rbuf, rq->len);
	if (rq->len > MAX_DRAIN)
		return broke(c, "successful read of %u bytes: not drained", rq->len);
	return drain(c, rq->len);
}

/* Read one reply header of either kind. */
static int reply_hdr(struct nbd_conn *c, const struct nbd_request *rq,
		     struct nbd_reply_hdr *h)
{
	uint8_t buf[NBD_CHUNK_HDR_LEN];
	int len, r;

	r = nbd_recv_all(c, buf, NBD_REPLY_MAGIC_LEN);
	if (r < 0)
		return r;
	len = nbd_reply_hdr_len(buf);
	if (len < 0)
		return broke(c, "reply magic 0x%08x", nbd_get32(buf));
	r = nbd_recv_all(c, buf + NBD_REPLY_MAGIC_LEN, (size_t)len - NBD_REPLY_MAGIC_LEN);
	if (r < 0)
		return r;
	(void)nbd_reply_hdr_decode(buf, (size_t)len, h);
	if (h->cookie != rq->cookie)
		return broke(c, "reply cookie %llu to request %llu",
			     (unsigned long long)h->cookie, (unsigned long long)rq->cookie);
	if (h->structured && !c->structured)
		return broke(c, "structured reply chunk without negotiation");
	return 0;
}

/* Check a finished structured reply as a whole. */
static int structured_done(struct nbd_conn *c, const struct chunk_state *st,
			   const struct nbd_result *res)
{
	const struct nbd_request *rq = st->rq;

	if (res->error)
		return 0;
	if (rq->type == NBD_CMD_READ && st->covered != rq->len)
		return broke(c, "successful read reply describes %llu of %u bytes",
			     (unsigned long long)st->covered, rq->len);
	if (rq->type == NBD_CMD_BLOCK_STATUS && st->status_chunks != 1)
		return broke(c, "successful block status with %u status chunks for one context",
			     st->status_chunks);
	return 0;
}

/*
 * Send rq (its cookie is set here) followed by wlen bytes of wdata, and read
 * the whole reply into *res.  A read's data goes to rbuf (rq->len bytes) or
 * is dropped if rbuf is NULL.  NBD_CMD_DISC has no reply.  Returns 0 when a
 * reply arrived (res->error tells whether the request succeeded).
 */
int nbd_cmd(struct nbd_conn *c, struct nbd_request *rq, const void *wdata, size_t wlen,
	    void *rbuf, struct nbd_result *res)
{
	uint8_t hdr[NBD_REQUEST_LEN];
	struct chunk_state st = {.rq = rq, .rbuf = rbuf};
	struct nbd_reply_hdr h;
	int r;

	memset(res, 0, sizeof(*res));
	rq->cookie = ++c->next_cookie;
	nbd_request_encode(hdr, rq);
	r = nbd_send_all(c, hdr, sizeof(hdr));
	if (r == 0 && wlen)
		r = nbd_send_all(c, wdata, wlen);
	if (r < 0 || rq->type == NBD_CMD_DISC)
		return r;
	r = reply_hdr(c, rq, &h);
	if (r < 0)
		return r;
	if (!h.structured)
		return simple_reply(c, rq, &h, rbuf, res);
	for (unsigned int i = 0;; i++) {
		r = one_chunk(c, &h, &st, res);
		if (r < 0)
			return r;
		if (h.flags & NBD_REPLY_FLAG_DONE)
			break;
		if (i > 1000000)
			return broke(c, "more than a million chunks in one reply");
		r = reply_hdr(c, rq, &h);
		if (r < 0)
			return r;
		if (!h.structured)
			return broke(c, "simple reply in the middle of a structured one");
	}
	return structured_done(c, &st, res);
}

int nbd_cmd_read(struct nbd_conn *c, uint64_t offset, uint32_t len, void *buf,
		 struct nbd_result *res)
{
	struct nbd_request rq = nbd_req(NBD_CMD_READ, 0, offset, len);

	return nbd_cmd(c, &rq, NULL, 0, buf, res);
}

int nbd_cmd_write(struct nbd_conn *c, uint64_t offset, uint32_t len, const void *buf,
		  struct nbd_result *res)
{
	struct nbd_request rq = nbd_req(NBD_CMD_WRITE, 0, offset, len);

	return nbd_cmd(c, &rq, buf, len, NULL, res);
}

/* Send NBD_CMD_DISC (soft disconnect); there is no reply. */
int nbd_send_disc(struct nbd_conn *c)
{
	struct nbd_request rq = nbd_req(NBD_CMD_DISC, 0, 0, 0);
	struct nbd_result res;

	return nbd_cmd(c, &rq, NULL, 0, NULL, &res);
}

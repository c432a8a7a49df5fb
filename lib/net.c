/*
 * Framed message connections over libuv TCP handles (see net.h).
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "authconn.h"
#include "crc32c.h"
#include "log.h"

#define READ_CHUNK (256u * 1024u)

struct write_req {
	uv_write_t req;
	struct write_req *next; /* the next frame of the same write */
	struct mx_conn *c;
	uint8_t hdr[MX_MSG_HDR_LEN];
	uint8_t mac[MX_MAC_LEN];
	uint8_t *payload; /* From malloc() and owned, or shared's */
	size_t len;       /* the payload's */
	bool has_mac;     /* a MAC follows the payload */
	struct mx_shared *shared; /* the payload's, one reference; or NULL */
};

/* A send that waits for the end of the handshake. */
struct mx_held {
	struct mx_held *next;
	uint16_t type;
	uint64_t tid;
	uint8_t *payload; /* From malloc(); owned. */
	size_t len;
};

/* The largest frame taken before authentication (a HELLO with a ticket). */
#define MX_AUTH_FRAME_MAX 4096

/* The batch of the loop this thread runs, if it has one. */
static __thread struct mx_netbatch *tl_batch;

static void conn_flush(struct mx_conn *c);
static void write_chain_free(struct mx_conn *c, struct write_req *wr);

static bool is_auth_type(uint16_t type)
{
	return type >= MX_MSG_AUTH_HELLO && type <= MX_MSG_AUTH_RENEW;
}

/* The MAC of a frame (docs/auth.md, "Message integrity"): GMAC, that is
 * AES-256-GCM with no plaintext, under the connection's key, over header
 * and payload; the nonce is the direction (1 from the end that started
 * the handshake, 2 from the other) and the frame's sequence number in it,
 * so no nonce repeats under a key.  x is keyed once per connection (by
 * mx_conn_secure) and only takes a new nonce per frame. */
static void gmac(EVP_CIPHER_CTX *x, bool from_initiator, uint64_t seq, const uint8_t *hdr,
		 const uint8_t *payload, size_t len, uint8_t out[MX_MAC_LEN])
{
	uint8_t iv[12] = {0}, none[16];
	int n = 0;

	iv[0] = from_initiator ? 1 : 2;
	for (int i = 0; i < 8; i++)
		iv[4 + i] = (uint8_t)(seq >> (8 * i));
	/* Failing only without memory inside libcrypto: nothing sensible
	 * to send or accept then. */
	if (!x || EVP_EncryptInit_ex(x, NULL, NULL, NULL, iv) != 1 ||
	    EVP_EncryptUpdate(x, NULL, &n, hdr, MX_MSG_HDR_LEN) != 1 ||
	    (len && EVP_EncryptUpdate(x, NULL, &n, payload, (int)len) != 1) ||
	    EVP_EncryptFinal_ex(x, none, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, MX_MAC_LEN, out) != 1)
		abort();
}

static EVP_CIPHER_CTX *gmac_ctx(const uint8_t key[MX_KEY_LEN])
{
	EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();

	if (!x || EVP_EncryptInit_ex(x, EVP_aes_256_gcm(), NULL, key, NULL) != 1)
		abort(); /* out of memory inside libcrypto */
	return x;
}

static void frame_mac(const struct mx_conn *c, bool outgoing, uint64_t seq, const uint8_t *hdr,
		      const uint8_t *payload, size_t len, uint8_t out[MX_MAC_LEN])
{
	gmac(c->mac_ctx, outgoing == c->auth_initiator, seq, hdr, payload, len, out);
}

void mx_frame_mac(const uint8_t key[MX_KEY_LEN], bool from_initiator, uint64_t seq,
		  const uint8_t *hdr, const void *payload, size_t len, uint8_t out[MX_MAC_LEN])
{
	EVP_CIPHER_CTX *x = gmac_ctx(key);

	gmac(x, from_initiator, seq, hdr, payload, len, out);
	EVP_CIPHER_CTX_free(x);
}

int mx_parse_addr(const char *s, struct sockaddr_in *out)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	long port;
	size_t hl;

	if (!colon)
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &out->sin_addr) != 1)
		return -EINVAL;
	return 0;
}

static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t sz)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	char ip[INET_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
	snprintf(buf, sz, "%s:%u", ip, ntohs(sin->sin_port));
}

int mx_listen(uv_loop_t *loop, uv_tcp_t *server, const char *addr, uv_connection_cb cb,
	      char *bound, size_t boundsz)
{
	struct sockaddr_in sin;
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	int r = mx_parse_addr(addr, &sin);

	if (r < 0)
		return r;
	r = uv_tcp_init(loop, server);
	if (r < 0)
		return r;
	r = uv_tcp_bind(server, (const struct sockaddr *)&sin, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)server, 512, cb);
	if (r < 0)
		return r;
	if (bound) {
		r = uv_tcp_getsockname(server, (struct sockaddr *)&ss, &len);
		if (r < 0)
			return r;
		format_addr(&ss, bound, boundsz);
	}
	return 0;
}

static void conn_closed_cb(uv_handle_t *h)
{
	struct mx_conn *c = h->data;

	if (--c->open_handles > 0)
		return;
	if (c->ops->on_close)
		c->ops->on_close(c, c->close_err);
	/* Closing wrote what was held; nothing can be left, but be sure. */
	mx_list_del(&c->batch_link);
	write_chain_free(c, c->out_head);
	while (c->held_head) {
		struct mx_held *hd = c->held_head;

		c->held_head = hd->next;
		free(hd->payload);
		free(hd);
	}
	mx_authconn_free(c);
	EVP_CIPHER_CTX_free(c->mac_ctx);
	OPENSSL_cleanse(c->mac_key, sizeof(c->mac_key));
	free(c->rbuf);
	free(c);
}

/* Close the connection's handles; conn_closed_cb frees it after the last. */
static void close_handles(struct mx_conn *c)
{
	c->open_handles = 1 + c->hs_timer_init;
	if (c->hs_timer_init)
		uv_close((uv_handle_t *)&c->hs_timer, conn_closed_cb);
	uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

void mx_conn_close(struct mx_conn *c, int err)
{
	if (c->closing)
		return;
	conn_flush(c); /* what was sent goes out as far as it can */
	if (c->closing)
		return;
	c->closing = true;
	c->close_err = err;
	close_handles(c);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	struct mx_conn *c = req->data;

	(void)status;
	free(req);
	close_handles(c);
}

void mx_conn_close_after_send(struct mx_conn *c, int err)
{
	uv_shutdown_t *req;

	if (c->closing)
		return;
	conn_flush(c); /* before the shutdown, which follows queued writes */
	if (c->closing)
		return;
	c->closing = true;
	c->close_err = err;
	(void)uv_read_stop((uv_stream_t *)&c->tcp);
	req = malloc(sizeof(*req));
	if (req) {
		req->data = c;
		if (uv_shutdown(req, (uv_stream_t *)&c->tcp, shutdown_cb) == 0)
			return;
		free(req);
	}
	close_handles(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct mx_conn *c = h->data;
	size_t want = READ_CHUNK;

	(void)suggested;
	/* Reclaim consumed space at the front. */
	if (c->rstart > 0) {
		memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
		c->rend -= c->rstart;
		c->rstart = 0;
	}
	/* If a large message is partly in, make room for all of it at once. */
	if (c->rend >= MX_MSG_HDR_LEN) {
		struct mx_msg_hdr hd;

		if (mx_msg_hdr_decode(c->rbuf, &hd) == 0 &&
		    (c->sec != MX_SEC_HANDSHAKE || hd.len <= MX_AUTH_FRAME_MAX) &&
		    MX_MSG_HDR_LEN + (size_t)hd.len > c->rend + want)
			want = MX_MSG_HDR_LEN + (size_t)hd.len - c->rend;
	}
	if (c->rcap - c->rend < want) {
		size_t cap = c->rend + want;
		uint8_t *n = realloc(c->rbuf, cap);

		if (!n) {
			buf->base = NULL;
			buf->len = 0;
			return;
		}
		c->rbuf = n;
		c->rcap = cap;
	}
	buf->base = (char *)c->rbuf + c->rend;
	buf->len = c->rcap - c->rend;
}

static void process(struct mx_conn *c)
{
	while (!c->closing && c->rend - c->rstart >= MX_MSG_HDR_LEN) {
		uint8_t *p = c->rbuf + c->rstart;
		struct mx_msg_hdr h;
		int r = mx_msg_hdr_decode(p, &h);

		if (r < 0) {
			mx_warn("%s: bad frame header (%s), closing", c->peer, strerror(-r));
			mx_conn_close(c, r);
			return;
		}
		/* Before authentication only the small handshake frames. */
		if (c->sec == MX_SEC_HANDSHAKE && h.len > MX_AUTH_FRAME_MAX) {
			mx_warn("%s: a %u-byte frame before authentication, closing", c->peer, h.len);
			mx_conn_close(c, -EACCES);
			return;
		}
		size_t mac = c->sec == MX_SEC_ON ? MX_MAC_LEN : 0;

		if (c->rend - c->rstart < MX_MSG_HDR_LEN + (size_t)h.len + mac)
			return;
		if (mx_msg_payload_check(&h, p + MX_MSG_HDR_LEN) < 0) {
			mx_warn("%s: payload checksum mismatch, closing", c->peer);
			mx_conn_close(c, -EBADMSG);
			return;
		}
		if (mac) {
			uint8_t want[MX_MAC_LEN];

			frame_mac(c, false, c->seq_in, p, p + MX_MSG_HDR_LEN, h.len, want);
			if (!mx_mac_equal(want, p + MX_MSG_HDR_LEN + h.len, MX_MAC_LEN)) {
				mx_warn("%s: message authentication failed (altered, replayed or "
					"out of order), closing", c->peer);
				mx_conn_close(c, -EBADMSG);
				return;
			}
			c->seq_in++;
		}
		c->rstart += MX_MSG_HDR_LEN + (size_t)h.len + mac;
		c->msgs_in++;
		if (is_auth_type(h.type) || c->sec == MX_SEC_HANDSHAKE) {
			/* The handshake, a renewal, or a frame sent too early. */
			int e = mx_authconn_on_msg(c, &h, p + MX_MSG_HDR_LEN);

			if (e < 0 && !c->closing)
				mx_conn_close(c, e);
			continue;
		}
		c->ops->on_msg(c, &h, p + MX_MSG_HDR_LEN);
	}
	if (c->rstart == c->rend)
		c->rstart = c->rend = 0;
	/* Do not keep a huge buffer around after a large message. */
	if (c->rend == 0 && c->rcap > 4 * READ_CHUNK) {
		free(c->rbuf);
		c->rbuf = NULL;
		c->rcap = 0;
	}
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct mx_conn *c = s->data;

	(void)buf;
	if (n < 0) {
		mx_conn_close(c, n == UV_EOF ? 0 : (int)n);
		return;
	}
	if (n == 0)
		return;
	c->rend += (size_t)n;
	process(c);
}

static struct mx_conn *conn_new(uv_loop_t *loop, const struct mx_conn_ops *ops, void *owner)
{
	struct mx_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (uv_tcp_init(loop, &c->tcp) < 0) {
		free(c);
		return NULL;
	}
	c->tcp.data = c;
	c->ops = ops;
	c->owner = owner;
	c->held_tail = &c->held_head;
	c->out_tail = &c->out_head;
	mx_list_init(&c->batch_link);
	return c;
}

int mx_conn_accept(uv_stream_t *server, const struct mx_conn_ops *ops, void *owner,
		   struct mx_conn **out)
{
	struct mx_conn *c = conn_new(server->loop, ops, owner);
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	int r;

	if (!c)
		return -ENOMEM;
	r = uv_accept(server, (uv_stream_t *)&c->tcp);
	if (r < 0) {
		c->ops = &(const struct mx_conn_ops){0};
		uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
		return r;
	}
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
		format_addr(&ss, c->peer, sizeof(c->peer));
	(void)uv_tcp_nodelay(&c->tcp, 1);
	c->connected = true;
	r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
	if (r < 0) {
		mx_conn_close(c, r);
		return r;
	}
	*out = c;
	return 0;
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct mx_conn *c = req->data;

	free(req);
	if (c->closing)
		return;
	if (status < 0) {
		mx_conn_close(c, status);
		return;
	}
	c->connected = true;
	(void)uv_tcp_nodelay(&c->tcp, 1);
	status = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
	if (status < 0) {
		mx_conn_close(c, status);
		return;
	}
	if (c->auth_client) {
		/* Our sends wait in the held list until AUTH_DONE. */
		c->sec = MX_SEC_HANDSHAKE;
		c->auth_initiator = true;
		status = mx_authconn_start(c);
		if (status < 0) {
			mx_conn_close(c, status);
			return;
		}
	}
	if (c->ops->on_connect)
		c->ops->on_connect(c);
}

int mx_conn_connect(uv_loop_t *loop, const char *addr, const struct mx_conn_ops *ops,
		    void *owner, struct mx_conn **out)
{
	struct sockaddr_in sin;
	struct mx_conn *c;
	uv_connect_t *req;
	int r = mx_parse_addr(addr, &sin);

	if (r < 0)
		return r;
	c = conn_new(loop, ops, owner);
	req = malloc(sizeof(*req));
	if (!c || !req) {
		free(req);
		if (c) {
			c->ops = &(const struct mx_conn_ops){0};
			uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
		}
		return -ENOMEM;
	}
	snprintf(c->peer, sizeof(c->peer), "%s", addr);
	req->data = c;
	r = uv_tcp_connect(req, &c->tcp, (const struct sockaddr *)&sin, connect_cb);
	if (r < 0) {
		free(req);
		c->ops = &(const struct mx_conn_ops){0};
		uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
		return r;
	}
	*out = c;
	return 0;
}

struct mx_shared *mx_shared_new(struct mx_wbuf *w)
{
	struct mx_shared *sh;

	if (w->err) {
		mx_wbuf_free(w);
		return NULL;
	}
	sh = malloc(sizeof(*sh));
	if (!sh) {
		mx_wbuf_free(w);
		return NULL;
	}
	sh->refs = 1;
	sh->data = w->data;
	sh->len = w->len;
	sh->crc = mx_crc32c(0, sh->data, sh->len);
	mx_wbuf_init(w);
	return sh;
}

void mx_shared_unref(struct mx_shared *sh)
{
	if (sh && --sh->refs == 0) {
		free(sh->data);
		free(sh);
	}
}

static void write_req_free(struct write_req *wr)
{
	if (wr->shared)
		mx_shared_unref(wr->shared);
	else
		free(wr->payload);
	free(wr);
}

/* A frame's bytes on the wire, its MAC included. */
static size_t frame_bytes(const struct write_req *wr)
{
	return MX_MSG_HDR_LEN + wr->len + (wr->has_mac ? MX_MAC_LEN : 0);
}

/* Free wr and the frames chained after it. */
static void write_chain_free(struct mx_conn *c, struct write_req *wr)
{
	while (wr) {
		struct write_req *next = wr->next;

		c->queued_bytes -= frame_bytes(wr);
		write_req_free(wr);
		wr = next;
	}
}

static void write_cb(uv_write_t *req, int status)
{
	struct write_req *wr = (struct write_req *)req;
	struct mx_conn *c = wr->c;

	write_chain_free(c, wr);
	if (status < 0 && status != UV_ECANCELED)
		mx_conn_close(c, status);
}

/* The buffers of one frame: header, payload, MAC. */
static unsigned frame_bufs(struct write_req *wr, uv_buf_t *bufs)
{
	unsigned n = 0;

	bufs[n++] = uv_buf_init((char *)wr->hdr, MX_MSG_HDR_LEN);
	if (wr->len)
		bufs[n++] = uv_buf_init((char *)wr->payload, (unsigned)wr->len);
	if (wr->has_mac)
		bufs[n++] = uv_buf_init((char *)wr->mac, MX_MAC_LEN);
	return n;
}

/* Write the frames chained from first in one uv_write.  0, or a negative
 * errno after which the connection is closing. */
static int write_chain(struct mx_conn *c, struct write_req *first, unsigned frames)
{
	uv_buf_t small[3 * 16], *bufs = small;
	struct write_req *wr = first; /* never NULL */
	unsigned n = 0;
	int r;

	if (frames > 16) {
		bufs = malloc(3 * frames * sizeof(*bufs));
		if (!bufs) {
			write_chain_free(c, first);
			mx_conn_close(c, -ENOMEM);
			return -ENOMEM;
		}
	}
	do {
		n += frame_bufs(wr, bufs + n);
		wr = wr->next;
	} while (wr);
	r = uv_write(&first->req, (uv_stream_t *)&c->tcp, bufs, n, write_cb);
	if (bufs != small)
		free(bufs); /* uv_write keeps its own copy of the array */
	if (r < 0) {
		write_chain_free(c, first);
		mx_conn_close(c, r);
	}
	return r;
}

/* Write what c holds for its batch. */
static void conn_flush(struct mx_conn *c)
{
	struct write_req *first = c->out_head;
	unsigned frames = c->out_n;

	if (!first)
		return;
	mx_list_del(&c->batch_link);
	if (c->batch) {
		c->batch->flushes++;
		c->batch->frames += frames;
	}
	c->batch = NULL;
	c->out_head = NULL;
	c->out_tail = &c->out_head;
	c->out_n = 0;
	c->out_bytes = 0;
	(void)write_chain(c, first, frames);
}

/* The batch c's frames wait in now, if any. */
static struct mx_netbatch *batch_of(const struct mx_conn *c)
{
	struct mx_netbatch *b = tl_batch;

	if (!b || b->loop != c->tcp.loop || uv_is_closing((uv_handle_t *)&b->check))
		return NULL;
	return b;
}

/* Write one frame, with its MAC once secure: payload taken, or shared's
 * (sh's reference taken).  Held for the loop's batch if it has one. */
static int send_frame(struct mx_conn *c, uint16_t type, uint64_t tid, uint8_t *payload,
		      size_t len, struct mx_shared *sh)
{
	struct write_req *wr = malloc(sizeof(*wr));
	struct mx_netbatch *b;

	if (!wr) {
		if (sh)
			mx_shared_unref(sh);
		else
			free(payload);
		return -ENOMEM;
	}
	wr->next = NULL;
	wr->c = c;
	wr->payload = payload;
	wr->len = len;
	wr->shared = sh;
	wr->has_mac = false;
	if (sh)
		mx_msg_hdr_encode_sum(wr->hdr, type, tid, (uint32_t)len, sh->crc);
	else
		mx_msg_hdr_encode(wr->hdr, type, tid, wr->payload, (uint32_t)wr->len);
	if (c->sec == MX_SEC_ON) {
		frame_mac(c, true, c->seq_out++, wr->hdr, payload, len, wr->mac);
		wr->has_mac = true;
	}
	c->queued_bytes += frame_bytes(wr);
	c->msgs_out++;
	b = batch_of(c);
	if (!b) {
		conn_flush(c); /* frames held earlier go first */
		if (c->closing) {
			c->queued_bytes -= frame_bytes(wr);
			write_req_free(wr);
			return -ENOTCONN;
		}
		return write_chain(c, wr, 1);
	}
	*c->out_tail = wr;
	c->out_tail = &wr->next;
	c->out_n++;
	c->out_bytes += frame_bytes(wr);
	if (!c->batch) {
		c->batch = b;
		mx_list_add_tail(&b->dirty, &c->batch_link);
	}
	if (c->out_n >= MX_NETBATCH_FRAMES || c->out_bytes >= MX_NETBATCH_BYTES)
		conn_flush(c);
	return 0;
}

void mx_netbatch_flush(struct mx_netbatch *b)
{
	while (!mx_list_empty(&b->dirty))
		conn_flush(mx_list_entry(b->dirty.next, struct mx_conn, batch_link));
}

static void batch_prepare_cb(uv_prepare_t *h)
{
	mx_netbatch_flush(h->data);
}

static void batch_check_cb(uv_check_t *h)
{
	mx_netbatch_flush(h->data);
}

int mx_netbatch_start(uv_loop_t *loop, struct mx_netbatch *b)
{
	int r;

	memset(b, 0, sizeof(*b));
	b->loop = loop;
	mx_list_init(&b->dirty);
	r = uv_prepare_init(loop, &b->prepare);
	if (r < 0)
		return r;
	r = uv_check_init(loop, &b->check);
	if (r < 0) {
		uv_close((uv_handle_t *)&b->prepare, NULL);
		return r;
	}
	b->prepare.data = b;
	b->check.data = b;
	(void)uv_prepare_start(&b->prepare, batch_prepare_cb);
	(void)uv_check_start(&b->check, batch_check_cb);
	uv_unref((uv_handle_t *)&b->prepare);
	uv_unref((uv_handle_t *)&b->check);
	tl_batch = b;
	return 0;
}

void mx_netbatch_end(struct mx_netbatch *b)
{
	mx_netbatch_flush(b);
	if (tl_batch == b)
		tl_batch = NULL;
}

static int send_common(struct mx_conn *c, uint16_t type, uint64_t tid, struct mx_wbuf *w,
		       bool now)
{
	uint8_t *payload = w->data;
	size_t len = w->len;
	int r;

	if (w->err) {
		r = w->err;
		mx_wbuf_free(w);
		return r;
	}
	if (c->closing) {
		mx_wbuf_free(w);
		return -ENOTCONN;
	}
	mx_wbuf_init(w);
	if (!now && (c->sec == MX_SEC_HANDSHAKE || (!c->connected && c->auth_client))) {
		struct mx_held *hd = malloc(sizeof(*hd));

		if (!hd) {
			free(payload);
			return -ENOMEM;
		}
		hd->next = NULL;
		hd->type = type;
		hd->tid = tid;
		hd->payload = payload;
		hd->len = len;
		*c->held_tail = hd;
		c->held_tail = &hd->next;
		return 0;
	}
	return send_frame(c, type, tid, payload, len, NULL);
}

int mx_conn_send(struct mx_conn *c, uint16_t type, uint64_t tid, struct mx_wbuf *w)
{
	return send_common(c, type, tid, w, false);
}

int mx_conn_send_now(struct mx_conn *c, uint16_t type, uint64_t tid, struct mx_wbuf *w)
{
	return send_common(c, type, tid, w, true);
}

int mx_conn_send_shared(struct mx_conn *c, uint16_t type, uint64_t tid, struct mx_shared *sh)
{
	struct mx_wbuf w;

	if (c->closing)
		return -ENOTCONN;
	if (c->sec == MX_SEC_HANDSHAKE || (!c->connected && c->auth_client)) {
		/* Held until the handshake ends: a copy of its own. */
		mx_wbuf_init(&w);
		mx_put_bytes(&w, sh->data, sh->len);
		return send_common(c, type, tid, &w, false);
	}
	sh->refs++;
	return send_frame(c, type, tid, sh->data, sh->len, sh);
}

void mx_conn_auth_client(struct mx_conn *c, struct mx_auth_client *a, uint8_t mode)
{
	c->auth_client = a;
	c->auth_mode = mode;
}

static void hs_timeout_cb(uv_timer_t *t)
{
	struct mx_conn *c = t->data;

	if (c->closing || c->sec != MX_SEC_HANDSHAKE)
		return;
	snprintf(c->auth_error, sizeof(c->auth_error), "no handshake within %d ms",
		 MX_AUTH_HANDSHAKE_MS);
	mx_conn_close(c, -ETIMEDOUT);
}

void mx_conn_auth_server(struct mx_conn *c, const struct mx_auth_server *s)
{
	c->auth_server = s;
	if (s && s->required) {
		c->sec = MX_SEC_HANDSHAKE;
		if (!c->hs_timer_init && uv_timer_init(c->tcp.loop, &c->hs_timer) == 0) {
			c->hs_timer.data = c;
			c->hs_timer_init = true;
			(void)uv_timer_start(&c->hs_timer, hs_timeout_cb, MX_AUTH_HANDSHAKE_MS, 0);
		}
	}
}

void mx_conn_secure(struct mx_conn *c, const uint8_t key[MX_KEY_LEN])
{
	memcpy(c->mac_key, key, MX_KEY_LEN);
	c->seq_in = c->seq_out = 0;
	EVP_CIPHER_CTX_free(c->mac_ctx);
	c->mac_ctx = gmac_ctx(c->mac_key);
	c->sec = MX_SEC_ON;
	if (c->hs_timer_init)
		uv_timer_stop(&c->hs_timer);
	while (c->held_head && !c->closing) {
		struct mx_held *hd = c->held_head;

		c->held_head = hd->next;
		(void)send_frame(c, hd->type, hd->tid, hd->payload, hd->len, NULL);
		free(hd);
	}
	if (!c->held_head)
		c->held_tail = &c->held_head;
}

int mx_conn_send_error(struct mx_conn *c, uint64_t tid, int err, const char *message)
{
	struct mx_wbuf w;
	struct mx_msg_error_reply m = {.status = mx_errno_to_wire(err), .message = message};

	mx_wbuf_init(&w);
	mx_enc_error_reply(&w, &m);
	return mx_conn_send(c, MX_MSG_ERROR_REPLY, tid, &w);
}

/*
 * Authentication and capabilities on a real cluster (docs/auth.md): a
 * monitor created with --auth, OSDs with their own keys, tickets of 4 s.
 *
 * Refused, each with a clear message, and no data changed: no key, a wrong
 * key, a revoked key (new connections, and the sessions it had), a rotated
 * key, an expired ticket, a read-only key writing, a key for another pool.
 * Replayed: the handshake frames of a real session, sent again on a new
 * connection; a frame of an authenticated session sent twice; a frame with
 * a MAC that does not match.  A client that keeps running across several
 * ticket lifetimes keeps working (its ticket is renewed).
 *
 * The raw checks speak the protocol on blocking sockets with lib/auth's
 * primitives, as an attacker replaying captured bytes would.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "harness.h"
#include "internal.h"
#include "map.h"
#include "msg.h"
#include "net.h"

/* Raw frames ---------------------------------------------------------------- */

/* A session's MAC state once authenticated (docs/auth.md). */
struct sess {
	bool on;
	uint8_t key[MX_KEY_LEN];
	uint64_t seq_out, seq_in;
};

static void mac(const struct sess *s, uint8_t dir, uint64_t seq, const uint8_t *hdr,
		const void *p, size_t n, uint8_t out[MX_MAC_LEN])
{
	mx_frame_mac(s->key, dir == 'I', seq, hdr, p, n, out);
}

/* Send a frame (its bytes also appended to cap, if given). */
static int raw_send(int fd, struct sess *s, uint16_t type, uint64_t tid, struct mx_wbuf *w,
		    struct mx_wbuf *cap)
{
	uint8_t hdr[MX_MSG_HDR_LEN], m[MX_MAC_LEN];
	int r;

	mx_msg_hdr_encode(hdr, type, tid, w->data, (uint32_t)w->len);
	if (cap) {
		mx_put_bytes(cap, hdr, sizeof(hdr));
		mx_put_bytes(cap, w->data, w->len);
	}
	r = h_io_all(fd, hdr, sizeof(hdr), true);
	if (r == 0 && w->len)
		r = h_io_all(fd, w->data, w->len, true);
	if (r == 0 && s && s->on) {
		mac(s, 'I', s->seq_out++, hdr, w->data, w->len, m);
		r = h_io_all(fd, m, sizeof(m), true);
	}
	mx_wbuf_free(w);
	return r;
}

/* Receive a frame: 0 with *h and *p (free it), or a negative errno
 * (-ECONNRESET: the other end closed). */
static int raw_recv(int fd, struct sess *s, struct mx_msg_hdr *h, uint8_t **p)
{
	uint8_t hdr[MX_MSG_HDR_LEN], m[MX_MAC_LEN], want[MX_MAC_LEN];
	int r = h_io_all(fd, hdr, sizeof(hdr), false);

	*p = NULL;
	if (r == 0)
		r = mx_msg_hdr_decode(hdr, h);
	if (r == 0) {
		*p = malloc(h->len + 1);
		r = *p ? h_io_all(fd, *p, h->len, false) : -ENOMEM;
	}
	if (r == 0 && s && s->on) {
		r = h_io_all(fd, m, sizeof(m), false);
		mac(s, 'A', s->seq_in++, hdr, *p, h->len, want);
		if (r == 0 && memcmp(m, want, sizeof(m)) != 0)
			r = -EBADMSG;
	}
	if (r < 0) {
		free(*p);
		*p = NULL;
	}
	return r;
}

/* What an AUTH_DONE said. */
struct outcome {
	int status;
	char message[200];
};

static void take_done(const uint8_t *p, uint32_t len, struct outcome *o,
		      struct mx_msg_auth_done *d)
{
	if (mx_dec_auth_done(p, len, d) < 0) {
		o->status = -EBADMSG;
		snprintf(o->message, sizeof(o->message), "malformed AUTH_DONE");
		return;
	}
	o->status = mx_wire_to_errno(d->status);
	snprintf(o->message, sizeof(o->message), "%s", d->message);
}

/* HELLO, then the server's answer: 0 and its challenge (inside *p, which
 * the caller frees), or the refusal's status with o filled. */
static int hs_open(int fd, const struct mx_msg_auth_hello *hello, struct mx_wbuf *cap,
		   struct mx_msg_auth_challenge *ch, uint8_t **p, struct outcome *o)
{
	struct mx_msg_auth_done d;
	struct mx_msg_hdr h;
	struct mx_wbuf w;
	int r;

	mx_wbuf_init(&w);
	mx_enc_auth_hello(&w, hello);
	r = raw_send(fd, NULL, MX_MSG_AUTH_HELLO, 0, &w, cap);
	if (r == 0)
		r = raw_recv(fd, NULL, &h, p);
	if (r == 0 && h.type == MX_MSG_AUTH_DONE) {
		take_done(*p, h.len, o, &d);
		r = o->status ? o->status : -EPROTO;
	} else if (r == 0 && (h.type != MX_MSG_AUTH_CHALLENGE ||
			      mx_dec_auth_challenge(*p, h.len, ch) < 0)) {
		r = -EPROTO;
	}
	return r;
}

/* PROOF, then AUTH_DONE: 0 and *d (inside *p), or its refusal. */
static int hs_close(int fd, const uint8_t proof[MX_HMAC_LEN], struct mx_wbuf *cap,
		    struct mx_msg_auth_done *d, uint8_t **p, struct outcome *o)
{
	struct mx_msg_auth_proof pr = {.proof = proof};
	struct mx_msg_hdr h;
	struct mx_wbuf w;
	int r;

	mx_wbuf_init(&w);
	mx_enc_auth_proof(&w, &pr);
	r = raw_send(fd, NULL, MX_MSG_AUTH_PROOF, 0, &w, cap);
	if (r == 0)
		r = raw_recv(fd, NULL, &h, p);
	if (r == 0 && h.type != MX_MSG_AUTH_DONE)
		r = -EPROTO;
	if (r == 0) {
		take_done(*p, h.len, o, d);
		r = o->status;
	}
	return r;
}

/* A whole handshake as entity with secret (the key, or the ticket's key):
 * the server's proof checked, ours sent.  0 with the session in *s and the
 * fd in *fdp (else closed); d and *p hold the AUTH_DONE. */
static int handshake(const char *addr, struct mx_msg_auth_hello *hello,
		     const uint8_t secret[MX_KEY_LEN], struct sess *s, int *fdp,
		     struct mx_wbuf *cap, struct mx_msg_auth_done *d, uint8_t **p,
		     struct outcome *o)
{
	uint8_t nc[MX_NONCE_LEN], ns[MX_NONCE_LEN], want[MX_HMAC_LEN], proof[MX_HMAC_LEN];
	struct mx_msg_auth_challenge ch;
	int fd = h_raw_connect(addr), r;

	memset(o, 0, sizeof(*o));
	memset(s, 0, sizeof(*s));
	*p = NULL;
	if (fd < 0)
		return fd;
	(void)getrandom(nc, sizeof(nc), 0);
	hello->nonce = nc;
	r = hs_open(fd, hello, cap, &ch, p, o);
	if (r == 0) {
		memcpy(ns, ch.nonce, sizeof(ns));
		/* The server proves it knows the secret first. */
		mx_auth_proof(secret, true, hello->entity, nc, ns, want);
		if (memcmp(want, ch.proof, sizeof(want)) != 0)
			r = -EACCES;
		free(*p);
		*p = NULL;
	}
	if (r == 0) {
		mx_auth_proof(secret, false, hello->entity, nc, ns, proof);
		mx_auth_session_key(secret, nc, ns, s->key);
		r = hs_close(fd, proof, cap, d, p, o);
	}
	if (r == 0 && fdp) {
		s->on = true;
		*fdp = fd;
	} else {
		close(fd);
	}
	return r;
}

/* With a key, at a monitor: the ticket in *g. */
struct grant {
	uint8_t ticket[1024];
	uint32_t ticket_len;
	uint8_t ticket_key[MX_KEY_LEN];
};

static int raw_key_auth(const char *addr, const char *entity, const uint8_t key[MX_KEY_LEN],
			struct grant *g, struct sess *s, int *fdp, struct mx_wbuf *cap,
			struct outcome *o)
{
	struct mx_msg_auth_hello hello = {.mode = MX_AUTH_MODE_KEY, .entity = entity};
	struct mx_msg_auth_done d;
	uint8_t *p = NULL, gr[MX_KEY_LEN + 41];
	int r = handshake(addr, &hello, key, s, fdp, cap, &d, &p, o);

	if (r == 0 && g) {
		if (d.sealed_len != sizeof(gr) + MX_SEAL_OVERHEAD ||
		    mx_unseal(key, d.sealed, d.sealed_len, gr) < 0 || d.ticket_len > sizeof(g->ticket)) {
			r = -EBADMSG;
		} else {
			memcpy(g->ticket_key, gr, MX_KEY_LEN);
			memcpy(g->ticket, d.ticket, d.ticket_len);
			g->ticket_len = d.ticket_len;
		}
	}
	free(p);
	return r;
}

/* With a ticket, at an OSD. */
static int raw_ticket_auth(const char *addr, const char *entity, const struct grant *g,
			   struct sess *s, int *fdp, struct outcome *o)
{
	struct mx_msg_auth_hello hello = {.mode = MX_AUTH_MODE_TICKET, .entity = entity,
					  .ticket = g->ticket, .ticket_len = g->ticket_len};
	struct mx_msg_auth_done d;
	uint8_t *p = NULL;
	int r = handshake(addr, &hello, g->ticket_key, s, fdp, NULL, &d, &p, o);

	free(p);
	return r;
}

/* A client with a key file; -errno and the reason in why. */
static int client(struct h_cluster *c, const char *keyfile, mixsan_cluster_t **cl, char *why,
		  size_t sz)
{
	struct mixsan_options o = {.connect_timeout_ms = 8000, .op_timeout_ms = 8000,
				   .keyfile = keyfile};
	int r = mixsan_connect(c->mon_addr, &o, cl);

	snprintf(why, sz, "%s", r < 0 ? mixsan_connect_error() : "");
	return r;
}

static int put(mixsan_cluster_t *cl, const char *pool, const char *oid, const char *data)
{
	mixsan_pool_t *p;
	int r = mixsan_pool_open(cl, pool, &p);

	if (r == 0) {
		r = mixsan_write_full(p, oid, data, strlen(data));
		mixsan_pool_close(p);
	}
	return r;
}

/* The object's content as the administrator reads it ("" if absent). */
static void get(mixsan_cluster_t *admin, const char *pool, const char *oid, char *buf,
		size_t sz)
{
	mixsan_pool_t *p;
	int64_t n = -1;

	buf[0] = '\0';
	if (mixsan_pool_open(admin, pool, &p) == 0) {
		n = mixsan_read(p, oid, buf, sz - 1, 0);
		mixsan_pool_close(p);
	}
	buf[n > 0 ? n : 0] = '\0';
}

static void write_random_key(const char *path, const char *name)
{
	uint8_t k[MX_KEY_LEN];

	mx_key_random(k);
	unlink(path);
	if (mx_keyfile_write(path, name, k, true) < 0)
		H_FATAL("cannot write %s", path);
}

/* auth rotate, as the administrator, with a fresh key into out. */
static int rotate(struct h_cluster *c, mixsan_cluster_t *admin, const char *name, const char *out)
{
	const char *kv[] = {"name", name, "key", NULL};
	char sealed[128], *msg = NULL;
	uint8_t k[MX_KEY_LEN];
	int r = mx_key_random(k);

	if (r == 0)
		r = mx_client_seal_key(c->admin_key, k, sealed, sizeof(sealed));
	kv[3] = sealed;
	if (r == 0)
		r = mixsan_mon_command(admin, "auth rotate", kv, 2, &msg);
	fprintf(stderr, "auth: rotate %s: %d %s\n", name, r, msg ? msg : "");
	free(msg);
	if (r == 0)
		r = mx_keyfile_write(out, name, k, true);
	return r;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *admin, *cl_rw = NULL, *cl = NULL;
	char rw_key[400], ro_key[400], other_key[400], bad_key[400], rot_key[400];
	char why[300], buf[256];
	struct mx_map *m;
	char osd_addr[MX_ADDR_MAX];
	int r;

	if (getenv("MIXSAN_TEST_MON")) {
		fprintf(stderr, "auth: needs its own cluster; skipped\n");
		return 77;
	}
	memset(&c, 0, sizeof(c));
	c.auth = true;
	snprintf(c.mon_args, sizeof(c.mon_args), "--auth-ticket-ttl 4");
	h_start(&c, 3);
	admin = h_connect(&c);
	h_pool_create(admin, "a", 3, 16, "osd");
	h_pool_create(admin, "b", 3, 16, "osd");
	H_CHECK(put(admin, "a", "o1", "original") == 0);
	snprintf(rw_key, sizeof(rw_key), "%s/rw.key", c.dir);
	snprintf(ro_key, sizeof(ro_key), "%s/ro.key", c.dir);
	snprintf(other_key, sizeof(other_key), "%s/other.key", c.dir);
	snprintf(bad_key, sizeof(bad_key), "%s/bad.key", c.dir);
	snprintf(rot_key, sizeof(rot_key), "%s/rot.key", c.dir);
	H_CHECK(mx_client_auth_add(admin, c.admin_key, "client.rw", "rw pool=a", rw_key) == 0);
	H_CHECK(mx_client_auth_add(admin, c.admin_key, "client.ro", "r", ro_key) == 0);
	H_CHECK(mx_client_auth_add(admin, c.admin_key, "client.other", "rw pool=b", other_key) == 0);
	H_CHECK(mx_client_auth_add(admin, c.admin_key, "client.rot", "rw", rot_key) == 0);
	{
		struct stat st;

		H_CHECK(stat(rw_key, &st) == 0 && (st.st_mode & 0777) == 0600);
	}
	m = mx_client_map_copy(admin);
	H_CHECK(m && m->auth_required && m->n_auth == 8);
	/* Keys never reach a client's map. */
	for (uint32_t i = 0; m && i < m->n_auth; i++) {
		static const uint8_t zero[MX_KEY_LEN];

		H_CHECK(memcmp(m->auth[i].key, zero, MX_KEY_LEN) == 0);
	}
	H_CHECK(m && !m->have_secret);
	snprintf(osd_addr, sizeof(osd_addr), "%s", m ? m->osds[0].addr : "");
	mx_map_free(m);

	/* A connection that never starts its handshake, to the monitor and
	 * to an OSD: closed by them after MX_AUTH_HANDSHAKE_MS (5 s), well
	 * within the 15 s the read waits. */
	{
		const char *addrs[] = {c.mon_addrs[0][0] ? c.mon_addrs[0] : c.mon_addr, osd_addr};

		for (int k = 0; k < 2; k++) {
			struct timeval tv = {.tv_sec = 15};
			int fd = h_raw_connect(addrs[k]);
			double t0 = now_s();
			uint8_t b;
			ssize_t n = -1;

			H_CHECK(fd >= 0);
			if (fd >= 0) {
				setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
				n = read(fd, &b, 1);
				close(fd);
			}
			fprintf(stderr, "auth: a silent connection to %s closed after %.1f s (%zd)\n",
				addrs[k], now_s() - t0, n);
			H_CHECK(n == 0 || (n < 0 && errno == ECONNRESET));
		}
	}
	/* No key. */
	r = client(&c, NULL, &cl, why, sizeof(why));
	fprintf(stderr, "auth: no key: %d %s\n", r, why);
	H_CHECK(r == -EACCES && strstr(why, "authentication required"));
	/* A wrong key. */
	write_random_key(bad_key, "client.rw");
	r = client(&c, bad_key, &cl, why, sizeof(why));
	fprintf(stderr, "auth: wrong key: %d %s\n", r, why);
	H_CHECK(r == -EACCES && strstr(why, "does not match our key"));
	/* An unknown entity. */
	write_random_key(bad_key, "client.nobody");
	r = client(&c, bad_key, &cl, why, sizeof(why));
	fprintf(stderr, "auth: unknown entity: %d %s\n", r, why);
	H_CHECK(r == -EACCES && strstr(why, "no key here"));
	/* A key file others may read. */
	chmod(ro_key, 0644);
	r = client(&c, ro_key, &cl, why, sizeof(why));
	fprintf(stderr, "auth: readable key file: %d %s\n", r, why);
	H_CHECK(r == -EPERM && strstr(why, "chmod 600"));
	chmod(ro_key, 0600);

	/* Read-only: reads, but no write lands. */
	H_CHECK(client(&c, ro_key, &cl, why, sizeof(why)) == 0);
	if (cl) {
		mixsan_pool_t *p;

		H_CHECK(mixsan_pool_open(cl, "a", &p) == 0);
		buf[0] = '\0';
		H_CHECK(mixsan_read(p, "o1", buf, sizeof(buf) - 1, 0) == 8);
		H_CHECK(memcmp(buf, "original", 8) == 0);
		mixsan_pool_close(p);
		r = put(cl, "a", "o1", "evil");
		fprintf(stderr, "auth: read-only write: %d\n", r);
		H_CHECK(r == -EPERM);
		H_CHECK(put(cl, "a", "new-by-ro", "evil") == -EPERM);
		mixsan_shutdown(cl);
		cl = NULL;
	}
	/* A key for pool b writing to pool a. */
	H_CHECK(client(&c, other_key, &cl, why, sizeof(why)) == 0);
	if (cl) {
		H_CHECK(put(cl, "a", "o1", "evil") == -EPERM);
		H_CHECK(put(cl, "b", "ok", "fine") == 0);
		mixsan_shutdown(cl);
		cl = NULL;
	}
	get(admin, "a", "o1", buf, sizeof(buf));
	H_CHECK(strcmp(buf, "original") == 0);
	get(admin, "a", "new-by-ro", buf, sizeof(buf));
	H_CHECK(buf[0] == '\0');

	/* A client living through several ticket lifetimes (4 s). */
	H_CHECK(client(&c, rw_key, &cl_rw, why, sizeof(why)) == 0);
	for (int i = 0; cl_rw && i < 12; i++) {
		char oid[16];

		snprintf(oid, sizeof(oid), "t%d", i);
		H_CHECK(put(cl_rw, "a", oid, "renewed") == 0);
		sleep(1);
	}

	/* An expired ticket; and a handshake replayed. */
	{
		uint8_t key[MX_KEY_LEN];
		char who[MX_ENTITY_MAX];
		struct grant g;
		struct sess s;
		struct outcome o;
		struct mx_wbuf cap;
		int fd = -1;

		H_CHECK(mx_keyfile_read(rw_key, who, key) == 0);
		mx_wbuf_init(&cap);
		r = raw_key_auth(c.mon_addr, "client.rw", key, &g, &s, NULL, &cap, &o);
		H_CHECK(r == 0);
		/* Fresh, the ticket opens the OSD; and a frame of that
		 * session, sent twice, closes it. */
		r = raw_ticket_auth(osd_addr, "client.rw", &g, &s, &fd, &o);
		fprintf(stderr, "auth: fresh ticket at the OSD: %d %s\n", r, o.message);
		H_CHECK(r == 0);
		if (r == 0) {
			struct mx_msg_hdr h;
			struct mx_wbuf w;
			uint8_t *p = NULL;
			struct sess replay = s;

			mx_wbuf_init(&w);
			H_CHECK(raw_send(fd, &s, MX_MSG_PING, 7, &w, NULL) == 0);
			H_CHECK(raw_recv(fd, &s, &h, &p) == 0 && h.type == MX_MSG_PONG);
			free(p);
			/* The same frame again (same sequence number): a replay. */
			mx_wbuf_init(&w);
			H_CHECK(raw_send(fd, &replay, MX_MSG_PING, 7, &w, NULL) == 0);
			r = raw_recv(fd, &s, &h, &p);
			fprintf(stderr, "auth: replayed frame: %d\n", r);
			H_CHECK(r == -ECONNRESET || r == -EPIPE);
			free(p);
			close(fd);
		}
		/* A write with a good MAC lands; one whose MAC does not match
		 * (altered on the way) closes the session and lands nothing. */
		{
			struct mx_map *mm = mx_client_map_copy(admin);
			const struct mx_pool *pa = mm ? mx_map_pool_by_name(mm, "a") : NULL;
			int32_t acting[3];
			uint32_t pg = 0;
			int n = pa ? mx_client_locate(admin, pa->id, "tampered", &pg, acting, 3) : -1;
			struct mx_msg_osd_op op = {.pool = pa ? pa->id : 0, .pg = pg, .client_id = 99,
						   .name = "tampered", .name_len = 8, .n_ops = 1,
						   .epoch = mm ? mm->epoch : 0};
			char primary[MX_ADDR_MAX] = "";

			H_CHECK(n > 0);
			if (n > 0)
				snprintf(primary, sizeof(primary), "%s", mm->osds[acting[0]].addr);
			mx_map_free(mm);
			op.ops[0].op = MX_OP_WRITEFULL;
			r = n > 0 ? raw_ticket_auth(primary, "client.rw", &g, &s, &fd, &o) : -1;
			H_CHECK(r == 0);
			for (int k = 0; r == 0 && k < 2; k++) {
				struct mx_msg_hdr h;
				struct mx_wbuf w;
				uint8_t *p = NULL;

				op.ops[0].data = k ? "evil" : "good";
				op.ops[0].data_len = 4;
				if (k)
					s.key[0] ^= 1; /* our MAC will not match */
				mx_wbuf_init(&w);
				mx_enc_osd_op(&w, &op);
				H_CHECK(raw_send(fd, &s, MX_MSG_OSD_OP, 8 + (uint64_t)k, &w, NULL) == 0);
				if (k)
					s.key[0] ^= 1;
				r = raw_recv(fd, &s, &h, &p);
				fprintf(stderr, "auth: %s write: %d\n", k ? "tampered" : "good", r);
				if (!k) {
					struct mx_msg_osd_op_reply rep;

					H_CHECK(r == 0 && h.type == MX_MSG_OSD_OP_REPLY &&
						mx_dec_osd_op_reply(p, h.len, &rep) == 0 && rep.status == 0);
				} else {
					H_CHECK(r == -ECONNRESET || r == -EPIPE);
				}
				free(p);
				if (k)
					break;
			}
			if (fd >= 0)
				close(fd);
			get(admin, "a", "tampered", buf, sizeof(buf));
			H_CHECK(strcmp(buf, "good") == 0);
		}
		/* The handshake frames of that real session, replayed on a new
		 * connection to the monitor: the fresh nonce defeats them. */
		{
			int rfd = h_raw_connect(c.mon_addr);
			struct mx_msg_hdr h;
			uint8_t *p = NULL;
			int got_done = 0;

			H_CHECK(rfd >= 0 && h_io_all(rfd, cap.data, cap.len, true) == 0);
			for (int i = 0; rfd >= 0 && i < 3; i++) {
				if (raw_recv(rfd, NULL, &h, &p) < 0)
					break;
				if (h.type == MX_MSG_AUTH_DONE) {
					struct mx_msg_auth_done d;

					take_done(p, h.len, &o, &d);
					got_done = 1;
				}
				free(p);
				p = NULL;
			}
			fprintf(stderr, "auth: replayed handshake: %d %s\n", o.status, o.message);
			H_CHECK(got_done && o.status == -EACCES && strstr(o.message, "wrong key"));
			if (rfd >= 0)
				close(rfd);
		}
		mx_wbuf_free(&cap);
		/* Past its lifetime the ticket is refused. */
		sleep(5);
		r = raw_ticket_auth(osd_addr, "client.rw", &g, &s, NULL, &o);
		fprintf(stderr, "auth: expired ticket: %d %s\n", r, o.message);
		H_CHECK(r == -EKEYEXPIRED && strstr(o.message, "expired"));
		memset(key, 0, sizeof(key));
	}

	/* Rotation: the old key is refused, the new one works. */
	{
		char old[400];

		snprintf(old, sizeof(old), "%s/rot-old.key", c.dir);
		H_CHECK(rename(rot_key, old) == 0);
		H_CHECK(rotate(&c, admin, "client.rot", rot_key) == 0);
		r = client(&c, old, &cl, why, sizeof(why));
		fprintf(stderr, "auth: rotated-out key: %d %s\n", r, why);
		H_CHECK(r == -EACCES);
		H_CHECK(client(&c, rot_key, &cl, why, sizeof(why)) == 0);
		if (cl) {
			H_CHECK(put(cl, "a", "by-rot", "fine") == 0);
			mixsan_shutdown(cl);
			cl = NULL;
		}
	}

	/* A monitor takes keys only: a ticket (which any holder of the
	 * service secret could forge) is refused there. */
	{
		uint8_t key[MX_KEY_LEN];
		char who[MX_ENTITY_MAX];
		struct grant g;
		struct sess s;
		struct outcome o;

		H_CHECK(mx_keyfile_read(ro_key, who, key) == 0);
		H_CHECK(raw_key_auth(c.mon_addr, "client.ro", key, &g, &s, NULL, NULL, &o) == 0);
		r = raw_ticket_auth(c.mon_addr, "client.ro", &g, &s, NULL, &o);
		fprintf(stderr, "auth: ticket at a monitor: %d %s\n", r, o.message);
		H_CHECK(r == -EACCES && strstr(o.message, "takes keys"));
		/* Removed and added again (caps r): the old ticket stays dead,
		 * generations only grow. */
		{
			const char *kv[] = {"name", "client.ro"};
			char *msg = NULL;

			H_CHECK(mixsan_mon_command(admin, "auth rm", kv, 1, &msg) == 0);
			free(msg);
			H_CHECK(mx_client_auth_add(admin, c.admin_key, "client.ro", "r", ro_key) == 0);
			r = raw_ticket_auth(osd_addr, "client.ro", &g, &s, NULL, &o);
			fprintf(stderr, "auth: ticket of a removed then re-added name: %d\n", r);
			H_CHECK(r == 0); /* the handshake passes; the first request does not */
		}
		/* An OSD may not speak for another OSD. */
		{
			char kf[400], name[MX_ENTITY_MAX];
			uint8_t okey[MX_KEY_LEN];
			int fd = -1;
			struct mx_msg_osd_failure f = {.reporter = 1, .target = 2, .silent_ms = 9000};
			struct mx_msg_hdr h;
			struct mx_wbuf w;
			uint8_t *p = NULL;

			h_osd_dir(&c, 0, kf, sizeof(kf) - 10);
			strcat(kf, "/keyring");
			H_CHECK(mx_keyfile_read(kf, name, okey) == 0);
			H_CHECK(raw_key_auth(c.mon_addr, "osd.0", okey, NULL, &s, &fd, NULL, &o) == 0);
			mx_wbuf_init(&w);
			mx_enc_osd_failure(&w, &f);
			H_CHECK(raw_send(fd, &s, MX_MSG_MON_OSD_FAILURE, 3, &w, NULL) == 0);
			r = raw_recv(fd, &s, &h, &p);
			H_CHECK(r == 0 && h.type == MX_MSG_ERROR_REPLY);
			if (r == 0 && h.type == MX_MSG_ERROR_REPLY) {
				struct mx_msg_error_reply er;

				H_CHECK(mx_dec_error_reply(p, h.len, &er) == 0 &&
					strstr(er.message, "may not report as osd.1"));
				fprintf(stderr, "auth: report as another OSD: %s\n", er.message);
			}
			free(p);
			if (fd >= 0)
				close(fd);
		}
	}
	/* Caps taken away end the sessions and tickets that had them. */
	{
		mixsan_cluster_t *cl2 = NULL;
		const char *kv[] = {"name", "client.other", "caps", "r"};
		char *msg = NULL;

		H_CHECK(client(&c, other_key, &cl2, why, sizeof(why)) == 0);
		H_CHECK(cl2 && put(cl2, "b", "before-demotion", "fine") == 0);
		H_CHECK(mixsan_mon_command(admin, "auth caps", kv, 2, &msg) == 0);
		fprintf(stderr, "auth: caps: %s\n", msg ? msg : "");
		free(msg);
		if (cl2) {
			r = put(cl2, "b", "after-demotion", "evil");
			fprintf(stderr, "auth: write after demotion on the old session: %d\n", r);
			H_CHECK(r == -EACCES || r == -EPERM);
			mixsan_shutdown(cl2);
		}
		get(admin, "b", "after-demotion", buf, sizeof(buf));
		H_CHECK(buf[0] == '\0');
	}
	/* An administrator rotating its own key gets the answer (and the new
	 * key works). */
	{
		char admin2[300];
		mixsan_cluster_t *a2 = NULL, *a3 = NULL;

		snprintf(admin2, sizeof(admin2), "%s/admin2.key", c.dir);
		H_CHECK(mx_client_auth_add(admin, c.admin_key, "client.admin2", "admin", admin2) == 0);
		H_CHECK(client(&c, admin2, &a2, why, sizeof(why)) == 0);
		if (a2) {
			struct h_cluster c2 = c;

			snprintf(c2.admin_key, sizeof(c2.admin_key), "%s", admin2);
			H_CHECK(rotate(&c2, a2, "client.admin2", admin2) == 0);
			mixsan_shutdown(a2);
		}
		H_CHECK(client(&c, admin2, &a3, why, sizeof(why)) == 0);
		mixsan_shutdown(a3);
	}

	/* Revocation: new connections refused, the running session stopped. */
	{
		const char *kv[] = {"name", "client.rw"};
		char *msg = NULL;

		r = mixsan_mon_command(admin, "auth rm", kv, 1, &msg);
		fprintf(stderr, "auth: rm client.rw: %d %s\n", r, msg ? msg : "");
		H_CHECK(r == 0);
		free(msg);
		r = client(&c, rw_key, &cl, why, sizeof(why));
		fprintf(stderr, "auth: revoked key: %d %s\n", r, why);
		H_CHECK(r == -EACCES && strstr(why, "no key here"));
		if (cl_rw) {
			r = put(cl_rw, "a", "after-revoke", "evil");
			fprintf(stderr, "auth: write on a revoked session: %d\n", r);
			H_CHECK(r == -EACCES || r == -EPERM);
		}
		get(admin, "a", "after-revoke", buf, sizeof(buf));
		H_CHECK(buf[0] == '\0');
		/* The last administrator stays. */
		{
			const char *kv2[] = {"name", "client.admin2"}, *kv3[] = {"name", "client.admin"};

			msg = NULL;
			H_CHECK(mixsan_mon_command(admin, "auth rm", kv2, 1, &msg) == 0);
			free(msg);
			msg = NULL;
			H_CHECK(mixsan_mon_command(admin, "auth rm", kv3, 1, &msg) == -EPERM);
			fprintf(stderr, "auth: rm of the last administrator: %s\n", msg ? msg : "");
			free(msg);
		}
	}
	get(admin, "a", "o1", buf, sizeof(buf));
	H_CHECK(strcmp(buf, "original") == 0);
	mixsan_shutdown(cl_rw);
	mixsan_shutdown(admin);
	H_CHECK(h_log_count(&c, "mon", "authentication refused") >= 3);
	h_stop(&c);
	fprintf(stderr, "auth: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

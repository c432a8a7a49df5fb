/*
 * The authentication handshake (docs/auth.md), run by net.c.
 *
 *   initiator                       acceptor
 *   HELLO(mode, entity, nc[, ticket]) ->
 *                                   <- CHALLENGE(ns, server proof)   (or DONE: refused)
 *   checks the server proof
 *   PROOF(client proof)             ->
 *                                   <- DONE(status[, caps, sealed ticket key, ticket])
 *   both: MACs under HMAC(key, "mixsan session" | nc | ns) from here on
 *
 * key is the entity's secret (mode KEY, to a monitor) or the ticket's key
 * (mode TICKET, to an OSD).  A refusal says why, then the connection closes.
 */
#include "authconn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>

#include "log.h"
#include "msg.h"
#include "net.h"
#include "util.h"

enum { ST_HELLO_SENT = 1, ST_PROOF_SENT, ST_WAIT_HELLO, ST_CHALLENGED };

struct mx_auth_hs {
	uint8_t step;
	uint8_t mode;
	uint8_t nc[MX_NONCE_LEN], ns[MX_NONCE_LEN];
	uint8_t key[MX_KEY_LEN];
	char entity[MX_ENTITY_MAX];
	char caps[MX_CAPS_MAX];
	uint32_t generation;
};

/* Sealed for the initiator: ticket key, expiry, and for an OSD the secret. */
#define GRANT_LEN (MX_KEY_LEN + 8 + 1 + MX_KEY_LEN)

void mx_authconn_free(struct mx_conn *c)
{
	if (c->hs) {
		OPENSSL_cleanse(c->hs, sizeof(*c->hs));
		free(c->hs);
		c->hs = NULL;
	}
	OPENSSL_cleanse(c->mac_key, sizeof(c->mac_key));
}

static struct mx_auth_hs *hs_get(struct mx_conn *c)
{
	if (!c->hs)
		c->hs = calloc(1, sizeof(*c->hs));
	return c->hs;
}

bool mx_auth_ticket_due(const struct mx_auth_client *a, uint64_t now_ms)
{
	uint64_t life;

	if (!a->ticket_len)
		return true;
	life = a->ticket_expires_ms > a->ticket_got_ms ? a->ticket_expires_ms - a->ticket_got_ms : 0;
	return now_ms + life / 3 >= a->ticket_expires_ms;
}

/* Refuse: say why, then close once it is sent. */
static int refuse(struct mx_conn *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(struct mx_conn *c, int err, const char *fmt, ...)
{
	struct mx_msg_auth_done d = {.status = mx_errno_to_wire(err)};
	char msg[200];
	struct mx_wbuf w;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mx_info("%s: authentication refused: %s", c->peer, msg);
	d.message = msg;
	mx_wbuf_init(&w);
	mx_enc_auth_done(&w, &d);
	(void)mx_conn_send_now(c, MX_MSG_AUTH_DONE, 0, &w);
	mx_conn_close_after_send(c, err);
	return 0;
}

int mx_authconn_start(struct mx_conn *c)
{
	struct mx_auth_client *a = c->auth_client;
	struct mx_auth_hs *hs = hs_get(c);
	struct mx_msg_auth_hello h = {.mode = c->auth_mode, .entity = a->entity};
	struct mx_wbuf w;

	if (!hs)
		return -ENOMEM;
	if (getrandom(hs->nc, MX_NONCE_LEN, 0) != MX_NONCE_LEN)
		return -EIO;
	hs->mode = c->auth_mode;
	snprintf(hs->entity, sizeof(hs->entity), "%s", a->entity);
	if (hs->mode == MX_AUTH_MODE_TICKET) {
		if (!a->ticket_len) {
			snprintf(c->auth_error, sizeof(c->auth_error),
				 "%s has no ticket yet (not authenticated to a monitor)", a->entity);
			return -EACCES;
		}
		memcpy(hs->key, a->ticket_key, MX_KEY_LEN);
		h.ticket = a->ticket;
		h.ticket_len = a->ticket_len;
	} else {
		memcpy(hs->key, a->key, MX_KEY_LEN);
	}
	h.nonce = hs->nc;
	mx_wbuf_init(&w);
	mx_enc_auth_hello(&w, &h);
	hs->step = ST_HELLO_SENT;
	return mx_conn_send_now(c, MX_MSG_AUTH_HELLO, 0, &w);
}

/* Acceptor ----------------------------------------------------------------- */

static int on_hello(struct mx_conn *c, const uint8_t *p, uint32_t len)
{
	const struct mx_auth_server *s = c->auth_server;
	struct mx_msg_auth_hello h;
	struct mx_msg_auth_challenge ch;
	struct mx_auth_hs *hs;
	uint8_t proof[MX_HMAC_LEN];
	struct mx_wbuf w;

	if (mx_dec_auth_hello(p, len, &h) < 0)
		return refuse(c, -EBADMSG, "malformed AUTH_HELLO");
	if (!s || (!s->monitor && !s->secret))
		return refuse(c, -ENOTSUP, "authentication is not enabled on this cluster");
	if (c->sec == MX_SEC_ON || (c->hs && c->hs->step))
		return refuse(c, -EPROTO, "AUTH_HELLO out of turn");
	hs = hs_get(c);
	if (!hs)
		return -ENOMEM;
	memcpy(hs->nc, h.nonce, MX_NONCE_LEN);
	hs->mode = h.mode;
	/* A monitor takes keys only: a ticket is what OSDs take, and a
	 * holder of the service secret (any OSD) can make one. */
	if (s->monitor && h.mode != MX_AUTH_MODE_KEY)
		return refuse(c, -EACCES, "a monitor takes keys, not tickets");
	if (h.mode == MX_AUTH_MODE_KEY) {
		if (!s->monitor || !s->lookup)
			return refuse(c, -EACCES, "an OSD takes tickets, not keys");
		if (!mx_entity_valid(h.entity))
			return refuse(c, -EACCES, "'%s' is not an entity name", h.entity);
		int e = s->lookup(s->arg, h.entity, hs->key, hs->caps, &hs->generation);

		if (e == -EAGAIN)
			return refuse(c, -EAGAIN, "this monitor has no map yet; try again");
		if (e == -ENOTSUP)
			return refuse(c, -ENOTSUP, "this cluster does not use keys (give no key file)");
		if (e < 0)
			return refuse(c, -EACCES, "%s has no key here (unknown or revoked)",
				      h.entity);
		snprintf(hs->entity, sizeof(hs->entity), "%s", h.entity);
	} else {
		const uint8_t *secret = s->secret ? s->secret(s->arg) : NULL;
		struct mx_ticket t;

		if (!secret)
			return refuse(c, -EAGAIN, "this daemon cannot check tickets yet");
		if (mx_ticket_open(secret, h.ticket, h.ticket_len, &t) < 0)
			return refuse(c, -EACCES, "the ticket is not valid (altered, or "
				      "sealed with another secret)");
		if (t.expires_ms > mx_wall_ms() + MX_TICKET_TTL_MAX_MS) {
			OPENSSL_cleanse(&t, sizeof(t));
			return refuse(c, -EACCES, "the ticket claims a lifetime beyond the limit");
		}
		if (t.expires_ms <= mx_wall_ms()) {
			char who[MX_ENTITY_MAX];

			snprintf(who, sizeof(who), "%s", t.entity);
			OPENSSL_cleanse(&t, sizeof(t));
			return refuse(c, -EKEYEXPIRED, "the ticket of %s expired (renew it at a "
				      "monitor)", who);
		}
		memcpy(hs->key, t.key, MX_KEY_LEN);
		c->expires_ms = t.expires_ms; /* the session ends with its ticket */
		snprintf(hs->entity, sizeof(hs->entity), "%s", t.entity);
		snprintf(hs->caps, sizeof(hs->caps), "%s", t.caps);
		hs->generation = t.generation;
		OPENSSL_cleanse(&t, sizeof(t));
	}
	if (getrandom(hs->ns, MX_NONCE_LEN, 0) != MX_NONCE_LEN)
		return -EIO;
	mx_auth_proof(hs->key, true, hs->entity, hs->nc, hs->ns, proof);
	ch.nonce = hs->ns;
	ch.proof = proof;
	mx_wbuf_init(&w);
	mx_enc_auth_challenge(&w, &ch);
	hs->step = ST_CHALLENGED;
	return mx_conn_send_now(c, MX_MSG_AUTH_CHALLENGE, 0, &w);
}

/* A ticket for hs->entity, and its key sealed for the entity (monitor). */
static int grant(struct mx_conn *c, struct mx_auth_hs *hs, struct mx_wbuf *ticket,
		 struct mx_wbuf *sealed)
{
	const struct mx_auth_server *s = c->auth_server;
	const uint8_t *secret = s->secret ? s->secret(s->arg) : NULL;
	struct mx_ticket t;
	uint8_t g[GRANT_LEN];
	bool osd = strncmp(hs->entity, "osd.", 4) == 0 && strcmp(hs->caps, "osd") == 0;
	int r;

	if (!secret)
		return -EAGAIN;
	memset(&t, 0, sizeof(t));
	snprintf(t.entity, sizeof(t.entity), "%s", hs->entity);
	snprintf(t.caps, sizeof(t.caps), "%s", hs->caps);
	t.expires_ms = mx_wall_ms() + s->ticket_ttl_ms;
	t.generation = hs->generation;
	if (mx_key_random(t.key) < 0)
		return -EIO;
	r = mx_ticket_seal(secret, &t, ticket);
	memcpy(g, t.key, MX_KEY_LEN);
	for (int i = 0; i < 8; i++)
		g[MX_KEY_LEN + i] = (uint8_t)(t.expires_ms >> (8 * i));
	g[MX_KEY_LEN + 8] = osd;
	memset(g + MX_KEY_LEN + 9, 0, MX_KEY_LEN);
	if (osd)
		memcpy(g + MX_KEY_LEN + 9, secret, MX_KEY_LEN);
	if (r == 0)
		r = mx_seal(hs->key, g, sizeof(g), sealed);
	OPENSSL_cleanse(g, sizeof(g));
	OPENSSL_cleanse(&t, sizeof(t));
	return r;
}

/* AUTH_DONE with success: from a monitor, with a fresh ticket.  During the
 * handshake it goes out before the MACs start (now). */
static int send_done(struct mx_conn *c, struct mx_auth_hs *hs, const char *msg, bool now)
{
	struct mx_msg_auth_done d = {.status = 0, .message = msg, .caps = hs->caps};
	struct mx_wbuf w, ticket, sealed;
	int r = 0;

	mx_wbuf_init(&ticket);
	mx_wbuf_init(&sealed);
	if (hs->mode == MX_AUTH_MODE_KEY)
		r = grant(c, hs, &ticket, &sealed);
	if (r == 0) {
		d.sealed = sealed.data;
		d.sealed_len = (uint32_t)sealed.len;
		d.ticket = ticket.data;
		d.ticket_len = (uint32_t)ticket.len;
		mx_wbuf_init(&w);
		mx_enc_auth_done(&w, &d);
		r = now ? mx_conn_send_now(c, MX_MSG_AUTH_DONE, 0, &w)
			: mx_conn_send(c, MX_MSG_AUTH_DONE, 0, &w);
	}
	mx_wbuf_free(&ticket);
	mx_wbuf_free(&sealed);
	return r;
}

static int on_proof(struct mx_conn *c, const uint8_t *p, uint32_t len)
{
	struct mx_auth_hs *hs = c->hs;
	struct mx_msg_auth_proof pr;
	uint8_t want[MX_HMAC_LEN], session[MX_KEY_LEN];
	char msg[128], err[128];
	int r;

	if (!hs || hs->step != ST_CHALLENGED)
		return refuse(c, -EPROTO, "AUTH_PROOF out of turn");
	if (mx_dec_auth_proof(p, len, &pr) < 0)
		return refuse(c, -EBADMSG, "malformed AUTH_PROOF");
	mx_auth_proof(hs->key, false, hs->entity, hs->nc, hs->ns, want);
	if (!mx_mac_equal(want, pr.proof, MX_HMAC_LEN))
		return refuse(c, -EACCES, "wrong key for %s", hs->entity);
	if (mx_caps_parse(hs->caps, &c->caps, err, sizeof(err)) < 0)
		return refuse(c, -EACCES, "%s: bad capabilities: %s", hs->entity, err);
	snprintf(msg, sizeof(msg), "authenticated as %s", hs->entity);
	r = send_done(c, hs, msg, true);
	if (r < 0)
		return refuse(c, r, "no ticket could be made: %s", strerror(-r));
	snprintf(c->entity, sizeof(c->entity), "%s", hs->entity);
	c->generation = hs->generation;
	mx_auth_session_key(hs->key, hs->nc, hs->ns, session);
	mx_debug("%s: authenticated as %s (%s)", c->peer, c->entity, hs->caps);
	/* Keep the entity's identity for renewals; the nonces are spent. */
	hs->step = 0;
	mx_conn_secure(c, session);
	OPENSSL_cleanse(session, sizeof(session));
	return 0;
}

static int on_renew(struct mx_conn *c)
{
	const struct mx_auth_server *s = c->auth_server;
	struct mx_auth_hs *hs = c->hs;
	uint32_t gen = 0;

	if (c->sec != MX_SEC_ON || !hs || hs->mode != MX_AUTH_MODE_KEY || !s || !s->lookup)
		return -EPROTO;
	/* The key may have been rotated or revoked since. */
	if (s->lookup(s->arg, hs->entity, hs->key, hs->caps, &gen) < 0 || gen != hs->generation)
		return refuse(c, -EACCES, "%s has no valid key here (revoked or rotated)",
			      hs->entity);
	return send_done(c, hs, "ticket renewed", false);
}

/* Initiator ---------------------------------------------------------------- */

static int on_challenge(struct mx_conn *c, const uint8_t *p, uint32_t len)
{
	struct mx_auth_hs *hs = c->hs;
	struct mx_msg_auth_challenge ch;
	struct mx_msg_auth_proof pr;
	uint8_t want[MX_HMAC_LEN], proof[MX_HMAC_LEN];
	struct mx_wbuf w;

	if (!hs || hs->step != ST_HELLO_SENT || mx_dec_auth_challenge(p, len, &ch) < 0)
		return -EPROTO;
	memcpy(hs->ns, ch.nonce, MX_NONCE_LEN);
	mx_auth_proof(hs->key, true, hs->entity, hs->nc, hs->ns, want);
	if (!mx_mac_equal(want, ch.proof, MX_HMAC_LEN)) {
		snprintf(c->auth_error, sizeof(c->auth_error),
			 "%.63s's proof does not match our key for %.63s: the key is wrong "
			 "(rotated?), or that is not a daemon of this cluster", c->peer,
			 hs->entity);
		mx_warn("%s", c->auth_error);
		return -EACCES;
	}
	mx_auth_proof(hs->key, false, hs->entity, hs->nc, hs->ns, proof);
	pr.proof = proof;
	mx_wbuf_init(&w);
	mx_enc_auth_proof(&w, &pr);
	hs->step = ST_PROOF_SENT;
	return mx_conn_send_now(c, MX_MSG_AUTH_PROOF, 0, &w);
}

/* A ticket from a monitor (at the handshake, or renewed). */
static int take_grant(struct mx_conn *c, const struct mx_msg_auth_done *d)
{
	struct mx_auth_client *a = c->auth_client;
	uint8_t g[GRANT_LEN];
	uint64_t exp = 0;

	if (d->sealed_len != GRANT_LEN + MX_SEAL_OVERHEAD || !d->ticket_len ||
	    d->ticket_len > sizeof(a->ticket) || mx_unseal(a->key, d->sealed, d->sealed_len, g) < 0)
		return -EBADMSG;
	for (int i = 0; i < 8; i++)
		exp |= (uint64_t)g[MX_KEY_LEN + i] << (8 * i);
	memcpy(a->ticket_key, g, MX_KEY_LEN);
	memcpy(a->ticket, d->ticket, d->ticket_len);
	a->ticket_len = d->ticket_len;
	a->ticket_expires_ms = exp;
	a->ticket_got_ms = mx_wall_ms();
	if (g[MX_KEY_LEN + 8]) {
		memcpy(a->secret, g + MX_KEY_LEN + 9, MX_KEY_LEN);
		a->have_secret = true;
	}
	snprintf(a->caps, sizeof(a->caps), "%s", d->caps);
	OPENSSL_cleanse(g, sizeof(g));
	if (a->on_ticket)
		a->on_ticket(a->arg);
	return 0;
}

static int on_done(struct mx_conn *c, const uint8_t *p, uint32_t len)
{
	struct mx_auth_hs *hs = c->hs;
	struct mx_msg_auth_done d;
	uint8_t session[MX_KEY_LEN];
	int r;

	if (!c->auth_initiator || mx_dec_auth_done(p, len, &d) < 0)
		return -EPROTO;
	if (d.status) {
		r = mx_wire_to_errno(d.status);
		snprintf(c->auth_error, sizeof(c->auth_error), "%s", d.message);
		mx_warn("%s refused %s: %s", c->peer, c->auth_client ? c->auth_client->entity : "?",
			d.message);
		return r < 0 ? r : -EACCES;
	}
	if (c->sec == MX_SEC_ON) {
		/* A renewed ticket. */
		if (c->auth_mode != MX_AUTH_MODE_KEY || take_grant(c, &d) < 0)
			return -EPROTO;
		return 0;
	}
	if (!hs || hs->step != ST_PROOF_SENT)
		return -EPROTO;
	if (hs->mode == MX_AUTH_MODE_KEY && take_grant(c, &d) < 0) {
		snprintf(c->auth_error, sizeof(c->auth_error), "the monitor's ticket is unreadable");
		return -EPROTO;
	}
	mx_auth_session_key(hs->key, hs->nc, hs->ns, session);
	hs->step = 0;
	mx_conn_secure(c, session);
	OPENSSL_cleanse(session, sizeof(session));
	return 0;
}

int mx_authconn_renew(struct mx_conn *c)
{
	struct mx_wbuf w;

	if (c->sec != MX_SEC_ON || !c->auth_initiator || c->auth_mode != MX_AUTH_MODE_KEY)
		return -EINVAL;
	mx_wbuf_init(&w);
	return mx_conn_send(c, MX_MSG_AUTH_RENEW, 0, &w);
}

int mx_authconn_on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, const uint8_t *payload)
{
	switch (h->type) {
	case MX_MSG_AUTH_HELLO:
		return c->auth_initiator ? -EPROTO : on_hello(c, payload, h->len);
	case MX_MSG_AUTH_CHALLENGE:
		return c->auth_initiator ? on_challenge(c, payload, h->len) : -EPROTO;
	case MX_MSG_AUTH_PROOF:
		return c->auth_initiator ? -EPROTO : on_proof(c, payload, h->len);
	case MX_MSG_AUTH_DONE:
		return on_done(c, payload, h->len);
	case MX_MSG_AUTH_RENEW:
		return c->auth_initiator ? -EPROTO : on_renew(c);
	default:
		/* Anything else before the end of the handshake. */
		if (c->auth_initiator)
			return -EPROTO;
		{
			struct mx_msg_error_reply er = {
				.status = mx_errno_to_wire(-EACCES),
				.message = "authentication required (this cluster uses keys)",
			};
			struct mx_wbuf w;

			mx_wbuf_init(&w);
			mx_enc_error_reply(&w, &er);
			(void)mx_conn_send_now(c, MX_MSG_ERROR_REPLY, h->tid, &w);
			mx_info("%s: a request before authentication refused", c->peer);
			mx_conn_close_after_send(c, -EACCES);
		}
		return 0;
	}
}

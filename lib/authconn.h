/*
 * The authentication handshake on a connection (docs/auth.md), both ends:
 * with a key to a monitor, with a ticket to an OSD.  net.c runs it: it
 * starts it on an outgoing connection that has credentials, hands it every
 * AUTH_* frame (and any frame that arrives before the handshake is done),
 * and turns MACs on when it succeeds.
 */
#ifndef MX_AUTHCONN_H
#define MX_AUTHCONN_H

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"

struct mx_conn;
struct mx_msg_hdr;

/* An endpoint's credentials (a client's, or an OSD's), owned by it and
 * updated by handshakes with monitors (the ticket). */
struct mx_auth_client {
	char entity[MX_ENTITY_MAX];
	uint8_t key[MX_KEY_LEN];
	/* From the monitor: a ticket for OSDs, its key and end of life. */
	uint8_t ticket[1024];
	uint32_t ticket_len;
	uint8_t ticket_key[MX_KEY_LEN];
	uint64_t ticket_expires_ms;
	uint64_t ticket_got_ms;
	char caps[MX_CAPS_MAX];
	/* OSDs receive the service secret too. */
	bool have_secret;
	uint8_t secret[MX_KEY_LEN];
	/* Called after every ticket from a monitor (optional). */
	void (*on_ticket)(void *arg);
	void *arg;
};

/* How a daemon checks those who connect to it. */
struct mx_auth_server {
	bool required;      /* refuse any connection that does not authenticate */
	bool monitor;       /* accepts keys (and issues tickets); else tickets */
	uint32_t ticket_ttl_ms;
	void *arg;
	/* Monitor: the key, caps and generation of entity; 0, -ENOENT,
	 * -ENOTSUP (keys not in use) or -EAGAIN (no map yet: the client tries
	 * again). */
	int (*lookup)(void *arg, const char *entity, uint8_t key[MX_KEY_LEN],
		      char caps[MX_CAPS_MAX], uint32_t *generation);
	/* The service secret (NULL while unknown: tickets are refused). */
	const uint8_t *(*secret)(void *arg);
};

/* Initiator: send the HELLO.  0 or a negative errno. */
int mx_authconn_start(struct mx_conn *c);
/* A frame for the handshake (or one that came before its end).  0, or a
 * negative errno to close the connection. */
int mx_authconn_on_msg(struct mx_conn *c, const struct mx_msg_hdr *h, const uint8_t *payload);
/* Initiator, on a secure connection to a monitor: ask for a new ticket. */
int mx_authconn_renew(struct mx_conn *c);
/* Whether a ticket should be renewed now (a third of its life left). */
bool mx_auth_ticket_due(const struct mx_auth_client *a, uint64_t now_ms);
void mx_authconn_free(struct mx_conn *c);

#endif

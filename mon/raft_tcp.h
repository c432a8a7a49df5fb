/*
 * The monitors' Raft transport: TCP links authenticated and encrypted with
 * the monitor key, with bounds on how long a connection to a peer may hang
 * (docs/monitor-quorum.md, "The Raft link").
 */
#ifndef MX_RAFT_TCP_H
#define MX_RAFT_TCP_H

#include <stdint.h>

#include <raft/uv.h>
#include <uv.h>

/* A connection attempt that has not completed after this long is given up
 * (libraft tries again after its retry delay, on a new socket). */
#define MX_RAFT_CONNECT_MS 2000
/* An established connection whose data stays unacknowledged this long is
 * closed by the kernel (TCP_USER_TIMEOUT); libraft then reconnects. */
#define MX_RAFT_USER_TIMEOUT_MS 3000

/* Make *out a transport for raft_uv_init on loop; key (MX_KEY_LEN bytes,
 * the monitor key) authenticates and encrypts every connection, NULL
 * leaves them open.  0 or a negative errno.  Release it with
 * mx_raft_tcp_free once libraft has closed it. */
int mx_raft_tcp_new(uv_loop_t *loop, const uint8_t *key, struct raft_uv_transport **out);
/* Accepts NULL. */
void mx_raft_tcp_free(struct raft_uv_transport *t);

#endif

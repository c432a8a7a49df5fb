/*
 * The secure framing of the monitors' Raft links (docs/monitor-quorum.md,
 * "The Raft link"): a mutual challenge-response on the monitor key, then
 * every frame encrypted and authenticated with AES-256-GCM under a key of
 * that connection and direction, its sequence number as the nonce.  No I/O
 * here: mon/raft_tcp.c moves the bytes.
 *
 *   client                                   server
 *   HELLO     magic, version, mode, nc  -->
 *             <--  CHALLENGE magic, version, mode, ns, server proof
 *   PROOF     client proof              -->
 *   frames    len | ciphertext | tag   <-->  (len | bytes without a key)
 *
 * The proofs are HMAC-SHA256 under the monitor key of a label (one for
 * each side, so a proof cannot be reflected) and both nonces (fresh on
 * each side, so a recorded handshake cannot be replayed).  A frame that
 * does not decrypt, comes out of order, or is replayed fails: the
 * connection must be closed.  Without a key (mode "open") the handshake
 * only checks that both sides agree on that, and frames are plain.
 */
#ifndef MX_TUNNEL_H
#define MX_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"

#define MX_TUN_NONCE_LEN 32
#define MX_TUN_HELLO_LEN (4 + 2 + 2 + MX_TUN_NONCE_LEN)
#define MX_TUN_CHALLENGE_LEN (MX_TUN_HELLO_LEN + MX_HMAC_LEN)
#define MX_TUN_PROOF_LEN MX_HMAC_LEN
#define MX_TUN_TAG_LEN 16
#define MX_TUN_HDR_LEN 4
/* The largest payload of one frame. */
#define MX_TUN_FRAME_MAX (256u * 1024u)

struct mx_tun {
	bool server;
	bool keyed;
	bool ready;      /* handshake done */
	uint8_t key[MX_KEY_LEN];
	uint8_t nc[MX_TUN_NONCE_LEN], ns[MX_TUN_NONCE_LEN];
	void *tx, *rx;   /* EVP_CIPHER_CTX, once ready */
	uint64_t tx_seq, rx_seq;
};

/* key NULL: open mode.  0 or -ENOMEM. */
int mx_tun_init(struct mx_tun *t, bool server, const uint8_t *key);
void mx_tun_free(struct mx_tun *t);

/* Client: the HELLO to send.  0 or -EIO (no randomness). */
int mx_tun_hello(struct mx_tun *t, uint8_t out[MX_TUN_HELLO_LEN]);
/* Server: check a HELLO, write the CHALLENGE.  0, or -EPROTO / -EPERM with
 * the reason in *why. */
int mx_tun_on_hello(struct mx_tun *t, const uint8_t in[MX_TUN_HELLO_LEN],
		    uint8_t out[MX_TUN_CHALLENGE_LEN], const char **why);
/* Client: check a CHALLENGE (the server's proof), write our PROOF; ready
 * on success.  0, or -EPROTO / -EPERM with the reason. */
int mx_tun_on_challenge(struct mx_tun *t, const uint8_t in[MX_TUN_CHALLENGE_LEN],
			uint8_t out[MX_TUN_PROOF_LEN], const char **why);
/* Server: check the client's PROOF; ready on success.  0 or -EPERM. */
int mx_tun_on_proof(struct mx_tun *t, const uint8_t in[MX_TUN_PROOF_LEN], const char **why);

/* The bytes a frame of len payload bytes takes on the wire. */
size_t mx_tun_frame_size(const struct mx_tun *t, uint32_t len);
/* Seal len (1..MX_TUN_FRAME_MAX) bytes into out (mx_tun_frame_size
 * bytes).  0 or -EIO. */
int mx_tun_seal(struct mx_tun *t, const void *data, uint32_t len, uint8_t *out);
/* From a frame's first MX_TUN_HDR_LEN bytes: its payload length, or
 * -EBADMSG (0 or above MX_TUN_FRAME_MAX). */
int64_t mx_tun_frame_len(const uint8_t hdr[MX_TUN_HDR_LEN]);
/* Open a whole frame (mx_tun_frame_size(len) bytes at in) into out (len
 * bytes).  0 or -EBADMSG (altered, replayed, reordered, wrong key). */
int mx_tun_open(struct mx_tun *t, const uint8_t *in, uint32_t len, uint8_t *out);

#endif

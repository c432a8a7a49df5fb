/*
 * Authentication primitives (docs/auth.md): keys, key files, HMAC-SHA256,
 * sealing with AES-256-GCM, tickets and capabilities.  Every primitive is
 * OpenSSL's libcrypto; this file only frames them.
 */
#ifndef MX_AUTH_H
#define MX_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MX_KEY_LEN 32
#define MX_NONCE_LEN 16
#define MX_HMAC_LEN 32
#define MX_MAC_LEN 16          /* per-frame MAC (truncated HMAC) */
#define MX_KEY_B64_LEN 44      /* base64 of a key, without the NUL */
#define MX_ENTITY_MAX 64
#define MX_CAPS_MAX 192
#define MX_SEAL_OVERHEAD (12 + 16)
/* No ticket lives longer (monitors refuse a longer --auth-ticket-ttl, OSDs
 * a ticket that claims more). */
#define MX_TICKET_TTL_MAX_MS (86400ull * 1000)

/* 32 random bytes.  0 or -EIO. */
int mx_key_random(uint8_t key[MX_KEY_LEN]);
void mx_key_to_b64(const uint8_t key[MX_KEY_LEN], char out[MX_KEY_B64_LEN + 1]);
/* 0, or -EINVAL unless s is exactly a base64 key. */
int mx_key_from_b64(const char *s, uint8_t key[MX_KEY_LEN]);

/* Base64 of any bytes: encode writes a NUL-terminated string (outsz >=
 * 4 * ((n + 2) / 3) + 1) and returns its length; decode returns the number
 * of bytes, or -EINVAL (malformed, or more than outsz). */
int mx_b64_encode(const void *p, size_t n, char *out, size_t outsz);
int mx_b64_decode(const char *s, uint8_t *out, size_t outsz);

/* Key files: one line "NAME KEY" (NAME an entity, or "mon" for the monitor
 * key), mode 0600.  write refuses to replace an
 * existing file unless replace.  read refuses a file group or others may
 * read (-EPERM) and a malformed one (-EINVAL). */
int mx_keyfile_write(const char *path, const char *name, const uint8_t key[MX_KEY_LEN],
		     bool replace);
int mx_keyfile_read(const char *path, char name[MX_ENTITY_MAX], uint8_t key[MX_KEY_LEN]);
/* The monitor key (a key file named "mon"); mx_keyfile_read refuses it, as
 * it is no entity's.  0, -EPERM, -EINVAL as above. */
int mx_monkey_read(const char *path, uint8_t key[MX_KEY_LEN]);

/* A valid entity name: client.NAME or osd.N. */
bool mx_entity_valid(const char *name);

/* HMAC-SHA256 of the concatenation of n parts (pointer, length pairs). */
struct mx_part {
	const void *p;
	size_t n;
};
void mx_hmac(const uint8_t *key, size_t klen, const struct mx_part *parts, int n,
	     uint8_t out[MX_HMAC_LEN]);
/* Constant-time comparison. */
bool mx_mac_equal(const void *a, const void *b, size_t n);

/* AES-256-GCM under a key derived from key ("mixsan seal"): out gets
 * nonce(12) | ciphertext | tag(16).  unseal: 0 and the plaintext (len -
 * MX_SEAL_OVERHEAD bytes) into pt, or -EBADMSG (wrong key, altered). */
int mx_seal(const uint8_t key[MX_KEY_LEN], const void *pt, size_t len, struct mx_wbuf *out);
int mx_unseal(const uint8_t key[MX_KEY_LEN], const void *in, size_t len, uint8_t *pt);

/* Capabilities (docs/auth.md). */
#define MX_CAPS_POOLS 8
struct mx_caps {
	bool admin, osd;
	bool read, write;         /* r or rw */
	int n_pools;              /* 0: every pool */
	char pools[MX_CAPS_POOLS][64];
};
/* 0, or -EINVAL with the reason in err. */
int mx_caps_parse(const char *s, struct mx_caps *c, char *err, size_t errsz);
/* May an entity with these caps read (write false) or write pool? */
bool mx_caps_allow_pool(const struct mx_caps *c, const char *pool, bool write);

/* A ticket (docs/auth.md): sealed under the service secret. */
struct mx_ticket {
	char entity[MX_ENTITY_MAX];
	char caps[MX_CAPS_MAX];
	uint64_t expires_ms;
	uint32_t generation;
	uint8_t key[MX_KEY_LEN];
};
int mx_ticket_seal(const uint8_t secret[MX_KEY_LEN], const struct mx_ticket *t,
		   struct mx_wbuf *out);
/* 0, -EBADMSG (not sealed with secret, or malformed). */
int mx_ticket_open(const uint8_t secret[MX_KEY_LEN], const void *in, size_t len,
		   struct mx_ticket *t);

/* The proofs and the connection key of a handshake. */
void mx_auth_proof(const uint8_t key[MX_KEY_LEN], bool server, const char *entity,
		   const uint8_t nc[MX_NONCE_LEN], const uint8_t ns[MX_NONCE_LEN],
		   uint8_t out[MX_HMAC_LEN]);
void mx_auth_session_key(const uint8_t key[MX_KEY_LEN], const uint8_t nc[MX_NONCE_LEN],
			 const uint8_t ns[MX_NONCE_LEN], uint8_t out[MX_KEY_LEN]);

#endif

/*
 * The secure framing of the monitors' Raft links (see tunnel.h).
 */
#include "tunnel.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define TUN_MAGIC "MXRT"
#define TUN_VERSION 1
#define MODE_OPEN 0
#define MODE_KEYED 1

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

int mx_tun_init(struct mx_tun *t, bool server, const uint8_t *key)
{
	memset(t, 0, sizeof(*t));
	t->server = server;
	t->keyed = key != NULL;
	if (key)
		memcpy(t->key, key, MX_KEY_LEN);
	return 0;
}

void mx_tun_free(struct mx_tun *t)
{
	EVP_CIPHER_CTX_free(t->tx);
	EVP_CIPHER_CTX_free(t->rx);
	OPENSSL_cleanse(t, sizeof(*t));
}

static void put_hello(const struct mx_tun *t, const uint8_t nonce[MX_TUN_NONCE_LEN],
		      uint8_t *out)
{
	memcpy(out, TUN_MAGIC, 4);
	put_le(out + 4, TUN_VERSION, 2);
	put_le(out + 6, t->keyed ? MODE_KEYED : MODE_OPEN, 2);
	memcpy(out + 8, nonce, MX_TUN_NONCE_LEN);
}

/* A HELLO or the head of a CHALLENGE: magic, version, same mode. */
static int check_hello(const struct mx_tun *t, const uint8_t *in, const char **why)
{
	if (memcmp(in, TUN_MAGIC, 4) != 0) {
		*why = "not a monitor's Raft link";
		return -EPROTO;
	}
	if (get_le(in + 4, 2) != TUN_VERSION) {
		*why = "another version of the Raft link";
		return -EPROTO;
	}
	switch (get_le(in + 6, 2)) {
	case MODE_OPEN:
		if (t->keyed) {
			*why = "the peer has no monitor key (--mon-keyfile) and we have one";
			return -EPERM;
		}
		return 0;
	case MODE_KEYED:
		if (!t->keyed) {
			*why = "the peer uses a monitor key (--mon-keyfile) and we have none";
			return -EPERM;
		}
		return 0;
	default:
		*why = "unknown mode of the Raft link";
		return -EPROTO;
	}
}

static void hmac_label(const struct mx_tun *t, const char *label, uint8_t out[MX_HMAC_LEN])
{
	struct mx_part p[3] = {
		{label, strlen(label) + 1}, {t->nc, MX_TUN_NONCE_LEN}, {t->ns, MX_TUN_NONCE_LEN}};

	mx_hmac(t->key, MX_KEY_LEN, p, 3, out);
}

static void proof(const struct mx_tun *t, bool server, uint8_t out[MX_HMAC_LEN])
{
	hmac_label(t, server ? "mixsan raft link: server" : "mixsan raft link: client", out);
}

static void *cipher_ctx(const uint8_t key[MX_KEY_LEN], bool enc)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

	if (!c)
		return NULL;
	if ((enc ? EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, NULL)
		 : EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, NULL)) != 1) {
		EVP_CIPHER_CTX_free(c);
		return NULL;
	}
	return c;
}

/* Both nonces known and both proofs checked: the keys of each direction. */
static int make_ready(struct mx_tun *t)
{
	uint8_t c2s[MX_HMAC_LEN], s2c[MX_HMAC_LEN];

	if (t->keyed) {
		hmac_label(t, "mixsan raft link: client to server", c2s);
		hmac_label(t, "mixsan raft link: server to client", s2c);
		t->tx = cipher_ctx(t->server ? s2c : c2s, true);
		t->rx = cipher_ctx(t->server ? c2s : s2c, false);
		OPENSSL_cleanse(c2s, sizeof(c2s));
		OPENSSL_cleanse(s2c, sizeof(s2c));
		if (!t->tx || !t->rx)
			return -ENOMEM;
	}
	t->ready = true;
	return 0;
}

int mx_tun_hello(struct mx_tun *t, uint8_t out[MX_TUN_HELLO_LEN])
{
	if (getrandom(t->nc, MX_TUN_NONCE_LEN, 0) != MX_TUN_NONCE_LEN)
		return -EIO;
	put_hello(t, t->nc, out);
	return 0;
}

int mx_tun_on_hello(struct mx_tun *t, const uint8_t in[MX_TUN_HELLO_LEN],
		    uint8_t out[MX_TUN_CHALLENGE_LEN], const char **why)
{
	int r = check_hello(t, in, why);

	if (r < 0)
		return r;
	memcpy(t->nc, in + 8, MX_TUN_NONCE_LEN);
	if (getrandom(t->ns, MX_TUN_NONCE_LEN, 0) != MX_TUN_NONCE_LEN) {
		*why = "no randomness";
		return -EIO;
	}
	put_hello(t, t->ns, out);
	if (t->keyed)
		proof(t, true, out + MX_TUN_HELLO_LEN);
	else
		memset(out + MX_TUN_HELLO_LEN, 0, MX_HMAC_LEN);
	return 0;
}

int mx_tun_on_challenge(struct mx_tun *t, const uint8_t in[MX_TUN_CHALLENGE_LEN],
			uint8_t out[MX_TUN_PROOF_LEN], const char **why)
{
	uint8_t want[MX_HMAC_LEN];
	int r = check_hello(t, in, why);

	if (r < 0)
		return r;
	memcpy(t->ns, in + 8, MX_TUN_NONCE_LEN);
	if (t->keyed) {
		proof(t, true, want);
		if (!mx_mac_equal(want, in + MX_TUN_HELLO_LEN, MX_HMAC_LEN)) {
			*why = "the peer does not hold our monitor key";
			return -EPERM;
		}
		proof(t, false, out);
	} else {
		memset(out, 0, MX_TUN_PROOF_LEN);
	}
	r = make_ready(t);
	if (r < 0)
		*why = "out of memory";
	return r;
}

int mx_tun_on_proof(struct mx_tun *t, const uint8_t in[MX_TUN_PROOF_LEN], const char **why)
{
	uint8_t want[MX_HMAC_LEN];
	int r;

	if (t->keyed) {
		proof(t, false, want);
		if (!mx_mac_equal(want, in, MX_HMAC_LEN)) {
			*why = "the peer does not hold our monitor key";
			return -EPERM;
		}
	}
	r = make_ready(t);
	if (r < 0)
		*why = "out of memory";
	return r;
}

size_t mx_tun_frame_size(const struct mx_tun *t, uint32_t len)
{
	return MX_TUN_HDR_LEN + (size_t)len + (t->keyed ? MX_TUN_TAG_LEN : 0);
}

int64_t mx_tun_frame_len(const uint8_t hdr[MX_TUN_HDR_LEN])
{
	uint32_t len = get_le(hdr, 4);

	return len == 0 || len > MX_TUN_FRAME_MAX ? -EBADMSG : (int64_t)len;
}

/* The nonce of frame seq of a direction: each direction has its own key,
 * so the sequence alone makes it unique. */
static void frame_iv(uint64_t seq, uint8_t iv[12])
{
	memset(iv, 0, 4);
	put_le(iv + 4, seq, 8);
}

int mx_tun_seal(struct mx_tun *t, const void *data, uint32_t len, uint8_t *out)
{
	uint8_t iv[12];
	int n = 0, f = 0;

	if (!t->ready || len == 0 || len > MX_TUN_FRAME_MAX)
		return -EINVAL;
	put_le(out, len, 4);
	if (!t->keyed) {
		memcpy(out + MX_TUN_HDR_LEN, data, len);
		return 0;
	}
	frame_iv(t->tx_seq, iv);
	if (EVP_EncryptInit_ex(t->tx, NULL, NULL, NULL, iv) != 1 ||
	    EVP_EncryptUpdate(t->tx, NULL, &n, out, MX_TUN_HDR_LEN) != 1 ||
	    EVP_EncryptUpdate(t->tx, out + MX_TUN_HDR_LEN, &n, data, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(t->tx, out + MX_TUN_HDR_LEN + n, &f) != 1 ||
	    (uint32_t)(n + f) != len ||
	    EVP_CIPHER_CTX_ctrl(t->tx, EVP_CTRL_GCM_GET_TAG, MX_TUN_TAG_LEN,
				out + MX_TUN_HDR_LEN + len) != 1)
		return -EIO;
	t->tx_seq++;
	return 0;
}

int mx_tun_open(struct mx_tun *t, const uint8_t *in, uint32_t len, uint8_t *out)
{
	uint8_t iv[12], tag[MX_TUN_TAG_LEN];
	int n = 0, f = 0;

	if (!t->ready || len == 0 || len > MX_TUN_FRAME_MAX || get_le(in, 4) != len)
		return -EBADMSG;
	if (!t->keyed) {
		memcpy(out, in + MX_TUN_HDR_LEN, len);
		return 0;
	}
	frame_iv(t->rx_seq, iv);
	memcpy(tag, in + MX_TUN_HDR_LEN + len, MX_TUN_TAG_LEN);
	if (EVP_DecryptInit_ex(t->rx, NULL, NULL, NULL, iv) != 1 ||
	    EVP_DecryptUpdate(t->rx, NULL, &n, in, MX_TUN_HDR_LEN) != 1 ||
	    EVP_DecryptUpdate(t->rx, out, &n, in + MX_TUN_HDR_LEN, (int)len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(t->rx, EVP_CTRL_GCM_SET_TAG, MX_TUN_TAG_LEN, tag) != 1 ||
	    EVP_DecryptFinal_ex(t->rx, out + n, &f) != 1) {
		OPENSSL_cleanse(out, len);
		return -EBADMSG;
	}
	t->rx_seq++;
	return 0;
}

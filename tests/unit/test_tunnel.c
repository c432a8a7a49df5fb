/*
 * Unit tests of the Raft link's framing (lib/tunnel.c): the handshake with
 * and without a monitor key, wrong keys, replayed and reflected handshake
 * messages, and frames altered, replayed, reordered, reflected, cut short.
 */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "tunnel.h"

static const uint8_t key1[MX_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static const uint8_t key2[MX_KEY_LEN] = {9, 8, 7, 6, 5, 4, 3, 2, 1};

/* A handshake between a client with kc and a server with ks (NULL: open),
 * optionally keeping its messages.  0 when both sides are ready. */
static int shake(struct mx_tun *c, struct mx_tun *s, const uint8_t *kc, const uint8_t *ks,
		 uint8_t *hello, uint8_t *chal, uint8_t *proof)
{
	uint8_t h[MX_TUN_HELLO_LEN], ch[MX_TUN_CHALLENGE_LEN], pr[MX_TUN_PROOF_LEN];
	const char *why = NULL;
	int r;

	mx_tun_init(c, false, kc);
	mx_tun_init(s, true, ks);
	if (mx_tun_hello(c, h) < 0)
		return -EIO;
	r = mx_tun_on_hello(s, h, ch, &why);
	if (r == 0)
		r = mx_tun_on_challenge(c, ch, pr, &why);
	if (r == 0)
		r = mx_tun_on_proof(s, pr, &why);
	if (r < 0)
		CHECK(why && *why);
	if (hello)
		memcpy(hello, h, sizeof(h));
	if (chal)
		memcpy(chal, ch, sizeof(ch));
	if (proof)
		memcpy(proof, pr, sizeof(pr));
	return r == 0 && c->ready && s->ready ? 0 : r < 0 ? r : -EPROTO;
}

static void test_handshake(void)
{
	struct mx_tun c, s, c2, s2;
	uint8_t h[MX_TUN_HELLO_LEN], ch[MX_TUN_CHALLENGE_LEN], pr[MX_TUN_PROOF_LEN];
	uint8_t out[MX_TUN_CHALLENGE_LEN], out2[MX_TUN_PROOF_LEN], hx[MX_TUN_HELLO_LEN];
	const char *why = NULL;

	/* Same key, and both open. */
	CHECK_EQ_INT(shake(&c, &s, key1, key1, h, ch, pr), 0);
	mx_tun_free(&c);
	mx_tun_free(&s);
	CHECK_EQ_INT(shake(&c, &s, NULL, NULL, NULL, NULL, NULL), 0);
	mx_tun_free(&c);
	mx_tun_free(&s);
	/* Another key: the client finds out from the server's proof. */
	CHECK_EQ_INT(shake(&c, &s, key1, key2, NULL, NULL, NULL), -EPERM);
	CHECK(!c.ready && !s.ready);
	mx_tun_free(&c);
	mx_tun_free(&s);
	/* One side without a key, either way round. */
	CHECK_EQ_INT(shake(&c, &s, NULL, key1, NULL, NULL, NULL), -EPERM);
	mx_tun_free(&c);
	mx_tun_free(&s);
	CHECK_EQ_INT(shake(&c, &s, key1, NULL, NULL, NULL, NULL), -EPERM);
	mx_tun_free(&c);
	mx_tun_free(&s);

	/* A recorded handshake replayed: the server's fresh nonce defeats
	 * the client's recorded proof... */
	CHECK_EQ_INT(shake(&c, &s, key1, key1, h, ch, pr), 0);
	mx_tun_init(&s2, true, key1);
	CHECK_EQ_INT(mx_tun_on_hello(&s2, h, out, &why), 0);
	CHECK_EQ_INT(mx_tun_on_proof(&s2, pr, &why), -EPERM);
	CHECK(!s2.ready);
	mx_tun_free(&s2);
	/* ... and the client's fresh nonce the server's recorded challenge. */
	mx_tun_init(&c2, false, key1);
	CHECK_EQ_INT(mx_tun_hello(&c2, out), 0);
	CHECK_EQ_INT(mx_tun_on_challenge(&c2, ch, out2, &why), -EPERM);
	CHECK(!c2.ready);
	mx_tun_free(&c2);
	/* The server's own proof reflected back as the client's. */
	mx_tun_init(&s2, true, key1);
	CHECK_EQ_INT(mx_tun_on_hello(&s2, h, out, &why), 0);
	CHECK_EQ_INT(mx_tun_on_proof(&s2, out + MX_TUN_HELLO_LEN, &why), -EPERM);
	mx_tun_free(&s2);
	/* Not a monitor's link; another version. */
	mx_tun_init(&s2, true, key1);
	memcpy(hx, h, sizeof(hx));
	hx[0] = 'X';
	CHECK_EQ_INT(mx_tun_on_hello(&s2, hx, out, &why), -EPROTO);
	CHECK(strstr(why, "not a monitor") != NULL);
	memcpy(hx, h, sizeof(hx));
	hx[4] = 9;
	CHECK_EQ_INT(mx_tun_on_hello(&s2, hx, out, &why), -EPROTO);
	mx_tun_free(&s2);
	mx_tun_free(&c);
	mx_tun_free(&s);
}

static void test_frames(bool keyed)
{
	struct mx_tun c, s;
	uint8_t f1[MX_TUN_HDR_LEN + 100 + MX_TUN_TAG_LEN], f2[sizeof(f1)], f3[sizeof(f1)];
	uint8_t pt[100], got[100];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)i;
	CHECK_EQ_INT(shake(&c, &s, keyed ? key1 : NULL, keyed ? key1 : NULL, NULL, NULL, NULL), 0);
	n = mx_tun_frame_size(&c, sizeof(pt));
	CHECK_EQ_INT(n, MX_TUN_HDR_LEN + sizeof(pt) + (keyed ? MX_TUN_TAG_LEN : 0));
	CHECK_EQ_INT(mx_tun_seal(&c, pt, sizeof(pt), f1), 0);
	CHECK_EQ_INT(mx_tun_seal(&c, pt, sizeof(pt), f2), 0);
	CHECK_EQ_INT(mx_tun_seal(&c, pt, sizeof(pt), f3), 0);
	CHECK_EQ_INT(mx_tun_frame_len(f1), sizeof(pt));
	if (keyed) {
		/* Encrypted: the payload is not on the wire, and equal
		 * payloads make different frames. */
		CHECK(memcmp(f1 + MX_TUN_HDR_LEN, pt, sizeof(pt)) != 0);
		CHECK(memcmp(f1, f2, n) != 0);
		/* Out of order: the second frame first. */
		CHECK_EQ_INT(mx_tun_open(&s, f2, sizeof(pt), got), -EBADMSG);
	}
	CHECK_EQ_INT(mx_tun_open(&s, f1, sizeof(pt), got), 0);
	CHECK(memcmp(got, pt, sizeof(pt)) == 0);
	if (keyed) {
		/* Replayed. */
		CHECK_EQ_INT(mx_tun_open(&s, f1, sizeof(pt), got), -EBADMSG);
		/* A flipped bit in the payload, the tag: refused; the good
		 * frame still opens after (nothing consumed). */
		f2[MX_TUN_HDR_LEN + 5] ^= 0x10;
		CHECK_EQ_INT(mx_tun_open(&s, f2, sizeof(pt), got), -EBADMSG);
		f2[MX_TUN_HDR_LEN + 5] ^= 0x10;
		f2[n - 1] ^= 1;
		CHECK_EQ_INT(mx_tun_open(&s, f2, sizeof(pt), got), -EBADMSG);
		f2[n - 1] ^= 1;
		CHECK_EQ_INT(mx_tun_open(&s, f2, sizeof(pt), got), 0);
		/* Reflected: the client's frame back to the client. */
		CHECK_EQ_INT(mx_tun_open(&c, f3, sizeof(pt), got), -EBADMSG);
		/* The header is authenticated too: a shorter length. */
		f3[0] = sizeof(pt) - 1;
		CHECK_EQ_INT(mx_tun_open(&s, f3, sizeof(pt) - 1, got), -EBADMSG);
		f3[0] = sizeof(pt);
		CHECK_EQ_INT(mx_tun_open(&s, f3, sizeof(pt), got), 0);
		/* A server with another key never opens the client's frames. */
		{
			struct mx_tun c2, s2;

			CHECK_EQ_INT(shake(&c2, &s2, key1, key1, NULL, NULL, NULL), 0);
			CHECK_EQ_INT(mx_tun_seal(&c, pt, sizeof(pt), f1), 0);
			CHECK_EQ_INT(mx_tun_open(&s2, f1, sizeof(pt), got), -EBADMSG);
			mx_tun_free(&c2);
			mx_tun_free(&s2);
		}
	}
	/* Lengths: zero and too large are malformed. */
	{
		uint8_t hdr[4] = {0, 0, 0, 0};

		CHECK_EQ_INT(mx_tun_frame_len(hdr), -EBADMSG);
		hdr[2] = 0x10; /* 1 MiB */
		CHECK_EQ_INT(mx_tun_frame_len(hdr), -EBADMSG);
		CHECK_EQ_INT(mx_tun_seal(&c, pt, 0, f1), -EINVAL);
	}
	mx_tun_free(&c);
	mx_tun_free(&s);
}

int main(void)
{
	test_handshake();
	test_frames(true);
	test_frames(false);
	return mx_check_done("tunnel");
}

/*
 * Unit tests of the authentication primitives (lib/auth.c, docs/auth.md).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "check.h"

static void test_hmac(void)
{
	/* RFC 4231, test case 2. */
	static const uint8_t want[32] = {
		0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
		0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
		0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43,
	};
	struct mx_part p[] = {{"what do ya ", 11}, {"want for nothing?", 17}};
	uint8_t out[32];

	mx_hmac((const uint8_t *)"Jefe", 4, p, 2, out);
	CHECK(memcmp(out, want, 32) == 0);
	CHECK(mx_mac_equal(out, want, 32));
	out[31] ^= 1;
	CHECK(!mx_mac_equal(out, want, 32));
}

static void test_keys(void)
{
	uint8_t k[MX_KEY_LEN], k2[MX_KEY_LEN];
	char b64[MX_KEY_B64_LEN + 1], name[MX_ENTITY_MAX], path[] = "/tmp/mx-auth-XXXXXX";
	int fd;

	CHECK_EQ_INT(mx_key_random(k), 0);
	mx_key_to_b64(k, b64);
	CHECK_EQ_INT(strlen(b64), MX_KEY_B64_LEN);
	CHECK_EQ_INT(mx_key_from_b64(b64, k2), 0);
	CHECK(memcmp(k, k2, MX_KEY_LEN) == 0);
	CHECK(mx_key_from_b64("", k2) < 0);
	CHECK(mx_key_from_b64("abc", k2) < 0);
	b64[3] = '!';
	CHECK(mx_key_from_b64(b64, k2) < 0);

	CHECK(mx_entity_valid("client.admin") && mx_entity_valid("osd.12"));
	CHECK(!mx_entity_valid("client.") && !mx_entity_valid("osd.x") &&
	      !mx_entity_valid("mon.a") && !mx_entity_valid("osd.-1") &&
	      !mx_entity_valid("client.a b"));

	fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	/* An existing file is not replaced unless asked. */
	CHECK_EQ_INT(mx_keyfile_write(path, "client.x", k, false), -EEXIST);
	CHECK_EQ_INT(mx_keyfile_write(path, "client.x", k, true), 0);
	memset(k2, 0, sizeof(k2));
	CHECK_EQ_INT(mx_keyfile_read(path, name, k2), 0);
	CHECK(strcmp(name, "client.x") == 0 && memcmp(k, k2, MX_KEY_LEN) == 0);
	/* A key file others may read is refused. */
	CHECK_EQ_INT(chmod(path, 0644), 0);
	CHECK_EQ_INT(mx_keyfile_read(path, name, k2), -EPERM);
	CHECK_EQ_INT(mx_keyfile_write(path, "bad name", k, true), -EINVAL);
	unlink(path);
	CHECK_EQ_INT(mx_keyfile_write(path, "osd.3", k, false), 0);
	{
		struct stat st;

		CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	}
	unlink(path);
	CHECK_EQ_INT(mx_keyfile_read(path, name, k2), -ENOENT);
}

static void test_seal(void)
{
	uint8_t k[MX_KEY_LEN], k2[MX_KEY_LEN], pt[64];
	struct mx_wbuf w;
	const char msg[] = "the service secret";

	mx_key_random(k);
	mx_key_random(k2);
	mx_wbuf_init(&w);
	CHECK_EQ_INT(mx_seal(k, msg, sizeof(msg), &w), 0);
	CHECK_EQ_INT(w.len, sizeof(msg) + MX_SEAL_OVERHEAD);
	CHECK(memmem(w.data, w.len, "service", 7) == NULL);
	CHECK_EQ_INT(mx_unseal(k, w.data, w.len, pt), 0);
	CHECK(memcmp(pt, msg, sizeof(msg)) == 0);
	CHECK_EQ_INT(mx_unseal(k2, w.data, w.len, pt), -EBADMSG);
	for (size_t i = 0; i < w.len; i += 7) {
		w.data[i] ^= 0x20;
		CHECK_EQ_INT(mx_unseal(k, w.data, w.len, pt), -EBADMSG);
		w.data[i] ^= 0x20;
	}
	CHECK_EQ_INT(mx_unseal(k, w.data, w.len - 1, pt), -EBADMSG);
	CHECK_EQ_INT(mx_unseal(k, w.data, 5, pt), -EBADMSG);
	mx_wbuf_free(&w);
}

static void test_ticket(void)
{
	uint8_t s[MX_KEY_LEN], s2[MX_KEY_LEN];
	struct mx_ticket t = {.entity = "client.vm1", .caps = "rw pool=vms",
			      .expires_ms = 123456789, .generation = 3}, o;
	struct mx_wbuf w;

	mx_key_random(s);
	mx_key_random(s2);
	mx_key_random(t.key);
	mx_wbuf_init(&w);
	CHECK_EQ_INT(mx_ticket_seal(s, &t, &w), 0);
	CHECK_EQ_INT(mx_ticket_open(s, w.data, w.len, &o), 0);
	CHECK(strcmp(o.entity, t.entity) == 0 && strcmp(o.caps, t.caps) == 0 &&
	      o.expires_ms == t.expires_ms && o.generation == 3 &&
	      memcmp(o.key, t.key, MX_KEY_LEN) == 0);
	CHECK_EQ_INT(mx_ticket_open(s2, w.data, w.len, &o), -EBADMSG);
	w.data[20] ^= 1;
	CHECK_EQ_INT(mx_ticket_open(s, w.data, w.len, &o), -EBADMSG);
	mx_wbuf_free(&w);
}

static void test_caps(void)
{
	struct mx_caps c;
	char err[128];

	CHECK_EQ_INT(mx_caps_parse("admin", &c, err, sizeof(err)), 0);
	CHECK(c.admin && mx_caps_allow_pool(&c, "any", true));
	CHECK_EQ_INT(mx_caps_parse("rw pool=a,b", &c, err, sizeof(err)), 0);
	CHECK(!c.admin && mx_caps_allow_pool(&c, "a", true) && mx_caps_allow_pool(&c, "b", false));
	CHECK(!mx_caps_allow_pool(&c, "c", false) && !mx_caps_allow_pool(&c, NULL, false));
	CHECK_EQ_INT(mx_caps_parse("r", &c, err, sizeof(err)), 0);
	CHECK(mx_caps_allow_pool(&c, "x", false) && !mx_caps_allow_pool(&c, "x", true));
	CHECK_EQ_INT(mx_caps_parse("osd", &c, err, sizeof(err)), 0);
	CHECK(c.osd && !mx_caps_allow_pool(&c, "x", false));
	static const char *bad[] = {"", "root", "admin pool=a", "osd pool=a", "rw pool=",
				    "rw pools=a", "rw pool=a extra", "r pool=a b"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK(mx_caps_parse(bad[i], &c, err, sizeof(err)) < 0 && err[0]);
	}
}

static void test_proofs(void)
{
	uint8_t k[MX_KEY_LEN], nc[MX_NONCE_LEN] = {1}, ns[MX_NONCE_LEN] = {2}, a[32], b[32];
	uint8_t s1[MX_KEY_LEN], s2[MX_KEY_LEN];

	mx_key_random(k);
	mx_auth_proof(k, false, "client.a", nc, ns, a);
	mx_auth_proof(k, true, "client.a", nc, ns, b);
	CHECK(memcmp(a, b, 32) != 0); /* a client proof is no server proof */
	mx_auth_proof(k, false, "client.b", nc, ns, b);
	CHECK(memcmp(a, b, 32) != 0);
	ns[0] = 3;
	mx_auth_proof(k, false, "client.a", nc, ns, b);
	CHECK(memcmp(a, b, 32) != 0); /* a fresh nonce: the old proof is useless */
	mx_auth_session_key(k, nc, ns, s1);
	mx_auth_session_key(k, nc, ns, s2);
	CHECK(memcmp(s1, s2, 32) == 0);
	nc[1] = 9;
	mx_auth_session_key(k, nc, ns, s2);
	CHECK(memcmp(s1, s2, 32) != 0);
}

int main(void)
{
	test_hmac();
	test_keys();
	test_seal();
	test_ticket();
	test_caps();
	test_proofs();
	return mx_check_done("auth");
}

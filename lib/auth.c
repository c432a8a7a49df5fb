/*
 * Authentication primitives on OpenSSL's libcrypto (docs/auth.md).
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>

#include "map.h"
#include "util.h"

int mx_key_random(uint8_t key[MX_KEY_LEN])
{
	return getrandom(key, MX_KEY_LEN, 0) == MX_KEY_LEN ? 0 : -EIO;
}

void mx_key_to_b64(const uint8_t key[MX_KEY_LEN], char out[MX_KEY_B64_LEN + 1])
{
	EVP_EncodeBlock((unsigned char *)out, key, MX_KEY_LEN);
	out[MX_KEY_B64_LEN] = '\0';
}

int mx_key_from_b64(const char *s, uint8_t key[MX_KEY_LEN])
{
	uint8_t buf[MX_KEY_B64_LEN];
	char back[MX_KEY_B64_LEN + 1];

	if (strlen(s) != MX_KEY_B64_LEN)
		return -EINVAL;
	/* 44 characters decode to 33 bytes, the last a pad byte. */
	if (EVP_DecodeBlock(buf, (const unsigned char *)s, MX_KEY_B64_LEN) != 33)
		return -EINVAL;
	memcpy(key, buf, MX_KEY_LEN);
	/* Only the canonical spelling of a key. */
	mx_key_to_b64(key, back);
	return strcmp(back, s) == 0 ? 0 : -EINVAL;
}

int mx_b64_encode(const void *p, size_t n, char *out, size_t outsz)
{
	if (n > INT32_MAX / 2 || outsz < 4 * ((n + 2) / 3) + 1)
		return -EINVAL;
	return EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

int mx_b64_decode(const char *s, uint8_t *out, size_t outsz)
{
	size_t len = strlen(s), pad = 0;
	uint8_t *tmp;
	int n;

	if (len == 0 || len % 4 || len > INT32_MAX / 2)
		return -EINVAL;
	if (s[len - 1] == '=')
		pad++;
	if (s[len - 2] == '=')
		pad++;
	if (len / 4 * 3 - pad > outsz)
		return -EINVAL;
	tmp = malloc(len / 4 * 3);
	if (!tmp)
		return -ENOMEM;
	n = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len);
	if (n < 0 || (size_t)n != len / 4 * 3) {
		free(tmp);
		return -EINVAL;
	}
	memcpy(out, tmp, len / 4 * 3 - pad);
	OPENSSL_cleanse(tmp, len / 4 * 3);
	free(tmp);
	return (int)(len / 4 * 3 - pad);
}

bool mx_entity_valid(const char *name)
{
	if (strncmp(name, "client.", 7) == 0)
		return name[7] && strlen(name) < MX_ENTITY_MAX && mx_valid_name(name + 7);
	if (strncmp(name, "osd.", 4) == 0) {
		char *end;
		long id = strtol(name + 4, &end, 10);

		/* Canonical only: osd.7, never osd.07. */
		return name[4] >= '0' && name[4] <= '9' && !*end && id >= 0 && id < MX_MAX_OSDS &&
		       (name[4] != '0' || name[5] == '\0');
	}
	return false;
}

int mx_keyfile_write(const char *path, const char *name, const uint8_t key[MX_KEY_LEN],
		     bool replace)
{
	char b64[MX_KEY_B64_LEN + 1], line[MX_ENTITY_MAX + MX_KEY_B64_LEN + 4];
	_cleanup_close_ int fd = -1;
	int n, r;

	if (!mx_entity_valid(name) && strcmp(name, "mon") != 0)
		return -EINVAL;
	mx_key_to_b64(key, b64);
	n = snprintf(line, sizeof(line), "%s %s\n", name, b64);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (replace ? O_TRUNC : O_EXCL), 0600);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) < 0)
		return -errno;
	r = mx_pwrite_all(fd, line, (size_t)n, 0);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	OPENSSL_cleanse(line, sizeof(line));
	OPENSSL_cleanse(b64, sizeof(b64));
	return r;
}

static int keyfile_read(const char *path, char name[MX_ENTITY_MAX], uint8_t key[MX_KEY_LEN],
			bool monitor);

int mx_keyfile_read(const char *path, char name[MX_ENTITY_MAX], uint8_t key[MX_KEY_LEN])
{
	return keyfile_read(path, name, key, false);
}

int mx_monkey_read(const char *path, uint8_t key[MX_KEY_LEN])
{
	char name[MX_ENTITY_MAX];

	return keyfile_read(path, name, key, true);
}

static int keyfile_read(const char *path, char name[MX_ENTITY_MAX], uint8_t key[MX_KEY_LEN],
			bool monitor)
{
	char buf[MX_ENTITY_MAX + MX_KEY_B64_LEN + 8], *sp, *nl;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	ssize_t n;
	int r = -EINVAL;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_mode & 077)
		return -EPERM;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	sp = strchr(buf, ' ');
	if (sp && (size_t)(sp - buf) < MX_ENTITY_MAX) {
		*sp = '\0';
		if ((monitor ? strcmp(buf, "mon") == 0 : mx_entity_valid(buf)) &&
		    mx_key_from_b64(sp + 1, key) == 0) {
			snprintf(name, MX_ENTITY_MAX, "%.63s", buf);
			r = 0;
		}
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

static EVP_MAC *g_hmac;
static pthread_once_t g_hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
	g_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

void mx_hmac(const uint8_t *key, size_t klen, const struct mx_part *parts, int n,
	     uint8_t out[MX_HMAC_LEN])
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC_CTX *c;
	size_t len = 0;

	pthread_once(&g_hmac_once, hmac_fetch);
	c = g_hmac ? EVP_MAC_CTX_new(g_hmac) : NULL;
	/* Out of memory inside libcrypto: nothing sensible to return. */
	if (!c || !EVP_MAC_init(c, key, klen, params))
		abort();
	for (int i = 0; i < n; i++)
		if (parts[i].n && !EVP_MAC_update(c, parts[i].p, parts[i].n))
			abort();
	if (!EVP_MAC_final(c, out, &len, MX_HMAC_LEN) || len != MX_HMAC_LEN)
		abort();
	EVP_MAC_CTX_free(c);
}

bool mx_mac_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

static void seal_key(const uint8_t key[MX_KEY_LEN], uint8_t out[MX_HMAC_LEN])
{
	static const char label[] = "mixsan seal";
	struct mx_part p = {label, sizeof(label) - 1};

	mx_hmac(key, MX_KEY_LEN, &p, 1, out);
}

int mx_seal(const uint8_t key[MX_KEY_LEN], const void *pt, size_t len, struct mx_wbuf *out)
{
	uint8_t k[MX_HMAC_LEN], *o;
	EVP_CIPHER_CTX *c;
	int n = 0, f = 0, ok;

	if (len > INT32_MAX - MX_SEAL_OVERHEAD)
		return -EINVAL;
	o = mx_wbuf_reserve(out, len + MX_SEAL_OVERHEAD);
	if (!o)
		return -ENOMEM;
	if (getrandom(o, 12, 0) != 12)
		return -EIO;
	seal_key(key, k);
	c = EVP_CIPHER_CTX_new();
	ok = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, k, o) &&
	     EVP_EncryptUpdate(c, o + 12, &n, pt, (int)len) &&
	     EVP_EncryptFinal_ex(c, o + 12 + n, &f) &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, o + 12 + len);
	EVP_CIPHER_CTX_free(c);
	OPENSSL_cleanse(k, sizeof(k));
	if (!ok || (size_t)(n + f) != len)
		return -EIO;
	out->len += len + MX_SEAL_OVERHEAD;
	return 0;
}

int mx_unseal(const uint8_t key[MX_KEY_LEN], const void *in, size_t len, uint8_t *pt)
{
	const uint8_t *i = in;
	uint8_t k[MX_HMAC_LEN], tag[16];
	EVP_CIPHER_CTX *c;
	size_t plen;
	int n = 0, f = 0, ok;

	if (len < MX_SEAL_OVERHEAD || len > INT32_MAX)
		return -EBADMSG;
	plen = len - MX_SEAL_OVERHEAD;
	memcpy(tag, i + 12 + plen, 16);
	seal_key(key, k);
	c = EVP_CIPHER_CTX_new();
	ok = c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, k, i) &&
	     EVP_DecryptUpdate(c, pt, &n, i + 12, (int)plen) &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) &&
	     EVP_DecryptFinal_ex(c, pt + n, &f) > 0;
	EVP_CIPHER_CTX_free(c);
	OPENSSL_cleanse(k, sizeof(k));
	if (!ok) {
		OPENSSL_cleanse(pt, plen);
		return -EBADMSG;
	}
	return 0;
}

/* Capabilities ----------------------------------------------------------- */

int mx_caps_parse(const char *s, struct mx_caps *c, char *err, size_t errsz)
{
	char copy[MX_CAPS_MAX], *save = NULL, *w;

	memset(c, 0, sizeof(*c));
	if (!s || strlen(s) >= sizeof(copy)) {
		snprintf(err, errsz, "capabilities missing or too long");
		return -EINVAL;
	}
	snprintf(copy, sizeof(copy), "%s", s);
	w = strtok_r(copy, " ", &save);
	if (!w) {
		snprintf(err, errsz, "no capability given (admin, osd, r, rw)");
		return -EINVAL;
	}
	if (strcmp(w, "admin") == 0)
		c->admin = c->read = c->write = true;
	else if (strcmp(w, "osd") == 0)
		c->osd = true;
	else if (strcmp(w, "r") == 0)
		c->read = true;
	else if (strcmp(w, "rw") == 0)
		c->read = c->write = true;
	else {
		snprintf(err, errsz, "unknown capability '%s' (admin, osd, r, rw)", w);
		return -EINVAL;
	}
	w = strtok_r(NULL, " ", &save);
	if (w) {
		char *psave = NULL;

		if (strncmp(w, "pool=", 5) != 0 || !(c->read) || c->admin) {
			snprintf(err, errsz, "only r and rw take 'pool=A,B'");
			return -EINVAL;
		}
		for (char *p = strtok_r(w + 5, ",", &psave); p; p = strtok_r(NULL, ",", &psave)) {
			if (!mx_valid_name(p) || c->n_pools >= MX_CAPS_POOLS) {
				snprintf(err, errsz, "bad or too many pool names");
				return -EINVAL;
			}
			snprintf(c->pools[c->n_pools++], sizeof(c->pools[0]), "%s", p);
		}
		if (c->n_pools == 0 || strtok_r(NULL, " ", &save)) {
			snprintf(err, errsz, "expected 'r|rw pool=A,B'");
			return -EINVAL;
		}
	}
	return 0;
}

bool mx_caps_allow_pool(const struct mx_caps *c, const char *pool, bool write)
{
	if (write ? !c->write : !c->read)
		return false;
	if (c->n_pools == 0)
		return true;
	for (int i = 0; i < c->n_pools; i++)
		if (pool && strcmp(c->pools[i], pool) == 0)
			return true;
	return false;
}

/* Tickets ------------------------------------------------------------------ */

#define TICKET_MAGIC 0x544b584du /* "MXKT" */

int mx_ticket_seal(const uint8_t secret[MX_KEY_LEN], const struct mx_ticket *t,
		   struct mx_wbuf *out)
{
	struct mx_wbuf w;
	int r;

	mx_wbuf_init(&w);
	mx_put_u32(&w, TICKET_MAGIC);
	mx_put_str(&w, t->entity);
	mx_put_str(&w, t->caps);
	mx_put_u64(&w, t->expires_ms);
	mx_put_u32(&w, t->generation);
	mx_put_bytes(&w, t->key, MX_KEY_LEN);
	r = w.err ? w.err : mx_seal(secret, w.data, w.len, out);
	if (w.data)
		OPENSSL_cleanse(w.data, w.len);
	mx_wbuf_free(&w);
	return r;
}

int mx_ticket_open(const uint8_t secret[MX_KEY_LEN], const void *in, size_t len,
		   struct mx_ticket *t)
{
	uint8_t pt[512];
	struct mx_rbuf r;
	const void *k;

	memset(t, 0, sizeof(*t));
	if (len < MX_SEAL_OVERHEAD || len - MX_SEAL_OVERHEAD > sizeof(pt) ||
	    mx_unseal(secret, in, len, pt) < 0)
		return -EBADMSG;
	mx_rbuf_init(&r, pt, len - MX_SEAL_OVERHEAD);
	if (mx_get_u32(&r) != TICKET_MAGIC)
		mx_rbuf_fail(&r);
	mx_get_str(&r, t->entity, sizeof(t->entity));
	mx_get_str(&r, t->caps, sizeof(t->caps));
	t->expires_ms = mx_get_u64(&r);
	t->generation = mx_get_u32(&r);
	k = mx_get_bytes(&r, MX_KEY_LEN);
	if (k)
		memcpy(t->key, k, MX_KEY_LEN);
	OPENSSL_cleanse(pt, sizeof(pt));
	if (r.err || mx_rbuf_left(&r) || !mx_entity_valid(t->entity)) {
		OPENSSL_cleanse(t, sizeof(*t));
		return -EBADMSG;
	}
	return 0;
}

/* Handshake ------------------------------------------------------------------ */

void mx_auth_proof(const uint8_t key[MX_KEY_LEN], bool server, const char *entity,
		   const uint8_t nc[MX_NONCE_LEN], const uint8_t ns[MX_NONCE_LEN],
		   uint8_t out[MX_HMAC_LEN])
{
	static const char cl[] = "mixsan client proof", sv[] = "mixsan server proof";
	struct mx_part p[] = {
		{server ? sv : cl, sizeof(cl) - 1},
		{entity, strlen(entity) + 1},
		{nc, MX_NONCE_LEN},
		{ns, MX_NONCE_LEN},
	};

	mx_hmac(key, MX_KEY_LEN, p, 4, out);
}

void mx_auth_session_key(const uint8_t key[MX_KEY_LEN], const uint8_t nc[MX_NONCE_LEN],
			 const uint8_t ns[MX_NONCE_LEN], uint8_t out[MX_KEY_LEN])
{
	static const char label[] = "mixsan session";
	struct mx_part p[] = {{label, sizeof(label) - 1}, {nc, MX_NONCE_LEN}, {ns, MX_NONCE_LEN}};

	mx_hmac(key, MX_KEY_LEN, p, 3, out);
}

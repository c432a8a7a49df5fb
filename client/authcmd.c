/*
 * Keys made for other entities by an administrator (docs/auth.md): shared
 * by the command line's `cluster up --auth` and the system tests.
 */
#include <errno.h>
#include <stdlib.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "internal.h"
#include "log.h"

int mx_client_seal_key(const char *keyfile, const uint8_t key[MX_KEY_LEN], char *b64, size_t sz)
{
	char who[MX_ENTITY_MAX];
	uint8_t me[MX_KEY_LEN];
	struct mx_wbuf w;
	int r = mx_keyfile_read(keyfile, who, me);

	if (r < 0)
		return r;
	mx_wbuf_init(&w);
	r = mx_seal(me, key, MX_KEY_LEN, &w);
	OPENSSL_cleanse(me, sizeof(me));
	if (r == 0 && mx_b64_encode(w.data, w.len, b64, sz) < 0)
		r = -EINVAL;
	mx_wbuf_free(&w);
	return r;
}

int mx_client_auth_add(mixsan_cluster_t *cl, const char *keyfile, const char *name,
		       const char *caps, const char *out)
{
	uint8_t key[MX_KEY_LEN];
	char sealed[128], *msg = NULL;
	const char *kv[6] = {"name", name, "caps", caps, "key", sealed};
	int r = mx_key_random(key);

	if (r == 0)
		r = mx_client_seal_key(keyfile, key, sealed, sizeof(sealed));
	if (r == 0)
		r = mixsan_mon_command(cl, "auth add", kv, 3, &msg);
	if (r < 0 && msg)
		mx_warn("auth add %s: %s", name, msg);
	free(msg);
	if (r == 0)
		r = mx_keyfile_write(out, name, key, true);
	OPENSSL_cleanse(key, sizeof(key));
	return r;
}


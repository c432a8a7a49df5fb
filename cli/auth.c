/*
 * `mixsan auth`: keys and capabilities of the cluster's entities
 * (docs/auth.md).  New keys are made here and travel to the monitors sealed
 * under the administrator's own key; `auth get` comes back sealed the same
 * way.  A key is printed as "NAME KEY" or written to --out FILE (0600).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "buf.h"
#include "cli.h"
#include "internal.h"

/* The caps words after the name, joined by spaces. */
static int join_caps(const struct cli *c, int from, char *out, size_t sz)
{
	size_t at = 0;

	out[0] = '\0';
	for (int i = from; i < c->argc; i++) {
		int n = snprintf(out + at, sz - at, "%s%s", i > from ? " " : "", c->argv[i]);

		if (n < 0 || (size_t)n >= sz - at)
			return -1;
		at += (size_t)n;
	}
	return at ? 0 : -1;
}

static int own_key(const struct cli *c, uint8_t key[MX_KEY_LEN])
{
	char name[MX_ENTITY_MAX];
	int r;

	if (!c->keyfile)
		return cli_fail("no key file: give --keyfile FILE (an administrator's key)");
	r = mx_keyfile_read(c->keyfile, name, key);
	if (r < 0)
		return cli_fail("cannot use the key file %s: %s", c->keyfile,
				r == -EPERM ? "others may read it (chmod 600 it)" : strerror(-r));
	return 0;
}

/* Print the key of name, or write it to --out. */
static int give_key(const struct cli *c, const char *name, const uint8_t key[MX_KEY_LEN],
		    bool replace)
{
	const char *out = cli_opt(c, "out");
	char b64[MX_KEY_B64_LEN + 1];
	int r;

	if (!out) {
		mx_key_to_b64(key, b64);
		printf("%s %s\n", name, b64);
		OPENSSL_cleanse(b64, sizeof(b64));
		return 0;
	}
	r = mx_keyfile_write(out, name, key, replace);
	if (r < 0)
		return cli_fail("cannot write %s: %s", out,
				r == -EEXIST ? "it exists (remove it first)" : strerror(-r));
	fprintf(stderr, "the key of %s is in %s\n", name, out);
	return 0;
}

/* Run prefix with name and, if given, caps and a new key sealed for the
 * monitors.  The reply text goes to *msg. */
static int run(const struct cli *c, const char *prefix, const char *name, const char *caps,
	       const uint8_t *newkey, char **msg)
{
	char sealed[128];
	const char *kv[6];
	size_t n = 0;
	mixsan_cluster_t *cl;
	int r;

	*msg = NULL;
	if (newkey) {
		if (!c->keyfile)
			return cli_fail("no key file: give --keyfile FILE (an administrator's key)"),
			       -EINVAL;
		r = mx_client_seal_key(c->keyfile, newkey, sealed, sizeof(sealed));
		if (r < 0)
			return cli_fail("cannot seal the key with %s: %s", c->keyfile,
					r == -EPERM ? "others may read it (chmod 600 it)"
						    : strerror(-r)), r;
	}
	if (name) {
		kv[2 * n] = "name";
		kv[2 * n++ + 1] = name;
	}
	if (caps) {
		kv[2 * n] = "caps";
		kv[2 * n++ + 1] = caps;
	}
	if (newkey) {
		kv[2 * n] = "key";
		kv[2 * n++ + 1] = sealed;
	}
	if (cli_connect(c, &cl) < 0)
		return -ENOTCONN;
	r = mixsan_mon_command(cl, prefix, kv, n, msg);
	mixsan_shutdown(cl);
	if (r < 0) {
		cli_fail("%s: %s", prefix, *msg && **msg ? *msg : strerror(-r));
		free(*msg);
		*msg = NULL;
	}
	return r;
}

int cmd_auth(struct cli *c, const char *sub)
{
	char caps[MX_CAPS_MAX], *msg = NULL;
	uint8_t key[MX_KEY_LEN];
	int r;

	if (strcmp(sub, "ls") == 0) {
		if (c->argc)
			return cli_fail("usage: auth ls");
		r = run(c, "auth ls", NULL, NULL, NULL, &msg);
		if (r == 0 && msg && *msg)
			printf("%s\n", msg);
		free(msg);
		return r < 0;
	}
	if (strcmp(sub, "mon-key") == 0) {
		/* A new monitor key, for every monitor's --mon-keyfile: made
		 * here, never sent anywhere. */
		if (c->argc != 1)
			return cli_fail("usage: auth mon-key FILE");
		r = mx_key_random(key);
		if (r == 0)
			r = mx_keyfile_write(c->argv[0], "mon", key, false);
		explicit_bzero(key, sizeof(key));
		if (r < 0)
			return cli_fail("cannot write %s: %s", c->argv[0],
					r == -EEXIST ? "it exists already" : strerror(-r));
		printf("the monitor key is in %s: copy it to every monitor (--mon-keyfile)\n",
		       c->argv[0]);
		return 0;
	}
	if (c->argc < 1)
		return cli_fail("usage: auth add|caps NAME CAPS... | get|rotate|rm NAME | "
				"mon-key FILE");
	if (strcmp(sub, "add") == 0 || strcmp(sub, "caps") == 0) {
		bool add = sub[0] == 'a';

		if (join_caps(c, 1, caps, sizeof(caps)) < 0)
			return cli_fail("usage: auth %s NAME admin|osd|r|rw [pool=A,B]", sub);
		if (add && mx_key_random(key) < 0)
			return cli_fail("no random bytes for a key");
		r = run(c, add ? "auth add" : "auth caps", c->argv[0], caps, add ? key : NULL, &msg);
		if (r == 0 && msg)
			fprintf(stderr, "%s\n", msg);
		free(msg);
		if (r == 0 && add)
			r = give_key(c, c->argv[0], key, false) ? -EIO : 0;
		OPENSSL_cleanse(key, sizeof(key));
		return r < 0;
	}
	if (c->argc != 1)
		return cli_fail("usage: auth %s NAME", sub);
	if (strcmp(sub, "rotate") == 0) {
		if (mx_key_random(key) < 0)
			return cli_fail("no random bytes for a key");
		r = run(c, "auth rotate", c->argv[0], NULL, key, &msg);
		if (r == 0 && msg)
			fprintf(stderr, "%s\n", msg);
		free(msg);
		if (r == 0)
			r = give_key(c, c->argv[0], key, true) ? -EIO : 0;
		OPENSSL_cleanse(key, sizeof(key));
		return r < 0;
	}
	if (strcmp(sub, "rm") == 0) {
		r = run(c, "auth rm", c->argv[0], NULL, NULL, &msg);
		if (r == 0 && msg)
			printf("%s\n", msg);
		free(msg);
		return r < 0;
	}
	if (strcmp(sub, "get") == 0) {
		uint8_t me[MX_KEY_LEN], blob[MX_KEY_LEN + MX_SEAL_OVERHEAD];

		if (own_key(c, me))
			return 1;
		r = run(c, "auth get", c->argv[0], NULL, NULL, &msg);
		if (r == 0 && (!msg || strncmp(msg, "sealed ", 7) != 0 ||
			       mx_b64_decode(msg + 7, blob, sizeof(blob)) != (int)sizeof(blob) ||
			       mx_unseal(me, blob, sizeof(blob), key) < 0))
			r = cli_fail("auth get: the monitor's answer cannot be opened with our key") ?
				    -EBADMSG : 0;
		free(msg);
		OPENSSL_cleanse(me, sizeof(me));
		if (r == 0)
			r = give_key(c, c->argv[0], key, false) ? -EIO : 0;
		OPENSSL_cleanse(key, sizeof(key));
		return r < 0;
	}
	return cli_fail("unknown command 'auth %s' (add, ls, get, caps, rotate, rm)", sub);
}

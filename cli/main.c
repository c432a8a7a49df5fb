/*
 * mixsan: the command line for MixSAN clusters, pools, OSDs and objects.
 * This file parses the global options and dispatches to the subcommands.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void usage(FILE *f)
{
	fputs("usage: mixsan [--mon IP:PORT[,...]] [--data DIR] [--keyfile F] [--json]\n"
	      "              [--read-policy primary|balance|localize] [--location 'host=H']\n"
	      "              COMMAND ...\n"
	      "\n"
	      "Development cluster:\n"
	      "  cluster up [--osds N] [--port P] [--size S] [--mons 1|3|5] [--auth]\n"
	      "             [--osd-args 'OPTIONS']           start a local cluster in DIR;\n"
	      "                                               OPTIONS go to every OSD\n"
	      "  cluster down                                 stop it\n"
	      "  status [--watch [--count N] [--timeout S]]   cluster health; then follow events\n"
	      "Pools:\n"
	      "  pool create NAME [--size N] [--min-size N] [--pg-num N]\n"
	      "              [--failure-domain osd|host|rack|...] [--class C] [--root R]\n"
	      "  pool ls | pool get NAME [KEY] | pool set NAME KEY VALUE\n"
	      "  pool rm NAME --yes-i-really-mean-it\n"
	      "Cache tiers (docs/cache-tiering.md):\n"
	      "  pool tier add BASE CACHE [--yes-i-really-mean-it]\n"
	      "                                 CACHE (empty) fronts BASE, mode none;\n"
	      "                                 the flag if the monitor cannot tell\n"
	      "                                 whether CACHE is empty and you know it is\n"
	      "  pool tier mode CACHE writeback|readonly|none\n"
	      "                                 none drains the cache (flushes, evicts)\n"
	      "  pool tier rm BASE CACHE [--timeout S] [--yes-i-really-mean-it]\n"
	      "                                 sets mode none, waits (600 s at most)\n"
	      "                                 until the cache holds no copy, removes\n"
	      "                                 the tier; the flag removes it at once,\n"
	      "                                 losing the writes dirty copies hold\n"
	      "  pool set CACHE KEY VALUE       target_max_bytes, target_max_objects (0: unset),\n"
	      "                                 cache_target_dirty_ratio, cache_target_full_ratio\n"
	      "                                 (0-1, dirty <= full), promote_min_hits (1-16),\n"
	      "                                 hit_period_s (1-3600)\n"
	      "OSDs:\n"
	      "  osd ls | osd tree | osd out ID | osd in ID | osd down ID\n"
	      "  osd reweight ID WEIGHT | osd rm ID\n"
	      "Monitors:\n"
	      "  mon status                     this monitor's view of the quorum\n"
	      "  mon add NAME IP:PORT RAFT_IP:PORT   add a monitor started with --join\n"
	      "  mon rm NAME                    remove a monitor from the quorum\n"
	      "Keys (docs/auth.md; the key file from --keyfile, $MIXSAN_KEYFILE,\n"
	      "'keyfile = ' in DIR/mixsan.conf or DIR/client.admin.key):\n"
	      "  auth add NAME CAPS [--out F]   new entity (client.X or osd.N); CAPS:\n"
	      "                                 admin | osd | r|rw [pool=A,B]\n"
	      "  auth ls | auth get NAME [--out F] | auth caps NAME CAPS\n"
	      "  auth rotate NAME [--out F]     a new key (the old one stops working)\n"
	      "  auth rm NAME                   revoke\n"
	      "  auth mon-key FILE              a new monitor key (mixsan-mon --mon-keyfile)\n"
	      "Placement:\n"
	      "  balancer run [POOL] [--max-deviation 0.05]   even out PGs per OSD\n"
	      "Objects:\n"
	      "  object put POOL NAME FILE|-    object get POOL NAME FILE|-\n"
	      "  object rm POOL NAME            object ls POOL\n"
	      "  object stat POOL NAME          object locate POOL NAME\n"
	      "Volumes (POOL/NAME; sizes like 10G, 512M):\n"
	      "  volume create POOL/NAME --size SIZE [--object-size 4M]\n"
	      "  volume ls POOL                 volume info POOL/NAME\n"
	      "  volume du POOL[/NAME]          volume rm POOL/NAME\n"
	      "  volume resize POOL/NAME --size SIZE [--yes-i-really-mean-it to shrink]\n"
	      "  volume import FILE|- POOL/NAME volume export POOL/NAME[@SNAP] FILE|-\n"
	      "  volume snap create|ls|rm|rollback|protect|unprotect POOL/NAME[@SNAP]\n"
	      "  volume clone POOL/NAME@SNAP POOL/CLONE    volume flatten POOL/CLONE\n"
	      "  volume locate POOL/NAME [OFFSET]   the OSD and host primary for that byte\n"
	      "Placement groups (PG in hex, as object locate prints it after the dot):\n"
	      "  pg ls [POOL] [--state S]       every PG: state, primary, objects\n"
	      "  pg scrub POOL PG               compare versions, sizes, attributes\n"
	      "  pg deep-scrub POOL PG          also read and compare all data\n"
	      "  pg repair POOL PG              deep-scrub and fix bad copies\n"
	      "\n"
	      "The monitor is found from --mon, $MIXSAN_MON, or DIR/mixsan.conf where\n"
	      "DIR is --data, $MIXSAN_DATA or ./mixsan-data.  Listings take --json.\n",
	      f);
}

const char *cli_errstr(int r)
{
	if (r == -EPERM)
		return "permission denied (the key's capabilities do not allow it)";
	return strerror(-r);
}

int cli_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("mixsan: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

const char *cli_opt(const struct cli *c, const char *key)
{
	for (int i = 0; i < c->n_opts; i++)
		if (strcmp(c->opt_keys[i], key) == 0)
			return c->opt_vals[i];
	return NULL;
}

static char conf_key[4096];
static char conf_mon[256];

/* The value of "key = value" in DIR/mixsan.conf, into buf; NULL if absent. */
static const char *resolve_conf(const char *data, const char *key, char *buf, size_t sz)
{
	char path[4096], want[64];
	size_t kl = (size_t)snprintf(want, sizeof(want), "%s = ", key);
	FILE *f;

	snprintf(path, sizeof(path), "%s/mixsan.conf", data);
	f = fopen(path, "re");
	if (!f)
		return NULL;
	while (fgets(buf, (int)sz, f)) {
		if (strncmp(buf, want, kl) == 0) {
			memmove(buf, buf + kl, strlen(buf + kl) + 1);
			buf[strcspn(buf, "\r\n")] = '\0';
			fclose(f);
			return buf;
		}
	}
	fclose(f);
	return NULL;
}

int cli_connect(const struct cli *c, mixsan_cluster_t **out)
{
	struct mixsan_options o = {.connect_timeout_ms = 5000, .op_timeout_ms = 30000,
				   .keyfile = c->keyfile, .read_policy = c->read_policy,
				   .location = c->location};
	int r = mixsan_connect(c->mon, &o, out);

	if (r < 0) {
		const char *why = mixsan_connect_error();

		if (r == -EACCES)
			return cli_fail("the cluster at %s refused us: %s", c->mon, why), r;
		return cli_fail("cannot reach the monitor at %s: %s", c->mon,
				*why ? why : strerror(-r)), r;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct cli c;
	char *words[64];
	int nw = 0;
	const char *mon = NULL;

	memset(&c, 0, sizeof(c));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--json") == 0) {
			c.json = true;
		} else if (strcmp(a, "--yes-i-really-mean-it") == 0) {
			c.yes = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--read-policy") == 0 || strcmp(a, "--location") == 0) {
			static const char *const names[] = {"default", "primary", "balance",
							    "localize"};

			if (i + 1 >= argc)
				return cli_fail("%s needs a value", a);
			if (a[2] == 'l') {
				c.location = argv[++i];
				continue;
			}
			c.read_policy = -1;
			for (int k = 0; k < 4; k++)
				if (strcmp(argv[i + 1], names[k]) == 0)
					c.read_policy = k;
			if (c.read_policy < 0)
				return cli_fail("--read-policy: default, primary, balance or localize");
			i++;
		} else if (strcmp(a, "--mon") == 0 || strcmp(a, "--data") == 0 ||
			   strcmp(a, "--keyfile") == 0) {
			if (i + 1 >= argc)
				return cli_fail("%s needs a value", a);
			if (a[2] == 'm')
				mon = argv[++i];
			else if (a[2] == 'k')
				c.keyfile = argv[++i];
			else
				c.data = argv[++i];
		} else if (strcmp(a, "--watch") == 0 || strcmp(a, "--auth") == 0) {
			if (c.n_opts < 32) {
				c.opt_keys[c.n_opts] = a + 2;
				c.opt_vals[c.n_opts++] = "1";
			}
		} else if (strncmp(a, "--", 2) == 0 && a[2]) {
			if (i + 1 >= argc)
				return cli_fail("%s needs a value", a);
			if (c.n_opts >= 32)
				return cli_fail("too many options");
			c.opt_keys[c.n_opts] = a + 2;
			c.opt_vals[c.n_opts++] = argv[++i];
		} else {
			if (nw >= 64)
				return cli_fail("too many arguments");
			words[nw++] = argv[i];
		}
	}
	if (!c.data)
		c.data = getenv("MIXSAN_DATA");
	if (!c.data)
		c.data = "mixsan-data";
	if (!mon)
		mon = getenv("MIXSAN_MON");
	if (!mon)
		mon = resolve_conf(c.data, "mon", conf_mon, sizeof(conf_mon));
	/* The key: --keyfile, $MIXSAN_KEYFILE, "keyfile = " in the folder's
	 * mixsan.conf, or DIR/client.admin.key when it exists. */
	if (!c.keyfile)
		c.keyfile = getenv("MIXSAN_KEYFILE");
	if (!c.keyfile)
		c.keyfile = resolve_conf(c.data, "keyfile", conf_key, sizeof(conf_key));
	if (!c.keyfile) {
		snprintf(conf_key, sizeof(conf_key), "%s/client.admin.key", c.data);
		if (access(conf_key, F_OK) == 0)
			c.keyfile = conf_key;
	}
	c.mon = mon ? mon : "127.0.0.1:6789";
	if (nw == 0) {
		usage(stderr);
		return 2;
	}
	c.argc = nw > 2 ? nw - 2 : 0;
	c.argv = words + 2;
	if (strcmp(words[0], "status") == 0) {
		c.argc = nw - 1;
		c.argv = words + 1;
		return cmd_status(&c);
	}
	if (nw < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(words[0], "cluster") == 0)
		return cmd_cluster(&c, words[1]);
	if (strcmp(words[0], "pool") == 0)
		return cmd_pool(&c, words[1]);
	if (strcmp(words[0], "osd") == 0)
		return cmd_osd(&c, words[1]);
	if (strcmp(words[0], "object") == 0)
		return cmd_object(&c, words[1]);
	if (strcmp(words[0], "volume") == 0)
		return cmd_volume(&c, words[1]);
	if (strcmp(words[0], "pg") == 0)
		return cmd_pg(&c, words[1]);
	if (strcmp(words[0], "balancer") == 0)
		return cmd_balancer(&c, words[1]);
	if (strcmp(words[0], "mon") == 0)
		return cmd_mon(&c, words[1]);
	if (strcmp(words[0], "auth") == 0)
		return cmd_auth(&c, words[1]);
	usage(stderr);
	return 2;
}

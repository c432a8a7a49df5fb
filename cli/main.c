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
	fputs("usage: mixsan [--mon IP:PORT[,...]] [--data DIR] [--json] COMMAND ...\n"
	      "\n"
	      "Development cluster:\n"
	      "  cluster up [--osds N] [--port P] [--size S] [--mons 1|3|5]\n"
	      "                                               start a local cluster in DIR\n"
	      "  cluster down                                 stop it\n"
	      "  status [--watch [--count N] [--timeout S]]   cluster health; then follow events\n"
	      "Pools:\n"
	      "  pool create NAME [--size N] [--min-size N] [--pg-num N]\n"
	      "              [--failure-domain osd|host|rack|...] [--class C] [--root R]\n"
	      "  pool ls | pool get NAME [KEY] | pool set NAME KEY VALUE\n"
	      "  pool rm NAME --yes-i-really-mean-it\n"
	      "OSDs:\n"
	      "  osd ls | osd tree | osd out ID | osd in ID | osd down ID\n"
	      "  osd reweight ID WEIGHT | osd rm ID\n"
	      "Monitors:\n"
	      "  mon status                     this monitor's view of the quorum\n"
	      "  mon add NAME IP:PORT RAFT_IP:PORT   add a monitor started with --join\n"
	      "  mon rm NAME                    remove a monitor from the quorum\n"
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

static char conf_mon[256];

static const char *resolve_mon(const char *data)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/mixsan.conf", data);
	f = fopen(path, "re");
	if (!f)
		return NULL;
	while (fgets(conf_mon, sizeof(conf_mon), f)) {
		if (strncmp(conf_mon, "mon = ", 6) == 0) {
			memmove(conf_mon, conf_mon + 6, strlen(conf_mon + 6) + 1);
			conf_mon[strcspn(conf_mon, "\r\n")] = '\0';
			fclose(f);
			return conf_mon;
		}
	}
	fclose(f);
	return NULL;
}

int cli_connect(const struct cli *c, mixsan_cluster_t **out)
{
	struct mixsan_options o = {.connect_timeout_ms = 5000, .op_timeout_ms = 30000};
	int r = mixsan_connect(c->mon, &o, out);

	if (r < 0)
		return cli_fail("cannot reach the monitor at %s: %s", c->mon, strerror(-r)), r;
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
		} else if (strcmp(a, "--mon") == 0 || strcmp(a, "--data") == 0) {
			if (i + 1 >= argc)
				return cli_fail("%s needs a value", a);
			if (a[2] == 'm')
				mon = argv[++i];
			else
				c.data = argv[++i];
		} else if (strcmp(a, "--watch") == 0) {
			if (c.n_opts < 32) {
				c.opt_keys[c.n_opts] = "watch";
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
		mon = resolve_mon(c.data);
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
	usage(stderr);
	return 2;
}

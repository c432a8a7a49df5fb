/*
 * The mixsan command line: shared state and helpers of its subcommands.
 */
#ifndef MX_CLI_H
#define MX_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "mixsan/mixsan.h"

struct cli {
	const char *mon;  /* monitor address(es), resolved */
	const char *data; /* development cluster folder */
	const char *keyfile; /* our key (docs/auth.md), or NULL */
	int read_policy;  /* MIXSAN_READ_* (docs/read-policies.md) */
	const char *location; /* ours, for localize; or NULL */
	bool json;
	bool yes;         /* --yes-i-really-mean-it */
	int argc;         /* positional words after the subcommand */
	char **argv;
	/* --key value options after the subcommand */
	int n_opts;
	const char *opt_keys[32];
	const char *opt_vals[32];
};

/* The value of option --key, or NULL. */
const char *cli_opt(const struct cli *c, const char *key);
/* Connect to the cluster (prints the reason on failure). */
int cli_connect(const struct cli *c, mixsan_cluster_t **out);
/* "1.5 GiB", "512 B" */
void human_bytes(double v, char *buf, size_t sz);
/* strerror(-r), with a hint for a refusal by capabilities (EPERM). */
const char *cli_errstr(int r);
/* Print "mixsan: ..." to stderr and return 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int cmd_cluster(struct cli *c, const char *sub);
int cmd_status(struct cli *c);
int cmd_pool(struct cli *c, const char *sub);
int cmd_osd(struct cli *c, const char *sub);
int cmd_object(struct cli *c, const char *sub);
int cmd_balancer(struct cli *c, const char *sub);
int cmd_mon(struct cli *c, const char *sub);
int cmd_auth(struct cli *c, const char *sub);
int cmd_pg(struct cli *c, const char *sub);
int cmd_volume(struct cli *c, const char *sub);

#endif

/*
 * mixsan-osd's command line: parse options, then run the daemon.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "log.h"
#include "map.h"
#include "osd.h"

static void usage(FILE *f)
{
	fputs("usage: mixsan-osd --data DIR --mon IP:PORT[,IP:PORT...] [--addr IP:PORT] [--id N]\n"
	      "                  [--weight W] [--location 'host=H rack=R'] [--class C]\n"
	      "                  [--keyfile FILE (default DIR/keyring, if there)]\n"
	      "                  [--log-level error|warn|info|debug]\n"
	      "                  [--heartbeat-interval MS] [--heartbeat-grace MS]\n"
	      "                  [--pg-log-max N] [--wal-mib N] [--sync-inline] [--no-clone]\n"
	      "                  [--scrub-interval S] [--deep-scrub-interval S]\n"
	      "                  [--recovery-max-active N] [--recovery-max-active-busy N]\n"
	      "                  [--recovery-max-rate MIB_S] [--recovery-busy-rate MIB_S]\n"
	      "                  [--failsafe-full-ratio R] [--no-primary-temp]\n"
	      "                  [--agent-interval MS]\n"
	      "Scrub intervals are in seconds (default 86400 and 604800; 0: never).\n"
	      "Recovery keeps up to N pushes or pulls in flight (default 8; 1 while\n"
	      "clients use the OSD) and, while clients use it, at most the busy rate\n"
	      "(default 8 MiB/s); the max rate always applies (default 0: no limit).\n"
	      "New data is refused once the disk is R full (default 0.97; 0: never).\n"
	      "A primary missing its copy hands the lead to the authority meanwhile\n"
	      "(a primary_temp) unless --no-primary-temp.\n"
	      "The write-ahead log takes N MiB before a checkpoint (default 256).\n"
	      "Durable commits sync the log on a worker thread while the loop logs\n"
	      "the next ones; --sync-inline syncs on the loop instead.\n"
	      "Where the file system clones (XFS, btrfs), large whole-block writes\n"
	      "are applied by cloning the log's blocks, written once; --no-clone\n"
	      "copies them instead.\n"
	      "The tiering agent flushes and evicts cache-pool objects every MS\n"
	      "(default 1000) while the cluster has a cache tier.\n"
	      "Stores MixSAN objects under DIR and serves them on IP:PORT\n"
	      "(default 127.0.0.1:0, any free port).\n", f);
}

#define INTERVAL_MAX_S (100ul * 365 * 86400) /* scrub intervals: a century */

/*
 * A whole number of option --name, lo to hi: 0 and *out, or -1 after
 * saying what the option takes.
 */
static int parse_count(const char *name, const char *arg, unsigned long lo, unsigned long hi,
		       uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (*arg < '0' || *arg > '9' || *end || errno || v < lo || v > hi) {
		fprintf(stderr, "mixsan-osd: --%s takes %lu to %lu, not '%s'\n", name, lo, hi,
			arg);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"data", required_argument, NULL, 'd'},
		{"mon", required_argument, NULL, 'm'},
		{"keyfile", required_argument, NULL, 'k'},
		{"addr", required_argument, NULL, 'a'},
		{"id", required_argument, NULL, 'i'},
		{"weight", required_argument, NULL, 'w'},
		{"location", required_argument, NULL, 'L'},
		{"class", required_argument, NULL, 'c'},
		{"log-level", required_argument, NULL, 'l'},
		{"heartbeat-interval", required_argument, NULL, 'H'},
		{"heartbeat-grace", required_argument, NULL, 'G'},
		{"pg-log-max", required_argument, NULL, 'P'},
		{"wal-mib", required_argument, NULL, 'W'},
		{"sync-inline", no_argument, NULL, 'I'},
		{"no-clone", no_argument, NULL, 'C'},
		{"scrub-interval", required_argument, NULL, 'S'},
		{"deep-scrub-interval", required_argument, NULL, 'D'},
		{"recovery-max-active", required_argument, NULL, 'A'},
		{"recovery-max-active-busy", required_argument, NULL, 'B'},
		{"recovery-max-rate", required_argument, NULL, 'R'},
		{"recovery-busy-rate", required_argument, NULL, 'r'},
		{"failsafe-full-ratio", required_argument, NULL, 'F'},
		{"no-primary-temp", no_argument, NULL, 'T'},
		{"agent-interval", required_argument, NULL, 'g'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const char *levels[] = {"error", "warn", "info", "debug"};
	struct mx_osd_config cfg = {
		.addr = "127.0.0.1:0",
		.location = "",
		.device_class = "",
		.id = -1,
		.scrub_interval_s = 86400,
		.deep_scrub_interval_s = 604800,
		.recovery_max_active = 8,
		.recovery_max_active_busy = 1,
		.recovery_busy_rate = 8ull << 20,
		.failsafe_full_ratio = 0.97,
	};
	char hostloc[128];
	struct mx_loc loc[MX_LOC_MAX];
	uint8_t nloc;
	int level = MX_LOG_INFO, c;
	uint32_t u;
	char *end;

	/*
	 * Messages and staged writes of up to a few MiB are allocated and
	 * freed all the time.  glibc would serve each from a fresh mmap (or
	 * hand the top of its heap back after each), so every 1 MiB write
	 * would fault in and zero 256 pages.  Served from the heap, and up
	 * to 16 MiB of free heap kept, they reuse memory already mapped
	 * (docs/performance.md, "Where the time goes").
	 */
	(void)mallopt(M_MMAP_THRESHOLD, 8 << 20);
	(void)mallopt(M_TRIM_THRESHOLD, 16 << 20);
	while ((c = getopt_long(argc, argv, "d:m:a:i:w:L:c:l:H:G:P:W:ICS:D:A:B:R:r:F:Tg:h", opts,
				NULL)) != -1) {
		switch (c) {
		case 'd': cfg.data_dir = optarg; break;
		case 'm': cfg.mon_addr = optarg; break;
		case 'k': cfg.keyfile = optarg; break;
		case 'a': cfg.addr = optarg; break;
		case 'i':
			if (parse_count("id", optarg, 0, INT32_MAX, &u))
				return 2;
			cfg.id = (int32_t)u;
			break;
		case 'w': {
			double w = strtod(optarg, &end);

			if (*end || !(w > 0.0) || w > 65535.0) {
				fprintf(stderr, "mixsan-osd: bad weight '%s'\n", optarg);
				return 2;
			}
			cfg.weight = (uint32_t)(w * (double)MX_WEIGHT_ONE + 0.5);
			break;
		}
		case 'L': cfg.location = optarg; break;
		case 'c':
			if (*optarg && !mx_valid_name(optarg)) {
				fprintf(stderr, "mixsan-osd: bad device class '%s'\n", optarg);
				return 2;
			}
			cfg.device_class = optarg;
			break;
		case 'l':
			level = -1;
			for (int i = 0; i < 4; i++)
				if (strcmp(optarg, levels[i]) == 0)
					level = i;
			if (level < 0) {
				usage(stderr);
				return 2;
			}
			break;
		case 'g':
			if (parse_count("agent-interval", optarg, 1, 3600000, &cfg.agent_interval_ms))
				return 2;
			break;
		case 'H':
			if (parse_count("heartbeat-interval", optarg, 1, 3600000,
					&cfg.heartbeat_interval_ms))
				return 2;
			break;
		case 'G':
			if (parse_count("heartbeat-grace", optarg, 1, 3600000, &cfg.heartbeat_grace_ms))
				return 2;
			break;
		case 'P':
			/* Tests use a small bound so that logs trim fast. */
			if (parse_count("pg-log-max", optarg, 1, 1000000, &cfg.pg_log_max))
				return 2;
			break;
		case 'W':
			if (parse_count("wal-mib", optarg, 1, 65536, &cfg.wal_mib))
				return 2;
			break;
		case 'I':
			cfg.sync_inline = true;
			break;
		case 'C':
			cfg.no_clone = true;
			break;
		case 'S':
			if (parse_count("scrub-interval", optarg, 0, INTERVAL_MAX_S,
					&cfg.scrub_interval_s))
				return 2;
			break;
		case 'D':
			if (parse_count("deep-scrub-interval", optarg, 0, INTERVAL_MAX_S,
					&cfg.deep_scrub_interval_s))
				return 2;
			break;
		case 'A':
			if (parse_count("recovery-max-active", optarg, 1, 64, &cfg.recovery_max_active))
				return 2;
			break;
		case 'B':
			if (parse_count("recovery-max-active-busy", optarg, 1, 64,
					&cfg.recovery_max_active_busy))
				return 2;
			break;
		case 'R':
		case 'r': {
			double v = strtod(optarg, &end);

			if (!*optarg || *end || !(v >= 0) || v > 1e6) {
				fprintf(stderr, "mixsan-osd: bad rate '%s' (MiB/s; 0: no limit)\n",
					optarg);
				return 2;
			}
			if (c == 'R')
				cfg.recovery_max_rate = (uint64_t)(v * 1048576.0);
			else
				cfg.recovery_busy_rate = (uint64_t)(v * 1048576.0);
			break;
		}
		case 'F': {
			double v = strtod(optarg, &end);

			if (!*optarg || *end || !(v >= 0) || v > 1) {
				fprintf(stderr, "mixsan-osd: bad ratio '%s' (0 to 1; 0: off)\n",
					optarg);
				return 2;
			}
			cfg.failsafe_full_ratio = v;
			break;
		}
		case 'T': cfg.no_primary_temp = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!cfg.data_dir || !cfg.mon_addr || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!cfg.location[0]) {
		char host[64] = "localhost";

		(void)gethostname(host, sizeof(host) - 1);
		for (char *p = host; *p; p++)
			if (!mx_valid_name((char[]){*p, 0}))
				*p = '-';
		snprintf(hostloc, sizeof(hostloc), "host=%s", host);
		cfg.location = hostloc;
	}
	if (mx_loc_parse(cfg.location, loc, &nloc) < 0) {
		fprintf(stderr, "mixsan-osd: bad location '%s'\n", cfg.location);
		return 2;
	}
	mx_log_init("mixsan-osd", level);
	signal(SIGPIPE, SIG_IGN);
	{
		/* Clients, peers, the store's 256 cached data files and a
		 * checkpoint's files synced at once: as many descriptors as
		 * the system lets us have. */
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	return mx_osd_run(&cfg) < 0 ? 1 : 0;
}

/*
 * `mixsan cluster up|down`: a local development cluster under one folder.
 *
 * Layout of DIR: mixsan.conf (the monitor's address), mon/ (its map),
 * osd.N/ (each OSD's data), log/ (one log per daemon), run/ (pid files).
 * Daemons are started detached (their own session, output to log/), so the
 * cluster outlives the command.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "cli.h"
#include "internal.h"
#include "map.h"
#include "util.h"

/* Find a daemon binary: beside this program, in the build tree's layout,
 * or on PATH. */
static void find_binary(const char *name, const char *sub, char *out, size_t sz)
{
	char self[PATH_MAX - 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(out, sz, "%s/%s", self, name);
			if (access(out, X_OK) == 0)
				return;
			snprintf(out, sz, "%s/../%s/%s", self, sub, name);
			if (access(out, X_OK) == 0)
				return;
		}
	}
	snprintf(out, sz, "%s", name);
}

static pid_t read_pid(const char *path)
{
	FILE *f = fopen(path, "re");
	long pid = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return (pid_t)pid;
}

static bool alive(pid_t pid)
{
	return pid > 0 && kill(pid, 0) == 0;
}

/* Start argv detached, output to logpath, pid into pidpath. */
static int spawn(char *const argv[], const char *logpath, const char *pidpath)
{
	pid_t pid = fork();
	FILE *f;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);

		setsid();
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (nul >= 0)
			dup2(nul, 0);
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	f = fopen(pidpath, "we");
	if (!f)
		return -errno;
	fprintf(f, "%ld\n", (long)pid);
	fclose(f);
	return 0;
}

static int count_up(mixsan_cluster_t *cl)
{
	struct mx_map *m = mx_client_map_copy(cl);
	int n = 0;

	if (!m)
		return 0;
	for (uint32_t i = 0; i < m->max_osd; i++)
		n += m->osds[i].exists && m->osds[i].up;
	mx_map_free(m);
	return n;
}

/* Words of --osd-args at most. */
#define OSD_ARGS_MAX 16

static int cluster_up(struct cli *c)
{
	const char *v;
	long n_osds = 3, port = 6789, size, n_mons = 0;
	bool auth = cli_opt(c, "auth") != NULL;
	char keyfile[4200], monkey[4200] = "";
	char path[4200], bin_mon[PATH_MAX], bin_osd[PATH_MAX], addr[400], mondir[4200];
	char spec[800];
	char logp[4200], pidp[4200], datadir[4200];
	mixsan_cluster_t *cl = NULL;
	char extra_buf[1024], *extra[OSD_ARGS_MAX + 1] = {NULL};
	int n_extra = 0;
	FILE *f;
	int r;

	if ((v = cli_opt(c, "osd-args"))) {
		/* Options for every OSD, split at blanks. */
		size_t len = strlen(v);

		if (len >= sizeof(extra_buf))
			return cli_fail("--osd-args is too long");
		memcpy(extra_buf, v, len + 1);
		for (char *save = NULL, *w = strtok_r(extra_buf, " \t", &save); w;
		     w = strtok_r(NULL, " \t", &save)) {
			if (n_extra == OSD_ARGS_MAX)
				return cli_fail("--osd-args takes at most %d words", OSD_ARGS_MAX);
			extra[n_extra++] = w;
		}
	}
	if ((v = cli_opt(c, "osds"))) {
		n_osds = strtol(v, NULL, 10);
		if (n_osds < 1 || n_osds > 64)
			return cli_fail("--osds must be 1 to 64");
	}
	if ((v = cli_opt(c, "port"))) {
		port = strtol(v, NULL, 10);
		if (port < 1 || port > 65535)
			return cli_fail("--port must be 1 to 65535");
	}
	if ((v = cli_opt(c, "mons"))) {
		n_mons = strtol(v, NULL, 10);
		if (n_mons != 1 && n_mons != 3 && n_mons != 5)
			return cli_fail("--mons must be 1, 3 or 5");
		if (port + 2 * n_mons > 65536)
			return cli_fail("--port too high for %ld monitors", n_mons);
	}
	size = n_osds < 3 ? n_osds : 3;
	if ((v = cli_opt(c, "size"))) {
		size = strtol(v, NULL, 10);
		if (size < 1 || size > n_osds || size > MX_MAX_SIZE)
			return cli_fail("--size must be 1 to the number of OSDs");
	}
	snprintf(pidp, sizeof(pidp), "%s/run/mon.pid", c->data);
	snprintf(path, sizeof(path), "%s/run/mon.a.pid", c->data);
	if (alive(read_pid(pidp)) || alive(read_pid(path)))
		return cli_fail("a cluster is already running in %s (mixsan --data %s cluster "
				"down stops it)", c->data, c->data);
	r = mx_mkdir_p(c->data, 0700);
	if (r < 0)
		return cli_fail("cannot create %s: %s", c->data, strerror(-r));
	snprintf(path, sizeof(path), "%s/log", c->data);
	(void)mx_mkdir_p(path, 0700);
	snprintf(path, sizeof(path), "%s/run", c->data);
	(void)mx_mkdir_p(path, 0700);

	/* A quorum: monitor i on port + 2i, its Raft service on the next. */
	snprintf(addr, sizeof(addr), "127.0.0.1:%ld", port);
	spec[0] = '\0';
	for (long i = 0, at = 0, sat = 0; i < n_mons; i++) {
		at += snprintf(addr + at, sizeof(addr) - (size_t)at, "%s127.0.0.1:%ld", i ? "," : "",
			       port + 2 * i);
		sat += snprintf(spec + sat, sizeof(spec) - (size_t)sat,
				"%s%c=127.0.0.1:%ld/127.0.0.1:%ld", i ? "," : "", (char)('a' + i),
				port + 2 * i, port + 2 * i + 1);
	}
	snprintf(path, sizeof(path), "%s/mixsan.conf", c->data);
	f = fopen(path, "we");
	if (!f)
		return cli_fail("cannot write %s: %s", path, strerror(errno));
	fprintf(f, "# MixSAN development cluster\nmon = %s\n", addr);
	snprintf(keyfile, sizeof(keyfile), "%s/client.admin.key", c->data);
	if (auth)
		fprintf(f, "keyfile = %s\n", keyfile);
	fclose(f);

	if (auth && n_mons > 0) {
		/* The monitor key of the Raft links, the same for all. */
		uint8_t key[MX_KEY_LEN];

		snprintf(monkey, sizeof(monkey), "%s/mon.key", c->data);
		r = mx_key_random(key);
		if (r == 0)
			r = mx_keyfile_write(monkey, "mon", key, false);
		explicit_bzero(key, sizeof(key));
		if (r < 0 && r != -EEXIST)
			return cli_fail("cannot write %s: %s", monkey, strerror(-r));
	}
	find_binary("mixsan-mon", "mon", bin_mon, sizeof(bin_mon));
	find_binary("mixsan-osd", "osd", bin_osd, sizeof(bin_osd));
	snprintf(mondir, sizeof(mondir), "%s/mon", c->data);
	snprintf(logp, sizeof(logp), "%s/log/mon.log", c->data);
	if (n_mons == 0) {
		char *argv[] = {bin_mon, "--data", mondir, "--addr", addr, "--auth",
				"--admin-keyfile", keyfile, NULL};

		if (!auth)
			argv[5] = NULL;
		r = spawn(argv, logp, pidp);
		if (r < 0)
			return cli_fail("cannot start the monitor: %s", strerror(-r));
	}
	for (long i = 0; i < n_mons; i++) {
		char name[2] = {(char)('a' + i), 0};
		char *argv[] = {bin_mon, "--data", mondir, "--name", name, "--mons", spec,
				"--auth", "--admin-keyfile", keyfile, "--mon-keyfile", monkey, NULL};

		if (!auth)
			argv[7] = NULL;
		snprintf(mondir, sizeof(mondir), "%s/mon.%s", c->data, name);
		snprintf(logp, sizeof(logp), "%s/log/mon.%s.log", c->data, name);
		snprintf(pidp, sizeof(pidp), "%s/run/mon.%s.pid", c->data, name);
		(void)mx_mkdir_p(mondir, 0700);
		r = spawn(argv, logp, pidp);
		if (r < 0)
			return cli_fail("cannot start mon.%s: %s", name, strerror(-r));
	}
	if (auth) {
		/* The first map makes the admin key; with it, a key for each OSD. */
		struct mixsan_options o = {.connect_timeout_ms = 10000, .op_timeout_ms = 30000,
					   .keyfile = keyfile};

		for (int t = 0; t < 100 && access(keyfile, F_OK) != 0; t++)
			usleep(100000);
		r = mixsan_connect(addr, &o, &cl);
		if (r < 0)
			return cli_fail("the monitor did not come up (see %s/log/): %s", c->data,
					*mixsan_connect_error() ? mixsan_connect_error() : strerror(-r));
		for (long i = 0; i < n_osds; i++) {
			char name[32], kf[4300];

			snprintf(datadir, sizeof(datadir), "%s/osd.%ld", c->data, i);
			(void)mx_mkdir_p(datadir, 0700);
			snprintf(kf, sizeof(kf), "%s/keyring", datadir);
			snprintf(name, sizeof(name), "osd.%ld", i);
			if (access(kf, F_OK) == 0)
				continue;
			r = mx_client_auth_add(cl, keyfile, name, "osd", kf);
			if (r < 0) {
				mixsan_shutdown(cl);
				return cli_fail("cannot make the key of %s: %s", name, strerror(-r));
			}
		}
		mixsan_shutdown(cl);
		cl = NULL;
	}
	for (long i = 0; i < n_osds; i++) {
		char id[16];

		snprintf(id, sizeof(id), "%ld", i);
		snprintf(datadir, sizeof(datadir), "%s/osd.%ld", c->data, i);
		snprintf(logp, sizeof(logp), "%s/log/osd.%ld.log", c->data, i);
		snprintf(pidp, sizeof(pidp), "%s/run/osd.%ld.pid", c->data, i);
		if (alive(read_pid(pidp)))
			continue;
		{
			char *argv[8 + OSD_ARGS_MAX] = {bin_osd, "--data", datadir, "--mon", addr,
							"--id", id};

			for (int k = 0; k <= n_extra; k++)
				argv[7 + k] = extra[k]; /* NULL-terminated */
			r = spawn(argv, logp, pidp);
			if (r < 0)
				return cli_fail("cannot start osd.%ld: %s", i, strerror(-r));
		}
	}
	/* Wait for the monitor and every OSD. */
	{
		struct mixsan_options o = {.connect_timeout_ms = 10000, .op_timeout_ms = 30000,
					   .keyfile = auth ? keyfile : NULL};

		r = mixsan_connect(addr, &o, &cl);
		if (r < 0)
			return cli_fail("the monitor did not come up (see %s/log/mon.log): %s",
					c->data, strerror(-r));
	}
	for (int t = 0; t < 300 && count_up(cl) < n_osds; t++)
		usleep(100000);
	if (count_up(cl) < n_osds) {
		mixsan_shutdown(cl);
		return cli_fail("only %d of %ld OSDs came up (see %s/log/)", count_up(cl), n_osds,
				c->data);
	}
	{
		struct mx_map *m = mx_client_map_copy(cl);
		bool have = m && mx_map_pool_by_name(m, "default");

		mx_map_free(m);
		if (!have) {
			char sz[8], ms[8];
			const char *kv[] = {"name", "default", "size", sz, "min_size", ms,
					    "pg_num", "128", "failure_domain", "osd"};
			char *msg = NULL;

			snprintf(sz, sizeof(sz), "%ld", size);
			snprintf(ms, sizeof(ms), "%ld", size - size / 2);
			r = mixsan_mon_command(cl, "pool create", kv, 5, &msg);
			if (r < 0) {
				mixsan_shutdown(cl);
				r = cli_fail("cannot create the default pool: %s", msg ? msg : "");
				free(msg);
				return r;
			}
			free(msg);
		}
	}
	mixsan_shutdown(cl);
	printf("MixSAN cluster up in %s: monitor%s %s, %ld OSDs, pool 'default' (size %ld)%s\n",
	       c->data, n_mons > 1 ? "s" : "", addr, n_osds, size,
	       auth ? ", keys required (admin key in client.admin.key)" : "");
	return 0;
}

static int stop_pidfile(const char *pidp, const char *what)
{
	pid_t pid = read_pid(pidp);

	if (!alive(pid)) {
		(void)unlink(pidp);
		return 0;
	}
	(void)kill(pid, SIGTERM);
	for (int t = 0; t < 100 && alive(pid); t++) {
		(void)waitpid(pid, NULL, WNOHANG);
		usleep(100000);
	}
	if (alive(pid)) {
		fprintf(stderr, "mixsan: %s did not stop in 10 s; killing it\n", what);
		(void)kill(pid, SIGKILL);
		/* Gone, and its folder's lock with it, before a next
		 * cluster up starts another on the same folder. */
		for (int t = 0; t < 50 && alive(pid); t++)
			usleep(100000);
		if (alive(pid))
			fprintf(stderr, "mixsan: %s (pid %ld) is still there 5 s after SIGKILL\n",
				what, (long)pid);
	}
	(void)unlink(pidp);
	return 1;
}

static int cluster_down(struct cli *c)
{
	char pidp[4200];
	int stopped = 0;

	for (int i = 0; i < 64; i++) {
		char what[32];

		snprintf(pidp, sizeof(pidp), "%s/run/osd.%d.pid", c->data, i);
		snprintf(what, sizeof(what), "osd.%d", i);
		stopped += stop_pidfile(pidp, what);
	}
	snprintf(pidp, sizeof(pidp), "%s/run/mon.pid", c->data);
	stopped += stop_pidfile(pidp, "the monitor");
	for (int i = 0; i < 5; i++) {
		char what[16];

		snprintf(pidp, sizeof(pidp), "%s/run/mon.%c.pid", c->data, 'a' + i);
		snprintf(what, sizeof(what), "mon.%c", 'a' + i);
		stopped += stop_pidfile(pidp, what);
	}
	printf("MixSAN cluster in %s stopped (%d daemons)\n", c->data, stopped);
	return 0;
}

int cmd_cluster(struct cli *c, const char *sub)
{
	if (strcmp(sub, "up") == 0)
		return cluster_up(c);
	if (strcmp(sub, "down") == 0)
		return cluster_down(c);
	return cli_fail("unknown command 'cluster %s' (up, down)", sub);
}

/*
 * The system-test harness (see harness.h).
 */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "internal.h"
#include "map.h"
#include "msg.h"
#include "net.h"

int h_failures;

uint64_t h_rand(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

void h_fill(uint64_t seed, void *buf, size_t len)
{
	uint8_t *p = buf;
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t v = h_rand(&s);

		memcpy(p + i, &v, 8);
	}
	if (i < len) {
		uint64_t v = h_rand(&s);

		memcpy(p + i, &v, len - i);
	}
}

static const char *build_root(void)
{
	const char *b = getenv("MIXSAN_BUILD_ROOT");

	return b ? b : ".";
}

static int free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int port;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		H_FATAL("cannot find a free port: %s", strerror(errno));
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* argv plus the words of extra, into out (at most max entries, NULL-ended;
 * the words point into words, a copy of extra). */
static void add_args(char **out, int max, char *const argv[], char *words)
{
	char *save = NULL;
	int n = 0;

	while (argv[n] && n < max - 1) {
		out[n] = argv[n];
		n++;
	}
	for (char *t = strtok_r(words, " ", &save); t && n < max - 1; t = strtok_r(NULL, " ", &save))
		out[n++] = t;
	out[n] = NULL;
}

static pid_t spawn(char *const argv[], const char *log)
{
	pid_t pid = fork();

	if (pid < 0)
		H_FATAL("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		/* Daemons under ASan: killed ones cannot report leaks anyway. */
		setenv("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1", 0);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

void h_osd_dir(const struct h_cluster *c, int i, char *buf, size_t sz)
{
	if (c->osd_data[i][0])
		snprintf(buf, sz, "%s", c->osd_data[i]);
	else
		snprintf(buf, sz, "%s/osd.%d", c->dir, i);
}

void h_set_location(struct h_cluster *c, int i, const char *loc)
{
	snprintf(c->osd_loc[i], sizeof(c->osd_loc[i]), "%s", loc);
}

void h_start_osd(struct h_cluster *c, int i)
{
	char bin[512], dir[300], log[300], id[16];
	char *loc = c->osd_loc[i][0] ? c->osd_loc[i] : "host=testhost";

	snprintf(bin, sizeof(bin), "%s/osd/mixsan-osd", build_root());
	h_osd_dir(c, i, dir, sizeof(dir));
	if (c->osd_tmpfs_mib && !c->osd_mounted[i]) {
		char opt[64];

		snprintf(opt, sizeof(opt), "size=%um,mode=0700", c->osd_tmpfs_mib);
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			H_FATAL("mkdir %s: %s", dir, strerror(errno));
		if (mount("tmpfs", dir, "tmpfs", 0, opt) < 0) {
			fprintf(stderr, "cannot mount a %u MiB tmpfs for osd.%d: %s; skipped\n",
				c->osd_tmpfs_mib, i, strerror(errno));
			h_stop(c);
			exit(77);
		}
		c->osd_mounted[i] = true;
	}
	snprintf(log, sizeof(log), "%s/osd.%d.log", c->dir, i);
	snprintf(id, sizeof(id), "%d", i);
	{
		char *argv[] = {bin, "--data", dir, "--mon", c->mon_addr, "--id", id,
				"--location", loc, "--class", c->osd_class[i], NULL};
		char words[256], *all[40];

		if (!c->osd_class[i][0])
			argv[9] = NULL;
		snprintf(words, sizeof(words), "%s", c->osd_args);
		add_args(all, 40, argv, words);
		c->osd_pids[i] = spawn(all, log);
	}
}

mixsan_cluster_t *h_connect(struct h_cluster *c)
{
	mixsan_cluster_t *cl;
	struct mixsan_options o = {.connect_timeout_ms = 20000,
				   .keyfile = c->auth ? c->admin_key : NULL,
				   .snap_cache_bytes = c->snap_cache_bytes};
	int r = mixsan_connect(c->mon_addr, &o, &cl);

	if (r < 0)
		H_FATAL("cannot connect to %s: %s (%s)", c->mon_addr, strerror(-r),
			mixsan_connect_error());
	return cl;
}

int h_count_up(mixsan_cluster_t *cl)
{
	struct mx_map *m = mx_client_map_copy(cl);
	int up = 0;

	if (m) {
		for (uint32_t i = 0; i < m->max_osd; i++)
			up += m->osds[i].exists && m->osds[i].up;
		mx_map_free(m);
	}
	return up;
}

int64_t h_wait_completion(mixsan_completion_t *c, int timeout_s)
{
	for (int i = 0; i < timeout_s * 20 && !mixsan_completion_is_complete(c); i++)
		usleep(50000);
	return mixsan_completion_is_complete(c) ? mixsan_completion_result(c) : -ETIMEDOUT;
}

int h_wait_up(struct h_cluster *c, mixsan_cluster_t *cl, int n, int timeout_s)
{
	(void)c;
	for (int t = 0; t < timeout_s * 20; t++) {
		if (h_count_up(cl) >= n)
			return 0;
		usleep(50000);
	}
	return -ETIMEDOUT;
}

static void spawn_mon(struct h_cluster *c, int i, bool join)
{
	char bin[512], mondir[300], log[300], name[2] = {(char)('a' + i), 0};
	char *qargv[] = {bin, "--data", mondir, "--name", name, "--mons", c->mon_spec, NULL};
	char *jargv[] = {bin, "--data", mondir, "--name", name, "--addr", c->mon_addrs[i],
			 "--join", "--raft-addr", c->mon_raft[i], NULL};
	char words[600], *all[40];

	snprintf(bin, sizeof(bin), "%s/mon/mixsan-mon", build_root());
	snprintf(mondir, sizeof(mondir), "%s/mon.%s", c->dir, name);
	snprintf(log, sizeof(log), "%s/mon.%s.log", c->dir, name);
	if (join) {
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", mondir);
		if (system(cmd) != 0)
			H_FATAL("cannot empty %s", mondir);
	}
	(void)mkdir(mondir, 0700);
	if (c->mon_keyfile[0])
		snprintf(words, sizeof(words), "%s --mon-keyfile %s", c->mon_args, c->mon_keyfile);
	else
		snprintf(words, sizeof(words), "%s", c->mon_args);
	add_args(all, 40, join ? jargv : qargv, words);
	c->mon_pids[i] = spawn(all, log);
}

void h_start_mon(struct h_cluster *c, int i)
{
	spawn_mon(c, i, false);
}

void h_join_mon(struct h_cluster *c, int i)
{
	spawn_mon(c, i, true);
}

void h_signal_mon(struct h_cluster *c, int i, int sig)
{
	if (c->mon_pids[i] <= 0)
		return;
	kill(c->mon_pids[i], sig);
	if (sig == SIGKILL || sig == SIGTERM) {
		int st;

		(void)waitpid(c->mon_pids[i], &st, 0);
		c->mon_pids[i] = 0;
	}
}

int h_mon_status(struct h_cluster *c, int i, char *buf, size_t sz)
{
	struct mixsan_options o = {.connect_timeout_ms = 5000};
	mixsan_cluster_t *cl;
	char *msg = NULL;
	int r = mixsan_connect(c->mon_addrs[i], &o, &cl);

	buf[0] = '\0';
	if (r < 0)
		return r;
	r = mixsan_mon_command(cl, "mon status", NULL, 0, &msg);
	mixsan_shutdown(cl);
	if (r == 0 && msg)
		snprintf(buf, sz, "%s", msg);
	free(msg);
	/* The client library may have moved to another monitor: only the
	 * asked one's answer counts. */
	if (r == 0 && (strncmp(buf, "mon.", 4) != 0 || buf[4] != 'a' + i || buf[5] != ' ')) {
		buf[0] = '\0';
		return -EAGAIN;
	}
	return r;
}

int h_mon_leader(struct h_cluster *c, int ask)
{
	char st[2048];
	const char *p;

	if (h_mon_status(c, ask, st, sizeof(st)) < 0)
		return -1;
	p = strstr(st, " leader_name ");
	if (!p || p[13] < 'a' || p[13] >= 'a' + c->n_mons || (p[14] != '\n' && p[14] != '\0'))
		return -1;
	return p[13] - 'a';
}

int h_io_all(int fd, void *buf, size_t n, bool wr)
{
	for (size_t at = 0; at < n;) {
		ssize_t k = wr ? write(fd, (char *)buf + at, n - at) : read(fd, (char *)buf + at, n - at);

		if (k <= 0)
			return k == 0 ? -ECONNRESET : -errno;
		at += (size_t)k;
	}
	return 0;
}

int h_raw_connect(const char *addr)
{
	struct sockaddr_in sin;
	struct timeval tv = {.tv_sec = 5};
	int fd, r;

	if (mx_parse_addr(addr, &sin) < 0)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int h_raw_request(const char *addr, uint16_t type, uint64_t tid, const struct mx_wbuf *w,
		  struct mx_msg_hdr *h, uint8_t **payload)
{
	uint8_t hdr[MX_MSG_HDR_LEN];
	int fd = h_raw_connect(addr), r;

	*payload = NULL;
	if (fd < 0)
		return fd;
	mx_msg_hdr_encode(hdr, type, tid, w->data, (uint32_t)w->len);
	r = h_io_all(fd, hdr, sizeof(hdr), true);
	if (r == 0)
		r = h_io_all(fd, w->data, w->len, true);
	if (r == 0)
		r = h_io_all(fd, hdr, sizeof(hdr), false);
	if (r == 0)
		r = mx_msg_hdr_decode(hdr, h);
	if (r == 0) {
		*payload = malloc(h->len ? h->len : 1);
		r = *payload ? h_io_all(fd, *payload, h->len, false) : -ENOMEM;
	}
	close(fd);
	if (r < 0) {
		free(*payload);
		*payload = NULL;
	}
	return r;
}

int h_fetch_map(const char *addr, uint64_t epoch, struct mx_map **out)
{
	struct mx_msg_get_map gm = {.want_epoch = epoch};
	uint8_t *payload = NULL;
	struct mx_msg_hdr h;
	struct mx_wbuf w;
	int r;

	*out = NULL;
	mx_wbuf_init(&w);
	mx_enc_get_map(&w, &gm);
	r = h_raw_request(addr, MX_MSG_MON_GET_MAP, 1, &w, &h, &payload);
	mx_wbuf_free(&w);
	if (r == 0 && h.type == MX_MSG_MON_REDIRECT) {
		r = -EAGAIN;
	} else if (r == 0 && h.type == MX_MSG_MON_MAP) {
		struct mx_msg_map mm;

		r = mx_dec_map(payload, h.len, &mm);
		if (r == 0 && mm.status)
			r = mx_wire_to_errno(mm.status);
		else if (r == 0)
			r = mx_map_decode(mm.map, mm.map_len, out);
	} else if (r == 0) {
		r = -EPROTO;
	}
	free(payload);
	return r;
}

static void start_quorum(struct h_cluster *c)
{
	size_t at = 0, sat = 0;

	if (c->n_mons > H_MAX_MONS)
		H_FATAL("too many monitors");
	c->mon_addr[0] = '\0';
	if (c->mon_key) {
		uint8_t key[MX_KEY_LEN];

		snprintf(c->mon_keyfile, sizeof(c->mon_keyfile), "%s/mon.key", c->dir);
		if (mx_key_random(key) < 0 || mx_keyfile_write(c->mon_keyfile, "mon", key, false) < 0)
			H_FATAL("cannot make the monitor key");
	}
	for (int i = 0; i < c->n_mons; i++) {
		int p = free_port(), rp = free_port();

		snprintf(c->mon_addrs[i], sizeof(c->mon_addrs[i]), "127.0.0.1:%d", p);
		snprintf(c->mon_raft[i], sizeof(c->mon_raft[i]), "127.0.0.1:%d", rp);
		at += (size_t)snprintf(c->mon_addr + at, sizeof(c->mon_addr) - at, "%s%s",
				       i ? "," : "", c->mon_addrs[i]);
		sat += (size_t)snprintf(c->mon_spec + sat, sizeof(c->mon_spec) - sat,
					"%s%c=%s/%s", i ? "," : "", 'a' + i,
					c->mon_addrs[i], c->mon_raft[i]);
	}
	for (int i = 0; i < c->n_mons; i++)
		h_start_mon(c, i);
}

/* The cluster a test runs, stopped at exit if the test did not stop it
 * (H_FATAL exits at once): no daemon outlives a failed test. */
static struct h_cluster *h_running;
static pid_t h_owner; /* the process that started it (not a forked child) */

static void h_stop_at_exit(void)
{
	if (h_running && getpid() == h_owner) {
		h_failures++; /* keep the folder for the post-mortem */
		h_stop(h_running);
	}
}

void h_start(struct h_cluster *c, int n_osds)
{
	const char *ext = getenv("MIXSAN_TEST_MON");
	char bin[512], mondir[300], log[300];
	mixsan_cluster_t *cl;
	static bool registered;

	if (n_osds > H_MAX_OSDS)
		H_FATAL("too many OSDs");
	if (!registered) {
		atexit(h_stop_at_exit);
		registered = true;
	}
	h_running = c;
	h_owner = getpid();
	c->n_osds = n_osds;
	if (ext) {
		c->external = true;
		snprintf(c->mon_addr, sizeof(c->mon_addr), "%s", ext);
		return;
	}
	snprintf(c->dir, sizeof(c->dir), "%s/mixsan-test-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(c->dir))
		H_FATAL("mkdtemp: %s", strerror(errno));
	c->mon_port = free_port();
	snprintf(c->mon_addr, sizeof(c->mon_addr), "127.0.0.1:%d", c->mon_port);
	snprintf(bin, sizeof(bin), "%s/mon/mixsan-mon", build_root());
	snprintf(mondir, sizeof(mondir), "%s/mon", c->dir);
	snprintf(log, sizeof(log), "%s/mon.log", c->dir);
	if (c->n_mons > 0) {
		start_quorum(c);
	} else {
		char *argv[] = {bin, "--data", mondir, "--addr", c->mon_addr, "--auth",
				"--admin-keyfile", c->admin_key, NULL};
		char words[256], *all[40];

		snprintf(c->admin_key, sizeof(c->admin_key), "%s/admin.key", c->dir);
		if (!c->auth)
			argv[5] = NULL;
		snprintf(words, sizeof(words), "%s", c->mon_args);
		add_args(all, 40, argv, words);
		c->mon_pid = spawn(all, log);
	}
	if (c->auth) {
		/* A key for each OSD, made with the admin key (the OSD finds
		 * DIR/keyring by itself). */
		for (int t = 0; t < 100 && access(c->admin_key, F_OK) != 0; t++)
			usleep(100000);
		cl = h_connect(c);
		for (int i = 0; i < n_osds; i++) {
			char dir[300], kf[330], name[16];

			h_osd_dir(c, i, dir, sizeof(dir));
			(void)mkdir(dir, 0700);
			snprintf(kf, sizeof(kf), "%s/keyring", dir);
			snprintf(name, sizeof(name), "osd.%d", i);
			if (mx_client_auth_add(cl, c->admin_key, name, "osd", kf) < 0)
				H_FATAL("cannot make the key of %s", name);
		}
		mixsan_shutdown(cl);
	}
	for (int i = 0; i < n_osds; i++)
		h_start_osd(c, i);
	cl = h_connect(c);
	if (h_wait_up(c, cl, n_osds, 30) < 0)
		H_FATAL("the OSDs did not come up (logs in %s)", c->dir);
	mixsan_shutdown(cl);
	fprintf(stderr, "cluster: monitor %s, %d OSDs, folder %s\n", c->mon_addr, n_osds,
		c->dir);
}

void h_signal_osd(struct h_cluster *c, int i, int sig)
{
	if (c->osd_pids[i] <= 0)
		return;
	kill(c->osd_pids[i], sig);
	if (sig == SIGKILL || sig == SIGTERM) {
		int st;

		(void)waitpid(c->osd_pids[i], &st, 0);
		if (sig == SIGTERM && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
			h_failures++;
			fprintf(stderr, "osd.%d did not stop cleanly (status %d)\n", i, st);
		}
		c->osd_pids[i] = 0;
	}
}

static void stop_pid(pid_t *pid, const char *what)
{
	int st;

	if (*pid <= 0)
		return;
	kill(*pid, SIGCONT);
	kill(*pid, SIGTERM);
	for (int t = 0; t < 200; t++) {
		if (waitpid(*pid, &st, WNOHANG) == *pid) {
			if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
				h_failures++;
				fprintf(stderr, "%s exited badly on SIGTERM (status %d)\n", what,
					st);
			}
			*pid = 0;
			return;
		}
		usleep(50000);
	}
	fprintf(stderr, "%s did not stop in 10 s\n", what);
	h_failures++;
	kill(*pid, SIGKILL);
	(void)waitpid(*pid, &st, 0);
	*pid = 0;
}

void h_stop(struct h_cluster *c)
{
	char cmd[600];

	if (h_running == c)
		h_running = NULL;
	if (c->external)
		return;
	for (int i = 0; i < c->n_osds; i++) {
		char what[32];

		snprintf(what, sizeof(what), "osd.%d", i);
		stop_pid(&c->osd_pids[i], what);
	}
	stop_pid(&c->mon_pid, "the monitor");
	for (int i = 0; i < c->n_mons; i++) {
		char what[32];

		snprintf(what, sizeof(what), "mon.%c", 'a' + i);
		stop_pid(&c->mon_pids[i], what);
	}
	for (int i = 0; i < H_MAX_OSDS; i++) {
		char dir[300];

		if (!c->osd_mounted[i])
			continue;
		h_osd_dir(c, i, dir, sizeof(dir));
		if (umount2(dir, MNT_DETACH) < 0)
			fprintf(stderr, "cannot unmount %s: %s\n", dir, strerror(errno));
		c->osd_mounted[i] = false;
	}
	if (getenv("MIXSAN_TEST_KEEP") || h_failures) {
		fprintf(stderr, "kept %s\n", c->dir);
		return;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", c->dir);
}

void h_cmd(mixsan_cluster_t *cl, const char *prefix, const char *const *kv, size_t n)
{
	char *msg = NULL;
	int r = mixsan_mon_command(cl, prefix, kv, n, &msg);

	if (r < 0)
		H_FATAL("%s: %s (%s)", prefix, strerror(-r), msg ? msg : "");
	free(msg);
}

void h_pool_set(mixsan_cluster_t *cl, const char *pool, const char *key, const char *val)
{
	const char *kv[] = {"name", pool, "key", key, "value", val};

	h_cmd(cl, "pool set", kv, 3);
}

void h_pool_create(mixsan_cluster_t *cl, const char *name, int size, int pg_num,
		   const char *failure_domain)
{
	char sz[16], pg[16], ms[16];
	const char *kv[] = {"name", name, "size", sz, "pg_num", pg, "failure_domain",
			    failure_domain, "min_size", ms};
	char *msg = NULL;
	int r;

	snprintf(sz, sizeof(sz), "%d", size);
	snprintf(pg, sizeof(pg), "%d", pg_num);
	snprintf(ms, sizeof(ms), "%d", size - size / 2);
	r = mixsan_mon_command(cl, "pool create", kv, 5, &msg);
	if (r < 0)
		H_FATAL("pool create %s: %s (%s)", name, strerror(-r), msg ? msg : "");
	free(msg);
}

int h_log_count(const struct h_cluster *c, const char *log, const char *needle)
{
	char path[400], line[4096];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s.log", c->dir, log);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* Find the object data file (NAME.d) under dir holding needle at a 4 KiB-
 * aligned offset; flip one bit at that offset + delta.  Returns 1 if done.
 * Only data files: the store's log may hold the same bytes block-aligned
 * too (a padded WRITE, docs/object-store.md). */
int h_flip_in_tree(const char *dir, const uint8_t *needle, size_t nlen, size_t delta)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int done = 0;

	if (!d)
		return 0;
	while (!done && (e = readdir(d))) {
		char path[1024];
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			done = h_flip_in_tree(path, needle, nlen, delta);
			continue;
		}
		if (!S_ISREG(st.st_mode) || st.st_size < (off_t)nlen ||
		    strlen(e->d_name) < 3 || strcmp(e->d_name + strlen(e->d_name) - 2, ".d"))
			continue;
		{
			int fd = open(path, O_RDWR | O_CLOEXEC);
			uint8_t *buf = malloc((size_t)st.st_size);

			if (fd >= 0 && buf && pread(fd, buf, (size_t)st.st_size, 0) == st.st_size) {
				for (off_t off = 0; off + (off_t)nlen <= st.st_size; off += 4096) {
					if (memcmp(buf + off, needle, nlen) != 0)
						continue;
					buf[off + (off_t)delta] ^= 0x10;
					if (pwrite(fd, buf + off + delta, 1, off + (off_t)delta) == 1) {
						fprintf(stderr, "flipped a bit in %s at %lld\n",
							path, (long long)(off + (off_t)delta));
						done = 1;
					}
					break;
				}
			}
			free(buf);
			if (fd >= 0)
				close(fd);
		}
	}
	closedir(d);
	return done;
}

struct json_t *h_status(mixsan_cluster_t *cl)
{
	char *msg = NULL;
	json_t *j = NULL;

	if (mixsan_mon_command(cl, "status", NULL, 0, &msg) == 0 && msg)
		j = json_loads(msg, 0, NULL);
	free(msg);
	return j;
}

int h_wait_health_ok(mixsan_cluster_t *cl, int timeout_s, char *why, size_t sz)
{
	time_t end = time(NULL) + timeout_s;

	if (sz)
		why[0] = '\0';
	for (;;) {
		json_t *j = h_status(cl), *h = json_object_get(j, "health"), *c, *pgs;
		const char *st = json_string_value(json_object_get(h, "status"));
		size_t i, at = 0;
		bool ok;

		pgs = json_object_get(j, "pgs");
		ok = st && strcmp(st, "HEALTH_OK") == 0 &&
		     json_integer_value(json_object_get(pgs, "clean")) ==
			     json_integer_value(json_object_get(pgs, "total"));
		if (sz) {
			snprintf(why, sz, "%s", st ? st : "no answer");
			at = strlen(why);
			json_array_foreach(json_object_get(h, "checks"), i, c) {
				int k = snprintf(why + at, sz - at, "; %s",
						 json_string_value(json_object_get(c, "summary")));

				if (k < 0 || (size_t)k >= sz - at)
					break;
				at += (size_t)k;
			}
		}
		json_decref(j);
		if (ok)
			return 0;
		if (time(NULL) >= end)
			return -ETIMEDOUT;
		usleep(250000);
	}
}

void h_volume_random_ops(mixsan_volume_t *v, uint8_t *model, uint64_t size, uint64_t seed,
			 int rounds, uint64_t max_len, bool fast_zero)
{
	uint64_t st = seed;
	uint8_t *buf = malloc(max_len);

	H_CHECK(buf != NULL);
	for (int i = 0; i < rounds; i++) {
		uint64_t off = h_rand(&st) % size;
		uint64_t max = max_len < size - off ? max_len : size - off;
		uint64_t len = 1 + h_rand(&st) % max;
		int what = (int)(h_rand(&st) % 10);

		if (what < 6) {
			h_fill(h_rand(&st), buf, len);
			H_CHECK(mixsan_volume_write(v, buf, len, off) == 0);
			memcpy(model + off, buf, len);
		} else if (what < 8) {
			H_CHECK(mixsan_volume_discard(v, len, off) == 0);
			memset(model + off, 0, len);
		} else {
			bool fast = fast_zero && what == 9;
			int r = mixsan_volume_write_zeroes(v, len, off, fast ? MIXSAN_ZERO_FAST : 0);

			H_CHECK(r == 0 || (fast && r == -ENOTSUP));
			if (r == 0)
				memset(model + off, 0, len);
		}
	}
	free(buf);
}

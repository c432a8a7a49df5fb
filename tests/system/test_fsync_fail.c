/*
 * An OSD whose disk fails an fdatasync stops, and a write it held is not
 * acknowledged on its word (docs/osd.md, "Group commit"; docs/testing.md).
 * osd.0's folder is on faultfs (tests/system/faultfs.c), a pass-through
 * FUSE file system whose fsync and fdatasync fail with EIO between SIGUSR1
 * and SIGUSR2.  Every PG of the pool (size 3 on 3 OSDs) has osd.0.
 *
 *  1. Objects written while the disk is sound.
 *  2. The disk's syncs fail, and small durable writes go to every PG: the
 *     OSD's group commit syncs them on its worker, which fails.  osd.0 exits
 *     with status 1 and says why ("object store commit failed"), and no
 *     write completes while it still runs (each failing sync takes 1.5 s,
 *     so an acknowledgement sent before the sync would arrive while osd.0
 *     still runs).  The others go on without it:
 *     every write completes and reads back.
 *  3. The syncs heal and osd.0 restarts on the same folder (it replays its
 *     log).  The cluster comes back to HEALTH_OK, every object reads back
 *     as last written.
 *  4. The write-back timer: a writeback volume's unflushed write, with the
 *     syncs failing again, stops osd.0 by itself within 6 s (wb_tick
 *     syncs unsynced frames within about a second), the flush succeeds on
 *     the other two, and after the second restart the volume reads back.
 *     After every OSD stopped, all replicas agree.
 *
 * Skipped (77) where FUSE cannot mount (no /dev/fuse, or not root).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define N_OBJ 24
#define OBJ_LEN 4096
#define VOL_LEN (1u << 20) /* 16 objects of 64 KiB */
#define FUSE_MAGIC 0x65735546
/* A failing sync takes this long (faultfs's HOLD_MS): a reply that went out
 * before the sync would reach the client well before osd.0 ends. */
#define HOLD_MS "1500"

static struct h_cluster c;
static char top[64], back[128], mnt[128];
static pid_t fs_pid;

static void fs_stop(void)
{
	char cmd[300];

	if (mnt[0] && umount2(mnt, MNT_DETACH) < 0 && errno != EINVAL)
		fprintf(stderr, "cannot unmount %s: %s\n", mnt, strerror(errno));
	if (fs_pid > 0) {
		kill(fs_pid, SIGTERM);
		(void)waitpid(fs_pid, NULL, 0);
		fs_pid = 0;
	}
	if (top[0] && !h_failures && !getenv("MIXSAN_TEST_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", top);
	} else if (top[0]) {
		fprintf(stderr, "kept %s\n", top);
	}
	mnt[0] = top[0] = 0; /* once: also at exit */
}

/* Mount faultfs over back at mnt; exits 77 if it cannot. */
static void fs_start(void)
{
	char bin[512], log[160];
	const char *root = getenv("MIXSAN_BUILD_ROOT");
	struct statfs sf;
	int fd;

	snprintf(top, sizeof(top), "/tmp/mixsan-faultfs-XXXXXX");
	if (!mkdtemp(top))
		H_FATAL("mkdtemp: %s", strerror(errno));
	snprintf(back, sizeof(back), "%s/back", top);
	snprintf(mnt, sizeof(mnt), "%s/mnt", top);
	if (mkdir(back, 0700) < 0 || mkdir(mnt, 0700) < 0)
		H_FATAL("mkdir: %s", strerror(errno));
	snprintf(bin, sizeof(bin), "%s/tests/system/faultfs", root ? root : ".");
	fs_pid = fork();
	if (fs_pid < 0)
		H_FATAL("fork: %s", strerror(errno));
	if (fs_pid == 0) {
		/* Its output to a file: a faultfs that outlived the test must
		 * not hold the test's pipes open. */
		snprintf(log, sizeof(log), "%s/faultfs.log", top);
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, bin, back, mnt, HOLD_MS, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		int st;

		if (statfs(mnt, &sf) == 0 && sf.f_type == FUSE_MAGIC)
			return;
		if (waitpid(fs_pid, &st, WNOHANG) == fs_pid) {
			fs_pid = 0;
			mnt[0] = 0;
			/* libfuse exits 1 when it cannot mount (no /dev/fuse, no
			 * right to mount); anything else is a fault of ours. */
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 1)
				H_FATAL("faultfs ended with status %d (%s/faultfs.log)", st, top);
			fprintf(stderr, "faultfs could not mount; skipped\n");
			fs_stop();
			exit(77);
		}
		usleep(10000);
	}
	fprintf(stderr, "faultfs not mounted after 5 s; skipped\n");
	fs_stop();
	exit(77);
}

/* Waits up to ms for pid to end: the milliseconds it took, or -1 if it
 * still runs. */
static int wait_exit(pid_t pid, int ms, int *st)
{
	for (int t = 0; t <= ms; t += 10) {
		if (waitpid(pid, st, WNOHANG) == pid)
			return t;
		usleep(10000);
	}
	return -1;
}

static void content(int round, int i, uint8_t *buf)
{
	h_fill((uint64_t)round * 1000003u + (uint64_t)i, buf, OBJ_LEN);
}

static void check_all(mixsan_pool_t *p, int round, const char *when)
{
	uint8_t want[OBJ_LEN], got[OBJ_LEN];
	int bad = 0;

	for (int i = 0; i < N_OBJ; i++) {
		char oid[32];
		int64_t n;

		snprintf(oid, sizeof(oid), "obj.%d", i);
		content(round, i, want);
		n = mixsan_read(p, oid, got, sizeof(got), 0);
		if (n != OBJ_LEN || memcmp(got, want, OBJ_LEN) != 0)
			bad++;
	}
	if (bad) {
		fprintf(stderr, "%s: %d of %d objects do not read back\n", when, bad, N_OBJ);
		h_failures++;
	}
}

int main(void)
{
	mixsan_completion_t *cw[N_OBJ];
	static uint8_t buf[N_OBJ][OBJ_LEN];
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	uint64_t objects = 0;
	int st = 0, done_early = 0;
	pid_t victim;
	char why[1024];

	if (getenv("MIXSAN_TEST_MON")) {
		fprintf(stderr, "fsync_fail: needs its own cluster; skipped\n");
		return 77;
	}
	fs_start();
	atexit(fs_stop); /* runs after the harness's own stop (registered later) */
	memset(&c, 0, sizeof(c));
	snprintf(c.osd_data[0], sizeof(c.osd_data[0]), "%s", mnt);
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "ff", 3, 16, "osd");
	if (mixsan_pool_open(cl, "ff", &p) < 0)
		H_FATAL("pool open");

	/* 1. A sound disk. */
	for (int i = 0; i < N_OBJ; i++) {
		char oid[32];

		snprintf(oid, sizeof(oid), "obj.%d", i);
		content(1, i, buf[i]);
		H_CHECK(mixsan_write_full(p, oid, buf[i], OBJ_LEN) == 0);
	}
	check_all(p, 1, "sound disk");

	/* 2. Its syncs fail. */
	kill(fs_pid, SIGUSR1);
	victim = c.osd_pids[0];
	for (int i = 0; i < N_OBJ; i++) {
		char oid[32];

		snprintf(oid, sizeof(oid), "obj.%d", i);
		content(2, i, buf[i]);
		if (mixsan_completion_create(NULL, NULL, &cw[i]) < 0 ||
		    mixsan_aio_write_full(p, oid, cw[i], buf[i], OBJ_LEN) < 0)
			H_FATAL("cannot send write %d", i);
	}
	for (int t = 0; t < 6000; t++) { /* 60 s */
		bool seen[N_OBJ];

		/* Completions first, then whether osd.0 still runs: a write seen
		 * complete before osd.0 was seen running completed while it ran.
		 * (One seen in the round osd.0 ends is not counted.) */
		for (int i = 0; i < N_OBJ; i++)
			seen[i] = cw[i] && mixsan_completion_is_complete(cw[i]);
		if (waitpid(victim, &st, WNOHANG) == victim) {
			c.osd_pids[0] = 0;
			break;
		}
		for (int i = 0; i < N_OBJ; i++) {
			if (!seen[i])
				continue;
			done_early++;
			mixsan_completion_release(cw[i]);
			cw[i] = NULL;
		}
		usleep(10000);
	}
	if (c.osd_pids[0]) {
		H_FATAL("osd.0 still runs 60 s after its syncs began to fail");
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 1) {
		fprintf(stderr, "osd.0 ended with status %d, not exit 1\n", st);
		h_failures++;
	}
	if (done_early) {
		fprintf(stderr, "%d writes completed while osd.0, which could not sync them, ran\n",
			done_early);
		h_failures++;
	}
	if (h_log_count(&c, "osd.0", "object store commit failed") < 1) {
		fprintf(stderr, "osd.0's log does not say why it stopped\n");
		h_failures++;
	}
	for (int i = 0; i < N_OBJ; i++) {
		int64_t r;

		if (!cw[i])
			continue;
		r = h_wait_completion(cw[i], 120);
		if (r != 0) {
			fprintf(stderr, "write %d without osd.0: %lld\n", i, (long long)r);
			h_failures++;
		}
		mixsan_completion_release(cw[i]);
	}
	check_all(p, 2, "without osd.0");

	/* 3. Healed, restarted. */
	kill(fs_pid, SIGUSR2);
	h_start_osd(&c, 0);
	if (h_wait_health_ok(cl, 180, why, sizeof(why)) < 0) {
		fprintf(stderr, "not HEALTH_OK after osd.0's restart: %s\n", why);
		h_failures++;
	}
	check_all(p, 2, "after osd.0's restart");

	/* 4. The write-back timer: unflushed writeback writes do not stay
	 * unsynced (wb_tick syncs them within about a second), so with its
	 * syncs failing osd.0 stops without any flush or further request. */
	{
		struct mixsan_volume_options o = {.cache_mode = MIXSAN_CACHE_WRITEBACK};
		static uint8_t vbuf[VOL_LEN], vgot[VOL_LEN];
		mixsan_volume_t *v;
		int t;

		H_CHECK(mixsan_volume_create(p, "wbv", VOL_LEN, 16) == 0);
		if (mixsan_volume_open(p, "wbv", &o, &v) < 0)
			H_FATAL("volume open");
		h_fill(77, vbuf, VOL_LEN);
		H_CHECK(mixsan_volume_write(v, vbuf, VOL_LEN, 0) == 0);
		H_CHECK(mixsan_volume_flush(v) == 0);
		kill(fs_pid, SIGUSR1);
		victim = c.osd_pids[0];
		/* An overwrite of one block: plain WRITE ops on an object that
		 * exists, so every OSD logs it unsynced and nothing syncs it
		 * but the timer.  osd.0 must still run when it is acknowledged. */
		h_fill(78, vbuf + VOL_LEN / 2, 4096);
		H_CHECK(mixsan_volume_write(v, vbuf + VOL_LEN / 2, 4096, VOL_LEN / 2) == 0);
		if (waitpid(victim, &st, WNOHANG) == victim) {
			fprintf(stderr, "osd.0 stopped before the writeback write was acknowledged: "
				"something but the timer synced it\n");
			h_failures++;
		}
		t = wait_exit(victim, 6000, &st);
		if (t < 0) {
			fprintf(stderr, "osd.0 still runs 6 s after an unflushed writeback write "
				"with its syncs failing: the timer did not sync it\n");
			h_failures++;
		} else {
			c.osd_pids[0] = 0;
			fprintf(stderr, "fsync_fail: the timer's sync stopped osd.0 after %d ms\n", t);
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 1 ||
			    h_log_count(&c, "osd.0", "object store commit failed") != 2) {
				fprintf(stderr, "osd.0 ended with status %d, not on its failed sync\n",
					st);
				h_failures++;
			}
		}
		H_CHECK(mixsan_volume_flush(v) == 0); /* on the other two */
		if (c.osd_pids[0]) { /* the timer failed: the flush's sync ends it */
			if (wait_exit(victim, 30000, &st) < 0)
				H_FATAL("osd.0 still runs after a flush with its syncs failing");
			c.osd_pids[0] = 0;
		}
		kill(fs_pid, SIGUSR2);
		h_start_osd(&c, 0);
		if (h_wait_health_ok(cl, 180, why, sizeof(why)) < 0) {
			fprintf(stderr, "not HEALTH_OK after osd.0's second restart: %s\n", why);
			h_failures++;
		}
		H_CHECK(mixsan_volume_read(v, vgot, VOL_LEN, 0) == VOL_LEN);
		H_CHECK(memcmp(vgot, vbuf, VOL_LEN) == 0);
		H_CHECK(mixsan_volume_close(v) == 0);
	}
	H_CHECK(h_shutdown_check_replicas(&c, cl, p, &objects) == 0);
	H_CHECK(objects > N_OBJ);
	h_stop(&c);
	fs_stop();
	fprintf(stderr, "fsync_fail: osd.0 stopped on EIO, %d writes held, %llu objects agree\n",
		N_OBJ, (unsigned long long)objects);
	return h_failures ? 1 : 0;
}

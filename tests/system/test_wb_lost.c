/*
 * A power cut of every OSD that holds a writeback write
 * (docs/cache-modes.md, "A power cut of every OSD that holds a write").
 * A host's reboot is made the way an OSD finds one: the OSD is killed
 * (SIGKILL) and the boot id in its boot mark is replaced, so that it starts
 * "under another boot" after an unclean stop.  (The page cache is not lost
 * here, so the writes are in fact still there: the OSD cannot know that,
 * and reports the possibility; the store's unit test sweeps the loss
 * itself.)  The volumes have 4 KiB objects, so their blocks spread over
 * every PG of the pool.
 *
 *  1. Every OSD "rebooted" after unflushed writeback writes, and two
 *     flushes sent while the OSDs are down: neither completes before the
 *     OSDs are back (the second waits for the first), and both fail with
 *     EIO (the second vouches for what the first did); the next flush
 *     succeeds (reported once).
 *  2. The same, then every OSD killed once more (no reboot) after the PGs
 *     went active: the next flush still fails with EIO (the loss was
 *     persisted in the PG infos, not kept by one primary's memory); the one
 *     after succeeds; later writes and flushes succeed.
 *  3. Two of three OSDs "rebooted", the third only killed: it kept every
 *     write, and the flush succeeds.
 *  4. Every OSD stopped cleanly (SIGTERM), then "rebooted": nothing was
 *     unsynced, and the flush succeeds.
 *  5. A writethrough volume in the same pool never fails a flush.
 * Reads give back every written block in every case.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define BLK 4096u
#define NBLK 64u

static struct h_cluster c;

/* Replace the boot id in OSD i's boot mark (the OSD is not running). */
static void fake_reboot(int i)
{
	char dir[300], path[400], id[80], state[16], line[160];
	unsigned long long below;
	FILE *f;

	h_osd_dir(&c, i, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/boot", dir);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%79s %15s %llu", id, state, &below) != 3)
		H_FATAL("osd.%d: no boot mark in %s", i, path);
	fclose(f);
	snprintf(line, sizeof(line), "%s %s %llu\n", "00000000-dead-beef-0000-000000000000",
		 state, below);
	f = fopen(path, "w");
	if (!f || fputs(line, f) < 0 || fclose(f) != 0)
		H_FATAL("osd.%d: cannot write %s", i, path);
}

/* Stop every OSD with sig; those in reboot[] also "reboot". */
static void stop_all(int sig, const bool reboot[3])
{
	for (int i = 0; i < 3; i++)
		h_signal_osd(&c, i, sig);
	for (int i = 0; i < 3; i++)
		if (reboot[i])
			fake_reboot(i);
}

static void start_all(void)
{
	for (int i = 0; i < 3; i++)
		h_start_osd(&c, i);
}

static void cycle(int sig, const bool reboot[3])
{
	stop_all(sig, reboot);
	start_all();
}

static void write_blocks(mixsan_volume_t *v, uint64_t seed)
{
	uint8_t buf[BLK];

	for (uint32_t b = 0; b < NBLK; b++) {
		h_fill(seed + b, buf, BLK);
		H_CHECK(mixsan_volume_write(v, buf, BLK, (uint64_t)b * BLK) == 0);
	}
}

static void check_blocks(mixsan_volume_t *v, uint64_t seed)
{
	uint8_t buf[BLK], want[BLK];
	int bad = 0;

	for (uint32_t b = 0; b < NBLK; b++) {
		h_fill(seed + b, want, BLK);
		bad += mixsan_volume_read(v, buf, BLK, (uint64_t)b * BLK) != BLK ||
		       memcmp(buf, want, BLK) != 0;
	}
	H_CHECK(bad == 0);
}

/* Write v's blocks from seed, stop every OSD with sig ("rebooting"
 * those in reboot[]), start them, flush: its result (what: for the log);
 * the blocks read back. */
static int write_cycle_flush(mixsan_volume_t *v, uint64_t seed, int sig, const bool reboot[3],
			     const char *what)
{
	int r;

	write_blocks(v, seed);
	cycle(sig, reboot);
	r = mixsan_volume_flush(v);
	fprintf(stderr, "wb_lost: flush after %s: %d\n", what, r);
	check_blocks(v, seed);
	return r;
}

static int open_vol(mixsan_pool_t *p, const char *name, int mode, mixsan_volume_t **v)
{
	struct mixsan_volume_options o = {.cache_mode = mode};

	return mixsan_volume_open(p, name, &o, v);
}

int main(void)
{
	static const bool all[3] = {true, true, true}, two[3] = {true, true, false},
			  none[3] = {false, false, false};
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	mixsan_volume_t *v, *wt;
	int r;

	if (getenv("MIXSAN_TEST_MON")) {
		fprintf(stderr, "wb_lost: kills daemons, skipped on an external cluster\n");
		return 77;
	}
	memset(&c, 0, sizeof(c));
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "wl", 3, 8, "osd");
	if (mixsan_pool_open(cl, "wl", &p) < 0)
		H_FATAL("pool open");
	H_CHECK(mixsan_volume_create(p, "wb", NBLK * BLK, 12) == 0);
	H_CHECK(mixsan_volume_create(p, "wt", NBLK * BLK, 12) == 0);
	if (open_vol(p, "wb", MIXSAN_CACHE_WRITEBACK, &v) < 0 ||
	    open_vol(p, "wt", MIXSAN_CACHE_WRITETHROUGH, &wt) < 0)
		H_FATAL("volume open");

	/* 1. Every OSD rebooted under unflushed writes; two flushes sent
	 * while they are down. */
	write_blocks(v, 100);
	H_CHECK(mixsan_volume_flush(v) == 0);
	write_blocks(v, 200); /* acknowledged, not flushed */
	write_blocks(wt, 300);
	stop_all(SIGKILL, all);
	{
		mixsan_completion_t *f1, *f2;
		int64_t r1, r2;

		if (mixsan_completion_create(NULL, NULL, &f1) < 0 ||
		    mixsan_completion_create(NULL, NULL, &f2) < 0)
			H_FATAL("completion");
		H_CHECK(mixsan_volume_aio_flush(v, f1) == 0);
		H_CHECK(mixsan_volume_aio_flush(v, f2) == 0);
		usleep(500000);
		H_CHECK(!mixsan_completion_is_complete(f1));
		H_CHECK(!mixsan_completion_is_complete(f2)); /* after f1 */
		start_all();
		r1 = h_wait_completion(f1, 60);
		r2 = h_wait_completion(f2, 60);
		fprintf(stderr, "wb_lost: flushes across every OSD's reboot: %lld, %lld\n",
			(long long)r1, (long long)r2);
		H_CHECK(r1 == -EIO && r2 == -EIO);
		mixsan_completion_release(f1);
		mixsan_completion_release(f2);
	}
	H_CHECK(mixsan_volume_flush(v) == 0); /* reported once */
	H_CHECK(mixsan_volume_flush(wt) == 0);
	check_blocks(v, 200);
	check_blocks(wt, 300);

	/* 2. The loss outlives the primaries that found it. */
	write_blocks(v, 250);
	cycle(SIGKILL, all);
	check_blocks(v, 250);  /* the PGs are active again */
	cycle(SIGKILL, none);  /* a new interval, no reboot */
	r = mixsan_volume_flush(v);
	fprintf(stderr, "wb_lost: flush after every OSD rebooted, then restarted: %d (%s)\n", r,
		r < 0 ? strerror(-r) : "ok");
	H_CHECK(r == -EIO);
	H_CHECK(mixsan_volume_flush(v) == 0); /* reported once */
	check_blocks(v, 250);
	write_blocks(v, 400);
	H_CHECK(mixsan_volume_flush(v) == 0);
	H_CHECK(h_log_count(&c, "osd.0", "the host restarted since this OSD last ran") == 2);

	/* 3. One OSD of three kept its page cache. */
	H_CHECK(write_cycle_flush(v, 500, SIGKILL, two, "two of three OSDs rebooted") == 0);
	/* 4. A clean stop syncs everything: a reboot after it loses nothing. */
	H_CHECK(write_cycle_flush(v, 600, SIGTERM, all, "a clean stop and a reboot") == 0);

	/* 5. Writethrough: every write was durable when it completed. */
	write_blocks(wt, 700);
	cycle(SIGKILL, all);
	H_CHECK(mixsan_volume_flush(wt) == 0);
	check_blocks(wt, 700);

	H_CHECK(mixsan_volume_close(v) == 0);
	H_CHECK(mixsan_volume_close(wt) == 0);
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	h_stop(&c);
	fprintf(stderr, "wb_lost: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

/*
 * Disk cache modes (docs/cache-modes.md) against real daemons: for each of
 * writethrough, writeback and none, a writer process opens a volume in that
 * mode and writes stamped 4 KiB blocks at QD1, a flush every 8 writes and
 * every 5th write FUA, reporting each acknowledged write and completed
 * flush on a pipe.  Meanwhile an OSD is killed (SIGKILL) and restarted, so
 * writes and flushes in flight wait for a new interval (in writeback every
 * OSD is killed at once), and then the writer
 * itself is killed (SIGKILL) between two flushes.  Reading the volume back
 * (read-only, no lock needed):
 *
 *  - no block is torn: each holds one write's stamp and bytes whole, or
 *    zeroes if never written, and only a write that was sent;
 *  - every write acknowledged before the last completed flush is there
 *    (the writeback promise), and in every mode every acknowledged write
 *    is there: SIGKILL of an OSD keeps its page cache, and replay applies
 *    the unsynced log frames it holds;
 *  - the writer saw no write or flush fail across the OSD kill;
 *  - the OSDs committed unsynced frames (their closing log line), so the
 *    writeback runs really took the writeback path.
 *
 * A power cut (the case writeback may lose unflushed writes in) cannot be
 * made on a shared test machine; the store's unit test sweeps it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define BLK 4096u
#define NBLK 512u /* 2 MiB of blocks over 1 MiB objects: several PGs */
#define VOL_SIZE (NBLK * BLK)
#define MAX_SEQ 4000u
#define KILL_OSD_AT 60u
#define KILL_WRITER_AT 160u

static const char *const mode_names[] = {"writethrough", "writeback", "none"};

/* The block a write of sequence number seq goes to. */
static uint32_t seq_block(uint64_t seq)
{
	uint64_t s = seq * 0x9e3779b97f4a7c15ull;

	return (uint32_t)(h_rand(&s) % NBLK);
}

/* The content of write seq: its stamp (seq, block) and bytes from seq. */
static void stamp(uint8_t *buf, uint64_t seq)
{
	uint64_t b = seq_block(seq);

	h_fill(seq, buf, BLK);
	memcpy(buf, &seq, 8);
	memcpy(buf + 8, &b, 8);
}

/* The writer: report "S seq" before sending a write, "A seq" once it is
 * acknowledged, "F seq" once a flush after write seq completed, "E err"
 * on any failure; runs until killed. */
static void writer(struct h_cluster *c, int mode, const char *vol, int fd)
{
	mixsan_cluster_t *cl = h_connect(c);
	struct mixsan_volume_options o = {.lease_ms = 3000, .cache_mode = mode};
	mixsan_pool_t *p;
	mixsan_volume_t *v;
	uint8_t buf[BLK];
	char line[64];
	int r;

	if (mixsan_pool_open(cl, "cm", &p) < 0 || mixsan_volume_open(p, vol, &o, &v) < 0)
		_exit(2);
	for (uint64_t seq = 1; seq <= MAX_SEQ; seq++) {
		stamp(buf, seq);
		snprintf(line, sizeof(line), "S %llu\n", (unsigned long long)seq);
		if (write(fd, line, strlen(line)) < 0)
			_exit(2);
		r = mixsan_volume_write_flags(v, buf, BLK, (uint64_t)seq_block(seq) * BLK,
					      seq % 5 == 0 ? MIXSAN_WRITE_FUA : 0);
		if (r < 0)
			snprintf(line, sizeof(line), "E %d\n", r);
		else
			snprintf(line, sizeof(line), "A %llu\n", (unsigned long long)seq);
		if (write(fd, line, strlen(line)) < 0)
			_exit(2);
		if (seq % 8 == 0) {
			r = mixsan_volume_flush(v);
			if (r < 0)
				snprintf(line, sizeof(line), "E %d\n", r);
			else
				snprintf(line, sizeof(line), "F %llu\n", (unsigned long long)seq);
			if (write(fd, line, strlen(line)) < 0)
				_exit(2);
		}
	}
	_exit(0);
}

/* One mode: write, kill an OSD and the writer, check what reads back. */
static void run_mode(struct h_cluster *c, mixsan_pool_t *p, int mode, int victim)
{
	uint64_t sent[NBLK + 1][8]; /* per block: the writes sent to it (newest 8) */
	uint64_t acked_last[NBLK] = {0}, flushed_last[NBLK] = {0};
	uint64_t *ack_of; /* seq -> acknowledged */
	uint64_t last_flush = 0, acks = 0;
	unsigned n_sent[NBLK] = {0};
	int errors = 0, status = 0, fds[2];
	char vol[32], line[64];
	bool osd_killed = false, writer_killed = false;
	FILE *in;
	pid_t pid;

	snprintf(vol, sizeof(vol), "cm_%s", mode_names[mode]);
	if (mixsan_volume_create(p, vol, VOL_SIZE, 20) < 0)
		H_FATAL("volume create %s", vol);
	ack_of = calloc(MAX_SEQ + 1, sizeof(*ack_of));
	memset(sent, 0, sizeof(sent));
	if (!ack_of || pipe(fds) < 0)
		H_FATAL("pipe");
	pid = fork();
	if (pid < 0)
		H_FATAL("fork");
	if (pid == 0) {
		close(fds[0]);
		writer(c, mode, vol, fds[1]);
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	while (in && fgets(line, sizeof(line), in)) {
		unsigned long long seq = 0;

		if (line[0] == 'E') {
			fprintf(stderr, "cache_modes %s: the writer failed: %s", vol, line);
			errors++;
			continue;
		}
		if (sscanf(line + 2, "%llu", &seq) != 1 || seq == 0 || seq > MAX_SEQ)
			continue;
		if (line[0] == 'S') {
			uint32_t b = seq_block(seq);

			sent[b][n_sent[b]++ % 8] = seq;
		} else if (line[0] == 'A') {
			ack_of[seq] = 1;
			acked_last[seq_block(seq)] = seq;
			acks++;
		} else if (line[0] == 'F') {
			for (uint64_t s = last_flush + 1; s <= seq; s++)
				if (ack_of[s])
					flushed_last[seq_block(s)] = s;
			last_flush = seq;
		}
		if (line[0] == 'A' && acks == KILL_OSD_AT && !osd_killed) {
			/* Writes and flushes in flight now wait for a new
			 * interval: they must all go through. */
			fprintf(stderr, "cache_modes %s: kill -9 %s after %llu acks\n", vol,
				victim < 0 ? "every OSD" : "one OSD", (unsigned long long)acks);
			for (int i = 0; i < 3; i++)
				if (victim < 0 || i == victim)
					h_signal_osd(c, i, SIGKILL);
			usleep(300 * 1000);
			for (int i = 0; i < 3; i++)
				if (victim < 0 || i == victim)
					h_start_osd(c, i);
			osd_killed = true;
		}
		if (line[0] == 'A' && acks >= KILL_WRITER_AT && seq % 8 == 5 && !writer_killed) {
			/* Between two flushes: acknowledged, unflushed writes.
			 * Read on to the end: what it reported before it died
			 * (a write it sent) counts. */
			kill(pid, SIGKILL);
			writer_killed = true;
		}
	}
	if (in)
		fclose(in);
	(void)waitpid(pid, &status, 0);
	H_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	H_CHECK(errors == 0);
	H_CHECK(acks >= KILL_WRITER_AT);
	H_CHECK(last_flush > 0);
	fprintf(stderr, "cache_modes %s: writer killed after %llu acks, last flush after %llu\n",
		vol, (unsigned long long)acks, (unsigned long long)last_flush);

	/* Read everything back through a reader of its own. */
	{
		struct mixsan_volume_options ro = {.flags = MIXSAN_VOLUME_RDONLY};
		mixsan_volume_t *v;
		uint8_t *img = malloc(VOL_SIZE), want[BLK];
		unsigned torn = 0, lost_acked = 0, lost_flushed = 0;

		if (!img || mixsan_volume_open(p, vol, &ro, &v) < 0)
			H_FATAL("reopen %s", vol);
		H_CHECK(mixsan_volume_read(v, img, VOL_SIZE, 0) == (int64_t)VOL_SIZE);
		for (uint32_t b = 0; b < NBLK; b++) {
			const uint8_t *got = img + (size_t)b * BLK;
			uint64_t seq = 0;
			bool was_sent = false;

			memcpy(&seq, got, 8);
			if (seq == 0) {
				static const uint8_t zero[BLK];

				if (memcmp(got, zero, BLK) != 0) {
					fprintf(stderr, "cache_modes %s: block %u torn (no stamp)\n",
						vol, b);
					torn++;
				}
			} else {
				for (unsigned i = 0; i < 8 && i < n_sent[b]; i++)
					was_sent |= sent[b][i] == seq;
				if (seq > MAX_SEQ || seq_block(seq) != b || !was_sent) {
					fprintf(stderr, "cache_modes %s: block %u holds seq %llu, "
						"never sent there\n", vol, b,
						(unsigned long long)seq);
					torn++;
					continue;
				}
				stamp(want, seq);
				if (memcmp(got, want, BLK) != 0) {
					fprintf(stderr, "cache_modes %s: block %u torn (seq %llu)\n",
						vol, b, (unsigned long long)seq);
					torn++;
				}
			}
			if (seq < flushed_last[b])
				lost_flushed++;
			if (seq < acked_last[b])
				lost_acked++;
		}
		fprintf(stderr,
			"cache_modes %s: %u torn blocks, %u lost flushed writes, %u lost "
			"acknowledged writes\n",
			vol, torn, lost_flushed, lost_acked);
		H_CHECK(torn == 0);
		H_CHECK(lost_flushed == 0);
		H_CHECK(lost_acked == 0);
		free(img);
		mixsan_volume_close(v);
	}
	free(ack_of);
}

/*
 * Reads of unsynced writes (docs/osd.md): in write-back without a client
 * cache, a write, a read of the same block and a second write go out
 * together, ORDER_ROUNDS times.  The read must see the first write and
 * not the second: it waits on the primary for the sync of the first
 * write's frame, and the second write waits behind it.  Run last, so
 * that the OSDs' closing lines count those waits (a killed OSD's count
 * is lost).
 */
#define ORDER_ROUNDS 200u
static void order_check(mixsan_pool_t *p)
{
	struct mixsan_volume_options o = {.cache_mode = MIXSAN_CACHE_NONE};
	static uint8_t a[BLK], b[BLK], back[BLK];
	mixsan_volume_t *v;
	unsigned bad = 0;

	H_CHECK(mixsan_volume_create(p, "cm_order", 1 << 20, 0) == 0);
	H_CHECK(mixsan_volume_open(p, "cm_order", &o, &v) == 0);
	/* Written once first: a read of an object the volume knows absent is
	 * answered with zeroes without asking an OSD. */
	H_CHECK(mixsan_volume_write(v, a, BLK, 0) == 0);
	for (uint32_t i = 0; i < ORDER_ROUNDS; i++) {
		mixsan_completion_t *c[3];
		uint64_t off = (uint64_t)(i % 16) * BLK;

		h_fill(2 * i + 1000, a, BLK);
		h_fill(2 * i + 1001, b, BLK);
		for (int k = 0; k < 3; k++)
			H_CHECK(mixsan_completion_create(NULL, NULL, &c[k]) == 0);
		H_CHECK(mixsan_volume_aio_write(v, c[0], a, BLK, off) == 0);
		H_CHECK(mixsan_volume_aio_read(v, c[1], back, BLK, off) == 0);
		H_CHECK(mixsan_volume_aio_write(v, c[2], b, BLK, off) == 0);
		H_CHECK(mixsan_completion_wait(c[0]) == 0);
		H_CHECK(mixsan_completion_wait(c[1]) == BLK);
		H_CHECK(mixsan_completion_wait(c[2]) == 0);
		for (int k = 0; k < 3; k++)
			mixsan_completion_release(c[k]);
		bad += memcmp(back, a, BLK) != 0;
		H_CHECK(mixsan_volume_read(v, back, BLK, off) == BLK);
		H_CHECK(memcmp(back, b, BLK) == 0);
	}
	if (bad)
		fprintf(stderr, "order: %u of %u reads did not see the write sent just before\n",
			bad, ORDER_ROUNDS);
	H_CHECK(bad == 0);
	H_CHECK(mixsan_volume_close(v) == 0);
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	mixsan_volume_t *v;
	struct mixsan_volume_options bad = {.cache_mode = 3};
	uint8_t blk[BLK] = {0};
	long unsynced = 0, waited = 0;

	if (getenv("MIXSAN_TEST_MON")) {
		fprintf(stderr, "cache_modes: kills daemons, skipped on an external cluster\n");
		return 77;
	}
	memset(&c, 0, sizeof(c));
	c.snap_cache_bytes = 8 << 20; /* h_connect's client has a snapshot cache */
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "cm", 3, 16, "osd");
	if (mixsan_pool_open(cl, "cm", &p) < 0)
		H_FATAL("pool open");

	/* The API refuses what it does not know. */
	H_CHECK(mixsan_volume_create(p, "cm_api", 1 << 20, 0) == 0);
	H_CHECK(mixsan_volume_open(p, "cm_api", &bad, &v) == -EINVAL);
	bad.cache_mode = MIXSAN_CACHE_WRITEBACK;
	H_CHECK(mixsan_volume_open(p, "cm_api", &bad, &v) == 0);
	H_CHECK(mixsan_volume_cache_mode(v) == MIXSAN_CACHE_WRITEBACK);
	H_CHECK(mixsan_volume_write_flags(v, blk, BLK, 0, 2) == -EINVAL);
	H_CHECK(mixsan_volume_write_flags(v, blk, BLK, 0, MIXSAN_WRITE_FUA) == 0);
	H_CHECK(mixsan_volume_write(v, blk, BLK, BLK) == 0);
	H_CHECK(mixsan_volume_flush(v) == 0);
	H_CHECK(mixsan_volume_flush(v) == 0); /* nothing to flush */
	blk[0] = 7;
	H_CHECK(mixsan_volume_write(v, blk, BLK, 2 * BLK) == 0);
	H_CHECK(mixsan_volume_close(v) == 0); /* flushes it */
	{
		struct mixsan_volume_options ro = {.flags = MIXSAN_VOLUME_RDONLY};
		uint8_t back[BLK];

		H_CHECK(mixsan_volume_open(p, "cm_api", &ro, &v) == 0);
		H_CHECK(mixsan_volume_read(v, back, BLK, 2 * BLK) == BLK);
		H_CHECK(memcmp(back, blk, BLK) == 0);
		H_CHECK(mixsan_volume_close(v) == 0);
	}

	/* Writeback with every OSD killed at once: what was acknowledged
	 * and not yet flushed lives only in their logs' unsynced frames,
	 * which the page cache keeps and replay applies. */
	/* none reads a snapshot past the client's snapshot cache; the
	 * default mode reads it through. */
	{
		struct mixsan_volume_options so = {.snapshot = "s",
						   .cache_mode = MIXSAN_CACHE_NONE};
		struct mixsan_io_stats a, b;
		uint8_t data[65536], back[65536];

		h_fill(99, data, sizeof(data));
		H_CHECK(mixsan_volume_create(p, "cm_snap", 1 << 20, 0) == 0);
		H_CHECK(mixsan_volume_open(p, "cm_snap", NULL, &v) == 0);
		H_CHECK(mixsan_volume_write(v, data, sizeof(data), 0) == 0);
		H_CHECK(mixsan_volume_snap_create(v, "s") == 0);
		H_CHECK(mixsan_volume_close(v) == 0);
		mixsan_io_stats(cl, &a);
		H_CHECK(mixsan_volume_open(p, "cm_snap", &so, &v) == 0);
		H_CHECK(mixsan_volume_read(v, back, sizeof(back), 0) == (int64_t)sizeof(back));
		H_CHECK(memcmp(back, data, sizeof(data)) == 0);
		H_CHECK(mixsan_volume_close(v) == 0);
		mixsan_io_stats(cl, &b);
		H_CHECK(b.cache_fetched_bytes == a.cache_fetched_bytes);
		H_CHECK(b.cache_miss_bytes == a.cache_miss_bytes);
		so.cache_mode = MIXSAN_CACHE_WRITETHROUGH;
		H_CHECK(mixsan_volume_open(p, "cm_snap", &so, &v) == 0);
		H_CHECK(mixsan_volume_read(v, back, sizeof(back), 0) == (int64_t)sizeof(back));
		H_CHECK(memcmp(back, data, sizeof(data)) == 0);
		H_CHECK(mixsan_volume_close(v) == 0);
		mixsan_io_stats(cl, &a);
		H_CHECK(a.cache_fetched_bytes > b.cache_fetched_bytes);
	}

	for (int mode = 0; mode < 3; mode++)
		run_mode(&c, p, mode, mode == MIXSAN_CACHE_WRITEBACK ? -1 : mode);
	order_check(p);

	/* The writeback runs committed unsynced frames. */
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	for (int i = 0; i < 3; i++) {
		char log[16], path[512], l[512];
		FILE *f;

		h_signal_osd(&c, i, SIGTERM);
		snprintf(log, sizeof(log), "osd.%d", i);
		H_CHECK(h_log_count(&c, log, "error") == 0);
		snprintf(path, sizeof(path), "%s/%s.log", c.dir, log);
		f = fopen(path, "r");
		while (f && fgets(l, sizeof(l), f)) {
			const char *at = strstr(l, "commits, ");

			if (at && strstr(l, "object store closing"))
				unsynced += atol(at + strlen("commits, "));
			/* "... osd[PID] info: N requests waited ..." */
			at = strstr(l, "requests waited for a sync") ? strstr(l, "]") : NULL;
			at = at ? strchr(at, ':') : NULL;
			if (at)
				waited += atol(at + 1);
		}
		if (f)
			fclose(f);
	}
	fprintf(stderr, "cache_modes: %ld unsynced commits on the OSDs\n", unsynced);
	H_CHECK(unsynced > 0);
	/* The order check's reads waited for a worker's sync. */
	fprintf(stderr, "cache_modes: %ld requests waited for a sync\n", waited);
	H_CHECK(waited >= (long)ORDER_ROUNDS / 2);
	h_stop(&c);
	fprintf(stderr, "cache_modes: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

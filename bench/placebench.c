/*
 * placebench: what the disk and the filesystem allow for large writes under
 * a write-ahead log, apart from the rest of the OSD (docs/object-store.md,
 * "Costs and what comes next").  W writers, one per replica as three OSDs
 * on one disk would be, each with its own log file and object file in DIR.
 * Each writes 1 MiB records into its log, fdatasyncs the log every 4 (a
 * group commit at queue depth 4), then places each record in its object
 * file, where the object store applies a frame:
 *
 *   copy    pwrite of the record's bytes (what the store does today): every
 *           byte reaches the disk twice, once in the log, once in the object;
 *   clone   FICLONERANGE from the log's blocks into the object's (a reflink,
 *           XFS or btrfs): every byte reaches the disk once.
 *
 * Every 256 MiB of log each writer fsyncs its object file and starts its log
 * again from the top, as a checkpoint does.  The object file is written in
 * full first (256 MiB), so every placement overwrites.  Prints the MiB/s of
 * records each writer placed, on average.
 *
 *   placebench DIR copy|clone [SECONDS [WRITERS]]   (10 s, 3 writers)
 *
 * Exit 2 if the filesystem cannot clone (EOPNOTSUPP, EXDEV, EINVAL).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define REC (1u << 20)
#define GROUP 4
#define SPAN 256 /* MiB of log before a checkpoint, and of object */
#define WRITERS_MAX 16

struct writer {
	pthread_t t;
	int id;
	uint64_t placed;
	int err; /* 0, or the errno that stopped it */
};

static const char *dir;
static int clone_mode;
static double seconds = 10;
static pthread_barrier_t ready; /* every object written in full */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int put(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t n = pwrite(fd, buf, len, off);

	if (n == (ssize_t)len)
		return 0;
	return n < 0 ? errno : EIO;
}

static int place(int obj, int log, uint8_t *buf, off_t from, off_t to)
{
	if (clone_mode) {
		struct file_clone_range cr = {
			.src_fd = log,
			.src_offset = (uint64_t)from,
			.src_length = REC,
			.dest_offset = (uint64_t)to,
		};

		return ioctl(obj, FICLONERANGE, &cr) ? errno : 0;
	}
	/* The store applies from the frame it holds in memory: no read. */
	return put(obj, buf, REC, to);
}

static int run(struct writer *w, int log, int obj, uint8_t *buf)
{
	off_t held[GROUP], lo = 0;
	uint64_t n = 0;
	int nh = 0, r = 0;
	double end;

	for (int i = 0; i < SPAN; i++)
		if ((r = put(obj, buf, REC, (off_t)i * REC)))
			break;
	if (!r && fsync(obj))
		r = errno;
	pthread_barrier_wait(&ready); /* the timed part starts together */
	if (r)
		return r;
	end = now() + seconds;
	while (now() < end) {
		buf[0]++; /* each record differs */
		if ((r = put(log, buf, REC, lo)))
			return r;
		held[nh++] = lo;
		lo += REC;
		if (nh < GROUP)
			continue;
		if (fdatasync(log))
			return errno;
		for (int k = 0; k < nh; k++) {
			off_t to = (off_t)((n + (uint64_t)k) % SPAN) * REC;

			if ((r = place(obj, log, buf, held[k], to)))
				return r;
		}
		n += (uint64_t)nh;
		w->placed = n;
		nh = 0;
		if (lo >= (off_t)SPAN * REC) {
			if (fsync(obj))
				return errno;
			lo = 0;
		}
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char path[4096];
	uint8_t *buf = aligned_alloc(4096, REC);
	int log = -1, obj = -1;

	if (!buf) {
		w->err = ENOMEM;
		pthread_barrier_wait(&ready);
		return NULL;
	}
	memset(buf, 'a' + w->id, REC);
	snprintf(path, sizeof(path), "%s/placebench.log.%d", dir, w->id);
	log = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	snprintf(path, sizeof(path), "%s/placebench.obj.%d", dir, w->id);
	obj = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (log < 0 || obj < 0) {
		w->err = errno;
		pthread_barrier_wait(&ready);
	} else {
		w->err = run(w, log, obj, buf);
	}
	if (log >= 0)
		close(log);
	if (obj >= 0)
		close(obj);
	snprintf(path, sizeof(path), "%s/placebench.log.%d", dir, w->id);
	unlink(path);
	snprintf(path, sizeof(path), "%s/placebench.obj.%d", dir, w->id);
	unlink(path);
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	struct writer ws[WRITERS_MAX];
	int nw = 3, err = 0;
	uint64_t total = 0;

	if (argc < 3 || (strcmp(argv[2], "copy") && strcmp(argv[2], "clone"))) {
		fprintf(stderr, "usage: placebench DIR copy|clone [SECONDS [WRITERS]]\n");
		return 1;
	}
	dir = argv[1];
	clone_mode = !strcmp(argv[2], "clone");
	if (argc > 3)
		seconds = atof(argv[3]);
	if (argc > 4)
		nw = atoi(argv[4]);
	if (seconds <= 0 || seconds > 600 || nw < 1 || nw > WRITERS_MAX) {
		fprintf(stderr, "placebench: SECONDS 0 to 600, WRITERS 1 to %d\n", WRITERS_MAX);
		return 1;
	}
	pthread_barrier_init(&ready, NULL, (unsigned)nw);
	for (int i = 0; i < nw; i++) {
		ws[i] = (struct writer){.id = i};
		if (pthread_create(&ws[i].t, NULL, writer_main, &ws[i])) {
			fprintf(stderr, "placebench: cannot start writer %d\n", i);
			exit(1);
		}
	}
	for (int i = 0; i < nw; i++) {
		pthread_join(ws[i].t, NULL);
		total += ws[i].placed;
		if (ws[i].err && !err)
			err = ws[i].err;
	}
	if (err) {
		fprintf(stderr, "placebench: %s in %s: %s\n", argv[2], dir, strerror(err));
		return clone_mode && (err == EOPNOTSUPP || err == EXDEV || err == EINVAL) ? 2 : 1;
	}
	printf("%s %s: %.0f MiB/s a writer, %d writers\n", dir, argv[2],
	       (double)total / nw / seconds, nw);
	return 0;
}

/*
 * A flipped bit in a stored block is detected on read: the client gets an
 * error (EIO), never wrong data, the OSD logs the checksum mismatch, and the
 * other blocks of the object and other objects still read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "map.h"

#define OBJ_SIZE (256u * 1024u)


int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	int32_t acting[8];
	uint32_t pg;
	uint8_t *data = malloc(OBJ_SIZE), *rb = malloc(OBJ_SIZE);
	char dir[400];
	int n, primary;

	memset(&c, 0, sizeof(c));
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "rot", 3, 8, "osd");
	if (mixsan_pool_open(cl, "rot", &p) < 0)
		H_FATAL("pool open");
	h_fill(4242, data, OBJ_SIZE);
	H_CHECK(mixsan_write_full(p, "victim", data, OBJ_SIZE) == 0);
	H_CHECK(mixsan_write_full(p, "bystander", data + 4096, 4096) == 0);
	n = mx_client_locate(cl, mixsan_pool_id(p), "victim", &pg, acting, 8);
	H_CHECK(n == 3);
	primary = acting[0];
	/* Stop the primary cleanly (its store checkpoints), damage one bit of
	 * the block at 128 KiB in its data, start it again. */
	h_signal_osd(&c, primary, SIGTERM);
	h_osd_dir(&c, primary, dir, sizeof(dir));
	H_CHECK(h_flip_in_tree(dir, data + 128 * 1024, 4096, 100) == 1);
	h_start_osd(&c, primary);
	H_CHECK(h_wait_up(&c, cl, 3, 30) == 0);
	/* Reading the damaged block fails; the bytes never come back wrong. */
	{
		int64_t r = mixsan_read(p, "victim", rb, OBJ_SIZE, 0);

		H_CHECK(r == -EIO);
		r = mixsan_read(p, "victim", rb, 4096, 128 * 1024);
		H_CHECK(r == -EIO);
		/* Other blocks of the object and other objects still read. */
		r = mixsan_read(p, "victim", rb, 4096, 0);
		H_CHECK(r == 4096 && memcmp(rb, data, 4096) == 0);
		r = mixsan_read(p, "victim", rb, 64 * 1024, 192 * 1024);
		H_CHECK(r == 64 * 1024 && memcmp(rb, data + 192 * 1024, 64 * 1024) == 0);
		r = mixsan_read(p, "bystander", rb, 4096, 0);
		H_CHECK(r == 4096 && memcmp(rb, data + 4096, 4096) == 0);
	}
	{
		char log[16];

		snprintf(log, sizeof(log), "osd.%d", primary);
		H_CHECK(h_log_count(&c, log, "checksum mismatch") >= 1);
	}
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	free(data);
	free(rb);
	h_stop(&c);
	fprintf(stderr, "bitrot: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

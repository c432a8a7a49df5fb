/*
 * System test of block volumes (docs/volumes.md) against a real cluster
 * (1 monitor, 3 OSDs): create, list, info, remove; I/O across object
 * boundaries checked against a model of the disk under random writes,
 * discards and zeroing, synchronous and asynchronous; the allocation map
 * (extents cover every byte that is not zero, and no object exists that the
 * map does not mark); resize; the writer's lock: a second writer refused, a
 * dead writer's lease taken over, a writer that lost its lock refused.
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
#include "internal.h"
#include "map.h"

#define ORDER 16 /* 64 KiB objects: many objects in a small volume */
#define OBJ (1u << ORDER)
#define VOLSZ (40u * OBJ + 12345u) /* a partial last object */

static int count_cb(void *arg, const char *name)
{
	int *n = arg;

	(void)name;
	(*n)++;
	return 0;
}

struct ext_check {
	const uint8_t *model;
	uint64_t next;
	int bad;
};

/* Every byte in a hole extent must be zero in the model. */
static int ext_cb(void *arg, uint64_t off, uint64_t len, int data)
{
	struct ext_check *e = arg;

	if (off != e->next)
		e->bad++;
	e->next = off + len;
	if (!data)
		for (uint64_t i = 0; i < len; i++)
			if (e->model[off + i]) {
				e->bad++;
				break;
			}
	return 0;
}

static int hole_count_cb(void *arg, uint64_t off, uint64_t len, int data)
{
	uint64_t *holes = arg;

	(void)off;
	if (!data)
		*holes += len;
	return 0;
}

struct objs_ctx {
	const char *prefix;
	int n;
};

static int objs_cb(void *arg, const char *oid, size_t len, uint64_t size)
{
	struct objs_ctx *o = arg;

	(void)len;
	(void)size;
	if (strncmp(oid, o->prefix, strlen(o->prefix)) == 0 && !strstr(oid, "header") &&
	    !strstr(oid, "objmap"))
		o->n++;
	return 0;
}

static void check_all(mixsan_volume_t *v, const uint8_t *model, uint64_t size)
{
	uint8_t *buf = malloc(size + 100);
	struct ext_check e = {.model = model};

	H_CHECK(mixsan_volume_read(v, buf, size + 100, 0) == (int64_t)size);
	H_CHECK(memcmp(buf, model, size) == 0);
	H_CHECK(mixsan_volume_extents(v, 0, size, ext_cb, &e) == 0);
	H_CHECK(e.bad == 0 && e.next == size);
	free(buf);
}

/* Objects stored for the volume, and the map's count. */
static void check_map(mixsan_pool_t *p, mixsan_volume_t *v)
{
	struct mixsan_volume_info info;
	char prefix[40];
	struct objs_ctx o = {.prefix = prefix};

	H_CHECK(mixsan_volume_info(v, &info) == 0);
	snprintf(prefix, sizeof(prefix), "vol.%s.", info.id);
	H_CHECK(mixsan_list(p, objs_cb, &o) == 0);
	/* exists => marked; marked but absent is allowed, but not here
	 * (no crash): equal. */
	if ((uint64_t)o.n != info.objects_used)
		H_FATAL("%d objects stored, %llu marked", o.n,
			(unsigned long long)info.objects_used);
}

static void random_ops(mixsan_volume_t *v, uint8_t *model, uint64_t size, uint64_t seed,
		       int rounds)
{
	h_volume_random_ops(v, model, size, seed, rounds, 3 * OBJ, true);
}

struct aio_state {
	int done, errors;
};

static void aio_cb(mixsan_completion_t *c, void *arg)
{
	struct aio_state *a = arg;

	if (mixsan_completion_result(c) < 0)
		__atomic_add_fetch(&a->errors, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&a->done, 1, __ATOMIC_RELAXED);
}

/* 64 writes in flight at once (disjoint, spanning objects), then a flush
 * that must not finish before them. */
static void aio_round(mixsan_volume_t *v, uint8_t *model, uint64_t size)
{
	enum { N = 64, LEN = 20000 };
	static uint8_t bufs[N][LEN];
	mixsan_completion_t *cs[N], *fc;
	struct aio_state a = {0};

	for (int i = 0; i < N; i++) {
		uint64_t off = (uint64_t)i * (size / N);

		h_fill(1000 + i, bufs[i], LEN);
		memcpy(model + off, bufs[i], LEN);
		H_CHECK(mixsan_completion_create(aio_cb, &a, &cs[i]) == 0);
		H_CHECK(mixsan_volume_aio_write(v, cs[i], bufs[i], LEN, off) == 0);
	}
	H_CHECK(mixsan_completion_create(NULL, NULL, &fc) == 0);
	H_CHECK(mixsan_volume_aio_flush(v, fc) == 0);
	H_CHECK(mixsan_completion_wait(fc) == 0);
	/* The flush completed: every write before it has. */
	H_CHECK(__atomic_load_n(&a.done, __ATOMIC_RELAXED) == N);
	mixsan_completion_release(fc);
	for (int i = 0; i < N; i++) {
		H_CHECK(mixsan_completion_wait(cs[i]) == 0);
		mixsan_completion_release(cs[i]);
	}
	H_CHECK(a.errors == 0);
}

static volatile sig_atomic_t continued;

static void on_cont(int sig)
{
	(void)sig;
	continued = 1;
}

/* A child process that opens vol for writing with a short lease, writes,
 * says so on fd, and then waits to be killed or stopped.  After a SIGCONT
 * (when another writer took over) it tries to write again and exits 0 if
 * that was refused with -ENOLCK. */
static pid_t writer_child(struct h_cluster *c, const char *vol, unsigned lease_ms, int fd)
{
	pid_t pid = fork();

	H_CHECK(pid >= 0);
	if (pid == 0) {
		mixsan_cluster_t *cl = h_connect(c);
		struct mixsan_volume_options o = {.lease_ms = lease_ms};
		mixsan_pool_t *p;
		mixsan_volume_t *v;
		int r;

		if (mixsan_pool_open(cl, "vols", &p) < 0 ||
		    mixsan_volume_open(p, vol, &o, &v) < 0 ||
		    mixsan_volume_write(v, "child", 5, 0) < 0)
			_exit(2);
		if (write(fd, "k", 1) != 1)
			_exit(2);
		while (!continued) /* killed, or stopped and continued */
			usleep(10 * 1000);
		r = mixsan_volume_write(v, "stale", 5, 0);
		_exit(r == -ENOLCK ? 0 : 3);
	}
	return pid;
}

static void wait_ready(int fd)
{
	char ch;

	H_CHECK(read(fd, &ch, 1) == 1);
}


static void lock_tests(struct h_cluster *c, mixsan_pool_t *p)
{
	struct mixsan_volume_options ro = {.flags = MIXSAN_VOLUME_RDONLY};
	struct mixsan_volume_info info;
	mixsan_volume_t *v, *v2;
	int fds[2], status;
	char buf[8];
	pid_t pid;
	uint64_t t0;

	H_CHECK(mixsan_volume_create(p, "locked", 1 << 20, 0) == 0);
	/* Two writers in one process: the second is refused. */
	H_CHECK(mixsan_volume_open(p, "locked", NULL, &v) == 0);
	H_CHECK(mixsan_volume_open(p, "locked", NULL, &v2) == -EBUSY);
	H_CHECK(mixsan_volume_remove(p, "locked") == -EBUSY);
	H_CHECK(mixsan_volume_info(v, &info) == 0 && info.lock_owner[0]);
	H_CHECK(mixsan_volume_write(v, "abc", 3, 0) == 0);
	/* A reader needs no lock and sees the writes; it cannot write. */
	H_CHECK(mixsan_volume_open(p, "locked", &ro, &v2) == 0);
	H_CHECK(mixsan_volume_read(v2, buf, 3, 0) == 3 && memcmp(buf, "abc", 3) == 0);
	H_CHECK(mixsan_volume_write(v2, "x", 1, 0) == -EROFS);
	H_CHECK(mixsan_volume_discard(v2, 1, 0) == -EROFS);
	H_CHECK(mixsan_volume_resize(v2, 1) == -EROFS);
	H_CHECK(mixsan_volume_close(v2) == 0);
	H_CHECK(mixsan_volume_close(v) == 0);
	/* Closed: the lock is free at once. */
	H_CHECK(mixsan_volume_open(p, "locked", NULL, &v) == 0);
	H_CHECK(mixsan_volume_close(v) == 0);

	/* A writer killed holding the lock: refused until its lease (2 s)
	 * and the skew allowance (a sixth) have passed, then taken over. */
	H_CHECK(pipe(fds) == 0);
	pid = writer_child(c, "locked", 2000, fds[1]);
	wait_ready(fds[0]);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	t0 = (uint64_t)time(NULL);
	H_CHECK(mixsan_volume_open(p, "locked", NULL, &v) == -EBUSY);
	while (mixsan_volume_open(p, "locked", NULL, &v) == -EBUSY) {
		if ((uint64_t)time(NULL) - t0 > 30)
			H_FATAL("the dead writer's lock was never taken over");
		usleep(100 * 1000);
	}
	H_CHECK(mixsan_volume_read(v, buf, 5, 0) == 5 && memcmp(buf, "child", 5) == 0);
	H_CHECK(mixsan_volume_close(v) == 0);

	/* A writer frozen past its lease (SIGSTOP): another takes over; once
	 * it runs again its writes are refused, and the new writer's data
	 * stays. */
	pid = writer_child(c, "locked", 2000, fds[1]);
	wait_ready(fds[0]);
	kill(pid, SIGSTOP);
	t0 = (uint64_t)time(NULL);
	while (mixsan_volume_open(p, "locked", NULL, &v) == -EBUSY) {
		if ((uint64_t)time(NULL) - t0 > 30)
			H_FATAL("the frozen writer's lock was never taken over");
		usleep(100 * 1000);
	}
	H_CHECK(mixsan_volume_write(v, "owner", 5, 0) == 0);
	kill(pid, SIGCONT);
	H_CHECK(waitpid(pid, &status, 0) == pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		H_FATAL("the old writer was not refused (status %d)", status);
	H_CHECK(mixsan_volume_read(v, buf, 5, 0) == 5 && memcmp(buf, "owner", 5) == 0);
	H_CHECK(mixsan_volume_close(v) == 0);
	close(fds[0]);
	close(fds[1]);
	H_CHECK(mixsan_volume_remove(p, "locked") == 0);
}

int main(void)
{
	struct h_cluster c;
	struct mixsan_volume_info info;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	mixsan_volume_t *v;
	uint8_t *model;
	uint64_t holes;
	int n;

	signal(SIGCONT, on_cont);
	memset(&c, 0, sizeof(c));
	for (int i = 0; i < 3; i++) {
		char loc[32];

		snprintf(loc, sizeof(loc), "host=h%d", i);
		h_set_location(&c, i, loc);
	}
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "vols", 3, 32, "osd");
	H_CHECK(mixsan_pool_open(cl, "vols", &p) == 0);

	/* Create, list, errors. */
	n = 0;
	H_CHECK(mixsan_volume_list(p, count_cb, &n) == 0 && n == 0);
	H_CHECK(mixsan_volume_create(p, "disk", VOLSZ, ORDER) == 0);
	H_CHECK(mixsan_volume_create(p, "disk", VOLSZ, ORDER) == -EEXIST);
	H_CHECK(mixsan_volume_create(p, "", 1, 0) == -EINVAL);
	H_CHECK(mixsan_volume_create(p, "a/b", 1, 0) == -EINVAL);
	H_CHECK(mixsan_volume_create(p, "x", 1, 11) == -EINVAL);
	H_CHECK(mixsan_volume_create(p, "x", 1, 27) == -EINVAL);
	H_CHECK(mixsan_volume_create(p, "huge", (MIXSAN_VOLUME_OBJECTS_MAX << 12) + 1, 12) ==
		-EINVAL);
	H_CHECK(mixsan_volume_create(p, "other", 1ull << 40, 0) == 0); /* thin: 1 TiB */
	n = 0;
	H_CHECK(mixsan_volume_list(p, count_cb, &n) == 0 && n == 2);
	H_CHECK(mixsan_volume_open(p, "nope", NULL, &v) == -ENOENT);

	H_CHECK(mixsan_volume_open(p, "disk", NULL, &v) == 0);
	H_CHECK(mixsan_volume_info(v, &info) == 0);
	H_CHECK(info.size == VOLSZ && info.order == ORDER && info.object_size == OBJ);
	H_CHECK(info.objects == 41 && info.objects_used == 0);
	H_CHECK(mixsan_volume_size(v) == VOLSZ);
	model = calloc(1, VOLSZ);
	/* A new volume reads as zeroes and is one hole. */
	check_all(v, model, VOLSZ);
	holes = 0;
	H_CHECK(mixsan_volume_extents(v, 0, VOLSZ, hole_count_cb, &holes) == 0);
	H_CHECK(holes == VOLSZ);
	/* Out of range. */
	{
		char b[16];

		H_CHECK(mixsan_volume_write(v, "x", 1, VOLSZ) == -EINVAL);
		H_CHECK(mixsan_volume_write(v, "xx", 2, VOLSZ - 1) == -EINVAL);
		H_CHECK(mixsan_volume_read(v, b, 16, VOLSZ - 4) == 4);
		H_CHECK(mixsan_volume_read(v, b, 16, VOLSZ) == 0);
		H_CHECK(mixsan_volume_read(v, b, 16, VOLSZ + 1) == -EINVAL);
		H_CHECK(mixsan_volume_discard(v, 2, VOLSZ - 1) == -EINVAL);
	}

	/* Locality: each byte's object, PG, acting set and primary host, as
	 * placement gives them; allocated once written. */
	{
		static const uint64_t offs[] = {0, OBJ, 5 * OBJ + 7, VOLSZ - 1};
		struct mixsan_volume_location l;
		struct mx_map *m = mx_client_map_copy(cl);

		for (size_t k = 0; k < sizeof(offs) / sizeof(offs[0]); k++) {
			char want[64], host[16];
			int32_t acting[3];
			uint32_t pg = 0;
			const struct mx_osd_info *o;

			H_CHECK(mixsan_volume_locate(v, offs[k], &l) == 0);
			snprintf(want, sizeof(want), "vol.%s.%016llx", info.id,
				 (unsigned long long)(offs[k] / OBJ));
			H_CHECK(strcmp(l.object, want) == 0);
			n = mx_client_locate(cl, mixsan_pool_id(p), want, &pg, acting, 3);
			H_CHECK(n == 3 && l.n_acting == 3 && l.pg == pg && l.pool == mixsan_pool_id(p));
			H_CHECK(memcmp(l.acting, acting, sizeof(acting)) == 0);
			o = m ? mx_map_osd(m, acting[0]) : NULL;
			H_CHECK(o && strcmp(l.primary_addr, o->addr) == 0);
			snprintf(host, sizeof(host), "h%d", acting[0]);
			H_CHECK(strcmp(l.primary_host, host) == 0);
			H_CHECK(!l.allocated);
		}
		mx_map_free(m);
		H_CHECK(mixsan_volume_locate(v, VOLSZ, &l) == -EINVAL);
		H_CHECK(mixsan_volume_write(v, "L", 1, 0) == 0);
		model[0] = 'L';
		H_CHECK(mixsan_volume_locate(v, 0, &l) == 0 && l.allocated);
		fprintf(stderr, "volumes: offset 0 in %s, pg %u, primary osd.%d on %s\n", l.object,
			l.pg, l.acting[0], l.primary_host);
	}

	/* Random writes, discards and zeroing against the model. */
	random_ops(v, model, VOLSZ, 42, 300);
	check_all(v, model, VOLSZ);
	check_map(p, v);
	/* A whole-volume discard leaves nothing stored. */
	H_CHECK(mixsan_volume_discard(v, VOLSZ, 0) == 0);
	memset(model, 0, VOLSZ);
	H_CHECK(mixsan_volume_flush(v) == 0);
	check_all(v, model, VOLSZ);
	check_map(p, v);
	H_CHECK(mixsan_volume_info(v, &info) == 0 && info.objects_used == 0);

	/* Many requests in flight; flush waits for them. */
	aio_round(v, model, VOLSZ);
	check_all(v, model, VOLSZ);
	check_map(p, v);

	/* Fast zeroing refuses to write zeroes inside an object with data,
	 * and changes nothing then. */
	H_CHECK(mixsan_volume_write(v, "data", 4, 3 * OBJ + 100) == 0);
	memcpy(model + 3 * OBJ + 100, "data", 4);
	H_CHECK(mixsan_volume_write_zeroes(v, 10, 3 * OBJ + 50, MIXSAN_ZERO_FAST) == -ENOTSUP);
	H_CHECK(mixsan_volume_write_zeroes(v, OBJ, 3 * OBJ, MIXSAN_ZERO_FAST) == 0);
	memset(model + 3 * OBJ, 0, OBJ);
	check_all(v, model, VOLSZ);

	/* Reopen: what a new writer reads, and its map, match. */
	H_CHECK(mixsan_volume_close(v) == 0);
	H_CHECK(mixsan_volume_open(p, "disk", NULL, &v) == 0);
	check_all(v, model, VOLSZ);
	check_map(p, v);
	random_ops(v, model, VOLSZ, 43, 100);
	check_all(v, model, VOLSZ);

	/* Shrink into the middle of an object, grow again: what was cut
	 * reads as zeroes. */
	H_CHECK(mixsan_volume_resize(v, 10 * OBJ + 7) == 0);
	H_CHECK(mixsan_volume_size(v) == 10 * OBJ + 7);
	memset(model + 10 * OBJ + 7, 0, VOLSZ - (10 * OBJ + 7));
	check_map(p, v);
	H_CHECK(mixsan_volume_resize(v, VOLSZ) == 0);
	check_all(v, model, VOLSZ);
	H_CHECK(mixsan_volume_resize(v, 1ull << 40) == 0); /* grow past the map's end */
	H_CHECK(mixsan_volume_write(v, "end", 3, (1ull << 40) - 3) == 0);
	H_CHECK(mixsan_volume_info(v, &info) == 0 && info.size == 1ull << 40);
	H_CHECK(mixsan_volume_close(v) == 0);

	lock_tests(&c, p);

	/* Remove: its objects and its name go. */
	H_CHECK(mixsan_volume_remove(p, "disk") == 0);
	H_CHECK(mixsan_volume_remove(p, "disk") == -ENOENT);
	H_CHECK(mixsan_volume_remove(p, "other") == 0);
	{
		struct objs_ctx o = {.prefix = "vol."};

		H_CHECK(mixsan_list(p, objs_cb, &o) == 0 && o.n == 0);
	}
	n = 0;
	H_CHECK(mixsan_volume_list(p, count_cb, &n) == 0 && n == 0);

	free(model);
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	h_stop(&c);
	fprintf(stderr, "volumes: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

/*
 * System test of the client API against a real cluster (1 monitor,
 * 3 OSDs): every object operation in its synchronous and asynchronous
 * forms, attributes, listing, errors, and a bad pool.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

struct list_ctx {
	int n;
	int seen_big;
};

static int list_cb(void *arg, const char *oid, size_t len, uint64_t size)
{
	struct list_ctx *l = arg;

	(void)len;
	l->n++;
	if (strcmp(oid, "big") == 0 && size == 3u << 20)
		l->seen_big = 1;
	return 0;
}

static int xattr_cb(void *arg, const char *name, const void *val, size_t len)
{
	int *n = arg;

	if ((strcmp(name, "a") == 0 && len == 1 && memcmp(val, "1", 1) == 0) ||
	    (strcmp(name, "b") == 0 && len == 0))
		(*n)++;
	return 0;
}

struct aio_count {
	int done;
	int errors;
};

static void aio_cb(mixsan_completion_t *c, void *arg)
{
	struct aio_count *a = arg;

	if (mixsan_completion_result(c) < 0)
		__atomic_add_fetch(&a->errors, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&a->done, 1, __ATOMIC_RELAXED);
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	struct mixsan_stat st;
	char buf[256];
	uint8_t *big, *rb;

	memset(&c, 0, sizeof(c));
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "api", 3, 16, "osd");
	H_CHECK(mixsan_pool_open(cl, "nope", &p) == -ENOENT);
	H_CHECK(mixsan_pool_open(cl, "api", &p) == 0);

	/* write, read, partial overwrite, append, stat */
	H_CHECK(mixsan_write(p, "o1", "hello world", 11, 0) == 0);
	H_CHECK(mixsan_read(p, "o1", buf, sizeof(buf), 0) == 11);
	H_CHECK(memcmp(buf, "hello world", 11) == 0);
	H_CHECK(mixsan_write(p, "o1", "W", 1, 6) == 0);
	H_CHECK(mixsan_read(p, "o1", buf, 5, 6) == 5 && memcmp(buf, "World", 5) == 0);
	H_CHECK(mixsan_append(p, "o1", "!!", 2) == 0);
	H_CHECK(mixsan_stat(p, "o1", &st) == 0 && st.size == 13);
	H_CHECK(st.version_seq > 0 && st.mtime_ms > 0);
	H_CHECK(mixsan_read(p, "o1", buf, 100, 13) == 0);
	H_CHECK(mixsan_read(p, "o1", buf, 100, 1000) == 0);
	/* write past the end leaves a hole of zeroes */
	H_CHECK(mixsan_write(p, "o2", "x", 1, 8192) == 0);
	H_CHECK(mixsan_read(p, "o2", buf, 16, 4090) == 16);
	H_CHECK(buf[0] == 0 && buf[15] == 0);
	/* truncate down and up */
	H_CHECK(mixsan_truncate(p, "o1", 5) == 0);
	H_CHECK(mixsan_stat(p, "o1", &st) == 0 && st.size == 5);
	H_CHECK(mixsan_truncate(p, "o1", 10) == 0);
	H_CHECK(mixsan_read(p, "o1", buf, 100, 0) == 10);
	H_CHECK(memcmp(buf, "hello\0\0\0\0\0", 10) == 0);
	/* write_full replaces */
	H_CHECK(mixsan_write_full(p, "o1", "abc", 3) == 0);
	H_CHECK(mixsan_stat(p, "o1", &st) == 0 && st.size == 3);
	/* missing objects */
	H_CHECK(mixsan_read(p, "missing", buf, 10, 0) == -ENOENT);
	H_CHECK(mixsan_stat(p, "missing", &st) == -ENOENT);
	H_CHECK(mixsan_remove(p, "missing") == -ENOENT);
	/* attributes */
	H_CHECK(mixsan_setxattr(p, "o1", "a", "1", 1) == 0);
	H_CHECK(mixsan_setxattr(p, "o1", "b", "", 0) == 0);
	H_CHECK(mixsan_getxattr(p, "o1", "a", buf, sizeof(buf)) == 1 && buf[0] == '1');
	H_CHECK(mixsan_getxattr(p, "o1", "a", buf, 0) == -ERANGE);
	H_CHECK(mixsan_getxattr(p, "o1", "zz", buf, sizeof(buf)) == -ENODATA);
	{
		int n = 0;

		H_CHECK(mixsan_getxattrs(p, "o1", xattr_cb, &n) == 0 && n == 2);
	}
	H_CHECK(mixsan_rmxattr(p, "o1", "a") == 0);
	H_CHECK(mixsan_getxattr(p, "o1", "a", buf, sizeof(buf)) == -ENODATA);
	H_CHECK(mixsan_rmxattr(p, "o1", "a") == -ENODATA);
	/* argument checks */
	H_CHECK(mixsan_write(p, "", "x", 1, 0) == -EINVAL);
	H_CHECK(mixsan_setxattr(p, "o1", "", "x", 1) == -EINVAL);
	/* a large object */
	big = malloc(3u << 20);
	rb = malloc(3u << 20);
	h_fill(7, big, 3u << 20);
	H_CHECK(mixsan_write_full(p, "big", big, 3u << 20) == 0);
	H_CHECK(mixsan_read(p, "big", rb, 3u << 20, 0) == 3 << 20);
	H_CHECK(memcmp(big, rb, 3u << 20) == 0);
	/* remove */
	H_CHECK(mixsan_remove(p, "o2") == 0);
	H_CHECK(mixsan_stat(p, "o2", &st) == -ENOENT);
	/* asynchronous writes, many in flight */
	{
		struct aio_count a = {0};
		mixsan_completion_t *cs[64];
		char name[32];

		for (int i = 0; i < 64; i++) {
			snprintf(name, sizeof(name), "aio.%d", i);
			H_CHECK(mixsan_completion_create(aio_cb, &a, &cs[i]) == 0);
			H_CHECK(mixsan_aio_write_full(p, name, cs[i], big + i * 1000, 4096) == 0);
		}
		for (int i = 0; i < 64; i++) {
			H_CHECK(mixsan_completion_wait(cs[i]) == 0);
			mixsan_completion_release(cs[i]);
		}
		H_CHECK(a.done == 64 && a.errors == 0);
		for (int i = 0; i < 64; i++) {
			snprintf(name, sizeof(name), "aio.%d", i);
			H_CHECK(mixsan_completion_create(NULL, NULL, &cs[i]) == 0);
			H_CHECK(mixsan_aio_read(p, name, cs[i], rb + i * 4096, 4096, 0) == 0);
		}
		for (int i = 0; i < 64; i++) {
			H_CHECK(mixsan_completion_wait(cs[i]) == 4096);
			H_CHECK(memcmp(rb + i * 4096, big + i * 1000, 4096) == 0);
			mixsan_completion_release(cs[i]);
		}
	}
	/* listing */
	{
		struct list_ctx l = {0};

		H_CHECK(mixsan_list(p, list_cb, &l) == 0);
		H_CHECK(l.n == 2 + 64 && l.seen_big);
		if (l.n != 66)
			fprintf(stderr, "listed %d objects\n", l.n);
	}
	free(big);
	free(rb);
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	h_stop(&c);
	fprintf(stderr, "api: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

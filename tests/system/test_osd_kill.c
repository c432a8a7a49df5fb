/*
 * kill -9 an OSD in the middle of a stream of writes, then restart it:
 * every write the client saw acknowledged reads back intact, the restarted
 * OSD's store opens cleanly, and afterwards every replica is identical.
 *
 * Three rounds kill a different OSD each (so primaries and replicas both
 * die).  Writes are a mix of whole-object writes, partial overwrites and
 * appends on a few hundred objects, with 16 in flight; the expected
 * content of each object is kept in memory and updated on each
 * acknowledgement.  Requests in flight at the kill are retried by the
 * client (same request id), so each completes exactly once.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "map.h"

#define N_OBJ 300
#define OBJ_MAX (256u * 1024u)
#define QD 16

struct model {
	uint8_t *data; /* expected content */
	uint32_t size;
	bool busy;     /* a write is in flight: one at a time per object */
};

struct req {
	mixsan_completion_t *c;
	int obj;
	int kind; /* 0 write_full, 1 write at offset, 2 append */
	uint32_t off, len;
	uint8_t *buf;
};

static struct model objs[N_OBJ];

static void apply(struct req *r)
{
	struct model *m = &objs[r->obj];

	switch (r->kind) {
	case 0:
		memcpy(m->data, r->buf, r->len);
		m->size = r->len;
		break;
	case 1:
		if (r->off > m->size)
			memset(m->data + m->size, 0, r->off - m->size);
		memcpy(m->data + r->off, r->buf, r->len);
		if (r->off + r->len > m->size)
			m->size = r->off + r->len;
		break;
	case 2:
		memcpy(m->data + m->size, r->buf, r->len);
		m->size += r->len;
		break;
	}
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	struct req reqs[QD];
	uint64_t seed = (uint64_t)time(NULL), rs;
	uint64_t acked = 0, checked = 0;
	struct mx_map *m;
	int32_t pool_id;
	uint8_t *rb;

	if (getenv("MIXSAN_TEST_SEED"))
		seed = strtoull(getenv("MIXSAN_TEST_SEED"), NULL, 10);
	rs = seed;
	fprintf(stderr, "osd_kill: seed %llu\n", (unsigned long long)seed);
	memset(&c, 0, sizeof(c));
	h_start(&c, 3);
	cl = h_connect(&c);
	h_pool_create(cl, "kill", 3, 32, "osd");
	if (mixsan_pool_open(cl, "kill", &p) < 0)
		H_FATAL("pool open");
	pool_id = (int32_t)mixsan_pool_id(p);
	for (int i = 0; i < N_OBJ; i++)
		objs[i].data = calloc(1, OBJ_MAX * 2);
	for (int k = 0; k < QD; k++) {
		reqs[k].c = NULL;
		reqs[k].buf = malloc(OBJ_MAX);
	}
	rb = malloc(OBJ_MAX * 2);

	for (int round = 0; round < 3; round++) {
		int victim = round % 3;
		int total = 1500, kill_at = 500;

		for (int i = 0; i < total + QD; i++) {
			struct req *r = &reqs[i % QD];
			char name[32];
			int o;

			if (r->c) {
				int64_t res = mixsan_completion_wait(r->c);

				if (res != 0) {
					fprintf(stderr, "write to obj.%d failed: %s\n", r->obj,
						strerror((int)-res));
					h_failures++;
				} else {
					apply(r);
					acked++;
				}
				objs[r->obj].busy = false;
				mixsan_completion_release(r->c);
				r->c = NULL;
			}
			if (i == kill_at) {
				/* With 3 OSDs and size 3 every PG has the victim, so
				 * every request in flight now waits for it: they
				 * must all complete once it is back. */
				fprintf(stderr, "osd_kill: round %d: kill -9 osd.%d after %llu acks\n",
					round, victim, (unsigned long long)acked);
				h_signal_osd(&c, victim, SIGKILL);
				usleep(1000 * 1000);
				fprintf(stderr, "osd_kill: round %d: restarting osd.%d\n", round,
					victim);
				h_start_osd(&c, victim);
			}
			if (i >= total)
				continue;
			do
				o = (int)(h_rand(&rs) % N_OBJ);
			while (objs[o].busy);
			r->obj = o;
			r->kind = objs[o].size == 0 ? 0 : (int)(h_rand(&rs) % 3);
			r->len = 1 + (uint32_t)(h_rand(&rs) % (64 * 1024));
			if (r->kind == 2 && objs[o].size + r->len > OBJ_MAX)
				r->kind = 0;
			r->off = r->kind == 1 ? (uint32_t)(h_rand(&rs) % (objs[o].size + 4096)) : 0;
			if (r->kind == 1 && r->off + r->len > OBJ_MAX)
				r->off = 0;
			h_fill(h_rand(&rs), r->buf, r->len);
			objs[o].busy = true;
			snprintf(name, sizeof(name), "obj.%d", o);
			mixsan_completion_create(NULL, NULL, &r->c);
			if (r->kind == 0)
				mixsan_aio_write_full(p, name, r->c, r->buf, r->len);
			else if (r->kind == 1)
				mixsan_aio_write(p, name, r->c, r->buf, r->len, r->off);
			else
				mixsan_aio_append(p, name, r->c, r->buf, r->len);
		}
		if (h_wait_up(&c, cl, 3, 30) < 0)
			H_FATAL("osd.%d did not come back", victim);
		/* Every acknowledged write reads back. */
		for (int o = 0; o < N_OBJ; o++) {
			char name[32];
			int64_t got;

			if (!objs[o].size)
				continue;
			snprintf(name, sizeof(name), "obj.%d", o);
			got = mixsan_read(p, name, rb, OBJ_MAX * 2, 0);
			if (got != objs[o].size || memcmp(rb, objs[o].data, objs[o].size) != 0) {
				fprintf(stderr, "obj.%d: read %lld bytes, expected %u%s\n", o,
					(long long)got, objs[o].size,
					got == objs[o].size ? " (content differs)" : "");
				h_failures++;
			}
		}
		fprintf(stderr, "osd_kill: round %d: %llu writes acknowledged, all read back\n",
			round, (unsigned long long)acked);
	}
	{
		char log[16];

		for (int i = 0; i < 3; i++) {
			snprintf(log, sizeof(log), "osd.%d", i);
			/* Each OSD started twice (once more after its kill) and
			 * opened its store cleanly each time. */
			H_CHECK(h_log_count(&c, log, "object store open") == 2);
			H_CHECK(h_log_count(&c, log, "error") == 0);
		}
	}
	m = mx_client_map_copy(cl);
	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	for (int i = 0; i < c.n_osds; i++)
		h_signal_osd(&c, i, SIGTERM);
	{
		int problems = h_check_replicas(&c, m, pool_id, &checked);

		fprintf(stderr, "osd_kill: %llu objects identical on all replicas? %d problems\n",
			(unsigned long long)checked, problems);
		H_CHECK(problems == 0);
	}
	mx_map_free(m);
	for (int i = 0; i < N_OBJ; i++)
		free(objs[i].data);
	for (int k = 0; k < QD; k++)
		free(reqs[k].buf);
	free(rb);
	h_stop(&c);
	fprintf(stderr, "osd_kill: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

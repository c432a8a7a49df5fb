/*
 * The in-memory object model of the system tests (model.h).
 */
#include "model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

double h_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void h_model_init(struct h_model *m)
{
	m->objs = calloc((size_t)m->n_obj, sizeof(*m->objs));
	m->reqs = calloc((size_t)m->qd, sizeof(*m->reqs));
	if (!m->objs || !m->reqs)
		H_FATAL("out of memory");
	for (int i = 0; i < m->n_obj; i++) {
		m->objs[i].data = calloc(1, (size_t)m->obj_max * 2);
		if (!m->objs[i].data)
			H_FATAL("out of memory");
	}
	for (int k = 0; k < m->qd; k++) {
		m->reqs[k].buf = malloc(m->obj_max);
		if (!m->reqs[k].buf)
			H_FATAL("out of memory");
	}
	m->next = 0;
	m->acked = 0;
	m->max_stall = 0;
}

void h_model_free(struct h_model *m)
{
	for (int i = 0; i < m->n_obj; i++)
		free(m->objs[i].data);
	for (int k = 0; k < m->qd; k++)
		free(m->reqs[k].buf);
	free(m->objs);
	free(m->reqs);
	m->objs = NULL;
	m->reqs = NULL;
}

static void apply(struct h_model *m, const struct h_model_req *r)
{
	struct h_model_obj *o = &m->objs[r->obj];

	switch (r->kind) {
	case H_OP_WRITE_FULL:
		memcpy(o->data, r->buf, r->len);
		o->size = r->len;
		o->exists = true;
		break;
	case H_OP_WRITE:
		if (r->off > o->size)
			memset(o->data + o->size, 0, r->off - o->size);
		memcpy(o->data + r->off, r->buf, r->len);
		if (r->off + r->len > o->size)
			o->size = r->off + r->len;
		o->exists = true;
		break;
	case H_OP_APPEND:
		memcpy(o->data + o->size, r->buf, r->len);
		o->size += r->len;
		o->exists = true;
		break;
	case H_OP_REMOVE:
		o->size = 0;
		o->exists = false;
		break;
	}
}

static void complete(struct h_model *m, struct h_model_req *r)
{
	int64_t res = mixsan_completion_wait(r->c);
	double stall = h_now_s() - r->start;

	if (stall > m->max_stall)
		m->max_stall = stall;
	if (r->kind == H_OP_REMOVE && r->expect_enoent) {
		if (res != -ENOENT && res != 0) {
			fprintf(stderr, "remove of absent obj.%d: %s\n", r->obj, strerror((int)-res));
			h_failures++;
		}
	} else if (res != 0) {
		fprintf(stderr, "op %d on obj.%d failed: %s\n", r->kind, r->obj,
			strerror((int)-res));
		h_failures++;
	} else {
		apply(m, r);
		m->acked++;
	}
	m->objs[r->obj].busy = false;
	mixsan_completion_release(r->c);
	r->c = NULL;
}

struct h_model_req *h_model_next(struct h_model *m)
{
	struct h_model_req *r = &m->reqs[m->next++ % (unsigned)m->qd];

	if (r->c)
		complete(m, r);
	return r;
}

void h_model_issue(struct h_model *m, struct h_model_req *r)
{
	struct h_model_obj *obj;
	char name[32];
	int o;

	do
		o = (int)(h_rand(&m->rs) % (uint64_t)m->n_obj);
	while (m->objs[o].busy);
	obj = &m->objs[o];
	r->obj = o;
	if (!obj->exists) {
		r->kind = H_OP_WRITE_FULL;
	} else if (m->removes) {
		r->kind = (int)(h_rand(&m->rs) % 10);
		r->kind = r->kind < 3 ? r->kind : r->kind == 9 ? H_OP_REMOVE : 2 - r->kind % 3;
	} else {
		r->kind = (int)(h_rand(&m->rs) % 3);
	}
	r->expect_enoent = !obj->exists && r->kind == H_OP_REMOVE;
	r->len = 1 + (uint32_t)(h_rand(&m->rs) % m->len_max);
	if (r->kind == H_OP_APPEND && obj->size + r->len > m->obj_max)
		r->kind = H_OP_WRITE_FULL;
	r->off = r->kind == H_OP_WRITE ?
			 (uint32_t)(h_rand(&m->rs) % (obj->size + m->off_slack)) : 0;
	if (r->kind == H_OP_WRITE && r->off + r->len > m->obj_max)
		r->off = 0;
	h_fill(h_rand(&m->rs), r->buf, r->len);
	obj->busy = true;
	snprintf(name, sizeof(name), "obj.%d", o);
	mixsan_completion_create(NULL, NULL, &r->c);
	r->start = h_now_s();
	if (r->kind == H_OP_WRITE_FULL)
		mixsan_aio_write_full(m->pool, name, r->c, r->buf, r->len);
	else if (r->kind == H_OP_WRITE)
		mixsan_aio_write(m->pool, name, r->c, r->buf, r->len, r->off);
	else if (r->kind == H_OP_APPEND)
		mixsan_aio_append(m->pool, name, r->c, r->buf, r->len);
	else
		mixsan_aio_remove(m->pool, name, r->c);
}

void h_model_drain(struct h_model *m)
{
	for (int i = 0; i < m->qd; i++)
		if (m->reqs[i].c)
			complete(m, &m->reqs[i]);
}

void h_model_run_for(struct h_model *m, double secs)
{
	double end = h_now_s() + secs;

	while (h_now_s() < end)
		h_model_issue(m, h_model_next(m));
	h_model_drain(m);
}

int h_model_verify(struct h_model *m, const char *when)
{
	uint8_t *rb = malloc((size_t)m->obj_max * 2);
	int bad = 0;

	if (!rb)
		H_FATAL("out of memory");
	for (int o = 0; o < m->n_obj; o++) {
		const struct h_model_obj *obj = &m->objs[o];
		char name[32];
		int64_t got;

		snprintf(name, sizeof(name), "obj.%d", o);
		got = mixsan_read(m->pool, name, rb, (size_t)m->obj_max * 2, 0);
		if (!obj->exists) {
			if (got != -ENOENT) {
				fprintf(stderr, "%s: obj.%d was removed, read gives %lld\n", when, o,
					(long long)got);
				bad++;
			}
			continue;
		}
		if (got != obj->size || memcmp(rb, obj->data, obj->size) != 0) {
			fprintf(stderr, "%s: obj.%d: read %lld bytes, expected %u%s\n", when, o,
				(long long)got, obj->size,
				got == obj->size ? " (content differs)" : "");
			bad++;
		}
	}
	h_failures += bad;
	fprintf(stderr, "%s: %s: %llu ops acknowledged, %s\n", m->name, when,
		(unsigned long long)m->acked, bad ? "READ-BACK FAILURES" : "all read back");
	free(rb);
	return bad;
}

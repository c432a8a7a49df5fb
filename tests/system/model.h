/*
 * An in-memory model of a pool's objects ("obj.0" .. "obj.N-1") and a
 * queue of asynchronous writes, appends and removes on them, checked
 * against the model: each acknowledged operation is applied to the model,
 * and the pool must read back exactly what the model holds.  At most one
 * operation per object is in flight, so the order in which operations on
 * different objects complete does not matter.
 */
#ifndef MX_MODEL_H
#define MX_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "mixsan/mixsan.h"

enum h_op_kind { H_OP_WRITE_FULL, H_OP_WRITE, H_OP_APPEND, H_OP_REMOVE };

struct h_model_obj {
	uint8_t *data; /* expected content, obj_max * 2 bytes */
	uint32_t size;
	bool exists;
	bool busy; /* an operation is in flight */
};

struct h_model_req {
	mixsan_completion_t *c; /* NULL: the slot is free */
	int obj;
	int kind; /* enum h_op_kind */
	uint32_t off, len;
	bool expect_enoent;
	double start;
	uint8_t *buf;
};

struct h_model {
	/* Set before h_model_init. */
	const char *name;   /* test name, for messages */
	mixsan_pool_t *pool;
	int n_obj;
	uint32_t obj_max;   /* objects grow no larger */
	uint32_t len_max;   /* the longest write */
	uint32_t off_slack; /* writes at an offset start up to this past the end */
	bool removes;       /* 1 in 10 operations on an object is a remove */
	int qd;             /* operations in flight */
	uint64_t rs;        /* h_rand state */

	/* The model's own. */
	struct h_model_obj *objs;
	struct h_model_req *reqs;
	unsigned next;      /* the next slot */
	uint64_t acked;     /* operations acknowledged */
	double max_stall;   /* the longest operation, in s */
};

double h_now_s(void);

/* Allocate objects and slots (exits on failure); h_model_free frees them. */
void h_model_init(struct h_model *m);
void h_model_free(struct h_model *m);
/* The next slot, its operation (if any) waited for and checked. */
struct h_model_req *h_model_next(struct h_model *m);
/* Start a random operation in free slot r on an object with none in flight. */
void h_model_issue(struct h_model *m, struct h_model_req *r);
/* Wait for every operation in flight. */
void h_model_drain(struct h_model *m);
/* Keep qd operations in flight for secs seconds, then drain. */
void h_model_run_for(struct h_model *m, double secs);
/* Read every object back and compare it with the model (a removed or
 * never written one must give -ENOENT).  Failures go to h_failures;
 * returns their number. */
int h_model_verify(struct h_model *m, const char *when);

#endif

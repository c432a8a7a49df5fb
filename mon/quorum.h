/*
 * The monitors' replicated log (docs/monitor-quorum.md): Raft (libraft, its
 * libuv TCP transport and on-disk log) whose entries are whole encoded maps.
 *
 * Every call on the monitor's loop thread.  The state machine holds no map
 * of its own: it asks the monitor for the current one (hooks->current) and
 * hands every newer committed map to hooks->apply, in log order, on every
 * monitor.  Only a ready leader (elected, and a barrier of its term
 * committed, so every earlier entry is applied) proposes.
 */
#ifndef MX_QUORUM_H
#define MX_QUORUM_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "map.h"

struct mx_quorum;

struct mx_quorum_hooks {
	void *arg;
	/* The monitor's current map (epoch 0 before the first commit). */
	const struct mx_map *(*current)(void *arg);
	/* A committed map newer than current(), in log order; the callee owns
	 * it.  It must make it durable locally before returning; a failure is
	 * fatal (the callee exits). */
	void (*apply)(void *arg, struct mx_map *m);
	/* This monitor became a ready leader. */
	void (*leading)(void *arg);
};

/* The Raft id of a monitor name (never 0). */
uint64_t mx_quorum_id(const char *name);

/* Parse "NAME=CLIENT_ADDR/RAFT_ADDR,..." into out (calloc'd, *n entries,
 * raft ids set).  0, or -EINVAL with the reason in err. */
int mx_quorum_parse_mons(const char *spec, struct mx_mon_info **out, uint32_t *n, char *err,
			 size_t errsz);

/* Open (and start) the log under dir/raft for the monitor called self.
 * initial: the quorum to bootstrap with on a first start (all members use
 * the same list); NULL with join (a monitor added later: never bootstraps).
 * link_key: the monitor key that secures the Raft links (MX_KEY_LEN bytes),
 * or NULL for open links.
 * 0, or a negative errno with the reason in err. */
int mx_quorum_open(uv_loop_t *loop, const char *dir, const struct mx_mon_info *self,
		   const struct mx_mon_info *initial, uint32_t n_initial,
		   const uint8_t *link_key,
		   const struct mx_quorum_hooks *hooks, struct mx_quorum **out, char *err,
		   size_t errsz);

/* Propose m as the next map.  done(arg, 0) once applied here; -ESTALE if
 * the entry was committed but superseded; -EAGAIN if leadership was lost
 * (the change may still commit).  Returns -EAGAIN at once unless ready. */
int mx_quorum_propose(struct mx_quorum *q, const struct mx_map *m,
		      void (*done)(void *arg, int status), void *arg);

bool mx_quorum_ready(struct mx_quorum *q);
/* The leader's Raft id, 0 if unknown. */
uint64_t mx_quorum_leader(struct mx_quorum *q);

/* A line describing this monitor's view: role, term, leader, log indexes. */
void mx_quorum_describe(struct mx_quorum *q, char *buf, size_t sz);

/* The role of id in the Raft configuration: 0 absent, 1 spare or
 * standby, 2 voter. */
int mx_quorum_role_of(struct mx_quorum *q, uint64_t id);

/* Membership changes, on the ready leader, one at a time (-EBUSY).  done
 * gets 0 or a negative errno.  They return 1 (done not called) when the
 * configuration is already as asked: add of a voter, remove of a
 * non-member; an add of a spare only promotes it. */
int mx_quorum_add(struct mx_quorum *q, uint64_t id, const char *raft_addr,
		  void (*done)(void *arg, int status), void *arg);
int mx_quorum_remove(struct mx_quorum *q, uint64_t id, void (*done)(void *arg, int status),
		     void *arg);
/* Hand the leadership to another voter (best effort). */
void mx_quorum_transfer(struct mx_quorum *q);

/* Close; cb runs once every handle of the log is closed. */
void mx_quorum_close(struct mx_quorum *q, void (*cb)(void *arg), void *arg);

#endif

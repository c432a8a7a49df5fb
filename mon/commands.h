/*
 * Monitor commands as pure functions over a map: each validates its
 * arguments and mutates a private copy of the map, which the monitor then
 * commits as the next epoch.  No I/O here, so every command is unit-tested.
 */
#ifndef MX_MON_COMMANDS_H
#define MX_MON_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>

#include "map.h"
#include "msg.h"

struct mx_pgstats;

/* What the monitor knows besides the map, for the commands that need it
 * (`pool tier add` asks whether the cache pool is empty). */
struct mx_mon_cmd_env {
	const struct mx_pgstats *pgstats; /* NULL: no PG statistics at all */
	uint64_t now_ms;                  /* the wall clock, for their age */
};

/* Apply cmd to m.  Returns 1 if the map changed (commit it), 0 if the
 * command succeeded without a change, or a negative errno with a human
 * reason in msg.  On error m is unchanged.  env may be NULL: a command
 * that needs to know more than the map then refuses, saying why. */
int mx_mon_command_env(struct mx_map *m, const struct mx_msg_command *cmd,
		       const struct mx_mon_cmd_env *env, char *msg, size_t msgsz);
/* mx_mon_command_env without an env. */
int mx_mon_command(struct mx_map *m, const struct mx_msg_command *cmd, char *msg,
		   size_t msgsz);

/* An OSD boots: find it by id or uuid (or give it a new id), mark it up at
 * addr with its location, class and weight.  Returns the id (>= 0) or a
 * negative errno with a reason in msg. */
int mx_mon_osd_boot(struct mx_map *m, const struct mx_msg_osd_boot *b, char *msg,
		    size_t msgsz);

/* Drop every primary_temp entry that no longer fits m (its OSD down, out
 * or gone, not in the PG's up set, or the pool gone): run before every
 * commit, so that an entry never keeps a PG from a primary.  Returns how
 * many were dropped. */
int mx_mon_prune_primary_temps(struct mx_map *m);

#endif

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

/* Apply cmd to m.  Returns 1 if the map changed (commit it), 0 if the
 * command succeeded without a change, or a negative errno with a human
 * reason in msg.  On error m is unchanged. */
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

/*
 * What a client found in its way in a cache pool (docs/cache-tiering.md:
 * another's promotion claim, readonly writers' mark), and since when: it is
 * taken over only once the same value has stood unchanged for a timeout by
 * the client's own monotonic clock.  The OSD's tiering agent keeps the
 * removed copies it has seen clean in one too.  Plain data, no clock of
 * its own (the caller gives the time) and no locking (the caller's).
 *
 * The caller reads its clock under its lock, so the times it gives never go
 * back.  A time earlier than the one a value was first seen at all the same
 * (a clock read before the lock was taken, by a thread that then lost the
 * race for it) counts as "not yet", never as a wait of centuries.
 */
#ifndef MX_CLIENT_STOOD_H
#define MX_CLIENT_STOOD_H

#include <stdbool.h>
#include <stdint.h>

#define MX_STOOD_SLOTS 1024

struct mx_stood_slot {
	uint64_t key, since_ns; /* key 0: empty */
};

struct mx_stood {
	struct mx_stood_slot slot[MX_STOOD_SLOTS];
};

/*
 * Whether the value of key (nonzero: a hash of the object and the value as
 * read) has been seen for at least timeout_ns at now_ns.  Its first sighting
 * starts its clock at now_ns and answers false; so does a sighting after
 * another key took its slot (a collision starts the clock again).
 */
bool mx_stood(struct mx_stood *s, uint64_t key, uint64_t now_ns, uint64_t timeout_ns);

/*
 * Forgets key: its next sighting starts its clock again.  Another key that
 * holds the slot is left alone.
 */
void mx_stood_forget(struct mx_stood *s, uint64_t key);

#endif

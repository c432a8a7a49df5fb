/*
 * Values in the way, and since when: see stood.h.  One slot per key hash,
 * the newest key wins its slot.
 */
#include "stood.h"

bool mx_stood(struct mx_stood *s, uint64_t key, uint64_t now_ns, uint64_t timeout_ns)
{
	uint64_t *k = &s->slot[key % MX_STOOD_SLOTS].key;
	uint64_t *since = &s->slot[key % MX_STOOD_SLOTS].since_ns;

	if (*k != key) {
		*k = key;
		*since = now_ns;
		return false;
	}
	return now_ns >= *since && now_ns - *since >= timeout_ns;
}

/*
 * Values in the way, and since when: see stood.h.  One slot per key hash,
 * the newest key wins its slot.
 */
#include "stood.h"

bool mx_stood(struct mx_stood *s, uint64_t key, uint64_t now_ns, uint64_t timeout_ns)
{
	struct mx_stood_slot *sl = &s->slot[key % MX_STOOD_SLOTS];

	if (sl->key != key) {
		sl->key = key;
		sl->since_ns = now_ns;
		return false;
	}
	return now_ns >= sl->since_ns && now_ns - sl->since_ns >= timeout_ns;
}

void mx_stood_forget(struct mx_stood *s, uint64_t key)
{
	struct mx_stood_slot *sl = &s->slot[key % MX_STOOD_SLOTS];

	if (sl->key == key)
		sl->key = 0;
}

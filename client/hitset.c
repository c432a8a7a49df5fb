/*
 * Hit sets: see hitset.h.  Each base pool has a ring of the newest
 * HIT_SLOTS periods, a Bloom filter of BLOOM_BITS bits (two positions per
 * object) each.
 */
#include "hitset.h"

#include <stdlib.h>
#include <string.h>

#include "map.h"
#include "util.h"

#define HIT_SLOTS MX_PROMOTE_HITS_MAX /* the most periods ever counted */
#define BLOOM_BITS (1u << 16)

struct hitset {
	uint64_t period; /* now_s / period_s + 1; 0: empty */
	uint64_t bits[BLOOM_BITS / 64];
};

struct poolhits {
	struct poolhits *next;
	int32_t pool;
	unsigned period_s;
	struct hitset sets[HIT_SLOTS];
};

struct mx_hitsets {
	struct poolhits *pools; /* From malloc(), a list */
};

struct mx_hitsets *mx_hitsets_new(void)
{
	return calloc(1, sizeof(struct mx_hitsets));
}

void mx_hitsets_free(struct mx_hitsets *h)
{
	if (!h)
		return;
	while (h->pools) {
		struct poolhits *ph = h->pools;

		h->pools = ph->next;
		free(ph);
	}
	free(h);
}

static bool has(const struct hitset *hs, const uint32_t pos[2])
{
	return (hs->bits[pos[0] / 64] >> (pos[0] % 64) & 1) &&
	       (hs->bits[pos[1] / 64] >> (pos[1] % 64) & 1);
}

unsigned mx_hitsets_miss(struct mx_hitsets *h, int32_t pool, const char *oid,
			 unsigned period_s, unsigned min_hits, uint64_t now_s)
{
	uint64_t hash = mx_hash64(oid, strlen(oid), (uint64_t)(uint32_t)pool);
	uint32_t pos[2] = {(uint32_t)hash % BLOOM_BITS, (uint32_t)(hash >> 32) % BLOOM_BITS};
	unsigned kept = min_hits > MX_HITSET_KEPT ? min_hits : MX_HITSET_KEPT;
	struct poolhits *ph;
	struct hitset *hs;
	uint64_t now;
	unsigned count = 0;

	if (period_s == 0)
		period_s = 1;
	if (kept > HIT_SLOTS)
		kept = HIT_SLOTS;
	now = now_s / period_s + 1;
	for (ph = h->pools; ph; ph = ph->next)
		if (ph->pool == pool)
			break;
	if (!ph) {
		ph = calloc(1, sizeof(*ph));
		if (!ph)
			return 0;
		ph->pool = pool;
		ph->next = h->pools;
		h->pools = ph;
	}
	if (ph->period_s != period_s) {
		memset(ph->sets, 0, sizeof(ph->sets));
		ph->period_s = period_s;
	}
	hs = &ph->sets[now % HIT_SLOTS];
	if (hs->period != now) {
		memset(hs->bits, 0, sizeof(hs->bits));
		hs->period = now;
	}
	for (int i = 0; i < 2; i++)
		hs->bits[pos[i] / 64] |= 1ull << (pos[i] % 64);
	for (unsigned i = 0; i < HIT_SLOTS; i++) {
		hs = &ph->sets[i];
		if (hs->period != 0 && hs->period <= now && now - hs->period < kept && has(hs, pos))
			count++;
	}
	return count;
}

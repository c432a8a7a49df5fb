/*
 * The boot mark of an OSD (docs/cache-modes.md, "A power cut of every OSD
 * that holds a write"): whether the OSD restarts after its host's kernel
 * did, which alone can lose the unsynced tail of its log, and from which
 * epoch on its PG copies are trusted again.
 *
 * The file DIR/boot holds one line: the kernel boot id the OSD last ran
 * under, "running" or "clean", and suspect_below (a map epoch).
 */
#ifndef MX_BOOTMARK_H
#define MX_BOOTMARK_H

#include <stdbool.h>
#include <stdint.h>

#define MX_BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"

struct mx_bootmark {
	uint64_t suspect_below; /* a PG copy with les below this is suspect */
	bool rebooted;          /* this start may follow a lost page cache */
	bool damaged;           /* the mark did not parse (taken as rebooted) */
};

/*
 * At start: read DIR/boot and the current boot id (from boot_id_path),
 * and decide whether the OSD's unsynced tail may have been lost: the mark
 * says "running" under another boot id; or there is no mark, or a damaged
 * one, while the store holds PGs that went active (max_les > 0: the
 * greatest les of any PG the store holds), since nothing then says what
 * happened.  If so, raise suspect_below to max_les + 1.  Then write
 * DIR/boot durably as running under the current boot.  0 or a negative
 * errno (-EUCLEAN: the kernel's boot id is not one).
 */
int mx_bootmark_start(const char *dir, const char *boot_id_path, uint64_t max_les,
		      struct mx_bootmark *out);

/* After a clean stop (every frame synced, the store closed): write DIR/boot
 * as clean.  0 or a negative errno. */
int mx_bootmark_clean(const char *dir, const char *boot_id_path, const struct mx_bootmark *bm);

#endif

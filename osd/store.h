/*
 * The OSD's object store: objects (data, size, named attributes, version)
 * kept durably in a local folder, with a CRC-32C on every 4 KiB block that
 * is verified on every read.
 *
 * Contract:
 *  - Updates come as transactions on one object (struct mx_txn).  Each is
 *    "physical": it says exactly what the object becomes (bytes at an offset,
 *    the resulting size, the resulting version), so replaying it twice, or
 *    on top of a later state, changes nothing.  A transaction is atomic:
 *    after a crash it is either wholly present or wholly absent.
 *  - mx_store_queue() only stages a transaction.  mx_store_commit() makes
 *    every staged transaction durable (it survives kill -9 and power loss)
 *    and then visible to reads.  A caller acknowledges a write to anyone only
 *    after the commit that holds it has returned 0.
 *  - Reads, stat and listings see committed state only.  A caller that must
 *    read an object with a staged transaction calls mx_store_commit() first
 *    (mx_store_pending() tells).
 *  - A read that meets a block whose checksum does not match returns -EIO,
 *    never the bad bytes.
 *  - A failed commit (EIO or ENOSPC from the disk) leaves the store unusable:
 *    every later call returns that error, and the daemon must restart.
 *
 * The store is single-threaded: one caller at a time, no internal locks.
 * All file I/O goes through struct mx_store_io so tests can inject faults
 * and simulate power loss.
 */
#ifndef MX_STORE_H
#define MX_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MX_STORE_BLOCK 4096u
#define MX_OBJ_NAME_MAX 1024u     /* bytes, no NUL inside */
#define MX_XATTR_NAME_MAX 255u
#define MX_XATTR_VALUE_MAX 65536u
#define MX_OBJ_SIZE_MAX (1ull << 36) /* 64 GiB per object */

/* A version: the map epoch in which the primary made the change, and a
 * per-PG sequence number.  Ordered by (epoch, seq). */
struct mx_version {
	uint64_t epoch;
	uint64_t seq;
};

static inline int mx_version_cmp(struct mx_version a, struct mx_version b)
{
	if (a.epoch != b.epoch)
		return a.epoch < b.epoch ? -1 : 1;
	if (a.seq != b.seq)
		return a.seq < b.seq ? -1 : 1;
	return 0;
}

/* Which object: pool, placement group, name (a byte string of name_len). */
struct mx_objkey {
	int32_t pool;
	uint32_t pg;
	const char *name;
	uint32_t name_len;
};

enum mx_txn_op_type {
	MX_TXN_WRITE = 1,    /* write data at off (creates the object) */
	MX_TXN_TRUNCATE = 2, /* cut or extend (with zeroes) to size */
	MX_TXN_REMOVE = 3,   /* delete the object and all its attributes */
	MX_TXN_SETXATTR = 4, /* set attribute name to value */
	MX_TXN_RMXATTR = 5,  /* remove attribute name (absent is fine) */
	MX_TXN_CREATE = 6,   /* create empty if absent */
};

struct mx_txn_op {
	uint8_t type; /* enum mx_txn_op_type */
	uint64_t off; /* WRITE */
	uint64_t size; /* TRUNCATE */
	const void *data; /* WRITE data or SETXATTR value; borrowed */
	uint32_t len;
	const char *xname; /* SETXATTR, RMXATTR; NUL-terminated; borrowed */
};

/* One atomic update of one object.  Everything is borrowed for the duration
 * of mx_store_queue(), which copies what it keeps.  A zero-initialised tail
 * (log false) means no log entry, exactly as before the PG log existed. */
struct mx_txn {
	struct mx_objkey key;
	struct mx_version version; /* the object's version afterwards */
	uint32_t n_ops;
	const struct mx_txn_op *ops;
	/* Append a PG log entry for this transaction, atomically with it:
	 * version = the transaction's version, kind MX_LOG_DELETE if the
	 * object does not exist after the transaction, else MX_LOG_MODIFY,
	 * and the request identity (client_id, tid), (0, 0) for none. */
	bool log;
	uint64_t client_id, tid;
};

struct mx_obj_stat {
	uint64_t size;
	struct mx_version version;
	uint64_t mtime_ms; /* wall clock of the last update */
};

/* File I/O used by the store; every hook returns >= 0 or a negative errno
 * (never -1 with errno).  mx_store_io_default is the real system. */
struct mx_store_io {
	int (*open)(void *ctx, const char *path, int flags, mode_t mode);
	int (*close)(void *ctx, int fd);
	ssize_t (*pread)(void *ctx, int fd, void *buf, size_t len, uint64_t off);
	ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t len, uint64_t off);
	int (*fdatasync)(void *ctx, int fd);
	int (*fsync)(void *ctx, int fd);
	int (*ftruncate)(void *ctx, int fd, uint64_t size);
	int (*fstat_size)(void *ctx, int fd, uint64_t *size);
	int (*rename)(void *ctx, const char *from, const char *to);
	int (*unlink)(void *ctx, const char *path);
	int (*mkdir)(void *ctx, const char *path, mode_t mode);
	/* Call cb for every entry name (not . or ..) of a directory. */
	int (*listdir)(void *ctx, const char *path,
		       int (*cb)(void *arg, const char *name), void *arg);
	int (*fsync_dir)(void *ctx, const char *path);
	void *ctx;
	/* Optional (NULL: none): start writing back a range of a file
	 * without waiting, a hint that changes nothing the store promises. */
	void (*writeback)(void *ctx, int fd, uint64_t off, uint64_t len);
	/* Optional (NULL: none): make [off, off + len) of fd read as
	 * [src_off, src_off + len) of src_fd does now, sharing its blocks
	 * (a reflink) rather than copying them; offsets and len are whole
	 * 4 KiB blocks.  0, or a negative errno.  On any error the store
	 * copies the range; on any but -ENOSPC, -EDQUOT, -ENOMEM, -EIO,
	 * -EINTR and -EAGAIN (the file system cannot) it copies from then on. */
	int (*clone)(void *ctx, int fd, uint64_t off, int src_fd,
		     uint64_t src_off, uint64_t len);
	/* Make everything written to the file system that holds fd durable:
	 * data, lengths and names (syncfs(2)). */
	int (*syncfs)(void *ctx, int fd);
	/* Optional (NULL: the store calls the fsync and fsync_dir hooks one
	 * at a time, and stops at the first error): what fsync(fds[i]) and
	 * fsync_dir(dirs[j]) do, for every i and j, in any order or at once.
	 * A checkpoint's many small syncs then overlap, and the file system
	 * joins their journal commits.  0, or one of the errors.  The
	 * default's calls fsync(2) itself, not the fsync hook: an io that
	 * overrides fsync overrides this too, or sets it NULL. */
	int (*sync_many)(void *ctx, const int *fds, size_t n_fds,
			 const char *const *dirs, size_t n_dirs);
};

extern const struct mx_store_io mx_store_io_default;

struct mx_store_opts {
	const struct mx_store_io *io;  /* NULL = mx_store_io_default */
	uint64_t wal_checkpoint_bytes; /* 0 = default (256 MiB) */
	/* Most entries kept per PG log; 0 = MX_PG_LOG_MAX_DEFAULT.  A store
	 * reopened with a smaller bound trims its logs at open. */
	uint32_t pg_log_max;
	/* Bytes of unsynced frames (mx_store_commit_unsynced()) after which a
	 * commit syncs by itself; 0 = 8 MiB.  Bounds their memory too. */
	uint64_t unsynced_max;
	/* Whole-block writes of at least this many bytes are applied by
	 * cloning their bytes from the log where io->clone can (written
	 * once, not twice: docs/object-store.md, "Large writes written
	 * once"); 0 = 64 KiB, UINT64_MAX = never. */
	uint64_t clone_min;
};

struct mx_store;

/* Open (creating if the folder is empty) the store in dir: replays its log,
 * so every committed transaction is present and nothing torn is.
 * Returns 0 and *out, or a negative errno (-EUCLEAN for a store that is
 * damaged beyond what replay fixes). */
int mx_store_open(const char *dir, const struct mx_store_opts *opts,
		  struct mx_store **out);
/* Checkpoint (best effort) and free.  Accepts NULL. */
void mx_store_close(struct mx_store *st);

/* Validate and stage txn.  -EINVAL for a malformed transaction (bad name,
 * offsets beyond MX_OBJ_SIZE_MAX, unknown op, or a logged transaction whose
 * version is not above the PG's last_update as staged so far), -ENOMEM. */
int mx_store_queue(struct mx_store *st, const struct mx_txn *txn);
/* Make all staged transactions durable, then apply them.  0 or a negative
 * errno (fatal, see above). */
int mx_store_commit(struct mx_store *st);
/* Write everything staged to the log as one frame, without fdatasync and
 * without applying it (docs/cache-modes.md).  Its transactions stay
 * pending: invisible to reads, mx_store_pending() true, until the next
 * mx_store_sync() or mx_store_commit().  A power cut may lose it, and with
 * it every later frame, never an earlier synced one: replay stops at the
 * first frame that does not check.  Syncs by itself past unsynced_max
 * bytes or the checkpoint size.  0 or a negative errno (fatal). */
int mx_store_commit_unsynced(struct mx_store *st);
/* Make every unsynced frame durable (one fdatasync), then apply them in
 * order.  Staged records stay staged.  0 or a negative errno (fatal). */
int mx_store_sync(struct mx_store *st);
/* A sync of the log that runs apart from the store's thread, so that the
 * store goes on logging while the disk works (the OSD's pipelined group
 * commit).  mx_store_sync_begin() notes which frames it covers: every one
 * written so far (ticket: the next frame's sequence); 1 then, 0 when none
 * is unsynced, or the store's fatal error.  mx_store_sync_run() does the
 * fdatasync, on an open file of the log of its own (the kernel reports a
 * write-back error once per open file), and touches only *sy, so it may
 * run on another thread while the store is used, if the store's io allows
 * that for fdatasync (the default does).  mx_store_sync_end(), back on the store's thread, makes
 * the frames below the ticket applied and visible, oldest first; later
 * frames stay unsynced.  A failed sync makes the store fatal.  The store
 * must not be closed while a sync runs. */
struct mx_store_sync {
	const struct mx_store_io *io;
	int fd;
	uint64_t ticket;
	int result;
};
int mx_store_sync_begin(struct mx_store *st, struct mx_store_sync *sy);
void mx_store_sync_run(struct mx_store_sync *sy);
int mx_store_sync_end(struct mx_store *st, const struct mx_store_sync *sy);
/* The sequence the next frame gets: every frame committed so far is below
 * it.  A ticket for mx_store_durable(). */
uint64_t mx_store_log_seq(const struct mx_store *st);
/* Whether every frame below ticket is durable. */
bool mx_store_durable(const struct mx_store *st, uint64_t ticket);
/* Whether any frame is written but not yet synced. */
bool mx_store_unsynced(const struct mx_store *st);
/* Whether the unsynced frames hold half of unsynced_max or more: time to
 * start a sync apart (mx_store_sync_begin()), before the commit that
 * reaches unsynced_max has to sync on the store's thread. */
bool mx_store_sync_due(const struct mx_store *st);
/* Whether key has a staged, uncommitted or unsynced transaction. */
bool mx_store_pending(const struct mx_store *st, const struct mx_objkey *key);
/* Number of staged records: transactions and PG updates (a PG removal
 * counts one per object it removes, plus one). */
size_t mx_store_pending_count(const struct mx_store *st);
/* Bytes of the staged records: the next frame's payload. */
uint64_t mx_store_pending_bytes(const struct mx_store *st);

/* Stat.  0, or -ENOENT. */
int mx_store_stat(struct mx_store *st, const struct mx_objkey *key,
		  struct mx_obj_stat *out);
/* Read up to len bytes at off into buf; *got gets the count (short at the
 * end of the object, 0 past it).  0, -ENOENT, or -EIO on a checksum error. */
int mx_store_read(struct mx_store *st, const struct mx_objkey *key, uint64_t off,
		  uint32_t len, void *buf, uint32_t *got);
/* Get an attribute into a malloc()ed buffer the caller frees.
 * 0, -ENOENT (object), -ENODATA (attribute). */
int mx_store_getxattr(struct mx_store *st, const struct mx_objkey *key,
		      const char *xname, void **value, uint32_t *len);
/* Call cb for each attribute of the object in name order; a non-zero
 * return from cb stops and is returned. */
int mx_store_listxattrs(struct mx_store *st, const struct mx_objkey *key,
			int (*cb)(void *arg, const char *xname, const void *value,
				  uint32_t len),
			void *arg);

/* Call cb for each object of (pool, pg) (pg == UINT32_MAX: every PG of the
 * pool; pool == -1: every pool) in a stable order (by pg, then name), after
 * the cursor name if cursor is not NULL.  A non-zero return from cb stops
 * and is returned. */
int mx_store_list(struct mx_store *st, int32_t pool, uint32_t pg,
		  const char *cursor, uint32_t cursor_len,
		  int (*cb)(void *arg, const struct mx_objkey *key,
			    const struct mx_obj_stat *stat),
		  void *arg);

/* Force a checkpoint (flush data files, write metadata, reset the log).
 * 0 or a negative errno. */
int mx_store_checkpoint(struct mx_store *st);

/* Per-PG last version applied (the highest version of any transaction on
 * that PG, removals included, since the PG was last removed with
 * mx_store_pg_remove()); {0,0} if none. */
struct mx_version mx_store_pg_last(const struct mx_store *st, int32_t pool,
				   uint32_t pg);

/*
 * PG log and PG info (docs/recovery.md).
 *
 * Per PG the store keeps a log of the most recent logged transactions in
 * version order, at most pg_log_max entries, and the PG's info.  Everything
 * below that changes them is staged like a transaction: it becomes durable
 * and visible at the next mx_store_commit(), atomically with every other
 * transaction and PG update of that commit, in the order they were staged.
 * The getters see committed state only.
 *
 * last_update is the version of the newest entry ever appended (or set by
 * mx_store_pg_log_reset()); log_tail is the version just before the oldest
 * kept entry: every logged version in (log_tail, last_update] is in the log.
 * A logged transaction must carry a version greater than the PG's
 * last_update as staged so far (-EINVAL otherwise).
 *
 * A PG is known to the store while it has an object, a log entry, a
 * non-zero last version (mx_store_pg_last()) or a non-zero info field;
 * mx_store_pg_remove() makes it unknown again.
 */
#define MX_PG_LOG_MAX_DEFAULT 3000u
#define MX_PG_ACTING_MAX 10u

enum mx_log_kind {
	MX_LOG_MODIFY = 1, /* the object exists after this version */
	MX_LOG_DELETE = 2, /* the object does not exist after it */
};

/* One PG log entry.  In mx_store_pg_log_walk() name points into the store
 * and is valid during the callback only; in mx_store_pg_log_reset() it is
 * borrowed for the duration of the call. */
struct mx_pglog_entry {
	struct mx_version version;
	uint8_t kind; /* enum mx_log_kind */
	const char *name;
	uint32_t name_len;
	uint64_t client_id, tid; /* request identity; (0, 0) for none */
};

struct mx_pg_info {
	struct mx_version last_update; /* maintained by the store */
	struct mx_version log_tail;    /* maintained by the store */
	uint64_t les;		       /* last_epoch_started */
	uint64_t lec;		       /* last_epoch_clean */
	uint8_t n_acting;	       /* <= MX_PG_ACTING_MAX */
	int32_t acting[MX_PG_ACTING_MAX];
	uint32_t flags; /* the OSD's own; opaque to the store */
	/* Writeback writes acknowledged with a version epoch below this may
	 * have been lost to a power cut (docs/cache-modes.md); 0: none. */
	uint64_t wb_lost;
};

/* Stage an update of the PG's les, lec, acting set (n_acting entries; the
 * rest is stored as zero), flags and wb_lost.  info->last_update and log_tail are
 * ignored: the log decides them.  0, -EINVAL (pool < 0, pg UINT32_MAX,
 * n_acting > MX_PG_ACTING_MAX), -ENOMEM, or the fatal error. */
int mx_store_queue_pg_info(struct mx_store *st, int32_t pool, uint32_t pg,
			   const struct mx_pg_info *info);
/* The PG's committed info.  0, or -ENOENT (and *out zeroed) for a PG the
 * store does not know (see above). */
int mx_store_pg_info_get(struct mx_store *st, int32_t pool, uint32_t pg,
			 struct mx_pg_info *out);
/* Stage dropping every log entry with version <= upto; log_tail becomes
 * max(log_tail, min(upto, last_update)).  0, -EINVAL, -ENOMEM. */
int mx_store_pg_trim(struct mx_store *st, int32_t pool, uint32_t pg,
		     struct mx_version upto);
/* Call cb for every committed entry of the PG's log with version > after,
 * oldest first.  A non-zero return from cb stops and is returned.  An
 * unknown PG has an empty log (0).  Entries at or below log_tail are gone:
 * a caller whose after is below info.log_tail cannot catch up from the log.
 * cb must not commit or checkpoint. */
int mx_store_pg_log_walk(struct mx_store *st, int32_t pool, uint32_t pg,
			 struct mx_version after,
			 int (*cb)(void *arg, const struct mx_pglog_entry *e),
			 void *arg);
/* Whether the PG's committed log holds an entry with request identity
 * (client_id, tid); 0 and *out = its version (the newest such entry), or
 * -ENOENT (also for (0, 0)).  O(1) expected. */
int mx_store_pg_find_req(struct mx_store *st, int32_t pool, uint32_t pg,
			 uint64_t client_id, uint64_t tid,
			 struct mx_version *out);
/* Stage replacing the PG's whole log with entries[0..n): they must have
 * valid names and kinds and strictly increasing versions, all above
 * log_tail (-EINVAL otherwise).  At commit the log becomes exactly these
 * entries (the newest pg_log_max of them), log_tail becomes log_tail (or
 * the newest entry dropped by the bound) and last_update the newest
 * entry's version, or log_tail when n is 0.  Objects and info are not
 * touched.  0, -EINVAL, -ENOMEM. */
int mx_store_pg_log_reset(struct mx_store *st, int32_t pool, uint32_t pg,
			  const struct mx_pglog_entry *entries, size_t n,
			  struct mx_version log_tail);
/* Stage removing the whole PG: every object of it (as staged so far), its
 * log, its info, last_update and log_tail, and its last version.
 * Transactions staged later may create it again.  0, -EINVAL, -ENOMEM. */
int mx_store_pg_remove(struct mx_store *st, int32_t pool, uint32_t pg);
/* Call cb(arg, pool, pg) for every PG the store knows (committed state),
 * in (pool, pg) order.  A non-zero return from cb stops and is returned.
 * cb must not commit or checkpoint. */
int mx_store_list_pgs(struct mx_store *st,
		      int (*cb)(void *arg, int32_t pool, uint32_t pg),
		      void *arg);

/* Objects of (pool, pg) and the sum of their sizes, committed state, in
 * constant time (kept with the store's own counters). */
void mx_store_pg_usage(const struct mx_store *st, int32_t pool, uint32_t pg,
		       uint64_t *objects, uint64_t *bytes);

/* Counters for status and tests. */
struct mx_store_stats {
	uint64_t objects;
	uint64_t bytes;
	uint64_t commits;
	uint64_t wal_bytes;
	uint64_t checkpoints;
	uint64_t csum_errors;
	uint64_t unsynced_commits; /* mx_store_commit_unsynced() frames */
	uint64_t syncs;            /* fdatasyncs of the log */
	/* Buffer capacity kept for reuse once empty: the staging frame's (up
	 * to 8 MiB) and the spare unsynced frames' (up to 1 MiB in all). */
	uint64_t kept_bytes;
	uint64_t cloned_bytes; /* applied by io->clone, not copied */
	/* Padded writes copied because their frame was not written where
	 * it was staged for (a checkpoint in between). */
	uint64_t clone_misaligned;
	int clone_refused; /* the errno that turned cloning off, or 0 */
};
void mx_store_get_stats(const struct mx_store *st, struct mx_store_stats *out);

#endif

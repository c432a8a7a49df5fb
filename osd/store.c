/*
 * The OSD's object store (the contract is in store.h).  Each object is a
 * data file and a metadata file in a per-PG folder; every update is first
 * made durable as one frame of a write-ahead log (one write and one
 * fdatasync per commit, for every transaction staged since the last one)
 * and only then applied to the data files and to the in-memory index,
 * which holds every object's size, version, attributes and the CRC-32C of
 * each of its 4 KiB blocks, and every PG's log and info.  A checkpoint
 * flushes the data files, writes the metadata files, appends new PG log
 * entries to per-PG log files and starts a new log generation; opening the
 * store loads all of these and replays the write-ahead log.
 * docs/object-store.md describes the on-disk format and argues the crash
 * consistency in full.
 */
#include "store.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "crc32c.h"
#include "list.h"
#include "util.h"

/*
 * NOTES ON THE DESIGN OF THE STORE
 *
 * Folder layout (dir is the store's folder):
 *
 *   dir/wal                          the write-ahead log
 *   dir/pgs/PPPPPPPP.GGGGGGGG/       one folder per PG: pool and pg in hex
 *   dir/pgs/PPPPPPPP.GGGGGGGG/pg     the PG's last version, info (les,
 *                                    lec, acting, flags, wb_lost),
 *                                    last_update, log_tail, and which bytes of which
 *                                    log file hold its log (at checkpoint)
 *   dir/pgs/.../log.N                PG log entries, appended at
 *                                    checkpoints; N numbers the file
 *   dir/pgs/.../HHHHHHHHHHHHHHHH.S.d object data, byte for byte
 *   dir/pgs/.../HHHHHHHHHHHHHHHH.S.m object metadata: full name, size,
 *                                    version, mtime, attributes, block CRCs
 *
 * H is name_hash() of the name and S a slot number that tells apart names
 * with the same hash in one PG: a new object takes the smallest slot that
 * no index entry with its hash holds.  Entries are dropped from the index
 * only by checkpoint(), so within one log generation a (hash, slot) pair
 * always names the same object, and every log record carries its slot.
 *
 * The log: two header slots (512 bytes each, at 0 and 512) hold the
 * generation G and the sequence number of its first frame; the valid slot
 * with the higher G wins, so a torn header write leaves the previous one.
 * Frames start at 4096, each padded to 512 bytes so that no write ever
 * rewrites a sector holding an acknowledged frame.  A frame is a header
 * (magic, its own CRC, G, sequence, its own file offset, payload length,
 * record count, payload CRC) and the records of one commit.  A transaction record is physical: it names the object and
 * slot, and holds the object's existence and size before and after, the
 * version, mtime and every op with its data, so it can be applied to any
 * state that lies between the one before it and the final one.  A logged
 * transaction's record (REC_TXN_LOG) also carries its PG log entry.  PG
 * records set a PG's info (REC_PG_INFO2; REC_PG_INFO, without wb_lost,
 * still replays), trim its log (REC_PG_TRIM, with the bound already capped
 * at the last_update it was staged against),
 * replace its log (REC_PG_RESET) or forget log, info and last version
 * (REC_PG_REMOVE, staged after a physical REMOVE record for each of the
 * PG's objects).
 *
 * A PG's log in memory is a ring of entries, oldest first, at most
 * pg_log_max of them, with lu (last_update) and tail (log_tail), and a
 * hash index of request identities over all PGs.  Per transaction this is
 * O(1): a ring append, at most one pop, an index insert and remove.  The
 * entries already in the PG's log file are always a prefix of the ring;
 * the pg file names the file and the byte range [log_start, log_end) that
 * holds exactly the ring as of its checkpoint.
 *
 * States of the store on disk, and the function that moves between them:
 *
 *   CLEAN(G)   log header G, no frames of G.  Data, metadata and pg files
 *              are durable and agree with each other.
 *     | mx_store_commit() -> log_append(): frame of G written, fdatasync
 *     v
 *   LOGGED(G)  frames of G durable.  Only now does apply_frame() change
 *              data files (no fsync); metadata files are stale.  Every
 *              byte changed since CLEAN(G) is in a frame of G.
 *     | checkpoint() (on crossing wal_checkpoint_bytes, on demand, on
 *     |   close, at open), each step's syncs together (ckpt_sync()):
 *     |   ckpt_objects() fsyncs the dirty data files with their new
 *     |   metadata files, then renames those in; ckpt_ghost() unlinks the
 *     |   files of removed objects; ckpt_pgs(): pg_log_flush() appends new
 *     |   entries to the log file (or plog_compact() writes a new file),
 *     |   fsynced with the new pg file, then new log files' folders, then
 *     |   the pg file is renamed in; ckpt_dirs() fsyncs the folders;
 *     |   pg_unlink_logs() unlinks log files no durable pg file names any
 *     |   more
 *     v
 *   FLUSHED(G) everything above is durable; the frames of G still are.
 *     | log_reset(): header G+1 written to the other slot, fsync
 *     v
 *   CLEAN(G+1)
 *
 * Unsynced frames (writeback volumes, docs/cache-modes.md):
 *
 *   LOGGED(G) --mx_store_commit_unsynced(): frame written, no fdatasync,
 *     not applied; kept in ufr_head--> LOGGED(G) + unsynced frames
 *   unsynced --store_sync() (mx_store_sync(), mx_store_commit(), a PG-level
 *     read, checkpoint(), unsynced_max): one fdatasync, then
 *     apply_unsynced() in order--> LOGGED(G)
 *   unsynced --mx_store_sync_begin/run/end() (a worker's fdatasync, which
 *     the OSD starts for a durable group commit, from unsynced_max / 2
 *     (mx_store_sync_due()) or from its write-back timer): the frames
 *     below its ticket applied in order--> LOGGED(G), later frames
 *     still unsynced
 *
 *  W1 A frame header carries the sync horizon synced_below: every frame
 *     of G below it was fdatasynced before this frame was written.
 *  W2 Replay applies the frames of G up to the first one that does not
 *     check and none after it: a power cut that kept a later unsynced
 *     frame and lost an earlier one leaves a prefix.  scan_tail() accepts
 *     an intact later frame only if its horizon shows the missing one was
 *     unsynced.
 *
 * Recovery, mx_store_open(): log_open() picks G, load_all() reads every
 * metadata and pg file, replay_log() applies the valid frames of G in
 * order, scan_tail() refuses a log whose valid prefix is followed by a
 * well-formed frame of G or later (damage, not a torn tail),
 * replay_finish() recomputes the CRCs of the blocks replay touched, and
 * checkpoint() takes the store to CLEAN(G+1).  That last step also
 * guarantees that frames of G beyond the valid prefix (the torn tail of a
 * crashed commit) can never be mistaken for new ones later: new frames
 * carry G+1.
 *
 * Invariants:
 *  I1 A data file is written only for a record whose frame is durable.
 *  I2 A metadata file describes either the object at the last completed
 *     checkpoint or at the end of the log (a checkpoint that crashed after
 *     its rename): replaying the log over either gives the same result,
 *     because records are physical and the last record touching a byte,
 *     an attribute or the size decides it.
 *  I3 When fsize is known, the data file is exactly fsize long and
 *     fsize <= size; the object's bytes in [fsize, size) are zeroes.  Reads
 *     take bytes past the end of the file as zeroes.  fsize is unknown
 *     after open and after a removal; the first extension then truncates.
 *  I4 crc[b] is the CRC-32C of block b's 4096 bytes, the bytes at or past
 *     size counted as zeroes.  Outside replay every apply keeps it; during
 *     replay the touched blocks are recomputed from the files at the end,
 *     when every byte has its final value.
 *  I5 Frames of G are consecutive from the header's first sequence, and
 *     the log's valid end is where the first frame fails to check.
 *  I6 A PG's pg file (with the log file range it names) describes the PG
 *     either at the last completed checkpoint or at the end of the log,
 *     and replaying the log's PG-level effects over either gives the end
 *     state: INFO, RESET and REMOVE set what they touch absolutely; an
 *     appended entry not above lu is skipped (only replay over the end
 *     state meets one, and the entry is then in the loaded log already,
 *     or a later RESET/REMOVE decides); a TRIM's bound never exceeds the
 *     lu it was staged against, so it cannot drop an entry appended after
 *     it, and over the end state it drops nothing and leaves tail alone.
 *     The last version follows the objects' argument (a maximum), reset
 *     to zero by REMOVE.
 *  I7 A pg file names only log file bytes that were fsynced, in a file
 *     whose name was made durable, before the pg file was renamed in;
 *     bytes of that range are never rewritten (appends go at log_end, a
 *     compaction writes a new file), and a log file is unlinked only
 *     after a folder fsync made a pg file that does not name it durable.
 */

#define BS MX_STORE_BLOCK
#define LOG_NAME "wal"
#define LOG_TMP_NAME "wal.tmp"
#define PGS_NAME "pgs"
#define PG_META_NAME "pg"
#define PG_META_TMP "pg.tmp"
#define LOG_SLOT 512u
#define LOG_START 4096u
#define LOG_ALIGN 512u
#define FRAME_HDR 56u    /* format 2; format 1 frames have 48 bytes */
#define FRAME_HDR_V1 48u
#define LOG_HDR_MAGIC 0x4857584du /* "MXWH" */
#define FRAME_MAGIC 0x3246584du   /* "MXF2": with the sync horizon */
#define FRAME_MAGIC_V1 0x4c46584du /* "MXFL" */
#define OBJ_MAGIC 0x4d4f584du     /* "MXOM" */
#define PG_MAGIC 0x4750584du      /* "MXPG" */
#define PLOG_MAGIC 0x4c50584du    /* "MXPL" */
#define FMT_VERSION 1u
#define PG_FMT_VERSION 3u /* pg files; 1 (no log, no info) and 2 (no wb_lost) load */
/* Record kinds of a frame's payload. */
#define REC_TXN 1u	 /* a transaction */
#define REC_TXN_LOG 2u	 /* a transaction and its PG log entry */
#define REC_PG_INFO 3u	 /* les, lec, acting, flags of a PG */
#define REC_PG_TRIM 4u	 /* drop a PG's log entries up to a version */
#define REC_PG_RESET 5u	 /* replace a PG's log */
#define REC_PG_REMOVE 6u /* forget a PG's log, info and last version */
#define REC_PG_INFO2 7u	 /* REC_PG_INFO and wb_lost (written from format 3 on) */
/* A transaction's op beside MX_TXN_*: a WRITE whose data is padded to
 * start on a 4 KiB boundary of the log file, so that applying it can clone
 * the log's blocks (obj_clone()). */
#define OP_WRITE_PADDED 0x41u
#define PLOG_PREFIX "log."
#define PLOG_HDR 32u
#define PLOG_ENT_FIXED 39u /* an entry's encoding without its name */
#define PLOG_COMPACT_MIN 1024u
#define FOFF_NONE UINT64_MAX
#define REQTAB_INIT 1024u
#define FSIZE_UNKNOWN UINT64_MAX
#define FD_CACHE_MAX 256u
#define DEFAULT_CKPT_BYTES (256ull << 20)
#define WRITEBACK_MIN (64u << 10) /* writes from this size start their write-back */
#define CLONE_MIN_DEFAULT (64u << 10)
#define TXN_DATA_MAX (1ull << 30)
#define TXN_HEAD_MAX 96u /* a record's head and log tail, past its name */
#define LOG_READ_CHUNK (1u << 20)
#define PEND_KEEP_MAX (8u << 20)
#define UNSYNCED_MAX_DEFAULT (8ull << 20)
#define UFR_SPARE_MAX 16u
/* Spare frames keep their buffers for reuse up to this much in all: small
 * frames (write-back 4k writes, thousands a second) reuse theirs, large
 * ones are freed rather than held (16 spares of 8 MiB would be 128 MiB). */
#define SPARE_BYTES_MAX (1u << 20)
#define CRC_CHUNK_BLOCKS 64u
#define PATH_LEN 4096
#define DIR_LEN_MAX (PATH_LEN - 128)

static const uint8_t zero_block[BS];

/* One named attribute; the value follows the name's NUL in one
 * allocation. */
struct xattr {
	char *name; /* From malloc(); owns val too. */
	uint8_t *val;
	uint32_t len;
	uint32_t name_len;
};

/* Blocks [lo, hi) touched during replay. */
struct brange {
	uint64_t lo, hi;
};

struct pgrp;

/* A link in a chained hash table (struct htab). */
struct hlink {
	struct hlink *next;
};

/* A chained hash table of entries that embed a struct hlink: the PG
 * table, the object index and the reqid index.  bucket() gives an entry's bucket under the
 * table's current mask. */
struct htab {
	struct hlink **b; /* From malloc(): buckets */
	size_t mask;
	size_t n; /* entries */
	size_t (*bucket)(const struct mx_store *st, const struct hlink *l);
};

/* One PG log entry (committed).  Entries live in their PG's ring, oldest
 * first; those with a request identity are also in the store's reqid
 * index. */
struct logent {
	struct hlink rlink; /* reqid index chain */
	struct pgrp *pg;
	struct mx_version ver;
	uint64_t client_id, tid;
	uint64_t foff; /* offset in the PG's log file, or FOFF_NONE */
	uint8_t kind;
	uint16_t name_len;
	char name[]; /* name_len bytes and a NUL */
};

/* An index entry: one object name in one PG.  An entry may be a
 * placeholder (staged transactions, not yet committed) or a ghost (removed,
 * files still on disk); both have exists false.  Entries leave the index
 * only in checkpoint(), or in close. */
struct obj {
	struct hlink hlink;   /* index bucket chain */
	struct obj *dnext;    /* dirty list, while dirty */
	struct obj *lru_prev; /* fd cache, while fd >= 0 */
	struct obj *lru_next;
	struct pgrp *pg;
	uint64_t nhash; /* name_hash(name): names the files */

	/* Committed state. */
	bool exists;
	uint64_t size;
	struct mx_version ver;
	uint64_t mtime_ms;
	uint32_t *crc; /* From malloc(): one per block below size */
	uint64_t crc_cap;
	struct xattr *xa; /* From malloc(): sorted by name */
	uint32_t n_xa, xa_cap;

	/* State after every staged transaction; valid while n_pending. */
	bool p_exists;
	uint64_t p_size;
	uint32_t n_pending;

	/* Files. */
	uint32_t slot;
	int fd;		    /* data file, or -1 */
	uint64_t fsize;	    /* see I3 */
	bool fresh;	    /* made by queue: no file of ours exists yet */
	bool files;	    /* files may exist on disk */
	bool dfile_made;    /* data file opened since the last checkpoint */
	bool data_durable;  /* the data file's name is durable */
	bool dirty;	    /* changed since the last checkpoint */
	bool data_dirty;    /* data file changed since the last checkpoint */

	struct brange *touch; /* From malloc(); replay only */
	uint32_t n_touch, touch_cap;

	uint32_t pg_idx; /* position in pg->objs */
	uint16_t name_len;
	char name[]; /* name_len bytes and a NUL */
};

/* A placement group: its objects (for listing), last version, log and
 * info. */
struct pgrp {
	struct hlink hlink; /* PG table chain */
	int32_t pool;
	uint32_t pg;
	struct mx_version last;
	struct obj **objs; /* From malloc(): every entry of the PG */
	uint32_t n_objs, cap_objs;
	uint32_t n_exist; /* entries with exists */
	uint64_t n_bytes; /* sum of their sizes */
	bool sorted;	 /* objs is in name order */
	bool dir_exists; /* the folder exists */
	bool dir_dirty;	 /* names in the folder changed since checkpoint */
	bool meta_dirty; /* pg file content changed since checkpoint */

	/* The log: a ring of ring_cap (a power of two) slots, ring_n used
	 * from ring_head, oldest first.  Committed state. */
	struct logent **ring; /* From malloc(); the entries too */
	uint32_t ring_head, ring_n, ring_cap;
	struct mx_version lu, tail; /* last_update, log_tail */
	struct mx_version pend_lu;  /* lu after every staged record */
	uint64_t les, lec;
	uint8_t n_acting;
	int32_t acting[MX_PG_ACTING_MAX];
	uint32_t flags;
	uint64_t wb_lost;

	/* The log file PLOG_PREFIX<log_file> (0: none) holds the persisted
	 * entries in [log_start, log_end) as of the last checkpoint's pg
	 * file; log_next numbers the next one.  unlink_logs: files no pg
	 * file refers to any more, unlinked by the next checkpoint after its
	 * folder fsyncs (pg_unlink_logs()). */
	uint64_t log_file, log_next, log_start, log_end;
	uint64_t *unlink_logs; /* From malloc() */
	uint32_t n_unlink, cap_unlink;
};

/* A frame written by mx_store_commit_unsynced() and not yet synced: kept
 * to be applied by the sync (I1). */
struct ufr {
	struct ufr *next;
	struct mx_wbuf w; /* the whole frame, header first, padded */
	uint64_t len;	  /* of the payload */
	uint64_t seq;	  /* the frame's */
	uint32_t n;	  /* records */
	uint32_t n_req;	  /* its request identities in ureqs */
};

/* The request identity of a logged transaction in an unsynced frame (or
 * staged after them), for mx_store_pg_find_req(). */
struct ureq {
	int32_t pool;
	uint32_t pg;
	uint64_t client_id, tid;
	struct mx_version ver;
};

struct mx_store {
	const struct mx_store_io *io;
	char *dir; /* From malloc() */
	uint64_t ckpt_bytes;
	int fatal; /* 0, or the error every call returns */

	struct htab tab; /* the object index */

	struct htab pgtab;
	struct pgrp **pgs; /* From malloc(): every PG */
	size_t n_pgs, cap_pgs;
	bool top_dirty; /* a PG folder was made since checkpoint */

	struct htab rtab; /* the reqid index */
	uint32_t log_max; /* pg_log_max */

	struct obj *dirty;
	struct obj *lru_head, *lru_tail;
	unsigned n_fds;

	int log_fd;
	uint64_t gen;	    /* current log generation */
	uint64_t seq;	    /* sequence of the next frame */
	uint64_t log_end;   /* offset of the next frame */
	uint64_t log_fsize; /* length of the log file */
	int sync_fd;	    /* the log again, for split syncs (log_open()) */
	struct mx_wbuf pend; /* the next frame: header then records */
	size_t n_pend;
	bool replaying;

	/* Unsynced frames, oldest first (docs/cache-modes.md).  sync_seq is
	 * the lowest sequence of G not known durable: every frame below it
	 * was fdatasynced (the sync horizon each frame header carries). */
	struct ufr *ufr_head, **ufr_tail;
	/* Applied frames kept for reuse as the next pending frame's buffer,
	 * so writeback commits do not allocate: at most UFR_SPARE_MAX. */
	struct ufr *ufr_spare;
	unsigned n_spare;
	uint64_t spare_bytes; /* the spares' buffer capacity, <= SPARE_BYTES_MAX */
	uint64_t unsynced_bytes, unsynced_max;
	uint64_t sync_seq;
	/* Request identities: [0, n_ureq_unsynced) of unsynced frames, then
	 * those staged in pend. */
	struct ureq *ureqs; /* From malloc() */
	size_t n_ureq, n_ureq_unsynced, cap_ureq;

	struct mx_wbuf scratch; /* metadata encoding */
	uint8_t *blk;		/* From malloc(): one block */
	uint8_t *chunk;		/* From malloc(): CRC_CHUNK_BLOCKS blocks */
	uint32_t zero_crc;
	struct mx_store_stats stats;

	/* Large writes written once (docs/object-store.md): whole-block
	 * writes of clone_min bytes or more are padded in their frames and
	 * applied by io->clone, until the file system says it cannot
	 * (no_clone).  While apply_frame() runs, apply_base is its payload
	 * in memory and apply_at where that payload is in the log file
	 * (FOFF_NONE: not known). */
	uint64_t clone_min;
	bool no_clone;
	const uint8_t *apply_base;
	uint64_t apply_at;
};

/* ---- The real system ---------------------------------------------------- */

static int sys_open(void *ctx, const char *path, int flags, mode_t mode)
{
	int fd;

	(void)ctx;
	do {
		fd = open(path, flags | O_CLOEXEC, mode);
	} while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

static int sys_close(void *ctx, int fd)
{
	(void)ctx;
	/* Linux releases the fd even when close() fails: never retry. */
	return close(fd) < 0 ? -errno : 0;
}

static ssize_t sys_pread(void *ctx, int fd, void *buf, size_t len,
			 uint64_t off)
{
	ssize_t n;

	(void)ctx;
	if (off > (uint64_t)INT64_MAX)
		return -EINVAL;
	do {
		n = pread(fd, buf, len, (off_t)off);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t sys_pwrite(void *ctx, int fd, const void *buf, size_t len,
			  uint64_t off)
{
	ssize_t n;

	(void)ctx;
	if (off > (uint64_t)INT64_MAX)
		return -EINVAL;
	do {
		n = pwrite(fd, buf, len, (off_t)off);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int sys_fdatasync(void *ctx, int fd)
{
	(void)ctx;
	return fdatasync(fd) < 0 ? -errno : 0;
}

static int sys_fsync(void *ctx, int fd)
{
	(void)ctx;
	return fsync(fd) < 0 ? -errno : 0;
}

static int sys_ftruncate(void *ctx, int fd, uint64_t size)
{
	int r;

	(void)ctx;
	if (size > (uint64_t)INT64_MAX)
		return -EINVAL;
	do {
		r = ftruncate(fd, (off_t)size);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

static int sys_fstat_size(void *ctx, int fd, uint64_t *size)
{
	struct stat sb;

	(void)ctx;
	if (fstat(fd, &sb) < 0)
		return -errno;
	*size = (uint64_t)sb.st_size;
	return 0;
}

static int sys_rename(void *ctx, const char *from, const char *to)
{
	(void)ctx;
	return rename(from, to) < 0 ? -errno : 0;
}

static int sys_unlink(void *ctx, const char *path)
{
	(void)ctx;
	return unlink(path) < 0 ? -errno : 0;
}

static int sys_mkdir(void *ctx, const char *path, mode_t mode)
{
	(void)ctx;
	return mkdir(path, mode) < 0 ? -errno : 0;
}

static int sys_listdir(void *ctx, const char *path,
		       int (*cb)(void *arg, const char *name), void *arg)
{
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	(void)ctx;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		(void)close(fd);
		return r;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			r = errno ? -errno : 0;
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = cb(arg, de->d_name);
		if (r)
			break;
	}
	(void)closedir(d);
	return r;
}

static int sys_fsync_dir(void *ctx, const char *path)
{
	(void)ctx;
	return mx_fsync_dir(path);
}

static void sys_writeback(void *ctx, int fd, uint64_t off, uint64_t len)
{
	(void)ctx;
	(void)sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
}

static int sys_clone(void *ctx, int fd, uint64_t off, int src_fd,
		     uint64_t src_off, uint64_t len)
{
	struct file_clone_range cr = {
		.src_fd = src_fd,
		.src_offset = src_off,
		.src_length = len,
		.dest_offset = off,
	};

	(void)ctx;
	return ioctl(fd, FICLONERANGE, &cr) < 0 ? -errno : 0;
}

static int sys_syncfs(void *ctx, int fd)
{
	(void)ctx;
	return syncfs(fd) < 0 ? -errno : 0;
}

/* sys_sync_many(): up to SYNC_THREADS syncs at once.  On XFS over this
 * machine's disk, fsyncs of 128 files took 20 ms one after the other,
 * 6.5 ms from 8 threads, 4.4 ms from 16 or 32, 7 ms from 128
 * (docs/performance.md, "The checkpoint's syncs together"). */
#define SYNC_THREADS 16

struct sync_many {
	const int *fds;
	const char *const *dirs;
	size_t n_fds, n;
	atomic_size_t next;
	atomic_int err;
};

static void *sync_many_run(void *arg)
{
	struct sync_many *sm = arg;
	size_t i;

	while ((i = atomic_fetch_add(&sm->next, 1)) < sm->n) {
		int r;

		if (i < sm->n_fds)
			r = fsync(sm->fds[i]) < 0 ? -errno : 0;
		else
			r = mx_fsync_dir(sm->dirs[i - sm->n_fds]);
		if (r) {
			int none = 0;

			(void)atomic_compare_exchange_strong(&sm->err, &none, r);
		}
	}
	return NULL;
}

static int sys_sync_many(void *ctx, const int *fds, size_t n_fds,
			 const char *const *dirs, size_t n_dirs)
{
	struct sync_many sm = {.fds = fds, .dirs = dirs, .n_fds = n_fds,
			       .n = n_fds + n_dirs};
	pthread_t t[SYNC_THREADS - 1];
	size_t k = 0, want = MX_MIN(sm.n, (size_t)SYNC_THREADS) - (sm.n > 0);

	(void)ctx;
	atomic_init(&sm.next, 0);
	atomic_init(&sm.err, 0);
	/* The caller is one of the threads; one that cannot start leaves
	 * its share to the others. */
	while (k < want && pthread_create(&t[k], NULL, sync_many_run, &sm) == 0)
		k++;
	(void)sync_many_run(&sm);
	while (k > 0)
		(void)pthread_join(t[--k], NULL);
	return atomic_load(&sm.err);
}

const struct mx_store_io mx_store_io_default = {
	.open = sys_open,
	.close = sys_close,
	.pread = sys_pread,
	.pwrite = sys_pwrite,
	.fdatasync = sys_fdatasync,
	.fsync = sys_fsync,
	.ftruncate = sys_ftruncate,
	.fstat_size = sys_fstat_size,
	.rename = sys_rename,
	.unlink = sys_unlink,
	.mkdir = sys_mkdir,
	.listdir = sys_listdir,
	.fsync_dir = sys_fsync_dir,
	.ctx = NULL,
	.writeback = sys_writeback,
	.clone = sys_clone,
	.syncfs = sys_syncfs,
	.sync_many = sys_sync_many,
};

/* ---- I/O through the hooks ---------------------------------------------- */

/* Write all of buf at off.  0 or a negative errno. */
static int io_write_all(struct mx_store *st, int fd, const void *buf,
			size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = st->io->pwrite(st->io->ctx, fd, p, len, off);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Read len bytes at off; bytes past the end of the file read as zeroes.
 * *got (if not NULL) gets the count that came from the file.  0 or a
 * negative errno. */
static int io_read_zf(struct mx_store *st, int fd, void *buf, size_t len,
		      uint64_t off, size_t *got)
{
	uint8_t *p = buf;
	size_t done = 0;

	if (got)
		*got = 0;
	while (done < len) {
		ssize_t n = st->io->pread(st->io->ctx, fd, p + done,
					  len - done, off + done);

		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	memset(p + done, 0, len - done);
	if (got)
		*got = done;
	return 0;
}

static void io_close(struct mx_store *st, int fd)
{
	if (fd >= 0)
		(void)st->io->close(st->io->ctx, fd);
}

/* What one step of a checkpoint makes durable at once (ckpt_sync()):
 * files, some opened for it (closed after), and folders. */
#define CKPT_CHUNK 32u
struct ckpt_set {
	int fds[2 * CKPT_CHUNK];
	bool own[2 * CKPT_CHUNK];
	size_t n;
	char *dirs[CKPT_CHUNK];
	size_t n_dirs;
};

static void ckpt_add(struct ckpt_set *cs, int fd, bool own)
{
	assert(cs->n < MX_ARRAY_SIZE(cs->fds));
	cs->fds[cs->n] = fd;
	cs->own[cs->n++] = own;
}

static int ckpt_add_dir(struct ckpt_set *cs, const char *path)
{
	assert(cs->n_dirs < MX_ARRAY_SIZE(cs->dirs));
	cs->dirs[cs->n_dirs] = strdup(path);
	if (!cs->dirs[cs->n_dirs])
		return -ENOMEM;
	cs->n_dirs++;
	return 0;
}

static void ckpt_clear(struct mx_store *st, struct ckpt_set *cs)
{
	for (size_t i = 0; i < cs->n; i++)
		if (cs->own[i])
			io_close(st, cs->fds[i]);
	for (size_t i = 0; i < cs->n_dirs; i++)
		free(cs->dirs[i]);
	cs->n = cs->n_dirs = 0;
}

/* Write a new small file at path (a temporary name, renamed in once
 * synced) and add it to cs, to be synced and closed.  0 or a negative
 * errno. */
static int ckpt_create(struct mx_store *st, struct ckpt_set *cs, const char *path,
		       const void *data, size_t len)
{
	int fd, r;

	fd = st->io->open(st->io->ctx, path,
			  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fd;
	r = io_write_all(st, fd, data, len, 0);
	if (r) {
		io_close(st, fd);
		return r;
	}
	ckpt_add(cs, fd, true);
	return 0;
}

/* fsync every file of cs and every folder, together where the I/O can
 * (io->sync_many), then forget them.  0 or a negative errno. */
static int ckpt_sync(struct mx_store *st, struct ckpt_set *cs)
{
	int r = 0;

	if (st->io->sync_many) {
		r = st->io->sync_many(st->io->ctx, cs->fds, cs->n,
				      (const char *const *)cs->dirs, cs->n_dirs);
	} else {
		for (size_t i = 0; i < cs->n && !r; i++)
			r = st->io->fsync(st->io->ctx, cs->fds[i]);
		for (size_t i = 0; i < cs->n_dirs && !r; i++)
			r = st->io->fsync_dir(st->io->ctx, cs->dirs[i]);
	}
	ckpt_clear(st, cs);
	return r;
}

/* Read a whole (small) file into out.  0 or a negative errno. */
static int io_read_file(struct mx_store *st, const char *path,
			struct mx_wbuf *out)
{
	uint64_t size;
	uint8_t *p;
	int fd, r;

	mx_wbuf_reset(out);
	fd = st->io->open(st->io->ctx, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	r = st->io->fstat_size(st->io->ctx, fd, &size);
	if (!r && size > (256ull << 20))
		r = -EUCLEAN;
	if (!r) {
		p = mx_wbuf_reserve(out, (size_t)size);
		if (!p)
			r = -ENOMEM;
		else
			r = io_read_zf(st, fd, p, (size_t)size, 0, NULL);
		if (!r)
			out->len = (size_t)size;
	}
	io_close(st, fd);
	return r;
}

/* ---- Small helpers ------------------------------------------------------ */

static int store_fail(struct mx_store *st, int r)
{
	if (!st->fatal)
		st->fatal = r;
	return st->fatal;
}

static uint64_t nblocks(uint64_t size)
{
	return (size + BS - 1) / BS;
}

/* Bytes of block b that lie below size (0 < result <= BS). */
static uint32_t blk_valid(uint64_t size, uint64_t b)
{
	uint64_t left = size - b * BS;

	return left >= BS ? BS : (uint32_t)left;
}

/* I4's checksum: valid bytes at p, zeroes to the end of the block. */
static uint32_t crc_block(const void *p, uint32_t valid)
{
	uint32_t c = mx_crc32c(0, p, valid);

	if (valid < BS)
		c = mx_crc32c(c, zero_block, BS - valid);
	return c;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static void patch_u64(struct mx_wbuf *w, size_t at, uint64_t v)
{
	mx_wbuf_patch_u32(w, at, (uint32_t)v);
	mx_wbuf_patch_u32(w, at + 4, (uint32_t)(v >> 32));
}

static bool version_max(struct mx_version *a, struct mx_version b)
{
	if (mx_version_cmp(b, *a) <= 0)
		return false;
	*a = b;
	return true;
}

/* Name order: bytewise, then shorter first. */
static int name_cmp(const char *a, uint32_t alen, const char *b,
		    uint32_t blen)
{
	int c = memcmp(a, b, MX_MIN(alen, blen));

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* The hash that names an object's files.  Building with
 * MX_STORE_WEAK_NAME_HASH makes it collide all the time, so that tests
 * exercise the slot numbers. */
static uint64_t name_hash(const char *name, size_t len)
{
#ifdef MX_STORE_WEAK_NAME_HASH
	return mx_hash64(name, len, 0) & 3;
#else
	return mx_hash64(name, len, 0);
#endif
}

static bool name_ok(const char *name, size_t len, size_t max)
{
	return name && len >= 1 && len <= max && !memchr(name, '\0', len);
}

static void path_pgdir(const struct mx_store *st, const struct pgrp *p,
		       char *out)
{
	(void)snprintf(out, PATH_LEN, "%s/" PGS_NAME "/%08" PRIx32 ".%08" PRIx32,
		       st->dir, (uint32_t)p->pool, p->pg);
}

static void path_in_pg(const struct mx_store *st, const struct pgrp *p,
		       const char *leaf, char *out)
{
	(void)snprintf(out, PATH_LEN,
		       "%s/" PGS_NAME "/%08" PRIx32 ".%08" PRIx32 "/%s", st->dir,
		       (uint32_t)p->pool, p->pg, leaf);
}

/* Path of an object's file; suffix is ".d", ".m" or ".m.tmp". */
static void path_obj(const struct mx_store *st, const struct obj *o,
		     const char *suffix, char *out)
{
	(void)snprintf(out, PATH_LEN,
		       "%s/" PGS_NAME "/%08" PRIx32 ".%08" PRIx32
		       "/%016" PRIx64 ".%" PRIu32 "%s",
		       st->dir, (uint32_t)o->pg->pool, o->pg->pg, o->nhash,
		       o->slot, suffix);
}

static void path_top(const struct mx_store *st, const char *leaf, char *out)
{
	(void)snprintf(out, PATH_LEN, "%s/%s", st->dir, leaf);
}

/* ---- Hash tables ------------------------------------------------------- */

/* n buckets (a power of two), all empty; t->b is NULL on allocation
 * failure. */
static void htab_init(struct htab *t, size_t n,
		      size_t (*bucket)(const struct mx_store *st,
				       const struct hlink *l))
{
	t->b = calloc(n, sizeof(*t->b));
	t->mask = n - 1;
	t->n = 0;
	t->bucket = bucket;
}

static void htab_grow(const struct mx_store *st, struct htab *t)
{
	size_t n = (t->mask + 1) * 2, old = t->mask + 1;
	struct hlink **b = calloc(n, sizeof(*b));
	struct hlink **ob = t->b;

	if (!b)
		return; /* longer chains, still correct */
	t->b = b;
	t->mask = n - 1;
	for (size_t i = 0; i < old; i++) {
		struct hlink *l = ob[i], *next;

		for (; l; l = next) {
			size_t k = t->bucket(st, l);

			next = l->next;
			l->next = b[k];
			b[k] = l;
		}
	}
	free(ob);
}

static void htab_insert(const struct mx_store *st, struct htab *t,
			struct hlink *l)
{
	size_t k = t->bucket(st, l);

	l->next = t->b[k];
	t->b[k] = l;
	if (++t->n > t->mask + 1)
		htab_grow(st, t);
}

static void htab_remove(const struct mx_store *st, struct htab *t,
			struct hlink *l)
{
	struct hlink **pp = &t->b[t->bucket(st, l)];

	while (*pp != l)
		pp = &(*pp)->next;
	*pp = l->next;
	t->n--;
}

/* ---- PG table ----------------------------------------------------------- */

static size_t pg_bucket(const struct mx_store *st, int32_t pool, uint32_t pg)
{
	uint64_t h = ((uint64_t)(uint32_t)pool << 32 | pg) * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 32) & st->pgtab.mask;
}

static size_t pg_link_bucket(const struct mx_store *st, const struct hlink *l)
{
	const struct pgrp *p = mx_container_of(l, const struct pgrp, hlink);

	return pg_bucket(st, p->pool, p->pg);
}

static struct pgrp *pg_find(const struct mx_store *st, int32_t pool,
			    uint32_t pg)
{
	const struct hlink *l;

	for (l = st->pgtab.b[pg_bucket(st, pool, pg)]; l; l = l->next) {
		struct pgrp *p = mx_container_of(l, struct pgrp, hlink);

		if (p->pool == pool && p->pg == pg)
			return p;
	}
	return NULL;
}

/* Find or make the PG.  NULL on allocation failure. */
static struct pgrp *pg_get(struct mx_store *st, int32_t pool, uint32_t pg)
{
	struct pgrp *p = pg_find(st, pool, pg);

	if (p)
		return p;
	if (st->n_pgs == st->cap_pgs) {
		size_t cap = st->cap_pgs ? st->cap_pgs * 2 : 16;
		struct pgrp **v = realloc(st->pgs, cap * sizeof(*v));

		if (!v)
			return NULL;
		st->pgs = v;
		st->cap_pgs = cap;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->pool = pool;
	p->pg = pg;
	p->sorted = true;
	p->log_next = 1; /* log file numbers start at 1; 0 means none */
	st->pgs[st->n_pgs++] = p;
	htab_insert(st, &st->pgtab, &p->hlink);
	return p;
}

/* Make the PG's folder if it does not exist.  0 or a negative errno. */
static int pg_mkdir(struct mx_store *st, struct pgrp *p)
{
	char path[PATH_LEN];
	int r;

	if (p->dir_exists)
		return 0;
	path_pgdir(st, p, path);
	r = st->io->mkdir(st->io->ctx, path, 0755);
	if (r && r != -EEXIST)
		return r;
	p->dir_exists = true;
	st->top_dirty = true;
	return 0;
}

/* ---- Object index ------------------------------------------------------- */

static size_t obj_bucket(const struct mx_store *st, int32_t pool, uint32_t pg,
			 uint64_t nhash)
{
	uint64_t h = nhash ^ ((uint64_t)(uint32_t)pool * 0x9e3779b97f4a7c15ull) ^
		     ((uint64_t)pg * 0xc2b2ae3d27d4eb4full);

	return (size_t)(h ^ (h >> 32)) & st->tab.mask;
}

static size_t obj_link_bucket(const struct mx_store *st, const struct hlink *l)
{
	const struct obj *o = mx_container_of(l, const struct obj, hlink);

	return obj_bucket(st, o->pg->pool, o->pg->pg, o->nhash);
}

static struct obj *obj_find(const struct mx_store *st, int32_t pool,
			    uint32_t pg, const char *name, uint32_t len,
			    uint64_t nhash)
{
	const struct hlink *l;

	for (l = st->tab.b[obj_bucket(st, pool, pg, nhash)]; l; l = l->next) {
		struct obj *o = mx_container_of(l, struct obj, hlink);

		if (o->nhash == nhash && o->name_len == len &&
		    o->pg->pool == pool && o->pg->pg == pg &&
		    !memcmp(o->name, name, len))
			return o;
	}
	return NULL;
}

static struct obj *obj_lookup(const struct mx_store *st,
			      const struct mx_objkey *key)
{
	if (!key || !name_ok(key->name, key->name_len, MX_OBJ_NAME_MAX))
		return NULL;
	return obj_find(st, key->pool, key->pg, key->name, key->name_len,
			name_hash(key->name, key->name_len));
}

/* Whether another entry of PG p holds file slot (nhash, slot). */
static bool slot_taken(const struct mx_store *st, const struct pgrp *p,
		       uint64_t nhash, uint32_t slot)
{
	const struct hlink *l;

	for (l = st->tab.b[obj_bucket(st, p->pool, p->pg, nhash)]; l;
	     l = l->next) {
		const struct obj *o = mx_container_of(l, const struct obj, hlink);

		if (o->pg == p && o->nhash == nhash && o->slot == slot)
			return true;
	}
	return false;
}

static uint32_t slot_alloc(const struct mx_store *st, const struct pgrp *p,
			   uint64_t nhash)
{
	uint32_t s = 0;

	while (slot_taken(st, p, nhash, s))
		s++;
	return s;
}

/* Make an entry (exists false) in PG p.  NULL on allocation failure. */
static struct obj *obj_new(struct mx_store *st, struct pgrp *p,
			   const char *name, uint32_t len, uint64_t nhash,
			   uint32_t slot)
{
	struct obj *o;

	if (p->n_objs == p->cap_objs) {
		uint32_t cap = p->cap_objs ? p->cap_objs * 2 : 8;
		struct obj **v = realloc(p->objs, cap * sizeof(*v));

		if (!v)
			return NULL;
		p->objs = v;
		p->cap_objs = cap;
	}
	o = calloc(1, sizeof(*o) + len + 1);
	if (!o)
		return NULL;
	memcpy(o->name, name, len);
	o->name_len = (uint16_t)len;
	o->nhash = nhash;
	o->slot = slot;
	o->pg = p;
	o->fd = -1;
	o->fsize = FSIZE_UNKNOWN;
	o->pg_idx = p->n_objs;
	p->objs[p->n_objs++] = o;
	p->sorted = false;
	htab_insert(st, &st->tab, &o->hlink);
	return o;
}

static void lru_unlink(struct mx_store *st, struct obj *o)
{
	if (o->lru_prev)
		o->lru_prev->lru_next = o->lru_next;
	else
		st->lru_head = o->lru_next;
	if (o->lru_next)
		o->lru_next->lru_prev = o->lru_prev;
	else
		st->lru_tail = o->lru_prev;
	o->lru_prev = o->lru_next = NULL;
}

static void lru_push(struct mx_store *st, struct obj *o)
{
	o->lru_prev = NULL;
	o->lru_next = st->lru_head;
	if (st->lru_head)
		st->lru_head->lru_prev = o;
	else
		st->lru_tail = o;
	st->lru_head = o;
}

static void obj_close_fd(struct mx_store *st, struct obj *o)
{
	if (o->fd < 0)
		return;
	io_close(st, o->fd);
	o->fd = -1;
	lru_unlink(st, o);
	st->n_fds--;
}

static void xattrs_clear(struct obj *o)
{
	for (uint32_t i = 0; i < o->n_xa; i++)
		free(o->xa[i].name);
	free(o->xa);
	o->xa = NULL;
	o->n_xa = o->xa_cap = 0;
}

/* Free an entry's memory (not its index links). */
static void obj_destroy(struct mx_store *st, struct obj *o)
{
	obj_close_fd(st, o);
	xattrs_clear(o);
	free(o->crc);
	free(o->touch);
	free(o);
}

/* Take an entry out of the index and its PG, and free it. */
static void obj_drop(struct mx_store *st, struct obj *o)
{
	struct pgrp *p = o->pg;
	struct obj *last;

	htab_remove(st, &st->tab, &o->hlink);
	last = p->objs[--p->n_objs];
	if (last != o) {
		p->objs[o->pg_idx] = last;
		last->pg_idx = o->pg_idx;
		p->sorted = false;
	}
	obj_destroy(st, o);
}

static void obj_mark_dirty(struct mx_store *st, struct obj *o)
{
	if (o->dirty)
		return;
	o->dirty = true;
	o->dnext = st->dirty;
	st->dirty = o;
}

/* The data file's fd, opened (and created) on demand through the fd cache.
 * A fresh entry's file is truncated on first open: nothing of it is
 * committed yet, so the file cannot hold anything it needs (I3).
 * Returns the fd or a negative errno. */
static int obj_fd(struct mx_store *st, struct obj *o)
{
	char path[PATH_LEN];
	int fd, r, flags = O_RDWR | O_CREAT | O_CLOEXEC;

	if (o->fd >= 0) {
		if (st->lru_head != o) {
			lru_unlink(st, o);
			lru_push(st, o);
		}
		return o->fd;
	}
	if (st->n_fds >= FD_CACHE_MAX && st->lru_tail)
		obj_close_fd(st, st->lru_tail);
	r = pg_mkdir(st, o->pg);
	if (r)
		return r;
	if (o->fresh)
		flags |= O_TRUNC;
	path_obj(st, o, ".d", path);
	fd = st->io->open(st->io->ctx, path, flags, 0644);
	if (fd < 0)
		return fd;
	if (o->fresh) {
		o->fsize = 0;
		o->fresh = false;
	}
	if (!o->data_durable)
		o->pg->dir_dirty = true;
	o->files = true;
	o->dfile_made = true;
	o->fd = fd;
	lru_push(st, o);
	st->n_fds++;
	return fd;
}

static void stats_sub(struct mx_store *st, const struct obj *o)
{
	if (o->exists) {
		st->stats.objects--;
		st->stats.bytes -= o->size;
		o->pg->n_exist--;
		o->pg->n_bytes -= o->size;
	}
}

static void stats_add(struct mx_store *st, const struct obj *o)
{
	if (o->exists) {
		st->stats.objects++;
		st->stats.bytes += o->size;
		o->pg->n_exist++;
		o->pg->n_bytes += o->size;
	}
}

/* ---- PG log ------------------------------------------------------------- */

static bool version_zero(struct mx_version v)
{
	return v.epoch == 0 && v.seq == 0;
}

/* Whether the store knows p (store.h): an object, a log entry, a last
 * version or a non-zero info field. */
static bool pg_live(const struct pgrp *p)
{
	return p->n_exist || p->ring_n || !version_zero(p->last) ||
	       !version_zero(p->lu) || !version_zero(p->tail) || p->les ||
	       p->lec || p->n_acting || p->flags || p->wb_lost;
}

/* The i-th oldest entry of p's log (i < ring_n). */
static struct logent *pglog_at(const struct pgrp *p, uint32_t i)
{
	return p->ring[(p->ring_head + i) & (p->ring_cap - 1)];
}

static size_t req_bucket(const struct mx_store *st, int32_t pool, uint32_t pg,
			 uint64_t client_id, uint64_t tid)
{
	uint64_t h = ((uint64_t)(uint32_t)pool << 32 | pg) * 0x9e3779b97f4a7c15ull;

	h ^= client_id * 0xc2b2ae3d27d4eb4full;
	h = (h ^ (h >> 29)) + tid * 0x165667b19e3779f9ull;
	h ^= h >> 32;
	return (size_t)(h * 0x9e3779b97f4a7c15ull >> 16) & st->rtab.mask;
}

static size_t req_link_bucket(const struct mx_store *st, const struct hlink *l)
{
	const struct logent *e = mx_container_of(l, const struct logent, rlink);

	return req_bucket(st, e->pg->pool, e->pg->pg, e->client_id, e->tid);
}

static bool ent_has_req(const struct logent *e)
{
	return e->client_id || e->tid;
}

static void req_insert(struct mx_store *st, struct logent *e)
{
	htab_insert(st, &st->rtab, &e->rlink);
}

static void req_remove(struct mx_store *st, struct logent *e)
{
	htab_remove(st, &st->rtab, &e->rlink);
}

/* A new, unlinked entry.  NULL on allocation failure. */
static struct logent *logent_new(struct mx_version ver, uint8_t kind,
				 const char *name, uint32_t len,
				 uint64_t client_id, uint64_t tid)
{
	struct logent *e = calloc(1, sizeof(*e) + len + 1);

	if (!e)
		return NULL;
	e->ver = ver;
	e->kind = kind;
	e->client_id = client_id;
	e->tid = tid;
	e->foff = FOFF_NONE;
	e->name_len = (uint16_t)len;
	memcpy(e->name, name, len);
	return e;
}

/* Append e, newer than every entry of p's log, and index its request
 * identity.  0, or -ENOMEM (e is then not taken). */
static int pglog_push(struct mx_store *st, struct pgrp *p, struct logent *e)
{
	if (p->ring_n == p->ring_cap) {
		uint32_t cap = p->ring_cap ? p->ring_cap * 2 : 16;
		struct logent **v;

		if (cap < p->ring_cap)
			return -ENOMEM;
		v = malloc((size_t)cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		for (uint32_t i = 0; i < p->ring_n; i++)
			v[i] = pglog_at(p, i);
		free(p->ring);
		p->ring = v;
		p->ring_cap = cap;
		p->ring_head = 0;
	}
	p->ring[(p->ring_head + p->ring_n) & (p->ring_cap - 1)] = e;
	p->ring_n++;
	e->pg = p;
	if (ent_has_req(e))
		req_insert(st, e);
	return 0;
}

/* Drop the oldest entry of p's log; log_tail moves up to its version. */
static void pglog_pop(struct mx_store *st, struct pgrp *p)
{
	struct logent *e = pglog_at(p, 0);

	if (ent_has_req(e))
		req_remove(st, e);
	(void)version_max(&p->tail, e->ver);
	p->ring_head = (p->ring_head + 1) & (p->ring_cap - 1);
	p->ring_n--;
	free(e);
}

/* Keep at most log_max entries. */
static void pglog_bound(struct mx_store *st, struct pgrp *p)
{
	while (p->ring_n > st->log_max)
		pglog_pop(st, p);
}

/* Forget every entry and the ring; lu and tail stay as they were. */
static void pglog_clear(struct mx_store *st, struct pgrp *p)
{
	struct mx_version tail = p->tail;

	while (p->ring_n)
		pglog_pop(st, p);
	p->tail = tail;
	free(p->ring);
	p->ring = NULL;
	p->ring_cap = p->ring_head = 0;
}

/* Index of the oldest entry of p's log newer than v (ring_n if none). */
static uint32_t pglog_after(const struct pgrp *p, struct mx_version v)
{
	uint32_t lo = 0, hi = p->ring_n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (mx_version_cmp(pglog_at(p, mid)->ver, v) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* A log entry's encoding, shared by REC_PG_RESET records and log files
 * (which add a CRC-32C): version, kind, request identity, name. */
static void enc_entry(struct mx_wbuf *w, struct mx_version ver, uint8_t kind,
		      uint64_t client_id, uint64_t tid, const char *name,
		      uint32_t len)
{
	mx_put_u64(w, ver.epoch);
	mx_put_u64(w, ver.seq);
	mx_put_u8(w, kind);
	mx_put_u64(w, client_id);
	mx_put_u64(w, tid);
	mx_put_u16(w, (uint16_t)len);
	mx_put_bytes(w, name, len);
}

/* Decode what enc_entry() wrote; *name points into rb's buffer.  False
 * if it does not make sense (rb's error, a bad kind or name). */
static bool dec_entry(struct mx_rbuf *rb, struct mx_pglog_entry *e)
{
	uint16_t len;

	e->version.epoch = mx_get_u64(rb);
	e->version.seq = mx_get_u64(rb);
	e->kind = mx_get_u8(rb);
	e->client_id = mx_get_u64(rb);
	e->tid = mx_get_u64(rb);
	len = mx_get_u16(rb);
	e->name = mx_get_bytes(rb, len);
	e->name_len = len;
	return !rb->err && (e->kind == MX_LOG_MODIFY || e->kind == MX_LOG_DELETE) &&
	       name_ok(e->name, len, MX_OBJ_NAME_MAX);
}

/* Note that the PG's log file number f is to be unlinked once the
 * checkpoint that stopped referring to it completes.  0 or -ENOMEM. */
static int pg_unlink_later(struct pgrp *p, uint64_t f)
{
	if (p->n_unlink == p->cap_unlink) {
		uint32_t cap = p->cap_unlink ? p->cap_unlink * 2 : 2;
		uint64_t *v = realloc(p->unlink_logs, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->unlink_logs = v;
		p->cap_unlink = cap;
	}
	p->unlink_logs[p->n_unlink++] = f;
	return 0;
}

static void path_plog(const struct mx_store *st, const struct pgrp *p,
		      uint64_t f, char *out)
{
	char leaf[32];

	(void)snprintf(leaf, sizeof(leaf), PLOG_PREFIX "%" PRIu64, f);
	path_in_pg(st, p, leaf, out);
}

/* ---- Block checksums ---------------------------------------------------- */

/* Size the CRC array for newsize; blocks past the old size get the CRC of
 * a zero block (I3, I4).  Call before o->size changes.  0 or -ENOMEM. */
static int crc_resize(struct mx_store *st, struct obj *o, uint64_t newsize)
{
	uint64_t old = nblocks(o->size), n = nblocks(newsize);

	if (n > o->crc_cap) {
		uint64_t cap = MX_MAX(n, o->crc_cap * 2);
		uint32_t *v;

		if (cap > nblocks(MX_OBJ_SIZE_MAX))
			cap = nblocks(MX_OBJ_SIZE_MAX);
		v = realloc(o->crc, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		o->crc = v;
		o->crc_cap = cap;
	}
	for (uint64_t b = old; b < n; b++)
		o->crc[b] = st->zero_crc;
	return 0;
}

/* Recompute crc[b] from the data file. */
static int crc_from_disk(struct mx_store *st, struct obj *o, int fd,
			 uint64_t b)
{
	uint32_t valid = blk_valid(o->size, b);
	int r = io_read_zf(st, fd, st->blk, valid, b * BS, NULL);

	if (r)
		return r;
	o->crc[b] = crc_block(st->blk, valid);
	return 0;
}

/* Note blocks [lo, hi) as touched by replay (I4). */
static int touch_add(struct obj *o, uint64_t lo, uint64_t hi)
{
	struct brange *t;

	if (lo >= hi)
		return 0;
	if (o->n_touch) {
		t = &o->touch[o->n_touch - 1];
		if (lo <= t->hi && hi >= t->lo) {
			t->lo = MX_MIN(t->lo, lo);
			t->hi = MX_MAX(t->hi, hi);
			return 0;
		}
	}
	if (o->n_touch == o->touch_cap) {
		uint32_t cap = o->touch_cap ? o->touch_cap * 2 : 4;

		t = realloc(o->touch, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		o->touch = t;
		o->touch_cap = cap;
	}
	o->touch[o->n_touch++] = (struct brange){ lo, hi };
	return 0;
}

static int brange_cmp(const void *a, const void *b)
{
	const struct brange *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* End of replay: every byte of o has its final value, so recompute the
 * CRC of every block replay touched (I4). */
static int crc_fix_touched(struct mx_store *st, struct obj *o)
{
	uint64_t nb = nblocks(o->size), hi = 0;
	int fd = -1, r = 0;

	if (!o->exists || !o->n_touch)
		goto out;
	qsort(o->touch, o->n_touch, sizeof(*o->touch), brange_cmp);
	for (uint32_t i = 0; i < o->n_touch && !r; i++) {
		uint64_t b = MX_MAX(o->touch[i].lo, hi);
		uint64_t end = MX_MIN(o->touch[i].hi, nb);

		hi = MX_MAX(hi, o->touch[i].hi);
		while (b < end) {
			uint64_t cnt = MX_MIN(end - b, CRC_CHUNK_BLOCKS);
			uint64_t len = MX_MIN(cnt * BS, o->size - b * BS);
			size_t got;

			if (fd < 0) {
				fd = obj_fd(st, o);
				if (fd < 0) {
					r = fd;
					break;
				}
			}
			r = io_read_zf(st, fd, st->chunk, (size_t)len, b * BS,
				       &got);
			if (r)
				break;
			for (uint64_t k = 0; k < cnt; k++) {
				if (k * BS >= got)
					o->crc[b + k] = st->zero_crc;
				else
					o->crc[b + k] = crc_block(
						st->chunk + k * BS,
						blk_valid(o->size, b + k));
			}
			b += cnt;
		}
	}
out:
	free(o->touch);
	o->touch = NULL;
	o->n_touch = o->touch_cap = 0;
	return r;
}

/* ---- Applying operations (commit and replay share these) ---------------- */

/* Make fsize known before the object grows past its size s0 (I3). */
static int obj_settle_fsize(struct mx_store *st, struct obj *o, uint64_t s0)
{
	int fd, r;

	if (o->fsize != FSIZE_UNKNOWN)
		return 0;
	fd = obj_fd(st, o);
	if (fd < 0)
		return fd;
	if (o->fsize != FSIZE_UNKNOWN && o->fsize <= s0)
		return 0; /* fresh: opened empty */
	r = st->io->ftruncate(st->io->ctx, fd, s0);
	if (r)
		return r;
	o->fsize = s0;
	return 0;
}

/* Apply a write by cloning its bytes from the log, where its frame put them
 * (durable already, or the frame would not be applied, I1): true if done.
 * Whole blocks at a block boundary of the log only; anything else, a
 * file system that cannot, or an error copies instead. */
static bool obj_clone(struct mx_store *st, int fd, uint64_t off,
		      const uint8_t *data, uint32_t len, bool padded)
{
	uint64_t src;
	int r;

	if (st->no_clone || len < st->clone_min || st->apply_at == FOFF_NONE ||
	    off % BS || len % BS)
		return false;
	src = st->apply_at + (uint64_t)(data - st->apply_base);
	if (src % BS) {
		st->stats.clone_misaligned += padded;
		return false;
	}
	r = st->io->clone(st->io->ctx, fd, off, st->log_fd, src, len);
	/* Anything but a passing shortage says the file system cannot. */
	if (r && r != -ENOSPC && r != -EDQUOT && r != -ENOMEM && r != -EIO &&
	    r != -EINTR && r != -EAGAIN) {
		st->no_clone = true;
		st->stats.clone_refused = -r;
	}
	if (r)
		return false;
	st->stats.cloned_bytes += len;
	return true;
}

/* WRITE: len bytes at off; the object exists already (caller). */
static int obj_write(struct mx_store *st, struct obj *o, uint64_t off,
		     const uint8_t *data, uint32_t len, bool padded)
{
	uint64_t s0 = o->size, end = off + len, ns = MX_MAX(s0, end);
	int fd, r;

	if (len == 0)
		return 0;
	if (off > s0) {
		r = obj_settle_fsize(st, o, s0);
		if (r)
			return r;
	}
	fd = obj_fd(st, o);
	if (fd < 0)
		return fd;
	if (!obj_clone(st, fd, off, data, len, padded)) {
		r = io_write_all(st, fd, data, len, off);
		if (r)
			return r;
		/* A large write's pages go to the disk now, in the
		 * background, so the checkpoint's fsync finds little left to
		 * do and does not stall the OSD's loop for long.  Small ones
		 * wait for the checkpoint, which writes many of them at
		 * once. */
		if (len >= WRITEBACK_MIN && st->io->writeback && !st->replaying)
			st->io->writeback(st->io->ctx, fd, off, len);
	}
	if (o->fsize != FSIZE_UNKNOWN && end > o->fsize)
		o->fsize = end;
	r = crc_resize(st, o, ns);
	if (r)
		return r;
	o->size = ns;
	o->data_dirty = true;
	if (st->replaying) {
		if (off > s0 && s0 % BS)
			r = touch_add(o, s0 / BS, s0 / BS + 1);
		if (!r)
			r = touch_add(o, off / BS, nblocks(end));
		return r;
	}
	/* I4: blocks wholly inside the write from the data, the partial
	 * ones at either end from the file.  Blocks between s0 and off are
	 * holes and already carry the zero CRC. */
	for (uint64_t b = off / BS; b < nblocks(end); b++) {
		uint64_t bs = b * BS;
		uint32_t valid = blk_valid(ns, b);

		if (bs >= off && bs + valid <= end) {
			o->crc[b] = crc_block(data + (bs - off), valid);
		} else {
			r = crc_from_disk(st, o, fd, b);
			if (r)
				return r;
		}
	}
	return 0;
}

/* TRUNCATE to s; the object exists already (caller). */
static int obj_truncate(struct mx_store *st, struct obj *o, uint64_t s)
{
	uint64_t s0 = o->size;
	bool cut_file = false;
	int fd = -1, r;

	if (s == s0)
		return 0;
	o->data_dirty = true;
	if (s > s0) {
		/* Growing: the new bytes are zeroes past fsize (I3). */
		r = obj_settle_fsize(st, o, s0);
		if (!r)
			r = crc_resize(st, o, s);
		if (r)
			return r;
		o->size = s;
		if (st->replaying && s0 % BS)
			return touch_add(o, s0 / BS, s0 / BS + 1);
		return 0;
	}
	if (o->fsize == FSIZE_UNKNOWN || o->fsize > s) {
		fd = obj_fd(st, o);
		if (fd < 0)
			return fd;
		r = st->io->ftruncate(st->io->ctx, fd, s);
		if (r)
			return r;
		o->fsize = s;
		cut_file = true;
	}
	/* Shrinking the array cannot fail. */
	(void)crc_resize(st, o, s);
	o->size = s;
	if (s % BS == 0)
		return 0;
	if (st->replaying)
		return touch_add(o, s / BS, s / BS + 1);
	/* When only zeroes past fsize were cut, the last block's content,
	 * and so its CRC, is unchanged. */
	return cut_file ? crc_from_disk(st, o, fd, s / BS) : 0;
}

/* REMOVE: the data file stays until checkpoint() unlinks it. */
static void obj_clear(struct mx_store *st, struct obj *o)
{
	(void)st;
	o->exists = false;
	o->size = 0;
	xattrs_clear(o);
	free(o->crc);
	o->crc = NULL;
	o->crc_cap = 0;
	if (o->fsize != 0)
		o->fsize = FSIZE_UNKNOWN;
	o->data_dirty = true;
}

/* Index of name in o->xa, or -(insertion point) - 1. */
static long xattr_find(const struct obj *o, const char *name, uint32_t len)
{
	long lo = 0, hi = (long)o->n_xa - 1;

	while (lo <= hi) {
		long mid = (lo + hi) / 2;
		const struct xattr *x = &o->xa[mid];
		int c = name_cmp(x->name, x->name_len, name, len);

		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -lo - 1;
}

static int xattr_set(struct obj *o, const char *name, uint32_t nlen,
		     const void *val, uint32_t vlen)
{
	long i = xattr_find(o, name, nlen);
	char *m = malloc((size_t)nlen + 1 + vlen);
	struct xattr *x;

	if (!m)
		return -ENOMEM;
	memcpy(m, name, nlen);
	m[nlen] = '\0';
	if (vlen)
		memcpy(m + nlen + 1, val, vlen);
	if (i >= 0) {
		x = &o->xa[i];
		free(x->name);
	} else {
		i = -i - 1;
		if (o->n_xa == o->xa_cap) {
			uint32_t cap = o->xa_cap ? o->xa_cap * 2 : 4;
			struct xattr *v = realloc(o->xa, cap * sizeof(*v));

			if (!v) {
				free(m);
				return -ENOMEM;
			}
			o->xa = v;
			o->xa_cap = cap;
		}
		memmove(&o->xa[i + 1], &o->xa[i],
			(o->n_xa - (size_t)i) * sizeof(*o->xa));
		o->n_xa++;
		x = &o->xa[i];
	}
	x->name = m;
	x->name_len = nlen;
	x->val = (uint8_t *)m + nlen + 1;
	x->len = vlen;
	return 0;
}

static void xattr_rm(struct obj *o, const char *name, uint32_t nlen)
{
	long i = xattr_find(o, name, nlen);

	if (i < 0)
		return;
	free(o->xa[i].name);
	memmove(&o->xa[i], &o->xa[i + 1],
		(o->n_xa - (size_t)i - 1) * sizeof(*o->xa));
	o->n_xa--;
}

/* Effect of one op on (exists, size): the rule that queue uses to fill in
 * a record's before/after fields and apply uses to check them. */
static void op_effect(uint8_t type, uint64_t off, uint64_t len_or_size,
		      bool *exists, uint64_t *size)
{
	switch (type) {
	case MX_TXN_WRITE:
		*exists = true;
		if (len_or_size)
			*size = MX_MAX(*size, off + len_or_size);
		break;
	case MX_TXN_TRUNCATE:
		*exists = true;
		*size = len_or_size;
		break;
	case MX_TXN_REMOVE:
		*exists = false;
		*size = 0;
		break;
	case MX_TXN_SETXATTR:
	case MX_TXN_CREATE:
		*exists = true;
		break;
	default: /* RMXATTR */
		break;
	}
}

/* Replay only: move o to the state a record says it had before (I2).
 * Touches the blocks around both sizes; the rest is fixed by later
 * records or was right already. */
static int obj_set_state(struct mx_store *st, struct obj *o, bool ex,
			 uint64_t size)
{
	uint64_t lo, hi;
	int r;

	if (o->exists == ex && o->size == size)
		return 0;
	if (!ex)
		xattrs_clear(o);
	lo = MX_MIN(o->size, size) / BS;
	hi = nblocks(MX_MAX(o->size, size));
	r = crc_resize(st, o, size);
	if (r)
		return r;
	o->exists = ex;
	o->size = size;
	o->fsize = FSIZE_UNKNOWN;
	o->data_dirty = true;
	return touch_add(o, lo, hi);
}

/* Append the log entry of a REC_TXN_LOG record to p's log.  Commit only
 * stages entries newer than last_update (mx_store_queue()); replay skips
 * one that is not, because then the PG's state was loaded from a pg file
 * written after the record (I6). */
static int apply_log_append(struct mx_store *st, struct pgrp *p,
			    struct mx_version ver, uint8_t kind,
			    const char *name, uint32_t len,
			    uint64_t client_id, uint64_t tid)
{
	struct logent *e;

	if (mx_version_cmp(ver, p->lu) <= 0)
		return st->replaying ? 0 : -EUCLEAN;
	e = logent_new(ver, kind, name, len, client_id, tid);
	if (!e)
		return -ENOMEM;
	if (pglog_push(st, p, e)) {
		free(e);
		return -ENOMEM;
	}
	p->lu = ver;
	pglog_bound(st, p);
	p->meta_dirty = true;
	return 0;
}

/* Decode one transaction record (REC_TXN or REC_TXN_LOG, the kind byte
 * already read) from rb and apply it.  Commit calls this after the frame
 * is durable (I1); replay calls it for each record of the valid log.  0,
 * -EUCLEAN for a record that does not make sense, or the I/O or
 * allocation error. */
static int apply_txn(struct mx_store *st, struct mx_rbuf *rb, uint8_t kind)
{
	int32_t pool = mx_get_i32(rb);
	uint32_t pgid = mx_get_u32(rb);
	uint32_t slot = mx_get_u32(rb);
	uint16_t nlen = mx_get_u16(rb);
	const char *name = mx_get_bytes(rb, nlen);
	struct mx_version ver;
	uint64_t mtime, sz0, sz1, nh, client_id = 0, tid = 0;
	uint8_t lkind = 0;
	bool ex0, ex1;
	uint32_t n_ops;
	struct pgrp *p;
	struct obj *o;
	int r = 0;

	ver.epoch = mx_get_u64(rb);
	ver.seq = mx_get_u64(rb);
	mtime = mx_get_u64(rb);
	ex0 = mx_get_u8(rb);
	sz0 = mx_get_u64(rb);
	ex1 = mx_get_u8(rb);
	sz1 = mx_get_u64(rb);
	n_ops = mx_get_u32(rb);
	if (rb->err || !name_ok(name, nlen, MX_OBJ_NAME_MAX) || pool < 0 ||
	    pgid == UINT32_MAX || sz0 > MX_OBJ_SIZE_MAX ||
	    sz1 > MX_OBJ_SIZE_MAX || n_ops == 0)
		return -EUCLEAN;
	nh = name_hash(name, nlen);
	p = pg_get(st, pool, pgid);
	if (!p)
		return -ENOMEM;
	o = obj_find(st, pool, pgid, name, nlen, nh);
	if (!o) {
		/* Only replay meets a record for an object not in the
		 * index; its files may exist from before the crash. */
		if (!st->replaying || slot_taken(st, p, nh, slot))
			return -EUCLEAN;
		o = obj_new(st, p, name, nlen, nh, slot);
		if (!o)
			return -ENOMEM;
		o->files = true;
	} else if (o->slot != slot) {
		return -EUCLEAN;
	}
	stats_sub(st, o);
	if (st->replaying) {
		r = obj_set_state(st, o, ex0, sz0);
	} else {
		assert(o->exists == ex0 && o->size == sz0);
		assert(o->n_pending > 0);
		o->n_pending--;
	}
	for (uint32_t i = 0; i < n_ops && !r; i++) {
		uint8_t type = mx_get_u8(rb);
		uint64_t off, size;
		const void *data, *xn;
		uint32_t len;
		uint16_t xl;

		switch (type) {
		case MX_TXN_WRITE:
		case OP_WRITE_PADDED:
			off = mx_get_u64(rb);
			if (type == OP_WRITE_PADDED)
				(void)mx_get_bytes(rb, mx_get_u16(rb));
			data = mx_get_blob(rb, &len, UINT32_MAX);
			if (rb->err || off > MX_OBJ_SIZE_MAX ||
			    off + len > MX_OBJ_SIZE_MAX) {
				r = -EUCLEAN;
				break;
			}
			o->exists = true;
			r = obj_write(st, o, off, data, len,
				      type == OP_WRITE_PADDED);
			break;
		case MX_TXN_TRUNCATE:
			size = mx_get_u64(rb);
			if (rb->err || size > MX_OBJ_SIZE_MAX) {
				r = -EUCLEAN;
				break;
			}
			o->exists = true;
			r = obj_truncate(st, o, size);
			break;
		case MX_TXN_REMOVE:
			obj_clear(st, o);
			break;
		case MX_TXN_CREATE:
			o->exists = true;
			break;
		case MX_TXN_SETXATTR:
		case MX_TXN_RMXATTR:
			xl = mx_get_u16(rb);
			xn = mx_get_bytes(rb, xl);
			data = NULL;
			len = 0;
			if (type == MX_TXN_SETXATTR)
				data = mx_get_blob(rb, &len,
						   MX_XATTR_VALUE_MAX);
			if (rb->err || !name_ok(xn, xl, MX_XATTR_NAME_MAX)) {
				r = -EUCLEAN;
				break;
			}
			if (type == MX_TXN_SETXATTR) {
				o->exists = true;
				r = xattr_set(o, xn, xl, data, len);
			} else {
				xattr_rm(o, xn, xl);
			}
			break;
		default:
			r = -EUCLEAN;
			break;
		}
	}
	if (!r && kind == REC_TXN_LOG) {
		lkind = mx_get_u8(rb);
		client_id = mx_get_u64(rb);
		tid = mx_get_u64(rb);
		if (lkind != (ex1 ? MX_LOG_MODIFY : MX_LOG_DELETE))
			r = -EUCLEAN;
	}
	if (!r && (rb->err || o->exists != ex1 || o->size != sz1))
		r = -EUCLEAN;
	if (!r && o->exists) {
		o->ver = ver;
		o->mtime_ms = mtime;
	}
	if (!r && version_max(&p->last, ver))
		p->meta_dirty = true;
	if (!r && kind == REC_TXN_LOG)
		r = apply_log_append(st, p, ver, lkind, name, nlen, client_id,
				     tid);
	obj_mark_dirty(st, o);
	stats_add(st, o);
	return r;
}

/* Decode one PG record (REC_PG_*, the kind byte already read) and apply
 * it.  Each sets what it touches absolutely, except that a trim only
 * drops entries and raises log_tail: applying a generation's records over
 * the PG's state at its start or at its end gives the same result (I6).
 * 0, -EUCLEAN, or -ENOMEM. */
static int apply_pg_rec(struct mx_store *st, struct mx_rbuf *rb, uint8_t kind)
{
	int32_t pool = mx_get_i32(rb);
	uint32_t pgid = mx_get_u32(rb);
	struct mx_version v, prev;
	struct pgrp *p;
	uint32_t n;

	if (rb->err || pool < 0 || pgid == UINT32_MAX)
		return -EUCLEAN;
	p = pg_get(st, pool, pgid);
	if (!p)
		return -ENOMEM;
	p->meta_dirty = true;
	switch (kind) {
	case REC_PG_INFO:
	case REC_PG_INFO2:
		p->les = mx_get_u64(rb);
		p->lec = mx_get_u64(rb);
		n = mx_get_u8(rb);
		if (n > MX_PG_ACTING_MAX)
			return -EUCLEAN;
		memset(p->acting, 0, sizeof(p->acting));
		for (uint32_t i = 0; i < n; i++)
			p->acting[i] = mx_get_i32(rb);
		p->n_acting = (uint8_t)n;
		p->flags = mx_get_u32(rb);
		p->wb_lost = kind == REC_PG_INFO2 ? mx_get_u64(rb) : 0;
		break;
	case REC_PG_TRIM:
		v.epoch = mx_get_u64(rb);
		v.seq = mx_get_u64(rb);
		if (rb->err)
			return -EUCLEAN;
		while (p->ring_n && mx_version_cmp(pglog_at(p, 0)->ver, v) <= 0)
			pglog_pop(st, p);
		(void)version_max(&p->tail,
				  mx_version_cmp(v, p->lu) < 0 ? v : p->lu);
		break;
	case REC_PG_RESET:
		prev.epoch = mx_get_u64(rb);
		prev.seq = mx_get_u64(rb);
		n = mx_get_u32(rb);
		if (rb->err)
			return -EUCLEAN;
		pglog_clear(st, p);
		p->tail = p->lu = prev;
		for (uint32_t i = 0; i < n; i++) {
			struct mx_pglog_entry d;
			struct logent *e;

			if (!dec_entry(rb, &d) ||
			    mx_version_cmp(d.version, prev) <= 0)
				return -EUCLEAN;
			prev = p->lu = d.version;
			if (n - i > st->log_max) {
				p->tail = d.version; /* beyond the bound */
				continue;
			}
			e = logent_new(d.version, d.kind, d.name, d.name_len,
				       d.client_id, d.tid);
			if (!e)
				return -ENOMEM;
			if (pglog_push(st, p, e)) {
				free(e);
				return -ENOMEM;
			}
		}
		break;
	case REC_PG_REMOVE:
		/* The objects went in the records just before this one. */
		pglog_clear(st, p);
		p->tail = p->lu = p->last = (struct mx_version){ 0, 0 };
		p->les = p->lec = 0;
		p->n_acting = 0;
		memset(p->acting, 0, sizeof(p->acting));
		p->flags = 0;
		p->wb_lost = 0;
		break;
	default:
		return -EUCLEAN;
	}
	return rb->err ? -EUCLEAN : 0;
}

/* Apply the n records of a frame's payload in order; the payload is at
 * offset at of the log file.  0 or a negative errno. */
static int apply_frame(struct mx_store *st, const uint8_t *payload,
		       uint64_t len, uint32_t n, uint64_t at)
{
	struct mx_rbuf rb;
	int r = 0;

	mx_rbuf_init(&rb, payload, (size_t)len);
	st->apply_base = payload;
	st->apply_at = at;
	for (uint32_t i = 0; i < n && !r; i++) {
		uint8_t kind = mx_get_u8(&rb);

		if (kind == REC_TXN || kind == REC_TXN_LOG)
			r = apply_txn(st, &rb, kind);
		else
			r = apply_pg_rec(st, &rb, kind);
	}
	st->apply_base = NULL;
	st->apply_at = FOFF_NONE;
	if (r)
		return r;
	return mx_rbuf_left(&rb) ? -EUCLEAN : 0;
}

/* Where a frame's payload is in the log file: its header says. */
static uint64_t frame_payload_at(const uint8_t *hdr)
{
	struct mx_rbuf rb;

	mx_rbuf_init(&rb, hdr + 24, 8);
	return mx_get_u64(&rb) + FRAME_HDR;
}

/* ---- The log ------------------------------------------------------------ */

/* Encode a log header slot for (gen, first_seq) into out[LOG_SLOT]. */
static int log_hdr_encode(struct mx_store *st, uint64_t gen,
			  uint64_t first_seq, uint8_t *out)
{
	struct mx_wbuf *w = &st->scratch;

	mx_wbuf_reset(w);
	mx_put_u32(w, LOG_HDR_MAGIC);
	mx_put_u32(w, FMT_VERSION);
	mx_put_u64(w, gen);
	mx_put_u64(w, first_seq);
	if (w->err)
		return w->err;
	mx_put_u32(w, mx_crc32c(0, w->data, w->len));
	if (w->err)
		return w->err;
	memset(out, 0, LOG_SLOT);
	memcpy(out, w->data, w->len);
	return 0;
}

/* Decode a header slot; false if it does not check. */
static bool log_hdr_decode(const uint8_t *in, uint64_t *gen,
			   uint64_t *first_seq)
{
	struct mx_rbuf rb;
	uint32_t magic, version, crc;

	mx_rbuf_init(&rb, in, LOG_SLOT);
	magic = mx_get_u32(&rb);
	version = mx_get_u32(&rb);
	*gen = mx_get_u64(&rb);
	*first_seq = mx_get_u64(&rb);
	crc = mx_get_u32(&rb);
	return !rb.err && magic == LOG_HDR_MAGIC && version == FMT_VERSION &&
	       crc == mx_crc32c(0, in, 24) && *gen != 0;
}

/* Folder entry names, as collected by listdir. */
struct namelist {
	char **v; /* From malloc(), each from malloc() */
	size_t n, cap;
};

static int namelist_add(void *arg, const char *name)
{
	struct namelist *nl = arg;
	char *s;

	if (nl->n == nl->cap) {
		size_t cap = nl->cap ? nl->cap * 2 : 16;
		char **v = realloc(nl->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		nl->v = v;
		nl->cap = cap;
	}
	s = strdup(name);
	if (!s)
		return -ENOMEM;
	nl->v[nl->n++] = s;
	return 0;
}

static void namelist_free(struct namelist *nl)
{
	for (size_t i = 0; i < nl->n; i++)
		free(nl->v[i]);
	free(nl->v);
	memset(nl, 0, sizeof(*nl));
}

/* Make a fresh store in st->dir: the folder itself if missing (and its
 * parent fsynced), the PG folder (and the folder fsynced), then the log
 * (generation 1) written under a temporary name, fsynced and renamed in,
 * then the folder fsynced again.  A crash leaves either no log (and a
 * fresh start next time) or a whole one.  Returns the log's fd, or a
 * negative errno (-EUCLEAN if objects exist without a log). */
static int store_create(struct mx_store *st)
{
	char path[PATH_LEN], tmp[PATH_LEN];
	struct namelist nl = { 0 };
	uint8_t *area;
	int fd, r;

	r = st->io->mkdir(st->io->ctx, st->dir, 0755);
	if (!r) {
		/* We made the folder: make its name durable too. */
		const char *sl = strrchr(st->dir, '/');

		if (!sl)
			(void)snprintf(path, PATH_LEN, ".");
		else if (sl == st->dir)
			(void)snprintf(path, PATH_LEN, "/");
		else
			(void)snprintf(path, PATH_LEN, "%.*s",
				       (int)(sl - st->dir), st->dir);
		r = st->io->fsync_dir(st->io->ctx, path);
	}
	if (r && r != -EEXIST)
		return r;
	path_top(st, PGS_NAME, path);
	r = st->io->mkdir(st->io->ctx, path, 0755);
	if (r == -EEXIST) {
		r = st->io->listdir(st->io->ctx, path, namelist_add, &nl);
		if (!r && nl.n)
			r = -EUCLEAN;
		namelist_free(&nl);
	}
	/* The PG folder's name is durable before the log's: a log always
	 * comes with its PG folder (load_all() relies on it). */
	if (!r)
		r = st->io->fsync_dir(st->io->ctx, st->dir);
	if (r)
		return r;
	area = calloc(1, LOG_START);
	if (!area)
		return -ENOMEM;
	r = log_hdr_encode(st, 1, 1, area + LOG_SLOT); /* G lives in slot G&1 */
	if (r) {
		free(area);
		return r;
	}
	path_top(st, LOG_TMP_NAME, tmp);
	path_top(st, LOG_NAME, path);
	fd = st->io->open(st->io->ctx, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
			  0644);
	if (fd < 0) {
		free(area);
		return fd;
	}
	r = io_write_all(st, fd, area, LOG_START, 0);
	free(area);
	if (!r)
		r = st->io->fsync(st->io->ctx, fd);
	if (!r)
		r = st->io->rename(st->io->ctx, tmp, path);
	if (!r)
		r = st->io->fsync_dir(st->io->ctx, st->dir);
	if (r) {
		io_close(st, fd);
		return r;
	}
	return fd;
}

/* Open (or create) the log and pick its generation from the header slots.
 * 0 or a negative errno (-EUCLEAN when neither slot checks). */
static int log_open(struct mx_store *st)
{
	char path[PATH_LEN];
	uint8_t slots[2 * LOG_SLOT];
	uint64_t g[2], s[2];
	bool ok[2];
	int fd, r, i;

	path_top(st, LOG_NAME, path);
	fd = st->io->open(st->io->ctx, path, O_RDWR | O_CLOEXEC, 0);
	if (fd == -ENOENT)
		fd = store_create(st);
	if (fd < 0)
		return fd;
	st->log_fd = fd;
	r = io_read_zf(st, fd, slots, sizeof(slots), 0, NULL);
	if (r)
		return r;
	for (i = 0; i < 2; i++)
		ok[i] = log_hdr_decode(slots + i * LOG_SLOT, &g[i], &s[i]) &&
			(g[i] & 1) == (uint64_t)i;
	if (!ok[0] && !ok[1])
		return -EUCLEAN;
	i = ok[1] && (!ok[0] || g[1] > g[0]) ? 1 : 0;
	st->gen = g[i];
	st->seq = s[i];
	st->sync_seq = s[i];
	st->log_end = LOG_START;
	/* The split sync's own open file: the kernel reports a write-back
	 * error once per open file, so a sync on the store's thread must not
	 * take the error a split sync's fdatasync is owed, and the reverse.
	 * Opened before any frame is written, so it sees every error after. */
	fd = st->io->open(st->io->ctx, path, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	st->sync_fd = fd;
	return st->io->fstat_size(st->io->ctx, st->log_fd, &st->log_fsize);
}

/* A sequential reader over the log file with a read-ahead buffer. */
struct logrd {
	struct mx_store *st;
	uint8_t *buf; /* From malloc() */
	size_t cap;
	uint64_t base; /* file offset of buf[0] */
	size_t len;    /* bytes of buf read from the file */
};

/* Bytes [off, off + n) of the log, or NULL if the file ends first.  The
 * pointer is valid until the next call.  *err gets an I/O error. */
static const uint8_t *lr_get(struct logrd *lr, uint64_t off, uint64_t n,
			     int *err)
{
	uint64_t fsize = lr->st->log_fsize, want;
	size_t got;

	*err = 0;
	if (off >= lr->base && off - lr->base + n <= lr->len)
		return lr->buf + (off - lr->base);
	if (n > fsize || off > fsize - n)
		return NULL;
	want = MX_MIN(MX_MAX(n, LOG_READ_CHUNK), fsize - off);
	if (want > lr->cap) {
		uint8_t *b = realloc(lr->buf, (size_t)want);

		if (!b) {
			*err = -ENOMEM;
			return NULL;
		}
		lr->buf = b;
		lr->cap = (size_t)want;
	}
	lr->len = 0;
	*err = io_read_zf(lr->st, lr->st->log_fd, lr->buf, (size_t)want, off,
			  &got);
	if (*err)
		return NULL;
	lr->base = off;
	lr->len = got;
	return got >= n ? lr->buf : NULL;
}

struct frame {
	uint64_t gen, seq, off, len;
	uint32_t n, pcrc;
	uint32_t hlen;		/* FRAME_HDR, or FRAME_HDR_V1 */
	uint64_t synced_below;	/* the sync horizon; seq for format 1 */
};

/* Decode a frame header (FRAME_HDR bytes at h; a format 1 header uses
 * the first FRAME_HDR_V1 of them); false unless its magic and own CRC
 * check. */
static bool frame_decode(const uint8_t *h, struct frame *f)
{
	struct mx_rbuf rb;
	uint32_t magic, hcrc;

	mx_rbuf_init(&rb, h, FRAME_HDR);
	magic = mx_get_u32(&rb);
	hcrc = mx_get_u32(&rb);
	f->gen = mx_get_u64(&rb);
	f->seq = mx_get_u64(&rb);
	f->off = mx_get_u64(&rb);
	f->len = mx_get_u64(&rb);
	f->n = mx_get_u32(&rb);
	f->pcrc = mx_get_u32(&rb);
	f->synced_below = mx_get_u64(&rb);
	if (rb.err)
		return false;
	if (magic == FRAME_MAGIC_V1) {
		f->hlen = FRAME_HDR_V1;
		f->synced_below = f->seq;
	} else if (magic == FRAME_MAGIC) {
		f->hlen = FRAME_HDR;
		if (f->synced_below > f->seq)
			return false;
	} else {
		return false;
	}
	return hcrc == mx_crc32c(0, h + 8, f->hlen - 8);
}

/* The valid prefix of generation G ended at pos, where the frame of
 * sequence st->seq should be; tell a torn tail from damage.  Frames are
 * fdatasynced in order, and a frame's header carries its sync horizon:
 * every frame below synced_below was durable when it was written (W1).
 * So an intact header of G further on whose horizon is at most st->seq
 * is a frame written while ours was not yet synced, legitimately left by
 * a power cut that kept it and lost ours (unsynced commits,
 * docs/cache-modes.md); W2: it is not applied.  One whose horizon is
 * above st->seq proves our frame was durable, so it was damaged:
 * -EUCLEAN; so is a header of a later generation, or one at pos with the
 * wrong sequence.  Every open starts a new generation, and G writes the
 * file contiguously from LOG_START, so the first intact header of an
 * older generation marks where G never reached, and the scan stops. */
static int scan_tail(struct mx_store *st, struct logrd *lr, uint64_t pos)
{
	int r = 0;

	for (uint64_t off = pos; off + FRAME_HDR <= st->log_fsize;
	     off += LOG_ALIGN) {
		const uint8_t *h = lr_get(lr, off, FRAME_HDR, &r);
		struct frame f;

		if (r)
			return r;
		if (!h)
			break;
		if (!frame_decode(h, &f) || f.off != off)
			continue;
		if (f.gen < st->gen)
			break;
		if (off == pos && f.gen == st->gen && f.seq == st->seq)
			continue; /* the torn frame itself */
		if (off > pos && f.gen == st->gen && f.seq > st->seq &&
		    f.synced_below <= st->seq)
			continue; /* written while ours was unsynced */
		return -EUCLEAN;
	}
	return 0;
}

/* Apply every valid frame of the current generation in order (I5), then
 * check the tail.  0 or a negative errno. */
static int replay_log(struct mx_store *st)
{
	struct logrd lr = { .st = st };
	uint64_t pos = LOG_START;
	int r = 0;

	for (;;) {
		const uint8_t *h = lr_get(&lr, pos, FRAME_HDR, &r);
		const uint8_t *payload;
		struct frame f;

		if (r || !h)
			break;
		if (!frame_decode(h, &f) || f.gen != st->gen ||
		    f.seq != st->seq || f.off != pos || f.n == 0)
			break;
		payload = lr_get(&lr, pos + f.hlen, f.len, &r);
		if (r || !payload)
			break;
		if (mx_crc32c(0, payload, (size_t)f.len) != f.pcrc)
			break;
		r = apply_frame(st, payload, f.len, f.n, pos + f.hlen);
		if (r)
			break;
		st->seq++;
		pos = align_up(pos + f.hlen + f.len, LOG_ALIGN);
	}
	st->log_end = pos;
	if (!r)
		r = scan_tail(st, &lr, pos);
	free(lr.buf);
	return r;
}

/* Every object replay changed is dirty: fix the CRCs it touched (I4). */
static int replay_finish(struct mx_store *st)
{
	for (struct obj *o = st->dirty; o; o = o->dnext) {
		int r = crc_fix_touched(st, o);

		if (r)
			return r;
	}
	return 0;
}

/* ---- Metadata files ----------------------------------------------------- */

static int obj_meta_encode(struct mx_store *st, const struct obj *o)
{
	struct mx_wbuf *w = &st->scratch;
	uint64_t nb = nblocks(o->size);

	mx_wbuf_reset(w);
	mx_put_u32(w, OBJ_MAGIC);
	mx_put_u32(w, FMT_VERSION);
	mx_put_i32(w, o->pg->pool);
	mx_put_u32(w, o->pg->pg);
	mx_put_u32(w, o->slot);
	mx_put_u16(w, o->name_len);
	mx_put_bytes(w, o->name, o->name_len);
	mx_put_u64(w, o->ver.epoch);
	mx_put_u64(w, o->ver.seq);
	mx_put_u64(w, o->mtime_ms);
	mx_put_u64(w, o->size);
	mx_put_u32(w, o->n_xa);
	for (uint32_t i = 0; i < o->n_xa; i++) {
		mx_put_u16(w, (uint16_t)o->xa[i].name_len);
		mx_put_bytes(w, o->xa[i].name, o->xa[i].name_len);
		mx_put_blob(w, o->xa[i].val, o->xa[i].len);
	}
	mx_put_u32(w, (uint32_t)nb);
	for (uint64_t b = 0; b < nb; b++)
		mx_put_u32(w, o->crc[b]);
	if (w->err)
		return w->err;
	mx_put_u32(w, mx_crc32c(0, w->data, w->len));
	return w->err;
}

/* Check a metadata file's trailing CRC and start a reader on the rest. */
static bool meta_check(const struct mx_wbuf *w, struct mx_rbuf *rb)
{
	struct mx_rbuf t;

	if (w->len < 4)
		return false;
	mx_rbuf_init(&t, w->data + w->len - 4, 4);
	if (mx_get_u32(&t) != mx_crc32c(0, w->data, w->len - 4))
		return false;
	mx_rbuf_init(rb, w->data, w->len - 4);
	return true;
}

/* Load the object metadata file at path (named for nhash and slot) into
 * the index.  0, -EUCLEAN for a file that does not check, or an errno. */
static int load_obj_meta(struct mx_store *st, struct pgrp *p, uint64_t nhash,
			 uint32_t slot, const char *path)
{
	struct mx_rbuf rb;
	const char *name;
	uint32_t magic, version, fslot, n_xa, nb;
	uint64_t epoch, seq, mtime, size;
	uint16_t nlen;
	int32_t pool;
	uint32_t pgid;
	struct obj *o;
	int r;

	r = io_read_file(st, path, &st->scratch);
	if (r)
		return r;
	if (!meta_check(&st->scratch, &rb))
		return -EUCLEAN;
	magic = mx_get_u32(&rb);
	version = mx_get_u32(&rb);
	pool = mx_get_i32(&rb);
	pgid = mx_get_u32(&rb);
	fslot = mx_get_u32(&rb);
	nlen = mx_get_u16(&rb);
	name = mx_get_bytes(&rb, nlen);
	epoch = mx_get_u64(&rb);
	seq = mx_get_u64(&rb);
	mtime = mx_get_u64(&rb);
	size = mx_get_u64(&rb);
	n_xa = mx_get_u32(&rb);
	if (rb.err || magic != OBJ_MAGIC || version != FMT_VERSION ||
	    pool != p->pool || pgid != p->pg || fslot != slot ||
	    !name_ok(name, nlen, MX_OBJ_NAME_MAX) ||
	    name_hash(name, nlen) != nhash || size > MX_OBJ_SIZE_MAX ||
	    obj_find(st, pool, pgid, name, nlen, nhash) ||
	    slot_taken(st, p, nhash, slot))
		return -EUCLEAN;
	o = obj_new(st, p, name, nlen, nhash, slot);
	if (!o)
		return -ENOMEM;
	o->exists = true;
	o->files = true;
	o->data_durable = size > 0;
	o->ver.epoch = epoch;
	o->ver.seq = seq;
	o->mtime_ms = mtime;
	for (uint32_t i = 0; i < n_xa; i++) {
		uint16_t xl = mx_get_u16(&rb);
		const char *xn = mx_get_bytes(&rb, xl);
		uint32_t vl;
		const void *v = mx_get_blob(&rb, &vl, MX_XATTR_VALUE_MAX);

		if (rb.err || !name_ok(xn, xl, MX_XATTR_NAME_MAX) ||
		    (o->n_xa && name_cmp(o->xa[o->n_xa - 1].name,
					 o->xa[o->n_xa - 1].name_len, xn,
					 xl) >= 0))
			return -EUCLEAN;
		r = xattr_set(o, xn, xl, v, vl);
		if (r)
			return r;
	}
	nb = mx_get_u32(&rb);
	if (rb.err || nb != nblocks(size) || mx_rbuf_left(&rb) != 4ull * nb)
		return -EUCLEAN;
	r = crc_resize(st, o, size);
	if (r)
		return r;
	o->size = size;
	for (uint32_t b = 0; b < nb; b++)
		o->crc[b] = mx_get_u32(&rb);
	stats_add(st, o);
	return 0;
}

/* Write len bytes at off of PG p's log file number f, and add the file
 * to cs to be synced.  A fresh file is created (truncated, in case a
 * crashed checkpoint left one of that name), and its folder goes to dirs,
 * so that its name is durable before any pg file refers to it.  0 or a
 * negative errno. */
static int plog_write(struct mx_store *st, struct pgrp *p, uint64_t f,
		      bool fresh, const void *data, size_t len, uint64_t off,
		      struct ckpt_set *cs, struct ckpt_set *dirs)
{
	char path[PATH_LEN];
	int fd, r;

	path_plog(st, p, f, path);
	fd = st->io->open(st->io->ctx, path,
			  O_RDWR | O_CLOEXEC | (fresh ? O_CREAT | O_TRUNC : 0),
			  0644);
	if (fd < 0)
		return fd;
	r = io_write_all(st, fd, data, len, off);
	if (r) {
		io_close(st, fd);
		return r;
	}
	ckpt_add(cs, fd, true);
	if (fresh) {
		path_pgdir(st, p, path);
		return ckpt_add_dir(dirs, path);
	}
	return 0;
}

/* Encode log entries [from, ring_n) of p for a log file: each followed
 * by the CRC-32C of its encoding. */
static void plog_encode(struct mx_wbuf *w, const struct pgrp *p, uint32_t from)
{
	for (uint32_t i = from; i < p->ring_n; i++) {
		const struct logent *e = pglog_at(p, i);
		size_t at = w->len;

		enc_entry(w, e->ver, e->kind, e->client_id, e->tid, e->name,
			  e->name_len);
		if (!w->err)
			mx_put_u32(w, mx_crc32c(0, w->data + at, w->len - at));
	}
}

/* Give entries [from, ring_n) their file offsets, from off on. */
static void plog_place(struct pgrp *p, uint32_t from, uint64_t off)
{
	for (uint32_t i = from; i < p->ring_n; i++) {
		struct logent *e = pglog_at(p, i);

		e->foff = off;
		off += PLOG_ENT_FIXED + e->name_len;
	}
}

/* Write the whole log of p to a new log file; the old one is unlinked
 * once the checkpoint completes.  0 or a negative errno. */
static int plog_compact(struct mx_store *st, struct pgrp *p, struct ckpt_set *cs,
			struct ckpt_set *dirs)
{
	struct mx_wbuf *w = &st->scratch;
	uint64_t f = p->log_next;
	int r;

	mx_wbuf_reset(w);
	mx_put_u32(w, PLOG_MAGIC);
	mx_put_u32(w, FMT_VERSION);
	mx_put_i32(w, p->pool);
	mx_put_u32(w, p->pg);
	mx_put_u64(w, f);
	mx_put_u32(w, 0);
	if (!w->err)
		mx_put_u32(w, mx_crc32c(0, w->data, w->len));
	plog_encode(w, p, 0);
	if (w->err)
		return w->err;
	if (p->log_file) {
		r = pg_unlink_later(p, p->log_file);
		if (r)
			return r;
	}
	r = pg_mkdir(st, p);
	if (!r)
		r = plog_write(st, p, f, true, w->data, w->len, 0, cs, dirs);
	if (r)
		return r;
	p->log_file = f;
	p->log_next = f + 1;
	p->log_start = PLOG_HDR;
	p->log_end = w->len;
	plog_place(p, 0, PLOG_HDR);
	return 0;
}

/* Bring p's log file up to its in-memory log before the pg file that
 * refers to it is written.  The entries already in the file are always a
 * prefix of the log (appends add unpersisted entries at the new end,
 * trims drop from the old end, a reset or removal leaves none persisted),
 * so the unpersisted suffix is appended at log_end, and log_start moves
 * to the oldest entry kept.  When the file's dead prefix outgrows the
 * live part (and PLOG_COMPACT_MIN), the log goes to a new file instead:
 * each byte is rewritten at most once per byte appended, so the cost per
 * entry stays O(1).  An empty log has no file.  What was written goes to
 * cs and dirs, to be synced (plog_write()).  0 or a negative errno. */
static int pg_log_flush(struct mx_store *st, struct pgrp *p, struct ckpt_set *cs,
			struct ckpt_set *dirs)
{
	struct mx_wbuf *w = &st->scratch;
	uint32_t k = p->ring_n;
	uint64_t head, add = 0;
	int r;

	if (p->ring_n == 0) {
		if (p->log_file) {
			r = pg_unlink_later(p, p->log_file);
			if (r)
				return r;
		}
		p->log_file = p->log_start = p->log_end = 0;
		return 0;
	}
	while (k > 0 && pglog_at(p, k - 1)->foff == FOFF_NONE)
		k--;
	for (uint32_t i = k; i < p->ring_n; i++)
		add += PLOG_ENT_FIXED + pglog_at(p, i)->name_len;
	if (p->log_file == 0)
		return plog_compact(st, p, cs, dirs);
	head = k > 0 ? pglog_at(p, 0)->foff : p->log_end;
	if (head - PLOG_HDR >= PLOG_COMPACT_MIN &&
	    head - PLOG_HDR > p->log_end - head + add)
		return plog_compact(st, p, cs, dirs);
	if (k < p->ring_n) {
		mx_wbuf_reset(w);
		plog_encode(w, p, k);
		if (w->err)
			return w->err;
		r = plog_write(st, p, p->log_file, false, w->data, w->len,
			       p->log_end, cs, dirs);
		if (r)
			return r;
		plog_place(p, k, p->log_end);
		p->log_end += w->len;
	}
	p->log_start = pglog_at(p, 0)->foff;
	return 0;
}

/* Write p's log file (pg_log_flush()) and its pg file's new content to a
 * temporary file; they go to cs (and a new log file's folder to dirs) to
 * be synced, and pg_meta_commit() renames the pg file in after that.  0
 * or a negative errno. */
static int pg_meta_prep(struct mx_store *st, struct pgrp *p, struct ckpt_set *cs,
			struct ckpt_set *dirs)
{
	char tmp[PATH_LEN];
	struct mx_wbuf *w = &st->scratch;
	int r = pg_mkdir(st, p);

	if (!r)
		r = pg_log_flush(st, p, cs, dirs);
	if (r)
		return r;
	mx_wbuf_reset(w);
	mx_put_u32(w, PG_MAGIC);
	mx_put_u32(w, PG_FMT_VERSION);
	mx_put_i32(w, p->pool);
	mx_put_u32(w, p->pg);
	mx_put_u64(w, p->last.epoch);
	mx_put_u64(w, p->last.seq);
	mx_put_u64(w, p->lu.epoch);
	mx_put_u64(w, p->lu.seq);
	mx_put_u64(w, p->tail.epoch);
	mx_put_u64(w, p->tail.seq);
	mx_put_u64(w, p->les);
	mx_put_u64(w, p->lec);
	mx_put_u8(w, p->n_acting);
	for (uint32_t i = 0; i < p->n_acting; i++)
		mx_put_i32(w, p->acting[i]);
	mx_put_u32(w, p->flags);
	mx_put_u64(w, p->wb_lost);
	mx_put_u64(w, p->log_file);
	mx_put_u64(w, p->log_start);
	mx_put_u64(w, p->log_end);
	mx_put_u32(w, p->ring_n);
	if (!w->err)
		mx_put_u32(w, mx_crc32c(0, w->data, w->len));
	if (w->err)
		return w->err;
	path_in_pg(st, p, PG_META_TMP, tmp);
	return ckpt_create(st, cs, tmp, w->data, w->len);
}

/* The pg file written by pg_meta_prep(), synced since, renamed in. */
static int pg_meta_commit(struct mx_store *st, struct pgrp *p)
{
	char tmp[PATH_LEN], path[PATH_LEN];
	int r;

	path_in_pg(st, p, PG_META_TMP, tmp);
	path_in_pg(st, p, PG_META_NAME, path);
	r = st->io->rename(st->io->ctx, tmp, path);
	if (!r)
		p->dir_dirty = true;
	return r;
}

/* Load the pg file at path; *count gets the number of log entries it
 * says its log file holds.  Version 1 files (last version only) load
 * with an empty log and zero info. */
static int load_pg_meta(struct mx_store *st, struct pgrp *p, const char *path,
			uint32_t *count)
{
	struct mx_rbuf rb;
	uint32_t magic, version, pgid;
	int32_t pool;
	int r = io_read_file(st, path, &st->scratch);

	if (r)
		return r;
	if (!meta_check(&st->scratch, &rb))
		return -EUCLEAN;
	magic = mx_get_u32(&rb);
	version = mx_get_u32(&rb);
	pool = mx_get_i32(&rb);
	pgid = mx_get_u32(&rb);
	p->last.epoch = mx_get_u64(&rb);
	p->last.seq = mx_get_u64(&rb);
	*count = 0;
	if (version == 2 || version == PG_FMT_VERSION) {
		p->lu.epoch = mx_get_u64(&rb);
		p->lu.seq = mx_get_u64(&rb);
		p->tail.epoch = mx_get_u64(&rb);
		p->tail.seq = mx_get_u64(&rb);
		p->les = mx_get_u64(&rb);
		p->lec = mx_get_u64(&rb);
		p->n_acting = mx_get_u8(&rb);
		if (p->n_acting > MX_PG_ACTING_MAX)
			return -EUCLEAN;
		for (uint32_t i = 0; i < p->n_acting; i++)
			p->acting[i] = mx_get_i32(&rb);
		p->flags = mx_get_u32(&rb);
		p->wb_lost = version == PG_FMT_VERSION ? mx_get_u64(&rb) : 0;
		p->log_file = mx_get_u64(&rb);
		p->log_start = mx_get_u64(&rb);
		p->log_end = mx_get_u64(&rb);
		*count = mx_get_u32(&rb);
	}
	if (rb.err || mx_rbuf_left(&rb) || magic != PG_MAGIC ||
	    version < 1 || version > PG_FMT_VERSION || pool != p->pool ||
	    pgid != p->pg || mx_version_cmp(p->tail, p->lu) > 0 ||
	    (p->log_file == 0 && *count) ||
	    (p->log_file && (p->log_start < PLOG_HDR ||
			     p->log_end < p->log_start ||
			     p->log_end - p->log_start > TXN_DATA_MAX)))
		return -EUCLEAN;
	return 0;
}

/* Load the count entries of p's log file (named by its pg file, already
 * loaded), check them against the pg file, and apply the entry bound.
 * 0, -EUCLEAN, or an errno. */
static int load_pg_log(struct mx_store *st, struct pgrp *p, uint32_t count)
{
	char path[PATH_LEN];
	uint8_t hdr[PLOG_HDR];
	uint64_t size, len = p->log_end - p->log_start;
	struct mx_version prev = p->tail;
	struct mx_rbuf rb;
	uint8_t *buf = NULL;
	size_t got;
	int fd, r;

	path_plog(st, p, p->log_file, path);
	fd = st->io->open(st->io->ctx, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return fd == -ENOENT ? -EUCLEAN : fd;
	r = st->io->fstat_size(st->io->ctx, fd, &size);
	if (!r && size < p->log_end)
		r = -EUCLEAN;
	if (!r)
		r = io_read_zf(st, fd, hdr, PLOG_HDR, 0, NULL);
	if (!r) {
		mx_rbuf_init(&rb, hdr, PLOG_HDR);
		if (mx_get_u32(&rb) != PLOG_MAGIC ||
		    mx_get_u32(&rb) != FMT_VERSION ||
		    mx_get_i32(&rb) != p->pool || mx_get_u32(&rb) != p->pg ||
		    mx_get_u64(&rb) != p->log_file || mx_get_u32(&rb) != 0 ||
		    mx_get_u32(&rb) != mx_crc32c(0, hdr, PLOG_HDR - 4))
			r = -EUCLEAN;
	}
	if (!r) {
		buf = malloc(len ? (size_t)len : 1);
		r = buf ? io_read_zf(st, fd, buf, (size_t)len, p->log_start,
				     &got) :
			  -ENOMEM;
		if (!r && got != len)
			r = -EUCLEAN;
	}
	io_close(st, fd);
	mx_rbuf_init(&rb, buf, (size_t)len);
	for (uint32_t i = 0; i < count && !r; i++) {
		const uint8_t *at = rb.p;
		struct mx_pglog_entry d;
		struct logent *e;
		bool ok = dec_entry(&rb, &d);
		uint32_t crc = mx_crc32c(0, at, (size_t)(rb.p - at));

		if (!ok || mx_get_u32(&rb) != crc || rb.err ||
		    mx_version_cmp(d.version, prev) <= 0) {
			r = -EUCLEAN;
			break;
		}
		prev = d.version;
		e = logent_new(d.version, d.kind, d.name, d.name_len,
			       d.client_id, d.tid);
		if (!e || pglog_push(st, p, e)) {
			free(e);
			r = -ENOMEM;
			break;
		}
		e->foff = p->log_start + (uint64_t)(at - buf);
	}
	free(buf);
	if (r)
		return r;
	if (mx_rbuf_left(&rb) || (count && mx_version_cmp(prev, p->lu)))
		return -EUCLEAN;
	if (p->ring_n > st->log_max) {
		/* Opened with a smaller bound. */
		pglog_bound(st, p);
		p->meta_dirty = true;
	}
	return 0;
}

/* "log.N": N a decimal number >= 1. */
static bool parse_plog(const char *name, uint64_t *f)
{
	uint64_t v = 0;
	size_t i = strlen(PLOG_PREFIX);

	if (strncmp(name, PLOG_PREFIX, i) || !name[i])
		return false;
	for (; name[i]; i++) {
		if (name[i] < '0' || name[i] > '9' || v > UINT64_MAX / 10 - 1)
			return false;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	*f = v;
	return v > 0;
}

/* Exactly n lower-case hex digits. */
static bool parse_hex(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c >= '0' && c <= '9')
			v = v << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint64_t)(c - 'a' + 10);
		else
			return false;
	}
	*out = v;
	return true;
}

/* "PPPPPPPP.GGGGGGGG" */
static bool parse_pgdir(const char *name, int32_t *pool, uint32_t *pg)
{
	uint64_t a, b;

	if (strlen(name) != 17 || name[8] != '.' || !parse_hex(name, 8, &a) ||
	    !parse_hex(name + 9, 8, &b) || a > INT32_MAX)
		return false;
	*pool = (int32_t)a;
	*pg = (uint32_t)b;
	return true;
}

/* "HHHHHHHHHHHHHHHH.S<suffix>"; *suffix points into name. */
static bool parse_objfile(const char *name, uint64_t *nhash, uint32_t *slot,
			  const char **suffix)
{
	uint64_t s = 0;
	size_t i = 17;

	if (strlen(name) < 19 || name[16] != '.' || !parse_hex(name, 16, nhash))
		return false;
	if (name[i] < '0' || name[i] > '9')
		return false;
	while (name[i] >= '0' && name[i] <= '9') {
		s = s * 10 + (uint64_t)(name[i++] - '0');
		if (s > UINT32_MAX)
			return false;
	}
	*slot = (uint32_t)s;
	*suffix = name + i;
	return true;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* Load one PG folder: its pg file and log file and every object metadata
 * file; drop leftover temporary files of a crashed checkpoint.  Log files
 * the pg file does not name are left from a crashed or completed
 * compaction: they are unlinked once the open's checkpoint has fsynced
 * the folder (so that the pg file naming the live one is durable first). */
static int load_pg(struct mx_store *st, struct pgrp *p)
{
	char dir[PATH_LEN], path[PATH_LEN];
	struct namelist nl = { 0 };
	uint32_t count = 0;
	uint64_t f;
	int r;

	path_pgdir(st, p, dir);
	r = st->io->listdir(st->io->ctx, dir, namelist_add, &nl);
	for (size_t i = 0; i < nl.n && !r; i++) {
		const char *name = nl.v[i], *suffix;
		uint64_t nh;
		uint32_t slot;

		path_in_pg(st, p, name, path);
		if (!strcmp(name, PG_META_NAME))
			r = load_pg_meta(st, p, path, &count);
		else if (has_suffix(name, ".tmp"))
			(void)st->io->unlink(st->io->ctx, path);
		else if (parse_objfile(name, &nh, &slot, &suffix) &&
			 !strcmp(suffix, ".m"))
			r = load_obj_meta(st, p, nh, slot, path);
	}
	if (!r && p->log_file)
		r = load_pg_log(st, p, count);
	p->log_next = p->log_file + 1;
	for (size_t i = 0; i < nl.n && !r; i++) {
		if (!parse_plog(nl.v[i], &f) || f == p->log_file)
			continue;
		p->log_next = MX_MAX(p->log_next, f + 1);
		r = pg_unlink_later(p, f);
		p->dir_dirty = true;
	}
	namelist_free(&nl);
	return r;
}

/* Load every PG folder.  0 or a negative errno. */
static int load_all(struct mx_store *st)
{
	char path[PATH_LEN];
	struct namelist nl = { 0 };
	int r;

	path_top(st, PGS_NAME, path);
	r = st->io->listdir(st->io->ctx, path, namelist_add, &nl);
	if (r == -ENOENT)
		r = -EUCLEAN; /* made durably before the log */
	for (size_t i = 0; i < nl.n && !r; i++) {
		int32_t pool;
		uint32_t pg;
		struct pgrp *p;

		if (!parse_pgdir(nl.v[i], &pool, &pg))
			continue;
		p = pg_get(st, pool, pg);
		if (!p) {
			r = -ENOMEM;
			break;
		}
		p->dir_exists = true;
		r = load_pg(st, p);
	}
	namelist_free(&nl);
	return r;
}

/* ---- Checkpoint --------------------------------------------------------- */

/* A dirty existing object: its data file (cut to size if it may hold
 * stale bytes) goes to cs to be synced, with its new metadata written to
 * a temporary file; ckpt_obj_commit() renames that in after the sync.
 * The data file's descriptor is the fd cache's: CKPT_CHUNK objects taken
 * one after the other cannot push one another's out of it. */
_Static_assert(CKPT_CHUNK < FD_CACHE_MAX, "a chunk's data files stay open");
static int ckpt_obj_prep(struct mx_store *st, struct obj *o, struct ckpt_set *cs)
{
	char tmp[PATH_LEN];
	int fd, r;

	if (o->data_dirty) {
		fd = obj_fd(st, o);
		if (fd < 0)
			return fd;
		if (o->fsize == FSIZE_UNKNOWN) {
			/* Content-preserving (I3): drops stale bytes. */
			r = st->io->ftruncate(st->io->ctx, fd, o->size);
			if (r)
				return r;
			o->fsize = o->size;
		}
		ckpt_add(cs, fd, false); /* the fd cache's: kept open */
	}
	r = pg_mkdir(st, o->pg);
	if (!r)
		r = obj_meta_encode(st, o);
	if (r)
		return r;
	path_obj(st, o, ".m.tmp", tmp);
	return ckpt_create(st, cs, tmp, st->scratch.data, st->scratch.len);
}

/* The metadata file written by ckpt_obj_prep(), synced since with the
 * object's data, renamed in. */
static int ckpt_obj_commit(struct mx_store *st, struct obj *o)
{
	char tmp[PATH_LEN], path[PATH_LEN];
	int r;

	path_obj(st, o, ".m.tmp", tmp);
	path_obj(st, o, ".m", path);
	r = st->io->rename(st->io->ctx, tmp, path);
	if (r)
		return r;
	o->files = true;
	o->pg->dir_dirty = true;
	return 0;
}

/* Unlink the files of a removed object. */
static int ckpt_ghost(struct mx_store *st, struct obj *o)
{
	char path[PATH_LEN];
	int r;

	obj_close_fd(st, o);
	if (!o->files)
		return 0;
	path_obj(st, o, ".m", path);
	r = st->io->unlink(st->io->ctx, path);
	if (r && r != -ENOENT)
		return r;
	path_obj(st, o, ".d", path);
	r = st->io->unlink(st->io->ctx, path);
	if (r && r != -ENOENT)
		return r;
	o->pg->dir_dirty = true;
	return 0;
}

/* Unlink the log files of p that no pg file names any more.  The folder
 * fsyncs before this made the pg file naming the live one durable, so
 * these are garbage whether or not the unlinks persist (an open drops
 * what is left).  0 or a negative errno. */
static int pg_unlink_logs(struct mx_store *st, struct pgrp *p)
{
	char path[PATH_LEN];

	for (; p->n_unlink > 0; p->n_unlink--) {
		int r;

		path_plog(st, p, p->unlink_logs[p->n_unlink - 1], path);
		r = st->io->unlink(st->io->ctx, path);
		if (r && r != -ENOENT)
			return r;
	}
	return 0;
}

/* Start generation G+1: its header goes to the slot G-1 used, and is made
 * durable before any frame of G+1 is written.  A torn header leaves G's,
 * whose frames replay harmlessly over the flushed state (I2). */
static int log_reset(struct mx_store *st)
{
	uint8_t sec[LOG_SLOT];
	uint64_t gen = st->gen + 1;
	int r;

	r = log_hdr_encode(st, gen, st->seq, sec);
	if (!r)
		r = io_write_all(st, st->log_fd, sec, LOG_SLOT,
				 (gen & 1) * LOG_SLOT);
	if (!r && st->log_fsize > LOG_START + 2 * st->ckpt_bytes) {
		/* An outsized commit grew the file: give the space back. */
		r = st->io->ftruncate(st->io->ctx, st->log_fd, LOG_START);
		if (!r)
			st->log_fsize = LOG_START;
	}
	if (!r)
		r = st->io->fsync(st->io->ctx, st->log_fd);
	if (r)
		return r;
	st->gen = gen;
	st->log_end = LOG_START;
	st->sync_seq = st->seq;
	return 0;
}

static int store_sync(struct mx_store *st);

/* The dirty objects, CKPT_CHUNK at a time: their data files and new
 * metadata files synced together, then each metadata file renamed in (so
 * each object's after its own data and metadata are durable); removed
 * objects' files unlinked.  0 or a negative errno. */
static int ckpt_objects(struct mx_store *st)
{
	struct ckpt_set cs = {0};
	struct obj *chunk[CKPT_CHUNK], *o = st->dirty;
	int r = 0;

	while (o && !r) {
		size_t n = 0;

		for (; o && n < CKPT_CHUNK && !r; o = o->dnext) {
			if (!o->exists) {
				r = ckpt_ghost(st, o);
				continue;
			}
			r = ckpt_obj_prep(st, o, &cs);
			if (!r)
				chunk[n++] = o;
		}
		if (r) {
			ckpt_clear(st, &cs);
			break;
		}
		r = ckpt_sync(st, &cs);
		for (size_t i = 0; i < n && !r; i++)
			r = ckpt_obj_commit(st, chunk[i]);
	}
	return r;
}

/* The PGs whose logs or info changed, CKPT_CHUNK at a time: their log
 * files and new pg files synced together, then the folders of new log
 * files, then each pg file renamed in.  0 or a negative errno. */
static int ckpt_pgs(struct mx_store *st)
{
	struct ckpt_set cs = {0}, dirs = {0};
	struct pgrp *chunk[CKPT_CHUNK];
	size_t i = 0;
	int r = 0;

	while (i < st->n_pgs && !r) {
		size_t n = 0;

		for (; i < st->n_pgs && n < CKPT_CHUNK && !r; i++) {
			if (!st->pgs[i]->meta_dirty)
				continue;
			r = pg_meta_prep(st, st->pgs[i], &cs, &dirs);
			if (!r)
				chunk[n++] = st->pgs[i];
		}
		if (r) {
			ckpt_clear(st, &cs);
			ckpt_clear(st, &dirs);
			break;
		}
		r = ckpt_sync(st, &cs);
		if (r)
			ckpt_clear(st, &dirs);
		else
			r = ckpt_sync(st, &dirs);
		for (size_t j = 0; j < n && !r; j++)
			r = pg_meta_commit(st, chunk[j]);
	}
	return r;
}

/* The folders whose entries changed (the PGs' folder, each PG's), synced
 * together.  0 or a negative errno. */
static int ckpt_dirs(struct mx_store *st)
{
	struct ckpt_set cs = {0};
	char path[PATH_LEN];
	int r = 0;

	if (st->top_dirty) {
		path_top(st, PGS_NAME, path);
		r = ckpt_add_dir(&cs, path);
	}
	for (size_t i = 0; i < st->n_pgs && !r; i++) {
		if (!st->pgs[i]->dir_dirty)
			continue;
		if (cs.n_dirs == CKPT_CHUNK)
			r = ckpt_sync(st, &cs);
		path_pgdir(st, st->pgs[i], path);
		if (!r)
			r = ckpt_add_dir(&cs, path);
	}
	if (r) {
		ckpt_clear(st, &cs);
		return r;
	}
	return ckpt_sync(st, &cs);
}

/* LOGGED(G) -> FLUSHED(G) -> CLEAN(G+1); see the notes at the top.
 * Staged transactions stay staged.  0, or a negative errno that makes the
 * store fatal. */
static int checkpoint(struct mx_store *st)
{
	struct obj *o, *next;
	size_t i;
	int r = store_sync(st); /* the frames of G must be applied first */

	if (r)
		return r;
	r = ckpt_objects(st);
	if (!r)
		r = ckpt_pgs(st);
	if (!r)
		r = ckpt_dirs(st);
	for (i = 0; i < st->n_pgs && !r; i++)
		r = pg_unlink_logs(st, st->pgs[i]);
	if (!r)
		r = log_reset(st);
	if (r)
		return store_fail(st, r);

	/* Everything is durable: settle the in-memory flags. */
	for (o = st->dirty, st->dirty = NULL; o; o = next) {
		next = o->dnext;
		o->dnext = NULL;
		o->dirty = false;
		o->data_dirty = false;
		if (o->exists) {
			if (o->dfile_made)
				o->data_durable = true;
		} else if (o->n_pending == 0) {
			obj_drop(st, o);
			continue;
		} else {
			/* A placeholder again: its files are gone. */
			o->files = false;
			o->fresh = true;
			o->data_durable = false;
			o->fsize = FSIZE_UNKNOWN;
		}
		o->dfile_made = false;
	}
	for (i = 0; i < st->n_pgs; i++)
		st->pgs[i]->dir_dirty = st->pgs[i]->meta_dirty = false;
	st->top_dirty = false;
	st->stats.checkpoints++;
	return 0;
}

/* ---- The API ------------------------------------------------------------ */

static void store_free(struct mx_store *st)
{
	for (size_t i = 0; st->tab.b && i <= st->tab.mask; i++) {
		struct hlink *l = st->tab.b[i], *next;

		for (; l; l = next) {
			next = l->next;
			obj_destroy(st, mx_container_of(l, struct obj, hlink));
		}
	}
	free(st->tab.b);
	for (size_t i = 0; i < st->n_pgs; i++) {
		struct pgrp *p = st->pgs[i];

		for (uint32_t j = 0; j < p->ring_n; j++)
			free(pglog_at(p, j));
		free(p->ring);
		free(p->unlink_logs);
		free(p->objs);
		free(p);
	}
	free(st->rtab.b);
	free(st->pgs);
	free(st->pgtab.b);
	while (st->ufr_head || st->ufr_spare) {
		struct ufr *u = st->ufr_head ? st->ufr_head : st->ufr_spare;

		if (u == st->ufr_head)
			st->ufr_head = u->next;
		else
			st->ufr_spare = u->next;
		mx_wbuf_free(&u->w);
		free(u);
	}
	free(st->ureqs);
	io_close(st, st->log_fd);
	io_close(st, st->sync_fd);
	mx_wbuf_free(&st->pend);
	mx_wbuf_free(&st->scratch);
	free(st->blk);
	free(st->chunk);
	free(st->dir);
	free(st);
}

static bool io_complete(const struct mx_store_io *io)
{
	return io->open && io->close && io->pread && io->pwrite &&
	       io->fdatasync && io->fsync && io->ftruncate && io->fstat_size &&
	       io->rename && io->unlink && io->mkdir && io->listdir &&
	       io->fsync_dir && io->syncfs;
}

int mx_store_open(const char *dir, const struct mx_store_opts *opts,
		  struct mx_store **out)
{
	const struct mx_store_io *io =
		opts && opts->io ? opts->io : &mx_store_io_default;
	struct mx_store *st;
	size_t dl;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!dir || !io_complete(io))
		return -EINVAL;
	dl = strlen(dir);
	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	if (dl == 0 || dl > DIR_LEN_MAX)
		return -EINVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->io = io;
	st->log_fd = -1;
	st->sync_fd = -1;
	st->ckpt_bytes = opts && opts->wal_checkpoint_bytes ?
				 opts->wal_checkpoint_bytes :
				 DEFAULT_CKPT_BYTES;
	st->unsynced_max = opts && opts->unsynced_max ? opts->unsynced_max :
							UNSYNCED_MAX_DEFAULT;
	st->clone_min = opts && opts->clone_min ? opts->clone_min :
						  CLONE_MIN_DEFAULT;
	st->no_clone = !io->clone;
	st->apply_at = FOFF_NONE;
	st->ufr_tail = &st->ufr_head;
	mx_wbuf_init(&st->pend);
	mx_wbuf_init(&st->scratch);
	st->dir = strndup(dir, dl);
	htab_init(&st->tab, 1024, obj_link_bucket);
	htab_init(&st->pgtab, 64, pg_link_bucket);
	htab_init(&st->rtab, REQTAB_INIT, req_link_bucket);
	st->log_max = opts && opts->pg_log_max ? opts->pg_log_max :
						 MX_PG_LOG_MAX_DEFAULT;
	st->blk = malloc(BS);
	st->chunk = malloc(CRC_CHUNK_BLOCKS * BS);
	if (!st->dir || !st->tab.b || !st->pgtab.b || !st->rtab.b || !st->blk ||
	    !st->chunk) {
		store_free(st);
		return -ENOMEM;
	}
	st->zero_crc = crc_block(zero_block, BS);

	r = log_open(st);
	if (!r)
		r = load_all(st);
	/* A killed process leaves in the page cache what it had not synced:
	 * frames, data-file writes, new files and renames.  This process
	 * reads them as any other, and cannot tell which they are, but the
	 * checkpoint below ends the log that would redo them: make them all
	 * durable first (docs/object-store.md, "States"). */
	if (!r)
		r = st->io->syncfs(st->io->ctx, st->log_fd);
	if (!r) {
		st->replaying = true;
		r = replay_log(st);
		if (!r)
			r = replay_finish(st);
		st->replaying = false;
		for (size_t i = 0; i < st->n_pgs; i++)
			st->pgs[i]->pend_lu = st->pgs[i]->lu;
	}
	if (!r)
		r = checkpoint(st);
	if (r) {
		store_free(st);
		return r;
	}
	*out = st;
	return 0;
}

void mx_store_close(struct mx_store *st)
{
	if (!st)
		return;
	if (!st->fatal)
		(void)checkpoint(st);
	store_free(st);
}

static bool xname_ok(const char *x)
{
	return x && name_ok(x, strnlen(x, MX_XATTR_NAME_MAX + 1),
			    MX_XATTR_NAME_MAX);
}

/* Whether a WRITE op is logged padded, its data on a block boundary of the
 * log file, so that applying it clones the log's blocks (obj_clone()).
 * The boundary is reckoned from where the frame will go (log_end); a
 * checkpoint before the commit moves the frame, and the write is then
 * copied, as any write that is not padded. */
static bool write_padded(const struct mx_store *st, const struct mx_txn_op *op)
{
	return !st->no_clone && op->len >= st->clone_min && op->off % BS == 0 &&
	       op->len % BS == 0;
}

/* -EINVAL unless txn is well formed (see store.h); *bound is then a bound
 * on its record's encoding. */
static int txn_check(const struct mx_txn *t, uint64_t *bound)
{
	const struct mx_objkey *k = &t->key;
	uint64_t bytes = 0;

	if (!name_ok(k->name, k->name_len, MX_OBJ_NAME_MAX) || k->pool < 0 ||
	    k->pg == UINT32_MAX || t->n_ops == 0 || !t->ops)
		return -EINVAL;
	for (uint32_t i = 0; i < t->n_ops; i++) {
		const struct mx_txn_op *op = &t->ops[i];

		switch (op->type) {
		case MX_TXN_WRITE:
			if ((!op->data && op->len) ||
			    op->off > MX_OBJ_SIZE_MAX ||
			    op->off + op->len > MX_OBJ_SIZE_MAX)
				return -EINVAL;
			bytes += op->len;
			break;
		case MX_TXN_TRUNCATE:
			if (op->size > MX_OBJ_SIZE_MAX)
				return -EINVAL;
			break;
		case MX_TXN_SETXATTR:
			if (!xname_ok(op->xname) ||
			    op->len > MX_XATTR_VALUE_MAX ||
			    (!op->data && op->len))
				return -EINVAL;
			bytes += op->len;
			break;
		case MX_TXN_RMXATTR:
			if (!xname_ok(op->xname))
				return -EINVAL;
			break;
		case MX_TXN_REMOVE:
		case MX_TXN_CREATE:
			break;
		default:
			return -EINVAL;
		}
		bytes += 300; /* bound on an op's own encoding */
		if (bytes > TXN_DATA_MAX)
			return -EINVAL;
	}
	*bound = bytes + TXN_HEAD_MAX + k->name_len;
	return 0;
}

/* Start a record in the pending frame (reserving the frame header
 * first); returns the length to roll back to. */
static size_t pend_begin(struct mx_store *st)
{
	struct mx_wbuf *w = &st->pend;
	size_t mark = w->len;

	if (mark == 0) {
		uint8_t *h = mx_wbuf_reserve(w, FRAME_HDR);

		if (h) {
			memset(h, 0, FRAME_HDR);
			w->len = FRAME_HDR;
		}
	}
	return mark;
}

/* End the n records begun at mark: 0, or -ENOMEM after rolling them
 * back if an encoding failed. */
static int pend_end(struct mx_store *st, size_t mark, uint32_t n)
{
	struct mx_wbuf *w = &st->pend;

	if (w->err || st->n_pend + n > UINT32_MAX) {
		w->err = 0;
		w->len = mark;
		return -ENOMEM;
	}
	st->n_pend += n;
	return 0;
}

/* A transaction record up to its ops: kind, object, slot, version, mtime,
 * existence and size before and after, op count. */
static void enc_txn_head(struct mx_wbuf *w, uint8_t kind, const struct obj *o,
			 struct mx_version ver, bool ex0, uint64_t sz0, bool ex1,
			 uint64_t sz1, uint32_t n_ops)
{
	mx_put_u8(w, kind);
	mx_put_i32(w, o->pg->pool);
	mx_put_u32(w, o->pg->pg);
	mx_put_u32(w, o->slot);
	mx_put_u16(w, o->name_len);
	mx_put_bytes(w, o->name, o->name_len);
	mx_put_u64(w, ver.epoch);
	mx_put_u64(w, ver.seq);
	mx_put_u64(w, mx_wall_ms());
	mx_put_u8(w, ex0);
	mx_put_u64(w, sz0);
	mx_put_u8(w, ex1);
	mx_put_u64(w, sz1);
	mx_put_u32(w, n_ops);
}

/* Note a staged logged transaction's request identity, for
 * mx_store_pg_find_req() while its frame is unsynced.  Best effort: without
 * memory the identity is found once the frame is applied. */
static void ureq_add(struct mx_store *st, const struct mx_objkey *k,
		     const struct mx_txn *txn)
{
	if (st->n_ureq == st->cap_ureq) {
		size_t cap = st->cap_ureq ? 2 * st->cap_ureq : 64;
		struct ureq *v = realloc(st->ureqs, cap * sizeof(*v));

		if (!v)
			return;
		st->ureqs = v;
		st->cap_ureq = cap;
	}
	st->ureqs[st->n_ureq++] = (struct ureq){ .pool = k->pool,
						 .pg = k->pg,
						 .client_id = txn->client_id,
						 .tid = txn->tid,
						 .ver = txn->version };
}

int mx_store_queue(struct mx_store *st, const struct mx_txn *txn)
{
	const struct mx_objkey *k;
	struct mx_wbuf *w;
	bool ex0, ex1, made = false;
	uint64_t sz0, sz1, nh, bound;
	struct pgrp *p;
	struct obj *o;
	size_t mark;
	int r;

	if (!st || !txn)
		return -EINVAL;
	if (st->fatal)
		return st->fatal;
	r = txn_check(txn, &bound);
	if (r)
		return r;
	k = &txn->key;
	if (txn->log) {
		/* Log entries go in in version order. */
		const struct pgrp *q = pg_find(st, k->pool, k->pg);

		if (mx_version_cmp(txn->version,
				   q ? q->pend_lu : (struct mx_version){ 0, 0 }) <= 0)
			return -EINVAL;
	}
	if (st->n_pend >= UINT32_MAX)
		return -ENOMEM;
	nh = name_hash(k->name, k->name_len);
	p = pg_get(st, k->pool, k->pg);
	if (!p)
		return -ENOMEM;
	o = obj_find(st, k->pool, k->pg, k->name, k->name_len, nh);
	if (!o) {
		o = obj_new(st, p, k->name, k->name_len, nh,
			    slot_alloc(st, p, nh));
		if (!o)
			return -ENOMEM;
		o->fresh = true;
		made = true;
	}
	ex0 = o->n_pending ? o->p_exists : o->exists;
	sz0 = o->n_pending ? o->p_size : o->size;
	ex1 = ex0;
	sz1 = sz0;
	for (uint32_t i = 0; i < txn->n_ops; i++) {
		const struct mx_txn_op *op = &txn->ops[i];

		op_effect(op->type, op->off,
			  op->type == MX_TXN_WRITE ? op->len : op->size, &ex1,
			  &sz1);
		if (op->type == MX_TXN_WRITE && write_padded(st, op))
			bound += BS; /* its pad */
	}

	w = &st->pend;
	mark = pend_begin(st);
	/* Room for the record and the frame's padding at once: a 1 MiB write
	 * takes its own size, not the next power of two, and a write-back
	 * frame holds it until its sync (docs/performance.md, "Where the
	 * fresh memory comes from"). */
	(void)mx_wbuf_expect(w, (size_t)bound + LOG_ALIGN);
	enc_txn_head(w, txn->log ? REC_TXN_LOG : REC_TXN, o, txn->version, ex0,
		     sz0, ex1, sz1, txn->n_ops);
	for (uint32_t i = 0; i < txn->n_ops; i++) {
		const struct mx_txn_op *op = &txn->ops[i];

		if (op->type == MX_TXN_WRITE && write_padded(st, op)) {
			/* The data follows type, offset, pad length, pad and
			 * length; the frame goes at log_end. */
			uint64_t at = st->log_end + w->len + 1 + 8 + 2 + 4;
			uint16_t pad = (uint16_t)((BS - at % BS) % BS);

			mx_put_u8(w, OP_WRITE_PADDED);
			mx_put_u64(w, op->off);
			mx_put_u16(w, pad);
			mx_put_bytes(w, zero_block, pad);
			mx_put_blob(w, op->data, op->len);
			continue;
		}
		mx_put_u8(w, op->type);
		switch (op->type) {
		case MX_TXN_WRITE:
			mx_put_u64(w, op->off);
			mx_put_blob(w, op->data, op->len);
			break;
		case MX_TXN_TRUNCATE:
			mx_put_u64(w, op->size);
			break;
		case MX_TXN_SETXATTR:
			mx_put_str(w, op->xname);
			mx_put_blob(w, op->data, op->len);
			break;
		case MX_TXN_RMXATTR:
			mx_put_str(w, op->xname);
			break;
		default:
			break;
		}
	}
	if (txn->log) {
		mx_put_u8(w, ex1 ? MX_LOG_MODIFY : MX_LOG_DELETE);
		mx_put_u64(w, txn->client_id);
		mx_put_u64(w, txn->tid);
	}
	r = pend_end(st, mark, 1);
	if (r) {
		if (made)
			obj_drop(st, o);
		return r;
	}
	o->n_pending++;
	o->p_exists = ex1;
	o->p_size = sz1;
	if (txn->log) {
		p->pend_lu = txn->version;
		if (txn->client_id || txn->tid)
			ureq_add(st, k, txn);
	}
	return 0;
}

/* Checks shared by the PG-level staging calls. */
static int pg_call_check(const struct mx_store *st, int32_t pool, uint32_t pg)
{
	if (!st)
		return -EINVAL;
	if (st->fatal)
		return st->fatal;
	if (pool < 0 || pg == UINT32_MAX)
		return -EINVAL;
	return 0;
}

int mx_store_queue_pg_info(struct mx_store *st, int32_t pool, uint32_t pg,
			   const struct mx_pg_info *info)
{
	struct mx_wbuf *w;
	size_t mark;
	int r = pg_call_check(st, pool, pg);

	if (r)
		return r;
	if (!info || info->n_acting > MX_PG_ACTING_MAX)
		return -EINVAL;
	if (!pg_get(st, pool, pg))
		return -ENOMEM;
	w = &st->pend;
	mark = pend_begin(st);
	mx_put_u8(w, REC_PG_INFO2);
	mx_put_i32(w, pool);
	mx_put_u32(w, pg);
	mx_put_u64(w, info->les);
	mx_put_u64(w, info->lec);
	mx_put_u8(w, info->n_acting);
	for (uint32_t i = 0; i < info->n_acting; i++)
		mx_put_i32(w, info->acting[i]);
	mx_put_u32(w, info->flags);
	mx_put_u64(w, info->wb_lost);
	return pend_end(st, mark, 1);
}

int mx_store_pg_trim(struct mx_store *st, int32_t pool, uint32_t pg,
		     struct mx_version upto)
{
	struct mx_wbuf *w;
	struct pgrp *p;
	size_t mark;
	int r = pg_call_check(st, pool, pg);

	if (r)
		return r;
	p = pg_find(st, pool, pg);
	if (!p)
		return 0; /* nothing committed or staged: nothing to trim */
	/* The record carries the bound capped at last_update as staged so
	 * far, so that no entry appended after it can be dropped by it when
	 * replay applies it over a later state (I6). */
	if (mx_version_cmp(p->pend_lu, upto) < 0)
		upto = p->pend_lu;
	if (version_zero(upto))
		return 0;
	w = &st->pend;
	mark = pend_begin(st);
	mx_put_u8(w, REC_PG_TRIM);
	mx_put_i32(w, pool);
	mx_put_u32(w, pg);
	mx_put_u64(w, upto.epoch);
	mx_put_u64(w, upto.seq);
	return pend_end(st, mark, 1);
}

int mx_store_pg_log_reset(struct mx_store *st, int32_t pool, uint32_t pg,
			  const struct mx_pglog_entry *entries, size_t n,
			  struct mx_version log_tail)
{
	struct mx_version prev = log_tail;
	uint64_t bytes = 0;
	struct mx_wbuf *w;
	struct pgrp *p;
	size_t mark;
	int r = pg_call_check(st, pool, pg);

	if (r)
		return r;
	if ((n && !entries) || n > UINT32_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		const struct mx_pglog_entry *e = &entries[i];

		if (!name_ok(e->name, e->name_len, MX_OBJ_NAME_MAX) ||
		    (e->kind != MX_LOG_MODIFY && e->kind != MX_LOG_DELETE) ||
		    mx_version_cmp(e->version, prev) <= 0)
			return -EINVAL;
		prev = e->version;
		bytes += PLOG_ENT_FIXED + e->name_len;
		if (bytes > TXN_DATA_MAX)
			return -EINVAL;
	}
	p = pg_get(st, pool, pg);
	if (!p)
		return -ENOMEM;
	w = &st->pend;
	mark = pend_begin(st);
	mx_put_u8(w, REC_PG_RESET);
	mx_put_i32(w, pool);
	mx_put_u32(w, pg);
	mx_put_u64(w, log_tail.epoch);
	mx_put_u64(w, log_tail.seq);
	mx_put_u32(w, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		enc_entry(w, entries[i].version, entries[i].kind,
			  entries[i].client_id, entries[i].tid, entries[i].name,
			  entries[i].name_len);
	r = pend_end(st, mark, 1);
	if (!r)
		p->pend_lu = prev;
	return r;
}

/* The PG's removal is staged as a physical REMOVE record for every object
 * that exists as staged so far (so objects go exactly as a remove
 * transaction would take them: ghosts until the checkpoint unlinks their
 * files), then a REC_PG_REMOVE record for the log, info and last
 * version. */
int mx_store_pg_remove(struct mx_store *st, int32_t pool, uint32_t pg)
{
	struct mx_wbuf *w;
	struct pgrp *p;
	uint32_t n = 0;
	size_t mark;
	int r = pg_call_check(st, pool, pg);

	if (r)
		return r;
	p = pg_find(st, pool, pg);
	if (!p)
		return 0;
	w = &st->pend;
	mark = pend_begin(st);
	for (uint32_t i = 0; i < p->n_objs; i++) {
		const struct obj *o = p->objs[i];
		bool ex0 = o->n_pending ? o->p_exists : o->exists;

		if (!ex0)
			continue;
		enc_txn_head(w, REC_TXN, o, (struct mx_version){ 0, 0 }, true,
			     o->n_pending ? o->p_size : o->size, false, 0, 1);
		mx_put_u8(w, MX_TXN_REMOVE);
		n++;
	}
	mx_put_u8(w, REC_PG_REMOVE);
	mx_put_i32(w, pool);
	mx_put_u32(w, pg);
	r = pend_end(st, mark, n + 1);
	if (r)
		return r;
	for (uint32_t i = 0; i < p->n_objs; i++) {
		struct obj *o = p->objs[i];

		if (!(o->n_pending ? o->p_exists : o->exists))
			continue;
		o->n_pending++;
		o->p_exists = false;
		o->p_size = 0;
	}
	p->pend_lu = (struct mx_version){ 0, 0 };
	return 0;
}

/* Seal the staged frame (generation, sequence, offset, length, record
 * count, both CRCs, the sync horizon, padding to LOG_ALIGN) and write it
 * at the log's end with one write; with sync, make it and every earlier
 * frame durable with one fdatasync.  The caller applies it only once it
 * is durable (I1).  0 or a negative errno. */
static int log_append(struct mx_store *st, bool sync)
{
	struct mx_wbuf *w = &st->pend;
	uint64_t len = w->len - FRAME_HDR;
	size_t padded = (size_t)align_up(w->len, LOG_ALIGN);
	uint8_t *pad = mx_wbuf_reserve(w, padded - w->len);
	int r;

	if (!pad)
		return -ENOMEM;
	memset(pad, 0, padded - w->len);
	w->len = padded;
	mx_wbuf_patch_u32(w, 0, FRAME_MAGIC);
	patch_u64(w, 8, st->gen);
	patch_u64(w, 16, st->seq);
	patch_u64(w, 24, st->log_end);
	patch_u64(w, 32, len);
	mx_wbuf_patch_u32(w, 40, (uint32_t)st->n_pend);
	mx_wbuf_patch_u32(w, 44, mx_crc32c(0, w->data + FRAME_HDR, (size_t)len));
	patch_u64(w, 48, st->sync_seq); /* W1: below it, all synced */
	mx_wbuf_patch_u32(w, 4, mx_crc32c(0, w->data + 8, FRAME_HDR - 8));
	r = io_write_all(st, st->log_fd, w->data, padded, st->log_end);
	if (!r && sync) {
		r = st->io->fdatasync(st->io->ctx, st->log_fd);
		st->stats.syncs++;
	}
	return r;
}

/* The unsynced frames below sequence below are durable now: apply them in
 * order and forget them and their request identities.  0 or a negative
 * errno (the caller makes it fatal). */
static int apply_unsynced(struct mx_store *st, uint64_t below)
{
	size_t n_req = 0;
	int r = 0;

	while (st->ufr_head && st->ufr_head->seq < below && !r) {
		struct ufr *u = st->ufr_head;

		r = apply_frame(st, u->w.data + FRAME_HDR, u->len, u->n,
				frame_payload_at(u->w.data));
		st->ufr_head = u->next;
		st->unsynced_bytes -= u->w.len;
		n_req += u->n_req;
		if (st->n_spare < UFR_SPARE_MAX &&
		    st->spare_bytes + u->w.cap <= SPARE_BYTES_MAX) {
			mx_wbuf_reset(&u->w);
			u->next = st->ufr_spare;
			st->ufr_spare = u;
			st->n_spare++;
			st->spare_bytes += u->w.cap;
		} else {
			mx_wbuf_free(&u->w);
			free(u);
		}
	}
	if (!st->ufr_head)
		st->ufr_tail = &st->ufr_head;
	if (n_req)
		memmove(st->ureqs, st->ureqs + n_req,
			(st->n_ureq - n_req) * sizeof(*st->ureqs));
	st->n_ureq -= n_req;
	st->n_ureq_unsynced -= n_req;
	return r;
}

/* LOGGED(G) with unsynced frames -> LOGGED(G): one fdatasync, then apply
 * them.  0, or a negative errno that makes the store fatal. */
static int store_sync(struct mx_store *st)
{
	int r;

	if (!st->ufr_head)
		return 0;
	r = st->io->fdatasync(st->io->ctx, st->log_fd);
	st->stats.syncs++;
	if (!r) {
		st->sync_seq = st->seq;
		r = apply_unsynced(st, UINT64_MAX);
	}
	return r ? store_fail(st, r) : 0;
}

/* After a frame went out: the log's end, sequence and the pending buffer
 * move on; a checkpoint if the log is full. */
static int commit_done(struct mx_store *st, uint64_t frame_len)
{
	st->log_end += frame_len;
	st->log_fsize = MX_MAX(st->log_fsize, st->log_end);
	st->seq++;
	st->n_pend = 0;
	st->stats.commits++;
	if (st->log_end - LOG_START >= st->ckpt_bytes)
		return checkpoint(st);
	return 0;
}

/* log_append() with its fdatasync, then apply the unsynced frames and
 * this one.  A frame is all or nothing at replay, so a commit's
 * transactions survive a crash together or not at all. */
int mx_store_commit(struct mx_store *st)
{
	struct mx_wbuf *w;
	uint64_t len;
	int r;

	if (!st)
		return -EINVAL;
	if (st->fatal)
		return st->fatal;
	if (!st->n_pend)
		return store_sync(st);
	w = &st->pend;
	len = w->len - FRAME_HDR;
	r = log_append(st, true);
	if (!r) {
		st->sync_seq = st->seq + 1;
		r = apply_unsynced(st, UINT64_MAX);
	}
	if (!r)
		r = apply_frame(st, w->data + FRAME_HDR, len,
				(uint32_t)st->n_pend, frame_payload_at(w->data));
	if (r)
		return store_fail(st, r);
	st->n_ureq = st->n_ureq_unsynced = 0;
	len = w->len;
	if (w->cap > PEND_KEEP_MAX)
		mx_wbuf_free(w);
	else
		mx_wbuf_reset(w);
	return commit_done(st, len);
}

/* CLEAN/LOGGED -> LOGGED with one more unsynced frame: written, kept,
 * not applied (I1). */
int mx_store_commit_unsynced(struct mx_store *st)
{
	struct ufr *u;
	uint64_t len, plen;
	int r;

	if (!st)
		return -EINVAL;
	if (st->fatal)
		return st->fatal;
	if (!st->n_pend)
		return 0;
	plen = st->pend.len - FRAME_HDR;
	u = st->ufr_spare;
	if (u) {
		st->ufr_spare = u->next;
		st->n_spare--;
		st->spare_bytes -= u->w.cap;
	} else {
		u = calloc(1, sizeof(*u));
		if (!u)
			return -ENOMEM;
		mx_wbuf_init(&u->w);
	}
	r = log_append(st, false);
	if (r) {
		mx_wbuf_free(&u->w);
		free(u);
		return store_fail(st, r);
	}
	/* A large frame's pages go to the disk now, in the background, so
	 * that the sync that makes it durable finds little left to write. */
	if (st->pend.len >= WRITEBACK_MIN && st->io->writeback)
		st->io->writeback(st->io->ctx, st->log_fd, st->log_end, st->pend.len);
	{
		/* The frame moves to the list; a spare buffer becomes pend. */
		struct mx_wbuf spare = u->w;

		u->w = st->pend;
		st->pend = spare;
	}
	u->len = plen;
	u->seq = st->seq; /* commit_done() moves it on */
	u->n = (uint32_t)st->n_pend;
	u->n_req = (uint32_t)(st->n_ureq - st->n_ureq_unsynced);
	u->next = NULL;
	*st->ufr_tail = u;
	st->ufr_tail = &u->next;
	len = u->w.len;
	st->unsynced_bytes += len;
	st->n_ureq_unsynced = st->n_ureq;
	st->stats.unsynced_commits++;
	r = commit_done(st, len); /* a checkpoint syncs first */
	if (!r && st->unsynced_bytes >= st->unsynced_max)
		r = store_sync(st);
	return r;
}

int mx_store_sync(struct mx_store *st)
{
	if (!st)
		return -EINVAL;
	if (st->fatal)
		return st->fatal;
	return store_sync(st);
}

int mx_store_sync_begin(struct mx_store *st, struct mx_store_sync *sy)
{
	if (!st || !sy)
		return -EINVAL;
	if (st->fatal)
		return st->fatal;
	if (!st->ufr_head)
		return 0;
	sy->io = st->io;
	sy->fd = st->sync_fd;
	sy->ticket = st->seq;
	sy->result = 0;
	return 1;
}

void mx_store_sync_run(struct mx_store_sync *sy)
{
	sy->result = sy->io->fdatasync(sy->io->ctx, sy->fd);
}

int mx_store_sync_end(struct mx_store *st, const struct mx_store_sync *sy)
{
	int r;

	if (!st || !sy)
		return -EINVAL;
	if (st->fatal)
		return st->fatal;
	st->stats.syncs++;
	if (sy->result)
		return store_fail(st, sy->result);
	if (sy->ticket <= st->sync_seq)
		return 0; /* a sync since covered it, or a checkpoint */
	st->sync_seq = sy->ticket;
	r = apply_unsynced(st, sy->ticket);
	return r ? store_fail(st, r) : 0;
}

uint64_t mx_store_log_seq(const struct mx_store *st)
{
	return st ? st->seq : 0;
}

bool mx_store_durable(const struct mx_store *st, uint64_t ticket)
{
	return st && (ticket <= st->sync_seq || !st->ufr_head);
}

bool mx_store_unsynced(const struct mx_store *st)
{
	return st && st->ufr_head;
}

bool mx_store_sync_due(const struct mx_store *st)
{
	return st && st->ufr_head && st->unsynced_bytes >= st->unsynced_max / 2;
}

bool mx_store_pending(const struct mx_store *st, const struct mx_objkey *key)
{
	const struct obj *o = st ? obj_lookup(st, key) : NULL;

	return o && o->n_pending > 0;
}

size_t mx_store_pending_count(const struct mx_store *st)
{
	return st ? st->n_pend : 0;
}

uint64_t mx_store_pending_bytes(const struct mx_store *st)
{
	return st && st->n_pend ? st->pend.len - FRAME_HDR : 0;
}

int mx_store_stat(struct mx_store *st, const struct mx_objkey *key,
		  struct mx_obj_stat *out)
{
	const struct obj *o;

	if (!st || !key || !out)
		return -EINVAL;
	if (st->fatal)
		return st->fatal;
	o = obj_lookup(st, key);
	if (!o || !o->exists)
		return -ENOENT;
	out->size = o->size;
	out->version = o->ver;
	out->mtime_ms = o->mtime_ms;
	return 0;
}

/* Check blocks [b, b + n) of o against their CRCs; data holds them from
 * block b's start. */
static bool blocks_ok(struct mx_store *st, const struct obj *o, uint64_t b,
		      uint64_t n, const uint8_t *data)
{
	for (uint64_t k = 0; k < n; k++) {
		if (crc_block(data + k * BS, blk_valid(o->size, b + k)) !=
		    o->crc[b + k]) {
			st->stats.csum_errors++;
			return false;
		}
	}
	return true;
}

int mx_store_read(struct mx_store *st, const struct mx_objkey *key,
		  uint64_t off, uint32_t len, void *buf, uint32_t *got)
{
	uint8_t *out = buf;
	uint64_t pos, end;
	struct obj *o;
	int fd, r;

	if (got)
		*got = 0;
	if (!st || !key || !got || (!buf && len))
		return -EINVAL;
	if (st->fatal)
		return st->fatal;
	o = obj_lookup(st, key);
	if (!o || !o->exists)
		return -ENOENT;
	if (off >= o->size || len == 0)
		return 0;
	end = off + MX_MIN((uint64_t)len, o->size - off);
	fd = obj_fd(st, o);
	if (fd < 0)
		return fd;
	for (pos = off; pos < end;) {
		uint64_t b = pos / BS, bs = b * BS;
		/* Whole blocks go straight into buf: up to end's block, or
		 * through the object's last block if end is the size. */
		uint64_t run_end = end == o->size ? end : end / BS * BS;

		if (pos == bs && run_end > pos) {
			uint64_t n = nblocks(run_end) - b;

			r = io_read_zf(st, fd, out + (pos - off),
				       (size_t)(run_end - pos), pos, NULL);
			if (r)
				goto fail;
			/* The last block may be partial: it is checked with
			 * zeroes after the size, not the caller's bytes. */
			if (run_end % BS) {
				memcpy(st->blk, out + (run_end / BS * BS - off),
				       run_end % BS);
				memset(st->blk + run_end % BS, 0,
				       BS - run_end % BS);
				n--;
				if (!blocks_ok(st, o, b + n, 1, st->blk)) {
					r = -EIO;
					goto fail;
				}
			}
			if (!blocks_ok(st, o, b, n, out + (pos - off))) {
				r = -EIO;
				goto fail;
			}
			pos = run_end;
		} else {
			uint32_t valid = blk_valid(o->size, b);
			uint64_t stop = MX_MIN(end, bs + BS);

			r = io_read_zf(st, fd, st->blk, valid, bs, NULL);
			if (r)
				goto fail;
			memset(st->blk + valid, 0, BS - valid);
			if (!blocks_ok(st, o, b, 1, st->blk)) {
				r = -EIO;
				goto fail;
			}
			memcpy(out + (pos - off), st->blk + (pos - bs),
			       stop - pos);
			pos = stop;
		}
	}
	*got = (uint32_t)(end - off);
	return 0;
fail:
	/* Never hand out bytes that did not check. */
	memset(buf, 0, (size_t)(end - off));
	return r;
}

int mx_store_getxattr(struct mx_store *st, const struct mx_objkey *key,
		      const char *xname, void **value, uint32_t *len)
{
	const struct obj *o;
	long i;
	void *v;

	if (!st || !key || !xname_ok(xname) || !value || !len)
		return -EINVAL;
	*value = NULL;
	*len = 0;
	if (st->fatal)
		return st->fatal;
	o = obj_lookup(st, key);
	if (!o || !o->exists)
		return -ENOENT;
	i = xattr_find(o, xname, (uint32_t)strlen(xname));
	if (i < 0)
		return -ENODATA;
	v = malloc(o->xa[i].len ? o->xa[i].len : 1);
	if (!v)
		return -ENOMEM;
	memcpy(v, o->xa[i].val, o->xa[i].len);
	*value = v;
	*len = o->xa[i].len;
	return 0;
}

int mx_store_listxattrs(struct mx_store *st, const struct mx_objkey *key,
			int (*cb)(void *arg, const char *xname,
				  const void *value, uint32_t len),
			void *arg)
{
	const struct obj *o;

	if (!st || !key || !cb)
		return -EINVAL;
	if (st->fatal)
		return st->fatal;
	o = obj_lookup(st, key);
	if (!o || !o->exists)
		return -ENOENT;
	for (uint32_t i = 0; i < o->n_xa; i++) {
		int r = cb(arg, o->xa[i].name, o->xa[i].val, o->xa[i].len);

		if (r)
			return r;
	}
	return 0;
}

static int obj_ptr_cmp(const void *a, const void *b)
{
	const struct obj *x = *(struct obj *const *)a;
	const struct obj *y = *(struct obj *const *)b;

	return name_cmp(x->name, x->name_len, y->name, y->name_len);
}

static int pg_ptr_cmp(const void *a, const void *b)
{
	const struct pgrp *x = *(struct pgrp *const *)a;
	const struct pgrp *y = *(struct pgrp *const *)b;

	if (x->pool != y->pool)
		return x->pool < y->pool ? -1 : 1;
	return x->pg < y->pg ? -1 : x->pg > y->pg;
}

/* List one PG in name order, after the cursor.  Sorting is on demand and
 * kept until the PG's set of entries changes.  Entries that cb's own
 * mx_store_queue() calls add land after the sorted ones and are not
 * visited. */
static int list_pg(struct mx_store *st, struct pgrp *p, const char *cursor,
		   uint32_t cursor_len,
		   int (*cb)(void *arg, const struct mx_objkey *key,
			     const struct mx_obj_stat *stat),
		   void *arg)
{
	uint32_t lo = 0, hi, n;

	(void)st;
	if (!p->sorted) {
		qsort(p->objs, p->n_objs, sizeof(*p->objs), obj_ptr_cmp);
		for (uint32_t i = 0; i < p->n_objs; i++)
			p->objs[i]->pg_idx = i;
		p->sorted = true;
	}
	n = hi = p->n_objs;
	if (cursor) {
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			const struct obj *o = p->objs[mid];

			if (name_cmp(o->name, o->name_len, cursor,
				     cursor_len) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	for (uint32_t i = lo; i < n; i++) {
		const struct obj *o = p->objs[i];
		struct mx_objkey key;
		struct mx_obj_stat os;
		int r;

		if (!o->exists)
			continue;
		key.pool = p->pool;
		key.pg = p->pg;
		key.name = o->name;
		key.name_len = o->name_len;
		os.size = o->size;
		os.version = o->ver;
		os.mtime_ms = o->mtime_ms;
		r = cb(arg, &key, &os);
		if (r)
			return r;
	}
	return 0;
}

int mx_store_list(struct mx_store *st, int32_t pool, uint32_t pg,
		  const char *cursor, uint32_t cursor_len,
		  int (*cb)(void *arg, const struct mx_objkey *key,
			    const struct mx_obj_stat *stat),
		  void *arg)
{
	struct pgrp **v;
	size_t n = 0;
	int r = 0;

	if (!st || !cb)
		return -EINVAL;
	if (st->fatal)
		return st->fatal;
	r = store_sync(st);
	if (r)
		return r;
	if (pool != -1 && pg != UINT32_MAX) {
		struct pgrp *p = pg_find(st, pool, pg);

		return p ? list_pg(st, p, cursor, cursor_len, cb, arg) : 0;
	}
	v = malloc((st->n_pgs ? st->n_pgs : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < st->n_pgs; i++) {
		struct pgrp *p = st->pgs[i];

		if ((pool == -1 || p->pool == pool) &&
		    (pg == UINT32_MAX || p->pg == pg))
			v[n++] = p;
	}
	qsort(v, n, sizeof(*v), pg_ptr_cmp);
	for (size_t i = 0; i < n && !r; i++)
		r = list_pg(st, v[i], cursor, cursor_len, cb, arg);
	free(v);
	return r;
}

int mx_store_checkpoint(struct mx_store *st)
{
	if (!st)
		return -EINVAL;
	if (st->fatal)
		return st->fatal;
	return checkpoint(st);
}

struct mx_version mx_store_pg_last(const struct mx_store *st, int32_t pool,
				   uint32_t pg)
{
	const struct pgrp *p = st ? pg_find(st, pool, pg) : NULL;

	return p ? p->last : (struct mx_version){ 0, 0 };
}

void mx_store_pg_usage(const struct mx_store *st, int32_t pool, uint32_t pg,
		       uint64_t *objects, uint64_t *bytes)
{
	const struct pgrp *p = st ? pg_find(st, pool, pg) : NULL;

	*objects = p ? p->n_exist : 0;
	*bytes = p ? p->n_bytes : 0;
}

void mx_store_get_stats(const struct mx_store *st, struct mx_store_stats *out)
{
	if (!out)
		return;
	if (!st) {
		memset(out, 0, sizeof(*out));
		return;
	}
	*out = st->stats;
	out->wal_bytes = st->log_end - LOG_START;
	out->kept_bytes = st->pend.cap + st->spare_bytes;
}

int mx_store_pg_info_get(struct mx_store *st, int32_t pool, uint32_t pg,
			 struct mx_pg_info *out)
{
	const struct pgrp *p;

	int r;

	if (!st || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (st->fatal)
		return st->fatal;
	r = store_sync(st); /* PG state includes every logged write */
	if (r)
		return r;
	p = pg_find(st, pool, pg);
	if (!p || !pg_live(p))
		return -ENOENT;
	out->last_update = p->lu;
	out->log_tail = p->tail;
	out->les = p->les;
	out->lec = p->lec;
	out->n_acting = p->n_acting;
	memcpy(out->acting, p->acting, sizeof(out->acting));
	out->flags = p->flags;
	out->wb_lost = p->wb_lost;
	return 0;
}

int mx_store_pg_log_walk(struct mx_store *st, int32_t pool, uint32_t pg,
			 struct mx_version after,
			 int (*cb)(void *arg, const struct mx_pglog_entry *e),
			 void *arg)
{
	const struct pgrp *p;
	int r0;

	if (!st || !cb)
		return -EINVAL;
	if (st->fatal)
		return st->fatal;
	r0 = store_sync(st);
	if (r0)
		return r0;
	p = pg_find(st, pool, pg);
	if (!p)
		return 0;
	/* Only a commit changes the ring, and cb must not commit. */
	for (uint32_t i = pglog_after(p, after); i < p->ring_n; i++) {
		const struct logent *e = pglog_at(p, i);
		struct mx_pglog_entry d = {
			.version = e->ver,
			.kind = e->kind,
			.name = e->name,
			.name_len = e->name_len,
			.client_id = e->client_id,
			.tid = e->tid,
		};
		int r = cb(arg, &d);

		if (r)
			return r;
	}
	return 0;
}

int mx_store_pg_find_req(struct mx_store *st, int32_t pool, uint32_t pg,
			 uint64_t client_id, uint64_t tid,
			 struct mx_version *out)
{
	const struct logent *best = NULL;
	const struct hlink *l;

	if (!st || !out)
		return -EINVAL;
	if (st->fatal)
		return st->fatal;
	if (!client_id && !tid)
		return -ENOENT;
	/* The newest first: an unsynced frame's (logged, not applied). */
	for (size_t i = st->n_ureq_unsynced; i-- > 0;) {
		const struct ureq *u = &st->ureqs[i];

		if (u->client_id == client_id && u->tid == tid &&
		    u->pool == pool && u->pg == pg) {
			*out = u->ver;
			return 0;
		}
	}
	/* A chain's order is not kept when the table grows: look at all of
	 * it and take the newest match. */
	for (l = st->rtab.b[req_bucket(st, pool, pg, client_id, tid)]; l;
	     l = l->next) {
		const struct logent *e =
			mx_container_of(l, const struct logent, rlink);

		if (e->client_id == client_id && e->tid == tid &&
		    e->pg->pool == pool && e->pg->pg == pg &&
		    (!best || mx_version_cmp(e->ver, best->ver) > 0))
			best = e;
	}
	if (!best)
		return -ENOENT;
	*out = best->ver;
	return 0;
}

int mx_store_list_pgs(struct mx_store *st,
		      int (*cb)(void *arg, int32_t pool, uint32_t pg),
		      void *arg)
{
	struct pgrp **v;
	size_t n = 0;
	int r = 0;

	if (!st || !cb)
		return -EINVAL;
	if (st->fatal)
		return st->fatal;
	r = store_sync(st);
	if (r)
		return r;
	v = malloc((st->n_pgs ? st->n_pgs : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < st->n_pgs; i++)
		if (pg_live(st->pgs[i]))
			v[n++] = st->pgs[i];
	qsort(v, n, sizeof(*v), pg_ptr_cmp);
	for (size_t i = 0; i < n && !r; i++)
		r = cb(arg, v[i]->pool, v[i]->pg);
	free(v);
	return r;
}

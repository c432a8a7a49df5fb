/*
 * The MixSAN wire protocol: every message between clients, monitors and
 * OSDs is a 32-byte frame header followed by a payload.  Encoders and
 * decoders here are pure functions over buffers, with no I/O, so they are
 * unit-tested and fuzzed on their own.
 *
 * Frame header (little-endian):
 *   u32 magic "MXS1" | u16 protocol version | u16 type | u64 tid |
 *   u32 payload length | u32 flags | u32 payload crc32c | u32 header crc32c
 * The header CRC covers the first 28 bytes.  A receiver rejects a frame with
 * a bad magic, an unknown protocol version, an oversized payload or a bad
 * CRC by closing the connection; a well-framed message whose payload does
 * not decode gets an error reply (-EBADMSG) and the connection stays.
 *
 * Decoded messages point into the payload buffer (no copies): they live as
 * long as that buffer.
 */
#ifndef MX_MSG_H
#define MX_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "map.h"

#define MX_MSG_MAGIC 0x3153584du /* "MXS1" */
#define MX_PROTO_VERSION 1
#define MX_MSG_HDR_LEN 32
#define MX_MSG_MAX_PAYLOAD (80u << 20) /* 64 MiB of data plus room */
#define MX_MSG_MAX_DATA (64u << 20)    /* largest read or write */
#define MX_MSG_MAX_OPS 16              /* ops in one OSD request */
#define MX_CMD_MAX_ARGS 32
/* Physical ops of one transaction: a write-full becomes two, and the
 * primary adds one for the request-id record. */
#define MX_TXN_MAX_OPS (2 * MX_MSG_MAX_OPS + 1)
/* Attribute names under this prefix are the OSD's own, never a client's. */
#define MX_XATTR_RESERVED "_mx."

enum mx_msg_type {
	/* Monitor */
	MX_MSG_MON_GET_MAP = 1,     /* -> MX_MSG_MON_MAP */
	MX_MSG_MON_MAP = 2,         /* reply, or a push to a subscriber (tid 0) */
	MX_MSG_MON_OSD_BOOT = 3,    /* -> MX_MSG_MON_OSD_BOOT_REPLY */
	MX_MSG_MON_OSD_BOOT_REPLY = 4,
	MX_MSG_MON_COMMAND = 5,     /* -> MX_MSG_MON_COMMAND_REPLY */
	MX_MSG_MON_COMMAND_REPLY = 6,
	MX_MSG_MON_OSD_FAILURE = 7, /* osd -> mon: a peer stopped answering */
	MX_MSG_MON_OSD_BEACON = 8,  /* osd -> mon: still alive */
	MX_MSG_MON_PG_STATS = 9,    /* osd -> mon: its PGs and disk usage, no reply */
	MX_MSG_MON_REDIRECT = 10,   /* mon -> any: ask the leader (or another monitor) */
	/* OSD */
	MX_MSG_OSD_OP = 20,         /* client -> primary */
	MX_MSG_OSD_OP_REPLY = 21,
	MX_MSG_OSD_REPOP = 22,      /* primary -> replica */
	MX_MSG_OSD_REPOP_REPLY = 23,
	MX_MSG_OSD_LIST = 24,       /* client -> any OSD of the PG */
	MX_MSG_OSD_LIST_REPLY = 25,
	MX_MSG_OSD_SYNC = 26,       /* primary -> replica: sync your store (a FLUSH) */
	MX_MSG_OSD_SYNC_REPLY = 27, /* an mx_msg_repop_reply */
	/* Peering and recovery, primary <-> other OSDs (docs/recovery.md) */
	MX_MSG_PG_QUERY = 30,       /* -> MX_MSG_PG_NOTIFY: info and log */
	MX_MSG_PG_NOTIFY = 31,
	MX_MSG_PG_ACTIVATE = 32,    /* -> MX_MSG_PG_ACTIVATE_REPLY */
	MX_MSG_PG_ACTIVATE_REPLY = 33,
	MX_MSG_PG_PUSH = 34,        /* an object (or its absence) -> PUSH_REPLY */
	MX_MSG_PG_PUSH_REPLY = 35,
	MX_MSG_PG_PULL = 36,        /* -> MX_MSG_PG_PUSH carrying the object */
	MX_MSG_PG_REMOVE = 37,      /* primary -> stray: drop your copy -> REMOVE_REPLY */
	MX_MSG_PG_REMOVE_REPLY = 38, /* an mx_msg_pg_ack */
	MX_MSG_PG_SCAN = 39,        /* -> MX_MSG_OSD_LIST_REPLY: names and versions */
	/* Any daemon */
	MX_MSG_ERROR_REPLY = 40,    /* a request that could not be decoded */
	MX_MSG_PING = 41,
	MX_MSG_PONG = 42,
	/* Scrub (docs/recovery.md, "Scrub") */
	MX_MSG_PG_SCRUB = 50,       /* client -> primary -> MX_MSG_PG_SCRUB_REPLY */
	MX_MSG_PG_SCRUB_REPLY = 51,
	MX_MSG_PG_SCRUB_MAP = 52,   /* primary -> member -> SCRUB_MAP_REPLY */
	MX_MSG_PG_SCRUB_MAP_REPLY = 53,

	/* Authentication (docs/auth.md): only these travel before AUTH_DONE. */
	MX_MSG_AUTH_HELLO = 60,     /* client -> server */
	MX_MSG_AUTH_CHALLENGE = 61, /* server -> client */
	MX_MSG_AUTH_PROOF = 62,     /* client -> server */
	MX_MSG_AUTH_DONE = 63,      /* server -> client; then every frame has a MAC */
	MX_MSG_AUTH_RENEW = 64,     /* client -> monitor: a new ticket -> AUTH_DONE */
};

/* Wire status codes: negative errno values are mapped in exactly one place
 * each way (mx_errno_to_wire, mx_wire_to_errno). */
int32_t mx_errno_to_wire(int err);
int mx_wire_to_errno(int32_t status);

struct mx_msg_hdr {
	uint16_t version;
	uint16_t type;
	uint64_t tid;
	uint32_t len;
	uint32_t flags;
	uint32_t payload_crc;
};

/* Fill the 32 header bytes for a payload.  */
void mx_msg_hdr_encode(uint8_t out[MX_MSG_HDR_LEN], uint16_t type, uint64_t tid,
		       const void *payload, uint32_t len);
/* The same with the payload's CRC-32C already known (a payload sent more
 * than once). */
void mx_msg_hdr_encode_sum(uint8_t out[MX_MSG_HDR_LEN], uint16_t type, uint64_t tid,
			   uint32_t len, uint32_t payload_crc);
/* Check and decode a header: 0, -EBADMSG (magic, CRC), -EPROTO (version),
 * -EMSGSIZE (payload too large). */
int mx_msg_hdr_decode(const uint8_t in[MX_MSG_HDR_LEN], struct mx_msg_hdr *h);
/* Check a payload against its header's CRC: 0 or -EBADMSG. */
int mx_msg_payload_check(const struct mx_msg_hdr *h, const void *payload);

/* --- Monitor messages ----------------------------------------------- */

struct mx_msg_get_map {
	uint64_t have_epoch; /* send only if the map is newer */
	bool subscribe;      /* keep pushing new epochs on this connection */
	uint64_t want_epoch; /* not 0: send this (older) epoch's map instead,
				status ENOENT if the monitor no longer keeps it */
};

struct mx_msg_map {
	int32_t status;
	uint64_t epoch;
	const void *map; /* encoded struct mx_map; empty if not newer */
	uint32_t map_len;
};

struct mx_msg_osd_boot {
	int32_t osd_id; /* -1: allocate (or find by uuid) */
	uint8_t uuid[16];
	const char *addr; /* "ip:port"; pointers into the payload */
	uint32_t weight;  /* 16.16; 0: keep the map's */
	const char *location; /* "host=h1 rack=r1" */
	const char *device_class;
};

struct mx_msg_osd_boot_reply {
	int32_t status;
	int32_t osd_id;
	uint64_t epoch;
	const char *message;
};

struct mx_msg_command {
	const char *prefix; /* "pool create", "osd out", ... */
	uint16_t n_args;
	const char *keys[MX_CMD_MAX_ARGS];
	const char *vals[MX_CMD_MAX_ARGS];
};

struct mx_msg_command_reply {
	int32_t status;
	uint64_t epoch;
	const char *message; /* human text, may be empty */
};

/* An OSD reports a peer it cannot reach.  No reply: the monitor acts (or
 * not) by publishing a map in which the target is down. */
#define MX_FAILURE_IMMEDIATE 1u /* the peer's port refused: it is dead */
struct mx_msg_osd_failure {
	int32_t reporter;
	int32_t target;
	uint64_t target_incarnation; /* as the reporter's map says */
	uint64_t epoch;              /* the reporter's map epoch */
	uint32_t silent_ms;          /* how long the target has not answered */
	uint32_t flags;
};

/* PONG between OSDs (docs/read-policies.md, "Leases"): the answering
 * OSD's map epoch and the time left on its lease as a whole (ns, 0: none).
 * An empty PONG (the monitor's) decodes as zeros. */
struct mx_msg_pong {
	uint64_t epoch;
	uint64_t lease_ns;
};

struct mx_msg_osd_beacon {
	int32_t osd_id;
	uint64_t incarnation;
	uint64_t epoch;
};

/*
 * PG statistics (docs/health.md): every OSD sends the monitor, every
 * second and soon after one of its PGs changes state, the usage of its
 * file system and one record per PG it is the primary of.  No reply.
 * Each record carries its own length so a newer OSD may append fields.
 */

/* PG state bits.  An OSD sets the first ones; STALE and UNKNOWN are the
 * monitor's own (no fresh report from the primary) and never travel. */
#define MX_PGS_ACTIVE 0x1u        /* serves I/O in this interval */
#define MX_PGS_CLEAN 0x2u         /* size members, acting == up, all complete */
#define MX_PGS_PEERING 0x4u       /* gathering infos and logs, or pulling */
#define MX_PGS_ACTIVATING 0x8u    /* members persisting the new interval */
#define MX_PGS_RECOVERING 0x10u   /* pushing (pulling) objects a copy misses */
#define MX_PGS_BACKFILLING 0x20u  /* refilling a copy from a listing */
#define MX_PGS_DEGRADED 0x40u     /* some object has fewer than size copies */
#define MX_PGS_UNDERSIZED 0x80u   /* fewer acting members than size */
#define MX_PGS_REMAPPED 0x100u    /* acting != up */
#define MX_PGS_INCOMPLETE 0x200u  /* peering waits for a down OSD (or stuck) */
#define MX_PGS_INCONSISTENT 0x400u /* the last scrub found unrepaired differences */
#define MX_PGS_SCRUBBING 0x800u
#define MX_PGS_DEEP 0x1000u       /* with SCRUBBING: a deep scrub */
#define MX_PGS_WIRE_MASK 0xffffu
#define MX_PGS_STALE 0x10000u     /* the primary stopped reporting */
#define MX_PGS_UNKNOWN 0x20000u   /* no report yet since the PG got its primary */

/* "active+clean", "peering", ... ("inactive" for no bit).  Returns buf. */
char *mx_pg_state_name(uint32_t state, char *buf, size_t sz);

struct mx_pg_stat {
	int32_t pool;
	uint32_t pg;
	uint64_t interval;           /* first epoch of the interval reported */
	uint32_t state;              /* MX_PGS_* */
	uint64_t objects, bytes;     /* on the primary */
	uint64_t degraded;           /* object copies missing on acting members
					or for want of members (size - acting) */
	uint64_t misplaced;          /* object copies that exist, but must move */
	uint64_t recovered_objects;  /* cumulative, for rates */
	uint64_t recovered_bytes;
	uint64_t scrub_ms, deep_scrub_ms; /* wall clock of the last ones; 0 none */
};

struct mx_msg_pg_stats {
	int32_t osd_id;
	uint64_t incarnation;        /* as the OSD's map says */
	uint64_t epoch;              /* the OSD's map epoch */
	uint64_t stamp_ms;           /* the OSD's wall clock */
	uint64_t fs_total, fs_used, fs_avail; /* bytes, of its data folder */
	uint32_t n;
	struct mx_rbuf entries;      /* n records: walk with mx_pg_stat_next() */
};

/* Head, then n records with mx_enc_pg_stat, then end. */
size_t mx_enc_pg_stats_head(struct mx_wbuf *w, const struct mx_msg_pg_stats *m);
void mx_enc_pg_stat(struct mx_wbuf *w, const struct mx_pg_stat *s);
void mx_enc_pg_stats_end(struct mx_wbuf *w, size_t at, uint32_t n);
int mx_dec_pg_stats(const void *p, uint32_t len, struct mx_msg_pg_stats *m);
/* Next record; 0 or -EBADMSG. */
int mx_pg_stat_next(struct mx_rbuf *r, struct mx_pg_stat *s);

/* --- OSD messages --------------------------------------------------- */

enum mx_osd_op_code {
	MX_OP_READ = 1,       /* off, len -> data */
	MX_OP_STAT = 2,       /* -> size, version, mtime */
	MX_OP_GETXATTR = 3,   /* name -> value */
	MX_OP_LISTXATTRS = 4, /* -> encoded (name, value) list */
	MX_OP_WRITE = 10,     /* off, data */
	MX_OP_WRITEFULL = 11, /* data: replaces the whole object */
	MX_OP_APPEND = 12,    /* data at the end */
	MX_OP_TRUNCATE = 13,  /* off is the new size */
	MX_OP_REMOVE = 14,
	MX_OP_SETXATTR = 15,  /* name, data */
	MX_OP_RMXATTR = 16,   /* name */
	MX_OP_CREATE = 17,    /* flags & MX_OP_FLAG_EXCL: fail if it exists */
	MX_OP_CMPXATTR = 18,  /* name, data: a guard in a write request, which
				 fails with ECANCELED unless the attribute
				 compares to data as its flags say (MX_CMP_*)
				 as the request arrives */
	MX_OP_FLUSH = 19,     /* alone in a request: every write the PG's OSDs
				 acknowledged before it is durable on each of
				 them when it completes (docs/cache-modes.md) */
};

#define MX_OP_FLAG_EXCL 1u  /* CREATE */
#define MX_OP_FLAG_SINCE 2u /* FLUSH: off is the least version epoch of the
			       writes it vouches for (docs/cache-modes.md) */
/* A FLUSH's answer: writes it vouches for may have been lost to a power
 * cut of every OSD that held them (wire 29; the volume reports EIO).  Its
 * own code, so that no other EIO is taken for a loss. */
#define MX_EWBLOST ENOTRECOVERABLE

/* CMPXATTR's comparison, a field of its op flags (docs/protocol.md): 0 is
 * equality (empty data: the attribute is absent); the ordered ones hold if
 * (attribute) OP (data), both compared as unsigned big-endian byte strings
 * of one length, an absent attribute below every operand.  Other bits, or
 * other values of the field, make the request EINVAL. */
#define MX_CMP_EQ 0x00u
#define MX_CMP_LT 0x10u
#define MX_CMP_LE 0x20u
#define MX_CMP_GT 0x30u
#define MX_CMP_GE 0x40u
#define MX_CMP_MASK 0xf0u

static inline bool mx_op_is_write(uint8_t op)
{
	return op >= MX_OP_WRITE && op <= MX_OP_CMPXATTR;
}

struct mx_osd_op {
	uint8_t op;
	uint32_t flags;
	uint64_t off;
	uint32_t len;        /* READ length */
	const char *xname;   /* attribute name, NUL-terminated in our copy */
	const void *data;    /* WRITE/APPEND/WRITEFULL/SETXATTR payload */
	uint32_t data_len;
};

/* An op, built in place (tiering's guarded sequences and their tests). */
static inline struct mx_osd_op mx_op(uint8_t opcode, const char *xname)
{
	struct mx_osd_op o = {.op = opcode, .xname = xname};
	return o;
}

/* CMPXATTR of name against v (len bytes) by flags (MX_CMP_*). */
static inline struct mx_osd_op mx_op_guard(uint32_t flags, const char *name, const void *v,
					   uint32_t len)
{
	struct mx_osd_op o = {.op = MX_OP_CMPXATTR, .flags = flags, .xname = name,
			      .data = v, .data_len = len};
	return o;
}

static inline struct mx_osd_op mx_op_setx(const char *name, const void *v, uint32_t len)
{
	struct mx_osd_op o = {.op = MX_OP_SETXATTR, .xname = name, .data = v, .data_len = len};
	return o;
}

/* A read sent to a replica by a read policy (docs/read-policies.md). */
#define MX_OSD_OP_REPLICA_READ 1u
/* A write that may be acknowledged once every OSD of the acting set has
 * logged it, before its fdatasync (a writeback volume's write,
 * docs/cache-modes.md); a FLUSH makes it durable. */
#define MX_OSD_OP_WRITEBACK 2u
/* route_epoch is set: the epoch of the map the request was routed by,
 * through a cache tier or straight (docs/cache-tiering.md, "Mode changes
 * and fencing").  Without it the request's epoch stands for it. */
#define MX_OSD_OP_ROUTED 4u

struct mx_msg_osd_op {
	uint64_t epoch; /* the client's map epoch */
	int32_t pool;
	uint32_t pg;
	uint64_t client_id; /* with the frame's tid: the request's identity */
	uint32_t flags;     /* MX_OSD_OP_* */
	const char *name;   /* object name: name_len bytes, not NUL-terminated */
	uint32_t name_len;
	uint8_t n_ops;
	struct mx_osd_op ops[MX_MSG_MAX_OPS];
	uint64_t route_epoch; /* with MX_OSD_OP_ROUTED; UINT64_MAX: never fenced */
};

struct mx_osd_op_result {
	int32_t rval;
	const void *data; /* READ data, GETXATTR value, STAT record, ... */
	uint32_t data_len;
};

struct mx_msg_osd_op_reply {
	int32_t status;  /* whole request: 0 or a wire status */
	uint64_t epoch;  /* the OSD's map epoch */
	uint64_t ver_epoch, ver_seq; /* the object's version after a write */
	uint8_t n_ops;
	struct mx_osd_op_result res[MX_MSG_MAX_OPS];
};

/* STAT result record. */
struct mx_osd_stat {
	uint64_t size;
	uint64_t ver_epoch, ver_seq;
	uint64_t mtime_ms;
};
void mx_osd_stat_encode(struct mx_wbuf *w, const struct mx_osd_stat *s);
int mx_osd_stat_decode(const void *data, uint32_t len, struct mx_osd_stat *s);

/* Physical update sent from a primary to its replicas: txn op types are
 * those of the object store (MX_TXN_*). */
struct mx_repop_op {
	uint8_t type;
	uint64_t off;
	uint64_t size;
	const char *xname;
	const void *data;
	uint32_t data_len;
};

/* Appended to a REPOP (older decoders ignore it): the interval the primary
 * planned the write in, whether the replica logs it, and the request's
 * identity for the log entry. */
#define MX_REPOP_LOG 1u
#define MX_REPOP_WRITEBACK 2u /* may be answered before the fdatasync */
struct mx_repop_tail {
	uint64_t interval;
	uint32_t flags;
	uint64_t client_id, tid;
};

struct mx_msg_repop {
	uint64_t epoch;
	int32_t pool;
	uint32_t pg;
	const char *name;
	uint32_t name_len;
	uint64_t ver_epoch, ver_seq;
	uint8_t n_ops;
	struct mx_repop_op ops[MX_TXN_MAX_OPS];
	struct mx_repop_tail tail; /* zero if absent */
};

struct mx_msg_repop_reply {
	int32_t status;
	uint64_t epoch;
};

struct mx_msg_osd_list {
	uint64_t epoch;
	int32_t pool;
	uint32_t pg;
	const char *cursor; /* list names after this one; len 0 = from start */
	uint32_t cursor_len;
	uint32_t max;
};

struct mx_list_entry {
	const char *name;
	uint32_t name_len;
	uint64_t size;
	uint64_t ver_epoch, ver_seq;
};

/* The list reply is decoded lazily: entries are walked with an rbuf. */
struct mx_msg_osd_list_reply {
	int32_t status;
	uint64_t epoch;
	bool done;
	uint32_t n;
	struct mx_rbuf entries; /* n encoded entries */
};
/* Next entry of a list reply; 0, or -EBADMSG. */
int mx_list_next(struct mx_msg_osd_list_reply *r, struct mx_list_entry *e);

struct mx_msg_error_reply {
	int32_t status;
	const char *message;
};

/* Authentication (docs/auth.md). */
enum { MX_AUTH_MODE_KEY = 1, MX_AUTH_MODE_TICKET = 2 };
struct mx_msg_auth_hello {
	uint8_t mode;           /* MX_AUTH_MODE_* */
	const char *entity;     /* mode KEY */
	const uint8_t *nonce;   /* MX_NONCE_LEN bytes */
	const uint8_t *ticket;  /* mode TICKET */
	uint32_t ticket_len;
};
struct mx_msg_auth_challenge {
	const uint8_t *nonce;   /* MX_NONCE_LEN */
	const uint8_t *proof;   /* MX_HMAC_LEN: the server's */
};
struct mx_msg_auth_proof {
	const uint8_t *proof;   /* MX_HMAC_LEN */
};
struct mx_msg_auth_done {
	int32_t status;
	const char *message;
	const char *caps;
	/* From a monitor: seal(K, ticket_key | expires_ms u64 | has_secret u8 |
	 * service secret), and the ticket itself. */
	const uint8_t *sealed;
	uint32_t sealed_len;
	const uint8_t *ticket;
	uint32_t ticket_len;
};

/* A monitor that is not the leader, to a request only the leader answers
 * (same tid).  leader: the leader's client address, or "" when this monitor
 * knows no leader (try another). */
struct mx_msg_mon_redirect {
	const char *leader;
	const char *message;
};

/* Encoders append the payload to w (errors latch in w->err).  Decoders
 * return 0 or -EBADMSG and point into the payload: strings travel with
 * their terminating NUL (u16 length counting it), which the decoder checks,
 * so they can be used in place. */
void mx_enc_get_map(struct mx_wbuf *w, const struct mx_msg_get_map *m);
int mx_dec_get_map(const void *p, uint32_t len, struct mx_msg_get_map *m);
void mx_enc_map(struct mx_wbuf *w, const struct mx_msg_map *m);
int mx_dec_map(const void *p, uint32_t len, struct mx_msg_map *m);
void mx_enc_osd_boot(struct mx_wbuf *w, const struct mx_msg_osd_boot *m);
int mx_dec_osd_boot(const void *p, uint32_t len, struct mx_msg_osd_boot *m);
void mx_enc_osd_boot_reply(struct mx_wbuf *w, const struct mx_msg_osd_boot_reply *m);
int mx_dec_osd_boot_reply(const void *p, uint32_t len, struct mx_msg_osd_boot_reply *m);
void mx_enc_command(struct mx_wbuf *w, const struct mx_msg_command *m);
int mx_dec_command(const void *p, uint32_t len, struct mx_msg_command *m);
void mx_enc_command_reply(struct mx_wbuf *w, const struct mx_msg_command_reply *m);
int mx_dec_command_reply(const void *p, uint32_t len, struct mx_msg_command_reply *m);
void mx_enc_osd_failure(struct mx_wbuf *w, const struct mx_msg_osd_failure *m);
void mx_enc_pong(struct mx_wbuf *w, const struct mx_msg_pong *m);
int mx_dec_pong(const void *p, uint32_t len, struct mx_msg_pong *m);
int mx_dec_osd_failure(const void *p, uint32_t len, struct mx_msg_osd_failure *m);
void mx_enc_osd_beacon(struct mx_wbuf *w, const struct mx_msg_osd_beacon *m);
int mx_dec_osd_beacon(const void *p, uint32_t len, struct mx_msg_osd_beacon *m);
void mx_enc_osd_op(struct mx_wbuf *w, const struct mx_msg_osd_op *m);
int mx_dec_osd_op(const void *p, uint32_t len, struct mx_msg_osd_op *m);
void mx_enc_osd_op_reply(struct mx_wbuf *w, const struct mx_msg_osd_op_reply *m);
int mx_dec_osd_op_reply(const void *p, uint32_t len, struct mx_msg_osd_op_reply *m);
/* Incremental reply encoding, for results read straight into the buffer:
 * head, then per op either result() or reserve() + finish(). */
void mx_enc_osd_op_reply_head(struct mx_wbuf *w, int32_t status, uint64_t epoch,
			      uint64_t ver_epoch, uint64_t ver_seq, uint8_t n_ops);
void mx_enc_osd_op_result(struct mx_wbuf *w, int32_t rval, const void *data, uint32_t len);
/* Room for up to max bytes of result data; *at remembers the spot.
 * Returns NULL on allocation failure (latched in w->err). */
uint8_t *mx_enc_osd_op_result_reserve(struct mx_wbuf *w, int32_t rval, uint32_t max,
				      size_t *at);
/* Close a reserved result with its real length (and rval). */
void mx_enc_osd_op_result_finish(struct mx_wbuf *w, size_t at, int32_t rval, uint32_t len);
void mx_enc_repop(struct mx_wbuf *w, const struct mx_msg_repop *m);
/* Clear MX_REPOP_LOG in an encoded REPOP payload (the copy for a member
 * that is not complete, from the one for those that are). */
void mx_repop_clear_log(uint8_t *payload, size_t len);
int mx_dec_repop(const void *p, uint32_t len, struct mx_msg_repop *m);
void mx_enc_repop_reply(struct mx_wbuf *w, const struct mx_msg_repop_reply *m);
int mx_dec_repop_reply(const void *p, uint32_t len, struct mx_msg_repop_reply *m);

/* OSD_SYNC: the primary of (pool, pg) asks a member to make every write it
 * logged durable; answered with OSD_SYNC_REPLY, an mx_msg_repop_reply. */
struct mx_msg_osd_sync {
	uint64_t epoch;
	int32_t pool;
	uint32_t pg;
};
void mx_enc_osd_sync(struct mx_wbuf *w, const struct mx_msg_osd_sync *m);
int mx_dec_osd_sync(const void *p, uint32_t len, struct mx_msg_osd_sync *m);
void mx_enc_osd_list(struct mx_wbuf *w, const struct mx_msg_osd_list *m);
int mx_dec_osd_list(const void *p, uint32_t len, struct mx_msg_osd_list *m);
/* The list reply is built incrementally: begin, add entries, end. */
size_t mx_enc_list_reply_begin(struct mx_wbuf *w, int32_t status, uint64_t epoch);
void mx_enc_list_reply_entry(struct mx_wbuf *w, const struct mx_list_entry *e);
void mx_enc_list_reply_end(struct mx_wbuf *w, size_t at, uint32_t n, bool done);
int mx_dec_osd_list_reply(const void *p, uint32_t len, struct mx_msg_osd_list_reply *m);
void mx_enc_error_reply(struct mx_wbuf *w, const struct mx_msg_error_reply *m);
int mx_dec_error_reply(const void *p, uint32_t len, struct mx_msg_error_reply *m);
void mx_enc_mon_redirect(struct mx_wbuf *w, const struct mx_msg_mon_redirect *m);
void mx_enc_auth_hello(struct mx_wbuf *w, const struct mx_msg_auth_hello *m);
int mx_dec_auth_hello(const void *p, uint32_t len, struct mx_msg_auth_hello *m);
void mx_enc_auth_challenge(struct mx_wbuf *w, const struct mx_msg_auth_challenge *m);
int mx_dec_auth_challenge(const void *p, uint32_t len, struct mx_msg_auth_challenge *m);
void mx_enc_auth_proof(struct mx_wbuf *w, const struct mx_msg_auth_proof *m);
int mx_dec_auth_proof(const void *p, uint32_t len, struct mx_msg_auth_proof *m);
void mx_enc_auth_done(struct mx_wbuf *w, const struct mx_msg_auth_done *m);
int mx_dec_auth_done(const void *p, uint32_t len, struct mx_msg_auth_done *m);
int mx_dec_mon_redirect(const void *p, uint32_t len, struct mx_msg_mon_redirect *m);

/* --- Peering ----------------------------------------------------------- */

/* Every peering message names its PG and the interval (the first epoch of
 * the acting set the sender works for); a receiver in another interval
 * answers ESTALE. */
struct mx_pg_ref {
	uint64_t epoch; /* the sender's map epoch */
	int32_t pool;
	uint32_t pg;
	uint64_t interval;
};

/* A PG info on the wire (the store's struct mx_pg_info, without its
 * flags), with the sender's word on its copy (MX_PGI_*).  flags and
 * wb_lost travel after a notify's log entries (0 from an older peer). */
#define MX_PGI_SUSPECT 1u /* the copy may lack writes it acknowledged: its OSD
			     restarted after its host did (docs/cache-modes.md) */
struct mx_wire_pg_info {
	uint64_t lu_epoch, lu_seq;     /* last_update */
	uint64_t tail_epoch, tail_seq; /* log_tail */
	uint64_t les, lec;
	uint8_t n_acting;
	int32_t acting[MX_MAX_SIZE];
	uint8_t flags;    /* MX_PGI_* */
	uint64_t wb_lost; /* the store's */
};

/* One PG log entry on the wire. */
struct mx_wire_log_entry {
	uint64_t ver_epoch, ver_seq;
	uint8_t kind;
	const char *name;
	uint32_t name_len;
	uint64_t client_id, tid;
};

struct mx_msg_pg_notify {
	int32_t status;
	struct mx_pg_ref ref;
	struct mx_wire_pg_info info;
	uint32_t n;             /* log entries that follow */
	struct mx_rbuf entries; /* walk with mx_pg_log_next() */
};

struct mx_msg_pg_activate {
	struct mx_pg_ref ref;
	uint64_t les;
	uint64_t wb_lost; /* the PG's, for the member to persist; after the
			     entries (0 from an older peer) */
	bool with_log;  /* adopt the log that follows (after recovery) */
	uint64_t tail_epoch, tail_seq;
	uint32_t n;
	struct mx_rbuf entries;
};

struct mx_msg_pg_ack {
	int32_t status;
	struct mx_pg_ref ref;
};

/* An object as recovery moves it: its whole state, or its absence. */
struct mx_msg_pg_object {
	int32_t status;
	struct mx_pg_ref ref;
	const char *name;
	uint32_t name_len;
	bool exists;
	uint64_t ver_epoch, ver_seq, mtime_ms;
	uint32_t n_xattrs;
	struct mx_rbuf xattrs; /* n_xattrs x (name str, value blob) */
	const void *data;
	uint32_t data_len;
};

struct mx_msg_pg_pull {
	struct mx_pg_ref ref;
	const char *name;
	uint32_t name_len;
};

/* Sent by the primary of ref.interval once the PG is clean there (every
 * acting member complete with les == ref.interval, acting == up, size
 * members) to an OSD outside the acting set that may hold an old copy. */
struct mx_msg_pg_remove {
	struct mx_pg_ref ref;
	int32_t from; /* the primary of ref.interval */
};

/* A primary that needs a backfill itself lists the authority's copy, in
 * chunks: the names after cursor, with their versions.  The answer is an
 * MX_MSG_OSD_LIST_REPLY (same tid). */
struct mx_msg_pg_scan {
	struct mx_pg_ref ref;
	const char *cursor; /* len 0: from the start */
	uint32_t cursor_len;
};

void mx_enc_pg_ref(struct mx_wbuf *w, const struct mx_pg_ref *r);
void mx_enc_pg_query(struct mx_wbuf *w, const struct mx_pg_ref *r);
int mx_dec_pg_query(const void *p, uint32_t len, struct mx_pg_ref *r);
/* Notify: head, then n entries with mx_enc_pg_log_entry, then end. */
size_t mx_enc_pg_notify_head(struct mx_wbuf *w, int32_t status, const struct mx_pg_ref *r,
			     const struct mx_wire_pg_info *info);
void mx_enc_pg_log_entry(struct mx_wbuf *w, const struct mx_wire_log_entry *e);
/* Patch the entry count, then append info's flags and wb_lost. */
void mx_enc_pg_notify_end(struct mx_wbuf *w, size_t at, uint32_t n,
			  const struct mx_wire_pg_info *info);
int mx_dec_pg_notify(const void *p, uint32_t len, struct mx_msg_pg_notify *m);
/* Next log entry of a notify or activate; 0 or -EBADMSG. */
int mx_pg_log_next(struct mx_rbuf *r, struct mx_wire_log_entry *e);
size_t mx_enc_pg_activate_head(struct mx_wbuf *w, const struct mx_msg_pg_activate *m);
/* Patch the entry count, then append m's wb_lost. */
void mx_enc_pg_activate_end(struct mx_wbuf *w, size_t at, uint32_t n,
			    const struct mx_msg_pg_activate *m);
int mx_dec_pg_activate(const void *p, uint32_t len, struct mx_msg_pg_activate *m);
void mx_enc_pg_ack(struct mx_wbuf *w, const struct mx_msg_pg_ack *m);
int mx_dec_pg_ack(const void *p, uint32_t len, struct mx_msg_pg_ack *m);
/* Object: head (through the version), xattrs counted then added, data. */
size_t mx_enc_pg_object_head(struct mx_wbuf *w, const struct mx_msg_pg_object *m);
void mx_enc_pg_object_xattr(struct mx_wbuf *w, const char *name, const void *v, uint32_t len);
void mx_enc_pg_object_end(struct mx_wbuf *w, size_t at, uint32_t n_xattrs, const void *data,
			  uint32_t len);
int mx_dec_pg_object(const void *p, uint32_t len, struct mx_msg_pg_object *m);
void mx_enc_pg_pull(struct mx_wbuf *w, const struct mx_msg_pg_pull *m);
int mx_dec_pg_pull(const void *p, uint32_t len, struct mx_msg_pg_pull *m);
void mx_enc_pg_remove(struct mx_wbuf *w, const struct mx_msg_pg_remove *m);
int mx_dec_pg_remove(const void *p, uint32_t len, struct mx_msg_pg_remove *m);
void mx_enc_pg_scan(struct mx_wbuf *w, const struct mx_msg_pg_scan *m);
int mx_dec_pg_scan(const void *p, uint32_t len, struct mx_msg_pg_scan *m);

/* --- Scrub ------------------------------------------------------------ */

#define MX_SCRUB_DEEP 0x1u   /* also read every block and compare data digests */
#define MX_SCRUB_REPAIR 0x2u /* push the good copy to members that differ */

/* A client asks the primary of (pool, pg) to scrub it. */
struct mx_msg_pg_scrub {
	uint64_t epoch; /* the client's map epoch */
	int32_t pool;
	uint32_t pg;
	uint32_t flags; /* MX_SCRUB_* */
};

struct mx_msg_pg_scrub_reply {
	int32_t status;
	uint64_t epoch;        /* the primary's map epoch */
	uint32_t scrubbed;     /* objects compared */
	uint32_t inconsistent; /* objects some member holds differently */
	uint32_t repaired;     /* of those, made consistent again */
	uint32_t errors;       /* members that could not be scrubbed, failed repairs */
};

/* The primary asks a member (itself included) for its scrub map. */
struct mx_msg_scrub_map_req {
	struct mx_pg_ref ref;
	uint32_t flags; /* MX_SCRUB_DEEP */
};

#define MX_SCRUB_E_DAMAGED 0x1u /* a block failed its checksum (deep) */

/* One object of a scrub map. */
struct mx_scrub_entry {
	const char *name;
	uint32_t name_len;
	uint64_t ver_epoch, ver_seq;
	uint64_t size;
	uint32_t attr_digest; /* CRC-32C over the attributes, in name order */
	uint32_t data_digest; /* deep: CRC-32C of the data; else 0 */
	uint8_t flags;        /* MX_SCRUB_E_* */
};

/* A member's scrub map: n entries follow (walk with mx_scrub_entry_next). */
struct mx_msg_scrub_map {
	int32_t status;
	struct mx_pg_ref ref;
	uint32_t flags;
	uint32_t n;
	struct mx_rbuf entries;
};

void mx_enc_pg_scrub(struct mx_wbuf *w, const struct mx_msg_pg_scrub *m);
int mx_dec_pg_scrub(const void *p, uint32_t len, struct mx_msg_pg_scrub *m);
void mx_enc_pg_scrub_reply(struct mx_wbuf *w, const struct mx_msg_pg_scrub_reply *m);
int mx_dec_pg_scrub_reply(const void *p, uint32_t len, struct mx_msg_pg_scrub_reply *m);
void mx_enc_scrub_map_req(struct mx_wbuf *w, const struct mx_msg_scrub_map_req *m);
int mx_dec_scrub_map_req(const void *p, uint32_t len, struct mx_msg_scrub_map_req *m);
/* Scrub map: head, then n entries with mx_enc_scrub_entry, then end. */
size_t mx_enc_scrub_map_head(struct mx_wbuf *w, int32_t status, const struct mx_pg_ref *r,
			     uint32_t flags);
void mx_enc_scrub_entry(struct mx_wbuf *w, const struct mx_scrub_entry *e);
void mx_enc_scrub_map_end(struct mx_wbuf *w, size_t at, uint32_t n);
int mx_dec_scrub_map(const void *p, uint32_t len, struct mx_msg_scrub_map *m);
/* Next entry of a scrub map; 0 or -EBADMSG. */
int mx_scrub_entry_next(struct mx_rbuf *r, struct mx_scrub_entry *e);

/* Decode any payload by type, for the fuzzer: 0 or -EBADMSG/-ENOTSUP. */
int mx_msg_decode_any(uint16_t type, const void *p, uint32_t len);

#endif

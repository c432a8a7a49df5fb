/*
 * The NBD wire format as the test client needs it: constants from the NBD
 * protocol document (doc/proto.md of the nbd project) and pure functions that
 * encode and decode the fixed-size parts of handshake and transmission
 * messages over a buffer.  No I/O here, so a hostile or malformed server
 * reply can only be refused, never overrun a buffer.  All integers on the
 * wire are big-endian.
 */
#ifndef NBD_WIRE_H
#define NBD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Magic numbers. */
#define NBD_INIT_MAGIC 0x4e42444d41474943ULL /* "NBDMAGIC" */
#define NBD_OPT_MAGIC 0x49484156454f5054ULL  /* "IHAVEOPT" */
#define NBD_REP_MAGIC 0x0003e889045565a9ULL
#define NBD_REQUEST_MAGIC 0x25609513U
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698U
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efU
#define NBD_OLD_REQUEST_MAGIC 0x12560953U /* reserved: pre-2.1.116 Linux */

/* Handshake flags (server) and client flags. */
#define NBD_FLAG_FIXED_NEWSTYLE (1U << 0)
#define NBD_FLAG_NO_ZEROES (1U << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1U << 0)
#define NBD_FLAG_C_NO_ZEROES (1U << 1)

/* Options. */
#define NBD_OPT_EXPORT_NAME 1U
#define NBD_OPT_ABORT 2U
#define NBD_OPT_LIST 3U
#define NBD_OPT_STARTTLS 5U
#define NBD_OPT_INFO 6U
#define NBD_OPT_GO 7U
#define NBD_OPT_STRUCTURED_REPLY 8U
#define NBD_OPT_LIST_META_CONTEXT 9U
#define NBD_OPT_SET_META_CONTEXT 10U

/* Option reply types; errors have bit 31 set. */
#define NBD_REP_ACK 1U
#define NBD_REP_SERVER 2U
#define NBD_REP_INFO 3U
#define NBD_REP_META_CONTEXT 4U
#define NBD_REP_FLAG_ERROR (1U << 31)
#define NBD_REP_ERR_UNSUP (NBD_REP_FLAG_ERROR | 1U)
#define NBD_REP_ERR_POLICY (NBD_REP_FLAG_ERROR | 2U)
#define NBD_REP_ERR_INVALID (NBD_REP_FLAG_ERROR | 3U)
#define NBD_REP_ERR_PLATFORM (NBD_REP_FLAG_ERROR | 4U)
#define NBD_REP_ERR_TLS_REQD (NBD_REP_FLAG_ERROR | 5U)
#define NBD_REP_ERR_UNKNOWN (NBD_REP_FLAG_ERROR | 6U)
#define NBD_REP_ERR_SHUTDOWN (NBD_REP_FLAG_ERROR | 7U)
#define NBD_REP_ERR_BLOCK_SIZE_REQD (NBD_REP_FLAG_ERROR | 8U)
#define NBD_REP_ERR_TOO_BIG (NBD_REP_FLAG_ERROR | 9U)

/* NBD_REP_INFO types. */
#define NBD_INFO_EXPORT 0U
#define NBD_INFO_NAME 1U
#define NBD_INFO_DESCRIPTION 2U
#define NBD_INFO_BLOCK_SIZE 3U

/* Transmission flags. */
#define NBD_FLAG_HAS_FLAGS (1U << 0)
#define NBD_FLAG_READ_ONLY (1U << 1)
#define NBD_FLAG_SEND_FLUSH (1U << 2)
#define NBD_FLAG_SEND_FUA (1U << 3)
#define NBD_FLAG_ROTATIONAL (1U << 4)
#define NBD_FLAG_SEND_TRIM (1U << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1U << 6)
#define NBD_FLAG_SEND_DF (1U << 7)
#define NBD_FLAG_CAN_MULTI_CONN (1U << 8)
#define NBD_FLAG_SEND_RESIZE (1U << 9)
#define NBD_FLAG_SEND_CACHE (1U << 10)
#define NBD_FLAG_SEND_FAST_ZERO (1U << 11)

/* Commands and their flags. */
#define NBD_CMD_READ 0U
#define NBD_CMD_WRITE 1U
#define NBD_CMD_DISC 2U
#define NBD_CMD_FLUSH 3U
#define NBD_CMD_TRIM 4U
#define NBD_CMD_CACHE 5U
#define NBD_CMD_WRITE_ZEROES 6U
#define NBD_CMD_BLOCK_STATUS 7U
#define NBD_CMD_RESIZE 8U /* experimental extension, never negotiated here */

#define NBD_CMD_FLAG_FUA (1U << 0)
#define NBD_CMD_FLAG_NO_HOLE (1U << 1)
#define NBD_CMD_FLAG_DF (1U << 2)
#define NBD_CMD_FLAG_REQ_ONE (1U << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1U << 4)

/* Structured reply chunks. */
#define NBD_REPLY_FLAG_DONE (1U << 0)
#define NBD_REPLY_TYPE_NONE 0U
#define NBD_REPLY_TYPE_OFFSET_DATA 1U
#define NBD_REPLY_TYPE_OFFSET_HOLE 2U
#define NBD_REPLY_TYPE_BLOCK_STATUS 5U
#define NBD_REPLY_TYPE_FLAG_ERROR (1U << 15)
#define NBD_REPLY_TYPE_ERROR (NBD_REPLY_TYPE_FLAG_ERROR | 1U)
#define NBD_REPLY_TYPE_ERROR_OFFSET (NBD_REPLY_TYPE_FLAG_ERROR | 2U)

/* base:allocation status flags. */
#define NBD_STATE_HOLE (1U << 0)
#define NBD_STATE_ZERO (1U << 1)

/* Error values of the transmission phase. */
#define NBD_EPERM 1U
#define NBD_EIO 5U
#define NBD_ENOMEM 12U
#define NBD_EINVAL 22U
#define NBD_ENOSPC 28U
#define NBD_EOVERFLOW 75U
#define NBD_ENOTSUP 95U
#define NBD_ESHUTDOWN 108U

/* Sizes of the fixed parts. */
#define NBD_GREETING_LEN 18 /* NBDMAGIC, IHAVEOPT, handshake flags */
#define NBD_OPT_HDR_LEN 16
#define NBD_OPT_REPLY_HDR_LEN 20
#define NBD_REQUEST_LEN 28
#define NBD_SIMPLE_REPLY_LEN 16
#define NBD_CHUNK_HDR_LEN 20
#define NBD_REPLY_MAGIC_LEN 4 /* both reply kinds start with their magic */

/* Limits from the protocol document. */
#define NBD_MAX_STRING 4096       /* names, messages */
#define NBD_MAX_MIN_BLOCK 65536   /* largest legal minimum block size */
#define NBD_DEFAULT_MAX_PAYLOAD (32U << 20)

static inline void nbd_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void nbd_put32(uint8_t *p, uint32_t v)
{
	nbd_put16(p, (uint16_t)(v >> 16));
	nbd_put16(p + 2, (uint16_t)v);
}

static inline void nbd_put64(uint8_t *p, uint64_t v)
{
	nbd_put32(p, (uint32_t)(v >> 32));
	nbd_put32(p + 4, (uint32_t)v);
}

static inline uint16_t nbd_get16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t nbd_get32(const uint8_t *p)
{
	return (uint32_t)nbd_get16(p) << 16 | nbd_get16(p + 2);
}

static inline uint64_t nbd_get64(const uint8_t *p)
{
	return (uint64_t)nbd_get32(p) << 32 | nbd_get32(p + 4);
}

/* The server's first message of the newstyle handshake. */
struct nbd_greeting {
	uint16_t flags; /* handshake flags */
};

/* A reply to an option, without its payload. */
struct nbd_opt_reply {
	uint32_t option; /* the option this answers */
	uint32_t type;   /* NBD_REP_* */
	uint32_t len;    /* payload length that follows */
};

/* What NBD_REP_INFO replies told about an export. */
struct nbd_export_info {
	bool has_export;     /* NBD_INFO_EXPORT seen */
	uint64_t size;
	uint16_t eflags;     /* transmission flags */
	bool has_block_size; /* NBD_INFO_BLOCK_SIZE seen */
	uint32_t min_block;
	uint32_t pref_block;
	uint32_t max_block;
};

/* A transmission request header. */
struct nbd_request {
	uint32_t magic; /* NBD_REQUEST_MAGIC unless a test wants it wrong */
	uint16_t flags;
	uint16_t type;
	uint64_t cookie;
	uint64_t offset;
	uint32_t len;
};

/* A simple reply header, or a structured reply chunk header. */
struct nbd_reply_hdr {
	bool structured;
	uint32_t error;  /* simple replies only */
	uint16_t flags;  /* chunks only: NBD_REPLY_FLAG_DONE */
	uint16_t type;   /* chunks only: NBD_REPLY_TYPE_* */
	uint64_t cookie;
	uint32_t len;    /* chunks only: payload length */
};

/* One error chunk's payload (NBD_REPLY_TYPE_ERROR and _ERROR_OFFSET). */
struct nbd_error_chunk {
	uint32_t error;
	uint16_t msg_len;
	const uint8_t *msg; /* points into the decoded buffer */
	bool has_offset;
	uint64_t offset;
};

int nbd_greeting_decode(const uint8_t *buf, struct nbd_greeting *g);

void nbd_opt_hdr_encode(uint8_t *buf, uint64_t magic, uint32_t option, uint32_t len);

int nbd_opt_reply_hdr_decode(const uint8_t *buf, struct nbd_opt_reply *r);

int nbd_info_request_encode(uint8_t *buf, size_t cap, const char *name,
			    const uint16_t *infos, unsigned int n_infos);

int nbd_meta_request_encode(uint8_t *buf, size_t cap, const char *name,
			    const char *const *queries, unsigned int n_queries);

int nbd_info_reply_decode(const uint8_t *p, uint32_t len, struct nbd_export_info *ei);

int nbd_block_size_check(uint32_t min_block, uint32_t pref_block, uint32_t max_block);

void nbd_request_encode(uint8_t *buf, const struct nbd_request *rq);

int nbd_reply_hdr_len(const uint8_t *magic);

int nbd_reply_hdr_decode(const uint8_t *buf, size_t len, struct nbd_reply_hdr *h);

int nbd_error_chunk_decode(const uint8_t *p, uint32_t len, uint16_t type,
			   struct nbd_error_chunk *e);

const char *nbd_rep_name(uint32_t type);

const char *nbd_err_name(uint32_t err);

const char *nbd_cmd_name(uint16_t type);

#endif

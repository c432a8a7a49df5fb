/*
 * Encoding and decoding of NBD handshake and transmission messages over
 * buffers (see nbd_wire.h).  Decoders check every length against the
 * protocol document and return -EPROTO for what it does not allow.
 */
#include "nbd_wire.h"

#include <errno.h>
#include <string.h>

/* Decode the 18-byte greeting; -EPROTO unless it is a newstyle one. */
int nbd_greeting_decode(const uint8_t *buf, struct nbd_greeting *g)
{
	if (nbd_get64(buf) != NBD_INIT_MAGIC || nbd_get64(buf + 8) != NBD_OPT_MAGIC)
		return -EPROTO;
	g->flags = nbd_get16(buf + 16);
	return 0;
}

/*
 * Encode an option header into buf (NBD_OPT_HDR_LEN bytes).  The magic and
 * the length are parameters so that tests can send wrong ones.
 */
void nbd_opt_hdr_encode(uint8_t *buf, uint64_t magic, uint32_t option, uint32_t len)
{
	nbd_put64(buf, magic);
	nbd_put32(buf + 8, option);
	nbd_put32(buf + 12, len);
}

/* Decode an option reply header (NBD_OPT_REPLY_HDR_LEN bytes). */
int nbd_opt_reply_hdr_decode(const uint8_t *buf, struct nbd_opt_reply *r)
{
	if (nbd_get64(buf) != NBD_REP_MAGIC)
		return -EPROTO;
	r->option = nbd_get32(buf + 8);
	r->type = nbd_get32(buf + 12);
	r->len = nbd_get32(buf + 16);
	return 0;
}

/*
 * Encode the data of NBD_OPT_INFO or NBD_OPT_GO: the export name and a list
 * of information requests.  Returns the length written, -EINVAL for a name
 * the protocol does not allow, -ENOSPC if buf is too small.
 */
int nbd_info_request_encode(uint8_t *buf, size_t cap, const char *name,
			    const uint16_t *infos, unsigned int n_infos)
{
	size_t name_len = strlen(name);
	size_t need = 4 + name_len + 2 + 2 * (size_t)n_infos;

	if (name_len > NBD_MAX_STRING || n_infos > UINT16_MAX)
		return -EINVAL;
	if (need > cap || need > INT32_MAX)
		return -ENOSPC;
	nbd_put32(buf, (uint32_t)name_len);
	memcpy(buf + 4, name, name_len);
	nbd_put16(buf + 4 + name_len, (uint16_t)n_infos);
	for (unsigned int i = 0; i < n_infos; i++)
		nbd_put16(buf + 6 + name_len + 2 * i, infos[i]);
	return (int)need;
}

/*
 * Encode the data of NBD_OPT_LIST_META_CONTEXT or NBD_OPT_SET_META_CONTEXT:
 * the export name and the queries.  Returns as nbd_info_request_encode().
 */
int nbd_meta_request_encode(uint8_t *buf, size_t cap, const char *name,
			    const char *const *queries, unsigned int n_queries)
{
	size_t name_len = strlen(name);
	size_t need = 4 + name_len + 4;
	uint8_t *p;

	if (name_len > NBD_MAX_STRING)
		return -EINVAL;
	for (unsigned int i = 0; i < n_queries; i++) {
		size_t q = strlen(queries[i]);

		if (q > NBD_MAX_STRING)
			return -EINVAL;
		need += 4 + q;
	}
	if (need > cap || need > INT32_MAX)
		return -ENOSPC;
	nbd_put32(buf, (uint32_t)name_len);
	memcpy(buf + 4, name, name_len);
	nbd_put32(buf + 4 + name_len, n_queries);
	p = buf + 8 + name_len;
	for (unsigned int i = 0; i < n_queries; i++) {
		size_t q = strlen(queries[i]);

		nbd_put32(p, (uint32_t)q);
		memcpy(p + 4, queries[i], q);
		p += 4 + q;
	}
	return (int)need;
}

/*
 * Decode the payload of one NBD_REP_INFO into ei.  Returns the information
 * type (types this client does not know are skipped, as the protocol
 * requires), or -EPROTO if the length is wrong for the type.
 */
int nbd_info_reply_decode(const uint8_t *p, uint32_t len, struct nbd_export_info *ei)
{
	uint16_t type;

	if (len < 2)
		return -EPROTO;
	type = nbd_get16(p);
	switch (type) {
	case NBD_INFO_EXPORT:
		if (len != 12)
			return -EPROTO;
		ei->has_export = true;
		ei->size = nbd_get64(p + 2);
		ei->eflags = nbd_get16(p + 10);
		break;
	case NBD_INFO_BLOCK_SIZE:
		if (len != 14)
			return -EPROTO;
		ei->has_block_size = true;
		ei->min_block = nbd_get32(p + 2);
		ei->pref_block = nbd_get32(p + 6);
		ei->max_block = nbd_get32(p + 10);
		break;
	default:
		break;
	}
	return type;
}

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

/*
 * Check advertised size constraints against the rules of "Size
 * constraints": the minimum a power of 2 no larger than 64 KiB, the
 * preferred a power of 2 at least max(minimum, 512), the maximum at least
 * the preferred.  Returns 0 or -EPROTO.
 */
int nbd_block_size_check(uint32_t min_block, uint32_t pref_block, uint32_t max_block)
{
	uint32_t floor = min_block > 512 ? min_block : 512;

	if (!is_pow2(min_block) || min_block > NBD_MAX_MIN_BLOCK)
		return -EPROTO;
	if (!is_pow2(pref_block) || pref_block < floor)
		return -EPROTO;
	if (max_block < pref_block)
		return -EPROTO;
	return 0;
}

/* Encode a request header into buf (NBD_REQUEST_LEN bytes). */
void nbd_request_encode(uint8_t *buf, const struct nbd_request *rq)
{
	nbd_put32(buf, rq->magic);
	nbd_put16(buf + 4, rq->flags);
	nbd_put16(buf + 6, rq->type);
	nbd_put64(buf + 8, rq->cookie);
	nbd_put64(buf + 16, rq->offset);
	nbd_put32(buf + 24, rq->len);
}

/*
 * Given the first NBD_REPLY_MAGIC_LEN bytes of a reply, the length of its
 * whole header: NBD_SIMPLE_REPLY_LEN or NBD_CHUNK_HDR_LEN; -EPROTO for
 * any other magic.
 */
int nbd_reply_hdr_len(const uint8_t *magic)
{
	switch (nbd_get32(magic)) {
	case NBD_SIMPLE_REPLY_MAGIC:
		return NBD_SIMPLE_REPLY_LEN;
	case NBD_STRUCTURED_REPLY_MAGIC:
		return NBD_CHUNK_HDR_LEN;
	default:
		return -EPROTO;
	}
}

/* Decode a whole reply header of len bytes (as nbd_reply_hdr_len() said). */
int nbd_reply_hdr_decode(const uint8_t *buf, size_t len, struct nbd_reply_hdr *h)
{
	int want = nbd_reply_hdr_len(buf);

	if (want < 0 || (size_t)want != len)
		return -EPROTO;
	memset(h, 0, sizeof(*h));
	if (want == NBD_SIMPLE_REPLY_LEN) {
		h->error = nbd_get32(buf + 4);
		h->cookie = nbd_get64(buf + 8);
		return 0;
	}
	h->structured = true;
	h->flags = nbd_get16(buf + 4);
	h->type = nbd_get16(buf + 6);
	h->cookie = nbd_get64(buf + 8);
	h->len = nbd_get32(buf + 16);
	return 0;
}

/*
 * Decode the payload of an error chunk (any type with bit 15 set: all begin
 * with error and message length).  Returns 0, or -EPROTO if the error is
 * zero or the message does not fit.
 */
int nbd_error_chunk_decode(const uint8_t *p, uint32_t len, uint16_t type,
			   struct nbd_error_chunk *e)
{
	uint32_t fixed = type == NBD_REPLY_TYPE_ERROR_OFFSET ? 14 : 6;

	if (len < fixed)
		return -EPROTO;
	memset(e, 0, sizeof(*e));
	e->error = nbd_get32(p);
	e->msg_len = nbd_get16(p + 4);
	if (e->error == 0 || e->msg_len > len - fixed || e->msg_len > NBD_MAX_STRING)
		return -EPROTO;
	e->msg = p + 6;
	if (type == NBD_REPLY_TYPE_ERROR_OFFSET) {
		e->has_offset = true;
		e->offset = nbd_get64(p + 6 + e->msg_len);
	}
	return 0;
}

/* Names for messages; never NULL. */
const char *nbd_rep_name(uint32_t type)
{
	switch (type) {
	case NBD_REP_ACK: return "NBD_REP_ACK";
	case NBD_REP_SERVER: return "NBD_REP_SERVER";
	case NBD_REP_INFO: return "NBD_REP_INFO";
	case NBD_REP_META_CONTEXT: return "NBD_REP_META_CONTEXT";
	case NBD_REP_ERR_UNSUP: return "NBD_REP_ERR_UNSUP";
	case NBD_REP_ERR_POLICY: return "NBD_REP_ERR_POLICY";
	case NBD_REP_ERR_INVALID: return "NBD_REP_ERR_INVALID";
	case NBD_REP_ERR_PLATFORM: return "NBD_REP_ERR_PLATFORM";
	case NBD_REP_ERR_TLS_REQD: return "NBD_REP_ERR_TLS_REQD";
	case NBD_REP_ERR_UNKNOWN: return "NBD_REP_ERR_UNKNOWN";
	case NBD_REP_ERR_SHUTDOWN: return "NBD_REP_ERR_SHUTDOWN";
	case NBD_REP_ERR_BLOCK_SIZE_REQD: return "NBD_REP_ERR_BLOCK_SIZE_REQD";
	case NBD_REP_ERR_TOO_BIG: return "NBD_REP_ERR_TOO_BIG";
	default: return "unknown reply type";
	}
}

const char *nbd_err_name(uint32_t err)
{
	switch (err) {
	case 0: return "success";
	case NBD_EPERM: return "NBD_EPERM";
	case NBD_EIO: return "NBD_EIO";
	case NBD_ENOMEM: return "NBD_ENOMEM";
	case NBD_EINVAL: return "NBD_EINVAL";
	case NBD_ENOSPC: return "NBD_ENOSPC";
	case NBD_EOVERFLOW: return "NBD_EOVERFLOW";
	case NBD_ENOTSUP: return "NBD_ENOTSUP";
	case NBD_ESHUTDOWN: return "NBD_ESHUTDOWN";
	default: return "an error value the protocol does not define";
	}
}

const char *nbd_cmd_name(uint16_t type)
{
	switch (type) {
	case NBD_CMD_READ: return "NBD_CMD_READ";
	case NBD_CMD_WRITE: return "NBD_CMD_WRITE";
	case NBD_CMD_DISC: return "NBD_CMD_DISC";
	case NBD_CMD_FLUSH: return "NBD_CMD_FLUSH";
	case NBD_CMD_TRIM: return "NBD_CMD_TRIM";
	case NBD_CMD_CACHE: return "NBD_CMD_CACHE";
	case NBD_CMD_WRITE_ZEROES: return "NBD_CMD_WRITE_ZEROES";
	case NBD_CMD_BLOCK_STATUS: return "NBD_CMD_BLOCK_STATUS";
	default: return "an unknown command";
	}
}

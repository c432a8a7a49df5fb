/*
 * Encoding and decoding of MixSAN wire messages (see msg.h for the frame
 * layout).  Pure functions over buffers: no I/O, no allocation in decoders.
 */
#include "msg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "crc32c.h"

/* Wire status <-> errno: the one place each way. */
static const struct {
	int32_t wire;
	int err;
} status_table[] = {
	{1, ENOENT},   {2, EIO},       {3, EINVAL},    {4, EEXIST},
	{5, ENODATA},  {6, EAGAIN},    {7, ENOSPC},    {8, EMSGSIZE},
	{9, EPERM},    {10, EACCES},   {11, ESTALE},   {12, EBADMSG},
	{13, ENOTSUP}, {14, ETIMEDOUT}, {15, ERANGE},  {16, ENOTEMPTY},
	{17, EBUSY},   {18, ENOMEM},   {19, EPROTO},   {20, E2BIG},
	{21, EROFS},   {22, ECANCELED}, {23, ENOTCONN}, {24, EFBIG},
	{25, EKEYREJECTED}, {26, EKEYEXPIRED}, {27, EKEYREVOKED}, {28, EXDEV},
	{29, MX_EWBLOST},
};

int32_t mx_errno_to_wire(int err)
{
	if (err >= 0)
		return 0;
	for (size_t i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++)
		if (status_table[i].err == -err)
			return status_table[i].wire;
	return 2; /* EIO: an error we have no code for */
}

int mx_wire_to_errno(int32_t status)
{
	if (status == 0)
		return 0;
	for (size_t i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++)
		if (status_table[i].wire == status)
			return -status_table[i].err;
	return -EIO;
}

/* Frame header --------------------------------------------------------- */

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

void mx_msg_hdr_encode(uint8_t out[MX_MSG_HDR_LEN], uint16_t type, uint64_t tid,
		       const void *payload, uint32_t len)
{
	mx_msg_hdr_encode_sum(out, type, tid, len, mx_crc32c(0, payload, len));
}

void mx_msg_hdr_encode_sum(uint8_t out[MX_MSG_HDR_LEN], uint16_t type, uint64_t tid,
			   uint32_t len, uint32_t payload_crc)
{
	le32(out, MX_MSG_MAGIC);
	out[4] = MX_PROTO_VERSION & 0xff;
	out[5] = MX_PROTO_VERSION >> 8;
	out[6] = (uint8_t)type;
	out[7] = (uint8_t)(type >> 8);
	le32(out + 8, (uint32_t)tid);
	le32(out + 12, (uint32_t)(tid >> 32));
	le32(out + 16, len);
	le32(out + 20, 0);
	le32(out + 24, payload_crc);
	le32(out + 28, mx_crc32c(0, out, 28));
}

int mx_msg_hdr_decode(const uint8_t in[MX_MSG_HDR_LEN], struct mx_msg_hdr *h)
{
	if (rd32(in) != MX_MSG_MAGIC)
		return -EBADMSG;
	if (rd32(in + 28) != mx_crc32c(0, in, 28))
		return -EBADMSG;
	h->version = (uint16_t)(in[4] | in[5] << 8);
	h->type = (uint16_t)(in[6] | in[7] << 8);
	h->tid = rd32(in + 8) | (uint64_t)rd32(in + 12) << 32;
	h->len = rd32(in + 16);
	h->flags = rd32(in + 20);
	h->payload_crc = rd32(in + 24);
	if (h->version != MX_PROTO_VERSION)
		return -EPROTO;
	if (h->len > MX_MSG_MAX_PAYLOAD)
		return -EMSGSIZE;
	return 0;
}

int mx_msg_payload_check(const struct mx_msg_hdr *h, const void *payload)
{
	return mx_crc32c(0, payload, h->len) == h->payload_crc ? 0 : -EBADMSG;
}

/* Strings on the wire: u16 length including a terminating NUL, the bytes,
 * the NUL.  An empty or NULL string is length 1. */
static void put_cstr(struct mx_wbuf *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n >= UINT16_MAX) {
		w->err = -EINVAL;
		return;
	}
	mx_put_u16(w, (uint16_t)(n + 1));
	mx_put_bytes(w, s, n);
	mx_put_u8(w, 0);
}

static const char *get_cstr(struct mx_rbuf *r)
{
	uint16_t n = mx_get_u16(r);
	const char *s;

	if (r->err || n == 0) {
		mx_rbuf_fail(r);
		return "";
	}
	s = mx_get_bytes(r, n);
	if (!s || s[n - 1] != '\0' || memchr(s, '\0', n - 1)) {
		mx_rbuf_fail(r);
		return "";
	}
	return s;
}

static int finish(struct mx_rbuf *r)
{
	/* Trailing bytes are allowed: a newer peer may append fields. */
	return r->err ? -EBADMSG : 0;
}

/* Monitor messages ----------------------------------------------------- */

void mx_enc_get_map(struct mx_wbuf *w, const struct mx_msg_get_map *m)
{
	mx_put_u64(w, m->have_epoch);
	mx_put_u8(w, m->subscribe);
	mx_put_u64(w, m->want_epoch);
}

int mx_dec_get_map(const void *p, uint32_t len, struct mx_msg_get_map *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->have_epoch = mx_get_u64(&r);
	m->subscribe = mx_get_u8(&r) != 0;
	m->want_epoch = mx_rbuf_left(&r) >= 8 ? mx_get_u64(&r) : 0;
	return finish(&r);
}

void mx_enc_map(struct mx_wbuf *w, const struct mx_msg_map *m)
{
	mx_put_i32(w, m->status);
	mx_put_u64(w, m->epoch);
	mx_put_blob(w, m->map, m->map_len);
}

int mx_dec_map(const void *p, uint32_t len, struct mx_msg_map *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->status = mx_get_i32(&r);
	m->epoch = mx_get_u64(&r);
	m->map = mx_get_blob(&r, &m->map_len, MX_MSG_MAX_PAYLOAD);
	return finish(&r);
}

void mx_enc_osd_boot(struct mx_wbuf *w, const struct mx_msg_osd_boot *m)
{
	mx_put_i32(w, m->osd_id);
	mx_put_bytes(w, m->uuid, 16);
	put_cstr(w, m->addr);
	mx_put_u32(w, m->weight);
	put_cstr(w, m->location);
	put_cstr(w, m->device_class);
}

int mx_dec_osd_boot(const void *p, uint32_t len, struct mx_msg_osd_boot *m)
{
	struct mx_rbuf r;
	const void *u;

	mx_rbuf_init(&r, p, len);
	m->osd_id = mx_get_i32(&r);
	u = mx_get_bytes(&r, 16);
	if (u)
		memcpy(m->uuid, u, 16);
	m->addr = get_cstr(&r);
	m->weight = mx_get_u32(&r);
	m->location = get_cstr(&r);
	m->device_class = get_cstr(&r);
	return finish(&r);
}

void mx_enc_osd_boot_reply(struct mx_wbuf *w, const struct mx_msg_osd_boot_reply *m)
{
	mx_put_i32(w, m->status);
	mx_put_i32(w, m->osd_id);
	mx_put_u64(w, m->epoch);
	put_cstr(w, m->message);
}

int mx_dec_osd_boot_reply(const void *p, uint32_t len, struct mx_msg_osd_boot_reply *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->status = mx_get_i32(&r);
	m->osd_id = mx_get_i32(&r);
	m->epoch = mx_get_u64(&r);
	m->message = get_cstr(&r);
	return finish(&r);
}

void mx_enc_command(struct mx_wbuf *w, const struct mx_msg_command *m)
{
	put_cstr(w, m->prefix);
	mx_put_u16(w, m->n_args);
	for (uint16_t i = 0; i < m->n_args; i++) {
		put_cstr(w, m->keys[i]);
		put_cstr(w, m->vals[i]);
	}
}

int mx_dec_command(const void *p, uint32_t len, struct mx_msg_command *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->prefix = get_cstr(&r);
	m->n_args = mx_get_u16(&r);
	if (m->n_args > MX_CMD_MAX_ARGS)
		mx_rbuf_fail(&r);
	for (uint16_t i = 0; i < m->n_args && !r.err; i++) {
		m->keys[i] = get_cstr(&r);
		m->vals[i] = get_cstr(&r);
	}
	return finish(&r);
}

void mx_enc_command_reply(struct mx_wbuf *w, const struct mx_msg_command_reply *m)
{
	mx_put_i32(w, m->status);
	mx_put_u64(w, m->epoch);
	put_cstr(w, m->message);
}

int mx_dec_command_reply(const void *p, uint32_t len, struct mx_msg_command_reply *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->status = mx_get_i32(&r);
	m->epoch = mx_get_u64(&r);
	m->message = get_cstr(&r);
	return finish(&r);
}

void mx_enc_osd_failure(struct mx_wbuf *w, const struct mx_msg_osd_failure *m)
{
	mx_put_i32(w, m->reporter);
	mx_put_i32(w, m->target);
	mx_put_u64(w, m->target_incarnation);
	mx_put_u64(w, m->epoch);
	mx_put_u32(w, m->silent_ms);
	mx_put_u32(w, m->flags);
}

int mx_dec_osd_failure(const void *p, uint32_t len, struct mx_msg_osd_failure *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->reporter = mx_get_i32(&r);
	m->target = mx_get_i32(&r);
	m->target_incarnation = mx_get_u64(&r);
	m->epoch = mx_get_u64(&r);
	m->silent_ms = mx_get_u32(&r);
	m->flags = mx_get_u32(&r);
	return finish(&r);
}

void mx_enc_pong(struct mx_wbuf *w, const struct mx_msg_pong *m)
{
	mx_put_u64(w, m->epoch);
	mx_put_u64(w, m->lease_ns);
}

int mx_dec_pong(const void *p, uint32_t len, struct mx_msg_pong *m)
{
	struct mx_rbuf r;

	memset(m, 0, sizeof(*m));
	if (len == 0)
		return 0;
	mx_rbuf_init(&r, p, len);
	m->epoch = mx_get_u64(&r);
	m->lease_ns = mx_get_u64(&r);
	return finish(&r);
}

void mx_enc_osd_beacon(struct mx_wbuf *w, const struct mx_msg_osd_beacon *m)
{
	mx_put_i32(w, m->osd_id);
	mx_put_u64(w, m->incarnation);
	mx_put_u64(w, m->epoch);
}

int mx_dec_osd_beacon(const void *p, uint32_t len, struct mx_msg_osd_beacon *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->osd_id = mx_get_i32(&r);
	m->incarnation = mx_get_u64(&r);
	m->epoch = mx_get_u64(&r);
	return finish(&r);
}

/* PG statistics -------------------------------------------------------- */

char *mx_pg_state_name(uint32_t state, char *buf, size_t sz)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
		{MX_PGS_UNKNOWN, "unknown"},       {MX_PGS_STALE, "stale"},
		{MX_PGS_INCOMPLETE, "incomplete"}, {MX_PGS_PEERING, "peering"},
		{MX_PGS_ACTIVATING, "activating"}, {MX_PGS_ACTIVE, "active"},
		{MX_PGS_CLEAN, "clean"},           {MX_PGS_RECOVERING, "recovering"},
		{MX_PGS_BACKFILLING, "backfilling"}, {MX_PGS_UNDERSIZED, "undersized"},
		{MX_PGS_DEGRADED, "degraded"},     {MX_PGS_REMAPPED, "remapped"},
		{MX_PGS_INCONSISTENT, "inconsistent"}, {MX_PGS_SCRUBBING, "scrubbing"},
		{MX_PGS_DEEP, "deep"},
	};
	size_t at = 0;

	if (!sz)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int k;

		if (!(state & names[i].bit))
			continue;
		k = snprintf(buf + at, sz - at, "%s%s", at ? "+" : "", names[i].name);
		if (k < 0 || (size_t)k >= sz - at)
			break;
		at += (size_t)k;
	}
	if (!at)
		snprintf(buf, sz, "inactive");
	return buf;
}

size_t mx_enc_pg_stats_head(struct mx_wbuf *w, const struct mx_msg_pg_stats *m)
{
	size_t at;

	mx_put_i32(w, m->osd_id);
	mx_put_u64(w, m->incarnation);
	mx_put_u64(w, m->epoch);
	mx_put_u64(w, m->stamp_ms);
	mx_put_u64(w, m->fs_total);
	mx_put_u64(w, m->fs_used);
	mx_put_u64(w, m->fs_avail);
	at = w->len;
	mx_put_u32(w, 0); /* n */
	return at;
}

/* A record: u16 length of what follows, then the fields; a decoder skips
 * what it does not know at the end of a record. */
#define PG_STAT_LEN (4 + 4 + 8 + 4 + 8 * 8)

void mx_enc_pg_stat(struct mx_wbuf *w, const struct mx_pg_stat *s)
{
	mx_put_u16(w, PG_STAT_LEN);
	mx_put_i32(w, s->pool);
	mx_put_u32(w, s->pg);
	mx_put_u64(w, s->interval);
	mx_put_u32(w, s->state & MX_PGS_WIRE_MASK);
	mx_put_u64(w, s->objects);
	mx_put_u64(w, s->bytes);
	mx_put_u64(w, s->degraded);
	mx_put_u64(w, s->misplaced);
	mx_put_u64(w, s->recovered_objects);
	mx_put_u64(w, s->recovered_bytes);
	mx_put_u64(w, s->scrub_ms);
	mx_put_u64(w, s->deep_scrub_ms);
}

void mx_enc_pg_stats_end(struct mx_wbuf *w, size_t at, uint32_t n)
{
	if (w->err || at + 4 > w->len)
		return;
	mx_wbuf_patch_u32(w, at, n);
}

int mx_dec_pg_stats(const void *p, uint32_t len, struct mx_msg_pg_stats *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->osd_id = mx_get_i32(&r);
	m->incarnation = mx_get_u64(&r);
	m->epoch = mx_get_u64(&r);
	m->stamp_ms = mx_get_u64(&r);
	m->fs_total = mx_get_u64(&r);
	m->fs_used = mx_get_u64(&r);
	m->fs_avail = mx_get_u64(&r);
	m->n = mx_get_u32(&r);
	/* Every record takes at least its length and the known fields. */
	if (!r.err && m->n > mx_rbuf_left(&r) / (2 + PG_STAT_LEN))
		mx_rbuf_fail(&r);
	m->entries = r;
	return finish(&r);
}

int mx_pg_stat_next(struct mx_rbuf *r, struct mx_pg_stat *s)
{
	uint16_t n = mx_get_u16(r);
	struct mx_rbuf e;
	const void *body;

	if (r->err || n < PG_STAT_LEN)
		goto bad;
	body = mx_get_bytes(r, n);
	if (!body)
		goto bad;
	mx_rbuf_init(&e, body, n);
	s->pool = mx_get_i32(&e);
	s->pg = mx_get_u32(&e);
	s->interval = mx_get_u64(&e);
	s->state = mx_get_u32(&e) & MX_PGS_WIRE_MASK;
	s->objects = mx_get_u64(&e);
	s->bytes = mx_get_u64(&e);
	s->degraded = mx_get_u64(&e);
	s->misplaced = mx_get_u64(&e);
	s->recovered_objects = mx_get_u64(&e);
	s->recovered_bytes = mx_get_u64(&e);
	s->scrub_ms = mx_get_u64(&e);
	s->deep_scrub_ms = mx_get_u64(&e);
	if (e.err)
		goto bad;
	return 0;
bad:
	mx_rbuf_fail(r);
	return -EBADMSG;
}

/* OSD messages --------------------------------------------------------- */

static bool op_needs_name(uint8_t op)
{
	return op == MX_OP_GETXATTR || op == MX_OP_SETXATTR || op == MX_OP_RMXATTR ||
	       op == MX_OP_CMPXATTR;
}

static bool op_has_data(uint8_t op)
{
	return op == MX_OP_WRITE || op == MX_OP_WRITEFULL || op == MX_OP_APPEND ||
	       op == MX_OP_SETXATTR || op == MX_OP_CMPXATTR;
}

static bool op_known(uint8_t op)
{
	return (op >= MX_OP_READ && op <= MX_OP_LISTXATTRS) ||
	       (op >= MX_OP_WRITE && op <= MX_OP_CMPXATTR) || op == MX_OP_FLUSH;
}

void mx_enc_osd_op(struct mx_wbuf *w, const struct mx_msg_osd_op *m)
{
	mx_put_u64(w, m->epoch);
	mx_put_i32(w, m->pool);
	mx_put_u32(w, m->pg);
	mx_put_u64(w, m->client_id);
	mx_put_u32(w, m->flags);
	mx_put_blob(w, m->name, m->name_len);
	mx_put_u8(w, m->n_ops);
	for (uint8_t i = 0; i < m->n_ops; i++) {
		const struct mx_osd_op *o = &m->ops[i];

		mx_put_u8(w, o->op);
		mx_put_u32(w, o->flags);
		mx_put_u64(w, o->off);
		mx_put_u32(w, o->len);
		if (op_needs_name(o->op))
			put_cstr(w, o->xname);
		if (op_has_data(o->op))
			mx_put_blob(w, o->data, o->data_len);
	}
	if (m->flags & MX_OSD_OP_ROUTED)
		mx_put_u64(w, m->route_epoch);
}

int mx_dec_osd_op(const void *p, uint32_t len, struct mx_msg_osd_op *m)
{
	struct mx_rbuf r;
	bool reads = false, writes = false, flush = false;

	mx_rbuf_init(&r, p, len);
	m->epoch = mx_get_u64(&r);
	m->pool = mx_get_i32(&r);
	m->pg = mx_get_u32(&r);
	m->client_id = mx_get_u64(&r);
	m->flags = mx_get_u32(&r);
	m->name = mx_get_blob(&r, &m->name_len, 1024);
	m->n_ops = mx_get_u8(&r);
	if (r.err || m->n_ops == 0 || m->n_ops > MX_MSG_MAX_OPS || m->name_len == 0 ||
	    memchr(m->name, '\0', m->name_len))
		return -EBADMSG;
	for (uint8_t i = 0; i < m->n_ops && !r.err; i++) {
		struct mx_osd_op *o = &m->ops[i];

		memset(o, 0, sizeof(*o));
		o->op = mx_get_u8(&r);
		o->flags = mx_get_u32(&r);
		o->off = mx_get_u64(&r);
		o->len = mx_get_u32(&r);
		if (!op_known(o->op)) {
			mx_rbuf_fail(&r);
			break;
		}
		if (op_needs_name(o->op))
			o->xname = get_cstr(&r);
		if (op_has_data(o->op))
			o->data = mx_get_blob(&r, &o->data_len, MX_MSG_MAX_DATA);
		if (o->op == MX_OP_READ && o->len > MX_MSG_MAX_DATA)
			mx_rbuf_fail(&r);
		if (o->op == MX_OP_FLUSH)
			flush = true;
		else if (mx_op_is_write(o->op))
			writes = true;
		else
			reads = true;
	}
	if (reads && writes)
		return -EBADMSG; /* a request either reads or writes */
	if (flush && m->n_ops != 1)
		return -EBADMSG; /* a flush is alone */
	if ((m->flags & ~(MX_OSD_OP_REPLICA_READ | MX_OSD_OP_WRITEBACK | MX_OSD_OP_ROUTED)) ||
	    ((m->flags & MX_OSD_OP_REPLICA_READ) && !reads) ||
	    ((m->flags & MX_OSD_OP_WRITEBACK) && !writes))
		return -EBADMSG;
	m->route_epoch = m->flags & MX_OSD_OP_ROUTED ? mx_get_u64(&r) : m->epoch;
	return finish(&r);
}

void mx_enc_osd_op_reply(struct mx_wbuf *w, const struct mx_msg_osd_op_reply *m)
{
	mx_put_i32(w, m->status);
	mx_put_u64(w, m->epoch);
	mx_put_u64(w, m->ver_epoch);
	mx_put_u64(w, m->ver_seq);
	mx_put_u8(w, m->n_ops);
	for (uint8_t i = 0; i < m->n_ops; i++) {
		mx_put_i32(w, m->res[i].rval);
		mx_put_blob(w, m->res[i].data, m->res[i].data_len);
	}
}

int mx_dec_osd_op_reply(const void *p, uint32_t len, struct mx_msg_osd_op_reply *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->status = mx_get_i32(&r);
	m->epoch = mx_get_u64(&r);
	m->ver_epoch = mx_get_u64(&r);
	m->ver_seq = mx_get_u64(&r);
	m->n_ops = mx_get_u8(&r);
	if (m->n_ops > MX_MSG_MAX_OPS)
		return -EBADMSG;
	for (uint8_t i = 0; i < m->n_ops && !r.err; i++) {
		m->res[i].rval = mx_get_i32(&r);
		m->res[i].data = mx_get_blob(&r, &m->res[i].data_len, MX_MSG_MAX_PAYLOAD);
	}
	return finish(&r);
}

void mx_enc_osd_op_reply_head(struct mx_wbuf *w, int32_t status, uint64_t epoch,
			      uint64_t ver_epoch, uint64_t ver_seq, uint8_t n_ops)
{
	mx_put_i32(w, status);
	mx_put_u64(w, epoch);
	mx_put_u64(w, ver_epoch);
	mx_put_u64(w, ver_seq);
	mx_put_u8(w, n_ops);
}

void mx_enc_osd_op_result(struct mx_wbuf *w, int32_t rval, const void *data, uint32_t len)
{
	mx_put_i32(w, rval);
	mx_put_blob(w, data, len);
}

uint8_t *mx_enc_osd_op_result_reserve(struct mx_wbuf *w, int32_t rval, uint32_t max,
				      size_t *at)
{
	mx_put_i32(w, rval);
	*at = w->len;
	mx_put_u32(w, 0);
	return mx_wbuf_reserve(w, max);
}

void mx_enc_osd_op_result_finish(struct mx_wbuf *w, size_t at, int32_t rval, uint32_t len)
{
	if (w->err || at < 4 || at + 4 > w->len)
		return;
	w->len = at + 4 + len;
	mx_wbuf_patch_u32(w, at - 4, (uint32_t)rval);
	mx_wbuf_patch_u32(w, at, len);
}

void mx_osd_stat_encode(struct mx_wbuf *w, const struct mx_osd_stat *s)
{
	mx_put_u64(w, s->size);
	mx_put_u64(w, s->ver_epoch);
	mx_put_u64(w, s->ver_seq);
	mx_put_u64(w, s->mtime_ms);
}

int mx_osd_stat_decode(const void *data, uint32_t len, struct mx_osd_stat *s)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, data, len);
	s->size = mx_get_u64(&r);
	s->ver_epoch = mx_get_u64(&r);
	s->ver_seq = mx_get_u64(&r);
	s->mtime_ms = mx_get_u64(&r);
	return finish(&r);
}

/* Replication: txn op types as in osd/store.h (1..6). */
#define REPOP_WRITE 1
#define REPOP_SETXATTR 4
#define REPOP_RMXATTR 5
#define REPOP_MAX 6

void mx_enc_repop(struct mx_wbuf *w, const struct mx_msg_repop *m)
{
	mx_put_u64(w, m->epoch);
	mx_put_i32(w, m->pool);
	mx_put_u32(w, m->pg);
	mx_put_blob(w, m->name, m->name_len);
	mx_put_u64(w, m->ver_epoch);
	mx_put_u64(w, m->ver_seq);
	mx_put_u8(w, m->n_ops);
	for (uint8_t i = 0; i < m->n_ops; i++) {
		const struct mx_repop_op *o = &m->ops[i];

		mx_put_u8(w, o->type);
		mx_put_u64(w, o->off);
		mx_put_u64(w, o->size);
		if (o->type == REPOP_SETXATTR || o->type == REPOP_RMXATTR)
			put_cstr(w, o->xname);
		if (o->type == REPOP_WRITE || o->type == REPOP_SETXATTR)
			mx_put_blob(w, o->data, o->data_len);
	}
	mx_put_u64(w, m->tail.interval);
	mx_put_u32(w, m->tail.flags);
	mx_put_u64(w, m->tail.client_id);
	mx_put_u64(w, m->tail.tid);
}

void mx_repop_clear_log(uint8_t *p, size_t len)
{
	/* The tail: u64 interval, u32 flags, u64 client_id, u64 tid. */
	uint8_t *f;

	if (len < 28)
		return;
	f = p + len - 20;
	le32(f, rd32(f) & ~MX_REPOP_LOG);
}

int mx_dec_repop(const void *p, uint32_t len, struct mx_msg_repop *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->epoch = mx_get_u64(&r);
	m->pool = mx_get_i32(&r);
	m->pg = mx_get_u32(&r);
	m->name = mx_get_blob(&r, &m->name_len, 1024);
	m->ver_epoch = mx_get_u64(&r);
	m->ver_seq = mx_get_u64(&r);
	m->n_ops = mx_get_u8(&r);
	if (r.err || m->n_ops == 0 || m->n_ops > MX_TXN_MAX_OPS || m->name_len == 0 ||
	    memchr(m->name, '\0', m->name_len))
		return -EBADMSG;
	for (uint8_t i = 0; i < m->n_ops && !r.err; i++) {
		struct mx_repop_op *o = &m->ops[i];

		memset(o, 0, sizeof(*o));
		o->type = mx_get_u8(&r);
		o->off = mx_get_u64(&r);
		o->size = mx_get_u64(&r);
		if (o->type < 1 || o->type > REPOP_MAX) {
			mx_rbuf_fail(&r);
			break;
		}
		if (o->type == REPOP_SETXATTR || o->type == REPOP_RMXATTR)
			o->xname = get_cstr(&r);
		if (o->type == REPOP_WRITE || o->type == REPOP_SETXATTR)
			o->data = mx_get_blob(&r, &o->data_len, MX_MSG_MAX_DATA);
	}
	memset(&m->tail, 0, sizeof(m->tail));
	if (!r.err && mx_rbuf_left(&r) >= 28) {
		m->tail.interval = mx_get_u64(&r);
		m->tail.flags = mx_get_u32(&r);
		m->tail.client_id = mx_get_u64(&r);
		m->tail.tid = mx_get_u64(&r);
	}
	return finish(&r);
}

void mx_enc_repop_reply(struct mx_wbuf *w, const struct mx_msg_repop_reply *m)
{
	mx_put_i32(w, m->status);
	mx_put_u64(w, m->epoch);
}

int mx_dec_repop_reply(const void *p, uint32_t len, struct mx_msg_repop_reply *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->status = mx_get_i32(&r);
	m->epoch = mx_get_u64(&r);
	return finish(&r);
}

void mx_enc_osd_sync(struct mx_wbuf *w, const struct mx_msg_osd_sync *m)
{
	mx_put_u64(w, m->epoch);
	mx_put_i32(w, m->pool);
	mx_put_u32(w, m->pg);
}

int mx_dec_osd_sync(const void *p, uint32_t len, struct mx_msg_osd_sync *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->epoch = mx_get_u64(&r);
	m->pool = mx_get_i32(&r);
	m->pg = mx_get_u32(&r);
	return finish(&r);
}

void mx_enc_osd_list(struct mx_wbuf *w, const struct mx_msg_osd_list *m)
{
	mx_put_u64(w, m->epoch);
	mx_put_i32(w, m->pool);
	mx_put_u32(w, m->pg);
	mx_put_blob(w, m->cursor, m->cursor_len);
	mx_put_u32(w, m->max);
}

int mx_dec_osd_list(const void *p, uint32_t len, struct mx_msg_osd_list *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->epoch = mx_get_u64(&r);
	m->pool = mx_get_i32(&r);
	m->pg = mx_get_u32(&r);
	m->cursor = mx_get_blob(&r, &m->cursor_len, 1024);
	m->max = mx_get_u32(&r);
	if (!r.err && m->cursor_len && memchr(m->cursor, '\0', m->cursor_len))
		mx_rbuf_fail(&r);
	return finish(&r);
}

size_t mx_enc_list_reply_begin(struct mx_wbuf *w, int32_t status, uint64_t epoch)
{
	size_t at;

	mx_put_i32(w, status);
	mx_put_u64(w, epoch);
	at = w->len;
	mx_put_u8(w, 0);  /* done */
	mx_put_u32(w, 0); /* n */
	return at;
}

void mx_enc_list_reply_entry(struct mx_wbuf *w, const struct mx_list_entry *e)
{
	mx_put_blob(w, e->name, e->name_len);
	mx_put_u64(w, e->size);
	mx_put_u64(w, e->ver_epoch);
	mx_put_u64(w, e->ver_seq);
}

void mx_enc_list_reply_end(struct mx_wbuf *w, size_t at, uint32_t n, bool done)
{
	if (w->err || at + 5 > w->len)
		return;
	w->data[at] = done;
	mx_wbuf_patch_u32(w, at + 1, n);
}

int mx_dec_osd_list_reply(const void *p, uint32_t len, struct mx_msg_osd_list_reply *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->status = mx_get_i32(&r);
	m->epoch = mx_get_u64(&r);
	m->done = mx_get_u8(&r) != 0;
	m->n = mx_get_u32(&r);
	m->entries = r;
	return finish(&r);
}

int mx_list_next(struct mx_msg_osd_list_reply *m, struct mx_list_entry *e)
{
	struct mx_rbuf *r = &m->entries;

	e->name = mx_get_blob(r, &e->name_len, 1024);
	e->size = mx_get_u64(r);
	e->ver_epoch = mx_get_u64(r);
	e->ver_seq = mx_get_u64(r);
	return r->err ? -EBADMSG : 0;
}

void mx_enc_error_reply(struct mx_wbuf *w, const struct mx_msg_error_reply *m)
{
	mx_put_i32(w, m->status);
	put_cstr(w, m->message);
}

int mx_dec_error_reply(const void *p, uint32_t len, struct mx_msg_error_reply *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->status = mx_get_i32(&r);
	m->message = get_cstr(&r);
	return finish(&r);
}

void mx_enc_mon_redirect(struct mx_wbuf *w, const struct mx_msg_mon_redirect *m)
{
	put_cstr(w, m->leader);
	put_cstr(w, m->message);
}

int mx_dec_mon_redirect(const void *p, uint32_t len, struct mx_msg_mon_redirect *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->leader = get_cstr(&r);
	m->message = get_cstr(&r);
	return finish(&r);
}

/* Authentication -------------------------------------------------------- */

#define AUTH_NONCE 16
#define AUTH_HMAC 32
#define AUTH_TICKET_MAX 1024

void mx_enc_auth_hello(struct mx_wbuf *w, const struct mx_msg_auth_hello *m)
{
	mx_put_u8(w, m->mode);
	put_cstr(w, m->entity ? m->entity : "");
	mx_put_bytes(w, m->nonce, AUTH_NONCE);
	mx_put_blob(w, m->ticket, m->ticket_len);
}

int mx_dec_auth_hello(const void *p, uint32_t len, struct mx_msg_auth_hello *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->mode = mx_get_u8(&r);
	m->entity = get_cstr(&r);
	m->nonce = mx_get_bytes(&r, AUTH_NONCE);
	m->ticket = mx_get_blob(&r, &m->ticket_len, AUTH_TICKET_MAX);
	if (!r.err && m->mode != 1 && m->mode != 2)
		mx_rbuf_fail(&r);
	return finish(&r);
}

void mx_enc_auth_challenge(struct mx_wbuf *w, const struct mx_msg_auth_challenge *m)
{
	mx_put_bytes(w, m->nonce, AUTH_NONCE);
	mx_put_bytes(w, m->proof, AUTH_HMAC);
}

int mx_dec_auth_challenge(const void *p, uint32_t len, struct mx_msg_auth_challenge *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->nonce = mx_get_bytes(&r, AUTH_NONCE);
	m->proof = mx_get_bytes(&r, AUTH_HMAC);
	return finish(&r);
}

void mx_enc_auth_proof(struct mx_wbuf *w, const struct mx_msg_auth_proof *m)
{
	mx_put_bytes(w, m->proof, AUTH_HMAC);
}

int mx_dec_auth_proof(const void *p, uint32_t len, struct mx_msg_auth_proof *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->proof = mx_get_bytes(&r, AUTH_HMAC);
	return finish(&r);
}

void mx_enc_auth_done(struct mx_wbuf *w, const struct mx_msg_auth_done *m)
{
	mx_put_i32(w, m->status);
	put_cstr(w, m->message);
	put_cstr(w, m->caps ? m->caps : "");
	mx_put_blob(w, m->sealed, m->sealed_len);
	mx_put_blob(w, m->ticket, m->ticket_len);
}

int mx_dec_auth_done(const void *p, uint32_t len, struct mx_msg_auth_done *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->status = mx_get_i32(&r);
	m->message = get_cstr(&r);
	m->caps = get_cstr(&r);
	m->sealed = mx_get_blob(&r, &m->sealed_len, AUTH_TICKET_MAX);
	m->ticket = mx_get_blob(&r, &m->ticket_len, AUTH_TICKET_MAX);
	return finish(&r);
}

/* Peering --------------------------------------------------------------- */

void mx_enc_pg_ref(struct mx_wbuf *w, const struct mx_pg_ref *r)
{
	mx_put_u64(w, r->epoch);
	mx_put_i32(w, r->pool);
	mx_put_u32(w, r->pg);
	mx_put_u64(w, r->interval);
}

static void get_pg_ref(struct mx_rbuf *r, struct mx_pg_ref *ref)
{
	ref->epoch = mx_get_u64(r);
	ref->pool = mx_get_i32(r);
	ref->pg = mx_get_u32(r);
	ref->interval = mx_get_u64(r);
	if (!r->err && (ref->pool < 0 || ref->pg == UINT32_MAX))
		mx_rbuf_fail(r);
}

static const char *get_name(struct mx_rbuf *r, uint32_t *len)
{
	const char *n = mx_get_blob(r, len, 1024);

	if (!r->err && (*len == 0 || memchr(n, '\0', *len)))
		mx_rbuf_fail(r);
	return n;
}

void mx_enc_pg_query(struct mx_wbuf *w, const struct mx_pg_ref *r)
{
	mx_enc_pg_ref(w, r);
}

int mx_dec_pg_query(const void *p, uint32_t len, struct mx_pg_ref *ref)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	get_pg_ref(&r, ref);
	return finish(&r);
}

static void put_info(struct mx_wbuf *w, const struct mx_wire_pg_info *i)
{
	mx_put_u64(w, i->lu_epoch);
	mx_put_u64(w, i->lu_seq);
	mx_put_u64(w, i->tail_epoch);
	mx_put_u64(w, i->tail_seq);
	mx_put_u64(w, i->les);
	mx_put_u64(w, i->lec);
	mx_put_u8(w, i->n_acting);
	for (uint8_t k = 0; k < i->n_acting; k++)
		mx_put_i32(w, i->acting[k]);
}

static void get_info(struct mx_rbuf *r, struct mx_wire_pg_info *i)
{
	memset(i, 0, sizeof(*i));
	i->lu_epoch = mx_get_u64(r);
	i->lu_seq = mx_get_u64(r);
	i->tail_epoch = mx_get_u64(r);
	i->tail_seq = mx_get_u64(r);
	i->les = mx_get_u64(r);
	i->lec = mx_get_u64(r);
	i->n_acting = mx_get_u8(r);
	if (i->n_acting > MX_MAX_SIZE) {
		mx_rbuf_fail(r);
		return;
	}
	for (uint8_t k = 0; k < i->n_acting; k++)
		i->acting[k] = mx_get_i32(r);
}

/* Skip the n log entries at *r (a copy of the message's reader): the
 * fields after them follow.  0 or -EBADMSG. */
static int skip_entries(struct mx_rbuf *r, uint32_t n)
{
	struct mx_wire_log_entry e;

	for (uint32_t i = 0; i < n; i++)
		if (mx_pg_log_next(r, &e) < 0)
			return -EBADMSG;
	return 0;
}

size_t mx_enc_pg_notify_head(struct mx_wbuf *w, int32_t status, const struct mx_pg_ref *r,
			     const struct mx_wire_pg_info *info)
{
	size_t at;

	mx_put_i32(w, status);
	mx_enc_pg_ref(w, r);
	put_info(w, info);
	at = w->len;
	mx_put_u32(w, 0);
	return at;
}

void mx_enc_pg_log_entry(struct mx_wbuf *w, const struct mx_wire_log_entry *e)
{
	mx_put_u64(w, e->ver_epoch);
	mx_put_u64(w, e->ver_seq);
	mx_put_u8(w, e->kind);
	mx_put_blob(w, e->name, e->name_len);
	mx_put_u64(w, e->client_id);
	mx_put_u64(w, e->tid);
}

void mx_enc_pg_notify_end(struct mx_wbuf *w, size_t at, uint32_t n,
			  const struct mx_wire_pg_info *info)
{
	mx_wbuf_patch_u32(w, at, n);
	mx_put_u8(w, info->flags);
	mx_put_u64(w, info->wb_lost);
}

int mx_dec_pg_notify(const void *p, uint32_t len, struct mx_msg_pg_notify *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->status = mx_get_i32(&r);
	get_pg_ref(&r, &m->ref);
	get_info(&r, &m->info);
	m->n = mx_get_u32(&r);
	m->entries = r;
	if (!r.err && skip_entries(&r, m->n) < 0)
		return -EBADMSG;
	/* After the entries: flags and wb_lost (none from an older peer). */
	if (mx_rbuf_left(&r) >= 9) {
		m->info.flags = mx_get_u8(&r);
		m->info.wb_lost = mx_get_u64(&r);
	}
	return finish(&r);
}

int mx_pg_log_next(struct mx_rbuf *r, struct mx_wire_log_entry *e)
{
	e->ver_epoch = mx_get_u64(r);
	e->ver_seq = mx_get_u64(r);
	e->kind = mx_get_u8(r);
	e->name = get_name(r, &e->name_len);
	e->client_id = mx_get_u64(r);
	e->tid = mx_get_u64(r);
	if (!r->err && e->kind != 1 && e->kind != 2)
		mx_rbuf_fail(r);
	return r->err ? -EBADMSG : 0;
}

size_t mx_enc_pg_activate_head(struct mx_wbuf *w, const struct mx_msg_pg_activate *m)
{
	size_t at;

	mx_enc_pg_ref(w, &m->ref);
	mx_put_u64(w, m->les);
	mx_put_u8(w, m->with_log);
	mx_put_u64(w, m->tail_epoch);
	mx_put_u64(w, m->tail_seq);
	at = w->len;
	mx_put_u32(w, 0);
	return at;
}

void mx_enc_pg_activate_end(struct mx_wbuf *w, size_t at, uint32_t n,
			    const struct mx_msg_pg_activate *m)
{
	mx_wbuf_patch_u32(w, at, n);
	mx_put_u64(w, m->wb_lost);
}

int mx_dec_pg_activate(const void *p, uint32_t len, struct mx_msg_pg_activate *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	get_pg_ref(&r, &m->ref);
	m->les = mx_get_u64(&r);
	m->with_log = mx_get_u8(&r) != 0;
	m->tail_epoch = mx_get_u64(&r);
	m->tail_seq = mx_get_u64(&r);
	m->n = mx_get_u32(&r);
	m->entries = r;
	m->wb_lost = 0;
	if (!r.err && skip_entries(&r, m->n) < 0)
		return -EBADMSG;
	/* After the entries: wb_lost (none from an older peer). */
	if (mx_rbuf_left(&r) >= 8)
		m->wb_lost = mx_get_u64(&r);
	return finish(&r);
}

void mx_enc_pg_ack(struct mx_wbuf *w, const struct mx_msg_pg_ack *m)
{
	mx_put_i32(w, m->status);
	mx_enc_pg_ref(w, &m->ref);
}

int mx_dec_pg_ack(const void *p, uint32_t len, struct mx_msg_pg_ack *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->status = mx_get_i32(&r);
	get_pg_ref(&r, &m->ref);
	return finish(&r);
}

size_t mx_enc_pg_object_head(struct mx_wbuf *w, const struct mx_msg_pg_object *m)
{
	size_t at;

	mx_put_i32(w, m->status);
	mx_enc_pg_ref(w, &m->ref);
	mx_put_blob(w, m->name, m->name_len);
	mx_put_u8(w, m->exists);
	mx_put_u64(w, m->ver_epoch);
	mx_put_u64(w, m->ver_seq);
	mx_put_u64(w, m->mtime_ms);
	at = w->len;
	mx_put_u32(w, 0);
	return at;
}

void mx_enc_pg_object_xattr(struct mx_wbuf *w, const char *name, const void *v, uint32_t len)
{
	put_cstr(w, name);
	mx_put_blob(w, v, len);
}

void mx_enc_pg_object_end(struct mx_wbuf *w, size_t at, uint32_t n_xattrs, const void *data,
			  uint32_t len)
{
	mx_wbuf_patch_u32(w, at, n_xattrs);
	mx_put_blob(w, data, len);
}

int mx_dec_pg_object(const void *p, uint32_t len, struct mx_msg_pg_object *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->status = mx_get_i32(&r);
	get_pg_ref(&r, &m->ref);
	m->name = get_name(&r, &m->name_len);
	m->exists = mx_get_u8(&r) != 0;
	m->ver_epoch = mx_get_u64(&r);
	m->ver_seq = mx_get_u64(&r);
	m->mtime_ms = mx_get_u64(&r);
	m->n_xattrs = mx_get_u32(&r);
	if (m->n_xattrs > 65536)
		mx_rbuf_fail(&r);
	m->xattrs = r;
	for (uint32_t i = 0; i < m->n_xattrs && !r.err; i++) {
		uint32_t vl;

		(void)get_cstr(&r);
		(void)mx_get_blob(&r, &vl, MX_MSG_MAX_DATA);
	}
	m->data = mx_get_blob(&r, &m->data_len, MX_MSG_MAX_DATA);
	return finish(&r);
}

void mx_enc_pg_pull(struct mx_wbuf *w, const struct mx_msg_pg_pull *m)
{
	mx_enc_pg_ref(w, &m->ref);
	mx_put_blob(w, m->name, m->name_len);
}

int mx_dec_pg_pull(const void *p, uint32_t len, struct mx_msg_pg_pull *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	get_pg_ref(&r, &m->ref);
	m->name = get_name(&r, &m->name_len);
	return finish(&r);
}

void mx_enc_pg_remove(struct mx_wbuf *w, const struct mx_msg_pg_remove *m)
{
	mx_enc_pg_ref(w, &m->ref);
	mx_put_i32(w, m->from);
}

int mx_dec_pg_remove(const void *p, uint32_t len, struct mx_msg_pg_remove *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	get_pg_ref(&r, &m->ref);
	m->from = mx_get_i32(&r);
	if (!r.err && m->from < 0)
		mx_rbuf_fail(&r);
	return finish(&r);
}

void mx_enc_pg_scan(struct mx_wbuf *w, const struct mx_msg_pg_scan *m)
{
	mx_enc_pg_ref(w, &m->ref);
	mx_put_blob(w, m->cursor, m->cursor_len);
}

int mx_dec_pg_scan(const void *p, uint32_t len, struct mx_msg_pg_scan *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	get_pg_ref(&r, &m->ref);
	m->cursor = mx_get_blob(&r, &m->cursor_len, 1024);
	if (!r.err && m->cursor_len && memchr(m->cursor, '\0', m->cursor_len))
		mx_rbuf_fail(&r);
	return finish(&r);
}

/* Scrub ------------------------------------------------------------------ */

#define SCRUB_FLAGS (MX_SCRUB_DEEP | MX_SCRUB_REPAIR)

void mx_enc_pg_scrub(struct mx_wbuf *w, const struct mx_msg_pg_scrub *m)
{
	mx_put_u64(w, m->epoch);
	mx_put_i32(w, m->pool);
	mx_put_u32(w, m->pg);
	mx_put_u32(w, m->flags);
}

int mx_dec_pg_scrub(const void *p, uint32_t len, struct mx_msg_pg_scrub *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->epoch = mx_get_u64(&r);
	m->pool = mx_get_i32(&r);
	m->pg = mx_get_u32(&r);
	m->flags = mx_get_u32(&r);
	if (!r.err && (m->pool < 0 || m->pg == UINT32_MAX || (m->flags & ~SCRUB_FLAGS)))
		mx_rbuf_fail(&r);
	return finish(&r);
}

void mx_enc_pg_scrub_reply(struct mx_wbuf *w, const struct mx_msg_pg_scrub_reply *m)
{
	mx_put_i32(w, m->status);
	mx_put_u64(w, m->epoch);
	mx_put_u32(w, m->scrubbed);
	mx_put_u32(w, m->inconsistent);
	mx_put_u32(w, m->repaired);
	mx_put_u32(w, m->errors);
}

int mx_dec_pg_scrub_reply(const void *p, uint32_t len, struct mx_msg_pg_scrub_reply *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->status = mx_get_i32(&r);
	m->epoch = mx_get_u64(&r);
	m->scrubbed = mx_get_u32(&r);
	m->inconsistent = mx_get_u32(&r);
	m->repaired = mx_get_u32(&r);
	m->errors = mx_get_u32(&r);
	return finish(&r);
}

void mx_enc_scrub_map_req(struct mx_wbuf *w, const struct mx_msg_scrub_map_req *m)
{
	mx_enc_pg_ref(w, &m->ref);
	mx_put_u32(w, m->flags);
}

int mx_dec_scrub_map_req(const void *p, uint32_t len, struct mx_msg_scrub_map_req *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	get_pg_ref(&r, &m->ref);
	m->flags = mx_get_u32(&r);
	if (!r.err && (m->flags & ~SCRUB_FLAGS))
		mx_rbuf_fail(&r);
	return finish(&r);
}

size_t mx_enc_scrub_map_head(struct mx_wbuf *w, int32_t status, const struct mx_pg_ref *r,
			     uint32_t flags)
{
	size_t at;

	mx_put_i32(w, status);
	mx_enc_pg_ref(w, r);
	mx_put_u32(w, flags);
	at = w->len;
	mx_put_u32(w, 0);
	return at;
}

void mx_enc_scrub_entry(struct mx_wbuf *w, const struct mx_scrub_entry *e)
{
	mx_put_blob(w, e->name, e->name_len);
	mx_put_u64(w, e->ver_epoch);
	mx_put_u64(w, e->ver_seq);
	mx_put_u64(w, e->size);
	mx_put_u32(w, e->attr_digest);
	mx_put_u32(w, e->data_digest);
	mx_put_u8(w, e->flags);
}

void mx_enc_scrub_map_end(struct mx_wbuf *w, size_t at, uint32_t n)
{
	mx_wbuf_patch_u32(w, at, n);
}

int mx_dec_scrub_map(const void *p, uint32_t len, struct mx_msg_scrub_map *m)
{
	struct mx_rbuf r;

	mx_rbuf_init(&r, p, len);
	m->status = mx_get_i32(&r);
	get_pg_ref(&r, &m->ref);
	m->flags = mx_get_u32(&r);
	m->n = mx_get_u32(&r);
	m->entries = r;
	return finish(&r);
}

int mx_scrub_entry_next(struct mx_rbuf *r, struct mx_scrub_entry *e)
{
	e->name = get_name(r, &e->name_len);
	e->ver_epoch = mx_get_u64(r);
	e->ver_seq = mx_get_u64(r);
	e->size = mx_get_u64(r);
	e->attr_digest = mx_get_u32(r);
	e->data_digest = mx_get_u32(r);
	e->flags = mx_get_u8(r);
	if (!r->err && (e->flags & ~MX_SCRUB_E_DAMAGED))
		mx_rbuf_fail(r);
	return r->err ? -EBADMSG : 0;
}

int mx_msg_decode_any(uint16_t type, const void *p, uint32_t len)
{
	union {
		struct mx_msg_get_map gm;
		struct mx_msg_map m;
		struct mx_msg_osd_boot ob;
		struct mx_msg_osd_boot_reply obr;
		struct mx_msg_command c;
		struct mx_msg_command_reply cr;
		struct mx_msg_osd_op op;
		struct mx_msg_osd_op_reply opr;
		struct mx_msg_repop rp;
		struct mx_msg_repop_reply rpr;
		struct mx_msg_osd_list l;
		struct mx_msg_osd_list_reply lr;
		struct mx_msg_error_reply er;
		struct mx_msg_mon_redirect rd;
		struct mx_msg_auth_hello ah;
		struct mx_msg_auth_challenge ac;
		struct mx_msg_auth_proof ap;
		struct mx_msg_auth_done ad;
		struct mx_msg_osd_failure of;
		struct mx_msg_pong pong;
		struct mx_msg_osd_beacon ob2;
		struct mx_msg_pg_stats pst;
		struct mx_pg_ref pr;
		struct mx_msg_pg_notify pn;
		struct mx_msg_pg_activate pa;
		struct mx_msg_pg_ack pk;
		struct mx_msg_pg_object po;
		struct mx_msg_pg_pull pp;
		struct mx_msg_pg_remove prm;
		struct mx_msg_pg_scan psc;
		struct mx_msg_pg_scrub ps;
		struct mx_msg_pg_scrub_reply psr;
		struct mx_msg_scrub_map_req smq;
		struct mx_msg_scrub_map sm;
	} u;
	struct mx_wire_log_entry le;
	struct mx_scrub_entry se;
	struct mx_pg_stat pse;
	int r;

	switch (type) {
	case MX_MSG_MON_GET_MAP: return mx_dec_get_map(p, len, &u.gm);
	case MX_MSG_MON_MAP: return mx_dec_map(p, len, &u.m);
	case MX_MSG_MON_OSD_BOOT: return mx_dec_osd_boot(p, len, &u.ob);
	case MX_MSG_MON_OSD_BOOT_REPLY: return mx_dec_osd_boot_reply(p, len, &u.obr);
	case MX_MSG_MON_COMMAND: return mx_dec_command(p, len, &u.c);
	case MX_MSG_MON_COMMAND_REPLY: return mx_dec_command_reply(p, len, &u.cr);
	case MX_MSG_MON_OSD_FAILURE: return mx_dec_osd_failure(p, len, &u.of);
	case MX_MSG_MON_OSD_BEACON: return mx_dec_osd_beacon(p, len, &u.ob2);
	case MX_MSG_MON_PG_STATS:
		r = mx_dec_pg_stats(p, len, &u.pst);
		for (uint32_t i = 0; r == 0 && i < u.pst.n; i++)
			r = mx_pg_stat_next(&u.pst.entries, &pse);
		return r;
	case MX_MSG_OSD_OP: return mx_dec_osd_op(p, len, &u.op);
	case MX_MSG_OSD_OP_REPLY: return mx_dec_osd_op_reply(p, len, &u.opr);
	case MX_MSG_OSD_REPOP: return mx_dec_repop(p, len, &u.rp);
	case MX_MSG_OSD_REPOP_REPLY: return mx_dec_repop_reply(p, len, &u.rpr);
	case MX_MSG_OSD_LIST: return mx_dec_osd_list(p, len, &u.l);
	case MX_MSG_OSD_LIST_REPLY:
		r = mx_dec_osd_list_reply(p, len, &u.lr);
		if (r < 0)
			return r;
		for (uint32_t i = 0; i < u.lr.n; i++) {
			struct mx_list_entry e;

			r = mx_list_next(&u.lr, &e);
			if (r < 0)
				return r;
		}
		return 0;
	case MX_MSG_ERROR_REPLY: return mx_dec_error_reply(p, len, &u.er);
	case MX_MSG_MON_REDIRECT: return mx_dec_mon_redirect(p, len, &u.rd);
	case MX_MSG_AUTH_HELLO: return mx_dec_auth_hello(p, len, &u.ah);
	case MX_MSG_AUTH_CHALLENGE: return mx_dec_auth_challenge(p, len, &u.ac);
	case MX_MSG_AUTH_PROOF: return mx_dec_auth_proof(p, len, &u.ap);
	case MX_MSG_AUTH_DONE: return mx_dec_auth_done(p, len, &u.ad);
	case MX_MSG_AUTH_RENEW: return len == 0 ? 0 : -EBADMSG;
	case MX_MSG_PG_QUERY: return mx_dec_pg_query(p, len, &u.pr);
	case MX_MSG_PG_NOTIFY:
		r = mx_dec_pg_notify(p, len, &u.pn);
		for (uint32_t i = 0; r == 0 && i < u.pn.n; i++)
			r = mx_pg_log_next(&u.pn.entries, &le);
		return r;
	case MX_MSG_PG_ACTIVATE:
		r = mx_dec_pg_activate(p, len, &u.pa);
		for (uint32_t i = 0; r == 0 && i < u.pa.n; i++)
			r = mx_pg_log_next(&u.pa.entries, &le);
		return r;
	case MX_MSG_PG_ACTIVATE_REPLY:
	case MX_MSG_PG_PUSH_REPLY:
	case MX_MSG_PG_REMOVE_REPLY: return mx_dec_pg_ack(p, len, &u.pk);
	case MX_MSG_PG_PUSH: return mx_dec_pg_object(p, len, &u.po);
	case MX_MSG_PG_PULL: return mx_dec_pg_pull(p, len, &u.pp);
	case MX_MSG_PG_REMOVE: return mx_dec_pg_remove(p, len, &u.prm);
	case MX_MSG_PG_SCAN: return mx_dec_pg_scan(p, len, &u.psc);
	case MX_MSG_PG_SCRUB: return mx_dec_pg_scrub(p, len, &u.ps);
	case MX_MSG_PG_SCRUB_REPLY: return mx_dec_pg_scrub_reply(p, len, &u.psr);
	case MX_MSG_PG_SCRUB_MAP: return mx_dec_scrub_map_req(p, len, &u.smq);
	case MX_MSG_PG_SCRUB_MAP_REPLY:
		r = mx_dec_scrub_map(p, len, &u.sm);
		for (uint32_t i = 0; r == 0 && i < u.sm.n; i++)
			r = mx_scrub_entry_next(&u.sm.entries, &se);
		return r;
	case MX_MSG_PING: return 0;
	case MX_MSG_PONG: return mx_dec_pong(p, len, &u.pong);
	default: return -ENOTSUP;
	}
}

/*
 * Unit tests of the wire protocol and the cluster map encoding: round trips
 * of every message, rejection of truncated and corrupted input, and the
 * errno <-> wire status mapping; the map's tiering fields, including maps
 * encoded before the cache settings.
 */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "crc32c.h"
#include "map.h"
#include "monlist.h"
#include "msg.h"

static void test_crc(void)
{
	CHECK(mx_crc32c(0, "123456789", 9) == 0xe3069283u);
	CHECK(mx_crc32c(0, "", 0) == 0);
	/* Incremental equals one-shot. */
	CHECK(mx_crc32c(mx_crc32c(0, "1234", 4), "56789", 5) == 0xe3069283u);
}

static void test_status(void)
{
	static const int errs[] = {ENOENT, EIO, EINVAL, EEXIST, ENODATA, EAGAIN, ESTALE,
				   EBADMSG, ENOTSUP, ETIMEDOUT, ERANGE, EFBIG};

	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		CHECK_EQ_INT(mx_wire_to_errno(mx_errno_to_wire(-errs[i])), -errs[i]);
	CHECK_EQ_INT(mx_errno_to_wire(0), 0);
	CHECK_EQ_INT(mx_wire_to_errno(0), 0);
	CHECK_EQ_INT(mx_wire_to_errno(99999), -EIO);
	CHECK_EQ_INT(mx_wire_to_errno(mx_errno_to_wire(-EHWPOISON)), -EIO);
}

static void test_header(void)
{
	uint8_t h[MX_MSG_HDR_LEN];
	struct mx_msg_hdr d;
	const char payload[] = "hello";

	mx_msg_hdr_encode(h, MX_MSG_OSD_OP, 0x1122334455667788ull, payload, 5);
	CHECK_EQ_INT(mx_msg_hdr_decode(h, &d), 0);
	CHECK_EQ_INT(d.type, MX_MSG_OSD_OP);
	CHECK(d.tid == 0x1122334455667788ull);
	CHECK_EQ_INT(d.len, 5);
	CHECK_EQ_INT(mx_msg_payload_check(&d, payload), 0);
	CHECK_EQ_INT(mx_msg_payload_check(&d, "hellp"), -EBADMSG);
	/* Any flipped bit in the header is caught. */
	for (int bit = 0; bit < MX_MSG_HDR_LEN * 8; bit++) {
		uint8_t c[MX_MSG_HDR_LEN];

		memcpy(c, h, sizeof(c));
		c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		CHECK(mx_msg_hdr_decode(c, &d) < 0);
	}
}

/* A REPOP with its log flag cleared in place decodes as the same write,
 * unlogged; a header made with the payload's sum given checks against
 * that payload, and not against another. */
static void test_repop_nolog(void)
{
	static const uint8_t data[5000] = {1, 2, 3};
	struct mx_msg_repop m, d;
	struct mx_msg_hdr hd;
	struct mx_wbuf w;
	uint8_t h[MX_MSG_HDR_LEN];

	memset(&m, 0, sizeof(m));
	m.epoch = 9;
	m.pool = 2;
	m.pg = 7;
	m.name = "obj";
	m.name_len = 3;
	m.ver_epoch = 9;
	m.ver_seq = 41;
	m.n_ops = 1;
	m.ops[0].type = 1; /* a write */
	m.ops[0].off = 4096;
	m.ops[0].data = data;
	m.ops[0].data_len = sizeof(data);
	m.tail.interval = 5;
	m.tail.flags = MX_REPOP_LOG | MX_REPOP_WRITEBACK;
	m.tail.client_id = 0x0102030405060708ull;
	m.tail.tid = 77;
	mx_wbuf_init(&w);
	mx_enc_repop(&w, &m);
	CHECK(!w.err);
	CHECK_EQ_INT(mx_dec_repop(w.data, (uint32_t)w.len, &d), 0);
	CHECK_EQ_INT(d.tail.flags, MX_REPOP_LOG | MX_REPOP_WRITEBACK);
	mx_repop_clear_log(w.data, w.len);
	CHECK_EQ_INT(mx_dec_repop(w.data, (uint32_t)w.len, &d), 0);
	CHECK_EQ_INT(d.tail.flags, MX_REPOP_WRITEBACK);
	CHECK(d.tail.interval == 5 && d.tail.client_id == m.tail.client_id && d.tail.tid == 77);
	CHECK(d.n_ops == 1 && d.ops[0].off == 4096 && d.ops[0].data_len == sizeof(data));
	CHECK(memcmp(d.ops[0].data, data, sizeof(data)) == 0);
	CHECK(d.ver_seq == 41 && d.name_len == 3 && memcmp(d.name, "obj", 3) == 0);
	mx_msg_hdr_encode_sum(h, MX_MSG_OSD_REPOP, 3, (uint32_t)w.len,
			      mx_crc32c(0, w.data, w.len));
	CHECK_EQ_INT(mx_msg_hdr_decode(h, &hd), 0);
	CHECK_EQ_INT(hd.len, w.len);
	CHECK_EQ_INT(mx_msg_payload_check(&hd, w.data), 0);
	w.data[w.len - 1] ^= 1;
	CHECK_EQ_INT(mx_msg_payload_check(&hd, w.data), -EBADMSG);
	mx_wbuf_free(&w);
}

static void test_osd_op(void)
{
	struct mx_msg_osd_op m, d;
	struct mx_wbuf w;

	memset(&m, 0, sizeof(m));
	m.epoch = 7;
	m.pool = 3;
	m.pg = 12;
	m.client_id = 99;
	m.name = "obj";
	m.name_len = 3;
	m.n_ops = 2;
	m.ops[0].op = MX_OP_WRITE;
	m.ops[0].off = 4096;
	m.ops[0].data = "abcdef";
	m.ops[0].data_len = 6;
	m.ops[1].op = MX_OP_SETXATTR;
	m.ops[1].xname = "user.k";
	m.ops[1].data = "v";
	m.ops[1].data_len = 1;
	mx_wbuf_init(&w);
	mx_enc_osd_op(&w, &m);
	CHECK_EQ_INT(w.err, 0);
	CHECK_EQ_INT(mx_dec_osd_op(w.data, (uint32_t)w.len, &d), 0);
	CHECK(d.epoch == 7 && d.pool == 3 && d.pg == 12 && d.client_id == 99);
	CHECK(d.name_len == 3 && memcmp(d.name, "obj", 3) == 0);
	CHECK_EQ_INT(d.n_ops, 2);
	CHECK(d.ops[0].off == 4096 && d.ops[0].data_len == 6 &&
	      memcmp(d.ops[0].data, "abcdef", 6) == 0);
	CHECK(strcmp(d.ops[1].xname, "user.k") == 0);
	/* Every truncation fails cleanly. */
	for (size_t n = 0; n < w.len; n++)
		CHECK(mx_dec_osd_op(w.data, (uint32_t)n, &d) < 0);
	/* Without a route, the epoch stands for it; with one, it travels
	 * after the ops; unknown flags are refused. */
	CHECK_EQ_INT(mx_dec_osd_op(w.data, (uint32_t)w.len, &d), 0);
	CHECK(d.route_epoch == 7);
	m.flags = MX_OSD_OP_ROUTED;
	m.route_epoch = 5;
	mx_wbuf_reset(&w);
	mx_enc_osd_op(&w, &m);
	CHECK_EQ_INT(mx_dec_osd_op(w.data, (uint32_t)w.len, &d), 0);
	CHECK(d.flags == MX_OSD_OP_ROUTED && d.route_epoch == 5 && d.epoch == 7);
	for (size_t n = 0; n < w.len; n++)
		CHECK(mx_dec_osd_op(w.data, (uint32_t)n, &d) < 0);
	m.flags = 8;
	mx_wbuf_reset(&w);
	mx_enc_osd_op(&w, &m);
	CHECK_EQ_INT(mx_dec_osd_op(w.data, (uint32_t)w.len, &d), -EBADMSG);
	m.flags = 0;
	/* Reads and writes in one request are refused. */
	m.ops[1].op = MX_OP_READ;
	mx_wbuf_reset(&w);
	mx_enc_osd_op(&w, &m);
	CHECK_EQ_INT(mx_dec_osd_op(w.data, (uint32_t)w.len, &d), -EBADMSG);
	/* An unknown op code is refused. */
	m.n_ops = 1;
	m.ops[0].op = 99;
	mx_wbuf_reset(&w);
	mx_enc_osd_op(&w, &m);
	CHECK_EQ_INT(mx_dec_osd_op(w.data, (uint32_t)w.len, &d), -EBADMSG);
	/* An ordered guard: its comparison travels in the op's flags, its
	 * operand (a 16-byte version) as data; the OSD judges both. */
	{
		static const uint8_t ver[16] = {0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 1, 0};

		m.n_ops = 2;
		memset(m.ops, 0, 2 * sizeof(m.ops[0]));
		m.ops[0].op = MX_OP_CMPXATTR;
		m.ops[0].flags = MX_CMP_GE;
		m.ops[0].xname = "tier.ver";
		m.ops[0].data = ver;
		m.ops[0].data_len = 16;
		m.ops[1].op = MX_OP_SETXATTR;
		m.ops[1].xname = "tier.ver";
		m.ops[1].data = ver;
		m.ops[1].data_len = 16;
		mx_wbuf_reset(&w);
		mx_enc_osd_op(&w, &m);
		CHECK_EQ_INT(mx_dec_osd_op(w.data, (uint32_t)w.len, &d), 0);
		CHECK(d.n_ops == 2 && d.ops[0].op == MX_OP_CMPXATTR && d.ops[0].flags == MX_CMP_GE);
		CHECK(strcmp(d.ops[0].xname, "tier.ver") == 0 && d.ops[0].data_len == 16 &&
		      memcmp(d.ops[0].data, ver, 16) == 0);
		CHECK((MX_CMP_MASK & MX_OP_FLAG_EXCL) == 0);
	}
	mx_wbuf_free(&w);
}

static void test_replies(void)
{
	struct mx_wbuf w;
	struct mx_msg_osd_op_reply r;
	uint8_t *dst;
	size_t at;

	mx_wbuf_init(&w);
	mx_enc_osd_op_reply_head(&w, 0, 5, 5, 9, 2);
	dst = mx_enc_osd_op_result_reserve(&w, 0, 100, &at);
	CHECK(dst != NULL);
	memcpy(dst, "xyz", 3);
	mx_enc_osd_op_result_finish(&w, at, 0, 3);
	mx_enc_osd_op_result(&w, mx_errno_to_wire(-ENODATA), NULL, 0);
	CHECK_EQ_INT(mx_dec_osd_op_reply(w.data, (uint32_t)w.len, &r), 0);
	CHECK_EQ_INT(r.n_ops, 2);
	CHECK(r.ver_seq == 9);
	CHECK(r.res[0].data_len == 3 && memcmp(r.res[0].data, "xyz", 3) == 0);
	CHECK_EQ_INT(mx_wire_to_errno(r.res[1].rval), -ENODATA);
	mx_wbuf_free(&w);
}

static void test_command(void)
{
	struct mx_msg_command m = {.prefix = "pool create", .n_args = 2}, d;
	struct mx_wbuf w;

	m.keys[0] = "name";
	m.vals[0] = "rbd";
	m.keys[1] = "size";
	m.vals[1] = "3";
	mx_wbuf_init(&w);
	mx_enc_command(&w, &m);
	CHECK_EQ_INT(mx_dec_command(w.data, (uint32_t)w.len, &d), 0);
	CHECK(strcmp(d.prefix, "pool create") == 0 && d.n_args == 2);
	CHECK(strcmp(d.vals[1], "3") == 0);
	/* A string without its NUL is refused. */
	w.data[2 + 11] = 'X'; /* the NUL after "pool create" */
	CHECK_EQ_INT(mx_dec_command(w.data, (uint32_t)w.len, &d), -EBADMSG);
	mx_wbuf_free(&w);
}

static void test_map(void)
{
	struct mx_map *m = mx_map_new(), *d;
	struct mx_pool p;
	struct mx_wbuf w;

	CHECK(m != NULL);
	m->epoch = 42;
	memset(m->fsid, 0xab, 16);
	CHECK_EQ_INT(mx_map_set_max_osd(m, 3), 0);
	for (int i = 0; i < 3; i++) {
		m->osds[i].exists = true;
		m->osds[i].up = i != 1;
		m->osds[i].in = true;
		m->osds[i].weight = MX_WEIGHT_ONE;
		snprintf(m->osds[i].addr, sizeof(m->osds[i].addr), "127.0.0.1:%d", 6800 + i);
		CHECK_EQ_INT(mx_loc_parse("host=h1", m->osds[i].loc, &m->osds[i].nloc), 0);
	}
	mx_pool_init(&p);
	p.id = 1;
	strcpy(p.name, "rbd");
	strcpy(p.root_name, "default");
	p.size = 3;
	p.min_size = 2;
	p.pg_num = 64;
	p.failure_domain = MX_LEVEL_OSD;
	CHECK_EQ_INT(mx_map_add_pool(m, &p), 0);
	CHECK_EQ_INT(mx_map_add_pool(m, &p), -EEXIST);
	mx_wbuf_init(&w);
	mx_map_encode(m, &w);
	CHECK_EQ_INT(mx_map_decode(w.data, w.len, &d), 0);
	CHECK(d && d->epoch == 42 && d->max_osd == 3 && d->n_pools == 1);
	CHECK(d && !d->osds[1].up && d->osds[2].up);
	CHECK(d && strcmp(d->osds[2].addr, "127.0.0.1:6802") == 0);
	CHECK(d && d->osds[0].nloc == 2 && d->osds[0].loc[1].level == MX_LEVEL_ROOT);
	CHECK(d && strcmp(d->pools[0].name, "rbd") == 0 && d->pools[0].pg_num == 64);
	mx_map_free(d);
	for (size_t n = 0; n < w.len; n++) {
		struct mx_map *t = NULL;

		CHECK(mx_map_decode(w.data, n, &t) < 0);
		mx_map_free(t);
	}
	mx_wbuf_free(&w);
	/* The monitors' quorum section: kept, and refused when it does not
	 * match the monitor list. */
	{
		struct mx_map *q = mx_map_dup(m), *e = NULL;

		free(q->mons);
		q->mons = calloc(2, sizeof(*q->mons));
		q->n_mons = 2;
		snprintf(q->mons[0].name, sizeof(q->mons[0].name), "a");
		snprintf(q->mons[0].addr, sizeof(q->mons[0].addr), "10.0.0.1:6789");
		snprintf(q->mons[0].raft_addr, sizeof(q->mons[0].raft_addr), "10.0.0.1:6790");
		q->mons[0].raft_id = 7;
		snprintf(q->mons[1].name, sizeof(q->mons[1].name), "b");
		snprintf(q->mons[1].addr, sizeof(q->mons[1].addr), "10.0.0.2:6789");
		snprintf(q->mons[1].raft_addr, sizeof(q->mons[1].raft_addr), "10.0.0.2:6790");
		q->mons[1].raft_id = 9;
		mx_wbuf_init(&w);
		mx_map_encode(q, &w);
		CHECK_EQ_INT(mx_map_decode(w.data, w.len, &e), 0);
		CHECK(e && e->n_mons == 2 && e->mons[1].raft_id == 9 &&
		      strcmp(e->mons[1].raft_addr, "10.0.0.2:6790") == 0);
		mx_map_free(e);
		/* A raft id of 0 in the quorum section is refused. */
		q->mons[1].raft_id = 0;
		mx_wbuf_reset(&w);
		mx_map_encode(q, &w);
		CHECK(mx_map_decode(w.data, w.len, &e) < 0);
		mx_map_free(e);
		/* No ids: no section, a standalone monitor's map. */
		q->mons[0].raft_id = 0;
		mx_wbuf_reset(&w);
		mx_map_encode(q, &w);
		CHECK_EQ_INT(mx_map_decode(w.data, w.len, &e), 0);
		CHECK(e && e->mons[0].raft_id == 0 && e->mons[0].raft_addr[0] == '\0');
		mx_map_free(e);
		mx_wbuf_free(&w);
		mx_map_free(q);
	}
	/* The monitor list of a client or an OSD. */
	{
		struct mx_monlist l;
		struct mx_map *q = mx_map_new();

		CHECK(mx_monlist_parse(&l, "") < 0);
		CHECK(mx_monlist_parse(&l, "10.0.0.1:6789,bogus") < 0);
		CHECK_EQ_INT(mx_monlist_parse(&l, "10.0.0.1:6789, 10.0.0.2:6789"), 0);
		CHECK(l.n == 2 && strcmp(mx_monlist_current(&l), "10.0.0.1:6789") == 0);
		mx_monlist_next(&l);
		CHECK(strcmp(mx_monlist_current(&l), "10.0.0.2:6789") == 0);
		mx_monlist_next(&l);
		CHECK(strcmp(mx_monlist_current(&l), "10.0.0.1:6789") == 0);
		/* A redirect to a known or a new leader goes there soon; one
		 * naming no leader moves on. */
		CHECK(mx_monlist_redirect(&l, "10.0.0.3:6789") < 100);
		CHECK(l.n == 3 && strcmp(mx_monlist_current(&l), "10.0.0.3:6789") == 0);
		CHECK(mx_monlist_redirect(&l, "") >= 100);
		CHECK(strcmp(mx_monlist_current(&l), "10.0.0.1:6789") == 0);
		CHECK(mx_monlist_redirect(&l, "not an address") >= 100);
		q->mons = calloc(1, sizeof(*q->mons));
		q->n_mons = 1;
		snprintf(q->mons[0].addr, sizeof(q->mons[0].addr), "10.0.0.4:6789");
		mx_monlist_learn(&l, q);
		mx_monlist_learn(&l, q);
		CHECK_EQ_INT(l.n, 4);
		mx_map_free(q);
	}
	/* The liveness of a monitor session: pings once a second while
	 * connected, given up after the grace without a word, whether
	 * connected or still connecting. */
	{
		struct mx_monlive v;

		mx_monlive_start(&v, 1000);
		CHECK(mx_monlive_tick(&v, 1000 + MX_MON_PING_MS, false) == MX_MONLIVE_WAIT);
		CHECK(mx_monlive_tick(&v, 1000 + MX_MON_GRACE_MS + 1, false) == MX_MONLIVE_GIVE_UP);
		mx_monlive_start(&v, 10000);
		mx_monlive_heard(&v, 10100); /* connected */
		CHECK(mx_monlive_tick(&v, 10500, true) == MX_MONLIVE_WAIT);
		CHECK(mx_monlive_tick(&v, 10000 + MX_MON_PING_MS, true) == MX_MONLIVE_PING);
		CHECK(mx_monlive_tick(&v, 10000 + MX_MON_PING_MS + 10, true) == MX_MONLIVE_WAIT);
		CHECK(mx_monlive_tick(&v, 10000 + 2 * MX_MON_PING_MS, true) == MX_MONLIVE_PING);
		mx_monlive_heard(&v, 10000 + 2 * MX_MON_PING_MS + 5); /* the PONG */
		CHECK(mx_monlive_tick(&v, 10100 + MX_MON_GRACE_MS, true) != MX_MONLIVE_GIVE_UP);
		CHECK(mx_monlive_tick(&v, 10000 + 2 * MX_MON_PING_MS + 6 + MX_MON_GRACE_MS, true) ==
		      MX_MONLIVE_GIVE_UP);
		/* Heard after the tick read its clock: no time has passed. */
		mx_monlive_heard(&v, 50000);
		CHECK(mx_monlive_tick(&v, 49999, false) == MX_MONLIVE_WAIT);
	}
	/* Locations. */
	{
		struct mx_loc loc[MX_LOC_MAX];
		uint8_t n;
		char buf[256];

		CHECK_EQ_INT(mx_loc_parse("rack=r1 host=h2", loc, &n), 0);
		CHECK_EQ_INT(n, 3);
		mx_loc_format(loc, n, buf, sizeof(buf));
		CHECK(strcmp(buf, "host=h2,rack=r1,root=default") == 0);
		CHECK(mx_loc_parse("host=h1 host=h2", loc, &n) < 0);
		CHECK(mx_loc_parse("planet=earth", loc, &n) < 0);
		CHECK(mx_loc_parse("host=bad/name", loc, &n) < 0);
	}
	mx_map_free(m);
}

/* A map of two pools, "cold" (id 1) and "hot" (id 2), not tiered. */
static struct mx_map *tier_map(void)
{
	struct mx_map *m = mx_map_new();
	struct mx_pool p;

	for (int32_t id = 1; id <= 2; id++) {
		mx_pool_init(&p);
		p.id = id;
		strcpy(p.name, id == 1 ? "cold" : "hot");
		strcpy(p.root_name, "default");
		p.size = 2;
		p.min_size = 1;
		p.pg_num = 8;
		CHECK_EQ_INT(mx_map_add_pool(m, &p), 0);
	}
	m->next_pool_id = 3;
	return m;
}

static int roundtrip(const struct mx_map *m, struct mx_map **out)
{
	struct mx_wbuf w;
	int r;

	mx_wbuf_init(&w);
	mx_map_encode(m, &w);
	r = mx_map_decode(w.data, w.len, out);
	mx_wbuf_free(&w);
	return r;
}

static uint32_t le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void put_le32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

/* The encoding of m as an encoder before the cache settings wrote it: each
 * pool record cut back to end at created_epoch (the last `cut` bytes).
 * Returns the length written to out. */
static size_t encode_old(const struct mx_map *m, uint8_t *out, size_t cap, uint32_t cut)
{
	struct mx_wbuf w;
	size_t at = 6, o = 6;

	mx_wbuf_init(&w);
	mx_map_encode(m, &w);
	CHECK(w.len <= cap);
	memcpy(out, w.data, 6); /* magic, format */
	while (at + 6 <= w.len) {
		uint16_t id = (uint16_t)(w.data[at] | w.data[at + 1] << 8);
		uint32_t len = le32(w.data + at + 2);
		const uint8_t *b = w.data + at + 6;

		memcpy(out + o, w.data + at, 6);
		if (id != 4) { /* not the pools */
			memcpy(out + o + 6, b, len);
			o += 6 + len;
		} else {
			uint32_t n = le32(b), k = 4, ko = 4;

			memcpy(out + o + 6, b, 4);
			for (uint32_t i = 0; i < n; i++) {
				uint32_t rl = le32(b + k);

				put_le32(out + o + 6 + ko, rl - cut);
				memcpy(out + o + 6 + ko + 4, b + k + 4, rl - cut);
				k += 4 + rl;
				ko += 4 + rl - cut;
			}
			put_le32(out + o + 2, ko);
			o += 6 + ko;
		}
		at += 6 + len;
	}
	mx_wbuf_free(&w);
	return o;
}

/* The tiering fields of a pool: a round trip; maps encoded before the cache
 * settings decode with their defaults; bad values and one-sided links are
 * refused. */
static void test_map_tiering(void)
{
	struct mx_map *m = tier_map(), *d = NULL, *t;
	struct mx_pool *hot = &m->pools[1], *cold = &m->pools[0];
	uint8_t old[4096];
	size_t n;

	/* Defaults of a new pool. */
	CHECK(hot->tier_of == -1 && hot->tier == -1 && hot->cache_mode == MX_CACHE_NONE);
	CHECK(hot->cache_target_dirty_ratio == 400 && hot->cache_target_full_ratio == 800);
	CHECK(hot->promote_min_hits == 2 && hot->hit_period_s == 60 && !hot->flush_all);
	CHECK(hot->target_max_bytes == 0 && hot->target_max_objects == 0);

	/* Every field survives a round trip. */
	cold->tier = 2;
	hot->tier_of = 1;
	hot->cache_mode = MX_CACHE_WRITEBACK;
	hot->target_max_bytes = 1ull << 40;
	hot->target_max_objects = 123456789012ull;
	hot->cache_target_dirty_ratio = 250;
	hot->cache_target_full_ratio = 975;
	hot->promote_min_hits = 16;
	hot->hit_period_s = 3600;
	hot->flush_all = 1;
	hot->tier_epoch = 77;
	CHECK(mx_map_tiers_valid(m));
	CHECK_EQ_INT(roundtrip(m, &d), 0);
	if (d) {
		const struct mx_pool *c = mx_map_pool_by_name(d, "cold");
		const struct mx_pool *h = mx_map_pool_by_name(d, "hot");

		CHECK(c && c->tier == 2 && c->tier_of == -1);
		CHECK(h && h->tier_of == 1 && h->tier == -1 && h->cache_mode == MX_CACHE_WRITEBACK);
		CHECK(h && h->target_max_bytes == 1ull << 40 &&
		      h->target_max_objects == 123456789012ull);
		CHECK(h && h->cache_target_dirty_ratio == 250 && h->cache_target_full_ratio == 975);
		CHECK(h && h->promote_min_hits == 16 && h->hit_period_s == 3600 && h->flush_all == 1);
		CHECK(h && h->tier_epoch == 77 && c && c->tier_epoch == 0);
		mx_map_free(d);
		d = NULL;
	}

	/* A map encoded before the cache settings (34 bytes a pool record
	 * shorter: 26 of them, and tier_epoch's 8) still decodes, with the
	 * defaults; one encoded before tier_epoch (8 bytes shorter) has 0
	 * there; cut anywhere else, the record is refused. */
	t = tier_map();
	t->pools[0].tier = 2;
	t->pools[1].tier_of = 1;
	t->pools[1].cache_mode = MX_CACHE_READONLY;
	t->pools[1].tier_epoch = 5;
	t->pools[1].promote_min_hits = 3;
	n = encode_old(t, old, sizeof(old), 8);
	CHECK_EQ_INT(mx_map_decode(old, n, &d), 0);
	if (d) {
		const struct mx_pool *h = mx_map_pool_by_name(d, "hot");

		CHECK(h && h->promote_min_hits == 3 && h->tier_epoch == 0);
		mx_map_free(d);
		d = NULL;
	}
	t->pools[1].promote_min_hits = 2;
	n = encode_old(t, old, sizeof(old), 34);
	CHECK_EQ_INT(mx_map_decode(old, n, &d), 0);
	if (d) {
		const struct mx_pool *h = mx_map_pool_by_name(d, "hot");

		CHECK(h && h->tier_of == 1 && h->cache_mode == MX_CACHE_READONLY);
		CHECK(h && h->cache_target_dirty_ratio == 400 && h->cache_target_full_ratio == 800);
		CHECK(h && h->promote_min_hits == 2 && h->hit_period_s == 60 && !h->flush_all);
		CHECK(h && h->target_max_bytes == 0 && h->target_max_objects == 0);
		mx_map_free(d);
		d = NULL;
	}
	for (uint32_t cut = 1; cut < 34; cut++) {
		if (cut == 8)
			continue;
		n = encode_old(t, old, sizeof(old), cut);
		CHECK(mx_map_decode(old, n, &d) < 0);
		mx_map_free(d);
		d = NULL;
	}
	mx_map_free(t);

	/* Bad values are refused by validation and by the decoder. */
	{
		static const struct {
			const char *what;
			int field;
			int64_t v;
		} bad[] = {
			{"dirty above full", 0, 980},  {"full above 1000", 1, 1001},
			{"full below dirty", 1, 200},  {"promote 0", 2, 0},
			{"promote 17", 2, 17},         {"hit period 0", 3, 0},
			{"hit period 3601", 3, 3601},  {"flush_all 2", 4, 2},
			{"mode 3", 5, 3},              {"tier_of itself", 6, 2},
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			struct mx_map *b = mx_map_dup(m);
			struct mx_pool *h = &b->pools[1];

			switch (bad[i].field) {
			case 0: h->cache_target_dirty_ratio = (uint16_t)bad[i].v; break;
			case 1: h->cache_target_full_ratio = (uint16_t)bad[i].v; break;
			case 2: h->promote_min_hits = (uint8_t)bad[i].v; break;
			case 3: h->hit_period_s = (uint32_t)bad[i].v; break;
			case 4: h->flush_all = (uint8_t)bad[i].v; break;
			case 5: h->cache_mode = (uint8_t)bad[i].v; break;
			default: h->tier_of = (int32_t)bad[i].v; break;
			}
			if (mx_pool_validate(h) == 0 || roundtrip(b, &d) == 0)
				fprintf(stderr, "accepted: %s\n", bad[i].what);
			CHECK(mx_pool_validate(h) < 0);
			CHECK(roundtrip(b, &d) < 0);
			mx_map_free(d);
			d = NULL;
			mx_map_free(b);
		}
	}
	/* A mode or flush_all on a pool that is not a cache. */
	{
		struct mx_pool p = m->pools[0];

		p.cache_mode = MX_CACHE_READONLY;
		CHECK(mx_pool_validate(&p) < 0);
		p.cache_mode = MX_CACHE_NONE;
		p.flush_all = 1;
		CHECK(mx_pool_validate(&p) < 0);
		p.flush_all = 0;
		p.tier_of = 2; /* both a cache and a base */
		CHECK(mx_pool_validate(&p) < 0);
	}
	/* Links must be mutual and name existing pools. */
	m->pools[0].tier = -1;
	CHECK(!mx_map_tiers_valid(m));
	CHECK(roundtrip(m, &d) < 0);
	mx_map_free(d);
	d = NULL;
	m->pools[0].tier = 2;
	m->pools[1].tier_of = 7;
	CHECK(!mx_map_tiers_valid(m));
	CHECK(roundtrip(m, &d) < 0);
	mx_map_free(d);
	mx_map_free(m);
}

static void test_peering_msgs(void)
{
	struct mx_pg_ref ref = {.epoch = 9, .pool = 2, .pg = 5, .interval = 7}, rr;
	struct mx_wire_pg_info info = {.lu_epoch = 7, .lu_seq = 3, .les = 7, .n_acting = 2,
				       .acting = {4, 1}, .flags = MX_PGI_SUSPECT, .wb_lost = 6};
	struct mx_wire_log_entry e = {.ver_epoch = 7, .ver_seq = 3, .kind = 1, .name = "obj",
				      .name_len = 3, .client_id = 11, .tid = 12}, d;
	struct mx_msg_pg_notify n;
	struct mx_msg_pg_activate a = {.ref = ref, .les = 7, .wb_lost = 5, .with_log = true}, ad;
	struct mx_msg_pg_object o = {.ref = ref, .name = "obj", .name_len = 3, .exists = true,
				     .ver_epoch = 7, .ver_seq = 3}, od;
	struct mx_wbuf w;
	size_t at;

	mx_wbuf_init(&w);
	mx_enc_pg_query(&w, &ref);
	CHECK_EQ_INT(mx_dec_pg_query(w.data, (uint32_t)w.len, &rr), 0);
	CHECK(rr.epoch == 9 && rr.pool == 2 && rr.pg == 5 && rr.interval == 7);
	/* A negative pool is refused. */
	ref.pool = -1;
	mx_wbuf_reset(&w);
	mx_enc_pg_query(&w, &ref);
	CHECK_EQ_INT(mx_dec_pg_query(w.data, (uint32_t)w.len, &rr), -EBADMSG);
	ref.pool = 2;

	mx_wbuf_reset(&w);
	at = mx_enc_pg_notify_head(&w, 0, &ref, &info);
	mx_enc_pg_log_entry(&w, &e);
	mx_enc_pg_log_entry(&w, &e);
	mx_enc_pg_notify_end(&w, at, 2, &info);
	CHECK_EQ_INT(mx_dec_pg_notify(w.data, (uint32_t)w.len, &n), 0);
	CHECK(n.n == 2 && n.info.les == 7 && n.info.n_acting == 2 && n.info.acting[0] == 4);
	CHECK(n.info.flags == MX_PGI_SUSPECT && n.info.wb_lost == 6);
	CHECK_EQ_INT(mx_pg_log_next(&n.entries, &d), 0);
	CHECK(d.ver_seq == 3 && d.name_len == 3 && memcmp(d.name, "obj", 3) == 0 && d.tid == 12);
	CHECK_EQ_INT(mx_pg_log_next(&n.entries, &d), 0);
	CHECK(mx_pg_log_next(&n.entries, &d) < 0); /* no third entry */
	CHECK_EQ_INT(mx_msg_decode_any(MX_MSG_PG_NOTIFY, w.data, (uint32_t)w.len), 0);
	/* Cut inside the entries: refused; without the fields after them
	 * (an older peer's): no flags, no wb_lost. */
	for (size_t k = 0; k + 9 < w.len; k++)
		CHECK(mx_msg_decode_any(MX_MSG_PG_NOTIFY, w.data, (uint32_t)k) < 0);
	CHECK_EQ_INT(mx_dec_pg_notify(w.data, (uint32_t)w.len - 9, &n), 0);
	CHECK(n.n == 2 && n.info.flags == 0 && n.info.wb_lost == 0 && n.info.les == 7);

	mx_wbuf_reset(&w);
	at = mx_enc_pg_activate_head(&w, &a);
	mx_enc_pg_log_entry(&w, &e);
	mx_enc_pg_activate_end(&w, at, 1, &a);
	CHECK_EQ_INT(mx_dec_pg_activate(w.data, (uint32_t)w.len, &ad), 0);
	CHECK(ad.with_log && ad.les == 7 && ad.wb_lost == 5 && ad.n == 1);
	CHECK_EQ_INT(mx_dec_pg_activate(w.data, (uint32_t)w.len - 8, &ad), 0);
	CHECK(ad.with_log && ad.les == 7 && ad.wb_lost == 0 && ad.n == 1);
	CHECK(mx_dec_pg_activate(w.data, (uint32_t)w.len - 9, &ad) < 0); /* a cut entry */

	mx_wbuf_reset(&w);
	at = mx_enc_pg_object_head(&w, &o);
	mx_enc_pg_object_xattr(&w, "k", "vv", 2);
	mx_enc_pg_object_end(&w, at, 1, "data", 4);
	CHECK_EQ_INT(mx_dec_pg_object(w.data, (uint32_t)w.len, &od), 0);
	CHECK(od.exists && od.n_xattrs == 1 && od.data_len == 4 &&
	      memcmp(od.data, "data", 4) == 0);
	for (size_t k = 0; k < w.len; k++)
		CHECK(mx_dec_pg_object(w.data, (uint32_t)k, &od) < 0);

	/* PG_REMOVE: a round trip, truncations and a negative sender. */
	{
		struct mx_msg_pg_remove rm = {.ref = ref, .from = 3}, rmd;

		mx_wbuf_reset(&w);
		mx_enc_pg_remove(&w, &rm);
		CHECK_EQ_INT(mx_dec_pg_remove(w.data, (uint32_t)w.len, &rmd), 0);
		CHECK(rmd.ref.epoch == 9 && rmd.ref.pool == 2 && rmd.ref.pg == 5 &&
		      rmd.ref.interval == 7 && rmd.from == 3);
		CHECK_EQ_INT(mx_msg_decode_any(MX_MSG_PG_REMOVE, w.data, (uint32_t)w.len), 0);
		for (size_t k = 0; k < w.len; k++)
			CHECK(mx_dec_pg_remove(w.data, (uint32_t)k, &rmd) < 0);
		rm.from = -1;
		mx_wbuf_reset(&w);
		mx_enc_pg_remove(&w, &rm);
		CHECK_EQ_INT(mx_dec_pg_remove(w.data, (uint32_t)w.len, &rmd), -EBADMSG);
	}
	/* PG_SCAN: with a cursor, without one, and a cursor holding a NUL. */
	{
		struct mx_msg_pg_scan sc = {.ref = ref, .cursor = "obj.7", .cursor_len = 5}, scd;

		mx_wbuf_reset(&w);
		mx_enc_pg_scan(&w, &sc);
		CHECK_EQ_INT(mx_dec_pg_scan(w.data, (uint32_t)w.len, &scd), 0);
		CHECK(scd.ref.interval == 7 && scd.cursor_len == 5 &&
		      memcmp(scd.cursor, "obj.7", 5) == 0);
		CHECK_EQ_INT(mx_msg_decode_any(MX_MSG_PG_SCAN, w.data, (uint32_t)w.len), 0);
		for (size_t k = 0; k < w.len; k++)
			CHECK(mx_dec_pg_scan(w.data, (uint32_t)k, &scd) < 0);
		sc.cursor_len = 0;
		mx_wbuf_reset(&w);
		mx_enc_pg_scan(&w, &sc);
		CHECK_EQ_INT(mx_dec_pg_scan(w.data, (uint32_t)w.len, &scd), 0);
		CHECK(scd.cursor_len == 0);
		sc.cursor = "a\0b";
		sc.cursor_len = 3;
		mx_wbuf_reset(&w);
		mx_enc_pg_scan(&w, &sc);
		CHECK_EQ_INT(mx_dec_pg_scan(w.data, (uint32_t)w.len, &scd), -EBADMSG);
	}
	mx_wbuf_free(&w);
}

static void test_scrub_msgs(void)
{
	struct mx_pg_ref ref = {.epoch = 9, .pool = 2, .pg = 5, .interval = 7};
	struct mx_wbuf w;

	mx_wbuf_init(&w);
	/* PG_SCRUB and its reply; unknown flags are refused. */
	{
		struct mx_msg_pg_scrub s = {.epoch = 4, .pool = 1, .pg = 3,
					    .flags = MX_SCRUB_DEEP | MX_SCRUB_REPAIR}, d;

		mx_enc_pg_scrub(&w, &s);
		CHECK_EQ_INT(mx_dec_pg_scrub(w.data, (uint32_t)w.len, &d), 0);
		CHECK(d.epoch == 4 && d.pool == 1 && d.pg == 3 &&
		      d.flags == (MX_SCRUB_DEEP | MX_SCRUB_REPAIR));
		CHECK_EQ_INT(mx_msg_decode_any(MX_MSG_PG_SCRUB, w.data, (uint32_t)w.len), 0);
		for (size_t k = 0; k < w.len; k++)
			CHECK(mx_dec_pg_scrub(w.data, (uint32_t)k, &d) < 0);
		s.flags = 0x80;
		mx_wbuf_reset(&w);
		mx_enc_pg_scrub(&w, &s);
		CHECK_EQ_INT(mx_dec_pg_scrub(w.data, (uint32_t)w.len, &d), -EBADMSG);
	}
	{
		struct mx_msg_pg_scrub_reply s = {.status = mx_errno_to_wire(-EIO), .epoch = 6,
						  .scrubbed = 10, .inconsistent = 2,
						  .repaired = 1, .errors = 1}, d;

		mx_wbuf_reset(&w);
		mx_enc_pg_scrub_reply(&w, &s);
		CHECK_EQ_INT(mx_dec_pg_scrub_reply(w.data, (uint32_t)w.len, &d), 0);
		CHECK(mx_wire_to_errno(d.status) == -EIO && d.epoch == 6 && d.scrubbed == 10 &&
		      d.inconsistent == 2 && d.repaired == 1 && d.errors == 1);
		CHECK_EQ_INT(mx_msg_decode_any(MX_MSG_PG_SCRUB_REPLY, w.data, (uint32_t)w.len), 0);
		for (size_t k = 0; k < w.len; k++)
			CHECK(mx_dec_pg_scrub_reply(w.data, (uint32_t)k, &d) < 0);
	}
	/* SCRUB_MAP request and a map of two entries. */
	{
		struct mx_msg_scrub_map_req q = {.ref = ref, .flags = MX_SCRUB_DEEP}, d;

		mx_wbuf_reset(&w);
		mx_enc_scrub_map_req(&w, &q);
		CHECK_EQ_INT(mx_dec_scrub_map_req(w.data, (uint32_t)w.len, &d), 0);
		CHECK(d.ref.interval == 7 && d.ref.pg == 5 && d.flags == MX_SCRUB_DEEP);
		CHECK_EQ_INT(mx_msg_decode_any(MX_MSG_PG_SCRUB_MAP, w.data, (uint32_t)w.len), 0);
		for (size_t k = 0; k < w.len; k++)
			CHECK(mx_dec_scrub_map_req(w.data, (uint32_t)k, &d) < 0);
	}
	{
		struct mx_scrub_entry e[2] = {
			{.name = "a", .name_len = 1, .ver_epoch = 3, .ver_seq = 4, .size = 5,
			 .attr_digest = 0xdeadbeef, .data_digest = 0x12345678},
			{.name = "obj.2", .name_len = 5, .ver_epoch = 1, .ver_seq = 2, .size = 0,
			 .flags = MX_SCRUB_E_DAMAGED},
		}, g;
		struct mx_msg_scrub_map m;
		size_t at;

		mx_wbuf_reset(&w);
		at = mx_enc_scrub_map_head(&w, 0, &ref, MX_SCRUB_DEEP);
		mx_enc_scrub_entry(&w, &e[0]);
		mx_enc_scrub_entry(&w, &e[1]);
		mx_enc_scrub_map_end(&w, at, 2);
		CHECK_EQ_INT(mx_dec_scrub_map(w.data, (uint32_t)w.len, &m), 0);
		CHECK(m.n == 2 && m.flags == MX_SCRUB_DEEP && m.ref.interval == 7);
		CHECK_EQ_INT(mx_scrub_entry_next(&m.entries, &g), 0);
		CHECK(g.name_len == 1 && g.name[0] == 'a' && g.ver_epoch == 3 && g.ver_seq == 4 &&
		      g.size == 5 && g.attr_digest == 0xdeadbeef && g.data_digest == 0x12345678 &&
		      g.flags == 0);
		CHECK_EQ_INT(mx_scrub_entry_next(&m.entries, &g), 0);
		CHECK(g.name_len == 5 && memcmp(g.name, "obj.2", 5) == 0 &&
		      g.flags == MX_SCRUB_E_DAMAGED);
		CHECK_EQ_INT(mx_msg_decode_any(MX_MSG_PG_SCRUB_MAP_REPLY, w.data, (uint32_t)w.len),
			     0);
		for (size_t k = 0; k < w.len; k++)
			CHECK(mx_msg_decode_any(MX_MSG_PG_SCRUB_MAP_REPLY, w.data, (uint32_t)k) < 0);
	}
	mx_wbuf_free(&w);
}

/* PG_STATS: a head and two records round trip; every truncation fails;
 * a record longer than known (a newer OSD) is skipped over; a count larger
 * than the payload can hold fails before any record is read. */
static void test_pg_stats(void)
{
	struct mx_msg_pg_stats h = {.osd_id = 3, .incarnation = 77, .epoch = 12,
				    .stamp_ms = 1700000000000ull, .fs_total = 1000,
				    .fs_used = 600, .fs_avail = 400}, d;
	struct mx_pg_stat s[2] = {
		{.pool = 1, .pg = 0x1f, .interval = 9,
		 .state = MX_PGS_ACTIVE | MX_PGS_RECOVERING | MX_PGS_DEGRADED, .objects = 10,
		 .bytes = 4096, .degraded = 3, .misplaced = 1, .recovered_objects = 5,
		 .recovered_bytes = 2048, .scrub_ms = 11, .deep_scrub_ms = 12},
		{.pool = 2, .pg = 0, .interval = 4, .state = MX_PGS_ACTIVE | MX_PGS_CLEAN},
	}, g;
	struct mx_wbuf w;
	char name[128];
	size_t at;

	mx_wbuf_init(&w);
	at = mx_enc_pg_stats_head(&w, &h);
	mx_enc_pg_stat(&w, &s[0]);
	mx_enc_pg_stat(&w, &s[1]);
	mx_enc_pg_stats_end(&w, at, 2);
	CHECK_EQ_INT(mx_dec_pg_stats(w.data, (uint32_t)w.len, &d), 0);
	CHECK(d.osd_id == 3 && d.incarnation == 77 && d.epoch == 12 &&
	      d.stamp_ms == 1700000000000ull && d.fs_total == 1000 && d.fs_used == 600 &&
	      d.fs_avail == 400 && d.n == 2);
	CHECK_EQ_INT(mx_pg_stat_next(&d.entries, &g), 0);
	CHECK(g.pool == 1 && g.pg == 0x1f && g.interval == 9 && g.state == s[0].state &&
	      g.objects == 10 && g.bytes == 4096 && g.degraded == 3 && g.misplaced == 1 &&
	      g.recovered_objects == 5 && g.recovered_bytes == 2048 && g.scrub_ms == 11 &&
	      g.deep_scrub_ms == 12);
	CHECK_EQ_INT(mx_pg_stat_next(&d.entries, &g), 0);
	CHECK(g.pool == 2 && g.pg == 0 && g.interval == 4 &&
	      g.state == (MX_PGS_ACTIVE | MX_PGS_CLEAN) && g.objects == 0);
	CHECK(mx_pg_stat_next(&d.entries, &g) < 0); /* no third */
	CHECK_EQ_INT(mx_msg_decode_any(MX_MSG_MON_PG_STATS, w.data, (uint32_t)w.len), 0);
	for (size_t k = 0; k < w.len; k++)
		CHECK(mx_msg_decode_any(MX_MSG_MON_PG_STATS, w.data, (uint32_t)k) < 0);

	/* A record with 4 unknown trailing bytes (a newer OSD). */
	mx_wbuf_reset(&w);
	at = mx_enc_pg_stats_head(&w, &h);
	{
		struct mx_wbuf rec;

		mx_wbuf_init(&rec);
		mx_enc_pg_stat(&rec, &s[0]);
		mx_put_u32(&rec, 0xabcdef01u);
		mx_put_u16(&w, (uint16_t)(rec.len - 2));
		mx_put_bytes(&w, rec.data + 2, rec.len - 2);
		mx_wbuf_free(&rec);
	}
	mx_enc_pg_stat(&w, &s[1]);
	mx_enc_pg_stats_end(&w, at, 2);
	CHECK_EQ_INT(mx_dec_pg_stats(w.data, (uint32_t)w.len, &d), 0);
	CHECK_EQ_INT(mx_pg_stat_next(&d.entries, &g), 0);
	CHECK(g.pool == 1 && g.pg == 0x1f && g.deep_scrub_ms == 12);
	CHECK_EQ_INT(mx_pg_stat_next(&d.entries, &g), 0);
	CHECK(g.pool == 2);

	/* A count the payload cannot hold. */
	mx_wbuf_reset(&w);
	at = mx_enc_pg_stats_head(&w, &h);
	mx_enc_pg_stat(&w, &s[0]);
	mx_enc_pg_stats_end(&w, at, 1000000);
	CHECK_EQ_INT(mx_dec_pg_stats(w.data, (uint32_t)w.len, &d), -EBADMSG);
	/* A record shorter than the known fields. */
	mx_wbuf_reset(&w);
	at = mx_enc_pg_stats_head(&w, &h);
	mx_put_u16(&w, 8);
	mx_put_bytes(&w, "\0\0\0\0\0\0\0\0", 8);
	mx_put_bytes(&w, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
			 "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
			 "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
			 "\0\0\0\0\0\0\0\0\0\0\0\0",
		     84);
	mx_enc_pg_stats_end(&w, at, 1);
	CHECK_EQ_INT(mx_dec_pg_stats(w.data, (uint32_t)w.len, &d), 0);
	CHECK(mx_pg_stat_next(&d.entries, &g) < 0);
	mx_wbuf_free(&w);

	CHECK(strcmp(mx_pg_state_name(MX_PGS_ACTIVE | MX_PGS_CLEAN, name, sizeof(name)),
		     "active+clean") == 0);
	CHECK(strcmp(mx_pg_state_name(MX_PGS_ACTIVE | MX_PGS_DEGRADED | MX_PGS_UNDERSIZED |
				      MX_PGS_RECOVERING, name, sizeof(name)),
		     "active+recovering+undersized+degraded") == 0);
	CHECK(strcmp(mx_pg_state_name(0, name, sizeof(name)), "inactive") == 0);
	CHECK(strcmp(mx_pg_state_name(MX_PGS_STALE | MX_PGS_PEERING, name, sizeof(name)),
		     "stale+peering") == 0);
	/* Truncated names stay NUL-terminated. */
	CHECK(strlen(mx_pg_state_name(0x1fff, name, 12)) < 12);
}

static void test_redirect(void)
{
	struct mx_msg_mon_redirect a = {.leader = "10.0.0.1:6789", .message = "go there"}, b;
	struct mx_wbuf w;

	mx_wbuf_init(&w);
	mx_enc_mon_redirect(&w, &a);
	CHECK_EQ_INT(mx_dec_mon_redirect(w.data, (uint32_t)w.len, &b), 0);
	CHECK(strcmp(b.leader, a.leader) == 0 && strcmp(b.message, a.message) == 0);
	CHECK_EQ_INT(mx_msg_decode_any(MX_MSG_MON_REDIRECT, w.data, (uint32_t)w.len), 0);
	for (size_t n = 0; n < w.len; n++)
		CHECK(mx_dec_mon_redirect(w.data, (uint32_t)n, &b) < 0);
	mx_wbuf_free(&w);
}

int main(void)
{
	test_redirect();
	test_crc();
	test_status();
	test_header();
	test_osd_op();
	test_repop_nolog();
	test_replies();
	test_command();
	test_map();
	test_map_tiering();
	test_peering_msgs();
	test_scrub_msgs();
	test_pg_stats();
	return mx_check_done("msg");
}

/*
 * Unit test of the NBD wire encoding and decoding of the protocol tests
 * (nbd_wire.c): byte layouts against the protocol document, and every
 * length the document does not allow refused.
 */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "nbd_wire.h"

static void test_integers(void)
{
	uint8_t b[8];

	nbd_put16(b, 0x1234);
	CHECK(b[0] == 0x12 && b[1] == 0x34);
	nbd_put32(b, 0x89abcdefU);
	CHECK(b[0] == 0x89 && b[3] == 0xef);
	CHECK_EQ_INT(nbd_get32(b), 0x89abcdefU);
	nbd_put64(b, 0x0102030405060708ULL);
	CHECK(b[0] == 1 && b[7] == 8);
	CHECK(nbd_get64(b) == 0x0102030405060708ULL);
}

static void test_greeting(void)
{
	uint8_t b[NBD_GREETING_LEN];
	struct nbd_greeting g;

	memcpy(b, "NBDMAGICIHAVEOPT", 16);
	nbd_put16(b + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	CHECK_EQ_INT(nbd_greeting_decode(b, &g), 0);
	CHECK_EQ_INT(g.flags, 3);
	/* Oldstyle: cliserv_magic instead of IHAVEOPT. */
	nbd_put64(b + 8, 0x00420281861253ULL);
	CHECK_EQ_INT(nbd_greeting_decode(b, &g), -EPROTO);
}

static void test_options(void)
{
	static const uint16_t infos[] = {NBD_INFO_BLOCK_SIZE, NBD_INFO_NAME};
	static const char *const q[] = {"base:allocation", "x-a:"};
	uint8_t b[NBD_MAX_STRING + 64];
	char name[NBD_MAX_STRING + 2];
	struct nbd_opt_reply r;

	nbd_opt_hdr_encode(b, NBD_OPT_MAGIC, NBD_OPT_GO, 7);
	CHECK(memcmp(b, "IHAVEOPT", 8) == 0);
	CHECK_EQ_INT(nbd_get32(b + 8), NBD_OPT_GO);
	CHECK_EQ_INT(nbd_get32(b + 12), 7);

	CHECK_EQ_INT(nbd_info_request_encode(b, sizeof(b), "vol", infos, 2), 4 + 3 + 2 + 4);
	CHECK_EQ_INT(nbd_get32(b), 3);
	CHECK(memcmp(b + 4, "vol", 3) == 0);
	CHECK_EQ_INT(nbd_get16(b + 7), 2);
	CHECK_EQ_INT(nbd_get16(b + 9), NBD_INFO_BLOCK_SIZE);
	CHECK_EQ_INT(nbd_get16(b + 11), NBD_INFO_NAME);
	CHECK_EQ_INT(nbd_info_request_encode(b, 10, "vol", infos, 2), -ENOSPC);
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	CHECK_EQ_INT(nbd_info_request_encode(b, sizeof(b), name, infos, 0), -EINVAL);

	CHECK_EQ_INT(nbd_meta_request_encode(b, sizeof(b), "", q, 2), 4 + 4 + 4 + 15 + 4 + 4);
	CHECK_EQ_INT(nbd_get32(b), 0);
	CHECK_EQ_INT(nbd_get32(b + 4), 2);
	CHECK_EQ_INT(nbd_get32(b + 8), 15);
	CHECK(memcmp(b + 12, "base:allocation", 15) == 0);
	CHECK_EQ_INT(nbd_get32(b + 27), 4);
	CHECK_EQ_INT(nbd_meta_request_encode(b, 20, "", q, 2), -ENOSPC);

	nbd_put64(b, NBD_REP_MAGIC);
	nbd_put32(b + 8, NBD_OPT_INFO);
	nbd_put32(b + 12, NBD_REP_ERR_UNSUP);
	nbd_put32(b + 16, 5);
	CHECK_EQ_INT(nbd_opt_reply_hdr_decode(b, &r), 0);
	CHECK_EQ_INT(r.option, NBD_OPT_INFO);
	CHECK(r.type == NBD_REP_ERR_UNSUP);
	CHECK_EQ_INT(r.len, 5);
	b[0] ^= 1;
	CHECK_EQ_INT(nbd_opt_reply_hdr_decode(b, &r), -EPROTO);
}

static void test_info_replies(void)
{
	struct nbd_export_info ei;
	uint8_t b[16] = {0};

	memset(&ei, 0, sizeof(ei));
	nbd_put16(b, NBD_INFO_EXPORT);
	nbd_put64(b + 2, 1ULL << 36);
	nbd_put16(b + 10, NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY);
	CHECK_EQ_INT(nbd_info_reply_decode(b, 12, &ei), NBD_INFO_EXPORT);
	CHECK(ei.has_export && ei.size == 1ULL << 36 && ei.eflags == 3);
	CHECK_EQ_INT(nbd_info_reply_decode(b, 11, &ei), -EPROTO);
	CHECK_EQ_INT(nbd_info_reply_decode(b, 13, &ei), -EPROTO);

	nbd_put16(b, NBD_INFO_BLOCK_SIZE);
	nbd_put32(b + 2, 512);
	nbd_put32(b + 6, 4096);
	nbd_put32(b + 10, 1U << 25);
	CHECK_EQ_INT(nbd_info_reply_decode(b, 14, &ei), NBD_INFO_BLOCK_SIZE);
	CHECK(ei.has_block_size && ei.min_block == 512 && ei.pref_block == 4096 &&
	      ei.max_block == 1U << 25);
	CHECK_EQ_INT(nbd_info_reply_decode(b, 12, &ei), -EPROTO);

	/* Unknown types are skipped; too short for a type is refused. */
	memset(&ei, 0, sizeof(ei));
	nbd_put16(b, 99);
	CHECK_EQ_INT(nbd_info_reply_decode(b, 7, &ei), 99);
	CHECK(!ei.has_export && !ei.has_block_size);
	CHECK_EQ_INT(nbd_info_reply_decode(b, 1, &ei), -EPROTO);
}

static void test_block_sizes(void)
{
	CHECK_EQ_INT(nbd_block_size_check(1, 4096, UINT32_MAX), 0);
	CHECK_EQ_INT(nbd_block_size_check(512, 512, 512), 0);
	CHECK_EQ_INT(nbd_block_size_check(65536, 65536, 1U << 20), 0);
	CHECK_EQ_INT(nbd_block_size_check(0, 4096, 4096), -EPROTO);      /* not a power of 2 */
	CHECK_EQ_INT(nbd_block_size_check(3, 4096, 4096), -EPROTO);
	CHECK_EQ_INT(nbd_block_size_check(131072, 131072, 131072), -EPROTO); /* > 64 KiB */
	CHECK_EQ_INT(nbd_block_size_check(1, 256, 4096), -EPROTO);       /* preferred < 512 */
	CHECK_EQ_INT(nbd_block_size_check(4096, 2048, 4096), -EPROTO);   /* preferred < min */
	CHECK_EQ_INT(nbd_block_size_check(512, 6144, 8192), -EPROTO);    /* not a power of 2 */
	CHECK_EQ_INT(nbd_block_size_check(512, 4096, 4095), -EPROTO);    /* max < preferred */
	CHECK_EQ_INT(nbd_block_size_check(512, 4096, 1000000), 0);       /* any max >= pref */
}

static void test_request(void)
{
	struct nbd_request rq = {
		.magic = NBD_REQUEST_MAGIC,
		.flags = NBD_CMD_FLAG_FUA,
		.type = NBD_CMD_WRITE,
		.cookie = 0x1122334455667788ULL,
		.offset = 1ULL << 40,
		.len = 4096,
	};
	uint8_t b[NBD_REQUEST_LEN];

	nbd_request_encode(b, &rq);
	CHECK_EQ_INT(nbd_get32(b), 0x25609513);
	CHECK_EQ_INT(nbd_get16(b + 4), NBD_CMD_FLAG_FUA);
	CHECK_EQ_INT(nbd_get16(b + 6), NBD_CMD_WRITE);
	CHECK(nbd_get64(b + 8) == 0x1122334455667788ULL);
	CHECK(nbd_get64(b + 16) == 1ULL << 40);
	CHECK_EQ_INT(nbd_get32(b + 24), 4096);
}

static void test_replies(void)
{
	struct nbd_reply_hdr h;
	uint8_t b[NBD_CHUNK_HDR_LEN];

	nbd_put32(b, NBD_SIMPLE_REPLY_MAGIC);
	nbd_put32(b + 4, NBD_EINVAL);
	nbd_put64(b + 8, 42);
	CHECK_EQ_INT(nbd_reply_hdr_len(b), NBD_SIMPLE_REPLY_LEN);
	CHECK_EQ_INT(nbd_reply_hdr_decode(b, NBD_SIMPLE_REPLY_LEN, &h), 0);
	CHECK(!h.structured && h.error == NBD_EINVAL && h.cookie == 42);
	CHECK_EQ_INT(nbd_reply_hdr_decode(b, NBD_CHUNK_HDR_LEN, &h), -EPROTO);

	nbd_put32(b, NBD_STRUCTURED_REPLY_MAGIC);
	nbd_put16(b + 4, NBD_REPLY_FLAG_DONE);
	nbd_put16(b + 6, NBD_REPLY_TYPE_OFFSET_DATA);
	nbd_put64(b + 8, 7);
	nbd_put32(b + 16, 4104);
	CHECK_EQ_INT(nbd_reply_hdr_len(b), NBD_CHUNK_HDR_LEN);
	CHECK_EQ_INT(nbd_reply_hdr_decode(b, NBD_CHUNK_HDR_LEN, &h), 0);
	CHECK(h.structured && h.flags == NBD_REPLY_FLAG_DONE &&
	      h.type == NBD_REPLY_TYPE_OFFSET_DATA && h.cookie == 7 && h.len == 4104);

	nbd_put32(b, 0x96744668); /* the historic reply magic */
	CHECK_EQ_INT(nbd_reply_hdr_len(b), -EPROTO);
	CHECK_EQ_INT(nbd_reply_hdr_decode(b, NBD_SIMPLE_REPLY_LEN, &h), -EPROTO);
}

static void test_error_chunks(void)
{
	struct nbd_error_chunk e;
	uint8_t b[32];

	nbd_put32(b, NBD_EPERM);
	nbd_put16(b + 4, 3);
	memcpy(b + 6, "ro!", 3);
	CHECK_EQ_INT(nbd_error_chunk_decode(b, 9, NBD_REPLY_TYPE_ERROR, &e), 0);
	CHECK(e.error == NBD_EPERM && e.msg_len == 3 && memcmp(e.msg, "ro!", 3) == 0);
	CHECK(!e.has_offset);
	CHECK_EQ_INT(nbd_error_chunk_decode(b, 8, NBD_REPLY_TYPE_ERROR, &e), -EPROTO);
	CHECK_EQ_INT(nbd_error_chunk_decode(b, 5, NBD_REPLY_TYPE_ERROR, &e), -EPROTO);

	nbd_put64(b + 9, 1234);
	CHECK_EQ_INT(nbd_error_chunk_decode(b, 17, NBD_REPLY_TYPE_ERROR_OFFSET, &e), 0);
	CHECK(e.has_offset && e.offset == 1234);
	CHECK_EQ_INT(nbd_error_chunk_decode(b, 16, NBD_REPLY_TYPE_ERROR_OFFSET, &e), -EPROTO);

	/* An unknown error type: the common fields still decode. */
	CHECK_EQ_INT(nbd_error_chunk_decode(b, 9, NBD_REPLY_TYPE_FLAG_ERROR | 77, &e), 0);

	nbd_put32(b, 0); /* error MUST be nonzero */
	CHECK_EQ_INT(nbd_error_chunk_decode(b, 9, NBD_REPLY_TYPE_ERROR, &e), -EPROTO);
}

int main(void)
{
	test_integers();
	test_greeting();
	test_options();
	test_info_replies();
	test_block_sizes();
	test_request();
	test_replies();
	test_error_chunks();
	return mx_check_done("test_nbd_wire");
}

/*
 * nbd_bad_input: sends an NBD server every request the NBD protocol forbids
 * (doc/proto.md of the nbd project) and checks that each is refused the way
 * the protocol says, and that the server keeps serving: after every refusal
 * that keeps the connection, a read on that same connection must return
 * the data last written there; after every refusal that ends it, a new
 * connection must work.  It speaks the protocol itself over raw sockets
 * (nbd_client.c), so it can send what no real client would.
 *
 *   nbd_bad_input --unix PATH | --tcp HOST:PORT
 *                 [--export NAME] [--read-only] [--min-block N]
 *
 * --read-only: the export must refuse writes (NBD_FLAG_READ_ONLY set).
 * --min-block N: the server must advertise a minimum block size of N; when
 * N > 1, requests not aligned to it are sent and must be refused.
 *
 * Each case prints "ok NAME" (with "# detail" when there is something to
 * say, such as which of the allowed errors came back) or "FAIL NAME: why";
 * the last line is "N passed, N failed" and the exit status is 1 if any
 * case failed.  The cases run in this order:
 *
 *   1. option haggling on one connection: malformed and unknown options,
 *      each answered with an error and haggling going on; NBD_OPT_INFO and
 *      NBD_OPT_GO with NBD_INFO_BLOCK_SIZE;
 *   2. connections the server must drop (bad option magic, unknown client
 *      flags), each followed by a new connection that works;
 *   3. the transmission cases, once with simple replies ("simple/") and once
 *      with structured replies and base:allocation ("structured/"): out of
 *      range, wrapping, oversized, misaligned, unknown and unadvertised
 *      commands, flags that are not allowed, writes to a read-only export,
 *      block status without a metadata context, a bad request magic;
 *   4. a fresh connection that writes and reads (reads only, read-only).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nbd_client.h"

/* No run may take longer than this (seconds), whatever the server does. */
#define RUN_TIMEOUT 120
/* Largest oversized write whose payload is really sent. */
#define MAX_SENT_PAYLOAD (64U << 20)
/* An option number no server knows. */
#define OPT_UNKNOWN 0x4d58U
/* A command type no server knows. */
#define CMD_UNKNOWN 0x4d58U

/* The run: options, what is known of the export, and the tally. */
struct ctx {
	struct nbd_addr addr;
	const char *export;
	bool read_only;
	uint32_t want_min_block; /* --min-block, 0 if not given */
	unsigned int passed, failed;

	bool known;          /* the fields below are set (learn()) */
	uint64_t size;
	uint32_t min_block;  /* advertised minimum, 1 if none */
	uint32_t max_block;  /* advertised maximum payload, 0 if none */
	uint32_t unit;       /* length of the checked regions */
	uint64_t end;        /* size rounded down to min_block */
	uint64_t end_up;     /* size rounded up to min_block */
	uint64_t tail_off;   /* the last checked region: [tail_off, end) */
	bool have_ref;       /* head and tail hold the export's data */
	uint8_t *head;       /* expected data of [0, unit); from malloc */
	uint8_t *tail;       /* expected data of [tail_off, end); from malloc */
	uint8_t *buf;        /* scratch of 2 * unit bytes; from malloc */
	uint8_t *wbuf;       /* write payload of 2 * unit bytes; from malloc */
	unsigned int seed;   /* pattern generation */
};

/* A transmission-phase connection and how it was negotiated. */
struct session {
	const char *mode; /* prefix of the case names */
	struct nbd_session_opts opts;
	struct nbd_conn conn;
};

static void on_alarm(int sig)
{
	static const char msg[] = "FAIL run_timeout: the run took too long\n";

	(void)sig;
	(void)!write(STDOUT_FILENO, msg, sizeof(msg) - 1);
	_exit(1);
}

__attribute__((format(printf, 5, 0)))
static void vreport(struct ctx *x, bool good, const struct session *s, const char *name,
		    const char *fmt, va_list ap)
{
	printf("%s %s%s%s", good ? "ok" : "FAIL", s ? s->mode : "", s ? "/" : "", name);
	if (fmt && *fmt) {
		fputs(good ? " # " : ": ", stdout);
		vprintf(fmt, ap);
	}
	putchar('\n');
	fflush(stdout);
	if (good)
		x->passed++;
	else
		x->failed++;
}

__attribute__((format(printf, 4, 5)))
static void pass(struct ctx *x, const struct session *s, const char *name, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(x, true, s, name, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 4, 5)))
static void fail(struct ctx *x, const struct session *s, const char *name, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(x, false, s, name, fmt, ap);
	va_end(ap);
}

static uint64_t round_up(uint64_t v, uint32_t a)
{
	return (v + a - 1) / a * a;
}

/* Fill p with a pattern of generation seed for the bytes at offset off. */
static void fill(uint8_t *p, size_t len, uint64_t off, unsigned int seed)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t v = (off + i) * 0x9e3779b97f4a7c15ULL + seed * 0x632be59bd9b4e019ULL;

		p[i] = (uint8_t)(v >> 56 | 1);
	}
}

/* Where a and b first differ, or -1. */
static long first_diff(const uint8_t *a, const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (a[i] != b[i])
			return (long)i;
	return -1;
}

/*
 * Learn the export from the first successful negotiation: its size, the
 * size constraints to honour, and the two regions the cases check (the
 * first and the last unit of the export).  Returns 0, or -1 after
 * reporting why the export cannot be tested.
 */
static int learn(struct ctx *x, const struct nbd_export_info *ei)
{
	x->size = ei->size;
	x->min_block = ei->has_block_size ? ei->min_block : 1;
	x->max_block = ei->has_block_size ? ei->max_block : 0;
	x->unit = x->min_block > 4096 ? x->min_block : 4096;
	if (x->max_block && x->unit > x->max_block)
		x->unit = x->max_block / x->min_block * x->min_block;
	x->end = x->size / x->min_block * x->min_block;
	x->end_up = round_up(x->size, x->min_block);
	if (x->end < 4ULL * x->unit) {
		fail(x, NULL, "export_size", "%" PRIu64 " bytes: too small to test (need %u)",
		     x->size, 4 * x->unit);
		return -1;
	}
	x->tail_off = x->end - x->unit;
	x->head = calloc(1, x->unit);
	x->tail = calloc(1, x->unit);
	x->buf = calloc(2, x->unit);
	x->wbuf = calloc(2, x->unit);
	if (!x->head || !x->tail || !x->buf || !x->wbuf) {
		fail(x, NULL, "export_size", "out of memory");
		return -1;
	}
	x->known = true;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Option haggling                                                         */
/* ---------------------------------------------------------------------- */

/* Dial and answer the greeting with client flags; reports a failure. */
static int haggle_open(struct ctx *x, struct nbd_conn *c, const char *name, uint32_t cflags)
{
	int r = nbd_conn_dial(c, &x->addr);

	if (r == 0)
		r = nbd_conn_greet(c, cflags);
	if (r < 0)
		fail(x, NULL, name, "cannot start a handshake: %s", nbd_conn_strerror(c, r));
	return r;
}

/*
 * Haggling goes on: NBD_OPT_INFO (no state changes) for the export gets its
 * information.  Returns 0, or -1 with why filled in.
 */
static int still_haggling(struct ctx *x, struct nbd_conn *c, char *why, size_t cap)
{
	struct nbd_export_info ei;
	uint32_t final;
	int r = nbd_opt_info(c, NBD_OPT_INFO, x->export, &ei, &final);

	if (r < 0)
		snprintf(why, cap, "then NBD_OPT_INFO got no answer: %s", nbd_conn_strerror(c, r));
	else if (final != NBD_REP_ACK)
		snprintf(why, cap, "then NBD_OPT_INFO got %s", nbd_rep_name(final));
	return r < 0 || final != NBD_REP_ACK ? -1 : 0;
}

/*
 * Send option with len bytes of data and expect one of the error replies
 * in errs (0-ended), then a working NBD_OPT_INFO on the same connection.
 * rule quotes the protocol.  A connection that broke is opened again so
 * the next case can run.
 */
static void expect_opt_error(struct ctx *x, struct nbd_conn *c, const char *name,
			     uint32_t option, const void *data, uint32_t len,
			     const uint32_t *errs, const char *rule)
{
	char why[256];
	uint32_t final;
	int r = nbd_opt_run(c, option, data, len, NULL, NULL, &final);
	bool allowed = false;

	if (r < 0) {
		fail(x, NULL, name, "no reply: %s (%s)", nbd_conn_strerror(c, r), rule);
		(void)haggle_open(x, c, name, NBD_FLAG_C_FIXED_NEWSTYLE);
		return;
	}
	for (const uint32_t *e = errs; *e; e++)
		allowed |= final == *e;
	if (!allowed) {
		fail(x, NULL, name, "got %s (%s)", nbd_rep_name(final), rule);
		/* Past the handshake (transmission, or waiting for TLS): start again. */
		if (final == NBD_REP_ACK && (option == NBD_OPT_GO || option == NBD_OPT_STARTTLS))
			(void)haggle_open(x, c, name, NBD_FLAG_C_FIXED_NEWSTYLE);
		return;
	}
	if (still_haggling(x, c, why, sizeof(why)) < 0) {
		fail(x, NULL, name, "%s, %s", nbd_rep_name(final), why);
		(void)haggle_open(x, c, name, NBD_FLAG_C_FIXED_NEWSTYLE);
		return;
	}
	pass(x, NULL, name, "%s", nbd_rep_name(final));
}

static const uint32_t ERR_UNSUP[] = {NBD_REP_ERR_UNSUP, 0};
static const uint32_t ERR_INVALID[] = {NBD_REP_ERR_INVALID, 0};

/* Options with lengths that do not add up, and options no server knows. */
static void malformed_options(struct ctx *x, struct nbd_conn *c)
{
	static const uint32_t long_name[] = {NBD_REP_ERR_INVALID, NBD_REP_ERR_TOO_BIG,
					     NBD_REP_ERR_UNKNOWN, 0};
	uint8_t d[NBD_MAX_STRING + 64];

	expect_opt_error(x, c, "opt_unknown", OPT_UNKNOWN, "garbage", 7, ERR_UNSUP,
			 "servers that receive messages which they do not implement MUST "
			 "reply to them with NBD_REP_ERR_UNSUP");

	/* A name length of 1000 in 10 bytes of option data. */
	nbd_put32(d, 1000);
	memcpy(d + 4, "xxxxxx", 6);
	expect_opt_error(x, c, "opt_go_name_overruns_option", NBD_OPT_GO, d, 10, ERR_INVALID,
			 "the name length MUST be no larger than the option data length - 6");
	expect_opt_error(x, c, "opt_info_name_overruns_option", NBD_OPT_INFO, d, 10,
			 ERR_INVALID,
			 "the name length MUST be no larger than the option data length - 6");

	/* Shorter than the name length and request count themselves. */
	nbd_put32(d, 0);
	expect_opt_error(x, c, "opt_info_too_short", NBD_OPT_INFO, d, 3, ERR_INVALID,
			 "NBD_OPT_INFO data is at least 6 bytes");

	/* Four information requests announced, one sent. */
	nbd_put32(d, 0);
	nbd_put16(d + 4, 4);
	nbd_put16(d + 6, NBD_INFO_BLOCK_SIZE);
	expect_opt_error(x, c, "opt_go_request_count_overruns_option", NBD_OPT_GO, d, 8,
			 ERR_INVALID, "NBD_OPT_GO with 4 information requests in 2 bytes");

	/* A name longer than any string may be. */
	nbd_put32(d, NBD_MAX_STRING + 1);
	memset(d + 4, 'n', NBD_MAX_STRING + 1);
	nbd_put16(d + 4 + NBD_MAX_STRING + 1, 0);
	expect_opt_error(x, c, "opt_info_name_too_long", NBD_OPT_INFO, d, NBD_MAX_STRING + 7,
			 long_name, "a string MUST be no longer than 4096 bytes");

	expect_opt_error(x, c, "opt_list_with_data", NBD_OPT_LIST, "x", 1, ERR_INVALID,
			 "the server SHOULD reject a request that includes data with "
			 "NBD_REP_ERR_INVALID");
	expect_opt_error(x, c, "opt_structured_reply_with_data", NBD_OPT_STRUCTURED_REPLY, "x",
			 1, ERR_INVALID,
			 "the server SHOULD reject a request that includes data with "
			 "NBD_REP_ERR_INVALID");
}

/* Metadata context options: before structured replies, and malformed. */
static void meta_options(struct ctx *x, struct nbd_conn *c)
{
	static const char *const q[] = {"base:allocation"};
	uint8_t d[NBD_MAX_STRING + 64];
	uint32_t final;
	int len, r;

	len = nbd_meta_request_encode(d, sizeof(d), x->export, q, 1);
	expect_opt_error(x, c, "opt_set_meta_context_before_structured_reply",
			 NBD_OPT_SET_META_CONTEXT, d, (uint32_t)len, ERR_INVALID,
			 "MUST NOT be requested unless structured replies have been negotiated "
			 "first; a server SHOULD send NBD_REP_ERR_INVALID");

	r = nbd_opt_run(c, NBD_OPT_STRUCTURED_REPLY, NULL, 0, NULL, NULL, &final);
	if (r == 0 && final == NBD_REP_ERR_UNSUP) {
		pass(x, NULL, "opt_structured_reply", "NBD_REP_ERR_UNSUP: no structured replies, "
		     "so no metadata context cases");
		return;
	}
	if (r < 0 || final != NBD_REP_ACK) {
		fail(x, NULL, "opt_structured_reply", "%s",
		     r < 0 ? nbd_conn_strerror(c, r) : nbd_rep_name(final));
		if (r < 0)
			(void)haggle_open(x, c, "opt_structured_reply", NBD_FLAG_C_FIXED_NEWSTYLE);
		return;
	}
	c->structured = true;
	pass(x, NULL, "opt_structured_reply", NULL);

	/* One query of 100 bytes announced, 5 sent. */
	nbd_put32(d, 0);
	nbd_put32(d + 4, 1);
	nbd_put32(d + 8, 100);
	memcpy(d + 12, "base:", 5);
	expect_opt_error(x, c, "opt_list_meta_context_query_overruns_option",
			 NBD_OPT_LIST_META_CONTEXT, d, 17, ERR_INVALID,
			 "a query length that would require reading beyond the option: the "
			 "server MUST fail the request with NBD_REP_ERR_INVALID");
	expect_opt_error(x, c, "opt_set_meta_context_query_overruns_option",
			 NBD_OPT_SET_META_CONTEXT, d, 17, ERR_INVALID,
			 "a query length beyond the option data");
	/* The name length overruns. */
	nbd_put32(d, 500);
	expect_opt_error(x, c, "opt_set_meta_context_name_overruns_option",
			 NBD_OPT_SET_META_CONTEXT, d, 17, ERR_INVALID,
			 "a name length beyond the option data");
}

/* NBD_OPT_STARTTLS to a server without TLS. */
static void starttls_option(struct ctx *x, struct nbd_conn *c)
{
	static const uint32_t refusals[] = {NBD_REP_ERR_POLICY, NBD_REP_ERR_UNSUP, 0};

	expect_opt_error(x, c, "opt_starttls_without_tls", NBD_OPT_STARTTLS, NULL, 0, refusals,
			 "in NOTLS mode the server MUST respond with NBD_REP_ERR_POLICY or "
			 "NBD_REP_ERR_UNSUP");
}

static const char *eflags_str(uint16_t f, char *buf, size_t cap)
{
	static const char *const names[] = {"has_flags", "read_only", "flush", "fua",
					     "rotational", "trim", "write_zeroes", "df",
					     "multi_conn", "resize", "cache", "fast_zero"};
	size_t used = 0;

	buf[0] = '\0';
	for (unsigned int i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (f & (1U << i) && used < cap)
			used += (size_t)snprintf(buf + used, cap - used, "%s%s", used ? "," : "",
						 names[i]);
	return buf;
}

/* NBD_OPT_INFO with NBD_INFO_BLOCK_SIZE, then NBD_OPT_GO with the same. */
static int info_then_go(struct ctx *x, struct nbd_conn *c)
{
	struct nbd_export_info info, go;
	char flags[160], blocks[96];
	uint32_t final;
	int r;

	r = nbd_opt_info(c, NBD_OPT_INFO, x->export, &info, &final);
	if (r < 0 || final != NBD_REP_ACK) {
		fail(x, NULL, "opt_info_block_size", "%s",
		     r < 0 ? nbd_conn_strerror(c, r) : nbd_rep_name(final));
		return -1;
	}
	if (info.has_block_size)
		snprintf(blocks, sizeof(blocks), "block sizes %u/%u/%u", info.min_block,
			 info.pref_block, info.max_block);
	else
		snprintf(blocks, sizeof(blocks), "no NBD_INFO_BLOCK_SIZE: the defaults apply");
	eflags_str(info.eflags, flags, sizeof(flags));
	if (x->want_min_block > 1 && (!info.has_block_size || info.min_block != x->want_min_block))
		fail(x, NULL, "opt_info_block_size", "expected a minimum block size of %u; %s",
		     x->want_min_block, blocks);
	else if (x->read_only != !!(info.eflags & NBD_FLAG_READ_ONLY))
		fail(x, NULL, "opt_info_block_size", "NBD_FLAG_READ_ONLY is %s (flags %s)",
		     x->read_only ? "clear on a read-only export" : "set on a writable export",
		     flags);
	else
		pass(x, NULL, "opt_info_block_size", "size %" PRIu64 ", flags %s, %s", info.size,
		     flags, blocks);

	r = nbd_opt_info(c, NBD_OPT_GO, x->export, &go, &final);
	if (r < 0 || final != NBD_REP_ACK) {
		fail(x, NULL, "opt_go_after_info", "%s",
		     r < 0 ? nbd_conn_strerror(c, r) : nbd_rep_name(final));
		return -1;
	}
	if (go.size != info.size || go.eflags != info.eflags ||
	    go.has_block_size != info.has_block_size || go.min_block != info.min_block ||
	    go.pref_block != info.pref_block || go.max_block != info.max_block) {
		fail(x, NULL, "opt_go_after_info",
		     "differs from the NBD_OPT_INFO just before (the server MUST reply "
		     "with the same set of information)");
		return -1;
	}
	pass(x, NULL, "opt_go_after_info", NULL);
	return learn(x, &go);
}

/* Section 1: one connection through every option case, then GO and a read. */
static int option_haggling(struct ctx *x)
{
	struct nbd_conn c;
	struct nbd_result res;
	int r;

	nbd_conn_init(&c);
	if (haggle_open(x, &c, "greeting", NBD_FLAG_C_FIXED_NEWSTYLE) < 0)
		return -1;
	if (!(c.hs_flags & NBD_FLAG_FIXED_NEWSTYLE)) {
		fail(x, NULL, "greeting", "handshake flags 0x%04x lack NBD_FLAG_FIXED_NEWSTYLE",
		     c.hs_flags);
		nbd_conn_close(&c);
		return -1;
	}
	pass(x, NULL, "greeting", "handshake flags 0x%04x", c.hs_flags);

	malformed_options(x, &c);
	starttls_option(x, &c);
	meta_options(x, &c);
	if (c.fd < 0 || info_then_go(x, &c) < 0) {
		nbd_conn_close(&c);
		return -1;
	}
	r = nbd_cmd_read(&c, 0, x->unit, x->buf, &res);
	if (r < 0 || res.error)
		fail(x, NULL, "read_after_haggling", "%s",
		     r < 0 ? nbd_conn_strerror(&c, r) : nbd_err_name(res.error));
	else
		pass(x, NULL, "read_after_haggling", NULL);
	(void)nbd_send_disc(&c);
	nbd_conn_close(&c);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Checking that the server serves                                         */
/* ---------------------------------------------------------------------- */

/*
 * Read both checked regions on c and compare them with what they hold.
 * Returns 0; the negative errno of a connection that failed; or -EIO for
 * an NBD error or different data.  why says what went wrong.
 */
static int check_data(struct ctx *x, struct nbd_conn *c, char *why, size_t cap)
{
	const struct {
		const char *name;
		uint64_t off;
		const uint8_t *want;
	} regions[] = {{"first", 0, x->head}, {"last", x->tail_off, x->tail}};

	for (unsigned int i = 0; i < 2; i++) {
		struct nbd_result res;
		long d;
		int r = nbd_cmd_read(c, regions[i].off, x->unit, x->buf, &res);

		if (r < 0 || res.error) {
			snprintf(why, cap, "a valid read of the %s %u bytes failed: %s",
				 regions[i].name, x->unit,
				 r < 0 ? nbd_conn_strerror(c, r) : nbd_err_name(res.error));
			return r < 0 ? r : -EIO;
		}
		d = first_diff(x->buf, regions[i].want, x->unit);
		if (d >= 0) {
			snprintf(why, cap, "the %s %u bytes changed: byte %ld is 0x%02x, not 0x%02x",
				 regions[i].name, x->unit, d, x->buf[d], regions[i].want[d]);
			return -EIO;
		}
	}
	return 0;
}

/*
 * After a failed case, put the checked regions back in a known state so
 * that one wrongly accepted write does not fail every later case: write
 * the pattern again, or on a read-only export take what is there now.
 */
static void restore_data(struct ctx *x, struct nbd_conn *c)
{
	struct nbd_result res;
	int r;

	if (c->fd < 0)
		return;
	if (x->read_only) {
		r = nbd_cmd_read(c, 0, x->unit, x->head, &res);
		if (r == 0 && !res.error)
			(void)nbd_cmd_read(c, x->tail_off, x->unit, x->tail, &res);
		return;
	}
	r = nbd_cmd_write(c, 0, x->unit, x->head, &res);
	if (r == 0 && !res.error)
		(void)nbd_cmd_write(c, x->tail_off, x->unit, x->tail, &res);
}

/* Open s again after the server closed it; reports a failure. */
static int reopen(struct ctx *x, struct session *s, const char *name)
{
	int r = nbd_conn_connect(&s->conn, &x->addr, &s->opts);

	if (r < 0)
		fail(x, s, name, "a new connection fails: %s", nbd_conn_strerror(&s->conn, r));
	return r;
}

/* The errors a transmission case accepts, and the protocol's rule. */
struct expect {
	uint32_t errs[4];     /* accepted NBD errors, 0-ended */
	bool may_close;       /* the server may end the connection instead */
	const char *rule;     /* what the protocol says, for the report */
	uint32_t tolerated;   /* an error accepted with a remark, or 0 */
	const char *remark;   /* why that one is only tolerated */
};

static bool accepted(const struct expect *e, uint32_t err)
{
	for (unsigned int i = 0; i < 4 && e->errs[i]; i++)
		if (e->errs[i] == err)
			return true;
	return false;
}

/*
 * Send rq (with wlen bytes of wdata) and expect it refused as e says; then
 * the same connection (or, where e allows the server to end it, a new one)
 * must read back the checked regions unchanged.
 */
static void expect_refused(struct ctx *x, struct session *s, const char *name,
			   struct nbd_request rq, const void *wdata, size_t wlen,
			   const struct expect *e)
{
	struct nbd_result res;
	char why[256], note[192] = "";
	int r;

	if (s->conn.fd < 0 && reopen(x, s, name) < 0)
		return;
	r = nbd_cmd(&s->conn, &rq, wdata, wlen, NULL, &res);
	if (r == -ECONNRESET && e->may_close) {
		snprintf(note, sizeof(note), "the server closed the connection, as allowed; ");
		if (reopen(x, s, name) < 0)
			return;
	} else if (r < 0) {
		fail(x, s, name, "%s (%s)", nbd_conn_strerror(&s->conn, r), e->rule);
		return;
	} else if (res.error == 0) {
		fail(x, s, name, "the server accepted it (%s)", e->rule);
		restore_data(x, &s->conn);
		return;
	} else if (e->tolerated && res.error == e->tolerated) {
		snprintf(note, sizeof(note), "%s (%s); ", nbd_err_name(res.error), e->remark);
	} else if (!accepted(e, res.error)) {
		fail(x, s, name, "%s%s%s%s (%s)", nbd_err_name(res.error), res.msg[0] ? " \"" : "",
		     res.msg, res.msg[0] ? "\"" : "", e->rule);
		restore_data(x, &s->conn);
		return;
	} else {
		snprintf(note, sizeof(note), "%s; ", nbd_err_name(res.error));
	}
	r = check_data(x, &s->conn, why, sizeof(why));
	if (r == -ECONNRESET && rq.type == NBD_CMD_READ && !s->opts.structured) {
		/* "The server MAY then initiate a hard disconnect" (simple replies). */
		snprintf(note + strlen(note), sizeof(note) - strlen(note),
			 "then closed the connection, as allowed after a read error; ");
		if (reopen(x, s, name) < 0)
			return;
		r = check_data(x, &s->conn, why, sizeof(why));
	}
	if (r < 0) {
		fail(x, s, name, "%sbut then %s", note, why);
		restore_data(x, &s->conn);
		return;
	}
	pass(x, s, name, "%sthen served the data", note);
}

/*
 * Send rq, which the protocol leaves to the server (a zero length): any
 * reply will do, but the connection must stay and serve.
 */
static void expect_any_reply(struct ctx *x, struct session *s, const char *name,
			     struct nbd_request rq, const char *rule)
{
	struct nbd_result res;
	char why[256];
	int r;

	if (s->conn.fd < 0 && reopen(x, s, name) < 0)
		return;
	r = nbd_cmd(&s->conn, &rq, NULL, 0, NULL, &res);
	if (r < 0) {
		fail(x, s, name, "%s (%s)", nbd_conn_strerror(&s->conn, r), rule);
		return;
	}
	if (check_data(x, &s->conn, why, sizeof(why)) < 0) {
		fail(x, s, name, "%s, but then %s", nbd_err_name(res.error), why);
		restore_data(x, &s->conn);
		return;
	}
	pass(x, s, name, "%s; then served the data", nbd_err_name(res.error));
}

/* ---------------------------------------------------------------------- */
/* Transmission cases                                                      */
/* ---------------------------------------------------------------------- */

static bool has(const struct session *s, uint16_t flag)
{
	return s->conn.info.eflags & flag;
}

/* A write payload that differs from what the export holds anywhere. */
static const uint8_t *other_data(struct ctx *x, size_t len)
{
	assert(len <= 2ULL * x->unit);
	fill(x->wbuf, len, 0, x->seed + 1000);
	return x->wbuf;
}

/* Errors for a write-like request that is wrong in another way too. */
static struct expect write_expect(const struct ctx *x, uint32_t err, uint32_t err2,
				  const char *rule)
{
	struct expect e = {.errs = {err, err2}, .rule = rule};

	if (x->read_only)
		e.errs[err2 ? 2 : 1] = NBD_EPERM;
	return e;
}

/* Requests outside the export, or wrapping past 2^64. */
static void range_cases(struct ctx *x, struct session *s)
{
	const uint32_t u = x->unit;
	const uint64_t wrap = UINT64_MAX - u + 1; /* 2^64 - u: aligned, as u is */
	const uint64_t half = 1ULL << 63;
	const char *rd = "the server SHOULD return NBD_EINVAL if it receives a read request "
			 "including one or more sectors beyond the size of the device";
	const char *wr = "a write beyond the size: NBD_ENOSPC (error values) or NBD_EINVAL "
			 "(size constraints)";
	struct expect e_rd = {.errs = {NBD_EINVAL}, .rule = rd};
	struct expect e_wr = write_expect(x, NBD_ENOSPC, NBD_EINVAL, wr);
	const uint8_t *w = other_data(x, 2 * u);

	expect_refused(x, s, "read_at_end", nbd_req(NBD_CMD_READ, 0, x->end_up, u), NULL, 0,
		       &e_rd);
	expect_refused(x, s, "read_1g_past_end",
		       nbd_req(NBD_CMD_READ, 0, x->end_up + (1ULL << 30), u), NULL, 0, &e_rd);
	expect_refused(x, s, "read_across_end", nbd_req(NBD_CMD_READ, 0, x->tail_off, 2 * u),
		       NULL, 0, &e_rd);
	expect_refused(x, s, "read_offset_wraps", nbd_req(NBD_CMD_READ, 0, wrap, 2 * u), NULL,
		       0, &e_rd);
	expect_refused(x, s, "read_offset_2^63", nbd_req(NBD_CMD_READ, 0, half, u), NULL, 0,
		       &e_rd);

	expect_refused(x, s, "write_at_end", nbd_req(NBD_CMD_WRITE, 0, x->end_up, u), w, u,
		       &e_wr);
	expect_refused(x, s, "write_across_end", nbd_req(NBD_CMD_WRITE, 0, x->tail_off, 2 * u),
		       w, 2 * u, &e_wr);
	expect_refused(x, s, "write_offset_wraps", nbd_req(NBD_CMD_WRITE, 0, wrap, 2 * u), w,
		       2 * u, &e_wr);
	expect_refused(x, s, "write_offset_2^63", nbd_req(NBD_CMD_WRITE, 0, half, u), w, u,
		       &e_wr);

	if (has(s, NBD_FLAG_SEND_TRIM)) {
		struct expect e = write_expect(x, NBD_EINVAL, 0,
					       "the server SHOULD return NBD_EINVAL if it receives "
					       "a trim request including one or more sectors "
					       "beyond the size of the device");

		expect_refused(x, s, "trim_across_end",
			       nbd_req(NBD_CMD_TRIM, 0, x->tail_off, 2 * u), NULL, 0, &e);
		expect_refused(x, s, "trim_offset_wraps", nbd_req(NBD_CMD_TRIM, 0, wrap, 2 * u),
			       NULL, 0, &e);
	}
	if (has(s, NBD_FLAG_SEND_WRITE_ZEROES)) {
		struct expect e = write_expect(x, NBD_ENOSPC, NBD_EINVAL,
					       "the server SHOULD return NBD_ENOSPC if it receives "
					       "a write zeroes request including one or more "
					       "sectors beyond the size (NBD_EINVAL: size "
					       "constraints)");

		expect_refused(x, s, "write_zeroes_across_end",
			       nbd_req(NBD_CMD_WRITE_ZEROES, 0, x->tail_off, 2 * u), NULL, 0, &e);
		expect_refused(x, s, "write_zeroes_offset_wraps",
			       nbd_req(NBD_CMD_WRITE_ZEROES, 0, wrap, 2 * u), NULL, 0, &e);
	}
	if (has(s, NBD_FLAG_SEND_CACHE)) {
		struct expect e = {.errs = {NBD_EINVAL},
				   .rule = "the server SHOULD report an NBD_EINVAL error if the "
					   "request would exceed the export size"};

		expect_refused(x, s, "cache_across_end",
			       nbd_req(NBD_CMD_CACHE, 0, x->tail_off, 2 * u), NULL, 0, &e);
	}
}

/* Zero lengths: behaviour unspecified, but "the server SHOULD NOT disconnect". */
static void zero_length_cases(struct ctx *x, struct session *s)
{
	const char *rule = "a length of 0: unspecified, but the server SHOULD NOT disconnect";

	expect_any_reply(x, s, "read_length_0", nbd_req(NBD_CMD_READ, 0, 0, 0), rule);
	expect_any_reply(x, s, "read_length_0_at_end", nbd_req(NBD_CMD_READ, 0, x->size, 0),
			 rule);
	expect_any_reply(x, s, "write_length_0", nbd_req(NBD_CMD_WRITE, 0, 0, 0), rule);
	if (has(s, NBD_FLAG_SEND_TRIM) && !x->read_only)
		expect_any_reply(x, s, "trim_length_0", nbd_req(NBD_CMD_TRIM, 0, 0, 0), rule);
	if (has(s, NBD_FLAG_SEND_WRITE_ZEROES) && !x->read_only)
		expect_any_reply(x, s, "write_zeroes_length_0",
				 nbd_req(NBD_CMD_WRITE_ZEROES, 0, 0, 0), rule);
}

/*
 * Payloads over the advertised maximum.  The protocol names no error for
 * these; NBD_EINVAL and NBD_EOVERFLOW are the ones it uses for lengths, and
 * the server may disconnect instead ("either the server or the client MAY
 * initiate a hard disconnect if a payload length ... would be large enough
 * to be deemed a denial of service attack").
 */
static void oversize_cases(struct ctx *x, struct session *s)
{
	struct expect e = {.errs = {NBD_EINVAL, NBD_EOVERFLOW},
			   .may_close = true,
			   .rule = "the client MUST NOT request a length larger than the maximum "
				   "payload size"};
	uint8_t *big;
	uint64_t len;

	if (!x->max_block || x->max_block == UINT32_MAX) {
		/*
		 * No maximum advertised: the server need only take 32 MiB.  A
		 * read of 4 GiB is over any server's limit; the protocol then
		 * names no error, so NBD_ENOMEM (nbdkit's answer) is let
		 * through with a remark.
		 */
		e.rule = "a 4 GiB read with no maximum advertised: a server SHOULD support at "
			 "least 2^25 bytes; refused or disconnected above that";
		e.tolerated = NBD_ENOMEM;
		e.remark = "the protocol says a server SHOULD NOT return it if at all possible";
		len = UINT32_MAX / x->min_block * x->min_block;
		expect_refused(x, s, "read_4g", nbd_req(NBD_CMD_READ, 0, 0, (uint32_t)len), NULL,
			       0, &e);
		return;
	}
	len = round_up((uint64_t)x->max_block + 1, x->min_block);
	if (len > x->end || len > UINT32_MAX) {
		pass(x, s, "read_over_max_payload", "skipped: the export is smaller than %" PRIu64,
		     len);
		return;
	}
	expect_refused(x, s, "read_over_max_payload", nbd_req(NBD_CMD_READ, 0, 0, (uint32_t)len),
		       NULL, 0, &e);
	if (len > MAX_SENT_PAYLOAD)
		return;
	big = malloc(len);
	if (!big) {
		fail(x, s, "write_over_max_payload", "out of memory");
		return;
	}
	fill(big, len, 0, x->seed + 2000);
	if (x->read_only)
		e.errs[2] = NBD_EPERM;
	expect_refused(x, s, "write_over_max_payload",
		       nbd_req(NBD_CMD_WRITE, 0, 0, (uint32_t)len), big, len, &e);
	free(big);
}

/* Requests not aligned to the advertised minimum block size. */
static void alignment_cases(struct ctx *x, struct session *s)
{
	const uint32_t m = x->min_block, h = m / 2;
	const char *rule = "the server SHOULD return NBD_EINVAL if a request is not aligned "
			   "to advertised minimum block sizes";
	struct expect e = {.errs = {NBD_EINVAL}, .rule = rule};
	struct expect ew = write_expect(x, NBD_EINVAL, 0, rule);
	const uint8_t *w = other_data(x, m);

	if (x->want_min_block <= 1 || m <= 1)
		return;
	expect_refused(x, s, "read_misaligned_offset", nbd_req(NBD_CMD_READ, 0, h, m), NULL, 0,
		       &e);
	expect_refused(x, s, "read_misaligned_length", nbd_req(NBD_CMD_READ, 0, 0, h), NULL, 0,
		       &e);
	expect_refused(x, s, "write_misaligned_offset", nbd_req(NBD_CMD_WRITE, 0, h, m), w, m,
		       &ew);
	expect_refused(x, s, "write_misaligned_length", nbd_req(NBD_CMD_WRITE, 0, 0, h), w, h,
		       &ew);
	if (has(s, NBD_FLAG_SEND_TRIM))
		expect_refused(x, s, "trim_misaligned", nbd_req(NBD_CMD_TRIM, 0, h, m), NULL, 0,
			       &ew);
	if (has(s, NBD_FLAG_SEND_WRITE_ZEROES))
		expect_refused(x, s, "write_zeroes_misaligned",
			       nbd_req(NBD_CMD_WRITE_ZEROES, 0, h, m), NULL, 0, &ew);
}

/* Unknown commands, and commands the transmission flags do not expose. */
static void command_cases(struct ctx *x, struct session *s)
{
	const uint32_t u = x->unit;
	struct expect e = {.errs = {NBD_EINVAL},
			   .rule = "the server SHOULD return NBD_EINVAL if it receives an "
				   "unknown command"};
	struct expect ew = write_expect(x, NBD_EINVAL, 0,
					"a command whose transmission flag is clear");
	struct expect ef = {.errs = {NBD_EINVAL},
			    .rule = "a command whose transmission flag is clear"};

	expect_refused(x, s, "cmd_unknown", nbd_req(CMD_UNKNOWN, 0, 0, u), NULL, 0, &e);
	expect_refused(x, s, "cmd_resize_not_negotiated", nbd_req(NBD_CMD_RESIZE, 0, 0, u), NULL,
		       0, &e);
	if (!has(s, NBD_FLAG_SEND_FLUSH))
		expect_refused(x, s, "flush_not_advertised", nbd_req(NBD_CMD_FLUSH, 0, 0, 0),
			       NULL, 0, &ef);
	if (!has(s, NBD_FLAG_SEND_TRIM))
		expect_refused(x, s, "trim_not_advertised", nbd_req(NBD_CMD_TRIM, 0, 0, u), NULL,
			       0, &ew);
	if (!has(s, NBD_FLAG_SEND_WRITE_ZEROES))
		expect_refused(x, s, "write_zeroes_not_advertised",
			       nbd_req(NBD_CMD_WRITE_ZEROES, 0, 0, u), NULL, 0, &ew);
	if (!has(s, NBD_FLAG_SEND_CACHE))
		expect_refused(x, s, "cache_not_advertised", nbd_req(NBD_CMD_CACHE, 0, 0, u),
			       NULL, 0, &ef);
	if (has(s, NBD_FLAG_SEND_FLUSH)) {
		struct expect er = {.errs = {NBD_EINVAL},
				    .rule = "for a flush request, length and offset are "
					    "reserved, and MUST be set to all-zero"};

		expect_refused(x, s, "flush_with_range", nbd_req(NBD_CMD_FLUSH, 0, u, u), NULL, 0,
			       &er);
	}
}

/* Command flags that are unknown, not for that command, or not advertised. */
static void flag_cases(struct ctx *x, struct session *s)
{
	const uint32_t u = x->unit;
	const char *unknown = "the server SHOULD return NBD_EINVAL if it receives an unknown "
			      "command flag";
	const char *wrong = "the server SHOULD return NBD_EINVAL if it receives a request "
			    "with a flag not explicitly documented as applicable to the given "
			    "request";
	struct expect eu = {.errs = {NBD_EINVAL}, .rule = unknown};
	struct expect e = {.errs = {NBD_EINVAL}, .rule = wrong};
	struct expect ew = write_expect(x, NBD_EINVAL, 0, wrong);
	const uint8_t *w = other_data(x, u);

	expect_refused(x, s, "flag_unknown_bit15", nbd_req(NBD_CMD_READ, 1U << 15, 0, u), NULL,
		       0, &eu);
	expect_refused(x, s, "flag_payload_len_not_negotiated",
		       nbd_req(NBD_CMD_READ, 1U << 5, 0, u), NULL, 0, &eu);
	expect_refused(x, s, "flag_req_one_on_read",
		       nbd_req(NBD_CMD_READ, NBD_CMD_FLAG_REQ_ONE, 0, u), NULL, 0, &e);
	expect_refused(x, s, "flag_no_hole_on_read",
		       nbd_req(NBD_CMD_READ, NBD_CMD_FLAG_NO_HOLE, 0, u), NULL, 0, &e);
	expect_refused(x, s, "flag_df_on_write", nbd_req(NBD_CMD_WRITE, NBD_CMD_FLAG_DF, 0, u),
		       w, u, &ew);
	expect_refused(x, s, "flag_no_hole_on_write",
		       nbd_req(NBD_CMD_WRITE, NBD_CMD_FLAG_NO_HOLE, 0, u), w, u, &ew);
	expect_refused(x, s, "flag_fast_zero_on_write",
		       nbd_req(NBD_CMD_WRITE, NBD_CMD_FLAG_FAST_ZERO, 0, u), w, u, &ew);
	if (has(s, NBD_FLAG_SEND_TRIM) && !x->read_only)
		expect_refused(x, s, "flag_no_hole_on_trim",
			       nbd_req(NBD_CMD_TRIM, NBD_CMD_FLAG_NO_HOLE, 0, u), NULL, 0, &ew);
	if (!has(s, NBD_FLAG_SEND_DF)) {
		struct expect ed = {.errs = {NBD_EINVAL},
				    .rule = "NBD_CMD_FLAG_DF MUST NOT be set unless the "
					    "transmission flags include NBD_FLAG_SEND_DF"};

		expect_refused(x, s, "flag_df_not_advertised",
			       nbd_req(NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, u), NULL, 0, &ed);
	}
	if (!has(s, NBD_FLAG_SEND_FUA)) {
		struct expect ef = {.errs = {NBD_EINVAL},
				    .rule = "NBD_CMD_FLAG_FUA is valid provided NBD_FLAG_SEND_FUA "
					    "has been negotiated"};

		expect_refused(x, s, "flag_fua_not_advertised",
			       nbd_req(NBD_CMD_READ, NBD_CMD_FLAG_FUA, 0, u), NULL, 0, &ef);
	}
	if (has(s, NBD_FLAG_SEND_WRITE_ZEROES) && !has(s, NBD_FLAG_SEND_FAST_ZERO)) {
		struct expect ez = write_expect(x, NBD_EINVAL, 0,
						"if the server did not advertise "
						"NBD_FLAG_SEND_FAST_ZERO it SHOULD fail with "
						"NBD_EINVAL if NBD_CMD_FLAG_FAST_ZERO was set");

		expect_refused(x, s, "flag_fast_zero_not_advertised",
			       nbd_req(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FAST_ZERO, 0, u), NULL,
			       0, &ez);
	}
}

/* Writes of every kind to a read-only export. */
static void read_only_cases(struct ctx *x, struct session *s)
{
	const uint32_t u = x->unit;
	struct expect e = {.errs = {NBD_EPERM},
			   .rule = "it SHOULD return NBD_EPERM if it receives a write or trim "
				   "request on a read-only export"};
	struct expect e2 = {.errs = {NBD_EPERM, NBD_EINVAL},
			    .rule = "NBD_EPERM on a read-only export, or NBD_EINVAL for a "
				    "command not advertised"};
	const uint8_t *w = other_data(x, u);

	if (!x->read_only)
		return;
	expect_refused(x, s, "read_only_write", nbd_req(NBD_CMD_WRITE, 0, 0, u), w, u, &e);
	if (has(s, NBD_FLAG_SEND_FUA))
		expect_refused(x, s, "read_only_write_fua",
			       nbd_req(NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 0, u), w, u, &e);
	expect_refused(x, s, "read_only_trim", nbd_req(NBD_CMD_TRIM, 0, 0, u), NULL, 0,
		       has(s, NBD_FLAG_SEND_TRIM) ? &e : &e2);
	expect_refused(x, s, "read_only_write_zeroes", nbd_req(NBD_CMD_WRITE_ZEROES, 0, 0, u),
		       NULL, 0, has(s, NBD_FLAG_SEND_WRITE_ZEROES) ? &e : &e2);
}

/* NBD_CMD_BLOCK_STATUS with and without a selected metadata context. */
static void block_status_cases(struct ctx *x, struct session *s)
{
	const uint32_t u = x->unit;
	struct expect e = {.errs = {NBD_EINVAL},
			   .rule = "the server SHOULD return NBD_EINVAL if it receives a "
				   "NBD_CMD_BLOCK_STATUS request including one or more sectors "
				   "beyond the size of the device"};
	struct expect ef = {.errs = {NBD_EINVAL},
			    .rule = "NBD_CMD_FLAG_DF is not documented for block status"};
	struct nbd_request rq;
	struct nbd_result res;
	int r;

	if (!s->conn.meta) {
		struct expect en = {.errs = {NBD_EINVAL},
				    .rule = "servers SHOULD reply with NBD_EINVAL to clients "
					    "sending NBD_CMD_BLOCK_STATUS without selecting at "
					    "least one metadata context"};

		expect_refused(x, s, "block_status_without_meta_context",
			       nbd_req(NBD_CMD_BLOCK_STATUS, 0, 0, u), NULL, 0, &en);
		return;
	}
	expect_refused(x, s, "block_status_at_end",
		       nbd_req(NBD_CMD_BLOCK_STATUS, 0, x->end_up, u), NULL, 0, &e);
	expect_refused(x, s, "block_status_across_end",
		       nbd_req(NBD_CMD_BLOCK_STATUS, 0, x->tail_off, 2 * u), NULL, 0, &e);
	expect_refused(x, s, "block_status_offset_wraps",
		       nbd_req(NBD_CMD_BLOCK_STATUS, 0, UINT64_MAX - u + 1, 2 * u), NULL, 0, &e);
	expect_refused(x, s, "flag_df_on_block_status",
		       nbd_req(NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_DF, 0, u), NULL, 0, &ef);

	if (s->conn.fd < 0 && reopen(x, s, "block_status_req_one") < 0)
		return;
	rq = nbd_req(NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 2 * u);
	r = nbd_cmd(&s->conn, &rq, NULL, 0, NULL, &res);
	if (r < 0 || res.error)
		fail(x, s, "block_status_req_one", "%s",
		     r < 0 ? nbd_conn_strerror(&s->conn, r) : nbd_err_name(res.error));
	else if (res.extents != 1 || res.first_ext_len > 2 * u)
		fail(x, s, "block_status_req_one",
		     "%u descriptors, the first of %u bytes (REQ_ONE: exactly one, no longer "
		     "than the %u asked)", res.extents, res.first_ext_len, 2 * u);
	else
		pass(x, s, "block_status_req_one", "one extent of %u bytes, flags 0x%x",
		     res.first_ext_len, res.first_ext_flags);
}

/* A read with NBD_CMD_FLAG_DF where the server advertises it. */
static void df_read_case(struct ctx *x, struct session *s)
{
	struct nbd_request rq = nbd_req(NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, x->unit);
	struct nbd_result res;
	int r;

	if (!has(s, NBD_FLAG_SEND_DF))
		return;
	if (s->conn.fd < 0 && reopen(x, s, "read_df") < 0)
		return;
	r = nbd_cmd(&s->conn, &rq, NULL, 0, x->buf, &res);
	if (r < 0 || res.error)
		fail(x, s, "read_df", "%s",
		     r < 0 ? nbd_conn_strerror(&s->conn, r) : nbd_err_name(res.error));
	else if (res.content > 1)
		fail(x, s, "read_df", "%u content chunks (the server MUST send at most one)",
		     res.content);
	else if (first_diff(x->buf, x->head, x->unit) >= 0)
		fail(x, s, "read_df", "the data differs from what was written");
	else
		pass(x, s, "read_df", NULL);
}

/*
 * A request with the wrong magic: the server cannot frame what follows and
 * must end the connection; a new one must work and NBD_CMD_DISC must end
 * that one.
 */
static void bad_magic_case(struct ctx *x, struct session *s)
{
	struct nbd_request rq = nbd_req(NBD_CMD_READ, 0, 0, x->unit);
	uint8_t hdr[NBD_REQUEST_LEN];
	char why[256];
	int r;

	if (s->conn.fd < 0 && reopen(x, s, "request_bad_magic") < 0)
		return;
	rq.magic = NBD_OLD_REQUEST_MAGIC;
	rq.cookie = 0x4d58;
	nbd_request_encode(hdr, &rq);
	r = nbd_send_all(&s->conn, hdr, sizeof(hdr));
	if (r == 0)
		r = nbd_wait_closed(&s->conn);
	if (r < 0 && r != -ECONNRESET) {
		fail(x, s, "request_bad_magic", "the connection stayed open: %s",
		     nbd_conn_strerror(&s->conn, r));
		return;
	}
	pass(x, s, "request_bad_magic", "connection closed");

	if (reopen(x, s, "request_bad_magic_new_connection") < 0)
		return;
	if (check_data(x, &s->conn, why, sizeof(why)) < 0) {
		fail(x, s, "request_bad_magic_new_connection", "%s", why);
		return;
	}
	pass(x, s, "request_bad_magic_new_connection", "served the data");

	r = nbd_send_disc(&s->conn);
	if (r == 0)
		r = nbd_wait_closed(&s->conn);
	if (r < 0 && r != -ECONNRESET)
		fail(x, s, "disc_closes", "%s", nbd_conn_strerror(&s->conn, r));
	else
		pass(x, s, "disc_closes", NULL);
}

/*
 * Open the session and put known data in the two checked regions: a new
 * pattern on a writable export, what is there on a read-only one.
 */
static int session_setup(struct ctx *x, struct session *s)
{
	struct nbd_result res;
	char why[256];
	int r;

	r = nbd_conn_connect(&s->conn, &x->addr, &s->opts);
	if (r == -EOPNOTSUPP) {
		pass(x, s, "connect", "skipped: the server has no structured replies");
		return -1;
	}
	if (r < 0) {
		fail(x, s, "connect", "%s", nbd_conn_strerror(&s->conn, r));
		return -1;
	}
	if (s->conn.info.size != x->size) {
		fail(x, s, "connect", "size %" PRIu64 ", was %" PRIu64, s->conn.info.size,
		     x->size);
		return -1;
	}
	if (x->read_only && !x->have_ref) {
		r = nbd_cmd_read(&s->conn, 0, x->unit, x->head, &res);
		if (r == 0 && !res.error)
			r = nbd_cmd_read(&s->conn, x->tail_off, x->unit, x->tail, &res);
		if (r < 0 || res.error) {
			fail(x, s, "connect", "reading the export: %s",
			     r < 0 ? nbd_conn_strerror(&s->conn, r) : nbd_err_name(res.error));
			return -1;
		}
		x->have_ref = true;
	} else if (!x->read_only) {
		x->seed++;
		fill(x->head, x->unit, 0, x->seed);
		fill(x->tail, x->unit, x->tail_off, x->seed);
		r = nbd_cmd_write(&s->conn, 0, x->unit, x->head, &res);
		if (r == 0 && !res.error)
			r = nbd_cmd_write(&s->conn, x->tail_off, x->unit, x->tail, &res);
		if (r < 0 || res.error) {
			fail(x, s, "connect", "writing the pattern: %s",
			     r < 0 ? nbd_conn_strerror(&s->conn, r) : nbd_err_name(res.error));
			return -1;
		}
		x->have_ref = true;
	}
	if (check_data(x, &s->conn, why, sizeof(why)) < 0) {
		fail(x, s, "connect", "%s", why);
		return -1;
	}
	pass(x, s, "connect", "%s%s, %s", s->conn.structured ? "structured replies" : "simple replies",
	     s->conn.meta ? " + base:allocation" : "",
	     x->read_only ? "read the export" : "wrote and read a pattern at both ends");
	return 0;
}

/* Section 3: every transmission case on one session. */
static void transmission(struct ctx *x, const char *mode, bool structured, bool meta)
{
	struct session s = {
		.mode = mode,
		.opts = {.export = x->export, .structured = structured, .meta = meta},
	};

	nbd_conn_init(&s.conn);
	if (session_setup(x, &s) < 0) {
		nbd_conn_close(&s.conn);
		return;
	}
	range_cases(x, &s);
	zero_length_cases(x, &s);
	oversize_cases(x, &s);
	alignment_cases(x, &s);
	command_cases(x, &s);
	flag_cases(x, &s);
	read_only_cases(x, &s);
	df_read_case(x, &s);
	block_status_cases(x, &s);
	bad_magic_case(x, &s);
	nbd_conn_close(&s.conn);
}

/* Only the block status case, structured replies but no context selected. */
static void structured_without_meta(struct ctx *x)
{
	struct session s = {
		.mode = "structured_no_meta",
		.opts = {.export = x->export, .structured = true},
	};

	nbd_conn_init(&s.conn);
	if (session_setup(x, &s) == 0)
		block_status_cases(x, &s);
	if (s.conn.fd >= 0)
		(void)nbd_send_disc(&s.conn);
	nbd_conn_close(&s.conn);
}

/* ---------------------------------------------------------------------- */
/* Connections the server must end                                         */
/* ---------------------------------------------------------------------- */

/* A new connection reaches the transmission phase and reads. */
static void new_connection_serves(struct ctx *x, const char *name)
{
	struct nbd_session_opts o = {.export = x->export};
	struct nbd_result res;
	struct nbd_conn c;
	int r;

	nbd_conn_init(&c);
	r = nbd_conn_connect(&c, &x->addr, &o);
	if (r == 0)
		r = nbd_cmd_read(&c, 0, x->unit, x->buf, &res);
	if (r < 0 || res.error)
		fail(x, NULL, name, "%s",
		     r < 0 ? nbd_conn_strerror(&c, r) : nbd_err_name(res.error));
	else
		pass(x, NULL, name, NULL);
	if (c.fd >= 0)
		(void)nbd_send_disc(&c);
	nbd_conn_close(&c);
}

/* Section 2. */
static void dropped_connections(struct ctx *x)
{
	uint8_t hdr[NBD_OPT_HDR_LEN];
	struct nbd_conn c;
	uint32_t final;
	int r;

	/* An option header with a bad magic: nothing after it can be framed. */
	nbd_conn_init(&c);
	if (haggle_open(x, &c, "opt_bad_magic", NBD_FLAG_C_FIXED_NEWSTYLE) == 0) {
		nbd_opt_hdr_encode(hdr, NBD_OPT_MAGIC ^ 0xff, NBD_OPT_GO, 0);
		r = nbd_send_all(&c, hdr, sizeof(hdr));
		if (r == 0)
			r = nbd_wait_closed(&c);
		if (r < 0 && r != -ECONNRESET)
			fail(x, NULL, "opt_bad_magic", "the connection stayed open: %s",
			     nbd_conn_strerror(&c, r));
		else
			pass(x, NULL, "opt_bad_magic", "connection closed");
	}
	nbd_conn_close(&c);
	new_connection_serves(x, "opt_bad_magic_new_connection");

	/* Client flags the protocol does not define. */
	if (haggle_open(x, &c, "client_flags_unknown", NBD_FLAG_C_FIXED_NEWSTYLE | 1U << 7) == 0) {
		r = nbd_wait_closed(&c);
		if (r < 0)
			fail(x, NULL, "client_flags_unknown",
			     "the connection stayed open (the server MUST drop the TCP connection "
			     "if the client sets an unknown flag)");
		else
			pass(x, NULL, "client_flags_unknown", "connection closed");
	}
	nbd_conn_close(&c);
	new_connection_serves(x, "client_flags_unknown_new_connection");

	/* NBD_OPT_ABORT: the server MUST reply NBD_REP_ACK (or just close). */
	if (haggle_open(x, &c, "opt_abort", NBD_FLAG_C_FIXED_NEWSTYLE) == 0) {
		r = nbd_opt_run(&c, NBD_OPT_ABORT, NULL, 0, NULL, NULL, &final);
		if (r == -ECONNRESET)
			pass(x, NULL, "opt_abort", "closed without a reply, which clients "
			     "SHOULD handle");
		else if (r < 0 || final != NBD_REP_ACK)
			fail(x, NULL, "opt_abort", "%s (the server MUST reply with NBD_REP_ACK)",
			     r < 0 ? nbd_conn_strerror(&c, r) : nbd_rep_name(final));
		else
			pass(x, NULL, "opt_abort", "NBD_REP_ACK");
	}
	nbd_conn_close(&c);
}

/* ---------------------------------------------------------------------- */
/* The end                                                                 */
/* ---------------------------------------------------------------------- */

/*
 * Section 4: a fresh connection finds the data the earlier ones left, and
 * on a writable export writes (with FUA where offered, then a flush) and
 * reads back a new pattern.
 */
static void final_check(struct ctx *x)
{
	struct session s = {.mode = NULL, .opts = {.export = x->export}};
	struct nbd_request rq;
	struct nbd_result res;
	char why[256];
	int r;

	nbd_conn_init(&s.conn);
	r = nbd_conn_connect(&s.conn, &x->addr, &s.opts);
	if (r < 0) {
		fail(x, NULL, "final_fresh_connection", "%s", nbd_conn_strerror(&s.conn, r));
		return;
	}
	if (check_data(x, &s.conn, why, sizeof(why)) < 0) {
		fail(x, NULL, "final_fresh_connection", "what earlier connections left: %s", why);
		goto out;
	}
	if (!x->read_only) {
		x->seed++;
		fill(x->head, x->unit, 0, x->seed);
		rq = nbd_req(NBD_CMD_WRITE, has(&s, NBD_FLAG_SEND_FUA) ? NBD_CMD_FLAG_FUA : 0, 0,
			     x->unit);
		r = nbd_cmd(&s.conn, &rq, x->head, x->unit, NULL, &res);
		if (r == 0 && !res.error && has(&s, NBD_FLAG_SEND_FLUSH)) {
			rq = nbd_req(NBD_CMD_FLUSH, 0, 0, 0);
			r = nbd_cmd(&s.conn, &rq, NULL, 0, NULL, &res);
		}
		if (r < 0 || res.error) {
			fail(x, NULL, "final_fresh_connection", "write or flush: %s",
			     r < 0 ? nbd_conn_strerror(&s.conn, r) : nbd_err_name(res.error));
			goto out;
		}
		if (check_data(x, &s.conn, why, sizeof(why)) < 0) {
			fail(x, NULL, "final_fresh_connection", "after a new write, %s", why);
			goto out;
		}
	}
	pass(x, NULL, "final_fresh_connection", "%s",
	     x->read_only ? "read the export" : "found the earlier data, wrote and read back");
out:
	if (s.conn.fd >= 0)
		(void)nbd_send_disc(&s.conn);
	nbd_conn_close(&s.conn);
}

static void usage(void)
{
	fprintf(stderr, "usage: nbd_bad_input --unix PATH | --tcp HOST:PORT\n"
			"                     [--export NAME] [--read-only] [--min-block N]\n");
	exit(2);
}

static void parse_args(struct ctx *x, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--read-only")) {
			x->read_only = true;
			continue;
		}
		if (!v)
			usage();
		if (!strcmp(a, "--unix"))
			x->addr.unix_path = v;
		else if (!strcmp(a, "--tcp"))
			x->addr.tcp = v;
		else if (!strcmp(a, "--export"))
			x->export = v;
		else if (!strcmp(a, "--min-block")) {
			char *end;
			unsigned long n = strtoul(v, &end, 0);

			if (*end || n == 0 || n > NBD_MAX_MIN_BLOCK || (n & (n - 1)))
				usage();
			x->want_min_block = (uint32_t)n;
		} else
			usage();
		i++;
	}
	if (!x->addr.unix_path == !x->addr.tcp)
		usage();
}

int main(int argc, char **argv)
{
	struct ctx x = {.export = ""};

	parse_args(&x, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm(RUN_TIMEOUT);

	if (option_haggling(&x) == 0 && x.known) {
		dropped_connections(&x);
		transmission(&x, "simple", false, false);
		transmission(&x, "structured", true, true);
		structured_without_meta(&x);
		final_check(&x);
	}
	printf("%u passed, %u failed\n", x.passed, x.failed);
	free(x.head);
	free(x.tail);
	free(x.buf);
	free(x.wbuf);
	return x.failed || !x.passed ? 1 : 0;
}

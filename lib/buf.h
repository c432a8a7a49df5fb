/*
 * Little-endian encoding and decoding over memory buffers, with no I/O.
 * Every wire message, map and on-disk record is built with these.
 *
 * Writer: a growable buffer.  An allocation failure latches ->err and makes
 * every later put a no-op, so a sequence of puts needs one check at the end.
 *
 * Reader: a bounded cursor.  Reading past the end latches ->err (-EBADMSG)
 * and yields zeroes, so decoders check once after the last get.
 */
#ifndef MX_BUF_H
#define MX_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mx_wbuf {
	uint8_t *data; /* From malloc(); owned. */
	size_t len;
	size_t cap;
	int err; /* 0 or -ENOMEM */
};

void mx_wbuf_init(struct mx_wbuf *w);
void mx_wbuf_free(struct mx_wbuf *w);
void mx_wbuf_reset(struct mx_wbuf *w);
/* Make room for n more bytes; returns a pointer to them or NULL.  The
 * capacity doubles until they fit. */
uint8_t *mx_wbuf_reserve(struct mx_wbuf *w, size_t n);
/*
 * The same for a caller that knows the whole of what it is about to put:
 * the capacity grows to twice what it was or to exactly len + n, whichever
 * is more, so a large record put into a small buffer takes its own size,
 * not the next power of two (a 1 MiB write staged whole would take 2 MiB).
 */
uint8_t *mx_wbuf_expect(struct mx_wbuf *w, size_t n);
void mx_put_u8(struct mx_wbuf *w, uint8_t v);
void mx_put_u16(struct mx_wbuf *w, uint16_t v);
void mx_put_u32(struct mx_wbuf *w, uint32_t v);
void mx_put_u64(struct mx_wbuf *w, uint64_t v);
void mx_put_i32(struct mx_wbuf *w, int32_t v);
void mx_put_i64(struct mx_wbuf *w, int64_t v);
void mx_put_bytes(struct mx_wbuf *w, const void *p, size_t n);
/* u32 length then bytes. */
void mx_put_blob(struct mx_wbuf *w, const void *p, uint32_t n);
/* u16 length then bytes (no NUL); NULL encodes as empty. */
void mx_put_str(struct mx_wbuf *w, const char *s);
/* Overwrite a u32 previously written at offset at. */
void mx_wbuf_patch_u32(struct mx_wbuf *w, size_t at, uint32_t v);

struct mx_rbuf {
	const uint8_t *p;
	const uint8_t *end;
	int err; /* 0 or -EBADMSG */
};

void mx_rbuf_init(struct mx_rbuf *r, const void *data, size_t len);
static inline size_t mx_rbuf_left(const struct mx_rbuf *r)
{
	return (size_t)(r->end - r->p);
}
uint8_t mx_get_u8(struct mx_rbuf *r);
uint16_t mx_get_u16(struct mx_rbuf *r);
uint32_t mx_get_u32(struct mx_rbuf *r);
uint64_t mx_get_u64(struct mx_rbuf *r);
int32_t mx_get_i32(struct mx_rbuf *r);
int64_t mx_get_i64(struct mx_rbuf *r);
/* Pointer to the next n bytes inside the buffer (not copied), or NULL. */
const void *mx_get_bytes(struct mx_rbuf *r, size_t n);
/* u32 length then bytes; *len gets the length.  Pointer into the buffer. */
const void *mx_get_blob(struct mx_rbuf *r, uint32_t *len, uint32_t max);
/* u16 length then bytes, copied into dst (NUL-terminated, dstsz bytes).
 * A string that does not fit, or holds a NUL, latches -EBADMSG. */
void mx_get_str(struct mx_rbuf *r, char *dst, size_t dstsz);
/* Same, into a fresh malloc()ed string the caller frees; NULL on error. */
char *mx_get_strdup(struct mx_rbuf *r, size_t max);
/* Latch an error (for semantic checks inside decoders). */
static inline void mx_rbuf_fail(struct mx_rbuf *r)
{
	r->err = -74; /* EBADMSG */
	r->p = r->end;
}

#endif

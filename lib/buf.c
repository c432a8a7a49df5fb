/*
 * Little-endian buffer codec; see buf.h for the error-latching contract.
 */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void mx_wbuf_init(struct mx_wbuf *w)
{
	memset(w, 0, sizeof(*w));
}

void mx_wbuf_free(struct mx_wbuf *w)
{
	free(w->data);
	memset(w, 0, sizeof(*w));
}

void mx_wbuf_reset(struct mx_wbuf *w)
{
	w->len = 0;
	w->err = 0;
}

/* Grows w to cap bytes: 0, or -ENOMEM latched. */
static int grow(struct mx_wbuf *w, size_t cap)
{
	uint8_t *d = realloc(w->data, cap);

	if (!d) {
		w->err = -ENOMEM;
		return -ENOMEM;
	}
	w->data = d;
	w->cap = cap;
	return 0;
}

uint8_t *mx_wbuf_reserve(struct mx_wbuf *w, size_t n)
{
	if (w->err)
		return NULL;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 256;

		while (cap < w->len + n)
			cap *= 2;
		if (grow(w, cap))
			return NULL;
	}
	return w->data + w->len;
}

uint8_t *mx_wbuf_expect(struct mx_wbuf *w, size_t n)
{
	if (w->err)
		return NULL;
	if (w->len + n > w->cap) {
		size_t cap = w->cap * 2;

		if (grow(w, cap > w->len + n ? cap : w->len + n))
			return NULL;
	}
	return w->data + w->len;
}

static void put_le(struct mx_wbuf *w, uint64_t v, size_t n)
{
	uint8_t *p = mx_wbuf_reserve(w, n);

	if (!p)
		return;
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	w->len += n;
}

void mx_put_u8(struct mx_wbuf *w, uint8_t v) { put_le(w, v, 1); }
void mx_put_u16(struct mx_wbuf *w, uint16_t v) { put_le(w, v, 2); }
void mx_put_u32(struct mx_wbuf *w, uint32_t v) { put_le(w, v, 4); }
void mx_put_u64(struct mx_wbuf *w, uint64_t v) { put_le(w, v, 8); }
void mx_put_i32(struct mx_wbuf *w, int32_t v) { put_le(w, (uint32_t)v, 4); }
void mx_put_i64(struct mx_wbuf *w, int64_t v) { put_le(w, (uint64_t)v, 8); }

void mx_put_bytes(struct mx_wbuf *w, const void *p, size_t n)
{
	uint8_t *d;

	if (n == 0)
		return;
	d = mx_wbuf_reserve(w, n);
	if (!d)
		return;
	memcpy(d, p, n);
	w->len += n;
}

void mx_put_blob(struct mx_wbuf *w, const void *p, uint32_t n)
{
	mx_put_u32(w, n);
	mx_put_bytes(w, p, n);
}

void mx_put_str(struct mx_wbuf *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n > UINT16_MAX) {
		w->err = -EINVAL;
		return;
	}
	mx_put_u16(w, (uint16_t)n);
	mx_put_bytes(w, s, n);
}

void mx_wbuf_patch_u32(struct mx_wbuf *w, size_t at, uint32_t v)
{
	if (w->err || at + 4 > w->len)
		return;
	for (size_t i = 0; i < 4; i++)
		w->data[at + i] = (uint8_t)(v >> (8 * i));
}

void mx_rbuf_init(struct mx_rbuf *r, const void *data, size_t len)
{
	r->p = data;
	r->end = r->p + len;
	r->err = 0;
}

static uint64_t get_le(struct mx_rbuf *r, size_t n)
{
	uint64_t v = 0;

	if (r->err || mx_rbuf_left(r) < n) {
		mx_rbuf_fail(r);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)r->p[i] << (8 * i);
	r->p += n;
	return v;
}

uint8_t mx_get_u8(struct mx_rbuf *r) { return (uint8_t)get_le(r, 1); }
uint16_t mx_get_u16(struct mx_rbuf *r) { return (uint16_t)get_le(r, 2); }
uint32_t mx_get_u32(struct mx_rbuf *r) { return (uint32_t)get_le(r, 4); }
uint64_t mx_get_u64(struct mx_rbuf *r) { return get_le(r, 8); }
int32_t mx_get_i32(struct mx_rbuf *r) { return (int32_t)(uint32_t)get_le(r, 4); }
int64_t mx_get_i64(struct mx_rbuf *r) { return (int64_t)get_le(r, 8); }

const void *mx_get_bytes(struct mx_rbuf *r, size_t n)
{
	const void *p;

	if (r->err || mx_rbuf_left(r) < n) {
		mx_rbuf_fail(r);
		return NULL;
	}
	p = r->p;
	r->p += n;
	return p;
}

const void *mx_get_blob(struct mx_rbuf *r, uint32_t *len, uint32_t max)
{
	uint32_t n = mx_get_u32(r);

	*len = 0;
	if (r->err || n > max) {
		mx_rbuf_fail(r);
		return NULL;
	}
	*len = n;
	return mx_get_bytes(r, n);
}

void mx_get_str(struct mx_rbuf *r, char *dst, size_t dstsz)
{
	uint16_t n = mx_get_u16(r);
	const char *p;

	dst[0] = '\0';
	if (r->err || (size_t)n >= dstsz) {
		mx_rbuf_fail(r);
		return;
	}
	p = mx_get_bytes(r, n);
	if (!p)
		return;
	if (memchr(p, '\0', n)) {
		mx_rbuf_fail(r);
		return;
	}
	memcpy(dst, p, n);
	dst[n] = '\0';
}

char *mx_get_strdup(struct mx_rbuf *r, size_t max)
{
	uint16_t n = mx_get_u16(r);
	const char *p;
	char *s;

	if (r->err || n > max) {
		mx_rbuf_fail(r);
		return NULL;
	}
	p = mx_get_bytes(r, n);
	if (!p)
		return NULL;
	if (memchr(p, '\0', n)) {
		mx_rbuf_fail(r);
		return NULL;
	}
	s = malloc((size_t)n + 1);
	if (!s) {
		mx_rbuf_fail(r);
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

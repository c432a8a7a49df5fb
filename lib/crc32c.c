/*
 * CRC-32C through isa-l.  isa-l's crc32_iscsi neither pre- nor
 * post-inverts, so the standard form is built here.
 */
#include "crc32c.h"

#include <isa-l/crc.h>

uint32_t mx_crc32c(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	crc = ~crc;
	/* crc32_iscsi takes an int length: feed it in bounded chunks. */
	while (len > 0) {
		int n = len > (1u << 30) ? (1 << 30) : (int)len;

		crc = crc32_iscsi((unsigned char *)p, n, crc);
		p += n;
		len -= (size_t)n;
	}
	return ~crc;
}

/*
 * CRC-32C (Castagnoli), the checksum on every stored block and every
 * message.  Backed by isa-l's hardware-accelerated crc32_iscsi.
 */
#ifndef MX_CRC32C_H
#define MX_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Standard CRC-32C of data, continuing from crc (pass 0 to start).
 * mx_crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t mx_crc32c(uint32_t crc, const void *data, size_t len);

#endif

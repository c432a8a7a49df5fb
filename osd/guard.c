/*
 * Guards of a write request: see guard.h for the contracts and
 * docs/protocol.md for the wire form.
 */
#include "guard.h"

#include <errno.h>
#include <string.h>

int mx_guard_check(uint32_t flags, uint32_t operand_len)
{
	switch (flags) {
	case MX_CMP_EQ:
		return 0;
	case MX_CMP_LT:
	case MX_CMP_LE:
	case MX_CMP_GT:
	case MX_CMP_GE:
		return operand_len > 0 ? 0 : -EINVAL;
	default:
		return -EINVAL;
	}
}

int mx_guard_holds(uint32_t flags, const void *attr, uint32_t attr_len, const void *operand,
		   uint32_t operand_len)
{
	int c;

	if (mx_guard_check(flags, operand_len) < 0)
		return -EINVAL;
	if (flags == MX_CMP_EQ)
		return attr_len == operand_len &&
		       (attr_len == 0 || memcmp(attr, operand, attr_len) == 0);
	if (!attr)
		c = -1; /* absent: below everything */
	else if (attr_len != operand_len)
		return -EINVAL;
	else
		c = memcmp(attr, operand, attr_len);
	switch (flags) {
	case MX_CMP_LT:
		return c < 0;
	case MX_CMP_LE:
		return c <= 0;
	case MX_CMP_GT:
		return c > 0;
	default: /* MX_CMP_GE */
		return c >= 0;
	}
}

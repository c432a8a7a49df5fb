/*
 * Guards of a write request (CMPXATTR, docs/protocol.md): whether a guard
 * is well formed, and whether it holds for an attribute's value.  Pure
 * functions, apart from the store, so that they are unit-tested on their
 * own; the primary evaluates every guard of a request with these before it
 * plans any change (plan_write in osd.c).
 */
#ifndef MX_GUARD_H
#define MX_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "msg.h"

/* Whether a CMPXATTR op's flags and operand make a guard the OSD knows:
 * the flags are one MX_CMP_* value and nothing else, and an ordered
 * comparison has an operand of at least one byte (a zero-length string
 * orders nothing).  0 or -EINVAL. */
int mx_guard_check(uint32_t flags, uint32_t operand_len);

/* Does the guard (flags, operand) hold for an attribute's value?  attr is
 * the value (attr_len bytes) if present, else NULL with attr_len 0.
 *  - MX_CMP_EQ: the value is exactly the operand; an empty operand holds
 *    for an absent (or empty) attribute.
 *  - MX_CMP_LT/LE/GT/GE: (value) OP (operand) as unsigned big-endian byte
 *    strings of one length; an absent attribute is below every operand.
 * Returns 1 (holds), 0 (does not), or -EINVAL: a present value whose
 * length differs from the operand's under an ordered comparison, or flags
 * mx_guard_check refuses. */
int mx_guard_holds(uint32_t flags, const void *attr, uint32_t attr_len, const void *operand,
		   uint32_t operand_len);

#endif

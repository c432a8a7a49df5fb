/*
 * A minimal unit-test harness: CHECK() records a failure with its location
 * and carries on; mx_check_done() prints a summary and gives main's status.
 */
#ifndef MX_CHECK_H
#define MX_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static int mx_check_failures;
static int mx_check_count;

#define CHECK(cond)                                                            \
	do {                                                                   \
		mx_check_count++;                                              \
		if (!(cond)) {                                                 \
			mx_check_failures++;                                   \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,  \
				__LINE__, #cond);                              \
		}                                                              \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                     \
	do {                                                                   \
		long long _a = (long long)(a), _b = (long long)(b);            \
		mx_check_count++;                                              \
		if (_a != _b) {                                                \
			mx_check_failures++;                                   \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld vs %lld)\n", \
				__FILE__, __LINE__, #a, #b, _a, _b);           \
		}                                                              \
	} while (0)

static inline int mx_check_done(const char *name)
{
	fprintf(stderr, "%s: %d checks, %d failed\n", name, mx_check_count,
		mx_check_failures);
	return mx_check_failures ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif

/*
 * Daemon logging: one line per event on stderr, with a timestamp, the
 * daemon's name and a level.  Library code logs only at debug level.
 */
#ifndef MX_LOG_H
#define MX_LOG_H

#include "util.h"

enum mx_log_level { MX_LOG_ERR = 0, MX_LOG_WARN, MX_LOG_INFO, MX_LOG_DEBUG };

/* Set the name shown in each line and the most verbose level printed. */
void mx_log_init(const char *ident, int level);
int mx_log_level(void);
void mx_log(int level, const char *fmt, ...) MX_PRINTF(2, 3);

#define mx_err(...) mx_log(MX_LOG_ERR, __VA_ARGS__)
#define mx_warn(...) mx_log(MX_LOG_WARN, __VA_ARGS__)
#define mx_info(...) mx_log(MX_LOG_INFO, __VA_ARGS__)
#define mx_debug(...)                                                          \
	do {                                                                   \
		if (mx_log_level() >= MX_LOG_DEBUG)                            \
			mx_log(MX_LOG_DEBUG, __VA_ARGS__);                     \
	} while (0)

/* Log an error with strerror(-r) appended, and evaluate to r (negative):
 * return mx_log_errno(r, "open %s", path); */
#define mx_log_errno(r, fmt, ...)                                              \
	({                                                                     \
		int _r = (r);                                                  \
		mx_log(MX_LOG_ERR, fmt ": %s", ##__VA_ARGS__, strerror(-_r));  \
		_r;                                                            \
	})

#endif

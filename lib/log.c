/*
 * Implementation of the one-line-per-event daemon log.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>

static const char *log_ident = "mixsan";
static int log_max = MX_LOG_INFO;

void mx_log_init(const char *ident, int level)
{
	log_ident = ident;
	log_max = level;
}

int mx_log_level(void)
{
	return log_max;
}

void mx_log(int level, const char *fmt, ...)
{
	static const char *names[] = {"error", "warn", "info", "debug"};
	char line[2048];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int n;

	if (level > log_max)
		return;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02d %02d:%02d:%02d.%03ld %s[%d] %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000), log_ident,
		     (int)getpid(), names[level < 0 ? 0 : level > 3 ? 3 : level]);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		(void)vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}

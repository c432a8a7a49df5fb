/*
 * The boot mark of an OSD (see bootmark.h).
 */
#include "bootmark.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define BOOT_ID_MAX 64
#define MARK_NAME "boot"

/* Read at most sz - 1 bytes of path into buf, NUL-terminated.  Its length
 * or a negative errno. */
static int read_small(const char *path, char *buf, size_t sz)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sz - 1);
	if (n < 0)
		n = -errno;
	close(fd);
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	return (int)n;
}

/* A boot id as the kernel writes one: hex digits and dashes. */
static bool valid_id(const char *id)
{
	if (!*id || strlen(id) >= BOOT_ID_MAX)
		return false;
	for (const char *p = id; *p; p++)
		if (!(*p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static int boot_id(const char *path, char id[BOOT_ID_MAX])
{
	int r = read_small(path, id, BOOT_ID_MAX);

	if (r < 0)
		return r;
	id[strcspn(id, "\n")] = '\0';
	return valid_id(id) ? 0 : -EUCLEAN;
}

/* Write DIR/boot durably (mx_replace_file). */
static int write_mark(const char *dir, const char *id, const char *state, uint64_t suspect)
{
	char line[128];
	int n = snprintf(line, sizeof(line), "%s %s %" PRIu64 "\n", id, state, suspect);

	return mx_replace_file(dir, MARK_NAME, line, (size_t)n, NULL, 0);
}

/* "ID running|clean N\n" into id, *running and *below; 0 or -EUCLEAN. */
static int parse_mark(const char *buf, char id[BOOT_ID_MAX], bool *running, uint64_t *below)
{
	char state[16], *end;
	int used = 0;

	if (sscanf(buf, "%63s %15s %n", id, state, &used) != 2 || !used || !valid_id(id))
		return -EUCLEAN;
	if (strcmp(state, "running") != 0 && strcmp(state, "clean") != 0)
		return -EUCLEAN;
	*running = strcmp(state, "running") == 0;
	if (buf[used] < '0' || buf[used] > '9')
		return -EUCLEAN; /* strtoull would take a sign or spaces */
	errno = 0;
	*below = strtoull(buf + used, &end, 10);
	if (errno || (strcmp(end, "\n") != 0 && *end != '\0'))
		return -EUCLEAN;
	return 0;
}

int mx_bootmark_start(const char *dir, const char *boot_id_path, uint64_t max_les,
		      struct mx_bootmark *out)
{
	char cur[BOOT_ID_MAX], buf[256], path[4200], prev[BOOT_ID_MAX];
	bool running;
	int r;

	memset(out, 0, sizeof(*out));
	r = boot_id(boot_id_path, cur);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/" MARK_NAME, dir);
	r = read_small(path, buf, sizeof(buf));
	if (r >= 0 && parse_mark(buf, prev, &running, &out->suspect_below) == 0) {
		out->rebooted = running && strcmp(prev, cur) != 0;
	} else if (r >= 0 || r == -ENOENT) {
		/* No mark (a first start, a store from before marks, a mark
		 * removed) or a damaged one: nothing says what a reboot may
		 * have taken, so copies that went active are suspect. */
		out->damaged = r >= 0;
		out->suspect_below = 0;
		out->rebooted = max_les > 0;
	} else {
		return r;
	}
	if (out->rebooted)
		out->suspect_below = MX_MAX(out->suspect_below, max_les + 1);
	return write_mark(dir, cur, "running", out->suspect_below);
}

int mx_bootmark_clean(const char *dir, const char *boot_id_path, const struct mx_bootmark *bm)
{
	char cur[BOOT_ID_MAX];
	int r = boot_id(boot_id_path, cur);

	return r < 0 ? r : write_mark(dir, cur, "clean", bm->suspect_below);
}

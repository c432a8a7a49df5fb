/*
 * Unit tests of the OSD's boot mark (osd/bootmark.c,
 * docs/cache-modes.md): an unclean stop found under another kernel boot
 * makes the OSD's copies suspect below the greatest les it held plus one;
 * a kill under the same boot, a clean stop, or a first start do not; the
 * mark once raised stays; a missing or damaged mark beside active PGs is
 * taken as a reboot; a damaged boot id is refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootmark.h"
#include "check.h"

static char dir[256], idpath[300], mark[300];

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

static void get(char *buf, size_t sz)
{
	FILE *f = fopen(mark, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, sz - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
}

int main(void)
{
	struct mx_bootmark bm;
	char buf[256];

	snprintf(dir, sizeof(dir), "/tmp/mx-bootmark-%d", (int)getpid());
	if (mkdtemp(strcat(dir, "-XXXXXX")) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(idpath, sizeof(idpath), "%s/boot_id", dir);
	snprintf(mark, sizeof(mark), "%s/boot", dir);

	/* First start of a fresh store: nothing to lose. */
	put(idpath, "0a1b-2c\n");
	CHECK_EQ_INT(mx_bootmark_start(dir, idpath, 0, &bm), 0);
	CHECK(!bm.rebooted && bm.suspect_below == 0);
	get(buf, sizeof(buf));
	CHECK(strcmp(buf, "0a1b-2c running 0\n") == 0);

	/* Killed and restarted under the same boot: the page cache kept
	 * everything. */
	CHECK_EQ_INT(mx_bootmark_start(dir, idpath, 40, &bm), 0);
	CHECK(!bm.rebooted && bm.suspect_below == 0);

	/* Running, then a start under another boot: suspect below 41. */
	put(idpath, "ffee\n");
	CHECK_EQ_INT(mx_bootmark_start(dir, idpath, 40, &bm), 0);
	CHECK(bm.rebooted && bm.suspect_below == 41);
	get(buf, sizeof(buf));
	CHECK(strcmp(buf, "ffee running 41\n") == 0);

	/* Killed again under that boot: the mark stays. */
	CHECK_EQ_INT(mx_bootmark_start(dir, idpath, 50, &bm), 0);
	CHECK(!bm.rebooted && bm.suspect_below == 41);

	/* A clean stop, then another boot: nothing was unsynced. */
	CHECK_EQ_INT(mx_bootmark_clean(dir, idpath, &bm), 0);
	get(buf, sizeof(buf));
	CHECK(strcmp(buf, "ffee clean 41\n") == 0);
	put(idpath, "0123\n");
	CHECK_EQ_INT(mx_bootmark_start(dir, idpath, 50, &bm), 0);
	CHECK(!bm.rebooted && bm.suspect_below == 41);

	/* A second unclean reboot raises it; it never goes down. */
	put(idpath, "4567\n");
	CHECK_EQ_INT(mx_bootmark_start(dir, idpath, 60, &bm), 0);
	CHECK(bm.rebooted && bm.suspect_below == 61);
	put(idpath, "89ab\n");
	CHECK_EQ_INT(mx_bootmark_start(dir, idpath, 3, &bm), 0);
	CHECK(bm.rebooted && bm.suspect_below == 61);

	/* A damaged mark says nothing: with PGs that went active, they are
	 * suspect; the mark is written again. */
	{
		static const char *const bad[] = {"89ab sleeping 3\n", "89ab running\n",
						  "89ab running 3 extra\n", "../x running 3\n",
						  "89ab running -1\n", "89ab running 3x\n",
						  "89ab running 99999999999999999999\n", ""};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			put(mark, bad[i]);
			CHECK_EQ_INT(mx_bootmark_start(dir, idpath, 70, &bm), 0);
			CHECK(bm.damaged && bm.rebooted && bm.suspect_below == 71);
			get(buf, sizeof(buf));
			CHECK(strcmp(buf, "89ab running 71\n") == 0);
		}
		put(mark, "89ab sleeping 3\n");
		CHECK_EQ_INT(mx_bootmark_start(dir, idpath, 0, &bm), 0);
		CHECK(bm.damaged && !bm.rebooted && bm.suspect_below == 0);
	}
	/* No mark beside a store with active PGs (one from before marks, or
	 * a mark removed): suspect too. */
	unlink(mark);
	CHECK_EQ_INT(mx_bootmark_start(dir, idpath, 9, &bm), 0);
	CHECK(!bm.damaged && bm.rebooted && bm.suspect_below == 10);

	/* A mark that cannot be read (a folder in its place): the error,
	 * nothing trusted or written. */
	unlink(mark);
	CHECK_EQ_INT(mkdir(mark, 0700), 0);
	CHECK_EQ_INT(mx_bootmark_start(dir, idpath, 9, &bm), -EISDIR);
	CHECK_EQ_INT(mx_bootmark_clean(dir, idpath, &bm), -EISDIR);
	rmdir(mark);

	/* A boot id that is not one, or none at all. */
	unlink(mark);
	put(idpath, "\n");
	CHECK_EQ_INT(mx_bootmark_start(dir, idpath, 3, &bm), -EUCLEAN);
	put(idpath, "zz\n");
	CHECK_EQ_INT(mx_bootmark_start(dir, idpath, 3, &bm), -EUCLEAN);
	unlink(idpath);
	CHECK_EQ_INT(mx_bootmark_start(dir, idpath, 3, &bm), -ENOENT);
	CHECK_EQ_INT(mx_bootmark_clean(dir, idpath, &bm), -ENOENT);

	/* The kernel's own. */
	CHECK_EQ_INT(mx_bootmark_start(dir, MX_BOOT_ID_PATH, 0, &bm), 0);
	CHECK(!bm.rebooted);

	unlink(mark);
	rmdir(dir);
	return mx_check_done("bootmark");
}

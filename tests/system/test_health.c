/*
 * Health (docs/health.md): with 4 OSDs and a pool of size 3, the status
 * reaches HEALTH_OK with every PG active+clean and the right object
 * count; an OSD killed with SIGKILL shows as down, its PGs degraded with
 * degraded objects and HEALTH_WARN, and `mixsan status --watch` prints
 * its "osd.N down" event; restarted, it is recovered and the status is
 * HEALTH_OK again.  Every wait is bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define N_OBJECTS 60
#define VICTIM 3

static json_int_t jget(json_t *j, const char *obj, const char *key)
{
	return json_integer_value(json_object_get(json_object_get(j, obj), key));
}

static const char *health_of(json_t *j)
{
	const char *s = json_string_value(json_object_get(json_object_get(j, "health"), "status"));

	return s ? s : "";
}

static bool has_check(json_t *j, const char *code)
{
	json_t *c;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(j, "health"), "checks"), i, c)
		if (strcmp(json_string_value(json_object_get(c, "code")), code) == 0)
			return true;
	return false;
}

static bool file_has(const char *path, const char *needle)
{
	char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* `mixsan status --watch` in the background, its output in path. */
static pid_t start_watch(struct h_cluster *c, const char *path)
{
	char bin[512];
	const char *root = getenv("MIXSAN_BUILD_ROOT");
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/cli/mixsan", root ? root : "build");
	pid = fork();
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd < 0)
			_exit(127);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(bin, bin, "--mon", c->mon_addr, "status", "--watch", "--timeout", "90",
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	json_t *j = NULL;
	char why[2048], wpath[512], needle[64];
	time_t end;
	pid_t watch;
	bool seen;

	memset(&c, 0, sizeof(c));
	snprintf(c.mon_args, sizeof(c.mon_args), "--heartbeat-grace 2000 --pg-stale-grace 4000");
	snprintf(c.osd_args, sizeof(c.osd_args), "--heartbeat-interval 250 --heartbeat-grace 2000");
	h_start(&c, 4);
	cl = h_connect(&c);
	h_pool_create(cl, "hp", 3, 32, "osd");
	if (mixsan_pool_open(cl, "hp", &p) < 0)
		H_FATAL("pool open");
	for (int i = 0; i < N_OBJECTS; i++) {
		char name[32], data[1000];

		snprintf(name, sizeof(name), "obj-%d", i);
		h_fill((uint64_t)i, data, sizeof(data));
		H_CHECK(mixsan_write_full(p, name, data, sizeof(data)) == 0);
	}

	/* 1. Healthy: HEALTH_OK, all PGs active+clean, every object counted. */
	H_CHECK(h_wait_health_ok(cl, 60, why, sizeof(why)) == 0);
	fprintf(stderr, "health: after the writes: %s\n", why);
	end = time(NULL) + 20;
	do {
		json_decref(j);
		j = h_status(cl);
		if (jget(j, "objects", "total") == N_OBJECTS)
			break;
		usleep(250000);
	} while (time(NULL) < end);
	H_CHECK(j != NULL);
	H_CHECK(strcmp(health_of(j), "HEALTH_OK") == 0);
	H_CHECK(jget(j, "pgs", "total") == 32 && jget(j, "pgs", "clean") == 32);
	H_CHECK(jget(j, "objects", "total") == N_OBJECTS);
	H_CHECK(jget(j, "objects", "bytes") == N_OBJECTS * 1000);
	H_CHECK(jget(j, "objects", "copies") == 3 * N_OBJECTS);
	H_CHECK(jget(j, "objects", "degraded") == 0);
	H_CHECK(jget(j, "osds", "up") == 4 && jget(j, "usage", "total_bytes") > 0);
	fprintf(stderr, "health: %lld objects, %lld bytes\n",
		(long long)jget(j, "objects", "total"), (long long)jget(j, "objects", "bytes"));
	json_decref(j);
	j = NULL;

	/* 2. kill -9: down, degraded, HEALTH_WARN; the watcher sees it. */
	snprintf(wpath, sizeof(wpath), "%s/watch.out", c.dir);
	watch = start_watch(&c, wpath);
	H_CHECK(watch > 0);
	sleep(2); /* the watcher printed its status and follows the log */
	h_signal_osd(&c, VICTIM, SIGKILL);
	seen = false;
	end = time(NULL) + 30;
	while (time(NULL) < end) {
		json_decref(j);
		j = h_status(cl);
		if (jget(j, "osds", "up") == 3 && jget(j, "objects", "degraded") > 0 &&
		    has_check(j, "OSD_DOWN") && has_check(j, "PG_DEGRADED") &&
		    jget(j, "pgs", "degraded") > 0) {
			seen = true;
			break;
		}
		usleep(250000);
	}
	H_CHECK(seen);
	H_CHECK(j && strcmp(health_of(j), "HEALTH_WARN") == 0);
	if (j) {
		char *txt = json_dumps(json_object_get(j, "health"), JSON_COMPACT);

		fprintf(stderr, "health: with osd.%d killed: %s; %lld objects degraded\n", VICTIM,
			txt, (long long)jget(j, "objects", "degraded"));
		free(txt);
	}
	snprintf(needle, sizeof(needle), "osd.%d down", VICTIM);
	seen = false;
	end = time(NULL) + 20;
	while (time(NULL) < end && !(seen = file_has(wpath, needle)))
		usleep(250000);
	H_CHECK(seen);
	if (watch > 0) {
		kill(watch, SIGINT);
		(void)waitpid(watch, NULL, 0);
	}
	if (!seen) {
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "cat %s >&2", wpath);
		(void)system(cmd);
	}

	/* 3. Restarted: recovered, HEALTH_OK again, nothing degraded. */
	h_start_osd(&c, VICTIM);
	H_CHECK(h_wait_up(&c, cl, 4, 30) == 0);
	H_CHECK(h_wait_health_ok(cl, 120, why, sizeof(why)) == 0);
	fprintf(stderr, "health: after the restart: %s\n", why);
	json_decref(j);
	j = h_status(cl);
	H_CHECK(j && jget(j, "objects", "degraded") == 0 && jget(j, "pgs", "clean") == 32);
	H_CHECK(j && jget(j, "objects", "total") == N_OBJECTS);
	json_decref(j);

	/* The event log tells the story. */
	{
		char *msg = NULL;
		const char *kv[] = {"after", "0"};

		H_CHECK(mixsan_mon_command(cl, "log", kv, 1, &msg) == 0);
		H_CHECK(msg && strstr(msg, needle) != NULL);
		snprintf(needle, sizeof(needle), "osd.%d up", VICTIM);
		H_CHECK(msg && strstr(msg, needle) != NULL);
		H_CHECK(msg && strstr(msg, "health HEALTH_WARN") != NULL);
		H_CHECK(msg && strstr(msg, "pool 'hp' (id") != NULL);
		free(msg);
	}

	mixsan_pool_close(p);
	mixsan_shutdown(cl);
	h_stop(&c);
	fprintf(stderr, "health: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

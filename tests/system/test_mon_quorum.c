/*
 * Three monitors in a quorum (docs/monitor-quorum.md):
 *
 * 1. While a client writes (16 in flight, every acknowledgement kept in a
 *    model), the leading monitor and an OSD are killed with kill -9 at the
 *    same moment.  A new leader is elected, the OSD is still marked down
 *    (by the new leader, from its peers' reports), its PGs re-peer without
 *    it, and no client operation fails: every acknowledged write reads
 *    back.
 * 2. The killed monitor and OSD come back; the monitor catches up.
 * 3. Every monitor is killed at once and restarted: each serves the same
 *    map for the newest epoch from before (byte for byte) and no older
 *    newest epoch.
 * 4. mon rm and mon add: the quorum shrinks to two and grows back to
 *    three with a monitor that joined empty.
 * 5. The Raft links (docs/monitor-quorum.md, "The Raft link"): every step
 *    above runs on links secured with a monitor key.  A follower restarted
 *    with another key is refused by the others (and refuses them) while
 *    they commit; bytes that are not a monitor's handshake sent to the
 *    leader's Raft port are dropped; the follower, given the right key
 *    again, catches up.  A monitor of a quorum with keys refuses to start
 *    with no monitor key, a key file others can read, an entity's key
 *    file, or both a monitor key and --trust-raft-network.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "harness.h"
#include "internal.h"
#include "map.h"
#include "model.h"

#define N_OBJ 200
#define QD 16

static int wait_leader(struct h_cluster *c, int ask, int not, int timeout_s)
{
	for (int t = 0; t < timeout_s * 5; t++) {
		int l = h_mon_leader(c, ask);

		if (l >= 0 && l != not)
			return l;
		usleep(200000);
	}
	return -1;
}

static bool same_map(const struct mx_map *a, const struct mx_map *b)
{
	struct mx_wbuf x, y;
	bool same;

	mx_wbuf_init(&x);
	mx_wbuf_init(&y);
	mx_map_encode(a, &x);
	mx_map_encode(b, &y);
	same = x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
	mx_wbuf_free(&x);
	mx_wbuf_free(&y);
	return same;
}

/* The epoch every monitor serves as its newest, once they agree (or 0). */
static uint64_t settled_epoch(struct h_cluster *c, int timeout_s)
{
	for (int t = 0; t < timeout_s * 4; t++) {
		uint64_t e[H_MAX_MONS] = {0};
		bool agree = true;

		for (int i = 0; i < c->n_mons; i++) {
			struct mx_map *m;

			if (h_fetch_map(c->mon_addrs[i], 0, &m) == 0) {
				e[i] = m->epoch;
				mx_map_free(m);
			}
			agree = agree && e[i] && e[i] == e[0];
		}
		if (agree)
			return e[0];
		usleep(250000);
	}
	return 0;
}

int main(void)
{
	struct h_cluster c;
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	struct h_model md = {.name = "mon_quorum", .n_obj = N_OBJ, .obj_max = 128 * 1024,
			     .len_max = 32 * 1024, .off_slack = 4096, .qd = QD};
	uint64_t seed = (uint64_t)time(NULL);
	int leader, victim = 1, next;
	char st[2048];

	if (getenv("MIXSAN_TEST_MON")) {
		fprintf(stderr, "mon_quorum: needs its own monitors; skipped\n");
		return 77;
	}
	if (getenv("MIXSAN_TEST_SEED"))
		seed = strtoull(getenv("MIXSAN_TEST_SEED"), NULL, 10);
	md.rs = seed;
	fprintf(stderr, "mon_quorum: seed %llu\n", (unsigned long long)seed);
	memset(&c, 0, sizeof(c));
	c.n_mons = 3;
	c.mon_key = true;
	h_start(&c, 4);
	cl = h_connect(&c);
	h_pool_create(cl, "q", 3, 32, "osd");
	if (mixsan_pool_open(cl, "q", &p) < 0)
		H_FATAL("pool open");
	md.pool = p;
	h_model_init(&md);

	/* 1: the leader and an OSD die together under load. */
	leader = wait_leader(&c, 0, -1, 20);
	if (leader < 0)
		H_FATAL("no leader");
	fprintf(stderr, "mon_quorum: mon.%c leads\n", 'a' + leader);
	h_model_run_for(&md, 2.0);
	for (int i = 0; i < 4000; i++) {
		struct h_model_req *r = h_model_next(&md);

		if (i == 300) {
			fprintf(stderr, "mon_quorum: kill -9 mon.%c and osd.%d after %llu acks\n",
				'a' + leader, victim, (unsigned long long)md.acked);
			h_signal_mon(&c, leader, SIGKILL);
			h_signal_osd(&c, victim, SIGKILL);
		}
		h_model_issue(&md, r);
		if (i > 300 && h_count_up(cl) == 3)
			break; /* the OSD is marked down */
	}
	next = wait_leader(&c, (leader + 1) % 3, leader, 20);
	fprintf(stderr, "mon_quorum: new leader mon.%c\n", next >= 0 ? 'a' + next : '?');
	H_CHECK(next >= 0 && next != leader);
	/* The new leader still marks the OSD down. */
	H_CHECK(h_wait_up(&c, cl, 3, 1) == 0);
	for (int t = 0; t < 60 && h_count_up(cl) != 3; t++)
		h_model_run_for(&md, 0.5);
	H_CHECK(h_count_up(cl) == 3);
	/* ...and I/O goes on while its PGs re-peer without it. */
	h_model_run_for(&md, 5.0);
	h_model_verify(&md, "after the leader and an OSD died");
	fprintf(stderr, "mon_quorum: %llu writes acknowledged, longest %.2f s\n",
		(unsigned long long)md.acked, md.max_stall);
	if (next >= 0) {
		char log[16];

		snprintf(log, sizeof(log), "mon.%c", 'a' + next);
		H_CHECK(h_log_count(&c, log, "leading the quorum") >= 1);
		H_CHECK(h_log_count(&c, log, "marked down") >= 1);
	}

	/* 2: both come back; the monitor catches up. */
	h_start_mon(&c, leader);
	h_start_osd(&c, victim);
	H_CHECK(h_wait_up(&c, cl, 4, 30) == 0);
	h_model_run_for(&md, 2.0);
	{
		uint64_t e = settled_epoch(&c, 20);

		H_CHECK(e > 0);
		H_CHECK(h_mon_status(&c, leader, st, sizeof(st)) == 0 && strstr(st, "follower"));
	}

	/* 3: every monitor killed at once, then restarted. */
	{
		uint64_t e = settled_epoch(&c, 20);
		struct mx_map *before = NULL, *after;

		H_CHECK(e > 0 && h_fetch_map(c.mon_addrs[0], e, &before) == 0);
		for (int i = 0; i < 3; i++)
			kill(c.mon_pids[i], SIGKILL);
		for (int i = 0; i < 3; i++)
			h_signal_mon(&c, i, SIGKILL);
		fprintf(stderr, "mon_quorum: every monitor killed at epoch %llu\n",
			(unsigned long long)e);
		/* mon.a keeps only its log: its map must come back from it. */
		{
			char cmd[700];

			snprintf(cmd, sizeof(cmd), "rm -rf '%s/mon.a/map' '%s/mon.a/epochs'", c.dir,
				 c.dir);
			H_CHECK(system(cmd) == 0);
		}
		for (int i = 0; i < 3; i++)
			h_start_mon(&c, i);
		H_CHECK(wait_leader(&c, 0, -1, 30) >= 0);
		for (int i = 0; i < 3 && before; i++) {
			int r = -1;

			/* Each serves that epoch, identical, and nothing older
			 * as its newest. */
			for (int t = 0; t < 40 && r != 0; t++) {
				r = h_fetch_map(c.mon_addrs[i], e, &after);
				if (r != 0)
					usleep(250000);
			}
			H_CHECK(r == 0);
			if (r == 0) {
				H_CHECK(after->epoch == e && same_map(before, after));
				mx_map_free(after);
			}
			if (h_fetch_map(c.mon_addrs[i], 0, &after) == 0) {
				H_CHECK(after->epoch >= e);
				mx_map_free(after);
			}
		}
		mx_map_free(before);
		/* Every monitor serves the same newest map, byte for byte. */
		{
			uint64_t e2 = settled_epoch(&c, 20);
			struct mx_map *m0 = NULL;

			H_CHECK(e2 >= e);
			H_CHECK(h_fetch_map(c.mon_addrs[0], 0, &m0) == 0);
			for (int i = 1; i < 3 && m0; i++) {
				H_CHECK(h_fetch_map(c.mon_addrs[i], 0, &after) == 0);
				if (after) {
					H_CHECK(after->epoch != m0->epoch || same_map(m0, after));
					mx_map_free(after);
					after = NULL;
				}
			}
			mx_map_free(m0);
		}
		h_model_run_for(&md, 3.0);
	}

	/* 4: shrink to two and grow back to three. */
	{
		int l = wait_leader(&c, 0, -1, 20), gone = (l + 1) % 3;
		char name[2] = {(char)('a' + gone), 0};
		const char *kv[] = {"name", name};
		char *msg = NULL;
		int r = mixsan_mon_command(cl, "mon rm", kv, 1, &msg);

		fprintf(stderr, "mon_quorum: mon rm %s: %d %s\n", name, r, msg ? msg : "");
		H_CHECK(r == 0);
		free(msg);
		h_signal_mon(&c, gone, SIGTERM);
		h_model_run_for(&md, 2.0);
		/* The two left still commit: an OSD restart is a new epoch. */
		h_signal_osd(&c, 0, SIGTERM);
		h_start_osd(&c, 0);
		H_CHECK(h_wait_up(&c, cl, 4, 30) == 0);
		{
			struct mx_map *m = mx_client_map_copy(cl);

			H_CHECK(m && m->n_mons == 2);
			mx_map_free(m);
		}
		/* It comes back empty, with --join, and is added. */
		{
			const char *kv2[] = {"name", name, "addr", c.mon_addrs[gone],
					     "raft_addr", c.mon_raft[gone]};

			h_join_mon(&c, gone);
			/* mon add can be run again after a failure (the newcomer
			 * slow to start): each step done is skipped. */
			for (int t = 0; t < 5; t++) {
				msg = NULL;
				r = mixsan_mon_command(cl, "mon add", kv2, 3, &msg);
				fprintf(stderr, "mon_quorum: mon add %s: %d %s\n", name, r,
					msg ? msg : "");
				free(msg);
				if (r == 0)
					break;
				sleep(1);
			}
			H_CHECK(r == 0);
			/* Once more: nothing to do, still success. */
			msg = NULL;
			H_CHECK(mixsan_mon_command(cl, "mon add", kv2, 3, &msg) == 0);
			fprintf(stderr, "mon_quorum: mon add %s again: %s\n", name, msg ? msg : "");
			free(msg);
		}
		{
			uint64_t e = settled_epoch(&c, 30);
			struct mx_map *m = NULL;

			H_CHECK(e > 0);
			H_CHECK(h_fetch_map(c.mon_addrs[gone], 0, &m) == 0 && m->n_mons == 3);
			mx_map_free(m);
			H_CHECK(h_mon_status(&c, gone, st, sizeof(st)) == 0 &&
				strstr(st, "follower"));
			fprintf(stderr, "mon_quorum: %s\n", st);
		}
	}

	/* 5: a follower with another monitor key. */
	{
		int l = wait_leader(&c, 0, -1, 20), f = (l + 1) % 3;
		char log[16], wrong[300], right[300], leader_log[16];
		uint8_t key[MX_KEY_LEN];
		uint64_t e;
		struct mx_map *m = NULL;

		snprintf(log, sizeof(log), "mon.%c", 'a' + f);
		snprintf(leader_log, sizeof(leader_log), "mon.%c", 'a' + l);
		snprintf(wrong, sizeof(wrong), "%.280s/wrong.key", c.dir);
		H_CHECK(mx_key_random(key) == 0 && mx_keyfile_write(wrong, "mon", key, false) == 0);
		snprintf(right, sizeof(right), "%s", c.mon_keyfile);
		h_signal_mon(&c, f, SIGTERM);
		snprintf(c.mon_keyfile, sizeof(c.mon_keyfile), "%s", wrong);
		h_start_mon(&c, f);
		snprintf(c.mon_keyfile, sizeof(c.mon_keyfile), "%s", right);
		/* The two others commit a change meanwhile (a new pool). */
		h_pool_create(cl, "q5", 3, 8, "osd");
		e = mixsan_map_epoch(cl);
		h_model_run_for(&md, 2.0);
		H_CHECK(h_fetch_map(c.mon_addrs[f], 0, &m) == 0 && m->epoch < e);
		fprintf(stderr, "mon_quorum: mon.%c with another key stays at epoch %llu, the "
			"others at %llu\n", 'a' + f, m ? (unsigned long long)m->epoch : 0ull,
			(unsigned long long)e);
		mx_map_free(m);
		m = NULL;
		/* The follower refuses only the links it opens itself (a listener
		 * cannot tell why its peer hung up): its first, once its election
		 * timeout (1 to 2 s) runs out, may come after the 2 s above. */
		for (int t = 0; t < 50 && h_log_count(&c, log, "does not hold our monitor key") == 0;
		     t++)
			h_model_run_for(&md, 0.2);
		H_CHECK(h_log_count(&c, log, "does not hold our monitor key") > 0);
		H_CHECK(h_log_count(&c, leader_log, "does not hold our monitor key") > 0);
		/* Not a monitor's handshake, on the leader's Raft port: dropped,
		 * and the quorum goes on. */
		{
			int fd = h_raw_connect(c.mon_raft[l]);
			uint8_t junk[256], b;

			for (size_t i = 0; i < sizeof(junk); i++)
				junk[i] = (uint8_t)(i * 7 + 1);
			H_CHECK(fd >= 0 && h_io_all(fd, junk, sizeof(junk), true) == 0);
			H_CHECK(fd >= 0 && read(fd, &b, 1) <= 0);
			if (fd >= 0)
				close(fd);
			H_CHECK(h_log_count(&c, leader_log, "not a monitor's Raft link") > 0);
		}
		/* The right key again: it catches up. */
		h_signal_mon(&c, f, SIGTERM);
		h_start_mon(&c, f);
		for (int t = 0; t < 40; t++) {
			if (h_fetch_map(c.mon_addrs[f], 0, &m) == 0 && m->epoch >= e)
				break;
			mx_map_free(m);
			m = NULL;
			usleep(250000);
		}
		H_CHECK(m && m->epoch >= e);
		mx_map_free(m);
		H_CHECK(wait_leader(&c, f, -1, 20) >= 0);
	}
	/* Refusals at start: keys without a monitor key; a key file others
	 * can read; an entity's key file as the monitor key; both a monitor
	 * key and --trust-raft-network. */
	{
		static const struct {
			const char *file, *flag, *want;
		} cases[] = {
			{NULL, "", "--mon-keyfile"},
			{"open.key", "", "chmod 600"},
			{"client.key", "", "no key named"},
			{"mon.key", " --trust-raft-network", "give one of them"},
		};
		char cmd[2000], d[300], out[400], extra[400], kf[400];
		uint8_t key[MX_KEY_LEN];
		FILE *pf;
		int rc;

		snprintf(d, sizeof(d), "%s/lone", c.dir);
		snprintf(cmd, sizeof(cmd), "cp %s %s/open.key && chmod 644 %s/open.key",
			 c.mon_keyfile, c.dir, c.dir);
		H_CHECK(system(cmd) == 0);
		snprintf(kf, sizeof(kf), "%s/client.key", c.dir);
		H_CHECK(mx_key_random(key) == 0 && mx_keyfile_write(kf, "client.x", key, false) == 0);
		for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
			char line[512] = "";

			if (cases[k].file)
				snprintf(extra, sizeof(extra), "--mon-keyfile %s/%s%s", c.dir,
					 cases[k].file, cases[k].flag);
			else
				extra[0] = '\0';
			snprintf(out, sizeof(out), "%s/lone.%zu.log", c.dir, k);
			snprintf(cmd, sizeof(cmd),
				 "mkdir -p %s && %s/mon/mixsan-mon --data %s --name a "
				 "--mons a=127.0.0.1:1/127.0.0.1:2 --auth --admin-keyfile %s/lone.key "
				 "%s > %s 2>&1",
				 d, getenv("MIXSAN_BUILD_ROOT") ? getenv("MIXSAN_BUILD_ROOT") : ".", d,
				 c.dir, extra, out);
			rc = system(cmd);
			H_CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
			pf = fopen(out, "re");
			while (pf && fgets(line, sizeof(line), pf) && !strstr(line, cases[k].want))
				;
			if (pf)
				fclose(pf);
			fprintf(stderr, "mon_quorum: refused: %s", line);
			H_CHECK(strstr(line, cases[k].want) != NULL);
		}
	}

	h_model_drain(&md);
	h_model_verify(&md, "at the end");
	{
		uint64_t checked = 0;
		int problems = h_shutdown_check_replicas(&c, cl, p, &checked);

		fprintf(stderr, "mon_quorum: %llu objects identical on all replicas? %d problems\n",
			(unsigned long long)checked, problems);
		H_CHECK(problems == 0);
	}
	h_model_free(&md);
	h_stop(&c);
	fprintf(stderr, "mon_quorum: %d failures\n", h_failures);
	return h_failures ? 1 : 0;
}

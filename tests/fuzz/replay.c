/*
 * Replays a fuzz corpus through a fuzz entry point, so that every input the
 * fuzzer ever found interesting stays a regression test.  With --generate
 * DIR it writes a seed corpus of well-formed inputs instead.
 *
 * usage: replay CORPUS_DIR...      replay every file
 *        replay --generate DIR     write the seed corpus
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "map.h"
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rbe");
	uint8_t *buf;
	long n;

	if (!f)
		return -errno;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(buf);
		return -EIO;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	return 0;
}

static void put(const char *dir, const char *name, uint8_t sel, const struct mx_wbuf *w)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wbe");
	if (!f) {
		perror(path);
		exit(1);
	}
	fwrite(&sel, 1, 1, f);
	fwrite(w->data, 1, w->len, f);
	fclose(f);
}

static int generate(const char *dir)
{
	struct mx_wbuf w;
	struct mx_map *m = mx_map_new();
	struct mx_pool p;

	mkdir(dir, 0755);
	mx_wbuf_init(&w);
	m->epoch = 3;
	mx_map_set_max_osd(m, 2);
	for (int i = 0; i < 2; i++) {
		m->osds[i].exists = m->osds[i].up = m->osds[i].in = true;
		m->osds[i].weight = MX_WEIGHT_ONE;
		strcpy(m->osds[i].addr, "127.0.0.1:6800");
		mx_loc_parse("host=a", m->osds[i].loc, &m->osds[i].nloc);
	}
	mx_pool_init(&p);
	p.id = 1;
	strcpy(p.name, "rbd");
	strcpy(p.root_name, "default");
	p.size = 2;
	p.min_size = 1;
	p.pg_num = 8;
	mx_map_add_pool(m, &p);
	mx_map_encode(m, &w);
	put(dir, "map", 0xfe, &w);
	{
		uint8_t hdr[MX_MSG_HDR_LEN];

		mx_msg_hdr_encode(hdr, MX_MSG_OSD_OP, 1, w.data, (uint32_t)w.len);
		mx_wbuf_reset(&w);
		mx_put_bytes(&w, hdr, sizeof(hdr));
		put(dir, "header", 0xff, &w);
	}
	mx_wbuf_reset(&w);
	{
		struct mx_msg_get_map gm = {.have_epoch = 1, .subscribe = true};

		mx_enc_get_map(&w, &gm);
		put(dir, "get_map", 0, &w);
	}
	mx_wbuf_reset(&w);
	{
		struct mx_msg_osd_boot b = {.osd_id = -1, .addr = "127.0.0.1:1", .location = "host=a",
					    .device_class = "ssd", .weight = 65536};

		b.uuid[0] = 1;
		mx_enc_osd_boot(&w, &b);
		put(dir, "osd_boot", 2, &w);
	}
	mx_wbuf_reset(&w);
	{
		struct mx_msg_command c = {.prefix = "pool create", .n_args = 1};

		c.keys[0] = "name";
		c.vals[0] = "x";
		mx_enc_command(&w, &c);
		put(dir, "command", 4, &w);
	}
	mx_wbuf_reset(&w);
	{
		struct mx_msg_osd_op o;

		memset(&o, 0, sizeof(o));
		o.epoch = 3;
		o.pool = 1;
		o.name = "obj";
		o.name_len = 3;
		o.n_ops = 2;
		o.ops[0].op = MX_OP_WRITE;
		o.ops[0].data = "data";
		o.ops[0].data_len = 4;
		o.ops[1].op = MX_OP_SETXATTR;
		o.ops[1].xname = "k";
		o.ops[1].data = "v";
		o.ops[1].data_len = 1;
		mx_enc_osd_op(&w, &o);
		put(dir, "osd_op_write", 6, &w);
		mx_wbuf_reset(&w);
		o.n_ops = 1;
		o.ops[0].op = MX_OP_READ;
		o.ops[0].len = 4096;
		mx_enc_osd_op(&w, &o);
		put(dir, "osd_op_read", 6, &w);
	}
	mx_wbuf_reset(&w);
	{
		struct mx_msg_repop r;

		memset(&r, 0, sizeof(r));
		r.name = "obj";
		r.name_len = 3;
		r.n_ops = 2;
		r.ops[0].type = 2;
		r.ops[1].type = 1;
		r.ops[1].data = "abc";
		r.ops[1].data_len = 3;
		mx_enc_repop(&w, &r);
		put(dir, "repop", 8, &w);
	}
	mx_wbuf_reset(&w);
	{
		struct mx_msg_osd_list l = {.epoch = 1, .pool = 1, .pg = 0, .cursor = "a",
					    .cursor_len = 1, .max = 10};
		struct mx_list_entry e = {.name = "obj", .name_len = 3, .size = 9};
		size_t at;

		mx_enc_osd_list(&w, &l);
		put(dir, "list", 10, &w);
		mx_wbuf_reset(&w);
		at = mx_enc_list_reply_begin(&w, 0, 1);
		mx_enc_list_reply_entry(&w, &e);
		mx_enc_list_reply_end(&w, at, 1, true);
		put(dir, "list_reply", 11, &w);
	}
	mx_wbuf_reset(&w);
	{
		uint8_t *d;
		size_t at;

		mx_enc_osd_op_reply_head(&w, 0, 1, 1, 2, 1);
		d = mx_enc_osd_op_result_reserve(&w, 0, 4, &at);
		memcpy(d, "abcd", 4);
		mx_enc_osd_op_result_finish(&w, at, 0, 4);
		put(dir, "osd_op_reply", 7, &w);
	}
	mx_wbuf_reset(&w);
	{
		struct mx_pg_ref ref = {.epoch = 3, .pool = 1, .pg = 2, .interval = 3};
		struct mx_wire_pg_info info = {.lu_epoch = 3, .lu_seq = 1, .les = 3, .n_acting = 1};
		struct mx_wire_log_entry e = {.ver_epoch = 3, .ver_seq = 1, .kind = 1, .name = "o",
					      .name_len = 1};
		struct mx_msg_pg_activate a = {.ref = ref, .les = 3, .with_log = true};
		struct mx_msg_pg_object o = {.ref = ref, .name = "o", .name_len = 1, .exists = true};
		size_t at;

		mx_enc_pg_query(&w, &ref);
		put(dir, "pg_query", 16, &w);
		mx_wbuf_reset(&w);
		at = mx_enc_pg_notify_head(&w, 0, &ref, &info);
		mx_enc_pg_log_entry(&w, &e);
		mx_enc_pg_notify_end(&w, at, 1, &info);
		put(dir, "pg_notify", 17, &w);
		mx_wbuf_reset(&w);
		at = mx_enc_pg_activate_head(&w, &a);
		mx_enc_pg_log_entry(&w, &e);
		mx_enc_pg_activate_end(&w, at, 1, &a);
		put(dir, "pg_activate", 18, &w);
		mx_wbuf_reset(&w);
		at = mx_enc_pg_object_head(&w, &o);
		mx_enc_pg_object_xattr(&w, "k", "v", 1);
		mx_enc_pg_object_end(&w, at, 1, "data", 4);
		put(dir, "pg_push", 20, &w);
	}
	mx_wbuf_free(&w);
	mx_map_free(m);
	return 0;
}

int main(int argc, char **argv)
{
	int files = 0;

	if (argc == 3 && strcmp(argv[1], "--generate") == 0)
		return generate(argv[2]);
	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		struct dirent *e;

		if (!d) {
			fprintf(stderr, "cannot open %s\n", argv[i]);
			return 1;
		}
		while ((e = readdir(d))) {
			char path[4096];

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
			if (replay_file(path) < 0) {
				fprintf(stderr, "cannot read %s\n", path);
				closedir(d);
				return 1;
			}
			files++;
		}
		closedir(d);
	}
	printf("replayed %d inputs\n", files);
	return files > 0 ? 0 : 1;
}

/*
 * `mixsan volume` subcommands: create, ls, info, resize, rm, du, import and
 * export (docs/volumes.md).  Volumes are named POOL/NAME.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

#define QUEUE 8 /* requests in flight during import and export */

/* "10G", "512M", "4096": bytes (binary suffixes K M G T P). */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned sh = 0;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'K': case 'k': sh = 10; end++; break;
	case 'M': case 'm': sh = 20; end++; break;
	case 'G': case 'g': sh = 30; end++; break;
	case 'T': case 't': sh = 40; end++; break;
	case 'P': case 'p': sh = 50; end++; break;
	default: break;
	}
	if (*end == 'i' && sh)
		end++;
	if ((*end == 'B' || *end == 'b') && sh)
		end++;
	if (*end || (sh && v > (UINT64_MAX >> sh)))
		return -EINVAL;
	*out = (uint64_t)v << sh;
	return 0;
}

static unsigned order_of(uint64_t v)
{
	unsigned o = 0;

	while ((1ull << o) < v && o < 63)
		o++;
	return (1ull << o) == v ? o : 0;
}

/* Split "POOL/NAME" into pool and name (pointers into a copy). */
static int split_spec(const char *spec, char *buf, size_t sz, char **pool, char **name)
{
	char *slash;

	if (snprintf(buf, sz, "%s", spec) >= (int)sz)
		return -EINVAL;
	slash = strchr(buf, '/');
	if (!slash || slash == buf || !slash[1])
		return -EINVAL;
	*slash = '\0';
	*pool = buf;
	*name = slash + 1;
	return 0;
}

struct vctx {
	mixsan_cluster_t *cl;
	mixsan_pool_t *p;
	char *pool, *name;
	char spec[512];
};

/* Connect and open the pool of spec (POOL/NAME, or POOL if !want_name). */
static int vctx_open(struct cli *c, const char *spec, bool want_name, struct vctx *v)
{
	int r;

	memset(v, 0, sizeof(*v));
	if (want_name) {
		if (split_spec(spec, v->spec, sizeof(v->spec), &v->pool, &v->name) < 0)
			return cli_fail("'%s' is not POOL/NAME", spec);
	} else {
		snprintf(v->spec, sizeof(v->spec), "%s", spec);
		v->name = strchr(v->spec, '/');
		if (v->name)
			*v->name++ = '\0';
		v->pool = v->spec;
	}
	if (cli_connect(c, &v->cl) < 0)
		return 1;
	r = mixsan_pool_open(v->cl, v->pool, &v->p);
	if (r < 0) {
		mixsan_shutdown(v->cl);
		return cli_fail("no such pool '%s'", v->pool);
	}
	return 0;
}

static void vctx_close(struct vctx *v)
{
	mixsan_pool_close(v->p);
	mixsan_shutdown(v->cl);
}

static const char *vol_err(int r)
{
	switch (-r) {
	case ENOENT: return "no such volume or snapshot";
	case ENOTEMPTY: return "the volume has snapshots: remove them first";
	case EPERM: return "the snapshot is not protected (snap protect first)";
	case EEXIST: return "a volume of that name exists";
	case EBUSY: return "the volume is open for writing elsewhere (its lock is held)";
	case ENOLCK: return "this writer lost the volume's lock";
	default: return cli_errstr(r);
	}
}

/* Progress on a terminal: "importing  42% 1.2 GiB of 3.0 GiB". */
struct progress {
	bool on;
	const char *what;
	uint64_t total;
	time_t last;
};

static void progress_show(struct progress *pg, uint64_t done, bool end)
{
	char a[32], b[32];
	time_t now = time(NULL);

	if (!pg->on || (!end && now == pg->last))
		return;
	pg->last = now;
	human_bytes((double)done, a, sizeof(a));
	human_bytes((double)pg->total, b, sizeof(b));
	fprintf(stderr, "\r%s %3d%% %s of %s%s", pg->what,
		pg->total ? (int)(done * 100 / pg->total) : 100, a, b, end ? "\n" : "");
	fflush(stderr);
}

static int print_name_cb(void *arg, const char *name)
{
	json_t *arr = arg;

	if (arr)
		json_array_append_new(arr, json_string(name));
	else
		puts(name);
	return 0;
}

static json_t *info_json(const struct mixsan_volume_info *i)
{
	return json_pack("{s:s, s:s, s:I, s:i, s:I, s:I, s:I, s:s, s:I}", "name", i->name, "id",
			 i->id, "size", (json_int_t)i->size, "order", (int)i->order,
			 "object_size", (json_int_t)i->object_size, "objects",
			 (json_int_t)i->objects, "objects_used", (json_int_t)i->objects_used,
			 "lock_owner", i->lock_owner, "lock_expires_ms",
			 (json_int_t)i->lock_expires_ms);
}

/* Bytes the map says may hold data (a partial last object counts as far as
 * the volume's end). */
static uint64_t used_bytes(const struct mixsan_volume_info *i)
{
	uint64_t b = i->objects_used * i->object_size;

	return b > i->size ? i->size : b;
}

/* "POOL.PG", the PG in hex as object locate prints it (a static buffer). */
static const char *pg_str(int64_t pool, uint32_t pg)
{
	static char buf[48];

	snprintf(buf, sizeof(buf), "%" PRId64 ".%x", pool, pg);
	return buf;
}

/* volume locate POOL/NAME [OFFSET]: where the byte at OFFSET (default 0,
 * the first object) lives (docs/volumes.md, "Locality"). */
static int do_locate(struct cli *c, struct vctx *v)
{
	struct mixsan_volume_options o = {.flags = MIXSAN_VOLUME_RDONLY};
	struct mixsan_volume_location l;
	mixsan_volume_t *vol;
	uint64_t off = 0;
	int r;

	if (c->argc > 2 || (c->argc == 2 && parse_size(c->argv[1], &off) < 0))
		return cli_fail("usage: volume locate POOL/NAME [OFFSET]");
	r = mixsan_volume_open(v->p, v->name, &o, &vol);
	if (r == 0) {
		r = mixsan_volume_locate(vol, off, &l);
		mixsan_volume_close(vol);
	}
	if (r == -EINVAL)
		return cli_fail("%s/%s: offset %" PRIu64 " is past the end", v->pool, v->name, off);
	if (r < 0)
		return cli_fail("%s/%s: %s", v->pool, v->name, vol_err(r));
	if (c->json) {
		json_t *acting = json_array(), *j;
		char *s;

		for (int i = 0; i < l.n_acting; i++)
			json_array_append_new(acting, json_integer(l.acting[i]));
		j = json_pack("{s:s, s:I, s:I, s:s, s:i, s:o, s:s, s:s, s:b}", "object", l.object,
			      "offset", (json_int_t)off, "pool", (json_int_t)l.pool, "pg",
			      pg_str(l.pool, l.pg), "primary", l.acting[0], "acting", acting,
			      "primary_addr", l.primary_addr, "primary_host", l.primary_host,
			      "allocated", l.allocated);
		s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
		puts(s ? s : "{}");
		free(s);
		json_decref(j);
		return 0;
	}
	printf("%s/%s offset %" PRIu64 ": object %s (%s), pg %s, primary osd.%d at %s%s%s, "
	       "acting [",
	       v->pool, v->name, off, l.object, l.allocated ? "allocated" : "not allocated",
	       pg_str(l.pool, l.pg), l.acting[0], l.primary_addr,
	       l.primary_host[0] ? " on host " : "", l.primary_host);
	for (int i = 0; i < l.n_acting; i++)
		printf("%s%d", i ? "," : "", l.acting[i]);
	printf("]\n");
	return 0;
}

static int do_info(struct cli *c, struct vctx *v)
{
	struct mixsan_volume_options o = {.flags = MIXSAN_VOLUME_RDONLY};
	struct mixsan_volume_info i;
	mixsan_volume_t *vol;
	char sz[32], obj[32], used[32];
	int r = mixsan_volume_open(v->p, v->name, &o, &vol);

	if (r == 0) {
		r = mixsan_volume_info(vol, &i);
		mixsan_volume_close(vol);
	}
	if (r < 0)
		return cli_fail("%s/%s: %s", v->pool, v->name, vol_err(r));
	if (c->json) {
		json_t *j = info_json(&i);
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

		puts(s ? s : "{}");
		free(s);
		json_decref(j);
		return 0;
	}
	human_bytes((double)i.size, sz, sizeof(sz));
	human_bytes((double)i.object_size, obj, sizeof(obj));
	human_bytes((double)used_bytes(&i), used, sizeof(used));
	printf("volume %s/%s\n  id:          %s\n  size:        %s (%" PRIu64 " bytes)\n"
	       "  objects:     %" PRIu64 " of %s, %" PRIu64 " allocated (%s)\n",
	       v->pool, i.name, i.id, sz, i.size, i.objects, obj, i.objects_used, used);
	{
		struct mixsan_volume_options ro = {.flags = MIXSAN_VOLUME_RDONLY};
		struct mixsan_volume_parent par;

		if (mixsan_volume_open(v->p, v->name, &ro, &vol) == 0) {
			if (mixsan_volume_parent(vol, &par) == 0 && par.pool >= 0)
				printf("  parent:      pool %" PRId64 " volume id %s snapshot %" PRIu64
				       " (overlap %" PRIu64 " bytes)\n",
				       par.pool, par.volume_id, par.snap_id, par.overlap);
			mixsan_volume_close(vol);
		}
	}
	if (i.lock_owner[0])
		printf("  writer:      %s (lease to %" PRIu64 ")\n", i.lock_owner,
		       i.lock_expires_ms);
	else
		printf("  writer:      none\n");
	return 0;
}

struct du_ctx {
	mixsan_pool_t *p;
	json_t *arr;
	uint64_t prov, used;
	int err;
};

static int du_cb(void *arg, const char *name)
{
	struct du_ctx *d = arg;
	struct mixsan_volume_options o = {.flags = MIXSAN_VOLUME_RDONLY};
	struct mixsan_volume_info i;
	mixsan_volume_t *vol;
	char a[32], b[32];
	int r = mixsan_volume_open(d->p, name, &o, &vol);

	if (r == 0) {
		r = mixsan_volume_info(vol, &i);
		mixsan_volume_close(vol);
	}
	if (r < 0) {
		d->err = r;
		fprintf(stderr, "mixsan: %s: %s\n", name, vol_err(r));
		return 0;
	}
	d->prov += i.size;
	d->used += used_bytes(&i);
	if (d->arr) {
		json_array_append_new(d->arr, json_pack("{s:s, s:I, s:I, s:I}", "name", name,
							"provisioned", (json_int_t)i.size,
							"used", (json_int_t)used_bytes(&i),
							"objects_used",
							(json_int_t)i.objects_used));
	} else {
		human_bytes((double)i.size, a, sizeof(a));
		human_bytes((double)used_bytes(&i), b, sizeof(b));
		printf("%-32s %12s %12s\n", name, a, b);
	}
	return 0;
}

static int do_du(struct cli *c, struct vctx *v)
{
	struct du_ctx d = {.p = v->p, .arr = c->json ? json_array() : NULL};
	char a[32], b[32];
	int r;

	if (!d.arr)
		printf("%-32s %12s %12s\n", "NAME", "PROVISIONED", "USED");
	if (v->name)
		r = du_cb(&d, v->name);
	else
		r = mixsan_volume_list(v->p, du_cb, &d);
	if (r < 0)
		return cli_fail("listing volumes: %s", cli_errstr(r));
	if (d.arr) {
		char *s = json_dumps(d.arr, JSON_INDENT(2));

		puts(s ? s : "[]");
		free(s);
		json_decref(d.arr);
	} else if (!v->name) {
		human_bytes((double)d.prov, a, sizeof(a));
		human_bytes((double)d.used, b, sizeof(b));
		printf("%-32s %12s %12s\n", "<TOTAL>", a, b);
	}
	return d.err ? 1 : 0;
}

static bool all_zero(const uint8_t *b, size_t n)
{
	return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

/* Read up to n bytes (short only at end of input). */
static ssize_t read_full(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

struct slot {
	mixsan_completion_t *c;
	uint8_t *buf;
	uint64_t off;
	size_t len;
};

static int slot_wait(struct slot *s)
{
	int64_t r;

	if (!s->c)
		return 0;
	r = mixsan_completion_wait(s->c);
	mixsan_completion_release(s->c);
	s->c = NULL;
	return r < 0 ? (int)r : 0;
}

/* import FILE|- POOL/NAME: all-zero chunks are not written (holes stay
 * holes).  From a pipe the volume grows as data comes. */
static int do_import(struct cli *c, const char *src, struct vctx *v)
{
	struct progress pg = {.on = isatty(2), .what = "importing"};
	struct slot slots[QUEUE] = {0};
	uint64_t size = 0, off = 0, chunk, cap;
	unsigned order = 0;
	mixsan_volume_t *vol;
	struct stat st;
	int fd = 0, r, ret = 0;
	bool piped;

	if (cli_opt(c, "object-size")) {
		uint64_t os;

		if (parse_size(cli_opt(c, "object-size"), &os) < 0 || !(order = order_of(os)))
			return cli_fail("--object-size must be a power of two");
	}
	if (strcmp(src, "-") != 0)
		fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cli_fail("cannot open %s: %s", src, strerror(errno));
	if (fstat(fd, &st) < 0)
		return cli_fail("cannot stat %s: %s", src, strerror(errno));
	piped = !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode);
	if (S_ISBLK(st.st_mode)) {
		off_t e = lseek(fd, 0, SEEK_END);

		if (e < 0 || lseek(fd, 0, SEEK_SET) < 0)
			return cli_fail("cannot size %s: %s", src, strerror(errno));
		size = (uint64_t)e;
	} else if (!piped) {
		size = (uint64_t)st.st_size;
	}
	r = mixsan_volume_create(v->p, v->name, size, order);
	if (r < 0)
		return cli_fail("%s/%s: %s", v->pool, v->name, vol_err(r));
	r = mixsan_volume_open(v->p, v->name, NULL, &vol);
	if (r < 0)
		return cli_fail("%s/%s: %s", v->pool, v->name, vol_err(r));
	{
		struct mixsan_volume_info i;

		(void)mixsan_volume_info(vol, &i);
		chunk = i.object_size < (4u << 20) ? 4u << 20 : i.object_size;
	}
	pg.total = size;
	cap = size;
	for (unsigned k = 0; k < QUEUE; k++) {
		slots[k].buf = malloc(chunk);
		if (!slots[k].buf) {
			ret = cli_fail("out of memory");
			goto out;
		}
	}
	for (unsigned k = 0;; k = (k + 1) % QUEUE) {
		struct slot *s = &slots[k];
		ssize_t n;

		r = slot_wait(s);
		if (r < 0) {
			ret = cli_fail("writing %s/%s at %" PRIu64 ": %s", v->pool, v->name,
				       s->off, vol_err(r));
			goto out;
		}
		n = read_full(fd, s->buf, chunk);
		if (n < 0) {
			ret = cli_fail("reading %s: %s", src, strerror((int)-n));
			goto out;
		}
		if (n == 0)
			break;
		if (piped && off + (uint64_t)n > cap) {
			/* Grow ahead in steps, to the exact end at the end. */
			for (unsigned j = 0; j < QUEUE; j++)
				(void)slot_wait(&slots[j]);
			cap = off + (uint64_t)n + (1ull << 30);
			r = mixsan_volume_resize(vol, cap);
			if (r < 0) {
				ret = cli_fail("resizing %s/%s: %s", v->pool, v->name, vol_err(r));
				goto out;
			}
		}
		if (!all_zero(s->buf, (size_t)n)) {
			s->off = off;
			s->len = (size_t)n;
			r = mixsan_completion_create(NULL, NULL, &s->c);
			if (r == 0)
				r = mixsan_volume_aio_write(vol, s->c, s->buf, s->len, off);
			if (r < 0) {
				mixsan_completion_release(s->c);
				s->c = NULL;
				ret = cli_fail("writing %s/%s: %s", v->pool, v->name, vol_err(r));
				goto out;
			}
		}
		off += (uint64_t)n;
		progress_show(&pg, off, false);
	}
	for (unsigned k = 0; k < QUEUE; k++) {
		r = slot_wait(&slots[k]);
		if (r < 0 && !ret)
			ret = cli_fail("writing %s/%s: %s", v->pool, v->name, vol_err(r));
	}
	if (!ret && piped) {
		r = mixsan_volume_resize(vol, off);
		if (r < 0)
			ret = cli_fail("resizing %s/%s: %s", v->pool, v->name, vol_err(r));
	}
	pg.total = off;
	progress_show(&pg, off, true);
out:
	for (unsigned k = 0; k < QUEUE; k++) {
		(void)slot_wait(&slots[k]);
		free(slots[k].buf);
	}
	r = mixsan_volume_close(vol);
	if (r < 0 && !ret)
		ret = cli_fail("closing %s/%s: %s", v->pool, v->name, vol_err(r));
	if (fd > 0)
		close(fd);
	return ret;
}

struct hole_ctx {
	uint64_t *starts, *lens;
	size_t n, cap;
};

static int data_cb(void *arg, uint64_t off, uint64_t len, int data)
{
	struct hole_ctx *h = arg;

	if (!data)
		return 0;
	if (h->n == h->cap) {
		size_t nc = h->cap ? 2 * h->cap : 64;
		uint64_t *a = realloc(h->starts, nc * sizeof(*a));
		uint64_t *b = a ? realloc(h->lens, nc * sizeof(*b)) : NULL;

		if (a)
			h->starts = a;
		if (!a || !b)
			return -ENOMEM;
		h->lens = b;
		h->cap = nc;
	}
	h->starts[h->n] = off;
	h->lens[h->n++] = len;
	return 0;
}

static int write_all(int fd, const uint8_t *buf, size_t n, bool seekable, uint64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t w = seekable ? pwrite(fd, buf + done, n - done, (off_t)(off + done))
				     : write(fd, buf + done, n - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		done += (size_t)w;
	}
	return 0;
}

/* export POOL/NAME FILE|-: to a file, holes are left unwritten (sparse);
 * to a pipe they are written as zeroes. */
/* Split "NAME@SNAP" in place: the snapshot's name or NULL. */
static char *split_snap(char *name)
{
	char *at = strchr(name, '@');

	if (!at)
		return NULL;
	*at = '\0';
	return at + 1;
}

static int snap_print_cb(void *arg, const struct mixsan_snap_info *si)
{
	json_t *arr = arg;
	char sz[32];

	if (arr) {
		json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:I, s:b, s:i}", "name",
						     si->name, "id", (json_int_t)si->id, "size",
						     (json_int_t)si->size, "time_ms",
						     (json_int_t)si->time_ms, "protected",
						     si->protected_, "children",
						     (int)si->children));
		return 0;
	}
	human_bytes((double)si->size, sz, sizeof(sz));
	printf("%-6" PRIu64 " %-24s %12s %-9s %u\n", si->id, si->name, sz,
	       si->protected_ ? "yes" : "no", si->children);
	return 0;
}

/* volume snap create|ls|rm|rollback|protect|unprotect POOL/NAME[@SNAP] */
static int do_snap(struct cli *c, struct vctx *v, const char *action)
{
	char *snap = split_snap(v->name);
	mixsan_volume_t *vol;
	bool ls = !strcmp(action, "ls");
	struct mixsan_volume_options o = {.flags = ls ? MIXSAN_VOLUME_RDONLY : 0};
	int r, ret = 0;

	if (!ls && !snap)
		return cli_fail("usage: volume snap %s POOL/NAME@SNAP", action);
	r = mixsan_volume_open(v->p, v->name, &o, &vol);
	if (r < 0)
		return cli_fail("%s/%s: %s", v->pool, v->name, vol_err(r));
	if (ls) {
		json_t *arr = c->json ? json_array() : NULL;

		if (!arr)
			printf("%-6s %-24s %12s %-9s %s\n", "ID", "NAME", "SIZE", "PROTECTED",
			       "CLONES");
		r = mixsan_volume_snap_list(vol, snap_print_cb, arr);
		if (arr) {
			char *s = json_dumps(arr, JSON_INDENT(2));

			if (r == 0)
				puts(s ? s : "[]");
			free(s);
			json_decref(arr);
		}
	} else if (!strcmp(action, "create")) {
		r = mixsan_volume_snap_create(vol, snap);
	} else if (!strcmp(action, "rm")) {
		r = mixsan_volume_snap_remove(vol, snap);
		if (r == -EBUSY)
			ret = cli_fail("%s/%s@%s is protected (snap unprotect first)", v->pool,
				       v->name, snap);
	} else if (!strcmp(action, "rollback")) {
		r = mixsan_volume_snap_rollback(vol, snap);
	} else if (!strcmp(action, "protect") || !strcmp(action, "unprotect")) {
		r = mixsan_volume_snap_protect(vol, snap, action[0] == 'p');
		if (r == -EBUSY)
			ret = cli_fail("%s/%s@%s has clones (flatten or remove them first)",
				       v->pool, v->name, snap);
	} else {
		r = 0;
		ret = cli_fail("unknown snap command '%s' (create, ls, rm, rollback, protect, "
			       "unprotect)",
			       action);
	}
	if (r < 0 && !ret)
		ret = cli_fail("%s/%s%s%s: %s", v->pool, v->name, snap ? "@" : "", snap ? snap : "",
			       vol_err(r));
	r = mixsan_volume_close(vol);
	if (r < 0 && !ret)
		ret = cli_fail("%s/%s: %s", v->pool, v->name, vol_err(r));
	return ret;
}

static int do_export(struct cli *c, struct vctx *v, const char *dst)
{
	struct progress pg = {.on = isatty(2), .what = "exporting"};
	struct mixsan_volume_options o = {.flags = MIXSAN_VOLUME_RDONLY,
					  .snapshot = split_snap(v->name)};
	struct hole_ctx h = {0};
	struct slot slots[QUEUE] = {0};
	uint64_t size, pos = 0, chunk = 4u << 20;
	mixsan_volume_t *vol;
	struct stat st;
	int fd = 1, r, ret = 0;
	bool seekable;
	unsigned k = 0;
	uint8_t *zero = NULL;

	r = mixsan_volume_open(v->p, v->name, &o, &vol);
	if (r < 0)
		return cli_fail("%s/%s: %s", v->pool, v->name, vol_err(r));
	size = mixsan_volume_size(vol);
	r = mixsan_volume_extents(vol, 0, size, data_cb, &h);
	if (r < 0) {
		ret = cli_fail("%s/%s: %s", v->pool, v->name, vol_err(r));
		goto out;
	}
	if (strcmp(dst, "-") != 0)
		fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = cli_fail("cannot create %s: %s", dst, strerror(errno));
		goto out;
	}
	seekable = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	if (seekable && ftruncate(fd, (off_t)size) < 0) {
		ret = cli_fail("cannot size %s: %s", dst, strerror(errno));
		goto out;
	}
	pg.total = size;
	zero = calloc(1, chunk);
	for (unsigned j = 0; j < QUEUE; j++)
		slots[j].buf = malloc(chunk);
	if (!zero || !slots[QUEUE - 1].buf) {
		ret = cli_fail("out of memory");
		goto out;
	}
	/* Reads go out QUEUE at a time; results are written in order. */
	for (size_t e = 0, pending = 0; e < h.n || pending;) {
		struct slot *s = &slots[k];

		if (s->c) {
			pending--;
			r = slot_wait(s);
			if (r < 0) {
				ret = cli_fail("reading %s/%s at %" PRIu64 ": %s", v->pool,
					       v->name, s->off, vol_err(r));
				goto out;
			}
			if (!seekable) /* zeroes for the hole before it */
				for (; pos < s->off; pos += MX_MIN(chunk, s->off - pos))
					if (write_all(fd, zero, MX_MIN(chunk, s->off - pos), false,
						      0) < 0)
						break;
			r = write_all(fd, s->buf, s->len, seekable, s->off);
			if (r < 0) {
				ret = cli_fail("writing %s: %s", dst, cli_errstr(r));
				goto out;
			}
			pos = s->off + s->len;
			progress_show(&pg, pos, false);
		}
		if (e < h.n) {
			s->off = h.starts[e];
			s->len = (size_t)MX_MIN(chunk, h.lens[e]);
			h.starts[e] += s->len;
			h.lens[e] -= s->len;
			if (!h.lens[e])
				e++;
			r = mixsan_completion_create(NULL, NULL, &s->c);
			if (r == 0)
				r = (int)mixsan_volume_aio_read(vol, s->c, s->buf, s->len, s->off);
			if (r < 0) {
				mixsan_completion_release(s->c);
				s->c = NULL;
				ret = cli_fail("reading %s/%s: %s", v->pool, v->name, vol_err(r));
				goto out;
			}
			pending++;
		}
		k = (k + 1) % QUEUE;
	}
	if (!seekable)
		for (; pos < size; pos += MX_MIN(chunk, size - pos))
			if (write_all(fd, zero, MX_MIN(chunk, size - pos), false, 0) < 0) {
				ret = cli_fail("writing %s: %s", dst, strerror(errno));
				goto out;
			}
	progress_show(&pg, size, true);
out:
	for (unsigned j = 0; j < QUEUE; j++) {
		(void)slot_wait(&slots[j]);
		free(slots[j].buf);
	}
	free(zero);
	free(h.starts);
	free(h.lens);
	if (fd > 1 && close(fd) < 0 && !ret)
		ret = cli_fail("writing %s: %s", dst, strerror(errno));
	mixsan_volume_close(vol);
	return ret;
}

int cmd_volume(struct cli *c, const char *sub)
{
	struct vctx v;
	int r, ret = 0;

	if (!strcmp(sub, "import")) {
		if (c->argc != 2)
			return cli_fail("usage: volume import FILE|- POOL/NAME [--object-size S]");
		if ((r = vctx_open(c, c->argv[1], true, &v)) != 0)
			return r;
		ret = do_import(c, c->argv[0], &v);
		vctx_close(&v);
		return ret;
	}
	if (!strcmp(sub, "snap")) {
		if (c->argc != 2)
			return cli_fail("usage: volume snap create|ls|rm|rollback|protect|unprotect "
					"POOL/NAME[@SNAP]");
		if ((r = vctx_open(c, c->argv[1], true, &v)) != 0)
			return r;
		ret = do_snap(c, &v, c->argv[0]);
		vctx_close(&v);
		return ret;
	}
	if (!strcmp(sub, "clone")) {
		struct vctx cv;
		char *snap;

		if (c->argc != 2)
			return cli_fail("usage: volume clone POOL/NAME@SNAP POOL/CLONE");
		if ((r = vctx_open(c, c->argv[0], true, &v)) != 0)
			return r;
		snap = split_snap(v.name);
		if (!snap) {
			vctx_close(&v);
			return cli_fail("usage: volume clone POOL/NAME@SNAP POOL/CLONE");
		}
		if ((r = vctx_open(c, c->argv[1], true, &cv)) != 0) {
			vctx_close(&v);
			return r;
		}
		r = mixsan_volume_clone(v.p, v.name, snap, cv.p, cv.name);
		if (r < 0)
			ret = cli_fail("cloning %s/%s@%s: %s", v.pool, v.name, snap, vol_err(r));
		vctx_close(&cv);
		vctx_close(&v);
		return ret;
	}
	if (!strcmp(sub, "ls") || !strcmp(sub, "du")) {
		if (c->argc != 1)
			return cli_fail("usage: volume %s POOL%s", sub, sub[0] == 'd' ? "[/NAME]" : "");
		if ((r = vctx_open(c, c->argv[0], false, &v)) != 0)
			return r;
		if (sub[0] == 'd') {
			ret = do_du(c, &v);
		} else {
			json_t *arr = c->json ? json_array() : NULL;

			r = mixsan_volume_list(v.p, print_name_cb, arr);
			if (r < 0)
				ret = cli_fail("listing volumes of %s: %s", v.pool, cli_errstr(r));
			if (arr) {
				char *s = json_dumps(arr, JSON_INDENT(2));

				if (!ret)
					puts(s ? s : "[]");
				free(s);
				json_decref(arr);
			}
		}
		vctx_close(&v);
		return ret;
	}
	if (c->argc < 1)
		return cli_fail("usage: volume %s POOL/NAME ...", sub);
	if ((r = vctx_open(c, c->argv[0], true, &v)) != 0)
		return r;
	if (!strcmp(sub, "create")) {
		uint64_t size, os = 0;

		if (parse_size(cli_opt(c, "size"), &size) < 0)
			ret = cli_fail("usage: volume create POOL/NAME --size SIZE "
				       "[--object-size S]");
		else if (cli_opt(c, "object-size") &&
			 (parse_size(cli_opt(c, "object-size"), &os) < 0 || !order_of(os)))
			ret = cli_fail("--object-size must be a power of two");
		else if ((r = mixsan_volume_create(v.p, v.name, size, os ? order_of(os) : 0)) < 0)
			ret = cli_fail("%s/%s: %s", v.pool, v.name,
				       r == -EINVAL ? "bad name, size or object size"
						    : vol_err(r));
	} else if (!strcmp(sub, "info")) {
		ret = do_info(c, &v);
	} else if (!strcmp(sub, "resize")) {
		mixsan_volume_t *vol;
		uint64_t size;

		if (parse_size(cli_opt(c, "size"), &size) < 0) {
			ret = cli_fail("usage: volume resize POOL/NAME --size SIZE");
		} else if ((r = mixsan_volume_open(v.p, v.name, NULL, &vol)) < 0) {
			ret = cli_fail("%s/%s: %s", v.pool, v.name, vol_err(r));
		} else {
			if (size < mixsan_volume_size(vol) && !c->yes)
				ret = cli_fail("shrinking drops the data past the new end: add "
					       "--yes-i-really-mean-it");
			else if ((r = mixsan_volume_resize(vol, size)) < 0)
				ret = cli_fail("resizing %s/%s: %s", v.pool, v.name, vol_err(r));
			r = mixsan_volume_close(vol);
			if (r < 0 && !ret)
				ret = cli_fail("%s/%s: %s", v.pool, v.name, vol_err(r));
		}
	} else if (!strcmp(sub, "rm")) {
		r = mixsan_volume_remove(v.p, v.name);
		if (r < 0)
			ret = cli_fail("removing %s/%s: %s", v.pool, v.name, vol_err(r));
	} else if (!strcmp(sub, "flatten")) {
		mixsan_volume_t *vol;

		if ((r = mixsan_volume_open(v.p, v.name, NULL, &vol)) < 0) {
			ret = cli_fail("%s/%s: %s", v.pool, v.name, vol_err(r));
		} else {
			r = mixsan_volume_flatten(vol);
			if (r == -EINVAL)
				ret = cli_fail("%s/%s is not a clone", v.pool, v.name);
			else if (r < 0)
				ret = cli_fail("flattening %s/%s: %s", v.pool, v.name, vol_err(r));
			r = mixsan_volume_close(vol);
			if (r < 0 && !ret)
				ret = cli_fail("%s/%s: %s", v.pool, v.name, vol_err(r));
		}
	} else if (!strcmp(sub, "locate")) {
		ret = do_locate(c, &v);
	} else if (!strcmp(sub, "export")) {
		if (c->argc != 2)
			ret = cli_fail("usage: volume export POOL/NAME FILE|-");
		else
			ret = do_export(c, &v, c->argv[1]);
	} else {
		ret = cli_fail("unknown volume command '%s' (create, ls, info, locate, resize, rm, "
			       "du, import, export, snap, clone, flatten)",
			       sub);
	}
	vctx_close(&v);
	return ret;
}

/*
 * fio-mixsan: a fio I/O engine for MixSAN volumes, through libmixsan with
 * no block export in between (docs/fio-engine.md).
 *
 *   fio --ioengine=external:/path/fio-mixsan.so --mon=127.0.0.1:6789 \
 *       --pool=rbd --volume=disk [--keyfile=F] [--cache=writeback] ...
 *
 * Built against the sources of the fio that loads it (fio has no public
 * headers; scripts/fio-source.sh fetches Debian's).  The volume is the job's
 * only "file", of the volume's size.  Reads, writes, trims (discard) and
 * syncs (flush) are libmixsan's asynchronous calls; their callbacks, on the
 * library's thread, put the finished io_u on a list that getevents reaps.
 * A job that never writes opens the volume without the writer's lock, so
 * any number of readers run beside one writer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fio.h"
#include "optgroup.h"

#include "mixsan/mixsan.h"

struct mxf_options {
	void *pad; /* fio reads an offset of 0 as "no field" */
	char *mon;
	char *keyfile;
	char *pool;
	char *volume;
	char *cache;
};

static struct fio_option options[] = {
	{
		.name = "mon",
		.lname = "MixSAN monitors",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct mxf_options, mon),
		.help = "Monitors, ip:port[,ip:port...] (default $MIXSAN_MON, else 127.0.0.1:6789)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "keyfile",
		.lname = "MixSAN key file",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct mxf_options, keyfile),
		.help = "Key file of the entity to act as (default $MIXSAN_KEYFILE, else none)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "pool",
		.lname = "MixSAN pool",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct mxf_options, pool),
		.help = "Pool of the volume",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "volume",
		.lname = "MixSAN volume",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct mxf_options, volume),
		.help = "Volume to run the job on",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "cache",
		.lname = "MixSAN cache mode",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct mxf_options, cache),
		.help = "writethrough (default), writeback or none (docs/cache-modes.md)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = NULL,
	},
};

/* One job's connection and the io_us its callbacks finished. */
struct mxf {
	mixsan_cluster_t *cl;
	mixsan_pool_t *pool;
	mixsan_volume_t *vol;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct io_u **done;   /* finished, not yet reaped (under lock) */
	unsigned n_done;
	struct io_u **events; /* reaped by the last getevents */
	unsigned cap;         /* iodepth: no more are ever in flight */
};

static int mxf_cache_mode(const char *s)
{
	if (!s || !strcmp(s, "writethrough"))
		return MIXSAN_CACHE_WRITETHROUGH;
	if (!strcmp(s, "writeback"))
		return MIXSAN_CACHE_WRITEBACK;
	if (!strcmp(s, "none"))
		return MIXSAN_CACHE_NONE;
	return -1;
}

static void mxf_disconnect(struct mxf *m)
{
	int r;

	if (m->vol) {
		r = mixsan_volume_close(m->vol);
		if (r < 0)
			log_err("fio-mixsan: closing the volume: %s\n", strerror(-r));
		m->vol = NULL;
	}
	mixsan_pool_close(m->pool);
	m->pool = NULL;
	mixsan_shutdown(m->cl);
	m->cl = NULL;
}

/* Connect and open the volume; readonly: without the writer's lock. */
static int mxf_connect(struct thread_data *td, struct mxf *m, bool readonly)
{
	struct mxf_options *o = td->eo;
	struct mixsan_options copts = { 0 };
	struct mixsan_volume_options vopts = { 0 };
	const char *mon = o->mon;
	int r;

	if (!o->pool || !o->volume) {
		log_err("fio-mixsan: pool= and volume= are required\n");
		return -EINVAL;
	}
	vopts.cache_mode = mxf_cache_mode(o->cache);
	if (vopts.cache_mode < 0) {
		log_err("fio-mixsan: cache=%s: not writethrough, writeback or none\n", o->cache);
		return -EINVAL;
	}
	if (!mon)
		mon = getenv("MIXSAN_MON");
	if (!mon)
		mon = "127.0.0.1:6789";
	copts.keyfile = o->keyfile ? o->keyfile : getenv("MIXSAN_KEYFILE");
	r = mixsan_connect(mon, &copts, &m->cl);
	if (r < 0) {
		const char *why = mixsan_connect_error();

		log_err("fio-mixsan: connecting to %s: %s\n", mon, *why ? why : strerror(-r));
		return r;
	}
	r = mixsan_pool_open(m->cl, o->pool, &m->pool);
	if (r < 0) {
		log_err("fio-mixsan: pool %s: %s\n", o->pool, strerror(-r));
		goto fail;
	}
	if (readonly)
		vopts.flags |= MIXSAN_VOLUME_RDONLY;
	r = mixsan_volume_open(m->pool, o->volume, &vopts, &m->vol);
	if (r < 0) {
		log_err("fio-mixsan: volume %s/%s: %s\n", o->pool, o->volume, strerror(-r));
		goto fail;
	}
	return 0;
fail:
	mxf_disconnect(m);
	return r;
}

/*
 * Before the job starts: the volume's size becomes the file's.  libmixsan's
 * threads do not survive a fork, so the job runs as a thread, and this
 * connection, made wherever fio calls setup, is closed again; init opens
 * the job's own.
 */
static int mxf_setup(struct thread_data *td)
{
	struct mxf m = { 0 };
	struct fio_file *f;
	uint64_t size;
	int r;

	td->o.use_thread = 1;
	r = mxf_connect(td, &m, true);
	if (r < 0)
		return 1;
	size = mixsan_volume_size(m.vol);
	mxf_disconnect(&m);
	if (size == 0) {
		log_err("fio-mixsan: the volume is empty\n");
		return 1;
	}
	if (!td->files_index) {
		add_file(td, td->o.filename ? td->o.filename : "mixsan", 0, 0);
		td->o.nr_files = td->o.nr_files ? td->o.nr_files : 1;
		td->o.open_files++;
	}
	f = td->files[0];
	f->real_file_size = size;
	return 0;
}

static void mxf_cleanup(struct thread_data *td)
{
	struct mxf *m = td->io_ops_data;

	if (!m)
		return;
	mxf_disconnect(m);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m->done);
	free(m->events);
	free(m);
	td->io_ops_data = NULL;
}

static int mxf_init(struct thread_data *td)
{
	struct mxf *m;
	/* Writes, trims and the syncs of a job that writes need the lock. */
	bool readonly = !td_write(td) && !td_trim(td);
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return 1;
	pthread_mutex_init(&m->lock, NULL);
	{
		/* getevents' timeouts by the monotonic clock: a wall clock
		 * stepped meanwhile neither cuts nor stretches them. */
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&m->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	td->io_ops_data = m;
	m->cap = td->o.iodepth ? td->o.iodepth : 1;
	m->done = calloc(m->cap, sizeof(*m->done));
	m->events = calloc(m->cap, sizeof(*m->events));
	if (!m->done || !m->events) {
		mxf_cleanup(td);
		return 1;
	}
	r = mxf_connect(td, m, readonly);
	if (r < 0) {
		mxf_cleanup(td);
		return 1;
	}
	return 0;
}

/* On the library's thread: the request's outcome into its io_u. */
static void mxf_done(mixsan_completion_t *c, void *arg)
{
	struct io_u *io_u = arg;
	struct mxf *m = io_u->engine_data;
	int64_t r = mixsan_completion_result(c);

	mixsan_completion_release(c);
	if (r < 0) {
		io_u->error = (unsigned)-r;
		io_u->resid = io_u->xfer_buflen;
	} else if (io_u->ddir == DDIR_READ && (uint64_t)r < io_u->xfer_buflen) {
		io_u->resid = io_u->xfer_buflen - (uint64_t)r;
	}
	pthread_mutex_lock(&m->lock);
	m->done[m->n_done++] = io_u;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static enum fio_q_status mxf_queue(struct thread_data *td, struct io_u *io_u)
{
	struct mxf *m = td->io_ops_data;
	mixsan_completion_t *c;
	int r;

	fio_ro_check(td, io_u);
	io_u->engine_data = m;
	io_u->error = 0;
	io_u->resid = 0;
	r = mixsan_completion_create(mxf_done, io_u, &c);
	if (r < 0)
		goto fail;
	switch (io_u->ddir) {
	case DDIR_READ:
		r = mixsan_volume_aio_read(m->vol, c, io_u->xfer_buf, io_u->xfer_buflen,
					   io_u->offset);
		break;
	case DDIR_WRITE:
		r = mixsan_volume_aio_write(m->vol, c, io_u->xfer_buf, io_u->xfer_buflen,
					    io_u->offset);
		break;
	case DDIR_TRIM:
		r = mixsan_volume_aio_discard(m->vol, c, io_u->xfer_buflen, io_u->offset);
		break;
	case DDIR_SYNC:
	case DDIR_DATASYNC:
	case DDIR_SYNC_FILE_RANGE:
		r = mixsan_volume_aio_flush(m->vol, c);
		break;
	default:
		r = -EINVAL;
		break;
	}
	if (r < 0) {
		mixsan_completion_release(c);
		goto fail;
	}
	return FIO_Q_QUEUED;
fail:
	io_u->error = (unsigned)-r;
	io_u->resid = io_u->xfer_buflen;
	td_verror(td, io_u->error, "mixsan request");
	return FIO_Q_COMPLETED;
}

static int mxf_getevents(struct thread_data *td, unsigned int min, unsigned int max,
			 const struct timespec *t)
{
	struct mxf *m = td->io_ops_data;
	struct timespec until;
	unsigned n;

	if (t) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += t->tv_sec;
		until.tv_nsec += t->tv_nsec;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&m->lock);
	while (m->n_done < min) {
		if (!t)
			pthread_cond_wait(&m->cond, &m->lock);
		else if (pthread_cond_timedwait(&m->cond, &m->lock, &until) == ETIMEDOUT)
			break;
	}
	n = m->n_done < max ? m->n_done : max;
	memcpy(m->events, m->done, n * sizeof(*m->done));
	memmove(m->done, m->done + n, (m->n_done - n) * sizeof(*m->done));
	m->n_done -= n;
	pthread_mutex_unlock(&m->lock);
	return (int)n;
}

static struct io_u *mxf_event(struct thread_data *td, int i)
{
	struct mxf *m = td->io_ops_data;

	return m->events[i];
}

static int mxf_open_file(struct thread_data *td, struct fio_file *f)
{
	return 0;
}

static int mxf_invalidate(struct thread_data *td, struct fio_file *f)
{
	return 0; /* no cache of volume data in the library to drop */
}

struct ioengine_ops ioengine = {
	.name = "mixsan",
	.version = FIO_IOOPS_VERSION,
	.flags = FIO_DISKLESSIO | FIO_NOEXTEND | FIO_NODISKUTIL,
	.setup = mxf_setup,
	.init = mxf_init,
	.queue = mxf_queue,
	.getevents = mxf_getevents,
	.event = mxf_event,
	.cleanup = mxf_cleanup,
	.open_file = mxf_open_file,
	.invalidate = mxf_invalidate,
	.options = options,
	.option_struct_size = sizeof(struct mxf_options),
};

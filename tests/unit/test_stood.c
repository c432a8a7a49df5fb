/*
 * Unit tests of the table of values seen in a client's way
 * (client/stood.c): a value's first sighting starts its clock, it has
 * stood once the timeout has passed, another value starts again, a
 * collision starts again, and a time from before the first sighting (a
 * clock read by a thread that lost the race for the lock) is "not yet".
 * The last part makes that race happen: four threads meet the same fresh
 * values at once, each reading its clock before it takes the lock, and
 * none may take a value for one that stood an hour.  mx_stood_forget, as
 * the OSD's tiering agent uses it, is checked too.
 */
#include <pthread.h>
#include <string.h>

#include "check.h"
#include "../../client/stood.h"
#include "util.h"

#define SEC 1000000000ull

static struct mx_stood tab;

static void test_clock(void)
{
	memset(&tab, 0, sizeof(tab));
	CHECK(!mx_stood(&tab, 11, 100 * SEC, 30 * SEC)); /* first sighting */
	CHECK(!mx_stood(&tab, 11, 129 * SEC, 30 * SEC));
	CHECK(mx_stood(&tab, 11, 130 * SEC, 30 * SEC));
	CHECK(mx_stood(&tab, 11, 500 * SEC, 30 * SEC));
	/* The value changed (a new key): the clock starts again. */
	CHECK(!mx_stood(&tab, 13, 501 * SEC, 30 * SEC));
	CHECK(!mx_stood(&tab, 13, 530 * SEC, 30 * SEC));
	CHECK(mx_stood(&tab, 13, 531 * SEC, 30 * SEC));
	/* A key in the same slot takes it over; the first starts again. */
	CHECK(!mx_stood(&tab, 13 + MX_STOOD_SLOTS, 600 * SEC, 30 * SEC));
	CHECK(!mx_stood(&tab, 13, 700 * SEC, 30 * SEC));
	CHECK(mx_stood(&tab, 13, 730 * SEC, 30 * SEC));
	/* Slots apart stay apart. */
	CHECK(!mx_stood(&tab, 17, 730 * SEC, 30 * SEC));
	CHECK(mx_stood(&tab, 13, 731 * SEC, 30 * SEC));
}

static void test_earlier_time(void)
{
	memset(&tab, 0, sizeof(tab));
	/* Thread B sees a fresh value at t = 1000 s + 5 us; thread A read
	 * its clock at 1000 s and takes the lock after B. */
	CHECK(!mx_stood(&tab, 21, 1000 * SEC + 5000, 150 * SEC));
	CHECK(!mx_stood(&tab, 21, 1000 * SEC, 150 * SEC));
	/* ... and the value's clock still runs from B's sighting. */
	CHECK(!mx_stood(&tab, 21, 1150 * SEC, 150 * SEC));
	CHECK(mx_stood(&tab, 21, 1150 * SEC + 5000, 150 * SEC));
}

/* mx_stood_forget: the key's next sighting starts again; a key that took
 * the slot over is left alone. */
static void test_forget(void)
{
	memset(&tab, 0, sizeof(tab));
	CHECK(!mx_stood(&tab, 31, 10 * SEC, 10 * SEC));
	CHECK(mx_stood(&tab, 31, 20 * SEC, 10 * SEC));
	mx_stood_forget(&tab, 31);
	CHECK(!mx_stood(&tab, 31, 21 * SEC, 10 * SEC));
	CHECK(!mx_stood(&tab, 31, 30 * SEC, 10 * SEC));
	CHECK(mx_stood(&tab, 31, 31 * SEC, 10 * SEC));
	/* Another key now holds the slot: forgetting 31 leaves it. */
	CHECK(!mx_stood(&tab, 31 + MX_STOOD_SLOTS, 40 * SEC, 10 * SEC));
	mx_stood_forget(&tab, 31);
	CHECK(mx_stood(&tab, 31 + MX_STOOD_SLOTS, 50 * SEC, 10 * SEC));
	/* Forgetting a key never seen is harmless. */
	mx_stood_forget(&tab, 33);
	CHECK(!mx_stood(&tab, 33, 60 * SEC, 10 * SEC));
}

#define THREADS 4
#define ROUNDS 20000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t barrier;
static int taken; /* fresh values taken for an hour old */
static int earlier; /* clocks read before a value's first sighting */
static uint64_t first[ROUNDS + 1];

static void *racer(void *arg)
{
	(void)arg;
	for (uint64_t i = 1; i <= ROUNDS; i++) {
		uint64_t now;
		bool r;

		if (i % 1000 == 0)
			pthread_barrier_wait(&barrier);
		now = mx_now_ns();
		pthread_mutex_lock(&lock);
		r = mx_stood(&tab, i * 2 + 1, now, 3600 * SEC);
		if (r)
			taken++;
		if (!first[i])
			first[i] = now;
		else if (now < first[i])
			earlier++;
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

static void test_threads(void)
{
	pthread_t t[THREADS];

	memset(&tab, 0, sizeof(tab));
	pthread_barrier_init(&barrier, NULL, THREADS);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, racer, NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&barrier);
	fprintf(stderr, "stood: %d of %d sightings read the clock before the first\n", earlier,
		THREADS * ROUNDS);
	CHECK_EQ_INT(taken, 0);
}

int main(void)
{
	test_clock();
	test_earlier_time();
	test_forget();
	test_threads();
	return mx_check_done("stood");
}

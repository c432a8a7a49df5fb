/*
 * rtt: the round trip of a small message over loopback TCP on this machine,
 * the floor under any replicated write (docs/performance.md, "Where the
 * time goes").  A server thread echoes 64-byte messages; the client sends
 * one, waits for its echo, N times, with TCP_NODELAY as our connections
 * use.  Prints the mean, median and minimum in microseconds.
 *
 *   rtt [N]      (N: 20000 by default)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG 64

static int full(int fd, void *buf, size_t len, int out)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = out ? write(fd, p, len) : read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void *echo(void *arg)
{
	int lfd = *(int *)arg, fd, one = 1;
	uint8_t buf[MSG];

	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (full(fd, buf, MSG, 0) == 0 && full(fd, buf, MSG, 1) == 0)
		;
	close(fd);
	return NULL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
	uint8_t buf[MSG] = {0};
	uint64_t *t, sum = 0;
	pthread_t th;
	int lfd, fd, one = 1;

	if (n < 1 || n > 10000000) {
		fprintf(stderr, "usage: rtt [N]\n");
		return 2;
	}
	t = calloc((size_t)n, sizeof(*t));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (!t || lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 1) < 0 || getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
		perror("rtt: listen");
		return 1;
	}
	if (pthread_create(&th, NULL, echo, &lfd) != 0)
		return 1;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("rtt: connect");
		return 1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (long i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		if (full(fd, buf, MSG, 1) < 0 || full(fd, buf, MSG, 0) < 0) {
			perror("rtt: echo");
			return 1;
		}
		t[i] = now_ns() - t0;
		sum += t[i];
	}
	close(fd);
	pthread_join(th, NULL);
	qsort(t, (size_t)n, sizeof(*t), cmp);
	printf("loopback TCP round trip of %d bytes, %ld times: mean %.1f us, median %.1f us, "
	       "min %.1f us\n", MSG, n, (double)sum / (double)n / 1000.0,
	       (double)t[n / 2] / 1000.0, (double)t[0] / 1000.0);
	free(t);
	return 0;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A third-party proxy that takes part in Redirect Console chains through the
 * SDK only (redirect/sio.h), the way a vendor would port a Windows WFP proxy:
 * accept, QUERY records and context on the accepted socket, SET the records on
 * the outbound socket before connect(), connect to the original destination,
 * relay. One process per connection, to stay short.
 *
 *   redirect-sdk-proxy LISTEN_PORT     (listens on 127.0.0.1:LISTEN_PORT)
 *
 * Prints "LISTENING <port>" once ready. The callout instance comes from
 * $REDIRECT_CALLOUT_INSTANCE like for any SDK user.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "redirect/sio.h"

static int query(int sock, uint32_t code, unsigned char *buf, size_t size, size_t *got)
{
	/* Real proxies probe for the size first: EINVAL tells how much is needed. */
	if (redirect_ioctl(sock, code, NULL, 0, NULL, 0, got, NULL, NULL) == 0 || errno != EINVAL || *got > size)
		return -1;
	return redirect_ioctl(sock, code, NULL, 0, buf, size, got, NULL, NULL);
}

/* poll() skips negative descriptors: a finished side is stored as -fd - 1. */
static int real_fd(int fd)
{
	return fd < 0 ? -fd - 1 : fd;
}

static void relay(int a, int b)
{
	struct pollfd p[2] = { { a, POLLIN, 0 }, { b, POLLIN, 0 } };
	char buf[16384];
	int open = 2;

	while (open > 0 && poll(p, 2, -1) > 0) {
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0) {
				shutdown(real_fd(p[1 - i].fd), SHUT_WR); /* half-close travels on */
				p[i].fd = -p[i].fd - 1;        /* stop polling this side */
				open--;
				continue;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = send(real_fd(p[1 - i].fd), buf + off, (size_t)(n - off), MSG_NOSIGNAL);
				if (w <= 0)
					return;
				off += w;
			}
		}
	}
}

static void serve(int client)
{
	unsigned char records[REDIRECT_RECORDS_SIZE(REDIRECT_MAX_HOPS)];
	unsigned char context[REDIRECT_CONTEXT_HEADER_SIZE + REDIRECT_CONTEXT_DATA_MAX];
	struct sockaddr_storage dest;
	size_t records_size = 0, context_size = 0, used = 0;
	socklen_t dest_len = 0;
	struct linger reset = { 1, 0 };
	int upstream;

	if (query(client, SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, records, sizeof(records), &records_size) ||
	    query(client, SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT, context, sizeof(context), &context_size) ||
	    redirect_context_destination(context, context_size, &dest, &dest_len)) {
		fprintf(stderr, "sdk-proxy: not a redirected connection: %s\n", strerror(errno));
		goto fail;
	}
	upstream = socket(dest.ss_family, SOCK_STREAM, IPPROTO_TCP);
	if (upstream < 0 ||
	    redirect_ioctl(upstream, SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS, records, records_size, NULL, 0, &used,
			   NULL, NULL) ||
	    connect(upstream, (struct sockaddr *)&dest, dest_len)) {
		fprintf(stderr, "sdk-proxy: upstream: %s\n", strerror(errno));
		goto fail;
	}
	relay(client, upstream);
	close(upstream);
	close(client);
	return;
fail:
	/* A dead upstream resets the client at once. */
	setsockopt(client, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
	close(client);
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, fd;

	if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
		fprintf(stderr, "usage: redirect-sdk-proxy LISTEN_PORT\n");
		return 2;
	}
	addr.sin_port = htons((uint16_t)atoi(argv[1]));
	signal(SIGCHLD, SIG_IGN); /* children reap themselves */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(fd, 128)) {
		fprintf(stderr, "sdk-proxy: listen: %s\n", strerror(errno));
		return 1;
	}
	printf("LISTENING %s\n", argv[1]);
	fflush(stdout);
	for (;;) {
		int client = accept(fd, NULL, NULL);

		if (client < 0)
			continue;
		if (fork() == 0) {
			close(fd);
			serve(client);
			_exit(0);
		}
		close(client);
	}
}

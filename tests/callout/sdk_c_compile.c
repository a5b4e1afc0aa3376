/*
 * redirect/sio.h is a C header: this plain C11 program includes it first
 * (nothing else may supply what it needs), calls every SDK function once and
 * links against libredirect_sio. It runs without a callout: redirect_ioctl()
 * must then fail with EOPNOTSUPP, whatever the request.
 *
 * Exit status 0 on success; 1 with one line per failed check on stderr.
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <redirect/sio.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: check failed: %s (errno %d: %s)\n", __FILE__, \
				__LINE__, #cond, errno, strerror(errno));                  \
			failures++;                                                        \
		}                                                                          \
	} while (0)

static int completions;
static int completion_error;

static void on_complete(int error, size_t bytes, struct redirect_overlapped *overlapped, unsigned int flags)
{
	(void)bytes;
	(void)overlapped;
	(void)flags;
	completions++;
	completion_error = error;
}

static void put16(unsigned char *p, uint16_t v) { memcpy(p, &v, sizeof(v)); }
static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, sizeof(v)); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, sizeof(v)); }

int main(void)
{
	unsigned char records[REDIRECT_RECORDS_SIZE(1)] = {0};
	unsigned char context[REDIRECT_CONTEXT_HEADER_SIZE] = {0};
	unsigned char out[256];
	char instance[64], comm[16];
	struct redirect_records_info info;
	struct redirect_overlapped overlapped = {NULL, -1, 0};
	struct sockaddr_storage destination;
	socklen_t length = 0;
	size_t bytes = 12345;
	pid_t pid = 0;
	uid_t uid = 0;
	uint16_t port = htons(8080);
	uint32_t addr = htonl(0x7f000001);
	int sock;

	/* A name no callout ever used, so a callout loaded on this machine cannot answer. */
	snprintf(instance, sizeof(instance), "never-loaded-c-%ld", (long)getpid());
	if (setenv("REDIRECT_CALLOUT_INSTANCE", instance, 1) != 0) {
		perror("setenv");
		return 1;
	}

	/* One hop of redirector 7, flow 99. */
	put32(records, REDIRECT_RECORDS_MAGIC);
	put16(records + 4, REDIRECT_RECORDS_VERSION);
	put16(records + 6, 1);
	put64(records + 8, 99);
	put32(records + 16, 7);
	records[20] = REDIRECT_STATE_NOT_REDIRECTED;

	/* Context of 127.0.0.1:8080 by pid 42 uid 1000 "curl". */
	put32(context, REDIRECT_CONTEXT_MAGIC);
	put16(context + 4, REDIRECT_CONTEXT_VERSION);
	put16(context + 6, REDIRECT_CONTEXT_HEADER_SIZE);
	put16(context + 8, AF_INET);
	memcpy(context + 10, &port, 2);
	memcpy(context + 16, &addr, 4);
	put32(context + 32, 42);
	put32(context + 36, 1000);
	memcpy(context + 40, "curl", 5);

	sock = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(sock >= 0);
	/* -1: find the pinned map of the instance, the default for any process but the engine. */
	CHECK(redirect_sio_use_map(-1) == 0);
	CHECK(redirect_sio_use_udp_map(-1) == 0);

	errno = 0;
	CHECK(redirect_ioctl(sock, SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS, records, sizeof(records), NULL, 0, &bytes,
			     NULL, NULL) == -1);
	CHECK(errno == EOPNOTSUPP);
	CHECK(bytes == 0);
	bytes = 12345;
	errno = 0;
	CHECK(redirect_ioctl(sock, SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT, NULL, 0, out, sizeof(out), &bytes, NULL,
			     NULL) == -1);
	CHECK(errno == EOPNOTSUPP);
	CHECK(bytes == 0);
	CHECK(redirect_ioctl(sock, SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, NULL, 0, out, sizeof(out), NULL,
			     &overlapped, on_complete) == 0);
	CHECK(completions == 1 && completion_error == EOPNOTSUPP && overlapped.error == EOPNOTSUPP);

	CHECK(redirect_records_decode(records, sizeof(records), &info) == 0);
	CHECK(info.flow_id == 99 && info.hop_count == 1 && info.hops[0].redirector_id == 7);
	CHECK(redirect_context_destination(context, sizeof(context), &destination, &length) == 0);
	CHECK(length == sizeof(struct sockaddr_in) && destination.ss_family == AF_INET &&
	      ((struct sockaddr_in *)&destination)->sin_port == port &&
	      ((struct sockaddr_in *)&destination)->sin_addr.s_addr == addr);
	CHECK(redirect_context_pid(context, sizeof(context), &pid) == 0 && pid == 42);
	CHECK(redirect_context_uid(context, sizeof(context), &uid) == 0 && uid == 1000);
	CHECK(redirect_context_comm(context, sizeof(context), comm, sizeof(comm)) == 0 && strcmp(comm, "curl") == 0);
	CHECK(strcmp(redirect_state_name(REDIRECT_STATE_REDIRECTED_BY_OTHER), "REDIRECTED_BY_OTHER") == 0);

	if (sock >= 0)
		close(sock);
	if (failures) {
		fprintf(stderr, "tst_sdk_c: %d check(s) failed\n", failures);
		return 1;
	}
	printf("tst_sdk_c: all checks passed\n");
	return 0;
}

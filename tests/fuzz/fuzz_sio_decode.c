// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer harness: the SDK's blob decoders (redirect/sio.h) as a proxy calls them on whatever
 * QUERY returned: redirect_records_decode() and the redirect_context_*() helpers, through the
 * shared library. Each result is checked against the byte layout documented in sio.h, read
 * independently here, and the context helpers must agree on which blobs are valid.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redirect/sio.h"

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "fuzz_sio_decode: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                     \
		}                                                                    \
	} while (0)

static uint16_t le16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t le64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static void check_records(const uint8_t *data, size_t size)
{
	struct redirect_records_info info;

	errno = 0;
	if (redirect_records_decode(data, size, &info) != 0) {
		CHECK(errno == EINVAL);
		return;
	}
	CHECK(info.hop_count >= 1 && info.hop_count <= REDIRECT_MAX_HOPS);
	CHECK(size == REDIRECT_RECORDS_SIZE(info.hop_count));
	CHECK(le32(data) == REDIRECT_RECORDS_MAGIC && le16(data + 4) == REDIRECT_RECORDS_VERSION);
	CHECK(le16(data + 6) == info.hop_count);
	CHECK(info.flow_id != 0 && info.flow_id == le64(data + 8));
	for (unsigned i = 0; i < info.hop_count; i++) {
		const uint8_t *h = data + 16 + 8 * i;

		CHECK(info.hops[i].redirector_id != 0 && info.hops[i].redirector_id == le32(h));
		CHECK(info.hops[i].state <= REDIRECT_STATE_PREVIOUSLY_REDIRECTED_BY_SELF && info.hops[i].state == h[4]);
		CHECK((info.hops[i].flags & ~REDIRECT_HOP_RECORDS_MISSING) == 0 && info.hops[i].flags == h[5]);
		CHECK(le16(h + 6) == 0);
	}
}

static void check_context(const uint8_t *data, size_t size)
{
	struct sockaddr_storage destination;
	socklen_t length = 0;
	pid_t pid;
	uid_t uid;
	char comm[REDIRECT_CONTEXT_DATA_MAX];
	char small[15];
	bool has_pid, has_uid, has_comm, has_destination;

	errno = 0;
	has_pid = redirect_context_pid(data, size, &pid) == 0;
	CHECK(has_pid || errno == EINVAL);
	has_uid = redirect_context_uid(data, size, &uid) == 0;
	has_comm = redirect_context_comm(data, size, comm, sizeof(comm)) == 0;
	has_destination = redirect_context_destination(data, size, &destination, &length) == 0;
	/* One header check decides for every helper; only the destination also needs a known family. */
	CHECK(has_uid == has_pid && has_comm == has_pid);
	CHECK(!has_destination || has_pid);
	if (!has_pid)
		return;
	CHECK(size >= REDIRECT_CONTEXT_HEADER_SIZE && le32(data) == REDIRECT_CONTEXT_MAGIC);
	CHECK(le16(data + 4) == REDIRECT_CONTEXT_VERSION && le16(data + 6) == size);
	CHECK(le16(data + 80) <= REDIRECT_CONTEXT_DATA_MAX && size == REDIRECT_CONTEXT_HEADER_SIZE + le16(data + 80));
	CHECK((uint32_t)pid == le32(data + 32) && (uint32_t)uid == le32(data + 36));
	CHECK(memchr(comm, '\0', 16) != NULL && strncmp(comm, (const char *)data + 40, 15) == 0);
	errno = 0;
	CHECK(redirect_context_comm(data, size, small, sizeof(small)) == -1 && errno == EINVAL);

	if (!has_destination) {
		CHECK(le16(data + 8) != AF_INET && le16(data + 8) != AF_INET6);
		return;
	}
	if (le16(data + 8) == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&destination;

		CHECK(length == sizeof(*sin) && sin->sin_family == AF_INET);
		CHECK(memcmp(&sin->sin_port, data + 10, 2) == 0 && memcmp(&sin->sin_addr, data + 16, 4) == 0);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&destination;

		CHECK(le16(data + 8) == AF_INET6);
		CHECK(length == sizeof(*sin6) && sin6->sin6_family == AF_INET6);
		CHECK(memcmp(&sin6->sin6_port, data + 10, 2) == 0 && memcmp(&sin6->sin6_addr, data + 16, 16) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!data)
		return 0;
	check_records(data, size);
	check_context(data, size);
	return 0;
}

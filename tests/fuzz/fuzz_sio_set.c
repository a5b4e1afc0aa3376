// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer harness: the validation SET applies to a records blob before it attaches anything
 * (sio_records_to_sock() in callout/sio.c; the socket and map steps after it need the kernel).
 * sio.c is compiled into this harness because that function is hidden in libredirect_sio.so.
 * An accepted blob must fill the per-socket value completely and deterministically (no stale
 * bytes reach the kernel) and QUERY's encoding of that value must give the blob back byte for
 * byte; a rejected blob must be EINVAL and leave the value untouched.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redirect/sio.h"
#include "sio_internal.h"

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "fuzz_sio_set: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                     \
		}                                                                    \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct callout_hop no_hop;
	struct callout_sock value, before, expected;
	struct redirect_records_info info;
	unsigned char blob[REDIRECT_RECORDS_SIZE(REDIRECT_MAX_HOPS)];
	int err;

	if (!data)
		return 0;
	memset(&value, 0xa5, sizeof(value));
	memcpy(&before, &value, sizeof(value));
	err = sio_records_to_sock(data, size, &value);
	if (err) {
		CHECK(err == EINVAL);
		CHECK(memcmp(&value, &before, sizeof(value)) == 0);
		CHECK(redirect_records_decode(data, size, &info) == -1);
		return 0;
	}
	CHECK(redirect_records_decode(data, size, &info) == 0);
	CHECK(value.records.hop_count == info.hop_count);

	/* Only the role and the chain are set: zeros everywhere else, so no stale bytes reach the kernel. */
	memset(&expected, 0, sizeof(expected));
	expected.role = CALLOUT_ROLE_RECORDS;
	memcpy(&expected.records, &value.records, sizeof(value.records));
	expected.records.flags = 0;
	expected.records.reserved = 0;
	expected.records.reserved2 = 0;
	CHECK(memcmp(&value, &expected, sizeof(value)) == 0);
	for (unsigned i = info.hop_count; i < REDIRECT_MAX_HOPS; i++)
		CHECK(memcmp(&value.records.hops[i], &no_hop, sizeof(no_hop)) == 0);
	for (unsigned i = 0; i < info.hop_count; i++)
		CHECK(value.records.hops[i].reserved == 0);

	/* QUERY's encoding of what SET stored gives the caller's blob back byte for byte. */
	CHECK(sio_encode_records(&value.records, blob) == size);
	CHECK(memcmp(blob, data, size) == 0);
	return 0;
}

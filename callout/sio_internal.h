/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The SDK's pure blob conversions, for the fuzz harnesses (tests/fuzz): they need no socket and
 * no callout. Hidden: not part of libredirect_sio.so's ABI.
 */
#ifndef REDIRECT_SIO_INTERNAL_H
#define REDIRECT_SIO_INTERNAL_H

#include <stddef.h>

#include "callout_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* SET's validation: a version-1 records blob into the per-socket value; 0, or EINVAL. */
__attribute__((visibility("hidden"))) int sio_records_to_sock(const void *in, size_t in_size,
								struct callout_sock *value);

/* QUERY's encoding of the callout's records; returns the blob size (at most REDIRECT_RECORDS_SIZE(8)). */
__attribute__((visibility("hidden"))) size_t sio_encode_records(const struct callout_records *r,
								  unsigned char *out);

#ifdef __cplusplus
}
#endif

#endif /* REDIRECT_SIO_INTERNAL_H */

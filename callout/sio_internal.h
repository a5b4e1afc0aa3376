/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The SDK's pure blob conversions, for the fuzz harnesses (tests/fuzz): they need no socket and
 * no callout; and what sio.c shares with sio_socket.c. Hidden: not part of libredirect_sio.so's ABI.
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

/* The records map: the owner's (redirect_sio_use_map, *borrowed set) or the pin; -errno on failure. */
__attribute__((visibility("hidden"))) int sio_open_socks_map(int *borrowed);

/* SET: the records blob onto a socket that takes it; 0, or the errno (EINVAL, ENOTSOCK, ...). */
__attribute__((visibility("hidden"))) int sio_set_records(int sock, const void *in, size_t in_size, size_t *bytes);

/* SET's socket check: TCP not connecting yet, or UDP not connected; 0, or the errno. */
__attribute__((visibility("hidden"))) int sio_settable_socket(int sock);

/* One of the live instance's pinned maps (callout_paths.h): an fd to close unless *borrowed, or -errno. */
__attribute__((visibility("hidden"))) int sio_open_pinned_map(const char *pin_name, int *borrowed);

/* QUERY's answer from a socket's value: the records or the context blob; EINVAL with the
 * required size in *bytes when out_size is short, ENOENT when the value has none. */
__attribute__((visibility("hidden"))) int sio_copy_blob(const struct callout_sock *value, int records, void *out,
							 size_t out_size, size_t *bytes);

#ifdef __cplusplus
}
#endif

#endif /* REDIRECT_SIO_INTERNAL_H */

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/**
 * @file redirect/sio.h
 * @brief Redirect Console proxy SDK: the WFP connection-redirection socket
 *        controls (SIO_*_WFP_CONNECTION_REDIRECT_*) on Linux.
 *
 * A local proxy that Redirect Console's callout redirected a connection to
 * takes part in a chain of proxies exactly as on Windows:
 *
 *   1. accept() the redirected connection;
 *   2. QUERY the records and the context on the *accepted* socket
 *      (never the listening socket);
 *   3. decode the original destination from the context
 *      (redirect_context_destination());
 *   4. create the outbound socket, SET the records on it *before* connect();
 *   5. connect() to the original destination.
 *
 * One call mirrors WSAIoctl(): same control code names and values, errors
 * through errno (EINVAL, EFAULT, ENOENT, ENOTSOCK, EACCES, EOPNOTSUPP), the
 * required size in *bytes_returned when an output buffer is too small.
 * Callers need administrator rights (the pinned records map is root-only).
 *
 * The library is C, usable from C, C++ and Python ctypes (libredirect_sio.so).
 * Thread-safe. The only process-wide settings are redirect_sio_use_map() and
 * redirect_sio_use_udp_map(), for the engine that owns the callout.
 */
#ifndef REDIRECT_SIO_H
#define REDIRECT_SIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Accepted socket -> records blob (Windows value). */
#define SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS 0x980000DCu
/** Accepted socket -> context blob (Windows value). */
#define SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT 0x980000DDu
/** Records blob -> new, unconnected TCP or UDP socket, before connect() or its first send (Windows value). */
#define SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS 0x980000DEu

/* ---- Records blob, version 1 (little-endian, as the host) ----------------
 *   offset size
 *   0      4    magic REDIRECT_RECORDS_MAGIC
 *   4      2    version (1)
 *   6      2    hop count n, 1..REDIRECT_MAX_HOPS
 *   8      8    flow id (nonzero)
 *   16     8*n  hops: redirector id (u32, nonzero), state (u8, enum
 *               redirect_state seen by that redirector), flags (u8), 0 (u16)
 * Size: 16 + 8 * n bytes. SET accepts exactly that size.
 */
#define REDIRECT_RECORDS_MAGIC 0x31524452u /* "RDR1" */
#define REDIRECT_RECORDS_VERSION 1
#define REDIRECT_MAX_HOPS 8
#define REDIRECT_RECORDS_SIZE(hops) (16u + 8u * (unsigned)(hops))

/* ---- Context blob, version 1 ----------------------------------------------
 *   offset size
 *   0      4    magic REDIRECT_CONTEXT_MAGIC
 *   4      2    version (1)
 *   6      2    total size
 *   8      2    address family of the original destination (AF_INET/AF_INET6)
 *   10     2    original destination port, network order
 *   12     4    0
 *   16     16   original destination address, network order (IPv4 in the first 4)
 *   32     4    pid of the application that connected
 *   36     4    uid
 *   40     16   comm (process name, NUL padded)
 *   56     8    cgroup id
 *   64     4    rule id
 *   68     4    redirector id
 *   72     8    time of the redirect, CLOCK_BOOTTIME nanoseconds
 *   80     2    callout data length d (0..64)
 *   82     6    0
 *   88     d    callout data (the redirector's, as configured)
 * Size: 88 + d bytes. Decode with the helpers below rather than by offset.
 */
#define REDIRECT_CONTEXT_MAGIC 0x31584352u /* "RCX1" */
#define REDIRECT_CONTEXT_VERSION 1
#define REDIRECT_CONTEXT_HEADER_SIZE 88u
#define REDIRECT_CONTEXT_DATA_MAX 64u

/** Redirect state, WFP's FWPS_CONNECTION_REDIRECT_STATE names. */
enum redirect_state {
	REDIRECT_STATE_NOT_REDIRECTED = 0,
	REDIRECT_STATE_REDIRECTED_BY_SELF = 1,
	REDIRECT_STATE_REDIRECTED_BY_OTHER = 2,
	REDIRECT_STATE_PREVIOUSLY_REDIRECTED_BY_SELF = 3,
};

/** Hop flag: the proxy that took this hop did not SET records; the callout repaired them. */
#define REDIRECT_HOP_RECORDS_MISSING 0x01u

/** Overlapped request (WSAOVERLAPPED's role): filled before the completion runs. */
struct redirect_overlapped {
	void *user_data; /**< caller's, untouched */
	int error;       /**< 0 or an errno value */
	size_t bytes;    /**< bytes returned */
};

/** Completion routine (LPWSAOVERLAPPED_COMPLETION_ROUTINE's role). */
typedef void (*redirect_completion_routine)(int error, size_t bytes_returned,
					    struct redirect_overlapped *overlapped,
					    unsigned int flags);

/**
 * WSAIoctl() for the three redirect control codes.
 *
 * @param sock           socket descriptor
 * @param control_code   one of SIO_*_WFP_CONNECTION_REDIRECT_*
 * @param in, in_size    input buffer (SET: the records blob)
 * @param out, out_size  output buffer (QUERY); must be NULL/0 for SET
 * @param bytes_returned receives the bytes written (QUERY), consumed (SET), or
 *                       the required size when @p out is too small
 * @param overlapped     optional; with @p completion the call completes at once
 * @param completion     optional; called once with the result before return
 * @return 0 on success; -1 with errno set. With a completion routine the call
 *         returns 0 and the routine receives the result.
 */
int redirect_ioctl(int sock, uint32_t control_code, const void *in, size_t in_size,
		   void *out, size_t out_size, size_t *bytes_returned,
		   struct redirect_overlapped *overlapped, redirect_completion_routine completion);

/**
 * For the process that loaded the callout itself (the engine): use this open
 * records map instead of finding the pinned one on every call, which saves
 * the liveness check and the map open (five system calls a call). The
 * descriptor stays owned by the caller, who must pass -1 before closing it.
 * Every check of redirect_ioctl() still applies. Returns 0.
 */
int redirect_sio_use_map(int map_fd);

/**
 * The same for redirect_udp_query(): the callout's open UDP flows map instead
 * of the pinned one (the liveness check and the open, five system calls, per
 * query). Owned by the caller, who passes -1 before closing it. Returns 0.
 */
int redirect_sio_use_udp_map(int map_fd);

/* ---- UDP: Windows' control messages as a query --------------------------
 * On Windows a UDP redirector (a socket with IP_WFP_REDIRECT_CONTEXT and
 * IP_WFP_REDIRECT_RECORDS enabled) receives each redirected datagram with two
 * control messages, the flow's context and records, and passes the records on
 * as a control message of IP_WFP_REDIRECT_RECORDS on what it sends upstream.
 * Linux cannot attach foreign control messages to a datagram, so here:
 *   - the redirector recvfrom()s the datagram as usual (the source address is
 *     required: recv() without one tells the callout nothing), then asks
 *     redirect_udp_query() with that source for the context and records that
 *     Windows would have put in the control messages. Same option names and
 *     values as ws2ipdef.h, same blobs as the TCP QUERY codes;
 *   - it passes the records on with SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS on
 *     its upstream UDP socket, before that socket's first send (connected or
 *     not), which is what Windows' IP_WFP_REDIRECT_RECORDS message does for the
 *     datagram it rides on.
 * The redirector's socket must be bound to its listen address (not a
 * wildcard) and marked by the engine that loaded the callout as that
 * redirector's (Callout::markListener); a flow is the application socket's
 * endpoint for as long as it sends within its rule's idle timeout.
 */
/** Option: the flow's records blob (Windows: IPPROTO_IP / IPPROTO_IPV6, same value). */
#define IP_WFP_REDIRECT_RECORDS 60
#define IPV6_WFP_REDIRECT_RECORDS 60
/** Option: the flow's context blob (Windows: IPPROTO_IP / IPPROTO_IPV6, same value). */
#define IP_WFP_REDIRECT_CONTEXT 70
#define IPV6_WFP_REDIRECT_CONTEXT 70

/**
 * What Windows delivers with a redirected datagram as the control message @p option: the
 * context or records of the flow whose datagram @p sock (the redirector's bound UDP socket)
 * received from @p source (the address recvfrom() gave).
 *
 * @return 0 with the blob in @p out and its size in *@p bytes_returned; -1 with errno:
 *   EINVAL     unknown option; @p source not AF_INET/AF_INET6 or @p source_len too short;
 *              @p sock not a UDP socket, or not bound; @p out too small (including size 0):
 *              *@p bytes_returned is then the required size
 *   ENOENT     no redirected flow from @p source reached @p sock (not redirected, sent
 *              directly, its socket closed before the datagram was read, or @p sock is not the
 *              marked socket of the redirector the flow went to)
 *   EFAULT     null @p source or @p bytes_returned, null @p out with nonzero @p out_size
 *   ENOTSOCK, EBADF  @p sock is not a socket / not a descriptor
 *   EACCES     caller without administrator rights; EOPNOTSUPP: callout not loaded
 */
int redirect_udp_query(int sock, const struct sockaddr *source, socklen_t source_len, int option,
		       void *out, size_t out_size, size_t *bytes_returned);

/**
 * The redirector is done with the flow from @p source at @p sock (it ended it, say after its
 * idle timeout). A UDP socket that connect()ed sends with no hook the callout sees, so its next
 * datagram reaches the redirector without a new classification: after this call, one that
 * comes after the rule's idle timeout starts a new flow (a new flow id, with its own event).
 * A redirector that never calls it keeps such a socket in one flow for as long as it sends.
 * Unconnected sockets are classified again at their first datagram after the timeout anyway.
 *
 * @return 0; -1 with errno as redirect_udp_query() (ENOENT: no such flow at @p sock).
 */
int redirect_udp_flow_end(int sock, const struct sockaddr *source, socklen_t source_len);

/** Original destination from a context blob. 0, or -1 with errno EINVAL/EFAULT. */
int redirect_context_destination(const void *context, size_t size,
				 struct sockaddr_storage *destination, socklen_t *length);
/** Pid of the application that connected. */
int redirect_context_pid(const void *context, size_t size, pid_t *pid);
/** Uid of the application that connected. */
int redirect_context_uid(const void *context, size_t size, uid_t *uid);
/** Process name (comm) of the application; @p comm gets at least 16 bytes, NUL-terminated. */
int redirect_context_comm(const void *context, size_t size, char *comm, size_t comm_size);

/** A decoded records blob. */
struct redirect_records_info {
	uint64_t flow_id;
	unsigned int hop_count;
	struct {
		uint32_t redirector_id;
		uint8_t state; /**< enum redirect_state */
		uint8_t flags; /**< REDIRECT_HOP_* */
	} hops[REDIRECT_MAX_HOPS];
};

/** Validate and decode a records blob. 0, or -1 with errno EINVAL/EFAULT. */
int redirect_records_decode(const void *records, size_t size, struct redirect_records_info *info);

/**
 * Both QUERY answers of an accepted socket in one call (an extension; Windows has two ioctls):
 * what SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS and ..._CONTEXT would return, from one look-up
 * of the socket's entry instead of two. A proxy that wants both on every accept saves a system
 * call. 0, or -1 with errno as redirect_ioctl() gives for the first QUERY that fails (ENOENT when
 * the socket carries no records; EINVAL, with the required sizes in *records_bytes and
 * *context_bytes, when a buffer is too small).
 */
int redirect_query_both(int sock, void *records, size_t records_size, size_t *records_bytes, void *context,
			size_t context_size, size_t *context_bytes);

/** Name of a redirect state ("NOT_REDIRECTED", ...), or "?" */
const char *redirect_state_name(int state);

#ifdef __cplusplus
}
#endif

#endif /* REDIRECT_SIO_H */

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The SDK's socket checks: which sockets SET takes, and the UDP query (redirect/sio.h): what Windows delivers with a redirected datagram as the
 * IP_WFP_REDIRECT_CONTEXT and IP_WFP_REDIRECT_RECORDS control messages, read from the flows the
 * callout handed to the redirector's socket (callout_udp_flows, see callout_udp.bpf.h).
 */
#include "redirect/sio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "callout_abi.h"
#include "callout_paths.h"
#include "sio_internal.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/*
 * The callout classifies TCP and UDP over IPv4/IPv6 sockets that have not started connecting.
 * TCP_INFO answers only for TCP sockets (which are IPv4 or IPv6), and its state is CLOSE only
 * before connect() and listen(): for TCP, one system call covers family, protocol, connected
 * and listening, and it reports ENOTSOCK and EBADF first. A UDP socket takes records while it
 * is not connected (the callout classifies its sends then).
 */
int sio_settable_socket(int sock)
{
	int domain = 0, protocol = 0;
	socklen_t len = sizeof(struct tcp_info);
	struct sockaddr_storage peer;
	struct tcp_info ti;

	if (getsockopt(sock, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0)
		return ti.tcpi_state == TCP_CLOSE ? 0 : EINVAL;
	if (errno == ENOTSOCK || errno == EBADF)
		return errno;
	len = sizeof(domain);
	if (getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &domain, &len) || (domain != AF_INET && domain != AF_INET6))
		return EINVAL;
	len = sizeof(protocol);
	if (getsockopt(sock, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) || protocol != IPPROTO_UDP)
		return EINVAL;
	len = sizeof(peer);
	if (getpeername(sock, (struct sockaddr *)&peer, &len) == 0 || errno != ENOTCONN)
		return EINVAL;
	return 0;
}

int sio_records_to_sock(const void *in, size_t in_size, struct callout_sock *value)
{
	struct redirect_records_info info;

	if (redirect_records_decode(in, in_size, &info) != 0)
		return EINVAL;
	memset(value, 0, sizeof(*value));
	value->role = CALLOUT_ROLE_RECORDS;
	value->records.flow_id = info.flow_id;
	value->records.hop_count = (uint8_t)info.hop_count;
	for (unsigned i = 0; i < info.hop_count; i++) {
		value->records.hops[i].redirector_id = info.hops[i].redirector_id;
		value->records.hops[i].state = info.hops[i].state;
		value->records.hops[i].flags = info.hops[i].flags;
	}
	return 0;
}

int sio_set_records(int sock, const void *in, size_t in_size, size_t *bytes)
{
	struct callout_sock value;
	int map, borrowed, err;

	err = sio_settable_socket(sock);
	if (err)
		return err;
	if (sio_records_to_sock(in, in_size, &value) != 0)
		return EINVAL;
	map = sio_open_socks_map(&borrowed);
	if (map < 0)
		return -map;
	err = bpf_map_update_elem(map, &sock, &value, BPF_ANY) ? errno : 0;
	if (!borrowed)
		close(map);
	if (err)
		return err == EBADF || err == EOPNOTSUPP ? EINVAL : err;
	*bytes = in_size;
	return 0;
}

/* An address as callout_key_addr() keys it: v4-mapped IPv6 as IPv4. 0, or EINVAL. */
static int key_address(const struct sockaddr *sa, socklen_t len, uint32_t out[4], uint32_t *family, uint16_t *port)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (len >= (socklen_t)sizeof(struct sockaddr_in) && sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		memcpy(&out[0], &sin->sin_addr, 4);
		*family = AF_INET;
		*port = ntohs(sin->sin_port);
		return 0;
	}
	if (len >= (socklen_t)sizeof(struct sockaddr_in6) && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		if (!memcmp(&sin6->sin6_addr, mapped, sizeof(mapped))) {
			memcpy(&out[0], (const unsigned char *)&sin6->sin6_addr + 12, 4);
			*family = AF_INET;
		} else {
			memcpy(out, &sin6->sin6_addr, 16);
			*family = AF_INET6;
		}
		*port = ntohs(sin6->sin6_port);
		return 0;
	}
	return EINVAL;
}

/* The callout_udp_flows key of a datagram from `source` that `sock` received (callout_udp.bpf.h). */
static int udp_flow_key(int sock, const struct sockaddr *source, socklen_t source_len, struct callout_handoff_key *key)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	uint32_t app_family;
	uint64_t netns = 0;
	int protocol = 0;
	struct stat st;

	if (fstat(sock, &st) != 0)
		return EBADF;
	if (!S_ISSOCK(st.st_mode))
		return ENOTSOCK;
	memset(key, 0, sizeof(*key));
	if (key_address(source, source_len, key->app_addr, &app_family, &key->app_port) != 0)
		return EINVAL;
	if (getsockopt(sock, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) || protocol != IPPROTO_UDP)
		return EINVAL;
	len = sizeof(local);
	if (getsockname(sock, (struct sockaddr *)&local, &len) != 0 ||
	    key_address((const struct sockaddr *)&local, len, key->proxy_addr, &key->family, &key->proxy_port) != 0 ||
	    key->proxy_port == 0)
		return EINVAL;
	len = sizeof(netns);
	if (getsockopt(sock, SOL_SOCKET, SO_NETNS_COOKIE, &netns, &len) != 0)
		return EINVAL;
	key->netns_cookie = netns;
	return 0;
}

/* Set by the process that owns the callout (redirect_sio_use_udp_map); -1: find the pin. */
static _Atomic int g_own_udp_map = -1;

int redirect_sio_use_udp_map(int map_fd)
{
	g_own_udp_map = map_fd;
	return 0;
}

/* The UDP flows map: the owner's (redirect_sio_use_udp_map, *borrowed set) or the pin; -errno. */
static int open_udp_map(int *borrowed)
{
	int map = g_own_udp_map;

	*borrowed = map >= 0;
	return *borrowed ? map : sio_open_pinned_map(CALLOUT_UDP_FLOWS_PIN_NAME, borrowed);
}

int redirect_udp_flow_end(int sock, const struct sockaddr *source, socklen_t source_len)
{
	struct callout_handoff_key key;
	int map, borrowed, err;

	err = source ? udp_flow_key(sock, source, source_len, &key) : EFAULT;
	if (!err) {
		map = open_udp_map(&borrowed);
		if (map < 0) {
			err = -map;
		} else {
			err = bpf_map_delete_elem(map, &key) != 0 ? ENOENT : 0;
			if (!borrowed)
				close(map);
		}
	}
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

int redirect_udp_query(int sock, const struct sockaddr *source, socklen_t source_len, int option, void *out,
		       size_t out_size, size_t *bytes_returned)
{
	struct callout_handoff_key key;
	struct callout_sock value;
	size_t bytes = 0;
	int map, borrowed, err;

	if (!source || !bytes_returned || (!out && out_size)) {
		err = EFAULT;
		goto done;
	}
	if (option != IP_WFP_REDIRECT_RECORDS && option != IP_WFP_REDIRECT_CONTEXT) {
		err = EINVAL;
		goto done;
	}
	err = udp_flow_key(sock, source, source_len, &key);
	if (err)
		goto done;
	map = open_udp_map(&borrowed);
	if (map < 0) {
		err = -map;
		goto done;
	}
	err = bpf_map_lookup_elem(map, &key, &value) != 0 ? ENOENT : 0;
	if (!borrowed)
		close(map);
	if (!err)
		err = (value.role & CALLOUT_ROLE_APP_REDIRECTED)
			      ? sio_copy_blob(&value, option == IP_WFP_REDIRECT_RECORDS, out, out_size, &bytes)
			      : ENOENT;
done:
	if (bytes_returned)
		*bytes_returned = bytes;
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

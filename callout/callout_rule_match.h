/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The pure part of the callout's rule walk: whether one rule matches one connect(), and the
 * redirect state of a redirector for a socket's records. Compiled into the callout (BPF) and into
 * the engine (C++), so that a dry run of a rule change predicts with the very code the callout
 * decides with. No maps, no helpers, no kernel context here.
 */
#ifndef REDIRECT_CALLOUT_RULE_MATCH_H
#define REDIRECT_CALLOUT_RULE_MATCH_H

#include "callout_abi.h"

#ifndef __bpf__
/* User space: the same byte order helpers and inlining as the BPF build. */
#include <arpa/inet.h>
#include <netinet/in.h>
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define bpf_ntohl(x) ntohl(x)
#endif

/* Destination of one connect() (or UDP flow's first sendmsg()) and who makes it. */
struct callout_conn {
	__u64 cookie;
	__u64 netns;
	__u64 cgroup_id;
	__u64 now;
	__u32 tgid;
	__u32 uid;
	__u32 dst[4];        /* network order; v4 in dst[0] */
	__u16 port;          /* host order */
	__u16 family;        /* family the rule sees: AF_INET for v4-mapped */
	__u16 orig_family;   /* family of the application's socket */
	__u8 mapped;         /* AF_INET6 socket, v4-mapped destination */
	__u8 protocol;       /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 comm[CALLOUT_COMM_LEN];
};

/* State of redirector `id` for a socket carrying `rec`. */
static __always_inline __u8 callout_state_of(const struct callout_records *rec, __u32 id)
{
	__u32 n = rec->hop_count;

	if (n == 0)
		return CALLOUT_STATE_NOT_REDIRECTED;
	if (n > CALLOUT_MAX_HOPS)
		n = CALLOUT_MAX_HOPS;
	if (rec->hops[(n - 1) & (CALLOUT_MAX_HOPS - 1)].redirector_id == id)
		return CALLOUT_STATE_REDIRECTED_BY_SELF;
	for (__u32 i = 0; i < CALLOUT_MAX_HOPS; i++) {
		if (i + 1 >= n)
			break;
		if (rec->hops[i].redirector_id == id)
			return CALLOUT_STATE_PREVIOUSLY_REDIRECTED_BY_SELF;
	}
	return CALLOUT_STATE_REDIRECTED_BY_OTHER;
}

/* WFP's loop contract: only these two states may redirect. */
static __always_inline int callout_state_may_redirect(__u8 state)
{
	return state == CALLOUT_STATE_NOT_REDIRECTED || state == CALLOUT_STATE_REDIRECTED_BY_OTHER;
}

static __always_inline int callout_cidr_match(const struct callout_cidr *c, const struct callout_conn *conn)
{
	__u32 bits = c->prefix_len;

	if (c->family != conn->family)
		return 0;
	for (int w = 0; w < 4; w++) {
		__u32 take = bits > 32 ? 32 : bits;
		__u32 mask;

		if (take == 0)
			return 1;
		mask = take == 32 ? 0xffffffffu : ~(0xffffffffu >> take);
		if ((bpf_ntohl(conn->dst[w]) & mask) != (bpf_ntohl(c->addr[w]) & mask))
			return 0;
		bits -= take;
	}
	return 1;
}

static __always_inline int callout_comm_match(const struct callout_rule *r, const struct callout_conn *conn)
{
	for (int i = 0; i < CALLOUT_COMM_LEN; i++) {
		if (r->comm[i] != conn->comm[i])
			return 0;
		if (!r->comm[i])
			break;
	}
	return 1;
}

static __always_inline int callout_ports_match(const struct callout_rule *r, const struct callout_conn *conn)
{
	if (!r->port_count)
		return 1;
	for (int i = 0; i < CALLOUT_MAX_PORT_RANGES; i++) {
		if (i >= r->port_count)
			break;
		if (conn->port >= r->ports[i].first && conn->port <= r->ports[i].last)
			return 1;
	}
	return 0;
}

static __always_inline int callout_destination_match(const struct callout_rule *r, const struct callout_conn *conn)
{
	if (!r->cidr_count)
		return 1;
	for (int i = 0; i < CALLOUT_MAX_CIDRS; i++) {
		if (i >= r->cidr_count)
			break;
		if (callout_cidr_match(&r->cidrs[i], conn))
			return 1;
	}
	return 0;
}

static __always_inline int callout_rule_match(const struct callout_rule *r, const struct callout_conn *conn)
{
	if (!r->enabled)
		return 0;
	if (r->expires_boot_ns && conn->now >= r->expires_boot_ns)
		return 0;
	if (r->protocol && r->protocol != conn->protocol)
		return 0;
	if ((r->match & CALLOUT_MATCH_UID) && r->uid != conn->uid)
		return 0;
	if ((r->match & CALLOUT_MATCH_CGROUP) && r->cgroup_id != conn->cgroup_id)
		return 0;
	if ((r->match & CALLOUT_MATCH_COMM) && !callout_comm_match(r, conn))
		return 0;
	return callout_ports_match(r, conn) && callout_destination_match(r, conn);
}

#endif /* REDIRECT_CALLOUT_RULE_MATCH_H */

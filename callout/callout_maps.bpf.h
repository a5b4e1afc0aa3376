/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Maps, load-time globals and small helpers of the callout (callout.bpf.c).
 * Included once, by callout.bpf.c: one compilation unit, one object.
 */
#ifndef REDIRECT_CALLOUT_MAPS_BPF_H
#define REDIRECT_CALLOUT_MAPS_BPF_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
/* AF_INET, AF_INET6, SOCK_STREAM without libc headers (BPF target). */
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "callout_abi.h"

/* What a cgroup sock_addr hook returns: go on (perhaps redirected), or refuse with EPERM (block rules). */
#define CALLOUT_HOOK_ALLOW 1
#define CALLOUT_HOOK_REJECT 0
/* sockops programs return 1 as well; the value is not a verdict there. */
#define CALLOUT_SOCKOPS_DONE 1

/* Per-socket records and context, and the marks of verified listeners; the one map user space
 * pins (SDK). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct callout_sock);
} callout_socks SEC(".maps");

/* UDP state of application sockets: their redirected flow and their latest other decision. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct callout_udp_sock);
} callout_udp_socks SEC(".maps");

/*
 * UDP flows a redirector's socket received, keyed like the TCP hand-off (application endpoint
 * as the redirector sees it, redirector endpoint as bound): the application socket's records
 * and context, for the SDK's UDP query. Pinned 0600 next to the records map.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct callout_handoff_key);
	__type(value, struct callout_sock);
} callout_udp_flows SEC(".maps");

/* Redirectors by slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CALLOUT_MAX_REDIRECTORS);
	__type(key, __u32);
	__type(value, struct callout_redirector);
} callout_redirectors SEC(".maps");

/* Ordered rules, two tables of CALLOUT_MAX_RULES (double buffer, see callout_config). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * CALLOUT_MAX_RULES);
	__type(key, __u32);
	__type(value, struct callout_rule);
} callout_rules SEC(".maps");

/* Which rule table is live and how many rules each holds. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct callout_config);
} callout_config SEC(".maps");

/* Records and context in flight from the application's socket to the accepted one. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct callout_handoff_key);
	__type(value, struct callout_sock);
} callout_handoff SEC(".maps");

/* Records of each redirector's latest accepted connection, to repair a missing SET. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CALLOUT_MAX_REDIRECTORS);
	__type(key, __u32);
	__type(value, struct callout_last_inbound);
} callout_last_inbound SEC(".maps");

/* Counters (enum callout_stat), summed over CPUs by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CALLOUT_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} callout_stats SEC(".maps");

/* One event per classification (4 MiB: about 22,000 events between two drains). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, CALLOUT_EVENTS_BYTES);
} callout_events SEC(".maps");

/*
 * Engine liveness, written by user space through the mmapped .bss (no system call per beat).
 * A redirector hosted by an engine that has not beaten for callout_stall_deadline_ns is passed
 * over, so a stopped or deadlocked engine cannot hold new connections. 0 = no deadline.
 */
volatile __u64 callout_heartbeat_ns;      /* CLOCK_BOOTTIME of the last beat */
volatile __u64 callout_stall_deadline_ns;

static __always_inline void callout_count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&callout_stats, &stat);

	if (v)
		__sync_fetch_and_add(v, 1);  /* a preempting connect on this CPU counts too */
}

/* ::ffff:a.b.c.d — an IPv4 destination reached through an AF_INET6 socket. */
static __always_inline int callout_is_v4_mapped(const __u32 a[4])
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

static __always_inline void callout_copy6(__u32 *dst, const __u32 *src)
{
	dst[0] = src[0];
	dst[1] = src[1];
	dst[2] = src[2];
	dst[3] = src[3];
}

#endif /* REDIRECT_CALLOUT_MAPS_BPF_H */

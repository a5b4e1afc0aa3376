/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * sockops side of the callout: hands records and context from the
 * application's socket to the redirector's accepted socket, and reports the
 * close of an application socket, redirected or sent direct. Included once,
 * by callout.bpf.c.
 */
#ifndef REDIRECT_CALLOUT_HANDOFF_BPF_H
#define REDIRECT_CALLOUT_HANDOFF_BPF_H

#include "callout_maps.bpf.h"

/* v4-mapped addresses on AF_INET6 sockets become plain IPv4 keys, so both ends agree. */
static __always_inline void callout_key_addr(__u32 family, __u32 v4, const __u32 *v6, __u32 out[4],
					     __u32 *key_family)
{
	if (family == AF_INET) {
		out[0] = v4;
		*key_family = AF_INET;
	} else if (callout_is_v4_mapped(v6)) {
		out[0] = v6[3];
		*key_family = AF_INET;
	} else {
		callout_copy6(out, v6);
		*key_family = AF_INET6;
	}
}

/* The 4-tuple of a connection as the hand-off keys it, from either end. */
static __always_inline void callout_handoff_key_of(struct bpf_sock_ops *skops, int app_side,
						   struct callout_handoff_key *key)
{
	__u32 local6[4], remote6[4], fam;

	local6[0] = skops->local_ip6[0];
	local6[1] = skops->local_ip6[1];
	local6[2] = skops->local_ip6[2];
	local6[3] = skops->local_ip6[3];
	remote6[0] = skops->remote_ip6[0];
	remote6[1] = skops->remote_ip6[1];
	remote6[2] = skops->remote_ip6[2];
	remote6[3] = skops->remote_ip6[3];
	key->netns_cookie = bpf_get_netns_cookie(skops);
	if (app_side) {
		callout_key_addr(skops->family, skops->local_ip4, local6, key->app_addr, &fam);
		callout_key_addr(skops->family, skops->remote_ip4, remote6, key->proxy_addr, &fam);
		key->app_port = skops->local_port;                /* host order */
		key->proxy_port = bpf_ntohl(skops->remote_port);  /* network order in sockops */
	} else {
		callout_key_addr(skops->family, skops->remote_ip4, remote6, key->app_addr, &fam);
		callout_key_addr(skops->family, skops->local_ip4, local6, key->proxy_addr, &fam);
		key->app_port = bpf_ntohl(skops->remote_port);
		key->proxy_port = skops->local_port;
	}
	key->family = fam;
}

/* Application side, SYN about to leave: park records and context under the 4-tuple. */
static __always_inline void callout_park(struct bpf_sock_ops *skops)
{
	struct callout_handoff_key key = {};
	struct callout_sock *sk;
	struct bpf_sock *s = skops->sk;

	if (!s)
		return;
	sk = bpf_sk_storage_get(&callout_socks, s, 0, 0);
	if (!sk) {
		/*
		 * A connect sent direct carries no storage (a redirector's own connects always do):
		 * hear its close, so the console shows how it ended. A flag, not an allocation: the
		 * cost stays one callback per state change of this socket.
		 */
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
		return;
	}
	if (!(sk->role & CALLOUT_ROLE_APP_REDIRECTED))
		return;
	callout_handoff_key_of(skops, 1, &key);
	bpf_map_update_elem(&callout_handoff, &key, sk, BPF_ANY);
	/* Hear about its close too: flows through proxies that are not ours end only that way. */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/*
 * Data bytes of a closing socket. The kernel counts sequence space: our SYN and FIN in
 * bytes_acked, the peer's FIN in bytes_received. The state we leave tells which FINs went
 * through (a FIN_WAIT2 that timed out without the peer's FIN is off by one byte).
 */
static __always_inline void callout_data_bytes(struct bpf_sock_ops *skops, struct callout_event *e)
{
	__u32 old = skops->args[0];
	__u64 acked = skops->bytes_acked, received = skops->bytes_received;
	int fin_out = old == BPF_TCP_FIN_WAIT2 || old == BPF_TCP_CLOSING || old == BPF_TCP_LAST_ACK ||
		      old == BPF_TCP_TIME_WAIT;
	int fin_in = fin_out || old == BPF_TCP_CLOSE_WAIT;

	if (acked)
		acked--; /* SYN */
	if (fin_out && acked)
		acked--;
	if (fin_in && received)
		received--;
	e->bytes_acked = acked;
	e->bytes_received = received;
}

/* A CLOSED event for socket `cookie`, zeroed and stamped; NULL (counted) when the ring is full. */
static __always_inline struct callout_event *callout_closed_event(__u64 cookie)
{
	struct callout_event *e = bpf_ringbuf_reserve(&callout_events, sizeof(*e), 0);

	if (!e) {
		callout_count(CALLOUT_STAT_EVENT_DROPS);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->time_boot_ns = bpf_ktime_get_boot_ns();
	e->cookie = cookie;
	e->verdict = CALLOUT_VERDICT_CLOSED;
	return e;
}

/*
 * An application socket closed: its byte counts end the flow for the console. Redirected
 * sockets name their flow in their records; a direct one (no storage: callout_park asked for
 * its state changes) is its own flow, named by its cookie as the connect's event named it.
 */
static __always_inline void callout_closed(struct bpf_sock_ops *skops)
{
	struct callout_event *e;
	struct callout_sock *sk;
	struct bpf_sock *s = skops->sk;

	if (!s || skops->args[1] != BPF_TCP_CLOSE)
		return;
	sk = bpf_sk_storage_get(&callout_socks, s, 0, 0);
	if (sk && !(sk->role & CALLOUT_ROLE_APP_REDIRECTED))
		return;
	e = callout_closed_event(bpf_get_socket_cookie(skops));
	if (!e)
		return;
	e->state = skops->args[0];
	if (sk) {
		e->flow_id = sk->records.flow_id;
		e->family = sk->context.family;
		e->redirector_id = sk->context.redirector_id;
		e->rule_id = sk->context.rule_id;
	} else {
		e->flow_id = e->cookie;
		e->family = skops->family;
	}
	callout_data_bytes(skops, e);
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/* Redirector side, connection accepted: take the parked records and context. */
static __always_inline void callout_take(struct bpf_sock_ops *skops)
{
	struct callout_handoff_key key = {};
	struct callout_last_inbound *last;
	struct callout_sock *parked, *sk;
	struct bpf_sock *s = skops->sk;
	__u32 slot;

	if (!s)
		return;
	callout_handoff_key_of(skops, 0, &key);
	parked = bpf_map_lookup_elem(&callout_handoff, &key);
	if (!parked)
		return;
	sk = bpf_sk_storage_get(&callout_socks, s, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!sk) {
		callout_count(CALLOUT_STAT_HANDOFF_MISSES);
		return;
	}
	__builtin_memcpy(sk, parked, sizeof(*sk));
	sk->role = CALLOUT_ROLE_RECORDS | CALLOUT_ROLE_CONTEXT | CALLOUT_ROLE_ACCEPTED;
	slot = sk->redirector_slot;
	last = bpf_map_lookup_elem(&callout_last_inbound, &slot);
	if (last) {
		last->time_boot_ns = bpf_ktime_get_boot_ns();
		__builtin_memcpy(&last->records, &sk->records, sizeof(last->records));
	}
	bpf_map_delete_elem(&callout_handoff, &key);
	callout_count(CALLOUT_STAT_HANDOFFS);
}

#endif /* REDIRECT_CALLOUT_HANDOFF_BPF_H */

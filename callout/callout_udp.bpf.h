/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * UDP side of the callout: a flow's later datagrams, the reply's source restored for the
 * application, and the hand-off of a flow's records and context to the redirector's socket.
 * Included once, by callout.bpf.c.
 *
 * DESIGN: how a UDP redirector finds a datagram's flow.
 *
 * A UDP redirector receives datagrams whose source is the application socket's endpoint and
 * must learn that flow's records and context. The endpoint is not known where TCP parks its
 * hand-off: connect4/6 runs before inet_dgram_connect() autobinds the socket, and a connected
 * socket's later sends run no sock_addr hook at all. Candidates were (a) a cgroup_skb/egress
 * program publishing the 5-tuple on a redirected socket's first datagram, (b) the redirector
 * resolving the sender with sock_diag and looking its cookie up, (c) something in the kernel.
 *
 * Chosen, (c): the redirector's own recvmsg4/6 hook. When the redirector calls recvfrom(), the
 * hook runs on its (marked) socket with the datagram's source in user_ip4/6 and user_port;
 * bpf_sk_lookup_udp() with the tuple of a reply (redirector endpoint -> that source) finds the
 * application's socket, connected or not, and its storage holds the flow. The hook copies it
 * into callout_udp_flows under (application endpoint, redirector endpoint), which the SDK reads
 * right after recvfrom() with the redirector's socket and the source it got. Why:
 *   - it costs nothing on the application side: no per-packet program (a) on every socket of
 *     the cgroup, TCP included; the work is on the redirector's socket only, one hash update
 *     per datagram, and none of its datagrams are missed (b's netlink round trip per flow);
 *   - connected and unconnected sockets take the same path, autobind or not;
 *   - each datagram re-validates its entry: the application socket is looked up again, so a
 *     port that changed hands (the old socket closed, another bound it) never inherits a flow,
 *     and an entry whose socket is gone is deleted. Nothing is published for a socket the
 *     callout did not redirect to this very redirector (its mark names it).
 *   - trust as for TCP: entries are written only by the callout, from storage only the callout
 *     and root write; the map is pinned 0600 like the records map, so only administrators read
 *     it. An unprivileged sender to the redirector's port has no storage: nothing published.
 * Costs: entries live until LRU eviction or their socket's next datagram shows it gone; a
 * datagram whose socket closed before the redirector read it (fire and forget) finds no flow,
 * and the SDK says ENOENT. The redirector drops it, as it would drop any unknown sender.
 *
 * One redirected flow per application socket: the redirector tells flows apart by their source
 * alone (and the application tells replies apart by theirs), so a second destination that a
 * rule would redirect while the socket's flow is live goes direct, reported as BUSY. A flow ends
 * after its rule's idle timeout (the socket's sends and the redirector's receipts keep it alive)
 * or when its socket closes (sock_release sends CLOSED); an unconnected socket's next datagram
 * after that is classified as a new flow. A connected socket's sends run no hook: its next flow
 * starts at the redirector's receipt, once the redirector has ended the old one
 * (redirect_udp_flow_end deletes the hand-off entry), so that a datagram the redirector reads
 * late still counts in the flow it was sent in.
 */
#ifndef REDIRECT_CALLOUT_UDP_BPF_H
#define REDIRECT_CALLOUT_UDP_BPF_H

#include "callout_maps.bpf.h"
#include "callout_handoff.bpf.h"

static __always_inline __u64 callout_idle_ns(__u32 idle_s)
{
	return (__u64)(idle_s ? idle_s : CALLOUT_UDP_IDLE_DEFAULT_S) * 1000000000ull;
}

static __always_inline int callout_same_dst(const __u32 a[4], __u16 port, __u8 family, const struct callout_conn *conn)
{
	return port == conn->port && family == conn->family && a[0] == conn->dst[0] && a[1] == conn->dst[1] &&
	       a[2] == conn->dst[2] && a[3] == conn->dst[3];
}

static __always_inline int callout_udp_live(const struct callout_udp_sock *us, __u64 now)
{
	/* The redirector's receipt on another CPU may have stamped a time later than `now`. */
	return us->flow_ns && (now <= us->flow_ns || now - us->flow_ns <= us->idle_ns);
}

/*
 * A later datagram of a flow this socket has: to the redirector again, or as decided before.
 * Returns the hook's answer, or -1 when the datagram needs a classification.
 */
static __always_inline int callout_udp_known(struct bpf_sock_addr *ctx, struct callout_udp_sock *us,
					     const struct callout_conn *conn, __u64 now, const __u16 orig_family)
{
	if (callout_udp_live(us, now) && callout_same_dst(us->flow_dst, us->flow_port, us->flow_family, conn)) {
		us->flow_ns = now;
		if (orig_family == AF_INET) {
			ctx->user_ip4 = us->proxy_addr[0];
		} else {
			ctx->user_ip6[0] = us->proxy_addr[0];
			ctx->user_ip6[1] = us->proxy_addr[1];
			ctx->user_ip6[2] = us->proxy_addr[2];
			ctx->user_ip6[3] = us->proxy_addr[3];
		}
		ctx->user_port = us->proxy_port;
		return CALLOUT_HOOK_ALLOW;
	}
	if (us->other_ns && now - us->other_ns <= us->other_idle_ns &&
	    callout_same_dst(us->other_dst, us->other_port, us->other_family, conn)) {
		/* A block holds for one idle period from the decision: retries do not extend it. */
		if (us->other_verdict == CALLOUT_VERDICT_BLOCK)
			return CALLOUT_HOOK_REJECT;
		us->other_ns = now;
		return CALLOUT_HOOK_ALLOW;
	}
	return -1;
}

/* A flow redirected: where its datagrams go, for later sends and for the replies' source. */
static __always_inline void callout_udp_started(struct callout_udp_sock *us, const struct callout_conn *conn,
						const struct callout_decision *d, __u8 in_hops, const __u32 new_dst[4],
						__u16 new_port)
{
	us->flow_ns = conn->now;
	us->idle_ns = callout_idle_ns(d->idle_s);
	callout_copy6(us->flow_dst, conn->dst);
	us->flow_port = conn->port;
	us->flow_family = (__u8)conn->family;
	us->in_hops = in_hops;
	us->generation++;
	us->handed = 0;
	callout_copy6(us->proxy_addr, new_dst);
	us->proxy_port = new_port;
}

/* Any other decision: remembered, so the flow's next datagrams make no event. */
static __always_inline void callout_udp_other(struct callout_udp_sock *us, const struct callout_conn *conn,
					      const struct callout_decision *d)
{
	callout_copy6(us->other_dst, conn->dst);
	us->other_port = conn->port;
	us->other_family = (__u8)conn->family;
	us->other_verdict = d->verdict;
	us->other_ns = conn->now;
	us->other_idle_ns = callout_idle_ns(d->idle_s);
}

/* The socket's redirected flow is over (idle, or connect() elsewhere): it is no longer redirected. */
static __always_inline void callout_udp_ended(struct callout_sock *sk, struct callout_udp_sock *us)
{
	us->flow_ns = 0;
	if (!sk || !(sk->role & CALLOUT_ROLE_APP_REDIRECTED))
		return;
	sk->role &= ~(CALLOUT_ROLE_APP_REDIRECTED | CALLOUT_ROLE_CONTEXT);
	sk->records.hop_count = us->in_hops;
	if (!us->in_hops)
		sk->role &= ~CALLOUT_ROLE_RECORDS;
}

/* Application side: a reply from the flow's redirector shows the original destination as its source. */
static __always_inline void callout_udp_restore(struct bpf_sock_addr *ctx, const struct callout_sock *sk,
						const __u16 family)
{
	struct callout_udp_sock *us = bpf_sk_storage_get(&callout_udp_socks, ctx->sk, 0, 0);
	const __u32 *a = (const __u32 *)sk->context.addr;

	if (!us || !us->flow_ns || ctx->user_port != us->proxy_port)
		return;
	if (family == AF_INET) {
		if (sk->context.family != AF_INET || ctx->user_ip4 != us->proxy_addr[0])
			return;
		ctx->user_ip4 = a[0];
	} else if (sk->context.family == AF_INET) {
		/* An AF_INET6 socket's v4-mapped send ran sendmsg4 (udpv6_sendmsg hands it to the
		 * IPv4 path), its reply runs recvmsg6 with the source v4-mapped. */
		if (ctx->user_ip6[0] || ctx->user_ip6[1] || ctx->user_ip6[2] != bpf_htonl(0x0000ffff) ||
		    ctx->user_ip6[3] != us->proxy_addr[0])
			return;
		ctx->user_ip6[3] = a[0];
	} else {
		if (ctx->user_ip6[0] != us->proxy_addr[0] || ctx->user_ip6[1] != us->proxy_addr[1] ||
		    ctx->user_ip6[2] != us->proxy_addr[2] || ctx->user_ip6[3] != us->proxy_addr[3])
			return;
		ctx->user_ip6[0] = a[0];
		ctx->user_ip6[1] = a[1];
		ctx->user_ip6[2] = a[2];
		ctx->user_ip6[3] = a[3];
	}
	ctx->user_port = sk->context.port;
}

/* The application socket a reply from this redirector socket to `ctx`'s source would reach. */
static __always_inline struct bpf_sock *callout_udp_sender(struct bpf_sock_addr *ctx, struct callout_handoff_key *key,
							   const __u16 family)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *me = ctx->sk;
	__u32 app6[4], proxy6[4], fam;

	if (family == AF_INET) {
		t.ipv4.saddr = me->src_ip4;
		t.ipv4.sport = bpf_htons(me->src_port);
		t.ipv4.daddr = ctx->user_ip4;
		t.ipv4.dport = ctx->user_port;
		callout_key_addr(AF_INET, ctx->user_ip4, app6, key->app_addr, &fam);
		callout_key_addr(AF_INET, me->src_ip4, proxy6, key->proxy_addr, &fam);
	} else {
		app6[0] = ctx->user_ip6[0];
		app6[1] = ctx->user_ip6[1];
		app6[2] = ctx->user_ip6[2];
		app6[3] = ctx->user_ip6[3];
		proxy6[0] = me->src_ip6[0];
		proxy6[1] = me->src_ip6[1];
		proxy6[2] = me->src_ip6[2];
		proxy6[3] = me->src_ip6[3];
		__builtin_memcpy(t.ipv6.saddr, proxy6, 16);
		t.ipv6.sport = bpf_htons(me->src_port);
		__builtin_memcpy(t.ipv6.daddr, app6, 16);
		t.ipv6.dport = ctx->user_port;
		callout_key_addr(AF_INET6, 0, app6, key->app_addr, &fam);
		callout_key_addr(AF_INET6, 0, proxy6, key->proxy_addr, &fam);
	}
	key->family = fam;
	key->netns_cookie = bpf_get_netns_cookie(ctx);
	key->app_port = bpf_ntohs(ctx->user_port);
	key->proxy_port = me->src_port;
	return bpf_sk_lookup_udp(ctx, &t, family == AF_INET ? sizeof(t.ipv4) : sizeof(t.ipv6), BPF_F_CURRENT_NETNS,
				 0);
}

/*
 * A connected socket sent again after its flow's idle timeout, and the redirector ended that
 * flow: its sends run no hook, so the redirector's receipt is the first the callout sees of it.
 * The socket stays connected to the redirector, so the flow goes on there, as a new flow (the
 * next generation's id, started now) with the event a classification would have made; its rule
 * is the one that decided the connect.
 */
static __always_inline void callout_udp_restart(struct callout_sock *app_sk, struct callout_udp_sock *us,
						__u64 now)
{
	struct callout_records *rec = &app_sk->records;
	const struct callout_context *c = &app_sk->context;
	struct callout_event *e;
	__u8 last = (rec->hop_count - 1) & (CALLOUT_MAX_HOPS - 1);

	if (!us->in_hops) /* a carried id is the chain's, not this socket's */
		rec->flow_id ^= ((__u64)(__u8)(us->generation - 1) << 56) ^ ((__u64)us->generation << 56);
	us->generation++;
	app_sk->context.time_boot_ns = now;
	e = bpf_ringbuf_reserve(&callout_events, sizeof(*e), 0);
	if (!e) {
		callout_count(CALLOUT_STAT_EVENT_DROPS);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->time_boot_ns = now;
	e->flow_id = rec->flow_id;
	e->cgroup_id = c->cgroup_id;
	e->pid = c->pid;
	e->uid = c->uid;
	__builtin_memcpy(e->comm, c->comm, CALLOUT_COMM_LEN);
	e->family = c->family;
	e->orig_port = c->port;
	__builtin_memcpy(e->orig_addr, c->addr, 16);
	__builtin_memcpy(e->new_addr, us->proxy_addr, 16);
	e->new_port = us->proxy_port;
	e->verdict = CALLOUT_VERDICT_REDIRECT;
	e->state = rec->hops[last].state;
	e->redirector_id = c->redirector_id;
	e->rule_id = c->rule_id;
	e->hop_count = rec->hop_count;
	e->flags = us->in_hops ? CALLOUT_FLAG_HAD_RECORDS : 0;
	e->records_size = CALLOUT_SDK_RECORDS_SIZE(rec->hop_count & 0xf);
	e->context_size = CALLOUT_SDK_CONTEXT_SIZE(c->data_len > CALLOUT_DATA_MAX ? CALLOUT_DATA_MAX : c->data_len);
	e->protocol = IPPROTO_UDP;
	__builtin_memcpy(e->hops, rec->hops, sizeof(e->hops));
	for (int i = 0; i < CALLOUT_MAX_HOPS; i++)
		e->chain_states[i] = i < rec->hop_count ? callout_state_of(rec, rec->hops[i].redirector_id) : 0;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/* Redirector side: publish the flow of the datagram just received for the SDK (see DESIGN above). */
static __always_inline void callout_udp_publish(struct bpf_sock_addr *ctx, const struct callout_sock *mark,
						const __u16 family)
{
	struct callout_handoff_key key = {};
	struct callout_last_inbound *last;
	struct callout_udp_sock *us;
	struct callout_sock *app_sk, *known;
	struct bpf_sock *app;
	__u64 now;
	__u32 slot;

	app = callout_udp_sender(ctx, &key, family);
	if (!app) {
		bpf_map_delete_elem(&callout_udp_flows, &key);
		return;
	}
	app_sk = bpf_sk_storage_get(&callout_socks, app, 0, 0);
	us = bpf_sk_storage_get(&callout_udp_socks, app, 0, 0);
	if (!app_sk || !us || !(app_sk->role & CALLOUT_ROLE_APP_REDIRECTED) || !us->flow_ns ||
	    app_sk->context.redirector_id != mark->context.redirector_id) {
		bpf_sk_release(app);
		bpf_map_delete_elem(&callout_udp_flows, &key);
		return;
	}
	now = bpf_ktime_get_boot_ns();
	known = bpf_map_lookup_elem(&callout_udp_flows, &key);
	/* Only once the redirector ended the flow (redirect_udp_flow_end): a datagram it reads late
	 * is still the flow it was sent in, as the redirector counts it. */
	if (!known && us->handed && !callout_udp_live(us, now))
		callout_udp_restart(app_sk, us, now);
	us->handed = 1;
	us->flow_ns = now; /* the redirector's receipt is the flow's activity too (connected sends run no hook) */
	if (known && known->records.flow_id == app_sk->records.flow_id &&
	    known->context.time_boot_ns == app_sk->context.time_boot_ns) {
		bpf_sk_release(app);
		return; /* a later datagram of a flow already handed over */
	}
	bpf_map_update_elem(&callout_udp_flows, &key, app_sk, BPF_ANY);
	slot = app_sk->redirector_slot;
	last = bpf_map_lookup_elem(&callout_last_inbound, &slot);
	if (last) {
		last->time_boot_ns = now;
		__builtin_memcpy(&last->records, &app_sk->records, sizeof(last->records));
	}
	bpf_sk_release(app);
	callout_count(CALLOUT_STAT_UDP_HANDOFFS);
}

/* recvmsg4/6: a redirector's socket publishes, an application's socket sees the original source. */
static __always_inline int callout_recvmsg(struct bpf_sock_addr *ctx, const __u16 family)
{
	struct callout_sock *sk = bpf_sk_storage_get(&callout_socks, ctx->sk, 0, 0);

	if (!sk)
		return CALLOUT_HOOK_ALLOW;
	if (sk->role & CALLOUT_ROLE_LISTENER)
		callout_udp_publish(ctx, sk, family);
	else if (sk->role & CALLOUT_ROLE_APP_REDIRECTED)
		callout_udp_restore(ctx, sk, family);
	return CALLOUT_HOOK_ALLOW;
}

/*
 * cgroup/sock_release: a UDP socket the callout decided for closes, and with it every flow it
 * has: CLOSED names its redirected flow (if one is live) and carries its cookie, which names the
 * socket's direct flow (TCP's closes come from sockops; UDP has no state changes to watch).
 */
static __always_inline void callout_udp_released(struct bpf_sock *s)
{
	struct callout_udp_sock *us;
	struct callout_sock *sk;
	struct callout_event *e;

	if (s->type != SOCK_DGRAM || s->protocol != IPPROTO_UDP)
		return;
	us = bpf_sk_storage_get(&callout_udp_socks, s, 0, 0);
	if (!us)
		return; /* no hook decided for it: no event named it */
	sk = bpf_sk_storage_get(&callout_socks, s, 0, 0);
	e = callout_closed_event(bpf_get_socket_cookie(s));
	if (!e)
		return;
	e->protocol = IPPROTO_UDP;
	e->family = s->family;
	e->flow_id = e->cookie;
	if (sk && (sk->role & CALLOUT_ROLE_APP_REDIRECTED) && us->flow_ns) {
		e->flow_id = sk->records.flow_id;
		e->family = sk->context.family;
		e->redirector_id = sk->context.redirector_id;
		e->rule_id = sk->context.rule_id;
	}
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

#endif /* REDIRECT_CALLOUT_UDP_BPF_H */

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The callout: classifies every outbound TCP connect() and UDP flow (connect(),
 * or an unconnected socket's sendmsg()) of the cgroup it is attached to,
 * redirects it to a local redirector following the WFP loop contract
 * (DESIGN.md section 4) or refuses it (block rules), hands records and context
 * over to the redirector's socket, and makes getpeername() and a UDP reply's
 * source show the original destination.
 *
 * Thin entry points per hook call small inline functions: maps and helpers in
 * callout_maps.bpf.h, matching in callout_match.bpf.h, the sockops hand-off in
 * callout_handoff.bpf.h, UDP flows (and the DESIGN note on their hand-off) in
 * callout_udp.bpf.h. Everything shared with user space is in callout_abi.h.
 */
#include "callout_maps.bpf.h"
#include "callout_match.bpf.h"
#include "callout_handoff.bpf.h"
#include "callout_udp.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Events are reserved in the ring buffer, which has no value type: this keeps
 * struct callout_event in the object's BTF, where tst_abi_layout checks it. */
struct callout_event *callout_event_btf __attribute__((unused));

/* Step 1: who connects where. */
static __always_inline void callout_conn_fill(struct bpf_sock_addr *ctx, struct callout_conn *conn)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	conn->cookie = bpf_get_socket_cookie(ctx);
	conn->netns = bpf_get_netns_cookie(ctx);
	conn->cgroup_id = bpf_get_current_cgroup_id();
	conn->now = bpf_ktime_get_boot_ns();
	conn->tgid = pid_tgid >> 32;
	conn->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(conn->comm, sizeof(conn->comm));
}

/* Step 2: the records this socket carries (SET by a proxy, or repaired); returns event flags. */
static __always_inline __u8 callout_load_records(struct callout_sock *sk, const struct callout_udp_sock *us,
						 const struct callout_conn *conn, struct callout_records *rec)
{
	/* A UDP socket's live flow holds the records it carried plus that flow's hop: only the
	 * carried ones (the first in_hops) count for another destination. */
	__u8 carried = sk && us && (sk->role & CALLOUT_ROLE_APP_REDIRECTED) ? us->in_hops : CALLOUT_MAX_HOPS + 1;
	__u8 flags = 0;

	if (sk && (sk->role & CALLOUT_ROLE_RECORDS) && carried) {
		__builtin_memcpy(rec, &sk->records, sizeof(*rec));
		if (carried < rec->hop_count)
			rec->hop_count = carried;
		flags = CALLOUT_FLAG_HAD_RECORDS;
	} else if (callout_repair_records(conn, rec)) {
		flags = CALLOUT_FLAG_HAD_RECORDS | CALLOUT_FLAG_RECORDS_MISSING;
		callout_count(CALLOUT_STAT_RECORDS_MISSING);
	} else {
		__builtin_memset(rec, 0, sizeof(*rec));
	}
	if (rec->hop_count > CALLOUT_MAX_HOPS)
		rec->hop_count = CALLOUT_MAX_HOPS;
	return flags;
}

/*
 * Step 3: the verdict. The first rule in order that matches decides; a redirector that cannot
 * take the connection now (its engine stalled, its listener unverified) is passed over and the
 * walk goes on. Fills w->d; for REDIRECT, d->redirector_slot names the redirector.
 */
static __always_inline void callout_decide(struct callout_walk *w)
{
	struct callout_decision *d = w->d;
	struct callout_config *cfg;
	__u32 zero = 0;

	bpf_loop(CALLOUT_MAX_REDIRECTORS, callout_walk_listener, w, 0);
	if (d->verdict == CALLOUT_VERDICT_LOCAL)
		return;
	cfg = bpf_map_lookup_elem(&callout_config, &zero);
	if (!cfg)
		return;
	d->table_base = cfg->active_table ? CALLOUT_MAX_RULES : 0;
	d->count = cfg->rule_count[cfg->active_table ? 1 : 0];
	if (d->count > CALLOUT_MAX_RULES)
		d->count = CALLOUT_MAX_RULES;
	bpf_loop(d->count, callout_walk_rule, w, 0);
	if (d->verdict != CALLOUT_VERDICT_DIRECT)
		return;
	if (d->passed) {
		/* Nothing else took it: say which redirector could not, and why. */
		d->verdict = d->passed;
		d->redirector_id = d->passed_id;
		callout_count(d->passed == CALLOUT_VERDICT_STALLED ? CALLOUT_STAT_STALLED : CALLOUT_STAT_UNVERIFIED);
	} else if (d->matched) {
		d->verdict = CALLOUT_VERDICT_CHAIN_END;
	}
}

/* Step 4a: what the redirector needs to reach the original destination. */
static __always_inline void callout_fill_context(const struct callout_conn *conn,
						 const struct callout_decision *w, const struct callout_redirector *rd,
						 struct callout_context *c)
{
	c->family = conn->orig_family;
	c->port = bpf_htons(conn->port);
	if (conn->orig_family == AF_INET) {
		__builtin_memset(c->addr, 0, 16);
		__builtin_memcpy(c->addr, &conn->dst[0], 4);
	} else if (conn->mapped) {
		__u32 a[4] = { 0, 0, bpf_htonl(0x0000ffff), conn->dst[0] };

		__builtin_memcpy(c->addr, a, 16);
	} else {
		__builtin_memcpy(c->addr, conn->dst, 16);
	}
	c->pid = conn->tgid;
	c->uid = conn->uid;
	__builtin_memcpy(c->comm, conn->comm, CALLOUT_COMM_LEN);
	c->cgroup_id = conn->cgroup_id;
	c->rule_id = w->rule_id;
	c->redirector_id = rd->id;
	c->time_boot_ns = conn->now;
	c->data_len = rd->data_len > CALLOUT_DATA_MAX ? CALLOUT_DATA_MAX : rd->data_len;
	__builtin_memcpy(c->data, rd->data, CALLOUT_DATA_MAX);
}

/*
 * Step 4b: send the connect to the redirector's listener; new_dst/new_port say where.
 * orig_family is a constant of each entry point: connect4 may not touch user_ip6, and the
 * compiler drops the other branch only when it knows the family.
 */
static __always_inline void callout_rewrite(struct bpf_sock_addr *ctx, const struct callout_conn *conn,
					    const struct callout_redirector *rd, __u32 new_dst[4], __u16 *new_port,
					    const __u16 orig_family)
{
	__u16 port4 = callout_redirector_port(rd, AF_INET, conn->protocol);
	__u16 port6 = callout_redirector_port(rd, AF_INET6, conn->protocol);

	if (orig_family == AF_INET) {
		ctx->user_ip4 = rd->addr4;
		ctx->user_port = port4;
		new_dst[0] = rd->addr4;
		*new_port = port4;
	} else if (conn->mapped) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = rd->addr4;
		ctx->user_port = port4;
		new_dst[2] = bpf_htonl(0x0000ffff);
		new_dst[3] = rd->addr4;
		*new_port = port4;
	} else {
		const __u32 *a = (const __u32 *)rd->addr6;

		ctx->user_ip6[0] = a[0];
		ctx->user_ip6[1] = a[1];
		ctx->user_ip6[2] = a[2];
		ctx->user_ip6[3] = a[3];
		ctx->user_port = port6;
		__builtin_memcpy(new_dst, a, 16);
		*new_port = port6;
	}
}

/* Step 4: redirect. Appends the hop to the records, attaches records and context, rewrites. */
static __always_inline int callout_redirect(struct bpf_sock_addr *ctx, const struct callout_conn *conn,
					    const struct callout_decision *w, struct callout_records *rec, __u32 new_dst[4],
					    __u16 *new_port, __u16 *context_size, __u8 generation, const __u16 orig_family)
{
	const struct callout_redirector *rd;
	struct callout_sock *sk;
	__u32 slot = w->redirector_slot;
	__u32 at = rec->hop_count & (CALLOUT_MAX_HOPS - 1);

	rd = bpf_map_lookup_elem(&callout_redirectors, &slot);
	if (!rd)
		return 0;
	sk = bpf_sk_storage_get(&callout_socks, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!sk)
		return 0;
	/* A UDP socket's later flows are flows of their own: the generation keeps their ids apart. */
	if (!rec->flow_id)
		rec->flow_id = conn->cookie ^ ((__u64)generation << 56);
	rec->hops[at].redirector_id = rd->id;
	rec->hops[at].state = w->state;
	rec->hops[at].flags = 0;
	rec->hop_count++;
	__builtin_memcpy(&sk->records, rec, sizeof(*rec));
	callout_fill_context(conn, w, rd, &sk->context);
	sk->role = CALLOUT_ROLE_RECORDS | CALLOUT_ROLE_CONTEXT | CALLOUT_ROLE_APP_REDIRECTED;
	sk->redirector_slot = slot;
	*context_size = CALLOUT_SDK_CONTEXT_SIZE(sk->context.data_len);
	callout_rewrite(ctx, conn, rd, new_dst, new_port, orig_family);
	callout_count(CALLOUT_STAT_REDIRECTED);
	return 1;
}

static __always_inline void callout_emit(const struct callout_conn *conn, const struct callout_decision *w,
					 const struct callout_records *rec, __u8 flags, __u32 new_dst[4],
					 __u16 new_port, __u16 context_size)
{
	struct callout_event *e = bpf_ringbuf_reserve(&callout_events, sizeof(*e), 0);

	if (!e) {
		callout_count(CALLOUT_STAT_EVENT_DROPS);
		return;
	}
	e->time_boot_ns = conn->now;
	e->cookie = conn->cookie;
	e->flow_id = rec->flow_id ? rec->flow_id : conn->cookie;
	e->cgroup_id = conn->cgroup_id;
	e->pid = conn->tgid;
	e->uid = conn->uid;
	__builtin_memcpy(e->comm, conn->comm, CALLOUT_COMM_LEN);
	e->family = conn->orig_family;
	e->orig_port = bpf_htons(conn->port);
	e->new_port = new_port;
	e->verdict = w->verdict;
	e->state = w->state;
	__builtin_memcpy(e->orig_addr, conn->dst, 16);
	__builtin_memcpy(e->new_addr, new_dst, 16);
	e->redirector_id = w->redirector_id;
	e->rule_id = w->rule_id;
	e->hop_count = rec->hop_count;
	e->flags = flags;
	e->records_size = rec->hop_count ? CALLOUT_SDK_RECORDS_SIZE(rec->hop_count) : 0;
	e->context_size = context_size;
	e->protocol = conn->protocol;
	e->reserved = 0;
	__builtin_memcpy(e->hops, rec->hops, sizeof(e->hops));
	for (int i = 0; i < CALLOUT_MAX_HOPS; i++)
		e->chain_states[i] = i < rec->hop_count ? callout_state_of(rec, rec->hops[i].redirector_id) : 0;
	/*
	 * Waking the consumer per event costs more than the classification itself
	 * (a wakeup and a context switch per connect). Consumers drain on a short
	 * timer; wake them early only when a quarter of the ring is pending.
	 */
	bpf_ringbuf_submit(e, bpf_ringbuf_query(&callout_events, BPF_RB_AVAIL_DATA) >= CALLOUT_EVENTS_WAKE_BYTES
				      ? BPF_RB_FORCE_WAKEUP
				      : BPF_RB_NO_WAKEUP);
}

/* A connect that was not redirected keeps repaired records, so the next hop sees the chain. */
static __always_inline void callout_keep_repaired(struct bpf_sock_addr *ctx, const struct callout_records *rec)
{
	struct callout_sock *sk = bpf_sk_storage_get(&callout_socks, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (sk) {
		__builtin_memcpy(&sk->records, rec, sizeof(*rec));
		sk->role |= CALLOUT_ROLE_RECORDS;
	}
}

/*
 * The decision for one connect(), or for the first datagram of a UDP flow: `us` is the UDP
 * socket's state (NULL for TCP), `live` whether its redirected flow is still going on.
 */
static __always_inline int callout_classify(struct bpf_sock_addr *ctx, struct callout_conn *conn,
					    struct callout_udp_sock *us, int live, const __u16 orig_family)
{
	struct callout_decision d = {};
	struct callout_walk w = {};
	/* On this program's own stack: a per-CPU scratch would be shared with a connect that
	 * preempts this one on the same CPU (preempt=full kernels) and mix their chains. */
	struct callout_records records = {};
	struct callout_records *rec = &records;
	struct callout_sock *sk;
	__u32 new_dst[4] = {};
	__u16 new_port = 0, context_size = 0;
	__u8 flags, in_hops;

	sk = bpf_sk_storage_get(&callout_socks, ctx->sk, 0, 0);
	if (us && sk && (sk->role & CALLOUT_ROLE_LISTENER))
		return CALLOUT_HOOK_ALLOW; /* a redirector's reply to an application is no flow */
	callout_conn_fill(ctx, conn);
	callout_count(CALLOUT_STAT_CLASSIFIED);
	if (us && !live)
		callout_udp_ended(sk, us);
	flags = callout_load_records(sk, us, conn, rec);
	in_hops = rec->hop_count;

	w.ctx = ctx;
	w.conn = conn;
	w.rec = rec;
	w.d = &d;
	callout_decide(&w);
	if (d.verdict == CALLOUT_VERDICT_REDIRECT && us && live) {
		d.verdict = CALLOUT_VERDICT_BUSY;
		callout_count(CALLOUT_STAT_UDP_BUSY);
	}
	if (d.verdict == CALLOUT_VERDICT_REDIRECT && rec->hop_count >= CALLOUT_MAX_HOPS) {
		d.verdict = CALLOUT_VERDICT_HOP_CAP;
		callout_count(CALLOUT_STAT_HOP_CAP);
	}
	if (d.verdict == CALLOUT_VERDICT_REDIRECT) {
		if (!callout_redirect(ctx, conn, &d, rec, new_dst, &new_port, &context_size, us ? us->generation : 0,
				      orig_family))
			return CALLOUT_HOOK_ALLOW;
		if (us)
			callout_udp_started(us, conn, &d, in_hops, new_dst, new_port);
	} else {
		if (flags & CALLOUT_FLAG_RECORDS_MISSING)
			callout_keep_repaired(ctx, rec);
		__builtin_memcpy(new_dst, conn->dst, 16);
		new_port = bpf_htons(conn->port);
		if (us)
			callout_udp_other(us, conn, &d);
	}
	if (d.verdict == CALLOUT_VERDICT_BLOCK)
		callout_count(CALLOUT_STAT_BLOCKED);
	callout_emit(conn, &d, rec, flags, new_dst, new_port, context_size);
	/* A rejecting sock_addr hook fails the call with EPERM. */
	return d.verdict == CALLOUT_VERDICT_BLOCK ? CALLOUT_HOOK_REJECT : CALLOUT_HOOK_ALLOW;
}

/* The destination an AF_INET6 socket asked for; rules see a v4-mapped one as IPv4. */
static __always_inline void callout_conn6(struct bpf_sock_addr *ctx, struct callout_conn *conn)
{
	__u32 dst[4];

	dst[0] = ctx->user_ip6[0];
	dst[1] = ctx->user_ip6[1];
	dst[2] = ctx->user_ip6[2];
	dst[3] = ctx->user_ip6[3];
	conn->port = bpf_ntohs(ctx->user_port);
	conn->orig_family = AF_INET6;
	if (callout_is_v4_mapped(dst)) {
		conn->dst[0] = dst[3];
		conn->family = AF_INET;
		conn->mapped = 1;
	} else {
		callout_copy6(conn->dst, dst);
		conn->family = AF_INET6;
	}
}

static __always_inline void callout_conn4(struct bpf_sock_addr *ctx, struct callout_conn *conn)
{
	conn->dst[0] = ctx->user_ip4;
	conn->port = bpf_ntohs(ctx->user_port);
	conn->family = AF_INET;
	conn->orig_family = AF_INET;
}

static __always_inline int callout_is_udp(struct bpf_sock_addr *ctx)
{
	return ctx->type == SOCK_DGRAM && ctx->protocol == IPPROTO_UDP;
}

/* connect(): TCP, and UDP (a connected socket's flow is decided here, its sends run no hook). */
static __always_inline int callout_connect(struct bpf_sock_addr *ctx, struct callout_conn *conn,
					   const __u16 orig_family)
{
	struct callout_udp_sock *us = 0;

	if (ctx->type == SOCK_STREAM) {
		conn->protocol = IPPROTO_TCP;
	} else if (callout_is_udp(ctx)) {
		conn->protocol = IPPROTO_UDP;
		us = bpf_sk_storage_get(&callout_udp_socks, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!us)
			return CALLOUT_HOOK_ALLOW;
	} else {
		return CALLOUT_HOOK_ALLOW;
	}
	/* A connect() starts a new flow: whatever the socket had ends here. */
	return callout_classify(ctx, conn, us, 0, orig_family);
}

/* An unconnected UDP socket's datagram: a flow it has goes on as decided, any other is classified. */
static __always_inline int callout_sendmsg(struct bpf_sock_addr *ctx, struct callout_conn *conn,
					   const __u16 orig_family)
{
	struct callout_udp_sock *us;
	__u64 now;
	int known;

	if (!callout_is_udp(ctx))
		return CALLOUT_HOOK_ALLOW;
	conn->protocol = IPPROTO_UDP;
	us = bpf_sk_storage_get(&callout_udp_socks, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!us)
		return CALLOUT_HOOK_ALLOW;
	now = bpf_ktime_get_boot_ns();
	known = callout_udp_known(ctx, us, conn, now, orig_family);
	if (known >= 0)
		return known;
	return callout_classify(ctx, conn, us, callout_udp_live(us, now), orig_family);
}

SEC("cgroup/connect4")
int callout_connect4(struct bpf_sock_addr *ctx)
{
	struct callout_conn conn = {};

	callout_conn4(ctx, &conn);
	return callout_connect(ctx, &conn, AF_INET);
}

SEC("cgroup/connect6")
int callout_connect6(struct bpf_sock_addr *ctx)
{
	struct callout_conn conn = {};

	callout_conn6(ctx, &conn);
	return callout_connect(ctx, &conn, AF_INET6);
}

SEC("cgroup/sendmsg4")
int callout_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct callout_conn conn = {};

	callout_conn4(ctx, &conn);
	return callout_sendmsg(ctx, &conn, AF_INET);
}

SEC("cgroup/sendmsg6")
int callout_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct callout_conn conn = {};

	callout_conn6(ctx, &conn);
	return callout_sendmsg(ctx, &conn, AF_INET6);
}

SEC("cgroup/recvmsg4")
int callout_recvmsg4(struct bpf_sock_addr *ctx)
{
	return callout_recvmsg(ctx, AF_INET);
}

SEC("cgroup/recvmsg6")
int callout_recvmsg6(struct bpf_sock_addr *ctx)
{
	return callout_recvmsg(ctx, AF_INET6);
}

/* The application's getpeername() shows where it asked to go, not the redirector. */
SEC("cgroup/getpeername4")
int callout_getpeername4(struct bpf_sock_addr *ctx)
{
	struct callout_sock *sk = bpf_sk_storage_get(&callout_socks, ctx->sk, 0, 0);

	if (!sk || !(sk->role & CALLOUT_ROLE_APP_REDIRECTED) || sk->context.family != AF_INET)
		return CALLOUT_HOOK_ALLOW;
	ctx->user_ip4 = *(__u32 *)sk->context.addr;
	ctx->user_port = sk->context.port;
	return CALLOUT_HOOK_ALLOW;
}

SEC("cgroup/getpeername6")
int callout_getpeername6(struct bpf_sock_addr *ctx)
{
	struct callout_sock *sk = bpf_sk_storage_get(&callout_socks, ctx->sk, 0, 0);
	__u32 *a;

	if (!sk || !(sk->role & CALLOUT_ROLE_APP_REDIRECTED) || sk->context.family != AF_INET6)
		return CALLOUT_HOOK_ALLOW;
	a = (__u32 *)sk->context.addr;
	ctx->user_ip6[0] = a[0];
	ctx->user_ip6[1] = a[1];
	ctx->user_ip6[2] = a[2];
	ctx->user_ip6[3] = a[3];
	ctx->user_port = sk->context.port;
	return CALLOUT_HOOK_ALLOW;
}

SEC("cgroup/sock_release")
int callout_sock_release(struct bpf_sock *s)
{
	callout_udp_released(s);
	return CALLOUT_HOOK_ALLOW;
}

SEC("sockops")
int callout_sockops(struct bpf_sock_ops *skops)
{
	/* sockops runs about nine times per connection: switch on the operation first. */
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		callout_park(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		callout_take(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		callout_closed(skops);
		break;
	default:
		break;
	}
	return CALLOUT_SOCKOPS_DONE;
}

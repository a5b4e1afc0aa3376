/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Rule matching and the loop contract of the callout: the state of each
 * redirector for a socket, the ordered rule walk, and records repair for a
 * proxy that forgot SET. Included once, by callout.bpf.c.
 */
#ifndef REDIRECT_CALLOUT_MATCH_BPF_H
#define REDIRECT_CALLOUT_MATCH_BPF_H

#include "callout_maps.bpf.h"
#include "callout_rule_match.h"

/* What the rule walk decided: scalars only, so a global function may fill it. */
struct callout_decision {
	__u32 table_base;      /* in: the live rule table */
	__u32 count;           /* in: its rule count */
	__u32 rule_id;
	__u32 redirector_slot;
	__u32 redirector_id;
	__u32 passed_id;       /* the last redirector passed over */
	__u8 verdict;
	__u8 state;
	__u8 matched;          /* some redirect rule matched (for CHAIN_END) */
	__u8 passed;           /* why that redirector could not take it (a verdict), or 0 */
	__u32 idle_s;          /* the deciding rule's UDP idle timeout (0: the default) */
};

/* What the bpf_loop callbacks see. */
struct callout_walk {
	struct bpf_sock_addr *ctx;
	const struct callout_conn *conn;
	const struct callout_records *rec;
	struct callout_decision *d;
};

/* The redirector's endpoint port (network order) for a family and protocol; 0 = none. */
static __always_inline __u16 callout_redirector_port(const struct callout_redirector *rd, __u32 family, __u8 protocol)
{
	if (protocol == IPPROTO_UDP)
		return family == AF_INET ? rd->udp_port4 : rd->udp_port6;
	return family == AF_INET ? rd->port4 : rd->port6;
}

/* A redirector can take this connection: active, same network namespace, a listener of the right family. */
static __always_inline int callout_redirector_usable(const struct callout_redirector *rd,
						     const struct callout_conn *conn)
{
	if (!(rd->flags & CALLOUT_REDIRECTOR_ACTIVE))
		return 0;
	if (rd->netns_cookie && rd->netns_cookie != conn->netns)
		return 0;
	return callout_redirector_port(rd, conn->family, conn->protocol) != 0;
}

/*
 * The socket that would accept a connection to rd's listener of `family` carries the mark the
 * engine set for rd. A port that went down or changed hands has no such socket behind it: an
 * unprivileged process that binds a redirector's port while its proxy restarts gets nothing.
 */
static __always_inline int callout_listener_verified(struct bpf_sock_addr *ctx, const struct callout_redirector *rd,
						     __u32 family, __u8 protocol)
{
	struct bpf_sock_tuple t = {};
	struct callout_sock *mark;
	struct bpf_sock *sk;
	int ok;

	__u32 size = family == AF_INET ? sizeof(t.ipv4) : sizeof(t.ipv6);

	if (family == AF_INET) {
		t.ipv4.daddr = rd->addr4;
		t.ipv4.dport = callout_redirector_port(rd, AF_INET, protocol);
	} else {
		__builtin_memcpy(t.ipv6.daddr, rd->addr6, 16);
		t.ipv6.dport = callout_redirector_port(rd, AF_INET6, protocol);
	}
	if (protocol == IPPROTO_UDP)
		sk = bpf_sk_lookup_udp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	else
		sk = bpf_sk_lookup_tcp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	mark = bpf_sk_storage_get(&callout_socks, sk, 0, 0);
	ok = mark && (mark->role & CALLOUT_ROLE_LISTENER) && mark->context.redirector_id == rd->id;
	bpf_sk_release(sk);
	return ok;
}

static __always_inline int callout_unavailable(struct bpf_sock_addr *ctx, const struct callout_redirector *rd,
					       __u32 family, __u8 protocol, __u64 now)
{
	__u64 deadline = callout_stall_deadline_ns;

	if (!(rd->flags & CALLOUT_REDIRECTOR_EXTERNAL) && deadline && now > callout_heartbeat_ns + deadline)
		return CALLOUT_VERDICT_STALLED;
	if ((rd->flags & CALLOUT_REDIRECTOR_VERIFY_LISTENER) && !callout_listener_verified(ctx, rd, family, protocol))
		return CALLOUT_VERDICT_UNVERIFIED;
	return 0;
}


/*
 * One rule of the walk: 1 when it decides, 0 to go on. A global function: the verifier checks it
 * once, not again for every state of the loop around it (inlined, the loop's states multiplied
 * with every field it writes and connect6 took over half the verifier's budget).
 */
__noinline int callout_rule_at(struct bpf_sock_addr *ctx, const struct callout_conn *conn,
			       const struct callout_records *rec, struct callout_decision *d, __u32 index)
{
	const struct callout_redirector *rd;
	struct callout_rule *r;
	__u32 key, slot;
	__u8 state, passed;

	if (!ctx || !conn || !rec || !d || index >= d->count || index >= CALLOUT_MAX_RULES)
		return 1;
	key = d->table_base + index;
	r = bpf_map_lookup_elem(&callout_rules, &key);
	if (!r || !callout_rule_match(r, conn))
		return 0;
	if (r->action == CALLOUT_ACTION_BYPASS || r->action == CALLOUT_ACTION_BLOCK) {
		d->verdict = r->action == CALLOUT_ACTION_BLOCK ? CALLOUT_VERDICT_BLOCK : CALLOUT_VERDICT_BYPASS;
		d->rule_id = r->id;
		d->idle_s = r->idle_timeout_s;
		return 1;
	}
	slot = r->redirector_slot;
	rd = bpf_map_lookup_elem(&callout_redirectors, &slot);
	if (!rd || !callout_redirector_usable(rd, conn))
		return 0;
	state = callout_state_of(rec, rd->id);
	if (!d->matched) {
		/* Report the first matching redirector when nobody redirects. */
		d->matched = 1;
		d->rule_id = r->id;
		d->redirector_id = rd->id;
		d->state = state;
	}
	if (!callout_state_may_redirect(state))
		return 0;
	passed = (__u8)callout_unavailable(ctx, rd, conn->family == AF_INET ? AF_INET : AF_INET6, conn->protocol,
					    conn->now);
	if (passed) {
		/* Passed over (its engine stalled, its listener unverified): later rules may still take it. */
		d->passed = passed;
		d->passed_id = rd->id;
		return 0;
	}
	d->verdict = CALLOUT_VERDICT_REDIRECT;
	d->rule_id = r->id;
	d->idle_s = r->idle_timeout_s;
	d->redirector_slot = slot;
	d->redirector_id = rd->id;
	d->state = state;
	return 1;
}

static long callout_walk_rule(__u32 index, void *data)
{
	struct callout_walk *w = data;

	return callout_rule_at(w->ctx, w->conn, w->rec, w->d, index) ? 1 : 0;
}

/* Is the destination one of the redirector listeners (the proxy's own port)? */
static long callout_walk_listener(__u32 slot, void *data)
{
	struct callout_walk *w = data;
	const struct callout_conn *conn = w->conn;
	const struct callout_redirector *rd = bpf_map_lookup_elem(&callout_redirectors, &slot);
	__u16 port;

	if (!rd || !(rd->flags & CALLOUT_REDIRECTOR_ACTIVE))
		return 0;
	if (rd->netns_cookie && rd->netns_cookie != conn->netns)
		return 0;
	port = callout_redirector_port(rd, conn->family, conn->protocol);
	if (!port || bpf_ntohs(port) != conn->port)
		return 0;
	if (conn->family == AF_INET) {
		if (rd->addr4 == conn->dst[0]) {
			w->d->verdict = CALLOUT_VERDICT_LOCAL;
			return 1;
		}
	} else {
		const __u32 *a = (const __u32 *)rd->addr6;

		if (a[0] == conn->dst[0] && a[1] == conn->dst[1] && a[2] == conn->dst[2] &&
		    a[3] == conn->dst[3]) {
			w->d->verdict = CALLOUT_VERDICT_LOCAL;
			return 1;
		}
	}
	return 0;
}

/* Most recent records a redirector owned by `tgid` accepted (for repair). */
struct callout_repair {
	__u32 tgid;
	__u32 found_slot;
	__u32 found_id;
	__u64 found_time;
	__u8 found;
};

static long callout_walk_owner(__u32 slot, void *data)
{
	struct callout_repair *p = data;
	const struct callout_redirector *rd = bpf_map_lookup_elem(&callout_redirectors, &slot);
	const struct callout_last_inbound *in;
	__u64 t = 0;

	if (!rd || !(rd->flags & CALLOUT_REDIRECTOR_ACTIVE) || rd->owner_tgid != p->tgid)
		return 0;
	in = bpf_map_lookup_elem(&callout_last_inbound, &slot);
	if (in)
		t = in->time_boot_ns;
	if (!p->found || t > p->found_time) {
		p->found = 1;
		p->found_slot = slot;
		p->found_id = rd->id;
		p->found_time = t;
	}
	return 0;
}

/*
 * A redirector's own connect that carries no records would start a fresh
 * chain and loop: give it the records of that redirector's latest accepted
 * connection (which end with the redirector itself), or [redirector].
 */
static __always_inline int callout_repair_records(const struct callout_conn *conn, struct callout_records *rec)
{
	struct callout_repair p = { .tgid = conn->tgid };
	const struct callout_last_inbound *in;
	__u32 n;

	bpf_loop(CALLOUT_MAX_REDIRECTORS, callout_walk_owner, &p, 0);
	if (!p.found)
		return 0;
	in = bpf_map_lookup_elem(&callout_last_inbound, &p.found_slot);
	n = in ? in->records.hop_count : 0;
	if (in && n > 0 && n <= CALLOUT_MAX_HOPS &&
	    in->records.hops[(n - 1) & (CALLOUT_MAX_HOPS - 1)].redirector_id == p.found_id) {
		__builtin_memcpy(rec, &in->records, sizeof(*rec));
	} else {
		__builtin_memset(rec, 0, sizeof(*rec));
		rec->flow_id = conn->cookie;
		rec->hop_count = 1;
		rec->hops[0].redirector_id = p.found_id;
		rec->hops[0].state = CALLOUT_STATE_NOT_REDIRECTED;
	}
	rec->flags |= CALLOUT_FLAG_RECORDS_MISSING;
	rec->hops[(rec->hop_count - 1) & (CALLOUT_MAX_HOPS - 1)].flags |= CALLOUT_FLAG_RECORDS_MISSING;
	return 1;
}

#endif /* REDIRECT_CALLOUT_MATCH_BPF_H */

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Rule matching and the loop contract of the callout: the state of each
 * redirector for a socket, the ordered rule walk, and records repair for a
 * proxy that forgot SET. Included once, by callout.bpf.c.
 */
#ifndef REDIRECT_CALLOUT_MATCH_BPF_H
#define REDIRECT_CALLOUT_MATCH_BPF_H

#include "callout_maps.bpf.h"

/* Destination of one connect() and who makes it. */
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
	if (r->protocol && r->protocol != IPPROTO_TCP)
		return 0;
	if ((r->match & CALLOUT_MATCH_UID) && r->uid != conn->uid)
		return 0;
	if ((r->match & CALLOUT_MATCH_CGROUP) && r->cgroup_id != conn->cgroup_id)
		return 0;
	if ((r->match & CALLOUT_MATCH_COMM) && !callout_comm_match(r, conn))
		return 0;
	return callout_ports_match(r, conn) && callout_destination_match(r, conn);
}

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
};

/* What the bpf_loop callbacks see. */
struct callout_walk {
	struct bpf_sock_addr *ctx;
	const struct callout_conn *conn;
	const struct callout_records *rec;
	struct callout_decision *d;
};

/* A redirector can take this connection: active, same network namespace, a listener of the right family. */
static __always_inline int callout_redirector_usable(const struct callout_redirector *rd,
						     const struct callout_conn *conn)
{
	if (!(rd->flags & CALLOUT_REDIRECTOR_ACTIVE))
		return 0;
	if (rd->netns_cookie && rd->netns_cookie != conn->netns)
		return 0;
	if (conn->family == AF_INET)
		return rd->port4 != 0;
	return rd->port6 != 0;
}

/* Why the redirector a rule chose cannot take the connection now (a verdict), or 0 if it can.
 * Defined by callout.bpf.c: it looks at sockets. */
static __always_inline int callout_unavailable(struct bpf_sock_addr *ctx, const struct callout_redirector *rd,
					       __u32 family, __u64 now);

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
	if (r->action == CALLOUT_ACTION_BYPASS) {
		d->verdict = CALLOUT_VERDICT_BYPASS;
		d->rule_id = r->id;
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
	passed = (__u8)callout_unavailable(ctx, rd, conn->family == AF_INET ? AF_INET : AF_INET6, conn->now);
	if (passed) {
		/* Passed over (its engine stalled, its listener unverified): later rules may still take it. */
		d->passed = passed;
		d->passed_id = rd->id;
		return 0;
	}
	d->verdict = CALLOUT_VERDICT_REDIRECT;
	d->rule_id = r->id;
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

	if (!rd || !(rd->flags & CALLOUT_REDIRECTOR_ACTIVE))
		return 0;
	if (rd->netns_cookie && rd->netns_cookie != conn->netns)
		return 0;
	if (conn->family == AF_INET) {
		if (rd->port4 && bpf_ntohs(rd->port4) == conn->port && rd->addr4 == conn->dst[0]) {
			w->d->verdict = CALLOUT_VERDICT_LOCAL;
			return 1;
		}
	} else if (rd->port6 && bpf_ntohs(rd->port6) == conn->port) {
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

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The callout: classifies every outbound TCP connect() of the cgroup it is
 * attached to, redirects it to a local redirector following the WFP loop
 * contract (DESIGN.md section 4), hands records and context over to the
 * redirector's accepted socket, and makes getpeername() show the original
 * destination.
 *
 * Thin entry points per hook call small inline functions. Everything shared
 * with user space is in callout_abi.h.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
/* AF_INET, AF_INET6, SOCK_STREAM without libc headers (BPF target). */
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "callout_abi.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Events are reserved in the ring buffer, which has no value type: this keeps
 * struct callout_event in the object's BTF, where tst_abi_layout checks it. */
struct callout_event *callout_event_btf __attribute__((unused));

/* Per-socket records and context; the one map user space pins (SDK). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct callout_sock);
} callout_socks SEC(".maps");

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

/* Scratch for building a socket's storage value off the 512-byte stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct callout_records);
} callout_scratch SEC(".maps");

static __always_inline void callout_count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&callout_stats, &stat);

	if (v)
		*v += 1;
}

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

static __always_inline int callout_rule_match(const struct callout_rule *r, const struct callout_conn *conn)
{
	int hit;

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
	if (r->match & CALLOUT_MATCH_COMM) {
		for (int i = 0; i < CALLOUT_COMM_LEN; i++) {
			if (r->comm[i] != conn->comm[i])
				return 0;
			if (!r->comm[i])
				break;
		}
	}
	if (r->port_count) {
		hit = 0;
		for (int i = 0; i < CALLOUT_MAX_PORT_RANGES; i++) {
			if (i >= r->port_count)
				break;
			if (conn->port >= r->ports[i].first && conn->port <= r->ports[i].last) {
				hit = 1;
				break;
			}
		}
		if (!hit)
			return 0;
	}
	if (r->cidr_count) {
		hit = 0;
		for (int i = 0; i < CALLOUT_MAX_CIDRS; i++) {
			if (i >= r->cidr_count)
				break;
			if (callout_cidr_match(&r->cidrs[i], conn)) {
				hit = 1;
				break;
			}
		}
		if (!hit)
			return 0;
	}
	return 1;
}

/* Walk state shared with the bpf_loop callback. */
struct callout_walk {
	const struct callout_conn *conn;
	const struct callout_records *rec;
	__u32 table_base;
	__u32 count;
	/* results */
	__u32 rule_id;
	__u32 redirector_slot;
	__u32 redirector_id;
	__u8 verdict;
	__u8 state;
	__u8 matched;  /* some redirect rule matched (for CHAIN_END) */
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

static long callout_walk_rule(__u32 index, void *data)
{
	struct callout_walk *w = data;
	const struct callout_redirector *rd;
	struct callout_rule *r;
	__u32 key, slot;
	__u8 state;

	if (index >= w->count)
		return 1;
	key = w->table_base + index;
	r = bpf_map_lookup_elem(&callout_rules, &key);
	if (!r || !callout_rule_match(r, w->conn))
		return 0;
	if (r->action == CALLOUT_ACTION_BYPASS) {
		w->verdict = CALLOUT_VERDICT_BYPASS;
		w->rule_id = r->id;
		return 1;
	}
	slot = r->redirector_slot;
	rd = bpf_map_lookup_elem(&callout_redirectors, &slot);
	if (!rd || !callout_redirector_usable(rd, w->conn))
		return 0;
	state = callout_state_of(w->rec, rd->id);
	if (!w->matched) {
		/* Report the first matching redirector when nobody redirects. */
		w->matched = 1;
		w->rule_id = r->id;
		w->redirector_id = rd->id;
		w->state = state;
	}
	if (state != CALLOUT_STATE_NOT_REDIRECTED && state != CALLOUT_STATE_REDIRECTED_BY_OTHER)
		return 0;
	w->verdict = CALLOUT_VERDICT_REDIRECT;
	w->rule_id = r->id;
	w->redirector_slot = slot;
	w->redirector_id = rd->id;
	w->state = state;
	return 1;
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
			w->verdict = CALLOUT_VERDICT_LOCAL;
			return 1;
		}
	} else if (rd->port6 && bpf_ntohs(rd->port6) == conn->port) {
		const __u32 *a = (const __u32 *)rd->addr6;

		if (a[0] == conn->dst[0] && a[1] == conn->dst[1] && a[2] == conn->dst[2] &&
		    a[3] == conn->dst[3]) {
			w->verdict = CALLOUT_VERDICT_LOCAL;
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

static __always_inline void callout_emit(const struct callout_conn *conn, const struct callout_walk *w,
					 const struct callout_records *rec, __u8 flags, __u32 new_dst[4],
					 __u16 new_port, __u16 orig_family, __u16 records_size, __u16 context_size)
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
	e->family = orig_family;
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
	e->records_size = records_size;
	e->context_size = context_size;
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

/* Sizes of the SDK blobs (redirect/sio.h), reported in events. */
#define CALLOUT_RECORDS_BLOB_SIZE(hops) (16 + 8 * (hops))
#define CALLOUT_CONTEXT_BLOB_SIZE(data_len) (88 + (data_len))

static __always_inline int callout_classify(struct bpf_sock_addr *ctx, struct callout_conn *conn, __u16 orig_family)
{
	struct callout_walk w = {};
	struct callout_records *rec;
	struct callout_sock *sk;
	const struct callout_redirector *rd;
	struct callout_config *cfg;
	__u32 zero = 0, new_dst[4] = {}, slot;
	__u16 new_port = 0, context_size = 0;
	__u8 flags = 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	if (ctx->type != SOCK_STREAM)
		return 1;
	conn->cookie = bpf_get_socket_cookie(ctx);
	conn->netns = bpf_get_netns_cookie(ctx);
	conn->cgroup_id = bpf_get_current_cgroup_id();
	conn->now = bpf_ktime_get_boot_ns();
	conn->tgid = pid_tgid >> 32;
	conn->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(conn->comm, sizeof(conn->comm));
	callout_count(CALLOUT_STAT_CLASSIFIED);

	rec = bpf_map_lookup_elem(&callout_scratch, &zero);
	if (!rec)
		return 1;
	sk = bpf_sk_storage_get(&callout_socks, ctx->sk, 0, 0);
	if (sk && (sk->role & CALLOUT_ROLE_RECORDS)) {
		__builtin_memcpy(rec, &sk->records, sizeof(*rec));
		flags |= CALLOUT_FLAG_HAD_RECORDS;
	} else if (callout_repair_records(conn, rec)) {
		flags |= CALLOUT_FLAG_HAD_RECORDS | CALLOUT_FLAG_RECORDS_MISSING;
		callout_count(CALLOUT_STAT_RECORDS_MISSING);
	} else {
		__builtin_memset(rec, 0, sizeof(*rec));
	}
	if (rec->hop_count > CALLOUT_MAX_HOPS)
		rec->hop_count = CALLOUT_MAX_HOPS;

	w.conn = conn;
	w.rec = rec;
	bpf_loop(CALLOUT_MAX_REDIRECTORS, callout_walk_listener, &w, 0);
	if (w.verdict == CALLOUT_VERDICT_LOCAL)
		goto out;

	cfg = bpf_map_lookup_elem(&callout_config, &zero);
	if (!cfg)
		return 1;
	w.table_base = cfg->active_table ? CALLOUT_MAX_RULES : 0;
	w.count = cfg->rule_count[cfg->active_table ? 1 : 0];
	if (w.count > CALLOUT_MAX_RULES)
		w.count = CALLOUT_MAX_RULES;
	bpf_loop(w.count, callout_walk_rule, &w, 0);

	if (w.verdict != CALLOUT_VERDICT_REDIRECT) {
		if (w.verdict == CALLOUT_VERDICT_DIRECT && w.matched)
			w.verdict = CALLOUT_VERDICT_CHAIN_END;
		goto out;
	}
	if (rec->hop_count >= CALLOUT_MAX_HOPS) {
		w.verdict = CALLOUT_VERDICT_HOP_CAP;
		callout_count(CALLOUT_STAT_HOP_CAP);
		goto out;
	}
	slot = w.redirector_slot;
	rd = bpf_map_lookup_elem(&callout_redirectors, &slot);
	if (!rd)
		return 1;
	sk = bpf_sk_storage_get(&callout_socks, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!sk)
		return 1;

	/* Records: append this redirector. */
	if (!rec->flow_id)
		rec->flow_id = conn->cookie;
	rec->hops[rec->hop_count & (CALLOUT_MAX_HOPS - 1)].redirector_id = rd->id;
	rec->hops[rec->hop_count & (CALLOUT_MAX_HOPS - 1)].state = w.state;
	rec->hops[rec->hop_count & (CALLOUT_MAX_HOPS - 1)].flags = 0;
	rec->hop_count++;
	__builtin_memcpy(&sk->records, rec, sizeof(*rec));

	/* Context: what the redirector needs to reach the original destination. */
	sk->context.family = orig_family;
	sk->context.port = bpf_htons(conn->port);
	if (orig_family == AF_INET) {
		__builtin_memset(sk->context.addr, 0, 16);
		__builtin_memcpy(sk->context.addr, &conn->dst[0], 4);
	} else {
		__u32 *a = (__u32 *)sk->context.addr;

		a[0] = ctx->user_ip6[0];
		a[1] = ctx->user_ip6[1];
		a[2] = ctx->user_ip6[2];
		a[3] = ctx->user_ip6[3];
	}
	sk->context.pid = conn->tgid;
	sk->context.uid = conn->uid;
	__builtin_memcpy(sk->context.comm, conn->comm, CALLOUT_COMM_LEN);
	sk->context.cgroup_id = conn->cgroup_id;
	sk->context.rule_id = w.rule_id;
	sk->context.redirector_id = rd->id;
	sk->context.time_boot_ns = conn->now;
	sk->context.data_len = rd->data_len > CALLOUT_DATA_MAX ? CALLOUT_DATA_MAX : rd->data_len;
	__builtin_memcpy(sk->context.data, rd->data, CALLOUT_DATA_MAX);
	sk->role = CALLOUT_ROLE_RECORDS | CALLOUT_ROLE_CONTEXT | CALLOUT_ROLE_APP_REDIRECTED;
	sk->redirector_slot = slot;
	context_size = CALLOUT_CONTEXT_BLOB_SIZE(sk->context.data_len);

	/* Rewrite the destination to the redirector's listener. */
	if (orig_family == AF_INET) {
		ctx->user_ip4 = rd->addr4;
		ctx->user_port = rd->port4;
		new_dst[0] = rd->addr4;
		new_port = rd->port4;
	} else if (conn->mapped) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = rd->addr4;
		ctx->user_port = rd->port4;
		new_dst[2] = bpf_htonl(0x0000ffff);
		new_dst[3] = rd->addr4;
		new_port = rd->port4;
	} else {
		const __u32 *a = (const __u32 *)rd->addr6;

		ctx->user_ip6[0] = a[0];
		ctx->user_ip6[1] = a[1];
		ctx->user_ip6[2] = a[2];
		ctx->user_ip6[3] = a[3];
		ctx->user_port = rd->port6;
		__builtin_memcpy(new_dst, a, 16);
		new_port = rd->port6;
	}
	callout_count(CALLOUT_STAT_REDIRECTED);
out:
	if (w.verdict != CALLOUT_VERDICT_REDIRECT && (flags & CALLOUT_FLAG_RECORDS_MISSING)) {
		/* Keep the repaired records on the socket so the next hop sees the chain. */
		sk = bpf_sk_storage_get(&callout_socks, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (sk) {
			__builtin_memcpy(&sk->records, rec, sizeof(*rec));
			sk->role |= CALLOUT_ROLE_RECORDS;
		}
	}
	if (w.verdict != CALLOUT_VERDICT_REDIRECT) {
		__builtin_memcpy(new_dst, conn->dst, 16);
		new_port = bpf_htons(conn->port);
	}
	callout_emit(conn, &w, rec, flags, new_dst, new_port, orig_family,
		     rec->hop_count ? CALLOUT_RECORDS_BLOB_SIZE(rec->hop_count) : 0, context_size);
	return 1;
}

SEC("cgroup/connect4")
int callout_connect4(struct bpf_sock_addr *ctx)
{
	struct callout_conn conn = {};

	conn.dst[0] = ctx->user_ip4;
	conn.port = bpf_ntohs(ctx->user_port);
	conn.family = AF_INET;
	return callout_classify(ctx, &conn, AF_INET);
}

SEC("cgroup/connect6")
int callout_connect6(struct bpf_sock_addr *ctx)
{
	struct callout_conn conn = {};

	conn.port = bpf_ntohs(ctx->user_port);
	if (ctx->user_ip6[0] == 0 && ctx->user_ip6[1] == 0 && ctx->user_ip6[2] == bpf_htonl(0x0000ffff)) {
		/* v4-mapped: rules see an IPv4 destination. */
		conn.dst[0] = ctx->user_ip6[3];
		conn.family = AF_INET;
		conn.mapped = 1;
	} else {
		conn.dst[0] = ctx->user_ip6[0];
		conn.dst[1] = ctx->user_ip6[1];
		conn.dst[2] = ctx->user_ip6[2];
		conn.dst[3] = ctx->user_ip6[3];
		conn.family = AF_INET6;
	}
	return callout_classify(ctx, &conn, AF_INET6);
}

/* The application's getpeername() shows where it asked to go, not the redirector. */
SEC("cgroup/getpeername4")
int callout_getpeername4(struct bpf_sock_addr *ctx)
{
	struct callout_sock *sk = bpf_sk_storage_get(&callout_socks, ctx->sk, 0, 0);

	if (!sk || !(sk->role & CALLOUT_ROLE_APP_REDIRECTED) || sk->context.family != AF_INET)
		return 1;
	ctx->user_ip4 = *(__u32 *)sk->context.addr;
	ctx->user_port = sk->context.port;
	return 1;
}

SEC("cgroup/getpeername6")
int callout_getpeername6(struct bpf_sock_addr *ctx)
{
	struct callout_sock *sk = bpf_sk_storage_get(&callout_socks, ctx->sk, 0, 0);
	__u32 *a;

	if (!sk || !(sk->role & CALLOUT_ROLE_APP_REDIRECTED) || sk->context.family != AF_INET6)
		return 1;
	a = (__u32 *)sk->context.addr;
	ctx->user_ip6[0] = a[0];
	ctx->user_ip6[1] = a[1];
	ctx->user_ip6[2] = a[2];
	ctx->user_ip6[3] = a[3];
	ctx->user_port = sk->context.port;
	return 1;
}

/* v4-mapped addresses on AF_INET6 sockets become plain IPv4 keys, so both ends agree. */
static __always_inline void callout_key_addr(__u32 family, const __u32 *v4, const __u32 *v6, __u32 out[4],
					     __u32 *key_family)
{
	if (family == AF_INET) {
		out[0] = *v4;
		*key_family = AF_INET;
	} else if (v6[0] == 0 && v6[1] == 0 && v6[2] == bpf_htonl(0x0000ffff)) {
		out[0] = v6[3];
		*key_family = AF_INET;
	} else {
		out[0] = v6[0];
		out[1] = v6[1];
		out[2] = v6[2];
		out[3] = v6[3];
		*key_family = AF_INET6;
	}
}

/* Application side, SYN about to leave: park records and context under the 4-tuple. */
static __always_inline void callout_park(struct bpf_sock_ops *skops)
{
	struct callout_handoff_key key = {};
	struct callout_sock *sk;
	struct bpf_sock *s = skops->sk;
	__u32 v4, v6[4], fam;

	if (!s)
		return;
	sk = bpf_sk_storage_get(&callout_socks, s, 0, 0);
	if (!sk || !(sk->role & CALLOUT_ROLE_APP_REDIRECTED))
		return;
	key.netns_cookie = bpf_get_netns_cookie(skops);
	v4 = skops->local_ip4;
	v6[0] = skops->local_ip6[0];
	v6[1] = skops->local_ip6[1];
	v6[2] = skops->local_ip6[2];
	v6[3] = skops->local_ip6[3];
	callout_key_addr(skops->family, &v4, v6, key.app_addr, &fam);
	v4 = skops->remote_ip4;
	v6[0] = skops->remote_ip6[0];
	v6[1] = skops->remote_ip6[1];
	v6[2] = skops->remote_ip6[2];
	v6[3] = skops->remote_ip6[3];
	callout_key_addr(skops->family, &v4, v6, key.proxy_addr, &fam);
	key.family = fam;
	key.app_port = skops->local_port;
	key.proxy_port = bpf_ntohl(skops->remote_port);
	bpf_map_update_elem(&callout_handoff, &key, sk, BPF_ANY);
	/* Hear about its close too: flows through proxies that are not ours end only that way. */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* A redirected application socket closed: its byte counts end the flow for the console. */
static __always_inline void callout_closed(struct bpf_sock_ops *skops)
{
	struct callout_event *e;
	struct callout_sock *sk;
	struct bpf_sock *s = skops->sk;

	if (!s || skops->args[1] != BPF_TCP_CLOSE)
		return;
	sk = bpf_sk_storage_get(&callout_socks, s, 0, 0);
	if (!sk || !(sk->role & CALLOUT_ROLE_APP_REDIRECTED))
		return;
	e = bpf_ringbuf_reserve(&callout_events, sizeof(*e), 0);
	if (!e) {
		callout_count(CALLOUT_STAT_EVENT_DROPS);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->time_boot_ns = bpf_ktime_get_boot_ns();
	e->cookie = bpf_get_socket_cookie(skops);
	e->flow_id = sk->records.flow_id;
	e->verdict = CALLOUT_VERDICT_CLOSED;
	e->family = sk->context.family;
	e->redirector_id = sk->context.redirector_id;
	e->rule_id = sk->context.rule_id;
	/*
	 * The kernel counts sequence space: our SYN and FIN in bytes_acked, the peer's FIN in
	 * bytes_received. The state we leave tells which FINs went through (a FIN_WAIT2 that
	 * timed out without the peer's FIN is off by one byte).
	 */
	{
		__u32 old = skops->args[0];
		__u64 acked = skops->bytes_acked, received = skops->bytes_received;
		int finOut = old == BPF_TCP_FIN_WAIT2 || old == BPF_TCP_CLOSING || old == BPF_TCP_LAST_ACK ||
			     old == BPF_TCP_TIME_WAIT;
		int finIn = finOut || old == BPF_TCP_CLOSE_WAIT;

		if (acked)
			acked--; /* SYN */
		if (finOut && acked)
			acked--;
		if (finIn && received)
			received--;
		e->bytes_acked = acked;
		e->bytes_received = received;
	}
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/* Redirector side, connection accepted: take the parked records and context. */
static __always_inline void callout_take(struct bpf_sock_ops *skops)
{
	struct callout_handoff_key key = {};
	struct callout_last_inbound *last;
	struct callout_sock *parked, *sk;
	struct bpf_sock *s = skops->sk;
	__u32 v4, v6[4], fam, slot;

	if (!s)
		return;
	key.netns_cookie = bpf_get_netns_cookie(skops);
	v4 = skops->remote_ip4;
	v6[0] = skops->remote_ip6[0];
	v6[1] = skops->remote_ip6[1];
	v6[2] = skops->remote_ip6[2];
	v6[3] = skops->remote_ip6[3];
	callout_key_addr(skops->family, &v4, v6, key.app_addr, &fam);
	v4 = skops->local_ip4;
	v6[0] = skops->local_ip6[0];
	v6[1] = skops->local_ip6[1];
	v6[2] = skops->local_ip6[2];
	v6[3] = skops->local_ip6[3];
	callout_key_addr(skops->family, &v4, v6, key.proxy_addr, &fam);
	key.family = fam;
	key.app_port = bpf_ntohl(skops->remote_port);
	key.proxy_port = skops->local_port;
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
	return 1;
}

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Structures shared by the eBPF callout (callout.bpf.c) and user space
 * (loader, SDK, engine). Fixed-width types, explicit padding, no pointers:
 * the BPF object and the C/C++ side must agree byte for byte. Every struct
 * has a size check in callout_abi_check.h and a test in tests/callout.
 */
#ifndef REDIRECT_CALLOUT_ABI_H
#define REDIRECT_CALLOUT_ABI_H

#include <linux/types.h>

#define CALLOUT_MAX_HOPS 8
#define CALLOUT_MAX_RULES 256
#define CALLOUT_MAX_REDIRECTORS 32
#define CALLOUT_MAX_CIDRS 8
#define CALLOUT_MAX_PORT_RANGES 8
#define CALLOUT_DATA_MAX 64
#define CALLOUT_COMM_LEN 16
/* Event ring: about 10,000 events. The consumer is woken at a quarter of that and drains every
 * 50 ms anyway. It is mapped twice (for the wrap) into the engine: 4 MB were 8 MB of its RSS. */
#define CALLOUT_EVENTS_BYTES (2u << 20)      /* event ring buffer size */
#define CALLOUT_EVENTS_WAKE_BYTES (512u << 10) /* pending bytes that wake the consumer early */

/* Sizes of the SDK's wire blobs (redirect/sio.h), which events report. sio.c checks at compile
 * time that these, the hop cap, the states and the flags agree with the public header. */
#define CALLOUT_SDK_RECORDS_SIZE(hops) (16 + 8 * (hops))
#define CALLOUT_SDK_CONTEXT_SIZE(data_len) (88 + (data_len))

/* Redirect state of one redirector for one connecting socket (WFP names). */
enum callout_state {
	CALLOUT_STATE_NOT_REDIRECTED = 0,
	CALLOUT_STATE_REDIRECTED_BY_SELF = 1,
	CALLOUT_STATE_REDIRECTED_BY_OTHER = 2,
	CALLOUT_STATE_PREVIOUSLY_REDIRECTED_BY_SELF = 3,
};

/* What the callout decided for one connect(). */
enum callout_verdict {
	CALLOUT_VERDICT_DIRECT = 0,     /* no rule matched */
	CALLOUT_VERDICT_BYPASS = 1,     /* a bypass rule matched first */
	CALLOUT_VERDICT_REDIRECT = 2,   /* rewritten to a redirector's listener */
	CALLOUT_VERDICT_CHAIN_END = 3,  /* rules matched, every redirector already took the flow */
	CALLOUT_VERDICT_HOP_CAP = 4,    /* would redirect, but the chain holds CALLOUT_MAX_HOPS */
	CALLOUT_VERDICT_LOCAL = 5,      /* destination is a redirector listener itself */
	CALLOUT_VERDICT_CLOSED = 6,     /* not a decision: an application socket closed (redirected, or
	                                 * direct: flow_id is then its cookie) */
	CALLOUT_VERDICT_STALLED = 7,    /* the engine hosting the redirector missed its heartbeat: direct */
	CALLOUT_VERDICT_UNVERIFIED = 8, /* the redirector's endpoint has no listener we verified: direct */
	CALLOUT_VERDICT_BLOCK = 9,      /* a block rule matched first: connect()/sendmsg() got EPERM */
	CALLOUT_VERDICT_BUSY = 10,      /* UDP: the socket's one redirected flow goes elsewhere: direct */
};

/* callout_event.flags and callout_hop.flags */
#define CALLOUT_FLAG_RECORDS_MISSING 0x01 /* a redirector's own connect carried no records: repaired */
#define CALLOUT_FLAG_HAD_RECORDS 0x02     /* the socket carried records (SET or repaired) */

/* callout_sock.role bits */
#define CALLOUT_ROLE_RECORDS 0x01      /* records valid */
#define CALLOUT_ROLE_CONTEXT 0x02      /* context valid */
#define CALLOUT_ROLE_APP_REDIRECTED 0x04 /* socket was redirected here: getpeername shows context */
#define CALLOUT_ROLE_ACCEPTED 0x08     /* accepted by a redirector: records/context handed over */
/* A redirector's listening socket, verified by the engine: context.redirector_id names the redirector.
 * The mark lives and dies with the socket, so a port that changes hands carries no mark. */
#define CALLOUT_ROLE_LISTENER 0x10

/* callout_redirector.flags */
#define CALLOUT_REDIRECTOR_ACTIVE 0x01
#define CALLOUT_REDIRECTOR_EXTERNAL 0x02
/* Redirect only to a listener that carries CALLOUT_ROLE_LISTENER for this redirector (the engine
 * always sets it; bare callouts in tests may leave it off). */
#define CALLOUT_REDIRECTOR_VERIFY_LISTENER 0x04

/* callout_rule.match bits: which optional match fields are set */
#define CALLOUT_MATCH_UID 0x01
#define CALLOUT_MATCH_CGROUP 0x02
#define CALLOUT_MATCH_COMM 0x04

enum callout_action {
	CALLOUT_ACTION_REDIRECT = 0,
	CALLOUT_ACTION_BYPASS = 1,
	CALLOUT_ACTION_BLOCK = 2, /* refuse the connect (TCP, UDP) or the send (UDP) with EPERM */
};

/* A UDP flow that saw no datagram for this long is over (rules that set no idle timeout). */
#define CALLOUT_UDP_IDLE_DEFAULT_S 60

struct callout_hop {
	__u32 redirector_id;
	__u8 state;  /* enum callout_state seen by the redirector that took the hop */
	__u8 flags;  /* CALLOUT_FLAG_* */
	__u16 reserved;
};

struct callout_records {
	__u64 flow_id;
	__u8 hop_count;
	__u8 flags;
	__u16 reserved;
	__u32 reserved2;
	struct callout_hop hops[CALLOUT_MAX_HOPS];
};

struct callout_context {
	__u16 family;     /* AF_INET or AF_INET6 as the application asked */
	__u16 port;       /* network order */
	__u32 reserved;
	__u8 addr[16];    /* v4 in the first 4 bytes; v6 (or v4-mapped) in all 16 */
	__u32 pid;
	__u32 uid;
	__u8 comm[CALLOUT_COMM_LEN];
	__u64 cgroup_id;
	__u32 rule_id;
	__u32 redirector_id;
	__u64 time_boot_ns; /* CLOCK_BOOTTIME */
	__u16 data_len;
	__u8 pad[6];
	__u8 data[CALLOUT_DATA_MAX]; /* the redirector's callout data */
};

/* Value of the per-socket storage map (the pinned "records map"). */
struct callout_sock {
	__u32 role;            /* CALLOUT_ROLE_* */
	__u32 redirector_slot; /* for ACCEPTED sockets: which redirector accepted */
	struct callout_records records;
	struct callout_context context;
};

struct callout_cidr {
	__u8 family;      /* AF_INET or AF_INET6 */
	__u8 prefix_len;
	__u16 reserved;
	__u32 addr[4];    /* network order; v4 in addr[0] */
};

struct callout_port_range {
	__u16 first;      /* host order, inclusive */
	__u16 last;
};

struct callout_rule {
	__u32 id;
	__u8 enabled;
	__u8 action;      /* enum callout_action */
	__u8 protocol;    /* IPPROTO_TCP, IPPROTO_UDP, or 0 for both */
	__u8 match;       /* CALLOUT_MATCH_* */
	__u16 redirector_slot;
	__u8 cidr_count;  /* 0 = any destination */
	__u8 port_count;  /* 0 = any port */
	__u32 uid;
	__u64 cgroup_id;
	__u64 expires_boot_ns; /* 0 = never; CLOCK_BOOTTIME */
	__u8 comm[CALLOUT_COMM_LEN];
	struct callout_cidr cidrs[CALLOUT_MAX_CIDRS];
	struct callout_port_range ports[CALLOUT_MAX_PORT_RANGES];
	__u32 idle_timeout_s; /* UDP flows: seconds without a datagram that end one; 0 = the default */
	__u32 reserved2;
};

struct callout_redirector {
	__u32 id;
	__u32 flags;       /* CALLOUT_REDIRECTOR_* */
	__u32 owner_tgid;  /* process whose record-less connects get repaired */
	__u16 udp_port4;   /* network order; 0 = no UDP listener on addr4 */
	__u16 udp_port6;   /* network order; 0 = no UDP listener on addr6 */
	__u64 netns_cookie; /* network namespace of the listeners */
	__u32 addr4;       /* network order; 0 = no IPv4 listener */
	__u16 port4;       /* network order */
	__u16 port6;       /* network order; 0 = no IPv6 listener */
	__u8 addr6[16];
	__u16 data_len;
	__u8 pad[6];
	__u8 data[CALLOUT_DATA_MAX];
};

/* Rules are double-buffered: a full rewrite fills the idle table, then flips active_table. */
struct callout_config {
	__u32 active_table;
	__u32 rule_count[2];
	__u32 reserved;
};

/* Key of the hand-off from the application's socket to the proxy's accepted socket. */
struct callout_handoff_key {
	__u64 netns_cookie;
	__u32 family;
	__u16 app_port;   /* host order */
	__u16 proxy_port; /* host order */
	__u32 app_addr[4];
	__u32 proxy_addr[4];
};

/*
 * UDP state of an application socket (its own storage map, so TCP sockets do not carry it).
 * A socket holds at most one redirected flow at a time (see the DESIGN note in
 * callout_udp.bpf.h) and remembers its latest other decision, so that a flow's later
 * datagrams cost a comparison, not a rule walk, and make no event.
 */
struct callout_udp_sock {
	__u64 flow_ns;          /* CLOCK_BOOTTIME of the redirected flow's latest datagram; 0 = none */
	__u64 idle_ns;          /* the deciding rule's idle timeout */
	__u32 flow_dst[4];      /* its original destination as rules see it (callout_conn.dst) */
	__u16 flow_port;        /* host order */
	__u8 in_hops;           /* hops the socket carried (SET, repair) before the redirect */
	__u8 generation;        /* flows this socket started: keeps their ids apart */
	__u32 proxy_addr[4];    /* where its datagrams go: the redirector endpoint as written */
	__u16 proxy_port;       /* network order */
	__u8 flow_family;       /* callout_conn.family of flow_dst */
	__u8 other_family;
	__u32 other_dst[4];     /* the latest destination that was not redirected (callout_conn.dst) */
	__u16 other_port;       /* host order */
	__u8 other_verdict;     /* enum callout_verdict decided for it */
	__u8 reserved;
	__u32 reserved2;
	__u64 other_ns;         /* CLOCK_BOOTTIME of that decision (blocked) or of its latest datagram */
	__u64 other_idle_ns;
};

/* What the last accepted connection of a redirector carried (for records repair). */
struct callout_last_inbound {
	__u64 time_boot_ns;
	struct callout_records records;
};

enum callout_stat {
	CALLOUT_STAT_CLASSIFIED = 0,
	CALLOUT_STAT_REDIRECTED,
	CALLOUT_STAT_HOP_CAP,
	CALLOUT_STAT_RECORDS_MISSING,
	CALLOUT_STAT_EVENT_DROPS,
	CALLOUT_STAT_HANDOFFS,
	CALLOUT_STAT_HANDOFF_MISSES,
	CALLOUT_STAT_STALLED,     /* would have gone to a redirector of a stalled engine */
	CALLOUT_STAT_UNVERIFIED,  /* would have gone to an endpoint without a verified listener */
	CALLOUT_STAT_BLOCKED,     /* connects and sends refused by a block rule */
	CALLOUT_STAT_UDP_HANDOFFS, /* UDP flows a redirector's socket received (published for the SDK) */
	CALLOUT_STAT_UDP_BUSY,    /* UDP sends passed over: their socket's flow went to another place */
	CALLOUT_STAT_COUNT,
};

struct callout_event {
	__u64 time_boot_ns;
	__u64 cookie;     /* socket cookie of the connecting socket */
	__u64 flow_id;
	__u64 cgroup_id;
	__u32 pid;
	__u32 uid;
	__u8 comm[CALLOUT_COMM_LEN];
	__u16 family;
	__u16 orig_port;  /* network order */
	__u16 new_port;   /* network order */
	__u8 verdict;     /* enum callout_verdict */
	__u8 state;       /* enum callout_state of the deciding redirector; CLOSED: the TCP state
	                   * the socket left (BPF_TCP_*), which tells a reset from a close */
	__u8 orig_addr[16];
	__u8 new_addr[16];
	__u32 redirector_id; /* redirector that redirected (or first that matched); a UDP CLOSED:
	                      * nonzero when flow_id names the socket's live redirected flow */
	__u32 rule_id;
	__u8 hop_count;   /* hops in the records after this decision */
	__u8 flags;       /* CALLOUT_FLAG_* */
	__u16 records_size; /* SDK records blob size after this decision, 0 if none */
	__u16 context_size; /* SDK context blob size, 0 if not redirected */
	__u8 protocol;    /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 reserved;
	struct callout_hop hops[CALLOUT_MAX_HOPS]; /* the chain after this decision */
	__u8 chain_states[CALLOUT_MAX_HOPS]; /* state of hops[i]'s redirector at this decision */
	__u64 bytes_acked;    /* CLOSED: data bytes the application sent that were acknowledged */
	__u64 bytes_received; /* CLOSED: data bytes the application received */
};

#endif /* REDIRECT_CALLOUT_ABI_H */

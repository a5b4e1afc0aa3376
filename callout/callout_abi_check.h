// Layout checks for every struct shared between callout.bpf.c and user space.
// The BPF object is built from the same header by clang for the BPF target;
// these pin the sizes and offsets both compilers must agree on, and
// tests/callout/tst_abi_layout.cpp compares them with the BTF in the object.
#pragma once

#include <cstddef>

#include "callout_abi.h"

static_assert(sizeof(callout_hop) == 8);
static_assert(sizeof(callout_records) == 80);
static_assert(offsetof(callout_records, hops) == 16);
static_assert(sizeof(callout_context) == 144);
static_assert(offsetof(callout_context, addr) == 8);
static_assert(offsetof(callout_context, pid) == 24);
static_assert(offsetof(callout_context, comm) == 32);
static_assert(offsetof(callout_context, cgroup_id) == 48);
static_assert(offsetof(callout_context, rule_id) == 56);
static_assert(offsetof(callout_context, time_boot_ns) == 64);
static_assert(offsetof(callout_context, data_len) == 72);
static_assert(offsetof(callout_context, data) == 80);
static_assert(sizeof(callout_sock) == 232);
static_assert(offsetof(callout_sock, records) == 8);
static_assert(offsetof(callout_sock, context) == 88);
static_assert(sizeof(callout_cidr) == 20);
static_assert(sizeof(callout_port_range) == 4);
static_assert(sizeof(callout_rule) == 248);
static_assert(offsetof(callout_rule, idle_timeout_s) == 240);
static_assert(offsetof(callout_rule, uid) == 12);
static_assert(offsetof(callout_rule, cgroup_id) == 16);
static_assert(offsetof(callout_rule, expires_boot_ns) == 24);
static_assert(offsetof(callout_rule, comm) == 32);
static_assert(offsetof(callout_rule, cidrs) == 48);
static_assert(offsetof(callout_rule, ports) == 208);
static_assert(sizeof(callout_redirector) == 120);
static_assert(offsetof(callout_redirector, udp_port4) == 12);
static_assert(offsetof(callout_redirector, netns_cookie) == 16);
static_assert(offsetof(callout_redirector, addr4) == 24);
static_assert(offsetof(callout_redirector, addr6) == 32);
static_assert(offsetof(callout_redirector, data) == 56);
static_assert(sizeof(callout_config) == 16);
static_assert(sizeof(callout_handoff_key) == 48);
static_assert(sizeof(callout_last_inbound) == 88);
static_assert(sizeof(callout_udp_sock) == 96);
static_assert(offsetof(callout_udp_sock, proxy_addr) == 36);
static_assert(offsetof(callout_udp_sock, other_dst) == 56);
static_assert(offsetof(callout_udp_sock, other_ns) == 80);
static_assert(sizeof(callout_event) == 200);
static_assert(offsetof(callout_event, comm) == 40);
static_assert(offsetof(callout_event, orig_addr) == 64);
static_assert(offsetof(callout_event, new_addr) == 80);
static_assert(offsetof(callout_event, redirector_id) == 96);
static_assert(offsetof(callout_event, hop_count) == 104);
static_assert(offsetof(callout_event, hops) == 112);
static_assert(offsetof(callout_event, chain_states) == 176);
static_assert(offsetof(callout_event, bytes_acked) == 184);

#include "flow_table.h"

#include <algorithm>
#include <cstring>

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <pwd.h>

#include "redirect/sio.h"

namespace redirect::engine {

namespace {

std::string endpointText(uint16_t family, const uint8_t* addr, uint16_t portNet)
{
    char text[INET6_ADDRSTRLEN] = {};
    if (family == AF_INET) {
        inet_ntop(AF_INET, addr, text, sizeof(text));
        return std::string(text) + ":" + std::to_string(ntohs(portNet));
    }
    inet_ntop(AF_INET6, addr, text, sizeof(text));
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(portNet));
}

std::string sockaddrText(const sockaddr_storage& ss)
{
    if (ss.ss_family == AF_INET) {
        auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
        return endpointText(AF_INET, reinterpret_cast<const uint8_t*>(&sin->sin_addr), sin->sin_port);
    }
    if (ss.ss_family == AF_INET6) {
        auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        return endpointText(AF_INET6, reinterpret_cast<const uint8_t*>(&sin6->sin6_addr), sin6->sin6_port);
    }
    return {};
}

const char* verdictName(uint8_t verdict)
{
    switch (verdict) {
    case CALLOUT_VERDICT_DIRECT: return "direct";
    case CALLOUT_VERDICT_BYPASS: return "bypass";
    case CALLOUT_VERDICT_REDIRECT: return "redirect";
    case CALLOUT_VERDICT_CHAIN_END: return "chain_end";
    case CALLOUT_VERDICT_HOP_CAP: return "hop_cap";
    case CALLOUT_VERDICT_LOCAL: return "local";
    case CALLOUT_VERDICT_STALLED: return "stalled";
    case CALLOUT_VERDICT_UNVERIFIED: return "unverified";
    case CALLOUT_VERDICT_BLOCK: return "block";
    case CALLOUT_VERDICT_BUSY: return "busy";
    default: return "?";
    }
}

// A connect failure says more about a flow than the reset it causes upstream of it.
bool connectFailure(EndReason r)
{
    return r == EndReason::Refused || r == EndReason::Timeout || r == EndReason::Unreachable ||
           r == EndReason::NoRecords;
}

// How a socket that went to CLOSE ended, by the TCP state it left.
EndReason closeReason(uint8_t leftState)
{
    switch (leftState) {
    case BPF_TCP_SYN_SENT: return EndReason::Refused;  // RST to the SYN (or a timeout: sockops cannot tell)
    // Straight to CLOSE from a state with data still to exchange: a reset, sent or received.
    case BPF_TCP_ESTABLISHED: case BPF_TCP_FIN_WAIT1: case BPF_TCP_CLOSE_WAIT: return EndReason::Reset;
    default: return EndReason::Closed;
    }
}

}  // namespace

const std::string& FlowTable::userName(uint32_t uid)
{
    // A few distinct users make most flows: resolve each once (NSS can be slow).
    auto [it, inserted] = users_.try_emplace(uid);
    if (inserted) {
        passwd pw{}, *found = nullptr;
        std::vector<char> buf(16384);
        if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found)
            it->second = found->pw_name;
    }
    return it->second;
}

FlowTable::FlowTable(size_t retention, FlowNames names) : retention_(retention), names_(std::move(names)) {}

Flow& FlowTable::flowFor(uint64_t flowId, int64_t startNs)
{
    auto [it, inserted] = flows_.try_emplace(flowId);
    if (inserted) {
        it->second.flowId = flowId;
        it->second.startNs = startNs;
        order_.push_back({++created_, flowId});
    }
    return it->second;
}

Hop* FlowTable::hopFor(Flow& flow, uint32_t redirectorId)
{
    for (Hop& hop : flow.hops)
        if (hop.redirectorId == redirectorId)
            return &hop;
    Hop hop;
    hop.redirectorId = redirectorId;
    hop.redirector = names_.redirector ? names_.redirector(redirectorId) : std::string();
    hop.external = names_.external && names_.external(redirectorId);
    flow.hops.push_back(std::move(hop));
    return &flow.hops.back();
}

void FlowTable::markRecordsMissing(Hop& hop)
{
    if (!hop.recordsMissing) {
        ++recordsMissing_[hop.redirectorId];
        ++recordsMissingTotal_;
    }
    hop.recordsMissing = true;
}

void FlowTable::touch(uint64_t flowId)
{
    if (changedSet_.insert(flowId).second)
        changed_.push_back(flowId);
}

void FlowTable::onCalloutEvent(const callout_event& e, int64_t bootToWallNs)
{
    int64_t when = static_cast<int64_t>(e.time_boot_ns) + bootToWallNs;
    if (e.verdict == CALLOUT_VERDICT_CLOSED) {
        onApplicationClosed(e, when);
        return;
    }
    bool fromRedirector = e.flags & CALLOUT_FLAG_HAD_RECORDS;
    // Every decision a rule made counts for it, at every hop of a chain.
    if (e.verdict == CALLOUT_VERDICT_BYPASS)
        ++hits_[e.rule_id].bypassed;
    if (e.verdict == CALLOUT_VERDICT_REDIRECT)
        ++hits_[e.rule_id].redirected;
    if (!fromRedirector && e.verdict != CALLOUT_VERDICT_REDIRECT) {
        onDirectConnect(e, when);
        return;
    }
    // A redirector's connect that did not continue a redirected flow.
    if (e.hop_count == 0)
        return;
    Flow& flow = flowFor(e.flow_id, when);
    if (!fromRedirector) {
        // The application's own connect.
        describeApplication(flow, e, when);
    } else if (e.flags & CALLOUT_FLAG_RECORDS_MISSING) {
        // The redirector that made this connect forgot SET: name it on its hop.
        uint32_t culprit = e.hops[(e.hop_count - (e.verdict == CALLOUT_VERDICT_REDIRECT ? 2 : 1)) & 7].redirector_id;
        markRecordsMissing(*hopFor(flow, culprit));
    }
    if (e.verdict == CALLOUT_VERDICT_REDIRECT) {
        Hop* hop = hopFor(flow, e.redirector_id);
        hop->rule = ruleName(e.rule_id);
        hop->state = e.state;
        hop->recordsSize = e.records_size;
        hop->contextSize = e.context_size;
        if (!hop->startNs)
            hop->startNs = when;
    } else if (e.verdict == CALLOUT_VERDICT_HOP_CAP) {
        hopCap_.insert(flow.flowId);
    }
    touch(flow.flowId);
}

std::string FlowTable::ruleName(uint32_t ruleId) const
{
    return names_.rule ? names_.rule(ruleId) : std::to_string(ruleId);
}

void FlowTable::describeApplication(Flow& flow, const callout_event& e, int64_t when)
{
    flow.startNs = when;
    flow.pid = e.pid;
    flow.uid = e.uid;
    flow.user = userName(e.uid);
    flow.comm.assign(reinterpret_cast<const char*>(e.comm), strnlen(reinterpret_cast<const char*>(e.comm), 16));
    flow.cgroupId = e.cgroup_id;
    flow.protocol = e.protocol;
    flow.destination = endpointText(e.family, e.orig_addr, e.orig_port);
    // No rule decided a connect that no rule matched: rule id 0 is no rule's.
    bool ruled = e.verdict != CALLOUT_VERDICT_DIRECT && e.verdict != CALLOUT_VERDICT_LOCAL;
    flow.rule = ruled ? ruleName(e.rule_id) : std::string();
    flow.verdict = verdictName(e.verdict);
}

void FlowTable::onDirectConnect(const callout_event& e, int64_t when)
{
    // The callout names a direct connect's flow by its socket's cookie, and its close the same.
    Flow& flow = flowFor(e.flow_id, when);
    if (!flow.comm.empty() || flow.endNs)
        return;  // an event seen twice (cookies are never reused while the socket lives)
    describeApplication(flow, e, when);
    touch(flow.flowId);
}

void FlowTable::onApplicationClosed(const callout_event& e, int64_t when)
{
    // A UDP socket's close also ends its direct flow, which its cookie names (its redirected
    // flow, if one is live, is the event's flow id).
    if (e.protocol == IPPROTO_UDP && e.cookie != e.flow_id) {
        callout_event direct = e;
        direct.flow_id = e.cookie;
        onApplicationClosed(direct, when);
    }
    auto it = flows_.find(e.flow_id);
    if (it == flows_.end() || it->second.endNs)
        return;
    Flow& flow = it->second;
    // Our own hops end the flow with exact counts; a chain of proxies that are not ours
    // ends here, with what the application's socket counted.
    if (std::any_of(flow.hops.begin(), flow.hops.end(), [](const Hop& h) { return !h.external; }))
        return;
    flow.endNs = when;
    ++ended_;  // it was open (checked above)
    flow.bytesUp = e.bytes_acked;
    flow.bytesDown = e.bytes_received;
    flow.reason = e.protocol == IPPROTO_UDP ? EndReason::Closed : closeReason(e.state);
    for (Hop& hop : flow.hops)
        if (!hop.endNs) {
            hop.endNs = when;
            hop.reason = flow.reason;
        }
    hopCap_.erase(flow.flowId);
    touch(flow.flowId);
}

void FlowTable::onHop(HopReport&& report)
{
    uint64_t flowId = report.flowId;
    if (!flowId)
        return;  // QUERY failed: no flow to attach it to
    Flow& flow = flowFor(flowId, report.startNs);
    if (flow.destination.empty()) {
        // The callout's event was lost (ring full): the context still tells the essentials.
        flow.destination = sockaddrText(report.destination);
        flow.pid = static_cast<uint32_t>(report.clientPid);
        flow.comm = report.clientComm;
        flow.verdict = "redirect";
        flow.protocol = report.protocol;
    }
    if (flow.host.empty())
        flow.host = report.host;
    Hop* hop = hopFor(flow, report.redirectorId);
    hop->recordsSize = static_cast<uint32_t>(report.records.size());
    hop->contextSize = static_cast<uint32_t>(report.context.size());
    hop->records = std::move(report.records);
    hop->context = std::move(report.context);
    hop->connectMs = report.connectMs;
    hop->bytesUp = report.bytesUp;
    hop->bytesDown = report.bytesDown;
    hop->datagramsUp = report.datagramsUp;
    hop->datagramsDown = report.datagramsDown;
    if (!hop->startNs)
        hop->startNs = report.startNs;
    hop->endNs = report.endNs;
    hop->reason = report.reason;
    hop->inProcess = report.inProcess;
    if (!report.setRecords && report.reason != EndReason::NoRecords)
        markRecordsMissing(*hop);
    maybeEnd(flow);
    touch(flowId);
}

void FlowTable::maybeEnd(Flow& flow)
{
    const Hop* first = nullptr;
    for (const Hop& hop : flow.hops) {
        if (hop.external)
            continue;
        if (hop.endNs == 0)
            return;  // one of ours still relays
        if (!first)
            first = &hop;
    }
    if (!first)
        return;
    const bool wasOpen = flow.endNs == 0;
    flow.bytesUp = first->bytesUp;
    flow.bytesDown = first->bytesDown;
    flow.datagramsUp = first->datagramsUp;
    flow.datagramsDown = first->datagramsDown;
    flow.endNs = first->endNs;
    flow.reason = first->reason;
    for (const Hop& hop : flow.hops) {
        flow.endNs = std::max(flow.endNs, hop.endNs);
        if (connectFailure(hop.reason))
            flow.reason = hop.reason;
    }
    if (flow.reason == EndReason::Closed && hopCap_.count(flow.flowId))
        flow.reason = EndReason::HopCap;
    // External hops are seen only at connect time: they end with the flow (bytes unknown).
    for (Hop& hop : flow.hops)
        if (hop.external && hop.endNs == 0) {
            hop.endNs = flow.endNs;
            hop.reason = flow.reason;
        }
    hopCap_.erase(flow.flowId);
    if (wasOpen && flow.endNs != 0)
        ++ended_;
}

void FlowTable::evict()
{
    if (flows_.size() <= retention_)
        return;
    // One pass, oldest first: ended flows go until the table fits; open ones stay however old.
    // (Once per publish, not per ended flow: open flows at the front made that quadratic.)
    std::deque<Created> kept;
    for (const Created& c : order_) {
        auto f = flows_.find(c.id);
        if (f == flows_.end())
            continue;
        if (flows_.size() > retention_ && f->second.endNs != 0) {
            hopCap_.erase(c.id);
            flows_.erase(f);
            ++evicted_;
            --ended_;
            continue;
        }
        kept.push_back(c);
    }
    order_.swap(kept);
}

std::vector<Flow> FlowTable::takeChanged()
{
    std::vector<Flow> out;
    out.reserve(changed_.size());
    for (uint64_t id : changed_) {
        auto it = flows_.find(id);
        if (it != flows_.end())
            out.push_back(it->second);
    }
    changed_.clear();
    changedSet_.clear();
    evict();  // after the copies: a flow that ends and goes in one tick is still published
    return out;
}

std::vector<Flow> FlowTable::snapshot() const
{
    std::vector<Flow> out;
    out.reserve(flows_.size());
    uint64_t cursor = 0;
    snapshotAfter(&cursor, flows_.size(), out);
    return out;
}

bool FlowTable::snapshotAfter(uint64_t* cursor, size_t max, std::vector<Flow>& out) const
{
    auto it = std::upper_bound(order_.begin(), order_.end(), *cursor,
                               [](uint64_t seq, const Created& c) { return seq < c.seq; });
    if (it == order_.end())
        return false;
    for (size_t n = 0; n < max && it != order_.end(); ++it, ++n) {
        auto f = flows_.find(it->id);
        if (f != flows_.end())
            out.push_back(f->second);
        *cursor = it->seq;
    }
    return true;
}

}  // namespace redirect::engine

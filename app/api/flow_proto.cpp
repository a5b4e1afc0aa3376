#include "flow_proto.h"

#include <cstring>

#include "format.h"

namespace redirect::service {

namespace {

std::string blob(const std::vector<uint8_t>& bytes)
{
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::vector<uint8_t> bytesOf(const std::string& blob)
{
    return std::vector<uint8_t>(blob.begin(), blob.end());
}

// WFP's state names back to the callout's numbers (the wire carries names: readable, stable).
uint8_t stateOf(const std::string& name)
{
    return engine::redirectStateByName(name).value_or(0);
}

}  // namespace

v1::EndReason toProto(engine::EndReason reason)
{
    // The enums share their order; a static check keeps them in step.
    static_assert(static_cast<int>(engine::EndReason::Error) == v1::END_REASON_ERROR);
    static_assert(static_cast<int>(engine::EndReason::HopCap) == v1::END_REASON_HOP_CAP);
    static_assert(static_cast<int>(engine::kLastEndReason) == v1::END_REASON_IDLE);
    return static_cast<v1::EndReason>(static_cast<int>(reason));
}

engine::EndReason fromProto(v1::EndReason reason)
{
    if (reason < v1::END_REASON_OPEN || reason > static_cast<int>(engine::kLastEndReason))
        return engine::EndReason::Error;  // a newer node's reason this client does not know
    return static_cast<engine::EndReason>(static_cast<int>(reason));
}

void toProto(const engine::Flow& f, v1::Flow* out)
{
    out->set_flow_id(f.flowId);
    out->set_start_unix_ns(f.startNs);
    out->set_end_unix_ns(f.endNs);
    out->set_pid(f.pid);
    out->set_uid(f.uid);
    out->set_comm(f.comm);
    out->set_user(f.user);
    out->set_cgroup_id(f.cgroupId);
    out->set_destination(f.destination);
    out->set_host(f.host);
    out->set_rule(f.rule);
    out->set_verdict(f.verdict);
    out->set_bytes_up(f.bytesUp);
    out->set_bytes_down(f.bytesDown);
    out->set_protocol(engine::protocolName(f.protocol));
    out->set_datagrams_up(f.datagramsUp);
    out->set_datagrams_down(f.datagramsDown);
    out->set_reason(toProto(f.reason));
    out->set_chain(f.chainText());
    out->set_route(f.routeText());
    for (const engine::Hop& h : f.hops) {
        v1::Hop* p = out->add_hops();
        p->set_redirector_id(h.redirectorId);
        p->set_redirector(h.redirector);
        p->set_rule(h.rule);
        p->set_external(h.external);
        p->set_state(engine::redirectStateName(h.state));
        p->set_records_size(h.recordsSize);
        p->set_context_size(h.contextSize);
        p->set_records(blob(h.records));
        p->set_context(blob(h.context));
        p->set_connect_ms(h.connectMs);
        p->set_bytes_up(h.bytesUp);
        p->set_bytes_down(h.bytesDown);
        p->set_start_unix_ns(h.startNs);
        p->set_end_unix_ns(h.endNs);
        p->set_reason(toProto(h.reason));
        p->set_records_missing(h.recordsMissing);
        p->set_in_process(h.inProcess);
        p->set_datagrams_up(h.datagramsUp);
        p->set_datagrams_down(h.datagramsDown);
    }
}

engine::Flow fromProto(const v1::Flow& p)
{
    engine::Flow f;
    f.flowId = p.flow_id();
    f.startNs = p.start_unix_ns();
    f.endNs = p.end_unix_ns();
    f.pid = p.pid();
    f.uid = p.uid();
    f.comm = p.comm();
    f.user = p.user();
    f.cgroupId = p.cgroup_id();
    f.destination = p.destination();
    f.host = p.host();
    f.rule = p.rule();
    f.verdict = p.verdict();
    f.bytesUp = p.bytes_up();
    f.bytesDown = p.bytes_down();
    // "" from a node before UDP, where every flow was TCP. A protocol this client does not know
    // stays TCP too: its counts still show, and the flow is not dropped.
    f.protocol = engine::protocolByName(p.protocol()).value_or(f.protocol);
    f.datagramsUp = p.datagrams_up();
    f.datagramsDown = p.datagrams_down();
    f.reason = fromProto(p.reason());
    for (const v1::Hop& ph : p.hops()) {
        engine::Hop h;
        h.redirectorId = ph.redirector_id();
        h.redirector = ph.redirector();
        h.rule = ph.rule();
        h.external = ph.external();
        h.state = stateOf(ph.state());
        h.recordsSize = ph.records_size();
        h.contextSize = ph.context_size();
        h.records = bytesOf(ph.records());
        h.context = bytesOf(ph.context());
        h.connectMs = ph.connect_ms();
        h.bytesUp = ph.bytes_up();
        h.bytesDown = ph.bytes_down();
        h.startNs = ph.start_unix_ns();
        h.endNs = ph.end_unix_ns();
        h.reason = fromProto(ph.reason());
        h.recordsMissing = ph.records_missing();
        h.inProcess = ph.in_process();
        h.datagramsUp = ph.datagrams_up();
        h.datagramsDown = ph.datagrams_down();
        f.hops.push_back(std::move(h));
    }
    return f;
}

void toProto(const engine::RedirectorStatus& r, v1::Redirector* out)
{
    out->set_id(r.id);
    out->set_name(r.name);
    out->set_external(r.external);
    out->set_enabled(r.enabled);
    out->set_port4(r.port4);
    out->set_port6(r.port6);
    out->set_available(r.available);
    out->set_availability(r.availability);
    out->set_records_missing(r.recordsMissing);
    out->set_accepted(r.accepted);
    out->set_active(r.active);
    out->set_bytes_up(r.bytesUp);
    out->set_bytes_down(r.bytesDown);
}

}  // namespace redirect::service

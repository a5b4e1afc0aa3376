#include "flow_row.h"

#include <algorithm>

namespace redirect::gui {

namespace {

// FlowRow <-> Flow and FlowHopRow <-> Hop share these field names; both directions copy them here.
template <typename From, typename To>
void copyFlowFields(const From& in, To& out)
{
    out.flowId = in.flowId;
    out.startNs = in.startNs;
    out.endNs = in.endNs;
    out.bytesUp = in.bytesUp;
    out.bytesDown = in.bytesDown;
    out.datagramsUp = in.datagramsUp;
    out.datagramsDown = in.datagramsDown;
    out.protocol = in.protocol;
    out.cgroupId = in.cgroupId;
    out.pid = in.pid;
    out.uid = in.uid;
    out.reason = in.reason;
    out.destination = in.destination;
    out.host = in.host;
}

template <typename From, typename To>
void copyHopFields(const From& in, To& out)
{
    out.redirectorId = in.redirectorId;
    out.recordsSize = in.recordsSize;
    out.contextSize = in.contextSize;
    out.connectMs = static_cast<decltype(out.connectMs)>(in.connectMs);
    out.state = in.state;
    out.external = in.external;
    out.recordsMissing = in.recordsMissing;
    out.reason = in.reason;
    out.bytesUp = in.bytesUp;
    out.bytesDown = in.bytesDown;
    out.datagramsUp = in.datagramsUp;
    out.datagramsDown = in.datagramsDown;
    out.startNs = in.startNs;
    out.endNs = in.endNs;
}

}  // namespace

uint32_t StringPool::intern(const std::string& text)
{
    auto [it, added] = index_.try_emplace(text, static_cast<uint32_t>(strings_.size()));
    if (added)
        strings_.push_back(text);
    return it->second;
}

size_t StringPool::memoryBytes() const
{
    size_t bytes = strings_.capacity() * sizeof(std::string) + hashMapBytes(index_);
    for (const std::string& text : strings_)
        bytes += 2 * stringHeapBytes(text);  // the vector's copy and the index key
    return bytes;
}

uint32_t FlowRow::recordsSize() const
{
    uint32_t size = 0;
    for (const FlowHopRow& hop : hops)
        size = std::max(size, hop.recordsSize);
    return size;
}

uint32_t FlowRow::contextSize() const
{
    uint32_t size = 0;
    for (const FlowHopRow& hop : hops)
        size = std::max(size, hop.contextSize);
    return size;
}

void FlowRow::assign(const engine::Flow& flow, StringPool& pool)
{
    copyFlowFields(flow, *this);
    comm = pool.intern(flow.comm);
    user = pool.intern(flow.user);
    rule = pool.intern(flow.rule);
    verdict = pool.intern(flow.verdict);
    node = pool.intern(flow.node);
    route = pool.intern(flow.routeText());
    direct = flow.direct();
    datagramsCounted = flow.datagramsCounted();
    hops.resize(flow.hops.size());
    hops.shrink_to_fit();
    for (size_t i = 0; i < flow.hops.size(); ++i) {
        copyHopFields(flow.hops[i], hops[i]);
        hops[i].name = pool.intern(flow.hops[i].redirector);
        hops[i].rule = pool.intern(flow.hops[i].rule);
    }
}

void FlowRow::toFlow(const StringPool& pool, engine::Flow& out) const
{
    copyFlowFields(*this, out);
    out.comm = pool.at(comm);
    out.user = pool.at(user);
    out.rule = pool.at(rule);
    out.verdict = pool.at(verdict);
    out.node = pool.at(node);
    out.hops.resize(hops.size());
    for (size_t i = 0; i < hops.size(); ++i) {
        copyHopFields(hops[i], out.hops[i]);
        out.hops[i].redirector = pool.at(hops[i].name);
        out.hops[i].rule = pool.at(hops[i].rule);
    }
}

size_t FlowRow::heapBytes() const
{
    return stringHeapBytes(destination) + stringHeapBytes(host) + hops.capacity() * sizeof(FlowHopRow);
}

}  // namespace redirect::gui

// One row of the live flow table, as Wireshark's packet list keeps its records apart from the
// model: the raw values that the columns, the filter and the details summary need, without the
// records and context blobs, with the strings that repeat across flows interned in a pool.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "flow.h"

namespace redirect::gui {

/// Heap bytes of a string beyond its inline buffer (libstdc++ keeps 15 chars inline).
inline size_t stringHeapBytes(const std::string& text) { return text.capacity() > 15 ? text.capacity() + 1 : 0; }

/// Heap bytes an unordered_map's nodes and buckets cost, roughly (libstdc++ node + malloc header).
template <typename Map>
size_t hashMapBytes(const Map& map)
{
    return map.size() * (sizeof(void*) + sizeof(typename Map::value_type) + 16) + map.bucket_count() * sizeof(void*);
}

/// Strings that repeat across flows (comm, user, rule, verdict, redirector names), stored once.
class StringPool {
public:
    StringPool() { intern({}); }  // id 0 is the empty string
    uint32_t intern(const std::string& text);
    const std::string& at(uint32_t id) const { return strings_[id]; }
    size_t memoryBytes() const;

private:
    std::vector<std::string> strings_;
    std::unordered_map<std::string, uint32_t> index_;
};

/// One hop without its blobs; the redirector and rule names are pool ids.
struct FlowHopRow {
    uint32_t redirectorId = 0;
    uint32_t name = 0;
    uint32_t rule = 0;
    uint32_t recordsSize = 0;
    uint32_t contextSize = 0;
    float connectMs = -1;
    uint8_t state = 0;
    bool external = false;
    bool recordsMissing = false;
    engine::EndReason reason = engine::EndReason::Open;
    uint64_t bytesUp = 0;
    uint64_t bytesDown = 0;
    uint64_t datagramsUp = 0;
    uint64_t datagramsDown = 0;
    int64_t startNs = 0;
    int64_t endNs = 0;
};

/// One flow without its blobs; comm, user, rule and verdict are pool ids.
struct FlowRow {
    uint64_t seq = 0;  ///< arrival order, for the model's row lookup by slot
    uint64_t key = 0;  ///< the model's key: flow id and node together (FlowModel::keyOf)
    uint64_t flowId = 0;
    int64_t startNs = 0;
    int64_t endNs = 0;
    uint64_t bytesUp = 0;
    uint64_t bytesDown = 0;
    uint64_t datagramsUp = 0;
    uint64_t datagramsDown = 0;
    uint64_t cgroupId = 0;
    uint32_t pid = 0;
    uint32_t uid = 0;
    uint32_t comm = 0;
    uint32_t user = 0;
    uint32_t rule = 0;
    uint32_t verdict = 0;
    uint32_t node = 0;
    uint32_t route = 0;  ///< Flow::routeText(), computed once per update
    engine::EndReason reason = engine::EndReason::Open;
    bool direct = false; ///< Flow::direct()
    bool datagramsCounted = false; ///< Flow::datagramsCounted()
    uint8_t protocol = 6; ///< IPPROTO_TCP or IPPROTO_UDP
    std::string destination;
    std::string host;
    std::vector<FlowHopRow> hops;

    bool ended() const { return reason != engine::EndReason::Open; }
    /// -1 while open (or when the clock went backwards).
    int64_t durationNs() const { return ended() && endNs >= startNs ? endNs - startNs : -1; }
    /// The largest records / context blob along the chain.
    uint32_t recordsSize() const;
    uint32_t contextSize() const;

    /// Takes the values of `flow` (not `seq`), interning its strings in `pool`.
    void assign(const engine::Flow& flow, StringPool& pool);
    /// The row as a Flow without blobs (hop sizes are there).
    void toFlow(const StringPool& pool, engine::Flow& out) const;
    /// Heap bytes beyond sizeof(FlowRow).
    size_t heapBytes() const;
};

}  // namespace redirect::gui

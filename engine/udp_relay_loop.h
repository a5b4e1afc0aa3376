// Inside the UDP relay (udp_relay.cpp, udp_relay_loop.cpp): its thread's sockets, flows and loop.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

#include "fd_handle.h"
#include "udp_relay.h"

namespace redirect::engine::udp_detail {

constexpr int kBatch = 32;                  // datagrams per recvmmsg()/sendmmsg()
constexpr size_t kDatagramMax = 65536;      // the largest UDP payload fits
constexpr int kWaitMs = 100;                // the loop's heartbeat and the idle sweep's period
constexpr int64_t kRecheckNs = 1000000000;  // a pause after which a source may be a new flow
constexpr int kRcvBuf = 1 << 21;            // bursts of a fast sender wait here, not dropped
constexpr size_t kSegmentedMax = 65000;     // payload of one UDP_SEGMENT send (the IP length field's limit)
constexpr size_t kSegmentsMax = 8;          // datagrams per UDP_SEGMENT send

inline int64_t steadyNs()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

enum class Kind : uint8_t { Listener, Flow };

/// A flow's key: the redirector socket and the source endpoint as it arrived. Fixed size, so
/// finding the flow of a datagram allocates nothing.
struct FlowKey {
    const void* listener = nullptr;
    std::array<unsigned char, sizeof(sockaddr_in6)> from{};
    bool operator==(const FlowKey&) const = default;
};

struct FlowKeyHash {
    size_t operator()(const FlowKey& k) const noexcept
    {
        size_t h = std::hash<std::string_view>{}(
            std::string_view(reinterpret_cast<const char*>(k.from.data()), k.from.size()));
        return h ^ (std::hash<const void*>{}(k.listener) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
    }
};

inline uint16_t portOf(const sockaddr_storage& ss)
{
    return ntohs(ss.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in&>(ss).sin_port
                                         : reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
}

}  // namespace redirect::engine::udp_detail

namespace redirect::engine {

using udp_detail::Kind;
using udp_detail::kBatch;

struct UdpRelay::Listener {
    Kind kind = Kind::Listener;
    FdHandle fd;
    std::shared_ptr<RedirectorRuntime> runtime;
};

struct UdpRelay::Flow {
    Kind kind = Kind::Flow;
    Listener* listener = nullptr;
    udp_detail::FlowKey key;
    sockaddr_storage app{};
    socklen_t appLen = 0;
    FdHandle upstream;    // invalid after a failed start: its datagrams are dropped until idle
    HopReport hop;
    int64_t idleNs = 0;
    int64_t lastClientNs = 0;  // steady clock
    int64_t lastActiveNs = 0;  // either way
    bool reported = false;     // its end went to the sink
    std::vector<iovec> pending;  // this batch's datagrams to send upstream
};

/// Everything the relay thread owns.
class UdpRelay::Loop {
public:
    explicit Loop(UdpRelay& relay);

    int epoll() const { return epoll_.fd(); }
    void run();
    void handle(Command& command);
    void endAll(EndReason reason);

private:
    void closed(const std::vector<uint64_t>& flowIds);
    void readListenersOf(const std::vector<Flow*>& flows);
    void readListener(Listener& l);
    void readUpstream(Flow& f);
    Flow* flowFor(Listener& l, const sockaddr_storage& from, socklen_t len, std::string_view first, int64_t now);
    Flow* startFlow(Listener& l, const udp_detail::FlowKey& key, const sockaddr_storage& from, socklen_t len, std::string_view first,
                    int64_t now);
    void flushUp(Flow& f);
    bool flushSegmented(Flow& f, size_t from, size_t n);
    /// False when `f` was not live (ended already).
    bool endFlow(Flow& f, EndReason reason);
    void bury(Flow& f);
    void sweep(int64_t now);
    int64_t idleNsFor(uint32_t ruleId) const;
    void dropped(const char* why, int error);

    UdpRelay& relay_;
    FdHandle epoll_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::unordered_map<udp_detail::FlowKey, std::unique_ptr<Flow>, udp_detail::FlowKeyHash> flows_;
    std::unordered_map<uint64_t, Flow*> byId_;  // the live flows of flows_ by flow id
    // Flows ended while this round's epoll events may still point at them.
    std::vector<std::unique_ptr<Flow>> graveyard_;
    std::vector<Flow*> touched_;  // readListener(): flows with datagrams to send in this batch
    std::vector<char> buffer_;
    iovec iov_[kBatch]{};
    mmsghdr in_[kBatch]{};
    sockaddr_storage from_[kBatch]{};
    mmsghdr out_[kBatch]{};
    bool segmentation_ = true;  // UDP_SEGMENT works here (until a send says otherwise)
    int64_t lastSweepNs_ = 0;
    int64_t lastDropLogNs_ = 0;
};

}  // namespace redirect::engine

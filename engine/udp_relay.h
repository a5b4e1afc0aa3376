// The UDP relay: each redirector of ours also takes redirected datagrams on a UDP socket, learns
// each flow from the SDK's UDP query and relays it through one connected upstream socket.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "relay.h"

namespace redirect::engine {

struct UdpRelayOptions {
    int netnsFd = -1;  ///< >= 0: every socket lives in that network namespace
    bool peek = true;  ///< record the query name of a flow's first datagram to port 53
    /// Called for each new UDP socket of a redirector before it can receive anything (the engine
    /// marks it for the callout, whose recvmsg hook then publishes each datagram's flow).
    std::function<void(int fd, uint32_t redirectorId)> markListener;
    /// The most flows open at once (each holds an upstream socket). A datagram that would start
    /// one more is dropped (counted, logged): sockets are cheap for any local user to make, and
    /// without a bound they could spend every descriptor the engine has, TCP's included.
    /// 0: a quarter of the descriptor limit (RLIMIT_NOFILE) when the relay starts, at least 1,024.
    size_t maxFlows = 0;
};

/**
 * One thread with its own epoll set for every redirector's UDP sockets and every flow's upstream
 * socket. A flow is a source endpoint at a redirector socket: its first datagram costs one UDP
 * query (records + context), one socket, SET and connect() to the original destination; later
 * datagrams cost nothing but the copy. Datagrams are read with recvmmsg() and sent on with
 * sendmmsg(), a batch per flow and per direction. A flow ends after its rule's idle timeout
 * without a datagram either way (reason idle), reported as a hop like a TCP connection.
 *
 * A flow also ends when its application socket closes (the callout's CLOSED event, through
 * applicationsClosed()), after the datagrams the socket sent before it closed.
 *
 * The callout may hand the same source endpoint to a new flow: after the rule's idle timeout
 * (the socket sends again), or when the socket closed and another bound its port before the
 * close reached us. A datagram that follows a pause of a second (or half the idle timeout, if
 * shorter) is therefore queried again, and a different flow id ends the old flow and starts a
 * new one.
 */
class UdpRelay {
public:
    UdpRelay(UdpRelayOptions options, Relay::HopSink sink);
    ~UdpRelay();
    UdpRelay(const UdpRelay&) = delete;
    UdpRelay& operator=(const UdpRelay&) = delete;

    /// Bind the redirector's UDP sockets on its IPv4 (and, if configured, IPv6) address: the
    /// configured port (the same number as TCP) or one the OS picks; throws with the reason.
    void addRedirector(std::shared_ptr<RedirectorRuntime> runtime, uint16_t* port4, uint16_t* port6);
    /// Close its sockets and end its flows (reason closed); returns when done.
    void removeRedirector(const std::shared_ptr<RedirectorRuntime>& runtime);
    /// Idle timeout in seconds by rule id, as the callout ends the flows it decided; flows that
    /// start from the return on get them (set them before the callout's rules change).
    void setIdleTimeouts(std::map<uint32_t, uint32_t> byRule);
    /// The callout saw these flows' application sockets close: their flows end (reason closed)
    /// once what the sockets sent before closing has been relayed. Does not wait.
    void applicationsClosed(std::vector<uint64_t> flowIds);
    /// steady_clock ns when the thread last went round its loop (at least every 100 ms).
    int64_t lastLoopNs() const { return lastLoop_.load(std::memory_order_relaxed); }
    uint64_t openFlows() const { return openFlows_.load(std::memory_order_relaxed); }
    /// Datagrams dropped: no flow known for their source, or an upstream that refused them.
    uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
    /// End every flow (reason closed), close every socket, join the thread.
    void stop();

    struct Listener;
    struct Flow;
    class Loop;

private:
    struct Command {
        std::unique_ptr<Listener> add;
        const RedirectorRuntime* remove = nullptr;
        std::vector<uint64_t> closed;  ///< flow ids whose application socket closed
    };
    void post(Command command, bool wait);

    UdpRelayOptions options_;
    Relay::HopSink sink_;
    std::unique_ptr<Loop> loop_;
    std::mutex mutex_;                 // commands_, done_, timeouts_
    std::condition_variable done_;
    std::vector<Command> commands_;
    uint64_t posted_ = 0, handled_ = 0;
    bool stopped_ = false;             // the thread is gone: commands run on the caller's thread
    std::map<uint32_t, uint32_t> timeouts_;
    std::atomic<int64_t> lastLoop_{0};
    std::atomic<uint64_t> openFlows_{0};
    std::atomic<uint64_t> dropped_{0};
    size_t maxFlows_ = 0;
    std::string limitText_;  // why a datagram at the flow limit was dropped, made once
    std::atomic<bool> stopping_{false};
    int wake_ = -1;
    std::thread thread_;
};

/// The query name of a DNS query ("example.com"), or "" for anything that is not one well-formed
/// question: bounds, label lengths (1-63), total length (255), and no compression pointer (a
/// query's only name has nothing earlier to point to). Never reads past `bytes`.
std::string peekDnsQueryName(std::string_view bytes);

}  // namespace redirect::engine

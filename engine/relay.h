// The relay: epoll workers that accept redirected connections, reach the
// original destination and move bytes both ways (copy for small flows, splice for bulk).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "redirector.h"

namespace redirect::engine {

class ShedReport;
class ChainRegistry;

/// A redirector as the relay runs it (shared with the engine for counters).
struct RedirectorRuntime {
    uint32_t id = 0;
    std::string name;
    RedirectorConfig config;
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> active{0};
    std::atomic<uint64_t> bytesUp{0};
    std::atomic<uint64_t> bytesDown{0};
    std::atomic<uint64_t> shed{0};  ///< reset at once for want of descriptors
    std::atomic<bool> enabled{true};
};

struct RelayOptions {
    int workers = 0;        ///< 0: one per CPU
    int netnsFd = -1;       ///< >= 0: run every socket in that network namespace
    bool peek = true;       ///< record TLS SNI / HTTP Host from the first client bytes
    int pipeBytes = 1 << 18;
    /// Consecutive hops through redirectors of this relay carry their bytes inside it: the
    /// connection between them is made (the callout sees and records every hop) but idle.
    bool inProcessChains = true;
    /// The redirector of ours the callout sent this (connecting) socket to, or 0: the relay
    /// asks after its upstream connect() when an in-process chain is possible.
    std::function<uint32_t(int fd)> redirectedTo;
    /// Called for each new listening socket of a redirector, before it can receive anything
    /// (the engine marks it for the callout); an exception fails addRedirector().
    std::function<void(int fd, uint32_t redirectorId)> markListener;
};

/**
 * Worker threads, each with its own epoll set and its own SO_REUSEPORT
 * listener per redirector and family, so the kernel spreads connections and
 * no lock is taken on the data path. A connection lives on the worker that
 * accepted it. Upstream connects are non-blocking with a deadline. Bytes move
 * through one scratch buffer per worker until a direction has carried 64 KiB,
 * then socket -> pipe -> socket with splice(); idle and small flows hold two
 * sockets and no pipe.
 *
 * At the descriptor limit (EMFILE, ENFILE) a worker resets the clients waiting
 * in its backlog (a spare descriptor makes room to accept each one) and stops
 * polling its listeners until one of its connections closes or 250 ms pass;
 * flows that would need a pipe keep copying. Logged at most once a second.
 */
class Relay {
public:
    using HopSink = std::function<void(HopReport&&)>;
    Relay(RelayOptions options, HopSink sink);
    ~Relay();
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    /// Start listening for `runtime` on 127.0.0.1 and (if configured) [::1]; fills the bound ports.
    void addRedirector(std::shared_ptr<RedirectorRuntime> runtime, uint16_t* port4, uint16_t* port6);
    /// Stop accepting for a redirector; its open connections finish normally.
    void removeRedirector(const std::shared_ptr<RedirectorRuntime>& runtime);
    int workerCount() const { return static_cast<int>(workers_.size()); }
    /// Connections open right now, all workers.
    uint64_t openConnections() const;
    /// steady_clock ns when the least recently looping worker last went round its loop (idle
    /// workers go round at least every 100 ms): the relay is alive if this is recent.
    int64_t oldestLoopNs() const;
    /// Connections reset at once at the descriptor limit, all workers.
    uint64_t shedConnections() const;
    void stop();

    class Worker;

private:
    RelayOptions options_;
    HopSink sink_;
    std::unique_ptr<ShedReport> shed_;
    std::unique_ptr<ChainRegistry> chains_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::mutex mutex_;
    bool stopped_ = false;
};

}  // namespace redirect::engine

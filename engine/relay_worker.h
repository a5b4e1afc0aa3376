// Inside the relay: one worker thread with its epoll set, its listeners and its
// connections (relay.cpp runs the loop and accepts, relay_connection.cpp relays).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fd_handle.h"
#include "relay.h"

namespace redirect::engine {

using RelayClock = std::chrono::steady_clock;

/// Anything registered with a worker's epoll set.
struct RelayHandler {
    virtual ~RelayHandler() = default;
    virtual void onEvents(uint32_t events) = 0;
};

/**
 * Descriptor exhaustion, shared by the workers: counted always, logged at most
 * once a second with what was shed meanwhile, so a flood of connections does
 * not become a flood of log lines.
 */
class ShedReport {
public:
    /// One exhaustion seen (errno `error`), `shed` connections reset because of it.
    void count(int error, uint64_t shed);
    /// Log what is pending when a second has passed since the last line.
    void flush();
    uint64_t total() const { return total_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> total_{0};
    std::atomic<uint64_t> pendingShed_{0};
    std::atomic<uint64_t> pendingEvents_{0};
    std::atomic<int> lastError_{0};
    std::atomic<int64_t> lastLogNs_{0};
};

class Relay::Worker {
public:
    Worker(const RelayOptions& options, const HopSink& sink, ShedReport& shed);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    void stop();
    /// From the control thread: take over a listening socket.
    void addListener(FdHandle fd, std::shared_ptr<RedirectorRuntime> runtime);
    void removeListeners(const RedirectorRuntime* runtime);
    uint64_t open() const { return open_.load(std::memory_order_relaxed); }
    int64_t lastLoopNs() const { return lastLoopNs_.load(std::memory_order_relaxed); }

private:
    struct Listener : RelayHandler {
        Listener(Worker* w, FdHandle f, std::shared_ptr<RedirectorRuntime> r)
            : worker(w), fd(std::move(f)), runtime(std::move(r)) {}
        void onEvents(uint32_t) override { worker->onListener(*this); }
        // Its epoll data: the address tagged in the low bit (connections carry slot tokens).
        uint64_t data() const { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(this)) | 1; }
        Worker* worker;
        FdHandle fd;  // invalid once the redirector is removed
        std::shared_ptr<RedirectorRuntime> runtime;
    };

    // One direction of a relayed connection: src -> (scratch buffer or pipe) -> dst.
    struct Pipe {
        FdHandle read;
        FdHandle write;
        size_t capacity = 0;   // what the pipe holds
        size_t queued = 0;     // bytes in the pipe
        bool srcEof = false;
        bool srcReady = true;  // src may hold unread bytes (edge-triggered: until a short read)
        bool srcHup = false;   // src reported its FIN: a short read then means the end
        bool dstShut = false;
        bool copyOnly = false; // no descriptors for a pipe: this direction keeps copying
        uint64_t moved = 0;    // bytes delivered to dst
        std::string pending;   // copy mode: read but not yet written (dst was full)
        bool hasPipe() const { return read.valid(); }
        void close()
        {
            read.close();
            write.close();
        }
        bool done() const { return srcEof && queued == 0 && pending.empty(); }
    };

    struct Connection;
    // Which socket of a connection an event is for: the upstream's first writable edge is
    // its connect completing, without asking the kernel.
    struct Side : RelayHandler {
        Connection* conn = nullptr;
        bool upstream = false;
        uint64_t token = 0;  // its epoll data (slot and generation), 0 before it is watched
        void onEvents(uint32_t events) override;
    };

    struct Connection {
        Worker* worker = nullptr;
        std::shared_ptr<RedirectorRuntime> runtime;
        FdHandle client;
        FdHandle upstream;
        bool connecting = true;
        bool peeked = false;
        bool closed = false;
        RelayClock::time_point connectStart;
        RelayClock::time_point deadline;
        Pipe up;    // client -> upstream
        Pipe down;  // upstream -> client
        HopReport hop;
        Side clientSide;
        Side upstreamSide;
    };

    // Connection sockets leave their epoll registration to close() (one system call less a
    // socket): their events carry a slot token that outlives the connection, so an event still
    // reported for a closed socket (a forked child holds a copy) finds no handler. Data 0 is
    // the wake-up, odd data a Listener.
    struct Slot {
        RelayHandler* handler = nullptr;
        uint32_t generation = 0;
    };
    uint64_t enroll(RelayHandler* handler);
    void withdraw(uint64_t token);
    RelayHandler* handlerFor(uint64_t data) const;

    // relay.cpp: the loop, listeners, accepting and shedding.
    void run();
    int nextTimeoutMs();
    void expireDeadlines();
    void onListener(Listener& l);
    void acceptAll(Listener& l);
    void outOfDescriptors(Listener& l, int error, uint64_t reset);
    uint64_t shedBacklog(Listener& l);
    void pauseListeners();
    void resumeListeners();
    static FdHandle openSpare();

    // relay_connection.cpp: one connection from accept to its hop report.
    int start(int fd, const std::shared_ptr<RedirectorRuntime>& runtime);
    void failConnect(Connection& c, int error);
    void onConnection(Connection& c, uint32_t events, bool fromUpstream);
    void halfClose(Pipe& p, int dst);
    void delivered(Connection& c, Pipe& p, size_t n);
    int copy(Connection& c, int src, int dst, Pipe& p);
    int pump(Connection& c, int src, int dst, Pipe& p);
    int makePipe(Pipe& p);
    void finish(Connection& c, EndReason reason, bool reset = false);
    void clearDeadline(Connection& c);
    void reap();

    static constexpr uint64_t kSpliceAfterBytes = 64 * 1024;
    static constexpr int kAcceptsPerEvent = 4;
    static constexpr int kMaxWaitMs = 100;
    // How long a listener stays quiet at the descriptor limit when no connection of this
    // worker closes meanwhile; each wake-up resets what waits in the backlog.
    static constexpr std::chrono::milliseconds kPausedRetry{250};

    char scratch_[64 * 1024];
    const RelayOptions& options_;
    const HopSink& sink_;
    ShedReport& shed_;
    FdHandle epoll_;
    FdHandle wake_;
    // Held back for the descriptor limit: closed to make room to accept and reset one client.
    FdHandle spare_;
    std::atomic<bool> stopping_{false};
    std::atomic<uint64_t> open_{0};
    std::atomic<int64_t> lastLoopNs_{0};  // steady_clock ns of the last loop round (heartbeat)
    std::thread thread_;
    std::mutex listenersMutex_;  // listeners_ and their descriptors, against removeListeners()
    std::vector<std::unique_ptr<Listener>> listeners_;
    bool paused_ = false;                  // listeners silenced at the descriptor limit
    bool freed_ = false;                   // a connection closed since they were
    RelayClock::time_point retryAt_;       // ... or try again then
    std::map<Connection*, std::unique_ptr<Connection>> connections_;
    std::multimap<RelayClock::time_point, Connection*> deadlines_;
    std::vector<Connection*> dead_;
    std::vector<Slot> slots_{1};  // slot 0: the wake-up, never a handler
    std::vector<uint32_t> freeSlots_;
};

}  // namespace redirect::engine

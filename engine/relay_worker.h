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

/**
 * In-process chains: where a hop of ours waits for the next hop of ours to take its flow.
 * The first hop registers (flow id, its hop count) before its upstream connect(); the next hop
 * finds the entry when it accepts that connection and hands itself to the first hop's worker,
 * which then carries both. Also the set of our redirector ids.
 */
class ChainRegistry {
public:
    struct Entry {
        Relay::Worker* worker = nullptr;
        void* connection = nullptr;  // the waiting hop's Connection, valid while `token` is live
        uint64_t token = 0;
    };
    static uint64_t key(uint64_t flowId, uint32_t hopCount) { return flowId * 31 + hopCount; }
    void add(uint64_t key, Entry entry);
    /// Take the entry (false: none), so exactly one hop claims it.
    bool take(uint64_t key, Entry* entry);
    /// Drop `key` if it is still `connection`'s.
    void remove(uint64_t key, const void* connection);
    void setOurs(uint32_t redirectorId, bool ours);
    bool ours(uint32_t redirectorId) const;
    /// Two redirectors or more: a chain of ours can happen.
    bool possible() const { return count_.load(std::memory_order_relaxed) >= 2; }

private:
    mutable std::mutex mutex_;
    std::map<uint64_t, Entry> entries_;
    std::vector<uint32_t> ours_;
    std::atomic<size_t> count_{0};
};

class Relay::Worker {
public:
    Worker(const RelayOptions& options, const HopSink& sink, ShedReport& shed, ChainRegistry& chains);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    void stop();
    /// From the control thread: take over a listening socket.
    void addListener(FdHandle fd, std::shared_ptr<RedirectorRuntime> runtime);
    void removeListeners(const RedirectorRuntime* runtime);
    uint64_t open() const { return open_.load(std::memory_order_relaxed); }
    /// From another worker: the next hop of a chain this worker's connection `entry` waits in;
    /// this worker carries it from now on.
    void adopt(FdHandle client, HopReport hop, std::shared_ptr<RedirectorRuntime> runtime,
               const ChainRegistry::Entry& entry);
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
        // In-process chains (relay_chain.cpp). The head (the application's hop) moves the bytes
        // between its client and the tail's upstream; the sockets between the hops stay idle.
        uint64_t chainKey = 0;       // registered, waiting for the next hop of ours
        bool awaitingNext = false;   // its upstream leads to a redirector of ours
        Connection* next = nullptr;  // the next hop, carried here
        Connection* prev = nullptr;  // the hop that carries this one
        bool linked = false;         // the chain is up: the head moves the bytes
    };
    struct Adopted {
        FdHandle client;
        HopReport hop;
        std::shared_ptr<RedirectorRuntime> runtime;
        ChainRegistry::Entry entry;
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
    Connection& open(FdHandle client, const std::shared_ptr<RedirectorRuntime>& runtime, HopReport hop);
    int connectUpstream(Connection& c);
    void failConnect(Connection& c, int error);
    void onConnection(Connection& c, uint32_t events, bool fromUpstream);
    void halfClose(Pipe& p, int dst);
    void relay(Connection& c);
    void delivered(Connection& c, Pipe& p, size_t n);
    int copy(Connection& c, int src, int dst, Pipe& p);
    int pump(Connection& c, int src, int dst, Pipe& p);
    int makePipe(Pipe& p);
    void finish(Connection& c, EndReason reason, bool reset = false);
    void clearDeadline(Connection& c);
    void reap();

    // relay_chain.cpp: in-process chains.
    bool handOver(FdHandle& client, HopReport& hop, const std::shared_ptr<RedirectorRuntime>& runtime);
    void registerChain(Connection& c);
    void checkChain(Connection& c);
    void takeAdopted();
    void linkUp(Connection& tail);
    void finishChain(Connection& c, EndReason reason, bool reset);
    static Connection& headOf(Connection& c);
    static Connection& tailOf(Connection& c);

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
    ChainRegistry& chains_;
    std::mutex inboxMutex_;
    std::vector<Adopted> inbox_;
    std::atomic<bool> inboxPending_{false};
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

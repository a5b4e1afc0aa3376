#include "relay.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstring>
#include <map>
#include <stdexcept>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "peek.h"
#include "redirect/sio.h"

namespace redirect::engine {

namespace {

using Clock = std::chrono::steady_clock;

int64_t steadyNowNs() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

// Anything registered with a worker's epoll set.
struct Handler {
    virtual ~Handler() = default;
    virtual void onEvents(uint32_t events) = 0;
};

}  // namespace

class Relay::Worker {
public:
    Worker(const RelayOptions& options, const HopSink& sink) : options_(options), sink_(sink)
    {
        epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
        wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (epoll_ < 0 || wake_ < 0)
            throw std::runtime_error(std::string("relay worker: ") + std::strerror(errno));
        epoll_event ev{EPOLLIN, {.ptr = nullptr}};
        ::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev);
        thread_ = std::thread([this] { run(); });
    }

    ~Worker()
    {
        stop();
        ::close(epoll_);
        ::close(wake_);
    }

    void stop()
    {
        if (stopping_.exchange(true))
            return;
        uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(wake_, &one, sizeof(one));
        if (thread_.joinable())
            thread_.join();
    }

    // Called from the control thread; epoll_ctl is safe across threads.
    void addListener(int fd, std::shared_ptr<RedirectorRuntime> runtime)
    {
        auto listener = std::make_unique<Listener>(this, fd, std::move(runtime));
        epoll_event ev{EPOLLIN, {.ptr = listener.get()}};
        std::lock_guard lock(listenersMutex_);
        ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
        listeners_.push_back(std::move(listener));
    }

    void removeListeners(const RedirectorRuntime* runtime)
    {
        std::lock_guard lock(listenersMutex_);
        for (auto& l : listeners_)
            if (l->runtime.get() == runtime && l->fd >= 0) {
                ::epoll_ctl(epoll_, EPOLL_CTL_DEL, l->fd, nullptr);
                ::close(l->fd);
                l->fd = -1;
            }
    }

    uint64_t open() const { return open_.load(std::memory_order_relaxed); }
    int64_t lastLoopNs() const { return lastLoopNs_.load(std::memory_order_relaxed); }

private:
    struct Listener : Handler {
        Listener(Worker* w, int f, std::shared_ptr<RedirectorRuntime> r) : worker(w), fd(f), runtime(std::move(r)) {}
        ~Listener() override
        {
            if (fd >= 0)
                ::close(fd);
        }
        void onEvents(uint32_t) override { worker->acceptAll(*this); }
        Worker* worker;
        int fd;
        std::shared_ptr<RedirectorRuntime> runtime;
    };

    // One direction of a relayed connection: src -> pipe -> dst.
    struct Pipe {
        int fds[2] = {-1, -1};
        size_t queued = 0;     // bytes in the pipe
        bool srcEof = false;
        bool dstShut = false;
        uint64_t moved = 0;    // bytes delivered to dst
        std::string pending;   // copy mode: read but not yet written (dst was full)
        void close()
        {
            for (int& f : fds)
                if (f >= 0) {
                    ::close(f);
                    f = -1;
                }
        }
        bool done() const { return srcEof && queued == 0 && pending.empty(); }
    };

    struct Connection;
    // Which socket of a connection an event is for: the upstream's first writable edge is
    // its connect completing, without asking the kernel.
    struct Side : Handler {
        Connection* conn = nullptr;
        bool upstream = false;
        void onEvents(uint32_t events) override;
    };

    struct Connection {
        Worker* worker = nullptr;
        std::shared_ptr<RedirectorRuntime> runtime;
        int client = -1;
        int upstream = -1;
        bool connecting = true;
        bool peeked = false;
        bool closed = false;
        Clock::time_point connectStart;
        Clock::time_point deadline;
        Pipe up;    // client -> upstream
        Pipe down;  // upstream -> client
        HopReport hop;
        Side clientSide;
        Side upstreamSide;
    };

    void run()
    {
        // splice() into a socket whose peer is gone raises SIGPIPE (it has no MSG_NOSIGNAL).
        // Blocked in the relay's own threads, it stays pending and splice returns EPIPE,
        // reported as a reset; the rest of the process keeps its own disposition.
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
        if (options_.netnsFd >= 0 && ::setns(options_.netnsFd, CLONE_NEWNET) != 0)
            spdlog::error("relay worker: cannot enter network namespace: {}", std::strerror(errno));
        epoll_event events[256];
        while (!stopping_) {
            lastLoopNs_.store(steadyNowNs(), std::memory_order_relaxed);
            int n = ::epoll_wait(epoll_, events, 256, nextTimeoutMs());
            for (int i = 0; i < n; ++i) {
                if (!events[i].data.ptr)
                    continue;  // wake-up
                static_cast<Handler*>(events[i].data.ptr)->onEvents(events[i].events);
            }
            expireDeadlines();
            reap();
        }
        for (auto& [ptr, conn] : connections_)
            finish(*conn, EndReason::Error);
        reap();
    }

    int nextTimeoutMs()
    {
        // Wake at least every kMaxWaitMs even when idle: the engine's heartbeat counts on it.
        if (deadlines_.empty())
            return kMaxWaitMs;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadlines_.begin()->first - Clock::now());
        return static_cast<int>(std::clamp<int64_t>(left.count() + 1, 0, kMaxWaitMs));
    }

    void expireDeadlines()
    {
        auto now = Clock::now();
        while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
            Connection* c = deadlines_.begin()->second;
            deadlines_.erase(deadlines_.begin());
            if (!c->closed && c->connecting) {
                c->hop.connectMs = std::chrono::duration<double, std::milli>(now - c->connectStart).count();
                failConnect(*c, ETIMEDOUT);
            }
        }
    }

    void acceptAll(Listener& l)
    {
        for (;;) {
            int fd = ::accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE)
                    spdlog::warn("redirector {}: out of file descriptors, connection left in backlog", l.runtime->name);
                return;
            }
            start(fd, l.runtime);
        }
    }

    void start(int fd, const std::shared_ptr<RedirectorRuntime>& runtime)
    {
        auto owned = std::make_unique<Connection>();
        Connection& c = *owned;
        c.worker = this;
        c.runtime = runtime;
        c.client = fd;
        c.hop.redirectorId = runtime->id;
        c.hop.startNs = wallNowNs();
        connections_.emplace(&c, std::move(owned));
        open_.fetch_add(1, std::memory_order_relaxed);
        runtime->accepted.fetch_add(1, std::memory_order_relaxed);
        runtime->active.fetch_add(1, std::memory_order_relaxed);

        // QUERY on the accepted socket: where the application wanted to go.
        if (!queryBlob(fd, SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, c.hop.records) ||
            !queryBlob(fd, SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT, c.hop.context)) {
            finish(c, EndReason::NoRecords);
            return;
        }
        redirect_records_info info{};
        if (redirect_records_decode(c.hop.records.data(), c.hop.records.size(), &info) == 0)
            c.hop.flowId = info.flow_id;
        socklen_t len = 0;
        redirect_context_destination(c.hop.context.data(), c.hop.context.size(), &c.hop.destination, &len);
        pid_t pid = 0;
        redirect_context_pid(c.hop.context.data(), c.hop.context.size(), &pid);
        c.hop.clientPid = pid;
        char comm[16] = {};
        redirect_context_comm(c.hop.context.data(), c.hop.context.size(), comm, sizeof(comm));
        c.hop.clientComm = comm;

        c.upstream = ::socket(c.hop.destination.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
        if (c.upstream < 0) {
            failConnect(c, errno);
            return;
        }
        if (!runtime->config.skipSet) {
            // SET before connect: the callout sees this hop and never loops back to us.
            size_t used = 0;
            if (redirect_ioctl(c.upstream, SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS, c.hop.records.data(),
                               c.hop.records.size(), nullptr, 0, &used, nullptr, nullptr) != 0) {
                failConnect(c, errno);
                return;
            }
            c.hop.setRecords = true;
        }
        int one = 1;
        ::setsockopt(c.upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        ::setsockopt(c.client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c.connectStart = Clock::now();
        socklen_t dlen = c.hop.destination.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
        if (::connect(c.upstream, reinterpret_cast<sockaddr*>(&c.hop.destination), dlen) != 0 && errno != EINPROGRESS) {
            c.hop.connectMs = 0;
            failConnect(c, errno);
            return;
        }
        c.deadline = c.connectStart + std::chrono::milliseconds(runtime->config.connectTimeoutMs);
        deadlines_.emplace(c.deadline, &c);
        // Edge-triggered: readiness already there at ADD time is reported at once.
        c.clientSide.conn = &c;
        c.upstreamSide.conn = &c;
        c.upstreamSide.upstream = true;
        epoll_event up{EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, {.ptr = &c.upstreamSide}};
        epoll_event down{EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, {.ptr = &c.clientSide}};
        ::epoll_ctl(epoll_, EPOLL_CTL_ADD, c.upstream, &up);
        ::epoll_ctl(epoll_, EPOLL_CTL_ADD, c.client, &down);
    }

    void failConnect(Connection& c, int error)
    {
        // A dead upstream resets the client at once, so it can fall back (Happy Eyeballs).
        finish(c, endReasonForErrno(error), /*resetClient=*/true);
    }

    void onConnection(Connection& c, uint32_t events, bool fromUpstream)
    {
        if (c.closed)
            return;
        if (c.connecting) {
            if (!fromUpstream)
                return;  // the client's data waits: copy() reads it once the upstream is up
            int error = 0;
            socklen_t el = sizeof(error);
            ::getsockopt(c.upstream, SOL_SOCKET, SO_ERROR, &error, &el);
            if (error) {
                c.hop.connectMs = std::chrono::duration<double, std::milli>(Clock::now() - c.connectStart).count();
                failConnect(c, error);
                return;
            }
            // Connected only once the upstream reports writable (or readable with data).
            if (!(events & (EPOLLOUT | EPOLLIN))) {
                if (events & (EPOLLHUP | EPOLLERR))
                    failConnect(c, ECONNREFUSED);
                return;
            }
            c.connecting = false;
            c.hop.connectMs = std::chrono::duration<double, std::milli>(Clock::now() - c.connectStart).count();
            clearDeadline(c);
        }
        int error = pump(c, c.client, c.upstream, c.up);
        if (!error)
            error = pump(c, c.upstream, c.client, c.down);
        if (error) {
            finish(c, endReasonForErrno(error), /*resetClient=*/true);
            return;
        }
        if (c.up.done() && c.down.done() && c.up.dstShut && c.down.dstShut)
            finish(c, EndReason::Closed);
    }

    void delivered(Connection& c, Pipe& p, size_t n)
    {
        p.moved += n;
        (&p == &c.up ? c.runtime->bytesUp : c.runtime->bytesDown).fetch_add(n, std::memory_order_relaxed);
    }

    // Small flows (most connections) move through one scratch buffer: a pipe pair costs six
    // system calls to make and close, more than the copy. Returns 0 or an errno.
    int copy(Connection& c, int src, int dst, Pipe& p)
    {
        for (;;) {
            if (!p.pending.empty()) {
                ssize_t w = ::send(dst, p.pending.data(), p.pending.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w < 0)
                    return errno == EAGAIN ? 0 : errno;
                delivered(c, p, static_cast<size_t>(w));
                p.pending.erase(0, static_cast<size_t>(w));
                if (!p.pending.empty())
                    return 0;
            }
            if (p.srcEof || p.moved >= kSpliceAfterBytes)
                return 0;
            ssize_t n = ::recv(src, scratch_, sizeof(scratch_), MSG_DONTWAIT);
            if (n == 0) {
                p.srcEof = true;
                return 0;
            }
            if (n < 0)
                return errno == EAGAIN ? 0 : errno;
            if (&p == &c.up && !c.peeked) {
                // The first client bytes name the destination (TLS SNI, HTTP Host).
                c.peeked = true;
                if (options_.peek)
                    c.hop.host = peekHost(std::string_view(scratch_, static_cast<size_t>(n)));
            }
            ssize_t w = ::send(dst, scratch_, static_cast<size_t>(n), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0 && errno != EAGAIN)
                return errno;
            w = std::max<ssize_t>(w, 0);
            delivered(c, p, static_cast<size_t>(w));
            if (w < n) {
                p.pending.assign(scratch_ + w, static_cast<size_t>(n - w));
                return 0;
            }
        }
    }

    // Move what can move from src to dst; 0, or the errno that ended the connection.
    // Copy first; a direction that carries more than kSpliceAfterBytes switches to splice.
    int pump(Connection& c, int src, int dst, Pipe& p)
    {
        if (p.fds[0] < 0 && (p.moved < kSpliceAfterBytes || !p.pending.empty())) {
            if (int error = copy(c, src, dst, p))
                return error;
        }
        while (p.fds[0] >= 0 || (p.moved >= kSpliceAfterBytes && p.pending.empty())) {
            bool progress = false;
            if (p.queued > 0) {
                ssize_t n = ::splice(p.fds[0], nullptr, dst, nullptr, p.queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n > 0) {
                    p.queued -= static_cast<size_t>(n);
                    delivered(c, p, static_cast<size_t>(n));
                    progress = true;
                } else if (n < 0 && errno != EAGAIN) {
                    return errno;
                }
            }
            if (!p.srcEof && p.queued < static_cast<size_t>(options_.pipeBytes)) {
                if (p.fds[0] < 0 && !makePipe(p))
                    return errno;
                ssize_t n = ::splice(src, nullptr, p.fds[1], nullptr, static_cast<size_t>(options_.pipeBytes) - p.queued,
                                     SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n > 0) {
                    p.queued += static_cast<size_t>(n);
                    progress = true;
                } else if (n == 0) {
                    p.srcEof = true;
                } else if (errno != EAGAIN) {
                    return errno;
                }
            }
            if (!progress)
                break;
        }
        if (p.done() && !p.dstShut) {
            ::shutdown(dst, SHUT_WR);  // half-close travels on
            p.dstShut = true;
            p.close();
        }
        return 0;
    }

    bool makePipe(Pipe& p)
    {
        if (::pipe2(p.fds, O_NONBLOCK | O_CLOEXEC) != 0)
            return false;
        ::fcntl(p.fds[1], F_SETPIPE_SZ, options_.pipeBytes);
        return true;
    }

    void finish(Connection& c, EndReason reason, bool resetClient = false)
    {
        if (c.closed)
            return;
        c.closed = true;
        c.hop.reason = reason;
        c.hop.bytesUp = c.up.moved;
        c.hop.bytesDown = c.down.moved;
        c.hop.endNs = wallNowNs();
        // close() takes a socket out of the epoll set: no EPOLL_CTL_DEL needed.
        if (c.upstream >= 0) {
            if (resetClient)
                resetAndClose(c.upstream);
            else
                ::close(c.upstream);
        }
        if (c.client >= 0) {
            if (resetClient)
                resetAndClose(c.client);
            else
                ::close(c.client);
        }
        c.up.close();
        c.down.close();
        c.runtime->active.fetch_sub(1, std::memory_order_relaxed);
        open_.fetch_sub(1, std::memory_order_relaxed);
        if (c.connecting)
            clearDeadline(c);
        sink_(std::move(c.hop));
        dead_.push_back(&c);
    }

    void clearDeadline(Connection& c)
    {
        for (auto it = deadlines_.lower_bound(c.deadline); it != deadlines_.end() && it->first == c.deadline; ++it)
            if (it->second == &c) {
                deadlines_.erase(it);
                return;
            }
    }

    // Free finished connections after the event batch: later events in it may still name them.
    void reap()
    {
        for (Connection* c : dead_)
            connections_.erase(c);
        dead_.clear();
    }

    static constexpr uint64_t kSpliceAfterBytes = 64 * 1024;
    static constexpr int kMaxWaitMs = 100;
    std::atomic<int64_t> lastLoopNs_{steadyNowNs()};
    char scratch_[64 * 1024];
    const RelayOptions& options_;
    const HopSink& sink_;
    int epoll_ = -1;
    int wake_ = -1;
    std::atomic<bool> stopping_{false};
    std::atomic<uint64_t> open_{0};
    std::thread thread_;
    std::mutex listenersMutex_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::map<Connection*, std::unique_ptr<Connection>> connections_;
    std::multimap<Clock::time_point, Connection*> deadlines_;
    std::vector<Connection*> dead_;
};

void Relay::Worker::Side::onEvents(uint32_t events) { conn->worker->onConnection(*conn, events, upstream); }

Relay::Relay(RelayOptions options, HopSink sink) : options_(options), sink_(std::move(sink))
{
    int n = options_.workers > 0 ? options_.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (int i = 0; i < n; ++i)
        workers_.push_back(std::make_unique<Worker>(options_, sink_));
}

Relay::~Relay() { stop(); }

void Relay::stop()
{
    std::lock_guard lock(mutex_);
    if (stopped_)
        return;
    stopped_ = true;
    for (auto& w : workers_)
        w->stop();
}

void Relay::addRedirector(std::shared_ptr<RedirectorRuntime> runtime, uint16_t* port4, uint16_t* port6)
{
    // Sockets belong to the network namespace of the thread that creates them.
    std::exception_ptr error;
    std::vector<std::pair<int, int>> fds;  // (v4, v6) per worker
    std::thread maker([&] {
        try {
            if (options_.netnsFd >= 0 && ::setns(options_.netnsFd, CLONE_NEWNET) != 0)
                throw std::runtime_error(std::string("enter network namespace: ") + std::strerror(errno));
            uint16_t p4 = runtime->config.port4, p6 = runtime->config.port6;
            for (size_t i = 0; i < workers_.size(); ++i) {
                // SO_REUSEPORT: one listener per worker on the same port; the kernel spreads connections.
                int v4 = listenLoopback(AF_INET, p4, true, true, &p4, runtime->config.addr4.data());
                int v6 = -1;
                if (runtime->config.listen6) {
                    try {
                        v6 = listenLoopback(AF_INET6, p6, true, true, &p6, runtime->config.addr6.data());
                    } catch (...) {
                        ::close(v4);
                        throw;
                    }
                }
                fds.emplace_back(v4, v6);
                // Marked before the callout can send anything here: see CALLOUT_ROLE_LISTENER.
                if (options_.markListener) {
                    options_.markListener(v4, runtime->id);
                    if (v6 >= 0)
                        options_.markListener(v6, runtime->id);
                }
            }
            *port4 = p4;
            *port6 = runtime->config.listen6 ? p6 : 0;
        } catch (...) {
            error = std::current_exception();
        }
    });
    maker.join();
    if (error) {
        for (auto [v4, v6] : fds) {
            ::close(v4);
            if (v6 >= 0)
                ::close(v6);
        }
        std::rethrow_exception(error);
    }
    for (size_t i = 0; i < workers_.size(); ++i) {
        workers_[i]->addListener(fds[i].first, runtime);
        if (fds[i].second >= 0)
            workers_[i]->addListener(fds[i].second, runtime);
    }
}

void Relay::removeRedirector(const std::shared_ptr<RedirectorRuntime>& runtime)
{
    for (auto& w : workers_)
        w->removeListeners(runtime.get());
}

int64_t Relay::oldestLoopNs() const
{
    int64_t oldest = INT64_MAX;
    for (auto& w : workers_)
        oldest = std::min(oldest, w->lastLoopNs());
    return oldest;
}

uint64_t Relay::openConnections() const
{
    uint64_t n = 0;
    for (auto& w : workers_)
        n += w->open();
    return n;
}

}  // namespace redirect::engine

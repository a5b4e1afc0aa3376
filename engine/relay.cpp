#include "relay.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "relay_worker.h"

namespace redirect::engine {

namespace {

int64_t steadyNs()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(RelayClock::now().time_since_epoch()).count();
}

std::runtime_error workerError(const char* what, int error)
{
    return std::runtime_error(std::string("relay worker: ") + what + ": " + std::strerror(error));
}

}  // namespace

void ShedReport::count(int error, uint64_t shed)
{
    total_.fetch_add(shed, std::memory_order_relaxed);
    pendingShed_.fetch_add(shed, std::memory_order_relaxed);
    lastError_.store(error, std::memory_order_relaxed);
    pendingEvents_.fetch_add(1, std::memory_order_relaxed);
    flush();
}

void ShedReport::flush()
{
    if (pendingEvents_.load(std::memory_order_relaxed) == 0)
        return;
    int64_t now = steadyNs(), last = lastLogNs_.load(std::memory_order_relaxed);
    if (last != 0 && now - last < 1000000000)
        return;
    if (!lastLogNs_.compare_exchange_strong(last, now))
        return;  // another worker reports this second
    uint64_t events = pendingEvents_.exchange(0), shed = pendingShed_.exchange(0);
    int error = lastError_.load(std::memory_order_relaxed);
    rlimit lim{};
    std::string limit = ::getrlimit(RLIMIT_NOFILE, &lim) == 0 ? std::to_string(lim.rlim_cur) : "unknown";
    spdlog::warn("relay: cannot accept connections: {} (RLIMIT_NOFILE {}); {} waiting clients reset, {} refusals "
                 "since the last report; accepting resumes as descriptors free up",
                 std::strerror(error), limit, shed, events);
}

Relay::Worker::Worker(const RelayOptions& options, const HopSink& sink, ShedReport& shed, ChainRegistry& chains)
    : options_(options), sink_(sink), shed_(shed), chains_(chains)
{
    lastLoopNs_.store(steadyNs(), std::memory_order_relaxed);  // alive from the start
    epoll_ = FdHandle(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid())
        throw workerError("epoll_create1", errno);
    wake_ = FdHandle(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!wake_.valid())
        throw workerError("eventfd", errno);
    if (SysResult r = wake_.watch(epoll_.fd(), EPOLLIN, nullptr); !r.ok())
        throw workerError("epoll_ctl", r.error);
    spare_ = openSpare();
    if (!spare_.valid())
        throw workerError("spare descriptor", errno);
    thread_ = std::thread([this] { run(); });
}

Relay::Worker::~Worker() { stop(); }

void Relay::Worker::stop()
{
    if (stopping_.exchange(true))
        return;
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_.fd(), &one, sizeof(one));  // fails only when already signalled
    if (thread_.joinable())
        thread_.join();
}

void Relay::Worker::addListener(FdHandle fd, std::shared_ptr<RedirectorRuntime> runtime)
{
    auto listener = std::make_unique<Listener>(this, std::move(fd), std::move(runtime));
    std::lock_guard lock(listenersMutex_);
    // A paused worker is at the descriptor limit: the new listener joins quiet, woken with the rest.
    if (SysResult r = listener->fd.watch(epoll_.fd(), paused_ ? 0u : uint32_t(EPOLLIN), listener->data()); !r.ok())
        throw std::runtime_error("relay: cannot poll listener: " + r.text());
    listeners_.push_back(std::move(listener));
}

void Relay::Worker::removeListeners(const RedirectorRuntime* runtime)
{
    std::lock_guard lock(listenersMutex_);
    for (auto& l : listeners_)
        if (l->runtime.get() == runtime)
            l->fd.shutdownAndClose();  // a forked child holding it must not keep it listening
}

void Relay::Worker::run()
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
        lastLoopNs_.store(steadyNs(), std::memory_order_relaxed);
        int n = ::epoll_wait(epoll_.fd(), events, 256, nextTimeoutMs());
        if (n < 0 && errno != EINTR) {
            spdlog::error("relay worker: epoll_wait: {}; its connections end", std::strerror(errno));
            break;
        }
        for (int i = 0; i < n; ++i)
            if (RelayHandler* h = handlerFor(events[i].data.u64))
                h->onEvents(events[i].events);
        if (inboxPending_.exchange(false, std::memory_order_acq_rel))
            takeAdopted();
        expireDeadlines();
        reap();
        if (paused_ && (freed_ || RelayClock::now() >= retryAt_)) {
            std::lock_guard lock(listenersMutex_);
            resumeListeners();
        }
        shed_.flush();
    }
    for (auto& [ptr, conn] : connections_)
        finish(*conn, EndReason::Error);
    reap();
}

uint64_t Relay::Worker::enroll(RelayHandler* handler)
{
    uint32_t index;
    if (!freeSlots_.empty()) {
        index = freeSlots_.back();
        freeSlots_.pop_back();
    } else {
        index = static_cast<uint32_t>(slots_.size());
        slots_.emplace_back();
    }
    slots_[index].handler = handler;
    // Even: odd data names a Listener. 31 bits of generation: a slot is reused 2^31 times
    // before an old token could match again, and a stale registration lives for one fork.
    return (uint64_t(slots_[index].generation & 0x7fffffffu) << 33) | (uint64_t(index) << 1);
}

void Relay::Worker::withdraw(uint64_t token)
{
    if (token == 0)
        return;
    uint32_t index = static_cast<uint32_t>(token >> 1);
    slots_[index].handler = nullptr;
    ++slots_[index].generation;
    freeSlots_.push_back(index);
}

RelayHandler* Relay::Worker::handlerFor(uint64_t data) const
{
    if (data & 1)
        return reinterpret_cast<Listener*>(static_cast<uintptr_t>(data & ~uint64_t(1)));
    uint32_t index = static_cast<uint32_t>(data >> 1);
    if (index == 0 || index >= slots_.size() || (slots_[index].generation & 0x7fffffffu) != (data >> 33))
        return nullptr;  // the wake-up, or a connection that has ended
    return slots_[index].handler;
}

int Relay::Worker::nextTimeoutMs()
{
    // Wake at least every kMaxWaitMs even when idle: the engine's heartbeat counts on it.
    auto next = RelayClock::now() + std::chrono::milliseconds(kMaxWaitMs);
    if (!deadlines_.empty())
        next = std::min(next, deadlines_.begin()->first);
    if (paused_)
        next = std::min(next, retryAt_);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next - RelayClock::now());
    return static_cast<int>(std::clamp<int64_t>(left.count() + 1, 0, kMaxWaitMs));
}

void Relay::Worker::expireDeadlines()
{
    auto now = RelayClock::now();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
        Connection* c = deadlines_.begin()->second;
        deadlines_.erase(deadlines_.begin());
        if (!c->closed && c->connecting) {
            c->hop.connectMs = std::chrono::duration<double, std::milli>(now - c->connectStart).count();
            failConnect(*c, ETIMEDOUT);
        }
    }
}

void Relay::Worker::onListener(Listener& l)
{
    // removeListeners() closes from the control thread: accept under the same lock. An event
    // read in the batch that paused the listeners waits for them to resume.
    std::lock_guard lock(listenersMutex_);
    if (l.fd.valid() && !paused_)
        acceptAll(l);
}

void Relay::Worker::acceptAll(Listener& l)
{
    // Listeners are level-triggered: a few accepts per event and the rest at the next round,
    // rather than one more accept4() each time to learn (EAGAIN) that the backlog is empty.
    for (int i = 0; i < kAcceptsPerEvent; ++i) {
        int fd = ::accept4(l.fd.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if (int error = start(fd, l.runtime)) {
                outOfDescriptors(l, error, 1);  // that client was reset: no descriptor for its upstream
                return;
            }
            continue;
        }
        switch (int error = errno) {
        case EAGAIN:
            return;
        // That client's own trouble (accept(2) passes on its network errors): take the next.
        case EINTR: case ECONNABORTED: case EPROTO: case EPERM: case ENETDOWN: case ENOPROTOOPT:
        case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
            continue;
        default:
            // The listener stays readable: polling it again now would spin. EMFILE, ENFILE,
            // ENOBUFS, ENOMEM, or a broken listener.
            outOfDescriptors(l, error, 0);
            return;
        }
    }
}

void Relay::Worker::outOfDescriptors(Listener& l, int error, uint64_t reset)
{
    uint64_t shed = reset + (error == EMFILE || error == ENFILE ? shedBacklog(l) : 0);
    l.runtime->shed.fetch_add(shed, std::memory_order_relaxed);
    shed_.count(error, shed);
    pauseListeners();
}

uint64_t Relay::Worker::shedBacklog(Listener& l)
{
    // Clients in the backlog would wait for a descriptor that may never come: the spare makes
    // room to accept each one and reset it, so it can try elsewhere at once.
    uint64_t shed = 0;
    while (spare_.valid()) {
        spare_.close();
        FdHandle client(::accept4(l.fd.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        int error = client.valid() ? 0 : errno;
        if (client.valid()) {
            HopReport hop;
            hop.redirectorId = l.runtime->id;
            hop.startNs = wallNowNs();
            bool described = describeAccepted(client.fd(), hop);
            client.resetAndClose();
            hop.endNs = wallNowNs();
            hop.reason = described ? EndReason::Error : EndReason::NoRecords;
            l.runtime->accepted.fetch_add(1, std::memory_order_relaxed);
            sink_(std::move(hop));
            ++shed;
        }
        spare_ = openSpare();  // on failure the listeners stay paused until a connection closes
        if (error && error != EINTR && error != ECONNABORTED)
            break;  // EAGAIN: nobody else waits
    }
    return shed;
}

void Relay::Worker::pauseListeners()
{
    for (auto& l : listeners_)
        if (l->fd.valid())
            if (SysResult r = l->fd.rewatch(0, l->data()); !r.ok())
                spdlog::error("relay: cannot pause a listener at the descriptor limit: {}", r.text());
    paused_ = true;
    freed_ = false;
    retryAt_ = RelayClock::now() + kPausedRetry;
}

void Relay::Worker::resumeListeners()
{
    if (!spare_.valid())
        spare_ = openSpare();
    for (auto& l : listeners_)
        if (l->fd.valid())
            if (SysResult r = l->fd.rewatch(EPOLLIN, l->data()); !r.ok())
                spdlog::error("relay: cannot resume a listener: {}", r.text());
    paused_ = false;
}

FdHandle Relay::Worker::openSpare() { return FdHandle(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }

Relay::Relay(RelayOptions options, HopSink sink)
    : options_(options), sink_(std::move(sink)), shed_(std::make_unique<ShedReport>()),
      chains_(std::make_unique<ChainRegistry>())
{
    int n = options_.workers > 0 ? options_.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (int i = 0; i < n; ++i)
        workers_.push_back(std::make_unique<Worker>(options_, sink_, *shed_, *chains_));
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
                        FdHandle(v4).close();
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
    std::vector<std::pair<FdHandle, FdHandle>> owned;
    for (auto [v4, v6] : fds)
        owned.emplace_back(FdHandle(v4), FdHandle(v6));
    if (error)
        std::rethrow_exception(error);
    try {
        for (size_t i = 0; i < workers_.size(); ++i) {
            workers_[i]->addListener(std::move(owned[i].first), runtime);
            if (owned[i].second.valid())
                workers_[i]->addListener(std::move(owned[i].second), runtime);
        }
    } catch (...) {
        removeRedirector(runtime);  // all workers or none
        throw;
    }
    chains_->setOurs(runtime->id, true);
}

void Relay::removeRedirector(const std::shared_ptr<RedirectorRuntime>& runtime)
{
    chains_->setOurs(runtime->id, false);
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

uint64_t Relay::shedConnections() const { return shed_->total(); }

}  // namespace redirect::engine

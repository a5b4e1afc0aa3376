// One relayed connection on its worker: QUERY, outbound socket with SET, connect with a
// deadline, bytes both ways with half-close, and the hop report at the end.
#include <algorithm>
#include <cerrno>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "peek.h"
#include "redirect/sio.h"
#include "relay_worker.h"

namespace redirect::engine {

namespace {

bool isDescriptorLimit(int error) { return error == EMFILE || error == ENFILE; }

}  // namespace

void Relay::Worker::Side::onEvents(uint32_t events) { conn->worker->onConnection(*conn, events, upstream); }

int Relay::Worker::start(int fd, const std::shared_ptr<RedirectorRuntime>& runtime)
{
    runtime->accepted.fetch_add(1, std::memory_order_relaxed);
    FdHandle client(fd);
    HopReport hop;
    hop.redirectorId = runtime->id;
    hop.startNs = wallNowNs();
    bool described = describeAccepted(fd, hop);
    if (described && handOver(client, hop, runtime))
        return 0;  // the previous hop's worker carries it (relay_chain.cpp)
    Connection& c = open(std::move(client), runtime, std::move(hop));
    if (!described) {
        finish(c, EndReason::NoRecords);
        return 0;
    }
    return connectUpstream(c);
}

Relay::Worker::Connection& Relay::Worker::open(FdHandle client, const std::shared_ptr<RedirectorRuntime>& runtime,
                                               HopReport hop)
{
    auto owned = std::make_unique<Connection>();
    Connection& c = *owned;
    c.worker = this;
    c.runtime = runtime;
    c.client = std::move(client);
    c.hop = std::move(hop);
    connections_.emplace(&c, std::move(owned));
    open_.fetch_add(1, std::memory_order_relaxed);
    runtime->active.fetch_add(1, std::memory_order_relaxed);
    return c;
}

// 0, or the errno of a descriptor limit (the caller stops accepting for a while).
int Relay::Worker::connectUpstream(Connection& c)
{
    const auto& runtime = c.runtime;
    c.upstream =
        FdHandle(::socket(c.hop.destination.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
    if (!c.upstream.valid()) {
        int error = errno;
        failConnect(c, error);
        return isDescriptorLimit(error) ? error : 0;
    }
    if (!runtime->config.skipSet) {
        // SET before connect: the callout sees this hop and never loops back to us.
        size_t used = 0;
        if (redirect_ioctl(c.upstream.fd(), SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS, c.hop.records.data(),
                           c.hop.records.size(), nullptr, 0, &used, nullptr, nullptr) != 0) {
            failConnect(c, errno);
            return 0;
        }
        c.hop.setRecords = true;
    }
    // Latency only: a socket without TCP_NODELAY still relays every byte. The client's socket
    // has it from the listener (accept() copies it).
    int one = 1;
    [[maybe_unused]] int nodelay = ::setsockopt(c.upstream.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    // Edge-triggered: readiness already there at ADD time is reported at once.
    c.clientSide.conn = &c;
    c.upstreamSide.conn = &c;
    c.upstreamSide.upstream = true;
    c.upstreamSide.token = enroll(&c.upstreamSide);
    c.clientSide.token = enroll(&c.clientSide);
    registerChain(c);  // before connect(): the next hop of ours may accept it at once
    c.connectStart = RelayClock::now();
    socklen_t dlen = c.hop.destination.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    if (::connect(c.upstream.fd(), reinterpret_cast<sockaddr*>(&c.hop.destination), dlen) != 0 &&
        errno != EINPROGRESS) {
        c.hop.connectMs = 0;
        failConnect(c, errno);
        return 0;
    }
    checkChain(c);
    c.deadline = c.connectStart + std::chrono::milliseconds(runtime->config.connectTimeoutMs);
    deadlines_.emplace(c.deadline, &c);
    // Whatever either socket holds, or gets, is reported by the edge of its first event.
    c.up.srcReady = c.down.srcReady = false;
    constexpr uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    SysResult watched = c.upstream.watch(epoll_.fd(), kEvents, c.upstreamSide.token);
    if (watched.ok())
        watched = c.client.watch(epoll_.fd(), kEvents, c.clientSide.token);
    if (!watched.ok())
        failConnect(c, watched.error);  // unwatched, it would never be relayed
    return 0;
}

void Relay::Worker::failConnect(Connection& c, int error)
{
    // A dead upstream resets the client at once, so it can fall back (Happy Eyeballs).
    finish(c, endReasonForErrno(error), /*reset=*/true);
}

void Relay::Worker::onConnection(Connection& c, uint32_t events, bool fromUpstream)
{
    if (c.closed)
        return;
    if (c.linked) {
        // An in-process chain: the sockets between its hops are idle, the head's client and
        // the tail's upstream move the bytes, and the head's pipes say how far they are.
        if (fromUpstream ? c.next != nullptr : c.prev != nullptr)
            return;
    }
    Connection& h = c.linked ? headOf(c) : c;
    // What this edge says about the socket as a source: the copy reads it only then.
    Pipe& in = fromUpstream ? h.down : h.up;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        in.srcReady = true;
    if (events & (EPOLLRDHUP | EPOLLHUP))
        in.srcHup = true;
    if (c.linked) {
        relay(h);
        return;
    }
    if (c.prev && !fromUpstream)
        return;  // carried, not up yet: its client is the previous hop's idle upstream
    if (c.connecting) {
        if (!fromUpstream)
            return;  // the client's data waits: copy() reads it once the upstream is up
        if (events & (EPOLLERR | EPOLLHUP)) {
            // Only a failed connect has an error to fetch: a writable upstream without one is up.
            int error = 0;
            socklen_t el = sizeof(error);
            if (::getsockopt(c.upstream.fd(), SOL_SOCKET, SO_ERROR, &error, &el) != 0)
                error = errno;
            c.hop.connectMs = std::chrono::duration<double, std::milli>(RelayClock::now() - c.connectStart).count();
            failConnect(c, error ? error : ECONNREFUSED);
            return;
        }
        // Connected only once the upstream reports writable (or readable with data).
        if (!(events & (EPOLLOUT | EPOLLIN)))
            return;
        c.connecting = false;
        c.hop.connectMs = std::chrono::duration<double, std::milli>(RelayClock::now() - c.connectStart).count();
        clearDeadline(c);
        if (c.prev && !c.awaitingNext) {
            linkUp(c);  // the last hop of ours is connected: the chain carries the bytes
            return;
        }
    }
    if (c.awaitingNext) {
        // Waiting for the next hop of ours: only an end matters. Over loopback the next hop
        // resets its client when it fails, which reads here as a reset upstream.
        if (events & (EPOLLERR | EPOLLHUP | (fromUpstream ? uint32_t(EPOLLRDHUP) : 0u)))
            finish(c, EndReason::Reset, /*reset=*/true);
        return;
    }
    relay(c);
}

// Move what can move both ways between the client and the (last) upstream; half-close, end.
void Relay::Worker::relay(Connection& c)
{
    int upstream = c.linked ? tailOf(c).upstream.fd() : c.upstream.fd();
    int error = pump(c, c.client.fd(), upstream, c.up);
    if (!error)
        error = pump(c, upstream, c.client.fd(), c.down);
    if (error) {
        finish(c, endReasonForErrno(error), /*reset=*/true);
        return;
    }
    halfClose(c.up, upstream);
    halfClose(c.down, c.client.fd());
    if (c.up.dstShut && c.down.dstShut)
        finish(c, EndReason::Closed);
}

// A direction whose source ended: its FIN travels on, by shutdown() and not by close(), which
// a forked child holding a copy of the socket would postpone (tst_relay_limits forks).
void Relay::Worker::halfClose(Pipe& p, int dst)
{
    if (!p.done() || p.dstShut)
        return;
    // ENOTCONN: the peer reset meanwhile; its own event ends the flow.
    [[maybe_unused]] int shut = ::shutdown(dst, SHUT_WR);
    p.dstShut = true;
    p.close();
}

void Relay::Worker::delivered(Connection& c, Pipe& p, size_t n)
{
    p.moved += n;
    bool up = &p == &c.up;
    for (Connection* h = &c; h; h = h->linked ? h->next : nullptr)
        (up ? h->runtime->bytesUp : h->runtime->bytesDown).fetch_add(n, std::memory_order_relaxed);
}

// Small flows (most connections) move through one scratch buffer: a pipe pair costs six
// system calls to make and close, more than the copy. Returns 0 or an errno.
int Relay::Worker::copy(Connection& c, int src, int dst, Pipe& p)
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
        if (p.srcEof || !p.srcReady || (!p.copyOnly && p.moved >= kSpliceAfterBytes))
            return 0;
        ssize_t n = ::recv(src, scratch_, sizeof(scratch_), MSG_DONTWAIT);
        if (n == 0) {
            p.srcEof = true;
            return 0;
        }
        if (n < 0) {
            if (errno != EAGAIN)
                return errno;
            p.srcReady = false;
            return 0;
        }
        if (static_cast<size_t>(n) < sizeof(scratch_)) {
            // A short read emptied the socket: the next bytes come with a new edge, so no read
            // to hear EAGAIN. After its FIN (RDHUP) nothing can follow the bytes read: the end.
            p.srcReady = false;
            p.srcEof = p.srcHup;
        }
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
int Relay::Worker::pump(Connection& c, int src, int dst, Pipe& p)
{
    if (!p.hasPipe() && (p.copyOnly || p.moved < kSpliceAfterBytes || !p.pending.empty())) {
        if (int error = copy(c, src, dst, p))
            return error;
    }
    if (!p.hasPipe() && !p.copyOnly && !p.srcEof && p.pending.empty() && p.moved >= kSpliceAfterBytes) {
        if (int error = makePipe(p)) {
            if (!isDescriptorLimit(error))
                return error;
            // At the descriptor limit a flow keeps going by copy rather than end for want of a pipe.
            p.copyOnly = true;
            if (int copyError = copy(c, src, dst, p))
                return copyError;
        }
    }
    while (p.hasPipe()) {
        bool progress = false;
        if (p.queued > 0) {
            ssize_t n = ::splice(p.read.fd(), nullptr, dst, nullptr, p.queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                p.queued -= static_cast<size_t>(n);
                delivered(c, p, static_cast<size_t>(n));
                progress = true;
            } else if (n < 0 && errno != EAGAIN) {
                return errno;
            }
        }
        if (!p.srcEof && p.queued < p.capacity) {
            ssize_t n = ::splice(src, nullptr, p.write.fd(), nullptr, p.capacity - p.queued,
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
    return 0;
}

// 0 or the errno of pipe2.
int Relay::Worker::makePipe(Pipe& p)
{
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return errno;
    p.read = FdHandle(fds[0]);
    p.write = FdHandle(fds[1]);
    // Without the larger size (pipe-max-size, memory accounting) the pipe keeps its default.
    int size = ::fcntl(p.write.fd(), F_SETPIPE_SZ, options_.pipeBytes);
    if (size < 0)
        size = ::fcntl(p.write.fd(), F_GETPIPE_SZ);
    p.capacity = static_cast<size_t>(std::max(size, 4096));
    return 0;
}

void Relay::Worker::finish(Connection& c, EndReason reason, bool reset)
{
    if (c.closed)
        return;
    if (c.prev || c.next) {
        finishChain(c, reason, reset);  // unlinks them, then finishes each here
        return;
    }
    if (c.chainKey)
        chains_.remove(c.chainKey, &c);
    c.closed = true;
    c.hop.reason = reason;
    c.hop.bytesUp = c.up.moved;
    c.hop.bytesDown = c.down.moved;
    c.hop.endNs = wallNowNs();
    // The sockets' events carry tokens that end here, so the registrations can end with the
    // files. A failure ends them on the wire whoever else holds the files (after a fork() the
    // child's copies would keep them open); a clean end has sent its FINs both ways already.
    withdraw(c.clientSide.token);
    withdraw(c.upstreamSide.token);
    c.upstream.leaveWatchToClose();
    c.client.leaveWatchToClose();
    if (reset) {
        c.upstream.resetAndClose();
        c.client.resetAndClose();
    } else if (reason == EndReason::Closed) {
        c.upstream.close();
        c.client.close();
    } else {
        c.upstream.shutdownAndClose();
        c.client.shutdownAndClose();
    }
    c.up.close();
    c.down.close();
    c.runtime->active.fetch_sub(1, std::memory_order_relaxed);
    open_.fetch_sub(1, std::memory_order_relaxed);
    freed_ = true;
    if (c.connecting)
        clearDeadline(c);
    sink_(std::move(c.hop));
    dead_.push_back(&c);
}

void Relay::Worker::clearDeadline(Connection& c)
{
    for (auto it = deadlines_.lower_bound(c.deadline); it != deadlines_.end() && it->first == c.deadline; ++it)
        if (it->second == &c) {
            deadlines_.erase(it);
            return;
        }
}

// Free finished connections after the event batch: later events in it may still name them.
void Relay::Worker::reap()
{
    for (Connection* c : dead_)
        connections_.erase(c);
    dead_.clear();
}

}  // namespace redirect::engine

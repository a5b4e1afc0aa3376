#include "redirector.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include "redirect/sio.h"

namespace redirect::engine {

namespace {



}  // namespace

sockaddr_storage loopbackAddress(int family, uint16_t port, socklen_t* length, const uint8_t* addr)
{
    sockaddr_storage ss{};
    if (family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (addr)
            std::memcpy(&sin->sin_addr, addr, 4);
        *length = sizeof(*sin);
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        sin6->sin6_addr = in6addr_loopback;
        if (addr)
            std::memcpy(&sin6->sin6_addr, addr, 16);
        *length = sizeof(*sin6);
    }
    return ss;
}

int listenLoopback(int family, uint16_t port, bool nonBlocking, bool reusePort, uint16_t* bound, const uint8_t* addr)
{
    int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | (nonBlocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        throw std::runtime_error(std::string("listener socket: ") + std::strerror(errno));
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reusePort)
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (family == AF_INET6)
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    socklen_t len = 0;
    sockaddr_storage ss = loopbackAddress(family, port, &len, addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 4096) != 0) {
        int e = errno;
        ::close(fd);
        char text[INET6_ADDRSTRLEN] = {};
        ::inet_ntop(family, family == AF_INET ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&ss)->sin_addr)
                                              : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr),
                    text, sizeof(text));
        throw std::runtime_error(std::string("listen on ") + text + " port " + std::to_string(port) + ": " +
                                 std::strerror(e));
    }
    len = sizeof(ss);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    *bound = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                     : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return fd;
}

int64_t wallNowNs()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool queryBlob(int sock, uint32_t code, std::vector<uint8_t>& out)
{
    // Room for the largest blob of this SDK version first: one call in the common case;
    // a newer, larger blob still works through the EINVAL + required-size answer.
    out.resize(std::max<size_t>(REDIRECT_RECORDS_SIZE(REDIRECT_MAX_HOPS),
                                REDIRECT_CONTEXT_HEADER_SIZE + REDIRECT_CONTEXT_DATA_MAX));
    size_t got = 0;
    if (redirect_ioctl(sock, code, nullptr, 0, out.data(), out.size(), &got, nullptr, nullptr) != 0) {
        if (errno != EINVAL || got <= out.size())
            return false;
        out.resize(got);
        if (redirect_ioctl(sock, code, nullptr, 0, out.data(), out.size(), &got, nullptr, nullptr) != 0)
            return false;
    }
    out.resize(got);
    return true;
}

bool describeAccepted(int fd, HopReport& hop)
{
    // QUERY on the accepted socket: where the application wanted to go.
    if (!queryBlob(fd, SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, hop.records) ||
        !queryBlob(fd, SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT, hop.context))
        return false;
    redirect_records_info info{};
    if (redirect_records_decode(hop.records.data(), hop.records.size(), &info) == 0)
        hop.flowId = info.flow_id;
    socklen_t len = 0;
    redirect_context_destination(hop.context.data(), hop.context.size(), &hop.destination, &len);
    pid_t pid = 0;
    redirect_context_pid(hop.context.data(), hop.context.size(), &pid);
    hop.clientPid = pid;
    char comm[16] = {};
    redirect_context_comm(hop.context.data(), hop.context.size(), comm, sizeof(comm));
    hop.clientComm = comm;
    return true;
}

EndReason endReasonForErrno(int error)
{
    switch (error) {
    case 0: return EndReason::Closed;
    case ECONNREFUSED: return EndReason::Refused;
    case ETIMEDOUT: return EndReason::Timeout;
    case ENETUNREACH:
    case EHOSTUNREACH: return EndReason::Unreachable;
    case ECONNRESET:
    case EPIPE: return EndReason::Reset;
    default: return EndReason::Error;
    }
}

namespace {

// Connect with a timeout; 0 or an errno value.
int connectTimed(int fd, const sockaddr_storage& to, int timeoutMs)
{
    socklen_t len = to.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&to), len);
    int error = rc == 0 ? 0 : errno;
    if (error == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int n = ::poll(&p, 1, timeoutMs);
        if (n == 0) {
            error = ETIMEDOUT;
        } else {
            socklen_t el = sizeof(error);
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &el);
        }
    }
    ::fcntl(fd, F_SETFL, flags);
    return error;
}

// Relay both directions until both are shut; honours half-close. 0 or errno.
int relay(int client, int upstream, uint64_t* up, uint64_t* down)
{
    char buf[65536];
    bool clientOpen = true, upstreamOpen = true;
    while (clientOpen || upstreamOpen) {
        pollfd p[2] = {{client, static_cast<short>(clientOpen ? POLLIN : 0), 0},
                       {upstream, static_cast<short>(upstreamOpen ? POLLIN : 0), 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        for (int side = 0; side < 2; ++side) {
            if (!(p[side].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int from = side == 0 ? client : upstream;
            int to = side == 0 ? upstream : client;
            ssize_t n = ::read(from, buf, sizeof(buf));
            if (n < 0)
                return errno;
            if (n == 0) {
                ::shutdown(to, SHUT_WR);
                (side == 0 ? clientOpen : upstreamOpen) = false;
                continue;
            }
            for (ssize_t off = 0; off < n;) {
                ssize_t w = ::send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
                if (w < 0)
                    return errno;
                off += w;
            }
            *(side == 0 ? up : down) += static_cast<uint64_t>(n);
        }
    }
    return 0;
}

}  // namespace

void resetAndClose(int fd)
{
    linger lg{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    ::close(fd);
}

Redirector::Redirector(RedirectorConfig config, HopHandler onHop) : config_(config), onHop_(std::move(onHop))
{
    if (::pipe2(wake_, O_CLOEXEC) != 0)
        throw std::runtime_error(std::string("redirector pipe: ") + std::strerror(errno));
    listen4_ = listenLoopback(AF_INET, config_.port4, false, false, &port4_);
    if (config_.listen6)
        listen6_ = listenLoopback(AF_INET6, config_.port6, false, false, &port6_);
    acceptor_ = std::thread([this] { acceptLoop(); });
}

Redirector::~Redirector() { stop(); }

void Redirector::stop()
{
    if (stopping_.exchange(true))
        return;
    char c = 0;
    [[maybe_unused]] ssize_t n = ::write(wake_[1], &c, 1);
    if (acceptor_.joinable())
        acceptor_.join();
    std::vector<std::thread> workers;
    {
        std::lock_guard lock(workersMutex_);
        workers.swap(workers_);
    }
    for (auto& t : workers)
        t.join();
    for (int fd : {listen4_, listen6_, wake_[0], wake_[1]})
        if (fd >= 0)
            ::close(fd);
}

void Redirector::acceptLoop()
{
    while (!stopping_) {
        pollfd p[3] = {{wake_[0], POLLIN, 0}, {listen4_, POLLIN, 0}, {listen6_, POLLIN, 0}};
        int n = ::poll(p, listen6_ >= 0 ? 3 : 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (p[0].revents & POLLIN))
            return;
        for (int i = 1; i < 3; ++i) {
            if (!(p[i].revents & POLLIN))
                continue;
            int client = ::accept4(p[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (client < 0)
                continue;
            std::lock_guard lock(workersMutex_);
            workers_.emplace_back([this, client] { serve(client); });
        }
    }
}

void Redirector::serve(int client)
{
    HopReport hop;
    hop.redirectorId = config_.id;
    hop.startNs = wallNowNs();
    // QUERY on the accepted socket, never the listening one.
    if (!describeAccepted(client, hop)) {
        hop.reason = EndReason::NoRecords;
        resetAndClose(client);
        if (onHop_)
            onHop_(hop);
        return;
    }

    int upstream = ::socket(hop.destination.ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    int error = upstream < 0 ? errno : 0;
    if (!error && !config_.skipSet) {
        // SET before connect, so the callout sees this hop in the chain.
        size_t used = 0;
        if (redirect_ioctl(upstream, SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS, hop.records.data(), hop.records.size(),
                           nullptr, 0, &used, nullptr, nullptr) == 0)
            hop.setRecords = true;
        else
            error = errno;
    }
    if (!error) {
        auto start = std::chrono::steady_clock::now();
        error = connectTimed(upstream, hop.destination, config_.connectTimeoutMs);
        hop.connectMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    }
    if (error) {
        // A dead upstream resets the client at once (Happy Eyeballs can fall back).
        hop.reason = endReasonForErrno(error);
        resetAndClose(client);
        if (upstream >= 0)
            ::close(upstream);
    } else {
        int one = 1;
        ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        ::setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        hop.reason = endReasonForErrno(relay(client, upstream, &hop.bytesUp, &hop.bytesDown));
        ::close(client);
        ::close(upstream);
    }
    hop.endNs = wallNowNs();
    if (onHop_)
        onHop_(hop);
}

}  // namespace redirect::engine

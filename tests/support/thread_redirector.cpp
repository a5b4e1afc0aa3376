#include "thread_redirector.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include "redirect/sio.h"

namespace redirect::test {

using engine::EndReason;
using engine::HopReport;
using engine::describeAccepted;
using engine::endReasonForErrno;
using engine::listenLoopback;
using engine::resetAndClose;
using engine::wallNowNs;

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

ThreadRedirector::ThreadRedirector(engine::RedirectorConfig config, HopHandler onHop) : config_(config), onHop_(std::move(onHop))
{
    if (::pipe2(wake_, O_CLOEXEC) != 0)
        throw std::runtime_error(std::string("redirector pipe: ") + std::strerror(errno));
    listen4_ = listenLoopback(AF_INET, config_.port4, false, false, &port4_);
    if (config_.listen6)
        listen6_ = listenLoopback(AF_INET6, config_.port6, false, false, &port6_);
    acceptor_ = std::thread([this] { acceptLoop(); });
}

ThreadRedirector::~ThreadRedirector() { stop(); }

void ThreadRedirector::stop()
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

void ThreadRedirector::acceptLoop()
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

void ThreadRedirector::serve(int client)
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

}  // namespace redirect::test

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
    // Accepted sockets copy it: the relay sets it on each client socket without a system call.
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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

bool describeAccepted(int fd, HopReport& hop)
{
    // QUERY on the accepted socket, both blobs from one look-up: where the application wanted
    // to go. Room for the largest blobs of this SDK version first: one call in the common case;
    // newer, larger blobs still work through the EINVAL + required-size answer. The room is this
    // thread's, and the hop gets the exact bytes: a blob kept with its room for the largest cost
    // 300 bytes a connection (3 MB with 10,000 open).
    thread_local std::vector<uint8_t> records(REDIRECT_RECORDS_SIZE(REDIRECT_MAX_HOPS));
    thread_local std::vector<uint8_t> context(REDIRECT_CONTEXT_HEADER_SIZE + REDIRECT_CONTEXT_DATA_MAX);
    size_t rn = 0, cn = 0;
    if (redirect_query_both(fd, records.data(), records.size(), &rn, context.data(), context.size(), &cn) != 0) {
        if (errno != EINVAL || (rn <= records.size() && cn <= context.size()))
            return false;
        records.resize(std::max(rn, records.size()));
        context.resize(std::max(cn, context.size()));
        if (redirect_query_both(fd, records.data(), records.size(), &rn, context.data(), context.size(), &cn) != 0)
            return false;
    }
    hop.records.assign(records.begin(), records.begin() + static_cast<std::ptrdiff_t>(rn));
    hop.context.assign(context.begin(), context.begin() + static_cast<std::ptrdiff_t>(cn));
    describeBlobs(hop);  // the socket was redirected to us even if a blob does not decode
    return true;
}

bool describeBlobs(HopReport& hop)
{
    redirect_records_info info{};
    bool ok = redirect_records_decode(hop.records.data(), hop.records.size(), &info) == 0 && info.flow_id != 0;
    if (ok)
        hop.flowId = info.flow_id;
    socklen_t len = 0;
    ok = redirect_context_destination(hop.context.data(), hop.context.size(), &hop.destination, &len) == 0 && ok;
    pid_t pid = 0;
    redirect_context_pid(hop.context.data(), hop.context.size(), &pid);
    hop.clientPid = pid;
    char comm[16] = {};
    redirect_context_comm(hop.context.data(), hop.context.size(), comm, sizeof(comm));
    hop.clientComm = comm;
    return ok;
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

void resetAndClose(int fd)
{
    linger lg{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    ::close(fd);
}

}  // namespace redirect::engine

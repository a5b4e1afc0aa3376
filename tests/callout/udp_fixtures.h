// Shared by the UDP kernel tests (tst_udp, tst_udp_chain): UDP sockets on loopback, a plain UDP
// socket playing a redirector (marked as the engine marks its listeners), datagrams with their
// source, and the SDK's UDP query.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kernel_test.h"
#include "redirect/sio.h"
#include "sio_fixtures.h"

namespace udp_test {

using namespace redirect;
using namespace redirect::test;
using sio_test::Fd;

inline Fd udpSocket(int family) { return Fd(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0)); }

// A UDP socket bound to loopback of `family`, port picked by the OS (written to *port).
inline Fd boundUdp(int family, uint16_t* port)
{
    Fd fd = udpSocket(family);
    socklen_t len = 0;
    sockaddr_storage ss = loopbackAddress(family, 0, &len);
    if (!fd.valid() || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
        return Fd();
    len = sizeof(ss);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    *port = ntohs(ss.ss_family == AF_INET ? reinterpret_cast<sockaddr_in&>(ss).sin_port
                                          : reinterpret_cast<sockaddr_in6&>(ss).sin6_port);
    return fd;
}

// One datagram and where it came from.
struct Datagram {
    std::string data;
    sockaddr_storage from{};
    socklen_t fromLen = 0;
    int error = 0;  // errno of the receive, or ETIMEDOUT
    std::string source() const { return error ? std::string("error ") + strerrorname_np(error) : addressText(from); }
};

// Bounded: a datagram that went elsewhere never arrives here.
inline Datagram receive(int fd, int timeoutMs = 3000)
{
    Datagram d;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeoutMs) != 1) {
        d.error = ETIMEDOUT;
        return d;
    }
    char buf[2048];
    d.fromLen = sizeof(d.from);
    ssize_t n = ::recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&d.from), &d.fromLen);
    if (n < 0)
        d.error = errno;
    else
        d.data.assign(buf, size_t(n));
    return d;
}

// sendto() loopback:port of `family` (v4-mapped when asked); 0 or errno.
inline int sendTo(int fd, int family, uint16_t port, const std::string& data, bool mapped = false)
{
    socklen_t len = 0;
    sockaddr_storage ss = loopbackAddress(family, port, &len, mapped);
    return ::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) == ssize_t(data.size())
               ? 0
               : errno;
}

inline int sendBack(int fd, const Datagram& to, const std::string& data)
{
    return ::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<const sockaddr*>(&to.from), to.fromLen)
                   == ssize_t(data.size())
               ? 0
               : errno;
}

inline std::string loopbackText(int family, uint16_t port, bool mapped = false)
{
    socklen_t len = 0;
    return addressText(loopbackAddress(family, port, &len, mapped));
}

// The SDK's UDP query for the datagram `d` that `sock` received: the blob, or empty with *error.
inline std::vector<uint8_t> udpQuery(int sock, const Datagram& d, int option, int* error = nullptr)
{
    std::vector<uint8_t> blob(REDIRECT_CONTEXT_HEADER_SIZE + REDIRECT_CONTEXT_DATA_MAX);
    size_t bytes = 0;
    errno = 0;
    int rc = redirect_udp_query(sock, reinterpret_cast<const sockaddr*>(&d.from), d.fromLen, option, blob.data(),
                                blob.size(), &bytes);
    if (error)
        *error = rc == 0 ? 0 : errno;
    blob.resize(rc == 0 ? bytes : 0);
    return blob;
}

inline std::string contextDestination(const std::vector<uint8_t>& context)
{
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (redirect_context_destination(context.data(), context.size(), &ss, &len) != 0)
        return "undecodable";
    return addressText(ss);
}

inline std::vector<uint32_t> hopIds(const std::vector<uint8_t>& records)
{
    redirect_records_info info{};
    std::vector<uint32_t> ids;
    if (redirect_records_decode(records.data(), records.size(), &info) == 0)
        for (unsigned i = 0; i < info.hop_count; ++i)
            ids.push_back(info.hops[i].redirector_id);
    return ids;
}

// A plain UDP socket on both loopbacks playing redirector `id`, marked as the engine marks it.
struct UdpRedirector {
    uint32_t id;
    uint16_t port4 = 0, port6 = 0;
    Fd sock4, sock6;
    UdpRedirector(LoadedCallout& callout, uint32_t redirectorId, uint32_t slot, uint32_t ownerPid = 0)
        : id(redirectorId), sock4(boundUdp(AF_INET, &port4)), sock6(boundUdp(AF_INET6, &port6))
    {
        callout_redirector r = makeRedirector(id, 0, 0, ownerPid, sandbox().netnsCookie());
        r.udp_port4 = htons(port4);
        r.udp_port6 = htons(port6);
        callout->setRedirector(slot, r);
        callout->markListener(sock4.get(), id);
        callout->markListener(sock6.get(), id);
    }
    bool ok() const { return sock4.valid() && sock6.valid(); }
    int sock(int family) const { return family == AF_INET ? sock4.get() : sock6.get(); }
};

inline callout_rule udpRule(uint32_t id, uint16_t slot, uint16_t port, uint8_t action = CALLOUT_ACTION_REDIRECT)
{
    callout_rule rule = makeRedirectRule(id, slot, port, port);
    rule.protocol = IPPROTO_UDP;
    rule.action = action;
    return rule;
}

// A loaded callout, redirector `id` in slot 0, and a server whose port a UDP rule (id 1) sends to it.
struct OneRedirection {
    LoadedCallout callout;
    UdpRedirector redirector;
    uint16_t destPort = 0;
    Fd dest;
    callout_rule rule;
    explicit OneRedirection(uint32_t id, int family = AF_INET, uint32_t idleTimeoutS = 0)
        : redirector(callout, id, 0), dest(boundUdp(family, &destPort)), rule(udpRule(1, 0, destPort))
    {
        rule.idle_timeout_s = idleTimeoutS;
        callout->setRules({&rule, 1});
    }
    bool ok() const { return redirector.ok() && dest.valid(); }
};

// Events of UDP classifications to `port` (host order), in the order the callout emitted them.
inline std::vector<callout_event> udpEvents(LoadedCallout& callout, uint16_t port)
{
    callout.drain();
    std::vector<callout_event> out;
    for (const callout_event& e : callout.events())
        if (e.protocol == IPPROTO_UDP && ntohs(e.orig_port) == port && e.verdict != CALLOUT_VERDICT_CLOSED)
            out.push_back(e);
    return out;
}

}  // namespace udp_test

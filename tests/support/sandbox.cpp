#include "sandbox.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "callout_loader.h"

namespace redirect::test {

namespace {

[[noreturn]] void fail(const std::string& what, int error)
{
    throw std::runtime_error("sandbox: " + what + ": " + std::strerror(error));
}

void writeFile(const std::string& path, const std::string& text)
{
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        fail("open " + path, errno);
    ssize_t n = ::write(fd, text.data(), text.size());
    int e = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(text.size()))
        fail("write " + path, e);
}

int threadCount()
{
    int n = 0;
    for ([[maybe_unused]] auto& entry : std::filesystem::directory_iterator("/proc/self/task"))
        ++n;
    return n;
}

void bringUpLoopback()
{
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fail("socket", errno);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (::ioctl(fd, SIOCGIFFLAGS, &ifr) != 0 || (ifr.ifr_flags |= IFF_UP, ::ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)) {
        int e = errno;
        ::close(fd);
        fail("bring up lo", e);
    }
    ::close(fd);
}

}  // namespace

Sandbox::Sandbox(std::string cgroup) : cgroup_(std::move(cgroup))
{
    if (::geteuid() != 0)
        throw std::runtime_error("sandbox: kernel tests need root (CI runs them as root)");
    if (threadCount() != 1)
        throw std::runtime_error("sandbox: must be entered before any thread starts (network namespaces are per thread)");
    if (::unshare(CLONE_NEWNET) != 0)
        fail("unshare(CLONE_NEWNET)", errno);
    bringUpLoopback();
    netnsCookie_ = Callout::currentNetnsCookie();
    writeFile(cgroup_ + "/cgroup.procs", std::to_string(::getpid()));
}

std::string Sandbox::makeChildCgroup(const std::string& name)
{
    std::string path = cgroup_ + "/" + name;
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
        fail("mkdir " + path, errno);
    return path;
}

sockaddr_storage loopbackAddress(int family, uint16_t port, socklen_t* length, bool mapped)
{
    sockaddr_storage ss{};
    if (family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *length = sizeof(*sin);
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        if (mapped)
            inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6->sin6_addr);
        else
            sin6->sin6_addr = in6addr_loopback;
        *length = sizeof(*sin6);
    }
    return ss;
}

int listenLoopback(int family, uint16_t* port)
{
    *port = 0;
    int fd = reservePort(family, port);
    if (fd >= 0 && ::listen(fd, 512) != 0) {
        int e = errno;
        ::close(fd);
        return -e;
    }
    return fd;
}

int reservePort(int family, uint16_t* port)
{
    int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;  // the port may still have TIME_WAIT connections of an earlier listener
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6)
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    socklen_t len = 0;
    sockaddr_storage ss = loopbackAddress(family, *port, &len);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        int e = errno;
        ::close(fd);
        return -e;
    }
    len = sizeof(ss);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    *port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                    : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return fd;
}

int connectLoopback(int family, uint16_t port, bool mapped)
{
    int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    socklen_t len = 0;
    sockaddr_storage ss = loopbackAddress(family, port, &len, mapped);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        int e = errno;
        ::close(fd);
        return -e;
    }
    return fd;
}

callout_redirector makeRedirector(uint32_t id, uint16_t port4, uint16_t port6, uint32_t ownerPid, uint64_t netns)
{
    callout_redirector r{};
    r.id = id;
    r.flags = CALLOUT_REDIRECTOR_ACTIVE;
    r.owner_tgid = ownerPid;
    r.netns_cookie = netns;
    r.addr4 = htonl(INADDR_LOOPBACK);
    r.port4 = htons(port4);
    std::memcpy(r.addr6, &in6addr_loopback, 16);
    r.port6 = htons(port6);
    return r;
}

callout_rule makeRedirectRule(uint32_t id, uint16_t slot, uint16_t firstPort, uint16_t lastPort)
{
    callout_rule rule{};
    rule.id = id;
    rule.enabled = 1;
    rule.action = CALLOUT_ACTION_REDIRECT;
    rule.protocol = IPPROTO_TCP;
    rule.redirector_slot = slot;
    rule.port_count = 1;
    rule.ports[0] = {firstPort, lastPort};
    return rule;
}

}  // namespace redirect::test

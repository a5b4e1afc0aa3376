// Private network namespace + private child cgroup for kernel tests.
#pragma once

#include <cstdint>
#include <string>

#include <netinet/in.h>
#include <sys/socket.h>

#include "callout_abi.h"

namespace redirect::test {

/**
 * Moves the calling process into a fresh network namespace (loopback up,
 * IPv4 and IPv6) and into `cgroup`, an empty cgroup2 directory made for it,
 * so a callout attached there sees only this test's sockets and those of its
 * children. Whoever made the cgroup removes it (the supervisor, see
 * supervisor.h): a process cannot clean up after its own crash.
 * Must be entered while the process has a single thread (netns is per thread).
 * Throws std::runtime_error with the reason when the sandbox cannot be built:
 * a kernel test fails with that reason, it never skips.
 */
class Sandbox {
public:
    explicit Sandbox(std::string cgroup);
    Sandbox(const Sandbox&) = delete;
    Sandbox& operator=(const Sandbox&) = delete;

    const std::string& cgroup() const { return cgroup_; }
    uint64_t netnsCookie() const { return netnsCookie_; }
    /// Make a child cgroup below the sandbox cgroup (removed with the sandbox).
    std::string makeChildCgroup(const std::string& name);

private:
    std::string cgroup_;
    uint64_t netnsCookie_ = 0;
};

/// Listening TCP socket on the loopback of `family`, port picked by the OS.
int listenLoopback(int family, uint16_t* port);
/// Socket bound to loopback:port of `family` (0: the OS picks) that never listens: connects to the
/// port are refused, and while it is open neither bind(port 0) nor a connect's source port picks it
/// (a closed listener's port is free for the next redirector listener or a self-connect). The port
/// bound is written to *port; fd or -errno.
int reservePort(int family, uint16_t* port);
/// Blocking connect to loopback:port of `family` (v4-mapped when mapped=true); fd or -errno.
int connectLoopback(int family, uint16_t port, bool mapped = false);
/// sockaddr for loopback of a family.
sockaddr_storage loopbackAddress(int family, uint16_t port, socklen_t* length, bool mapped = false);

/// Redirector entry for the callout: listeners on 127.0.0.1:port4 and [::1]:port6.
callout_redirector makeRedirector(uint32_t id, uint16_t port4, uint16_t port6, uint32_t ownerPid, uint64_t netns);
/// Redirect rule (TCP, any destination) for `ports` first..last to `slot`.
callout_rule makeRedirectRule(uint32_t id, uint16_t slot, uint16_t firstPort, uint16_t lastPort);

}  // namespace redirect::test

// Who owns the socket listening on an endpoint: the check that keeps an unprivileged process
// from receiving an external redirector's connections while the vendor's proxy is down.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <netinet/in.h>

#include "rules.h"

namespace redirect::engine {

/// One listening TCP socket that a connect to an endpoint may reach.
struct ListenerSocket {
    unsigned long inode = 0;
    uint32_t uid = 0;      ///< the socket's owner as the kernel keeps it (sk_uid)
    int pid = 0;           ///< a process holding it; 0 when none was found
    int fd = -1;           ///< its descriptor number in that process
    std::string comm;      ///< that process's command name
};

/**
 * Listening TCP sockets in the calling thread's network namespace that a connect to `endpoint`
 * may reach: bound to its address or to the wildcard of its family (and, for IPv4, a dual-stack
 * [::] socket), on its port, the ones the kernel prefers first. Asked through sock_diag
 * (listeners only, cheap however many connections are open); with `findHolders`, the process
 * holding each is looked up in /proc/PID/fd (costly: only when the sockets changed). Throws
 * std::runtime_error with the reason when sock_diag fails.
 */
///
/// With IPPROTO_UDP: the unconnected UDP sockets bound to the endpoint's very address and port
/// (a UDP redirector must be, for the SDK's query to name its flows; see sio.h).
std::vector<ListenerSocket> listenersOn(const Endpoint& endpoint, bool findHolders, int protocol = IPPROTO_TCP);

/// Duplicate descriptor `fd` of process `pid` into ours (pidfd_getfd); the caller closes it.
/// Returns -errno on failure.
int duplicateDescriptor(int pid, int fd);

}  // namespace redirect::engine

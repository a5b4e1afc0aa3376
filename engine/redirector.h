// What a redirector does with an accepted socket, shared by the relay and the tests' proxies:
// the hop it reports, its listeners' settings, QUERY of records and context, end reasons.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <sys/socket.h>

#include "flow.h"

namespace redirect::engine {

/// What a redirector learnt and did for one accepted connection.
struct HopReport {
    uint32_t redirectorId = 0;
    uint64_t flowId = 0;           ///< from the records
    std::string host;              ///< TLS SNI or HTTP Host seen in the first client bytes
    int64_t startNs = 0;           ///< wall clock: accepted
    int64_t endNs = 0;             ///< wall clock: both directions done
    std::vector<uint8_t> records;  ///< QUERY_RECORDS blob (size = records size)
    std::vector<uint8_t> context;  ///< QUERY_CONTEXT blob (size = context size)
    sockaddr_storage destination{};
    int clientPid = 0;
    std::string clientComm;
    bool setRecords = false;       ///< SET was applied to the outbound socket
    uint64_t bytesUp = 0;          ///< client -> destination
    uint64_t bytesDown = 0;        ///< destination -> client
    uint64_t datagramsUp = 0;      ///< UDP: datagrams client -> destination
    uint64_t datagramsDown = 0;
    uint8_t protocol = 6;          ///< IPPROTO_TCP or IPPROTO_UDP
    double connectMs = -1;
    EndReason reason = EndReason::Closed;
    /// Its bytes went straight between the chain's first client and last upstream inside the
    /// engine, not over the loopback connection to (or from) the neighbouring hop of ours.
    bool inProcess = false;
};

struct RedirectorConfig {
    uint32_t id = 0;
    uint16_t port4 = 0;   ///< 0: the OS picks
    uint16_t port6 = 0;
    /// Addresses to listen on, network order: what the rules say (any of 127.0.0.0/8), so the
    /// callout's redirect and our listener always name the same endpoint.
    std::array<uint8_t, 4> addr4{127, 0, 0, 1};
    std::array<uint8_t, 16> addr6{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    bool listen6 = true;
    /// Misbehave like a proxy that forgets SET (tests of the callout's repair).
    bool skipSet = false;
    int connectTimeoutMs = 5000;
};

/// 127.0.0.1:port or [::1]:port, or `addr` (network order, 4 or 16 bytes by family) when given.
sockaddr_storage loopbackAddress(int family, uint16_t port, socklen_t* length, const uint8_t* addr = nullptr);
/// Listening TCP socket on loopback, or on `addr` when given (IPv6-only for AF_INET6); throws with
/// the reason. *bound: the port.
int listenLoopback(int family, uint16_t port, bool nonBlocking, bool reusePort, uint16_t* bound,
                   const uint8_t* addr = nullptr);
/// Wall clock now, ns since the epoch.
int64_t wallNowNs();
/// QUERY records and context on an accepted socket and fill the hop's flow id, destination and
/// client from them; false when the socket carries none (it was not redirected to us).
bool describeAccepted(int fd, HopReport& hop);
/// Fill the hop's flow id, destination and client from its records and context blobs; false
/// when they name no flow or no destination.
bool describeBlobs(HopReport& hop);
/// Map an errno value to a hop end reason.
EndReason endReasonForErrno(int error);
/// Close with RST instead of FIN, so the peer can tell a failure from an empty answer.
void resetAndClose(int fd);

}  // namespace redirect::engine

// The flow table's records: one flow = one logical connection from the
// application to its real destination, across every hop. One schema for the
// GUI, the headless JSON lines and every report.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <netinet/in.h>

namespace redirect::engine {

/// Why a hop or a flow ended. "open" while it lives. The values are the control API's too (same
/// order): new reasons go last. Idle: a UDP flow saw no datagram for its rule's idle timeout.
enum class EndReason : uint8_t { Open, Closed, Reset, Refused, Timeout, Unreachable, HopCap, NoRecords, Error, Idle };
/// The last reason: lists of every reason run from Open to it.
constexpr EndReason kLastEndReason = EndReason::Idle;
const char* endReasonName(EndReason reason);
/// The reason endReasonName() spells `name`; nullopt for any other text.
std::optional<EndReason> endReasonByName(std::string_view name);

/// Redirect state names as WFP spells them.
const char* redirectStateName(uint8_t state);
/// The state redirectStateName() spells `name`; nullopt for any other text (also "?").
std::optional<uint8_t> redirectStateByName(std::string_view name);

/// One leg of a flow: app -> redirector, redirector -> next, last -> destination.
struct Hop {
    uint32_t redirectorId = 0;     ///< redirector that took this hop (0: the final direct leg)
    std::string redirector;        ///< its name ("" when unknown)
    std::string rule;              ///< id of the rule that sent the connection to it ("" when unknown)
    bool external = false;         ///< a proxy that is not ours (seen through callout events only)
    uint8_t state = 0;             ///< redirect state seen when the callout redirected to it
    uint32_t recordsSize = 0;      ///< SDK records blob size after this hop
    uint32_t contextSize = 0;      ///< SDK context blob size
    std::vector<uint8_t> records;  ///< the blobs, for the hex view (may be empty for external hops)
    std::vector<uint8_t> context;
    double connectMs = -1;         ///< upstream connect latency of this redirector (-1: unknown)
    uint64_t bytesUp = 0;          ///< client -> destination through this redirector
    uint64_t bytesDown = 0;
    uint64_t datagramsUp = 0;      ///< UDP only
    uint64_t datagramsDown = 0;
    int64_t startNs = 0;           ///< wall clock, ns since the epoch
    int64_t endNs = 0;             ///< 0 while open
    EndReason reason = EndReason::Open;
    bool recordsMissing = false;   ///< this redirector connected out without SET (repaired)
    bool inProcess = false;        ///< its bytes moved inside the engine, not over loopback to the next hop of ours
};

/// One flow, grouped by flow id.
struct Flow {
    uint64_t flowId = 0;
    int64_t startNs = 0;           ///< wall clock of the application's connect()
    int64_t endNs = 0;             ///< 0 while open
    uint32_t pid = 0;
    uint32_t uid = 0;
    std::string comm;
    std::string user;              ///< user name for uid, when known
    uint64_t cgroupId = 0;
    std::string destination;       ///< original destination, "1.2.3.4:443" or "[::1]:80"
    std::string host;              ///< TLS SNI or HTTP Host from the peek, when known
    std::string rule;              ///< id of the rule that decided the first hop ("" when none matched)
    std::string verdict;           ///< callout verdict of the application's connect (flow_table.h)
    std::vector<Hop> hops;         ///< in chain order
    uint8_t protocol = 6;          ///< IPPROTO_TCP or IPPROTO_UDP
    uint64_t bytesUp = 0;          ///< as the application sent (first hop)
    uint64_t bytesDown = 0;
    uint64_t datagramsUp = 0;      ///< UDP: as the application sent (first hop)
    uint64_t datagramsDown = 0;
    EndReason reason = EndReason::Open;
    std::string node;              ///< the node it was seen on (set by a console; "" in the engine)

    /// "app -> A -> B -> 1.2.3.4:443"
    std::string chainText() const;
    /// Sent to its destination without a redirector (a bypass rule, no rule, or passed over).
    bool direct() const { return hops.empty() && verdict != "redirect"; }
    /// A UDP flow that a relay of ours carried, so its datagrams were counted; a TCP flow, a
    /// direct or blocked one, or one only external proxies carried has no count (not 0).
    bool datagramsCounted() const
    {
        return protocol == IPPROTO_UDP && std::any_of(hops.begin(), hops.end(), [](const Hop& h) { return h.redirectorId && !h.external; });
    }
    /// Why it went where it went, in a few words: "2 hops", "2 hops, records missing at B",
    /// "direct, no rule", "bypass".
    std::string routeText() const;
};

}  // namespace redirect::engine

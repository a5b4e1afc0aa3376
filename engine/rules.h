// The rules file (DESIGN.md section 6): parse and validate it into a RuleSet,
// write a RuleSet back as JSON, and compile it into the callout's rule table.
// Every error names the line and column of the value (or key) at fault.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/socket.h>

#include "callout_abi.h"
#include "json.h"

namespace redirect::engine {

/// A rules error: line and column of the offending value or key; line 0 for file errors.
using RuleError = json::Error;

/// An address with a port: a redirector's listen endpoint.
struct Endpoint {
    int family = AF_INET;             ///< AF_INET or AF_INET6
    std::array<uint8_t, 16> addr{};   ///< network order; IPv4 in the first 4 bytes
    uint16_t port = 0;                ///< host order
    bool operator==(const Endpoint&) const = default;

    std::string str() const;          ///< "127.0.0.1:15002" or "[::1]:15002"
    sockaddr_storage sockaddr() const;
    bool isLoopback() const;          ///< 127.0.0.0/8 or ::1
};

/// A destination network; host bits beyond the prefix are always zero.
struct Cidr {
    int family = AF_INET;
    uint8_t prefixLen = 0;
    std::array<uint8_t, 16> addr{};   ///< network order; IPv4 in the first 4 bytes
    bool operator==(const Cidr&) const = default;

    std::string str() const;          ///< "10.0.0.0/8", "::/0"
};

/// Inclusive, host order, 1 <= first <= last.
struct PortRange {
    uint16_t first = 0;
    uint16_t last = 0;
    bool operator==(const PortRange&) const = default;
};

/// Block refuses the connect (TCP, UDP) or the send (UDP) with EPERM.
enum class RuleAction : uint8_t { Redirect, Bypass, Block };

struct RedirectorSpec {
    std::string id;
    std::string name;                 ///< the id when the file gives none
    bool external = false;            ///< a proxy that is not ours: the engine only routes to its endpoint
    std::vector<Endpoint> listen;     ///< at most one IPv4 and one IPv6; empty: the OS picks ports
    uint32_t numericId = 0;           ///< redirectorNumericId(id)
    std::string data;                 ///< opaque callout data, at most CALLOUT_DATA_MAX bytes
    /// External only: the endpoint is used only while its listener belongs to this user (and,
    /// when ownerProcess is set, to a process of that name); default root.
    uint32_t ownerUid = 0;
    std::string ownerUser;            ///< the user name the file gave for ownerUid, if any
    std::string ownerProcess;         ///< comm, 1-15 bytes; empty: any process of ownerUid
    json::Position position;          ///< of the redirector object

    /// Same content; source positions are not compared.
    bool operator==(const RedirectorSpec& other) const;
};

struct RuleSpec {
    std::string id;
    uint32_t numericId = 0;           ///< ruleNumericId(id)
    bool enabled = true;
    RuleAction action = RuleAction::Redirect;
    std::string redirector;           ///< id; set exactly for redirect rules
    /// IPPROTO_TCP, IPPROTO_UDP, or 0 for both ("any"). Absent means tcp: files written before
    /// UDP existed keep meaning what they meant (their redirectors may have no UDP listener).
    uint8_t protocol = 6;
    std::optional<uint32_t> idleTimeoutS; ///< UDP flows: seconds without a datagram that end one
    std::vector<Cidr> destination;    ///< empty: any destination
    std::vector<PortRange> ports;     ///< empty: any port
    std::string process;              ///< comm, 1-15 bytes; empty: any process
    std::optional<uint32_t> uid;
    std::string user;                 ///< the user name the file gave for uid, if any
    std::string cgroup;               ///< cgroup v2 path as written; resolved by compileRules()
    std::optional<int64_t> expiresNs; ///< realtime, ns since the epoch
    json::Position position;          ///< of the rule object
    json::Position redirectorPosition;
    json::Position cgroupPosition;

    /// Same content; source positions are not compared.
    bool operator==(const RuleSpec& other) const;
};

struct RuleSet {
    int version = 1;
    std::vector<RedirectorSpec> redirectors;
    std::vector<RuleSpec> rules;      ///< in file order: the first match decides
    bool operator==(const RuleSet&) const = default;

    const RedirectorSpec* findRedirector(std::string_view id) const;
};

/// Either the rule set, or the first error (ok() tells which).
struct RulesResult {
    RuleSet rules;
    RuleError error;
    bool ok() const { return error.message.empty(); }
};

/// Parses and validates a rules file's text. Names are resolved (getpwnam_r); nothing else is touched.
RulesResult parseRules(std::string_view text);

/// What a valid rule set probably does not mean, one line each, "LINE:COLUMN: rule ID ...": an
/// enabled rule that expired already (it never matches), and an enabled redirect rule that matches
/// every connection (the rules after it never match). --check-rules prints them and still exits 0.
std::vector<std::string> ruleWarnings(const RuleSet& rules, int64_t nowNs);

/// Reads and parses a rules file; a file that cannot be read is an error at line 0 with the strerror text.
RulesResult loadRulesFile(const std::string& path);

/// A rules file that parseRules() reads back to an equal RuleSet (same key names, rules in order).
std::string rulesToJson(const RuleSet& rules);

/// FNV-1a 32 of the id string: the numeric ids that the callout and its events carry.
uint32_t ruleNumericId(const std::string& id);
uint32_t redirectorNumericId(const std::string& id);

/// The idle timeout a rule's UDP flows get (its own, else the callout's default of 60 s).
uint32_t ruleIdleTimeoutS(const RuleSpec& rule);

struct CompileResult {
    std::vector<callout_rule> rules;  ///< in file order
    RuleError error;
    bool ok() const { return error.message.empty(); }
};

/**
 * Builds the callout's rule table. slotOf gives a running redirector's slot
 * (negative: not running, an error at the rule's "redirector"). cgroup paths
 * resolve to cgroup ids now (a missing directory is an error at the rule's
 * "cgroup"). Expiry times convert from CLOCK_REALTIME to CLOCK_BOOTTIME
 * through the two "now" readings; a rule already expired gets 1, which the
 * callout treats as expired (0 means never).
 */
CompileResult compileRules(const RuleSet& rules, const std::function<int(const std::string& redirectorId)>& slotOf,
                           int64_t nowRealtimeNs, int64_t nowBoottimeNs);

}  // namespace redirect::engine

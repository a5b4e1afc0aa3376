// The engine: the callout, our redirectors, the relay and the flow table,
// driven by one control thread. No Qt.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bounded_queue.h"
#include "callout_loader.h"
#include "flow.h"
#include "flow_table.h"
#include "relay.h"
#include "rules.h"
#include "udp_relay.h"

namespace redirect::engine {

struct EngineOptions {
    std::string cgroup;                ///< callout scope; "" = the cgroup2 root (whole machine)
    std::string instance = "default";  ///< callout instance (pin and lock names)
    int workers = 0;                   ///< relay workers; 0 = one per CPU
    int netnsFd = -1;                  ///< >= 0: redirectors live in that network namespace
    size_t retention = 100000;         ///< flows kept in the table (ended ones evicted first)
    size_t queueCapacity = 1 << 16;    ///< flow updates waiting for consumers
    int connectTimeoutMs = 5000;
    bool peek = true;
    /// A chain through several of our redirectors carries its bytes inside the relay (the
    /// connections between the hops are made, classified and recorded, but stay idle).
    bool inProcessChains = true;
    /// Records repair for our own process: a connect of ours without SET is repaired like any
    /// proxy's. Off only where the same process also plays the application (tests).
    bool repairOwnRecords = true;
    /// Fail-open for stalls: when the engine (its control thread or any relay worker) has not
    /// shown life for this long, new connections pass over its redirectors. 0 = off.
    int stallDeadlineMs = 1000;
    /// How often external redirectors' endpoints are checked for a change of listener.
    int verifyIntervalMs = 500;
    /// The most UDP flows relayed at once (UdpRelayOptions::maxFlows; 0: from the descriptor limit).
    size_t udpMaxFlows = 0;
};

struct RedirectorStatus {
    std::string id;
    std::string name;
    uint32_t numericId = 0;
    bool external = false;
    bool enabled = true;
    uint32_t slot = 0;
    uint16_t port4 = 0;
    uint16_t port6 = 0;
    uint16_t udpPort4 = 0;  ///< the UDP socket beside the TCP listener (0: none; external: a verified one)
    uint16_t udpPort6 = 0;
    uint32_t ownerPid = 0;
    uint64_t accepted = 0;
    uint64_t active = 0;
    uint64_t bytesUp = 0;
    uint64_t bytesDown = 0;
    /// The callout can send connections here now: our listener is marked, or the external
    /// endpoint's listener belongs to its owner. Otherwise matching connections go direct.
    bool available = false;
    std::string availability;  ///< who listens, or why connections go direct
    /// Connections it made without passing the records on (no SET; the callout repaired them).
    uint64_t recordsMissing = 0;
};

struct ListenerSocket;

struct EngineStats {
    CalloutStats callout;
    uint64_t queueDrops = 0;        ///< flow updates no consumer took in time
    uint64_t evicted = 0;           ///< flows dropped at the retention cap
    size_t flows = 0;
    size_t openFlows = 0;
    uint64_t openConnections = 0;   ///< relay connections open now
    uint64_t udpDropped = 0;        ///< datagrams the UDP relay dropped (no flow for the source, upstream refused)
};

/**
 * Loads the callout (throws CalloutError), starts the relay and the control
 * thread. Rules change through applyRules() (all or nothing) and
 * setRuleEnabled() (one map update). Consumers take flow updates in batches
 * with drainFlows(); the engine never waits for them.
 */
class Engine {
public:
    explicit Engine(EngineOptions options);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    /// Start/stop redirectors and swap the rule table. On error nothing running changes.
    RuleError applyRules(const RuleSet& rules);
    /// Toggle one rule live. False, with the reason in *error when given, if there is no such
    /// rule or the callout refused the update; then nothing changed.
    bool setRuleEnabled(const std::string& ruleId, bool enabled, std::string* error = nullptr);
    RuleSet rules() const;

    /// Flows changed since the last drain, oldest change first (at most `max`).
    size_t drainFlows(std::vector<Flow>& out, size_t max = static_cast<size_t>(-1));
    std::vector<Flow> snapshot() const;
    std::vector<RedirectorStatus> redirectors() const;
    std::map<std::string, RuleHits> ruleHits() const;
    EngineStats stats() const;
    const std::string& scope() const { return callout_->cgroupPath(); }
    Callout& callout() { return *callout_; }
    /// Flush pending events and hop reports into the table now (e.g. before a report).
    void sync();
    void stop();

private:
    struct Running;
    void checkOwnScope();
    void controlLoop();
    void tick();
    void beat();
    void notePassedOver(const callout_event& e);
    void logPassedOver();
    void logRecordsMissing();
    RedirectorStatus statusFor(const RedirectorSpec& spec, uint32_t slot);
    void verifyExternal(Running& running);
    void markExternal(Running& running, const ListenerSocket& socket, const std::string& scope);
    std::string externalScope() const;
    void verifyExternals();
    callout_redirector calloutEntry(const Running& running) const;

    EngineOptions options_;
    std::unique_ptr<Callout> callout_;
    std::unique_ptr<Relay> relay_;
    std::unique_ptr<UdpRelay> udpRelay_;
    uint64_t netnsCookie_ = 0;
    /// The engine's own sockets are in the callout's scope, so records reach its redirectors.
    bool ownInScope_ = true;
    std::string scopeProblem_;

    // Control thread only: connections that passed over an unavailable redirector, logged at
    // most once a second.
    std::map<std::pair<uint32_t, uint8_t>, uint64_t> passedOver_;
    struct MissingLog {
        uint64_t count = 0;
        std::chrono::steady_clock::time_point at{};
    };
    std::map<uint32_t, MissingLog> recordsMissingLog_;  // control thread only
    uint64_t missingTotal_ = 0;   // control thread: the table's count at the last tick
    uint64_t missingLogged_ = 0;  // ... at the last logRecordsMissing()
    std::chrono::steady_clock::time_point lastPassedLog_{};
    std::chrono::steady_clock::time_point lastVerify_{};

    mutable std::mutex rulesMutex_;    // rules_, running_
    RuleSet rules_;
    std::map<std::string, std::unique_ptr<Running>> running_;  // by redirector id

    std::mutex hopsMutex_;
    std::vector<HopReport> hops_;      // from relay workers, taken by the control thread

    mutable std::mutex tableMutex_;
    std::unique_ptr<FlowTable> table_;
    std::vector<callout_event> pendingEvents_;
    BoundedQueue<Flow> updates_;

    std::atomic<bool> stopping_{false};
    int wake_ = -1;
    std::thread control_;
};

}  // namespace redirect::engine

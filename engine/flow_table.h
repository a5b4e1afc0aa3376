// Groups the callout's events and the redirectors' hop reports into flows.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "callout_abi.h"
#include "flow.h"
#include "redirector.h"

namespace redirect::engine {

/// Names for the numeric ids the kernel reports.
struct FlowNames {
    std::function<std::string(uint32_t)> redirector;  ///< redirector id -> name ("" if unknown)
    std::function<bool(uint32_t)> external;           ///< redirector id -> not ours
    std::function<std::string(uint32_t)> rule;        ///< rule id -> rule id text
};

/// Counters by verdict for one rule: which rule decided how many connects.
struct RuleHits {
    uint64_t redirected = 0;
    uint64_t bypassed = 0;
};

/**
 * Single-threaded (the engine's control thread). Flows are keyed by flow id,
 * the socket cookie of the application's socket, which every hop's records
 * carry. Changed flows are collected for the next publish. Ended flows beyond
 * the retention cap are evicted oldest first; open flows are never evicted.
 */
class FlowTable {
public:
    FlowTable(size_t retention, FlowNames names);

    /// bootToWallNs: add to a CLOCK_BOOTTIME time to get wall-clock ns.
    void onCalloutEvent(const callout_event& event, int64_t bootToWallNs);
    void onHop(HopReport&& hop);

    /// Flows changed since the last call (copies), in change order; then evicts beyond the cap.
    std::vector<Flow> takeChanged();
    std::vector<Flow> snapshot() const;
    /// The part of a snapshot a caller can take under a lock held briefly: up to `max` flows created
    /// after *cursor (0 at first), oldest first, appended to `out`; *cursor moves past them. False
    /// when none were left. Flows evicted or created between two calls are simply not there, or are.
    bool snapshotAfter(uint64_t* cursor, size_t max, std::vector<Flow>& out) const;
    size_t size() const { return flows_.size(); }
    size_t openCount() const { return flows_.size() - ended_; }
    std::map<uint32_t, RuleHits> ruleHits() const { return hits_; }
    /// By redirector id: connections it made without passing the records on (no SET; the callout
    /// repaired them), one per flow.
    std::map<uint32_t, uint64_t> recordsMissing() const { return recordsMissing_; }
    uint64_t recordsMissingTotal() const { return recordsMissingTotal_; }
    uint64_t evicted() const { return evicted_; }

private:
    Flow& flowFor(uint64_t flowId, int64_t startNs);
    Hop* hopFor(Flow& flow, uint32_t redirectorId);
    void touch(uint64_t flowId);
    void markRecordsMissing(Hop& hop);
    void maybeEnd(Flow& flow);
    void onApplicationClosed(const callout_event& event, int64_t wallNs);
    void onDirectConnect(const callout_event& event, int64_t wallNs);
    void describeApplication(Flow& flow, const callout_event& event, int64_t wallNs);
    std::string ruleName(uint32_t ruleId) const;
    void evict();
    const std::string& userName(uint32_t uid);

    size_t retention_;
    FlowNames names_;
    std::unordered_map<uint64_t, Flow> flows_;
    struct Created {
        uint64_t seq;  // creation order, never reused: a snapshot's cursor survives evictions
        uint64_t id;
    };
    std::deque<Created> order_;        // flows by creation
    uint64_t created_ = 0;
    size_t ended_ = 0;                 // flows in the table that ended (open ones: the rest)
    std::vector<uint64_t> changed_;
    std::unordered_set<uint64_t> changedSet_;
    std::unordered_set<uint64_t> hopCap_;  // flows whose chain reached the hop cap, until they end
    std::map<uint32_t, RuleHits> hits_;
    std::map<uint32_t, uint64_t> recordsMissing_;
    uint64_t recordsMissingTotal_ = 0;
    std::unordered_map<uint32_t, std::string> users_;
    uint64_t evicted_ = 0;
};

}  // namespace redirect::engine

// Headless output for a person at a terminal: one aligned line per ended flow, a status line every
// few seconds when something moved, and a summary that names what each counter means. The JSON
// lines (--jsonl) are for collectors; these lines are for people and may change between versions.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine.h"
#include "flow.h"

namespace redirect::app {

/// Flow ids that ended already, so that a late update of an ended flow does not end it twice.
/// Remembers the newest ids only: a days-long run must not grow without bound.
class EndedFlows {
public:
    /// True the first time `flowId` is marked.
    bool mark(uint64_t flowId);
    bool contains(uint64_t flowId) const { return ids_.count(flowId) != 0; }

private:
    std::unordered_set<uint64_t> ids_;
    std::deque<uint64_t> order_;
    static constexpr size_t kMemory = 1 << 18;
};

class FlowPrinter {
public:
    using Clock = std::chrono::steady_clock;

    /// Lines go to `fd` (stdout); a status line at most every `statusEverySeconds` (0: never).
    FlowPrinter(int fd, double statusEverySeconds, Clock::time_point start);

    /// One line per flow of `flows` that ended (the first time it is seen ended).
    void write(const std::vector<engine::Flow>& flows);
    /// Whether a status line is due at `now`; then call status() with the engine's counters.
    bool statusDue(Clock::time_point now) const;
    /// Prints the status line when anything changed since the last one.
    void status(Clock::time_point now, const engine::EngineStats& stats);
    /// The exit summary: each counter with its meaning.
    void summary(Clock::time_point now, const engine::EngineStats& stats);

    /// The line of one ended flow, without the newline (for tests and the header's widths).
    static std::string flowLine(const engine::Flow& flow);
    static std::string headerLine();

private:
    void put(const std::string& text);

    int fd_;
    double statusEvery_;
    Clock::time_point start_;
    Clock::time_point lastStatus_;
    bool headerDone_ = false;
    bool failed_ = false;
    EndedFlows ended_;
    std::unordered_map<uint64_t, uint64_t> openBytes_;  // bytes seen so far of each open flow
    uint64_t newFlows_ = 0;                             // since the last status line
    uint64_t newBytes_ = 0;
    uint64_t lastOpen_ = 0;
    uint64_t lastDrops_ = 0;
};

/// "HH:MM:SS.mmm" of a wall-clock time (ns since the epoch) in local time.
std::string localClock(int64_t wallNs);

}  // namespace redirect::app

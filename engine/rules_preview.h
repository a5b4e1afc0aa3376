// Dry run of a rule change: for the connections a node saw, the route each would take under the
// running rules and under the proposed ones, predicted by the callout's own matcher
// (callout_rule_match.h, the code the BPF program runs) over the compiled rule table.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flow.h"
#include "rules.h"

namespace redirect::engine {

/// Who makes a connect(), as the callout sees it.
struct ConnectIdentity {
    std::string comm;
    uint32_t uid = 0;
    uint64_t cgroupId = 0;
};

/// The engine's own identity: what the callout sees when one of its redirectors connects on.
ConnectIdentity ownIdentity();

/// Where one connection goes: the verdict of the application's connect, the rule that decided
/// it, and the redirectors in chain order.
struct PredictedRoute {
    std::string verdict;             ///< redirect, bypass, block, direct, local
    std::string rule;                ///< the deciding rule of the first connect ("" when none)
    std::vector<std::string> chain;  ///< redirector names, in order
    bool operator==(const PredictedRoute&) const = default;
    /// "A -> B" or "direct (no rule)", "direct (bypass rule corp)", "refused (block rule quic)".
    std::string text() const;
};

class RoutePredictor {
public:
    /// Compiles `rules` as the engine would (cgroup paths resolved now); nullopt with the error.
    /// Redirectors connect on as `engine`; external ones as their owner when the rules name one
    /// (uid, process), else the chain is predicted up to them.
    static std::optional<RoutePredictor> make(const RuleSet& rules, const ConnectIdentity& engine,
                                              std::string* error);
    /// The route of a connection like `flow` (same process, user, cgroup, destination) made now.
    PredictedRoute predict(const Flow& flow) const;

private:
    struct Slot {
        uint32_t numericId = 0;
        std::string name;
        std::optional<ConnectIdentity> connectsAs;
        std::vector<Endpoint> listen;
    };
    std::vector<callout_rule> table_;
    std::vector<std::string> ruleIds_;  ///< table_[i]'s id text
    std::vector<Slot> slots_;
    int64_t nowBootNs_ = 0;
};

struct RulesPreview {
    struct Example {
        Flow flow;                   ///< without hops' blobs
        PredictedRoute before, after;
    };
    size_t considered = 0;           ///< connections seen in the window
    size_t changed = 0;              ///< of them, those the change sends another way
    std::vector<Example> examples;   ///< up to the asked number, newest first
};

/// Predicts `flows` (those that started at or after sinceNs) under `current` and `proposed`.
/// nullopt with the error when either set does not compile here.
std::optional<RulesPreview> previewRules(const RuleSet& current, const RuleSet& proposed, const std::vector<Flow>& flows,
                                         int64_t sinceNs, size_t maxExamples, const ConnectIdentity& engine,
                                         std::string* error);

}  // namespace redirect::engine

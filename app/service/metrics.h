// Prometheus metrics of the service: flows, bytes, connect latency, drops and rule hits,
// served as text on /metrics for a fleet's Prometheus. No Qt.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine.h"

namespace redirect::service {

/**
 * Turns the engine's flow updates and absolute counters into Prometheus series and serves
 * them over HTTP (prometheus-cpp's exposer, Debian's civetweb).
 *
 * observe() and refresh() are called from one service thread; the exposer's threads read the
 * series concurrently (prometheus-cpp's metrics are thread-safe). Label values come only from
 * fixed sets (verdicts, end reasons, directions) and from the rules file (redirector names, rule
 * ids), capped in number; never pid, comm or destination.
 *
 * Counting is exact when no flow update is lost. When the engine drops updates (its queue was
 * full), a flow first seen already ended is counted once, as first seen and as ended; a flow
 * whose end was lost is never counted as ended (nor its bytes); nothing is counted twice and
 * the active gauge (the engine's own count) never goes negative. Memory is bounded: ended flow
 * ids are remembered (to ignore repeated updates) for the last 65,536 ends; tracked open flows
 * beyond 65,536 (only ends that were lost pile up) are forgotten oldest first and their ends
 * ignored.
 */
class Metrics {
public:
    /// Serves Prometheus text metrics on `listen` ("127.0.0.1:9464"; port 0 = the OS picks) at
    /// /metrics. Throws std::runtime_error naming the address and the reason (bad address, bind
    /// failure with its errno text). IPv6 addresses are refused with that reason: Debian's
    /// civetweb, which serves the page, is built without IPv6.
    explicit Metrics(const std::string& listen);
    ~Metrics();
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    uint16_t port() const;  ///< the bound port

    /// The flow updates the service took from the engine (each = the newest state of one flow; a
    /// flow appears several times while it lives). Counts each flow once when first seen, each
    /// hop's bytes and connect latency once when the hop has ended, and the flow's end once.
    void observe(const std::vector<engine::Flow>& updates);

    /// The engine's state, about once a second. Absolute counters become counter increments; a
    /// counter that went backwards (its source restarted) counts its new value.
    void refresh(const engine::EngineStats& stats, const std::vector<engine::RedirectorStatus>& redirectors,
                 const std::map<std::string, engine::RuleHits>& ruleHits, uint64_t journalDrops);

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace redirect::service

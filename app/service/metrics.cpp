#include "metrics.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <list>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include <arpa/inet.h>

#include <CivetServer.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

namespace redirect::service {

namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

constexpr size_t kEndedMemory = 1 << 16;
constexpr size_t kOpenMemory = 1 << 16;
/// Distinct redirector names or rule ids per label; more (a rules file edited for months)
/// share the value "other", so a series count never grows without bound.
constexpr size_t kMaxLabelValues = 256;
/// Hops per flow whose end is tracked (the callout caps a chain at 8).
constexpr size_t kTrackedHops = 16;

// Loopback connects take tens of microseconds, LAN ones milliseconds; 5 s is the default
// connect timeout.
const std::vector<double> kConnectBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                             0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};

/// "a.b.c.d:port" with a decimal port 0..65535, as civetweb takes it; throws otherwise.
std::string checkedListen(const std::string& listen)
{
    auto fail = [&](const std::string& why) {
        return std::runtime_error("metrics listen address '" + listen + "': " + why);
    };
    if (!listen.empty() && listen.front() == '[')
        throw fail("IPv6 is not supported (Debian's civetweb, which serves /metrics, is built without IPv6); "
                   "use an IPv4 address such as 127.0.0.1:9464");
    auto colon = listen.rfind(':');
    if (colon == std::string::npos)
        throw fail("expected IPv4-address:port, e.g. 127.0.0.1:9464");
    std::string host = listen.substr(0, colon), port = listen.substr(colon + 1);
    in_addr addr{};
    if (::inet_pton(AF_INET, host.c_str(), &addr) != 1)
        throw fail("'" + host + "' is not an IPv4 address");
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(port) > 65535)
        throw fail("'" + port + "' is not a port (0..65535)");
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &addr, text, sizeof(text));
    return std::string(text) + ":" + std::to_string(std::stoul(port));
}

// civetweb reports why it cannot listen only through its log callback, during the
// constructor, on the constructing thread: collect it there for the exception.
thread_local std::string* startupLog = nullptr;
std::atomic<int64_t> lastServerLogSecond{0};

int logFromCivetweb(const mg_connection*, const char* message)
{
    if (startupLog) {
        *startupLog += (startupLog->empty() ? "" : "; ") + std::string(message);
        return 1;
    }
    // At most once a second: a server out of descriptors would log every accept.
    int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count();
    int64_t last = lastServerLogSecond.load();
    if (now != last && lastServerLogSecond.compare_exchange_strong(last, now))
        spdlog::warn("metrics HTTP server: {}", message);
    return 1;  // handled: civetweb prints nothing itself
}

/// How much an absolute counter grew since `last`; a counter that went backwards restarted
/// from zero, so all of its value is new.
double growth(uint64_t now, uint64_t& last)
{
    uint64_t grown = now >= last ? now - last : now;
    last = now;
    return static_cast<double>(grown);
}

/// The distinct values one label has taken, capped at kMaxLabelValues.
class LabelValues {
public:
    /// The value, or null when it would be one too many.
    const std::string* admitted(const std::string& value)
    {
        auto it = values_.find(value);
        if (it != values_.end())
            return &*it;
        if (values_.size() >= kMaxLabelValues)
            return nullptr;
        return &*values_.insert(value).first;
    }
    /// The value, or "other" for all values beyond the cap (for counters that add up).
    const std::string& bounded(const std::string& value)
    {
        static const std::string other = "other";
        const std::string* v = admitted(value);
        return v ? *v : other;
    }

private:
    std::set<std::string> values_;
};

bool connectFailed(engine::EndReason r)
{
    using engine::EndReason;
    return r == EndReason::Refused || r == EndReason::Timeout || r == EndReason::Unreachable ||
           r == EndReason::NoRecords;
}

}  // namespace

struct Metrics::State {
    std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
    Family<Counter>& flows =
        prometheus::BuildCounter()
            .Name("redirect_flows_total")
            .Help("Flows the engine saw start, by the callout's verdict on the application's connect and the first "
                  "hop's redirector (empty: direct)")
            .Register(*registry);
    Family<Gauge>& active = prometheus::BuildGauge()
                                .Name("redirect_flows_active")
                                .Help("Flows open now in the engine's flow table")
                                .Register(*registry);
    Family<Counter>& ended = prometheus::BuildCounter()
                                 .Name("redirect_flows_ended_total")
                                 .Help("Flows that ended, by end reason")
                                 .Register(*registry);
    Family<Counter>& bytes =
        prometheus::BuildCounter()
            .Name("redirect_redirector_bytes_total")
            .Help("Bytes relayed by ended hops, by the hop's redirector and direction (up: client to destination)")
            .Register(*registry);
    Family<Histogram>& connect =
        prometheus::BuildHistogram()
            .Name("redirect_hop_connect_duration_seconds")
            .Help("Time a redirector took to connect upstream, per ended hop that connected, by redirector")
            .Register(*registry);
    Family<Gauge>& available =
        prometheus::BuildGauge()
            .Name("redirect_redirector_available")
            .Help("1 when the callout can send connections to the redirector now, 0 when they go direct")
            .Register(*registry);
    Family<Counter>& recordsMissing =
        prometheus::BuildCounter()
            .Name("redirect_redirector_records_missing_total")
            .Help("Connections the redirector made without passing the redirect records on (it did not call "
                  "SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS; the callout repaired them), by redirector")
            .Register(*registry);
    Family<Counter>& ruleHits = prometheus::BuildCounter()
                                    .Name("redirect_rule_hits_total")
                                    .Help("Connects a rule decided, at every hop of a chain, by rule and action")
                                    .Register(*registry);
    Counter& eventDrops = prometheus::BuildCounter()
                              .Name("redirect_callout_event_drops_total")
                              .Help("Callout events lost because the ring buffer was full")
                              .Register(*registry)
                              .Add({});
    Counter& queueDrops = prometheus::BuildCounter()
                              .Name("redirect_engine_queue_drops_total")
                              .Help("Flow updates the engine dropped because no consumer took them in time")
                              .Register(*registry)
                              .Add({});
    Counter& journalDrops = prometheus::BuildCounter()
                                .Name("redirect_journal_drops_total")
                                .Help("Flow updates the service's journal dropped")
                                .Register(*registry)
                                .Add({});
    Counter& udpDropped = prometheus::BuildCounter()
                              .Name("redirect_udp_datagrams_dropped_total")
                              .Help("Datagrams the UDP relay dropped: from an unknown source, at its flow "
                                    "limit, or refused on the way")
                              .Register(*registry)
                              .Add({});
    Counter& evicted = prometheus::BuildCounter()
                           .Name("redirect_flows_evicted_total")
                           .Help("Ended flows the engine evicted from its table at the retention cap")
                           .Register(*registry)
                           .Add({});
    Gauge& activeFlows = active.Add({});
    std::unique_ptr<prometheus::Exposer> exposer;  // after the registry: stops serving before it goes
    uint16_t port = 0;

    LabelValues redirectorNames;
    LabelValues ruleIds;
    // Series by label values: Family::Add hashes every label under a lock.
    std::map<std::pair<std::string, std::string>, Counter*> flowsBy;
    std::map<engine::EndReason, Counter*> endedBy;
    std::map<std::string, std::pair<Counter*, Counter*>> bytesBy;  // up, down
    std::map<std::string, Histogram*> connectBy;
    std::map<std::string, Gauge*> availableBy;
    std::map<std::string, std::pair<Counter*, uint64_t>> missingBy;  // the counter, the last absolute value
    struct Hits {
        Counter* redirected = nullptr;
        Counter* bypassed = nullptr;
        engine::RuleHits last;
    };
    std::map<std::string, Hits> hitsBy;
    uint64_t lastEventDrops = 0, lastQueueDrops = 0, lastJournalDrops = 0, lastEvicted = 0, lastUdpDropped = 0;

    // Flows seen and not ended: which of their hops were counted.
    struct Open {
        uint16_t hopsCounted = 0;
        std::list<uint64_t>::iterator order;
    };
    std::unordered_map<uint64_t, Open> open;
    std::list<uint64_t> openOrder;  // first seen first
    std::unordered_set<uint64_t> endedIds;
    std::deque<uint64_t> endedOrder;

    Counter& flowsFor(const engine::Flow& f)
    {
        const std::string& verdict = f.verdict.empty() ? std::string("unknown") : f.verdict;
        const std::string& redirector = redirectorNames.bounded(f.hops.empty() ? std::string() : f.hops[0].redirector);
        auto [it, inserted] = flowsBy.try_emplace({verdict, redirector}, nullptr);
        if (inserted)
            it->second = &flows.Add({{"verdict", verdict}, {"redirector", redirector}});
        return *it->second;
    }
    std::pair<Counter*, Counter*>& bytesFor(const std::string& name)
    {
        const std::string& redirector = redirectorNames.bounded(name);
        auto [it, inserted] = bytesBy.try_emplace(redirector);
        if (inserted)
            it->second = {&bytes.Add({{"redirector", redirector}, {"direction", "up"}}),
                          &bytes.Add({{"redirector", redirector}, {"direction", "down"}})};
        return it->second;
    }
    Histogram& connectFor(const std::string& name)
    {
        const std::string& redirector = redirectorNames.bounded(name);
        auto [it, inserted] = connectBy.try_emplace(redirector, nullptr);
        if (inserted)
            it->second = &connect.Add({{"redirector", redirector}}, kConnectBuckets);
        return *it->second;
    }

    void observe(const engine::Flow& f);
    void countEndedHops(const engine::Flow& f, uint16_t& counted);
    void rememberEnded(uint64_t flowId);
    void refreshRedirectors(const std::vector<engine::RedirectorStatus>& redirectors);
    void refreshRuleHits(const std::map<std::string, engine::RuleHits>& hits);
};

void Metrics::State::observe(const engine::Flow& f)
{
    if (endedIds.count(f.flowId))
        return;  // its end is counted already (or it was forgotten): a late update
    auto it = open.find(f.flowId);
    if (it == open.end()) {
        flowsFor(f).Increment();
        openOrder.push_back(f.flowId);
        it = open.emplace(f.flowId, Open{0, std::prev(openOrder.end())}).first;
    }
    countEndedHops(f, it->second.hopsCounted);
    if (f.endNs) {
        auto [reason, inserted] = endedBy.try_emplace(f.reason, nullptr);
        if (inserted)
            reason->second = &ended.Add({{"reason", engine::endReasonName(f.reason)}});
        reason->second->Increment();
        openOrder.erase(it->second.order);
        open.erase(it);
        rememberEnded(f.flowId);
    }
    // Only flows whose end update was lost pile up here: forget the oldest, and ignore their ends.
    while (open.size() > kOpenMemory) {
        uint64_t oldest = openOrder.front();
        openOrder.pop_front();
        open.erase(oldest);
        rememberEnded(oldest);
    }
}

void Metrics::State::countEndedHops(const engine::Flow& f, uint16_t& counted)
{
    // Hops only ever get appended to a flow, so a hop keeps its index across updates.
    for (size_t i = 0; i < f.hops.size() && i < kTrackedHops; ++i) {
        const engine::Hop& hop = f.hops[i];
        auto bit = static_cast<uint16_t>(1u << i);
        if (!hop.endNs || (counted & bit))
            continue;
        counted |= bit;
        if (hop.external)
            continue;  // seen at connect time only: bytes and latency unknown
        auto [up, down] = bytesFor(hop.redirector);
        up->Increment(static_cast<double>(hop.bytesUp));
        down->Increment(static_cast<double>(hop.bytesDown));
        if (hop.connectMs >= 0 && !connectFailed(hop.reason))
            connectFor(hop.redirector).Observe(hop.connectMs / 1000.0);
    }
}

void Metrics::State::rememberEnded(uint64_t flowId)
{
    endedIds.insert(flowId);
    endedOrder.push_back(flowId);
    if (endedOrder.size() > kEndedMemory) {
        endedIds.erase(endedOrder.front());
        endedOrder.pop_front();
    }
}

void Metrics::State::refreshRedirectors(const std::vector<engine::RedirectorStatus>& redirectors)
{
    std::set<std::string> present;
    for (const auto& r : redirectors) {
        const std::string* admitted = redirectorNames.admitted(r.name);
        if (!admitted)
            continue;  // beyond the cap: its flows and bytes count under "other"
        const std::string& name = *admitted;
        present.insert(name);
        auto [it, inserted] = availableBy.try_emplace(name, nullptr);
        if (inserted)
            it->second = &available.Add({{"redirector", name}});
        it->second->Set(r.available ? 1 : 0);
        auto [missing, fresh] = missingBy.try_emplace(name, nullptr, 0);
        if (fresh)
            missing->second.first = &recordsMissing.Add({{"redirector", name}});
        missing->second.first->Increment(growth(r.recordsMissing, missing->second.second));
        // Known redirectors' series exist from the start, so rate() sees their first bytes.
        bytesFor(r.name);
        connectFor(r.name);
        auto [flowsIt, flowsInserted] = flowsBy.try_emplace({"redirect", name}, nullptr);
        if (flowsInserted)
            flowsIt->second = &flows.Add({{"verdict", "redirect"}, {"redirector", name}});
    }
    // A redirector gone from the rules is not "unavailable": its gauge goes; its counters stay.
    for (auto it = availableBy.begin(); it != availableBy.end();) {
        if (present.count(it->first)) {
            ++it;
            continue;
        }
        available.Remove(it->second);
        it = availableBy.erase(it);
    }
}

void Metrics::State::refreshRuleHits(const std::map<std::string, engine::RuleHits>& hits)
{
    for (const auto& [rule, now] : hits) {
        const std::string* id = ruleIds.admitted(rule);
        if (!id)
            continue;  // beyond the cap: absolute values of several rules cannot share one series
        auto [it, inserted] = hitsBy.try_emplace(*id);
        Hits& h = it->second;
        if (inserted) {
            h.redirected = &ruleHits.Add({{"rule", *id}, {"action", "redirected"}});
            h.bypassed = &ruleHits.Add({{"rule", *id}, {"action", "bypassed"}});
        }
        h.redirected->Increment(growth(now.redirected, h.last.redirected));
        h.bypassed->Increment(growth(now.bypassed, h.last.bypassed));
    }
}

Metrics::Metrics(const std::string& listen) : state_(std::make_unique<State>())
{
    std::string address = checkedListen(listen);
    // Every end reason's series exists from the start, so rate() sees the first end of each.
    for (auto r = static_cast<uint8_t>(engine::EndReason::Closed); r <= static_cast<uint8_t>(engine::kLastEndReason);
         ++r) {
        auto reason = static_cast<engine::EndReason>(r);
        state_->endedBy[reason] = &state_->ended.Add({{"reason", engine::endReasonName(reason)}});
    }
    std::string why;
    CivetCallbacks callbacks;
    callbacks.log_message = logFromCivetweb;
    struct Collect {
        explicit Collect(std::string* to) { startupLog = to; }
        ~Collect() { startupLog = nullptr; }
    } collect(&why);
    try {
        // A scrape is one short GET: two threads, and a client that stalls is dropped after 10 s.
        state_->exposer = std::make_unique<prometheus::Exposer>(
            std::vector<std::string>{"listening_ports", address, "num_threads", "2", "request_timeout_ms", "10000"},
            &callbacks);
    } catch (const std::exception& e) {
        throw std::runtime_error("metrics listen address '" + listen + "': " + (why.empty() ? e.what() : why));
    }
    state_->exposer->RegisterCollectable(state_->registry);
    auto ports = state_->exposer->GetListeningPorts();
    if (ports.empty())
        throw std::runtime_error("metrics listen address '" + listen + "': no port bound");
    state_->port = static_cast<uint16_t>(ports.front());
    spdlog::info("metrics: serving Prometheus text on http://{}:{}/metrics", address.substr(0, address.rfind(':')),
                 state_->port);
}

Metrics::~Metrics() = default;

uint16_t Metrics::port() const { return state_->port; }

void Metrics::observe(const std::vector<engine::Flow>& updates)
{
    for (const engine::Flow& f : updates)
        state_->observe(f);
}

void Metrics::refresh(const engine::EngineStats& stats, const std::vector<engine::RedirectorStatus>& redirectors,
                      const std::map<std::string, engine::RuleHits>& ruleHits, uint64_t journalDrops)
{
    State& s = *state_;
    s.activeFlows.Set(static_cast<double>(stats.openFlows));
    s.eventDrops.Increment(growth(stats.callout[CALLOUT_STAT_EVENT_DROPS], s.lastEventDrops));
    s.queueDrops.Increment(growth(stats.queueDrops, s.lastQueueDrops));
    s.journalDrops.Increment(growth(journalDrops, s.lastJournalDrops));
    s.evicted.Increment(growth(stats.evicted, s.lastEvicted));
    s.udpDropped.Increment(growth(stats.udpDropped, s.lastUdpDropped));
    s.refreshRedirectors(redirectors);
    s.refreshRuleHits(ruleHits);
}

}  // namespace redirect::service

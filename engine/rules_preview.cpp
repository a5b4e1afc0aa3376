#include "rules_preview.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <fstream>

#include "callout_rule_match.h"
#include "cgroup2.h"

namespace redirect::engine {

namespace {

int64_t clockNs(clockid_t id)
{
    timespec ts{};
    ::clock_gettime(id, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// "1.2.3.4:443" or "[::1]:80" into what the callout's conn holds; false for anything else.
bool parseDestination(const std::string& text, callout_conn& conn)
{
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon + 1 >= text.size())
        return false;
    unsigned long port = std::strtoul(text.c_str() + colon + 1, nullptr, 10);
    if (port == 0 || port > 65535)
        return false;
    conn.port = static_cast<__u16>(port);
    std::string host = text.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        in6_addr a{};
        if (::inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a) != 1)
            return false;
        std::memcpy(conn.dst, &a, 16);
        // The callout lets rules see a v4-mapped destination as IPv4.
        if (IN6_IS_ADDR_V4MAPPED(&a)) {
            conn.dst[0] = conn.dst[3];
            conn.dst[1] = conn.dst[2] = conn.dst[3] = 0;
            conn.family = AF_INET;
        } else {
            conn.family = AF_INET6;
        }
        return true;
    }
    in_addr a{};
    if (::inet_pton(AF_INET, host.c_str(), &a) != 1)
        return false;
    conn.dst[0] = a.s_addr;
    conn.family = AF_INET;
    return true;
}

void fillIdentity(callout_conn& conn, const ConnectIdentity& who)
{
    std::memset(conn.comm, 0, sizeof(conn.comm));
    std::memcpy(conn.comm, who.comm.data(), std::min(who.comm.size(), sizeof(conn.comm) - 1));
    conn.uid = who.uid;
    conn.cgroup_id = who.cgroupId;
}

}  // namespace

ConnectIdentity ownIdentity()
{
    ConnectIdentity me;
    std::ifstream comm("/proc/self/comm");
    std::getline(comm, me.comm);
    me.uid = ::getuid();
    std::string root = cgroup2::findRoot();
    std::string path = root.empty() ? std::string() : cgroup2::ofProcess(0, root);
    struct stat st{};
    if (!path.empty() && ::stat(path.c_str(), &st) == 0)
        me.cgroupId = st.st_ino;
    return me;
}

std::string PredictedRoute::text() const
{
    if (verdict == "redirect") {
        std::string out;
        for (const std::string& name : chain)
            out += (out.empty() ? "" : " -> ") + name;
        return out;
    }
    if (verdict == "bypass")
        return "direct (bypass rule " + rule + ")";
    if (verdict == "block")
        return "refused (block rule " + rule + ")";
    if (verdict == "local")
        return "to a redirector's port";
    return "direct (no rule)";
}

std::optional<RoutePredictor> RoutePredictor::make(const RuleSet& rules, const ConnectIdentity& engine,
                                                   std::string* error)
{
    RoutePredictor p;
    // Slots are the redirectors' places in this set: the predictor keeps its own table, the
    // kernel's slots do not matter here.
    auto slotOf = [&rules](const std::string& id) -> int {
        for (size_t i = 0; i < rules.redirectors.size(); ++i)
            if (rules.redirectors[i].id == id)
                return static_cast<int>(i);
        return -1;
    };
    p.nowBootNs_ = clockNs(CLOCK_BOOTTIME);
    CompileResult compiled = compileRules(rules, slotOf, clockNs(CLOCK_REALTIME), p.nowBootNs_);
    if (!compiled.ok()) {
        if (error)
            *error = compiled.error.str();
        return std::nullopt;
    }
    p.table_ = std::move(compiled.rules);
    for (const RuleSpec& spec : rules.rules)
        p.ruleIds_.push_back(spec.id);
    for (const RedirectorSpec& spec : rules.redirectors) {
        Slot slot;
        slot.numericId = spec.numericId;
        slot.name = spec.name;
        slot.listen = spec.listen;
        if (!spec.external)
            slot.connectsAs = engine;
        else if (!spec.ownerProcess.empty())
            slot.connectsAs = ConnectIdentity{spec.ownerProcess, spec.ownerUid, 0};
        p.slots_.push_back(std::move(slot));
    }
    return p;
}

PredictedRoute RoutePredictor::predict(const Flow& flow) const
{
    PredictedRoute route;
    route.verdict = "direct";
    callout_conn conn{};
    if (!parseDestination(flow.destination, conn))
        return route;
    conn.now = static_cast<__u64>(nowBootNs_);
    // The flows a node reports are TCP connections (the engine relays no UDP yet).
    conn.protocol = IPPROTO_TCP;
    fillIdentity(conn, ConnectIdentity{flow.comm, flow.uid, flow.cgroupId});
    for (const Slot& slot : slots_)
        for (const Endpoint& e : slot.listen)
            if (e.port == conn.port && (e.family == AF_INET ? std::memcmp(e.addr.data(), conn.dst, 4) == 0
                                                            : std::memcmp(e.addr.data(), conn.dst, 16) == 0)) {
                route.verdict = "local";
                return route;
            }
    callout_records records{};
    // The walk of callout_decide() for each connect of the chain: the first rule that matches
    // decides; a redirector whose state forbids it (WFP's loop contract) is passed over.
    for (uint8_t hop = 0; hop < CALLOUT_MAX_HOPS; ++hop) {
        const callout_rule* decided = nullptr;
        const Slot* to = nullptr;
        for (const callout_rule& rule : table_) {
            if (!callout_rule_match(&rule, &conn))
                continue;
            if (rule.action == CALLOUT_ACTION_BYPASS || rule.action == CALLOUT_ACTION_BLOCK) {
                decided = &rule;
                break;
            }
            const Slot& slot = slots_.at(rule.redirector_slot);
            if (!callout_state_may_redirect(callout_state_of(&records, slot.numericId)))
                continue;
            decided = &rule;
            to = &slot;
            break;
        }
        static const std::string none;
        const std::string& ruleId = decided ? ruleIds_[size_t(decided - table_.data())] : none;
        if (!decided || !to) {
            if (hop == 0 && decided) {
                route.verdict = decided->action == CALLOUT_ACTION_BLOCK ? "block" : "bypass";
                route.rule = ruleId;
            }
            return route;
        }
        if (hop == 0) {
            route.verdict = "redirect";
            route.rule = ruleId;
        }
        route.chain.push_back(to->name);
        records.hops[records.hop_count].redirector_id = to->numericId;
        ++records.hop_count;
        if (!to->connectsAs)
            return route;  // an external proxy of unknown identity: the chain is known up to it
        fillIdentity(conn, *to->connectsAs);
    }
    return route;
}

std::optional<RulesPreview> previewRules(const RuleSet& current, const RuleSet& proposed, const std::vector<Flow>& flows,
                                         int64_t sinceNs, size_t maxExamples, const ConnectIdentity& engine,
                                         std::string* error)
{
    std::optional<RoutePredictor> before = RoutePredictor::make(current, engine, error);
    if (!before)
        return std::nullopt;
    std::optional<RoutePredictor> after = RoutePredictor::make(proposed, engine, error);
    if (!after)
        return std::nullopt;
    RulesPreview preview;
    std::vector<const Flow*> seen;
    for (const Flow& flow : flows)
        if (flow.startNs >= sinceNs)
            seen.push_back(&flow);
    std::sort(seen.begin(), seen.end(), [](const Flow* a, const Flow* b) { return a->startNs > b->startNs; });
    preview.considered = seen.size();
    for (const Flow* flow : seen) {
        PredictedRoute was = before->predict(*flow), will = after->predict(*flow);
        if (was == will)
            continue;
        ++preview.changed;
        if (preview.examples.size() < maxExamples) {
            Flow shown = *flow;
            for (Hop& hop : shown.hops)
                hop.records.clear(), hop.context.clear();
            preview.examples.push_back({std::move(shown), std::move(was), std::move(will)});
        }
    }
    return preview;
}

}  // namespace redirect::engine

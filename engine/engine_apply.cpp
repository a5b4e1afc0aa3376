// Engine: applying a rule set (all or nothing) and toggling one rule.
#include <algorithm>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "engine_internal.h"

namespace redirect::engine {

namespace {

// Redirectors that stay as they are keep their slot, listeners and open connections.
bool sameSpec(const RedirectorSpec& a, const RedirectorSpec& b)
{
    return a.external == b.external && a.listen == b.listen && a.data == b.data && a.name == b.name &&
           a.ownerUid == b.ownerUid && a.ownerProcess == b.ownerProcess;
}

}  // namespace

RedirectorStatus Engine::statusFor(const RedirectorSpec& spec, uint32_t slot)
{
    RedirectorStatus s;
    s.id = spec.id;
    s.name = spec.name;
    s.numericId = spec.numericId;
    s.external = spec.external;
    s.slot = slot;
    for (const Endpoint& e : spec.listen)
        (e.family == AF_INET ? s.port4 : s.port6) = e.port;
    return s;
}

RuleError Engine::applyRules(const RuleSet& rules)
{
    std::lock_guard lock(rulesMutex_);
    std::map<std::string, Running*> kept;
    std::map<std::string, std::unique_ptr<Running>> started;
    std::vector<bool> slotUsed(CALLOUT_MAX_REDIRECTORS, false);   // by the new set
    std::vector<bool> slotLive(CALLOUT_MAX_REDIRECTORS, false);   // by the live table until the flip
    for (auto& [id, r] : running_)
        slotLive[r->status.slot] = true;
    for (const RedirectorSpec& spec : rules.redirectors) {
        auto it = running_.find(spec.id);
        if (it != running_.end() && sameSpec(it->second->spec, spec)) {
            kept[spec.id] = it->second.get();
            slotUsed[it->second->status.slot] = true;
        }
    }
    // Undo for any failure before the rule table flips: the kernel still routes by the old
    // table, which names none of the new slots (new redirectors never take a live slot); the
    // slots written are cleared and the new listeners close.
    std::vector<uint32_t> written;
    auto undo = [&](RuleError error) {
        for (uint32_t slot : written) {
            try {
                callout_->clearRedirector(slot);
            } catch (const CalloutError& e) {
                spdlog::warn("undo: {}", e.what());
            }
        }
        for (auto& [id, r] : started)
            if (r->runtime) {
                relay_->removeRedirector(r->runtime);
                udpRelay_->removeRedirector(r->runtime);
            }
        return error;
    };
    for (const RedirectorSpec& spec : rules.redirectors) {
        if (kept.count(spec.id))
            continue;
        uint32_t slot = 0;
        while (slot < CALLOUT_MAX_REDIRECTORS && (slotUsed[slot] || slotLive[slot]))
            ++slot;
        if (slot >= CALLOUT_MAX_REDIRECTORS)
            return undo({spec.position.line, spec.position.column,
                         "too many redirectors: the running ones and the new ones need more than " +
                             std::to_string(CALLOUT_MAX_REDIRECTORS) + " slots while the rules change"});
        auto r = std::make_unique<Running>();
        r->spec = spec;
        r->status = statusFor(spec, slot);
        slotUsed[slot] = true;
        if (!spec.external) {
            r->runtime = std::make_shared<RedirectorRuntime>();
            r->runtime->id = spec.numericId;
            r->runtime->name = spec.name;
            r->runtime->config.id = spec.numericId;
            r->runtime->config.port4 = r->status.port4;
            r->runtime->config.port6 = r->status.port6;
            for (const Endpoint& e : spec.listen) {
                if (e.family == AF_INET)
                    std::copy_n(e.addr.begin(), 4, r->runtime->config.addr4.begin());
                else
                    r->runtime->config.addr6 = e.addr;
            }
            r->runtime->config.connectTimeoutMs = options_.connectTimeoutMs;
            try {
                relay_->addRedirector(r->runtime, &r->status.port4, &r->status.port6);
                // Every redirector of ours takes UDP too (rules choose the protocol): on the
                // configured port, else on one the OS picks.
                udpRelay_->addRedirector(r->runtime, &r->status.udpPort4, &r->status.udpPort6);
            } catch (const std::exception& e) {
                started[spec.id] = std::move(r);  // its slot is undone with the others
                return undo({spec.position.line, spec.position.column,
                             "redirector \"" + spec.id + "\" cannot listen: " + e.what()});
            }
            r->status.ownerPid = options_.repairOwnRecords ? static_cast<uint32_t>(::getpid()) : 0;
            r->status.available = ownInScope_;
            r->status.availability = ownInScope_ ? "listening" : scopeProblem_;
        } else {
            verifyExternal(*r);
        }
        started[spec.id] = std::move(r);
    }
    auto slotOf = [&](const std::string& id) {
        if (auto k = kept.find(id); k != kept.end())
            return static_cast<int>(k->second->status.slot);
        if (auto n = started.find(id); n != started.end())
            return static_cast<int>(n->second->status.slot);
        return -1;
    };
    CompileResult compiled = compileRules(rules, slotOf, clockNs(CLOCK_REALTIME), clockNs(CLOCK_BOOTTIME));
    if (!compiled.ok())
        return undo(compiled.error);

    // Commit: new slots first, then the rule table flips in one update. A callout that refuses
    // either leaves the old table live: undo, and say why.
    // The relay knows the new rules' idle timeouts before their first flow can reach it.
    auto idleTimeouts = [](const RuleSet& set) {
        std::map<uint32_t, uint32_t> idle;
        for (const RuleSpec& rule : set.rules)
            idle[rule.numericId] = ruleIdleTimeoutS(rule);
        return idle;
    };
    udpRelay_->setIdleTimeouts(idleTimeouts(rules));
    try {
        for (auto& [id, r] : started) {
            written.push_back(r->status.slot);
            callout_->setRedirector(r->status.slot, calloutEntry(*r));
        }
        callout_->setRules(compiled.rules);
    } catch (const CalloutError& e) {
        udpRelay_->setIdleTimeouts(idleTimeouts(rules_));
        return undo({0, 0, std::string("the callout refused the new rules: ") + e.what()});
    }
    // The new table is live. Old slots go before their listeners close: the callout must never
    // send a connection to a port nobody of ours holds any more.
    std::map<std::string, std::unique_ptr<Running>> next;
    for (auto& [id, r] : running_) {
        if (kept.count(id)) {
            next[id] = std::move(r);
            continue;
        }
        if (!slotUsed[r->status.slot]) {
            try {
                callout_->clearRedirector(r->status.slot);
            } catch (const CalloutError& e) {
                // No rule names the slot any more; it stays unused until a later apply reuses it.
                spdlog::warn("retiring redirector {}: {}", id, e.what());
            }
        }
        if (r->runtime) {
            relay_->removeRedirector(r->runtime);
            udpRelay_->removeRedirector(r->runtime);
        }
    }
    for (auto& [id, r] : started)
        next[id] = std::move(r);
    running_ = std::move(next);
    rules_ = rules;

    spdlog::info("rules applied: {} redirectors, {} rules", running_.size(), rules_.rules.size());
    return {};
}

callout_redirector Engine::calloutEntry(const Running& r) const
{
    const RedirectorSpec& spec = r.spec;
    callout_redirector entry{};
    entry.id = spec.numericId;
    // Every redirector of ours goes by verified listener only: see CALLOUT_ROLE_LISTENER.
    entry.flags = CALLOUT_REDIRECTOR_ACTIVE | CALLOUT_REDIRECTOR_VERIFY_LISTENER |
                  (spec.external ? CALLOUT_REDIRECTOR_EXTERNAL : 0);
    entry.owner_tgid = r.status.ownerPid;
    entry.netns_cookie = netnsCookie_;
    entry.addr4 = htonl(INADDR_LOOPBACK);
    std::memcpy(entry.addr6, &in6addr_loopback, 16);
    for (const Endpoint& e : spec.listen) {
        if (e.family == AF_INET)
            std::memcpy(&entry.addr4, e.addr.data(), 4);
        else
            std::memcpy(entry.addr6, e.addr.data(), 16);
    }
    entry.port4 = htons(r.status.port4);
    entry.port6 = htons(r.status.port6);
    entry.udp_port4 = htons(r.status.udpPort4);
    entry.udp_port6 = htons(r.status.udpPort6);
    entry.data_len = static_cast<uint16_t>(std::min<size_t>(spec.data.size(), CALLOUT_DATA_MAX));
    std::memcpy(entry.data, spec.data.data(), entry.data_len);
    return entry;
}

bool Engine::setRuleEnabled(const std::string& ruleId, bool enabled, std::string* error)
{
    std::lock_guard lock(rulesMutex_);
    auto refuse = [&](std::string why) {
        spdlog::warn("rule {} not {}: {}", ruleId, enabled ? "enabled" : "disabled", why);
        if (error)
            *error = std::move(why);
        return false;
    };
    for (auto& rule : rules_.rules) {
        if (rule.id != ruleId)
            continue;
        try {
            if (!callout_->setRuleEnabled(rule.numericId, enabled))
                return refuse("the callout's live table has no rule " + ruleId);
        } catch (const CalloutError& e) {
            return refuse(e.what());
        }
        rule.enabled = enabled;
        spdlog::info("rule {} {}", ruleId, enabled ? "enabled" : "disabled");
        return true;
    }
    return refuse("no such rule");
}

}  // namespace redirect::engine

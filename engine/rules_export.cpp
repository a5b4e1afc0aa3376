// rulesToJson(): a RuleSet written back in the shape parseRules() reads.
#include <netinet/in.h>

#include <nlohmann/json.hpp>

#include "rules.h"
#include "rules_fields.h"

namespace redirect::engine {

namespace {

using Json = nlohmann::ordered_json;

// One item as a plain value, several as an array: the file reads the way an admin writes it.
template <typename T, typename Fn>
Json oneOrMany(const std::vector<T>& items, Fn&& text)
{
    if (items.size() == 1)
        return text(items.front());
    Json array = Json::array();
    for (const T& item : items)
        array.push_back(text(item));
    return array;
}

Json redirectorJson(const RedirectorSpec& r)
{
    Json out;
    out["id"] = r.id;
    out["name"] = r.name;
    if (r.external)
        out["external"] = true;
    if (!r.listen.empty())
        out["listen"] = oneOrMany(r.listen, [](const Endpoint& e) { return e.str(); });
    if (!r.data.empty())
        out["data"] = r.data;
    if (r.external && (r.ownerUid != 0 || !r.ownerUser.empty())) {
        if (r.ownerUser.empty())
            out["owner"] = r.ownerUid;
        else
            out["owner"] = r.ownerUser;
    }
    if (!r.ownerProcess.empty())
        out["owner_process"] = r.ownerProcess;
    return out;
}

Json ruleJson(const RuleSpec& rule)
{
    Json out;
    out["id"] = rule.id;
    if (!rule.enabled)
        out["enabled"] = false;
    out["action"] = rule.action == RuleAction::Bypass ? "bypass" : rule.action == RuleAction::Block ? "block" : "redirect";
    if (rule.action == RuleAction::Redirect)
        out["redirector"] = rule.redirector;
    out["protocol"] = rule.protocol == IPPROTO_TCP ? "tcp" : rule.protocol == IPPROTO_UDP ? "udp" : "any";
    if (rule.idleTimeoutS)
        out["idle_timeout"] = *rule.idleTimeoutS;
    if (!rule.destination.empty())
        out["destination"] = oneOrMany(rule.destination, [](const Cidr& c) { return c.str(); });
    if (!rule.ports.empty())
        out["ports"] = fields::formatPorts(rule.ports);
    if (!rule.process.empty())
        out["process"] = rule.process;
    if (!rule.user.empty())
        out["uid"] = rule.user;
    else if (rule.uid)
        out["uid"] = *rule.uid;
    if (!rule.cgroup.empty())
        out["cgroup"] = rule.cgroup;
    if (rule.expiresNs)
        out["expires"] = fields::formatTime(*rule.expiresNs);
    return out;
}

}  // namespace

std::string rulesToJson(const RuleSet& set)
{
    Json doc;
    doc["version"] = set.version;
    doc["redirectors"] = Json::array();
    for (const RedirectorSpec& r : set.redirectors)
        doc["redirectors"].push_back(redirectorJson(r));
    doc["rules"] = Json::array();
    for (const RuleSpec& rule : set.rules)
        doc["rules"].push_back(ruleJson(rule));
    return doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace redirect::engine

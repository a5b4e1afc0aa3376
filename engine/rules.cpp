#include "rules.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <tuple>

#include <netinet/in.h>
#include <pwd.h>
#include <unistd.h>

#include "rules_fields.h"

namespace redirect::engine {

bool RedirectorSpec::operator==(const RedirectorSpec& o) const
{
    return std::tie(id, name, external, listen, numericId, data, ownerUid, ownerUser, ownerProcess)
        == std::tie(o.id, o.name, o.external, o.listen, o.numericId, o.data, o.ownerUid, o.ownerUser, o.ownerProcess);
}

bool RuleSpec::operator==(const RuleSpec& o) const
{
    return std::tie(id, numericId, enabled, action, redirector, protocol, idleTimeoutS, destination, ports, process,
                    uid, user, cgroup, expiresNs)
        == std::tie(o.id, o.numericId, o.enabled, o.action, o.redirector, o.protocol, o.idleTimeoutS, o.destination,
                    o.ports, o.process, o.uid, o.user, o.cgroup, o.expiresNs);
}

const RedirectorSpec* RuleSet::findRedirector(std::string_view id) const
{
    for (const RedirectorSpec& r : redirectors)
        if (r.id == id)
            return &r;
    return nullptr;
}

namespace {

using json::Position;
using json::Type;
using json::Value;

// Thrown by the validators, caught by parseRules(): the first error wins.
struct Failure {
    RuleError error;
};

[[noreturn]] void fail(Position at, std::string message) { throw Failure{{at.line, at.column, std::move(message)}}; }

using fields::quoted;

// A day: a flow quiet for longer is over, whatever the rule says.
constexpr int64_t kMaxIdleTimeoutS = 86400;

std::string joined(const std::vector<std::string>& items)
{
    std::string out;
    for (const std::string& s : items)
        out += (out.empty() ? "" : ", ") + s;
    return out;
}

// "expected a string for "id", got a number"
void expectType(const Value& v, Type type, std::string_view key)
{
    if (v.type != type)
        fail(v.position, std::string("expected ") + json::typeName(type) + " for " + quoted(key) + ", got "
                             + json::typeName(v.type));
}

const std::string& stringOf(const Value& v, std::string_view key)
{
    expectType(v, Type::String, key);
    return v.string;
}

// An object's members, checked against the keys its level allows.
class Members {
public:
    /// what: where the object stands, for messages ("in rule", "at the top level").
    Members(const Value& object, std::string what, std::vector<std::string> keys)
        : object_(object), what_(std::move(what))
    {
        for (const json::Member& m : object.members)
            if (std::find(keys.begin(), keys.end(), m.key) == keys.end())
                fail(m.keyPosition,
                     "unknown key " + quoted(m.key) + " " + what_ + " (expected one of: " + joined(keys) + ")");
    }

    const Value* optional(std::string_view key) const
    {
        const json::Member* m = object_.find(key);
        return m ? &m->value : nullptr;
    }

    const Value& required(std::string_view key) const
    {
        if (const Value* v = optional(key))
            return *v;
        fail(object_.position, "missing required key " + quoted(key) + " " + what_);
    }

private:
    const Value& object_;
    std::string what_;
};

// A value that may be one item or an array of items; an empty array is an error (leave the key out instead).
template <typename Fn>
void forEachItem(const Value& v, std::string_view key, Fn&& fn)
{
    if (v.type != Type::Array) {
        fn(v);
        return;
    }
    if (v.elements.empty())
        fail(v.position, quoted(key) + " is empty: leave it out instead");
    for (const Value& e : v.elements)
        fn(e);
}

// Ids are unique per kind, and so are their FNV-1a numeric ids (0 is reserved for "none").
class IdRegistry {
public:
    explicit IdRegistry(std::string kind) : kind_(std::move(kind)) {}

    uint32_t add(const Value& v)
    {
        const std::string& id = stringOf(v, "id");
        if (!fields::validId(id))
            fail(v.position, "invalid " + kind_ + " id " + quoted(id)
                                 + ": use 1 to 64 letters, digits, '.', '_' or '-'");
        uint32_t numeric = fields::fnv1a32(id);
        if (numeric == 0)
            fail(v.position, kind_ + " id " + quoted(id) + " hashes to numeric id 0, which is reserved; choose another id");
        auto [it, inserted] = seen_.try_emplace(numeric, id, v.position);
        if (!inserted && it->second.first == id)
            fail(v.position, "duplicate " + kind_ + " id " + quoted(id) + " (first at " + it->second.second.str() + ")");
        if (!inserted) {
            char hex[16];
            std::snprintf(hex, sizeof hex, "0x%08x", numeric);
            fail(v.position, kind_ + " id " + quoted(id) + " has the same numeric id " + hex + " as " + quoted(it->second.first)
                                 + " at " + it->second.second.str() + "; choose another id");
        }
        return numeric;
    }

private:
    std::string kind_;
    std::map<uint32_t, std::pair<std::string, Position>> seen_;
};

uint32_t parseUser(const Value& v, const char* key, std::string& name);
std::string parseProcess(const Value& v, const char* key);

RedirectorSpec parseRedirector(const Value& v, IdRegistry& ids)
{
    if (v.type != Type::Object)
        fail(v.position, std::string("expected an object for each redirector, got ") + json::typeName(v.type));
    Members f(v, "in redirector", {"id", "name", "external", "listen", "data", "owner", "owner_process"});
    RedirectorSpec r;
    r.position = v.position;
    const Value& id = f.required("id");
    r.numericId = ids.add(id);
    r.id = id.string;
    r.name = r.id;
    if (const Value* name = f.optional("name")) {
        r.name = stringOf(*name, "name");
        if (r.name.empty())
            fail(name->position, "\"name\" must not be empty");
    }
    const Value* external = f.optional("external");
    if (external) {
        expectType(*external, Type::Bool, "external");
        r.external = external->boolean;
    }
    if (const Value* listen = f.optional("listen")) {
        forEachItem(*listen, "listen", [&](const Value& item) {
            Endpoint e;
            if (std::string err = fields::parseEndpoint(stringOf(item, "listen"), e); !err.empty())
                fail(item.position, err);
            if (!r.external && !e.isLoopback())
                fail(item.position, "listen endpoint " + e.str()
                                        + " is not loopback (127.0.0.0/8 or ::1); only an \"external\" redirector may listen elsewhere");
            for (const Endpoint& other : r.listen)
                if (other.family == e.family)
                    fail(item.position, std::string("more than one ") + (e.family == AF_INET ? "IPv4" : "IPv6")
                                            + " listen endpoint (a redirector has at most one of each)");
            r.listen.push_back(e);
        });
    }
    if (r.external && r.listen.empty())
        fail(external->position, "external redirector " + quoted(r.id) + " needs at least one \"listen\" endpoint");
    // Whose listener an external endpoint must be: anyone else who binds it gets nothing.
    for (const char* key : {"owner", "owner_process"})
        if (const Value* owner = f.optional(key); owner && !r.external)
            fail(owner->position, std::string("\"") + key + "\" applies only to an \"external\" redirector (the engine "
                                  "owns the listeners of its own)");
    if (const Value* owner = f.optional("owner"))
        r.ownerUid = parseUser(*owner, "owner", r.ownerUser);
    if (const Value* process = f.optional("owner_process"))
        r.ownerProcess = parseProcess(*process, "owner_process");
    if (const Value* data = f.optional("data")) {
        r.data = stringOf(*data, "data");
        if (r.data.size() > CALLOUT_DATA_MAX)
            fail(data->position, "\"data\" is " + std::to_string(r.data.size()) + " bytes; at most "
                                     + std::to_string(CALLOUT_DATA_MAX) + " are allowed");
    }
    return r;
}

void parsePorts(const Value& ports, RuleSpec& rule)
{
    forEachItem(ports, "ports", [&](const Value& item) {
        if (item.type == Type::Number) {
            PortRange range;
            if (!item.integral)
                fail(item.position, "expected a whole port number for \"ports\"");
            if (std::string err = fields::checkPort(item.integer, range.first); !err.empty())
                fail(item.position, err);
            range.last = range.first;
            rule.ports.push_back(range);
        } else if (item.type == Type::String) {
            if (std::string err = fields::parsePortList(item.string, rule.ports); !err.empty())
                fail(item.position, err);
        } else {
            fail(item.position, std::string("expected a number or a string for \"ports\", got ") + json::typeName(item.type));
        }
        if (rule.ports.size() > CALLOUT_MAX_PORT_RANGES)
            fail(item.position, "more than " + std::to_string(CALLOUT_MAX_PORT_RANGES)
                                    + " port ranges in a rule (the callout matches at most that many)");
    });
}

uint32_t lookUpUser(const Value& v)
{
    long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
    std::vector<char> buf(size > 0 ? size_t(size) : 16384);
    for (;;) {
        passwd pw{};
        passwd* found = nullptr;
        int err = ::getpwnam_r(v.string.c_str(), &pw, buf.data(), buf.size(), &found);
        if (err == ERANGE && buf.size() < (1u << 20)) {
            buf.resize(buf.size() * 2);
            continue;
        }
        if (found)
            return pw.pw_uid;
        if (err != 0 && err != ENOENT && err != ESRCH)
            fail(v.position, "cannot look up user " + quoted(v.string) + ": " + std::strerror(err));
        fail(v.position, "unknown user " + quoted(v.string));
    }
}

// A user as a name (looked up now; `name` keeps it) or a uid number.
uint32_t parseUser(const Value& v, const char* key, std::string& name)
{
    if (v.type == Type::String) {
        if (v.string.empty())
            fail(v.position, std::string("\"") + key + "\" must not be empty");
        name = v.string;
        return lookUpUser(v);
    }
    if (v.type == Type::Number) {
        // (uid_t)-1 means "no uid" to the kernel.
        if (!v.integral || v.integer < 0 || v.integer >= 0xFFFFFFFFll)
            fail(v.position, std::string(key) + " must be a whole number from 0 to 4294967294");
        return uint32_t(v.integer);
    }
    fail(v.position, std::string("expected a number or a user name for \"") + key + "\", got " + json::typeName(v.type));
}

// A command name as the kernel keeps it (comm: at most CALLOUT_COMM_LEN - 1 bytes).
std::string parseProcess(const Value& v, const char* key)
{
    std::string process = stringOf(v, key);
    if (process.empty() || process.size() >= CALLOUT_COMM_LEN || process.find('\0') != std::string::npos)
        fail(v.position, std::string("\"") + key + "\" must be a command name (comm) of 1 to "
                             + std::to_string(CALLOUT_COMM_LEN - 1) + " bytes, got " + std::to_string(process.size()));
    return process;
}

void parseMatch(const Members& f, RuleSpec& rule)
{
    if (const Value* protocol = f.optional("protocol")) {
        const std::string& p = stringOf(*protocol, "protocol");
        if (p == "tcp")
            rule.protocol = IPPROTO_TCP;
        else if (p == "udp")
            rule.protocol = IPPROTO_UDP;
        else if (p == "any")
            rule.protocol = 0;
        else
            fail(protocol->position, "unknown protocol " + quoted(p) + " (expected \"tcp\", \"udp\" or \"any\")");
    }
    if (const Value* idle = f.optional("idle_timeout")) {
        if (idle->type != Type::Number || !idle->integral || idle->integer < 1 || idle->integer > kMaxIdleTimeoutS)
            fail(idle->position, "\"idle_timeout\" must be a whole number of seconds from 1 to "
                                     + std::to_string(kMaxIdleTimeoutS));
        if (rule.protocol == IPPROTO_TCP)
            fail(idle->position, "\"idle_timeout\" applies to UDP flows: give the rule \"protocol\": \"udp\" or \"any\"");
        rule.idleTimeoutS = uint32_t(idle->integer);
    }
    if (const Value* destination = f.optional("destination")) {
        forEachItem(*destination, "destination", [&](const Value& item) {
            Cidr cidr;
            if (std::string err = fields::parseCidr(stringOf(item, "destination"), cidr); !err.empty())
                fail(item.position, err);
            if (rule.destination.size() == CALLOUT_MAX_CIDRS)
                fail(item.position, "more than " + std::to_string(CALLOUT_MAX_CIDRS)
                                        + " destinations in a rule (the callout matches at most that many CIDRs)");
            rule.destination.push_back(cidr);
        });
    }
    if (const Value* ports = f.optional("ports"))
        parsePorts(*ports, rule);
    if (const Value* process = f.optional("process"))
        rule.process = parseProcess(*process, "process");
    if (const Value* uid = f.optional("uid"))
        rule.uid = parseUser(*uid, "uid", rule.user);
    if (const Value* cgroup = f.optional("cgroup")) {
        rule.cgroup = stringOf(*cgroup, "cgroup");
        rule.cgroupPosition = cgroup->position;
        std::string padded = "/" + rule.cgroup + "/";
        if (rule.cgroup.empty() || padded.find("/../") != std::string::npos || rule.cgroup.find('\0') != std::string::npos)
            fail(cgroup->position, "\"cgroup\" must be a cgroup v2 path without \"..\"");
    }
    if (const Value* expires = f.optional("expires")) {
        int64_t ns = 0;
        if (std::string err = fields::parseTime(stringOf(*expires, "expires"), ns); !err.empty())
            fail(expires->position, err);
        rule.expiresNs = ns;
    }
}

RuleSpec parseRule(const Value& v, IdRegistry& ids, const RuleSet& set)
{
    if (v.type != Type::Object)
        fail(v.position, std::string("expected an object for each rule, got ") + json::typeName(v.type));
    Members f(v, "in rule", {"id", "enabled", "action", "redirector", "protocol", "destination", "ports", "process", "uid",
                         "cgroup", "expires", "idle_timeout"});
    RuleSpec rule;
    rule.position = v.position;
    const Value& id = f.required("id");
    rule.numericId = ids.add(id);
    rule.id = id.string;
    if (const Value* enabled = f.optional("enabled")) {
        expectType(*enabled, Type::Bool, "enabled");
        rule.enabled = enabled->boolean;
    }
    const Value& action = f.required("action");
    if (stringOf(action, "action") == "bypass")
        rule.action = RuleAction::Bypass;
    else if (action.string == "block")
        rule.action = RuleAction::Block;
    else if (action.string != "redirect")
        fail(action.position, "unknown action " + quoted(action.string)
                                  + " (expected \"redirect\", \"bypass\" or \"block\")");
    const Value* redirector = f.optional("redirector");
    if (rule.action != RuleAction::Redirect && redirector)
        fail(redirector->position, std::string("a ") + (rule.action == RuleAction::Bypass ? "bypass" : "block")
                                       + " rule takes no \"redirector\"");
    if (rule.action == RuleAction::Redirect && !redirector)
        fail(action.position, "a redirect rule needs a \"redirector\"");
    if (redirector) {
        rule.redirector = stringOf(*redirector, "redirector");
        rule.redirectorPosition = redirector->position;
        if (!set.findRedirector(rule.redirector)) {
            std::vector<std::string> declared;
            for (const RedirectorSpec& r : set.redirectors)
                declared.push_back(r.id);
            fail(redirector->position, "unknown redirector " + quoted(rule.redirector) + " (declared: "
                                           + (declared.empty() ? "none" : joined(declared)) + ")");
        }
    }
    parseMatch(f, rule);
    return rule;
}

// Elements of a top-level array of objects, at most `limit` of them.
template <typename Fn>
void forEachEntry(const Value* list, const char* key, size_t limit, Fn&& fn)
{
    if (!list)
        return;
    expectType(*list, Type::Array, key);
    for (size_t i = 0; i < list->elements.size(); ++i) {
        if (i == limit)
            fail(list->elements[i].position,
                 "more than " + std::to_string(limit) + " " + key + " (the callout holds at most that many)");
        fn(list->elements[i]);
    }
}

RuleSet parseDocument(const Value& root)
{
    if (root.type != Type::Object)
        fail(root.position, std::string("expected an object at the top level, got ") + json::typeName(root.type));
    Members top(root, "at the top level", {"version", "redirectors", "rules"});
    RuleSet set;
    const Value& version = top.required("version");
    expectType(version, Type::Number, "version");
    if (!version.integral || version.integer != 1)
        fail(version.position, "unsupported version " + (version.integral ? std::to_string(version.integer) : "number")
                                   + " (expected 1)");
    set.version = 1;
    // Redirectors first, wherever they stand in the file: rules refer to them.
    IdRegistry redirectorIds("redirector");
    forEachEntry(top.optional("redirectors"), "redirectors", CALLOUT_MAX_REDIRECTORS,
                 [&](const Value& v) { set.redirectors.push_back(parseRedirector(v, redirectorIds)); });
    IdRegistry ruleIds("rule");
    forEachEntry(top.optional("rules"), "rules", CALLOUT_MAX_RULES,
                 [&](const Value& v) { set.rules.push_back(parseRule(v, ruleIds, set)); });
    return set;
}

}  // namespace

RulesResult parseRules(std::string_view text)
{
    RulesResult result;
    json::ParseResult doc = json::parse(text);
    if (!doc.ok()) {
        result.error = doc.error;
        return result;
    }
    try {
        result.rules = parseDocument(doc.value);
    } catch (const Failure& f) {
        result.error = f.error;
    }
    return result;
}

RulesResult loadRulesFile(const std::string& path)
{
    RulesResult result;
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rbe"), &std::fclose);
    if (!file) {
        result.error = {0, 0, "cannot read " + path + ": " + std::strerror(errno)};
        return result;
    }
    // One byte past the limit is enough for the parser to refuse the file.
    std::string text(json::kMaxInputBytes + 1, '\0');
    size_t got = std::fread(text.data(), 1, text.size(), file.get());
    if (std::ferror(file.get())) {
        result.error = {0, 0, "cannot read " + path + ": " + std::strerror(errno)};
        return result;
    }
    text.resize(got);
    return parseRules(text);
}

std::vector<std::string> ruleWarnings(const RuleSet& rules, int64_t nowNs)
{
    std::vector<std::string> out;
    const RuleSpec* catchAll = nullptr;
    for (const RuleSpec& r : rules.rules) {
        if (!r.enabled)
            continue;
        const std::string where = r.position.str() + ": rule " + r.id;
        const bool expired = r.expiresNs && *r.expiresNs <= nowNs;
        if (expired)
            out.push_back(where + " expired already: it never matches (remove it, or move \"expires\")");
        if (catchAll)
            out.push_back(where + " never matches: rule " + catchAll->id + " before it redirects every connection");
        const bool matchesAll = r.destination.empty() && r.ports.empty() && r.process.empty() && !r.uid &&
                                r.cgroup.empty() && !expired;
        if (!catchAll && r.action == RuleAction::Redirect && matchesAll) {
            out.push_back(where + " redirects every connection in the callout's scope to " + r.redirector +
                          " (it has no destination, ports, process, uid or cgroup)");
            catchAll = &r;
        }
    }
    return out;
}

}  // namespace redirect::engine

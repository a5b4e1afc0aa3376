// compileRules(): a validated RuleSet into the callout's rule table.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <arpa/inet.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "cgroup2.h"
#include "rules.h"

namespace redirect::engine {

namespace {

bool onCgroup2(const std::string& path)
{
    struct statfs fs{};
    return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

// The cgroup id of a rule's cgroup: the inode number of its cgroup2 directory. An absolute path
// that is itself on cgroup2 is used as is; any other path is taken relative to the cgroup2 root
// ("/system.slice/x.service", as /proc/PID/cgroup shows it, or "system.slice/x.service").
uint64_t cgroupId(const std::string& cgroup, const std::string& root, std::string& error)
{
    std::string path = cgroup;
    if (path.front() != '/' || !onCgroup2(path)) {
        if (root.empty()) {
            error = "cgroup \"" + cgroup + "\": no cgroup v2 file system is mounted";
            return 0;
        }
        path = root + (path.front() == '/' ? "" : "/") + path;
    }
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0)
        error = "cgroup \"" + cgroup + "\" not found (" + path + ": " + std::strerror(errno) + ")";
    else if (!S_ISDIR(st.st_mode) || !onCgroup2(path))
        error = "cgroup \"" + cgroup + "\" is not a cgroup v2 directory (" + path + ")";
    return error.empty() ? st.st_ino : 0;
}

// CLOCK_REALTIME ns to CLOCK_BOOTTIME ns; 1 (expired for the callout) when already past.
uint64_t bootExpiry(int64_t expiresNs, int64_t nowRealtimeNs, int64_t nowBoottimeNs)
{
    if (expiresNs <= nowRealtimeNs)
        return 1;
    // Modular arithmetic keeps the difference exact even when a clock reads before its epoch.
    return uint64_t(nowBoottimeNs) + (uint64_t(expiresNs) - uint64_t(nowRealtimeNs));
}

void copyCidr(const Cidr& in, callout_cidr& out)
{
    out.family = uint8_t(in.family);
    out.prefix_len = in.prefixLen;
    std::memcpy(out.addr, in.addr.data(), in.family == AF_INET ? 4 : 16);
}

}  // namespace

uint32_t ruleIdleTimeoutS(const RuleSpec& rule) { return rule.idleTimeoutS.value_or(CALLOUT_UDP_IDLE_DEFAULT_S); }

CompileResult compileRules(const RuleSet& set, const std::function<int(const std::string& redirectorId)>& slotOf,
                           int64_t nowRealtimeNs, int64_t nowBoottimeNs)
{
    CompileResult result;
    // A failed compile hands back no partial table.
    auto fail = [&result](const json::Position& at, std::string message) {
        result.rules.clear();
        result.error = {at.line, at.column, std::move(message)};
        return result;
    };
    // parseRules() enforces these limits; a RuleSet built in code (the rules editor) may not have.
    if (set.rules.size() > CALLOUT_MAX_RULES)
        return fail(set.rules[CALLOUT_MAX_RULES].position, "more than " + std::to_string(CALLOUT_MAX_RULES) + " rules");
    std::string root;
    bool rootKnown = false;
    for (const RuleSpec& spec : set.rules) {
        if (spec.destination.size() > CALLOUT_MAX_CIDRS || spec.ports.size() > CALLOUT_MAX_PORT_RANGES
            || spec.process.size() >= CALLOUT_COMM_LEN)
            return fail(spec.position, "rule \"" + spec.id + "\" exceeds the callout's limits");
        callout_rule out{};
        out.id = spec.numericId;
        out.enabled = spec.enabled ? 1 : 0;
        out.action = spec.action == RuleAction::Bypass  ? CALLOUT_ACTION_BYPASS
                     : spec.action == RuleAction::Block ? CALLOUT_ACTION_BLOCK
                                                        : CALLOUT_ACTION_REDIRECT;
        out.protocol = spec.protocol;
        out.idle_timeout_s = ruleIdleTimeoutS(spec);
        if (spec.action == RuleAction::Redirect) {
            int slot = slotOf(spec.redirector);
            if (slot < 0)
                return fail(spec.redirectorPosition, "redirector \"" + spec.redirector + "\" is not running");
            if (slot >= CALLOUT_MAX_REDIRECTORS)
                return fail(spec.redirectorPosition,
                            "redirector \"" + spec.redirector + "\" has an invalid slot " + std::to_string(slot));
            out.redirector_slot = uint16_t(slot);
        }
        out.cidr_count = uint8_t(spec.destination.size());
        for (size_t i = 0; i < spec.destination.size(); ++i)
            copyCidr(spec.destination[i], out.cidrs[i]);
        out.port_count = uint8_t(spec.ports.size());
        for (size_t i = 0; i < spec.ports.size(); ++i)
            out.ports[i] = {spec.ports[i].first, spec.ports[i].last};
        if (spec.uid) {
            out.match |= CALLOUT_MATCH_UID;
            out.uid = *spec.uid;
        }
        if (!spec.process.empty()) {
            out.match |= CALLOUT_MATCH_COMM;
            std::memcpy(out.comm, spec.process.data(), spec.process.size());
        }
        if (!spec.cgroup.empty()) {
            if (!rootKnown) {
                root = cgroup2::findRoot();
                rootKnown = true;
            }
            out.match |= CALLOUT_MATCH_CGROUP;
            std::string error;
            out.cgroup_id = cgroupId(spec.cgroup, root, error);
            if (!error.empty())
                return fail(spec.cgroupPosition, error);
        }
        if (spec.expiresNs)
            out.expires_boot_ns = bootExpiry(*spec.expiresNs, nowRealtimeNs, nowBoottimeNs);
        result.rules.push_back(out);
    }
    return result;
}

}  // namespace redirect::engine

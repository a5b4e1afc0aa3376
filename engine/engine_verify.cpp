// Engine: whose listener stands behind each external redirector's endpoint, and telling people
// when connections pass over a redirector that cannot take them.
#include <algorithm>
#include <filesystem>

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "cgroup2.h"
#include "engine_internal.h"
#include "listener_owner.h"

namespace redirect::engine {

namespace {

std::string ownerText(const RedirectorSpec& spec)
{
    std::string who = spec.ownerUser.empty() ? "uid " + std::to_string(spec.ownerUid) : spec.ownerUser;
    return spec.ownerProcess.empty() ? who : who + " (process " + spec.ownerProcess + ")";
}

std::string holderText(const ListenerSocket& l)
{
    return "pid " + std::to_string(l.pid) + " (" + l.comm + "), uid " + std::to_string(l.uid);
}

// Why the listener `l` must not receive this redirector's connections, or "" when it may.
std::string refusal(const ListenerSocket& l, const RedirectorSpec& spec, const std::string& scope)
{
    if (l.pid == 0)
        return "its listener (socket " + std::to_string(l.inode) + ") is held by no process we can see";
    if (l.uid != spec.ownerUid)
        return "its listener belongs to " + holderText(l) + ", not to " + ownerText(spec);
    if (!spec.ownerProcess.empty() && l.comm != spec.ownerProcess)
        return "its listener is held by " + holderText(l) + ", not by process " + spec.ownerProcess;
    std::string cgroup = cgroup2::ofProcess(l.pid, cgroup2::root());
    if (!cgroup2::contains(scope, cgroup))
        return holderText(l) + " runs in cgroup " + cgroup + ", outside the callout scope " + scope +
               ": records cannot reach it";
    return {};
}

}  // namespace

void Engine::markExternal(Running& r, const ListenerSocket& l, const std::string& scope)
{
    std::string why = refusal(l, r.spec, scope);
    if (why.empty()) {
        // Mark the very socket we checked: a descriptor number reused since the scan names
        // another inode, and is refused.
        int fd = duplicateDescriptor(l.pid, l.fd);
        struct stat st {};
        if (fd < 0)
            why = "cannot take its socket from pid " + std::to_string(l.pid) + ": " + std::strerror(-fd);
        else if (::fstat(fd, &st) != 0 || st.st_ino != l.inode)
            why = "its socket changed while it was being checked";
        else {
            try {
                callout_->markListener(fd, r.spec.numericId);
                r.marked.insert(l.inode);
                r.status.ownerPid = static_cast<uint32_t>(l.pid);
            } catch (const CalloutError& ce) {
                why = ce.what();
            }
        }
        if (fd >= 0)
            ::close(fd);
    }
    if (!why.empty())
        r.refused[l.inode] = why;
}

std::string Engine::externalScope() const
{
    std::error_code ec;
    std::string scope = std::filesystem::weakly_canonical(callout_->cgroupPath(), ec).string();
    return scope.empty() ? callout_->cgroupPath() : scope;
}

void Engine::verifyExternal(Running& r)
{
    const RedirectorSpec& spec = r.spec;
    const std::string scope = externalScope();  // once a round: a path resolution
    std::vector<std::string> texts;
    std::set<unsigned long> seen;
    bool available = false;
    uint16_t udp4 = 0, udp6 = 0;
    // TCP listeners, then UDP sockets bound to the same endpoint: an external proxy takes UDP
    // when it has one (the same port number, as the engine's own redirectors do).
    for (const Endpoint& e : spec.listen)
        for (int protocol : {IPPROTO_TCP, IPPROTO_UDP}) {
            const bool udp = protocol == IPPROTO_UDP;
            const std::string where = (udp ? "udp " : "") + e.str();
            std::vector<ListenerSocket> listeners;
            try {
                inNetns(options_.netnsFd, [&] {
                    listeners = listenersOn(e, false, protocol);
                    bool unknown = std::any_of(listeners.begin(), listeners.end(), [&](const ListenerSocket& l) {
                        return !r.marked.count(l.inode) && !r.refused.count(l.inode);
                    });
                    if (unknown)
                        listeners = listenersOn(e, true, protocol);  // who holds them: /proc, only now
                });
            } catch (const std::exception& ex) {
                texts.push_back(where + ": cannot list sockets: " + ex.what());
                continue;
            }
            if (listeners.empty()) {
                if (!udp)  // UDP is optional: a TCP-only proxy is not down
                    texts.push_back(e.str() + ": down, nothing listens");
                continue;
            }
            for (const ListenerSocket& l : listeners) {
                seen.insert(l.inode);
                if (!r.marked.count(l.inode) && !r.refused.count(l.inode))
                    markExternal(r, l, scope);
            }
            // The kernel answers a connect with the most specific listener: that one decides.
            const ListenerSocket& first = listeners.front();
            if (!r.marked.count(first.inode)) {
                texts.push_back(where + ": " + r.refused[first.inode]);
                continue;
            }
            available = true;
            texts.push_back(where + ": " + (first.pid ? holderText(first) : "verified"));
            if (udp)
                (e.family == AF_INET ? udp4 : udp6) = e.port;
        }
    r.status.udpPort4 = udp4;
    r.status.udpPort6 = udp6;
    // Sockets that are gone take their marks with them; forget them.
    std::erase_if(r.marked, [&](unsigned long inode) { return !seen.count(inode); });
    std::erase_if(r.refused, [&](const auto& entry) { return !seen.count(entry.first); });
    std::string text;
    for (const std::string& t : texts)
        text += (text.empty() ? "" : "; ") + t;
    if (text != r.status.availability || available != r.status.available) {
        if (available)
            spdlog::info("external redirector {}: {}", spec.id, text);
        else
            spdlog::warn("external redirector {}: connections go direct: {}", spec.id, text);
    }
    r.status.available = available;
    r.status.availability = text;
}

void Engine::verifyExternals()
{
    std::lock_guard lock(rulesMutex_);
    for (auto& [id, r] : running_) {
        if (!r->spec.external)
            continue;
        const RedirectorStatus before = r->status;
        verifyExternal(*r);
        if (r->status.ownerPid != before.ownerPid || r->status.udpPort4 != before.udpPort4 ||
            r->status.udpPort6 != before.udpPort6) {
            // A restarted proxy has a new pid: records repair follows it. Its UDP socket came or went.
            try {
                callout_->setRedirector(r->status.slot, calloutEntry(*r));
            } catch (const CalloutError& e) {
                spdlog::warn("external redirector {}: {}", id, e.what());
            }
        }
    }
}

void Engine::notePassedOver(const callout_event& e) { ++passedOver_[{e.redirector_id, e.verdict}]; }

void Engine::logPassedOver()
{
    auto now = std::chrono::steady_clock::now();
    if (passedOver_.empty() || now - lastPassedLog_ < std::chrono::seconds(1))
        return;
    lastPassedLog_ = now;
    std::lock_guard lock(rulesMutex_);
    for (auto& [key, count] : passedOver_) {
        auto [id, verdict] = key;
        std::string name = std::to_string(id), why;
        for (auto& [rid, r] : running_)
            if (r->status.numericId == id) {
                name = rid;
                why = r->status.availability;
            }
        if (verdict == CALLOUT_VERDICT_STALLED)
            spdlog::warn("{} new connections went direct: the engine hosting redirector {} missed its heartbeat "
                         "(stall deadline {} ms)", count, name, options_.stallDeadlineMs);
        else
            spdlog::warn("{} new connections went direct: redirector {} has no verified listener ({})", count, name,
                         why.empty() ? "not known to this engine" : why);
    }
    passedOver_.clear();
}

// A redirector whose connects carry no records (it did not call SET; the callout repaired them):
// said at the first such connection, then at most once a minute as the count grows. Nothing is
// looked at (no lock taken) on the control loop's turns where no such connection came.
void Engine::logRecordsMissing()
{
    if (missingTotal_ == missingLogged_)
        return;
    missingLogged_ = missingTotal_;
    std::map<uint32_t, uint64_t> counts;
    {
        std::lock_guard lock(tableMutex_);
        counts = table_->recordsMissing();
    }
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(rulesMutex_);
    for (auto& [id, count] : counts) {
        MissingLog& said = recordsMissingLog_[id];
        if (count == said.count || (said.count > 0 && now - said.at < std::chrono::minutes(1)))
            continue;
        std::string name = std::to_string(id);
        for (auto& [rid, r] : running_)
            if (r->status.numericId == id)
                name = rid + " (" + r->status.name + ")";
        spdlog::warn("redirector {} does not forward redirect records: {} of its connections carried none "
                     "(it did not call SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS); the callout repaired them, "
                     "but the proxy should pass the records it queried on to its upstream socket",
                     name, count);
        said = {count, now};
    }
}

}  // namespace redirect::engine

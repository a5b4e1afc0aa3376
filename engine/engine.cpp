#include "engine.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "redirect/sio.h"

namespace redirect::engine {

namespace {

int64_t clockNs(clockid_t id)
{
    timespec ts{};
    ::clock_gettime(id, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// 10,000 relayed flows hold 20,000 sockets plus pipes: lift the descriptor limit as far as allowed.
void raiseFileLimit()
{
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return;
    rlim_t want = std::max<rlim_t>(lim.rlim_max, 1 << 20);
    lim.rlim_cur = want;
    lim.rlim_max = want;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
        ::getrlimit(RLIMIT_NOFILE, &lim);
        lim.rlim_cur = lim.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &lim);
    }
}

// Socket inode listening on `endpoint`, from /proc/net/tcp{,6} of the calling thread's namespace.
unsigned long listeningInode(const Endpoint& endpoint)
{
    std::ifstream in(endpoint.family == AF_INET ? "/proc/thread-self/net/tcp" : "/proc/thread-self/net/tcp6");
    std::string line;
    std::getline(in, line);  // header
    char want[40];
    if (endpoint.family == AF_INET) {
        uint32_t a;
        std::memcpy(&a, endpoint.addr.data(), 4);
        std::snprintf(want, sizeof(want), "%08X:%04X", a, endpoint.port);
    } else {
        uint32_t w[4];
        std::memcpy(w, endpoint.addr.data(), 16);
        std::snprintf(want, sizeof(want), "%08X%08X%08X%08X:%04X", w[0], w[1], w[2], w[3], endpoint.port);
    }
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
        fields >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
        if (local == want && state == "0A")  // TCP_LISTEN
            return std::stoul(inode);
    }
    return 0;
}

uint32_t pidOwningInode(unsigned long inode)
{
    std::string target = "socket:[" + std::to_string(inode) + "]";
    std::error_code ec;
    for (auto& proc : std::filesystem::directory_iterator("/proc", ec)) {
        std::string name = proc.path().filename();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit))
            continue;
        for (auto& fd : std::filesystem::directory_iterator(proc.path() / "fd", ec)) {
            std::error_code lec;
            if (std::filesystem::read_symlink(fd.path(), lec) == target)
                return static_cast<uint32_t>(std::stoul(name));
        }
    }
    return 0;
}

// Run fn on a short-lived thread inside the network namespace (sockets and /proc/net follow it).
template <typename Fn>
void inNetns(int netnsFd, Fn&& fn)
{
    if (netnsFd < 0) {
        fn();
        return;
    }
    std::exception_ptr error;
    std::thread t([&] {
        try {
            if (::setns(netnsFd, CLONE_NEWNET) != 0)
                throw std::runtime_error(std::string("enter network namespace: ") + std::strerror(errno));
            fn();
        } catch (...) {
            error = std::current_exception();
        }
    });
    t.join();
    if (error)
        std::rethrow_exception(error);
}

}  // namespace

struct Engine::Running {
    RedirectorSpec spec;
    RedirectorStatus status;
    std::shared_ptr<RedirectorRuntime> runtime;  // null for external redirectors
};

Engine::Engine(EngineOptions options) : options_(std::move(options)), updates_(options_.queueCapacity)
{
    raiseFileLimit();
    callout_ = std::make_unique<Callout>(CalloutOptions{options_.cgroup, options_.instance});
    // Our own SDK calls use the map we hold: no pin lookup per call.
    redirect_sio_use_map(callout_->socksMapFd());
    inNetns(options_.netnsFd, [&] { netnsCookie_ = Callout::currentNetnsCookie(); });
    FlowNames names;
    names.redirector = [this](uint32_t id) {
        std::lock_guard lock(rulesMutex_);
        for (auto& [key, r] : running_)
            if (r->status.numericId == id)
                return r->status.name;
        return std::to_string(id);
    };
    names.external = [this](uint32_t id) {
        std::lock_guard lock(rulesMutex_);
        for (auto& [key, r] : running_)
            if (r->status.numericId == id)
                return r->status.external;
        return true;  // not ours: somebody else's callout or a proxy we do not know
    };
    names.rule = [this](uint32_t id) {
        std::lock_guard lock(rulesMutex_);
        for (auto& rule : rules_.rules)
            if (rule.numericId == id)
                return rule.id;
        return std::to_string(id);
    };
    table_ = std::make_unique<FlowTable>(options_.retention, std::move(names));
    callout_->setEventHandler([this](const callout_event& e) { pendingEvents_.push_back(e); });
    RelayOptions relayOptions;
    relayOptions.workers = options_.workers;
    relayOptions.netnsFd = options_.netnsFd;
    relayOptions.peek = options_.peek;
    relay_ = std::make_unique<Relay>(relayOptions, [this](HopReport&& hop) {
        std::lock_guard lock(hopsMutex_);
        hops_.push_back(std::move(hop));
    });
    wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    control_ = std::thread([this] { controlLoop(); });
    spdlog::info("callout attached to {} (instance {}), {} relay workers", callout_->cgroupPath(), options_.instance,
                 relay_->workerCount());
}

Engine::~Engine()
{
    stop();
    redirect_sio_use_map(-1);
}

void Engine::stop()
{
    if (stopping_.exchange(true))
        return;
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_, &one, sizeof(one));
    if (control_.joinable())
        control_.join();
    relay_->stop();
    sync();  // the relay's last hop reports
    ::close(wake_);
}

void Engine::controlLoop()
{
    pollfd fds[2] = {{wake_, POLLIN, 0}, {callout_->eventFd(), POLLIN, 0}};
    while (!stopping_) {
        // The callout wakes us only under load; otherwise drain every 50 ms.
        ::poll(fds, 2, 50);
        tick();
    }
}

void Engine::tick()
{
    std::vector<HopReport> hops;
    std::lock_guard lock(tableMutex_);
    // Events before hops: a hop's end always follows the connects that built its chain.
    callout_->drainEvents();
    {
        std::lock_guard hl(hopsMutex_);
        hops.swap(hops_);
    }
    int64_t bootToWall = clockNs(CLOCK_REALTIME) - clockNs(CLOCK_BOOTTIME);
    for (auto& e : pendingEvents_)
        table_->onCalloutEvent(e, bootToWall);
    pendingEvents_.clear();
    for (auto& h : hops)
        table_->onHop(std::move(h));
    for (Flow& f : table_->takeChanged())
        updates_.push(std::move(f));
}

void Engine::sync()
{
    if (!stopping_ || !control_.joinable())
        tick();
}

size_t Engine::drainFlows(std::vector<Flow>& out, size_t max) { return updates_.drain(out, max); }

std::vector<Flow> Engine::snapshot() const
{
    std::lock_guard lock(tableMutex_);
    return table_->snapshot();
}

EngineStats Engine::stats() const
{
    EngineStats s;
    s.callout = callout_->stats();
    s.queueDrops = updates_.drops();
    s.openConnections = relay_->openConnections();
    std::lock_guard lock(tableMutex_);
    s.flows = table_->size();
    s.openFlows = table_->openCount();
    s.evicted = table_->evicted();
    return s;
}

std::map<std::string, RuleHits> Engine::ruleHits() const
{
    std::map<uint32_t, RuleHits> byId;
    {
        std::lock_guard lock(tableMutex_);
        byId = table_->ruleHits();
    }
    std::map<std::string, RuleHits> out;
    std::lock_guard lock(rulesMutex_);
    for (auto& rule : rules_.rules)
        out[rule.id] = byId.count(rule.numericId) ? byId[rule.numericId] : RuleHits{};
    return out;
}

std::vector<RedirectorStatus> Engine::redirectors() const
{
    std::lock_guard lock(rulesMutex_);
    std::vector<RedirectorStatus> out;
    for (auto& [id, r] : running_) {
        RedirectorStatus s = r->status;
        if (r->runtime) {
            s.accepted = r->runtime->accepted;
            s.active = r->runtime->active;
            s.bytesUp = r->runtime->bytesUp;
            s.bytesDown = r->runtime->bytesDown;
        }
        out.push_back(s);
    }
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.slot < b.slot; });
    return out;
}

RuleSet Engine::rules() const
{
    std::lock_guard lock(rulesMutex_);
    return rules_;
}

uint32_t Engine::findOwner(const Endpoint& endpoint) const
{
    uint32_t pid = 0;
    try {
        inNetns(options_.netnsFd, [&] {
            if (unsigned long inode = listeningInode(endpoint))
                pid = pidOwningInode(inode);
        });
    } catch (const std::exception& e) {
        spdlog::warn("cannot look up the owner of {}: {}", endpoint.str(), e.what());
    }
    return pid;
}

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
    auto sameSpec = [](const RedirectorSpec& a, const RedirectorSpec& b) {
        return a.external == b.external && a.listen == b.listen && a.data == b.data && a.name == b.name;
    };
    // Plan: redirectors that stay as they are keep their slot, listeners and open connections.
    std::map<std::string, Running*> kept;
    std::map<std::string, std::unique_ptr<Running>> started;
    std::vector<bool> slotUsed(CALLOUT_MAX_REDIRECTORS, false);
    for (const RedirectorSpec& spec : rules.redirectors) {
        auto it = running_.find(spec.id);
        if (it != running_.end() && sameSpec(it->second->spec, spec)) {
            kept[spec.id] = it->second.get();
            slotUsed[it->second->status.slot] = true;
        }
    }
    auto undo = [&](RuleError error) {
        for (auto& [id, r] : started)
            if (r->runtime)
                relay_->removeRedirector(r->runtime);
        return error;
    };
    for (const RedirectorSpec& spec : rules.redirectors) {
        if (kept.count(spec.id))
            continue;
        auto slot = static_cast<uint32_t>(std::find(slotUsed.begin(), slotUsed.end(), false) - slotUsed.begin());
        if (slot >= slotUsed.size())
            return undo({spec.position.line, spec.position.column, "too many redirectors"});
        auto r = std::make_unique<Running>();
        r->spec = spec;
        r->status = statusFor(spec, slot);
        if (!spec.external) {
            r->runtime = std::make_shared<RedirectorRuntime>();
            r->runtime->id = spec.numericId;
            r->runtime->name = spec.name;
            r->runtime->config.id = spec.numericId;
            r->runtime->config.port4 = r->status.port4;
            r->runtime->config.port6 = r->status.port6;
            r->runtime->config.connectTimeoutMs = options_.connectTimeoutMs;
            try {
                relay_->addRedirector(r->runtime, &r->status.port4, &r->status.port6);
            } catch (const std::exception& e) {
                return undo({spec.position.line, spec.position.column,
                             "redirector \"" + spec.id + "\" cannot listen: " + e.what()});
            }
            r->status.ownerPid = options_.repairOwnRecords ? static_cast<uint32_t>(::getpid()) : 0;
        } else {
            for (const Endpoint& e : spec.listen)
                if (!r->status.ownerPid)
                    r->status.ownerPid = findOwner(e);
            if (!r->status.ownerPid)
                spdlog::warn("external redirector {}: no process listens on its endpoint yet; records repair off",
                             spec.id);
        }
        slotUsed[slot] = true;
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

    // Commit: new slots first, then the rule table flips in one update, then the old slots go.
    for (auto& [id, r] : started)
        callout_->setRedirector(r->status.slot, calloutEntry(*r));
    callout_->setRules(compiled.rules);
    std::map<std::string, std::unique_ptr<Running>> next;
    for (auto& [id, r] : running_) {
        if (kept.count(id)) {
            next[id] = std::move(r);
            continue;
        }
        if (r->runtime)
            relay_->removeRedirector(r->runtime);
        if (!slotUsed[r->status.slot])
            callout_->clearRedirector(r->status.slot);
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
    entry.flags = CALLOUT_REDIRECTOR_ACTIVE | (spec.external ? CALLOUT_REDIRECTOR_EXTERNAL : 0);
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
    entry.data_len = static_cast<uint16_t>(std::min<size_t>(spec.data.size(), CALLOUT_DATA_MAX));
    std::memcpy(entry.data, spec.data.data(), entry.data_len);
    return entry;
}

bool Engine::setRuleEnabled(const std::string& ruleId, bool enabled)
{
    std::lock_guard lock(rulesMutex_);
    for (auto& rule : rules_.rules) {
        if (rule.id != ruleId)
            continue;
        if (!callout_->setRuleEnabled(rule.numericId, enabled))
            return false;
        rule.enabled = enabled;
        spdlog::info("rule {} {}", ruleId, enabled ? "enabled" : "disabled");
        return true;
    }
    return false;
}

}  // namespace redirect::engine

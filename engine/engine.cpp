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

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

#include "cgroup2.h"
#include "engine_internal.h"
#include "redirect/sio.h"

namespace redirect::engine {

namespace {

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

}  // namespace

Engine::Engine(EngineOptions options) : options_(std::move(options)), updates_(options_.queueCapacity)
{
    raiseFileLimit();
    callout_ = std::make_unique<Callout>(CalloutOptions{options_.cgroup, options_.instance});
    inNetns(options_.netnsFd, [&] { netnsCookie_ = Callout::currentNetnsCookie(); });
    checkOwnScope();
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
    relayOptions.inProcessChains = options_.inProcessChains;
    relayOptions.redirectedTo = [this](int fd) -> uint32_t {
        // The callout's entry of a redirected socket ends with the hop it was sent to.
        callout_sock value{};
        if (bpf_map_lookup_elem(callout_->socksMapFd(), &fd, &value) != 0 ||
            !(value.role & CALLOUT_ROLE_APP_REDIRECTED) || value.records.hop_count == 0 ||
            value.records.hop_count > CALLOUT_MAX_HOPS)
            return 0;
        return value.records.hops[value.records.hop_count - 1].redirector_id;
    };
    relayOptions.markListener = [this](int fd, uint32_t redirectorId) {
        // Out of scope, records never reach our listeners: unmarked, the callout passes them over.
        if (ownInScope_)
            callout_->markListener(fd, redirectorId);
    };
    auto hopSink = [this](HopReport&& hop) {
        std::lock_guard lock(hopsMutex_);
        hops_.push_back(std::move(hop));
    };
    relay_ = std::make_unique<Relay>(relayOptions, hopSink);
    UdpRelayOptions udpOptions;
    udpOptions.netnsFd = options_.netnsFd;
    udpOptions.peek = options_.peek;
    udpOptions.markListener = relayOptions.markListener;
    udpOptions.maxFlows = options_.udpMaxFlows;
    udpRelay_ = std::make_unique<UdpRelay>(udpOptions, hopSink);
    callout_->setStallDeadline(uint64_t(std::max(options_.stallDeadlineMs, 0)) * 1000000u);
    wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_ < 0)
        throw std::runtime_error(std::string("engine eventfd: ") + std::strerror(errno));
    control_ = std::thread([this] { controlLoop(); });
    // Last, when nothing can throw any more (a throwing constructor runs no destructor to undo
    // it): our own SDK calls use the map we hold, no pin lookup per call.
    redirect_sio_use_map(callout_->socksMapFd());
    redirect_sio_use_udp_map(callout_->udpFlowsMapFd());
    spdlog::info("callout attached to {} (instance {}), {} relay workers, stall deadline {} ms",
                 callout_->cgroupPath(), options_.instance, relay_->workerCount(), options_.stallDeadlineMs);
}

void Engine::checkOwnScope()
{
    std::error_code ec;
    std::string scope = std::filesystem::weakly_canonical(callout_->cgroupPath(), ec).string();
    std::string own = cgroup2::ofProcess(0, cgroup2::root());
    ownInScope_ = cgroup2::contains(scope.empty() ? callout_->cgroupPath() : scope, own);
    if (ownInScope_)
        return;
    scopeProblem_ = "this engine runs in cgroup " + own + ", outside the callout scope " + callout_->cgroupPath() +
                    ": records cannot reach its redirectors, so connections go direct";
    spdlog::error("{} (run the engine inside the scope, or choose a --cgroup that contains it)", scopeProblem_);
}

Engine::~Engine()
{
    stop();
    redirect_sio_use_map(-1);
    redirect_sio_use_udp_map(-1);
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
    udpRelay_->stop();
    sync();  // the relay's last hop reports
    ::close(wake_);
}

void Engine::controlLoop()
{
    pollfd fds[2] = {{wake_, POLLIN, 0}, {callout_->eventFd(), POLLIN, 0}};
    while (!stopping_) {
        // The callout wakes us only under load; otherwise drain every 50 ms.
        ::poll(fds, 2, 50);
        beat();
        tick();
        logPassedOver();
        logRecordsMissing();
        auto now = std::chrono::steady_clock::now();
        if (now - lastVerify_ >= std::chrono::milliseconds(options_.verifyIntervalMs)) {
            lastVerify_ = now;
            verifyExternals();
        }
    }
}

void Engine::beat()
{
    // Alive means the relay is too: a worker stuck for half the deadline stops the beat.
    int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch()).count();
    const int64_t oldest = std::min(relay_->oldestLoopNs(), udpRelay_->lastLoopNs());
    if (options_.stallDeadlineMs > 0 && now - oldest > int64_t(options_.stallDeadlineMs) * 500000)
        return;
    callout_->heartbeat();
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
    // A UDP socket's close comes last for its flows, after the hop reports of this round: the
    // relay reported its start before the application could see a reply and close, and a flow
    // the relay has is the relay's to end (told below), one it never had ends in the table.
    std::vector<const callout_event*> udpClosed;
    std::vector<uint64_t> relayed;
    for (auto& e : pendingEvents_) {
        if (e.verdict == CALLOUT_VERDICT_STALLED || e.verdict == CALLOUT_VERDICT_UNVERIFIED)
            notePassedOver(e);
        if (e.verdict == CALLOUT_VERDICT_CLOSED && e.protocol == IPPROTO_UDP) {
            udpClosed.push_back(&e);
            if (e.redirector_id)
                relayed.push_back(e.flow_id);
            continue;
        }
        table_->onCalloutEvent(e, bootToWall);
    }
    udpRelay_->applicationsClosed(std::move(relayed));
    for (auto& h : hops)
        table_->onHop(std::move(h));
    for (const callout_event* e : udpClosed)
        table_->onCalloutEvent(*e, bootToWall);
    pendingEvents_.clear();
    // A burst's capacity (up to the ring's 4 MB of events) is not kept for good.
    if (pendingEvents_.capacity() > 256)
        pendingEvents_ = {};
    for (Flow& f : table_->takeChanged())
        updates_.push(std::move(f));
    missingTotal_ = table_->recordsMissingTotal();
}

void Engine::sync()
{
    if (!stopping_ || !control_.joinable())
        tick();
}

size_t Engine::drainFlows(std::vector<Flow>& out, size_t max) { return updates_.drain(out, max); }

std::vector<Flow> Engine::snapshot() const
{
    // A thousand flows per hold of the lock: a whole table at once (70,000 flows, and ten
    // consoles attaching together) held the control thread off long enough to miss the heartbeat,
    // and new connections went direct. A flow that changes between two parts is in the updates
    // after the snapshot's sequence anyway.
    constexpr size_t kPart = 1000;
    std::vector<Flow> out;
    uint64_t cursor = 0;
    for (bool more = true; more;) {
        std::lock_guard lock(tableMutex_);
        more = table_->snapshotAfter(&cursor, kPart, out);
    }
    return out;
}

EngineStats Engine::stats() const
{
    EngineStats s;
    s.callout = callout_->stats();
    s.queueDrops = updates_.drops();
    s.openConnections = relay_->openConnections();
    s.udpDropped = udpRelay_->dropped();
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
    std::map<uint32_t, uint64_t> missing;
    {
        std::lock_guard lock(tableMutex_);  // not nested in rulesMutex_
        missing = table_->recordsMissing();
    }
    std::lock_guard lock(rulesMutex_);
    std::vector<RedirectorStatus> out;
    for (auto& [id, r] : running_) {
        RedirectorStatus s = r->status;
        if (auto m = missing.find(s.numericId); m != missing.end())
            s.recordsMissing = m->second;
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

}  // namespace redirect::engine

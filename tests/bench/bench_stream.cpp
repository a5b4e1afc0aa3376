// The service's flow stream under load (issue 8), through the real path: real TCP connections at
// a steady rate to a port a running service (redirect-consoled) redirects, and consoles attached to
// its control API. Prints, never asserts:
//  - from a flow's end in the engine (Flow::endNs) to its ended row in a console's FlowModel,
//    through NodeClient -> EngineBridge (100 ms ticks, as the console) -> FlowModel: p50/p95/p99/max,
//    timed right after the tick that applied it (so the whole tick is included);
//  - the service's CPU (utime+stime of its /proc/PID/stat) over windows of the same length with
//    0, 1 and 10 consoles attached, and per console (cpu_k - cpu_0) / k.
// A console is a NodeClient drained every 100 ms; the first one is the full bridge and model.
// Consoles attach between windows (each gets the whole table first); windows time the live stream.
//   bench_stream SERVICE_PID API_SOCKET PORT [SECONDS_PER_WINDOW] [CONNECTS_PER_SECOND]
#include <QCoreApplication>
#include <QEventLoop>
#include <QTimer>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine_bridge.h"
#include "flow_model.h"
#include "node_client.h"

using redirect::client::NodeClient;
using redirect::client::NodeState;
using redirect::engine::Flow;
using redirect::gui::EngineBridge;
using redirect::gui::FlowModel;
using redirect::v1::NodeStatus;

namespace {

constexpr int kTickMs = 100;             // the console's bridge interval
constexpr int kConsoles = 10;
constexpr int kConnectTimeoutMs = 5000;  // a connection not answered by then counts as timed out
constexpr size_t kMaxInFlight = 8000;    // beyond this the generator skips (and counts) connects

template <typename Clock>
int64_t nowNs()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}
// Flow::endNs is the engine's wall clock (system_clock); intervals here are steady.
const auto wallNs = nowNs<std::chrono::system_clock>;
const auto steadyNs = nowNs<std::chrono::steady_clock>;

void runFor(int ms)
{
    QEventLoop loop;
    QTimer::singleShot(ms, Qt::PreciseTimer, &loop, &QEventLoop::quit);  // a coarse one may end 5 % early
    loop.exec();
}

struct LoadCounts {
    uint64_t started = 0, done = 0, failed = 0, timedOut = 0, skipped = 0;
};

// Paced connects from one epoll thread: each one sends a request, reads the answer to EOF and closes
// (after the peer, so no TIME_WAIT piles up here). Lean on purpose: the machine has two cores.
class LoadGen {
public:
    LoadGen(uint16_t port, int perSecond)
        : perSecond_(perSecond), addr_{AF_INET, htons(port), {htonl(INADDR_LOOPBACK)}, {}} {}
    ~LoadGen() { stop(); }
    void start() { thread_ = std::thread([this] { run(); }); }
    void stop()
    {
        stop_ = true;
        if (thread_.joinable())
            thread_.join();
    }
    LoadCounts counts() const
    {
        return {started_.load(), done_.load(), failed_.load(), timedOut_.load(), skipped_.load()};
    }
    uint64_t unfinished() const { return unfinished_; }
    std::string firstError() const { return error_.empty() ? "none" : error_; }

private:
    struct Conn {
        uint32_t gen = 0;  // tells a reused descriptor from the connection an Age names
        bool open = false, sent = false;
    };
    struct Age { int fd; uint32_t gen; int64_t startNs; };

    void note(const char* what, int err)
    {
        if (error_.empty())
            error_ = std::string(what) + ": " + std::strerror(err);
    }

    void end(int fd, std::atomic<uint64_t>& counter)
    {
        ++counter;
        epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);  // before close: the PITFALLS' fork case
        ::close(fd);
        conns_[static_cast<size_t>(fd)].open = false;
        --inFlight_;
    }

    void fail(int fd, int err)
    {
        note("exchange", err);
        end(fd, failed_);
    }

    void open()
    {
        if (inFlight_ >= kMaxInFlight) {
            ++skipped_;
            return;
        }
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || (::connect(fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof(addr_)) != 0 &&
                       errno != EINPROGRESS)) {
            note(fd < 0 ? "socket" : "connect", errno);
            if (fd >= 0)
                ::close(fd);
            ++failed_;
            return;
        }
        ++started_;
        ++inFlight_;
        if (conns_.size() <= static_cast<size_t>(fd))
            conns_.resize(static_cast<size_t>(fd) + 1024);
        Conn& c = conns_[static_cast<size_t>(fd)];
        c = {c.gen + 1, true, false};
        epoll_event ev{EPOLLOUT | EPOLLIN | EPOLLRDHUP, {.fd = fd}};
        epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
        ages_.push_back({fd, c.gen, steadyNs()});
    }

    void onEvent(int fd)
    {
        static const char request[] = "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
        Conn& c = conns_[static_cast<size_t>(fd)];
        if (!c.open)
            return;
        if (!c.sent) {
            const ssize_t n = ::send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL);
            if (n < 0 && errno == EAGAIN)
                return;  // still connecting
            if (n != static_cast<ssize_t>(sizeof(request) - 1))
                return fail(fd, n < 0 ? errno : EMSGSIZE);
            c.sent = true;
            epoll_event ev{EPOLLIN | EPOLLRDHUP, {.fd = fd}};
            epoll_ctl(ep_, EPOLL_CTL_MOD, fd, &ev);
        }
        char buf[4096];
        for (;;) {
            const ssize_t n = ::read(fd, buf, sizeof(buf));
            if (n > 0)
                continue;
            if (n == 0)
                return end(fd, done_);
            if (errno != EAGAIN)
                fail(fd, errno);
            return;
        }
    }

    void expire(int64_t olderThanNs)
    {
        while (!ages_.empty() && ages_.front().startNs < olderThanNs) {
            const Age a = ages_.front();
            ages_.pop_front();
            const Conn& c = conns_[static_cast<size_t>(a.fd)];
            if (c.open && c.gen == a.gen)
                end(a.fd, timedOut_);
        }
    }

    void run()
    {
        ep_ = epoll_create1(EPOLL_CLOEXEC);
        epoll_event events[512];
        const int64_t t0 = steadyNs();
        uint64_t issued = 0;
        auto poll = [&] {
            const int n = epoll_wait(ep_, events, 512, 1);
            for (int i = 0; i < n; ++i)
                onEvent(events[i].data.fd);
            expire(steadyNs() - int64_t(kConnectTimeoutMs) * 1000000);
        };
        while (!stop_) {
            const uint64_t due = uint64_t(steadyNs() - t0) * uint64_t(perSecond_) / 1000000000;
            for (; issued < due; ++issued)
                open();
            poll();
        }
        // The last ones may finish; what is still open after two seconds is counted, then closed.
        for (const int64_t until = steadyNs() + 2000000000LL; inFlight_ > 0 && steadyNs() < until;)
            poll();
        for (size_t fd = 0; fd < conns_.size(); ++fd)
            if (conns_[fd].open) {
                ++unfinished_;
                ::close(static_cast<int>(fd));
            }
        ::close(ep_);
    }

    const int perSecond_;
    const sockaddr_in addr_;
    int ep_ = -1;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> started_{0}, done_{0}, failed_{0}, timedOut_{0}, skipped_{0};
    std::vector<Conn> conns_;
    std::deque<Age> ages_;
    size_t inFlight_ = 0;
    uint64_t unfinished_ = 0;
    std::string error_;  // the first failure's reason (read after stop())
};

// The service's utime+stime, in seconds (all its threads).
double serviceCpuSeconds(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t paren = text.rfind(')');
    if (paren == std::string::npos)
        return -1;
    std::istringstream fields(text.substr(paren + 2));  // from field 3 (state) on
    std::string skip;
    for (int i = 3; i < 14; ++i)
        fields >> skip;
    unsigned long long utime = 0, stime = 0;
    fields >> utime >> stime;
    return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
}

double selfCpuSeconds()
{
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return double(t.tv_sec) + double(t.tv_nsec) / 1e9;
}

// One measuring window: the end->row latencies of flows that ended inside it, wherever they arrive.
struct Window {
    const char* name = "";
    int consoles = 0;
    int64_t fromNs = 0, toNs = 0;  // wall clock, for Flow::endNs
    double serviceCpu = 0, benchCpu = 0, wallSeconds = 0;
    LoadCounts load;
    std::vector<double> latencyMs;

    double percentCore() const { return wallSeconds > 0 ? 100.0 * serviceCpu / wallSeconds : 0; }
    double percentile(double p) const
    {
        if (latencyMs.empty())
            return 0;
        std::vector<double> s = latencyMs;
        std::sort(s.begin(), s.end());
        return s[std::min(s.size() - 1, static_cast<size_t>(p * double(s.size() - 1) + 0.5))];
    }
};

// The consoles: the first is NodeClient -> EngineBridge -> FlowModel, the others NodeClients drained
// on the same 100 ms timer into nothing.
class Consoles {
public:
    Consoles(std::string socketPath, std::vector<Window>* windows)
        : target_("unix:" + std::move(socketPath)), windows_(windows)
    {
        bridge_ = std::make_unique<EngineBridge>([this](std::vector<Flow>& out) { return takeMain(out); }, &model_);
        QObject::connect(bridge_.get(), &EngineBridge::ticked, [this] { afterTick(); });
        QObject::connect(&drainTimer_, &QTimer::timeout, [this] { drainOthers(); });
        drainTimer_.setTimerType(Qt::PreciseTimer);
    }

    /// Attaches consoles until there are `n`, then waits until every one is connected and the
    /// snapshot of the table each got on attaching has been taken (no flow started before the attach).
    bool attach(int n)
    {
        attachNs_ = wallNs();
        while (clients_.size() < static_cast<size_t>(n)) {
            clients_.push_back(std::make_unique<NodeClient>(
                redirect::client::NodeEndpoint{"console-" + std::to_string(clients_.size()), target_, "", "", ""}));
            clients_.back()->start();
        }
        if (!bridge_->isRunning()) {
            bridge_->start(kTickMs);
            drainTimer_.start(kTickMs);
        }
        const int64_t start = steadyNs();
        for (;;) {
            runFor(kTickMs);
            const int64_t now = steadyNs();
            bool connected = true;
            for (auto& c : clients_)
                connected = connected && c->view().state == NodeState::Connected;
            if (connected && now - start > 1000000000LL && now - lastOldNs_ > 500000000LL)
                return true;
            if (now - start > 30000000000LL) {
                std::fprintf(stderr, "bench_stream: consoles not settled after 30 s (%s)\n",
                             clients_.front()->view().reason.c_str());
                return false;
            }
        }
    }
    void stop()
    {
        bridge_->stop();
        drainTimer_.stop();
        for (auto& c : clients_)
            c->stop();
    }
    struct Health {
        uint64_t dropped = 0, missed = 0;       // by the consoles, summed
        uint64_t nodeDrops = 0, wentDirect = 0;  // as the node last reported (stalled: missed heartbeat)
    };
    Health health() const
    {
        Health h;
        for (auto& c : clients_) {
            const redirect::client::NodeView v = c->view();
            const NodeStatus& s = v.status;
            h.dropped += v.dropped;
            h.missed += v.missed;
            h.nodeDrops =
                std::max<uint64_t>(h.nodeDrops, s.queue_drops() + s.journal_drops() + s.callout_event_drops());
            h.wentDirect = std::max<uint64_t>(h.wentDirect, s.stalled() + s.unverified());
        }
        return h;
    }
    uint64_t rowsChecked() const { return rowsChecked_; }
    uint64_t rowsMissing() const { return rowsMissing_; }

private:
    void noteOld(const std::vector<Flow>& flows, size_t from)
    {
        for (size_t i = from; i < flows.size(); ++i)
            if (flows[i].startNs != 0 && flows[i].startNs < attachNs_)
                lastOldNs_ = steadyNs();
    }
    size_t takeMain(std::vector<Flow>& out)  // the bridge ticks only once the first console is attached
    {
        const size_t before = out.size();
        const size_t n = clients_.front()->takeFlows(out, 20000);  // the bridge's per-tick bound
        noteOld(out, before);
        for (size_t i = before; i < out.size(); ++i)
            if (out[i].endNs != 0)
                ended_.push_back({out[i].flowId, out[i].endNs});
        return n;
    }
    void afterTick()
    {
        const int64_t now = wallNs();
        for (const auto& [id, endNs] : ended_) {
            if (!seen_.insert(id).second)
                continue;  // only a flow's first ended update: when its row first showed it ended
            for (Window& w : *windows_)
                if (endNs >= w.fromNs && endNs < w.toNs)
                    w.latencyMs.push_back(double(now - endNs) / 1e6);
            ++rowsChecked_;
            const int row = model_.rowForFlowId(id);
            if (const auto summary = row >= 0 ? model_.flowSummary(row) : std::nullopt; !summary || !summary->endNs)
                ++rowsMissing_;
        }
        ended_.clear();
    }
    void drainOthers()
    {
        for (size_t i = 1; i < clients_.size(); ++i) {
            scratch_.clear();
            clients_[i]->takeFlows(scratch_);
            noteOld(scratch_, 0);
        }
    }

    const std::string target_;
    FlowModel model_;
    std::unique_ptr<EngineBridge> bridge_;
    QTimer drainTimer_;
    std::vector<std::unique_ptr<NodeClient>> clients_;
    std::vector<Flow> scratch_;
    std::vector<std::pair<uint64_t, int64_t>> ended_;  // flow id, endNs, taken in this tick
    std::unordered_set<uint64_t> seen_;
    std::vector<Window>* windows_;
    int64_t attachNs_ = 0, lastOldNs_ = 0;  // wall clock of the last attach; steady time old flows were last seen
    uint64_t rowsChecked_ = 0, rowsMissing_ = 0;
};

void measure(Window& w, pid_t pid, const LoadGen& gen, int seconds)
{
    const LoadCounts l0 = gen.counts();
    const double c0 = serviceCpuSeconds(pid), b0 = selfCpuSeconds();
    const int64_t t0 = steadyNs();
    w.fromNs = wallNs();
    w.toNs = w.fromNs + int64_t(seconds) * 1000000000;
    runFor(seconds * 1000);
    w.wallSeconds = double(steadyNs() - t0) / 1e9;
    w.serviceCpu = serviceCpuSeconds(pid) - c0;
    w.benchCpu = selfCpuSeconds() - b0;
    const LoadCounts l1 = gen.counts();
    w.load = {l1.started - l0.started, l1.done - l0.done, l1.failed - l0.failed, l1.timedOut - l0.timedOut,
              l1.skipped - l0.skipped};
    runFor(1000);  // the window's last flows reach the model before more consoles attach and load it
}

std::string exeName(pid_t pid)
{
    char path[4096] = {};
    const ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), path, sizeof(path) - 1);
    if (n <= 0)
        return std::string("? (") + std::strerror(errno) + ")";
    const std::string p(path, static_cast<size_t>(n));
    return p.substr(p.rfind('/') + 1);
}

void printLatency(const Window& w)
{
    std::printf("  end -> ended row in the model, %2d console%s: p50 %4.0f  p95 %4.0f  p99 %4.0f ms (target <= 300)"
                "  max %4.0f ms  (%zu flows; %" PRIu64 " connects done)\n",
                w.consoles, w.consoles == 1 ? " " : "s", w.percentile(0.50), w.percentile(0.95), w.percentile(0.99),
                w.percentile(1.0), w.latencyMs.size(), w.load.done);
}

}  // namespace

int main(int argc, char** argv)
{
    const pid_t pid = argc > 3 ? static_cast<pid_t>(std::atoi(argv[1])) : 0;
    const int port = argc > 3 ? std::atoi(argv[3]) : 0;
    const int seconds = argc > 4 ? std::atoi(argv[4]) : 5;
    const int rate = argc > 5 ? std::atoi(argv[5]) : 2000;
    if (argc < 4 || argc > 6 || pid <= 0 || port <= 0 || port > 65535 || seconds <= 0 || rate <= 0) {
        std::fprintf(stderr, "usage: bench_stream SERVICE_PID API_SOCKET PORT [SECONDS_PER_WINDOW] "
                             "[CONNECTS_PER_SECOND]\n");
        return 2;
    }
    // Its CPU is what we report: make sure it is the service, not a wrapper that is still to exec.
    if (const std::string exe = exeName(pid); exe != "redirect-consoled") {
        std::fprintf(stderr, "bench_stream: pid %d runs %s, not redirect-consoled\n", int(pid), exe.c_str());
        return 2;
    }
    QCoreApplication app(argc, argv);
    LoadGen gen(static_cast<uint16_t>(port), rate);
    gen.start();
    std::vector<Window> windows(3);
    const char* names[] = {"no console", "1 console (bridge + model)", "10 consoles (1 bridge + 9 clients)"};
    for (int k : {0, 1, 2}) {
        windows[k].name = names[k];
        windows[k].consoles = k == 0 ? 0 : k == 1 ? 1 : kConsoles;
    }
    Consoles consoles(argv[2], &windows);
    runFor(2000);  // the load steady before the baseline
    measure(windows[0], pid, gen, seconds);
    bool settled = consoles.attach(1);
    measure(windows[1], pid, gen, seconds);
    settled = consoles.attach(kConsoles) && settled;
    measure(windows[2], pid, gen, seconds);
    consoles.stop();
    gen.stop();

    std::printf("\nservice flow stream: %d connects/s to port %d (redirected), windows of %d s, service pid %d (%s)\n",
                rate, port, seconds, int(pid), exeName(pid).c_str());
    std::printf("  %-36s %14s %12s %10s %7s %8s %9s\n", "window", "service %core", "cpu s/wall s", "done/s", "failed",
                "timeout", "bench %");
    for (const Window& w : windows)
        std::printf("  %-36s %14.1f %5.2f/%-6.2f %10.0f %7" PRIu64 " %8" PRIu64 " %9.1f\n", w.name, w.percentCore(),
                    w.serviceCpu, w.wallSeconds, double(w.load.done) / w.wallSeconds, w.load.failed, w.load.timedOut,
                    100.0 * w.benchCpu / w.wallSeconds);
    const double base = windows[0].percentCore();
    for (int k : {1, 2})
        std::printf("  service CPU per console, %2d console%s: %5.1f %% of a core (target <= 5)\n", windows[k].consoles,
                    k == 1 ? " " : "s", (windows[k].percentCore() - base) / windows[k].consoles);
    for (int k : {1, 2})
        printLatency(windows[k]);
    const Consoles::Health h = consoles.health();
    std::printf("  checks: %" PRIu64 " ended rows looked up, %" PRIu64 " not ended in the model; client drops %" PRIu64
                ", missed %" PRIu64 "; node drops %" PRIu64 ", connects that went direct %" PRIu64
                "; generator skipped %" PRIu64 ", unfinished %" PRIu64 ", first error: %s%s\n",
                consoles.rowsChecked(), consoles.rowsMissing(), h.dropped, h.missed, h.nodeDrops, h.wentDirect,
                gen.counts().skipped, gen.unfinished(), gen.firstError().c_str(),
                settled ? "" : "; consoles did not settle");
    std::fflush(stdout);
    return 0;
}

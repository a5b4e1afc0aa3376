// The relay under the conditions that broke it: a fork() while it relays (the
// child keeps copies of its sockets) and the descriptor limit (the listener
// spun and flooded the log, clients hung). Real engine, real sockets, in the
// sandbox; the echo server is its own process, so neither the fork nor the
// lowered limit of this process touches its sockets.
#include <atomic>
#include <cerrno>
#include <csignal>
#include <filesystem>
#include <map>
#include <set>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "engine.h"
#include "fd_handle.h"
#include "kernel_test.h"

using namespace redirect;
using namespace redirect::test;
using engine::FdHandle;
using Clock = std::chrono::steady_clock;

namespace {

// Counts every log line; keeps the first few and the last to show, so a flood does not flood the output.
class LineCounter : public spdlog::sinks::base_sink<std::mutex> {
public:
    uint64_t lines() const { return lines_.load(); }
    std::string sample()
    {
        std::lock_guard lock(mutex_);
        return sample_ + "...\n" + last_;
    }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override
    {
        // base_sink holds mutex_ here.
        if (lines_.fetch_add(1) < 5)
            sample_.append(msg.payload.data(), msg.payload.size()).append("\n");
        last_.assign(msg.payload.data(), msg.payload.size());
    }
    void flush_() override {}

private:
    std::atomic<uint64_t> lines_{0};
    std::string sample_;
    std::string last_;
};

std::shared_ptr<LineCounter> g_log;

const char* kEchoScript = R"(
import socket, threading
def serve(c):
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            c.sendall(b)
        c.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    c.close()
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1024)
print("PORT", s.getsockname()[1], flush=True)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
)";

std::unique_ptr<engine::Engine> startChain(int workers, uint16_t port, const std::vector<std::string>& names)
{
    engine::EngineOptions o;
    o.cgroup = sandbox().cgroup();
    o.instance = instanceName();
    o.workers = workers;
    o.repairOwnRecords = false;  // the test process is also the application
    auto eng = std::make_unique<engine::Engine>(o);
    std::string redirectors, rules;
    for (const std::string& n : names) {
        redirectors += std::string(redirectors.empty() ? "" : ",") + R"({"id":")" + n + R"(","name":")" + n + "\"}";
        rules += std::string(rules.empty() ? "" : ",") + R"({"id":"r)" + n + R"(","action":"redirect","redirector":")" +
                 n + R"(","ports":)" + std::to_string(port) + "}";
    }
    engine::RulesResult parsed =
        engine::parseRules(R"({"version":1,"redirectors":[)" + redirectors + R"(],"rules":[)" + rules + "]}");
    if (!parsed.ok() || !eng->applyRules(parsed.rules).message.empty())
        return nullptr;
    return eng;
}

uint64_t cookieOf(int fd)
{
    uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    ::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len);
    return cookie;
}

int msLeft(Clock::time_point deadline)
{
    return static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
}

// Start connecting an existing socket to 127.0.0.1:port (the callout sends it to the relay).
bool startConnect(int fd, uint16_t port)
{
    socklen_t len = 0;
    sockaddr_storage to = loopbackAddress(AF_INET, port, &len);
    return ::connect(fd, reinterpret_cast<sockaddr*>(&to), len) == 0 || errno == EINPROGRESS;
}

// Connect and wait (bounded) until connected.
bool connectWithin(int fd, uint16_t port, int timeoutMs)
{
    pollfd p{fd, POLLOUT, 0};
    int error = 0;
    socklen_t el = sizeof(error);
    return startConnect(fd, port) && ::poll(&p, 1, timeoutMs) == 1 &&
           ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &el) == 0 && error == 0;
}

// Send `size` bytes of a pattern and read the echo back in full, both at once (bounded).
bool echoes(int fd, size_t size, int timeoutMs = 10000)
{
    auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
    std::string out(size, '\0');
    for (size_t i = 0; i < size; ++i)
        out[i] = static_cast<char>('a' + (i * 7 + size) % 26);
    std::string in;
    size_t sent = 0;
    while (in.size() < size) {
        pollfd p{fd, static_cast<short>(POLLIN | (sent < size ? POLLOUT : 0)), 0};
        if (::poll(&p, 1, msLeft(deadline)) != 1)
            return false;
        if (sent < size && (p.revents & POLLOUT)) {
            size_t chunk = std::min<size_t>(size - sent, 65536);
            ssize_t w = ::send(fd, out.data() + sent, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0 && errno != EAGAIN)
                return false;
            sent += static_cast<size_t>(std::max<ssize_t>(w, 0));
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[65536];
            ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN))
                return false;
            in.append(buf, static_cast<size_t>(std::max<ssize_t>(n, 0)));
        }
    }
    return in == out;
}

// Half-close and expect the echo server's end of file: the flow ends "closed".
bool endsCleanly(int fd, int timeoutMs = 10000)
{
    if (::shutdown(fd, SHUT_WR) != 0)
        return false;
    pollfd p{fd, POLLIN, 0};
    char c;
    return ::poll(&p, 1, timeoutMs) == 1 && ::recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

// What a client hears within the time: "reset", "eof", "data" or "nothing".
std::string answer(int fd, int timeoutMs)
{
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeoutMs) != 1)
        return "nothing";
    char c;
    ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
    return n > 0 ? "data" : n == 0 ? "eof" : errno == ECONNRESET ? "reset" : std::strerror(errno);
}

// Flows with these ids (a set, or a map keyed by flow id) once all have ended (bounded wait); fewer on timeout.
template <typename Ids>
std::map<uint64_t, engine::Flow> ended(engine::Engine& eng, const Ids& ids, int timeoutMs = 15000)
{
    std::map<uint64_t, engine::Flow> got;
    auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
    do {
        got.clear();
        for (engine::Flow& f : eng.snapshot())
            if (f.endNs && ids.count(f.flowId))
                got.emplace(f.flowId, std::move(f));
        if (got.size() == ids.size())
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (Clock::now() < deadline);
    return got;
}

double cpuSeconds()
{
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto s = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
    return s(ru.ru_utime) + s(ru.ru_stime);
}

// A forked child that only sleeps (bounded) holding the descriptors it inherited; killed on scope exit.
class Sleeper {
public:
    explicit Sleeper(const std::vector<int>& notThese)
    {
        pid_ = ::fork();
        if (pid_ == 0) {
            // After fork() in a threaded process: system calls only.
            for (int fd : notThese)
                ::close(fd);
            ::poll(nullptr, 0, 60000);
            ::_exit(0);
        }
    }
    ~Sleeper()
    {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    pid_t pid() const { return pid_; }

private:
    pid_t pid_ = -1;
};

// The soft descriptor limit, put back on scope exit.
class FileLimit {
public:
    FileLimit() { ::getrlimit(RLIMIT_NOFILE, &saved_); }
    ~FileLimit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
    bool lower(rlim_t to)
    {
        rlimit lim = saved_;
        lim.rlim_cur = to;
        return ::setrlimit(RLIMIT_NOFILE, &lim) == 0;
    }

private:
    rlimit saved_{};
};

// The soft limit that leaves exactly `free` descriptor numbers unused below it.
rlim_t limitLeaving(int free)
{
    std::set<int> open;
    for (auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
        open.insert(std::stoi(entry.path().filename().string()));
    int limit = 0;
    for (int unused = 0; unused < free; ++limit)
        unused += !open.count(limit);
    return static_cast<rlim_t>(limit);
}

}  // namespace

class TestRelayLimits : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void forkWhileRelaying();
    void descriptorLimit();
};

void TestRelayLimits::initTestCase()
{
    g_log = std::make_shared<LineCounter>();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", g_log));
}

void TestRelayLimits::forkWhileRelaying()
{
    Child echo({"python3", "-u", "-c", kEchoScript});
    std::string banner = echo.readLine(10000);
    QVERIFY2(banner.rfind("PORT ", 0) == 0, banner.c_str());
    auto port = static_cast<uint16_t>(std::stoul(banner.substr(5)));
    auto eng = startChain(2, port, {"a", "b"});
    QVERIFY(eng);

    // Twelve flows through A and B, each proven relayed end to end before the fork.
    constexpr int kFlows = 12;
    std::vector<FdHandle> clients;
    std::vector<int> clientFds;
    std::map<uint64_t, std::pair<engine::EndReason, uint64_t>> expected;  // flow -> reason, bytes each way
    for (int i = 0; i < kFlows; ++i) {
        clients.emplace_back(connectLoopback(AF_INET, port));
        QVERIFY(clients.back().valid());
        QVERIFY(echoes(clients.back().fd(), 4));
        clientFds.push_back(clients.back().fd());
    }
    // The child keeps the relay's sockets (not the application's: their close must reach the relay).
    Sleeper sleeper(clientFds);
    QVERIFY(sleeper.pid() > 0);

    // A third close normally after a bulk exchange, a third reset; the rest keep moving bytes meanwhile.
    for (int i = 0; i < kFlows; ++i) {
        FdHandle& c = clients[static_cast<size_t>(i)];
        uint64_t flow = cookieOf(c.fd());
        if (i % 3 == 0) {
            QVERIFY(echoes(c.fd(), 100000));
            QVERIFY(endsCleanly(c.fd()));
            c.close();
            expected[flow] = {engine::EndReason::Closed, 100004};
        } else if (i % 3 == 1) {
            linger lg{1, 0};
            QCOMPARE(::setsockopt(c.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
            c.close();
            expected[flow] = {engine::EndReason::Reset, 4};
        } else {
            QVERIFY(echoes(c.fd(), 50000));
        }
    }
    // A reset must reach the next hop although the child still holds the relay's socket to it.
    QCOMPARE(ended(*eng, expected).size(), expected.size());

    // New connections take the descriptor numbers just closed (still registered, before the fix).
    for (int i = 0; i < 4; ++i) {
        FdHandle c(connectLoopback(AF_INET, port));
        QVERIFY(c.valid());
        QVERIFY(echoes(c.fd(), 70000));
        expected[cookieOf(c.fd())] = {engine::EndReason::Closed, 70000};
        QVERIFY(endsCleanly(c.fd()));
    }
    for (int i = 2; i < kFlows; i += 3) {
        FdHandle& c = clients[static_cast<size_t>(i)];
        QVERIFY(echoes(c.fd(), 30000));
        expected[cookieOf(c.fd())] = {engine::EndReason::Closed, 80004};
        QVERIFY(endsCleanly(c.fd()));
        c.close();
    }
    auto flows = ended(*eng, expected);
    QCOMPARE(flows.size(), expected.size());
    for (auto& [id, f] : flows) {
        auto [reason, bytes] = expected[id];
        QCOMPARE(QString(engine::endReasonName(f.reason)), QString(engine::endReasonName(reason)));
        QCOMPARE(f.hops.size(), size_t(2));
        for (const engine::Hop& hop : f.hops) {  // both hops moved what the application did
            QCOMPARE(hop.bytesUp, bytes);
            QCOMPARE(hop.bytesDown, bytes);
        }
    }
    // The echo server goes away while the child still holds the relay's old sockets: their
    // peers close, which the relay must no longer hear about.
    echo.kill(SIGKILL);
    QVERIFY(echo.wait() != -1);
    uint16_t gone = port;  // held bound, so no connect picks it as its own source port
    FdHandle reserved(reservePort(AF_INET, &gone));
    QVERIFY(reserved.valid());
    FdHandle after(connectLoopback(AF_INET, port));  // nobody listens now: refused through the chain
    QVERIFY(after.valid());
    QCOMPARE(answer(after.fd(), 5000), std::string("reset"));
    QTRY_COMPARE(eng->stats().openConnections, uint64_t(0));
}

void TestRelayLimits::descriptorLimit()
{
    Child echo({"python3", "-u", "-c", kEchoScript});
    std::string banner = echo.readLine(10000);
    QVERIFY2(banner.rfind("PORT ", 0) == 0, banner.c_str());
    auto port = static_cast<uint16_t>(std::stoul(banner.substr(5)));
    auto eng = startChain(1, port, {"a"});
    QVERIFY(eng);
    {
        FdHandle warm(connectLoopback(AF_INET, port));
        QVERIFY(warm.valid() && echoes(warm.fd(), 100) && endsCleanly(warm.fd()));
    }

    // Every client socket exists before the limit drops: then only the relay runs short.
    constexpr size_t kMaxHeld = 64, kExcess = 16;
    std::vector<FdHandle> held, excess;
    for (size_t i = 0; i < kMaxHeld + kExcess + 1; ++i) {
        (i < kMaxHeld ? held : excess).emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        QVERIFY((i < kMaxHeld ? held : excess).back().valid());
    }
    FdHandle late = std::move(excess.back());
    excess.pop_back();
    FileLimit limit;
    // Room for about a dozen relayed connections (two descriptors each) past what is open now.
    QVERIFY(limit.lower(limitLeaving(24)));

    // Hold connections until the relay cannot take one more: that one is reset, or it hangs.
    std::map<uint64_t, uint64_t> heldBytes;  // flow -> bytes each way
    size_t count = 0;
    std::string refusal;
    for (; count < kMaxHeld; ++count) {
        int fd = held[count].fd();
        if (!connectWithin(fd, port, 2000) || !echoes(fd, 4, 2000)) {
            refusal = answer(fd, 0);
            break;
        }
        heldBytes[cookieOf(fd)] = 4;
    }
    QVERIFY2(count > 0 && count < kMaxHeld, std::to_string(count).c_str());
    held.resize(count);
    // Whatever the relay left free, this process takes: no descriptor at all now.
    std::vector<FdHandle> fillers;
    while (fillers.size() < 1000) {
        FdHandle f(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        if (!f.valid())
            break;
        fillers.push_back(std::move(f));
    }
    QCOMPARE(errno, EMFILE);
    // A held flow past 64 KiB would take a pipe: at the limit it keeps going without one.
    QVERIFY(echoes(held[0].fd(), 256 * 1024));
    heldBytes[cookieOf(held[0].fd())] += 256 * 1024;

    // Excess clients knock for two seconds: the engine must not spin, flood the log or let them hang.
    uint64_t linesBefore = g_log->lines();
    double cpuBefore = cpuSeconds();
    auto start = Clock::now();
    std::set<uint64_t> excessIds;
    std::map<std::string, int> answers;
    for (FdHandle& c : excess) {
        QVERIFY(startConnect(c.fd(), port));  // the kernel completes it; the relay decides what follows
        excessIds.insert(cookieOf(c.fd()));
    }
    for (FdHandle& c : excess)
        ++answers[answer(c.fd(), msLeft(start + std::chrono::seconds(3)))];
    std::this_thread::sleep_until(std::max(Clock::now(), start + std::chrono::seconds(2)));
    double wall = std::chrono::duration<double>(Clock::now() - start).count();
    double cpu = cpuSeconds() - cpuBefore;
    uint64_t lines = g_log->lines() - linesBefore;
    qInfo("at the limit (%zu held, first refusal: %s): %.1f%% CPU over %.2f s, %llu log lines; excess clients: "
          "%d reset, %d nothing",
          count, refusal.c_str(), 100 * cpu / wall, wall, static_cast<unsigned long long>(lines), answers["reset"],
          answers["nothing"]);
    qInfo("first log lines:\n%s", g_log->sample().c_str());
    QVERIFY2(cpu < 0.3 * wall, "the relay spins at the descriptor limit");
    QVERIFY2(lines <= static_cast<uint64_t>(wall) + 1, "more than one log line a second");
    QCOMPARE(answers["reset"], int(kExcess));

    // Descriptors free up: the redirector serves again, with the limit still low.
    for (FdHandle& c : excess)
        c.close();
    for (FdHandle& h : held)
        QVERIFY(endsCleanly(h.fd()));
    held.clear();
    fillers.clear();
    auto heldFlows = ended(*eng, heldBytes);
    QCOMPARE(heldFlows.size(), heldBytes.size());
    for (auto& [id, f] : heldFlows) {
        QCOMPARE(QString(engine::endReasonName(f.reason)), QString("closed"));
        QCOMPARE(f.bytesUp, heldBytes[id]);
        QCOMPARE(f.bytesDown, heldBytes[id]);
    }
    QVERIFY(connectWithin(late.fd(), port, 2000));
    QVERIFY(echoes(late.fd(), 100000));
    QVERIFY(endsCleanly(late.fd()));
    // The reset clients' flows ended too, and say why.
    auto excessFlows = ended(*eng, excessIds);
    QCOMPARE(excessFlows.size(), excessIds.size());
    for (auto& [id, f] : excessFlows)
        QCOMPARE(QString(engine::endReasonName(f.reason)), QString("error"));
}

REDIRECT_KERNEL_TEST_MAIN(TestRelayLimits)
#include "tst_relay_limits.moc"

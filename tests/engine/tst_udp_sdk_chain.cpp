// Issue 11's UDP chain across processes, in the sandbox with the real callout and the real engine:
// application -> the engine's UDP redirector (hop 1) -> udp_test_proxy, a vendor's proxy in its own
// process that uses only the public SDK (hop 2) -> a UDP echo server. The records grow by hop with
// one flow id, nothing loops back to the engine, and 10,000 numbered datagrams of random sizes
// arrive intact, in order and once each, sent at half the rate an unpaced burst measured through
// the same chain just before. Only loss, content and order are asserted, never time.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine_fixture.h"
#include "kernel_test.h"
#include "redirect/sio.h"

using namespace redirect;
using namespace redirect::test;

namespace {

constexpr int kDatagrams = 10000;
constexpr size_t kMaxSize = 1400;
constexpr int kBurstVariety = 2000;       // distinct datagrams the burst cycles through
constexpr double kBurstS = 0.5;           // the burst's sending time
constexpr double kSlowestRate = 1000;  // datagrams/s: below it the paced run could take minutes

// Our own sockets get room for a stall of the engine's thread; its sockets keep their defaults.
void roomy(int fd)
{
    int bytes = 4 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes));
}

// A UDP socket on 127.0.0.1 (port written back), closed at scope end.
struct UdpSocket {
    int fd = -1;
    uint16_t port = 0;
    UdpSocket()
    {
        fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        socklen_t len = 0;
        sockaddr_storage ss = loopbackAddress(AF_INET, 0, &len);
        if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 &&
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
            port = ntohs(reinterpret_cast<sockaddr_in&>(ss).sin_port);
            roomy(fd);
        }
    }
    ~UdpSocket()
    {
        if (fd >= 0)
            ::close(fd);
    }
    UdpSocket(const UdpSocket&) = delete;
    UdpSocket& operator=(const UdpSocket&) = delete;
    bool ok() const { return port != 0; }
};

// Echoes every datagram from its own thread and notes who sent them: a loop would show up as a
// second source (or as datagrams that never come back).
class Echo {
public:
    Echo()
    {
        if (sock_.ok())
            thread_ = std::thread([this] { serve(); });
    }
    ~Echo()
    {
        stop_ = true;
        if (thread_.joinable())
            thread_.join();
    }
    bool ok() const { return sock_.ok(); }
    uint16_t port() const { return sock_.port; }
    uint64_t received() const { return received_; }
    std::map<std::string, uint64_t> sources()
    {
        std::lock_guard lock(mutex_);
        return sources_;
    }

private:
    void serve()
    {
        std::vector<char> buf(65536);
        while (!stop_) {
            pollfd p{sock_.fd, POLLIN, 0};
            if (::poll(&p, 1, 100) != 1)
                continue;
            sockaddr_storage from{};
            socklen_t len = sizeof(from);
            ssize_t n = ::recvfrom(sock_.fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
            if (n < 0)
                continue;
            ++received_;
            {
                std::lock_guard lock(mutex_);
                ++sources_[addressText(from)];
            }
            ::sendto(sock_.fd, buf.data(), size_t(n), 0, reinterpret_cast<sockaddr*>(&from), len);
        }
    }
    UdpSocket sock_;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> received_{0};
    std::mutex mutex_;
    std::map<std::string, uint64_t> sources_;
    std::thread thread_;
};

// Datagram i: its number, then random bytes; 8 to kMaxSize bytes in all.
std::vector<std::string> numberedDatagrams(int count, uint32_t seed)
{
    std::mt19937 rng(seed);
    std::vector<std::string> out(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) {
        std::string& d = out[size_t(i)];
        d.resize(8 + rng() % (kMaxSize - 7));
        for (char& c : d)
            c = char(rng());
        uint32_t n = htonl(uint32_t(i));
        std::memcpy(d.data(), &n, sizeof(n));
    }
    return out;
}

using Clock = std::chrono::steady_clock;

// Sends `sent` from a thread while this thread takes the echoes, until all came back or none did
// for `quietMs` after the last send; calls got(data) for each. At `rate` datagrams/s; with rate 0,
// unpaced, cycling through `sent` for kBurstS, until quiet. Returns the wall time from the first
// send to the last echo.
double exchange(int fd, uint16_t port, const std::vector<std::string>& sent, double rate, int quietMs,
                const std::function<void(const std::string&)>& got, int* sendErrors)
{
    std::atomic<bool> sending{true};
    std::atomic<int> errors{0};
    socklen_t toLen = 0;
    const sockaddr_storage to = loopbackAddress(AF_INET, port, &toLen);
    const Clock::time_point start = Clock::now();
    std::thread sender([&] {
        const auto burstEnd = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(kBurstS));
        for (size_t i = 0; rate > 0 ? i < sent.size() : Clock::now() < burstEnd; ++i) {
            if (rate > 0)
                std::this_thread::sleep_until(start + std::chrono::nanoseconds(int64_t(double(i) * 1e9 / rate)));
            const std::string& d = sent[i % sent.size()];
            if (::sendto(fd, d.data(), d.size(), 0, reinterpret_cast<const sockaddr*>(&to), toLen) != ssize_t(d.size()))
                ++errors;
        }
        sending = false;
    });
    Clock::time_point last = start;
    size_t echoes = 0;
    std::vector<char> buf(65536);
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, sending ? 1000 : quietMs) != 1) {
            if (sending)
                continue;
            break;
        }
        ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n < 0)
            continue;
        last = Clock::now();
        got(std::string(buf.data(), size_t(n)));
        if (++echoes == sent.size() && rate > 0 && !sending)
            break;
    }
    sender.join();
    *sendErrors = errors;
    return std::chrono::duration<double>(last - start).count();
}

std::string rules(uint16_t burstPort, uint16_t pacedPort, uint16_t proxyPort)
{
    const std::string ports = std::to_string(burstPort) + "," + std::to_string(pacedPort);
    return R"({"version":1,"redirectors":[{"id":"u","name":"U"},
      {"id":"x","name":"X","external":true,"listen":["127.0.0.1:)" + std::to_string(proxyPort) + R"("]}],
      "rules":[{"id":"ru","action":"redirect","redirector":"u","protocol":"udp","ports":")" + ports +
           R"(","idle_timeout":1},
      {"id":"rx","action":"redirect","redirector":"x","protocol":"udp","ports":")" + ports + R"(","idle_timeout":1}]})";
}

const engine::RedirectorStatus* statusOf(const std::vector<engine::RedirectorStatus>& all, const std::string& id)
{
    for (const engine::RedirectorStatus& s : all)
        if (s.id == id)
            return &s;
    return nullptr;
}

// For a failure's message: what the engine knows of each flow.
std::string flowsText(const std::vector<engine::Flow>& flows)
{
    std::string text;
    for (const engine::Flow& f : flows) {
        text += "\n  flow " + std::to_string(f.flowId) + " verdict " + f.verdict + " pid " + std::to_string(f.pid) +
                (f.endNs ? " ended " : " open ") + engine::endReasonName(f.reason);
        for (const engine::Hop& h : f.hops)
            text += " [" + h.redirector + (h.external ? " external" : "") + " up " + std::to_string(h.datagramsUp) +
                    " down " + std::to_string(h.datagramsDown) + "]";
    }
    return text;
}

// `text` with each run of spaces as one (no std::regex: g++ 12 warns inside it under the sanitizers).
std::string squeezeSpaces(const std::string& text)
{
    std::string out;
    for (char c : text)
        if (c != ' ' || out.empty() || out.back() != ' ')
            out += c;
    return out;
}

// Datagrams each UDP socket of the sandbox dropped so far (ss -m: d<count>), by its ss line.
std::map<std::string, uint64_t> socketDrops()
{
    std::istringstream in(run({"ss", "-uanmpH"}).second);
    std::map<std::string, uint64_t> drops;
    std::string socket, line;
    while (std::getline(in, line)) {
        auto d = line.find(",d");
        if (line.find("skmem:") == std::string::npos)
            socket = squeezeSpaces(line);
        else if (d != std::string::npos)
            drops[socket] = std::stoull(line.substr(d + 2));
    }
    return drops;
}

// For a failure's message: the sockets that dropped datagrams since `before`, one a line.
std::string droppedSince(const std::map<std::string, uint64_t>& before)
{
    std::string text;
    for (const auto& [socket, drops] : socketDrops()) {
        auto it = before.find(socket);
        if (uint64_t since = drops - (it == before.end() ? 0 : it->second))
            text += "\n  " + std::to_string(since) + " by " + socket;
    }
    return text.empty() ? "\n  none" : text;
}

// The proxy's "FLOW ..." line as key=value pairs.
std::map<std::string, std::string> fields(const std::string& line)
{
    std::map<std::string, std::string> f;
    std::istringstream in(line);
    std::string word;
    while (in >> word)
        if (auto eq = word.find('='); eq != std::string::npos)
            f[word.substr(0, eq)] = word.substr(eq + 1);
    return f;
}

}  // namespace

class TestUdpSdkChain : public QObject {
    Q_OBJECT

private slots:
    void engineThenSdkProxyAtHalfMaximumRate();
};

void TestUdpSdkChain::engineThenSdkProxyAtHalfMaximumRate()
{
    Echo burstEcho, pacedEcho;
    QVERIFY2(burstEcho.ok() && pacedEcho.ok(), strerror(errno));
    Child proxy({binaryPath("udp_test_proxy")});  // SIGKILLed by its destructor if the test fails
    std::string hello = proxy.readLine();
    unsigned proxyPort = 0;
    QVERIFY2(std::sscanf(hello.c_str(), "PORT %u", &proxyPort) == 1, hello.c_str());

    engine::EngineOptions o;
    o.cgroup = sandbox().cgroup();
    o.instance = instanceName();
    o.workers = 1;
    o.repairOwnRecords = false;  // the test process is also the application
    o.stallDeadlineMs = 0;       // a late heartbeat on a loaded machine would send datagrams direct
    engine::Engine eng(o);
    engine::RuleError applied = eng.applyRules(rulesFor(rules(burstEcho.port(), pacedEcho.port(), uint16_t(proxyPort))));
    QVERIFY2(applied.message.empty(), applied.message.c_str());
    // The engine finds the proxy's UDP socket on X's endpoint, checks who holds it, marks it and
    // routes UDP there (as it does for an external proxy's TCP listener).
    auto xStatus = [&] {
        auto all = eng.redirectors();
        const engine::RedirectorStatus* x = statusOf(all, "x");
        return x ? *x : engine::RedirectorStatus{};
    };
    QTRY_VERIFY2_WITH_TIMEOUT(xStatus().udpPort4 == proxyPort, xStatus().availability.c_str(), 15000);
    const engine::RedirectorStatus x = xStatus();
    auto statuses = eng.redirectors();
    const engine::RedirectorStatus* u = statusOf(statuses, "u");
    QVERIFY(u);
    QVERIFY2(x.available, x.availability.c_str());
    QCOMPARE(x.ownerPid, uint32_t(proxy.pid()));
    const std::string holder = "udp 127.0.0.1:" + std::to_string(proxyPort) + ": pid " + std::to_string(proxy.pid());
    QVERIFY2(x.availability.find(holder) != std::string::npos, x.availability.c_str());
    QCOMPARE(int(eng.callout().redirector(x.slot).udp_port4), int(htons(uint16_t(proxyPort))));

    // The maximum: an unpaced burst on a flow of its own, what came back per second of wall time.
    UdpSocket burstApp, app;
    QVERIFY(burstApp.ok() && app.ok());
    int sendErrors = 0;
    uint64_t burstBack = 0;
    const std::map<std::string, uint64_t> dropsBeforeBurst = socketDrops();
    double burstS = exchange(burstApp.fd, burstEcho.port(), numberedDatagrams(kBurstVariety, 7), 0, 500,
                             [&](const std::string&) { ++burstBack; }, &sendErrors);
    const double maxRate = burstS > 0 ? double(burstBack) / burstS : 0;
    qInfo("burst: %llu datagrams reached the echo, %llu came back in %.3f s: %.0f datagrams/s",
          static_cast<unsigned long long>(burstEcho.received()), static_cast<unsigned long long>(burstBack), burstS,
          maxRate);
    qInfo("the burst's drops (where the chain's limit is):%s", droppedSince(dropsBeforeBurst).c_str());
    QVERIFY2(maxRate >= kSlowestRate, qPrintable(QString("the chain relayed %1 datagrams/s unpaced").arg(maxRate)));

    // The run: numbered datagrams at half that rate, each expected once, in order, byte for byte.
    const std::vector<std::string> sent = numberedDatagrams(kDatagrams, 11);
    const std::map<std::string, uint64_t> dropsBefore = socketDrops();
    std::vector<int> seen(kDatagrams, 0);
    int damaged = 0, outOfOrder = 0, next = 0;
    uint64_t bytes = 0;
    for (const std::string& d : sent)
        bytes += d.size();
    double pacedS = exchange(app.fd, pacedEcho.port(), sent, maxRate / 2, 3000, [&](const std::string& d) {
        uint32_t n = 0;
        if (d.size() < 8)
            return void(++damaged);
        std::memcpy(&n, d.data(), sizeof(n));
        n = ntohl(n);
        if (n >= uint32_t(kDatagrams) || d != sent[n])
            return void(++damaged);
        outOfOrder += int(n) < next;  // behind one that came before it
        next = std::max(next, int(n) + 1);
        ++seen[n];
    }, &sendErrors);
    const int lost = int(std::count(seen.begin(), seen.end(), 0));
    const int duplicated = int(std::count_if(seen.begin(), seen.end(), [](int c) { return c > 1; }));
    qInfo("paced at %.0f datagrams/s: %d sent in %.3f s, %d lost, %d duplicated, %d out of order, %d damaged",
          maxRate / 2, kDatagrams, pacedS, lost, duplicated, outOfOrder, damaged);
    QCOMPARE(sendErrors, 0);
    QVERIFY2(lost == 0, (std::to_string(lost) + " lost; dropped during the run:" + droppedSince(dropsBefore)).c_str());
    QCOMPARE(duplicated, 0);
    QCOMPARE(damaged, 0);
    QCOMPARE(outOfOrder, 0);

    // No loop: the echo heard exactly the run's datagrams, from one socket that is not the
    // application's (the proxy's upstream), and nothing else reached the engine (counts below).
    auto sources = pacedEcho.sources();
    QCOMPARE(sources.size(), size_t(1));
    QCOMPARE(sources.begin()->second, uint64_t(kDatagrams));
    QVERIFY(sources.begin()->first != "127.0.0.1:" + std::to_string(app.port));

    // The engine's view, once our hop went idle: one flow to the echo, U then X, with U's counts.
    const std::string destination = "127.0.0.1:" + std::to_string(pacedEcho.port());
    std::vector<engine::Flow> flows;
    for (auto deadline = Clock::now() + std::chrono::seconds(20); Clock::now() < deadline;) {
        flows.clear();
        for (engine::Flow& f : eng.snapshot())
            if (f.destination == destination)
                flows.push_back(std::move(f));
        if (flows.size() == 1 && flows[0].endNs)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    QVERIFY2(flows.size() == 1, flowsText(flows).c_str());
    const engine::Flow& flow = flows[0];
    QVERIFY(flow.endNs != 0);
    QCOMPARE(flow.hops.size(), size_t(2));
    const engine::Hop& ours = flow.hops[0];
    const engine::Hop& theirs = flow.hops[1];
    QCOMPARE(ours.redirector, std::string("U"));
    QVERIFY(!ours.external);
    QCOMPARE(ours.datagramsUp, uint64_t(kDatagrams));
    QCOMPARE(ours.datagramsDown, uint64_t(kDatagrams));
    QCOMPARE(ours.bytesUp, bytes);
    QCOMPARE(ours.bytesDown, bytes);
    QCOMPARE(theirs.redirector, std::string("X"));
    QVERIFY(theirs.external);
    QVERIFY(!theirs.recordsMissing);  // it passed the records on itself
    QCOMPARE(int(theirs.state), int(REDIRECT_STATE_REDIRECTED_BY_OTHER));

    // The proxy's own account: the run's flow carries [U, X] with X taking it from another, under
    // the flow id the engine shows, and every datagram and byte went through it both ways.
    proxy.kill(SIGTERM);
    std::map<std::string, std::string> run;
    std::string lines;
    for (std::string line; !(line = proxy.readLine()).empty();) {
        lines += line + "\n";
        auto f = fields(line);
        if (f["flow"] == std::to_string(flow.flowId))
            run = f;
    }
    int status = proxy.wait();
    QVERIFY2(WIFEXITED(status) && WEXITSTATUS(status) == 0, lines.c_str());
    QVERIFY2(!run.empty(), lines.c_str());
    QCOMPARE(run["hops"], std::to_string(u->numericId) + ":NOT_REDIRECTED," + std::to_string(x.numericId) +
                              ":REDIRECTED_BY_OTHER");
    QCOMPARE(run["up"], std::to_string(kDatagrams));
    QCOMPARE(run["down"], std::to_string(kDatagrams));
    QCOMPARE(run["bytes_up"], std::to_string(bytes));
    QCOMPARE(run["bytes_down"], std::to_string(bytes));
}

REDIRECT_KERNEL_TEST_MAIN(TestUdpSdkChain)
#include "tst_udp_sdk_chain.moc"

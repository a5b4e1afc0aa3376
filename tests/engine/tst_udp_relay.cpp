// The engine's UDP relay end to end in the sandbox, with the real callout: dig against a small
// resolver on port 53 through a redirector of ours (right answer, the reply's source is the
// resolver, the hop names the query), 1,000 datagrams of random sizes through an echo server
// (every payload intact both ways, counts equal), idle expiry (reason idle, the next datagram is
// a new flow, connected or not), the socket's close (reason closed, nothing it sent lost), a
// block rule for UDP while TCP to the same port is redirected, a malformed DNS query relayed
// unchanged without a name, and the DNS peek's parser.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine_fixture.h"
#include "kernel_test.h"
#include "udp_relay.h"

using namespace redirect;
using namespace redirect::test;

namespace {

// A descriptor closed at scope end, so a failed check leaks nothing.
struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd()
    {
        if (fd >= 0)
            ::close(fd);
    }
    Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
    Fd& operator=(Fd&& o) noexcept
    {
        if (this != &o) {
            if (fd >= 0)
                ::close(fd);
            fd = std::exchange(o.fd, -1);
        }
        return *this;
    }
};

int boundUdp(uint16_t* port)
{
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    socklen_t len = 0;
    sockaddr_storage ss = loopbackAddress(AF_INET, *port, &len);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        if (fd >= 0)
            ::close(fd);
        return -1;
    }
    len = sizeof(ss);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    *port = ntohs(reinterpret_cast<sockaddr_in&>(ss).sin_port);
    return fd;
}

// A UDP server on 127.0.0.1 answering each datagram with answer(datagram) from its own thread.
class UdpServer {
public:
    UdpServer(uint16_t port, std::function<std::string(const std::string&)> answer)
        : port_(port), fd_(boundUdp(&port_)), answer_(std::move(answer))
    {
        if (fd_ >= 0)
            thread_ = std::thread([this] { serve(); });
    }
    ~UdpServer()
    {
        stop_ = true;
        if (thread_.joinable())
            thread_.join();
        if (fd_ >= 0)
            ::close(fd_);
    }
    bool ok() const { return fd_ >= 0; }
    uint16_t port() const { return port_; }

private:
    void serve()
    {
        std::vector<char> buf(65536);
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 100) != 1)
                continue;
            sockaddr_storage from{};
            socklen_t len = sizeof(from);
            ssize_t n = ::recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
            if (n < 0)
                continue;
            std::string reply = answer_(std::string(buf.data(), size_t(n)));
            ::sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
        }
    }
    uint16_t port_;
    int fd_;
    std::function<std::string(const std::string&)> answer_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

constexpr uint8_t kAnswer[4] = {10, 11, 12, 13};

// A resolver that knows one address for every name: an A answer to a well-formed query, the
// datagram itself back for anything else (so a test sees what arrived).
std::string resolve(const std::string& q)
{
    size_t at = 12;
    while (at < q.size() && q[at] != 0 && uint8_t(q[at]) <= 63)
        at += 1 + uint8_t(q[at]);
    if (q.size() < 12 || at >= q.size() || q[at] != 0 || at + 5 > q.size())
        return q;
    const size_t questionEnd = at + 5;
    std::string r = q.substr(0, 12);
    r[2] = char(0x84 | (q[2] & 0x01));  // response, authoritative, recursion desired as asked
    r[3] = char(0x80);                  // recursion available, no error
    r[4] = 0, r[5] = 1, r[6] = 0, r[7] = 1, r[8] = r[9] = r[10] = r[11] = 0;
    r += q.substr(12, questionEnd - 12);
    const char rr[] = {char(0xc0), 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
    r.append(rr, sizeof(rr));
    r.append(reinterpret_cast<const char*>(kAnswer), 4);
    return r;
}

std::string udpRules(uint16_t port, int idleS)
{
    return R"({"version":1,"redirectors":[{"id":"u","name":"U"}],"rules":[{"id":"ru","action":"redirect",)"
           R"("redirector":"u","protocol":"udp","ports":")" +
           std::to_string(port) + R"(","idle_timeout":)" + std::to_string(idleS) + "}]}";
}

// An engine whose one redirector takes UDP to `port`, flows idle after a second; null on failure.
// Without the stall deadline: on a loaded machine a heartbeat late by half a second sends a
// datagram direct (fail-open, tested elsewhere), and this file tests the relay.
std::unique_ptr<engine::Engine> engineWith(const std::string& rules, size_t udpMaxFlows = 0)
{
    engine::EngineOptions o;
    o.udpMaxFlows = udpMaxFlows;
    o.cgroup = sandbox().cgroup();
    o.instance = instanceName();
    o.workers = 1;
    o.repairOwnRecords = false;  // the test process is also the application
    o.stallDeadlineMs = 0;
    auto eng = std::make_unique<engine::Engine>(o);
    return eng->applyRules(rulesFor(rules)).message.empty() ? std::move(eng) : nullptr;
}

std::unique_ptr<engine::Engine> udpEngine(uint16_t port, int idleS = 1) { return engineWith(udpRules(port, idleS)); }

std::string echo(const std::string& d) { return d; }

std::string dest(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// Flows to `destination` once `done` holds for them (bounded wait; what there is at the deadline).
std::vector<engine::Flow> waitFlows(engine::Engine& eng, const std::string& destination,
                                    const std::function<bool(const std::vector<engine::Flow>&)>& done)
{
    std::vector<engine::Flow> to;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    do {
        to.clear();
        for (engine::Flow& f : eng.snapshot())
            if (f.destination == destination)
                to.push_back(std::move(f));
        if (done(to))
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (std::chrono::steady_clock::now() < deadline);
    std::sort(to.begin(), to.end(), [](auto& a, auto& b) { return a.startNs < b.startNs; });
    return to;
}

// For a failure's message: each flow's id, reason, verdict and hops.
std::string describe(const std::vector<engine::Flow>& flows)
{
    std::string text;
    for (const engine::Flow& f : flows) {
        text += "\n  flow " + std::to_string(f.flowId) + " " + engine::endReasonName(f.reason) + " " + f.verdict +
                " up " + std::to_string(f.datagramsUp);
        for (const engine::Hop& h : f.hops)
            text += " [" + h.redirector + " " + engine::endReasonName(h.reason) + " " + std::to_string(h.datagramsUp) +
                    "/" + std::to_string(h.datagramsDown) + "]";
    }
    return text;
}

bool allEnded(const std::vector<engine::Flow>& flows, size_t count)
{
    return flows.size() >= count && std::all_of(flows.begin(), flows.end(), [](auto& f) { return f.endNs != 0; });
}

// Our redirector's hop of a flow, or null.
const engine::Hop* ourHop(const engine::Flow& f)
{
    for (const engine::Hop& h : f.hops)
        if (h.redirector == "U")
            return &h;
    return nullptr;
}

int sendTo(int fd, uint16_t port, const std::string& data)
{
    socklen_t len = 0;
    sockaddr_storage ss = loopbackAddress(AF_INET, port, &len);
    return ::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) == ssize_t(data.size())
               ? 0
               : errno;
}

// One datagram with its source, or nothing within the bound.
struct Got {
    bool ok = false;
    std::string data;
    std::string from;
};
Got receive(int fd, int timeoutMs = 3000)
{
    Got g;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeoutMs) != 1)
        return g;
    std::vector<char> buf(65536);
    sockaddr_storage from{};
    socklen_t len = sizeof(from);
    ssize_t n = ::recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0)
        return g;
    g.ok = true;
    g.data.assign(buf.data(), size_t(n));
    g.from = addressText(from);
    return g;
}

std::string query(const std::string& name, uint16_t id = 0x1234)
{
    std::string q = {char(id >> 8), char(id & 0xff), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    size_t start = 0;
    while (start <= name.size()) {
        size_t dot = std::min(name.find('.', start), name.size());
        q += char(dot - start);
        q += name.substr(start, dot - start);
        start = dot + 1;
    }
    q += std::string("\0\0\1\0\1", 5);
    return q;
}

}  // namespace

class TestUdpRelay : public QObject {
    Q_OBJECT

private slots:
    void digThroughRedirector();
    void thousandDatagramsIntact_data();
    void thousandDatagramsIntact();
    void idleFlowEndsAndNextIsNew_data();
    void idleFlowEndsAndNextIsNew();
    void closedSocketEndsItsFlow();
    void blockUdpWhileTcpIsRedirected();
    void flowLimitDropsThenFrees();
    void malformedQueryRelayedWithoutName();
    void dnsPeek_data();
    void dnsPeek();
};

void TestUdpRelay::digThroughRedirector()
{
    // Port 53 of this network namespace's own loopback: the peek looks at DNS by port.
    UdpServer resolver(53, resolve);
    QVERIFY2(resolver.ok(), strerror(errno));
    auto eng = udpEngine(53);
    QVERIFY(eng);

    auto [code, out] = run({"dig", "@127.0.0.1", "-p", "53", "relay.example.org", "A", "+tries=1", "+time=5"});
    QVERIFY2(code == 0, out.c_str());
    QVERIFY2(out.find("relay.example.org.\t60\tIN\tA\t10.11.12.13") != std::string::npos, out.c_str());
    // dig checks that the answer came from the server it asked; it shows that server.
    QVERIFY2(out.find("SERVER: 127.0.0.1#53(127.0.0.1)") != std::string::npos, out.c_str());

    auto flows = waitFlows(*eng, dest(53), [](auto& f) { return allEnded(f, 1); });
    QCOMPARE(flows.size(), size_t(1));
    const engine::Flow& f = flows[0];
    QCOMPARE(f.host, std::string("relay.example.org"));
    QCOMPARE(int(f.protocol), int(IPPROTO_UDP));
    const engine::Hop* hop = ourHop(f);
    QVERIFY(hop);
    QCOMPARE(hop->datagramsUp, uint64_t(1));
    QCOMPARE(hop->datagramsDown, uint64_t(1));
    // dig closed its socket: the flow ends then, not at the idle timeout.
    QCOMPARE(std::string(engine::endReasonName(hop->reason)), std::string("closed"));
    QCOMPARE(std::string(engine::endReasonName(f.reason)), std::string("closed"));
    QVERIFY(hop->recordsSize > 0 && hop->contextSize > 0);
}

void TestUdpRelay::thousandDatagramsIntact_data()
{
    QTest::addColumn<bool>("sameSize");
    QTest::newRow("random sizes") << false;
    // A window of equal sizes reaches the relay as one batch: it goes upstream segmented (UDP_SEGMENT).
    QTest::newRow("all 1200 bytes") << true;
}

void TestUdpRelay::thousandDatagramsIntact()
{
    QFETCH(bool, sameSize);
    UdpServer server(0, echo);
    auto eng = udpEngine(server.port());
    QVERIFY(server.ok() && eng);

    Fd app(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    std::mt19937 rng(11);
    constexpr int kTotal = 1000, kWindow = 20;  // a window fits every socket buffer: no loss by design
    uint64_t bytes = 0;
    int intact = 0, fromEcho = 0;
    for (int sent = 0; sent < kTotal; sent += kWindow) {
        std::vector<std::string> window;
        for (int i = 0; i < kWindow; ++i) {
            std::string d(sameSize ? 1200 : rng() % 1401, '\0');
            for (char& c : d)
                c = char(rng());
            bytes += d.size();
            QCOMPARE(sendTo(app.fd, server.port(), d), 0);
            window.push_back(std::move(d));
        }
        std::vector<std::string> back;
        for (int i = 0; i < kWindow; ++i) {
            Got g = receive(app.fd);
            QVERIFY2(g.ok, qPrintable(QString("echo %1 of window at %2 missing").arg(i).arg(sent)));
            fromEcho += g.from == dest(server.port());  // the callout shows the server as the source
            back.push_back(std::move(g.data));
        }
        std::sort(window.begin(), window.end());
        std::sort(back.begin(), back.end());
        for (int i = 0; i < kWindow; ++i)
            intact += window[i] == back[i];
    }
    QCOMPARE(intact, kTotal);
    QCOMPARE(fromEcho, kTotal);

    // One flow, unless the test stalled for longer than the idle timeout between two windows:
    // then the next datagram was a new flow. Either way every datagram is counted once.
    auto flows = waitFlows(*eng, dest(server.port()), [&](auto& f) {
        uint64_t up = 0;
        for (const engine::Flow& x : f)
            up += x.datagramsUp;
        return allEnded(f, 1) && up == kTotal;
    });
    QVERIFY(!flows.empty());
    uint64_t up = 0, down = 0, bytesUp = 0, bytesDown = 0;
    for (const engine::Flow& f : flows) {
        const engine::Hop* hop = ourHop(f);
        QVERIFY2(hop && f.endNs, describe(flows).c_str());
        QCOMPARE(hop->datagramsUp, f.datagramsUp);
        QCOMPARE(hop->bytesDown, f.bytesDown);
        QCOMPARE(f.host, std::string());  // not port 53: no peek
        up += hop->datagramsUp, down += hop->datagramsDown;
        bytesUp += hop->bytesUp, bytesDown += hop->bytesDown;
    }
    QCOMPARE(up, uint64_t(kTotal));
    QCOMPARE(down, uint64_t(kTotal));
    QCOMPARE(bytesUp, bytes);
    QCOMPARE(bytesDown, bytes);
}

void TestUdpRelay::idleFlowEndsAndNextIsNew_data()
{
    QTest::addColumn<bool>("connected");
    QTest::newRow("unconnected") << false;
    QTest::newRow("connected") << true;  // its sends run no hook: the callout starts its next flow at our receipt
}

void TestUdpRelay::idleFlowEndsAndNextIsNew()
{
    QFETCH(bool, connected);
    UdpServer server(0, echo);
    auto eng = udpEngine(server.port());
    QVERIFY(server.ok() && eng);

    Fd app(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (connected) {
        socklen_t len = 0;
        sockaddr_storage ss = loopbackAddress(AF_INET, server.port(), &len);
        QCOMPARE(::connect(app.fd, reinterpret_cast<sockaddr*>(&ss), len), 0);
    }
    QCOMPARE(sendTo(app.fd, server.port(), "one"), 0);
    QCOMPARE(receive(app.fd).data, std::string("one"));
    auto first = waitFlows(*eng, dest(server.port()), [](auto& f) { return allEnded(f, 1); });
    QCOMPARE(first.size(), size_t(1));
    QVERIFY(ourHop(first[0]));
    QCOMPARE(std::string(engine::endReasonName(ourHop(first[0])->reason)), std::string("idle"));
    QCOMPARE(std::string(engine::endReasonName(first[0].reason)), std::string("idle"));

    // The same socket, after its flow ended: a flow of its own, with its own hop.
    QCOMPARE(sendTo(app.fd, server.port(), "two"), 0);
    QCOMPARE(receive(app.fd).data, std::string("two"));
    auto both = waitFlows(*eng, dest(server.port()), [](auto& f) { return allEnded(f, 2); });
    QCOMPARE(both.size(), size_t(2));
    QVERIFY2(both[0].flowId != both[1].flowId, describe(both).c_str());
    for (const engine::Flow& f : both) {
        const engine::Hop* hop = ourHop(f);
        QVERIFY(hop);
        // Each flow's start was an event of the callout: who sent it, as for any flow.
        QCOMPARE(f.verdict, std::string("redirect"));
        QCOMPARE(f.user, std::string("root"));
        QCOMPARE(f.rule, std::string("ru"));
        QCOMPARE(f.pid, uint32_t(::getpid()));
        QCOMPARE(hop->datagramsUp, uint64_t(1));
        QCOMPARE(hop->datagramsDown, uint64_t(1));
        QCOMPARE(std::string(engine::endReasonName(hop->reason)), std::string("idle"));
    }
}

void TestUdpRelay::closedSocketEndsItsFlow()
{
    UdpServer server(0, echo);
    auto eng = udpEngine(server.port(), 3600);  // only the close can end it within the test's bound
    QVERIFY(server.ok() && eng);

    int app = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    QVERIFY(app >= 0);
    QCOMPARE(sendTo(app, server.port(), "first"), 0);
    const bool echoed = receive(app).data == "first";  // the flow is known to the relay now
    // Then a burst the application does not wait for, and close: every datagram of it counts.
    constexpr int kBurst = 40;
    int sent = 1;
    for (int i = 0; i < kBurst; ++i)
        sent += sendTo(app, server.port(), "datagram " + std::to_string(i)) == 0;
    ::close(app);
    QVERIFY(echoed);
    QCOMPARE(sent, kBurst + 1);

    auto flows = waitFlows(*eng, dest(server.port()), [](auto& f) { return allEnded(f, 1); });
    QVERIFY2(flows.size() == 1 && flows[0].endNs, describe(flows).c_str());
    const engine::Hop* hop = ourHop(flows[0]);
    QVERIFY(hop);
    QCOMPARE(std::string(engine::endReasonName(hop->reason)), std::string("closed"));
    QCOMPARE(std::string(engine::endReasonName(flows[0].reason)), std::string("closed"));
    QCOMPARE(hop->datagramsUp, uint64_t(kBurst + 1));
    QCOMPARE(eng->stats().udpDropped, uint64_t(0));
}

void TestUdpRelay::blockUdpWhileTcpIsRedirected()
{
    EchoServer tcp;
    UdpServer udp(tcp.port(), echo);  // the same port number, for UDP ("udp/443 against tcp/443")
    QVERIFY2(udp.ok(), strerror(errno));
    const std::string port = std::to_string(tcp.port());
    auto eng = engineWith(R"({"version":1,"redirectors":[{"id":"u","name":"U"}],"rules":[)"
                          R"({"id":"no-quic","action":"block","protocol":"udp","ports":")" + port + R"("},)"
                          R"({"id":"web","action":"redirect","redirector":"u","protocol":"tcp","ports":")" + port +
                          R"("}]})");
    QVERIFY(eng);

    int app = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    QVERIFY(app >= 0);
    const int refused = sendTo(app, tcp.port(), "quic initial");
    ::close(app);
    QCOMPARE(refused, EPERM);
    std::mt19937 rng(5);
    ClientResult r = runClient(tcp.port(), 100000, false, rng);
    QVERIFY(r.ok);

    auto flows = waitFlows(*eng, dest(tcp.port()), [](auto& f) { return allEnded(f, 2); });
    QVERIFY2(flows.size() == 2, describe(flows).c_str());
    const engine::Flow* blocked = nullptr;
    const engine::Flow* redirected = nullptr;
    for (const engine::Flow& f : flows)
        (f.protocol == IPPROTO_UDP ? blocked : redirected) = &f;
    QVERIFY2(blocked && redirected, describe(flows).c_str());
    QCOMPARE(blocked->verdict, std::string("block"));
    QCOMPARE(blocked->rule, std::string("no-quic"));
    QVERIFY(blocked->hops.empty());
    QCOMPARE(std::string(engine::endReasonName(blocked->reason)), std::string("closed"));  // its socket's close
    QCOMPARE(int(redirected->protocol), int(IPPROTO_TCP));
    QCOMPARE(redirected->verdict, std::string("redirect"));
    QCOMPARE(redirected->rule, std::string("web"));
    const engine::Hop* hop = ourHop(*redirected);
    QVERIFY(hop);
    QCOMPARE(hop->bytesUp, uint64_t(100000));
    QCOMPARE(hop->bytesDown, uint64_t(100000));
}

// A local user's sockets are cheap: past the relay's flow limit a new source's datagrams are
// dropped (counted), the open flows go on, and a flow that ends makes room for the next.
void TestUdpRelay::flowLimitDropsThenFrees()
{
    constexpr size_t kLimit = 4;
    UdpServer server(0, echo);
    QVERIFY(server.ok());
    auto eng = engineWith(udpRules(server.port(), 3600), kLimit);  // only closes end flows here
    QVERIFY(eng);

    std::vector<Fd> apps;
    for (size_t i = 0; i < kLimit + 2; ++i)
        apps.emplace_back(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    for (size_t i = 0; i < kLimit; ++i) {
        QCOMPARE(sendTo(apps[i].fd, server.port(), "in " + std::to_string(i)), 0);
        QCOMPARE(receive(apps[i].fd).data, "in " + std::to_string(i));
    }
    // Over the limit: sent (the callout redirected them), dropped by the relay, never echoed.
    for (size_t i = kLimit; i < apps.size(); ++i)
        QCOMPARE(sendTo(apps[i].fd, server.port(), "over"), 0);
    for (size_t i = kLimit; i < apps.size(); ++i)
        QVERIFY(!receive(apps[i].fd, 1000).ok);
    QVERIFY(eng->stats().udpDropped >= 2);
    // The open flows go on.
    QCOMPARE(sendTo(apps[0].fd, server.port(), "still"), 0);
    QCOMPARE(receive(apps[0].fd).data, std::string("still"));

    // Two flows end (their sockets close): the next source gets through, once the relay heard.
    apps[0] = Fd(-1);
    apps[1] = Fd(-1);
    bool through = false;
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
         !through && std::chrono::steady_clock::now() < deadline;) {
        QCOMPARE(sendTo(apps[kLimit].fd, server.port(), "after"), 0);
        through = receive(apps[kLimit].fd, 200).data == "after";
    }
    QVERIFY(through);

    // Every flow ends with a reason when its socket closes, the dropped one's too.
    apps.clear();
    auto flows = waitFlows(*eng, dest(server.port()), [](auto& f) { return allEnded(f, kLimit + 2); });
    QVERIFY2(flows.size() == kLimit + 2, describe(flows).c_str());
    size_t relayed = 0;
    for (const engine::Flow& f : flows) {
        QCOMPARE(std::string(engine::endReasonName(f.reason)), std::string("closed"));
        const engine::Hop* hop = ourHop(f);  // from the callout's event, relayed or not
        QVERIFY(hop);
        relayed += hop->datagramsUp > 0;
    }
    QCOMPARE(relayed, kLimit + 1);  // the last source's datagram never reached the destination
}

void TestUdpRelay::malformedQueryRelayedWithoutName()
{
    UdpServer resolver(53, resolve);
    auto eng = udpEngine(53);
    QVERIFY(resolver.ok() && eng);

    // A label that runs past the end: the resolver cannot read it and sends it back as it came.
    std::string bad = query("bad.example");
    bad[12] = 40;
    Fd app(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    QCOMPARE(sendTo(app.fd, 53, bad), 0);
    Got g = receive(app.fd);
    QVERIFY(g.ok);
    QVERIFY(g.data == bad);
    auto flows = waitFlows(*eng, dest(53), [](auto& f) { return allEnded(f, 1); });
    QCOMPARE(flows.size(), size_t(1));
    QCOMPARE(flows[0].host, std::string());
    QCOMPARE(flows[0].datagramsUp, uint64_t(1));
}

void TestUdpRelay::dnsPeek_data()
{
    QTest::addColumn<std::string>("datagram");
    QTest::addColumn<std::string>("name");
    const std::string good = query("www.example.com");
    QTest::newRow("query") << good << std::string("www.example.com");
    QTest::newRow("with EDNS record after") << good + std::string("\0\0\x29\x10\0\0\0\0\0\0\0", 11)
                                            << std::string("www.example.com");
    QTest::newRow("empty") << std::string() << std::string();
    QTest::newRow("header only") << good.substr(0, 12) << std::string();
    QTest::newRow("name cut short") << good.substr(0, 20) << std::string();
    QTest::newRow("type cut short") << good.substr(0, good.size() - 1) << std::string();
    std::string response = good;
    response[2] = char(0x81);
    QTest::newRow("a response") << response << std::string();
    std::string two = good;
    two[5] = 2;
    QTest::newRow("two questions") << two << std::string();
    std::string pointer = good;
    pointer[12] = char(0xc0), pointer[13] = 12;
    QTest::newRow("compression pointer") << pointer << std::string();
    std::string selfPointer = good;
    selfPointer[12] = char(0xc0), selfPointer[13] = 0;
    QTest::newRow("pointer to itself") << selfPointer << std::string();
    std::string longLabel = good;
    longLabel[12] = 64;
    QTest::newRow("label over 63") << longLabel << std::string();
    // Long enough that only the label-type check, not the bounds, refuses them.
    const std::string header = good.substr(0, 12), question = std::string("\0\0\1\0\1", 5);
    QTest::newRow("label of 64 within bounds") << header + "\x40" + std::string(64, 'a') + question << std::string();
    QTest::newRow("pointer within bounds") << header + "\xc0" + std::string(192, 'b') + question << std::string();
    QTest::newRow("label past the end") << good.substr(0, 12) + std::string("\x3f", 1) + "abc" << std::string();
    std::string name;
    for (int i = 0; i < 5; ++i)
        name += (i ? "." : "") + std::string(60, 'a');  // 5 * 61 + 1 = 306 bytes on the wire
    QTest::newRow("name over 255") << query(name) << std::string();
    std::string name253;
    for (int i = 0; i < 4; ++i)
        name253 += (i ? "." : "") + std::string(i < 3 ? 63 : 61, 'b');  // 253 characters, 255 on the wire
    QTest::newRow("name of 255 on the wire") << query(name253) << name253;
    std::string control = query("a\nb.example");
    QTest::newRow("control character") << control << std::string();
    QTest::newRow("root only") << query("").substr(0, 12) + std::string("\0\0\1\0\1", 5) << std::string();
}

void TestUdpRelay::dnsPeek()
{
    QFETCH(std::string, datagram);
    QFETCH(std::string, name);
    QCOMPARE(engine::peekDnsQueryName(datagram), name);
}

REDIRECT_KERNEL_TEST_MAIN(TestUdpRelay)
#include "tst_udp_relay.moc"

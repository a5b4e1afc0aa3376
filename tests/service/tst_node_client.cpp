// The console's client of a node, against a real service in the test's sandbox: flows arrive, a
// toggle changes the route of the next real connection, a crash of the service is seen at once
// (and leaves no hook: connections go direct), and a restarted service is found again by itself.
// A UDP flow arrives with its protocol and datagram counts, per flow and per hop.
#include <chrono>

#include <poll.h>
#include <unistd.h>

#include <QtTest>

#include "node_client.h"
#include "service_fixture.h"

using namespace redirect;
using namespace redirect::test;
using client::NodeClient;
using client::NodeState;

namespace {

// Flows taken from the client until one to `destination` has ended (bounded).
bool sawEnded(NodeClient& node, const std::string& destination, std::string* chain)
{
    std::vector<engine::Flow> flows;
    for (int i = 0; i < 200; ++i) {
        flows.clear();
        node.takeFlows(flows);
        for (const engine::Flow& f : flows)
            if (f.destination == destination && f.endNs != 0) {
                *chain = f.chainText();
                return true;
            }
        QThread::msleep(50);
    }
    return false;
}

// Programs of ours still attached to `cgroup`, as bpftool lists them.
std::string attachedTo(const std::string& cgroup)
{
    auto [code, out] = run({"bpftool", "cgroup", "show", cgroup}, 10000);
    return code == 0 ? out.substr(out.find('\n') == std::string::npos ? 0 : out.find('\n') + 1) : "bpftool failed";
}

// A UDP socket on 127.0.0.1 (port 0: the system picks), closed at scope end; -1 when it failed.
struct UdpSocket {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    uint16_t port = 0;
    UdpSocket()
    {
        socklen_t len = 0;
        sockaddr_storage ss = loopbackAddress(AF_INET, 0, &len);
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0)
            return;
        len = sizeof(ss);
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0)
            port = ntohs(reinterpret_cast<sockaddr_in&>(ss).sin_port);
    }
    ~UdpSocket()
    {
        if (fd >= 0)
            ::close(fd);
    }
    UdpSocket(const UdpSocket&) = delete;
    UdpSocket& operator=(const UdpSocket&) = delete;
    // One datagram within the bound, with where it came from; false when none came.
    bool receive(std::string* data, sockaddr_storage* from = nullptr) const
    {
        pollfd p{fd, POLLIN, 0};
        char buf[2048];
        sockaddr_storage ss{};
        socklen_t len = sizeof(ss);
        ssize_t n = ::poll(&p, 1, 5000) == 1 ? ::recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&ss), &len) : -1;
        if (n < 0)
            return false;
        data->assign(buf, size_t(n));
        if (from)
            *from = ss;
        return true;
    }
};

bool sendTo(const UdpSocket& s, const sockaddr_storage& to, const std::string& data)
{
    const socklen_t len = to.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    return ::sendto(s.fd, data.data(), data.size(), 0, reinterpret_cast<const sockaddr*>(&to), len) == ssize_t(data.size());
}

}  // namespace

class TestNodeClient : public QObject {
    Q_OBJECT

private slots:
    void flowsTogglesCrashAndReconnect();
    void udpFlowCarriesDatagramCounts();
};

void TestNodeClient::flowsTogglesCrashAndReconnect()
{
    TcpServer server(AF_INET, "pong\n", 1);
    ServiceUnderTest service(server.port());
    QVERIFY2(service.ready(), "the service's API never answered");
    NodeClient node({"local", "unix:" + service.socket(), {}, {}, {}});
    node.start();
    QTRY_VERIFY_WITH_TIMEOUT(node.view().state == NodeState::Connected, 10000);
    QTRY_VERIFY_WITH_TIMEOUT(node.view().haveStatus, 10000);
    QCOMPARE(node.view().status.rights(), std::string("change"));

    // A real connection through the inspector reaches the client as a flow with its chain.
    const std::string destination = "127.0.0.1:" + std::to_string(server.port());
    QVERIFY(eventually(server, false));
    std::string chain;
    QVERIFY2(sawEnded(node, destination, &chain), "no ended flow to the server reached the client");
    QCOMPARE(chain, "app -> Inspector -> " + destination);

    // A toggle through the client: the next connection goes direct.
    NodeClient::Result r = node.setRuleEnabled("r", false);
    QVERIFY2(r.ok, r.error.c_str());
    QVERIFY(eventually(server, true));
    r = node.setRuleEnabled("r", true);
    QVERIFY2(r.ok, r.error.c_str());
    QVERIFY(eventually(server, false));
    // A bad rule set: refused with its place in the text, nothing changed.
    r = node.applyRules("{\"version\": 1,\n \"rules\": [{\"id\": \"x\", \"action\": \"redirect\"}]}");
    QVERIFY(!r.ok);
    QCOMPARE(r.line, uint32_t(2));
    QVERIFY2(!r.error.empty(), "no reason for a bad rule set");
    QVERIFY(eventually(server, false));

    // The service dies without a word: the client says so at once, no hook of ours is left, and
    // the next connection goes direct.
    const auto killedAt = std::chrono::steady_clock::now();
    service.kill();
    QTRY_VERIFY_WITH_TIMEOUT(node.view().state != NodeState::Connected, 1000);
    qInfo("disconnection seen after %lld ms",
          static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killedAt).count()));
    QTRY_COMPARE_WITH_TIMEOUT(attachedTo(sandbox().cgroup()), std::string(), 10000);  // links go asynchronously
    QVERIFY(eventually(server, true));

    // Back: the client finds the new run by itself within 5 s and gets its table.
    const auto restartedAt = std::chrono::steady_clock::now();
    service.start();
    QTRY_VERIFY_WITH_TIMEOUT(node.view().state == NodeState::Connected, 5000);
    qInfo("reconnected %lld ms after the restart",
          static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - restartedAt).count()));
    QCOMPARE(node.view().epochChanges, uint64_t(1));
    QVERIFY(eventually(server, false));
    QVERIFY2(sawEnded(node, destination, &chain), "no flow of the restarted service reached the client");
    node.stop();
}

void TestNodeClient::udpFlowCarriesDatagramCounts()
{
    UdpSocket server, app;
    QVERIFY2(server.port != 0 && app.fd >= 0, strerror(errno));
    // UDP to the server's port through the inspector, idle after a second. No stall deadline: a
    // heartbeat late on a loaded machine would send a datagram direct (fail-open, tested elsewhere).
    const std::string rules =
        R"({"version":1,"redirectors":[{"id":"inspector","name":"Inspector"}],"rules":[{"id":"u",)"
        R"("action":"redirect","redirector":"inspector","protocol":"udp","ports":")" +
        std::to_string(server.port) + R"(","idle_timeout":1}]})";
    ServiceUnderTest service(rules, {"--stall-deadline", "0"});
    QVERIFY2(service.ready(), "the service's API never answered");
    NodeClient node({"local", "unix:" + service.socket(), {}, {}, {}});
    node.start();
    QTRY_VERIFY_WITH_TIMEOUT(node.view().state == NodeState::Connected, 10000);

    // Three datagrams up, two answered: the server answers whoever sent (the inspector's socket).
    socklen_t len = 0;
    const sockaddr_storage to = loopbackAddress(AF_INET, server.port, &len);
    for (const char* text : {"one", "two", "three"}) {
        QVERIFY2(sendTo(app, to, text), strerror(errno));
        std::string got;
        sockaddr_storage from{};
        QVERIFY2(server.receive(&got, &from), "a datagram did not reach the server");
        QCOMPARE(got, std::string(text));
        if (got != "two") {
            QVERIFY(sendTo(server, from, "re " + got));
            QVERIFY2(app.receive(&got), "an answer did not reach the application");
            QCOMPARE(got, "re " + std::string(text));
        }
    }

    // The flow ends idle; the client reads it from the wire with its protocol and counts.
    const std::string destination = "127.0.0.1:" + std::to_string(server.port);
    std::optional<engine::Flow> flow;
    for (int i = 0; i < 300 && !flow; ++i) {
        std::vector<engine::Flow> flows;
        node.takeFlows(flows);
        for (engine::Flow& f : flows)
            if (f.destination == destination && f.endNs != 0)
                flow = std::move(f);
        if (!flow)
            QThread::msleep(50);
    }
    node.stop();
    QVERIFY2(flow, "no ended UDP flow reached the client");
    QCOMPARE(int(flow->protocol), int(IPPROTO_UDP));
    QCOMPARE(flow->reason, engine::EndReason::Idle);
    QCOMPARE(flow->datagramsUp, uint64_t(3));
    QCOMPARE(flow->datagramsDown, uint64_t(2));
    QVERIFY2(!flow->hops.empty(), flow->chainText().c_str());
    QCOMPARE(flow->hops.front().redirector, std::string("Inspector"));
    QCOMPARE(flow->hops.front().datagramsUp, uint64_t(3));
    QCOMPARE(flow->hops.front().datagramsDown, uint64_t(2));
}

REDIRECT_KERNEL_TEST_MAIN(TestNodeClient)
#include "tst_node_client.moc"

// The console's client of a node, against a real service in the test's sandbox: flows arrive, a
// toggle changes the route of the next real connection, a crash of the service is seen at once
// (and leaves no hook: connections go direct), and a restarted service is found again by itself.
#include <chrono>

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

}  // namespace

class TestNodeClient : public QObject {
    Q_OBJECT

private slots:
    void flowsTogglesCrashAndReconnect();
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

REDIRECT_KERNEL_TEST_MAIN(TestNodeClient)
#include "tst_node_client.moc"

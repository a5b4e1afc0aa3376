// The main window attached to a real service in the sandbox over its Unix socket (offscreen), as
// the console runs: flows appear, a rule's checkbox changes the node's rules and the route of the
// next real connection, the audit log names who did it; exporting the filtered view writes exactly
// the rows shown.
#include <atomic>
#include <chrono>
#include <thread>

#include <QApplication>
#include <QClipboard>
#include <QFile>
#include <QLineEdit>
#include <QSignalSpy>
#include <QTableView>
#include <QTemporaryDir>

#include <unistd.h>

#include "engine_bridge.h"
#include "flow_filter_proxy.h"
#include "flow_model.h"
#include "log_sink.h"
#include "main_window.h"
#include "nodes_view.h"
#include "node_client.h"
#include "rules.h"
#include "rules_model.h"
#include "service_fixture.h"

using namespace redirect;
using namespace redirect::test;

namespace {

std::string exchange(uint16_t port)
{
    int fd = connectLoopback(AF_INET, port);
    if (fd < 0)
        return "connect failed";
    std::string out;
    char buf[64];
    [[maybe_unused]] ssize_t w = ::write(fd, "ping", 4);
    for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;)
        out.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return out;
}

// A real service and the window attached to it, as runGui wires them.
struct Console {
    ServiceUnderTest service;
    std::unique_ptr<client::NodeClient> node;
    gui::FlowModel flows;
    gui::RulesModel rules;
    std::unique_ptr<gui::EngineBridge> bridge;
    std::unique_ptr<gui::MainWindow> window;

    explicit Console(const std::string& rulesJson) : service(rulesJson, {})
    {
        if (!service.ready())
            qFatal("the service's API never answered");
        node = std::make_unique<client::NodeClient>(client::NodeEndpoint{"local", "unix:" + service.socket(), {}, {}, {}});
        node->start();
        bridge = std::make_unique<gui::EngineBridge>(*node, &flows, &rules, std::make_shared<gui::LogSink>());
        window = std::make_unique<gui::MainWindow>(&flows, &rules, bridge.get(), [this] { return allFlows(); });
        window->show();
        bridge->start(100);
    }
    ~Console()
    {
        bridge->stop();
        window.reset();
        node->stop();
    }
    std::vector<engine::Flow> allFlows() const
    {
        std::vector<engine::Flow> out;
        for (int r = 0; r < flows.rowCount(); ++r)
            if (auto f = flows.flowSummary(r))
                out.push_back(*f);
        return out;
    }
    /// Chains of the ended flows the table shows, in row order (arrival, not connect order).
    QStringList endedChains()
    {
        QStringList out;
        for (int r = 0; r < flows.rowCount(); ++r) {
            auto f = flows.flowSummary(r);
            if (f && f->endNs)
                out << QString::fromStdString(f->chainText());
        }
        return out;
    }
    int ruleRow(const QString& id)
    {
        for (int r = 0; r < rules.rowCount(); ++r)
            if (rules.index(r, gui::RulesModel::Id).data(gui::RulesModel::RuleIdRole).toString() == id)
                return r;
        return -1;
    }
    /// The rule as the node runs it now (asked over the API, not the window's own model).
    bool nodeRuleEnabled(const std::string& id)
    {
        std::string error;
        auto set = node->rules(&error);
        if (!set)
            qFatal("GetRules: %s", error.c_str());
        for (const v1::RuleState& r : set->rules())
            if (r.id() == id)
                return r.enabled();
        return false;
    }
};

std::string twoRedirectors(uint16_t port, uint16_t other)
{
    return R"({"version":1,"redirectors":[{"id":"a","name":"A"},{"id":"b","name":"B"}],"rules":[
      {"id":"ra","action":"redirect","redirector":"a","ports":")" + std::to_string(port) + "," +
           std::to_string(other) + R"("},
      {"id":"rb","action":"redirect","redirector":"b","ports":")" + std::to_string(port) + R"("}]})";
}

}  // namespace

class TestMainWindow : public QObject {
    Q_OBJECT

private slots:
    void ruleCheckboxChangesCalloutAndRoute();
    void exportFilteredViewReadsBack();
    void exportCancelLeavesNoFile();
    void serviceCrashIsShownAndTheTableKept();
    void twoNodesInOneTable();
};

void TestMainWindow::ruleCheckboxChangesCalloutAndRoute()
{
    TcpServer server(AF_INET, "pong", 4);
    Console console(twoRedirectors(server.port(), 1));
    std::string dest = "127.0.0.1:" + std::to_string(server.port());
    QTableView* view = console.window->rulesView();
    // The node's rules reach the window with its first status (the client asks once a second).
    QTRY_VERIFY_WITH_TIMEOUT(console.ruleRow("rb") >= 0, 10000);
    const int row = console.ruleRow("rb");
    QVERIFY(console.nodeRuleEnabled("rb"));

    // Every connection goes to the same server, and the table's order is not connect order
    // (flow ids are socket cookies, handed out per CPU): compare the chains as sorted lists,
    // one connection at a time, so that each step shows which route the new one took.
    const QString viaAB = QString::fromStdString("app -> A -> B -> " + dest);
    const QString viaA = QString::fromStdString("app -> A -> " + dest);
    auto sortedChains = [&console] {
        QStringList chains = console.endedChains();
        chains.sort();
        return chains;
    };
    QCOMPARE(exchange(server.port()), std::string("pong"));
    QTRY_COMPARE_WITH_TIMEOUT(sortedChains(), QStringList({viaAB}), 10000);

    // Uncheck "rb" the way a user does: select its checkbox cell, press Space.
    view->setFocus();
    view->setCurrentIndex(console.rules.index(row, gui::RulesModel::Id));
    QTest::keyClick(view, Qt::Key_Space);
    QCOMPARE(console.rules.index(row, gui::RulesModel::Id).data(Qt::CheckStateRole).toInt(), int(Qt::Unchecked));
    QVERIFY(!console.nodeRuleEnabled("rb"));
    QCOMPARE(exchange(server.port()), std::string("pong"));
    QTRY_COMPARE_WITH_TIMEOUT(sortedChains(), QStringList({viaA, viaAB}), 10000);

    // The node's audit log says who did it: this test's uid.
    const std::string audit = readAll(console.service.path("audit.log"));
    QVERIFY2(audit.find("rule rb disabled") != std::string::npos, audit.c_str());
    QVERIFY2(audit.find("\"uid\":" + std::to_string(::getuid()) + ",") != std::string::npos, audit.c_str());

    QTest::keyClick(view, Qt::Key_Space);
    QVERIFY(console.nodeRuleEnabled("rb"));
    QCOMPARE(exchange(server.port()), std::string("pong"));
    QTRY_COMPARE_WITH_TIMEOUT(sortedChains(), QStringList({viaA, viaAB, viaAB}), 10000);

    // Space in the flow table freezes it (and only there: above, it toggled the checkbox).
    console.window->flowView()->setFocus();
    QTest::keyClick(console.window->flowView(), Qt::Key_Space);
    QVERIFY(console.flows.isFrozen());
    QTest::keyClick(console.window->flowView(), Qt::Key_Space);
    QVERIFY(!console.flows.isFrozen());
}

void TestMainWindow::exportFilteredViewReadsBack()
{
    TcpServer shown(AF_INET, "pong", 4), hidden(AF_INET, "pong", 4);
    Console console(twoRedirectors(shown.port(), hidden.port()));
    for (int i = 0; i < 3; ++i)
        QCOMPARE(exchange(shown.port()), std::string("pong"));
    for (int i = 0; i < 2; ++i)
        QCOMPARE(exchange(hidden.port()), std::string("pong"));
    QTRY_COMPARE_WITH_TIMEOUT(console.endedChains().size(), 5, 10000);

    QString portText = QString::number(shown.port());
    console.window->filterEdit()->setText("dest:127.0.0.1:" + portText);
    QTRY_COMPARE_WITH_TIMEOUT(console.window->proxy()->rowCount(), 3, 3000);

    // Ctrl+C copies the selected rows of the view as CSV (header and one line per row).
    console.window->flowView()->setFocus();
    console.window->flowView()->selectAll();
    QTest::keyClick(console.window->flowView(), Qt::Key_C, Qt::ControlModifier);
    QStringList copied = QApplication::clipboard()->text().split("\r\n", Qt::SkipEmptyParts);
    QCOMPARE(copied.size(), 1 + 3);
    QVERIFY(copied[1].contains("127.0.0.1:" + portText));
    // Ctrl+E opens the export dialog.
    QTest::keyClick(console.window.get(), Qt::Key_E, Qt::ControlModifier);
    auto* opened = console.window->findChild<gui::ExportDialog*>();
    QVERIFY(opened && opened->isVisible());

    QTemporaryDir dir;
    QString path = dir.filePath("view.csv");
    gui::ExportDialog* dialog = console.window->exportDialog();
    QSignalSpy done(dialog, &gui::ExportDialog::exportFinished);
    QVERIFY(dialog->startExport(path, /*filteredView=*/true));
    // Not done.wait(): the worker may finish first, and Qt 6.4's wait() only counts later signals.
    QTRY_VERIFY_WITH_TIMEOUT(done.count() > 0, 10000);
    QCOMPARE(done.first().at(0).toBool(), true);

    QFile file(path);
    QVERIFY(file.open(QIODevice::ReadOnly));
    QStringList lines = QString::fromUtf8(file.readAll()).split("\r\n", Qt::SkipEmptyParts);
    QVERIFY(lines.first().startsWith("flow_id,"));
    QCOMPARE(lines.size() - 1, console.window->proxy()->rowCount());
    for (int i = 1; i < lines.size(); ++i) {
        QVERIFY2(lines[i].contains("127.0.0.1:" + portText), qPrintable(lines[i]));
        QVERIFY(!lines[i].contains("127.0.0.1:" + QString::number(hidden.port())));
    }
}

void TestMainWindow::exportCancelLeavesNoFile()
{
    // A large export runs off the GUI thread; Cancel stops it and removes the partial file.
    std::atomic<bool> snapshotTaken{false};
    gui::ExportDialog dialog(
        [&] {
            std::vector<engine::Flow> flows(300000);
            for (size_t i = 0; i < flows.size(); ++i) {
                flows[i].flowId = i + 1;
                flows[i].destination = "10.0.0.1:443";
                flows[i].startNs = 1;
            }
            snapshotTaken = true;
            return flows;
        },
        QString(), "test");
    QTemporaryDir dir;
    QString path = dir.filePath("big.json");
    QSignalSpy progress(&dialog, &gui::ExportDialog::progress);
    QSignalSpy done(&dialog, &gui::ExportDialog::exportFinished);
    // The worker holds at its second progress report until Cancel was pressed: otherwise a
    // fast worker (or a slow GUI thread) finishes the export before Cancel and the test fails.
    std::atomic<bool> pressed{false};
    QObject::connect(
        &dialog, &gui::ExportDialog::progress, &dialog,
        [&pressed](qulonglong written, qulonglong) {
            for (int i = 0; written > 0 && !pressed && i < 2000; ++i)  // bounded: 20 s
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
        },
        Qt::DirectConnection);
    QVERIFY(dialog.startExport(path, false));
    QTRY_VERIFY_WITH_TIMEOUT(progress.count() > 1, 10000);  // the GUI thread keeps running meanwhile
    dialog.cancel();
    pressed = true;
    QTRY_VERIFY_WITH_TIMEOUT(done.count() > 0, 10000);
    QCOMPARE(done.first().at(0).toBool(), false);
    QVERIFY(snapshotTaken);
    QVERIFY(!QFile::exists(path));
}

void TestMainWindow::serviceCrashIsShownAndTheTableKept()
{
    TcpServer server(AF_INET, "pong", 4);
    Console console(twoRedirectors(server.port(), 1));
    QCOMPARE(exchange(server.port()), std::string("pong"));
    QTRY_COMPARE_WITH_TIMEOUT(console.endedChains().size(), 1, 10000);
    QTRY_VERIFY_WITH_TIMEOUT(console.bridge->lastStats().calloutAttached, 10000);
    auto shown = [&console] { return console.bridge->lastStats().node; };
    QCOMPARE(shown(), QStringLiteral("local: connected"));

    // SIGKILL: the window says so within a second (the bridge ticks at 10 Hz), the table stays.
    console.service.kill();
    QTRY_VERIFY_WITH_TIMEOUT(shown() == QStringLiteral("local: reconnecting"), 1000);
    QVERIFY(!console.bridge->lastStats().calloutAttached);
    QCOMPARE(console.endedChains().size(), 1);
    QCOMPARE(exchange(server.port()), std::string("pong"));  // no hook left: direct, and not shown

    // Back: connected again within 5 s, the old row still there and new flows added to it.
    console.service.start();
    QTRY_VERIFY_WITH_TIMEOUT(shown() == QStringLiteral("local: connected"), 5000);
    QCOMPARE(exchange(server.port()), std::string("pong"));
    QTRY_COMPARE_WITH_TIMEOUT(console.endedChains().size(), 2, 10000);
}

// A connection to 127.0.0.1:port made from inside `cgroup` (a process that joins it first): the
// callout of that cgroup's service takes it. The server's answer, or "" when none came.
std::string exchangeFrom(const std::string& cgroup, uint16_t port)
{
    auto [code, out] = run({"/bin/sh", "-c",
                            "echo $$ > '" + cgroup + "/cgroup.procs' && exec /usr/bin/python3 -c \"import socket; "
                            "s = socket.create_connection(('127.0.0.1', " + std::to_string(port) +
                                ")); s.sendall(b'ping'); print(s.recv(16).decode())\""},
                           20000);
    return code == 0 ? out : std::string();
}

void TestMainWindow::twoNodesInOneTable()
{
    // Two services, each in a sandbox of its own (its cgroup, its callout instance), one console.
    TcpServer server(AF_INET, "pong", 4);
    const std::string port = std::to_string(server.port());
    auto rulesOf = [&](const std::string& name) {
        return R"({"version":1,"redirectors":[{"id":"inspector","name":")" + name +
               R"("}],"rules":[{"id":"r","action":"redirect","redirector":"inspector","ports":)" + port + "}]}";
    };
    const std::string cgroupA = sandbox().makeChildCgroup("node-a"), cgroupB = sandbox().makeChildCgroup("node-b");
    ServiceUnderTest a(rulesOf("Inspector A"), {}, cgroupA), b(rulesOf("Inspector B"), {}, cgroupB);
    QVERIFY2(a.ready() && b.ready(), "a service's API never answered");
    client::NodeClient nodeA({"node-a", "unix:" + a.socket(), {}, {}, {}}), nodeB({"node-b", "unix:" + b.socket(), {}, {}, {}});
    nodeA.start();
    nodeB.start();
    gui::FlowModel flows;
    gui::RulesModel rules;
    gui::EngineBridge bridge({&nodeA, &nodeB}, &flows, &rules, std::make_shared<gui::LogSink>());
    gui::MainWindow window(&flows, &rules, &bridge, [] { return std::vector<engine::Flow>{}; });
    window.show();
    bridge.start(100);

    QCOMPARE(exchangeFrom(cgroupA, server.port()), std::string("pong\n"));
    QCOMPARE(exchangeFrom(cgroupB, server.port()), std::string("pong\n"));
    // Both flows in the one table, told apart by Node, each through its own node's inspector.
    auto row = [&](const QString& node) {
        for (int r = 0; r < flows.rowCount(); ++r)
            if (flows.index(r, gui::FlowModel::Node).data().toString() == node && flows.flowSummary(r)->endNs)
                return r;
        return -1;
    };
    QTRY_VERIFY_WITH_TIMEOUT(row("node-a") >= 0 && row("node-b") >= 0, 10000);
    const std::string dest = "127.0.0.1:" + port;
    QCOMPARE(flows.flowSummary(row("node-a"))->chainText(), "app -> Inspector A -> " + dest);
    QCOMPARE(flows.flowSummary(row("node-b"))->chainText(), "app -> Inspector B -> " + dest);
    // The filter's node: field shows one node's rows.
    window.filterEdit()->setText(QStringLiteral("node:node-b"));
    QTRY_COMPARE_WITH_TIMEOUT(window.proxy()->rowCount(), 1, 3000);
    QCOMPARE(window.proxy()->index(0, gui::FlowModel::Node).data().toString(), QStringLiteral("node-b"));
    QVERIFY(bridge.lastStats().node.contains(QStringLiteral("node-b: connected")));
    // The Nodes tab: each node with its state and its callout's scope.
    gui::NodesView* nodes = window.nodesView();
    QTRY_COMPARE_WITH_TIMEOUT(nodes->rowCount(), 2, 5000);
    for (int r = 0; r < 2; ++r) {
        const QString name = nodes->item(r, gui::NodesView::Name)->text();
        QCOMPARE(name, r == 0 ? QStringLiteral("node-a") : QStringLiteral("node-b"));
        QCOMPARE(nodes->item(r, gui::NodesView::State)->text(), QStringLiteral("connected"));
        QCOMPARE(nodes->item(r, gui::NodesView::Scope)->text(),
                 QString::fromStdString(r == 0 ? cgroupA : cgroupB));
        QVERIFY(!nodes->item(r, gui::NodesView::Version)->text().isEmpty());
    }
    bridge.stop();
    nodeA.stop();
    nodeB.stop();
}

int main(int argc, char** argv)
{
    if (!redirect::test::enterSandbox())
        return 1;
    QApplication app(argc, argv);
    TestMainWindow tc;
    QTEST_SET_MAIN_SOURCE_PATH
    return QTest::qExec(&tc, argc, argv);
}

#include "tst_main_window.moc"

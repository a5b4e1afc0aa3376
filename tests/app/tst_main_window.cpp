// The main window attached to a real service in the sandbox over its Unix socket (offscreen), as
// the console runs: flows appear, a rule's checkbox changes the node's rules and the route of the
// next real connection, the audit log names who did it; exporting the filtered view writes exactly
// the rows shown.
#include <atomic>
#include <chrono>
#include <thread>

#include <QAction>
#include <QApplication>
#include <QClipboard>
#include <QComboBox>
#include <QFile>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPointer>
#include <QSettings>
#include <QSignalSpy>
#include <QStatusBar>
#include <QTableView>
#include <QTemporaryDir>

#include <unistd.h>

#include "connect_dialog.h"
#include "engine_bridge.h"
#include "fd_handle.h"
#include "flow_filter_proxy.h"
#include "flow_model.h"
#include "log_sink.h"
#include "main_window.h"
#include "nodes_view.h"
#include "node_client.h"
#include "pki.h"
#include "rules.h"
#include "rules_model.h"
#include "console_fixture.h"
#include "service_fixture.h"

using namespace redirect;
using namespace redirect::test;

class TestMainWindow : public QObject {
    Q_OBJECT

private slots:
    void ruleCheckboxChangesCalloutAndRoute();
    void exportFilteredViewReadsBack();
    void exportCancelLeavesNoFile();
    void serviceCrashIsShownAndTheTableKept();
    void twoNodesInOneTable();
    void refusedToggleIsUndoneAndSaid();
    void connectToNodeAddsAndRemembersARemoteNode();
    void proxyThatDropsRecordsGetsABadge();
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
    QTRY_VERIFY_WITH_TIMEOUT(!console.nodeRuleEnabled("rb"), 10000);  // the node answers off the GUI thread
    QCOMPARE(exchange(server.port()), std::string("pong"));
    QTRY_COMPARE_WITH_TIMEOUT(sortedChains(), QStringList({viaA, viaAB}), 10000);

    // The node's audit log says who did it: this test's uid.
    const std::string audit = readAll(console.service.path("audit.log"));
    QVERIFY2(audit.find("rule rb disabled") != std::string::npos, audit.c_str());
    QVERIFY2(audit.find("\"uid\":" + std::to_string(::getuid()) + ",") != std::string::npos, audit.c_str());

    QTest::keyClick(view, Qt::Key_Space);
    QTRY_VERIFY_WITH_TIMEOUT(console.nodeRuleEnabled("rb"), 10000);
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
    auto rulesOf = [&](const std::string& name, const std::string& more) {
        return R"({"version":1,"redirectors":[{"id":"inspector","name":")" + name +
               R"("}],"rules":[{"id":"r","action":"redirect","redirector":"inspector","ports":)" + port + "}" + more +
               "]}";
    };
    const std::string cgroupA = sandbox().makeChildCgroup("node-a"), cgroupB = sandbox().makeChildCgroup("node-b");
    ServiceUnderTest a(rulesOf("Inspector A", ""), {}, cgroupA),
        b(rulesOf("Inspector B", R"(,{"id":"b-only","action":"bypass","ports":"9"})"), {}, cgroupB);
    QVERIFY2(a.ready() && b.ready(), "a service's API never answered");
    gui::FlowModel flows;
    gui::RulesModel rules;
    QSettings().setValue("rules/preview", false);  // this test's toggles apply at once
    gui::EngineBridge bridge(&flows, &rules, std::make_shared<gui::LogSink>());
    QString error;
    QVERIFY(bridge.addNode({"node-a", "unix:" + a.socket(), {}, {}, {}}, &error));
    QVERIFY(bridge.addNode({"node-b", "unix:" + b.socket(), {}, {}, {}}, &error));
    QVERIFY(!bridge.addNode({"node-b", "unix:" + a.socket(), {}, {}, {}}, &error));  // names are unique
    QCOMPARE(error, QStringLiteral("there is a node named node-b already"));
    QCOMPARE(bridge.nodeNames(), QStringList({"node-a", "node-b"}));
    gui::MainWindow window(&flows, &rules, &bridge, [] { return std::vector<engine::Flow>{}; });
    window.show();
    bridge.start(100);

    QCOMPARE(exchangeFrom(cgroupA, server.port()), std::string("pong\n"));
    QCOMPARE(exchangeFrom(cgroupB, server.port()), std::string("pong\n"));
    // Both flows in the one table, told apart by Node, each through its own node's inspector.
    auto rowsOf = [&](const QString& node) {
        QList<int> rows;
        for (int r = 0; r < flows.rowCount(); ++r)
            if (flows.index(r, gui::FlowModel::Node).data().toString() == node && flows.flowSummary(r)->endNs)
                rows << r;
        return rows;
    };
    QTRY_VERIFY_WITH_TIMEOUT(rowsOf("node-a").size() == 1 && rowsOf("node-b").size() == 1, 10000);
    const std::string dest = "127.0.0.1:" + port;
    QCOMPARE(flows.flowSummary(rowsOf("node-a")[0])->chainText(), "app -> Inspector A -> " + dest);
    QCOMPARE(flows.flowSummary(rowsOf("node-b")[0])->chainText(), "app -> Inspector B -> " + dest);
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

    // The rules panel edits the node selected in the Nodes tab: node-b's rules, and its rule "r" off
    // on node-b only. Node A's connections still go through its inspector; node B's go direct.
    auto ruleRow = [&rules](const QString& id) {
        for (int r = 0; r < rules.rowCount(); ++r)
            if (rules.index(r, gui::RulesModel::Id).data(gui::RulesModel::RuleIdRole).toString() == id)
                return r;
        return -1;
    };
    QTRY_VERIFY_WITH_TIMEOUT(ruleRow("r") >= 0, 10000);
    QCOMPARE(ruleRow("b-only"), -1);  // node-a's rules: the first node is selected at first
    nodes->selectRow(1);
    QCOMPARE(bridge.selectedNode(), QStringLiteral("node-b"));
    QCOMPARE(window.rulesNode()->currentText(), QStringLiteral("node-b"));
    QTRY_VERIFY_WITH_TIMEOUT(ruleRow("b-only") >= 0, 10000);
    QVERIFY(rules.setData(rules.index(ruleRow("r"), gui::RulesModel::Id), Qt::Unchecked, Qt::CheckStateRole));
    client::NodeClient lookA({"a", "unix:" + a.socket(), {}, {}, {}}), lookB({"b", "unix:" + b.socket(), {}, {}, {}});
    auto enabledOn = [](client::NodeClient& node) {
        std::string why;
        auto set = node.rules(&why);
        return set && set->rules_size() > 0 && set->rules(0).enabled();
    };
    QTRY_VERIFY_WITH_TIMEOUT(!enabledOn(lookB), 10000);
    QVERIFY(enabledOn(lookA));
    // And back to node-a through the Rules tab's own chooser.
    window.rulesNode()->setCurrentIndex(0);
    emit window.rulesNode()->activated(0);
    QCOMPARE(bridge.selectedNode(), QStringLiteral("node-a"));
    QTRY_VERIFY_WITH_TIMEOUT(ruleRow("r") >= 0 && ruleRow("b-only") < 0, 10000);
    QCOMPARE(nodes->currentRow(), 0);
    bridge.stop();
}

// A change the node never gets (it is down) comes back: the checkbox shows the node's rule again
// and the window says why.
void TestMainWindow::refusedToggleIsUndoneAndSaid()
{
    TcpServer server(AF_INET, "pong", 4);
    Console console(twoRedirectors(server.port(), 1));
    QTRY_VERIFY_WITH_TIMEOUT(console.ruleRow("rb") >= 0, 10000);
    const QModelIndex cell = console.rules.index(console.ruleRow("rb"), gui::RulesModel::Id);
    console.service.kill();
    QTRY_VERIFY_WITH_TIMEOUT(console.bridge->lastStats().node == QStringLiteral("local: reconnecting"), 5000);
    QVERIFY(console.rules.setData(cell, Qt::Unchecked, Qt::CheckStateRole));
    QTRY_VERIFY_WITH_TIMEOUT(console.window->findChild<QMessageBox*>("commandFailedBox") != nullptr, 20000);
    auto* box = console.window->findChild<QMessageBox*>("commandFailedBox");
    QVERIFY2(box->text().startsWith(QStringLiteral("Rule rb: not changed.")), qPrintable(box->text()));
    QTRY_COMPARE_WITH_TIMEOUT(console.rules.index(console.ruleRow("rb"), gui::RulesModel::Id).data(Qt::CheckStateRole).toInt(),
                              int(Qt::Checked), 5000);
    box->close();
}

// "Connect to node…": a remote node over mutual TLS, checked before it is tried, remembered for
// the next start, and forgotten when removed.
void TestMainWindow::connectToNodeAddsAndRemembersARemoteNode()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    Pki pki(dir, "node");
    QVERIFY2(pki.ok(), "openssl could not make the test CA");
    QVERIFY(pki.issue("server", "/CN=node", "127.0.0.1"));
    QVERIFY(pki.issue("admin", "/CN=alice/OU=redirect-admin"));
    uint16_t port = 0;
    {
        engine::FdHandle reserved(reservePort(AF_INET, &port));  // a free port, let go just before
        QVERIFY(reserved.valid());
    }
    TcpServer server(AF_INET, "pong", 4);
    const std::string cgroup = sandbox().makeChildCgroup("remote");
    ServiceUnderTest remote(ServiceUnderTest::rulesFor(server.port(), true),
                            {"--listen", "127.0.0.1:" + std::to_string(port), "--tls-cert", pki.file("server.pem"),
                             "--tls-key", pki.file("server.key"), "--tls-ca", pki.file("ca.pem"), "--view-group",
                             "redirect-view", "--admin-group", "redirect-admin"},
                            cgroup);
    QVERIFY2(remote.ready(), "the remote service's API never answered");
    // The local node in a cgroup of its own, beside the remote's: each sees only its own connections.
    Console console(twoRedirectors(server.port(), 1), sandbox().makeChildCgroup("local"));
    QSettings settings;
    QVERIFY(gui::rememberedNodes(settings).isEmpty());

    auto openDialog = [&console] {
        console.window->findChild<QAction*>("connectNodeAction")->trigger();
        auto* d = console.window->findChild<gui::ConnectDialog*>("connectDialog");
        if (!d)
            qFatal("no connect dialog");
        return d;
    };
    auto fill = [](gui::ConnectDialog* d, const QString& name, const QString& address, const std::string& ca) {
        d->findChild<QLineEdit*>("nodeName")->setText(name);
        d->findChild<QLineEdit*>("nodeAddress")->setText(address);
        d->findChild<QLineEdit*>("nodeCa")->setText(QString::fromStdString(ca));
    };
    gui::ConnectDialog* dialog = openDialog();
    dialog->findChild<QLineEdit*>("nodeCertificate")->setText(QString::fromStdString(pki.file("admin.pem")));
    dialog->findChild<QLineEdit*>("nodeKey")->setText(QString::fromStdString(pki.file("admin.key")));
    const QString address = QStringLiteral("127.0.0.1:%1").arg(port);
    // Bad input: said in the dialog, nothing added, nothing remembered.
    const std::string missing = dir.filePath("no-such-ca.pem").toStdString();
    for (const auto& [name, addr, ca, why] :
         {std::tuple{QStringLiteral("gw 1"), address, pki.file("ca.pem"), QStringLiteral("without spaces")},
          std::tuple{QStringLiteral("gw"), QStringLiteral("127.0.0.1"), pki.file("ca.pem"), QStringLiteral("HOST:PORT")},
          std::tuple{QStringLiteral("gw"), QStringLiteral("127.0.0.1:70000"), pki.file("ca.pem"), QStringLiteral("HOST:PORT")},
          std::tuple{QStringLiteral("gw"), address, missing, QStringLiteral("does not exist")},
          std::tuple{QStringLiteral("local"), address, pki.file("ca.pem"), QStringLiteral("named local already")}}) {
        fill(dialog, name, addr, ca);
        dialog->accept();
        QVERIFY2(dialog->error().contains(why), qPrintable(dialog->error()));
        QVERIFY(dialog->isVisible());
        QCOMPARE(console.bridge->nodeNames(), QStringList({"local"}));
        QVERIFY(gui::rememberedNodes(settings).isEmpty());
    }
    // Right: the node is watched (its flows in the table, Node "gw"), and remembered.
    fill(dialog, QStringLiteral("gw"), address, pki.file("ca.pem"));
    QPointer<gui::ConnectDialog> guard(dialog);
    dialog->accept();
    QTRY_VERIFY(!guard || !guard->isVisible());
    QCOMPARE(console.bridge->nodeNames(), QStringList({"local", "gw"}));
    settings.sync();
    const QList<client::NodeEndpoint> remembered = gui::rememberedNodes(settings);
    QCOMPARE(remembered.size(), 1);
    QCOMPARE(remembered[0].name, std::string("gw"));
    QCOMPARE(remembered[0].target, address.toStdString());
    QCOMPARE(remembered[0].clientKey, pki.file("admin.key"));
    QCOMPARE(exchangeFrom(cgroup, server.port()), std::string("pong\n"));
    auto gwRows = [&console] {
        int n = 0;
        for (int r = 0; r < console.flows.rowCount(); ++r)
            n += console.flows.index(r, gui::FlowModel::Node).data().toString() == QStringLiteral("gw");
        return n;
    };
    auto gwState = [&console] {
        for (const auto& n : console.bridge->lastStats().nodes)
            if (n.name == QStringLiteral("gw"))
                return n.state + ' ' + n.reason;
        return QStringLiteral("not shown");
    };
    QTRY_VERIFY2_WITH_TIMEOUT(gwRows() >= 1, qPrintable(gwState()), 10000);

    // The next start watches it again.
    {
        gui::FlowModel flows;
        gui::RulesModel rules;
        gui::EngineBridge next(&flows, &rules, std::make_shared<gui::LogSink>());
        gui::addRememberedNodes(next);
        QCOMPARE(next.nodeNames(), QStringList({"gw"}));
        next.start(100);
        QTRY_VERIFY_WITH_TIMEOUT(!next.lastStats().nodes.isEmpty() &&
                                     next.lastStats().nodes[0].state == QStringLiteral("connected"),
                                 10000);
    }

    // Remove: not watched, not remembered.
    gui::NodesView* nodes = console.window->nodesView();
    QTRY_COMPARE_WITH_TIMEOUT(nodes->rowCount(), 2, 5000);
    nodes->selectRow(1);
    QVERIFY(console.window->nodesPage()->removeSelected());
    QCOMPARE(console.bridge->nodeNames(), QStringList({"local"}));
    QVERIFY(gui::rememberedNodes(settings).isEmpty());
    QCOMPARE(console.bridge->selectedNode(), QStringLiteral("local"));
}

// A vendor's proxy that forgets SET (test_proxy --skip-set, in its own process, an external
// redirector): the callout repairs its records, and the console says so where the administrator
// looks: a badge on it in the status bar, and a log line from the node.
void TestMainWindow::proxyThatDropsRecordsGetsABadge()
{
    TcpServer server(AF_INET, "pong", 4);
    // The SDK finds its callout by instance name: the service's (ServiceUnderTest names it).
    Child proxy({"/usr/bin/env", "REDIRECT_CALLOUT_INSTANCE=" + instanceName() + "-svc", binaryPath("test_proxy"),
                 "--id", "77", "--skip-set"});
    const std::string ports = proxy.readLine(10000);
    QVERIFY2(ports.rfind("PORTS ", 0) == 0, ports.c_str());
    const std::string proxyPort = std::to_string(std::stoul(ports.substr(6)));
    Console console(R"({"version":1,"redirectors":[{"id":"vendor","name":"Vendor proxy","external":true,)"
                    R"("listen":["127.0.0.1:)" + proxyPort + R"("],"owner_process":"test_proxy"}],)"
                    R"("rules":[{"id":"r","action":"redirect","redirector":"vendor","ports":)" +
                    std::to_string(server.port()) + "}]}");
    QStringList log;
    QObject::connect(console.bridge.get(), &gui::EngineBridge::logLines,
                     [&log](const QStringList& lines, quint64) { log << lines; });
    auto vendor = [&console] {
        for (const auto& r : console.bridge->lastStats().redirectors)
            if (r.name == QStringLiteral("Vendor proxy"))
                return r;
        return gui::BridgeStats::Redirector{};
    };
    QTRY_VERIFY_WITH_TIMEOUT(vendor().available, 10000);  // its listener verified: the callout sends there
    QCOMPARE(vendor().recordsMissing, quint64(0));
    QCOMPARE(exchange(server.port()), std::string("pong"));
    QTRY_COMPARE_WITH_TIMEOUT(vendor().recordsMissing, quint64(1), 10000);
    auto badge = [&console] {
        for (QLabel* l : console.window->statusBar()->findChildren<QLabel*>())
            if (l->text().contains(QStringLiteral("does not forward redirect records")))
                return l->text();
        return QString();
    };
    QTRY_VERIFY_WITH_TIMEOUT(badge().contains(QStringLiteral("Vendor proxy (external) :%1 ⚠ does not forward redirect "
                                                            "records (1)").arg(QString::fromStdString(proxyPort))),
                             5000);
    QTRY_VERIFY_WITH_TIMEOUT(log.join('\n').contains(QStringLiteral("redirector vendor (Vendor proxy) does not forward "
                                                                    "redirect records: 1 of its connections carried none")),
                             10000);
}

int main(int argc, char** argv) { return redirect::test::consoleTestMain<TestMainWindow>(argc, argv); }

#include "tst_main_window.moc"

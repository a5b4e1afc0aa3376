// A real service in the sandbox and the console's main window attached to it over its Unix
// socket (offscreen), as runGui wires them; shared by the GUI tests that need a live node.
#pragma once

#include <memory>
#include <string>

#include <QApplication>
#include <QSettings>
#include <QTemporaryDir>
#include <QTest>

#include <unistd.h>

#include "engine_bridge.h"
#include "flow_model.h"
#include "log_sink.h"
#include "main_window.h"
#include "node_client.h"
#include "rules_model.h"
#include "service_fixture.h"

namespace redirect::test {

inline std::string exchange(uint16_t port)
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
    std::unique_ptr<client::NodeClient> node;  // the test's own look at the node, beside the window's
    gui::FlowModel flows;
    gui::RulesModel rules;
    std::unique_ptr<gui::EngineBridge> bridge;
    std::unique_ptr<gui::MainWindow> window;

    /// With `cgroup` (a child of the sandbox's), its service covers only that cgroup.
    /// `preview`: rule changes show the node's dry run first (the console's default); off, they
    /// apply at once.
    explicit Console(const std::string& rulesJson, const std::string& cgroup = {}, bool preview = false)
        : service(rulesJson, {}, cgroup)
    {
        QSettings().setValue("rules/preview", preview);
        if (!service.ready())
            qFatal("the service's API never answered");
        node = std::make_unique<client::NodeClient>(client::NodeEndpoint{"local", "unix:" + service.socket(), {}, {}, {}});
        node->start();
        bridge = std::make_unique<gui::EngineBridge>(&flows, &rules, std::make_shared<gui::LogSink>());
        QString error;
        if (!bridge->addNode({"local", "unix:" + service.socket(), {}, {}, {}}, &error))
            qFatal("addNode: %s", qPrintable(error));
        window = std::make_unique<gui::MainWindow>(&flows, &rules, bridge.get(), [this] { return allFlows(); });
        window->show();
        bridge->start(100);
    }
    ~Console()
    {
        bridge->stop();
        window.reset();
        bridge.reset();
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

inline std::string twoRedirectors(uint16_t port, uint16_t other)
{
    return R"({"version":1,"redirectors":[{"id":"a","name":"A"},{"id":"b","name":"B"}],"rules":[
      {"id":"ra","action":"redirect","redirector":"a","ports":")" + std::to_string(port) + "," +
           std::to_string(other) + R"("},
      {"id":"rb","action":"redirect","redirector":"b","ports":")" + std::to_string(port) + R"("}]})";
}

/// One redirector A that takes the connections to `port` (rule "ra").
inline std::string oneRedirector(uint16_t port)
{
    return R"({"version":1,"redirectors":[{"id":"a","name":"A"}],"rules":[
      {"id":"ra","action":"redirect","redirector":"a","ports":")" + std::to_string(port) + R"("}]})";
}

/// main() of a GUI test on live nodes: the sandbox, the application, and settings of this run
/// only (window layout, remembered nodes, saved filters), gone with it.
template <typename TestObject>
int consoleTestMain(int argc, char** argv)
{
    if (!enterSandbox())
        return 1;
    QApplication app(argc, argv);
    QTemporaryDir settingsDir;
    QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, settingsDir.path());
    QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, settingsDir.path());
    TestObject tc;
    QTEST_SET_MAIN_SOURCE_PATH
    return QTest::qExec(&tc, argc, argv);
}

}  // namespace redirect::test

// EngineBridge: each tick drains flows into the flow model, rule hits into the rules model and
// log lines from the ring-buffer sink, and signals stats only when they changed.
#include <map>

#include <QAbstractItemModelTester>
#include <QSignalSpy>
#include <QTest>

#include <spdlog/logger.h>

#include "engine_bridge.h"
#include "flow_model.h"
#include "log_sink.h"
#include "rules_model.h"

using redirect::engine::Flow;
using redirect::gui::BridgeStats;
using redirect::gui::EngineBridge;
using redirect::gui::FlowModel;
using redirect::gui::LogSink;
using redirect::gui::RulesModel;

namespace {

Flow flowWithId(uint64_t id)
{
    Flow flow;
    flow.flowId = id;
    flow.startNs = 1'700'000'000'000'000'000 + static_cast<int64_t>(id);
    flow.comm = "curl";
    return flow;
}

}  // namespace

class TestEngineBridge : public QObject {
    Q_OBJECT
private slots:
    void drainsOnTick();
};

void TestEngineBridge::drainsOnTick()
{
    FlowModel flows;
    RulesModel rules;
    QAbstractItemModelTester flowTester(&flows, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QAbstractItemModelTester rulesTester(&rules, QAbstractItemModelTester::FailureReportingMode::QtTest);
    redirect::engine::RuleSpec web;
    web.id = "web";
    redirect::engine::RuleSet set;
    set.rules = {web};
    rules.setRules(set);
    auto sink = std::make_shared<LogSink>(100);
    spdlog::logger logger("bridge", sink);
    logger.set_pattern("%v");

    uint64_t nextId = 1;
    std::map<std::string, redirect::engine::RuleHits> hits;
    BridgeStats stats;
    EngineBridge bridge(
        [&](std::vector<Flow>& out) {
            for (int i = 0; i < 3; ++i)
                out.push_back(flowWithId(nextId++));
            return out.size();
        },
        &flows, &rules, sink);
    bridge.setHitsSource([&] { return hits; });
    bridge.setStatsSource([&] { return stats; });
    QSignalSpy ticked(&bridge, &EngineBridge::ticked);
    QSignalSpy logged(&bridge, &EngineBridge::logLines);
    QSignalSpy statsSpy(&bridge, &EngineBridge::statsChanged);

    logger.info("one");
    logger.info("two");
    hits["web"] = {5, 1};
    bridge.tick();
    QCOMPARE(flows.rowCount(), 3);
    QCOMPARE(rules.index(0, RulesModel::Hits).data().toString(), QStringLiteral("5 / 1"));
    QCOMPARE(logged.count(), 1);
    QCOMPARE(logged.at(0).at(0).toStringList(), (QStringList{"one", "two"}));
    QCOMPARE(statsSpy.count(), 1);
    QCOMPARE(ticked.count(), 1);

    bridge.tick();   // no log lines and the same stats: no signals for them
    QCOMPARE(flows.rowCount(), 6);
    QCOMPARE(logged.count(), 1);
    QCOMPARE(statsSpy.count(), 1);
    stats.calloutAttached = true;
    stats.redirectors.append({QStringLiteral("dlp"), 15001, 0, false, true, 2, 10, 20, true, QStringLiteral("listening")});
    bridge.tick();
    QCOMPARE(statsSpy.count(), 2);
    QCOMPARE(statsSpy.at(1).at(0).value<BridgeStats>().redirectors.size(), 1);

    bridge.start(10);
    QTRY_VERIFY(bridge.tickCount() >= 8);
    bridge.stop();
    QVERIFY(bridge.longestGapMs() >= 5);   // gaps are measured between timer ticks
    QCOMPARE(flows.rowCount(), static_cast<int>(nextId - 1));
}

QTEST_GUILESS_MAIN(TestEngineBridge)
#include "tst_engine_bridge.moc"

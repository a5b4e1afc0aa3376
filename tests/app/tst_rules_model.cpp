// RulesModel: rules in order, live toggles through the engine, reordering
// through a whole new rule set, hits refreshed with one dataChanged.
#include <QAbstractItemModelTester>
#include <QSignalSpy>
#include <QTest>

#include <netinet/in.h>

#include "rules_model.h"

using redirect::engine::RuleAction;
using redirect::engine::RuleHits;
using redirect::engine::RuleSet;
using redirect::engine::RuleSpec;
using redirect::gui::RulesModel;

namespace {

RuleSet makeRules()
{
    RuleSet set;
    redirect::engine::RedirectorSpec dlp;
    dlp.id = "dlp";
    dlp.name = "DLP proxy";
    set.redirectors.push_back(dlp);

    RuleSpec web;
    web.id = "web";
    web.redirector = "dlp";
    web.destination.push_back({AF_INET, 8, {10}});
    web.ports = {{443, 443}, {8000, 8100}};
    web.process = "curl";
    RuleSpec local;
    local.id = "local";
    local.action = RuleAction::Bypass;
    local.redirector.clear();
    local.enabled = false;
    local.uid = 1000;
    local.user = "alice";
    RuleSpec rest;
    rest.id = "rest";
    rest.redirector = "dlp";
    rest.expiresNs = 1'700'000'000'000'000'000;
    set.rules = {web, local, rest};
    return set;
}

QStringList idsOf(const RulesModel& model)
{
    QStringList ids;
    for (int row = 0; row < model.rowCount(); ++row)
        ids << model.index(row, RulesModel::Id).data(RulesModel::RuleIdRole).toString();
    return ids;
}

}  // namespace

class TestRulesModel : public QObject {
    Q_OBJECT
private slots:
    void columns();
    void udpAndBlockRules();
    void toggle_data();
    void toggle();
    void move_data();
    void move();
    void hitsChangeOnlyTheirColumn();
};

void TestRulesModel::columns()
{
    RulesModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.setRules(makeRules());
    QCOMPARE(idsOf(model), (QStringList{"web", "local", "rest"}));
    const auto text = [&](int row, int column) { return model.index(row, column).data().toString(); };
    QCOMPARE(text(0, RulesModel::Action), QStringLiteral("redirect"));
    QCOMPARE(text(1, RulesModel::Action), QStringLiteral("bypass"));
    QCOMPARE(text(0, RulesModel::Redirector), QStringLiteral("DLP proxy"));
    QCOMPARE(text(1, RulesModel::Redirector), QString());
    QCOMPARE(text(0, RulesModel::Match), QStringLiteral("dest 10.0.0.0/8 ports 443,8000-8100 process curl"));
    QCOMPARE(text(1, RulesModel::Match), QStringLiteral("user alice"));
    QCOMPARE(text(2, RulesModel::Match), QStringLiteral("any"));
    QCOMPARE(text(0, RulesModel::Expires), QStringLiteral("never"));
    QCOMPARE(model.index(2, RulesModel::Expires).data(RulesModel::RawRole).toLongLong(), 1'700'000'000'000'000'000ll);
    QCOMPARE(model.index(0, RulesModel::Id).data(Qt::CheckStateRole).value<Qt::CheckState>(), Qt::Checked);
    QCOMPARE(model.index(1, RulesModel::Id).data(Qt::CheckStateRole).value<Qt::CheckState>(), Qt::Unchecked);
    QVERIFY(model.flags(model.index(0, RulesModel::Id)) & Qt::ItemIsUserCheckable);
    QVERIFY(!(model.flags(model.index(0, RulesModel::Match)) & Qt::ItemIsUserCheckable));
}

void TestRulesModel::udpAndBlockRules()
{
    RuleSet set = makeRules();
    RuleSpec noQuic;
    noQuic.id = "no-quic";
    noQuic.action = RuleAction::Block;
    noQuic.redirector.clear();
    noQuic.protocol = IPPROTO_UDP;
    noQuic.ports = {{443, 443}};
    RuleSpec dns;
    dns.id = "dns";
    dns.redirector = "dlp";
    dns.protocol = 0;  // any
    dns.ports = {{53, 53}};
    dns.idleTimeoutS = 30;
    set.rules = {noQuic, dns};
    RulesModel model;
    model.setRules(set);
    const auto text = [&](int row, int column) { return model.index(row, column).data().toString(); };
    QCOMPARE(text(0, RulesModel::Action), QStringLiteral("block"));
    QCOMPARE(text(0, RulesModel::Redirector), QString());
    QCOMPARE(text(0, RulesModel::Match), QStringLiteral("udp ports 443"));
    QCOMPARE(text(1, RulesModel::Action), QStringLiteral("redirect"));
    QCOMPARE(text(1, RulesModel::Match), QStringLiteral("tcp+udp ports 53 idle 30 s"));
}

void TestRulesModel::toggle_data()
{
    QTest::addColumn<int>("row");
    QTest::addColumn<bool>("accepted");
    QTest::newRow("disable, engine agrees") << 0 << true;
    QTest::newRow("disable, engine refuses") << 0 << false;
    QTest::newRow("enable, engine agrees") << 1 << true;
    QTest::newRow("enable, engine refuses") << 1 << false;
}

void TestRulesModel::toggle()
{
    QFETCH(int, row);
    QFETCH(bool, accepted);
    RulesModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.setRules(makeRules());
    std::vector<std::pair<std::string, bool>> calls;
    model.setToggler([&](const std::string& id, bool enabled) {
        calls.emplace_back(id, enabled);
        return accepted;
    });
    QSignalSpy changed(&model, &QAbstractItemModel::dataChanged);
    const QModelIndex cell = model.index(row, RulesModel::Id);
    const bool wasEnabled = cell.data(Qt::CheckStateRole).value<Qt::CheckState>() == Qt::Checked;

    QCOMPARE(model.setData(cell, wasEnabled ? Qt::Unchecked : Qt::Checked, Qt::CheckStateRole), accepted);
    const std::string id = makeRules().rules[static_cast<size_t>(row)].id;
    QCOMPARE(calls, (std::vector<std::pair<std::string, bool>>{{id, !wasEnabled}}));
    const bool nowEnabled = cell.data(Qt::CheckStateRole).value<Qt::CheckState>() == Qt::Checked;
    QCOMPARE(nowEnabled, accepted ? !wasEnabled : wasEnabled);
    QCOMPARE(model.rules().rules[static_cast<size_t>(row)].enabled, nowEnabled);
    QCOMPARE(changed.count(), accepted ? 1 : 0);
}

void TestRulesModel::move_data()
{
    QTest::addColumn<bool>("up");
    QTest::addColumn<int>("row");
    QTest::addColumn<bool>("accepted");
    QTest::addColumn<QStringList>("order");
    QTest::addColumn<int>("applierCalls");
    QTest::newRow("up") << true << 1 << true << QStringList{"local", "web", "rest"} << 1;
    QTest::newRow("down") << false << 1 << true << QStringList{"web", "rest", "local"} << 1;
    QTest::newRow("refused") << false << 0 << false << QStringList{"web", "local", "rest"} << 1;
    QTest::newRow("top edge") << true << 0 << true << QStringList{"web", "local", "rest"} << 0;
    QTest::newRow("bottom edge") << false << 2 << true << QStringList{"web", "local", "rest"} << 0;
}

void TestRulesModel::move()
{
    QFETCH(bool, up);
    QFETCH(int, row);
    QFETCH(bool, accepted);
    QFETCH(QStringList, order);
    QFETCH(int, applierCalls);
    RulesModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.setRules(makeRules());
    std::vector<RuleSet> applied;
    model.setApplier([&](const RuleSet& set) {
        applied.push_back(set);
        return accepted;
    });
    QSignalSpy moved(&model, &QAbstractItemModel::rowsMoved);

    const bool changed = up ? model.moveUp(row) : model.moveDown(row);
    const bool orderChanged = order != QStringList{"web", "local", "rest"};
    QCOMPARE(changed, orderChanged);
    QCOMPARE(idsOf(model), order);
    QCOMPARE(moved.count(), orderChanged ? 1 : 0);
    QCOMPARE(static_cast<int>(applied.size()), applierCalls);
    if (!applied.empty()) {
        QCOMPARE(applied[0].redirectors, makeRules().redirectors);
        QCOMPARE(applied[0].rules.size(), size_t{3});
    }
    if (orderChanged)
        QCOMPARE(applied[0], model.rules());
}

void TestRulesModel::hitsChangeOnlyTheirColumn()
{
    RulesModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.setRules(makeRules());
    QSignalSpy changed(&model, &QAbstractItemModel::dataChanged);
    QSignalSpy reset(&model, &QAbstractItemModel::modelReset);

    std::map<std::string, RuleHits> hits{{"local", {0, 4}}, {"rest", {9, 0}}};
    model.setHits(hits);
    QCOMPARE(changed.count(), 1);
    QCOMPARE(changed.at(0).at(0).value<QModelIndex>(), model.index(1, RulesModel::Hits));
    QCOMPARE(changed.at(0).at(1).value<QModelIndex>(), model.index(2, RulesModel::Hits));
    QCOMPARE(model.index(1, RulesModel::Hits).data().toString(), QStringLiteral("0 / 4"));
    QCOMPARE(model.index(2, RulesModel::Hits).data(RulesModel::RawRole).toULongLong(), 9ull);
    QCOMPARE(model.index(0, RulesModel::Hits).data().toString(), QStringLiteral("0 / 0"));

    model.setHits(hits);   // nothing new: no signal
    QCOMPARE(changed.count(), 1);
    hits["web"] = {1, 0};
    model.setHits(hits);
    QCOMPARE(changed.count(), 2);
    QCOMPARE(changed.at(1).at(0).value<QModelIndex>(), model.index(0, RulesModel::Hits));
    QCOMPARE(changed.at(1).at(1).value<QModelIndex>(), model.index(0, RulesModel::Hits));
    QCOMPARE(reset.count(), 0);
}

QTEST_GUILESS_MAIN(TestRulesModel)
#include "tst_rules_model.moc"

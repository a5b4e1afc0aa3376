// "Why" in the flow table: the Rule and Route columns, per-hop rules in the tooltip, row colours by
// end reason and verdict (the same as the legend's), direct connections behind their switch, the
// Capture > Clear of the model, the filter's completion and saved filters, and the datagrams of a
// UDP flow's hops in the details pane and the chain drawing.
#include <QAbstractItemModelTester>
#include <QApplication>
#include <QCompleter>
#include <QLabel>
#include <QLineEdit>
#include <QSettings>
#include <QTemporaryDir>
#include <QTest>

#include <netinet/in.h>

#include "chain_view.h"
#include "engine_bridge.h"
#include "flow_details.h"
#include "filter_completer.h"
#include "flow_colors.h"
#include "flow_filter_proxy.h"
#include "flow_model.h"
#include "report.h"

using redirect::engine::EndReason;
using redirect::engine::Flow;
using redirect::engine::Hop;
using namespace redirect::gui;

namespace {

constexpr int64_t kBaseNs = 1'700'000'000'000'000'000;

Hop hopOf(uint32_t id, const char* name, const char* rule, uint8_t state, bool recordsMissing = false)
{
    Hop hop;
    hop.redirectorId = id;
    hop.redirector = name;
    hop.rule = rule;
    hop.state = state;
    hop.recordsMissing = recordsMissing;
    return hop;
}

Flow chainFlow(uint64_t id, EndReason reason)
{
    Flow flow;
    flow.flowId = id;
    flow.startNs = kBaseNs + int64_t(id);
    flow.comm = "curl";
    flow.destination = "10.0.0.1:443";
    flow.verdict = "redirect";
    flow.rule = "to-dlp";
    flow.hops = {hopOf(1, "dlp", "to-dlp", 0), hopOf(2, "av", "to-av", 2, true), Hop{}};
    flow.reason = reason;
    if (reason != EndReason::Open)
        flow.endNs = flow.startNs + 1000;
    return flow;
}

Flow directFlow(uint64_t id, const char* verdict, const char* rule, EndReason reason = EndReason::Open)
{
    Flow flow;
    flow.flowId = id;
    flow.startNs = kBaseNs + int64_t(id);
    flow.comm = "wget";
    flow.destination = "10.0.0.2:8080";
    flow.verdict = verdict;
    flow.rule = rule;
    flow.reason = reason;
    if (reason != EndReason::Open)
        flow.endNs = flow.startNs + 1000;
    return flow;
}

QString text(const FlowModel& model, int row, int column, int role = Qt::DisplayRole)
{
    return model.index(row, column).data(role).toString();
}

}  // namespace

class TestFlowWhy : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void ruleAndRouteColumns();
    void coloursFollowReasonAndVerdictLikeTheLegend();
    void directFlowsOnlyWhenAsked();
    void clearForgetsRows();
    void filterFieldsForTheNewColumns();
    void completionOfFieldsAndValues();
    void savedFiltersSurviveAndApply();
    void udpDatagramsPerHopInDetails();

private:
    QTemporaryDir settingsDir_;
};

void TestFlowWhy::initTestCase()
{
    // Saved filters go to QSettings: a directory of this test's own, never the user's.
    QVERIFY(settingsDir_.isValid());
    QSettings::setDefaultFormat(QSettings::IniFormat);
    QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, settingsDir_.path());
    QCoreApplication::setOrganizationName("redirect-console-test");
    QCoreApplication::setApplicationName("tst_flow_why");
}

void TestFlowWhy::ruleAndRouteColumns()
{
    FlowModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.applyBatch({chainFlow(1, EndReason::Closed), directFlow(2, "direct", ""), directFlow(3, "bypass", "corp")});
    QCOMPARE(model.headerData(FlowModel::Rule, Qt::Horizontal).toString(), QStringLiteral("Rule"));
    QCOMPARE(model.headerData(FlowModel::Route, Qt::Horizontal).toString(), QStringLiteral("Route"));
    QCOMPARE(text(model, 0, FlowModel::Rule), QStringLiteral("to-dlp"));
    // Not the first hop's NOT_REDIRECTED: what the chain was, and who broke the records.
    QCOMPARE(text(model, 0, FlowModel::Route), QStringLiteral("2 hops, records missing at av"));
    const QString tip = text(model, 0, FlowModel::Rule, Qt::ToolTipRole);
    QVERIFY2(tip.contains("dlp: rule to-dlp, NOT_REDIRECTED"), qPrintable(tip));
    QVERIFY2(tip.contains("av: rule to-av, REDIRECTED_BY_OTHER, did not forward the records"), qPrintable(tip));
    QCOMPARE(text(model, 1, FlowModel::Route), QStringLiteral("direct, no rule"));
    QCOMPARE(text(model, 1, FlowModel::Rule), QString());
    QVERIFY(text(model, 1, FlowModel::Rule, Qt::ToolTipRole).contains("no rule matched"));
    QCOMPARE(text(model, 2, FlowModel::Route), QStringLiteral("direct, bypass rule"));
    QCOMPARE(text(model, 2, FlowModel::Rule), QStringLiteral("corp"));
    // Long cells carry their whole text as a tooltip (the view elides them).
    QCOMPARE(text(model, 0, FlowModel::Chain, Qt::ToolTipRole), text(model, 0, FlowModel::Chain));
}

void TestFlowWhy::coloursFollowReasonAndVerdictLikeTheLegend()
{
    FlowModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.applyBatch({chainFlow(1, EndReason::Open), chainFlow(2, EndReason::Closed), chainFlow(3, EndReason::Reset),
                      chainFlow(4, EndReason::Refused), chainFlow(5, EndReason::HopCap),
                      directFlow(6, "direct", ""), directFlow(7, "bypass", "corp", EndReason::Closed)});
    const FlowKind expected[] = {FlowKind::Open,   FlowKind::Ended,  FlowKind::Reset,      FlowKind::Refused,
                                 FlowKind::Failed, FlowKind::Direct, FlowKind::DirectEnded};
    std::set<std::pair<QRgb, QRgb>> looks;
    for (int row = 0; row < 7; ++row) {
        FlowLook look = flowLookOf(expected[row]);
        QVariant fg = model.index(row, FlowModel::Process).data(Qt::ForegroundRole);
        QVariant bg = model.index(row, FlowModel::Process).data(Qt::BackgroundRole);
        QCOMPARE(fg.isValid(), look.foreground.isValid());
        QCOMPARE(bg.isValid(), look.background.isValid());
        if (fg.isValid())
            QCOMPARE(fg.value<QColor>(), look.foreground);
        if (bg.isValid())
            QCOMPARE(bg.value<QColor>(), look.background);
        looks.insert({look.foreground.rgba(), look.background.rgba()});
    }
    // Told apart at a glance: every kind looks different, and the legend names each one.
    QCOMPARE(looks.size(), size_t(7));
    QCOMPARE(flowLegend().size(), size_t(7));
}

void TestFlowWhy::directFlowsOnlyWhenAsked()
{
    FlowModel model;
    FlowFilterProxy proxy;
    proxy.setSourceModel(&model);
    QAbstractItemModelTester tester(&proxy, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.applyBatch({chainFlow(1, EndReason::Open), directFlow(2, "direct", ""), directFlow(3, "bypass", "corp"),
                      directFlow(4, "stalled", "to-dlp")});
    QCOMPARE(proxy.rowCount(), 1);
    proxy.setShowDirect(true);
    QCOMPARE(proxy.rowCount(), 4);
    QVERIFY(proxy.setFilterText("verdict:bypass"));
    QCOMPARE(proxy.rowCount(), 1);
    proxy.setShowDirect(false);
    QCOMPARE(proxy.rowCount(), 0);
}

void TestFlowWhy::clearForgetsRows()
{
    FlowModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.applyBatch({chainFlow(1, EndReason::Open), chainFlow(2, EndReason::Closed)});
    model.setFrozen(true);
    model.applyBatch({chainFlow(3, EndReason::Open)});
    model.clear();
    QCOMPARE(model.rowCount(), 0);
    QCOMPARE(model.pendingCount(), size_t(0));
    model.setFrozen(false);
    QCOMPARE(model.rowCount(), 0);
    // An open flow's next update brings it back.
    model.applyBatch({chainFlow(1, EndReason::Closed)});
    QCOMPARE(model.rowCount(), 1);
    QCOMPARE(model.flowIdAt(0), 1ull);
}

void TestFlowWhy::filterFieldsForTheNewColumns()
{
    auto matches = [](const char* filter, const Flow& flow) {
        std::string error;
        auto parsed = redirect::engine::FlowFilter::parse(filter, &error);
        if (!parsed)
            qFatal("%s: %s", filter, error.c_str());
        return parsed->matches(flow);
    };
    const Flow chain = chainFlow(1, EndReason::Closed);
    QVERIFY(matches("port:443", chain));
    QVERIFY(!matches("port:44", chain));
    QVERIFY(matches("rule:to-av", chain));  // the second hop's rule
    QVERIFY(matches("route:\"records missing\"", chain));
    QVERIFY(!matches("route:direct", chain));
    Flow v6 = directFlow(2, "direct", "");
    v6.destination = "[::1]:8443";
    QVERIFY(matches("port:8443", v6));
    std::string error;
    QVERIFY(!redirect::engine::FlowFilter::parse("port:70000", &error));
    QVERIFY(error.find("port") != std::string::npos);
}

void TestFlowWhy::completionOfFieldsAndValues()
{
    FlowModel model;
    model.applyBatch({chainFlow(1, EndReason::Closed), directFlow(2, "direct", "")});
    EngineBridge bridge([](std::vector<Flow>&) { return size_t(0); }, &model);
    QLineEdit edit;
    FilterCompleter completer(&edit, &model, &bridge);
    QCOMPARE(completer.candidates("po"), QStringList{"port:"});
    QCOMPARE(completer.candidates("proto"), QStringList{"protocol:"});
    QCOMPARE(completer.candidates("-protocol:U"), QStringList{"-protocol:udp"});
    QCOMPARE(completer.candidates("-ver"), QStringList{"-verdict:"});
    QCOMPARE(completer.candidates("verdict:d"), QStringList{"verdict:direct"});
    QCOMPARE(completer.candidates("reason:re"), (QStringList{"reason:reset", "reason:refused"}));
    QCOMPARE(completer.candidates("comm:c"), QStringList{"comm:curl"});
    QCOMPARE(completer.candidates("port:80"), QStringList{"port:8080"});
    QVERIFY(completer.candidates("nosuchfield:").isEmpty());

    // Choosing a completion replaces the word being typed, not the whole filter.
    edit.setText("comm:curl verd");
    edit.setCursorPosition(int(edit.text().size()));
    emit completer.completer()->activated(QStringLiteral("verdict:"));
    QCOMPARE(edit.text(), QStringLiteral("comm:curl verdict:"));
}

void TestFlowWhy::savedFiltersSurviveAndApply()
{
    QLineEdit edit;
    {
        SavedFilters saved(&edit);
        QVERIFY(!saved.save("", "comm:curl"));
        QVERIFY(!saved.save("empty", "  "));
        QVERIFY(saved.save("web resets", "port:443 reason:reset"));
        QCOMPARE(saved.names(), QStringList{"web resets"});
    }
    SavedFilters again(&edit);  // a new window: the saved filter is still there
    QCOMPARE(again.names(), QStringList{"web resets"});
    QVERIFY(again.apply("web resets"));
    QCOMPARE(edit.text(), QStringLiteral("port:443 reason:reset"));
    QVERIFY(!again.apply("nothing"));
    again.remove("web resets");
    QVERIFY(again.names().isEmpty());
}

void TestFlowWhy::udpDatagramsPerHopInDetails()
{
    // A UDP flow: each hop's datagrams in the details line and in the drawing, where a TCP hop
    // shows its connect time; a TCP flow shows no datagram line at all (not zeros).
    Flow udp = chainFlow(1, EndReason::Idle);
    udp.protocol = IPPROTO_UDP;
    udp.destination = "10.0.0.53:53";
    udp.datagramsUp = 3, udp.datagramsDown = 2;
    udp.hops[0].datagramsUp = 3, udp.hops[0].datagramsDown = 2;
    udp.hops[1].datagramsUp = 3, udp.hops[1].datagramsDown = 1;
    udp.hops[2].datagramsUp = 3, udp.hops[2].datagramsDown = 1;
    FlowDetails details;
    details.show();
    details.setFlow(udp);
    QVERIFY(details.datagramsLabel()->isVisible());
    QCOMPARE(details.datagramsLabel()->text(), QStringLiteral("UDP datagrams up / down per hop: 3 / 2 → 3 / 1 → 3 / 1"));
    const QString drawn = details.chainView()->accessibleDescription();
    QVERIFY2(drawn.contains(QStringLiteral("dlp, via rule to-dlp, NOT_REDIRECTED, datagrams ↑3 ↓2")), qPrintable(drawn));
    QVERIFY2(drawn.contains(QStringLiteral("udp 10.0.0.53:53, idle,")), qPrintable(drawn));
    QVERIFY2(drawn.endsWith(QStringLiteral("datagrams ↑3 ↓2")), qPrintable(drawn));
    QVERIFY2(!drawn.contains(QStringLiteral("connect")), qPrintable(drawn));

    Flow tcp = chainFlow(2, EndReason::Closed);
    tcp.hops[0].connectMs = 1.5;
    details.setFlow(tcp);
    QVERIFY(!details.datagramsLabel()->isVisible());
    const QString tcpDrawn = details.chainView()->accessibleDescription();
    QVERIFY2(!tcpDrawn.contains(QStringLiteral("datagrams")), qPrintable(tcpDrawn));
    QVERIFY2(tcpDrawn.contains(QStringLiteral("connect 1.5 ms")), qPrintable(tcpDrawn));
    details.setFlow(std::nullopt);
    QVERIFY(!details.datagramsLabel()->isVisible());
    QCOMPARE(details.chainView()->accessibleDescription(), QString());
}

QTEST_MAIN(TestFlowWhy)
#include "tst_flow_why.moc"

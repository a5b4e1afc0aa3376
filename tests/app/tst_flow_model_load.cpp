// Load: 100,000 flows in the table, then 40 bridge ticks of 500 new flows each
// (the previous tick's flows ending) into a shown, sorted and filtered
// QTableView (and the same on 2,000 rows under QAbstractItemModelTester). Functional checks only: the retention cap evicts exactly the
// oldest ended flows, every new flow is there with its latest state, the view
// stays filtered and sorted, the model stays consistent, memory per flow stays
// bounded. How fast this goes is tests/bench/bench_flow_model's business.
#include <QAbstractItemModelTester>
#include <QSignalSpy>
#include <QTableView>
#include <QTest>

#include "engine_bridge.h"
#include "flow_filter_proxy.h"
#include "flow_model.h"
#include "report.h"
#include "flow_table_load.h"

using redirect::engine::Flow;
using redirect::engine::FlowFilter;
using redirect::gui::EngineBridge;
using redirect::gui::FlowFilterProxy;
using redirect::gui::FlowModel;
using redirect::test::fillTable;
using redirect::test::showTable;
using redirect::test::syntheticFlow;

namespace {

// Each call: the flows of the previous call end, perTick_ new ones start.
class TickSource {
public:
    TickSource(uint64_t firstId, int perTick) : next_(firstId), perTick_(perTick) {}

    size_t operator()(std::vector<Flow>& out)
    {
        for (uint64_t id : open_)
            out.push_back(syntheticFlow(id, true));
        open_.clear();
        for (int i = 0; i < perTick_; ++i) {
            out.push_back(syntheticFlow(next_, false));
            open_.push_back(next_++);
        }
        return out.size();
    }

    uint64_t next() const { return next_; }
    /// Started by the last call and not ended yet (their ids are consecutive).
    bool isOpen(uint64_t id) const { return !open_.empty() && id >= open_.front() && id <= open_.back(); }

private:
    uint64_t next_;
    int perTick_;
    std::vector<uint64_t> open_;
};

}  // namespace

class TestFlowModelLoad : public QObject {
    Q_OBJECT
private slots:
    void steadyLoad_data();
    void steadyLoad();
};

void TestFlowModelLoad::steadyLoad_data()
{
    QTest::addColumn<int>("sortColumn");
    QTest::addColumn<QString>("filter");
    QTest::addColumn<int>("rows");
    QTest::addColumn<int>("perTick");
    QTest::addColumn<bool>("modelTester");
    const QString curlNotReset = QStringLiteral("comm:curl -reason:reset");
    QTest::newRow("sorted by time") << int(FlowModel::Time) << QString() << 100000 << 500 << false;
    QTest::newRow("sorted by bytes down, filtered") << int(FlowModel::BytesDown) << curlNotReset << 100000 << 500 << false;
    // QAbstractItemModelTester checks every signal against the model, which takes seconds a
    // tick at 100,000 rows: it watches the same kind of load on a table of 2,000.
    QTest::newRow("2,000 rows under QAbstractItemModelTester")
        << int(FlowModel::BytesDown) << curlNotReset << 2000 << 25 << true;
}

void TestFlowModelLoad::steadyLoad()
{
    QFETCH(int, sortColumn);
    QFETCH(QString, filter);
    QFETCH(int, rows);
    QFETCH(int, perTick);
    QFETCH(bool, modelTester);
    const int kRows = rows;
    constexpr int kTicks = 40;
    const int kPerTick = perTick;

    FlowModel model;
    model.setRetention(static_cast<size_t>(kRows));
    FlowFilterProxy proxy;
    proxy.setSourceModel(&model);
    QVERIFY(proxy.setFilterText(filter));
    std::unique_ptr<QAbstractItemModelTester> tester;
    if (modelTester)
        tester = std::make_unique<QAbstractItemModelTester>(&proxy, QAbstractItemModelTester::FailureReportingMode::QtTest);

    fillTable(model, kRows);
    QCOMPARE(model.rowCount(), kRows);

    QTableView view;
    showTable(view, &proxy, sortColumn);
    QVERIFY(QTest::qWaitForWindowExposed(&view));

    const uint64_t firstNew = static_cast<uint64_t>(kRows) + 1;
    TickSource source(firstNew, kPerTick);
    EngineBridge bridge([&source](std::vector<Flow>& out) { return source(out); }, &model);
    QSignalSpy ticks(&bridge, &EngineBridge::ticked);
    for (int i = 0; i < kTicks; ++i) {
        bridge.tick();  // what the 10 Hz timer does, without the clock
        QCoreApplication::processEvents();
    }
    QCOMPARE(ticks.count(), kTicks);

    // The retention cap holds: exactly the oldest ended flows went, every new one is in.
    const uint64_t arrived = source.next() - firstNew;
    QCOMPARE(arrived, uint64_t(kTicks) * kPerTick);
    QVERIFY(arrived < static_cast<uint64_t>(kRows));  // so the checks below hold
    QCOMPARE(model.rowCount(), kRows);
    QCOMPARE(model.evictedCount(), arrived);
    QCOMPARE(model.rowForFlowId(arrived), -1);
    QVERIFY(model.rowForFlowId(arrived + 1) >= 0);
    for (uint64_t id = firstNew; id < source.next(); ++id) {
        int row = model.rowForFlowId(id);
        QVERIFY2(row >= 0, qPrintable(QString("flow %1 missing").arg(id)));
        auto f = model.flowSummary(row);
        QVERIFY(f);
        const Flow want = syntheticFlow(id, !source.isOpen(id));
        QCOMPARE(f->endNs, want.endNs);  // the update that ended it was merged in place
        QCOMPARE(f->bytesDown, want.bytesDown);
    }

    // The view shows what the filter accepts, in sort order, on the latest values.
    std::string error;
    auto parsed = FlowFilter::parse(filter.toStdString(), &error);
    QVERIFY2(parsed, error.c_str());
    auto current = [&](uint64_t id) { return syntheticFlow(id, !source.isOpen(id)); };
    int shown = 0;
    for (int row = 0; row < model.rowCount(); ++row)
        shown += parsed->matches(current(model.flowIdAt(row)));
    QCOMPARE(proxy.rowCount(), shown);
    auto key = [&](int proxyRow) {
        const Flow f = current(proxy.index(proxyRow, 0).data(FlowModel::FlowIdRole).toULongLong());
        return sortColumn == FlowModel::Time ? static_cast<uint64_t>(f.startNs) : f.bytesDown;
    };
    for (int row = 1; row < proxy.rowCount(); ++row)
        QVERIFY2(key(row - 1) <= key(row), qPrintable(QString("proxy rows %1 and %2 out of order").arg(row - 1).arg(row)));

    if (kRows >= 100000) {  // fixed costs (the detail cache of 2,000 flows) dominate small tables
        const size_t bytesPerFlow = model.memoryBytes() / static_cast<size_t>(model.rowCount());
        QVERIFY2(bytesPerFlow <= 1024, qPrintable(QString("%1 bytes per flow").arg(bytesPerFlow)));
    }
}

QTEST_MAIN(TestFlowModelLoad)
#include "tst_flow_model_load.moc"

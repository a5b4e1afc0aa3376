// Load: 100,000 flows in the table, then 2,000 new flows per second plus their
// updates for 5 s through EngineBridge into a shown QTableView on the proxy.
// Records the longest gap between bridge ticks and the model's bytes per flow;
// the only timing check is a generous sanity bound.
#include <QElapsedTimer>
#include <QHeaderView>
#include <QSignalSpy>
#include <QTableView>
#include <QTest>

#include "engine_bridge.h"
#include "flow_filter_proxy.h"
#include "flow_model.h"

using redirect::engine::EndReason;
using redirect::engine::Flow;
using redirect::engine::Hop;
using redirect::gui::EngineBridge;
using redirect::gui::FlowFilterProxy;
using redirect::gui::FlowModel;

namespace {

// Flows as an engine publishes them: a connect, then the same flow ended with its byte counts.
class SyntheticSource {
public:
    explicit SyntheticSource(int perSecond) : perSecond_(perSecond) { clock_.start(); }

    Flow flow(uint64_t id, bool ended) const
    {
        Flow f;
        f.flowId = id;
        f.startNs = 1'700'000'000'000'000'000 + static_cast<int64_t>(id) * 500'000;
        f.pid = 2000 + static_cast<uint32_t>(id % 5000);
        f.uid = 1000 + static_cast<uint32_t>(id % 3);
        f.comm = id % 4 ? "curl" : "firefox";
        f.user = "user" + std::to_string(id % 3);
        f.destination = "10." + std::to_string(id % 200) + ".0.1:443";
        f.host = "host" + std::to_string(id % 1000) + ".example.com";
        f.rule = "web";
        f.verdict = "redirect";
        Hop proxy;
        proxy.redirectorId = 11;
        proxy.redirector = id % 2 ? "dlp" : "audit";
        proxy.state = 1;
        proxy.recordsSize = 96;
        proxy.contextSize = 24;
        proxy.records.assign(96, 0x5a);
        proxy.context.assign(24, 0xa5);
        f.hops = {proxy, Hop{}};
        if (ended) {
            f.endNs = f.startNs + static_cast<int64_t>(id % 997) * 1'000'000;
            f.reason = id % 17 ? EndReason::Closed : EndReason::Reset;
            f.bytesUp = id * 13 % 100000;
            f.bytesDown = id * 101 % 10000000;
        }
        return f;
    }

    /// Everything due by now at perSecond_, and the previous call's flows ended.
    size_t operator()(std::vector<Flow>& out)
    {
        for (uint64_t id : open_)
            out.push_back(flow(id, true));
        open_.clear();
        const uint64_t due = static_cast<uint64_t>(clock_.elapsed()) * static_cast<uint64_t>(perSecond_) / 1000;
        for (; produced_ < due; ++produced_) {
            out.push_back(flow(nextId_, false));
            open_.push_back(nextId_++);
        }
        return out.size();
    }

    /// Rates count from here (not from the table fill).
    void restart() { clock_.restart(); produced_ = 0; }

    uint64_t nextId_ = 1;
    uint64_t produced_ = 0;

private:
    int perSecond_;
    QElapsedTimer clock_;
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
    QTest::newRow("sorted by time") << int(FlowModel::Time) << QString();
    QTest::newRow("sorted by bytes down, filtered") << int(FlowModel::BytesDown) << QStringLiteral("comm:curl -reason:reset");
}

void TestFlowModelLoad::steadyLoad()
{
    QFETCH(int, sortColumn);
    QFETCH(QString, filter);
    constexpr int kRows = 100000;
    constexpr int kPerSecond = 2000;
    constexpr qint64 kRunMs = 5000;

    FlowModel model;
    FlowFilterProxy proxy;
    proxy.setSourceModel(&model);
    QVERIFY(proxy.setFilterText(filter));
    SyntheticSource source(kPerSecond);

    std::vector<Flow> fill;
    for (int i = 0; i < kRows; ++i)
        fill.push_back(source.flow(source.nextId_++, true));
    model.applyBatch(std::move(fill));
    QCOMPARE(model.rowCount(), kRows);

    QTableView view;
    view.setModel(&proxy);
    view.setSortingEnabled(true);
    view.sortByColumn(sortColumn, Qt::AscendingOrder);
    view.verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
    view.resize(1200, 800);
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));

    const uint64_t firstNew = source.nextId_;
    EngineBridge bridge([&source](std::vector<Flow>& out) { return source(out); }, &model);
    QSignalSpy ticks(&bridge, &EngineBridge::ticked);
    QElapsedTimer run;
    run.start();
    source.restart();
    bridge.start(100);
    QTRY_VERIFY_WITH_TIMEOUT(run.elapsed() >= kRunMs, 3 * kRunMs);
    bridge.stop();

    const uint64_t arrived = source.nextId_ - firstNew;
    const size_t bytesPerFlow = model.memoryBytes() / static_cast<size_t>(model.rowCount());
    qInfo("load: %llu new flows in %lld ms over %lld ticks; longest tick gap %lld ms (stall beyond the 100 ms interval %lld ms); %zu bytes per flow; "
          "%d rows, %d shown",
          static_cast<unsigned long long>(arrived), static_cast<long long>(run.elapsed()),
          static_cast<long long>(bridge.tickCount()), static_cast<long long>(bridge.longestGapMs()),
          static_cast<long long>(bridge.longestGapMs() - 100), bytesPerFlow,
          model.rowCount(), proxy.rowCount());

    QVERIFY(ticks.count() >= 10);
    QVERIFY(arrived >= static_cast<uint64_t>(kPerSecond) * 4);
    QCOMPARE(model.rowCount(), kRows);      // the retention cap holds under load
    QVERIFY(model.rowForFlowId(source.nextId_ - 1) >= 0);   // the newest flow made it in
    QVERIFY(bytesPerFlow <= 1024);
    QVERIFY2(bridge.longestGapMs() < 1000, "sanity bound only; the target is 50 ms");
}

QTEST_MAIN(TestFlowModelLoad)
#include "tst_flow_model_load.moc"

// FlowModel and FlowFilterProxy: batched appends, merged updates, eviction at
// the retention cap, raw-value sorting, filtering, freeze, memory per row, and
// the rows as the console copies them (CSV).
#include <QAbstractItemModelTester>
#include <QDateTime>
#include <QSignalSpy>
#include <QSortFilterProxyModel>
#include <QTest>

#include <netinet/in.h>

#include "flow_filter_proxy.h"
#include "flow_model.h"
#include "table_csv.h"

using redirect::engine::EndReason;
using redirect::engine::Flow;
using redirect::engine::Hop;
using redirect::gui::FlowFilterProxy;
using redirect::gui::FlowModel;
using redirect::gui::rowsAsCsv;

namespace {

constexpr int64_t kBaseNs = 1'700'000'000'000'000'000;

Flow makeFlow(uint64_t id, bool ended = false, uint64_t bytesUp = 0)
{
    Flow flow;
    flow.flowId = id;
    flow.startNs = kBaseNs + static_cast<int64_t>(id) * 1'000'000;
    flow.pid = 1000 + static_cast<uint32_t>(id);
    flow.uid = 1000;
    flow.comm = id % 2 ? "curl" : "wget";
    flow.user = "alice";
    flow.destination = "10.0.0." + std::to_string(id % 250) + ":443";
    flow.verdict = "redirect";
    flow.rule = "web";
    flow.bytesUp = bytesUp;
    Hop hop;
    hop.redirectorId = 7;
    hop.redirector = id % 3 ? "dlp" : "audit";
    hop.recordsSize = 40;
    hop.contextSize = 16;
    flow.hops = {hop, Hop{}};
    if (ended) {
        flow.endNs = flow.startNs + 2'000'000'000;
        flow.reason = EndReason::Closed;
    }
    return flow;
}

std::vector<Flow> makeFlows(uint64_t first, uint64_t count, bool ended = false)
{
    std::vector<Flow> flows;
    for (uint64_t id = first; id < first + count; ++id)
        flows.push_back(makeFlow(id, ended));
    return flows;
}

std::vector<uint64_t> idsOf(const QAbstractItemModel& model)
{
    std::vector<uint64_t> ids;
    for (int row = 0; row < model.rowCount(); ++row)
        ids.push_back(model.index(row, 0).data(FlowModel::FlowIdRole).toULongLong());
    return ids;
}

}  // namespace

class TestFlowModel : public QObject {
    Q_OBJECT
private slots:
    void batchAppend_data();
    void batchAppend();
    void mergedUpdates();
    void duplicateInOneBatch();
    void evictionAtCap_data();
    void evictionAtCap();
    void sortOnRawValues_data();
    void sortOnRawValues();
    void filterFieldValue_data();
    void filterFieldValue();
    void filterError();
    void filterFollowsUpdates();
    void timeRange();
    void freezeQueuesAndMerges();
    void displayFormatsRawValues();
    void udpColumns();
    void detailCache();
    void memoryPerRow();
    void copiedRowsAreGuardedCsv();
    void sameFlowIdOnTwoNodes();
};

void TestFlowModel::batchAppend_data()
{
    QTest::addColumn<int>("first");
    QTest::addColumn<int>("second");
    QTest::newRow("one then many") << 1 << 500;
    QTest::newRow("many then one") << 2000 << 1;
    QTest::newRow("even") << 100 << 100;
}

void TestFlowModel::batchAppend()
{
    QFETCH(int, first);
    QFETCH(int, second);
    FlowModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QSignalSpy inserted(&model, &QAbstractItemModel::rowsInserted);

    model.applyBatch(makeFlows(1, static_cast<uint64_t>(first)));
    QCOMPARE(inserted.count(), 1);
    QCOMPARE(inserted.at(0).at(1).toInt(), 0);
    QCOMPARE(inserted.at(0).at(2).toInt(), first - 1);

    model.applyBatch(makeFlows(static_cast<uint64_t>(first) + 1, static_cast<uint64_t>(second)));
    QCOMPARE(inserted.count(), 2);
    QCOMPARE(inserted.at(1).at(1).toInt(), first);
    QCOMPARE(inserted.at(1).at(2).toInt(), first + second - 1);
    QCOMPARE(model.rowCount(), first + second);
    QCOMPARE(model.flowIdAt(first), static_cast<uint64_t>(first) + 1);
}

void TestFlowModel::mergedUpdates()
{
    FlowModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.applyBatch(makeFlows(100, 12));   // rows 0..11 hold ids 100..111
    QSignalSpy changed(&model, &QAbstractItemModel::dataChanged);
    QSignalSpy inserted(&model, &QAbstractItemModel::rowsInserted);

    std::vector<Flow> updates;
    for (uint64_t id : {109, 104, 103, 105})
        updates.push_back(makeFlow(id, true, 4096));
    model.applyBatch(std::move(updates));

    QCOMPARE(inserted.count(), 0);
    QCOMPARE(changed.count(), 2);
    const auto range = [&](int i) {
        const auto top = changed.at(i).at(0).value<QModelIndex>();
        const auto bottom = changed.at(i).at(1).value<QModelIndex>();
        return std::tuple(top.row(), bottom.row(), top.column(), bottom.column());
    };
    QCOMPARE(range(0), std::tuple(3, 5, 0, FlowModel::ColumnCount - 1));
    QCOMPARE(range(1), std::tuple(9, 9, 0, FlowModel::ColumnCount - 1));
    QCOMPARE(model.index(4, FlowModel::BytesUp).data(FlowModel::RawRole).toULongLong(), 4096ull);
    QCOMPARE(model.index(4, FlowModel::Reason).data().toString(), QStringLiteral("closed"));
    QCOMPARE(model.index(6, FlowModel::Reason).data().toString(), QStringLiteral("open"));
}

void TestFlowModel::duplicateInOneBatch()
{
    FlowModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    std::vector<Flow> batch = makeFlows(1, 3);
    batch.push_back(makeFlow(2, true, 77));   // a new flow that already ended within the batch
    model.applyBatch(std::move(batch));
    QCOMPARE(model.rowCount(), 3);
    QCOMPARE(model.rowForFlowId(2), 1);
    QCOMPARE(model.index(1, FlowModel::BytesUp).data(FlowModel::RawRole).toULongLong(), 77ull);
}

void TestFlowModel::evictionAtCap_data()
{
    QTest::addColumn<QString>("pattern");   // one letter per flow in arrival order: o = open, e = ended
    QTest::addColumn<int>("cap");
    QTest::addColumn<QString>("kept");      // the pattern positions that survive, as letters a.. (index)
    QTest::addColumn<int>("removeSignals");
    QTest::newRow("oldest ended go") << "eeeeo" << 3 << "cde" << 1;
    QTest::newRow("open never evicted") << "oeoeoee" << 4 << "aceg" << 3;
    QTest::newRow("contiguous runs merge") << "oeeoeo" << 3 << "adf" << 2;
    QTest::newRow("all open exceed cap") << "oooooo" << 2 << "abcdef" << 0;
    QTest::newRow("under cap") << "eee" << 5 << "abc" << 0;
}

void TestFlowModel::evictionAtCap()
{
    QFETCH(QString, pattern);
    QFETCH(int, cap);
    QFETCH(QString, kept);
    QFETCH(int, removeSignals);
    FlowModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QSignalSpy removed(&model, &QAbstractItemModel::rowsRemoved);
    model.setRetention(static_cast<size_t>(cap));

    std::vector<Flow> batch;
    for (int i = 0; i < pattern.size(); ++i)
        batch.push_back(makeFlow(static_cast<uint64_t>(i), pattern[i] == QLatin1Char('e')));
    model.applyBatch(std::move(batch));

    std::vector<uint64_t> expected;
    for (QChar c : kept)
        expected.push_back(static_cast<uint64_t>(c.toLatin1() - 'a'));
    QCOMPARE(idsOf(model), expected);
    QCOMPARE(removed.count(), removeSignals);
    QCOMPARE(model.evictedCount(), static_cast<uint64_t>(pattern.size() - kept.size()));
    for (uint64_t id : expected)
        QCOMPARE(model.flowIdAt(model.rowForFlowId(id)), id);   // lookups survive removals
}

void TestFlowModel::sortOnRawValues_data()
{
    QTest::addColumn<bool>("viaPlainProxy");   // QSortFilterProxyModel on RawRole, or FlowFilterProxy's fast path
    QTest::newRow("FlowFilterProxy") << false;
    QTest::newRow("QSortFilterProxyModel on RawRole") << true;
}

void TestFlowModel::sortOnRawValues()
{
    QFETCH(bool, viaPlainProxy);
    FlowModel model;
    std::unique_ptr<QSortFilterProxyModel> proxy;
    if (viaPlainProxy) {
        proxy = std::make_unique<QSortFilterProxyModel>();
        proxy->setSortRole(FlowModel::RawRole);
    } else {
        proxy = std::make_unique<FlowFilterProxy>();
    }
    proxy->setSourceModel(&model);
    QAbstractItemModelTester tester(proxy.get(), QAbstractItemModelTester::FailureReportingMode::QtTest);

    std::vector<Flow> batch;
    uint64_t id = 1;
    for (uint64_t bytes : {10, 9, 100, 2, 1024})
        batch.push_back(makeFlow(id++, true, bytes));
    model.applyBatch(std::move(batch));
    proxy->sort(FlowModel::BytesUp, Qt::AscendingOrder);

    std::vector<uint64_t> bytes;
    for (int row = 0; row < proxy->rowCount(); ++row)
        bytes.push_back(proxy->index(row, FlowModel::BytesUp).data(FlowModel::RawRole).toULongLong());
    QCOMPARE(bytes, (std::vector<uint64_t>{2, 9, 10, 100, 1024}));
    // As text "9 B" sorts after "10 B" and "1.0 KiB": numeric order is the raw role's doing.
    QCOMPARE(proxy->index(4, FlowModel::BytesUp).data().toString(), QStringLiteral("1.0 KiB"));

    // A live update re-sorts the row (dynamic sort on raw values).
    model.applyBatch({makeFlow(4, true, 5000)});
    QCOMPARE(proxy->index(4, FlowModel::BytesUp).data(FlowModel::FlowIdRole).toULongLong(), 4ull);

    proxy->sort(FlowModel::Duration, Qt::DescendingOrder);
    model.applyBatch({makeFlow(50)});   // open: no duration, sorts last when descending
    QCOMPARE(proxy->index(proxy->rowCount() - 1, 0).data(FlowModel::FlowIdRole).toULongLong(), 50ull);
}

void TestFlowModel::filterFieldValue_data()
{
    QTest::addColumn<QString>("filter");
    QTest::addColumn<std::vector<uint64_t>>("ids");
    // Flows 1..6: odd ids are curl, even wget; 2, 4, 6 ended; redirector audit for ids divisible by 3;
    // 5 is UDP.
    QTest::newRow("empty") << "" << std::vector<uint64_t>{1, 2, 3, 4, 5, 6};
    QTest::newRow("comm") << "comm:curl" << std::vector<uint64_t>{1, 3, 5};
    QTest::newRow("negated comm") << "-comm:curl" << std::vector<uint64_t>{2, 4, 6};
    QTest::newRow("pid") << "pid:1004" << std::vector<uint64_t>{4};
    QTest::newRow("dest") << "dest:10.0.0.5:" << std::vector<uint64_t>{5};
    QTest::newRow("redirector") << "redirector:audit" << std::vector<uint64_t>{3, 6};
    QTest::newRow("reason") << "reason:closed" << std::vector<uint64_t>{2, 4, 6};
    QTest::newRow("chain text") << "chain:audit" << std::vector<uint64_t>{3, 6};
    QTest::newRow("word and field") << "WGET reason:open" << std::vector<uint64_t>{};
    QTest::newRow("flow hex") << "flow:0x5" << std::vector<uint64_t>{5};
    QTest::newRow("protocol") << "protocol:udp" << std::vector<uint64_t>{5};
    QTest::newRow("not protocol") << "-protocol:udp" << std::vector<uint64_t>{1, 2, 3, 4, 6};
}

void TestFlowModel::filterFieldValue()
{
    QFETCH(QString, filter);
    QFETCH(std::vector<uint64_t>, ids);
    FlowModel model;
    FlowFilterProxy proxy;
    proxy.setSourceModel(&model);
    QAbstractItemModelTester tester(&proxy, QAbstractItemModelTester::FailureReportingMode::QtTest);
    std::vector<Flow> batch;
    for (uint64_t id = 1; id <= 6; ++id)
        batch.push_back(makeFlow(id, id % 2 == 0));
    batch[4].protocol = IPPROTO_UDP;
    model.applyBatch(std::move(batch));

    QVERIFY(proxy.setFilterText(filter));
    QCOMPARE(proxy.filterError(), QString());
    QCOMPARE(idsOf(proxy), ids);
}

void TestFlowModel::filterError()
{
    FlowModel model;
    FlowFilterProxy proxy;
    proxy.setSourceModel(&model);
    QAbstractItemModelTester tester(&proxy, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.applyBatch(makeFlows(1, 4));
    QSignalSpy errors(&proxy, &FlowFilterProxy::filterErrorChanged);

    QVERIFY(proxy.setFilterText(QStringLiteral("comm:curl")));
    QCOMPARE(proxy.rowCount(), 2);
    QVERIFY(!proxy.setFilterText(QStringLiteral("colour:blue")));
    QVERIFY(!proxy.filterError().isEmpty());
    QCOMPARE(errors.count(), 1);
    QVERIFY(!proxy.setFilterText(QStringLiteral("protocol:icmp")));
    QVERIFY2(proxy.filterError().contains(QStringLiteral("tcp or udp")), qPrintable(proxy.filterError()));
    QCOMPARE(errors.count(), 2);
    QCOMPARE(proxy.rowCount(), 2);                       // the last good filter stays
    QCOMPARE(proxy.filterText(), QStringLiteral("comm:curl"));
    QVERIFY(proxy.setFilterText(QStringLiteral("")));
    QCOMPARE(proxy.filterError(), QString());
    QCOMPARE(errors.count(), 3);
    QCOMPARE(proxy.rowCount(), 4);
}

void TestFlowModel::filterFollowsUpdates()
{
    FlowModel model;
    FlowFilterProxy proxy;
    proxy.setSourceModel(&model);
    QAbstractItemModelTester tester(&proxy, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QVERIFY(proxy.setFilterText(QStringLiteral("reason:closed")));
    model.applyBatch(makeFlows(1, 5));
    QCOMPARE(proxy.rowCount(), 0);
    model.applyBatch({makeFlow(3, true)});
    QCOMPARE(idsOf(proxy), (std::vector<uint64_t>{3}));
}

void TestFlowModel::timeRange()
{
    FlowModel model;
    FlowFilterProxy proxy;
    proxy.setSourceModel(&model);
    QAbstractItemModelTester tester(&proxy, QAbstractItemModelTester::FailureReportingMode::QtTest);
    // Ids 1..4 start 1 ms apart; ended ones last 2 s, so only the start bound separates them.
    model.applyBatch(makeFlows(1, 4, true));
    proxy.setTimeRange(0, kBaseNs + 2'500'000);
    QCOMPARE(idsOf(proxy), (std::vector<uint64_t>{1, 2}));
    proxy.setTimeRange(kBaseNs + 2'003'500'000, 0);
    QCOMPARE(idsOf(proxy), (std::vector<uint64_t>{4}));
    QVERIFY(proxy.setFilterText(QStringLiteral("curl")));
    QCOMPARE(idsOf(proxy), (std::vector<uint64_t>{}));
    proxy.setTimeRange(0, 0);
    QCOMPARE(idsOf(proxy), (std::vector<uint64_t>{1, 3}));
}

void TestFlowModel::freezeQueuesAndMerges()
{
    FlowModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.applyBatch(makeFlows(1, 3));
    QSignalSpy inserted(&model, &QAbstractItemModel::rowsInserted);
    QSignalSpy changed(&model, &QAbstractItemModel::dataChanged);

    model.setFrozen(true);
    model.applyBatch(makeFlows(4, 2));
    model.applyBatch({makeFlow(2, true, 10), makeFlow(5, true, 20)});
    model.applyBatch({makeFlow(2, true, 30)});
    QCOMPARE(model.rowCount(), 3);
    QCOMPARE(inserted.count(), 0);
    QCOMPARE(changed.count(), 0);
    QCOMPARE(model.pendingCount(), size_t{3});   // 4, 5 and 2, merged by flow id

    model.setFrozen(false);
    QCOMPARE(model.pendingCount(), size_t{0});
    QCOMPARE(inserted.count(), 1);
    QCOMPARE(changed.count(), 1);
    QCOMPARE(idsOf(model), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
    QCOMPARE(model.index(1, FlowModel::BytesUp).data(FlowModel::RawRole).toULongLong(), 30ull);
    QCOMPARE(model.index(4, FlowModel::BytesUp).data(FlowModel::RawRole).toULongLong(), 20ull);
}

void TestFlowModel::displayFormatsRawValues()
{
    FlowModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    Flow flow = makeFlow(9, true, 1536);
    flow.host = "example.com";
    flow.hops[0].state = 1;
    model.applyBatch({flow});
    const auto text = [&](int column) { return model.index(0, column).data().toString(); };
    QCOMPARE(text(FlowModel::BytesUp), QStringLiteral("1.5 KiB"));
    QCOMPARE(text(FlowModel::BytesDown), QStringLiteral("0 B"));
    QCOMPARE(text(FlowModel::Duration), QStringLiteral("2.00 s"));
    QCOMPARE(model.index(0, FlowModel::Duration).data(FlowModel::RawRole).toLongLong(), 2'000'000'000ll);
    QCOMPARE(text(FlowModel::Process), QStringLiteral("curl [1009] alice"));
    QCOMPARE(text(FlowModel::Destination), QStringLiteral("example.com (10.0.0.9:443)"));
    QCOMPARE(text(FlowModel::Chain), QStringLiteral("audit → 10.0.0.9:443"));
    QCOMPARE(text(FlowModel::Route), QStringLiteral("1 hop"));
    QCOMPARE(text(FlowModel::Records), QStringLiteral("40 B"));
    QCOMPARE(text(FlowModel::Context), QStringLiteral("16 B"));
    QCOMPARE(text(FlowModel::Time),
             QDateTime::fromMSecsSinceEpoch(flow.startNs / 1000000).toString(QStringLiteral("hh:mm:ss.zzz")));
}

void TestFlowModel::udpColumns()
{
    // Datagrams show for UDP flows; a TCP flow shows nothing there, not 0, and sorts before any UDP one.
    FlowModel model;
    FlowFilterProxy proxy;
    proxy.setSourceModel(&model);
    QAbstractItemModelTester tester(&proxy, QAbstractItemModelTester::FailureReportingMode::QtTest);
    Flow udp = makeFlow(1, true);
    udp.protocol = IPPROTO_UDP;
    udp.datagramsUp = 12;
    udp.datagramsDown = 10;
    udp.hops[0].datagramsUp = 12;
    udp.hops[0].datagramsDown = 9;
    Flow quiet = makeFlow(2, true);
    quiet.protocol = IPPROTO_UDP;
    Flow direct = makeFlow(4, true);  // no relay of ours: nothing counted its datagrams
    direct.protocol = IPPROTO_UDP;
    direct.verdict = "direct";
    direct.hops.clear();
    model.applyBatch({udp, makeFlow(3, true), quiet, direct});
    const auto cell = [&](int row, int column, int role = Qt::DisplayRole) { return model.index(row, column).data(role); };

    QCOMPARE(model.headerData(FlowModel::Protocol, Qt::Horizontal).toString(), QStringLiteral("Proto"));
    QCOMPARE(model.headerData(FlowModel::Datagrams, Qt::Horizontal).toString(), QStringLiteral("Datagrams"));
    QCOMPARE(cell(0, FlowModel::Protocol).toString(), QStringLiteral("udp"));
    QCOMPARE(cell(0, FlowModel::Datagrams).toString(), QStringLiteral("12 / 10"));
    QCOMPARE(cell(0, FlowModel::Datagrams, FlowModel::RawRole).toLongLong(), 22ll);
    QVERIFY(cell(0, FlowModel::Datagrams, Qt::ToolTipRole).toString().contains(QStringLiteral("12 datagrams up")));
    QCOMPARE(cell(1, FlowModel::Protocol).toString(), QStringLiteral("tcp"));
    QCOMPARE(cell(1, FlowModel::Datagrams).toString(), QString());
    QVERIFY(!cell(1, FlowModel::Datagrams, Qt::ToolTipRole).isValid());
    QCOMPARE(cell(2, FlowModel::Datagrams).toString(), QStringLiteral("0 / 0"));
    QCOMPARE(cell(3, FlowModel::Protocol).toString(), QStringLiteral("udp"));
    QCOMPARE(cell(3, FlowModel::Datagrams).toString(), QString());
    QVERIFY(cell(3, FlowModel::Datagrams, Qt::ToolTipRole).toString().contains(QStringLiteral("not counted")));

    proxy.sort(FlowModel::Datagrams, Qt::AscendingOrder);
    const std::vector<uint64_t> sorted = idsOf(proxy);
    QVERIFY(sorted.size() >= 3);  // the direct flow shows only with direct connections shown
    QCOMPARE(std::vector<uint64_t>(sorted.end() - 2, sorted.end()), (std::vector<uint64_t>{2, 1}));  // uncounted first

    // The row keeps them for the details pane (the summary, when the full flow left the cache).
    const std::optional<Flow> summary = model.flowSummary(0);
    QVERIFY(summary);
    QCOMPARE(summary->protocol, uint8_t(IPPROTO_UDP));
    QCOMPARE(summary->datagramsUp, 12u);
    QCOMPARE(summary->datagramsDown, 10u);
    QCOMPARE(summary->hops[0].datagramsUp, 12u);
    QCOMPARE(summary->hops[0].datagramsDown, 9u);
}

void TestFlowModel::detailCache()
{
    FlowModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.setDetailCacheSize(2);
    std::vector<Flow> batch = makeFlows(1, 3);
    for (Flow& flow : batch)
        flow.hops[0].records.assign(40, static_cast<uint8_t>(flow.flowId));
    model.applyBatch(std::move(batch));

    QVERIFY(!model.fullFlow(0));                  // pushed out of the cache by 2 and 3
    const std::optional<Flow> third = model.fullFlow(2);
    QVERIFY(third);
    QCOMPARE(third->hops[0].records, std::vector<uint8_t>(40, 3));
    const std::optional<Flow> summary = model.flowSummary(0);
    QVERIFY(summary);
    QVERIFY(summary->hops[0].records.empty());
    QCOMPARE(summary->hops[0].recordsSize, 40u);
    QCOMPARE(summary->hops[0].redirector, std::string("dlp"));
    QCOMPARE(summary->chainText(), makeFlow(1).chainText());
    QVERIFY(!model.flowSummary(3));
}

void TestFlowModel::memoryPerRow()
{
    // Realistic rows: two redirecting hops and a direct leg, blobs, a long IPv6 destination and a host.
    FlowModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    const uint64_t count = 100000;
    std::vector<Flow> batch;
    for (uint64_t id = 1; id <= count; ++id) {
        Flow flow = makeFlow(id, id % 10 != 0, id * 37);
        flow.destination = "[2001:db8:1234:5678::" + std::to_string(id % 4096) + "]:443";
        flow.host = "service-" + std::to_string(id % 977) + ".example.internal";
        flow.user = "user" + std::to_string(id % 50);
        flow.hops.insert(flow.hops.begin(), flow.hops.front());
        for (Hop& hop : flow.hops) {
            hop.records.assign(hop.recordsSize * 4, 0xab);
            hop.context.assign(hop.contextSize * 4, 0xcd);
        }
        batch.push_back(std::move(flow));
    }
    model.applyBatch(std::move(batch));   // one batch: the model tester checks each insert in O(rows)
    QCOMPARE(static_cast<uint64_t>(model.rowCount()), count);
    const size_t perRow = model.memoryBytes() / count;
    qInfo("FlowModel: %zu bytes per row with %llu rows", perRow, static_cast<unsigned long long>(count));
    QVERIFY2(perRow <= 1024, qPrintable(QStringLiteral("%1 bytes per row").arg(perRow)));
    QVERIFY(perRow >= 150);   // the estimate counts the row struct, its strings and hops at least
}

void TestFlowModel::copiedRowsAreGuardedCsv()
{
    // What "Copy rows as CSV" (Ctrl+C) copies from the view: cells as shown, RFC 4180 quoting, and
    // cells that start like a formula neutralised exactly as the reports do (engine/format.h).
    FlowModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    Flow formula = makeFlow(1, true, 1536);
    formula.comm = "=cmd|'/C calc'!A0";
    formula.host = "@SUM(1,2)";
    Flow udp = makeFlow(2);
    udp.protocol = IPPROTO_UDP;
    udp.datagramsUp = 4;
    udp.datagramsDown = 1;
    model.applyBatch({formula, udp});
    FlowFilterProxy proxy;
    proxy.setSourceModel(&model);
    const auto time = [&](int row) { return proxy.index(row, FlowModel::Time).data().toString(); };

    const QStringList lines = rowsAsCsv(proxy, {1, 0}).split(QStringLiteral("\r\n"));
    QCOMPARE(lines.size(), 4);  // header, two rows, nothing after the last CRLF
    QCOMPARE(lines[0], QStringLiteral("Time,Process,Proto,Destination,Rule,Route,Chain,Records,Context,Up,Down,"
                                      "Datagrams,Duration,End reason,Node"));
    QCOMPARE(lines[1], time(1) + QStringLiteral(",wget [1002] alice,udp,10.0.0.2:443,web,1 hop,dlp → 10.0.0.2:443,"
                                                "40 B,16 B,0 B,0 B,4 / 1,,open,"));
    QCOMPARE(lines[2], time(0) + QStringLiteral(",'=cmd|'/C calc'!A0 [1001] alice,tcp,\"'@SUM(1,2) (10.0.0.1:443)\","
                                                "web,1 hop,dlp → 10.0.0.1:443,40 B,16 B,1.5 KiB,0 B,,2.00 s,closed,"));
    QVERIFY(lines[3].isEmpty());
}

QTEST_GUILESS_MAIN(TestFlowModel)
void TestFlowModel::sameFlowIdOnTwoNodes()
{
    // Socket cookies of two machines may be equal: rows are known by node and flow id together.
    FlowModel model;
    Flow a = makeFlow(5), b = makeFlow(5, true);
    a.node = "node-a";
    b.node = "node-b";
    model.applyBatch({a, b});
    QCOMPARE(model.rowCount(), 2);
    const int rowA = model.rowForFlowId(5, "node-a"), rowB = model.rowForFlowId(5, "node-b");
    QVERIFY(rowA >= 0 && rowB >= 0 && rowA != rowB);
    QCOMPARE(model.rowForFlowId(5), -1);  // no node "" has it
    QCOMPARE(model.index(rowA, FlowModel::Node).data().toString(), QStringLiteral("node-a"));
    QCOMPARE(model.index(rowB, FlowModel::Node).data().toString(), QStringLiteral("node-b"));
    QCOMPARE(model.flowIdAt(rowA), uint64_t(5));
    QVERIFY(model.keyAt(rowA) != model.keyAt(rowB));
    QCOMPARE(model.rowForKey(model.keyAt(rowB)), rowB);
    // An update of b's flow changes b's row only.
    b.bytesUp = 777;
    model.applyBatch({b});
    QCOMPARE(model.rowCount(), 2);
    QCOMPARE(model.index(rowB, FlowModel::BytesUp).data(FlowModel::RawRole).toULongLong(), 777ull);
    QCOMPARE(model.index(rowA, FlowModel::BytesUp).data(FlowModel::RawRole).toULongLong(), 0ull);
    QCOMPARE(model.flowSummary(rowB)->node, std::string("node-b"));
    // The filter's node: field.
    std::string error;
    auto filter = redirect::engine::FlowFilter::parse("node:node-b", &error);
    QVERIFY2(filter.has_value(), error.c_str());
    QVERIFY(model.rowMatches(rowB, *filter, 0, 0));
    QVERIFY(!model.rowMatches(rowA, *filter, 0, 0));
}

#include "tst_flow_model.moc"

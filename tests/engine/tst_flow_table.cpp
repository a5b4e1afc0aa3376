// The flow table on synthetic callout events and hop reports: flows are
// grouped by flow id, end with their first hop, and are evicted oldest ended
// first at the retention cap, never while open.
#include <QtTest>

#include "flow_table.h"

using namespace redirect::engine;

namespace {

FlowNames names()
{
    FlowNames n;
    n.redirector = [](uint32_t id) { return "R" + std::to_string(id); };
    n.external = [](uint32_t) { return false; };
    n.rule = [](uint32_t id) { return "rule" + std::to_string(id); };
    return n;
}

callout_event appConnect(uint64_t flowId)
{
    callout_event e{};
    e.flow_id = flowId;
    e.verdict = CALLOUT_VERDICT_REDIRECT;
    e.redirector_id = 1;
    e.hop_count = 1;
    e.hops[0].redirector_id = 1;
    e.family = AF_INET;
    e.time_boot_ns = flowId * 1000;
    return e;
}

HopReport hopEnd(uint64_t flowId, uint64_t bytes)
{
    HopReport h;
    h.flowId = flowId;
    h.redirectorId = 1;
    h.setRecords = true;
    h.bytesUp = h.bytesDown = bytes;
    h.startNs = 1;
    h.endNs = 2;
    h.reason = EndReason::Closed;
    return h;
}

std::vector<uint64_t> ids(const std::vector<Flow>& flows)
{
    std::vector<uint64_t> out;
    for (auto& f : flows)
        out.push_back(f.flowId);
    return out;
}

}  // namespace

class TestFlowTable : public QObject {
    Q_OBJECT

private slots:
    void endsWithFirstHopAndEvictsOldestEnded();
    void openFlowsAreNeverEvicted();
};

void TestFlowTable::endsWithFirstHopAndEvictsOldestEnded()
{
    FlowTable table(3, names());
    for (uint64_t id = 1; id <= 5; ++id)
        table.onCalloutEvent(appConnect(id), 0);
    for (uint64_t id : {1, 2, 4})
        table.onHop(hopEnd(id, 100 * id));
    // The publish still carries the flows that are evicted right after it.
    auto changed = table.takeChanged();
    QCOMPARE(ids(changed), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
    QCOMPARE(changed[3].bytesUp, uint64_t(400));
    QCOMPARE(int(changed[3].reason), int(EndReason::Closed));
    QCOMPARE(changed[3].chainText(), std::string("app -> R1 -> 0.0.0.0:0"));
    QCOMPARE(ids(table.snapshot()), (std::vector<uint64_t>{3, 4, 5}));
    QCOMPARE(table.evicted(), uint64_t(2));
    QCOMPARE(table.openCount(), size_t(2));

    table.onHop(hopEnd(3, 1));
    table.onCalloutEvent(appConnect(6), 0);
    table.takeChanged();
    QCOMPARE(ids(table.snapshot()), (std::vector<uint64_t>{4, 5, 6}));
    QCOMPARE(table.evicted(), uint64_t(3));
}

void TestFlowTable::openFlowsAreNeverEvicted()
{
    FlowTable table(1, names());
    for (uint64_t id = 1; id <= 4; ++id)
        table.onCalloutEvent(appConnect(id), 0);
    table.takeChanged();
    QCOMPARE(table.size(), size_t(4));
    QCOMPARE(table.evicted(), uint64_t(0));
    table.onHop(hopEnd(3, 1));
    table.takeChanged();
    QCOMPARE(ids(table.snapshot()), (std::vector<uint64_t>{1, 2, 4}));
}

QTEST_APPLESS_MAIN(TestFlowTable)
#include "tst_flow_table.moc"

// The flow table on synthetic callout events and hop reports: flows are
// grouped by flow id, end with their first hop, and are evicted oldest ended
// first at the retention cap, never while open.
#include <QtTest>

#include <arpa/inet.h>
#include <linux/bpf.h>

#include <cstring>

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
    void directConnectsAreFlowsEndedByTheirClose();
    void everyHopCountsForItsRule();
    void endsWithFirstHopAndEvictsOldestEnded();
    void openFlowsAreNeverEvicted();
    void snapshotInPartsSurvivesEvictions();
    void openCountFollowsEveryEnd();
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

// A snapshot taken in parts (the lock let go between them): flows evicted in between are not
// there, every other flow is there once, in creation order.
void TestFlowTable::snapshotInPartsSurvivesEvictions()
{
    FlowTable table(7, names());
    for (uint64_t id = 1; id <= 8; ++id)
        table.onCalloutEvent(appConnect(id), 0);
    table.takeChanged();
    std::vector<Flow> out;
    uint64_t cursor = 0;
    QVERIFY(table.snapshotAfter(&cursor, 3, out));
    QCOMPARE(ids(out), (std::vector<uint64_t>{1, 2, 3}));
    // Between parts: 1, 2 and 4 end, two of them go at the cap (the oldest ended), 9 comes.
    for (uint64_t id : {1, 2, 4})
        table.onHop(hopEnd(id, 1));
    table.onCalloutEvent(appConnect(9), 0);
    table.takeChanged();
    QCOMPARE(ids(table.snapshot()), (std::vector<uint64_t>{3, 4, 5, 6, 7, 8, 9}));
    QVERIFY(table.snapshotAfter(&cursor, 3, out));
    QVERIFY(table.snapshotAfter(&cursor, 3, out));
    QVERIFY(!table.snapshotAfter(&cursor, 3, out));
    // Positions shifted by two at the front; a cursor by index would have skipped 4 and 5.
    QCOMPARE(ids(out), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

// The open count is kept, not counted: it must follow ends by hop, by the application's close,
// and evictions.
void TestFlowTable::openCountFollowsEveryEnd()
{
    FlowTable table(2, names());
    auto counted = [&table] {
        size_t open = 0;
        for (const Flow& f : table.snapshot())
            open += f.endNs == 0;
        return open;
    };
    for (uint64_t id = 1; id <= 5; ++id)
        table.onCalloutEvent(appConnect(id), 0);
    QCOMPARE(table.openCount(), size_t(5));
    table.onHop(hopEnd(1, 1));
    table.onHop(hopEnd(1, 2));  // a second report of an ended hop ends nothing more
    QCOMPARE(table.openCount(), size_t(4));
    // An application close ends a flow whose hops are all external (none of ours reports).
    callout_event external = appConnect(6);
    FlowNames n = names();
    n.external = [](uint32_t) { return true; };
    FlowTable ext(10, n);
    ext.onCalloutEvent(external, 0);
    QCOMPARE(ext.openCount(), size_t(1));
    callout_event closed = external;
    closed.verdict = CALLOUT_VERDICT_CLOSED;
    ext.onCalloutEvent(closed, 0);
    QCOMPARE(ext.openCount(), size_t(0));
    // Evictions take ended flows: the count of open ones stays.
    for (uint64_t id : {2, 3})
        table.onHop(hopEnd(id, 1));
    table.takeChanged();
    QCOMPARE(table.openCount(), size_t(2));
    QCOMPARE(table.openCount(), counted());
    QCOMPARE(table.size(), size_t(2));
}

void TestFlowTable::directConnectsAreFlowsEndedByTheirClose()
{
    FlowTable table(10, names());
    callout_event direct{};
    direct.flow_id = 41;  // the callout names a direct connect's flow by its cookie
    direct.verdict = CALLOUT_VERDICT_DIRECT;
    direct.rule_id = 0;
    direct.family = AF_INET;
    direct.orig_port = htons(8080);
    std::memcpy(direct.comm, "wget", 4);
    callout_event bypass = direct;
    bypass.flow_id = 42;
    bypass.verdict = CALLOUT_VERDICT_BYPASS;
    bypass.rule_id = 3;
    table.onCalloutEvent(direct, 0);
    table.onCalloutEvent(bypass, 0);
    std::vector<Flow> flows = table.takeChanged();
    QCOMPARE(flows.size(), size_t(2));
    QCOMPARE(flows[0].verdict, std::string("direct"));
    QCOMPARE(flows[0].rule, std::string());  // no rule decided it
    QCOMPARE(flows[0].routeText(), std::string("direct, no rule"));
    QVERIFY(flows[0].direct());
    QCOMPARE(flows[1].verdict, std::string("bypass"));
    QCOMPARE(flows[1].rule, std::string("rule3"));
    QCOMPARE(table.ruleHits()[3].bypassed, 1ull);
    QCOMPARE(table.openCount(), size_t(2));

    // The close says how it ended, by the TCP state the socket left.
    callout_event closed{};
    closed.verdict = CALLOUT_VERDICT_CLOSED;
    closed.flow_id = 41;
    closed.state = BPF_TCP_TIME_WAIT;
    closed.bytes_acked = 100;
    closed.bytes_received = 2000;
    table.onCalloutEvent(closed, 0);
    closed.flow_id = 42;
    closed.state = BPF_TCP_ESTABLISHED;  // straight to CLOSE: a reset
    table.onCalloutEvent(closed, 0);
    closed.flow_id = 43;  // a socket whose connect was never seen: nothing to end
    table.onCalloutEvent(closed, 0);
    flows = table.takeChanged();
    QCOMPARE(flows.size(), size_t(2));
    QCOMPARE(flows[0].reason, EndReason::Closed);
    QCOMPARE(flows[0].bytesUp, 100ull);
    QCOMPARE(flows[0].bytesDown, 2000ull);
    QCOMPARE(flows[1].reason, EndReason::Reset);
    QCOMPARE(table.openCount(), size_t(0));
    QCOMPARE(table.size(), size_t(2));
}

void TestFlowTable::everyHopCountsForItsRule()
{
    FlowTable table(10, names());
    callout_event first = appConnect(7);
    first.rule_id = 1;
    // The first redirector's own connect, carrying the records, sent to a second redirector by rule 2.
    callout_event second = first;
    second.flags = CALLOUT_FLAG_HAD_RECORDS;
    second.redirector_id = 2;
    second.rule_id = 2;
    second.hop_count = 2;
    second.hops[1].redirector_id = 2;
    table.onCalloutEvent(first, 0);
    table.onCalloutEvent(second, 0);
    auto hits = table.ruleHits();
    QCOMPARE(hits[1].redirected, 1ull);
    QCOMPARE(hits[2].redirected, 1ull);  // before: 0, though every flow passed through it
    std::vector<Flow> flows = table.takeChanged();
    QCOMPARE(flows.size(), size_t(1));
    QCOMPARE(flows[0].hops.size(), size_t(2));
    QCOMPARE(flows[0].hops[0].rule, std::string("rule1"));
    QCOMPARE(flows[0].hops[1].rule, std::string("rule2"));
    QCOMPARE(flows[0].routeText(), std::string("2 hops"));
}

QTEST_APPLESS_MAIN(TestFlowTable)
#include "tst_flow_table.moc"

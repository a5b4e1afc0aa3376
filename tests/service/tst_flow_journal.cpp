// The flow journal: numbered updates, resume without a gap, the size of a gap, bounded waits.
#include <thread>

#include <QtTest>

#include "flow_journal.h"
#include "flow_proto.h"

using namespace redirect;
using service::FlowJournal;
using namespace std::chrono_literals;

namespace {

std::vector<engine::Flow> flows(uint64_t firstId, size_t n)
{
    std::vector<engine::Flow> out(n);
    for (size_t i = 0; i < n; ++i) {
        out[i].flowId = firstId + i;
        out[i].destination = "127.0.0.1:" + std::to_string(1000 + i);
        engine::Hop hop;
        hop.redirectorId = 7;
        hop.redirector = "inspector";
        hop.records = {1, 2, 3};
        hop.reason = engine::EndReason::Refused;
        out[i].hops.push_back(hop);
    }
    return out;
}

}  // namespace

class TestFlowJournal : public QObject {
    Q_OBJECT

private slots:
    void resumesWhereTheReaderStopped()
    {
        FlowJournal journal(100);
        journal.append(flows(1, 5));
        auto first = journal.readAfter(0, 3, 0ms);
        QCOMPARE(first.flows.size(), size_t(3));
        QCOMPARE(first.last, uint64_t(3));
        QCOMPARE(first.missed, uint64_t(0));
        const v1::Flow decoded = FlowJournal::decode(first.flows[0]);
        QCOMPARE(decoded.flow_id(), uint64_t(1));
        QCOMPARE(decoded.destination(), std::string("127.0.0.1:1000"));
        QCOMPARE(decoded.hops_size(), 1);
        QCOMPARE(decoded.hops(0).redirector(), std::string("inspector"));
        QCOMPARE(decoded.hops(0).records(), std::string("\x01\x02\x03", 3));
        auto rest = journal.readAfter(first.last, 100, 0ms);
        QCOMPARE(rest.flows.size(), size_t(2));
        QCOMPARE(FlowJournal::decode(rest.flows[0]).flow_id(), uint64_t(4));
        QCOMPARE(rest.last, uint64_t(5));
        QCOMPARE(journal.newest(), uint64_t(5));
    }

    void aReaderBehindTheRingLearnsHowMuchItMissed()
    {
        FlowJournal journal(10);
        journal.append(flows(1, 25));  // 1..15 left the ring
        QCOMPARE(journal.oldest(), uint64_t(16));
        auto r = journal.readAfter(4, 100, 0ms);
        QCOMPARE(r.missed, uint64_t(11));  // 5..15
        QCOMPARE(r.flows.size(), size_t(10));
        QCOMPARE(FlowJournal::decode(r.flows.front()).flow_id(), uint64_t(16));
        QCOMPARE(r.last, uint64_t(25));
        QCOMPARE(journal.missedTotal(), uint64_t(11));
    }

    void nothingNewWaitsBoundedAndCloseWakes()
    {
        FlowJournal journal(10);
        auto r = journal.readAfter(0, 10, 10ms);
        QVERIFY(r.flows.empty());
        QCOMPARE(r.last, uint64_t(0));
        std::thread closer([&] { journal.close(); });
        r = journal.readAfter(0, 10, 60s);  // returns at close, not after a minute
        closer.join();
        QVERIFY(r.flows.empty());
        QVERIFY(journal.closed());
    }

    void aWriterWakesAWaitingReader()
    {
        FlowJournal journal(10);
        std::thread writer([&] { journal.append(flows(9, 1)); });
        auto r = journal.readAfter(0, 10, 60s);
        writer.join();
        if (r.flows.empty())  // the writer may have come first: then it is there without a wait
            r = journal.readAfter(0, 10, 0ms);
        QCOMPARE(r.flows.size(), size_t(1));
        QCOMPARE(FlowJournal::decode(r.flows[0]).flow_id(), uint64_t(9));
    }

    void wireMessageKeepsTheFlow()
    {
        const engine::Flow f = flows(42, 1)[0];
        v1::Flow message;
        service::toProto(f, &message);
        QCOMPARE(message.chain(), QString::fromStdString(f.chainText()).toStdString());
        const engine::Flow back = service::fromProto(message);
        QCOMPARE(back.flowId, f.flowId);
        QCOMPARE(back.destination, f.destination);
        QCOMPARE(back.hops.size(), size_t(1));
        QCOMPARE(back.hops[0].records, f.hops[0].records);
        QCOMPARE(int(back.hops[0].reason), int(engine::EndReason::Refused));
        QCOMPARE(back.chainText(), f.chainText());
    }
};

QTEST_GUILESS_MAIN(TestFlowJournal)
#include "tst_flow_journal.moc"

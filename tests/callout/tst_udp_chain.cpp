// A chain of two UDP redirectors in the sandbox, each a plain UDP socket that learns the flow
// with the SDK's UDP query and SETs the records on its upstream socket: records grow hop by hop,
// the flow id stays, the last upstream datagram goes direct (no loop), and the hop cap stops a
// redirect of a socket that carries a full chain.
#include "udp_fixtures.h"

using namespace udp_test;

namespace {

constexpr uint32_t kA = 801, kB = 802;

redirect_records_info decoded(const std::vector<uint8_t>& blob)
{
    redirect_records_info info{};
    redirect_records_decode(blob.data(), blob.size(), &info);
    return info;
}

// What a UDP redirector does with a datagram: learn its flow, pass the records on, forward it.
struct Forwarded {
    std::vector<uint8_t> records;
    std::string destination;
    Fd upstream;
    int error = 0;
};

Forwarded forward(int redirectorSock, const Datagram& got)
{
    Forwarded f;
    f.records = udpQuery(redirectorSock, got, IP_WFP_REDIRECT_RECORDS, &f.error);
    std::vector<uint8_t> context = udpQuery(redirectorSock, got, IP_WFP_REDIRECT_CONTEXT, &f.error);
    if (f.error)
        return f;
    sockaddr_storage to{};
    socklen_t len = 0;
    redirect_context_destination(context.data(), context.size(), &to, &len);
    f.destination = addressText(to);
    f.upstream = udpSocket(to.ss_family);
    size_t bytes = 0;
    if (redirect_ioctl(f.upstream.get(), SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS, f.records.data(), f.records.size(),
                       nullptr, 0, &bytes, nullptr, nullptr) != 0
        || ::sendto(f.upstream.get(), got.data.data(), got.data.size(), 0, reinterpret_cast<sockaddr*>(&to), len) < 0)
        f.error = errno;
    return f;
}

}  // namespace

class TestUdpChain : public QObject {
    Q_OBJECT

private slots:
    void twoRedirectorsNoLoop();
    void hopCapGoesDirect();
};

void TestUdpChain::twoRedirectorsNoLoop()
{
    LoadedCallout callout;
    UdpRedirector a(callout, kA, 0), b(callout, kB, 1);
    uint16_t destPort = 0;
    Fd dest = boundUdp(AF_INET, &destPort);
    QVERIFY(a.ok() && b.ok() && dest.valid());
    callout_rule rules[] = {udpRule(1, 0, destPort), udpRule(2, 1, destPort)};
    callout->setRules(rules);

    Fd app = udpSocket(AF_INET);
    QCOMPARE(sendTo(app.get(), AF_INET, destPort, "query"), 0);
    Datagram atA = receive(a.sock4.get());
    QCOMPARE(atA.data, std::string("query"));
    Forwarded fromA = forward(a.sock4.get(), atA);
    QCOMPARE(fromA.error, 0);
    QCOMPARE(hopIds(fromA.records), (std::vector<uint32_t>{kA}));
    QCOMPARE(fromA.destination, loopbackText(AF_INET, destPort));

    // A's upstream datagram: A sees itself, B takes it.
    Datagram atB = receive(b.sock4.get());
    QCOMPARE(atB.data, std::string("query"));
    Forwarded fromB = forward(b.sock4.get(), atB);
    QCOMPARE(fromB.error, 0);
    QCOMPARE(hopIds(fromB.records), (std::vector<uint32_t>{kA, kB}));
    QCOMPARE(fromB.destination, loopbackText(AF_INET, destPort));
    redirect_records_info atBInfo = decoded(fromB.records);
    QCOMPARE(int(atBInfo.hops[1].state), int(REDIRECT_STATE_REDIRECTED_BY_OTHER));
    QCOMPARE(atBInfo.flow_id, decoded(fromA.records).flow_id);

    // B's upstream datagram: A previously, B by self: nobody redirects, it reaches the server.
    Datagram atDest = receive(dest.get());
    QCOMPARE(atDest.data, std::string("query"));
    sockaddr_storage upstream{};
    socklen_t len = sizeof(upstream);
    ::getsockname(fromB.upstream.get(), reinterpret_cast<sockaddr*>(&upstream), &len);
    QCOMPARE(reinterpret_cast<sockaddr_in&>(atDest.from).sin_port, reinterpret_cast<sockaddr_in&>(upstream).sin_port);
    QCOMPARE(receive(a.sock4.get(), 200).error, ETIMEDOUT);  // no loop back to A

    auto events = udpEvents(callout, destPort);
    QCOMPARE(events.size(), size_t(3));
    QCOMPARE(int(events[0].verdict), int(CALLOUT_VERDICT_REDIRECT));
    QCOMPARE(events[0].redirector_id, kA);
    QCOMPARE(int(events[1].verdict), int(CALLOUT_VERDICT_REDIRECT));
    QCOMPARE(events[1].redirector_id, kB);
    QCOMPARE(int(events[2].verdict), int(CALLOUT_VERDICT_CHAIN_END));
    QCOMPARE(int(events[2].hop_count), 2);
    for (const callout_event& e : events)
        QCOMPARE(e.flow_id, atBInfo.flow_id);
}

void TestUdpChain::hopCapGoesDirect()
{
    OneRedirection r(kA);
    QVERIFY(r.ok());
    auto& [callout, a, destPort, dest, rule] = r;

    // A socket that carries a full chain of other redirectors.
    QList<uint32_t> others;
    for (uint32_t i = 0; i < REDIRECT_MAX_HOPS; ++i)
        others << 9000 + i;
    Fd app = udpSocket(AF_INET);
    QCOMPARE(sio_test::sioSet(app.get(), sio_test::recordsBlob(0x77, others)).rc, 0);
    QCOMPARE(sendTo(app.get(), AF_INET, destPort, "capped"), 0);
    QCOMPARE(receive(dest.get()).data, std::string("capped"));
    QCOMPARE(receive(a.sock4.get(), 200).error, ETIMEDOUT);
    auto events = udpEvents(callout, destPort);
    QCOMPARE(events.size(), size_t(1));
    QCOMPARE(int(events[0].verdict), int(CALLOUT_VERDICT_HOP_CAP));
    QCOMPARE(callout->stats()[CALLOUT_STAT_HOP_CAP], uint64_t(1));
}

REDIRECT_KERNEL_TEST_MAIN(TestUdpChain)
#include "tst_udp_chain.moc"

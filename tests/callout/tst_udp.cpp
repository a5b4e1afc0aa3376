// UDP through the callout with real sockets in the sandbox: connected sockets (connect4/6 and
// getpeername), unconnected ones (sendmsg4/6 rewrite, recvmsg4/6 restoring the reply's source),
// IPv4, IPv6 and v4-mapped; the redirector learns each flow through the SDK's UDP query; a
// socket no rule matches is untouched; block rules refuse with EPERM; idle flows end.
#include <thread>

#include "udp_fixtures.h"

using namespace udp_test;

namespace {

constexpr uint32_t kRedirectorId = 701;

std::string peerOf(int fd)
{
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    return ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 ? addressText(ss) : "error";
}

sockaddr_storage localAddress(int fd)
{
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    return ss;
}

uint16_t portOf(const sockaddr_storage& ss)
{
    return ntohs(ss.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in&>(ss).sin_port
                                         : reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
}

}  // namespace

class TestUdp : public QObject {
    Q_OBJECT

private slots:
    void redirectedFlow_data();
    void redirectedFlow();
    void unmatchedSocketIsUntouched();
    void blockRuleRefusesWithEperm();
    void queryErrors();
    void idleFlowEndsAndTheNextIsNew_data();
    void idleFlowEndsAndTheNextIsNew();
    void secondDestinationOfALiveFlowGoesDirect();
    void closingTheSocketEndsItsFlows();
};

void TestUdp::redirectedFlow_data()
{
    QTest::addColumn<int>("family");
    QTest::addColumn<bool>("mapped");
    QTest::addColumn<bool>("connected");
    for (bool connected : {true, false}) {
        const char* how = connected ? "connected" : "unconnected";
        QTest::addRow("%s ipv4", how) << AF_INET << false << connected;
        QTest::addRow("%s ipv6", how) << AF_INET6 << false << connected;
        QTest::addRow("%s v4-mapped", how) << AF_INET6 << true << connected;
    }
}

void TestUdp::redirectedFlow()
{
    QFETCH(int, family);
    QFETCH(bool, mapped);
    QFETCH(bool, connected);
    const int destFamily = mapped ? AF_INET : family;
    OneRedirection r(kRedirectorId, destFamily);
    QVERIFY(r.ok());
    auto& [callout, redirector, destPort, dest, rule] = r;

    Fd app = udpSocket(family);
    const std::string original = loopbackText(family, destPort, mapped);
    if (connected) {
        socklen_t len = 0;
        sockaddr_storage ss = loopbackAddress(family, destPort, &len, mapped);
        QCOMPARE(::connect(app.get(), reinterpret_cast<sockaddr*>(&ss), len), 0);
        QCOMPARE(peerOf(app.get()), original);  // getpeername shows the server, not the redirector
        QCOMPARE(::send(app.get(), "ping", 4, 0), ssize_t(4));
    } else {
        QCOMPARE(sendTo(app.get(), family, destPort, "ping", mapped), 0);
    }

    // The redirector got it from the application's own endpoint, and the SDK names the flow.
    Datagram got = receive(redirector.sock(destFamily));
    QCOMPARE(portOf(got.from), portOf(localAddress(app.get())));
    QCOMPARE(got.data, std::string("ping"));
    int error = 0;
    std::vector<uint8_t> context = udpQuery(redirector.sock(destFamily), got, IP_WFP_REDIRECT_CONTEXT, &error);
    QCOMPARE(error, 0);
    QCOMPARE(context.size(), size_t(REDIRECT_CONTEXT_HEADER_SIZE));
    // The kernel hands an AF_INET6 socket's v4-mapped sendto() to the IPv4 path (sendmsg4): the
    // context then names the IPv4 destination; the reply below still shows the mapped one.
    QCOMPARE(contextDestination(context), mapped && !connected ? loopbackText(AF_INET, destPort) : original);
    pid_t pid = 0;
    QCOMPARE(redirect_context_pid(context.data(), context.size(), &pid), 0);
    QCOMPARE(pid, ::getpid());
    std::vector<uint8_t> records = udpQuery(redirector.sock(destFamily), got, IPV6_WFP_REDIRECT_RECORDS, &error);
    QCOMPARE(error, 0);
    QCOMPARE(hopIds(records), std::vector<uint32_t>{kRedirectorId});

    // The reply's source is the server the application wrote to.
    QCOMPARE(sendBack(redirector.sock(destFamily), got, "pong"), 0);
    Datagram reply = receive(app.get());
    QCOMPARE(reply.data, std::string("pong"));
    QCOMPARE(reply.source(), original);

    // A later datagram of the flow goes the same way and makes no new event.
    if (connected)
        QCOMPARE(::send(app.get(), "again", 5, 0), ssize_t(5));
    else
        QCOMPARE(sendTo(app.get(), family, destPort, "again", mapped), 0);
    QCOMPARE(receive(redirector.sock(destFamily)).data, std::string("again"));
    QCOMPARE(receive(dest.get(), 200).error, ETIMEDOUT);  // the server itself got nothing
    auto events = udpEvents(callout, destPort);
    QCOMPARE(events.size(), size_t(1));
    QCOMPARE(int(events[0].verdict), int(CALLOUT_VERDICT_REDIRECT));
    QCOMPARE(events[0].redirector_id, kRedirectorId);
    QCOMPARE(int(events[0].family), mapped && !connected ? AF_INET : family);
    QVERIFY(callout->stats()[CALLOUT_STAT_UDP_HANDOFFS] >= 1);
}

void TestUdp::unmatchedSocketIsUntouched()
{
    LoadedCallout callout;
    UdpRedirector redirector(callout, kRedirectorId, 0);
    uint16_t destPort = 0, otherPort = 0;
    Fd dest = boundUdp(AF_INET, &destPort);
    Fd other = boundUdp(AF_INET, &otherPort);
    QVERIFY(redirector.ok() && dest.valid() && other.valid());
    callout_rule rule = udpRule(1, 0, otherPort);  // matches another port only
    callout->setRules({&rule, 1});

    Fd app = udpSocket(AF_INET);
    for (int i = 0; i < 3; ++i)
        QCOMPARE(sendTo(app.get(), AF_INET, destPort, "direct"), 0);
    for (int i = 0; i < 3; ++i) {
        Datagram got = receive(dest.get());
        QCOMPARE(got.data, std::string("direct"));
        QCOMPARE(portOf(got.from), portOf(localAddress(app.get())));  // from the application itself
        if (i == 0) {
            int error = 0;
            udpQuery(dest.get(), got, IP_WFP_REDIRECT_CONTEXT, &error);
            QCOMPARE(error, ENOENT);
            QCOMPARE(sendBack(dest.get(), got, "answer"), 0);
        }
    }
    Datagram reply = receive(app.get());
    QCOMPARE(reply.source(), loopbackText(AF_INET, destPort));
    QCOMPARE(receive(redirector.sock4.get(), 200).error, ETIMEDOUT);
    // One flow, one event: later datagrams of a decided flow are not classified again.
    auto events = udpEvents(callout, destPort);
    QCOMPARE(events.size(), size_t(1));
    QCOMPARE(int(events[0].verdict), int(CALLOUT_VERDICT_DIRECT));
}

void TestUdp::blockRuleRefusesWithEperm()
{
    LoadedCallout callout;
    uint16_t udpPort = 0;
    Fd udpDest = boundUdp(AF_INET, &udpPort);
    QVERIFY(udpDest.valid());
    // A TCP server on the same port number: a UDP block rule leaves TCP alone.
    TcpServer tcp(AF_INET, "tcp ok");
    callout_rule rules[] = {udpRule(1, 0, udpPort, CALLOUT_ACTION_BLOCK), udpRule(2, 0, tcp.port(), CALLOUT_ACTION_BLOCK)};
    callout->setRules(rules);

    Fd app = udpSocket(AF_INET);
    QCOMPARE(sendTo(app.get(), AF_INET, udpPort, "quic"), EPERM);
    QCOMPARE(sendTo(app.get(), AF_INET, udpPort, "quic"), EPERM);  // remembered: still refused
    Fd app6 = udpSocket(AF_INET6);
    QCOMPARE(sendTo(app6.get(), AF_INET, udpPort, "quic", true), EPERM);  // v4-mapped too
    Fd connected = udpSocket(AF_INET);
    socklen_t len = 0;
    sockaddr_storage ss = loopbackAddress(AF_INET, udpPort, &len);
    QCOMPARE(::connect(connected.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0 ? 0 : errno, EPERM);
    QCOMPARE(receive(udpDest.get(), 200).error, ETIMEDOUT);

    // TCP to a port a UDP rule blocks still connects.
    int fd = connectLoopback(AF_INET, tcp.port());
    QVERIFY2(fd >= 0, strerror(-fd));
    ::close(fd);

    // A TCP block rule refuses the connect itself.
    callout_rule tcpBlock = makeRedirectRule(3, 0, tcp.port(), tcp.port());
    tcpBlock.action = CALLOUT_ACTION_BLOCK;
    callout->setRules({&tcpBlock, 1});
    QCOMPARE(connectLoopback(AF_INET, tcp.port()), -EPERM);
    QCOMPARE(connectLoopback(AF_INET6, tcp.port(), true), -EPERM);

    auto events = udpEvents(callout, udpPort);
    QCOMPARE(events.size(), size_t(3));  // two sockets sent, one connected; the repeat made none
    for (const callout_event& e : events) {
        QCOMPARE(int(e.verdict), int(CALLOUT_VERDICT_BLOCK));
        QCOMPARE(e.rule_id, 1u);
    }
    QCOMPARE(callout->stats()[CALLOUT_STAT_BLOCKED], uint64_t(5));
}

void TestUdp::queryErrors()
{
    OneRedirection r(kRedirectorId);
    QVERIFY(r.ok());
    auto& [callout, redirector, destPort, dest, rule] = r;
    Fd app = udpSocket(AF_INET);
    QCOMPARE(sendTo(app.get(), AF_INET, destPort, "ping"), 0);
    Datagram got = receive(redirector.sock4.get());
    QCOMPARE(got.error, 0);
    const sockaddr* from = reinterpret_cast<const sockaddr*>(&got.from);
    unsigned char buf[512];
    size_t bytes = 0;
    auto call = [&](int sock, const sockaddr* source, socklen_t len, int option, void* out, size_t size,
                    size_t* returned) {
        errno = 0;
        int rc = redirect_udp_query(sock, source, len, option, out, size, returned);
        return rc == 0 ? 0 : errno;
    };
    // Buffer too small, including size 0: EINVAL with the size needed.
    QCOMPARE(call(redirector.sock4.get(), from, got.fromLen, IP_WFP_REDIRECT_RECORDS, buf, 4, &bytes), EINVAL);
    QCOMPARE(bytes, size_t(REDIRECT_RECORDS_SIZE(1)));
    QCOMPARE(call(redirector.sock4.get(), from, got.fromLen, IP_WFP_REDIRECT_CONTEXT, nullptr, 0, &bytes), EINVAL);
    QCOMPARE(bytes, size_t(REDIRECT_CONTEXT_HEADER_SIZE));
    QCOMPARE(call(redirector.sock4.get(), from, got.fromLen, 61, buf, sizeof(buf), &bytes), EINVAL);
    QCOMPARE(call(redirector.sock4.get(), from, 4, IP_WFP_REDIRECT_RECORDS, buf, sizeof(buf), &bytes), EINVAL);
    QCOMPARE(call(redirector.sock4.get(), nullptr, 0, IP_WFP_REDIRECT_RECORDS, buf, sizeof(buf), &bytes), EFAULT);
    QCOMPARE(call(redirector.sock4.get(), from, got.fromLen, IP_WFP_REDIRECT_RECORDS, buf, sizeof(buf), nullptr),
             EFAULT);
    QCOMPARE(call(redirector.sock4.get(), from, got.fromLen, IP_WFP_REDIRECT_RECORDS, nullptr, 8, &bytes), EFAULT);
    // Not the redirector's socket: another UDP socket, a TCP socket, no socket at all.
    QCOMPARE(call(dest.get(), from, got.fromLen, IP_WFP_REDIRECT_RECORDS, buf, sizeof(buf), &bytes), ENOENT);
    Fd tcp = sio_test::tcpSocket();
    QCOMPARE(call(tcp.get(), from, got.fromLen, IP_WFP_REDIRECT_RECORDS, buf, sizeof(buf), &bytes), EINVAL);
    Fd unbound = udpSocket(AF_INET);
    QCOMPARE(call(unbound.get(), from, got.fromLen, IP_WFP_REDIRECT_RECORDS, buf, sizeof(buf), &bytes), EINVAL);
    int pipeFds[2];
    QCOMPARE(::pipe(pipeFds), 0);
    QCOMPARE(call(pipeFds[0], from, got.fromLen, IP_WFP_REDIRECT_RECORDS, buf, sizeof(buf), &bytes), ENOTSOCK);
    ::close(pipeFds[0]);
    ::close(pipeFds[1]);
    // A source that sent nothing through the callout.
    sockaddr_in stranger = reinterpret_cast<const sockaddr_in&>(got.from);
    stranger.sin_port = htons(uint16_t(ntohs(stranger.sin_port) ^ 1));
    QCOMPARE(call(redirector.sock4.get(), reinterpret_cast<sockaddr*>(&stranger), sizeof(stranger),
                  IP_WFP_REDIRECT_RECORDS, buf, sizeof(buf), &bytes),
             ENOENT);
    // And the right question still answers.
    QCOMPARE(call(redirector.sock4.get(), from, got.fromLen, IP_WFP_REDIRECT_RECORDS, buf, sizeof(buf), &bytes), 0);
    QCOMPARE(bytes, size_t(REDIRECT_RECORDS_SIZE(1)));
}

void TestUdp::idleFlowEndsAndTheNextIsNew_data()
{
    QTest::addColumn<bool>("connected");
    QTest::newRow("unconnected") << false;
    // A connected socket's sends run no hook: its next flow starts at the redirector's receipt.
    QTest::newRow("connected") << true;
}

void TestUdp::idleFlowEndsAndTheNextIsNew()
{
    QFETCH(bool, connected);
    OneRedirection r(kRedirectorId, AF_INET, 1);
    QVERIFY(r.ok());
    auto& [callout, redirector, destPort, dest, rule] = r;

    Fd app = udpSocket(AF_INET);
    auto send = [&](const std::string& data) {
        if (!connected)
            return sendTo(app.get(), AF_INET, destPort, data);
        return ::send(app.get(), data.data(), data.size(), 0) == ssize_t(data.size()) ? 0 : errno;
    };
    if (connected) {
        socklen_t len = 0;
        sockaddr_storage ss = loopbackAddress(AF_INET, destPort, &len);
        QCOMPARE(::connect(app.get(), reinterpret_cast<sockaddr*>(&ss), len), 0);
    }
    QCOMPARE(send("one"), 0);
    Datagram first = receive(redirector.sock4.get());
    QCOMPARE(first.data, std::string("one"));
    std::vector<uint8_t> before = udpQuery(redirector.sock4.get(), first, IP_WFP_REDIRECT_RECORDS);
    std::vector<uint8_t> contextBefore = udpQuery(redirector.sock4.get(), first, IP_WFP_REDIRECT_CONTEXT);
    // Past the rule's idle timeout the flow is over (a wait, not a timing assertion).
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    QCOMPARE(send("two"), 0);
    Datagram second = receive(redirector.sock4.get());
    QCOMPARE(second.data, std::string("two"));
    std::vector<uint8_t> after = udpQuery(redirector.sock4.get(), second, IP_WFP_REDIRECT_RECORDS);
    redirect_records_info a{}, b{};
    QCOMPARE(redirect_records_decode(before.data(), before.size(), &a), 0);
    QCOMPARE(redirect_records_decode(after.data(), after.size(), &b), 0);
    QVERIFY(a.flow_id != b.flow_id);  // a new flow, classified again from scratch
    QCOMPARE(b.hop_count, 1u);
    std::vector<uint8_t> contextAfter = udpQuery(redirector.sock4.get(), second, IP_WFP_REDIRECT_CONTEXT);
    QCOMPARE(contextDestination(contextAfter), loopbackText(AF_INET, destPort));
    uint64_t startedBefore = 0, startedAfter = 0;  // the context's redirect time: the flow's start
    QVERIFY(contextBefore.size() >= 80 && contextAfter.size() >= 80);
    std::memcpy(&startedBefore, contextBefore.data() + 72, 8);
    std::memcpy(&startedAfter, contextAfter.data() + 72, 8);
    QVERIFY(startedAfter > startedBefore);
    auto events = udpEvents(callout, destPort);
    QCOMPARE(events.size(), size_t(2));
    QCOMPARE(events[0].flow_id, a.flow_id);
    QCOMPARE(events[1].flow_id, b.flow_id);
    for (const callout_event& e : events) {
        QCOMPARE(int(e.verdict), int(CALLOUT_VERDICT_REDIRECT));
        QCOMPARE(e.redirector_id, kRedirectorId);
        QCOMPARE(e.pid, uint32_t(::getpid()));  // the application's, also when the redirector's receipt made it
        QCOMPARE(int(e.hop_count), 1);
    }
}

void TestUdp::closingTheSocketEndsItsFlows()
{
    OneRedirection r(kRedirectorId);
    QVERIFY(r.ok());
    auto& [callout, redirector, destPort, dest, rule] = r;
    uint16_t otherPort = 0;
    Fd other = boundUdp(AF_INET, &otherPort);  // no rule: its datagrams go direct
    QVERIFY(other.valid());

    Fd redirected = udpSocket(AF_INET);
    QCOMPARE(sendTo(redirected.get(), AF_INET, destPort, "ping"), 0);
    Datagram got = receive(redirector.sock4.get());
    QCOMPARE(got.data, std::string("ping"));
    const uint16_t appPort = portOf(got.from);
    QCOMPARE(sendBack(redirector.sock4.get(), got, "pong"), 0);  // the redirector's reply is no flow
    QCOMPARE(receive(redirected.get()).data, std::string("pong"));
    Fd direct = udpSocket(AF_INET);
    QCOMPARE(sendTo(direct.get(), AF_INET, otherPort, "hello"), 0);
    QCOMPARE(receive(other.get()).data, std::string("hello"));
    Fd silent = udpSocket(AF_INET);  // no hook decided anything for it

    auto flows = udpEvents(callout, destPort);
    auto directs = udpEvents(callout, otherPort);
    QCOMPARE(flows.size(), size_t(1));
    QCOMPARE(directs.size(), size_t(1));
    QCOMPARE(int(directs[0].verdict), int(CALLOUT_VERDICT_DIRECT));
    QVERIFY(udpEvents(callout, appPort).empty());

    redirected.reset();
    direct.reset();
    silent.reset();
    callout.drain();
    std::vector<callout_event> closed;
    for (const callout_event& e : callout.events())
        if (e.verdict == CALLOUT_VERDICT_CLOSED && e.protocol == IPPROTO_UDP)
            closed.push_back(e);
    QCOMPARE(closed.size(), size_t(2));
    const callout_event* ofRedirected = nullptr;
    const callout_event* ofDirect = nullptr;
    for (const callout_event& e : closed)
        (e.cookie == flows[0].cookie ? ofRedirected : ofDirect) = &e;
    QVERIFY(ofRedirected && ofDirect);
    QCOMPARE(ofRedirected->flow_id, flows[0].flow_id);  // names the live redirected flow
    QCOMPARE(ofRedirected->redirector_id, kRedirectorId);
    QCOMPARE(ofDirect->cookie, directs[0].cookie);
    QCOMPARE(ofDirect->flow_id, directs[0].flow_id);  // a direct flow is named by its cookie
    QCOMPARE(ofDirect->redirector_id, 0u);
}

void TestUdp::secondDestinationOfALiveFlowGoesDirect()
{
    LoadedCallout callout;
    UdpRedirector redirector(callout, kRedirectorId, 0);
    uint16_t port1 = 0, port2 = 0;
    Fd dest1 = boundUdp(AF_INET, &port1);
    Fd dest2 = boundUdp(AF_INET, &port2);
    QVERIFY(redirector.ok() && dest1.valid() && dest2.valid());
    callout_rule rules[] = {udpRule(1, 0, port1), udpRule(2, 0, port2)};
    callout->setRules(rules);

    // One unconnected socket, two destinations: the redirector could not tell their datagrams
    // (nor the application their replies) apart, so the second goes direct while the first lives.
    Fd app = udpSocket(AF_INET);
    QCOMPARE(sendTo(app.get(), AF_INET, port1, "first"), 0);
    QCOMPARE(sendTo(app.get(), AF_INET, port2, "second"), 0);
    Datagram viaRedirector = receive(redirector.sock4.get());
    QCOMPARE(viaRedirector.data, std::string("first"));
    QCOMPARE(contextDestination(udpQuery(redirector.sock4.get(), viaRedirector, IP_WFP_REDIRECT_CONTEXT)),
             loopbackText(AF_INET, port1));
    Datagram direct = receive(dest2.get());
    QCOMPARE(direct.data, std::string("second"));
    QCOMPARE(portOf(direct.from), portOf(localAddress(app.get())));
    auto busy = udpEvents(callout, port2);
    QCOMPARE(busy.size(), size_t(1));
    QCOMPARE(int(busy[0].verdict), int(CALLOUT_VERDICT_BUSY));
    QCOMPARE(callout->stats()[CALLOUT_STAT_UDP_BUSY], uint64_t(1));
}

REDIRECT_KERNEL_TEST_MAIN(TestUdp)
#include "tst_udp.moc"

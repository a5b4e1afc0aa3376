// The proxy SDK (redirect/sio.h) against a live callout and real sockets:
// one test function per row of the behaviour table of redirect_ioctl(),
// each checking the return value, errno and *bytes_returned exactly.
// Queries and SET here; bad requests, rights and overlapped calls in tst_sio_errors.
#include <fstream>
#include <string>

#include <fcntl.h>

#include "sio_fixtures.h"

using namespace sio_test;

namespace {

std::string ownComm()
{
    std::ifstream f("/proc/self/comm");
    std::string comm;
    std::getline(f, comm);
    return comm;
}

}  // namespace

class TestSio : public QObject {
    Q_OBJECT

private slots:
    void queryAcceptedSocket();
    void queryBufferTooSmall();
    void queryWithoutRecords();
    void queryBoth();
    void setOnUnconnectedSocket_data();
    void setOnUnconnectedSocket();
    void setWithOutputBuffer();
    void setMalformedBlob_data();
    void setMalformedBlob();
    void setOnUnsuitableSocket();
};

void TestSio::queryAcceptedSocket()
{
    Redirection r;
    QVERIFY(r.connectApp());
    redirect_records_info info{};
    QCOMPARE(queryRecords(r.accepted.get(), &info), (Result{0, 0, kRecords1}));
    QCOMPARE(info.hop_count, 1u);
    QCOMPARE(info.flow_id, socketCookie(r.app.get()));  // a fresh chain is named after the client socket
    QCOMPARE(info.hops[0].redirector_id, kRedirectorId);
    QCOMPARE(info.hops[0].state, uint8_t(REDIRECT_STATE_NOT_REDIRECTED));
    QCOMPARE(info.hops[0].flags, uint8_t(0));

    unsigned char context[256], exact[kContext];
    QCOMPARE(sio(r.accepted.get(), kQueryContext, nullptr, 0, context, sizeof(context)), (Result{0, 0, kContext}));
    sockaddr_storage destination{};
    socklen_t length = 0;
    QCOMPARE(redirect_context_destination(context, kContext, &destination, &length), 0);
    QCOMPARE(length, socklen_t(sizeof(sockaddr_in)));
    QCOMPARE(addressText(destination), "127.0.0.1:" + std::to_string(r.destPort4));
    pid_t pid = 0;
    uid_t uid = 1;
    char comm[16] = "x";
    QCOMPARE(redirect_context_pid(context, kContext, &pid), 0);
    QCOMPARE(pid, ::getpid());
    QCOMPARE(redirect_context_uid(context, kContext, &uid), 0);
    QCOMPARE(uid, uid_t(0));
    QCOMPARE(redirect_context_comm(context, kContext, comm, sizeof(comm)), 0);
    QCOMPARE(std::string(comm), ownComm());
    // A buffer of exactly the blob size is enough.
    QCOMPARE(sio(r.accepted.get(), kQueryContext, nullptr, 0, exact, sizeof(exact)), (Result{0, 0, kContext}));
    QVERIFY(std::memcmp(exact, context, kContext) == 0);
}

void TestSio::queryBufferTooSmall()
{
    Redirection r;
    QVERIFY(r.connectApp());
    struct {
        uint32_t code;
        size_t size, need;
    } cases[] = {{kQueryRecords, 0, kRecords1}, {kQueryRecords, 1, kRecords1}, {kQueryRecords, kRecords1 - 1, kRecords1},
                 {kQueryContext, 0, kContext},  {kQueryContext, 24, kContext}, {kQueryContext, kContext - 1, kContext}};
    for (const auto& c : cases) {
        QByteArray buffer(256, char(0xAA));
        void* out = c.size ? buffer.data() : nullptr;  // size 0 goes with a NULL buffer
        QCOMPARE(sio(r.accepted.get(), c.code, nullptr, 0, out, c.size), (Result{-1, EINVAL, c.need}));
        QCOMPARE(buffer, QByteArray(256, char(0xAA)));  // nothing written on failure
    }
}

void TestSio::queryWithoutRecords()
{
    Redirection r;
    QVERIFY(r.connectApp());
    // A direct connection (no rule for this port): neither end was redirected.
    uint16_t plainPort = 0;
    Fd plain(listenLoopback(AF_INET, &plainPort)), direct = tcpSocket();
    QCOMPARE(connectTo(direct.get(), AF_INET, plainPort), 0);
    Fd directAccepted = acceptWithin(plain.get());
    QVERIFY(directAccepted.valid());
    unsigned char out[256];
    // The application's end of a redirected connection carries records too, but for the callout only.
    for (int fd : {directAccepted.get(), direct.get(), r.proxy4.get(), r.app.get()}) {
        for (uint32_t code : {kQueryRecords, kQueryContext})
            QCOMPARE(sio(fd, code, nullptr, 0, out, sizeof(out)), (Result{-1, ENOENT, 0}));
    }
}

// redirect_query_both(): the two QUERY answers, byte for byte, from one look-up.
void TestSio::queryBoth()
{
    Redirection r;
    QVERIFY(r.connectApp());
    unsigned char records[256], context[256], oneRecords[256], oneContext[256];
    size_t rn = 1, cn = 1;
    QCOMPARE(redirect_query_both(r.accepted.get(), records, sizeof(records), &rn, context, sizeof(context), &cn), 0);
    QCOMPARE(rn, kRecords1);
    QCOMPARE(cn, kContext);
    QCOMPARE(sio(r.accepted.get(), kQueryRecords, nullptr, 0, oneRecords, sizeof(oneRecords)), (Result{0, 0, kRecords1}));
    QCOMPARE(sio(r.accepted.get(), kQueryContext, nullptr, 0, oneContext, sizeof(oneContext)), (Result{0, 0, kContext}));
    QVERIFY(std::memcmp(records, oneRecords, kRecords1) == 0);
    QVERIFY(std::memcmp(context, oneContext, kContext) == 0);

    // Either buffer too small: EINVAL, both sizes told, neither buffer written.
    for (auto [rs, cs] : {std::pair<size_t, size_t>{kRecords1 - 1, sizeof(context)}, {sizeof(records), kContext - 1}}) {
        QByteArray rb(256, char(0xAA)), cb(256, char(0xAA));
        rn = cn = 0;
        errno = 0;
        QCOMPARE(redirect_query_both(r.accepted.get(), rb.data(), rs, &rn, cb.data(), cs, &cn), -1);
        QCOMPARE(errno, EINVAL);
        QCOMPARE(rn, kRecords1);
        QCOMPARE(cn, kContext);
        QCOMPARE(rb, QByteArray(256, char(0xAA)));
        QCOMPARE(cb, QByteArray(256, char(0xAA)));
    }
    // Not redirected to us, not a socket, no room for the sizes.
    errno = 0;
    QCOMPARE(redirect_query_both(r.app.get(), records, sizeof(records), &rn, context, sizeof(context), &cn), -1);
    QCOMPARE(errno, ENOENT);
    Fd file(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    errno = 0;
    QCOMPARE(redirect_query_both(file.get(), records, sizeof(records), &rn, context, sizeof(context), &cn), -1);
    QCOMPARE(errno, ENOTSOCK);
    errno = 0;
    QCOMPARE(redirect_query_both(r.accepted.get(), records, sizeof(records), nullptr, context, sizeof(context), &cn), -1);
    QCOMPARE(errno, EFAULT);
}

void TestSio::setOnUnconnectedSocket_data()
{
    QTest::addColumn<int>("family");
    QTest::addColumn<bool>("lastHopIsSelf");
    QTest::newRow("ipv4, chain ends with this redirector") << AF_INET << true;
    QTest::newRow("ipv4, chain from another redirector") << AF_INET << false;
    QTest::newRow("ipv6, chain ends with this redirector") << AF_INET6 << true;
    QTest::newRow("ipv6, chain from another redirector") << AF_INET6 << false;
}

void TestSio::setOnUnconnectedSocket()
{
    QFETCH(int, family);
    QFETCH(bool, lastHopIsSelf);
    Redirection r;
    QVERIFY(r.ok());
    Fd sock = tcpSocket(family);
    QByteArray blob = recordsBlob(kFlowId, {lastHopIsSelf ? kRedirectorId : kOtherId});
    QCOMPARE(sioSet(sock.get(), blob), (Result{0, 0, size_t(blob.size())}));

    uint64_t cookie = socketCookie(sock.get());
    if (lastHopIsSelf) {
        // The redirector already took this flow: the connect goes straight to the destination.
        QCOMPARE(connectTo(sock.get(), family, r.destPort(family)), 0);
        QVERIFY(r.callout.waitForEvent([&](const callout_event& e) {
            return e.cookie == cookie && e.verdict == CALLOUT_VERDICT_CHAIN_END && e.flow_id == kFlowId &&
                   e.state == CALLOUT_STATE_REDIRECTED_BY_SELF && (e.flags & CALLOUT_FLAG_HAD_RECORDS);
        }));
        QVERIFY(acceptWithin(r.dest(family)).valid());
        QVERIFY(!acceptWithin(r.proxy(family), 0).valid());
        return;
    }
    Fd accepted = r.redirect(sock.get(), family);
    QVERIFY(accepted.valid());
    redirect_records_info info{};
    QCOMPARE(queryRecords(accepted.get(), &info), (Result{0, 0, size_t(REDIRECT_RECORDS_SIZE(2))}));
    QCOMPARE(info.hop_count, 2u);
    QCOMPARE(info.flow_id, kFlowId);
    QCOMPARE(info.hops[0].redirector_id, kOtherId);
    QCOMPARE(info.hops[1].redirector_id, kRedirectorId);
    QCOMPARE(info.hops[1].state, uint8_t(REDIRECT_STATE_REDIRECTED_BY_OTHER));
}

void TestSio::setWithOutputBuffer()
{
    Redirection r;
    QVERIFY(r.ok());
    QByteArray blob = recordsBlob(kFlowId, {kOtherId});
    unsigned char out[64];
    struct {
        void* out;
        size_t size;
    } cases[] = {{out, sizeof(out)}, {out, 0}, {nullptr, sizeof(out)}, {nullptr, 1}};
    for (const auto& c : cases) {
        Fd sock = tcpSocket();
        QCOMPARE(sio(sock.get(), kSet, blob.constData(), size_t(blob.size()), c.out, c.size), (Result{-1, EINVAL, 0}));
    }
}

void TestSio::setMalformedBlob_data()
{
    QTest::addColumn<QByteArray>("blob");
    const QByteArray good = recordsBlob(kFlowId, {kOtherId});
    auto with = [&](qsizetype offset, const auto& value) {
        QByteArray b = good;
        put(b, offset, value);
        return b;
    };
    QTest::newRow("bad magic") << with(0, uint32_t(0x31524453));
    QTest::newRow("version 0") << with(4, uint16_t(0));
    QTest::newRow("version 2") << with(4, uint16_t(2));
    QTest::newRow("hop count 0") << recordsBlob(kFlowId, {});
    QTest::newRow("hop count 9") << recordsBlob(kFlowId, {1, 2, 3, 4, 5, 6, 7, 8, kOtherId});
    QTest::newRow("hop count 2, size of 1") << with(6, uint16_t(2));
    QTest::newRow("truncated by 1 byte") << good.left(good.size() - 1);
    QTest::newRow("1 extra trailing byte") << good + '\0';
    QTest::newRow("flow id 0") << with(8, uint64_t(0));
    QTest::newRow("redirector id 0") << with(16, uint32_t(0));
    QTest::newRow("unknown state") << with(20, uint8_t(4));
    QTest::newRow("unknown hop flag") << with(21, uint8_t(0x80));
    QTest::newRow("nonzero reserved field") << with(22, uint16_t(1));
    QTest::newRow("smaller than the header") << good.left(8);
    QTest::newRow("empty") << QByteArray("", 0);
}

void TestSio::setMalformedBlob()
{
    QFETCH(QByteArray, blob);
    Redirection r;
    QVERIFY(r.ok());
    Fd sock = tcpSocket();
    QCOMPARE(sioSet(sock.get(), blob), (Result{-1, EINVAL, 0}));

    // Nothing attached: the connect starts a fresh chain of one hop named after this socket.
    uint64_t cookie = socketCookie(sock.get());
    Fd accepted = r.redirect(sock.get());
    QVERIFY(accepted.valid());
    redirect_records_info info{};
    QCOMPARE(queryRecords(accepted.get(), &info), (Result{0, 0, kRecords1}));
    QCOMPARE(info.hop_count, 1u);
    QCOMPARE(info.flow_id, cookie);
    QCOMPARE(info.hops[0].redirector_id, kRedirectorId);
    QVERIFY(r.callout.waitForEvent([&](const callout_event& e) {
        return e.cookie == cookie && e.verdict == CALLOUT_VERDICT_REDIRECT && !(e.flags & CALLOUT_FLAG_HAD_RECORDS);
    }));
}

void TestSio::setOnUnsuitableSocket()
{
    Redirection r;
    QVERIFY(r.connectApp());
    uint16_t plainPort = 0;
    Fd plain(listenLoopback(AF_INET, &plainPort)), connected = tcpSocket();
    QCOMPARE(connectTo(connected.get(), AF_INET, plainPort), 0);
    // UDP takes records while unconnected (tst_udp_chain); a connected UDP socket is past its classification.
    Fd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)), unixStream(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    QVERIFY(plain.valid() && udp.valid() && unixStream.valid());
    QCOMPARE(connectTo(udp.get(), AF_INET, plainPort), 0);
    QByteArray blob = recordsBlob(kFlowId, {kOtherId});
    for (int fd : {connected.get(), r.app.get(), r.accepted.get(), plain.get(), udp.get(), unixStream.get()})
        QCOMPARE(sioSet(fd, blob), (Result{-1, EINVAL, 0}));
}

REDIRECT_KERNEL_TEST_MAIN(TestSio)
#include "tst_sio.moc"

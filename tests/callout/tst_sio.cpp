// The proxy SDK (redirect/sio.h) against a live callout and real sockets:
// one test function per row of the behaviour table of redirect_ioctl(),
// each checking the return value, errno and *bytes_returned exactly.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel_test.h"
#include "redirect/sio.h"

using namespace redirect;
using namespace redirect::test;

namespace {

constexpr uint32_t kRedirectorId = 501;
constexpr uint32_t kOtherId = 4242;  // a redirector of another product, earlier in the chain
constexpr uint64_t kFlowId = 0x1122334455667788ull;
constexpr size_t kUnset = 0xDEADBEEF;  // proves *bytes_returned was written
constexpr size_t kRecords1 = REDIRECT_RECORDS_SIZE(1);
constexpr size_t kContext = REDIRECT_CONTEXT_HEADER_SIZE;
constexpr uint32_t kQueryRecords = SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS;
constexpr uint32_t kQueryContext = SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT;
constexpr uint32_t kSet = SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS;

// Owned descriptor; negative values (the sandbox helpers' -errno) are "none".
struct Fd {
    int fd;
    explicit Fd(int f = -1) : fd(f) {}
    Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
    Fd& operator=(Fd&& o) noexcept
    {
        reset();
        fd = std::exchange(o.fd, -1);
        return *this;
    }
    ~Fd() { reset(); }
    int get() const { return fd; }
    bool valid() const { return fd >= 0; }
    void reset()
    {
        if (fd >= 0)
            ::close(std::exchange(fd, -1));
    }
};

Fd tcpSocket(int family = AF_INET) { return Fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)); }

// Outcome of one redirect_ioctl(): compared as a whole so a failure prints all three.
struct Result {
    int rc;
    int error;  // errno when rc == -1, else 0
    size_t bytes;
    bool operator==(const Result&) const = default;
};

char* toString(const Result& r)
{
    return QTest::toString(QString("rc=%1 errno=%2(%3) bytes=%4")
                               .arg(r.rc)
                               .arg(r.error ? strerrorname_np(r.error) : "0")
                               .arg(r.error)
                               .arg(r.bytes == kUnset ? QString("unset") : QString::number(r.bytes)));
}

Result sio(int fd, uint32_t code, const void* in, size_t inSize, void* out, size_t outSize)
{
    size_t bytes = kUnset;
    errno = 0;
    int rc = redirect_ioctl(fd, code, in, inSize, out, outSize, &bytes, nullptr, nullptr);
    return {rc, rc == 0 ? 0 : errno, bytes};
}

Result sioSet(int fd, const QByteArray& blob)
{
    return sio(fd, kSet, blob.constData(), size_t(blob.size()), nullptr, 0);
}

void put(QByteArray& blob, qsizetype offset, const auto& value)
{
    std::memcpy(blob.data() + offset, &value, sizeof(value));
}

// A records blob as sio.h documents it; the last hop is the redirector that took the flow.
QByteArray recordsBlob(uint64_t flowId, const QList<uint32_t>& ids)
{
    QByteArray blob(qsizetype(REDIRECT_RECORDS_SIZE(ids.size())), '\0');
    put(blob, 0, uint32_t(REDIRECT_RECORDS_MAGIC));
    put(blob, 4, uint16_t(REDIRECT_RECORDS_VERSION));
    put(blob, 6, uint16_t(ids.size()));
    put(blob, 8, flowId);
    for (qsizetype i = 0; i < ids.size(); ++i) {
        put(blob, 16 + 8 * i, ids[i]);
        blob[16 + 8 * i + 4] = char(i == 0 ? REDIRECT_STATE_NOT_REDIRECTED : REDIRECT_STATE_REDIRECTED_BY_OTHER);
    }
    return blob;
}

uint64_t socketCookie(int fd)
{
    uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    return ::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) == 0 ? cookie : 0;
}

int connectTo(int fd, int family, uint16_t port)
{
    socklen_t len = 0;
    sockaddr_storage ss = loopbackAddress(family, port, &len);
    return ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 ? 0 : errno;
}

// Bounded: a connection that was not redirected never reaches the proxy listener.
Fd acceptWithin(int listener, int timeoutMs = 3000)
{
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, timeoutMs) != 1)
        return Fd();
    return Fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
}

std::string ownComm()
{
    std::ifstream f("/proc/self/comm");
    std::string comm;
    std::getline(f, comm);
    return comm;
}

// A loaded callout redirecting TCP to 127.0.0.1:destPort(4) and [::1]:destPort(6) to
// listeners of this process, whose accepted sockets carry the callout's records.
struct Redirection {
    LoadedCallout callout;
    uint16_t proxyPort4 = 0, proxyPort6 = 0, destPort4 = 0, destPort6 = 0;
    Fd proxy4{listenLoopback(AF_INET, &proxyPort4)};
    Fd proxy6{listenLoopback(AF_INET6, &proxyPort6)};
    Fd dest4{listenLoopback(AF_INET, &destPort4)};
    Fd dest6{listenLoopback(AF_INET6, &destPort6)};

    Redirection()
    {
        // Owner pid 0: the clients are this process, which must not get its records "repaired".
        callout->setRedirector(0, makeRedirector(kRedirectorId, proxyPort4, proxyPort6, 0, sandbox().netnsCookie()));
        callout_rule rules[] = {makeRedirectRule(1, 0, destPort4, destPort4), makeRedirectRule(2, 0, destPort6, destPort6)};
        callout->setRules(rules);
    }
    bool ok() const { return proxy4.valid() && proxy6.valid() && dest4.valid() && dest6.valid(); }
    uint16_t destPort(int family) const { return family == AF_INET ? destPort4 : destPort6; }
    int proxy(int family) const { return family == AF_INET ? proxy4.get() : proxy6.get(); }
    int dest(int family) const { return family == AF_INET ? dest4.get() : dest6.get(); }

    /// Connect `client` to the redirected destination; the proxy's accepted socket, or invalid.
    Fd redirect(int client, int family = AF_INET)
    {
        return connectTo(client, family, destPort(family)) == 0 ? acceptWithin(proxy(family)) : Fd();
    }
    /// One redirected connection of this process: `app` its end, `accepted` the proxy's.
    bool connectApp() { return ok() && (accepted = redirect(app.get())).valid(); }
    Fd app = tcpSocket(), accepted;
};

Result queryRecords(int fd, redirect_records_info* info)
{
    unsigned char blob[REDIRECT_RECORDS_SIZE(REDIRECT_MAX_HOPS)];
    Result r = sio(fd, kQueryRecords, nullptr, 0, blob, sizeof(blob));
    if (r.rc == 0 && redirect_records_decode(blob, r.bytes, info) != 0)
        r.error = errno;  // makes the comparison fail and say why
    return r;
}

// What the completion routine of an overlapped request saw.
struct Completion {
    int calls = 0, error = -1;
    size_t bytes = kUnset;
    redirect_overlapped* overlapped = nullptr;
    unsigned flags = 99;
} g_completion;

void onComplete(int error, size_t bytes, redirect_overlapped* overlapped, unsigned flags)
{
    g_completion = {g_completion.calls + 1, error, bytes, overlapped, flags};
}

}  // namespace

class TestSio : public QObject {
    Q_OBJECT

private slots:
    void queryAcceptedSocket();
    void queryBufferTooSmall();
    void queryWithoutRecords();
    void setOnUnconnectedSocket_data();
    void setOnUnconnectedSocket();
    void setWithOutputBuffer();
    void setMalformedBlob_data();
    void setMalformedBlob();
    void setOnUnsuitableSocket();
    void unknownControlCode();
    void badPointers();
    void notASocket();
    void withoutAdministratorRights();
    void calloutNotLoaded();
    void calloutOfAnotherInstance();
    void overlappedCompletesAtOnce();
    void stateNames();
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
    Fd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)), unixStream(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    QVERIFY(plain.valid() && udp.valid() && unixStream.valid());
    QByteArray blob = recordsBlob(kFlowId, {kOtherId});
    for (int fd : {connected.get(), r.app.get(), r.accepted.get(), plain.get(), udp.get(), unixStream.get()})
        QCOMPARE(sioSet(fd, blob), (Result{-1, EINVAL, 0}));
}

void TestSio::unknownControlCode()
{
    Redirection r;
    QVERIFY(r.connectApp());
    unsigned char out[256];
    for (uint32_t code : {0x980000DFu, 0u, 0x980000DBu, 0x180000DCu, 0xFFFFFFFFu})
        QCOMPARE(sio(r.accepted.get(), code, nullptr, 0, out, sizeof(out)), (Result{-1, EINVAL, 0}));
}

void TestSio::badPointers()
{
    Redirection r;
    QVERIFY(r.connectApp());
    Fd fresh = tcpSocket();
    QByteArray blob = recordsBlob(kFlowId, {kOtherId});
    unsigned char out[256];
    QCOMPARE(sio(fresh.get(), kSet, nullptr, kRecords1, nullptr, 0), (Result{-1, EFAULT, 0}));
    QCOMPARE(sio(r.accepted.get(), kQueryRecords, nullptr, 0, nullptr, sizeof(out)), (Result{-1, EFAULT, 0}));
    // No *bytes_returned and no completion routine.
    errno = 0;
    QCOMPARE(redirect_ioctl(r.accepted.get(), kQueryRecords, nullptr, 0, out, sizeof(out), nullptr, nullptr, nullptr), -1);
    QCOMPARE(errno, EFAULT);
    errno = 0;
    QCOMPARE(redirect_ioctl(fresh.get(), kSet, blob.constData(), size_t(blob.size()), nullptr, 0, nullptr, nullptr,
                            nullptr),
             -1);
    QCOMPARE(errno, EFAULT);
}

void TestSio::notASocket()
{
    Redirection r;
    QVERIFY(r.ok());
    int pipeFds[2];
    QCOMPARE(::pipe2(pipeFds, O_CLOEXEC), 0);
    Fd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
    QTemporaryFile file;
    QVERIFY(file.open());
    QByteArray blob = recordsBlob(kFlowId, {kOtherId});
    unsigned char out[256];
    for (int fd : {readEnd.get(), writeEnd.get(), int(file.handle())}) {
        for (uint32_t code : {kQueryRecords, kQueryContext})
            QCOMPARE(sio(fd, code, nullptr, 0, out, sizeof(out)), (Result{-1, ENOTSOCK, 0}));
        QCOMPARE(sioSet(fd, blob), (Result{-1, ENOTSOCK, 0}));
    }
}

void TestSio::withoutAdministratorRights()
{
    Redirection r;
    QVERIFY(r.connectApp());
    Fd fresh = tcpSocket();
    QByteArray blob = recordsBlob(kFlowId, {kOtherId});
    int report[2];
    QCOMPARE(::pipe2(report, O_CLOEXEC), 0);
    Fd reportRead(report[0]), reportWrite(report[1]);

    pid_t pid = ::fork();
    QVERIFY(pid >= 0);
    if (pid == 0) {
        // Child: syscalls only, then _exit. Dropping to nobody loses every capability.
        Result got[2] = {{-2, 0, kUnset}, {-2, 0, kUnset}};
        if (::setgroups(0, nullptr) == 0 && ::setgid(65534) == 0 && ::setuid(65534) == 0) {
            unsigned char out[256];
            got[0] = sioSet(fresh.get(), blob);
            got[1] = sio(r.accepted.get(), kQueryRecords, nullptr, 0, out, sizeof(out));
        }
        ::_exit(::write(reportWrite.get(), got, sizeof(got)) == ssize_t(sizeof(got)) ? 0 : 1);
    }
    reportWrite.reset();
    Result got[2] = {};
    pollfd p{reportRead.get(), POLLIN, 0};
    bool answered = ::poll(&p, 1, 10000) == 1 && ::read(reportRead.get(), got, sizeof(got)) == ssize_t(sizeof(got));
    if (!answered)
        ::kill(pid, SIGKILL);
    int status = 0;
    QCOMPARE(::waitpid(pid, &status, 0), pid);
    QVERIFY2(answered, "the unprivileged child did not report");
    QVERIFY2(got[0].rc != -2, "the child could not drop to uid/gid 65534");
    QCOMPARE(got[0], (Result{-1, EACCES, 0}));
    QCOMPARE(got[1], (Result{-1, EACCES, 0}));
    // The same requests as root succeed: rights, not the sockets, made the difference.
    redirect_records_info info{};
    QCOMPARE(queryRecords(r.accepted.get(), &info), (Result{0, 0, kRecords1}));
    QCOMPARE(sioSet(fresh.get(), blob), (Result{0, 0, size_t(blob.size())}));
}

void TestSio::calloutNotLoaded()
{
    // No LoadedCallout in this function: nobody holds the instance lock.
    uint16_t port = 0;
    Fd listener(listenLoopback(AF_INET, &port)), client = tcpSocket();
    QCOMPARE(connectTo(client.get(), AF_INET, port), 0);
    Fd accepted = acceptWithin(listener.get());
    QVERIFY(accepted.valid());
    QByteArray blob = recordsBlob(kFlowId, {kOtherId});
    const QByteArray saved = qgetenv("REDIRECT_CALLOUT_INSTANCE");
    auto restore = qScopeGuard([&] { qputenv("REDIRECT_CALLOUT_INSTANCE", saved); });
    // This process's instance, one never loaded, one that is no valid name.
    for (QByteArray name : {saved, "never-loaded-" + QByteArray::number(::getpid()), QByteArray("../escape")}) {
        qputenv("REDIRECT_CALLOUT_INSTANCE", name);
        Fd fresh = tcpSocket();
        unsigned char out[256];
        QCOMPARE(sioSet(fresh.get(), blob), (Result{-1, EOPNOTSUPP, 0}));
        for (uint32_t code : {kQueryRecords, kQueryContext})
            QCOMPARE(sio(accepted.get(), code, nullptr, 0, out, sizeof(out)), (Result{-1, EOPNOTSUPP, 0}));
    }
}

void TestSio::calloutOfAnotherInstance()
{
    // A live callout under its own name does not answer for a name nobody loaded.
    Redirection r;
    QVERIFY(r.connectApp());
    redirect_records_info info{};
    QCOMPARE(queryRecords(r.accepted.get(), &info), (Result{0, 0, kRecords1}));
    const QByteArray saved = qgetenv("REDIRECT_CALLOUT_INSTANCE");
    qputenv("REDIRECT_CALLOUT_INSTANCE", "never-loaded-" + QByteArray::number(::getpid()));
    Result elsewhere = queryRecords(r.accepted.get(), &info);
    qputenv("REDIRECT_CALLOUT_INSTANCE", saved);
    QCOMPARE(elsewhere, (Result{-1, EOPNOTSUPP, 0}));
    QCOMPARE(queryRecords(r.accepted.get(), &info), (Result{0, 0, kRecords1}));
}

void TestSio::overlappedCompletesAtOnce()
{
    Redirection r;
    QVERIFY(r.connectApp());
    int userData = 0;
    unsigned char out[256];
    redirect_overlapped ov{&userData, -1, kUnset};
    size_t bytes = kUnset;

    // Success: the routine gets the bytes, and *bytes_returned and the overlapped struct are filled too.
    g_completion = {};
    QCOMPARE(redirect_ioctl(r.accepted.get(), kQueryRecords, nullptr, 0, out, sizeof(out), &bytes, &ov, onComplete), 0);
    QCOMPARE(g_completion.calls, 1);
    QCOMPARE((Result{0, g_completion.error, g_completion.bytes}), (Result{0, 0, kRecords1}));
    QCOMPARE(g_completion.overlapped, &ov);
    QCOMPARE(g_completion.flags, 0u);
    QCOMPARE(bytes, kRecords1);
    QCOMPARE((Result{0, ov.error, ov.bytes}), (Result{0, 0, kRecords1}));
    QCOMPARE(ov.user_data, static_cast<void*>(&userData));
    redirect_records_info info{};
    QCOMPARE(redirect_records_decode(out, kRecords1, &info), 0);
    QCOMPARE(info.hops[0].redirector_id, kRedirectorId);

    // Failure still returns 0: the routine gets the error (buffer too small: and the required size).
    ov = {&userData, -1, kUnset};
    g_completion = {};
    QCOMPARE(redirect_ioctl(r.accepted.get(), kQueryContext, nullptr, 0, out, 10, nullptr, &ov, onComplete), 0);
    QCOMPARE(g_completion.calls, 1);
    QCOMPARE((Result{0, g_completion.error, g_completion.bytes}), (Result{0, EINVAL, kContext}));
    QCOMPARE(g_completion.overlapped, &ov);
    QCOMPARE((Result{0, ov.error, ov.bytes}), (Result{0, EINVAL, kContext}));
    QCOMPARE(ov.user_data, static_cast<void*>(&userData));

    // Without an overlapped struct the routine still runs once, with a null pointer.
    g_completion = {};
    QCOMPARE(redirect_ioctl(r.accepted.get(), 0x980000DFu, nullptr, 0, out, sizeof(out), nullptr, nullptr, onComplete),
             0);
    QCOMPARE(g_completion.calls, 1);
    QCOMPARE((Result{0, g_completion.error, g_completion.bytes}), (Result{0, EINVAL, 0}));
    QCOMPARE(g_completion.overlapped, static_cast<redirect_overlapped*>(nullptr));
}

void TestSio::stateNames()
{
    QCOMPARE(redirect_state_name(REDIRECT_STATE_NOT_REDIRECTED), "NOT_REDIRECTED");
    QCOMPARE(redirect_state_name(REDIRECT_STATE_REDIRECTED_BY_SELF), "REDIRECTED_BY_SELF");
    QCOMPARE(redirect_state_name(REDIRECT_STATE_REDIRECTED_BY_OTHER), "REDIRECTED_BY_OTHER");
    QCOMPARE(redirect_state_name(REDIRECT_STATE_PREVIOUSLY_REDIRECTED_BY_SELF), "PREVIOUSLY_REDIRECTED_BY_SELF");
    QCOMPARE(redirect_state_name(4), "?");
    QCOMPARE(redirect_state_name(-1), "?");
}

REDIRECT_KERNEL_TEST_MAIN(TestSio)
#include "tst_sio.moc"

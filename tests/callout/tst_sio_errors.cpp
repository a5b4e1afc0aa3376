// The proxy SDK (redirect/sio.h), the rest of the behaviour table of redirect_ioctl(): unknown
// codes, bad pointers, descriptors that are not sockets, callers without administrator rights,
// no callout loaded, overlapped requests; each checking the return value, errno and
// *bytes_returned exactly. Queries and SET are in tst_sio.
#include <fcntl.h>
#include <grp.h>
#include <sys/wait.h>

#include <QTemporaryFile>

#include "sio_fixtures.h"

using namespace sio_test;

namespace {

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

class TestSioErrors : public QObject {
    Q_OBJECT

private slots:
    void unknownControlCode();
    void badPointers();
    void notASocket();
    void withoutAdministratorRights();
    void calloutNotLoaded();
    void calloutOfAnotherInstance();
    void overlappedCompletesAtOnce();
    void stateNames();
};

void TestSioErrors::unknownControlCode()
{
    Redirection r;
    QVERIFY(r.connectApp());
    unsigned char out[256];
    for (uint32_t code : {0x980000DFu, 0u, 0x980000DBu, 0x180000DCu, 0xFFFFFFFFu})
        QCOMPARE(sio(r.accepted.get(), code, nullptr, 0, out, sizeof(out)), (Result{-1, EINVAL, 0}));
}

void TestSioErrors::badPointers()
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

void TestSioErrors::notASocket()
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

void TestSioErrors::withoutAdministratorRights()
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

void TestSioErrors::calloutNotLoaded()
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

void TestSioErrors::calloutOfAnotherInstance()
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

void TestSioErrors::overlappedCompletesAtOnce()
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

void TestSioErrors::stateNames()
{
    QCOMPARE(redirect_state_name(REDIRECT_STATE_NOT_REDIRECTED), "NOT_REDIRECTED");
    QCOMPARE(redirect_state_name(REDIRECT_STATE_REDIRECTED_BY_SELF), "REDIRECTED_BY_SELF");
    QCOMPARE(redirect_state_name(REDIRECT_STATE_REDIRECTED_BY_OTHER), "REDIRECTED_BY_OTHER");
    QCOMPARE(redirect_state_name(REDIRECT_STATE_PREVIOUSLY_REDIRECTED_BY_SELF), "PREVIOUSLY_REDIRECTED_BY_SELF");
    QCOMPARE(redirect_state_name(4), "?");
    QCOMPARE(redirect_state_name(-1), "?");
}

REDIRECT_KERNEL_TEST_MAIN(TestSioErrors)
#include "tst_sio_errors.moc"

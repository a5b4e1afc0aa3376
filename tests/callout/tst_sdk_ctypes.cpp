// The SDK from Python ctypes (sdk_ctypes.py): a Python process given the
// accepted socket of a redirected connection queries records and context,
// decodes the original destination, SETs the records on its own socket and
// connects there, and the callout sees that connect as the end of the chain.
#include <cerrno>
#include <cstring>
#include <fstream>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel_test.h"
#include "redirect/sio.h"

using namespace redirect;
using namespace redirect::test;

namespace {

constexpr uint32_t kRedirectorId = 601;

// Bounded: a connection that was not redirected never reaches the proxy listener.
int acceptWithin(int listener, int timeoutMs = 3000)
{
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, timeoutMs) != 1)
        return -1;
    return ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
}

std::string ownComm()
{
    std::ifstream f("/proc/self/comm");
    std::string comm;
    std::getline(f, comm);
    return comm;
}

}  // namespace

class TestSdkCtypes : public QObject {
    Q_OBJECT

private slots:
    void pythonProxyQueriesAndSetsRecords();
};

void TestSdkCtypes::pythonProxyQueriesAndSetsRecords()
{
    LoadedCallout callout;
    uint16_t proxyPort = 0, destPort = 0;
    int proxy = listenLoopback(AF_INET, &proxyPort);
    int dest = listenLoopback(AF_INET, &destPort);
    QVERIFY(proxy >= 0 && dest >= 0);
    auto closeListeners = qScopeGuard([&] {
        ::close(proxy);
        ::close(dest);
    });
    // Owner pid 0: neither this process nor the Python child gets its records "repaired".
    callout->setRedirector(0, makeRedirector(kRedirectorId, proxyPort, 0, 0, sandbox().netnsCookie()));
    callout_rule rule = makeRedirectRule(1, 0, destPort, destPort);
    callout->setRules({&rule, 1});

    int client = connectLoopback(AF_INET, destPort);
    QVERIFY2(client >= 0, strerror(-client));
    int accepted = acceptWithin(proxy);
    QVERIFY(accepted >= 0);
    auto closeSockets = qScopeGuard([&] {
        ::close(client);
        ::close(accepted);
    });
    // The chain the Python proxy must carry on.
    unsigned char records[REDIRECT_RECORDS_SIZE(1)];
    size_t bytes = 0;
    QCOMPARE(redirect_ioctl(accepted, SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, nullptr, 0, records, sizeof(records),
                            &bytes, nullptr, nullptr),
             0);
    redirect_records_info info{};
    QCOMPARE(redirect_records_decode(records, bytes, &info), 0);

    // Only this descriptor crosses exec.
    int flags = ::fcntl(accepted, F_GETFD);
    QVERIFY(flags >= 0);
    QCOMPARE(::fcntl(accepted, F_SETFD, flags & ~FD_CLOEXEC), 0);
    Child python({"/usr/bin/python3", SDK_CTYPES_SCRIPT, REDIRECT_SIO_LIBRARY, std::to_string(accepted)});
    std::vector<std::string> lines;
    for (std::string line; lines.size() < 5 && !(line = python.readLine(10000)).empty();)
        lines.push_back(line);
    int status = python.wait(10000);
    QVERIFY2(WIFEXITED(status) && WEXITSTATUS(status) == 0, qPrintable(QString("python exit status %1").arg(status)));
    QCOMPARE(lines.size(), size_t(5));

    QCOMPARE(lines[0], "DEST 127.0.0.1:" + std::to_string(destPort) + " RECORDS " +
                           std::to_string(REDIRECT_RECORDS_SIZE(1)) + " CONTEXT " +
                           std::to_string(REDIRECT_CONTEXT_HEADER_SIZE));
    QCOMPARE(lines[1], "PID " + std::to_string(::getpid()) + " UID 0 COMM " + ownComm());
    QCOMPARE(lines[2], "SET " + std::to_string(REDIRECT_RECORDS_SIZE(1)));
    // The SET socket carries records for the callout, yet is no accepted socket: nothing to query.
    QCOMPARE(lines[3], std::string("NEW_SOCKET_QUERY ENOENT"));
    QCOMPARE(lines[4], std::string("CONNECTED 0"));

    // The SET took effect: the callout saw the Python connect end the chain of this flow.
    const auto pythonPid = uint32_t(python.pid());
    QVERIFY(callout.waitForEvent([&](const callout_event& e) {
        return e.pid == pythonPid && e.verdict == CALLOUT_VERDICT_CHAIN_END && e.flow_id == info.flow_id &&
               (e.flags & CALLOUT_FLAG_HAD_RECORDS) && e.redirector_id == kRedirectorId;
    }));
    int direct = acceptWithin(dest);
    QVERIFY(direct >= 0);
    ::close(direct);
}

REDIRECT_KERNEL_TEST_MAIN(TestSdkCtypes)
#include "tst_sdk_ctypes.moc"

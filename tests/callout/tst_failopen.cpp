// Fail-open: the callout's hooks are bpf_links owned by the process that
// loaded it. SIGKILL that process and nothing stays attached, new
// connections go direct, and the SDK reports the callout as not loaded even
// though the records map pin is still on disk.
#include <arpa/inet.h>
#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel_test.h"
#include "redirect/sio.h"

using namespace redirect;
using namespace redirect::test;

namespace {

uint16_t localPort(int fd)
{
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

// Connect, exchange, and report whether the destination saw this socket itself (direct).
bool wentDirect(TcpServer& server)
{
    size_t before = server.peers().size();
    int fd = connectLoopback(AF_INET, server.port());
    if (fd < 0)
        return false;
    uint16_t mine = localPort(fd);
    char buf[16];
    [[maybe_unused]] ssize_t w = ::write(fd, "ping", 4);
    while (::read(fd, buf, sizeof(buf)) > 0) {
    }
    ::close(fd);
    auto peers = server.peers();
    return peers.size() == before + 1 && peers.back() == "127.0.0.1:" + std::to_string(mine);
}

std::string attachedTo(const std::string& cgroup)
{
    auto [code, out] = run({"bpftool", "cgroup", "show", cgroup});
    return code == 0 ? out : "bpftool failed: " + out;
}

}  // namespace

class TestFailOpen : public QObject {
    Q_OBJECT

private slots:
    void sigkillLeavesNothingAttached();
};

void TestFailOpen::sigkillLeavesNothingAttached()
{
    TcpServer server(AF_INET, "pong", 4);
    std::string instance = instanceName() + "-host";
    QVERIFY(wentDirect(server));

    Child host({binaryPath("callout_host"), "--cgroup", sandbox().cgroup(), "--instance", instance, "--port",
                std::to_string(server.port())});
    std::string ready = host.readLine(10000);
    QVERIFY2(ready.rfind("READY ", 0) == 0, ready.c_str());
    QVERIFY(attachedTo(sandbox().cgroup()).find("callout_connect4") != std::string::npos);
    QVERIFY(!wentDirect(server));  // redirected through the host's redirector

    // The SDK sees the host's callout alive.
    ::setenv("REDIRECT_CALLOUT_INSTANCE", instance.c_str(), 1);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    size_t bytes = 99;
    char out[128];
    QCOMPARE(redirect_ioctl(fd, SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, nullptr, 0, out, sizeof(out), &bytes,
                            nullptr, nullptr),
             -1);
    QCOMPARE(errno, ENOENT);

    host.kill(SIGKILL);
    int status = host.wait(10000);
    QVERIFY(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    // Links die with their last fd; the kernel releases them asynchronously, so wait (bounded).
    QTRY_VERIFY_WITH_TIMEOUT(attachedTo(sandbox().cgroup()).find("callout_") == std::string::npos, 5000);
    auto [code, tree] = run({"bpftool", "cgroup", "tree", sandbox().cgroup()});
    QCOMPARE(code, 0);
    QVERIFY2(tree.find("callout_") == std::string::npos, tree.c_str());
    QVERIFY(wentDirect(server));

    // The pin survives the kill, but without the instance lock the SDK says "not loaded".
    QVERIFY(::access(("/sys/fs/bpf/redirect-console/" + instance + "/socks").c_str(), F_OK) == 0);
    QCOMPARE(redirect_ioctl(fd, SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, nullptr, 0, out, sizeof(out), &bytes,
                            nullptr, nullptr),
             -1);
    QCOMPARE(errno, EOPNOTSUPP);
    ::close(fd);
    ::setenv("REDIRECT_CALLOUT_INSTANCE", instanceName().c_str(), 1);

    // A new load of the same instance replaces the stale pin.
    {
        Callout again({sandbox().cgroup(), instance});
        QVERIFY(::access(again.pinPath().c_str(), F_OK) == 0);
    }
    QVERIFY(::access(("/sys/fs/bpf/redirect-console/" + instance).c_str(), F_OK) != 0);
}

REDIRECT_KERNEL_TEST_MAIN(TestFailOpen)
#include "tst_failopen.moc"

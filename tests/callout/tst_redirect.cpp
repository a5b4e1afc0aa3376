// One redirector, real sockets and a real client (curl) in the sandbox:
// body intact, getpeername() shows the original destination, the context
// names the client, IPv6 and v4-mapped like IPv4, live rule toggles.
#include <fstream>
#include <random>

#include <arpa/inet.h>
#include <unistd.h>

#include "hop_log.h"
#include "kernel_test.h"
#include "redirect/sio.h"

using namespace redirect;
using namespace redirect::test;

namespace {

std::string readAll(int fd)
{
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;)
        out.append(buf, static_cast<size_t>(n));
    return out;
}

std::string peerOf(int fd)
{
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
        return "error";
    return addressText(ss);
}

std::string loopbackText(int family, uint16_t port, bool mapped)
{
    socklen_t len = 0;
    return addressText(loopbackAddress(family, port, &len, mapped));
}

}  // namespace

class TestRedirect : public QObject {
    Q_OBJECT

private slots:
    void curlGetsExactBodyThroughOneRedirector();
    void contextAndPeerName_data();
    void contextAndPeerName();
    void ruleToggleTakesEffectOnNextConnect();
};

void TestRedirect::curlGetsExactBodyThroughOneRedirector()
{
    LoadedCallout callout;
    HopLog log;
    test::ThreadRedirector redirector({.id = 101}, log.handler());
    callout->setRedirector(0, makeRedirector(101, redirector.port4(), redirector.port6(), 0,
                                             sandbox().netnsCookie()));

    // A real HTTP server serving 1 MiB of random bytes.
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    std::string body(1 << 20, '\0');
    std::mt19937 rng(42);
    for (auto& c : body)
        c = static_cast<char>(rng());
    std::ofstream(dir.filePath("blob.bin").toStdString(), std::ios::binary) << body;
    Child server({"python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory",
                  dir.path().toStdString()});
    std::string banner = server.readLine(10000);
    QVERIFY2(banner.find("port ") != std::string::npos, banner.c_str());
    auto port = static_cast<uint16_t>(std::stoul(banner.substr(banner.find("port ") + 5)));

    callout_rule rule = makeRedirectRule(1, 0, port, port);
    callout->setRules({&rule, 1});

    std::string out = dir.filePath("got.bin").toStdString();
    auto [code, text] = run({"curl", "-sS", "--max-time", "20", "-o", out,
                             "http://127.0.0.1:" + std::to_string(port) + "/blob.bin"});
    QCOMPARE(code, 0);
    std::ifstream got(out, std::ios::binary);
    std::string received((std::istreambuf_iterator<char>(got)), std::istreambuf_iterator<char>());
    QCOMPARE(received.size(), body.size());
    QVERIFY(received == body);

    // The redirector took it: QUERY_CONTEXT gave the destination, curl's pid and comm.
    auto hops = log.waitFor(1);
    QCOMPARE(hops.size(), size_t(1));
    QCOMPARE(addressText(hops[0].destination), "127.0.0.1:" + std::to_string(port));
    QCOMPARE(hops[0].clientComm, std::string("curl"));
    QVERIFY(hops[0].clientPid > 0);
    QCOMPARE(hops[0].records.size(), size_t(REDIRECT_RECORDS_SIZE(1)));
    QCOMPARE(hops[0].context.size(), size_t(REDIRECT_CONTEXT_HEADER_SIZE));
    QVERIFY(hops[0].bytesDown > body.size());  // headers plus the body
    QVERIFY(callout.waitForEvent([&](const callout_event& e) {
        return e.verdict == CALLOUT_VERDICT_REDIRECT && std::string(reinterpret_cast<const char*>(e.comm)) == "curl" &&
               int(e.pid) == hops[0].clientPid && e.redirector_id == 101;
    }));
}

void TestRedirect::contextAndPeerName_data()
{
    QTest::addColumn<int>("family");
    QTest::addColumn<bool>("mapped");
    QTest::newRow("ipv4") << AF_INET << false;
    QTest::newRow("ipv6") << AF_INET6 << false;
    QTest::newRow("v4-mapped") << AF_INET6 << true;
}

void TestRedirect::contextAndPeerName()
{
    QFETCH(int, family);
    QFETCH(bool, mapped);
    LoadedCallout callout;
    HopLog log;
    test::ThreadRedirector redirector({.id = 102}, log.handler());
    callout->setRedirector(0, makeRedirector(102, redirector.port4(), redirector.port6(), 0,
                                             sandbox().netnsCookie()));
    TcpServer server(mapped ? AF_INET : family, "hello from the destination");
    callout_rule rule = makeRedirectRule(2, 0, server.port(), server.port());
    callout->setRules({&rule, 1});

    int fd = connectLoopback(family, server.port(), mapped);
    QVERIFY2(fd >= 0, strerror(-fd));
    // The application sees where it asked to go, not the redirector.
    QCOMPARE(peerOf(fd), loopbackText(family, server.port(), mapped));
    QCOMPARE(readAll(fd), std::string("hello from the destination"));
    ::close(fd);

    auto hops = log.waitFor(1);
    QCOMPARE(hops.size(), size_t(1));
    QCOMPARE(addressText(hops[0].destination), loopbackText(family, server.port(), mapped));
    QCOMPARE(hops[0].clientPid, int(::getpid()));
    char comm[16] = {};
    {
        std::ifstream f("/proc/self/comm");
        std::string c;
        std::getline(f, c);
        std::snprintf(comm, sizeof(comm), "%s", c.c_str());
    }
    QCOMPARE(hops[0].clientComm, std::string(comm));
    QVERIFY(hops[0].setRecords);
    QCOMPARE(hops[0].reason, engine::EndReason::Closed);
    // The destination was reached by the redirector, not by the client directly.
    auto peers = server.peers();
    QCOMPARE(peers.size(), size_t(1));
}

void TestRedirect::ruleToggleTakesEffectOnNextConnect()
{
    LoadedCallout callout;
    HopLog log;
    test::ThreadRedirector redirector({.id = 103}, log.handler());
    callout->setRedirector(0, makeRedirector(103, redirector.port4(), redirector.port6(), 0,
                                             sandbox().netnsCookie()));
    TcpServer server(AF_INET, "pong", 4);
    callout_rule rule = makeRedirectRule(3, 0, server.port(), server.port());
    callout->setRules({&rule, 1});

    // An open connection through the redirector, before any toggle.
    int open = connectLoopback(AF_INET, server.port());
    QVERIFY(open >= 0);

    QVERIFY(callout->setRuleEnabled(3, false));
    QCOMPARE(callout->rules().at(0).enabled, uint8_t(0));
    int direct = connectLoopback(AF_INET, server.port());
    QVERIFY(direct >= 0);
    QCOMPARE(::write(direct, "ping", 4), ssize_t(4));
    QCOMPARE(readAll(direct), std::string("pong"));
    ::close(direct);

    QVERIFY(callout->setRuleEnabled(3, true));
    int again = connectLoopback(AF_INET, server.port());
    QVERIFY(again >= 0);
    QCOMPARE(::write(again, "ping", 4), ssize_t(4));
    QCOMPARE(readAll(again), std::string("pong"));
    ::close(again);

    // The connection opened before both toggles still works, through the redirector.
    QCOMPARE(::write(open, "ping", 4), ssize_t(4));
    QCOMPARE(readAll(open), std::string("pong"));
    ::close(open);

    auto hops = log.waitFor(2);
    QCOMPARE(hops.size(), size_t(2));  // the open one and the one after re-enabling
    auto events = callout.events();
    std::vector<int> verdicts;
    for (auto& e : events)
        if (ntohs(e.orig_port) == server.port() && e.pid == uint32_t(::getpid()) && !(e.flags & CALLOUT_FLAG_HAD_RECORDS))
            verdicts.push_back(e.verdict);
    QCOMPARE(verdicts, (std::vector<int>{CALLOUT_VERDICT_REDIRECT, CALLOUT_VERDICT_DIRECT, CALLOUT_VERDICT_REDIRECT}));
}

REDIRECT_KERNEL_TEST_MAIN(TestRedirect)
#include "tst_redirect.moc"
